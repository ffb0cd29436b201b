//! The `funnel` binary itself: `check`, serving, SIGHUP reload, SIGTERM.

use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use funnel_testkit::MariaDb;
use mysql::{Conn, OptsBuilder};

fn free_port() -> u16 {
    funnel_testkit::listen_port()
}

fn login(port: u16, user: &str) -> mysql::Result<Conn> {
    Conn::new(
        OptsBuilder::new()
            .ip_or_hostname(Some("127.0.0.1"))
            .tcp_port(port)
            .user(Some(user))
            .pass(Some("pw"))
            .prefer_socket(false),
    )
}

fn wait_for(what: &str, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn binary_serves_reloads_on_sighup_and_stops_on_sigterm() {
    let db = MariaDb::shared();
    let schema = db.fresh_database("binary");
    db.create_user("binary_b", "bpw");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("funnel.yaml");
    let port = free_port();
    let yaml = |users: &str| {
        format!(
            "listen: 127.0.0.1:{port}\ncores: 1\nusers:\n{users}\
             backends:\n  - name: primary\n    address: {}\n    user: binary_b\n    password: bpw\n\
             log:\n  level: warn\n",
            db.addr()
        )
    };
    let one = format!("  - name: first\n    password: pw\n    default_schema: {schema}\n");
    std::fs::write(&path, yaml(&one)).unwrap();
    let check = Command::new(env!("CARGO_BIN_EXE_funnel"))
        .args(["check", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );

    let mut child = Command::new(env!("CARGO_BIN_EXE_funnel"))
        .arg("--config")
        .arg(&path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for("funnel to serve", || login(port, "first").is_ok());
    assert!(login(port, "second").is_err(), "not a user yet");

    let two = format!("{one}  - name: second\n    password: pw\n    default_schema: {schema}\n");
    std::fs::write(&path, yaml(&two)).unwrap();
    // SAFETY: kill(2) on the child we spawned.
    unsafe { libc::kill(child.id() as i32, libc::SIGHUP) };
    wait_for("the reload to add a user", || login(port, "second").is_ok());

    // An invalid file changes nothing.
    std::fs::write(&path, "listen: nonsense").unwrap();
    // SAFETY: as above.
    unsafe { libc::kill(child.id() as i32, libc::SIGHUP) };
    thread::sleep(Duration::from_millis(300));
    assert!(
        login(port, "second").is_ok(),
        "still serving the last good configuration"
    );

    // SAFETY: as above.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "{status:?}");
            break;
        }
        assert!(Instant::now() < deadline, "funnel did not stop on SIGTERM");
        thread::sleep(Duration::from_millis(50));
    }
}

/// A core that cannot start its executor (here: locked-memory limit far
/// below what io_uring needs) stops the start with an error and a
/// non-zero exit, so a supervisor restarts or alerts instead of a
/// half-started proxy exiting 0.
#[test]
fn binary_fails_loudly_when_a_core_cannot_start() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("funnel.yaml");
    std::fs::write(
        &path,
        "listen: 127.0.0.1:0\ncores: 1\nusers:\n  - name: app\n    password: pw\n\
         backends:\n  - name: primary\n    address: 127.0.0.1:1\n    user: x\n    password: y\n",
    )
    .unwrap();
    let out = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "ulimit -l 64 && exec {} --config {}",
            env!("CARGO_BIN_EXE_funnel"),
            path.display()
        ))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "should fail: {stderr}");
    assert!(stderr.contains("core 0 did not start"), "{stderr}");
    // The cause as the error line operations.md lists, not as a panic.
    assert!(
        stderr.contains("cannot start executor funnel-shard-0: IO error occurred: MemLockLimit"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}

/// A config that starts serving without a reachable backend: its only
/// backend is 127.0.0.1:1 and the pool opens nothing up front.
fn unreachable_backend_config(port: u16, cores: &str) -> String {
    format!(
        "listen: 127.0.0.1:{port}\ncores: {cores}\nusers:\n  - name: app\n    password: pw\n\
         backends:\n  - name: primary\n    address: 127.0.0.1:1\n    user: x\n    password: y\n\
         pool:\n  min_idle_per_core: 0\n"
    )
}

/// Starts the binary with `config` under `wrapper`, a command prefix such
/// as `taskset -c 1`; the returned child is the wrapper.
fn spawn_under(wrapper: &[&str], config: &std::path::Path) -> std::process::Child {
    Command::new(wrapper[0])
        .args(&wrapper[1..])
        .arg(env!("CARGO_BIN_EXE_funnel"))
        .arg("--config")
        .arg(config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("{} runs: {e}", wrapper[0]))
}

/// The highest CPU in this test process's affinity mask.
fn last_allowed_cpu() -> usize {
    *funnel_engine::affinity::allowed_cpus().last().unwrap()
}

/// Started under `taskset` (as a container's cpuset would), `cores: 1`
/// pins its shard inside the mask, not to CPU 0; a listed CPU outside the
/// mask stops the start with a message that names the usable CPUs.
#[test]
fn binary_pins_shards_inside_its_cpu_affinity() {
    let cpu = last_allowed_cpu();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("funnel.yaml");
    let port = free_port();
    let yaml = |cores: &str| unreachable_backend_config(port, cores);
    std::fs::write(&path, yaml("1")).unwrap();
    let mut child = spawn_under(&["taskset", "-c", &cpu.to_string()], &path);
    // The shard's thread is the one glommio pinned: its mask is one CPU.
    let shard_masks = || -> Vec<String> {
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{}/task", child.id())) else {
            return Vec::new();
        };
        tasks
            .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("status")).ok())
            .filter(|s| {
                s.lines()
                    .any(|l| l.strip_prefix("Name:").map(str::trim) == Some("funnel-shard-0"))
            })
            .filter_map(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
                    .map(|v| v.trim().to_string())
            })
            .collect()
    };
    wait_for("the shard's thread", || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() && !shard_masks().is_empty()
    });
    let masks = shard_masks();
    child.kill().unwrap();
    child.wait().unwrap();
    // (glommio names its helper thread after the executor too.)
    assert!(
        masks.iter().all(|m| *m == cpu.to_string()),
        "shard pinned inside the mask {cpu}: {masks:?}"
    );

    // A CPU outside the mask is refused at start, naming the usable ones.
    let outside = if cpu == 0 { 1 } else { 0 };
    std::fs::write(&path, yaml(&format!("[{outside}]"))).unwrap();
    let out = Command::new("taskset")
        .args(["-c", &cpu.to_string()])
        .arg(env!("CARGO_BIN_EXE_funnel"))
        .arg("--config")
        .arg(&path)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "should fail: {stderr}");
    assert!(
        stderr.contains(&format!(
            "CPU {outside} is not among the CPUs this process may use ({cpu})"
        )),
        "{stderr}"
    );
}

