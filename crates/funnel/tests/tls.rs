//! TLS for clients, with the real `mariadb` client: `--ssl` gets an
//! encrypted session that carries results (large ones too), a user with
//! `require_tls` is refused in plaintext (3159), others may use either.

use funnel_config::Config;
use funnel_testkit::cli::Cli;
use funnel_testkit::MariaDb;

/// The `mariadb` CLI's run of `sql` as `user` (password `pw`), with TLS
/// or without: whether it succeeded, and its output and errors.
fn mariadb_cli(port: u16, user: &str, ssl: bool, sql: &str) -> (bool, String) {
    let out = Cli::tcp("127.0.0.1", port, user, "pw")
        .arg(if ssl { "--ssl" } else { "--skip-ssl" })
        .run(sql);
    (out.success, out.text())
}

#[test]
fn tls_logins_with_the_mariadb_client() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = funnel_testkit::certs::self_signed(dir.path(), "127.0.0.1");

    let db = MariaDb::shared();
    let schema = db.fresh_database("tls");
    db.create_user("tls_b", "bpw");
    let yaml = format!(
        "listen: 127.0.0.1:0\ncores: 1\n\
         users:\n  - name: secure\n    password: pw\n    default_schema: {schema}\n    require_tls: true\n\
         \x20 - name: either\n    password: pw\n    default_schema: {schema}\n\
         backends:\n  - name: primary\n    address: {}\n    user: tls_b\n    password: bpw\n\
         client:\n  tls:\n    cert: {}\n    key: {}\n",
        db.addr(),
        cert.display(),
        key.display()
    );
    let proxy = funnel_testkit::funnel::start(Config::from_yaml_str(&yaml).unwrap());
    let port = proxy.local_addr().port();

    let (ok, text) = mariadb_cli(port, "secure", true, "status");
    assert!(ok && text.contains("Cipher in use"), "{text}");
    let (ok, text) = mariadb_cli(
        port,
        "secure",
        true,
        "SELECT 40 + 2; SELECT LENGTH(REPEAT('x', 200000))",
    );
    assert!(ok && text.contains("42") && text.contains("200000"), "{text}");
    let (ok, text) = mariadb_cli(port, "secure", true, "SELECT REPEAT('ab', 100000)");
    assert!(
        ok && text.trim().len() == 200000,
        "a large value through TLS: {} bytes",
        text.trim().len()
    );

    let (ok, text) = mariadb_cli(port, "secure", false, "SELECT 1");
    assert!(
        !ok && text.contains("3159"),
        "plaintext refused for require_tls: {text}"
    );

    let (ok, text) = mariadb_cli(port, "either", false, "SELECT 7");
    assert!(ok && text.trim() == "7", "{text}");
    // COM_CHANGE_USER to a TLS-only user over plain TCP is refused too.
    {
        use mysql::prelude::Queryable;
        let opts = mysql::OptsBuilder::new()
            .ip_or_hostname(Some("127.0.0.1"))
            .tcp_port(port)
            .user(Some("either"))
            .pass(Some("pw"))
            .prefer_socket(false);
        let mut c = mysql::Conn::new(opts).unwrap();
        assert_eq!(c.query_first::<i64, _>("SELECT 8").unwrap(), Some(8));
        let change = mysql::ChangeUserOpts::default()
            .with_user(Some("secure".into()))
            .with_pass(Some("pw".into()));
        match c.change_user(change) {
            Err(mysql::Error::MySqlError(e)) => assert_eq!(e.code, 3159, "{e}"),
            other => panic!("change to a TLS-only user in plaintext: {other:?}"),
        }
    }
    let (ok, text) = mariadb_cli(port, "either", true, "status");
    assert!(ok && text.contains("Cipher in use"), "{text}");

    // The compressed protocol inside TLS: large values both ways.
    let out = Cli::tcp("127.0.0.1", port, "secure", "pw")
        .arg("--ssl")
        .arg("--compress")
        .run(&format!(
            "status; SELECT LENGTH('{}'); SELECT REPEAT('ab', 100000)",
            "y".repeat(100_000)
        ));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.success, "{}", out.stderr);
    assert!(
        text.contains("Cipher in use") && text.contains("Compressed"),
        "{text}"
    );
    assert!(text.contains("\n100000\n"), "a 100 KB statement in");
    assert!(text.contains(&"ab".repeat(100000)), "a 200 KB value out");
}

