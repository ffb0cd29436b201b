//! Clients behind a load balancer that speaks the PROXY protocol
//! (`client.proxy_protocol_networks`): the header's client address is the
//! one logins (`users[].allowed_hosts`) and query rules (`client_addr`)
//! see, in its text (v1) and binary (v2) forms; a listed balancer that
//! sends no header gets an ERR; unlisted clients send none.
//!
//! The balancer here is a relay on loopback whose connections to Funnel
//! come from 127.0.0.2 (all of 127/8 is loopback), the only listed address.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::thread;
use std::time::Duration;

use funnel_config::Config;
use funnel_testkit::MariaDb;
use mysql::prelude::Queryable;
use mysql::{Conn, OptsBuilder};

/// Where the balancer's connections to Funnel come from.
const BALANCER: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);

/// The client address every balancer here announces.
const CLIENT: &str = "10.9.8.7";

/// A connection to `target` from [`BALANCER`].
fn from_balancer(target: SocketAddr) -> TcpStream {
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    s.bind(&SocketAddr::new(BALANCER.into(), 0).into()).unwrap();
    s.connect(&target.into()).unwrap();
    s.into()
}

/// A relay on a port of its own: each client it accepts is carried to
/// `target` from [`BALANCER`] behind `header`.
fn balancer(target: SocketAddr, header: Vec<u8>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    thread::spawn(move || {
        for client in listener.incoming() {
            let Ok(client) = client else { return };
            let mut up = from_balancer(target);
            up.write_all(&header).unwrap();
            relay(client, up);
        }
    });
    port
}

/// A stream the balancer relays: TCP or a Unix socket.
trait Duplex: Read + Write + Send + Sized + 'static {
    fn another(&self) -> Self;
    fn end_writes(&self);
}

impl Duplex for TcpStream {
    fn another(&self) -> Self {
        self.try_clone().unwrap()
    }
    fn end_writes(&self) {
        let _ = self.shutdown(std::net::Shutdown::Write);
    }
}

impl Duplex for std::os::unix::net::UnixStream {
    fn another(&self) -> Self {
        self.try_clone().unwrap()
    }
    fn end_writes(&self) {
        let _ = self.shutdown(std::net::Shutdown::Write);
    }
}

/// Copies bytes both ways between a client and the connection the
/// balancer opened for it, each way ending the other side's writes at EOF.
fn relay<S: Duplex>(client: S, up: S) {
    let (mut c2, mut u2) = (client.another(), up.another());
    thread::spawn(move || {
        let _ = std::io::copy(&mut c2, &mut u2);
        u2.end_writes();
    });
    thread::spawn(move || {
        let (mut client, mut up) = (client, up);
        let _ = std::io::copy(&mut up, &mut client);
        client.end_writes();
    });
}

fn v1_header() -> Vec<u8> {
    format!("PROXY TCP4 {CLIENT} 127.0.0.1 45678 3306\r\n").into_bytes()
}

fn v2_header(command: u8) -> Vec<u8> {
    let mut h = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    h.push(0x20 | command);
    h.push(0x11);
    h.extend_from_slice(&12u16.to_be_bytes());
    h.extend_from_slice(&CLIENT.parse::<Ipv4Addr>().unwrap().octets());
    h.extend_from_slice(&[127, 0, 0, 1]);
    h.extend_from_slice(&45678u16.to_be_bytes());
    h.extend_from_slice(&3306u16.to_be_bytes());
    h
}

fn login(port: u16, user: &str) -> Result<Conn, mysql::Error> {
    Conn::new(
        OptsBuilder::new()
            .ip_or_hostname(Some("127.0.0.1"))
            .tcp_port(port)
            .prefer_socket(false)
            .user(Some(user))
            .pass(Some("pw"))
            .read_timeout(Some(Duration::from_secs(20))),
    )
}

fn refusal(r: Result<Conn, mysql::Error>) -> (u16, String) {
    match r {
        Err(mysql::Error::MySqlError(e)) => (e.code, e.message),
        Err(other) => panic!("{other:?}"),
        Ok(_) => panic!("logged in"),
    }
}

