//! Every scan of a client's SQL text, fed generated text: token soup
//! built from the pieces that trip lexers (quotes of each kind,
//! backslashes, comments of each kind, statement separators, the words
//! and calls the scans look for, odd bytes). A panic would end the
//! client's session, and a scan that never ends would hold its whole core,
//! so each input must come back, whatever it is.
//!
//! `FUNNEL_SCAN_FUZZ_CASES=n` runs more cases than the default, and
//! `FUNNEL_SCAN_FUZZ_SEED=n` starts elsewhere (a failure prints its seed
//! and input).

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::command::{plan, Plan};
use super::rewrite::{self, LastResults, OnServer, Substitution};
use super::{dynamic_sql, named_locks, pinning, sql_lex, user_vars, variables};
use crate::prepared::execute;
use bytes::BytesMut;
use funnel_protocol::Capabilities;

/// The pieces inputs are made of.
const PIECES: &[&str] = &[
    "SELECT ",
    "SET ",
    "@",
    "@@",
    "@`",
    "@'",
    "@\"",
    "x",
    "1",
    " ",
    ";",
    ",",
    "(",
    ")",
    "'",
    "\"",
    "`",
    "\\",
    "\\'",
    "''",
    "--",
    "-- ",
    "#",
    "/*",
    "*/",
    "/*!",
    "/*!50700 ",
    "/*M!",
    "\n",
    "\t",
    "=",
    ":=",
    "LAST_INSERT_ID",
    "ROW_COUNT()",
    "FOUND_ROWS()",
    "CONNECTION_ID()",
    "GET_LOCK('a', 0)",
    "RELEASE_LOCK(",
    "IS_USED_LOCK(",
    "KILL ",
    "KILL QUERY ",
    "SHUTDOWN",
    "PREPARE s FROM ",
    "EXECUTE IMMEDIATE ",
    "EXECUTE s USING ",
    "CONCAT(",
    "LOCK TABLES t WRITE",
    "UNLOCK TABLES",
    "CREATE TEMPORARY TABLE ",
    "DROP ",
    "BEGIN",
    "COMMIT",
    "XA START 'x'",
    "SAVEPOINT a",
    "USE ",
    "SESSION ",
    "GLOBAL ",
    "time_zone",
    "sql_mode",
    "NAMES utf8mb4",
    "autocommit",
    "optimizer_switch='mrr=on'",
    "STATEMENT max_statement_time=1 FOR ",
    "NOWAIT",
    "SQL_CALC_FOUND_ROWS ",
    "INTO @v",
    "FOR UPDATE",
    "CALL p(",
    "BEGIN NOT ATOMIC ",
    "END",
    "IF ",
    "_utf8mb4'",
    "N'",
    "X'",
    "0x",
    "b'",
    "\u{00e9}",
    "\u{1f600}",
    "\u{0}",
    "\u{ff}",
    "$$",
    "DEFAULT",
    "NULL",
    "SQL_LOG_BIN",
    "PASSWORD(",
    "GRANT ",
    "CREATE USER ",
    "SET ROLE ",
    "session_track_state_change",
    "@@session.",
    "@@global.",
    // sql_mode=ORACLE / MSSQL / ANSI_QUOTES spellings.
    "[",
    "]",
    "[a']",
    "<<",
    ">>",
    "<<l>> ",
    "%",
    "SQL%ROWCOUNT",
    "SQL",
    "ROWCOUNT",
    "DECLARE ",
    "s.CURRVAL",
    " FROM DUAL",
    "`GET_LOCK`(",
    "\"GET_LOCK\"(",
    "`LAST_INSERT_ID`(",
    "\"LAST_INSERT_ID\"(",
    "[LAST_INSERT_ID](",
    "\u{b}",
    "INSERT INTO ",
    "CALL ",
];

fn input(rng: &mut StdRng) -> Vec<u8> {
    let mut out = Vec::new();
    for _ in 0..rng.gen_range(1..24) {
        if rng.gen_ratio(1, 12) {
            // A raw byte, anything (invalid UTF-8 included).
            out.push(rng.gen());
        } else {
            out.extend_from_slice(PIECES[rng.gen_range(0..PIECES.len())].as_bytes());
        }
    }
    out
}