/// Logs in the way a MySQL 8 client does: `caching_sha2_password` first,
/// answering with `answer` (the scramble of `password` when `None`), and
/// answering an auth switch to `mysql_native_password` with `password`.
fn caching_sha2_login(port: u16, user: &[u8], password: &[u8], answer: Option<Vec<u8>>) -> Vec<Vec<u8>> {
    use funnel_protocol::auth::{caching_sha2_scramble, native_password_scramble, CACHING_SHA2_PASSWORD};
    use funnel_protocol::handshake::{HandshakeResponse41, HandshakeV10};
    use funnel_protocol::Capabilities;
    use std::io::Write;
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    let (_, greeting) = funnel_testkit::mini_client::read_raw_packet(&mut s).unwrap();
    let greeting = HandshakeV10::parse(&greeting).unwrap();
    let resp = HandshakeResponse41 {
        capabilities: Capabilities(
            Capabilities::CLIENT_PROTOCOL_41.0
                | Capabilities::CLIENT_SECURE_CONNECTION.0
                | Capabilities::CLIENT_PLUGIN_AUTH.0
                | Capabilities::CLIENT_MYSQL.0,
        ),
        max_packet_size: 1 << 24,
        charset: 45,
        username: user.to_vec(),
        auth_response: answer.unwrap_or_else(|| caching_sha2_scramble(password, &greeting.auth_plugin_data)),
        database: None,
        auth_plugin_name: Some(CACHING_SHA2_PASSWORD.as_bytes().to_vec()),
        attributes: Vec::new(),
    };
    let mut out = bytes::BytesMut::new();
    resp.write(&mut out);
    let mut framed = bytes::BytesMut::new();
    funnel_protocol::framing::write_packet(&mut framed, 1, &out);
    s.write_all(&framed).unwrap();
    // Collect packets until OK or ERR ends the login.
    let mut got = Vec::new();
    loop {
        let (seq, p) = funnel_testkit::mini_client::read_raw_packet(&mut s).unwrap();
        let last = matches!(p.first(), Some(0x00) | Some(0xff));
        if p.first() == Some(&0xfe) {
            // Auth switch: plugin name, NUL, scramble (NUL-terminated).
            let data = &p[p.iter().position(|&b| b == 0).unwrap() + 1..];
            let data = data.strip_suffix(&[0]).unwrap_or(data);
            let mut framed = bytes::BytesMut::new();
            funnel_protocol::framing::write_packet(
                &mut framed,
                seq.wrapping_add(1),
                &native_password_scramble(password, data),
            );
            s.write_all(&framed).unwrap();
        }
        got.push(p);
        if last {
            return got;
        }
    }
}

#[test]
fn mysql8_clients_log_in_with_caching_sha2_fast_path() {
    let db = MariaDb::shared();
    let schema = db.fresh_database("sha2");
    let backend = format!("{schema}_b");
    db.create_user(&backend, "bpw");
    let yaml = format!(
        "listen: 127.0.0.1:0\ncores: 1\n\
         users:\n  - name: app\n    password: pw\n    default_schema: {schema}\n\
         \x20 - name: nopw\n    password: \"\"\n    default_schema: {schema}\n\
         backends:\n  - name: primary\n    address: {}\n    user: {backend}\n    password: bpw\n",
        db.addr()
    );
    let proxy = funnel_testkit::funnel::start(Config::from_yaml_str(&yaml).unwrap());
    let port = proxy.local_addr().port();

    // Right password: "fast auth success" (0x01 0x03), then OK.
    let good = caching_sha2_login(port, b"app", b"pw", None);
    assert_eq!(good.len(), 2, "{good:?}");
    assert_eq!(good[0], vec![0x01, 0x03]);
    assert_eq!(good[1][0], 0x00);

    // Wrong password: no fast-auth marker; the same steps as for a user
    // that does not exist (a switch to mysql_native_password, then access
    // denied), so the replies do not tell which user names are known.
    let bad = caching_sha2_login(port, b"app", b"nope", None);
    let unknown = caching_sha2_login(port, b"nobody", b"nope", None);
    for got in [&bad, &unknown] {
        assert_eq!(got.len(), 2, "{got:?}");
        assert_eq!(got[0][0], 0xfe, "auth switch: {got:?}");
        let err = funnel_protocol::response::ErrPacket::parse(&got[1]).unwrap();
        assert_eq!(err.code, 1045);
    }
    // After the switch, the right password still logs in.
    let switched = caching_sha2_login(port, b"app", b"pw", Some(vec![7; 32]));
    assert_eq!(switched.last().unwrap()[0], 0x00, "{switched:?}");

    // An empty password answered with one zero byte, as libmysqlclient does.
    for answer in [vec![], vec![0]] {
        let got = caching_sha2_login(port, b"nopw", b"", Some(answer.clone()));
        assert_eq!(got[0], vec![0x01, 0x03], "{answer:?}: {got:?}");
        assert_eq!(got[1][0], 0x00);
    }
}

