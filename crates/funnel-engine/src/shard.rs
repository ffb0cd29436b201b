//! One core's world: its listener, its clients, its backend pool and its
//! counters. Nothing here is shared with another core.

use crate::query_log::{QueryLog, QueryLogFile};
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::time::Duration;

use funnel_config::Config;

use crate::backends::BackendSet;
use crate::caps::Caps;
use crate::control::{ClientSnapshot, ControlMsg, PoolSnapshot, ShardSnapshot};
use crate::control_channel::{ControlInbox, ControlSender, Received};
use crate::digest::Digests;
use crate::ids::{BackendId, ClientId, ShardId};
use crate::kill::{ClientRegistry, KillRefused};
use crate::oneshot;
use crate::pool::conn::BackendSpec;
use crate::pool::conn::{BackendConnection, ServerThread};
use crate::pool::key::PoolKey;
use crate::pool::{Health, Service};
use crate::prepared::registry::Registry;
use crate::rt::{self, Listener};
use crate::rules::Rules;
use crate::schema_trust::SchemaTrust;
use crate::session;
use crate::session::users::{UserCounters, UserTable};
use crate::session::variables::Utf8Alias;
use crate::stats::Stats;
use funnel_protocol::Capabilities;

/// How often a shard forgets retired pools whose connections all came back
/// when no control message wakes it sooner.
const FORGET_RETIRED_EVERY: Duration = Duration::from_secs(1);

/// Everything one core owns.
pub struct Shard {
    /// This shard's index.
    pub id: ShardId,
    /// The configuration snapshot in force (replaced whole on reload).
    config: RefCell<Rc<Config>>,
    /// Who may log in.
    users: RefCell<Rc<UserTable>>,
    /// How many times `users` was replaced: sessions compare it to follow
    /// their user's new settings after a reload.
    users_generation: Cell<u64>,
    /// Query routing rules.
    rules: RefCell<Rc<Rules>>,
    /// The backend pools, one per backend.
    pub backends: BackendSet,
    /// Per-user and per-schema caps on backend connections.
    pub caps: Rc<Caps>,
    /// Counters and histograms.
    pub stats: Rc<Stats>,
    /// Every prepared statement this shard has seen.
    pub statements: Registry,
    /// Statement digests (SHOW DIGESTS).
    pub digests: Digests,
    /// Replies of reads that query rules with `cache_ttl` matched.
    pub query_cache: RefCell<crate::query_cache::QueryCache>,
    /// This core's side of the query log.
    pub query_log: Rc<QueryLog>,
    /// Per-connection log events, rate-limited.
    pub log_rate: crate::lograte::LogRate,
    /// Reads of the writers' GTID positions for universal causal reads.
    pub positions: Rc<crate::causal::PositionReads>,
    /// TLS for clients that ask for it (`client.tls`), as the last reload
    /// read its files: a login takes the one in force when it starts.
    pub tls: RefCell<Option<std::sync::Arc<rustls::ServerConfig>>>,
    /// Live sessions, for KILL.
    pub clients: ClientRegistry,
    /// Every shard's control channel, by shard index (KILL routing).
    pub peers: Vec<ControlSender>,
    /// Backend connections opened for KILL, outside the pool's limit.
    side_slots: Rc<Cell<usize>>,
    next_client: Cell<u32>,
    /// This core's share of `client.max_connections` (a reload sets it).
    max_clients: Cell<u64>,
    /// Schemas a backend accepted recently, and the checks under way.
    pub schemas: Rc<SchemaTrust>,
    /// Replies backends gave to `SET`s, for sessions to answer the same
    /// `SET` without a backend connection.
    pub learned_sets: crate::learned_sets::LearnedSets,
    stopping: Rc<Cell<bool>>,
    fallback_version: Vec<u8>,
    /// The collation id announced to clients (a backend's, see `ShardSetup`).
    greeting_charset: u8,
    /// See [`Shard::extended_caps`].
    extended_at_start: Option<Capabilities>,
    /// What the backends make of the `utf8` alias (from the version the
    /// first reachable backend greeted with at start).
    pub utf8_alias: Utf8Alias,
    /// Graceful stop in progress: sessions end as soon as they hold no
    /// backend connection between commands.
    draining: Cell<bool>,
    /// `PAUSE`: no backend connections are handed out until `RESUME`.
    paused: Cell<bool>,
    resume: RefCell<Vec<oneshot::Sender<()>>>,
    /// KILLs sent to other shards, waiting for their outcome.
    kill_replies: RefCell<HashMap<u64, oneshot::Sender<Result<(), KillRefused>>>>,
    next_kill_ticket: Cell<u64>,
}

