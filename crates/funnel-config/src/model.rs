//! The config structs, one per YAML section, with their defaults.
//!
//! Every struct denies unknown keys: a misspelt `max_per_cor` must be an error, not a setting
//! silently left at its default. Rules that span fields live in `validate.rs`, so that all
//! problems are reported together instead of serde stopping at the first.

use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, ToSocketAddrs};
use std::path::PathBuf;

use serde::{Deserialize, Deserializer, Serialize};

use crate::address::{split_host_port, unix_socket_path};
use crate::cores::Cores;
use crate::credential::{credential, Credential};
use crate::duration::HumanDuration;
use crate::listen::ListenAddrs;
use crate::size::ByteSize;

/// An optional section: left out, it is `None`; written with nothing under
/// it (`metrics:` whose only line is commented out, which YAML reads as
/// null), it is the section with its defaults, as `pool:` is, and a
/// section with required keys reports them missing. Plain `Option` would
/// read that null as the section left out, silently turning off the
/// metrics listener or a backend's TLS.
fn section<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    struct Section<T>(std::marker::PhantomData<T>);

    impl<'de, T: Deserialize<'de>> serde::de::Visitor<'de> for Section<T> {
        type Value = Option<T>;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a section")
        }

        // Built here, inside the YAML deserializer, so that an error (a
        // required key missing) carries the section's path and line.
        fn visit_none<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            let empty = serde::de::value::MapDeserializer::<_, E>::new(std::iter::empty::<(&str, &str)>());
            T::deserialize(empty).map(Some)
        }

        fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            self.visit_none()
        }

        fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
            T::deserialize(serde::de::value::MapAccessDeserializer::new(map)).map(Some)
        }
    }

    // `deserialize_any`, not `deserialize_option`: serde_yaml gives an
    // error raised at a null the section's path and line only there.
    deserializer.deserialize_any(Section(std::marker::PhantomData))
}

/// A listen address, `IP:port`. serde's own error for anything else
/// ("invalid socket address syntax") does not say what is expected, and
/// the usual slips are a host name (`localhost:6033`), a bare port or
/// PgBouncer's `*`.
pub(crate) fn listen_addr<'de, D: Deserializer<'de>>(deserializer: D) -> Result<SocketAddr, D::Error> {
    struct ListenAddr;

    impl ListenAddr {
        fn error<E: serde::de::Error>(written: &str) -> E {
            E::custom(format!(
                "{written:?} is not IP:port: give an IP address and a port, such as 0.0.0.0:6033 \
                 (every interface), 127.0.0.1:6033 or [::]:6033; a host name is not resolved here"
            ))
        }
    }

    // Inside the YAML deserializer, so that the error carries the key's path and line.
    impl serde::de::Visitor<'_> for ListenAddr {
        type Value = SocketAddr;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("IP:port")
        }

        fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<SocketAddr, E> {
            v.parse().map_err(|_| Self::error(v))
        }

        fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<SocketAddr, E> {
            Err(Self::error(&v.to_string()))
        }

        fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<SocketAddr, E> {
            Err(Self::error(&v.to_string()))
        }
    }

    deserializer.deserialize_any(ListenAddr)
}

/// The hostgroup of a backend that does not name one, and of a user that does not pick one.
pub const DEFAULT_HOSTGROUP: &str = "default";

/// `idle_poll`'s default: longer than a point select's round trip to a
/// server on the same host, so that at low concurrency a core is awake
/// when the answer comes (see docs/configuration.md).
fn default_idle_poll() -> HumanDuration {
    HumanDuration::from_micros(300)
}

