//! One pre-authenticated backend connection: opening it, and running small
//! commands on it to completion (state changes before a client's command).
//!
//! Each of those commands has a deadline (see [`Deadline`]): a backend that
//! stops answering one must not hold its client, or its pool slot, for
//! ever. A connection whose command ran out of time is never reused: the
//! server may still answer it later.
//!
//! Dropping a connection only closes its socket and frees its pool slot;
//! there is no async work in `Drop`.

use std::cell::Cell;
use std::io;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use funnel_protocol::auth::{
    caching_sha2_next, caching_sha2_scramble, native_password_scramble, rsa_encrypt_password,
    AuthSwitchRequest, CachingSha2Step, CACHING_SHA2_PASSWORD, MYSQL_NATIVE_PASSWORD,
};
use funnel_protocol::charset;
use funnel_protocol::framing::write_packet;
use funnel_protocol::handshake::{HandshakeResponse41, HandshakeV10};
use funnel_protocol::response::{ErrPacket, OkPacket};
use funnel_protocol::tracker::{Event, Expect, ResponseSummary, ResponseTracker};
use funnel_protocol::{Capabilities, StatusFlags};

use crate::ids::BackendId;
use crate::iobuf::IoBuf;
use crate::packet_io::{read_whole_packet, send_packet, ReadError};
use crate::pool::addr::BackendAddr;
use crate::pool::key::PoolKey;
use crate::prepared::conn_cache::ConnStatements;
use crate::rt::{self, Stream};
use crate::session::variables::SessionVars;

/// A text result's rows, `None` for SQL NULL.
pub type TextRows = Vec<Vec<Option<String>>>;

/// Where and as whom to connect.
#[derive(Clone)]
pub struct BackendSpec {
    /// The backend's name from the config.
    pub name: String,
    /// Resolved address.
    pub addr: BackendAddr,
    /// User Funnel logs in as.
    pub user: String,
    /// Its password (never logged).
    pub password: String,
    /// TLS toward it, when configured.
    pub tls: Option<crate::tls::BackendTlsSpec>,
}

impl BackendSpec {
    /// True when connections opened for `other` would be the same as ours
    /// (address, account, password, TLS settings and the CA file's bytes),
    /// so a pool can stay.
    pub fn same_login(&self, other: &BackendSpec) -> bool {
        self.addr == other.addr
            && self.user == other.user
            && self.password == other.password
            && self.tls.as_ref().map(|t| (&t.settings, t.ca_fingerprint))
                == other.tls.as_ref().map(|t| (&t.settings, t.ca_fingerprint))
    }
}

impl std::fmt::Debug for BackendSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The password never reaches a log line.
        f.debug_struct("BackendSpec")
            .field("name", &self.name)
            .field("addr", &self.addr)
            .field("user", &self.user)
            .field("tls", &self.tls.is_some())
            .finish_non_exhaustive()
    }
}

/// Why a backend connection could not be opened or used.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// Network failure or timeout.
    #[error("{0}")]
    Io(#[from] io::Error),
    /// The server refused the login.
    #[error("login refused: {0}")]
    Refused(ErrPacket),
    /// The server sent something that does not follow the protocol.
    #[error("protocol violation: {0}")]
    Protocol(#[from] funnel_protocol::ProtocolError),
    /// An auth method Funnel cannot complete on this transport.
    #[error("unsupported authentication: {0}")]
    Auth(String),
    /// The server lacks capabilities the connection's clients use: it
    /// would answer in shapes they cannot parse (EOF packets where they
    /// expect OK).
    #[error(
        "the server lacks capabilities its clients use ({0:?}): \
         MariaDB 10.2 / MySQL 5.7 or later is needed"
    )]
    LacksCapabilities(Capabilities),
    /// The backend did not answer one of Funnel's commands within its
    /// deadline (the server may still be running it).
    #[error("no answer within {} ({} ms)", .0.key, .0.limit.as_millis())]
    Unanswered(Deadline),
}

/// Login errors a server gives for the handshake's character set: it
/// refuses it as a client character set (1231, what MariaDB 10.11 answers
/// for ucs2, utf16, utf16le, utf32 and filename), or does not know it
/// (1115, 1273).
const CHARSET_REFUSALS: [u16; 3] = [1231, 1115, 1273];

impl BackendError {
    /// True when opening failed because of the pool key alone (its charset
    /// or capabilities), not the server or the backend account: a
    /// connection for another key would open. Such a failure is the
    /// client's to hear about, never a reason to back the pool off.
    ///
    /// The key is all that differs between two opens of a pool: a login
    /// names no schema (the session selects it afterwards), so 1044 and
    /// 1049 never come here; 1045, 1040, 1129, timeouts and refused
    /// connects are the server's or the account's, whatever the key.
    pub fn key_specific(&self) -> bool {
        match self {
            BackendError::Refused(err) => CHARSET_REFUSALS.contains(&err.code),
            BackendError::LacksCapabilities(_) => true,
            _ => false,
        }
    }

    /// True when opening failed for want of Funnel's own resources
    /// (descriptors, socket buffers, memory), before anything reached the
    /// server: it says nothing about the backend.
    pub fn local_shortage(&self) -> bool {
        match self {
            BackendError::Io(io) => matches!(
                io.raw_os_error(),
                Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
            ),
            _ => false,
        }
    }
}

