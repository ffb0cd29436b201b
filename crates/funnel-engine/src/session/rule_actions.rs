//! What a query rule does to a statement beside routing it: refuse it (its
//! `error`) before any server sees it, or stop it on the server once it
//! has run for the rule's `timeout` (a `KILL QUERY` of its own, as a
//! client's `KILL QUERY` of itself). Both apply whatever the session
//! holds: a transaction, a pin, autocommit off.

use std::future::Future;
use std::time::Duration;

use bytes::{BufMut, BytesMut};
use funnel_protocol::framing::{write_small_packet, PacketHeader, HEADER_LEN, MAX_CHUNK};
use funnel_protocol::response::ErrPacket;

use super::{End, Session};
use crate::rt;
use crate::rules::Action;

/// The text-query command byte.
const COM_QUERY: u8 = 0x03;

impl Session {
    /// Applies the query rules to the command at the front of the buffer
    /// (`head`, `total` bytes), when it is a text query: the matching
    /// rule's refusal comes back as the ERR to answer; its rewrite
    /// replaces the text in the buffer before anything reads it (the new
    /// command's header and size come back); the rule itself is kept for
    /// the command's forward (its `timeout`).
    pub(super) fn apply_query_rule(
        &mut self,
        head: PacketHeader,
        total: usize,
    ) -> Result<(PacketHeader, usize), ErrPacket> {
        self.query_rule = None;
        self.query_rules_seen = 0;
        self.cache_miss = None;
        // Set again by this command's lost-transaction verdict, if it
        // comes to one: a text refused here ends nothing.
        self.ends_lost_transaction = false;
        let payload = &self.buf.bytes()[HEADER_LEN..head.total_len()];
        if payload.first() != Some(&COM_QUERY) {
            return Ok((head, total));
        }
        let rules = self.shard.rules();
        if rules.is_empty() {
            return Ok((head, total));
        }
        let rule = rules.apply(&payload[1..], &self.user.name, self.schema.as_deref(), &self.peer);
        self.query_rules_seen = rules.id();
        let Some(rule) = rule else {
            return Ok((head, total));
        };
        if let Some(err) = &rule.refusal {
            self.log.begin(
                &self.shard.query_log,
                Some(&rule),
                "query",
                &payload[1..],
                self.schema.as_deref(),
            );
            return Err(err.clone());
        }
        self.query_rule = Some(rule.clone());
        let rewritten = if !rule.rewrites {
            None
        } else if total != head.total_len() {
            // Over 16 MiB: the rule saw the first packet's part only.
            return Err(too_large_to_rewrite(&rule));
        } else {
            rules.rewrite(&rule, &payload[1..])
        };
        let Some(text) = rewritten else {
            return Ok((head, total));
        };
        if text.len() + 1 >= MAX_CHUNK {
            return Err(too_large_to_rewrite(&rule));
        }
        let mut packet = BytesMut::with_capacity(HEADER_LEN + 1 + text.len());
        write_small_packet(&mut packet, 0, |p| {
            p.put_u8(COM_QUERY);
            p.put_slice(&text);
        });
        self.buf.replace_front(total, &packet);
        let head = PacketHeader::peek(self.buf.bytes()).expect("a whole header was just written");
        Ok((head, packet.len()))
    }

    /// Answers a statement a rule refuses with the rule's ERR (1148).
    /// Nothing was sent: to the client it is a failed statement, whose
    /// diagnostics its `SHOW WARNINGS` reads as after any other of
    /// Funnel's own errors.
    pub(super) async fn refuse_by_rule(&mut self, err: &ErrPacket) -> Result<(), End> {
        tracing::debug!(client = %self.id, error = %err, "statement refused by a query rule");
        // A refused `ROLLBACK AND CHAIN` ended nothing: the statements
        // after it must not run in autocommit, out of the transaction
        // the client still thinks it is in.
        if std::mem::take(&mut self.ends_lost_transaction) {
            self.tx_lost = true;
        }
        self.send_own_err(1, err).await
    }
}

/// The ERR for a text a rule would rewrite that is, or would become, larger
/// than one packet (16 MiB): ER_NET_PACKET_TOO_LARGE, naming the rule.
fn too_large_to_rewrite(rule: &Action) -> ErrPacket {
    ErrPacket::new(
        1153,
        "08S01",
        format!(
            "query_rules[{}].rewrite: the statement is too large to rewrite (16 MiB at most)",
            rule.index
        ),
    )
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
