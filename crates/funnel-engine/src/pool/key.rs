//! What a backend connection must have in common with the client it serves.
//!
//! Some capability flags change what the server sends (affected-row counts
//! with `CLIENT_FOUND_ROWS`, EOF vs OK with `CLIENT_DEPRECATE_EOF`, ...) and
//! cannot be changed after the handshake, and neither can the handshake's
//! character set without a round trip. So the pool keeps connections by
//! these values and hands a client only a connection opened with the same
//! ones. `CLIENT_SESSION_TRACK` is not among them: every backend connection
//! has it (Funnel reads the server's state-change reports), and the relay
//! takes out of each reply what the client did not ask for.

use funnel_protocol::charset::UTF8MB4_GENERAL_CI;
use funnel_protocol::Capabilities;

/// Capability flags that must match between a client and its backend connection.
pub const RESULT_SHAPING_CAPS: Capabilities = Capabilities(
    Capabilities::CLIENT_FOUND_ROWS.0
        | Capabilities::CLIENT_LOCAL_FILES.0
        | Capabilities::CLIENT_IGNORE_SPACE.0
        | Capabilities::CLIENT_MULTI_STATEMENTS.0
        | Capabilities::CLIENT_MULTI_RESULTS.0
        | Capabilities::CLIENT_PS_MULTI_RESULTS.0
        | Capabilities::CLIENT_DEPRECATE_EOF.0
        | Capabilities::MARIADB_CLIENT_EXTENDED_METADATA.0,
);

/// Flags every backend connection uses, whatever its client. `CLIENT_MYSQL`
/// (long password) tells MariaDB not to use its extended capabilities, so
/// Funnel speaks one dialect to every server; a connection clears it when
/// it takes a MariaDB extension: extended metadata for a key that has it
/// ([`PoolKey::backend_caps`]), bulk operations wherever the server offers
/// them (`BackendConnection::open`). `CLIENT_SESSION_TRACK` lets the server report
/// session-state changes Funnel cannot see in SQL text.
pub const BASE_BACKEND_CAPS: Capabilities = Capabilities(
    Capabilities::CLIENT_MYSQL.0
        | Capabilities::CLIENT_LONG_FLAG.0
        | Capabilities::CLIENT_PROTOCOL_41.0
        | Capabilities::CLIENT_TRANSACTIONS.0
        | Capabilities::CLIENT_SECURE_CONNECTION.0
        | Capabilities::CLIENT_PLUGIN_AUTH.0
        | Capabilities::CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA.0
        | Capabilities::CLIENT_SESSION_TRACK.0,
);

/// The pool partition a client needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PoolKey {
    /// The result-shaping capability flags.
    pub caps: Capabilities,
    /// The handshake collation id.
    pub charset: u8,
}

impl PoolKey {
    /// What most libmariadb/libmysqlclient clients ask for; used to open the
    /// `min_idle_per_core` connections before any client arrives.
    pub const DEFAULT: PoolKey = PoolKey {
        caps: Capabilities(
            Capabilities::CLIENT_LOCAL_FILES.0
                | Capabilities::CLIENT_MULTI_STATEMENTS.0
                | Capabilities::CLIENT_MULTI_RESULTS.0
                | Capabilities::CLIENT_PS_MULTI_RESULTS.0,
        ),
        charset: UTF8MB4_GENERAL_CI as u8,
    };

    /// [`PoolKey::DEFAULT`] with those of MariaDB's `extended` capabilities
    /// that shape replies: what libmariadb clients (the `mysql` CLI,
    /// sysbench, mysqlclient) ask for where Funnel offers them.
    pub fn common(extended: Capabilities) -> Self {
        let mut key = PoolKey::DEFAULT;
        key.caps = key.caps | extended.intersect(RESULT_SHAPING_CAPS);
        key
    }

    /// The key for a client with these negotiated capabilities and charset.
    pub fn for_client(caps: Capabilities, charset: u8) -> Self {
        PoolKey {
            caps: caps.intersect(RESULT_SHAPING_CAPS),
            charset,
        }
    }

    /// True when a connection of this key can be given `other`
    /// ([`crate::pool::conn::BackendConnection::switch_key`]): the keys differ
    /// only in what can change after the handshake. That is the charset,
    /// with a `SET NAMES` where Funnel can name `other`'s, and the
    /// multi-statement option, which `COM_SET_OPTION` sets and the
    /// session's sync already brings in line with the client's (so
    /// nothing is sent for it here). Other flags cannot change.
    pub fn switches_to(self, other: PoolKey) -> bool {
        let fixed = |k: PoolKey| {
            let mut caps = k.caps;
            caps.set(Capabilities::CLIENT_MULTI_STATEMENTS, false);
            caps
        };
        self != other
            && fixed(self) == fixed(other)
            && (self.charset == other.charset
                || funnel_protocol::charset::names(u16::from(other.charset)).is_some())
    }

    /// The capabilities to request from the backend for this key.
    pub fn backend_caps(self) -> Capabilities {
        let mut caps = BASE_BACKEND_CAPS | self.caps;
        if caps.upper() != 0 {
            // MariaDB's extensions travel only with it clear.
            caps.set(Capabilities::CLIENT_MYSQL, false);
        }
        caps
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_key_ignores_flags_that_do_not_shape_results() {
        let a = PoolKey::for_client(
            Capabilities::CLIENT_FOUND_ROWS | Capabilities::CLIENT_CONNECT_ATTRS,
            45,
        );
        let b = PoolKey::for_client(Capabilities::CLIENT_FOUND_ROWS, 45);
        assert_eq!(a, b);
        assert_ne!(a, PoolKey::for_client(Capabilities::EMPTY, 45));
        assert!(a.backend_caps().contains(Capabilities::CLIENT_PROTOCOL_41));
        assert!(a.backend_caps().contains(Capabilities::CLIENT_FOUND_ROWS));
        // Clients that ask for session tracking and those that do not share connections.
        assert_eq!(
            PoolKey::for_client(Capabilities::CLIENT_SESSION_TRACK, 45),
            PoolKey::for_client(Capabilities::EMPTY, 45)
        );
        assert!(b.backend_caps().contains(Capabilities::CLIENT_SESSION_TRACK));
    }

    #[test]
    fn pool_key_switches_charset_but_not_capabilities() {
        let latin1 = PoolKey::for_client(Capabilities::CLIENT_FOUND_ROWS, 8);
        let utf8mb4 = PoolKey::for_client(Capabilities::CLIENT_FOUND_ROWS, 45);
        assert!(latin1.switches_to(utf8mb4));
        assert!(utf8mb4.switches_to(latin1));
        assert!(!latin1.switches_to(latin1));
        // Other flags, or a collation Funnel cannot name in `SET NAMES`.
        assert!(!latin1.switches_to(PoolKey::for_client(Capabilities::EMPTY, 45)));
        assert!(!latin1.switches_to(PoolKey::for_client(Capabilities::CLIENT_FOUND_ROWS, 5)));
        // The multi-statement option, with or without another charset.
        let multi = Capabilities::CLIENT_FOUND_ROWS | Capabilities::CLIENT_MULTI_STATEMENTS;
        assert!(latin1.switches_to(PoolKey::for_client(multi, 8)));
        assert!(latin1.switches_to(PoolKey::for_client(multi, 45)));
        assert!(PoolKey::for_client(multi, 8).switches_to(latin1));
        assert!(!latin1.switches_to(PoolKey::for_client(Capabilities::CLIENT_MULTI_STATEMENTS, 8)));
    }
}
