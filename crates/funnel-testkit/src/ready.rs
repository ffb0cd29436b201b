//! Waiting until a freshly spawned mariadbd accepts connections.

use std::{
    path::Path,
    thread,
    time::{Duration, Instant},
};

use mysql::Conn;

use crate::{connect, log, process::ServerProcess, TestkitError};

/// Polls with a real root login (not just a TCP connect: what tests need is a server that
/// authenticates, which also proves the grant tables loaded) until it succeeds, the process exits,
/// or `timeout` passes. Failures carry the error log written since byte `log_from`.
pub(crate) fn wait_until_ready(
    process: &mut ServerProcess,
    port: u16,
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
            Ok(_) => return Ok(()),
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
