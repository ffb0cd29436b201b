//! `users[].allowed_hosts`: where each user may log in from, as a MySQL
//! account's host part (`app@'10.%'`) says, over TCP and Funnel's Unix
//! socket, at login and at `COM_CHANGE_USER`.

use std::path::Path;

use funnel_config::Config;
use funnel_testkit::MariaDb;
use mysql::prelude::Queryable;
use mysql::{Conn, OptsBuilder};

/// Creates the backend account `allowed_b` on the shared server, once per
/// test process: under `cargo test` the tests of this file share one
/// server, and a second `CREATE USER` failed (1396).
fn backend_user(db: &MariaDb) {
    static CREATED: std::sync::Once = std::sync::Once::new();
    CREATED.call_once(|| db.create_user("allowed_b", "bpw"));
}

/// Funnel in front of the shared server, listening on TCP (127.0.0.1) and
/// on `socket`, with the users `users_yaml` lists (password `pw` each).
fn config(db: &MariaDb, schema: &str, socket: &Path, users_yaml: &str) -> Config {
    let yaml = format!(
        "listen: 127.0.0.1:0\ncores: 1\nlisten_socket: {}\nusers:\n{users_yaml}\
         backends:\n  - name: primary\n    address: {}\n    user: allowed_b\n    password: bpw\n",
        socket.display(),
        db.addr()
    )
    .replace("SCHEMA", schema);
    Config::from_yaml_str(&yaml).unwrap()
}

const USERS: &str = "  - name: anywhere\n    password: pw\n    default_schema: SCHEMA\n\
                     \x20 - name: lan\n    password: pw\n    default_schema: SCHEMA\n    allowed_hosts: [10.0.0.0/8]\n\
                     \x20 - name: loopback\n    password: pw\n    default_schema: SCHEMA\n    allowed_hosts: [10.0.0.0/8, 127.0.0.1]\n\
                     \x20 - name: local\n    password: pw\n    default_schema: SCHEMA\n    allowed_hosts: [localhost]\n";

fn tcp(port: u16, user: &str) -> Result<Conn, mysql::Error> {
    Conn::new(
        OptsBuilder::new()
            .ip_or_hostname(Some("127.0.0.1"))
            .tcp_port(port)
            .prefer_socket(false)
            .user(Some(user))
            .pass(Some("pw")),
    )
}

fn unix(socket: &Path, user: &str) -> Result<Conn, mysql::Error> {
    Conn::new(
        OptsBuilder::new()
            .socket(Some(socket.to_str().unwrap()))
            .user(Some(user))
            .pass(Some("pw")),
    )
}

/// The server's refusal of an account with no entry for the host: 1045,
/// naming the user and the host, as for a wrong password.
fn assert_denied(r: Result<Conn, mysql::Error>, user: &str, host: &str) {
    match r {
        Err(mysql::Error::MySqlError(e)) => {
            assert_eq!(e.code, 1045, "{}", e.message);
            assert_eq!(
                e.message,
                format!("Access denied for user '{user}'@'{host}' (using password: YES)")
            );
        }
        Err(other) => panic!("{user}@{host}: {other:?}"),
        Ok(_) => panic!("{user}@{host} logged in"),
    }
}

#[test]
fn allowed_hosts_admit_only_their_sources_over_tcp_and_the_socket() {
    let db = MariaDb::shared();
    let schema = db.fresh_database("allowed");
    backend_user(db);
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("funnel.sock");
    let proxy = funnel_testkit::funnel::start(config(db, &schema, &socket, USERS));
    let port = proxy.local_addr().port();

    for user in ["anywhere", "loopback"] {
        let mut c = tcp(port, user).unwrap_or_else(|e| panic!("{user} over TCP: {e}"));
        assert_eq!(c.query_first::<i64, _>("SELECT 1").unwrap(), Some(1));
    }
    assert_denied(tcp(port, "lan"), "lan", "127.0.0.1");
    assert_denied(tcp(port, "local"), "local", "127.0.0.1");

    for user in ["anywhere", "local"] {
        let mut c = unix(&socket, user).unwrap_or_else(|e| panic!("{user} over the socket: {e}"));
        assert_eq!(c.query_first::<i64, _>("SELECT 1").unwrap(), Some(1));
    }
    assert_denied(unix(&socket, "loopback"), "loopback", "localhost");

    // A change of user is checked as a login is.
    let mut c = tcp(port, "anywhere").unwrap();
    let to = |user: &str| {
        mysql::ChangeUserOpts::default()
            .with_user(Some(user.into()))
            .with_pass(Some("pw".into()))
    };
    let err = c.change_user(to("lan")).unwrap_err();
    assert!(
        matches!(&err, mysql::Error::MySqlError(e) if e.code == 1045),
        "{err:?}"
    );
    let mut c = tcp(port, "anywhere").unwrap();
    c.change_user(to("loopback")).unwrap();
    assert_eq!(c.query_first::<i64, _>("SELECT 1").unwrap(), Some(1));

    // Users are live: a reload lets `lan` in from loopback too.
    let widened = USERS.replace(
        "allowed_hosts: [10.0.0.0/8]\n",
        "allowed_hosts: [10.0.0.0/8, 127.0.0.0/8]\n",
    );
    proxy
        .handle()
        .reload(config(db, &schema, &socket, &widened))
        .unwrap();
    let mut c = tcp(port, "lan").expect("lan from loopback after the reload");
    assert_eq!(c.query_first::<i64, _>("SELECT 1").unwrap(), Some(1));
}

#[test]
fn allowed_hosts_that_cannot_be_read_are_refused_with_their_place() {
    let base = "listen: 127.0.0.1:0\nusers:\n  - name: app\n    password: pw\n    allowed_hosts: HOSTS\n\
                backends:\n  - name: primary\n    address: 127.0.0.1:3306\n    user: b\n    password: c\n";
    let e = Config::from_yaml_str(&base.replace("HOSTS", "[]"))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("users[0].allowed_hosts") && e.contains("at least one host"),
        "{e}"
    );
    let e = Config::from_yaml_str(&base.replace("HOSTS", "[10.0.0.0/33]"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("prefix length must be 0 to 32"), "{e}");
    assert!(e.contains("line 5"), "the place in the file: {e}");
    let e = Config::from_yaml_str(&base.replace("HOSTS", "['10.%']"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("is not localhost, an IP address or a network"), "{e}");
}

/// An IPv4 client of an IPv6 listener (`[::]`) is named by its IPv4
/// address, as MariaDB names it: in the refusal (`'lan'@'127.0.0.1'`, not
/// `'lan'@'::ffff:127.0.0.1'`) as in the patterns it is matched against.
#[test]
fn allowed_hosts_name_an_ipv4_client_of_an_ipv6_listener_by_its_ipv4_address() {
    let db = MariaDb::shared();
    let schema = db.fresh_database("allowed_v6");
    backend_user(db);
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("funnel.sock");
    let mut cfg = config(db, &schema, &socket, USERS);
    cfg.listen = "[::]:0".parse().unwrap();
    let proxy = funnel_testkit::funnel::start(cfg);
    let port = proxy.local_addr().port();
    assert_denied(tcp(port, "lan"), "lan", "127.0.0.1");
    let mut c = tcp(port, "loopback").expect("127.0.0.1 is one of loopback's hosts");
    assert_eq!(c.query_first::<i64, _>("SELECT 1").unwrap(), Some(1));
}
