//! Generic response packets: OK, ERR and EOF.
//!
//! With `CLIENT_DEPRECATE_EOF` an OK packet with header `0xfe` replaces the
//! EOF that ends a result set; a packet starting with `0xfe` is a terminator
//! (not a row) only when it is shorter than 9 bytes (classic EOF) or shorter
//! than a full 16 MiB chunk (OK form), because a text row can only start with
//! `0xfe` when its first value is at least 16 MiB long.

use bytes::{BufMut, BytesMut};

use crate::error::{ProtocolError, Result};
use crate::flags::{Capabilities, StatusFlags};
use crate::framing::MAX_CHUNK;
use crate::wire::{put_lenenc_int, put_lenenc_str, Reader};

/// Header byte of an OK packet.
pub const OK_HEADER: u8 = 0x00;
/// Header byte of an EOF packet (and of OK packets that replace EOF).
pub const EOF_HEADER: u8 = 0xfe;
/// Header byte of an ERR packet.
pub const ERR_HEADER: u8 = 0xff;
/// Header byte of a LOCAL INFILE request.
pub const LOCAL_INFILE_HEADER: u8 = 0xfb;

/// True when `payload` is an EOF packet (classic form, protocol 4.1).
pub fn is_eof(payload: &[u8]) -> bool {
    payload.first() == Some(&EOF_HEADER) && payload.len() < 9
}

/// True when `payload` terminates a result set: an EOF, or with
/// `CLIENT_DEPRECATE_EOF` an OK packet with header `0xfe`.
pub fn is_result_terminator(payload: &[u8], deprecate_eof: bool) -> bool {
    payload.first() == Some(&EOF_HEADER)
        && (payload.len() < 9 || (deprecate_eof && payload.len() < MAX_CHUNK))
}

/// True when `payload` is an ERR packet.
pub fn is_err(payload: &[u8]) -> bool {
    payload.first() == Some(&ERR_HEADER)
}

/// An OK packet.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OkPacket {
    /// Rows changed (or matched, with `CLIENT_FOUND_ROWS`).
    pub affected_rows: u64,
    /// `LAST_INSERT_ID()` after the statement.
    pub last_insert_id: u64,
    /// Server status flags.
    pub status: StatusFlags,
    /// Warnings the statement raised.
    pub warnings: u16,
    /// Human-readable info (e.g. "Rows matched: 1  Changed: 1").
    pub info: Vec<u8>,
    /// Raw session-state-change data (`CLIENT_SESSION_TRACK` and
    /// `SERVER_SESSION_STATE_CHANGED`); decode with [`crate::session_track`].
    pub session_state: Option<Vec<u8>>,
}

impl OkPacket {
    /// Parses an OK packet (header `0x00`, or `0xfe` when it replaces an EOF).
    pub fn parse(payload: &[u8], caps: Capabilities) -> Result<Self> {
        let mut r = Reader::new(payload);
        match r.u8("OK header")? {
            OK_HEADER | EOF_HEADER => {}
            _ => return Err(ProtocolError::Unexpected("not an OK packet")),
        }
        let mut ok = OkPacket {
            affected_rows: r.lenenc_int("affected rows")?,
            last_insert_id: r.lenenc_int("last insert id")?,
            ..Default::default()
        };
        if r.is_empty() {
            return Ok(ok);
        }
        ok.status = StatusFlags(r.u16("status flags")?);
        ok.warnings = r.u16("warnings")?;
        if caps.contains(Capabilities::CLIENT_SESSION_TRACK) {
            if !r.is_empty() {
                ok.info = r.lenenc_str("info")?.to_vec();
            }
            if ok.status.contains(StatusFlags::SERVER_SESSION_STATE_CHANGED) && !r.is_empty() {
                ok.session_state = Some(r.lenenc_str("session state")?.to_vec());
            }
        } else if !r.is_empty() {
            // Servers write the message length-encoded (net_store_data) even
            // without CLIENT_SESSION_TRACK, and clients read it so; take the
            // bare rest only when it is not a well-formed length-encoded string.
            let rest = r.rest();
            let mut lenenc = Reader::new(rest);
            ok.info = match lenenc.lenenc_str("info") {
                Ok(s) if lenenc.is_empty() => s.to_vec(),
                _ => rest.to_vec(),
            };
        }
        Ok(ok)
    }

