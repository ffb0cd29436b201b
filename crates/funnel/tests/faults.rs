//! Faults: slow queries past `pool.query_timeout`, a backend stopped
//! (SIGSTOP) mid-response, and a backend killed mid-query. The affected
//! client gets a clear error, others carry on, the pool recovers by itself.

use std::thread;
use std::time::{Duration, Instant};

use funnel_config::Config;
use funnel_engine::Proxy;
use funnel_testkit::eventually;
use funnel_testkit::MariaDb;
use mysql::prelude::Queryable;
use mysql::{Conn, OptsBuilder};

fn start(db: &MariaDb, query_timeout: &str) -> Proxy {
    db.create_user("fault_b", "bpw");
    db.create_database("faults");
    let yaml = format!(
        "listen: 127.0.0.1:0\ncores: 1\n\
         users:\n  - name: app\n    password: apppw\n    default_schema: faults\n\
         backends:\n  - name: primary\n    address: {}\n    user: fault_b\n    password: bpw\n\
         pool:\n  max_per_core: 4\n  min_idle_per_core: 1\n  connect_timeout: 1s\n  query_timeout: {query_timeout}\n\
         monitor:\n  interval: 200ms\n  timeout: 300ms\n",
        db.addr()
    );
    funnel_testkit::funnel::start(Config::from_yaml_str(&yaml).unwrap())
}

fn opts(p: &Proxy) -> OptsBuilder {
    funnel_testkit::client_opts(p.local_addr().port(), "app", "apppw")
        .read_timeout(Some(Duration::from_secs(20)))
}

fn client(p: &Proxy) -> Conn {
    Conn::new(opts(p)).unwrap()
}

/// Waits until the server runs `n` statements of Funnel's backend user
/// with `SLEEP(` in their text: killing it then is killing it mid-query,
/// however slowly the clients' threads were scheduled.
fn wait_for_sleeps(db: &MariaDb, n: i64) {
    let sql = "SELECT COUNT(*) FROM information_schema.PROCESSLIST \
               WHERE USER = 'fault_b' AND INFO LIKE '%SLEEP(%'";
    funnel_testkit::wait_until_within(
        "the statements to run on the server",
        Duration::from_secs(30),
        || db.query_first::<i64>(sql).unwrap_or(0) >= n,
    );
}

fn code(e: mysql::Error) -> u16 {
    match e {
        mysql::Error::MySqlError(e) => e.code,
        other => panic!("expected a server error, got {other:?}"),
    }
}

#[test]
fn faults_query_timeout_errors_and_kills_the_statement() {
    let db = MariaDb::start();
    let proxy = start(&db, "500ms");
    let mut c = client(&proxy);
    let started = Instant::now();
    let err = c
        .query_drop("SELECT COUNT(*) FROM seq_1_to_3 WHERE SLEEP(2) = 0")
        .unwrap_err();
    // Unlike the server's 1969, Funnel's cannot promise nothing happened.
    assert!(err.to_string().contains("may have taken effect"), "{err}");
    assert_eq!(code(err), 1969);
    // The statement alone would take 6 s; the 500 ms deadline cut it (with
    // room for a loaded machine: 1.5 s was passed by 2.3-5.5 s there).
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    // Funnel killed it on the server too.
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let running: i64 = db
            .query_first(
                "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE USER = 'fault_b' AND INFO LIKE 'SELECT COUNT%'",
            )
            .unwrap();
        if running == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the timed-out statement still runs on the server"
        );
        thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(c.query_first::<i64, _>("SELECT 1").unwrap(), Some(1));
}

