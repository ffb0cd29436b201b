//! Replies to `SET`s a backend has already accepted, so a session can
//! answer the same `SET` without a backend connection.
//!
//! Client libraries send `SET NAMES` (pymysql, PDO, Connector/J) and often
//! `SET autocommit` as part of connecting. Forwarded, each takes a backend
//! connection: when every connection is pinned (clients idle in
//! transactions) the connect waits up to `backlog.wait_timeout`, and
//! otherwise it costs a round trip per connect. ProxySQL answers such
//! `SET`s itself. Funnel records the session variables anyway and replays
//! them onto whichever connection serves the session next
//! (`session/sync.rs`), so the only thing the backend adds is its verdict
//! and its exact OK.
//!
//! Rather than judging values itself (which charsets, collations, time
//! zones or `sql_mode` words a server accepts depends on its version and
//! configuration), Funnel learns: the OK a backend of the hostgroup gave
//! for the same statement text, to a client with the same capabilities,
//! from the same session variables and status, is that backend's verdict,
//! and its bytes are what the client is sent. Only clean OKs are learned
//! (no warnings, no info, nothing affected): a `SET` that warns or fails
//! always goes to the server.

use std::cell::RefCell;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::rc::Rc;
use std::time::{Duration, Instant};

use funnel_protocol::framing::{PacketHeader, HEADER_LEN};
use funnel_protocol::response::OkPacket;
use funnel_protocol::{Capabilities, StatusFlags};

use crate::pool::key::PoolKey;
use crate::session::variables::SessionVars;

/// How long a learned reply is used before the server is asked again: a
/// server restarted with another version or configuration may answer the
/// same `SET` differently (a reload forgets every reply at once).
const TRUST: Duration = Duration::from_secs(600);

/// At most this many replies are kept per core; past it the core starts
/// over (a client cycling through distinct `SET`s cannot grow it).
const CAPACITY: usize = 256;

/// Longest statement text worth learning: connect-time `SET`s are short.
pub const MAX_TEXT: usize = 256;

/// Everything the server's reply to a `SET` can depend on.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SetKey {
    hostgroup: Rc<str>,
    /// The client's capabilities: the OK's layout and the tracking data it
    /// shows follow them.
    client_caps: u64,
    pool: PoolKey,
    /// The status the client saw before (autocommit, `NO_BACKSLASH_ESCAPES`).
    status_before: u16,
    /// A digest of the session's variables (`old_mode` changes what
    /// `SET NAMES utf8` reports; `sql_mode` how the text parses).
    vars: u64,
    text: Box<[u8]>,
}

impl SetKey {
    /// The key of statement `text`, run by a session in this state.
    pub fn new(
        hostgroup: Rc<str>,
        client_caps: Capabilities,
        pool: PoolKey,
        status_before: StatusFlags,
        vars: &SessionVars,
        text: &[u8],
    ) -> Self {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        vars.hash(&mut h);
        SetKey {
            hostgroup,
            client_caps: client_caps.0,
            pool,
            status_before: status_before.0,
            vars: h.finish(),
            text: text.into(),
        }
    }

    /// The hostgroup whose backends' replies it is kept for.
    pub fn hostgroup(&self) -> &str {
        &self.hostgroup
    }
}

/// A reply a backend gave, as the client was sent it.
#[derive(Debug, Clone)]
pub struct LearnedReply {
    /// The whole OK packet, header included (sequence id 1).
    pub packet: Rc<[u8]>,
    /// Its status flags: the session's status after the `SET`.
    pub status: StatusFlags,
}

struct Entry {
    reply: LearnedReply,
    learned: Instant,
}

/// One core's learned replies.
#[derive(Default)]
pub struct LearnedSets {
    entries: RefCell<HashMap<SetKey, Entry>>,
}

impl LearnedSets {
    /// The reply learned for `key`, if it is still trusted.
    pub fn reply(&self, key: &SetKey) -> Option<LearnedReply> {
        let entries = self.entries.borrow();
        let e = entries.get(key)?;
        (e.learned.elapsed() < TRUST).then(|| e.reply.clone())
    }

    /// Learns `packet`, the whole reply the client was sent for the
    /// statement of `key`, when it is one clean OK packet (no warnings,
    /// no info, no rows affected, no insert id); returns whether it did.
    pub fn learn(&self, key: SetKey, packet: &[u8], client_caps: Capabilities) -> bool {
        let Some(status) = clean_ok_status(packet, client_caps) else {
            return false;
        };
        let mut entries = self.entries.borrow_mut();
        if entries.len() >= CAPACITY && !entries.contains_key(&key) {
            entries.clear();
        }
        entries.insert(
            key,
            Entry {
                reply: LearnedReply {
                    packet: packet.into(),
                    status,
                },
                learned: Instant::now(),
            },
        );
        true
    }

    /// Forgets every reply (a reload may have changed the servers).
    pub fn clear(&self) {
        self.entries.borrow_mut().clear();
    }

    /// How many replies are kept.
    pub fn len(&self) -> usize {
        self.entries.borrow().len()
    }

