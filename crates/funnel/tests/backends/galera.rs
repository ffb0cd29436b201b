//! Galera nodes: the health monitor takes a node that may not serve (not
//! ready, out of the primary component, not synced: a donor, a node
//! desynced for a backup; or rejecting queries for maintenance) out of
//! rotation although it answers, and puts it back once it is synced. Most
//! nodes here are one-node clusters of their own (wsrep on, Galera's
//! provider), desynced with `wsrep_desync`; one test runs a real two-node
//! cluster on loopback and kills a node to lose quorum.

use std::time::{Duration, Instant};

use funnel_testkit::MariaDb;
use mysql::prelude::Queryable;
use mysql::Conn;

use super::causal_reads::{connect as causal_client, killed_read, read as read_v};
use super::{one_hostgroup, server};

const PROVIDER: &str = "/usr/lib/galera/libgalera_smm.so";

/// A one-node Galera cluster. Debian's mariadb-server depends on galera-4,
/// which installs the provider.
fn galera_node() -> MariaDb {
    galera_node_with(&[])
}

/// [`galera_node`] with more server options.
fn galera_node_with(extra: &[&str]) -> MariaDb {
    assert!(
        std::path::Path::new(PROVIDER).exists(),
        "no Galera provider at {PROVIDER}: install galera-4 (mariadb-server depends on it)"
    );
    // The group communication port; free a moment ago.
    let gcomm = free_port();
    let args = [
        "--wsrep_on=ON".to_string(),
        format!("--wsrep_provider={PROVIDER}"),
        "--wsrep_cluster_address=gcomm://".into(),
        format!("--wsrep_provider_options=gmcast.listen_addr=tcp://127.0.0.1:{gcomm}"),
        "--binlog_format=ROW".into(),
        "--innodb_autoinc_lock_mode=2".into(),
    ];
    let args: Vec<&str> = args
        .iter()
        .map(String::as_str)
        .chain(extra.iter().copied())
        .collect();
    server(false, &args)
}

/// The rows each server holds in `farm.t`.
fn rows(servers: &[&MariaDb]) -> Vec<i64> {
    servers
        .iter()
        .map(|db| db.query_first::<i64>("SELECT COUNT(*) FROM farm.t").unwrap())
        .collect()
}

/// Inserts row `id` through a fresh client; the error, if its login (the
/// schema is checked on a backend) or the insert failed.
fn insert(proxy: &funnel_engine::Proxy, id: i64) -> Result<(), mysql::Error> {
    let opts = funnel_testkit::client_opts(proxy.local_addr().port(), "app", "apppw");
    let mut c = Conn::new(opts)?;
    c.query_drop(format!("INSERT INTO farm.t VALUES ({id}, 0)"))
}

