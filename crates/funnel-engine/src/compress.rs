//! The compressed protocol (`CLIENT_COMPRESS`) of a client connection:
//! after the login, the packets go inside packets of their own, each with
//! a 7-byte header (payload length, sequence id, length before compression)
//! and a zlib payload, or the plain bytes when compressing would not pay.
//! Such a packet may hold a piece of one packet or several; the session
//! sees the plain byte stream ([`crate::rt::Stream`] packs and unpacks).
//! Funnel's backend connections stay uncompressed.
//!
//! The compressed sequence ids run on their own: the client starts each
//! command at 0, and each packet of the reply takes the next id after the
//! last one read, as the server does.
//!
//! Inside, the server reads no sequence ids, and clients lean on that:
//! the `mariadb` client sends a statement of more than 16 MB as packets
//! that all carry id 0. Funnel forwards packets to uncompressed backend
//! connections, which check the ids, so it numbers the client's packets
//! as the uncompressed protocol would: 0 for the first packet of a
//! command (one that begins a compressed packet with id 0, and is
//! numbered 0 itself when the compressed count was due to wrap to 0
//! anyway), and one more than the last packet either side sent for every
//! other.

use std::io::{self, Write};

use flate2::write::ZlibEncoder;
use flate2::{Compression, Decompress, FlushDecompress, Status};

/// Payloads shorter than this go out as they are (the server's own
/// `MIN_COMPRESS_LENGTH`): compressing them would not pay.
const MIN_COMPRESS_LENGTH: usize = 50;
/// The most a compressed packet carries: its lengths have 3 bytes.
const MAX_PAYLOAD: usize = 0xFF_FFFF;
const HEADER: usize = 7;
/// A packet's own header (length and sequence id).
const HEADER_LEN: usize = 4;
/// How far the raw buffer grows per read: memory follows the bytes that
/// arrive, not the lengths a header declares.
const READ_CHUNK: usize = 16 * 1024;
/// Buffers grown past this by one large packet are let go once drained.
const KEEP_CAPACITY: usize = 1024 * 1024;

/// One connection's compression state.
#[derive(Default)]
pub struct Compressed {
    /// Bytes read from the socket, `raw[..raw_len]` not yet unpacked.
    raw: Vec<u8>,
    raw_len: usize,
    /// Unpacked bytes, `plain[taken..]` not yet read.
    plain: Vec<u8>,
    taken: usize,
    /// Packed bytes for the write under way.
    out: Vec<u8>,
    /// Funnel's bytes not yet packed: the start of a packet whose rest has
    /// not been written yet (see [`Self::pack`]).
    pending: Vec<u8>,
    /// A compressed packet's packets, renumbered (see [`Self::pack_packets`]).
    scratch: Vec<u8>,
    /// The compressed sequence id of the next packet written.
    seq: u8,
    /// Where the client's packets stand in the unpacked bytes.
    inbound: Framing,
    /// Where Funnel's packets stand in the bytes written.
    outbound: Framing,
    /// The sequence id of the last packet either side sent.
    last_packet_seq: u8,
    /// Offsets of the sequence ids in the bytes just unpacked, and whether
    /// their packet starts a command (kept to spare an allocation per
    /// packet).
    ids: Vec<(usize, bool)>,
}

/// A walk over the packets of a byte stream that arrives in pieces: how
/// much of the current packet's payload is still to come, and the part of
/// the next header seen so far.
#[derive(Default)]
struct Framing {
    payload_left: usize,
    header: [u8; 4],
    header_seen: usize,
    /// The header under way began a piece that starts a command.
    starts_command: bool,
}

impl Framing {
    /// Walks `bytes`, the next piece of the stream, calling `at_seq` with
    /// the offset of each packet's sequence id byte and whether its packet
    /// began a piece for which `piece_starts_command` was true.
    fn walk(&mut self, bytes: &[u8], piece_starts_command: bool, mut at_seq: impl FnMut(usize, bool)) {
        let mut i = 0;
        while i < bytes.len() {
            if self.payload_left > 0 {
                let n = self.payload_left.min(bytes.len() - i);
                self.payload_left -= n;
                i += n;
                continue;
            }
            if self.header_seen == 0 {
                self.starts_command = i == 0 && piece_starts_command;
            }
            if self.header_seen == 3 {
                at_seq(i, self.starts_command);
            }
            self.header[self.header_seen] = bytes[i];
            self.header_seen += 1;
            i += 1;
            if self.header_seen == 4 {
                self.payload_left = u24(&self.header[..3]);
                self.header_seen = 0;
            }
        }
    }
}

