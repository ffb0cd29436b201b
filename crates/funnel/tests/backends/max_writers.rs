//! `hostgroups[].max_writers`: of a hostgroup's writable servers (two
//! primaries of an active-passive pair, Galera nodes), only the first
//! takes writes, on every core; the next takes them once it is down or
//! drained, and the first again once it is back.

use std::time::{Duration, Instant};

use funnel_testkit::MariaDb;
use mysql::prelude::Queryable;
use mysql::Conn;

use super::{client, one_hostgroup, server};

/// The rows each server holds in `farm.t`.
fn rows(servers: &[&MariaDb]) -> Vec<i64> {
    servers
        .iter()
        .map(|db| db.query_first::<i64>("SELECT COUNT(*) FROM farm.t").unwrap())
        .collect()
}

/// Inserts `n` rows from fresh clients (so both cores and every pooled
/// connection take part), from id `first`.
fn insert(proxy: &funnel_engine::Proxy, first: i64, n: i64) {
    for id in first..first + n {
        let mut c: Conn = client(proxy);
        c.query_drop(format!("INSERT INTO farm.t VALUES ({id}, 0)"))
            .unwrap();
    }
}

/// The backend that takes writes on each core (`SHOW SERVERS`'s
/// `takes_writes`).
fn writers(proxy: &funnel_engine::Proxy) -> Vec<String> {
    proxy
        .snapshots()
        .iter()
        .flat_map(|s| {
            s.pools
                .iter()
                .filter(|p| p.takes_writes)
                .map(|p| p.backend.clone())
        })
        .collect()
}

#[test]
fn backends_max_writers_sends_every_write_to_the_first_writable_server() {
    let (a, b) = (server(false, &[]), server(false, &[]));
    let extra = "pool:\n  max_per_core: 2\n\
                 monitor:\n  interval: 100ms\n  timeout: 500ms\n  failures_before_down: 1\n\
                 hostgroups:\n  - name: db\n    max_writers: 1\n";
    let mut cfg = one_hostgroup(
        "    default_schema: farm\n",
        &[("b", b.addr()), ("a", a.addr())],
        extra,
    );
    cfg.cores = funnel_config::Cores::Count(2);
    // `b` is listed first, but `a` weighs more: weight ranks first.
    cfg.backends[1].weight = 5;
    let proxy = funnel_testkit::funnel::start(cfg);
    insert(&proxy, 1, 20);
    assert_eq!(rows(&[&a, &b]), [20, 0], "every write went to the first writer");
    assert_eq!(writers(&proxy), ["a", "a"], "on each core, as SHOW SERVERS shows");
    // Reads of a table still spread over both.
    let mut ports = std::collections::BTreeSet::new();
    let mut c: Conn = client(&proxy);
    for _ in 0..40 {
        let (port, _) = c
            .query_first::<(u16, i64), _>("SELECT @@port, COUNT(*) FROM farm.t")
            .unwrap()
            .unwrap();
        ports.insert(port);
    }
    assert_eq!(ports.len(), 2, "{ports:?}");
    // The first writer goes down: once the monitor says so, the next one
    // takes the writes.
    a.stop();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut id = 100;
    loop {
        let mut c: Conn = client(&proxy);
        if c.query_drop(format!("INSERT INTO farm.t VALUES ({id}, 0)"))
            .is_ok()
        {
            break;
        }
        assert!(Instant::now() < deadline, "no writer took over");
        std::thread::sleep(Duration::from_millis(100));
        id += 1;
    }
    insert(&proxy, 1000, 10);
    assert_eq!(rows(&[&b]), [11]);
    assert_eq!(writers(&proxy), ["b", "b"]);
    // Back, it takes them again (no write goes to `b` once it is seen up).
    a.start_again();
    let deadline = Instant::now() + Duration::from_secs(20);
    while rows(&[&a])[0] == 20 {
        assert!(
            Instant::now() < deadline,
            "the first writer never took the writes back"
        );
        insert(&proxy, 2000 + id, 1);
        id += 1;
        std::thread::sleep(Duration::from_millis(50));
    }
    let b_rows = rows(&[&b])[0];
    insert(&proxy, 5000, 10);
    assert_eq!(
        rows(&[&b])[0],
        b_rows,
        "writes stay on the first writer once it is back"
    );
}

