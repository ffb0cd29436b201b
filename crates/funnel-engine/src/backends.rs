//! One core's set of backend pools, one per configured backend: routing a
//! checkout to a pool of the right hostgroup, returning connections to the
//! pool they came from, and applying a (re)loaded configuration by adding
//! new backends, reconfiguring kept ones, draining the ones an operator
//! drained and retiring removed ones.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Instant;

use funnel_config::Config;
use funnel_protocol::{Capabilities, StatusFlags};

use crate::error::EngineError;
use crate::oneshot;
use crate::pool::conn::{BackendConn, BackendSpec};
use crate::pool::key::PoolKey;
use crate::pool::{Health, Placement, Pool, PoolLimits, Service};
use crate::router::{self, Access};
use crate::rt;
use crate::stats::Stats;

/// The pools of one core.
pub struct BackendSet {
    pools: RefCell<Vec<Rc<Pool>>>,
    next_id: Cell<u32>,
    stats: Rc<Stats>,
    /// Commands waiting for a health verdict (see [`BackendSet::checkout`]).
    verdict_waiters: RefCell<Vec<oneshot::Sender<()>>>,
    /// The monitor, waiting out its interval: a pool added in service wakes
    /// it, so a new backend's first check does not wait a whole interval.
    monitor_nudge: RefCell<Option<oneshot::Sender<()>>>,
    /// See [`BackendSet::expect_key`].
    expected_key: Cell<PoolKey>,
}

impl BackendSet {
    /// An empty set.
    pub fn new(stats: Rc<Stats>) -> Self {
        BackendSet {
            pools: RefCell::new(Vec::new()),
            next_id: Cell::new(1),
            stats,
            verdict_waiters: RefCell::new(Vec::new()),
            monitor_nudge: RefCell::new(None),
            expected_key: Cell::new(PoolKey::DEFAULT),
        }
    }

    /// The key a new pool opens its idle connections for (see
    /// [`PoolKey::common`]).
    pub fn expect_key(&self, key: PoolKey) {
        self.expected_key.set(key);
    }

    /// Wakes the commands waiting for a health verdict: the monitor just
    /// reported on a backend.
    pub fn verdict_arrived(&self) {
        for waiter in self.verdict_waiters.borrow_mut().drain(..) {
            let _ = waiter.send(());
        }
    }

    /// Resolves when a backend is added (or undrained) in service: the
    /// monitor checks it then rather than after its interval.
    pub fn backend_added(&self) -> oneshot::Receiver<()> {
        let (tx, rx) = oneshot::channel();
        *self.monitor_nudge.borrow_mut() = Some(tx);
        rx
    }

    /// Every pool, drained and retired ones included.
    pub fn all(&self) -> Vec<Rc<Pool>> {
        self.pools.borrow().clone()
    }

    /// The pool with this id.
    pub fn by_id(&self, id: u32) -> Option<Rc<Pool>> {
        self.pools.borrow().iter().find(|p| p.id == id).cloned()
    }

    /// Renews the in-service pools of the backend named `backend` (`None`:
    /// of every backend), see [`Pool::renew`]; how many connections closed
    /// at once.
    pub fn renew(&self, backend: Option<&str>) -> usize {
        self.pools
            .borrow()
            .iter()
            .filter(|p| p.service() == Service::InService)
            .filter(|p| backend.is_none_or(|name| p.backend_name() == name))
            .map(|p| p.renew())
            .sum()
    }

    /// The current (not retired) pool of the backend with this name,
    /// serving or drained.
    pub fn by_name(&self, name: &str) -> Option<Rc<Pool>> {
        self.pools
            .borrow()
            .iter()
            .find(|p| p.backend_name() == name && p.service() != Service::Retired)
            .cloned()
    }

