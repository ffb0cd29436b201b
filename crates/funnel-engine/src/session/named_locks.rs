//! Named (user-level) locks a session may hold, so that its pin ends when it
//! has released them with `RELEASE_LOCK()`, and not only at
//! `RELEASE_ALL_LOCKS()` or the end of the session.
//!
//! The text gives the names when they are plain string literals; the server
//! says whether the connection still holds them (`IS_USED_LOCK`), which
//! also covers re-entrant locks taken twice and `GET_LOCK` calls that timed
//! out. A name Funnel cannot read (`CONCAT(...)`, a column, a parameter)
//! keeps the pin until `RELEASE_ALL_LOCKS()`.

use std::collections::BTreeSet;

use super::sql_lex::{skip_blanks, skip_quoted, skip_string_or_comment, word_end};

/// The functions that take a lock name as their first argument.
const LOCK_FUNCTIONS: [&[u8]; 4] = [b"GET_LOCK", b"RELEASE_LOCK", b"IS_USED_LOCK", b"IS_FREE_LOCK"];

/// What a statement's text says about named locks.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum LockNames {
    /// No lock function.
    #[default]
    None,
    /// Lock functions whose names are all plain string literals.
    Literal {
        /// The names, in order of appearance.
        names: Vec<Vec<u8>>,
        /// A `RELEASE_LOCK()` is among them.
        releases: bool,
    },
    /// A lock function whose name Funnel cannot read.
    Opaque,
}

/// The lock function (or `RELEASE_ALL_LOCKS`) called by the quoted name
/// (`` ` `` or `"`) that starts at `i` and ends at `end`: the server calls a
/// built-in by a backquoted name (`` `GET_LOCK`('l', 0) ``), and under
/// `ANSI_QUOTES` by a double-quoted one.
pub fn quoted_lock_call(sql: &[u8], i: usize, end: usize) -> Option<&[u8]> {
    let name = sql.get(i + 1..end.checked_sub(1)?)?;
    let is_lock = name.eq_ignore_ascii_case(b"RELEASE_ALL_LOCKS")
        || LOCK_FUNCTIONS.iter().any(|f| name.eq_ignore_ascii_case(f));
    (is_lock && sql.get(skip_blanks(sql, end)) == Some(&b'(')).then_some(name)
}

/// The lock names `sql` uses, outside strings and comments.
pub fn lock_names(sql: &[u8]) -> LockNames {
    let mut names = Vec::new();
    let mut releases = false;
    let mut i = 0;
    while i < sql.len() {
        if matches!(sql[i], b'`' | b'"') && quoted_lock_call(sql, i, skip_quoted(sql, i, sql[i])).is_some() {
            // Not worth reading its name too.
            return LockNames::Opaque;
        }
        if let Some(next) = skip_string_or_comment(sql, i) {
            i = next;
            continue;
        }
        match sql[i] {
            c if c.is_ascii_alphabetic() || c == b'_' => {
                let start = i;
                i = word_end(sql, i);
                let word = &sql[start..i];
                if !LOCK_FUNCTIONS.iter().any(|f| word.eq_ignore_ascii_case(f)) {
                    continue;
                }
                let Some(open) = after_spaces(sql, i).filter(|&j| sql[j] == b'(') else {
                    // A column of that name, or a call with a comment before
                    // its parenthesis: not worth telling apart.
                    return LockNames::Opaque;
                };
                if start > 0 && sql[start - 1] == b'.' {
                    return LockNames::Opaque; // a stored function of that name
                }
                match literal_argument(sql, open + 1) {
                    Some((name, end)) => {
                        releases |= word.eq_ignore_ascii_case(b"RELEASE_LOCK");
                        names.push(name.to_vec());
                        i = end;
                    }
                    None => return LockNames::Opaque,
                }
            }
            _ => i += 1,
        }
    }
    if names.is_empty() {
        LockNames::None
    } else {
        LockNames::Literal { names, releases }
    }
}

/// True when `sql` may call `IS_USED_LOCK()`, whose answer is a server
/// thread id.
pub fn asks_lock_owner(sql: &[u8]) -> bool {
    sql.windows(12).any(|w| w.eq_ignore_ascii_case(b"IS_USED_LOCK"))
}

/// The index of the first non-space at or after `i`.
fn after_spaces(sql: &[u8], mut i: usize) -> Option<usize> {
    while i < sql.len() && sql[i].is_ascii_whitespace() {
        i += 1;
    }
    (i < sql.len()).then_some(i)
}

/// A first argument that is a single-quoted ASCII string without escapes,
/// followed by `,` or `)`: the name and where it ends. (Other bytes would
/// need the connection's charset to name the same lock in the check.)
fn literal_argument(sql: &[u8], at: usize) -> Option<(&[u8], usize)> {
    let q = after_spaces(sql, at).filter(|&j| sql[j] == b'\'')?;
    let len = sql[q + 1..]
        .iter()
        .position(|&c| c == b'\'' || c == b'\\' || !c.is_ascii())?;
    let close = q + 1 + len;
    if sql[close] != b'\'' || sql.get(close + 1) == Some(&b'\'') {
        return None; // an escape, a doubled quote or a non-ASCII byte
    }
    let next = after_spaces(sql, close + 1)?;
    matches!(sql[next], b',' | b')').then_some((&sql[q + 1..close], next))
}

