//! Streaming one response from a backend connection to a client.
//!
//! Bytes go from the backend's read buffer straight to the client socket in
//! the batches they arrived in; the tracker looks at each packet's first
//! bytes to find where the response ends. Nothing is buffered beyond one
//! read, except one packet that must be whole to be understood (never a
//! large row: rows over [`STREAM_PACKET_OVER`] pass through in pieces).

use std::io;
use std::rc::Rc;
use std::time::Duration;

use funnel_protocol::framing::{write_packet, PacketHeader, HEADER_LEN};
use funnel_protocol::session_track::{hide_added_tracking, TrackingView};
use funnel_protocol::tracker::{Event, Expect, ResponseSummary, ResponseTracker};

use crate::column_cache::{ColumnCache, Front};
use crate::iobuf::IoBuf;
use crate::kill::ClientControl;
use crate::pool::conn::BackendConn;
use crate::rt::{self, Stream};

/// Packets larger than this are forwarded as they arrive instead of being
/// gathered whole (only rows and LOCAL INFILE data get this large).
pub const STREAM_PACKET_OVER: usize = 64 * 1024;

/// How long Funnel keeps reading a response nobody will receive (its client
/// left) before it gives up on the backend connection.
pub const DRAIN_LIMIT: Duration = Duration::from_secs(2);

/// How a relay ended.
#[derive(Debug)]
pub enum RelayEnd {
    /// The whole response was read; all of it reached the client but
    /// what [`ClientSide::hold_end`] held back, which is here for the
    /// caller to send.
    Complete(ResponseSummary, Vec<u8>),
    /// The client went away; `drained` says the backend's response was read
    /// to its end anyway (so the connection is in a known state).
    ClientGone {
        /// Whether the rest of the response was read and discarded.
        drained: bool,
        /// The server reported a session-state change in the part read
        /// (see [`ResponseSummary::state_changed`]): a stored function or
        /// trigger may have left state the session never learns of.
        state_changed: bool,
    },
    /// `pool.query_timeout` passed before the response ended.
    TimedOut {
        /// The sequence id the client expects next (for an ERR packet).
        next_seq: u8,
        /// Whether an ERR packet can still end the response (see
        /// [`RelayEnd::BackendFailed`]).
        err_fits: bool,
    },
    /// The backend failed or broke the protocol mid-response.
    BackendFailed {
        /// What happened.
        reason: String,
        /// Whether any byte of the response reached the client.
        sent_any: bool,
        /// The sequence id the client expects next (for an ERR packet).
        next_seq: u8,
        /// Whether an ERR packet can still end the response. The client's
        /// parser takes an ERR wherever a new packet may start, but not in
        /// the middle of one: after part of a large row, after a 16 MiB
        /// chunk whose payload goes on in the next packet, or during a
        /// LOCAL INFILE transfer (the client may still be sending the
        /// file). Then the ERR would be read as packet data, and the client
        /// waits for bytes that never come or reports a malformed packet;
        /// only closing the connection tells it the truth.
        err_fits: bool,
    },
}

/// The client's side of a relay.
pub struct ClientSide<'a> {
    /// The client socket.
    pub stream: &'a mut Stream,
    /// Its read buffer (LOCAL INFILE data comes from there).
    pub buf: &'a mut IoBuf,
    /// Largest packet the client may send.
    pub max_packet: usize,
    /// Counts the bytes forwarded to the client.
    pub sent: &'a std::cell::Cell<u64>,
    /// How long one write may wait for the client to read
    /// (`client.net_write_timeout`); then the client counts as gone.
    pub write_timeout: Option<Duration>,
    /// How long a LOCAL INFILE read may wait for the client
    /// (`client.net_read_timeout`).
    pub read_timeout: Option<Duration>,
    /// What the client sees of the session-state data in replies.
    pub tracking: TrackingView,
    /// Hold back the response's last batch (the packets read with its
    /// terminator) instead of writing it: the caller has work to finish
    /// on the connection before the client may go on (a read-back), and
    /// sends it after that.
    pub hold_end: bool,
    /// The client's session. Once it is killed (`KILL [CONNECTION]`), the
    /// interrupted statement's end is held back like [`Self::hold_end`]
    /// for the caller to drop: the server answers a killed connection
    /// nothing, and its client reads the lost connection. A write to a
    /// client that is not reading ends at the kill, as the server shuts a
    /// killed connection's socket: the client is then gone, and its
    /// backend connection is drained or closed rather than held until
    /// `client.net_write_timeout`.
    pub control: &'a Rc<ClientControl>,
    /// The client asked for MariaDB's metadata cache: its column counts
    /// get the byte that says whether definitions follow, and an
    /// execute's definitions the client has are left out.
    pub columns: Option<ColumnCache<'a>>,
    /// The statement's query-rule timeout, once Funnel killed it for that.
    pub stopped: Option<&'a StoppedStatement>,
    /// Where the bytes sent to the client are copied, for the query cache.
    pub capture: Option<&'a mut Capture>,
}

