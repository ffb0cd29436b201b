//! A replication-farm shape: one writer and two readers (told apart by
//! `read_only` and `@@port`), with read/write split, weights, query rules,
//! a reader killed and restarted under load, backends that close idle
//! connections, and backends added and removed while clients run.
//! Causal reads (a session reading its own writes on a lagging replica)
//! are in `backends/causal_reads.rs`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use funnel_config::Config;
use funnel_engine::Proxy;
use funnel_protocol::tracker::Expect;
use funnel_testkit::funnel::set_drained;
use funnel_testkit::mini_client::MiniClient;
use funnel_testkit::MariaDb;
use mysql::prelude::Queryable;
use mysql::{Conn, OptsBuilder};

#[path = "backends/causal_reads.rs"]
mod causal_reads;
#[path = "backends/galera.rs"]
mod galera;
#[path = "backends/max_writers.rs"]
mod max_writers;

struct Farm {
    writer: MariaDb,
    r1: MariaDb,
    r2: MariaDb,
}

fn server(read_only: bool, extra: &[&str]) -> MariaDb {
    let mut b = MariaDb::builder();
    if read_only {
        b = b.server_arg("--read-only");
    }
    for a in extra {
        b = b.server_arg(*a);
    }
    let db = b.start().unwrap_or_else(|e| panic!("{e}"));
    db.create_user("fb", "bpw");
    db.create_database("farm");
    db.exec("CREATE TABLE farm.t (id INT PRIMARY KEY, v INT)");
    db
}

fn farm(writer_args: &[&str]) -> Farm {
    Farm {
        writer: server(false, writer_args),
        r1: server(true, &[]),
        r2: server(true, &[]),
    }
}

/// YAML for a Funnel in front of `backends` (name, server, hostgroup, weight).
fn config(backends: &[(&str, &MariaDb, &str, u32)], extra: &str) -> Config {
    let mut yaml = String::from(
        "listen: 127.0.0.1:0\ncores: 1\n\
         users:\n  - name: app\n    password: apppw\n    default_schema: farm\n    \
         default_hostgroup: writer\n    read_hostgroup: readers\nbackends:\n",
    );
    for (name, db, hg, w) in backends {
        yaml.push_str(&format!(
            "  - name: {name}\n    address: {}\n    user: fb\n    password: bpw\n    hostgroup: {hg}\n    weight: {w}\n",
            db.addr()
        ));
    }
    yaml.push_str(
        "pool:\n  max_per_core: 4\n  min_idle_per_core: 1\n\
         monitor:\n  interval: 200ms\n  timeout: 500ms\n  failures_before_down: 1\n",
    );
    yaml.push_str(extra);
    Config::from_yaml_str(&yaml).unwrap_or_else(|e| panic!("{e}\n{yaml}"))
}

/// One hostgroup `db` of `backends` (name, address; account fb), the
/// user `app` defaulting to it (`user_extra`: more of its keys), and
/// `extra` YAML after them (pool, monitor, ...).
fn one_hostgroup(user_extra: &str, backends: &[(&str, std::net::SocketAddr)], extra: &str) -> Config {
    let mut y = format!(
        "listen: 127.0.0.1:0\ncores: 1\n\
         users:\n  - name: app\n    password: apppw\n    default_hostgroup: db\n{user_extra}\
         backends:\n"
    );
    for (name, addr) in backends {
        y.push_str(&format!(
            "  - name: {name}\n    address: {addr}\n    user: fb\n    password: bpw\n    hostgroup: db\n"
        ));
    }
    y.push_str(extra);
    Config::from_yaml_str(&y).unwrap_or_else(|e| panic!("{e}\n{y}"))
}

fn full(f: &Farm, extra: &str) -> Config {
    config(
        &[
            ("w", &f.writer, "writer", 1),
            ("r1", &f.r1, "readers", 1),
            ("r2", &f.r2, "readers", 3),
        ],
        extra,
    )
}

fn client(p: &Proxy) -> Conn {
    client_at(p.local_addr().port())
}

fn client_at(port: u16) -> Conn {
    Conn::new(
        OptsBuilder::new()
            .ip_or_hostname(Some("127.0.0.1"))
            .tcp_port(port)
            .user(Some("app"))
            .pass(Some("apppw"))
            .prefer_socket(false)
            .read_timeout(Some(Duration::from_secs(20))),
    )
    .unwrap()
}

fn port(c: &mut Conn, sql: &str) -> u16 {
    c.query_first::<u16, _>(sql).unwrap().unwrap()
}

#[test]
fn backends_read_write_split_and_query_rules_route_by_port() {
    let f = farm(&[]);
    let rules = "query_rules:\n  - match_prefix: \"SELECT /* w */\"\n    hostgroup: writer\n";
    let proxy = funnel_testkit::funnel::start(full(&f, rules));
    let mut c = client(&proxy);
    let readers = [f.r1.port(), f.r2.port()];
    for _ in 0..20 {
        assert!(
            readers.contains(&port(&mut c, "SELECT @@port")),
            "plain reads go to readers"
        );
    }
    assert_eq!(
        port(&mut c, "SELECT /* w */ @@port"),
        f.writer.port(),
        "a query rule picks the writer"
    );
    c.query_drop("INSERT INTO t VALUES (1, 1)").unwrap();
    assert_eq!(
        f.writer.query_first::<i64>("SELECT COUNT(*) FROM farm.t"),
        Some(1),
        "writes reach the writer"
    );
    assert_eq!(f.r1.query_first::<i64>("SELECT COUNT(*) FROM farm.t"), Some(0));
    c.query_drop("BEGIN").unwrap();
    assert_eq!(
        port(&mut c, "SELECT @@port"),
        f.writer.port(),
        "reads in a transaction stay on the writer"
    );
    c.query_drop("COMMIT").unwrap();
    // With autocommit off any read of a table opens a transaction, which
    // the statements after it follow: so all of them go to the writer.
    c.query_drop("SET autocommit = 0").unwrap();
    for _ in 0..5 {
        assert_eq!(
            port(&mut c, "SELECT @@port FROM t WHERE id = 1"),
            f.writer.port(),
            "reads with autocommit off go to the writer"
        );
        c.query_drop("UPDATE t SET v = v + 1 WHERE id = 1").unwrap();
        c.query_drop("COMMIT").unwrap();
    }
    c.query_drop("SET autocommit = 1").unwrap();
    assert!(
        readers.contains(&port(&mut c, "SELECT @@port")),
        "reads go to readers again"
    );
    let locking = c
        .query_first::<u16, _>("SELECT @@port FROM t WHERE id = 1 FOR UPDATE")
        .unwrap();
    assert_eq!(locking, Some(f.writer.port()), "locking reads go to the writer");
    // A read that leaves warnings keeps its (reader) connection for the
    // client's SHOW WARNINGS only: the write right after it is routed.
    for round in 0..5 {
        // A read right after keeps it, and sees the client's own warnings
        // (a different count each round, so another connection's cannot pass).
        let warnings = round + 1;
        c.query_drop(format!("SELECT {}", vec!["1/0"; warnings].join(", ")))
            .unwrap();
        assert_eq!(
            c.query_first::<(usize, u32), _>("SELECT @@warning_count, 7")
                .unwrap(),
            Some((warnings, 7)),
            "round {round}"
        );
        c.query_drop("SELECT 1/0").unwrap();
        c.query_drop(format!("INSERT INTO t VALUES ({}, 0)", 10 + round))
            .unwrap();
        c.query_drop("SELECT CAST('abc' AS INT)").unwrap();
        assert_eq!(
            port(&mut c, "SELECT @@port FROM t WHERE id = 1 FOR UPDATE"),
            f.writer.port(),
            "round {round}"
        );
    }
    assert_eq!(
        f.writer.query_first::<i64>("SELECT COUNT(*) FROM farm.t"),
        Some(6)
    );
    for r in [&f.r1, &f.r2] {
        assert_eq!(r.query_first::<i64>("SELECT COUNT(*) FROM farm.t"), Some(0));
    }
}

#[test]
fn backends_weights_hold_within_ten_percent() {
    let f = farm(&[]);
    let proxy = funnel_testkit::funnel::start(full(&f, ""));
    let mut c = client(&proxy);
    let mut counts: HashMap<u16, usize> = HashMap::new();
    for _ in 0..10_000 {
        *counts.entry(port(&mut c, "SELECT @@port")).or_default() += 1;
    }
    let (a, b) = (counts[&f.r1.port()] as f64, counts[&f.r2.port()] as f64);
    // Weights 1 : 3 -> 2500 : 7500.
    assert!(
        (a - 2500.0).abs() <= 250.0 && (b - 7500.0).abs() <= 750.0,
        "{counts:?}"
    );
}

/// Weights hold under concurrent load too, not only for one client at a
/// time: the heavier backend, busy more often, still gets its share
/// (before, comparing bare outstanding counts made 1:3 come out 1:1 from
/// two clients on).
#[test]
fn backends_weights_hold_under_concurrent_load() {
    let f = farm(&[]);
    let proxy = funnel_testkit::funnel::start(full(&f, ""));
    let port = proxy.local_addr().port();
    for threads in [2, 6] {
        let run = Duration::from_secs(3);
        let (errors, seen) = readers_under_load(port, threads, run, run, || {});
        assert_eq!(errors, 0);
        let (a, b) = (seen[&f.r1.port()] as f64, seen[&f.r2.port()] as f64);
        // Weights 1 : 3 -> 25% : 75%.
        let share = b / (a + b);
        assert!(
            (0.65..=0.85).contains(&share),
            "{threads} clients: r2 (weight 3) took {share:.2} of {seen:?}"
        );
    }
}

/// Reads from several threads until `stop`; returns (errors, ports seen in
/// the last `tail` of the run).
fn readers_under_load(
    funnel_port: u16,
    threads: usize,
    run: Duration,
    tail: Duration,
    mid: impl FnOnce(),
) -> (usize, HashMap<u16, usize>) {
    let stop = Arc::new(AtomicBool::new(false));
    let errors = Arc::new(AtomicUsize::new(0));
    let late: Arc<Mutex<HashMap<u16, usize>>> = Arc::default();
    let started = Instant::now();
    let workers: Vec<_> = (0..threads)
        .map(|_| {
            let (stop, errors, late) = (stop.clone(), errors.clone(), late.clone());
            let mut c = client_at(funnel_port);
            thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    match c.query_first::<u16, _>("SELECT @@port") {
                        Ok(Some(p)) if started.elapsed() > run - tail => {
                            *late.lock().unwrap().entry(p).or_default() += 1
                        }
                        Ok(_) => {}
                        Err(e) => {
                            eprintln!("client error: {e}");
                            errors.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            })
        })
        .collect();
    mid();
    while started.elapsed() < run {
        thread::sleep(Duration::from_millis(20));
    }
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.join().unwrap();
    }
    let late = late.lock().unwrap().clone();
    (errors.load(Ordering::Relaxed), late)
}

#[test]
fn backends_reader_killed_under_load_then_rejoins() {
    let f = farm(&[]);
    let proxy = funnel_testkit::funnel::start(full(&f, ""));
    let threads = 4;
    let port = proxy.local_addr().port();
    let (errors, late) = readers_under_load(
        port,
        threads,
        Duration::from_secs(6),
        Duration::from_secs(1),
        || {
            thread::sleep(Duration::from_millis(1000));
            f.r2.kill();
            thread::sleep(Duration::from_millis(1500));
            f.r2.start_again();
        },
    );
    // Only commands running on r2 at the moment it died may fail.
    assert!(errors <= threads, "{errors} errors");
    assert!(
        late.get(&f.r2.port()).copied().unwrap_or(0) > 0,
        "r2 rejoined: {late:?}"
    );
    assert!(late.get(&f.r1.port()).copied().unwrap_or(0) > 0, "{late:?}");
}

/// A Funnel in front of `f` whose user `rep` has the readers as its
/// default hostgroup (`app` the writer), and `rep` logged in to `farm`
/// once the first health checks have told the readers from the writer.
fn reporting_user(f: &Farm) -> (Proxy, Conn) {
    let mut yaml = String::from(
        "listen: 127.0.0.1:0\ncores: 1\n\
         users:\n  - name: app\n    password: apppw\n    default_hostgroup: writer\n\
         \x20 - name: rep\n    password: reppw\n    default_schema: farm\n    default_hostgroup: readers\n\
         backends:\n",
    );
    for (name, db, hg) in [
        ("w", &f.writer, "writer"),
        ("r1", &f.r1, "readers"),
        ("r2", &f.r2, "readers"),
    ] {
        yaml.push_str(&format!(
            "  - name: {name}\n    address: {}\n    user: fb\n    password: bpw\n    hostgroup: {hg}\n",
            db.addr()
        ));
    }
    yaml.push_str("pool:\n  max_per_core: 4\n  min_idle_per_core: 0\nmonitor:\n  interval: 200ms\n");
    let proxy = funnel_testkit::funnel::start(Config::from_yaml_str(&yaml).unwrap());
    // Until the first health check, a reader might be the writer: wait.
    thread::sleep(Duration::from_millis(300));
    let c = Conn::new(
        OptsBuilder::new()
            .ip_or_hostname(Some("127.0.0.1"))
            .tcp_port(proxy.local_addr().port())
            .user(Some("rep"))
            .pass(Some("reppw"))
            .db_name(Some("farm"))
            .prefer_socket(false)
            .read_timeout(Some(Duration::from_secs(20))),
    )
    .expect("a login naming a schema");
    (proxy, c)
}

