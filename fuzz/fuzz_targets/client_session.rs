//! The client-facing session state machine of a real, in-process Funnel,
//! driven over TCP (crates/funnel-engine/src/session/).
//!
//! On first use the target starts one throwaway MariaDB (funnel-testkit,
//! `MariaDb::shared()`, with a backend user `fzb` and two schemas) and one
//! Funnel proxy (1 core, `client.handshake_timeout: 300ms`,
//! `client.max_packet_size: 8KiB`, `pool.query_timeout: 1500ms`) in this
//! process; both live until the process exits. Each input is one client
//! connection, read structurally (a missing byte reads as 0):
//!
//! `[mode][flags]` then, by `mode % 4`:
//!
//! * 0 — pre-handshake: the rest of the input is written raw right after
//!   the connection opens (garbage, half packets, malformed logins).
//! * 1 — malformed-ish login: a `HandshakeResponse41` built from fuzz
//!   fields (capabilities, user from a list, right/wrong/garbage auth
//!   response, database, plugin name, attributes), optionally truncated or
//!   extended with raw bytes, optionally preceded by an SSLRequest-sized
//!   packet; then a `COM_QUERY SELECT 1` if the login was accepted.
//! * 2 — valid login (`mysql_native_password`), then the rest as a stream of
//!   packets: chunks framed with fuzz-chosen lengths (up to 3 bytes, so
//!   beyond `max_packet_size`) and sequence ids, packets with a real command
//!   byte and a fuzz body, or raw bytes.
//! * 3 — valid login (fuzz-chosen extra capabilities, among them MariaDB's
//!   `CACHE_METADATA`, `STMT_BULK_OPERATIONS` and `EXTENDED_METADATA` from
//!   `flags` bits 0-2, sent with `CLIENT_MYSQL` clear as MariaDB connectors
//!   do; `CLIENT_COMPRESS` from bit 3; user, schema), then up
//!   to 24 well-formed commands built from fuzz bytes: `COM_QUERY` with SQL
//!   assembled from a fixed dictionary of harmless fragments (fuzz text
//!   only inside string literals, comments, or short [a-z0-9_`' ;.-]
//!   identifiers), `COM_STMT_PREPARE/EXECUTE/FETCH/RESET/CLOSE/
//!   SEND_LONG_DATA` with typed fuzz parameters, `COM_STMT_BULK_EXECUTE`
//!   (types, 1-3 rows with indicators), `COM_INIT_DB`,
//!   `COM_CHANGE_USER`, `COM_RESET_CONNECTION`, `COM_PING`, `COM_SET_OPTION`,
//!   `COM_FIELD_LIST`, `COM_STATISTICS`, refused commands (`COM_TIME`, ...),
//!   `COM_QUIT`. LOCAL INFILE requests are answered with fuzz data.
//!
//! In modes 0-2 the client half-closes its socket after writing (unless
//! `flags & 1`), so the proxy answers what it got and then sees EOF.
//!
//! Findings (a panic here aborts the process so libFuzzer records it):
//! * any panic anywhere in the process, including a glommio shard thread
//!   (a panic hook aborts);
//! * mode 3: the proxy closes the connection in the middle of a well-formed
//!   command without an ERR (allowed only after COM_QUIT, or after an ERR
//!   such as a refused COM_CHANGE_USER); a command gets no complete answer
//!   within 8 s (the backend is bounded by `pool.query_timeout`);
//! * mode 3: a reply the protocol crate's `ResponseTracker` rejects, a
//!   sequence id out of order, an ERR/OK that does not parse, a prepare OK
//!   that does not parse; a valid login refused;
//! * mode 3 with `MARIADB_CLIENT_CACHE_METADATA`: a text result set without
//!   its column definitions; an execute's result set that leaves them out
//!   with a column count other than that of the definitions the client was
//!   last sent for the statement (by its prepare or an execute; not checked
//!   after an execute that failed once its result set began);
//! * modes 0-2: reply bytes that do not frame, an ERR that does not parse, a
//!   first packet that is neither a greeting nor an ERR;
//! * after every input: a fresh connection must log in and `SELECT 1` must
//!   return 1 within 2 s; under CPU contention (and during the pool's ~100 ms
//!   backoff after a failed backend connect) it retries every 200 ms for 10 s
//!   and prints "slow health check"; still failing after that is a finding.
//!   A valid login refused with 1159 (handshake timeout) or 9003 (that
//!   backoff) is printed as "slow login" and the input ends.
//!
//! Never sent: SHUTDOWN, KILL, COM_SHUTDOWN/COM_PROCESS_KILL/COM_REFRESH,
//! DROP DATABASE, or any DROP of a table outside the session's own schema.

#![no_main]

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use bytes::{BufMut, BytesMut};
use funnel_config::Config;
use funnel_protocol::auth::{native_password_scramble, AuthSwitchRequest, MYSQL_NATIVE_PASSWORD};
use funnel_protocol::command::{write_change_user, write_query};
use funnel_protocol::framing::{write_packet, PacketDecoder};
use funnel_protocol::handshake::{HandshakeResponse41, HandshakeV10};
use funnel_protocol::response::{ErrPacket, OkPacket};
use funnel_protocol::tracker::{Event, Expect, PrepareOk, ResponseTracker};
use funnel_protocol::{Capabilities, StatusFlags};
use funnel_testkit::MariaDb;
use libfuzzer_sys::fuzz_target;

const USER: &str = "fz";
const PASSWORD: &str = "fzpw";
const USER2: &str = "fz2";
const PASSWORD2: &str = "";

struct World {
    addr: SocketAddr,
    schema: String,
    schema2: String,
}

static WORLD: OnceLock<World> = OnceLock::new();
static INPUTS: AtomicU64 = AtomicU64::new(0);
static SLOW_HEALTH: AtomicU64 = AtomicU64::new(0);
static TIMEOUTS: AtomicU64 = AtomicU64::new(0);

fn world() -> &'static World {
    WORLD.get_or_init(|| {
        // libFuzzer's C++ main does not ignore SIGPIPE as a Rust `main` does,
        // so a write to a closed socket (glommio's, in the proxy) would kill
        // the process. Do what the funnel binary's runtime does.
        // SAFETY: setting a signal disposition to SIG_IGN, before any threads
        // of ours depend on it; no handler code runs.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_IGN);
        }
        // Any panic in any thread (a glommio shard included) is a finding.
        let prev = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            prev(info);
            eprintln!("client_session: panic -> abort");
            std::process::abort();
        }));
        let db = MariaDb::shared();
        let schema = db.fresh_database("fz");
        let schema2 = db.fresh_database("fz");
        db.create_user("fzb", "bpw");
        // Row/metadata lock waits end fast, so a leaked lock cannot stall inputs.
        db.exec("SET GLOBAL innodb_lock_wait_timeout = 1");
        db.exec("SET GLOBAL lock_wait_timeout = 1");
        db.exec(&format!(
            "CREATE TABLE {schema}.t1 (a INT PRIMARY KEY AUTO_INCREMENT, b VARCHAR(64), c BLOB)"
        ));
        db.exec(&format!("INSERT INTO {schema}.t1 (b, c) VALUES ('x', 'y'), (NULL, NULL)"));
        db.exec(&format!("CREATE TABLE {schema2}.t1 (a INT, b TEXT)"));
        let yaml = format!(
            "listen: 127.0.0.1:0\n\
             cores: 1\n\
             users:\n\
             \x20 - name: {USER}\n    password: \"{PASSWORD}\"\n    default_schema: {schema}\n\
             \x20 - name: {USER2}\n    password: \"{PASSWORD2}\"\n    max_connections: 4\n\
             backends:\n  - name: primary\n    address: {addr}\n    user: fzb\n    password: bpw\n\
             pool:\n  max_per_core: 16\n  min_idle_per_core: 1\n  connect_timeout: 2s\n  query_timeout: 1500ms\n\
             backlog:\n  wait_timeout: 2s\n\
             client:\n  handshake_timeout: 300ms\n  max_packet_size: 8KiB\n\
             log:\n  level: error\n",
            addr = db.addr()
        );
        let config = Config::from_yaml_str(&yaml).unwrap_or_else(|e| panic!("config: {e}\n{yaml}"));
        let proxy = funnel_testkit::funnel::start(config);
        let addr = proxy.local_addr();
        // Runs until the process exits.
        std::mem::forget(proxy);
        let w = World { addr, schema, schema2 };
        health(&w, b"<startup>");
        w
    })
}

// ---------------------------------------------------------------- input

struct In<'a> {
    d: &'a [u8],
    p: usize,
}