    /// Appends the payload with header `header` (`0x00`, or `0xfe` in place of an EOF).
    pub fn write_with_header(&self, buf: &mut BytesMut, caps: Capabilities, header: u8) {
        buf.put_u8(header);
        put_lenenc_int(buf, self.affected_rows);
        put_lenenc_int(buf, self.last_insert_id);
        let mut status = self.status;
        if caps.contains(Capabilities::CLIENT_SESSION_TRACK) && self.session_state.is_some() {
            status.0 |= StatusFlags::SERVER_SESSION_STATE_CHANGED.0;
        } else {
            status.0 &= !StatusFlags::SERVER_SESSION_STATE_CHANGED.0;
        }
        buf.put_u16_le(status.0);
        buf.put_u16_le(self.warnings);
        if caps.contains(Capabilities::CLIENT_SESSION_TRACK) {
            if !self.info.is_empty() || self.session_state.is_some() {
                put_lenenc_str(buf, &self.info);
            }
            if let Some(state) = &self.session_state {
                put_lenenc_str(buf, state);
            }
        } else if !self.info.is_empty() {
            put_lenenc_str(buf, &self.info);
        }
    }

    /// Appends the payload of an ordinary OK packet.
    pub fn write(&self, buf: &mut BytesMut, caps: Capabilities) {
        self.write_with_header(buf, caps, OK_HEADER);
    }
}

/// An ERR packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrPacket {
    /// MySQL error code, e.g. 1045.
    pub code: u16,
    /// Five-character SQLSTATE, e.g. `28000`.
    pub sql_state: [u8; 5],
    /// The message.
    pub message: Vec<u8>,
}

impl ErrPacket {
    /// Builds an ERR with a code, SQLSTATE and message.
    pub fn new(code: u16, sql_state: &str, message: impl Into<String>) -> Self {
        let mut state = *b"HY000";
        if sql_state.len() == 5 {
            state.copy_from_slice(sql_state.as_bytes());
        }
        ErrPacket {
            code,
            sql_state: state,
            message: message.into().into_bytes(),
        }
    }

    /// Parses an ERR payload (protocol 4.1 form, SQLSTATE optional).
    pub fn parse(payload: &[u8]) -> Result<Self> {
        let mut r = Reader::new(payload);
        if r.u8("ERR header")? != ERR_HEADER {
            return Err(ProtocolError::Unexpected("not an ERR packet"));
        }
        let code = r.u16("error code")?;
        let mut sql_state = *b"HY000";
        if r.peek_u8() == Some(b'#') {
            r.skip(1, "SQLSTATE marker")?;
            sql_state.copy_from_slice(r.take(5, "SQLSTATE")?);
        }
        Ok(ErrPacket {
            code,
            sql_state,
            message: r.rest().to_vec(),
        })
    }

    /// Appends the payload.
    pub fn write(&self, buf: &mut BytesMut) {
        buf.put_u8(ERR_HEADER);
        buf.put_u16_le(self.code);
        buf.put_u8(b'#');
        buf.put_slice(&self.sql_state);
        buf.put_slice(&self.message);
    }

    /// The message as text (lossy).
    pub fn message_text(&self) -> String {
        String::from_utf8_lossy(&self.message).into_owned()
    }
}

impl std::fmt::Display for ErrPacket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "ERROR {} ({}): {}",
            self.code,
            String::from_utf8_lossy(&self.sql_state),
            String::from_utf8_lossy(&self.message)
        )
    }
}

/// A classic EOF packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EofPacket {
    /// Warnings.
    pub warnings: u16,
    /// Server status flags.
    pub status: StatusFlags,
}

impl EofPacket {
    /// Parses an EOF payload.
    pub fn parse(payload: &[u8]) -> Result<Self> {
        let mut r = Reader::new(payload);
        if r.u8("EOF header")? != EOF_HEADER {
            return Err(ProtocolError::Unexpected("not an EOF packet"));
        }
        if r.is_empty() {
            return Ok(EofPacket::default());
        }
        Ok(EofPacket {
            warnings: r.u16("warnings")?,
            status: StatusFlags(r.u16("status flags")?),
        })
    }

    /// Appends the payload.
    pub fn write(&self, buf: &mut BytesMut) {
        buf.put_u8(EOF_HEADER);
        buf.put_u16_le(self.warnings);
        buf.put_u16_le(self.status.0);
    }
}

