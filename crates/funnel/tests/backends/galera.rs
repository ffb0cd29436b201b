//! Galera nodes: the health monitor takes a node that may not serve (not
//! ready, out of the primary component, not synced: a donor, a node
//! desynced for a backup) out of rotation although it answers, and puts it
//! back once it is synced. Each node here is a one-node cluster of its own
//! (wsrep on, Galera's provider), desynced with `wsrep_desync`.

use std::time::{Duration, Instant};

use funnel_testkit::MariaDb;
use mysql::prelude::Queryable;
use mysql::Conn;

use super::{one_hostgroup, server};

const PROVIDER: &str = "/usr/lib/galera/libgalera_smm.so";

/// A one-node Galera cluster. Debian's mariadb-server depends on galera-4,
/// which installs the provider.
fn galera_node() -> MariaDb {
    assert!(
        std::path::Path::new(PROVIDER).exists(),
        "no Galera provider at {PROVIDER}: install galera-4 (mariadb-server depends on it)"
    );
    // The group communication port; free a moment ago.
    let gcomm = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let args = [
        "--wsrep_on=ON".to_string(),
        format!("--wsrep_provider={PROVIDER}"),
        "--wsrep_cluster_address=gcomm://".into(),
        format!("--wsrep_provider_options=gmcast.listen_addr=tcp://127.0.0.1:{gcomm}"),
        "--binlog_format=ROW".into(),
        "--innodb_autoinc_lock_mode=2".into(),
    ];
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
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

#[test]
fn backends_galera_node_out_of_sync_is_taken_out_of_rotation() {
    let (g1, g2) = (galera_node(), galera_node());
    let extra = "pool:\n  max_per_core: 2\n\
                 monitor:\n  interval: 100ms\n  timeout: 2s\n  failures_before_down: 1\n\
                 hostgroups:\n  - name: db\n    max_writers: 1\n";
    let cfg = one_hostgroup(
        "    default_schema: farm\n",
        &[("g1", g1.addr()), ("g2", g2.addr())],
        extra,
    );
    let proxy = funnel_testkit::funnel::start(cfg);
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
    let deadline = Instant::now() + Duration::from_secs(20);
    let message = loop {
        match insert(&proxy, id) {
            Err(mysql::Error::MySqlError(e)) if e.code == 9004 => break e.message,
            _ => {}
        }
        assert!(Instant::now() < deadline, "g2 was never taken out");
        std::thread::sleep(Duration::from_millis(50));
    };
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