impl<'a> In<'a> {
    fn u8(&mut self) -> u8 {
        let b = self.d.get(self.p).copied().unwrap_or(0);
        self.p += 1;
        b
    }
    fn u16(&mut self) -> u16 {
        u16::from(self.u8()) | u16::from(self.u8()) << 8
    }
    fn u32(&mut self) -> u32 {
        u32::from(self.u16()) | u32::from(self.u16()) << 16
    }
    fn bytes(&mut self, n: usize) -> &'a [u8] {
        let start = self.p.min(self.d.len());
        let end = (start + n).min(self.d.len());
        self.p = self.p.max(start) + n;
        &self.d[start..end]
    }
    fn rest(&mut self) -> &'a [u8] {
        let start = self.p.min(self.d.len());
        self.p = self.d.len();
        &self.d[start..]
    }
    fn done(&self) -> bool {
        self.p >= self.d.len()
    }
    fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
        xs[usize::from(self.u8()) % xs.len()]
    }
    /// A short fuzz string (length byte then bytes).
    fn text(&mut self, max: usize) -> &'a [u8] {
        let n = usize::from(self.u8()) % (max + 1);
        self.bytes(n)
    }
}

/// `CS_TRACE=1` prints every mode-3 command with its reply's first packet
/// (to see what a seed or a replayed input does).
fn trace() -> bool {
    static TRACE: OnceLock<bool> = OnceLock::new();
    *TRACE.get_or_init(|| std::env::var_os("CS_TRACE").is_some())
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

// ---------------------------------------------------------------- client

struct Client {
    s: TcpStream,
    dec: PacketDecoder,
    inbox: BytesMut,
    caps: Capabilities,
    scramble: Vec<u8>,
    deadline: Instant,
    /// `CLIENT_COMPRESS` was agreed and the login is over: packets travel
    /// inside compressed packets (7-byte header, zlib or plain payload).
    compressed: bool,
    /// Bytes read but not yet unpacked (compressed protocol).
    raw: BytesMut,
    /// The compressed sequence id after the last compressed packet read.
    cseq: u8,
}

#[derive(Debug)]
enum RErr {
    Closed,
    Timeout,
    Io(#[allow(dead_code)] io::Error),
    Frame(String),
}

impl Client {
    fn connect(addr: SocketAddr, deadline: Instant) -> io::Result<Client> {
        let s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
        s.set_nodelay(true)?;
        Ok(Client {
            s,
            dec: PacketDecoder::new(1 << 30),
            inbox: BytesMut::new(),
            caps: Capabilities::EMPTY,
            scramble: Vec::new(),
            deadline,
            compressed: false,
            raw: BytesMut::new(),
            cseq: 0,
        })
    }

    /// Whether a reply packet's sequence id `s` is in order when `expect`
    /// was due. With compression the server syncs the packets' ids to the
    /// compressed packet's at each flush (`net_flush`), and Funnel numbers
    /// them so too (engine `compress.rs`, `pack_packets`): the first packet
    /// of a compressed packet may carry that packet's id instead. Funnel
    /// packs whole packets only, so the packet just decoded began in the
    /// compressed packet unpacked last.
    fn seq_ok(&self, s: u8, expect: u8) -> bool {
        s == expect || (self.compressed && s == self.cseq.wrapping_sub(1))
    }

    /// Moves one whole compressed packet from `raw` to `inbox`, unpacked.
    /// `Ok(false)` when none is whole yet.
    fn unpack(&mut self) -> Result<bool, RErr> {
        use std::io::Read as _;
        if self.raw.len() < 7 {
            return Ok(false);
        }
        let len3 = |b: &[u8]| usize::from(b[0]) | usize::from(b[1]) << 8 | usize::from(b[2]) << 16;
        let clen = len3(&self.raw[..3]);
        let ulen = len3(&self.raw[4..7]);
        if self.raw.len() < 7 + clen {
            return Ok(false);
        }
        self.cseq = self.raw[3].wrapping_add(1);
        let frame = self.raw.split_to(7 + clen);
        if ulen == 0 {
            self.inbox.extend_from_slice(&frame[7..]);
            return Ok(true);
        }
        let mut plain = Vec::with_capacity(ulen);
        flate2::read::ZlibDecoder::new(&frame[7..])
            .take(ulen as u64 + 1)
            .read_to_end(&mut plain)
            .map_err(|e| RErr::Frame(format!("compressed packet does not inflate: {e}")))?;
        if plain.len() != ulen {
            return Err(RErr::Frame(format!(
                "compressed packet inflates to {} bytes, its header says {ulen}",
                plain.len()
            )));
        }
        self.inbox.extend_from_slice(&plain);
        Ok(true)
    }

    fn read_packet(&mut self) -> Result<(u8, u8, Vec<u8>), RErr> {
        loop {
            match self.dec.decode(&mut self.inbox) {
                Ok(Some(p)) => return Ok((p.seq, p.last_seq, p.payload.to_vec())),
                Ok(None) => {}
                Err(e) => return Err(RErr::Frame(format!("{e:?}"))),
            }
            if self.compressed && self.unpack()? {
                continue;
            }
            let now = Instant::now();
            if now >= self.deadline {
                return Err(RErr::Timeout);
            }
            self.s
                .set_read_timeout(Some(self.deadline - now))
                .map_err(RErr::Io)?;
            let mut chunk = [0u8; 65536];
            match self.s.read(&mut chunk) {
                Ok(0) => return Err(RErr::Closed),
                Ok(n) if self.compressed => self.raw.extend_from_slice(&chunk[..n]),
                Ok(n) => self.inbox.extend_from_slice(&chunk[..n]),
                Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                    return Err(RErr::Timeout)
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::ConnectionReset => return Err(RErr::Closed),
                Err(e) => return Err(RErr::Io(e)),
            }
        }
    }

    fn send(&mut self, seq: u8, payload: &[u8]) -> io::Result<()> {
        let mut out = BytesMut::new();
        write_packet(&mut out, seq, payload);
        if self.compressed {
            // Plain (uncompressed length 0), as clients send short packets.
            // A command starts the compressed ids at 0; a packet within one
            // takes the id after the last compressed packet read.
            let cseq = if seq == 0 { 0 } else { self.cseq };
            self.cseq = cseq.wrapping_add(1);
            let mut framed = BytesMut::new();
            framed.put_slice(&(out.len() as u32).to_le_bytes()[..3]);
            framed.put_u8(cseq);
            framed.put_slice(&[0, 0, 0]);
            framed.put_slice(&out);
            return self.s.write_all(&framed);
        }
        self.s.write_all(&out)
    }

    /// Reads the greeting; returns it.
    fn greeting(&mut self) -> Result<HandshakeV10, String> {
        let (_, _, g) = self.read_packet().map_err(|e| format!("greeting: {e:?}"))?;
        if g.first() == Some(&0xff) {
            return Err(format!("greeting is an ERR: {:?}", ErrPacket::parse(&g)));
        }
        let hs = HandshakeV10::parse(&g).unwrap_or_else(|e| panic!("malformed greeting {e:?}: {}", hex(&g)));
        self.scramble = hs.auth_plugin_data.clone();
        Ok(hs)
    }

    /// A full, valid login. `Err` carries what went wrong.
    fn login(
        &mut self,
        user: &str,
        password: &str,
        db: Option<&str>,
        extra: Capabilities,
        attrs: Vec<(Vec<u8>, Vec<u8>)>,
    ) -> Result<(), String> {
        let hs = self.greeting()?;
        let base = Capabilities(
            Capabilities::CLIENT_MYSQL.0
                | Capabilities::CLIENT_LONG_FLAG.0
                | Capabilities::CLIENT_PROTOCOL_41.0
                | Capabilities::CLIENT_TRANSACTIONS.0
                | Capabilities::CLIENT_SECURE_CONNECTION.0
                | Capabilities::CLIENT_MULTI_RESULTS.0
                | Capabilities::CLIENT_PLUGIN_AUTH.0,
        );
        let mut want = base | extra;
        if extra.upper() != 0 {
            // MariaDB's extended capabilities travel only with CLIENT_MYSQL clear.
            want.set(Capabilities::CLIENT_MYSQL, false);
        }
        if db.is_some() {
            want = want | Capabilities::CLIENT_CONNECT_WITH_DB;
        }
        self.caps = agreed_caps(want, &hs);
        let login = HandshakeResponse41 {
            capabilities: self.caps,
            max_packet_size: 1 << 24,
            charset: 45,
            username: user.as_bytes().to_vec(),
            auth_response: native_password_scramble(password.as_bytes(), &self.scramble),
            database: db.map(|d| d.as_bytes().to_vec()),
            auth_plugin_name: Some(MYSQL_NATIVE_PASSWORD.as_bytes().to_vec()),
            attributes: attrs,
        };
        let mut p = BytesMut::new();
        login.write(&mut p);
        self.send(1, &p).map_err(|e| format!("send login: {e}"))?;
        let mut expect_seq = 2u8;
        loop {
            let (seq, last, reply) = self.read_packet().map_err(|e| format!("login reply: {e:?}"))?;
            assert_eq!(seq, expect_seq, "login reply sequence id: {}", hex(&reply));
            expect_seq = last.wrapping_add(1);
            match reply.first() {
                Some(0x00) => {
                    OkPacket::parse(&reply, self.caps)
                        .unwrap_or_else(|e| panic!("login OK malformed {e:?}: {}", hex(&reply)));
                    self.compressed = self.caps.contains(Capabilities::CLIENT_COMPRESS);
                    return Ok(());
                }
                Some(0xff) => {
                    let e = ErrPacket::parse(&reply)
                        .unwrap_or_else(|e| panic!("login ERR malformed {e:?}: {}", hex(&reply)));
                    return Err(format!("login refused: {e}"));
                }
                Some(0xfe) => {
                    let switch = AuthSwitchRequest::parse(&reply)
                        .unwrap_or_else(|e| panic!("auth switch malformed {e:?}: {}", hex(&reply)));
                    self.scramble = switch.plugin_data.clone();
                    let answer = native_password_scramble(password.as_bytes(), &switch.plugin_data);
                    self.send(expect_seq, &answer).map_err(|e| format!("send switch: {e}"))?;
                    expect_seq = expect_seq.wrapping_add(1);
                }
                _ => panic!("unexpected login reply: {}", hex(&reply)),
            }
        }
    }

    /// Reads everything until EOF, idle or the deadline; checks framing and
    /// that ERR packets parse. Returns whether the peer closed.
    fn drain_checked(&mut self, first_is_greeting: bool) -> bool {
        let mut first = first_is_greeting;
        loop {
            match self.read_packet() {
                Ok((_, _, p)) => {
                    if first {
                        first = false;
                        if p.first() != Some(&0xff) {
                            HandshakeV10::parse(&p)
                                .unwrap_or_else(|e| panic!("malformed greeting {e:?}: {}", hex(&p)));
                            continue;
                        }
                    }
                    if p.first() == Some(&0xff) {
                        ErrPacket::parse(&p).unwrap_or_else(|e| panic!("malformed ERR {e:?}: {}", hex(&p)));
                    }
                }
                Err(RErr::Frame(e)) => panic!("reply bytes do not frame: {e}"),
                Err(RErr::Closed) | Err(RErr::Io(_)) => return true,
                Err(RErr::Timeout) => return false,
            }
        }
    }
}

/// The capabilities a login with `client` agrees with a proxy that greeted
/// with `hs`: those both have, where MariaDB's extended ones (the upper 32
/// bits) travel only when the client clears `CLIENT_MYSQL`; with it set the
/// login writes zeros where they go, and the proxy sees none.
fn agreed_caps(client: Capabilities, hs: &HandshakeV10) -> Capabilities {
    let mut client = client;
    if client.contains(Capabilities::CLIENT_MYSQL) {
        client = Capabilities(client.0 & 0xffff_ffff);
    }
    client.intersect(hs.capabilities | Capabilities::CLIENT_MYSQL)
}

// ---------------------------------------------------------------- health

fn try_health(w: &World, timeout: Duration) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    let mut c = Client::connect(w.addr, deadline).map_err(|e| format!("connect: {e}"))?;
    c.login(USER, PASSWORD, None, Capabilities::EMPTY, Vec::new())?;
    let mut p = BytesMut::new();
    write_query(&mut p, b"SELECT 1");
    c.send(0, &p).map_err(|e| format!("send: {e}"))?;
    let mut packets = Vec::new();
    let mut t = ResponseTracker::new(Expect::Results, c.caps, StatusFlags(2));
    loop {
        let (_, _, p) = c.read_packet().map_err(|e| format!("SELECT 1 reply: {e:?}"))?;
        let ev = t.feed(&p, p.len()).map_err(|e| format!("SELECT 1 reply malformed: {e:?}"))?;
        packets.push(p);
        if ev == Event::Done {
            break;
        }
    }
    // column count, column def, EOF, row, EOF
    match packets.get(3) {
        Some(row) if row.as_slice() == b"\x011" && packets.len() == 5 => Ok(()),
        _ => Err(format!(
            "SELECT 1 returned {:?}",
            packets.iter().map(|p| hex(p)).collect::<Vec<_>>()
        )),
    }
}

fn health(w: &World, input: &[u8]) {
    let Err(first) = try_health(w, Duration::from_secs(2)) else {
        return;
    };
    // The machine is shared (and the proxy backs off for a moment after a
    // failed backend connect): keep retrying for 10 s before calling it a finding.
    let started = Instant::now();
    let mut last = String::new();
    while started.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(200));
        match try_health(w, Duration::from_secs(5)) {
            Ok(()) => {
                let n = SLOW_HEALTH.fetch_add(1, Ordering::Relaxed) + 1;
                eprintln!(
                    "client_session: slow health check #{n} (first: {first}; healthy again after {:?}) after input {}",
                    started.elapsed(),
                    hex(input)
                );
                return;
            }
            Err(e) => last = e,
        }
    }
    panic!("proxy unhealthy for 10 s after input {}: {first}; last: {last}", hex(input));
}

