//! TLS toward backends: a MariaDB whose Funnel account requires TLS
//! (`REQUIRE SSL`), with a certificate from a throwaway CA.
//! `required` encrypts without checking, `verify_ca` checks the chain,
//! `verify_identity` the chain and the name; a wrong CA or name keeps
//! Funnel from logging in, and the client hears about it.

use std::time::Duration;

use funnel_config::Config;
use funnel_testkit::certs::{make_ca, make_server_cert};
use funnel_testkit::MariaDb;
use mysql::prelude::Queryable;
use mysql::{Conn, OptsBuilder};

/// User `app` logged in to `proxy`, or the error as text.
fn app_client(proxy: &funnel_engine::Proxy) -> Result<Conn, String> {
    let opts = OptsBuilder::new()
        .ip_or_hostname(Some("127.0.0.1"))
        .tcp_port(proxy.local_addr().port())
        .user(Some("app"))
        .pass(Some("pw"))
        .prefer_socket(false)
        .read_timeout(Some(Duration::from_secs(20)));
    Conn::new(opts).map_err(|e| e.to_string())
}

/// Runs one query through a Funnel whose backend has `tls_yaml`; the
/// backend's `Ssl_cipher` on success.
fn through_funnel(db: &MariaDb, backend_user: &str, tls_yaml: &str) -> Result<String, String> {
    let yaml = format!(
        "listen: 127.0.0.1:0\ncores: 1\n\
         users:\n  - name: app\n    password: pw\n\
         backends:\n  - name: primary\n    address: {}\n    user: {backend_user}\n    password: bpw\n{tls_yaml}\
         pool:\n  min_idle_per_core: 0\n  connect_timeout: 2s\n\
         backlog:\n  wait_timeout: 3s\n",
        db.addr()
    );
    let config = Config::from_yaml_str(&yaml).map_err(|e| e.to_string())?;
    let proxy = funnel_engine::Proxy::start(config).map_err(|e| e.to_string())?;
    let mut c = app_client(&proxy)?;
    let cipher: Option<(String, String)> = c
        .query_first("SHOW SESSION STATUS LIKE 'Ssl_cipher'")
        .map_err(|e| e.to_string())?;
    Ok(cipher.map(|(_, v)| v).unwrap_or_default())
}

/// A private MariaDB serving TLS with a certificate of CA `ca` (made in
/// `d`, beside another CA, `other-ca`), with backend account `tlsb`.
fn tls_server(d: &std::path::Path) -> MariaDb {
    make_ca(d, "ca");
    make_ca(d, "other-ca");
    make_server_cert(d, "ca");
    let db = MariaDb::builder()
        .server_arg(format!("--ssl-ca={}", d.join("ca.pem").display()))
        .server_arg(format!("--ssl-cert={}", d.join("server.pem").display()))
        .server_arg(format!("--ssl-key={}", d.join("server.key").display()))
        .start()
        .expect("a MariaDB with TLS");
    db.create_user("tlsb", "bpw");
    db
}

#[test]
fn backends_over_tls_with_each_verification_mode() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let db = tls_server(d);
    db.root().query_drop("ALTER USER tlsb REQUIRE SSL").unwrap();
    let ca = d.join("ca.pem").display().to_string();
    let other = d.join("other-ca.pem").display().to_string();

    // The account refuses plaintext, so a plain backend never logs in.
    let plain = through_funnel(&db, "tlsb", "");
    assert!(
        plain.is_err_and(|e| e.contains("1045")),
        "plaintext login should fail"
    );

    let ok = |tls: String| {
        let cipher = through_funnel(&db, "tlsb", &tls).unwrap_or_else(|e| panic!("{tls}: {e}"));
        assert!(!cipher.is_empty(), "{tls}: backend session not encrypted");
    };
    ok("    tls:\n      mode: required\n".into());
    ok(format!("    tls:\n      mode: verify_ca\n      ca: {ca}\n"));
    // verify_ca forgives a name the certificate does not carry.
    ok(format!(
        "    tls:\n      mode: verify_ca\n      ca: {ca}\n      server_name: db.elsewhere\n"
    ));
    // verify_identity: 127.0.0.1 is in the certificate's names, so is localhost.
    ok(format!("    tls:\n      mode: verify_identity\n      ca: {ca}\n"));
    ok(format!(
        "    tls:\n      mode: verify_identity\n      ca: {ca}\n      server_name: localhost\n"
    ));

    // Refused: a name the certificate lacks, or a chain from another CA.
    let bad_name = through_funnel(
        &db,
        "tlsb",
        &format!("    tls:\n      mode: verify_identity\n      ca: {ca}\n      server_name: db.elsewhere\n"),
    );
    let bad_name = bad_name.expect_err("wrong name accepted");
    assert!(
        bad_name.contains("9003") && bad_name.contains("not valid for name"),
        "{bad_name}"
    );
    let bad_ca = through_funnel(
        &db,
        "tlsb",
        &format!("    tls:\n      mode: verify_ca\n      ca: {other}\n"),
    );
    let bad_ca = bad_ca.expect_err("wrong CA accepted");
    assert!(
        bad_ca.contains("9003") && bad_ca.contains("certificate"),
        "{bad_ca}"
    );

    // A missing CA file stops the start with the backend's name in the message.
    let missing = through_funnel(
        &db,
        "tlsb",
        "    tls:\n      mode: verify_ca\n      ca: /nonexistent/ca.pem\n",
    )
    .unwrap_err();
    assert!(
        missing.contains("primary") && missing.contains("ca.pem"),
        "{missing}"
    );
}