/// Waits until `insert` of fresh ids lands on `db` (each one tried lands
/// somewhere or fails); returns the next free id.
fn wait_for_writes_on(proxy: &funnel_engine::Proxy, db: &MariaDb, mut id: i64) -> i64 {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let before = rows(&[db])[0];
        let _ = insert(proxy, id);
        id += 1;
        if rows(&[db])[0] > before {
            return id;
        }
        assert!(Instant::now() < deadline, "writes never reached {}", db.port());
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The message of the ERR 9004 an insert of row `id` gets once no node of
/// the hostgroup can take it (g2, the last, taken out too).
fn no_writer_left(proxy: &funnel_engine::Proxy, id: i64) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match insert(proxy, id) {
            Err(mysql::Error::MySqlError(e)) if e.code == 9004 => return e.message,
            _ => {}
        }
        assert!(Instant::now() < deadline, "g2 was never taken out");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Funnel in front of `g1` and `g2`, one hostgroup with `max_writers: 1`
/// (`g1` writes while it may), checked every 100 ms.
fn one_writer_of(g1: &MariaDb, g2: &MariaDb) -> funnel_engine::Proxy {
    let extra = "pool:\n  max_per_core: 2\n\
                 monitor:\n  interval: 100ms\n  timeout: 2s\n  failures_before_down: 1\n\
                 hostgroups:\n  - name: db\n    max_writers: 1\n";
    let cfg = one_hostgroup(
        "    default_schema: farm\n",
        &[("g1", g1.addr()), ("g2", g2.addr())],
        extra,
    );
    funnel_testkit::funnel::start(cfg)
}

#[test]
fn backends_galera_node_out_of_sync_is_taken_out_of_rotation() {
    let (g1, g2) = (galera_node(), galera_node());
    let proxy = one_writer_of(&g1, &g2);
    let id = wait_for_writes_on(&proxy, &g1, 1);
    for id in id..id + 10 {
        insert(&proxy, id).unwrap();
    }
    let on_g2 = rows(&[&g2])[0];
    assert_eq!(on_g2, 0, "the first node took every write");
    // Desynced (as for a backup), g1 still answers, but lags its cluster:
    // out of rotation, and g2 takes the writes.
    g1.exec("SET GLOBAL wsrep_desync = ON");
    let id = wait_for_writes_on(&proxy, &g2, 100);
    let pools = &proxy.snapshots()[0].pools;
    let g1_pool = pools.iter().find(|p| p.backend == "g1").unwrap();
    assert_eq!((g1_pool.status, g1_pool.takes_writes), ("down", false));
    // Both out: the client is told why.
    g2.exec("SET GLOBAL wsrep_desync = ON");
    let message = no_writer_left(&proxy, id);
    assert!(
        message.contains("g1 is down (Galera node not synced (Donor/Desynced))")
            && message.contains("g2 is down (Galera node not synced"),
        "{message}"
    );
    // Synced again, g1 takes the writes back.
    g1.exec("SET GLOBAL wsrep_desync = OFF");
    g2.exec("SET GLOBAL wsrep_desync = OFF");
    wait_for_writes_on(&proxy, &g1, id + 1);
}

/// A free port on loopback (free a moment ago).
fn free_port() -> u16 {
    funnel_testkit::listen_port()
}

/// Galera options for a node of a cluster at `gcomm` (empty: a new one),
/// with its own group and IST ports, and failure detection in seconds.
fn cluster_args(gcomm: &str, gport: u16) -> Vec<String> {
    let ist = free_port();
    vec![
        "--wsrep_on=ON".to_string(),
        format!("--wsrep_provider={PROVIDER}"),
        format!("--wsrep_cluster_address=gcomm://{gcomm}"),
        "--wsrep_cluster_name=funnel".into(),
        "--wsrep_node_address=127.0.0.1".into(),
        "--wsrep_sst_method=mysqldump".into(),
        "--wsrep_sst_auth=root:".into(),
        format!(
            "--wsrep_provider_options=gmcast.listen_addr=tcp://127.0.0.1:{gport};ist.recv_addr=127.0.0.1:{ist};\
             evs.keepalive_period=PT0.3S;evs.inactive_check_period=PT0.5S;evs.suspect_timeout=PT1S;\
             evs.inactive_timeout=PT2S;evs.install_timeout=PT2S"
        ),
        "--binlog_format=ROW".into(),
        "--innodb_autoinc_lock_mode=2".into(),
    ]
}

/// A Galera node of a cluster at `gcomm` (empty: it bootstraps one),
/// with `extra` server options.
fn cluster_node(gcomm: &str, gport: u16, extra: &[&str]) -> MariaDb {
    let mut b = MariaDb::builder().startup_timeout(Duration::from_secs(60));
    for a in cluster_args(gcomm, gport) {
        b = b.server_arg(a);
    }
    for a in extra {
        b = b.server_arg(*a);
    }
    b.start().unwrap_or_else(|e| panic!("{e}"))
}

/// A two-node Galera cluster on loopback: the second joins by a
/// `mysqldump` state transfer (rsync's daemon, run as root here, writes
/// as nobody and cannot); the test account and schema are made once both
/// are in, and replicate.
fn galera_pair() -> (MariaDb, MariaDb) {
    galera_pair_with(&[])
}

/// [`galera_pair`], each node with `extra` server options.
fn galera_pair_with(extra: &[&str]) -> (MariaDb, MariaDb) {
    galera_pair_each(extra, extra)
}

/// [`galera_pair`], the first node with `first` server options, the
/// second with `second`.
fn galera_pair_each(first: &[&str], second: &[&str]) -> (MariaDb, MariaDb) {
    let g1port = free_port();
    let g1 = cluster_node("", g1port, first);
    let g2 = cluster_node(&format!("127.0.0.1:{g1port}"), free_port(), second);
    let deadline = Instant::now() + Duration::from_secs(30);
    while [&g1, &g2]
        .iter()
        .any(|db| galera_status(db) != ("Primary".into(), "Synced".into()))
    {
        assert!(
            Instant::now() < deadline,
            "the cluster never formed:\n{}",
            g2.error_log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    g1.create_user("fb", "bpw");
    g1.create_database("farm");
    g1.exec("CREATE TABLE farm.t (id INT PRIMARY KEY, v INT)");
    (g1, g2)
}

/// The node's `wsrep_cluster_status` and `wsrep_local_state_comment`.
fn galera_status(db: &MariaDb) -> (String, String) {
    let rows: Vec<(String, String)> = db
        .root()
        .query(
            "SHOW GLOBAL STATUS WHERE Variable_name IN \
             ('wsrep_cluster_status', 'wsrep_local_state_comment')",
        )
        .unwrap();
    let get = |n: &str| {
        rows.iter()
            .find(|(k, _)| k == n)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    (get("wsrep_cluster_status"), get("wsrep_local_state_comment"))
}

/// Inserts row `id` through `c`, recording the port of the node that ran it.
fn insert_port(c: &mut Conn, id: i64) -> Result<(), mysql::Error> {
    c.query_drop(format!("INSERT INTO farm.t VALUES ({id}, @@port)"))
}

/// A two-node cluster whose second node dies: the first, alone, is out of
/// the primary component (no quorum) and refuses statements though it
/// answers. It is taken out, and clients' ERR 9004 says it lost the
/// primary component (before: "not ready (wsrep_ready OFF)", which a
/// non-primary node also is, but which does not say why). Back, the
/// second rejoins (by SST from the first, a donor meanwhile), and writes
/// go to the first again.
#[test]
fn backends_galera_node_that_lost_quorum_is_taken_out_and_named() {
    let (g1, g2) = galera_pair();
    let extra = "pool:\n  max_per_core: 4\n\
                 monitor:\n  interval: 100ms\n  timeout: 2s\n  failures_before_down: 3\n\
                 hostgroups:\n  - name: db\n    max_writers: 1\n";
    let cfg = one_hostgroup(
        "    default_schema: farm\n",
        &[("g1", g1.addr()), ("g2", g2.addr())],
        extra,
    );
    let proxy = funnel_testkit::funnel::start(cfg);
    let opts = || funnel_testkit::client_opts(proxy.local_addr().port(), "app", "apppw");
    let mut c = Conn::new(opts()).unwrap();
    for id in 1..=10 {
        insert_port(&mut c, id).unwrap();
    }
    let ports: Vec<u16> = g2.root().query("SELECT DISTINCT v FROM farm.t").unwrap();
    assert_eq!(ports, [g1.port()], "written through g1, replicated to g2");
    g2.kill();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut id = 100;
    let message = loop {
        if let Err(mysql::Error::MySqlError(e)) = insert_port(&mut c, id) {
            if e.code == 9004 {
                break e.message;
            }
        }
        assert!(Instant::now() < deadline, "g1 was never taken out");
        id += 1;
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(
        message.contains("g1 is down (Galera node out of the primary component (non-Primary))"),
        "{message}"
    );
    g2.start_again();
    // Back in a primary component, g1 takes the writes again once it is
    // synced: while it gives g2 the state g2 missed it is a donor, out of
    // rotation, and g2 (synced first) may take them meanwhile.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if insert_port(&mut c, id).is_ok() {
            // A write through g2 may not have reached g1 yet.
            let port: Option<u16> = g1.query_first(&format!("SELECT v FROM farm.t WHERE id = {id}"));
            if port == Some(g1.port()) {
                break;
            }
        }
        assert!(Instant::now() < deadline, "writes never came back to g1");
        id += 1;
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A node an operator takes out for maintenance with
/// `wsrep_reject_queries` (ALL, or ALL_KILL) stays synced and answers the
/// health check, but refuses every client statement that reads a table
/// (ERR 1047): it is taken out of rotation, named in ERR 9004, and back
/// at NONE. Before, it stayed up and every write sent there failed.
#[test]
fn backends_galera_node_rejecting_queries_is_taken_out_of_rotation() {
    let (g1, g2) = (galera_node(), galera_node());
    let proxy = one_writer_of(&g1, &g2);
    let id = wait_for_writes_on(&proxy, &g1, 1);
    g1.exec("SET GLOBAL wsrep_reject_queries = ALL");
    let id = wait_for_writes_on(&proxy, &g2, id);
    for id in id..id + 10 {
        insert(&proxy, id).unwrap();
    }
    g2.exec("SET GLOBAL wsrep_reject_queries = ALL_KILL");
    let message = no_writer_left(&proxy, id + 10);
    assert!(
        message.contains("g1 is down (Galera node rejects queries (wsrep_reject_queries ALL))")
            && message.contains("g2 is down (Galera node rejects queries (wsrep_reject_queries ALL_KILL))"),
        "{message}"
    );
    g1.exec("SET GLOBAL wsrep_reject_queries = NONE");
    wait_for_writes_on(&proxy, &g1, id + 11);
}

/// With `monitor.galera_donors_serve`, a desynced node (a donor, a backup)
/// stays in rotation: in a hostgroup of one writer the writes go on there.
#[test]
fn backends_galera_donor_serves_when_asked_to() {
    let g1 = galera_node();
    let extra = "pool:\n  max_per_core: 2\n\
                 monitor:\n  interval: 100ms\n  timeout: 2s\n  failures_before_down: 1\n  galera_donors_serve: true\n";
    let cfg = one_hostgroup("    default_schema: farm\n", &[("g1", g1.addr())], extra);
    let proxy = funnel_testkit::funnel::start(cfg);
    let id = wait_for_writes_on(&proxy, &g1, 1);
    g1.exec("SET GLOBAL wsrep_desync = ON");
    // Several monitor rounds: the node is never taken out.
    for id in id..id + 20 {
        insert(&proxy, id).unwrap();
        std::thread::sleep(Duration::from_millis(25));
    }
    let pools = &proxy.snapshots()[0].pools;
    assert_eq!(pools[0].status, "up");
    g1.exec("SET GLOBAL wsrep_desync = OFF");
}

/// Funnel in front of a Galera pair: `g1` in the default hostgroup, `g2`
/// the read hostgroup. Users `app` (causal reads, up to 10 s), `quick`
/// (causal reads, up to 1 s) and `plain` (none).
fn causal_split(g1: &MariaDb, g2: &MariaDb) -> funnel_engine::Proxy {
    let user = |name: &str, causal: &str| {
        format!(
            "  - name: {name}\n    password: apppw\n    default_schema: farm\n    \
             default_hostgroup: db\n    read_hostgroup: reads\n    read_fallback: false\n{causal}"
        )
    };
    let yaml = format!(
        "listen: 127.0.0.1:0\ncores: 1\nusers:\n{}{}{}backends:\n\
         \x20 - name: g1\n    address: {}\n    user: fb\n    password: bpw\n    hostgroup: db\n\
         \x20 - name: g2\n    address: {}\n    user: fb\n    password: bpw\n    hostgroup: reads\n\
         pool:\n  min_idle_per_core: 0\nmonitor:\n  interval: 200ms\n",
        user("app", "    causal_reads: true\n    causal_reads_timeout: 10s\n"),
        user("quick", "    causal_reads: true\n    causal_reads_timeout: 1s\n"),
        user("plain", ""),
        g1.addr(),
        g2.addr()
    );
    let proxy = funnel_testkit::funnel::start(funnel_config::Config::from_yaml_str(&yaml).unwrap());
    // Until the monitor has seen them, neither is known for a Galera node.
    funnel_testkit::wait_until_within("both nodes checked", Duration::from_secs(10), || {
        proxy.snapshots()[0].pools.iter().all(|p| p.last_check.is_some())
    });
    proxy
}

/// Holds row `id` of `farm.t` on `db` with a transaction that Galera does
/// not replicate (`wsrep_on` off in its session), so the node's applier
/// waits for it: the node stays synced, and applies the cluster's change
/// of that row only once the lock goes (the connection drops).
fn hold_row(db: &MariaDb, id: i64) -> Conn {
    let mut c = db.root();
    c.query_drop("SET SESSION wsrep_on = OFF").unwrap();
    c.query_drop("BEGIN").unwrap();
    let _: Vec<(i64, i64)> = c
        .query(format!("SELECT id, v FROM farm.t WHERE id = {id} FOR UPDATE"))
        .unwrap();
    c
}

/// The causal-read counters: (waited, served at once, sent to the writer).
fn causal_counts(proxy: &funnel_engine::Proxy) -> (u64, u64, u64) {
    let c = &proxy.snapshots()[0].counters;
    (c.causal_waits, c.causal_waits_skipped, c.causal_reads_on_writer)
}

/// A causal_reads session writes through one Galera node and reads
/// through another (its read hostgroup), whose applier a row lock holds
/// back: the read waits there until the node has committed the write
/// (`WSREP_SYNC_WAIT_UPTO_GTID`), and sees it. Without causal reads the
/// same read sees the old value at once. Before, Funnel took every Galera
/// node for a primary and never held a read there. A session whose
/// `causal_reads_timeout` passes first reads from the writer.
#[test]
fn backends_galera_causal_reads_wait_for_the_node_to_apply_the_sessions_write() {
    let (g1, g2) = galera_pair();
    g1.exec("INSERT INTO farm.t VALUES (1, 1), (2, 1)");
    let proxy = causal_split(&g1, &g2);
    funnel_testkit::wait_until_within("g2 has the rows", Duration::from_secs(10), || {
        rows(&[&g2])[0] == 2
    });

    // Without causal reads, the held-back apply shows.
    let mut plain = causal_client(&proxy, "plain");
    let lock = hold_row(&g2, 1);
    plain.query_drop("UPDATE t SET v = 2 WHERE id = 1").unwrap();
    assert_eq!(read_v(&mut plain, 1), (Some(1), g2.port()), "g2 lags");
    drop(lock);
    funnel_testkit::wait_until_within("g2 applies", Duration::from_secs(10), || {
        read_v(&mut plain, 1).0 == Some(2)
    });

    let mut c = causal_client(&proxy, "app");
    let lock = hold_row(&g2, 1);
    c.query_drop("UPDATE t SET v = 3 WHERE id = 1").unwrap();
    let release = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(1500));
        drop(lock);
    });
    let started = Instant::now();
    assert_eq!(read_v(&mut c, 1), (Some(3), g2.port()));
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(1000),
        "the read waited for g2 ({waited:?})"
    );
    release.join().unwrap();
    assert_eq!(causal_counts(&proxy), (1, 0, 0));
    // g2 is known to have it: the next read does not wait.
    assert_eq!(read_v(&mut c, 1), (Some(3), g2.port()));
    assert_eq!(causal_counts(&proxy), (1, 1, 0));
    // Several writes and reads in a row, g2 free: each read sees its write.
    for v in 10..20 {
        c.query_drop(format!("UPDATE t SET v = {v} WHERE id = 2"))
            .unwrap();
        assert_eq!(read_v(&mut c, 2), (Some(v), g2.port()));
    }
    assert_eq!(causal_counts(&proxy).2, 0, "no read went to the writer");

    // g2 cannot catch up within `quick`'s second: the read goes to g1.
    let mut q = causal_client(&proxy, "quick");
    let lock = hold_row(&g2, 1);
    q.query_drop("UPDATE t SET v = 4 WHERE id = 1").unwrap();
    let started = Instant::now();
    assert_eq!(read_v(&mut q, 1), (Some(4), g1.port()));
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(5),
        "the read waited its second ({waited:?})"
    );
    assert_eq!(causal_counts(&proxy).2, 1, "counted in causal_reads_on_writer");
    drop(lock);
    // Caught up, g2 serves the session again.
    funnel_testkit::wait_until_within("g2 applies", Duration::from_secs(10), || {
        read_v(&mut plain, 1).0 == Some(4)
    });
    assert_eq!(read_v(&mut q, 1), (Some(4), g2.port()));
}

