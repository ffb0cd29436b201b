//! Differential test of session correctness: seeded random scripts of
//! session-state statements, run once per client on its own direct MariaDB
//! connection and once through Funnel, where all clients run at the same
//! time over a pool of two backend connections per core, so sessions move
//! between connections all the time. Every statement must answer the same
//! both ways: rows, column metadata, affected rows, insert id, warnings,
//! info, error code and message. Besides plain statements, the scripts run
//! stored code (triggers, functions) that changes session state behind
//! the statement's text, which Funnel learns of only from the server's
//! state-change report, and read that state from every client.
//!
//! `FUNNEL_DIFF_SEED=n` runs from seed n (printed on failure),
//! `FUNNEL_DIFF_ITERATIONS=n` runs n seeds (a soak), `FUNNEL_DIFF_CLIENTS`
//! and `FUNNEL_DIFF_OPS` size each seed's scripts, `FUNNEL_DIFF_PRINT=1`
//! prints every script. `FUNNEL_DIFF_MORE=n` picks the step families
//! (the scripts seeds made before a family was added): `0` only [`ops`],
//! `1` adds [`more_op`] (more tracked variables, typed user variables,
//! `COM_CHANGE_USER`), `2` [`extra_op`] (SQL prepared statements,
//! procedures, sequences, `HANDLER`, diagnostics, `COM_PING`), `3`
//! [`session_ops`] (XA, transaction characteristics, character sets,
//! table locks, DDL under prepared statements), `4` [`mode_ops`]
//! (`sql_mode`s that change how a query is read: `ORACLE`, `MSSQL`,
//! `ANSI_QUOTES`, `NO_BACKSLASH_ESCAPES`, ..., and statements whose reading
//! depends on them), and `5`, the default, [`call_ops`] (`CALL`s of
//! procedures Funnel's side lists in `stateless_procedures`, and what the
//! client reads after them).
//!
//! [`differential_minimise`] (ignored: a tool) shrinks a failing client's
//! script to the steps the difference needs:
//! `FUNNEL_DIFF_MINIMISE=seed:client:step cargo test -p funnel --test
//! differential differential_minimise -- --ignored --nocapture`, with the
//! failing run's `FUNNEL_DIFF_MORE`, `_CLIENTS` and `_OPS`.
//!
//! [`differential_causal_reads_match_direct_writer`] runs the same scripts
//! through the read/write split with `causal_reads` (a writer and a
//! read-only GTID replica of it) against direct connections to the writer;
//! the same variables size it (two seeds by default;
//! `FUNNEL_DIFF_CAUSAL=universal` runs it with `causal_reads: universal`). It excuses, and
//! prints and counts, one documented difference only: a replica read's
//! warnings let go at a statement that goes to a writer, as the script's
//! steps show it ([`replica_warnings`]; `FUNNEL_DIFF_WALK=1` prints the
//! filter's view of a client whose difference it did not excuse).

use std::fmt::Write as _;
use std::sync::Once;
use std::thread;
use std::time::Instant;

use funnel_config::Config;
use funnel_engine::Proxy;
use funnel_testkit::MariaDb;
use funnel_testkit::SeededRng as Rng;
use mysql::prelude::Queryable;
use mysql::{Conn, OptsBuilder};

#[path = "differential/replica_warnings.rs"]
mod replica_warnings;

/// Seeds the default run covers: fixed, so CI is deterministic.
const DEFAULT_SEED: u64 = 1;
const DEFAULT_ITERATIONS: u64 = 10;
const DEFAULT_CLIENTS: usize = 12;
const DEFAULT_OPS: usize = 70;

/// One step of a client's script. SQL may name `{a}` and `{b}` (the
/// client's two schemas) and `{lk}` (its named lock), filled in per run.
#[derive(Clone, Debug)]
enum Op {
    /// A text-protocol query (`COM_QUERY`), possibly several statements.
    Query(String),
    /// A binary-protocol prepared statement (`COM_STMT_PREPARE` once per
    /// connection, by the driver's cache, then `COM_STMT_EXECUTE`).
    Exec(String),
    /// [`Op::Exec`] with one integer parameter for the statement's `?`.
    ExecArg(String, i64),
    /// `COM_STMT_PREPARE` alone, then `COM_STMT_CLOSE` (which has no
    /// reply): answers with the statement's parameter count and columns.
    Prepare(String),
    /// `COM_INIT_DB` of one of the client's schemas.
    InitDb(&'static str),
    /// `COM_RESET_CONNECTION`.
    Reset,
    /// `COM_CHANGE_USER` to the same user and schema: a new session on the
    /// same client connection.
    ChangeUser,
    /// Disconnect and log in again: a new session.
    Reconnect,
    /// `COM_PING`.
    Ping,
    /// The client waits this many milliseconds (past Funnel's linger).
    Sleep(u64),
}

impl std::fmt::Display for Op {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Op::Query(sql) => write!(f, "{sql}"),
            Op::Exec(sql) => write!(f, "EXEC {sql}"),
            Op::ExecArg(sql, arg) => write!(f, "EXEC {sql} <- {arg}"),
            Op::Prepare(sql) => write!(f, "PREPARE {sql}"),
            Op::InitDb(db) => write!(f, "COM_INIT_DB {db}"),
            Op::Reset => write!(f, "COM_RESET_CONNECTION"),
            Op::ChangeUser => write!(f, "COM_CHANGE_USER"),
            Op::Reconnect => write!(f, "(reconnect)"),
            Op::Ping => write!(f, "COM_PING"),
            Op::Sleep(ms) => write!(f, "(sleep {ms} ms)"),
        }
    }
}

const TIME_ZONES: &[&str] = &["'+00:00'", "'+05:30'", "'-03:00'", "'SYSTEM'", "DEFAULT"];
const SQL_MODES: &[&str] = &[
    "''",
    "'STRICT_ALL_TABLES'",
    "'ANSI_QUOTES,PIPES_AS_CONCAT'",
    "'TRADITIONAL'",
    "'NO_BACKSLASH_ESCAPES'",
    "DEFAULT",
    "CONCAT(@@sql_mode, ',PIPES_AS_CONCAT')",
    "(SELECT REPLACE(@@sql_mode, 'STRICT_TRANS_TABLES', ''))",
    "REPLACE(@@sql_mode, 'ANSI_QUOTES', '')",
];
const CHARSET_SETS: &[&str] = &[
    "SET NAMES utf8mb4",
    "SET NAMES latin1",
    "SET NAMES utf8mb4 COLLATE utf8mb4_unicode_ci",
    "SET NAMES utf8mb4 COLLATE utf8mb4_bin",
    "SET NAMES utf8mb4 COLLATE utf8mb4_uca1400_ai_ci",
    "SET character_set_results = latin1",
    "SET character_set_results = utf8mb4",
    "SET collation_connection = utf8mb4_bin",
    // Not `SET CHARACTER SET`: it copies @@character_set_database, which
    // a direct connection's COM_RESET_CONNECTION leaves at the server's
    // default while Funnel's connections have their schema's
    // (docs/multiplexing.md, known limits).
];
const ISOLATION_SETS: &[&str] = &[
    "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED",
    "SET SESSION TRANSACTION ISOLATION LEVEL SERIALIZABLE",
    "SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ",
    "SET SESSION TRANSACTION READ ONLY",
    "SET SESSION TRANSACTION READ WRITE",
    "SET TRANSACTION ISOLATION LEVEL READ UNCOMMITTED",
    "SET TRANSACTION READ ONLY",
    "SET tx_isolation = 'READ-COMMITTED'",
];
const TRANSACTION: &[&str] = &[
    "BEGIN",
    "START TRANSACTION",
    "START TRANSACTION READ ONLY",
    "COMMIT",
    "COMMIT",
    "ROLLBACK",
    "ROLLBACK",
    "SAVEPOINT s1",
    "ROLLBACK TO SAVEPOINT s1",
    "RELEASE SAVEPOINT s1",
    "COMMIT AND CHAIN",
];
const WRITES: &[&str] = &[
    "INSERT INTO t (v, s) VALUES (1, 'a')",
    "INSERT INTO t (v, s) VALUES (2, 'b'), (3, 'c')",
    "INSERT INTO t (v, s) VALUES (4, 'much too long')",
    // Not `INSERT ... SELECT`: the server counts its rows for FOUND_ROWS(),
    // Funnel does not (docs/multiplexing.md, known limits).
    "INSERT INTO k VALUES (2, 0)",
    "INSERT INTO k VALUES (7, 0)",
    "INSERT IGNORE INTO k VALUES (1, 0)",
    "UPDATE t SET v = v + 1 WHERE id <= 3",
    "UPDATE t SET v = v WHERE id = 1",
    "UPDATE k SET v = v + 1",
    "DELETE FROM t WHERE id = 2",
    "DELETE FROM k WHERE id = 7",
];
const PREVIOUS_STATEMENT: &[&str] = &[
    "SELECT LAST_INSERT_ID()",
    "SELECT ROW_COUNT()",
    "SELECT LAST_INSERT_ID(), ROW_COUNT(), FOUND_ROWS()",
    "SELECT @@identity, @@last_insert_id",
    "SELECT SQL_CALC_FOUND_ROWS id, v FROM t ORDER BY id LIMIT 2",
    "SELECT FOUND_ROWS()",
    "SELECT id FROM t ORDER BY id LIMIT 1",
    "SELECT last_insert_id( );",
];
const WARNINGS: &[&str] = &[
    "SELECT CAST('12abc' AS SIGNED)",
    "SELECT 1/0",
    "DO CAST('x' AS SIGNED)",
    "SHOW WARNINGS",
    "SHOW WARNINGS",
    "SELECT @@warning_count",
    "SHOW ERRORS",
    "SELECT @@error_count, @@warning_count",
    "SHOW COUNT(*) WARNINGS",
];
const READS: &[&str] = &[
    "SELECT @@time_zone, @@sql_mode",
    "SELECT @@character_set_client, @@character_set_connection, @@collation_connection, @@character_set_results",
    "SELECT @@tx_isolation, @@tx_read_only",
    "SELECT @@autocommit, @@in_transaction",
    "SELECT DATABASE()",
    "SELECT FROM_UNIXTIME(1600000000)",
    "SELECT UNIX_TIMESTAMP('2020-06-01 12:00:00')",
    "SELECT CONVERT_TZ('2020-01-01 00:00:00', '+00:00', @@time_zone)",
    "SELECT 'a' = 'A', 'é' = 'e', 'ß' = 'ss'",
    "SELECT 'a' || 'b'",
    "SELECT \"x\"",
    "SELECT CHARSET('x'), COLLATION('x'), 'é' AS e",
    "SELECT id, v, s FROM t ORDER BY id",
    "SELECT COUNT(*), SUM(v) FROM t",
    "SELECT s FROM w ORDER BY s, HEX(s)",
    "SELECT id, v FROM k ORDER BY id",
];
const PREPARED: &[&str] = &[
    "SELECT @@time_zone, @@sql_mode",
    "SELECT @@autocommit, @@in_transaction",
    "SELECT FROM_UNIXTIME(1600000000)",
    "SELECT id, v FROM t ORDER BY id",
    // Not a comparison of literals (`'a' = 'A'`): their collation is the
    // prepare's, and a session pinned with variables Funnel did not track
    // prepares again under the current ones (docs/multiplexing.md).
    "SELECT @@collation_connection, @@character_set_results",
    "INSERT INTO t (v, s) VALUES (7, 'p')",
    "SELECT LAST_INSERT_ID()",
    "SELECT nosuch FROM t",
    "UPDATE t SET v = v + 1 WHERE id = 1",
];
const ERRORS: &[&str] = &[
    "SELEC 1",
    "SELECT * FROM nosuch",
    "USE nosuch_schema",
    // Its first statement opens a table: the server clears the warnings
    // before it, as Funnel assumes of every multi-statement query but SETs
    // (docs/multiplexing.md, known limits).
    "SELECT v FROM k WHERE id = 1; SELECT 2",
    "INSERT INTO t (v, s) VALUES (5, 'm'); SELECT LAST_INSERT_ID()",
    "SET NAMES latin1; SET time_zone = '+02:00'",
    "SET STATEMENT max_statement_time = 100 FOR SELECT @@time_zone",
];
const PINS: &[&str] = &[
    "SET @u = 5",
    "SELECT @u",
    "CREATE TEMPORARY TABLE tmp (x INT)",
    "INSERT INTO tmp VALUES (1)",
    "SELECT COUNT(*) FROM tmp",
    "SELECT GET_LOCK('{lk}', 0)",
    "SELECT RELEASE_LOCK('{lk}')",
    "SELECT IS_USED_LOCK('{lk}') IS NOT NULL",
    "LOCK TABLES t WRITE",
    "UNLOCK TABLES",
];

/// Stored code that changes session state the statement's text does not
/// show: the per-client table `tr`'s `BEFORE INSERT` trigger sets `@trig`
/// (and `time_zone` for a `v` of 100 or more), the functions of
/// [`STORED_CODE`] set `@fx`, `time_zone`, `sql_mode` and
/// `div_precision_increment`. A function of another schema changes
/// nothing, but the server reports its switch to the function's schema
/// and back as a state change too. Funnel pins the client on the server's
/// state-change report (`untracked_state`). Only statements that cannot
/// fail once the code ran: an error drops the report, and `SET STATEMENT`
/// or a lock wait option beside a function hides it (docs/multiplexing.md,
/// known limits). They fail, if at all, before (a read-only transaction,
/// `LOCK TABLES t WRITE`).
const STATE_WRITERS: &[&str] = &[
    "INSERT INTO tr (v) VALUES (1)",
    "INSERT INTO tr (v) VALUES (2), (3)",
    "INSERT INTO tr (v) VALUES (100)",
    "SELECT f_fx(3)",
    "DO f_fx(4)",
    "SELECT f_tz()",
    "SELECT f_mode(), @@sql_mode",
    "SELECT f_div(), 1/3",
    "SELECT id, f_fx(id) FROM t ORDER BY id",
    "UPDATE k SET v = f_fx(v) WHERE id = 1",
    "BEGIN; INSERT INTO tr (v) VALUES (5); COMMIT",
    // A multi-statement query's first statement opens a table (see ERRORS):
    // one that opened none and pinned (here for the function's report)
    // would show another client's warnings to SHOW WARNINGS (soak seed
    // 21016).
    "SELECT v, f_fx(6) FROM k WHERE id = 1; SELECT @fx",
    "SELECT df_sp.f_sq(3)",
    "SELECT COUNT(*) FROM tr; INSERT INTO tr (v) VALUES (7); SELECT @trig",
    // A SET that calls a function pins for the SET itself.
    "SET @y = f_fx(2)",
    "SET time_zone = f_tz()",
    "SET @@session.div_precision_increment = f_fx(3)",
];
const PREPARED_STATE_WRITERS: &[&str] = &[
    "SELECT f_fx(8)",
    "INSERT INTO tr (v) VALUES (9)",
    "INSERT INTO tr (v) VALUES (101)",
    "SELECT f_tz()",
    "SELECT f_div()",
    // Not a variable any step reads: preparing a SET creates its variable
    // (a NULL string of the connection's collation) on the connection it
    // is prepared on, which Funnel gives back to the pool, and another
    // client's `SELECT @yp` would show that type.
    "SET @yp = f_fx(10)",
];
/// What the writers change, read by the client itself or by one that
/// never ran them (and must not see another client's values); plain
/// tracked `SET`s of the same names.
const STATE_READS: &[&str] = &[
    "SELECT @trig, @fx",
    "SELECT @trig, @@time_zone, @y",
    "SELECT @@div_precision_increment, 1/3",
    "SELECT @@sql_mode, @@time_zone, FROM_UNIXTIME(0)",
    "SET @trig = 0",
    "SET @fx = 'x'",
];
/// Stored code that only reads session state: it must not pin, and it
/// must read the client's own values.
const STATE_READERS: &[&str] = &[
    "SELECT f_read()",
    "SELECT f_sq(v) FROM k ORDER BY id",
    "UPDATE ts SET s = NULL",
    "SELECT id, v, s FROM tr ORDER BY id",
    "SELECT s FROM ts",
];
const PREPARED_STATE_READERS: &[&str] = &[
    "SELECT f_read()",
    "UPDATE ts SET s = 'p'",
    "SELECT @trig, @fx, @@time_zone, @@div_precision_increment",
];

