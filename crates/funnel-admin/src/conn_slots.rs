//! What keeps the admin and metrics listeners, one thread per connection,
//! from being exhausted: a cap on connections served at once, a deadline
//! for a whole exchange (a peer dripping a byte now and then cannot hold a
//! place for hours), and a pause after a failed accept (out of file
//! descriptors, a failed accept returns at once, and a loop retrying it
//! would take a whole CPU from the cores).

use std::io::{self, Read};
use std::net::TcpStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Connections a listener serves at once; more are closed at once.
pub const MAX_CONNECTIONS: usize = 32;

/// How long an accept loop waits after a failed accept.
pub const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// A count of the connections being served.
#[derive(Clone, Debug, Default)]
pub struct ConnSlots(Arc<AtomicUsize>);

/// One connection's place; frees it when dropped.
#[derive(Debug)]
pub struct ConnSlot(Arc<AtomicUsize>);

impl ConnSlots {
    /// A place for one more connection, or `None` at the cap.
    pub fn take(&self) -> Option<ConnSlot> {
        self.0
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < MAX_CONNECTIONS).then_some(n + 1)
            })
            .ok()
            .map(|_| ConnSlot(self.0.clone()))
    }
}

impl Drop for ConnSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Reads from a socket until one deadline, however the reads are split.
#[derive(Debug)]
pub struct Deadline {
    stream: TcpStream,
    until: Instant,
}

impl Deadline {
    /// Reads from `stream` for at most `limit` from now.
    pub fn new(stream: TcpStream, limit: Duration) -> Deadline {
        Deadline {
            stream,
            until: Instant::now() + limit,
        }
    }

    /// Sets the socket's read timeout to what is left; `TimedOut` once
    /// nothing is.
    pub fn arm(stream: &TcpStream, until: Instant) -> io::Result<()> {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::Error::new(io::ErrorKind::TimedOut, "deadline passed"));
        }
        stream.set_read_timeout(Some(left))
    }
}

impl Read for Deadline {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        Deadline::arm(&self.stream, self.until)?;
        self.stream.read(buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conn_slots_cap_and_free() {
        let slots = ConnSlots::default();
        let held: Vec<_> = (0..MAX_CONNECTIONS).map(|_| slots.take().unwrap()).collect();
        assert!(slots.take().is_none());
        drop(held);
        assert!(slots.take().is_some());
    }
}