/// A copy of the bytes a reply sent its client, up to a limit: a reply
/// to keep in the query cache. Past the limit it is dropped, and the
/// reply goes on streaming as any other.
#[derive(Debug)]
pub struct Capture {
    bytes: Vec<u8>,
    limit: usize,
    overflowed: bool,
}

impl Capture {
    /// An empty capture of at most `limit` bytes.
    pub fn new(limit: usize) -> Self {
        Capture {
            bytes: Vec::new(),
            limit,
            overflowed: false,
        }
    }

    fn take(&mut self, parts: &[&[u8]]) {
        let n: usize = parts.iter().map(|p| p.len()).sum();
        if self.overflowed || self.bytes.len() + n > self.limit {
            self.overflowed = true;
            self.bytes = Vec::new();
            return;
        }
        for p in parts {
            self.bytes.extend_from_slice(p);
        }
    }

    /// The whole reply, unless it outgrew the limit.
    pub fn into_bytes(self) -> Option<Vec<u8>> {
        (!self.overflowed).then_some(self.bytes)
    }
}

/// A statement stopped (`KILL QUERY`) by a query rule's `timeout` or by
/// `client.max_transaction_time`: the server's "interrupted" ERR that ends
/// its reply goes to the client as Funnel's own, which says why.
#[derive(Debug)]
pub struct StoppedStatement {
    /// The `KILL QUERY` was asked for.
    pub fired: std::cell::Cell<bool>,
    /// The ERR the client gets instead of the server's 1317.
    pub err: funnel_protocol::response::ErrPacket,
    /// The server's ERR was replaced by [`Self::err`].
    pub replaced: std::cell::Cell<bool>,
    /// The session ends after the ERR (its transaction outlived
    /// `client.max_transaction_time`).
    pub ends_session: bool,
}

/// ER_QUERY_INTERRUPTED, the server's answer to a statement a `KILL
/// QUERY` stopped.
const QUERY_INTERRUPTED: u16 = 1317;

impl StoppedStatement {
    /// The packet that goes out instead of `payload` (with sequence id
    /// `seq`), when `payload` is the interrupted ERR that ends the reply
    /// of a statement this rule stopped.
    fn instead_of(&self, payload: &[u8], seq: u8) -> Option<Vec<u8>> {
        let interrupted =
            payload.first() == Some(&0xff) && payload.get(1..3) == Some(&QUERY_INTERRUPTED.to_le_bytes()[..]);
        if !(interrupted && self.fired.get()) {
            return None;
        }
        self.replaced.set(true);
        let mut packet = bytes::BytesMut::new();
        funnel_protocol::framing::write_small_packet(&mut packet, seq, |p| self.err.write(p));
        Some(packet.to_vec())
    }
}

