//! The statements one backend connection has prepared, bounded, least
//! recently used first out.

use std::collections::HashMap;

/// Statements one backend connection keeps prepared at most; the least
/// recently used is closed beyond it, or beyond the pool's share of the
/// server's `max_prepared_stmt_count` when that is lower
/// ([`crate::pool::Pool::statement_cap`]).
pub const PER_CONNECTION: usize = 256;

/// Which server statement: a registry statement, and which copy of it.
/// A client that prepares the same text twice holds two statements on the
/// server, each with its own cursor, long data and parameter types; a
/// copy number keeps them apart (0 for the first, the usual case).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct StmtKey {
    /// The registry statement's id.
    pub meta: u64,
    /// Which of the client's ids for that text.
    pub copy: u32,
}

/// A statement prepared on one backend connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendStatement {
    /// The server's statement id on that connection.
    pub id: u32,
    /// The parameter types the server last received for it (with any
    /// client's execute): it reads an execute without types by these, so
    /// a client whose own types differ must send its own.
    pub bound_types: Option<Vec<u8>>,
    last_used: u64,
}

/// Prepared statements of one connection, keyed by registry id and copy.
#[derive(Debug, Default)]
pub struct ConnStatements {
    map: HashMap<StmtKey, BackendStatement>,
    tick: u64,
}

impl ConnStatements {
    /// The statement, marked as just used.
    pub fn get(&mut self, key: StmtKey) -> Option<&mut BackendStatement> {
        self.tick += 1;
        let tick = self.tick;
        let s = self.map.get_mut(&key)?;
        s.last_used = tick;
        Some(s)
    }

    /// Records a newly prepared statement; when that makes more than `cap`,
    /// returns the server id of the least recently used one not in `keep`
    /// (statements holding a cursor or long data), which the caller must
    /// close with `COM_STMT_CLOSE`. When the connection has `key` already
    /// (a text described again by a server that said the same, see
    /// [`crate::prepared::registry::Known::Check`]), that one stays, with
    /// any cursor or parameter types of it, and `id` is returned to close.
    pub fn insert(&mut self, key: StmtKey, id: u32, cap: usize, keep: &[StmtKey]) -> Option<u32> {
        self.tick += 1;
        if let Some(held) = self.map.get_mut(&key) {
            held.last_used = self.tick;
            return Some(id);
        }
        self.map.insert(
            key,
            BackendStatement {
                id,
                bound_types: None,
                last_used: self.tick,
            },
        );
        if self.map.len() <= cap.max(1) {
            return None;
        }
        let (&victim, _) = self
            .map
            .iter()
            .filter(|(k, _)| **k != key && !keep.contains(k))
            .min_by_key(|(_, s)| s.last_used)?;
        self.map.remove(&victim).map(|s| s.id)
    }

    /// Forgets a statement and returns its server id, which the caller
    /// must close with `COM_STMT_CLOSE`.
    pub fn remove(&mut self, key: StmtKey) -> Option<u32> {
        self.map.remove(&key).map(|s| s.id)
    }

    /// Forgets every statement but those in `keep` and returns their
    /// server ids, which the caller must close with `COM_STMT_CLOSE`.
    pub fn drain_except(&mut self, keep: &[StmtKey]) -> Vec<u32> {
        let mut ids = Vec::new();
        self.map.retain(|k, s| {
            let kept = keep.contains(k);
            if !kept {
                ids.push(s.id);
            }
            kept
        });
        ids
    }

    /// How many statements are prepared.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// True when none is.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Forgets everything (after `COM_RESET_CONNECTION`, which closes them server-side).
    pub fn clear(&mut self) {
        self.map.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k(meta: u64) -> StmtKey {
        StmtKey { meta, copy: 0 }
    }

    #[test]
    fn prepared_conn_cache_evicts_least_recently_used() {
        let mut c = ConnStatements::default();
        assert_eq!(c.insert(k(1), 101, 2, &[]), None);
        assert_eq!(c.insert(k(2), 102, 2, &[]), None);
        c.get(k(1)); // 2 is now the coldest
        assert_eq!(c.insert(k(3), 103, 2, &[]), Some(102));
        assert!(c.get(k(2)).is_none());
        assert_eq!(c.get(k(1)).unwrap().id, 101);
        assert!(c.get(StmtKey { meta: 1, copy: 1 }).is_none(), "another copy");
        assert_eq!(c.len(), 2);
        // A statement in use is never the victim.
        assert_eq!(c.insert(k(4), 104, 2, &[k(1)]), Some(103));
        assert_eq!(
            c.insert(k(5), 105, 2, &[k(1), k(4)]),
            None,
            "over the cap, all kept"
        );
        assert_eq!(c.len(), 3);
        assert_eq!(c.drain_except(&[k(4), k(5)]), vec![101]);
        assert_eq!(c.remove(k(5)), Some(105));
        assert_eq!(c.remove(k(5)), None);
        assert_eq!(c.len(), 1);
        c.clear();
        assert!(c.is_empty());
    }

    #[test]
    fn prepared_conn_cache_keeps_the_statement_it_has_for_a_key_prepared_again() {
        let mut c = ConnStatements::default();
        assert_eq!(c.insert(k(1), 101, 4, &[]), None);
        c.get(k(1)).unwrap().bound_types = Some(vec![8, 0]);
        assert_eq!(c.insert(k(1), 201, 4, &[]), Some(201), "the new one to close");
        let held = c.get(k(1)).unwrap();
        assert_eq!((held.id, held.bound_types.as_deref()), (101, Some(&[8, 0][..])));
        assert_eq!(c.len(), 1);
    }
}
