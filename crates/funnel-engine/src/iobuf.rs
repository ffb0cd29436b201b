//! A reusable read buffer with packet access.
//!
//! Each connection keeps one; bytes are read into its free tail and packets
//! are looked at in place, so forwarding a packet copies nothing in user
//! space. The buffer is zero-initialised once and grows only for packets
//! that do not fit, so reads never memset.

use std::io;

use funnel_protocol::framing::{PacketHeader, HEADER_LEN};

use crate::rt::Stream;

/// Initial size of a connection's read buffer.
pub const DEFAULT_CAPACITY: usize = 16 * 1024;

/// Bytes kept free in front of the data when the buffer empties, so that a
/// packet at the front can grow by a byte or two in place
/// ([`IoBuf::replace_front`]) instead of moving everything after it.
const HEADROOM: usize = 8;

/// Bytes read from a socket and not consumed yet.
pub struct IoBuf {
    data: Vec<u8>,
    start: usize,
    end: usize,
    initial: usize,
}

impl Default for IoBuf {
    fn default() -> Self {
        Self::with_capacity(DEFAULT_CAPACITY)
    }
}

impl IoBuf {
    /// A buffer of `cap` bytes.
    pub fn with_capacity(cap: usize) -> Self {
        IoBuf {
            data: vec![0; cap + HEADROOM],
            start: HEADROOM,
            end: HEADROOM,
            initial: cap + HEADROOM,
        }
    }

