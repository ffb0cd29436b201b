//! Bad clients: garbage, wrong sequence ids, malformed and unknown
//! commands, half packets, slowloris and idle clients. Each gets a clear
//! ERR where the protocol allows and is closed (or carries on where the
//! error is recoverable); a good client running alongside never notices.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use funnel_config::Config;
use funnel_engine::Proxy;
use funnel_protocol::response::ErrPacket;
use funnel_testkit::mini_client::{MiniClient, MiniError};
use funnel_testkit::MariaDb;
use mysql::prelude::Queryable;
use mysql::{Conn, OptsBuilder};

fn start(extra: &str) -> (Proxy, String) {
    let db = MariaDb::shared();
    let schema = db.fresh_database("hostile");
    let backend = format!("{schema}_b");
    db.create_user(&backend, "bpw");
    let yaml = format!(
        "listen: 127.0.0.1:0\ncores: 1\n\
         users:\n  - name: app\n    password: apppw\n    default_schema: {schema}\n\
         backends:\n  - name: primary\n    address: {}\n    user: {backend}\n    password: bpw\n{extra}",
        db.addr()
    );
    (
        funnel_testkit::funnel::start(Config::from_yaml_str(&yaml).unwrap()),
        schema,
    )
}

/// Reads packets until an ERR arrives (returning it) or the peer closes.
fn next_err(s: &mut TcpStream) -> Option<ErrPacket> {
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        while buf.len() >= 4 {
            let len = usize::from(buf[0]) | usize::from(buf[1]) << 8 | usize::from(buf[2]) << 16;
            if buf.len() < 4 + len {
                break;
            }
            let payload: Vec<u8> = buf[4..4 + len].to_vec();
            buf.drain(..4 + len);
            if payload.first() == Some(&0xff) {
                return ErrPacket::parse(&payload).ok();
            }
        }
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

fn closed(s: &mut TcpStream) -> bool {
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut b = [0u8; 64];
    loop {
        match s.read(&mut b) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(_) => return false,
        }
    }
}

/// A good client querying in the background; returns its error count at the end.
fn good_client(port: u16) -> (Arc<AtomicBool>, thread::JoinHandle<usize>) {
    let stop = Arc::new(AtomicBool::new(false));
    let s = stop.clone();
    let handle = thread::spawn(move || {
        let mut c = Conn::new(
            OptsBuilder::new()
                .ip_or_hostname(Some("127.0.0.1"))
                .tcp_port(port)
                .user(Some("app"))
                .pass(Some("apppw"))
                .prefer_socket(false),
        )
        .unwrap();
        let errors = AtomicUsize::new(0);
        let mut i = 0i64;
        while !s.load(Ordering::Relaxed) {
            match c.query_first::<i64, _>(format!("SELECT {i}")) {
                Ok(Some(v)) if v == i => {}
                _ => {
                    errors.fetch_add(1, Ordering::Relaxed);
                }
            }
            i += 1;
        }
        errors.load(Ordering::Relaxed)
    });
    (stop, handle)
}