static SLOW_LOGINS: AtomicU64 = AtomicU64::new(0);

/// A valid login that took longer than the 300 ms handshake timeout (ERR
/// 1159): the shared machine was busy, not a finding; counted and printed.
/// Also a login refused with 9003 "connections failed recently": the proxy
/// fails fast for ~100 ms after a backend connect failed (see the report).
/// And a greeting or login reply that did not come within the login's
/// deadline while the shared machine was starved (load 80+): the health
/// check after the input still catches a proxy that stopped answering.
fn slow_login(e: &str) -> bool {
    let starved = e.starts_with("greeting: Timeout") || e.starts_with("login reply: Timeout");
    if !e.contains("1159") && !e.contains("9003") && !starved {
        return false;
    }
    let n = SLOW_LOGINS.fetch_add(1, Ordering::Relaxed) + 1;
    eprintln!("client_session: slow login #{n}: {e}");
    true
}

// ---------------------------------------------------------------- mode 0/1/2

fn finish_raw(c: &mut Client, flags: u8, greeting_pending: bool) {
    if flags & 1 == 0 {
        let _ = c.s.shutdown(Shutdown::Write);
        c.deadline = Instant::now() + Duration::from_millis(1000);
    } else {
        // Leave the socket open: up to the handshake timeout (300 ms) and a bit.
        c.deadline = Instant::now() + Duration::from_millis(if flags & 2 != 0 { 450 } else { 40 });
    }
    c.drain_checked(greeting_pending);
}

fn mode_raw(w: &World, flags: u8, inp: &mut In) {
    let Ok(mut c) = Client::connect(w.addr, Instant::now() + Duration::from_secs(1)) else {
        return;
    };
    let data = inp.rest();
    // flags & 4: wait for the greeting before writing.
    let mut greeting_pending = true;
    if flags & 4 != 0 {
        if c.greeting().is_err() {
            return;
        }
        greeting_pending = false;
    }
    let _ = c.s.write_all(data);
    finish_raw(&mut c, flags, greeting_pending);
}

