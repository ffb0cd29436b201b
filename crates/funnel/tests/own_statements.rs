//! Funnel's own statements on a backend connection (the session sync
//! before a command, re-prepares, read-backs after it, diagnostics and
//! named-lock checks, statement cleanup) against a backend that stops
//! answering: a frozen server (SIGSTOP) or a connection that swallows
//! everything from a given statement on. Each must give its client an ERR
//! within its deadline (`pool.connect_timeout`, or `pool.query_timeout` for
//! prepares and for writing a client's command), never a hang, and leave
//! the pool's one slot usable.
//!
//! Clients read with a deadline of [`HANG`]: a statement without its own
//! deadline shows up as a read timeout, not as a test that never ends.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use funnel_config::Config;
use funnel_engine::Proxy;
use funnel_protocol::tracker::Expect;
use funnel_protocol::Capabilities;
use funnel_testkit::mini_client::{MiniClient, MiniError};
use funnel_testkit::MariaDb;
use mysql::prelude::Queryable;
use mysql::{Conn, OptsBuilder};

/// How long a client waits for a reply before the test calls it a hang.
const HANG: Duration = Duration::from_secs(8);

/// The ERR must come within the deadline (1 s) and some slack for a busy
/// 2-CPU box. Still well short of [`HANG`], so a hang cannot pass for a
/// prompt answer.
const PROMPT: Duration = Duration::from_secs(6);

/// A server with the backend account and database `own`.
fn server() -> MariaDb {
    let db = MariaDb::start();
    db.create_user("own_b", "bpw");
    db.create_database("own");
    db
}

/// Funnel with one backend connection per core at `backend`, deadlines of
/// one second, and a health monitor that looks too rarely to notice a
/// frozen server (it would mark it down, and commands fail fast then).
fn start(backend: SocketAddr, query_timeout: &str) -> Proxy {
    let yaml = format!(
        "listen: 127.0.0.1:0\ncores: 1\n\
         users:\n  - name: app\n    password: apppw\n\
         backends:\n  - name: primary\n    address: {backend}\n    user: own_b\n    password: bpw\n\
         pool:\n  max_per_core: 1\n  min_idle_per_core: 0\n  connect_timeout: 1s\n  query_timeout: {query_timeout}\n\
         backlog:\n  wait_timeout: 10s\n\
         monitor:\n  interval: 60s\n  timeout: 20s\n"
    );
    let proxy = funnel_testkit::funnel::start(Config::from_yaml_str(&yaml).unwrap());
    // Writes (a prepare too) wait for the backend's first health check: one
    // still running when a test pauses the server would fail, and with no
    // other for 60 s the command would wait out the backlog instead of
    // meeting the timeout under test (a loaded machine, 1 run in 4).
    funnel_testkit::wait_until_within("the first health check", Duration::from_secs(30), || {
        proxy.snapshots()[0]
            .pools
            .iter()
            .all(|p| p.last_check.is_some() && p.healthy)
    });
    proxy
}

fn opts(p: &Proxy) -> OptsBuilder {
    funnel_testkit::client_opts(p.local_addr().port(), "app", "apppw").read_timeout(Some(HANG))
}

fn client(p: &Proxy) -> Conn {
    Conn::new(opts(p)).unwrap()
}

/// A raw client (prepared statements, `COM_SET_OPTION`), logged in to `own`.
fn raw(p: &Proxy, extra: Capabilities) -> MiniClient {
    let c = MiniClient::connect_with(p.local_addr(), "app", "apppw", Some("own"), extra).unwrap();
    c.try_clone_stream()
        .unwrap()
        .set_read_timeout(Some(HANG))
        .unwrap();
    c
}

/// The server error `r` ended in; panics on success or on anything else
/// (a read timeout: the hang this file is about).
fn code<T: std::fmt::Debug>(r: mysql::Result<T>) -> u16 {
    match r {
        Err(mysql::Error::MySqlError(e)) => e.code,
        other => panic!("expected a server error, got {other:?}"),
    }
}

fn raw_code<T: std::fmt::Debug>(r: Result<T, MiniError>) -> u16 {
    match r {
        Err(MiniError::Server(e)) => e.code,
        other => panic!("expected a server error, got {other:?}"),
    }
}

/// Runs `f`, checking it ended within [`PROMPT`].
fn promptly<T>(f: impl FnOnce() -> T) -> T {
    let started = Instant::now();
    let out = f();
    let took = started.elapsed();
    assert!(took < PROMPT, "the error took {took:?}");
    out
}