/// Funnel with client TLS (`cert`, `key`) in front of the shared server:
/// user `secure` (password `pw`, TLS required) in a fresh schema named
/// after `prefix`; `client` adds lines under `client:`, `extra` top-level
/// sections.
fn tls_funnel(
    prefix: &str,
    cert: &std::path::Path,
    key: &std::path::Path,
    client: &str,
    extra: &str,
) -> funnel_engine::Proxy {
    let db = MariaDb::shared();
    let schema = db.fresh_database(prefix);
    let backend = format!("{prefix}_b");
    db.create_user(&backend, "bpw");
    let yaml = format!(
        "listen: 127.0.0.1:0\ncores: 1\n\
         users:\n  - name: secure\n    password: pw\n    default_schema: {schema}\n    require_tls: true\n\
         backends:\n  - name: primary\n    address: {}\n    user: {backend}\n    password: bpw\n\
         {extra}client:\n{client}  tls:\n    cert: {}\n    key: {}\n",
        db.addr(),
        cert.display(),
        key.display()
    );
    funnel_testkit::funnel::start(Config::from_yaml_str(&yaml).unwrap())
}

/// An SSLRequest with `caps`, framed as the client's packet 1.
fn ssl_request(caps: u32) -> Vec<u8> {
    let mut payload = Vec::with_capacity(32);
    payload.extend_from_slice(&caps.to_le_bytes());
    payload.extend_from_slice(&(1u32 << 24).to_le_bytes());
    payload.push(45);
    payload.extend_from_slice(&[0; 23]);
    let mut framed = bytes::BytesMut::new();
    funnel_protocol::framing::write_packet(&mut framed, 1, &payload);
    framed.to_vec()
}

/// Sends `sql` over TLS and returns the first packet of its answer.
fn tls_query(c: &mut TlsClient, sql: &str) -> Vec<u8> {
    use std::io::Write;
    let mut framed = bytes::BytesMut::new();
    funnel_protocol::framing::write_packet(&mut framed, 0, &[b"\x03", sql.as_bytes()].concat());
    c.write_all(&framed).unwrap();
    read_tls_packet(c).unwrap()
}

/// How long a test client waits for each answer.
const WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// How long a client of a login storm waits: a few hundred RSA-4096
/// signatures queue seconds of work on a loaded test machine.
const STORM_WAIT: std::time::Duration = std::time::Duration::from_secs(60);

/// A TLS stream logged in by hand, so a test can send part of a record.
type TlsClient = rustls::StreamOwned<rustls::ClientConnection, std::net::TcpStream>;

/// Logs in over TLS with `mysql_native_password`: greeting, SSLRequest
/// with the TLS hello right behind it, the TLS handshake, then the login
/// inside TLS. Each read waits up to `wait`.
fn tls_login(port: u16, user: &[u8], password: &[u8], wait: std::time::Duration) -> TlsClient {
    let s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    tls_login_over(s, user, password, wait)
}

