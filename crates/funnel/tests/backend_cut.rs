//! A backend connection cut at chosen points of a response, seen by real
//! libmariadb clients (the `mariadb` CLI, and libmariadb's prepared
//! statements loaded with `dlopen`). Through Funnel the client must get an
//! ERR it can parse or a lost connection (2013), the same as a direct
//! connection cut the same way: never a malformed packet (2027), never a
//! hang. Funnel then serves the next client normally.
//!
//! The cut is made by a small TCP relay between Funnel and MariaDB. A
//! statement carries a marker comment, `/*cut:P:E*/`: the relay forwards the
//! first `P` packets of the server's reply to it plus `E` more bytes, then
//! closes both sides, as a backend killed at that point would.
//! `/*cutexec:P:E*/` in a prepared statement's text cuts the reply to its
//! next `COM_STMT_EXECUTE` instead. `P:E:stall` keeps the connection open
//! and forwards nothing more, as a hung backend would.

use std::ffi::{c_char, c_int, c_uint, c_ulong, c_void, CStr, CString};
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};

use std::sync::{Arc, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use funnel_config::Config;
use funnel_engine::Proxy;
use funnel_testkit::cli::Cli;
use funnel_testkit::libmariadb::sym;
use funnel_testkit::MariaDb;

/// How long any one client run may take before it counts as a hang.
const HANG_LIMIT: Duration = Duration::from_secs(20);

// ---------------------------------------------------------------------------
// The cutting relay.

/// What the relay does to the reply of a marked command.
#[derive(Clone, Copy, Debug)]
struct Cut {
    /// Whole packets forwarded.
    packets: usize,
    /// Bytes forwarded after them.
    extra: usize,
    /// Then the server seems to hang (nothing more is forwarded, the
    /// connection stays open) instead of dying.
    stall: bool,
    /// Instead: the `P` packets and a malformed one after them (an ERR
    /// header alone) go in one write, as from a broken server, once per
    /// test process.
    garbage: bool,
}

/// Parses `P:E*/` (or `P:E:stall*/`, `P:E:garbage*/`) after a marker.
fn parse_cut(text: &[u8], marker: &str) -> Option<Cut> {
    let text = String::from_utf8_lossy(text);
    let at = text.find(marker)? + marker.len();
    let rest = &text[at..];
    let end = rest.find("*/")?;
    let mut parts = rest[..end].split(':');
    let packets = parts.next()?.parse().ok()?;
    let extra = parts.next()?.parse().ok()?;
    let mode = parts.next();
    Some(Cut {
        packets,
        extra,
        stall: mode == Some("stall"),
        garbage: mode == Some("garbage"),
    })
}

/// A TCP relay in front of `upstream` that cuts marked replies.
struct CutRelay {
    addr: SocketAddr,
}

impl CutRelay {
    fn start(upstream: SocketAddr) -> CutRelay {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                thread::spawn(move || relay_one(client, upstream));
            }
        });
        CutRelay { addr }
    }
}

