//! Clients of different handshake charsets and multi-statement flags on
//! one backend connection: the pool gives a connection another client's
//! charset with `SET NAMES` (and its multi-statement option as the
//! session's sync does) instead of closing it and logging in again, and
//! each client still gets the answers of a direct connection of its own,
//! in text and prepared statements, after a reset too.

use super::*;

/// utf8mb4_general_ci, latin1_swedish_ci, utf8mb4_unicode_ci, and
/// utf8mb4_general_ci with multi-statements.
const CLIENTS: [(u8, Capabilities); 4] = [
    (45, Capabilities::EMPTY),
    (8, Capabilities::EMPTY),
    (224, Capabilities::EMPTY),
    (45, Capabilities::CLIENT_MULTI_STATEMENTS),
];

const VARS: &str = "SELECT @@character_set_client, @@character_set_connection, \
                    @@character_set_results, @@collation_connection";

/// Non-ASCII text (sent as UTF-8 bytes whatever the client's charset, so
/// each charset reads them its own way) and what the charset makes of it.
const TEXT: &str = "SELECT 'é' AS e, HEX('é'), CHARSET('é'), COLLATION('é'), 'é' = 'e'";

const SETUP: &[&str] = &[
    "CREATE TABLE t (id INT)",
    "CREATE FUNCTION fails() RETURNS INT BEGIN SIGNAL SQLSTATE '45000'; RETURN 1; END",
];

/// One client of each of [`CLIENTS`], logged in to `addr`.
fn charset_clients(addr: SocketAddr, user: &str, pw: &str, schema: &str) -> Vec<Raw> {
    CLIENTS
        .iter()
        .map(|&(charset, extra)| Raw::connect_as(addr, user, pw, schema, extra, charset))
        .collect()
}

fn script(c: &mut [Raw]) -> Vec<Reply> {
    let mut out = Vec::new();
    for i in [0, 1, 2, 3, 1, 0, 3, 2] {
        out.push(c[i].query(VARS));
        out.push(c[i].query(TEXT));
    }
    // Two statements in one query: the multi-statement client's run, the
    // others' are a syntax error, as on their own connections.
    for i in [3, 0, 3, 1] {
        out.push(c[i].call(b"\x03SELECT 1; SELECT 2", Expect::Results));
    }
    // Prepared under each charset, executed after the others took the
    // connection to theirs.
    let sql = "SELECT 'é' AS e, ? AS p, CHARSET(?) AS cs";
    out.push(c[1].prepare_reply(sql));
    out.push(c[0].prepare_reply(sql));
    let ids: Vec<u32> = (0..3).map(|i| c[i].prepare(sql).unwrap()).collect();
    for i in [1, 0, 2, 1] {
        out.push(c[i].execute(ids[i], 0, &[text("é"), text("x")], true));
    }
    // A client's own SET NAMES beside the others' handshake charsets.
    out.push(c[0].query("SET NAMES latin1"));
    for i in [2, 0, 1, 0] {
        out.push(c[i].query(VARS));
    }
    // A failed function call: Funnel resets the connection before another
    // client gets it, and the server's reset gives back the charset the
    // connection logged in with.
    for i in [1, 2, 1] {
        out.push(c[i].query("SELECT fails()"));
        // Opens a table: the client no longer keeps the connection for
        // its diagnostics, and its next command may find it reset.
        out.push(c[i].query("SELECT COUNT(*) FROM t"));
        out.push(c[i].query(VARS));
        out.push(c[(i + 1) % 3].query(VARS));
    }
    // A client's own reset.
    out.push(c[2].call(&[0x1f], Expect::Status));
    out.push(c[2].query(VARS));
    out.push(c[1].query(TEXT));
    out.push(c[2].query(TEXT));
    out
}

#[test]
fn prepared_clients_of_other_charsets_and_multi_statement_flags_share_one_connection() {
    let db = MariaDb::shared();
    users(db);
    let schema = schema_with(db, "ps_cs_switch", SETUP);
    let d = script(&mut charset_clients(db.addr(), "ps_direct", "dpw", &schema));

    let proxy = funnel(db, &schema, 1);
    let counters = || {
        let all = proxy.snapshots();
        let c = &all[0].counters;
        (c.backend_opened, c.connections_switched, c.backend_resets)
    };
    let mut c = charset_clients(proxy.local_addr(), "app", "apppw", &schema);
    // The warm connection has libmariadb's flags: the first client's
    // command replaces it with one of its own.
    c[0].query("SELECT 1").unwrap();
    let (opened, _, _) = counters();
    let f = script(&mut c);
    assert_same(&d, &f);
    let (opened_after, switches, resets) = counters();
    assert_eq!(
        opened_after, opened,
        "every client was served on the one connection"
    );
    assert!(switches >= 20, "{switches} switches");
    assert!(resets >= 3, "{resets} resets");
}

#[test]
fn prepared_a_connection_released_to_a_waiter_of_another_charset_switches_to_it() {
    let db = MariaDb::shared();
    let schema = db.fresh_database("ps_cs_wait");
    let proxy = funnel(db, &schema, 1);
    let mut c = charset_clients(proxy.local_addr(), "app", "apppw", &schema);
    c[0].query("BEGIN").unwrap();
    c[0].query("SELECT 1").unwrap();
    let opened = proxy.snapshots()[0].counters.backend_opened;
    // The latin1 client waits for the connection the transaction holds.
    let mut waiter = c.remove(1);
    let waiting = std::thread::spawn(move || waiter.query(VARS));
    std::thread::sleep(std::time::Duration::from_millis(300));
    c[0].query("COMMIT").unwrap();
    let got = waiting.join().unwrap().expect("the waiter is served");
    let shown = format!("{:?}", String::from_utf8_lossy(&got.concat()));
    assert!(shown.contains("latin1_swedish_ci"), "{shown}");
    let snap = &proxy.snapshots()[0].counters;
    assert_eq!(snap.backend_opened, opened, "no new connection for the waiter");
    assert_eq!(snap.connections_switched, 1);
}