/// [`tls_login`] over a connection already made (and maybe begun: a
/// balancer's PROXY header sent).
fn tls_login_over(
    mut s: std::net::TcpStream,
    user: &[u8],
    password: &[u8],
    wait: std::time::Duration,
) -> TlsClient {
    use funnel_protocol::auth::native_password_scramble;
    use funnel_protocol::handshake::{HandshakeResponse41, HandshakeV10};
    use funnel_protocol::Capabilities;
    use std::io::Write;
    s.set_read_timeout(Some(wait)).unwrap();
    let (_, greeting) = funnel_testkit::mini_client::read_raw_packet(&mut s).unwrap();
    let greeting = HandshakeV10::parse(&greeting).unwrap();
    let caps = Capabilities::CLIENT_PROTOCOL_41.0
        | Capabilities::CLIENT_SECURE_CONNECTION.0
        | Capabilities::CLIENT_PLUGIN_AUTH.0
        | Capabilities::CLIENT_SSL.0
        | Capabilities::CLIENT_MYSQL.0;
    let settings = funnel_config::BackendTls {
        mode: funnel_config::BackendTlsMode::Required,
        ca: None,
        server_name: None,
    };
    let spec = funnel_engine::tls::backend_config(&settings, "127.0.0.1").unwrap();
    let mut conn = rustls::ClientConnection::new(spec.config, spec.server_name).unwrap();
    // The SSLRequest and the TLS hello in one write, as a client that does
    // not wait between them may have them arrive.
    let mut first = ssl_request(caps as u32);
    conn.write_tls(&mut first).unwrap();
    s.write_all(&first).unwrap();
    let mut tls = rustls::StreamOwned::new(conn, s);
    let resp = HandshakeResponse41 {
        capabilities: Capabilities(caps),
        max_packet_size: 1 << 24,
        charset: 45,
        username: user.to_vec(),
        auth_response: native_password_scramble(password, &greeting.auth_plugin_data),
        database: None,
        auth_plugin_name: Some(b"mysql_native_password".to_vec()),
        attributes: Vec::new(),
    };
    let mut out = bytes::BytesMut::new();
    resp.write(&mut out);
    let mut framed = bytes::BytesMut::new();
    funnel_protocol::framing::write_packet(&mut framed, 2, &out);
    tls.write_all(&framed).unwrap();
    let ok = read_tls_packet(&mut tls).unwrap();
    assert_eq!(ok.first(), Some(&0x00), "logged in: {ok:?}");
    tls
}

/// Reads one packet's payload through TLS.
fn read_tls_packet(tls: &mut TlsClient) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut head = [0u8; 4];
    tls.read_exact(&mut head)?;
    let len = usize::from(head[0]) | usize::from(head[1]) << 8 | usize::from(head[2]) << 16;
    let mut payload = vec![0; len];
    tls.read_exact(&mut payload)?;
    Ok(payload)
}

/// A client's TLS hello that arrives with its SSLRequest (clients send
/// it without waiting for anything) starts the handshake. Before, Funnel
/// refused such a login ("data after the SSL request"), so under load,
/// when a shard read both at once, TLS logins failed at random.
#[test]
fn tls_a_hello_sent_with_the_ssl_request_logs_in() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = funnel_testkit::certs::self_signed(dir.path(), "127.0.0.1");
    let proxy = tls_funnel("tls_hello", &cert, &key, "", "");
    let mut c = tls_login(proxy.local_addr().port(), b"secure", b"pw", WAIT);
    let ok = tls_query(&mut c, "DO 1");
    assert_eq!(ok.first(), Some(&0x00), "a statement over TLS: {ok:?}");
}

/// A TLS client behind a balancer of `client.proxy_protocol_networks`:
/// the header, then the greeting, then the SSLRequest with the TLS hello
/// in one write; the login and its statements run over TLS with the
/// header's address (a `client_addr` rule for it applies).
#[test]
fn tls_a_client_behind_a_proxy_protocol_balancer_logs_in() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = funnel_testkit::certs::self_signed(dir.path(), "127.0.0.1");
    let proxy = tls_funnel(
        "tls_balanced",
        &cert,
        &key,
        "  proxy_protocol_networks: [127.0.0.2]\n",
        "query_rules:\n  - match_prefix: 'DO 2'\n    client_addr: 10.9.8.7\n    error: 'from behind the balancer'\n",
    );
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    s.bind(&std::net::SocketAddr::from(([127, 0, 0, 2], 0)).into())
        .unwrap();
    s.connect(&proxy.local_addr().into()).unwrap();
    let mut s: std::net::TcpStream = s.into();
    s.write_all(b"PROXY TCP4 10.9.8.7 127.0.0.1 40000 3306\r\n")
        .unwrap();
    let mut c = tls_login_over(s, b"secure", b"pw", WAIT);
    assert_eq!(tls_query(&mut c, "DO 1").first(), Some(&0x00));
    let err = tls_query(&mut c, "DO 2");
    assert_eq!(err.first(), Some(&0xff), "{err:?}");
    assert!(
        String::from_utf8_lossy(&err).contains("from behind the balancer"),
        "{err:?}"
    );
}

