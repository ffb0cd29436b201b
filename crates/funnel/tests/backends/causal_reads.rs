//! `causal_reads`: a session reads its own writes through the read/write
//! split. A real replica applies the writer's binary log `MASTER_DELAY`
//! seconds late, so a read that did not wait for it misses the write.

use std::time::{Duration, Instant};

use funnel_engine::Proxy;
use funnel_testkit::MariaDb;
use mysql::prelude::Queryable;
use mysql::{Conn, OptsBuilder};

use super::server;

/// A writer with a binary log and a read-only replica that applies it
/// `delay` seconds late (each server has its own copy of the test schema;
/// only what runs after the set-up replicates).
fn delayed_pair(delay: u32) -> (MariaDb, MariaDb) {
    delayed_pair_of(delay, true)
}

/// [`delayed_pair`], the replica `read_only` or not.
pub(super) fn delayed_pair_of(delay: u32, read_only: bool) -> (MariaDb, MariaDb) {
    let writer = server(false, &["--log-bin=binlog", "--server-id=1"]);
    writer.exec("CREATE USER repl@'%' IDENTIFIED BY 'rpw'");
    writer.exec("GRANT REPLICATION SLAVE ON *.* TO repl@'%'");
    writer.exec("RESET MASTER");
    let replica = server(read_only, &["--server-id=2"]);
    replica.exec(&format!(
        "CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT={}, MASTER_USER='repl', \
         MASTER_PASSWORD='rpw', MASTER_USE_GTID=slave_pos, MASTER_DELAY={delay}",
        writer.port()
    ));
    replica.exec("START SLAVE");
    (writer, replica)
}

/// Funnel in front of the pair: user `app` with causal reads (`timeout`),
/// user `plain` without, both splitting reads to the replica.
fn proxy(writer: &MariaDb, replica: &MariaDb, timeout: &str) -> Proxy {
    proxy_with(writer, replica, timeout, "")
}

/// [`proxy`] with more `pool` keys (`pool`: YAML lines under it).
fn proxy_with(writer: &MariaDb, replica: &MariaDb, timeout: &str, pool: &str) -> Proxy {
    let user = |name: &str, causal: bool| {
        format!(
            "  - name: {name}\n    password: apppw\n    default_schema: farm\n    \
             default_hostgroup: writer\n    read_hostgroup: readers\n    read_fallback: false\n    \
             causal_reads: {causal}\n    causal_reads_timeout: {timeout}\n"
        )
    };
    let yaml = format!(
        "listen: 127.0.0.1:0\ncores: 1\nusers:\n{}{}backends:\n\
         \x20 - name: w\n    address: {}\n    user: fb\n    password: bpw\n    hostgroup: writer\n\
         \x20 - name: r\n    address: {}\n    user: fb\n    password: bpw\n    hostgroup: readers\n\
         pool:\n  min_idle_per_core: 0\n{pool}monitor:\n  interval: 200ms\n",
        user("app", true),
        user("plain", false),
        writer.addr(),
        replica.addr()
    );
    let proxy = funnel_testkit::funnel::start(funnel_config::Config::from_yaml_str(&yaml).unwrap());
    if writer.port() == replica.port() {
        // The primary among the readers: until the monitor has seen it,
        // reads wait for its verdict.
        funnel_testkit::wait_until_within("both backends checked", Duration::from_secs(10), || {
            proxy.snapshots()[0].pools.iter().all(|p| p.last_check.is_some())
        });
    } else {
        // The full suite saw reads go to the writer where they were to
        // wait on the replica, under load (at 6b584d4 and after).
        replication_seen_running(&proxy);
    }
    proxy
}

/// Reads row 1 on `c` (client `id`) while another client of `app` sends
/// `KILL QUERY id` 500 ms in: the read must end with ERR 1317, not run.
/// How long it took.
pub(super) fn killed_read(proxy: &Proxy, c: &mut Conn, id: u32) -> Duration {
    let mut killer = connect(proxy, "app");
    let kill = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(500));
        killer.query_drop(format!("KILL QUERY {id}")).unwrap();
    });
    let started = Instant::now();
    let got = c.query_first::<(Option<i64>, u16), _>("SELECT (SELECT v FROM t WHERE id = 1), @@port");
    let took = started.elapsed();
    kill.join().unwrap();
    match got {
        Err(mysql::Error::MySqlError(e)) => assert_eq!(e.code, 1317, "{e}"),
        other => panic!("the killed read ran: {other:?} after {took:?}"),
    }
    took
}

pub(super) fn connect(proxy: &Proxy, user: &str) -> Conn {
    Conn::new(
        OptsBuilder::new()
            .ip_or_hostname(Some("127.0.0.1"))
            .tcp_port(proxy.local_addr().port())
            .user(Some(user))
            .pass(Some("apppw"))
            .prefer_socket(false)
            .read_timeout(Some(Duration::from_secs(30))),
    )
    .unwrap()
}

/// The row `id`'s value as a read through `c` sees it, and the port of the
/// server that answered.
pub(super) fn read(c: &mut Conn, id: i64) -> (Option<i64>, u16) {
    let row: (Option<i64>, u16) = c
        .query_first(format!("SELECT (SELECT v FROM t WHERE id = {id}), @@port"))
        .unwrap()
        .unwrap();
    row
}

/// The causal-read counters: (waited, served at once, sent to the writer).
fn counts(proxy: &Proxy) -> (u64, u64, u64) {
    let c = &proxy.snapshots()[0].counters;
    (c.causal_waits, c.causal_waits_skipped, c.causal_reads_on_writer)
}

#[test]
fn causal_reads_wait_for_the_replica_to_apply_the_sessions_write() {
    let (writer, replica) = delayed_pair(2);
    let proxy = proxy(&writer, &replica, "10s");
    // Without causal reads, the lag shows: the write is not on the replica yet.
    let mut plain = connect(&proxy, "plain");
    plain.query_drop("INSERT INTO t VALUES (1, 10)").unwrap();
    assert_eq!(read(&mut plain, 1), (None, replica.port()), "the replica lags");

    let mut c = connect(&proxy, "app");
    c.query_drop("INSERT INTO t VALUES (2, 20)").unwrap();
    let started = Instant::now();
    assert_eq!(read(&mut c, 2), (Some(20), replica.port()));
    assert!(
        started.elapsed() >= Duration::from_millis(1000),
        "the read waited for the replica ({:?})",
        started.elapsed()
    );
    assert_eq!(counts(&proxy), (1, 0, 0));
    // The replica is known to have it: the next read does not wait.
    assert_eq!(read(&mut c, 2), (Some(20), replica.port()));
    assert_eq!(counts(&proxy), (1, 1, 0));
    // A session that never wrote reads at once (and counts nothing).
    let mut fresh = connect(&proxy, "app");
    assert_eq!(read(&mut fresh, 2).1, replica.port());
    assert_eq!(counts(&proxy), (1, 1, 0));

    // A transaction's GTID comes at its commit; a prepared write and read
    // go the same way.
    c.query_drop("BEGIN").unwrap();
    c.query_drop("INSERT INTO t VALUES (3, 30)").unwrap();
    c.query_drop("COMMIT").unwrap();
    assert_eq!(read(&mut c, 3), (Some(30), replica.port()));
    c.exec_drop("UPDATE t SET v = ? WHERE id = ?", (31, 3)).unwrap();
    let (v, port): (Option<i64>, u16) = c
        .exec_first("SELECT (SELECT v FROM t WHERE id = ?), @@port", (3,))
        .unwrap()
        .unwrap();
    assert_eq!((v, port), (Some(31), replica.port()), "prepared");
    assert_eq!(counts(&proxy), (3, 1, 0));
}