/// Two writable servers `a` (first) and `b` of hostgroup `db` with
/// `max_writers: 1`, the user without a read hostgroup (its reads spread
/// over both), one core.
fn pair(extra: &str) -> (MariaDb, MariaDb, funnel_engine::Proxy) {
    let (a, b) = (server(false, &[]), server(false, &[]));
    let extra = format!(
        "pool:\n  max_per_core: 4\n\
         monitor:\n  interval: 100ms\n  timeout: 500ms\n  failures_before_down: 1\n\
         hostgroups:\n  - name: db\n    max_writers: 1\n{extra}"
    );
    let cfg = one_hostgroup(
        "    default_schema: farm\n",
        &[("a", a.addr()), ("b", b.addr())],
        &extra,
    );
    let proxy = funnel_testkit::funnel::start(cfg);
    // Both checked: reads spread over both from here.
    let deadline = Instant::now() + Duration::from_secs(10);
    while proxy.snapshots()[0].pools.iter().any(|p| p.last_check.is_none()) {
        assert!(Instant::now() < deadline, "never checked");
        std::thread::sleep(Duration::from_millis(20));
    }
    (a, b, proxy)
}

/// A read that left warnings keeps its connection for the client's `SHOW
/// WARNINGS`; the next statement, a write, may use it only where writes
/// go. On the writable server that max_writers leaves out, it may not:
/// before, a write after such a read ran there (writable, so "where writes
/// go"), behind max_writers' back.
#[test]
fn backends_max_writers_a_write_after_a_read_with_warnings_goes_to_the_writer() {
    let (a, b, proxy) = pair("");
    let mut c: Conn = client(&proxy);
    let mut on_b = 0;
    for id in 1..=20 {
        let port: u16 = c
            .query_first("SELECT @@port + CAST('0x' AS SIGNED)")
            .unwrap()
            .unwrap();
        on_b += usize::from(port == b.port());
        c.query_drop(format!("INSERT INTO farm.t VALUES ({id}, 0)"))
            .unwrap();
    }
    assert!(on_b > 0, "no read with warnings landed on b");
    assert_eq!(rows(&[&a, &b]), [20, 0], "every write went to the writer");
}

/// A read whose stored function set a user variable (which only the
/// server's state-change report shows) keeps the connection for the
/// session, and its writes follow: on a server that does not take the
/// hostgroup's writes, they would run there. So as on a read-only server,
/// the session is not pinned there. Before, writes after `SELECT f()` on
/// `b` ran on `b`.
#[test]
fn backends_max_writers_untracked_state_does_not_pin_writes_to_a_non_writer() {
    let (a, b, proxy) = pair("");
    for db in [&a, &b] {
        db.exec("CREATE FUNCTION farm.f() RETURNS INT BEGIN SET @fx = 7; RETURN @@port; END");
    }
    let mut on_b = 0;
    for id in 1..=20 {
        let mut c: Conn = client(&proxy);
        let port: u16 = c.query_first("SELECT farm.f()").unwrap().unwrap();
        on_b += usize::from(port == b.port());
        c.query_drop(format!("INSERT INTO farm.t VALUES ({id}, 0)"))
            .unwrap();
    }
    assert!(on_b > 0, "no read landed on b");
    assert_eq!(rows(&[&a, &b]), [20, 0], "every write went to the writer");
}

