//! One bad or misbehaving client never hurts another: what one client's
//! pool key, statements or habits cost stays with that client.

use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use funnel_config::Config;
use funnel_protocol::handshake::HandshakeV10;
use funnel_protocol::response::ErrPacket;
use funnel_protocol::tracker::Expect;
use funnel_protocol::Capabilities;
use funnel_testkit::mini_client::{read_raw_packet, MiniClient, MiniError};
use funnel_testkit::MariaDb;
use mysql::prelude::Queryable;

/// A relay in front of `backend` that clears `hide` from the server's
/// greeting and passes everything else through: the real server, seen as
/// an older one that lacks those capabilities (MariaDB 10.1 has no
/// `CLIENT_DEPRECATE_EOF`). Also returns how many connections it saw
/// closed without a login (opens Funnel gave up on after the greeting).
fn older_server(backend: SocketAddr, hide: Capabilities) -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let abandoned = Arc::new(AtomicUsize::new(0));
    let count = abandoned.clone();
    thread::spawn(move || {
        for client in listener.incoming() {
            let Ok(mut client) = client else { continue };
            let Ok(mut server) = TcpStream::connect(backend) else {
                continue;
            };
            let Ok((seq, greeting)) = read_raw_packet(&mut server) else {
                continue;
            };
            let mut hs = HandshakeV10::parse(&greeting).unwrap();
            hs.capabilities = Capabilities(hs.capabilities.0 & !hide.0);
            let mut payload = bytes::BytesMut::new();
            hs.write(&mut payload);
            let mut framed = bytes::BytesMut::new();
            funnel_protocol::framing::write_packet(&mut framed, seq, &payload);
            if client.write_all(&framed).is_err() {
                continue;
            }
            let Ok((seq, login)) = read_raw_packet(&mut client) else {
                count.fetch_add(1, Ordering::SeqCst);
                continue;
            };
            framed.clear();
            funnel_protocol::framing::write_packet(&mut framed, seq, &login);
            if server.write_all(&framed).is_err() {
                continue;
            }
            funnel_testkit::splice::splice(client, server);
        }
    });
    (addr, abandoned)
}

/// A client whose pool key one backend can never serve (it asks for
/// `CLIENT_DEPRECATE_EOF`, which the server lacks) gets a clear ERR for
/// each command, and the pool does not back off for it: clients with
/// other keys keep getting new connections at once, and the refusal is
/// remembered for a while rather than asked of the server per command. Before, each refused
/// open put the whole pool into its connect back-off (up to 5 s), and
/// the others waited in the backlog behind retries for the bad key.
#[test]
fn isolation_key_specific_open_failure_does_not_back_off_the_pool() {
    let db = MariaDb::shared();
    db.create_user("iso_key_b", "bpw");
    let (relay, abandoned) = older_server(db.addr(), Capabilities::CLIENT_DEPRECATE_EOF);
    let yaml = format!(
        "listen: 127.0.0.1:0\ncores: 1\n\
         users:\n  - name: app\n    password: apppw\n\
         backends:\n  - name: primary\n    address: {relay}\n    user: iso_key_b\n    password: bpw\n\
         pool:\n  max_per_core: 2\n  min_idle_per_core: 0\n\
         backlog:\n  wait_timeout: 4s\n\
         monitor:\n  interval: 60s\n"
    );
    let proxy = funnel_testkit::funnel::start(Config::from_yaml_str(&yaml).unwrap());
    let addr = proxy.local_addr();
    // Funnel read the greeting once at start, for its version string.
    let before = abandoned.load(Ordering::SeqCst);
    let stop = Arc::new(AtomicBool::new(false));
    let bad = {
        let stop = stop.clone();
        thread::spawn(move || {
            let mut c =
                MiniClient::connect_with(addr, "app", "apppw", None, Capabilities::CLIENT_DEPRECATE_EOF)
                    .unwrap();
            let mut errors = Vec::new();
            while !stop.load(Ordering::SeqCst) {
                match c.query("SELECT 1") {
                    Err(MiniError::Server(e)) => errors.push(e),
                    other => panic!("the bad key was served: {other:?}"),
                }
            }
            errors
        })
    };
    thread::sleep(Duration::from_millis(200));
    // Each good client has a new key (charset), so it needs a new
    // connection: the pool holds two, and replaces an idle one of another
    // key for it.
    for (round, charset) in [8u8, 33, 63, 47, 83, 46].into_iter().enumerate() {
        let started = Instant::now();
        let mut good =
            MiniClient::connect_with_charset(addr, "app", "apppw", None, Capabilities::EMPTY, charset)
                .unwrap_or_else(|e| panic!("round {round}: {e:?}"));
        let got = good
            .query("SELECT 7")
            .unwrap_or_else(|e| panic!("round {round}: {e:?}"));
        assert_eq!(got.rows()[0][0].as_deref(), Some("7"));
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "round {round}: a good client waited {:?}",
            started.elapsed()
        );
    }
    stop.store(true, Ordering::SeqCst);
    let errors = bad.join().unwrap();
    assert!(errors.len() >= 10, "{} errors", errors.len());
    // The refusal is remembered: the bad client's commands did not each
    // cost the server a connection (which it may count against Funnel's
    // host, max_connect_errors).
    assert_eq!(
        abandoned.load(Ordering::SeqCst) - before,
        1,
        "{} errors",
        errors.len()
    );
    for e in &errors {
        assert_eq!(e.code, 9003, "{e:?}");
        assert!(
            e.message_text().contains("lacks capabilities"),
            "{}",
            e.message_text()
        );
    }
}

/// Prepares `sql` over the binary protocol: the statement id, or the ERR.
fn prepare(c: &mut MiniClient, sql: &str) -> Result<u32, ErrPacket> {
    let mut p = vec![0x16];
    p.extend_from_slice(sql.as_bytes());
    let packets = c.roundtrip(&p, Expect::Prepare).unwrap();
    match packets[0].first() {
        Some(0xff) => Err(ErrPacket::parse(&packets[0]).unwrap()),
        _ => Ok(u32::from_le_bytes(packets[0][1..5].try_into().unwrap())),
    }
}