/// Funnel's whole configuration: the top level of the YAML file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Where clients connect: one `IP:port` or a list (every core listens
    /// on each with SO_REUSEPORT).
    pub listen: ListenAddrs,
    /// A Unix socket clients on this host may connect to as well (every core
    /// accepts on it); `None` means TCP only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listen_socket: Option<PathBuf>,
    /// How many cores to run on, or which CPUs; default one core.
    #[serde(default)]
    pub cores: Cores,
    /// How long a core keeps polling for work after it runs out, before it
    /// sleeps, while the host's CPUs are not contended; 0 turns it off.
    #[serde(default = "default_idle_poll")]
    pub idle_poll: HumanDuration,
    /// The client accounts Funnel accepts.
    pub users: Vec<User>,
    /// The MySQL/MariaDB servers Funnel forwards to.
    pub backends: Vec<Backend>,
    /// Backend connection pools.
    #[serde(default)]
    pub pool: PoolConfig,
    /// Clients waiting for a backend connection.
    #[serde(default)]
    pub backlog: BacklogConfig,
    /// Client connection limits and timeouts.
    #[serde(default)]
    pub client: ClientConfig,
    /// The admin listener; `None` means no admin listener.
    #[serde(
        default,
        deserialize_with = "section",
        skip_serializing_if = "Option::is_none"
    )]
    pub admin: Option<AdminConfig>,
    /// The Prometheus HTTP listener; `None` means no metrics listener.
    #[serde(
        default,
        deserialize_with = "section",
        skip_serializing_if = "Option::is_none"
    )]
    pub metrics: Option<MetricsConfig>,
    /// Logging.
    #[serde(default)]
    pub log: LogConfig,
    /// Ordered query rules: the first that matches a statement applies.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub query_rules: Vec<QueryRule>,
    /// Settings of whole hostgroups (those not listed take the defaults).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hostgroups: Vec<HostgroupConfig>,
    /// The query cache of rules with `cache_ttl`.
    #[serde(default)]
    pub query_cache: QueryCacheConfig,
    /// The query log: statements written to a file, one JSON line each.
    #[serde(default)]
    pub query_log: QueryLogConfig,
    /// Backend health checks.
    #[serde(default)]
    pub monitor: MonitorConfig,
    /// Per-schema caps on backend connections.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub schema_limits: Vec<SchemaLimit>,
    /// Procedures (`schema.name`, `*` for any schema or any name) the
    /// operator vouches leave nothing on a connection that the server does
    /// not report: a `CALL` of one does not keep its client's connection.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stateless_procedures: Vec<String>,
}

/// Settings of one hostgroup.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostgroupConfig {
    /// The hostgroup, as its backends name it.
    pub name: String,
    /// At most this many of its writable backends take writes at once
    /// (the first by weight, then by their order under `backends`); the
    /// others take reads only, until one of those goes. Unset: all of them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_writers: Option<u32>,
}

/// A cap on the backend connections used for one schema.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SchemaLimit {
    /// The schema (the client's current one when it runs a command).
    pub schema: String,
    /// Backend connections its clients may hold at once on each core, >= 1.
    pub max_backend_connections_per_core: u32,
}

/// A query rule: statements that match are rewritten, go to `hostgroup`,
/// are refused with `error`, or are stopped after `timeout`. Rules with
/// `apply: false` chain: the later ones that match add their actions.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueryRule {
    /// Matches statements starting with this text (case-insensitive, after
    /// leading spaces and comments).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub match_prefix: Option<String>,
    /// Matches statements this regular expression finds (anywhere; anchor it with `^`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub match_regex: Option<String>,
    /// Matches statements whose shape (as `SHOW DIGESTS` shows it:
    /// literals as `?`, spaces and comments folded) this regular
    /// expression finds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub match_digest: Option<String>,
    /// Matches the statements the pattern does not match instead
    /// (`user`, `schema` and `client_addr` still narrow it).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub negate_match: bool,
    /// Only for this user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Only while the client's current schema is this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<String>,
    /// Only for clients from this address or network (`10.0.0.0/8`), or
    /// of Funnel's Unix socket (`localhost`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_addr: Option<crate::HostPattern>,
    /// Where matching statements go (default: the user's hostgroups).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostgroup: Option<String>,
    /// Refuse matching statements with this message (ERR 1148), sending
    /// nothing to a server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Stop a matching statement still running after this long (`KILL
    /// QUERY`; the client gets ERR 1969).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<HumanDuration>,
    /// Rewrite the statement: every match of `match_regex` is replaced by
    /// this text (`$1`, `${name}` for its groups) before Funnel reads it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rewrite: Option<String>,
    /// Answer a matching read from the core's query cache for this long
    /// after a server answered it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_ttl: Option<HumanDuration>,
    /// Write matching statements to the query log (`true`), or keep them
    /// out of it when `query_log.all` logs the rest (`false`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log: Option<bool>,
    /// Answer matching text queries with an OK carrying this message,
    /// sending nothing to a server (ProxySQL's `OK_msg`): for statements
    /// an application sends that the servers behind Funnel must not run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ok: Option<String>,
    /// Hold matching statements this long before they run, with no
    /// backend connection taken meanwhile (ProxySQL's `delay`): a throttle.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay: Option<HumanDuration>,
    /// Keep the client on the backend connection a matching statement ran
    /// on, for the rest of its session (ProxySQL's `multiplex: 0`): for
    /// statements that leave state on the connection Funnel cannot see.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub pin: bool,
    /// Evaluation stops at this rule when it matches (ProxySQL's `apply`,
    /// here `true` by default); `false` goes on with the later rules,
    /// whose actions add to this one's.
    #[serde(default = "default_true", skip_serializing_if = "is_true")]
    pub apply: bool,
    /// The rule is tried only while the evaluation's flag is this one
    /// (ProxySQL's `flagIN`): it starts at 0, and a matching rule with
    /// `flag_out` changes it.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub flag_in: u32,
    /// A match sets the evaluation's flag to this (ProxySQL's `flagOUT`):
    /// the later rules tried are those with this `flag_in`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flag_out: Option<u32>,
}

