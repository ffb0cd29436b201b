//! Starting and stopping a whole Funnel: one shard per configured core,
//! each on its own pinned executor thread. Used by the binary and, on port
//! 0, by tests (as mini-redis's `start_server`).

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use funnel_config::{Config, ConfigError};
use funnel_protocol::handshake::HandshakeV10;

use crate::control::{ControlMsg, ShardSnapshot};
use crate::control_channel::{self, ControlSender};
use crate::ids::{ClientId, ShardId};
use crate::kill::KillRefused;
use crate::listener;
use crate::pool::addr::BackendAddr;
use crate::pool::conn::BackendSpec;
use crate::rt;
use crate::session::users::UserCounters;
use crate::shard::{self, Shard, ShardSetup};

/// Why Funnel could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The config asks for CPUs this process may not use (see [`crate::affinity`]).
    #[error("{0}")]
    Cores(ConfigError),
    /// A listen address could not be bound (nothing is left bound).
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// `listen` names no address (a config built without validation).
    #[error("listen: must name at least one IP:port")]
    NoListen,
    /// The client Unix socket could not be created.
    #[error("cannot listen on {}: {source}", path.display())]
    BindUnix {
        /// The socket's path (`listen_socket`).
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A backend's address did not resolve.
    #[error("backend {backend}: cannot resolve {address}: {reason}")]
    Resolve {
        /// Backend name.
        backend: String,
        /// Its configured address.
        address: String,
        /// Why.
        reason: String,
    },
    /// The TLS certificate or key is unusable.
    #[error("client.tls: {0}")]
    Tls(#[from] crate::tls::TlsError),
    /// A core's executor did not start; its own message says why.
    #[error(
        "core {shard} did not start (io_uring blocked or RLIMIT_MEMLOCK below 512 KiB are the usual causes; see the message above)"
    )]
    ShardFailed {
        /// The shard that failed.
        shard: u16,
    },
    /// A backend's TLS settings could not be loaded.
    #[error("backend {backend}: TLS: {reason}")]
    BackendTls {
        /// The backend's name.
        backend: String,
        /// What was wrong (a missing CA file, a bad server name).
        reason: String,
    },
    /// The query log's file could not be opened.
    #[error("query_log.path: cannot open {}: {source}", path.display())]
    QueryLog {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// An executor thread could not start.
    #[error("cannot start shard {shard}: {source}")]
    Spawn {
        /// Which shard.
        shard: u16,
        /// Why.
        source: std::io::Error,
    },
}

/// A running Funnel.
pub struct Proxy {
    /// Never empty: validation refuses an empty `listen`.
    addrs: Vec<SocketAddr>,
    handle: ProxyHandle,
    threads: Vec<JoinHandle<()>>,
}

/// The control plane of a running Funnel, cloneable across threads (signal
/// handling, the admin interface). It only ever sends control messages;
/// its lock guards the running configuration during a reload and is never
/// touched by a shard.
#[derive(Clone)]
pub struct ProxyHandle {
    controls: Vec<ControlSender>,
    running: Arc<Mutex<Running>>,
    /// The client Unix socket's file: removed (and its last extra
    /// descriptor closed) as Funnel stops accepting.
    socket_file: Arc<Mutex<Option<listener::UnixSocketFile>>>,
    /// A graceful stop has begun (from a signal or the admin interface).
    stopping: Arc<std::sync::atomic::AtomicBool>,
}

struct Running {
    /// The configuration the shards run with (what a reload compares against).
    config: Config,
    /// Per-user connection counters shared by the shards.
    user_counters: UserCounters,
    /// Client TLS as last built from `config.client.tls`'s files.
    tls: Option<crate::tls::ClientTls>,
    /// The backends as last resolved (their TLS with the CA files read).
    specs: Vec<BackendSpec>,
    /// Each core's share of `client.max_connections` as last sent.
    max_clients: u64,
    /// Sets the level of the process's log, where its owner gave a way
    /// (`None`: `log` changes only at a restart).
    log_level: Option<LogLevelSetter>,
}

/// Applies a new `log.level` to the process's log (the binary's subscriber).
pub type LogLevelSetter = Box<dyn Fn(funnel_config::LogLevel) + Send>;

/// Announced when no backend could be asked for its version at start.
const FALLBACK_VERSION: &str = "5.5.5-10.11.0-MariaDB-funnel";