#[test]
fn hostile_clients_get_clear_errors_and_never_disturb_others() {
    let (proxy, schema) = start("client:\n  handshake_timeout: 500ms\n");
    let addr = proxy.local_addr();
    let (stop, good) = good_client(addr.port());

    // Garbage before the handshake (an HTTP request).
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let err = next_err(&mut s).expect("an ERR for garbage");
    assert_eq!(err.code, 1043, "{err}");
    assert!(closed(&mut s));

    // A command with a wrong sequence id.
    let mut c = MiniClient::connect(addr, "app", "apppw", Some(&schema)).unwrap();
    c.write_raw(&[9, 0, 0, 5, 0x03, b'S', b'E', b'L', b'E', b'C', b'T', b' ', b'1'])
        .unwrap();
    let (_, p) = c.read_packet().unwrap();
    assert_eq!(ErrPacket::parse(&p).unwrap().code, 1156);

    // Unknown and malformed commands: an ERR, and the session goes on.
    let mut c = MiniClient::connect(addr, "app", "apppw", Some(&schema)).unwrap();
    c.send_command(&[0x42]).unwrap();
    let (_, p) = c.read_packet().unwrap();
    assert_eq!(ErrPacket::parse(&p).unwrap().code, 1047);
    c.send_command(&[0x19, 1]).unwrap(); // COM_STMT_CLOSE with a truncated id
    c.send_command(&[0x17, 1, 0]).unwrap(); // COM_STMT_EXECUTE, truncated
    let (_, p) = c.read_packet().unwrap();
    assert_eq!(p[0], 0xff, "a malformed command gets an ERR");
    assert_eq!(
        c.query("SELECT 5").unwrap().rows(),
        &[vec![Some("5".to_string())]]
    );

    // Half a packet, then gone.
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(&[200, 0, 0, 1, 1, 2, 3]).unwrap();
    drop(s);

    // Slowloris: connects and says nothing.
    let started = Instant::now();
    let mut s = TcpStream::connect(addr).unwrap();
    let err = next_err(&mut s).expect("an ERR after the handshake timeout");
    assert_eq!(err.code, 1159, "{err}");
    assert!(started.elapsed() >= Duration::from_millis(450));
    assert!(closed(&mut s));

    // A login with a garbage auth response length.
    let mut s = TcpStream::connect(addr).unwrap();
    let mut greeting = [0u8; 512];
    let _ = s.read(&mut greeting).unwrap();
    let mut login = vec![0u8; 4];
    login.extend_from_slice(&(0x0000_8200u32 | 1).to_le_bytes()); // PROTOCOL_41 | SECURE_CONNECTION | LONG_PASSWORD
    login.extend_from_slice(&[0, 0, 0, 1, 45]);
    login.extend_from_slice(&[0; 23]);
    login.extend_from_slice(b"app\0");
    login.push(250); // claims 250 bytes of auth response, sends 2
    login.extend_from_slice(&[1, 2]);
    let len = (login.len() - 4) as u32;
    login[..3].copy_from_slice(&len.to_le_bytes()[..3]);
    login[3] = 1;
    s.write_all(&login).unwrap();
    let err = next_err(&mut s).expect("an ERR for a malformed login");
    assert_eq!(err.code, 1043, "{err}");

    thread::sleep(Duration::from_millis(200));
    stop.store(true, Ordering::Relaxed);
    assert_eq!(good.join().unwrap(), 0, "the good client never noticed");
}

#[test]
fn hostile_idle_clients_are_told_before_they_are_closed() {
    let (proxy, schema) = start("client:\n  idle_timeout: 300ms\n");
    let mut c = MiniClient::connect(proxy.local_addr(), "app", "apppw", Some(&schema)).unwrap();
    assert!(c.query("SELECT 1").is_ok());
    thread::sleep(Duration::from_millis(600));
    match c.read_packet() {
        Ok((_, p)) => assert_eq!(ErrPacket::parse(&p).unwrap().code, 4031),
        Err(MiniError::Io(e)) => panic!("closed without a word: {e}"),
        Err(e) => panic!("{e:?}"),
    }
}

/// A client asking for a character set servers refuse for clients (utf16,
/// ucs2, utf32, ...) is refused at login with MariaDB's own ERR 1231, not
/// later by the backend: Funnel used to open a backend connection with it,
/// whose refused logins put the whole pool into its connect back-off and
/// held back other clients' connections (found by the client_session
/// fuzzer). New clients meanwhile get connections at once.
#[test]
fn hostile_refused_client_charsets_get_1231_and_hold_back_nobody() {
    use funnel_protocol::Capabilities;
    let (proxy, _) = start("pool:\n  max_per_core: 4\n  min_idle_per_core: 0\n");
    let addr = proxy.local_addr();
    for (id, name) in [(54u8, "utf16"), (35, "ucs2"), (60, "utf32"), (56, "utf16le")] {
        match MiniClient::connect_with_charset(addr, "app", "apppw", None, Capabilities::EMPTY, id) {
            Err(MiniError::Server(e)) => {
                assert_eq!(e.code, 1231, "{id}: {}", e.message_text());
                assert!(e.message_text().contains(name), "{}", e.message_text());
            }
            Ok(_) => panic!("collation {id} ({name}) was accepted"),
            Err(e) => panic!("collation {id}: {e:?}"),
        }
        // A fresh client right after needs a new backend connection (each
        // a different charset, so a new pool key) and gets it at once.
        let started = Instant::now();
        let mut ok = MiniClient::connect_with_charset(addr, "app", "apppw", None, Capabilities::EMPTY, 8)
            .unwrap_or_else(|e| panic!("latin1 client after {name}: {e:?}"));
        assert_eq!(ok.query("SELECT 1").unwrap().rows()[0][0].as_deref(), Some("1"));
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
    }
    // Unknown collation ids are accepted, as the server accepts them (it
    // falls back to its default character set).
    let mut c =
        MiniClient::connect_with_charset(addr, "app", "apppw", None, Capabilities::EMPTY, 250).unwrap();
    assert_eq!(c.query("SELECT 2").unwrap().rows()[0][0].as_deref(), Some("2"));
}

