//! A shard's control channel: a crossbeam queue plus a doorbell.
//!
//! Senders are other cores, the admin threads and the binary's signal
//! handling, none of them on the shard's executor. The message goes on the
//! queue, then one byte on a socket pair wakes the shard's reactor, so the
//! shard sleeps until there is something to do (polling the queue every
//! 20 ms cost an idle Funnel ~50 wake-ups and 5 ms of CPU a second).

use std::io::{self, Write};
use std::os::unix::net::UnixStream;
use std::sync::Arc;

use crate::control::ControlMsg;
use crate::rt;

/// Sends control messages to one shard; cheap to clone.
#[derive(Clone, Debug)]
pub struct ControlSender {
    queue: crossbeam_channel::Sender<ControlMsg>,
    bell: Arc<UnixStream>,
}

/// The shard's end, before its executor takes it over.
pub struct ControlReceiver {
    queue: crossbeam_channel::Receiver<ControlMsg>,
    bell: UnixStream,
}

/// The shard's end on its executor: drain the queue, then wait for the bell.
pub struct ControlInbox {
    queue: crossbeam_channel::Receiver<ControlMsg>,
    bell: rt::Doorbell,
}

/// A new channel to one shard.
pub fn channel() -> io::Result<(ControlSender, ControlReceiver)> {
    let (ring, listen) = UnixStream::pair()?;
    // A full socket buffer means a wake-up is pending anyway: never block.
    ring.set_nonblocking(true)?;
    let (queue_tx, queue_rx) = crossbeam_channel::unbounded();
    Ok((
        ControlSender {
            queue: queue_tx,
            bell: Arc::new(ring),
        },
        ControlReceiver {
            queue: queue_rx,
            bell: listen,
        },
    ))
}

impl ControlSender {
    /// Queues `msg` and wakes the shard; gives the message back when the
    /// shard is gone.
    #[allow(clippy::result_large_err)]
    pub fn send(&self, msg: ControlMsg) -> Result<(), ControlMsg> {
        self.queue.send(msg).map_err(|e| e.into_inner())?;
        // WouldBlock: earlier rings are still unread, the shard will wake.
        let _ = (&*self.bell).write(&[1]);
        Ok(())
    }
}

impl ControlReceiver {
    /// Moves the receiving end onto the current shard's executor.
    pub fn into_inbox(self) -> io::Result<ControlInbox> {
        Ok(ControlInbox {
            queue: self.queue,
            bell: rt::Doorbell::from_std(self.bell)?,
        })
    }
}

/// What the inbox has for its shard now.
pub enum Received {
    /// A message.
    Msg(ControlMsg),
    /// Nothing queued.
    Empty,
    /// Every sender is gone.
    Closed,
}

impl ControlInbox {
    /// The next queued message, without waiting.
    pub fn try_recv(&self) -> Received {
        match self.queue.try_recv() {
            Ok(m) => Received::Msg(m),
            Err(crossbeam_channel::TryRecvError::Empty) => Received::Empty,
            Err(crossbeam_channel::TryRecvError::Disconnected) => Received::Closed,
        }
    }

    /// Waits until the bell rings (a message was queued after the last
    /// wait) or every sender is gone.
    pub async fn wait(&mut self) {
        self.bell.wait().await;
    }
}