/// One hostgroup of a Galera pair under `max_writers: 1` (g1 writes), the
/// reads of a causal_reads session spread over both nodes: each read sees
/// the write before it. One on g2, whose applier a row lock holds back,
/// waits until g2 has committed the write; one on g1, the node written
/// through, is served at once however far g2 lags.
#[test]
fn backends_galera_causal_reads_across_a_one_writer_hostgroup() {
    let (g1, g2) = galera_pair();
    g1.exec("INSERT INTO farm.t VALUES (1, 0)");
    let extra = "pool:\n  max_per_core: 4\n  min_idle_per_core: 0\n\
                 monitor:\n  interval: 100ms\n  timeout: 2s\n\
                 hostgroups:\n  - name: db\n    max_writers: 1\n";
    let cfg = one_hostgroup(
        "    default_schema: farm\n    causal_reads: true\n    causal_reads_timeout: 10s\n",
        &[("g1", g1.addr()), ("g2", g2.addr())],
        extra,
    );
    let proxy = funnel_testkit::funnel::start(cfg);
    funnel_testkit::wait_until_within("both nodes checked", Duration::from_secs(10), || {
        proxy.snapshots()[0].pools.iter().all(|p| p.last_check.is_some())
    });
    let mut c = causal_client(&proxy, "app");
    let (mut on_g1, mut on_g2) = (0, 0);
    for v in 1..=12 {
        let lock = hold_row(&g2, 1);
        c.query_drop(format!("UPDATE t SET v = {v} WHERE id = 1"))
            .unwrap();
        let release = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(400));
            drop(lock);
        });
        let started = Instant::now();
        let (seen, port) = read_v(&mut c, 1);
        let took = started.elapsed();
        assert_eq!(seen, Some(v), "read {v} on {port}");
        if port == g1.port() {
            on_g1 += 1;
            assert!(
                took < Duration::from_millis(300),
                "g1 has the write: no wait ({took:?})"
            );
        } else {
            on_g2 += 1;
            assert!(took >= Duration::from_millis(250), "g2 waited for it ({took:?})");
        }
        release.join().unwrap();
    }
    assert!(
        on_g1 > 0 && on_g2 > 0,
        "reads on both nodes: {on_g1} on g1, {on_g2} on g2"
    );
    let (waits, _, on_writer) = causal_counts(&proxy);
    assert_eq!((waits, on_writer), (on_g2, 0));
}

/// A session of `proxy` in a transaction on a node, holding its
/// connection there (the router counts it as that node's load), and the
/// node's port.
fn pinned(proxy: &funnel_engine::Proxy) -> (Conn, u16) {
    let mut c = causal_client(proxy, "plain");
    c.query_drop("BEGIN").unwrap();
    let port: u16 = c.query_first("SELECT @@port FROM t LIMIT 1").unwrap().unwrap();
    (c, port)
}

/// A transaction that holds a connection on `node`, so the router sends
/// the next write to the other node (the least busy): a second one is
/// begun when the first landed elsewhere.
fn pinned_on(proxy: &funnel_engine::Proxy, node: &MariaDb) -> (Conn, u16) {
    let first = pinned(proxy);
    if first.1 == node.port() {
        return first;
    }
    let second = pinned(proxy);
    assert_eq!(
        second.1,
        node.port(),
        "a transaction holds a connection on {}",
        node.port()
    );
    // The first stays open until the second has its connection.
    drop(first);
    second
}

/// Funnel in front of a Galera pair that both take writes (no
/// `max_writers`), `g2` listed again in the read hostgroup (`g2r`); users
/// `quick` (causal reads, up to 1 s), `app` (causal reads, up to 10 s)
/// and `plain`. Row 1 of `farm.t` holds 0.
fn two_writers(g1: &MariaDb, g2: &MariaDb) -> funnel_engine::Proxy {
    two_writers_with(
        g1,
        g2,
        "pool:\n  min_idle_per_core: 0\nmonitor:\n  interval: 200ms\n",
    )
}

/// [`two_writers`] with `extra` for its `pool` and `monitor` sections.
fn two_writers_with(g1: &MariaDb, g2: &MariaDb, extra: &str) -> funnel_engine::Proxy {
    g1.exec("INSERT INTO farm.t VALUES (1, 0)");
    let user = |name: &str, causal: &str| {
        format!(
            "  - name: {name}\n    password: apppw\n    default_schema: farm\n    \
             default_hostgroup: db\n    read_hostgroup: reads\n    read_fallback: false\n{causal}"
        )
    };
    let yaml = format!(
        "listen: 127.0.0.1:0\ncores: 1\nusers:\n{}{}{}backends:\n\
         \x20 - name: g1\n    address: {}\n    user: fb\n    password: bpw\n    hostgroup: db\n\
         \x20 - name: g2\n    address: {}\n    user: fb\n    password: bpw\n    hostgroup: db\n\
         \x20 - name: g2r\n    address: {}\n    user: fb\n    password: bpw\n    hostgroup: reads\n{extra}",
        user("quick", "    causal_reads: true\n    causal_reads_timeout: 1s\n"),
        user("app", "    causal_reads: true\n    causal_reads_timeout: 10s\n"),
        user("plain", ""),
        g1.addr(),
        g2.addr(),
        g2.addr()
    );
    let proxy = funnel_testkit::funnel::start(funnel_config::Config::from_yaml_str(&yaml).unwrap());
    funnel_testkit::wait_until_within("all checked", Duration::from_secs(10), || {
        proxy.snapshots()[0].pools.iter().all(|p| p.last_check.is_some())
    });
    proxy
}

