//! `CALL`s of procedures the operator declared stateless
//! (`stateless_procedures`): the session gives its connection back after
//! one, where any other `CALL` keeps it for the session's life.
//!
//! The server reports most of what a procedure can leave on a connection:
//! a transaction (status flags), variables, temporary tables and prepared
//! statements (the state-change report). It reports neither a named lock
//! kept nor a user variable set by `SELECT ... INTO`; the operator vouches
//! for those. What the client may read afterwards about the `CALL` itself
//! (`LAST_INSERT_ID()`, `ROW_COUNT()`, `FOUND_ROWS()`) is read back before
//! the connection goes.

use funnel_protocol::tracker::ResponseSummary;

use super::command::Forward;
use super::pinning::PinReason;
use super::sql_lex::is_blank;
use super::Session;
use crate::pool::conn::BackendError;
use crate::stats::Stats;

/// What the session reads back after a stateless `CALL`: the values the
/// client's next statement would read on the connection. Its own `LIMIT`:
/// under the client's `sql_select_limit = 0` it returned no row, and the
/// pin stayed with the server answering `ROW_COUNT()` and `FOUND_ROWS()`
/// for this read instead of the `CALL`.
const READ_BACK: &str = "SELECT LAST_INSERT_ID(), ROW_COUNT(), FOUND_ROWS() LIMIT 1";

/// The procedure a `CALL` statement names: its schema, if written, and its
/// name.
pub type ProcedureName = (Option<Vec<u8>>, Vec<u8>);

/// The procedure `sql` calls when it is a plain `CALL`: one statement
/// naming one procedure, its arguments literals or `?` only. `None` for
/// anything else, so that every reading of the text (under
/// `ANSI_QUOTES`, `MSSQL`, `NO_BACKSLASH_ESCAPES`, a multi-byte character
/// set) is the same: no comment, no user variable (`CALL p(@out)` writes
/// one), no call inside the arguments (`GET_LOCK()`), no double quote,
/// bracket or backslash anywhere.
pub fn called_procedure(sql: &[u8]) -> Option<ProcedureName> {
    if sql.contains(&b'\\') {
        return None;
    }
    let mut i = blanks(sql, 0);
    let word = sql.get(i..i + 4)?;
    if !word.eq_ignore_ascii_case(b"CALL") || sql.get(i + 4).is_some_and(|&c| is_word_byte(c)) {
        return None;
    }
    i = blanks(sql, i + 4);
    let (first, end) = identifier(sql, i)?;
    i = blanks(sql, end);
    let (schema, name) = if sql.get(i) == Some(&b'.') {
        let (second, end) = identifier(sql, blanks(sql, i + 1))?;
        i = blanks(sql, end);
        (Some(first), second)
    } else {
        (None, first)
    };
    if sql.get(i) == Some(&b'(') {
        i = blanks(sql, plain_arguments(sql, i + 1)?);
    }
    if sql.get(i) == Some(&b';') {
        i = blanks(sql, i + 1);
    }
    (i == sql.len()).then_some((schema, name))
}

/// Past the spaces from `i` on (comments are refused, not skipped).
fn blanks(sql: &[u8], mut i: usize) -> usize {
    while sql.get(i).is_some_and(|&c| is_blank(c)) {
        i += 1;
    }
    i
}

fn is_word_byte(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b'$'
}

/// The name that starts at `i` (a plain ASCII word, or backquoted, `` ``
/// `` being one backquote, ASCII only) and where it ends.
fn identifier(sql: &[u8], i: usize) -> Option<(Vec<u8>, usize)> {
    if sql.get(i) == Some(&b'`') {
        let mut name = Vec::new();
        let mut j = i + 1;
        loop {
            match *sql.get(j)? {
                b'`' if sql.get(j + 1) == Some(&b'`') => {
                    name.push(b'`');
                    j += 2;
                }
                b'`' => break,
                // In gbk, sjis or big5 a backquote may be the second byte
                // of a character: such a name may end elsewhere for the
                // server.
                c if c >= 0x80 => return None,
                c => {
                    name.push(c);
                    j += 1;
                }
            }
        }
        return (!name.is_empty()).then_some((name, j + 1));
    }
    let mut j = i;
    while sql.get(j).is_some_and(|&c| is_word_byte(c)) {
        j += 1;
    }
    // A name of digits alone is a number.
    (j > i && !sql[i..j].iter().all(u8::is_ascii_digit)).then(|| (sql[i..j].to_vec(), j))
}

