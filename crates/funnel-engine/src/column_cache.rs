//! MariaDB's metadata cache (`MARIADB_CLIENT_CACHE_METADATA`) for the
//! clients that ask for it: libmariadb (sysbench, the `mysql` CLI,
//! Connector/C applications) and the Node.js `mariadb` connector do.
//!
//! With it, every column count a client gets carries one byte more that
//! says whether column definitions follow, and the server leaves them out
//! of an execute's result set when they are what the client has for that
//! statement already. Backend connections never ask for it: they are
//! shared, and which definitions a client has is the client's own. So the
//! relay adds the byte to each column count, and leaves out an execute's
//! definitions when they are byte for byte the ones the client got last
//! for the statement, from its prepare response or an execute since. The
//! packets after them then go out with their sequence ids moved down by as
//! many packets as were left out.
//!
//! The rewrite happens in the backend connection's read buffer, where the
//! count packet is at the front (its one extra byte goes into the buffer's
//! headroom), so a result set still goes to the client in one write.

use funnel_protocol::framing::{PacketHeader, HEADER_LEN};
use funnel_protocol::response::{EOF_HEADER, ERR_HEADER, LOCAL_INFILE_HEADER, OK_HEADER};
use funnel_protocol::tracker::{Event, ResponseTracker};
use funnel_protocol::wire::Reader;
use funnel_protocol::ProtocolError;

use crate::iobuf::IoBuf;
use crate::prepared::registry::StatementMeta;

/// What a client has of one prepared statement's result columns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum KnownColumns {
    /// The definitions of the prepare response it got.
    #[default]
    FromPrepare,
    /// Definitions an execute sent it since (packets, headers included).
    Sent(Box<[u8]>),
    /// An execute sent it definitions that were not all in the buffer to
    /// keep: the next execute sends its definitions again.
    Unknown,
}

/// The relay's side of the cache for one command's response.
pub struct ColumnCache<'a> {
    /// For an execute: what the client has of its statement's columns,
    /// and the statement (its prepare response). `None` for a text query,
    /// whose column counts only get the byte.
    statement: Option<(&'a mut KnownColumns, &'a StatementMeta)>,
    /// A result set of the response went by already: only the first is
    /// the statement's own (a `CALL`'s later ones are the procedure's).
    seen_result: bool,
    /// How far the sequence ids of the packets after left-out definitions
    /// move down.
    seq_shift: u8,
}

/// What [`ColumnCache::rewrite_front`] did with the front of the buffer.
#[derive(Debug, PartialEq, Eq)]
pub enum Front {
    /// The packet there starts no result set (an OK, ERR, LOCAL INFILE
    /// request): the relay goes on as usual.
    NotCount,
    /// The count packet, or an execute's definitions after it, are not
    /// all buffered yet: read more first, with room for `want` bytes.
    Incomplete {
        /// Unconsumed bytes the buffer needs room for.
        want: usize,
    },
    /// The count packet was rewritten (and the definitions after it left
    /// out where the client has them) and fed to the tracker: the first
    /// `len` bytes are ready to go to the client, with sequence id `seq`.
    Rewritten {
        /// Bytes at the front of the buffer to forward.
        len: usize,
        /// The rewritten packet's sequence id.
        seq: u8,
        /// The tracker's event for the last packet fed.
        event: Event,
    },
}

impl<'a> ColumnCache<'a> {
    /// For a command's response; `statement` for an execute.
    pub fn new(statement: Option<(&'a mut KnownColumns, &'a StatementMeta)>) -> Self {
        ColumnCache {
            statement,
            seen_result: false,
            seq_shift: 0,
        }
    }

    /// How far the sequence id of every packet from here on moves down.
    pub fn seq_shift(&self) -> u8 {
        self.seq_shift
    }