/// How long one of Funnel's own commands on a backend connection may take,
/// and the config key that says so (for the client's error message).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deadline {
    /// The time allowed.
    pub limit: Duration,
    /// The config key it comes from.
    pub key: &'static str,
}

impl Deadline {
    /// The config key of the deadline for the statements that restore a
    /// session on a connection: they are part of making it usable.
    pub const CONNECT_KEY: &'static str = "pool.connect_timeout";
    /// The config key of the deadline for a client's command.
    pub const QUERY_KEY: &'static str = "pool.query_timeout";

    /// `limit` from `pool.connect_timeout`.
    pub fn connect(limit: Duration) -> Self {
        Deadline {
            limit,
            key: Self::CONNECT_KEY,
        }
    }
}

/// Keeps a pool slot taken while a connection (or its opening) exists.
pub struct SlotGuard(Rc<Cell<usize>>);

impl SlotGuard {
    /// Takes one slot of `count`.
    pub fn take(count: &Rc<Cell<usize>>) -> Self {
        count.set(count.get() + 1);
        SlotGuard(count.clone())
    }
}

impl Drop for SlotGuard {
    fn drop(&mut self) {
        self.0.set(self.0.get() - 1);
    }
}

// The text of `RESET_CHECK`, a macro so `concat!` can extend it.
macro_rules! reset_check {
    () => {
        "SET profiling = IF(CAST(IFNULL(CURRENT_ROLE(), 'NONE') AS BINARY) = CAST(IFNULL((SELECT ROLE_NAME \
         FROM information_schema.APPLICABLE_ROLES WHERE GRANTEE = CURRENT_USER() AND IS_DEFAULT = 'YES' LIMIT 1), 'NONE') AS BINARY) \
         AND NOT EXISTS (SELECT 1 FROM information_schema.PROFILING), 'OFF', 'reset_left_a_role_or_profiles')"
    };
}
/// The check [`BackendConnection::restore_after_reset`] runs: `profiling` is set
/// `OFF` when the role is the one a new connection of the account starts
/// in (its default role, or none) and no profiles are left, and to a
/// value the server refuses (1231) otherwise (`CURRENT_ROLE()` reads
/// `NONE` on MySQL, `NULL` on MariaDB). The names compare as bytes: role
/// names are case sensitive, and both strings are `utf8mb3_general_ci`,
/// under which `r` equals `R` and `é` equals `e`.
const RESET_CHECK: &str = reset_check!();

/// [`RESET_CHECK`] turning `session_track_state_change` back on too.
const RESET_CHECK_TRACKING: &str = concat!(reset_check!(), ", session_track_state_change = ON");

/// True for the server's errors after which it closes the connection:
/// a packet over its `max_allowed_packet` (1153), a garbled or timed-out
/// read or write (1156-1161), the connection killed (1927), a shutdown
/// (1053), and on MySQL the idle timeout (4031,
/// `ER_CLIENT_INTERACTION_TIMEOUT`; on MariaDB 4031 is
/// `ER_REFERENCED_TRG_DOES_NOT_EXIST`, a `CREATE TRIGGER ... FOLLOWS
/// nosuch`, after which the connection lives on). The next client would
/// meet the closed connection (ERR 9007), and how soon its end shows on
/// the socket is up to the kernel.
pub fn closes_after_error(code: u16, mariadb: bool) -> bool {
    matches!(code, 1053 | 1153 | 1156..=1161 | 1927) || (code == 4031 && !mariadb)
}

/// `NAMES 'cs' COLLATE 'coll'` of handshake collation `charset`: what sets
/// the charset group as a login with it does. `None` for a collation
/// Funnel cannot name.
fn names_clause(charset: u8) -> Option<String> {
    let (cs, coll) = charset::names(u16::from(charset))?;
    Some(format!("NAMES '{cs}' COLLATE '{coll}'"))
}

/// An open, authenticated backend connection, on the heap: a session
/// hands it from one async step to the next by value (lease, sync, relay,
/// settle, release), and each of those moves is then a pointer's, not the
/// whole state's (about 500 bytes, some 40 times per query).
pub type BackendConn = Box<BackendConnection>;