/// Retries `f` until it succeeds (the pool recovering), within 15 s.
fn eventually<T>(f: impl FnMut() -> mysql::Result<T>) -> T {
    funnel_testkit::eventually(Duration::from_secs(15), f)
}

/// After the server answers again: a fresh client is served, so the one
/// slot of the pool is free again.
fn pool_serves(p: &Proxy) {
    let mut fresh = client(p);
    assert_eq!(eventually(|| fresh.query_first::<i64, _>("SELECT 42")), Some(42));
}

fn prepare(c: &mut MiniClient, sql: &str) -> u32 {
    let mut p = vec![0x16];
    p.extend_from_slice(sql.as_bytes());
    let packets = c.roundtrip(&p, Expect::Prepare).unwrap();
    assert_ne!(packets[0].first(), Some(&0xff), "prepare refused");
    u32::from_le_bytes(packets[0][1..5].try_into().unwrap())
}

/// Executes statement `id` with one BIGINT parameter.
fn execute(c: &mut MiniClient, id: u32, v: i64) -> Result<Vec<Vec<u8>>, MiniError> {
    let mut p = vec![0x17];
    p.extend_from_slice(&id.to_le_bytes());
    p.push(0);
    p.extend_from_slice(&1u32.to_le_bytes());
    p.extend_from_slice(&[0, 1, 8, 0]);
    p.extend_from_slice(&v.to_le_bytes());
    let packets = c.roundtrip(&p, Expect::Results)?;
    match packets.first() {
        Some(err) if err.first() == Some(&0xff) => Err(MiniError::Server(
            funnel_protocol::response::ErrPacket::parse(err).unwrap(),
        )),
        _ => Ok(packets),
    }
}

/// Before a command, the connection gets the client's schema
/// (`COM_INIT_DB`): a frozen backend gives ERR 9007, the command is not
/// run, and a command waiting in the backlog behind that connection gets
/// one once the backend answers again.
#[test]
fn own_statements_schema_sync_is_bounded() {
    let db = server();
    db.create_database("own2");
    let proxy = start(db.addr(), "0s");
    let mut a = Conn::new(opts(&proxy).db_name(Some("own"))).unwrap();
    let mut w = client(&proxy);
    let mut b = client(&proxy);
    // The pool's one connection now has another schema than a's.
    w.query_drop("USE own2").unwrap();
    db.pause();
    let waiter = thread::spawn(move || {
        thread::sleep(Duration::from_millis(300));
        let r = b.query_first::<i64, _>("SELECT 3");
        (b, r)
    });
    let err = promptly(|| code(a.query_drop("CREATE TABLE own.never (x INT)")));
    db.resume();
    assert_eq!(err, 9007);
    let (_, waited) = waiter.join().unwrap();
    assert_eq!(waited.unwrap(), Some(3), "the waiter gets a connection");
    let tables: Option<i64> = db.query_first(
        "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = 'own' AND TABLE_NAME = 'never'",
    );
    assert_eq!(tables, Some(0), "the command was not sent");
    assert_eq!(
        eventually(|| a.query_first::<String, _>("SELECT DATABASE()")),
        Some("own".to_string())
    );
    pool_serves(&proxy);
}

/// Before a command, the connection gets the client's variables (one
/// `SET`): a frozen backend gives ERR 9007, and the session keeps them.
#[test]
fn own_statements_variable_sync_is_bounded() {
    let db = server();
    let proxy = start(db.addr(), "0s");
    let mut a = client(&proxy);
    let mut w = client(&proxy);
    a.query_drop("SET time_zone = '+05:00'").unwrap();
    // w's command puts the connection back to the default time zone.
    w.query_drop("SELECT 1").unwrap();
    db.pause();
    let err = promptly(|| code(a.query_drop("SELECT 1")));
    db.resume();
    assert_eq!(err, 9007);
    assert_eq!(
        eventually(|| a.query_first::<String, _>("SELECT @@time_zone")),
        Some("+05:00".to_string())
    );
    pool_serves(&proxy);
}