#[test]
fn causal_reads_go_to_the_writer_when_the_replica_is_too_late() {
    let (writer, replica) = delayed_pair(4);
    let proxy = proxy(&writer, &replica, "300ms");
    let mut c = connect(&proxy, "app");
    c.query_drop("INSERT INTO t VALUES (1, 10)").unwrap();
    let started = Instant::now();
    assert_eq!(read(&mut c, 1), (Some(10), writer.port()));
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "gave up on the replica at its timeout ({:?})",
        started.elapsed()
    );
    assert_eq!(counts(&proxy), (0, 0, 1));
    // Once the replica has caught up, reads go back to it.
    let deadline = Instant::now() + Duration::from_secs(20);
    while read(&mut c, 1).1 != replica.port() {
        assert!(Instant::now() < deadline, "reads never went back to the replica");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(read(&mut c, 1), (Some(10), replica.port()));
}

/// Writes on a connection the session held for another reason (a named
/// lock) and let go of without reading their GTID: the next read goes to
/// the writer, which gives its whole binary-log position for the reads
/// after it.
#[test]
fn causal_reads_after_writes_on_a_pinned_connection_see_them() {
    let (writer, replica) = delayed_pair(2);
    let proxy = proxy(&writer, &replica, "10s");
    let mut c = connect(&proxy, "app");
    c.query_drop("SELECT GET_LOCK('causal', 0)").unwrap();
    c.query_drop("INSERT INTO t VALUES (1, 10)").unwrap();
    assert_eq!(read(&mut c, 1), (Some(10), writer.port()), "pinned to the writer");
    c.query_drop("SELECT RELEASE_LOCK('causal')").unwrap();
    let (waited, _, on_writer) = counts(&proxy);
    assert_eq!(
        read(&mut c, 1),
        (Some(10), writer.port()),
        "its GTID was not read"
    );
    assert_eq!(counts(&proxy), (waited, 0, on_writer + 1));
    assert_eq!(read(&mut c, 1), (Some(10), replica.port()));
    assert_eq!(counts(&proxy), (waited + 1, 0, on_writer + 1));
}

/// The primary listed among the readers too (a second backend entry at
/// its address): the monitor sees it writable, so a read there does not
/// wait (`MASTER_GTID_WAIT` on a primary waits for its replication thread
/// until the timeout) and sees the write at once.
#[test]
fn causal_reads_on_a_primary_among_the_readers_do_not_wait() {
    let (writer, _replica) = delayed_pair(2);
    let proxy = proxy(&writer, &writer, "5s");
    let mut c = connect(&proxy, "app");
    c.query_drop("INSERT INTO t VALUES (1, 10)").unwrap();
    let started = Instant::now();
    assert_eq!(read(&mut c, 1), (Some(10), writer.port()));
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "the read waited ({:?})",
        started.elapsed()
    );
    assert_eq!(counts(&proxy), (0, 0, 0));
}

/// A `KILL QUERY` of a read that waits for the replica stops it at once,
/// as it stops one waiting for a connection, and the replica's wait with
/// it. Before, the read waited out `MASTER_GTID_WAIT` (the whole timeout,
/// up to an hour), then ran on the writer: the killer had its OK, and the
/// read its rows.
#[test]
fn causal_reads_kill_query_stops_the_wait() {
    let (writer, replica) = delayed_pair(60);
    let proxy = proxy(&writer, &replica, "30s");
    let mut c = connect(&proxy, "app");
    let id: u32 = c.query_first("SELECT CONNECTION_ID()").unwrap().unwrap();
    c.query_drop("INSERT INTO t VALUES (1, 10)").unwrap();
    let took = killed_read(&proxy, &mut c, id);
    assert!(took < Duration::from_secs(15), "the read waited on ({took:?})");
    // Nor does the replica go on waiting.
    funnel_testkit::wait_until_within("the replica's wait stopped", Duration::from_secs(10), || {
        replica
            .query_first::<u64>(
                "SELECT COUNT(*) FROM information_schema.PROCESSLIST \
                 WHERE ID <> CONNECTION_ID() AND INFO LIKE '%MASTER_GTID_WAIT%'",
            )
            .unwrap_or(0)
            == 0
    });
    // The session goes on.
    c.query_drop("DO 1").unwrap();
}

/// A command that waits at the `PAUSE` gate goes where the query rules say
/// once it may go: a reload during the pause (a failover's) may have
/// changed them. The causal-reads change had it routed before the wait,
/// by the rules of then, for every user (fixed by e492430; this covers the
/// rules, its test a user moved to another hostgroup).
#[test]
fn a_command_waiting_at_the_pause_is_routed_by_the_rules_after_it() {
    let writer = server(false, &[]);
    let replica = server(true, &[]);
    let yaml = |rules: &str| {
        let yaml = format!(
            "listen: 127.0.0.1:0\ncores: 1\nusers:\n  - name: plain\n    password: apppw\n    \
             default_schema: farm\n    default_hostgroup: writer\n    read_hostgroup: readers\n\
             backends:\n\
             \x20 - name: w\n    address: {}\n    user: fb\n    password: bpw\n    hostgroup: writer\n\
             \x20 - name: r\n    address: {}\n    user: fb\n    password: bpw\n    hostgroup: readers\n\
             pool:\n  min_idle_per_core: 0\nmonitor:\n  interval: 200ms\n{rules}",
            writer.addr(),
            replica.addr()
        );
        funnel_config::Config::from_yaml_str(&yaml).unwrap()
    };
    let mut proxy = funnel_testkit::funnel::start(yaml(""));
    funnel_testkit::wait_until_within("both backends checked", Duration::from_secs(10), || {
        proxy.snapshots()[0].pools.iter().all(|p| p.last_check.is_some())
    });
    let mut c = connect(&proxy, "plain");
    let port = |c: &mut Conn| c.query_first::<u16, _>("SELECT @@port").unwrap().unwrap();
    assert_eq!(port(&mut c), replica.port(), "split");
    proxy.handle().pause(true);
    let waiting = std::thread::spawn(move || port(&mut c));
    std::thread::sleep(Duration::from_millis(300));
    let rules = "query_rules:\n  - match_prefix: \"SELECT @@port\"\n    hostgroup: writer\n";
    assert!(proxy.reload(yaml(rules)).unwrap().is_empty());
    proxy.handle().pause(false);
    assert_eq!(waiting.join().unwrap(), writer.port(), "routed by the new rule");
}

