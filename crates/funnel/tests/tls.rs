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
    let (cert, key) = funnel_testkit::certs::self_signed(dir.path(), "127.0.0.1");

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
    // COM_CHANGE_USER to a TLS-only user over plain TCP is refused too.
    {
        use mysql::prelude::Queryable;
        let opts = mysql::OptsBuilder::new()
            .ip_or_hostname(Some("127.0.0.1"))
            .tcp_port(port)
            .user(Some("either"))
            .pass(Some("pw"))
            .prefer_socket(false);
        let mut c = mysql::Conn::new(opts).unwrap();
        assert_eq!(c.query_first::<i64, _>("SELECT 8").unwrap(), Some(8));
        let change = mysql::ChangeUserOpts::default()
            .with_user(Some("secure".into()))
            .with_pass(Some("pw".into()));
        match c.change_user(change) {
            Err(mysql::Error::MySqlError(e)) => assert_eq!(e.code, 3159, "{e}"),
            other => panic!("change to a TLS-only user in plaintext: {other:?}"),
        }
    }
    let (ok, text) = mariadb_cli(port, "either", true, "status");
    assert!(ok && text.contains("Cipher in use"), "{text}");

    // The compressed protocol inside TLS: large values both ways.
    let out = Command::new("mariadb")
        .args([
            "-h127.0.0.1",
            &format!("-P{port}"),
            "-usecure",
            "-ppw",
            "--batch",
            "--skip-column-names",
            "--ssl",
            "--compress",
            "-e",
        ])
        .arg(format!(
            "status; SELECT LENGTH('{}'); SELECT REPEAT('ab', 100000)",
            "y".repeat(100_000)
        ))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        text.contains("Cipher in use") && text.contains("Compressed"),
        "{text}"
    );
    assert!(text.contains("\n100000\n"), "a 100 KB statement in");
    assert!(text.contains(&"ab".repeat(100000)), "a 200 KB value out");
}

/// Logs in the way a MySQL 8 client does: `caching_sha2_password` first,
/// answering with `answer` (the scramble of `password` when `None`), and
/// answering an auth switch to `mysql_native_password` with `password`.
fn caching_sha2_login(port: u16, user: &[u8], password: &[u8], answer: Option<Vec<u8>>) -> Vec<Vec<u8>> {
    use funnel_protocol::auth::{caching_sha2_scramble, native_password_scramble, CACHING_SHA2_PASSWORD};
    use funnel_protocol::handshake::{HandshakeResponse41, HandshakeV10};
    use funnel_protocol::Capabilities;
    use std::io::Write;
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    let (_, greeting) = funnel_testkit::mini_client::read_raw_packet(&mut s).unwrap();
    let greeting = HandshakeV10::parse(&greeting).unwrap();
    let resp = HandshakeResponse41 {
        capabilities: Capabilities(
            Capabilities::CLIENT_PROTOCOL_41.0
                | Capabilities::CLIENT_SECURE_CONNECTION.0
                | Capabilities::CLIENT_PLUGIN_AUTH.0
                | Capabilities::CLIENT_MYSQL.0,
        ),
        max_packet_size: 1 << 24,
        charset: 45,
        username: user.to_vec(),
        auth_response: answer.unwrap_or_else(|| caching_sha2_scramble(password, &greeting.auth_plugin_data)),
        database: None,
        auth_plugin_name: Some(CACHING_SHA2_PASSWORD.as_bytes().to_vec()),
        attributes: Vec::new(),
    };
    let mut out = bytes::BytesMut::new();
    resp.write(&mut out);
    let mut framed = bytes::BytesMut::new();
    funnel_protocol::framing::write_packet(&mut framed, 1, &out);
    s.write_all(&framed).unwrap();
    // Collect packets until OK or ERR ends the login.
    let mut got = Vec::new();
    loop {
        let (seq, p) = funnel_testkit::mini_client::read_raw_packet(&mut s).unwrap();
        let last = matches!(p.first(), Some(0x00) | Some(0xff));
        if p.first() == Some(&0xfe) {
            // Auth switch: plugin name, NUL, scramble (NUL-terminated).
            let data = &p[p.iter().position(|&b| b == 0).unwrap() + 1..];
            let data = data.strip_suffix(&[0]).unwrap_or(data);
            let mut framed = bytes::BytesMut::new();
            funnel_protocol::framing::write_packet(
                &mut framed,
                seq.wrapping_add(1),
                &native_password_scramble(password, data),
            );
            s.write_all(&framed).unwrap();
        }
        got.push(p);
        if last {
            return got;
        }
    }
}

#[test]
fn mysql8_clients_log_in_with_caching_sha2_fast_path() {
    let db = MariaDb::shared();
    let schema = db.fresh_database("sha2");
    let backend = format!("{schema}_b");
    db.create_user(&backend, "bpw");
    let yaml = format!(
        "listen: 127.0.0.1:0\ncores: 1\n\
         users:\n  - name: app\n    password: pw\n    default_schema: {schema}\n\
         \x20 - name: nopw\n    password: \"\"\n    default_schema: {schema}\n\
         backends:\n  - name: primary\n    address: {}\n    user: {backend}\n    password: bpw\n",
        db.addr()
    );
    let proxy = funnel_testkit::funnel::start(Config::from_yaml_str(&yaml).unwrap());
    let port = proxy.local_addr().port();

    // Right password: "fast auth success" (0x01 0x03), then OK.
    let good = caching_sha2_login(port, b"app", b"pw", None);
    assert_eq!(good.len(), 2, "{good:?}");
    assert_eq!(good[0], vec![0x01, 0x03]);
    assert_eq!(good[1][0], 0x00);

    // Wrong password: no fast-auth marker; the same steps as for a user
    // that does not exist (a switch to mysql_native_password, then access
    // denied), so the replies do not tell which user names are known.
    let bad = caching_sha2_login(port, b"app", b"nope", None);
    let unknown = caching_sha2_login(port, b"nobody", b"nope", None);
    for got in [&bad, &unknown] {
        assert_eq!(got.len(), 2, "{got:?}");
        assert_eq!(got[0][0], 0xfe, "auth switch: {got:?}");
        let err = funnel_protocol::response::ErrPacket::parse(&got[1]).unwrap();
        assert_eq!(err.code, 1045);
    }
    // After the switch, the right password still logs in.
    let switched = caching_sha2_login(port, b"app", b"pw", Some(vec![7; 32]));
    assert_eq!(switched.last().unwrap()[0], 0x00, "{switched:?}");

    // An empty password answered with one zero byte, as libmysqlclient does.
    for answer in [vec![], vec![0]] {
        let got = caching_sha2_login(port, b"nopw", b"", Some(answer.clone()));
        assert_eq!(got[0], vec![0x01, 0x03], "{answer:?}: {got:?}");
        assert_eq!(got[1][0], 0x00);
    }
}