/// What a shard needs to start.
pub struct ShardSetup {
    /// Its index.
    pub id: ShardId,
    /// The config.
    pub config: Config,
    /// Every configured backend, resolved.
    pub backends: Vec<BackendSpec>,
    /// This core's share of `client.max_connections`.
    pub max_clients: u64,
    /// The server version to announce before any backend answered.
    pub version: Vec<u8>,
    /// The collation id a backend's greeting announced.
    pub charset: u8,
    /// The MariaDB extended capabilities that greeting offered (`None`:
    /// no backend answered at start).
    pub extended: Option<Capabilities>,
    /// Every shard's control channel (this one's included).
    pub peers: Vec<ControlSender>,
    /// Per-user connection counters, shared by every core.
    pub user_counters: UserCounters,
    /// TLS for clients, built once at start.
    pub tls: Option<std::sync::Arc<rustls::ServerConfig>>,
    /// The query log's file, opened once for every core.
    pub query_log: Option<QueryLogFile>,
}

impl Shard {
    /// Builds a shard's state and starts its pools (on its own core).
    pub fn new(setup: ShardSetup) -> Rc<Shard> {
        let cfg = setup.config;
        let stats = Rc::new(Stats::default());
        let backends = BackendSet::new(stats.clone());
        backends.expect_key(crate::pool::key::PoolKey::common(
            setup.extended.unwrap_or(Capabilities::EMPTY),
        ));
        let stopping = Rc::new(Cell::new(false));
        backends.apply(&cfg, &setup.backends, &stopping);
        let query_log = Rc::new(QueryLog::default());
        query_log.configure(setup.id.0, &cfg.query_log, setup.query_log);
        Rc::new(Shard {
            query_log,
            id: setup.id,
            users: RefCell::new(Rc::new(UserTable::from_config(&cfg.users, &setup.user_counters))),
            users_generation: Cell::new(0),
            rules: RefCell::new(Rc::new(Rules::compile(&cfg.query_rules))),
            config: RefCell::new(Rc::new(cfg)),
            backends,
            caps: Rc::new(Caps::default()),
            stats,
            statements: Registry::default(),
            digests: Digests::default(),
            query_cache: RefCell::default(),
            log_rate: Default::default(),
            positions: Default::default(),
            tls: RefCell::new(setup.tls),
            clients: ClientRegistry::default(),
            peers: setup.peers,
            side_slots: Rc::new(Cell::new(0)),
            next_client: Cell::new(0),
            max_clients: Cell::new(setup.max_clients),
            schemas: Rc::new(SchemaTrust::default()),
            learned_sets: Default::default(),
            stopping,
            utf8_alias: Utf8Alias::of_server(&setup.version),
            fallback_version: setup.version,
            greeting_charset: setup.charset,
            extended_at_start: setup.extended,
            draining: Cell::new(false),
            paused: Cell::new(false),
            resume: RefCell::new(Vec::new()),
            kill_replies: RefCell::new(HashMap::new()),
            next_kill_ticket: Cell::new(0),
        })
    }

    /// Registers a KILL about to be sent to another shard: the ticket goes
    /// with it, and the receiver resolves when that shard's answer arrives
    /// on this shard's control channel.
    pub fn await_kill_outcome(&self) -> (u64, oneshot::Receiver<Result<(), KillRefused>>) {
        let ticket = self.next_kill_ticket.get();
        self.next_kill_ticket.set(ticket + 1);
        let (tx, rx) = oneshot::channel();
        self.kill_replies.borrow_mut().insert(ticket, tx);
        (ticket, rx)
    }

    /// Forgets a KILL whose answer will no longer be awaited.
    pub fn forget_kill_outcome(&self, ticket: u64) {
        self.kill_replies.borrow_mut().remove(&ticket);
    }

    /// Waits while handing out backend connections is paused, up to `limit`.
    pub async fn wait_unpaused(&self, limit: Duration) -> Result<(), crate::error::EngineError> {
        if !self.paused.get() {
            return Ok(());
        }
        let (tx, mut rx) = oneshot::channel();
        self.resume.borrow_mut().push(tx);
        match rt::timeout(limit, &mut rx).await {
            Some(()) => Ok(()),
            None => Err(crate::error::EngineError::Paused { waited: limit }),
        }
    }

    /// True during a graceful stop.
    pub fn is_draining(&self) -> bool {
        self.draining.get()
    }

    /// Starts a graceful stop on this core: idle clients without a pinned
    /// connection are closed now, the others when their work is done.
    fn begin_graceful_stop(&self) {
        self.draining.set(true);
        for (_, c) in self.clients.all() {
            let (state, _) = c.state();
            if state == crate::kill::ClientState::Idle && c.pinned().is_none() {
                c.kill();
            }
        }
    }