/// Before a command, the connection gets the client's multi-statement
/// option (`COM_SET_OPTION`): a frozen backend gives ERR 9007.
#[test]
fn own_statements_multi_statement_option_sync_is_bounded() {
    let db = server();
    let proxy = start(db.addr(), "0s");
    let multi = Capabilities(Capabilities::CLIENT_MULTI_STATEMENTS.0);
    let mut a = raw(&proxy, multi);
    let mut w = raw(&proxy, multi);
    // MYSQL_OPTION_MULTI_STATEMENTS_OFF
    a.roundtrip(&[0x1b, 1, 0], Expect::Status).unwrap();
    // w's command turns it back on on the connection.
    w.query("SELECT 1").unwrap();
    db.pause();
    let err = promptly(|| raw_code(a.query("SELECT 1")));
    db.resume();
    assert_eq!(err, 9007);
    pool_serves(&proxy);
}

/// Before an execute that reads `LAST_INSERT_ID()`, the connection gets
/// the client's own (`DO LAST_INSERT_ID(n)`): a frozen backend gives ERR 9007.
#[test]
fn own_statements_last_insert_id_sync_is_bounded() {
    let db = server();
    let proxy = start(db.addr(), "0s");
    let mut a = client(&proxy);
    let stmt = a.prep("SELECT LAST_INSERT_ID()").unwrap();
    assert_eq!(a.exec_first::<u64, _, _>(&stmt, ()).unwrap(), Some(0));
    db.pause();
    let err = promptly(|| code(a.exec_first::<u64, _, _>(&stmt, ())));
    db.resume();
    assert_eq!(err, 9007);
    assert_eq!(eventually(|| a.exec_first::<u64, _, _>(&stmt, ())), Some(0));
    pool_serves(&proxy);
}

/// Before `SHOW WARNINGS` on a connection another client left warnings
/// on, Funnel clears them with a statement of its own: a frozen backend
/// gives ERR 9007.
#[test]
fn own_statements_clearing_diagnostics_is_bounded() {
    let db = server();
    let proxy = start(db.addr(), "0s");
    let mut a = client(&proxy);
    let mut b = client(&proxy);
    a.query_drop("SELECT CAST('x' AS SIGNED)").unwrap();
    // a's connection lingers for its SHOW WARNINGS (200 ms), then goes.
    thread::sleep(Duration::from_millis(600));
    db.pause();
    let err = promptly(|| code(b.query_drop("SHOW WARNINGS")));
    db.resume();
    assert_eq!(err, 9007);
    assert_eq!(eventually(|| b.query_first::<i64, _>("SELECT 1")), Some(1));
    pool_serves(&proxy);
}

/// A statement the connection does not have yet is prepared there before
/// its execute: part of the client's command, so `pool.query_timeout`
/// bounds it (ERR 1969).
#[test]
fn own_statements_reprepare_is_bounded_by_the_query_timeout() {
    let db = server();
    let proxy = start(db.addr(), "1s");
    let mut a = raw(&proxy, Capabilities::EMPTY);
    let first = prepare(&mut a, "SELECT ? + 1");
    // The same text again: a second server statement, prepared at its first execute.
    let second = prepare(&mut a, "SELECT ? + 1");
    db.pause();
    let err = promptly(|| raw_code(execute(&mut a, second, 1)));
    db.resume();
    assert_eq!(err, 1969);
    assert!(execute(&mut a, second, 1).is_ok());
    assert!(execute(&mut a, first, 1).is_ok());
    pool_serves(&proxy);
}

/// The same inside a transaction: the transaction is lost with the
/// connection, as when a backend dies (9008 until ROLLBACK).
#[test]
fn own_statements_reprepare_in_a_transaction_loses_it() {
    let db = server();
    db.exec("CREATE TABLE own.t (id INT PRIMARY KEY) ENGINE=InnoDB");
    let proxy = start(db.addr(), "1s");
    let mut a = raw(&proxy, Capabilities::EMPTY);
    prepare(&mut a, "SELECT ? + 1");
    let second = prepare(&mut a, "SELECT ? + 1");
    a.query("BEGIN").unwrap();
    a.query("INSERT INTO t VALUES (1)").unwrap();
    db.pause();
    let err = promptly(|| raw_code(execute(&mut a, second, 1)));
    assert_eq!(err, 1969);
    assert_eq!(raw_code(a.query("INSERT INTO t VALUES (2)")), 9008);
    a.query("ROLLBACK").unwrap();
    db.resume();
    let rows: Option<i64> = db.query_first("SELECT COUNT(*) FROM own.t");
    assert_eq!(rows, Some(0), "nothing of the lost transaction");
    pool_serves(&proxy);
}