/// Names kept before the session stops telling them apart: each is one
/// column of the check query.
const MAX_NAMES: usize = 64;

/// The named locks a session may hold on its pinned connection.
#[derive(Debug, Default)]
pub struct HeldLocks {
    names: BTreeSet<Vec<u8>>,
    /// A lock was taken under a name Funnel could not read.
    opaque: bool,
}

impl HeldLocks {
    /// Records what a statement used (whether or not it succeeded: a
    /// failed `GET_LOCK` is found out by the next check).
    pub fn note(&mut self, used: &LockNames) {
        match used {
            LockNames::None => {}
            LockNames::Literal { names, .. } => self.names.extend(names.iter().cloned()),
            LockNames::Opaque => self.opaque = true,
        }
        if self.names.len() > MAX_NAMES {
            self.opaque = true;
        }
    }

    /// Every lock is gone (`RELEASE_ALL_LOCKS()`, a reset).
    pub fn clear(&mut self) {
        self.names.clear();
        self.opaque = false;
    }

    /// The query that says which of the names the connection still holds,
    /// one column per name; `None` when a name is unknown.
    pub fn check_query(&self) -> Option<String> {
        if self.opaque || self.names.is_empty() {
            return None;
        }
        let columns: Vec<String> = self
            .names
            .iter()
            // Names hold no quote or backslash (see `literal_argument`).
            .map(|n| {
                format!(
                    "IS_USED_LOCK('{}') <=> CONNECTION_ID()",
                    String::from_utf8_lossy(n)
                )
            })
            .collect();
        // Its own LIMIT: the session's `sql_select_limit` applies to it.
        Some(format!("SELECT {} LIMIT 1", columns.join(", ")))
    }

    /// Forgets the names the check's `row` says are no longer held; true
    /// when none is left.
    pub fn keep_held(&mut self, row: &[Option<String>]) -> bool {
        if row.len() != self.names.len() {
            return false;
        }
        let held: BTreeSet<Vec<u8>> = self
            .names
            .iter()
            .zip(row)
            .filter(|(_, v)| v.as_deref() != Some("0"))
            .map(|(n, _)| n.clone())
            .collect();
        self.names = held;
        self.names.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn literal(names: &[&str], releases: bool) -> LockNames {
        LockNames::Literal {
            names: names.iter().map(|n| n.as_bytes().to_vec()).collect(),
            releases,
        }
    }

    #[test]
    fn named_locks_reads_literal_names_only() {
        assert_eq!(lock_names(b"SELECT GET_LOCK('a', 0)"), literal(&["a"], false));
        assert_eq!(
            lock_names(b"select release_lock( 'job:7' ), get_lock('b',1)"),
            literal(&["job:7", "b"], true)
        );
        assert_eq!(lock_names(b"DO IS_FREE_LOCK('x')"), literal(&["x"], false));
        for opaque in [
            "SELECT GET_LOCK(CONCAT('a', 1), 0)",
            "SELECT GET_LOCK(?, 0)",
            "SELECT GET_LOCK(name, 0) FROM jobs",
            "SELECT GET_LOCK('it\\'s', 0)",
            "SELECT GET_LOCK('a''b', 0)",
            "SELECT GET_LOCK('a' 'b', 0)",
            "SELECT app.GET_LOCK('a', 0)",
            "SELECT GET_LOCK('a', 0), GET_LOCK/**/('b', 0)",
            "SELECT GET_LOCK('caf\u{e9}', 0)",
            "SELECT get_lock FROM t",
        ] {
            assert_eq!(lock_names(opaque.as_bytes()), LockNames::Opaque, "{opaque}");
        }
        assert_eq!(lock_names(b"SELECT 'GET_LOCK(x)' FROM t"), LockNames::None);
        assert!(asks_lock_owner(b"SELECT is_used_lock('a') = CONNECTION_ID()"));
        assert!(!asks_lock_owner(b"SELECT CONNECTION_ID()"));
    }

    #[test]
    fn named_locks_check_forgets_what_the_server_no_longer_holds() {
        let mut held = HeldLocks::default();
        held.note(&literal(&["b", "a"], false));
        assert_eq!(
            held.check_query().as_deref(),
            Some(
                "SELECT IS_USED_LOCK('a') <=> CONNECTION_ID(), IS_USED_LOCK('b') <=> CONNECTION_ID() LIMIT 1"
            )
        );
        assert!(!held.keep_held(&[Some("0".into()), Some("1".into())]));
        assert_eq!(
            held.check_query().as_deref(),
            Some("SELECT IS_USED_LOCK('b') <=> CONNECTION_ID() LIMIT 1")
        );
        // A row of the wrong shape changes nothing.
        assert!(!held.keep_held(&[]));
        assert!(held.keep_held(&[Some("0".into())]));
        held.note(&literal(&["c"], false));
        held.note(&LockNames::Opaque);
        assert_eq!(held.check_query(), None);
        held.clear();
        assert_eq!(held.check_query(), None);
    }
}