/// A TLS client that stops partway through a record has begun a command:
/// it is closed after `client.net_read_timeout` with ERR 1159, as a plain
/// client stalled mid-packet is. Before, nothing had been decrypted, so
/// it counted as idle and was held until `client.idle_timeout` (never, by
/// default), inside a transaction with the only backend connection.
#[test]
fn tls_a_client_stalled_mid_record_is_closed_after_net_read_timeout() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = funnel_testkit::certs::self_signed(dir.path(), "127.0.0.1");
    let proxy = tls_funnel(
        "tls_stall",
        &cert,
        &key,
        "  net_read_timeout: 400ms\n",
        "pool:\n  max_per_core: 1\n  min_idle_per_core: 1\n",
    );
    let port = proxy.local_addr().port();

    // A transaction holds the only connection; then half a record.
    let mut stalled = tls_login(port, b"secure", b"pw", WAIT);
    for sql in ["BEGIN", "SELECT 1"] {
        let first = tls_query(&mut stalled, sql);
        if first.first() != Some(&0x00) {
            // SELECT 1: column count, column, EOF, row, EOF.
            for _ in 0..4 {
                read_tls_packet(&mut stalled).unwrap();
            }
        }
    }
    let mut framed = bytes::BytesMut::new();
    funnel_protocol::framing::write_packet(&mut framed, 0, b"\x03SELECT 2");
    stalled.conn.writer().write_all(&framed).unwrap();
    let mut record = Vec::new();
    stalled.conn.write_tls(&mut record).unwrap();
    stalled.sock.write_all(&record[..record.len() / 2]).unwrap();

    // The next client gets the connection once the stalled one is closed.
    let started = std::time::Instant::now();
    let (ok, text) = mariadb_cli(port, "secure", true, "SELECT 3");
    assert!(ok && text.trim() == "3", "the next client was served: {text}");
    assert!(
        started.elapsed() >= std::time::Duration::from_millis(300),
        "served only after the stall ended"
    );
    match read_tls_packet(&mut stalled) {
        Ok(p) => {
            assert_eq!(p.first(), Some(&0xff), "{p:?}");
            assert_eq!(u16::from_le_bytes([p[1], p[2]]), 1159, "{p:?}");
        }
        Err(e) => panic!("closed without a word: {e:?}"),
    }

    // Waiting for a command's first record is idleness, not a stall.
    let mut idle = tls_login(port, b"secure", b"pw", WAIT);
    std::thread::sleep(std::time::Duration::from_millis(900));
    let ok = tls_query(&mut idle, "DO 1");
    assert_eq!(ok.first(), Some(&0x00), "the idle TLS client stayed: {ok:?}");
}

/// A client whose TLS handshake is still unfinished at
/// `client.handshake_timeout` is closed without a word: it reads TLS
/// records only. Before, it got a plaintext ERR 1159, which OpenSSL
/// reports as "wrong version number" (sysbench's 1024 TLS threads at once
/// on a loaded core showed it).
#[test]
fn tls_a_handshake_unfinished_at_the_deadline_is_closed_without_plaintext() {
    use std::io::{Read, Write};
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = funnel_testkit::certs::self_signed(dir.path(), "127.0.0.1");
    let proxy = tls_funnel("tls_slow", &cert, &key, "  handshake_timeout: 400ms\n", "");
    let mut s = std::net::TcpStream::connect(proxy.local_addr()).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .unwrap();
    funnel_testkit::mini_client::read_raw_packet(&mut s).unwrap();
    // An SSLRequest, then half a TLS record, then nothing.
    let caps = funnel_protocol::Capabilities::CLIENT_PROTOCOL_41.0
        | funnel_protocol::Capabilities::CLIENT_SSL.0
        | funnel_protocol::Capabilities::CLIENT_MYSQL.0;
    s.write_all(&ssl_request(caps as u32)).unwrap();
    s.write_all(&[22, 3, 1, 0, 200, 1, 0]).unwrap();
    let started = std::time::Instant::now();
    let mut got = Vec::new();
    let _ = s.read_to_end(&mut got);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(4),
        "closed at the deadline"
    );
    assert!(got.is_empty(), "no plaintext into the TLS handshake: {got:?}");
}