/// A write whose reply outlasted `pool.query_timeout` after it committed
/// (the `INSERT` of `INSERT ...; DO SLEEP(30)`): the client gets the
/// `INSERT`'s OK, then ERR 1969, which says the statement may have taken
/// effect. The session's reads must see it: the next one goes to the
/// writer. Before, nothing of the statement was noted, and the read on the
/// replica missed the write.
#[test]
fn causal_reads_see_a_write_whose_reply_timed_out() {
    let (writer, replica) = delayed_pair(3);
    let proxy = proxy_with(&writer, &replica, "10s", "  query_timeout: 1s\n");
    let mut c = connect(&proxy, "app");
    let started = Instant::now();
    // The INSERT's OK, then ERR 1969 for the rest (the driver drops it).
    let _ = c.query_drop("INSERT INTO t VALUES (1, 10); DO SLEEP(30)");
    assert!(started.elapsed() < Duration::from_secs(20), "timed out");
    assert_eq!(read(&mut c, 1), (Some(10), writer.port()));
    assert_eq!(
        read(&mut c, 1),
        (Some(10), replica.port()),
        "then waits on the replica"
    );
}

/// A session with `sql_select_limit = 0`, which the connections it runs
/// on take: Funnel's own reads of a GTID position and its wait got no row
/// and took the position for unreadable, so every read of the session
/// after a write went to the writer, each with one more read-back there.
/// They say `LIMIT 1`, which the limit does not cut.
#[test]
fn causal_reads_under_sql_select_limit_zero_wait_on_the_replica() {
    let (writer, replica) = delayed_pair(2);
    let proxy = proxy(&writer, &replica, "10s");
    let mut c = connect(&proxy, "app");
    c.query_drop("SET sql_select_limit = 0").unwrap();
    c.query_drop("INSERT INTO t VALUES (1, 10)").unwrap();
    let read = |c: &mut Conn| -> (Option<i64>, u16) {
        c.query_first("SELECT (SELECT v FROM t WHERE id = 1), @@port LIMIT 1")
            .unwrap()
            .unwrap()
    };
    assert_eq!(read(&mut c), (Some(10), replica.port()));
    // The replica connection has the session's limit now.
    c.query_drop("INSERT INTO t VALUES (2, 20)").unwrap();
    assert_eq!(read(&mut c), (Some(10), replica.port()));
    assert_eq!(counts(&proxy), (2, 0, 0));
}

/// A `COM_CHANGE_USER` to a user of another default hostgroup (another
/// primary and its replicas): the old user's writes are not the new one's
/// to wait for. Before, the new user's replica waited for the old
/// primary's GTID (which it never reaches) for the whole timeout, then the
/// read went to the writer, on every read of the session.
#[test]
fn causal_reads_after_a_change_to_a_user_of_other_servers_do_not_wait_for_the_old_writes() {
    let (writer, replica) = delayed_pair(0);
    // Its GTIDs (0-7-n) run ahead of the pair's: it logged its set-up.
    let other = server(false, &["--log-bin=binlog", "--server-id=7"]);
    let yaml = format!(
        "listen: 127.0.0.1:0\ncores: 1\nusers:\n\
         \x20 - name: app\n    password: apppw\n    default_schema: farm\n    default_hostgroup: writer\n    \
         read_hostgroup: readers\n    read_fallback: false\n    causal_reads: true\n    causal_reads_timeout: 5s\n\
         \x20 - name: other\n    password: apppw\n    default_schema: farm\n    default_hostgroup: other\n    \
         causal_reads: true\n\
         backends:\n\
         \x20 - name: w\n    address: {}\n    user: fb\n    password: bpw\n    hostgroup: writer\n\
         \x20 - name: r\n    address: {}\n    user: fb\n    password: bpw\n    hostgroup: readers\n\
         \x20 - name: o\n    address: {}\n    user: fb\n    password: bpw\n    hostgroup: other\n\
         pool:\n  min_idle_per_core: 0\nmonitor:\n  interval: 200ms\n",
        writer.addr(),
        replica.addr(),
        other.addr()
    );
    let proxy = funnel_testkit::funnel::start(funnel_config::Config::from_yaml_str(&yaml).unwrap());
    funnel_testkit::wait_until_within("backends checked", Duration::from_secs(10), || {
        proxy.snapshots()[0].pools.iter().all(|p| p.last_check.is_some())
    });
    let mut c = connect(&proxy, "other");
    c.query_drop("INSERT INTO t VALUES (1, 10)").unwrap();
    c.change_user(
        mysql::ChangeUserOpts::DEFAULT
            .with_user(Some("app".into()))
            .with_pass(Some("apppw".into())),
    )
    .unwrap();
    assert_eq!(read(&mut c, 1), (None, replica.port()));
    assert_eq!(counts(&proxy), (0, 0, 0), "no wait");
    // Its own writes it reads as ever.
    c.query_drop("INSERT INTO t VALUES (2, 20)").unwrap();
    assert_eq!(read(&mut c, 2), (Some(20), replica.port()));
}

/// A reload that moves a user to another default hostgroup (another
/// primary): as after a change of user, the session's writes on the old
/// primary are not waited for on the new one's replicas, which never reach
/// their GTIDs (every read waited out the timeout, then ran on the writer).
#[test]
fn causal_reads_after_a_reload_moves_the_user_do_not_wait_for_the_old_writes() {
    let (writer, replica) = delayed_pair(0);
    let other = server(false, &["--log-bin=binlog", "--server-id=7"]);
    let yaml = |hostgroup: &str| {
        let yaml = format!(
            "listen: 127.0.0.1:0\ncores: 1\nusers:\n\
             \x20 - name: app\n    password: apppw\n    default_schema: farm\n    default_hostgroup: {hostgroup}\n    \
             read_hostgroup: readers\n    read_fallback: false\n    causal_reads: true\n    causal_reads_timeout: 5s\n\
             backends:\n\
             \x20 - name: w\n    address: {}\n    user: fb\n    password: bpw\n    hostgroup: writer\n\
             \x20 - name: r\n    address: {}\n    user: fb\n    password: bpw\n    hostgroup: readers\n\
             \x20 - name: o\n    address: {}\n    user: fb\n    password: bpw\n    hostgroup: other\n\
             pool:\n  min_idle_per_core: 0\nmonitor:\n  interval: 200ms\n",
            writer.addr(),
            replica.addr(),
            other.addr()
        );
        funnel_config::Config::from_yaml_str(&yaml).unwrap()
    };
    let mut proxy = funnel_testkit::funnel::start(yaml("other"));
    funnel_testkit::wait_until_within("backends checked", Duration::from_secs(10), || {
        proxy.snapshots()[0].pools.iter().all(|p| p.last_check.is_some())
    });
    let mut c = connect(&proxy, "app");
    c.query_drop("INSERT INTO t VALUES (1, 10)").unwrap();
    assert!(proxy.reload(yaml("writer")).unwrap().is_empty());
    assert_eq!(read(&mut c, 1), (None, replica.port()));
    assert_eq!(counts(&proxy), (0, 0, 0), "no wait");
}