    /// The unconsumed bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.data[self.start..self.end]
    }

    /// The unconsumed bytes, to change in place (a sequence id).
    pub fn bytes_mut(&mut self) -> &mut [u8] {
        &mut self.data[self.start..self.end]
    }

    /// Puts `new` in place of the first `old_len` unconsumed bytes. It
    /// moves only `new`'s bytes where the headroom (or `old_len`) has room
    /// for them, which is the case for a packet that grows by a byte at the
    /// front of a buffer.
    pub fn replace_front(&mut self, old_len: usize, new: &[u8]) {
        debug_assert!(old_len <= self.len());
        if new.len() <= old_len + self.start {
            let at = self.start + old_len - new.len();
            self.data[at..at + new.len()].copy_from_slice(new);
            self.start = at;
        } else {
            let grow = new.len() - old_len;
            if self.data.len() - self.end < grow {
                self.data.resize(self.end + grow, 0);
            }
            self.data
                .copy_within(self.start + old_len..self.end, self.start + new.len());
            self.data[self.start..self.start + new.len()].copy_from_slice(new);
            self.end += grow;
        }
    }

    /// How many unconsumed bytes there are.
    pub fn len(&self) -> usize {
        self.end - self.start
    }

    /// True when nothing is buffered.
    pub fn is_empty(&self) -> bool {
        self.start == self.end
    }

    /// Drops `n` bytes from the front.
    pub fn consume(&mut self, n: usize) {
        debug_assert!(n <= self.len());
        self.start += n;
        if self.start == self.end {
            self.start = HEADROOM;
            self.end = HEADROOM;
        }
    }

    /// Forgets everything buffered.
    pub fn clear(&mut self) {
        self.start = HEADROOM;
        self.end = HEADROOM;
    }

    /// The header of the first buffered packet, if four bytes are there.
    pub fn peek_header(&self) -> Option<PacketHeader> {
        PacketHeader::peek(self.bytes())
    }

    /// The first packet (header and payload) when all of it is buffered.
    pub fn whole_packet(&self) -> Option<(PacketHeader, &[u8])> {
        let h = self.peek_header()?;
        let b = self.bytes();
        (b.len() >= h.total_len()).then(|| (h, &b[HEADER_LEN..h.total_len()]))
    }

    /// Makes room for at least `want` unconsumed bytes in total, moving the
    /// live bytes to the front or growing the buffer as needed.
    pub fn reserve_total(&mut self, want: usize) {
        if self.start > HEADROOM
            && (self.data.len() - self.end < want.saturating_sub(self.len()) || self.end == self.data.len())
        {
            self.data.copy_within(self.start..self.end, HEADROOM);
            self.end -= self.start - HEADROOM;
            self.start = HEADROOM;
        }
        if self.data.len() - self.start < want {
            self.data.resize(self.start + want, 0);
        }
    }

    /// Makes room toward `want` unconsumed bytes a peer announced (a
    /// packet's declared length), at most doubling what has arrived: the
    /// buffer grows with the data, so a header alone, 4 bytes that declare
    /// 16 MiB, costs nothing until the bytes come.
    pub fn reserve_toward(&mut self, want: usize) {
        self.reserve_total(want.min(self.len().max(DEFAULT_CAPACITY).saturating_mul(2)));
    }

    /// Reads once from `stream` into the free tail. Returns the bytes read,
    /// 0 when only part of a compressed packet arrived (the peer is
    /// mid-packet, see [`Stream::read`]); an error of kind `UnexpectedEof`
    /// when the peer closed.
    pub async fn fill(&mut self, stream: &mut Stream) -> io::Result<usize> {
        if self.end == self.data.len() {
            let len = self.len();
            self.reserve_total(len.max(DEFAULT_CAPACITY / 2) + DEFAULT_CAPACITY / 2);
        }
        let n = match stream.read(&mut self.data[self.end..]).await {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(0),
            r => r?,
        };
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "peer closed the connection",
            ));
        }
        self.end += n;
        Ok(n)
    }

    /// Shrinks a buffer that grew far past its initial size (for one large
    /// packet) back to that size once it is empty, so idle connections stay
    /// small without reallocating after every ordinary command.
    pub fn shrink_if_idle(&mut self) {
        if self.is_empty() && self.data.len() > 4 * self.initial {
            self.data = vec![0; self.initial];
            self.start = HEADROOM;
            self.end = HEADROOM;
        }
    }

    /// The buffer's current size in bytes (for memory accounting).
    pub fn capacity(&self) -> usize {
        self.data.len() - HEADROOM
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn push(b: &mut IoBuf, bytes: &[u8]) {
        b.reserve_total(b.len() + bytes.len());
        let end = b.end;
        b.data[end..end + bytes.len()].copy_from_slice(bytes);
        b.end += bytes.len();
    }

    #[test]
    fn iobuf_packets_in_place() {
        let mut b = IoBuf::with_capacity(8);
        push(&mut b, &[3, 0, 0, 1, b'a']);
        assert!(b.whole_packet().is_none());
        push(&mut b, &[b'b', b'c', 1, 0]);
        let (h, p) = b.whole_packet().unwrap();
        assert_eq!((h.seq, p), (1, &b"abc"[..]));
        b.consume(h.total_len());
        assert_eq!(b.bytes(), &[1, 0]);
        b.consume(2);
        assert!(b.is_empty());
    }

    #[test]
    fn iobuf_reserve_toward_grows_with_the_data() {
        let mut b = IoBuf::with_capacity(8);
        push(&mut b, &[0xff, 0xff, 0xff, 0]);
        b.reserve_toward(1 << 24);
        assert_eq!(b.capacity(), 2 * DEFAULT_CAPACITY, "not the declared 16 MiB");
        push(&mut b, &vec![1; 3 * DEFAULT_CAPACITY]);
        b.reserve_toward(1 << 24);
        assert_eq!(b.capacity(), 2 * b.len());
        b.reserve_toward(b.len() + 10);
        assert_eq!(b.capacity(), 2 * b.len(), "never shrinks");
        let mut small = IoBuf::with_capacity(8);
        small.reserve_toward(100);
        assert_eq!(small.capacity(), 100, "a small packet gets all it needs at once");
    }

    #[test]
    fn iobuf_reserve_compacts_and_grows() {
        let mut b = IoBuf::with_capacity(8);
        push(&mut b, &[1, 2, 3, 4, 5, 6]);
        b.consume(5);
        b.reserve_total(7);
        assert_eq!(b.bytes(), &[6]);
        assert!(b.data.len() >= 7);
        b.reserve_total(100);
        assert_eq!(b.bytes(), &[6]);
        b.consume(1);
        b.shrink_if_idle();
        assert_eq!(b.capacity(), 8, "back to its initial size once idle");
    }

    #[test]
    fn iobuf_replace_front_grows_into_the_headroom_and_shrinks_in_place() {
        let mut b = IoBuf::with_capacity(8);
        push(&mut b, &[1, 0, 0, 1, 3, 9, 9]);
        // The packet of one byte at the front becomes one of two.
        b.replace_front(5, &[2, 0, 0, 1, 3, 1]);
        assert_eq!(b.bytes(), &[2, 0, 0, 1, 3, 1, 9, 9]);
        // Shrinks: the bytes after it stay where they are.
        b.replace_front(6, &[7]);
        assert_eq!(b.bytes(), &[7, 9, 9]);
        // With no headroom left the rest moves.
        let mut full = IoBuf {
            data: vec![1, 2, 3, 4],
            start: 0,
            end: 4,
            initial: 4,
        };
        full.replace_front(1, &[5, 6]);
        assert_eq!(full.bytes(), &[5, 6, 2, 3, 4]);
    }
}
