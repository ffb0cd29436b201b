//! Capability flags and server status flags.
//!
//! Capabilities are negotiated once per connection in the handshake; status
//! flags ride on every OK and EOF packet and are how Funnel learns, from the
//! server itself, whether a transaction is open (never from SQL text).

/// Client/server capability flags (the lower 32 bits are MySQL's; MariaDB's
/// extended capabilities live above bit 32 and are only exchanged when the
/// server does not set [`Capabilities::CLIENT_MYSQL`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Capabilities(pub u64);

macro_rules! flag_consts {
    ($ty:ident { $($(#[$m:meta])* $name:ident = $bit:expr;)* }) => {
        impl $ty {
            $($(#[$m])* pub const $name: $ty = $ty($bit);)*
        }
    };
}

flag_consts!(Capabilities {
    /// Long passwords; MariaDB reads a cleared bit as "speaks MariaDB's extended capabilities".
    CLIENT_MYSQL = 1;
    /// Return the number of found (matched) rows instead of changed rows.
    CLIENT_FOUND_ROWS = 1 << 1;
    /// Longer column flags.
    CLIENT_LONG_FLAG = 1 << 2;
    /// A schema name may be given in the handshake response.
    CLIENT_CONNECT_WITH_DB = 1 << 3;
    /// Do not allow db.table.column.
    CLIENT_NO_SCHEMA = 1 << 4;
    /// Compression protocol.
    CLIENT_COMPRESS = 1 << 5;
    /// ODBC client.
    CLIENT_ODBC = 1 << 6;
    /// LOAD DATA LOCAL INFILE allowed.
    CLIENT_LOCAL_FILES = 1 << 7;
    /// Ignore spaces before '('.
    CLIENT_IGNORE_SPACE = 1 << 8;
    /// The 4.1 protocol.
    CLIENT_PROTOCOL_41 = 1 << 9;
    /// Interactive client (uses interactive_timeout).
    CLIENT_INTERACTIVE = 1 << 10;
    /// Switch to TLS after the SSL request.
    CLIENT_SSL = 1 << 11;
    /// Ignore SIGPIPE (client-side only).
    CLIENT_IGNORE_SIGPIPE = 1 << 12;
    /// Knows about transactions (status flags).
    CLIENT_TRANSACTIONS = 1 << 13;
    /// Old 4.1 flag.
    CLIENT_RESERVED = 1 << 14;
    /// 4.1 authentication (20-byte scramble).
    CLIENT_SECURE_CONNECTION = 1 << 15;
    /// Several statements in one COM_QUERY.
    CLIENT_MULTI_STATEMENTS = 1 << 16;
    /// Several result sets per command.
    CLIENT_MULTI_RESULTS = 1 << 17;
    /// Several result sets from COM_STMT_EXECUTE.
    CLIENT_PS_MULTI_RESULTS = 1 << 18;
    /// Authentication plugins.
    CLIENT_PLUGIN_AUTH = 1 << 19;
    /// Connection attributes.
    CLIENT_CONNECT_ATTRS = 1 << 20;
    /// Length-encoded auth response.
    CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA = 1 << 21;
    /// Can handle expired passwords.
    CLIENT_CAN_HANDLE_EXPIRED_PASSWORDS = 1 << 22;
    /// Session state changes in OK packets.
    CLIENT_SESSION_TRACK = 1 << 23;
    /// OK packets replace EOF packets.
    CLIENT_DEPRECATE_EOF = 1 << 24;
    /// MariaDB: progress reports.
    MARIADB_CLIENT_PROGRESS = 1 << 32;
    /// MariaDB: COM_MULTI.
    MARIADB_CLIENT_COM_MULTI = 1 << 33;
    /// MariaDB: bulk COM_STMT_EXECUTE.
    MARIADB_CLIENT_STMT_BULK_OPERATIONS = 1 << 34;
    /// MariaDB: extended type info in column definitions.
    MARIADB_CLIENT_EXTENDED_METADATA = 1 << 35;
    /// MariaDB: result-set metadata may be skipped.
    MARIADB_CLIENT_CACHE_METADATA = 1 << 36;
});

impl Capabilities {
    /// No flags.
    pub const EMPTY: Capabilities = Capabilities(0);

    /// True when every flag in `other` is set.
    pub fn contains(self, other: Capabilities) -> bool {
        self.0 & other.0 == other.0
    }

    /// The flags set in both.
    pub fn intersect(self, other: Capabilities) -> Capabilities {
        Capabilities(self.0 & other.0)
    }

    /// Sets or clears `flag`.
    pub fn set(&mut self, flag: Capabilities, on: bool) {
        if on {
            self.0 |= flag.0;
        } else {
            self.0 &= !flag.0;
        }
    }

    /// The lower 32 bits, as sent in the handshake.
    pub fn lower(self) -> u32 {
        self.0 as u32
    }

    /// MariaDB's extended bits, as sent in the handshake filler.
    pub fn upper(self) -> u32 {
        (self.0 >> 32) as u32
    }
}

impl std::ops::BitOr for Capabilities {
    type Output = Capabilities;
    fn bitor(self, rhs: Capabilities) -> Capabilities {
        Capabilities(self.0 | rhs.0)
    }
}

/// Server status flags carried by OK and EOF packets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct StatusFlags(pub u16);

flag_consts!(StatusFlags {
    /// A transaction is active.
    SERVER_STATUS_IN_TRANS = 1;
    /// Autocommit is on.
    SERVER_STATUS_AUTOCOMMIT = 2;
    /// More result sets follow this one.
    SERVER_MORE_RESULTS_EXISTS = 8;
    /// The query used no good index.
    SERVER_QUERY_NO_GOOD_INDEX_USED = 16;
    /// The query used no index.
    SERVER_QUERY_NO_INDEX_USED = 32;
    /// A read-only cursor is open (COM_STMT_EXECUTE with a cursor).
    SERVER_STATUS_CURSOR_EXISTS = 64;
    /// The last row of a cursor was sent.
    SERVER_STATUS_LAST_ROW_SENT = 128;
    /// A database was dropped.
    SERVER_STATUS_DB_DROPPED = 256;
    /// NO_BACKSLASH_ESCAPES is in sql_mode.
    SERVER_STATUS_NO_BACKSLASH_ESCAPES = 512;
    /// Metadata changed (re-prepare needed).
    SERVER_STATUS_METADATA_CHANGED = 1024;
    /// The query was slow.
    SERVER_QUERY_WAS_SLOW = 2048;
    /// Output parameters of a procedure follow.
    SERVER_PS_OUT_PARAMS = 4096;
    /// The active transaction is read-only.
    SERVER_STATUS_IN_TRANS_READONLY = 8192;
    /// Session state changed; the OK packet carries the tracker data.
    SERVER_SESSION_STATE_CHANGED = 1 << 14;
});

impl StatusFlags {
    /// True when every flag in `other` is set.
    pub fn contains(self, other: StatusFlags) -> bool {
        self.0 & other.0 == other.0
    }

    /// A transaction is open, so the backend connection must stay with its client.
    pub fn in_transaction(self) -> bool {
        self.contains(StatusFlags::SERVER_STATUS_IN_TRANS)
    }

    /// Another result set follows.
    pub fn more_results(self) -> bool {
        self.contains(StatusFlags::SERVER_MORE_RESULTS_EXISTS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocol_capability_halves() {
        let c = Capabilities::CLIENT_PROTOCOL_41 | Capabilities::MARIADB_CLIENT_PROGRESS;
        assert_eq!(c.lower(), 1 << 9);
        assert_eq!(c.upper(), 1);
        assert!(c.contains(Capabilities::CLIENT_PROTOCOL_41));
        let mut d = c;
        d.set(Capabilities::CLIENT_PROTOCOL_41, false);
        assert!(!d.contains(Capabilities::CLIENT_PROTOCOL_41));
    }
}