/// Streams the response to the command just sent on `conn`.
pub async fn relay_response(
    conn: &mut BackendConn,
    client: ClientSide<'_>,
    expect: Expect,
    query_timeout: Option<Duration>,
) -> RelayEnd {
    let mut tracker = ResponseTracker::new(expect, conn.caps, conn.status);
    let ClientSide {
        stream: client_stream,
        buf: client_buf,
        max_packet,
        sent,
        write_timeout,
        read_timeout,
        tracking,
        hold_end,
        control,
        mut columns,
        stopped,
        mut capture,
    } = client;
    let killed = || control.is_killed();
    let mut pass_through = 0usize; // bytes of a large packet still to forward unread
    let mut client_alive = true;
    let mut sent_any = false;
    let mut next_seq = 1u8;
    // The last packet header walked had a 16 MiB payload that goes on in the next packet.
    let mut chain_open = false;
    // The bytes written to the client so far end a whole payload.
    let mut at_boundary = true;
    // The sequence id after the last packet written to the client.
    let mut written_seq = 1u8;
    let mut drain_deadline: Option<std::time::Instant> = None;
    loop {
        // Walk the buffered packets; stop at the first incomplete one.
        let mut forward = 0usize;
        let mut event = Event::More;
        // A terminator that carried tracking data the client did not ask
        // for: where it starts in the buffer, and what goes out instead.
        let mut replaced: Option<(usize, Vec<u8>)> = None;
        // A column count for a client with the metadata cache, rewritten
        // in place where it starts the buffer (see `column_cache`); one
        // later in the buffer ends the walk before it.
        let mut await_bytes = false;
        let mut at_count = false;
        if let Some(cache) = columns
            .as_mut()
            .filter(|_| pass_through == 0 && tracker.expects_result_start())
        {
            match cache.rewrite_front(&mut conn.buf, &mut tracker) {
                Ok(Front::NotCount) => {}
                Ok(Front::Incomplete { want }) => {
                    conn.buf.reserve_total(want);
                    await_bytes = true;
                }
                Ok(Front::Rewritten { len, seq, event: e }) => {
                    forward = len;
                    event = e;
                    next_seq = seq.wrapping_add(1);
                    chain_open = false;
                }
                Err(e) => {
                    return RelayEnd::BackendFailed {
                        reason: format!("protocol violation: {e}"),
                        sent_any,
                        next_seq: written_seq,
                        err_fits: at_boundary,
                    };
                }
            }
        }
        let seq_shift = columns.as_ref().map_or(0, ColumnCache::seq_shift);
        let bytes = conn.buf.bytes_mut();
        while event == Event::More && forward < bytes.len() && replaced.is_none() && !await_bytes {
            if pass_through > 0 {
                let n = pass_through.min(bytes.len() - forward);
                forward += n;
                pass_through -= n;
                continue;
            }
            if columns.is_some() && forward > 0 && tracker.expects_result_start() {
                at_count = true;
                break;
            }
            let Some(mut h) = PacketHeader::peek(&bytes[forward..]) else {
                break;
            };
            let avail = bytes.len() - forward - HEADER_LEN;
            let payload_start = forward + HEADER_LEN;
            let whole = avail >= h.len;
            if !(whole || h.len > STREAM_PACKET_OVER && avail >= 16) {
                break;
            }
            if seq_shift != 0 {
                // Definitions the client has were left out before it (once
                // per packet: this one goes out in this walk).
                h.seq = h.seq.wrapping_sub(seq_shift);
                bytes[forward + 3] = h.seq;
            }
            let fed = if whole {
                let payload = &bytes[payload_start..payload_start + h.len];
                let r = tracker.feed(payload, h.len);
                if tracker.fed_state_change() && !tracking.as_sent() {
                    if let Ok(Some(shown)) = hide_added_tracking(payload, conn.caps, tracking) {
                        let mut packet = bytes::BytesMut::with_capacity(HEADER_LEN + shown.len());
                        write_packet(&mut packet, h.seq, &shown);
                        replaced = Some((forward, packet.to_vec()));
                    }
                }
                if let Some(stopped) = stopped.filter(|_| matches!(r, Ok(Event::Done))) {
                    if let Some(packet) = stopped.instead_of(payload, h.seq) {
                        replaced = Some((forward, packet));
                    }
                }
                forward += h.total_len();
                r
            } else {
                let r = tracker.feed(&bytes[payload_start..payload_start + avail], h.len);
                forward += HEADER_LEN + avail;
                pass_through = h.len - avail;
                r
            };
            next_seq = h.seq.wrapping_add(1);
            chain_open = h.continues();
            match fed {
                Ok(e) => event = e,
                Err(e) => {
                    // Nothing of this walk was written: the client stands where
                    // the last write left it, and expects the sequence id after it.
                    return RelayEnd::BackendFailed {
                        reason: format!("protocol violation: {e}"),
                        sent_any,
                        next_seq: written_seq,
                        err_fits: at_boundary,
                    };
                }
            }
        }
        if event == Event::Done && client_alive && (hold_end || killed()) {
            let bytes = conn.buf.bytes();
            let held = match replaced {
                None => bytes[..forward].to_vec(),
                Some((at, packet)) => [&bytes[..at], &packet[..]].concat(),
            };
            conn.buf.consume(forward);
            let summary = tracker.into_summary();
            conn.note_reply_status(summary.status, summary.error.is_some());
            return RelayEnd::Complete(summary, held);
        }
        if forward > 0 && client_alive {
            let bytes = conn.buf.bytes();
            let write = async {
                match &replaced {
                    None => client_stream.write_all(&bytes[..forward]).await,
                    Some((at, packet)) => {
                        client_stream.write_all(&bytes[..*at]).await?;
                        client_stream.write_all(packet).await
                    }
                }
            };
            if let Err(e) =
                within_unless_killed(write_timeout, write, "client.net_write_timeout reached", control).await
            {
                tracing::debug!(error = %e, "client gone mid-response; draining backend");
                client_alive = false;
                drain_deadline = Some(std::time::Instant::now() + DRAIN_LIMIT);
            } else {
                if let Some(capture) = capture.as_deref_mut() {
                    match &replaced {
                        None => capture.take(&[&bytes[..forward]]),
                        Some((at, packet)) => capture.take(&[&bytes[..*at], packet]),
                    }
                }
                sent_any = true;
                at_boundary = pass_through == 0 && !chain_open;
                written_seq = next_seq;
                sent.set(sent.get() + forward as u64);
            }
        }
        conn.buf.consume(forward);
        match event {
            Event::Done => {
                let summary = tracker.into_summary();
                conn.note_reply_status(summary.status, summary.error.is_some());
                return if client_alive {
                    RelayEnd::Complete(summary, Vec::new())
                } else {
                    RelayEnd::ClientGone {
                        drained: conn.buf.is_empty(),
                        state_changed: summary.state_changed,
                    }
                };
            }
            Event::LocalInfile => {
                if !client_alive {
                    return RelayEnd::ClientGone {
                        drained: false,
                        state_changed: tracker.summary().state_changed,
                    };
                }
                let infile = relay_infile(
                    control,
                    client_stream,
                    client_buf,
                    &mut conn.stream,
                    max_packet,
                    read_timeout,
                    query_timeout,
                );
                match infile.await {
                    Ok(()) => {}
                    // The client stalled, left or sent too much: its fault,
                    // not the backend's, though the server, mid-file, must
                    // lose the connection so the statement stops.
                    Err(InfileError::Client(e)) => {
                        tracing::debug!(error = %e, "client failed during LOCAL INFILE");
                        return RelayEnd::ClientGone {
                            drained: false,
                            state_changed: tracker.summary().state_changed,
                        };
                    }
                    // The file is part of the command: a server that stopped
                    // reading it gets `pool.query_timeout`, as for its reply.
                    Err(InfileError::Backend(e)) if e.kind() == io::ErrorKind::TimedOut => {
                        return RelayEnd::TimedOut {
                            next_seq,
                            err_fits: false,
                        };
                    }
                    Err(InfileError::Backend(e)) => {
                        return RelayEnd::BackendFailed {
                            reason: format!("LOCAL INFILE transfer failed: {e}"),
                            sent_any,
                            next_seq,
                            err_fits: false,
                        };
                    }
                }
                continue;
            }
            Event::More => {}
        }
        if replaced.is_some() || at_count {
            // The walk stopped at the rewritten packet, or before a result
            // to rewrite: what follows may already be in the buffer.
            continue;
        }
        if let Some(h) = conn.buf.peek_header() {
            if h.len <= STREAM_PACKET_OVER {
                conn.buf.reserve_total(h.total_len());
            }
        }
        let limit = match drain_deadline {
            Some(d) => match d.checked_duration_since(std::time::Instant::now()) {
                Some(left) => Some(left),
                None => {
                    return RelayEnd::ClientGone {
                        drained: false,
                        state_changed: tracker.summary().state_changed,
                    }
                }
            },
            None => query_timeout,
        };
        let read = match limit {
            Some(l) => rt::timeout(l, conn.buf.fill(&mut conn.stream))
                .await
                .unwrap_or_else(|| Err(io::Error::new(io::ErrorKind::TimedOut, "query_timeout reached"))),
            None => conn.buf.fill(&mut conn.stream).await,
        };
        if let Err(e) = read {
            if !client_alive {
                return RelayEnd::ClientGone {
                    drained: false,
                    state_changed: tracker.summary().state_changed,
                };
            }
            if e.kind() == io::ErrorKind::TimedOut && drain_deadline.is_none() {
                return RelayEnd::TimedOut {
                    next_seq,
                    err_fits: at_boundary,
                };
            }
            return RelayEnd::BackendFailed {
                reason: e.to_string(),
                sent_any,
                next_seq,
                err_fits: at_boundary,
            };
        }
        rt::yield_if_needed().await;
    }
}