/// Past the `)` that ends arguments starting at `i`, when they hold only
/// words, numbers, `?`, signs, commas and single-quoted strings.
fn plain_arguments(sql: &[u8], mut i: usize) -> Option<usize> {
    loop {
        match *sql.get(i)? {
            b')' => return Some(i + 1),
            b'\'' => {
                // No backslash in the text: a doubled quote is the only
                // escape, and no multi-byte character ends in a quote.
                i += 1;
                loop {
                    match *sql.get(i)? {
                        b'\'' if sql.get(i + 1) == Some(&b'\'') => i += 2,
                        b'\'' => break,
                        _ => i += 1,
                    }
                }
                i += 1;
            }
            c if is_word_byte(c) || is_blank(c) || matches!(c, b',' | b'.' | b'?' | b'+' | b'-') => {
                // A `--` would start a comment.
                if c == b'-' && sql.get(i + 1) == Some(&b'-') {
                    return None;
                }
                i += 1;
            }
            _ => return None,
        }
    }
}

impl Session {
    /// True when `sql` is a plain `CALL` (see [`called_procedure`]) of a
    /// procedure listed in `stateless_procedures`; an unqualified name is
    /// of `schema` (the session's, or a prepared statement's).
    pub(super) fn calls_stateless(&self, sql: &[u8], schema: Option<&[u8]>) -> bool {
        let config = self.shard.config();
        if config.stateless_procedures.is_empty() {
            return false;
        }
        let Some((written, name)) = called_procedure(sql) else {
            return false;
        };
        let Some(schema) = written.as_deref().or(schema) else {
            return false;
        };
        config
            .stateless_procedures
            .iter()
            .any(|entry| funnel_config::procedure_matches(entry, schema, &name))
    }

    /// After a `CALL` of a declared stateless procedure: notes whether only
    /// such `CALL`s hold the session now. `free_before`: nothing held it
    /// before this `CALL` but earlier stateless ones. One that changed
    /// state keeps the pin as any `CALL` does. One that failed does not:
    /// the server reports nothing after an ERR, so the connection is reset
    /// before another client gets it (`needs_reset`, as after any stored
    /// code that failed), and a transaction the procedure left open shows
    /// in the read-back's status.
    pub(super) fn note_stateless_call(&mut self, f: &Forward, summary: &ResponseSummary, free_before: bool) {
        let count_was_clients = f.found_rows_given || self.server_answers_found_rows();
        if summary.error.is_some() && !count_was_clients && summary.result_sets == 0 {
            // Not given the client's count before it (its warnings were
            // there) and no rows: the connection's count may be another
            // client's, which the read after it must not take. A `CALL`
            // that succeeded notes so as it pins for the count (soak seed
            // 500580). Not where the server answers for the count already
            // (pinned for it): that count is the client's.
            self.found_rows_off_server = true;
        }
        self.stateless_pins = free_before
            && (summary.error.is_some() || !summary.state_changed)
            && self
                .pins
                .is_only_among(&[PinReason::StoredProcedure, PinReason::PreviousStatementInfo]);
    }

