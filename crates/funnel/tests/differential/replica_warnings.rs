//! The causal-reads soak's filter for one documented limit of the
//! read/write split (docs/configuration.md, the `users[].read_hostgroup`
//! row): a statement that goes to a writer after a read's warnings on a
//! replica lets that connection go, and the client's diagnostics reads
//! after it (`SHOW WARNINGS`, `@@warning_count`, `GET DIAGNOSTICS`, ...)
//! see an empty area where a direct connection still has the read's.
//!
//! It is decided from the script, step by step: which steps the split may
//! send to a replica, which go to a writer, and what a direct connection's
//! outcome says each step left in the server's diagnostics area. A
//! difference is excused only at a diagnostics read (or a read of a
//! variable a `GET DIAGNOSTICS` set from the lost area) when a read the
//! split could send to a replica left the area's conditions, a statement
//! the docs send to a writer came after it, and Funnel's answer is
//! exactly the one an emptied area gives. Anything else still fails.

use std::fmt::Write as _;

use super::{Op, Outcome, SetOutcome};

/// One condition of a diagnostics area: level, code, message.
type Condition = (&'static str, u16, &'static str);

/// What `GET DIAGNOSTICS CONDITION n` past the area's end adds to it.
const INVALID_CONDITION: Condition = ("Error", 1758, "Invalid condition number");

/// The uppercased text of a step that sends SQL, else `None`; of a `SET
/// STATEMENT ... FOR` its statement, which is what Funnel routes it by.
fn sql_of(op: &Op) -> Option<String> {
    match op {
        Op::Query(sql) | Op::Exec(sql) | Op::ExecArg(sql, _) | Op::Prepare(sql) => {
            let sql = sql.trim().trim_end_matches(';').trim().to_ascii_uppercase();
            Some(
                match sql
                    .strip_prefix("SET STATEMENT ")
                    .and_then(|s| s.split_once(" FOR "))
                {
                    Some((_, inner)) => inner.trim().to_owned(),
                    None => sql,
                },
            )
        }
        // COM_INIT_DB is routed and kept as a `USE` is.
        Op::InitDb(db) => Some(format!("USE {}", db.to_ascii_uppercase())),
        _ => None,
    }
}

/// A single plain `SELECT` the split sends to the read hostgroup (as the
/// engine's `read_only`: no locking read, no `INTO`, no named locks,
/// sequences or `LAST_INSERT_ID(expr)`, which pin), narrowed further to
/// what cannot change session state: no stored function, and an
/// assignment (`@v := ...`, which pins) only in a statement the server
/// could not parse (`d`, its direct answer, is a syntax error): the
/// assignment is then inside a string of the session's `sql_mode`, and
/// Funnel reads it as the server does (soak seed 6164).
fn replica_read(op: &Op, d: &Outcome) -> bool {
    if matches!(op, Op::Prepare(_)) {
        return false;
    }
    let Some(sql) = sql_of(op) else { return false };
    let syntax_error = matches!(d, Outcome::Err { code: 1064, .. });
    sql.starts_with("SELECT")
        && !sql.contains(';')
        && ![
            "UPDATE",
            "SHARE",
            "INTO",
            "LOCK",
            "NEXTVAL",
            "LASTVAL",
            "SETVAL",
            "NEXT VALUE",
            "PREVIOUS VALUE",
            "CURRVAL",
            "F_",
            "@@WARNING_COUNT",
            "@@ERROR_COUNT",
        ]
        .iter()
        .any(|w| sql.contains(w))
        && (syntax_error || !sql.contains(":="))
        && !sets_insert_id(&sql)
}

/// With `causal_reads: universal`, a read that may call a stored function
/// (which may read a table: any `(`, or text Funnel may read otherwise
/// than the server), unless a text query names the area's counts, does
/// not run on a replica connection kept for a read's warnings
/// (docs/configuration.md): it lets the area go, as a writer's statement
/// does (soak seed 6728: `SELECT ROW_COUNT()` after a replica read's
/// syntax error).
fn universal_lets_go(op: &Op) -> bool {
    let Some(sql) = sql_of(op) else { return false };
    if matches!(op, Op::Prepare(_)) || is_diagnostics(&sql) {
        return false;
    }
    let names_counts =
        matches!(op, Op::Query(_)) && (sql.contains("WARNING_COUNT") || sql.contains("ERROR_COUNT"));
    let may_call = ["(", "\\", "/*!", "/*M!", "--", "#"]
        .iter()
        .any(|w| sql.contains(w));
    sql.starts_with("SELECT") && may_call && !names_counts
}

/// `LAST_INSERT_ID(expr)`: it gives the connection an id, and pins.
fn sets_insert_id(sql: &str) -> bool {
    sql.match_indices("LAST_INSERT_ID").any(|(i, w)| {
        let rest = sql[i + w.len()..].trim_start();
        rest.starts_with('(') && !rest[1..].trim_start().starts_with(')')
    })
}

