//! The query cache of one core: replies to reads that a query rule with
//! `cache_ttl` matched, kept as the bytes the client was sent, for that
//! long. It is keyed by everything that shapes a reply's bytes or rows
//! (see [`CacheKey`]), bounded in memory (`query_cache.max_memory_per_core`;
//! the least recently used entries go first), and never invalidated by
//! writes: an entry is as stale as its rule's `cache_ttl` allows.

use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;
use std::time::{Duration, Instant};

use funnel_protocol::tracker::ResponseSummary;
use funnel_protocol::Capabilities;

use crate::pool::key::PoolKey;
use crate::session::variables::SessionVars;

/// What a cached reply depends on besides the server's data.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CacheKey {
    /// The statement's text, as sent to the server (after a rewrite).
    pub sql: Vec<u8>,
    /// The client's user: grants differ.
    pub user: String,
    /// The query rules that matched it (their places in `query_rules`, in
    /// order: the one that caches it, or a chain's): rules that differ
    /// only by `client_addr` may match the same text, user and schema
    /// with another TTL or hostgroup, and a reply kept under one is no
    /// answer of the other.
    pub rules: Rc<[usize]>,
    /// The current schema: unqualified names resolve there.
    pub schema: Option<Vec<u8>>,
    /// The client's capability flags and handshake charset: the reply's
    /// framing (EOF packets or not) and its text's encoding.
    pub pool_key: PoolKey,
    /// The client's own capability flags.
    pub caps: Capabilities,
    /// The session's variables (`sql_mode`, `time_zone`, `SET NAMES`...).
    pub vars: SessionVars,
}

impl CacheKey {
    /// Bytes the key holds, for the memory bound (kept once for both of
    /// the cache's maps).
    fn size(&self) -> usize {
        self.sql.len()
            + self.user.len()
            + self.schema.as_ref().map_or(0, Vec::len)
            + self.vars.heap_size()
            + 128
    }
}

/// A reply kept for its clients.
#[derive(Debug, Clone)]
pub struct CachedReply {
    /// The reply's packets, as the first client was sent them.
    pub bytes: Rc<[u8]>,
    /// What the reply said (rows, status), for the session's bookkeeping.
    pub summary: Rc<ResponseSummary>,
}

#[derive(Debug)]
struct Entry {
    reply: CachedReply,
    expires: Instant,
    /// Its place in [`QueryCache::by_use`].
    used: u64,
    size: usize,
}

/// One core's cache.
#[derive(Debug, Default)]
pub struct QueryCache {
    entries: HashMap<Rc<CacheKey>, Entry>,
    /// Entries by last use, oldest first. The key is shared with
    /// `entries`: a copy would take as much memory again, uncounted, and
    /// be made at every hit.
    by_use: BTreeMap<u64, Rc<CacheKey>>,
    tick: u64,
    bytes: usize,
    /// Bumped by [`QueryCache::clear`]: a reply to a read looked up before
    /// is no longer to be kept.
    generation: u64,
}

impl QueryCache {
    /// The reply kept for `key`, if it is still fresh.
    pub fn get(&mut self, key: &CacheKey, now: Instant) -> Option<CachedReply> {
        let entry = self.entries.get_mut(key)?;
        if entry.expires <= now {
            self.remove(key);
            return None;
        }
        self.tick += 1;
        // Every entry is in `by_use`; were one not, a copy keeps it there.
        let shared = self
            .by_use
            .remove(&entry.used)
            .unwrap_or_else(|| Rc::new(key.clone()));
        entry.used = self.tick;
        self.by_use.insert(self.tick, shared);
        Some(entry.reply.clone())
    }

    /// Keeps `reply` for `key` for `ttl`, making room within `max_bytes`
    /// by dropping the entries used least recently. Returns false when it
    /// is larger than `max_bytes` alone.
    pub fn put(
        &mut self,
        key: CacheKey,
        reply: CachedReply,
        ttl: Duration,
        now: Instant,
        max_bytes: usize,
    ) -> bool {
        let size = reply.bytes.len() + key.size();
        if size > max_bytes {
            return false;
        }
        self.remove(&key);
        self.shrink_to(max_bytes - size);
        self.tick += 1;
        let key = Rc::new(key);
        self.by_use.insert(self.tick, Rc::clone(&key));
        self.bytes += size;
        self.entries.insert(
            key,
            Entry {
                reply,
                expires: now + ttl,
                used: self.tick,
                size,
            },
        );
        true
    }