/// Both Galera nodes take writes (no `max_writers`); `g2` serves reads
/// too (listed again in the read hostgroup). A causal read that `g2`
/// cannot serve in time goes to a writer, but not to `g2`, which lacks the
/// write, though the router would take it (the least busy): to `g1`, the
/// node written through. Before, the writer was any, and the read saw the
/// old value.
#[test]
fn backends_galera_causal_read_a_node_cannot_serve_goes_to_the_node_written_through() {
    let (g1, g2) = galera_pair();
    let proxy = two_writers(&g1, &g2);
    // g2 busy, g1 not: the write goes to g1.
    let pins = pinned_on(&proxy, &g2);
    let lock = hold_row(&g2, 1);
    let mut q = causal_client(&proxy, "quick");
    q.query_drop("UPDATE t SET v = @@port WHERE id = 1").unwrap();
    assert_eq!(
        g1.query_first::<i64>("SELECT v FROM farm.t WHERE id = 1")
            .unwrap(),
        i64::from(g1.port()),
        "written through g1"
    );
    // Now g1 busy, g2 not: the router would send a write to g2.
    let on_g1 = pinned(&proxy);
    assert_eq!(on_g1.1, g1.port(), "a transaction holds a connection on g1");
    drop(pins);
    let started = Instant::now();
    assert_eq!(read_v(&mut q, 1), (Some(i64::from(g1.port())), g1.port()));
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "g2 was waited for"
    );
    assert_eq!(causal_counts(&proxy).2, 1, "counted in causal_reads_on_writer");
    drop(lock);
}

/// A Galera node that replicates from a plain primary by binary log,
/// `MASTER_DELAY` seconds late, in the read hostgroup: a causal read there
/// waits for the session's write as on any replica (`MASTER_GTID_WAIT`).
/// The session wrote to no Galera cluster, so the node's cluster has
/// nothing to wait for; taking every Galera node for one the session
/// wrote to read there at once, and missed the write.
#[test]
fn backends_galera_node_replicating_from_a_plain_primary_is_waited_for_as_a_replica() {
    let writer = server(false, &["--log-bin=binlog", "--server-id=1"]);
    writer.exec("CREATE USER repl@'%' IDENTIFIED BY 'rpw'");
    writer.exec("GRANT REPLICATION SLAVE ON *.* TO repl@'%'");
    writer.exec("RESET MASTER");
    let g = galera_node_with(&["--server-id=2"]);
    g.exec(&format!(
        "CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT={}, MASTER_USER='repl', \
         MASTER_PASSWORD='rpw', MASTER_USE_GTID=slave_pos, MASTER_DELAY=2",
        writer.port()
    ));
    g.exec("START SLAVE");
    let yaml = format!(
        "listen: 127.0.0.1:0\ncores: 1\nusers:\n\
         \x20 - name: app\n    password: apppw\n    default_schema: farm\n    default_hostgroup: db\n    \
         read_hostgroup: reads\n    read_fallback: false\n    causal_reads: true\n    causal_reads_timeout: 10s\n\
         backends:\n\
         \x20 - name: w\n    address: {}\n    user: fb\n    password: bpw\n    hostgroup: db\n\
         \x20 - name: g\n    address: {}\n    user: fb\n    password: bpw\n    hostgroup: reads\n\
         pool:\n  min_idle_per_core: 0\nmonitor:\n  interval: 200ms\n",
        writer.addr(),
        g.addr()
    );
    let proxy = funnel_testkit::funnel::start(funnel_config::Config::from_yaml_str(&yaml).unwrap());
    funnel_testkit::wait_until_within("both checked", Duration::from_secs(10), || {
        proxy.snapshots()[0].pools.iter().all(|p| p.last_check.is_some())
    });
    let mut c = causal_client(&proxy, "app");
    c.query_drop("INSERT INTO t VALUES (1, 10)").unwrap();
    let started = Instant::now();
    assert_eq!(read_v(&mut c, 1), (Some(10), g.port()));
    assert!(
        started.elapsed() >= Duration::from_millis(1000),
        "the read waited for the replica ({:?})",
        started.elapsed()
    );
    assert_eq!(causal_counts(&proxy), (1, 0, 0));
}

/// Writes of a causal session in two-writer Galera hostgroup made while it
/// was pinned (by `GET_LOCK`) through `g1`, their GTID unread: the next
/// read, sent to `g2` (which lacks them), goes to a writer, but to `g1`,
/// the node they went through, not to `g2` though the router would take
/// it (the least busy). Before, any writer.
#[test]
fn backends_galera_causal_read_after_unread_writes_goes_to_the_node_written_through() {
    let (g1, g2) = galera_pair();
    let proxy = two_writers(&g1, &g2);
    let mut q = causal_client(&proxy, "quick");
    // g2 busy, g1 not: the lock, and the write on its connection, go to g1.
    let pins = pinned_on(&proxy, &g2);
    let lock = hold_row(&g2, 1);
    write_unread(&mut q, "UPDATE t SET v = @@port WHERE id = 1");
    assert_eq!(
        g1.query_first::<i64>("SELECT v FROM farm.t WHERE id = 1")
            .unwrap(),
        i64::from(g1.port()),
        "written through g1"
    );
    let on_g1 = pinned(&proxy);
    assert_eq!(on_g1.1, g1.port(), "a transaction holds a connection on g1");
    drop(pins);
    assert_eq!(read_v(&mut q, 1), (Some(i64::from(g1.port())), g1.port()));
    assert_eq!(causal_counts(&proxy), (0, 0, 1), "no wait: its GTID was unread");
    // Read back on g1 meanwhile: g2 is waited for (in vain: its applier is
    // still held), and the read goes to g1 again.
    assert_eq!(read_v(&mut q, 1), (Some(i64::from(g1.port())), g1.port()));
    assert_eq!(causal_counts(&proxy), (0, 0, 2));
    drop(lock);
    funnel_testkit::wait_until_within("g2 applies", Duration::from_secs(10), || {
        g2.query_first::<i64>("SELECT v FROM farm.t WHERE id = 1")
            .unwrap()
            == i64::from(g1.port())
    });
    assert_eq!(read_v(&mut q, 1), (Some(i64::from(g1.port())), g2.port()));
    assert_eq!(causal_counts(&proxy), (1, 0, 2));
}

/// `WSREP_SYNC_WAIT_UPTO_GTID` answers once the node has ordered the
/// write for commit, which with a binary log synced at each commit
/// (`sync_binlog = 1`) is often before the commit shows: a read right
/// after it missed the write several times in a few hundred. Galera's
/// causal wait (`wsrep_sync_wait`) after it closes that gap: each of 300
/// reads on g2 right after a write through g1 sees the write.
#[test]
fn backends_galera_causal_reads_see_each_write_with_a_synced_binary_log() {
    let (g1, g2) = galera_pair_with(&["--log-bin=binlog", "--sync-binlog=1"]);
    g1.exec("INSERT INTO farm.t VALUES (1, 0)");
    let proxy = causal_split(&g1, &g2);
    let mut c = causal_client(&proxy, "app");
    let mut missed = Vec::new();
    for v in 1..=300 {
        c.query_drop(format!("UPDATE t SET v = {v} WHERE id = 1"))
            .unwrap();
        let (seen, port) = read_v(&mut c, 1);
        assert_eq!(port, g2.port());
        if seen != Some(v) {
            missed.push((v, seen));
        }
    }
    assert_eq!(missed, [], "reads that missed the write before them");
    assert_eq!(causal_counts(&proxy).2, 0, "no read went to the writer");
}

