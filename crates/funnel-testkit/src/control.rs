//! Fault-test controls on [`MariaDb`]: stop, start again, kill, pause and resume.

use std::{io, sync::atomic::Ordering, time::Duration};

use crate::{log, server::or_panic, MariaDb, TestkitError};

/// How long the server's threads may take to stop after SIGSTOP; milliseconds normally, more when
/// a thread is in uninterruptible disk I/O.
const PAUSE_TIMEOUT: Duration = Duration::from_secs(10);

impl MariaDb {
    /// Shuts the server down cleanly: SIGTERM, then waits for it to exit. A paused server is
    /// resumed so it can shut down. Does nothing if the server is not running.
    #[track_caller]
    pub fn stop(&self) {
        or_panic(self.try_stop());
    }

    /// Starts the server again after [`stop`](Self::stop) or [`kill`](Self::kill), on the same
    /// port with the same data and options, and waits until it is ready.
    ///
    /// The port cannot change, since clients and proxies under test are configured with it; if
    /// another process took it while the server was down (rare), this fails with the server's
    /// "Address already in use" log.
    #[track_caller]
    pub fn start_again(&self) {
        or_panic(self.try_start_again());
    }

    /// [`stop`](Self::stop) then [`start_again`](Self::start_again).
    #[track_caller]
    pub fn restart(&self) {
        self.stop();
        self.start_again();
    }

    /// SIGKILLs the server, as a crash would, and reaps it. No clean shutdown: InnoDB recovers on
    /// the next start. Does nothing if the server is not running.
    #[track_caller]
    pub fn kill(&self) {
        if let Some(process) = self.lock().take() {
            or_panic(
                process
                    .kill()
                    .map_err(|e| TestkitError::io("kill", &self.launcher.mariadbd, e)),
            );
        }
    }

    /// Freezes the server with SIGSTOP: connections stay open but nothing is answered, like a
    /// hung backend. Returns once every server thread has stopped.
    #[track_caller]
    pub fn pause(&self) {
        or_panic(self.try_pause());
    }

    /// Fallible [`pause`](Self::pause).
    pub fn try_pause(&self) -> Result<(), TestkitError> {
        let process = self.lock();
        let process = process
            .as_ref()
            .ok_or(TestkitError::NotRunning { port: self.port() })?;
        let io_error = |e| TestkitError::io("pause", &self.launcher.mariadbd, e);
        process.signal(libc::SIGSTOP).map_err(io_error)?;
        if process.wait_stopped(PAUSE_TIMEOUT).map_err(io_error)? {
            Ok(())
        } else {
            Err(io_error(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("threads of pid {} still running after SIGSTOP", process.pid()),
            )))
        }
    }

    /// Unfreezes a [`pause`](Self::pause)d server with SIGCONT.
    #[track_caller]
    pub fn resume(&self) {
        or_panic(self.try_resume());
    }

    /// Fallible [`resume`](Self::resume).
    pub fn try_resume(&self) -> Result<(), TestkitError> {
        let process = self.lock();
        let process = process
            .as_ref()
            .ok_or(TestkitError::NotRunning { port: self.port() })?;
        process
            .signal(libc::SIGCONT)
            .map_err(|e| TestkitError::io("resume", &self.launcher.mariadbd, e))
    }

    /// Fallible [`stop`](Self::stop).
    pub fn try_stop(&self) -> Result<(), TestkitError> {
        let Some(mut process) = self.lock().take() else {
            return Ok(());
        };
        let io_error = |e| TestkitError::io("stop", &self.launcher.mariadbd, e);
        process.signal(libc::SIGTERM).map_err(io_error)?;
        // A SIGSTOPped process keeps SIGTERM pending until it is continued.
        process.signal(libc::SIGCONT).map_err(io_error)?;
        if process
            .wait_timeout(self.shutdown_timeout)
            .map_err(io_error)?
            .is_some()
        {
            return Ok(());
        }
        let pid = process.pid();
        process.kill().map_err(io_error)?;
        Err(TestkitError::StopTimeout {
            pid,
            waited: self.shutdown_timeout,
            log_tail: log::tail(&self.launcher.paths.error_log, 0),
        })
    }

    /// Fallible [`start_again`](Self::start_again).
    pub fn try_start_again(&self) -> Result<(), TestkitError> {
        let mut process = self.lock();
        if let Some(running) = process.as_mut() {
            let exited = running
                .try_exit()
                .map_err(|e| TestkitError::io("wait for", &self.launcher.mariadbd, e))?;
            if exited.is_none() {
                return Err(TestkitError::AlreadyRunning {
                    port: self.port(),
                    pid: running.pid(),
                });
            }
        }
        // It exited on its own (SHUTDOWN, a crash) or was stopped: start a new process.
        *process = None;
        let started = self.launcher.launch()?;
        self.last_pid.store(started.pid(), Ordering::Relaxed);
        *process = Some(started);
        Ok(())
    }
}