/// A statement past `pool.query_timeout` gets its 1969 at the timeout,
/// even while a client's `KILL QUERY` of it waits for the frozen server:
/// the connection is closed, not handed on, so nothing need wait for the
/// KILL (which takes up to `pool.connect_timeout` to give up).
#[test]
fn faults_query_timeout_is_not_held_by_a_kill_query_on_its_way() {
    let db = MariaDb::start();
    db.create_user("fault_b", "bpw");
    db.create_database("faults");
    let yaml = format!(
        "listen: 127.0.0.1:0\ncores: 1\n\
         users:\n  - name: app\n    password: apppw\n    default_schema: faults\n\
         backends:\n  - name: primary\n    address: {}\n    user: fault_b\n    password: bpw\n\
         pool:\n  max_per_core: 4\n  min_idle_per_core: 1\n  connect_timeout: 6s\n  query_timeout: 1500ms\n\
         monitor:\n  interval: 60s\n",
        db.addr()
    );
    let proxy = funnel_testkit::funnel::start(Config::from_yaml_str(&yaml).unwrap());
    let mut a = client(&proxy);
    let a_id = a.connection_id();
    let mut killer = client(&proxy);
    let started = Instant::now();
    let victim = thread::spawn(move || {
        let r = a.query_drop("SELECT SLEEP(30)").map_err(code);
        (r, started.elapsed())
    });
    wait_for_sleeps(&db, 1);
    db.pause();
    let kill = thread::spawn(move || killer.query_drop(format!("KILL QUERY {a_id}")));
    let (result, took) = victim.join().unwrap();
    assert_eq!(result, Err(1969));
    assert!(took < Duration::from_secs(4), "1969 came after {took:?}");
    db.resume();
    let _ = kill.join().unwrap();
}

#[test]
fn faults_backend_stopped_mid_response_then_resumed() {
    let db = MariaDb::start();
    let proxy = start(&db, "700ms");
    let mut a = client(&proxy);
    let mut b = client(&proxy);
    assert_eq!(a.query_first::<i64, _>("SELECT 1").unwrap(), Some(1));
    db.pause();
    let started = Instant::now();
    let err = a.query_drop("SELECT 2").unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(3));
    let c = code(err);
    assert!(c == 1969 || c == 9003 || c == 9007, "got {c}");
    db.resume();
    assert_eq!(
        eventually(Duration::from_secs(10), || b.query_first::<i64, _>("SELECT 3")),
        Some(3)
    );
    assert_eq!(
        eventually(Duration::from_secs(10), || a.query_first::<i64, _>("SELECT 4")),
        Some(4)
    );
}

/// A login naming a schema waits for the backend's COM_INIT_DB: a frozen
/// backend gets it an error within `pool.connect_timeout`, not a hang.
#[test]
fn faults_login_with_a_schema_is_bounded_when_the_backend_is_frozen() {
    let db = MariaDb::start();
    db.create_user("fault_b", "bpw");
    db.create_database("faults");
    // The health monitor would mark the frozen backend down (then logins
    // fail fast): here it looks too rarely to notice.
    let yaml = format!(
        "listen: 127.0.0.1:0\ncores: 1\n\
         users:\n  - name: app\n    password: apppw\n\
         backends:\n  - name: primary\n    address: {}\n    user: fault_b\n    password: bpw\n\
         pool:\n  max_per_core: 4\n  min_idle_per_core: 0\n  connect_timeout: 1s\n\
         monitor:\n  interval: 60s\n",
        db.addr()
    );
    let proxy = funnel_testkit::funnel::start(Config::from_yaml_str(&yaml).unwrap());
    // A client without a schema leaves an idle connection of its kind,
    // which the next login's check then uses (idle for less than the half
    // second after which a connection is checked before reuse).
    let mut warm = client(&proxy);
    assert_eq!(warm.query_first::<i64, _>("SELECT 1").unwrap(), Some(1));
    db.pause();
    let started = Instant::now();
    let login = Conn::new(opts(&proxy).db_name(Some("faults")));
    let took = started.elapsed();
    db.resume();
    assert!(login.is_err(), "a frozen backend cannot vouch for the schema");
    assert!(took < Duration::from_secs(8), "the login waited {took:?}");
    let mut c = eventually(Duration::from_secs(15), || {
        Conn::new(opts(&proxy).db_name(Some("faults")))
    });
    assert_eq!(c.query_first::<i64, _>("SELECT 5").unwrap(), Some(5));
}