/// Statements that assign user variables, prepared (and closed) without
/// an execute or prepared and executed: MariaDB creates a variable a
/// statement assigns when it prepares it (not `SELECT ... INTO`'s), on
/// whatever connection Funnel prepared it on, and another client reading
/// the name there must still see it as never set.
const VAR_PREPARES: &[&str] = &[
    "SET @y = ?",
    "SET @y = 5",
    "SET @y = 'lit'",
    "SET @w = ?, @t = NULL",
    "SELECT v, @w := v + 1 FROM t ORDER BY id",
    "SELECT v INTO @t FROM t ORDER BY id LIMIT 1",
    "SELECT v INTO @t FROM t",
    "SELECT @y, @w, @t",
];
/// Reads of what [`VAR_PREPARES`] assigns, by any client.
const VAR_READS: &[&str] = &["SELECT @y, @w, @t", "SELECT @y", "SELECT @w, @t, @y IS NULL"];

/// The functions of [`STATE_WRITERS`] and [`STATE_READERS`] (and the
/// procedures of [`EXTRA`]), created in
/// both of each client's schemas (a function of the current schema runs
/// without a schema switch, which the server would report).
const STORED_CODE: &[&str] = &[
    "CREATE FUNCTION f_fx(n INT) RETURNS INT DETERMINISTIC BEGIN SET @fx = n; RETURN n; END",
    "CREATE FUNCTION f_tz() RETURNS VARCHAR(64) DETERMINISTIC \
     BEGIN SET SESSION time_zone = '+07:00'; RETURN @@time_zone; END",
    "CREATE FUNCTION f_mode() RETURNS VARCHAR(200) DETERMINISTIC \
     BEGIN SET SESSION sql_mode = 'PIPES_AS_CONCAT'; RETURN @@sql_mode; END",
    "CREATE FUNCTION f_div() RETURNS INT DETERMINISTIC \
     BEGIN SET @@session.div_precision_increment = 2, @fx = 'div'; RETURN 1; END",
    "CREATE FUNCTION f_read() RETURNS VARCHAR(200) DETERMINISTIC \
     RETURN CONCAT_WS('|', @trig, @fx, @@time_zone, @@div_precision_increment)",
    "CREATE FUNCTION f_sq(n INT) RETURNS INT DETERMINISTIC RETURN n * n",
    "CREATE PROCEDURE p_li() SELECT LAST_INSERT_ID(), @@time_zone",
    "CREATE PROCEDURE p_tz() BEGIN SET time_zone = '+03:00'; SELECT @@time_zone; END",
    "CREATE PROCEDURE p_ins() BEGIN INSERT INTO t (v, s) VALUES (9, 'c'); SELECT LAST_INSERT_ID(); END",
];

/// One random step, weighted towards what moves session state; now and
/// then a short sequence of steps.
fn ops(rng: &mut Rng) -> Vec<Op> {
    let q = |s: &str| Op::Query(s.to_owned());
    match rng.below(116) {
        108..=111 => {
            let sql = rng.pick(VAR_PREPARES).to_owned();
            vec![match rng.below(3) {
                0 => Op::Prepare(sql),
                _ if sql.contains('?') => Op::ExecArg(sql, rng.below(100) as i64),
                _ => Op::Exec(sql),
            }]
        }
        112..=113 => {
            let sql = rng.pick(VAR_READS);
            vec![match rng.below(3) {
                0 => Op::Exec(sql.to_owned()),
                1 => q("SELECT @w := 7, @y"),
                _ => q(sql),
            }]
        }
        114..=115 => schema_left_sequence(rng),
        _ => vec![op(rng)],
    }
}

/// A pinned session executes a statement prepared in the schema it then
/// left, and reads `ROW_COUNT()` after: the server runs the execute in the
/// statement's schema and goes back to the session's without a statement
/// of its own.
fn schema_left_sequence(rng: &mut Rng) -> Vec<Op> {
    let q = |s: &str| Op::Query(s.to_owned());
    let (here, there) = if rng.below(2) == 0 {
        ("{a}", "{b}")
    } else {
        ("{b}", "{a}")
    };
    let stmt = rng.pick(&[
        "SELECT id, v FROM t ORDER BY id",
        "SELECT @@time_zone, @@sql_mode",
        "UPDATE t SET v = v + 1 WHERE id = 1",
        "SELECT COUNT(*) FROM k",
        "SET @y = 5",
    ]);
    let pin = match rng.below(4) {
        0 => Op::Exec("SELECT CONNECTION_ID() > 0".to_owned()),
        1 => q("SELECT GET_LOCK('{lk}', 0)"),
        2 => q("CREATE TEMPORARY TABLE IF NOT EXISTS tmp (x INT)"),
        _ => q("SET @u = 5"),
    };
    let mut ops = vec![q(&format!("USE {here}"))];
    if rng.below(2) == 0 {
        ops.push(Op::Exec(stmt.to_owned()));
        ops.push(pin);
    } else {
        ops.push(pin);
        ops.push(Op::Exec(stmt.to_owned()));
    }
    ops.push(if rng.below(2) == 0 {
        q(&format!("USE {there}"))
    } else {
        Op::InitDb(there)
    });
    ops.push(Op::Exec(stmt.to_owned()));
    ops.push(q(rng.pick(&[
        "SELECT ROW_COUNT()",
        "SELECT ROW_COUNT(), DATABASE()",
        "SELECT LAST_INSERT_ID(), ROW_COUNT()",
    ])));
    ops
}

/// One random step, weighted towards what moves session state.
fn op(rng: &mut Rng) -> Op {
    let q = |s: &str| Op::Query(s.to_owned());
    match rng.below(108) {
        0..=5 => {
            let scope = rng.pick(&["", "SESSION ", "@@session."]);
            Op::Query(format!("SET {scope}time_zone = {}", rng.pick(TIME_ZONES)))
        }
        6..=11 => Op::Query(format!("SET sql_mode = {}", rng.pick(SQL_MODES))),
        12..=17 => q(rng.pick(CHARSET_SETS)),
        18 => q("SET NAMES utf8mb4 COLLATE utf8mb4_unicode_ci, \
                 @@SESSION.sql_mode = CONCAT(CONCAT(@@sql_mode, ',STRICT_ALL_TABLES'), ',NO_AUTO_VALUE_ON_ZERO'), \
                 @@SESSION.sql_auto_is_null = 0"),
        19..=21 => q(rng.pick(&["SET autocommit = 0", "SET autocommit = 1", "SET autocommit = ON"])),
        22..=24 => q(rng.pick(ISOLATION_SETS)),
        25..=27 => match rng.below(3) {
            0 => q("USE {a}"),
            1 => q("USE {b}"),
            _ => Op::InitDb(rng.pick(&["{a}", "{b}"])),
        },
        28..=35 => q(rng.pick(TRANSACTION)),
        36..=47 => q(rng.pick(WRITES)),
        48..=56 => q(rng.pick(PREVIOUS_STATEMENT)),
        57..=64 => q(rng.pick(WARNINGS)),
        65..=76 => q(rng.pick(READS)),
        77..=84 => Op::Exec(rng.pick(PREPARED).to_owned()),
        85..=88 => q(rng.pick(ERRORS)),
        89..=94 => q(rng.pick(PINS)),
        95..=97 => Op::Reset,
        98..=99 => Op::Reconnect,
        100..=102 => match rng.below(4) {
            0 => Op::Exec(rng.pick(PREPARED_STATE_WRITERS).to_owned()),
            _ => q(rng.pick(STATE_WRITERS)),
        },
        103..=105 => q(rng.pick(STATE_READS)),
        _ => match rng.below(3) {
            0 => Op::Exec(rng.pick(PREPARED_STATE_READERS).to_owned()),
            _ => q(rng.pick(STATE_READERS)),
        },
    }
}

/// More tracked session variables (flag lists, aliases, variables that
/// change what a read answers) and user variables of every value type,
/// with reads of them, text and prepared; now and then a
/// `COM_CHANGE_USER`.
const MORE_VARS: &[&str] = &[
    "SET optimizer_switch = 'mrr=on'",
    "SET optimizer_switch = 'index_merge=off,mrr=off'",
    "SET optimizer_switch = 'default,mrr=on'",
    "SET optimizer_switch = DEFAULT",
    "SET max_join_size = 1000",
    // An alias MariaDB 10.11 does not have yet: an ERR on both sides.
    "SET sql_max_join_size = 2000",
    "SET max_join_size = DEFAULT",
    "SET tmp_table_size = 1048576",
    "SET tmp_memory_table_size = 2097152",
    "SET group_concat_max_len = 5",
    "SET group_concat_max_len = DEFAULT",
    "SET sql_select_limit = 1",
    "SET sql_select_limit = DEFAULT",
    "SET lc_time_names = 'de_DE'",
    "SET lc_time_names = DEFAULT",
    "SET div_precision_increment = 8",
    "SET old_mode = ''",
    "SET old_mode = DEFAULT",
    "SET sql_safe_updates = 1",
    "SET sql_safe_updates = 0",
    "SET max_statement_time = 5",
    "SET @s = 'str', @d = 1.5",
    "SET @d = 1e3, @n = NULL",
    "SET @i = -9223372036854775808, @s = x'41'",
    "SET @s = CONCAT('a', @@time_zone)",
    "SET @d = 18446744073709551615",
    "SET time_zone = '+01:00', @s = 'tz', sql_select_limit = 2",
    "SET STATEMENT sql_select_limit = 1 FOR SELECT id FROM t ORDER BY id",
    // Variables that pin (replication, the last insert id).
    "SET timestamp = 1600000000",
    "SET timestamp = DEFAULT",
    "SET sql_auto_is_null = 1",
    "SET sql_auto_is_null = 0",
    "SET insert_id = 50",
    // Under `sql_auto_is_null`, `WHERE id IS NULL` reads the row of the
    // connection's last insert: only right after an insert in the same
    // query, which runs on the connection the read does. An insert made
    // before the pin ran elsewhere, and the server's flag for it cannot
    // be set (docs/multiplexing.md, known limits; seeds 90243, 90677).
    "INSERT INTO t (v, s) VALUES (8, 'n'); SELECT id FROM t WHERE id IS NULL",
    "SELECT LAST_INSERT_ID(42)",
];
const MORE_READS: &[&str] = &[
    "SELECT @@optimizer_switch",
    "SELECT @@max_join_size, @@sql_big_selects",
    "SELECT @@tmp_table_size, @@tmp_memory_table_size",
    "SELECT GROUP_CONCAT(s ORDER BY s, HEX(s)) FROM w",
    "SELECT id FROM t ORDER BY id",
    "SELECT DATE_FORMAT('2020-01-01', '%W %M'), @@lc_time_names",
    "SELECT 1/7, @@div_precision_increment",
    "SELECT CHARSET(CONVERT('x' USING utf8)), @@old_mode",
    "SELECT @@sql_safe_updates, @@max_statement_time, @@sql_select_limit",
    "SELECT @s, @d, @n, @i",
    "SELECT @s, @d + 1, CONCAT(@i, @s)",
    "SELECT @@timestamp > 1600000001, @@sql_auto_is_null, @@insert_id",
    // A backslash, which NO_BACKSLASH_ESCAPES makes a plain character.
    "SELECT 'a\\b', LENGTH('a\\b'), @@sql_mode",
];

/// One step of [`MORE_VARS`] and [`MORE_READS`].
fn more_op(rng: &mut Rng) -> Op {
    match rng.below(9) {
        0..=3 => Op::Query(rng.pick(MORE_VARS).to_owned()),
        4..=6 => Op::Query(rng.pick(MORE_READS).to_owned()),
        7 => Op::Exec(rng.pick(MORE_READS).to_owned()),
        _ => Op::ChangeUser,
    }
}

/// Session features the other steps do not reach: SQL prepared
/// statements and `EXECUTE IMMEDIATE`, procedures, sequences,
/// `GET DIAGNOSTICS`, `HANDLER`, a temporary table that hides a table,
/// lock wait options, `SET LOCAL` and `@@local.`, `SHOW VARIABLES`,
/// `:=` assignments, a `NULL` result charset, `COM_PING`.
const EXTRA: &[&str] = &[
    "PREPARE ps FROM 'SELECT id, v FROM t ORDER BY id'",
    "PREPARE ps FROM 'SELECT @@time_zone, ? + 1'",
    "EXECUTE ps USING 4",
    "EXECUTE ps",
    "DEALLOCATE PREPARE ps",
    "EXECUTE IMMEDIATE 'SELECT @@sql_mode, ?' USING 3",
    "EXECUTE IMMEDIATE 'INSERT INTO t (v, s) VALUES (6, ''i'')'",
    "CALL p_li()",
    "CALL p_tz()",
    "CALL p_ins()",
    "SELECT NEXTVAL(sq)",
    "SELECT LASTVAL(sq), PREVIOUS VALUE FOR sq",
    "SELECT SETVAL(sq, 50)",
    "GET DIAGNOSTICS @gn = NUMBER",
    "GET DIAGNOSTICS CONDITION 1 @ge = MYSQL_ERRNO",
    "SELECT @gn, @ge",
    "HANDLER t OPEN",
    "HANDLER t READ FIRST",
    "HANDLER t READ NEXT",
    "HANDLER t CLOSE",
    "CREATE TEMPORARY TABLE k (id INT PRIMARY KEY, v INT, w INT DEFAULT 3)",
    "DROP TEMPORARY TABLE IF EXISTS k",
    "SELECT * FROM k ORDER BY id",
    "SELECT id FROM t WHERE id = 1 FOR UPDATE NOWAIT",
    "SELECT v FROM k WHERE id = 1 LOCK IN SHARE MODE WAIT 2",
    "SET LOCAL time_zone = '+04:00'",
    "SET @@local.sql_mode = 'ANSI_QUOTES'",
    "SELECT @@local.time_zone, @@session.sql_mode",
    "SHOW SESSION VARIABLES LIKE 'time_zone'",
    "SHOW VARIABLES WHERE Variable_name IN ('sql_mode', 'autocommit', 'character_set_results')",
    "SET @u := 6",
    "SELECT @u := IFNULL(@u, 0) + 1",
    "SET character_set_results = NULL",
    "SET character_set_client = latin1",
    "SELECT CONNECTION_ID() = CONNECTION_ID()",
    "SELECT SQL_CALC_FOUND_ROWS id FROM t LIMIT 1; SELECT FOUND_ROWS()",
    "BEGIN; UPDATE k SET v = v + 2 WHERE id = 2; COMMIT",
];
/// What [`EXTRA`] prepares with the binary protocol.
const EXTRA_PREPARED: &[&str] = &[
    "SELECT * FROM k ORDER BY id",
    "SELECT NEXTVAL(sq)",
    "SELECT @gn, @ge, @u",
    "SELECT @@local.time_zone",
];

