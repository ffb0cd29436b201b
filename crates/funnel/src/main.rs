//! `funnel`: the MySQL/MariaDB connection-multiplexing proxy.
//!
//! `funnel --config FILE` runs it; `funnel check --config FILE` validates a
//! configuration and says what is wrong with it.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use funnel_config::Config;
use funnel_engine::Proxy;

/// Funnels thousands of MySQL/MariaDB client connections into a few backend
/// connections, one shard per CPU core.
#[derive(Parser, Debug)]
#[command(name = "funnel", version, about, long_about = None)]
struct Cli {
    /// The YAML configuration file (see examples/funnel.yaml).
    #[arg(short, long, value_name = "FILE")]
    config: Option<PathBuf>,

    #[command(subcommand)]
    command: Option<Cmd>,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Validate a configuration file and print every problem found.
    Check {
        /// The YAML configuration file.
        #[arg(short, long, value_name = "FILE")]
        config: PathBuf,
        /// Do not load the TLS files it names (a configuration checked on
        /// another machine than the one it runs on, such as in CI).
        #[arg(long)]
        skip_files: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Some(Cmd::Check { config, skip_files }) => check(&config, skip_files),
        None => {
            let Some(path) = cli.config else {
                eprintln!("funnel: --config FILE is required (see `funnel --help`)");
                return ExitCode::from(2);
            };
            match run(&path) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("funnel: {}", causes(&e));
                    ExitCode::FAILURE
                }
            }
        }
    }
}

/// The error and its causes, joined by ": ", leaving out a cause its
/// wrapper's message already quotes (most of ours do), so no reason is
/// printed twice.
fn causes(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

fn check(path: &PathBuf, skip_files: bool) -> ExitCode {
    match Config::load(path) {
        Ok(cfg) => {
            let problems = if skip_files {
                Vec::new()
            } else {
                tls_problems(&cfg)
            };
            if !problems.is_empty() {
                for problem in problems {
                    eprintln!("{}: {problem}", path.display());
                }
                return ExitCode::FAILURE;
            }
            let socket = cfg
                .listen_socket
                .as_ref()
                .map(|s| format!(" and {}", s.display()))
                .unwrap_or_default();
            println!(
                "{}: OK ({} user(s), {} backend(s), listening on {}{socket})",
                path.display(),
                cfg.users.len(),
                cfg.backends.len(),
                cfg.listen
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{}: {e}", path.display());
            ExitCode::FAILURE
        }
    }
}

/// The TLS files that do not load as a start or a reload would load them
/// (`client.tls`'s certificate and key, backends' CA bundles): the
/// systemd unit checks before its SIGHUP, and a renewed pair that does
/// not match must fail `systemctl reload` rather than only the log.
fn tls_problems(cfg: &Config) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(Err(e)) = cfg.client.tls.as_ref().map(funnel_engine::tls::server_config) {
        out.push(format!("client.tls: {e}"));
    }
    for (i, b) in cfg.backends.iter().enumerate() {
        let host = b.host_port().map_or("", |(h, _)| h);
        if let Some(Err(e)) = b
            .tls
            .as_ref()
            .map(|t| funnel_engine::tls::backend_config(t, host))
        {
            out.push(format!("backends[{i}].tls: {e}"));
        }
    }
    out
}

fn run(path: &PathBuf) -> anyhow::Result<()> {
    let config = Config::load(path).with_context(|| format!("{}", path.display()))?;
    let log_level = init_logging(config.log.level);
    // Block the signals before any thread starts, so only the main thread
    // receives them (in sigwait) and the shards never see them.
    let signals = block_signals();
    raise_open_files_limit();
    let listen = config.listen.clone();
    let proxy = Proxy::start(config.clone()).context("cannot start")?;
    if let Some(set) = log_level {
        proxy.handle().set_log_level_setter(set);
    }
    let listeners = funnel_admin::start(&config, proxy.handle(), Some(path.clone()))
        .context("cannot start the admin or metrics listener")?;
    if let Some(a) = &listeners.admin {
        tracing::info!(admin = %a.local_addr(), "admin interface listening");
    }
    if let Some(m) = &listeners.metrics {
        tracing::info!(metrics = %m.local_addr(), "metrics endpoint listening");
    }
    if let Some(s) = &config.listen_socket {
        tracing::info!(socket = %s.display(), "client socket listening");
    }
    let bound = funnel_config::ListenAddrs::new(proxy.local_addrs().to_vec());
    tracing::info!(listen = %bound, requested = %listen, "funnel is serving");
    // Signals go to their own thread; this one waits for the cores, which
    // stop on SIGTERM/SIGINT or on the admin interface's SHUTDOWN.
    let handle = proxy.handle();
    let config_path = path.clone();
    std::thread::Builder::new()
        .name("funnel-signals".into())
        .spawn(move || {
            loop {
                match wait_signal(&signals) {
                    libc::SIGHUP => {
                        // On a thread of its own: a reload resolves every
                        // backend's name, and a slow resolver must not hold
                        // back a SIGTERM that follows.
                        let (h, path) = (handle.clone(), config_path.clone());
                        std::thread::spawn(move || reload(&h, &path));
                    }
                    // The first request to stop (this signal, or the admin's
                    // SHUTDOWN GRACEFUL before it) drains gracefully.
                    sig if handle.begin_stop() => {
                        tracing::info!(
                            signal = sig,
                            grace_s = GRACE.as_secs(),
                            "stopping gracefully; signal again to stop now"
                        );
                        let h = handle.clone();
                        std::thread::spawn(move || h.graceful_shutdown(GRACE));
                    }
                    sig => {
                        tracing::warn!(signal = sig, "stopping now");
                        handle.shutdown();
                        break;
                    }
                }
            }
        })
        .context("cannot start the signal thread")?;
    proxy.wait();
    Ok(())
}

/// How long a graceful stop lets running commands and transactions finish.
const GRACE: std::time::Duration = std::time::Duration::from_secs(30);

/// SIGHUP: re-read the file and apply it live. An invalid file changes
/// nothing; what only a restart can change is reported, not ignored.
fn reload(proxy: &funnel_engine::ProxyHandle, path: &PathBuf) {
    let config = match Config::load(path) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "reload refused: the configuration is invalid; keeping the running one");
            return;
        }
    };
    match proxy.reload(config) {
        Ok(not_applied) => {
            for what in &not_applied {
                tracing::warn!(%what, "reload: needs a restart");
            }
            tracing::info!("configuration reloaded");
        }
        Err(e) => tracing::error!(error = %e, "reload refused; keeping the running configuration"),
    }
}