/// A replica left writable (`read_only` off, a common oversight) among
/// the readers: the monitor sees its replication running, so it is a
/// replica, and a causal read there waits as on any other. Since the
/// primary among the readers was read at once (every writable reader was
/// taken for one), such a replica's reads missed the session's writes.
#[test]
fn causal_reads_wait_on_a_writable_replica() {
    let (writer, replica) = delayed_pair_of(2, false);
    let proxy = proxy(&writer, &replica, "10s");
    funnel_testkit::wait_until_within("the replica's replication seen", Duration::from_secs(10), || {
        proxy.snapshots()[0]
            .pools
            .iter()
            .any(|p| p.hostgroup == "readers" && !p.read_only && p.lag.is_some())
    });
    let mut c = connect(&proxy, "app");
    c.query_drop("INSERT INTO t VALUES (1, 10)").unwrap();
    assert_eq!(read(&mut c, 1), (Some(10), replica.port()));
    assert_eq!(counts(&proxy), (1, 0, 0));
}

/// A replica whose replication the monitor saw stopped will not catch up:
/// a causal read there checks at once whether it has the session's writes
/// (a wait of no time) and, when not, goes to the writer. Before, every
/// read of the session after a write waited out the whole timeout first.
#[test]
fn causal_reads_on_a_replica_with_replication_stopped_do_not_wait() {
    let (writer, replica) = delayed_pair(0);
    let proxy = proxy(&writer, &replica, "30s");
    let mut c = connect(&proxy, "app");
    c.query_drop("INSERT INTO t VALUES (1, 10)").unwrap();
    assert_eq!(
        read(&mut c, 1),
        (Some(10), replica.port()),
        "applied before the stop"
    );
    replica.exec("STOP SLAVE");
    funnel_testkit::wait_until_within("the stop seen", Duration::from_secs(10), || {
        proxy.snapshots()[0]
            .pools
            .iter()
            .any(|p| p.hostgroup == "readers" && p.lag.is_some_and(|l| l > Duration::from_secs(86400)))
    });
    // What it applied before, it serves.
    assert_eq!(read(&mut c, 1), (Some(10), replica.port()));
    c.query_drop("INSERT INTO t VALUES (2, 20)").unwrap();
    let started = Instant::now();
    assert_eq!(read(&mut c, 2), (Some(20), writer.port()));
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "waited {:?}",
        started.elapsed()
    );
}

/// Commands that change no data and are no SQL (`COM_STATISTICS`,
/// `COM_FIELD_LIST`, a cursor's fetch) were taken for writes: after one on
/// the writer the session read that connection's `@@last_gtid`, which was
/// another client's write (one writer connection here), and its next read
/// waited on the replica for that write.
#[test]
fn causal_reads_after_a_command_that_writes_nothing_do_not_wait() {
    use funnel_protocol::tracker::Expect;
    let (writer, replica) = delayed_pair(2);
    let proxy = proxy_with(&writer, &replica, "10s", "  max_per_core: 1\n");
    let mini = |user: &str| {
        funnel_testkit::mini_client::MiniClient::connect(proxy.local_addr(), user, "apppw", Some("farm"))
            .unwrap()
    };
    // Both on the one writer connection of their pool key.
    mini("plain").query("INSERT INTO t VALUES (1, 10)").unwrap();
    let mut c = mini("app");
    c.roundtrip(&[0x09], Expect::Statistics).unwrap();
    c.roundtrip(b"\x04t\0", Expect::FieldList).unwrap();
    let rows = c.query("SELECT (SELECT v FROM t WHERE id = 1), @@port").unwrap();
    assert_eq!(
        rows.rows()[0][1].as_deref(),
        Some(replica.port().to_string().as_str())
    );
    assert_eq!(counts(&proxy), (0, 0, 0), "nothing to wait for");
}

/// The wait runs on a pooled replica connection under whatever
/// `max_statement_time` it has (a session's, this one's or another
/// client's): the server cut it there (ERR 1969) and the read went to the
/// writer, though the replica would have caught up within
/// `causal_reads_timeout`. The wait says `max_statement_time = 0` for itself.
#[test]
fn causal_reads_wait_past_a_max_statement_time() {
    let (writer, replica) = delayed_pair(2);
    let proxy = proxy(&writer, &replica, "10s");
    let mut c = connect(&proxy, "app");
    c.query_drop("SET max_statement_time = 0.5").unwrap();
    // The replica connection takes the session's value.
    assert_eq!(read(&mut c, 1), (None, replica.port()));
    c.query_drop("INSERT INTO t VALUES (1, 10)").unwrap();
    assert_eq!(read(&mut c, 1), (Some(10), replica.port()));
    assert_eq!(counts(&proxy), (1, 0, 0));
}

/// The warnings or error of a statement stay the client's to read across
/// the read/write split, as on a direct connection, while the statements
/// between open no table: a read after a write's error may run on the
/// writer that holds it, and a `SET` after a read's error on the replica
/// that holds it. Before, the read went to the replica and the `SET` to
/// the writer, the connection that held the area went back to the pool,
/// and `SHOW ERRORS` / `@@warning_count` read nothing (differential soak,
/// causal-reads mode, seeds 1006 and 1010, level 5).
#[test]
fn causal_reads_keep_the_diagnostics_area_across_the_split() {
    let (writer, replica) = delayed_pair(0);
    let proxy = proxy(&writer, &replica, "10s");
    let mut c = connect(&proxy, "app");
    c.query_drop("INSERT INTO t VALUES (1, 10)").unwrap();
    let dup = c.query_drop("INSERT INTO t VALUES (1, 10)").unwrap_err();
    assert!(dup.to_string().contains("1062"), "{dup}");
    let two: i64 = c.query_first("SELECT 1 + 1").unwrap().unwrap();
    assert_eq!(two, 2);
    let errors: Vec<(String, u32, String)> = c.query("SHOW ERRORS").unwrap();
    assert_eq!(errors.len(), 1, "the write's error after a read: {errors:?}");
    assert_eq!(errors[0].1, 1062);

    let mut c = connect(&proxy, "app");
    let missing = c.query_drop("SELECT * FROM nosuch").unwrap_err();
    assert!(missing.to_string().contains("1146"), "{missing}");
    c.query_drop("SET NAMES cp1251").unwrap();
    let counts: (u64, u64) = c
        .query_first("SELECT @@warning_count, @@error_count")
        .unwrap()
        .unwrap();
    assert_eq!(counts, (1, 1), "the read's error after a SET");
}