impl Proxy {
    /// Binds the listeners and starts every shard.
    pub fn start(config: Config) -> Result<Proxy, StartError> {
        let allowed = crate::affinity::allowed_cpus();
        let cpus = config.cores.cpu_ids(&allowed).map_err(StartError::Cores)?;
        let idle_poll = config.idle_poll.as_duration();
        let tls = config
            .client
            .tls
            .as_ref()
            .map(crate::tls::server_config)
            .transpose()?;
        if let Some(t) = &tls {
            warn_of_expiry(t);
        }
        let specs = resolve_backends(&config, None)?;
        let query_log = open_query_log(&config)?;
        let greeting = probe_greetings(&specs).unwrap_or_else(|| Greeting {
            version: FALLBACK_VERSION.as_bytes().to_vec(),
            charset: funnel_protocol::charset::UTF8MB4_GENERAL_CI as u8,
            // Learned from the first connection opened (`Shard::extended_caps`).
            extended: None,
        });
        if config.listen.is_empty() {
            return Err(StartError::NoListen);
        }
        let listeners = listener::bind_all(&config.listen, cpus.len())
            .map_err(|(addr, source)| StartError::Bind { addr, source })?;
        let local = listeners[0]
            .iter()
            .zip(config.listen.iter())
            .map(|(l, &addr)| l.local_addr().map_err(|source| StartError::Bind { addr, source }))
            .collect::<Result<Vec<_>, _>>()?;
        let (mut unix_listeners, socket_file) = match &config.listen_socket {
            Some(path) => {
                let (ls, file) =
                    listener::bind_unix(path, cpus.len()).map_err(|source| StartError::BindUnix {
                        path: path.clone(),
                        source,
                    })?;
                (ls.into_iter().map(Some).collect(), Some(file))
            }
            None => (Vec::new(), None),
        };
        unix_listeners.resize_with(cpus.len(), || None);
        let shards = cpus.len() as u64;
        let max_clients = client_share(&config, shards, open_files_limit());
        warn_of_lowered_share(&config, shards, max_clients);
        let user_counters = UserCounters::for_users(&config.users, None);
        let mut controls = Vec::new();
        let mut threads = Vec::new();
        let (senders, receivers): (Vec<_>, Vec<_>) = (0..cpus.len())
            .map(|_| control_channel::channel())
            .collect::<std::io::Result<Vec<_>>>()
            .map_err(|source| StartError::Spawn { shard: 0, source })?
            .into_iter()
            .unzip();
        // Each shard says when it runs; one whose executor cannot start
        // (io_uring blocked, RLIMIT_MEMLOCK too low) drops its sender.
        let (ready_tx, ready_rx) = crossbeam_channel::unbounded::<u16>();
        let shard_inputs = cpus.into_iter().zip(listeners).zip(unix_listeners).zip(receivers);
        for (i, (((cpu, l), unix), rx)) in shard_inputs.enumerate() {
            let tx = senders[i].clone();
            let setup = ShardSetup {
                id: ShardId(i as u16),
                config: config.clone(),
                backends: specs.clone(),
                max_clients,
                version: greeting.version.clone(),
                charset: greeting.charset,
                extended: greeting.extended,
                peers: senders.clone(),
                user_counters: user_counters.clone(),
                tls: tls.as_ref().map(|t| t.config.clone()),
                query_log: query_log.clone(),
            };
            let name = format!("funnel-shard-{i}");
            let ready = ready_tx.clone();
            let handle = rt::spawn_executor(&name, Some(cpu), idle_poll, move || async move {
                let listener = match rt::Listener::from_std(l, unix) {
                    Ok(l) => l,
                    Err(e) => {
                        tracing::error!(error = %e, "cannot take over listener");
                        return;
                    }
                };
                let inbox = match rx.into_inbox() {
                    Ok(inbox) => inbox,
                    Err(e) => {
                        tracing::error!(error = %e, "cannot take over the control channel");
                        return;
                    }
                };
                let shard = Shard::new(setup);
                let _ = ready.send(i as u16);
                // Dropped now, not when the shard ends: once every running
                // shard has dropped its sender, a shard that never started
                // is noticed at once rather than after the 30 s wait.
                drop(ready);
                shard::run(shard, listener, inbox).await;
            })
            .map_err(|source| StartError::Spawn {
                shard: i as u16,
                source,
            })?;
            controls.push(tx);
            threads.push(handle);
        }
        drop(ready_tx);
        let proxy = Proxy {
            addrs: local,
            handle: ProxyHandle {
                controls,
                running: Arc::new(Mutex::new(Running {
                    config,
                    user_counters,
                    tls,
                    specs: specs.clone(),
                    max_clients,
                    log_level: None,
                })),
                socket_file: Arc::new(Mutex::new(socket_file)),
                stopping: Arc::default(),
            },
            threads,
        };
        let mut started = vec![false; proxy.threads.len()];
        while started.iter().any(|s| !s) {
            match ready_rx.recv_timeout(Duration::from_secs(30)) {
                Ok(i) => started[usize::from(i)] = true,
                Err(_) => {
                    let shard = started.iter().position(|s| !s).unwrap_or(0) as u16;
                    proxy.shutdown();
                    return Err(StartError::ShardFailed { shard });
                }
            }
        }
        Ok(proxy)
    }