/// One relayed connection: the client's packets go up unchanged (arming a
/// cut when marked), the server's reply comes down until an armed cut.
fn relay_one(client: TcpStream, upstream: SocketAddr) {
    let Ok(server) = TcpStream::connect(upstream) else {
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let armed: Arc<Mutex<Option<Cut>>> = Arc::default();
    {
        let (mut from, mut to) = (client.try_clone().unwrap(), server.try_clone().unwrap());
        let armed = armed.clone();
        thread::spawn(move || {
            let mut buf = Vec::new();
            let mut chunk = [0u8; 16 * 1024];
            let mut pending_exec: Option<Cut> = None;
            loop {
                let n = match from.read(&mut chunk) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                buf.extend_from_slice(&chunk[..n]);
                while buf.len() >= 4 {
                    let len = buf[0] as usize | (buf[1] as usize) << 8 | (buf[2] as usize) << 16;
                    if buf.len() < 4 + len {
                        break;
                    }
                    let payload = &buf[4..4 + len];
                    match payload.first() {
                        Some(0x03) => {
                            if let Some(c) = parse_cut(payload, "/*cut:") {
                                *armed.lock().unwrap() = Some(c);
                            }
                        }
                        Some(0x16) => {
                            if let Some(c) = parse_cut(payload, "/*cutexec:") {
                                pending_exec = Some(c);
                            }
                        }
                        Some(0x17) => {
                            if let Some(c) = pending_exec.take() {
                                *armed.lock().unwrap() = Some(c);
                            }
                        }
                        _ => {}
                    }
                    // Armed before the command leaves, so the whole reply is seen armed.
                    if to.write_all(&buf[..4 + len]).is_err() {
                        return;
                    }
                    buf.drain(..4 + len);
                }
            }
            let _ = to.shutdown(Shutdown::Write);
        });
    }
    let (mut from, mut to) = (server, client);
    let mut buf: Vec<u8> = Vec::new();
    let mut chunk = [0u8; 64 * 1024];
    let mut cut: Option<Cut> = None;
    loop {
        let n = match from.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        buf.extend_from_slice(&chunk[..n]);
        if cut.is_none() {
            cut = armed.lock().unwrap().take();
        }
        static GARBAGE_SENT: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
        if cut.is_some_and(|c| c.garbage && GARBAGE_SENT.load(std::sync::atomic::Ordering::SeqCst)) {
            cut = None;
        }
        let Some(c) = cut.as_mut() else {
            if to.write_all(&buf).is_err() {
                break;
            }
            buf.clear();
            continue;
        };
        if c.garbage {
            // Once the packets to send are here: all of them and the
            // malformed one in one write (one read for Funnel).
            let (mut at, mut found, mut next_seq) = (0, 0, 1u8);
            while found < c.packets {
                let Some(h) = buf.get(at..at + 4) else { break };
                next_seq = h[3].wrapping_add(1);
                at += 4 + (h[0] as usize | (h[1] as usize) << 8 | (h[2] as usize) << 16);
                found += 1;
            }
            if found < c.packets || at > buf.len() {
                continue;
            }
            let mut out = buf[..at].to_vec();
            out.extend_from_slice(&[1, 0, 0, next_seq, 0xff]);
            GARBAGE_SENT.store(true, std::sync::atomic::Ordering::SeqCst);
            let _ = to.write_all(&out);
            let _ = to.flush();
            thread::sleep(Duration::from_millis(50));
            break;
        }
        while c.packets > 0 && buf.len() >= 4 {
            let len = buf[0] as usize | (buf[1] as usize) << 8 | (buf[2] as usize) << 16;
            if buf.len() < 4 + len {
                break;
            }
            if to.write_all(&buf[..4 + len]).is_err() {
                return;
            }
            buf.drain(..4 + len);
            c.packets -= 1;
        }
        if c.packets == 0 && buf.len() >= c.extra {
            let _ = to.write_all(&buf[..c.extra]);
            let _ = to.flush();
            if c.stall {
                // Swallow the rest until the server or Funnel ends it.
                while matches!(from.read(&mut chunk), Ok(n) if n > 0) {}
                break;
            }
            // Let the last bytes arrive on their own before the end, as
            // when the server dies a moment after writing them.
            thread::sleep(Duration::from_millis(50));
            break;
        }
    }
    let _ = to.shutdown(Shutdown::Both);
    let _ = from.shutdown(Shutdown::Both);
}

// ---------------------------------------------------------------------------
// Clients.

/// What a client run ended with.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Seen {
    /// It succeeded, with this output.
    Ok(String),
    /// It reported this error number and message.
    Error(u32, String),
    /// It did not end within [`HANG_LIMIT`].
    Hung,
}

impl Seen {
    fn code(&self) -> Option<u32> {
        match self {
            Seen::Error(c, _) => Some(*c),
            _ => None,
        }
    }
}

/// Runs `sql` with the `mariadb` CLI (`quick` reads rows one by one,
/// through `mysql_use_result`).
fn cli(port: u16, user: &str, pw: &str, sql: &str, quick: bool) -> Seen {
    let mut cli = Cli::tcp("127.0.0.1", port, user, pw)
        .arg("--skip-ssl")
        .arg("--skip-reconnect")
        // Keep the marker comments: the CLI strips comments by default.
        .arg("--comments")
        // Room for the 16 MiB rows of one case.
        .arg("--max-allowed-packet=64M");
    if quick {
        cli = cli.arg("--quick");
    }
    let Some(out) = cli.run_within(sql, HANG_LIMIT) else {
        return Seen::Hung;
    };
    if out.success {
        let out = String::from_utf8_lossy(&out.stdout);
        return Seen::Ok(if out.len() <= 100 {
            out.trim().to_string()
        } else {
            format!("{} lines, {} bytes", out.lines().count(), out.len())
        });
    }
    // "ERROR 2013 (HY000) at line 1: Lost connection ..."
    Seen::Error(out.error_code().unwrap_or(0), out.stderr.trim().to_string())
}