/// Nodes with server ids of their own, as replication wants them: the
/// cluster's GTIDs of a write read the same on each, so a causal read on
/// the other node waits there and is served there.
#[test]
fn backends_galera_causal_reads_wait_on_nodes_with_their_own_server_ids() {
    let (g1, g2) = galera_pair_each(&["--server-id=11"], &["--server-id=12"]);
    g1.exec("INSERT INTO farm.t VALUES (1, 1)");
    let proxy = causal_split(&g1, &g2);
    funnel_testkit::wait_until_within("g2 has the row", Duration::from_secs(10), || rows(&[&g2])[0] == 1);
    let mut c = causal_client(&proxy, "app");
    for v in 10..15 {
        c.query_drop(format!("UPDATE t SET v = {v} WHERE id = 1"))
            .unwrap();
        assert_eq!(read_v(&mut c, 1), (Some(v), g2.port()));
    }
    assert_eq!(causal_counts(&proxy).2, 0, "no read went to the writer");
    assert!(causal_counts(&proxy).0 > 0, "some read waited on g2");
    // The waits' wsrep_sync_wait was for their one SELECT: g2's
    // connections, which the plain user's reads take next, are as before.
    drop(c);
    let mut plain = causal_client(&proxy, "plain");
    for _ in 0..3 {
        let (sync, port): (i64, u16) = plain
            .query_first("SELECT @@session.wsrep_sync_wait, @@port")
            .unwrap()
            .unwrap();
        assert_eq!((sync, port), (0, g2.port()));
    }
}

/// A read on a node of the read hostgroup the health monitor has not
/// checked yet (just added, or its checks fail: here the monitor's account
/// exists on g1 only), so Funnel cannot tell it is a node of the cluster
/// the session wrote to: it must not serve the session's read as a
/// primary would, at once, while its applier lags.
#[test]
fn backends_galera_causal_read_on_a_node_not_checked_yet_sees_the_write() {
    let (g1, g2) = galera_pair();
    g1.exec("INSERT INTO farm.t VALUES (1, 1)");
    // Not replicated: g2's checks fail to log in.
    let mut root = g1.root();
    root.query_drop("SET SESSION wsrep_on = OFF").unwrap();
    root.query_drop("CREATE USER mon@'%' IDENTIFIED BY 'mpw'")
        .unwrap();
    drop(root);
    let yaml = format!(
        "listen: 127.0.0.1:0\ncores: 1\nusers:\n\
         \x20 - name: app\n    password: apppw\n    default_schema: farm\n    default_hostgroup: db\n    \
         read_hostgroup: reads\n    read_fallback: false\n    causal_reads: true\n    causal_reads_timeout: 10s\n\
         backends:\n\
         \x20 - name: g1\n    address: {}\n    user: fb\n    password: bpw\n    hostgroup: db\n\
         \x20 - name: g2\n    address: {}\n    user: fb\n    password: bpw\n    hostgroup: reads\n\
         pool:\n  min_idle_per_core: 0\n\
         monitor:\n  interval: 200ms\n  user: mon\n  password: mpw\n  failures_before_down: 1000\n",
        g1.addr(),
        g2.addr()
    );
    let proxy = funnel_testkit::funnel::start(funnel_config::Config::from_yaml_str(&yaml).unwrap());
    funnel_testkit::wait_until_within("g1 checked", Duration::from_secs(10), || {
        proxy.snapshots()[0].pools.iter().any(|p| p.last_check.is_some())
    });
    funnel_testkit::wait_until_within("g2 has the row", Duration::from_secs(10), || rows(&[&g2])[0] == 1);
    let mut c = causal_client(&proxy, "app");
    let lock = hold_row(&g2, 1);
    c.query_drop("UPDATE t SET v = 2 WHERE id = 1").unwrap();
    let read = read_v(&mut c, 1);
    drop(lock);
    assert_eq!(
        read,
        (Some(2), g1.port()),
        "the read saw the session's write, on the writer"
    );
    assert_eq!(causal_counts(&proxy).2, 1, "counted in causal_reads_on_writer");
}

/// Unread writes (made while the session was pinned by `GET_LOCK`) of a
/// causal session in a two-writer Galera hostgroup, through `g2` (row 2)
/// and then through `g1` (row 1), while a row lock holds back `g2`'s
/// applier from row 1: no node is known to have them all. The next read
/// goes to a writer, `g2` (the least busy); it first reads the writes
/// back there, waiting until `g2` has committed all the cluster ordered
/// (`wsrep_sync_wait`), and so sees row 1's write once the lock goes.
/// Before, that writer served the read at once, and it saw row 1's old
/// value. A session whose `causal_reads_timeout` passes first on `g2`
/// reads on `g1` (not seen to lag) without a wait.
#[test]
fn backends_galera_causal_read_after_unread_writes_through_two_nodes_sees_both() {
    let (g1, g2) = galera_pair();
    g1.exec("INSERT INTO farm.t VALUES (2, 0)");
    let proxy = two_writers(&g1, &g2);
    funnel_testkit::wait_until_within("g2 has the rows", Duration::from_secs(10), || {
        rows(&[&g2])[0] == 2
    });
    // Unread writes through g2, then g1, of `user`'s session; g2 held back
    // from row 1, and g1 busy when it returns (the router would send a
    // write to g2).
    let unread_writes = |user: &str, round: i64| {
        let mut c = causal_client(&proxy, user);
        let on_g1 = pinned_on(&proxy, &g1);
        write_unread(
            &mut c,
            format!("UPDATE t SET v = @@port * 10 + {round} WHERE id = 2"),
        );
        assert_eq!(v(&g2, 2), i64::from(g2.port()) * 10 + round, "written through g2");
        let lock = hold_row(&g2, 1);
        let on_g2 = pinned_on(&proxy, &g2);
        drop(on_g1);
        write_unread(
            &mut c,
            format!("UPDATE t SET v = @@port * 10 + {round} WHERE id = 1"),
        );
        let on_g1 = pinned(&proxy);
        assert_eq!(on_g1.1, g1.port(), "a transaction holds a connection on g1");
        drop(on_g2);
        (c, lock, on_g1)
    };

    let (mut c, lock, _on_g1) = unread_writes("app", 1);
    let want = i64::from(g1.port()) * 10 + 1;
    assert_eq!(v(&g1, 1), want, "written through g1");
    assert_ne!(v(&g2, 1), want, "g2 lacks it");
    let release = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(1500));
        drop(lock);
    });
    let started = Instant::now();
    assert_eq!(read_v(&mut c, 1), (Some(want), g2.port()), "the write through g1");
    assert!(
        started.elapsed() >= Duration::from_millis(1000),
        "g2 caught up first ({:?})",
        started.elapsed()
    );
    release.join().unwrap();
    assert_eq!(causal_counts(&proxy), (1, 0, 0));
    // Read back: the next reads, on g2r (g2 as a reader), wait once for
    // what g2 read back (at once: it has it), then are served at once.
    assert_eq!(read_v(&mut c, 2), (Some(v(&g1, 2)), g2.port()));
    assert_eq!(read_v(&mut c, 1), (Some(want), g2.port()));
    assert_eq!(causal_counts(&proxy), (2, 1, 0));
    drop((c, _on_g1));

    // g2 held back past `quick`'s second, the whole wait: the read runs
    // without it on g1, the writer not seen to lag.
    let (mut q, lock, _on_g1) = unread_writes("quick", 2);
    let want = i64::from(g1.port()) * 10 + 2;
    assert_eq!(v(&g1, 1), want, "written through g1");
    assert_ne!(v(&g2, 1), want, "g2 lacks it");
    let started = Instant::now();
    assert_eq!(read_v(&mut q, 1), (Some(want), g1.port()));
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(4),
        "g2 was waited for its second ({took:?})"
    );
    assert_eq!(causal_counts(&proxy), (2, 1, 1));
    drop(lock);
}