    /// The address clients connect to (the real port when configured with
    /// 0): the first of `listen`'s.
    pub fn local_addr(&self) -> SocketAddr {
        self.addrs[0]
    }

    /// Every address clients connect to, in `listen`'s order (the real
    /// ports when configured with 0).
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// Applies a new, validated configuration (see [`ProxyHandle::reload`]).
    pub fn reload(&mut self, config: Config) -> Result<Vec<String>, StartError> {
        self.handle.reload(config)
    }

    /// Asks every shard for a snapshot.
    pub fn snapshots(&self) -> Vec<ShardSnapshot> {
        self.handle.snapshots()
    }

    /// Stops every shard and waits for their threads.
    pub fn shutdown(mut self) {
        self.stop();
    }

    /// Waits until the shards stop (they stop when shut down).
    pub fn wait(mut self) {
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }

    /// The control-plane handle (for the admin interface and signals).
    pub fn handle(&self) -> ProxyHandle {
        self.handle.clone()
    }

    /// A handle that can stop this proxy from another thread (signals).
    pub fn stopper(&self) -> Stopper {
        Stopper(self.handle.controls.clone())
    }

    fn stop(&mut self) {
        self.handle.shutdown();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop();
    }
}

impl ProxyHandle {
    /// Applies a new, validated configuration to every shard: users, query
    /// rules, pool sizes, limits and backends change live (removed backends
    /// drain), and client TLS's certificate and key are read again (a
    /// renewed certificate serves the next logins). Returns the keys that
    /// change only with a restart (listen, listen_socket, cores, admin,
    /// metrics, and log unless
    /// [`Self::set_log_level_setter`] gave a way): they keep their running
    /// values, so the running config shows what runs.
    pub fn reload(&self, config: Config) -> Result<Vec<String>, StartError> {
        let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        self.apply(&mut running, config, TlsFiles::ReadAgain)
    }

    /// Edits the running configuration and applies the result in one step:
    /// two edits at once (two admin sessions, an admin change and a SIGHUP)
    /// cannot lose each other's change. `edit` gets the running
    /// configuration and returns the next one, or why it refuses.
    pub fn update<E>(
        &self,
        edit: impl FnOnce(Config) -> Result<Config, E>,
    ) -> Result<Result<Vec<String>, StartError>, E> {
        let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        let next = edit(running.config.clone())?;
        Ok(self.apply(&mut running, next, TlsFiles::KeepUnlessChanged))
    }

    /// Lets reloads and admin `SET log.level` change the log's level live
    /// through `setter` (the owner of the log subscriber calls this once).
    pub fn set_log_level_setter(&self, setter: LogLevelSetter) {
        self.running.lock().unwrap_or_else(|p| p.into_inner()).log_level = Some(setter);
    }

    /// When client TLS's certificate expires, as Unix seconds (`None`: no
    /// `client.tls`, or its validity could not be read).
    pub fn client_tls_not_after(&self) -> Option<i64> {
        self.running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .tls
            .as_ref()
            .and_then(|t| t.not_after)
    }

    /// True when `log` changes live (see [`Self::set_log_level_setter`]).
    pub fn log_level_is_live(&self) -> bool {
        self.running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .log_level
            .is_some()
    }

