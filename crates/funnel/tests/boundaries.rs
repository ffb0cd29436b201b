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
use funnel_testkit::mini_client::{read_raw_packet, CLIENT_CAPS};
use funnel_testkit::MariaDb;

const USER: &str = "edge";
const PASSWORD: &str = "edgepw";

/// A Funnel in front of the shared server with client user [`USER`] (who
/// exists on the server too, for direct connections), and a fresh schema.
fn start() -> (Proxy, String) {
    start_with("edge", "", "pool:\n  max_per_core: 2\n")
}

/// A Funnel with one backend connection, [`USER`] logging in to a fresh
/// schema named after `prefix` by default.
fn one_connection(prefix: &str) -> (Proxy, String) {
    start_with(
        prefix,
        "    default_schema: {schema}\n",
        "pool:\n  max_per_core: 1\n  min_idle_per_core: 1\n",
    )
}

/// [`start`]'s Funnel with lines for [`USER`] (`{schema}` stands for the
/// fresh schema) and a `pool` section.
fn start_with(prefix: &str, user_lines: &str, pool: &str) -> (Proxy, String) {
    let db = server();
    let schema = db.fresh_database(prefix);
    let backend = format!("{schema}_b");
    db.create_user(&backend, "bpw");
    let user_lines = user_lines.replace("{schema}", &schema);
    let yaml = format!(
        "listen: 127.0.0.1:0\ncores: 1\n\
         users:\n  - name: {USER}\n    password: {PASSWORD}\n{user_lines}\
         backends:\n  - name: primary\n    address: {}\n    user: {backend}\n    password: bpw\n{pool}",
        db.addr()
    );
    (
        funnel_testkit::funnel::start(Config::from_yaml_str(&yaml).unwrap()),
        schema,
    )
}

/// The shared server, with [`USER`] made once.
fn server() -> &'static MariaDb {
    static USER_MADE: std::sync::Once = std::sync::Once::new();
    let db = MariaDb::shared();
    USER_MADE.call_once(|| db.create_user(USER, PASSWORD));
    db
}

