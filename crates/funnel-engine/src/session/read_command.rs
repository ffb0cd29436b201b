//! Waiting for a client's next command: until all its packets are in
//! the buffer, within the client limits in force (`client.idle_timeout`,
//! `idle_transaction_timeout`, `net_read_timeout` and what
//! `client.max_transaction_time` leaves the open transaction; a reload
//! that changes them wakes the wait), or until a `KILL` or a graceful
//! stop. A client past a limit is told why before its connection closes.

use std::time::{Duration, Instant};

use funnel_protocol::framing::{PacketHeader, MAX_CHUNK};
use funnel_protocol::response::ErrPacket;

use super::{transaction_time, End, Session, LINGER};
use crate::error::EngineError;
use crate::kill::Stirred;
use crate::rt;

/// What woke a session waiting for its client.
enum Woke {
    /// Bytes arrived (`true`) or the socket failed or closed (`false`).
    Data(bool),
    /// What arrived cannot be read as the protocol says (a compressed
    /// packet that does not inflate to its stated length).
    Garbled(String),
    /// `client.idle_timeout` (or mid-command, `client.net_read_timeout`)
    /// passed.
    Idle,
    /// KILL or a graceful stop.
    Killed,
    /// A reload changed the limits on the wait.
    LimitsChanged,
}

impl Woke {
    /// What a read of the client's bytes came to.
    fn of(r: std::io::Result<usize>) -> Self {
        match r {
            Ok(_) => Woke::Data(true),
            Err(e) if e.kind() == std::io::ErrorKind::InvalidData => Woke::Garbled(e.to_string()),
            Err(_) => Woke::Data(false),
        }
    }
}

/// The limits on a wait for the client's next command, from the
/// configuration in force (a reload that changes them recomputes them).
struct WaitLimits {
    /// When the idle client goes: its idle timeout from the wait's start,
    /// or the end of what `client.max_transaction_time` leaves the open
    /// transaction when that comes first (`over_time`).
    idle_until: Option<Instant>,
    over_time: bool,
    /// The end of what `client.max_transaction_time` leaves the open
    /// transaction, which a client sending a command is held to too.
    transaction_ends: Option<Instant>,
    /// How long the rest of a command that began to arrive may take.
    mid_command: Option<Duration>,
}

impl WaitLimits {
    /// The limits under `client` for a wait that began at `idle_since`,
    /// of a session in a transaction or not, holding a connection
    /// (`pinned`) or not, whose transaction (if any) counts from `began`.
    fn of(
        client: &funnel_config::ClientConfig,
        idle_since: Instant,
        in_transaction: bool,
        pinned: bool,
        began: Option<Instant>,
    ) -> Self {
        let idle = if in_transaction {
            // A transaction left open holds its backend connection (and
            // the server's locks) from every other client.
            client.idle_transaction_timeout.non_zero()
        } else if !pinned {
            client.idle_timeout.non_zero()
        } else {
            None
        };
        let mut idle_until = idle.and_then(|i| idle_since.checked_add(i));
        // The transaction's own deadline, when it comes first.
        let mut over_time = false;
        let transaction_ends = began
            .zip(client.max_transaction_time.non_zero())
            .and_then(|(began, limit)| began.checked_add(limit));
        if let Some(ends) = transaction_ends {
            if idle_until.is_none_or(|i| ends <= i) {
                idle_until = Some(ends);
                over_time = true;
            }
        }
        WaitLimits {
            idle_until,
            over_time,
            transaction_ends,
            mid_command: client.net_read_timeout.non_zero(),
        }
    }