    /// Rewrites the column count at the front of `buf`, which starts a
    /// result (the tracker expects one: [`ResponseTracker::expects_result_start`]).
    pub fn rewrite_front(
        &mut self,
        buf: &mut IoBuf,
        tracker: &mut ResponseTracker,
    ) -> Result<Front, ProtocolError> {
        let bytes = buf.bytes();
        let Some(h) = PacketHeader::peek(bytes) else {
            return Ok(Front::Incomplete { want: HEADER_LEN });
        };
        if bytes.len() < h.total_len() {
            return Ok(Front::Incomplete { want: h.total_len() });
        }
        let count_len = h.total_len();
        let payload = &bytes[HEADER_LEN..count_len];
        if matches!(
            payload.first(),
            None | Some(&OK_HEADER | &ERR_HEADER | &LOCAL_INFILE_HEADER | &EOF_HEADER)
        ) {
            return Ok(Front::NotCount);
        }
        let columns = Reader::new(payload).lenenc_int("column count")?;
        if h.len > 9 {
            return Err(ProtocolError::malformed("result set", "bad column count packet"));
        }
        let first = !self.seen_result;
        // An execute's definitions are compared once all of them are
        // buffered: the server leaves them out however many reads they
        // take (up to `MAX_DEFINITIONS`).
        let defs_len = match self.statement {
            Some(_) if first => match whole_packets(&bytes[count_len..], columns) {
                Ok(n) => Some(n),
                Err(want) if columns <= MAX_COLUMNS && count_len + want <= MAX_DEFINITIONS => {
                    return Ok(Front::Incomplete {
                        want: count_len + want,
                    });
                }
                Err(_) => None,
            },
            _ => None,
        };
        // The tracker refuses a count packet with anything after the count.
        let mut event = tracker.feed(payload, h.len)?;
        self.seen_result = true;
        let mut skip = false;
        if let (Some((known, meta)), true) = (self.statement.as_mut(), first) {
            let prepared = meta.column_definitions();
            match defs_len {
                Some(n) => {
                    let defs = &bytes[count_len..count_len + n];
                    let has = match &**known {
                        KnownColumns::FromPrepare => Some(prepared),
                        KnownColumns::Sent(b) => Some(&b[..]),
                        KnownColumns::Unknown => None,
                    };
                    skip = has.is_some_and(|has| same_packets(has, defs));
                    if !skip {
                        **known = if same_packets(prepared, defs) {
                            KnownColumns::FromPrepare
                        } else {
                            KnownColumns::Sent(defs.into())
                        };
                    }
                }
                None => **known = KnownColumns::Unknown,
            }
        }
        let mut old_len = count_len;
        if skip {
            // The tracker follows the server's packets, definitions too.
            let mut at = count_len;
            for _ in 0..columns {
                let d = PacketHeader::peek(&bytes[at..]).expect("counted whole above");
                event = tracker.feed(&bytes[at + HEADER_LEN..at + d.total_len()], d.len)?;
                at += d.total_len();
            }
            old_len = at;
        }
        let seq = h.seq.wrapping_sub(self.seq_shift);
        let mut packet = [0u8; HEADER_LEN + 10];
        let len = h.len + 1;
        packet[..3].copy_from_slice(&(len as u32).to_le_bytes()[..3]);
        packet[3] = seq;
        packet[HEADER_LEN..HEADER_LEN + h.len].copy_from_slice(payload);
        packet[HEADER_LEN + h.len] = u8::from(!skip);
        let new = &packet[..HEADER_LEN + len];
        buf.replace_front(old_len, new);
        if skip {
            self.seq_shift = self.seq_shift.wrapping_add(columns as u8);
        }
        Ok(Front::Rewritten {
            len: new.len(),
            seq,
            event,
        })
    }
}

/// Most columns a result set has on MariaDB: a count above it waits for
/// no definitions.
const MAX_COLUMNS: u64 = 4096;

/// Most bytes a count and its definitions may take in the read buffer
/// while the relay waits for all of them: past it (4096 columns of long
/// names), the definitions go to the client as they come, and the next
/// execute sends them again.
const MAX_DEFINITIONS: usize = 1 << 20;