#[test]
fn proxy_protocol_headers_name_the_client_behind_a_balancer() {
    let db = MariaDb::shared();
    let schema = db.fresh_database("proxyproto");
    db.create_user("proxyproto_b", "bpw");
    let yaml = format!(
        "listen: 127.0.0.1:0\ncores: 1\n\
         users:\n  - name: app\n    password: pw\n    default_schema: {schema}\n\
         \x20 - name: lan\n    password: pw\n    default_schema: {schema}\n    allowed_hosts: [10.0.0.0/8]\n\
         backends:\n  - name: primary\n    address: {}\n    user: proxyproto_b\n    password: bpw\n\
         client:\n  handshake_timeout: 2s\n  proxy_protocol_networks: [{BALANCER}]\n\
         query_rules:\n  - match_prefix: 'SELECT 42'\n    client_addr: 10.0.0.0/8\n    error: 'from the lan'\n",
        db.addr()
    );
    let proxy = funnel_testkit::funnel::start(Config::from_yaml_str(&yaml).unwrap());
    let target = proxy.local_addr();

    for (form, header) in [("v1", v1_header()), ("v2", v2_header(1))] {
        let port = balancer(target, header);
        let mut c = login(port, "lan").unwrap_or_else(|e| panic!("{form}: lan from {CLIENT}: {e}"));
        let err = c.query_drop("SELECT 42").unwrap_err();
        assert!(err.to_string().contains("from the lan"), "{form}: {err}");
        assert_eq!(c.query_first::<i64, _>("SELECT 1").unwrap(), Some(1));
    }

    // Unlisted clients send no header and are who they are.
    let (code, message) = refusal(login(target.port(), "lan"));
    assert_eq!(code, 1045);
    assert!(message.contains("'lan'@'127.0.0.1'"), "{message}");
    let mut direct = login(target.port(), "app").unwrap();
    assert_eq!(direct.query_first::<i64, _>("SELECT 42").unwrap(), Some(42));

    // The balancer's own connection (LOCAL, a health check): its address stands.
    let (code, message) = refusal(login(balancer(target, v2_header(0)), "lan"));
    assert_eq!(code, 1045);
    assert!(message.contains("'lan'@'127.0.0.2'"), "{message}");

    // A listed balancer that sends something else is refused with an ERR,
    // and counted refused as a client with a malformed login is.
    let refused = || -> u64 { proxy.snapshots().iter().map(|s| s.counters.clients_refused).sum() };
    let refused_before = refused();
    let mut raw = from_balancer(target);
    raw.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    raw.write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
    let mut reply = Vec::new();
    let _ = raw.read_to_end(&mut reply);
    assert!(reply.len() > 7 && reply[4] == 0xff, "{reply:?}");
    assert_eq!(u16::from_le_bytes([reply[5], reply[6]]), 1043);
    assert_eq!(refused(), refused_before + 1);
    // One that sends nothing is refused at client.handshake_timeout.
    let mut silent = from_balancer(target);
    silent.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut reply = Vec::new();
    let _ = silent.read_to_end(&mut reply);
    assert!(reply.len() > 7 && reply[4] == 0xff, "{reply:?}");
    assert_eq!(u16::from_le_bytes([reply[5], reply[6]]), 1159);
    // The server went on serving.
    assert_eq!(direct.query_first::<i64, _>("SELECT 1").unwrap(), Some(1));
}

