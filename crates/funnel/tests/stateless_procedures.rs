//! `stateless_procedures`: a `CALL` of a listed procedure gives the
//! client's backend connection back, so clients that call procedures share
//! the pool; and everything they read afterwards (their own insert ids and
//! counts, warnings, a transaction or a variable a procedure left) is what
//! a direct connection reads. Each script runs once directly against
//! MariaDB and once through Funnel with fewer backend connections than
//! clients.

use funnel_config::Config;
use funnel_engine::Proxy;
use funnel_testkit::MariaDb;
use mysql::prelude::Queryable;
use mysql::Conn;

/// What one statement returned: its rows as debug-printed values, or an error code.
type Outcome = Result<Vec<Vec<String>>, u16>;

/// The procedures every script may call; all but `keeps_var`, `opens_tx`
/// and `undeclared` are listed as stateless.
const SETUP: &[&str] = &[
    "CREATE TABLE items (id INT AUTO_INCREMENT PRIMARY KEY, v INT)",
    "CREATE PROCEDURE add_item(x INT) INSERT INTO items (v) VALUES (x)",
    "CREATE PROCEDURE add_two(x INT) INSERT INTO items (v) VALUES (x), (x + 1)",
    "CREATE PROCEDURE list_items() SELECT v FROM items ORDER BY id",
    "CREATE PROCEDURE reads_id() SELECT LAST_INSERT_ID()",
    "CREATE PROCEDURE warns() DO CAST('x' AS INT)",
    "CREATE PROCEDURE sets_limit() SET SESSION sql_select_limit = 1",
    "CREATE PROCEDURE opens_tx() BEGIN START TRANSACTION; INSERT INTO items (v) VALUES (100); END",
    "CREATE PROCEDURE out_param(OUT n INT) SELECT COUNT(*) INTO n FROM items",
    "CREATE PROCEDURE undeclared() SELECT 1",
    "CREATE PROCEDURE check_qty(q INT) BEGIN IF q < 0 THEN SIGNAL SQLSTATE '45000' \
     SET MESSAGE_TEXT = 'negative'; END IF; INSERT INTO items (v) VALUES (q); END",
    "CREATE PROCEDURE dup_item() INSERT INTO items (id, v) VALUES (1, 0)",
    "CREATE PROCEDURE slow() BEGIN INSERT INTO items (v) VALUES (0); DO SLEEP(2); END",
    "CREATE PROCEDURE tx_then_fail() BEGIN START TRANSACTION; INSERT INTO items (v) VALUES (50); \
     SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'late'; END",
];

const STATELESS: &[&str] = &[
    "add_item",
    "add_two",
    "list_items",
    "reads_id",
    "warns",
    "sets_limit",
    "opens_tx",
    "out_param",
    "check_qty",
    "dup_item",
    "tx_then_fail",
    "slow",
];

fn outcome(c: &mut Conn, sql: &str) -> Outcome {
    if let Some(ms) = sql.strip_prefix("SLEEP:") {
        std::thread::sleep(std::time::Duration::from_millis(ms.parse().unwrap()));
        return Ok(Vec::new());
    }
    if sql == "CHANGE_USER" {
        return c
            .change_user(mysql::ChangeUserOpts::DEFAULT)
            .map(|_| Vec::new())
            .map_err(|e| match e {
                mysql::Error::MySqlError(e) => e.code,
                e => panic!("{sql}: {e}"),
            });
    }
    if sql == "RESET" {
        return c.reset().map(|_| Vec::new()).map_err(|e| match e {
            mysql::Error::MySqlError(e) => e.code,
            e => panic!("{sql}: {e}"),
        });
    }
    let rows = if let Some(ps) = sql.strip_prefix("PSNULL:") {
        c.exec_iter(ps, (mysql::Value::NULL,))
            .and_then(|mut r| collect(&mut r))
    } else if let Some(ps) = sql.strip_prefix("PS:") {
        c.exec_iter(ps, ()).and_then(|mut r| collect(&mut r))
    } else {
        c.query_iter(sql).and_then(|mut r| collect(&mut r))
    };
    match rows {
        Ok(rows) => Ok(rows),
        Err(mysql::Error::MySqlError(e)) => Err(e.code),
        Err(e) => panic!("{sql}: {e}"),
    }
}