/// A client's own prepare is bounded by `pool.query_timeout` too.
#[test]
fn own_statements_prepare_is_bounded_by_the_query_timeout() {
    let db = server();
    let proxy = start(db.addr(), "1s");
    let mut a = raw(&proxy, Capabilities::EMPTY);
    a.query("SELECT 1").unwrap();
    db.pause();
    let mut p = vec![0x16];
    p.extend_from_slice(b"SELECT ? * 2");
    let reply = promptly(|| a.roundtrip(&p, Expect::Prepare).unwrap());
    db.resume();
    assert_eq!(reply[0].first(), Some(&0xff));
    assert_eq!(u16::from_le_bytes([reply[0][1], reply[0][2]]), 1969);
    let id = prepare(&mut a, "SELECT ? * 2");
    assert!(execute(&mut a, id, 2).is_ok());
    pool_serves(&proxy);
}

/// Closing a statement that was sent long data resets it on the held
/// connection first (`COM_STMT_RESET`, and the close has no reply): a
/// frozen backend must not hold the client's next command.
#[test]
fn own_statements_long_data_reset_is_bounded() {
    let db = server();
    let proxy = start(db.addr(), "0s");
    let mut a = raw(&proxy, Capabilities::EMPTY);
    let id = prepare(&mut a, "SELECT CONCAT('<', ?, '>')");
    let mut long = vec![0x18];
    long.extend_from_slice(&id.to_le_bytes());
    long.extend_from_slice(&0u16.to_le_bytes());
    long.extend_from_slice(b"zz");
    a.send_command(&long).unwrap();
    db.pause();
    let mut close = vec![0x19];
    close.extend_from_slice(&id.to_le_bytes());
    a.send_command(&close).unwrap();
    // The reset runs out of time after 1 s; the query's own connection
    // cannot open while the server is frozen (another second).
    let err = promptly(|| raw_code(a.query("SELECT 1")));
    db.resume();
    assert!(err == 9003 || err == 9007, "got {err}");
    pool_serves(&proxy);
}

/// A relay in front of `backend` that forwards both ways, until a client
/// (Funnel) sends bytes containing `trigger` while the returned flag is
/// set: from then on that connection goes silent (nothing more reaches the
/// server), as a network black hole, and the flag is cleared.
fn black_hole(backend: SocketAddr, trigger: &'static [u8]) -> (SocketAddr, Arc<AtomicBool>) {
    black_hole_then(backend, backend, trigger)
}

/// [`black_hole`], where connections made once a connection went silent
/// reach `after` instead: an address (a virtual IP) that moved to another
/// server while the old one stopped answering.
fn black_hole_then(
    backend: SocketAddr,
    after: SocketAddr,
    trigger: &'static [u8],
) -> (SocketAddr, Arc<AtomicBool>) {
    let moved = Arc::new(AtomicBool::new(false));
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let armed = Arc::new(AtomicBool::new(false));
    let arming = armed.clone();
    thread::spawn(move || {
        for funnel in listener.incoming() {
            let Ok(mut funnel) = funnel else { continue };
            let to = if moved.load(Ordering::SeqCst) {
                after
            } else {
                backend
            };
            let Ok(mut server) = TcpStream::connect(to) else {
                continue;
            };
            let (mut funnel_w, mut server_r) = (funnel.try_clone().unwrap(), server.try_clone().unwrap());
            thread::spawn(move || {
                let _ = std::io::copy(&mut server_r, &mut funnel_w);
                let _ = funnel_w.shutdown(std::net::Shutdown::Both);
            });
            let armed = arming.clone();
            let moving = moved.clone();
            thread::spawn(move || {
                let mut buf = [0u8; 65536];
                let mut silent = false;
                loop {
                    let n = match funnel.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => n,
                    };
                    if !silent
                        && buf[..n].windows(trigger.len()).any(|w| w == trigger)
                        && armed.swap(false, Ordering::SeqCst)
                    {
                        silent = true;
                        moving.store(true, Ordering::SeqCst);
                    }
                    if !silent && server.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
                let _ = server.shutdown(std::net::Shutdown::Both);
            });
        }
    });
    (addr, armed)
}