fn is_true(b: &bool) -> bool {
    *b
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// How Funnel watches its backends.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MonitorConfig {
    /// Time between checks of each backend.
    pub interval: HumanDuration,
    /// Deadline for one check (connect, ping, read_only, replication lag).
    pub timeout: HumanDuration,
    /// Consecutive failed checks before a backend is marked down.
    pub failures_before_down: u32,
    /// Account the checks log in with (default: each backend's own user),
    /// so health checks never count against the pools' connections.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Its password.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// A Galera node that is a donor or desynced (`wsrep_local_state` 2)
    /// stays in rotation, rather than being taken out as it lags.
    pub galera_donors_serve: bool,
}

impl Default for MonitorConfig {
    fn default() -> Self {
        MonitorConfig {
            interval: HumanDuration::from_secs(1),
            timeout: HumanDuration::from_secs(1),
            failures_before_down: 2,
            user: None,
            password: None,
            galera_donors_serve: false,
        }
    }
}

/// A client account.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct User {
    /// The user name clients log in with.
    pub name: String,
    /// The password in clear text (`""` is a valid empty password); exclusive with
    /// `password_hash`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// The mysql_native_password hash, `*` and 40 hex digits; exclusive with `password`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_hash: Option<String>,
    /// The schema selected when the client names none at login.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_schema: Option<String>,
    /// Where this user's queries go; `None` means [`DEFAULT_HOSTGROUP`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_hostgroup: Option<String>,
    /// Where this user's reads may go; `None` means reads go to the default hostgroup.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_hostgroup: Option<String>,
    /// Client connections allowed for this user across all cores; 0 means no limit.
    #[serde(default)]
    pub max_connections: u32,
    /// When no backend of `read_hostgroup` is available, reads go to the
    /// default hostgroup instead of failing.
    #[serde(default = "default_true")]
    pub read_fallback: bool,
    /// Backend connections this user's clients may hold at once on each core; 0 = no limit.
    #[serde(default)]
    pub max_backend_connections_per_core: u32,
    /// Refuse this user's logins that do not use TLS.
    #[serde(default)]
    pub require_tls: bool,
    /// Where this user may log in from (`localhost` for Funnel's Unix
    /// socket, an address, or a network such as `10.0.0.0/8`); any host
    /// when left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_hosts: Option<Vec<crate::HostPattern>>,
    /// Read-your-writes for split reads: `true` (per session) waits, on
    /// a replica, for the writes this user's session committed;
    /// `universal` for every write any client committed before the read
    /// arrived. A replica that does not catch up within
    /// `causal_reads_timeout` leaves the read to the writer. Needs MariaDB
    /// with GTIDs (binary logging on the writers).
    #[serde(default)]
    pub causal_reads: CausalReads,
    /// How long a replica may take to catch up with a session's writes
    /// before its read runs on the writer instead.
    #[serde(default = "default_causal_reads_timeout")]
    pub causal_reads_timeout: HumanDuration,
}

fn default_true() -> bool {
    true
}

/// `users[].causal_reads`: which writes a read the split sends to a
/// replica waits for. Written `false`, `true` or `universal`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum CausalReads {
    /// `false`: none, a replica serves what it has.
    #[default]
    Off,
    /// `true`: the writes of the read's own client connection (MaxScale's
    /// `causal_reads = local`).
    Session,
    /// `universal`: every write committed before the read arrived, from
    /// any client (the writer's GTID position, read after the read
    /// arrived; MaxScale's `causal_reads = universal`).
    Universal,
}

impl CausalReads {
    /// True unless `Off`.
    pub fn is_on(self) -> bool {
        self != CausalReads::Off
    }
}

