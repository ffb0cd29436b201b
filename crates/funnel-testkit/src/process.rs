//! One running mariadbd process: signals, waiting with a deadline, reaping.

use std::{
    fs, io,
    process::{Child, ExitStatus},
    thread,
    time::{Duration, Instant},
};

/// A spawned mariadbd that has not been reaped yet.
///
/// Holding the unreaped `Child` is what makes signalling by PID safe: until we wait for it, the
/// kernel cannot give its PID to another process.
#[derive(Debug)]
pub(crate) struct ServerProcess {
    child: Child,
}

impl ServerProcess {
    /// Wraps a freshly spawned child.
    pub(crate) fn new(child: Child) -> Self {
        Self { child }
    }

    /// The process id.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends `signal` (e.g. `libc::SIGSTOP`).
    pub(crate) fn signal(&self, signal: libc::c_int) -> io::Result<()> {
        let pid = libc::pid_t::try_from(self.pid()).map_err(io::Error::other)?;
        // SAFETY: kill touches no memory; `pid` is our unreaped child, so it cannot name a stranger.
        if unsafe { libc::kill(pid, signal) } == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }

    /// The exit status if the process has exited, without blocking.
    pub(crate) fn try_exit(&mut self) -> io::Result<Option<ExitStatus>> {
        self.child.try_wait()
    }

    /// Waits until the process exits or `timeout` passes, polling with a growing back-off
    /// (std offers no waitpid with a timeout). Returns `None` on timeout.
    pub(crate) fn wait_timeout(&mut self, timeout: Duration) -> io::Result<Option<ExitStatus>> {
        let deadline = Instant::now() + timeout;
        let mut backoff = Duration::from_millis(1);
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok(Some(status));
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(None);
            }
            thread::sleep(backoff.min(deadline - now));
            backoff = (backoff * 2).min(Duration::from_millis(50));
        }
    }

    /// Waits until every thread of the process is stopped (or gone), polling `/proc` with a
    /// growing back-off. Returns `false` on timeout.
    ///
    /// Needed after SIGSTOP because `kill` returns before the stop takes effect: the kernel wakes
    /// one thread, which then stops the others, so on a busy machine a connection thread can
    /// still answer a query sent right after `kill` returned.
    pub(crate) fn wait_stopped(&self, timeout: Duration) -> io::Result<bool> {
        let deadline = Instant::now() + timeout;
        let mut backoff = Duration::from_micros(200);
        loop {
            if self.all_threads_stopped()? {
                return Ok(true);
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(false);
            }
            thread::sleep(backoff.min(deadline - now));
            backoff = (backoff * 2).min(Duration::from_millis(20));
        }
    }

    /// Whether no thread of the process can run: each is stopped (`T`), or exiting (`Z`, `X`).
    fn all_threads_stopped(&self) -> io::Result<bool> {
        let tasks = match fs::read_dir(format!("/proc/{}/task", self.pid())) {
            Ok(tasks) => tasks,
            // The whole process is gone (it exited but is not reaped yet): nothing can run.
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(true),
            Err(e) => return Err(e),
        };
        for task in tasks {
            let stat = match fs::read_to_string(task?.path().join("stat")) {
                Ok(stat) => stat,
                // That thread exited while we were listing.
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            // Format: "tid (comm) S ...", and comm may itself contain ") ", so split at the last.
            let state = stat.rsplit_once(") ").and_then(|(_, rest)| rest.chars().next());
            if !matches!(state, Some('T' | 't' | 'Z' | 'X')) {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// SIGKILLs the process and reaps it. SIGKILL also ends a SIGSTOPped process.
    pub(crate) fn kill(mut self) -> io::Result<ExitStatus> {
        // Child::kill sends SIGKILL; it fails only if the child was already reaped, which
        // `self` rules out.
        self.child.kill()?;
        self.child.wait()
    }
}
