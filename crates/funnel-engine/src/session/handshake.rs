//! The server side of the connection phase: greeting, login check against
//! Funnel's own users, and the auth switch to `mysql_native_password` for
//! clients that started with another plugin.

use std::io;
use std::rc::Rc;
use std::sync::Arc;

use bytes::BytesMut;
use funnel_protocol::auth::{
    caching_sha2, AuthSwitchRequest, NativePasswordHash, AUTH_MORE_DATA, CACHING_SHA2_PASSWORD,
    MYSQL_NATIVE_PASSWORD, SCRAMBLE_LEN,
};
use funnel_protocol::handshake::{ClientHello, HandshakeResponse41, HandshakeV10};
use funnel_protocol::{Capabilities, StatusFlags};
use rand::Rng;

use crate::error::EngineError;
use crate::ids::ClientId;
use crate::iobuf::IoBuf;
use crate::packet_io::{read_whole_packet, send_packet, ReadError};
use crate::rt::Stream;
use crate::session::users::{UserEntry, UserTable};

/// What Funnel offers every client. `CLIENT_MYSQL` is set, so MariaDB
/// clients speak the common dialect, unless [`offered_caps`] adds MariaDB
/// extensions (which clears it). TLS is offered where configured;
/// compression (`CLIENT_COMPRESS`, see [`crate::compress`]) always, and
/// only the client's side of Funnel compresses.
pub const FUNNEL_CAPS: Capabilities = Capabilities(
    Capabilities::CLIENT_MYSQL.0
        | Capabilities::CLIENT_FOUND_ROWS.0
        | Capabilities::CLIENT_LONG_FLAG.0
        | Capabilities::CLIENT_CONNECT_WITH_DB.0
        | Capabilities::CLIENT_NO_SCHEMA.0
        | Capabilities::CLIENT_LOCAL_FILES.0
        | Capabilities::CLIENT_IGNORE_SPACE.0
        | Capabilities::CLIENT_PROTOCOL_41.0
        | Capabilities::CLIENT_INTERACTIVE.0
        | Capabilities::CLIENT_TRANSACTIONS.0
        | Capabilities::CLIENT_SECURE_CONNECTION.0
        | Capabilities::CLIENT_MULTI_STATEMENTS.0
        | Capabilities::CLIENT_MULTI_RESULTS.0
        | Capabilities::CLIENT_PS_MULTI_RESULTS.0
        | Capabilities::CLIENT_PLUGIN_AUTH.0
        | Capabilities::CLIENT_CONNECT_ATTRS.0
        | Capabilities::CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA.0
        | Capabilities::CLIENT_SESSION_TRACK.0
        | Capabilities::CLIENT_DEPRECATE_EOF.0
        | Capabilities::CLIENT_COMPRESS.0,
);

/// The MariaDB extended capabilities Funnel can carry: bulk operations
/// (`COM_STMT_BULK_EXECUTE`), extended column metadata (the type a
/// column was declared with, `json`, `uuid`, ..., which connectors read
/// to return a JSON column as an object), and the metadata cache (an
/// execute leaves out the column definitions the client has; Funnel
/// keeps track of them per client, see [`crate::column_cache`]).
/// Progress reports are not carried: they come inside replies.
pub const EXTENDED_CAPS: Capabilities = Capabilities(
    Capabilities::MARIADB_CLIENT_STMT_BULK_OPERATIONS.0
        | Capabilities::MARIADB_CLIENT_EXTENDED_METADATA.0
        | Capabilities::MARIADB_CLIENT_CACHE_METADATA.0,
);

/// What Funnel offers clients: [`FUNNEL_CAPS`], plus those of
/// [`EXTENDED_CAPS`] in `extended` (what its backend offers), which travel
/// only with `CLIENT_MYSQL` clear.
pub fn offered_caps(extended: Capabilities) -> Capabilities {
    let mut caps = FUNNEL_CAPS | extended.intersect(EXTENDED_CAPS);
    if caps.upper() != 0 {
        caps.set(Capabilities::CLIENT_MYSQL, false);
    }
    caps
}

/// Largest packet accepted before login completes.
const HANDSHAKE_PACKET_LIMIT: usize = 64 * 1024;

/// A client that logged in.
#[derive(Debug)]
pub struct Login {
    /// The account.
    pub user: Rc<UserEntry>,
    /// Capabilities both sides have.
    pub caps: Capabilities,
    /// The collation the client asked for.
    pub charset: u8,
    /// The schema it asked for (or the user's default).
    pub schema: Option<Vec<u8>>,
    /// Sequence id of Funnel's next packet (the final OK or ERR).
    pub next_seq: u8,
    /// The scramble of this connection (`COM_CHANGE_USER` answers it again).
    pub scramble: Vec<u8>,
    /// The connection switched to TLS.
    pub secure: bool,
}

