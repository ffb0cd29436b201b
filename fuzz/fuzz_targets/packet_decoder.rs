//! `PacketDecoder` fed arbitrary bytes in arbitrary chunk splits.
//!
//! Input layout:
//!
//! | bytes      | meaning                                                        |
//! |------------|----------------------------------------------------------------|
//! | `[0]`      | bit 0: synthetic stream (see below); bits 1-2: how to read max |
//! | `[1..5]`   | raw `max_payload`, u32 little-endian                           |
//! | `[5]`      | number of split sizes `k` (mod 17)                             |
//! | `[6..6+k]` | split sizes: how many bytes each `decode` round gets           |
//! | rest       | the stream (or, in synthetic mode, packet descriptors)         |
//!
//! Synthetic mode exists because a real input cannot carry the 16 MiB chunks
//! that exercise payload joining: each descriptor byte `d` with bit 7 set emits
//! a full `0xffffff`-byte chunk filled with `d` (at most two per input); any
//! other `d` emits a header claiming `d & 0x7f` bytes, a sequence id taken from
//! the next byte and as many payload bytes as the input still has.
//!
//! Checked: no panic; no payload above `max`; the packets, the error and the
//! bytes left in the buffer are exactly what a one-shot reference decoder
//! (written here from the protocol docs) gets from the whole stream, whatever
//! the split.

#![no_main]

use bytes::BytesMut;
use funnel_protocol::framing::{PacketDecoder, HEADER_LEN, MAX_CHUNK};
use funnel_protocol::ProtocolError;
use libfuzzer_sys::fuzz_target;

/// At most this many 16 MiB chunks in one synthetic stream (keeps an
/// execution in the tens of milliseconds).
const MAX_BIG_CHUNKS: usize = 2;

struct Model {
    /// First and last sequence id, and the stream ranges the payload joins.
    packets: Vec<(u8, u8, Vec<std::ops::Range<usize>>)>,
    error: Option<ProtocolError>,
    consumed: usize,
}

/// One-shot reference decoder over the whole stream.
fn model(stream: &[u8], max: usize) -> Model {
    let mut m = Model {
        packets: Vec::new(),
        error: None,
        consumed: 0,
    };
    let mut partial: Option<(u8, usize, Vec<std::ops::Range<usize>>)> = None;
    loop {
        let rest = &stream[m.consumed..];
        if rest.len() < HEADER_LEN {
            return m;
        }
        let len = rest[0] as usize | (rest[1] as usize) << 8 | (rest[2] as usize) << 16;
        let seq = rest[3];
        let so_far = partial.as_ref().map_or(0, |(_, n, _)| *n);
        if so_far + len > max {
            m.error = Some(ProtocolError::PacketTooLarge {
                len: so_far + len,
                max,
            });
            return m;
        }
        if rest.len() - HEADER_LEN < len {
            return m;
        }
        let body = m.consumed + HEADER_LEN..m.consumed + HEADER_LEN + len;
        m.consumed += HEADER_LEN + len;
        let (first, n, mut ranges) = partial.take().unwrap_or((seq, 0, Vec::new()));
        ranges.push(body);
        if len == MAX_CHUNK {
            partial = Some((first, n + len, ranges));
        } else {
            m.packets.push((first, seq, ranges));
        }
    }
}

fn synthetic_stream(desc: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut big = 0;
    let mut i = 0;
    while i < desc.len() {
        let d = desc[i];
        i += 1;
        let seq = desc.get(i).copied().unwrap_or(0);
        i += 1;
        if d & 0x80 != 0 && big < MAX_BIG_CHUNKS {
            big += 1;
            out.extend_from_slice(&[0xff, 0xff, 0xff, seq]);
            out.resize(out.len() + MAX_CHUNK, d);
        } else {
            let len = (d & 0x7f) as usize;
            out.extend_from_slice(&[len as u8, 0, 0, seq]);
            let end = (i + len).min(desc.len());
            out.extend_from_slice(&desc[i.min(end)..end]);
            i = end;
        }
    }
    out
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 6 {
        return;
    }
    let mode = data[0];
    let synthetic = mode & 1 != 0;
    let raw = u32::from_le_bytes([data[1], data[2], data[3], data[4]]);
    let max = match (mode >> 1) & 3 {
        0 => (raw & 0xff) as usize,
        1 => (raw & 0xffff) as usize,
        2 => raw as usize,
        // Around multiples of the chunk size, where joining happens.
        _ => MAX_CHUNK * (raw & 3) as usize + ((raw >> 2) & 0x3ff) as usize,
    };
    let k = (data[5] % 17) as usize;
    let Some(splits) = data.get(6..6 + k) else {
        return;
    };
    let rest = &data[6 + k..];
    let stream: Vec<u8> = if synthetic {
        synthetic_stream(rest)
    } else {
        rest.to_vec()
    };
    // Split sizes; in synthetic mode scaled so a few rounds cover 16 MiB.
    let mut sizes: Vec<usize> = splits
        .iter()
        .map(|&s| {
            if synthetic {
                s as usize * 0x1_0001
            } else {
                s as usize
            }
        })
        .collect();
    if sizes.iter().all(|&s| s == 0) {
        sizes = vec![stream.len()];
    }

    let expected = model(&stream, max);

    let mut dec = PacketDecoder::new(max);
    assert_eq!(dec.max_payload(), max);
    let mut src = BytesMut::new();
    let mut got = Vec::new();
    let mut error = None;
    let mut off = 0;
    let mut round = 0;
    'feed: loop {
        let n = sizes[round % sizes.len()].min(stream.len() - off);
        round += 1;
        src.extend_from_slice(&stream[off..off + n]);
        off += n;
        loop {
            match dec.decode(&mut src) {
                Ok(Some(p)) => {
                    assert!(
                        p.payload.len() <= max,
                        "payload of {} bytes above max {max}",
                        p.payload.len()
                    );
                    got.push(p);
                }
                Ok(None) => break,
                Err(e) => {
                    error = Some(e);
                    break 'feed;
                }
            }
        }
        if off == stream.len() {
            break;
        }
    }

    assert_eq!(
        got.len(),
        expected.packets.len(),
        "packet count differs from the reference"
    );
    for (i, (g, e)) in got.iter().zip(&expected.packets).enumerate() {
        assert_eq!((g.seq, g.last_seq), (e.0, e.1), "sequence ids of packet {i}");
        let mut at = 0;
        for r in &e.2 {
            let part = &stream[r.clone()];
            assert!(
                g.payload.get(at..at + part.len()) == Some(part),
                "payload of packet {i} differs from the reference"
            );
            at += part.len();
        }
        assert_eq!(g.payload.len(), at, "payload length of packet {i}");
    }
    assert_eq!(error, expected.error, "error differs from the reference");
    if error.is_none() {
        assert_eq!(
            src.len(),
            stream.len() - expected.consumed,
            "bytes left in the buffer"
        );
        // Asking again without new bytes changes nothing.
        assert_eq!(dec.decode(&mut src), Ok(None));
    }
});