/// After a `SET` of computed values, Funnel reads them back: when that
/// gets no answer, the client (which had its OK) gets ERR 9007 for its next
/// command, then the session ends (its variables are unknown).
#[test]
fn own_statements_variable_read_back_is_bounded() {
    let db = server();
    let (relay, armed) = black_hole(db.addr(), b"SELECT @@session.");
    let proxy = start(relay, "0s");
    let mut a = client(&proxy);
    armed.store(true, Ordering::SeqCst);
    a.query_drop("SET sql_mode = REPLACE(@@sql_mode, 'STRICT_TRANS_TABLES', '')")
        .unwrap();
    let err = promptly(|| code(a.query_drop("SELECT 1")));
    assert_eq!(err, 9007);
    assert!(a.query_drop("SELECT 1").is_err(), "the session ended");
    assert!(!armed.load(Ordering::SeqCst), "the read-back was swallowed");
    pool_serves(&proxy);
}

/// After `SELECT SQL_CALC_FOUND_ROWS`, Funnel reads `FOUND_ROWS()`: the same.
#[test]
fn own_statements_found_rows_read_back_is_bounded() {
    let db = server();
    let (relay, armed) = black_hole(db.addr(), b"SELECT FOUND_ROWS()");
    let proxy = start(relay, "0s");
    let mut a = client(&proxy);
    armed.store(true, Ordering::SeqCst);
    let rows: Vec<i64> = a
        .query("SELECT SQL_CALC_FOUND_ROWS seq FROM own.seq_1_to_10 LIMIT 2")
        .unwrap();
    assert_eq!(rows, vec![1, 2]);
    let err = promptly(|| code(a.query_drop("SELECT 1")));
    assert_eq!(err, 9007);
    assert!(!armed.load(Ordering::SeqCst), "the read-back was swallowed");
    pool_serves(&proxy);
}

/// After `RELEASE_LOCK()`, Funnel asks which named locks the connection
/// still holds: the same.
#[test]
fn own_statements_named_lock_check_is_bounded() {
    let db = server();
    let (relay, armed) = black_hole(db.addr(), b"IS_USED_LOCK(");
    let proxy = start(relay, "0s");
    let mut a = client(&proxy);
    assert_eq!(
        a.query_first::<i64, _>("SELECT GET_LOCK('own_l', 0)").unwrap(),
        Some(1)
    );
    armed.store(true, Ordering::SeqCst);
    assert_eq!(
        a.query_first::<i64, _>("SELECT RELEASE_LOCK('own_l')").unwrap(),
        Some(1)
    );
    let err = promptly(|| code(a.query_drop("SELECT 1")));
    assert_eq!(err, 9007);
    assert!(!armed.load(Ordering::SeqCst), "the check was swallowed");
    pool_serves(&proxy);
}

/// A relay in front of `backend` that holds every write from Funnel that
/// contains one of `triggers` for `delay` before passing it on: a server
/// slow to answer some of Funnel's own statements.
fn slow_for(backend: SocketAddr, triggers: &'static [&'static [u8]], delay: Duration) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    thread::spawn(move || {
        for funnel in listener.incoming() {
            let Ok(mut funnel) = funnel else { continue };
            let Ok(mut server) = TcpStream::connect(backend) else {
                continue;
            };
            let (mut funnel_w, mut server_r) = (funnel.try_clone().unwrap(), server.try_clone().unwrap());
            thread::spawn(move || {
                let _ = std::io::copy(&mut server_r, &mut funnel_w);
                let _ = funnel_w.shutdown(std::net::Shutdown::Both);
            });
            thread::spawn(move || {
                let mut buf = [0u8; 65536];
                loop {
                    let n = match funnel.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => n,
                    };
                    let seen = &buf[..n];
                    if triggers.iter().any(|t| seen.windows(t.len()).any(|w| w == *t)) {
                        thread::sleep(delay);
                    }
                    if server.write_all(seen).is_err() {
                        break;
                    }
                }
                let _ = server.shutdown(std::net::Shutdown::Both);
            });
        }
    });
    addr
}

