//! The only messages that cross cores: control, never data. Each shard
//! wakes for them through its [`crate::control_channel`]; the sender side
//! lives with the [`crate::Proxy`] handle and with every other shard.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::control_channel::ControlSender;
use crate::ids::{ClientId, ShardId};
use crate::kill::KillRefused;
use crate::pool::conn::BackendSpec;
use crate::pool::{Health, PoolCounts};

/// A request to one shard.
#[derive(Debug)]
pub enum ControlMsg {
    /// Stop accepting and end the shard's executor.
    Shutdown,
    /// Report a snapshot of the shard's state.
    Snapshot(crossbeam_channel::Sender<ShardSnapshot>),
    /// Answer once every message sent before this one was handled: how a
    /// configuration change is known to be in force on every core.
    Barrier(crossbeam_channel::Sender<()>),
    /// Apply a reloaded, validated configuration (backends resolved).
    Reload {
        /// The new configuration.
        config: Box<funnel_config::Config>,
        /// Its backends, resolved.
        backends: Vec<BackendSpec>,
        /// Per-user connection counters (running counts kept).
        user_counters: crate::session::users::UserCounters,
        /// The query log's file, opened anew.
        query_log: Option<crate::query_log::QueryLogFile>,
        /// Client TLS, its files read anew (`None`: no `client.tls`).
        tls: Option<std::sync::Arc<rustls::ServerConfig>>,
        /// Each core's share of `client.max_connections`, for the new
        /// configuration's backends and the open-files limit.
        max_clients: u64,
    },
    /// The health monitor's latest verdict on one backend.
    Health {
        /// Backend name.
        backend: String,
        /// Where and as whom the check connected: the verdict is about
        /// that server, so it stands only for pools that connect the same
        /// way (a reload may have pointed the name elsewhere meanwhile).
        login: Box<crate::pool::conn::BackendSpec>,
        /// Up or down.
        health: Health,
        /// The server said `read_only=ON`.
        read_only: bool,
        /// Replication lag, when it is a replica.
        lag: Option<std::time::Duration>,
        /// The check reached the server (`read_only` and `lag` are its
        /// answers, not the values kept from before).
        seen: bool,
        /// The server's `max_prepared_stmt_count`, when the check read it.
        max_prepared: Option<u64>,
        /// The status flags of the check's login, when it logged in: a
        /// fresh session's there, which a client's login OK repeats.
        login_status: Option<funnel_protocol::StatusFlags>,
        /// The MariaDB extensions the server's greeting offered, when the
        /// check connected: one a reload added that lacks some stops
        /// their offer to clients that log in later.
        server_extended: Option<funnel_protocol::Capabilities>,
        /// Why a backend that answered its check is down anyway (a Galera
        /// node that may not serve), for the clients' ERR 9004.
        down_reason: Option<String>,
        /// A Galera node's cluster (`wsrep_cluster_state_uuid`); `None`
        /// for a server without a Galera provider.
        galera_cluster: Option<String>,
    },
    /// Forget the statement digests (and the pins counted by digest);
    /// the reply says it is done.
    ResetDigests(crossbeam_channel::Sender<()>),
    /// Replace the connections of the named backend's pools (`None`:
    /// every backend's) with new ones (see `Pool::renew`); the reply
    /// says how many idle ones closed at once.
    Reconnect {
        /// The backend, or every one.
        backend: Option<String>,
        /// How many connections closed at once.
        reply: crossbeam_channel::Sender<usize>,
    },
    /// Stop (or resume) handing out backend connections: commands wait in
    /// the backlog meanwhile (for a failover).
    Pause(bool),
    /// Stop accepting new clients; connected ones carry on.
    StopAccepting,
    /// Graceful stop: stop accepting, close idle clients at once, and every
    /// other client once its command (or transaction) is done.
    GracefulStop,
    /// Kill one of this shard's clients (or only its running query).
    Kill {
        /// The client.
        target: ClientId,
        /// Only the running statement.
        query_only: bool,
        /// Who asks (only the same user may kill).
        user: String,
        /// The asking shard: the outcome goes back on its channel.
        reply_to: ControlSender,
        /// Names the request on the asking shard.
        ticket: u64,
    },
    /// Kill one of this shard's clients (or only its running query) for
    /// an operator (the admin interface): any user's.
    OperatorKill {
        /// The client.
        target: ClientId,
        /// Only the running statement.
        query_only: bool,
        /// Where the outcome goes.
        reply: crossbeam_channel::Sender<Result<(), KillRefused>>,
    },
    /// The outcome of a [`ControlMsg::Kill`] this shard sent.
    KillOutcome {
        /// The request's ticket.
        ticket: u64,
        /// Done, or why not.
        outcome: Result<(), KillRefused>,
    },
}