/// Why a login did not complete.
#[derive(Debug)]
pub enum LoginError {
    /// The socket failed or the client left: nothing more can be sent.
    Io(io::Error),
    /// Refuse with this error, sent with this sequence id.
    Refuse(EngineError, u8),
}

impl From<io::Error> for LoginError {
    fn from(e: io::Error) -> Self {
        LoginError::Io(e)
    }
}

/// A fresh scramble of printable bytes (NUL never appears, since the
/// greeting NUL-terminates it).
pub fn new_scramble() -> Vec<u8> {
    let mut rng = rand::thread_rng();
    (0..SCRAMBLE_LEN).map(|_| rng.gen_range(b'!'..=b'~')).collect()
}

/// Runs the connection phase up to (not including) the final OK.
#[allow(clippy::too_many_arguments)]
pub async fn login(
    client: &mut Stream,
    buf: &mut IoBuf,
    users: &UserTable,
    id: ClientId,
    server_version: &[u8],
    charset: u8,
    extended: Capabilities,
    peer_host: &str,
    tls: Option<&Arc<rustls::ServerConfig>>,
) -> Result<Login, LoginError> {
    let offered = offered_caps(extended);
    let scramble = new_scramble();
    let greeting = HandshakeV10 {
        server_version: server_version.to_vec(),
        connection_id: id.0,
        auth_plugin_data: scramble.clone(),
        capabilities: if tls.is_some() {
            offered | Capabilities::CLIENT_SSL
        } else {
            offered
        },
        charset,
        status: StatusFlags::SERVER_STATUS_AUTOCOMMIT,
        auth_plugin_name: MYSQL_NATIVE_PASSWORD.as_bytes().to_vec(),
    };
    let mut payload = BytesMut::new();
    greeting.write(&mut payload);
    send(client, 0, &payload).await?;

    let (mut seq, mut packet) = read_packet(client, buf).await?;
    if let (Ok(ClientHello::SslRequest { .. }), Some(config)) = (HandshakeResponse41::parse(&packet), tls) {
        // Bytes read with the SSLRequest are the start of the client's TLS
        // hello (clients send it without waiting): they go to TLS, which
        // authenticates every handshake byte, never to the MySQL protocol.
        let early = buf.bytes().to_vec();
        buf.clear();
        client.start_tls(config.clone(), &early).await?;
        (seq, packet) = read_packet(client, buf).await?;
    }
    let resp = match HandshakeResponse41::parse(&packet) {
        Ok(ClientHello::Response(r)) => r,
        Ok(ClientHello::SslRequest { .. }) => {
            return Err(LoginError::Refuse(
                EngineError::BadHandshake("TLS was not offered by this Funnel".into()),
                seq.wrapping_add(1),
            ))
        }
        Err(e) => {
            return Err(LoginError::Refuse(
                EngineError::BadHandshake(e.to_string()),
                seq.wrapping_add(1),
            ))
        }
    };
    let caps = resp.capabilities.intersect(offered);
    let mut next = seq.wrapping_add(1);
    let mut auth_response = resp.auth_response.clone();
    let user = users.get(&resp.username).cloned();
    let plugin = resp.auth_plugin_name.clone().unwrap_or_default();
    let sha2 = plugin == CACHING_SHA2_PASSWORD.as_bytes();
    // MySQL 8 clients start with caching_sha2_password: Funnel knows
    // SHA256(SHA256(pw)) for clear-text users, so the fast path works.
    let fast_ok = sha2
        && user.as_ref().is_some_and(|u| {
            let empty = u.hash == NativePasswordHash::Empty;
            u.sha2
                .as_ref()
                .is_some_and(|h| h.verify_scramble(&scramble, &auth_response, empty))
        });
    // Every other case takes the same steps whether the user exists or not,
    // so the replies do not tell which user names are known.
    let verified = match &user {
        _ if fast_ok => {
            send(client, next, &[AUTH_MORE_DATA, caching_sha2::FAST_AUTH_SUCCESS]).await?;
            next = next.wrapping_add(1);
            true
        }
        // Full authentication sends the clear password, so only over TLS.
        _ if sha2 && client.is_tls() => {
            send(
                client,
                next,
                &[AUTH_MORE_DATA, caching_sha2::PERFORM_FULL_AUTHENTICATION],
            )
            .await?;
            let (s, clear) = read_packet(client, buf).await?;
            next = s.wrapping_add(1);
            let clear = clear.strip_suffix(&[0]).unwrap_or(&clear);
            auth_response = clear.to_vec();
            user.as_ref()
                .is_some_and(|u| NativePasswordHash::from_password(clear) == u.hash)
        }
        _ => {
            let native = plugin.is_empty() || plugin == MYSQL_NATIVE_PASSWORD.as_bytes();
            if !native && caps.contains(Capabilities::CLIENT_PLUGIN_AUTH) {
                // Ask for mysql_native_password with the same scramble.
                (auth_response, next) = switch_to_native(client, buf, next, &scramble).await?;
            }
            user.as_ref()
                .is_some_and(|u| u.hash.verify(&scramble, &auth_response))
        }
    };
    let user_name = String::from_utf8_lossy(&resp.username).into_owned();
    // A host the user may not log in from is refused as a wrong password
    // is, as the server refuses an account that has no entry for that
    // host: the reply does not tell which it was.
    let verified = verified && user.as_ref().is_some_and(|u| u.may_connect_from(peer_host));
    let (Some(user), true) = (user, verified) else {
        return Err(LoginError::Refuse(
            EngineError::AccessDenied {
                user: user_name,
                host: peer_host.to_string(),
                using_password: !(auth_response.is_empty() || auth_response == [0]),
            },
            next,
        ));
    };
    if user.require_tls && !client.is_tls() {
        return Err(LoginError::Refuse(EngineError::InsecureTransport, next));
    }
    if let Some(name) = funnel_protocol::charset::refused_client_charset(u16::from(resp.charset)) {
        // Refused here, as the server would: a backend login with it fails,
        // and its failures would hold back other clients' connection opens.
        return Err(LoginError::Refuse(EngineError::ClientCharset(name), next));
    }
    let schema = resp.database.clone().or_else(|| user.default_schema.clone());
    Ok(Login {
        user,
        caps,
        charset: resp.charset,
        schema,
        next_seq: next,
        scramble,
        secure: client.is_tls(),
    })
}