/// Every row of every result set, in order.
fn collect<P: mysql::prelude::Protocol>(
    result: &mut mysql::QueryResult<'_, '_, '_, P>,
) -> mysql::Result<Vec<Vec<String>>> {
    let mut rows = Vec::new();
    while let Some(set) = result.iter() {
        for row in set {
            rows.push(row?.unwrap().into_iter().map(|v| format!("{v:?}")).collect());
        }
    }
    Ok(rows)
}

/// Runs `steps` ((client, SQL)) on three fresh connections made by `make`.
fn run(steps: &[(usize, &str)], make: impl Fn() -> Conn + Sync) -> Vec<Outcome> {
    let mut clients: Vec<Conn> = (0..3).map(|_| make()).collect();
    for sql in SETUP {
        clients[0].query_drop(sql).unwrap();
    }
    steps
        .iter()
        .map(|(i, sql)| {
            // `KILLQ:ms:SQL`: another connection kills the client's query
            // `ms` after `SQL` was sent.
            let Some((ms, sql)) = sql.strip_prefix("KILLQ:").and_then(|r| r.split_once(':')) else {
                return outcome(&mut clients[*i], sql);
            };
            let id = clients[*i].connection_id();
            let ms: u64 = ms.parse().unwrap();
            std::thread::scope(|s| {
                s.spawn(|| {
                    std::thread::sleep(std::time::Duration::from_millis(ms));
                    make().query_drop(format!("KILL QUERY {id}")).unwrap();
                });
                outcome(&mut clients[*i], sql)
            })
        })
        .collect()
}

/// The script's outcomes directly and through Funnel (with `pool` backend
/// connections), and how many `CALL`s gave their connection back.
fn both_ways(steps: &[(usize, &str)], pool: usize) -> (Vec<Outcome>, Vec<Outcome>, u64) {
    let db = MariaDb::shared();
    db.create_user("stateless_direct", "dpw");
    db.create_user("stateless_backend", "bpw");
    let opts = |port: u16, user: &str, pw: &str, schema: &str| {
        funnel_testkit::client_opts(port, user, pw).db_name(Some(schema))
    };
    let direct_schema = db.fresh_database("stl_d");
    let direct = run(steps, || {
        Conn::new(opts(db.port(), "stateless_direct", "dpw", &direct_schema)).unwrap()
    });
    let schema = db.fresh_database("stl_f");
    let listed: String = STATELESS.iter().map(|p| format!("  - {schema}.{p}\n")).collect();
    let yaml = format!(
        "listen: 127.0.0.1:0\ncores: 1\n\
         users:\n  - name: app\n    password: apppw\n    default_schema: {schema}\n\
         backends:\n  - name: primary\n    address: {}\n    user: stateless_backend\n    password: bpw\n\
         pool:\n  max_per_core: {pool}\n  min_idle_per_core: 1\nbacklog:\n  wait_timeout: 3s\n\
         stateless_procedures:\n{listed}",
        db.addr(),
    );
    let proxy = Proxy::start(Config::from_yaml_str(&yaml).unwrap()).unwrap();
    let port = proxy.local_addr().port();
    let through = run(steps, || Conn::new(opts(port, "app", "apppw", &schema)).unwrap());
    let unpinned = proxy.snapshots().iter().map(|s| s.counters.calls_unpinned).sum();
    (direct, through, unpinned)
}

/// Asserts that every step gave the same answer both ways.
fn assert_same(steps: &[(usize, &str)], direct: &[Outcome], through: &[Outcome]) {
    let differ: Vec<String> = steps
        .iter()
        .zip(direct.iter().zip(through))
        .filter(|(_, (d, f))| d != f)
        .map(|((c, sql), (d, f))| format!("client {c} `{sql}`:\n  direct: {d:?}\n  funnel: {f:?}"))
        .collect();
    assert!(differ.is_empty(), "{}", differ.join("\n"));
}

