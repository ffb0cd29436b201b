//! Bytes of two protocol phases that arrive in one read: a login with the
//! first command right behind it (plain or compressed, after an auth
//! switch too), and a command written one byte at a time. Each case runs
//! against the server directly and through Funnel: what the server does
//! is the reference.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use bytes::BytesMut;
use funnel_config::Config;
use funnel_engine::Proxy;
use funnel_protocol::auth::native_password_scramble;
use funnel_protocol::framing::write_packet;
use funnel_protocol::handshake::{HandshakeResponse41, HandshakeV10};
use funnel_protocol::Capabilities;
use funnel_testkit::mini_client::read_raw_packet;
use funnel_testkit::MariaDb;

const USER: &str = "edge";
const PASSWORD: &str = "edgepw";

/// A Funnel in front of the shared server with client user [`USER`] (who
/// exists on the server too, for direct connections), and a fresh schema.
fn start() -> (Proxy, String) {
    static USER_MADE: std::sync::Once = std::sync::Once::new();
    let db = MariaDb::shared();
    USER_MADE.call_once(|| db.create_user(USER, PASSWORD));
    let schema = db.fresh_database("edge");
    let backend = format!("{schema}_b");
    db.create_user(&backend, "bpw");
    let yaml = format!(
        "listen: 127.0.0.1:0\ncores: 1\n\
         users:\n  - name: {USER}\n    password: {PASSWORD}\n\
         backends:\n  - name: primary\n    address: {}\n    user: {backend}\n    password: bpw\n\
         pool:\n  max_per_core: 2\n",
        db.addr()
    );
    (
        funnel_testkit::funnel::start(Config::from_yaml_str(&yaml).unwrap()),
        schema,
    )
}

/// The two places a case runs: the server itself, then Funnel.
fn targets(proxy: &Proxy) -> [(&'static str, SocketAddr); 2] {
    [
        ("direct", MariaDb::shared().addr()),
        ("funnel", proxy.local_addr()),
    ]
}

const CAPS: u64 = Capabilities::CLIENT_MYSQL.0
    | Capabilities::CLIENT_LONG_FLAG.0
    | Capabilities::CLIENT_PROTOCOL_41.0
    | Capabilities::CLIENT_TRANSACTIONS.0
    | Capabilities::CLIENT_SECURE_CONNECTION.0
    | Capabilities::CLIENT_MULTI_RESULTS.0
    | Capabilities::CLIENT_PLUGIN_AUTH.0
    | Capabilities::CLIENT_CONNECT_WITH_DB.0;

/// Connects and reads the greeting; returns the socket, the login packet
/// (sequence id 1) answering it with `plugin` (a `mysql_native_password`
/// answer, or junk for another plugin, which makes the server ask for a
/// switch), and the scramble.
fn greet(addr: SocketAddr, schema: &str, extra: Capabilities, plugin: &str) -> (TcpStream, Vec<u8>, Vec<u8>) {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(10)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.set_nodelay(true).unwrap();
    let (_, greeting) = read_raw_packet(&mut s).unwrap();
    let hs = HandshakeV10::parse(&greeting).unwrap();
    let native = plugin == "mysql_native_password";
    let login = HandshakeResponse41 {
        capabilities: Capabilities(CAPS | extra.0).intersect(hs.capabilities | Capabilities::CLIENT_MYSQL),
        max_packet_size: 1 << 24,
        charset: 45,
        username: USER.as_bytes().to_vec(),
        auth_response: if native {
            native_password_scramble(PASSWORD.as_bytes(), &hs.auth_plugin_data)
        } else {
            vec![7; 32]
        },
        database: Some(schema.as_bytes().to_vec()),
        auth_plugin_name: Some(plugin.as_bytes().to_vec()),
        attributes: Vec::new(),
    };
    let mut p = BytesMut::new();
    login.write(&mut p);
    let mut packet = BytesMut::new();
    write_packet(&mut packet, 1, &p);
    (s, packet.to_vec(), hs.auth_plugin_data)
}

/// A plain packet.
fn packet(seq: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = BytesMut::new();
    write_packet(&mut out, seq, payload);
    out.to_vec()
}

/// `plain` (whole packets) in one compressed packet, stored uncompressed
/// (an uncompressed length of 0 says so), compressed sequence id `seq`.
fn compressed(seq: u8, plain: &[u8]) -> Vec<u8> {
    let n = plain.len();
    let mut out = vec![n as u8, (n >> 8) as u8, (n >> 16) as u8, seq, 0, 0, 0];
    out.extend_from_slice(plain);
    out
}

/// Everything the peer sends until it has been quiet for 1 s or closes.
fn drain(s: &mut TcpStream) -> Vec<u8> {
    s.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
    let mut out = Vec::new();
    let mut chunk = [0u8; 16384];
    loop {
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => return out,
            Ok(n) => out.extend_from_slice(&chunk[..n]),
        }
    }
}