/// Starts the log at `level`, and returns how a reload changes that level
/// (`None` when `RUST_LOG` set the filter: it overrides the file's level).
fn init_logging(level: funnel_config::LogLevel) -> Option<funnel_engine::proxy::LogLevelSetter> {
    use tracing_subscriber::prelude::*;
    let from_env = tracing_subscriber::EnvFilter::try_from_default_env().ok();
    let overridden = from_env.is_some();
    let filter = from_env.unwrap_or_else(|| tracing_subscriber::EnvFilter::new(level.as_str()));
    let (filter, handle) = tracing_subscriber::reload::Layer::new(filter);
    // Standard error, as documented (fmt's default is standard output).
    // Colours only for a person at a terminal: journald stores a line with
    // escape codes as a blob (`journalctl` shows "[170B blob data]"), and
    // they clutter `kubectl logs` and log shippers.
    tracing_subscriber::registry()
        .with(filter)
        .with(
            tracing_subscriber::fmt::layer()
                .with_target(false)
                .with_writer(std::io::stderr)
                .with_ansi(std::io::stderr().is_terminal()),
        )
        .init();
    if overridden {
        return None;
    }
    let current = std::sync::Mutex::new(level);
    Some(Box::new(move |level: funnel_config::LogLevel| {
        let mut current = current.lock().unwrap_or_else(|p| p.into_inner());
        let from = *current;
        // Said while the more verbose of the two levels is on, at `info`,
        // or at `warn` between `warn` and `error` (an `info` line shows at
        // neither), so the line shows whichever way the level moves.
        let say = || {
            if from.max(level) >= funnel_config::LogLevel::Info {
                tracing::info!(from = from.as_str(), to = level.as_str(), "log level changed");
            } else {
                tracing::warn!(from = from.as_str(), to = level.as_str(), "log level changed");
            }
        };
        if from >= level {
            say();
        }
        match handle.reload(tracing_subscriber::EnvFilter::new(level.as_str())) {
            Ok(()) => {
                *current = level;
                if from < level {
                    say();
                }
            }
            Err(e) => tracing::warn!(error = %e, "log.level: cannot change the log's level"),
        }
    }))
}

fn block_signals() -> libc::sigset_t {
    // SAFETY: sigset_t is plain data, initialised by sigemptyset before use;
    // pthread_sigmask only changes this thread's mask (inherited by threads
    // started afterwards).
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for s in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
            libc::sigaddset(&mut set, s);
        }
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        set
    }
}

fn wait_signal(set: &libc::sigset_t) -> i32 {
    let mut sig = 0;
    // SAFETY: `set` was initialised by block_signals; `sig` is a valid out pointer.
    unsafe {
        libc::sigwait(set, &mut sig);
    }
    sig
}

/// Raises the soft open-files limit to the hard one: every client and
/// backend connection is a descriptor, and the usual soft limit of 1024
/// would refuse clients long before `client.max_connections`.
fn raise_open_files_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return;
        }
        if lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                return;
            }
        }
    }
    // The engine lowers each core's client share itself, and says so,
    // when this cannot hold client.max_connections beside its backends.
    tracing::info!(open_files = lim.rlim_cur, "open-files limit");
}