impl Compressed {
    /// Moves unpacked bytes into `buf`; 0 when there are none.
    pub fn take_plain(&mut self, buf: &mut [u8]) -> usize {
        let n = buf.len().min(self.plain.len() - self.taken);
        buf[..n].copy_from_slice(&self.plain[self.taken..self.taken + n]);
        self.taken += n;
        if self.taken == self.plain.len() {
            self.plain.clear();
            self.taken = 0;
            if self.plain.capacity() > KEEP_CAPACITY {
                self.plain = Vec::new();
            }
        }
        n
    }

    /// Unpacks the first compressed packet buffered, when it is whole:
    /// `Ok(true)` when it did. An error for a payload that does not
    /// inflate to the length its header gives.
    pub fn unpack_next(&mut self) -> io::Result<bool> {
        if self.raw_len < HEADER {
            return Ok(false);
        }
        let h = &self.raw[..HEADER];
        let len = u24(&h[0..3]);
        let seq = h[3];
        let plain_len = u24(&h[4..7]);
        let end = HEADER + len;
        if self.raw_len < end {
            return Ok(false);
        }
        let payload = &self.raw[HEADER..end];
        let from = self.plain.len();
        if plain_len == 0 {
            self.plain.extend_from_slice(payload);
        } else {
            inflate(payload, plain_len, &mut self.plain)?;
        }
        // Number the client's packets (see the module's notes). A count
        // back at 0 where it was not due to wrap starts a command; where
        // it was (the last id was 255: a long reply, or a LOCAL INFILE
        // file past 256 compressed packets) only a packet numbered 0 too.
        let new_command = seq == 0;
        let wrapped = self.seq == 0;
        let ids = &mut self.ids;
        ids.clear();
        self.inbound.walk(&self.plain[from..], new_command, |at, first| {
            ids.push((at, first))
        });
        for &(at, first) in ids.iter() {
            let id = if first && (!wrapped || self.plain[from + at] == 0) {
                0
            } else {
                self.last_packet_seq.wrapping_add(1)
            };
            self.plain[from + at] = id;
            self.last_packet_seq = id;
        }
        self.raw.copy_within(end..self.raw_len, 0);
        self.raw_len -= end;
        if self.raw_len == 0 && self.raw.capacity() > KEEP_CAPACITY {
            self.raw = Vec::new();
        }
        self.seq = seq.wrapping_add(1);
        Ok(true)
    }

    /// True when part of a compressed packet has arrived and waits for
    /// the rest: the client is mid-packet, not idle.
    pub fn has_partial_packet(&self) -> bool {
        self.raw_len > 0
    }

    /// Room to read more raw bytes into (see [`Self::raw_filled`]).
    pub fn raw_room(&mut self) -> &mut [u8] {
        if self.raw.len() - self.raw_len < READ_CHUNK / 4 {
            self.raw.resize(self.raw_len + READ_CHUNK, 0);
        }
        &mut self.raw[self.raw_len..]
    }

    /// Records that `n` bytes were read into [`Self::raw_room`].
    pub fn raw_filled(&mut self, n: usize) {
        self.raw_len += n;
    }

    /// Takes raw bytes that were read before compression began, as if they
    /// had just been read (see [`crate::rt::Stream::start_compression`]).
    pub fn push_raw(&mut self, bytes: &[u8]) {
        self.raw.truncate(self.raw_len);
        self.raw.extend_from_slice(bytes);
        self.raw_len = self.raw.len();
    }

