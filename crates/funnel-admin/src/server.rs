//! The admin listener: MySQL protocol over blocking sockets, one thread per
//! admin connection (admin traffic is light and must never run on a core).

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use funnel_engine::ProxyHandle;
use funnel_protocol::auth::{AuthSwitchRequest, NativePasswordHash, MYSQL_NATIVE_PASSWORD};
use funnel_protocol::command::Command;
use funnel_protocol::framing::{write_packet, PacketDecoder};
use funnel_protocol::handshake::{ClientHello, HandshakeResponse41, HandshakeV10};
use funnel_protocol::response::ErrPacket;
use funnel_protocol::{Capabilities, StatusFlags};
use rand::Rng;

use crate::commands;
use crate::conn_slots::{ConnSlot, ConnSlots, Deadline, ACCEPT_BACKOFF};
use crate::resultset::{write_reply, Reply};

/// What admin commands work with.
pub struct AdminContext {
    /// The running Funnel's control plane.
    pub handle: ProxyHandle,
    /// The configuration file, for `RELOAD` (none when started from a struct).
    pub config_path: Option<PathBuf>,
    /// When Funnel started (for rates).
    pub started: Instant,
}

/// A running admin listener.
pub struct AdminServer {
    addr: SocketAddr,
}

/// Capabilities the admin listener offers: the plain 4.1 dialect.
const ADMIN_CAPS: Capabilities = Capabilities(
    Capabilities::CLIENT_MYSQL.0
        | Capabilities::CLIENT_LONG_FLAG.0
        | Capabilities::CLIENT_CONNECT_WITH_DB.0
        | Capabilities::CLIENT_PROTOCOL_41.0
        | Capabilities::CLIENT_TRANSACTIONS.0
        | Capabilities::CLIENT_SECURE_CONNECTION.0
        | Capabilities::CLIENT_MULTI_RESULTS.0
        | Capabilities::CLIENT_PLUGIN_AUTH.0
        | Capabilities::CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA.0
        | Capabilities::CLIENT_CONNECT_ATTRS.0,
);

/// How long an admin connection may sit silent.
const IDLE_LIMIT: Duration = Duration::from_secs(3600);

/// How long a connection has for its whole login.
const LOGIN_LIMIT: Duration = Duration::from_secs(10);

/// The longest packet the admin listener reads (admin statements are
/// short); `SELECT @@max_allowed_packet` reports it.
pub const MAX_PACKET: usize = 1 << 20;

/// How long the rest of a refused, oversized packet is read (and thrown
/// away) after the ERR: a client still writing it would otherwise get a
/// reset instead of the ERR.
const DISCARD_LIMIT: Duration = Duration::from_secs(5);

/// A packet over [`MAX_PACKET`] arrived.
#[derive(Debug)]
struct TooLarge;

impl std::fmt::Display for TooLarge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "a packet over {MAX_PACKET} bytes")
    }
}

impl std::error::Error for TooLarge {}

impl AdminServer {
    /// Listens on `listen` for the admin user `user` with `secret`.
    pub fn start(
        listen: SocketAddr,
        user: String,
        secret: NativePasswordHash,
        ctx: AdminContext,
    ) -> io::Result<AdminServer> {
        let listener = TcpListener::bind(listen)?;
        let addr = listener.local_addr()?;
        let shared = Arc::new((user, secret, ctx));
        thread::Builder::new()
            .name("funnel-admin".into())
            .spawn(move || {
                let slots = ConnSlots::default();
                for conn in listener.incoming() {
                    let Ok(mut conn) = conn else {
                        thread::sleep(ACCEPT_BACKOFF);
                        continue;
                    };
                    let Some(slot) = slots.take(&conn) else {
                        // As a server at max_connections answers instead of a greeting.
                        let mut out = BytesMut::new();
                        ErrPacket::new(1040, "08004", "Too many connections").write(&mut out);
                        let mut framed = BytesMut::new();
                        write_packet(&mut framed, 0, &out);
                        let _ = conn.write_all(&framed);
                        continue;
                    };
                    let shared = shared.clone();
                    let _ = thread::Builder::new()
                        .name("funnel-admin-conn".into())
                        .spawn(move || {
                            let (user, secret, ctx) = &*shared;
                            if let Err(e) = serve(conn, &slot, user, secret, ctx) {
                                tracing::debug!(error = %e, "admin connection ended");
                            }
                        });
                }
            })?;
        Ok(AdminServer { addr })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }
}

