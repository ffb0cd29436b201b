//! Throwaway certificates for TLS tests, made with the `openssl` command.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Runs `openssl args...` in `dir`; panics with its stderr on failure.
pub fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("openssl is missing: apt-get install -y openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA named `name` in `dir` (`{name}.pem`, `{name}.key`).
pub fn make_ca(dir: &Path, name: &str) {
    self_signed_as(
        dir,
        name,
        &format!("{name}.key"),
        &format!("{name}.pem"),
        &[
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ],
    );
}

/// A server certificate for 127.0.0.1 and localhost, signed by `ca`.
pub fn make_server_cert(dir: &Path, ca: &str) {
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n\
         keyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=localhost",
        ],
    );
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            &format!("{ca}.pem"),
            "-CAkey",
            &format!("{ca}.key"),
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "2",
            "-extfile",
            "ext.cnf",
        ],
    );
}

/// A self-signed certificate for `cn` in `dir`: `(cert.pem, key.pem)` paths.
pub fn self_signed(dir: &Path, cn: &str) -> (PathBuf, PathBuf) {
    self_signed_as(dir, cn, "key.pem", "cert.pem", &[]);
    (dir.join("cert.pem"), dir.join("key.pem"))
}

/// A self-signed certificate for `cn`, valid two days, into `key` and
/// `cert` in `dir`, with `extra` arguments for `openssl req`.
fn self_signed_as(dir: &Path, cn: &str, key: &str, cert: &str, extra: &[&str]) {
    let subject = format!("/CN={cn}");
    let mut args = vec![
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", &subject, "-keyout", key,
        "-out", cert,
    ];
    args.extend_from_slice(extra);
    openssl(dir, &args);
}