    /// How long the wait may last from `now`, and whether it then ends at
    /// the transaction's own deadline. An idle client: its idle limit, or
    /// that deadline. One whose command began to arrive is not idle: the
    /// rest must follow within `client.net_read_timeout` (none when 0),
    /// and `client.max_transaction_time` ends its transaction, busy or
    /// idle, all the same; never the idle limits, counted from the wait's
    /// start, which would close a client still sending.
    fn limit(&self, mid_command: bool, now: Instant) -> (Option<Duration>, bool) {
        let left = |until: Instant| until.saturating_duration_since(now);
        if !mid_command {
            return (self.idle_until.map(left), self.over_time);
        }
        match (self.mid_command, self.transaction_ends.map(left)) {
            (Some(read), Some(tx)) if read < tx => (Some(read), false),
            (_, Some(tx)) => (Some(tx), true),
            (read, None) => (read, false),
        }
    }
}

impl Session {
    /// Holds a lingering connection until the client's next bytes arrive or
    /// [`LINGER`] passes, then lets it go so other clients can use it.
    pub(super) async fn wait_while_lingering(&mut self) {
        let arrived = rt::timeout(LINGER, self.buf.fill(&mut self.stream)).await;
        if arrived.is_none() {
            self.linger = false;
            // Only a connection kept for the warnings alone goes: one that
            // holds a transaction or pinned state stays with the session.
            self.release_if_free();
        }
        // On data or EOF, the command loop reads (or notices) it next.
    }

    /// Waits until a whole command (all its physical packets) is buffered;
    /// returns its first header and its total size on the wire.
    pub(super) async fn read_command(&mut self) -> Result<(PacketHeader, usize), End> {
        let max = self.shard.config().client.max_packet_size.as_u64() as usize;
        let in_transaction = self.pinned.as_ref().is_some_and(|c| c.may_be_in_transaction());
        let rolled_back = std::mem::take(&mut self.tx_rolled_back);
        if !in_transaction {
            self.tx_began = None;
        } else if self.tx_began.is_none() && !rolled_back {
            // The command just done opened it (one answered here, after a
            // deadlock, counts from its arrival).
            self.tx_began = Some(self.cmd_sent.max(self.cmd_started));
        }
        // For `SHOW CLIENTS` and the oldest-transaction gauge.
        self.control.set_transaction_began(self.tx_began);
        // After a deadlock the connection still looks in a transaction
        // (`tx_rolled_back`): the wait counts as one begun now, so a client
        // that stays idle still goes at the limit, while the transaction
        // its next command opens counts from that command.
        let began = self
            .tx_began
            .or_else(|| (rolled_back && in_transaction).then(Instant::now));
        let idle_since = Instant::now();
        // A reload from here on wakes the wait below, which takes its
        // limits; one noted before is in the configuration read now.
        self.control.take_limits_changed();
        let pinned = self.pinned.is_some();
        let mut limits = WaitLimits::of(
            &self.shard.config().client,
            idle_since,
            in_transaction,
            pinned,
            began,
        );
        let mut first_wait = true;
        loop {
            match command_extent(self.buf.bytes(), max) {
                Extent::Whole(h, total) => return Ok((h, total)),
                Extent::TooLarge(seq) => {
                    let _ = self
                        .reply_error(seq.wrapping_add(1), EngineError::PacketTooLarge { len: 0, max })
                        .await;
                    self.drain_before_close().await;
                    return Err(End::Refused);
                }
                Extent::Partial(want) => self.buf.reserve_toward(want),
            }
            // (Part of a compressed packet counts: the stream holds it.)
            let mid_command = !self.buf.bytes().is_empty() || self.stream.has_partial_input();
            // Once a command has begun to arrive, the rest must follow
            // within `client.net_read_timeout`, as MariaDB's own: a client
            // stalled mid-packet would otherwise keep what it sent (up to
            // `client.max_packet_size`) and any connection it holds.
            // (The first wait, usually the only one, needs no clock read.)
            let now = if first_wait { idle_since } else { Instant::now() };
            first_wait = false;
            let (limit, over_time) = limits.limit(mid_command, now);
            let stirred = self.control.idle_stirred();
            let fill = async {
                match limit {
                    Some(l) => match rt::timeout(l, self.buf.fill(&mut self.stream)).await {
                        Some(r) => Woke::of(r),
                        None => Woke::Idle,
                    },
                    _ => Woke::of(self.buf.fill(&mut self.stream).await),
                }
            };
            let woke = futures_lite::future::or(fill, async {
                match stirred.await {
                    Stirred::Killed => Woke::Killed,
                    Stirred::LimitsChanged => Woke::LimitsChanged,
                }
            })
            .await;
            match woke {
                Woke::Data(true) => {}
                Woke::LimitsChanged => {
                    // A reload: the wait so far counts against the new
                    // limits, so a lowered one ends it now if it is past.
                    limits = WaitLimits::of(
                        &self.shard.config().client,
                        idle_since,
                        in_transaction,
                        pinned,
                        began,
                    );
                }
                Woke::Idle if mid_command && !over_time => {
                    // MariaDB closes without a word here; a client that
                    // reads on gets the reason.
                    let err = ErrPacket::new(
                        1159,
                        "08S01",
                        "Got timeout reading communication packets (client.net_read_timeout)",
                    );
                    self.shard.stats.count_error(err.code);
                    let _ = self.write_err(0, &err).await;
                    return Err(End::Closed);
                }
                Woke::Idle => {
                    // As MySQL 8 does: say why before closing. The session's
                    // end closes a held connection: the server rolls back.
                    let key = if in_transaction {
                        "client.idle_transaction_timeout"
                    } else {
                        "client.idle_timeout"
                    };
                    let err = if over_time {
                        transaction_time::closing_err(self.xa)
                    } else {
                        ErrPacket::new(
                            4031,
                            "HY000",
                            format!(
                                "The client was disconnected by the server because of inactivity ({key})"
                            ),
                        )
                    };
                    self.shard.stats.count_error(err.code);
                    let _ = self.write_err(0, &err).await;
                    return Err(End::Closed);
                }
                Woke::Garbled(why) => {
                    // As the server: its reason, then the close.
                    let err = ErrPacket::new(
                        1158,
                        "08S01",
                        format!("Got an error reading communication packets ({why})"),
                    );
                    self.shard.stats.count_error(err.code);
                    let _ = self.write_err(0, &err).await;
                    return Err(End::Closed);
                }
                Woke::Data(false) | Woke::Killed => return Err(End::Closed),
            }
        }
    }
}