/// Which side of a LOCAL INFILE transfer failed.
enum InfileError {
    Client(io::Error),
    Backend(io::Error),
}

/// Forwards the client's LOCAL INFILE packets to the backend until the
/// empty packet that ends the file. Each write to the backend has
/// `write_limit` (`pool.query_timeout`): a frozen server takes only what
/// the kernel's buffers hold, and the client would wait for ever. A wait
/// for the client's data ends when its session is killed.
async fn relay_infile(
    control: &Rc<ClientControl>,
    client: &mut Stream,
    buf: &mut IoBuf,
    backend: &mut Stream,
    max_packet: usize,
    read_timeout: Option<Duration>,
    write_limit: Option<Duration>,
) -> Result<(), InfileError> {
    const LATE: &str = "client.net_read_timeout reached";
    const UNREAD: &str = "pool.query_timeout reached";
    loop {
        let Some(h) = buf.peek_header() else {
            within_unless_killed(read_timeout, buf.fill(client), LATE, control)
                .await
                .map_err(InfileError::Client)?;
            continue;
        };
        if h.len > max_packet {
            return Err(InfileError::Client(io::Error::new(
                io::ErrorKind::InvalidData,
                "LOCAL INFILE packet too large",
            )));
        }
        if buf.len() < h.total_len() {
            buf.reserve_toward(h.total_len());
            within_unless_killed(read_timeout, buf.fill(client), LATE, control)
                .await
                .map_err(InfileError::Client)?;
            continue;
        }
        within(
            write_limit,
            backend.write_all(&buf.bytes()[..h.total_len()]),
            UNREAD,
        )
        .await
        .map_err(InfileError::Backend)?;
        buf.consume(h.total_len());
        if h.len == 0 {
            return Ok(());
        }
    }
}

