//! The operator's side of Funnel: an admin listener that speaks the MySQL
//! protocol (so the `mysql` CLI and any driver work) and a Prometheus HTTP
//! endpoint. Both run on their own threads, away from the cores: every
//! figure comes from the cores' snapshots over their control channels, so
//! statistics never slow the data path.

pub mod commands;
pub mod conn_slots;
pub mod http;
pub mod merge;
pub mod metrics;
pub mod resultset;
pub mod server;

pub use http::MetricsServer;
pub use server::{AdminContext, AdminServer};

use std::io;
use std::path::PathBuf;
use std::time::Instant;

use funnel_config::{Config, Credential};
use funnel_engine::ProxyHandle;
use funnel_protocol::auth::NativePasswordHash;

/// The listeners a configuration asks for.
pub struct Listeners {
    /// The admin listener (`admin:` section).
    pub admin: Option<AdminServer>,
    /// The Prometheus listener (`metrics:` section).
    pub metrics: Option<MetricsServer>,
}

/// Starts the admin and metrics listeners `config` asks for.
pub fn start(config: &Config, handle: ProxyHandle, config_path: Option<PathBuf>) -> io::Result<Listeners> {
    let admin = match &config.admin {
        Some(a) => {
            let secret = match a.credential() {
                Some(Credential::ClearText(pw)) => NativePasswordHash::from_password(pw.as_bytes()),
                Some(Credential::NativeHash(h)) => NativePasswordHash::Hash(h),
                None => NativePasswordHash::Empty,
            };
            let ctx = AdminContext {
                handle: handle.clone(),
                config_path,
                started: Instant::now(),
            };
            Some(AdminServer::start(a.listen, a.user.clone(), secret, ctx)?)
        }
        None => None,
    };
    let metrics = match &config.metrics {
        Some(m) => Some(MetricsServer::start(
            m.listen,
            handle,
            config.cores.shard_count(),
        )?),
        None => None,
    };
    Ok(Listeners { admin, metrics })
}