    /// Ends the pins only stateless `CALL`s left (see `stateless_pins`)
    /// once the connection holds nothing else of the session's: reads back
    /// what the client may ask about its last statements and gives the
    /// connection back, or keeps it lingering as after any statement while
    /// the client's warnings or error wait there to be read (the read, a
    /// `SELECT` of no table, leaves them: `SHOW WARNINGS`, `@@warning_count`
    /// and `GET DIAGNOSTICS CONDITION` read the same after it; only the
    /// statement's `ROW_COUNT` item then reads the read's -1, see Known
    /// limits).
    pub(super) async fn end_stateless_pins(&mut self) {
        // No transaction, no autocommit off but the session's own (a
        // tracked `SET autocommit = 0`), no long data.
        let free = self.stateless_pins
            && self.open_cursors.is_empty()
            && self
                .pins
                .is_only_among(&[PinReason::StoredProcedure, PinReason::PreviousStatementInfo])
            && self
                .pinned
                .as_ref()
                .is_some_and(|c| c.is_reusable() && !c.untracked_state && self.hold_reason(c).is_none());
        if !free {
            return;
        }
        let Some(mut conn) = self.pinned.take() else {
            return;
        };
        let values = match conn.query_rows(READ_BACK).await {
            Ok((_, rows)) => rows.first().and_then(|row| {
                let field = |k: usize| row.get(k)?.as_deref();
                Some((
                    field(0)?.parse::<u64>().ok()?,
                    field(1)?.parse::<i64>().ok()?,
                    field(2)?.parse::<u64>().ok()?,
                ))
            }),
            // Refused (a `max_statement_time` too short): the pin stays,
            // nothing is lost.
            Err(BackendError::Refused(_)) => None,
            Err(e) => {
                // The connection is gone, and with it what the client
                // would read: its next command learns why.
                self.lose_after_reply(conn, &e);
                return;
            }
        };
        self.pinned = Some(conn);
        let Some((last_insert_id, row_count, found_rows)) = values else {
            self.stateless_pins = false;
            return;
        };
        self.last.last_insert_id = last_insert_id;
        self.last.row_count = row_count;
        if !self.found_rows_off_server {
            // Else the connection was not given the client's count before
            // the `CALL` (its warnings were still there) and the `CALL`
            // returned no rows: the count there may be another client's,
            // and the client's is its last result set's, as Funnel
            // answers after any such `CALL` (soak seed 500275).
            self.last.found_rows = found_rows;
        }
        // Funnel answers for all three from its record again.
        self.insert_id_on_server = false;
        self.insert_id_given_to_calls = false;
        self.calc_found_rows = false;
        self.found_rows_off_server = false;
        self.own_row_count_next = false;
        self.stateless_pins = false;
        self.pins.remove(PinReason::PreviousStatementInfo);
        self.pins.remove(PinReason::StoredProcedure);
        self.pin_reason = None;
        if let Some(conn) = self.pinned.take() {
            // Kept still where the read's status shows a transaction a
            // failed `CALL` left open (its ERR had no status).
            self.keep_lingering(conn);
        }
        if self.pin_reason.is_none() {
            Stats::bump(&self.shard.stats.calls_unpinned);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn named(sql: &str) -> Option<(Option<String>, String)> {
        called_procedure(sql.as_bytes()).map(|(s, n)| {
            (
                s.map(|s| String::from_utf8(s).unwrap()),
                String::from_utf8(n).unwrap(),
            )
        })
    }

    #[test]
    fn stateless_call_plain_calls_name_their_procedure() {
        let p = |s: Option<&str>, n: &str| Some((s.map(str::to_owned), n.to_owned()));
        assert_eq!(
            named("CALL add_item(1, 'a''b', ?, -2.5, NULL)"),
            p(None, "add_item")
        );
        assert_eq!(
            named("  call shop.add_item ( ? ) ;  "),
            p(Some("shop"), "add_item")
        );
        assert_eq!(
            named("CALL `my shop` . `odd``name`()"),
            p(Some("my shop"), "odd`name")
        );
        assert_eq!(named("CALL`p`"), p(None, "p"));
        assert_eq!(named("CALL p"), p(None, "p"));
        assert_eq!(named("CALL p('user@example.com', 'ü')"), p(None, "p"));
    }

    #[test]
    fn stateless_call_anything_else_is_not_plain() {
        for sql in [
            "CALL p(@out)",
            "CALL p(@@sql_mode)",
            "CALL p(GET_LOCK('l', 0))",
            "CALL p(NOW())",
            "CALL p(1); CALL q()",
            "CALL p(1); SELECT 1",
            "CALL p() -- x",
            "CALL p() /* x */",
            "/*!CALL p() */",
            "CALL p() # x",
            "CALL p(1 --1)",
            "CALL p('a\\'', @v := 1)",
            "CALL p(\"a\")",
            "CALL p([a])",
            "CALLp()",
            "CALL 12()",
            "CALL ()",
            "CALL `p()",
            "CALL p('never closed)",
            "CALL p(1",
            "CALL a.b.c()",
            "CALL `\u{e9}`.p()",
            "CALL `a\u{8140}`.`b`()",
            "SELECT 1",
            "",
        ] {
            assert_eq!(named(sql), None, "{sql}");
        }
    }
}
