//! Private servers: start, several at once, users, and the fault controls.

use std::{
    path::Path,
    thread,
    time::{Duration, Instant},
};

use funnel_testkit::MariaDb;
use mysql::prelude::Queryable;

/// Whether a process with this id exists (a reaped child's `/proc` entry disappears).
fn process_exists(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

#[test]
fn testkit_starts_and_answers_select_1() {
    let started = Instant::now();
    let db = MariaDb::start();
    eprintln!("server start took {:?}", started.elapsed());
    assert_eq!(db.query_first::<i64>("SELECT 1"), Some(1));
    assert_eq!(db.addr().port(), db.port());
    assert!(db.is_running());
    let version: String = db.query_first("SELECT VERSION()").unwrap();
    assert!(version.contains("MariaDB"), "{version}");
}

#[test]
fn testkit_two_servers_at_once() {
    let (a, b) = (MariaDb::start(), MariaDb::start());
    assert_ne!(a.port(), b.port());
    a.exec("CREATE DATABASE only_on_a");
    let on_b: Option<String> = b.query_first("SHOW DATABASES LIKE 'only_on_a'");
    assert_eq!(on_b, None);
    let on_a: Option<String> = a.query_first("SHOW DATABASES LIKE 'only_on_a'");
    assert_eq!(on_a.as_deref(), Some("only_on_a"));
}

/// A starting mariadbd deletes every `#sql*` file in its tmpdir: were
/// that /tmp for every server, one server's start would delete the
/// on-disk temporary tables of the others (and a template build could fail
/// with "Unknown table 'mysql.tmp_user_sys'"). Each server has a tmpdir
/// of its own.
#[test]
fn testkit_a_starting_server_leaves_the_others_temporary_files_alone() {
    let a = MariaDb::start();
    a.exec("CREATE DATABASE tk");
    let mut conn = a.root();
    conn.query_drop("CREATE TEMPORARY TABLE tk.tt (x INT) ENGINE=Aria")
        .unwrap();
    let tmpdir: String = conn.query_first("SELECT @@tmpdir").unwrap().unwrap();
    let temporary_files = || -> usize {
        std::fs::read_dir(&tmpdir)
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .is_ok_and(|e| e.file_name().to_string_lossy().starts_with("#sql"))
            })
            .count()
    };
    assert!(temporary_files() > 0, "the table's files in {tmpdir}");
    let _b = MariaDb::start();
    assert!(
        temporary_files() > 0,
        "another server's start deleted the files in {tmpdir}"
    );
}

#[test]
fn testkit_three_servers_started_concurrently() {
    // Routing tests start several backends at once, from several threads.
    let starters: Vec<_> = (0..3).map(|_| thread::spawn(MariaDb::start)).collect();
    let servers: Vec<MariaDb> = starters.into_iter().map(|t| t.join().unwrap()).collect();
    let mut ports: Vec<u16> = servers.iter().map(MariaDb::port).collect();
    ports.sort_unstable();
    ports.dedup();
    assert_eq!(ports.len(), 3);
    for db in &servers {
        assert_eq!(db.query_first::<u16>("SELECT @@port"), Some(db.port()));
    }
}

#[test]
fn testkit_builder_passes_server_args() {
    let db = MariaDb::builder()
        .server_arg("--wait-timeout=2")
        .max_connections(77)
        .start()
        .unwrap();
    assert_eq!(db.query_first::<u64>("SELECT @@global.wait_timeout"), Some(2));
    assert_eq!(db.query_first::<u64>("SELECT @@max_connections"), Some(77));
}