    fn apply(
        &self,
        running: &mut Running,
        config: Config,
        tls_files: TlsFiles,
    ) -> Result<Vec<String>, StartError> {
        // A reload reads the backends' CA files again (a bundle rotated in
        // place); an admin `SET` keeps what the running pools were made with.
        let keep = (tls_files == TlsFiles::KeepUnlessChanged).then_some(running.specs.as_slice());
        let specs = resolve_backends(&config, keep)?;
        // Opened anew at every reload: after logrotate moved the file
        // away, lines go to a new one.
        let query_log = open_query_log(&config)?;
        // Built before anything is sent: a certificate that does not load
        // refuses the whole reload, and logins go on with the running one.
        let tls = match &config.client.tls {
            Some(files)
                if tls_files == TlsFiles::ReadAgain || running.config.client.tls.as_ref() != Some(files) =>
            {
                let loaded = crate::tls::server_config(files)?;
                warn_of_expiry(&loaded);
                Some(loaded)
            }
            Some(_) => running.tls.clone(),
            None => None,
        };
        let mut config = config;
        let not_applied = keep_restart_only_keys(&running.config, &mut config, running.log_level.is_some());
        // Recomputed at every change: the pools' sizes count against the
        // open-files limit as much as `client.max_connections` does.
        let shards = self.controls.len() as u64;
        let max_clients = client_share(&config, shards, open_files_limit());
        // Said again only when the share moves, or client.max_connections
        // does (raised while the limit holds the share where it was, the
        // new value takes no effect): not at every reload.
        if max_clients != running.max_clients
            || config.client.max_connections != running.config.client.max_connections
        {
            warn_of_lowered_share(&config, shards, max_clients);
        }
        if let Some(set) = running
            .log_level
            .as_ref()
            .filter(|_| config.log != running.config.log)
        {
            set(config.log.level);
        }
        running.user_counters = UserCounters::for_users(&config.users, Some(&running.user_counters));
        for c in &self.controls {
            let _ = c.send(ControlMsg::Reload {
                config: Box::new(config.clone()),
                backends: specs.clone(),
                user_counters: running.user_counters.clone(),
                query_log: query_log.clone(),
                tls: tls.as_ref().map(|t| t.config.clone()),
                max_clients,
            });
        }
        running.config = config;
        running.tls = tls;
        running.specs = specs;
        running.max_clients = max_clients;
        // Whoever changed it (a reload, an admin command) is answered once
        // the change is in force: a client's next command must not still
        // reach a backend it has just drained.
        self.wait_for_shards();
        Ok(not_applied)
    }

    /// Waits until every shard has handled what was sent to it before (a
    /// shard that does not answer within a few seconds is not waited for).
    fn wait_for_shards(&self) {
        self.ask_every_shard(ControlMsg::Barrier);
    }

    /// Sends every shard the message `msg` makes around a reply channel,
    /// all at once, and gathers the answers that come within a few seconds
    /// (a shard that does not answer by then is not waited for).
    fn ask_every_shard<T>(&self, msg: impl Fn(crossbeam_channel::Sender<T>) -> ControlMsg) -> Vec<T> {
        let replies: Vec<_> = self
            .controls
            .iter()
            .filter_map(|c| {
                let (tx, rx) = crossbeam_channel::bounded(1);
                c.send(msg(tx)).ok().map(|_| rx)
            })
            .collect();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        replies
            .into_iter()
            .filter_map(|rx| rx.recv_deadline(deadline).ok())
            .collect()
    }

    /// The configuration the shards run with.
    pub fn config(&self) -> Config {
        self.running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .config
            .clone()
    }

    /// Asks every shard for a snapshot (waits up to a second for each).
    pub fn snapshots(&self) -> Vec<ShardSnapshot> {
        self.controls
            .iter()
            .filter_map(|c| {
                let (tx, rx) = crossbeam_channel::bounded(1);
                c.send(ControlMsg::Snapshot(tx)).ok()?;
                rx.recv_timeout(Duration::from_secs(1)).ok()
            })
            .collect()
    }

