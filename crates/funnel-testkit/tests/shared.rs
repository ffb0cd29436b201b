//! The per-binary shared server, and that it does not outlive its test process.

use std::{
    path::Path,
    process::Command,
    thread,
    time::{Duration, Instant},
};

use funnel_testkit::MariaDb;

/// Set in the environment of the child process run by [`testkit_shared_server_dies_with_process`].
const CHILD_ENV: &str = "FUNNEL_TESTKIT_SHARED_CHILD";

#[test]
fn testkit_shared_is_one_server_with_fresh_databases() {
    let (a, b) = (MariaDb::shared(), MariaDb::shared());
    assert!(std::ptr::eq(a, b));
    let (x, y) = (a.fresh_database("shared"), a.fresh_database("shared"));
    assert_ne!(x, y);
    a.exec(&format!("CREATE TABLE `{x}`.t (id INT)"));
    a.exec(&format!("CREATE TABLE `{y}`.t (id INT)"));
}

/// Not a test on its own: the child half of the next test, which runs this binary again.
#[test]
fn testkit_shared_child_helper() {
    if std::env::var_os(CHILD_ENV).is_none() {
        return;
    }
    let db = MariaDb::shared();
    println!("SHARED_PID={}", db.pid());
}

#[test]
fn testkit_shared_server_dies_with_process() {
    let output = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "testkit_shared_child_helper", "--nocapture"])
        .env(CHILD_ENV, "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let pid: u32 = stdout
        .lines()
        .find_map(|l| l.strip_prefix("SHARED_PID="))
        .unwrap_or_else(|| panic!("child printed no pid:\n{stdout}"))
        .trim()
        .parse()
        .unwrap();
    // The exit handler kills it before the child exits; allow a moment in case only
    // PR_SET_PDEATHSIG fired (then init reaps it asynchronously).
    let deadline = Instant::now() + Duration::from_secs(10);
    while Path::new(&format!("/proc/{pid}")).exists() {
        assert!(
            Instant::now() < deadline,
            "shared server {pid} outlived its process"
        );
        thread::sleep(Duration::from_millis(20));
    }
}

/// Set for the child run by [`testkit_shared_server_that_died_leaves_its_log`].
const DEATH_CHILD_ENV: &str = "FUNNEL_TESTKIT_SHARED_DEATH_CHILD";

/// Not a test on its own: the child half of the next test. Its shared
/// server dies while the process still runs, as a crash would do it.
#[test]
fn testkit_shared_death_child_helper() {
    if std::env::var_os(DEATH_CHILD_ENV).is_none() {
        return;
    }
    let pid = MariaDb::shared().pid();
    // SAFETY: kill(2) with a pid this process started and has not reaped.
    assert_eq!(unsafe { libc::kill(pid as i32, libc::SIGKILL) }, 0);
    let deadline = Instant::now() + Duration::from_secs(10);
    // Until only its zombie leader is left: its other threads still
    // exiting keep waitpid from reporting it, and the exit handler from
    // finding it dead.
    let dying = || {
        let zombie = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .is_ok_and(|s| s.rsplit_once(") ").is_some_and(|(_, rest)| rest.starts_with('Z')));
        let threads = std::fs::read_dir(format!("/proc/{pid}/task")).map_or(0, |d| d.count());
        !(zombie && threads <= 1)
    };
    while dying() {
        assert!(Instant::now() < deadline, "the server did not die");
        thread::sleep(Duration::from_millis(20));
    }
}

/// A shared server that dies on its own while its tests run (MariaDB
/// crashed that way under load) has its error log kept at exit, and the
/// path printed, instead of deleted with its directory.
#[test]
fn testkit_shared_server_that_died_leaves_its_log() {
    let output = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "testkit_shared_death_child_helper", "--nocapture"])
        .env(DEATH_CHILD_ENV, "1")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let kept = stderr
        .lines()
        .find_map(|l| {
            l.split_once("its error log is kept at ")
                .map(|(_, p)| p.trim().to_string())
        })
        .unwrap_or_else(|| panic!("no kept log announced:\n{stderr}"));
    let log = std::fs::read_to_string(&kept).unwrap();
    assert!(
        log.contains("mariadbd") || log.contains("ready for connections"),
        "{log}"
    );
    std::fs::remove_file(&kept).unwrap();
}
