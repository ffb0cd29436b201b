//! [`MariaDbBuilder`]: options for a new server, and the first start with its port retries.

use std::{ffi::OsString, time::Duration};

use crate::{
    binaries::Binaries,
    launcher::Launcher,
    log,
    options::{self, ServerPaths, ServerSettings},
    port,
    server::or_panic,
    template,
    workdir::LockedDir,
    MariaDb, TestkitError,
};

/// How many free ports to try when another process grabs the port before mariadbd binds it.
const PORT_ATTEMPTS: usize = 5;

/// Default time a server has to accept its first connection. A start takes well under a second
/// on an idle machine; the slack is for loaded CI runners.
const DEFAULT_STARTUP_TIMEOUT: Duration = Duration::from_secs(30);

/// Default time a server has to shut down after SIGTERM before it is SIGKILLed.
const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(30);

/// Configures a [`MariaDb`] before starting it; see [`MariaDb::builder`].
#[derive(Debug, Clone)]
#[must_use]
pub struct MariaDbBuilder {
    settings: ServerSettings,
    startup_timeout: Duration,
    shutdown_timeout: Duration,
}

impl MariaDbBuilder {
    /// Appends a mariadbd option such as `--wait-timeout=2`. It comes after the testkit's own
    /// options, so it overrides them.
    pub fn server_arg(mut self, arg: impl Into<OsString>) -> Self {
        self.settings.extra_args.push(arg.into());
        self
    }

    /// Sets `--max-connections` (default 2000).
    pub fn max_connections(mut self, max: u32) -> Self {
        self.settings.max_connections = max;
        self
    }

    /// How long each start (and restart) may take until root can log in (default 30 s).
    pub fn startup_timeout(mut self, timeout: Duration) -> Self {
        self.startup_timeout = timeout;
        self
    }

    /// How long [`MariaDb::stop`] waits after SIGTERM before SIGKILL (default 30 s).
    pub fn shutdown_timeout(mut self, timeout: Duration) -> Self {
        self.shutdown_timeout = timeout;
        self
    }

    /// Starts the server and waits until root can log in over TCP.
    pub fn start(self) -> Result<MariaDb, TestkitError> {
        let bins = Binaries::locate()?;
        let template = template::template(&bins)?;
        let dir = LockedDir::create("srv-")?;
        let paths = ServerPaths::in_dir(dir.path());
        template::copy_to(&template, &paths.datadir)?;
        std::fs::create_dir_all(&paths.tmpdir).map_err(|e| TestkitError::io("create", &paths.tmpdir, e))?;
        let mut last_error = None;
        for _ in 0..PORT_ATTEMPTS {
            let port = port::pick_free_port()
                .map_err(|e| TestkitError::io("pick a free port on", "127.0.0.1", e))?;
            let launcher = Launcher {
                mariadbd: bins.mariadbd.clone(),
                args: options::server_args(&paths, port, &self.settings),
                paths: paths.clone(),
                port,
                startup_timeout: self.startup_timeout,
            };
            let log_from = log::len(&paths.error_log);
            match launcher.launch() {
                Ok(process) => return Ok(MariaDb::new(launcher, process, self.shutdown_timeout, dir)),
                Err(e @ TestkitError::ServerExited { .. })
                    if port::bind_failed(&log::since(&paths.error_log, log_from)) =>
                {
                    last_error = Some(e);
                }
                Err(e) => return Err(e),
            }
        }
        Err(last_error.expect("PORT_ATTEMPTS is not zero"))
    }
}

impl MariaDb {
    /// Starts a server with default settings, panicking with the reason (and the server's error
    /// log) if it cannot.
    #[track_caller]
    pub fn start() -> MariaDb {
        or_panic(Self::builder().start())
    }

    /// A builder for a server with extra options.
    pub fn builder() -> MariaDbBuilder {
        MariaDbBuilder {
            settings: ServerSettings::default(),
            startup_timeout: DEFAULT_STARTUP_TIMEOUT,
            shutdown_timeout: DEFAULT_SHUTDOWN_TIMEOUT,
        }
    }
}