fn mode_login(w: &World, flags: u8, inp: &mut In) {
    let Ok(mut c) = Client::connect(w.addr, Instant::now() + Duration::from_secs(1)) else {
        return;
    };
    let Ok(hs) = c.greeting() else {
        return;
    };
    let caps = Capabilities(u64::from(inp.u32()) | u64::from(inp.u8() & 0x1f) << 32);
    // What the proxy can have agreed to: the client's flags it offered.
    let agreed = agreed_caps(caps, &hs);
    let user: &[u8] = match inp.u8() % 6 {
        0 | 1 => USER.as_bytes(),
        2 => USER2.as_bytes(),
        3 => b"",
        4 => b"root",
        _ => inp.text(40),
    };
    let password: &[u8] = if user == USER2.as_bytes() { b"" } else { PASSWORD.as_bytes() };
    let auth = match inp.u8() % 5 {
        0 | 1 => native_password_scramble(password, &c.scramble),
        2 => Vec::new(),
        3 => native_password_scramble(b"wrong", &c.scramble),
        _ => inp.text(255).to_vec(),
    };
    let database = match inp.u8() % 5 {
        0 => None,
        1 => Some(w.schema.as_bytes().to_vec()),
        2 => Some(w.schema2.as_bytes().to_vec()),
        3 => Some(b"nope_db".to_vec()),
        _ => Some(ident(inp)),
    };
    let plugin = match inp.u8() % 5 {
        0 | 1 => Some(MYSQL_NATIVE_PASSWORD.as_bytes().to_vec()),
        2 => None,
        3 => Some(b"caching_sha2_password".to_vec()),
        _ => Some(inp.text(30).to_vec()),
    };
    let mut attributes = Vec::new();
    for _ in 0..inp.u8() % 4 {
        let k = inp.text(20).to_vec();
        let v = inp.text(60).to_vec();
        attributes.push((k, v));
    }
    let login = HandshakeResponse41 {
        capabilities: caps,
        max_packet_size: inp.u32(),
        charset: inp.u8(),
        username: user.to_vec(),
        auth_response: auth,
        database,
        auth_plugin_name: plugin,
        attributes,
    };
    let mut p = BytesMut::new();
    login.write(&mut p);
    // Shape: 0 as written, 1 truncated, 2 extra raw bytes, 3 SSLRequest-sized prefix first.
    let shape = inp.u8();
    let mut seq = 1u8;
    match shape % 4 {
        1 => {
            let cut = usize::from(inp.u16()) % (p.len() + 1);
            p.truncate(cut);
        }
        2 => p.extend_from_slice(inp.text(64)),
        3 => {
            let ssl = p[..32.min(p.len())].to_vec();
            let _ = c.send(seq, &ssl);
            seq = seq.wrapping_add(1);
        }
        _ => {}
    }
    if shape & 0x80 != 0 {
        seq = inp.u8();
    }
    if c.send(seq, &p).is_err() {
        return;
    }
    let rest = inp.rest();
    if !rest.is_empty() && shape & 0x40 != 0 {
        let _ = c.s.write_all(rest);
        finish_raw(&mut c, flags, false);
        return;
    }
    // Read the answer to the login.
    c.deadline = Instant::now() + Duration::from_millis(if flags & 1 != 0 { 450 } else { 300 });
    if flags & 1 == 0 && shape % 4 == 1 {
        // A truncated login never completes: tell the proxy we are done.
        let _ = c.s.shutdown(Shutdown::Write);
    }
    let mut expect = seq.wrapping_add(1);
    loop {
        match c.read_packet() {
            Ok((s, last, reply)) => {
                match reply.first() {
                    Some(0xff) => {
                        ErrPacket::parse(&reply)
                            .unwrap_or_else(|e| panic!("malformed ERR {e:?}: {}", hex(&reply)));
                        return;
                    }
                    Some(0x00) => {
                        assert_eq!(s, expect, "login OK sequence id");
                        OkPacket::parse(&reply, agreed)
                            .unwrap_or_else(|e| panic!("malformed login OK {e:?}: {}", hex(&reply)));
                        // Logged in: one query with the client's odd caps
                        // (compressed from here on if it asked for that).
                        c.compressed = agreed.contains(Capabilities::CLIENT_COMPRESS);
                        c.deadline = Instant::now() + Duration::from_secs(4);
                        let mut q = BytesMut::new();
                        write_query(&mut q, b"SELECT 1, 'x', NULL");
                        if c.send(0, &q).is_err() {
                            return;
                        }
                        c.caps = agreed;
                        let mut t = ResponseTracker::new(Expect::Results, agreed, StatusFlags(2));
                        let mut exp = 1u8;
                        loop {
                            match c.read_packet() {
                                Ok((s, last, p)) => {
                                    assert!(c.seq_ok(s, exp), "reply sequence id {s}, expected {exp}: {}", hex(&p));
                                    exp = last.wrapping_add(1);
                                    let ev = t.feed(&p, p.len()).unwrap_or_else(|e| {
                                        panic!("reply malformed (caps {:#x}, agreed {:#x}) {e:?}: {}", caps.0, agreed.0, hex(&p))
                                    });
                                    if ev == Event::Done {
                                        return;
                                    }
                                }
                                Err(RErr::Frame(e)) => panic!("reply does not frame: {e}"),
                                Err(RErr::Timeout) => {
                                    panic!("no answer to SELECT 1 in 4 s after an accepted odd login")
                                }
                                Err(_) => return,
                            }
                        }
                    }
                    Some(0xfe) => {
                        AuthSwitchRequest::parse(&reply)
                            .unwrap_or_else(|e| panic!("malformed auth switch {e:?}: {}", hex(&reply)));
                        expect = last.wrapping_add(1);
                        if flags & 2 != 0 {
                            // Answer the switch properly.
                            let sw = AuthSwitchRequest::parse(&reply).unwrap();
                            let a = native_password_scramble(password, &sw.plugin_data);
                            let _ = c.send(expect, &a);
                            expect = expect.wrapping_add(1);
                        } else {
                            let _ = c.send(expect, inp.text(40));
                            expect = expect.wrapping_add(1);
                        }
                    }
                    Some(0x01) if reply.len() >= 2 => {
                        // caching_sha2_password AuthMoreData: fast-auth success
                        // (OK follows) or a full-auth request (answer with fuzz).
                        expect = last.wrapping_add(1);
                        if reply[1] == 0x04 {
                            let _ = c.send(expect, inp.text(40));
                            expect = expect.wrapping_add(1);
                        }
                    }
                    _ => panic!("unexpected login reply: {}", hex(&reply)),
                }
                let _ = s;
            }
            Err(RErr::Frame(e)) => panic!("reply does not frame: {e}"),
            Err(_) => return,
        }
    }
}

const COMMAND_BYTES: &[u8] = &[
    0x00, 0x01, 0x02, 0x03, 0x04, 0x09, 0x0b, 0x0d, 0x0e, 0x0f, 0x10, 0x11, 0x16, 0x17, 0x18, 0x19,
    0x1a, 0x1b, 0x1c, 0x1d, 0x1f, 0x42, 0xfe,
];

fn mode_stream(w: &World, flags: u8, inp: &mut In) {
    let deadline = Instant::now() + Duration::from_secs(2);
    let Ok(mut c) = Client::connect(w.addr, deadline) else {
        return;
    };
    let extra = Capabilities(u64::from(inp.u8()) << 16 & 0x01ff_0000);
    if let Err(e) = c.login(USER, PASSWORD, None, extra, Vec::new()) {
        if slow_login(&e) {
            return;
        }
        panic!("valid login refused: {e}");
    }
    let mut out = BytesMut::new();
    let mut chunks = 0;
    while !inp.done() && chunks < 64 {
        chunks += 1;
        let h = inp.u8();
        match h % 4 {
            0 => {
                // A framed packet with a fuzz length (1 or 3 bytes) and seq id.
                let len = if h & 0x20 != 0 {
                    usize::from(inp.u8()) | usize::from(inp.u8()) << 8 | usize::from(inp.u8()) << 16
                } else {
                    usize::from(inp.u8())
                };
                let seq = if h & 0x10 != 0 { inp.u8() } else { 0 };
                out.put_slice(&(len as u32).to_le_bytes()[..3]);
                out.put_u8(seq);
                out.put_slice(inp.bytes(len.min(4096)));
            }
            1 => {
                // A packet with a real command byte and a fuzz body.
                let cmd = inp.pick(COMMAND_BYTES);
                let body = inp.text(200);
                let seq = if h & 0x10 != 0 { inp.u8() } else { 0 };
                let mut payload = vec![cmd];
                payload.extend_from_slice(body);
                write_packet(&mut out, seq, &payload);
            }
            2 => {
                let n = usize::from(inp.u8());
                out.put_slice(inp.bytes(n));
            }
            _ => {
                // Flush what we have and give the proxy a moment to answer.
                if c.s.write_all(&out).is_err() {
                    return;
                }
                out.clear();
                c.deadline = Instant::now() + Duration::from_millis(10);
                if c.drain_checked(false) {
                    return;
                }
            }
        }
    }
    if c.s.write_all(&out).is_err() {
        return;
    }
    finish_raw(&mut c, flags, false);
}

// ---------------------------------------------------------------- mode 3

