//! Caps on backend connections per user and per schema, on one core.
//!
//! A command whose user or schema already holds its cap waits, first come
//! first served, until one of those connections is given back, or
//! `backlog.wait_timeout` passes. The slot travels with the leased
//! connection and is freed when the connection goes back to the pool or
//! is closed, however that happens.

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::rc::{Rc, Weak};
use std::time::Duration;

use crate::error::EngineError;
use crate::oneshot::{self, Receiver, Sender};
use crate::rt;

/// What a cap counts.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum CapKey {
    /// A user's connections.
    User(Rc<str>),
    /// Connections used in a schema.
    Schema(Vec<u8>),
}

/// The counts and waiters of one core.
#[derive(Debug, Default)]
pub struct Caps {
    held: RefCell<HashMap<CapKey, usize>>,
    waiters: RefCell<HashMap<CapKey, VecDeque<Sender<()>>>>,
}

/// A held slot under one or more caps; freeing it wakes the next waiter.
#[derive(Debug)]
pub struct CapSlot {
    caps: Weak<Caps>,
    keys: Vec<CapKey>,
}

impl Drop for CapSlot {
    fn drop(&mut self) {
        if let Some(caps) = self.caps.upgrade() {
            caps.free(&self.keys);
        }
    }
}

impl Caps {
    /// Takes a slot under every `(key, limit)`, waiting up to `wait` for one
    /// to free up.
    pub async fn acquire(
        self: &Rc<Self>,
        limits: &[(CapKey, usize)],
        wait: Duration,
    ) -> Result<CapSlot, EngineError> {
        let deadline = std::time::Instant::now() + wait;
        loop {
            let full = limits
                .iter()
                .find(|(k, limit)| self.held.borrow().get(k).copied().unwrap_or(0) >= *limit);
            let Some((key, limit)) = full else {
                let mut held = self.held.borrow_mut();
                for (k, _) in limits {
                    *held.entry(k.clone()).or_default() += 1;
                }
                return Ok(CapSlot {
                    caps: Rc::downgrade(self),
                    keys: limits.iter().map(|(k, _)| k.clone()).collect(),
                });
            };
            let (tx, rx) = oneshot::channel();
            self.waiters
                .borrow_mut()
                .entry(key.clone())
                .or_default()
                .push_back(tx);
            let mut wake = Wake {
                caps: self,
                key: key.clone(),
                rx,
            };
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if rt::timeout(left, &mut wake.rx).await.is_none() && wake.rx.try_take().is_none() {
                return Err(EngineError::CapReached {
                    what: match key {
                        CapKey::User(u) => format!("user '{u}' (users[].max_backend_connections_per_core)"),
                        CapKey::Schema(s) => format!(
                            "schema '{}' (schema_limits[].max_backend_connections_per_core)",
                            String::from_utf8_lossy(s)
                        ),
                    },
                    limit: *limit,
                    waited: wait,
                });
            }
        }
    }

    /// Connections held under `key` now.
    pub fn held(&self, key: &CapKey) -> usize {
        self.held.borrow().get(key).copied().unwrap_or(0)
    }

    fn free(&self, keys: &[CapKey]) {
        for k in keys {
            if let Some(n) = self.held.borrow_mut().get_mut(k) {
                *n = n.saturating_sub(1);
            }
            self.wake_next(k);
        }
    }

    /// Wakes the first waiter still waiting on `key`.
    fn wake_next(&self, key: &CapKey) {
        let mut waiters = self.waiters.borrow_mut();
        if let Some(q) = waiters.get_mut(key) {
            while let Some(tx) = q.pop_front() {
                if tx.send(()).is_ok() {
                    break;
                }
            }
            if q.is_empty() {
                waiters.remove(key);
            }
        }
    }
}

/// A waiter's place in line. A waiter woken but gone before it ran (its
/// command was killed, its client left) passes the wake-up on, or the
/// others would sleep until their deadline beside a free slot.
struct Wake<'a> {
    caps: &'a Caps,
    key: CapKey,
    rx: Receiver<()>,
}

impl Drop for Wake<'_> {
    fn drop(&mut self) {
        if self.rx.try_take().is_some() {
            self.caps.wake_next(&self.key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_count_and_free() {
        let caps = Rc::new(Caps::default());
        let user = CapKey::User(Rc::from("app"));
        let slot = futures_lite::future::block_on(caps.acquire(&[(user.clone(), 1)], Duration::ZERO));
        let slot = slot.unwrap();
        assert_eq!(caps.held(&user), 1);
        drop(slot);
        assert_eq!(caps.held(&user), 0);
    }

    /// A waiter dropped after its wake-up came passes it to the next one.
    #[test]
    fn caps_wake_up_passes_on_when_the_woken_waiter_is_gone() {
        let run = rt::spawn_executor("caps-test", None, std::time::Duration::ZERO, || async {
            use std::future::Future;
            let caps = Rc::new(Caps::default());
            let user = CapKey::User(Rc::from("app"));
            let limits = [(user.clone(), 1)];
            let held = caps.acquire(&limits, Duration::ZERO).await.unwrap();
            let noop = std::task::Waker::noop();
            let mut cx = std::task::Context::from_waker(noop);
            let wait = Duration::from_secs(60);
            let mut first = Box::pin(caps.acquire(&limits, wait));
            let mut second = Box::pin(caps.acquire(&limits, wait));
            assert!(first.as_mut().poll(&mut cx).is_pending());
            assert!(second.as_mut().poll(&mut cx).is_pending());
            drop(held); // wakes the first waiter...
            drop(first); // ...which is gone before it runs
            second.as_mut().poll(&mut cx).is_ready()
        });
        assert!(run.unwrap().join().unwrap(), "the second waiter got the slot");
    }
}