/// One step of [`EXTRA`] or [`EXTRA_PREPARED`].
fn extra_op(rng: &mut Rng) -> Op {
    match rng.below(12) {
        0 => Op::Exec(rng.pick(EXTRA_PREPARED).to_owned()),
        1 => Op::Prepare(rng.pick(EXTRA_PREPARED).to_owned()),
        2 => Op::Ping,
        _ => Op::Query(rng.pick(EXTRA).to_owned()),
    }
}

/// Statement families applications send that the other steps do not:
/// XA transactions, savepoints of other names, transaction
/// characteristics and their reads, `START TRANSACTION WITH CONSISTENT
/// SNAPSHOT`, character sets beyond utf8mb4 and latin1 (multi-byte ones
/// whose second bytes can be a backslash or a quote included), `SET
/// STATEMENT` of variables a read shows, table locks of several kinds,
/// locking reads, `LAST_INSERT_ID(expr)` counters, diagnostics variants,
/// sequences, a `COM_INIT_DB` that fails, and binary prepared statements
/// executed again after their table changed.
const SESSION: &[&str] = &[
    // Transaction characteristics, read back.
    "SET TRANSACTION ISOLATION LEVEL SERIALIZABLE",
    "SET TRANSACTION ISOLATION LEVEL READ COMMITTED, READ ONLY",
    "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED, READ WRITE",
    "SET @@session.tx_isolation = 'SERIALIZABLE'",
    "SET SESSION tx_read_only = 1",
    "SET SESSION tx_read_only = DEFAULT",
    "SET tx_isolation = DEFAULT",
    "SELECT @@tx_isolation, @@session.tx_read_only, @@in_transaction",
    "SELECT @@transaction_isolation",
    "SELECT @@global.tx_isolation = @@session.tx_isolation",
    // Transactions begun and ended in other spellings.
    "START TRANSACTION WITH CONSISTENT SNAPSHOT",
    "START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY",
    "START TRANSACTION READ WRITE",
    "BEGIN WORK",
    "COMMIT WORK",
    "ROLLBACK AND NO CHAIN",
    "ROLLBACK AND CHAIN",
    "COMMIT AND NO CHAIN",
    // Savepoints of other names, inside and outside transactions.
    "SAVEPOINT `sp 2`",
    "ROLLBACK WORK TO SAVEPOINT `sp 2`",
    "RELEASE SAVEPOINT `sp 2`",
    "ROLLBACK TO nosuch_sp",
    "SAVEPOINT s1",
    "ROLLBACK TO s1",
    // Character sets: set, then read back with strings.
    "SET NAMES cp1251",
    "SET NAMES sjis",
    "SET NAMES gbk",
    "SET NAMES big5",
    "SET NAMES binary",
    "SET NAMES ascii",
    // The alias: after `SET old_mode = ''` it means `utf8mb4` (seed 301261).
    "SET NAMES utf8",
    "SET NAMES utf8mb3 COLLATE utf8mb3_unicode_ci",
    "SET NAMES latin1 COLLATE latin1_german2_ci",
    "SET NAMES 'utf8mb4' COLLATE 'utf8mb4_german2_ci'",
    "SET NAMES koi8r",
    // After a `SET collation_connection` (CHARSET_SETS) the server takes
    // the charset's default collation (soak seed 150598).
    "SET character_set_connection = latin2",
    "SET collation_connection = latin1_swedish_ci",
    "SET character_set_client = cp1251",
    "SET NAMES DEFAULT",
    "SELECT @@character_set_client, @@character_set_connection, @@character_set_results, @@collation_connection",
    "SELECT 'é', HEX('é'), LENGTH('é'), CHAR_LENGTH('é'), 'ü' = 'u', 'ä' < 'b'",
    "SELECT s, HEX(s), s = 'ss' FROM w ORDER BY HEX(s)",
    "SELECT CHARSET('x'), COLLATION('x'), COERCIBILITY('x')",
    "SELECT '\\\\', '\\'', 'x\\ny'",
    // SET STATEMENT of variables a read shows, and what stays after it.
    "SET STATEMENT time_zone = '+09:00' FOR SELECT @@time_zone, FROM_UNIXTIME(0)",
    "SET STATEMENT sql_mode = 'ANSI_QUOTES' FOR SELECT \"id\" FROM t ORDER BY id LIMIT 1",
    "SET STATEMENT div_precision_increment = 1 FOR SELECT 1/3",
    "SET STATEMENT sql_select_limit = 1, max_statement_time = 50 FOR SELECT id FROM k ORDER BY id",
    "SET STATEMENT sql_mode = '' FOR INSERT INTO t (v, s) VALUES (11, 'much too long')",
    "SELECT @@time_zone, @@sql_mode, @@div_precision_increment, @@sql_select_limit",
    // Table locks.
    "LOCK TABLES t READ",
    "LOCK TABLES t READ, k WRITE",
    "LOCK TABLE k AS kk READ",
    "LOCK TABLES w READ LOCAL",
    "SELECT COUNT(*) FROM w",
    "UNLOCK TABLES",
    "UNLOCK TABLES",
    // Locking reads.
    "SELECT id, v FROM k WHERE id = 1 FOR UPDATE",
    "SELECT id FROM t ORDER BY id FOR UPDATE SKIP LOCKED",
    "SELECT v FROM k ORDER BY id LOCK IN SHARE MODE",
    // LAST_INSERT_ID(expr): the counter pattern.
    "UPDATE k SET v = LAST_INSERT_ID(v + 1) WHERE id = 1",
    "SELECT LAST_INSERT_ID(v) FROM k WHERE id = 2",
    "INSERT INTO t (v, s) VALUES (LAST_INSERT_ID() + 1, 'li')",
    "SELECT LAST_INSERT_ID(), @@last_insert_id, @@identity",
    // Diagnostics.
    "SHOW WARNINGS LIMIT 1",
    "SHOW ERRORS LIMIT 0, 1",
    "SHOW COUNT(*) ERRORS",
    "SELECT @@warning_count, @@error_count",
    "SELECT CAST('7z' AS SIGNED), CAST('8q' AS SIGNED)",
    // Sequences.
    "SELECT NEXT VALUE FOR sq",
    "SELECT PREVIOUS VALUE FOR sq",
    "DO NEXTVAL(sq)",
    "INSERT INTO t (v, s) VALUES (NEXTVAL(sq), 'sq')",
    // The schema, after a USE that failed.
    "USE nosuch_schema",
    "SELECT DATABASE()",
    // Named locks: recursive, and all released at once.
    "SELECT GET_LOCK('{lk}', 0), GET_LOCK('{lk}', 0)",
    "SELECT RELEASE_ALL_LOCKS()",
    "SELECT IS_FREE_LOCK('{lk}')",
];
/// What [`SESSION`] runs as binary prepared statements, some of them
/// again after [`SESSION_DDL`] changed their table.
const SESSION_PREPARED: &[&str] = &[
    "SELECT * FROM k ORDER BY id",
    "SELECT * FROM t ORDER BY id",
    "SELECT s, HEX(s) FROM w ORDER BY HEX(s)",
    "SELECT @@tx_isolation, @@tx_read_only, @@in_transaction",
    "SELECT @@character_set_client, @@collation_connection",
    "UPDATE k SET v = LAST_INSERT_ID(v + 1) WHERE id = 2",
    "SELECT LAST_INSERT_ID()",
    "SELECT id FROM t WHERE id = 1 FOR UPDATE",
];
/// Schema changes under [`SESSION_PREPARED`]'s statements (they fail
/// once done; they commit a transaction).
const SESSION_DDL: &[&str] = &[
    "ALTER TABLE k ADD COLUMN c INT DEFAULT 5",
    "ALTER TABLE k DROP COLUMN c",
    "ALTER TABLE t MODIFY s VARCHAR(20)",
    "ALTER TABLE t ADD COLUMN d DATE",
    "ALTER TABLE t DROP COLUMN d",
];

/// One XA transaction of the client's own (the xid is its lock name),
/// from `XA START` to its end, with what the server refuses on the way.
fn xa_sequence(rng: &mut Rng) -> Vec<Op> {
    let q = |s: &str| Op::Query(s.to_owned());
    let mut ops = vec![q(rng.pick(&["XA START '{lk}'", "XA BEGIN '{lk}'"]))];
    for _ in 0..rng.below(3) {
        ops.push(q(rng.pick(&[
            "INSERT INTO t (v, s) VALUES (21, 'xa')",
            "UPDATE k SET v = v + 1 WHERE id = 1",
            "SELECT @@in_transaction, COUNT(*) FROM t",
            "SELECT LAST_INSERT_ID()",
            "SAVEPOINT s1",
            "COMMIT",
        ])));
    }
    ops.push(q("XA END '{lk}'"));
    // Refused in the XA IDLE state (1399), text or prepared.
    match rng.below(4) {
        0 => ops.push(q("SELECT 1")),
        1 => ops.push(Op::Exec(
            "SELECT @@tx_isolation, @@tx_read_only, @@in_transaction".into(),
        )),
        _ => {}
    }
    let end = match rng.below(4) {
        0 => "XA COMMIT '{lk}' ONE PHASE",
        1 => "XA ROLLBACK '{lk}'",
        _ => {
            ops.push(q("XA PREPARE '{lk}'"));
            if rng.below(2) == 0 {
                ops.push(q("SELECT @@in_transaction"));
            }
            rng.pick(&["XA COMMIT '{lk}'", "XA ROLLBACK '{lk}'"])
        }
    };
    ops.push(q(end));
    ops.push(q(rng.pick(&[
        "SELECT @@in_transaction, COUNT(*) FROM t",
        "SELECT id, v FROM k ORDER BY id",
        "SELECT LAST_INSERT_ID(), ROW_COUNT()",
    ])));
    ops
}

/// A command that ends a session's state (`COM_RESET_CONNECTION`,
/// `COM_CHANGE_USER`) in the middle of a transaction, table locks, a
/// savepoint or characteristics for the next transaction; then reads.
fn interrupted_sequence(rng: &mut Rng) -> Vec<Op> {
    let q = |s: &str| Op::Query(s.to_owned());
    let mut ops = vec![q(rng.pick(&[
        "BEGIN",
        "LOCK TABLES t READ",
        "SET TRANSACTION ISOLATION LEVEL SERIALIZABLE",
        "SET autocommit = 0",
        "START TRANSACTION READ ONLY",
    ]))];
    ops.push(q(rng.pick(&[
        "INSERT INTO t (v, s) VALUES (31, 'r')",
        "SAVEPOINT s1",
        "SELECT COUNT(*) FROM t",
    ])));
    ops.push(if rng.below(2) == 0 {
        Op::Reset
    } else {
        Op::ChangeUser
    });
    for _ in 0..2 {
        ops.push(q(rng.pick(&[
            "SELECT @@in_transaction, @@autocommit, @@tx_isolation",
            "BEGIN",
            "SELECT @@tx_isolation",
            "COMMIT",
            "INSERT INTO t (v, s) VALUES (32, 'r')",
            "ROLLBACK TO s1",
            "SELECT id, v, s FROM t ORDER BY id",
        ])));
    }
    ops
}

/// One step of the session family, or a sequence of them (returned
/// whole; [`script`] never cuts one).
fn session_ops(rng: &mut Rng) -> Vec<Op> {
    match rng.below(24) {
        0..=1 => xa_sequence(rng),
        2 => interrupted_sequence(rng),
        3..=4 => vec![Op::Exec(rng.pick(SESSION_PREPARED).to_owned())],
        5 => vec![Op::Query(rng.pick(SESSION_DDL).to_owned())],
        6 => vec![Op::InitDb(rng.pick(&["nosuch_schema", "{a}", "{b}"]))],
        _ => vec![Op::Query(rng.pick(SESSION).to_owned())],
    }
}

/// `sql_mode`s that change how the server reads a query: quotes (`"`
/// and, under `MSSQL`, `[ ]` name things), `||` (concatenation), spaces
/// before a function's parenthesis, backslashes (plain characters under
/// `NO_BACKSLASH_ESCAPES`), `BEGIN ... END` (a block under `ORACLE`).
const PARSE_MODES: &[&str] = &[
    "''",
    "'ORACLE'",
    "'MSSQL'",
    "'ANSI'",
    "'ANSI_QUOTES'",
    "'IGNORE_SPACE,PIPES_AS_CONCAT'",
    "'NO_BACKSLASH_ESCAPES'",
    "CONCAT(@@sql_mode, ',ANSI_QUOTES')",
    "DEFAULT",
];
/// Statements whose reading depends on [`PARSE_MODES`]: in one mode a
/// string, in another a name, a syntax error or a user variable's
/// assignment hidden in what another mode reads as a string. Not the
/// readings docs/multiplexing.md lists as known limits: `"ROW_COUNT"()`,
/// `[FOUND_ROWS]()` and the like (the backend connection's counts),
/// `LAST_INSERT_ID()` after a quote inside `[a']` or a backslash inside
/// `"a\"`, and `ROW_COUNT()` or `SQL%ROWCOUNT` inside a block.
const MODE_STEPS: &[&str] = &[
    // Quoting: a string or a name.
    r#"SELECT "x" AS q, 'y'"#,
    r#"SELECT "id", "v" FROM t ORDER BY "id" LIMIT 2"#,
    "SELECT [id], [v] FROM t ORDER BY [id] LIMIT 2",
    r#"SELECT 1 AS "a b", 2 AS [c d]"#,
    "SELECT `id` FROM t ORDER BY 1 LIMIT 1",
    // A user variable's assignment only some modes see.
    r#"SELECT 1 AS "a\", @mv := 2 AS "\""#,
    "SELECT 1 AS [a'], @mv := 3 AS [']",
    r"SELECT 'a\', @mv := 4, '\'",
    r#"SELECT "b\", @mv := 5, "\""#,
    r"SELECT 'x\\' AS s, @mv := 6",
    r"SET @mv = 'a\'",
    r"DO @mv := 'b\\', '\'",
    r#"SELECT 'a' "b", "c" 'd'"#,
    // All it selects goes into @mv: FOUND_ROWS() then reads its count
    // (soak seed 301217, after a `SET`).
    "BEGIN SELECT COUNT(*) INTO @mv FROM t; END",
    "SELECT @mv",
    "SELECT @mv, @@sql_mode",
    "SET @mv = 'm'",
    // Backslashes in strings.
    r"SELECT 'a\nb', 'c\\d', LENGTH('e\tf')",
    r#"SELECT "it\'s", 'q''q'"#,
    // Concatenation or OR.
    "SELECT 'a' || 'b', 1 || 0, s || 'z' FROM t ORDER BY id LIMIT 1",
    // Functions after spaces, comments, a backquoted name.
    "SELECT LAST_INSERT_ID (), ROW_COUNT /* c */ (), FOUND_ROWS\t( )",
    "SELECT `LAST_INSERT_ID`(), `ROW_COUNT`(), `FOUND_ROWS`()",
    "SELECT LAST_INSERT_ID/**/(), FOUND_ROWS( /* c */ )",
    r#"SELECT "LAST_INSERT_ID"()"#,
    "SELECT [LAST_INSERT_ID]()",
    "SELECT COUNT (*), SUM (v) FROM t",
    "SELECT CONCAT ('a', 'b'), NOW () IS NOT NULL",
    // Statements whose counts are read next.
    "INSERT INTO t (v, s) VALUES (41, 'md')",
    "UPDATE t SET v = v + 1 WHERE id <= 2",
    "SELECT id FROM t ORDER BY id LIMIT 3",
    "SELECT LAST_INSERT_ID(), ROW_COUNT(), FOUND_ROWS()",
    // ORACLE: DUAL, blocks calling procedures, sequences (SQL%ROWCOUNT:
    // see mode_ops).
    "SELECT @@warning_count FROM DUAL",
    "SELECT @@warning_count, @@error_count FROM DUAL",
    "SELECT CAST('9x' AS SIGNED) FROM DUAL",
    "BEGIN p_li; END",
    "BEGIN p_tz; END",
    "BEGIN p_ins; END",
    "BEGIN NULL; END",
    "<<l1>> BEGIN p_ins; END",
    "DECLARE n INT; BEGIN p_li; END",
    "BEGIN <<l2>> p_ins; END",
    "DECLARE n INT; BEGIN n := 1; END",
    "BEGIN",
    "COMMIT",
    "SELECT sq.NEXTVAL",
    "SELECT sq.CURRVAL FROM DUAL",
    "SELECT @@time_zone, @@in_transaction",
    // Named locks called by quoted names.
    "SELECT `GET_LOCK`('{lk}', 0)",
    r#"SELECT "GET_LOCK"('{lk}', 0)"#,
    "SELECT [GET_LOCK]('{lk}', 0)",
    "SELECT GET_LOCK /* c */ ('{lk}', 0)",
    "SELECT GET_LOCK ('{lk}', 0), LAST_INSERT_ID\n()",
    "SELECT RELEASE_LOCK ('{lk}')",
    "SELECT `RELEASE_LOCK`('{lk}')",
    r#"SELECT "RELEASE_LOCK"('{lk}')"#,
    "SELECT RELEASE_LOCK('{lk}')",
    "SELECT IS_USED_LOCK('{lk}') IS NOT NULL",
    "SELECT RELEASE_ALL_LOCKS()",
];
/// What [`MODE_STEPS`] runs as binary prepared statements (prepared
/// under the session's mode, executed under any).
const MODE_PREPARED: &[&str] = &[
    r#"SELECT "x", 'a' || 'b'"#,
    "SELECT [id] FROM t ORDER BY id LIMIT 1",
    "SELECT @@sql_mode",
    "SELECT COUNT (*) FROM t",
];