/// `causal_reads` of a user without a read hostgroup, whose hostgroup has
/// an active-passive pair: the passive primary, writable but left out by
/// max_writers, replicates from the active one `MASTER_DELAY` seconds
/// late. A read that lands there is a read on a replica: it waits for the
/// session's write (here past `causal_reads_timeout`, so it runs on the
/// writer). Before, it was taken for a writer of the default hostgroup
/// and read at once, missing the session's own write.
#[test]
fn backends_max_writers_causal_reads_wait_on_the_passive_primary() {
    let (a, b) = super::causal_reads::delayed_pair_of(3, false);
    let extra = "pool:\n  max_per_core: 4\n\
                 monitor:\n  interval: 100ms\n  timeout: 500ms\n  failures_before_down: 1\n\
                 hostgroups:\n  - name: db\n    max_writers: 1\n";
    let cfg = one_hostgroup(
        "    default_schema: farm\n    causal_reads: true\n    causal_reads_timeout: 300ms\n",
        &[("a", a.addr()), ("b", b.addr())],
        extra,
    );
    let proxy = funnel_testkit::funnel::start(cfg);
    // Until its replication runs, the monitor cannot tell b from a
    // primary (no lag known), and takes it for one.
    funnel_testkit::wait_until_within("b seen replicating", Duration::from_secs(10), || {
        proxy.snapshots()[0]
            .pools
            .iter()
            .all(|p| p.last_check.is_some() && (p.backend == "a" || p.lag.is_some()))
    });
    assert_eq!(writers(&proxy), ["a"]);
    let mut c: Conn = client(&proxy);
    let mut on_b = 0;
    for id in 1..=6 {
        c.query_drop(format!("INSERT INTO farm.t VALUES ({id}, 0)"))
            .unwrap();
        let (seen, port): (Option<i64>, u16) = c
            .query_first(format!("SELECT (SELECT id FROM farm.t WHERE id = {id}), @@port"))
            .unwrap()
            .unwrap();
        on_b += usize::from(port == b.port());
        assert_eq!(seen, Some(id), "the session's own write (read on port {port})");
    }
    assert_eq!(rows(&[&a]), [6]);
    let c = &proxy.snapshots()[0].counters;
    assert!(
        on_b == 0 && c.causal_reads_on_writer > 0,
        "b too late every time: the reads went to the writer ({on_b} on b)"
    );
}

/// Inserts row `id` through a fresh client, recording the port of the
/// server that ran it.
fn insert_port(proxy: &funnel_engine::Proxy, id: i64) {
    let mut c: Conn = client(proxy);
    c.query_drop(format!("INSERT INTO farm.t VALUES ({id}, @@port)"))
        .unwrap();
}

/// The ports rows `from..to` were written on, as each server holds them.
fn written_on(servers: &[&MariaDb], from: i64, to: i64) -> Vec<u16> {
    let mut ports: Vec<u16> = servers
        .iter()
        .flat_map(|db| {
            db.root()
                .query::<u16, _>(format!(
                    "SELECT DISTINCT v FROM farm.t WHERE id >= {from} AND id < {to}"
                ))
                .unwrap()
        })
        .collect();
    ports.sort_unstable();
    ports.dedup();
    ports
}

/// Reloads with `edit` applied to the running configuration.
fn reload(proxy: &funnel_engine::Proxy, edit: impl FnOnce(&mut funnel_config::Config)) {
    proxy
        .handle()
        .update(|mut cfg| {
            edit(&mut cfg);
            Ok::<_, ()>(cfg)
        })
        .unwrap()
        .unwrap();
}

