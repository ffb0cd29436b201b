//! Primitive wire types: fixed-size little-endian integers, length-encoded
//! integers and strings, NUL-terminated strings.
//!
//! See "Basic Data Types" in the MySQL client/server protocol docs. A
//! [`Reader`] borrows the packet and never reads past its end; the `put_*`
//! functions append to a [`BytesMut`].

use bytes::{BufMut, BytesMut};

use crate::error::{ProtocolError, Result};

/// A bounds-checked cursor over one packet payload.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// Starts reading at the beginning of `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    /// Bytes not read yet.
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// True when everything was read.
    pub fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    /// The next byte, without consuming it.
    pub fn peek_u8(&self) -> Option<u8> {
        self.buf.get(self.pos).copied()
    }

    /// Consumes exactly `n` bytes.
    pub fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8]> {
        if self.remaining() < n {
            return Err(ProtocolError::Truncated {
                what,
                needed: n,
                available: self.remaining(),
            });
        }
        let out = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    /// Consumes everything that is left.
    pub fn rest(&mut self) -> &'a [u8] {
        let out = &self.buf[self.pos..];
        self.pos = self.buf.len();
        out
    }

    /// Skips `n` bytes.
    pub fn skip(&mut self, n: usize, what: &'static str) -> Result<()> {
        self.take(n, what).map(|_| ())
    }

    /// A one-byte integer.
    pub fn u8(&mut self, what: &'static str) -> Result<u8> {
        Ok(self.take(1, what)?[0])
    }

    /// A two-byte little-endian integer.
    pub fn u16(&mut self, what: &'static str) -> Result<u16> {
        let b = self.take(2, what)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }

    /// A three-byte little-endian integer.
    pub fn u24(&mut self, what: &'static str) -> Result<u32> {
        let b = self.take(3, what)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], 0]))
    }

    /// A four-byte little-endian integer.
    pub fn u32(&mut self, what: &'static str) -> Result<u32> {
        let b = self.take(4, what)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// An eight-byte little-endian integer.
    pub fn u64(&mut self, what: &'static str) -> Result<u64> {
        let b = self.take(8, what)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }

    /// A length-encoded integer. `0xfb` (NULL) and `0xff` (ERR marker) are not
    /// integers and are rejected; use [`Reader::lenenc_str_or_null`] where NULL
    /// is allowed.
    pub fn lenenc_int(&mut self, what: &'static str) -> Result<u64> {
        match self.u8(what)? {
            n @ 0..=0xfa => Ok(u64::from(n)),
            0xfc => Ok(u64::from(self.u16(what)?)),
            0xfd => Ok(u64::from(self.u24(what)?)),
            0xfe => self.u64(what),
            _ => Err(ProtocolError::malformed(
                what,
                "invalid length-encoded integer prefix",
            )),
        }
    }

    /// A length-encoded string.
    pub fn lenenc_str(&mut self, what: &'static str) -> Result<&'a [u8]> {
        let len = self.lenenc_int(what)?;
        let len =
            usize::try_from(len).map_err(|_| ProtocolError::malformed(what, "length overflows usize"))?;
        self.take(len, what)
    }

    /// A length-encoded string, or `None` for the NULL marker `0xfb` (text rows).
    pub fn lenenc_str_or_null(&mut self, what: &'static str) -> Result<Option<&'a [u8]>> {
        if self.peek_u8() == Some(0xfb) {
            self.pos += 1;
            return Ok(None);
        }
        self.lenenc_str(what).map(Some)
    }

    /// A NUL-terminated string (the NUL is consumed, not returned).
    pub fn nul_str(&mut self, what: &'static str) -> Result<&'a [u8]> {
        let rest = &self.buf[self.pos..];
        match rest.iter().position(|&b| b == 0) {
            Some(end) => {
                self.pos += end + 1;
                Ok(&rest[..end])
            }
            None => Err(ProtocolError::malformed(what, "missing NUL terminator")),
        }
    }

    /// A NUL-terminated string that may also simply end at the end of the
    /// packet (some clients omit the final NUL, e.g. after the auth plugin name).
    pub fn nul_str_or_eof(&mut self) -> &'a [u8] {
        let rest = &self.buf[self.pos..];
        match rest.iter().position(|&b| b == 0) {
            Some(end) => {
                self.pos += end + 1;
                &rest[..end]
            }
            None => {
                self.pos = self.buf.len();
                rest
            }
        }
    }
}

/// How many bytes [`put_lenenc_int`] writes for `v`.
pub fn lenenc_int_len(v: u64) -> usize {
    match v {
        0..=0xfa => 1,
        0xfb..=0xffff => 3,
        0x1_0000..=0xff_ffff => 4,
        _ => 9,
    }
}

/// Appends a length-encoded integer.
pub fn put_lenenc_int(buf: &mut BytesMut, v: u64) {
    match v {
        0..=0xfa => buf.put_u8(v as u8),
        0xfb..=0xffff => {
            buf.put_u8(0xfc);
            buf.put_u16_le(v as u16);
        }
        0x1_0000..=0xff_ffff => {
            buf.put_u8(0xfd);
            buf.put_uint_le(v, 3);
        }
        _ => {
            buf.put_u8(0xfe);
            buf.put_u64_le(v);
        }
    }
}

/// Appends a length-encoded string.
pub fn put_lenenc_str(buf: &mut BytesMut, s: &[u8]) {
    put_lenenc_int(buf, s.len() as u64);
    buf.put_slice(s);
}

/// Appends a NUL-terminated string.
pub fn put_nul_str(buf: &mut BytesMut, s: &[u8]) {
    buf.put_slice(s);
    buf.put_u8(0);
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn protocol_lenenc_int_boundaries() {
        for v in [0u64, 250, 251, 0xffff, 0x1_0000, 0xff_ffff, 0x100_0000, u64::MAX] {
            let mut b = BytesMut::new();
            put_lenenc_int(&mut b, v);
            assert_eq!(b.len(), lenenc_int_len(v));
            let mut r = Reader::new(&b);
            assert_eq!(r.lenenc_int("v").unwrap(), v);
            assert!(r.is_empty());
        }
    }

    #[test]
    fn protocol_lenenc_rejects_bad_prefix_and_truncation() {
        assert!(Reader::new(&[0xff]).lenenc_int("v").is_err());
        assert!(Reader::new(&[0xfb]).lenenc_int("v").is_err());
        assert!(matches!(
            Reader::new(&[0xfc, 1]).lenenc_int("v"),
            Err(ProtocolError::Truncated { .. })
        ));
        // A string that claims more bytes than the packet has.
        assert!(Reader::new(&[5, b'a', b'b']).lenenc_str("s").is_err());
        // A huge declared length must not allocate or panic.
        let huge = [0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f];
        assert!(Reader::new(&huge).lenenc_str("s").is_err());
    }

    #[test]
    fn protocol_nul_str() {
        let mut r = Reader::new(b"abc\0def");
        assert_eq!(r.nul_str("a").unwrap(), b"abc");
        assert!(r.nul_str("b").is_err());
        assert_eq!(r.nul_str_or_eof(), b"def");
    }

    proptest! {
        #[test]
        fn protocol_lenenc_roundtrip(v in any::<u64>(), s in proptest::collection::vec(any::<u8>(), 0..300)) {
            let mut b = BytesMut::new();
            put_lenenc_int(&mut b, v);
            put_lenenc_str(&mut b, &s);
            let mut r = Reader::new(&b);
            prop_assert_eq!(r.lenenc_int("v").unwrap(), v);
            prop_assert_eq!(r.lenenc_str("s").unwrap(), &s[..]);
            prop_assert!(r.is_empty());
        }

        #[test]
        fn protocol_reader_never_panics(data in proptest::collection::vec(any::<u8>(), 0..64)) {
            let mut r = Reader::new(&data);
            let _ = r.lenenc_str("s");
            let _ = r.lenenc_int("i");
            let _ = r.nul_str("n");
            let _ = r.u64("u");
        }
    }
}