/// Each shard's main and latency rings are set up with
/// `IORING_SETUP_COOP_TASKRUN` (the patch in vendor/glommio), so a peer's
/// `send` that completes one of Funnel's polls does not interrupt Funnel's
/// CPU. Dropping the patch, or a glommio upgrade that loses it, fails here.
#[test]
fn binary_sets_up_its_rings_with_coop_taskrun() {
    let cores = funnel_engine::affinity::allowed_cpus().len().min(2);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("funnel.yaml");
    let trace = dir.path().join("strace.out");
    let port = free_port();
    std::fs::write(&path, unreachable_backend_config(port, &cores.to_string())).unwrap();
    // -ff: one file per thread, so two shards' calls never interleave
    // into "<unfinished ...>" halves. (scripts/test installs strace.)
    let trace_arg = trace.to_string_lossy().into_owned();
    let mut strace = spawn_under(
        &[
            "strace",
            "-ff",
            "-qq",
            "-e",
            "trace=io_uring_setup",
            "-o",
            &trace_arg,
        ],
        &path,
    );
    wait_for("Funnel listening under strace", || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    // Stop Funnel itself (strace's child) so strace writes everything out.
    let children = std::fs::read_to_string(format!("/proc/{0}/task/{0}/children", strace.id())).unwrap();
    let funnel: i32 = children.split_whitespace().next().unwrap().parse().unwrap();
    // SAFETY: kill(2) on the PID of the process this test started.
    assert_eq!(unsafe { libc::kill(funnel, libc::SIGTERM) }, 0);
    assert!(strace.wait().unwrap().success());
    let mut out = String::new();
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let path = entry.unwrap().path();
        if path.to_string_lossy().contains("strace.out.") {
            out += &std::fs::read_to_string(path).unwrap();
        }
    }
    let setups: Vec<&str> = out
        .lines()
        .filter(|l| l.contains("io_uring_setup(") && l.contains("= "))
        .collect();
    let coop = setups
        .iter()
        .filter(|l| l.contains("flags=IORING_SETUP_COOP_TASKRUN"))
        .count();
    assert_eq!(coop, 2 * cores, "main and latency ring per shard: {out}");
    // With the flag that tells a polling core (idle_poll) when deferred
    // completions wait for its next kernel entry.
    let flagged = setups
        .iter()
        .filter(|l| l.contains("IORING_SETUP_COOP_TASKRUN|IORING_SETUP_TASKRUN_FLAG"))
        .count();
    assert_eq!(flagged, 2 * cores, "TASKRUN_FLAG on both rings: {out}");
    // Each of those succeeded on its first try (no fallback without it).
    assert!(
        !setups
            .iter()
            .any(|l| l.contains("COOP_TASKRUN") && l.contains("= -1")),
        "{out}"
    );
}