    /// Leases a connection from the best backend of `hostgroup`. When a
    /// backend cannot supply one (its connects fail, it went down or is
    /// being removed while the command waited) the next best is tried:
    /// nothing was sent yet, so this never runs a statement twice. With
    /// `skip_failing` (the command has somewhere else to go), a backend
    /// whose connects are failing right now is passed over at once rather
    /// than waited for. The pools in `skip` are never picked.
    pub async fn checkout(
        &self,
        hostgroup: &str,
        key: PoolKey,
        access: Access,
        skip_failing: bool,
        skip: &[u32],
    ) -> Result<(BackendConn, bool), EngineError> {
        let mut tried: Vec<u32> = skip.to_vec();
        let mut last_err = None;
        let mut verdict_deadline = None;
        loop {
            let picked = router::pick(&self.pools.borrow(), hostgroup, access, &tried);
            let Some(pool) = picked else {
                // Also after a checked backend failed to give a connection:
                // nothing was sent, and an unchecked writer may take it.
                if self
                    .wait_for_verdict(hostgroup, access, &mut verdict_deadline)
                    .await
                {
                    continue;
                }
                return Err(last_err.unwrap_or_else(|| EngineError::NoBackend {
                    hostgroup: hostgroup.to_string(),
                    all_drained: self.all_drained(hostgroup),
                    why: self.why_none(hostgroup, access),
                }));
            };
            // One that still has an idle connection serves: a failed open
            // says little about the connections already open.
            if skip_failing && pool.backing_off() && !pool.has_idle(key) {
                tried.push(pool.id);
                last_err = Some(EngineError::BackendUnavailable {
                    backend: pool.backend_name().to_string(),
                    reason: "its connections are failing (backing off)".into(),
                });
                continue;
            }
            match pool.checkout(key).await {
                Ok(c) => return Ok(c),
                // A refused key may suit a newer server of the hostgroup.
                // Drained, removed or marked down while the command waited:
                // the router would not pick it now, so when nothing else
                // serves, the command is told what a command arriving now
                // is told (ERR 9004, naming a drain), not that a connection
                // to it could not be opened (9003).
                Err(EngineError::BackendUnavailable { .. })
                    if pool.is_draining() || pool.health() == Health::Down =>
                {
                    tried.push(pool.id);
                }
                Err(e @ (EngineError::BackendUnavailable { .. } | EngineError::KeyRefused { .. })) => {
                    tried.push(pool.id);
                    last_err = Some(e);
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Waits for the monitor's next verdict when one could give this
    /// command a backend (see [`router::awaiting_first_check`]), for at
    /// most the backlog's wait from the first call. False when there is
    /// nothing to wait for, or the wait is over.
    async fn wait_for_verdict(
        &self,
        hostgroup: &str,
        access: Access,
        deadline: &mut Option<Instant>,
    ) -> bool {
        let wait = {
            let pools = self.pools.borrow();
            if !router::awaiting_first_check(&pools, hostgroup, access) {
                return false;
            }
            pools
                .iter()
                .filter(|p| p.placement().hostgroup == hostgroup)
                .map(|p| p.wait_timeout())
                .max()
                .unwrap_or_default()
        };
        let deadline = *deadline.get_or_insert_with(|| Instant::now() + wait);
        let Some(left) = deadline.checked_duration_since(Instant::now()) else {
            return false;
        };
        let (tx, rx) = oneshot::channel();
        {
            let mut waiters = self.verdict_waiters.borrow_mut();
            // Those that gave up stay until a verdict comes; while none
            // comes (checks that cannot run), drop them here rather than
            // let them pile up.
            waiters.retain(|w| !w.is_closed());
            waiters.push(tx);
        }
        rt::timeout(left, rx).await.is_some()
    }

    /// Why no backend of `hostgroup` took a command of `access`, one
    /// clause per backend, in the router's order of reasons: what the
    /// client's ERR 9004 says, so that it names what to fix.
    fn why_none(&self, hostgroup: &str, access: Access) -> String {
        let pools = self.pools.borrow();
        let members: Vec<&Rc<Pool>> = pools
            .iter()
            .filter(|p| p.service() != Service::Retired && p.placement().hostgroup == hostgroup)
            .collect();
        if members.is_empty() {
            return "it has no backends".into();
        }
        let write = access != Access::Read;
        let clauses: Vec<String> = members
            .iter()
            .map(|p| {
                let name = p.backend_name();
                let lag = match (p.placement().max_lag, p.lag()) {
                    (Some(max), Some(lag)) if lag > max => Some((lag, max)),
                    _ => None,
                };
                if p.service() == Service::Drained {
                    format!("{name} is drained")
                } else if p.health() == Health::Down {
                    match (p.down_reason(), p.last_open_error()) {
                        (Some(why), _) => format!("{name} is down ({why})"),
                        (None, Some(e)) => format!("{name} is down (its last connect: {e})"),
                        (None, None) => format!("{name} is down (failed its health checks)"),
                    }
                } else if write && p.is_read_only() {
                    format!("{name} is read-only")
                } else if !write && lag.is_some() {
                    let (lag, max) = lag.expect("checked");
                    format!(
                        "{name} lags {} s behind, over its max_replication_lag of {} s",
                        lag.as_secs(),
                        max.as_secs()
                    )
                } else if write && !p.seen() {
                    format!("{name} is not yet checked by the health monitor (a writer is not known)")
                } else if write && !router::among_writers(&pools, p) {
                    format!("{name} is not among the hostgroup's max_writers (it takes writes when one before it goes)")
                } else {
                    format!("{name} could not give a connection")
                }
            })
            .collect();
        clauses.join("; ")
    }

    /// The MariaDB extensions every backend met so far offers (each
    /// pool's server, from its last connection or health check; a pool
    /// retired by a reload no longer counts). `None` before any was met.
    pub fn server_extended(&self) -> Option<Capabilities> {
        self.pools
            .borrow()
            .iter()
            .filter(|p| p.service() != Service::Retired)
            .filter_map(|p| p.server_extended())
            .reduce(Capabilities::intersect)
    }

    /// True when `hostgroup` has backends and an operator drained every
    /// one: the error then says so, rather than list what else it may be.
    fn all_drained(&self, hostgroup: &str) -> bool {
        let pools = self.pools.borrow();
        let mut members = pools
            .iter()
            .filter(|p| p.service() != Service::Retired && p.placement().hostgroup == hostgroup)
            .peekable();
        members.peek().is_some() && members.all(|p| p.service() == Service::Drained)
    }

    /// A fresh session's status flags in `hostgroup`, from the login of a
    /// connection to one of its backends (`None` before any opened). The
    /// replication farm shares one `sql_mode`, so any member answers.
    pub fn login_status(&self, hostgroup: &str) -> Option<StatusFlags> {
        self.pools
            .borrow()
            .iter()
            .filter(|p| p.service() != Service::Retired && p.placement().hostgroup == hostgroup)
            .find_map(|p| p.login_status())
    }

    /// True when a write would not go to `pool`'s server now (see
    /// [`router::refuses_writes`]). A connection held there (lingering for
    /// warnings, pinned by state a read left) must not take the session's
    /// writes.
    pub fn refuses_writes(&self, pool: &Pool) -> bool {
        router::refuses_writes(&self.pools.borrow(), pool)
    }

    /// The backend a command in `hostgroup` would use now.
    pub fn pick(&self, hostgroup: &str, access: Access) -> Option<Rc<Pool>> {
        router::pick(&self.pools.borrow(), hostgroup, access, &[])
    }

    /// Returns a connection to its pool (or closes it if the pool is gone).
    pub fn release(&self, conn: BackendConn) {
        match self.by_id(conn.pool_id) {
            Some(p) => p.release(conn),
            None => drop(conn),
        }
    }

    /// True when commands wait in the backlog of `conn`'s pool.
    pub fn others_wait_for(&self, conn: &BackendConn) -> bool {
        self.by_id(conn.pool_id).is_some_and(|p| p.counts().waiting > 0)
    }

    /// Closes a connection that cannot be reused.
    pub fn discard(&self, conn: BackendConn) {
        match self.by_id(conn.pool_id) {
            Some(p) => p.discard(conn),
            None => drop(conn),
        }
    }

    /// Closes a connection that failed (see [`Pool::discard_lost`]).
    pub fn discard_lost(&self, conn: BackendConn) {
        match self.by_id(conn.pool_id) {
            Some(p) => p.discard_lost(conn),
            None => drop(conn),
        }
    }

    /// Brings the set in line with `cfg`; `resolved` holds each backend's
    /// resolved address, by name. `stopping` ends every pool's upkeep.
    ///
    /// A backend's `drained` flag comes from `cfg` like its other keys, so
    /// every way of applying a configuration (reload, admin edits) keeps
    /// or lifts a drain as the configuration says. An undrained backend
    /// gets a fresh pool (with no health verdict kept from before the
    /// maintenance); the drained one is retired.
    pub fn apply(&self, cfg: &Config, resolved: &[BackendSpec], stopping: &Rc<Cell<bool>>) {
        for pool in self.all() {
            if pool.service() != Service::Retired
                && !cfg.backends.iter().any(|b| b.name == pool.backend_name())
            {
                tracing::info!(backend = %pool.backend_name(), "draining removed backend");
                pool.retire();
            }
        }
        for (rank, b) in cfg.backends.iter().enumerate() {
            let max = b.effective_max_per_core(&cfg.pool) as usize;
            let min_idle = (cfg.pool.min_idle_per_core as usize).min(max);
            let placement = Placement {
                hostgroup: b.hostgroup.clone(),
                weight: b.weight.max(1),
                max_lag: b.max_replication_lag.map(|d| d.as_duration()),
                rank,
                max_writers: cfg
                    .hostgroups
                    .iter()
                    .find(|h| h.name == b.hostgroup)
                    .and_then(|h| h.max_writers)
                    .unwrap_or(0),
            };
            let Some(spec) = resolved.iter().find(|s| s.name == b.name) else {
                continue;
            };
            let limits = PoolLimits {
                max,
                min_idle,
                connect_timeout: cfg.pool.connect_timeout.as_duration(),
                idle_timeout: cfg.pool.idle_timeout.as_duration(),
                max_lifetime: cfg.pool.max_lifetime.as_duration(),
                wait_timeout: cfg.backlog.wait_timeout.as_duration(),
                max_waiting: cfg.backlog.max_waiting_per_core as usize,
            };
            match self.by_name(&b.name) {
                Some(pool)
                    if pool.spec().same_login(spec)
                        && (b.drained || pool.service() == Service::InService) =>
                {
                    pool.reconfigure(placement, limits);
                    if b.drained && pool.service() == Service::InService {
                        tracing::info!(backend = %b.name, "backend drained");
                        pool.drain();
                    }
                }
                existing => {
                    if let Some(old) = existing {
                        // Address, credentials or TLS changed, or the
                        // backend is back from a drain: a new pool replaces it.
                        old.retire();
                    }
                    let id = self.next_id.get();
                    self.next_id.set(id + 1);
                    let pool = Pool::new(id, spec.clone(), placement, limits, self.stats.clone());
                    pool.expect_key(self.expected_key.get());
                    if b.drained {
                        pool.drain();
                    } else {
                        self.start_upkeep(&pool, stopping);
                        if let Some(nudge) = self.monitor_nudge.borrow_mut().take() {
                            let _ = nudge.send(());
                        }
                    }
                    self.pools.borrow_mut().push(pool);
                }
            }
        }
    }

    /// Forgets retired pools whose last connection has closed. Drained
    /// pools stay while their backend is configured, so it stays visible.
    pub fn forget_retired(&self) {
        self.pools
            .borrow_mut()
            .retain(|p| !(p.service() == Service::Retired && p.counts().total == 0));
    }

    fn start_upkeep(&self, pool: &Rc<Pool>, stopping: &Rc<Cell<bool>>) {
        pool.prewarm();
        let stopping = stopping.clone();
        let watched = pool.clone();
        rt::spawn(async move {
            let stop_pool = watched.clone();
            watched
                .maintain(move || stopping.get() || stop_pool.is_draining())
                .await
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// A pool named `name` in hostgroup `db` with a 10 s lag limit.
    fn member(id: u32, name: &str) -> Rc<Pool> {
        let spec = BackendSpec {
            name: name.into(),
            addr: "127.0.0.1:1".parse::<std::net::SocketAddr>().unwrap().into(),
            user: "u".into(),
            password: String::new(),
            tls: None,
        };
        let placement = Placement {
            hostgroup: "db".into(),
            weight: 1,
            max_lag: Some(Duration::from_secs(10)),
            rank: 0,
            max_writers: 0,
        };
        let limits = PoolLimits {
            max: 1,
            min_idle: 0,
            connect_timeout: Duration::from_secs(1),
            idle_timeout: Duration::from_secs(60),
            max_lifetime: Duration::ZERO,
            wait_timeout: Duration::from_millis(1),
            max_waiting: 10,
        };
        Pool::new(id, spec, placement, limits, Rc::new(Stats::default()))
    }

    /// ERR 9004 says of each backend why it could not serve.
    #[test]
    fn backends_no_backend_error_names_each_backends_reason() {
        let set = BackendSet::new(Rc::new(Stats::default()));
        assert_eq!(set.why_none("db", Access::Write), "it has no backends");
        let down = member(1, "a");
        down.set_health(Health::Down, false, None);
        let replica = member(2, "b");
        replica.mark_seen();
        replica.set_health(Health::Up, true, Some(Duration::from_secs(30)));
        let fresh = member(3, "c");
        set.pools.borrow_mut().extend([down, replica, fresh]);
        assert_eq!(
            set.why_none("db", Access::Write),
            "a is down (failed its health checks); b is read-only; \
             c is not yet checked by the health monitor (a writer is not known)"
        );
        assert_eq!(
            set.why_none("db", Access::Read),
            "a is down (failed its health checks); \
             b lags 30 s behind, over its max_replication_lag of 10 s; c could not give a connection"
        );
        let err = EngineError::NoBackend {
            hostgroup: "db".into(),
            all_drained: false,
            why: set.why_none("db", Access::Read),
        }
        .to_err_packet();
        assert_eq!(err.code, 9004);
        assert!(err
            .message_text()
            .starts_with("Funnel: no backend available in hostgroup 'db': a is down"));
    }

    /// While no verdict comes (checks that cannot run at all), writes that
    /// gave up waiting must not pile up as waiters.
    #[test]
    fn backends_writes_that_gave_up_on_a_verdict_leave_no_waiters_behind() {
        glommio::LocalExecutor::default().run(async {
            let set = BackendSet::new(Rc::new(Stats::default()));
            set.pools.borrow_mut().push(member(1, "w"));
            for _ in 0..5 {
                let mut deadline = None;
                assert!(!set.wait_for_verdict("db", Access::Write, &mut deadline).await);
            }
            assert!(set.verdict_waiters.borrow().len() <= 1);
        });
    }
}
