//! Clients that reach Funnel through its Unix socket (`listen_socket`), as
//! `mysql -S` and local applications do.

use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};

use std::time::Duration;

use funnel_config::{Config, Cores};
use funnel_engine::{Proxy, StartError};
use funnel_testkit::cli::Cli;
use funnel_testkit::MariaDb;
use mysql::prelude::Queryable;
use mysql::{Conn, OptsBuilder};

fn server() -> MariaDb {
    let db = MariaDb::start();
    db.create_user("backend", "bpw");
    db.exec("CREATE DATABASE app");
    db.exec("CREATE TABLE app.t (id INT PRIMARY KEY, v VARCHAR(20))");
    db
}

fn config(db: &MariaDb, socket: &Path, cores: usize) -> Config {
    let mut cfg = funnel_testkit::funnel::config(
        db,
        ("app", "pw"),
        ("backend", "bpw"),
        Some("app"),
        "pool:\n  max_per_core: 4\n",
    );
    cfg.cores = Cores::Count(cores);
    cfg.listen_socket = Some(socket.to_path_buf());
    cfg
}

fn socket_client(socket: &Path, password: &str) -> Result<Conn, mysql::Error> {
    let opts = OptsBuilder::new()
        .socket(Some(socket.to_str().unwrap()))
        .user(Some("app"))
        .pass(Some(password))
        .db_name(Some("app"))
        .read_timeout(Some(Duration::from_secs(20)));
    Conn::new(opts)
}

fn is_socket(p: &Path) -> bool {
    std::fs::symlink_metadata(p).is_ok_and(|m| m.file_type().is_socket())
}

#[test]
fn client_unix_socket_serves_drivers_and_the_cli_on_every_core() {
    let db = server();
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("funnel.sock");
    let proxy = funnel_testkit::funnel::start(config(&db, &socket, 2));
    assert!(is_socket(&socket));

    // A driver over the socket: queries, a transaction, a prepared statement.
    let mut c = socket_client(&socket, "pw").expect("logs in over the socket");
    c.query_drop("BEGIN").unwrap();
    c.query_drop("INSERT INTO t VALUES (1, 'gone')").unwrap();
    c.query_drop("ROLLBACK").unwrap();
    c.query_drop("INSERT INTO t VALUES (2, 'kept')").unwrap();
    let stmt = c.prep("SELECT v FROM t WHERE id = ?").unwrap();
    let kept: Option<String> = c.exec_first(&stmt, (2,)).unwrap();
    let gone: Option<String> = c.exec_first(&stmt, (1,)).unwrap();
    assert_eq!((kept.as_deref(), gone), (Some("kept"), None));
    let on_server: i64 = db.query_first("SELECT COUNT(*) FROM app.t").unwrap();
    assert_eq!(on_server, 1);

    // A wrong password is refused as from localhost, and nothing else breaks.
    let denied = socket_client(&socket, "nope").expect_err("wrong password refused");
    match denied {
        mysql::Error::MySqlError(e) => {
            assert_eq!(e.code, 1045, "{e:?}");
            assert!(e.message.contains("'app'@'localhost'"), "{}", e.message);
        }
        other => panic!("expected ERR 1045, got {other:?}"),
    }
    let one: i64 = c.query_first("SELECT 1").unwrap().unwrap();
    assert_eq!(one, 1);

    // The mariadb command-line client, as `mysql -S` users run it.
    let out = Cli::socket(&socket, "app", "pw")
        .arg("app")
        .run("SELECT v FROM t WHERE id = 2");
    assert!(out.success, "{}", out.stderr);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "kept");

    // Many local clients at once: both cores accept on the one socket, and
    // every client is served and listed as from localhost.
    let clients: Vec<Conn> = (0..64)
        .map(|_| socket_client(&socket, "pw").expect("connects"))
        .collect();
    let snaps = proxy.snapshots();
    let per_core: Vec<u64> = snaps.iter().map(|s| s.clients_active).collect();
    assert_eq!(per_core.iter().sum::<u64>(), 65, "{per_core:?}");
    assert!(
        per_core.iter().all(|&n| n > 0),
        "one core took every client: {per_core:?}"
    );
    assert!(snaps
        .iter()
        .flat_map(|s| &s.clients)
        .all(|c| c.peer == "localhost"));
    let threads: Vec<_> = clients
        .into_iter()
        .enumerate()
        .map(|(i, mut c)| {
            std::thread::spawn(move || {
                for _ in 0..20 {
                    let v: i64 = c.query_first(format!("SELECT {i}")).unwrap().unwrap();
                    assert_eq!(v, i as i64);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }

    // TCP keeps working beside the socket.
    let tcp_opts = OptsBuilder::new()
        .ip_or_hostname(Some("127.0.0.1"))
        .tcp_port(proxy.local_addr().port())
        .user(Some("app"))
        .pass(Some("pw"))
        .prefer_socket(false);
    let mut tcp = Conn::new(tcp_opts).unwrap();
    assert_eq!(tcp.query_first::<i64, _>("SELECT 7").unwrap(), Some(7));

    // Once Funnel stops accepting (a graceful stop's first step), the file
    // is gone at once: new local clients are refused, connected ones go on.
    proxy.handle().stop_accepting();
    assert!(!socket.exists(), "the socket file outlived accepting");
    assert!(socket_client(&socket, "pw").is_err());
    assert_eq!(c.query_first::<i64, _>("SELECT 8").unwrap(), Some(8));
    drop((c, tcp));
    proxy.shutdown();
    assert!(!socket.exists());
}

#[test]
fn client_unix_socket_replaces_a_stale_file_and_refuses_a_live_one() {
    let db = server();
    let dir = tempfile::tempdir().unwrap();
    let socket: PathBuf = dir.path().join("funnel.sock");
    // Left by a Funnel that crashed: the file exists, nobody listens.
    drop(std::os::unix::net::UnixListener::bind(&socket).unwrap());
    assert!(is_socket(&socket));
    let first = funnel_testkit::funnel::start(config(&db, &socket, 1));
    let mut c = socket_client(&socket, "pw").expect("the stale file was replaced");
    assert_eq!(c.query_first::<i64, _>("SELECT 1").unwrap(), Some(1));

    // A second instance on the same socket is refused, names the path, and
    // does not take the socket from the first.
    let err = match Proxy::start(config(&db, &socket, 1)) {
        Err(e) => e,
        Ok(_) => panic!("a second Funnel started on a live socket"),
    };
    assert!(matches!(err, StartError::BindUnix { .. }), "{err}");
    let message = err.to_string();
    assert!(message.contains(&socket.display().to_string()), "{message}");
    assert!(message.contains("another process is listening"), "{message}");
    assert_eq!(c.query_first::<i64, _>("SELECT 2").unwrap(), Some(2));
    assert!(socket_client(&socket, "pw").is_ok());

    // A path that is not a socket is never removed.
    let file = dir.path().join("notes.txt");
    std::fs::write(&file, "keep me").unwrap();
    let err = match Proxy::start(config(&db, &file, 1)) {
        Err(e) => e.to_string(),
        Ok(_) => panic!("Funnel started on a regular file"),
    };
    assert!(err.contains("not a socket"), "{err}");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "keep me");

    drop(c);
    first.shutdown();
    assert!(!socket.exists());
}