/// A short identifier-ish fuzz string: [a-z0-9_`' ;.-], at most 8 bytes, so it
/// can never spell a harmful statement wherever the proxy puts it.
fn ident(inp: &mut In) -> Vec<u8> {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789_`' ;.-";
    let n = usize::from(inp.u8() % 9);
    let s: Vec<u8> = inp.bytes(n).iter().map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()]).collect();
    // Never another real schema (whatever a statement then does there).
    match s.as_slice() {
        b"mysql" | b"sys" | b"test" => b"nope".to_vec(),
        _ => s,
    }
}

/// Fuzz bytes inside a single-quoted string literal: no backslashes, quotes doubled.
fn literal(inp: &mut In, sql: &mut Vec<u8>) {
    sql.push(b'\'');
    for &b in inp.text(48) {
        match b {
            b'\\' => {}
            b'\'' => sql.extend_from_slice(b"''"),
            _ => sql.push(b),
        }
    }
    sql.push(b'\'');
}

fn number(inp: &mut In, sql: &mut Vec<u8>) {
    let n: &[u8] = match inp.u8() % 12 {
        0 => b"0",
        1 => b"1",
        2 => b"-1",
        3 => b"255",
        4 => b"65536",
        5 => b"2147483648",
        6 => b"18446744073709551615",
        7 => b"1.5e300",
        8 => b"NULL",
        9 => b"70000",
        10 => b"16777215",
        _ => {
            sql.extend_from_slice(inp.u16().to_string().as_bytes());
            return;
        }
    };
    sql.extend_from_slice(n);
}

fn expr(inp: &mut In, sql: &mut Vec<u8>, depth: u8) {
    let k = inp.u8() % 16;
    match k {
        0 => number(inp, sql),
        1 => literal(inp, sql),
        2 => sql.extend_from_slice(b"NULL"),
        3 => sql.extend_from_slice(b"@v"),
        4 => sql.extend_from_slice(b"NOW(6)"),
        5 => sql.extend_from_slice(b"X'00ff7f80fe'"),
        6 => {
            // Bounded: 16 MiB values times several rows take seconds on the
            // shared machine (the 16 MiB framing is the protocol targets' job).
            sql.extend_from_slice(b"REPEAT('a', ");
            let n: &[u8] = inp.pick(&[&b"0"[..], b"1", b"250", b"251", b"65535", b"65536", b"70000", b"NULL"]);
            sql.extend_from_slice(n);
            sql.push(b')');
        }
        7 => sql.extend_from_slice(b"(SELECT COUNT(*) FROM t1)"),
        8 => sql.extend_from_slice(b"LAST_INSERT_ID()"),
        9 => sql.extend_from_slice(b"CONNECTION_ID()"),
        10 => sql.extend_from_slice(b"DATABASE()"),
        11 => sql.extend_from_slice(b"?"),
        12 => sql.extend_from_slice(b"CAST(1 AS DECIMAL(30,10))"),
        13 => sql.extend_from_slice(b"@@autocommit"),
        _ if depth < 3 => {
            let op: &[u8] = inp.pick(&[&b" + "[..], b" , ", b" = ", b" AND ", b" || "]);
            sql.push(b'(');
            expr(inp, sql, depth + 1);
            sql.extend_from_slice(op);
            expr(inp, sql, depth + 1);
            sql.push(b')');
        }
        _ => sql.push(b'1'),
    }
}

fn schema_name(w: &World, inp: &mut In) -> Vec<u8> {
    match inp.u8() % 6 {
        0 | 1 => w.schema.as_bytes().to_vec(),
        2 => w.schema2.as_bytes().to_vec(),
        3 => b"information_schema".to_vec(),
        4 => b"nope_db".to_vec(),
        _ => ident(inp),
    }
}

fn statement(w: &World, inp: &mut In, sql: &mut Vec<u8>) {
    let fixed: &[&[u8]] = &[
        b"BEGIN",
        b"START TRANSACTION READ ONLY",
        b"COMMIT",
        b"ROLLBACK",
        b"SAVEPOINT s1",
        b"ROLLBACK TO SAVEPOINT s1",
        b"SET autocommit = 0",
        b"SET autocommit = 1",
        b"SELECT @v",
        b"SET NAMES utf8mb4",
        b"SET NAMES latin1",
        b"SET NAMES binary",
        b"SET character_set_results = NULL",
        b"SET SESSION sql_mode = 'ANSI_QUOTES,NO_BACKSLASH_ESCAPES'",
        b"SET sql_mode = DEFAULT",
        b"SET time_zone = '+01:00'",
        b"SET SESSION TRANSACTION ISOLATION LEVEL SERIALIZABLE",
        b"SET SESSION wait_timeout = 2",
        b"SET sql_log_bin = 0",
        b"SET @@session.max_statement_time = 0.5",
        b"SHOW WARNINGS",
        b"SHOW ERRORS",
        b"SHOW COUNT(*) WARNINGS",
        b"GET DIAGNOSTICS @n = NUMBER",
        b"SELECT ROW_COUNT(), FOUND_ROWS(), LAST_INSERT_ID()",
        b"SELECT SQL_CALC_FOUND_ROWS * FROM t1 LIMIT 1",
        b"SELECT GET_LOCK('fz', 0)",
        b"SELECT RELEASE_LOCK('fz')",
        b"SELECT RELEASE_ALL_LOCKS()",
        b"LOCK TABLES t1 WRITE",
        b"LOCK TABLES t1 READ",
        b"UNLOCK TABLES",
        b"FLUSH TABLES t1 WITH READ LOCK",
        b"CREATE TEMPORARY TABLE IF NOT EXISTS tmp1 (a INT, b BLOB)",
        b"INSERT INTO tmp1 VALUES (1, 'x')",
        b"DROP TEMPORARY TABLE IF EXISTS tmp1",
        b"CREATE TABLE IF NOT EXISTS t2 (a INT, b TEXT)",
        b"DROP TABLE IF EXISTS t2",
        b"TRUNCATE TABLE t2",
        b"SELECT * FROM t1 FOR UPDATE",
        b"SELECT * FROM t1 LOCK IN SHARE MODE",
        b"SELECT * FROM t1",
        b"SELECT a, b, c FROM t1 ORDER BY a DESC LIMIT 3",
        b"SELECT 1 FROM DUAL WHERE 0",
        b"PREPARE s FROM 'SELECT ?, ?'",
        b"EXECUTE s USING @v, 1",
        b"DEALLOCATE PREPARE s",
        b"CREATE PROCEDURE IF NOT EXISTS p1() BEGIN SELECT 1; SELECT 2, 'x'; END",
        b"CALL p1()",
        b"CREATE PROCEDURE IF NOT EXISTS p2(OUT x INT) SET x = 42",
        b"CALL p2(@v)",
        b"DO 1",
        b"SHOW VARIABLES LIKE 'autocommit'",
        b"SHOW SESSION STATUS LIKE 'Com_select'",
        b"SELECT DATABASE(), USER(), CONNECTION_ID(), @@in_transaction",
        b"SELECT * FROM information_schema.SESSION_VARIABLES LIMIT 3",
        b"LOAD DATA LOCAL INFILE 'fz.csv' INTO TABLE t2",
        b"LOAD DATA LOCAL INFILE 'fz.csv' INTO TABLE t1 (b)",
        b"HANDLER t1 OPEN",
        b"HANDLER t1 READ FIRST",
        b"HANDLER t1 CLOSE",
        b"XA START 'fzx'",
        b"XA END 'fzx'",
        b"XA ROLLBACK 'fzx'",
        b"SELECT SLEEP(0)",
        b"SET STATEMENT max_statement_time = 1 FOR SELECT 1",
        b"WITH c AS (SELECT 1 AS x) SELECT * FROM c",
        b"SELECT 1; SELECT 2",
        b"SHOW CREATE TABLE t1",
        b"EXPLAIN SELECT * FROM t1",
        b"DESCRIBE t1",
        b"SHOW TABLES",
        b"SELECT",
        b"SELEC 1",
        b")",
        // Bulk execute, RETURNING read-backs, and statements whose description
        // changes under a prepared statement (t2 and v1 live in the session's schema).
        b"INSERT INTO t1 (b, c) VALUES (?, ?)",
        b"INSERT INTO t1 (b, c) VALUES (?, ?) RETURNING a, b",
        b"INSERT INTO t2 VALUES (?, ?)",
        b"UPDATE t1 SET b = ? WHERE a = ?",
        b"DELETE FROM t1 WHERE a = ?",
        b"REPLACE INTO t1 (a, b) VALUES (?, ?) RETURNING *",
        b"SELECT * FROM t2",
        b"SELECT * FROM t1 WHERE a > ?",
        b"ALTER TABLE t2 MODIFY b VARCHAR(40)",
        b"ALTER TABLE t2 MODIFY b TEXT",
        b"ALTER TABLE t2 ADD COLUMN IF NOT EXISTS d INT",
        b"ALTER TABLE t2 DROP COLUMN IF EXISTS d",
        b"CREATE OR REPLACE VIEW v1 AS SELECT a, b FROM t1",
        b"CREATE OR REPLACE VIEW v1 AS SELECT b FROM t1",
        b"SELECT * FROM v1",
        b"SET NAMES utf8mb3",
        b"SET character_set_client = latin1",
    ];
    let k = inp.u8();
    if usize::from(k) < fixed.len() {
        sql.extend_from_slice(fixed[usize::from(k)]);
        return;
    }
    match k % 14 {
        0 => {
            sql.extend_from_slice(b"SELECT ");
            expr(inp, sql, 0);
        }
        1 => {
            sql.extend_from_slice(b"SELECT ");
            expr(inp, sql, 0);
            sql.extend_from_slice(b", ");
            expr(inp, sql, 0);
            sql.extend_from_slice(b" FROM t1");
        }
        2 => {
            sql.extend_from_slice(b"SET @v = ");
            expr(inp, sql, 0);
        }
        3 => {
            sql.extend_from_slice(b"INSERT INTO t1 (b, c) VALUES (");
            literal(inp, sql);
            sql.extend_from_slice(b", ");
            expr(inp, sql, 0);
            sql.push(b')');
        }
        4 => {
            sql.extend_from_slice(b"UPDATE t1 SET b = ");
            literal(inp, sql);
            sql.extend_from_slice(b" WHERE a = ");
            number(inp, sql);
        }
        5 => {
            sql.extend_from_slice(b"DELETE FROM t1 WHERE a > ");
            number(inp, sql);
        }
        6 => {
            sql.extend_from_slice(b"USE `");
            let name = schema_name(w, inp);
            sql.extend(name.into_iter().filter(|&b| b != b'`'));
            sql.push(b'`');
        }
        7 => {
            sql.extend_from_slice(b"SELECT ");
            literal(inp, sql);
        }
        8 => {
            // A comment in front (the proxy's classifier must skip it).
            let c: &[u8] = inp.pick(&[&b"/* c */ "[..], b"-- c\n", b"# c\n", b"/*!100000 */ ", b"  \n\t"]);
            sql.extend_from_slice(c);
            statement(w, inp, sql);
        }
        9 => {
            sql.extend_from_slice(b"/* ");
            for &b in inp.text(30) {
                if b != b'*' {
                    sql.push(b);
                }
            }
            sql.extend_from_slice(b" */ SELECT 1");
        }
        10 => {
            let v: &[u8] = inp.pick(&[
                &b"SET @@session.autocommit = "[..],
                b"SET SESSION sql_select_limit = ",
                b"SET @@net_write_timeout = ",
                b"SET SESSION group_concat_max_len = ",
                b"SET @x = ",
                b"SET @@session.sql_auto_is_null = ",
            ]);
            sql.extend_from_slice(v);
            number(inp, sql);
        }
        11 => {
            // Multi-statement: needs CLIENT_MULTI_STATEMENTS / COM_SET_OPTION.
            statement(w, inp, sql);
            sql.extend_from_slice(b"; ");
            statement(w, inp, sql);
        }
        12 => {
            sql.extend_from_slice(b"SELECT * FROM t1 WHERE b = ");
            literal(inp, sql);
        }
        _ => {
            sql.extend_from_slice(b"SELECT LENGTH(");
            expr(inp, sql, 0);
            sql.extend_from_slice(b")");
        }
    }
}