/// A config file for one core in front of the shared server, user `app`
/// (password `pw`) in a fresh schema, and `extra` YAML sections; returns
/// the directory holding the file (keep it alive), the file and the port.
fn one_core_config(prefix: &str, extra: &str) -> (tempfile::TempDir, std::path::PathBuf, u16) {
    let db = MariaDb::shared();
    let schema = db.fresh_database(prefix);
    let backend = format!("{prefix}_b");
    db.create_user(&backend, "bpw");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("funnel.yaml");
    let port = free_port();
    std::fs::write(
        &path,
        format!(
            "listen: 127.0.0.1:{port}\ncores: 1\n\
             users:\n  - name: app\n    password: pw\n    default_schema: {schema}\n\
             backends:\n  - name: primary\n    address: {}\n    user: {backend}\n    password: bpw\n{extra}",
            db.addr()
        ),
    )
    .unwrap();
    (dir, path, port)
}

/// Under a low open-files limit, clients beyond what it can hold beside the
/// backend connections get ERR 1040 at once; accepts never fail for want of
/// descriptors (which left clients unanswered and made health checks fail,
/// marking the backend down for everyone).
#[test]
fn binary_refuses_clients_before_running_out_of_descriptors() {
    use std::io::{Read, Write};
    let metrics = free_port();
    let (_dir, path, port) = one_core_config(
        "fdlimit",
        &format!(
            "pool:\n  max_per_core: 4\n\
             monitor:\n  interval: 100ms\n\
             metrics:\n  listen: 127.0.0.1:{metrics}\n\
             log:\n  level: error\n"
        ),
    );
    let mut child = spawn_under(&["prlimit", "--nofile=400:400"], &path);
    wait_for("funnel to serve", || login(port, "app").is_ok());
    let healthz = || {
        let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", metrics)) else {
            return String::new();
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
        let _ = write!(s, "GET /healthz HTTP/1.1\r\n\r\n");
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        out
    };
    let mut kept = Vec::new();
    let (mut greeted, mut refused, mut silent) = (0, 0, 0);
    for _ in 0..450 {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        let mut head = [0u8; 5];
        match s.read_exact(&mut head) {
            Ok(()) if head[4] == 0x0a => {
                greeted += 1;
                kept.push(s);
            }
            Ok(()) if head[4] == 0xff => {
                let mut code = [0u8; 2];
                s.read_exact(&mut code).unwrap();
                assert_eq!(u16::from_le_bytes(code), 1040);
                refused += 1;
            }
            _ => silent += 1,
        }
        if silent > 3 {
            break;
        }
    }
    thread::sleep(Duration::from_millis(500));
    let health = healthz();
    eprintln!("{greeted} greeted, {refused} refused, {silent} silent");
    drop(kept);
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(
        silent, 0,
        "clients left unanswered ({greeted} greeted, {refused} refused)"
    );
    assert!(
        greeted > 50 && refused > 0,
        "{greeted} greeted, {refused} refused"
    );
    assert!(
        health.starts_with("HTTP/1.1 200"),
        "the backend stays up: {health}"
    );
}