/// What Funnel asks the server after a command (the named-lock check
/// after `RELEASE_LOCK()`, the read-back of a computed `SET`) comes before
/// the end of the client's reply, as the work after a client's
/// `COM_RESET_CONNECTION` does: with a server slow to answer it, the
/// client that has its reply finds its session settled in `SHOW CLIENTS`
/// (CI: `user_vars_state_changed_beside_a_named_lock_outlives_its_release`
/// read `named_lock` there right after the release), and another client
/// gets the pool's one connection at once, not after the check.
#[test]
fn own_statements_after_a_command_are_done_before_its_reply_ends() {
    const SLOW: Duration = Duration::from_millis(1500);
    let db = MariaDb::shared();
    let schema = db.fresh_database("own_settle");
    let backend_user = format!("{schema}_b");
    db.create_user(&backend_user, "bpw");
    let relay = slow_for(db.addr(), &[b"IS_USED_LOCK(", b"SELECT @@session."], SLOW);
    let yaml = format!(
        "listen: 127.0.0.1:0\ncores: 1\n\
         users:\n  - name: app\n    password: apppw\n\
         backends:\n  - name: primary\n    address: {relay}\n    user: {backend_user}\n    password: bpw\n\
         pool:\n  max_per_core: 1\n  min_idle_per_core: 0\n\
         backlog:\n  wait_timeout: 1s\n\
         admin:\n  listen: 127.0.0.1:0\n  user: admin\n  password: secret\n"
    );
    let cfg = Config::from_yaml_str(&yaml).unwrap();
    let proxy = funnel_testkit::funnel::start(cfg.clone());
    let listeners = funnel_admin::start(&cfg, proxy.handle(), None).unwrap();
    let admin_port = listeners.admin.as_ref().unwrap().local_addr().port();
    let mut admin = Conn::new(funnel_testkit::client_opts(admin_port, "admin", "secret")).unwrap();
    let mut pins = || -> Vec<Option<String>> {
        let rows: Vec<mysql::Row> = admin.query("SHOW CLIENTS").unwrap();
        rows.iter().map(|r| r.get("pinned").unwrap()).collect()
    };
    let mut a = client(&proxy);
    let mut b = client(&proxy);
    let lock = format!("{schema}_l");
    assert_eq!(
        a.query_first::<i64, _>(format!("SELECT GET_LOCK('{lock}', 0)"))
            .unwrap(),
        Some(1)
    );
    assert!(pins().contains(&Some("named_lock".to_string())));
    let started = Instant::now();
    assert_eq!(
        a.query_first::<i64, _>(format!("SELECT RELEASE_LOCK('{lock}')"))
            .unwrap(),
        Some(1)
    );
    assert_eq!(pins(), [None, None], "A has its reply: its pin ended");
    // B gets the one connection before its 1 s backlog deadline.
    assert_eq!(b.query_first::<i64, _>("SELECT 1").unwrap(), Some(1));
    // The relay did hold the check back.
    assert!(started.elapsed() >= SLOW, "the check was not slowed");

    // The same for a read-back: A's connection is free when A has its OK.
    a.query_drop("SET sql_mode = REPLACE(@@sql_mode, 'STRICT_TRANS_TABLES', '')")
        .unwrap();
    assert_eq!(pins(), [None, None]);
    assert_eq!(b.query_first::<i64, _>("SELECT 2").unwrap(), Some(2));
    assert_eq!(
        a.query_first::<i64, _>("SELECT LOCATE('STRICT_TRANS_TABLES', @@sql_mode)")
            .unwrap(),
        Some(0)
    );
}

/// A client's command that the frozen server's socket cannot take whole
/// (larger than the kernel buffers): writing it is part of the command, so
/// `pool.query_timeout` bounds it as it bounds the reply (ERR 1969).
///
/// Before writing, Funnel scans the 15 MiB text (pinning rules, rewrites):
/// over a second of CPU in a debug build, many on a loaded machine, and
/// not the deadline under test. So the client waits up to [`SCAN`], and
/// the promptness is measured from the moment the write stalls (megabytes
/// queued on their way to the frozen server).
#[test]
fn own_statements_large_command_to_a_frozen_backend_is_bounded_by_the_query_timeout() {
    let db = server();
    let proxy = start(db.addr(), "1s");
    let mut a = Conn::new(opts(&proxy).read_timeout(Some(SCAN))).unwrap();
    a.query_drop("SELECT 1").unwrap();
    let big = format!("SELECT LENGTH('{}')", "x".repeat(15 << 20));
    db.pause();
    let (answered, answer) = std::sync::mpsc::channel();
    let sending = thread::spawn(move || {
        let r = a.query_drop(&big);
        let _ = answered.send(r);
        a
    });
    funnel_testkit::wait_until_within("Funnel writing the command", SCAN, || {
        queued_to_server(db.port()) > STALLED
    });
    let r = answer
        .recv_timeout(PROMPT)
        .expect("no answer within PROMPT of the write stalling");
    db.resume();
    assert_eq!(code(r), 1969);
    let mut a = sending.join().unwrap();
    assert_eq!(eventually(|| a.query_first::<i64, _>("SELECT 1")), Some(1));
    pool_serves(&proxy);
}