struct Wire {
    stream: TcpStream,
    decoder: PacketDecoder,
    inbox: BytesMut,
    /// Until the login ends: when it must have ended.
    login_until: Option<Instant>,
}

impl Wire {
    fn read(&mut self) -> io::Result<(u8, Vec<u8>)> {
        loop {
            match self.decoder.decode(&mut self.inbox) {
                Ok(Some(p)) => return Ok((p.last_seq, p.payload.to_vec())),
                Ok(None) => {}
                Err(funnel_protocol::ProtocolError::PacketTooLarge { .. }) => {
                    return Err(io::Error::new(io::ErrorKind::InvalidData, TooLarge))
                }
                Err(e) => return Err(io::Error::new(io::ErrorKind::InvalidData, e.to_string())),
            }
            if let Some(until) = self.login_until {
                Deadline::arm(&self.stream, until)?;
            }
            let mut chunk = [0u8; 8192];
            let n = self.stream.read(&mut chunk)?;
            if n == 0 {
                return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "client closed"));
            }
            self.inbox.extend_from_slice(&chunk[..n]);
        }
    }

    fn send(&mut self, seq: u8, payload: &[u8]) -> io::Result<()> {
        let mut out = BytesMut::new();
        write_packet(&mut out, seq, payload);
        self.stream.write_all(&out)
    }
}

fn serve(
    stream: TcpStream,
    slot: &ConnSlot,
    user: &str,
    secret: &NativePasswordHash,
    ctx: &AdminContext,
) -> io::Result<()> {
    stream.set_write_timeout(Some(LOGIN_LIMIT))?;
    stream.set_nodelay(true)?;
    let peer = stream.peer_addr().map(|a| a.ip().to_string()).unwrap_or_default();
    let mut w = Wire {
        stream,
        decoder: PacketDecoder::new(MAX_PACKET),
        inbox: BytesMut::new(),
        login_until: Some(Instant::now() + LOGIN_LIMIT),
    };
    let served = serve_logged_in(&mut w, slot, user, secret, ctx, &peer);
    if let Err(e) = &served {
        if e.get_ref().is_some_and(|inner| inner.is::<TooLarge>()) {
            refuse_too_large(&mut w);
        }
    }
    served
}

/// Answers a packet over [`MAX_PACKET`] as a server answers one over its
/// `max_allowed_packet` (ERR 1153, then the connection ends), reading
/// what the client still sends of it for a while so that its write
/// completes and it reads the ERR rather than a reset.
fn refuse_too_large(w: &mut Wire) {
    let mut out = BytesMut::new();
    ErrPacket::new(
        1153,
        "08S01",
        format!("Got a packet bigger than 'max_allowed_packet' bytes (the admin interface reads at most {MAX_PACKET})"),
    )
    .write(&mut out);
    // A command's reply is packet 1; the packet's own sequence id is
    // unknown past the refused header, and only commands get this far
    // with more than a few hundred bytes.
    if w.send(1, &out).is_err() {
        return;
    }
    let _ = w.stream.shutdown(std::net::Shutdown::Write);
    let until = Instant::now() + DISCARD_LIMIT;
    let mut sink = [0u8; 8192];
    while Deadline::arm(&w.stream, until).is_ok() {
        match w.stream.read(&mut sink) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
    }
}

fn serve_logged_in(
    w: &mut Wire,
    slot: &ConnSlot,
    user: &str,
    secret: &NativePasswordHash,
    ctx: &AdminContext,
    peer: &str,
) -> io::Result<()> {
    let caps = login(w, user, secret, peer)?;
    w.login_until = None;
    // Logged in: an operator's session is never cut off to make room.
    slot.settle();
    w.stream.set_read_timeout(Some(IDLE_LIMIT))?;
    loop {
        let (_, payload) = w.read()?;
        let reply = match Command::parse(&payload, caps) {
            Ok(Command::Quit) => return Ok(()),
            Ok(Command::Ping) | Ok(Command::InitDb(_)) => Reply::Ok(String::new()),
            Ok(Command::Query(sql)) => commands::run(&String::from_utf8_lossy(sql), ctx),
            Ok(other) => Reply::Err(ErrPacket::new(
                1047,
                "08S01",
                format!("the admin interface answers queries only, not {other:?}"),
            )),
            Err(e) => Reply::Err(ErrPacket::new(1047, "08S01", format!("unknown command: {e}"))),
        };
        let mut out = BytesMut::new();
        write_reply(&mut out, &reply, caps);
        w.stream.write_all(&out)?;
        if let Reply::Ok(msg) = &reply {
            if msg.starts_with(commands::SHUTTING_DOWN) {
                return Ok(());
            }
        }
    }
}