    /// True when no reply is kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The status flags of `packet` when it is exactly one OK packet with
/// sequence id 1 that reports nothing but status (and session-tracking
/// data), else `None`.
fn clean_ok_status(packet: &[u8], caps: Capabilities) -> Option<StatusFlags> {
    let h = PacketHeader::peek(packet)?;
    if h.seq != 1 || h.total_len() != packet.len() {
        return None;
    }
    let payload = &packet[HEADER_LEN..];
    if payload.first() != Some(&0x00) {
        return None;
    }
    let ok = OkPacket::parse(payload, caps).ok()?;
    // Status bits about the statement itself (a slow query, no index
    // used) would not hold for the next client.
    let lasting = StatusFlags::SERVER_STATUS_AUTOCOMMIT.0
        | StatusFlags::SERVER_STATUS_NO_BACKSLASH_ESCAPES.0
        | StatusFlags::SERVER_SESSION_STATE_CHANGED.0;
    let clean = ok.affected_rows == 0
        && ok.last_insert_id == 0
        && ok.warnings == 0
        && ok.info.is_empty()
        && ok.status.0 & !lasting == 0;
    clean.then_some(ok.status)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BytesMut;
    use funnel_protocol::framing::write_packet;

    /// The key of `text` in `hostgroup` for a session with `status` and `vars`.
    fn key_in(hostgroup: &str, status: StatusFlags, vars: &SessionVars, text: &str) -> SetKey {
        SetKey::new(
            Rc::from(hostgroup),
            Capabilities::CLIENT_PROTOCOL_41,
            PoolKey::DEFAULT,
            status,
            vars,
            text.as_bytes(),
        )
    }

    fn key(text: &str) -> SetKey {
        key_in(
            "main",
            StatusFlags::SERVER_STATUS_AUTOCOMMIT,
            &SessionVars::default(),
            text,
        )
    }

    fn ok_packet(seq: u8, ok: &OkPacket) -> Vec<u8> {
        let mut payload = BytesMut::new();
        ok.write(&mut payload, Capabilities::CLIENT_PROTOCOL_41);
        let mut packet = BytesMut::new();
        write_packet(&mut packet, seq, &payload);
        packet.to_vec()
    }

    #[test]
    fn learned_sets_keep_clean_oks_only() {
        let sets = LearnedSets::default();
        let caps = Capabilities::CLIENT_PROTOCOL_41;
        let plain = OkPacket {
            status: StatusFlags::SERVER_STATUS_AUTOCOMMIT,
            ..Default::default()
        };
        assert!(sets.learn(key("SET NAMES utf8mb4"), &ok_packet(1, &plain), caps));
        let got = sets.reply(&key("SET NAMES utf8mb4")).expect("learned");
        assert_eq!(&got.packet[..], &ok_packet(1, &plain)[..]);
        assert_eq!(got.status, StatusFlags::SERVER_STATUS_AUTOCOMMIT);
        assert!(sets.reply(&key("SET NAMES latin1")).is_none());

        let warned = OkPacket {
            warnings: 1,
            ..plain.clone()
        };
        assert!(!sets.learn(key("SET NAMES utf8"), &ok_packet(1, &warned), caps));
        let slow = OkPacket {
            status: StatusFlags(StatusFlags::SERVER_STATUS_AUTOCOMMIT.0 | 0x0800),
            ..plain.clone()
        };
        assert!(!sets.learn(key("SET NAMES utf8"), &ok_packet(1, &slow), caps));
        assert!(!sets.learn(key("SET NAMES utf8"), &ok_packet(2, &plain), caps));
        let mut two = ok_packet(1, &plain);
        two.extend(ok_packet(2, &plain));
        assert!(!sets.learn(key("SET NAMES utf8"), &two, caps));
        assert!(!sets.learn(key("SET NAMES utf8"), &[0xff, 1, 2], caps));
        assert_eq!(sets.len(), 1);
    }

    #[test]
    fn learned_sets_depend_on_the_session_state() {
        let sets = LearnedSets::default();
        let caps = Capabilities::CLIENT_PROTOCOL_41;
        let plain = OkPacket {
            status: StatusFlags::SERVER_STATUS_AUTOCOMMIT,
            ..Default::default()
        };
        assert!(sets.learn(key("SET NAMES utf8"), &ok_packet(1, &plain), caps));
        let mut vars = SessionVars::default();
        vars.apply(
            &crate::session::variables::parse_set(b"SET old_mode = 'UTF8_IS_UTF8MB3'")
                .and_then(|e| match e {
                    crate::session::variables::SetEffect::Session(a) => Some(a),
                    _ => None,
                })
                .expect("a session SET"),
            crate::session::variables::Utf8Alias::ByOldMode,
        );
        let other_vars = key_in(
            "main",
            StatusFlags::SERVER_STATUS_AUTOCOMMIT,
            &vars,
            "SET NAMES utf8",
        );
        assert!(sets.reply(&other_vars).is_none());
        let no_autocommit = key_in("main", StatusFlags(0), &SessionVars::default(), "SET NAMES utf8");
        assert!(sets.reply(&no_autocommit).is_none());
        let other_group = key_in(
            "replicas",
            StatusFlags::SERVER_STATUS_AUTOCOMMIT,
            &SessionVars::default(),
            "SET NAMES utf8",
        );
        assert!(sets.reply(&other_group).is_none());
        sets.clear();
        assert!(sets.is_empty());
    }

    #[test]
    fn learned_sets_start_over_when_full() {
        let sets = LearnedSets::default();
        let caps = Capabilities::CLIENT_PROTOCOL_41;
        let plain = ok_packet(
            1,
            &OkPacket {
                status: StatusFlags::SERVER_STATUS_AUTOCOMMIT,
                ..Default::default()
            },
        );
        for i in 0..CAPACITY {
            assert!(sets.learn(key(&format!("SET @@wait_timeout = {i}")), &plain, caps));
        }
        assert_eq!(sets.len(), CAPACITY);
        assert!(sets.learn(key("SET NAMES utf8mb4"), &plain, caps));
        assert_eq!(sets.len(), 1);
    }
}
