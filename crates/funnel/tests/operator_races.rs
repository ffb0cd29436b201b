//! Operator actions racing commands in flight: a reload that replaces a
//! pool (a new backend password), `REMOVE BACKEND` and `DRAIN BACKEND`
//! while clients stream a result set, hold a transaction, run prepared
//! statements and wait in the backlog for that pool; and `KILL` racing
//! the start of its target's command. Expectations are a direct
//! connection's: results arrive whole, transactions keep their
//! connection, waiters move on or get a prompt ERR, nothing runs twice,
//! and the pools' counts settle.

use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use funnel_config::Config;
use funnel_engine::Proxy;
use funnel_testkit::client_opts as opts;
use funnel_testkit::MariaDb;
use mysql::prelude::Queryable;
use mysql::Conn;

struct Env {
    proxy: Proxy,
    listeners: funnel_admin::Listeners,
    path: std::path::PathBuf,
    _dir: tempfile::TempDir,
    schema: String,
    /// Backend accounts `a` (the first backend's) and `b`.
    accounts: [String; 2],
}

/// The configuration file's text: backend `main` logging in as `account`,
/// one core, a pool of two connections and a long backlog wait.
fn yaml(schema: &str, account: &str) -> String {
    yaml_with(schema, account, "bpw")
}

/// [`yaml`] with the backend's `password`.
fn yaml_with(schema: &str, account: &str, password: &str) -> String {
    format!(
        "listen: 127.0.0.1:0\ncores: 1\n\
         users:\n  - name: app\n    password: apppw\n    default_schema: {schema}\n\
         backends:\n  - name: main\n    address: {}\n    user: {account}\n    password: {password}\n\
         pool:\n  max_per_core: 2\n  min_idle_per_core: 0\n\
         backlog:\n  wait_timeout: 30s\n\
         monitor:\n  interval: 100ms\n\
         admin:\n  listen: 127.0.0.1:0\n  user: admin\n  password: secret\n",
        MariaDb::shared().addr()
    )
}

fn env(prefix: &str) -> Env {
    env_on(prefix, 1)
}

/// [`env`] on `cores` cores.
fn env_on(prefix: &str, cores: usize) -> Env {
    let db = MariaDb::shared();
    let schema = db.fresh_database(prefix);
    let accounts = [format!("{schema}_a"), format!("{schema}_b")];
    for a in &accounts {
        db.create_user(a, "bpw");
    }
    db.exec(&format!(
        "CREATE TABLE {schema}.t (id INT PRIMARY KEY) ENGINE=InnoDB"
    ));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("funnel.yaml");
    let text = yaml(&schema, &accounts[0]).replace("cores: 1\n", &format!("cores: {cores}\n"));
    std::fs::write(&path, text).unwrap();
    let cfg = Config::load(&path).unwrap();
    let proxy = funnel_testkit::funnel::start(cfg.clone());
    let listeners = funnel_admin::start(&cfg, proxy.handle(), Some(path.clone())).unwrap();
    Env {
        proxy,
        listeners,
        path,
        _dir: dir,
        schema,
        accounts,
    }
}

impl Env {
    fn admin(&self) -> Conn {
        let port = self.listeners.admin.as_ref().unwrap().local_addr().port();
        Conn::new(opts(port, "admin", "secret")).unwrap()
    }

    fn client(&self) -> Conn {
        Conn::new(opts(self.proxy.local_addr().port(), "app", "apppw")).unwrap()
    }

    /// `SHOW POOLS` as (backend, status, leased, pinned, waiting) rows.
    fn pools(&self, admin: &mut Conn) -> Vec<(String, String, u64, u64, u64)> {
        let rows: Vec<mysql::Row> = admin.query("SHOW POOLS").unwrap();
        rows.iter()
            .map(|r| {
                let n = |c: &str| r.get::<String, _>(c).unwrap().parse::<u64>().unwrap();
                (
                    r.get("backend").unwrap(),
                    r.get("status").unwrap(),
                    n("leased"),
                    n("pinned"),
                    n("waiting"),
                )
            })
            .collect()
    }

