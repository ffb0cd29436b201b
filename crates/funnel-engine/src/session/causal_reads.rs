//! A `causal_reads` session's side of [`crate::causal`]: reading the GTIDs
//! of its writes on the writer, and holding a replica's read until the
//! replica has applied them.

use crate::causal::{wait_sql, GtidPos};
use crate::error::EngineError;
use crate::pool::conn::{BackendConn, BackendError, Deadline};
use crate::stats::Stats;

use super::command::Forward;
use super::Session;

impl Session {
    /// After a statement that completed on `conn`: notes a possible write
    /// on a writer of the user's default hostgroup, and reads the GTIDs of
    /// the writes not read yet once the session is free of the connection's
    /// server-side answers (no pin, no lingering warnings) and outside a
    /// transaction (whose GTID comes at its commit). The read-back is a
    /// `SELECT`, which changes what the server answers for `ROW_COUNT()`
    /// and `FOUND_ROWS()` there: a pinned session reads those from the
    /// server. Until it runs, the session's reads go to the writer. `Err`
    /// when the connection failed.
    pub(super) async fn note_causal_write(
        &mut self,
        conn: &mut BackendConn,
        f: &Forward,
    ) -> Result<(), BackendError> {
        if !self.on_default_writer(conn) {
            return Ok(());
        }
        if f.may_write_data() {
            self.causal.wrote_on(conn.id);
        }
        if self.sticky() || f.pin.is_some() || self.linger || conn.may_be_in_transaction() {
            return Ok(());
        }
        let Some(sql) = self.causal.read_back_sql(conn.id) else {
            return Ok(());
        };
        match conn.query_rows(sql).await {
            Ok((_, rows)) => {
                let text = rows
                    .first()
                    .and_then(|row| row.first())
                    .and_then(|v| v.as_deref());
                match text.and_then(GtidPos::parse) {
                    Some(pos) => self.causal.read(&pos),
                    None => self.causal_unreadable(&format!("{sql} gave {text:?}")),
                }
                Ok(())
            }
            // Not MariaDB (MySQL has neither variable): the session's
            // reads stay on the writer.
            Err(BackendError::Refused(err)) => {
                self.causal_unreadable(&format!(
                    "{sql} failed: {} {}",
                    err.code,
                    String::from_utf8_lossy(&err.message)
                ));
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// A command whose reply did not come whole from `conn` (it timed
    /// out, the server failed, or the command's send did), which goes: one
    /// that may have written on a writer of the default hostgroup may have
    /// committed (ERR 1969 says so), and its GTID cannot be read there, so
    /// the session's next read goes to a writer, which reads the whole
    /// binary-log position.
    pub(super) fn note_causal_write_lost(&mut self, conn: &BackendConn, f: &Forward) {
        if self.user.causal_reads.is_some() && f.may_write_data() && self.on_default_writer(conn) {
            self.causal.wrote_on_lost();
        }
    }

    /// True when `conn` is on a writer of the user's default hostgroup,
    /// where the session's writes and their GTIDs are.
    fn on_default_writer(&self, conn: &BackendConn) -> bool {
        self.shard.backends.by_id(conn.pool_id).is_some_and(|pool| {
            *pool.placement().hostgroup == *self.user.default_hostgroup && !pool.is_read_only()
        })
    }

    fn causal_unreadable(&self, what: &str) {
        if self.shard.log_rate.allow() {
            tracing::warn!(
                client = %self.id,
                user = %self.user.name,
                what,
                "causal_reads: the writer's GTID position cannot be read; this session's reads go to the writer"
            );
        }
    }

    /// A connection the pool gave for the command `f`: for a read on a
    /// replica, the replica first waits until it has applied the session's
    /// writes (`MASTER_GTID_WAIT`, up to `causal_reads_timeout`), unless it
    /// was already seen to have. A replica that does not catch up in time,
    /// cannot wait, or a session whose last write's GTID is unread sends
    /// the read to a writer of the default hostgroup instead. Nothing of
    /// the client's was sent to the replica, so the read runs once.
    /// A `KILL QUERY` of the read, or a `KILL` of the client, ends the
    /// wait with `Err`, and the read never runs.
    pub(super) async fn causal_read_conn(
        &mut self,
        mut conn: BackendConn,
        f: &Forward,
    ) -> Result<BackendConn, EngineError> {
        // A connection from the pool: the one the session wrote on went back.
        self.causal.let_go();
        let Some(timeout) = self.user.causal_reads else {
            return Ok(conn);
        };
        let Some(pool) = self.shard.backends.by_id(conn.pool_id) else {
            return Ok(conn);
        };
        // A server the monitor saw writable and not replicating is taken
        // for a primary (one listed among the readers too): it has the
        // session's writes, and `MASTER_GTID_WAIT` there would only wait
        // for a replication thread, until the timeout. One whose
        // replication runs (a lag) is a replica left writable, and waits:
        // in the default hostgroup too when it takes none of its writes
        // (the passive primary of a pair under `max_writers`).
        let primary = pool.seen() && !pool.is_read_only() && pool.lag().is_none();
        let on_replica = {
            let at = &*pool.placement().hostgroup;
            (self.user.read_hostgroup.as_deref() == Some(at) && !primary)
                || (*at == *self.user.default_hostgroup
                    && (pool.is_read_only() || (!primary && self.shard.backends.refuses_writes(&pool))))
        };
        if !f.read_only || !on_replica || (!self.causal.unread() && self.causal.wanted.is_empty()) {
            return Ok(conn);
        }
        let stats = self.shard.stats.clone();
        if !self.causal.unread() {
            if pool.has_applied(&self.causal.wanted) {
                Stats::bump(&stats.causal_waits_skipped);
                return Ok(conn);
            }
            // A replica whose replication stopped applies nothing more:
            // it serves the read only if it has the writes already.
            let timeout = if pool.replication_stopped() {
                std::time::Duration::ZERO
            } else {
                timeout
            };
            let sql = wait_sql(&self.causal.wanted, timeout);
            // Past the wait the server answers -1: the margin is for the
            // round trip.
            let deadline = Deadline {
                limit: timeout + self.shard.config().pool.connect_timeout.as_duration(),
                key: Deadline::CONNECT_KEY,
            };
            // A `KILL` of the client, or a `KILL QUERY` of its read, stops
            // the wait as it stops one for a connection: the read is not
            // sent, and the replica's wait is stopped too.
            let thread = conn.server_thread();
            let stopped = self.control.wait_stopped();
            let waited = futures_lite::future::or(
                async { Some(conn.query_rows_within(deadline, &sql).await) },
                async {
                    stopped.await;
                    None
                },
            )
            .await;
            let Some(waited) = waited else {
                self.discard_backend(conn);
                self.shard.kill_abandoned_query(thread);
                return Err(self.stopped_wait());
            };
            match waited {
                Ok((_, rows))
                    if rows.first().and_then(|r| r.first()).and_then(|v| v.as_deref()) == Some("0") =>
                {
                    pool.note_applied(&self.causal.wanted);
                    Stats::bump(&stats.causal_waits);
                    return Ok(conn);
                }
                // Late (-1), or not a replica that can wait (NULL, an ERR):
                // the connection is as good as before.
                Ok(_) | Err(BackendError::Refused(_)) => self.shard.backends.release(conn),
                Err(_) => self.discard_backend(conn),
            }
        }
        // A `KILL QUERY` that came as the wait ended: the writer's
        // checkout would clear it, and the read would run.
        if self.stop_requested() {
            return Err(self.stopped_wait());
        }
        Stats::bump(&stats.causal_reads_on_writer);
        self.checkout_routed(0, f, true).await
    }

    /// The error for a read stopped while it waited (a `KILL QUERY` of
    /// it, or a `KILL` of the client), the interruption taken.
    fn stopped_wait(&self) -> EngineError {
        if self.control.take_wait_interrupted() && !self.control.is_killed() {
            EngineError::Interrupted
        } else {
            EngineError::ConnectionKilled
        }
    }
}