/// Clients of `charsets`, directly and through Funnel with one backend
/// connection, running `script` in one fresh schema made by `setup`:
/// (direct, funnel) replies, and how many times Funnel switched its
/// connection.
fn charset_group(
    name: &str,
    charsets: &[u8],
    setup: &[&str],
    script: impl Fn(&mut [Raw]) -> Vec<Reply>,
) -> (Vec<Reply>, Vec<Reply>, u64) {
    let db = MariaDb::shared();
    users(db);
    let schema = schema_with(db, name, setup);
    let connect = |addr, user: &str, pw: &str| -> Vec<Raw> {
        charsets
            .iter()
            .map(|&charset| Raw::connect_as(addr, user, pw, &schema, Capabilities::EMPTY, charset))
            .collect()
    };
    let d = script(&mut connect(db.addr(), "ps_direct", "dpw"));
    let proxy = funnel(db, &schema, 1);
    let f = script(&mut connect(proxy.local_addr(), "app", "apppw"));
    let switched = proxy.snapshots()[0].counters.connections_switched;
    (mask(d, &schema), mask(f, &schema), switched)
}

#[test]
fn prepared_a_reset_that_leaves_profiles_keeps_the_switched_charset() {
    let (d, f, switched) = charset_group("ps_cs_profiles", &[45, 8], &[], |c| {
        let [a, b] = c else { unreachable!() };
        let mut out = vec![a.query(VARS)];
        // The latin1 client takes the utf8mb4 connection, keeps it for
        // its profiles, and resets: the server's reset leaves the
        // profiles, so the connection stays with it, in its charset.
        out.push(b.query("SET profiling = 1"));
        out.push(b.query("SELECT 1"));
        out.push(b.call(&[0x1f], Expect::Status));
        out.push(b.query(VARS));
        out.push(b.query(TEXT));
        out
    });
    assert!(switched >= 1, "{switched} switches");
    assert_same(&d, &f);
}

#[test]
fn prepared_a_connection_switched_while_its_backend_is_drained_runs_no_command_there() {
    // A server of its own: the test freezes it.
    let db = MariaDb::start();
    users(&db);
    let schema = db.fresh_database("ps_cs_drain");
    let proxy = funnel(&db, &schema, 1);
    let connect = |charset| {
        Raw::connect_as(
            proxy.local_addr(),
            "app",
            "apppw",
            &schema,
            Capabilities::EMPTY,
            charset,
        )
    };
    let (mut utf8mb4, mut latin1) = (connect(45), connect(8));
    // The one connection, idle in utf8mb4.
    utf8mb4.query("SELECT 1").unwrap();
    // The latin1 client's command switches it, and the server is slow to
    // answer the SET NAMES: meanwhile an operator drains the backend.
    db.pause();
    let waiting = std::thread::spawn(move || latin1.query(VARS));
    std::thread::sleep(std::time::Duration::from_millis(300));
    funnel_testkit::funnel::set_drained(&proxy, "primary", true);
    db.resume();
    // Told as a command that arrives now is (nothing else serves), not
    // run on the drained backend as one opened meanwhile would not be.
    assert_eq!(waiting.join().unwrap().map(|_| ()), Err(9004));
    let counts = proxy.snapshots()[0].pools[0].counts;
    assert_eq!(counts.total, 0, "{counts:?}: the switched connection closed");
}

#[test]
fn prepared_clients_own_charset_settings_in_a_latin1_schema_survive_switches() {
    // The charset variables, the schema's, and `old_mode` (which decides
    // what `utf8` names).
    let all = "SELECT @@character_set_client, @@character_set_connection, @@character_set_results, \
               @@collation_connection, @@character_set_database, @@collation_database, @@old_mode";
    let (d, f, switched) = charset_group(
        "ps_cs_vars",
        &[45, 8, 224],
        &["ALTER DATABASE <db> CHARACTER SET latin1 COLLATE latin1_bin"],
        |c| {
            let steps: &[(usize, &str)] = &[
                (0, all),
                (1, "SET CHARACTER SET utf8mb4"),
                (1, all),
                (0, all),
                (1, TEXT),
                (2, "SET character_set_results = NULL"),
                (2, TEXT),
                (0, TEXT),
                (2, all),
                (1, all),
                (2, "SET collation_connection = utf8mb4_bin"),
                (0, all),
                (2, all),
                (2, TEXT),
                (1, "SET @v = 'é'"),
                (2, "SET @w = 1"),
                (1, "SELECT @v, CHARSET(@v), HEX(@v), COLLATION(@v)"),
                (0, "SET old_mode = ''"),
                (0, "SET NAMES utf8"),
                (1, all),
                (0, all),
                (2, "SET old_mode = ''"),
                (1, all),
                (2, "SET NAMES latin1 COLLATE latin1_bin"),
                (0, all),
                (2, all),
                (1, all),
            ];
            steps.iter().map(|&(i, sql)| c[i].query(sql)).collect()
        },
    );
    assert!(switched >= 10, "{switched} switches");
    assert_same(&d, &f);
}