/// `GET DIAGNOSTICS @v = ...` pins the session (the variable lives on the
/// connection); after a read's error on the replica it ran there, on the
/// connection lingering for that error, and the session's writes from
/// then on went to the replica too: ERR 1290 (differential soak,
/// causal-reads mode, seed 1041, level 5). It goes to the writer, as a
/// prepare that pins does; the read's error is lost to it.
#[test]
fn causal_reads_get_diagnostics_after_a_read_on_the_replica_does_not_pin_there() {
    let (writer, replica) = delayed_pair(0);
    let proxy = proxy(&writer, &replica, "10s");
    let mut c = connect(&proxy, "app");
    let missing = c.query_drop("SELECT * FROM nosuch").unwrap_err();
    assert!(missing.to_string().contains("1146"), "{missing}");
    c.query_drop("GET DIAGNOSTICS CONDITION 1 @ge = MYSQL_ERRNO")
        .unwrap();
    c.query_drop("INSERT INTO t VALUES (1, 10)").unwrap();
    c.query_drop("LOCK TABLES t WRITE").unwrap();
    c.query_drop("UNLOCK TABLES").unwrap();
    let port: u16 = c.query_first("SELECT @@port").unwrap().unwrap();
    assert_eq!(port, writer.port(), "pinned to the writer");
}

/// YAML for Funnel in front of a writer and a replica: `users` as (name,
/// `causal_reads`, `causal_reads_timeout`), each splitting reads to the
/// replica; `pool`: more lines under `pool`.
fn universal_yaml(writer: &MariaDb, replica: &MariaDb, users: &[(&str, &str, &str)], pool: &str) -> String {
    let users: String = users
        .iter()
        .map(|(name, causal, timeout)| {
            format!(
                "  - name: {name}\n    password: apppw\n    default_schema: farm\n    \
                 default_hostgroup: writer\n    read_hostgroup: readers\n    read_fallback: false\n    \
                 causal_reads: {causal}\n    causal_reads_timeout: {timeout}\n"
            )
        })
        .collect();
    format!(
        "listen: 127.0.0.1:0\ncores: 1\nusers:\n{users}backends:\n\
         \x20 - name: w\n    address: {}\n    user: fb\n    password: bpw\n    hostgroup: writer\n\
         \x20 - name: r\n    address: {}\n    user: fb\n    password: bpw\n    hostgroup: readers\n\
         pool:\n  min_idle_per_core: 0\n{pool}monitor:\n  interval: 200ms\n",
        writer.addr(),
        replica.addr()
    )
}

/// Funnel from [`universal_yaml`], once the monitor checked both servers
/// and saw the replica's replication run (a replica seen with its
/// replication not running yet, just after `START SLAVE`, is not waited
/// on: the first read went to the writer).
fn universal_proxy(writer: &MariaDb, replica: &MariaDb, users: &[(&str, &str, &str)], pool: &str) -> Proxy {
    let yaml = universal_yaml(writer, replica, users, pool);
    let proxy = funnel_testkit::funnel::start(funnel_config::Config::from_yaml_str(&yaml).unwrap());
    replication_seen_running(&proxy);
    proxy
}

/// Waits until the monitor has checked every backend and seen the
/// replica's replication run: a replica seen with its replication not
/// running yet (just after `START SLAVE`) is not waited on, and a causal
/// read then goes to the writer.
fn replication_seen_running(proxy: &Proxy) {
    funnel_testkit::wait_until_within(
        "both backends checked, replication running",
        Duration::from_secs(10),
        || {
            let pools = proxy.snapshots()[0].pools.clone();
            pools.iter().all(|p| p.last_check.is_some())
                && pools.iter().any(|p| {
                    p.hostgroup == "readers" && p.lag.is_some_and(|l| l < Duration::from_secs(86400))
                })
        },
    );
}

/// The universal causal-read counters: (position reads sent, shared).
fn position_counts(proxy: &Proxy) -> (u64, u64) {
    let c = &proxy.snapshots()[0].counters;
    (c.causal_position_reads, c.causal_positions_shared)
}

/// All the causal-read counters: (waited, served at once, sent to the
/// writer, position reads sent, shared).
type Counts = (u64, u64, u64, u64, u64);

fn all_counts(proxy: &Proxy) -> Counts {
    let (w, s, o) = counts(proxy);
    let (p, sh) = position_counts(proxy);
    (w, s, o, p, sh)
}

/// What the counters counted since `before` (the client library's own
/// reads at login are reads too).
fn counted_since(proxy: &Proxy, before: Counts) -> Counts {
    let now = all_counts(proxy);
    (
        now.0 - before.0,
        now.1 - before.1,
        now.2 - before.2,
        now.3 - before.3,
        now.4 - before.4,
    )
}

/// `causal_reads: universal`: a write on one client connection and a read
/// on another (the next one an application's pool hands out): the read
/// first reads the writer's position, then waits on the replica for it,
/// and sees the write. Per session (`true`) the same read misses it. A
/// replica known to have the position serves at once. A reload turns it
/// on for a user whose sessions are open.
#[test]
fn causal_reads_universal_see_the_writes_of_other_connections() {
    let (writer, replica) = delayed_pair(2);
    let users = [("app", "true", "10s"), ("uni", "universal", "10s")];
    let mut proxy = universal_proxy(&writer, &replica, &users, "");
    let mut app_w = connect(&proxy, "app");
    let mut app_r = connect(&proxy, "app");
    app_w.query_drop("INSERT INTO t VALUES (1, 10)").unwrap();
    assert_eq!(
        read(&mut app_r, 1),
        (None, replica.port()),
        "per session, another connection reads the replica before it has the write"
    );
    assert_eq!(position_counts(&proxy), (0, 0));

    let mut w = connect(&proxy, "uni");
    let mut r = connect(&proxy, "uni");
    w.query_drop("INSERT INTO t VALUES (2, 20)").unwrap();
    let before = all_counts(&proxy);
    let started = Instant::now();
    assert_eq!(read(&mut r, 2), (Some(20), replica.port()));
    assert!(
        started.elapsed() >= Duration::from_millis(1000),
        "the read waited for the replica ({:?})",
        started.elapsed()
    );
    assert_eq!(counted_since(&proxy, before), (1, 0, 0, 1, 0));
    // Nothing written since: the replica is known to have the position.
    let before = all_counts(&proxy);
    assert_eq!(read(&mut r, 2), (Some(20), replica.port()));
    assert_eq!(counted_since(&proxy, before), (0, 1, 0, 1, 0));
    // Writes still go to the writer, and read no position.
    let before = all_counts(&proxy);
    w.query_drop("INSERT INTO t VALUES (3, 30)").unwrap();
    assert_eq!(counted_since(&proxy, before), (0, 0, 0, 0, 0));
    // A read whose warning keeps its replica connection (for the client's
    // `SHOW WARNINGS`): a read of a table after it, which clears the
    // warning anyway, waits for the other connection's write all the same.
    r.query_drop("SELECT CAST('x' AS SIGNED)").unwrap();
    assert_eq!(r.affected_rows(), 0);
    w.query_drop("INSERT INTO t VALUES (5, 50)").unwrap();
    assert_eq!(read(&mut r, 5), (Some(50), replica.port()), "after a warning");
    // A prepared read waits alike.
    w.query_drop("INSERT INTO t VALUES (6, 60)").unwrap();
    let got: (Option<i64>, u16) = r
        .exec_first("SELECT (SELECT v FROM t WHERE id = ?), @@port", (6,))
        .unwrap()
        .unwrap();
    assert_eq!(got, (Some(60), replica.port()), "prepared");

    // Live on reload: `app`'s open sessions wait for each other's writes.
    let users = [("app", "universal", "10s"), ("uni", "universal", "10s")];
    let yaml = universal_yaml(&writer, &replica, &users, "");
    assert!(proxy
        .reload(funnel_config::Config::from_yaml_str(&yaml).unwrap())
        .unwrap()
        .is_empty());
    app_w.query_drop("INSERT INTO t VALUES (4, 40)").unwrap();
    let before = all_counts(&proxy);
    assert_eq!(read(&mut app_r, 4), (Some(40), replica.port()));
    assert_eq!(counted_since(&proxy, before), (1, 0, 0, 1, 0));
}

