//! The only messages that cross cores: control, never data. Each shard
//! polls its receiver between other work; the sender side lives with the
//! [`crate::Proxy`] handle (and later the admin interface).

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
    /// Apply a reloaded, validated configuration (backends resolved).
    Reload {
        /// The new configuration.
        config: Box<funnel_config::Config>,
        /// Its backends, resolved.
        backends: Vec<BackendSpec>,
        /// Per-user connection counters (running counts kept).
        user_counters: crate::session::users::UserCounters,
    },
    /// The health monitor's latest verdict on one backend.
    Health {
        /// Backend name.
        backend: String,
        /// Up or down.
        health: Health,
        /// The server said `read_only=ON`.
        read_only: bool,
        /// Replication lag, when it is a replica.
        lag: Option<std::time::Duration>,
    },
    /// Kill one of this shard's clients (or only its running query).
    Kill {
        /// The client.
        target: ClientId,
        /// Only the running statement.
        query_only: bool,
        /// Who asks (only the same user may kill).
        user: String,
        /// Where the outcome goes.
        reply: crossbeam_channel::Sender<Result<(), KillRefused>>,
    },
}

/// What a shard reports about itself.
#[derive(Debug, Clone)]
pub struct ShardSnapshot {
    /// Which shard.
    pub shard: ShardId,
    /// Client connections open now.
    pub clients_active: u64,
    /// Client connections accepted so far.
    pub clients_accepted: u64,
    /// Commands received.
    pub commands: u64,
    /// Commands forwarded to a backend.
    pub forwarded: u64,
    /// Errors Funnel generated.
    pub funnel_errors: u64,
    /// Commands that waited in the backlog.
    pub backlog_waits: u64,
    /// Commands that gave up waiting.
    pub backlog_timeouts: u64,
    /// Backend connections opened so far.
    pub backend_opened: u64,
    /// Backend connections closed as unusable.
    pub backend_discarded: u64,
    /// The pool's occupancy.
    pub pool: PoolCounts,
}