impl Serialize for CausalReads {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            CausalReads::Off => serializer.serialize_bool(false),
            CausalReads::Session => serializer.serialize_bool(true),
            CausalReads::Universal => serializer.serialize_str("universal"),
        }
    }
}

impl<'de> Deserialize<'de> for CausalReads {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(CausalReadsVisitor)
    }
}

/// A hand-written visitor, as for `cores`: `#[serde(untagged)]` would say
/// only "data did not match any variant".
struct CausalReadsVisitor;

impl serde::de::Visitor<'_> for CausalReadsVisitor {
    type Value = CausalReads;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("true (the session's own writes), false, or universal (every client's writes)")
    }

    fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<CausalReads, E> {
        Ok(if v { CausalReads::Session } else { CausalReads::Off })
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<CausalReads, E> {
        match v {
            "universal" => Ok(CausalReads::Universal),
            _ => Err(E::invalid_value(serde::de::Unexpected::Str(v), &self)),
        }
    }
}

fn default_causal_reads_timeout() -> HumanDuration {
    HumanDuration::from_secs(1)
}

impl User {
    /// The secret to check logins against; `None` only for a user that fails validation.
    pub fn credential(&self) -> Option<Credential<'_>> {
        credential(self.password.as_deref(), self.password_hash.as_deref())
    }

    /// The hostgroup this user's queries go to.
    pub fn effective_default_hostgroup(&self) -> &str {
        self.default_hostgroup.as_deref().unwrap_or(DEFAULT_HOSTGROUP)
    }

    /// The hostgroup this user's reads may go to: `read_hostgroup`, else the default one.
    pub fn effective_read_hostgroup(&self) -> &str {
        self.read_hostgroup
            .as_deref()
            .unwrap_or_else(|| self.effective_default_hostgroup())
    }

    /// The per-user connection limit, `None` when unlimited.
    pub fn connection_limit(&self) -> Option<u32> {
        (self.max_connections > 0).then_some(self.max_connections)
    }
}

/// A MySQL/MariaDB server Funnel forwards to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Backend {
    /// A unique name, used in logs, metrics and admin commands.
    pub name: String,
    /// `host:port`, where the host may be a DNS name, resolved when connecting; or the absolute
    /// path of the server's Unix socket when it runs on this host.
    pub address: String,
    /// The account Funnel logs in to the backend with.
    pub user: String,
    /// That account's password, in clear text because the backend's scramble needs it.
    pub password: String,
    /// The hostgroup this backend serves; users route to hostgroups, not to backends.
    #[serde(default = "default_hostgroup")]
    pub hostgroup: String,
    /// Share of its hostgroup's traffic, relative to the other members; at least 1.
    #[serde(default = "default_weight")]
    pub weight: u32,
    /// Stop routing reads here when replication lags more than this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_replication_lag: Option<HumanDuration>,
    /// Overrides `pool.max_per_core` for this backend.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_per_core: Option<u32>,
    /// TLS toward this backend; `None`: plaintext.
    #[serde(
        default,
        deserialize_with = "section",
        skip_serializing_if = "Option::is_none"
    )]
    pub tls: Option<BackendTls>,
    /// Taken out of service by an operator (maintenance, a replica being rebuilt): it stays
    /// configured and visible, but no command is routed to it.
    #[serde(default)]
    pub drained: bool,
}

/// TLS toward one backend, named after MySQL's `--ssl-mode` values.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackendTls {
    /// How much of the server's certificate is checked.
    #[serde(default)]
    pub mode: BackendTlsMode,
    /// CA certificates (PEM) the server's chain must lead to; needed by `verify_ca` and `verify_identity`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca: Option<std::path::PathBuf>,
    /// The name the certificate must carry under `verify_identity`; default: the host of `address`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_name: Option<String>,
}

/// How a backend's certificate is checked.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BackendTlsMode {
    /// Encrypt, trust any certificate (protects against passive listeners only).
    #[default]
    Required,
    /// The chain must lead to `ca`; the name is not checked.
    VerifyCa,
    /// The chain must lead to `ca` and name the server.
    VerifyIdentity,
}

fn default_hostgroup() -> String {
    DEFAULT_HOSTGROUP.to_owned()
}

fn default_weight() -> u32 {
    1
}

impl Backend {
    /// The socket path when the address names a Unix socket.
    pub fn unix_socket(&self) -> Option<&std::path::Path> {
        unix_socket_path(&self.address)
    }

