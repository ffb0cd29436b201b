//! The backlog: commands waiting for a backend connection, first come first
//! served.
//!
//! A released connection goes straight to the oldest live waiter whose pool
//! key matches, so a waiter wakes the moment a connection frees up.
//!
//! Every operation is O(1) in the number of waiters (O(keys), and a pool
//! sees a handful of keys): waiters are queued per key, a counter tracks the
//! live ones, and waiters that gave up (deadline, or their client left) are
//! dropped lazily when they reach the front of their queue. The profile at
//! 4096 clients showed a scan of the whole queue per call taking a third of
//! Funnel's CPU.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use crate::error::EngineError;
use crate::oneshot::{self, Receiver, Sender};
use crate::pool::conn::BackendConn;
use crate::pool::key::PoolKey;

/// What a waiter receives: a connection, or why none will come.
pub type Handoff<C = BackendConn> = Result<C, EngineError>;

/// What the backlog hands over: something that belongs to one pool key.
pub trait Keyed {
    /// The pool key it serves.
    fn key(&self) -> PoolKey;
}

impl Keyed for BackendConn {
    fn key(&self) -> PoolKey {
        self.key
    }
}

struct Waiter<C> {
    tx: Sender<Handoff<C>>,
    /// Arrival order across keys (the oldest waiter overall is the lowest).
    seq: u64,
    since: Instant,
}

struct KeyQueue<C> {
    key: PoolKey,
    waiters: VecDeque<Waiter<C>>,
}

/// How long the oldest waiter may watch connections go to younger waiters
/// with another pool key before a released connection is traded in for its
/// key. Without it, clients whose capabilities or charset differ from the
/// majority's starve under steady load (found by the soak run).
const STARVATION_LIMIT: Duration = Duration::from_millis(50);

/// [`STARVATION_LIMIT`] where the released connection can be switched to
/// the waiter's key (another charset or multi-statement option,
/// [`PoolKey::switches_to`]): the switch costs a `SET NAMES` at most, not
/// a login, so a small group of clients of other settings waits little
/// longer than the large one beside it (one in eight latin1 clients had
/// their p99 at 32 ms against the others' 7 ms with the full limit).
const SWITCH_STARVATION_LIMIT: Duration = Duration::from_millis(5);

/// How long a waiter of `want` may watch connections of `have` go to
/// others before one is traded (or switched) for it.
fn starvation_limit(have: PoolKey, want: PoolKey) -> Duration {
    if have.switches_to(want) {
        SWITCH_STARVATION_LIMIT
    } else {
        STARVATION_LIMIT
    }
}

/// Queues holding more dead entries than this (beyond twice the live ones)
/// are swept, so waiters that gave up mid-queue cannot pile up.
const SWEEP_SLACK: usize = 64;

/// FIFO of commands waiting for a connection on one core.
pub struct Backlog<C = BackendConn> {
    queues: RefCell<Vec<KeyQueue<C>>>,
    /// Waiters still waiting (their [`Ticket`] is alive and unanswered).
    live: Rc<Cell<usize>>,
    next_seq: Cell<u64>,
}

/// A place in the backlog: resolves to the connection (or the reason none
/// will come). Dropping it gives the place up.
pub struct Ticket<C = BackendConn> {
    rx: Receiver<Handoff<C>>,
    live: Rc<Cell<usize>>,
}

impl<C> Default for Backlog<C> {
    fn default() -> Self {
        Backlog {
            queues: RefCell::new(Vec::new()),
            live: Rc::default(),
            next_seq: Cell::new(0),
        }
    }
}