    /// Pauses or resumes handing out backend connections.
    pub fn set_paused(&self, on: bool) {
        self.paused.set(on);
        if !on {
            for tx in self.resume.borrow_mut().drain(..) {
                let _ = tx.send(());
            }
        }
    }

    /// The configuration in force.
    pub fn config(&self) -> Rc<Config> {
        self.config.borrow().clone()
    }

    /// Who may log in.
    pub fn users(&self) -> Rc<UserTable> {
        self.users.borrow().clone()
    }

    /// Changes each time a reload replaces the user table.
    pub fn users_generation(&self) -> u64 {
        self.users_generation.get()
    }

    /// The query routing rules.
    pub fn rules(&self) -> Rc<Rules> {
        self.rules.borrow().clone()
    }

    /// The cap on backend connections used in `schema`, if any.
    pub fn schema_limit(&self, schema: &[u8]) -> Option<usize> {
        self.config
            .borrow()
            .schema_limits
            .iter()
            .find(|l| l.schema.as_bytes() == schema)
            .map(|l| l.max_backend_connections_per_core as usize)
    }

    /// Applies a reloaded configuration: users, rules, limits and backends
    /// change live; connected clients keep their sessions.
    pub fn reload(
        &self,
        cfg: Config,
        resolved: &[BackendSpec],
        counters: &UserCounters,
        query_log: Option<QueryLogFile>,
        tls: Option<std::sync::Arc<rustls::ServerConfig>>,
        max_clients: u64,
    ) {
        // Clients over a lowered share stay; new ones wait for room.
        self.max_clients.set(max_clients);
        self.query_log.configure(self.id.0, &cfg.query_log, query_log);
        // Sessions under way keep the TLS they logged in with.
        *self.tls.borrow_mut() = tls;
        self.backends.apply(&cfg, resolved, &self.stopping);
        // Retired pools with no connection go now, not a tick later: a
        // snapshot right after the change lists no empty left-overs.
        self.backends.forget_retired();
        // A kept reply stands for what the rule that kept it (its TTL, its
        // hostgroup) and the user's hostgroups made of the read: other
        // rules, users or servers may answer it otherwise.
        let old = self.config();
        let mut cache = self.query_cache.borrow_mut();
        if cfg.query_rules != old.query_rules
            || cfg.users != old.users
            || cfg.backends != old.backends
            || cfg.hostgroups != old.hostgroups
        {
            cache.clear();
        } else {
            cache.shrink_to(cfg.query_cache.max_memory_per_core.as_u64() as usize);
        }
        drop(cache);
        *self.users.borrow_mut() = Rc::new(UserTable::from_config(&cfg.users, counters));
        self.users_generation
            .set(self.users_generation.get().wrapping_add(1));
        // Unchanged rules keep their hit counts.
        if cfg.query_rules != old.query_rules {
            *self.rules.borrow_mut() = Rc::new(Rules::compile(&cfg.query_rules));
        }
        let (was, now) = (&old.client, &cfg.client);
        let wait_limits_changed = was.idle_timeout != now.idle_timeout
            || was.idle_transaction_timeout != now.idle_transaction_timeout
            || was.max_transaction_time != now.max_transaction_time
            || was.net_read_timeout != now.net_read_timeout;
        *self.config.borrow_mut() = Rc::new(cfg);
        if wait_limits_changed {
            // Idle clients take them now: a lowered limit they are past
            // ends them, where they would have waited for their next
            // command.
            for (_, client) in self.clients.all() {
                client.note_limits_changed();
            }
        }
        // The servers behind a hostgroup may have changed.
        self.learned_sets.clear();
        tracing::info!(shard = %self.id, "configuration reloaded");
    }

    /// A new client id owned by this shard.
    pub fn next_client_id(&self) -> ClientId {
        let n = self.next_client.get();
        self.next_client.set(n.wrapping_add(1));
        ClientId::new(self.id, n)
    }

    /// The version string announced to clients.
    pub fn server_version(&self) -> Vec<u8> {
        self.fallback_version.clone()
    }

    /// The collation id announced to clients: a backend's default.
    pub fn greeting_charset(&self) -> u8 {
        self.greeting_charset
    }

    /// The MariaDB extended capabilities clients are offered (of those
    /// Funnel carries, `session::handshake::EXTENDED_CAPS`): the ones the
    /// backend greetings read at start offered, less those a backend this
    /// core has met since lacks (a connection opened, or a health check:
    /// a backend a reload added, another server behind an address after
    /// a failover). Where none answered at start, those every backend met
    /// since offers (none before: a client promised extended metadata
    /// could not be served by a server without it, such as MySQL). A
    /// backend connection without bulk operations answers a bulk execute
    /// as such a server would (ERR 1295); one without extended metadata is
    /// not opened for a client that asked for it (`LacksCapabilities`).
    pub fn extended_caps(&self) -> Capabilities {
        let met = self.backends.server_extended();
        match (self.extended_at_start, met) {
            (Some(start), Some(met)) => start.intersect(met),
            (start, met) => start.or(met).unwrap_or(Capabilities::EMPTY),
        }
    }

