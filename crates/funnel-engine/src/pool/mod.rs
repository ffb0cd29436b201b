//! One core's private pool of connections to one backend.
//!
//! Synchronous bookkeeping (`RefCell`/`Cell`, never held across an await);
//! the only awaits are opening a connection and waiting in the backlog.
//! `checkout` prefers an idle connection of the right key, then opens a new
//! one while the pool is below its maximum (so a cold pool fills
//! concurrently, one opening per waiting command), then replaces an idle
//! connection of another key, and only then waits in the backlog.

pub mod addr;
pub mod conn;
pub mod key;

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::{Duration, Instant};

use crate::backlog::Backlog;
use crate::error::EngineError;
use crate::ids::BackendId;
use crate::rt;
use crate::stats::Stats;
use conn::{BackendConn, BackendSpec, SlotGuard};
use funnel_protocol::{Capabilities, StatusFlags};
use key::PoolKey;

/// Limits and timeouts of one pool.
#[derive(Debug, Clone, Copy)]
pub struct PoolLimits {
    /// Connections (open or opening) at most.
    pub max: usize,
    /// Idle connections kept open even when unused.
    pub min_idle: usize,
    /// Deadline for connect + login.
    pub connect_timeout: Duration,
    /// Idle connections above `min_idle` close after this long.
    pub idle_timeout: Duration,
    /// Connections are closed on release after this long (zero: never).
    pub max_lifetime: Duration,
    /// How long a command waits in the backlog.
    pub wait_timeout: Duration,
    /// How many commands may wait.
    pub max_waiting: usize,
}

/// How long a connection may sit idle before it is checked for a message
/// from the server (a close after `wait_timeout`, a restart, a `KILL`)
/// before reuse: a `recv(MSG_PEEK)`, about 0.4 µs here. Under load a
/// connection comes back sooner and is not checked; a connection the
/// server closed that long ago would have failed its next command with
/// ERR 9007 (the statement never reached the server, but Funnel cannot
/// know that afterwards, so it never resends).
const STALE_CHECK_AFTER: Duration = Duration::from_millis(10);

/// The fewest statements a connection keeps however low the server's
/// limit: below this, re-preparing would cost more than it saves.
const MIN_STATEMENTS_PER_CONNECTION: usize = 4;

/// First and longest wait after failed connection attempts.
const OPEN_BACKOFF_MIN: Duration = Duration::from_millis(100);
const OPEN_BACKOFF_MAX: Duration = Duration::from_secs(5);
/// How soon the backlog's opens are tried again after one failed for want
/// of Funnel's own resources (descriptors): as often as the listener tries
/// its accepts then.
const LOCAL_SHORTAGE_RETRY: Duration = Duration::from_millis(50);

/// How long a pool remembers that its server refused a key (a charset or
/// capabilities are the server's until it is upgraded or reconfigured):
/// meanwhile that key's commands fail at once instead of each costing the
/// server a refused login, which it may count against Funnel's host
/// (`max_connect_errors`), blocking every client.
const REFUSED_KEY_MEMORY: Duration = Duration::from_secs(10);

/// A pool key the server refused, and until when that is trusted.
#[derive(Clone)]
struct Refusal {
    key: PoolKey,
    until: Instant,
    server_err: Option<funnel_protocol::response::ErrPacket>,
    reason: String,
}

/// How often idle connections are reaped and topped up.
const MAINTAIN_EVERY: Duration = Duration::from_secs(1);

/// A backlog ticket that gives back a connection handed to it but never
/// taken, because the wait was abandoned (`KILL QUERY`, a cancelled
/// command): dropped with the ticket it would be closed, and the waiters
/// behind would wait for a slot nobody fills.
struct Claim<'a> {
    pool: &'a Rc<Pool>,
    ticket: crate::backlog::Ticket,
}

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        if let Some(Ok(conn)) = self.ticket.try_take() {
            self.pool.release(conn);
        }
    }
}

/// What the health monitor last said about a backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    /// Reachable (or not checked yet).
    Up,
    /// Failed its checks: no new leases; idle connections closed.
    Down,
}

/// Whether a pool takes new commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    /// It serves.
    InService,
    /// Drained by an operator (`backends[].drained`, `DRAIN BACKEND`): no
    /// new leases, but kept (and shown) while its backend is configured.
    Drained,
    /// Its backend left the configuration, was undrained or got a new
    /// address or login: no new leases, and forgotten once empty.
    Retired,
}

/// Where a pool stands in routing.
#[derive(Debug, Clone)]
pub struct Placement {
    /// Its hostgroup.
    pub hostgroup: String,
    /// Relative share of traffic within the hostgroup (>= 1).
    pub weight: u32,
    /// Reads skip it while replication lags more than this.
    pub max_lag: Option<Duration>,
    /// Its place under `backends` (ranks writers of equal weight).
    pub rank: usize,
    /// Its hostgroup's `max_writers`, 0 when unset.
    pub max_writers: u32,
}

