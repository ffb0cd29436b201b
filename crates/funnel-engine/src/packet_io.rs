//! Whole-packet reads and single-packet writes for the connection phases
//! (logins, Funnel's own small commands), where a copy per packet is fine.
//! The data path never uses these: it streams from [`crate::iobuf::IoBuf`].

use std::io;

use bytes::BytesMut;
use funnel_protocol::framing::write_packet;

use crate::iobuf::IoBuf;
use crate::rt::Stream;

/// Why a whole packet could not be read.
#[derive(Debug)]
pub enum ReadError {
    /// The socket failed or the peer closed it.
    Io(io::Error),
    /// The packet declared more than the limit.
    TooLarge {
        /// Declared length.
        len: usize,
        /// Its sequence id.
        seq: u8,
    },
}

/// Reads one whole packet of at most `limit` bytes: sequence id and payload.
pub async fn read_whole_packet(
    stream: &mut Stream,
    buf: &mut IoBuf,
    limit: usize,
) -> Result<(u8, Vec<u8>), ReadError> {
    loop {
        if let Some((h, payload)) = buf.whole_packet() {
            let out = (h.seq, payload.to_vec());
            buf.consume(h.total_len());
            return Ok(out);
        }
        if let Some(h) = buf.peek_header() {
            if h.len > limit {
                return Err(ReadError::TooLarge {
                    len: h.len,
                    seq: h.seq,
                });
            }
            buf.reserve_total(h.total_len());
        }
        buf.fill(stream).await.map_err(ReadError::Io)?;
    }
}

/// Writes one packet (split at 16 MiB as needed).
pub async fn send_packet(stream: &mut Stream, seq: u8, payload: &[u8]) -> io::Result<()> {
    let mut out = BytesMut::with_capacity(payload.len() + 4);
    write_packet(&mut out, seq, payload);
    stream.write_all(&out).await
}