    fn rows_in_t(&self) -> i64 {
        MariaDb::shared()
            .query_first::<i64>(&format!("SELECT COUNT(*) FROM {}.t", self.schema))
            .unwrap_or_default()
    }
}

/// The backend account that served a query.
fn served_by(c: &mut Conn) -> String {
    c.query_first("SELECT SUBSTRING_INDEX(CURRENT_USER(), '@', 1)")
        .unwrap()
        .unwrap()
}

/// The code and message of the MySQL error `r` failed with.
fn error<T: std::fmt::Debug>(r: Result<T, mysql::Error>) -> (u16, String) {
    match r {
        Err(mysql::Error::MySqlError(e)) => (e.code, e.message),
        other => panic!("expected a MySQL error, got {other:?}"),
    }
}

const ROWS: u64 = 20_000;

/// A client that starts a 20 MB result set, reads its first row, then
/// waits for `go` before reading the rest; answers (rows, sum of seq), or
/// the error that ended the stream.
fn streamer(
    mut c: Conn,
    started: mpsc::Sender<()>,
    go: mpsc::Receiver<()>,
) -> thread::JoinHandle<Result<(u64, u64), mysql::Error>> {
    thread::spawn(move || {
        let mut result = c
            .query_iter(format!("SELECT seq, REPEAT('x', 1000) FROM seq_1_to_{ROWS}"))
            .unwrap();
        let mut rows = 0u64;
        let mut sum = 0u64;
        for row in result.by_ref() {
            let row = row?;
            let seq: u64 = row.get(0).unwrap();
            rows += 1;
            sum += seq;
            if rows == 1 {
                started.send(()).unwrap();
                let _ = go.recv();
            }
        }
        drop(result);
        Ok((rows, sum))
    })
}

/// What an operator does to backend `main` in the race tests.
#[derive(Clone, Copy, Debug)]
enum Action {
    /// Reload from the file with `main` logging in as account `b`: its
    /// pool is replaced.
    ReloadNewLogin,
    /// `ADD BACKEND other` (account `b`), then `REMOVE BACKEND main`.
    AddThenRemove,
    /// `ADD BACKEND other` (account `b`), then `DRAIN BACKEND main`.
    AddThenDrain,
}