/// One backend's connections on one core.
pub struct Pool {
    /// Shard-unique id (connections name their pool by it).
    pub id: u32,
    placement: RefCell<Placement>,
    health: Cell<Health>,
    /// Replication lag from the monitor; `None`: not a replica or unknown.
    lag: Cell<Option<Duration>>,
    /// The server reports `read_only=ON`: no writes.
    read_only: Cell<bool>,
    /// A health check has reached the server: `read_only` and the lag are
    /// its answers, not defaults.
    seen: Cell<bool>,
    /// Prepared statements each connection may keep (see
    /// [`Pool::set_server_statement_limit`]).
    statement_cap: Cell<usize>,
    /// Drained or retired: no new leases, connections closed when released.
    service: Cell<Service>,
    /// When the health monitor last reported on this backend.
    last_check: Cell<Option<Instant>>,
    /// Smooth weighted round-robin state (ties between equally busy pools).
    wrr_current: Cell<i64>,
    /// After failed opens, no new opening before this instant.
    open_not_before: Cell<Option<Instant>>,
    /// When a connection of this pool was last lost or an open failed: the
    /// server may have closed the idle ones too (a restart), so those idle
    /// since then are checked before reuse, however briefly idle.
    suspect_since: Cell<Option<Instant>>,
    open_backoff: Cell<Duration>,
    /// When an open that failed for want of Funnel's own resources was
    /// last logged (at most one line a second).
    shortage_logged: Cell<Option<Instant>>,
    /// Why the last open failed, for commands that waited it out in vain.
    last_open_error: RefCell<Option<String>>,
    /// Why the monitor marked it down though it answered (see
    /// [`Pool::set_down_reason`]).
    down_reason: RefCell<Option<String>>,
    /// Keys the server refused recently (a handful at most).
    refused: RefCell<Vec<Refusal>>,
    /// Connections given back in working order, so far: each one carried a
    /// command the server answered (see [`Pool::answers`]).
    answers: Cell<u64>,
    /// A task waits for the back-off to end to open for the backlog.
    retry_scheduled: Cell<bool>,
    /// Opens started for backlog waiters and not finished.
    opening_for_backlog: Cell<usize>,
    spec: BackendSpec,
    backend: Rc<str>,
    limits: Cell<PoolLimits>,
    /// `limits.connect_timeout` as the deadline of Funnel's own commands,
    /// shared with every connection of the pool (so a reload reaches them).
    own_deadline: Rc<Cell<conn::Deadline>>,
    idle: RefCell<Vec<BackendConn>>,
    /// Connections opened before this are closed when they come back
    /// (an operator's `RECONNECT`), as past `max_lifetime`.
    renewed_at: Cell<Option<Instant>>,
    /// Open plus opening connections (each holds a [`SlotGuard`]).
    slots: Rc<Cell<usize>>,
    opening: Cell<usize>,
    backlog: Backlog,
    next_id: Cell<u64>,
    last_key: Cell<PoolKey>,
    server_version: RefCell<Option<Vec<u8>>>,
    /// The MariaDB extensions its server offered, once a connection opened.
    server_extended: Cell<Option<Capabilities>>,
    /// The status of the newest login (a connection's or a health
    /// check's): a fresh session's flags on this server (its global
    /// `sql_mode`'s NO_BACKSLASH_ESCAPES).
    login_status: Cell<Option<StatusFlags>>,
    /// The GTID position a causal read's wait on this server saw it
    /// reach: reads that want no more need not wait again.
    applied: RefCell<crate::causal::GtidPos>,
    /// The Galera cluster of the node (`wsrep_cluster_state_uuid`), as the
    /// health monitor last read it; `None` for a server without Galera.
    galera_cluster: RefCell<Option<Rc<str>>>,
    /// The cluster's GTID a causal read's wait on this Galera node saw it
    /// reach.
    applied_wsrep: Cell<Option<crate::causal::Gtid>>,
    stats: Rc<Stats>,
}

/// A snapshot of a pool's occupancy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolCounts {
    /// Open and opening connections.
    pub total: usize,
    /// Idle connections.
    pub idle: usize,
    /// Connections being opened.
    pub opening: usize,
    /// Commands waiting in the backlog.
    pub waiting: usize,
}

impl Pool {
    /// An empty pool.
    pub fn new(
        id: u32,
        spec: BackendSpec,
        placement: Placement,
        limits: PoolLimits,
        stats: Rc<Stats>,
    ) -> Rc<Self> {
        Rc::new(Pool {
            id,
            placement: RefCell::new(placement),
            health: Cell::new(Health::Up),
            lag: Cell::new(None),
            read_only: Cell::new(false),
            seen: Cell::new(false),
            statement_cap: Cell::new(crate::prepared::conn_cache::PER_CONNECTION),
            service: Cell::new(Service::InService),
            last_check: Cell::new(None),
            wrr_current: Cell::new(0),
            open_not_before: Cell::new(None),
            suspect_since: Cell::new(None),
            open_backoff: Cell::new(Duration::ZERO),
            shortage_logged: Cell::new(None),
            last_open_error: RefCell::new(None),
            down_reason: RefCell::new(None),
            refused: RefCell::new(Vec::new()),
            answers: Cell::new(0),
            retry_scheduled: Cell::new(false),
            opening_for_backlog: Cell::new(0),
            backend: Rc::from(spec.name.as_str()),
            spec,
            own_deadline: Rc::new(Cell::new(conn::Deadline::connect(limits.connect_timeout))),
            limits: Cell::new(limits),
            idle: RefCell::new(Vec::new()),
            renewed_at: Cell::new(None),
            slots: Rc::new(Cell::new(0)),
            opening: Cell::new(0),
            backlog: Backlog::default(),
            next_id: Cell::new(1),
            last_key: Cell::new(PoolKey::DEFAULT),
            server_version: RefCell::new(None),
            server_extended: Cell::new(None),
            login_status: Cell::new(None),
            applied: RefCell::new(crate::causal::GtidPos::default()),
            galera_cluster: RefCell::new(None),
            applied_wsrep: Cell::new(None),
            stats,
        })
    }