#[test]
fn faults_backend_killed_mid_query_then_restarted() {
    let db = MariaDb::start();
    let proxy = start(&db, "0s");
    let mut a = client(&proxy);
    let mut b = client(&proxy);
    assert_eq!(b.query_first::<i64, _>("SELECT 1").unwrap(), Some(1));
    let victim = thread::spawn(move || {
        let r = a.query_drop("SELECT COUNT(*) FROM seq_1_to_3 WHERE SLEEP(3) = 0");
        (Instant::now(), r.map_err(code))
    });
    wait_for_sleeps(&db, 1);
    db.kill();
    let killed = Instant::now();
    let (ended, result) = victim.join().unwrap();
    assert_eq!(result, Err(9007), "lost connection to backend during query");
    let took = ended.saturating_duration_since(killed);
    assert!(took < Duration::from_secs(2), "{took:?} after the kill");
    // While it is down, commands fail clearly instead of hanging.
    let err = b.query_drop("SELECT 2").unwrap_err();
    let c = code(err);
    assert!(c == 9003 || c == 9004 || c == 9007, "got {c}");
    db.start_again();
    assert_eq!(
        eventually(Duration::from_secs(15), || b.query_first::<i64, _>("SELECT 5")),
        Some(5)
    );
}

/// A transaction whose backend dies must not go on in autocommit on a
/// fresh connection: the client gets 9007 for the failed statement, then
/// 9008 for every statement until it ends the transaction; ROLLBACK is OK.
#[test]
fn faults_backend_lost_inside_a_transaction_refuses_until_rollback() {
    let db = MariaDb::start();
    let proxy = start(&db, "0s");
    db.exec("CREATE TABLE faults.tx (id INT PRIMARY KEY) ENGINE=InnoDB");
    let mut a = client(&proxy);
    a.query_drop("BEGIN").unwrap();
    a.query_drop("INSERT INTO tx VALUES (1)").unwrap();
    let mut b = client(&proxy);
    b.query_drop("BEGIN").unwrap();
    b.query_drop("INSERT INTO tx VALUES (10)").unwrap();
    let victim = thread::spawn(move || {
        let lost = a.query_drop("SELECT SLEEP(3)").map_err(code);
        // The rest of the transaction: refused, not run in autocommit.
        let rest = a.query_drop("INSERT INTO tx VALUES (2)").map_err(code);
        let status = a.query_drop("SELECT 1").map_err(code);
        (a, lost, rest, status)
    });
    let other = thread::spawn(move || {
        let lost = b.query_drop("SELECT SLEEP(3)").map_err(code);
        // One OK for the ROLLBACK would have hidden that the INSERT never ran.
        let both = b.query_drop("ROLLBACK; INSERT INTO tx VALUES (11)").map_err(code);
        (lost, both)
    });
    wait_for_sleeps(&db, 2);
    db.kill();
    let (mut a, lost, rest, status) = victim.join().unwrap();
    assert_eq!(lost, Err(9007));
    assert_eq!(rest, Err(9008));
    assert_eq!(status, Err(9008), "refused until the transaction ends");
    assert_eq!(other.join().unwrap(), (Err(9007), Err(9008)));
    a.query_drop("ROLLBACK").unwrap();
    db.start_again();
    eventually(Duration::from_secs(15), || {
        a.query_drop("INSERT INTO tx VALUES (3)")
    });
    // After the ROLLBACK, transactions work as usual.
    a.query_drop("BEGIN").unwrap();
    a.query_drop("INSERT INTO tx VALUES (4)").unwrap();
    a.query_drop("COMMIT").unwrap();
    let mut c = client(&proxy);
    let ids: Vec<i64> = c.query("SELECT id FROM tx ORDER BY id").unwrap();
    assert_eq!(
        ids,
        vec![3, 4],
        "nothing of the lost transaction, everything after it"
    );
}