/// Leases held on `main`'s pool (a result set mid-stream, a transaction,
/// both connections of the pool) and a write waiting in its backlog when
/// the operator acts: the stream arrives whole, the transaction commits
/// on its connection, the waiter runs once on the new backend, a prepared
/// statement runs on, and SHOW POOLS settles with nothing leased, pinned
/// or waiting.
fn leases_survive(action: Action) {
    let e = env(&format!("orace{}", action as u8));
    let mut admin = e.admin();
    let (old, new) = (e.accounts[0].clone(), e.accounts[1].clone());
    // A prepared statement, prepared on the old pool.
    let mut prepared = e.client();
    let stmt = prepared.prep("SELECT ? + 1").unwrap();
    assert_eq!(prepared.exec_first::<i64, _, _>(&stmt, (1,)).unwrap(), Some(2));
    // Logged in before the pool is full (a login's schema check takes a
    // connection).
    let (mut tx, streaming, mut waiter) = (e.client(), e.client(), e.client());
    // Connection 1: a transaction.
    tx.query_drop("BEGIN").unwrap();
    tx.query_drop("INSERT INTO t VALUES (1)").unwrap();
    assert_eq!(served_by(&mut tx), old);
    // Connection 2: a result set, stalled after its first row.
    let (started_tx, started) = mpsc::channel();
    let (go, go_rx) = mpsc::channel();
    let stream = streamer(streaming, started_tx, go_rx);
    started.recv_timeout(Duration::from_secs(10)).unwrap();
    // A write waits for a connection of `main`.
    let waiting = thread::spawn(move || {
        let at = Instant::now();
        let r = waiter.query_drop("INSERT INTO t VALUES (2)");
        (r, at.elapsed(), waiter)
    });
    funnel_testkit::wait_until_within("the write waits", Duration::from_secs(10), || {
        e.pools(&mut admin).iter().any(|p| p.4 == 1)
    });
    let addr = MariaDb::shared().addr();
    match action {
        Action::ReloadNewLogin => {
            std::fs::write(&e.path, yaml(&e.schema, &new)).unwrap();
            admin.query_drop("RELOAD").unwrap();
        }
        Action::AddThenRemove | Action::AddThenDrain => {
            admin
                .query_drop(format!("ADD BACKEND other {addr} {new} bpw"))
                .unwrap();
            let verb = if matches!(action, Action::AddThenRemove) {
                "REMOVE"
            } else {
                "DRAIN"
            };
            admin.query_drop(format!("{verb} BACKEND main")).unwrap();
        }
    }
    // The waiter moves to the new pool at once and runs there, once.
    let (r, took, mut waiter) = waiting.join().unwrap();
    r.unwrap_or_else(|err| panic!("{action:?}: the waiting write: {err}"));
    assert!(took < Duration::from_secs(10), "{action:?}: waited {took:?}");
    assert_eq!(served_by(&mut waiter), new, "{action:?}");
    // The prepared statement runs on the new pool.
    assert_eq!(prepared.exec_first::<i64, _, _>(&stmt, (41,)).unwrap(), Some(42));
    // The transaction keeps its connection to the end.
    assert_eq!(served_by(&mut tx), old, "{action:?}: the transaction moved");
    tx.query_drop("INSERT INTO t VALUES (3)").unwrap();
    tx.query_drop("COMMIT").unwrap();
    // The stream arrives whole.
    go.send(()).unwrap();
    let (rows, sum) = stream.join().unwrap().unwrap();
    assert_eq!((rows, sum), (ROWS, ROWS * (ROWS + 1) / 2), "{action:?}");
    assert_eq!(e.rows_in_t(), 3, "{action:?}: each write once");
    drop((tx, waiter, prepared));
    // Nothing left leased, pinned or waiting; the old pool's rows go (a
    // drained backend stays listed as `drained`).
    funnel_testkit::wait_until_within("the pools settle", Duration::from_secs(10), || {
        let pools = e.pools(&mut admin);
        let main: Vec<&str> = pools
            .iter()
            .filter(|p| p.0 == "main")
            .map(|p| p.1.as_str())
            .collect();
        let expected: &[&str] = match action {
            Action::ReloadNewLogin => &["up"],
            Action::AddThenRemove => &[],
            Action::AddThenDrain => &["drained"],
        };
        pools.iter().all(|p| p.2 == 0 && p.3 == 0 && p.4 == 0) && main == expected
    });
}

#[test]
fn operator_race_reload_with_a_new_login_under_leases() {
    leases_survive(Action::ReloadNewLogin);
}

#[test]
fn operator_race_remove_backend_under_leases() {
    leases_survive(Action::AddThenRemove);
}

#[test]
fn operator_race_drain_backend_under_leases() {
    leases_survive(Action::AddThenDrain);
}

