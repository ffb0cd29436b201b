//! Waiting for a proxy or server to recover in fault tests.

use std::fmt::Display;
use std::thread;
use std::time::{Duration, Instant};

/// Retries `f` every 100 ms until it succeeds, for at most `limit`; panics
/// with the last error after that (the pool or server did not recover).
pub fn eventually<T, E: Display>(limit: Duration, mut f: impl FnMut() -> Result<T, E>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        match f() {
            Ok(v) => return v,
            Err(_) if Instant::now() < deadline => thread::sleep(Duration::from_millis(100)),
            Err(e) => panic!("did not recover: {e}"),
        }
    }
}

/// Polls `ready` every 50 ms until it holds, for at most `limit`; panics
/// naming `what` after that.
pub fn wait_until(what: &str, limit: Duration, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !ready() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(50));
    }
}
