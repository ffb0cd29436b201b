//! Resource limits and slow or hostile peers: Funnel out of file
//! descriptors, `client.max_connections` reached, packet headers that
//! declare more than they send, readers that stop reading large results,
//! a flood of long data, a backend frozen mid-result. Most tests run the
//! `funnel` binary as its own process, so its open-files limit can be
//! lowered (`prlimit`) and its memory read (VmRSS) apart from the test's.

use std::net::{SocketAddr, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use funnel_testkit::funnel::spawn;
use funnel_testkit::mini_client::{MiniClient, MiniError};
use funnel_testkit::MariaDb;

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).unwrap().count()
}

/// Sets the process's soft open-files limit (the hard one stays).
fn set_soft_nofile(pid: u32, soft: u64) {
    let mut old = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: prlimit with a null new limit only reads into `old`.
    assert_eq!(
        unsafe { libc::prlimit(pid as i32, libc::RLIMIT_NOFILE, std::ptr::null(), &mut old) },
        0
    );
    let new = libc::rlimit {
        rlim_cur: soft,
        rlim_max: old.rlim_max,
    };
    // SAFETY: prlimit reads `new`; the old limit is not asked for.
    assert_eq!(
        unsafe { libc::prlimit(pid as i32, libc::RLIMIT_NOFILE, &new, std::ptr::null_mut()) },
        0,
        "{}",
        std::io::Error::last_os_error()
    );
}

/// CPU time (user + system) the process used so far, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name, which ends with ')'.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line: 12 and 13 here.
    f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
}

fn server_code(
    r: Result<funnel_testkit::mini_client::QueryResult, MiniError>,
) -> Result<String, (u16, String)> {
    match r {
        Ok(q) => Ok(q.rows()[0][0].clone().unwrap_or_default()),
        Err(MiniError::Server(e)) => Err((e.code, e.message_text())),
        Err(e) => Err((0, format!("{e:?}"))),
    }
}

/// Funnel out of file descriptors (its limit lowered under it): new
/// clients get ERR 1040 at once (they waited in the kernel's queue without
/// a word), the listener does not spin on failed accepts, connected clients
/// go on, a command that needs a new backend connection gets ERR 1041
/// naming Funnel's own shortage (not 9003 blaming the backend), and
/// nothing is held against the backend: once descriptors are back, the
/// next open happens at once (a back-off taken for the failure refused it
/// with "connections failed recently") and new clients get in.
#[test]
fn limits_out_of_descriptors_backs_off_errs_clearly_and_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let funnel = spawn(
        env!("CARGO_BIN_EXE_funnel"),
        "lim_fd",
        "pool:\n  max_per_core: 4\n  min_idle_per_core: 0\n",
        dir.path(),
    );
    let (addr, schema, pid) = (funnel.addr, funnel.schema.clone(), funnel.child.id());
    let mut a = MiniClient::connect(addr, "app", "pw", Some(&schema)).unwrap();
    let mut b = MiniClient::connect(addr, "app", "pw", Some(&schema)).unwrap();
    assert_eq!(server_code(a.query("SELECT 1")), Ok("1".into()));
    // a holds the only backend connection open so far.
    a.query("BEGIN").unwrap();
    // Settled: the health monitor's check ran (it opens a connection of its own).
    thread::sleep(Duration::from_millis(300));
    // Below what is open (with a margin: a descriptor closed meanwhile
    // must not make room).
    set_soft_nofile(pid, open_fds(pid) as u64 - 2);

    // New clients are told at once with ERR 1040 (a descriptor kept in
    // reserve makes room to accept them), not left in the kernel's queue.
    // (An accept already under way when the limit fell may still get a
    // descriptor: a greeting or two first.)
    let mut greeted = Vec::new();
    loop {
        let (s, p) = first_packet(addr);
        if is_1040(&p) {
            break;
        }
        assert_eq!(p[0], 10, "a greeting: {p:?}");
        greeted.push(s);
        assert!(greeted.len() < 3, "Funnel keeps accepting");
    }
    for _ in 0..5 {
        let started = Instant::now();
        let (_, p) = first_packet(addr);
        assert!(is_1040(&p), "{}", String::from_utf8_lossy(&p));
        assert!(String::from_utf8_lossy(&p).contains("file descriptors"));
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
    }
    // Funnel does not spin meanwhile (a busy loop burns the whole second).
    let ticks_per_sec = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as u64;
    let t0 = cpu_ticks(pid);
    thread::sleep(Duration::from_secs(1));
    let used = cpu_ticks(pid) - t0;
    assert!(
        used * 4 < ticks_per_sec,
        "{used} of {ticks_per_sec} ticks in 1 s of failing accepts"
    );

    // b needs a second backend connection, which cannot be opened.
    for _ in 0..3 {
        match server_code(b.query("SELECT 2")) {
            Err((1041, msg)) => assert!(msg.contains("open-files limit"), "{msg}"),
            other => panic!("out of descriptors: {other:?}"),
        }
    }
    // a goes on, on its connection.
    assert_eq!(server_code(a.query("SELECT 3")), Ok("3".into()));

    // Descriptors are back: b's next command opens a connection at once
    // (a still holds the first one).
    set_soft_nofile(pid, 20_000);
    let started = Instant::now();
    assert_eq!(server_code(b.query("SELECT 4")), Ok("4".into()));
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    a.query("COMMIT").unwrap();
    let mut c = MiniClient::connect(addr, "app", "pw", Some(&schema)).unwrap();
    assert_eq!(server_code(c.query("SELECT 5")), Ok("5".into()));
}