/// A backend that lacks a capability Funnel promised its clients (a server
/// older than MariaDB 10.2 has no DEPRECATE_EOF) would answer in a shape
/// the client cannot parse: the connection is refused with a clear 9003.
#[test]
fn hostile_backend_without_the_clients_capabilities_is_refused() {
    use funnel_protocol::handshake::HandshakeV10;
    use funnel_protocol::{Capabilities, StatusFlags};
    let old = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = old.local_addr().unwrap();
    thread::spawn(move || {
        for conn in old.incoming() {
            let Ok(mut conn) = conn else { continue };
            let mut greeting = bytes::BytesMut::new();
            HandshakeV10 {
                server_version: b"5.5.5-10.1.48-MariaDB".to_vec(),
                connection_id: 7,
                auth_plugin_data: vec![b'x'; 20],
                capabilities: Capabilities(
                    Capabilities::CLIENT_MYSQL.0
                        | Capabilities::CLIENT_PROTOCOL_41.0
                        | Capabilities::CLIENT_SECURE_CONNECTION.0
                        | Capabilities::CLIENT_PLUGIN_AUTH.0
                        | Capabilities::CLIENT_TRANSACTIONS.0
                        | Capabilities::CLIENT_MULTI_RESULTS.0,
                ),
                charset: 45,
                status: StatusFlags::SERVER_STATUS_AUTOCOMMIT,
                auth_plugin_name: b"mysql_native_password".to_vec(),
            }
            .write(&mut greeting);
            let mut framed = bytes::BytesMut::new();
            funnel_protocol::framing::write_packet(&mut framed, 0, &greeting);
            let _ = conn.write_all(&framed);
            let mut sink = [0u8; 1024];
            let _ = conn.read(&mut sink);
        }
    });
    let yaml = format!(
        "listen: 127.0.0.1:0\ncores: 1\n\
         users:\n  - name: app\n    password: apppw\n\
         backends:\n  - name: old\n    address: {addr}\n    user: u\n    password: p\n\
         pool:\n  min_idle_per_core: 0\nbacklog:\n  wait_timeout: 1s\n"
    );
    let proxy = funnel_testkit::funnel::start(Config::from_yaml_str(&yaml).unwrap());
    let mut c = MiniClient::connect_with(
        proxy.local_addr(),
        "app",
        "apppw",
        None,
        Capabilities::CLIENT_DEPRECATE_EOF | Capabilities::CLIENT_SESSION_TRACK,
    )
    .unwrap();
    let started = Instant::now();
    match c.query("SELECT 1") {
        Err(MiniError::Server(err)) => {
            assert_eq!(err.code, 9003, "{err:?}");
            assert!(
                String::from_utf8_lossy(&err.message).contains("lacks capabilities"),
                "{err:?}"
            );
        }
        other => panic!("expected 9003, got {other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(5));
}

/// A client that stops halfway through a command is closed after
/// `client.net_read_timeout`, as MariaDB closes it, with ERR 1159 for a
/// client that reads on: before, it was held until `client.idle_timeout`
/// (never, by default), with what it had sent and, inside a transaction,
/// the backend connection the next client waits for.
#[test]
fn hostile_clients_stalled_mid_command_are_closed_after_net_read_timeout() {
    let (proxy, schema) = start(
        "pool:\n  max_per_core: 1\n  min_idle_per_core: 1\n\
         client:\n  net_read_timeout: 400ms\n",
    );
    let addr = proxy.local_addr();
    // A transaction holds the only connection; then half a COM_QUERY.
    let mut stalled = MiniClient::connect(addr, "app", "apppw", Some(&schema)).unwrap();
    assert!(stalled.query("BEGIN").is_ok());
    assert!(stalled.query("SELECT 1").is_ok());
    let mut half = vec![100u8, 0, 0, 0, 0x03];
    half.extend_from_slice(b"SELECT ");
    stalled.write_raw(&half).unwrap();
    // The next client gets the connection once the stalled one is closed.
    let started = Instant::now();
    let mut next = MiniClient::connect(addr, "app", "apppw", Some(&schema)).unwrap();
    assert!(next.query("SELECT 2").is_ok(), "the next client was served");
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "served only after the stall ended"
    );
    match stalled.read_packet() {
        Ok((_, p)) => assert_eq!(ErrPacket::parse(&p).unwrap().code, 1159),
        Err(e) => panic!("closed without a word: {e:?}"),
    }
    let mut s = stalled.try_clone_stream().unwrap();
    assert!(closed(&mut s));

    // Waiting for a command's first byte is idleness, not a stall: with no
    // idle timeout the client stays.
    let mut idle = MiniClient::connect(addr, "app", "apppw", Some(&schema)).unwrap();
    thread::sleep(Duration::from_millis(900));
    assert!(idle.query("SELECT 3").is_ok());
}

/// A server whose `max_allowed_packet` is 1 MiB (backend user `backend`,
/// a fresh schema named after `schema`) behind a Funnel with one backend
/// connection, kept open: the server, the proxy and the schema.
fn small_packet_env(backend: &str, schema: &str) -> (MariaDb, funnel_engine::Proxy, String) {
    let db = MariaDb::builder()
        .server_arg("--max-allowed-packet=1M")
        .start()
        .unwrap();
    db.create_user(backend, "bpw");
    let schema = db.fresh_database(schema);
    let yaml = format!(
        "listen: 127.0.0.1:0\ncores: 1\n\
         users:\n  - name: app\n    password: apppw\n    default_schema: {schema}\n\
         backends:\n  - name: primary\n    address: {}\n    user: {backend}\n    password: bpw\n\
         pool:\n  max_per_core: 1\n  min_idle_per_core: 1\n",
        db.addr()
    );
    let proxy = funnel_testkit::funnel::start(Config::from_yaml_str(&yaml).unwrap());
    (db, proxy, schema)
}

/// An error the server sends just before it closes the connection (here
/// 1153, a statement over its `max_allowed_packet`): the client gets it,
/// and the connection is not given to the next client, who would get 9007
/// on it. The statement calls only a built-in, so no reset after its
/// failure meets the closed connection first (one after a statement that
/// may run stored code did, and hid this until 1ae9d1d).
#[test]
fn hostile_a_backend_error_that_closes_the_connection_takes_it_out_of_the_pool() {
    let (_db, proxy, schema) = small_packet_env("closing_b", "closing");
    let mut a = MiniClient::connect(proxy.local_addr(), "app", "apppw", Some(&schema)).unwrap();
    let big = format!("SELECT LENGTH('{}')", "x".repeat(1_100_000));
    // The server's 1153, or 9007 when it reset the connection while Funnel
    // was still writing (directly: 1153 or "server has gone away").
    match a.query(&big) {
        Err(MiniError::Server(e)) => assert!(matches!(e.code, 1153 | 9007), "{e:?}"),
        other => panic!("{other:?}"),
    }
    // At once, inside the pool's stale-check window.
    let mut b = MiniClient::connect(proxy.local_addr(), "app", "apppw", Some(&schema)).unwrap();
    let r = b.query("SELECT 1");
    assert!(r.is_ok(), "the next client got {r:?}");
}

/// The same for a `COM_STMT_PREPARE` over the server's
/// `max_allowed_packet` (1153, and the server closes the connection):
/// Funnel runs a prepare itself, apart from the relay of other commands,
/// and gave the connection back to the pool, where the next client got
/// ERR 9007.
#[test]
fn hostile_a_prepare_the_server_closes_the_connection_after_takes_it_out_of_the_pool() {
    let (_db, proxy, schema) = small_packet_env("closing_p", "closing_p");
    let mut a = MiniClient::connect(proxy.local_addr(), "app", "apppw", Some(&schema)).unwrap();
    let mut prepare = vec![0x16];
    prepare.extend_from_slice(format!("SELECT LENGTH('{}')", "x".repeat(1_100_000)).as_bytes());
    match a.roundtrip(&prepare, funnel_protocol::tracker::Expect::Prepare) {
        Ok(reply) => assert_eq!(
            reply[0].first(),
            Some(&0xff),
            "{:?}",
            &reply[0][..reply[0].len().min(64)]
        ),
        Err(e) => panic!("{e:?}"),
    }
    let mut b = MiniClient::connect(proxy.local_addr(), "app", "apppw", Some(&schema)).unwrap();
    let r = b.query("SELECT 1");
    assert!(r.is_ok(), "the next client got {r:?}");
}

/// Reads one whole text-protocol answer of the client's: the OK or ERR
/// packet, or a result set's packets up to its last EOF.
fn next_answer(c: &mut MiniClient) -> Vec<Vec<u8>> {
    let (_, first) = c.read_packet().unwrap();
    if matches!(first.first(), Some(0x00) | Some(0xff)) {
        return vec![first];
    }
    let mut got = vec![first];
    let mut eofs = 0;
    while eofs < 2 {
        let (_, p) = c.read_packet().unwrap();
        if p.first() == Some(&0xfe) && p.len() < 9 {
            eofs += 1;
        }
        got.push(p);
    }
    got
}

/// Commands a client writes back to back without waiting (as drivers do
/// after a COM_STMT_CLOSE, which has no answer, or when they pipeline) are
/// run in order, each answered in order, with the session carried across.
#[test]
fn hostile_pipelined_commands_are_answered_in_order() {
    let (proxy, schema) = start("pool:\n  max_per_core: 2\n  min_idle_per_core: 2\n");
    let mut c = MiniClient::connect(proxy.local_addr(), "app", "apppw", Some(&schema)).unwrap();
    assert!(c.query("CREATE TABLE pipe (id INT PRIMARY KEY)").is_ok());
    let mut all = bytes::BytesMut::new();
    let commands: [&[u8]; 8] = [
        b"\x03SELECT 40 + 2",
        b"\x03SET @a = 5",
        b"\x19\xe7\x03\x00\x00", // COM_STMT_CLOSE of an unknown id: no answer
        b"\x03BEGIN",
        b"\x03INSERT INTO pipe VALUES (1)",
        b"\x03SELECT @a, COUNT(*) FROM pipe",
        b"\x03ROLLBACK",
        b"\x03SELECT COUNT(*) FROM pipe",
    ];
    for cmd in commands {
        funnel_protocol::framing::write_packet(&mut all, 0, cmd);
    }
    c.write_raw(&all).unwrap();
    let text = |a: &[Vec<u8>]| String::from_utf8_lossy(&a.concat()).into_owned();
    let first = next_answer(&mut c);
    assert!(text(&first).contains("42"), "{first:?}");
    for what in ["SET", "BEGIN", "INSERT"] {
        let a = next_answer(&mut c);
        assert_eq!(a[0][0], 0x00, "{what}: {a:?}");
    }
    let a = next_answer(&mut c);
    assert!(
        text(&a).contains("\x015\x011"),
        "@a and the row inside the transaction: {a:?}"
    );
    assert_eq!(next_answer(&mut c)[0][0], 0x00, "ROLLBACK");
    let a = next_answer(&mut c);
    assert!(text(&a).contains("\x010"), "rolled back: {a:?}");
    assert!(c.query("SELECT 1").is_ok(), "the session goes on");

    // A write with COM_QUIT right behind it still runs.
    let mut last = bytes::BytesMut::new();
    funnel_protocol::framing::write_packet(&mut last, 0, b"\x03INSERT INTO pipe VALUES (2)");
    funnel_protocol::framing::write_packet(&mut last, 0, b"\x01");
    c.write_raw(&last).unwrap();
    assert_eq!(next_answer(&mut c)[0][0], 0x00, "the INSERT before the quit");
    let mut other = MiniClient::connect(proxy.local_addr(), "app", "apppw", Some(&schema)).unwrap();
    let rows = other.query("SELECT COUNT(*) FROM pipe").unwrap();
    assert_eq!(rows.rows()[0][0].as_deref(), Some("1"));
}

/// One step of [`own_error_scene`], as text: a result's rows, an OK's
/// affected rows, or an ERR's code.
fn step(c: &mut MiniClient, sql: &str) -> String {
    match c.query(sql) {
        Ok(funnel_testkit::mini_client::QueryResult::Ok(ok)) => format!("{sql}: ok {}", ok.affected_rows),
        Ok(funnel_testkit::mini_client::QueryResult::Rows { rows, .. }) => format!("{sql}: {rows:?}"),
        Err(MiniError::Server(e)) => format!("{sql}: ERR {}", e.code),
        Err(e) => panic!("{sql}: {e:?}"),
    }
}

/// Commands the server fails without running a statement, which Funnel
/// answers itself, then what the client reads of that failure, on `c`.
fn own_error_scene(c: &mut MiniClient, in_transaction: bool) -> Vec<String> {
    let commands: [(&str, &[u8]); 4] = [
        (
            "execute of an unknown id",
            b"\x17\x06\x12\x0f\x00\x00\x01\x00\x00\x00",
        ),
        ("reset of an unknown id", b"\x1a\x06\x12\x0f\x00"),
        ("fetch of an unknown id", b"\x1c\x06\x12\x0f\x00\x0a\x00\x00\x00"),
        ("unknown command", b"\x99"),
    ];
    let mut out = Vec::new();
    if in_transaction {
        out.push(step(c, "BEGIN"));
    }
    for (what, payload) in commands {
        let fail = |c: &mut MiniClient, out: &mut Vec<String>| {
            c.send_command(payload).unwrap();
            let (_, p) = c.read_packet().unwrap();
            assert_eq!(p[0], 0xff, "{what}: {p:?}");
            out.push(format!("{what}: ERR {}", u16::from_le_bytes([p[1], p[2]])));
        };
        // ROW_COUNT() reads -1 after it, not the INSERT's 2.
        out.push(step(c, "INSERT INTO own_err VALUES (1), (2)"));
        fail(c, &mut out);
        out.push(step(c, "SELECT ROW_COUNT()"));
        // Its error replaces the warning of the statement before, and
        // stays until a statement that opens a table.
        out.push(step(c, "SELECT CAST('x' AS INT)"));
        fail(c, &mut out);
        for sql in [
            "SELECT @@warning_count, @@error_count",
            "SHOW WARNINGS",
            "SET @after = 1",
            "SHOW WARNINGS",
            "SELECT COUNT(*) > 0 FROM own_err",
            "SHOW WARNINGS",
        ] {
            out.push(step(c, sql));
        }
    }
    if in_transaction {
        out.push(step(c, "ROLLBACK"));
    }
    out
}

/// After an ERR Funnel made itself (a command naming a statement id the
/// client never prepared, a command byte it does not know), the client's
/// `ROW_COUNT()`, `@@warning_count`, `@@error_count` and `SHOW WARNINGS`
/// read that error, as on a direct connection, where the server failed the
/// command: with two backend connections, in a transaction and out of one.
/// Before, they read the previous statement's (ROW_COUNT() 2, no warnings).
#[test]
fn hostile_funnels_own_errors_leave_the_diagnostics_of_a_direct_connection() {
    let (proxy, schema) = start("pool:\n  max_per_core: 2\n  min_idle_per_core: 2\n");
    let db = MariaDb::shared();
    let mut setup = MiniClient::connect(db.addr(), "root", "", Some(&schema)).unwrap();
    assert!(setup.query("CREATE TABLE own_err (id INT)").is_ok());
    for in_transaction in [false, true] {
        let mut direct =
            MiniClient::connect(db.addr(), &format!("{schema}_b"), "bpw", Some(&schema)).unwrap();
        let mut through = MiniClient::connect(proxy.local_addr(), "app", "apppw", Some(&schema)).unwrap();
        let want = own_error_scene(&mut direct, in_transaction);
        assert!(
            want.contains(&"SELECT ROW_COUNT(): [[Some(\"-1\")]]".to_string())
                && want.contains(
                    &"SELECT @@warning_count, @@error_count: [[Some(\"1\"), Some(\"1\")]]".to_string()
                )
                && want
                    .iter()
                    .any(|s| s.starts_with("SHOW WARNINGS: [[Some(\"Error\"), Some(\"1047\")")),
            "direct: {want:#?}"
        );
        assert_eq!(
            own_error_scene(&mut through, in_transaction),
            want,
            "in a transaction: {in_transaction}"
        );
    }
}

#[test]
fn hostile_packet_over_max_packet_size_gets_its_err_after_sending_it_whole() {
    // A client sends its whole oversized packet before it reads (as most
    // do): Funnel refuses it at its header, and must let the client take
    // the ERR. Closing at once with the rest unread reset the connection,
    // and the client's write failed (EPIPE / ECONNRESET) before any ERR.
    let (proxy, schema) = start("client:\n  max_packet_size: 1MiB\n");
    for _ in 0..3 {
        let mut raw = MiniClient::connect(proxy.local_addr(), "app", "apppw", Some(&schema)).unwrap();
        let mut payload = vec![0x03];
        payload.extend_from_slice(&vec![b'x'; 6 * 1024 * 1024]);
        let mut framed = bytes::BytesMut::new();
        funnel_protocol::framing::write_packet(&mut framed, 0, &payload);
        raw.write_raw(&framed).expect("the whole packet is taken");
        match raw.read_packet() {
            Ok((_, reply)) => assert_eq!(ErrPacket::parse(&reply).unwrap().code, 1153),
            Err(e) => panic!("no ERR: {e:?}"),
        }
    }
    // Other clients go on.
    let mut c = MiniClient::connect(proxy.local_addr(), "app", "apppw", Some(&schema)).unwrap();
    assert!(c.query("SELECT 1").is_ok());
}
