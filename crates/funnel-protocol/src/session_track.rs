//! Session-state-change data carried by OK packets (`CLIENT_SESSION_TRACK`).
//!
//! Each entry is a type byte and a length-encoded blob. Funnel asks every
//! backend connection for this data and turns on the server's
//! `session_track_state_change`, so the server says when a statement changed
//! session state that Funnel cannot see in its text (a stored function or a
//! trigger setting a variable). What the client did not ask for is taken out
//! again before the packet reaches it ([`hide_added_tracking`]).

use bytes::BytesMut;

use crate::error::Result;
use crate::flags::{Capabilities, StatusFlags};
use crate::response::{OkPacket, EOF_HEADER, OK_HEADER};
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

/// The entries of `data` other than `SESSION_TRACK_STATE_CHANGE`, as they were.
pub fn without_state_change(data: &[u8]) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(data.len());
    let mut r = Reader::new(data);
    while !r.is_empty() {
        let start = data.len() - r.remaining();
        let kind = r.u8("session track type")?;
        r.lenenc_str("session track data")?;
        if kind != SESSION_TRACK_STATE_CHANGE {
            out.extend_from_slice(&data[start..data.len() - r.remaining()]);
        }
    }
    Ok(out)
}

/// What a client sees of the session-state data of its replies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrackingView {
    /// The client asked for `CLIENT_SESSION_TRACK`: its OK packets carry
    /// session-state data.
    pub client_tracks: bool,
    /// The client set `session_track_state_change` itself (on a connection
    /// it keeps): the state-change reports are its own.
    pub own_state_change: bool,
}

impl TrackingView {
    /// True when replies reach the client as the server sent them.
    pub fn as_sent(self) -> bool {
        self.client_tracks && self.own_state_change
    }
}