    /// The address split into host and port; `None` for a Unix socket and for a backend that
    /// fails validation.
    pub fn host_port(&self) -> Option<(&str, u16)> {
        split_host_port(&self.address).ok()
    }

    /// Resolves the address to socket addresses. Blocks on DNS for a host name, so call it at
    /// startup or off the shard's event loop.
    pub fn resolve(&self) -> io::Result<Vec<SocketAddr>> {
        let (host, port) = split_host_port(&self.address)
            .map_err(|message| io::Error::new(io::ErrorKind::InvalidInput, message))?;
        Ok((host, port).to_socket_addrs()?.collect())
    }

    /// Connections allowed per core for this backend: its override, else the pool's.
    pub fn effective_max_per_core(&self, pool: &PoolConfig) -> u32 {
        self.max_per_core.unwrap_or(pool.max_per_core)
    }
}

/// Backend connection pools; each core has its own pool per backend.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PoolConfig {
    /// Backend connections per backend per core; at least 1.
    pub max_per_core: u32,
    /// Idle connections kept open per backend per core; at most `max_per_core`.
    pub min_idle_per_core: u32,
    /// Close connections idle longer than this (above `min_idle_per_core`); 0 means never.
    pub idle_timeout: HumanDuration,
    /// Close connections older than this once they are idle; 0 means never.
    pub max_lifetime: HumanDuration,
    /// Deadline for connecting and logging in to a backend; must be more than 0.
    pub connect_timeout: HumanDuration,
    /// Deadline for a backend to answer a query; 0 means none.
    pub query_timeout: HumanDuration,
}

impl Default for PoolConfig {
    fn default() -> Self {
        PoolConfig {
            max_per_core: 16,
            min_idle_per_core: 2,
            idle_timeout: HumanDuration::from_secs(60),
            max_lifetime: HumanDuration::from_secs(3600),
            connect_timeout: HumanDuration::from_secs(5),
            query_timeout: HumanDuration::ZERO,
        }
    }
}

/// The query cache of rules with `cache_ttl`, one per core.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QueryCacheConfig {
    /// Memory the cached replies of one core may take; the least recently
    /// used go first.
    pub max_memory_per_core: ByteSize,
    /// A reply larger than this is not cached.
    pub max_result_size: ByteSize,
}

impl Default for QueryCacheConfig {
    fn default() -> Self {
        QueryCacheConfig {
            max_memory_per_core: ByteSize::mib(32),
            max_result_size: ByteSize::mib(1),
        }
    }
}

/// The query log: one JSON line per statement it takes, appended to one
/// file by every core.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QueryLogConfig {
    /// The file lines are appended to (created if missing); unset: no log.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<PathBuf>,
    /// Log every statement but those of rules with `log: false` (else only
    /// those of rules with `log: true`).
    pub all: bool,
    /// Only statements that took at least this long (a slow query log).
    pub min_duration: HumanDuration,
    /// The most of a statement's text a line keeps.
    pub max_text: ByteSize,
}

impl Default for QueryLogConfig {
    fn default() -> Self {
        QueryLogConfig {
            path: None,
            all: false,
            min_duration: HumanDuration::ZERO,
            max_text: ByteSize(4 << 10),
        }
    }
}

/// Clients waiting for a backend connection when the pool is exhausted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BacklogConfig {
    /// Waiting clients per core before new ones are refused at once; 0 means never wait.
    pub max_waiting_per_core: u32,
    /// How long a client waits before it gets an error; must be more than 0.
    pub wait_timeout: HumanDuration,
}

impl Default for BacklogConfig {
    fn default() -> Self {
        BacklogConfig {
            max_waiting_per_core: 10_000,
            wait_timeout: HumanDuration::from_secs(10),
        }
    }
}

/// A certificate chain and its private key, PEM files.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFiles {
    /// The certificate chain (PEM).
    pub cert: std::path::PathBuf,
    /// The private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key: std::path::PathBuf,
}

/// Statements all clients of one core may hold together: the server's
/// default `max_prepared_stmt_count`, which counts every session's.
pub const MAX_PREPARED_PER_CORE: u32 = 16_382;

/// The default of `client.max_prepared_statements`: well above what
/// statement caches keep per connection (Connector/J's
/// `prepStmtCacheSize` is 25, tuned to 250-500; PgBouncer's
/// `max_prepared_statements` 200), and a sixteenth of a core's
/// [`MAX_PREPARED_PER_CORE`], so one client that never closes its
/// statements cannot take the core's whole budget.
pub const DEFAULT_MAX_PREPARED_PER_CLIENT: u32 = 1024;

