//! The everyday MariaDB client programs through Funnel, as someone moving
//! from ProxySQL runs them: `mariadb` (scripts with `DELIMITER`, `source`,
//! `SHOW WARNINGS`, `--init-command`, a missing `--database`),
//! `mariadb-dump` and a restore of its dump, `mariadb-admin`,
//! `mariadb-import --local`, `mariadb-check`, `mariadb-slap` with 50
//! clients, and Python's `mysql.connector`. Each runs once through Funnel
//! and once directly against the same server, and the outputs must match
//! (timings, host lines and the per-side schema names masked).
//!
//! A program that is not installed skips its test with a message saying
//! so (the MariaDB server itself is required, as everywhere).

use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::Once;
use std::time::{Duration, Instant};

use funnel_engine::Proxy;
use funnel_testkit::MariaDb;

/// The account both sides use: Funnel's client user and its backend user
/// are the same, so `CURRENT_USER()` and `DEFINER`s match.
const USER: &str = "tools";
const PASSWORD: &str = "toolspw";

/// The shared server, with [`USER`] created once.
fn server() -> &'static MariaDb {
    static USER_MADE: Once = Once::new();
    let db = MariaDb::shared();
    USER_MADE.call_once(|| db.create_user(USER, PASSWORD));
    db
}

/// A Funnel in front of `db` whose pool is smaller than the clients the
/// tests run, so sessions move between backend connections.
fn funnel(db: &MariaDb) -> Proxy {
    let cfg = funnel_testkit::funnel::config(
        db,
        (USER, PASSWORD),
        (USER, PASSWORD),
        None,
        "pool:\n  max_per_core: 4\n  min_idle_per_core: 1\nbacklog:\n  wait_timeout: 30s\n",
    );
    funnel_testkit::funnel::start(cfg)
}

/// Whether `program` runs here; prints why the test is skipped if not.
fn installed(program: &str) -> bool {
    let found = Command::new(program)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    if !found {
        eprintln!("skipping: `{program}` is not installed (apt-get install -y mariadb-client)");
    }
    found
}

/// One side of a comparison: a port and the schema this side writes to.
#[derive(Clone, Copy)]
struct Side<'a> {
    name: &'a str,
    port: u16,
    schema: &'a str,
}

impl Side<'_> {
    /// Connection arguments for the MariaDB programs (no option files).
    fn args(&self) -> Vec<String> {
        vec![
            "--no-defaults".into(),
            "--protocol=TCP".into(),
            "-h127.0.0.1".into(),
            format!("-P{}", self.port),
            format!("-u{USER}"),
            format!("-p{PASSWORD}"),
        ]
    }

    /// Runs `program` with the connection arguments, then `args`
    /// (`{schema}` filled in), `stdin` as its input.
    fn run(&self, program: &str, args: &[&str], stdin: Option<&str>) -> Output {
        let args: Vec<String> = args.iter().map(|a| a.replace("{schema}", self.schema)).collect();
        run(
            program,
            &self.args(),
            &args,
            stdin.map(|s| s.replace("{schema}", self.schema)),
        )
    }
}

fn run(program: &str, first: &[String], args: &[String], stdin: Option<String>) -> Output {
    let mut child = Command::new(program)
        .args(first)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    let mut input = child.stdin.take().unwrap();
    let feeder = std::thread::spawn(move || {
        if let Some(text) = stdin {
            let _ = input.write_all(text.as_bytes());
        }
    });
    let out = child.wait_with_output().unwrap();
    feeder.join().unwrap();
    out
}

/// What a run printed, with its exit code, timings masked and this side's
/// schema named `SCHEMA`, so both sides' texts compare.
fn seen(side: &Side, out: &Output) -> String {
    let text = format!(
        "{}\n--- stderr\n{}\n--- exit {:?}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        out.status.code()
    );
    let text = text.replace(side.schema, "SCHEMA");
    text.lines()
        .filter(|l| !is_dump_header(l))
        .map(mask_timing)
        .collect::<Vec<_>>()
        .join("\n")
}

