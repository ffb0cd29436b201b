//! `KILL` corner cases: what a failed step of a `KILL QUERY` leaves
//! behind. Expectations are a direct connection's: a `KILL` the server
//! never received stops nothing and costs nothing.

use std::thread;
use std::time::Duration;

use funnel_testkit::MariaDb;
use mysql::prelude::Queryable;

/// Funnel in front of the shared server with one backend connection;
/// returns it with its schema and backend account.
fn funnel(prefix: &str) -> (funnel_engine::Proxy, String, String) {
    let db = MariaDb::shared();
    let schema = db.fresh_database(prefix);
    let account = format!("{schema}_b");
    db.create_user(&account, "bpw");
    let cfg = funnel_testkit::funnel::config(
        db,
        ("app", "apppw"),
        (&account, "bpw"),
        Some(&schema),
        "pool:\n  max_per_core: 1\n  min_idle_per_core: 0\nbacklog:\n  wait_timeout: 30s\n",
    );
    (funnel_testkit::funnel::start(cfg), schema, account)
}

/// The server's thread ids of `account`'s connections.
fn threads_of(account: &str) -> Vec<i64> {
    let mut root = MariaDb::shared().root();
    root.query(format!(
        "SELECT ID FROM information_schema.PROCESSLIST WHERE USER = '{account}' ORDER BY ID"
    ))
    .unwrap()
}

/// A `KILL QUERY` whose poll of `SHOW PROCESSLIST` (waiting for the target
/// thread to show it is at work) fails wrote no `KILL` to the server:
/// nothing can arrive late, so the target's connection must go on serving
/// (it was marked `late_kill` and closed for nothing). The target here has
/// a result the server finished sending (its thread shows `Sleep`) that
/// its client does not read, so the statement is still Funnel's to relay.
#[test]
fn kill_failed_poll_leaves_the_connection_serving() {
    let (proxy, _schema, account) = funnel("kleftpoll");
    let mut warm =
        funnel_testkit::mini_client::MiniClient::connect(proxy.local_addr(), "app", "apppw", None).unwrap();
    warm.query("DO 1").unwrap();
    drop(warm);
    let before = threads_of(&account);
    assert_eq!(before.len(), 1, "one backend connection: {before:?}");
    let mut victim =
        funnel_testkit::mini_client::MiniClient::connect(proxy.local_addr(), "app", "apppw", None).unwrap();
    let id = victim.connection_id;
    // About 1 MB: more than the client's socket buffers take, less than
    // Funnel's backend side needs to let the server finish.
    victim
        .send_query("SELECT REPEAT('x', 1000) FROM seq_1_to_6000")
        .unwrap();
    thread::sleep(Duration::from_millis(500));
    std::env::set_var("FUNNEL_FAULT_INJECTION", "1");
    std::env::set_var("FUNNEL_FAULT_PROCESSLIST_FAIL", "1");
    // A raw client: a connector's own queries at login would wait for the
    // one connection.
    let mut killer =
        funnel_testkit::mini_client::MiniClient::connect(proxy.local_addr(), "app", "apppw", None).unwrap();
    let r = killer.query(&format!("KILL QUERY {id}")).map(|_| ());
    std::env::remove_var("FUNNEL_FAULT_PROCESSLIST_FAIL");
    assert!(r.is_err(), "the KILL failed, and says so: {r:?}");
    // The victim reads its whole result and goes on.
    let mut eofs = 0;
    while eofs < 2 {
        let (_, p) = victim.read_packet().expect("the victim's result");
        if p.first() == Some(&0xfe) && p.len() < 9 {
            eofs += 1;
        }
    }
    victim.query("DO 1").unwrap();
    assert_eq!(
        threads_of(&account),
        before,
        "the connection no KILL was written to is kept"
    );
}
