//! A single-core oneshot channel: how a released backend connection is
//! handed straight to the first backlog waiter, so a waiter wakes the moment
//! a connection frees up (no polling tick).
//!
//! `Rc`/`RefCell` only: sender and receiver live on the same core.

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

struct Slot<T> {
    value: Option<T>,
    waker: Option<Waker>,
    receiver_gone: bool,
}

/// The sending half.
pub struct Sender<T>(Rc<RefCell<Slot<T>>>);

impl<T> std::fmt::Debug for Sender<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sender")
            .field("closed", &self.is_closed())
            .finish()
    }
}

/// The receiving half; a future that resolves once a value was sent.
pub struct Receiver<T>(Rc<RefCell<Slot<T>>>);

impl<T> std::fmt::Debug for Receiver<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Receiver")
            .field("sent", &self.0.borrow().value.is_some())
            .finish()
    }
}

/// A connected pair.
pub fn channel<T>() -> (Sender<T>, Receiver<T>) {
    let slot = Rc::new(RefCell::new(Slot {
        value: None,
        waker: None,
        receiver_gone: false,
    }));
    (Sender(slot.clone()), Receiver(slot))
}

impl<T> Sender<T> {
    /// Delivers `value`, or gives it back when the receiver is gone.
    pub fn send(self, value: T) -> Result<(), T> {
        let waker = {
            let mut slot = self.0.borrow_mut();
            if slot.receiver_gone {
                return Err(value);
            }
            slot.value = Some(value);
            slot.waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
        Ok(())
    }

    /// True when the receiver was dropped (the waiter gave up).
    pub fn is_closed(&self) -> bool {
        self.0.borrow().receiver_gone
    }
}

impl<T> Receiver<T> {
    /// Takes a value that was already delivered, without waiting.
    pub fn try_take(&self) -> Option<T> {
        self.0.borrow_mut().value.take()
    }

    /// True while the sender exists, i.e. nothing was sent yet and the
    /// sending side has not given up.
    pub fn sender_alive(&self) -> bool {
        Rc::strong_count(&self.0) > 1
    }
}

impl<T> Future for Receiver<T> {
    type Output = T;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        let mut slot = self.0.borrow_mut();
        match slot.value.take() {
            Some(v) => Poll::Ready(v),
            None => {
                slot.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        self.0.borrow_mut().receiver_gone = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oneshot_send_then_take() {
        let (tx, rx) = channel();
        assert!(rx.try_take().is_none());
        tx.send(5).unwrap();
        assert_eq!(rx.try_take(), Some(5));
    }

    #[test]
    fn oneshot_send_to_dropped_receiver_returns_value() {
        let (tx, rx) = channel::<u8>();
        drop(rx);
        assert!(tx.is_closed());
        assert_eq!(tx.send(7), Err(7));
    }
}