/// The warning that the open-files limit lowers each core's share of
/// `client.max_connections` is said again at a reload that raises
/// `client.max_connections` while the limit keeps the share where it was
/// (before, only a moved share was said: the raise took no effect and
/// nothing said so); a reload that changes neither says nothing.
#[test]
fn binary_warns_when_raised_max_connections_stays_lowered() {
    let (dir, path, port) = one_core_config(
        "sharewarn",
        "client:\n  max_connections: 1000\nlog:\n  level: warn\n",
    );
    let log_path = dir.path().join("funnel.log");
    let mut child = KillOnDrop(spawn_logging_to(&path, &log_path));
    let log = || std::fs::read_to_string(&log_path).unwrap();
    let warned = |max: &str| {
        log()
            .lines()
            .filter(|l| l.contains("cannot hold client.max_connections") && l.contains(max))
            .count()
    };
    wait_for("funnel to serve", || login(port, "app").is_ok());
    // The soft limit lowered under the running process: a reload works the
    // share out again with it (a few hundred descriptors beside one core's
    // 16 backend connections: about a hundred clients).
    let mut old = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    let pid = child.0.id() as i32;
    // SAFETY: prlimit with a null new limit only reads into `old`.
    assert_eq!(
        unsafe { libc::prlimit(pid, libc::RLIMIT_NOFILE, std::ptr::null(), &mut old) },
        0
    );
    let low = libc::rlimit {
        rlim_cur: 400,
        rlim_max: old.rlim_max,
    };
    // SAFETY: prlimit reads `low`; the old limit is not asked for.
    assert_eq!(
        unsafe { libc::prlimit(pid, libc::RLIMIT_NOFILE, &low, std::ptr::null_mut()) },
        0
    );
    let reload = |from: &str, to: &str| {
        let yaml = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, yaml.replace(from, to)).unwrap();
        // SAFETY: kill(2) on the child we spawned.
        unsafe { libc::kill(pid, libc::SIGHUP) };
    };
    reload("max_connections: 1000", "max_connections: 2000");
    wait_for("the lowered share said", || {
        warned("client_max_connections=2000") == 1
    });
    reload("max_connections: 2000", "max_connections: 3000");
    wait_for("the raise said", || warned("client_max_connections=3000") == 1);
    // Unchanged: nothing more is said.
    reload("level: warn", "level: warn");
    thread::sleep(Duration::from_millis(500));
    assert_eq!(warned("client_max_connections"), 2, "{}", log());
    // SAFETY: as above.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let _ = child.0.wait();
}

