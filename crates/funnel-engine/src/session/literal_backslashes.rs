//! Queries with a backslash in a session whose `sql_mode` has (or may
//! have) `NO_BACKSLASH_ESCAPES`: the server reads each backslash as a plain
//! character there, Funnel's scans as an escape. One that means the same
//! either way is planned as usual; the rest pin, unread.

use funnel_protocol::Capabilities;

use super::command::{plan, Forward, Plan};
use super::pinning;
use super::rewrite::mentions_previous_statement;

/// The plan of a query with a backslash in a session whose `sql_mode` has
/// (or may have) `NO_BACKSLASH_ESCAPES`, where the backslash is a plain
/// character: `Some` when the text is a single statement that leaves the
/// session as it was, read either way (each backslash made a space, the
/// server's reading under that mode with strings ending where it ends
/// them; and with backslash escapes): a plain read or write such as the
/// MariaDB connector's `SELECT 'a''b\c'` of an escaped parameter. Any
/// doubt (state Funnel would learn from the text or rewrite in it, a pin,
/// several statements) gives `None`: the query pins, unread.
pub(super) fn read_with_literal_backslashes(
    payload: &[u8],
    f: &Forward,
    caps: Capabilities,
) -> Option<Forward> {
    let sql = payload.get(1..)?;
    let mut literal = Vec::with_capacity(payload.len());
    literal.push(payload[0]);
    literal.extend_from_slice(&pinning::without_backslashes(sql));
    let Plan::Forward(g) = plan(&literal, caps) else {
        return None;
    };
    let leaves_session = |x: &Forward| {
        x.changes_nothing()
            && x.pin_on_error.is_none()
            && !x.reads_found_rows
            && !x.selects_into
            && !x.diagnostics
            && !x.sets_insert_id
            && !x.statement_vars
            && !x.drops_temporary
            && !x.several_statements
            && !x.compound
            && !x.xa
            && x.dynamic_vars.is_empty()
            && !x.tracks_state_itself
    };
    let reads_previous = mentions_previous_statement(sql) || mentions_previous_statement(&literal[1..]);
    if !leaves_session(f) || !leaves_session(&g) || reads_previous {
        return None;
    }
    // Where the mode is not known yet either reading may be the server's:
    // the careful answer of the two for each question.
    let mut g = g;
    g.read_only &= f.read_only;
    g.session_only &= f.session_only;
    g.changes_no_data &= f.changes_no_data;
    g.opens_no_table &= f.opens_no_table;
    g.needs_pinned |= f.needs_pinned;
    g.may_keep_diagnostics |= f.may_keep_diagnostics;
    g.keeps_found_rows |= f.keeps_found_rows;
    g.may_run_stored_code |= f.may_run_stored_code;
    Some(g)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Under NO_BACKSLASH_ESCAPES a backslash is plain: a query that leaves
    /// the session as it was, read either way, is planned as the server
    /// reads it; anything else stays unread (it pins).
    #[test]
    fn literal_backslashes_plain_queries_are_read_the_rest_pins() {
        let caps = Capabilities::CLIENT_PROTOCOL_41 | Capabilities::CLIENT_MULTI_STATEMENTS;
        let read = |sql: &str| {
            let payload = [&[0x03u8][..], sql.as_bytes()].concat();
            let Plan::Forward(f) = plan(&payload, caps) else {
                return None;
            };
            read_with_literal_backslashes(&payload, &f, caps).map(|g| g.read_only)
        };
        // The mariadb connector's escaped parameters.
        assert_eq!(read(r#"SELECT 'a''b\c"d\''0' AS v"#), Some(true));
        // A locking read in one reading only is no plain read.
        assert_eq!(read(r"SELECT 'a\' FOR UPDATE -- '"), Some(false));
        assert_eq!(read(r"SELECT 'a\', ' FOR UPDATE'"), Some(false));
        assert_eq!(read(r"INSERT INTO t VALUES ('x\', 'y')"), Some(false));
        // A second statement in one reading, a KILL in the other.
        assert_eq!(read(r"SELECT 'x\'; KILL 5; -- '"), None);
        assert_eq!(read(r"SELECT 'x\'; SET @a = 1; SELECT '"), None);
        // State Funnel would learn from the text, or rewrite in it.
        assert_eq!(read(r"SET @v = 'a\b'"), None);
        assert_eq!(read(r"SET sql_mode = 'NO_BACKSLASH_ESCAPES', @x = 'a\'"), None);
        assert_eq!(read(r"SELECT 'a\' INTO @v"), None);
        assert_eq!(read(r"SELECT LAST_INSERT_ID(), 'a\'"), None);
        assert_eq!(read(r"SELECT GET_LOCK('a\b', 1)"), None);
        assert_eq!(read(r"USE `a\b`"), None);
        assert_eq!(read(r"CREATE TEMPORARY TABLE t (v TEXT DEFAULT 'a\')"), None);
        assert_eq!(read(r"SELECT 'a\' FROM t; SELECT 2"), None);
    }
}
