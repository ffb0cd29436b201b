//! What keeps the admin and metrics listeners, one thread per connection,
//! from being exhausted: a cap on connections served at once, and a pause
//! after a failed accept (out of file descriptors, a failed accept returns
//! at once, and a loop retrying it would take a whole CPU from the cores).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

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