/// A statement the docs send to a writer: transaction control (`BEGIN`,
/// `COMMIT`, `SAVEPOINT`, ..., XA), `LOCK`/`UNLOCK TABLES`, named locks,
/// a `CALL`, a `SET` of the next transaction's characteristics, whose
/// value is computed (Funnel reads it back) or calls a function, the
/// execute of a prepared `SET`, a write, a binary-protocol prepare that
/// opens a table or pins ([`pinning_prepare`]), and a `GET DIAGNOSTICS`
/// into user variables (it pins).
/// Not a `SET` of literals or a `SELECT` without a table: those keep a
/// lingering replica connection, and a difference after them is a bug.
fn goes_to_writer(op: &Op, d: &Outcome) -> bool {
    let Some(sql) = sql_of(op) else { return false };
    let first: Vec<&str> = sql.split_whitespace().take(2).collect();
    let word = first.first().copied().unwrap_or("");
    let second = first.get(1).copied().unwrap_or("");
    if let Op::Prepare(_) = op {
        // A prepare of a read that opens no table may be described on the
        // lingering connection (the engine's `describes_there`).
        return !(word == "SELECT" && !sql.contains(" FROM ") && !sql.contains(';'));
    }
    let transaction = match word {
        "BEGIN" => sql == "BEGIN" || sql == "BEGIN WORK",
        "START" => second == "TRANSACTION",
        "COMMIT" | "ROLLBACK" | "SAVEPOINT" | "XA" => true,
        "RELEASE" => second == "SAVEPOINT",
        _ => false,
    };
    // Writes, and statements Funnel cannot see into or that pin, which
    // the split never sends to a replica: `DO`, SQL `PREPARE`/`EXECUTE`
    // (`EXECUTE IMMEDIATE` of a read too, soak seed 6390), `HANDLER`.
    let write = matches!(
        word,
        "INSERT"
            | "UPDATE"
            | "DELETE"
            | "REPLACE"
            | "CREATE"
            | "DROP"
            | "ALTER"
            | "TRUNCATE"
            | "CALL"
            | "DO"
            | "PREPARE"
            | "EXECUTE"
            | "DEALLOCATE"
            | "HANDLER"
    );
    // A `SELECT` that assigns a user variable pins (soak seed 6453); one
    // the server ran, so the assignment was no string's.
    let assigns = word == "SELECT" && sql.contains(":=") && matches!(d, Outcome::Ok { .. });
    let tables = (word == "LOCK" || word == "UNLOCK") && second.starts_with("TABLE");
    let named_lock = [
        "GET_LOCK",
        "RELEASE_LOCK",
        "RELEASE_ALL_LOCKS",
        "IS_USED_LOCK",
        "IS_FREE_LOCK",
    ]
    .iter()
    .any(|f| sql.contains(f));
    let set = word == "SET"
        && (second == "TRANSACTION"
            || sql.split_once('=').is_some_and(|(_, value)| value.contains('('))
            || reads_back_user_variable(&sql));
    let diagnostics_into = word == "GET" && second == "DIAGNOSTICS" && sql.contains('@');
    // Statements that pin though they open no table: a `SET` switching on
    // `sql_auto_is_null` or `profiling` (soak seed 6629), and
    // `LAST_INSERT_ID(expr)` (soak seed 6637).
    let pins = (word == "SET" && switches_on_pinning_variable(&sql)) || sets_insert_id(&sql);
    transaction
        || write
        || assigns
        || tables
        || named_lock
        || set
        || diagnostics_into
        || pins
        || pinning_prepare(op)
}

/// A `SET` that switches on a variable Funnel pins for while it is on
/// (the engine's `PIN_WHEN_ON`): `sql_auto_is_null`, `profiling`.
fn switches_on_pinning_variable(sql: &str) -> bool {
    sql.split(',').any(|assignment| {
        let Some((name, value)) = assignment.split_once('=') else {
            return false;
        };
        let name = name.trim().trim_start_matches("SET").trim().to_ascii_lowercase();
        let name = name.rsplit(['.', ' ']).next().unwrap_or("");
        let value = value.trim().trim_end_matches(';').to_ascii_uppercase();
        matches!(name, "sql_auto_is_null" | "profiling") && matches!(value.as_str(), "1" | "ON" | "TRUE")
    })
}

/// A `SET` of a user variable to anything but a number or `TRUE` /
/// `FALSE` (a string, whose collation is the connection's, or `NULL`,
/// which keeps the variable's type): Funnel reads the value back from the
/// server (see the engine's `user_vars`), so it is a `SET` that goes to a
/// writer (soak seed 6242: `SET @fx = 'x'`).
fn reads_back_user_variable(sql: &str) -> bool {
    let Some(list) = sql.strip_prefix("SET ") else {
        return false;
    };
    list.split(',').any(|assignment| {
        let Some((name, value)) = assignment.split_once('=') else {
            return false;
        };
        let (name, value) = (name.trim().trim_end_matches(':').trim(), value.trim());
        let number = value
            .trim_start_matches(['-', '+'])
            .split(['.', 'E'])
            .all(|part| {
                !part.is_empty()
                    && part
                        .trim_start_matches(['-', '+'])
                        .bytes()
                        .all(|b| b.is_ascii_digit())
            });
        name.starts_with('@') && !name.starts_with("@@") && !(number || value == "TRUE" || value == "FALSE")
    })
}