/// The few libmariadb functions the prepared-statement client needs,
/// loaded at run time so the test needs no C headers or linking.
struct LibMariaDb {
    init: unsafe extern "C" fn(*mut c_void) -> *mut c_void,
    options: unsafe extern "C" fn(*mut c_void, c_int, *const c_void) -> c_int,
    connect: unsafe extern "C" fn(
        *mut c_void,
        *const c_char,
        *const c_char,
        *const c_char,
        *const c_char,
        c_uint,
        *const c_char,
        c_ulong,
    ) -> *mut c_void,
    errno: unsafe extern "C" fn(*mut c_void) -> c_uint,
    error: unsafe extern "C" fn(*mut c_void) -> *const c_char,
    close: unsafe extern "C" fn(*mut c_void),
    stmt_init: unsafe extern "C" fn(*mut c_void) -> *mut c_void,
    stmt_prepare: unsafe extern "C" fn(*mut c_void, *const c_char, c_ulong) -> c_int,
    stmt_execute: unsafe extern "C" fn(*mut c_void) -> c_int,
    stmt_store_result: unsafe extern "C" fn(*mut c_void) -> c_int,
    stmt_fetch: unsafe extern "C" fn(*mut c_void) -> c_int,
    stmt_errno: unsafe extern "C" fn(*mut c_void) -> c_uint,
    stmt_error: unsafe extern "C" fn(*mut c_void) -> *const c_char,
    stmt_close: unsafe extern "C" fn(*mut c_void) -> c_char,
}

/// `MYSQL_OPT_READ_TIMEOUT`: a hang guard.
const MYSQL_OPT_READ_TIMEOUT: c_int = 11;
/// `mysql_stmt_fetch`'s end of rows.
const MYSQL_NO_DATA: c_int = 100;

fn libmariadb() -> &'static LibMariaDb {
    static LIB: OnceLock<LibMariaDb> = OnceLock::new();
    LIB.get_or_init(|| unsafe {
        let h = funnel_testkit::libmariadb::open();
        let lib = LibMariaDb {
            init: sym(h, "mysql_init"),
            options: sym(h, "mysql_options"),
            connect: sym(h, "mysql_real_connect"),
            errno: sym(h, "mysql_errno"),
            error: sym(h, "mysql_error"),
            close: sym(h, "mysql_close"),
            stmt_init: sym(h, "mysql_stmt_init"),
            stmt_prepare: sym(h, "mysql_stmt_prepare"),
            stmt_execute: sym(h, "mysql_stmt_execute"),
            stmt_store_result: sym(h, "mysql_stmt_store_result"),
            stmt_fetch: sym(h, "mysql_stmt_fetch"),
            stmt_errno: sym(h, "mysql_stmt_errno"),
            stmt_error: sym(h, "mysql_stmt_error"),
            stmt_close: sym(h, "mysql_stmt_close"),
        };
        // mysql_init's one-time library set-up is not thread-safe: do it here, once.
        let m = (lib.init)(std::ptr::null_mut());
        (lib.close)(m);
        lib
    })
}

