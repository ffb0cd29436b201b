//! Statement digests: each text query is reduced to its shape (literals
//! become `?`, runs of whitespace one space) and counted with its time,
//! rows and errors, as ProxySQL's query digest table does.
//!
//! Statements Funnel answers itself (a query rule's `ok` or `error`, the
//! query cache, a `SET` answered locally, Funnel's own errors) are counted
//! too, and apart in [`DigestStats::by_funnel`], as ProxySQL counts them
//! under hostgroup -1.
//!
//! The data path pays one pass over the text to hash its shape; the shape
//! itself is written out only the first time it is seen. Each core keeps at
//! most [`MAX_DIGESTS`]; beyond that new shapes are counted together.

use std::cell::RefCell;
use std::collections::HashMap;
use std::time::Duration;

/// Digests one core keeps.
pub const MAX_DIGESTS: usize = 2000;

/// The key of statements beyond [`MAX_DIGESTS`].
pub const OTHER: u64 = 0;

/// Longest shape text stored.
const MAX_TEXT: usize = 512;

/// Who answered a statement.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AnsweredBy {
    /// A backend ran it and its reply was relayed.
    Backend,
    /// Funnel answered without a backend's reply: a query rule's `ok` or
    /// `error`, the query cache, a `SET` answered locally, or one of
    /// Funnel's own errors (no connection in time, a lost backend, a KILL).
    Funnel,
}

/// What one shape of statement did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DigestStats {
    /// The shape (`SELECT c FROM t WHERE id = ?`).
    pub text: String,
    /// Executions.
    pub count: u64,
    /// Summed time, microseconds.
    pub total_us: u64,
    /// Longest time, microseconds.
    pub max_us: u64,
    /// Rows returned.
    pub rows: u64,
    /// Executions that ended in an error.
    pub errors: u64,
    /// Executions Funnel answered itself ([`AnsweredBy::Funnel`]), among
    /// `count`.
    pub by_funnel: u64,
}

/// One core's digests.
#[derive(Debug, Default)]
pub struct Digests(RefCell<HashMap<u64, DigestStats>>);

impl Digests {
    /// True when `key` is already known (so its text need not be built).
    pub fn knows(&self, key: u64) -> bool {
        self.0.borrow().contains_key(&key)
    }

    /// Records one execution; `text` is called only for a new shape.
    pub fn record(
        &self,
        key: u64,
        text: impl FnOnce() -> String,
        took: Duration,
        rows: u64,
        error: bool,
        by: AnsweredBy,
    ) {
        let mut map = self.0.borrow_mut();
        let full = map.len() >= MAX_DIGESTS;
        let key = if !full || map.contains_key(&key) {
            key
        } else {
            OTHER
        };
        let entry = map.entry(key).or_insert_with(|| DigestStats {
            text: if key == OTHER {
                "(other statements)".into()
            } else {
                text()
            },
            count: 0,
            total_us: 0,
            max_us: 0,
            rows: 0,
            errors: 0,
            by_funnel: 0,
        });
        let us = took.as_micros() as u64;
        entry.count += 1;
        entry.total_us += us;
        entry.max_us = entry.max_us.max(us);
        entry.rows += rows;
        entry.errors += u64::from(error);
        entry.by_funnel += u64::from(by == AnsweredBy::Funnel);
    }

    /// The shape recorded under `key`.
    pub fn text_of(&self, key: u64) -> Option<String> {
        self.0.borrow().get(&key).map(|d| d.text.clone())
    }

    /// Forgets every shape and its figures (`RESET DIGESTS`): counting
    /// starts again from the next statement. The shapes of `running`
    /// (statements under way, whose sessions saw their shape known and
    /// kept no text) stay, with no figures, until they end: `SHOW
    /// CLIENTS` still names them, and their execution is counted under
    /// its shape, not under an empty text.
    pub fn clear(&self, running: &[u64]) {
        let mut map = self.0.borrow_mut();
        map.retain(|key, d| {
            *key != OTHER && running.contains(key) && {
                d.count = 0;
                d.total_us = 0;
                d.max_us = 0;
                d.rows = 0;
                d.errors = 0;
                d.by_funnel = 0;
                true
            }
        });
    }

    /// A copy of every digest with its key (a shape kept by [`Self::clear`]
    /// for a running statement shows once it has run).
    pub fn snapshot(&self) -> Vec<(u64, DigestStats)> {
        self.0
            .borrow()
            .iter()
            .filter(|(_, v)| v.count > 0)
            .map(|(k, v)| (*k, v.clone()))
            .collect()
    }
}

/// The shape's key: a hash of the normalised text, without building it.
pub fn key(sql: &[u8]) -> u64 {
    let mut h = Fnv::new();
    walk(sql, |b| h.write(b));
    h.finish().max(1)
}