/// Reads the first packet Funnel sends a new connection: the greeting
/// (protocol 10) or an ERR.
fn first_packet(addr: SocketAddr) -> (TcpStream, Vec<u8>) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let (_, p) = funnel_testkit::mini_client::read_raw_packet(&mut s).unwrap();
    (s, p)
}

fn is_1040(p: &[u8]) -> bool {
    p.first() == Some(&0xff) && p.get(1..3) == Some(&1040u16.to_le_bytes()[..])
}

/// `client.max_connections` counts clients from accept to close, whatever
/// they are doing: logged in, mid-handshake, or mid-TLS. Over it, a new
/// connection gets ERR 1040 at once, and a burst of connections cannot
/// slip past it; a client that leaves (also without finishing its login
/// or its TLS handshake) gives its place back.
#[test]
fn limits_max_connections_refuses_with_1040_and_gives_places_back() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = funnel_testkit::certs::self_signed(dir.path(), "127.0.0.1");
    let db = MariaDb::shared();
    let schema = db.fresh_database("lim_maxconn");
    let backend = format!("{schema}_b");
    db.create_user(&backend, "bpw");
    let cfg = funnel_testkit::funnel::config(
        db,
        ("app", "pw"),
        (&backend, "bpw"),
        Some(&schema),
        &format!(
            "client:\n  max_connections: 3\n  handshake_timeout: 30s\n  tls:\n    cert: {}\n    key: {}\n",
            cert.display(),
            key.display()
        ),
    );
    let proxy = funnel_testkit::funnel::start(cfg);
    let addr = proxy.local_addr();

    let mut logged_in = MiniClient::connect(addr, "app", "pw", Some(&schema)).unwrap();
    // Greeted, says nothing.
    let (mid_login, greeting) = first_packet(addr);
    assert_eq!(greeting[0], 10);
    // Asks for TLS, then sends the first bytes of a ClientHello and stops.
    let (mut mid_tls, greeting) = first_packet(addr);
    assert_eq!(greeting[0], 10);
    let caps: u32 = 0x0000_0800 | 0x0000_0200 | 0x0000_8000; // SSL | PROTOCOL_41 | SECURE_CONNECTION
    let mut ssl_request = vec![32, 0, 0, 1];
    ssl_request.extend_from_slice(&caps.to_le_bytes());
    ssl_request.extend_from_slice(&(1u32 << 24).to_le_bytes());
    ssl_request.push(45);
    ssl_request.extend_from_slice(&[0; 23]);
    mid_tls.write_all(&ssl_request).unwrap();
    // (Funnel refuses bytes that come with the request itself.)
    thread::sleep(Duration::from_millis(100));
    mid_tls.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01]).unwrap();
    thread::sleep(Duration::from_millis(100));
    {
        use std::io::Read;
        mid_tls
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let e = mid_tls.read(&mut [0u8; 256]).unwrap_err();
        assert_eq!(
            e.kind(),
            std::io::ErrorKind::WouldBlock,
            "the TLS handshake still waits"
        );
    }

    // Full: a burst of new connections is refused, each at once.
    let started = Instant::now();
    let burst: Vec<_> = (0..20)
        .map(|_| thread::spawn(move || first_packet(addr).1))
        .collect();
    for h in burst {
        let p = h.join().unwrap();
        assert!(is_1040(&p), "{p:?}");
    }
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        logged_in.query("SELECT 1").unwrap().rows()[0][0].as_deref(),
        Some("1")
    );

    // The two half-logged-in clients leave: two places free up.
    drop(mid_login);
    drop(mid_tls);
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut back = Vec::new();
    while back.len() < 2 {
        match MiniClient::connect(addr, "app", "pw", Some(&schema)) {
            Ok(c) => back.push(c),
            Err(MiniError::Server(e)) if e.code == 1040 && Instant::now() < deadline => {
                thread::sleep(Duration::from_millis(20))
            }
            Err(e) => panic!("a place was not given back: {e:?}"),
        }
    }
    let (_, p) = first_packet(addr);
    assert!(is_1040(&p), "a fourth client: {p:?}");

    // A burst against free places admits exactly as many as are free.
    drop(back);
    drop(logged_in);
    thread::sleep(Duration::from_millis(300));
    let burst: Vec<_> = (0..30)
        .map(|_| thread::spawn(move || first_packet(addr)))
        .collect();
    let firsts: Vec<_> = burst.into_iter().map(|h| h.join().unwrap()).collect();
    let greeted = firsts.iter().filter(|(_, p)| p[0] == 10).count();
    let refused = firsts.iter().filter(|(_, p)| is_1040(p)).count();
    assert_eq!((greeted, refused), (3, 27));
}