    /// Kills client `id` (or only its running statement) for an operator,
    /// whoever its user: on the core that owns it, as a client's `KILL`
    /// would. Waits up to `limit` for that core's answer.
    pub fn kill(&self, id: u32, query_only: bool, limit: Duration) -> Result<(), KillRefused> {
        let target = ClientId(id);
        let Some(control) = self.controls.get(usize::from(target.shard().0)) else {
            return Err(KillRefused::UnknownThread(id));
        };
        let (reply, outcome) = crossbeam_channel::bounded(1);
        let msg = ControlMsg::OperatorKill {
            target,
            query_only,
            reply,
        };
        if control.send(msg).is_err() {
            return Err(KillRefused::UnknownThread(id));
        }
        outcome.recv_timeout(limit).unwrap_or_else(|_| {
            Err(KillRefused::Backend(
                "the owning core did not answer in time".into(),
            ))
        })
    }

    /// Replaces the backend connections of `backend` (`None`: of every
    /// backend) on every core with new ones: idle ones close now, the
    /// others once their clients are done with them. Returns how many
    /// closed at once, or why nothing was done (no such backend).
    pub fn reconnect(&self, backend: Option<&str>) -> Result<usize, String> {
        if let Some(name) = backend {
            if !self.config().backends.iter().any(|b| b.name == name) {
                return Err(format!("no backend named {name:?}"));
            }
        }
        let closed = self.ask_every_shard(|reply| ControlMsg::Reconnect {
            backend: backend.map(str::to_string),
            reply,
        });
        Ok(closed.into_iter().sum())
    }

    /// Forgets the statement digests on every core (`RESET DIGESTS`), and
    /// answers once each core has (or a few seconds passed).
    pub fn reset_digests(&self) {
        self.ask_every_shard(ControlMsg::ResetDigests);
    }

    /// Stops (or resumes) handing out backend connections on every core.
    pub fn pause(&self, on: bool) {
        self.broadcast(|| ControlMsg::Pause(on));
    }

    /// Stops accepting new clients on every core.
    pub fn stop_accepting(&self) {
        self.remove_socket_file();
        self.broadcast(|| ControlMsg::StopAccepting);
    }

    /// Removes the client Unix socket's file first, so new local clients
    /// are refused at once rather than queued on a socket nobody accepts.
    fn remove_socket_file(&self) {
        drop(self.socket_file.lock().unwrap_or_else(|p| p.into_inner()).take());
    }

    /// Stops gracefully: no new clients; idle clients are closed at once;
    /// running commands and open transactions may finish until `deadline`;
    /// then every core stops. Blocks until then.
    pub fn graceful_shutdown(&self, deadline: Duration) {
        self.stopping.store(true, std::sync::atomic::Ordering::Release);
        self.remove_socket_file();
        self.broadcast(|| ControlMsg::GracefulStop);
        self.wait_for_zero(deadline, |shards| shards.iter().map(|s| s.clients_active).sum());
        self.shutdown();
    }

