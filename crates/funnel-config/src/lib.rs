//! Funnel's YAML configuration: serde structs with defaults, human-friendly durations and sizes,
//! and validation that reports every problem with its path.
//!
//! Load with [`Config::load`] (a file) or [`Config::from_yaml_str`] (text); both validate.
//! Print with [`Config::to_yaml_string`], which redacts secrets. `examples/funnel.yaml` at the
//! repository root shows every key.

mod address;
mod cores;
mod credential;
mod duration;
mod error;
mod host_pattern;
mod listen;
mod load;
mod model;
mod procedures;
mod show;
mod size;
mod validate;

pub use cores::Cores;
pub use credential::Credential;
pub use duration::{HumanDuration, ParseDurationError};
pub use error::{ConfigError, Problem};
pub use host_pattern::HostPattern;
pub use listen::ListenAddrs;
pub use model::{
    AdminConfig, Backend, BackendTls, BackendTlsMode, BacklogConfig, CausalReads, ClientConfig, Config,
    HostgroupConfig, LogConfig, LogLevel, MetricsConfig, MonitorConfig, PoolConfig, QueryCacheConfig,
    QueryLogConfig, QueryRule, SchemaLimit, TlsFiles, User, DEFAULT_HOSTGROUP,
    DEFAULT_MAX_PREPARED_PER_CLIENT, MAX_PREPARED_PER_CORE,
};
pub use procedures::procedure_matches;
pub use show::REDACTED;
pub use size::{ByteSize, ParseByteSizeError};

#[cfg(test)]
mod tests;