/// Three clients call procedures over one backend connection: each `CALL`
/// gives it back (before, the first client's `CALL` kept it and the others
/// got ERR 9001), and each client reads its own insert ids and counts.
#[test]
fn stateless_procedures_three_callers_share_one_connection() {
    let steps: &[(usize, &str)] = &[
        (0, "CALL add_item(1)"),
        (1, "CALL add_two(2)"),
        (2, "PS:CALL add_item(3)"),
        (0, "SELECT LAST_INSERT_ID(), ROW_COUNT(), FOUND_ROWS()"),
        (1, "SELECT LAST_INSERT_ID(), ROW_COUNT(), FOUND_ROWS()"),
        (2, "SELECT LAST_INSERT_ID(), ROW_COUNT(), FOUND_ROWS()"),
        (1, "CALL list_items()"),
        (0, "INSERT INTO items (v) VALUES (7)"),
        (2, "CALL add_item(8)"),
        (1, "SELECT FOUND_ROWS(), ROW_COUNT(), LAST_INSERT_ID()"),
        (0, "SELECT LAST_INSERT_ID(), ROW_COUNT()"),
        (0, "CALL reads_id()"),
        (1, "CALL reads_id()"),
        (2, "PS:CALL reads_id()"),
        (2, "SELECT LAST_INSERT_ID(), FOUND_ROWS()"),
        (0, "CALL add_item('9');"),
        (1, "SELECT COUNT(*) FROM items"),
        // With autocommit off (a tracked SET), the CALL's transaction holds
        // the connection until its COMMIT, and no longer.
        (0, "SET autocommit = 0"),
        (0, "CALL add_item(10)"),
        (0, "SELECT LAST_INSERT_ID(), ROW_COUNT()"),
        (0, "COMMIT"),
        (1, "CALL add_item(11)"),
        (0, "SELECT LAST_INSERT_ID(), ROW_COUNT(), @@autocommit"),
        (2, "SELECT COUNT(*) FROM items"),
        (0, "SET autocommit = 1"),
        // A CALL that failed gives the connection back too (reset first).
        (0, "CALL check_qty(-1)"),
        (0, "SHOW WARNINGS"),
        (0, "SELECT COUNT(*) FROM items"),
        (1, "CALL check_qty(5)"),
        (0, "CALL check_qty(6)"),
        (0, "SELECT LAST_INSERT_ID(), ROW_COUNT()"),
        (1, "SELECT LAST_INSERT_ID(), ROW_COUNT()"),
    ];
    let (direct, through, unpinned) = both_ways(steps, 1);
    assert_same(steps, &direct, &through);
    // Every CALL (14 of them) gave the connection back.
    assert_eq!(unpinned, 14);
}

/// What a procedure leaves is kept as a direct connection keeps it: its
/// warnings for the caller's `SHOW WARNINGS` and `GET DIAGNOSTICS`, a
/// transaction it opened, a variable it set, an `OUT` parameter's user
/// variable, and an undeclared procedure's pin.
#[test]
fn stateless_procedures_keep_what_a_call_leaves() {
    let steps: &[(usize, &str)] = &[
        (0, "CALL add_two(1)"),
        (2, "CALL warns()"),
        (2, "SHOW WARNINGS"),
        (2, "SELECT @@warning_count"),
        (2, "SELECT COUNT(*) FROM items"),
        (1, "CALL add_item(5)"),
        (2, "SELECT LAST_INSERT_ID(), ROW_COUNT()"),
        (2, "CALL warns()"),
        (1, "CALL list_items()"),
        (2, "SHOW WARNINGS"),
        (2, "SLEEP:400"),
        (2, "SELECT ROW_COUNT(), FOUND_ROWS()"),
        (2, "CALL sets_limit()"),
        (2, "SELECT v FROM items ORDER BY id"),
        (1, "SELECT COUNT(*) FROM (SELECT v FROM items) t"),
        (1, "CALL opens_tx()"),
        (0, "SELECT COUNT(*) FROM items"),
        (1, "SELECT COUNT(*) FROM items"),
        (1, "ROLLBACK"),
        (1, "SELECT COUNT(*) FROM items"),
        (0, "CALL out_param(@c)"),
        (1, "CALL add_item(6)"),
        (0, "SELECT @c"),
        (0, "CALL undeclared()"),
        (0, "SELECT LAST_INSERT_ID()"),
        (0, "CALL warns()"),
        (0, "GET DIAGNOSTICS @n = NUMBER, @r = ROW_COUNT"),
        (0, "SELECT @n, @r"),
        // A transaction a failed CALL left open stays with its client.
        (1, "CALL tx_then_fail()"),
        (1, "SLEEP:400"),
        (2, "SELECT COUNT(*) FROM items"),
        (1, "SELECT COUNT(*) FROM items"),
        (1, "SELECT @@in_transaction"),
        (1, "ROLLBACK"),
        (1, "SELECT COUNT(*) FROM items"),
        (1, "CALL add_item(7)"),
    ];
    let (direct, through, unpinned) = both_ways(steps, 3);
    assert_same(steps, &direct, &through);
    // add_two, add_item three times, list_items, opens_tx once its
    // transaction ended, and warns() twice (each at once: its connection
    // then lingers for the warnings as after any statement that warns).
    // Not sets_limit, out_param(@c), undeclared, a CALL of a client pinned
    // for a user variable, or tx_then_fail: the read after it found the
    // transaction it left open, so that transaction alone, not a pin, held
    // the connection until the ROLLBACK.
    assert_eq!(unpinned, 8);
}