/// Unread writes of a causal session (`quick`, 1 s) through both nodes of
/// a two-writer Galera pair, then a transaction through each node (not
/// the session's) that the other's applier cannot apply (a row lock holds
/// it): neither node catches up. The read waits for a writer to commit all
/// the cluster ordered for its second in all, not a second on each writer
/// tried, then runs without the wait on the writer not seen to lag (a
/// warning), counted in `causal_reads_on_writer`. Before, it waited a
/// second on each of the two writers.
#[test]
fn backends_galera_causal_read_after_unread_writes_through_two_nodes_waits_its_timeout_in_all() {
    let (g1, g2) = galera_pair();
    g1.exec("INSERT INTO farm.t VALUES (2, 0), (3, 0), (4, 0)");
    let proxy = two_writers(&g1, &g2);
    funnel_testkit::wait_until_within("g2 has the rows", Duration::from_secs(10), || {
        rows(&[&g2])[0] == 4
    });
    let mut q = causal_client(&proxy, "quick");
    write_through_g2_then_g1(&mut q, &proxy, &g1, &g2);
    funnel_testkit::wait_until_within("g2 applies", Duration::from_secs(10), || {
        v(&g2, 1) == i64::from(g1.port())
    });

    // g2 held back from row 3's write through g1; g1 from row 4's
    // through g2 (whose commit waits behind row 3's there).
    let lock_g2 = hold_row(&g2, 3);
    g1.exec("UPDATE farm.t SET v = 1 WHERE id = 3");
    let lock_g1 = hold_row(&g1, 4);
    let mut through_g2 = g2.root();
    let blocked = std::thread::spawn(move || {
        through_g2
            .query_drop("UPDATE farm.t SET v = 1 WHERE id = 4")
            .unwrap();
    });
    std::thread::sleep(Duration::from_millis(500));
    assert_ne!(v(&g2, 3), 1, "g2 lags");
    assert_ne!(v(&g1, 4), 1, "g1 lags");

    let before = causal_counts(&proxy);
    let started = Instant::now();
    let (_, port) = read_v(&mut q, 1);
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_millis(1800),
        "the read waited its second in all ({took:?}, on {port})"
    );
    let after = causal_counts(&proxy);
    assert_eq!(
        (after.0 - before.0, after.2 - before.2),
        (0, 1),
        "no wait served it; it ran on a writer"
    );
    drop((lock_g1, lock_g2));
    blocked.join().unwrap();
}

/// Unread writes of a causal session (`quick`, 1 s) through both nodes of
/// a two-writer Galera pair; `g2` then held back (a row lock on its
/// applier) and `g1` shut down, which the health monitor (every minute)
/// has not seen. The read waits its second on `g2`, which does not catch
/// up; `g1`, not seen to lag, cannot take the read (its connects are
/// refused): it runs on `g2` without the wait (a warning), as the
/// docs say, rather than fail. Before, the client got ERR 9003 for `g1`.
#[test]
fn backends_galera_causal_read_after_unread_writes_runs_on_a_writer_when_the_others_fail() {
    unread_writes_then_a_writer_fails(false);
}

/// [`backends_galera_causal_read_after_unread_writes_runs_on_a_writer_when_the_others_fail`]
/// with `g2`'s own causal wait (`repl.causal_read_timeout`) shorter than
/// the session's: `g2` answers ERR 1205 within the second, and the read,
/// which `g1` cannot take, runs on `g2` all the same. Before, the client
/// got ERR 9003 for `g1`.
#[test]
fn backends_galera_causal_read_after_a_writer_gave_up_waiting_runs_when_the_others_fail() {
    unread_writes_then_a_writer_fails(true);
}

/// See the two tests above; `short_wait`: `g2`'s `repl.causal_read_timeout`
/// is 300 ms.
fn unread_writes_then_a_writer_fails(short_wait: bool) {
    let (g1, g2) = galera_pair();
    if short_wait {
        g2.exec("SET GLOBAL wsrep_provider_options = 'repl.causal_read_timeout=PT0.3S'");
    }
    g1.exec("INSERT INTO farm.t VALUES (2, 0), (3, 0)");
    let proxy = two_writers_with(
        &g1,
        &g2,
        "pool:\n  min_idle_per_core: 0\n  idle_timeout: 200ms\nmonitor:\n  interval: 60s\n",
    );
    funnel_testkit::wait_until_within("g2 has the rows", Duration::from_secs(10), || {
        rows(&[&g2])[0] == 3
    });
    let mut q = causal_client(&proxy, "quick");
    write_through_g2_then_g1(&mut q, &proxy, &g1, &g2);

    let lock = hold_row(&g2, 3);
    g1.exec("UPDATE farm.t SET v = 1 WHERE id = 3");
    g1.stop();
    // Funnel's idle connections to g1 close.
    std::thread::sleep(Duration::from_millis(1500));
    assert_ne!(v(&g2, 3), 1, "g2 lags");

    let before = causal_counts(&proxy);
    let got = q.query_first::<(Option<i64>, u16), _>("SELECT (SELECT v FROM t WHERE id = 1), @@port");
    drop(lock);
    let (_, port) = got.expect("the read runs on a writer without the wait").unwrap();
    assert_eq!(port, g2.port());
    let after = causal_counts(&proxy);
    assert_eq!((after.0 - before.0, after.2 - before.2), (0, 1));
}

/// Unread writes of a causal session (`app`, 10 s) through `g1` alone of
/// a two-writer Galera pair, `g2` held back from them (a row lock on its
/// applier); then `g1` shuts down, which the health monitor (every
/// minute) has not seen. The node written through cannot take the read
/// (its connects are refused), and no other is known to have the write:
/// `g2` reads it back first, waiting until it has committed all the
/// cluster ordered, and sees it once the lock goes, 1.5 s later. Before,
/// `g2` served the read at once (after the client got ERR 9003 for `g1`,
/// before that fix), and it missed the write.
#[test]
fn backends_galera_causal_read_after_unread_writes_through_a_node_gone_waits_on_another() {
    let (g1, g2) = galera_pair();
    let proxy = two_writers_with(
        &g1,
        &g2,
        "pool:\n  min_idle_per_core: 0\n  idle_timeout: 200ms\nmonitor:\n  interval: 60s\n",
    );
    funnel_testkit::wait_until_within("g2 has the row", Duration::from_secs(10), || rows(&[&g2])[0] == 1);
    let mut c = causal_client(&proxy, "app");
    let lock = hold_row(&g2, 1);
    let on_g2 = pinned_on(&proxy, &g2);
    write_unread(&mut c, "UPDATE t SET v = @@port WHERE id = 1");
    drop(on_g2);
    let want = i64::from(g1.port());
    assert_eq!(v(&g1, 1), want, "written through g1");
    g1.stop();
    // Funnel's idle connections to g1 close.
    std::thread::sleep(Duration::from_millis(1000));
    assert_ne!(v(&g2, 1), want, "g2 lacks it");
    let release = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(1500));
        drop(lock);
    });
    let started = Instant::now();
    let got = c.query_first::<(Option<i64>, u16), _>("SELECT (SELECT v FROM t WHERE id = 1), @@port");
    let took = started.elapsed();
    release.join().unwrap();
    assert_eq!(got.unwrap().unwrap(), (Some(want), g2.port()), "after {took:?}");
    assert_eq!(causal_counts(&proxy), (1, 0, 0));
}

/// A `KILL QUERY` of a read that waits (up to 10 s) for a writer of a
/// Galera pair to commit all the cluster ordered, after the session's
/// unread writes through both nodes, stops it at once (ERR 1317), as it
/// stops the other causal waits; the session goes on, and its next read,
/// once the held-back node can catch up, sees the writes.
#[test]
fn backends_galera_kill_query_stops_the_wait_after_unread_writes_through_two_nodes() {
    let (g1, g2) = galera_pair();
    g1.exec("INSERT INTO farm.t VALUES (2, 0)");
    let proxy = two_writers(&g1, &g2);
    funnel_testkit::wait_until_within("g2 has the rows", Duration::from_secs(10), || {
        rows(&[&g2])[0] == 2
    });
    let mut c = causal_client(&proxy, "app");
    let id: u32 = c.query_first("SELECT CONNECTION_ID()").unwrap().unwrap();
    let on_g1 = pinned_on(&proxy, &g1);
    write_unread(&mut c, "UPDATE t SET v = @@port WHERE id = 2");
    let lock = hold_row(&g2, 1);
    let on_g2 = pinned_on(&proxy, &g2);
    drop(on_g1);
    write_unread(&mut c, "UPDATE t SET v = @@port WHERE id = 1");
    // g1 busy: the read goes to g2, which lags.
    let _on_g1 = pinned(&proxy);
    drop(on_g2);
    let took = killed_read(&proxy, &mut c, id);
    assert!(took < Duration::from_secs(3), "the read waited on ({took:?})");
    assert_eq!(causal_counts(&proxy), (0, 0, 0));
    drop(lock);
    assert_eq!(read_v(&mut c, 1).0, Some(i64::from(g1.port())));
    assert_eq!(read_v(&mut c, 2).0, Some(i64::from(g2.port())));
}