/// Prepares until refused (or `limit` times): how many succeeded, and the ERR.
fn prepare_until_refused(c: &mut MiniClient, limit: usize) -> (usize, Option<ErrPacket>) {
    for n in 0..limit {
        if let Err(e) = prepare(c, "SELECT 1") {
            return (n, Some(e));
        }
    }
    (limit, None)
}

/// A fresh schema named after `prefix` with a table `t (columns)`, and
/// the backend account `user` (password `bpw`) that may use it.
fn schema_with_t(db: &MariaDb, user: &str, prefix: &str, columns: &str) -> String {
    db.create_user(user, "bpw");
    let schema = db.fresh_database(prefix);
    db.exec(&format!("CREATE TABLE {schema}.t ({columns})"));
    db.exec(&format!("GRANT ALL ON {schema}.* TO '{user}'@'%'"));
    schema
}

fn leak_yaml(db: &MariaDb, backend: &str, client: &str) -> String {
    format!(
        "listen: 127.0.0.1:0\ncores: 1\n\
         users:\n  - name: app\n    password: apppw\n\
         backends:\n  - name: primary\n    address: {}\n    user: {backend}\n    password: bpw\n\
         pool:\n  max_per_core: 2\n  min_idle_per_core: 0\n{client}",
        db.addr()
    )
}

/// A client that prepares statements and never closes them (a common
/// application bug) is refused at `client.max_prepared_statements` (1024
/// by default) with MariaDB's ERR 1461, while another client of the same
/// core keeps preparing and executing. Before, one client could hold all
/// 16382 statements a core's clients may hold together, and every other
/// client's prepare got 1461. A reload changes the cap for the next
/// prepare, and a closed statement makes room.
#[test]
fn isolation_a_client_that_leaks_prepared_statements_hits_its_own_cap() {
    let db = MariaDb::shared();
    db.create_user("iso_leak_b", "bpw");
    let mut proxy =
        funnel_testkit::funnel::start(Config::from_yaml_str(&leak_yaml(db, "iso_leak_b", "")).unwrap());
    let addr = proxy.local_addr();
    let mut leaker = MiniClient::connect(addr, "app", "apppw", None).unwrap();
    let (held, err) = prepare_until_refused(&mut leaker, 16_383);
    assert_eq!(held, 1024, "the leaker held {held} statements");
    let err = err.unwrap();
    assert_eq!((err.code, &err.sql_state), (1461, b"42000"));
    assert_eq!(
        err.message_text(),
        "Can't create more than client.max_prepared_statements statements (current value: 1024)"
    );

    // Another client of the core: a real connector, preparing and executing.
    let mut other = mysql::Conn::new(funnel_testkit::client_opts(addr.port(), "app", "apppw")).unwrap();
    for i in 0..50u32 {
        let stmt = other.prep(format!("SELECT ? + {i}")).unwrap();
        let got: Option<u32> = other.exec_first(&stmt, (1u32,)).unwrap();
        assert_eq!(got, Some(i + 1));
    }

    // A reload raises the cap for the leaker's next prepares.
    let raised = leak_yaml(db, "iso_leak_b", "client:\n  max_prepared_statements: 1030\n");
    proxy.reload(Config::from_yaml_str(&raised).unwrap()).unwrap();
    let (more, err) = funnel_testkit::eventually(Duration::from_secs(5), || {
        match prepare_until_refused(&mut leaker, 100) {
            (0, e) => Err(format!("the reload has not arrived: {e:?}")),
            got => Ok(got),
        }
    });
    assert_eq!(more, 6);
    assert!(
        err.unwrap().message_text().ends_with("(current value: 1030)"),
        "the message names the cap in force"
    );
    // Closing a statement makes room for one.
    let mut close = vec![0x19];
    close.extend_from_slice(&1u32.to_le_bytes());
    leaker.send_command(&close).unwrap();
    assert_eq!(prepare_until_refused(&mut leaker, 100).0, 1);
}

/// A client that opens a transaction and goes idle holds its backend
/// connection, and the server's locks, from everyone else; without a
/// limit, for as long as it stays connected. With
/// `client.idle_transaction_timeout` it is told (4031) and closed, its
/// transaction rolls back, and the connection serves the others.
#[test]
fn isolation_idle_in_transaction_client_is_closed_and_frees_its_connection() {
    let db = MariaDb::shared();
    let schema = schema_with_t(db, "iso_idle_b", "iso_idle", "id INT PRIMARY KEY");
    let yaml = leak_yaml(
        db,
        "iso_idle_b",
        "backlog:\n  wait_timeout: 5s\nclient:\n  idle_transaction_timeout: 1s\n  idle_timeout: 0s\n",
    )
    .replace("max_per_core: 2", "max_per_core: 1");
    let proxy = funnel_testkit::funnel::start(Config::from_yaml_str(&yaml).unwrap());
    let addr = proxy.local_addr();
    let mut idle = MiniClient::connect(addr, "app", "apppw", Some(&schema)).unwrap();
    idle.query("BEGIN").unwrap();
    idle.query("INSERT INTO t VALUES (1)").unwrap();
    // An idle client outside a transaction is left alone (idle_timeout 0s).
    let mut quiet = MiniClient::connect(addr, "app", "apppw", Some(&schema)).unwrap();

    let started = Instant::now();
    let mut other = MiniClient::connect(addr, "app", "apppw", Some(&schema)).unwrap();
    // The same key: it would wait for the idle transaction's row lock.
    other
        .query("INSERT INTO t VALUES (1)")
        .unwrap_or_else(|e| panic!("the idle transaction still holds its row: {e:?}"));
    let waited = started.elapsed();
    assert!(
        waited < Duration::from_secs(3),
        "the other client waited {waited:?} for the only connection"
    );
    match idle.read_packet() {
        Ok((_, p)) => {
            let err = ErrPacket::parse(&p).unwrap();
            assert_eq!(err.code, 4031);
            assert!(err.message_text().contains("client.idle_transaction_timeout"));
        }
        Err(e) => panic!("expected 4031 before the close: {e:?}"),
    }
    assert!(idle.query("SELECT 1").is_err(), "closed");
    thread::sleep(Duration::from_millis(1200));
    assert_eq!(
        quiet.query("SELECT 5").unwrap().rows()[0][0].as_deref(),
        Some("5")
    );
}

