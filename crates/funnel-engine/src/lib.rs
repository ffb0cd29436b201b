//! Funnel's engine: one shard per core, each owning its listener, its client
//! sessions and its private backend pool. Cores share nothing on the data
//! path; they talk only through [`control`] messages.
//!
//! A query's path: [`listener`] accepts on the core's `SO_REUSEPORT` socket →
//! [`shard`] spawns a [`session`] → the session plans the command
//! ([`session::command`]), leases a connection from the [`pool`] (waiting in
//! the [`backlog`] when all are busy), forwards the command, and [`relay`]
//! streams the response back while the protocol tracker finds its end.

pub mod affinity;
pub mod backends;
pub mod backlog;
pub mod caps;
pub mod causal;
pub mod cert_expiry;
pub mod column_cache;
pub mod compress;
pub mod control;
pub mod control_channel;
pub mod digest;
pub mod error;
pub mod ids;
pub mod iobuf;
pub mod kill;
pub mod learned_sets;
pub mod listener;
pub mod lograte;
pub mod monitor;
pub mod oneshot;
pub mod packet_io;
pub mod pool;
pub mod prepared;
pub mod proxy;
pub mod proxy_protocol;
pub mod query_cache;
pub mod query_log;
pub mod relay;
pub mod router;
pub mod rt;
pub mod rules;
pub mod schema_trust;
pub mod session;
pub mod shard;
pub mod spin_gate;
pub mod stats;
pub mod tls;

pub use control::{ClientSnapshot, Counters, PoolSnapshot, ShardSnapshot};
pub use error::EngineError;
pub use proxy::{Proxy, ProxyHandle, StartError, Stopper};