/// A `CALL` the connection could not be given the client's count for
/// `FOUND_ROWS()` before (its warnings of a failed statement were still
/// there) leaves the connection's count another client's: once the
/// connection goes back, the client's `FOUND_ROWS()` is still its own last
/// result set's, as for any such `CALL` (before, the read-back took the
/// other client's count; soak seed 500275).
#[test]
fn stateless_procedures_keep_the_clients_count_where_none_was_given() {
    let steps: &[(usize, &str)] = &[
        (0, "INSERT INTO items (v) VALUES (1), (2), (3)"),
        (0, "SELECT v FROM items"),
        (1, "SELECT 1"),
        (0, "SELECT nosuch"),
        (0, "CALL warns()"),
        (0, "SLEEP:400"),
        (0, "SELECT FOUND_ROWS(), ROW_COUNT(), LAST_INSERT_ID()"),
        (0, "CALL add_item(4)"),
        (0, "SELECT FOUND_ROWS(), ROW_COUNT(), LAST_INSERT_ID()"),
    ];
    let (direct, through, unpinned) = both_ways(steps, 1);
    assert_same(steps, &direct, &through);
    assert_eq!(unpinned, 2);
}

/// The same for a `CALL` that failed: with the client's warnings on its
/// connection, its count is not given first, and the connection's count
/// after the failure is another client's (before, the read-back took it:
/// soak seed 500580).
#[test]
fn stateless_procedures_keep_the_clients_count_after_a_failed_call() {
    let steps: &[(usize, &str)] = &[
        (0, "INSERT INTO items (v) VALUES (1), (2)"),
        (0, "SELECT v FROM items"),
        (1, "BEGIN"),
        (1, "SELECT v FROM items LIMIT 1"),
        (0, "DROP TEMPORARY TABLE IF EXISTS nosuch"),
        (0, "CALL dup_item()"),
        (0, "SELECT FOUND_ROWS(), ROW_COUNT(), LAST_INSERT_ID()"),
        (1, "COMMIT"),
        (2, "SELECT v FROM items LIMIT 1"),
        (0, "SELECT FOUND_ROWS()"),
    ];
    let (direct, through, unpinned) = both_ways(steps, 2);
    assert_same(steps, &direct, &through);
    assert_eq!(unpinned, 1);
}

/// Under the client's `sql_select_limit = 0` the `CALL` reads the same
/// and still gives its connection back: the read after it has its own
/// `LIMIT` (before, it returned no row, the pin stayed and the server
/// answered ROW_COUNT() -1 and FOUND_ROWS() 0, the read's own, where
/// direct says 2 and 1; the other client got ERR 9001).
#[test]
fn stateless_procedures_read_back_under_sql_select_limit_zero() {
    let steps: &[(usize, &str)] = &[
        (0, "SET sql_select_limit = 0"),
        (0, "CALL add_two(1)"),
        (0, "SELECT LAST_INSERT_ID(), ROW_COUNT(), FOUND_ROWS() LIMIT 1"),
        (1, "CALL add_item(5)"),
        (0, "SELECT v FROM items LIMIT 5"),
        (0, "SET sql_select_limit = DEFAULT"),
    ];
    let (direct, through, unpinned) = both_ways(steps, 1);
    assert_same(steps, &direct, &through);
    assert_eq!(unpinned, 2);
}

