//! Resource limits: the process out of file descriptors, and the like.
//! The `funnel` binary runs as its own process here, so its open-files
//! limit can be lowered (`prlimit`) without touching the test's own.

use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use funnel_testkit::mini_client::{MiniClient, MiniError};
use funnel_testkit::MariaDb;

struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the `funnel` binary in front of the shared server with `extra`
/// YAML; returns it, its address and the test's schema once it answers.
fn start_binary(prefix: &str, extra: &str, dir: &Path) -> (Child, SocketAddr, String) {
    let db = MariaDb::shared();
    let schema = db.fresh_database(prefix);
    let backend = format!("{schema}_b");
    db.create_user(&backend, "bpw");
    let path = dir.join("funnel.yaml");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    std::fs::write(
        &path,
        format!(
            "listen: 127.0.0.1:{port}\ncores: 1\n\
             users:\n  - name: app\n    password: pw\n    default_schema: {schema}\n\
             backends:\n  - name: primary\n    address: {}\n    user: {backend}\n    password: bpw\n\
             log:\n  level: warn\n{extra}",
            db.addr()
        ),
    )
    .unwrap();
    let child = Child(
        Command::new(env!("CARGO_BIN_EXE_funnel"))
            .arg("--config")
            .arg(&path)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap(),
    );
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match MiniClient::connect(addr, "app", "pw", None) {
            Ok(_) => break,
            Err(e) => {
                assert!(Instant::now() < deadline, "funnel did not start: {e:?}");
                thread::sleep(Duration::from_millis(50));
            }
        }
    }
    (child, addr, schema)
}

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

/// Funnel out of file descriptors (its limit lowered under it): the
/// listener backs off instead of spinning on failed accepts, connected
/// clients go on, a command that needs a new backend connection gets ERR
/// 1041 naming Funnel's own shortage (not 9003 blaming the backend), and
/// nothing is held against the backend: once descriptors are back, the
/// next open happens at once (a back-off taken for the failure refused it
/// with "connections failed recently") and the waiting clients get in.
#[test]
fn limits_out_of_descriptors_backs_off_errs_clearly_and_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let (child, addr, schema) = start_binary(
        "lim_fd",
        "pool:\n  max_per_core: 4\n  min_idle_per_core: 0\n",
        dir.path(),
    );
    let pid = child.0.id();
    let mut a = MiniClient::connect(addr, "app", "pw", Some(&schema)).unwrap();
    let mut b = MiniClient::connect(addr, "app", "pw", Some(&schema)).unwrap();
    assert_eq!(server_code(a.query("SELECT 1")), Ok("1".into()));
    // a holds the only backend connection open so far.
    a.query("BEGIN").unwrap();
    // Settled: the health monitor's check ran (it opens a connection of its own).
    thread::sleep(Duration::from_millis(300));
    set_soft_nofile(pid, open_fds(pid) as u64);

    // Clients the listener cannot accept wait in the kernel's queue;
    // Funnel does not spin meanwhile (a busy loop burns the whole second).
    let waiting: Vec<TcpStream> = (0..5).map(|_| TcpStream::connect(addr).unwrap()).collect();
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
    // The clients that waited in the kernel's queue are greeted.
    for mut s in waiting {
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let (_, greeting) = funnel_testkit::mini_client::read_raw_packet(&mut s).unwrap();
        assert_eq!(greeting[0], 10, "a handshake: {greeting:?}");
    }
    let mut c = MiniClient::connect(addr, "app", "pw", Some(&schema)).unwrap();
    assert_eq!(server_code(c.query("SELECT 5")), Ok("5".into()));
}