impl<C: Keyed> Backlog<C> {
    /// Joins the queue for `key`.
    pub fn enqueue(&self, key: PoolKey) -> Ticket<C> {
        let (tx, rx) = oneshot::channel();
        let seq = self.next_seq.get();
        self.next_seq.set(seq + 1);
        let waiter = Waiter {
            tx,
            seq,
            since: Instant::now(),
        };
        {
            let mut queues = self.queues.borrow_mut();
            match queues.iter_mut().find(|q| q.key == key) {
                Some(q) => q.waiters.push_back(waiter),
                None => queues.push(KeyQueue {
                    key,
                    waiters: VecDeque::from([waiter]),
                }),
            }
        }
        self.live.set(self.live.get() + 1);
        self.sweep_if_littered();
        Ticket {
            rx,
            live: self.live.clone(),
        }
    }

    /// Waiters still waiting.
    pub fn len(&self) -> usize {
        self.live.get()
    }

    /// True when nobody waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Gives `conn` to the oldest live waiter with the same key; returns it
    /// back when there is none, or when the oldest waiter overall wants
    /// another key and has waited past its [`starvation_limit`].
    // The connection travels by value on purpose: boxing it would cost an
    // allocation on every release, the hottest pool path.
    #[allow(clippy::result_large_err)]
    pub fn hand_over(&self, conn: C) -> Result<(), C> {
        if self.is_empty() {
            return Err(conn);
        }
        let waiter = {
            let mut queues = self.queues.borrow_mut();
            if let Some(oldest) = oldest_front(&mut queues) {
                let (key, since) = (queues[oldest].key, queues[oldest].waiters[0].since);
                if key != conn.key() && since.elapsed() >= starvation_limit(conn.key(), key) {
                    // The caller trades this connection in for that key.
                    return Err(conn);
                }
            }
            let Some(q) = queues.iter_mut().find(|q| q.key == conn.key()) else {
                return Err(conn);
            };
            prune_front(&mut q.waiters);
            match q.waiters.pop_front() {
                Some(w) => w,
                None => return Err(conn),
            }
        };
        self.live.set(self.live.get() - 1);
        // The front was live and nothing ran since: the send cannot fail.
        waiter.tx.send(Ok(conn)).map_err(|back| match back {
            Ok(conn) => conn,
            Err(_) => unreachable!("only connections are sent here"),
        })
    }

    /// The key of the oldest live waiter, if any.
    pub fn first_key(&self) -> Option<PoolKey> {
        if self.is_empty() {
            return None;
        }
        let mut queues = self.queues.borrow_mut();
        oldest_front(&mut queues).map(|i| queues[i].key)
    }

    /// Tells the oldest live waiter with `key` why no connection will come.
    pub fn fail_first(&self, key: PoolKey, err: EngineError) {
        let waiter = {
            let mut queues = self.queues.borrow_mut();
            let Some(q) = queues.iter_mut().find(|q| q.key == key) else {
                return;
            };
            prune_front(&mut q.waiters);
            q.waiters.pop_front()
        };
        if let Some(w) = waiter {
            self.live.set(self.live.get() - 1);
            let _ = w.tx.send(Err(err));
        }
    }

    /// Tells every live waiter with `key` why no connection will come.
    pub fn fail_key(&self, key: PoolKey, err: impl Fn() -> EngineError) {
        let waiters = {
            let mut queues = self.queues.borrow_mut();
            let Some(i) = queues.iter().position(|q| q.key == key) else {
                return;
            };
            queues.swap_remove(i).waiters
        };
        for w in waiters {
            if !w.tx.is_closed() {
                self.live.set(self.live.get() - 1);
                let _ = w.tx.send(Err(err()));
            }
        }
    }

    /// Removes dead entries everywhere once they outnumber the live ones
    /// well (waiters that gave up behind a live one are not at a front).
    fn sweep_if_littered(&self) {
        let mut queues = self.queues.borrow_mut();
        if queued(&queues) <= 2 * self.live.get() + SWEEP_SLACK {
            return;
        }
        for q in queues.iter_mut() {
            q.waiters.retain(|w| !w.tx.is_closed());
        }
        queues.retain(|q| !q.waiters.is_empty());
    }
}