/// `mariadb-dump` lines that name the host, the server version and the
/// time: they differ between any two runs.
fn is_dump_header(line: &str) -> bool {
    [
        "-- Host:",
        "-- Dump completed",
        "-- Server version",
        "-- MariaDB dump",
    ]
    .iter()
    .any(|p| line.starts_with(p))
}

/// `(0.004 sec)` becomes `(T sec)`.
fn mask_timing(line: &str) -> String {
    match (line.rfind('('), line.rfind(" sec)")) {
        (Some(open), Some(end))
            if open < end
                && line[open + 1..end]
                    .bytes()
                    .all(|b| b.is_ascii_digit() || b == b'.') =>
        {
            format!("{}(T{}", &line[..open], &line[end..])
        }
        _ => line.to_string(),
    }
}

/// Runs the same program both ways and asserts the outputs match;
/// returns Funnel's.
fn same_both_ways(f: &Side, d: &Side, program: &str, args: &[&str], stdin: Option<&str>) -> String {
    let through = seen(f, &f.run(program, args, stdin));
    let direct = seen(d, &d.run(program, args, stdin));
    assert_eq!(
        through, direct,
        "`{program} {args:?}` through Funnel ({}) differs from direct ({})",
        f.name, d.name
    );
    through
}

/// A Funnel side and a direct side, each with its own fresh schema.
fn sides<'a>(db: &MariaDb, proxy: &Proxy, names: &'a mut [String; 2], prefix: &str) -> (Side<'a>, Side<'a>) {
    names[0] = db.fresh_database(&format!("{prefix}_f"));
    names[1] = db.fresh_database(&format!("{prefix}_d"));
    let [a, b] = names;
    (
        Side {
            name: "funnel",
            port: proxy.local_addr().port(),
            schema: a,
        },
        Side {
            name: "direct",
            port: db.port(),
            schema: b,
        },
    )
}

/// A script as a user would `source` it: routines and a trigger between
/// `DELIMITER` lines, a failing insert (strict mode) with its warnings,
/// a warning of a `SELECT`, and the routines run.
const SCRIPT: &str = r"USE {schema};
CREATE TABLE t (id INT PRIMARY KEY AUTO_INCREMENT, v VARCHAR(8), n INT);
CREATE TABLE log (id INT AUTO_INCREMENT PRIMARY KEY, msg VARCHAR(100));
DELIMITER //
CREATE PROCEDURE p_add(IN x INT)
BEGIN
  DECLARE i INT DEFAULT 0;
  WHILE i < x DO
    INSERT INTO t (v, n) VALUES (CONCAT('row', i), i);
    SET i = i + 1;
  END WHILE;
  SELECT COUNT(*) AS cnt FROM t;
END//
CREATE TRIGGER t_ai AFTER INSERT ON t FOR EACH ROW
BEGIN
  INSERT INTO log (msg) VALUES (CONCAT('ins ', NEW.id, ';'));
END//
CREATE FUNCTION f_double(x INT) RETURNS INT DETERMINISTIC
BEGIN
  RETURN x * 2;
END//
DELIMITER ;
CALL p_add(5);
SELECT f_double(21), (SELECT COUNT(*) FROM log) AS logged;
INSERT INTO t (v, n) VALUES ('much too long', 'x');
SHOW WARNINGS;
SELECT CAST('abc' AS INT) AS c;
SHOW WARNINGS;
SELECT @@warning_count;
SELECT * FROM log ORDER BY id;
";