/// The shape as text (for a shape seen the first time).
pub fn text(sql: &[u8]) -> String {
    let mut out = Vec::with_capacity(sql.len().min(MAX_TEXT));
    walk(sql, |b| {
        if out.len() < MAX_TEXT {
            out.push(b)
        }
    });
    String::from_utf8_lossy(&out).into_owned()
}

/// Feeds the normalised bytes of `sql` to `emit`: string and number
/// literals become `?`, whitespace runs and comments become one space.
fn walk(sql: &[u8], mut emit: impl FnMut(u8)) {
    let mut i = 0;
    let mut space = false;
    let mut out_any = false;
    let mut prev_word = false;
    while i < sql.len() {
        let c = sql[i];
        let mut token = |bytes: &[u8], emit: &mut dyn FnMut(u8)| {
            if space && out_any {
                emit(b' ');
            }
            space = false;
            out_any = true;
            for &b in bytes {
                emit(b);
            }
        };
        match c {
            b' ' | b'\t' | b'\n' | b'\r' => {
                space = true;
                i += 1;
            }
            b'\'' | b'"' => {
                i = crate::session::sql_lex_skip_quoted(sql, i, c);
                token(b"?", &mut emit);
            }
            b'/' if sql.get(i + 1) == Some(&b'*') => {
                i = crate::session::sql_lex_skip_until(sql, i + 2, b"*/");
                space = true;
            }
            b'#' => {
                i = crate::session::sql_lex_skip_until(sql, i, b"\n");
                space = true;
            }
            b'-' if sql.get(i + 1) == Some(&b'-') => {
                i = crate::session::sql_lex_skip_until(sql, i, b"\n");
                space = true;
            }
            b'0'..=b'9' if !prev_word => {
                while i < sql.len() && (sql[i].is_ascii_alphanumeric() || sql[i] == b'.') {
                    i += 1;
                }
                token(b"?", &mut emit);
            }
            c if c.is_ascii_alphanumeric() || c == b'_' || c == b'$' || c == b'`' || c == b'@' => {
                let start = i;
                while i < sql.len()
                    && (sql[i].is_ascii_alphanumeric() || matches!(sql[i], b'_' | b'$' | b'`' | b'@' | b'.'))
                {
                    i += 1;
                }
                token(&sql[start..i], &mut emit);
                prev_word = true;
                continue;
            }
            _ => {
                token(&[c], &mut emit);
                i += 1;
            }
        }
        prev_word = false;
    }
}

/// FNV-1a: tiny, good enough for grouping statement shapes.
struct Fnv(u64);

impl Fnv {
    fn new() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }

    fn write(&mut self, b: u8) {
        self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_shapes_ignore_literals_spacing_and_comments() {
        let a = b"SELECT c FROM sbtest1 WHERE id=5";
        let b = b"SELECT  c FROM sbtest1 /* x */ WHERE id=1234";
        assert_eq!(key(a), key(b));
        assert_eq!(text(a), "SELECT c FROM sbtest1 WHERE id=?");
        assert_eq!(
            text(b"INSERT INTO t VALUES ('a', \"b\", 3.5)"),
            "INSERT INTO t VALUES (?, ?, ?)"
        );
        assert_ne!(
            key(a),
            key(b"SELECT c FROM sbtest2 WHERE id=5"),
            "table names are not literals"
        );
        assert_eq!(text(b"SELECT t1.c2 FROM t1"), "SELECT t1.c2 FROM t1");
    }

    #[test]
    fn digest_table_is_bounded() {
        let d = Digests::default();
        for i in 0..(MAX_DIGESTS as u64 + 10) {
            d.record(
                i + 1,
                || format!("q{i}"),
                Duration::from_micros(5),
                1,
                false,
                AnsweredBy::Backend,
            );
        }
        let snap = d.snapshot();
        assert_eq!(snap.len(), MAX_DIGESTS + 1);
        let other = snap.iter().find(|(k, _)| *k == OTHER).unwrap();
        assert_eq!(other.1.count, 10);
    }

    #[test]
    fn digest_counts_answers_by_funnel_apart() {
        let d = Digests::default();
        let took = Duration::from_micros(5);
        d.record(7, || "SELECT ?".into(), took, 1, false, AnsweredBy::Backend);
        d.record(
            7,
            || unreachable!("a known shape"),
            took,
            1,
            false,
            AnsweredBy::Funnel,
        );
        d.record(
            7,
            || unreachable!("a known shape"),
            took,
            0,
            true,
            AnsweredBy::Funnel,
        );
        let (_, s) = d.snapshot().pop().unwrap();
        assert_eq!((s.count, s.by_funnel, s.errors, s.rows), (3, 2, 1, 2));
        d.clear(&[7]);
        assert!(d.snapshot().is_empty());
    }
}