/// Binary-protocol parameter values for COM_STMT_EXECUTE.
fn put_params(inp: &mut In, p: &mut Vec<u8>, count: u16) {
    if count == 0 {
        return;
    }
    let n = usize::from(count);
    let mut nulls = vec![0u8; n.div_ceil(8)];
    let types: Vec<u8> = (0..n)
        .map(|i| {
            let t = inp.pick(&[8u8, 253, 5, 6, 1, 12, 252, 3, 2, 246]);
            if t == 6 {
                nulls[i / 8] |= 1 << (i % 8);
            }
            t
        })
        .collect();
    p.extend_from_slice(&nulls);
    let bound = inp.u8() % 8 != 0;
    p.push(u8::from(bound));
    if bound {
        for t in &types {
            p.push(*t);
            p.push(if inp.u8() % 4 == 0 { 0x80 } else { 0 });
        }
    }
    for t in &types {
        put_value(inp, p, *t);
    }
}

/// One binary-protocol value of type `t`.
fn put_value(inp: &mut In, p: &mut Vec<u8>, t: u8) {
    match t {
        8 => p.extend_from_slice(&u64::from(inp.u32()).to_le_bytes()),
        5 => p.extend_from_slice(&f64::from(inp.u16()).to_le_bytes()),
        3 => p.extend_from_slice(&inp.u32().to_le_bytes()),
        2 => p.extend_from_slice(&inp.u16().to_le_bytes()),
        1 => p.push(inp.u8()),
        12 => {
            // DATETIME: length 0, 4, 7 or 11.
            let len = inp.pick(&[0u8, 4, 7, 11]);
            p.push(len);
            let d = [0xe8u8, 0x07, 11, 21, 8, 41, 0, 0, 0, 0, 0];
            p.extend_from_slice(&d[..usize::from(len)]);
        }
        6 => {}
        _ => {
            let s = inp.text(60);
            p.push(s.len() as u8);
            p.extend_from_slice(s);
        }
    }
}

/// `COM_STMT_BULK_EXECUTE` after its flags: with `send_types` the types,
/// then 1-3 rows of an indicator byte per parameter (0 a value follows,
/// 1 NULL, 2 DEFAULT, 3 IGNORE). Without `send_types` the values use the
/// types the harness picks here, which the server may read otherwise: the
/// server judges that, as on a direct connection.
fn put_bulk(inp: &mut In, p: &mut Vec<u8>, count: u16, send_types: bool) {
    let types: Vec<u8> = (0..count).map(|_| inp.pick(&[8u8, 253, 5, 3, 2, 1, 12, 252, 246])).collect();
    if send_types {
        for t in &types {
            p.push(*t);
            p.push(if inp.u8() % 4 == 0 { 0x80 } else { 0 });
        }
    }
    for _ in 0..1 + inp.u8() % 3 {
        for t in &types {
            let ind = inp.pick(&[0u8, 0, 0, 0, 1, 2, 3]);
            p.push(ind);
            if ind == 0 {
                put_value(inp, p, *t);
            }
        }
    }
}

/// The column count of a result set's first packet and, with
/// `MARIADB_CLIENT_CACHE_METADATA`, whether its definitions follow.
fn column_count(p: &[u8], cache: bool) -> Option<(u64, bool)> {
    let (n, used) = match *p.first()? {
        b @ 0..=0xfa => (u64::from(b), 1),
        0xfc => (u64::from(u16::from_le_bytes(p.get(1..3)?.try_into().ok()?)), 3),
        0xfd => {
            let b = p.get(1..4)?;
            (u64::from(b[0]) | u64::from(b[1]) << 8 | u64::from(b[2]) << 16, 4)
        }
        0xfe => (u64::from_le_bytes(p.get(1..9)?.try_into().ok()?), 9),
        _ => return None,
    };
    let follows = !cache || *p.get(used)? != 0;
    Some((n, follows))
}

/// Whose result sets the next exchange reads, for the metadata-cache check.
#[derive(Clone, Copy)]
enum Meta {
    /// Not checked.
    None,
    /// A text query: definitions always follow.
    Query,
    /// An execute (or bulk) of this client statement id.
    Stmt(u32),
}

struct Stmt {
    id: u32,
    params: u16,
}

/// Mode-3 state for one connection.
struct Session {
    c: Client,
    stmts: Vec<Stmt>,
    user: &'static str,
    password: &'static str,
    /// The last complete reply was an ERR (closing after it is allowed).
    last_err: bool,
    /// The commands sent so far in this session, for the panic messages
    /// (a finding often needs the whole sequence to be understood).
    trail: Vec<String>,
    /// Per client statement id: the column count of the definitions the
    /// client was last sent for it (by the prepare or an execute), `None`
    /// when unknown (an execute that failed after a result set began).
    defs: std::collections::HashMap<u32, Option<u64>>,
    /// What the next exchange's result sets belong to (reset after it).
    meta: Meta,
}

enum Outcome {
    Replied { err: bool, first: Vec<u8> },
    Closed,
    Stop,
}