/// What [`BackendConn`] points to.
pub struct BackendConnection {
    /// Id within the shard.
    pub id: BackendId,
    /// The socket.
    pub stream: Stream,
    /// Bytes read and not yet processed.
    pub buf: IoBuf,
    /// The partition it belongs to. Its charset and multi-statement flag
    /// may differ from those the connection logged in with: see
    /// [`Self::switch_key`].
    pub key: PoolKey,
    /// The charset it logged in with, which `COM_RESET_CONNECTION` gives
    /// back to the server's session.
    pub login_charset: u8,
    /// Negotiated capabilities.
    pub caps: Capabilities,
    /// The MariaDB extended capabilities the server's greeting offered.
    pub server_extended: Capabilities,
    /// Status flags after the last response.
    pub status: StatusFlags,
    /// The schema selected on the server (`None`: none selected yet).
    pub schema: Option<Vec<u8>>,
    /// The server's id for this connection (for `KILL QUERY`).
    pub server_thread_id: u32,
    /// Funnel's port of this TCP connection: the server lists it in the
    /// thread's `HOST`, which tells this connection from another server's
    /// thread of the same id (see [`ServerThread`]).
    pub local_port: Option<u16>,
    /// When its opening began (its connect): `max_lifetime` and
    /// `RECONNECT` count from there.
    pub opened_at: Instant,
    /// When it was last released.
    pub idle_since: Instant,
    /// The pool it belongs to (shard-unique id).
    pub pool_id: u32,
    /// Its backend's name (for errors and logs).
    pub backend: Rc<str>,
    /// The per-user/per-schema cap slot of the client holding it (freed on release).
    pub cap_slot: Option<crate::caps::CapSlot>,
    /// Statements prepared on this connection.
    pub stmts: ConnStatements,
    /// Session variables set on this connection beyond a fresh one's.
    pub vars: SessionVars,
    /// User variables this connection carries (another client's, maybe).
    pub user_vars: crate::session::user_vars::UserVars,
    /// Multi-statements are on (from the handshake, then `COM_SET_OPTION`).
    pub multi_statements: bool,
    /// A statement here left warnings or an error in the server's
    /// diagnostics area, and nothing has cleared it since (a statement
    /// without warnings that opens no table leaves them there): another
    /// client must not see them.
    pub stale_diagnostics: bool,
    /// A client's statement failed here with autocommit off: its ERR
    /// carried no status flags, and a statement that failed after touching
    /// a table leaves the transaction it began open. Until a reply says
    /// otherwise, the connection may hold one.
    pub tx_unknown: bool,
    /// A `SAVEPOINT` succeeded here with autocommit off before any
    /// transaction began: the server keeps it (no status flag says so)
    /// for the transaction the next statement opens. Cleared once a
    /// transaction is seen (it ends with it) or autocommit is on.
    pub savepoint_outside_tx: bool,
    /// The deadline of Funnel's own commands here, shared with the pool so
    /// that a reload reaches connections already open.
    pub own_deadline: Rc<Cell<Deadline>>,
    /// One of Funnel's commands here ran out of time: the server may still
    /// answer it, so nothing here can be trusted any more.
    pub unanswered: bool,
    /// A `KILL QUERY` of a client's statement here was written and never
    /// answered: the server may still run it, and would stop whatever
    /// statement runs here then. Serves no other client.
    pub late_kill: bool,
    /// The server closes the connection: after a client's `COMMIT
    /// RELEASE` or `ROLLBACK RELEASE` (its OK), or after an error it ends
    /// the connection with ([`closes_after_error`]). Serves no other
    /// client.
    pub server_closes: bool,
    /// The server is MariaDB (its greeting says so), not MySQL: the two
    /// give some error codes different meanings ([`closes_after_error`]).
    pub mariadb: bool,
    /// The server reports session-state changes here
    /// (`session_track_state_change` is on, see [`Self::enable_state_tracking`]).
    pub tracks_state: bool,
    /// A client's command changed session state here that Funnel could
    /// not see in its text (the server reported it): the connection never
    /// serves another client.
    pub untracked_state: bool,
    /// The connection holds session state no other client may see, which
    /// a `COM_RESET_CONNECTION` undoes: it is reset
    /// ([`Self::reset_session`]) before it serves another client. Either a
    /// client's statement that may have run stored code (a trigger, a
    /// stored function) failed here: an ERR packet carries no status
    /// flags, and MariaDB drops the state-change report of the failed
    /// statement (the next OK does not carry it either), so whatever that
    /// code set before the error (`SET @pk = NEW.id` in a `BEFORE INSERT`
    /// trigger, a function's `SET time_zone`) is there unseen. Or a pinned
    /// session ended, leaving what pinned it (a temporary table, a named
    /// lock, variables): a reset is two round trips where a new connection
    /// costs a login.
    pub needs_reset: bool,
    /// The command that ran out of time may still be running on the
    /// server, waiting for a lock (a prepare, under `pool.query_timeout`):
    /// it is killed there when the connection is discarded. Funnel's other
    /// statements change no data and take no lock, so they end by
    /// themselves and cost no extra connection to kill.
    pub kill_on_discard: bool,
    _slot: SlotGuard,
}

impl std::fmt::Debug for BackendConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BackendConn")
            .field("id", &self.id)
            .field("status", &self.status)
            .field("server_thread_id", &self.server_thread_id)
            .finish()
    }
}

/// Where a client's command runs: what `KILL QUERY` needs to reach it, and
/// to make sure the thread it names is still that connection. A thread id
/// alone could name another server's thread once the backend's address
/// has moved (a virtual IP after a failover).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerThread {
    /// The pool the connection belongs to (shard-unique id).
    pub pool: u32,
    /// The server's id for the connection.
    pub id: u32,
    /// Funnel's port of the connection (`None` over a Unix socket, whose
    /// path cannot lead to another server).
    pub local_port: Option<u16>,
}

/// The fixed part of a login (capabilities, packet size, charset, filler):
/// all an SSLRequest carries.
const SSL_REQUEST_LEN: usize = 32;

/// Largest packet accepted from a backend during login and Funnel's own
/// commands (their answers are small; a client's rows never come this way).
const SMALL_PACKET_LIMIT: usize = 1 << 20;

impl BackendConnection {
    /// The server thread running this connection's commands.
    pub fn server_thread(&self) -> ServerThread {
        ServerThread {
            pool: self.pool_id,
            id: self.server_thread_id,
            local_port: self.local_port,
        }
    }

