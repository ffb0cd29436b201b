//! Rate limiting for per-connection log events, so a storm of bad clients
//! (failed logins, dropped connections) cannot flood the log: at most
//! [`PER_SECOND`] such events per core per second, then one line saying how
//! many were left out.

use std::cell::Cell;
use std::time::{Duration, Instant};

/// Events logged per second per core.
pub const PER_SECOND: u32 = 20;

/// One core's limiter.
#[derive(Debug)]
pub struct LogRate {
    window: Cell<Instant>,
    logged: Cell<u32>,
    suppressed: Cell<u64>,
}

impl Default for LogRate {
    fn default() -> Self {
        LogRate {
            window: Cell::new(Instant::now()),
            logged: Cell::new(0),
            suppressed: Cell::new(0),
        }
    }
}

impl LogRate {
    /// True when the next event may be logged. Opening a new window first
    /// reports how many events the last one left out.
    pub fn allow(&self) -> bool {
        self.allow_at(Instant::now())
    }

    fn allow_at(&self, now: Instant) -> bool {
        if now.duration_since(self.window.get()) >= Duration::from_secs(1) {
            let left_out = self.suppressed.replace(0);
            if left_out > 0 {
                tracing::warn!(left_out, "per-connection log events were rate-limited");
            }
            self.window.set(now);
            self.logged.set(0);
        }
        if self.logged.get() < PER_SECOND {
            self.logged.set(self.logged.get() + 1);
            true
        } else {
            self.suppressed.set(self.suppressed.get() + 1);
            false
        }
    }

    /// Events left out in the current window.
    pub fn suppressed(&self) -> u64 {
        self.suppressed.get()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lograte_caps_a_storm_and_recovers() {
        let r = LogRate::default();
        let t0 = Instant::now();
        let allowed = (0..1000).filter(|_| r.allow_at(t0)).count();
        assert_eq!(allowed, PER_SECOND as usize);
        assert_eq!(r.suppressed(), 1000 - u64::from(PER_SECOND));
        assert!(
            r.allow_at(t0 + Duration::from_millis(1001)),
            "a new second logs again"
        );
        assert_eq!(r.suppressed(), 0);
    }
}