    /// `plain` as compressed packets, to write as they are; empty when
    /// `plain` only adds to a packet still being written.
    ///
    /// A compressed packet holds whole packets only (but a 16 MB one, which
    /// takes two): the part of a packet that ends in a later write waits
    /// for it. Clients lean on this as they do on the server's own
    /// packing: MySQL Connector/Python reads at most one more compressed
    /// packet to finish a packet, and waits for ever on a 200 KB row
    /// relayed in the pieces it arrived in. So such a row is held whole
    /// (up to 16 MB), as the server holds it.
    pub fn pack(&mut self, plain: &[u8]) -> &[u8] {
        let last = &mut self.last_packet_seq;
        self.outbound.walk(plain, false, |at, _| *last = plain[at]);
        self.out.clear();
        if self.out.capacity() > KEEP_CAPACITY {
            self.out = Vec::new();
        }
        let mut held = std::mem::take(&mut self.pending);
        let from_held = !held.is_empty();
        let bytes: &[u8] = if from_held {
            held.extend_from_slice(plain);
            &held
        } else {
            plain
        };
        let whole = whole_packets(bytes);
        let mut rest = &bytes[..whole];
        while !rest.is_empty() {
            let mut n = 0;
            while n < rest.len() && n + HEADER_LEN + u24(&rest[n..]) <= MAX_PAYLOAD {
                n += HEADER_LEN + u24(&rest[n..]);
            }
            if n == 0 {
                // A packet of 16 MB: its first 16 MB, then the rest.
                let total = HEADER_LEN + u24(rest);
                self.pack_packets(&rest[..MAX_PAYLOAD]);
                n = total;
                self.pack_one(&rest[MAX_PAYLOAD..n]);
            } else {
                self.pack_packets(&rest[..n]);
            }
            rest = &rest[n..];
        }
        if from_held {
            held.drain(..whole);
            if held.is_empty() && held.capacity() > KEEP_CAPACITY {
                held = Vec::new();
            }
            self.pending = held;
        } else {
            self.pending.extend_from_slice(&plain[whole..]);
        }
        &self.out
    }

    /// [`Self::pack_one`] for `chunk`, which starts at a packet's header,
    /// with its packets numbered as the server numbers them: it gives the
    /// first packet after each flush the id of the compressed packet it
    /// goes in (`net_flush` syncs them), and clients check for that. The
    /// Rust `mysql` crate takes the backend's own numbering for packets out
    /// of sync once it has synced its count at a compressed packet's end
    /// (between the results of several statements).
    fn pack_packets(&mut self, chunk: &[u8]) {
        let mut scratch = std::mem::take(&mut self.scratch);
        scratch.clear();
        scratch.extend_from_slice(chunk);
        let (mut at, mut id) = (0, self.seq);
        while at + HEADER_LEN <= scratch.len() {
            scratch[at + 3] = id;
            id = id.wrapping_add(1);
            at += HEADER_LEN + u24(&scratch[at..]);
        }
        self.pack_one(&scratch);
        if scratch.capacity() > KEEP_CAPACITY {
            scratch = Vec::new();
        }
        self.scratch = scratch;
    }

    /// Appends `chunk` (at most [`MAX_PAYLOAD`] bytes) to `out` as one
    /// compressed packet.
    fn pack_one(&mut self, chunk: &[u8]) {
        let start = self.out.len();
        self.out.extend_from_slice(&[0; HEADER]);
        let mut plain_len = 0;
        if chunk.len() >= MIN_COMPRESS_LENGTH && deflate(chunk, &mut self.out) {
            plain_len = chunk.len();
        } else {
            self.out.truncate(start + HEADER);
            self.out.extend_from_slice(chunk);
        }
        let len = self.out.len() - start - HEADER;
        let h = &mut self.out[start..start + HEADER];
        h[0..3].copy_from_slice(&(len as u32).to_le_bytes()[..3]);
        h[3] = self.seq;
        h[4..7].copy_from_slice(&(plain_len as u32).to_le_bytes()[..3]);
        self.seq = self.seq.wrapping_add(1);
    }
}

/// The length of the whole packets that `bytes`, which starts at a
/// packet's header, begins with.
fn whole_packets(bytes: &[u8]) -> usize {
    let mut at = 0;
    while bytes.len() - at >= HEADER_LEN && bytes.len() - at >= HEADER_LEN + u24(&bytes[at..]) {
        at += HEADER_LEN + u24(&bytes[at..]);
    }
    at
}

/// Appends `chunk` deflated (zlib) to `out`; false (leaving `out` longer)
/// when that came out no shorter than the chunk itself.
fn deflate(chunk: &[u8], out: &mut Vec<u8>) -> bool {
    let start = out.len();
    let mut encoder = ZlibEncoder::new(&mut *out, Compression::default());
    if encoder
        .write_all(chunk)
        .and_then(|_| encoder.finish().map(|_| ()))
        .is_err()
    {
        return false;
    }
    out.len() - start < chunk.len()
}

