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
    funnel_testkit::wait_until_within("both checked", Duration::from_secs(10), || {
        proxy.snapshots()[0].pools.iter().all(|p| p.last_check.is_some())
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