/// Prepares `sql` with libmariadb and executes it, reading the rows
/// buffered (`mysql_stmt_store_result`) or one by one.
fn prepared(port: u16, user: &str, pw: &str, db: Option<&str>, sql: &str, buffered: bool) -> Seen {
    let lib = libmariadb();
    let host = CString::new("127.0.0.1").unwrap();
    let (user, pw, sql) = (
        CString::new(user).unwrap(),
        CString::new(pw).unwrap(),
        CString::new(sql).unwrap(),
    );
    let db = db.map(|d| CString::new(d).unwrap());
    unsafe {
        let m = (lib.init)(std::ptr::null_mut());
        let timeout: c_uint = HANG_LIMIT.as_secs() as c_uint;
        (lib.options)(
            m,
            MYSQL_OPT_READ_TIMEOUT,
            &timeout as *const c_uint as *const c_void,
        );
        let conn_err = |m| {
            let e = CStr::from_ptr((lib.error)(m)).to_string_lossy().into_owned();
            Seen::Error((lib.errno)(m), e)
        };
        let started = Instant::now();
        if (lib.connect)(
            m,
            host.as_ptr(),
            user.as_ptr(),
            pw.as_ptr(),
            db.as_ref().map_or(std::ptr::null(), |d| d.as_ptr()),
            port as c_uint,
            std::ptr::null(),
            0,
        )
        .is_null()
        {
            let e = conn_err(m);
            (lib.close)(m);
            return e;
        }
        let s = (lib.stmt_init)(m);
        // An unbuffered fetch that loses the connection may leave the
        // statement's error empty and set only the connection's.
        let stmt_err = |s| match (lib.stmt_errno)(s) {
            0 => conn_err(m),
            n => Seen::Error(
                n,
                CStr::from_ptr((lib.stmt_error)(s)).to_string_lossy().into_owned(),
            ),
        };
        let mut seen = if (lib.stmt_prepare)(s, sql.as_ptr(), sql.as_bytes().len() as c_ulong) != 0
            || (lib.stmt_execute)(s) != 0
            || (buffered && (lib.stmt_store_result)(s) != 0)
        {
            stmt_err(s)
        } else {
            let mut rows = 0;
            loop {
                match (lib.stmt_fetch)(s) {
                    0 => rows += 1,
                    MYSQL_NO_DATA => break Seen::Ok(format!("{rows} rows")),
                    _ => break stmt_err(s),
                }
            }
        };
        if started.elapsed() >= HANG_LIMIT {
            seen = Seen::Hung;
        }
        (lib.stmt_close)(s);
        (lib.close)(m);
        seen
    }
}

// ---------------------------------------------------------------------------
// Set-up.

struct Env {
    schema: String,
    relay: CutRelay,
    proxy: Proxy,
}

/// The shared server, with room for rows over 16 MiB (set once, before any
/// connection of this test binary that needs it is opened).
fn server() -> &'static MariaDb {
    static READY: OnceLock<()> = OnceLock::new();
    let db = MariaDb::shared();
    READY.get_or_init(|| db.exec("SET GLOBAL max_allowed_packet = 64 * 1024 * 1024"));
    db
}

/// Funnel in front of the cutting relay, in front of the shared server;
/// `pool` is extra YAML for the `pool:` section.
fn env(pool: &str) -> Env {
    let db = server();
    let schema = db.fresh_database("cut");
    let backend_user = format!("{schema}_b");
    db.create_user(&backend_user, "bpw");
    let relay = CutRelay::start(db.addr());
    // No case cuts a login: the connect timeout only needs to outlast a
    // loaded machine (1 s failed a login once beside the whole suite).
    let yaml = format!(
        "listen: 127.0.0.1:0\ncores: 1\n\
         users:\n  - name: app\n    password: apppw\n    default_schema: {schema}\n\
         backends:\n  - name: primary\n    address: {addr}\n    user: {backend_user}\n    password: bpw\n\
         pool:\n  max_per_core: 4\n  min_idle_per_core: 1\n  connect_timeout: 5s\n{pool}",
        addr = relay.addr
    );
    let cfg = Config::from_yaml_str(&yaml).unwrap_or_else(|e| panic!("{e}\n{yaml}"));
    Env {
        schema,
        relay,
        proxy: funnel_testkit::funnel::start(cfg),
    }
}

impl Env {
    fn funnel_port(&self) -> u16 {
        self.proxy.local_addr().port()
    }

    /// Runs `sql` with the CLI straight through the relay (no Funnel).
    fn direct_cli(&self, sql: &str, quick: bool) -> Seen {
        let user = format!("{}_b", self.schema);
        cli(
            self.relay.addr.port(),
            &user,
            "bpw",
            &format!("USE {}; {sql}", self.schema),
            quick,
        )
    }

    fn direct_prepared(&self, sql: &str, buffered: bool) -> Seen {
        let user = format!("{}_b", self.schema);
        prepared(
            self.relay.addr.port(),
            &user,
            "bpw",
            Some(&self.schema),
            sql,
            buffered,
        )
    }

    /// Funnel serves a new client normally.
    fn assert_serves_next_client(&self, after: &str) {
        assert_eq!(
            cli(self.funnel_port(), "app", "apppw", "SELECT 42", false),
            Seen::Ok("42".into()),
            "the next client after {after}"
        );
    }
}

