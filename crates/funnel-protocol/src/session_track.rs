//! Session-state-change data carried by OK packets (`CLIENT_SESSION_TRACK`).
//!
//! Each entry is a type byte and a length-encoded blob. Funnel enables the
//! trackers on its backend connections so the server itself says when a
//! session variable, the schema or the transaction state changed, instead of
//! Funnel guessing from SQL text.

use crate::error::Result;
use crate::wire::Reader;

/// One decoded session-state change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionChange<'a> {
    /// `SESSION_TRACK_SYSTEM_VARIABLES` (0): a variable and its new value.
    SystemVariable {
        /// Variable name.
        name: &'a [u8],
        /// New value.
        value: &'a [u8],
    },
    /// `SESSION_TRACK_SCHEMA` (1): the new current schema.
    Schema(&'a [u8]),
    /// `SESSION_TRACK_STATE_CHANGE` (2): `1` when any session state changed.
    StateChange(bool),
    /// `SESSION_TRACK_GTIDS` (3).
    Gtids(&'a [u8]),
    /// `SESSION_TRACK_TRANSACTION_CHARACTERISTICS` (4): SQL that recreates them.
    TransactionCharacteristics(&'a [u8]),
    /// `SESSION_TRACK_TRANSACTION_STATE` (5): eight state characters.
    TransactionState(&'a [u8]),
    /// A type this crate does not know; kept so it can be forwarded.
    Other {
        /// The type byte.
        kind: u8,
        /// Its raw data.
        data: &'a [u8],
    },
}

/// Type byte of system-variable changes.
pub const SESSION_TRACK_SYSTEM_VARIABLES: u8 = 0;
/// Type byte of schema changes.
pub const SESSION_TRACK_SCHEMA: u8 = 1;
/// Type byte of the generic state-change flag.
pub const SESSION_TRACK_STATE_CHANGE: u8 = 2;
/// Type byte of GTID data.
pub const SESSION_TRACK_GTIDS: u8 = 3;
/// Type byte of transaction characteristics.
pub const SESSION_TRACK_TRANSACTION_CHARACTERISTICS: u8 = 4;
/// Type byte of transaction state.
pub const SESSION_TRACK_TRANSACTION_STATE: u8 = 5;

/// Decodes every entry of an OK packet's session-state data.
pub fn parse(data: &[u8]) -> Result<Vec<SessionChange<'_>>> {
    let mut out = Vec::new();
    let mut r = Reader::new(data);
    while !r.is_empty() {
        let kind = r.u8("session track type")?;
        let blob = r.lenenc_str("session track data")?;
        let mut b = Reader::new(blob);
        out.push(match kind {
            SESSION_TRACK_SYSTEM_VARIABLES => SessionChange::SystemVariable {
                name: b.lenenc_str("variable name")?,
                value: b.lenenc_str("variable value")?,
            },
            SESSION_TRACK_SCHEMA => SessionChange::Schema(b.lenenc_str("schema")?),
            // MariaDB sends the flag bare (`02 01 '1'`), MySQL as a
            // length-encoded string inside the entry (`02 02 01 '1'`).
            SESSION_TRACK_STATE_CHANGE if blob.len() == 1 => SessionChange::StateChange(blob == b"1"),
            SESSION_TRACK_STATE_CHANGE => SessionChange::StateChange(b.lenenc_str("state change")? == b"1"),
            SESSION_TRACK_GTIDS => SessionChange::Gtids(blob),
            SESSION_TRACK_TRANSACTION_CHARACTERISTICS => {
                SessionChange::TransactionCharacteristics(b.lenenc_str("transaction characteristics")?)
            }
            SESSION_TRACK_TRANSACTION_STATE => {
                SessionChange::TransactionState(b.lenenc_str("transaction state")?)
            }
            kind => SessionChange::Other { kind, data: blob },
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocol_session_track_golden_schema() {
        // The login OK from login_and_queries.txt tracks schema `capdb`.
        let data = [0x01, 0x06, 0x05, b'c', b'a', b'p', b'd', b'b'];
        assert_eq!(parse(&data).unwrap(), vec![SessionChange::Schema(b"capdb")]);
    }

    /// Bytes of MariaDB 10.11's OK after a `SET SESSION time_zone` with
    /// `session_track_state_change` on: the flag has no inner length.
    #[test]
    fn protocol_session_track_golden_mariadb_state_change() {
        let mut data = vec![0x00, 0x11, 0x09];
        data.extend_from_slice(b"time_zone");
        data.push(0x06);
        data.extend_from_slice(b"+01:00");
        data.extend_from_slice(&[0x02, 0x01, b'1']);
        assert_eq!(
            parse(&data).unwrap(),
            vec![
                SessionChange::SystemVariable {
                    name: b"time_zone",
                    value: b"+01:00"
                },
                SessionChange::StateChange(true),
            ]
        );
    }

    #[test]
    fn protocol_session_track_variables_and_state() {
        let mut data = vec![0x00, 0x0f, 0x09];
        data.extend_from_slice(b"time_zone");
        data.push(0x04);
        data.extend_from_slice(b"+5:0");
        data.extend_from_slice(&[0x02, 0x02, 0x01, b'1']);
        data.extend_from_slice(&[0x05, 0x09, 0x08]);
        data.extend_from_slice(b"T_______");
        assert_eq!(
            parse(&data).unwrap(),
            vec![
                SessionChange::SystemVariable {
                    name: b"time_zone",
                    value: b"+5:0"
                },
                SessionChange::StateChange(true),
                SessionChange::TransactionState(b"T_______"),
            ]
        );
        assert!(parse(&[0x00, 0x05, 0x09]).is_err());
    }
}
