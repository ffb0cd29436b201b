//! A `causal_reads` session's side of [`crate::causal`]: reading the GTIDs
//! of its writes on the writer, and holding a replica's read (or a read
//! on another node of the Galera cluster written to) until the server has
//! applied them. For a user with `causal_reads: universal`, reading the
//! writer's position before a read that may go to a replica, and waiting
//! there for it (or with Galera's causal wait on a node).

use std::rc::Rc;
use std::time::{Duration, Instant};

use crate::causal::{
    position_sql, wait_sql, wsrep_caught_up, wsrep_wait_sql, wsrep_waited, Answer, Gtid, GtidPos, Turn,
    WaitedOut, WSREP_SYNC_SQL,
};
use crate::error::EngineError;
use crate::kill::ClientState;
use crate::pool::conn::{BackendConn, BackendError, Deadline};
use crate::pool::Pool;
use crate::stats::Stats;

use super::command::Forward;
use super::routing::Route;
use super::Session;

/// Rows of a causal read's own statement.
type Rows = Vec<Vec<Option<String>>>;

/// What a read of a `causal_reads: universal` user learnt before it took
/// a connection: the writer's GTID position, read after the read arrived
/// (`None` when it could not be read), and when the read arrived.
#[derive(Debug)]
pub(super) struct Universal {
    pos: Option<GtidPos>,
    arrived: Instant,
}

/// True when the read `f` may read a table's data, so that a read of a
/// causal-reads user waits for the writes it must see: it opens a table,
/// or may run stored code (`SELECT f()`, a function that reads one). Not
/// [`Session::reads_data`], whose exception for a read that names the
/// diagnostics area's counts (`SELECT @@warning_count, f()`, or any text
/// holding `error_count`, such as `SELECT user_error_count(7)`) is for a
/// replica connection kept for the client's warnings: a connection from
/// the pool holds none, and such a read must wait as any other.
pub(super) fn may_read_data(f: &Forward) -> bool {
    f.read_only && (!f.opens_no_table || f.may_run_stored_code)
}