/// What a shard reports about itself.
#[derive(Debug, Clone)]
pub struct ShardSnapshot {
    /// Which shard.
    pub shard: ShardId,
    /// Client connections open now.
    pub clients_active: u64,
    /// Counters since start.
    pub counters: Counters,
    /// Funnel's own errors by MySQL error code.
    pub errors_by_code: BTreeMap<u16, u64>,
    /// Failed attempts to open a backend connection, by backend name.
    pub open_failures_by_backend: BTreeMap<String, u64>,
    /// Clients pinned so far, by reason (counted when a reason is first taken).
    pub pins_total: BTreeMap<&'static str, u64>,
    /// Occupancy summed over every pool.
    pub pool: PoolCounts,
    /// Each pool.
    pub pools: Vec<PoolSnapshot>,
    /// Each connected client.
    pub clients: Vec<ClientSnapshot>,
    /// Command time, microseconds.
    pub query_us: hdrhistogram::Histogram<u64>,
    /// Backlog wait, microseconds.
    pub backlog_wait_us: hdrhistogram::Histogram<u64>,
    /// Backend connect time, microseconds.
    pub connect_us: hdrhistogram::Histogram<u64>,
    /// Whether handing out backend connections is paused.
    pub paused: bool,
    /// Statement digests by key.
    pub digests: Vec<(u64, crate::digest::DigestStats)>,
    /// Clients pinned so far, by the digest of the statement that pinned them.
    pub pins_by_digest: std::collections::HashMap<u64, u64>,
    /// Statements each query rule matched since the rules last
    /// changed, by the rule's place in `query_rules`.
    pub rule_hits: Vec<(usize, u64)>,
    /// Replies in the core's query cache, and the bytes they take.
    pub query_cache: (usize, usize),
}

/// One pool (one backend on one core).
#[derive(Debug, Clone)]
pub struct PoolSnapshot {
    /// Backend name.
    pub backend: String,
    /// Its address.
    pub address: String,
    /// Hostgroup.
    pub hostgroup: String,
    /// Routing weight.
    pub weight: u32,
    /// `up`, `down`, `drained` (by an operator, no connection left),
    /// `draining` (drained, connections still open) or `retiring` (left
    /// over from a removed, undrained or replaced backend, connections
    /// still open).
    pub status: &'static str,
    /// Left over from a removed, undrained or replaced backend: forgotten
    /// once its last connection closes.
    pub retired: bool,
    /// Drained by an operator (`backends[].drained`).
    pub drained: bool,
    /// The health monitor's verdict, whether or not the pool drains.
    pub healthy: bool,
    /// The server said `read_only=ON`.
    pub read_only: bool,
    /// It takes its hostgroup's writes now: up, in service, writable,
    /// checked, and among the hostgroup's `max_writers`.
    pub takes_writes: bool,
    /// Replication lag, when known.
    pub lag: Option<Duration>,
    /// Time since the health monitor last reported, if it has.
    pub last_check: Option<Duration>,
    /// Connection counts.
    pub counts: PoolCounts,
    /// Connections held by pinned clients.
    pub pinned: usize,
    /// The pool's limit.
    pub max: usize,
}

/// One connected client.
#[derive(Debug, Clone)]
pub struct ClientSnapshot {
    /// Its connection id.
    pub id: ClientId,
    /// User.
    pub user: String,
    /// Address.
    pub peer: String,
    /// Current schema.
    pub schema: Option<String>,
    /// `idle`, `waiting` (for a backend connection) or `running`.
    pub state: &'static str,
    /// Why it holds a backend connection between commands, if it does.
    pub pinned: Option<&'static str>,
    /// Time in the current state.
    pub for_how_long: Duration,
    /// Binary prepared statements it holds open (`client.max_prepared_statements`
    /// bounds them).
    pub prepared_statements: usize,
    /// How long its open transaction has been open (from the arrival of
    /// the command that opened it); `None` outside a transaction.
    pub transaction_for: Option<Duration>,
    /// The shape of the statement it waits for a connection for or runs
    /// (literals as `?`); `None` while idle.
    pub statement: Option<String>,
}