/// Runs every scan over `sql`; the results are not checked, only that
/// each returns.
fn scan_all(sql: &[u8]) {
    let effect = pinning::classify(sql);
    std::hint::black_box(&effect);
    std::hint::black_box(pinning::ExecuteEffect::of(sql));
    std::hint::black_box(pinning::mentions_state_tracking(sql));
    std::hint::black_box(pinning::runs_kill(sql));
    std::hint::black_box(pinning::refusal(sql));
    std::hint::black_box(pinning::escape_readings(sql).count());
    std::hint::black_box(pinning::without_backslashes(sql));
    std::hint::black_box(sql_lex::ansi_quotes_form(sql));
    std::hint::black_box(sql_lex::multibyte_form(sql));
    std::hint::black_box(sql_lex::skip_leading_comments(sql));
    std::hint::black_box(sql_lex::only_separators(sql));
    std::hint::black_box(sql_lex::words(sql).count());
    std::hint::black_box(rewrite::mentions_previous_statement(sql));
    std::hint::black_box(rewrite::sets_last_insert_id(sql));
    std::hint::black_box(rewrite::mentions_last_insert_id(sql));
    std::hint::black_box(rewrite::later_statement_reads_last_insert_id(sql));
    std::hint::black_box(rewrite::reads_only_last_insert_id(sql));
    std::hint::black_box(rewrite::may_read_last_insert_id(sql));
    std::hint::black_box(rewrite::quoted_last_insert_id_call(sql));
    std::hint::black_box(sql_lex::brackets_form(sql));
    let last = LastResults {
        last_insert_id: 7,
        row_count: -1,
        found_rows: 3,
    };
    for on_server in [OnServer::None, OnServer::AllButInsertId, OnServer::All] {
        let how = Substitution {
            on_server,
            ..Substitution::from_record(&last, Some(9))
        };
        std::hint::black_box(rewrite::substitute(sql, &how));
    }
    let _ = std::hint::black_box(dynamic_sql::run_time_text(sql));
    std::hint::black_box(variables::parse_set(sql));
    std::hint::black_box(user_vars::made_by_prepare(sql));
    std::hint::black_box(user_vars::mentions_any(sql));
    std::hint::black_box(user_vars::dynamic_sql_refusal(
        sql,
        &user_vars::UserVars::default(),
    ));
    std::hint::black_box(named_locks::lock_names(sql));
    std::hint::black_box(named_locks::asks_lock_owner(sql));
    let mut payload = vec![0x03];
    payload.extend_from_slice(sql);
    std::hint::black_box(plan(&payload, Capabilities::CLIENT_PROTOCOL_41));
}

#[test]
fn scan_fuzz_every_scan_returns_on_any_text() {
    let env = |name: &str, default: u64| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let seed = env("FUNNEL_SCAN_FUZZ_SEED", 1);
    let cases = env("FUNNEL_SCAN_FUZZ_CASES", 3_000);
    for case in seed..seed + cases {
        let mut rng = StdRng::seed_from_u64(case);
        let sql = input(&mut rng);
        let run = std::panic::catch_unwind(|| scan_all(&sql));
        assert!(
            run.is_ok(),
            "seed {case}: a scan panicked on {:?}",
            String::from_utf8_lossy(&sql)
        );
    }
}

/// Commands of every kind with random bodies (truncated ids, lengths
/// that run past the end, parameter blocks of any shape), with and
/// without the capabilities that change their layout.
#[test]
fn scan_fuzz_every_command_is_planned_whatever_its_body() {
    let cases = std::env::var("FUNNEL_SCAN_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3_000u64);
    let caps = [
        Capabilities::CLIENT_PROTOCOL_41,
        Capabilities::CLIENT_PROTOCOL_41
            | Capabilities::CLIENT_SESSION_TRACK
            | Capabilities::CLIENT_DEPRECATE_EOF,
        Capabilities::EMPTY,
    ];
    for case in 0..cases {
        let mut rng = StdRng::seed_from_u64(case);
        let mut payload = vec![if rng.gen_ratio(1, 10) {
            rng.gen()
        } else {
            rng.gen_range(0..0x20)
        }];
        for _ in 0..rng.gen_range(0..40) {
            payload.push(if rng.gen_ratio(1, 3) {
                rng.gen_range(0..4)
            } else {
                rng.gen()
            });
        }
        let c = caps[rng.gen_range(0..caps.len())];
        let params: u16 = rng.gen_range(0..20);
        let run = std::panic::catch_unwind(|| {
            std::hint::black_box(matches!(plan(&payload, c), Plan::Quit));
            // An execute's parameter layout, read against a statement of
            // `params` parameters, and rewritten for a backend.
            std::hint::black_box(execute::bound_flag_missing(&payload, params));
            if let Ok(head) = execute::parse_execute(&payload, params) {
                let types = vec![8u8; 2 * usize::from(params)];
                let mut out = BytesMut::new();
                execute::rewrite_execute(&payload, &head, 3, Some(&types), &mut out);
                execute::rewrite_execute(&payload, &head, 3, None, &mut out);
            }
            if execute::statement_id(&payload).is_ok() {
                execute::rewrite_id(&payload, 3, &mut BytesMut::new());
            }
        });
        assert!(
            run.is_ok(),
            "case {case}: planning panicked on {payload:?} ({params} parameters)"
        );
    }
}
