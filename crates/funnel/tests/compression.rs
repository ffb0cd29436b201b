//! The compressed protocol (`CLIENT_COMPRESS`, `mysql --compress`,
//! JDBC's `useCompression=true`) between clients and Funnel: the answers
//! are those of a direct connection, a client that asks for compression
//! gets it on the wire, and one that does not is unaffected. Funnel's
//! backend connections stay uncompressed.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;

use funnel_engine::Proxy;
use funnel_protocol::response::ErrPacket;
use funnel_testkit::mini_client::MiniClient;
use funnel_testkit::MariaDb;
use mysql::prelude::Queryable;
use mysql::{Conn, OptsBuilder};

const USER: &str = "zip";
const PASSWORD: &str = "zippw";

/// The shared server, with [`USER`] (for direct connections) made once.
fn server() -> &'static MariaDb {
    static USER_MADE: std::sync::Once = std::sync::Once::new();
    let db = MariaDb::shared();
    USER_MADE.call_once(|| db.create_user(USER, PASSWORD));
    db
}

/// A Funnel with a one-connection pool in front of the shared server, and
/// a fresh schema with a table of 500 rows of repetitive text (600 KB).
fn setup() -> (Proxy, String) {
    setup_with("")
}

/// [`setup`] with `extra` YAML appended.
fn setup_with(extra: &str) -> (Proxy, String) {
    let db = server();
    let schema = db.fresh_database("zip");
    db.exec(&format!(
        "CREATE TABLE {schema}.t (id INT PRIMARY KEY AUTO_INCREMENT, s TEXT)"
    ));
    db.exec(&format!(
        "INSERT INTO {schema}.t (s) SELECT REPEAT('hello world ', 100) FROM {schema}.seq_1_to_500"
    ));
    let backend = format!("{schema}_b");
    db.create_user(&backend, "bpw");
    let yaml = format!(
        "listen: 127.0.0.1:0\ncores: 1\n\
         users:\n  - name: {USER}\n    password: {PASSWORD}\n    default_schema: {schema}\n\
         backends:\n  - name: primary\n    address: {}\n    user: {backend}\n    password: bpw\n\
         pool:\n  max_per_core: 1\n  min_idle_per_core: 1\n{extra}",
        db.addr()
    );
    let cfg = funnel_config::Config::from_yaml_str(&yaml).unwrap();
    (funnel_testkit::funnel::start(cfg), schema)
}

fn opts(port: u16, schema: &str, compress: bool) -> OptsBuilder {
    let o = OptsBuilder::new()
        .ip_or_hostname(Some("127.0.0.1"))
        .tcp_port(port)
        .user(Some(USER))
        .pass(Some(PASSWORD))
        .db_name(Some(schema))
        .prefer_socket(false);
    if compress {
        o.compress(Some(mysql::Compression::default()))
    } else {
        o
    }
}

/// A relay to `to` that counts the bytes coming back from it; returns its
/// address and the count.
fn counting_relay(to: SocketAddr) -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let count = Arc::new(AtomicUsize::new(0));
    let counted = count.clone();
    thread::spawn(move || {
        for client in listener.incoming() {
            let Ok(client) = client else { return };
            let Ok(server) = TcpStream::connect(to) else {
                return;
            };
            let (mut c_in, mut c_out) = (client.try_clone().unwrap(), client);
            let (mut s_in, mut s_out) = (server.try_clone().unwrap(), server);
            thread::spawn(move || {
                let _ = std::io::copy(&mut c_in, &mut s_out);
                let _ = s_out.shutdown(std::net::Shutdown::Both);
            });
            let counted = counted.clone();
            thread::spawn(move || {
                let mut buf = [0u8; 65536];
                while let Ok(n) = s_in.read(&mut buf) {
                    if n == 0 || c_out.write_all(&buf[..n]).is_err() {
                        break;
                    }
                    counted.fetch_add(n, Ordering::Relaxed);
                }
                let _ = c_out.shutdown(std::net::Shutdown::Both);
            });
        }
    });
    (addr, count)
}