/// Inflates `payload` onto `plain`, which must come to exactly
/// `plain_len` more bytes; grows `plain` only as the output arrives (one
/// byte past the promise, to catch a payload that inflates to more).
fn inflate(payload: &[u8], plain_len: usize, plain: &mut Vec<u8>) -> io::Result<()> {
    let bad = |why: &str| io::Error::new(io::ErrorKind::InvalidData, format!("compressed packet: {why}"));
    let mut z = Decompress::new(true);
    let base = plain.len();
    loop {
        let (read, produced) = (z.total_in() as usize, z.total_out() as usize);
        let room = (plain_len + 1 - produced).min(4 * READ_CHUNK);
        plain.resize(base + produced + room, 0);
        let status = z
            .decompress(
                &payload[read..],
                &mut plain[base + produced..],
                FlushDecompress::None,
            )
            .map_err(|e| bad(&e.to_string()))?;
        let out = z.total_out() as usize;
        plain.truncate(base + out);
        if out > plain_len {
            return Err(bad("longer than its header says"));
        }
        match status {
            Status::StreamEnd if out == plain_len => return Ok(()),
            Status::StreamEnd => return Err(bad("shorter than its header says")),
            _ if out == produced && z.total_in() as usize == read => return Err(bad("truncated")),
            _ => {}
        }
    }
}