const TCP_ESTABLISHED: u8 = 1;

/// The state (as /proc/net/tcp numbers them) of this host's TCP socket
/// from `local_port` to `remote_port` on 127.0.0.1.
fn tcp_state(local_port: u16, remote_port: u16) -> Option<u8> {
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap();
    let want = (
        format!("0100007F:{local_port:04X}"),
        format!("0100007F:{remote_port:04X}"),
    );
    table.lines().skip(1).find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        (f.get(1) == Some(&want.0.as_str()) && f.get(2) == Some(&want.1.as_str()))
            .then(|| u8::from_str_radix(f[3], 16).unwrap())
    })
}

fn rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib * 1024
}

/// A client that announces a large command packet and sends only its
/// first bytes costs the memory of what it sent, not of what it declared:
/// the buffer grows as the data comes. It was sized to the declared length
/// at once, so a 4-byte header (0xffffff) cost 16 MiB, and a handful of
/// clients could take gigabytes from everyone on the core.
#[test]
fn limits_a_declared_packet_length_alone_costs_no_memory() {
    const CLIENTS: usize = 8;
    let dir = tempfile::tempdir().unwrap();
    let funnel = spawn(env!("CARGO_BIN_EXE_funnel"), "lim_decl", "", dir.path());
    let (addr, schema, pid) = (funnel.addr, funnel.schema.clone(), funnel.child.id());
    let mut good = MiniClient::connect(addr, "app", "pw", Some(&schema)).unwrap();
    let mut clients: Vec<MiniClient> = (0..CLIENTS)
        .map(|_| MiniClient::connect(addr, "app", "pw", Some(&schema)).unwrap())
        .collect();
    assert_eq!(server_code(good.query("SELECT 1")), Ok("1".into()));
    thread::sleep(Duration::from_millis(200));
    let before = rss_bytes(pid);
    for c in &mut clients {
        // A 16 MiB - 2 COM_QUERY, of which 12 bytes arrive.
        c.write_raw(&[0xfe, 0xff, 0xff, 0, 0x03]).unwrap();
        c.write_raw(b"SELECT '...").unwrap();
    }
    thread::sleep(Duration::from_secs(1));
    let grown = rss_bytes(pid).saturating_sub(before);
    assert!(
        grown < (CLIENTS as u64) << 20,
        "{} KiB more for {CLIENTS} clients that sent 16 bytes each",
        grown >> 10
    );
    // The core serves everyone else meanwhile.
    assert_eq!(server_code(good.query("SELECT 2")), Ok("2".into()));
    // A packet that does come in pieces is whole when its last byte is
    // (the buffer grew with it).
    let mut c = MiniClient::connect(addr, "app", "pw", Some(&schema)).unwrap();
    let len: usize = 2 << 20;
    let mut packet = vec![len as u8, (len >> 8) as u8, (len >> 16) as u8, 0, 0x03];
    packet.extend_from_slice(b"SELECT LENGTH('");
    packet.resize(4 + len - 2, b'x');
    packet.extend_from_slice(b"')");
    c.write_raw(&packet[..1 << 20]).unwrap();
    thread::sleep(Duration::from_millis(100));
    c.write_raw(&packet[1 << 20..]).unwrap();
    let expected = (len - 1 - 15 - 2).to_string();
    loop {
        let (_, p) = c.read_packet().unwrap();
        assert_ne!(p[0], 0xff, "{}", String::from_utf8_lossy(&p));
        if p.len() > 1 && p[1..] == *expected.as_bytes() {
            break;
        }
    }
    drop(clients);
}