/// Health checks that failed on Funnel's side, over every core.
fn health_checks_failed(proxy: &funnel_engine::Proxy) -> u64 {
    proxy
        .snapshots()
        .iter()
        .map(|s| s.counters.health_checks_failed)
        .sum()
}

/// A storm of TLS logins (each handshake signs with the server's key on
/// the core) neither makes the health monitor miss its deadlines nor
/// stalls the sessions already on the core.
/// - The monitor's checks run ahead of the sessions' tasks. Before, a check
///   waited behind every queued handshake at each of its steps, timed out,
///   and the backend was marked down (sysbench's 1024 TLS threads then got
///   9004).
/// - Handshakes run in a task queue of their own, so a logged-in client's
///   query waits for at most a slice of them. Before, it waited for every
///   handshake queued ahead of it: 2.2 s of a 2.5 s storm.
#[test]
fn tls_a_storm_of_logins_leaves_health_checks_and_sessions_on_time() {
    let dir = tempfile::tempdir().unwrap();
    funnel_testkit::certs::openssl(
        dir.path(),
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:4096",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
            "key.pem",
            "-out",
            "cert.pem",
        ],
    );
    let proxy = tls_funnel(
        "tls_storm",
        &dir.path().join("cert.pem"),
        &dir.path().join("key.pem"),
        "  handshake_timeout: 60s\n",
        "monitor:\n  interval: 50ms\n  timeout: 1s\n  failures_before_down: 1\n",
    );
    let port = proxy.local_addr().port();
    let mut settled = tls_login(port, b"secure", b"pw", STORM_WAIT);
    assert_eq!(tls_query(&mut settled, "DO 1").first(), Some(&0x00));
    std::thread::sleep(std::time::Duration::from_millis(300));
    let before = health_checks_failed(&proxy);

    let started = std::time::Instant::now();
    let storm: Vec<_> = (0..250)
        .map(|_| {
            std::thread::spawn(move || {
                let mut c = tls_login(port, b"secure", b"pw", STORM_WAIT);
                tls_query(&mut c, "DO 1")
            })
        })
        .collect();
    std::thread::sleep(std::time::Duration::from_millis(100));
    let mut slowest = std::time::Duration::ZERO;
    while !storm.iter().all(|c| c.is_finished()) {
        let sent = std::time::Instant::now();
        assert_eq!(tls_query(&mut settled, "DO 1").first(), Some(&0x00));
        slowest = slowest.max(sent.elapsed());
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let storm_took = started.elapsed();
    eprintln!("login storm {storm_took:?}; slowest query meanwhile {slowest:?}");
    for c in storm {
        let ok = c.join().unwrap();
        assert_eq!(ok.first(), Some(&0x00), "{ok:?}");
    }
    assert_eq!(
        health_checks_failed(&proxy) - before,
        0,
        "health checks failed during the login storm"
    );
    assert!(
        storm_took > std::time::Duration::from_millis(500),
        "the storm was too short to show anything: {storm_took:?}"
    );
    assert!(
        slowest * 5 < storm_took,
        "a logged-in session waited {slowest:?} during a {storm_took:?} login storm"
    );
}

/// True when the certificate the server showed `c` names `cn`.
fn served_certificate_names(c: &TlsClient, cn: &str) -> bool {
    let certs = c.conn.peer_certificates().expect("a certificate");
    certs[0].as_ref().windows(cn.len()).any(|w| w == cn.as_bytes())
}

