//! TLS for clients, with the real `mariadb` client: `--ssl` gets an
//! encrypted session that carries results (large ones too), a user with
//! `require_tls` is refused in plaintext (3159), others may use either.

use std::process::Command;

use funnel_config::Config;
use funnel_testkit::MariaDb;

fn mariadb_cli(port: u16, user: &str, ssl: bool, sql: &str) -> (bool, String) {
    let out = Command::new("mariadb")
        .args([
            "-h127.0.0.1",
            &format!("-P{port}"),
            &format!("-u{user}"),
            "-ppw",
            "--batch",
            "--skip-column-names",
        ])
        .arg(if ssl { "--ssl" } else { "--skip-ssl" })
        .args(["-e", sql])
        .output()
        .expect("the mariadb client is missing: apt-get install -y mariadb-client");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn tls_logins_with_the_mariadb_client() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let made = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=127.0.0.1",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl is missing");
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));

    let db = MariaDb::shared();
    let schema = db.fresh_database("tls");
    db.create_user("tls_b", "bpw");
    let yaml = format!(
        "listen: 127.0.0.1:0\ncores: 1\n\
         users:\n  - name: secure\n    password: pw\n    default_schema: {schema}\n    require_tls: true\n\
         \x20 - name: either\n    password: pw\n    default_schema: {schema}\n\
         backends:\n  - name: primary\n    address: {}\n    user: tls_b\n    password: bpw\n\
         client:\n  tls:\n    cert: {}\n    key: {}\n",
        db.addr(),
        cert.display(),
        key.display()
    );
    let proxy = funnel_testkit::funnel::start(Config::from_yaml_str(&yaml).unwrap());
    let port = proxy.local_addr().port();

    let (ok, text) = mariadb_cli(port, "secure", true, "status");
    assert!(ok && text.contains("Cipher in use"), "{text}");
    let (ok, text) = mariadb_cli(
        port,
        "secure",
        true,
        "SELECT 40 + 2; SELECT LENGTH(REPEAT('x', 200000))",
    );
    assert!(ok && text.contains("42") && text.contains("200000"), "{text}");
    let (ok, text) = mariadb_cli(port, "secure", true, "SELECT REPEAT('ab', 100000)");
    assert!(
        ok && text.trim().len() == 200000,
        "a large value through TLS: {} bytes",
        text.trim().len()
    );

    let (ok, text) = mariadb_cli(port, "secure", false, "SELECT 1");
    assert!(
        !ok && text.contains("3159"),
        "plaintext refused for require_tls: {text}"
    );

    let (ok, text) = mariadb_cli(port, "either", false, "SELECT 7");
    assert!(ok && text.trim() == "7", "{text}");
    let (ok, text) = mariadb_cli(port, "either", true, "status");
    assert!(ok && text.contains("Cipher in use"), "{text}");
}