/// The two places a case runs: the server itself, then Funnel.
fn targets(proxy: &Proxy) -> [(&'static str, SocketAddr); 2] {
    [
        ("direct", MariaDb::shared().addr()),
        ("funnel", proxy.local_addr()),
    ]
}

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
        capabilities: (CLIENT_CAPS | extra).intersect(hs.capabilities | Capabilities::CLIENT_MYSQL),
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

/// The capability a client asks for compression with, or none.
fn compress_caps(compress: bool) -> Capabilities {
    if compress {
        Capabilities::CLIENT_COMPRESS
    } else {
        Capabilities::EMPTY
    }
}

/// `bytes` unpacked when the connection is compressed.
fn unpack_if(compress: bool, bytes: Vec<u8>) -> Vec<u8> {
    if compress {
        unpack(&bytes)
    } else {
        bytes
    }
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
            let extra = compress_caps(compress);
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
            let rest = unpack_if(compress, rest);
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
            let extra = compress_caps(compress);
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
            let rest = unpack_if(compress, rest);
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

/// A logged-in raw client (login OK read) at `addr`, with the greeting's
/// scramble.
fn logged_in(addr: SocketAddr, schema: &str, extra: Capabilities) -> (TcpStream, Vec<u8>) {
    let (mut s, bytes, scramble) = greet(addr, schema, extra, "mysql_native_password");
    s.write_all(&bytes).unwrap();
    let (_, ok) = read_raw_packet(&mut s).unwrap();
    assert_eq!(ok[0], 0, "login {ok:?}");
    (s, scramble)
}

/// A `COM_CHANGE_USER` to [`USER`] in `schema`, answering `scramble` with
/// `plugin` (junk for a plugin other than `mysql_native_password`).
fn change_user(scramble: &[u8], schema: &str, plugin: &str) -> Vec<u8> {
    let mut p = vec![0x11];
    p.extend_from_slice(USER.as_bytes());
    p.push(0);
    let answer = if plugin == "mysql_native_password" {
        native_password_scramble(PASSWORD.as_bytes(), scramble)
    } else {
        vec![7; 32]
    };
    p.push(answer.len() as u8);
    p.extend_from_slice(&answer);
    p.extend_from_slice(schema.as_bytes());
    p.push(0);
    p.extend_from_slice(&45u16.to_le_bytes());
    p.extend_from_slice(plugin.as_bytes());
    p.push(0);
    packet(0, &p)
}

/// `COM_CHANGE_USER` and `COM_RESET_CONNECTION` with commands right behind
/// them in the same write: each is answered in order, and the commands
/// run in the fresh session. (The server asks for an auth switch on a
/// change of user even with `mysql_native_password`, so a client cannot
/// send anything behind it there; it can behind its answer to the switch.
/// Funnel takes the answer to the login's scramble, and the next commands
/// in the same write.)
#[test]
fn boundary_change_user_and_reset_followed_at_once_by_commands() {
    let (proxy, schema) = start();
    let rest = [
        packet(0, b"\x03SELECT IFNULL(@v, 40) + 2"),
        packet(0, b"\x03SET @v = 9"),
        packet(0, b"\x1f"),
        packet(0, b"\x03SELECT IFNULL(@v, 41) + 2"),
    ]
    .concat();
    for (name, addr) in targets(&proxy) {
        let (mut s, scramble) = logged_in(addr, &schema, Capabilities::EMPTY);
        let mut bytes = packet(0, b"\x03SET @v = 7");
        bytes.extend(change_user(&scramble, &schema, "mysql_native_password"));
        let mut got = Vec::new();
        if name == "direct" {
            s.write_all(&bytes).unwrap();
            let (_, ok) = read_raw_packet(&mut s).unwrap();
            got.extend(summary(&[ok]));
            let (seq, switch) = read_raw_packet(&mut s).unwrap();
            assert_eq!(switch[0], 0xfe, "{name}: {switch:?}");
            let switch = funnel_protocol::auth::AuthSwitchRequest::parse(&switch).unwrap();
            let answer = native_password_scramble(PASSWORD.as_bytes(), &switch.plugin_data);
            bytes = packet(seq.wrapping_add(1), &answer);
        }
        bytes.extend_from_slice(&rest);
        s.write_all(&bytes).unwrap();
        got.extend(summary(&payloads(&drain(&mut s))));
        assert_eq!(got, ["OK", "OK", "42", "EOF", "OK", "OK", "43", "EOF"], "{name}");
    }
}

/// A `COM_CHANGE_USER` with another plugin is asked to switch; the answer
/// and the next command in one write.
#[test]
fn boundary_change_user_switch_answer_and_a_command_in_one_write() {
    let (proxy, schema) = start();
    for (name, addr) in targets(&proxy) {
        let (mut s, scramble) = logged_in(addr, &schema, Capabilities::EMPTY);
        s.write_all(&change_user(&scramble, &schema, "client_ed25519"))
            .unwrap();
        let (seq, switch) = read_raw_packet(&mut s).unwrap();
        assert_eq!(switch[0], 0xfe, "{name}: {switch:?}");
        let switch = funnel_protocol::auth::AuthSwitchRequest::parse(&switch).unwrap();
        let answer = native_password_scramble(PASSWORD.as_bytes(), &switch.plugin_data);
        let mut bytes = packet(seq.wrapping_add(1), &answer);
        bytes.extend(packet(0, b"\x03SELECT 40 + 2"));
        s.write_all(&bytes).unwrap();
        let got = summary(&payloads(&drain(&mut s)));
        assert_eq!(got, ["OK", "42", "EOF"], "{name}");
    }
}

/// LOCAL INFILE: the file's data, its empty end packet and the next
/// command in one write (and an empty file with the next command).
#[test]
fn boundary_local_infile_data_end_and_next_command_in_one_write() {
    let (proxy, schema) = start();
    let db = MariaDb::shared();
    db.exec("SET GLOBAL local_infile = 1");
    for (name, addr) in targets(&proxy) {
        let table = format!("{schema}.li_{name}");
        db.exec(&format!("CREATE TABLE {table} (n INT)"));
        let (mut s, _) = logged_in(addr, &schema, Capabilities::CLIENT_LOCAL_FILES);
        for (file, rows) in [(&b"1\n2\n3\n"[..], "3"), (&b""[..], "3")] {
            let load = format!("\x03LOAD DATA LOCAL INFILE 'f.csv' INTO TABLE {table}");
            s.write_all(&packet(0, load.as_bytes())).unwrap();
            let (seq, request) = read_raw_packet(&mut s).unwrap();
            assert_eq!(request[0], 0xfb, "{name}: {request:?}");
            let mut bytes = Vec::new();
            let mut seq = seq.wrapping_add(1);
            if !file.is_empty() {
                bytes.extend(packet(seq, file));
                seq = seq.wrapping_add(1);
            }
            bytes.extend(packet(seq, b""));
            bytes.extend(packet(0, format!("\x03SELECT COUNT(*) FROM {table}").as_bytes()));
            s.write_all(&bytes).unwrap();
            let got = summary(&payloads(&drain(&mut s)));
            assert_eq!(got, ["OK", rows, "EOF"], "{name} file {file:?}");
        }
    }
}

/// `COM_STMT_SEND_LONG_DATA` (which has no answer) twice, then the
/// execute, then a query, in one write: the execute sees both pieces, and
/// every answer is the server's.
#[test]
fn boundary_long_data_and_execute_in_one_write() {
    let (proxy, schema) = start();
    let mut seen = Vec::new();
    for (name, addr) in targets(&proxy) {
        let (mut s, _) = logged_in(addr, &schema, Capabilities::EMPTY);
        s.write_all(&packet(0, b"\x16SELECT CONCAT(?, '!')")).unwrap();
        let (_, head) = read_raw_packet(&mut s).unwrap();
        assert_eq!(head[0], 0, "{name}: prepare {head:?}");
        let id = [head[1], head[2], head[3], head[4]];
        let columns = u16::from_le_bytes([head[5], head[6]]);
        let params = u16::from_le_bytes([head[7], head[8]]);
        let defs = [params, columns]
            .iter()
            .map(|&n| if n > 0 { n + 1 } else { 0 })
            .sum::<u16>();
        for _ in 0..defs {
            read_raw_packet(&mut s).unwrap();
        }
        let long = |piece: &[u8]| {
            let mut p = vec![0x18];
            p.extend_from_slice(&id);
            p.extend_from_slice(&0u16.to_le_bytes());
            p.extend_from_slice(piece);
            packet(0, &p)
        };
        let mut execute = vec![0x17];
        execute.extend_from_slice(&id);
        execute.push(0); // no cursor
        execute.extend_from_slice(&1u32.to_le_bytes());
        execute.push(0); // null bitmap
        execute.push(1); // types follow
        execute.extend_from_slice(&[0xfe, 0]); // a string, sent as long data
        let mut bytes = long(b"fo");
        bytes.extend(long(b"ur-two"));
        bytes.extend(packet(0, &execute));
        bytes.extend(packet(0, b"\x03SELECT 40 + 2"));
        s.write_all(&bytes).unwrap();
        let all = payloads(&drain(&mut s));
        let text = String::from_utf8_lossy(&all.concat()).into_owned();
        assert!(text.contains("four-two!"), "{name}: {all:?}");
        seen.push(summary(&all).len());
    }
    assert_eq!(seen[0], seen[1], "as many answers as the server gives");
}

/// `KILL QUERY` of one client, over and over, while it and a neighbour
/// share the one backend connection with short statements: the target's
/// statements end in their answer or 1317, and the neighbour's are never
/// hit (a late KILL must not land on the statement that follows on the
/// same server thread).
#[test]
fn boundary_kill_query_racing_statement_ends_never_hits_a_neighbour() {
    use funnel_testkit::mini_client::{MiniClient, MiniError};
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let (proxy, _schema) = one_connection("edgekq");
    let addr = proxy.local_addr();
    let stop = Arc::new(AtomicBool::new(false));
    let mut target = MiniClient::connect(addr, USER, PASSWORD, None).unwrap();
    let target_id = target.connection_id;
    let run = |mut c: MiniClient,
               sql: &'static str,
               [want, interrupted]: [&'static str; 2],
               stop: Arc<AtomicBool>| {
        std::thread::spawn(move || {
            let (mut ok, mut killed) = (0, 0);
            while !stop.load(Ordering::Relaxed) {
                match c.query(sql) {
                    // A KILL QUERY that stops SLEEP() makes it return 1,
                    // with no error.
                    Ok(r) if r.rows()[0][0].as_deref() == Some(want) => ok += 1,
                    Ok(r) => {
                        assert_eq!(r.rows()[0][0].as_deref(), Some(interrupted), "{sql}");
                        killed += 1;
                    }
                    Err(MiniError::Server(e)) if e.code == 1317 => killed += 1,
                    Err(e) => panic!("{sql}: {e:?}"),
                }
            }
            (ok, killed)
        })
    };
    target.query("DO 0").unwrap();
    let neighbour = MiniClient::connect(addr, USER, PASSWORD, None).unwrap();
    let t = run(target, "SELECT 1 + SLEEP(0.001)", ["1", "2"], stop.clone());
    let n = run(neighbour, "SELECT 2 + SLEEP(0.001)", ["2", "3"], stop.clone());
    let mut killer = MiniClient::connect(addr, USER, PASSWORD, None).unwrap();
    let until = std::time::Instant::now() + Duration::from_secs(4);
    let mut kills = 0;
    while std::time::Instant::now() < until {
        killer.query(&format!("KILL QUERY {target_id}")).unwrap();
        kills += 1;
    }
    stop.store(true, Ordering::Relaxed);
    let (t_ok, t_killed) = t.join().unwrap();
    let (n_ok, n_killed) = n.join().unwrap();
    eprintln!("kills {kills}; target {t_ok} ok {t_killed} killed; neighbour {n_ok} ok");
    assert_eq!(n_killed, 0, "the neighbour's statements were killed");
    // The neighbour's loop ends its last statement after the kills stop.
    assert!(n_ok > 0 && t_ok + t_killed > 0, "both ran: {t_ok} {n_ok}");
}

/// A client that closes in the middle of a LOCAL INFILE transfer (after a
/// whole data packet, or inside one) loads nothing: the server fails the
/// statement, and Funnel must not end the file for it (an empty packet
/// would commit the rows sent so far).
#[test]
fn boundary_a_client_gone_mid_local_infile_loads_nothing() {
    let (proxy, schema) = start();
    let db = MariaDb::shared();
    db.exec("SET GLOBAL local_infile = 1");
    for (name, addr) in targets(&proxy) {
        for cut_inside in [false, true] {
            let table = format!("{schema}.gone_{name}_{cut_inside}");
            db.exec(&format!("CREATE TABLE {table} (n INT) ENGINE=InnoDB"));
            let (mut s, _) = logged_in(addr, &schema, Capabilities::CLIENT_LOCAL_FILES);
            let load = format!("\x03LOAD DATA LOCAL INFILE 'f.csv' INTO TABLE {table}");
            s.write_all(&packet(0, load.as_bytes())).unwrap();
            let (seq, request) = read_raw_packet(&mut s).unwrap();
            assert_eq!(request[0], 0xfb, "{name}: {request:?}");
            let mut bytes = packet(seq.wrapping_add(1), b"1\n2\n3\n");
            if cut_inside {
                let next = packet(seq.wrapping_add(2), b"4\n5\n6\n");
                bytes.extend_from_slice(&next[..7]);
            }
            s.write_all(&bytes).unwrap();
            std::thread::sleep(Duration::from_millis(100));
            drop(s);
            std::thread::sleep(Duration::from_millis(1500));
            let rows = db.query_first::<i64>(&format!("SELECT COUNT(*) FROM {table}"));
            assert_eq!(rows, Some(0), "{name}, cut inside a packet: {cut_inside}");
        }
    }
}

/// A transaction written in one go, then a half-close: every statement is
/// answered and the row is committed once, as directly.
#[test]
fn boundary_half_close_after_a_pipelined_transaction_commits_once() {
    let (proxy, schema) = start();
    let db = MariaDb::shared();
    for (name, addr) in targets(&proxy) {
        let table = format!("{schema}.hc_{name}");
        db.exec(&format!("CREATE TABLE {table} (n INT PRIMARY KEY) ENGINE=InnoDB"));
        let (mut s, _) = logged_in(addr, &schema, Capabilities::EMPTY);
        let mut bytes = packet(0, b"\x03BEGIN");
        bytes.extend(packet(
            0,
            format!("\x03INSERT INTO {table} VALUES (1)").as_bytes(),
        ));
        bytes.extend(packet(0, b"\x03COMMIT"));
        s.write_all(&bytes).unwrap();
        s.shutdown(std::net::Shutdown::Write).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut all = Vec::new();
        let _ = s.read_to_end(&mut all);
        assert_eq!(summary(&payloads(&all)), ["OK", "OK", "OK"], "{name}");
        let rows = db.query_first::<i64>(&format!("SELECT COUNT(*) FROM {table}"));
        assert_eq!(rows, Some(1), "{name}");
    }
}

/// A client whose every statement ends in an error (or warnings), sent as
/// fast as it reads the answers, keeps the connection lingering for its
/// `SHOW WARNINGS` only while nobody waits for it: a neighbour waiting
/// for the pool's one connection gets its turn, as it does beside a
/// client without errors.
#[test]
fn boundary_a_client_erring_in_a_loop_does_not_starve_a_neighbour() {
    use funnel_testkit::mini_client::MiniClient;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let (proxy, _schema) = one_connection("edgeln");
    let addr = proxy.local_addr();
    let stop = Arc::new(AtomicBool::new(false));
    let mut erring = MiniClient::connect(addr, USER, PASSWORD, None).unwrap();
    let s = stop.clone();
    let t = std::thread::spawn(move || {
        let mut n = 0;
        while !s.load(Ordering::Relaxed) {
            let r = erring.query("SELECT * FROM no_such_table");
            assert!(r.is_err(), "{r:?}");
            n += 1;
        }
        n
    });
    std::thread::sleep(Duration::from_millis(200));
    let mut neighbour = MiniClient::connect(addr, USER, PASSWORD, None).unwrap();
    let started = std::time::Instant::now();
    let mut slowest = Duration::ZERO;
    for _ in 0..20 {
        let one = std::time::Instant::now();
        let r = neighbour.query("SELECT 2").unwrap();
        assert_eq!(r.rows()[0][0].as_deref(), Some("2"));
        slowest = slowest.max(one.elapsed());
    }
    let took = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    let errs = t.join().unwrap();
    eprintln!("neighbour: 20 statements in {took:?}, slowest {slowest:?}; the erring client {errs}");
    assert!(
        slowest < Duration::from_secs(1),
        "a statement of the neighbour waited {slowest:?}"
    );
}

/// A write sent just before the client closes its socket (no COM_QUIT, no
/// wait for the answer) runs once, as on the server, which reads what
/// arrived before the close.
#[test]
fn boundary_a_write_then_an_immediate_close_runs_once() {
    let (proxy, schema) = start();
    let db = MariaDb::shared();
    for (name, addr) in targets(&proxy) {
        let table = format!("{schema}.wc_{name}");
        db.exec(&format!("CREATE TABLE {table} (n INT PRIMARY KEY) ENGINE=InnoDB"));
        for n in 0..5 {
            let (mut s, _) = logged_in(addr, &schema, Capabilities::EMPTY);
            let insert = format!("\x03INSERT INTO {table} VALUES ({n})");
            s.write_all(&packet(0, insert.as_bytes())).unwrap();
            drop(s);
        }
        let sql = format!("SELECT COUNT(*) FROM {table}");
        funnel_testkit::wait_until_within(&format!("{name}: five rows"), Duration::from_secs(5), || {
            db.query_first::<i64>(&sql) == Some(5)
        });
    }
}