/// Client connection limits and timeouts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClientConfig {
    /// Client connections across all cores; at least 1.
    pub max_connections: u32,
    /// Deadline for a client to finish the handshake and login; must be more than 0.
    pub handshake_timeout: HumanDuration,
    /// Close clients idle longer than this; 0 means never.
    pub idle_timeout: HumanDuration,
    /// Close clients idle this long inside a transaction (MariaDB's
    /// `idle_transaction_timeout`): the transaction rolls back and its
    /// backend connection is freed; 0 means never.
    pub idle_transaction_timeout: HumanDuration,
    /// Close clients whose transaction has been open this long, idle or
    /// running a statement (ProxySQL's `mysql-max_transaction_time`): a
    /// running statement is killed, the transaction rolls back and its
    /// backend connection is freed; 0 means never.
    pub max_transaction_time: HumanDuration,
    /// While a backend connection serves the client's command: how long a
    /// write of the response may wait for the client to read (MariaDB's
    /// `net_write_timeout`); 0 means forever.
    pub net_write_timeout: HumanDuration,
    /// While a backend connection serves the client's command: how long
    /// Funnel waits for the client's LOCAL INFILE data (MariaDB's
    /// `net_read_timeout`); 0 means forever.
    pub net_read_timeout: HumanDuration,
    /// Largest client packet accepted, like MySQL's max_allowed_packet; 1KiB to 1GiB.
    pub max_packet_size: ByteSize,
    /// Binary-protocol prepared statements one client connection may hold
    /// open; 1 to 16382 (the statements all clients of one core may hold
    /// together, as the server's `max_prepared_stmt_count`).
    pub max_prepared_statements: u32,
    /// TLS for client connections (clients that ask for it get it); `None`: no TLS.
    #[serde(deserialize_with = "section", skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsFiles>,
    /// Load balancers (addresses or networks) whose connections start with
    /// a PROXY protocol header naming the client's own address; `None`:
    /// no connection may send one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proxy_protocol_networks: Option<Vec<crate::HostPattern>>,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            max_connections: 20_000,
            handshake_timeout: HumanDuration::from_secs(10),
            idle_timeout: HumanDuration::ZERO,
            idle_transaction_timeout: HumanDuration::ZERO,
            max_transaction_time: HumanDuration::ZERO,
            net_write_timeout: HumanDuration::from_secs(60),
            net_read_timeout: HumanDuration::from_secs(30),
            max_packet_size: ByteSize::mib(64),
            max_prepared_statements: DEFAULT_MAX_PREPARED_PER_CLIENT,
            tls: None,
            proxy_protocol_networks: None,
        }
    }
}

/// The admin listener, which speaks the MySQL protocol (`SHOW CONFIG`, stats).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    /// Where the admin listener binds.
    #[serde(default = "default_admin_listen", deserialize_with = "listen_addr")]
    pub listen: SocketAddr,
    /// The admin user name.
    pub user: String,
    /// The admin password in clear text; exclusive with `password_hash`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// The admin mysql_native_password hash; exclusive with `password`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_hash: Option<String>,
}

fn default_admin_listen() -> SocketAddr {
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 6032))
}

impl AdminConfig {
    /// The secret to check admin logins against; `None` only for a config that fails validation.
    pub fn credential(&self) -> Option<Credential<'_>> {
        credential(self.password.as_deref(), self.password_hash.as_deref())
    }
}

/// The Prometheus HTTP listener.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsConfig {
    /// Where `/metrics` is served.
    #[serde(deserialize_with = "listen_addr")]
    pub listen: SocketAddr,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig {
            listen: SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 9633)),
        }
    }
}

/// Logging.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// The most verbose level printed.
    pub level: LogLevel,
}

/// A log level, most severe first.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    /// Only errors.
    Error,
    /// Errors and warnings.
    Warn,
    /// Normal operation.
    #[default]
    Info,
    /// Detail for debugging.
    Debug,
    /// Everything.
    Trace,
}

impl LogLevel {
    /// The level as written in the config, which is also what `tracing`'s filters accept.
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Error => "error",
            LogLevel::Warn => "warn",
            LogLevel::Info => "info",
            LogLevel::Debug => "debug",
            LogLevel::Trace => "trace",
        }
    }
}

impl std::fmt::Display for LogLevel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
