//! The backlog: commands waiting for a backend connection, first come first
//! served.
//!
//! A released connection goes straight to the first live waiter whose pool
//! key matches, so a waiter wakes the moment a connection frees up. A waiter
//! that gave up (deadline, or its client left) is skipped and removed.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::error::EngineError;
use crate::oneshot::{self, Receiver, Sender};
use crate::pool::conn::BackendConn;
use crate::pool::key::PoolKey;

/// What a waiter receives: a connection, or why none will come.
pub type Handoff = Result<BackendConn, EngineError>;

struct Waiter {
    key: PoolKey,
    tx: Sender<Handoff>,
    since: Instant,
}

/// How long the oldest waiter may watch connections go to younger waiters
/// with another pool key before a released connection is traded in for its
/// key. Without it, clients whose capabilities or charset differ from the
/// majority's starve under steady load (found by the soak run).
const STARVATION_LIMIT: Duration = Duration::from_millis(50);

/// FIFO of commands waiting for a connection on one core.
#[derive(Default)]
pub struct Backlog {
    waiters: RefCell<VecDeque<Waiter>>,
}

impl Backlog {
    /// Joins the queue; the receiver resolves when a connection is handed over.
    pub fn enqueue(&self, key: PoolKey) -> Receiver<Handoff> {
        let (tx, rx) = oneshot::channel();
        self.waiters.borrow_mut().push_back(Waiter {
            key,
            tx,
            since: Instant::now(),
        });
        rx
    }

    /// Live waiters (those that gave up are dropped on the way).
    pub fn len(&self) -> usize {
        let mut w = self.waiters.borrow_mut();
        w.retain(|w| !w.tx.is_closed());
        w.len()
    }

    /// True when nobody waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Gives `conn` to the first live waiter with the same key; returns it
    /// back when there is none, or when the oldest waiter wants another key
    /// and has waited past [`STARVATION_LIMIT`].
    // The connection travels by value on purpose: boxing it would cost an
    // allocation on every release, the hottest pool path.
    #[allow(clippy::result_large_err)]
    pub fn hand_over(&self, conn: BackendConn) -> Result<(), BackendConn> {
        let mut conn = conn;
        loop {
            let waiter = {
                let mut w = self.waiters.borrow_mut();
                w.retain(|w| !w.tx.is_closed());
                if w.front()
                    .is_some_and(|f| f.key != conn.key && f.since.elapsed() >= STARVATION_LIMIT)
                {
                    // The oldest waiter needs another key and has waited
                    // long enough: the caller trades this connection in.
                    return Err(conn);
                }
                match w.iter().position(|w| w.key == conn.key) {
                    Some(i) => w.remove(i),
                    None => return Err(conn),
                }
            };
            match waiter.map(|w| w.tx.send(Ok(conn))) {
                Some(Ok(())) => return Ok(()),
                Some(Err(Ok(back))) => conn = back,
                Some(Err(Err(_))) | None => unreachable!("only connections are sent here"),
            }
        }
    }

    /// The key of the first live waiter, if any.
    pub fn first_key(&self) -> Option<PoolKey> {
        let mut w = self.waiters.borrow_mut();
        w.retain(|w| !w.tx.is_closed());
        w.front().map(|w| w.key)
    }

    /// Tells the first live waiter with `key` why no connection will come.
    pub fn fail_first(&self, key: PoolKey, err: EngineError) {
        let waiter = {
            let mut w = self.waiters.borrow_mut();
            w.retain(|w| !w.tx.is_closed());
            w.iter().position(|w| w.key == key).and_then(|i| w.remove(i))
        };
        if let Some(w) = waiter {
            let _ = w.tx.send(Err(err));
        }
    }
}