/// Steps after which the session's reads stay with the writers for a
/// while: it pins (temporary tables, named locks, prepared and dynamic
/// SQL, stored code that sets state, sequences, `SET TRANSACTION`, ...).
/// Over-counted on purpose and kept until the session ends: a read taken
/// for a writer's excuses nothing. Not `XA` statements: Funnel holds the
/// connection only while the server says a transaction is open, and the
/// walk follows an XA transaction itself (`Walk::xa`; soak seed 6800: a
/// replica read after `XA ROLLBACK` let its error go at a computed `SET`).
fn may_pin(op: &Op, d: &Outcome) -> bool {
    let Some(sql) = sql_of(op) else { return false };
    if pinning_prepare(op) {
        return true;
    }
    // In a `SET`, `:=` is only another `=`.
    let assigns = sql.contains(":=") && !sql.starts_with("SET") && !replica_read(op, d);
    assigns
        || (sql.starts_with("LOCK") && !sql.starts_with("LOCK IN"))
        || sql.contains("GET_LOCK")
        || [
            "TEMPORARY", "HANDLER", "PREPARE", "EXECUTE", "SET TRANSACTION", "NEXTVAL", "SETVAL", "LASTVAL",
            "NEXT VALUE", "PREVIOUS VALUE", "CURRVAL", "F_FX", "F_TZ", "F_MODE", "F_DIV", "INTO TR", "DF_SP.",
            "SL_ST_", "P_TZ", "GET DIAGNOSTICS", "DECLARE", "<<", "INTO @",
        ]
        .iter()
        .any(|w| sql.contains(w))
        || sets_insert_id(&sql)
        // Variables a SET cannot carry to another connection.
        || (sql.starts_with("SET")
            && ["TIMESTAMP", "INSERT_ID", "SQL_AUTO_IS_NULL", "CHARACTER_SET_RESULTS = NULL"]
                .iter()
                .any(|w| sql.contains(w)))
        || (sql.starts_with("BEGIN") && sql != "BEGIN" && sql != "BEGIN WORK" && !sql.starts_with("BEGIN;"))
}

/// A statement that [`may_pin`] for a stored routine it calls alone (one
/// of the scripts' functions or procedures): Funnel pins the session only
/// when the server reports a state change, so later reads may still run
/// on a replica and leave their area there. The walk takes it as not
/// pinned: where Funnel did pin, its answers are the direct ones and
/// need no excuse (soak seed 6746: `SELECT df_sp.f_sq(3)`, which changes
/// nothing, then a replica read's ERR 1630 let go at a `BEGIN`).
fn calls_a_routine_only(sql: &str) -> bool {
    let routine = ["DF_SP.", "F_FX", "F_TZ", "F_MODE", "F_DIV", "SL_ST_", "P_TZ"];
    let sure = [
        "TEMPORARY",
        "HANDLER",
        "PREPARE",
        "EXECUTE",
        "XA ",
        "SET TRANSACTION",
        "NEXTVAL",
        "SETVAL",
        "LASTVAL",
        "NEXT VALUE",
        "PREVIOUS VALUE",
        "CURRVAL",
        "INTO TR",
        "GET DIAGNOSTICS",
        "DECLARE",
        "<<",
        "INTO @",
        ":=",
        "GET_LOCK",
        "LOCK",
    ];
    routine.iter().any(|w| sql.contains(w))
        && !sure.iter().any(|w| sql.contains(w))
        && !sets_insert_id(sql)
        && !sql.starts_with("SET")
        && !sql.starts_with("BEGIN")
}

/// A binary-protocol prepare (of an execute, or alone) that pins the
/// session and so lets a lingering replica go first (the engine's
/// `stmt_prepare`): its text reads the previous statement's results
/// (`ROW_COUNT()`, `FOUND_ROWS()`; `LAST_INSERT_ID()` alone is given to
/// the connection instead), or it assigns user variables (which the
/// prepare makes; counted whether or not the session had them).
fn pinning_prepare(op: &Op) -> bool {
    let (Op::Prepare(sql) | Op::Exec(sql) | Op::ExecArg(sql, _)) = op else {
        return false;
    };
    let sql = sql.to_ascii_uppercase();
    sql.contains("ROW_COUNT")
        || sql.contains("FOUND_ROWS")
        || sql.contains(":=")
        || sql.contains("INTO @")
        || sql.trim_start().starts_with("SET")
}

/// The user variables a `GET DIAGNOSTICS` assigns.
fn diagnostics_targets(sql: &str) -> Vec<String> {
    sql.split(|c: char| c == ',' || c.is_whitespace())
        .filter(|w| w.starts_with('@'))
        .map(str::to_owned)
        .collect()
}