/// What a libmariadb client must see through Funnel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Expect {
    /// Funnel's ERR 9007, at a packet boundary.
    Err,
    /// Its own 2013: Funnel closed the connection mid-packet.
    Lost,
}

/// A statement whose reply the relay cuts, and what the client must see.
struct Case {
    name: &'static str,
    sql: String,
    expect: Expect,
}

/// Checks one client run through Funnel against the case, and the same cut
/// made on a direct connection (which proves the cut happened: 2013).
fn check(case: &Case, client: &str, direct: Seen, funnel: Seen) {
    let what = format!("{} ({client})", case.name);
    assert_eq!(
        direct.code(),
        Some(2013),
        "{what}: direct connection saw {direct:?}"
    );
    assert_ne!(funnel, Seen::Hung, "{what}: the client hung");
    assert_ne!(funnel.code(), Some(2027), "{what}: malformed packet: {funnel:?}");
    match case.expect {
        Expect::Err => match &funnel {
            Seen::Error(9007, msg) => assert!(
                msg.contains("Lost connection to backend 'primary' during query"),
                "{what}: {msg}"
            ),
            other => panic!("{what}: expected ERR 9007, got {other:?}"),
        },
        Expect::Lost => assert_eq!(funnel.code(), Some(2013), "{what}: {funnel:?}"),
    }
}

/// Text-protocol cut points. A three-column result is packet 0 (the column
/// count), 1-3 (definitions), 4 (their EOF: libmariadb does not ask for
/// DEPRECATE_EOF), then the rows.
fn text_cases() -> Vec<Case> {
    let small = |p: usize, e: usize| {
        format!("SELECT seq, REPEAT('x', 20) AS pad, seq * 2 AS twice FROM seq_1_to_50 /*cut:{p}:{e}*/")
    };
    // Two columns; packet 4 is the first 100,000-byte row (relayed in pieces).
    let big = |p: usize, e: usize| {
        format!("SELECT seq, REPEAT('y', 100000) AS big FROM seq_1_to_3 /*cut:{p}:{e}*/")
    };
    let case = |name, sql, expect| Case { name, sql, expect };
    use Expect::*;
    vec![
        case("before any reply", small(0, 0), Err),
        case("after the column count", small(1, 0), Err),
        case("after one column definition", small(2, 0), Err),
        case("inside a column definition", small(2, 10), Err),
        case("after all column definitions", small(4, 0), Err),
        case("after the column-definition EOF", small(5, 0), Err),
        case("after some rows", small(10, 0), Err),
        case("inside a small row", small(10, 6), Err),
        case("before a large row", big(4, 0), Err),
        case("inside a large row", big(4, 30_000), Lost),
        case("just inside a large row", big(4, 24), Lost),
        case("after a large row", big(5, 0), Err),
        // One column: a 17,000,000-byte row is a full 16 MiB chunk (packet
        // 3) continued by packet 4.
        case(
            "between the 16 MiB chunks of a row",
            "SELECT REPEAT('z', 17000000) AS huge /*cut:4:0*/".into(),
            Lost,
        ),
        case(
            "between two results",
            "SELECT 1 /*cut:3:0*/; SELECT seq FROM seq_1_to_5".into(),
            Err,
        ),
        case(
            "inside the second result",
            "SELECT 1 /*cut:5:0*/; SELECT seq FROM seq_1_to_5".into(),
            Err,
        ),
    ]
}

#[test]
fn backend_cut_text_results_end_in_an_err_or_a_lost_connection() {
    let e = env("");
    for case in text_cases() {
        for quick in [false, true] {
            let client = if quick { "mariadb --quick" } else { "mariadb" };
            let direct = e.direct_cli(&case.sql, quick);
            let funnel = cli(e.funnel_port(), "app", "apppw", &case.sql, quick);
            check(&case, client, direct, funnel);
            e.assert_serves_next_client(case.name);
        }
    }
}

