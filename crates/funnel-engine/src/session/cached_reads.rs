//! Reads answered from the core's query cache (a query rule's
//! `cache_ttl`). A read the rule matches is looked up before any backend
//! work; on a hit the client gets the bytes another client (or itself)
//! was sent, and the session notes the statement as after that read: its
//! rows for `FOUND_ROWS()`, -1 for `ROW_COUNT()`, an empty diagnostics
//! area. On a miss the reply is captured as it streams to the client (up
//! to `query_cache.max_result_size`) and kept if it ended clean.

use std::time::{Duration, Instant};

use funnel_protocol::framing::MAX_CHUNK;
use funnel_protocol::tracker::ResponseSummary;
use funnel_protocol::StatusFlags;

use super::command::Forward;
use super::{write_own, End, Session};
use crate::digest::AnsweredBy;
use crate::query_cache::{CacheKey, CachedReply};
use crate::stats::Stats;

impl Session {
    /// The query-cache key of text query `f` (`total` bytes in the buffer)
    /// and its rule's `cache_ttl`, when the rule caches and the reply may
    /// be shared: a single read that pins nothing, reads neither user
    /// variables nor the previous statement's results, from a session
    /// that holds no connection (no transaction, no pin; one kept only
    /// for its warnings is let go on a hit of a read that clears them, and
    /// a read that would not clear them is not shared),
    /// with autocommit on, and of a user without `causal_reads` (a cached
    /// reply may predate the session's own writes); matched by the rules
    /// the shard still has.
    pub(super) fn cache_key(&self, total: usize, f: &Forward) -> Option<(CacheKey, Duration)> {
        let rule = self.query_rule.as_ref()?;
        let ttl = rule.cache_ttl?;
        if self.query_rules_seen != self.shard.rules().id() {
            // A reload replaced the rules that matched it while it waited
            // (a `delay`): a reply kept now would stand for them, past the
            // reload that emptied the cache of their replies.
            return None;
        }
        let shareable = f.name == "COM_QUERY"
            && f.read_only
            && !f.several_statements
            && f.pin.is_none()
            && !f.diagnostics
            && !self.sticky()
            && self
                .pinned
                .as_ref()
                .is_none_or(|conn| self.linger && self.hold_reason(conn).is_none())
            && !self.vars.sets_autocommit_off()
            && self.user.causal_reads.is_none()
            && total < MAX_CHUNK;
        if !shareable {
            return None;
        }
        let sql = self.buf.bytes().get(5..total)?;
        if super::rewrite::mentions_previous_statement(sql) || super::user_vars::mentions_any(sql) {
            return None;
        }
        if self.diagnostics_pending() && may_read_diagnostics_left(f, sql) {
            return None;
        }
        let key = CacheKey {
            sql: sql.to_vec(),
            user: self.user.name.clone(),
            rules: rule.matched.clone(),
            schema: self.schema.clone(),
            pool_key: self.key,
            caps: self.caps,
            vars: self.vars.clone(),
        };
        Some((key, ttl))
    }

    /// The session's diagnostics area holds its own warnings or error (on
    /// the connection kept for them, or Funnel's own ERR): a read that
    /// leaves the area alone (see [`may_read_diagnostics_left`]) would
    /// report them in `@@warning_count`, `@@error_count`, which a reply
    /// kept from a clean session says are 0.
    fn diagnostics_pending(&self) -> bool {
        self.linger || self.own_err.is_some()
    }

    /// Looks `key` up in the core's cache: on a hit, answers the client
    /// (`Some`, with how that went); on a miss, notes the key for the reply
    /// to be kept (see [`Self::keep_in_cache`]).
    pub(super) async fn answer_from_cache(
        &mut self,
        total: usize,
        f: &Forward,
        key: CacheKey,
        ttl: Duration,
    ) -> Option<Result<(), End>> {
        let (hit, generation) = {
            let mut cache = self.shard.query_cache.borrow_mut();
            (cache.get(&key, Instant::now()), cache.generation())
        };
        let Some(reply) = hit else {
            Stats::bump(&self.shard.stats.query_cache_misses);
            self.cache_miss = Some((key, ttl, generation));
            return None;
        };
        Stats::bump(&self.shard.stats.query_cache_hits);
        self.buf.consume(total);
        if write_own(&mut self.stream, &reply.bytes, &self.shard, &self.control)
            .await
            .is_err()
        {
            return Some(Err(End::Closed));
        }
        let stats = &self.shard.stats;
        stats
            .bytes_to_clients
            .set(stats.bytes_to_clients.get() + reply.bytes.len() as u64);
        // As `settle` notes a clean read.
        let summary = &reply.summary;
        self.last_status = summary.status;
        self.sql_mode_unknown = false;
        self.last_result_columns = summary.first_result_columns;
        self.last_succeeded = true;
        self.note_results(summary, f);
        self.note_diagnostics(f, 0, true);
        // A connection kept for the warnings the read would have cleared
        // (they stay on it as another client's: `stale_diagnostics`).
        if !self.linger {
            self.release_if_free();
        }
        if self.log.taken() {
            self.log.answered_from_cache(summary.rows);
        }
        self.record_digest(summary.rows, false, AnsweredBy::Funnel);
        Some(Ok(()))
    }

    /// Keeps a reply captured for the cache (`bytes`, what the client was
    /// sent) when it ended clean: one result set, no error, no warning,
    /// no state change, nothing more to come.
    pub(super) fn keep_in_cache(&mut self, bytes: Vec<u8>, summary: &ResponseSummary) {
        let Some((key, ttl, generation)) = self.cache_miss.take() else {
            return;
        };
        let open = StatusFlags::SERVER_MORE_RESULTS_EXISTS.0 | StatusFlags::SERVER_STATUS_CURSOR_EXISTS.0;
        let clean = summary.error.is_none()
            && summary.warnings == 0
            && !summary.state_changed
            && summary.result_sets == 1
            && summary.status.0 & open == 0;
        if !clean {
            return;
        }
        let reply = CachedReply {
            bytes: bytes.into(),
            summary: std::rc::Rc::new(summary.clone()),
        };
        let max = self.shard.config().query_cache.max_memory_per_core.as_u64() as usize;
        let mut cache = self.shard.query_cache.borrow_mut();
        // Looked up under rules a reload has since replaced.
        if cache.generation() != generation {
            return;
        }
        cache.put(key, reply, ttl, Instant::now(), max);
    }
}

/// True when the read `f` (text `sql`) may answer with what the statements
/// before it left in the diagnostics area: it may open no table (only a
/// statement that opens one clears the area), or it names the area's
/// counts (`@@warning_count`, `@@error_count`) where Funnel's reading of
/// "opens a table" may be wrong (it takes any `FROM` it cannot place for
/// a table's, a `FROM DUAL` after a `TRIM(... FROM ...)` too).
pub(super) fn may_read_diagnostics_left(f: &Forward, sql: &[u8]) -> bool {
    f.opens_no_table || f.may_keep_diagnostics || names_diagnostic_counts(sql)
}

/// True when `sql` may read `@@warning_count` or `@@error_count` (the
/// names appear anywhere in it, maybe in a string or a comment).
pub(super) fn names_diagnostic_counts(sql: &[u8]) -> bool {
    let names = |word: &[u8]| sql.windows(word.len()).any(|w| w.eq_ignore_ascii_case(word));
    names(b"WARNING_COUNT") || names(b"ERROR_COUNT")
}