/// What Funnel's session holds where a direct connection holds a
/// replica read's conditions.
struct Lost {
    /// The read that left them, and the step that went to a writer.
    read: usize,
    writer: usize,
    /// Funnel's area since: empty, then what diagnostics statements add.
    area: Vec<Condition>,
}

/// One client's walk through its script.
#[derive(Default)]
struct Walk {
    in_transaction: bool,
    autocommit_off: bool,
    /// In an XA transaction: from an `XA START` the server ran to the `XA
    /// COMMIT` or `XA ROLLBACK` it ran (a plain `COMMIT` is refused there).
    xa: bool,
    pinned: bool,
    /// The replica read whose conditions the server's area holds.
    replica_area: Option<usize>,
    lost: Option<Lost>,
    /// Variables a `GET DIAGNOSTICS` set from a lost area, by the step.
    diverged: Vec<(String, usize)>,
}

/// The first step of one client at which Funnel's answer differs from the
/// direct one past the documented limit; each difference the limit
/// explains is described in `excused`.
pub(super) fn first_difference(
    script: &[Op],
    direct: &[Outcome],
    funnel: &[Outcome],
    universal: bool,
    excused: &mut Vec<String>,
) -> Option<usize> {
    let mut walk = Walk::default();
    // `FUNNEL_DIFF_WALK=1` prints the walk up to a difference it does not
    // excuse (to see why not).
    let mut trace = String::new();
    for (i, ((op, d), f)) in script.iter().zip(direct).zip(funnel).enumerate() {
        if std::env::var_os("FUNNEL_DIFF_WALK").is_some() {
            let _ = writeln!(
                trace,
                "  walk {i}: `{op}` tx {} ac_off {} xa {} pinned {} replica_area {:?} lost {:?} to_writer {}",
                walk.in_transaction,
                walk.autocommit_off,
                walk.xa,
                walk.pinned,
                walk.replica_area,
                walk.lost.as_ref().map(|l| (l.read, l.writer, l.area.len())),
                goes_to_writer(op, d)
            );
        }
        if matches!(op, Op::Reset | Op::ChangeUser | Op::Reconnect) {
            walk = Walk::default();
        }
        // With autocommit off every statement goes to the default
        // hostgroup, the first `SET autocommit = 0` not yet (it runs
        // where tracked state may, see `after`), nor a diagnostics read
        // (the lingering connection serves it).
        let held_off = walk.autocommit_off
            && !matches!(op, Op::Ping | Op::Sleep(_))
            && !sql_of(op).is_some_and(|sql| is_diagnostics(&sql));
        if goes_to_writer(op, d) || held_off || (universal && universal_lets_go(op)) {
            if let Some(read) = walk.replica_area.take() {
                walk.lost = Some(Lost {
                    read,
                    writer: i,
                    area: Vec::new(),
                });
            }
        }
        if d != f {
            match walk.excuse(op, d, f) {
                Some(why) => excused.push(format!("step {i}: `{op}`: {why}")),
                None => {
                    eprint!("{trace}");
                    return Some(i);
                }
            }
        }
        walk.after(i, op, d);
    }
    None
}

impl Walk {
    /// Why `f` (Funnel's answer to `op`) is the documented limit's, if so.
    fn excuse(&self, op: &Op, d: &Outcome, f: &Outcome) -> Option<String> {
        let sql = sql_of(op)?;
        if let (Some(lost), Op::Query(_)) = (&self.lost, op) {
            if predicted(&sql, d, &lost.area).as_ref() == Some(f) {
                return Some(format!(
                    "the area of the replica read at step {} was let go at step {}",
                    lost.read, lost.writer
                ));
            }
        }
        let columns: Vec<(&str, usize)> = self
            .diverged
            .iter()
            .filter(|(var, _)| sql.contains(&var.to_ascii_uppercase()))
            .map(|(var, step)| (var.as_str(), *step))
            .collect();
        if !columns.is_empty() && same_but(d, f, &columns.iter().map(|(v, _)| *v).collect::<Vec<_>>()) {
            return Some(format!(
                "{} set by GET DIAGNOSTICS of a lost area at step {}",
                columns.iter().map(|(v, _)| *v).collect::<Vec<_>>().join(", "),
                columns[0].1
            ));
        }
        None
    }