    /// A stop has begun: new clients are refused from now on.
    pub fn is_stopping(&self) -> bool {
        self.stopping.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Records that a stop was asked for; true for the first such request,
    /// whoever made it (a signal, the admin's `SHUTDOWN GRACEFUL`): a later
    /// one means "now".
    pub fn begin_stop(&self) -> bool {
        !self.stopping.swap(true, std::sync::atomic::Ordering::AcqRel)
    }

    /// Polls the cores' snapshots until `count` of them is zero or
    /// `deadline` passes, and returns the last count (0 once it settled).
    /// A snapshot travels behind every earlier control message on its
    /// core's channel, so it already reflects them. A core that did not
    /// answer in time counts as one, not as none: busy is not idle.
    pub fn wait_for_zero(&self, deadline: Duration, count: impl Fn(&[ShardSnapshot]) -> u64) -> u64 {
        let until = std::time::Instant::now() + deadline;
        loop {
            let shards = self.snapshots();
            let silent = self.controls.len().saturating_sub(shards.len()) as u64;
            let left = count(&shards) + silent;
            if left == 0 || std::time::Instant::now() >= until {
                return left;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops every core.
    pub fn shutdown(&self) {
        self.remove_socket_file();
        self.broadcast(|| ControlMsg::Shutdown);
    }

    fn broadcast(&self, msg: impl Fn() -> ControlMsg) {
        for c in &self.controls {
            let _ = c.send(msg());
        }
    }
}

/// Tells every shard to stop.
#[derive(Clone)]
pub struct Stopper(Vec<ControlSender>);

impl Stopper {
    /// Sends the stop message to every shard.
    pub fn stop(&self) {
        for c in &self.0 {
            let _ = c.send(ControlMsg::Shutdown);
        }
    }
}

/// How long before its certificate expires client TLS is warned about at
/// every load.
const EXPIRY_WARNING: i64 = 14 * 86_400;

/// Logs a warning when client TLS's certificate has expired, or expires
/// within [`EXPIRY_WARNING`]: logins go on, clients that check it fail.
fn warn_of_expiry(tls: &crate::tls::ClientTls) {
    let Some(not_after) = tls.not_after else {
        return;
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let left = not_after - now;
    if left <= 0 {
        tracing::warn!(
            expired_s_ago = -left,
            "client.tls: the certificate has expired; renew it and reload"
        );
    } else if left < EXPIRY_WARNING {
        tracing::warn!(
            days_left = left / 86_400,
            "client.tls: the certificate expires soon; renew it and reload"
        );
    }
}

/// Whether a change of configuration reads client TLS's files again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TlsFiles {
    /// A reload: the files may hold a renewed certificate under the same names.
    ReadAgain,
    /// An admin `SET`: only other files than the running ones are read.
    KeepUnlessChanged,
}

/// The keys that only a restart changes whose value differs between
/// `running` and `next`, each with what happens to it (as a reload says).
/// `log_live`: the log's level changes live (see
/// [`ProxyHandle::set_log_level_setter`]).
pub fn restart_only_changes(running: &Config, next: &Config, log_live: bool) -> Vec<String> {
    keep_restart_only_keys(running, &mut next.clone(), log_live)
}

/// Puts the running value back into `next` for every key that only a
/// restart changes, and says which of them the new file changed.
fn keep_restart_only_keys(running: &Config, next: &mut Config, log_live: bool) -> Vec<String> {
    let mut kept = Vec::new();
    if next.listen != running.listen {
        kept.push(format!(
            "listen: still {} (a restart applies {})",
            running.listen, next.listen
        ));
        next.listen = running.listen.clone();
    }
    let mut keep = |key: &str, changed: bool| {
        if changed {
            kept.push(format!("{key}: unchanged until a restart"));
        }
        changed
    };
    if keep("listen_socket", next.listen_socket != running.listen_socket) {
        next.listen_socket = running.listen_socket.clone();
    }
    if keep("cores", next.cores != running.cores) {
        next.cores = running.cores.clone();
    }
    if keep("idle_poll", next.idle_poll != running.idle_poll) {
        next.idle_poll = running.idle_poll;
    }
    if keep("admin", next.admin != running.admin) {
        next.admin = running.admin.clone();
    }
    if keep("metrics", next.metrics != running.metrics) {
        next.metrics = running.metrics.clone();
    }
    if !log_live && keep("log", next.log != running.log) {
        next.log = running.log.clone();
    }
    kept
}

/// The query log's file, opened for every core to append to.
fn open_query_log(config: &Config) -> Result<Option<crate::query_log::QueryLogFile>, StartError> {
    crate::query_log::QueryLogFile::open(&config.query_log).map_err(|source| StartError::QueryLog {
        path: config.query_log.path.clone().unwrap_or_default(),
        source,
    })
}

/// Resolves every configured backend's address (blocking DNS: only at
/// start and reload, never on a shard).
/// Each backend's address resolved and its TLS built; `keep`: TLS built
/// before for the same settings is taken from there instead of reading
/// its CA file again.
fn resolve_backends(config: &Config, keep: Option<&[BackendSpec]>) -> Result<Vec<BackendSpec>, StartError> {
    config
        .backends
        .iter()
        .map(|b| {
            let addr = match b.unix_socket() {
                Some(path) => BackendAddr::Unix(path.to_path_buf()),
                None => b
                    .resolve()
                    .map_err(|e| e.to_string())
                    .and_then(|v| v.into_iter().next().ok_or_else(|| "no address".to_string()))
                    .map_err(|reason| StartError::Resolve {
                        backend: b.name.clone(),
                        address: b.address.clone(),
                        reason,
                    })?
                    .into(),
            };
            let host = b.host_port().map_or("", |(h, _)| h);
            let built = |t: &funnel_config::BackendTls| {
                keep.and_then(|specs| specs.iter().find(|s| s.name == b.name))
                    .and_then(|s| s.tls.clone())
                    .filter(|spec| spec.built_from(t, host))
            };
            let tls = b
                .tls
                .as_ref()
                .map(|t| built(t).map_or_else(|| crate::tls::backend_config(t, host), Ok))
                .transpose()
                .map_err(|e| StartError::BackendTls {
                    backend: b.name.clone(),
                    reason: e.to_string(),
                })?;
            Ok(BackendSpec {
                name: b.name.clone(),
                addr,
                user: b.user.clone(),
                password: b.password.clone(),
                tls,
            })
        })
        .collect()
}

/// Reads every backend's greeting at once. The version and collation are
/// the first answering backend's (in configuration order); the MariaDB
/// extensions are those every answering backend offers, since any of them
/// may serve a client that took one (a MySQL server beside MariaDB ones
/// lacks extended metadata). `None` when no backend answered.
fn probe_greetings(specs: &[BackendSpec]) -> Option<Greeting> {
    let answers: Vec<Option<Greeting>> = std::thread::scope(|s| {
        let probes: Vec<_> = specs
            .iter()
            .map(|b| s.spawn(|| probe_greeting(&b.addr)))
            .collect();
        probes.into_iter().map(|p| p.join().ok().flatten()).collect()
    });
    let mut answered = answers.into_iter().flatten();
    let mut first = answered.next()?;
    for other in answered {
        first.extended = first.extended.zip(other.extended).map(|(a, b)| a.intersect(b));
    }
    Some(first)
}

/// What Funnel's greeting takes from a backend's.
struct Greeting {
    /// The server's version, with `-funnel` appended.
    version: Vec<u8>,
    /// Its default collation.
    charset: u8,
    /// The MariaDB extended capabilities it offers.
    extended: Option<funnel_protocol::Capabilities>,
}

/// Reads a backend's greeting to learn its version, so clients see the
/// version of the server they really talk to (drivers switch features on
/// it), its default collation, which drivers take for their own
/// (Connector/J logs in with a `utf8mb4` one the server greets with, else
/// `utf8mb4_unicode_ci`), and the MariaDB extensions it offers.
fn probe_greeting(addr: &BackendAddr) -> Option<Greeting> {
    let mut s = addr.connect_blocking(Duration::from_secs(2)).ok()?;
    let mut header = [0u8; 4];
    s.read_exact(&mut header).ok()?;
    let len = usize::from(header[0]) | usize::from(header[1]) << 8 | usize::from(header[2]) << 16;
    if len > 4096 {
        return None;
    }
    let mut payload = vec![0u8; len];
    s.read_exact(&mut payload).ok()?;
    let _ = s.write_all(&[]);
    let hs = HandshakeV10::parse(&payload).ok()?;
    let mut version = hs.server_version;
    version.extend_from_slice(b"-funnel");
    Some(Greeting {
        version,
        charset: hs.charset,
        extended: Some(
            hs.capabilities
                .intersect(crate::session::handshake::EXTENDED_CAPS),
        ),
    })
}

/// Each core's share of `client.max_connections`, lowered when the
/// open-files limit cannot hold it beside everything else Funnel opens:
/// then clients over it get ERR 1040 at once, instead of accepts failing
/// for want of descriptors, which would also fail backend opens, `KILL`s
/// and health checks.
fn client_share(config: &Config, shards: u64, open_files: Option<u64>) -> u64 {
    let wanted = u64::from(config.client.max_connections).div_ceil(shards);
    let Some(limit) = open_files else {
        return wanted;
    };
    let backend_conns: u64 = config
        .backends
        .iter()
        .map(|b| u64::from(b.effective_max_per_core(&config.pool)))
        .sum();
    // Per core: its pools, a health check and a KILL per backend, its
    // listening sockets (one per `listen` address, and its handle on the
    // client Unix socket), and the executor's own rings and events; then
    // the process's own (admin and metrics listeners and connections,
    // logs).
    let listening = config.listen.len() as u64 + u64::from(config.listen_socket.is_some());
    let per_core = backend_conns + 2 * config.backends.len() as u64 + listening + 16;
    let room = limit.saturating_sub(shards * per_core + 256) / shards;
    wanted.min(room.max(1))
}

/// Warns when the open-files limit lowered each core's share of
/// `client.max_connections` to `share` (see [`client_share`]).
fn warn_of_lowered_share(config: &Config, shards: u64, share: u64) {
    if share >= u64::from(config.client.max_connections).div_ceil(shards) {
        return;
    }
    tracing::warn!(
        open_files = open_files_limit(),
        client_max_connections = config.client.max_connections,
        clients_per_core = share,
        "the open-files limit cannot hold client.max_connections beside the backend connections; \
         fewer clients are accepted (raise LimitNOFILE= / ulimit -n)"
    );
}

/// The soft open-files limit, if known.
fn open_files_limit() -> Option<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes the struct passed.
    let ok = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } == 0;
    (ok && lim.rlim_cur != libc::RLIM_INFINITY).then_some(lim.rlim_cur)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(extra: &str, listen: &str) -> Config {
        let yaml = format!(
            "listen: {listen}\nusers:\n  - name: app\n    password: pw\n\
             backends:\n  - name: b\n    address: 127.0.0.1:3306\n    user: u\n    password: p\n{extra}"
        );
        Config::from_yaml_str(&yaml).unwrap()
    }

    #[test]
    fn client_share_leaves_descriptors_for_the_backends() {
        // One backend of 16 per core, 2 cores: 2 x (16 + 2 + 1 + 16) + 256
        // kept.
        let cfg = config("client:\n  max_connections: 20000\n", "127.0.0.1:6033");
        assert_eq!(client_share(&cfg, 2, None), 10_000);
        assert_eq!(client_share(&cfg, 2, Some(1_000_000)), 10_000);
        assert_eq!(client_share(&cfg, 2, Some(20_000)), (20_000 - 2 * 35 - 256) / 2);
        assert_eq!(client_share(&cfg, 2, Some(100)), 1, "never none");
    }

    /// Every core holds a listening socket on each `listen` address (and
    /// one on the client Unix socket): with many addresses they take
    /// descriptors the clients cannot have. Before, they were left to the
    /// process's 256, which 64 cores on four addresses fill alone.
    #[test]
    fn client_share_leaves_descriptors_for_every_listening_socket() {
        let listen = (1..=4)
            .map(|i| format!("127.0.0.{i}:6033"))
            .collect::<Vec<_>>()
            .join(", ");
        let cfg = config(
            "client:\n  max_connections: 100000\nlisten_socket: /run/funnel/f.sock\n",
            &format!("[{listen}]"),
        );
        // 64 x (16 + 2 + 4 + 1 + 16) + 256 kept.
        assert_eq!(
            client_share(&cfg, 64, Some(20_000)),
            (20_000 - 64 * 39 - 256) / 64
        );
    }

    #[test]
    fn reload_keeps_and_reports_every_restart_only_key() {
        let running = config("", "127.0.0.1:6033");
        let mut next = config(
            "cores: 2\n\
             listen_socket: /run/funnel/other.sock\n\
             admin:\n  listen: 127.0.0.1:7032\n  user: a\n  password: b\n\
             metrics:\n  listen: 127.0.0.1:7633\n\
             log:\n  level: debug\n\
             client:\n  max_connections: 10\n  handshake_timeout: 3s\n\
             \x20 tls:\n    cert: /nonexistent/c.pem\n    key: /nonexistent/k.pem\n\
             pool:\n  max_per_core: 5\n",
            "127.0.0.1:7033",
        );
        let kept = keep_restart_only_keys(&running, &mut next, false);
        let keys: Vec<&str> = kept.iter().map(|k| k.split(':').next().unwrap()).collect();
        assert_eq!(
            keys,
            ["listen", "listen_socket", "cores", "admin", "metrics", "log",],
            "{kept:?}"
        );
        // What runs is what the running config shows.
        assert_eq!(next.listen, running.listen);
        assert_eq!(next.listen_socket, running.listen_socket);
        assert_eq!(next.cores, running.cores);
        assert_eq!(next.admin, running.admin);
        assert_eq!(next.metrics, running.metrics);
        assert_eq!(next.log, running.log);
        assert_eq!(next.client.max_connections, 10);
        // Live keys take their new values (client TLS's files are read
        // when the shards are told, see `apply`).
        assert!(next.client.tls.is_some());
        assert_eq!(
            next.client.handshake_timeout.as_duration(),
            Duration::from_secs(3)
        );
        assert_eq!(next.pool.max_per_core, 5);

        // An unchanged file reports nothing.
        let mut same = running.clone();
        assert!(keep_restart_only_keys(&running, &mut same, false).is_empty());
    }
}