/// A client that ends its transactions with a prepared ROLLBACK ends a
/// lost one that way too: the execute is answered OK, not refused with
/// 9008 for ever (every statement would be).
#[test]
fn faults_prepared_rollback_ends_a_lost_transaction() {
    let db = MariaDb::start();
    let proxy = start(&db, "0s");
    db.exec("CREATE TABLE faults.ptx (id INT PRIMARY KEY) ENGINE=InnoDB");
    let mut a = client(&proxy);
    let rollback = a.prep("ROLLBACK").unwrap();
    a.query_drop("BEGIN").unwrap();
    a.query_drop("INSERT INTO ptx VALUES (1)").unwrap();
    let victim = thread::spawn(move || {
        let lost = a.query_drop("SELECT SLEEP(3)").map_err(code);
        (a, lost)
    });
    wait_for_sleeps(&db, 1);
    db.kill();
    let (mut a, lost) = victim.join().unwrap();
    assert_eq!(lost, Err(9007));
    assert_eq!(
        a.query_drop("INSERT INTO ptx VALUES (2)").map_err(code),
        Err(9008)
    );
    a.exec_drop(&rollback, ())
        .expect("the prepared ROLLBACK ends the lost transaction");
    db.start_again();
    eventually(Duration::from_secs(15), || {
        a.query_drop("INSERT INTO ptx VALUES (3)")
    });
    let ids: Option<String> = db.query_first("SELECT GROUP_CONCAT(id ORDER BY id) FROM faults.ptx");
    assert_eq!(ids.as_deref(), Some("3"));
}

/// A COMMIT whose reply never came may have committed: the server froze
/// with it in its socket, `pool.query_timeout` passed, and the server ran
/// it once it resumed. The client is told the outcome is unknown (1969);
/// the 9008 refusals after it must not say the server rolled the
/// transaction back (the client would then run it all again).
#[test]
fn faults_commit_without_a_reply_is_not_reported_as_rolled_back() {
    let db = MariaDb::start();
    let proxy = start(&db, "700ms");
    db.exec("CREATE TABLE faults.committed (id INT PRIMARY KEY) ENGINE=InnoDB");
    let mut a = client(&proxy);
    // The COMMIT alone, and at the end of a multi-statement query.
    for (n, commit) in [
        (1, "COMMIT".to_string()),
        (3, "INSERT INTO committed VALUES (4); COMMIT".into()),
    ] {
        a.query_drop("BEGIN").unwrap();
        a.query_drop(format!("INSERT INTO committed VALUES ({n})"))
            .unwrap();
        db.pause();
        let err = a.query_drop(&commit).unwrap_err();
        assert_eq!(code(err), 1969, "{commit}");
        // Past Funnel's KILL QUERY attempt (pool.connect_timeout, 1 s): the
        // frozen server never let it in.
        thread::sleep(Duration::from_millis(1500));
        db.resume();
        let sql = format!("SELECT COUNT(*) FROM faults.committed WHERE id = {n}");
        let count = || db.query_first::<i64>(&sql).unwrap_or(0);
        funnel_testkit::wait_until_within("the COMMIT to run on the server", Duration::from_secs(10), || {
            count() == 1
        });
        let refused = a.query_drop("INSERT INTO committed VALUES (2)").unwrap_err();
        let text = refused.to_string();
        assert_eq!(code(refused), 9008, "{commit}");
        assert!(!text.contains("rolled it back"), "{commit}: {text}");
        assert!(text.contains("may or may not have committed"), "{commit}: {text}");
        a.query_drop("ROLLBACK").unwrap();
        if n == 1 {
            eventually(Duration::from_secs(15), || {
                a.query_drop("INSERT INTO committed VALUES (2)")
            });
        }
    }
    let ids: Option<String> = db.query_first("SELECT GROUP_CONCAT(id ORDER BY id) FROM faults.committed");
    assert_eq!(ids.as_deref(), Some("1,2,3,4"));
}