/// How long a test waits for Funnel to begin writing a large command or
/// file to the frozen server (it scans a 15 MiB query first): only a bound
/// on a broken test.
const SCAN: Duration = Duration::from_secs(60);

/// More bytes on their way to the server than any small command or ping
/// leaves (a stalled 15 MiB write leaves megabytes).
const STALLED: u64 = 1 << 20;

/// Bytes on their way to the server on `port` over loopback (IPv4, from
/// `/proc/net/tcp`): unsent in its clients' send queues and unread in its
/// receive queues, what a frozen server is being sent.
fn queued_to_server(port: u16) -> u64 {
    let table = std::fs::read_to_string("/proc/net/tcp").expect("/proc/net/tcp");
    let port = format!(":{port:04X}");
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let (local, remote, queues) = (f.get(1)?, f.get(2)?, f.get(4)?);
            let (tx, rx) = queues.split_once(':')?;
            let queued = if remote.ends_with(&port) {
                tx
            } else if local.ends_with(&port) {
                rx
            } else {
                return None;
            };
            u64::from_str_radix(queued, 16).ok()
        })
        .sum()
}

/// A LOCAL INFILE file is part of the client's command: a server that
/// stops reading it (frozen mid-transfer) takes only what the kernel's
/// buffers hold, and `pool.query_timeout` bounds the writes as it bounds
/// the reply. No ERR fits mid-file, so the client's connection closes; the
/// statement is stopped and the pool's slot serves again.
#[test]
fn own_statements_local_infile_to_a_frozen_backend_is_bounded_by_the_query_timeout() {
    let db = server();
    db.exec("SET GLOBAL local_infile = 1");
    db.exec("CREATE TABLE own.li (v VARCHAR(100))");
    let proxy = start(db.addr(), "1s");
    // The server asked for the file; the handler waits until it is frozen.
    let asked = Arc::new(AtomicBool::new(false));
    let frozen = Arc::new(AtomicBool::new(false));
    let (asked_h, frozen_h) = (asked.clone(), frozen.clone());
    let handler = mysql::LocalInfileHandler::new(move |_name, writer| {
        asked_h.store(true, Ordering::SeqCst);
        while !frozen_h.load(Ordering::SeqCst) {
            thread::sleep(Duration::from_millis(10));
        }
        let line = [b'x'; 99];
        for _ in 0..(64 << 20) / 100 {
            writer.write_all(&line)?;
            writer.write_all(b"\n")?;
        }
        Ok(())
    });
    let mut a = Conn::new(
        opts(&proxy)
            .db_name(Some("own"))
            .write_timeout(Some(HANG))
            .local_infile_handler(Some(handler)),
    )
    .unwrap();
    let (ended, end) = std::sync::mpsc::channel();
    let loading = thread::spawn(move || {
        let r = a.query_drop("LOAD DATA LOCAL INFILE 'big.txt' INTO TABLE li");
        let _ = ended.send(r);
    });
    while !asked.load(Ordering::SeqCst) {
        thread::sleep(Duration::from_millis(10));
    }
    db.pause();
    frozen.store(true, Ordering::SeqCst);
    // Timed from the stalled write, as for a large command: getting there
    // (the statement, the server's request, freezing it) is not the deadline.
    funnel_testkit::wait_until_within("Funnel writing the file", SCAN, || {
        queued_to_server(db.port()) > STALLED
    });
    let r = end
        .recv_timeout(PROMPT)
        .expect("the client still waits, PROMPT after the write stalled");
    loading.join().unwrap();
    db.resume();
    assert!(r.is_err(), "the load cannot have succeeded: {r:?}");
    pool_serves(&proxy);
    let rows: Option<i64> = db.query_first("SELECT COUNT(*) FROM own.li");
    assert_eq!(rows, Some(0), "the load was stopped");
}