/// Certificate rotation without a restart (ProxySQL's `PROXYSQL RELOAD
/// TLS`): a reload reads `client.tls`'s files again, also under the same
/// names, so the next logins get the renewed certificate while a session
/// from before goes on. A pair that does not load refuses the reload and
/// the running certificate goes on serving. Before, `client.tls` was read
/// at start only: a renewed certificate needed a restart, which drops every
/// client.
#[test]
fn tls_a_reload_serves_a_certificate_renewed_in_place_to_the_next_logins() {
    let dir = tempfile::tempdir().unwrap();
    let (first, second, live) = (
        dir.path().join("a"),
        dir.path().join("b"),
        dir.path().join("live"),
    );
    for d in [&first, &second, &live] {
        std::fs::create_dir(d).unwrap();
    }
    let (cert_a, key_a) = funnel_testkit::certs::self_signed(&first, "first.funnel.test");
    funnel_testkit::certs::openssl(
        &second,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "30",
            "-subj",
            "/CN=second.funnel.test",
            "-keyout",
            "key.pem",
            "-out",
            "cert.pem",
        ],
    );
    let (cert_b, key_b) = (second.join("cert.pem"), second.join("key.pem"));
    let (cert, key) = (live.join("cert.pem"), live.join("key.pem"));
    std::fs::copy(&cert_a, &cert).unwrap();
    std::fs::copy(&key_a, &key).unwrap();
    let proxy = tls_funnel("tls_renew", &cert, &key, "", "");
    let port = proxy.local_addr().port();
    let mut before = tls_login(port, b"secure", b"pw", WAIT);
    assert!(served_certificate_names(&before, "first.funnel.test"));
    // The expiry operators alert on, in Prometheus too.
    let mut with_metrics = proxy.handle().config();
    with_metrics.metrics = Some(funnel_config::MetricsConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
    });
    let listeners = funnel_admin::start(&with_metrics, proxy.handle(), None).unwrap();
    let metrics_addr = listeners.metrics.as_ref().unwrap().local_addr();
    let expiry = || {
        let gauge = "funnel_client_tls_certificate_expiry_timestamp_seconds ";
        let text = scrape(metrics_addr);
        let line = text
            .lines()
            .find(|l| l.starts_with(gauge))
            .unwrap_or_else(|| panic!("{text}"));
        let at: i64 = line[gauge.len()..].parse().unwrap();
        assert_eq!(proxy.handle().client_tls_not_after(), Some(at));
        at - unix_now()
    };
    let left = expiry();
    assert!(
        (2 * 86_400 - 120..=2 * 86_400).contains(&left),
        "{left} s left of 2 days"
    );

    std::fs::copy(&cert_b, &cert).unwrap();
    std::fs::copy(&key_b, &key).unwrap();
    let handle = proxy.handle();
    let not_applied = handle.reload(handle.config()).expect("the renewed pair loads");
    assert!(
        not_applied.is_empty(),
        "nothing waits for a restart: {not_applied:?}"
    );
    let mut after = tls_login(port, b"secure", b"pw", WAIT);
    assert!(
        served_certificate_names(&after, "second.funnel.test"),
        "a login after the reload gets the renewed certificate"
    );
    let left = expiry();
    assert!(
        (30 * 86_400 - 120..=30 * 86_400).contains(&left),
        "{left} s left of 30 days"
    );
    let ok = tls_query(&mut before, "DO 1");
    assert_eq!(ok.first(), Some(&0x00), "the session from before goes on: {ok:?}");

    // A key that does not match the certificate refuses the reload.
    std::fs::copy(&key_a, &key).unwrap();
    let refused = handle.reload(handle.config());
    assert!(refused.is_err(), "a mismatched pair is refused: {refused:?}");
    let mut later = tls_login(port, b"secure", b"pw", WAIT);
    assert!(served_certificate_names(&later, "second.funnel.test"));
    assert!(expiry() > 29 * 86_400, "the refused pair changed nothing");
    for c in [&mut after, &mut later] {
        let ok = tls_query(c, "DO 1");
        assert_eq!(ok.first(), Some(&0x00), "{ok:?}");
    }
}

/// The capability flags of the greeting Funnel sends on `port`.
fn greeting_caps(port: u16) -> funnel_protocol::Capabilities {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    let (_, greeting) = funnel_testkit::mini_client::read_raw_packet(&mut s).unwrap();
    funnel_protocol::handshake::HandshakeV10::parse(&greeting)
        .unwrap()
        .capabilities
}