/// The ERR a query through `c` got; panics on success.
fn err_of(c: &mut MiniClient, sql: &str) -> ErrPacket {
    match c.query(sql) {
        Err(MiniError::Server(e)) => e,
        other => panic!("{sql}: expected an ERR, got {other:?}"),
    }
}

/// A Funnel for the `client.max_transaction_time` tests: one backend
/// connection, a limit of 1 s, and no idle limits, so only the
/// transaction's own age ends a session; query rules stop `SLEEP(20)`
/// after 5 s and `SLEEP(3)` after 100 ms. Returns the proxy and the
/// test's schema, with a table `t (id INT PRIMARY KEY, v INT)`.
fn transaction_time_env(db: &MariaDb, user: &str) -> (funnel_engine::Proxy, String) {
    let schema = schema_with_t(db, user, user, "id INT PRIMARY KEY, v INT");
    let yaml = leak_yaml(
        db,
        user,
        "backlog:\n  wait_timeout: 10s\nclient:\n  max_transaction_time: 1s\n\
         query_rules:\n  - match_regex: 'SLEEP\\(20\\)'\n    timeout: 5s\n\
         \x20 - match_regex: 'SLEEP\\(3\\)'\n    timeout: 100ms\n",
    )
    .replace("max_per_core: 2", "max_per_core: 1");
    (
        funnel_testkit::funnel::start(Config::from_yaml_str(&yaml).unwrap()),
        schema,
    )
}

