//! Reading and rewriting `COM_STMT_EXECUTE` and `COM_STMT_BULK_EXECUTE`
//! payloads: the statement id is swapped for the backend's, and parameter
//! types are added when the client sent them only with an earlier execute
//! (on another connection).
//!
//! Layout: command byte, statement id (4), flags (1), iteration count (4);
//! then, with parameters: NULL bitmap ((n + 7) / 8), new-params-bound flag
//! (1), types (2 * n, only when the flag is 1), values.

use std::ops::Range;

use bytes::{BufMut, BytesMut};
use funnel_protocol::{ProtocolError, Result};

/// The parts of an execute payload Funnel needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecuteHead {
    /// The client's statement id.
    pub stmt_id: u32,
    /// Offset of the new-params-bound flag (absent without parameters).
    pub bound_flag_at: Option<usize>,
    /// Where the parameter types are, when the client sent them.
    pub types: Option<Range<usize>>,
}

const HEAD: usize = 1 + 4 + 1 + 4;

/// The statement id of any statement command (execute, close, reset, fetch, long data).
pub fn statement_id(payload: &[u8]) -> Result<u32> {
    let b = payload.get(1..5).ok_or(ProtocolError::Truncated {
        what: "statement id",
        needed: 4,
        available: payload.len().saturating_sub(1),
    })?;
    Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

/// The statement id of a `command` whose fixed part is `len` bytes, once
/// the payload holds all of it.
fn fixed_part(payload: &[u8], len: usize, command: &'static str) -> Result<u32> {
    let stmt_id = statement_id(payload)?;
    if payload.len() < len {
        return Err(ProtocolError::malformed(command, "shorter than its fixed part"));
    }
    Ok(stmt_id)
}

/// Parses an execute payload for a statement with `params` parameters.
pub fn parse_execute(payload: &[u8], params: u16) -> Result<ExecuteHead> {
    let stmt_id = fixed_part(payload, HEAD, "COM_STMT_EXECUTE")?;
    if params == 0 {
        return Ok(ExecuteHead {
            stmt_id,
            bound_flag_at: None,
            types: None,
        });
    }
    let flag_at = HEAD + usize::from(params).div_ceil(8);
    let flag = *payload.get(flag_at).ok_or(ProtocolError::malformed(
        "COM_STMT_EXECUTE",
        "missing new-params-bound flag",
    ))?;
    if flag > 1 {
        // MariaDB refuses it as a malformed packet too.
        return Err(ProtocolError::malformed(
            "COM_STMT_EXECUTE",
            "new-params-bound flag other than 0 or 1",
        ));
    }
    let types = if flag == 1 {
        let r = flag_at + 1..flag_at + 1 + 2 * usize::from(params);
        if payload.len() < r.end {
            return Err(ProtocolError::malformed(
                "COM_STMT_EXECUTE",
                "parameter types truncated",
            ));
        }
        Some(r)
    } else {
        None
    };
    Ok(ExecuteHead {
        stmt_id,
        bound_flag_at: Some(flag_at),
        types,
    })
}

/// True when an execute of a statement with `params` parameters ends
/// where its new-params-bound flag should be. MariaDB reads that as wrong
/// arguments (ERR 1210), not as a malformed packet.
pub fn bound_flag_missing(payload: &[u8], params: u16) -> bool {
    params > 0 && payload.len() >= HEAD && payload.len() <= HEAD + usize::from(params).div_ceil(8)
}

/// Writes `payload` with the statement id replaced by `backend_id`, and
/// with `inject_types` added when given (and the client sent none).
pub fn rewrite_execute(
    payload: &[u8],
    head: &ExecuteHead,
    backend_id: u32,
    inject_types: Option<&[u8]>,
    out: &mut BytesMut,
) {
    out.reserve(payload.len() + inject_types.map_or(0, <[u8]>::len));
    out.put_u8(payload[0]);
    out.put_u32_le(backend_id);
    match (head.bound_flag_at, inject_types, &head.types) {
        (Some(flag_at), Some(types), None) => {
            out.put_slice(&payload[5..flag_at]);
            out.put_u8(1);
            out.put_slice(types);
            out.put_slice(&payload[flag_at + 1..]);
        }
        _ => out.put_slice(&payload[5..]),
    }
}

/// `SEND_TYPES_TO_SERVER`: a bulk execute that carries its parameter types.
pub const BULK_SEND_TYPES: u16 = 128;

/// Command byte, statement id, bulk flags.
const BULK_HEAD: usize = 1 + 4 + 2;

/// The parts of a `COM_STMT_BULK_EXECUTE` payload Funnel needs. Layout:
/// command byte, statement id (4), flags (2), then with
/// [`BULK_SEND_TYPES`] the types (2 * n), then rows of an indicator byte
/// per parameter, each followed by its value where it has one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BulkHead {
    /// The client's statement id.
    pub stmt_id: u32,
    /// The bulk flags.
    pub flags: u16,
    /// Where the parameter types are, when the client sent them whole
    /// and the server reads them: not with a flag it refuses, as it
    /// refuses those before it reads anything.
    pub types: Option<Range<usize>>,
}

