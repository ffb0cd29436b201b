//! Packet framing: a 3-byte payload length, a 1-byte sequence id, then the
//! payload.
//!
//! A payload of 16 MiB - 1 (`0xff_ffff`) bytes or more is sent as several
//! physical packets: every full chunk is exactly `0xff_ffff` bytes and the last
//! one is shorter, possibly empty (so a payload that is an exact multiple of
//! the chunk size ends with an empty packet). See "MySQL Packets" in the
//! protocol docs.

use bytes::{BufMut, Bytes, BytesMut};

use crate::error::{ProtocolError, Result};

/// The largest payload one physical packet carries.
pub const MAX_CHUNK: usize = 0xff_ffff;

/// Length of the packet header.
pub const HEADER_LEN: usize = 4;

/// The header of one physical packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PacketHeader {
    /// Payload length of this physical packet.
    pub len: usize,
    /// Sequence id.
    pub seq: u8,
}

impl PacketHeader {
    /// Reads a header from the start of `buf`, if four bytes are there.
    pub fn peek(buf: &[u8]) -> Option<PacketHeader> {
        if buf.len() < HEADER_LEN {
            return None;
        }
        Some(PacketHeader {
            len: usize::from(buf[0]) | usize::from(buf[1]) << 8 | usize::from(buf[2]) << 16,
            seq: buf[3],
        })
    }

    /// True when another physical packet continues this payload.
    pub fn continues(&self) -> bool {
        self.len == MAX_CHUNK
    }

    /// Header plus payload length.
    pub fn total_len(&self) -> usize {
        HEADER_LEN + self.len
    }
}

/// One logical packet: the payload joined across 16 MiB splits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet {
    /// Sequence id of the first physical packet.
    pub seq: u8,
    /// Sequence id of the last physical packet (the next one is this + 1).
    pub last_seq: u8,
    /// The whole payload.
    pub payload: Bytes,
}

/// Cuts logical packets out of a byte stream, enforcing a maximum payload
/// size before any payload is buffered beyond it.
#[derive(Debug)]
pub struct PacketDecoder {
    max_payload: usize,
    partial: Option<(u8, BytesMut)>,
}

impl PacketDecoder {
    /// A decoder that refuses payloads longer than `max_payload` bytes.
    pub fn new(max_payload: usize) -> Self {
        PacketDecoder {
            max_payload,
            partial: None,
        }
    }

    /// The configured maximum payload size.
    pub fn max_payload(&self) -> usize {
        self.max_payload
    }

    /// Takes the next whole logical packet off the front of `src`, or returns
    /// `Ok(None)` when more bytes are needed. Bytes of an incomplete physical
    /// packet stay in `src`.
    pub fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Packet>> {
        loop {
            let Some(h) = PacketHeader::peek(src) else {
                return Ok(None);
            };
            let so_far = self.partial.as_ref().map_or(0, |(_, p)| p.len());
            if so_far + h.len > self.max_payload {
                return Err(ProtocolError::PacketTooLarge {
                    len: so_far + h.len,
                    max: self.max_payload,
                });
            }
            if src.len() < h.total_len() {
                src.reserve(h.total_len() - src.len());
                return Ok(None);
            }
            let mut chunk = src.split_to(h.total_len());
            let body = chunk.split_off(HEADER_LEN);
            match (self.partial.take(), h.continues()) {
                (None, false) => {
                    return Ok(Some(Packet {
                        seq: h.seq,
                        last_seq: h.seq,
                        payload: body.freeze(),
                    }))
                }
                (None, true) => self.partial = Some((h.seq, body)),
                (Some((first, mut acc)), more) => {
                    acc.extend_from_slice(&body);
                    if more {
                        self.partial = Some((first, acc));
                    } else {
                        return Ok(Some(Packet {
                            seq: first,
                            last_seq: h.seq,
                            payload: acc.freeze(),
                        }));
                    }
                }
            }
        }
    }
}

/// Appends `payload` as one or more physical packets starting at sequence id
/// `seq`; returns the sequence id the next packet must use.
pub fn write_packet(dst: &mut BytesMut, seq: u8, payload: &[u8]) -> u8 {
    let mut seq = seq;
    let mut rest = payload;
    dst.reserve(payload.len() + HEADER_LEN * (1 + payload.len() / MAX_CHUNK));
    loop {
        let n = rest.len().min(MAX_CHUNK);
        dst.put_uint_le(n as u64, 3);
        dst.put_u8(seq);
        dst.put_slice(&rest[..n]);
        seq = seq.wrapping_add(1);
        rest = &rest[n..];
        if n < MAX_CHUNK {
            return seq;
        }
    }
}