/// After the admin's SHUTDOWN GRACEFUL, a SIGTERM means "stop now", as a
/// second signal does: it does not start another 30 s graceful stop.
#[test]
fn binary_sigterm_after_admin_graceful_shutdown_stops_now() {
    use mysql::prelude::Queryable;
    let admin_port = free_port();
    let (dir, path, port) = one_core_config(
        "sigafter",
        &format!(
            "admin:\n  listen: 127.0.0.1:{admin_port}\n  user: admin\n  password: secret\n\
             log:\n  level: info\n"
        ),
    );
    let log_path = dir.path().join("funnel.log");
    let mut child = spawn_logging_to(&path, &log_path);
    wait_for("funnel to serve", || login(port, "app").is_ok());
    // A transaction keeps the graceful stop waiting.
    let mut busy = login(port, "app").unwrap();
    busy.query_drop("BEGIN").unwrap();
    let mut admin = Conn::new(
        OptsBuilder::new()
            .ip_or_hostname(Some("127.0.0.1"))
            .tcp_port(admin_port)
            .user(Some("admin"))
            .pass(Some("secret"))
            .prefer_socket(false),
    )
    .unwrap();
    admin.query_drop("SHUTDOWN GRACEFUL").unwrap();
    thread::sleep(Duration::from_millis(300));
    assert!(
        child.try_wait().unwrap().is_none(),
        "the open transaction holds the stop"
    );
    // SAFETY: kill(2) on the child we spawned.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "still draining after the SIGTERM"
        );
        thread::sleep(Duration::from_millis(50));
    }
    // The journal says who stopped it.
    let log = std::fs::read_to_string(&log_path).unwrap();
    assert!(log.contains("admin SHUTDOWN GRACEFUL"), "{log}");
    assert!(log.contains("stopping now"), "{log}");
}

/// What an operator reads in the journal: on standard error (as
/// documented), plain lines (no colour escape codes, which journald stores
/// as blobs), the documented start line, a reload naming the restart-only
/// key it did not apply, a `log.level` a reload applies at once (debug
/// lines follow it), and the graceful stop.
#[test]
fn binary_logs_plain_lines_naming_what_a_reload_did_not_apply() {
    let (dir, path, port) = one_core_config("plainlog", "log:\n  level: info\n");
    let log_path = dir.path().join("funnel.log");
    let child = spawn_logging_to(&path, &log_path);
    let mut child = KillOnDrop(child);
    let log = || std::fs::read_to_string(&log_path).unwrap();
    wait_for("funnel to serve", || log().contains("funnel is serving"));
    drop(login(port, "app").unwrap());
    thread::sleep(Duration::from_millis(200));
    assert!(
        !log().contains("session ended"),
        "no debug lines at info:\n{}",
        log()
    );
    let yaml = std::fs::read_to_string(&path).unwrap();
    let yaml = yaml
        .replace("level: info", "level: debug")
        .replace("cores: 1", "cores: 2");
    std::fs::write(&path, yaml).unwrap();
    // SAFETY: kill(2) on the child we spawned.
    unsafe { libc::kill(child.0.id() as i32, libc::SIGHUP) };
    wait_for("the reload", || log().contains("configuration reloaded"));
    drop(login(port, "app").unwrap());
    wait_for("a debug line", || log().contains("session ended"));
    // Down to `warn`: the change is still said, before the level drops.
    let yaml = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, yaml.replace("level: debug", "level: warn")).unwrap();
    // SAFETY: as above.
    unsafe { libc::kill(child.0.id() as i32, libc::SIGHUP) };
    wait_for("the change to warn said", || {
        log()
            .lines()
            .any(|l| l.contains("log level changed") && l.contains("warn"))
    });
    // From `warn` to `error` and back: neither shows an `info` line.
    for (from, to) in [("warn", "error"), ("error", "warn")] {
        let yaml = std::fs::read_to_string(&path).unwrap();
        std::fs::write(
            &path,
            yaml.replace(&format!("level: {from}"), &format!("level: {to}")),
        )
        .unwrap();
        // SAFETY: as above.
        unsafe { libc::kill(child.0.id() as i32, libc::SIGHUP) };
        let said = format!("from=\"{from}\" to=\"{to}\"");
        wait_for("the change said", || {
            log()
                .lines()
                .any(|l| l.contains("log level changed") && l.contains(&said))
        });
    }
    // And back up to `info`: said once the level allows it.
    let yaml = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, yaml.replace("level: warn", "level: info")).unwrap();
    // SAFETY: as above.
    unsafe { libc::kill(child.0.id() as i32, libc::SIGHUP) };
    wait_for("the change to info said", || {
        log()
            .lines()
            .any(|l| l.contains("log level changed") && l.contains("to=\"info\""))
    });
    // SAFETY: as above.
    unsafe { libc::kill(child.0.id() as i32, libc::SIGTERM) };
    let status = child.0.wait().unwrap();
    assert!(status.success(), "{status:?}");
    let text = log();
    assert!(!text.contains('\x1b'), "escape codes in the log:\n{text:?}");
    let restart: Vec<&str> = text.lines().filter(|l| l.contains("needs a restart")).collect();
    assert!(!restart.is_empty(), "{text}");
    assert!(
        restart.iter().all(|l| l.contains("cores")),
        "only cores waits for a restart:\n{text}"
    );
    assert!(text.contains("log level changed"), "{text}");
    assert!(text.contains("stopping gracefully"), "{text}");
}