/// A replica that does not catch up within `causal_reads_timeout` (the
/// position read included) leaves a universal read to the writer, which
/// has the other connection's write; the timeout bounds the wait.
#[test]
fn causal_reads_universal_go_to_the_writer_when_the_replica_is_too_late() {
    let (writer, replica) = delayed_pair(5);
    let users = [("uni", "universal", "500ms")];
    let proxy = universal_proxy(&writer, &replica, &users, "");
    let mut w = connect(&proxy, "uni");
    let mut r = connect(&proxy, "uni");
    w.query_drop("INSERT INTO t VALUES (1, 10)").unwrap();
    let before = all_counts(&proxy);
    let started = Instant::now();
    assert_eq!(read(&mut r, 1), (Some(10), writer.port()));
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(400) && took < Duration::from_secs(3),
        "waited its timeout on the replica, no more ({took:?})"
    );
    assert_eq!(counted_since(&proxy, before), (0, 0, 1, 1, 0));
}

/// Universal reads of a core that arrive while no position read is sent
/// yet (here: the one writer connection is busy) share one: one round
/// trip on the writer serves them all, each sees the write before it.
#[test]
fn causal_reads_universal_reads_share_a_position_read() {
    let (writer, replica) = delayed_pair(0);
    let users = [("uni", "universal", "10s")];
    let proxy = universal_proxy(&writer, &replica, &users, "  max_per_core: 1\n");
    let mut w = connect(&proxy, "uni");
    w.query_drop("INSERT INTO t VALUES (1, 10)").unwrap();
    let readers: Vec<Conn> = (0..3).map(|_| connect(&proxy, "uni")).collect();
    let before = all_counts(&proxy);
    let busy = std::thread::spawn(move || w.query_drop("INSERT INTO t SELECT 2, SLEEP(2)").unwrap());
    std::thread::sleep(Duration::from_millis(500));
    let reads: Vec<_> = readers
        .into_iter()
        .map(|mut c| std::thread::spawn(move || read(&mut c, 1)))
        .collect();
    for r in reads {
        assert_eq!(r.join().unwrap(), (Some(10), replica.port()));
    }
    busy.join().unwrap();
    assert_eq!(
        counted_since(&proxy, before),
        (1, 2, 0, 1, 2),
        "one position read, shared by two"
    );
}

/// A `KILL QUERY` of a universal read that leads a position read (waiting
/// here for the one writer connection) ends it at once with ERR 1317; a
/// read that had joined it takes another turn, sends its own position
/// read once the writer connection frees, and sees the write.
#[test]
fn causal_reads_universal_kill_query_of_a_position_read_leader() {
    let (writer, replica) = delayed_pair(0);
    let users = [("uni", "universal", "10s")];
    let proxy = universal_proxy(&writer, &replica, &users, "  max_per_core: 1\n");
    let mut w = connect(&proxy, "uni");
    w.query_drop("INSERT INTO t VALUES (1, 10)").unwrap();
    let mut leader = connect(&proxy, "uni");
    let id: u32 = leader.query_first("SELECT CONNECTION_ID()").unwrap().unwrap();
    let mut joiner = connect(&proxy, "uni");
    let mut killer = connect(&proxy, "uni");
    let before = all_counts(&proxy);
    let busy = std::thread::spawn(move || w.query_drop("INSERT INTO t SELECT 2, SLEEP(3)").unwrap());
    std::thread::sleep(Duration::from_millis(300));
    let led = std::thread::spawn(move || {
        let started = Instant::now();
        let got =
            leader.query_first::<(Option<i64>, u16), _>("SELECT (SELECT v FROM t WHERE id = 1), @@port");
        (got, started.elapsed())
    });
    std::thread::sleep(Duration::from_millis(200));
    let joined = std::thread::spawn(move || read(&mut joiner, 1));
    std::thread::sleep(Duration::from_millis(200));
    killer.query_drop(format!("KILL QUERY {id}")).unwrap();
    let (got, took) = led.join().unwrap();
    match got {
        Err(mysql::Error::MySqlError(e)) => assert_eq!(e.code, 1317, "{e}"),
        other => panic!("the killed read ran: {other:?} after {took:?}"),
    }
    assert!(took < Duration::from_secs(2), "stopped at once ({took:?})");
    assert_eq!(joined.join().unwrap(), (Some(10), replica.port()));
    busy.join().unwrap();
    assert_eq!(
        counted_since(&proxy, before),
        (1, 0, 0, 1, 0),
        "the joiner sent its own position read"
    );
}

/// With the writer down (a failover under way) a universal read cannot
/// learn what the replica must have: it fails as a write does (ERR 9004),
/// where a read of `true` with nothing to wait for runs on the replica.
/// A read of no table's data (a pool's validation query, built-in
/// functions) needs no position and no wait, with either mode, and still
/// runs then.
#[test]
fn causal_reads_universal_fail_while_no_writer_can_give_the_position() {
    let (writer, replica) = delayed_pair(0);
    let users = [("app", "true", "2s"), ("uni", "universal", "2s")];
    let proxy = universal_proxy(&writer, &replica, &users, "");
    let mut app = connect(&proxy, "app");
    let mut uni = connect(&proxy, "uni");
    assert_eq!(read(&mut uni, 1), (None, replica.port()));
    app.query_drop("INSERT INTO t VALUES (2, 20)").unwrap();
    uni.query_drop("INSERT INTO t VALUES (3, 30)").unwrap();
    let no_data = |c: &mut Conn| -> (i64, u16) { c.query_first("SELECT 1, @@port").unwrap().unwrap() };
    // Built-in functions read no table either.
    let builtins = |c: &mut Conn| -> (i64, u16) {
        c.query_first("SELECT NOW() IS NOT NULL AND CONCAT('a', UUID()) > '' AND 1 IN (1, 2), @@port")
            .unwrap()
            .unwrap()
    };
    let before = all_counts(&proxy);
    assert_eq!(no_data(&mut app), (1, replica.port()));
    assert_eq!(no_data(&mut uni), (1, replica.port()));
    assert_eq!(builtins(&mut app), (1, replica.port()));
    assert_eq!(builtins(&mut uni), (1, replica.port()));
    assert_eq!(
        counted_since(&proxy, before),
        (0, 0, 0, 0, 0),
        "neither waited nor read a position"
    );
    writer.stop();
    funnel_testkit::wait_until_within("the writer seen down", Duration::from_secs(10), || {
        proxy.snapshots()[0]
            .pools
            .iter()
            .any(|p| p.hostgroup == "writer" && !p.healthy)
    });
    assert_eq!(read(&mut app, 1), (None, replica.port()));
    let got = uni.query_first::<(Option<i64>, u16), _>("SELECT (SELECT v FROM t WHERE id = 1), @@port");
    match got {
        Err(mysql::Error::MySqlError(e)) => assert_eq!(e.code, 9004, "{e}"),
        other => panic!("a universal read ran without the writer's position: {other:?}"),
    }
    assert_eq!(
        no_data(&mut uni),
        (1, replica.port()),
        "a validation query still runs"
    );
    assert_eq!(
        builtins(&mut uni),
        (1, replica.port()),
        "so does a read of built-ins"
    );
}