/// Session state that cannot be refused back into shape (a temporary
/// table, user variables, locks) died with the backend: the session ends
/// after the ERR, as a direct connection to the dead server would.
#[test]
fn faults_backend_lost_with_session_state_closes_the_client() {
    let db = MariaDb::start();
    let proxy = start(&db, "0s");
    let mut a = client(&proxy);
    a.query_drop("CREATE TEMPORARY TABLE scratch (x INT)").unwrap();
    let victim = thread::spawn(move || {
        let lost = a.query_drop("SELECT SLEEP(3)").map_err(code);
        let after = a.query_drop("SELECT * FROM scratch");
        (lost, after)
    });
    wait_for_sleeps(&db, 1);
    db.kill();
    let (lost, after) = victim.join().unwrap();
    assert_eq!(lost, Err(9007));
    match after {
        Err(mysql::Error::MySqlError(e)) => panic!("the session went on without its temporary table: {e}"),
        Err(_) => {}
        Ok(()) => panic!("the session went on without its temporary table"),
    }
}

/// A TCP relay in front of `backend` that forwards bytes both ways, except
/// that it accepts and at once closes the next `refuse` connections (an open
/// that fails after connecting) whenever the test sets that count.
fn flaky_relay(
    backend: std::net::SocketAddr,
) -> (
    std::net::SocketAddr,
    std::sync::Arc<std::sync::atomic::AtomicUsize>,
) {
    use std::net::{TcpListener, TcpStream};
    use std::sync::atomic::Ordering;
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let refuse = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = refuse.clone();
    thread::spawn(move || {
        for client in listener.incoming() {
            let Ok(client) = client else { continue };
            if count
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok()
            {
                drop(client);
                continue;
            }
            if let Ok(server) = TcpStream::connect(backend) {
                funnel_testkit::splice::splice(client, server);
            }
        }
    });
    (addr, refuse)
}