    /// What step `i` (`op`, answered `d` directly) leaves.
    fn after(&mut self, i: usize, op: &Op, d: &Outcome) {
        let Some(sql) = sql_of(op) else { return };
        // A statement that pins runs where the session's writes go.
        let held = self.in_transaction || self.autocommit_off || self.xa || self.pinned;
        // A statement of tracked state only (`USE`, a `SET` of literals)
        // runs on the replica the session lingers on (soak seed 6462:
        // `USE nosuch_schema` failed there).
        let tracked = !goes_to_writer(op, d)
            && !may_pin(op, d)
            && (sql.starts_with("USE ") || (sql.starts_with("SET ") && !sql.starts_with("SET STATEMENT")));
        let replica = !held && (replica_read(op, d) || (tracked && self.replica_area.is_some()));
        let maybe_only = calls_a_routine_only(&sql) && !matches!(op, Op::Prepare(_));
        if may_pin(op, d) && !maybe_only {
            self.pinned = true;
        }
        if is_diagnostics(&sql) {
            // They keep the area; `GET DIAGNOSTICS CONDITION n` past its
            // end adds an error, and its variables take what Funnel's
            // area says where it was lost.
            if sql.starts_with("GET DIAGNOSTICS") {
                let targets = diagnostics_targets(&sql);
                if let Some(lost) = &mut self.lost {
                    if let Some(n) = condition_number(&sql) {
                        if n > lost.area.len() {
                            lost.area.push(INVALID_CONDITION);
                        }
                    }
                    for var in targets {
                        self.diverged.retain(|(v, _)| *v != var);
                        self.diverged.push((var, i));
                    }
                } else if matches!(d, Outcome::Ok { warnings: 0, .. }) {
                    // Assigned alike both ways.
                    self.diverged.retain(|(v, _)| !targets.contains(v));
                }
            }
            return;
        }
        for statement in sql.split(';').map(str::trim) {
            match statement {
                "BEGIN" | "BEGIN WORK" => self.in_transaction = true,
                s if s.starts_with("START TRANSACTION") => self.in_transaction = true,
                s if s.contains("AND CHAIN") && !s.contains("NO CHAIN") => self.in_transaction = true,
                s if (s.starts_with("COMMIT") || s.starts_with("ROLLBACK")) && !s.contains(" TO ") => {
                    self.in_transaction = false
                }
                _ => {}
            }
        }
        if matches!(d, Outcome::Ok { .. }) {
            if sql.starts_with("XA START") || sql.starts_with("XA BEGIN") {
                self.xa = true;
            } else if sql.starts_with("XA COMMIT") || sql.starts_with("XA ROLLBACK") {
                self.xa = false;
            }
        }
        if sql.contains("AUTOCOMMIT = 0") || sql.contains("SL_ST_AC") {
            self.autocommit_off = true;
        } else if sql.contains("AUTOCOMMIT = 1") || sql.contains("AUTOCOMMIT = ON") {
            self.autocommit_off = false;
        }
        if sql.contains("SL_ST_TX") {
            self.in_transaction = true;
        }
        let raised = match d {
            Outcome::Ok { warnings, .. } => *warnings > 0,
            Outcome::Err { .. } => true,
        };
        if raised {
            // A new area, both ways.
            self.lost = None;
            self.replica_area = replica.then_some(i);
        } else if opens_table(&sql) {
            // An emptied one, both ways: the linger ends.
            self.lost = None;
            self.replica_area = None;
        }
    }
}

/// A single statement that surely opens a table (and so clears the
/// diagnostics area): a write, or a `SELECT` from a table.
fn opens_table(sql: &str) -> bool {
    let word = sql.split_whitespace().next().unwrap_or("");
    !sql.contains(';')
        && (matches!(word, "INSERT" | "UPDATE" | "DELETE" | "REPLACE")
            || (word == "SELECT"
                && sql
                    .split_once(" FROM ")
                    .is_some_and(|(_, from)| !from.trim_start().starts_with("DUAL"))))
}

/// `SHOW WARNINGS`, `SHOW ERRORS`, their counts, a `SELECT` of only
/// `@@warning_count` and `@@error_count`, `GET DIAGNOSTICS`.
fn is_diagnostics(sql: &str) -> bool {
    sql.starts_with("SHOW WARNINGS")
        || sql.starts_with("SHOW ERRORS")
        || sql.starts_with("SHOW COUNT(*)")
        || sql.starts_with("GET DIAGNOSTICS")
        || count_columns(sql).is_some()
}

/// The `@@warning_count` / `@@error_count` items of a `SELECT` of nothing
/// else (`FROM DUAL` allowed).
fn count_columns(sql: &str) -> Option<Vec<&str>> {
    let list = sql.strip_prefix("SELECT ")?;
    let list = list.strip_suffix(" FROM DUAL").unwrap_or(list);
    let items: Vec<&str> = list.split(',').map(str::trim).collect();
    items
        .iter()
        .all(|i| *i == "@@WARNING_COUNT" || *i == "@@ERROR_COUNT")
        .then_some(items)
}

/// `n` of `GET DIAGNOSTICS CONDITION n`.
fn condition_number(sql: &str) -> Option<usize> {
    let rest = sql.strip_prefix("GET DIAGNOSTICS CONDITION ")?;
    rest.split_whitespace().next()?.parse().ok()
}

