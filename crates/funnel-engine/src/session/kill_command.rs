//! `KILL [QUERY] id` and `COM_PROCESS_KILL` from a client: handled on this
//! core when it owns the target, otherwise sent to the owning core over its
//! control channel (see [`crate::kill`]).

use std::time::Duration;

use funnel_protocol::response::{ErrPacket, OkPacket};

use super::{backend_lost, End, Session};
use crate::control::ControlMsg;
use crate::error::EngineError;
use crate::ids::ClientId;
use crate::kill::{KillRefused, KillRequest};
use crate::rt;

/// How long a KILL waits for another core's answer.
const KILL_REPLY_LIMIT: Duration = Duration::from_secs(10);

impl Session {
    /// `KILL [QUERY] id`: on this shard directly, on another over its
    /// control channel.
    pub(super) async fn kill(&mut self, k: KillRequest) -> Result<(), End> {
        let Ok(id) = u32::try_from(k.id) else {
            self.last.row_count = -1;
            let err = ErrPacket::new(1094, "HY000", format!("Unknown thread id: {}", k.id));
            return self.send_own_err(1, &err).await;
        };
        let target = ClientId(id);
        let user = self.control.user.clone();
        let outcome = if target.shard() == self.shard.id {
            if target == self.id {
                return self.kill_self(k.query_only).await;
            }
            self.shard.kill_local(target, k.query_only, Some(&user)).await
        } else {
            self.kill_remote(target, k.query_only, user).await
        };
        // As on the server, `ROW_COUNT()` reads 0 after a `KILL` that
        // succeeded and -1 after one that failed.
        self.last.row_count = if outcome.is_ok() { 0 } else { -1 };
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
                self.send_own_err(1, &err).await
            }
            Err(KillRefused::NotOwner(id)) => {
                let err = ErrPacket::new(1095, "HY000", format!("You are not owner of thread {id}"));
                self.send_own_err(1, &err).await
            }
            // The server's own answer to the KILL: forwarded, as data.
            Err(KillRefused::Server(err)) => self.send_backend_err(1, &err).await,
            Err(KillRefused::Backend(reason)) => {
                self.reply_error(1, backend_lost(&self.last_backend, reason))
                    .await
            }
        }
    }

    /// `KILL [QUERY]` of the client's own id: the statement killed is the
    /// `KILL` itself. The server answers `KILL QUERY` with ER_QUERY_INTERRUPTED
    /// (1317) and goes on; `KILL CONNECTION` with ER_CONNECTION_KILLED
    /// (1927), then closes the connection (`sql_kill`: the killer finds
    /// itself killed and sends the kill message instead of OK; MariaDB
    /// 10.11 measured).
    async fn kill_self(&mut self, query_only: bool) -> Result<(), End> {
        if query_only {
            self.last.row_count = -1;
            return self.reply_error(1, EngineError::Interrupted).await;
        }
        self.control.kill();
        let _ = self.reply_error(1, EngineError::ConnectionKilled).await;
        Err(End::Closed)
    }

    async fn kill_remote(&self, target: ClientId, query_only: bool, user: String) -> Result<(), KillRefused> {
        let Some(peer) = self.shard.peers.get(usize::from(target.shard().0)) else {
            return Err(KillRefused::UnknownThread(target.0));
        };
        let Some(reply_to) = self.shard.peers.get(usize::from(self.shard.id.0)).cloned() else {
            return Err(KillRefused::Backend("this core has no control channel".into()));
        };
        let (ticket, outcome) = self.shard.await_kill_outcome();
        let msg = ControlMsg::Kill {
            target,
            query_only,
            user,
            reply_to,
            ticket,
        };
        if peer.send(msg).is_err() {
            self.shard.forget_kill_outcome(ticket);
            return Err(KillRefused::UnknownThread(target.0));
        }
        match rt::timeout(KILL_REPLY_LIMIT, outcome).await {
            Some(r) => r,
            None => {
                self.shard.forget_kill_outcome(ticket);
                Err(KillRefused::Backend(
                    "the owning core did not answer in time".into(),
                ))
            }
        }
    }
}
