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