#[test]
fn faults_commands_wait_out_a_failed_open_instead_of_failing() {
    let db = MariaDb::start();
    db.create_user("fault_b", "bpw");
    let (relay, refuse) = flaky_relay(db.addr());
    let yaml = format!(
        "listen: 127.0.0.1:0\ncores: 1\n\
         users:\n  - name: app\n    password: apppw\n\
         backends:\n  - name: primary\n    address: {relay}\n    user: fault_b\n    password: bpw\n\
         pool:\n  max_per_core: 4\n  min_idle_per_core: 0\n  connect_timeout: 1s\n\
         monitor:\n  interval: 60s\n"
    );
    let proxy = funnel_testkit::funnel::start(Config::from_yaml_str(&yaml).unwrap());
    // Clients that send nothing on connect: the pool stays empty until the
    // first command.
    let quiet_client = || Conn::new(opts(&proxy).max_allowed_packet(Some(16 << 20))).unwrap();
    let mut first = quiet_client();
    // Connected before the refusal, so that their commands come within
    // the back-off's 100 ms even on a loaded machine.
    let mut workers: Vec<_> = (0..6).map(|_| quiet_client()).collect();
    // Let the monitor's first check through, then refuse one open: the
    // first command's. (Refusing more made late commands, ones that came
    // after the back-off, open a refused connection themselves, which
    // fails at once by design.)
    thread::sleep(Duration::from_millis(300));
    refuse.store(1, std::sync::atomic::Ordering::SeqCst);
    let err = first.query_drop("SELECT 1").unwrap_err();
    assert_eq!(code(err), 9003);
    // Commands arriving during the back-off wait for its retry instead of
    // failing at once with "connections failed recently".
    let started = Instant::now();
    let workers: Vec<_> = workers
        .drain(..)
        .map(|mut c| thread::spawn(move || c.query_first::<u32, _>("SELECT 1")))
        .collect();
    for w in workers {
        assert_eq!(w.join().unwrap().unwrap(), Some(1));
    }
    assert_eq!(
        refuse.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "every refusal was used"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(first.query_first::<u32, _>("SELECT 2").unwrap(), Some(2));
}

/// A relay standing in for a virtual IP: each new connection goes to the
/// server `target` names at that moment; open ones stay where they went.
fn virtual_ip(target: std::sync::Arc<std::sync::Mutex<std::net::SocketAddr>>) -> std::net::SocketAddr {
    use std::net::{TcpListener, TcpStream};
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    thread::spawn(move || {
        for client in listener.incoming().flatten() {
            let upstream = *target.lock().unwrap();
            if let Ok(server) = TcpStream::connect(upstream) {
                funnel_testkit::splice::splice(client, server);
            }
        }
    });
    addr
}

/// After a failover moved the backend's address to another server, the
/// `KILL QUERY` that follows a query timeout must not stop whatever that
/// server runs under the same thread id: Funnel checks the thread is its
/// own connection first.
#[test]
fn faults_query_timeout_kills_nothing_once_the_address_reaches_another_server() {
    let (a, b) = (MariaDb::start(), MariaDb::start());
    for db in [&a, &b] {
        db.create_user("fault_b", "bpw");
    }
    // Thread ids count up from each server's start: take A's past B's.
    for _ in 0..30 {
        drop(Conn::new(funnel_testkit::client_opts(a.port(), "fault_b", "bpw")).unwrap());
    }
    let target = std::sync::Arc::new(std::sync::Mutex::new(a.addr()));
    let yaml = format!(
        "listen: 127.0.0.1:0\ncores: 1\n\
         users:\n  - name: app\n    password: apppw\n\
         backends:\n  - name: primary\n    address: {}\n    user: fault_b\n    password: bpw\n\
         pool:\n  max_per_core: 1\n  min_idle_per_core: 0\n  connect_timeout: 2s\n  query_timeout: 1s\n\
         monitor:\n  interval: 60s\n",
        virtual_ip(target.clone())
    );
    let proxy = funnel_testkit::funnel::start(Config::from_yaml_str(&yaml).unwrap());
    let mut c = client(&proxy);
    // The statement names its own thread: the pooled connection's id on A.
    let n: u32 = c
        .query_first(
            "SELECT ID FROM information_schema.PROCESSLIST \
             WHERE INFO LIKE 'SELECT ID FROM information_schema.PROCESSLIST%'",
        )
        .unwrap()
        .unwrap();
    // On B, someone else's connection gets that id and runs a query.
    let mut victim = loop {
        let mut v = Conn::new(funnel_testkit::client_opts(b.port(), "fault_b", "bpw")).unwrap();
        let id: u32 = v.query_first("SELECT CONNECTION_ID()").unwrap().unwrap();
        assert!(id <= n, "B's thread ids passed {n}");
        if id == n {
            break v;
        }
    };
    let victim = thread::spawn(move || victim.query_first::<i64, _>("SELECT SLEEP(4)").unwrap().unwrap());
    funnel_testkit::wait_until_within("the victim's query", Duration::from_secs(5), || {
        b.query_first::<i64>(&format!(
            "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE ID = {n} AND INFO LIKE 'SELECT SLEEP%'"
        )) == Some(1)
    });
    // The failover: the address now reaches B.
    *target.lock().unwrap() = b.addr();
    let err = c.query_drop("SELECT SLEEP(3)").unwrap_err();
    assert_eq!(code(err), 1969);
    assert_eq!(
        victim.join().unwrap(),
        0,
        "Funnel's KILL QUERY stopped another server's query of the same thread id"
    );
}

/// `COM_REFRESH` (`mariadb-admin refresh`, `flush-*`) commits the open
/// transaction before it flushes, as a `FLUSH` statement does. Left
/// without a reply (a frozen server, `pool.query_timeout`), it may have
/// committed: the 9008 refusals after it must not say the server rolled
/// the transaction back.
#[test]
fn faults_com_refresh_without_a_reply_is_not_reported_as_rolled_back() {
    use funnel_testkit::mini_client::{MiniClient, MiniError};
    let db = MariaDb::start();
    let proxy = start(&db, "700ms");
    db.exec("CREATE TABLE faults.refreshed (id INT PRIMARY KEY) ENGINE=InnoDB");
    let mut a = MiniClient::connect(proxy.local_addr(), "app", "apppw", Some("faults")).unwrap();
    a.query("BEGIN").unwrap();
    a.query("INSERT INTO refreshed VALUES (1)").unwrap();
    db.pause();
    // REFRESH_STATUS: a flush anyone with RELOAD may run.
    let answer = a
        .roundtrip(&[0x07, 0x10], funnel_protocol::tracker::Expect::Status)
        .unwrap();
    assert_eq!(answer.len(), 1);
    assert_eq!(&answer[0][..3], &[0xff, 0xb1, 0x07], "ERR 1969: {:?}", answer[0]);
    // Past Funnel's KILL QUERY attempt (pool.connect_timeout, 1 s).
    thread::sleep(Duration::from_millis(1500));
    db.resume();
    let count = || {
        db.query_first::<i64>("SELECT COUNT(*) FROM faults.refreshed")
            .unwrap_or(0)
    };
    funnel_testkit::wait_until_within(
        "the implicit commit to run on the server",
        Duration::from_secs(10),
        || count() == 1,
    );
    match a.query("INSERT INTO refreshed VALUES (2)") {
        Err(MiniError::Server(err)) => {
            let text = String::from_utf8_lossy(&err.message).into_owned();
            assert_eq!(err.code, 9008, "{text}");
            assert!(!text.contains("rolled it back"), "{text}");
            assert!(text.contains("may or may not have committed"), "{text}");
        }
        other => panic!("expected ERR 9008, got {other:?}"),
    }
}

/// In a lost transaction, `COM_REFRESH` is refused like the `FLUSH`
/// statement it stands for (both commit implicitly on the server): it
/// neither runs on a fresh connection nor ends the lost transaction.
#[test]
fn faults_com_refresh_in_a_lost_transaction_is_refused() {
    use funnel_testkit::mini_client::{MiniClient, MiniError};
    let db = MariaDb::start();
    let proxy = start(&db, "0s");
    db.exec("CREATE TABLE faults.lostrefresh (id INT PRIMARY KEY) ENGINE=InnoDB");
    let mut a = MiniClient::connect(proxy.local_addr(), "app", "apppw", Some("faults")).unwrap();
    a.query("BEGIN").unwrap();
    a.query("INSERT INTO lostrefresh VALUES (1)").unwrap();
    let victim = thread::spawn(move || {
        let lost = a.query("SELECT SLEEP(3)").map(|_| ());
        (a, lost)
    });
    wait_for_sleeps(&db, 1);
    db.kill();
    let (mut a, lost) = victim.join().unwrap();
    assert!(
        matches!(lost, Err(MiniError::Server(ref e)) if e.code == 9007),
        "{lost:?}"
    );
    db.start_again();
    let server_code = |r: Result<Vec<Vec<u8>>, MiniError>| match r {
        Ok(packets) if packets[0][0] == 0xff => u16::from_le_bytes([packets[0][1], packets[0][2]]),
        other => panic!("expected ERR, got {other:?}"),
    };
    let refresh = a.roundtrip(&[0x07, 0x10], funnel_protocol::tracker::Expect::Status);
    assert_eq!(server_code(refresh), 9008, "refused as FLUSH STATUS is");
    match a.query("FLUSH STATUS") {
        Err(MiniError::Server(e)) => assert_eq!(e.code, 9008, "still the lost transaction"),
        other => panic!("expected ERR 9008, got {other:?}"),
    }
    a.query("ROLLBACK").unwrap();
}