/// Entries in the queues, waiters that gave up included (a handful of keys,
/// so counting is cheap).
fn queued<C>(queues: &[KeyQueue<C>]) -> usize {
    queues.iter().map(|q| q.waiters.len()).sum()
}

/// Drops the waiters at the front of `waiters` that gave up.
fn prune_front<C>(waiters: &mut VecDeque<Waiter<C>>) {
    while waiters.front().is_some_and(|w| w.tx.is_closed()) {
        waiters.pop_front();
    }
}

/// The index of the queue whose live front waiter arrived first.
fn oldest_front<C>(queues: &mut [KeyQueue<C>]) -> Option<usize> {
    let mut best: Option<(usize, u64)> = None;
    for (i, q) in queues.iter_mut().enumerate() {
        prune_front(&mut q.waiters);
        if let Some(w) = q.waiters.front() {
            if best.is_none_or(|(_, seq)| w.seq < seq) {
                best = Some((i, w.seq));
            }
        }
    }
    best.map(|(i, _)| i)
}

impl<C> Ticket<C> {
    /// Takes a connection (or error) that was already handed over, without
    /// waiting: one may arrive just as a deadline fires.
    pub fn try_take(&self) -> Option<Handoff<C>> {
        self.rx.try_take()
    }
}

impl<C> Future for Ticket<C> {
    type Output = Handoff<C>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Handoff<C>> {
        Pin::new(&mut self.rx).poll(cx)
    }
}