/// A Galera pair as one runs it with an asynchronous replica: binary
/// logs on, the cluster's writes logged alike on each node
/// (`wsrep_gtid_mode`, `log_slave_updates`); and a plain read-only
/// MariaDB replica of `g1`, `delay` seconds late (`MASTER_DELAY`). Row 1
/// of `farm.t` holds 0, on all three.
fn galera_pair_and_replica(delay: u32) -> (MariaDb, MariaDb, MariaDb) {
    let node = [
        "--log-bin=binlog",
        "--log-slave-updates",
        "--server-id=1",
        "--wsrep_gtid_mode=ON",
        "--wsrep_gtid_domain_id=9",
    ];
    let (g1, g2) = galera_pair_with(&node);
    g1.exec("INSERT INTO farm.t VALUES (1, 0)");
    let r = MariaDb::builder()
        .server_arg("--read-only")
        .server_arg("--server-id=3")
        .start()
        .unwrap_or_else(|e| panic!("{e}"));
    r.exec(&format!(
        "CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT={}, MASTER_USER='fb', \
         MASTER_PASSWORD='bpw', MASTER_USE_GTID=slave_pos, MASTER_DELAY={delay}",
        g1.port()
    ));
    r.exec("START SLAVE");
    funnel_testkit::wait_until_within("r has the row", Duration::from_secs(20), || {
        r.root()
            .query_first::<i64, _>("SELECT COUNT(*) FROM farm.t")
            .ok()
            .flatten()
            == Some(1)
    });
    (g1, g2, r)
}

/// The body of the plain-replica hostgroup tests (`true` and `universal`
/// below): 20 writes, each read back at once
/// (`causal`: the user's `causal_reads`; `two_clients`: the reads on
/// another client connection than the writes).
fn causal_reads_see_each_write_in_a_hostgroup_with_a_plain_replica(causal: &str, two_clients: bool) {
    let (g1, g2, r) = galera_pair_and_replica(1);
    let extra = "pool:\n  min_idle_per_core: 0\nmonitor:\n  interval: 100ms\n";
    let cfg = one_hostgroup(
        &format!("    default_schema: farm\n    causal_reads: {causal}\n    causal_reads_timeout: 10s\n"),
        &[("g1", g1.addr()), ("g2", g2.addr()), ("r", r.addr())],
        extra,
    );
    let proxy = funnel_testkit::funnel::start(cfg);
    funnel_testkit::wait_until_within("all checked", Duration::from_secs(10), || {
        proxy.snapshots()[0].pools.iter().all(|p| p.last_check.is_some())
    });
    let mut w = causal_client(&proxy, "app");
    let mut other = two_clients.then(|| causal_client(&proxy, "app"));
    let mut writes = std::collections::BTreeMap::new();
    let mut reads = std::collections::BTreeMap::new();
    for v in 1..=20 {
        w.query_drop(format!("UPDATE t SET v = {v} * 100000 + @@port WHERE id = 1"))
            .unwrap();
        let (seen, port) = read_v(other.as_mut().unwrap_or(&mut w), 1);
        let seen = seen.expect("row 1");
        assert_eq!(seen / 100_000, v, "read {v} on {port}");
        *writes.entry(seen % 100_000).or_insert(0) += 1;
        *reads.entry(port).or_insert(0) += 1;
    }
    assert!(
        reads.contains_key(&r.port()) && writes.contains_key(&i64::from(g2.port())),
        "reads on the replica, writes through g2: writes {writes:?}, reads {reads:?}"
    );
    assert_eq!(causal_counts(&proxy).2, 0, "no read went to the writer");
}

/// One default hostgroup of a Galera pair (both take writes, binary logs
/// on with the cluster's GTIDs, `wsrep_gtid_mode`) and a plain MariaDB
/// replica of `g1` (read-only, a second late by `MASTER_DELAY`), as a
/// cluster with an asynchronous replica is run; a causal session's reads
/// spread over all three. Each read sees the write before it, wherever
/// the write went and the read landed: on the replica after a
/// `MASTER_GTID_WAIT` for the write's binary-log GTID, on the other node
/// after a wait for the cluster's GTID; nothing errors, and no read needs
/// the writer.
#[test]
fn backends_galera_causal_reads_in_a_hostgroup_with_a_plain_replica() {
    causal_reads_see_each_write_in_a_hostgroup_with_a_plain_replica("true", false);
}

/// Unread writes of a causal session (made while `GET_LOCK` pinned it) to
/// a two-writer Galera pair, whose read hostgroup is a plain replica of
/// `g1`: the read there cannot wait for them (their GTIDs are unread) and
/// goes to a writer. Through `g1` alone, to `g1`, not to `g2` (the least
/// busy), whose applier a row lock holds back; through `g2` then `g1`, a
/// writer (`g2`) that first waits for all the cluster ordered. Before,
/// any writer served it at once, and `g2` missed the write through `g1`.
#[test]
fn backends_galera_causal_read_on_a_replica_after_unread_writes_sees_them() {
    let (g1, g2, r) = galera_pair_and_replica(0);
    g1.exec("INSERT INTO farm.t VALUES (2, 0)");
    let user = |name: &str, causal: &str| {
        format!(
            "  - name: {name}\n    password: apppw\n    default_schema: farm\n    \
             default_hostgroup: db\n    read_hostgroup: reads\n    read_fallback: false\n{causal}"
        )
    };
    let yaml = format!(
        "listen: 127.0.0.1:0\ncores: 1\nusers:\n{}{}backends:\n\
         \x20 - name: g1\n    address: {}\n    user: fb\n    password: bpw\n    hostgroup: db\n\
         \x20 - name: g2\n    address: {}\n    user: fb\n    password: bpw\n    hostgroup: db\n\
         \x20 - name: r\n    address: {}\n    user: fb\n    password: bpw\n    hostgroup: reads\n\
         pool:\n  min_idle_per_core: 0\nmonitor:\n  interval: 200ms\n",
        user("app", "    causal_reads: true\n    causal_reads_timeout: 10s\n"),
        user("plain", ""),
        g1.addr(),
        g2.addr(),
        r.addr()
    );
    let proxy = funnel_testkit::funnel::start(funnel_config::Config::from_yaml_str(&yaml).unwrap());
    funnel_testkit::wait_until_within("all checked", Duration::from_secs(10), || {
        proxy.snapshots()[0].pools.iter().all(|p| p.last_check.is_some())
    });
    funnel_testkit::wait_until_within("g2 has the rows", Duration::from_secs(10), || {
        rows(&[&g2])[0] == 2
    });
    let mut c = causal_client(&proxy, "app");
    // Held on its connection through `node`, the session writes `value`
    // to row `id`.
    let write_through = |c: &mut Conn, node: &MariaDb, id: i64, value: i64| {
        let busy = pinned_on(&proxy, if node.port() == g1.port() { &g2 } else { &g1 });
        write_unread(c, format!("UPDATE t SET v = {value} WHERE id = {id}"));
        assert_eq!(v(node, id), value, "written through {}", node.port());
        drop(busy);
    };

    // Through g1 alone, g2 held back and the least busy writer.
    let lock = hold_row(&g2, 1);
    write_through(&mut c, &g1, 1, 1);
    let on_g1 = pinned_on(&proxy, &g1);
    assert_eq!(read_v(&mut c, 1), (Some(1), g1.port()));
    drop((lock, on_g1));
    funnel_testkit::wait_until_within("g2 applies", Duration::from_secs(10), || v(&g2, 1) == 1);

    // Through g2, then g1, g2 held back from the second.
    write_through(&mut c, &g2, 2, 2);
    let lock = hold_row(&g2, 1);
    write_through(&mut c, &g1, 1, 2);
    let _on_g1 = pinned_on(&proxy, &g1);
    assert_ne!(v(&g2, 1), 2, "g2 lacks it");
    let release = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(1500));
        drop(lock);
    });
    assert_eq!(read_v(&mut c, 1), (Some(2), g2.port()));
    release.join().unwrap();
    // Read back: the replica waits for them, and serves.
    assert_eq!(read_v(&mut c, 2), (Some(2), r.port()));
    assert_eq!(read_v(&mut c, 1), (Some(2), r.port()));
}

/// Row `id`'s `v` in `farm.t` on `db`.
fn v(db: &MariaDb, id: i64) -> i64 {
    db.query_first::<i64>(&format!("SELECT v FROM farm.t WHERE id = {id}"))
        .unwrap()
}

/// Runs the write `sql` under a named lock, which pins the causal session
/// to its connection: the write's GTID is not read back (it stays unread),
/// as writes made while a session is held on its connection.
fn write_unread(c: &mut Conn, sql: impl AsRef<str>) {
    c.query_drop("SELECT GET_LOCK('causal', 0)").unwrap();
    c.query_drop(sql.as_ref()).unwrap();
    c.query_drop("SELECT RELEASE_LOCK('causal')").unwrap();
}