impl BulkHead {
    /// The client said it sends types (whole or not: the server judges a
    /// truncated list, and Funnel adds none).
    pub fn sends_types(&self) -> bool {
        self.flags & BULK_SEND_TYPES != 0
    }
}

/// Parses a bulk execute payload for a statement with `params` parameters.
/// Only the fixed part must be there: the server judges the rest, as on a
/// direct connection.
pub fn parse_bulk(payload: &[u8], params: u16) -> Result<BulkHead> {
    let stmt_id = fixed_part(payload, BULK_HEAD, "COM_STMT_BULK_EXECUTE")?;
    let flags = u16::from_le_bytes([payload[5], payload[6]]);
    let end = BULK_HEAD + 2 * usize::from(params);
    let types = (flags == BULK_SEND_TYPES && params > 0 && payload.len() >= end).then_some(BULK_HEAD..end);
    Ok(BulkHead {
        stmt_id,
        flags,
        types,
    })
}

/// Writes a bulk execute with the statement id replaced by `backend_id`,
/// and with `inject_types` added (and the flag that says so) when given
/// and the client sent none.
pub fn rewrite_bulk(
    payload: &[u8],
    head: &BulkHead,
    backend_id: u32,
    inject_types: Option<&[u8]>,
    out: &mut BytesMut,
) {
    out.reserve(payload.len() + inject_types.map_or(0, <[u8]>::len));
    out.put_u8(payload[0]);
    out.put_u32_le(backend_id);
    match inject_types.filter(|_| !head.sends_types()) {
        Some(types) => {
            out.put_u16_le(head.flags | BULK_SEND_TYPES);
            out.put_slice(types);
            out.put_slice(&payload[BULK_HEAD..]);
        }
        None => out.put_slice(&payload[5..]),
    }
}

/// An execute of either kind, as parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExecuteCommand {
    /// `COM_STMT_EXECUTE`.
    Single(ExecuteHead),
    /// `COM_STMT_BULK_EXECUTE`.
    Bulk(BulkHead),
}

impl ExecuteCommand {
    /// Where the parameter types are, when the client sent them.
    pub fn types(&self) -> Option<&Range<usize>> {
        match self {
            ExecuteCommand::Single(h) => h.types.as_ref(),
            ExecuteCommand::Bulk(h) => h.types.as_ref(),
        }
    }

    /// The client sent types with it, so Funnel adds none.
    pub fn sends_types(&self) -> bool {
        match self {
            ExecuteCommand::Single(h) => h.types.is_some(),
            ExecuteCommand::Bulk(h) => h.sends_types(),
        }
    }

    /// The server gets as far as the statement: an execute, or a bulk
    /// with flags it takes (it refuses others before it finds the
    /// statement, so it neither reads their types nor forgets the
    /// statement's long data).
    pub fn reaches_statement(&self) -> bool {
        match self {
            ExecuteCommand::Single(_) => true,
            ExecuteCommand::Bulk(h) => h.flags & !BULK_SEND_TYPES == 0,
        }
    }

    /// Writes it for the backend's statement `backend_id`, with
    /// `inject_types` added where the client sent none.
    pub fn rewrite(&self, payload: &[u8], backend_id: u32, inject_types: Option<&[u8]>, out: &mut BytesMut) {
        match self {
            ExecuteCommand::Single(h) => rewrite_execute(payload, h, backend_id, inject_types, out),
            ExecuteCommand::Bulk(h) => rewrite_bulk(payload, h, backend_id, inject_types, out),
        }
    }
}