#[test]
fn testkit_user_login_and_wrong_password() {
    let db = MariaDb::start();
    db.create_user("app", "s3cret'\\pw");
    let name = db.fresh_database("users");
    let mut conn = db.connect_as("app", "s3cret'\\pw").unwrap();
    let who: String = conn.query_first("SELECT CURRENT_USER()").unwrap().unwrap();
    assert_eq!(who, "app@%");
    conn.query_drop(format!("CREATE TABLE `{name}`.t (id INT)"))
        .unwrap();

    let err = db.connect_as("app", "wrong").unwrap_err();
    match err {
        mysql::Error::MySqlError(e) => assert_eq!(e.code, 1045, "{e}"),
        other => panic!("expected access denied, got {other}"),
    }
}

#[test]
fn testkit_pause_and_resume() {
    let db = MariaDb::start();
    let opts = db.root_opts().read_timeout(Some(Duration::from_millis(300)));
    let mut conn = mysql::Conn::new(opts.clone()).unwrap();
    db.pause();
    let started = Instant::now();
    assert!(conn.query_drop("SELECT 1").is_err());
    assert!(started.elapsed() < Duration::from_secs(5));
    db.resume();
    let mut conn = mysql::Conn::new(opts).unwrap();
    assert_eq!(conn.query_first::<i64, _>("SELECT 1").unwrap(), Some(1));
}

#[test]
fn testkit_stop_and_restart_keep_data() {
    let db = MariaDb::start();
    let (port, first_pid) = (db.port(), db.pid());
    db.exec("CREATE DATABASE kept");
    db.exec("CREATE TABLE kept.t (id INT PRIMARY KEY) ENGINE=InnoDB");
    db.exec("INSERT INTO kept.t VALUES (42)");
    db.stop();
    assert!(!db.is_running());
    assert!(!process_exists(first_pid));
    assert!(db.connect_as("root", "").is_err());
    db.start_again();
    assert_eq!(db.port(), port);
    assert_ne!(db.pid(), first_pid);
    assert_eq!(db.query_first::<i64>("SELECT id FROM kept.t"), Some(42));
    db.restart();
    assert_eq!(db.query_first::<i64>("SELECT id FROM kept.t"), Some(42));
}

#[test]
fn testkit_kill_then_start_again_recovers_committed_data() {
    let db = MariaDb::start();
    db.exec("CREATE DATABASE crash");
    db.exec("CREATE TABLE crash.t (id INT PRIMARY KEY) ENGINE=InnoDB");
    db.exec("INSERT INTO crash.t VALUES (7)");
    db.pause();
    // SIGKILL works on a paused server too.
    db.kill();
    assert!(!db.is_running());
    db.start_again();
    assert_eq!(db.query_first::<i64>("SELECT id FROM crash.t"), Some(7));
}

#[test]
fn testkit_stop_of_a_paused_server_completes() {
    let db = MariaDb::builder()
        .shutdown_timeout(Duration::from_secs(20))
        .start()
        .unwrap();
    db.pause();
    db.stop();
    assert!(!process_exists(db.pid()));
}

#[test]
fn testkit_drop_kills_the_process() {
    let db = MariaDb::start();
    let pid = db.pid();
    assert!(process_exists(pid));
    drop(db);
    assert!(!process_exists(pid));
}

#[test]
fn testkit_server_outlives_the_thread_that_started_it() {
    // PR_SET_PDEATHSIG follows the spawning *thread*; the testkit spawns from a long-lived thread
    // so a server started on a short-lived one (as MariaDb::shared's first caller) survives it.
    let db = thread::spawn(MariaDb::start).join().unwrap();
    thread::sleep(Duration::from_millis(200));
    assert!(db.is_running());
    assert_eq!(db.query_first::<i64>("SELECT 1"), Some(1));
}

#[test]
fn testkit_bad_option_fails_with_the_error_log() {
    let err = MariaDb::builder()
        .server_arg("--no-such-option-anywhere")
        .start()
        .unwrap_err();
    let message = err.to_string();
    assert!(
        matches!(err, funnel_testkit::TestkitError::ServerExited { .. }),
        "{message}"
    );
    assert!(message.contains("no-such-option-anywhere"), "{message}");
}