/// The causal session `q` writes row 2 through g2, then row 1 through g1,
/// both unread (the other node kept busy for each write), each node's
/// port as the value.
fn write_through_g2_then_g1(q: &mut Conn, proxy: &funnel_engine::Proxy, g1: &MariaDb, g2: &MariaDb) {
    let on_g1 = pinned_on(proxy, g1);
    write_unread(q, "UPDATE t SET v = @@port WHERE id = 2");
    let on_g2 = pinned_on(proxy, g2);
    drop(on_g1);
    write_unread(q, "UPDATE t SET v = @@port WHERE id = 1");
    drop(on_g2);
    assert_eq!(v(g2, 2), i64::from(g2.port()), "written through g2");
    assert_eq!(v(g1, 1), i64::from(g1.port()), "written through g1");
}

/// `causal_reads: universal` on a Galera pair (g1 takes the writes, g2
/// the reads, its applier held back by a row lock): a read on another
/// client connection than the write's waits on g2 with Galera's causal
/// wait (`wsrep_sync_wait`) until g2 has committed all the cluster
/// ordered, and sees the write; per session (`true`) the same read sees
/// the old value at once. A node that does not catch up within the
/// timeout leaves the read to the writer.
#[test]
fn backends_galera_causal_reads_universal_see_the_writes_of_other_connections() {
    let (g1, g2) = galera_pair();
    g1.exec("INSERT INTO farm.t VALUES (1, 1)");
    let user = |name: &str, causal: &str, timeout: &str| {
        format!(
            "  - name: {name}\n    password: apppw\n    default_schema: farm\n    \
             default_hostgroup: db\n    read_hostgroup: reads\n    read_fallback: false\n    \
             causal_reads: {causal}\n    causal_reads_timeout: {timeout}\n"
        )
    };
    let yaml = format!(
        "listen: 127.0.0.1:0\ncores: 1\nusers:\n{}{}{}backends:\n\
         \x20 - name: g1\n    address: {}\n    user: fb\n    password: bpw\n    hostgroup: db\n\
         \x20 - name: g2\n    address: {}\n    user: fb\n    password: bpw\n    hostgroup: reads\n\
         pool:\n  min_idle_per_core: 0\nmonitor:\n  interval: 200ms\n",
        user("app", "true", "10s"),
        user("uni", "universal", "10s"),
        user("quick", "universal", "1s"),
        g1.addr(),
        g2.addr()
    );
    let proxy = funnel_testkit::funnel::start(funnel_config::Config::from_yaml_str(&yaml).unwrap());
    funnel_testkit::wait_until_within("both nodes checked", Duration::from_secs(10), || {
        proxy.snapshots()[0].pools.iter().all(|p| p.last_check.is_some())
    });
    funnel_testkit::wait_until_within("g2 has the row", Duration::from_secs(10), || rows(&[&g2])[0] == 1);
    let (mut app_w, mut app_r) = (causal_client(&proxy, "app"), causal_client(&proxy, "app"));
    let lock = hold_row(&g2, 1);
    app_w.query_drop("UPDATE t SET v = 2 WHERE id = 1").unwrap();
    assert_eq!(
        read_v(&mut app_r, 1),
        (Some(1), g2.port()),
        "per session: g2 lags"
    );
    drop(lock);
    funnel_testkit::wait_until_within("g2 applies", Duration::from_secs(10), || {
        g2.query_first::<i64>("SELECT v FROM farm.t WHERE id = 1")
            .unwrap()
            == 2
    });

    let (mut w, mut r) = (causal_client(&proxy, "uni"), causal_client(&proxy, "uni"));
    let lock = hold_row(&g2, 1);
    w.query_drop("UPDATE t SET v = 3 WHERE id = 1").unwrap();
    let release = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(1500));
        drop(lock);
    });
    let (waited, _, on_writer) = causal_counts(&proxy);
    let started = Instant::now();
    assert_eq!(read_v(&mut r, 1), (Some(3), g2.port()));
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(1000),
        "the read waited for g2 ({took:?})"
    );
    release.join().unwrap();
    assert_eq!(causal_counts(&proxy), (waited + 1, 0, on_writer));

    // g2 cannot catch up within `quick`'s second: the read goes to g1.
    let (mut w, mut r) = (causal_client(&proxy, "quick"), causal_client(&proxy, "quick"));
    let lock = hold_row(&g2, 1);
    w.query_drop("UPDATE t SET v = 4 WHERE id = 1").unwrap();
    let started = Instant::now();
    assert_eq!(read_v(&mut r, 1), (Some(4), g1.port()));
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(5),
        "the read waited its second ({took:?})"
    );
    assert_eq!(
        causal_counts(&proxy).2,
        on_writer + 1,
        "counted in causal_reads_on_writer"
    );
    drop(lock);
}

/// [`backends_galera_causal_reads_in_a_hostgroup_with_a_plain_replica`]
/// with `causal_reads: universal`, each write on one client connection
/// and each read on another: a read on the replica waits for the writers'
/// binary-log position (read on a node once it has committed all the
/// cluster ordered, so writes through the other node count), one on a
/// node with Galera's causal wait; each sees the write before it.
#[test]
fn backends_galera_causal_reads_universal_in_a_hostgroup_with_a_plain_replica() {
    causal_reads_see_each_write_in_a_hostgroup_with_a_plain_replica("universal", true);
}

/// `causal_reads: universal` with two Galera writers and a plain replica
/// (`r`, of `g1`) for reads: another connection writes through `g2` while
/// `g1`'s applier is held back, and the read's position read lands on
/// `g1`. It first waits there until `g1` has committed all the cluster
/// ordered (`wsrep_sync_wait`), so its position has the write, and the
/// replica then waits for it. Read at once, `g1`'s position lacked the
/// write, and the replica served the old value.
#[test]
fn backends_galera_causal_reads_universal_position_on_a_lagging_node_waits_for_the_cluster() {
    let (g1, g2, r) = galera_pair_and_replica(0);
    let user = |name: &str, causal: &str| {
        format!(
            "  - name: {name}\n    password: apppw\n    default_schema: farm\n    \
             default_hostgroup: db\n    read_hostgroup: reads\n    read_fallback: false\n{causal}"
        )
    };
    let yaml = format!(
        "listen: 127.0.0.1:0\ncores: 1\nusers:\n{}{}backends:\n\
         \x20 - name: g1\n    address: {}\n    user: fb\n    password: bpw\n    hostgroup: db\n\
         \x20 - name: g2\n    address: {}\n    user: fb\n    password: bpw\n    hostgroup: db\n\
         \x20 - name: r\n    address: {}\n    user: fb\n    password: bpw\n    hostgroup: reads\n\
         pool:\n  min_idle_per_core: 0\nmonitor:\n  interval: 200ms\n",
        user(
            "app",
            "    causal_reads: universal\n    causal_reads_timeout: 10s\n"
        ),
        user("plain", ""),
        g1.addr(),
        g2.addr(),
        r.addr()
    );
    let proxy = funnel_testkit::funnel::start(funnel_config::Config::from_yaml_str(&yaml).unwrap());
    funnel_testkit::wait_until_within("all checked", Duration::from_secs(10), || {
        proxy.snapshots()[0].pools.iter().all(|p| p.last_check.is_some())
    });
    let (mut w, mut c) = (causal_client(&proxy, "app"), causal_client(&proxy, "app"));
    let lock = hold_row(&g1, 1);
    let on_g1 = pinned_on(&proxy, &g1);
    w.query_drop("UPDATE t SET v = 5 WHERE id = 1").unwrap();
    assert_eq!(v(&g2, 1), 5, "written through g2");
    assert_eq!(v(&g1, 1), 0, "g1 lags");
    drop(on_g1);
    let _on_g2 = pinned_on(&proxy, &g2);
    let release = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(1500));
        drop(lock);
    });
    let (waited, skipped, on_writer) = causal_counts(&proxy);
    let positions = proxy.snapshots()[0].counters.causal_position_reads;
    assert_eq!(read_v(&mut c, 1), (Some(5), r.port()));
    release.join().unwrap();
    assert_eq!(causal_counts(&proxy), (waited + 1, skipped, on_writer));
    assert_eq!(proxy.snapshots()[0].counters.causal_position_reads, positions + 1);
}