    /// Drops the least recently used entries down to `max_bytes` (a reload
    /// that shrinks the memory bound keeps none over it).
    pub fn shrink_to(&mut self, max_bytes: usize) {
        while self.bytes > max_bytes {
            let Some((_, oldest)) = self.by_use.pop_first() else {
                break;
            };
            if let Some(e) = self.entries.remove(&oldest) {
                self.bytes -= e.size;
            }
        }
    }

    /// Drops every entry, and refuses replies to reads looked up before
    /// (see [`QueryCache::generation`]).
    pub fn clear(&mut self) {
        self.entries.clear();
        self.by_use.clear();
        self.bytes = 0;
        self.generation += 1;
    }

    /// Changes at every [`QueryCache::clear`]: a read that missed keeps its
    /// reply only while this is what it was at the lookup (a reload that
    /// changed the rules while it ran cleared the cache).
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Entries and the bytes they hold.
    pub fn usage(&self) -> (usize, usize) {
        (self.entries.len(), self.bytes)
    }

    fn remove(&mut self, key: &CacheKey) {
        if let Some(e) = self.entries.remove(key) {
            self.by_use.remove(&e.used);
            self.bytes -= e.size;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(sql: &str) -> CacheKey {
        CacheKey {
            sql: sql.as_bytes().to_vec(),
            user: "u".into(),
            rules: Rc::from([0]),
            schema: None,
            pool_key: PoolKey::DEFAULT,
            caps: Capabilities(0),
            vars: SessionVars::default(),
        }
    }

    fn reply(len: usize) -> CachedReply {
        CachedReply {
            bytes: vec![0; len].into(),
            summary: Rc::new(ResponseSummary::default()),
        }
    }

    #[test]
    fn query_cache_counts_a_keys_session_variables_in_its_size() {
        use crate::session::variables::{Assignment, Utf8Alias};
        let mut c = QueryCache::default();
        let mut k = key("a");
        k.vars.apply(
            &[Assignment {
                name: "init_connect".into(),
                value: Some(format!("'{}'", "x".repeat(10_000))),
            }],
            Utf8Alias::Fixed,
        );
        // Ten kilobytes of variables with a small reply: over 8 KiB.
        assert!(!c.put(
            k.clone(),
            reply(100),
            Duration::from_secs(5),
            Instant::now(),
            8 << 10
        ));
        assert!(c.put(k, reply(100), Duration::from_secs(5), Instant::now(), 16 << 10));
        assert!(c.usage().1 > 10_000, "{:?}", c.usage());
    }

    #[test]
    fn query_cache_expires_and_drops_the_least_recently_used() {
        let mut c = QueryCache::default();
        let t0 = Instant::now();
        let ttl = Duration::from_secs(5);
        let max = 3 * (1000 + key("a").size());
        assert!(c.put(key("a"), reply(1000), ttl, t0, max));
        assert!(c.put(key("b"), reply(1000), ttl, t0, max));
        assert!(c.put(key("c"), reply(1000), ttl, t0, max));
        // `a` used last: `b` goes to make room for `d`.
        assert!(c.get(&key("a"), t0).is_some());
        assert!(c.put(key("d"), reply(1000), ttl, t0, max));
        assert!(c.get(&key("b"), t0).is_none());
        assert_eq!(c.usage().0, 3);
        // Expired, an entry is gone.
        assert!(c.get(&key("a"), t0 + ttl).is_none());
        assert_eq!(c.usage().0, 2);
        // Too large alone: not kept, nothing dropped for it.
        assert!(!c.put(key("e"), reply(max), ttl, t0, max));
        assert_eq!(c.usage().0, 2);
        // Another key of another schema is another entry.
        let mut other = key("c");
        other.schema = Some(b"s".to_vec());
        assert!(c.get(&other, t0).is_none());
        c.shrink_to(0);
        assert_eq!(c.usage(), (0, 0));
    }
}