    /// Kills one of this shard's clients, or only its running query, on
    /// behalf of `user` (only that user's clients), or of an operator
    /// (`None`: anyone's).
    pub async fn kill_local(
        &self,
        target: ClientId,
        query_only: bool,
        user: Option<&str>,
    ) -> Result<(), KillRefused> {
        let control = self
            .clients
            .get(target)
            .ok_or(KillRefused::UnknownThread(target.0))?;
        if user.is_some_and(|u| control.user != u) {
            return Err(KillRefused::NotOwner(target.0));
        }
        let stopped = match control.running_on() {
            // The statement may end while the kill's connection logs in,
            // and the backend connection serve another client's: the kill
            // goes ahead only if this client still runs on that thread.
            Some(thread) => {
                let in_flight = control.kill_in_flight();
                if !query_only {
                    // Before the server interrupts the statement: its ERR
                    // 1317 is not forwarded (see `ClientSide::killed`).
                    control.kill();
                }
                self.kill_running(&control, thread, in_flight).await
            }
            None => {
                // Not on a backend yet: a command waiting for one never runs.
                control.interrupt_wait();
                Ok(())
            }
        };
        if query_only {
            return stopped;
        }
        // The session ends whatever the backend said (if the statement could
        // not be stopped there, once it finishes).
        control.kill();
        Ok(())
    }

    /// Stops the statement `control`'s client runs on `thread`, if it
    /// still runs there when the `KILL QUERY` goes out. `in_flight`, taken
    /// by the caller when it decided to kill, keeps the connection from
    /// serving anybody else until the server has answered; one whose
    /// `KILL` was written and got no answer may still receive it, so it
    /// serves nobody else at all (`late_kill`). One the server refused (an
    /// ERR) is as settled as one it ran.
    pub(crate) async fn kill_running(
        &self,
        control: &Rc<crate::kill::ClientControl>,
        thread: ServerThread,
        in_flight: crate::kill::KillInFlight,
    ) -> Result<(), KillRefused> {
        // Set only once the `KILL` itself is written: a poll of the
        // process list that fails after a "still wanted" check sent
        // nothing that could arrive late.
        let sent = Cell::new(false);
        let stopped = self
            .kill_backend_query(thread, || control.running_on() == Some(thread), &sent)
            .await;
        if sent.get() && matches!(stopped, Err(KillRefused::Backend(_))) {
            in_flight.may_arrive_late();
        }
        stopped
    }

    /// Stops, in the background, the query of a connection Funnel closes
    /// without waiting for its reply (a timeout): the server would go on
    /// running it. Whether the `KILL` gets there matters to no one waiting.
    pub fn kill_abandoned_query(self: &Rc<Self>, thread: ServerThread) {
        let shard = self.clone();
        rt::spawn(async move {
            let _ = shard.kill_backend_query(thread, || true, &Cell::new(false)).await;
        });
    }