/// A `KILL QUERY` of a universal read that joined another's position read
/// (not sent yet: the one writer connection is busy) ends it at once with
/// ERR 1317. Before, the joiner waited with the session counted idle, so
/// the `KILL QUERY` found nothing to stop, was answered OK, and the read
/// ran once the position came.
#[test]
fn causal_reads_universal_kill_query_of_a_read_that_joined_a_position_read() {
    let (writer, replica) = delayed_pair(0);
    let users = [("uni", "universal", "10s")];
    let proxy = universal_proxy(&writer, &replica, &users, "  max_per_core: 1\n");
    let mut w = connect(&proxy, "uni");
    w.query_drop("INSERT INTO t VALUES (1, 10)").unwrap();
    let mut leader = connect(&proxy, "uni");
    let mut joiner = connect(&proxy, "uni");
    let id: u32 = joiner.query_first("SELECT CONNECTION_ID()").unwrap().unwrap();
    let mut killer = connect(&proxy, "uni");
    let busy = std::thread::spawn(move || w.query_drop("INSERT INTO t SELECT 2, SLEEP(3)").unwrap());
    std::thread::sleep(Duration::from_millis(300));
    let led = std::thread::spawn(move || read(&mut leader, 1));
    std::thread::sleep(Duration::from_millis(200));
    let joined = std::thread::spawn(move || {
        let started = Instant::now();
        let got =
            joiner.query_first::<(Option<i64>, u16), _>("SELECT (SELECT v FROM t WHERE id = 1), @@port");
        (got, started.elapsed())
    });
    std::thread::sleep(Duration::from_millis(200));
    killer.query_drop(format!("KILL QUERY {id}")).unwrap();
    let (got, took) = joined.join().unwrap();
    match got {
        Err(mysql::Error::MySqlError(e)) => assert_eq!(e.code, 1317, "{e}"),
        other => panic!("the killed read ran: {other:?} after {took:?}"),
    }
    assert!(took < Duration::from_secs(2), "stopped at once ({took:?})");
    assert_eq!(led.join().unwrap(), (Some(10), replica.port()));
    busy.join().unwrap();
}

/// A failover under way in a `default_hostgroup` that holds the writer and
/// its replica (reads split within it): the writer turned `read_only`, no
/// server is writable, so no position can be read. A universal read then
/// fails as a write does (ERR 9004), or runs on the old writer, which has
/// every write it acknowledged: never on the replica without a wait.
/// Before, it went to whichever read-only server took it, the replica
/// too, and missed a write another connection had been told was
/// committed.
#[test]
fn causal_reads_universal_while_the_writer_turned_read_only_never_read_a_replica_unchecked() {
    let (writer, replica) = delayed_pair(4);
    let yaml = format!(
        "listen: 127.0.0.1:0\ncores: 1\nusers:\n\
         \x20 - name: uni\n    password: apppw\n    default_schema: farm\n    \
         default_hostgroup: db\n    causal_reads: universal\n    causal_reads_timeout: 10s\n\
         backends:\n\
         \x20 - name: w\n    address: {}\n    user: fb\n    password: bpw\n    hostgroup: db\n\
         \x20 - name: r\n    address: {}\n    user: fb\n    password: bpw\n    hostgroup: db\n    weight: 100\n\
         pool:\n  min_idle_per_core: 0\nmonitor:\n  interval: 200ms\n",
        writer.addr(),
        replica.addr()
    );
    let proxy = funnel_testkit::funnel::start(funnel_config::Config::from_yaml_str(&yaml).unwrap());
    funnel_testkit::wait_until_within(
        "both backends checked, replication running",
        Duration::from_secs(10),
        || {
            let pools = proxy.snapshots()[0].pools.clone();
            pools.iter().all(|p| p.last_check.is_some())
                && pools
                    .iter()
                    .any(|p| p.read_only && p.lag.is_some_and(|l| l < Duration::from_secs(86400)))
        },
    );
    // Connected before: the client library's own reads at login are
    // universal reads too.
    let mut readers: Vec<Conn> = (0..6).map(|_| connect(&proxy, "uni")).collect();
    let mut w = connect(&proxy, "uni");
    w.query_drop("INSERT INTO t VALUES (1, 10)").unwrap();
    let written = Instant::now();
    writer.exec("SET GLOBAL read_only = 1");
    funnel_testkit::wait_until_within("the writer seen read-only", Duration::from_secs(10), || {
        proxy.snapshots()[0].pools.iter().all(|p| p.read_only)
    });
    for c in &mut readers {
        let got = c.query_first::<(Option<i64>, u16), _>("SELECT (SELECT v FROM t WHERE id = 1), @@port");
        match got {
            Err(mysql::Error::MySqlError(e)) => assert_eq!(e.code, 9004, "{e}"),
            Ok(Some(row)) => assert_eq!(row, (Some(10), writer.port()), "a read-only server served it"),
            other => panic!("{other:?}"),
        }
    }
    assert!(
        written.elapsed() < Duration::from_secs(4),
        "the replica may have applied the write by now: the test proves nothing"
    );
}

/// The one writer connection held by a transaction: a universal read's
/// position read waits `backlog.wait_timeout` for it and fails (ERR
/// 9001), and a read that joined it fails with it, within that timeout.
/// Before, the joiner then waited for a writer connection again, a second
/// `backlog.wait_timeout`.
#[test]
fn causal_reads_universal_reads_that_joined_a_position_read_share_its_backlog_timeout() {
    let (writer, replica) = delayed_pair(0);
    let users = [("uni", "universal", "10s")];
    let pool = "  max_per_core: 1\nbacklog:\n  wait_timeout: 1s\n";
    let proxy = universal_proxy(&writer, &replica, &users, pool);
    let mut w = connect(&proxy, "uni");
    let mut leader = connect(&proxy, "uni");
    let mut joiner = connect(&proxy, "uni");
    w.query_drop("BEGIN").unwrap();
    w.query_drop("INSERT INTO t VALUES (1, 10)").unwrap();
    let timed = |c: &mut Conn| {
        let started = Instant::now();
        let got = c.query_first::<(Option<i64>, u16), _>("SELECT (SELECT v FROM t WHERE id = 1), @@port");
        (got, started.elapsed())
    };
    let led = std::thread::spawn(move || timed(&mut leader));
    std::thread::sleep(Duration::from_millis(200));
    let (got, took) = timed(&mut joiner);
    match got {
        Err(mysql::Error::MySqlError(e)) => assert_eq!(e.code, 9001, "{e}"),
        other => panic!("{other:?}"),
    }
    assert!(
        took < Duration::from_millis(1500),
        "one backlog wait, not two ({took:?})"
    );
    let (got, _) = led.join().unwrap();
    match got {
        Err(mysql::Error::MySqlError(e)) => assert_eq!(e.code, 9001, "{e}"),
        other => panic!("{other:?}"),
    }
    w.query_drop("COMMIT").unwrap();
}

