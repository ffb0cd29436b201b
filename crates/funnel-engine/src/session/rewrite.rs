//! Answers about the previous statement, made independent of the backend
//! connection: `LAST_INSERT_ID()`, `ROW_COUNT()`, `FOUND_ROWS()` and
//! `CONNECTION_ID()` in a text query are replaced by the values of the
//! client's own last results (as Vitess does), so the query may run on any
//! connection. Calls inside strings, quoted names and comments are left alone.

use std::fmt::Write as _;

use super::sql_lex::{skip_quoted, skip_until};

/// What the client's own previous statements left behind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LastResults {
    /// The last auto-generated id (kept until another statement generates one).
    pub last_insert_id: u64,
    /// Rows changed by the last statement; -1 after a result set or an error.
    pub row_count: i64,
    /// Rows the last result set had.
    pub found_rows: u64,
}

/// Functions replaced, upper-case.
const FUNCTIONS: [&str; 4] = ["LAST_INSERT_ID", "ROW_COUNT", "FOUND_ROWS", "CONNECTION_ID"];

/// True when `sql` calls one of the functions with no arguments (cheap
/// pre-check on the hot path: no allocation when absent).
pub fn mentions_previous_statement(sql: &[u8]) -> bool {
    // Every name has an underscore: compare names only around underscores,
    // one pass over the text instead of one per name and offset.
    sql.iter()
        .enumerate()
        .filter(|&(_, &b)| b == b'_')
        .any(|(at, _)| {
            FUNCTIONS.iter().any(|f| {
                let before = f.find('_').unwrap_or(0);
                at.checked_sub(before)
                    .and_then(|start| sql.get(start..start + f.len()))
                    .is_some_and(|w| w.eq_ignore_ascii_case(f.as_bytes()))
            })
        })
}

/// `sql` with the calls replaced, or `None` when there was none.
pub fn substitute(sql: &[u8], last: &LastResults, connection_id: u32, found_rows: bool) -> Option<Vec<u8>> {
    let mut out: Vec<u8> = Vec::with_capacity(sql.len() + 16);
    let mut i = 0;
    let mut copied = 0;
    let mut changed = false;
    while i < sql.len() {
        match sql[i] {
            q @ (b'\'' | b'"' | b'`') => i = skip_quoted(sql, i, q),
            b'#' => i = skip_until(sql, i, b"\n"),
            b'-' if sql.get(i + 1) == Some(&b'-') => i = skip_until(sql, i, b"\n"),
            b'/' if sql.get(i + 1) == Some(&b'*') => i = skip_until(sql, i + 2, b"*/"),
            c if c.is_ascii_alphabetic() || c == b'_' => {
                let start = i;
                while i < sql.len() && (sql[i].is_ascii_alphanumeric() || sql[i] == b'_' || sql[i] == b'$') {
                    i += 1;
                }
                let word = &sql[start..i];
                let Some(f) = FUNCTIONS.iter().find(|f| word.eq_ignore_ascii_case(f.as_bytes())) else {
                    continue;
                };
                let Some(end) = empty_call(sql, i) else { continue };
                // A qualified name (`t.found_rows`) is a column, not a call.
                if start > 0 && sql[start - 1] == b'.' {
                    continue;
                }
                let value = match *f {
                    "LAST_INSERT_ID" => last.last_insert_id.to_string(),
                    "ROW_COUNT" => last.row_count.to_string(),
                    "FOUND_ROWS" if found_rows => last.found_rows.to_string(),
                    "CONNECTION_ID" => connection_id.to_string(),
                    _ => continue,
                };
                out.extend_from_slice(&sql[copied..start]);
                let _ = write!(Lit(&mut out), "{value}");
                if is_select_item(sql, start, end) {
                    // Keep the column name the client sees: the call as typed.
                    out.extend_from_slice(b" AS `");
                    out.extend_from_slice(&sql[start..end]);
                    out.push(b'`');
                }
                copied = end;
                i = end;
                changed = true;
            }
            _ => i += 1,
        }
    }
    if !changed {
        return None;
    }
    out.extend_from_slice(&sql[copied..]);
    Some(out)
}