#[test]
fn backend_cut_prepared_execute_ends_in_an_err_or_a_lost_connection() {
    let e = env("");
    let small = |p: usize, e: usize| {
        format!("SELECT seq, REPEAT('x', 20) AS pad, seq * 2 AS twice FROM seq_1_to_50 /*cutexec:{p}:{e}*/")
    };
    let big = |p: usize, e: usize| {
        format!("SELECT seq, REPEAT('y', 100000) AS big FROM seq_1_to_3 /*cutexec:{p}:{e}*/")
    };
    let case = |name, sql, expect| Case { name, sql, expect };
    use Expect::*;
    let cases = vec![
        case("execute: before any reply", small(0, 0), Err),
        case("execute: after the column count", small(1, 0), Err),
        case("execute: after one column definition", small(2, 0), Err),
        case("execute: after all column definitions", small(4, 0), Err),
        case("execute: after the column-definition EOF", small(5, 0), Err),
        case("execute: after some rows", small(10, 0), Err),
        case("execute: inside a row", small(10, 6), Err),
        case("execute: inside a large row", big(4, 30_000), Lost),
    ];
    for case in cases {
        for buffered in [true, false] {
            let client = if buffered {
                "mysql_stmt_store_result"
            } else {
                "mysql_stmt_fetch"
            };
            let direct = e.direct_prepared(&case.sql, buffered);
            let funnel = prepared(e.funnel_port(), "app", "apppw", None, &case.sql, buffered);
            check(&case, client, direct, funnel);
            e.assert_serves_next_client(case.name);
        }
    }
}

#[test]
fn backend_cut_query_timeout_inside_a_large_row_closes_the_client() {
    // The backend stalls instead of dying: pool.query_timeout ends the
    // relay, and an ERR 1969 there would be read as row data.
    let e = env("  query_timeout: 1s\n");
    let sql = "SELECT seq, REPEAT('y', 100000) AS big FROM seq_1_to_3 /*cut:4:30000:stall*/";
    let started = Instant::now();
    let funnel = cli(e.funnel_port(), "app", "apppw", sql, false);
    assert_eq!(funnel.code(), Some(2013), "{funnel:?}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    // At a packet boundary the timeout is still a clear ERR.
    let sql = "SELECT seq, REPEAT('y', 100000) AS big FROM seq_1_to_3 /*cut:4:0:stall*/";
    let funnel = cli(e.funnel_port(), "app", "apppw", sql, false);
    assert_eq!(funnel.code(), Some(1969), "{funnel:?}");
    e.assert_serves_next_client("a query timeout");
}

#[test]
fn backend_cut_metadata_cache_sends_again_definitions_a_failed_execute_never_delivered() {
    // The server's new definitions (the table changed since the prepare)
    // arrive with a malformed packet in one read: the client gets ERR 9007
    // and none of them. Its next execute must carry them, not leave them
    // out as if the client had them.
    use funnel_protocol::tracker::Expect;
    use funnel_protocol::Capabilities;
    use funnel_testkit::mini_client::MiniClient;
    let e = env("");
    let cache = Capabilities::MARIADB_CLIENT_CACHE_METADATA;
    let mut c =
        MiniClient::connect_with(e.proxy.local_addr(), "app", "apppw", Some(&e.schema), cache).unwrap();
    assert!(c.caps().contains(cache));
    for sql in [
        "CREATE TABLE t (id INT PRIMARY KEY, c VARCHAR(10))",
        "INSERT INTO t VALUES (1, 'one')",
    ] {
        c.query(sql).unwrap();
    }
    let mut prepare = vec![0x16];
    prepare.extend_from_slice(b"SELECT c FROM t WHERE id = 1 /*cutexec:2:0:garbage*/");
    let reply = c.roundtrip(&prepare, Expect::Prepare).unwrap();
    let id = u32::from_le_bytes(reply[0][1..5].try_into().unwrap());
    c.query("ALTER TABLE t MODIFY c VARCHAR(20)").unwrap();
    let mut execute = vec![0x17];
    execute.extend_from_slice(&id.to_le_bytes());
    execute.extend_from_slice(&[0, 1, 0, 0, 0]);
    let broken = c.roundtrip(&execute, Expect::Results).unwrap();
    assert_eq!(&broken[0][..3], &[0xff, 0x2f, 0x23], "ERR 9007: {broken:?}");
    let reply = c.roundtrip(&execute, Expect::Results).unwrap();
    assert_eq!(reply[0], [1, 1], "the definitions follow: {reply:?}");
    assert!(reply[1].windows(1).any(|w| w == [b'c']), "{reply:?}");
}