/// A reporting user whose default hostgroup has only read-only servers:
/// its session statements (`SET`, `USE`, a schema at login, autocommit
/// off) change no data and run there; only real writes are refused.
#[test]
fn backends_a_user_of_read_only_servers_sets_and_reads() {
    let f = farm(&[]);
    let (_proxy, mut c) = reporting_user(&f);
    let readers = [f.r1.port(), f.r2.port()];
    c.query_drop("SET time_zone = '+03:00'").unwrap();
    c.query_drop("USE farm").unwrap();
    assert!(readers.contains(&port(&mut c, "SELECT @@port")));
    assert_eq!(
        c.query_first::<String, _>("SELECT @@time_zone")
            .unwrap()
            .as_deref(),
        Some("+03:00")
    );
    c.query_drop("SET autocommit = 0").unwrap();
    assert!(readers.contains(&port(&mut c, "SELECT @@port + 0 * COUNT(*) FROM t")));
    c.query_drop("COMMIT").unwrap();
    c.query_drop("SET autocommit = 1").unwrap();
    let err = c.query_drop("INSERT INTO t VALUES (9, 9)").unwrap_err();
    match err {
        mysql::Error::MySqlError(e) => {
            assert_eq!(e.code, 9004, "{}", e.message);
            assert!(e.message.contains("is read-only"), "says why: {}", e.message);
        }
        other => panic!("{other:?}"),
    }
}

/// The reporting user of a hostgroup of read-only servers alone, through
/// binary-protocol prepared statements (Go's `database/sql` with
/// arguments, JDBC's `useServerPrepStmts`): its reads run there as its
/// text reads do, and only a write is refused.
#[test]
fn backends_a_user_of_read_only_servers_runs_prepared_reads() {
    let f = farm(&[]);
    let (_proxy, mut c) = reporting_user(&f);
    let readers = [f.r1.port(), f.r2.port()];
    for i in 0..4 {
        let at: Option<u16> = c
            .exec_first("SELECT @@port + 0 * COUNT(*) + ? FROM t", (0,))
            .unwrap_or_else(|e| panic!("prepared read {i}: {e}"));
        assert!(at.is_some_and(|p| readers.contains(&p)), "{at:?}");
    }
    let stmt = c.prep("SELECT @@port FROM DUAL WHERE ? = 1").unwrap();
    let at: Option<u16> = c.exec_first(&stmt, (1,)).unwrap();
    assert!(at.is_some_and(|p| readers.contains(&p)), "{at:?}");
    match c.exec_drop("INSERT INTO t VALUES (?, 9)", (9,)).unwrap_err() {
        mysql::Error::MySqlError(e) => assert!(
            e.code == 9004 || e.code == 1290,
            "a write to read-only servers: {} {}",
            e.code,
            e.message
        ),
        other => panic!("{other:?}"),
    }
    for r in [&f.r1, &f.r2] {
        assert_eq!(r.query_first::<i64>("SELECT COUNT(*) FROM farm.t"), Some(0));
    }
}

/// With `read_fallback`, reads go to the default hostgroup as soon as no
/// reader can give a connection, not only once the health monitor has
/// marked them down.
#[test]
fn backends_reads_fall_back_when_the_readers_refuse_connections() {
    let f = farm(&[]);
    let yaml = format!(
        "listen: 127.0.0.1:0\ncores: 1\n\
         users:\n  - name: app\n    password: apppw\n    default_schema: farm\n    \
         default_hostgroup: writer\n    read_hostgroup: readers\nbackends:\n\
         \x20 - name: w\n    address: {}\n    user: fb\n    password: bpw\n    hostgroup: writer\n\
         \x20 - name: r1\n    address: {}\n    user: fb\n    password: bpw\n    hostgroup: readers\n\
         pool:\n  max_per_core: 4\n  min_idle_per_core: 0\n\
         monitor:\n  interval: 5s\n  failures_before_down: 3\n",
        f.writer.addr(),
        f.r1.addr()
    );
    let proxy = funnel_testkit::funnel::start(Config::from_yaml_str(&yaml).unwrap());
    let mut c = client(&proxy);
    assert_eq!(port(&mut c, "SELECT @@port"), f.r1.port());
    f.r1.kill();
    // The first read may meet the reader's pooled connection dead (9007:
    // it may have run, so it is not retried); every later one falls back.
    let mut ports = Vec::new();
    let mut errors = Vec::new();
    for _ in 0..20 {
        match c.query_first::<u16, _>("SELECT @@port") {
            Ok(p) => ports.push(p.unwrap()),
            Err(mysql::Error::MySqlError(e)) => errors.push(e.code),
            Err(e) => panic!("{e}"),
        }
    }
    assert!(
        errors.len() <= 1 && errors.iter().all(|&e| e == 9007),
        "{errors:?}"
    );
    assert!(ports.iter().all(|&p| p == f.writer.port()), "{ports:?}");
}

/// Drained readers take no reads: the other reader serves them, then,
/// with every reader drained, the default hostgroup (`read_fallback`) or,
/// without a fallback, ERR 9004 saying why. The monitor does not check a
/// drained backend, so stopping its server does not mark it down.
#[test]
fn backends_drained_readers_take_no_reads_and_fall_back() {
    let f = farm(&[]);
    let mut cfg = full(&f, "");
    let mut strict = cfg.users[0].clone();
    strict.name = "strict".into();
    strict.read_fallback = false;
    cfg.users.push(strict);
    let proxy = funnel_testkit::funnel::start(cfg);
    let mut c = client(&proxy);
    let mut s = Conn::new(
        OptsBuilder::new()
            .ip_or_hostname(Some("127.0.0.1"))
            .tcp_port(proxy.local_addr().port())
            .user(Some("strict"))
            .pass(Some("apppw"))
            .prefer_socket(false),
    )
    .unwrap();
    let reads = |c: &mut Conn| -> Vec<u16> { (0..20).map(|_| port(c, "SELECT @@port")).collect() };

    set_drained(&proxy, "r2", true);
    assert!(reads(&mut c).iter().all(|&p| p == f.r1.port()), "r1 alone serves");
    set_drained(&proxy, "r1", true);
    assert!(
        reads(&mut c).iter().all(|&p| p == f.writer.port()),
        "every reader drained: reads fall back to the writer"
    );
    let err = s.query_drop("SELECT @@port").unwrap_err();
    assert!(
        matches!(&err, mysql::Error::MySqlError(m)
            if m.code == 9004 && m.message.contains("'readers'") && m.message.contains("drained")),
        "{err:?}"
    );

    // Maintenance: the drained replica's server stops; no one marks it down.
    f.r1.kill();
    thread::sleep(Duration::from_millis(1000));
    let healthy = |name: &str| {
        proxy.snapshots()[0]
            .pools
            .iter()
            .find(|p| p.backend == name && !p.retired)
            .map(|p| (p.status, p.healthy))
    };
    assert_eq!(healthy("r1"), Some(("drained", true)));

    set_drained(&proxy, "r2", false);
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !seen.contains(&f.r2.port()) {
        assert!(Instant::now() < deadline, "r2 never served again: {seen:?}");
        seen.push(port(&mut s, "SELECT @@port"));
    }
    assert!(
        reads(&mut s).iter().all(|&p| p == f.r2.port()),
        "undrained, r2 serves the strict user's reads"
    );
}

/// Writer and replicas in one hostgroup: no replica takes writes before
/// the health monitor has looked at it, at start or when a reload adds it.
#[test]
fn backends_an_added_replica_takes_no_writes_before_its_first_check() {
    let f = farm(&[]);
    let yaml = |with_r2: bool| {
        let mut backends = vec![("w", f.writer.addr()), ("r1", f.r1.addr())];
        if with_r2 {
            backends.push(("r2", f.r2.addr()));
        }
        one_hostgroup(
            "    default_schema: farm\n",
            &backends,
            "pool:\n  min_idle_per_core: 0\nmonitor:\n  interval: 30s\n",
        )
    };
    // Writes right after the start wait for the monitor's first verdict,
    // which runs at once: r1 is known read-only by then.
    let mut proxy = funnel_testkit::funnel::start(yaml(false));
    let mut c = client(&proxy);
    for id in 100..106 {
        c.query_drop(format!("INSERT INTO t VALUES ({id}, 0)")).unwrap();
    }
    assert_eq!(f.r1.query_first::<i64>("SELECT COUNT(*) FROM farm.t"), Some(0));
    assert!(proxy.reload(yaml(true)).unwrap().is_empty());
    for id in 0..12 {
        c.query_drop(format!("INSERT INTO t VALUES ({id}, 0)")).unwrap();
    }
    assert_eq!(
        f.writer.query_first::<i64>("SELECT COUNT(*) FROM farm.t"),
        Some(18)
    );
    assert_eq!(f.r2.query_first::<i64>("SELECT COUNT(*) FROM farm.t"), Some(0));
}

/// A relay to `upstream` that holds each new connection for `delay`
/// before connecting it: the server's greeting, so a health check's
/// verdict, comes that much later.
fn slow_relay(upstream: std::net::SocketAddr, delay: Duration) -> std::net::SocketAddr {
    use std::net::{TcpListener, TcpStream};
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    thread::spawn(move || {
        for client in listener.incoming().flatten() {
            thread::spawn(move || {
                thread::sleep(delay);
                if let Ok(server) = TcpStream::connect(upstream) {
                    funnel_testkit::splice::splice(client, server);
                }
            });
        }
    });
    addr
}