/// Clients that stop reading large results (one of large rows, one of
/// many small rows, one of a single 30 MB value) cost Funnel next to no
/// memory: results stream with backpressure, never gathered whole. The
/// other clients of the core keep their latency meanwhile, and
/// `client.net_write_timeout` closes the stalled readers.
#[test]
fn limits_stalled_readers_of_large_results_cost_no_memory() {
    let dir = tempfile::tempdir().unwrap();
    let funnel = spawn(
        env!("CARGO_BIN_EXE_funnel"),
        "lim_slow",
        "pool:\n  max_per_core: 4\nclient:\n  net_write_timeout: 2s\n",
        dir.path(),
    );
    let (addr, schema, pid) = (funnel.addr, funnel.schema.clone(), funnel.child.id());
    let mut good = MiniClient::connect(addr, "app", "pw", Some(&schema)).unwrap();
    good.query("CREATE TABLE big (id INT PRIMARY KEY, pad LONGTEXT)")
        .unwrap();
    good.query("INSERT INTO big SELECT seq, REPEAT('x', 100000) FROM seq_1_to_100")
        .unwrap();
    good.query("CREATE TABLE many (id INT PRIMARY KEY, pad VARCHAR(40))")
        .unwrap();
    good.query("INSERT INTO many SELECT seq, REPEAT('y', 40) FROM seq_1_to_200000")
        .unwrap();
    thread::sleep(Duration::from_millis(200));
    let before = rss_bytes(pid);
    let mut readers = Vec::new();
    for sql in [
        "SELECT * FROM big",
        "SELECT * FROM many",
        "SELECT REPEAT('z', 30000000)",
    ] {
        let mut r = MiniClient::connect(addr, "app", "pw", Some(&schema)).unwrap();
        // A small receive window: the reader's own kernel takes little, so
        // Funnel's writes block early.
        let s = r.try_clone_stream().unwrap();
        let size: libc::c_int = 4096;
        // SAFETY: setsockopt reads the int passed.
        unsafe {
            use std::os::fd::AsRawFd;
            libc::setsockopt(
                s.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVBUF,
                &size as *const _ as *const libc::c_void,
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            );
        }
        r.send_query(sql).unwrap();
        assert!(!r.read_raw(1024).unwrap().is_empty(), "{sql}: the result starts");
        readers.push(r);
    }
    let mut worst = Duration::ZERO;
    let started = Instant::now();
    while started.elapsed() < Duration::from_millis(1500) {
        let t = Instant::now();
        assert_eq!(server_code(good.query("SELECT 7")), Ok("7".into()));
        worst = worst.max(t.elapsed());
        thread::sleep(Duration::from_millis(20));
    }
    let grown = rss_bytes(pid).saturating_sub(before);
    assert!(grown < 8 << 20, "{} KiB more with 3 stalled readers", grown >> 10);
    assert!(worst < Duration::from_secs(1), "another client waited {worst:?}");
    // net_write_timeout (2 s without progress) closes them: Funnel's end
    // of each leaves ESTABLISHED (what it wrote is still on its way
    // through the tiny window, so the readers cannot tell yet).
    let deadline = Instant::now() + Duration::from_secs(10);
    for r in &readers {
        let port = r.try_clone_stream().unwrap().local_addr().unwrap().port();
        while tcp_state(addr.port(), port) == Some(TCP_ESTABLISHED) {
            assert!(
                Instant::now() < deadline,
                "the reader on port {port} is still served"
            );
            thread::sleep(Duration::from_millis(100));
        }
    }
    assert_eq!(server_code(good.query("SELECT 8")), Ok("8".into()));
}