/// A switch of `sql_mode` to one of [`PARSE_MODES`], in one of the ways
/// a client writes it.
fn mode_switch(rng: &mut Rng) -> Op {
    let mode = rng.pick(PARSE_MODES);
    mode_switch_to(rng, mode)
}

fn mode_switch_to(rng: &mut Rng, mode: &str) -> Op {
    let how = rng.pick(&[
        "SET sql_mode = ",
        "SET SESSION sql_mode = ",
        "SET @@sql_mode := ",
        "SET @@session.sql_mode = ",
        "SET time_zone = '+02:00', sql_mode = ",
    ]);
    Op::Query(format!("{how}{mode}"))
}

/// One step of the parse-mode family, or a switch of mode and the steps
/// after it (returned whole).
fn mode_ops(rng: &mut Rng) -> Vec<Op> {
    match rng.below(12) {
        0..=2 => vec![mode_switch(rng)],
        3..=4 => {
            let mut ops = vec![mode_switch(rng)];
            for _ in 0..1 + rng.below(3) {
                ops.push(Op::Query(rng.pick(MODE_STEPS).to_owned()));
            }
            ops
        }
        5 => vec![Op::Query(format!(
            "SET STATEMENT sql_mode = {} FOR {}",
            rng.pick(PARSE_MODES),
            rng.pick(MODE_STEPS)
        ))],
        6 => vec![Op::Exec(rng.pick(MODE_PREPARED).to_owned())],
        // SQL%ROWCOUNT right after a literal mode of the session's own:
        // where the server's global sql_mode decides, or a computed one
        // Funnel did not read back (a pinned session's), Funnel cannot
        // tell ORACLE's answer from another mode's syntax error
        // (docs/multiplexing.md, known limits; soak seed 300308).
        7 => {
            let mode = rng.pick(&PARSE_MODES[..PARSE_MODES.len() - 2]);
            let mut ops = vec![mode_switch_to(rng, mode)];
            if rng.below(2) == 0 {
                ops.push(Op::Query(rng.pick(MODE_STEPS).to_owned()));
            }
            ops.push(Op::Query(
                rng.pick(&[
                    "SELECT SQL%ROWCOUNT",
                    "SELECT SQL%ROWCOUNT FROM DUAL",
                    // Not a call Funnel replaces after it: outside ORACLE
                    // the syntax error's message quotes the text after
                    // `%ROWCOUNT`, replaced (soak seed 300005; a known
                    // limit in docs/multiplexing.md). `= 1`, not `+ 1`,
                    // from when `SQL%ROWCOUNT + 1` was one longer than
                    // direct (seed 300013; it matches now, see the
                    // regression scripts): kept so seeds draw the same.
                    "SELECT ROW_COUNT(), SQL%ROWCOUNT = 1 AS n",
                ])
                .to_owned(),
            ));
            ops
        }
        _ => vec![Op::Query(rng.pick(MODE_STEPS).to_owned())],
    }
}

/// Procedures Funnel's side lists in `stateless_procedures` (with
/// [`STORED_CODE`]'s `p_li`, `p_ins` and `p_tz`), created in both of each
/// client's schemas: those that leave nothing behind (insert rows, return
/// one or several result sets, read `LAST_INSERT_ID()`, `ROW_COUNT()` and
/// `FOUND_ROWS()` inside, set them, warn, fail by `SIGNAL` or a duplicate
/// key, select into a local variable, return nothing) and the `sl_st_`
/// ones, which leave state the server reports (a variable, a temporary
/// table, a transaction, autocommit off): Funnel must keep their pin. None
/// sets a user variable or keeps a named lock (what the operator vouches
/// for).
const STATELESS_CODE: &[&str] = &[
    "CREATE PROCEDURE sl_add(x INT, y VARCHAR(16)) INSERT INTO t (v, s) VALUES (x, y)",
    "CREATE PROCEDURE sl_two() BEGIN INSERT INTO t (v, s) VALUES (21, 'a'), (22, 'b'); \
     SELECT LAST_INSERT_ID(), ROW_COUNT(); END",
    "CREATE PROCEDURE sl_sets() BEGIN SELECT id, v FROM t ORDER BY id LIMIT 2; \
     SELECT SQL_CALC_FOUND_ROWS id FROM k ORDER BY id LIMIT 1; END",
    // What the procedure's own statements leave: on entry it would read
    // the counts of the client's previous statement, which Funnel gives a
    // connection only in part (docs/multiplexing.md, known limits).
    "CREATE PROCEDURE sl_reads() BEGIN UPDATE k SET v = v WHERE id = 2; \
     SELECT LAST_INSERT_ID(), ROW_COUNT(); SELECT SQL_CALC_FOUND_ROWS id FROM k LIMIT 0; \
     SELECT FOUND_ROWS(), ROW_COUNT(); END",
    "CREATE PROCEDURE sl_warn() DO CAST('7z' AS SIGNED)",
    "CREATE PROCEDURE sl_warn_rows() SELECT CAST('8q' AS SIGNED), v FROM k ORDER BY id",
    "CREATE PROCEDURE sl_sig(n INT) BEGIN IF n > 50 THEN \
     SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'sl refused', MYSQL_ERRNO = 1644; END IF; \
     INSERT INTO t (v, s) VALUES (n, 'sig'); END",
    "CREATE PROCEDURE sl_dup() INSERT INTO k VALUES (1, 0)",
    "CREATE PROCEDURE sl_into() BEGIN DECLARE n INT; SELECT COUNT(*) INTO n FROM t; SELECT n > 0; END",
    "CREATE PROCEDURE sl_none() BEGIN END",
    "CREATE PROCEDURE sl_upd(x INT) UPDATE k SET v = v + x WHERE id = 2",
    "CREATE PROCEDURE sl_arg(n INT) SELECT n * 2, @@time_zone",
    "CREATE PROCEDURE sl_setid() SELECT LAST_INSERT_ID(77)",
    "CREATE PROCEDURE sl_txdone() BEGIN START TRANSACTION; UPDATE k SET v = v + 1 WHERE id = 1; COMMIT; END",
    "CREATE PROCEDURE sl_handled() BEGIN DECLARE CONTINUE HANDLER FOR 1062 BEGIN END; \
     INSERT INTO k VALUES (1, 0); SELECT 'handled'; END",
    "CREATE PROCEDURE sl_st_var() SET SESSION div_precision_increment = 2",
    "CREATE PROCEDURE sl_st_undo() BEGIN SET SESSION time_zone = '+05:00'; SET SESSION time_zone = DEFAULT; END",
    "CREATE PROCEDURE sl_st_tmp() BEGIN CREATE TEMPORARY TABLE IF NOT EXISTS tt (a INT); \
     INSERT INTO tt VALUES (1); END",
    "CREATE PROCEDURE sl_st_tx() BEGIN START TRANSACTION; INSERT INTO t (v, s) VALUES (31, 'tx'); END",
    "CREATE PROCEDURE sl_st_ac() SET autocommit = 0",
];
/// The `stateless_procedures` of Funnel's side.
const STATELESS_LISTED: &[&str] = &[
    "sl_add",
    "sl_two",
    "sl_sets",
    "sl_reads",
    "sl_warn",
    "sl_warn_rows",
    "sl_sig",
    "sl_dup",
    "sl_into",
    "sl_none",
    "sl_upd",
    "sl_arg",
    "sl_setid",
    "sl_txdone",
    "sl_handled",
    "sl_st_var",
    "sl_st_undo",
    "sl_st_tmp",
    "sl_st_tx",
    "sl_st_ac",
    "p_li",
    "p_ins",
    "p_tz",
];
/// Text `CALL`s of [`STATELESS_LISTED`] procedures, in the forms the
/// feature reads (and a few it does not: a user variable argument).
const CALLS: &[&str] = &[
    "CALL sl_add(1, 'x')",
    "CALL sl_add(-2, 'it''s')",
    "CALL sl_add(3, 'much too long')",
    "CALL sl_two()",
    "CALL sl_sets()",
    "CALL sl_reads()",
    "call sl_reads",
    "CALL {a}.sl_reads()",
    "CALL `{a}`.`sl_two`()",
    "CALL {b}.sl_none()",
    "CALL sl_warn()",
    "CALL sl_warn_rows()",
    "CALL sl_sig(7)",
    "CALL sl_sig(70)",
    "CALL sl_dup()",
    "CALL sl_into();",
    "CALL sl_none",
    "CALL sl_upd(+1)",
    "CALL sl_arg(2)",
    "CALL sl_arg(@sn)",
    "CALL sl_setid()",
    "CALL sl_txdone()",
    "CALL sl_handled()",
    "CALL p_li()",
    "CALL p_ins()",
];
/// Listed procedures that leave state the server reports.
const STATEFUL_CALLS: &[&str] = &[
    "CALL sl_st_var()",
    "CALL sl_st_undo()",
    "CALL sl_st_tmp()",
    "CALL sl_st_tx()",
    "CALL sl_st_ac()",
    "CALL p_tz()",
];
/// Binary prepared `CALL`s (`?` takes the step's integer).
const PREPARED_CALLS: &[&str] = &[
    "CALL sl_arg(?)",
    "CALL sl_sig(?)",
    "CALL sl_add(?, 'b')",
    "CALL sl_upd(?)",
    "CALL sl_reads()",
    "CALL sl_two()",
    "CALL sl_warn()",
    "CALL {a}.sl_none()",
    "CALL sl_st_var()",
];
/// What a client reads around its `CALL`s.
const CALL_READS: &[&str] = &[
    "SELECT LAST_INSERT_ID(), ROW_COUNT(), FOUND_ROWS()",
    "SELECT ROW_COUNT()",
    "SELECT FOUND_ROWS()",
    "SELECT LAST_INSERT_ID()",
    "SHOW WARNINGS",
    "SHOW COUNT(*) WARNINGS",
    "SELECT @@warning_count, @@error_count",
    // Not its ROW_COUNT item: after a statement whose connection went
    // back to the pool, it reads the count of that connection's last
    // statement, maybe another client's (a limit of Funnel's, as for a
    // prepared `SELECT ROW_COUNT()`).
    "GET DIAGNOSTICS @sn = NUMBER",
    "GET DIAGNOSTICS CONDITION 1 @se = MYSQL_ERRNO, @sm = MESSAGE_TEXT",
    "SELECT @sn, @se, @sm",
    "INSERT INTO t (v, s) VALUES (41, 'c')",
    "SELECT SQL_CALC_FOUND_ROWS id FROM t ORDER BY id LIMIT 1",
    "SELECT @@autocommit, @@in_transaction, @@div_precision_increment, @@time_zone",
    "SELECT COUNT(*) FROM tt",
    "DROP TEMPORARY TABLE IF EXISTS tt",
    "SELECT 1/3",
    "COMMIT",
    "ROLLBACK",
    "SET autocommit = 1",
];
/// What [`CALL_READS`] reads as binary prepared statements (not
/// `ROW_COUNT()`, `FOUND_ROWS()` or diagnostics: prepared, they read the
/// connection's, a known limit).
const PREPARED_CALL_READS: &[&str] = &["SELECT LAST_INSERT_ID()", "SELECT @@autocommit, @@in_transaction"];

fn any_call(rng: &mut Rng) -> Op {
    match rng.below(10) {
        0..=5 => Op::Query(rng.pick(CALLS).to_owned()),
        6 => Op::Query(rng.pick(STATEFUL_CALLS).to_owned()),
        _ => prepared_call(rng),
    }
}

fn prepared_call(rng: &mut Rng) -> Op {
    let sql = rng.pick(PREPARED_CALLS).to_owned();
    if sql.contains('?') {
        Op::ExecArg(sql, rng.below(100) as i64)
    } else {
        Op::Exec(sql)
    }
}

fn call_read(rng: &mut Rng) -> Op {
    match rng.below(8) {
        0 => Op::Exec(rng.pick(PREPARED_CALL_READS).to_owned()),
        _ => Op::Query(rng.pick(CALL_READS).to_owned()),
    }
}