impl Session {
    /// After a statement that completed on `conn`: notes a possible write
    /// on a writer of the user's default hostgroup, and reads the GTIDs of
    /// the writes not read yet once the session is free of the connection's
    /// server-side answers (no pin, no lingering warnings) and outside a
    /// transaction (whose GTID comes at its commit). The read-back is a
    /// `SELECT`, which changes what the server answers for `ROW_COUNT()`
    /// and `FOUND_ROWS()` there: a pinned session reads those from the
    /// server. Until it runs, the session's reads go to the writer. On a
    /// Galera node it reads the cluster's GTID as well. `Err` when the
    /// connection failed.
    pub(super) async fn note_causal_write(
        &mut self,
        conn: &mut BackendConn,
        f: &Forward,
    ) -> Result<(), BackendError> {
        let Some(cluster) = self.on_default_writer(conn) else {
            return Ok(());
        };
        if f.may_write_data() {
            self.causal.wrote_on(conn.id);
            if let Some(cluster) = &cluster {
                self.causal.wrote_to_cluster(cluster, conn.pool_id);
            }
        }
        if self.sticky() || f.pin.is_some() || self.linger || conn.may_be_in_transaction() {
            return Ok(());
        }
        let Some(sql) = self.causal.read_back_sql(conn.id, cluster.is_some()) else {
            return Ok(());
        };
        match conn.query_rows(sql).await {
            Ok((_, rows)) => {
                if !self.take_read_back(&rows, cluster.as_ref(), conn.pool_id) {
                    self.causal_unreadable(&format!("{sql} gave {:?}", rows.first()));
                }
                Ok(())
            }
            // Not MariaDB (MySQL has neither variable), or a Galera node
            // whose wait for the cluster timed out: the session's reads
            // stay on the writer.
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

    /// Takes the answer of a read-back ([`crate::causal::CausalState::read_back_sql`])
    /// on a writer in pool `through`, a node of the Galera `cluster` if
    /// any: false when it is not one (the writes stay unread).
    fn take_read_back(&mut self, rows: &Rows, cluster: Option<&Rc<str>>, through: u32) -> bool {
        let row = rows.first();
        let col = |i: usize| row.and_then(|r| r.get(i)).and_then(|v| v.as_deref());
        let pos = col(0).and_then(GtidPos::parse);
        let wsrep = match cluster {
            Some(_) => col(1).and_then(Gtid::parse).map(Some),
            None => Some(None),
        };
        let (Some(pos), Some(wsrep)) = (pos, wsrep) else {
            return false;
        };
        if let (Some(cluster), Some(gtid)) = (cluster, wsrep) {
            self.causal.read_wsrep(cluster, gtid, through);
        }
        self.causal.read(&pos);
        true
    }

    /// A command whose reply did not come whole from `conn` (it timed
    /// out, the server failed, or the command's send did), which goes: one
    /// that may have written on a writer of the default hostgroup may have
    /// committed (ERR 1969 says so), and its GTID cannot be read there, so
    /// the session's next read goes to a writer, which reads the whole
    /// binary-log position.
    pub(super) fn note_causal_write_lost(&mut self, conn: &BackendConn, f: &Forward) {
        if self.user.causal_reads.is_none() || !f.may_write_data() {
            return;
        }
        if let Some(cluster) = self.on_default_writer(conn) {
            self.causal.wrote_on_lost();
            if let Some(cluster) = &cluster {
                self.causal.wrote_to_cluster(cluster, conn.pool_id);
            }
        }
    }

    /// `Some` when `conn` is on a writer of the user's default hostgroup,
    /// where the session's writes and their GTIDs are: with the node's
    /// Galera cluster, if the health monitor saw it is a Galera node.
    fn on_default_writer(&self, conn: &BackendConn) -> Option<Option<Rc<str>>> {
        let pool = self.shard.backends.by_id(conn.pool_id)?;
        (*pool.placement().hostgroup == *self.user.default_hostgroup && !pool.is_read_only())
            .then(|| pool.galera_cluster())
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
    /// the client's was sent to the replica, so the read runs once. A read
    /// on a node of a Galera cluster the session wrote to waits likewise
    /// (see [`Session::galera_read_conn`]).
    /// A `KILL QUERY` of the read, or a `KILL` of the client, ends the
    /// wait with `Err`, and the read never runs.
    /// A read of a `causal_reads: universal` user waits for the writer's
    /// position the read learnt first (`universal`, see
    /// [`Session::universal_position`]) instead of the session's writes
    /// alone, or on a Galera node for all the cluster ordered (see
    /// [`Session::galera_universal_read`]).
    /// A read that reads no table's data ([`may_read_data`] false:
    /// `SELECT 1`, a pool's validation query, `SELECT @@version`) has
    /// nothing a lagging server could serve stale, and runs where it
    /// landed without a wait.
    pub(super) async fn causal_read_conn(
        &mut self,
        conn: BackendConn,
        f: &Forward,
        universal: Option<Box<Universal>>,
    ) -> Result<BackendConn, EngineError> {
        // A connection from the pool: the one the session wrote on went back.
        self.causal.let_go();
        self.causal_unwaited = false;
        let Some(timeout) = self.user.causal_reads else {
            return Ok(conn);
        };
        let Some(pool) = self.shard.backends.by_id(conn.pool_id) else {
            return Ok(conn);
        };
        let all_writes = self.user.causal_universal;
        if !f.read_only || (!self.causal.unread() && !all_writes && self.causal.wants_nothing()) {
            return Ok(conn);
        }
        if !self.causal.unread() && !may_read_data(f) {
            // Kept for this read's warnings, the connection must not
            // serve a read of data next without a wait (see `lease`).
            self.causal_unwaited = true;
            return Ok(conn);
        }
        let at_split = self.at_split(&pool);
        if all_writes && !self.causal.unread() && self.in_writers_cluster(&pool) {
            return self.galera_universal_read(conn, &pool, timeout, f).await;
        }
        // A node of a Galera cluster the session wrote to: the nodes of
        // another (a cluster that replicates from the writer by binary
        // log) are replicas or primaries as below.
        let galera = pool.galera_cluster().filter(|c| {
            at_split && (self.causal.unread_in(c).is_some() || self.causal.wsrep_for(c).is_some())
        });
        if let Some(cluster) = galera {
            return self.galera_read_conn(conn, &pool, &cluster, timeout, f).await;
        }
        if at_split && !pool.seen() && self.causal.wrote_to_galera() {
            // Not checked yet (just started or added, or its checks
            // fail): it may be a node of the cluster written to, whose
            // read at once, as a primary's, would miss the write.
            if self.causal.unread() {
                return self.read_after_unread_writes(conn, &pool, timeout, f).await;
            }
            self.shard.backends.release(conn);
            return self.causal_read_on_writer(f, &[pool.id]).await;
        }
        // A server the monitor saw writable and not replicating is taken
        // for a primary (one listed among the readers too): it has the
        // session's writes, and `MASTER_GTID_WAIT` there would only wait
        // for a replication thread, until the timeout. One whose
        // replication runs (a lag) is a replica left writable, and waits:
        // in the default hostgroup too when it takes none of its writes
        // (the passive primary of a pair under `max_writers`).
        if !self.on_replica(&pool) {
            return Ok(conn);
        }
        if self.causal.unread() {
            return self.read_after_unread_writes(conn, &pool, timeout, f).await;
        }
        if !all_writes {
            if self.causal.wanted.is_empty() {
                return Ok(conn);
            }
            let want = self.causal.wanted.clone();
            return self.replica_read(conn, &pool, &want, timeout, f).await;
        }
        // The writer's position, read after the read arrived: it covers
        // the session's writes too (merged all the same, in case the writer
        // changed since). Unreadable, or not read (the read was not
        // expected to land on a replica): the read goes to the writer.
        let Some(Universal {
            pos: Some(mut want),
            arrived,
        }) = universal.map(|u| *u)
        else {
            self.shard.backends.release(conn);
            return self.causal_read_on_writer(f, &[]).await;
        };
        want.merge(&self.causal.wanted);
        // The whole wait, position read included, is the timeout.
        let left = timeout.saturating_sub(arrived.elapsed());
        self.replica_read(conn, &pool, &want, left, f).await
    }

    /// True when `conn`, kept only for a read's warnings, is where a causal
    /// read of data must wait first: a replica, or a Galera node (its
    /// cluster may have ordered writes through another node). A plain
    /// writer has every write and keeps serving the session: before, a
    /// `SELECT FOUND_ROWS()` after a write's warnings there let it go, and
    /// the client's `SHOW WARNINGS` came back empty (soak seed 6731).
    pub(super) fn kept_where_reads_wait(&self, conn: &BackendConn) -> bool {
        self.shard
            .backends
            .by_id(conn.pool_id)
            .is_none_or(|p| p.galera_cluster().is_some() || self.on_replica(&p))
    }

    /// True when `pool` is in the hostgroup the user's reads split to (its
    /// `read_hostgroup` or `default_hostgroup`), where reads are held.
    fn at_split(&self, pool: &Pool) -> bool {
        let at = &*pool.placement().hostgroup;
        self.user.read_hostgroup.as_deref() == Some(at) || *at == *self.user.default_hostgroup
    }

    /// True when `pool` is a node of a Galera cluster a writer of the
    /// user's default hostgroup is in, where reads are held: Galera's
    /// causal wait there covers all writes through the cluster. (A cluster
    /// fed from a plain primary by binary-log replication orders those
    /// writes only once its node applied them: its nodes are replicas.)
    fn in_writers_cluster(&self, pool: &Pool) -> bool {
        let Some(cluster) = pool.galera_cluster() else {
            return false;
        };
        self.at_split(pool)
            && self.shard.backends.all().iter().any(|p| {
                *p.placement().hostgroup == *self.user.default_hostgroup
                    && !p.is_read_only()
                    && p.galera_cluster().as_deref() == Some(&*cluster)
            })
    }

    /// True when a read on `pool` is a replica's, which waits: a server
    /// the monitor saw writable and not replicating is taken for a
    /// primary (one listed among the readers too): it has the writes, and
    /// `MASTER_GTID_WAIT` there would only wait for a replication thread,
    /// until the timeout. One whose replication runs (a lag) is a replica
    /// left writable, and waits: in the default hostgroup too when it
    /// takes none of its writes (the passive primary of a pair under
    /// `max_writers`).
    fn on_replica(&self, pool: &Rc<Pool>) -> bool {
        let primary = pool.seen() && !pool.is_read_only() && pool.lag().is_none();
        let at = &*pool.placement().hostgroup;
        (self.user.read_hostgroup.as_deref() == Some(at) && !primary)
            || (*at == *self.user.default_hostgroup
                && (pool.is_read_only() || (!primary && self.shard.backends.refuses_writes(pool))))
    }

    /// A read on the replica of `pool` (`conn`): it serves at once when a
    /// wait saw it apply `want` already, else once it has
    /// (`MASTER_GTID_WAIT`, up to `timeout`); one that does not in time,
    /// or cannot wait, leaves the read to the writer.
    async fn replica_read(
        &mut self,
        conn: BackendConn,
        pool: &Rc<Pool>,
        want: &GtidPos,
        timeout: Duration,
        f: &Forward,
    ) -> Result<BackendConn, EngineError> {
        let stats = self.shard.stats.clone();
        if pool.has_applied(want) {
            Stats::bump(&stats.causal_waits_skipped);
            return Ok(conn);
        }
        // A replica whose replication stopped applies nothing more: it
        // serves the read only if it has the writes already.
        let timeout = if pool.replication_stopped() {
            Duration::ZERO
        } else {
            timeout
        };
        let sql = wait_sql(want, timeout);
        let Some((conn, rows)) = self.causal_wait(conn, &sql, timeout).await? else {
            return self.causal_read_on_writer(f, &[]).await;
        };
        if rows.first().and_then(|r| r.first()).and_then(|v| v.as_deref()) == Some("0") {
            pool.note_applied(want);
            Stats::bump(&stats.causal_waits);
            return Ok(conn);
        }
        // Late (-1), or not a replica that can wait (NULL): the
        // connection is as good as before.
        self.shard.backends.release(conn);
        self.causal_read_on_writer(f, &[]).await
    }

    /// Before a read of a `causal_reads: universal` user takes a
    /// connection: when the read may land on a replica (a server of the
    /// hostgroup it routes to, or its fallback, that
    /// [`Session::on_replica`] would hold it on, nodes of the writers'
    /// Galera cluster aside), the
    /// writer's GTID position, read now, after the read arrived (see
    /// [`crate::causal::PositionReads`]). Read before the replica's
    /// connection is taken, so no read holds a replica connection while
    /// it waits for a writer's. `None` when the read needs none: not a
    /// read, none of its servers is a replica, the session's writes
    /// are unread (the read goes to the writer then, as for `true`), or it
    /// reads no table's data ([`may_read_data`]: a pool's `SELECT 1`
    /// neither waits nor fails while no writer can give a position).
    pub(super) async fn universal_position(
        &mut self,
        total: usize,
        f: &Forward,
    ) -> Result<Option<Box<Universal>>, EngineError> {
        if !f.read_only || self.causal.unread() || !may_read_data(f) {
            return Ok(None);
        }
        let route = self.route(total, f);
        if !self.may_reach_replica(&route) {
            return Ok(None);
        }
        let arrived = Instant::now();
        // Waiting, as for a connection: a `KILL QUERY` of the read stops
        // it (one of a session counted idle stopped nothing).
        self.control.set_state(ClientState::Waiting);
        let pos = self.writer_position(f).await?;
        // A `KILL QUERY` that came in the same turn as the position: the
        // checkout would clear it, and the read would run.
        if self.stop_requested() {
            return Err(self.stopped_wait());
        }
        Ok(Some(Box::new(Universal { pos, arrived })))
    }

    /// True when the read `f` may read a table's data, which a replica
    /// connection kept for a previous read's warnings must not serve
    /// without a wait: it opens a table (also executed), or may run stored
    /// code (a function that reads one, `SELECT f()`) and does not name
    /// the diagnostics area's counts (`SELECT @@warning_count, NOW()`
    /// reads the warnings kept there).
    pub(super) fn reads_data(&self, total: usize, f: &Forward) -> bool {
        f.read_only
            && (!f.opens_no_table
                || (f.may_run_stored_code
                    && !(f.name == "COM_QUERY"
                        && self
                            .buf
                            .bytes()
                            .get(5..total.min(funnel_protocol::framing::MAX_CHUNK))
                            .is_some_and(super::cached_reads::names_diagnostic_counts))))
    }

    /// True when a read routed by `route` may land on a plain replica.
    fn may_reach_replica(&self, route: &Route) -> bool {
        // Sent where writes go (autocommit off, a sticky session).
        if route.access != crate::router::Access::Read {
            return false;
        }
        let mut hostgroups = std::iter::once(&route.hostgroup).chain(route.fallback.as_ref());
        let pools = self.shard.backends.all();
        hostgroups.any(|h| {
            pools.iter().any(|p| {
                *p.placement().hostgroup == **h
                    && p.service() != crate::pool::Service::Retired
                    && !self.in_writers_cluster(p)
                    && self.on_replica(p)
            })
        })
    }

    /// The position of a writer of the user's default hostgroup
    /// (`@@global.gtid_binlog_pos`), from a read sent after this one
    /// arrived: this one's, or one another read of the core sends
    /// (see [`crate::causal::PositionReads`]). `None` when it cannot be
    /// read. A `KILL QUERY` of the read, or a `KILL` of the client, ends
    /// the wait with `Err`.
    async fn writer_position(&mut self, f: &Forward) -> Result<Option<GtidPos>, EngineError> {
        let reads = self.shard.positions.clone();
        let hostgroup = self.user.default_hostgroup.clone();
        loop {
            let mut leader = match reads.turn(&hostgroup) {
                Turn::Join(wait) => match self.stoppable(wait).await? {
                    Answer::Read(pos) => {
                        Stats::bump(&self.shard.stats.causal_positions_shared);
                        return Ok(Some(pos));
                    }
                    Answer::Unreadable => return Ok(None),
                    Answer::WaitedOut(out) => return Err(waited_out_error(out)),
                    // Its leader went: another turn, after this read arrived too.
                    Answer::Abandoned => continue,
                },
                Turn::Lead(leader) => leader,
            };
            if let Some(previous) = leader.previous() {
                self.stoppable(previous).await?;
                // Stopped as the previous one was answered: the checkout
                // would clear it.
                if self.stop_requested() {
                    return Err(self.stopped_wait());
                }
            }
            let got = self.read_writer_position(f, &mut leader).await;
            match &got {
                Ok(Some(pos)) => leader.answer(Answer::Read(pos.clone())),
                // Stopped: the reads that joined take another turn.
                Err(EngineError::Interrupted | EngineError::ConnectionKilled) => drop(leader),
                // No writer connection in the backlog's wait (or a
                // `PAUSE`'s): the reads that joined, which waited as long,
                // fail with it. Else they go to the writer, which tells
                // them why it cannot take them, if it cannot.
                Err(e) => leader.answer(waited_out(e).map_or(Answer::Unreadable, Answer::WaitedOut)),
                Ok(None) => leader.answer(Answer::Unreadable),
            }
            return got;
        }
    }

    /// Sends `leader`'s position read on a writer connection of the
    /// default hostgroup, taken as a write's would be (within the
    /// backlog's wait), and answers within `causal_reads_timeout` (plus
    /// `pool.connect_timeout`). `None` when it cannot be read: the read
    /// goes to the writer (which then tells why no writer took it, if
    /// none can). `Err` when the read was stopped, or the backlog's wait
    /// for a writer connection ran out.
    async fn read_writer_position(
        &mut self,
        f: &Forward,
        leader: &mut crate::causal::Leader,
    ) -> Result<Option<GtidPos>, EngineError> {
        let conn = match self.checkout_routed(0, f, Some(&[])).await {
            Ok(conn) => conn,
            Err(
                EngineError::NoBackend { .. }
                | EngineError::BackendUnavailable { .. }
                | EngineError::KeyRefused { .. },
            ) => return Ok(None),
            Err(e) => return Err(e),
        };
        // A read-only server (a hostgroup with no writable one: a
        // failover under way) has no position to give.
        let Some(cluster) = self.on_default_writer(&conn) else {
            self.shard.backends.release(conn);
            return Ok(None);
        };
        leader.sending();
        Stats::bump(&self.shard.stats.causal_position_reads);
        let sql = position_sql(cluster.is_some());
        let timeout = self.user.causal_reads.unwrap_or_default();
        let Some((conn, rows)) = self.causal_wait(conn, sql, timeout).await? else {
            self.causal_unreadable(&format!("{sql} failed"));
            return Ok(None);
        };
        self.shard.backends.release(conn);
        let pos = rows
            .first()
            .and_then(|r| r.first())
            .and_then(|v| v.as_deref())
            .and_then(GtidPos::parse);
        if pos.is_none() {
            self.causal_unreadable(&format!("{sql} gave {:?}", rows.first()));
        }
        Ok(pos)
    }

    /// `wait`, unless a `KILL QUERY` of the read, or a `KILL` of the
    /// client, comes first: `Err` then.
    async fn stoppable<T>(&mut self, wait: impl std::future::Future<Output = T>) -> Result<T, EngineError> {
        let stopped = self.control.wait_stopped();
        let got = futures_lite::future::or(async { Some(wait.await) }, async {
            stopped.await;
            None
        })
        .await;
        got.ok_or_else(|| self.stopped_wait())
    }

    /// A read of a `causal_reads: universal` user on a node of a Galera
    /// cluster (`conn`, of `pool`): Galera's causal wait
    /// ([`WSREP_SYNC_SQL`]) holds it until the node has committed every
    /// transaction the cluster ordered before it, so every write committed
    /// before the read arrived, through any node (the session's among
    /// them, checked against the answer). Within `causal_reads_timeout`
    /// (Funnel's deadline: the server's wait runs for the provider's
    /// `repl.causal_read_timeout`); a node that does not catch up in time,
    /// or cannot wait, leaves the read to a writer of the default
    /// hostgroup (another than this node while there is one).
    async fn galera_universal_read(
        &mut self,
        conn: BackendConn,
        pool: &Rc<Pool>,
        timeout: Duration,
        f: &Forward,
    ) -> Result<BackendConn, EngineError> {
        let cluster = pool.galera_cluster();
        let own = cluster
            .as_deref()
            .and_then(|c| self.causal.wsrep_for(c))
            .map(|w| w.gtid);
        if let Some((conn, rows)) = self.causal_wait_within(conn, WSREP_SYNC_SQL, timeout).await? {
            let seen = rows.first().and_then(|r| r.first()).and_then(|v| v.as_deref());
            if own.is_none_or(|gtid| wsrep_caught_up(&gtid, seen)) {
                if let Some(seen) = seen.and_then(Gtid::parse) {
                    pool.note_applied_wsrep(seen);
                }
                Stats::bump(&self.shard.stats.causal_waits);
                return Ok(conn);
            }
            self.shard.backends.release(conn);
        }
        self.causal_read_on_writer(f, &[pool.id]).await
    }

    /// A read leased from `pool` (`conn`) while the session's writes are
    /// unread, which only the server they went through is known to have.
    /// Writes to a plain primary: the read goes to a writer. Writes to a
    /// Galera cluster: through one node, that node serves the read (not
    /// another writer, which may not have committed them yet) while it can
    /// take it; through several, or when it cannot, see
    /// [`Session::galera_read_after_writes_through_nodes`].
    /// Alike whether `pool` is a node of the cluster or a replica (of the
    /// read hostgroup, or read-only in the default one): a replica's read
    /// that went to any writer missed the writes on a node that lagged.
    async fn read_after_unread_writes(
        &mut self,
        conn: BackendConn,
        pool: &Rc<Pool>,
        timeout: std::time::Duration,
        f: &Forward,
    ) -> Result<BackendConn, EngineError> {
        let Some(cluster) = self.causal.unread_cluster() else {
            self.shard.backends.release(conn);
            return self.causal_read_on_writer(f, &[]).await;
        };
        let Some(through) = self.causal.unread_in(&cluster).flatten() else {
            return self
                .galera_read_after_writes_through_nodes(Some(conn), &cluster, timeout, f)
                .await;
        };
        if through == pool.id {
            return Ok(conn);
        }
        self.shard.backends.release(conn);
        let mut behind = self.galera_nodes_behind(&cluster, through, None);
        behind.push(pool.id);
        // A `KILL QUERY` that came as the read waited for `conn`: the
        // checkout would clear it, and the read would run.
        if self.stop_requested() {
            return Err(self.stopped_wait());
        }
        match self.checkout_routed(0, f, Some(&behind)).await {
            Ok(conn) => {
                Stats::bump(&self.shard.stats.causal_reads_on_writer);
                Ok(conn)
            }
            // The node written through cannot take it (down, drained, its
            // connects failing; nothing was sent): no other node is known
            // to have the writes, and any may lag. A writer reads them
            // back first, as after writes through several nodes.
            Err(
                EngineError::NoBackend { .. }
                | EngineError::BackendUnavailable { .. }
                | EngineError::KeyRefused { .. },
            ) => {
                self.galera_read_after_writes_through_nodes(None, &cluster, timeout, f)
                    .await
            }
            Err(e) => Err(e),
        }
    }

    /// A read on a node of the Galera `cluster` (pool `pool`) the session
    /// wrote to: a node other than the one the session's latest write
    /// there went through first waits until it has committed that write
    /// (`WSREP_SYNC_WAIT_UPTO_GTID`, up to `causal_reads_timeout` in whole
    /// seconds, until the node has ordered it; then `wsrep_sync_wait`
    /// until its commit shows, see [`WSREP_SYNC_SQL`]), unless a wait
    /// already saw it do so. The node written
    /// through has it, and every earlier transaction of the cluster (each
    /// node commits them in the cluster's order): it serves at once. A
    /// node that does not catch up in time, or cannot wait, sends the read
    /// to a writer of the default hostgroup, not to another node of the
    /// cluster that has not been seen to have the write (under several
    /// writers, the node written through). While the session's writes
    /// are unread, see [`Session::read_after_unread_writes`].
    async fn galera_read_conn(
        &mut self,
        conn: BackendConn,
        pool: &Rc<Pool>,
        cluster: &str,
        timeout: std::time::Duration,
        f: &Forward,
    ) -> Result<BackendConn, EngineError> {
        if self.causal.unread() {
            return self.read_after_unread_writes(conn, pool, timeout, f).await;
        }
        let Some(want) = self.causal.wsrep_for(cluster) else {
            return Ok(conn);
        };
        let (gtid, through) = (want.gtid, want.through);
        if through == pool.id {
            return Ok(conn);
        }
        let stats = self.shard.stats.clone();
        if pool.has_applied_wsrep(&gtid) {
            Stats::bump(&stats.causal_waits_skipped);
            return Ok(conn);
        }
        let sql = wsrep_wait_sql(&gtid, timeout);
        let timeout = std::time::Duration::from_secs(crate::causal::wsrep_wait_seconds(timeout));
        let started = std::time::Instant::now();
        let behind = self.galera_nodes_behind(cluster, through, Some(&gtid));
        let Some((conn, rows)) = self.causal_wait(conn, &sql, timeout).await? else {
            return self.causal_read_on_writer(f, &behind).await;
        };
        let row = rows.first();
        let col = |i: usize| row.and_then(|r| r.get(i)).and_then(|v| v.as_deref());
        if wsrep_waited(&gtid, col(0), col(1)) {
            // Ordered, maybe not committed yet: Galera's causal wait for
            // the rest, in what is left of the timeout.
            let left = timeout.saturating_sub(started.elapsed());
            let Some((conn, rows)) = self.causal_wait(conn, WSREP_SYNC_SQL, left).await? else {
                return self.causal_read_on_writer(f, &behind).await;
            };
            let seen = rows.first().and_then(|r| r.first()).and_then(|v| v.as_deref());
            if wsrep_caught_up(&gtid, seen) {
                pool.note_applied_wsrep(gtid);
                Stats::bump(&stats.causal_waits);
                return Ok(conn);
            }
            self.shard.backends.release(conn);
            return self.causal_read_on_writer(f, &behind).await;
        }
        // The node numbers the cluster's transactions otherwise than the
        // node written through (another cluster under the same name?):
        // its answer says nothing.
        if self.shard.log_rate.allow() {
            tracing::warn!(
                client = %self.id,
                backend = %pool.backend_name(),
                wanted = %gtid,
                answer = ?row,
                "causal_reads: this Galera node cannot wait for the session's write; the read goes to the writer"
            );
        }
        self.shard.backends.release(conn);
        self.causal_read_on_writer(f, &behind).await
    }

    /// A read (leased from a node of the Galera `cluster`, or from a
    /// replica) while the session's writes to the cluster went through
    /// several nodes, their GTIDs unread (the session
    /// was held on its connections, or a reply was cut): each node
    /// commits its own writes at once and the others' later, so none is
    /// known to have them all, and a read on any missed the write of
    /// another that it had not committed yet. The node that serves it
    /// first reads them back as a writer would after them: the read-back
    /// waits there until the node has committed every transaction the
    /// cluster ordered so far, the session's writes among them
    /// (`wsrep_sync_wait`), and its GTIDs then steer the later reads as
    /// any read-back's do (this node serves them at once, others wait).
    /// `conn` (if any) serves when it is a writer of the default hostgroup
    /// in the cluster, where writes are read back; else a writer of the
    /// cluster does. So after writes through one node that cannot take the
    /// read. One that does not catch up leaves the read to the next, in
    /// what is left of `causal_reads_timeout`, which bounds the whole
    /// wait; when none did in time, the read runs without the wait on a
    /// writer not seen to lag, while there is one (a warning is logged).
    async fn galera_read_after_writes_through_nodes(
        &mut self,
        conn: Option<BackendConn>,
        cluster: &str,
        timeout: std::time::Duration,
        f: &Forward,
    ) -> Result<BackendConn, EngineError> {
        // The whole wait, over every writer tried, is the session's
        // timeout: one writer after another each given all of it made a
        // read wait that many times as long.
        let until = std::time::Instant::now() + timeout;
        let mut tried: Vec<u32> = Vec::new();
        // Writers of the cluster that did not catch up in time (or could
        // not wait): the read without the wait goes elsewhere while it can.
        let mut lagging: Vec<u32> = Vec::new();
        let mut next = conn;
        loop {
            let conn = match next.take() {
                Some(conn) => conn,
                None => {
                    // A `KILL QUERY` that came as the last wait ended.
                    if self.stop_requested() {
                        return Err(self.stopped_wait());
                    }
                    if std::time::Instant::now() >= until {
                        break;
                    }
                    match self.checkout_routed(0, f, Some(&tried)).await {
                        Ok(conn) => conn,
                        // No other writer, or none could give a
                        // connection (each was tried): nothing was sent.
                        Err(
                            EngineError::NoBackend { .. }
                            | EngineError::BackendUnavailable { .. }
                            | EngineError::KeyRefused { .. },
                        ) => break,
                        Err(e) => return Err(e),
                    }
                }
            };
            tried.push(conn.pool_id);
            let node = self
                .on_default_writer(&conn)
                .flatten()
                .filter(|c| **c == *cluster);
            let (Some(node), Some(sql)) = (node, self.causal.read_back_sql(conn.id, true)) else {
                self.shard.backends.release(conn);
                continue;
            };
            let left = until.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                self.shard.backends.release(conn);
                break;
            }
            let pool_id = conn.pool_id;
            // Galera's causal wait runs for the provider's
            // `repl.causal_read_timeout` (30 s by default): Funnel's
            // deadline ends it at the session's (the connection goes).
            if let Some((conn, rows)) = self.causal_wait_within(conn, sql, left).await? {
                if self.take_read_back(&rows, Some(&node), conn.pool_id) {
                    Stats::bump(&self.shard.stats.causal_waits);
                    return Ok(conn);
                }
                self.shard.backends.release(conn);
            }
            lagging.push(pool_id);
        }
        if self.shard.log_rate.allow() {
            tracing::warn!(
                client = %self.id,
                user = %self.user.name,
                "causal_reads: no Galera node caught up with the session's writes in time; the read goes to a writer without the wait"
            );
        }
        self.causal_read_on_writer(f, &lagging).await
    }

    /// The pools of the Galera `cluster`'s nodes other than `through` (the
    /// node written through) that no wait saw commit `gtid`: a read sent
    /// to a writer for want of them must not land there.
    fn galera_nodes_behind(&self, cluster: &str, through: u32, gtid: Option<&Gtid>) -> Vec<u32> {
        self.shard
            .backends
            .all()
            .iter()
            .filter(|p| p.id != through && p.galera_cluster().as_deref() == Some(cluster))
            .filter(|p| !gtid.is_some_and(|g| p.has_applied_wsrep(g)))
            .map(|p| p.id)
            .collect()
    }

    /// Runs a causal read's wait `sql` on `conn`, which answers within
    /// `timeout` (plus `pool.connect_timeout` for the round trip): the
    /// connection and the rows, or `None` when the server refused it (the
    /// connection, as good as before, goes back) or failed (it goes). A
    /// `KILL` of the client, or a `KILL QUERY` of its read, stops the wait
    /// as it stops one for a connection: `Err`, the read is not sent, and
    /// the server's wait is stopped too (the connection goes).
    async fn causal_wait(
        &mut self,
        conn: BackendConn,
        sql: &str,
        timeout: std::time::Duration,
    ) -> Result<Option<(BackendConn, Rows)>, EngineError> {
        let limit = timeout + self.shard.config().pool.connect_timeout.as_duration();
        self.causal_wait_within(conn, sql, limit).await
    }

    /// [`Session::causal_wait`] for a wait the server does not end by
    /// itself in time: Funnel's deadline, `limit`, is the whole wait.
    async fn causal_wait_within(
        &mut self,
        mut conn: BackendConn,
        sql: &str,
        limit: std::time::Duration,
    ) -> Result<Option<(BackendConn, Rows)>, EngineError> {
        let deadline = Deadline {
            limit,
            key: Deadline::CONNECT_KEY,
        };
        let thread = conn.server_thread();
        let stopped = self.control.wait_stopped();
        let waited = futures_lite::future::or(
            async { Some(conn.query_rows_within(deadline, sql).await) },
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
            Ok((_, rows)) => Ok(Some((conn, rows))),
            Err(BackendError::Refused(_)) => {
                self.shard.backends.release(conn);
                Ok(None)
            }
            Err(_) => {
                self.discard_backend(conn);
                Ok(None)
            }
        }
    }

    /// Sends a causal read a replica (or Galera node) could not serve to a
    /// writer of the default hostgroup: one not in `behind` (Galera nodes
    /// that may lack the session's write) while there is one.
    async fn causal_read_on_writer(
        &mut self,
        f: &Forward,
        behind: &[u32],
    ) -> Result<BackendConn, EngineError> {
        // A `KILL QUERY` that came as the wait ended: the writer's
        // checkout would clear it, and the read would run.
        if self.stop_requested() {
            return Err(self.stopped_wait());
        }
        Stats::bump(&self.shard.stats.causal_reads_on_writer);
        if !behind.is_empty() {
            match self.checkout_routed(0, f, Some(behind)).await {
                // The node written through is gone (down, drained), or
                // cannot give a connection (its connects fail before the
                // health monitor marks it down; nothing was sent): the
                // read runs where a write would.
                Err(
                    EngineError::NoBackend { .. }
                    | EngineError::BackendUnavailable { .. }
                    | EngineError::KeyRefused { .. },
                ) => {}
                got => return got,
            }
        }
        self.checkout_routed(0, f, Some(&[])).await
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

/// A position read's wait for a writer connection that ran out, for the
/// reads that joined it; `None` for any other failure.
fn waited_out(e: &EngineError) -> Option<WaitedOut> {
    match *e {
        EngineError::BacklogTimeout { waited, max, waiting } => {
            Some(WaitedOut::Backlog { waited, max, waiting })
        }
        EngineError::Paused { waited } => Some(WaitedOut::Paused { waited }),
        _ => None,
    }
}

/// The error of a read that joined a position read whose wait for a
/// writer connection ran out: the leader's.
fn waited_out_error(out: WaitedOut) -> EngineError {
    match out {
        WaitedOut::Backlog { waited, max, waiting } => EngineError::BacklogTimeout { waited, max, waiting },
        WaitedOut::Paused { waited } => EngineError::Paused { waited },
    }
}