/// Rotating a backend's password: after the reload, connections are opened
/// with the new one (the old pool drains), even once every old connection
/// is gone.
#[test]
fn backend_password_rotation_takes_effect_on_reload() {
    let db = MariaDb::shared();
    let schema = db.fresh_database("rotate");
    let backend = format!("{schema}_b");
    db.create_user(&backend, "old");
    let yaml = |pw: &str| {
        format!(
            "listen: 127.0.0.1:0\ncores: 1\n\
             users:\n  - name: app\n    password: pw\n    default_schema: {schema}\n\
             backends:\n  - name: primary\n    address: {}\n    user: {backend}\n    password: {pw}\n\
             pool:\n  min_idle_per_core: 0\n",
            db.addr()
        )
    };
    let mut proxy = funnel_testkit::funnel::start(Config::from_yaml_str(&yaml("old")).unwrap());
    let opts = OptsBuilder::new()
        .ip_or_hostname(Some("127.0.0.1"))
        .tcp_port(proxy.local_addr().port())
        .user(Some("app"))
        .pass(Some("pw"))
        .prefer_socket(false);
    let mut c = Conn::new(opts.clone()).unwrap();
    assert_eq!(c.query_first::<i64, _>("SELECT 1").unwrap(), Some(1));

    let mut root = db.root();
    root.query_drop(format!("ALTER USER '{backend}'@'%' IDENTIFIED BY 'new'"))
        .unwrap();
    proxy
        .reload(Config::from_yaml_str(&yaml("new")).unwrap())
        .unwrap();
    // Shards apply a reload on their next control poll (every 20 ms).
    std::thread::sleep(Duration::from_millis(300));
    // Every connection opened with the old password goes away.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let ids: Vec<u64> = root
            .query(format!(
                "SELECT id FROM information_schema.processlist WHERE user = '{backend}'"
            ))
            .unwrap();
        if ids.is_empty() {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "connections outlive KILL");
        for id in ids {
            let _ = root.query_drop(format!("KILL {id}"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut fresh = Conn::new(opts).unwrap();
    assert_eq!(fresh.query_first::<i64, _>("SELECT 2").unwrap(), Some(2));
}

/// A backend's CA bundle rotated in place (the same file name, new
/// contents) is read at the reload: new backend connections check the
/// server against the new bundle (the old pool drains). Before, the pool
/// kept the bundle read when it was made until the path changed.
#[test]
fn backend_ca_rotated_in_place_takes_effect_on_reload() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let db = tls_server(d);
    let bundle = d.join("bundle.pem");
    std::fs::copy(d.join("other-ca.pem"), &bundle).unwrap();
    let yaml = format!(
        "listen: 127.0.0.1:0\ncores: 1\n\
         users:\n  - name: app\n    password: pw\n\
         backends:\n  - name: primary\n    address: {}\n    user: tlsb\n    password: bpw\n\
         \x20   tls:\n      mode: verify_ca\n      ca: {}\n\
         pool:\n  min_idle_per_core: 0\n  connect_timeout: 2s\n\
         backlog:\n  wait_timeout: 3s\n",
        db.addr(),
        bundle.display()
    );
    let config = Config::from_yaml_str(&yaml).unwrap();
    let proxy = funnel_engine::Proxy::start(config.clone()).unwrap();
    let query = || -> Result<i64, String> {
        let mut c = app_client(&proxy)?;
        c.query_first::<i64, _>("SELECT 1")
            .map_err(|e| e.to_string())
            .map(|v| v.unwrap_or_default())
    };
    let refused = query().expect_err("a server from another CA");
    assert!(refused.contains("9003"), "{refused}");
    std::fs::copy(d.join("ca.pem"), &bundle).unwrap();
    let not_applied = proxy.handle().reload(config.clone()).unwrap();
    assert!(not_applied.is_empty(), "{not_applied:?}");
    assert_eq!(query(), Ok(1), "the rotated bundle is used");
    // A bundle gone missing mid-rotation refuses the reload, naming the
    // backend and the file; the running pool goes on with what it read.
    std::fs::remove_file(&bundle).unwrap();
    let err = proxy.handle().reload(config).unwrap_err().to_string();
    assert!(err.contains("primary") && err.contains("bundle.pem"), "{err}");
    assert_eq!(query(), Ok(1), "the running pool stays");
    // An admin `SET` (`ProxyHandle::update`) keeps the TLS the pools were
    // made with rather than read the file again: it applies, and the pool
    // stays. Before, the missing bundle refused every admin change.
    let set = proxy.handle().update(|mut cfg| {
        cfg.pool.max_per_core = 3;
        Ok::<_, ()>(cfg)
    });
    assert!(matches!(set, Ok(Ok(_))), "{set:?}");
    assert_eq!(proxy.handle().config().pool.max_per_core, 3);
    assert_eq!(query(), Ok(1), "the running pool stays");
}