/// A read that names no table but calls a stored function that reads one
/// (`SELECT getv(7)`) does not run on a replica connection kept for a
/// previous read's warning either: it waits for another connection's
/// write as any read does. Before, only reads with a table in them let
/// that connection go, and this one read the replica at once and missed
/// the write.
#[test]
fn causal_reads_universal_a_stored_function_read_after_a_warning_waits() {
    let (writer, replica) = delayed_pair(2);
    writer.exec(
        "CREATE FUNCTION farm.getv(i INT) RETURNS INT READS SQL DATA \
         RETURN (SELECT v FROM farm.t WHERE id = i)",
    );
    funnel_testkit::wait_until_within("the function replicated", Duration::from_secs(10), || {
        replica.query_first::<u64>(
            "SELECT COUNT(*) FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = 'farm' AND ROUTINE_NAME = 'getv'",
        ) == Some(1)
    });
    let users = [("uni", "universal", "10s")];
    let proxy = universal_proxy(&writer, &replica, &users, "");
    let mut w = connect(&proxy, "uni");
    let mut r = connect(&proxy, "uni");
    let port: u16 = r
        .query_first("SELECT @@port + CAST('x' AS SIGNED)")
        .unwrap()
        .unwrap();
    assert_eq!(port, replica.port(), "the warning's read ran on the replica");
    // A read of the warning count with a function call in it still reads
    // the warning there.
    let (count, _): (u64, String) = r.query_first("SELECT @@warning_count, NOW()").unwrap().unwrap();
    assert_eq!(count, 1, "the warning kept for the client");
    w.query_drop("INSERT INTO t VALUES (7, 70)").unwrap();
    let got: (Option<i64>, u16) = r.query_first("SELECT farm.getv(7), @@port").unwrap().unwrap();
    assert_eq!(
        got.0,
        Some(70),
        "served by {} (replica {})",
        got.1,
        replica.port()
    );
}

/// A write's warnings keep its connection on the writer for the client's
/// `SHOW WARNINGS`; a universal read that may read data (a function call,
/// `SELECT ROW_COUNT()`) after it runs there too: the writer has every
/// write, so it needs no wait, and the warnings stay the client's. Before,
/// it let the writer's connection go as it does a replica's, and `SHOW
/// WARNINGS` came back empty (soak seed 6731, after a `CALL`).
#[test]
fn causal_reads_universal_a_function_read_after_a_writes_warning_keeps_it() {
    let (writer, replica) = delayed_pair(0);
    let users = [("uni", "universal", "10s")];
    let proxy = universal_proxy(&writer, &replica, &users, "");
    let mut c = connect(&proxy, "uni");
    c.query_drop("INSERT INTO t VALUES (1, 10)").unwrap();
    // A duplicate key, ignored with a warning.
    c.query_drop("INSERT IGNORE INTO t VALUES (1, 11)").unwrap();
    assert_eq!(c.warnings(), 1);
    let before = all_counts(&proxy);
    let rows: Option<i64> = c.query_first("SELECT ROW_COUNT()").unwrap();
    assert_eq!(rows, Some(0));
    let warnings: Vec<(String, u32, String)> = c.query("SHOW WARNINGS").unwrap();
    assert_eq!(warnings.len(), 1, "the INSERT's warning: {warnings:?}");
    assert_eq!(warnings[0].1, 1062, "{warnings:?}");
    assert_eq!(
        counted_since(&proxy, before),
        (0, 0, 0, 0, 0),
        "ran on the writer's kept connection, without a position read"
    );
}

/// A read that calls a stored function that reads a table may read data,
/// whatever else its text names: with the function's name holding
/// `error_count` (`SELECT farm.user_error_count(8)`), or beside
/// `@@warning_count`, it waits on the replica for the session's write
/// (`true`) and for the writer's position (`universal`). At 7e4d28e such
/// a read counted as one of no table's data, by the rule for a replica
/// connection kept for the client's warnings (`Session::reads_data`): it
/// ran on the replica at once, on a connection from the pool too, and
/// missed the write.
#[test]
fn causal_reads_a_function_read_that_names_the_warning_counts_waits() {
    let (writer, replica) = delayed_pair(2);
    writer.exec(
        "CREATE FUNCTION farm.user_error_count(i INT) RETURNS INT READS SQL DATA \
         RETURN (SELECT v FROM farm.t WHERE id = i)",
    );
    funnel_testkit::wait_until_within("the function replicated", Duration::from_secs(10), || {
        replica.query_first::<u64>(
            "SELECT COUNT(*) FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = 'farm' \
             AND ROUTINE_NAME = 'user_error_count'",
        ) == Some(1)
    });
    let users = [("app", "true", "10s"), ("uni", "universal", "10s")];
    let proxy = universal_proxy(&writer, &replica, &users, "");
    let mut app = connect(&proxy, "app");
    app.query_drop("INSERT INTO t VALUES (8, 80)").unwrap();
    let got: (Option<i64>, u16) = app
        .query_first("SELECT farm.user_error_count(8), @@port")
        .unwrap()
        .unwrap();
    assert_eq!(got, (Some(80), replica.port()), "true: its own write");

    let mut w = connect(&proxy, "uni");
    let mut r = connect(&proxy, "uni");
    w.query_drop("INSERT INTO t VALUES (9, 90)").unwrap();
    let got: (Option<i64>, u64, u16) = r
        .query_first("SELECT farm.user_error_count(9), @@warning_count, @@port")
        .unwrap()
        .unwrap();
    assert_eq!(
        (got.0, got.2),
        (Some(90), replica.port()),
        "universal: another connection's write"
    );
}

/// A read of no table's data runs on the replica without a wait
/// (7e4d28e); when it warns (`SELECT 1/0`), the replica connection lingers
/// for the warning, and a read of data right after does not take it
/// without the wait for the session's write. At 7e4d28e it did (a read of
/// `true` before then always waited there first), and missed the write.
#[test]
fn causal_reads_a_read_of_data_after_an_unwaited_warning_waits() {
    let (writer, replica) = delayed_pair(2);
    let proxy = proxy(&writer, &replica, "10s");
    let mut c = connect(&proxy, "app");
    c.query_drop("INSERT INTO t VALUES (1, 10)").unwrap();
    let before = counts(&proxy);
    let (v, port): (Option<i64>, u16) = c.query_first("SELECT 1/0, @@port").unwrap().unwrap();
    assert_eq!((v, port), (None, replica.port()), "ran on the replica");
    assert_eq!(counts(&proxy), before, "without a wait");
    assert_eq!(read(&mut c, 1), (Some(10), replica.port()));
}
