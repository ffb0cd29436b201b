//! What a query rule does to a statement beside routing it: refuse it (its
//! `error`) before any server sees it, or stop it on the server once it
//! has run for the rule's `timeout` (a `KILL QUERY` of its own, as a
//! client's `KILL QUERY` of itself). Both apply whatever the session
//! holds: a transaction, a pin, autocommit off.

use std::future::Future;
use std::rc::Rc;
use std::time::Duration;

use funnel_protocol::response::ErrPacket;

use super::{End, Session};
use crate::rt;
use crate::rules::Action;

impl Session {
    /// The action of the first query rule that matches statement text
    /// `sql` in `schema`, for this session's user, counted as the rule's
    /// hit: call it once for each statement the client sends (a query, a
    /// prepare, an execute).
    pub(super) fn rule_for(&self, sql: &[u8], schema: Option<&[u8]>) -> Option<Rc<Action>> {
        let rules = self.shard.rules();
        if rules.is_empty() {
            return None;
        }
        rules.apply(sql, &self.user.name, schema)
    }

    /// Answers a statement a rule refuses with the rule's ERR (1148).
    /// Nothing was sent: to the client it is a failed statement, whose
    /// diagnostics its `SHOW WARNINGS` reads as after any other of
    /// Funnel's own errors.
    pub(super) async fn refuse_by_rule(&mut self, err: &ErrPacket) -> Result<(), End> {
        tracing::debug!(client = %self.id, error = %err, "statement refused by a query rule");
        self.send_own_err(1, err).await
    }
}

/// Runs `relay` (a statement's reply) to its end; should it last longer
/// than `limit`, calls `stop` once (which kills the statement on the
/// server) and goes on relaying: the server's reply then ends with the
/// interrupted ERR, and the connection stays usable.
pub(super) async fn stopping_after<T>(
    relay: impl Future<Output = T>,
    limit: Duration,
    stop: impl FnOnce(),
) -> T {
    let mut relay = std::pin::pin!(relay);
    let first = futures_lite::future::or(async { Some(relay.as_mut().await) }, async {
        rt::sleep(limit).await;
        None
    })
    .await;
    match first {
        Some(end) => end,
        None => {
            stop();
            relay.await
        }
    }
}