/// `SET autocommit = 1` that commits the transaction of a `CALL` made with
/// autocommit off pins for the next transaction (its characteristics stay,
/// see `settle`); the `CALL`'s pins end with that one. Before, that pin
/// kept the `CALL`'s for the session's life: the other client got ERR 9001.
#[test]
fn stateless_procedures_end_after_autocommit_back_on() {
    let steps: &[(usize, &str)] = &[
        (0, "SET autocommit = 0"),
        (0, "CALL add_item(1)"),
        (0, "SET autocommit = 1"),
        (0, "SELECT LAST_INSERT_ID(), ROW_COUNT()"),
        (0, "BEGIN"),
        (0, "INSERT INTO items (v) VALUES (2)"),
        (0, "COMMIT"),
        (1, "CALL add_item(3)"),
        (0, "SELECT LAST_INSERT_ID(), ROW_COUNT(), FOUND_ROWS()"),
        (1, "SELECT COUNT(*) FROM items"),
    ];
    let (direct, through, unpinned) = both_ways(steps, 1);
    assert_same(steps, &direct, &through);
    assert_eq!(unpinned, 2);
}

/// A `CALL` inside an XA transaction gives the connection back once the
/// transaction ends, as in a plain one; a failed `CALL` under the
/// session's `SET autocommit = 0` (where the ERR leaves it unknown whether
/// a transaction began) keeps it until the `COMMIT`.
#[test]
fn stateless_procedures_in_xa_and_failed_with_autocommit_off() {
    let steps: &[(usize, &str)] = &[
        (1, "XA START 'x'"),
        (1, "CALL add_item(1)"),
        (1, "XA END 'x'"),
        (1, "SHOW WARNINGS"),
        (1, "XA PREPARE 'x'"),
        (1, "XA COMMIT 'x'"),
        (1, "SELECT LAST_INSERT_ID(), ROW_COUNT()"),
        (2, "CALL add_item(2)"),
        (0, "SET autocommit = 0"),
        (0, "CALL check_qty(-1)"),
        (0, "SHOW WARNINGS"),
        (0, "CALL add_item(3)"),
        (0, "COMMIT"),
        (1, "CALL add_item(4)"),
        (0, "SELECT LAST_INSERT_ID(), ROW_COUNT()"),
        (0, "SET autocommit = 1"),
        (1, "SELECT COUNT(*) FROM items"),
    ];
    let (direct, through, unpinned) = both_ways(steps, 1);
    assert_same(steps, &direct, &through);
    assert_eq!(unpinned, 5);
}

/// A prepared `CALL` runs in the schema it was prepared in (executed
/// after `USE information_schema`, it is still the listed procedure), with
/// an `OUT` parameter too, and `COM_RESET_CONNECTION` after one leaves the
/// client's counts as a direct connection's.
#[test]
fn stateless_procedures_prepared_across_schemas_and_resets() {
    let steps: &[(usize, &str)] = &[
        (0, "PSNULL:CALL add_item(?)"),
        (0, "USE information_schema"),
        (0, "PSNULL:CALL add_item(?)"),
        (0, "SELECT LAST_INSERT_ID(), ROW_COUNT(), FOUND_ROWS()"),
        (1, "CALL add_item(3)"),
        (0, "PSNULL:CALL add_item(?)"),
        (0, "RESET"),
        (
            0,
            "SELECT LAST_INSERT_ID(), ROW_COUNT(), FOUND_ROWS(), DATABASE()",
        ),
        (1, "PSNULL:CALL out_param(?)"),
        (1, "SELECT LAST_INSERT_ID(), ROW_COUNT(), FOUND_ROWS()"),
        (2, "CALL add_two(9)"),
        (1, "PSNULL:CALL out_param(?)"),
        (2, "SELECT LAST_INSERT_ID(), ROW_COUNT(), FOUND_ROWS()"),
        (1, "SELECT COUNT(*) FROM items"),
        (2, "CALL add_item(1)"),
    ];
    let (direct, through, unpinned) = both_ways(steps, 1);
    assert_same(steps, &direct, &through);
    assert_eq!(unpinned, 8);
}