impl<C> Drop for Ticket<C> {
    fn drop(&mut self) {
        // Still queued (nobody answered): this waiter stops counting now;
        // its entry is dropped when it reaches the front.
        if self.rx.sender_alive() {
            self.live.set(self.live.get() - 1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use funnel_protocol::Capabilities;

    /// A stand-in connection: its key and a number to tell them apart.
    #[derive(Debug, PartialEq)]
    struct Conn(PoolKey, u32);

    impl Keyed for Conn {
        fn key(&self) -> PoolKey {
            self.0
        }
    }

    fn key(charset: u8) -> PoolKey {
        PoolKey {
            caps: Capabilities(0),
            charset,
        }
    }

    fn got(t: &Ticket<Conn>) -> Option<u32> {
        t.try_take().map(|h| h.expect("a connection").1)
    }

    #[test]
    fn backlog_hands_over_in_arrival_order() {
        let b = Backlog::<Conn>::default();
        let t: Vec<_> = (0..3).map(|_| b.enqueue(key(1))).collect();
        assert_eq!(b.len(), 3);
        for i in 0..3 {
            b.hand_over(Conn(key(1), i)).unwrap();
        }
        assert_eq!(t.iter().map(got).collect::<Vec<_>>(), [Some(0), Some(1), Some(2)]);
        assert!(b.is_empty());
        assert_eq!(b.hand_over(Conn(key(1), 9)), Err(Conn(key(1), 9)));
        drop(t);
        assert_eq!(b.len(), 0, "answered tickets do not count on drop");
    }

    #[test]
    fn backlog_skips_waiters_that_gave_up() {
        let b = Backlog::<Conn>::default();
        let t0 = b.enqueue(key(1));
        let t1 = b.enqueue(key(1));
        let t2 = b.enqueue(key(1));
        drop(t0);
        drop(t1);
        assert_eq!(b.len(), 1);
        b.hand_over(Conn(key(1), 7)).unwrap();
        assert_eq!(got(&t2), Some(7));
        assert_eq!((b.len(), queued(&b.queues.borrow())), (0, 0));
    }

    #[test]
    fn backlog_matches_keys_and_reports_the_oldest() {
        let b = Backlog::<Conn>::default();
        let a = b.enqueue(key(1));
        let c = b.enqueue(key(2));
        assert_eq!(b.first_key(), Some(key(1)));
        // A fresh waiter of another key does not block a matching one.
        b.hand_over(Conn(key(2), 5)).unwrap();
        assert_eq!(got(&c), Some(5));
        assert_eq!(b.hand_over(Conn(key(2), 6)), Err(Conn(key(2), 6)));
        b.fail_first(key(1), EngineError::BacklogFull { max_waiting: 1 });
        assert!(a.try_take().is_some_and(|h| h.is_err()));
        assert_eq!(b.first_key(), None);
        assert!(b.is_empty());
    }

    #[test]
    fn backlog_fail_key_tells_that_keys_waiters_only() {
        let b = Backlog::<Conn>::default();
        let bad: Vec<_> = (0..3).map(|_| b.enqueue(key(1))).collect();
        let good = b.enqueue(key(2));
        drop(b.enqueue(key(1)));
        assert_eq!(b.len(), 4);
        b.fail_key(key(1), || EngineError::BacklogFull { max_waiting: 1 });
        assert!(bad.iter().all(|t| t.try_take().is_some_and(|h| h.is_err())));
        assert_eq!((b.len(), b.first_key()), (1, Some(key(2))));
        drop(bad);
        assert_eq!(b.len(), 1, "answered tickets do not count on drop");
        b.hand_over(Conn(key(2), 4)).unwrap();
        assert_eq!(got(&good), Some(4));
    }

    #[test]
    fn backlog_trades_in_for_a_starving_oldest_waiter() {
        let b = Backlog::<Conn>::default();
        let old = b.enqueue(key(2));
        let young = b.enqueue(key(1));
        std::thread::sleep(STARVATION_LIMIT + Duration::from_millis(5));
        assert_eq!(b.hand_over(Conn(key(1), 1)), Err(Conn(key(1), 1)));
        assert_eq!(b.first_key(), Some(key(2)));
        drop(old);
        b.hand_over(Conn(key(1), 2)).unwrap();
        assert_eq!(got(&young), Some(2));
    }

    #[test]
    fn backlog_switches_sooner_for_a_waiter_of_another_charset() {
        let b = Backlog::<Conn>::default();
        // latin1 waits first; utf8mb4 waiters keep coming.
        let latin1 = b.enqueue(key(8));
        let utf8mb4 = b.enqueue(key(45));
        std::thread::sleep(SWITCH_STARVATION_LIMIT + Duration::from_millis(2));
        // A utf8mb4 connection can take latin1 with a SET NAMES: it goes
        // to the oldest waiter's key well before STARVATION_LIMIT.
        assert_eq!(b.hand_over(Conn(key(45), 1)), Err(Conn(key(45), 1)));
        assert_eq!(b.first_key(), Some(key(8)));
        b.hand_over(Conn(key(8), 2)).unwrap();
        assert_eq!(got(&latin1), Some(2));
        // Keys that cannot switch (a charset Funnel cannot name) still wait
        // out the full limit.
        let other = b.enqueue(key(2));
        let young = b.enqueue(key(45));
        std::thread::sleep(SWITCH_STARVATION_LIMIT + Duration::from_millis(2));
        b.hand_over(Conn(key(45), 3)).unwrap();
        assert_eq!(got(&utf8mb4), Some(3));
        b.hand_over(Conn(key(45), 4)).unwrap();
        assert_eq!(got(&young), Some(4));
        drop(other);
    }

    #[test]
    fn backlog_sweeps_dead_waiters_stuck_behind_a_live_one() {
        let b = Backlog::<Conn>::default();
        let first = b.enqueue(key(1));
        for _ in 0..1000 {
            drop(b.enqueue(key(1)));
        }
        assert_eq!(b.len(), 1);
        let q = queued(&b.queues.borrow());
        assert!(q <= 2 + SWEEP_SLACK, "queued {q}");
        b.hand_over(Conn(key(1), 3)).unwrap();
        assert_eq!(got(&first), Some(3));
    }
}