/// Writes a statement command (close, reset, fetch, long data) with its id
/// replaced.
pub fn rewrite_id(payload: &[u8], backend_id: u32, out: &mut BytesMut) {
    out.reserve(payload.len());
    out.put_u8(payload[0]);
    out.put_u32_le(backend_id);
    out.put_slice(&payload[5..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An execute of statement 7 with two parameters.
    fn exec(with_types: bool) -> Vec<u8> {
        let mut p = vec![0x17, 7, 0, 0, 0, 0, 1, 0, 0, 0, 0b0000_0000];
        if with_types {
            p.push(1);
            p.extend_from_slice(&[8, 0, 253, 0]);
        } else {
            p.push(0);
        }
        p.extend_from_slice(&[5, 0, 0, 0, 0, 0, 0, 0, 2, b'h', b'i']);
        p
    }

    #[test]
    fn prepared_execute_parse_with_and_without_types() {
        let h = parse_execute(&exec(true), 2).unwrap();
        assert_eq!(h.stmt_id, 7);
        assert_eq!(h.bound_flag_at, Some(11));
        assert_eq!(h.types, Some(12..16));
        let h = parse_execute(&exec(false), 2).unwrap();
        assert_eq!(h.types, None);
        let mut odd = exec(true);
        odd[11] = 2;
        assert!(parse_execute(&odd, 2).is_err());
        assert!(parse_execute(&exec(true)[..13], 2).is_err());
        assert!(bound_flag_missing(&exec(true)[..11], 2));
        assert!(bound_flag_missing(&exec(true)[..10], 2));
        assert!(
            !bound_flag_missing(&exec(true)[..9], 2),
            "the fixed part is missing"
        );
        assert!(!bound_flag_missing(&exec(true)[..12], 2));
        assert!(!bound_flag_missing(&exec(true)[..10], 0));
        assert!(parse_execute(&[0x17, 1], 0).is_err());
        assert_eq!(
            parse_execute(&[0x17, 1, 0, 0, 0, 0, 1, 0, 0, 0], 0)
                .unwrap()
                .bound_flag_at,
            None
        );
    }

    #[test]
    fn prepared_execute_rewrite_injects_remembered_types() {
        let with = exec(true);
        let without = exec(false);
        let head = parse_execute(&without, 2).unwrap();
        let mut out = BytesMut::new();
        rewrite_execute(&without, &head, 99, Some(&with[12..16]), &mut out);
        let mut expected = with.clone();
        expected[1..5].copy_from_slice(&99u32.to_le_bytes());
        assert_eq!(&out[..], &expected[..]);
        // Types already present: only the id changes.
        let head = parse_execute(&with, 2).unwrap();
        let mut out = BytesMut::new();
        rewrite_execute(&with, &head, 99, Some(&[1, 2, 3, 4]), &mut out);
        assert_eq!(&out[..], &expected[..]);
    }

    #[test]
    fn prepared_bulk_parse_and_inject_types() {
        // Statement 7, two parameters, two rows (the second: NULL, DEFAULT).
        let rows = [0, 5, 0, 0, 0, 0, 0, 0, 0, 0, 2, b'h', b'i', 1, 2];
        let mut with = vec![0xfa, 7, 0, 0, 0, 128, 0, 8, 0, 253, 0];
        with.extend_from_slice(&rows);
        let mut without = vec![0xfa, 7, 0, 0, 0, 0, 0];
        without.extend_from_slice(&rows);
        let h = parse_bulk(&with, 2).unwrap();
        assert_eq!((h.stmt_id, h.flags, h.types.clone()), (7, 128, Some(7..11)));
        let h = parse_bulk(&without, 2).unwrap();
        assert_eq!((h.sends_types(), h.types.clone()), (false, None));
        let mut out = BytesMut::new();
        rewrite_bulk(&without, &h, 99, Some(&with[7..11]), &mut out);
        let mut expected = with.clone();
        expected[1..5].copy_from_slice(&99u32.to_le_bytes());
        assert_eq!(&out[..], &expected[..]);
        // Types sent: only the id changes, also when they are cut short.
        for payload in [&with[..], &with[..9]] {
            let h = parse_bulk(payload, 2).unwrap();
            assert!(h.sends_types());
            let mut out = BytesMut::new();
            rewrite_bulk(payload, &h, 99, Some(&[1, 2, 3, 4]), &mut out);
            assert_eq!(&out[..], &expected[..payload.len()]);
        }
        // A flag the server refuses: it keeps no types of it.
        let mut unit = with.clone();
        unit[5] |= 64;
        let h = parse_bulk(&unit, 2).unwrap();
        assert_eq!((h.sends_types(), h.types), (true, None));
        assert!(parse_bulk(&with[..6], 2).is_err());
        assert!(parse_bulk(&with[..3], 2).is_err());
    }

    #[test]
    fn prepared_rewrite_id_of_close() {
        let mut out = BytesMut::new();
        rewrite_id(&[0x19, 1, 0, 0, 0], 0x01020304, &mut out);
        assert_eq!(&out[..], &[0x19, 4, 3, 2, 1]);
        assert_eq!(statement_id(&[0x19, 1, 0, 0, 0]).unwrap(), 1);
        assert!(statement_id(&[0x19, 1]).is_err());
    }
}