/// `client.tls` added by a reload offers TLS to the next logins, and taken
/// out again stops offering it; a reload that would leave a `require_tls`
/// user without it is refused.
#[test]
fn tls_a_reload_turns_client_tls_on_and_off() {
    use funnel_protocol::Capabilities;
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = funnel_testkit::certs::self_signed(dir.path(), "127.0.0.1");
    let db = MariaDb::shared();
    let schema = db.fresh_database("tls_live");
    db.create_user("tls_live_b", "bpw");
    let yaml = |tls: bool, require: bool| {
        let tls = if tls {
            format!(
                "client:\n  tls:\n    cert: {}\n    key: {}\n",
                cert.display(),
                key.display()
            )
        } else {
            String::new()
        };
        format!(
            "listen: 127.0.0.1:0\ncores: 1\n\
             users:\n  - name: secure\n    password: pw\n    default_schema: {schema}\n    require_tls: {require}\n\
             backends:\n  - name: primary\n    address: {}\n    user: tls_live_b\n    password: bpw\n{tls}",
            db.addr()
        )
    };
    let proxy = funnel_testkit::funnel::start(Config::from_yaml_str(&yaml(false, false)).unwrap());
    let port = proxy.local_addr().port();
    assert!(!greeting_caps(port).contains(Capabilities::CLIENT_SSL));

    let handle = proxy.handle();
    let not_applied = handle
        .reload(Config::from_yaml_str(&yaml(true, true)).unwrap())
        .unwrap();
    assert!(not_applied.is_empty(), "{not_applied:?}");
    assert!(greeting_caps(port).contains(Capabilities::CLIENT_SSL));
    let mut c = tls_login(port, b"secure", b"pw", WAIT);
    assert_eq!(tls_query(&mut c, "DO 1").first(), Some(&0x00));

    assert!(
        Config::from_yaml_str(&yaml(false, true)).is_err(),
        "require_tls without client.tls is refused before it reaches a reload"
    );
    handle
        .reload(Config::from_yaml_str(&yaml(false, false)).unwrap())
        .unwrap();
    assert!(!greeting_caps(port).contains(Capabilities::CLIENT_SSL));
    assert_eq!(
        tls_query(&mut c, "DO 1").first(),
        Some(&0x00),
        "the TLS session goes on"
    );
}

/// Seconds since the Unix epoch.
fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// The body of `GET /metrics` at `addr`.
fn scrape(addr: std::net::SocketAddr) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(s, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut body = String::new();
    s.read_to_string(&mut body).unwrap();
    body
}

/// What operators hand Funnel as `client.tls`: an EC (P-256) key, and a
/// chain file with the server's certificate first and its CA after it,
/// also as one PEM file with the key first. It loads, and the expiry is
/// the server certificate's (1 day), not the CA's (2 days).
#[test]
fn tls_an_ec_key_and_a_chain_load_and_the_expiry_is_the_leafs() {
    use funnel_testkit::certs::openssl;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    funnel_testkit::certs::make_ca(d, "ca");
    // An X.509 v3 certificate (extensions): rustls refuses a v1 leaf.
    std::fs::write(d.join("leaf.cnf"), "subjectAltName=DNS:localhost\n").unwrap();
    openssl(
        d,
        &[
            "ecparam",
            "-name",
            "prime256v1",
            "-genkey",
            "-noout",
            "-out",
            "leaf.key",
        ],
    );
    openssl(
        d,
        &[
            "req",
            "-new",
            "-key",
            "leaf.key",
            "-subj",
            "/CN=localhost",
            "-out",
            "leaf.csr",
        ],
    );
    openssl(
        d,
        &[
            "x509",
            "-req",
            "-in",
            "leaf.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "1",
            "-extfile",
            "leaf.cnf",
            "-out",
            "leaf.pem",
        ],
    );
    let read = |name: &str| std::fs::read_to_string(d.join(name)).unwrap();
    std::fs::write(d.join("chain.pem"), read("leaf.pem") + &read("ca.pem")).unwrap();
    std::fs::write(
        d.join("all.pem"),
        read("leaf.key") + &read("leaf.pem") + &read("ca.pem"),
    )
    .unwrap();
    let now = unix_now();
    for (cert, key) in [("chain.pem", "leaf.key"), ("all.pem", "all.pem")] {
        let files = funnel_config::TlsFiles {
            cert: d.join(cert),
            key: d.join(key),
        };
        let loaded = funnel_engine::tls::server_config(&files).unwrap_or_else(|e| panic!("{cert}: {e}"));
        let left = loaded.not_after.expect("the expiry") - now;
        assert!((86_000..=86_400).contains(&left), "{cert}: {left} s left");
    }
}
