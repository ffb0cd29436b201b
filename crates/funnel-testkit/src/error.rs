//! The error type of every fallible testkit operation.

use std::{io, path::PathBuf, process::ExitStatus, time::Duration};

/// Why starting, controlling or setting up a throwaway MariaDB server failed.
///
/// Variants about a server carry the tail of its error log: "the server did not start" is useless
/// without the server's own explanation, and a CI log is often all we get.
#[derive(Debug, thiserror::Error)]
pub enum TestkitError {
    /// A MariaDB binary is not installed. Tests never skip silently; they fail with this message.
    #[error(
        "`{name}` not found (looked in $PATH and {searched:?}); install MariaDB with \
         `apt-get install -y mariadb-server mariadb-client`"
    )]
    MissingBinary {
        /// The binary we looked for, e.g. `mariadbd`.
        name: &'static str,
        /// The directories searched besides `$PATH`.
        searched: Vec<PathBuf>,
    },

    /// `mariadb-install-db` failed while building the template data directory.
    #[error("`{command}` failed with {status}; its output:\n{output}")]
    InstallDb {
        /// The command line that was run.
        command: String,
        /// How it exited.
        status: ExitStatus,
        /// Its stdout and stderr.
        output: String,
    },

    /// A filesystem or process operation failed.
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        /// What we were doing, e.g. "copy the template datadir to".
        action: &'static str,
        /// The file, directory or binary concerned.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },

    /// mariadbd exited before it accepted a connection.
    #[error(
        "mariadbd on 127.0.0.1:{port} exited with {status} before accepting connections; \
         error log tail:\n{log_tail}"
    )]
    ServerExited {
        /// The port it was started on.
        port: u16,
        /// How it exited.
        status: ExitStatus,
        /// The last lines of its error log.
        log_tail: String,
    },

    /// mariadbd did not accept a root connection before the startup deadline.
    #[error(
        "mariadbd on 127.0.0.1:{port} not ready after {waited:?} (last connection error: \
         {last_error}); error log tail:\n{log_tail}"
    )]
    NotReady {
        /// The port it was started on.
        port: u16,
        /// How long we waited.
        waited: Duration,
        /// The error of the last connection attempt.
        #[source]
        last_error: mysql::Error,
        /// The last lines of its error log.
        log_tail: String,
    },

    /// mariadbd was still running after SIGTERM and the shutdown deadline; it has been SIGKILLed.
    #[error(
        "mariadbd (pid {pid}) still running {waited:?} after SIGTERM, killed it; \
         error log tail:\n{log_tail}"
    )]
    StopTimeout {
        /// The process that did not stop.
        pid: u32,
        /// How long we waited.
        waited: Duration,
        /// The last lines of its error log.
        log_tail: String,
    },

    /// The operation needs a running server, but it is stopped or killed.
    #[error("mariadbd on 127.0.0.1:{port} is not running")]
    NotRunning {
        /// The server's port.
        port: u16,
    },

    /// `start_again` was called on a server that is still running.
    #[error("mariadbd on 127.0.0.1:{port} is already running (pid {pid})")]
    AlreadyRunning {
        /// The server's port.
        port: u16,
        /// The running process.
        pid: u32,
    },

    /// A setup statement failed.
    #[error("`{sql}` failed on 127.0.0.1:{port}: {source}")]
    Sql {
        /// The server's port.
        port: u16,
        /// The statement.
        sql: String,
        /// The driver's or server's error.
        #[source]
        source: mysql::Error,
    },
}

impl TestkitError {
    /// Wraps an I/O error with what we were doing and to which path.
    pub(crate) fn io(action: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        Self::Io {
            action,
            path: path.into(),
            source,
        }
    }
}