#[test]
fn tools_mariadb_cli_scripts_match_direct() {
    if !installed("mariadb") {
        return;
    }
    let db = server();
    let proxy = funnel(db);
    let mut names = Default::default();
    let (f, d) = sides(db, &proxy, &mut names, "cli");

    // Piped in, verbose, going on past the error.
    let out = same_both_ways(&f, &d, "mariadb", &["-vvv", "--force"], Some(SCRIPT));
    assert!(out.contains("| cnt |") && out.contains("|   5 |"), "{out}");
    assert!(out.contains("Data too long for column 'v' at row 1"), "{out}");
    assert!(out.contains("Truncated incorrect INTEGER value: 'abc'"), "{out}");
    assert!(out.contains("ins 5;"), "the trigger ran: {out}");

    // `source` of a file (the same script, in fresh tables).
    for side in [&f, &d] {
        side.run("mariadb", &["-e", "DROP TABLE {schema}.t, {schema}.log; DROP PROCEDURE {schema}.p_add; DROP FUNCTION {schema}.f_double"], None);
    }
    let dir = tempfile::tempdir().unwrap();
    let paths: Vec<_> = [&f, &d]
        .iter()
        .map(|side| {
            let path = dir.path().join(format!("{}.sql", side.name));
            std::fs::write(&path, SCRIPT.replace("{schema}", side.schema)).unwrap();
            path
        })
        .collect();
    let sourced = |side: &Side, path: &Path| {
        let path = path.display().to_string();
        seen(
            side,
            &side.run("mariadb", &["--force", "-e", &format!("source {path}")], None),
        )
        .replace(&path, "FILE")
    };
    let (through, direct) = (sourced(&f, &paths[0]), sourced(&d, &paths[1]));
    assert_eq!(through, direct);
    assert!(
        through.contains("ins 5;") && through.contains("ERROR 1406 (22001) at line 25"),
        "{through}"
    );

    // `--init-command` runs before the first statement, on the session.
    let out = same_both_ways(
        &f,
        &d,
        "mariadb",
        &[
            "--init-command=SET @a = 5, sql_mode = 'ANSI'",
            "-e",
            "SELECT @a, @@sql_mode, DATABASE()",
        ],
        None,
    );
    assert!(
        out.contains("5\tREAL_AS_FLOAT,PIPES_AS_CONCAT,ANSI_QUOTES,IGNORE_SPACE,ANSI\tNULL"),
        "{out}"
    );

    // `status` (`\s`): what differs is the connection's (its id, the
    // port, Funnel's version suffix) and the server's counters.
    let status = |side: &Side| {
        let out = side.run(
            "mariadb",
            &["--default-character-set=utf8mb4", "{schema}", "-e", "status"],
            None,
        );
        let volatile = [
            "Connection id:",
            "Server version:",
            "TCP port:",
            "Uptime:",
            "Threads:",
        ];
        seen(side, &out)
            .lines()
            .filter(|l| !volatile.iter().any(|v| l.starts_with(v)))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let (through, direct) = (status(&f), status(&d));
    assert_eq!(through, direct);
    assert!(
        through.contains("Current database:\tSCHEMA") && through.contains("Conn.  characterset:\tutf8mb4"),
        "{through}"
    );
    let out = f.run("mariadb", &["-e", "status"], None);
    assert!(String::from_utf8_lossy(&out.stdout).contains("-funnel"));

    // A schema that does not exist, at login and by `USE`.
    let out = same_both_ways(
        &f,
        &d,
        "mariadb",
        &["--database=no_such_schema", "-e", "SELECT 1"],
        None,
    );
    assert!(
        out.contains("ERROR 1049 (42000): Unknown database 'no_such_schema'"),
        "{out}"
    );
    let out = same_both_ways(&f, &d, "mariadb", &["-e", "USE no_such_schema; SELECT 1"], None);
    assert!(out.contains("ERROR 1049"), "{out}");
}

/// A schema with every kind of object `mariadb-dump` writes.
const DUMPED: &str = r#"USE {schema};
CREATE TABLE a (id INT PRIMARY KEY AUTO_INCREMENT, name VARCHAR(50) CHARACTER SET utf8mb4, price DECIMAL(10,2), created DATETIME(3), bin BLOB, j JSON) ENGINE=InnoDB;
CREATE TABLE b (id INT PRIMARY KEY, a_id INT, note TEXT, FOREIGN KEY (a_id) REFERENCES a(id)) ENGINE=InnoDB;
CREATE TABLE m (k INT, v VARCHAR(10)) ENGINE=MyISAM;
INSERT INTO a (name, price, created, bin, j) VALUES ('héllo ☃', 1.50, '2024-01-02 03:04:05.678', X'00FF10', '{"x": [1,2]}'), ('quote''s "dq" \\ back', NULL, NULL, NULL, NULL);
INSERT INTO b VALUES (1, 1, 'first'), (2, 2, NULL);
INSERT INTO m VALUES (1, 'x'), (2, 'y');
CREATE VIEW v_ab AS SELECT a.id, a.name, b.note FROM a JOIN b ON b.a_id = a.id;
DELIMITER //
CREATE TRIGGER a_bi BEFORE INSERT ON a FOR EACH ROW BEGIN SET NEW.name = UPPER(NEW.name); END//
CREATE PROCEDURE pr(IN x INT) BEGIN SELECT x * 2 AS d; END//
CREATE FUNCTION fn(x INT) RETURNS INT DETERMINISTIC RETURN x + 1//
CREATE EVENT ev ON SCHEDULE EVERY 1 DAY STARTS '2030-01-01 00:00:00' DISABLE DO INSERT INTO m VALUES (99, 'ev')//
DELIMITER ;
"#;

#[test]
fn tools_mariadb_dump_and_restore_through_funnel_match_direct() {
    if !installed("mariadb") || !installed("mariadb-dump") {
        return;
    }
    let db = server();
    let proxy = funnel(db);
    let mut names = Default::default();
    let (f, d) = sides(db, &proxy, &mut names, "dump");
    // The same objects on both sides, made directly.
    for side in [&f, &d] {
        let direct = Side {
            port: db.port(),
            ..*side
        };
        let out = direct.run("mariadb", &[], Some(DUMPED));
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }

    let objects = ["--routines", "--triggers", "--events"];
    let mut dumps = Vec::new();
    for mode in ["--single-transaction", "--lock-tables"] {
        let args: Vec<&str> = objects.iter().copied().chain([mode, "{schema}"]).collect();
        let dump = same_both_ways(&f, &d, "mariadb-dump", &args, None);
        for what in [
            "CREATE TABLE `a`",
            "INSERT INTO `a` VALUES",
            "héllo ☃",
            "TRIGGER a_bi BEFORE INSERT",
            "PROCEDURE `pr`",
            "FUNCTION `fn`",
            "EVENT `ev`",
            "VIEW `v_ab`",
            "--- exit Some(0)",
        ] {
            assert!(dump.contains(what), "{mode}: no {what} in\n{dump}");
        }
        dumps.push(dump);
    }
    // With the whole schema named (`CREATE DATABASE`, `USE`).
    same_both_ways(
        &f,
        &d,
        "mariadb-dump",
        &["--routines", "--triggers", "--events", "--databases", "{schema}"],
        None,
    );

    // Restored through Funnel into a new schema, the dump through Funnel
    // of the copy is the dump of the original.
    let restored = db.fresh_database("dump_restored");
    let raw = f.run(
        "mariadb-dump",
        &[
            "--routines",
            "--triggers",
            "--events",
            "--single-transaction",
            "{schema}",
        ],
        None,
    );
    assert!(raw.status.success());
    let copy = Side {
        name: "restored",
        schema: &restored,
        ..f
    };
    let load = copy.run(
        "mariadb",
        &["{schema}"],
        Some(&String::from_utf8_lossy(&raw.stdout)),
    );
    assert!(
        load.status.success(),
        "restore through Funnel: {}",
        String::from_utf8_lossy(&load.stderr)
    );
    let again = seen(
        &copy,
        &copy.run(
            "mariadb-dump",
            &[
                "--routines",
                "--triggers",
                "--events",
                "--single-transaction",
                "{schema}",
            ],
            None,
        ),
    );
    assert_eq!(again, dumps[0], "the restored copy dumps differently");
}

#[test]
fn tools_mariadb_admin_commands_match_direct() {
    if !installed("mariadb-admin") || !installed("mariadb") {
        return;
    }
    let db = server();
    let proxy = funnel(db);
    let mut names = Default::default();
    let (f, d) = sides(db, &proxy, &mut names, "adm");

    // Commands whose output does not depend on the connection. `refresh`
    // and `flush-threads` send COM_REFRESH, `debug` COM_DEBUG.
    for cmd in [
        "ping",
        "debug",
        "flush-tables",
        "flush-privileges",
        "flush-status",
        "flush-hosts",
        "flush-logs",
        "refresh",
        "flush-threads",
        "reload",
    ] {
        let out = same_both_ways(&f, &d, "mariadb-admin", &[cmd], None);
        assert!(out.ends_with("--- exit Some(0)"), "{cmd}: {out}");
    }
    let out = same_both_ways(&f, &d, "mariadb-admin", &["ping"], None);
    assert!(out.starts_with("mysqld is alive"), "{out}");

    // Reports of the server Funnel serves from.
    for (cmd, expect) in [
        ("status", "Uptime: "),
        ("version", "Server version"),
        ("processlist", "show processlist"),
        ("variables", "| version "),
        ("extended-status", "| Uptime "),
    ] {
        let out = f.run("mariadb-admin", &[cmd], None);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success() && text.contains(expect), "{cmd}: {text}");
    }

    // create and drop a database.
    let made = format!("{}_made", f.schema);
    let out = f.run("mariadb-admin", &["create", &made], None);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let exists = |name: &str| {
        db.query_first::<String>(&format!("SHOW DATABASES LIKE '{name}'"))
            .is_some()
    };
    assert!(exists(&made));
    let out = f.run("mariadb-admin", &["--force", "drop", &made], None);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!exists(&made));

    // kill, by the id the client reads (through Funnel, Funnel's): the
    // running statement stops at once, and its client reads a lost
    // connection, as from the server.
    let killed = |side: &Side| {
        let mut sleeper = Command::new("mariadb")
            .args(side.args())
            .args(["--unbuffered", "--batch", "--skip-column-names", "-e"])
            .arg("SELECT CONNECTION_ID(); SELECT SLEEP(30) AS tools_kill; SELECT 'after'")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(sleeper.stdout.as_mut().unwrap()),
            &mut line,
        )
        .unwrap();
        let id: u64 = line.trim().parse().unwrap_or_else(|_| panic!("no id: {line:?}"));
        let running = "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE INFO LIKE '%tools_kill%' AND INFO NOT LIKE '%PROCESSLIST%'";
        funnel_testkit::wait_until_within("the sleep runs", Duration::from_secs(10), || {
            db.query_first::<i64>(running) == Some(1)
        });
        let started = Instant::now();
        let out = side.run("mariadb-admin", &["kill", &id.to_string()], None);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let out = sleeper.wait_with_output().unwrap();
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the killed statement ran on"
        );
        format!(
            "{}{}{:?}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            out.status.code()
        )
    };
    let (through, direct) = (killed(&f), killed(&d));
    assert_eq!(through, direct);
    assert!(through.contains("ERROR 2013"), "{through}");

    // Deliberate refusals (docs/multiplexing.md): clear errors, nothing done.
    let out = f.run("mariadb-admin", &["shutdown"], None);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("COM_SHUTDOWN"));
    assert!(db.is_running());
    let out = f.run("mariadb-admin", &["password", "new"], None);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("SET PASSWORD"));
    let out = f.run("mariadb-admin", &["ping"], None);
    assert!(out.status.success(), "the backend account's password changed");
}