/// A child process that a failed assertion does not leave running.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A start that fails says why once: the messages quote their causes, and
/// the printed chain must not repeat them.
#[test]
fn binary_start_errors_give_their_reason_once() {
    let dir = tempfile::tempdir().unwrap();
    let taken = dir.path().join("not-a-socket");
    std::fs::write(&taken, "").unwrap();
    let path = dir.path().join("funnel.yaml");
    let config = unreachable_backend_config(free_port(), "1");
    std::fs::write(&path, format!("{config}listen_socket: {}\n", taken.display())).unwrap();
    let missing = dir.path().join("missing.yaml");
    for (config, reason) in [(&path, "is not a socket"), (&missing, "No such file")] {
        let out = Command::new(env!("CARGO_BIN_EXE_funnel"))
            .arg("--config")
            .arg(config)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{stderr}");
        assert_eq!(stderr.matches(reason).count(), 1, "{stderr}");
    }
}

/// Starts the binary with `config`, its standard error (the log) to `log`.
fn spawn_logging_to(config: &std::path::Path, log: &std::path::Path) -> std::process::Child {
    spawn_logging_with(config, log, None)
}

/// [`spawn_logging_to`] with `RUST_LOG` set to `rust_log`, or unset (a
/// developer's own must not change what the tests see).
fn spawn_logging_with(
    config: &std::path::Path,
    log: &std::path::Path,
    rust_log: Option<&str>,
) -> std::process::Child {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_funnel"));
    match rust_log {
        Some(filter) => cmd.env("RUST_LOG", filter),
        None => cmd.env_remove("RUST_LOG"),
    };
    cmd.arg("--config")
        .arg(config)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap()
}

/// With `RUST_LOG` set, it is the log's filter and `log.level` waits for a
/// restart: a reload that changes it says so, and prints no debug line.
#[test]
fn binary_rust_log_keeps_the_log_level_until_a_restart() {
    let (dir, path, port) = one_core_config("rustlog", "log:\n  level: info\n");
    let log_path = dir.path().join("funnel.log");
    let mut child = KillOnDrop(spawn_logging_with(&path, &log_path, Some("info")));
    let log = || std::fs::read_to_string(&log_path).unwrap();
    wait_for("funnel to serve", || log().contains("funnel is serving"));
    let yaml = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, yaml.replace("level: info", "level: debug")).unwrap();
    // SAFETY: kill(2) on the child we spawned.
    unsafe { libc::kill(child.0.id() as i32, libc::SIGHUP) };
    wait_for("the reload", || log().contains("configuration reloaded"));
    drop(login(port, "app").unwrap());
    thread::sleep(Duration::from_millis(200));
    // SAFETY: as above.
    unsafe { libc::kill(child.0.id() as i32, libc::SIGTERM) };
    assert!(child.0.wait().unwrap().success());
    let text = log();
    let restart: Vec<&str> = text.lines().filter(|l| l.contains("needs a restart")).collect();
    assert!(
        restart.len() == 1 && restart[0].contains("log"),
        "log waits for a restart:\n{text}"
    );
    assert!(!text.contains("session ended"), "no debug lines:\n{text}");
    assert!(!text.contains("log level changed"), "{text}");
}