fn u24(b: &[u8]) -> usize {
    usize::from(b[0]) | usize::from(b[1]) << 8 | usize::from(b[2]) << 16
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `wire` to `me` in pieces of `step` bytes and returns what it
    /// unpacks.
    fn feed(me: &mut Compressed, wire: &[u8], step: usize) -> io::Result<Vec<u8>> {
        let mut got = Vec::new();
        for piece in wire.chunks(step) {
            me.raw_room()[..piece.len()].copy_from_slice(piece);
            me.raw_filled(piece.len());
            while me.unpack_next()? {
                let mut buf = [0u8; 4096];
                loop {
                    let n = me.take_plain(&mut buf);
                    if n == 0 {
                        break;
                    }
                    got.extend_from_slice(&buf[..n]);
                }
            }
        }
        Ok(got)
    }

    /// [`feed`] to a fresh reader.
    fn unpack_all(wire: &[u8], step: usize) -> io::Result<Vec<u8>> {
        feed(&mut Compressed::default(), wire, step)
    }

    #[test]
    fn compress_packs_and_unpacks_small_large_and_incompressible_payloads() {
        let mut seed = 7u32;
        let noise: Vec<u8> = (0..5000)
            .map(|_| {
                seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
                (seed >> 16) as u8
            })
            .collect();
        let text = b"SELECT id, name FROM users WHERE id = 1; ".repeat(400);
        // As packets of one command (ids 0, 1, ...), which unpacking keeps.
        let framed = |payload: &[u8]| {
            let mut out = Vec::new();
            for (i, part) in payload.chunks(1000).enumerate() {
                out.extend_from_slice(&(part.len() as u32).to_le_bytes()[..3]);
                out.push(i as u8);
                out.extend_from_slice(part);
            }
            out
        };
        let (tiny, text, noise) = (framed(b"tiny"), framed(&text), framed(&noise));
        for plain in [&tiny[..], &text[..], &noise[..], &[][..]] {
            let mut w = Compressed::default();
            let wire = w.pack(plain).to_vec();
            for step in [1, 7, 1000, 1 << 20] {
                assert_eq!(unpack_all(&wire, step).unwrap(), plain, "step {step}");
            }
        }
        // Small stays plain, text shrinks, noise goes as it is.
        let mut w = Compressed::default();
        assert_eq!(&w.pack(&tiny)[4..7], &[0, 0, 0]);
        let packed = w.pack(&text).len();
        assert!(packed < text.len() / 10, "{packed}");
        assert_eq!(u24(&w.pack(&noise)[4..7]), 0);
    }

    #[test]
    fn compress_sequence_ids_follow_the_last_packet_read() {
        let mut peer = Compressed::default();
        let mut wire = peer.pack(&packets(&[(5, 0)])).to_vec();
        wire.extend_from_slice(peer.pack(&packets(&[(6, 0)])));
        assert_eq!((wire[3], wire[7 + 9 + 3]), (0, 1));
        let mut me = Compressed::default();
        me.raw_room()[..wire.len()].copy_from_slice(&wire);
        me.raw_filled(wire.len());
        assert!(me.unpack_next().unwrap() && me.unpack_next().unwrap());
        assert!(!me.unpack_next().unwrap());
        let reply = me.pack(&packets(&[(5, 1)])).to_vec();
        assert_eq!(reply[3], 2, "after the client's 0 and 1");
        assert_eq!(me.pack(&packets(&[(4, 2)]))[3], 3);
    }

    /// Packets as the uncompressed protocol frames them.
    fn packets(list: &[(usize, u8)]) -> Vec<u8> {
        let mut out = Vec::new();
        for &(len, seq) in list {
            out.extend_from_slice(&(len as u32).to_le_bytes()[..3]);
            out.push(seq);
            out.extend(std::iter::repeat_n(b'q', len));
        }
        out
    }

    /// The sequence ids of the packets in `bytes`.
    fn ids(bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut at = 0;
        while at + 4 <= bytes.len() {
            out.push(bytes[at + 3]);
            at += 4 + u24(&bytes[at..]);
        }
        out
    }

    /// What the client sends, in compressed packets of `step` bytes
    /// starting at compressed id `first`, unpacked by `me`.
    fn receive(me: &mut Compressed, stream: &[u8], step: usize, first: u8) -> Vec<u8> {
        let mut client = Compressed {
            seq: first,
            ..Compressed::default()
        };
        let mut wire = Vec::new();
        for piece in stream.chunks(step) {
            // Cut anywhere, as clients may (Funnel's own packing does not).
            client.out.clear();
            client.pack_one(piece);
            wire.extend_from_slice(&client.out);
        }
        feed(me, &wire, 1000).unwrap()
    }

    /// The payloads of the compressed packets in `wire`, unpacked.
    fn compressed_packets(wire: &[u8]) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        let mut at = 0;
        while at < wire.len() {
            let (len, plain_len) = (u24(&wire[at..]), u24(&wire[at + 4..]));
            let payload = &wire[at + HEADER..at + HEADER + len];
            let mut plain = Vec::new();
            if plain_len == 0 {
                plain.extend_from_slice(payload);
            } else {
                inflate(payload, plain_len, &mut plain).unwrap();
            }
            out.push(plain);
            at += HEADER + len;
        }
        out
    }

    /// The ids of the compressed packets in `wire`.
    fn wire_ids(wire: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut at = 0;
        while at < wire.len() {
            out.push(wire[at + 3]);
            at += HEADER + u24(&wire[at..]);
        }
        out
    }

    /// `bytes`, packets, with their ids zeroed.
    fn without_ids(bytes: &[u8]) -> Vec<u8> {
        let mut out = bytes.to_vec();
        let mut at = 0;
        while at + HEADER_LEN <= out.len() {
            out[at + 3] = 0;
            at += HEADER_LEN + u24(&out[at..]);
        }
        out
    }

    #[test]
    fn compress_funnel_packs_whole_packets_only() {
        // A reply written in pieces that cut packets and headers (a large
        // row relayed as it arrives): each compressed packet holds whole
        // packets, the ids run on, and nothing is lost or reordered.
        let reply = packets(&[(10, 1), (200_000, 2), (3, 3), (70_000, 4), (0, 5)]);
        for step in [1, 2, 1000, 65_536, 150_000] {
            let mut me = Compressed::default();
            let mut wire = Vec::new();
            for piece in reply.chunks(step) {
                wire.extend_from_slice(me.pack(piece));
            }
            let got = compressed_packets(&wire);
            for (i, p) in got.iter().enumerate() {
                assert_eq!(whole_packets(p), p.len(), "step {step}, compressed packet {i}");
                // Numbered from the compressed packet's id, as the server does.
                let first = wire_ids(&wire)[i];
                let want: Vec<u8> = (0..ids(p).len() as u8).map(|k| first.wrapping_add(k)).collect();
                assert_eq!(ids(p), want, "step {step}, compressed packet {i}");
            }
            assert!(without_ids(&got.concat()) == without_ids(&reply), "step {step}");
            assert!(me.pending.is_empty());
        }
        // A packet of 16 MB takes two: its first 16 MB, then its rest.
        let big = packets(&[(MAX_PAYLOAD, 1), (0, 2), (5, 3)]);
        let mut me = Compressed::default();
        let mut wire = Vec::new();
        for piece in big.chunks(1 << 20) {
            wire.extend_from_slice(me.pack(piece));
        }
        let got = compressed_packets(&wire);
        assert_eq!(
            got.iter().map(Vec::len).collect::<Vec<_>>(),
            [MAX_PAYLOAD, 4, 4 + 9]
        );
        assert!(without_ids(&got.concat()) == without_ids(&big));
        assert_eq!((got[0][3], ids(&got[2])), (0, vec![2, 3]));
        // The client's next packets are numbered on from the backend's ids,
        // not the ones sent (LOCAL INFILE data after a reply).
        assert_eq!(me.last_packet_seq, 3);
    }

    #[test]
    fn compress_local_infile_past_256_compressed_packets_keeps_its_numbering() {
        // The request for the file, then the file in one packet per
        // compressed packet, the client's own ids one ahead of the
        // compressed ones: the compressed count wraps to 0 at a packet
        // that is no new command.
        let mut me = Compressed::default();
        receive(&mut me, &packets(&[(40, 0)]), 1 << 20, 0);
        me.pack(&packets(&[(20, 1)]));
        let mut data = packets(&[(5, 2), (5, 3)]);
        for k in 0..300u32 {
            data.extend_from_slice(&packets(&[(5, (k + 4) as u8)]));
        }
        // First compressed packet: the first two packets; then one each.
        let mut client = Compressed {
            seq: me.seq,
            ..Compressed::default()
        };
        let mut wire = Vec::new();
        client.pack_one(&data[..18]);
        wire.extend_from_slice(&client.out);
        for piece in data[18..].chunks(9) {
            client.out.clear();
            client.pack_one(piece);
            wire.extend_from_slice(&client.out);
        }
        let got = feed(&mut me, &wire, 1000).unwrap();
        let want: Vec<u8> = (0..302u32).map(|k| (k + 2) as u8).collect();
        assert_eq!(ids(&got), want);
        // A command after a reply whose last compressed id was 255.
        me.seq = 255;
        me.pack(&packets(&[(20, 9)]));
        assert_eq!(me.seq, 0);
        assert_eq!(ids(&receive(&mut me, &packets(&[(5, 0)]), 100, 0)), [0]);
    }

    #[test]
    fn compress_client_packets_are_numbered_as_uncompressed() {
        // A command of two packets, both numbered 0 by the client (the
        // `mariadb` client past 16 MB), split across compressed packets
        // anywhere, headers too.
        for (step, first_len) in [(3, 100), (5, 3000), (70_000, MAX_PAYLOAD), (1 << 20, MAX_PAYLOAD)] {
            let mut me = Compressed::default();
            let command = packets(&[(first_len, 0), (10, 0)]);
            let got = receive(&mut me, &command, step.max(1), 0);
            assert_eq!(got.len(), command.len());
            assert_eq!(ids(&got), [0, 1], "step {step}");
            // Funnel's reply, then LOCAL INFILE data numbered on from it,
            // then a new command back at 0.
            me.pack(&packets(&[(20, 1)]));
            let next_seq = me.seq;
            let data = receive(&mut me, &packets(&[(100, 7), (100, 7), (0, 7)]), step, next_seq);
            assert_eq!(ids(&data), [2, 3, 4]);
            let next = receive(&mut me, &packets(&[(5, 9)]), step, 0);
            assert_eq!(ids(&next), [0]);
        }
    }

    #[test]
    fn compress_refuses_payloads_that_do_not_match_their_header() {
        let text = b"abcdefgh".repeat(100);
        let mut w = Compressed::default();
        w.pack_one(&text);
        let good = w.out.clone();
        // Declared longer, or shorter, than the payload inflates to.
        for declared in [text.len() + 1, text.len() - 1, 1 << 23] {
            let mut bad = good.clone();
            bad[4..7].copy_from_slice(&(declared as u32).to_le_bytes()[..3]);
            assert!(unpack_all(&bad, 64).is_err(), "{declared}");
        }
        // Not zlib at all.
        let mut junk = good.clone();
        for b in &mut junk[7..20] {
            *b = 0xAA;
        }
        assert!(unpack_all(&junk, 64).is_err());
    }
}