/// `client.max_transaction_time` (ProxySQL's `mysql-max_transaction_time`)
/// ends a transaction that stays open too long even while its client keeps
/// it busy, which `client.idle_transaction_timeout` never sees: the next
/// command after the limit gets 4031 naming the key and never runs, the
/// session closes, its insert rolls back, and the one backend connection
/// serves the client that waited for it. A transaction committed within
/// the limit, and the next one (also one `COMMIT AND CHAIN` opened),
/// count from their own start.
#[test]
fn isolation_a_transaction_kept_busy_past_max_transaction_time_is_ended() {
    let db = MariaDb::shared();
    let (proxy, schema) = transaction_time_env(db, "iso_txtime_b");
    let addr = proxy.local_addr();
    let mut c = MiniClient::connect(addr, "app", "apppw", Some(&schema)).unwrap();
    // Each transaction below lasts about 0.7 s: under the limit alone,
    // over it if the clock ran on from the one before.
    for (id, end) in [(1, "COMMIT AND CHAIN"), (2, "COMMIT"), (3, "COMMIT")] {
        if id != 2 {
            c.query("BEGIN").unwrap();
        }
        c.query(&format!("INSERT INTO t VALUES ({id}, 0)")).unwrap();
        thread::sleep(Duration::from_millis(700));
        c.query(end).unwrap();
    }
    c.query("BEGIN").unwrap();
    c.query("INSERT INTO t VALUES (4, 0)").unwrap();
    let started = Instant::now();
    let err = loop {
        // Busy: never idle for more than 100 ms.
        match c.query("SELECT COUNT(*) FROM t") {
            Ok(r) => assert_eq!(r.rows()[0][0].as_deref(), Some("4")),
            Err(MiniError::Server(e)) => break e,
            Err(e) => panic!("{e:?}"),
        }
        assert!(started.elapsed() < Duration::from_secs(5), "never ended");
        thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(
        (err.code, &err.sql_state),
        (4031, b"HY000"),
        "{}",
        err.message_text()
    );
    assert!(err.message_text().contains("client.max_transaction_time"));
    assert!(c.query("SELECT 1").is_err(), "closed");
    // The connection is free, and the transaction's row is gone.
    let mut other = MiniClient::connect(addr, "app", "apppw", Some(&schema)).unwrap();
    let rows = other.query("SELECT GROUP_CONCAT(id ORDER BY id) FROM t").unwrap();
    assert_eq!(rows.rows()[0][0].as_deref(), Some("1,2,3"));
}

/// A statement still running when its transaction reaches
/// `client.max_transaction_time` is stopped on the server (`KILL QUERY`):
/// the client gets 1969 naming the key, then the session closes and the
/// transaction rolls back. Also with autocommit off, where the statement
/// opens the transaction, and for a transaction left idle (4031). A query
/// rule's `timeout` that ends first stops the statement alone, as it does
/// outside a transaction; one that would end later is not waited for.
#[test]
fn isolation_a_statement_running_past_max_transaction_time_is_stopped() {
    let db = MariaDb::shared();
    let (proxy, schema) = transaction_time_env(db, "iso_txrun_b");
    let addr = proxy.local_addr();
    let mut c = MiniClient::connect(addr, "app", "apppw", Some(&schema)).unwrap();
    c.query("INSERT INTO t VALUES (1, 0)").unwrap();
    c.query("BEGIN").unwrap();
    c.query("UPDATE t SET v = 1").unwrap();
    let err = err_of(&mut c, "SELECT SLEEP(3)");
    assert_eq!(err.code, 1969);
    assert!(
        err.message_text().contains("query_rules[1].timeout"),
        "{}",
        err.message_text()
    );
    let rows = c.query("SELECT v FROM t").unwrap();
    assert_eq!(rows.rows()[0][0].as_deref(), Some("1"), "the transaction goes on");
    let started = Instant::now();
    let err = err_of(&mut c, "SELECT SLEEP(20) FROM t");
    let took = started.elapsed();
    assert_eq!(
        (err.code, &err.sql_state),
        (1969, b"70100"),
        "{}",
        err.message_text()
    );
    assert!(err
        .message_text()
        .contains("client.max_transaction_time of 1000 ms"));
    assert!(took < Duration::from_secs(5), "stopped after {took:?}");
    // Closed right after it, with nothing more said.
    match c.read_packet() {
        Err(MiniError::Io(_)) => {}
        other => panic!("expected the close, got {other:?}"),
    }

    // Autocommit off: the update opens the transaction and runs past the limit.
    let mut c = MiniClient::connect(addr, "app", "apppw", Some(&schema)).unwrap();
    c.query("SET autocommit = 0").unwrap();
    let err = err_of(&mut c, "UPDATE t SET v = 2 + SLEEP(20)");
    assert_eq!(err.code, 1969, "{}", err.message_text());
    assert!(c.query("SELECT 1").is_err(), "closed");

    // Idle: no statement runs at the limit.
    let mut c = MiniClient::connect(addr, "app", "apppw", Some(&schema)).unwrap();
    c.query("BEGIN").unwrap();
    c.query("UPDATE t SET v = 3").unwrap();
    match c.read_packet() {
        Ok((_, p)) => {
            let err = ErrPacket::parse(&p).unwrap();
            assert_eq!(err.code, 4031);
            assert!(err.message_text().contains("client.max_transaction_time"));
        }
        Err(e) => panic!("expected 4031 before the close: {e:?}"),
    }
    assert!(c.query("SELECT 1").is_err(), "closed");

    // None of the three updates stayed, and the one connection serves.
    let mut other = MiniClient::connect(addr, "app", "apppw", Some(&schema)).unwrap();
    let rows = other.query("SELECT v FROM t").unwrap();
    assert_eq!(rows.rows()[0][0].as_deref(), Some("0"));
}

/// Waits (at most 3 s) for the ERR Funnel sends a client it closes
/// unasked (4031 at a limit), then for the close.
fn closing_err_of(c: &mut MiniClient) -> ErrPacket {
    c.try_clone_stream()
        .unwrap()
        .set_read_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    let err = match c.read_packet() {
        Ok((_, p)) => ErrPacket::parse(&p).unwrap(),
        Err(e) => panic!("expected an ERR before the close: {e:?}"),
    };
    assert!(c.read_packet().is_err(), "closed after the ERR");
    err
}

/// `client.max_transaction_time` counts a new transaction from its own
/// start when a `ROLLBACK AND CHAIN` opens it, as after a `COMMIT AND
/// CHAIN`; a statement the transaction goes on through (a `CREATE
/// TEMPORARY TABLE`, which commits nothing) does not start the count
/// again. Before, only statements that may commit restarted it: a
/// `ROLLBACK AND CHAIN`'s transaction was ended too early, and any
/// `CREATE TEMPORARY TABLE` gave the open one a new limit.
#[test]
fn isolation_max_transaction_time_restarts_with_a_new_transaction_only() {
    let db = MariaDb::shared();
    let (proxy, schema) = transaction_time_env(db, "iso_txchain_b");
    let addr = proxy.local_addr();
    let mut c = MiniClient::connect(addr, "app", "apppw", Some(&schema)).unwrap();
    c.query("BEGIN").unwrap();
    c.query("INSERT INTO t VALUES (1, 0)").unwrap();
    thread::sleep(Duration::from_millis(700));
    c.query("ROLLBACK AND CHAIN").unwrap();
    c.query("INSERT INTO t VALUES (2, 0)").unwrap();
    thread::sleep(Duration::from_millis(600));
    // 1.3 s after the BEGIN, 0.6 s into the chained transaction.
    c.query("COMMIT")
        .unwrap_or_else(|e| panic!("the chained transaction was ended early: {e:?}"));

    let began = Instant::now();
    c.query("BEGIN").unwrap();
    c.query("INSERT INTO t VALUES (3, 0)").unwrap();
    thread::sleep(Duration::from_millis(600));
    c.query("CREATE TEMPORARY TABLE tmp (a INT)").unwrap();
    let err = closing_err_of(&mut c);
    let after = began.elapsed();
    assert_eq!(err.code, 4031, "{}", err.message_text());
    assert!(err.message_text().contains("client.max_transaction_time"));
    assert!(
        after < Duration::from_millis(1400),
        "ended {after:?} after its BEGIN: the CREATE TEMPORARY TABLE restarted the count"
    );
    let mut other = MiniClient::connect(addr, "app", "apppw", Some(&schema)).unwrap();
    let rows = other.query("SELECT GROUP_CONCAT(id ORDER BY id) FROM t").unwrap();
    assert_eq!(rows.rows()[0][0].as_deref(), Some("2"));
}

/// A statement that commits the open transaction before it runs (DDL:
/// `CREATE TABLE ... SELECT`) runs outside any transaction, so
/// `client.max_transaction_time` does not stop it, with autocommit on or
/// off. Before, it was killed at the limit of the transaction it had
/// committed, and the client told (1969) that the transaction rolled
/// back and disconnected, while the transaction's update stood
/// committed.
#[test]
fn isolation_max_transaction_time_leaves_a_statement_that_committed_it_alone() {
    let db = MariaDb::shared();
    let (proxy, schema) = transaction_time_env(db, "iso_txddl_b");
    let addr = proxy.local_addr();
    let mut c = MiniClient::connect(addr, "app", "apppw", Some(&schema)).unwrap();
    c.query("INSERT INTO t VALUES (1, 0)").unwrap();
    c.query("BEGIN").unwrap();
    c.query("UPDATE t SET v = 1").unwrap();
    thread::sleep(Duration::from_millis(500));
    // Commits the update, then runs for 1.5 s: past the transaction's limit.
    c.query("CREATE TABLE t2 SELECT SLEEP(1.5) AS s")
        .unwrap_or_else(|e| panic!("the DDL after the commit was stopped: {e:?}"));
    let v: Option<i64> = db.query_first(&format!("SELECT v FROM {schema}.t"));
    assert_eq!(v, Some(1), "the update was committed");
    let rows = c.query("SELECT COUNT(*) FROM t2").unwrap();
    assert_eq!(rows.rows()[0][0].as_deref(), Some("1"), "the session goes on");

    // Autocommit off: no transaction is open while the DDL runs.
    c.query("SET autocommit = 0").unwrap();
    c.query("CREATE TABLE t3 SELECT SLEEP(1.5) AS s")
        .unwrap_or_else(|e| panic!("the DDL with autocommit off was stopped: {e:?}"));
    let rows = c.query("SELECT COUNT(*) FROM t3").unwrap();
    assert_eq!(rows.rows()[0][0].as_deref(), Some("1"));
}

/// Makes the transaction `c` has open (it updated row 1 of `schema.t`)
/// the victim of a deadlock with a root connection: `c`'s update of row 2
/// gets 1213 and the server rolls `c`'s transaction back.
fn deadlock(c: &mut MiniClient, db: &MariaDb, schema: &str) {
    // The other side writes more, so InnoDB picks `c`'s transaction to
    // roll back.
    let mut other = db.root();
    other.query_drop("BEGIN").unwrap();
    other
        .query_drop(format!(
            "INSERT INTO {schema}.t SELECT seq, 0 FROM {schema}.seq_100_to_300"
        ))
        .unwrap();
    other
        .query_drop(format!("UPDATE {schema}.t SET v = 2 WHERE id = 2"))
        .unwrap();
    let blocked = {
        let schema = schema.to_string();
        thread::spawn(move || {
            other
                .query_drop(format!("UPDATE {schema}.t SET v = 2 WHERE id = 1"))
                .unwrap();
            other.query_drop("ROLLBACK").unwrap();
        })
    };
    thread::sleep(Duration::from_millis(200));
    let err = err_of(c, "UPDATE t SET v = 1 WHERE id = 2");
    assert_eq!(err.code, 1213, "{}", err.message_text());
    blocked.join().unwrap();
}

/// A deadlock (1213) rolls back the whole transaction: with autocommit
/// off, the statement after it opens a new one, which
/// `client.max_transaction_time` counts from its own start. Before, the
/// count ran on from the transaction the deadlock had ended, and the new
/// one was cut short. A client that stays idle after a deadlock, on a
/// connection that still looks in a transaction, still goes at the limit.
#[test]
fn isolation_max_transaction_time_restarts_after_a_deadlock() {
    let db = MariaDb::shared();
    let (proxy, schema) = transaction_time_env(db, "iso_txdead_b");
    let addr = proxy.local_addr();
    db.exec(&format!("INSERT INTO {schema}.t VALUES (1, 0), (2, 0)"));
    let mut c = MiniClient::connect(addr, "app", "apppw", Some(&schema)).unwrap();
    c.query("SET autocommit = 0").unwrap();
    c.query("UPDATE t SET v = 1 WHERE id = 1").unwrap();
    deadlock(&mut c, db, &schema);
    thread::sleep(Duration::from_millis(500));
    // A new transaction, 0.7 s after the first began.
    c.query("UPDATE t SET v = 5 WHERE id = 1").unwrap();
    thread::sleep(Duration::from_millis(600));
    c.query("COMMIT")
        .unwrap_or_else(|e| panic!("the transaction after the deadlock was ended early: {e:?}"));
    let v: Option<i64> = db.query_first(&format!("SELECT v FROM {schema}.t WHERE id = 1"));
    assert_eq!(v, Some(5));

    // Idle after the deadlock (autocommit on, the ROLLBACK never sent).
    c.query("SET autocommit = 1").unwrap();
    c.query("BEGIN").unwrap();
    c.query("UPDATE t SET v = 1 WHERE id = 1").unwrap();
    deadlock(&mut c, db, &schema);
    let idle = Instant::now();
    let err = closing_err_of(&mut c);
    assert_eq!(err.code, 4031, "{}", err.message_text());
    assert!(
        idle.elapsed() < Duration::from_millis(1500),
        "{:?}",
        idle.elapsed()
    );
}

/// An XA transaction already prepared outlives its connection's close (the
/// server keeps it, and its locks, for the transaction manager to end):
/// a client whose prepared XA transaction reaches
/// `client.max_transaction_time` is disconnected with an ERR that says so,
/// not that the transaction rolled back. Before, it was told the
/// transaction was rolled back while `XA RECOVER` still listed it.
#[test]
fn isolation_max_transaction_time_does_not_claim_a_prepared_xa_transaction_rolled_back() {
    let db = MariaDb::shared();
    let (proxy, schema) = transaction_time_env(db, "iso_txxa_b");
    let addr = proxy.local_addr();
    let mut c = MiniClient::connect(addr, "app", "apppw", Some(&schema)).unwrap();
    for sql in [
        "XA START 'iso_txxa'",
        "INSERT INTO t VALUES (1, 0)",
        "XA END 'iso_txxa'",
        "XA PREPARE 'iso_txxa'",
    ] {
        c.query(sql).unwrap();
    }
    let err = closing_err_of(&mut c);
    let mut root = db.root();
    let prepared: Vec<String> = root
        .query_map("XA RECOVER", |(_, _, _, data): (i64, i64, i64, String)| data)
        .unwrap();
    assert!(prepared.iter().any(|x| x == "iso_txxa"), "{prepared:?}");
    root.query_drop("XA ROLLBACK 'iso_txxa'").unwrap();
    assert_eq!(err.code, 4031, "{}", err.message_text());
    let message = err.message_text();
    assert!(message.contains("client.max_transaction_time"), "{message}");
    assert!(
        message.contains("XA RECOVER") && !message.contains("the transaction was rolled back"),
        "{message}"
    );
}

/// A command that opens a transaction may wait for a connection first
/// (the backlog, while every connection is held): that wait holds no
/// connection and no lock, so `client.max_transaction_time` counts from
/// when the command went to the server. Before, it counted from the
/// command's arrival, and a `BEGIN` that waited the limit out in the
/// backlog had its transaction ended at once, its first statement refused.
#[test]
fn isolation_max_transaction_time_does_not_count_the_wait_for_a_connection() {
    let db = MariaDb::shared();
    let (proxy, schema) = transaction_time_env(db, "iso_txwait_b");
    let addr = proxy.local_addr();
    // Holds the one connection (a temporary table pins it) outside any
    // transaction, for 1.2 s.
    let mut holder = MiniClient::connect(addr, "app", "apppw", Some(&schema)).unwrap();
    holder.query("CREATE TEMPORARY TABLE tmp (a INT)").unwrap();
    let release = thread::spawn(move || {
        thread::sleep(Duration::from_millis(1200));
        drop(holder);
    });
    let mut c = MiniClient::connect(addr, "app", "apppw", Some(&schema)).unwrap();
    let arrived = Instant::now();
    c.query("BEGIN").unwrap();
    assert!(
        arrived.elapsed() > Duration::from_secs(1),
        "the BEGIN did not wait: {:?}",
        arrived.elapsed()
    );
    release.join().unwrap();
    c.query("INSERT INTO t VALUES (1, 0)")
        .unwrap_or_else(|e| panic!("the transaction was ended at its start: {e:?}"));
    c.query("COMMIT").unwrap();

    // Autocommit off: the statement that opens the transaction waits,
    // then runs for 0.5 s of its 1 s.
    c.query("SET autocommit = 0").unwrap();
    let mut holder = MiniClient::connect(addr, "app", "apppw", Some(&schema)).unwrap();
    holder.query("CREATE TEMPORARY TABLE tmp (a INT)").unwrap();
    let release = thread::spawn(move || {
        thread::sleep(Duration::from_millis(1200));
        drop(holder);
    });
    c.query("UPDATE t SET v = 1 + SLEEP(0.5)")
        .unwrap_or_else(|e| panic!("the statement was stopped at its start: {e:?}"));
    release.join().unwrap();
    c.query("COMMIT").unwrap();
    let rows = c.query("SELECT v FROM t").unwrap();
    assert_eq!(rows.rows()[0][0].as_deref(), Some("1"));
}

/// A reload that lowers the client time limits reaches clients already
/// waiting for their next command, counting the wait so far: one idle
/// past a new `client.idle_timeout`, and one idle in a transaction past a
/// new `client.max_transaction_time`, are told (4031 naming the key) and
/// closed at once, and the transaction rolls back; a client idle for less
/// stays. Before, a wait kept the limits of its start (none here), and a
/// reload reached the client only at its next command.
#[test]
fn isolation_a_reload_of_the_time_limits_reaches_idle_clients() {
    let db = MariaDb::shared();
    let schema = schema_with_t(db, "iso_relimit_b", "iso_relimit", "id INT PRIMARY KEY");
    let yaml = |client: &str| leak_yaml(db, "iso_relimit_b", &format!("client:\n{client}"));
    let none = "  idle_timeout: 0s\n  idle_transaction_timeout: 0s\n  max_transaction_time: 0s\n";
    let mut proxy = funnel_testkit::funnel::start(Config::from_yaml_str(&yaml(none)).unwrap());
    let addr = proxy.local_addr();
    let mut idle = MiniClient::connect(addr, "app", "apppw", Some(&schema)).unwrap();
    idle.query("SELECT 1").unwrap();
    let mut tx = MiniClient::connect(addr, "app", "apppw", Some(&schema)).unwrap();
    tx.query("BEGIN").unwrap();
    tx.query("INSERT INTO t VALUES (1)").unwrap();
    thread::sleep(Duration::from_millis(3500));
    let mut fresh = MiniClient::connect(addr, "app", "apppw", Some(&schema)).unwrap();
    fresh.query("SELECT 1").unwrap();

    let lowered = "  idle_timeout: 3s\n  idle_transaction_timeout: 0s\n  max_transaction_time: 3s\n";
    let reloaded = Instant::now();
    assert!(proxy
        .reload(Config::from_yaml_str(&yaml(lowered)).unwrap())
        .unwrap()
        .is_empty());
    let err = closing_err_of(&mut idle);
    assert_eq!(err.code, 4031, "{}", err.message_text());
    assert!(
        err.message_text().contains("client.idle_timeout"),
        "{}",
        err.message_text()
    );
    let err = closing_err_of(&mut tx);
    assert_eq!(err.code, 4031, "{}", err.message_text());
    assert!(
        err.message_text().contains("client.max_transaction_time"),
        "{}",
        err.message_text()
    );
    let took = reloaded.elapsed();
    assert!(
        took < Duration::from_secs(2),
        "ended at the reload, not later ({took:?})"
    );
    // Idle for less than the new limit: still served, and the ended
    // transaction's row is gone.
    let rows = fresh.query("SELECT COUNT(*) FROM t").unwrap();
    assert_eq!(rows.rows()[0][0].as_deref(), Some("0"));
}

/// A client whose command has begun to arrive is not idle: with
/// `client.net_read_timeout: 0s` (no limit on the rest) a command sent
/// byte by byte for longer than `client.idle_timeout` still runs. At
/// dbfd90b the idle timeout, counted from the wait's start, applied to it
/// too, and closed it (4031) while it was sending.
#[test]
fn isolation_a_client_sending_a_command_slowly_is_not_idle() {
    let db = MariaDb::shared();
    db.create_user("iso_slowcmd_b", "bpw");
    let yaml = leak_yaml(
        db,
        "iso_slowcmd_b",
        "client:\n  idle_timeout: 1s\n  net_read_timeout: 0s\n",
    );
    let proxy = funnel_testkit::funnel::start(Config::from_yaml_str(&yaml).unwrap());
    let mut c = MiniClient::connect(proxy.local_addr(), "app", "apppw", None).unwrap();
    c.query("SELECT 1").unwrap();
    let payload = b"\x03DO 42";
    let mut packet = vec![payload.len() as u8, 0, 0, 0];
    packet.extend_from_slice(payload);
    let started = Instant::now();
    for byte in packet {
        // (A client closed meanwhile reads why below.)
        if c.write_raw(&[byte]).is_err() {
            break;
        }
        thread::sleep(Duration::from_millis(250));
    }
    let (_, reply) = c.read_packet().expect("the slow command's reply");
    assert_eq!(
        reply.first(),
        Some(&0x00),
        "OK, not {:?}",
        ErrPacket::parse(&reply).map(|e| e.message_text())
    );
    assert!(started.elapsed() > Duration::from_millis(1500));
    let rows = c.query("SELECT 2").unwrap();
    assert_eq!(rows.rows()[0][0].as_deref(), Some("2"));
}

/// A client stalled halfway through a command inside a transaction is
/// ended at the transaction's own `client.max_transaction_time` (4031
/// naming it, the transaction rolled back), not after the longer
/// `client.net_read_timeout`, as before dbfd90b: at dbfd90b it waited
/// out `net_read_timeout` (ERR 1159) holding the transaction's locks.
#[test]
fn isolation_a_command_stalled_inside_a_transaction_ends_at_max_transaction_time() {
    let db = MariaDb::shared();
    let schema = schema_with_t(db, "iso_midcmd_b", "iso_midcmd", "id INT PRIMARY KEY");
    let yaml = leak_yaml(
        db,
        "iso_midcmd_b",
        "client:\n  max_transaction_time: 1s\n  net_read_timeout: 20s\n",
    );
    let proxy = funnel_testkit::funnel::start(Config::from_yaml_str(&yaml).unwrap());
    let mut tx = MiniClient::connect(proxy.local_addr(), "app", "apppw", Some(&schema)).unwrap();
    tx.query("BEGIN").unwrap();
    tx.query("INSERT INTO t VALUES (1)").unwrap();
    let sent = Instant::now();
    let mut half = vec![100u8, 0, 0, 0, 0x03];
    half.extend_from_slice(b"SELECT ");
    tx.write_raw(&half).unwrap();
    let err = closing_err_of(&mut tx);
    assert_eq!(err.code, 4031, "{}", err.message_text());
    assert!(
        err.message_text().contains("client.max_transaction_time"),
        "{}",
        err.message_text()
    );
    assert!(
        sent.elapsed() < Duration::from_secs(3),
        "ended at the transaction's limit ({:?})",
        sent.elapsed()
    );
    // Its row lock is gone with it: the same row goes in at once.
    let mut other = MiniClient::connect(proxy.local_addr(), "app", "apppw", Some(&schema)).unwrap();
    other.query("SET innodb_lock_wait_timeout = 5").unwrap();
    other.query("INSERT INTO t VALUES (1)").unwrap();
}

/// A Funnel for the tests below: user `app` (schema `schema`) on one
/// backend, logged in as `backend`, with `max_per_core` connections and
/// one kept idle.
fn one_backend_proxy(db: &MariaDb, backend: &str, schema: &str, max_per_core: u32) -> funnel_engine::Proxy {
    let yaml = format!(
        "listen: 127.0.0.1:0\ncores: 1\n\
         users:\n  - name: app\n    password: apppw\n    default_schema: {schema}\n\
         backends:\n  - name: primary\n    address: {}\n    user: {backend}\n    password: bpw\n\
         pool:\n  max_per_core: {max_per_core}\n  min_idle_per_core: 1\n",
        db.addr()
    );
    funnel_testkit::funnel::start(Config::from_yaml_str(&yaml).unwrap())
}

/// A client of `app` logged in with `gbk_chinese_ci` (28): all such
/// clients share one pool key.
fn gbk_client(proxy: &funnel_engine::Proxy, schema: &str, caps: Capabilities) -> MiniClient {
    MiniClient::connect_with_charset(proxy.local_addr(), "app", "apppw", Some(schema), caps, 28).unwrap()
}

/// In gbk `\xad\x60` is one character (the last byte of UTF-8 `中` and a
/// backquote): `SELECT 1 AS a中`, LAST_INSERT_ID() -- `` calls
/// `LAST_INSERT_ID()` there, where Funnel's reading sees a quoted name up
/// to the comment and so replaced nothing. On the one connection the
/// server answered with the id another client's insert left (777); now
/// the connection is given the client's own (0) first.
#[test]
fn isolation_a_read_of_the_insert_id_a_gbk_character_hides_is_the_clients_own() {
    let db = MariaDb::shared();
    let schema = schema_with_t(db, "gbk_li_b", "gbk_li", "id INT AUTO_INCREMENT PRIMARY KEY");
    db.exec(&format!("ALTER TABLE {schema}.t AUTO_INCREMENT = 777"));
    let proxy = one_backend_proxy(db, "gbk_li_b", &schema, 1);
    // Both in gbk_chinese_ci (28): one pool key, one connection.
    let gbk = || gbk_client(&proxy, &schema, Capabilities::EMPTY);
    let mut b = gbk();
    b.query("INSERT INTO t () VALUES ()").unwrap();
    assert_eq!(
        b.query("SELECT LAST_INSERT_ID()").unwrap().rows(),
        [vec![Some("777".to_string())]]
    );
    let mut a = gbk();
    let rows = a.query("SELECT 1 AS a中`, LAST_INSERT_ID() -- `").unwrap();
    assert_eq!(rows.rows()[0][1].as_deref(), Some("0"), "{rows:?}");
    // The client's own id still reaches the other client's reads.
    assert_eq!(
        b.query("SELECT LAST_INSERT_ID()").unwrap().rows(),
        [vec![Some("777".to_string())]]
    );
}

/// A named lock taken where only a gbk reading of the text sees the call
/// (`\xad\x60` is one character) pins the session, and the pin lasts while
/// the lock is held: a later `RELEASE_LOCK` of another name (or of the one
/// beside it the usual reading sees) let it go, as the check asked about
/// that name only, and the connection went back
/// to the pool holding the lock, where another client's `GET_LOCK` of it
/// returned 1 at once (same connection) instead of waiting.
#[test]
fn isolation_a_named_lock_a_gbk_character_hides_keeps_its_pin() {
    let db = MariaDb::shared();
    let schema = schema_with_t(db, "gbk_nl_b", "gbk_nl", "id INT");
    let proxy = one_backend_proxy(db, "gbk_nl_b", &schema, 2);
    let gbk = || gbk_client(&proxy, &schema, Capabilities::EMPTY);
    // The lock only that reading sees, alone or beside one both see.
    for (k, (took_at, sql)) in [
        (1, "SELECT 1 AS a中`, GET_LOCK('{lock}', 0) -- `"),
        (
            2,
            "SELECT GET_LOCK('{seen}', 0), 1 AS a中`, GET_LOCK('{lock}', 0) -- `",
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let lock = format!("{schema}_x{k}");
        let seen = format!("{schema}_s{k}");
        let mut a = gbk();
        let took = a
            .query(&sql.replace("{lock}", &lock).replace("{seen}", &seen))
            .unwrap();
        assert_eq!(took.rows()[0][took_at].as_deref(), Some("1"), "{took:?}");
        a.query(&format!("SELECT RELEASE_LOCK('{seen}')")).unwrap();
        let mut b = gbk();
        let got = b.query(&format!("SELECT GET_LOCK('{lock}', 0)")).unwrap();
        assert_eq!(
            got.rows(),
            [vec![Some("0".to_string())]],
            "{sql}: a's lock went to b"
        );
    }
}

/// A `COMMIT RELEASE` only a gbk reading of the text sees (`\xad\x60` is
/// one character, so no quoted name hides the `;`): the server ends the
/// session and closes the connection after its OK. Funnel gave that
/// connection back to the pool, where the next client got ERR 9007; now
/// it looks (a ping) and closes the client's connection as the server did.
#[test]
fn isolation_a_commit_release_a_gbk_character_hides_closes_only_its_session() {
    let db = MariaDb::shared();
    let schema = schema_with_t(db, "gbk_cr_b", "gbk_cr", "id INT");
    let proxy = one_backend_proxy(db, "gbk_cr_b", &schema, 1);
    let gbk = |caps| gbk_client(&proxy, &schema, caps);
    let mut a = gbk(Capabilities::CLIENT_MULTI_STATEMENTS);
    let mut q = vec![0x03];
    q.extend_from_slice("SELECT 1 AS a中`; COMMIT RELEASE -- `".as_bytes());
    let reply = a.roundtrip(&q, Expect::Results).unwrap();
    assert_ne!(reply.last().and_then(|p| p.first()), Some(&0xff), "{reply:?}");
    let mut b = gbk(Capabilities::EMPTY);
    let r = b.query("SELECT 1");
    assert!(r.is_ok(), "the next client got {r:?}");
    // The releasing client's connection is closed, as the server's was.
    assert!(a.query("SELECT 1").is_err());
}

/// `COMMIT RELEASE` run by `EXECUTE` of a `PREPARE`d text or by `EXECUTE
/// IMMEDIATE` ends the session as written out (checked on 10.11): the
/// next client never gets the closed connection.
#[test]
fn isolation_a_commit_release_run_by_execute_closes_only_its_session() {
    let db = MariaDb::shared();
    let schema = schema_with_t(db, "exec_cr_b", "exec_cr", "id INT");
    let proxy = one_backend_proxy(db, "exec_cr_b", &schema, 1);
    for steps in [
        &["PREPARE s FROM 'COMMIT RELEASE'", "EXECUTE s"][..],
        &["EXECUTE IMMEDIATE 'COMMIT RELEASE'"],
        &["SET @q = 'ROLLBACK RELEASE'", "EXECUTE IMMEDIATE @q"],
    ] {
        let mut a = MiniClient::connect(proxy.local_addr(), "app", "apppw", Some(&schema)).unwrap();
        for sql in steps {
            a.query(sql).unwrap();
        }
        let r = a.query("SELECT 1");
        assert!(r.is_err(), "{steps:?}: the releasing client got {r:?}");
        drop(a);
        let mut b = MiniClient::connect(proxy.local_addr(), "app", "apppw", Some(&schema)).unwrap();
        let r = b.query("SELECT 1");
        assert!(r.is_ok(), "{steps:?}: the next client got {r:?}");
    }
}

/// `SET STATEMENT completion_type = RELEASE FOR COMMIT` (or `ROLLBACK`)
/// ends the session after its OK and the server closes the connection
/// (checked on 10.11), as a `COMMIT RELEASE` does, also when `SET
/// STATEMENT` wraps that: the next client never gets that connection
/// (before, it got ERR 9007), and the client's own closes.
#[test]
fn isolation_a_commit_released_by_a_statement_variable_closes_only_its_session() {
    let db = MariaDb::shared();
    let schema = schema_with_t(db, "stmt_cr_b", "stmt_cr", "id INT");
    let proxy = one_backend_proxy(db, "stmt_cr_b", &schema, 1);
    for sql in [
        "SET STATEMENT completion_type = 2 FOR COMMIT",
        "SET STATEMENT completion_type = 'RELEASE' FOR ROLLBACK WORK",
        "SET STATEMENT max_statement_time = 10 FOR COMMIT RELEASE",
    ] {
        let mut a = MiniClient::connect(proxy.local_addr(), "app", "apppw", Some(&schema)).unwrap();
        a.query(sql).unwrap();
        let mut b = MiniClient::connect(proxy.local_addr(), "app", "apppw", Some(&schema)).unwrap();
        let r = b.query("SELECT 1");
        assert!(r.is_ok(), "{sql}: the next client got {r:?}");
        drop(b);
        assert!(a.query("SELECT 1").is_err(), "{sql}");
    }
}