/// What a session of everyday work answers: text and binary results,
/// several statements, an error, a 2 MB statement, session state moving
/// between clients. (Statements past one compressed packet, 16 MB, are
/// the `mariadb` client's test: this client crate's own compression
/// resets the connection at that size, directly too.)
fn session_answers(c: &mut Conn) -> Vec<String> {
    let mut out = Vec::new();
    let rows: Vec<(i32, String)> = c.query("SELECT id, s FROM t ORDER BY id").unwrap();
    out.push(format!(
        "{} rows, {} bytes",
        rows.len(),
        rows.iter().map(|r| r.1.len()).sum::<usize>()
    ));
    let v: Option<(i32, String)> = c
        .exec_first("SELECT id, LEFT(s, 11) FROM t WHERE id = ?", (7,))
        .unwrap();
    out.push(format!("{v:?}"));
    let mut sets = Vec::new();
    {
        let mut result = c.query_iter("SELECT 1; SELECT 'two', 2; DO 3").unwrap();
        while let Some(set) = result.iter() {
            sets.push(
                set.map(|r| format!("{:?}", r.unwrap().unwrap()))
                    .collect::<Vec<_>>()
                    .join(","),
            );
        }
    }
    out.push(sets.join("|"));
    out.push(format!(
        "{:?}",
        c.query_drop("SELECT nosuch FROM t").map_err(|e| e.to_string())
    ));
    let big = "x".repeat(2 * 1024 * 1024);
    let n: Option<u64> = c.query_first(format!("SELECT LENGTH('{big}')")).unwrap();
    out.push(format!("{n:?}"));
    c.query_drop("SET @v = 'mine', time_zone = '+05:00'").unwrap();
    let v: Option<(String, String)> = c.query_first("SELECT @v, @@time_zone").unwrap();
    out.push(format!("{v:?}"));
    out
}

#[test]
fn compression_clients_get_direct_answers_compressed_on_the_wire() {
    let (proxy, schema) = setup();
    let db = server();
    let direct = {
        let mut c = Conn::new(opts(db.port(), &schema, true)).unwrap();
        session_answers(&mut c)
    };
    // Two clients, one compressed and one not, share the one connection.
    let mut plain = Conn::new(opts(proxy.local_addr().port(), &schema, false)).unwrap();
    let mut zipped = Conn::new(opts(proxy.local_addr().port(), &schema, true)).unwrap();
    assert_eq!(session_answers(&mut zipped), direct);
    assert_eq!(session_answers(&mut plain), direct);
    assert_eq!(session_answers(&mut zipped), direct);

    // On the wire: the 600 KB of text come compressed.
    let read_all = |compress: bool| {
        let (relay, count) = counting_relay(proxy.local_addr());
        let mut c = Conn::new(opts(relay.port(), &schema, compress)).unwrap();
        let before = count.load(Ordering::Relaxed);
        let rows: Vec<(i32, String)> = c.query("SELECT id, s FROM t").unwrap();
        assert_eq!(rows.len(), 500);
        count.load(Ordering::Relaxed) - before
    };
    let (zipped_bytes, plain_bytes) = (read_all(true), read_all(false));
    assert!(plain_bytes > 600_000, "{plain_bytes}");
    assert!(zipped_bytes < 60_000, "compressed: {zipped_bytes} bytes");
}

/// Several statements whose results come in separate writes: the Rust
/// `mysql` crate syncs its packet count with the compressed count between
/// results, as the server's `net_flush` does, and refused the backend's
/// own numbering ("Packets out of sync").
#[test]
fn compression_multi_statement_results_are_numbered_as_the_server_does() {
    let (proxy, schema) = setup();
    let db = server();
    let run = |port: u16| {
        let mut c = Conn::new(opts(port, &schema, true)).unwrap();
        let mut out = Vec::new();
        for n in [10, 90_000, 300_000] {
            let mut r = c
                .query_iter(format!(
                    "SELECT 1; SELECT LENGTH(REPEAT('m', {n})); \
                     SELECT REPEAT('n', {n}) IS NOT NULL; DO 2; SELECT COUNT(*) FROM t"
                ))
                .unwrap();
            while let Some(set) = r.iter() {
                out.push(
                    set.map(|row| mysql::from_row::<i64>(row.unwrap()))
                        .collect::<Vec<_>>(),
                );
            }
        }
        out
    };
    let direct = run(db.port());
    assert_eq!((direct.len(), &direct[6]), (15, &vec![90_000]));
    assert_eq!(run(proxy.local_addr().port()), direct);
}