/// One step of the stateless-procedure family, or a short sequence:
/// `CALL`s mixed with the client's reads of what they leave, its
/// diagnostics, transactions and autocommit off.
fn call_ops(rng: &mut Rng) -> Vec<Op> {
    let q = |s: &str| Op::Query(s.to_owned());
    match rng.below(14) {
        0..=3 => vec![any_call(rng)],
        4 => vec![prepared_call(rng)],
        5..=6 => vec![call_read(rng)],
        7 => vec![any_call(rng), call_read(rng), call_read(rng)],
        // Warnings read at once, or the counts read after the linger let
        // the connection go (the warnings are gone then: a known limit).
        8 => {
            let mut ops = vec![q(rng.pick(&[
                "CALL sl_warn()",
                "CALL sl_warn_rows()",
                "CALL sl_dup()",
            ]))];
            if rng.below(2) == 0 {
                ops.push(q(rng.pick(&[
                    "SHOW WARNINGS",
                    "GET DIAGNOSTICS CONDITION 1 @se = MYSQL_ERRNO, @sm = MESSAGE_TEXT",
                    "SELECT @@warning_count, @@error_count",
                    "CALL sl_reads()",
                ])));
                ops.push(call_read(rng));
            } else {
                // A statement that opens a table clears the warnings both
                // ways: later diagnostics reads compare.
                ops.push(Op::Sleep(250));
                ops.push(q(rng.pick(&[
                    "SELECT LAST_INSERT_ID(), ROW_COUNT(), FOUND_ROWS() FROM k LIMIT 1",
                    "CALL sl_reads()",
                    "CALL sl_add(5, 'z')",
                ])));
            }
            ops
        }
        9 => {
            let mut ops = vec![q("SET autocommit = 0"), any_call(rng), call_read(rng)];
            ops.push(q(rng.pick(&["COMMIT", "ROLLBACK"])));
            ops.push(any_call(rng));
            if rng.below(2) == 0 {
                ops.push(q("SET autocommit = 1"));
            }
            ops
        }
        10 => vec![
            q(rng.pick(&["BEGIN", "START TRANSACTION"])),
            any_call(rng),
            call_read(rng),
            q(rng.pick(&["COMMIT", "ROLLBACK"])),
            call_read(rng),
        ],
        11 => vec![
            q(rng.pick(&[
                "INSERT INTO t (v, s) VALUES (42, 'd')",
                "SELECT SQL_CALC_FOUND_ROWS id FROM k LIMIT 1",
            ])),
            any_call(rng),
            q("SELECT LAST_INSERT_ID(), ROW_COUNT(), FOUND_ROWS()"),
        ],
        12 => vec![
            q(rng.pick(STATEFUL_CALLS)),
            call_read(rng),
            any_call(rng),
            call_read(rng),
        ],
        _ => vec![any_call(rng), any_call(rng), call_read(rng)],
    }
}

/// A client's script: the steps of [`ops`], and between them, from
/// streams of their own, those of [`more_op`], [`extra_op`],
/// [`session_ops`], [`mode_ops`] and [`call_ops`]. `FUNNEL_DIFF_MORE=0` gives the
/// scripts of the soaks before any of them was added, `1` those before
/// [`extra_op`], `2` those before [`session_ops`], `3` those before
/// [`mode_ops`], `4` those before [`call_ops`] (all: up to list changes made since); the
/// [`ops`] steps are the same either way, in the same order. A sequence
/// of [`session_ops`], [`mode_ops`] or [`call_ops`] that would be cut at the script's end is left out
/// whole: an XA transaction cut after `XA PREPARE` would outlive the
/// connection and hold its rows locked.
fn script(seed: u64, client: usize, len: usize) -> Vec<Op> {
    let mut rng = Rng::new(seed.wrapping_mul(1_000_003).wrapping_add(client as u64));
    let mut more = Rng::new(!seed.wrapping_mul(1_000_033).wrapping_add(client as u64));
    let mut extra = Rng::new(!seed.wrapping_mul(1_000_037).wrapping_add(client as u64 + 7));
    let mut session = Rng::new(!seed.wrapping_mul(1_000_039).wrapping_add(client as u64 + 13));
    let mut modes = Rng::new(!seed.wrapping_mul(1_000_081).wrapping_add(client as u64 + 19));
    let mut calls = Rng::new(!seed.wrapping_mul(1_000_099).wrapping_add(client as u64 + 23));
    let level = env_or("FUNNEL_DIFF_MORE", 5);
    let mut script = Vec::with_capacity(len + 16);
    let mut end = len;
    while script.len() < len {
        if level >= 1 && more.below(10) == 0 {
            script.push(more_op(&mut more));
        }
        if level >= 2 && extra.below(8) == 0 {
            script.push(extra_op(&mut extra));
        }
        if level >= 3 && session.below(8) == 0 {
            let start = script.len();
            script.extend(session_ops(&mut session));
            if start < len && script.len() > len {
                end = start;
            }
        }
        if level >= 4 && modes.below(8) == 0 {
            let start = script.len();
            script.extend(mode_ops(&mut modes));
            if start < len && script.len() > len {
                end = end.min(start);
            }
        }
        if level >= 5 && calls.below(5) == 0 {
            let start = script.len();
            script.extend(call_ops(&mut calls));
            if start < len && script.len() > len {
                end = end.min(start);
            }
        }
        script.extend(ops(&mut rng));
    }
    script.truncate(end);
    script
}

/// The names one client uses in one run; masked in every output.
struct Names {
    a: String,
    b: String,
    lock: String,
}

impl Names {
    fn new(tag: &str, side: &str, client: usize) -> Names {
        let tag: String = tag.chars().filter(char::is_ascii_alphanumeric).collect();
        let base = format!("df{tag}_{side}_{client}");
        Names {
            a: format!("{base}_a"),
            b: format!("{base}_b"),
            lock: format!("{base}_lk"),
        }
    }

    fn fill(&self, sql: &str) -> String {
        sql.replace("{a}", &self.a)
            .replace("{b}", &self.b)
            .replace("{lk}", &self.lock)
    }

    fn mask(&self, text: &str) -> String {
        text.replace(&self.a, "{a}")
            .replace(&self.b, "{b}")
            .replace(&self.lock, "{lk}")
    }
}

/// What one result set or OK packet of a statement said.
#[derive(Clone, Debug, PartialEq)]
struct SetOutcome {
    /// name, type, charset, flags, length, decimals of each column.
    columns: Vec<String>,
    rows: Vec<Vec<String>>,
}

/// What one step answered.
#[derive(Clone, Debug, PartialEq)]
enum Outcome {
    Ok {
        sets: Vec<SetOutcome>,
        /// From the statement's last OK packet.
        affected: u64,
        insert_id: u64,
        warnings: u16,
        info: String,
    },
    Err {
        code: u16,
        message: String,
    },
}

fn mysql_err(e: mysql::Error, what: &dyn std::fmt::Display) -> Outcome {
    match e {
        mysql::Error::MySqlError(e) => Outcome::Err {
            code: e.code,
            message: e.message,
        },
        e => panic!("`{what}`: connection-level failure: {e}"),
    }
}

/// `binary`: the result of an execute. Its columns' charset and length
/// are left out: the driver negotiates MariaDB's metadata cache
/// (`MARIADB_CLIENT_CACHE_METADATA`), and the server then skips the
/// metadata of later executes even after `character_set_results` changed,
/// so the driver shows the prepare-time charset; Funnel compares the
/// definitions themselves and sends the changed ones (docs/multiplexing.md).
fn collect<P: mysql::prelude::Protocol>(
    result: &mut mysql::QueryResult<'_, '_, '_, P>,
    binary: bool,
) -> Result<Vec<SetOutcome>, mysql::Error> {
    let mut sets = Vec::new();
    while let Some(mut set) = result.iter() {
        let columns = set
            .columns()
            .as_ref()
            .iter()
            .map(|c| {
                let (charset, length) = if binary {
                    (String::new(), String::new())
                } else {
                    (c.character_set().to_string(), c.column_length().to_string())
                };
                // A user variable the client never set, on a connection where
                // Funnel cleared another client's variable of that name, reads
                // as NULL of length 2^24 - 1 instead of 2^24: the server cannot
                // drop one variable (docs/multiplexing.md, known limits).
                let name = c.name_str();
                let length = if name.starts_with('@') && !name.starts_with("@@") && length == "16777215" {
                    "16777216".to_string()
                } else {
                    length
                };
                format!(
                    "{}:{:?}:cs{charset}:{:?}:{length}:{}",
                    name,
                    c.column_type(),
                    c.flags(),
                    c.decimals()
                )
            })
            .collect();
        let mut rows = Vec::new();
        for row in set.by_ref() {
            rows.push(row?.unwrap().iter().map(show).collect());
        }
        sets.push(SetOutcome { columns, rows });
    }
    Ok(sets)
}

/// A value in full (the driver's `Debug` shortens long strings); bytes
/// that are not UTF-8 (latin1 results) in hex.
fn show(value: &mysql::Value) -> String {
    match value {
        mysql::Value::Bytes(bytes) => match std::str::from_utf8(bytes) {
            Ok(text) => format!("{text:?}"),
            Err(_) => bytes.iter().fold("0x".to_owned(), |mut hex, b| {
                let _ = write!(hex, "{b:02x}");
                hex
            }),
        },
        other => format!("{other:?}"),
    }
}

/// Runs one step on `conn` (reconnecting through `connect` when asked).
fn run_op(conn: &mut Option<Conn>, op: &Op, names: &Names, connect: &dyn Fn() -> Conn) -> Outcome {
    if let Op::Reconnect = op {
        // The old session ends first: a pinned one holds a backend
        // connection the new login may need.
        if conn.take().is_some() {
            lock_released(names, connect);
        }
    }
    let conn = conn.get_or_insert_with(connect);
    let sets = match op {
        Op::Query(sql) => {
            let sql = names.fill(sql);
            conn.query_iter(&sql).and_then(|mut r| collect(&mut r, false))
        }
        Op::Exec(sql) => {
            let sql = names.fill(sql);
            conn.exec_iter(&sql, ()).and_then(|mut r| collect(&mut r, true))
        }
        Op::ExecArg(sql, arg) => {
            let sql = names.fill(sql);
            conn.exec_iter(&sql, (*arg,))
                .and_then(|mut r| collect(&mut r, true))
        }
        Op::Prepare(sql) => {
            let sql = names.fill(sql);
            conn.prep(&sql).and_then(|stmt| {
                let described = SetOutcome {
                    columns: stmt
                        .columns()
                        .iter()
                        .map(|c| format!("{}:{:?}", c.name_str(), c.column_type()))
                        .collect(),
                    rows: vec![vec![stmt.num_params().to_string()]],
                };
                conn.close(stmt).map(|()| vec![described])
            })
        }
        Op::InitDb(db) => conn.select_db(&names.fill(db)).map(|()| Vec::new()),
        Op::Reset => conn.reset().map(|()| Vec::new()),
        Op::ChangeUser => conn
            .change_user(mysql::ChangeUserOpts::DEFAULT)
            .map(|()| Vec::new()),
        Op::Reconnect => Ok(Vec::new()),
        Op::Ping => conn.ping().map(|()| Vec::new()),
        Op::Sleep(ms) => {
            thread::sleep(std::time::Duration::from_millis(*ms));
            return Outcome::Ok {
                sets: Vec::new(),
                affected: 0,
                insert_id: 0,
                warnings: 0,
                info: String::new(),
            };
        }
    };
    match sets {
        Ok(sets) => Outcome::Ok {
            sets: sets
                .into_iter()
                .map(|s| SetOutcome {
                    columns: s.columns.iter().map(|c| names.mask(c)).collect(),
                    rows: s
                        .rows
                        .iter()
                        .map(|r| r.iter().map(|v| names.mask(v)).collect())
                        .collect(),
                })
                .collect(),
            affected: conn.affected_rows(),
            insert_id: conn.last_insert_id(),
            warnings: conn.warnings(),
            info: names.mask(&conn.info_str()),
        },
        Err(e) => match mysql_err(e, op) {
            Outcome::Err { code, message } => Outcome::Err {
                code,
                message: names.mask(&message),
            },
            ok => ok,
        },
    }
}

/// Waits until the server let go of the client's named lock, which a
/// session that ended may have held: the server frees it some time after
/// the disconnect, and the new session's `RELEASE_LOCK()` would read 0 or
/// NULL by that timing, on either side.
fn lock_released(names: &Names, connect: &dyn Fn() -> Conn) {
    let mut probe = connect();
    let sql = names.fill("SELECT IS_USED_LOCK('{lk}')");
    for _ in 0..500 {
        if probe
            .query_first::<Option<u64>, _>(&sql)
            .unwrap()
            .flatten()
            .is_none()
        {
            return;
        }
        thread::sleep(std::time::Duration::from_millis(10));
    }
    panic!("{}: the ended session's lock was never released", names.lock);
}

fn opts(port: u16, user: &str, pw: &str, db: &str) -> OptsBuilder {
    funnel_testkit::client_opts(port, user, pw)
        .db_name(Some(db))
        .read_timeout(Some(std::time::Duration::from_secs(120)))
}

/// Creates a client's two schemas with the same starting content each run,
/// in one query per schema.
fn setup_schemas(db: &MariaDb, names: &Names) {
    let mut root = db.root();
    for (schema, offset) in [(&names.a, 0), (&names.b, 100)] {
        let mut sql = format!(
            "CREATE DATABASE {schema} CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci; USE {schema}; \
             CREATE TABLE t (id INT AUTO_INCREMENT PRIMARY KEY, v INT, s VARCHAR(8)) ENGINE=InnoDB; \
             INSERT INTO t (v, s) VALUES ({offset}, 'x'), ({}, 'y'); \
             CREATE TABLE k (id INT PRIMARY KEY, v INT) ENGINE=InnoDB; \
             INSERT INTO k VALUES (1, {offset}), (2, {offset}); \
             CREATE TABLE w (s VARCHAR(16)) ENGINE=InnoDB; \
             INSERT INTO w VALUES ('a'), ('A'), ('é'), ('e'), ('ß'), ('ss'); \
             CREATE TABLE tr (id INT AUTO_INCREMENT PRIMARY KEY, v INT, s VARCHAR(64)) ENGINE=InnoDB; \
             CREATE TRIGGER tr_bi BEFORE INSERT ON tr FOR EACH ROW BEGIN SET @trig = NEW.v; \
             IF NEW.v >= 100 THEN SET SESSION time_zone = '-07:00'; END IF; END; \
             CREATE TABLE ts (id INT PRIMARY KEY, s VARCHAR(64)) ENGINE=InnoDB; \
             INSERT INTO ts VALUES (1, NULL); \
             CREATE TRIGGER ts_bu BEFORE UPDATE ON ts FOR EACH ROW SET NEW.s = @@time_zone; \
             CREATE SEQUENCE sq START WITH {} NOCACHE",
            offset + 1,
            offset + 1
        );
        // One trigger per table: a second one backs its table's first up
        // (`tr.TRG-`), which concurrent setups left behind now and then,
        // and DROP DATABASE then failed.
        for routine in STORED_CODE.iter().chain(STATELESS_CODE) {
            sql.push_str("; ");
            sql.push_str(routine);
        }
        root.query_drop(&sql).unwrap();
    }
}

fn drop_schemas(db: &MariaDb, names: &Names) {
    let mut root = db.root();
    for schema in [&names.a, &names.b] {
        root.query_drop(format!("DROP DATABASE IF EXISTS {schema}"))
            .unwrap();
    }
}