/// The log budget of refused admin logins, shared by the connection threads.
fn refusals_log() -> &'static std::sync::Mutex<funnel_engine::lograte::LogRate> {
    static LOG: std::sync::OnceLock<std::sync::Mutex<funnel_engine::lograte::LogRate>> =
        std::sync::OnceLock::new();
    LOG.get_or_init(Default::default)
}

/// Greeting, credentials, OK; returns the negotiated capabilities.
fn login(w: &mut Wire, user: &str, secret: &NativePasswordHash, peer: &str) -> io::Result<Capabilities> {
    let mut rng = rand::thread_rng();
    let scramble: Vec<u8> = (0..20).map(|_| rng.gen_range(b'!'..=b'~')).collect();
    let mut p = BytesMut::new();
    HandshakeV10 {
        server_version: format!("5.5.5-funnel-admin-{}", env!("CARGO_PKG_VERSION")).into_bytes(),
        connection_id: 1,
        auth_plugin_data: scramble.clone(),
        capabilities: ADMIN_CAPS,
        charset: 45,
        status: StatusFlags::SERVER_STATUS_AUTOCOMMIT,
        auth_plugin_name: MYSQL_NATIVE_PASSWORD.as_bytes().to_vec(),
    }
    .write(&mut p);
    w.send(0, &p)?;
    let (seq, payload) = w.read()?;
    let hello = match HandshakeResponse41::parse(&payload) {
        Ok(hello) => hello,
        Err(e) => {
            // As a server answers a login it cannot read: say so, then close.
            let mut out = BytesMut::new();
            ErrPacket::new(1043, "08S01", "Bad handshake").write(&mut out);
            let _ = w.send(seq.wrapping_add(1), &out);
            return Err(io::Error::new(io::ErrorKind::InvalidData, e.to_string()));
        }
    };
    let ClientHello::Response(resp) = hello else {
        let err = ErrPacket::new(
            1043,
            "08S01",
            "Bad handshake: TLS is not offered on the admin port",
        );
        let mut out = BytesMut::new();
        err.write(&mut out);
        w.send(seq.wrapping_add(1), &out)?;
        return Err(io::Error::new(io::ErrorKind::InvalidData, "TLS requested"));
    };
    let caps = resp.capabilities.intersect(ADMIN_CAPS);
    let mut next = seq.wrapping_add(1);
    let mut answer = resp.auth_response.clone();
    if resp
        .auth_plugin_name
        .as_deref()
        .is_some_and(|p| p != MYSQL_NATIVE_PASSWORD.as_bytes())
    {
        let mut p = BytesMut::new();
        AuthSwitchRequest {
            plugin_name: MYSQL_NATIVE_PASSWORD.as_bytes().to_vec(),
            plugin_data: scramble.clone(),
        }
        .write(&mut p);
        w.send(next, &p)?;
        let (s, a) = w.read()?;
        answer = a;
        next = s.wrapping_add(1);
    }
    let name = String::from_utf8_lossy(&resp.username).into_owned();
    if name != user || !secret.verify(&scramble, &answer) {
        // Rate-limited: a password-guessing peer must not flood the log.
        if refusals_log().lock().is_ok_and(|r| r.allow()) {
            tracing::warn!(user = %name, %peer, "admin login refused");
        }
        let err = ErrPacket::new(
            1045,
            "28000",
            format!(
                "Access denied for user '{name}'@'{peer}' (using password: {})",
                if answer.is_empty() { "NO" } else { "YES" }
            ),
        );
        let mut out = BytesMut::new();
        err.write(&mut out);
        w.send(next, &out)?;
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            "admin login refused",
        ));
    }
    let mut out = BytesMut::new();
    funnel_protocol::response::OkPacket {
        status: StatusFlags::SERVER_STATUS_AUTOCOMMIT,
        ..Default::default()
    }
    .write(&mut out, caps);
    w.send(next, &out)?;
    Ok(caps)
}