#[test]
fn tools_mariadb_import_and_check_match_direct() {
    if !installed("mariadb-import") || !installed("mariadb-check") {
        return;
    }
    let db = server();
    let proxy = funnel(db);
    let mut names = Default::default();
    let (f, d) = sides(db, &proxy, &mut names, "imp");
    for side in [&f, &d] {
        db.exec(&format!(
            "CREATE TABLE {}.people (id INT PRIMARY KEY, name VARCHAR(30), note TEXT) CHARACTER SET utf8mb4",
            side.schema
        ));
        db.exec(&format!("CREATE TABLE {}.m (k INT) ENGINE=MyISAM", side.schema));
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("people.txt");
    let rows: String = (1..=300)
        .map(|i| format!("{i}\tname {i}\tnote\\ttab {i}\n"))
        .collect();
    std::fs::write(&file, format!("{rows}301\tCé\t\\N\n")).unwrap();
    let file = file.display().to_string();

    let out = same_both_ways(
        &f,
        &d,
        "mariadb-import",
        &["--local", "--verbose", "{schema}", &file],
        None,
    );
    assert!(
        out.contains("Records: 301  Deleted: 0  Skipped: 0  Warnings: 0"),
        "{out}"
    );
    let out = same_both_ways(
        &f,
        &d,
        "mariadb-import",
        &["--local", "--replace", "--lock-tables", "{schema}", &file],
        None,
    );
    assert!(out.ends_with("--- exit Some(0)"), "{out}");
    let out = same_both_ways(
        &f,
        &d,
        "mariadb",
        &["--default-character-set=utf8mb4", "-e", "SELECT COUNT(*), SUM(id), MAX(note) FROM {schema}.people; SELECT * FROM {schema}.people WHERE id = 301"],
        None,
    );
    assert!(
        out.contains("301\t45451\tnote\\ttab 99") && out.contains("301\tCé\tNULL"),
        "{out}"
    );

    for args in [
        &["--databases", "{schema}"][..],
        &["--analyze", "{schema}"],
        &["--optimize", "{schema}"],
        &["--repair", "{schema}", "m"],
    ] {
        let out = same_both_ways(&f, &d, "mariadb-check", args, None);
        assert!(
            out.contains("SCHEMA.") && out.ends_with("--- exit Some(0)"),
            "{args:?}: {out}"
        );
    }
}

#[test]
fn tools_mariadb_slap_with_50_clients() {
    if !installed("mariadb-slap") {
        return;
    }
    let db = server();
    let proxy = funnel(db);
    let mut names = Default::default();
    let (f, _) = sides(db, &proxy, &mut names, "slap");
    db.exec(&format!(
        "CREATE TABLE {}.t (id INT AUTO_INCREMENT PRIMARY KEY, c BIGINT)",
        f.schema
    ));
    // 50 clients, 10 inserts each, over 4 backend connections.
    let out = f.run(
        "mariadb-slap",
        &[
            "--concurrency=50",
            "--iterations=1",
            "--number-of-queries=500",
            "--create-schema={schema}",
            "--no-drop",
            "--query=INSERT INTO t (c) VALUES (CONNECTION_ID())",
        ],
        None,
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("Number of clients running queries: 50"), "{text}");
    let (rows, clients): (u64, u64) = db
        .query_first(&format!("SELECT COUNT(*), COUNT(DISTINCT c) FROM {}.t", f.schema))
        .unwrap();
    assert_eq!(
        (rows, clients),
        (500, 50),
        "every client's inserts, under its own Funnel id"
    );

    // Its generated mixed load, with its own schema made and dropped.
    let out = f.run(
        "mariadb-slap",
        &[
            "--concurrency=50",
            "--iterations=1",
            "--number-of-queries=500",
            "--auto-generate-sql",
            "--auto-generate-sql-load-type=mixed",
            "--create-schema={schema}_gen",
        ],
        None,
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

/// A Python program on `mysql.connector`: text and prepared cursors, a
/// multi-statement query, a procedure with an OUT parameter,
/// `cmd_reset_connection()` and `cmd_change_user()`, also refused ones
/// (a wrong password, an unknown schema), after which MariaDB keeps the
/// connection as a fresh session of the old user in the old schema.
const PYTHON: &str = r#"
import sys, datetime, decimal, mysql.connector
port, schema, user, password, pure = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5] == "1"
out = []
def rec(*a): out.append(repr(a))
kw = dict(host="127.0.0.1", port=port, user=user, password=password, use_pure=pure, database=schema)
c = mysql.connector.connect(**kw)
rec("server", c.server_info.replace("-funnel", ""))
cur = c.cursor()
cur.execute("CREATE TABLE t (id INT AUTO_INCREMENT PRIMARY KEY, s VARCHAR(20), d DECIMAL(8,3), dt DATETIME(6), b BLOB, f DOUBLE)")
p = c.cursor(prepared=True)
for i in range(3):
    p.execute("INSERT INTO t (s, d, dt, b, f) VALUES (?, ?, ?, ?, ?)", ("x%d" % i, decimal.Decimal("1.5") * i, datetime.datetime(2024, 1, 2, 3, 4, 5, 123456), b"\x00\xff" * i, 1.25 * i))
    rec("insert", p.lastrowid, p.rowcount)
c.commit()
p.execute("SELECT id, s, d, dt, b, f FROM t WHERE id > ? ORDER BY id", (0,))
rec("prepared", p.fetchall(), [x[:2] for x in p.description])
cur.execute("SELECT id, s, d, dt, b, f FROM t ORDER BY id")
rec("text", cur.fetchall())
cur.execute("SELECT 1 AS a; SELECT 2 AS b")
rec("multi", list(cur.fetchsets()))
cur.execute("CREATE PROCEDURE pp(IN a INT, OUT b INT) BEGIN SET b = a * 3; SELECT a AS echo; END")
rec("callproc", cur.callproc("pp", (5, 0)), [r.fetchall() for r in cur.stored_results()])
cur.execute("SET @u = 42, sql_mode = 'ANSI'")
c.cmd_reset_connection()
cur = c.cursor()
cur.execute("SELECT @u, @@sql_mode = @@global.sql_mode, DATABASE()")
rec("after reset", cur.fetchall())
p = c.cursor(prepared=True)
p.execute("SELECT COUNT(*) FROM t WHERE s LIKE ?", ("x%",))
rec("prepared after reset", p.fetchall())
cur.execute("SET @u = 7")
c.cmd_change_user(username=user, password=password, database=schema)
cur = c.cursor()
cur.execute("SELECT @u, DATABASE(), CURRENT_USER()")
rec("after change_user", cur.fetchall())
for bad in [dict(username=user, password="wrong", database="mysql"), dict(username="nosuch", password=password), dict(username=user, password=password, database="no_such_schema")]:
    cur.execute("SET @u = 8")
    try:
        c.cmd_change_user(**bad)
        rec("refused change_user accepted", bad)
    except mysql.connector.Error as e:
        rec("refused change_user", e.errno)
    try:
        cur = c.cursor()
        cur.execute("SELECT @u, DATABASE(), CURRENT_USER(), COUNT(*) FROM t")
        rec("after refused change_user", cur.fetchall())
    except Exception as e:
        rec("after refused change_user", type(e).__name__)
        c = mysql.connector.connect(**kw)
        cur = c.cursor()
print("\n".join(out))
"#;

fn python_connector(c_extension: bool) -> bool {
    let (module, check) = if c_extension {
        (
            "its C extension",
            "import sys, mysql.connector; sys.exit(0 if mysql.connector.HAVE_CEXT else 1)",
        )
    } else {
        ("mysql.connector", "import mysql.connector")
    };
    let ok = Command::new("python3")
        .args(["-c", check])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        eprintln!("skipping: python3 cannot import {module} (pip install mysql-connector-python)");
    }
    ok
}

#[test]
fn tools_python_mysql_connector_matches_direct() {
    if !python_connector(false) {
        return;
    }
    let db = server();
    let proxy = funnel(db);
    let mut flavours = vec![true];
    if python_connector(true) {
        flavours.push(false);
    }
    for pure in flavours {
        let mut names = Default::default();
        let (f, d) = sides(db, &proxy, &mut names, "py");
        let run_on = |side: &Side| {
            let out = Command::new("python3")
                .args(["-c", PYTHON, &side.port.to_string(), side.schema, USER, PASSWORD])
                .arg(if pure { "1" } else { "0" })
                .output()
                .unwrap();
            seen(side, &out)
        };
        let (through, direct) = (run_on(&f), run_on(&d));
        assert_eq!(through, direct, "pure: {pure}");
        assert!(
            through.contains("('after change_user', [(None, 'SCHEMA', 'tools@%')])"),
            "{through}"
        );
        assert!(
            through.contains("('after refused change_user', [(None, 'SCHEMA', 'tools@%', 3)])"),
            "{through}"
        );
        assert!(through.ends_with("--- exit Some(0)"), "{through}");
    }
}

/// A Perl program on DBD::MariaDB (libmariadb): client-side and
/// server-side prepared statements, a rolled-back transaction, quoting
/// under the session's escaping rules, an error's code and state.
const PERL: &str = r#"
use strict; use warnings; use DBI;
binmode STDOUT, ':encoding(UTF-8)';
my ($port, $schema, $user, $password) = @ARGV;
my $dbh = DBI->connect("DBI:MariaDB:database=$schema;host=127.0.0.1;port=$port", $user, $password, {RaiseError => 1, PrintError => 0, AutoCommit => 1});
my @out;
$dbh->do("CREATE TABLE pt (id INT AUTO_INCREMENT PRIMARY KEY, s VARCHAR(20) CHARACTER SET utf8mb4, d DATETIME) ENGINE=InnoDB");
my $sth = $dbh->prepare("INSERT INTO pt (s, d) VALUES (?, ?)");
for my $i (1..3) { $sth->execute("v$i\x{263a}", "2024-01-0$i 00:00:00"); push @out, "id " . $dbh->last_insert_id(undef, undef, undef, undef); }
$dbh->begin_work; $dbh->do("INSERT INTO pt (s) VALUES ('rolled')"); $dbh->rollback;
my $rows = $dbh->selectall_arrayref("SELECT id, s, d FROM pt ORDER BY id");
push @out, join(",", map { join("|", map { defined $_ ? $_ : "NULL" } @$_) } @$rows);
my $ps = $dbh->prepare("SELECT COUNT(*) FROM pt WHERE id > ?", {mariadb_server_prepare => 1});
$ps->execute(1); push @out, "server-prepared count " . $ps->fetchrow_array; $ps->finish;
$dbh->do("SET \@x = 5");
push @out, "ping " . $dbh->ping;
push @out, "x " . $dbh->selectrow_array("SELECT \@x");
eval { $dbh->do("SELECT * FROM nosuch") }; push @out, "err " . $dbh->err . " " . $dbh->state;
push @out, "quote " . $dbh->quote("a'b\\c");
$dbh->do("SET sql_mode = 'NO_BACKSLASH_ESCAPES'");
push @out, "quote without backslash escapes " . $dbh->quote("a'b\\c");
$dbh->{mariadb_server_prepare} = 1;
my $r = $dbh->selectall_arrayref("SELECT ? + 1, ?", undef, 41, "z"); push @out, "server-prepared " . join(",", @{$r->[0]});
print join("\n", @out), "\n";
"#;

#[test]
fn tools_perl_dbd_mariadb_matches_direct() {
    let ok = Command::new("perl")
        .args(["-MDBD::MariaDB", "-e", "1"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        eprintln!("skipping: perl cannot load DBD::MariaDB (apt-get install -y libdbd-mariadb-perl)");
        return;
    }
    let db = server();
    let proxy = funnel(db);
    let mut names = Default::default();
    let (f, d) = sides(db, &proxy, &mut names, "perl");
    let run_on = |side: &Side| {
        let out = Command::new("perl")
            .args(["-e", PERL, &side.port.to_string(), side.schema, USER, PASSWORD])
            .output()
            .unwrap();
        seen(side, &out)
    };
    let (through, direct) = (run_on(&f), run_on(&d));
    assert_eq!(through, direct);
    for expect in [
        "1|v1☺|2024-01-01 00:00:00,2|v2☺|2024-01-02 00:00:00,3|v3☺|2024-01-03 00:00:00",
        "server-prepared count 2",
        "x 5",
        "err 1146 42S02",
        "quote 'a\\'b\\\\c'",
        "quote without backslash escapes 'a''b\\c'",
        "server-prepared 42,z",
        "--- exit Some(0)",
    ] {
        assert!(through.contains(expect), "no {expect} in\n{through}");
    }
}