/// With several `listen` addresses, a balancer's header is read on each:
/// through the second address (127.0.0.3) as through the first.
#[test]
fn proxy_protocol_headers_are_read_on_every_listen_address() {
    let db = MariaDb::shared();
    let schema = db.fresh_database("proxylisten");
    db.create_user("proxylisten_b", "bpw");
    let yaml = format!(
        "listen: [127.0.0.1:0, 127.0.0.3:0]\ncores: 1\n\
         users:\n  - name: lan\n    password: pw\n    default_schema: {schema}\n    allowed_hosts: [10.0.0.0/8]\n\
         backends:\n  - name: primary\n    address: {}\n    user: proxylisten_b\n    password: bpw\n\
         client:\n  handshake_timeout: 2s\n  proxy_protocol_networks: [{BALANCER}]\n",
        db.addr()
    );
    let proxy = funnel_testkit::funnel::start(Config::from_yaml_str(&yaml).unwrap());
    let addrs = proxy.local_addrs().to_vec();
    assert_eq!(addrs.len(), 2);
    for target in addrs {
        for (form, header) in [("v1", v1_header()), ("v2", v2_header(1))] {
            let port = balancer(target, header);
            let mut c = login(port, "lan").unwrap_or_else(|e| panic!("{form} to {target}: {e}"));
            assert_eq!(c.query_first::<i64, _>("SELECT 1").unwrap(), Some(1));
        }
        // A listed balancer that sends nothing is refused at the handshake timeout.
        let mut silent = from_balancer(target);
        silent.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut reply = Vec::new();
        let _ = silent.read_to_end(&mut reply);
        assert!(reply.len() > 7 && reply[4] == 0xff, "{target}: {reply:?}");
        assert_eq!(u16::from_le_bytes([reply[5], reply[6]]), 1159, "{target}");
    }
}

/// A balancer's PROXY header and its client's login share one
/// `client.handshake_timeout`: a header sent a byte at a time until just
/// before the deadline does not buy the login a second one (before, the
/// login got a whole timeout of its own after the header).
#[test]
fn proxy_protocol_header_and_login_share_the_handshake_timeout() {
    let db = MariaDb::shared();
    let schema = db.fresh_database("proxyslow");
    db.create_user("proxyslow_b", "bpw");
    let yaml = format!(
        "listen: 127.0.0.1:0\ncores: 1\n\
         users:\n  - name: app\n    password: pw\n    default_schema: {schema}\n\
         backends:\n  - name: primary\n    address: {}\n    user: proxyslow_b\n    password: bpw\n\
         client:\n  handshake_timeout: 2s\n  proxy_protocol_networks: [{BALANCER}]\n",
        db.addr()
    );
    let proxy = funnel_testkit::funnel::start(Config::from_yaml_str(&yaml).unwrap());
    let mut slow = from_balancer(proxy.local_addr());
    slow.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let begun = std::time::Instant::now();
    let header = v1_header();
    let pause = Duration::from_millis(1500) / header.len() as u32;
    for byte in &header {
        slow.write_all(&[*byte]).unwrap();
        thread::sleep(pause);
    }
    // The greeting comes, then (no login sent) the ERR at the deadline.
    let mut reply = Vec::new();
    let _ = slow.read_to_end(&mut reply);
    let took = begun.elapsed();
    let greeting = 4 + usize::from(reply[0]) + (usize::from(reply[1]) << 8);
    assert!(
        reply.len() > greeting + 7 && reply[greeting + 4] == 0xff,
        "{reply:?}"
    );
    assert_eq!(
        u16::from_le_bytes([reply[greeting + 5], reply[greeting + 6]]),
        1159
    );
    assert!(
        took < Duration::from_millis(2800),
        "the login had a deadline of its own: {took:?}"
    );
}