/// A backend frozen (SIGSTOP) in the middle of a large result: the core
/// goes on serving the clients of another backend at their usual latency,
/// and once the server resumes, the frozen result completes whole.
#[test]
fn limits_a_backend_frozen_mid_result_holds_back_only_its_own_clients() {
    let frozen = MariaDb::start();
    let live = MariaDb::shared();
    let (fs, ls) = (frozen.fresh_database("lim_frz"), live.fresh_database("lim_live"));
    let (fb, lb) = (format!("{fs}_b"), format!("{ls}_b"));
    frozen.create_user(&fb, "bpw");
    live.create_user(&lb, "bpw");
    let yaml = format!(
        "listen: 127.0.0.1:0\ncores: 1\n\
         users:\n  - name: app\n    password: pw\n    default_schema: {fs}\n    default_hostgroup: frozen\n\
         \x20 - name: other\n    password: pw\n    default_schema: {ls}\n    default_hostgroup: live\n\
         backends:\n  - name: f\n    address: {}\n    user: {fb}\n    password: bpw\n    hostgroup: frozen\n\
         \x20 - name: l\n    address: {}\n    user: {lb}\n    password: bpw\n    hostgroup: live\n\
         pool:\n  query_timeout: 30s\n",
        frozen.addr(),
        live.addr()
    );
    let proxy = funnel_testkit::funnel::start(funnel_config::Config::from_yaml_str(&yaml).unwrap());
    let addr = proxy.local_addr();
    let mut a = MiniClient::connect(addr, "app", "pw", Some(&fs)).unwrap();
    let mut b = MiniClient::connect(addr, "other", "pw", Some(&ls)).unwrap();
    assert_eq!(server_code(b.query("SELECT 1")), Ok("1".into()));

    // Rows of 20 KB, one every 10 ms: the result streams for 3 s.
    a.send_query("SELECT seq, REPEAT('x', 20000), SLEEP(0.01) FROM seq_1_to_300")
        .unwrap();
    let (_, count) = a.read_packet().unwrap();
    assert_eq!(count, [3]);
    thread::sleep(Duration::from_millis(300));
    frozen.pause();
    let mut worst = Duration::ZERO;
    let started = Instant::now();
    while started.elapsed() < Duration::from_millis(1500) {
        let t = Instant::now();
        assert_eq!(server_code(b.query("SELECT 2")), Ok("2".into()));
        worst = worst.max(t.elapsed());
        thread::sleep(Duration::from_millis(20));
    }
    frozen.resume();
    assert!(
        worst < Duration::from_millis(500),
        "the live backend's client waited {worst:?}"
    );
    // The frozen result goes on where it stopped: 3 column definitions,
    // then every row in order, then the end.
    let mut rows = 0;
    let mut defs = 0;
    loop {
        let (_, p) = a.read_packet().unwrap();
        match p[0] {
            0xff => panic!("{}", String::from_utf8_lossy(&p)),
            0xfe if p.len() < 9 => {
                if defs >= 3 && rows > 0 {
                    break;
                }
            }
            _ if defs < 3 => defs += 1,
            _ => {
                rows += 1;
                assert!(p[1..].starts_with(rows.to_string().as_bytes()), "row {rows}");
            }
        }
    }
    assert_eq!(rows, 300);
    assert_eq!(server_code(a.query("SELECT 3")), Ok("3".into()));
}