    /// Runs `KILL QUERY` on a backend thread through a connection of its
    /// own, so no pooled connection (and no waiting client) is involved.
    ///
    /// Over TCP it first makes sure the thread is still Funnel's connection
    /// (see [`crate::kill::is_funnels_thread`]): should the backend's
    /// address now reach another server, the same id there is someone
    /// else's work, which is left alone. So is a thread behind a proxy that
    /// hides Funnel's port (HAProxy): its query runs to its end.
    ///
    /// `still_wanted` is asked last, just before the `KILL` is sent;
    /// `written` is set when the `KILL` is written to the server (only then
    /// may it arrive after an error or a timeout here).
    pub async fn kill_backend_query(
        &self,
        thread: ServerThread,
        still_wanted: impl Fn() -> bool,
        written: &Cell<bool>,
    ) -> Result<(), KillRefused> {
        let Some(pool) = self.backends.by_id(thread.pool) else {
            return Ok(()); // its backend was removed: the query is gone with it
        };
        let limit = self.config().pool.connect_timeout.as_duration();
        let open = |spec: BackendSpec| {
            let slot = crate::pool::conn::SlotGuard::take(&self.side_slots);
            async move { BackendConnection::open(&spec, BackendId(0), PoolKey::DEFAULT, slot, limit).await }
        };
        let (mut conn, _) = match open(pool.spec().clone()).await {
            Ok(opened) => opened,
            Err(e) => {
                // The backend's password may have been rotated since the
                // statement's connection opened (on the server, then in
                // Funnel, whose reload replaced that pool): the current
                // pool of the name, the same account at the same address,
                // logs in with the new one.
                let successor = self.backends.by_name(pool.backend_name()).filter(|p| {
                    p.id != pool.id && p.spec().addr == pool.spec().addr && p.spec().user == pool.spec().user
                });
                let Some(successor) = successor else {
                    return Err(KillRefused::Backend(e.to_string()));
                };
                open(successor.spec().clone())
                    .await
                    .map_err(|e| KillRefused::Backend(e.to_string()))?
            }
        };
        // A backend that stops answering must not hold the KILL (and the
        // client that sent it) for ever: the same bound as the login.
        let no_answer = || KillRefused::Backend(format!("no answer to KILL QUERY within {limit:?}"));
        // `SHOW PROCESSLIST`, not information_schema: MariaDB 10.11.19
        // crashed (SIGSEGV freeing that query's temporary table) under
        // connection churn while such a query polled.
        let processlist = "SHOW PROCESSLIST";
        let (_, mut rows) = rt::timeout(limit, conn.query_rows(processlist))
            .await
            .ok_or_else(no_answer)?
            .map_err(|e| KillRefused::Backend(e.to_string()))?;
        if let Some(port) = thread.local_port {
            let host_of = |id: u32| {
                rows.iter()
                    .find(|r| r.first().cloned().flatten().and_then(|v| v.parse::<u32>().ok()) == Some(id))
                    .and_then(|r| r.get(2).cloned().flatten())
            };
            let Some(host) = host_of(thread.id) else {
                return Ok(()); // the connection is gone, and its query with it
            };
            let own = host_of(conn.server_thread_id).unwrap_or_default();
            if !crate::kill::is_funnels_thread(&host, &own, port) {
                tracing::warn!(
                    backend = %pool.backend_name(),
                    thread = thread.id,
                    host = %host,
                    "not killing: the server's thread of that id is not Funnel's connection \
                     (the backend's address reaches another server now, or a proxy between hides Funnel's port)"
                );
                return Err(KillRefused::Backend(format!(
                    "thread {} on backend '{}' is no longer Funnel's connection; its query was not stopped",
                    thread.id,
                    pool.backend_name()
                )));
            }
        }
        // MariaDB forgets a `KILL QUERY` that reaches a thread before it
        // has begun the statement (each command starts by clearing it): a
        // KILL sent just after the statement was written, before the
        // server read it, was lost and the statement ran to its end. So
        // it waits, briefly, for the server to show the thread at work.
        let started = std::time::Instant::now();
        loop {
            let command = rows
                .iter()
                .find(|r| r.first().cloned().flatten().and_then(|v| v.parse::<u32>().ok()) == Some(thread.id))
                .map(|r| r.get(4).cloned().flatten().unwrap_or_default());
            match command {
                None => return Ok(()), // the connection is gone, and its query with it
                Some(c) if c == "Sleep" && started.elapsed() < KILL_DISPATCH_WAIT && still_wanted() => {
                    rt::sleep(Duration::from_millis(2)).await;
                    // Tests make this poll fail.
                    #[cfg(feature = "fault-injection")]
                    if std::env::var_os("FUNNEL_FAULT_INJECTION").is_some()
                        && std::env::var_os("FUNNEL_FAULT_PROCESSLIST_FAIL").is_some()
                    {
                        return Err(KillRefused::Backend("injected: SHOW PROCESSLIST failed".into()));
                    }
                    rows = rt::timeout(limit, conn.query_rows(processlist))
                        .await
                        .ok_or_else(no_answer)?
                        .map_err(|e| KillRefused::Backend(e.to_string()))?
                        .1;
                }
                Some(_) => break,
            }
        }
        if !still_wanted() {
            return Ok(());
        }
        // Tests widen the gap between the check and the KILL's arrival.
        #[cfg(feature = "fault-injection")]
        fault_pause("FUNNEL_FAULT_KILL_DELAY_MS").await;
        #[allow(unused_mut)]
        let mut kill = format!("KILL QUERY {}", thread.id);
        // Tests make the server refuse the KILL (ER_NO_SUCH_QUERY: no
        // query has that id).
        #[cfg(feature = "fault-injection")]
        if std::env::var_os("FUNNEL_FAULT_INJECTION").is_some()
            && std::env::var_os("FUNNEL_FAULT_KILL_REFUSED").is_some()
        {
            kill = format!("KILL QUERY ID {}", i64::MAX);
        }
        let mut p = bytes::BytesMut::new();
        funnel_protocol::command::write_query(&mut p, kill.as_bytes());
        let send = async {
            // From here on the `KILL` may reach the server.
            written.set(true);
            // Tests make the server take the KILL in too late to answer.
            #[cfg(feature = "fault-injection")]
            fault_pause("FUNNEL_FAULT_KILL_STALL_MS").await;
            conn.run(&p, funnel_protocol::tracker::Expect::Results).await
        };
        let summary = rt::timeout(limit, send)
            .await
            .ok_or_else(no_answer)?
            .map_err(|e| KillRefused::Backend(e.to_string()))?;
        match summary.error {
            // 1094: the query (and its thread) already finished: nothing to kill.
            None => Ok(()),
            Some(e) if e.code == 1094 => Ok(()),
            Some(e) => Err(KillRefused::Server(e)),
        }
    }