/// Funnel's own statement gets no answer because the backend's address
/// moved to another server (a virtual IP after a failover): a `KILL QUERY`
/// of the old connection's thread id would reach the new server, where
/// that id is someone else's connection. The statement (a read-back, like
/// every statement bounded by `pool.connect_timeout`) changes no data and
/// holds no lock, so nothing is killed for it.
#[test]
fn own_statements_unanswered_read_back_kills_no_thread_on_the_server_behind_a_moved_address() {
    let (old, new) = (server(), server());
    // The old server's thread ids run ahead, as a long-running server's do.
    for _ in 0..10 {
        drop(old.connect_as("own_b", "bpw").unwrap());
    }
    let (relay, armed) = black_hole_then(old.addr(), new.addr(), b"SELECT @@session.");
    let proxy = start(relay, "0s");
    let mut a = client(&proxy);
    a.query_drop("SELECT 1").unwrap();
    let thread: u64 = old
        .query_first("SELECT MAX(ID) FROM information_schema.PROCESSLIST WHERE USER = 'own_b'")
        .unwrap();
    // On the new server, the same id is another client's connection.
    let mut victim = loop {
        let mut c = new.connect_as("own_b", "bpw").unwrap();
        let id: u64 = c.query_first("SELECT CONNECTION_ID()").unwrap().unwrap();
        assert!(id <= thread, "the new server's ids went past {thread}");
        if id == thread {
            break c;
        }
    };
    let sleeping = thread::spawn(move || victim.query_first::<i64, _>("SELECT SLEEP(3)"));
    thread::sleep(Duration::from_millis(200));
    armed.store(true, Ordering::SeqCst);
    a.query_drop("SET sql_mode = REPLACE(@@sql_mode, 'STRICT_TRANS_TABLES', '')")
        .unwrap();
    assert_eq!(promptly(|| code(a.query_drop("SELECT 1"))), 9007);
    let slept = sleeping.join().unwrap();
    assert!(
        matches!(slept, Ok(Some(0))),
        "the other client's statement was killed: {slept:?}"
    );
}

/// An execute that never reached the server (its 15 MiB write to a
/// frozen server timed out: ERR 1969) says nothing of the statement's
/// columns. Funnel compared the statement's recorded column count with
/// what the client's previous command returned (`SELECT` of three
/// columns), took the statement for stale (4bbc765), and the next
/// client's prepare of its text went to the server again instead of
/// being answered from the registry. (Past a second, as here after the
/// one-second timeout, the next prepare has the server describe the text
/// again in any case, and keeps the statement where it says the same; a
/// stale one is replaced by another, which A's and B's executes then
/// prepare apart on the one connection.)
#[test]
fn own_statements_execute_that_never_ran_leaves_its_description_fresh() {
    let db = server();
    let proxy = start(db.addr(), "1s");
    let prepares = || -> u64 {
        db.query_first::<u64>(
            "SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS \
             WHERE VARIABLE_NAME = 'COM_STMT_PREPARE'",
        )
        .unwrap()
    };
    let sql = "SELECT LENGTH(?) AS n, 2 AS two";
    let mut a = raw(&proxy, Capabilities::EMPTY);
    let id = prepare(&mut a, sql);
    a.query("SELECT seq, seq, seq FROM own.seq_1_to_1").unwrap();
    // The statement with one 15 MiB string parameter.
    let value = vec![b'x'; 15 << 20];
    let mut p = vec![0x17];
    p.extend_from_slice(&id.to_le_bytes());
    p.push(0);
    p.extend_from_slice(&1u32.to_le_bytes());
    p.extend_from_slice(&[0, 1, 0xfd, 0]);
    p.push(0xfd);
    p.extend_from_slice(&(value.len() as u32).to_le_bytes()[..3]);
    p.extend_from_slice(&value);
    db.pause();
    let r = a.roundtrip(&p, Expect::Results);
    db.resume();
    let packets = r.unwrap();
    let err = funnel_protocol::response::ErrPacket::parse(&packets[0]).unwrap();
    assert_eq!(err.code, 1969, "the write timed out");
    let before = prepares();
    let mut b = raw(&proxy, Capabilities::EMPTY);
    let b_id = prepare(&mut b, sql);
    assert!(execute(&mut a, id, 1).is_ok());
    assert!(execute(&mut b, b_id, 1).is_ok());
    assert_eq!(
        prepares(),
        before + 1,
        "A's statement and B's are one: the registry's, not a stale one's replacement"
    );
    pool_serves(&proxy);
}