/// MySQL Connector/Python (its own protocol code, `use_pure`) with
/// `compress=True`: it reads at most one more compressed packet to finish
/// a packet, so rows past the relay's pieces (200 KB, 3 MB) and several
/// results must come packed as the server packs them.
const PYTHON: &str = r#"
import sys, mysql.connector
port, schema, user, password = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
c = mysql.connector.connect(host="127.0.0.1", port=port, user=user, password=password,
    database=schema, compress=True, use_pure=True, ssl_disabled=True, connection_timeout=10)
cur = c.cursor()
for sql in ["SELECT REPEAT('z', 200000), 1", "SELECT MD5(s), LENGTH(s) FROM t ORDER BY id",
            "SELECT REPEAT(CONCAT(RAND(7), 'x'), 150000)"]:
    cur.execute(sql)
    print([tuple(str(v)[:40] + "/" + str(len(str(v))) for v in r) for r in cur.fetchall()][:3])
for r in c.cmd_query_iter("SELECT 1; SELECT REPEAT('y', 70000); DO 1; SELECT 2"):
    if "columns" in r:
        print([len(str(v[0])) for v in c.get_rows()[0]])
    else:
        print("ok", r.get("affected_rows"))
"#;

#[test]
fn compression_python_connector_reads_large_rows() {
    let ok = Command::new("python3")
        .args(["-c", "import mysql.connector"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        eprintln!("skipping: python3 cannot import mysql.connector");
        return;
    }
    let (proxy, schema) = setup();
    let db = server();
    let run = |port: u16| {
        let out = Command::new("timeout")
            .args([
                "30",
                "python3",
                "-c",
                PYTHON,
                &port.to_string(),
                &schema,
                USER,
                PASSWORD,
            ])
            .output()
            .unwrap();
        format!(
            "{}{}{:?}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            out.status.code()
        )
    };
    let direct = run(db.port());
    assert!(
        direct.ends_with("Some(0)") && direct.contains("/200000"),
        "{direct}"
    );
    assert_eq!(run(proxy.local_addr().port()), direct);
}

/// The `mariadb` command-line client with `--compress`, as people run it.
#[test]
fn compression_mariadb_cli_with_compress_reads_what_it_reads_directly() {
    let (proxy, schema) = setup();
    let db = server();
    let port = proxy.local_addr().port();
    let select = [
        "-e",
        "SELECT * FROM t ORDER BY id; SELECT @@version_comment IS NOT NULL",
    ];
    let direct = mariadb(db.port(), &schema, &select, None);
    assert!(
        direct.len() > 600_000,
        "{}",
        String::from_utf8_lossy(&direct[..direct.len().min(300)])
    );
    assert_eq!(
        mariadb(port, &schema, &["--compress", select[0], select[1]], None),
        direct
    );
    assert_eq!(mariadb(port, &schema, &select, None), direct);

    // Past one compressed packet (16 MB) both ways: a 17 MB statement in,
    // an 18 MB row out.
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("big.sql");
    let big = "x".repeat(17 * 1024 * 1024);
    std::fs::write(
        &script,
        format!(
            "SELECT LENGTH('{big}');\n\
             SELECT MD5(REPEAT('ab', 9000000)), LENGTH(REPEAT('ab', 9000000));\n"
        ),
    )
    .unwrap();
    let large = ["--max-allowed-packet=64M", "--compress", "-N"];
    let direct = mariadb(db.port(), &schema, &large, Some(&script));
    assert!(
        String::from_utf8_lossy(&direct).starts_with("17825792\n"),
        "{}",
        String::from_utf8_lossy(&direct)
    );
    assert_eq!(mariadb(port, &schema, &large, Some(&script)), direct);
    let row_query = [large[0], large[1], large[2], "-e", "SELECT REPEAT('ab', 9000000)"];
    let row = mariadb(port, &schema, &row_query, None);
    assert_eq!(row.len(), 18_000_001, "an 18 MB row through Funnel, compressed");
}

/// The `mariadb` client as [`USER`] on `port` in `schema` with `args`,
/// reading `input` when given; its output (it must succeed).
fn mariadb(port: u16, schema: &str, args: &[&str], input: Option<&std::path::Path>) -> Vec<u8> {
    let mut cmd = Command::new("mariadb");
    cmd.args([
        "-h127.0.0.1",
        &format!("-P{port}"),
        &format!("-u{USER}"),
        &format!("-p{PASSWORD}"),
    ])
    .args(args)
    .arg(schema);
    if let Some(path) = input {
        cmd.stdin(std::fs::File::open(path).unwrap());
    }
    let out = cmd
        .output()
        .expect("the mariadb client is installed with the server");
    // The client echoes a failed statement, 17 MB of it: the end says why.
    let err = String::from_utf8_lossy(&out.stderr);
    let tail: String = err
        .chars()
        .skip(err.chars().count().saturating_sub(500))
        .collect();
    assert!(out.status.success(), "{tail}");
    out.stdout
}

/// A compressed packet that does not inflate to the length its header
/// gives gets ERR 1158 (as the server answers garbled packets), packed as
/// the client asked, and a close; the next client is served.
#[test]
fn compression_garbled_packets_get_1158_and_a_close() {
    let (proxy, schema) = setup();
    let mut c = compressed_client(&proxy, &schema);
    // Header: 20 bytes of payload that should inflate to 100; they are junk.
    let mut bad = vec![20, 0, 0, 0, 100, 0, 0];
    bad.extend_from_slice(&[0xAB; 20]);
    c.write_raw(&bad).unwrap();
    let err = last_words(&c);
    assert_eq!(err.code, 1158, "{err:?}");
    let mut next = Conn::new(opts(proxy.local_addr().port(), &schema, true)).unwrap();
    assert_eq!(next.query_first::<i32, _>("SELECT 1").unwrap(), Some(1));
}

/// A client that stops halfway through a compressed packet is mid-command,
/// not idle: it is closed after `client.net_read_timeout` with ERR 1159
/// (packed as it asked), as one that stops halfway through a plain packet.
#[test]
fn compression_a_client_stalled_mid_packet_gets_1159() {
    let (proxy, schema) = setup_with("client:\n  net_read_timeout: 400ms\n");
    let mut c = compressed_client(&proxy, &schema);
    // A compressed header promising 100 bytes, then 10 of them.
    let mut half = vec![100, 0, 0, 0, 0, 0, 0];
    half.extend_from_slice(&[b'x'; 10]);
    c.write_raw(&half).unwrap();
    let started = std::time::Instant::now();
    let err = last_words(&c);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "held {:?}",
        started.elapsed()
    );
    assert_eq!(err.code, 1159, "{err:?}");
}

/// A raw client logged in to `schema` that asked for compression.
fn compressed_client(proxy: &Proxy, schema: &str) -> MiniClient {
    MiniClient::connect_with(
        proxy.local_addr(),
        USER,
        PASSWORD,
        Some(schema),
        funnel_protocol::Capabilities::CLIENT_COMPRESS,
    )
    .unwrap()
}

/// Reads what Funnel sends a compressed client until it closes (10 s at
/// most): one compressed packet holding one ERR, returned.
fn last_words(c: &MiniClient) -> ErrPacket {
    let mut s = c.try_clone_stream().unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    let mut reply = Vec::new();
    let _ = s.read_to_end(&mut reply);
    assert!(reply.len() > 7, "closed without a word: {reply:?}");
    let len = usize::from(reply[0]) | usize::from(reply[1]) << 8;
    let plain_len = usize::from(reply[4]) | usize::from(reply[5]) << 8;
    let payload = &reply[7..7 + len];
    let plain = if plain_len == 0 {
        payload.to_vec()
    } else {
        let mut out = Vec::new();
        flate2::read::ZlibDecoder::new(payload)
            .read_to_end(&mut out)
            .unwrap();
        out
    };
    ErrPacket::parse(&plain[4..]).unwrap()
}