/// The answer to the diagnostics read `sql` over `area`, in the shape of
/// the direct answer `d` (its columns, its OK's counts), or `None` when
/// `sql` is no diagnostics read.
fn predicted(sql: &str, d: &Outcome, area: &[Condition]) -> Option<Outcome> {
    let Outcome::Ok {
        sets,
        affected,
        insert_id,
        warnings,
        info,
    } = d
    else {
        return None;
    };
    let text = |s: &str| format!("{s:?}");
    let errors = area.iter().filter(|c| c.0 == "Error").count();
    let rows: Vec<Vec<String>> = if let Some(rest) = sql
        .strip_prefix("SHOW WARNINGS")
        .map(|r| (r, false))
        .or_else(|| sql.strip_prefix("SHOW ERRORS").map(|r| (r, true)))
    {
        let (limit, errors_only) = rest;
        let (offset, count) = match limit.trim().strip_prefix("LIMIT") {
            None if limit.trim().is_empty() => (0, usize::MAX),
            None => return None,
            Some(l) => match l
                .split(',')
                .map(|n| n.trim().parse::<usize>())
                .collect::<Result<Vec<_>, _>>()
            {
                Ok(n) if n.len() == 1 => (0, n[0]),
                Ok(n) if n.len() == 2 => (n[0], n[1]),
                _ => return None,
            },
        };
        area.iter()
            .filter(|c| !errors_only || c.0 == "Error")
            .skip(offset)
            .take(count)
            .map(|(level, code, message)| vec![text(level), text(&code.to_string()), text(message)])
            .collect()
    } else if sql == "SHOW COUNT(*) WARNINGS" {
        vec![vec![text(&area.len().to_string())]]
    } else if sql == "SHOW COUNT(*) ERRORS" {
        vec![vec![text(&errors.to_string())]]
    } else if let Some(items) = count_columns(sql) {
        vec![items
            .iter()
            .map(|i| {
                text(
                    &if *i == "@@WARNING_COUNT" {
                        area.len()
                    } else {
                        errors
                    }
                    .to_string(),
                )
            })
            .collect()]
    } else if sql.starts_with("GET DIAGNOSTICS") {
        // No rows either way; past the area's end it warns.
        return Some(Outcome::Ok {
            sets: sets.clone(),
            affected: *affected,
            insert_id: *insert_id,
            warnings: u16::from(condition_number(sql).is_some_and(|n| n > area.len())),
            info: info.clone(),
        });
    } else {
        return None;
    };
    let [set] = &sets[..] else { return None };
    Some(Outcome::Ok {
        sets: vec![SetOutcome {
            columns: set.columns.clone(),
            rows,
        }],
        affected: *affected,
        insert_id: *insert_id,
        warnings: *warnings,
        info: info.clone(),
    })
}

/// True when `d` and `f` differ only in the columns named `vars` (`SELECT
/// @gn, @ge`), or, where no column is named so, only in values, not in
/// columns, rows or counts (`CALL p(@sn)`: the variable feeds them).
fn same_but(d: &Outcome, f: &Outcome, vars: &[&str]) -> bool {
    let (
        Outcome::Ok {
            sets: ds,
            affected: da,
            insert_id: di,
            warnings: dw,
            info: dinf,
        },
        Outcome::Ok {
            sets: fs,
            affected: fa,
            insert_id: fi,
            warnings: fw,
            info: finf,
        },
    ) = (d, f)
    else {
        return false;
    };
    let name = |c: &str| c.split(':').next().unwrap_or("").to_ascii_uppercase();
    let excused = |c: &str| vars.iter().any(|v| v.eq_ignore_ascii_case(&name(c)));
    let named = ds.iter().flat_map(|s| &s.columns).any(|c| excused(c));
    (da, di, dw, dinf) == (fa, fi, fw, finf)
        && ds.len() == fs.len()
        && ds.iter().zip(fs).all(|(d, f)| {
            d.columns.len() == f.columns.len()
                && d.rows.len() == f.rows.len()
                && (0..d.columns.len()).all(|k| {
                    excused(&d.columns[k])
                        || (d.columns[k] == f.columns[k]
                            && (!named || d.rows.iter().zip(&f.rows).all(|(dr, fr)| dr[k] == fr[k])))
                })
        })
}

/// The filter on outcomes made up for it: what it excuses and what it
/// must not.
#[cfg(test)]
mod tests {
    use super::*;

    fn q(sql: &str) -> Op {
        Op::Query(sql.to_owned())
    }

    fn ok(warnings: u16) -> Outcome {
        Outcome::Ok {
            sets: vec![SetOutcome {
                columns: vec![],
                rows: vec![],
            }],
            affected: 0,
            insert_id: 0,
            warnings,
            info: String::new(),
        }
    }

    fn count(n: usize) -> Outcome {
        Outcome::Ok {
            sets: vec![SetOutcome {
                columns: vec!["@@session.warning_count:MYSQL_TYPE_LONGLONG".to_owned()],
                rows: vec![vec![format!("{:?}", n.to_string())]],
            }],
            affected: 0,
            insert_id: 0,
            warnings: 0,
            info: String::new(),
        }
    }

    /// The first difference left of a client whose step `at` answered
    /// `funnel` instead of `direct`, and how many were excused.
    fn judge(script: &[&str], direct: &[Outcome], at: usize, funnel: Outcome) -> (Option<usize>, usize) {
        judge_in(false, script, direct, at, funnel)
    }