/// A hostgroup whose only backend is drained while a command waits for
/// it: the command gets ERR 9004 saying so at once, as a command sent a
/// moment later does, not after the backlog's 30 s (nor, as before, 9003
/// "cannot open a connection to backend"); the pool's leases end normally.
#[test]
fn operator_race_drain_of_the_only_backend_fails_waiters_promptly() {
    let e = env("oraceonly");
    let mut admin = e.admin();
    let mut holders: Vec<Conn> = (0..2).map(|_| e.client()).collect();
    let mut waiter = e.client();
    for (i, c) in holders.iter_mut().enumerate() {
        c.query_drop("BEGIN").unwrap();
        c.query_drop(format!("INSERT INTO t VALUES ({i})")).unwrap();
    }
    let waiting = thread::spawn(move || {
        let at = Instant::now();
        let r = waiter.query_drop("INSERT INTO t VALUES (9)");
        (r, at.elapsed(), waiter)
    });
    funnel_testkit::wait_until_within("the write waits", Duration::from_secs(10), || {
        e.pools(&mut admin).iter().any(|p| p.4 == 1)
    });
    admin.query_drop("DRAIN BACKEND main").unwrap();
    let (r, took, mut waiter) = waiting.join().unwrap();
    let (code, message) = error(r);
    assert_eq!(code, 9004, "{message}");
    assert!(message.contains("every backend in it is drained"), "{message}");
    assert!(took < Duration::from_secs(5), "{took:?}");
    // What a command sent now gets.
    assert_eq!(
        error(waiter.query_drop("INSERT INTO t VALUES (9)")),
        (code, message)
    );
    for c in &mut holders {
        c.query_drop("COMMIT").unwrap();
    }
    assert_eq!(e.rows_in_t(), 2);
    drop(holders);
    funnel_testkit::wait_until_within("the pool drains", Duration::from_secs(10), || {
        e.pools(&mut admin)
            .iter()
            .all(|p| p.2 == 0 && p.3 == 0 && p.4 == 0 && p.1 == "drained")
    });
}

/// How a killed client's statement ended.
#[derive(Debug, PartialEq, Eq, Hash, Clone, Copy)]
enum Outcome {
    /// It got its OK: the kill came after it.
    Ok,
    /// An ERR with this code.
    Err(u16),
    /// The connection closed with no answer.
    Closed,
}

fn outcome(r: Result<(), mysql::Error>) -> Outcome {
    match r {
        Ok(()) => Outcome::Ok,
        Err(mysql::Error::MySqlError(e)) => Outcome::Err(e.code),
        Err(_) => Outcome::Closed,
    }
}

/// `KILL CONNECTION` of a client racing the start of its statement, at
/// offsets from before it is sent to while it runs, on a core with one
/// backend connection. Every other round the client holds a transaction
/// and a named lock there (pinned); in the others it has only a user
/// variable, which each statement's connection is given first, and runs
/// in autocommit. Whatever the timing: the killed client gets its OK, ERR
/// 1927 or a closed connection (never the server's 1317 for the
/// interrupted statement), and its session ends; its transaction never
/// commits, and an autocommit statement ran whole or not at all; and the
/// connection hands nothing of it to the next client (no open
/// transaction, no lock, no variable).
#[test]
fn operator_race_kill_connection_at_the_start_of_a_command_leaves_nothing() {
    kill_at_the_start(1);
}

/// The same with the killer and its target on either of two cores (a
/// KILL for another core's client travels there as a message).
#[test]
fn operator_race_kill_connection_across_cores_at_the_start_of_a_command_leaves_nothing() {
    kill_at_the_start(2);
}

