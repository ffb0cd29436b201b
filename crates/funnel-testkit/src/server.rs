//! [`MariaDb`], one throwaway server: its identity, its process slot, and its cleanup.

use std::{
    net::{Ipv4Addr, SocketAddr},
    sync::{
        atomic::{AtomicU32, Ordering},
        Mutex, MutexGuard, PoisonError, TryLockError,
    },
    time::Duration,
};

use crate::{launcher::Launcher, log, process::ServerProcess, workdir::LockedDir, TestkitError};

/// A throwaway MariaDB server on 127.0.0.1, owned by this test process.
///
/// It runs from a copy of a template data directory in its own scratch directory, listens on a
/// free port, and root logs in over TCP with an empty password. Dropping it SIGKILLs the server
/// and deletes the directory; if the test process dies first, the kernel kills the server (see
/// the `spawner` module). Control methods take `&self` so that [`MariaDb::shared`] servers and
/// servers behind an `Arc` can use them too; they panic on failure, with the server's error log,
/// because in a test a broken server is a failed test.
#[derive(Debug)]
pub struct MariaDb {
    /// How to (re)start this server.
    pub(crate) launcher: Launcher,
    /// How long `stop` waits after SIGTERM.
    pub(crate) shutdown_timeout: Duration,
    /// The running process; `None` after `stop` or `kill`.
    process: Mutex<Option<ServerProcess>>,
    /// The most recent process id, readable without the lock.
    pub(crate) last_pid: AtomicU32,
    // Declared last so it is dropped last: the directory goes only after `Drop` killed the server.
    dir: LockedDir,
}

impl MariaDb {
    /// Wraps a server that `launcher` just started in `dir`.
    pub(crate) fn new(
        launcher: Launcher,
        process: ServerProcess,
        shutdown_timeout: Duration,
        dir: LockedDir,
    ) -> Self {
        Self {
            launcher,
            shutdown_timeout,
            last_pid: AtomicU32::new(process.pid()),
            process: Mutex::new(Some(process)),
            dir,
        }
    }

    /// The TCP port; it stays the same across restarts.
    pub fn port(&self) -> u16 {
        self.launcher.port
    }

    /// `127.0.0.1:port`.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.port()))
    }

    /// The server's Unix socket, in its scratch directory.
    pub fn socket_path(&self) -> &std::path::Path {
        &self.launcher.paths.socket
    }

    /// The process id of the most recently started mariadbd, which may have been stopped since.
    pub fn pid(&self) -> u32 {
        self.last_pid.load(Ordering::Relaxed)
    }

    /// Whether the server process is alive (running or paused).
    pub fn is_running(&self) -> bool {
        let mut process = self.lock();
        match process.as_mut().map(ServerProcess::try_exit) {
            Some(Ok(None)) => true,
            Some(Ok(Some(_))) | Some(Err(_)) => {
                *process = None;
                false
            }
            None => false,
        }
    }

    /// The server's whole error log (including its stdout and stderr), across restarts.
    pub fn error_log(&self) -> String {
        log::read(&self.launcher.paths.error_log)
    }

    /// The process slot. A panic elsewhere while holding it cannot leave it half-updated, so a
    /// poisoned lock is still usable.
    pub(crate) fn lock(&self) -> MutexGuard<'_, Option<ServerProcess>> {
        self.process.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Kills the server and removes its directory while the process exits, for statics that are
    /// never dropped. Gives up (leaving both to PR_SET_PDEATHSIG and the next run's sweep) if
    /// another thread holds the process lock, because blocking in an exit handler could hang
    /// the exit.
    pub(crate) fn kill_at_exit(&self) {
        let process = match self.process.try_lock() {
            Ok(mut guard) => guard.take(),
            Err(TryLockError::Poisoned(poisoned)) => poisoned.into_inner().take(),
            Err(TryLockError::WouldBlock) => return,
        };
        if let Some(mut process) = process {
            match process.try_exit() {
                // It died on its own while tests used it (a crash): its
                // log, about to go with the directory, says why.
                Ok(Some(status)) => self.keep_log_of_death(status),
                _ => {
                    if process.kill().is_err() {
                        return;
                    }
                }
            }
        }
        let _ = std::fs::remove_dir_all(self.dir.path());
    }

    /// Copies the error log of a server that died by itself next to the
    /// scratch directories (the sweep leaves it), and says where.
    fn keep_log_of_death(&self, status: std::process::ExitStatus) {
        let Some(name) = self.dir.path().file_name() else {
            return;
        };
        let kept = self
            .dir
            .path()
            .with_file_name(format!("died-{}.log", name.to_string_lossy()));
        if std::fs::copy(&self.launcher.paths.error_log, &kept).is_ok() {
            eprintln!(
                "funnel-testkit: the server on port {} died on its own ({status}); its error log is kept at {}",
                self.port(),
                kept.display()
            );
        }
    }
}

impl Drop for MariaDb {
    fn drop(&mut self) {
        if let Some(process) = self.lock().take() {
            // Nothing useful to do with an error in drop; the server dies with us anyway.
            let _ = process.kill();
        }
    }
}

/// Unwraps, panicking with the error's full message (which includes the server log).
#[track_caller]
pub(crate) fn or_panic<T>(result: Result<T, TestkitError>) -> T {
    result.unwrap_or_else(|e| panic!("{e}"))
}