/// Where the next command stands in a client's buffer.
#[derive(Debug, PartialEq, Eq)]
enum Extent {
    /// All of it is there: first header and total bytes.
    Whole(PacketHeader, usize),
    /// More bytes are needed; this many in total at least.
    Partial(usize),
    /// It exceeds the maximum packet size (first packet's sequence id).
    TooLarge(u8),
}
/// Finds a whole command: one packet, or a chain of 16 MiB packets ending
/// with a shorter one.
fn command_extent(bytes: &[u8], max: usize) -> Extent {
    let mut at = 0;
    let mut payload = 0usize;
    let mut first = None;
    loop {
        let Some(h) = PacketHeader::peek(&bytes[at..]) else {
            return Extent::Partial(at + 4);
        };
        let first_h = *first.get_or_insert(h);
        payload += h.len;
        if payload > max {
            return Extent::TooLarge(first_h.seq);
        }
        if bytes.len() < at + h.total_len() {
            return Extent::Partial(at + h.total_len());
        }
        at += h.total_len();
        if h.len < MAX_CHUNK {
            return Extent::Whole(first_h, at);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_command_extent() {
        assert_eq!(command_extent(&[], 100), Extent::Partial(4));
        assert_eq!(command_extent(&[3, 0, 0, 0, b'a'], 100), Extent::Partial(7));
        let whole = [1, 0, 0, 0, 0x0e, 9, 9];
        assert!(matches!(command_extent(&whole, 100), Extent::Whole(_, 5)));
        assert_eq!(command_extent(&[200, 0, 0, 0], 100), Extent::TooLarge(0));
    }
}