fn kill_at_the_start(cores: usize) {
    let e = env_on(&format!("oracekill{cores}"), cores);
    let db = MariaDb::shared();
    let mut admin = e.admin();
    admin.query_drop("SET pool.max_per_core = 1").unwrap();
    let mut killer = e.client();
    let mut next = e.client();
    let lock = format!("{}_lock", e.schema);
    let mut seen = std::collections::HashMap::new();
    for round in 0..60u64 {
        let pinned = round % 2 == 0;
        let mut victim = e.client();
        let id = victim.connection_id();
        victim.query_drop("SET @secret = 'victim'").unwrap();
        if pinned {
            victim
                .query_first::<i64, _>(format!("SELECT GET_LOCK('{lock}', 0)"))
                .unwrap();
            victim.query_drop("BEGIN").unwrap();
            victim
                .query_drop(format!("INSERT INTO t VALUES ({})", 1000 + round))
                .unwrap();
        }
        let base = 100_000 + round * 1000;
        let (ready_tx, ready) = mpsc::channel();
        let statement = thread::spawn(move || {
            ready_tx.send(()).unwrap();
            // 100 rows, about 10 ms.
            let r = victim.query_drop(format!(
                "INSERT INTO t SELECT {base} + seq FROM seq_1_to_100 WHERE SLEEP(0.0001) = 0"
            ));
            // The client stays connected until the KILL is answered.
            (outcome(r), victim)
        });
        ready.recv().unwrap();
        thread::sleep(Duration::from_micros((round / 2 % 10) * 1500));
        let killed = killer.query_drop(format!("KILL CONNECTION {id}"));
        let (got, mut victim) = statement.join().unwrap();
        killed.unwrap_or_else(|err| panic!("round {round}: {err}; the statement: {got:?}"));
        let alive_after = victim.query_drop("DO 1").is_ok();
        drop(victim);
        assert!(
            matches!(got, Outcome::Ok | Outcome::Err(1927) | Outcome::Closed),
            "round {round}: {got:?}"
        );
        assert!(!alive_after, "round {round}: the killed session went on");
        *seen.entry((pinned, got)).or_insert(0) += 1;
        // The next client of that connection inherits nothing.
        funnel_testkit::wait_until_within("the lock is released", Duration::from_secs(10), || {
            db.query_first::<Option<i64>>(&format!("SELECT IS_USED_LOCK('{lock}')"))
                .flatten()
                .is_none()
        });
        let (in_tx, secret): (i64, Option<String>) = next
            .query_first("SELECT @@in_transaction, @secret")
            .unwrap()
            .unwrap();
        assert_eq!((in_tx, secret), (0, None), "round {round}");
        next.query_drop("DO 1").unwrap();
        let rows = db
            .query_first::<i64>(&format!(
                "SELECT COUNT(*) FROM {}.t WHERE id BETWEEN {base} AND {base} + 1000",
                e.schema
            ))
            .unwrap_or_default();
        if pinned {
            assert_eq!(e.rows_in_t(), 0, "round {round}: the transaction never commits");
        } else {
            assert!(rows == 0 || rows == 100, "round {round}: {rows} rows");
            assert!(
                got != Outcome::Ok || rows == 100,
                "round {round}: {got:?}, {rows} rows"
            );
            db.exec(&format!("DELETE FROM {}.t", e.schema));
        }
    }
    eprintln!("outcomes (pinned, outcome): {seen:?}");
    funnel_testkit::wait_until_within("the pool settles", Duration::from_secs(10), || {
        e.pools(&mut admin)
            .iter()
            .all(|p| p.2 == 0 && p.3 == 0 && p.4 == 0)
    });
}

/// `KILL CONNECTION` of a client that stopped reading its result set
/// mid-stream: MariaDB closes a killed connection's socket at once, so
/// its backend connection must not stay leased until
/// `client.net_write_timeout` (60 s) runs out while the client never
/// reads: on a one-connection core, every other client waited that long.
#[test]
fn operator_race_kill_connection_of_a_stalled_reader_frees_its_connection() {
    let e = env("oracestall");
    let mut admin = e.admin();
    admin.query_drop("SET pool.max_per_core = 1").unwrap();
    let mut killer = e.client();
    let mut next = e.client();
    let reader = e.client();
    let id = reader.connection_id();
    let (started_tx, started) = mpsc::channel();
    let (go, go_rx) = mpsc::channel();
    let stream = streamer(reader, started_tx, go_rx);
    started.recv_timeout(Duration::from_secs(10)).unwrap();
    // Stalled: the stream still holds the only connection.
    thread::sleep(Duration::from_millis(300));
    assert_eq!(e.pools(&mut admin).iter().map(|p| p.2).sum::<u64>(), 1);
    killer.query_drop(format!("KILL CONNECTION {id}")).unwrap();
    let at = Instant::now();
    assert_eq!(next.query_first::<i64, _>("SELECT 7").unwrap(), Some(7));
    let took = at.elapsed();
    go.send(()).unwrap();
    assert!(took < Duration::from_secs(5), "the next client waited {took:?}");
    // As from the server: the stream ends in a lost connection, no ERR.
    match stream.join().unwrap() {
        Err(mysql::Error::MySqlError(err)) => panic!("the killed client was answered: {err}"),
        Err(_) => {}
        Ok(got) => panic!("the killed client's stream went on to its end: {got:?}"),
    }
    funnel_testkit::wait_until_within("the pool settles", Duration::from_secs(10), || {
        e.pools(&mut admin)
            .iter()
            .all(|p| p.2 == 0 && p.3 == 0 && p.4 == 0)
    });
}