/// A flood of `COM_STMT_SEND_LONG_DATA` (48 MiB in 512 KiB pieces, no
/// reply to any) passes through to the server piece by piece: Funnel holds
/// none of it, and the execute sees all of it.
#[test]
fn limits_a_long_data_flood_passes_through_without_being_held() {
    const PIECES: usize = 96;
    let dir = tempfile::tempdir().unwrap();
    let funnel = spawn(env!("CARGO_BIN_EXE_funnel"), "lim_long", "", dir.path());
    let (addr, schema, pid) = (funnel.addr, funnel.schema.clone(), funnel.child.id());
    let mut c = MiniClient::connect(addr, "app", "pw", Some(&schema)).unwrap();
    let mut prepare = vec![0x16];
    prepare.extend_from_slice(b"SELECT LENGTH(?)");
    c.send_command(&prepare).unwrap();
    let (_, ok) = c.read_packet().unwrap();
    assert_eq!(ok[0], 0, "{}", String::from_utf8_lossy(&ok));
    let id = u32::from_le_bytes(ok[1..5].try_into().unwrap());
    // The parameter and column definitions, each followed by an EOF.
    for _ in 0..4 {
        c.read_packet().unwrap();
    }
    thread::sleep(Duration::from_millis(200));
    let before = rss_bytes(pid);
    let piece = vec![b'y'; 512 << 10];
    let mut peak = 0;
    for i in 0..PIECES {
        let mut p = vec![0x18];
        p.extend_from_slice(&id.to_le_bytes());
        p.extend_from_slice(&0u16.to_le_bytes());
        p.extend_from_slice(&piece);
        c.send_command(&p).unwrap();
        if i % 16 == 15 {
            peak = peak.max(rss_bytes(pid).saturating_sub(before));
        }
    }
    let mut exec = vec![0x17];
    exec.extend_from_slice(&id.to_le_bytes());
    exec.extend_from_slice(&[0, 1, 0, 0, 0, 0, 1, 0xfc, 0]); // flags, iterations, null bitmap, new types, MEDIUM_BLOB
    c.send_command(&exec).unwrap();
    // Column count, definition, EOF, then the binary row: header, null
    // bitmap, the integer (4 or 8 bytes).
    let value = loop {
        let (_, p) = c.read_packet().unwrap();
        assert_ne!(p[0], 0xff, "{}", String::from_utf8_lossy(&p));
        if p[0] == 0 && (p.len() == 6 || p.len() == 10) {
            let mut v = [0u8; 8];
            v[..p.len() - 2].copy_from_slice(&p[2..]);
            break u64::from_le_bytes(v);
        }
    };
    assert_eq!(value, PIECES as u64 * (512 << 10));
    peak = peak.max(rss_bytes(pid).saturating_sub(before));
    assert!(peak < 8 << 20, "{} KiB more for 48 MiB of long data", peak >> 10);
}