/// Reloads move the writes on every core at once: a heavier weight, the
/// setting removed (every writable server writes) and back, the writer
/// removed, drained and undrained (back once checked). A transaction open
/// on the old writer commits there.
#[test]
fn backends_max_writers_follows_reloads_on_every_core() {
    let (a, b) = (server(false, &[]), server(false, &[]));
    let extra = "pool:\n  max_per_core: 4\n\
                 monitor:\n  interval: 100ms\n  timeout: 500ms\n  failures_before_down: 1\n\
                 hostgroups:\n  - name: db\n    max_writers: 1\n";
    let mut cfg = one_hostgroup(
        "    default_schema: farm\n",
        &[("a", a.addr()), ("b", b.addr())],
        extra,
    );
    cfg.cores = funnel_config::Cores::Count(2);
    let proxy = funnel_testkit::funnel::start(cfg);
    let both = [&a, &b];
    for id in 0..10 {
        insert_port(&proxy, id);
    }
    assert_eq!(written_on(&both, 0, 10), [a.port()]);
    assert_eq!(writers(&proxy), ["a", "a"]);
    let mut tx: Conn = client(&proxy);
    tx.query_drop("BEGIN").unwrap();
    tx.query_drop("INSERT INTO farm.t VALUES (50, @@port)").unwrap();

    // Weight 2, not 5: with the setting cleared below, each fresh client's
    // login check and its insert take turns in the round-robin, and a
    // cycle of an even length (1 + 5) could give `a` only the logins.
    reload(&proxy, |cfg| cfg.backends[1].weight = 2);
    assert_eq!(
        writers(&proxy),
        ["b", "b"],
        "on every core when the reload returns"
    );
    for id in 100..110 {
        insert_port(&proxy, id);
    }
    assert_eq!(written_on(&both, 100, 110), [b.port()]);
    tx.query_drop("COMMIT").unwrap();
    assert_eq!(written_on(&both, 50, 51), [a.port()], "the transaction stayed");

    reload(&proxy, |cfg| cfg.hostgroups.clear());
    assert_eq!(writers(&proxy).len(), 4, "every writable server writes");
    for id in 200..220 {
        insert_port(&proxy, id);
    }
    assert_eq!(written_on(&both, 200, 220).len(), 2);

    reload(&proxy, |cfg| {
        cfg.hostgroups = vec![funnel_config::HostgroupConfig {
            name: "db".into(),
            max_writers: Some(1),
        }];
        cfg.backends.remove(1);
    });
    assert_eq!(writers(&proxy), ["a", "a"]);
    for id in 300..310 {
        insert_port(&proxy, id);
    }
    assert_eq!(written_on(&both, 300, 310), [a.port()]);

    // b back, lighter: a keeps the writes; a drained: b; a undrained:
    // a again once checked.
    reload(&proxy, |cfg| {
        let mut back = cfg.backends[0].clone();
        back.name = "b".into();
        back.address = b.addr().to_string();
        cfg.backends.push(back);
    });
    funnel_testkit::wait_until_within("b checked", Duration::from_secs(10), || {
        proxy
            .snapshots()
            .iter()
            .all(|s| s.pools.iter().all(|p| p.last_check.is_some()))
    });
    assert_eq!(writers(&proxy), ["a", "a"]);
    funnel_testkit::funnel::set_drained(&proxy, "a", true);
    assert_eq!(writers(&proxy), ["b", "b"]);
    for id in 400..410 {
        insert_port(&proxy, id);
    }
    assert_eq!(written_on(&both, 400, 410), [b.port()]);
    funnel_testkit::funnel::set_drained(&proxy, "a", false);
    funnel_testkit::wait_until_within("a writes again", Duration::from_secs(10), || {
        writers(&proxy) == ["a", "a"]
    });
    for id in 500..510 {
        insert_port(&proxy, id);
    }
    assert_eq!(written_on(&both, 500, 510), [a.port()]);
}

/// At start no server is checked yet. The first one (`a`) is slower to
/// check (here its health check's login runs a one-second
/// `init_connect`): a write that comes meanwhile waits for its verdict
/// rather than go to the second, which would take the writes for that
/// second and then give them up, two writers in a row. Before, the
/// second's verdict came first and the write ran there.
#[test]
fn backends_max_writers_a_write_waits_for_the_first_servers_first_check() {
    let a = server(false, &["--init-connect=DO SLEEP(1)"]);
    let b = server(false, &[]);
    for db in [&a, &b] {
        db.exec("CREATE USER mon@'%' IDENTIFIED BY 'monpw'");
    }
    let extra = "pool:\n  max_per_core: 4\n\
                 monitor:\n  interval: 100ms\n  timeout: 10s\n  failures_before_down: 1\n  \
                 user: mon\n  password: monpw\n\
                 hostgroups:\n  - name: db\n    max_writers: 1\n";
    let cfg = one_hostgroup(
        "    default_schema: farm\n",
        &[("a", a.addr()), ("b", b.addr())],
        extra,
    );
    let proxy = funnel_testkit::funnel::start(cfg);
    insert_port(&proxy, 1);
    assert_eq!(written_on(&[&a, &b], 1, 2), [a.port()], "the write waited for a");
    assert_eq!(writers(&proxy), ["a"]);
}