/// `KILL CONNECTION` of a client that stopped sending its LOCAL INFILE
/// data midway: as for a stalled reader, the server would shut the
/// killed connection's socket at once, and the statement loads nothing;
/// Funnel waited for `client.net_read_timeout` (30 s) holding the
/// backend connection, and the next client on a one-connection core with
/// it.
#[test]
fn operator_race_kill_connection_of_a_stalled_local_infile_frees_its_connection() {
    use funnel_protocol::flags::Capabilities;
    use funnel_testkit::mini_client::MiniClient;
    let e = env("oraceinfile");
    let db = MariaDb::shared();
    db.exec("SET GLOBAL local_infile = 1");
    let mut admin = e.admin();
    admin.query_drop("SET pool.max_per_core = 1").unwrap();
    let mut killer = e.client();
    let mut next = e.client();
    let mut loader = MiniClient::connect_with(
        e.proxy.local_addr(),
        "app",
        "apppw",
        None,
        Capabilities::CLIENT_LOCAL_FILES,
    )
    .unwrap();
    let id: u64 = loader.query("SELECT CONNECTION_ID()").unwrap().rows()[0][0]
        .clone()
        .unwrap()
        .parse()
        .unwrap();
    loader
        .send_query(&format!(
            "LOAD DATA LOCAL INFILE 'f.csv' INTO TABLE {}.t",
            e.schema
        ))
        .unwrap();
    let (seq, request) = loader.read_packet().unwrap();
    assert_eq!(request[0], 0xfb, "{request:?}");
    // Half the file, then nothing.
    let mut data = bytes::BytesMut::new();
    funnel_protocol::framing::write_packet(&mut data, seq.wrapping_add(1), b"1\n2\n3\n");
    loader.write_raw(&data).unwrap();
    thread::sleep(Duration::from_millis(300));
    killer.query_drop(format!("KILL CONNECTION {id}")).unwrap();
    let at = Instant::now();
    assert_eq!(next.query_first::<i64, _>("SELECT 7").unwrap(), Some(7));
    let took = at.elapsed();
    assert!(took < Duration::from_secs(5), "the next client waited {took:?}");
    // The killed client reads the close; the file loaded nothing.
    assert!(loader.read_packet().is_err(), "the killed client was answered");
    assert_eq!(e.rows_in_t(), 0);
    funnel_testkit::wait_until_within("the pool settles", Duration::from_secs(10), || {
        e.pools(&mut admin)
            .iter()
            .all(|p| p.2 == 0 && p.3 == 0 && p.4 == 0)
    });
}

/// `SHOW SERVERS` (backend, status, connections) rows named `name`.
fn servers(admin: &mut Conn, name: &str) -> Vec<(String, String)> {
    let rows: Vec<mysql::Row> = admin.query("SHOW SERVERS").unwrap();
    let mut out: Vec<(String, String)> = rows
        .iter()
        .filter(|r| r.get::<String, _>("backend").unwrap() == name)
        .map(|r| (r.get("status").unwrap(), r.get("connections").unwrap()))
        .collect();
    out.sort();
    out
}