impl Session {
    /// Sends one command and reads its whole answer, checking it.
    fn exchange(&mut self, payload: &[u8], expect: Option<Expect>, what: &str) -> Outcome {
        let mut shown: String = what.chars().take(120).collect();
        if payload.len() > 1 && !what.starts_with("COM_QUERY") {
            shown.push_str(&format!(" {}", hex(&payload[..payload.len().min(24)])));
        }
        self.trail.push(shown);
        let what = &format!("{what} [session so far: {}]", self.trail.join(" | "));
        self.c.deadline = Instant::now() + Duration::from_secs(8);
        if let Err(e) = self.c.send(0, payload) {
            if self.last_err {
                return Outcome::Stop;
            }
            // The write can fail if the proxy closed after the previous exchange.
            panic!("{what}: write failed ({e}) though the previous reply was not an ERR");
        }
        let Some(expect) = expect else {
            // The command takes no reply. A COM_PING right after must get the
            // ping's own OK: anything the proxy wrongly sent for the command
            // would arrive first (and shift every later reply by one).
            if let Outcome::Replied { first, .. } = self.exchange(&[0x0e], Some(Expect::Status), "COM_PING") {
                assert!(
                    first.first() == Some(&0x00),
                    "{what}: the proxy replied to a command that takes no reply: {}",
                    hex(&first)
                );
            }
            return Outcome::Replied { err: false, first: Vec::new() };
        };
        let mut t = ResponseTracker::new(expect, self.c.caps, StatusFlags(2));
        let mut seq = 1u8;
        let mut first: Option<Vec<u8>> = None;
        let meta = std::mem::replace(&mut self.meta, Meta::None);
        let cache = self.c.caps.contains(Capabilities::MARIADB_CLIENT_CACHE_METADATA);
        let mut sets = 0u32;
        loop {
            let (s, last, p) = match self.c.read_packet() {
                Ok(x) => x,
                Err(RErr::Closed) | Err(RErr::Io(_)) => {
                    if first.is_none() && self.last_err {
                        return Outcome::Closed;
                    }
                    panic!(
                        "{what}: proxy closed the connection without an ERR (got {} packet(s) of the reply)",
                        usize::from(first.is_some())
                    );
                }
                Err(RErr::Timeout) => {
                    TIMEOUTS.fetch_add(1, Ordering::Relaxed);
                    panic!("{what}: no complete reply within 8 s");
                }
                Err(RErr::Frame(e)) => panic!("{what}: reply does not frame: {e}"),
            };
            assert!(
                self.c.seq_ok(s, seq),
                "{what}: reply sequence id out of order: {s}, expected {seq}{}: {}",
                if self.c.compressed { " or the compressed packet's" } else { "" },
                hex(&p)
            );
            seq = last.wrapping_add(1);
            if p.first() == Some(&0xff) {
                ErrPacket::parse(&p).unwrap_or_else(|e| panic!("{what}: ERR malformed {e:?}: {}", hex(&p)));
            }
            let ev = t
                .feed(&p, p.len())
                .unwrap_or_else(|e| panic!("{what}: reply malformed {e:?}: {}", hex(&p)));
            if t.summary().result_sets != sets {
                sets = t.summary().result_sets;
                self.check_metadata(meta, cache, &p, what);
            }
            if first.is_none() {
                first = Some(p.clone());
            }
            match ev {
                Event::More => {}
                Event::LocalInfile => {
                    // Send up to two chunks of "file" and the empty end packet.
                    let _ = self.c.send(seq, b"1\tx\n2\t\\N\n");
                    seq = seq.wrapping_add(1);
                    let _ = self.c.send(seq, b"");
                    seq = seq.wrapping_add(1);
                }
                Event::Done => {
                    let err = t.summary().error.is_some()
                        || first.as_ref().is_some_and(|f| f.first() == Some(&0xff));
                    if trace() {
                        let f = first.as_deref().unwrap_or_default();
                        eprintln!(
                            "client_session: {}{} -> {} result set(s), first packet {}",
                            if self.c.compressed { "[compressed] " } else { "" },
                            self.trail.last().map_or("", String::as_str),
                            t.summary().result_sets,
                            hex(&f[..f.len().min(40)])
                        );
                    }
                    self.last_err = err;
                    if let (true, Meta::Stmt(id), true) = (err, meta, sets > 0) {
                        // Which definitions the client ended up with is not
                        // clear (the engine sends them again): stop checking.
                        self.defs.insert(id, None);
                    }
                    return Outcome::Replied { err, first: first.unwrap_or_default() };
                }
            }
        }
    }

    fn change_user(&mut self, w: &World, inp: &mut In) -> bool {
        let (user, password): (&'static str, &'static str) = match inp.u8() % 4 {
            0 | 1 => (USER, PASSWORD),
            2 => (USER2, PASSWORD2),
            _ => ("nobody", "x"),
        };
        let right = inp.u8() % 5 != 0;
        let auth = if right {
            native_password_scramble(password.as_bytes(), &self.c.scramble)
        } else {
            native_password_scramble(b"wrong", &self.c.scramble)
        };
        let db = match inp.u8() % 4 {
            0 => Vec::new(),
            1 => w.schema.as_bytes().to_vec(),
            2 => w.schema2.as_bytes().to_vec(),
            _ => ident(inp),
        };
        let plugin: &[u8] = inp.pick(&[
            MYSQL_NATIVE_PASSWORD.as_bytes(),
            MYSQL_NATIVE_PASSWORD.as_bytes(),
            b"caching_sha2_password",
            b"",
        ]);
        let mut p = BytesMut::new();
        write_change_user(&mut p, user.as_bytes(), &auth, &db, 45, plugin);
        self.c.deadline = Instant::now() + Duration::from_secs(4);
        if self.c.send(0, &p).is_err() {
            assert!(self.last_err, "COM_CHANGE_USER: write failed though the previous reply was not an ERR");
            return false;
        }
        let mut seq = 1u8;
        loop {
            let (s, last, reply) = match self.c.read_packet() {
                Ok(x) => x,
                Err(RErr::Closed) | Err(RErr::Io(_)) if self.last_err && seq == 1 => return false,
                Err(e) => panic!("COM_CHANGE_USER: no answer ({e:?})"),
            };
            assert_eq!(s, seq, "COM_CHANGE_USER reply sequence id: {}", hex(&reply));
            seq = last.wrapping_add(1);
            match reply.first() {
                Some(0x00) => {
                    OkPacket::parse(&reply, self.c.caps)
                        .unwrap_or_else(|e| panic!("COM_CHANGE_USER OK malformed {e:?}: {}", hex(&reply)));
                    self.user = user;
                    self.password = password;
                    self.stmts.clear();
                    self.defs.clear();
                    self.last_err = false;
                    return true;
                }
                Some(0xff) => {
                    ErrPacket::parse(&reply)
                        .unwrap_or_else(|e| panic!("COM_CHANGE_USER ERR malformed {e:?}: {}", hex(&reply)));
                    self.last_err = true;
                    return true;
                }
                Some(0xfe) => {
                    let sw = AuthSwitchRequest::parse(&reply)
                        .unwrap_or_else(|e| panic!("auth switch malformed {e:?}: {}", hex(&reply)));
                    let answer = if right {
                        native_password_scramble(password.as_bytes(), &sw.plugin_data)
                    } else {
                        b"garbage".to_vec()
                    };
                    self.c.scramble = sw.plugin_data.clone();
                    if self.c.send(seq, &answer).is_err() {
                        return false;
                    }
                    seq = seq.wrapping_add(1);
                }
                _ => panic!("COM_CHANGE_USER: unexpected reply {}", hex(&reply)),
            }
        }
    }

    /// A result set's first packet: with the metadata cache, definitions left
    /// out of an execute must be ones the client has (at least by count: the
    /// client reads the rows by them), and a text result set always has them.
    fn check_metadata(&mut self, meta: Meta, cache: bool, p: &[u8], what: &str) {
        let Some((count, follows)) = column_count(p, cache) else {
            return; // the tracker judged the packet
        };
        match meta {
            Meta::None => {}
            Meta::Query => assert!(follows, "{what}: a text result set without its definitions: {}", hex(p)),
            Meta::Stmt(id) if follows => {
                self.defs.insert(id, Some(count));
            }
            Meta::Stmt(id) => {
                if let Some(Some(known)) = self.defs.get(&id) {
                    assert_eq!(
                        *known,
                        count,
                        "{what}: definitions left out of a {count}-column result set of statement {id}, \
                         but the client was last sent {known}: {}",
                        hex(p)
                    );
                }
            }
        }
    }

    fn stmt_id(&self, inp: &mut In) -> (u32, u16) {
        let k = inp.u8();
        if self.stmts.is_empty() || k % 8 == 7 {
            (u32::from(k), 0)
        } else {
            let s = &self.stmts[usize::from(k) % self.stmts.len()];
            (s.id, s.params)
        }
    }
}