/// A `SELECT SQL_CALC_FOUND_ROWS` in the transaction of a `CALL` (its
/// count is left to the server in a pinned session) leaves the `CALL`'s
/// claim to give the connection back at the transaction's end, and the
/// read then takes the count too, also after a `CALL` the count could not
/// be given before (warnings of a failed statement on the connection).
/// Before, it pinned the session for life: the other clients got ERR 9001.
#[test]
fn stateless_procedures_end_after_calc_found_rows_in_their_transaction() {
    let steps: &[(usize, &str)] = &[
        (0, "INSERT INTO items (v) VALUES (1), (2), (3)"),
        (0, "SET autocommit = 0"),
        (0, "CALL add_item(4)"),
        (0, "SELECT SQL_CALC_FOUND_ROWS v FROM items ORDER BY id LIMIT 1"),
        (0, "COMMIT"),
        (1, "CALL add_item(5)"),
        (0, "SELECT FOUND_ROWS(), ROW_COUNT(), LAST_INSERT_ID()"),
        (0, "SELECT COUNT(*) FROM items"),
        (0, "COMMIT"),
        (2, "CALL add_item(6)"),
        (0, "BEGIN"),
        (0, "SELECT nosuch"),
        (0, "CALL warns()"),
        (0, "SELECT SQL_CALC_FOUND_ROWS v FROM items ORDER BY id LIMIT 2"),
        (0, "COMMIT"),
        (0, "SELECT FOUND_ROWS(), ROW_COUNT(), LAST_INSERT_ID()"),
        (0, "COMMIT"),
        (1, "CALL add_item(7)"),
        (0, "SET autocommit = 1"),
    ];
    let (direct, through, unpinned) = both_ways(steps, 1);
    assert_same(steps, &direct, &through);
    assert_eq!(unpinned, 5);
}

/// What the read after a `CALL` does not cover keeps the pin it made: a
/// sequence's last value taken in the `CALL`'s transaction
/// (`PREVIOUS VALUE FOR`) stays with its client after the `COMMIT`.
#[test]
fn stateless_procedures_keep_a_sequence_value_taken_in_their_transaction() {
    let steps: &[(usize, &str)] = &[
        (0, "CREATE SEQUENCE sq"),
        (0, "BEGIN"),
        (0, "CALL add_item(1)"),
        (0, "SELECT NEXTVAL(sq)"),
        (0, "COMMIT"),
        (0, "SELECT PREVIOUS VALUE FOR sq, LAST_INSERT_ID()"),
    ];
    let (direct, through, unpinned) = both_ways(steps, 3);
    assert_same(steps, &direct, &through);
    assert_eq!(unpinned, 0);
}

/// A `KILL QUERY` of a `CALL` (from another client, here while the
/// procedure sleeps: the `CALL` ends with the interruption as a condition)
/// leaves what a direct connection leaves, and the `CALL` still gives its
/// connection back. Two backend connections: the killer's login needs one.
#[test]
fn stateless_procedures_killed_call() {
    let steps: &[(usize, &str)] = &[
        (0, "CALL add_item(1)"),
        (1, "KILLQ:500:CALL slow()"),
        (1, "SHOW WARNINGS"),
        (1, "SELECT LAST_INSERT_ID(), ROW_COUNT(), FOUND_ROWS()"),
        (2, "CALL add_item(2)"),
        (0, "CALL add_item(3)"),
        (1, "SELECT COUNT(*) FROM items"),
        (1, "SELECT LAST_INSERT_ID(), ROW_COUNT(), FOUND_ROWS()"),
    ];
    let (direct, through, unpinned) = both_ways(steps, 2);
    assert_same(steps, &direct, &through);
    assert_eq!(unpinned, 4);
}

/// `COM_CHANGE_USER` right after a `CALL` that warned (its connection
/// lingering) or inside a `CALL`'s transaction, and `COM_RESET_CONNECTION`
/// after one, leave what a direct connection's do, and the next `CALL`s
/// still give their connection back.
#[test]
fn stateless_procedures_change_user_and_reset_after_a_call() {
    let steps: &[(usize, &str)] = &[
        (0, "CALL warns()"),
        (0, "CHANGE_USER"),
        (0, "SHOW WARNINGS"),
        (
            0,
            "SELECT LAST_INSERT_ID(), ROW_COUNT(), FOUND_ROWS(), DATABASE() IS NOT NULL",
        ),
        (1, "BEGIN"),
        (1, "CALL add_item(1)"),
        (1, "CHANGE_USER"),
        (1, "SELECT @@in_transaction, LAST_INSERT_ID(), ROW_COUNT()"),
        (2, "CALL add_item(2)"),
        (1, "CALL add_item(3)"),
        (1, "RESET"),
        (2, "CALL add_item(4)"),
        (1, "SELECT COUNT(*) FROM items"),
    ];
    let (direct, through, unpinned) = both_ways(steps, 1);
    assert_same(steps, &direct, &through);
    assert_eq!(unpinned, 4);
}