    /// Connects, logs in, and returns the connection (and the server's version string).
    pub async fn open(
        spec: &BackendSpec,
        id: BackendId,
        key: PoolKey,
        slot: SlotGuard,
        limit: Duration,
    ) -> Result<(BackendConn, Vec<u8>), BackendError> {
        match rt::timeout(limit, Self::open_inner(spec, id, key, slot, limit)).await {
            Some(r) => r,
            None => Err(BackendError::Io(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("no login within pool.connect_timeout ({} ms)", limit.as_millis()),
            ))),
        }
    }

    async fn open_inner(
        spec: &BackendSpec,
        id: BackendId,
        key: PoolKey,
        slot: SlotGuard,
        limit: Duration,
    ) -> Result<(BackendConn, Vec<u8>), BackendError> {
        // Before the connect: the server makes the session (from its
        // globals) when it takes the connection, so a `RECONNECT` during
        // the login must replace this one too.
        let started = Instant::now();
        let mut stream = spec.addr.connect(limit).await?;
        stream.set_nodelay()?;
        let local_port = stream.local_port();
        let mut buf = IoBuf::default();
        let (seq, greeting) = read_packet(&mut stream, &mut buf).await?;
        let hs = HandshakeV10::parse(&greeting).map_err(|e| match ErrPacket::parse(&greeting) {
            Ok(err) => BackendError::Refused(err),
            Err(_) => BackendError::Protocol(e),
        })?;
        let mut caps = key
            .backend_caps()
            .intersect(hs.capabilities | Capabilities::CLIENT_MYSQL);
        // The client was promised these: a server without one would send
        // what the client cannot parse (EOF packets where it expects OK).
        let missing = Capabilities(key.caps.0 & !caps.0);
        if missing.0 != 0 {
            return Err(BackendError::LacksCapabilities(missing));
        }
        if hs
            .capabilities
            .contains(Capabilities::MARIADB_CLIENT_STMT_BULK_OPERATIONS)
        {
            // For clients that negotiated it; it changes no reply of other
            // commands, so every connection takes it.
            caps.set(Capabilities::MARIADB_CLIENT_STMT_BULK_OPERATIONS, true);
        }
        if caps.upper() != 0 {
            // MariaDB's extensions travel only with it clear.
            caps.set(Capabilities::CLIENT_MYSQL, false);
        }
        if spec.tls.is_some() {
            if !hs.capabilities.contains(Capabilities::CLIENT_SSL) {
                return Err(BackendError::Auth(
                    "tls is configured but the server does not offer TLS".into(),
                ));
            }
            caps.set(Capabilities::CLIENT_SSL, true);
        }
        let plugin = String::from_utf8_lossy(&hs.auth_plugin_name).into_owned();
        let password = spec.password.as_bytes();
        let auth_response = match plugin.as_str() {
            CACHING_SHA2_PASSWORD => caching_sha2_scramble(password, &hs.auth_plugin_data),
            _ => native_password_scramble(password, &hs.auth_plugin_data),
        };
        // Attributes only where the server takes them: the flag is set from them.
        let attributes = if hs.capabilities.contains(Capabilities::CLIENT_CONNECT_ATTRS) {
            vec![(b"_client_name".to_vec(), b"funnel".to_vec())]
        } else {
            Vec::new()
        };
        let login = HandshakeResponse41 {
            capabilities: caps,
            max_packet_size: 1 << 30,
            charset: key.charset,
            username: spec.user.as_bytes().to_vec(),
            auth_response,
            database: None,
            auth_plugin_name: Some(if plugin == CACHING_SHA2_PASSWORD {
                plugin.clone().into_bytes()
            } else {
                MYSQL_NATIVE_PASSWORD.as_bytes().to_vec()
            }),
            attributes,
        };
        let mut out = BytesMut::new();
        let mut payload = BytesMut::new();
        login.write(&mut payload);
        // The scramble in force: an auth switch replaces it.
        let mut scramble = hs.auth_plugin_data.clone();
        let mut seq = seq.wrapping_add(1);
        if let Some(tls) = &spec.tls {
            // An SSLRequest is the login's fixed part alone; the login
            // itself follows inside TLS.
            write_packet(&mut out, seq, &payload[..SSL_REQUEST_LEN]);
            stream.write_all(&out).await?;
            out.clear();
            stream
                .start_tls_client(tls.config.clone(), tls.server_name.clone())
                .await?;
            seq = seq.wrapping_add(1);
        }
        write_packet(&mut out, seq, &payload);
        stream.write_all(&out).await?;
        loop {
            let (seq, p) = read_packet(&mut stream, &mut buf).await?;
            let next = seq.wrapping_add(1);
            match p.first() {
                Some(0x00) => {
                    let ok = OkPacket::parse(&p, caps)?;
                    let now = Instant::now();
                    let conn = Box::new(BackendConnection {
                        id,
                        stream,
                        buf,
                        key,
                        login_charset: key.charset,
                        caps,
                        server_extended: Capabilities(u64::from(hs.capabilities.upper()) << 32),
                        status: ok.status,
                        schema: None,
                        server_thread_id: hs.connection_id,
                        local_port,
                        opened_at: started,
                        idle_since: now,
                        pool_id: 0,
                        backend: Rc::from(spec.name.as_str()),
                        cap_slot: None,
                        stmts: ConnStatements::default(),
                        vars: SessionVars::default(),
                        user_vars: Default::default(),
                        stale_diagnostics: false,
                        tx_unknown: false,
                        savepoint_outside_tx: false,
                        own_deadline: Rc::new(Cell::new(Deadline::connect(limit))),
                        unanswered: false,
                        late_kill: false,
                        server_closes: false,
                        mariadb: hs.server_version.windows(7).any(|w| w == b"MariaDB"),
                        kill_on_discard: false,
                        tracks_state: false,
                        untracked_state: false,
                        needs_reset: false,
                        multi_statements: caps.contains(Capabilities::CLIENT_MULTI_STATEMENTS),
                        _slot: slot,
                    });
                    return Ok((conn, hs.server_version));
                }
                Some(0xff) => return Err(BackendError::Refused(ErrPacket::parse(&p)?)),
                Some(0xfe) => {
                    let switch = AuthSwitchRequest::parse(&p)?;
                    scramble = switch.plugin_data.clone();
                    let answer = match switch.plugin_name.as_slice() {
                        b"mysql_native_password" => native_password_scramble(password, &switch.plugin_data),
                        b"caching_sha2_password" => caching_sha2_scramble(password, &switch.plugin_data),
                        other => {
                            return Err(BackendError::Auth(format!(
                                "server asked for plugin {}",
                                String::from_utf8_lossy(other)
                            )))
                        }
                    };
                    send_packet(&mut stream, next, &answer).await?;
                }
                Some(0x01) => match caching_sha2_next(&p, password, stream.is_tls())? {
                    CachingSha2Step::AwaitOk => {}
                    // Full authentication without TLS: ask for the server's
                    // RSA key, then send the password encrypted with it.
                    CachingSha2Step::Send(data) => send_packet(&mut stream, next, &data).await?,
                    CachingSha2Step::EncryptWith(pem) => {
                        let sealed =
                            rsa_encrypt_password(&pem, password, &scramble, &mut rand::thread_rng())?;
                        send_packet(&mut stream, next, &sealed).await?;
                    }
                },
                _ => return Err(BackendError::Auth("unexpected packet during login".into())),
            }
        }
    }

    /// Turns on the server's `session_track_state_change`, so that a
    /// statement that changes session state reports it in its status flags
    /// even where its text does not show it (a stored function or trigger
    /// setting a variable). A server without the variable (or without
    /// `CLIENT_SESSION_TRACK`) works on without the reports.
    pub async fn enable_state_tracking(&mut self) -> Result<(), BackendError> {
        self.tracks_state = false;
        if !self.caps.contains(Capabilities::CLIENT_SESSION_TRACK) {
            return Ok(());
        }
        let mut p = BytesMut::new();
        funnel_protocol::command::write_query(&mut p, b"SET session_track_state_change = ON");
        let summary = self.run(&p, Expect::Status).await?;
        self.tracks_state = summary.error.is_none();
        Ok(())
    }

    /// `COM_RESET_CONNECTION`, then [`Self::restore_after_reset`]: the
    /// server's session is a fresh one's again (user and session variables,
    /// prepared statements, temporary tables; the schema stays, and the
    /// charset of the connection's key is set again where the server gave
    /// back the login's), and so is what Funnel records of it. Returns false
    /// when the reset left what it does not undo (a role, profiles): the
    /// connection must be closed. An ERR from the server is an error here
    /// too: the connection must not be reused.
    pub async fn reset_session(&mut self) -> Result<bool, BackendError> {
        let deadline = Some(self.own_deadline.get());
        self.reset_session_within(deadline).await
    }

    /// [`Self::reset_session`] with the `COM_RESET_CONNECTION` itself under
    /// `deadline` (`None`: none). A client's own reset is one of its
    /// commands, under `pool.query_timeout` as the others: the server rolls
    /// back the session's transaction there, which takes as long as its
    /// writes, not as long as a login. The check after it stays under the
    /// connection's own deadline.
    pub async fn reset_session_within(&mut self, deadline: Option<Deadline>) -> Result<bool, BackendError> {
        let summary = self
            .run_capturing_within(deadline, &[0x1f], Expect::Status, None)
            .await?;
        if let Some(err) = summary.error {
            return Err(BackendError::Refused(err));
        }
        self.forget_session_state();
        self.restore_after_reset().await
    }

    /// After a `COM_RESET_CONNECTION` (Funnel's or a client's): turns
    /// state tracking back on ([`Self::enable_state_tracking`]) in the
    /// statement that checks what MariaDB's reset does not undo (10.11): a
    /// role (`SET ROLE`, also from `EXECUTE IMMEDIATE` or a prepare, which
    /// Funnel cannot always read), and profiling, which goes on recording
    /// every statement (`@@profiling` reads 0) for any later `SHOW
    /// PROFILES`. Returns false when either is there (or the check fails):
    /// such a connection serves no other client. When the check passes,
    /// the same statement stops the recording a reset left on with no
    /// history yet.
    ///
    /// A connection whose charset was switched gets it back in the same
    /// statement (the reset gave the server's session the login's), or in
    /// one of its own when the check failed and set nothing.
    pub async fn restore_after_reset(&mut self) -> Result<bool, BackendError> {
        self.tracks_state = false;
        let track = self.caps.contains(Capabilities::CLIENT_SESSION_TRACK);
        let sql = if track { RESET_CHECK_TRACKING } else { RESET_CHECK };
        let mut p = BytesMut::new();
        funnel_protocol::command::write_query(&mut p, sql.as_bytes());
        let names = self.switched_names();
        if let Some(names) = &names {
            p.extend_from_slice(format!(", {names}").as_bytes());
        }
        let summary = self.run(&p, Expect::Status).await?;
        let clean = summary.error.is_none();
        if let Some(names) = names.filter(|_| !clean) {
            // The server checks every assignment of a `SET` before it makes
            // any: the refused check set no charset either, and the
            // connection (which stays with its client, see the callers)
            // would answer in the login's instead of its key's.
            let summary = self.run_query(format!("SET {names}").as_bytes()).await?;
            if let Some(err) = summary.error {
                return Err(BackendError::Io(io::Error::other(format!(
                    "SET {names} after a reset refused: {}",
                    String::from_utf8_lossy(&err.message)
                ))));
            }
        }
        self.tracks_state = track && clean;
        Ok(clean)
    }

    /// `NAMES ...` of the key's charset when the connection was switched
    /// from the one it logged in with (only ever to charsets Funnel can
    /// name): what gives a reset session its key's charset back.
    fn switched_names(&self) -> Option<String> {
        if self.key.charset == self.login_charset {
            return None;
        }
        names_clause(self.key.charset)
    }

    /// Moves the connection to pool key `key` (one that
    /// [`PoolKey::switches_to`] allows), so the pool can serve a client of
    /// that key without closing it and opening another. A charset is given
    /// with `SET NAMES`, which sets what a login with it sets (the charset
    /// group). The multi-statement flag needs nothing here: the session's
    /// sync gives the connection its client's option (`COM_SET_OPTION`),
    /// as after a client's own. False when the server refused the `SET
    /// NAMES` (the connection is as it was).
    pub async fn switch_key(&mut self, key: PoolKey) -> Result<bool, BackendError> {
        if key.charset != self.key.charset {
            let Some(names) = names_clause(key.charset) else {
                return Ok(false);
            };
            let summary = self.run_query(format!("SET {names}").as_bytes()).await?;
            if summary.error.is_some() {
                return Ok(false);
            }
            self.vars.forget_charset_group();
        }
        self.key = key;
        Ok(true)
    }

    /// What Funnel records of the server's session, after the server
    /// reset it (`COM_RESET_CONNECTION`, Funnel's or a client's): its
    /// statements are closed (with their cursors and long data), its
    /// variables are the server's defaults, and nothing unseen is left.
    /// The schema stays, as on the server. Tracking is off again until
    /// [`Self::enable_state_tracking`].
    pub fn forget_session_state(&mut self) {
        self.stmts.clear();
        self.vars
            .reset_by_server(self.key.caps.contains(Capabilities::CLIENT_IGNORE_SPACE));
        self.user_vars.clear();
        self.untracked_state = false;
        self.needs_reset = false;
        // The reset rolled back any transaction and its savepoints: one
        // that may have been open after a failure with autocommit off
        // (its ERR said nothing) is not any more.
        self.tx_unknown = false;
        self.savepoint_outside_tx = false;
    }

    /// [`BackendConnection::run`] of one text query (`COM_QUERY`) of Funnel's own.
    pub async fn run_query(&mut self, sql: &[u8]) -> Result<ResponseSummary, BackendError> {
        let mut p = BytesMut::with_capacity(sql.len() + 1);
        funnel_protocol::command::write_query(&mut p, sql);
        self.run(&p, Expect::Results).await
    }

    /// Sends one small command and reads its whole response, discarding
    /// rows. Used for Funnel's own statements (schema and state changes).
    pub async fn run(&mut self, payload: &[u8], expect: Expect) -> Result<ResponseSummary, BackendError> {
        self.run_capturing(payload, expect, None).await
    }

    /// Like [`BackendConnection::run`], appending the raw response packets
    /// (headers included) to `raw` when given. Only for small responses,
    /// such as a prepare's metadata.
    pub async fn run_capturing(
        &mut self,
        payload: &[u8],
        expect: Expect,
        raw: Option<&mut Vec<u8>>,
    ) -> Result<ResponseSummary, BackendError> {
        let deadline = Some(self.own_deadline.get());
        self.run_capturing_within(deadline, payload, expect, raw).await
    }

    /// [`BackendConnection::run_capturing`] under `deadline` instead of the
    /// connection's own one (`None`: none, as for a client's command when
    /// `pool.query_timeout` is off).
    pub async fn run_capturing_within(
        &mut self,
        deadline: Option<Deadline>,
        payload: &[u8],
        expect: Expect,
        raw: Option<&mut Vec<u8>>,
    ) -> Result<ResponseSummary, BackendError> {
        let Some(deadline) = deadline else {
            return self.exchange(payload, expect, raw).await;
        };
        match rt::timeout(deadline.limit, self.exchange(payload, expect, raw)).await {
            Some(result) => result,
            None => {
                self.unanswered = true;
                self.kill_on_discard = deadline.key == Deadline::QUERY_KEY;
                Err(BackendError::Unanswered(deadline))
            }
        }
    }

    async fn exchange(
        &mut self,
        payload: &[u8],
        expect: Expect,
        mut raw: Option<&mut Vec<u8>>,
    ) -> Result<ResponseSummary, BackendError> {
        send_packet(&mut self.stream, 0, payload).await?;
        let mut tracker = ResponseTracker::new(expect, self.caps, self.status);
        loop {
            let (seq, p) = read_packet(&mut self.stream, &mut self.buf).await?;
            if let Some(raw) = raw.as_deref_mut() {
                raw.extend_from_slice(&(p.len() as u32).to_le_bytes()[..3]);
                raw.push(seq);
                raw.extend_from_slice(&p);
            }
            if tracker.feed(&p, p.len())? == Event::Done {
                break;
            }
        }
        let summary = tracker.into_summary();
        self.status = summary.status;
        // Any command of Funnel's own, a read-back or a prepare as much
        // as a client's statement (`Session::relay_and_settle`).
        self.note_error(summary.error.as_ref());
        Ok(summary)
    }

    /// Runs a small text query and returns its column names and text rows
    /// (the health monitor's `@@read_only` and replica status, a session's
    /// check of the named locks it holds), with or without
    /// `CLIENT_DEPRECATE_EOF`.
    pub async fn query_rows(&mut self, sql: &str) -> Result<(Vec<String>, TextRows), BackendError> {
        let (columns, rows) = self.query_columns(sql).await?;
        Ok((columns.into_iter().map(|c| c.0).collect(), rows))
    }

    /// As [`Self::query_rows`], with each column's type byte beside its
    /// name (a value read back must be replayed as a number or a string).
    pub async fn query_columns(&mut self, sql: &str) -> Result<(Vec<(String, u8)>, TextRows), BackendError> {
        let (defs, rows) = self.query_definitions(sql).await?;
        let columns = defs
            .into_iter()
            .map(|d| (String::from_utf8_lossy(&d.name).into_owned(), d.column_type))
            .collect();
        Ok((columns, rows))
    }

    /// As [`Self::query_rows`], with each column's whole definition (its
    /// flags say whether an integer is unsigned).
    pub async fn query_definitions(
        &mut self,
        sql: &str,
    ) -> Result<(Vec<funnel_protocol::resultset::ColumnDefinition>, TextRows), BackendError> {
        let deadline = self.own_deadline.get();
        self.query_definitions_within(deadline, sql).await
    }

    /// [`Self::query_rows`] under `deadline` instead of the connection's
    /// own one (a statement that waits on the server, such as
    /// `MASTER_GTID_WAIT`, for longer than that allows).
    pub async fn query_rows_within(
        &mut self,
        deadline: Deadline,
        sql: &str,
    ) -> Result<(Vec<String>, TextRows), BackendError> {
        let (defs, rows) = self.query_definitions_within(deadline, sql).await?;
        let names = defs
            .into_iter()
            .map(|d| String::from_utf8_lossy(&d.name).into_owned())
            .collect();
        Ok((names, rows))
    }

    async fn query_definitions_within(
        &mut self,
        deadline: Deadline,
        sql: &str,
    ) -> Result<(Vec<funnel_protocol::resultset::ColumnDefinition>, TextRows), BackendError> {
        let mut p = BytesMut::with_capacity(sql.len() + 1);
        funnel_protocol::command::write_query(&mut p, sql.as_bytes());
        let mut raw = Vec::new();
        let summary = self
            .run_capturing_within(Some(deadline), &p, Expect::Results, Some(&mut raw))
            .await?;
        if let Some(err) = summary.error {
            return Err(BackendError::Refused(err));
        }
        let mut packets = Vec::new();
        let mut at = 0;
        while at + 4 <= raw.len() {
            let len = usize::from(raw[at]) | usize::from(raw[at + 1]) << 8 | usize::from(raw[at + 2]) << 16;
            packets.push(&raw[at + 4..at + 4 + len]);
            at += 4 + len;
        }
        let Some(first) = packets.first().filter(|p| p.first() != Some(&0x00)) else {
            return Ok((Vec::new(), Vec::new()));
        };
        let n = funnel_protocol::wire::Reader::new(first).lenenc_int("column count")? as usize;
        let mut columns = Vec::with_capacity(n);
        for def in packets.iter().skip(1).take(n) {
            columns.push(funnel_protocol::resultset::ColumnDefinition::parse(
                def, self.caps,
            )?);
        }
        let deprecate_eof = self.caps.contains(Capabilities::CLIENT_DEPRECATE_EOF);
        // Without CLIENT_DEPRECATE_EOF an EOF follows the column definitions.
        let first_row = n + 1 + usize::from(!deprecate_eof);
        let mut rows = Vec::new();
        for row in packets.iter().skip(first_row) {
            if funnel_protocol::response::is_result_terminator(row, deprecate_eof) {
                break;
            }
            let values = funnel_protocol::resultset::parse_text_row(row, n)?;
            rows.push(
                values
                    .into_iter()
                    .map(|v| v.map(|b| String::from_utf8_lossy(&b).into_owned()))
                    .collect(),
            );
        }
        Ok((columns, rows))
    }

    /// Writes a client's command (framed). Writing is part of the command:
    /// `deadline` (its `pool.query_timeout`, if any) bounds it as it bounds
    /// the reply, since a server that stopped reading takes only what the
    /// kernel's buffers hold. Polled once first, so a write the socket
    /// takes at once (nearly every command) arms no timer.
    pub async fn send_command(
        &mut self,
        bytes: &[u8],
        deadline: Option<Deadline>,
    ) -> Result<(), BackendError> {
        let Some(deadline) = deadline else {
            return Ok(self.stream.write_all(bytes).await?);
        };
        let sent = {
            let mut write = std::pin::pin!(self.stream.write_all(bytes));
            match futures_lite::future::poll_once(&mut write).await {
                Some(done) => Some(done),
                None => rt::timeout(deadline.limit, write).await,
            }
        };
        match sent {
            Some(sent) => Ok(sent?),
            None => {
                self.unanswered = true;
                Err(BackendError::Unanswered(deadline))
            }
        }
    }

    /// Sends a command that has no response (`COM_STMT_CLOSE`).
    /// A server that stopped reading fills the socket's buffers: the write
    /// has the connection's deadline too.
    pub async fn send_without_response(&mut self, payload: &[u8]) -> Result<(), BackendError> {
        let deadline = self.own_deadline.get();
        match rt::timeout(deadline.limit, send_packet(&mut self.stream, 0, payload)).await {
            Some(sent) => Ok(sent?),
            None => {
                self.unanswered = true;
                Err(BackendError::Unanswered(deadline))
            }
        }
    }

    /// Marks the connection `server_closes` when `err` is one the server
    /// closes it after ([`closes_after_error`]).
    pub fn note_error(&mut self, err: Option<&ErrPacket>) {
        self.server_closes |= err.is_some_and(|e| closes_after_error(e.code, self.mariadb));
    }

    /// True when the connection can serve another client: nothing unread
    /// (nor late: see `unanswered`, `late_kill`), not closing
    /// (`server_closes`), no transaction open, and autocommit on or off by a `SET` Funnel
    /// tracked (the next session's sync sets it to that session's value;
    /// without a transaction open, autocommit off leaves nothing behind).
    pub fn is_reusable(&self) -> bool {
        self.buf.is_empty()
            && !self.unanswered
            && !self.late_kill
            && !self.server_closes
            && !self.may_be_in_transaction()
            && !self.autocommit_off_untracked()
    }

    /// True when a transaction is open here, or may be (see `tx_unknown`).
    pub fn may_be_in_transaction(&self) -> bool {
        self.status.in_transaction() || self.tx_unknown || self.savepoint_outside_tx
    }

    /// Records the status flags a client's command left. An ERR carries
    /// none (the tracker keeps the last ones seen), so after a failure with
    /// autocommit off whether a transaction began is unknown.
    pub fn note_reply_status(&mut self, status: StatusFlags, failed: bool) {
        self.tx_unknown =
            failed && (self.tx_unknown || !status.contains(StatusFlags::SERVER_STATUS_AUTOCOMMIT));
        if status.in_transaction() || status.contains(StatusFlags::SERVER_STATUS_AUTOCOMMIT) {
            self.savepoint_outside_tx = false;
        }
        self.status = status;
    }

    /// True when the server says autocommit is off and no tracked `SET`
    /// says so: Funnel could not put it back for another session.
    pub fn autocommit_off_untracked(&self) -> bool {
        !self.status.contains(StatusFlags::SERVER_STATUS_AUTOCOMMIT) && !self.vars.sets_autocommit_off()
    }

    /// True when the server has sent something (or closed) while the
    /// connection sat idle: such a connection is no longer usable.
    pub fn server_spoke_while_idle(&self) -> bool {
        !self.buf.is_empty() || self.stream.has_pending_input()
    }
}

