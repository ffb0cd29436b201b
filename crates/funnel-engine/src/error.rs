//! Funnel's own errors, and the one place they become MySQL ERR packets.
//!
//! A backend's ERR packet is data and is forwarded as-is; it never becomes
//! an [`EngineError`]. Each error says whose fault it is, which decides what
//! gets logged and counted.

use std::time::Duration;

use funnel_protocol::response::ErrPacket;
use thiserror::Error;

/// Whose fault an error is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The client sent something wrong or asked for too much.
    Client,
    /// A backend failed or could not be reached.
    Backend,
    /// Funnel itself (a limit it enforces, or a bug).
    Funnel,
}

/// An error Funnel reports to a client.
#[derive(Debug, Error)]
pub enum EngineError {
    /// Wrong password or unknown user (the same message for both, as MySQL does).
    #[error("access denied for user '{user}'@'{host}'")]
    AccessDenied {
        /// The user name the client gave.
        user: String,
        /// The client's address.
        host: String,
        /// Whether the client sent a password.
        using_password: bool,
    },
    /// A command waited in the backlog for longer than `backlog.wait_timeout`.
    #[error("no backend connection became free within backlog.wait_timeout ({waited:?})")]
    BacklogTimeout {
        /// How long the command waited.
        waited: Duration,
        /// The pool's size limit on this core.
        max: usize,
        /// Commands waiting on this core when it gave up.
        waiting: usize,
    },
    /// The backlog already holds `backlog.max_waiting_per_core` commands.
    #[error("backlog full: {max_waiting} commands already waiting on this core")]
    BacklogFull {
        /// The configured limit.
        max_waiting: usize,
    },
    /// No backend connection could be opened.
    #[error("backend {backend} unavailable: {reason}")]
    BackendUnavailable {
        /// Backend name.
        backend: String,
        /// What went wrong.
        reason: String,
    },
    /// Funnel itself ran out of descriptors, socket buffers or memory
    /// opening a backend connection: nothing reached the backend, which is
    /// not to blame.
    #[error("out of resources: {reason}")]
    OutOfResources {
        /// The system's error.
        reason: String,
    },
    /// A backend cannot serve this client's connection settings (its
    /// handshake charset, or capabilities the server lacks): other clients
    /// are served as usual.
    #[error("backend {backend} refuses this client's connection settings: {reason}")]
    KeyRefused {
        /// Backend name.
        backend: String,
        /// The server's own refusal, forwarded as it came.
        server_err: Option<ErrPacket>,
        /// What went wrong.
        reason: String,
    },
    /// A per-user or per-schema cap on backend connections stayed full.
    #[error("{what} holds its {limit} backend connections")]
    CapReached {
        /// Which cap (names its config key).
        what: String,
        /// The cap.
        limit: usize,
        /// How long the command waited.
        waited: Duration,
    },
    /// Handing out backend connections was paused (admin `PAUSE`) for longer
    /// than the command may wait.
    #[error("paused")]
    Paused {
        /// How long the command waited.
        waited: Duration,
    },
    /// No backend of the hostgroup can take the command.
    #[error("no backend available in hostgroup {hostgroup}")]
    NoBackend {
        /// The hostgroup.
        hostgroup: String,
        /// It has backends, and an operator drained every one.
        all_drained: bool,
        /// Why each of its backends could not take the command (`local is
        /// down`), so the client's error says what to fix.
        why: String,
    },
    /// The backend connection failed while running the client's command.
    #[error("lost connection to backend {backend} during query: {reason}")]
    BackendLost {
        /// Backend name.
        backend: String,
        /// What went wrong.
        reason: String,
    },
    /// A backend did not finish answering a client's command (or a
    /// prepare Funnel ran for it) within `pool.query_timeout`.
    #[error("no answer within pool.query_timeout ({limit:?})")]
    QueryTimeout {
        /// The configured limit.
        limit: Duration,
    },
    /// The session's transaction died with its backend connection (the
    /// client had ERR 9007 for it); statements are refused until the client
    /// ends the transaction.
    #[error("the transaction was lost with its backend connection")]
    TransactionLost {
        /// The connection failed during the transaction's `COMMIT`: it may
        /// have committed, so the text must not say it was rolled back.
        at_commit: bool,
    },
    /// The client asked for a character set servers refuse for clients.
    #[error("character set {0} refused for clients")]
    ClientCharset(&'static str),
    /// A user that requires TLS logged in without it.
    #[error("insecure transport")]
    InsecureTransport,
    /// The core already serves its share of `client.max_connections`.
    #[error("too many connections")]
    TooManyConnections,
    /// A client packet exceeded `client.max_packet_size`.
    #[error("packet of {len} bytes exceeds max_packet_size {max}")]
    PacketTooLarge {
        /// Declared length.
        len: usize,
        /// Limit.
        max: usize,
    },
    /// A command byte the protocol does not define.
    #[error("unknown command 0x{0:02x}")]
    UnknownCommand(u8),
    /// A command Funnel does not proxy.
    #[error("{0} is not supported through Funnel")]
    Unsupported(&'static str),
    /// A command the server would refuse on this connection as not part of
    /// the prepared-statement protocol it negotiated: a bulk execute from a
    /// client that did not ask for bulk operations, or bound for a server
    /// that does not offer them.
    #[error("command not supported in the prepared statement protocol")]
    NotInPreparedProtocol,
    /// A client packet that could not be decoded.
    #[error("malformed packet: {0}")]
    Malformed(funnel_protocol::ProtocolError),
    /// A handshake that was not a valid login.
    #[error("bad handshake: {0}")]
    BadHandshake(String),
    /// `KILL QUERY` stopped the command while it waited for a backend
    /// connection.
    #[error("query interrupted")]
    Interrupted,
    /// `KILL` ended the session while its command waited.
    #[error("connection killed")]
    ConnectionKilled,
}

impl EngineError {
    /// Whose fault it is.
    pub fn fault(&self) -> Fault {
        use EngineError::*;
        match self {
            AccessDenied { .. }
            | PacketTooLarge { .. }
            | UnknownCommand(_)
            | Unsupported(_)
            | NotInPreparedProtocol
            | Malformed(_)
            | BadHandshake(_)
            | ClientCharset(_)
            | KeyRefused { .. }
            | InsecureTransport
            | Interrupted
            | ConnectionKilled => Fault::Client,
            BackendUnavailable { .. }
            | BackendLost { .. }
            | NoBackend { .. }
            | TransactionLost { .. }
            | QueryTimeout { .. } => Fault::Backend,
            BacklogTimeout { .. }
            | BacklogFull { .. }
            | TooManyConnections
            | OutOfResources { .. }
            | CapReached { .. }
            | Paused { .. } => Fault::Funnel,
        }
    }

    /// The ERR packet the client receives, with MySQL's code and SQLSTATE
    /// where one exists and Funnel's own 9xxx codes (as ProxySQL uses) where
    /// the condition is the proxy's.
    pub fn to_err_packet(&self) -> ErrPacket {
        use EngineError::*;
        match self {
            AccessDenied {
                user,
                host,
                using_password,
            } => ErrPacket::new(
                1045,
                "28000",
                format!(
                    "Access denied for user '{user}'@'{host}' (using password: {})",
                    if *using_password { "YES" } else { "NO" }
                ),
            ),
            BacklogTimeout { waited, max, waiting } => ErrPacket::new(
                9001,
                "HY000",
                format!(
                    "Funnel: no backend connection became free within backlog.wait_timeout ({} ms); \
                     all {max} connections of this core are busy and {waiting} commands are waiting",
                    waited.as_millis()
                ),
            ),
            BacklogFull { max_waiting } => ErrPacket::new(
                9002,
                "HY000",
                format!(
                    "Funnel: backlog full: backlog.max_waiting_per_core ({max_waiting}) commands are already \
                     waiting for a backend connection on this core"
                ),
            ),
            BackendUnavailable { backend, reason } => ErrPacket::new(
                9003,
                "HY000",
                format!("Funnel: cannot open a connection to backend '{backend}': {reason}"),
            ),
            // MySQL's own code for a server out of memory or descriptors.
            OutOfResources { reason } => ErrPacket::new(
                1041,
                "HY000",
                format!(
                    "Funnel is out of resources and cannot open a backend connection ({reason}); \
                     raise its open-files limit (LimitNOFILE= / ulimit -n) or lower client.max_connections"
                ),
            ),
            KeyRefused {
                server_err: Some(err),
                ..
            } => err.clone(),
            KeyRefused {
                backend,
                server_err: None,
                reason,
            } => ErrPacket::new(
                9003,
                "HY000",
                format!(
                    "Funnel: backend '{backend}' cannot serve this client's connection settings: {reason}"
                ),
            ),
            CapReached { what, limit, waited } => ErrPacket::new(
                9005,
                "HY000",
                format!(
                    "Funnel: {what} already holds its {limit} backend connections on this core; \
                     none came free within {} ms",
                    waited.as_millis()
                ),
            ),
            Paused { waited } => ErrPacket::new(
                9006,
                "HY000",
                format!(
                    "Funnel: backend connections are paused by an operator (PAUSE); waited {} ms",
                    waited.as_millis()
                ),
            ),
            NoBackend {
                hostgroup,
                all_drained: true,
                ..
            } => ErrPacket::new(
                9004,
                "HY000",
                format!(
                    "Funnel: no backend available in hostgroup '{hostgroup}': \
                     every backend in it is drained (UNDRAIN BACKEND puts one back)"
                ),
            ),
            NoBackend { hostgroup, why, .. } => ErrPacket::new(
                9004,
                "HY000",
                format!("Funnel: no backend available in hostgroup '{hostgroup}': {why}"),
            ),
            // Not 2013: codes 2001-2061 are the client library's own, and
            // libmariadb turns an ERR that carries one into 2027 (malformed
            // packet). 08S01 lets connectors see a communication failure.
            BackendLost { backend, reason } => ErrPacket::new(
                9007,
                "08S01",
                format!("Lost connection to backend '{backend}' during query: {reason}"),
            ),
            QueryTimeout { limit } => ErrPacket::new(
                1969,
                "70100",
                // Unlike the server's own 1969, the statement may have
                // taken effect: the server may have finished it before the
                // KILL reached it, or never let the KILL in (frozen). A
                // client that retries on 1969 must be told.
                format!(
                    "Query execution was interrupted (pool.query_timeout of {} ms exceeded); \
                     the statement may have taken effect before it stopped",
                    limit.as_millis()
                ),
            ),
            // What MariaDB itself answers such a login with.
            ClientCharset(name) => ErrPacket::new(
                1231,
                "42000",
                format!("Variable 'character_set_client' can't be set to the value of '{name}'"),
            ),
            TransactionLost { at_commit: false } => ErrPacket::new(
                9008,
                "25000",
                "Funnel: this session's transaction was lost when its backend connection failed, and the \
                 server rolled it back; send ROLLBACK before new statements (COMMIT, BEGIN and \
                 START TRANSACTION are refused once, then the session goes on)",
            ),
            // The server may have run the COMMIT before the connection
            // failed (or after, once a frozen server resumed): saying it
            // rolled back would have the client run the transaction twice.
            TransactionLost { at_commit: true } => ErrPacket::new(
                9008,
                "25000",
                "Funnel: this session's backend connection failed during a statement that commits (COMMIT, \
                 or one that commits implicitly, such as DDL), which may or may not have committed the transaction: check before running it again; send ROLLBACK before new \
                 statements (COMMIT, BEGIN and START TRANSACTION are refused once, then the session goes on)",
            ),
            TooManyConnections => ErrPacket::new(1040, "08004", "Too many connections"),
            InsecureTransport => ErrPacket::new(
                3159,
                "HY000",
                "Connections using insecure transport are prohibited for this user (users[].require_tls)",
            ),
            PacketTooLarge { .. } => ErrPacket::new(
                1153,
                "08S01",
                "Got a packet bigger than 'max_allowed_packet' bytes",
            ),
            UnknownCommand(_) => ErrPacket::new(1047, "08S01", "Unknown command"),
            Unsupported(what) => ErrPacket::new(
                1235,
                "42000",
                format!("This version of Funnel doesn't yet support '{what}'"),
            ),
            NotInPreparedProtocol => ErrPacket::new(
                1295,
                "HY000",
                "This command is not supported in the prepared statement protocol yet",
            ),
            Malformed(e) => ErrPacket::new(1835, "HY000", format!("Malformed communication packet: {e}")),
            BadHandshake(why) => ErrPacket::new(1043, "08S01", format!("Bad handshake: {why}")),
            // What MariaDB answers a statement stopped by KILL QUERY / KILL.
            Interrupted => ErrPacket::new(1317, "70100", "Query execution was interrupted"),
            ConnectionKilled => ErrPacket::new(1927, "70100", "Connection was killed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_access_denied_matches_mysql() {
        let e = EngineError::AccessDenied {
            user: "bob".into(),
            host: "127.0.0.1".into(),
            using_password: true,
        };
        let p = e.to_err_packet();
        assert_eq!((p.code, &p.sql_state), (1045, b"28000"));
        assert_eq!(
            p.message_text(),
            "Access denied for user 'bob'@'127.0.0.1' (using password: YES)"
        );
        assert_eq!(e.fault(), Fault::Client);
    }

    #[test]
    fn error_backlog_messages_name_the_limit() {
        let p = EngineError::BacklogTimeout {
            waited: Duration::from_millis(1500),
            max: 4,
            waiting: 9,
        }
        .to_err_packet();
        assert_eq!(p.code, 9001);
        assert!(p.message_text().contains("backlog.wait_timeout (1500 ms)"));
        let p = EngineError::BacklogFull { max_waiting: 10 }.to_err_packet();
        assert!(p.message_text().contains("backlog.max_waiting_per_core (10)"));
    }

    #[test]
    fn error_query_timeout_is_mariadbs_interrupted_statement() {
        let p = EngineError::QueryTimeout {
            limit: Duration::from_millis(1500),
        }
        .to_err_packet();
        assert_eq!((p.code, &p.sql_state), (1969, b"70100"));
        assert!(p.message_text().contains("pool.query_timeout of 1500 ms"));
    }

    #[test]
    fn error_key_refused_forwards_the_servers_err() {
        let server = ErrPacket::new(
            1231,
            "42000",
            "Variable 'character_set_client' can't be set to the value of 'ucs2'",
        );
        let e = EngineError::KeyRefused {
            backend: "primary".into(),
            server_err: Some(server.clone()),
            reason: "login refused".into(),
        };
        assert_eq!(e.to_err_packet(), server);
        assert_eq!(e.fault(), Fault::Client);
        let p = EngineError::KeyRefused {
            backend: "primary".into(),
            server_err: None,
            reason: "the server lacks capabilities".into(),
        }
        .to_err_packet();
        assert_eq!(p.code, 9003);
        assert!(p.message_text().contains("this client's connection settings"));
    }

    #[test]
    fn error_backend_lost_uses_no_client_library_code() {
        let p = EngineError::BackendLost {
            backend: "primary".into(),
            reason: "peer closed the connection".into(),
        }
        .to_err_packet();
        // libmariadb reports an ERR carrying a CR_* code as malformed (2027).
        assert!(!(2000..3000).contains(&p.code), "{}", p.code);
        assert_eq!((p.code, &p.sql_state), (9007, b"08S01"));
        assert!(p
            .message_text()
            .starts_with("Lost connection to backend 'primary'"));
    }
}