/// Runs every client's script at once, each on its own connection from
/// `connect(client, names)`; returns each client's outcomes.
fn run_side(
    scripts: &[Vec<Op>],
    names: &[Names],
    connect: &(dyn Fn(&Names) -> Conn + Sync),
) -> Vec<Vec<Outcome>> {
    thread::scope(|s| {
        let handles: Vec<_> = scripts
            .iter()
            .zip(names)
            .map(|(script, names)| {
                s.spawn(move || {
                    let reconnect = || connect(names);
                    let mut conn = None;
                    script
                        .iter()
                        .map(|op| run_op(&mut conn, op, names, &reconnect))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .map(|v| v.parse().unwrap_or_else(|_| panic!("{name}={v} is not a number")))
        .unwrap_or(default)
}

/// The first mismatch of each client, with the client's steps before it.
/// With `excused` (the causal-reads soak), mismatches that the read/write
/// split's documented loss of a replica read's warnings explains are
/// skipped and described there instead (see [`replica_warnings`]).
fn diff(
    tag: &str,
    scripts: &[Vec<Op>],
    direct: &[Vec<Outcome>],
    through: &[Vec<Outcome>],
    mut excused: Option<&mut Vec<String>>,
) -> String {
    let mut out = String::new();
    for (client, ((script, d), f)) in scripts.iter().zip(direct).zip(through).enumerate() {
        let first = match excused.as_deref_mut() {
            Some(excused) => {
                let mut notes = Vec::new();
                let universal = std::env::var("FUNNEL_DIFF_CAUSAL").is_ok_and(|v| v == "universal");
                let first = replica_warnings::first_difference(script, d, f, universal, &mut notes);
                excused.extend(notes.into_iter().map(|n| format!("{tag} client {client} {n}")));
                first
            }
            None => d.iter().zip(f).position(|(d, f)| d != f),
        };
        let Some(i) = first else {
            continue;
        };
        let _ = writeln!(out, "{tag} client {client} step {i}: `{}`", script[i]);
        for (j, op) in script.iter().enumerate().take(i).skip(i.saturating_sub(8)) {
            let _ = writeln!(out, "    before {j}: `{op}` -> {:?}", d[j]);
        }
        let _ = writeln!(out, "  direct: {:?}\n  funnel: {:?}", d[i], f[i]);
    }
    out
}

#[test]
fn differential_sessions_match_direct_mariadb() {
    let seed0 = env_or("FUNNEL_DIFF_SEED", DEFAULT_SEED);
    let iterations = env_or("FUNNEL_DIFF_ITERATIONS", DEFAULT_ITERATIONS);
    let clients = env_or("FUNNEL_DIFF_CLIENTS", DEFAULT_CLIENTS);
    let ops = env_or("FUNNEL_DIFF_OPS", DEFAULT_OPS);

    let (db, proxy, admin) = start();
    let port = proxy.local_addr().port();

    let started = Instant::now();
    let mut failures = String::new();
    let mut steps = 0;
    for seed in seed0..seed0 + iterations {
        let scripts: Vec<Vec<Op>> = (0..clients).map(|c| script(seed, c, ops)).collect();
        steps += scripts.iter().map(Vec::len).sum::<usize>();
        failures.push_str(&compare(db, port, &format!("seed {seed}"), &scripts));
    }
    let untracked = pinned_since_start(&admin, "untracked_state");
    let local_sets = stat_total(&admin, "sets_answered_locally");
    let unpinned = stat_total(&admin, "calls_unpinned");
    eprintln!(
        "differential: seeds {seed0}..{}, {clients} clients, {steps} steps each way in {:?}, \
         {untracked} sessions pinned for stored code's state, {local_sets} SETs answered locally, \
         {unpinned} CALLs unpinned",
        seed0 + iterations,
        started.elapsed()
    );
    assert!(
        failures.is_empty(),
        "Funnel answered differently from a direct connection \
         (rerun one seed with FUNNEL_DIFF_SEED=n FUNNEL_DIFF_ITERATIONS=1):\n{failures}"
    );
    // The stored code did change state behind the statements' text, and
    // Funnel saw it: the scripts test what they mean to.
    assert!(
        untracked > 0 || clients * ops < 200,
        "no session was pinned for untracked state"
    );
}

/// The soak of [`differential_sessions_match_direct_mariadb`] through the
/// read/write split with `causal_reads`: Funnel fronts a writer and a
/// read-only GTID replica of it, user `app` sends its reads to the replica,
/// and the direct side runs on the writer. Every answer must still be the
/// writer's: a difference is a stale read (a wait that did not cover the
/// session's writes), a statement classed as a read that is not (ERR 1290
/// on the read-only replica), or session state that does not follow the
/// session to the replica. Two seeds by default; `FUNNEL_DIFF_*` as for the
/// soak (`FUNNEL_DIFF_ITERATIONS=n` for a longer run).
#[test]
fn differential_causal_reads_match_direct_writer() {
    let seed0 = env_or("FUNNEL_DIFF_SEED", DEFAULT_SEED);
    let iterations = env_or("FUNNEL_DIFF_ITERATIONS", 2);
    let clients = env_or("FUNNEL_DIFF_CLIENTS", DEFAULT_CLIENTS);
    let ops = env_or("FUNNEL_DIFF_OPS", DEFAULT_OPS);

    let (writer, replica) = replicated_pair();
    let (proxy, _admin) = start_split(&writer, &replica);
    let port = proxy.local_addr().port();

    let started = Instant::now();
    let mut failures = String::new();
    let mut excused = Vec::new();
    let mut steps = 0;
    for seed in seed0..seed0 + iterations {
        let scripts: Vec<Vec<Op>> = (0..clients)
            .map(|c| replica_script(script(seed, c, ops)))
            .collect();
        steps += scripts.iter().map(Vec::len).sum::<usize>();
        failures.push_str(&compare_on(
            &writer,
            Some(&replica),
            port,
            &format!("seed {seed}"),
            &scripts,
            Some(&mut excused),
        ));
    }
    // The documented limit's differences, each once: visible, and counted.
    for note in &excused {
        eprintln!("excused (a replica read's warnings let go, docs/configuration.md): {note}");
    }
    let (waited, at_once, on_writer) = proxy.snapshots().iter().fold((0, 0, 0), |(w, s, o), shard| {
        let c = &shard.counters;
        (
            w + c.causal_waits,
            s + c.causal_waits_skipped,
            o + c.causal_reads_on_writer,
        )
    });
    eprintln!(
        "differential (causal reads): seeds {seed0}..{}, {clients} clients, {steps} steps each way \
         in {:?}, reads after a write: {waited} waited on the replica, {at_once} served there at \
         once, {on_writer} sent to the writer; {} answers excused as a replica read's warnings let \
         go",
        seed0 + iterations,
        started.elapsed(),
        excused.len()
    );
    assert!(
        failures.is_empty(),
        "Funnel (causal reads) answered differently from a direct connection to the writer \
         (rerun one seed with FUNNEL_DIFF_SEED=n FUNNEL_DIFF_ITERATIONS=1):\n{failures}"
    );
    // The replica did serve reads after writes: the run tests what it means to.
    assert!(
        waited + at_once > 0 || clients * ops < 200,
        "no read after a write went to the replica"
    );
}

/// The [`STATE_WRITERS`] that the split reads on the replica: a single
/// `SELECT` of a function that sets session variables. The server reports
/// the change, but on a read-only server Funnel does not pin the session
/// (its writes could not follow it there) and the state is lost, a known
/// limit (docs/multiplexing.md, `untracked_state`), so these differ from a
/// direct connection by design.
const READS_THAT_SET_STATE: &[&str] = &[
    "SELECT f_fx(3)",
    "SELECT f_tz()",
    "SELECT f_mode(), @@sql_mode",
    "SELECT f_div(), 1/3",
    "SELECT id, f_fx(id) FROM t ORDER BY id",
    "SELECT f_fx(8)",
    "SELECT f_div()",
];

/// `script` without the steps of [`READS_THAT_SET_STATE`].
fn replica_script(script: Vec<Op>) -> Vec<Op> {
    script
        .into_iter()
        .filter(|op| !matches!(op, Op::Query(sql) | Op::Exec(sql) if READS_THAT_SET_STATE.contains(&sql.as_str())))
        .collect()
}

/// A writer with a binary log and a read-only replica of it by GTID, each
/// with the backend user and schema `df_sp` of [`server`] made on its own
/// (the writer's binary log starts after them). The replica's user may
/// not write past `read_only` (`GRANT ALL` gives `READ_ONLY ADMIN`), so a
/// write Funnel sends there fails with ERR 1290 as it would for an
/// application's account.
fn replicated_pair() -> (MariaDb, MariaDb) {
    let start = |args: &[&str]| {
        let mut b = MariaDb::builder();
        for a in args {
            b = b.server_arg(*a);
        }
        let db = b.start().unwrap_or_else(|e| panic!("{e}"));
        prepare_server(&db);
        db
    };
    // The scripts create functions that declare neither DETERMINISTIC nor
    // NO SQL; with a binary log the server refuses those (ERR 1418) unless
    // it trusts their creators, on both sides alike. Row-based logging:
    // with statements logged, a temporary table that a session's
    // `COM_RESET_CONNECTION` or `COM_CHANGE_USER` dropped on the writer
    // lived on in the replica's applier, and a later `INSERT INTO k` of
    // that connection met the replica's stale temporary `k` there (ERR
    // 1136, replication stopped; the direct side's, seed 3000, level 4).
    let writer = start(&[
        "--log-bin=binlog",
        "--server-id=1",
        "--binlog-format=ROW",
        "--log-bin-trust-function-creators=1",
    ]);
    writer.exec("CREATE USER repl@'%' IDENTIFIED BY 'rpw'");
    writer.exec("GRANT REPLICATION SLAVE ON *.* TO repl@'%'");
    writer.exec("RESET MASTER");
    let replica = start(&["--read-only", "--server-id=2"]);
    replica.exec("REVOKE READ_ONLY ADMIN ON *.* FROM diff_user@'%'");
    replica.exec(&format!(
        "CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT={}, MASTER_USER='repl', \
         MASTER_PASSWORD='rpw', MASTER_USE_GTID=slave_pos",
        writer.port()
    ));
    replica.exec("START SLAVE");
    (writer, replica)
}

/// Waits until `replica` has applied all of `writer`'s binary log (the new
/// schemas before a script reads them there); panics with the replica's
/// status when its replication stopped or did not catch up.
fn caught_up(writer: &MariaDb, replica: &MariaDb, tag: &str) {
    let pos: String = writer
        .root()
        .query_first("SELECT @@global.gtid_binlog_pos")
        .unwrap()
        .unwrap();
    let mut root = replica.root();
    let done: Option<i64> = root
        .query_first(format!("SELECT MASTER_GTID_WAIT('{pos}', 60)"))
        .unwrap()
        .unwrap();
    if done != Some(0) {
        let status: Vec<(Option<String>, Option<String>)> = root
            .query::<mysql::Row, _>("SHOW SLAVE STATUS")
            .unwrap()
            .iter()
            .map(|row| (row.get("Slave_SQL_Running"), row.get("Last_SQL_Error")))
            .collect();
        panic!("{tag}: the replica did not reach {pos}: {status:?}");
    }
}

/// Funnel in front of [`replicated_pair`]: user `app` with the writer as
/// its default hostgroup, the replica as its read hostgroup and causal
/// reads (`FUNNEL_DIFF_CAUSAL=universal` for `causal_reads: universal`);
/// otherwise as [`start`]. The monitor is slow to mark a server
/// down: on a loaded machine its checks of the replica timed out mid-run,
/// and the clients' logins got ERR 9004 (no backend in `readers`).
fn start_split(writer: &MariaDb, replica: &MariaDb) -> (Proxy, funnel_admin::Listeners) {
    let causal = std::env::var("FUNNEL_DIFF_CAUSAL").unwrap_or_else(|_| "true".into());
    let yaml = format!(
        "listen: 127.0.0.1:0\ncores: 2\n\
         users:\n  - name: app\n    password: apppw\n    default_hostgroup: writer\n\
         \x20   read_hostgroup: readers\n    causal_reads: {causal}\n    causal_reads_timeout: 5s\n\
         backends:\n\
         \x20 - name: primary\n    address: {}\n    user: diff_user\n    password: dpw\n    hostgroup: writer\n\
         \x20 - name: replica\n    address: {}\n    user: diff_user\n    password: dpw\n    hostgroup: readers\n\
         pool:\n  max_per_core: 2\n  min_idle_per_core: 1\n\
         backlog:\n  wait_timeout: 60s\n\
         monitor:\n  interval: 200ms\n  timeout: 5s\n  failures_before_down: 20\n",
        writer.addr(),
        replica.addr(),
    );
    let (proxy, admin) = start_with(&yaml);
    // Until the monitor has seen the replica, reads wait for its verdict.
    funnel_testkit::wait_until_within(
        "both backends checked",
        std::time::Duration::from_secs(10),
        || proxy.snapshots()[0].pools.iter().all(|p| p.last_check.is_some()),
    );
    (proxy, admin)
}

/// Stored code that only reads session state (a function returning
/// variables, a trigger copying `@@time_zone` into the row) pins nothing,
/// in text and prepared statements, and reads each client's own values
/// while the clients share two backend connections per core.
#[test]
fn differential_read_only_stored_code_does_not_pin() {
    let q = |sql: &str| Op::Query(sql.to_owned());
    let script = |i: usize| -> Vec<Op> {
        let tz = TIME_ZONES[i % TIME_ZONES.len()];
        let mut ops = vec![
            q(&format!("SET time_zone = {tz}")),
            q(&format!("SET @trig = {i}, @fx = 'c{i}'")),
        ];
        for round in 0..3 {
            ops.extend(STATE_READERS.iter().map(|s| q(s)));
            ops.extend(PREPARED_STATE_READERS.iter().map(|s| Op::Exec((*s).to_owned())));
            ops.push(q(&format!("SET @trig = {}", i * 10 + round)));
            ops.push(q(tz_set(i + round)));
            if round == 1 {
                ops.push(Op::Reset);
            }
        }
        ops
    };
    let scripts: Vec<Vec<Op>> = (0..8).map(script).collect();
    let (db, proxy, admin) = start();
    let failures = compare(db, proxy.local_addr().port(), "ro", &scripts);
    assert!(
        failures.is_empty(),
        "Funnel answered differently from a direct connection:\n{failures}"
    );
    assert_eq!(pinned_since_start(&admin, "untracked_state"), 0);
    // Whereas one writer pins.
    let failures = compare(
        db,
        proxy.local_addr().port(),
        "rw",
        &[vec![q(STATE_WRITERS[0]), q("SELECT @trig")]],
    );
    assert!(failures.is_empty(), "{failures}");
    assert_eq!(pinned_since_start(&admin, "untracked_state"), 1);
}

/// A `SET time_zone` for step `n` of the read-only script.
fn tz_set(n: usize) -> &'static str {
    [
        "SET time_zone = '+01:00'",
        "SET time_zone = '-02:00'",
        "SET time_zone = DEFAULT",
    ][n % 3]
}

/// Runs `scripts` (one per client) directly and through Funnel on `port`,
/// each side on its own fresh schemas (named after `tag`); the mismatches,
/// or nothing.
fn compare(db: &MariaDb, port: u16, tag: &str, scripts: &[Vec<Op>]) -> String {
    compare_on(db, None, port, tag, scripts, None)
}

/// [`compare`], with `replica` (replicating from `db`) given the new
/// schemas before the scripts start, and checked still replicating after;
/// `excused` as for [`diff`].
fn compare_on(
    db: &MariaDb,
    replica: Option<&MariaDb>,
    port: u16,
    tag: &str,
    scripts: &[Vec<Op>],
    excused: Option<&mut Vec<String>>,
) -> String {
    if std::env::var_os("FUNNEL_DIFF_PRINT").is_some() {
        for (c, script) in scripts.iter().enumerate() {
            for (i, op) in script.iter().enumerate() {
                eprintln!("{tag} client {c} step {i}: {op}");
            }
        }
    }
    let names = |side| -> Vec<Names> { (0..scripts.len()).map(|c| Names::new(tag, side, c)).collect() };
    let (direct_names, funnel_names) = (names("d"), names("f"));
    let all: Vec<&Names> = direct_names.iter().chain(&funnel_names).collect();
    let all_names = |each: &(dyn Fn(&Names) + Sync)| {
        thread::scope(|s| {
            for n in &all {
                s.spawn(move || each(n));
            }
        })
    };
    all_names(&|n| setup_schemas(db, n));
    if let Some(replica) = replica {
        caught_up(db, replica, tag);
    }
    // A login that fails names the run (its seed) and the client.
    let login = |port, user, pw, n: &Names| {
        Conn::new(opts(port, user, pw, &n.a)).unwrap_or_else(|e| panic!("{tag}: login of {}: {e}", n.a))
    };
    let direct = run_side(scripts, &direct_names, &|n| {
        login(db.port(), "diff_user", "dpw", n)
    });
    let through = run_side(scripts, &funnel_names, &|n| {
        if let Some(replica) = replica {
            // Causal reads are the session's own writes: a new session
            // (a script's reconnect) may read the replica before it has
            // applied the old session's, as any other client may
            // (configuration.md, `causal_reads`). It starts once the
            // replica has them, so that what it reads is the writer's.
            caught_up(db, replica, tag);
        }
        login(port, "app", "apppw", n)
    });
    all_names(&|n| drop_schemas(db, n));
    if let Some(replica) = replica {
        caught_up(db, replica, tag);
    }
    diff(tag, scripts, &direct, &through, excused)
}

/// The shared server (with the backend user) and a Funnel in front of it
/// with two backend connections per core, so clients share them.
fn start() -> (&'static MariaDb, Proxy, funnel_admin::Listeners) {
    let db = server();
    let yaml = format!(
        "listen: 127.0.0.1:0\ncores: 2\n\
         users:\n  - name: app\n    password: apppw\n\
         backends:\n  - name: primary\n    address: {}\n    user: diff_user\n    password: dpw\n\
         pool:\n  max_per_core: 2\n  min_idle_per_core: 1\n\
         backlog:\n  wait_timeout: 60s\n",
        db.addr(),
    );
    let (proxy, admin) = start_with(&yaml);
    (db, proxy, admin)
}

/// Funnel from `yaml` (listener, users, backends and pools), with the admin
/// listener and the scripts' `stateless_procedures` added.
fn start_with(yaml: &str) -> (Proxy, funnel_admin::Listeners) {
    let procedures: String = STATELESS_LISTED
        .iter()
        .map(|p| format!("  - \"*.{p}\"\n"))
        .collect();
    let yaml = format!(
        "{yaml}admin:\n  listen: 127.0.0.1:0\n  user: admin\n  password: secret\n\
         stateless_procedures:\n{procedures}"
    );
    let cfg = Config::from_yaml_str(&yaml).unwrap();
    let proxy = Proxy::start(cfg.clone()).unwrap();
    let admin = funnel_admin::start(&cfg, proxy.handle(), None).unwrap();
    (proxy, admin)
}

/// The shared server, with the backend user and schema `df_sp`.
fn server() -> &'static MariaDb {
    static ONCE: Once = Once::new();
    let db = MariaDb::shared();
    ONCE.call_once(|| prepare_server(db));
    db
}

/// What every script needs of a server: the backend user and schema
/// `df_sp` with its function.
fn prepare_server(db: &MariaDb) {
    db.create_user("diff_user", "dpw");
    db.root()
        .query_drop(
            "CREATE DATABASE df_sp; USE df_sp; \
             CREATE FUNCTION f_sq(n INT) RETURNS INT DETERMINISTIC RETURN n * n",
        )
        .unwrap();
}

/// How many clients Funnel pinned for `reason` since it started.
fn pinned_since_start(admin: &funnel_admin::Listeners, reason: &str) -> u64 {
    let port = admin.admin.as_ref().unwrap().local_addr().port();
    let mut conn = Conn::new(funnel_testkit::client_opts(port, "admin", "secret")).unwrap();
    let rows: Vec<(String, String, String)> = conn.query("SHOW MULTIPLEXING").unwrap();
    rows.iter()
        .find(|(what, key, _)| what == "pinned_since_start_by_reason" && key == reason)
        .map_or(0, |(_, _, v)| v.parse().unwrap())
}

/// A total of Funnel's `SHOW STATS` since it started.
fn stat_total(admin: &funnel_admin::Listeners, name: &str) -> u64 {
    let port = admin.admin.as_ref().unwrap().local_addr().port();
    let mut conn = Conn::new(funnel_testkit::client_opts(port, "admin", "secret")).unwrap();
    let rows: Vec<(String, String, String)> = conn.query("SHOW STATS").unwrap();
    rows.iter()
        .find(|(scope, key, _)| scope == "all" && key == name)
        .map_or(0, |(_, _, v)| v.parse().unwrap())
}

/// Shrinks client `c`'s script of seed `n` (`FUNNEL_DIFF_MINIMISE=n:c:step`,
/// `step` the one the soak reported) by delta debugging to the fewest of
/// the steps before `step` that still make it answer differently, and
/// prints them. The other clients run their scripts alongside as in the
/// soak, since a difference may need their contention (seed 502105 needed
/// a statement prepared on a connection the client was not pinned to);
/// `FUNNEL_DIFF_MINIMISE_ALONE=1` runs the client alone, and
/// `FUNNEL_DIFF_MINIMISE_TRIES=n` counts a candidate as failing when any
/// of `n` runs does (for a timing-dependent difference).
/// `FUNNEL_DIFF_MINIMISE_CAUSAL=1` shrinks a difference of
/// [`differential_causal_reads_match_direct_writer`] instead: its scripts,
/// through the read/write split, with its filter.
#[test]
#[ignore = "a tool: FUNNEL_DIFF_MINIMISE=seed:client:step"]
fn differential_minimise() {
    let spec = std::env::var("FUNNEL_DIFF_MINIMISE").expect("FUNNEL_DIFF_MINIMISE=seed:client:step");
    let parts: Vec<u64> = spec
        .split(':')
        .map(|p| {
            p.parse()
                .unwrap_or_else(|_| panic!("FUNNEL_DIFF_MINIMISE={spec}: not seed:client:step"))
        })
        .collect();
    let &[seed, client, step] = &parts[..] else {
        panic!("FUNNEL_DIFF_MINIMISE={spec}: not seed:client:step");
    };
    let (client, step) = (client as usize, step as usize);
    let clients = env_or("FUNNEL_DIFF_CLIENTS", DEFAULT_CLIENTS);
    let ops = env_or("FUNNEL_DIFF_OPS", DEFAULT_OPS);
    let tries = env_or("FUNNEL_DIFF_MINIMISE_TRIES", 1usize);
    let alone = std::env::var_os("FUNNEL_DIFF_MINIMISE_ALONE").is_some();
    let causal = std::env::var_os("FUNNEL_DIFF_MINIMISE_CAUSAL").is_some();
    let pair = causal.then(replicated_pair);
    let (proxy, _admin) = match &pair {
        Some((writer, replica)) => start_split(writer, replica),
        None => {
            let (_, proxy, admin) = start();
            (proxy, admin)
        }
    };
    let (db, replica) = match &pair {
        Some((writer, replica)) => (writer, Some(replica)),
        None => (server(), None),
    };
    let port = proxy.local_addr().port();
    let script = |seed, c, ops| match causal {
        true => replica_script(script(seed, c, ops)),
        false => script(seed, c, ops),
    };
    let full = script(seed, client, ops);
    let target = full[step].clone();
    let others: Vec<Vec<Op>> = (0..clients).map(|c| script(seed, c, ops)).collect();
    let mut runs = 0;
    let mut fails = |before: &[Op]| -> bool {
        let mut mine = before.to_vec();
        mine.push(target.clone());
        let (scripts, at) = if alone {
            (vec![mine], 0)
        } else {
            let mut all = others.clone();
            all[client] = mine;
            (all, client)
        };
        // Only a difference at the step itself counts, not another one
        // the shorter script meets first.
        let wanted = format!("client {at} step {}:", before.len());
        (0..tries).any(|_| {
            runs += 1;
            let tag = format!("min{seed} {runs}");
            let mut excused = Vec::new();
            let out = compare_on(db, replica, port, &tag, &scripts, causal.then_some(&mut excused));
            out.lines().any(|l| l.contains(&wanted))
        })
    };
    let mut kept: Vec<Op> = full[..step].to_vec();
    assert!(
        fails(&kept),
        "seed {seed} client {client} step {step} answers the same now"
    );
    let mut chunks = 2;
    while !kept.is_empty() {
        let size = kept.len().div_ceil(chunks);
        let smaller = (0..chunks)
            .map(|i| (i * size, ((i + 1) * size).min(kept.len())))
            .filter(|(from, to)| from < to)
            .map(|(from, to)| [&kept[..from], &kept[to..]].concat())
            .find(|candidate| fails(candidate));
        match smaller {
            Some(candidate) => {
                kept = candidate;
                chunks = (chunks - 1).max(2);
            }
            None if chunks >= kept.len() => break,
            None => chunks = (chunks * 2).min(kept.len()),
        }
    }
    eprintln!(
        "seed {seed} client {client} step {step}, {} of its steps before it kept ({runs} runs):",
        kept.len()
    );
    for op in kept.iter().chain([&target]) {
        eprintln!("    {op:?},");
    }
}

/// Scripts that once answered differently, kept as they were found.
#[test]
fn differential_regressions_match_direct_mariadb() {
    let q = |sql: &str| Op::Query(sql.to_owned());
    let scripts = vec![
        // The driver's own query at login leaves ROW_COUNT() at -1;
        // COM_INIT_DB is answered like a statement and sets it to 0.
        vec![
            q("SELECT 1"),
            Op::InitDb("{b}"),
            q("SELECT ROW_COUNT()"),
            Op::InitDb("{a}"),
        ],
        vec![
            Op::Reconnect,
            Op::InitDb("{a}"),
            q("SELECT ROW_COUNT(), DATABASE()"),
        ],
        // A prepare the server refuses is a failed statement: ROW_COUNT()
        // reads -1 after it (in a read-only transaction, an INSERT is
        // refused at prepare).
        vec![
            q("INSERT INTO k VALUES (5, 5)"),
            Op::Exec("SELECT nosuch FROM t".into()),
            q("SELECT ROW_COUNT()"),
            q("START TRANSACTION READ ONLY"),
            Op::Exec("INSERT INTO t (v, s) VALUES (7, 'p')".into()),
            q("SELECT ROW_COUNT()"),
            q("ROLLBACK"),
        ],
        // Several SETs in one query open no table either: the warnings
        // before them stay the client's to read.
        vec![
            q("SELECT CAST('x' AS SIGNED)"),
            q("SET NAMES latin1; SET time_zone = '+02:00'"),
            q("SHOW WARNINGS"),
            q("SELECT CAST('y' AS SIGNED)"),
            q("UNLOCK TABLES"),
            q("SHOW WARNINGS"),
        ],
        // A pinned session (here for the server's ROW_COUNT()) that left
        // the schema a statement was prepared in: the server runs the
        // execute in the statement's schema and returns to the session's
        // without a statement; selecting it on the connection instead
        // would be one, and leave ROW_COUNT() at 0 (seed 2017).
        vec![
            Op::Exec("SELECT @@time_zone, @@sql_mode".into()),
            Op::Exec("SELECT CONNECTION_ID() > 0".into()),
            q("USE {b}"),
            Op::Exec("SELECT @@time_zone, @@sql_mode".into()),
            q("SELECT ROW_COUNT()"),
            Op::Exec("SELECT id, v FROM t ORDER BY id".into()),
            q("SELECT ROW_COUNT(), DATABASE()"),
        ],
        // A prepare makes the variables its statement assigns in the
        // client's own session, NULL with their value's type; they read
        // as never set (binary NULLs) where the client was not pinned on
        // the connection that made them (soak seeds 4 and 5 of the new
        // steps). One that set them itself keeps its values.
        vec![
            q("SET NAMES latin1"),
            Op::Prepare("SET @y = 'lit'".into()),
            Op::Prepare("SELECT v, @w := v + 1 FROM t ORDER BY id".into()),
            q("SELECT @y, @w, @t"),
        ],
        vec![
            q("SET @y = 1, @w = 2"),
            Op::Prepare("SET @y = 'lit'".into()),
            Op::Prepare("SELECT v, @w := v + 1 FROM t ORDER BY id".into()),
            q("SET NAMES latin1"),
            Op::ExecArg("SET @y = ?".into(), 3),
            q("SELECT @y, @w, @t"),
        ],
        // `SELECT ... INTO` returns no rows, but leaves the count it
        // selected for FOUND_ROWS() (1 also when it fails for selecting
        // more than one), text or prepared (soak seeds 50053, 50131).
        vec![
            q("SELECT s FROM w ORDER BY s, HEX(s)"),
            Op::Exec("SELECT v INTO @t FROM t ORDER BY id LIMIT 1".into()),
            q("SELECT FOUND_ROWS()"),
        ],
        vec![
            q("SELECT s FROM w ORDER BY s, HEX(s)"),
            q("SELECT v INTO @t FROM t"),
            q("SELECT FOUND_ROWS()"),
            q("SELECT v INTO @t FROM t WHERE id > 1000"),
            q("INSERT INTO k VALUES (9, 9)"),
            q("SELECT FOUND_ROWS(), ROW_COUNT()"),
        ],
        // A prepare describes a user variable's column by its type at the
        // time: the second prepare (the same text, schema and variables)
        // must not be answered with the first one's LONGBLOB (soak seed
        // 50178).
        vec![
            Op::Prepare("SELECT @y, @w, @t".into()),
            q("SET @y = 5, @w = 'x'"),
            Op::Prepare("SELECT @y, @w, @t".into()),
            Op::Exec("SELECT @y, @w, @t".into()),
        ],
        // MariaDB's COM_CHANGE_USER, like its COM_RESET_CONNECTION, keeps
        // what FOUND_ROWS() answers (and resets LAST_INSERT_ID() and
        // ROW_COUNT()); the last script's count is the server's, on the
        // connection the session was pinned to (soak seed 92002 with
        // COM_CHANGE_USER steps).
        vec![
            q("SELECT s FROM w ORDER BY s, HEX(s)"),
            Op::ChangeUser,
            q("SELECT FOUND_ROWS()"),
        ],
        vec![
            q("SELECT s FROM w ORDER BY s, HEX(s)"),
            q("SELECT * FROM nosuch"),
            Op::ChangeUser,
            q("SELECT * FROM nosuch"),
            q("SELECT LAST_INSERT_ID(), ROW_COUNT(), FOUND_ROWS()"),
        ],
        vec![
            q("INSERT INTO t (v, s) VALUES (1, 'a')"),
            Op::ChangeUser,
            q("SELECT LAST_INSERT_ID(), ROW_COUNT(), FOUND_ROWS()"),
        ],
        vec![
            q("SELECT LAST_INSERT_ID(42)"),
            q("SELECT SQL_CALC_FOUND_ROWS id FROM t LIMIT 1"),
            Op::ChangeUser,
            q("SELECT LAST_INSERT_ID(), ROW_COUNT(), FOUND_ROWS()"),
        ],
        // A SET that pins for the last insert id sets no count for
        // FOUND_ROWS(): the pinned connection's is another client's, or
        // none, until a result set there (soak seed 80369).
        vec![
            Op::Exec("SELECT FROM_UNIXTIME(1600000000)".into()),
            q("SET sql_auto_is_null = 1"),
            q("SELECT LAST_INSERT_ID(), ROW_COUNT(), FOUND_ROWS()"),
            q("SELECT FOUND_ROWS()"),
            q("SET sql_auto_is_null = 0"),
            q("SELECT s FROM w ORDER BY s, HEX(s)"),
            q("SET last_insert_id = 5"),
            q("SELECT FOUND_ROWS()"),
            Op::Reset,
            q("SELECT FOUND_ROWS()"),
        ],
        vec![
            q("SELECT s FROM w ORDER BY s, HEX(s)"),
            q("SET @@identity = 7"),
            Op::ChangeUser,
            q("SELECT FOUND_ROWS()"),
        ],
        // A SET that fails on a later assignment has made the user
        // variables before it, NULL strings: the client reads that, and a
        // client that never set them still reads them as never set.
        vec![
            q("SET @sf = 1, time_zone = 'nosuch'"),
            q("SELECT COUNT(*) FROM t"),
            q("SELECT @sf"),
            q("SET @sg = 'x'"),
            q("SET @sg = 1, @sh = 2, time_zone = 'nosuch'"),
            q("SELECT COUNT(*) FROM t"),
            q("SELECT @sg, @sh"),
        ],
        vec![
            q("SET @sh = 1, time_zone = 'nosuch'"),
            q("COMMIT"),
            q("SELECT COUNT(*) FROM t"),
            q("SELECT @sf"),
            q("SELECT COUNT(*) FROM k"),
            q("SELECT @sf, @sg"),
        ],
        vec![
            q("SELECT COUNT(*) FROM t"),
            q("SELECT @sf, @sg, @sh"),
            q("SELECT COUNT(*) FROM k"),
            q("SELECT @sf, @sg, @sh"),
            q("SELECT COUNT(*) FROM t"),
            q("SELECT @sf, @sg, @sh"),
        ],
        // A select item with a call inside is named by its text, not by
        // the value Funnel put in its place (soak seed 110002).
        vec![
            q("INSERT INTO t (v, s) VALUES (1, 'a')"),
            q("SELECT CONNECTION_ID() = CONNECTION_ID(), LAST_INSERT_ID() + 1, \
               ROW_COUNT() > 0, FOUND_ROWS() = 1 FROM t LIMIT 1"),
            q("SELECT LAST_INSERT_ID() + 1 n, ROW_COUNT() - 1 AS m"),
        ],
        // ROW_COUNT() and FOUND_ROWS() replaced inside an expression keep
        // the length the server gives the expression around the call.
        vec![
            q("UPDATE k SET v = v + 1"),
            q(
                "SELECT ROW_COUNT() + 1, ROW_COUNT() * 2, IFNULL(ROW_COUNT(), 0), \
               GREATEST(ROW_COUNT(), 1), ROW_COUNT() / 2, -ROW_COUNT(), ROW_COUNT()",
            ),
            q("SELECT v FROM k"),
            q(
                "SELECT FOUND_ROWS() + 1, IFNULL(FOUND_ROWS(), 0), FOUND_ROWS() DIV 1, \
               COALESCE(FOUND_ROWS()), ROW_COUNT() - 1, -ROW_COUNT(), FOUND_ROWS()",
            ),
        ],
        // sql_mode=ORACLE's SQL%ROWCOUNT, replaced inside an expression,
        // keeps the length the server gives the expression around it.
        vec![
            q("SET sql_mode = ORACLE"),
            q("UPDATE k SET v = v + 1"),
            q("SELECT SQL%ROWCOUNT + 1, SQL%ROWCOUNT * 2, SQL%ROWCOUNT - 1, \
               IFNULL(SQL%ROWCOUNT, 0), GREATEST(SQL%ROWCOUNT, 1), SQL%ROWCOUNT FROM DUAL"),
            q("SET sql_mode = DEFAULT"),
        ],
        // A procedure's insert makes an id its CALL's OK does not carry:
        // the server answers LAST_INSERT_ID() from then on (soak seeds
        // 110009, 110025).
        vec![
            q("INSERT INTO t (v, s) VALUES (1, 'a')"),
            q("CALL p_ins()"),
            q("SELECT LAST_INSERT_ID(), ROW_COUNT(), FOUND_ROWS()"),
            q("UPDATE k SET v = v + 1"),
            q("SELECT @@identity, ROW_COUNT()"),
            Op::Exec("SELECT LAST_INSERT_ID()".into()),
            q("SELECT SQL_CALC_FOUND_ROWS id FROM t LIMIT 1"),
            q("CALL p_ins()"),
            q("SELECT LAST_INSERT_ID(), FOUND_ROWS()"),
        ],
        vec![
            q("SET sql_auto_is_null = 1"),
            q("CALL p_li()"),
            q("CALL p_ins()"),
            q("SELECT LAST_INSERT_ID(), ROW_COUNT(), FOUND_ROWS()"),
        ],
        // COM_PING is a statement to the server: ROW_COUNT() reads 0
        // after it, pinned or not (soak seed 110022 and 13 more).
        vec![
            q("UPDATE k SET v = v + 1"),
            Op::Ping,
            q("SELECT ROW_COUNT()"),
            q("SET sql_auto_is_null = 1"),
            q("SELECT id FROM t ORDER BY id"),
            Op::Ping,
            q("SELECT ROW_COUNT()"),
        ],
        // GET DIAGNOSTICS leaves ROW_COUNT() as it was (soak seed 110131).
        vec![
            q("UPDATE k SET v = v + 1"),
            q("GET DIAGNOSTICS @gn = NUMBER"),
            q("SELECT ROW_COUNT()"),
            q("SELECT CAST('x' AS SIGNED)"),
            q("GET DIAGNOSTICS CONDITION 1 @ge = MYSQL_ERRNO"),
            q("SELECT ROW_COUNT(), @ge"),
        ],
        vec![
            q("SET character_set_results = utf8mb4"),
            q("GET DIAGNOSTICS CONDITION 1 @ge = MYSQL_ERRNO"),
            q("SELECT ROW_COUNT()"),
            q("SELECT ROW_COUNT()"),
        ],
        // A HANDLER read returns rows but leaves FOUND_ROWS() as it was
        // (soak seed 110180).
        vec![
            q("SELECT id, v FROM k ORDER BY id"),
            q("HANDLER t OPEN"),
            q("HANDLER t READ FIRST"),
            q("SELECT FOUND_ROWS()"),
            q("HANDLER t READ NEXT"),
            q("SELECT LAST_INSERT_ID(), ROW_COUNT(), FOUND_ROWS()"),
            q("HANDLER t CLOSE"),
        ],
        // A COM_INIT_DB that fails is a failed statement: ROW_COUNT()
        // reads -1 after it (soak seed 150899 with the session steps).
        vec![
            q("UPDATE k SET v = v + 1"),
            Op::InitDb("nosuch_schema"),
            q("SELECT ROW_COUNT(), DATABASE()"),
            q("EXECUTE IMMEDIATE 'SELECT 1'"),
            q("UPDATE k SET v = v + 1"),
            Op::InitDb("nosuch_schema"),
            q("SELECT LAST_INSERT_ID(), ROW_COUNT(), FOUND_ROWS()"),
        ],
        // XA statements open no table: the diagnostics area of the
        // statement before stays, before the XA transaction and inside it
        // (soak seeds 150344, 150372 with the session steps).
        vec![
            q("SELECT * FROM nosuch"),
            q("XA START '{lk}'"),
            q("XA END '{lk}'"),
            q("XA PREPARE '{lk}'"),
            q("XA COMMIT '{lk}'"),
            q("SHOW WARNINGS"),
            q("XA START '{lk}'"),
            q("COMMIT"),
            q("XA END '{lk}'"),
            q("XA COMMIT '{lk}' ONE PHASE"),
            q("SELECT LAST_INSERT_ID()"),
            q("SHOW WARNINGS"),
        ],
        // Outside sql_mode=ORACLE, SQL%ROWCOUNT is a syntax error whose
        // message quotes the query from `%ROWCOUNT` on: Funnel leaves it
        // alone where the session set a mode without ORACLE itself (soak
        // seeds 300000, 300002, 300003 of the parse-mode steps).
        vec![
            q("UPDATE t SET v = v + 1 WHERE id <= 2"),
            q("SET sql_mode = 'IGNORE_SPACE,PIPES_AS_CONCAT'"),
            q("SELECT SQL%ROWCOUNT FROM DUAL"),
            q("SET @@sql_mode := 'ORACLE'"),
            q("UPDATE t SET v = v + 1 WHERE id <= 2"),
            q("SELECT SQL%ROWCOUNT FROM DUAL"),
            q("SET sql_mode = 'ANSI'"),
            q("SELECT SQL%ROWCOUNT"),
        ],
        // A compound statement may call a procedure (under ORACLE without
        // CALL): like a CALL, it runs after the client's own last insert id
        // is given to the connection, and the server answers for the ids
        // the procedure made from then on (soak seed 300006).
        vec![
            q("SET sql_mode = 'ORACLE'"),
            q("INSERT INTO t (v, s) VALUES (1, 'a')"),
            q("BEGIN p_li; END"),
            q("BEGIN p_ins; END"),
            q("SELECT LAST_INSERT_ID(), @@identity, FOUND_ROWS()"),
            q("SET STATEMENT sql_mode = 'ANSI_QUOTES' FOR BEGIN p_ins; END"),
            q("SELECT @@identity, @@last_insert_id"),
            q("SET sql_mode = DEFAULT"),
        ],
        vec![
            q("INSERT INTO t (v, s) VALUES (2, 'b')"),
            q("BEGIN NOT ATOMIC CALL p_ins(); END"),
            q("SELECT LAST_INSERT_ID(), ROW_COUNT()"),
        ],
        // `SELECT ... FROM DUAL` opens no table: the diagnostics area of
        // the statement before stays for the next read of it (soak seed
        // 300936, under sql_mode=ORACLE).
        vec![
            q("SELECT nosuch"),
            q("SELECT 1 FROM DUAL"),
            q("SELECT @@error_count, @@warning_count"),
        ],
        vec![
            q("SET sql_mode = 'ORACLE'"),
            q("SELECT nosuch"),
            q("SELECT SQL%ROWCOUNT FROM DUAL"),
            q("SELECT @@error_count, @@warning_count"),
        ],
        // LAST_INSERT_ID(expr) sets the id only where the server evaluates
        // it: an UPDATE of no row leaves the client's, which the pinned
        // connection must have been given first (soak seed 300958).
        vec![
            q("INSERT INTO t (v, s) VALUES (1, 'a')"),
            q("CREATE TEMPORARY TABLE k (id INT PRIMARY KEY, v INT, w INT DEFAULT 3)"),
            q("UPDATE k SET v = LAST_INSERT_ID(v + 1) WHERE id = 1"),
            q("SELECT LAST_INSERT_ID(), @@identity"),
        ],
        vec![
            q("INSERT INTO t (v, s) VALUES (2, 'b')"),
            q("UPDATE k SET v = LAST_INSERT_ID(v + 1) WHERE id = 99"),
            q("SELECT LAST_INSERT_ID()"),
        ],
        // A block (here under sql_mode=ORACLE) or CALL that returns no
        // rows but selects into a variable leaves the count it selected
        // for FOUND_ROWS(); one that selects nothing leaves the client's
        // (soak seed 301217).
        vec![
            q("SET sql_mode = 'ORACLE'"),
            q("SELECT s FROM w ORDER BY s, HEX(s)"),
            q("BEGIN SELECT COUNT(*) INTO @mv FROM t; END"),
            q("SELECT FOUND_ROWS(), @mv FROM DUAL"),
            q("SET sql_mode = DEFAULT"),
        ],
        vec![
            q("SELECT s FROM w ORDER BY s, HEX(s)"),
            q("BEGIN NOT ATOMIC SET @mv = 1; END"),
            q("SELECT FOUND_ROWS()"),
            q("BEGIN NOT ATOMIC SELECT v INTO @mv FROM t LIMIT 1; END"),
            q("SELECT LAST_INSERT_ID(), ROW_COUNT(), FOUND_ROWS()"),
        ],
        // SQL%ROWCOUNT is ROW_COUNT(), or FOUND_ROWS() where that is -1:
        // after a `SELECT ... INTO` (pinned for it) the server has the
        // count, not Funnel's record of the last result set (seed 400310).
        vec![
            q("SET sql_mode = 'ORACLE'"),
            q("SELECT 1 FROM DUAL UNION SELECT 2 FROM DUAL"),
            q("SELECT 7 INTO @t FROM DUAL"),
            q("SET @z = 1"),
            q("SELECT nosuch FROM DUAL"),
            q("SELECT ROW_COUNT(), SQL%ROWCOUNT FROM DUAL"),
        ],
        // A ping leaves the diagnostics area alone: a pinned session's goes
        // to its connection, and the client's error there still answers
        // SHOW WARNINGS after it (soak seed 400020).
        vec![
            q("BEGIN"),
            q("SET TRANSACTION READ ONLY"),
            Op::Ping,
            q("COMMIT"),
            q("SHOW WARNINGS"),
        ],
        // In a query of several statements that starts with one, the last
        // statement's rows count, as for any other query.
        vec![
            q("SELECT 1"),
            q("HANDLER t OPEN"),
            q("HANDLER t READ FIRST; SELECT id, v FROM k ORDER BY id"),
            q("SELECT FOUND_ROWS()"),
            q("HANDLER t CLOSE"),
        ],
        // A `GET DIAGNOSTICS` of a condition there is not warns (1758),
        // and that warning is the client's, kept through a `CALL` of a
        // procedure that opens no table (soak seeds 4 and 7 at level 5):
        // the diagnostics read did not keep its connection, and the
        // `CALL` that followed ran on another, or after Funnel gave the
        // count for `FOUND_ROWS()` with a statement that cleared it.
        vec![
            q("GET DIAGNOSTICS CONDITION 1 @ge = MYSQL_ERRNO"),
            q("CALL p_li()"),
            q("SHOW COUNT(*) WARNINGS"),
        ],
        vec![
            q("GET DIAGNOSTICS CONDITION 1 @ge = MYSQL_ERRNO"),
            q("BEGIN"),
            q("CALL sl_st_ac()"),
            Op::ExecArg("CALL sl_arg(?)".into(), 90),
            q("SHOW COUNT(*) WARNINGS"),
            q("COMMIT"),
            q("GET DIAGNOSTICS CONDITION 1 @ge = MYSQL_ERRNO"),
            q("CALL sl_st_ac()"),
            q("GET DIAGNOSTICS @sn = NUMBER"),
            q("SELECT @sn"),
        ],
    ];
    let (db, proxy, _admin) = start();
    let failures = compare(db, proxy.local_addr().port(), "reg", &scripts);
    assert!(
        failures.is_empty(),
        "Funnel answered differently from a direct connection:\n{failures}"
    );
}