/// Reads one whole packet (login and Funnel's own commands only).
async fn read_packet(stream: &mut Stream, buf: &mut IoBuf) -> Result<(u8, Vec<u8>), BackendError> {
    read_whole_packet(stream, buf, SMALL_PACKET_LIMIT)
        .await
        .map_err(|e| match e {
            ReadError::Io(e) => BackendError::Io(e),
            ReadError::TooLarge { len, .. } => {
                BackendError::Protocol(funnel_protocol::ProtocolError::PacketTooLarge {
                    len,
                    max: SMALL_PACKET_LIMIT,
                })
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(code: u16) -> BackendError {
        BackendError::Refused(ErrPacket::new(code, "HY000", "x"))
    }

    /// 4031 closes the connection on MySQL (the idle timeout) only: on
    /// MariaDB it is a `CREATE TRIGGER ... FOLLOWS nosuch` (checked on
    /// 10.11: the connection lives on), which would cost a reconnect each.
    #[test]
    fn pool_errors_that_close_the_connection_by_server() {
        for code in [1053, 1153, 1156, 1161, 1927] {
            assert!(
                closes_after_error(code, true) && closes_after_error(code, false),
                "{code}"
            );
        }
        assert!(closes_after_error(4031, false));
        assert!(!closes_after_error(4031, true));
        for code in [1062, 1317, 1064, 4152] {
            assert!(
                !closes_after_error(code, true) && !closes_after_error(code, false),
                "{code}"
            );
        }
    }

    #[test]
    fn pool_open_failures_of_the_key_alone_are_told_apart() {
        // The handshake charset and the capabilities differ between keys.
        for code in [1231, 1115, 1273] {
            assert!(refused(code).key_specific(), "{code}");
        }
        assert!(BackendError::LacksCapabilities(Capabilities::CLIENT_DEPRECATE_EOF).key_specific());
        // The server's or the backend account's, whatever the key.
        for code in [1045, 1040, 1129, 1203, 1226, 1130] {
            assert!(!refused(code).key_specific(), "{code}");
        }
        assert!(!BackendError::Io(io::Error::from(io::ErrorKind::ConnectionRefused)).key_specific());
        assert!(
            !BackendError::Auth("tls is configured but the server does not offer TLS".into()).key_specific()
        );
    }
}