/// Splits plain protocol bytes into payloads.
fn payloads(mut bytes: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    while bytes.len() >= 4 {
        let len = usize::from(bytes[0]) | usize::from(bytes[1]) << 8 | usize::from(bytes[2]) << 16;
        if bytes.len() < 4 + len {
            out.push(b"<cut>".to_vec());
            break;
        }
        out.push(bytes[4..4 + len].to_vec());
        bytes = &bytes[4 + len..];
    }
    out
}

/// Unpacks compressed packets into the plain bytes they carry.
fn unpack(mut bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while bytes.len() >= 7 {
        let len = usize::from(bytes[0]) | usize::from(bytes[1]) << 8 | usize::from(bytes[2]) << 16;
        let plain = usize::from(bytes[4]) | usize::from(bytes[5]) << 8 | usize::from(bytes[6]) << 16;
        if bytes.len() < 7 + len {
            break;
        }
        let body = &bytes[7..7 + len];
        if plain == 0 {
            out.extend_from_slice(body);
        } else {
            flate2::read::ZlibDecoder::new(body)
                .read_to_end(&mut out)
                .unwrap();
        }
        bytes = &bytes[7 + len..];
    }
    out
}

/// What a client that got `reply` saw, in short: "OK", "ERR <code>", or
/// the text of a one-column row, per answer.
fn summary(reply: &[Vec<u8>]) -> Vec<String> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < reply.len() {
        let p = &reply[i];
        match p.first() {
            Some(0x00) => out.push("OK".into()),
            Some(0xff) => out.push(format!("ERR {}", u16::from_le_bytes([p[1], p[2]]))),
            Some(0xfe) if p.len() < 9 => out.push("EOF".into()),
            Some(1) if reply.get(i + 3).is_some_and(|r| r.first() != Some(&0xfe)) => {
                // Column count 1, its definition, EOF, then the row.
                let row = &reply[i + 3];
                out.push(String::from_utf8_lossy(&row[1..]).into_owned());
                i += 4; // the EOF after the row is next
                continue;
            }
            _ => out.push(format!("? {p:?}")),
        }
        i += 1;
    }
    out
}

/// A login with the first command in the same write: the command is run
/// and answered after the login OK, as the server does.
#[test]
fn boundary_login_and_first_command_in_one_write() {
    let (proxy, schema) = start();
    for (name, addr) in targets(&proxy) {
        let (mut s, mut bytes, _) = greet(addr, &schema, Capabilities::EMPTY, "mysql_native_password");
        bytes.extend(packet(0, b"\x03SELECT 40 + 2"));
        s.write_all(&bytes).unwrap();
        let got = summary(&payloads(&drain(&mut s)));
        assert_eq!(got, ["OK", "42", "EOF"], "{name}");
    }
}

