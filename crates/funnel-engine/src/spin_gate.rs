//! Whether a core that ran out of work may poll for more before it sleeps
//! (`idle_poll`): only while the host's CPUs are not contended.
//!
//! Waking a sleeping core costs the waker an interrupt and the core tens of
//! microseconds on a VM, twice per query through a proxy; at low
//! concurrency that is most of the difference to a direct connection. A
//! core that keeps polling for a moment after its last task is awake when
//! the answer comes. But a polling core takes a CPU that the database or
//! the clients may need: so it polls only while Linux's pressure stall
//! information says no runnable task waited for a CPU, or hardly any,
//! over the last few milliseconds.

use std::cell::Cell;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::time::{Duration, Instant};

/// How often the host's CPU pressure is read again.
const SAMPLE_EVERY: Duration = Duration::from_millis(10);

/// Above this share of the time with some task waiting for a CPU, cores
/// sleep at once.
const MAX_STALL_PERCENT: u64 = 10;

thread_local! {
    static PRESSURE: Option<File> = File::open("/proc/pressure/cpu").ok();
    /// When the pressure was last read, its total then, and the verdict.
    static LAST: Cell<Option<(Instant, u64, bool)>> = const { Cell::new(None) };
}

/// The microseconds, since boot, during which some runnable task waited
/// for a CPU (the `some` line's `total=` of `/proc/pressure/cpu`).
fn stall_total_us() -> Option<u64> {
    PRESSURE.with(|f| {
        let f = f.as_ref()?;
        let mut buf = [0u8; 256];
        let n = f.read_at(&mut buf, 0).ok()?;
        parse_some_total(std::str::from_utf8(&buf[..n]).ok()?)
    })
}

/// The `some` line's `total=` value.
fn parse_some_total(text: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with("some "))?;
    line.split_whitespace()
        .find_map(|w| w.strip_prefix("total="))?
        .parse()
        .ok()
}

/// True when a core may poll before it sleeps: the host's CPUs had a task
/// waiting for them at most [`MAX_STALL_PERCENT`] of the time since the
/// last reading (at most [`SAMPLE_EVERY`] old). False where the kernel
/// reports no pressure (no PSI): then nothing says a CPU is to spare.
pub fn cpus_uncontended() -> bool {
    LAST.with(|last| {
        let now = Instant::now();
        match last.get() {
            Some((at, _, allowed)) if now.duration_since(at) < SAMPLE_EVERY => allowed,
            previous => {
                let Some(total) = stall_total_us() else {
                    last.set(Some((now, 0, false)));
                    return false;
                };
                let allowed = match previous {
                    Some((at, then, _)) => {
                        let wall = now.duration_since(at).as_micros() as u64;
                        total.saturating_sub(then) * 100 <= MAX_STALL_PERCENT * wall
                    }
                    // No interval yet: sleep this once.
                    None => false,
                };
                last.set(Some((now, total, allowed)));
                allowed
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spin_gate_reads_the_some_total() {
        let text = "some avg10=6.74 avg60=7.70 avg300=21.56 total=34864947836\n\
                    full avg10=0.00 avg60=0.00 avg300=0.00 total=0\n";
        assert_eq!(parse_some_total(text), Some(34864947836));
        assert_eq!(parse_some_total("full avg10=0.00 total=5\n"), None);
        assert_eq!(parse_some_total(""), None);
    }

    /// On a host with PSI the gate answers from real readings: a first
    /// call (no interval yet) says sleep, and a later one reads again.
    #[test]
    fn spin_gate_samples_the_host() {
        if stall_total_us().is_none() {
            assert!(!cpus_uncontended(), "no PSI: never poll");
            return;
        }
        assert!(!cpus_uncontended(), "no interval yet");
        let (at, _, _) = LAST.with(|l| l.get()).unwrap();
        std::thread::sleep(SAMPLE_EVERY * 3);
        let _ = cpus_uncontended();
        let (later, _, _) = LAST.with(|l| l.get()).unwrap();
        assert!(later > at, "read again after the interval");
    }
}