/// Before the monitor's first verdict nothing tells a writer from a
/// read-only replica: writes wait for it rather than guess.
#[test]
fn backends_writes_before_any_verdict_wait_for_one() {
    let f = farm(&[]);
    let delay = Duration::from_millis(700);
    let config = one_hostgroup(
        "",
        &[
            ("r1", slow_relay(f.r1.addr(), delay)),
            ("w", slow_relay(f.writer.addr(), delay)),
        ],
        "pool:\n  min_idle_per_core: 0\nmonitor:\n  interval: 30s\n  timeout: 5s\n",
    );
    let proxy = funnel_testkit::funnel::start(config);
    // A bare client: drivers' connect-time reads would give the monitor
    // time to report first.
    let addr = proxy.local_addr();
    let writers: Vec<_> = (0..4)
        .map(|i| {
            thread::spawn(move || {
                let mut c = MiniClient::connect(addr, "app", "apppw", None).unwrap();
                c.query(&format!("INSERT INTO farm.t VALUES ({i}, 0)")).unwrap();
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    assert_eq!(f.r1.query_first::<i64>("SELECT COUNT(*) FROM farm.t"), Some(0));
    assert_eq!(
        f.writer.query_first::<i64>("SELECT COUNT(*) FROM farm.t"),
        Some(4)
    );
}

/// A writer added by a reload to a hostgroup that had none is checked at
/// once, not after the monitor's interval, and the writes that arrive
/// meanwhile wait for that verdict instead of failing.
#[test]
fn backends_a_writer_added_by_reload_takes_writes_at_once() {
    let f = farm(&[]);
    let yaml = |with_writer: bool| {
        let mut backends = vec![("r1", f.r1.addr())];
        if with_writer {
            backends.push(("w", f.writer.addr()));
        }
        one_hostgroup(
            "",
            &backends,
            "pool:\n  min_idle_per_core: 0\nbacklog:\n  wait_timeout: 20s\nmonitor:\n  interval: 60s\n",
        )
    };
    let mut proxy = funnel_testkit::funnel::start(yaml(false));
    let mut c = client(&proxy);
    // The replica's verdict comes first: then nothing can take a write.
    match c.query_drop("INSERT INTO farm.t VALUES (1, 0)") {
        Err(mysql::Error::MySqlError(e)) => assert_eq!(e.code, 9004, "{e:?}"),
        other => panic!("a write with no writer: {other:?}"),
    }
    assert!(proxy.reload(yaml(true)).unwrap().is_empty());
    let started = Instant::now();
    c.query_drop("INSERT INTO farm.t VALUES (2, 0)").unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "the write waited {:?}: the new writer was not checked at once",
        started.elapsed()
    );
    assert_eq!(
        f.writer.query_first::<i64>("SELECT COUNT(*) FROM farm.t"),
        Some(1)
    );
    assert_eq!(f.r1.query_first::<i64>("SELECT COUNT(*) FROM farm.t"), Some(0));
}

/// A server out of `max_connections` refuses the health checks' new
/// connections while the pool's open ones serve on: it is not marked down
/// (which would close them and fail every client) while they answer.
#[test]
fn backends_failed_checks_do_not_down_a_backend_whose_connections_answer() {
    let db = server(false, &["--max-connections=6"]);
    db.exec("CREATE USER filler@'%' IDENTIFIED BY 'fpw'");
    db.create_user("filler_super", "fpw");
    let yaml = format!(
        "listen: 127.0.0.1:0\ncores: 1\n\
         users:\n  - name: app\n    password: apppw\n    default_schema: farm\n\
         backends:\n\
         \x20 - name: w\n    address: {}\n    user: fb\n    password: bpw\n\
         pool:\n  max_per_core: 2\n  min_idle_per_core: 2\n\
         monitor:\n  interval: 100ms\n  timeout: 500ms\n  failures_before_down: 1\n",
        db.addr()
    );
    let proxy = funnel_testkit::funnel::start(Config::from_yaml_str(&yaml).unwrap());
    let mut c = client(&proxy);
    c.query_drop("SELECT 1").unwrap();
    // Every slot taken, the one kept for SUPER accounts too.
    let mut fillers = Vec::new();
    while let Ok(f) = db.connect_as("filler", "fpw") {
        fillers.push(f);
    }
    // A health check (as fb, a SUPER account) may hold that one a moment.
    fillers.push(funnel_testkit::eventually(Duration::from_secs(5), || {
        db.connect_as("filler_super", "fpw")
    }));
    let refused = db.connect_as("fb", "bpw").map(drop).unwrap_err().to_string();
    assert!(refused.contains("1040"), "{refused}");
    let until = Instant::now() + Duration::from_secs(2);
    let mut served = 0;
    while Instant::now() < until {
        c.query_drop("SELECT 1")
            .unwrap_or_else(|e| panic!("after {served} queries: {e}"));
        served += 1;
        thread::sleep(Duration::from_millis(20));
    }
    drop(fillers);
}

/// A failover by reload: the old writer refuses connections and the new
/// one, just added, awaits its first check. A write whose open on the old
/// one failed waits for the new one's verdict instead of failing.
#[test]
fn backends_a_write_refused_by_the_old_writer_waits_for_the_new_ones_check() {
    let f = farm(&[]);
    let new_writer = server(false, &[]);
    let yaml = |with_new: bool| {
        let mut backends = vec![("old", f.writer.addr())];
        if with_new {
            backends.push(("new", slow_relay(new_writer.addr(), Duration::from_millis(700))));
        }
        one_hostgroup(
            "",
            &backends,
            "pool:\n  min_idle_per_core: 0\nmonitor:\n  interval: 60s\n  timeout: 5s\n  failures_before_down: 3\n",
        )
    };
    let mut proxy = funnel_testkit::funnel::start(yaml(false));
    // A bare client: the old writer's pool holds no connection (a command
    // on one that died with its server gets 9007, not a retry).
    let mut c = MiniClient::connect(proxy.local_addr(), "app", "apppw", None).unwrap();
    funnel_testkit::wait_until_within("the old writer's first check", Duration::from_secs(10), || {
        proxy.snapshots()[0]
            .pools
            .iter()
            .any(|p| p.backend == "old" && p.last_check.is_some())
    });
    f.writer.kill();
    assert!(proxy.reload(yaml(true)).unwrap().is_empty());
    c.query("INSERT INTO farm.t VALUES (1, 0)")
        .unwrap_or_else(|e| panic!("the write did not wait for the new writer's check: {e:?}"));
    assert_eq!(
        new_writer.query_first::<i64>("SELECT COUNT(*) FROM farm.t"),
        Some(1)
    );
}

/// `max_replication_lag` watches named (multi-source) replication
/// connections too: MariaDB lists those only in SHOW ALL SLAVES STATUS.
#[test]
fn backends_lag_of_a_named_replication_connection_counts() {
    let writer = server(false, &["--log-bin=binlog", "--server-id=1"]);
    writer.exec("CREATE USER repl@'%' IDENTIFIED BY 'rpw'");
    writer.exec("GRANT REPLICATION SLAVE ON *.* TO repl@'%'");
    // The replica has its own copy of the setup: replicate only from here.
    writer.exec("RESET MASTER");
    let replica = server(true, &["--server-id=2"]);
    replica.exec(&format!(
        "CHANGE MASTER 'm1' TO MASTER_HOST='127.0.0.1', MASTER_PORT={}, \
         MASTER_USER='repl', MASTER_PASSWORD='rpw'",
        writer.port()
    ));
    replica.exec("START SLAVE 'm1'");
    let yaml = format!(
        "listen: 127.0.0.1:0\ncores: 1\n\
         users:\n  - name: app\n    password: apppw\n    default_schema: farm\n    \
         default_hostgroup: writer\n    read_hostgroup: readers\nbackends:\n\
         \x20 - name: w\n    address: {}\n    user: fb\n    password: bpw\n    hostgroup: writer\n\
         \x20 - name: r1\n    address: {}\n    user: fb\n    password: bpw\n    hostgroup: readers\n    \
         max_replication_lag: 5s\n\
         pool:\n  min_idle_per_core: 0\nmonitor:\n  interval: 200ms\n",
        writer.addr(),
        replica.addr()
    );
    let proxy = funnel_testkit::funnel::start(Config::from_yaml_str(&yaml).unwrap());
    let mut c = client(&proxy);
    let reads_go_to = |c: &mut Conn, want: u16| {
        let deadline = Instant::now() + Duration::from_secs(10);
        while port(c, "SELECT @@port") != want {
            assert!(Instant::now() < deadline, "reads never went to port {want}");
            thread::sleep(Duration::from_millis(100));
        }
    };
    reads_go_to(&mut c, replica.port());
    replica.exec("STOP SLAVE 'm1'");
    reads_go_to(&mut c, writer.port());
}

#[test]
fn backends_idle_connections_closed_by_the_server_cause_no_errors() {
    let f = farm(&["--wait-timeout=2"]);
    for r in [&f.r1, &f.r2] {
        r.exec("SET GLOBAL wait_timeout = 2");
    }
    let proxy = funnel_testkit::funnel::start(full(&f, ""));
    let mut c = client(&proxy);
    for round in 0..3 {
        c.query_drop("INSERT INTO t VALUES (10 + 1, 0) ON DUPLICATE KEY UPDATE v = v + 1")
            .unwrap();
        let _ = port(&mut c, "SELECT @@port");
        assert_eq!(
            c.query_first::<i64, _>("SELECT 1").unwrap(),
            Some(1),
            "round {round}"
        );
        thread::sleep(Duration::from_millis(2600));
    }
}

#[test]
fn backends_added_and_removed_under_load_without_errors() {
    let f = farm(&[]);
    let only_r1 = config(&[("w", &f.writer, "writer", 1), ("r1", &f.r1, "readers", 1)], "");
    let with_r2 = config(
        &[
            ("w", &f.writer, "writer", 1),
            ("r1", &f.r1, "readers", 1),
            ("r2", &f.r2, "readers", 1),
        ],
        "",
    );
    let only_r2 = config(&[("w", &f.writer, "writer", 1), ("r2", &f.r2, "readers", 1)], "");
    let mut proxy = funnel_testkit::funnel::start(only_r1);
    let port = proxy.local_addr().port();
    let (errors, late) = readers_under_load(port, 4, Duration::from_secs(5), Duration::from_secs(1), || {
        thread::sleep(Duration::from_millis(1000));
        assert!(proxy.reload(with_r2).unwrap().is_empty());
        thread::sleep(Duration::from_millis(1500));
        assert!(proxy.reload(only_r2).unwrap().is_empty());
    });
    assert_eq!(errors, 0);
    assert!(
        late.contains_key(&f.r2.port()) && !late.contains_key(&f.r1.port()),
        "{late:?}"
    );
}

/// A server with sysbench's tables (and its user), for read-only load.
fn sysbench_server() -> MariaDb {
    let db = MariaDb::start();
    db.exec("CREATE USER sbtest@'%' IDENTIFIED BY 'sbtest'; GRANT ALL ON *.* TO sbtest@'%'");
    db.create_database("sbtest");
    let out = std::process::Command::new("sysbench")
        .args([
            "oltp_read_only",
            "--mysql-host=127.0.0.1",
            "--mysql-user=sbtest",
            "--mysql-password=sbtest",
        ])
        .arg(format!("--mysql-port={}", db.port()))
        .args(["--mysql-db=sbtest", "--tables=2", "--table-size=1000", "prepare"])
        .output()
        .expect("sysbench is missing: apt-get install -y sysbench (scripts/test installs it)");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    db
}

#[test]
fn backends_added_and_removed_under_sysbench_load() {
    let (a, b, c) = (sysbench_server(), sysbench_server(), sysbench_server());
    let cfg = |list: &[(&str, &MariaDb)]| {
        let mut yaml = String::from(
            "listen: 127.0.0.1:0\ncores: 1\nusers:\n  - name: sbtest\n    password: sbtest\n    default_schema: sbtest\n\
             backends:\n",
        );
        for (name, db) in list {
            yaml.push_str(&format!(
                "  - name: {name}\n    address: {}\n    user: sbtest\n    password: sbtest\n",
                db.addr()
            ));
        }
        yaml.push_str("pool:\n  max_per_core: 4\n  min_idle_per_core: 1\nbacklog:\n  wait_timeout: 20s\n");
        Config::from_yaml_str(&yaml).unwrap()
    };
    let mut proxy = funnel_testkit::funnel::start(cfg(&[("a", &a), ("b", &b)]));
    let port = proxy.local_addr().port();
    let load = thread::spawn(move || {
        std::process::Command::new("sysbench")
            .args([
                "oltp_read_only",
                "--mysql-host=127.0.0.1",
                "--mysql-user=sbtest",
                "--mysql-password=sbtest",
            ])
            .arg(format!("--mysql-port={port}"))
            .args([
                "--mysql-db=sbtest",
                "--tables=2",
                "--table-size=1000",
                "--threads=16",
                "--time=6",
            ])
            .args(["--db-ps-mode=disable", "--mysql-ignore-errors=none", "run"])
            .output()
            .unwrap()
    });
    thread::sleep(Duration::from_secs(2));
    assert!(proxy
        .reload(cfg(&[("a", &a), ("b", &b), ("c", &c)]))
        .unwrap()
        .is_empty());
    thread::sleep(Duration::from_secs(2));
    assert!(proxy.reload(cfg(&[("b", &b), ("c", &c)])).unwrap().is_empty());
    let out = load.join().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "sysbench failed:\n{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = |key: &str| text.lines().find(|l| l.contains(key)).unwrap_or("").to_string();
    assert!(
        line("ignored errors:").contains(" 0 "),
        "{}",
        line("ignored errors:")
    );
    assert!(line("reconnects:").contains(" 0 "), "{}", line("reconnects:"));
    // The added backend took traffic.
    let served: i64 = c
        .query_first(
            "SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS WHERE VARIABLE_NAME = 'COM_SELECT'",
        )
        .unwrap();
    assert!(served > 100, "the added backend served {served} selects");
}

/// Writer and replica in one hostgroup, the writer drained: a session with
/// autocommit off reads where transactions go, so the transaction its read
/// opens, and the writes that follow it, never land on the read-only
/// replica (the shared backend account may write past `read_only`).
#[test]
fn backends_autocommit_off_reads_open_no_transaction_on_a_replica() {
    let f = farm(&[]);
    let yaml = format!(
        "listen: 127.0.0.1:0\ncores: 1\n\
         users:\n  - name: app\n    password: apppw\n    default_schema: farm\n    default_hostgroup: db\n\
         backends:\n\
         \x20 - name: w\n    address: {}\n    user: fb\n    password: bpw\n    hostgroup: db\n\
         \x20 - name: r1\n    address: {}\n    user: fb\n    password: bpw\n    hostgroup: db\n\
         pool:\n  min_idle_per_core: 0\nmonitor:\n  interval: 200ms\n",
        f.writer.addr(),
        f.r1.addr()
    );
    let proxy = funnel_testkit::funnel::start(Config::from_yaml_str(&yaml).unwrap());
    thread::sleep(Duration::from_millis(300));
    let mut c = client(&proxy);
    c.query_drop("SET autocommit = 0").unwrap();
    set_drained(&proxy, "w", true);
    let read = c.query_first::<i64, _>("SELECT COUNT(*) FROM t");
    let write = c.query_drop("INSERT INTO t VALUES (1, 1)");
    let commit = c.query_drop("COMMIT");
    assert_eq!(
        f.r1.query_first::<i64>("SELECT COUNT(*) FROM farm.t"),
        Some(0),
        "a write reached the read-only replica: read {read:?}, write {write:?}, commit {commit:?}"
    );
}

/// The writer goes away (a failover): clients whose driver sends a `SET`
/// at connect, names a schema or sends `USE` keep reading from the
/// replicas, as with a proxy that only records SETs; writes still wait for
/// a writer (ERR 9003/9004), and the tracked SET holds no connection on the
/// replica (the session's next write goes to the writer once it is back).
#[test]
fn backends_session_statements_run_on_a_replica_while_the_writer_is_down() {
    let f = farm(&[]);
    let proxy = funnel_testkit::funnel::start(full(&f, ""));
    let mut early = client(&proxy);
    f.writer.stop();
    wait_until("the writer marked down", || {
        early.query_drop("INSERT INTO t VALUES (0, 0)").is_err()
    });
    // A login naming a schema (`default_schema: farm`), then a connect-time SET.
    let mut c = client(&proxy);
    c.query_drop("SET NAMES utf8mb4").unwrap();
    c.query_drop("SET time_zone = '+05:00'").unwrap();
    c.query_drop("USE farm").unwrap();
    assert_eq!(
        c.query_first::<String, _>("SELECT @@time_zone")
            .unwrap()
            .as_deref(),
        Some("+05:00")
    );
    let readers = [f.r1.port(), f.r2.port()];
    assert!(readers.contains(&port(&mut c, "SELECT @@port")));
    // A driver turning multi-statements on (`COM_SET_OPTION`) at connect.
    let mut mini = MiniClient::connect(proxy.local_addr(), "app", "apppw", None).unwrap();
    let on = mini.roundtrip(&[0x1b, 0x00, 0x00], Expect::Status).unwrap();
    assert_eq!(on.last().and_then(|p| p.first()), Some(&0xfe), "{on:?}");
    let write = c.query_drop("INSERT INTO t VALUES (1, 1)").unwrap_err();
    let write = write.to_string();
    assert!(write.contains("9004") || write.contains("9003"), "{write}");
    f.writer.start_again();
    wait_until("the writer back", || {
        c.query_drop("INSERT INTO t VALUES (1, 1)").is_ok()
    });
    assert_eq!(
        f.writer
            .query_first::<i64>("SELECT COUNT(*) FROM farm.t WHERE id = 1"),
        Some(1)
    );
    for r in [&f.r1, &f.r2] {
        assert_eq!(r.query_first::<i64>("SELECT COUNT(*) FROM farm.t"), Some(0));
    }
    assert_eq!(
        c.query_first::<String, _>("SELECT @@time_zone")
            .unwrap()
            .as_deref(),
        Some("+05:00"),
        "the SET made on a replica follows the session"
    );
}

fn wait_until(what: &str, ready: impl FnMut() -> bool) {
    funnel_testkit::wait_until_within(what, Duration::from_secs(30), ready)
}

/// A session at the cap of user variables Funnel tracks: one more
/// `SET @x = literal` cannot be recorded, so it pins where it runs. With
/// the writer drained, that `SET` must not run on a replica: the pin would
/// hold the session there, and its writes would follow it past
/// `read_only` (the backend account may write anyway), even once the
/// writer is back.
#[test]
fn backends_user_variable_set_over_the_cap_waits_for_the_writer() {
    let f = farm(&[]);
    let proxy = funnel_testkit::funnel::start(full(&f, ""));
    let mut c = client(&proxy);
    let cap = funnel_engine::session::user_vars::MAX_VARS;
    let all: Vec<String> = (0..cap).map(|i| format!("@v{i} = {i}")).collect();
    c.query_drop(format!("SET {}", all.join(", "))).unwrap();
    set_drained(&proxy, "w", true);
    let set = c.query_drop("SET @over = 1");
    let write = c.query_drop("INSERT INTO t VALUES (1, 1)");
    set_drained(&proxy, "w", false);
    let later = c.query_drop("INSERT INTO t VALUES (2, 2)");
    for r in [&f.r1, &f.r2] {
        assert_eq!(
            r.query_first::<i64>("SELECT COUNT(*) FROM farm.t"),
            Some(0),
            "a write reached a replica: set {set:?}, write {write:?}, later {later:?}"
        );
    }
    let set = set.unwrap_err().to_string();
    assert!(set.contains("9004"), "{set}");
}

/// A reload that points a backend at another server while the monitor is
/// checking its old address: that check's verdict describes the old
/// server, and must not stand for the new one. Here the old address is
/// the writer and the new one a read-only replica: a write taken on the
/// old verdict's word would land on the replica (the backend account may
/// write past `read_only`).
#[test]
fn backends_a_verdict_on_an_old_address_does_not_stand_for_the_new_one() {
    let f = farm(&[]);
    let yaml = |addr: std::net::SocketAddr| {
        one_hostgroup(
            "",
            &[("a", addr)],
            "pool:\n  min_idle_per_core: 0\nbacklog:\n  wait_timeout: 10s\n\
             monitor:\n  interval: 30s\n  timeout: 5s\n",
        )
    };
    // The first check (at start) of the old address is still running when
    // the reload lands; the new address answers slowly too, so a write has
    // time to act on the wrong verdict before the right one comes.
    let old = slow_relay(f.writer.addr(), Duration::from_millis(1000));
    let new = slow_relay(f.r1.addr(), Duration::from_millis(1500));
    let mut proxy = funnel_testkit::funnel::start(yaml(old));
    assert!(proxy.reload(yaml(new)).unwrap().is_empty());
    let mut c = MiniClient::connect(proxy.local_addr(), "app", "apppw", None).unwrap();
    let write = c.query("INSERT INTO farm.t VALUES (1, 0)");
    assert_eq!(
        f.r1.query_first::<i64>("SELECT COUNT(*) FROM farm.t"),
        Some(0),
        "a write reached the replica on the old address's verdict: {write:?}"
    );
    match write {
        Err(funnel_testkit::mini_client::MiniError::Server(e)) => assert_eq!(e.code, 9004, "{e:?}"),
        other => panic!("a write with no writer: {other:?}"),
    }
    assert_eq!(
        f.writer.query_first::<i64>("SELECT COUNT(*) FROM farm.t"),
        Some(0)
    );
}

/// An address that accepts connections and never answers (a server
/// stopped with SIGSTOP, a partitioned host behind a firewall that
/// completes the handshake): each health check of it runs out its
/// `monitor.timeout`.
fn silent_server() -> std::net::SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    thread::spawn(move || {
        let mut held = Vec::new();
        for c in listener.incoming().flatten() {
            held.push(c);
        }
    });
    addr
}

/// Writes at start wait for the writer's first verdict: backends that do
/// not answer must not hold that verdict back by their checks' timeouts
/// one after another (a farm with a few partitioned replicas would refuse
/// every write after a restart).
#[test]
fn backends_silent_backends_do_not_hold_back_the_writers_first_verdict() {
    let f = farm(&[]);
    let names = ["silent0", "silent1", "silent2"];
    let mut backends: Vec<_> = names.iter().map(|n| (*n, silent_server())).collect();
    backends.push(("w", f.writer.addr()));
    let config = one_hostgroup(
        "",
        &backends,
        "pool:\n  min_idle_per_core: 0\nbacklog:\n  wait_timeout: 3s\n\
         monitor:\n  interval: 30s\n  timeout: 2s\n  failures_before_down: 3\n",
    );
    let proxy = funnel_testkit::funnel::start(config);
    let mut c = MiniClient::connect(proxy.local_addr(), "app", "apppw", None).unwrap();
    let started = Instant::now();
    let write = c.query("INSERT INTO farm.t VALUES (1, 0)");
    assert!(
        write.is_ok(),
        "the write after {:?}: {write:?}",
        started.elapsed()
    );
    assert_eq!(
        f.writer.query_first::<i64>("SELECT COUNT(*) FROM farm.t"),
        Some(1)
    );
}

/// A read sent to a replica runs a stored function that sets a user
/// variable: the server reports the change, but the session's writes could
/// not follow it to a read-only server, so it is not pinned there. The
/// connection is closed instead of going back to the pool: no other client
/// reads the variable, and the session's write still reaches the writer.
#[test]
fn backends_state_reported_by_a_replica_never_reaches_another_client() {
    let f = farm(&[]);
    for db in [&f.writer, &f.r1, &f.r2] {
        db.exec(
            "CREATE FUNCTION farm.f_uv() RETURNS INT DETERMINISTIC \
             BEGIN SET @fx = 7; RETURN @@port; END",
        );
    }
    let proxy = funnel_testkit::funnel::start(full(&f, ""));
    let readers = [f.r1.port(), f.r2.port()];
    let mut a = client(&proxy);
    for _ in 0..6 {
        assert!(readers.contains(&port(&mut a, "SELECT f_uv()")));
    }
    a.query_drop("INSERT INTO t VALUES (1, 1)").unwrap();
    assert_eq!(
        f.writer
            .query_first::<i64>("SELECT COUNT(*) FROM farm.t WHERE id = 1"),
        Some(1)
    );
    let mut b = client(&proxy);
    for _ in 0..20 {
        let (fx, at): (Option<i64>, u16) = b.query_first("SELECT @fx, @@port").unwrap().unwrap();
        assert!(readers.contains(&at));
        assert_eq!(fx, None, "another client's @fx on {at}");
    }
}

/// The planned failover of operations.md, done under `PAUSE`: the old
/// primary stops, the writer backend is pointed at the new one, then
/// `RESUME`. A client that logs in meanwhile naming a schema (checked on
/// a backend) waits at the pause gate like a command, rather than have its
/// check sent to the primary that is going away and its login refused.
#[test]
fn backends_a_login_during_a_failover_pause_waits_for_the_resume() {
    let old = server(false, &[]);
    let new = server(false, &[]);
    for db in [&old, &new] {
        db.create_database("farm2");
    }
    let cfg = |primary: &MariaDb| {
        let yaml = format!(
            "listen: 127.0.0.1:0\ncores: 1\n\
             users:\n  - name: app\n    password: apppw\n    default_schema: farm\n    \
             default_hostgroup: writer\nbackends:\n\
             \x20 - name: w\n    address: {}\n    user: fb\n    password: bpw\n    hostgroup: writer\n\
             pool:\n  min_idle_per_core: 0\nbacklog:\n  wait_timeout: 20s\n\
             monitor:\n  interval: 200ms\n  timeout: 500ms\n  failures_before_down: 1\n",
            primary.addr()
        );
        Config::from_yaml_str(&yaml).unwrap()
    };
    let mut proxy = funnel_testkit::funnel::start(cfg(&old));
    let port = proxy.local_addr().port();
    let mut before = client_at(port);
    assert_eq!(port_of(&mut before), old.port());
    proxy.handle().pause(true);
    thread::sleep(Duration::from_millis(100));
    old.stop();
    let login = thread::spawn(move || {
        let opts = OptsBuilder::new()
            .ip_or_hostname(Some("127.0.0.1"))
            .tcp_port(port)
            .user(Some("app"))
            .pass(Some("apppw"))
            .db_name(Some("farm2"))
            .prefer_socket(false)
            .read_timeout(Some(Duration::from_secs(30)));
        Conn::new(opts).and_then(|mut c| c.query_first::<u16, _>("SELECT @@port").map(|p| p.unwrap()))
    });
    // The monitor marks the old primary down meanwhile.
    thread::sleep(Duration::from_millis(800));
    assert!(proxy.reload(cfg(&new)).unwrap().is_empty());
    proxy.handle().pause(false);
    let served = login.join().unwrap();
    assert_eq!(
        served.unwrap_or_else(|e| panic!("a login during the pause: {e}")),
        new.port()
    );
    assert_eq!(port_of(&mut before), new.port());
}

/// A command that waits at a `PAUSE` is routed once the pause ends: a
/// reload meanwhile that moves the user to another hostgroup (the old one
/// gone) sends it there, not to the hostgroup it named when it arrived.
#[test]
fn backends_a_command_waiting_at_a_pause_routes_by_the_reload_made_meanwhile() {
    let old = server(false, &[]);
    let new = server(false, &[]);
    let cfg = |hostgroup: &str, primary: &MariaDb| {
        let yaml = format!(
            "listen: 127.0.0.1:0\ncores: 1\n\
             users:\n  - name: app\n    password: apppw\n    default_schema: farm\n    \
             default_hostgroup: {hostgroup}\nbackends:\n\
             \x20 - name: {hostgroup}\n    address: {}\n    user: fb\n    password: bpw\n    hostgroup: {hostgroup}\n\
             pool:\n  min_idle_per_core: 0\nbacklog:\n  wait_timeout: 20s\n\
             monitor:\n  interval: 200ms\n",
            primary.addr()
        );
        Config::from_yaml_str(&yaml).unwrap()
    };
    let mut proxy = funnel_testkit::funnel::start(cfg("first", &old));
    let mut c = client(&proxy);
    assert_eq!(port_of(&mut c), old.port());
    proxy.handle().pause(true);
    let waiting = thread::spawn(move || port_of(&mut c));
    thread::sleep(Duration::from_millis(300));
    assert!(proxy.reload(cfg("second", &new)).unwrap().is_empty());
    thread::sleep(Duration::from_millis(300));
    proxy.handle().pause(false);
    assert_eq!(waiting.join().unwrap(), new.port());
}

/// A read that opens no table (`SELECT 1`, `SELECT ROW_COUNT()`) keeps
/// the server's diagnostics area: after a write that failed or warned, a
/// direct connection's `SHOW WARNINGS` still reads them. The split sent
/// such reads to a replica and let the writer's connection go, so the
/// client read no warnings.
#[test]
fn backends_a_read_of_no_table_after_a_write_that_warned_keeps_its_warnings() {
    let f = farm(&[]);
    let proxy = funnel_testkit::funnel::start(full(&f, ""));
    let mut c = client(&proxy);
    c.query_drop("INSERT INTO t VALUES (1, 1)").unwrap();
    assert!(c.query_drop("INSERT INTO t VALUES (1, 1)").is_err());
    assert_eq!(c.query_first::<i64, _>("SELECT ROW_COUNT()").unwrap(), Some(-1));
    let warnings: Vec<(String, u32, String)> = c.query("SHOW WARNINGS").unwrap();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert_eq!(warnings[0].1, 1062);
    c.query_drop("SET sql_mode = ''").unwrap();
    c.query_drop("UPDATE t SET v = 99999999999 WHERE id = 1").unwrap();
    assert_eq!(c.query_first::<i64, _>("SELECT 1").unwrap(), Some(1));
    let warnings: Vec<(String, u32, String)> = c.query("SHOW WARNINGS").unwrap();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert_eq!(warnings[0].1, 1264);
    // A read of a table clears them anyway: it goes to a replica.
    let readers = [f.r1.port(), f.r2.port()];
    let (at, _): (u16, i64) = c.query_first("SELECT @@port, COUNT(*) FROM t").unwrap().unwrap();
    assert!(readers.contains(&at), "{at}");
}

fn port_of(c: &mut Conn) -> u16 {
    port(c, "SELECT @@port")
}

/// A primary and a replica in one hostgroup, a user without
/// `read_hostgroup`: reads are split within that hostgroup (as
/// configuration.md says), binary-protocol prepared ones as text ones.
#[test]
fn backends_one_mixed_hostgroup_splits_text_and_prepared_reads() {
    let f = farm(&[]);
    let cfg = one_hostgroup(
        "    default_schema: farm\n",
        &[("w", f.writer.addr()), ("r1", f.r1.addr())],
        "pool:\n  min_idle_per_core: 0\nmonitor:\n  interval: 200ms\n",
    );
    let proxy = funnel_testkit::funnel::start(cfg);
    thread::sleep(Duration::from_millis(300));
    let mut c = client(&proxy);
    let text: std::collections::BTreeSet<u16> = (0..12).map(|_| port_of(&mut c)).collect();
    assert_eq!(text, [f.writer.port(), f.r1.port()].into(), "text reads");
    let prepared: std::collections::BTreeSet<u16> = (0..12)
        .map(|_| c.exec_first("SELECT @@port + ?", (0,)).unwrap().unwrap())
        .collect();
    assert_eq!(prepared, [f.writer.port(), f.r1.port()].into(), "prepared reads");
    c.exec_drop("INSERT INTO t VALUES (?, ?)", (1, 1)).unwrap();
    assert_eq!(
        f.writer.query_first::<i64>("SELECT COUNT(*) FROM farm.t"),
        Some(1)
    );
    assert_eq!(f.r1.query_first::<i64>("SELECT COUNT(*) FROM farm.t"), Some(0));
}

/// After a failover, the promoted primary often keeps its stopped
/// replication connection (`STOP SLAVE` without `RESET SLAVE ALL`; its IO
/// thread may even keep retrying the dead old primary). In a hostgroup
/// whose members all carry `max_replication_lag` (roles move between
/// them), that primary must still take reads: it is the source of the
/// data, not a replica behind one. A read-only replica whose replication
/// stopped keeps getting none.
#[test]
fn backends_a_promoted_primary_with_stopped_replication_takes_reads() {
    let primary = server(false, &["--server-id=1"]);
    let replica = server(true, &["--server-id=2"]);
    let gone = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    for db in [&primary, &replica] {
        db.exec(&format!(
            "CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT={gone}, \
             MASTER_USER='repl', MASTER_PASSWORD='rpw', MASTER_CONNECT_RETRY=1"
        ));
    }
    // The promoted one still tries to reach the old primary.
    primary.exec("START SLAVE IO_THREAD");
    let mut yaml = String::from(
        "listen: 127.0.0.1:0\ncores: 1\n\
         users:\n  - name: app\n    password: apppw\n    default_schema: farm\n    default_hostgroup: db\n\
         backends:\n",
    );
    for (name, db) in [("p", &primary), ("r", &replica)] {
        yaml.push_str(&format!(
            "  - name: {name}\n    address: {}\n    user: fb\n    password: bpw\n    hostgroup: db\n    \
             max_replication_lag: 10s\n",
            db.addr()
        ));
    }
    yaml.push_str("pool:\n  min_idle_per_core: 0\nmonitor:\n  interval: 200ms\n");
    let proxy = funnel_testkit::funnel::start(Config::from_yaml_str(&yaml).unwrap());
    thread::sleep(Duration::from_millis(400));
    let mut c = client(&proxy);
    for i in 0..6 {
        let at = c
            .query_first::<u16, _>("SELECT @@port + 0 * COUNT(*) FROM t")
            .unwrap_or_else(|e| panic!("read {i}: {e}"));
        assert_eq!(at, Some(primary.port()), "read {i}");
    }
    c.query_drop("INSERT INTO t VALUES (1, 1)").unwrap();
}

/// Two hostgroups that are two clusters, with a schema of the same name
/// whose tables differ (shards mid-migration, or unrelated applications):
/// a prepare is described by the cluster it runs on, never replayed from
/// the other's registry entry.
#[test]
fn backends_prepares_are_described_by_their_own_hostgroups_servers() {
    let a = server(false, &[]);
    let b = server(false, &[]);
    b.exec("ALTER TABLE farm.t ADD COLUMN w VARCHAR(10), ADD COLUMN x INT");
    let yaml = format!(
        "listen: 127.0.0.1:0\ncores: 1\n\
         users:\n  - name: ua\n    password: pw\n    default_schema: farm\n    default_hostgroup: a\n\
         \x20 - name: ub\n    password: pw\n    default_schema: farm\n    default_hostgroup: b\n\
         backends:\n\
         \x20 - name: a\n    address: {}\n    user: fb\n    password: bpw\n    hostgroup: a\n\
         \x20 - name: b\n    address: {}\n    user: fb\n    password: bpw\n    hostgroup: b\n\
         pool:\n  min_idle_per_core: 0\nmonitor:\n  interval: 200ms\n",
        a.addr(),
        b.addr()
    );
    let proxy = funnel_testkit::funnel::start(Config::from_yaml_str(&yaml).unwrap());
    let login = |user: &str| {
        Conn::new(
            OptsBuilder::new()
                .ip_or_hostname(Some("127.0.0.1"))
                .tcp_port(proxy.local_addr().port())
                .user(Some(user))
                .pass(Some("pw"))
                .db_name(Some("farm"))
                .prefer_socket(false),
        )
        .unwrap()
    };
    let (mut ca, mut cb) = (login("ua"), login("ub"));
    let sql = "SELECT * FROM t WHERE id = ?";
    assert_eq!(ca.prep(sql).unwrap().num_columns(), 2);
    assert_eq!(cb.prep(sql).unwrap().num_columns(), 4, "b's table has 4 columns");
    assert_eq!(ca.prep(sql).unwrap().num_columns(), 2);
}

/// A lag limit the monitor cannot read (its account may not run SHOW
/// SLAVE STATUS) cannot keep reads off a lagging replica: Funnel says so
/// in its log, once, instead of treating the replica as keeping up in
/// silence.
#[test]
fn backends_an_unreadable_lag_limit_is_reported() {
    use std::io::{BufRead, BufReader};
    let db = MariaDb::shared();
    let schema = db.fresh_database("laglog");
    let backend = format!("{schema}_b");
    db.create_user(&backend, "bpw");
    let watcher = format!("{schema}_m");
    db.exec(&format!(
        "CREATE USER '{watcher}'@'%' IDENTIFIED BY 'mpw'; GRANT SELECT ON *.* TO '{watcher}'@'%'"
    ));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("funnel.yaml");
    std::fs::write(
        &path,
        format!(
            "listen: 127.0.0.1:0\ncores: 1\n\
             users:\n  - name: app\n    password: pw\n    default_schema: {schema}\n\
             backends:\n  - name: replica\n    address: {}\n    user: {backend}\n    password: bpw\n    \
             max_replication_lag: 5s\n\
             monitor:\n  interval: 200ms\n  user: {watcher}\n  password: mpw\n\
             log:\n  level: warn\n",
            db.addr()
        ),
    )
    .unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_funnel"))
        .arg("--config")
        .arg(&path)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut told = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(4);
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        if let Ok(line) = rx.recv_timeout(left) {
            if line.contains("cannot read the replication lag") {
                told.push(line);
            }
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(told.len(), 1, "told once over many checks: {told:?}");
    assert!(
        told[0].contains("replica") && told[0].contains(&watcher),
        "{}",
        told[0]
    );
}

/// A prepare of a text that reads the previous statement's results
/// (`ROW_COUNT()`) pins its session: its executes cannot be rewritten, so
/// the session keeps one connection. Answered from the registry, the
/// prepare holds none yet, and the session keeps the one its next
/// statement gets: that must be a writer's, though the statement is a
/// read, or the session's writes would follow it to a replica.
#[test]
fn backends_a_session_pinned_before_it_holds_a_connection_takes_a_writer() {
    let f = farm(&[]);
    let proxy = funnel_testkit::funnel::start(full(&f, ""));
    let mut a = client(&proxy);
    a.prep("SELECT ROW_COUNT()").unwrap();
    let mut b = client(&proxy);
    b.prep("SELECT ROW_COUNT()").unwrap();
    assert_eq!(
        port_of(&mut b),
        f.writer.port(),
        "the read that takes the session's connection"
    );
    b.query_drop("INSERT INTO t VALUES (1, 1)").unwrap();
    assert_eq!(
        f.writer.query_first::<i64>("SELECT COUNT(*) FROM farm.t"),
        Some(1)
    );
    for r in [&f.r1, &f.r2] {
        assert_eq!(r.query_first::<i64>("SELECT COUNT(*) FROM farm.t"), Some(0));
    }
}

/// Binary-protocol prepared statements (Go's `database/sql` with
/// arguments, JDBC's `useServerPrepStmts`) are routed as their text would
/// be as a query: reads to the readers, writes and reads in a transaction
/// or with autocommit off to the writer, and a query rule's match to its
/// hostgroup.
#[test]
fn backends_prepared_statements_split_and_follow_query_rules() {
    let f = farm(&[]);
    let rules = "query_rules:\n  - match_prefix: \"SELECT /* w */\"\n    hostgroup: writer\n";
    let proxy = funnel_testkit::funnel::start(full(&f, rules));
    let mut c = client(&proxy);
    let readers = [f.r1.port(), f.r2.port()];
    let read = |c: &mut Conn, sql: &str| -> u16 {
        c.exec_first(sql, (0,))
            .unwrap()
            .unwrap_or_else(|| panic!("no row: {sql}"))
    };
    for _ in 0..8 {
        assert!(
            readers.contains(&read(&mut c, "SELECT @@port + ?")),
            "a prepared read"
        );
    }
    assert_eq!(
        read(&mut c, "SELECT /* w */ @@port + ?"),
        f.writer.port(),
        "a query rule"
    );
    c.exec_drop("INSERT INTO t VALUES (?, ?)", (1, 1)).unwrap();
    assert_eq!(
        read(&mut c, "SELECT @@port + ? FROM t WHERE id = 1 FOR UPDATE"),
        f.writer.port(),
        "a locking read"
    );
    c.query_drop("BEGIN").unwrap();
    assert_eq!(
        read(&mut c, "SELECT @@port + ?"),
        f.writer.port(),
        "in a transaction"
    );
    c.exec_drop("INSERT INTO t VALUES (?, ?)", (2, 1)).unwrap();
    c.query_drop("COMMIT").unwrap();
    c.query_drop("SET autocommit = 0").unwrap();
    assert_eq!(
        read(&mut c, "SELECT @@port + ?"),
        f.writer.port(),
        "autocommit off"
    );
    c.query_drop("COMMIT").unwrap();
    c.query_drop("SET autocommit = 1").unwrap();
    assert!(readers.contains(&read(&mut c, "SELECT @@port + ?")));
    assert_eq!(
        f.writer.query_first::<i64>("SELECT COUNT(*) FROM farm.t"),
        Some(2)
    );
    for r in [&f.r1, &f.r2] {
        assert_eq!(r.query_first::<i64>("SELECT COUNT(*) FROM farm.t"), Some(0));
    }
}

/// A prepared read that opens a cursor keeps its session on the
/// connection that holds the cursor until it is done: it runs on the
/// writer, where the session's write right after it (the cursor still
/// open) belongs.
#[test]
fn backends_a_prepared_read_with_a_cursor_stays_on_the_writer() {
    let f = farm(&[]);
    let proxy = funnel_testkit::funnel::start(full(&f, ""));
    let mut c = MiniClient::connect(proxy.local_addr(), "app", "apppw", Some("farm")).unwrap();
    let mut prepare = vec![0x16];
    prepare.extend_from_slice(b"SELECT id FROM t WHERE id > ?");
    let reply = c.roundtrip(&prepare, Expect::Prepare).unwrap();
    let id = u32::from_le_bytes(reply[0][1..5].try_into().unwrap());
    for (round, flags) in [(0, 1u8), (1, 0)] {
        let mut execute = vec![0x17];
        execute.extend_from_slice(&id.to_le_bytes());
        execute.push(flags);
        execute.extend_from_slice(&1u32.to_le_bytes());
        execute.extend_from_slice(&[0, 1, 8, 0]);
        execute.extend_from_slice(&0i64.to_le_bytes());
        let rows = c.roundtrip(&execute, Expect::Results).unwrap();
        assert!(rows[0][0] != 0xff, "{rows:?}");
        c.query(&format!("INSERT INTO t VALUES ({round}, 0)")).unwrap();
    }
    assert_eq!(
        f.writer.query_first::<i64>("SELECT COUNT(*) FROM farm.t"),
        Some(2)
    );
    for r in [&f.r1, &f.r2] {
        assert_eq!(r.query_first::<i64>("SELECT COUNT(*) FROM farm.t"), Some(0));
    }
}

/// A query rule that sends a text to another cluster (a hostgroup whose
/// servers hold tables the default one does not) applies to its prepare
/// too: it is described there, and its executes run there.
#[test]
fn backends_a_query_rule_sends_a_prepare_and_its_executes_to_its_hostgroup() {
    let main = server(false, &[]);
    let other = server(false, &[]);
    other.exec("CREATE TABLE farm.archive (id INT PRIMARY KEY, note VARCHAR(10))");
    other.exec("INSERT INTO farm.archive VALUES (1, 'old')");
    let yaml = format!(
        "listen: 127.0.0.1:0\ncores: 1\n\
         users:\n  - name: app\n    password: apppw\n    default_schema: farm\n    default_hostgroup: main\n\
         backends:\n\
         \x20 - name: main\n    address: {}\n    user: fb\n    password: bpw\n    hostgroup: main\n\
         \x20 - name: other\n    address: {}\n    user: fb\n    password: bpw\n    hostgroup: archive\n\
         query_rules:\n  - match_regex: \"(?i)\\\\barchive\\\\b\"\n    hostgroup: archive\n\
         pool:\n  min_idle_per_core: 0\nmonitor:\n  interval: 200ms\n",
        main.addr(),
        other.addr()
    );
    let proxy =
        funnel_testkit::funnel::start(Config::from_yaml_str(&yaml).unwrap_or_else(|e| panic!("{e}\n{yaml}")));
    let mut c = client(&proxy);
    for _ in 0..3 {
        let note: Option<String> = c
            .exec_first("SELECT note FROM archive WHERE id = ?", (1,))
            .unwrap();
        assert_eq!(note.as_deref(), Some("old"));
    }
    c.exec_drop("INSERT INTO archive VALUES (?, ?)", (2, "new"))
        .unwrap();
    assert_eq!(
        other.query_first::<i64>("SELECT COUNT(*) FROM farm.archive"),
        Some(2)
    );
    let stmt = c.prep("SELECT id, @@port FROM t WHERE id = ?").unwrap();
    assert_eq!(stmt.num_columns(), 2, "the rest goes to the default hostgroup");
}

/// Asserts every row of `farm.t` is on the writer (`rows` of them) and
/// none on a replica (the backend account may write there).
fn all_on_the_writer(f: &Farm, rows: i64) {
    assert_eq!(
        f.writer.query_first::<i64>("SELECT COUNT(*) FROM farm.t"),
        Some(rows)
    );
    for r in [&f.r1, &f.r2] {
        assert_eq!(r.query_first::<i64>("SELECT COUNT(*) FROM farm.t"), Some(0));
    }
}

/// A prepared read split to a replica leaves the session nothing that
/// keeps it there: after a read that warns (the connection lingers for
/// SHOW WARNINGS), one of the last insert id, of `FOUND_ROWS()`, of a
/// user variable, `SELECT ... INTO`, a named lock, a read-only
/// transaction, the session's next writes, text and prepared, go to the
/// writer.
#[test]
fn backends_a_prepared_read_leaves_the_sessions_writes_to_the_writer() {
    let f = farm(&[]);
    f.writer
        .exec("CREATE TABLE farm.ai (id INT AUTO_INCREMENT PRIMARY KEY, v INT)");
    let proxy = funnel_testkit::funnel::start(full(&f, ""));
    let mut c = client(&proxy);
    let mut rows = 0i64;
    let mut write = |c: &mut Conn, step: &str, prepared: bool| {
        rows += 1;
        let r = if prepared {
            c.exec_drop("INSERT INTO t VALUES (?, 0)", (rows,))
        } else {
            c.query_drop(format!("INSERT INTO t VALUES ({rows}, 0)"))
        };
        r.unwrap_or_else(|e| panic!("{step}: {e}"));
        assert_eq!(
            f.writer.query_first::<i64>("SELECT COUNT(*) FROM farm.t"),
            Some(rows),
            "{step}"
        );
    };
    let readers = [f.r1.port(), f.r2.port()];
    for prepared in [false, true] {
        let row: (Option<u16>, Option<i64>) = c.exec_first("SELECT @@port, 1 / ?", (0,)).unwrap().unwrap();
        assert!(readers.contains(&row.0.unwrap()), "{row:?}");
        assert_eq!(row.1, None);
        let warnings: Vec<(String, u32, String)> = c.query("SHOW WARNINGS").unwrap();
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert_eq!(warnings[0].1, 1365);
        let row: (Option<u16>, Option<i64>) = c.exec_first("SELECT @@port, 1 / ?", (0,)).unwrap().unwrap();
        assert_eq!(row.1, None);
        write(&mut c, "after a read that warned", prepared);
    }
    c.query_drop("INSERT INTO ai (v) VALUES (1), (2)").unwrap();
    c.query_drop("INSERT INTO ai (v) VALUES (3)").unwrap();
    let (id, at): (u64, u16) = c
        .exec_first("SELECT LAST_INSERT_ID() + ?, @@port", (0,))
        .unwrap()
        .unwrap();
    assert_eq!(id, 3, "the client's last insert id");
    assert!(readers.contains(&at), "{at}");
    write(&mut c, "after LAST_INSERT_ID()", false);
    c.exec_drop("INSERT INTO ai (v) VALUES (?)", (4,)).unwrap();
    let id: u64 = c
        .exec_first("SELECT LAST_INSERT_ID() + ?", (0,))
        .unwrap()
        .unwrap();
    assert_eq!(id, 4, "the client's last insert id, from an execute");
    write(&mut c, "after LAST_INSERT_ID() of an execute", true);
    let n: Vec<u32> = c
        .exec("SELECT SQL_CALC_FOUND_ROWS id FROM ai WHERE id > ? LIMIT 1", (0,))
        .unwrap();
    assert_eq!(n.len(), 1);
    let found: u64 = c.exec_first("SELECT FOUND_ROWS() + ?", (0,)).unwrap().unwrap();
    assert_eq!(found, 4);
    write(&mut c, "after FOUND_ROWS()", true);
    c.query_drop("SET @v = 7").unwrap();
    let v: i64 = c.exec_first("SELECT @v + ?", (0,)).unwrap().unwrap();
    assert_eq!(v, 7);
    write(&mut c, "after a user variable's read", true);
    c.exec_drop("SELECT ? INTO @w", (8,)).unwrap();
    let w: i64 = c.query_first("SELECT @w").unwrap().unwrap();
    assert_eq!(w, 8);
    write(&mut c, "after SELECT ... INTO", true);
    let got: i64 = c
        .exec_first("SELECT GET_LOCK(?, 0)", ("route_l",))
        .unwrap()
        .unwrap();
    assert_eq!(got, 1);
    write(&mut c, "holding a named lock", true);
    c.exec_drop("SELECT RELEASE_LOCK(?)", ("route_l",)).unwrap();
    c.query_drop("START TRANSACTION READ ONLY").unwrap();
    let at: u16 = c.exec_first("SELECT @@port + ?", (0,)).unwrap().unwrap();
    assert_eq!(at, f.writer.port(), "in a read-only transaction");
    c.query_drop("COMMIT").unwrap();
    write(&mut c, "after a read-only transaction", true);
    c.query_drop("SET TRANSACTION READ ONLY").unwrap();
    let n: Vec<u32> = c.exec("SELECT id FROM t WHERE id > ?", (0,)).unwrap();
    assert!(!n.is_empty());
    write(&mut c, "after SET TRANSACTION READ ONLY", true);
    all_on_the_writer(&f, rows);
}

/// A table the replicas lack (created on the writer only, replication
/// behind): the prepare is described by the writer, and an execute split
/// to a replica gets the server's error there, as the text does as a
/// query; the session goes on, its writes to the writer.
#[test]
fn backends_a_prepared_read_of_a_table_a_replica_lacks_gets_its_error() {
    let f = farm(&[]);
    f.writer.exec("CREATE TABLE farm.w_only (id INT PRIMARY KEY)");
    f.writer.exec("INSERT INTO farm.w_only VALUES (1)");
    let proxy = funnel_testkit::funnel::start(full(&f, ""));
    let mut c = client(&proxy);
    let text = c.query_drop("SELECT id FROM w_only").unwrap_err();
    let code = |e: &mysql::Error| match e {
        mysql::Error::MySqlError(e) => e.code,
        e => panic!("{e}"),
    };
    assert_eq!(code(&text), 1146, "as a query");
    let stmt = c.prep("SELECT id FROM w_only WHERE id > ?").unwrap();
    for i in 0..3 {
        let e = c.exec_drop(&stmt, (0,)).unwrap_err();
        assert_eq!(code(&e), 1146, "execute {i}");
    }
    c.exec_drop("INSERT INTO t VALUES (?, 0)", (1,)).unwrap();
    c.query_drop("INSERT INTO t VALUES (2, 0)").unwrap();
    all_on_the_writer(&f, 2);
}

/// With the readers drained, prepared reads go to the writer as text ones
/// do with `read_fallback`, and fail as they do without it.
#[test]
fn backends_prepared_reads_fall_back_as_text_ones_when_the_readers_are_drained() {
    let f = farm(&[]);
    let proxy = funnel_testkit::funnel::start(full(&f, ""));
    let mut c = client(&proxy);
    set_drained(&proxy, "r1", true);
    set_drained(&proxy, "r2", true);
    for _ in 0..4 {
        assert_eq!(port_of(&mut c), f.writer.port());
        let at: u16 = c.exec_first("SELECT @@port + ?", (0,)).unwrap().unwrap();
        assert_eq!(at, f.writer.port());
    }
    drop(c);
    let no_fallback = config(
        &[
            ("w", &f.writer, "writer", 1),
            ("r1", &f.r1, "readers", 1),
            ("r2", &f.r2, "readers", 1),
        ],
        "",
    );
    let mut cfg = no_fallback;
    cfg.users[0].read_fallback = false;
    let proxy = funnel_testkit::funnel::start(cfg);
    // The client reads at login (@@max_allowed_packet): drained after.
    let mut c = client(&proxy);
    set_drained(&proxy, "r1", true);
    set_drained(&proxy, "r2", true);
    let code = |e: mysql::Error| match e {
        mysql::Error::MySqlError(e) => e.code,
        e => panic!("{e}"),
    };
    let text = code(c.query_drop("SELECT @@port").unwrap_err());
    let prepared = code(c.exec_drop("SELECT @@port + ?", (0,)).unwrap_err());
    assert_eq!((text, prepared), (9004, 9004));
    c.exec_drop("INSERT INTO t VALUES (?, 0)", (1,)).unwrap();
    all_on_the_writer(&f, 1);
}

/// A query rule by schema sends a prepare made in that schema to its
/// hostgroup; the statement's executes run in that schema (as on a direct
/// connection) after the client selects another, so they go to the same
/// hostgroup, not to the default one, where its tables are not.
#[test]
fn backends_a_schema_rule_holds_for_a_statement_prepared_in_that_schema() {
    let main = server(false, &[]);
    let other = server(false, &[]);
    for db in [&main, &other] {
        db.create_database("arch");
    }
    other.exec("CREATE TABLE arch.a (id INT PRIMARY KEY, note VARCHAR(10))");
    other.exec("INSERT INTO arch.a VALUES (1, 'old')");
    let yaml = format!(
        "listen: 127.0.0.1:0\ncores: 1\n\
         users:\n  - name: app\n    password: apppw\n    default_schema: farm\n    default_hostgroup: main\n\
         backends:\n\
         \x20 - name: main\n    address: {}\n    user: fb\n    password: bpw\n    hostgroup: main\n\
         \x20 - name: other\n    address: {}\n    user: fb\n    password: bpw\n    hostgroup: archive\n\
         query_rules:\n  - match_regex: \".\"\n    schema: arch\n    hostgroup: archive\n\
         pool:\n  min_idle_per_core: 0\nmonitor:\n  interval: 200ms\n",
        main.addr(),
        other.addr()
    );
    let proxy =
        funnel_testkit::funnel::start(Config::from_yaml_str(&yaml).unwrap_or_else(|e| panic!("{e}\n{yaml}")));
    let mut c = client(&proxy);
    c.query_drop("USE arch").unwrap();
    let stmt = c.prep("SELECT note FROM a WHERE id = ?").unwrap();
    let note: Option<String> = c.exec_first(&stmt, (1,)).unwrap();
    assert_eq!(note.as_deref(), Some("old"));
    c.query_drop("USE farm").unwrap();
    for i in 0..2 {
        let note: Option<String> = c
            .exec_first(&stmt, (1,))
            .unwrap_or_else(|e| panic!("execute {i} after USE farm: {e}"));
        assert_eq!(note.as_deref(), Some("old"), "execute {i}");
    }
}

/// Replicas whose `max_prepared_stmt_count` is far below the writer's:
/// prepared reads split to them are prepared there within each
/// connection's share of it, so clients that together run more
/// statements than a replica holds get no 1461 (the writer, which
/// described them all, has room).
#[test]
fn backends_prepared_reads_on_replicas_keep_within_their_statement_limit() {
    let f = Farm {
        writer: server(false, &[]),
        r1: server(true, &["--max-prepared-stmt-count=8"]),
        r2: server(true, &["--max-prepared-stmt-count=8"]),
    };
    let proxy = funnel_testkit::funnel::start(full(&f, ""));
    thread::sleep(Duration::from_millis(400));
    let mut clients: Vec<Conn> = (0..3).map(|_| client(&proxy)).collect();
    let stmts: Vec<Vec<mysql::Statement>> = clients
        .iter_mut()
        .map(|c| {
            (0..6)
                .map(|i| c.prep(format!("SELECT {i} + ?, @@port")).unwrap())
                .collect()
        })
        .collect();
    let readers = [f.r1.port(), f.r2.port()];
    for round in 0..4 {
        for (c, stmts) in clients.iter_mut().zip(&stmts) {
            for (i, s) in stmts.iter().enumerate() {
                let (v, at): (i64, u16) = c
                    .exec_first(s, (round,))
                    .unwrap_or_else(|e| panic!("round {round}, statement {i}: {e}"))
                    .unwrap();
                assert_eq!(v, i as i64 + round);
                assert!(readers.contains(&at));
            }
        }
    }
    for r in [&f.r1, &f.r2] {
        let n: u64 = r
            .query_first("SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS WHERE VARIABLE_NAME = 'PREPARED_STMT_COUNT'")
            .unwrap();
        assert!(n <= 8, "{n}");
    }
}

/// An XA transaction holds the session on the writer from `XA START` to
/// its `XA COMMIT`, prepared reads included (in the PREPARED state the
/// server refuses them, 1399, as on a direct connection); a prepared
/// `CALL` of a procedure that only reads runs on the writer. The
/// session's writes after them go to the writer.
#[test]
fn backends_prepared_reads_in_xa_and_calls_leave_writes_to_the_writer() {
    let f = farm(&[]);
    for db in [&f.writer, &f.r1, &f.r2] {
        db.exec("CREATE PROCEDURE farm.p(IN x INT) SELECT x + @@port");
    }
    let proxy = funnel_testkit::funnel::start(full(&f, ""));
    let mut c = client(&proxy);
    let readers = [f.r1.port(), f.r2.port()];
    let mut direct = mysql::Conn::new(f.writer.opts("fb", "bpw").db_name(Some("farm"))).unwrap();
    let code = |e: mysql::Error| match e {
        mysql::Error::MySqlError(e) => e.code,
        e => panic!("{e}"),
    };
    let mut refused = Vec::new();
    for (i, conn) in [&mut direct, &mut c].into_iter().enumerate() {
        conn.query_drop(format!("XA START 'route{i}'")).unwrap();
        let at: u16 = conn.exec_first("SELECT @@port + ?", (0,)).unwrap().unwrap();
        assert_eq!(at, f.writer.port());
        conn.exec_drop("INSERT INTO t VALUES (?, 0)", (i + 1,)).unwrap();
        conn.query_drop(format!("XA END 'route{i}'")).unwrap();
        conn.query_drop(format!("XA PREPARE 'route{i}'")).unwrap();
        // One that opens no table runs, on the XA transaction's connection.
        let at: u16 = conn.exec_first("SELECT @@port + ?", (0,)).unwrap().unwrap();
        assert_eq!(at, f.writer.port(), "PREPARED");
        let read = conn.exec_drop("SELECT id FROM t WHERE id > ?", (0,));
        refused.push(read.map_err(code));
        conn.query_drop(format!("XA COMMIT 'route{i}'")).unwrap();
    }
    assert_eq!(refused, [Err(1399), Err(1399)], "in the PREPARED state");
    // Until a statement opens a table, the refused read's error is the
    // client's to read, and reads that open none stay on the writer that
    // holds it.
    c.query_drop("SELECT COUNT(*) FROM t").unwrap();
    let at: u16 = c.exec_first("SELECT @@port + ?", (0,)).unwrap().unwrap();
    assert!(readers.contains(&at), "split again after XA COMMIT");
    c.exec_drop("INSERT INTO t VALUES (?, 0)", (3,)).unwrap();
    let at: Option<i64> = c.exec_first("CALL p(?)", (0,)).unwrap();
    assert_eq!(at, Some(i64::from(f.writer.port())));
    c.exec_drop("INSERT INTO t VALUES (?, 0)", (4,)).unwrap();
    c.query_drop("INSERT INTO t VALUES (5, 0)").unwrap();
    all_on_the_writer(&f, 5);
}

/// Prepared reads fall back to the writer as text ones do when the only
/// reader's server is gone before the monitor marks it down: at most the
/// first meets its pooled connection dead (9007), whether the statement
/// was prepared there already or not.
#[test]
fn backends_prepared_reads_fall_back_when_the_reader_is_gone() {
    let f = farm(&[]);
    let yaml = format!(
        "listen: 127.0.0.1:0\ncores: 1\n\
         users:\n  - name: app\n    password: apppw\n    default_schema: farm\n    \
         default_hostgroup: writer\n    read_hostgroup: readers\nbackends:\n\
         \x20 - name: w\n    address: {}\n    user: fb\n    password: bpw\n    hostgroup: writer\n\
         \x20 - name: r1\n    address: {}\n    user: fb\n    password: bpw\n    hostgroup: readers\n\
         pool:\n  max_per_core: 4\n  min_idle_per_core: 0\n\
         monitor:\n  interval: 5s\n  failures_before_down: 3\n",
        f.writer.addr(),
        f.r1.addr()
    );
    let proxy = funnel_testkit::funnel::start(Config::from_yaml_str(&yaml).unwrap());
    let mut c = client(&proxy);
    let known = c.prep("SELECT @@port + ?").unwrap();
    let at: u16 = c.exec_first(&known, (0,)).unwrap().unwrap();
    assert_eq!(at, f.r1.port());
    let fresh = c.prep("SELECT @@port + ? + 0").unwrap();
    f.r1.kill();
    let mut ports = Vec::new();
    let mut errors = Vec::new();
    for i in 0..20 {
        let stmt = if i % 2 == 0 { &fresh } else { &known };
        match c.exec_first::<u16, _, _>(stmt, (0,)) {
            Ok(p) => ports.push(p.unwrap()),
            Err(mysql::Error::MySqlError(e)) => errors.push(e.code),
            Err(e) => panic!("{e}"),
        }
    }
    assert!(
        errors.len() <= 1 && errors.iter().all(|&e| e == 9007),
        "{errors:?}"
    );
    assert!(ports.iter().all(|&p| p == f.writer.port()), "{ports:?}");
}

/// A prepare leaves the warnings of the client's last statement for its
/// `SHOW WARNINGS` where it opens no table, as on a direct connection,
/// also when that statement was a read split to a replica, prepared or
/// text: the replica that holds them describes a read; a write is still
/// prepared and run on the writer.
#[test]
fn backends_a_prepare_after_a_read_that_warned_on_a_replica_leaves_its_warnings() {
    let f = farm(&[]);
    let proxy = funnel_testkit::funnel::start(full(&f, ""));
    let mut c = client(&proxy);
    let mut direct = mysql::Conn::new(f.writer.opts("fb", "bpw").db_name(Some("farm"))).unwrap();
    let readers = [f.r1.port(), f.r2.port()];
    for prepared in [true, false] {
        for (i, conn) in [&mut direct, &mut c].into_iter().enumerate() {
            let row: (u16, Option<i64>) = if prepared {
                conn.exec_first("SELECT @@port, 1 / ?", (0,)).unwrap().unwrap()
            } else {
                conn.query_first("SELECT @@port, 1 / 0").unwrap().unwrap()
            };
            if i == 1 {
                assert!(readers.contains(&row.0), "{row:?}");
            }
            let stmt = conn.prep("SELECT ? + 1").unwrap();
            let warnings: Vec<(String, u32, String)> = conn.query("SHOW WARNINGS").unwrap();
            let codes: Vec<u32> = warnings.iter().map(|w| w.1).collect();
            let who = ["direct", "through Funnel"][i];
            assert_eq!(codes, [1365], "{who}, prepared {prepared}");
            let two: i64 = conn.exec_first(&stmt, (1,)).unwrap().unwrap();
            assert_eq!(two, 2, "{who}");
            conn.close(stmt).unwrap();
            // One that opens a table clears them, described by the writer.
            let _: Option<(u16, Option<i64>)> = conn.exec_first("SELECT @@port, 1 / ?", (0,)).unwrap();
            let stmt = conn.prep("SELECT v FROM t WHERE id = ?").unwrap();
            let warnings: Vec<(String, u32, String)> = conn.query("SHOW WARNINGS").unwrap();
            assert!(warnings.is_empty(), "{who}: {warnings:?}");
            conn.close(stmt).unwrap();
        }
        let row: (u16, Option<i64>) = c.exec_first("SELECT @@port, 1 / ?", (0,)).unwrap().unwrap();
        assert!(readers.contains(&row.0), "{row:?}");
        let insert = c.prep("INSERT INTO t VALUES (?, 0)").unwrap();
        c.exec_drop(&insert, (i32::from(prepared),)).unwrap();
        c.close(insert).unwrap();
    }
    all_on_the_writer(&f, 2);
}

/// The registry answers a prepare from the entry of the hostgroup the
/// text routes to now: after a reload that adds a rule sending a text to
/// another cluster (whose table has other columns), the next prepare is
/// described there, and after one that takes the rule away, by the
/// default hostgroup again; a statement prepared before the first reload
/// runs where its text goes now, as the text does as a query.
#[test]
fn backends_prepares_follow_rules_a_reload_changes() {
    let main = server(false, &[]);
    let other = server(false, &[]);
    other.exec("ALTER TABLE farm.t ADD COLUMN w VARCHAR(10), ADD COLUMN x INT");
    other.exec("INSERT INTO farm.t VALUES (1, 1, 'o', 1)");
    main.exec("INSERT INTO farm.t VALUES (1, 1)");
    let yaml = |rule: bool| {
        let mut y = format!(
            "listen: 127.0.0.1:0\ncores: 1\n\
             users:\n  - name: app\n    password: apppw\n    default_schema: farm\n    default_hostgroup: main\n\
             backends:\n\
             \x20 - name: main\n    address: {}\n    user: fb\n    password: bpw\n    hostgroup: main\n\
             \x20 - name: other\n    address: {}\n    user: fb\n    password: bpw\n    hostgroup: other\n\
             pool:\n  min_idle_per_core: 0\nmonitor:\n  interval: 200ms\n",
            main.addr(),
            other.addr()
        );
        if rule {
            y.push_str("query_rules:\n  - match_prefix: \"SELECT * FROM t\"\n    hostgroup: other\n");
        }
        Config::from_yaml_str(&y).unwrap_or_else(|e| panic!("{e}\n{y}"))
    };
    let mut proxy = funnel_testkit::funnel::start(yaml(false));
    let sql = "SELECT * FROM t WHERE id = ?";
    let mut a = client(&proxy);
    let held = a.prep(sql).unwrap();
    assert_eq!(held.num_columns(), 2);
    let mut b = client(&proxy);
    assert_eq!(b.prep(sql).unwrap().num_columns(), 2, "from the registry");
    assert!(proxy.reload(yaml(true)).unwrap().is_empty());
    let mut c = client(&proxy);
    assert_eq!(
        c.prep(sql).unwrap().num_columns(),
        4,
        "described by the rule's hostgroup"
    );
    let row: mysql::Row = a.exec_first(&held, (1,)).unwrap().unwrap();
    assert_eq!(row.len(), 4, "run where the text goes now");
    let text: mysql::Row = a.query_first("SELECT * FROM t WHERE id = 1").unwrap().unwrap();
    assert_eq!(text.len(), 4, "as the text");
    assert!(proxy.reload(yaml(false)).unwrap().is_empty());
    let mut d = client(&proxy);
    let stmt = d.prep(sql).unwrap();
    assert_eq!(stmt.num_columns(), 2, "the default hostgroup again");
    let row: mysql::Row = d.exec_first(&stmt, (1,)).unwrap().unwrap();
    assert_eq!(row.len(), 2);
    let row: mysql::Row = a.exec_first(&held, (1,)).unwrap().unwrap();
    assert_eq!(row.len(), 2);
}

/// `LAST_INSERT_ID()` read by prepared statements split to a replica is
/// each client's own: the id Funnel gives one client's connection there
/// first (`DO LAST_INSERT_ID(n)`) is not another's, whose own is 0.
#[test]
fn backends_prepared_reads_of_the_last_insert_id_on_a_replica_are_each_clients_own() {
    let f = farm(&[]);
    f.writer
        .exec("CREATE TABLE farm.ai (id INT AUTO_INCREMENT PRIMARY KEY, v INT)");
    let cfg = config(&[("w", &f.writer, "writer", 1), ("r1", &f.r1, "readers", 1)], "");
    let proxy = funnel_testkit::funnel::start(cfg);
    let mut a = client(&proxy);
    let mut b = client(&proxy);
    a.query_drop("INSERT INTO ai (v) VALUES (1), (2), (3)").unwrap();
    a.query_drop("INSERT INTO ai (v) VALUES (4)").unwrap();
    let sql = "SELECT LAST_INSERT_ID() + ?, @@port";
    for round in 0..3 {
        let (id, at): (u64, u16) = a.exec_first(sql, (0,)).unwrap().unwrap();
        assert_eq!((id, at), (4, f.r1.port()), "a, round {round}");
        let (id, at): (u64, u16) = b.exec_first(sql, (0,)).unwrap().unwrap();
        assert_eq!((id, at), (0, f.r1.port()), "b, round {round}");
        let text: u64 = b.query_first("SELECT LAST_INSERT_ID()").unwrap().unwrap();
        assert_eq!(text, 0, "b's text, round {round}");
    }
    b.exec_drop("INSERT INTO ai (v) VALUES (?)", (5,)).unwrap();
    let (id, _): (u64, u16) = b.exec_first(sql, (0,)).unwrap().unwrap();
    assert_eq!(id, 5);
    let (id, _): (u64, u16) = a.exec_first(sql, (0,)).unwrap().unwrap();
    assert_eq!(id, 4);
}

/// A prepare that pins its session (`SELECT ROW_COUNT()`, whose executes
/// the server must answer; `SELECT ? INTO @x`, whose variable it makes)
/// right after a read that warned on a replica, whose connection lingers
/// for `SHOW WARNINGS`: the session must not stay on that replica, or its
/// writes follow it there.
#[test]
fn backends_a_prepare_that_pins_after_a_read_that_warned_on_a_replica_takes_a_writer() {
    let f = farm(&[]);
    let proxy = funnel_testkit::funnel::start(full(&f, ""));
    let readers = [f.r1.port(), f.r2.port()];
    let mut rows = 0;
    for (prepared, pinning) in [
        (true, "SELECT ROW_COUNT()"),
        (false, "SELECT ROW_COUNT()"),
        (true, "SELECT ? INTO @x"),
        (false, "SELECT ? INTO @x"),
    ] {
        let mut c = client(&proxy);
        let row: (u16, Option<i64>) = if prepared {
            c.exec_first("SELECT @@port, 1 / ?", (0,)).unwrap().unwrap()
        } else {
            c.query_first("SELECT @@port, 1 / 0").unwrap().unwrap()
        };
        assert!(readers.contains(&row.0), "{row:?}");
        c.prep(pinning).unwrap();
        rows += 1;
        c.query_drop(format!("INSERT INTO t VALUES ({rows}, 0)"))
            .unwrap_or_else(|e| panic!("{pinning}, prepared read {prepared}: {e}"));
        assert_eq!(
            f.writer.query_first::<i64>("SELECT COUNT(*) FROM farm.t"),
            Some(rows),
            "{pinning}, prepared read {prepared}"
        );
    }
    all_on_the_writer(&f, rows);
}

/// A prepared read whose parameter comes as long data runs where the long
/// data went (a writer: the long data may be a write's), and the session
/// is free after it: its write goes to the writer, its next read to a
/// replica.
#[test]
fn backends_a_prepared_read_with_long_data_runs_where_its_data_went() {
    let f = farm(&[]);
    let proxy = funnel_testkit::funnel::start(full(&f, ""));
    let mut c = MiniClient::connect(proxy.local_addr(), "app", "apppw", Some("farm")).unwrap();
    let mut prepare = vec![0x16];
    prepare.extend_from_slice(b"SELECT CONCAT(LENGTH(?), ':', @@port)");
    let reply = c.roundtrip(&prepare, Expect::Prepare).unwrap();
    let id = u32::from_le_bytes(reply[0][1..5].try_into().unwrap());
    let execute = |with_value: bool| {
        let mut e = vec![0x17];
        e.extend_from_slice(&id.to_le_bytes());
        e.push(0);
        e.extend_from_slice(&1u32.to_le_bytes());
        e.extend_from_slice(&[0, 1, 0xfc, 0]);
        if with_value {
            e.extend_from_slice(&[3, b'a', b'b', b'c']);
        }
        e
    };
    let port_of_reply = |rows: &[Vec<u8>]| -> (String, u16) {
        // The binary row: 0x00, a null bitmap byte, one string.
        let row = rows
            .iter()
            .find(|p| p.len() > 3 && p[0] == 0 && p[1] == 0 && p[2] as usize == p.len() - 3)
            .unwrap_or_else(|| panic!("{rows:?}"));
        let text = String::from_utf8_lossy(&row[3..]).to_string();
        let (len, port) = text.split_once(':').unwrap();
        (len.to_string(), port.parse().unwrap())
    };
    for round in 0..2 {
        let mut long = vec![0x18];
        long.extend_from_slice(&id.to_le_bytes());
        long.extend_from_slice(&0u16.to_le_bytes());
        long.extend_from_slice(&vec![b'x'; 1000 + round]);
        c.send_command(&long).unwrap();
        let rows = c.roundtrip(&execute(false), Expect::Results).unwrap();
        assert!(rows[0][0] != 0xff, "{rows:?}");
        let (len, at) = port_of_reply(&rows);
        assert_eq!(
            (len, at),
            ((1000 + round).to_string(), f.writer.port()),
            "round {round}"
        );
        c.query(&format!("INSERT INTO t VALUES ({round}, 0)")).unwrap();
        let rows = c.roundtrip(&execute(true), Expect::Results).unwrap();
        let (len, at) = port_of_reply(&rows);
        assert_eq!(len, "3");
        assert!([f.r1.port(), f.r2.port()].contains(&at), "round {round}: {at}");
    }
    all_on_the_writer(&f, 2);
}

/// A reporting user (read-only servers alone in its default hostgroup)
/// keeps its warnings through a prepare that pins (`SELECT ROW_COUNT()`
/// opens no table), as directly: no server would take its writes, so the
/// connection lingering for them stays.
#[test]
fn backends_a_reporting_user_keeps_its_warnings_through_a_prepare_that_pins() {
    let f = farm(&[]);
    let (_proxy, mut c) = reporting_user(&f);
    let mut direct = mysql::Conn::new(f.r1.opts("fb", "bpw").db_name(Some("farm"))).unwrap();
    for (i, conn) in [&mut direct, &mut c].into_iter().enumerate() {
        let _: Option<(u16, Option<i64>)> = conn.query_first("SELECT @@port, 1 / 0").unwrap();
        conn.prep("SELECT ROW_COUNT()").unwrap();
        let warnings: Vec<(String, u32, String)> = conn.query("SHOW WARNINGS").unwrap();
        let codes: Vec<u32> = warnings.iter().map(|w| w.1).collect();
        assert_eq!(codes, [1365], "{}", ["direct", "through Funnel"][i]);
    }
}

/// A client with MariaDB's metadata cache whose executes of one statement
/// alternate between a replica and the writer (in a transaction), whose
/// tables differ (a column added on the writer, not yet on the replicas):
/// each execute's column definitions are left out only where they are
/// the ones the client got last, so each result is read with its own.
#[test]
fn backends_metadata_cache_clients_read_each_servers_columns_as_executes_move() {
    let f = farm(&[]);
    f.writer.exec("ALTER TABLE farm.t ADD COLUMN w INT");
    for db in [&f.r1, &f.r2] {
        db.exec("INSERT INTO farm.t VALUES (1, 10)");
    }
    f.writer.exec("INSERT INTO farm.t VALUES (1, 10, 100)");
    let proxy = funnel_testkit::funnel::start(full(&f, ""));
    let mut c = MiniClient::connect_with(
        proxy.local_addr(),
        "app",
        "apppw",
        Some("farm"),
        funnel_protocol::Capabilities::MARIADB_CLIENT_CACHE_METADATA,
    )
    .unwrap();
    let mut prepare = vec![0x16];
    prepare.extend_from_slice(b"SELECT * FROM t WHERE id = ?");
    let reply = c.roundtrip(&prepare, Expect::Prepare).unwrap();
    let id = u32::from_le_bytes(reply[0][1..5].try_into().unwrap());
    assert_eq!(
        u16::from_le_bytes([reply[0][5], reply[0][6]]),
        3,
        "the writer describes it"
    );
    let mut execute = vec![0x17];
    execute.extend_from_slice(&id.to_le_bytes());
    execute.push(0);
    execute.extend_from_slice(&1u32.to_le_bytes());
    execute.extend_from_slice(&[0, 1, 8, 0]);
    execute.extend_from_slice(&1i64.to_le_bytes());
    // (columns, definitions sent) of each execute.
    let mut seen = Vec::new();
    for step in 0..8 {
        let tx = step % 3 == 2;
        if tx {
            c.query("BEGIN").unwrap();
        }
        let rows = c.roundtrip(&execute, Expect::Results).unwrap();
        assert!(rows[0][0] != 0xff, "{rows:?}");
        let (n, sent) = (rows[0][0], rows[0][1]);
        // The binary row: 0x00, the null bitmap, then n values.
        let row = rows
            .iter()
            .find(|p| p.first() == Some(&0) && p.len() > 1)
            .unwrap_or_else(|| panic!("no row: {rows:?}"));
        let values = (row.len() - 1 - (usize::from(n) + 9) / 8) / 4;
        assert_eq!(values, usize::from(n), "step {step}: {rows:?}");
        if sent == 1 {
            assert!(rows.len() > usize::from(n) + 1, "step {step}: {rows:?}");
        }
        assert_eq!(n, if tx { 3 } else { 2 }, "step {step}");
        seen.push((n, sent));
        if tx {
            c.query("COMMIT").unwrap();
        }
    }
    // The definitions go with every change of server, and only then.
    let expected: Vec<(u8, u8)> = seen
        .iter()
        .enumerate()
        .map(|(i, &(n, _))| (n, u8::from(i == 0 || seen[i - 1].0 != n)))
        .collect();
    assert_eq!(seen[0], (2, 1), "the replica's, not the prepare's");
    assert_eq!(seen, expected);
}

/// Under `NO_BACKSLASH_ESCAPES` a backslash is a plain character: a
/// prepared text that reads as one plain `SELECT` with backslash escapes
/// may be `SELECT ... INTO @a` as the server reads it. Such an execute
/// pins its session, unread, as the same text as a query does: the
/// variables it sets are the client's, never another client's that
/// takes the connection after it (on a replica the read was split to, or
/// on the writer).
#[test]
fn backends_a_prepared_text_read_otherwise_under_no_backslash_escapes_pins() {
    let f = farm(&[]);
    for cfg in [
        full(&f, ""),
        one_hostgroup("    default_schema: farm\n", &[("w", f.writer.addr())], ""),
    ] {
        let proxy = funnel_testkit::funnel::start(cfg);
        let mut a = client(&proxy);
        a.query_drop("SET sql_mode = 'NO_BACKSLASH_ESCAPES'").unwrap();
        a.exec_drop(r"SELECT ?, '\' INTO @a, @b -- '", (5,)).unwrap();
        let (x, y): (Option<i64>, Option<String>) = a.query_first("SELECT @a, @b").unwrap().unwrap();
        assert_eq!((x, y.as_deref()), (Some(5), Some(r"\")), "the client's own");
        a.query_drop("INSERT INTO t VALUES (1, 0)").unwrap();
        drop(a);
        for i in 0..4 {
            let mut b = client(&proxy);
            let x: Option<i64> = b.query_first("SELECT @a").unwrap().unwrap();
            let y: Option<i64> = b.exec_first("SELECT @a + ?", (0,)).unwrap().unwrap();
            assert_eq!((x, y), (None, None), "another client, {i}");
        }
        assert_eq!(
            f.writer.query_first::<i64>("SELECT COUNT(*) FROM farm.t"),
            Some(1)
        );
        f.writer.exec("DELETE FROM farm.t");
    }
    for r in [&f.r1, &f.r2] {
        assert_eq!(r.query_first::<i64>("SELECT COUNT(*) FROM farm.t"), Some(0));
    }
}