/// A compressed client's first command written with its login: the
/// compressed protocol starts with the packet after the login OK, and the
/// bytes read with the login are its first compressed packet.
#[test]
fn boundary_login_and_first_compressed_command_in_one_write() {
    let (proxy, schema) = start();
    for (name, addr) in targets(&proxy) {
        let (mut s, mut bytes, _) = greet(
            addr,
            &schema,
            Capabilities::CLIENT_COMPRESS,
            "mysql_native_password",
        );
        bytes.extend(compressed(0, &packet(0, b"\x03SELECT 40 + 2")));
        s.write_all(&bytes).unwrap();
        let (_, ok) = read_raw_packet(&mut s).unwrap();
        assert_eq!(ok[0], 0, "{name}: login {ok:?}");
        let got = summary(&payloads(&unpack(&drain(&mut s))));
        assert_eq!(got, ["42", "EOF"], "{name}");
    }
}

/// After an auth switch, the client's answer to it and its first command in
/// one write (plain and compressed).
#[test]
fn boundary_auth_switch_answer_and_first_command_in_one_write() {
    let (proxy, schema) = start();
    for compress in [false, true] {
        for (name, addr) in targets(&proxy) {
            let extra = if compress {
                Capabilities::CLIENT_COMPRESS
            } else {
                Capabilities::EMPTY
            };
            let (mut s, bytes, _) = greet(addr, &schema, extra, "client_ed25519");
            s.write_all(&bytes).unwrap();
            let (seq, switch) = read_raw_packet(&mut s).unwrap();
            assert_eq!(switch[0], 0xfe, "{name}: {switch:?}");
            let switch = funnel_protocol::auth::AuthSwitchRequest::parse(&switch).unwrap();
            let answer = native_password_scramble(PASSWORD.as_bytes(), &switch.plugin_data);
            let mut bytes = packet(seq.wrapping_add(1), &answer);
            let command = packet(0, b"\x03SELECT 40 + 2");
            if compress {
                bytes.extend(compressed(0, &command));
            } else {
                bytes.extend(command);
            }
            s.write_all(&bytes).unwrap();
            let (_, ok) = read_raw_packet(&mut s).unwrap();
            assert_eq!(ok[0], 0, "{name} compress={compress}: login {ok:?}");
            let rest = drain(&mut s);
            let rest = if compress { unpack(&rest) } else { rest };
            let got = summary(&payloads(&rest));
            assert_eq!(got, ["42", "EOF"], "{name} compress={compress}");
        }
    }
}

/// A command written one byte per write, with pauses: answered as if it
/// came whole (plain and compressed).
#[test]
fn boundary_a_command_one_byte_at_a_time() {
    let (proxy, schema) = start();
    for compress in [false, true] {
        for (name, addr) in targets(&proxy) {
            let extra = if compress {
                Capabilities::CLIENT_COMPRESS
            } else {
                Capabilities::EMPTY
            };
            let (mut s, bytes, _) = greet(addr, &schema, extra, "mysql_native_password");
            s.write_all(&bytes).unwrap();
            let (_, ok) = read_raw_packet(&mut s).unwrap();
            assert_eq!(ok[0], 0, "{name}: login {ok:?}");
            let mut command = packet(0, b"\x03SELECT 40 + 2");
            if compress {
                command = compressed(0, &command);
            }
            for b in &command {
                s.write_all(std::slice::from_ref(b)).unwrap();
                std::thread::sleep(Duration::from_millis(3));
            }
            let rest = drain(&mut s);
            let rest = if compress { unpack(&rest) } else { rest };
            let got = summary(&payloads(&rest));
            assert_eq!(got, ["42", "EOF"], "{name} compress={compress}");
        }
    }
}

/// A client that half-closes its socket (shutdown of its writing side)
/// right after a command still gets the answer, as from the server.
#[test]
fn boundary_half_close_after_a_command_still_gets_the_answer() {
    let (proxy, schema) = start();
    for (name, addr) in targets(&proxy) {
        let (mut s, mut bytes, _) = greet(addr, &schema, Capabilities::EMPTY, "mysql_native_password");
        bytes.extend(packet(0, b"\x03SELECT SLEEP(0.3) + 42"));
        s.write_all(&bytes).unwrap();
        s.shutdown(std::net::Shutdown::Write).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut all = Vec::new();
        let _ = s.read_to_end(&mut all);
        let got = summary(&payloads(&all));
        assert_eq!(got, ["OK", "42", "EOF"], "{name}");
    }
}