    /// Occupancy summed over every pool of this core.
    fn pool_totals(&self) -> crate::pool::PoolCounts {
        let mut t = crate::pool::PoolCounts {
            total: 0,
            idle: 0,
            opening: 0,
            waiting: 0,
        };
        for p in self.backends.all() {
            let c = p.counts();
            t.total += c.total;
            t.idle += c.idle;
            t.opening += c.opening;
            t.waiting += c.waiting;
        }
        t
    }

    /// A snapshot for the control channel (and the admin interface).
    pub fn snapshot(&self) -> ShardSnapshot {
        let s = &self.stats;
        Stats::bump(&s.snapshots);
        let all_clients = self.clients.all();
        let clients: Vec<ClientSnapshot> = all_clients
            .iter()
            .map(|(id, c)| {
                let (state, since) = c.state();
                ClientSnapshot {
                    id: *id,
                    user: c.user.clone(),
                    peer: c.peer.clone(),
                    schema: c.schema(),
                    state: state.as_str(),
                    pinned: c.pinned().map(|(r, _)| r.as_str()),
                    for_how_long: since.elapsed(),
                    prepared_statements: c.prepared(),
                    transaction_for: c.transaction_began().map(|t| t.elapsed()),
                    statement: (state != crate::kill::ClientState::Idle)
                        .then(|| c.statement(&self.digests))
                        .flatten(),
                }
            })
            .collect();
        let pinned_in = |pool: u32| {
            all_clients
                .iter()
                .filter(|(_, c)| c.pinned().is_some_and(|(_, p)| p == pool))
                .count()
        };
        let all_pools = self.backends.all();
        let pools = all_pools
            .iter()
            .map(|p| {
                let takes_writes = crate::router::takes_writes(&all_pools, p);
                let placement = p.placement();
                let counts = p.counts();
                PoolSnapshot {
                    backend: p.backend_name().to_string(),
                    address: p.spec().addr.to_string(),
                    hostgroup: placement.hostgroup.clone(),
                    weight: placement.weight,
                    status: match p.service() {
                        // Not `draining`: the backend's name may be in
                        // service again (re-added, given a new login or
                        // undrained), and the old pool's row must not
                        // read as a drain of the new one.
                        Service::Retired => "retiring",
                        Service::Drained if counts.total > 0 => "draining",
                        Service::Drained => "drained",
                        Service::InService if p.health() == Health::Down => "down",
                        Service::InService => "up",
                    },
                    retired: p.service() == Service::Retired,
                    drained: p.service() == Service::Drained,
                    healthy: p.health() != Health::Down,
                    read_only: p.is_read_only(),
                    takes_writes,
                    lag: p.lag(),
                    last_check: p.last_check().map(|t| t.elapsed()),
                    counts,
                    pinned: pinned_in(p.id),
                    max: p.max(),
                }
            })
            .collect();
        ShardSnapshot {
            shard: self.id,
            clients_active: s.clients_active.get(),
            counters: crate::control::Counters {
                query_log_lines: self.query_log.lines.get(),
                query_log_dropped: self.query_log.dropped.get(),
                ..s.counters()
            },
            errors_by_code: s.errors_by_code.borrow().clone(),
            open_failures_by_backend: s.open_failures_by_backend.borrow().clone(),
            pins_total: s.pins.borrow().clone(),
            pool: self.pool_totals(),
            pools,
            clients,
            query_us: s.query_us.borrow().histogram().clone(),
            backlog_wait_us: s.backlog_wait_us.borrow().histogram().clone(),
            connect_us: s.connect_us.borrow().histogram().clone(),
            paused: self.paused.get(),
            digests: self.digests.snapshot(),
            pins_by_digest: s.pins_by_digest.borrow().clone(),
            rule_hits: self.rules().hits(),
            query_cache: self.query_cache.borrow().usage(),
        }
    }
}