    /// Where and as whom this pool connects.
    pub fn spec(&self) -> &BackendSpec {
        &self.spec
    }

    /// Where it stands in routing.
    pub fn placement(&self) -> std::cell::Ref<'_, Placement> {
        self.placement.borrow()
    }

    /// The pool's connection limit.
    pub fn max(&self) -> usize {
        self.limits.get().max
    }

    /// Current health.
    pub fn health(&self) -> Health {
        self.health.get()
    }

    /// Replication lag last measured.
    pub fn lag(&self) -> Option<Duration> {
        self.lag.get()
    }

    /// True when the health monitor saw this server's replication
    /// configured but not running: it applies nothing more until it runs.
    pub fn replication_stopped(&self) -> bool {
        self.lag() == Some(crate::monitor::BROKEN_REPLICATION_LAG)
    }

    /// When the health monitor last reported on this backend.
    pub fn last_check(&self) -> Option<Instant> {
        self.last_check.get()
    }

    /// Records that a health check reached the server.
    pub fn mark_seen(&self) {
        self.seen.set(true);
    }

    /// True once a health check has reached the server: until then the
    /// router cannot tell a writer from a read-only replica.
    pub fn seen(&self) -> bool {
        self.seen.get()
    }

    /// How many times a connection came back in working order: when it
    /// moved since the last health check, the server is answering this
    /// core's commands, whatever a failed check says.
    pub fn answers(&self) -> u64 {
        self.answers.get()
    }

    /// How long a command may wait for one of this pool's connections.
    pub fn wait_timeout(&self) -> Duration {
        self.limits.get().wait_timeout
    }

    /// True when a causal read's wait saw this server apply `pos`.
    pub fn has_applied(&self, pos: &crate::causal::GtidPos) -> bool {
        self.applied.borrow().covers(pos)
    }

    /// A causal read's wait saw this server apply `pos`.
    pub fn note_applied(&self, pos: &crate::causal::GtidPos) {
        self.applied.borrow_mut().merge(pos);
    }

    /// The Galera cluster of the node, when the health monitor saw one.
    pub fn galera_cluster(&self) -> Option<Rc<str>> {
        self.galera_cluster.borrow().clone()
    }

    /// Notes the node's Galera cluster from a health check. Another
    /// cluster (the node joined another, or it was bootstrapped anew)
    /// numbers its transactions afresh: what a wait saw it apply goes.
    pub fn set_galera_cluster(&self, cluster: Option<&str>) {
        let mut known = self.galera_cluster.borrow_mut();
        if known.as_deref() != cluster {
            *known = cluster.map(Rc::from);
            self.applied_wsrep.set(None);
        }
    }

    /// True when a causal read's wait saw this Galera node apply the
    /// cluster's `gtid`.
    pub fn has_applied_wsrep(&self, gtid: &crate::causal::Gtid) -> bool {
        self.applied_wsrep.get().is_some_and(|a| a.covers(gtid))
    }

    /// A causal read's wait saw this Galera node apply the cluster's `gtid`.
    pub fn note_applied_wsrep(&self, gtid: crate::causal::Gtid) {
        if !self.has_applied_wsrep(&gtid) {
            self.applied_wsrep.set(Some(gtid));
        }
    }

    /// True when the server said `read_only=ON`.
    pub fn is_read_only(&self) -> bool {
        self.read_only.get()
    }

    /// True while it takes no new leases (drained or retired).
    pub fn is_draining(&self) -> bool {
        self.service.get() != Service::InService
    }

    /// Serving, drained by an operator, or retired.
    pub fn service(&self) -> Service {
        self.service.get()
    }

    /// True while failed opens hold new connections back.
    pub fn backing_off(&self) -> bool {
        self.open_not_before.get().is_some_and(|t| Instant::now() < t)
    }

    /// Commands on its connections now plus commands waiting for one.
    pub fn outstanding(&self) -> usize {
        let c = self.counts();
        c.total - c.idle + c.waiting
    }

    /// Makes the pool look as busy as `n` connections leased (router tests).
    #[cfg(test)]
    pub fn fake_outstanding(&self, n: usize) {
        self.slots.set(n);
    }

    /// Smooth weighted round-robin state, for the router.
    pub fn wrr_current(&self) -> &Cell<i64> {
        &self.wrr_current
    }

    /// Sizes each connection's statement cache from the server's
    /// `max_prepared_stmt_count`, which counts every session's statements
    /// together: Funnel's connections to it (`shards` cores of up to
    /// `max_per_core` each) keep at most half of it, leaving the rest to
    /// the server's other clients. A statement beyond the cache is closed
    /// and prepared again when next run: slower, never refused.
    pub fn set_server_statement_limit(&self, limit: u64, shards: usize) {
        let connections = (shards.max(1) * self.limits.get().max.max(1)) as u64;
        let share = (limit / 2 / connections) as usize;
        let cap = share.clamp(
            MIN_STATEMENTS_PER_CONNECTION,
            crate::prepared::conn_cache::PER_CONNECTION,
        );
        if self.statement_cap.replace(cap) > cap {
            // A cache gives up one statement per new one it takes, so one
            // filled under a higher limit would stay over its share for
            // good, and the server refuse other connections' prepares.
            // Closing the connection frees its statements on the server.
            let mut idle = self.idle.borrow_mut();
            let before = idle.len();
            idle.retain(|c| c.stmts.len() <= cap);
            let closed = (before - idle.len()) as u64;
            self.stats
                .backend_discarded
                .set(self.stats.backend_discarded.get() + closed);
        }
    }

    /// How many prepared statements each connection may keep.
    pub fn statement_cap(&self) -> usize {
        self.statement_cap.get()
    }

    /// Notes why the monitor's last verdict is down though the server
    /// answered its check (a Galera node that may not serve), or clears it.
    pub fn set_down_reason(&self, reason: Option<String>) {
        *self.down_reason.borrow_mut() = reason;
    }

    /// Why the monitor marked it down though it answered, if it did.
    pub fn down_reason(&self) -> Option<String> {
        self.down_reason.borrow().clone()
    }

    /// Applies the monitor's verdict. Going down closes idle connections and
    /// tells waiting commands at once instead of letting them time out.
    pub fn set_health(&self, health: Health, read_only: bool, lag: Option<Duration>) {
        self.last_check.set(Some(Instant::now()));
        self.read_only.set(read_only);
        self.lag.set(lag);
        if self.health.replace(health) != health && health == Health::Down {
            tracing::warn!(backend = %self.spec.name, "backend marked down");
            self.idle.borrow_mut().clear();
            self.fail_waiters("marked down by the health monitor");
        } else if health == Health::Up {
            self.open_not_before.set(None);
        }
    }

    /// Takes this pool out of service for an operator: no new leases;
    /// connections close as they come back; waiting commands are told at
    /// once (and go to another backend of the hostgroup). A retired pool
    /// stays retired.
    pub fn drain(&self) {
        if self.service.get() == Service::InService {
            self.service.set(Service::Drained);
            self.close_for_good("drained by an operator");
        }
    }

    /// Replaces every connection with a new one, as PgBouncer's
    /// `RECONNECT`: idle ones close now, those in use when their clients
    /// give them back (a transaction, a pin, a command finish first), as
    /// do those still logging in, and new ones open as needed, so they
    /// start from the server's present settings (its globals after a
    /// `SET GLOBAL`). The address stays the pool's: a name is resolved
    /// again only by a reload. Returns how many closed at once.
    pub fn renew(&self) -> usize {
        self.renewed_at.set(Some(Instant::now()));
        let closed = std::mem::take(&mut *self.idle.borrow_mut()).len();
        self.stats
            .backend_discarded
            .set(self.stats.backend_discarded.get() + closed as u64);
        closed
    }

    /// Retires this pool (its backend was removed, undrained or got a new
    /// address or login): as [`Pool::drain`], and its set forgets it once
    /// its last connection has closed.
    pub fn retire(&self) {
        if self.service.replace(Service::Retired) == Service::InService {
            self.close_for_good("being removed");
        }
    }

    fn close_for_good(&self, why: &str) {
        self.idle.borrow_mut().clear();
        self.fail_waiters(why);
    }

    /// Updates routing placement and limits after a reload.
    pub fn reconfigure(self: &Rc<Self>, placement: Placement, mut limits: PoolLimits) {
        *self.placement.borrow_mut() = placement;
        limits.min_idle = limits.min_idle.min(limits.max);
        self.limits.set(limits);
        self.own_deadline
            .set(conn::Deadline::connect(limits.connect_timeout));
        // A smaller pool: the idle connections above the new size close now,
        // the busy ones as they come back (`release`).
        while self.slots.get() > limits.max {
            let Some(conn) = self.take_oldest_idle() else {
                break;
            };
            Stats::bump(&self.stats.backend_discarded);
            drop(conn);
        }
        // A larger pool serves the commands already waiting first, in
        // their order, not only the ones that arrive from now on.
        self.open_for_waiters();
    }

    fn fail_waiters(&self, why: &str) {
        while let Some(k) = self.backlog.first_key() {
            self.backlog.fail_first(
                k,
                EngineError::BackendUnavailable {
                    backend: self.spec.name.clone(),
                    reason: why.to_string(),
                },
            );
        }
    }

    /// The backend's name.
    pub fn backend_name(&self) -> &str {
        &self.spec.name
    }

    /// The server version string, once a connection was opened.
    pub fn server_version(&self) -> Option<Vec<u8>> {
        self.server_version.borrow().clone()
    }

    /// The MariaDB extended capabilities its server offered at the last
    /// open or health check (`None` before any).
    pub fn server_extended(&self) -> Option<Capabilities> {
        self.server_extended.get()
    }

    /// Records what the server's greeting offered at a health check.
    pub fn note_server_extended(&self, ext: Capabilities) {
        self.server_extended.set(Some(ext));
    }

    /// A fresh session's status flags on this server, once a connection
    /// was opened or a health check logged in (the newest login's: an
    /// operator may change the global `sql_mode`).
    pub fn login_status(&self) -> Option<StatusFlags> {
        self.login_status.get()
    }

    /// Records the status flags of a login to this server that was not
    /// one of the pool's own (a health check's): a core whose pool has not
    /// opened a connection yet still knows what a fresh session has.
    pub fn note_login_status(&self, status: StatusFlags) {
        self.login_status.set(Some(status));
    }

    /// Current occupancy.
    pub fn counts(&self) -> PoolCounts {
        PoolCounts {
            total: self.slots.get(),
            idle: self.idle.borrow().len(),
            opening: self.opening.get(),
            waiting: self.backlog.len(),
        }
    }

    /// Hands out a connection for `key`: reused, newly opened, or after a
    /// wait in the backlog. Returns whether it was reused.
    pub async fn checkout(self: &Rc<Self>, key: PoolKey) -> Result<(BackendConn, bool), EngineError> {
        self.last_key.set(key);
        if let Some(conn) = self.take_idle(key) {
            return Ok((conn, true));
        }
        if let Some(refused) = self.refusal(key) {
            return Err(refused);
        }
        if self.backing_off() {
            // Recent opens failed: wait in the backlog; one retry opens when
            // the back-off ends (no thundering herd, and no error for a
            // command that a connection a moment later would have served).
            self.schedule_retry();
        } else if self.slots.get() < self.limits.get().max {
            return self.opened(self.open_boxed(key).await);
        } else if let Some(conn) = self.take_idle_where(|k| k.switches_to(key)) {
            // Full, but an idle connection differs only in what can change
            // after a login: at most one `SET NAMES` instead of a close and
            // a login.
            if let Some(conn) = Box::pin(self.switch_key(conn, key)).await {
                return self.usable_after(conn, "switched to a client's settings", true);
            }
            return self.opened(self.open_boxed(key).await);
        } else if let Some(victim) = self.take_oldest_idle() {
            // Full, but an idle connection of another key exists: replace it.
            drop(victim);
            return self.opened(self.open_boxed(key).await);
        }
        if self.backlog.len() >= self.limits.get().max_waiting {
            self.stats.backlog_full.set(self.stats.backlog_full.get() + 1);
            return Err(EngineError::BacklogFull {
                max_waiting: self.limits.get().max_waiting,
            });
        }
        self.stats.backlog_waits.set(self.stats.backlog_waits.get() + 1);
        let started = Instant::now();
        let mut claim = Claim {
            pool: self,
            ticket: self.backlog.enqueue(key),
        };
        let handoff = match rt::timeout(self.limits.get().wait_timeout, &mut claim.ticket).await {
            Some(h) => h,
            // A connection may have been handed over just as the deadline hit.
            None => claim.ticket.try_take().unwrap_or_else(|| {
                self.stats
                    .backlog_timeouts
                    .set(self.stats.backlog_timeouts.get() + 1);
                if let Some(reason) = self.open_failing() {
                    // It waited for opens that kept failing: say why.
                    return Err(EngineError::BackendUnavailable {
                        backend: self.spec.name.clone(),
                        reason,
                    });
                }
                Err(EngineError::BacklogTimeout {
                    waited: started.elapsed(),
                    max: self.limits.get().max,
                    waiting: self.backlog.len().saturating_sub(1),
                })
            }),
        };
        self.stats
            .backlog_wait_us
            .borrow_mut()
            .record(started.elapsed().as_micros() as u64);
        handoff.map(|c| (c, true))
    }

    /// A connection this checkout opened, unless the backend was drained
    /// (or removed) while it opened: then nothing was sent on it, and the
    /// command goes to another backend instead.
    fn opened(&self, result: Result<BackendConn, EngineError>) -> Result<(BackendConn, bool), EngineError> {
        self.usable_after(result?, "opened", false)
    }

    /// `conn` for the checkout that waited while it was `what` (opened,
    /// switched), unless the backend was drained (or removed) meanwhile:
    /// then the client's command was not sent on it, and goes to another
    /// backend instead. `reused` as [`Pool::checkout`] returns it.
    fn usable_after(
        &self,
        conn: BackendConn,
        what: &str,
        reused: bool,
    ) -> Result<(BackendConn, bool), EngineError> {
        if self.is_draining() {
            drop(conn);
            return Err(EngineError::BackendUnavailable {
                backend: self.spec.name.clone(),
                reason: format!("drained while a connection to it was {what}"),
            });
        }
        Ok((conn, reused))
    }

    /// Returns a connection after a client's command: to the first waiter,
    /// to the idle list, or closed when it cannot be reused.
    pub fn release(self: &Rc<Self>, mut conn: BackendConn) {
        // The client's cap slot ends here, whoever gets the connection next.
        conn.cap_slot = None;
        if self.is_draining() || self.health.get() == Health::Down {
            drop(conn);
            return;
        }
        let expired = (!self.limits.get().max_lifetime.is_zero()
            && conn.opened_at.elapsed() >= self.limits.get().max_lifetime)
            || self.renewed_at.get().is_some_and(|at| conn.opened_at <= at);
        if !conn.is_reusable() || expired {
            self.discard(conn);
            return;
        }
        if conn.needs_reset || conn.untracked_state {
            // It holds state another client must not see (see
            // `BackendConnection::needs_reset`): reset it first, off every
            // client's path. Until then it is in use; one that fails to
            // reset, or keeps what a reset does not undo, is closed.
            let pool = self.clone();
            rt::spawn(async move {
                match conn.reset_session().await {
                    Ok(true) => {
                        Stats::bump(&pool.stats.backend_resets);
                        pool.release(conn)
                    }
                    Ok(false) => pool.discard(conn),
                    Err(_) => pool.discard_lost(conn),
                }
            });
            return;
        }
        if conn.stmts.len() > self.statement_cap.get() {
            self.discard(conn);
            return;
        }
        if self.slots.get() > self.limits.get().max {
            // `max_per_core` was lowered: close down to the new size.
            self.discard(conn);
            return;
        }
        self.answers.set(self.answers.get().wrapping_add(1));
        conn.buf.shrink_if_idle();
        conn.idle_since = Instant::now();
        self.hand_on(conn);
    }

    /// Gives a connection fit for reuse to the first waiter of its key, or
    /// switches or trades it for the oldest waiter of another key, or
    /// keeps it idle.
    fn hand_on(self: &Rc<Self>, conn: BackendConn) {
        match self.backlog.hand_over(conn) {
            Ok(()) => {}
            Err(conn) => match self.backlog.first_key() {
                // Someone waits, for a key this one can take: switch to it.
                Some(k) if conn.key.switches_to(k) => self.spawn_switch_for_backlog(conn, k),
                // Someone waits, but for another key: trade this one in.
                Some(k) => {
                    drop(conn);
                    self.spawn_open_for_backlog(k);
                }
                None => self.idle.borrow_mut().push(conn),
            },
        }
    }

    /// Closes a connection that cannot be reused and, when commands are
    /// waiting, opens a replacement for them.
    pub fn discard(self: &Rc<Self>, conn: BackendConn) {
        self.stats
            .backend_discarded
            .set(self.stats.backend_discarded.get() + 1);
        drop(conn);
        if let Some(k) = self.backlog.first_key() {
            self.spawn_open_for_backlog(k);
        }
    }

    /// Closes a connection that failed (the server closed it, or stopped
    /// answering): the idle ones may be gone too, so each is checked
    /// before its next use (one non-blocking peek).
    pub fn discard_lost(self: &Rc<Self>, conn: BackendConn) {
        self.suspect_since.set(Some(Instant::now()));
        self.discard(conn);
    }

    /// The key to open idle connections for until a client's command
    /// shows the one its clients use.
    pub fn expect_key(&self, key: PoolKey) {
        self.last_key.set(key);
    }

    /// Opens `min_idle` connections in the background, for the key clients
    /// last used (or are expected to use).
    pub fn prewarm(self: &Rc<Self>) {
        for _ in self.slots.get()..self.limits.get().min_idle.min(self.limits.get().max) {
            let pool = self.clone();
            let slot = SlotGuard::take(&self.slots);
            rt::spawn(async move {
                if let Ok(c) = pool.open_with_slot(pool.last_key.get(), slot).await {
                    pool.release(c);
                }
            });
        }
    }

    /// Reaps idle connections (stale, past `idle_timeout` above `min_idle`,
    /// past `max_lifetime`) and tops the pool up to `min_idle`, until `stop`
    /// says so.
    pub async fn maintain(self: Rc<Self>, stop: impl Fn() -> bool) {
        while !stop() {
            rt::sleep(MAINTAIN_EVERY).await;
            self.reap_idle();
            let usable = !self.is_draining() && self.health.get() == Health::Up && !self.backing_off();
            if usable && self.slots.get() < self.limits.get().min_idle {
                self.prewarm_key(self.last_key.get());
            }
        }
    }

    fn reap_idle(&self) {
        let mut idle = self.idle.borrow_mut();
        let min = self.limits.get().min_idle;
        let lifetime = self.limits.get().max_lifetime;
        let idle_timeout = self.limits.get().idle_timeout;
        let mut keep = Vec::with_capacity(idle.len());
        // Oldest first, so the ones beyond min_idle that go are the coldest.
        let mut all: Vec<BackendConn> = idle.drain(..).collect();
        all.sort_by_key(|c| std::cmp::Reverse(c.idle_since));
        let total_idle = all.len();
        for (i, c) in all.into_iter().enumerate() {
            let stale = c.server_spoke_while_idle();
            let old = !lifetime.is_zero() && c.opened_at.elapsed() >= lifetime;
            // `idle_timeout` 0 means never, as `max_lifetime` 0 does.
            let surplus = !idle_timeout.is_zero()
                && i >= min
                && total_idle > min
                && c.idle_since.elapsed() >= idle_timeout;
            if stale || old || surplus {
                self.stats
                    .backend_discarded
                    .set(self.stats.backend_discarded.get() + 1);
                drop(c);
            } else {
                keep.push(c);
            }
        }
        keep.reverse();
        *idle = keep;
    }

    fn prewarm_key(self: &Rc<Self>, key: PoolKey) {
        let pool = self.clone();
        let slot = SlotGuard::take(&self.slots);
        rt::spawn(async move {
            if let Ok(c) = pool.open_with_slot(key, slot).await {
                pool.release(c);
            }
        });
    }

    /// True when an idle connection of `key` is there to take.
    pub fn has_idle(&self, key: PoolKey) -> bool {
        self.idle.borrow().iter().any(|c| c.key == key)
    }

    fn take_idle(&self, key: PoolKey) -> Option<BackendConn> {
        self.take_idle_where(|k| k == key)
    }

    /// The most recently released idle connection whose key passes
    /// `wanted`, checked first when it may have been closed meanwhile.
    fn take_idle_where(&self, wanted: impl Fn(PoolKey) -> bool) -> Option<BackendConn> {
        loop {
            let conn = {
                let mut idle = self.idle.borrow_mut();
                let i = idle.iter().rposition(|c| wanted(c.key))?;
                idle.remove(i)
            };
            let check = conn.idle_since.elapsed() >= STALE_CHECK_AFTER
                || self.suspect_since.get().is_some_and(|t| t >= conn.idle_since);
            if check && conn.server_spoke_while_idle() {
                // Closed by the server (wait_timeout, restart, KILL): replace it.
                self.stats
                    .backend_discarded
                    .set(self.stats.backend_discarded.get() + 1);
                continue;
            }
            return Some(conn);
        }
    }

    fn take_oldest_idle(&self) -> Option<BackendConn> {
        let mut idle = self.idle.borrow_mut();
        let i = idle
            .iter()
            .enumerate()
            .min_by_key(|(_, c)| c.idle_since)
            .map(|(i, _)| i)?;
        Some(idle.remove(i))
    }

    /// [`Pool::open`] on the heap. Opening (connect, TLS, login) is an ~11 KiB
    /// future and rare once the pool is warm; inline, it made every command's
    /// future that size, and boxing that future copied all of it per command.
    async fn open_boxed(self: &Rc<Self>, key: PoolKey) -> Result<BackendConn, EngineError> {
        Box::pin(self.open(key)).await
    }

    async fn open(self: &Rc<Self>, key: PoolKey) -> Result<BackendConn, EngineError> {
        let slot = SlotGuard::take(&self.slots);
        self.open_with_slot(key, slot).await
    }

    async fn open_with_slot(
        self: &Rc<Self>,
        key: PoolKey,
        slot: SlotGuard,
    ) -> Result<BackendConn, EngineError> {
        if let Some(t) = self.open_not_before.get().filter(|t| Instant::now() < *t) {
            // Recent opens failed: fail fast instead of a thundering herd.
            return Err(EngineError::BackendUnavailable {
                backend: self.spec.name.clone(),
                reason: format!(
                    "connections failed recently; next attempt in {} ms",
                    t.saturating_duration_since(Instant::now()).as_millis()
                ),
            });
        }
        let id = BackendId(self.next_id.get());
        self.next_id.set(id.0 + 1);
        self.opening.set(self.opening.get() + 1);
        let started = Instant::now();
        let result =
            match conn::BackendConnection::open(&self.spec, id, key, slot, self.limits.get().connect_timeout)
                .await
            {
                Ok((mut conn, version)) => conn.enable_state_tracking().await.map(|()| (conn, version)),
                Err(e) => Err(e),
            };
        self.opening.set(self.opening.get() - 1);
        match result {
            Ok((mut conn, version)) => {
                self.login_status.set(Some(conn.status));
                conn.pool_id = self.id;
                conn.backend = self.backend.clone();
                conn.own_deadline = self.own_deadline.clone();
                self.open_backoff.set(Duration::ZERO);
                self.open_not_before.set(None);
                *self.last_open_error.borrow_mut() = None;
                self.stats.backend_opened.set(self.stats.backend_opened.get() + 1);
                self.stats
                    .connect_us
                    .borrow_mut()
                    .record(started.elapsed().as_micros() as u64);
                if self.server_version.borrow().is_none() {
                    *self.server_version.borrow_mut() = Some(version);
                }
                self.server_extended.set(Some(conn.server_extended));
                Ok(conn)
            }
            Err(e) if e.key_specific() => Err(self.refuse_key(key, e)),
            Err(e) if e.local_shortage() => {
                // Funnel's own shortage (descriptors, most often): the
                // backend is not to blame, so no back-off and no open
                // failure against it. Opens go on as soon as a descriptor
                // frees up; the backlog's retry waits LOCAL_SHORTAGE_RETRY.
                let now = Instant::now();
                if self
                    .shortage_logged
                    .get()
                    .is_none_or(|t| now.duration_since(t) >= Duration::from_secs(1))
                {
                    self.shortage_logged.set(Some(now));
                    tracing::warn!(backend = %self.spec.name, error = %e, "out of resources opening a backend connection");
                }
                *self.last_open_error.borrow_mut() = Some(format!("Funnel is out of resources: {e}"));
                Err(EngineError::OutOfResources {
                    reason: e.to_string(),
                })
            }
            Err(e) => {
                self.stats.count_open_failure(&self.backend);
                self.suspect_since.set(Some(Instant::now()));
                // Back off exponentially (100 ms .. 5 s, with jitter) so a
                // restarting backend does not meet every core at once.
                let next = (self.open_backoff.get() * 2).clamp(OPEN_BACKOFF_MIN, OPEN_BACKOFF_MAX);
                self.open_backoff.set(next);
                let jitter = Duration::from_millis(rand::random::<u64>() % (next.as_millis() as u64 / 4 + 1));
                self.open_not_before.set(Some(Instant::now() + next + jitter));
                tracing::warn!(backend = %self.spec.name, error = %e, "cannot open backend connection");
                *self.last_open_error.borrow_mut() = Some(e.to_string());
                Err(EngineError::BackendUnavailable {
                    backend: self.spec.name.clone(),
                    reason: e.to_string(),
                })
            }
        }
    }

    /// Remembers that the server refused `key` and tells the commands
    /// waiting for it; the pool and its other keys carry on untouched.
    fn refuse_key(&self, key: PoolKey, e: conn::BackendError) -> EngineError {
        tracing::info!(backend = %self.spec.name, error = %e, ?key, "backend refuses a client's connection settings");
        let server_err = match &e {
            conn::BackendError::Refused(err) => Some(err.clone()),
            _ => None,
        };
        let refusal = Refusal {
            key,
            until: Instant::now() + REFUSED_KEY_MEMORY,
            server_err,
            reason: e.to_string(),
        };
        self.backlog.fail_key(key, || self.refusal_error(&refusal));
        let err = self.refusal_error(&refusal);
        let mut refused = self.refused.borrow_mut();
        refused.retain(|r| r.key != key && Instant::now() < r.until);
        refused.push(refusal);
        err
    }

    /// The error for a command of `key` while the server's refusal of it
    /// is remembered.
    fn refusal(&self, key: PoolKey) -> Option<EngineError> {
        self.live_refusal(key).map(|r| self.refusal_error(&r))
    }

    /// The server's refusal of `key`, while it is remembered.
    fn live_refusal(&self, key: PoolKey) -> Option<Refusal> {
        let now = Instant::now();
        self.refused
            .borrow()
            .iter()
            .find(|r| r.key == key && now < r.until)
            .cloned()
    }

    fn refusal_error(&self, r: &Refusal) -> EngineError {
        EngineError::KeyRefused {
            backend: self.spec.name.clone(),
            server_err: r.server_err.clone(),
            reason: r.reason.clone(),
        }
    }

    /// [`BackendConnection::switch_key`] to `key`. `None` when the server
    /// refused or the connection failed: it is closed then.
    async fn switch_key(self: &Rc<Self>, mut conn: BackendConn, key: PoolKey) -> Option<BackendConn> {
        match conn.switch_key(key).await {
            Ok(true) => {
                Stats::bump(&self.stats.connections_switched);
                Some(conn)
            }
            Ok(false) => {
                Stats::bump(&self.stats.backend_discarded);
                None
            }
            Err(_) => {
                self.suspect_since.set(Some(Instant::now()));
                Stats::bump(&self.stats.backend_discarded);
                None
            }
        }
    }

    /// Switches a released connection to `key`, whose oldest waiter is
    /// next, and hands it over; when that fails, opens one for whoever
    /// waits then (as after a discard). Only a charset costs a round trip.
    fn spawn_switch_for_backlog(self: &Rc<Self>, mut conn: BackendConn, key: PoolKey) {
        if conn.key.charset == key.charset {
            // Nothing to send: it is as fit as release found it.
            Stats::bump(&self.stats.connections_switched);
            conn.key = key;
            self.hand_on(conn);
            return;
        }
        let pool = self.clone();
        self.opening_for_backlog.set(self.opening_for_backlog.get() + 1);
        rt::spawn(async move {
            let switched = pool.switch_key(conn, key).await;
            pool.opening_for_backlog.set(pool.opening_for_backlog.get() - 1);
            match switched {
                Some(conn) => pool.release(conn),
                // Closed: a new connection for whoever waits now (the
                // waiter may have left meanwhile), as after any discard,
                // unless the backend is being drained or is down.
                None if pool.is_draining() || pool.health.get() == Health::Down => {}
                None => {
                    if let Some(k) = pool.backlog.first_key() {
                        pool.spawn_open_for_backlog(k);
                    }
                }
            }
        });
    }

    fn spawn_open_for_backlog(self: &Rc<Self>, key: PoolKey) {
        if self.slots.get() >= self.limits.get().max {
            return;
        }
        if let Some(refusal) = self.live_refusal(key) {
            // One record for every waiter: the memory could end between
            // two looks.
            self.backlog.fail_key(key, || self.refusal_error(&refusal));
            return;
        }
        let pool = self.clone();
        let slot = SlotGuard::take(&self.slots);
        self.opening_for_backlog.set(self.opening_for_backlog.get() + 1);
        rt::spawn(async move {
            let result = pool.open_with_slot(key, slot).await;
            pool.opening_for_backlog.set(pool.opening_for_backlog.get() - 1);
            match result {
                Ok(c) => {
                    pool.release(c);
                    pool.open_for_waiters();
                }
                // The key's waiters were told; the others' turn.
                Err(EngineError::KeyRefused { .. }) => pool.open_for_waiters(),
                // Waiters wait out the back-off (or their deadline) instead
                // of failing on the first refused open.
                Err(_) => pool.schedule_retry(),
            }
        });
    }

    /// Opens connections for the commands still waiting, one each, while
    /// the pool has room (after a back-off, the pool may be empty with the
    /// whole backlog waiting).
    fn open_for_waiters(self: &Rc<Self>) {
        while !self.backing_off()
            && self.backlog.len() > self.opening_for_backlog.get()
            && self.slots.get() < self.limits.get().max
        {
            let Some(key) = self.backlog.first_key() else {
                break;
            };
            self.spawn_open_for_backlog(key);
        }
    }

    /// Once the current back-off ends, opens for the commands waiting then.
    fn schedule_retry(self: &Rc<Self>) {
        if self.retry_scheduled.replace(true) {
            return;
        }
        let pool = self.clone();
        rt::spawn(async move {
            // Without a back-off, the open failed for want of Funnel's own
            // resources: retry shortly, not in a loop.
            let at = pool
                .open_not_before
                .get()
                .unwrap_or_else(|| Instant::now() + LOCAL_SHORTAGE_RETRY);
            rt::sleep(at.saturating_duration_since(Instant::now())).await;
            pool.retry_scheduled.set(false);
            if pool.is_draining() || pool.health.get() == Health::Down {
                return;
            }
            // One open first: if it works, the rest follow.
            if pool.opening_for_backlog.get() == 0 {
                if let Some(key) = pool.backlog.first_key() {
                    pool.spawn_open_for_backlog(key);
                }
            }
        });
    }

    /// The error of the last open that failed, until one succeeds.
    pub fn last_open_error(&self) -> Option<String> {
        self.last_open_error.borrow().clone()
    }

    /// Why opens fail, while they do.
    fn open_failing(&self) -> Option<String> {
        let reason = self.last_open_error.borrow().clone()?;
        Some(format!("{reason} (retried for backlog.wait_timeout)"))
    }
}