/// The length of the first `n` packets of `bytes` when all of them are
/// there; else `Err` with how many bytes they need at least (up to the
/// end of the first one not whole).
fn whole_packets(bytes: &[u8], n: u64) -> Result<usize, usize> {
    let mut at = 0;
    for _ in 0..n {
        let Some(h) = PacketHeader::peek(&bytes[at..]) else {
            return Err(at + HEADER_LEN);
        };
        if bytes.len() - at < h.total_len() {
            return Err(at + h.total_len());
        }
        at += h.total_len();
    }
    Ok(at)
}

/// Whether two runs of packets carry the same payloads (sequence ids aside).
fn same_packets(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let mut at = 0;
    while at < a.len() {
        let (Some(ha), Some(hb)) = (PacketHeader::peek(&a[at..]), PacketHeader::peek(&b[at..])) else {
            return false;
        };
        let end = at + ha.total_len();
        if ha.len != hb.len || end > a.len() || a[at + HEADER_LEN..end] != b[at + HEADER_LEN..end] {
            return false;
        }
        at = end;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BytesMut;
    use funnel_protocol::framing::write_packet;
    use funnel_protocol::tracker::Expect;
    use funnel_protocol::{Capabilities, StatusFlags};

    fn packets(list: &[(u8, &[u8])]) -> Vec<u8> {
        let mut out = BytesMut::new();
        for (seq, p) in list {
            write_packet(&mut out, *seq, p);
        }
        out.to_vec()
    }

    fn buffer(bytes: &[u8]) -> IoBuf {
        let mut b = IoBuf::with_capacity(64);
        b.reserve_total(bytes.len());
        b.replace_front(0, bytes);
        b
    }

    #[test]
    fn column_cache_same_packets_ignores_sequence_ids_only() {
        let a = packets(&[(1, b"\x03defa"), (2, b"\x03defb")]);
        let b = packets(&[(7, b"\x03defa"), (8, b"\x03defb")]);
        assert!(same_packets(&a, &b));
        let c = packets(&[(1, b"\x03defa"), (2, b"\x03defc")]);
        assert!(!same_packets(&a, &c));
        assert!(!same_packets(&a, &a[..a.len() - 1]));
    }

    #[test]
    fn column_cache_text_count_gets_the_flag_byte_in_place() {
        let caps = Capabilities::CLIENT_PROTOCOL_41;
        let mut tracker = ResponseTracker::new(Expect::Results, caps, StatusFlags(2));
        let reply = packets(&[(1, b"\x01"), (2, b"\x03defx"), (3, b"\xfe\0\0\x02\0")]);
        let mut buf = buffer(&reply);
        let mut cache = ColumnCache::new(None);
        let front = cache.rewrite_front(&mut buf, &mut tracker).unwrap();
        assert_eq!(
            front,
            Front::Rewritten {
                len: 6,
                seq: 1,
                event: Event::More
            }
        );
        assert_eq!(&buf.bytes()[..6], &[2, 0, 0, 1, 1, 1]);
        assert_eq!(&buf.bytes()[6..], &reply[5..], "the rest stays as it was");
        assert_eq!(cache.seq_shift(), 0);
    }

    #[test]
    fn column_cache_not_a_count_is_left_alone() {
        let caps = Capabilities::CLIENT_PROTOCOL_41;
        let mut tracker = ResponseTracker::new(Expect::Results, caps, StatusFlags(2));
        let ok = packets(&[(1, b"\x00\x00\x00\x02\x00\x00\x00")]);
        let mut buf = buffer(&ok);
        let mut cache = ColumnCache::new(None);
        assert_eq!(
            cache.rewrite_front(&mut buf, &mut tracker).unwrap(),
            Front::NotCount
        );
        assert_eq!(buf.bytes(), &ok[..]);
        let mut part = buffer(&[1, 0, 0]);
        assert_eq!(
            cache.rewrite_front(&mut part, &mut tracker).unwrap(),
            Front::Incomplete { want: 4 }
        );
    }
}
