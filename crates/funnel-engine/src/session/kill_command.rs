//! `KILL [QUERY] id` and `COM_PROCESS_KILL` from a client: handled on this
//! core when it owns the target, otherwise sent to the owning core over its
//! control channel (see [`crate::kill`]).

use std::time::{Duration, Instant};

use funnel_protocol::response::{ErrPacket, OkPacket};

use super::{backend_lost, End, Session};
use crate::control::ControlMsg;
use crate::ids::ClientId;
use crate::kill::{KillRefused, KillRequest};
use crate::rt;

/// How long a KILL waits for another core's answer.
const KILL_REPLY_LIMIT: Duration = Duration::from_secs(10);
/// How often it looks for that answer.
const KILL_REPLY_POLL: Duration = Duration::from_millis(2);

impl Session {
    /// `KILL [QUERY] id`: on this shard directly, on another over its
    /// control channel.
    pub(super) async fn kill(&mut self, k: KillRequest) -> Result<(), End> {
        let target = ClientId(k.id);
        let user = self.control.user.clone();
        let outcome = if target.shard() == self.shard.id {
            if target == self.id && !k.query_only {
                // Killing oneself: MySQL ends the connection at once.
                self.control.kill();
                return Err(End::Closed);
            }
            self.shard.kill_local(target, k.query_only, &user).await
        } else {
            self.kill_remote(target, k.query_only, user).await
        };
        match outcome {
            Ok(()) => {
                let ok = OkPacket {
                    status: self.client_status(),
                    ..Default::default()
                };
                self.write_ok(1, &ok).await
            }
            Err(KillRefused::UnknownThread(id)) => {
                let err = ErrPacket::new(1094, "HY000", format!("Unknown thread id: {id}"));
                self.send_backend_err(1, &err).await
            }
            Err(KillRefused::NotOwner(id)) => {
                let err = ErrPacket::new(1095, "HY000", format!("You are not owner of thread {id}"));
                self.send_backend_err(1, &err).await
            }
            Err(KillRefused::Backend(reason)) => {
                self.reply_error(1, backend_lost(&self.last_backend, reason))
                    .await
            }
        }
    }

    async fn kill_remote(&self, target: ClientId, query_only: bool, user: String) -> Result<(), KillRefused> {
        let Some(peer) = self.shard.peers.get(usize::from(target.shard().0)) else {
            return Err(KillRefused::UnknownThread(target.0));
        };
        let (tx, rx) = crossbeam_channel::bounded(1);
        let msg = ControlMsg::Kill {
            target,
            query_only,
            user,
            reply: tx,
        };
        if peer.send(msg).is_err() {
            return Err(KillRefused::UnknownThread(target.0));
        }
        // The other core answers within its control poll plus the kill itself.
        let deadline = Instant::now() + KILL_REPLY_LIMIT;
        loop {
            match rx.try_recv() {
                Ok(r) => return r,
                Err(crossbeam_channel::TryRecvError::Disconnected) => {
                    return Err(KillRefused::Backend("the owning core did not answer".into()))
                }
                Err(crossbeam_channel::TryRecvError::Empty) if Instant::now() > deadline => {
                    return Err(KillRefused::Backend(
                        "the owning core did not answer in time".into(),
                    ))
                }
                Err(crossbeam_channel::TryRecvError::Empty) => rt::sleep(KILL_REPLY_POLL).await,
            }
        }
    }
}