fn mode_commands(w: &World, flags: u8, inp: &mut In) {
    let Ok(c) = Client::connect(w.addr, Instant::now() + Duration::from_secs(4)) else {
        return;
    };
    let extras = [
        Capabilities::CLIENT_MULTI_STATEMENTS,
        Capabilities::CLIENT_DEPRECATE_EOF,
        Capabilities::CLIENT_SESSION_TRACK,
        Capabilities::CLIENT_PS_MULTI_RESULTS,
        Capabilities::CLIENT_FOUND_ROWS,
        Capabilities::CLIENT_LOCAL_FILES,
        Capabilities::CLIENT_CONNECT_ATTRS,
        Capabilities::CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA,
    ];
    let mut extra = Capabilities::EMPTY;
    let bits = inp.u8();
    for (i, e) in extras.iter().enumerate() {
        if bits & (1 << i) != 0 {
            extra = extra | *e;
        }
    }
    // What MariaDB's connectors ask for (flags bits 0-2 are free in this
    // mode); login() then clears CLIENT_MYSQL, as they do.
    let mariadb = [
        Capabilities::MARIADB_CLIENT_CACHE_METADATA,
        Capabilities::MARIADB_CLIENT_STMT_BULK_OPERATIONS,
        Capabilities::MARIADB_CLIENT_EXTENDED_METADATA,
    ];
    for (i, e) in mariadb.iter().enumerate() {
        if flags & (1 << i) != 0 {
            extra = extra | *e;
        }
    }
    if flags & 8 != 0 {
        extra = extra | Capabilities::CLIENT_COMPRESS;
    }
    let (user, password) = if flags & 0x10 != 0 { (USER2, PASSWORD2) } else { (USER, PASSWORD) };
    let db = match (flags >> 5) % 4 {
        0 | 1 => None,
        2 => Some(w.schema.as_str()),
        _ => Some(w.schema2.as_str()),
    };
    let attrs = if extra.contains(Capabilities::CLIENT_CONNECT_ATTRS) {
        vec![(b"_client_name".to_vec(), inp.text(20).to_vec())]
    } else {
        Vec::new()
    };
    let mut sess = Session {
        c,
        stmts: Vec::new(),
        user,
        password,
        last_err: false,
        trail: Vec::new(),
        defs: std::collections::HashMap::new(),
        meta: Meta::None,
    };
    if let Err(e) = sess.c.login(user, password, db, extra, attrs) {
        if user == USER2 && e.contains("1040") {
            return; // fz2 has max_connections: 4
        }
        if slow_login(&e) {
            return;
        }
        panic!("valid login ({user}, db {db:?}, extra caps {:#x}) refused: {e}", extra.0);
    }
    for _ in 0..24 {
        if inp.done() {
            break;
        }
        let k = inp.u8() % 21;
        let outcome = match k {
            0..=4 => {
                let mut sql = Vec::new();
                statement(w, inp, &mut sql);
                let mut p = vec![0x03];
                p.extend_from_slice(&sql);
                sess.meta = Meta::Query;
                sess.exchange(&p, Some(Expect::Results), &format!("COM_QUERY {}", String::from_utf8_lossy(&sql)))
            }
            5 => {
                let mut sql = Vec::new();
                statement(w, inp, &mut sql);
                let mut p = vec![0x16];
                p.extend_from_slice(&sql);
                let o = sess.exchange(&p, Some(Expect::Prepare), "COM_STMT_PREPARE");
                if let Outcome::Replied { err: false, first } = &o {
                    let ok = PrepareOk::parse(first)
                        .unwrap_or_else(|e| panic!("prepare OK malformed {e:?}: {}", hex(first)));
                    sess.stmts.push(Stmt { id: ok.stmt_id, params: ok.params });
                    sess.defs.insert(ok.stmt_id, Some(u64::from(ok.columns)));
                }
                o
            }
            6 | 7 => {
                let (id, params) = sess.stmt_id(inp);
                let mut p = vec![0x17];
                p.extend_from_slice(&id.to_le_bytes());
                p.push(inp.pick(&[0u8, 0, 1, 2, 4]));
                p.extend_from_slice(&1u32.to_le_bytes());
                put_params(inp, &mut p, params);
                sess.meta = Meta::Stmt(id);
                sess.exchange(&p, Some(Expect::Results), "COM_STMT_EXECUTE")
            }
            8 => {
                let (id, _) = sess.stmt_id(inp);
                let mut p = vec![0x1c];
                p.extend_from_slice(&id.to_le_bytes());
                p.extend_from_slice(&u32::from(inp.u8() % 4).to_le_bytes());
                sess.exchange(&p, Some(Expect::Fetch), "COM_STMT_FETCH")
            }
            9 => {
                let (id, params) = sess.stmt_id(inp);
                let mut p = vec![0x18];
                p.extend_from_slice(&id.to_le_bytes());
                p.extend_from_slice(&(u16::from(inp.u8()) % params.max(1)).to_le_bytes());
                p.extend_from_slice(inp.text(64));
                sess.exchange(&p, None, "COM_STMT_SEND_LONG_DATA")
            }
            10 => {
                let (id, _) = sess.stmt_id(inp);
                let mut p = vec![0x19];
                p.extend_from_slice(&id.to_le_bytes());
                sess.stmts.retain(|s| s.id != id);
                sess.defs.remove(&id);
                sess.exchange(&p, None, "COM_STMT_CLOSE")
            }
            11 => {
                let (id, _) = sess.stmt_id(inp);
                let mut p = vec![0x1a];
                p.extend_from_slice(&id.to_le_bytes());
                sess.exchange(&p, Some(Expect::Status), "COM_STMT_RESET")
            }
            12 => {
                let mut p = vec![0x02];
                p.extend_from_slice(&schema_name(w, inp));
                sess.exchange(&p, Some(Expect::Status), "COM_INIT_DB")
            }
            13 => {
                if !sess.change_user(w, inp) {
                    return;
                }
                continue;
            }
            14 => {
                let o = sess.exchange(&[0x1f], Some(Expect::Status), "COM_RESET_CONNECTION");
                if let Outcome::Replied { err: false, .. } = o {
                    sess.stmts.clear();
                    sess.defs.clear();
                }
                o
            }
            15 => sess.exchange(&[0x0e], Some(Expect::Status), "COM_PING"),
            16 => {
                let opt = inp.pick(&[0u16, 1, 0, 1, 2, 0xffff]);
                let mut p = vec![0x1b];
                p.extend_from_slice(&opt.to_le_bytes());
                sess.exchange(&p, Some(Expect::Status), "COM_SET_OPTION")
            }
            17 => {
                let mut p = vec![0x04];
                let table: Vec<u8> = match inp.u8() % 4 {
                    0 | 1 => b"t1".to_vec(),
                    2 => b"nope".to_vec(),
                    _ => ident(inp),
                };
                p.extend_from_slice(&table);
                p.push(0);
                p.extend_from_slice(inp.pick(&[&b""[..], b"%", b"a", b"b%"]));
                sess.exchange(&p, Some(Expect::FieldList), "COM_FIELD_LIST")
            }
            18 => {
                if inp.u8() % 2 == 0 {
                    sess.exchange(&[0x09], Some(Expect::Statistics), "COM_STATISTICS")
                } else {
                    // Commands the proxy refuses (never COM_SHUTDOWN/PROCESS_KILL/REFRESH).
                    let code = inp.pick(&[0x00u8, 0x0b, 0x0d, 0x0f, 0x10, 0x1d, 0x20, 0x42, 0xfe]);
                    let name = format!("command {code:#04x}");
                    sess.exchange(&[code], Some(Expect::Status), &name)
                }
            }
            19 => {
                // Refused (as by the server) without MARIADB_CLIENT_STMT_BULK_OPERATIONS.
                let (id, params) = sess.stmt_id(inp);
                let mut p = vec![0xfa];
                p.extend_from_slice(&id.to_le_bytes());
                let bulk_flags = inp.pick(&[128u16, 128, 128, 0, 64, 192]);
                p.extend_from_slice(&bulk_flags.to_le_bytes());
                put_bulk(inp, &mut p, params, bulk_flags & 128 != 0);
                sess.meta = Meta::Stmt(id);
                sess.exchange(&p, Some(Expect::Results), "COM_STMT_BULK_EXECUTE")
            }
            _ => {
                // COM_QUIT: the proxy closes without a word.
                let _ = sess.c.send(0, &[0x01]);
                sess.c.deadline = Instant::now() + Duration::from_secs(2);
                match sess.c.read_packet() {
                    Err(RErr::Closed) | Err(RErr::Io(_)) => {}
                    Err(RErr::Timeout) => panic!("COM_QUIT: connection still open after 2 s"),
                    Ok((_, _, p)) => panic!("COM_QUIT answered: {}", hex(&p)),
                    Err(RErr::Frame(e)) => panic!("COM_QUIT: garbage reply {e}"),
                }
                return;
            }
        };
        match outcome {
            Outcome::Replied { .. } => {}
            Outcome::Closed | Outcome::Stop => return,
        }
    }
    let _ = (&sess.user, &sess.password);
}

fuzz_target!(|data: &[u8]| {
    let w = world();
    let mut inp = In { d: data, p: 0 };
    let mode = inp.u8();
    let flags = inp.u8();
    match mode % 4 {
        0 => mode_raw(w, flags, &mut inp),
        1 => mode_login(w, flags, &mut inp),
        2 => mode_stream(w, flags, &mut inp),
        _ => mode_commands(w, flags, &mut inp),
    }
    health(w, data);
    let n = INPUTS.fetch_add(1, Ordering::Relaxed) + 1;
    if n % 20000 == 0 {
        eprintln!(
            "client_session: {n} inputs, {} slow health checks, {} timeouts",
            SLOW_HEALTH.load(Ordering::Relaxed),
            TIMEOUTS.load(Ordering::Relaxed)
        );
    }
});