/// True when `sql[start..end]` is a whole item of a select list: after
/// `SELECT` or a comma, and before a comma, `FROM`, `;` or the end (not
/// inside an expression, not already aliased).
fn is_select_item(sql: &[u8], start: usize, end: usize) -> bool {
    let before = sql[..start].trim_ascii_end();
    let after = sql[end..].trim_ascii_start();
    let before_ok = before.ends_with(b",")
        || (before.len() >= 6
            && before[before.len() - 6..].eq_ignore_ascii_case(b"SELECT")
            && before
                .len()
                .checked_sub(7)
                .is_none_or(|i| !before[i].is_ascii_alphanumeric()));
    let after_ok = after.is_empty()
        || after.starts_with(b",")
        || after.starts_with(b";")
        || (after.len() >= 4
            && after[..4].eq_ignore_ascii_case(b"FROM")
            && after.get(4).is_none_or(|c| !c.is_ascii_alphanumeric()));
    before_ok && after_ok
}

/// `(` optional spaces `)` right after position `at` (spaces allowed before
/// the parenthesis as MariaDB allows with IGNORE_SPACE): its end.
fn empty_call(sql: &[u8], at: usize) -> Option<usize> {
    let mut j = at;
    while j < sql.len() && sql[j].is_ascii_whitespace() {
        j += 1;
    }
    if sql.get(j) != Some(&b'(') {
        return None;
    }
    j += 1;
    while j < sql.len() && sql[j].is_ascii_whitespace() {
        j += 1;
    }
    (sql.get(j) == Some(&b')')).then_some(j + 1)
}

/// Appends formatted text to a byte vector.
struct Lit<'a>(&'a mut Vec<u8>);

impl std::fmt::Write for Lit<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LAST: LastResults = LastResults {
        last_insert_id: 42,
        row_count: 3,
        found_rows: 7,
    };

    fn sub(sql: &str) -> Option<String> {
        substitute(sql.as_bytes(), &LAST, 99, true).map(|v| String::from_utf8(v).unwrap())
    }

    #[test]
    fn rewrite_replaces_calls_outside_strings() {
        assert_eq!(
            sub("SELECT LAST_INSERT_ID()").as_deref(),
            Some("SELECT 42 AS `LAST_INSERT_ID()`")
        );
        assert_eq!(
            sub("select last_insert_id( ), row_count();").as_deref(),
            Some("select 42 AS `last_insert_id( )`, 3 AS `row_count()`;")
        );
        assert_eq!(
            sub("INSERT INTO c VALUES (LAST_INSERT_ID(), 'LAST_INSERT_ID()')").as_deref(),
            Some("INSERT INTO c VALUES (42, 'LAST_INSERT_ID()')")
        );
        assert_eq!(
            sub("SELECT FOUND_ROWS() FROM dual").as_deref(),
            Some("SELECT 7 AS `FOUND_ROWS()` FROM dual")
        );
        assert_eq!(
            sub("SELECT CONNECTION_ID() + 1").as_deref(),
            Some("SELECT 99 + 1")
        );
        assert_eq!(sub("SELECT 1"), None);
        assert_eq!(sub("SELECT `LAST_INSERT_ID()` FROM t"), None);
        assert_eq!(sub("SELECT t.found_rows() FROM t"), None);
        assert_eq!(
            sub("SELECT LAST_INSERT_ID(5)"),
            None,
            "the setter form is not a read"
        );
        assert_eq!(sub("/* LAST_INSERT_ID() */ SELECT 1"), None);
        assert!(!mentions_previous_statement(b"SELECT 1"));
        assert!(mentions_previous_statement(b"select row_count()"));
        for (sql, mentions) in [
            (&b"LAST_INSERT_ID"[..], true),
            (b"x=last_insert_id()", true),
            (b"select a_b, Found_Rows()", true),
            (b"connection_id", true),
            (b"SELECT _ROW_COUNT", true),
            (b"_", false),
            (b"LAST_INSERT", false),
            (b"ROW_COUN", false),
            (b"_ID", false),
            (b"select found_row", false),
            (b"a_b_c", false),
        ] {
            assert_eq!(
                mentions_previous_statement(sql),
                mentions,
                "{}",
                String::from_utf8_lossy(sql)
            );
        }
        let no_found = substitute(b"SELECT FOUND_ROWS()", &LAST, 1, false);
        assert_eq!(no_found, None);
    }
}
