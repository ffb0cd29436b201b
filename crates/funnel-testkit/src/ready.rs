//! Waiting until a freshly spawned mariadbd accepts connections.

use std::{
    path::Path,
    thread,
    time::{Duration, Instant},
};

use mysql::prelude::Queryable;
use mysql::Conn;

use crate::{connect, log, process::ServerProcess, TestkitError};

/// Polls with a real root login (not just a TCP connect: what tests need is a server that
/// authenticates, which also proves the grant tables loaded) until it succeeds, the process exits,
/// or `timeout` passes. Failures carry the error log written since byte `log_from`.
pub(crate) fn wait_until_ready(
    process: &mut ServerProcess,
    port: u16,
    datadir: &Path,
    error_log: &Path,
    log_from: u64,
    timeout: Duration,
) -> Result<(), TestkitError> {
    let started = Instant::now();
    let opts = connect::root_opts(port)
        .tcp_connect_timeout(Some(Duration::from_secs(1)))
        .read_timeout(Some(Duration::from_secs(5)));
    let mut backoff = Duration::from_millis(5);
    loop {
        let last_error = match Conn::new(opts.clone()) {
            Ok(mut conn) => {
                if serves(&mut conn, datadir) {
                    return Ok(());
                }
                // Another process's server took the port first (ours then
                // fails to bind it and exits, and the caller tries another
                // port): its root logs in as passwordless as ours would.
                mysql::Error::DriverError(mysql::DriverError::SetupError)
            }
            Err(e) => e,
        };
        let exited = process
            .try_exit()
            .map_err(|e| TestkitError::io("wait for mariadbd", error_log, e))?;
        if let Some(status) = exited {
            return Err(TestkitError::ServerExited {
                port,
                status,
                log_tail: log::tail(error_log, log_from),
            });
        }
        let waited = started.elapsed();
        if waited >= timeout {
            return Err(TestkitError::NotReady {
                port,
                waited,
                last_error,
                log_tail: log::tail(error_log, log_from),
            });
        }
        thread::sleep(backoff);
        backoff = (backoff * 2).min(Duration::from_millis(100));
    }
}

/// True when the server `conn` reached runs on `datadir`: ours, not one
/// another test process started on the same port a moment before.
fn serves(conn: &mut Conn, datadir: &Path) -> bool {
    let Ok(Some(answer)) = conn.query_first::<String, _>("SELECT @@datadir") else {
        return false;
    };
    let canonical = |p: &Path| std::fs::canonicalize(p).ok();
    canonical(Path::new(answer.trim_end_matches('/'))).is_some_and(|a| Some(a) == canonical(datadir))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Under parallel tests another process's server can take the port
    /// picked for ours before ours binds it; its passwordless root logs
    /// in too. Readiness must not take that server for ours: before, the
    /// test went on against the other test's server (ERR 1396 creating a
    /// user that test had made).
    #[test]
    fn testkit_readiness_takes_only_our_own_server() {
        let other = crate::MariaDb::start();
        let other_datadir = other.socket_path().parent().unwrap().join("data");
        let ours = || ServerProcess::new(std::process::Command::new("sleep").arg("30").spawn().unwrap());
        let mut waiting = ours();
        let log = Path::new("/dev/null");
        let wait = Duration::from_millis(600);
        let taken = wait_until_ready(
            &mut waiting,
            other.port(),
            Path::new("/nonexistent/data"),
            log,
            0,
            wait,
        );
        assert!(matches!(taken, Err(TestkitError::NotReady { .. })), "{taken:?}");
        let _ = waiting.kill();
        let mut waiting = ours();
        let own = wait_until_ready(&mut waiting, other.port(), &other_datadir, log, 0, wait);
        assert!(own.is_ok(), "{own:?}");
        let _ = waiting.kill();
    }
}