/// A shard's counters since start; the admin interface sums them over the
/// cores with [`Counters::add`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// Client connections accepted so far.
    pub clients_accepted: u64,
    /// Client connections refused (limits, failed logins).
    pub clients_refused: u64,
    /// Client sessions ended by a panic (a bug in Funnel).
    pub session_panics: u64,
    /// Commands received.
    pub commands: u64,
    /// Commands forwarded to a backend.
    pub forwarded: u64,
    /// Errors Funnel generated.
    pub funnel_errors: u64,
    /// `SET`s answered from a backend's earlier reply (`learned_sets.rs`).
    pub sets_answered_locally: u64,
    /// `CALL`s of declared stateless procedures that gave the connection back.
    pub calls_unpinned: u64,
    /// Reads answered from the query cache.
    pub query_cache_hits: u64,
    /// Reads a rule with `cache_ttl` matched that a server answered.
    pub query_cache_misses: u64,
    /// MariaDB bulk executes forwarded.
    pub bulk_executes: u64,
    /// Commands that waited in the backlog.
    pub backlog_waits: u64,
    /// Commands that gave up waiting.
    pub backlog_timeouts: u64,
    /// Commands refused because the backlog was full.
    pub backlog_full: u64,
    /// Backend connections opened so far.
    pub backend_opened: u64,
    /// Backend connection attempts that failed.
    pub backend_open_failures: u64,
    /// Health checks that failed and counted toward marking a backend down.
    pub health_checks_failed: u64,
    /// Backend connections Funnel closed (unusable, stale, idle too long, too old).
    pub backend_discarded: u64,
    /// Backend connections reset before reuse after a failed statement
    /// that may have run stored code.
    pub backend_resets: u64,
    /// Backend connections given another client's pool key instead of a new one.
    pub connections_switched: u64,
    /// Causal reads that waited on a replica.
    pub causal_waits: u64,
    /// Causal reads on a replica known to have the session's writes.
    pub causal_waits_skipped: u64,
    /// Causal reads sent to the writer instead of a replica.
    pub causal_reads_on_writer: u64,
    /// Reads of the writer's GTID position for universal causal reads.
    pub causal_position_reads: u64,
    /// Universal causal reads that shared another read's position read.
    pub causal_positions_shared: u64,
    /// `SET`s run to bring connections in line with sessions.
    pub state_syncs: u64,
    /// Statements prepared on a connection at their first execute there.
    pub reprepares: u64,
    /// Prepares of a known text described by a server again.
    pub prepares_rechecked: u64,
    /// Prepares answered from the registry.
    pub prepares_from_registry: u64,
    /// Statistics snapshots the core built for the admin and metrics listeners.
    pub snapshots: u64,
    /// Bytes from clients.
    pub bytes_from_clients: u64,
    /// Bytes to clients.
    pub bytes_to_clients: u64,
    /// Lines the core wrote to the query log.
    pub query_log_lines: u64,
    /// Lines the query log dropped (its writes fell behind or failed).
    pub query_log_dropped: u64,
}

impl Counters {
    /// Adds another core's counters to these.
    pub fn add(&mut self, o: &Counters) {
        self.clients_accepted += o.clients_accepted;
        self.clients_refused += o.clients_refused;
        self.session_panics += o.session_panics;
        self.commands += o.commands;
        self.forwarded += o.forwarded;
        self.sets_answered_locally += o.sets_answered_locally;
        self.calls_unpinned += o.calls_unpinned;
        self.query_cache_hits += o.query_cache_hits;
        self.query_cache_misses += o.query_cache_misses;
        self.bulk_executes += o.bulk_executes;
        self.funnel_errors += o.funnel_errors;
        self.backlog_waits += o.backlog_waits;
        self.backlog_timeouts += o.backlog_timeouts;
        self.backlog_full += o.backlog_full;
        self.backend_opened += o.backend_opened;
        self.backend_open_failures += o.backend_open_failures;
        self.health_checks_failed += o.health_checks_failed;
        self.backend_discarded += o.backend_discarded;
        self.backend_resets += o.backend_resets;
        self.connections_switched += o.connections_switched;
        self.causal_waits += o.causal_waits;
        self.causal_waits_skipped += o.causal_waits_skipped;
        self.causal_reads_on_writer += o.causal_reads_on_writer;
        self.causal_position_reads += o.causal_position_reads;
        self.causal_positions_shared += o.causal_positions_shared;
        self.state_syncs += o.state_syncs;
        self.reprepares += o.reprepares;
        self.prepares_rechecked += o.prepares_rechecked;
        self.prepares_from_registry += o.prepares_from_registry;
        self.snapshots += o.snapshots;
        self.bytes_from_clients += o.bytes_from_clients;
        self.bytes_to_clients += o.bytes_to_clients;
        self.query_log_lines += o.query_log_lines;
        self.query_log_dropped += o.query_log_dropped;
    }
}
