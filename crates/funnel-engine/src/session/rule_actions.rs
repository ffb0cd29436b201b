//! What a query rule does to a statement beside routing it: refuse it (its
//! `error`) or answer it with an OK (`ok`) before any server sees it, hold
//! it back a while (`delay`), or stop it on the server once it has run for
//! the rule's `timeout` (a `KILL QUERY` of its own, as a client's `KILL
//! QUERY` of itself). All apply whatever the session holds: a
//! transaction, a pin, autocommit off.

use std::future::Future;
use std::time::Duration;

use bytes::{BufMut, BytesMut};
use funnel_protocol::flags::StatusFlags;
use funnel_protocol::framing::{write_small_packet, PacketHeader, HEADER_LEN, MAX_CHUNK};
use funnel_protocol::response::{ErrPacket, OkPacket};

use super::command::{plan, Plan};
use super::{End, Session};
use crate::error::EngineError;
use crate::kill::ClientState;
use crate::rt;
use crate::rules::Action;

/// The text-query command byte.
const COM_QUERY: u8 = 0x03;

impl Session {
    /// Applies the query rules to the command at the front of the buffer
    /// (`head`, `total` bytes), when it is a text query: the matching
    /// rules' refusal comes back as the ERR to answer; their rewrites
    /// replace the text in the buffer before anything reads it (the new
    /// command's header and size come back); what they do is kept for
    /// the command's forward (its `timeout`).
    pub(super) fn apply_query_rule(
        &mut self,
        head: PacketHeader,
        total: usize,
    ) -> Result<(PacketHeader, usize), ErrPacket> {
        self.query_rule = None;
        self.query_rules_seen = 0;
        self.query_text_sent = None;
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
        let applied = rules.apply(&payload[1..], &self.user.name, self.schema.as_deref(), &self.peer);
        self.query_rules_seen = rules.id();
        let Some(crate::rules::Applied { action: rule, text }) = applied else {
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
        let Some(text) = text else {
            self.query_rule = Some(rule);
            return Ok((head, total));
        };
        self.query_rule = Some(rule.clone());
        // Over 16 MiB: the rules saw the first packet's part only.
        if total != head.total_len() || text.len() + 1 >= MAX_CHUNK {
            return Err(too_large_to_rewrite(&rule));
        }
        let mut packet = BytesMut::with_capacity(HEADER_LEN + 1 + text.len());
        write_small_packet(&mut packet, 0, |p| {
            p.put_u8(COM_QUERY);
            p.put_slice(&text);
        });
        self.query_text_sent = Some(payload[1..].to_vec());
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

impl Session {
    /// Runs a text query whose rule answers it with an OK or holds it
    /// back first (`ok`, `delay`).
    pub(super) async fn run_by_rule(&mut self, head: PacketHeader, total: usize) -> Result<(), End> {
        let Some(rule) = self.query_rule.clone() else {
            return self.dispatch(head, total).await;
        };
        if let Some(message) = &rule.ok {
            self.note_shape(total);
            self.log_query_text(total);
            let payload = &self.buf.bytes()[HEADER_LEN..head.total_len()];
            let several = match plan(payload, self.caps) {
                Plan::Forward(f) => f.several_statements,
                _ => false,
            };
            let ends_transaction = self.pinned.as_ref().is_some_and(|c| c.may_be_in_transaction())
                && ends_transaction(&payload[1..]);
            self.buf.consume(total);
            if several {
                // One OK for all would tell the client that statements
                // after the first succeeded, which nothing ran.
                return self.refuse_by_rule(&ok_for_one_statement(&rule)).await;
            }
            if ends_transaction {
                // An OK would tell the client its transaction is over
                // (committed, or rolled back) while it goes on.
                return self.refuse_by_rule(&ok_ending_no_transaction(&rule)).await;
            }
            return self.answer_ok_by_rule(message).await;
        }
        if let Some(delay) = rule.delay {
            // `SHOW CLIENTS` shows what a held client waits to run, as for
            // one waiting for a connection.
            self.note_digest(total);
            if let Err(e) = self.hold_back(delay).await? {
                self.log_query_text(total);
                self.buf.consume(total);
                // (A `ROLLBACK AND CHAIN` stopped here ended nothing: see
                // `send_own_err`.)
                return self.reply_error(1, e).await;
            }
        }
        self.dispatch(head, total).await
    }

    /// Answers the client's statement with its rule's OK, sent nowhere: to
    /// the client it is a statement that succeeded, changed no row and
    /// left no warning (`ROW_COUNT()` reads 0, `SHOW WARNINGS` nothing).
    pub(super) async fn answer_ok_by_rule(&mut self, message: &[u8]) -> Result<(), End> {
        tracing::debug!(client = %self.id, "statement answered by a query rule's ok");
        // A `ROLLBACK AND CHAIN` answered here ended nothing (as one
        // refused, see `refuse_by_rule`).
        if std::mem::take(&mut self.ends_lost_transaction) {
            self.tx_lost = true;
        }
        self.last.row_count = 0;
        // A pinned session's server still has the count before.
        self.own_row_count_next = self.sticky();
        self.own_err = None;
        // A connection the session holds has the previous statement's
        // diagnostics there: a diagnostics read clears them first.
        self.foreign_diagnostics = true;
        self.last_succeeded = true;
        self.last_result_columns = 0;
        // The session's lasting flags, not those the server set for the
        // statement before on a held connection (no index used, a slow
        // query, a cursor), which a server's OK for this one would not
        // carry.
        let lasting = StatusFlags::SERVER_STATUS_IN_TRANS.0
            | StatusFlags::SERVER_STATUS_AUTOCOMMIT.0
            | StatusFlags::SERVER_STATUS_IN_TRANS_READONLY.0
            | StatusFlags::SERVER_STATUS_NO_BACKSLASH_ESCAPES.0;
        let ok = OkPacket {
            status: StatusFlags(self.client_status().0 & lasting),
            info: message.to_vec(),
            ..Default::default()
        };
        self.write_ok(1, &ok).await
    }

    /// Waits out a rule's `delay` before the statement runs, holding no
    /// connection the session does not hold already. A `KILL QUERY` of
    /// the statement (or a `KILL` of the client) stops the wait, as it
    /// stops one for a connection: the statement never runs (the inner
    /// ERR). So does the client's leaving (closing its socket, or a
    /// `COM_QUIT`), which ends the session (`End::Closed`): a client that
    /// gave up on the statement, maybe to send it again on another
    /// connection, must not have it run once the delay is over.
    pub(super) async fn hold_back(&mut self, delay: Duration) -> Result<Result<(), EngineError>, End> {
        if self.linger {
            // A connection kept only so the client could read its
            // warnings goes back, as once `LINGER` passes: the wait may be
            // long, and it would hold the connection from other clients.
            self.linger = false;
            self.release_if_free();
        }
        let (state, _) = self.control.state();
        self.control.take_wait_interrupted();
        self.control.set_state(ClientState::Waiting);
        let stopped = self.control.wait_stopped();
        let buf = &mut self.buf;
        let stream = &mut self.stream;
        // Only the client's leaving is looked for: other bytes it sends
        // meanwhile (a pipelined command) wait in the buffer, and the
        // watch ends there (the buffer takes no more).
        let left = async {
            loop {
                let before = buf.bytes().len();
                match buf.fill(stream).await {
                    Err(_) => return,
                    Ok(0) => continue,
                    Ok(_) => {
                        if buf.bytes()[before..] == COM_QUIT_PACKET {
                            return;
                        }
                        std::future::pending::<()>().await;
                    }
                }
            }
        };
        let waited = futures_lite::future::or(
            async {
                rt::sleep(delay).await;
                Some(true)
            },
            futures_lite::future::or(
                async {
                    stopped.await;
                    Some(false)
                },
                async {
                    left.await;
                    None
                },
            ),
        )
        .await;
        self.control.set_state(state);
        match waited {
            None => {
                tracing::debug!(client = %self.id, "client left during a query rule's delay");
                Err(End::Closed)
            }
            Some(true) => Ok(Ok(())),
            Some(false) if self.control.take_wait_interrupted() && !self.control.is_killed() => {
                Ok(Err(EngineError::Interrupted))
            }
            Some(false) => Ok(Err(EngineError::ConnectionKilled)),
        }
    }
}

/// A `COM_QUIT` as a client sends it: a packet of one byte, 0x01.
const COM_QUIT_PACKET: [u8; 5] = [1, 0, 0, 0, 1];

/// The ERR for a multi-statement text a rule answers with `ok`: an OK
/// would answer every statement in it, and none runs (1148, as a refusal).
fn ok_for_one_statement(rule: &Action) -> ErrPacket {
    ErrPacket::new(
        1148,
        "42000",
        format!(
            "query_rules[{}].ok answers a single statement: this query holds several, and none ran",
            rule.index
        ),
    )
}

/// True when `sql` ends an open transaction: a `COMMIT`, a statement
/// that commits before it runs (DDL, `BEGIN`, ...), or a `ROLLBACK` but
/// one to a savepoint.
pub(super) fn ends_transaction(sql: &[u8]) -> bool {
    if super::lost_transaction::commits(sql) {
        return true;
    }
    let mut words = super::sql_lex::skip_leading_comments(sql)
        .split(|c| c.is_ascii_whitespace() || *c == b';' || *c == b'/')
        .filter(|w| !w.is_empty());
    words.next().is_some_and(|w| w.eq_ignore_ascii_case(b"ROLLBACK"))
        && !words.any(|w| w.eq_ignore_ascii_case(b"TO"))
}

/// The ERR for a text a rule answers with `ok` that would end the
/// session's open transaction (1148, as a refusal).
pub(super) fn ok_ending_no_transaction(rule: &Action) -> ErrPacket {
    ErrPacket::new(
        1148,
        "42000",
        format!(
            "query_rules[{}].ok would answer a statement that ends the open transaction, which would go \
             on: not run, the transaction is still open",
            rule.index
        ),
    )
}

/// The ERR for a binary prepare of a text a rule answers with `ok`: the
/// server's for a statement it cannot prepare (1295), which connectors
/// take as the cue to send the statement as a text query.
pub(super) fn not_preparable(rule: &Action) -> ErrPacket {
    ErrPacket::new(
        1295,
        "HY000",
        format!(
            "This command is not supported in the prepared statement protocol yet \
             (query_rules[{}].ok answers it as a text query only)",
            rule.index
        ),
    )
}

/// The ERR for a text a rule would rewrite that is, or would become, larger
/// than one packet (16 MiB): ER_NET_PACKET_TOO_LARGE, naming the (first)
/// rule that rewrote it.
fn too_large_to_rewrite(rule: &Action) -> ErrPacket {
    ErrPacket::new(
        1153,
        "08S01",
        format!(
            "query_rules[{}].rewrite: the statement is too large to rewrite (16 MiB at most)",
            rule.rewrite_rule.unwrap_or(rule.index)
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

#[cfg(test)]
mod tests {
    use super::ends_transaction;

    #[test]
    fn rule_actions_statements_that_end_a_transaction() {
        for sql in [
            "COMMIT",
            "commit work",
            "/* c */ ROLLBACK",
            "rollback and chain",
            "ROLLBACK;",
            "BEGIN",
            "CREATE TABLE x (a INT)",
            "SET autocommit = 1",
        ] {
            assert!(ends_transaction(sql.as_bytes()), "{sql}");
        }
        for sql in [
            "ROLLBACK TO SAVEPOINT s",
            "rollback work to s",
            "SELECT 1",
            "INSERT INTO t VALUES (1)",
        ] {
            assert!(!ends_transaction(sql.as_bytes()), "{sql}");
        }
    }
}