/// `REMOVE BACKEND main` while a transaction holds one of its connections,
/// then `ADD BACKEND main` again (another login): `SHOW SERVERS` lists
/// the new backend and the old pool's left-over connection under the same
/// name. The old row must not read as an operator's drain of the new
/// backend (`draining`, as `DRAIN BACKEND` shows): it says `retiring`, and
/// goes with its last connection. `SHOW POOLS` says the same.
#[test]
fn operator_race_servers_tell_a_removed_pool_from_a_drain_of_its_successor() {
    let e = env("oraceservers");
    let mut admin = e.admin();
    let addr = MariaDb::shared().addr();
    let new = e.accounts[1].clone();
    let mut tx = e.client();
    tx.query_drop("BEGIN").unwrap();
    tx.query_drop("INSERT INTO t VALUES (1)").unwrap();
    admin
        .query_drop(format!("ADD BACKEND other {addr} {new} bpw"))
        .unwrap();
    admin.query_drop("REMOVE BACKEND main").unwrap();
    assert_eq!(servers(&mut admin, "main"), [("retiring".into(), "1".into())]);
    admin
        .query_drop(format!("ADD BACKEND main {addr} {new} bpw"))
        .unwrap();
    let rows = servers(&mut admin, "main");
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!(rows[0].0, "retiring", "{rows:?}");
    assert_eq!(rows[0].1, "1", "{rows:?}");
    assert_eq!(rows[1].0, "up", "{rows:?}");
    let pools: Vec<String> = e
        .pools(&mut admin)
        .into_iter()
        .filter(|p| p.0 == "main")
        .map(|p| p.1)
        .collect();
    assert!(pools.contains(&"retiring".to_string()), "{pools:?}");
    tx.query_drop("COMMIT").unwrap();
    assert_eq!(e.rows_in_t(), 1);
    funnel_testkit::wait_until_within("the old pool goes", Duration::from_secs(10), || {
        servers(&mut admin, "main")
            .iter()
            .map(|r| r.0.as_str())
            .collect::<Vec<_>>()
            == ["up"]
    });
}

/// The backend's password rotated (on the server, then by a reload) while
/// a statement runs on a connection opened with the old one: `KILL QUERY`
/// of it must still stop it, as on the server, where the account is the
/// same. Before, the kill logged in with the old pool's password, was
/// refused (1045) and the statement ran on.
#[test]
fn operator_race_kill_query_after_a_password_rotation_stops_the_statement() {
    let e = env("oracerotate");
    let db = MariaDb::shared();
    let account = e.accounts[0].clone();
    let mut admin = e.admin();
    let mut killer = e.client();
    let mut victim = e.client();
    let id = victim.connection_id();
    let sleeper = thread::spawn(move || {
        let at = Instant::now();
        let r = victim.query_first::<i64, _>("SELECT SLEEP(30)");
        (r, at.elapsed())
    });
    funnel_testkit::wait_until_within("the sleep runs", Duration::from_secs(10), || {
        db.query_first::<i64>(
            "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE INFO = 'SELECT SLEEP(30)'",
        ) == Some(1)
    });
    db.exec(&format!("ALTER USER '{account}'@'%' IDENTIFIED BY 'rotated'"));
    std::fs::write(&e.path, yaml_with(&e.schema, &account, "rotated")).unwrap();
    admin.query_drop("RELOAD").unwrap();
    killer
        .query_drop(format!("KILL QUERY {id}"))
        .unwrap_or_else(|err| panic!("KILL QUERY: {err}"));
    let (r, took) = sleeper.join().unwrap();
    // Stopped: ERR 1317, or SLEEP() returning 1 when the KILL lands
    // between its checks.
    match r {
        Ok(v) => assert_eq!(v, Some(1)),
        Err(err) => assert_eq!(error::<()>(Err(err)).0, 1317),
    }
    assert!(took < Duration::from_secs(10), "{took:?}");
}