/// The header's client address is the one `SHOW CLIENTS` and the query
/// log's `peer` name, over both header forms.
#[test]
fn proxy_protocol_client_address_reaches_show_clients_and_the_query_log() {
    let db = MariaDb::shared();
    let schema = db.fresh_database("proxyseen");
    db.create_user("proxyseen_b", "bpw");
    let dir = tempfile::tempdir().unwrap();
    let log_path = dir.path().join("queries.log");
    let yaml = format!(
        "listen: 127.0.0.1:0\ncores: 1\n\
         users:\n  - name: app\n    password: pw\n    default_schema: {schema}\n\
         backends:\n  - name: primary\n    address: {}\n    user: proxyseen_b\n    password: bpw\n\
         client:\n  proxy_protocol_networks: [{BALANCER}]\n\
         admin:\n  listen: 127.0.0.1:0\n  user: admin\n  password: secret\n\
         query_log:\n  path: {}\n  all: true\n",
        db.addr(),
        log_path.display()
    );
    let cfg = Config::from_yaml_str(&yaml).unwrap();
    let proxy = funnel_testkit::funnel::start(cfg.clone());
    let listeners = funnel_admin::start(&cfg, proxy.handle(), None).unwrap();
    let admin_port = listeners.admin.as_ref().unwrap().local_addr().port();
    let mut admin = Conn::new(funnel_testkit::client_opts(admin_port, "admin", "secret")).unwrap();
    for (form, header) in [("v1", v1_header()), ("v2", v2_header(1))] {
        let mut c = login(balancer(proxy.local_addr(), header), "app").unwrap();
        c.query_drop(format!("SELECT '{form}'")).unwrap();
        let rows: Vec<mysql::Row> = admin.query("SHOW CLIENTS").unwrap();
        let hosts: Vec<String> = rows.iter().map(|r| r.get("host").unwrap()).collect();
        assert_eq!(hosts, vec![CLIENT.to_string()], "{form}");
        drop(c);
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while !admin.query::<mysql::Row, _>("SHOW CLIENTS").unwrap().is_empty() {
            assert!(std::time::Instant::now() < deadline, "{form}: the client stays");
            thread::sleep(Duration::from_millis(20));
        }
    }
    // The query log is written behind the statements: wait for both lines.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let log = loop {
        let log = std::fs::read_to_string(&log_path).unwrap_or_default();
        if log.lines().filter(|l| l.contains("SELECT 'v")).count() == 2 {
            break log;
        }
        assert!(std::time::Instant::now() < deadline, "{log}");
        thread::sleep(Duration::from_millis(50));
    };
    let lines: Vec<&str> = log.lines().filter(|l| l.contains("SELECT 'v")).collect();
    for line in lines {
        assert!(line.contains(&format!("\"peer\":\"{CLIENT}\"")), "{line}");
    }
}

/// A balancer on this host that reaches Funnel through its Unix socket is
/// listed as `localhost`: its header's address is the client's (a user
/// allowed only from 10.0.0.0/8 logs in through it), and a connection
/// of that socket that sends no header is refused as a listed balancer's.
#[test]
fn proxy_protocol_a_balancer_on_the_unix_socket_is_listed_as_localhost() {
    use std::os::unix::net::{UnixListener, UnixStream};
    let db = MariaDb::shared();
    let schema = db.fresh_database("proxyunix");
    db.create_user("proxyunix_b", "bpw");
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("funnel.sock");
    let yaml = format!(
        "listen: 127.0.0.1:0\nlisten_socket: {}\ncores: 1\n\
         users:\n  - name: lan\n    password: pw\n    default_schema: {schema}\n    allowed_hosts: [10.0.0.0/8]\n\
         backends:\n  - name: primary\n    address: {}\n    user: proxyunix_b\n    password: bpw\n\
         client:\n  proxy_protocol_networks: [localhost]\n",
        socket.display(),
        db.addr()
    );
    let proxy = funnel_testkit::funnel::start(Config::from_yaml_str(&yaml).unwrap());
    // The balancer: a socket of its own, relayed to Funnel's behind a header.
    let front = dir.path().join("balancer.sock");
    let listener = UnixListener::bind(&front).unwrap();
    let target = socket.clone();
    thread::spawn(move || {
        for client in listener.incoming() {
            let Ok(client) = client else { return };
            let mut up = UnixStream::connect(&target).unwrap();
            up.write_all(&v1_header()).unwrap();
            relay(client, up);
        }
    });
    let mut c = Conn::new(
        OptsBuilder::new()
            .socket(Some(front.to_str().unwrap()))
            .user(Some("lan"))
            .pass(Some("pw"))
            .read_timeout(Some(Duration::from_secs(20))),
    )
    .unwrap_or_else(|e| panic!("lan from {CLIENT} through the socket: {e}"));
    assert_eq!(c.query_first::<i64, _>("SELECT 1").unwrap(), Some(1));
    let mut raw = UnixStream::connect(&socket).unwrap();
    raw.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    raw.write_all(b"\x10\x00\x00\x01hello, no header").unwrap();
    let mut reply = Vec::new();
    let _ = raw.read_to_end(&mut reply);
    assert!(reply.len() > 7 && reply[4] == 0xff, "{reply:?}");
    assert_eq!(u16::from_le_bytes([reply[5], reply[6]]), 1043);
    drop(proxy);
}