/// `funnel check` (the systemd unit's `ExecReload` runs it before SIGHUP)
/// loads `client.tls`'s certificate and key, as the reload will: a renewed
/// certificate whose key does not match, or a missing file, fails the
/// check with the reason, so `systemctl reload` fails instead of the
/// reload being refused only in Funnel's log.
#[test]
fn binary_check_loads_the_client_certificate_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (cert, key) = funnel_testkit::certs::self_signed(d, "localhost");
    let other = d.join("other");
    std::fs::create_dir(&other).unwrap();
    let (_, other_key) = funnel_testkit::certs::self_signed(&other, "localhost");
    let check = |key: &std::path::Path| {
        let path = d.join("funnel.yaml");
        std::fs::write(
            &path,
            format!(
                "{}client:\n  tls:\n    cert: {}\n    key: {}\n",
                unreachable_backend_config(free_port(), "1"),
                cert.display(),
                key.display()
            ),
        )
        .unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_funnel"))
            .args(["check", "--config"])
            .arg(&path)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (ok, stderr) = check(&key);
    assert!(ok, "{stderr}");
    let (ok, stderr) = check(&other_key);
    assert!(!ok, "a key of another certificate passed");
    assert!(stderr.contains("client.tls"), "{stderr}");
    let (ok, stderr) = check(&d.join("missing.pem"));
    assert!(!ok && stderr.contains("missing.pem"), "{stderr}");
    // `--skip-files` checks the configuration alone, as on another machine:
    // examples/funnel.yaml names files this one lacks.
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/funnel.yaml");
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_funnel"))
            .args(args)
            .output()
            .unwrap()
            .status
            .success()
    };
    assert!(
        !run(&["check", "--config", example]),
        "its TLS files are missing here"
    );
    assert!(run(&["check", "--skip-files", "--config", example]));
}

/// Out of descriptors with two `listen` addresses (the soft limit lowered
/// under a running Funnel to a few dozen above what it holds): every
/// client, through either address, gets its greeting or ERR 1040 at once,
/// and some get the ERR saying Funnel is out of file descriptors (so
/// accepts did run short). With an io_uring accept armed on each socket,
/// the accept made with the spare descriptor freed could return the other
/// socket's accept, which had ended earlier with the shortage it met then:
/// the core backed off with the client left unanswered.
#[test]
fn binary_two_listen_addresses_out_of_descriptors_leave_no_client_unanswered() {
    out_of_descriptors_through_two_sockets("emfile2", |port, yaml| {
        let two = format!("listen: [127.0.0.1:{port}, 127.0.0.2:{port}]");
        let yaml = yaml.replace(&format!("listen: 127.0.0.1:{port}"), &two);
        let connect = move |i: usize| -> Box<dyn std::io::Read> {
            let host = ["127.0.0.1", "127.0.0.2"][i];
            let s = std::net::TcpStream::connect((host, port)).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
            Box::new(s)
        };
        (yaml, Box::new(connect))
    });
}