/// Re-authenticates for `COM_CHANGE_USER`: the answer is to the
/// connection's original scramble; a client that used another plugin is
/// asked to switch to `mysql_native_password` with a fresh one. Returns the
/// account and the sequence id of Funnel's final OK or ERR.
pub async fn change_user(
    client: &mut Stream,
    buf: &mut IoBuf,
    users: &UserTable,
    request: &funnel_protocol::command::ChangeUser<'_>,
    scramble: &[u8],
    peer_host: &str,
) -> Result<(Rc<UserEntry>, u8), LoginError> {
    let mut next = 1u8;
    let mut answer = request.auth_response.to_vec();
    let mut scramble = scramble.to_vec();
    let native = request
        .auth_plugin_name
        .is_none_or(|p| p == MYSQL_NATIVE_PASSWORD.as_bytes());
    if !native {
        scramble = new_scramble();
        (answer, next) = switch_to_native(client, buf, next, &scramble).await?;
    }
    let user = users
        .get(request.username)
        .filter(|u| u.hash.verify(&scramble, &answer) && u.may_connect_from(peer_host));
    match user {
        Some(u) => Ok((u.clone(), next)),
        None => Err(LoginError::Refuse(
            EngineError::AccessDenied {
                user: String::from_utf8_lossy(request.username).into_owned(),
                host: peer_host.to_string(),
                using_password: !answer.is_empty(),
            },
            next,
        )),
    }
}

async fn send(client: &mut Stream, seq: u8, payload: &[u8]) -> io::Result<()> {
    send_packet(client, seq, payload).await
}

async fn read_packet(client: &mut Stream, buf: &mut IoBuf) -> Result<(u8, Vec<u8>), LoginError> {
    read_whole_packet(client, buf, HANDSHAKE_PACKET_LIMIT)
        .await
        .map_err(|e| match e {
            ReadError::Io(e) => LoginError::Io(e),
            ReadError::TooLarge { seq, .. } => LoginError::Refuse(
                EngineError::BadHandshake("handshake packet too large".into()),
                seq.wrapping_add(1),
            ),
        })
}

/// Asks the client to answer `scramble` with `mysql_native_password`
/// (`AuthSwitchRequest`, sequence id `seq`); returns its answer and the
/// sequence id of Funnel's next packet.
async fn switch_to_native(
    client: &mut Stream,
    buf: &mut IoBuf,
    seq: u8,
    scramble: &[u8],
) -> Result<(Vec<u8>, u8), LoginError> {
    let mut p = BytesMut::new();
    AuthSwitchRequest {
        plugin_name: MYSQL_NATIVE_PASSWORD.as_bytes().to_vec(),
        plugin_data: scramble.to_vec(),
    }
    .write(&mut p);
    send(client, seq, &p).await?;
    let (seq, answer) = read_packet(client, buf).await?;
    Ok((answer, seq.wrapping_add(1)))
}