/// A `KILL` (`QUERY` or `CONNECTION`) that reaches a client's session
/// after its last look for one and before its statement is on a backend
/// thread (widened here by fault injection to a second before the send):
/// nobody named the statement to the server, so it ran to its end while
/// the killer had its OK, as no KILL on the server lets it. It must stop
/// at once: `KILL QUERY` with 1317 (or SLEEP() returning 1), `KILL
/// CONNECTION` with the closed connection; also for a client pinned to
/// its connection (a user variable only the server has).
#[test]
fn operator_race_kill_just_before_the_send_still_stops_the_statement() {
    let e = env("oracesend");
    let db = MariaDb::shared();
    let mut killer = e.client();
    for (pinned, connection) in [(false, false), (false, true), (true, false), (true, true)] {
        let mut victim = e.client();
        let id = victim.connection_id();
        if pinned {
            victim.query_drop("SELECT 1 INTO @keep").unwrap();
        }
        let marker = format!("SELECT SLEEP(8) /* {}{pinned}{connection} */", e.schema);
        std::env::set_var("FUNNEL_FAULT_INJECTION", "1");
        std::env::set_var("FUNNEL_FAULT_SEND_DELAY_MS", "1000");
        let sql = marker.clone();
        let sleeper = thread::spawn(move || {
            let at = Instant::now();
            let r = victim.query_first::<i64, _>(sql);
            (r, at.elapsed())
        });
        thread::sleep(Duration::from_millis(300));
        let how = if connection { "CONNECTION" } else { "QUERY" };
        killer.query_drop(format!("KILL {how} {id}")).unwrap();
        std::env::remove_var("FUNNEL_FAULT_SEND_DELAY_MS");
        let (r, took) = sleeper.join().unwrap();
        assert!(
            took < Duration::from_secs(5),
            "KILL {how}, pinned {pinned}: the statement ran {took:?}"
        );
        match (connection, r) {
            (false, Ok(v)) => assert_eq!(v, Some(1), "KILL QUERY"),
            (false, Err(err)) => assert_eq!(error::<()>(Err(err)).0, 1317, "KILL QUERY"),
            (true, Err(mysql::Error::MySqlError(err))) => panic!("the killed client was answered: {err}"),
            (true, Err(_)) => {}
            (true, Ok(v)) => panic!("the killed client's statement ran to its end: {v:?}"),
        }
        funnel_testkit::wait_until_within("the server's statement ends", Duration::from_secs(3), || {
            db.query_first::<i64>(&format!(
                "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE INFO = '{marker}'"
            )) == Some(0)
        });
    }
}

/// A `KILL QUERY` that reaches a command waiting for a connection in the
/// same turn as the connection itself (widened here by fault injection to
/// a second between the connection's arrival and the session's look at
/// what ended its wait): the command must still stop (1317, unsent), not
/// run to its end while the killer had its OK.
#[test]
fn operator_race_kill_query_with_the_connection_still_stops_the_command() {
    let e = env("oracecheckout");
    let db = MariaDb::shared();
    let mut killer = e.client();
    let mut victim = e.client();
    let id = victim.connection_id();
    let marker = format!("SELECT SLEEP(8) /* {} */", e.schema);
    std::env::set_var("FUNNEL_FAULT_INJECTION", "1");
    std::env::set_var("FUNNEL_FAULT_CHECKOUT_DELAY_MS", "1000");
    let sql = marker.clone();
    let sleeper = thread::spawn(move || {
        let at = Instant::now();
        let r = victim.query_first::<i64, _>(sql);
        (r, at.elapsed(), victim)
    });
    thread::sleep(Duration::from_millis(300));
    killer.query_drop(format!("KILL QUERY {id}")).unwrap();
    std::env::remove_var("FUNNEL_FAULT_CHECKOUT_DELAY_MS");
    let (r, took, mut victim) = sleeper.join().unwrap();
    assert!(took < Duration::from_secs(5), "the statement ran {took:?}: {r:?}");
    assert_eq!(error(r).0, 1317, "stopped before it was sent");
    assert_eq!(
        db.query_first::<i64>(&format!(
            "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE INFO = '{marker}'"
        )),
        Some(0),
        "the statement never reached the server"
    );
    // The session goes on, and its next command is not stopped.
    assert_eq!(victim.query_first::<i64, _>("SELECT 7").unwrap(), Some(7));
}