/// As above, with the client Unix socket beside one `listen` address.
#[test]
fn binary_listen_and_unix_socket_out_of_descriptors_leave_no_client_unanswered() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("funnel.sock");
    out_of_descriptors_through_two_sockets("emfileu", move |port, yaml| {
        let yaml = format!("{yaml}listen_socket: {}\n", socket.display());
        let connect = move |i: usize| -> Box<dyn std::io::Read> {
            if i == 0 {
                let s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
                s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
                Box::new(s)
            } else {
                let s = std::os::unix::net::UnixStream::connect(&socket).unwrap();
                s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
                Box::new(s)
            }
        };
        (yaml, Box::new(connect))
    });
}

/// How a test of [`out_of_descriptors_through_two_sockets`] connects
/// through socket 0 or 1.
type ConnectTo = Box<dyn Fn(usize) -> Box<dyn std::io::Read>>;

/// Starts one core with the config `setup` makes from the port and the
/// one-address YAML, lowers its soft open-files limit to 40 above the
/// descriptors it holds, and connects 400 clients in turn through
/// `setup`'s two sockets: each must get a greeting (kept open) or the ERR
/// 1040 saying Funnel is out of file descriptors within 3 s, and that ERR
/// must come through both sockets.
fn out_of_descriptors_through_two_sockets(
    prefix: &str,
    setup: impl FnOnce(u16, String) -> (String, ConnectTo),
) {
    let (dir, path, port) = one_core_config(prefix, "log:\n  level: warn\n");
    let (yaml, connect) = setup(port, std::fs::read_to_string(&path).unwrap());
    std::fs::write(&path, yaml).unwrap();
    let log_path = dir.path().join("funnel.log");
    let child = KillOnDrop(spawn_logging_to(&path, &log_path));
    wait_for("funnel to serve", || login(port, "app").is_ok());
    let pid = child.0.id() as i32;
    let open = std::fs::read_dir(format!("/proc/{pid}/fd")).unwrap().count() as u64;
    let mut old = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: prlimit with a null new limit only reads into `old`.
    assert_eq!(
        unsafe { libc::prlimit(pid, libc::RLIMIT_NOFILE, std::ptr::null(), &mut old) },
        0
    );
    let low = libc::rlimit {
        rlim_cur: open + 40,
        rlim_max: old.rlim_max,
    };
    // SAFETY: prlimit reads `low`; the old limit is not asked for.
    assert_eq!(
        unsafe { libc::prlimit(pid, libc::RLIMIT_NOFILE, &low, std::ptr::null_mut()) },
        0
    );
    let mut kept = Vec::new();
    let (mut greeted, mut short, mut silent) = (0, [0; 2], Vec::new());
    for i in 0..400 {
        let mut s = connect(i % 2);
        let mut packet = Vec::new();
        let mut head = [0u8; 4];
        let answered = s.read_exact(&mut head).is_ok() && {
            let len = u32::from_le_bytes([head[0], head[1], head[2], 0]) as usize;
            packet.resize(len, 0);
            s.read_exact(&mut packet).is_ok()
        };
        match packet.first() {
            Some(0x0a) if answered => {
                greeted += 1;
                kept.push(s);
            }
            Some(0xff) if answered => {
                let text = String::from_utf8_lossy(&packet);
                assert!(text.contains("out of file descriptors"), "{text}");
                short[i % 2] += 1;
            }
            _ => silent.push(i % 2),
        }
        if silent.len() > 3 {
            break;
        }
    }
    drop(kept);
    drop(child);
    let log = std::fs::read_to_string(&log_path).unwrap();
    let failed = log.lines().filter(|l| l.contains("accept failed")).count();
    let report = format!(
        "limit {} ({open} open): {greeted} greeted, {short:?} refused for want of descriptors \
         through each socket, unanswered through sockets {silent:?}, {failed} accept failures logged",
        low.rlim_cur
    );
    eprintln!("{report}");
    assert!(silent.is_empty(), "{report}");
    // Accepts did run short, through both sockets.
    assert!(short[0] > 0 && short[1] > 0, "{report}");
}