/// [`within`] for a read from or a write to the client, which also ends
/// (with an error) when the client's session is killed while it waits
/// for the client.
pub(crate) async fn within_unless_killed<T>(
    limit: Option<Duration>,
    op: impl std::future::Future<Output = io::Result<T>>,
    what: &str,
    control: &Rc<ClientControl>,
) -> io::Result<T> {
    let mut op = std::pin::pin!(op);
    if let Some(done) = futures_lite::future::poll_once(&mut op).await {
        return done;
    }
    let killed = control.killed();
    futures_lite::future::or(within(limit, op, what), async {
        killed.await;
        Err(io::Error::new(
            io::ErrorKind::ConnectionAborted,
            "the session was killed",
        ))
    })
    .await
}

/// Runs a client I/O future, failing with `TimedOut` (saying `what`) once
/// `limit` passes. It is polled once first, so a write the socket takes at
/// once, the usual case, arms no timer.
pub(crate) async fn within<T>(
    limit: Option<Duration>,
    op: impl std::future::Future<Output = io::Result<T>>,
    what: &str,
) -> io::Result<T> {
    let mut op = std::pin::pin!(op);
    if let Some(done) = futures_lite::future::poll_once(&mut op).await {
        return done;
    }
    match limit {
        None => op.await,
        Some(limit) => rt::timeout(limit, op)
            .await
            .unwrap_or_else(|| Err(io::Error::new(io::ErrorKind::TimedOut, what))),
    }
}