/// A terminator (OK or EOF payload) from a backend connection with
/// `caps`, whose status has `SERVER_SESSION_STATE_CHANGED`, rewritten to
/// show only what `view` lets the client see, as the server would have
/// sent it to that client; `None` when it may pass as it is. The OK's info
/// text and every other field stay byte for byte.
///
/// An EOF has room for the flag alone: it loses it unless the client set
/// `session_track_state_change` itself. (A function that changed a
/// variable the client tracks would have set it too; that is not told apart.)
pub fn hide_added_tracking(
    payload: &[u8],
    caps: Capabilities,
    view: TrackingView,
) -> Result<Option<Vec<u8>>> {
    let header = payload.first().copied();
    let is_ok = header == Some(OK_HEADER)
        || (header == Some(EOF_HEADER) && caps.contains(Capabilities::CLIENT_DEPRECATE_EOF));
    if view.as_sent() || !(is_ok || header == Some(EOF_HEADER)) {
        return Ok(None);
    }
    if !is_ok {
        if view.own_state_change || payload.len() < 5 {
            return Ok(None);
        }
        let mut out = payload.to_vec();
        out[4] &= !((StatusFlags::SERVER_SESSION_STATE_CHANGED.0 >> 8) as u8);
        return Ok(Some(out));
    }
    let mut ok = OkPacket::parse(payload, caps)?;
    ok.session_state = match ok.session_state.take() {
        Some(data) if view.client_tracks => Some(without_state_change(&data)?).filter(|d| !d.is_empty()),
        _ => None,
    };
    let client_caps = if view.client_tracks {
        caps
    } else {
        Capabilities(caps.0 & !Capabilities::CLIENT_SESSION_TRACK.0)
    };
    let mut out = BytesMut::with_capacity(payload.len());
    ok.write_with_header(&mut out, client_caps, payload[0]);
    Ok(Some(out.to_vec()))
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

    /// A client with `CLIENT_SESSION_TRACK`, without its own state-change tracking.
    const TRACKS: TrackingView = TrackingView {
        client_tracks: true,
        own_state_change: false,
    };
    /// A client without `CLIENT_SESSION_TRACK`.
    const UNTRACKED: TrackingView = TrackingView {
        client_tracks: false,
        own_state_change: false,
    };
    /// A client that set `session_track_state_change` itself.
    const OWNS: TrackingView = TrackingView {
        client_tracks: true,
        own_state_change: true,
    };

    const TRACKING: Capabilities =
        Capabilities(Capabilities::CLIENT_PROTOCOL_41.0 | Capabilities::CLIENT_SESSION_TRACK.0);

    /// MariaDB 10.11's OK after `SET autocommit = 0` on a connection with
    /// `CLIENT_SESSION_TRACK` and `session_track_state_change` on.
    const SET_AUTOCOMMIT_OK: &[u8] = &[
        0, 0, 0, 0, 64, 0, 0, 0, 20, 0, 15, 10, b'a', b'u', b't', b'o', b'c', b'o', b'm', b'm', b'i', b't',
        3, b'O', b'F', b'F', 2, 1, b'1',
    ];

    #[test]
    fn protocol_session_track_hides_the_added_state_change_entry() {
        let out = hide_added_tracking(SET_AUTOCOMMIT_OK, TRACKING, TRACKS)
            .unwrap()
            .unwrap();
        // The variable stays, the flag stays (there is still data), the
        // entry and its bytes go.
        let mut want = SET_AUTOCOMMIT_OK[..SET_AUTOCOMMIT_OK.len() - 3].to_vec();
        want[8] = 17;
        assert_eq!(out, want);
        assert_eq!(
            hide_added_tracking(SET_AUTOCOMMIT_OK, TRACKING, OWNS).unwrap(),
            None
        );
    }

    #[test]
    fn protocol_session_track_state_change_alone_leaves_a_plain_ok() {
        // `SET @x = 1`: the state-change entry is all there is.
        let only = [0, 0, 0, 2, 64, 0, 0, 0, 3, 2, 1, b'1'];
        let plain = [0, 0, 0, 2, 0, 0, 0];
        for view in [TRACKS, UNTRACKED] {
            assert_eq!(
                hide_added_tracking(&only, TRACKING, view).unwrap().unwrap(),
                plain
            );
        }
        // An info text stays, length-encoded as the server writes it.
        let mut prepared = vec![0, 0, 0, 2, 64, 0, 0, 18];
        prepared.extend_from_slice(b"Statement prepared");
        let mut want = prepared.clone();
        want[4] = 0;
        prepared.extend_from_slice(&[3, 2, 1, b'1']);
        for view in [TRACKS, UNTRACKED] {
            assert_eq!(
                hide_added_tracking(&prepared, TRACKING, view).unwrap().unwrap(),
                want
            );
        }
    }

    #[test]
    fn protocol_session_track_untracking_client_sees_no_session_data() {
        let out = hide_added_tracking(SET_AUTOCOMMIT_OK, TRACKING, UNTRACKED)
            .unwrap()
            .unwrap();
        assert_eq!(out, [0, 0, 0, 0, 0, 0, 0]);
        // As the server does for such a client with its own tracking on:
        // the OK loses the data, an EOF keeps the flag.
        let owns_untracked = TrackingView {
            client_tracks: false,
            own_state_change: true,
        };
        let out = hide_added_tracking(SET_AUTOCOMMIT_OK, TRACKING, owns_untracked)
            .unwrap()
            .unwrap();
        assert_eq!(out, [0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(
            hide_added_tracking(&[0xfe, 0, 0, 2, 64], TRACKING, owns_untracked).unwrap(),
            None
        );
    }

    #[test]
    fn protocol_session_track_eof_and_ok_as_eof_lose_the_flag() {
        // The EOF after a `SELECT f()` whose function set a variable.
        let eof = [0xfe, 0, 0, 2, 64];
        for view in [TRACKS, UNTRACKED] {
            assert_eq!(
                hide_added_tracking(&eof, TRACKING, view).unwrap().unwrap(),
                [0xfe, 0, 0, 2, 0]
            );
        }
        // With CLIENT_DEPRECATE_EOF the same header starts an OK.
        let caps = Capabilities(TRACKING.0 | Capabilities::CLIENT_DEPRECATE_EOF.0);
        let ok_as_eof = [0xfe, 0, 0, 2, 64, 0, 0, 0, 3, 2, 1, b'1'];
        assert_eq!(
            hide_added_tracking(&ok_as_eof, caps, TRACKS).unwrap().unwrap(),
            [0xfe, 0, 0, 2, 0, 0, 0]
        );
    }

    #[test]
    fn protocol_session_track_keeps_other_entries_in_order() {
        let mut data = vec![0x01, 0x06, 0x05];
        data.extend_from_slice(b"capdb");
        data.extend_from_slice(&[0x02, 0x01, b'1']);
        data.extend_from_slice(&[0x05, 0x09, 0x08]);
        data.extend_from_slice(b"T_______");
        let kept = without_state_change(&data).unwrap();
        assert_eq!(
            parse(&kept).unwrap(),
            vec![
                SessionChange::Schema(b"capdb"),
                SessionChange::TransactionState(b"T_______")
            ]
        );
        assert!(without_state_change(&[0x02, 0x05, b'1']).is_err());
    }
}