/// Builds a payload in place: reserves the header, lets the caller append the
/// payload, then fills the header in. Only for payloads below [`MAX_CHUNK`]
/// (every packet Funnel generates itself), which avoids a copy.
pub fn write_small_packet(dst: &mut BytesMut, seq: u8, fill: impl FnOnce(&mut BytesMut)) -> u8 {
    let start = dst.len();
    dst.put_slice(&[0, 0, 0, seq]);
    fill(dst);
    let len = dst.len() - start - HEADER_LEN;
    if len >= MAX_CHUNK {
        // Rare: re-frame through the splitting path.
        let payload = dst.split_off(start + HEADER_LEN).freeze();
        dst.truncate(start);
        return write_packet(dst, seq, &payload);
    }
    dst[start..start + 3].copy_from_slice(&(len as u32).to_le_bytes()[..3]);
    seq.wrapping_add(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn protocol_framing_small_roundtrip() {
        let mut b = BytesMut::new();
        assert_eq!(write_packet(&mut b, 7, b"hello"), 8);
        assert_eq!(&b[..], b"\x05\x00\x00\x07hello");
        let mut d = PacketDecoder::new(1 << 20);
        let p = d.decode(&mut b).unwrap().unwrap();
        assert_eq!((p.seq, p.last_seq, &p.payload[..]), (7, 7, &b"hello"[..]));
        assert!(b.is_empty());
    }

    #[test]
    fn protocol_framing_exact_chunk_gets_empty_trailer() {
        let payload = vec![0xabu8; MAX_CHUNK];
        let mut b = BytesMut::new();
        assert_eq!(write_packet(&mut b, 0, &payload), 2);
        assert_eq!(b.len(), MAX_CHUNK + 2 * HEADER_LEN);
        assert_eq!(&b[b.len() - 4..], &[0, 0, 0, 1]);
        let mut d = PacketDecoder::new(64 << 20);
        let p = d.decode(&mut b).unwrap().unwrap();
        assert_eq!(p.payload.len(), MAX_CHUNK);
        assert_eq!((p.seq, p.last_seq), (0, 1));
    }

    #[test]
    fn protocol_framing_large_split_and_join() {
        let payload: Vec<u8> = (0..(2 * MAX_CHUNK + 10)).map(|i| i as u8).collect();
        let mut b = BytesMut::new();
        assert_eq!(write_packet(&mut b, 250, &payload), 253u8.wrapping_add(0));
        let mut d = PacketDecoder::new(64 << 20);
        // Feed it in awkward pieces.
        let mut src = BytesMut::new();
        let mut out = None;
        for piece in b.chunks(1_000_003) {
            src.extend_from_slice(piece);
            if let Some(p) = d.decode(&mut src).unwrap() {
                out = Some(p);
            }
        }
        let p = out.unwrap();
        assert_eq!(p.payload.len(), payload.len());
        assert!(p.payload[..] == payload[..]);
        assert_eq!((p.seq, p.last_seq), (250, 252));
    }

    #[test]
    fn protocol_framing_rejects_oversize_before_buffering() {
        let mut d = PacketDecoder::new(100);
        // Header claims 200 bytes; only the header has arrived.
        let mut src = BytesMut::from(&[200u8, 0, 0, 0][..]);
        assert_eq!(
            d.decode(&mut src),
            Err(ProtocolError::PacketTooLarge { len: 200, max: 100 })
        );
    }

    #[test]
    fn protocol_framing_small_packet_builder() {
        let mut b = BytesMut::new();
        let next = write_small_packet(&mut b, 3, |p| p.put_slice(b"abc"));
        assert_eq!(next, 4);
        assert_eq!(&b[..], b"\x03\x00\x00\x03abc");
    }

    proptest! {
        #[test]
        fn protocol_framing_roundtrip(payloads in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..2000), 1..8), split in 1usize..500) {
            let mut b = BytesMut::new();
            let mut seq = 0u8;
            for p in &payloads {
                seq = write_packet(&mut b, seq, p);
            }
            let mut d = PacketDecoder::new(1 << 20);
            let mut src = BytesMut::new();
            let mut got = Vec::new();
            for piece in b.chunks(split) {
                src.extend_from_slice(piece);
                while let Some(p) = d.decode(&mut src).unwrap() {
                    got.push(p.payload.to_vec());
                }
            }
            prop_assert_eq!(got, payloads);
        }
    }
}