    /// [`judge`] for `causal_reads: universal` or `true`.
    fn judge_in(
        universal: bool,
        script: &[&str],
        direct: &[Outcome],
        at: usize,
        funnel: Outcome,
    ) -> (Option<usize>, usize) {
        let script: Vec<Op> = script.iter().map(|s| q(s)).collect();
        let mut through: Vec<Outcome> = direct.to_vec();
        through[at] = funnel;
        let mut excused = Vec::new();
        let first = first_difference(&script, direct, &through, universal, &mut excused);
        (first, excused.len())
    }

    /// A stored function that may have pinned (Funnel pins only where the
    /// server reports a change) leaves later reads possibly on a replica:
    /// their area let go at a writer's statement is excused (soak seed
    /// 6746); a surely pinning statement does not.
    #[test]
    fn replica_warnings_after_a_function_that_may_pin_are_excused() {
        let err = Outcome::Err {
            code: 1630,
            message: "FUNCTION db.NOW does not exist".to_owned(),
        };
        let direct = [ok(0), err, ok(0), count(1)];
        let script = [
            "SELECT df_sp.f_sq(3)",
            "SELECT NOW ()",
            "BEGIN",
            "SHOW COUNT(*) WARNINGS",
        ];
        assert_eq!(judge(&script, &direct, 3, count(0)), (None, 1));
        let script = [
            "SELECT GET_LOCK('l', 0)",
            "SELECT NOW ()",
            "BEGIN",
            "SHOW COUNT(*) WARNINGS",
        ];
        assert_eq!(judge(&script, &direct, 3, count(0)), (Some(3), 0));
    }

    /// Universal only: a read of no table that may call a stored function
    /// lets a replica read's area go (soak seed 6728); one that names the
    /// area's counts keeps it.
    #[test]
    fn replica_warnings_let_go_at_a_universal_read_that_may_call_a_function() {
        let script = [
            "SELECT CAST('1x' AS SIGNED)",
            "SELECT ROW_COUNT()",
            "SHOW COUNT(*) WARNINGS",
        ];
        let direct = [ok(1), ok(0), count(1)];
        assert_eq!(judge_in(true, &script, &direct, 2, count(0)), (None, 1));
        assert_eq!(judge_in(false, &script, &direct, 2, count(0)), (Some(2), 0));
        let script = [
            "SELECT CAST('1x' AS SIGNED)",
            "SELECT NOW(), @@warning_count",
            "SHOW COUNT(*) WARNINGS",
        ];
        assert_eq!(judge_in(true, &script, &direct, 2, count(0)), (Some(2), 0));
    }

    /// An XA transaction holds the writer's connection only while it is
    /// open: a replica read after its end (or after an `XA` statement the
    /// server refused) may leave its area on the replica, let go at a
    /// computed `SET` (soak seed 6800); a read inside it runs on the
    /// writer.
    #[test]
    fn replica_warnings_after_an_xa_transaction_are_excused() {
        let err = Outcome::Err {
            code: 1146,
            message: "Table 'db.nosuch' doesn't exist".to_owned(),
        };
        let xa_err = Outcome::Err {
            code: 1397,
            message: "XAER_NOTA: Unknown XID".to_owned(),
        };
        let set = "SET sql_mode = CONCAT(@@sql_mode, ',PIPES_AS_CONCAT')";
        let script = [
            "XA ROLLBACK 'x'",
            "SELECT * FROM nosuch",
            set,
            "SHOW COUNT(*) WARNINGS",
        ];
        let direct = [xa_err.clone(), err.clone(), ok(0), count(1)];
        assert_eq!(judge(&script, &direct, 3, count(0)), (None, 1));
        let script = [
            "XA START 'x'",
            "XA END 'x'",
            "XA ROLLBACK 'x'",
            "SELECT * FROM nosuch",
            set,
            "SHOW COUNT(*) WARNINGS",
        ];
        let direct = [ok(0), ok(0), ok(0), err.clone(), ok(0), count(1)];
        assert_eq!(judge(&script, &direct, 5, count(0)), (None, 1));
        // Inside: the read ran on the writer, a plain COMMIT refused.
        let script = [
            "XA START 'x'",
            "SELECT * FROM nosuch",
            "COMMIT",
            "SHOW COUNT(*) WARNINGS",
        ];
        let refused = Outcome::Err {
            code: 1399,
            message: "XAER_RMFAIL".to_owned(),
        };
        let direct = [ok(0), err.clone(), refused.clone(), count(1)];
        assert_eq!(judge(&script, &direct, 3, count(0)), (Some(3), 0));
        // An `XA ROLLBACK` the server refused (the branch not ended) ends
        // nothing.
        let script = [
            "XA START 'x'",
            "XA ROLLBACK 'x'",
            "SELECT * FROM nosuch",
            set,
            "SHOW COUNT(*) WARNINGS",
        ];
        let direct = [ok(0), refused, err, ok(0), count(1)];
        assert_eq!(judge(&script, &direct, 4, count(0)), (Some(4), 0));
    }