/// Runs a shard until it is told to stop.
pub async fn run(shard: Rc<Shard>, listener: Listener, control: ControlInbox) {
    let (stop_tx, mut stop_rx) = oneshot::channel::<()>();
    let (quiet_tx, mut quiet_rx) = oneshot::channel::<()>();
    rt::spawn(control_loop(shard.clone(), control, stop_tx, quiet_tx));
    if shard.id == ShardId(0) {
        // One core watches every backend and tells all cores, ahead of
        // its sessions' tasks: a check's deadline is for the backend.
        let watcher = shard.clone();
        rt::spawn_urgent(async move {
            let stop = watcher.stopping.clone();
            crate::monitor::run(watcher, move || stop.get()).await
        });
    }
    // One descriptor held in reserve for the moment accepts fail for want
    // of descriptors (see the accept error below).
    let mut spare = open_spare();
    loop {
        let accepted = futures_lite::future::or(
            async { Some(listener.accept().await) },
            futures_lite::future::or(
                async {
                    (&mut stop_rx).await;
                    None
                },
                async {
                    (&mut quiet_rx).await;
                    None
                },
            ),
        )
        .await;
        let Some(accepted) = accepted else { break };
        match accepted {
            Ok(stream) => admit(&shard, stream),
            Err(e) => {
                if matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE)) {
                    // Out of descriptors: the spare one makes room to take
                    // the waiting client and tell it, instead of leaving it
                    // in the kernel's queue without a word.
                    if spare.is_none() {
                        spare = open_spare();
                    }
                    if let Some(fd) = spare.take() {
                        drop(fd);
                        let next = rt::timeout(SPARE_ACCEPT_WAIT, listener.accept()).await;
                        if let Some(Ok(stream)) = next {
                            spare = open_spare();
                            if spare.is_some() {
                                // Not short after all: the failed accept
                                // was prepared under a lower limit (io_uring
                                // reads it then; a listener with one socket
                                // uses io_uring's accept), raised since.
                                admit(&shard, stream);
                            } else {
                                refuse_out_of_descriptors(&shard, stream).await;
                                spare = open_spare();
                            }
                            continue;
                        }
                        spare = open_spare();
                    }
                }
                // Out of file descriptors and the like: back off, never give up.
                if shard.log_rate.allow() {
                    tracing::warn!(shard = %shard.id, error = %e, "accept failed");
                }
                rt::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    drop(listener);
    if !shard.stopping.get() {
        // Told to stop accepting only: keep serving connected clients until
        // the shutdown itself.
        tracing::info!(shard = %shard.id, "no longer accepting new clients");
        (&mut stop_rx).await;
    }
    shard.query_log.flush_at_stop().await;
    tracing::info!(shard = %shard.id, "shard stopped");
}

async fn control_loop(
    shard: Rc<Shard>,
    mut control: ControlInbox,
    stop: oneshot::Sender<()>,
    quiet: oneshot::Sender<()>,
) {
    let mut stop = Some(stop);
    let mut quiet = Some(quiet);
    loop {
        loop {
            match control.try_recv() {
                Received::Msg(ControlMsg::Shutdown) | Received::Closed => {
                    shard.stopping.set(true);
                    if let Some(s) = stop.take() {
                        let _ = s.send(());
                    }
                    return;
                }
                Received::Msg(ControlMsg::Snapshot(reply)) => {
                    let _ = reply.send(shard.snapshot());
                }
                Received::Msg(ControlMsg::Barrier(reply)) => {
                    let _ = reply.send(());
                }
                Received::Msg(ControlMsg::Reload {
                    config,
                    backends,
                    user_counters,
                    query_log,
                    tls,
                    max_clients,
                }) => shard.reload(*config, &backends, &user_counters, query_log, tls, max_clients),
                Received::Msg(ControlMsg::Pause(on)) => shard.set_paused(on),
                Received::Msg(ControlMsg::ResetDigests(reply)) => {
                    let running: Vec<u64> = shard
                        .clients
                        .all()
                        .iter()
                        .filter_map(|(_, c)| c.statement_key())
                        .collect();
                    shard.digests.clear(&running);
                    shard.stats.pins_by_digest.borrow_mut().clear();
                    let _ = reply.send(());
                }
                Received::Msg(ControlMsg::Reconnect { backend, reply }) => {
                    let _ = reply.send(shard.backends.renew(backend.as_deref()));
                }
                Received::Msg(ControlMsg::StopAccepting) => {
                    if let Some(q) = quiet.take() {
                        let _ = q.send(());
                    }
                }
                Received::Msg(ControlMsg::GracefulStop) => {
                    if let Some(q) = quiet.take() {
                        let _ = q.send(());
                    }
                    shard.begin_graceful_stop();
                }
                Received::Msg(ControlMsg::Health {
                    backend,
                    login,
                    health,
                    read_only,
                    lag,
                    seen,
                    max_prepared,
                    login_status,
                    server_extended,
                    down_reason,
                    galera_cluster,
                }) => {
                    // A pool that replaced the checked one (new address,
                    // account or TLS) waits for a check of its own.
                    for p in shard
                        .backends
                        .all()
                        .iter()
                        .filter(|p| p.backend_name() == backend && p.spec().same_login(&login))
                    {
                        p.set_health(health, read_only, lag);
                        p.set_down_reason(down_reason.clone());
                        p.set_galera_cluster(galera_cluster.as_deref());
                        if seen {
                            p.mark_seen();
                        }
                        if let Some(limit) = max_prepared {
                            p.set_server_statement_limit(limit, shard.peers.len());
                        }
                        if let Some(status) = login_status {
                            p.note_login_status(status);
                        }
                        if let Some(ext) = server_extended {
                            p.note_server_extended(ext);
                        }
                    }
                    shard.backends.verdict_arrived();
                }
                Received::Msg(ControlMsg::Kill {
                    target,
                    query_only,
                    user,
                    reply_to,
                    ticket,
                }) => {
                    let shard = shard.clone();
                    rt::spawn(async move {
                        let outcome = shard.kill_local(target, query_only, Some(&user)).await;
                        let _ = reply_to.send(ControlMsg::KillOutcome { ticket, outcome });
                    });
                }
                Received::Msg(ControlMsg::OperatorKill {
                    target,
                    query_only,
                    reply,
                }) => {
                    let shard = shard.clone();
                    rt::spawn(async move {
                        let _ = reply.send(shard.kill_local(target, query_only, None).await);
                    });
                }
                Received::Msg(ControlMsg::KillOutcome { ticket, outcome }) => {
                    if let Some(tx) = shard.kill_replies.borrow_mut().remove(&ticket) {
                        let _ = tx.send(outcome);
                    }
                }
                Received::Empty => break,
            }
        }
        shard.backends.forget_retired();
        // Woken by the next message; the timeout only forgets retired pools.
        rt::timeout(FORGET_RETIRED_EVERY, control.wait()).await;
    }
}

/// Serves an accepted client, or refuses it with ERR 1040 when the core
/// already serves its share of `client.max_connections`.
fn admit(shard: &Rc<Shard>, stream: rt::Stream) {
    if shard.stats.clients_active.get() >= shard.max_clients.get() {
        Stats::bump(&shard.stats.clients_refused);
        let err = crate::error::EngineError::TooManyConnections.to_err_packet();
        shard.stats.count_error(err.code);
        rt::spawn(refuse_too_many(stream, err));
    } else {
        rt::spawn(session::serve_isolated(shard.clone(), stream));
    }
}

/// How long the accept loop waits for the client it made room for.
const SPARE_ACCEPT_WAIT: Duration = Duration::from_millis(100);

/// A descriptor to hold in reserve (of /dev/null, which costs nothing).
fn open_spare() -> Option<std::fs::File> {
    std::fs::File::open("/dev/null").ok()
}

/// A client accepted with the spare descriptor: ERR 1040 saying why, then
/// closed at once (inline, so the descriptor is free again for the spare).
async fn refuse_out_of_descriptors(shard: &Shard, mut stream: rt::Stream) {
    Stats::bump(&shard.stats.clients_refused);
    let err = funnel_protocol::response::ErrPacket::new(
        1040,
        "08004",
        "Too many connections: Funnel is out of file descriptors (raise its open-files limit)",
    );
    shard.stats.count_error(err.code);
    let mut out = bytes::BytesMut::new();
    funnel_protocol::framing::write_small_packet(&mut out, 0, |p| err.write(p));
    let _ = rt::timeout(SPARE_ACCEPT_WAIT, stream.write_all(&out)).await;
}

/// MySQL answers a connection over the limit with ERR 1040 in place of the greeting.
async fn refuse_too_many(mut stream: rt::Stream, err: funnel_protocol::response::ErrPacket) {
    let mut out = bytes::BytesMut::new();
    funnel_protocol::framing::write_small_packet(&mut out, 0, |p| err.write(p));
    let _ = rt::timeout(Duration::from_secs(1), stream.write_all(&out)).await;
}

/// How long a `KILL QUERY` waits for the server to begin the statement it
/// stops (see [`Shard::kill_backend_query`]).
const KILL_DISPATCH_WAIT: Duration = Duration::from_millis(500);

/// Sleeps for the milliseconds the environment variable `var` names, in a
/// test build run with `FUNNEL_FAULT_INJECTION` set; else returns at once.
#[cfg(feature = "fault-injection")]
pub(crate) async fn fault_pause(var: &str) {
    if std::env::var_os("FUNNEL_FAULT_INJECTION").is_none() {
        return;
    }
    if let Some(ms) = std::env::var(var).ok().and_then(|v| v.parse().ok()) {
        rt::sleep(Duration::from_millis(ms)).await;
    }
}