/// Reads the status flags and warnings of a result-set terminator: an EOF
/// packet, or with `CLIENT_DEPRECATE_EOF` an OK packet with header `0xfe`
/// (which can be as short as an EOF, so the capability decides, not the length).
pub fn parse_terminator(payload: &[u8], caps: Capabilities) -> Result<(StatusFlags, u16)> {
    if caps.contains(Capabilities::CLIENT_DEPRECATE_EOF) {
        let ok = OkPacket::parse(payload, caps)?;
        return Ok((ok.status, ok.warnings));
    }
    let eof = EofPacket::parse(payload)?;
    Ok((eof.status, eof.warnings))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testdata::hex;

    const CAPS: Capabilities =
        Capabilities(Capabilities::CLIENT_PROTOCOL_41.0 | Capabilities::CLIENT_SESSION_TRACK.0);

    #[test]
    fn protocol_ok_golden_insert() {
        // From login_and_queries.txt: the OK after INSERT (1 row, id 4, autocommit).
        let ok = OkPacket::parse(&[0x00, 0x01, 0x04, 0x02, 0x00, 0x00, 0x00], CAPS).unwrap();
        assert_eq!((ok.affected_rows, ok.last_insert_id), (1, 4));
        assert_eq!(ok.status, StatusFlags::SERVER_STATUS_AUTOCOMMIT);
        assert!(ok.session_state.is_none());
    }

    #[test]
    fn protocol_ok_golden_login_with_schema_tracker() {
        let payload = hex("0000000240000000080106056361706462");
        let ok = OkPacket::parse(&payload, CAPS).unwrap();
        assert!(ok.status.contains(StatusFlags::SERVER_SESSION_STATE_CHANGED));
        assert_eq!(ok.session_state.as_deref(), Some(&hex("0106056361706462")[..]));
        let mut out = BytesMut::new();
        ok.write(&mut out, CAPS);
        assert_eq!(&out[..], &payload[..]);
    }

    #[test]
    fn protocol_ok_without_session_track_has_lenenc_info() {
        let mut b = BytesMut::new();
        let ok = OkPacket {
            affected_rows: 3,
            info: b"Rows matched: 3".to_vec(),
            ..Default::default()
        };
        ok.write(&mut b, Capabilities::CLIENT_PROTOCOL_41);
        assert_eq!(b[7], 15, "the message is length-encoded, as servers write it");
        assert_eq!(OkPacket::parse(&b, Capabilities::CLIENT_PROTOCOL_41).unwrap(), ok);
        // A bare message (as the protocol docs draw it) still parses.
        let mut bare = b[..7].to_vec();
        bare.extend_from_slice(b"Rows matched: 3");
        assert_eq!(
            OkPacket::parse(&bare, Capabilities::CLIENT_PROTOCOL_41)
                .unwrap()
                .info,
            b"Rows matched: 3"
        );
    }

    #[test]
    fn protocol_err_golden_access_denied() {
        let payload = hex("ff15042332383030304163636573732064656e69656420666f72207573657220276361702740276c6f63616c686f73742720287573696e672070617373776f72643a2059455329");
        let err = ErrPacket::parse(&payload).unwrap();
        assert_eq!(err.code, 1045);
        assert_eq!(&err.sql_state, b"28000");
        assert_eq!(
            err.message_text(),
            "Access denied for user 'cap'@'localhost' (using password: YES)"
        );
        let mut out = BytesMut::new();
        err.write(&mut out);
        assert_eq!(&out[..], &payload[..]);
    }

    #[test]
    fn protocol_eof_and_terminators() {
        let eof = hex("fe00000200");
        assert!(is_eof(&eof));
        assert_eq!(
            EofPacket::parse(&eof).unwrap().status,
            StatusFlags::SERVER_STATUS_AUTOCOMMIT
        );
        // An OK-form terminator is longer than 9 bytes only with info; still a terminator.
        let long_ok = [0xfe, 0, 0, 2, 0, 0, 0, 5, b'h', b'e', b'l', b'l', b'o'];
        assert!(!is_result_terminator(&long_ok, false));
        assert!(is_result_terminator(&long_ok, true));
        assert!(!is_result_terminator(&[0x01, 0x31], true));
        for bad in [&[][..], &[0xff][..], &[0xff, 1][..], &[0x00, 0xfc][..]] {
            let _ = OkPacket::parse(bad, CAPS);
            let _ = ErrPacket::parse(bad);
            let _ = EofPacket::parse(bad);
        }
    }
}