    #[test]
    fn replica_warnings_let_go_at_a_writer_statement_are_excused() {
        for writer in [
            "BEGIN",
            "COMMIT",
            "SET TRANSACTION READ ONLY",
            "SET @fx = 'x'",
            "SELECT GET_LOCK('l', 0)",
            "EXECUTE IMMEDIATE 'SELECT 1'",
            "SELECT @u := 1",
            "DO 1",
        ] {
            let script = ["SELECT CAST('1x' AS SIGNED)", writer, "SHOW COUNT(*) WARNINGS"];
            let direct = [ok(1), ok(0), count(1)];
            assert_eq!(judge(&script, &direct, 2, count(0)), (None, 1), "{writer}");
        }
    }

    #[test]
    fn replica_warnings_of_tracked_state_on_a_lingering_replica_are_its() {
        let err = Outcome::Err {
            code: 1049,
            message: "Unknown database".to_owned(),
        };
        // `USE` runs on the replica the session lingers on, and fails there.
        let script = [
            "SELECT CAST('1x' AS SIGNED)",
            "USE nosuch",
            "CALL p()",
            "SHOW COUNT(*) WARNINGS",
        ];
        let direct = [ok(1), err.clone(), ok(0), count(1)];
        assert_eq!(judge(&script, &direct, 3, count(0)), (None, 1));
        // Not lingering there (a table read cleared the area): it ran on a
        // writer, which keeps it.
        let script = [
            "SELECT CAST('1x' AS SIGNED)",
            "SELECT v FROM t",
            "USE nosuch",
            "CALL p()",
            "SHOW COUNT(*) WARNINGS",
        ];
        let direct = [ok(1), ok(0), err, ok(0), count(1)];
        assert_eq!(judge(&script, &direct, 4, count(0)), (Some(4), 0));
    }

    #[test]
    fn replica_warnings_lost_otherwise_still_fail() {
        let direct = [ok(1), ok(0), count(1)];
        // A tracked SET or a SELECT without a table keeps the linger: a
        // loss after it is a bug.
        for kept in [
            "SET time_zone = '+01:00'",
            "SET @u = 5",
            "SELECT @@time_zone",
            "USE db",
        ] {
            let script = ["SELECT CAST('1x' AS SIGNED)", kept, "SHOW COUNT(*) WARNINGS"];
            assert_eq!(judge(&script, &direct, 2, count(0)), (Some(2), 0), "{kept}");
        }
        // After `SET autocommit = 0` everything goes to the writer; the
        // SET itself is tracked state.
        let script = [
            "SELECT CAST('1x' AS SIGNED)",
            "SET autocommit = 0",
            "SHOW COUNT(*) WARNINGS",
        ];
        assert_eq!(judge(&script, &direct, 2, count(0)), (Some(2), 0));
        let script = [
            "SELECT CAST('1x' AS SIGNED)",
            "SET autocommit = 0",
            "SELECT 1",
            "SHOW COUNT(*) WARNINGS",
        ];
        let direct4 = [ok(1), ok(0), ok(0), count(1)];
        assert_eq!(judge(&script, &direct4, 3, count(0)), (None, 1));
        // A read in a transaction runs on the writer.
        let script = [
            "BEGIN",
            "SELECT CAST('1x' AS SIGNED)",
            "COMMIT",
            "SHOW COUNT(*) WARNINGS",
        ];
        let direct = [ok(0), ok(1), ok(0), count(1)];
        assert_eq!(judge(&script, &direct, 3, count(0)), (Some(3), 0));
        // A write's warnings are the writer's.
        let script = ["INSERT INTO t VALUES ('1x')", "COMMIT", "SHOW COUNT(*) WARNINGS"];
        let direct = [ok(1), ok(0), count(1)];
        assert_eq!(judge(&script, &direct, 2, count(0)), (Some(2), 0));
    }

    #[test]
    fn replica_warnings_excuse_only_what_an_empty_area_answers() {
        let script = ["SELECT CAST('1x' AS SIGNED)", "BEGIN", "SHOW COUNT(*) WARNINGS"];
        let direct = [ok(2), ok(0), count(2)];
        // Fewer, but not none: not the limit's answer.
        assert_eq!(judge(&script, &direct, 2, count(1)), (Some(2), 0));
        // More.
        assert_eq!(judge(&script, &direct, 2, count(3)), (Some(2), 0));
        // Another step's difference after the loss.
        let script = ["SELECT CAST('1x' AS SIGNED)", "BEGIN", "SELECT @@time_zone"];
        assert_eq!(judge(&script, &direct, 2, count(0)), (Some(2), 0));
        // GET DIAGNOSTICS of a condition the emptied area lacks warns.
        let script = [
            "SELECT CAST('1x' AS SIGNED)",
            "GET DIAGNOSTICS CONDITION 1 @e = MYSQL_ERRNO",
        ];
        assert_eq!(judge(&script, &[ok(1), ok(0)], 1, ok(1)), (None, 1));
        assert_eq!(judge(&script, &[ok(1), ok(0)], 1, ok(2)), (Some(1), 0));
    }
}
