//! The query log (`query_log`, `query_rules[].log`): statements written to
//! a file as JSON lines, by every core, with what a server or Funnel
//! answered; a slow query log with `min_duration`; reopened at a reload.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use funnel_config::Config;
use funnel_engine::Proxy;
use funnel_testkit::client_opts as opts;
use funnel_testkit::MariaDb;
use mysql::prelude::Queryable;
use mysql::Conn;
use serde_json::Value;

struct Env {
    proxy: Proxy,
    schema: String,
    dir: tempfile::TempDir,
    yaml: String,
}

/// Funnel on 2 cores in front of the shared server, logging to a file in
/// a fresh directory, with `extra` YAML (rules, `query_log` keys).
fn env(prefix: &str, log: &str, extra: &str) -> Env {
    env_on(2, prefix, log, extra)
}

/// [`env`] on `cores` cores.
fn env_on(cores: u16, prefix: &str, log: &str, extra: &str) -> Env {
    env_with(cores, prefix, log, extra, |_| {})
}

/// [`env_on`], with `before_start` given the log's path before Funnel
/// opens it.
fn env_with(cores: u16, prefix: &str, log: &str, extra: &str, before_start: impl FnOnce(&Path)) -> Env {
    let db = MariaDb::shared();
    let schema = db.fresh_database(prefix);
    let backend = format!("{schema}_b");
    db.create_user(&backend, "bpw");
    db.exec(&format!(
        "CREATE TABLE {schema}.t (id INT PRIMARY KEY, v VARCHAR(20))"
    ));
    db.exec(&format!("INSERT INTO {schema}.t VALUES (1, 'one'), (2, 'two')"));
    let dir = tempfile::tempdir().unwrap();
    let yaml = format!(
        "listen: 127.0.0.1:0\ncores: {cores}\n\
         users:\n  - name: app\n    password: apppw\n    default_schema: {schema}\n\
         backends:\n  - name: primary\n    address: {}\n    user: {backend}\n    password: bpw\n\
         query_log:\n  path: {}\n{log}{extra}",
        db.addr(),
        dir.path().join("queries.jsonl").display(),
    );
    before_start(&dir.path().join("queries.jsonl"));
    let proxy = funnel_testkit::funnel::start(Config::from_yaml_str(&yaml).unwrap());
    Env {
        proxy,
        schema,
        dir,
        yaml,
    }
}

impl Env {
    fn client(&self) -> Conn {
        Conn::new(opts(self.proxy.local_addr().port(), "app", "apppw")).unwrap()
    }

    fn path(&self) -> PathBuf {
        self.dir.path().join("queries.jsonl")
    }
}

/// The lines of the log at `path` once it holds `n` (lines wait up to
/// 200 ms in a core's buffer).
fn lines(path: &Path, n: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let got: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
            .collect();
        if got.len() >= n || Instant::now() > deadline {
            return got;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The line whose text is `text`.
fn line_of<'a>(lines: &'a [Value], text: &str) -> &'a Value {
    lines
        .iter()
        .find(|l| l["text"] == text)
        .unwrap_or_else(|| panic!("no line for {text}: {lines:#?}"))
}

/// The lines of `command` whose text is `text`, in the order written.
fn lines_of<'a>(lines: &'a [Value], command: &str, text: &str) -> Vec<&'a Value> {
    lines
        .iter()
        .filter(|l| l["command"] == command && l["text"] == text)
        .collect()
}

#[test]
fn query_log_writes_every_statement_with_its_outcome() {
    let e = env("qlog_all", "  all: true\n", "");
    let mut c = e.client();
    let id: u64 = c.query_first("SELECT CONNECTION_ID()").unwrap().unwrap();
    let rows: Vec<(i32, String)> = c.query("SELECT id, v FROM t ORDER BY id").unwrap();
    assert_eq!(rows.len(), 2);
    c.query_drop("INSERT INTO t VALUES (3, 'three'), (4, 'four')")
        .unwrap();
    let err = c.query_drop("SELEC 1").unwrap_err();
    assert!(err.to_string().contains("1064"), "{err}");
    let stmt = c.prep("SELECT v FROM t WHERE id = ?").unwrap();
    let v: Option<String> = c.exec_first(&stmt, (2,)).unwrap();
    assert_eq!(v.as_deref(), Some("two"));
    let got = lines(&e.path(), 6);

    let select = line_of(&got, "SELECT id, v FROM t ORDER BY id");
    assert_eq!(select["command"], "query");
    assert_eq!(select["client"], id, "the client's CONNECTION_ID()");
    assert_eq!(select["user"], "app");
    assert_eq!(select["schema"], e.schema.as_str());
    assert_eq!(select["backend"], "primary");
    assert_eq!(select["rows"], 2);
    assert_eq!(select["error"], Value::Null);
    assert_eq!(select["rule"], Value::Null);
    assert!(select["duration_us"].as_u64().is_some());
    assert!(select["time"].as_str().unwrap().ends_with('Z'));
    assert!(select["peer"].as_str().unwrap().starts_with("127.0.0.1"));
    let insert = line_of(&got, "INSERT INTO t VALUES (3, 'three'), (4, 'four')");
    assert_eq!(insert["affected"], 2);
    assert_eq!(insert["rows"], 0);
    assert_eq!(line_of(&got, "SELEC 1")["error"], 1064);
    let execute = lines_of(&got, "execute", "SELECT v FROM t WHERE id = ?");
    assert_eq!(execute.len(), 1, "{got:#?}");
    assert_eq!(execute[0]["rows"], 1);
    let snapshots = e.proxy.snapshots();
    let logged: u64 = snapshots.iter().map(|s| s.counters.query_log_lines).sum();
    assert!(logged >= 6, "SHOW STATS query_log_lines: {logged}");
    // A stop writes what the cores still hold.
    c.query_drop("SELECT 'last'").unwrap();
    drop(c);
    let path = e.path();
    e.proxy.shutdown();
    let text = std::fs::read_to_string(path).unwrap();
    assert!(text.lines().last().unwrap().contains("SELECT 'last'"), "{text}");
}

#[test]
fn query_log_takes_what_the_rules_say() {
    let rules = "query_rules:\n\
                 \x20 - match_prefix: DELETE\n    log: true\n\
                 \x20 - match_prefix: DROP\n    error: no drops here\n    log: true\n\
                 \x20 - match_prefix: 'SELECT /* cached */'\n    cache_ttl: 5s\n    log: true\n";
    let e = env("qlog_rules", "", rules);
    let mut c = e.client();
    c.query_drop("SELECT 1").unwrap();
    c.query_drop("DELETE FROM t WHERE id = 2").unwrap();
    let err = c.query_drop("DROP TABLE t").unwrap_err();
    assert!(err.to_string().contains("no drops here"), "{err}");
    for _ in 0..2 {
        let v: Option<String> = c
            .query_first("SELECT /* cached */ v FROM t WHERE id = 1")
            .unwrap();
        assert_eq!(v.as_deref(), Some("one"));
    }
    lines(&e.path(), 4);
    std::thread::sleep(Duration::from_millis(400));
    let got = lines(&e.path(), 0);
    assert_eq!(got.len(), 4, "only the rules' statements: {got:#?}");
    let delete = line_of(&got, "DELETE FROM t WHERE id = 2");
    assert_eq!(delete["rule"], 0);
    assert_eq!(delete["affected"], 1);
    let drop_ = line_of(&got, "DROP TABLE t");
    assert_eq!(drop_["rule"], 1);
    assert_eq!(drop_["error"], 1148);
    assert_eq!(drop_["backend"], Value::Null, "refused by Funnel, run nowhere");
    let reads: Vec<&Value> = got
        .iter()
        .filter(|l| l["text"] == "SELECT /* cached */ v FROM t WHERE id = 1")
        .collect();
    assert_eq!(reads.len(), 2);
    assert_eq!(reads[0]["backend"], "primary");
    assert_eq!(reads[1]["cached"], true);
    assert_eq!(reads[1]["backend"], Value::Null);
    assert_eq!(reads[1]["rows"], 1);
}

#[test]
fn query_log_with_min_duration_is_a_slow_query_log() {
    let rules = "query_rules:\n  - match_prefix: 'SELECT /* quiet */'\n    log: false\n";
    let log = "  all: true\n  min_duration: 250ms\n  max_text: 40B\n";
    let e = env("qlog_slow", log, rules);
    let mut c = e.client();
    c.query_drop("SELECT 1").unwrap();
    c.query_drop("SELECT /* quiet */ SLEEP(0.3)").unwrap();
    let long = format!("SELECT SLEEP(0.3), '{}'", "x".repeat(100));
    c.query_drop(&long).unwrap();
    lines(&e.path(), 1);
    std::thread::sleep(Duration::from_millis(400));
    let got = lines(&e.path(), 0);
    // A fast statement slowed by a busy machine may be there too.
    assert!(
        got.iter().all(|l| l["duration_us"].as_u64().unwrap() >= 250_000),
        "only statements that took 250 ms: {got:#?}"
    );
    let slow = line_of(&got, &long[..40]);
    assert_eq!(slow["text_cut"], true);
    assert!(
        got.iter().all(|l| !l["text"].as_str().unwrap().contains("quiet")),
        "the rule's log: false keeps its statement out: {got:#?}"
    );
}

#[test]
fn query_log_is_reopened_at_a_reload_and_a_bad_path_is_refused() {
    let e = env("qlog_reopen", "  all: true\n", "");
    let mut c = e.client();
    c.query_drop("SELECT 'before'").unwrap();
    line_of(&lines(&e.path(), 2), "SELECT 'before'");
    // As logrotate does: move the file away, then have Funnel reopen it.
    let rotated = e.dir.path().join("queries.jsonl.1");
    std::fs::rename(e.path(), &rotated).unwrap();
    let Env {
        mut proxy, dir, yaml, ..
    } = e;
    let path = dir.path().join("queries.jsonl");
    proxy.reload(Config::from_yaml_str(&yaml).unwrap()).unwrap();
    c.query_drop("SELECT 'after'").unwrap();
    let now = lines(&path, 1);
    assert_eq!(now.len(), 1, "only what came after the reload: {now:#?}");
    assert_eq!(now[0]["text"], "SELECT 'after'");
    line_of(&lines(&rotated, 2), "SELECT 'before'");

    // A file that cannot be opened: the reload is refused, and the log
    // goes on where it was.
    let bad = yaml.replace(&path.display().to_string(), "/nonexistent-dir/queries.jsonl");
    let refused = proxy.reload(Config::from_yaml_str(&bad).unwrap()).unwrap_err();
    assert!(
        refused
            .to_string()
            .starts_with("query_log.path: cannot open /nonexistent-dir/queries.jsonl"),
        "{refused}"
    );
    c.query_drop("SELECT 'still'").unwrap();
    assert_eq!(lines(&path, 2)[1]["text"], "SELECT 'still'");
    // And Funnel does not start with one.
    let failed = Proxy::start(Config::from_yaml_str(&bad).unwrap()).err().unwrap();
    assert!(
        failed.to_string().starts_with("query_log.path: cannot open"),
        "{failed}"
    );
}

#[test]
fn query_log_keys_are_set_on_the_admin_interface() {
    let admin = "admin:\n  listen: 127.0.0.1:0\n  user: admin\n  password: secret\n";
    let e = env("qlog_admin", "", admin);
    let cfg = Config::from_yaml_str(&e.yaml).unwrap();
    let listeners = funnel_admin::start(&cfg, e.proxy.handle(), None).unwrap();
    let port = listeners.admin.as_ref().unwrap().local_addr().port();
    let mut ops = Conn::new(opts(port, "admin", "secret")).unwrap();
    let mut c = e.client();
    c.query_drop("SELECT 'unlogged'").unwrap();
    ops.query_drop("SET query_log.all = true").unwrap();
    c.query_drop("SELECT 'logged'").unwrap();
    let got = lines(&e.path(), 1);
    assert_eq!(got.len(), 1, "{got:#?}");
    assert_eq!(got[0]["text"], "SELECT 'logged'");
    let refused = ops
        .query_drop("SET query_log.path = /nonexistent-dir/q.jsonl")
        .unwrap_err();
    assert!(
        refused.to_string().contains("query_log.path: cannot open"),
        "{refused}"
    );
    let refused = ops.query_drop("SET query_log.max_text = 2MiB").unwrap_err();
    assert!(refused.to_string().contains("must be at most 1MiB"), "{refused}");
}

#[test]
fn query_log_names_every_rule_of_a_chain() {
    let rules = "query_rules:\n\
                 \x20 - match_prefix: 'SELECT /* c */'\n    log: true\n    apply: false\n\
                 \x20 - match_prefix: 'SELECT /* c */'\n    cache_ttl: 5s\n\
                 \x20 - match_prefix: 'SELECT /* one */'\n    log: true\n\
                 \x20 - match_prefix: DROP\n    log: true\n    apply: false\n\
                 \x20 - match_prefix: DROP\n    error: no drops here\n";
    let e = env("qlog_chain", "", rules);
    let mut c = e.client();
    for _ in 0..2 {
        let v: Option<String> = c.query_first("SELECT /* c */ v FROM t WHERE id = 1").unwrap();
        assert_eq!(v.as_deref(), Some("one"));
    }
    c.query_drop("SELECT /* one */ 1").unwrap();
    let err = c.query_drop("DROP TABLE t").unwrap_err();
    assert!(err.to_string().contains("no drops here"), "{err}");
    let got = lines(&e.path(), 4);
    assert_eq!(got.len(), 4, "{got:#?}");
    // The chain's log and cache_ttl both hold: the second read is the
    // first's reply, kept under the chain's rules.
    let reads = lines_of(&got, "query", "SELECT /* c */ v FROM t WHERE id = 1");
    assert_eq!(reads.len(), 2);
    for read in &reads {
        assert_eq!(
            (&read["rule"], &read["rules"]),
            (&Value::from(1), &serde_json::json!([0, 1]))
        );
    }
    assert_eq!(
        (&reads[0]["backend"], &reads[1]["cached"]),
        (&Value::from("primary"), &Value::from(true))
    );
    // One rule: `rule` alone, as before chains.
    let one = line_of(&got, "SELECT /* one */ 1");
    assert_eq!((&one["rule"], one.get("rules")), (&Value::from(2), None));
    // Refused by the chain's last rule, logged by its first.
    let drop_ = line_of(&got, "DROP TABLE t");
    assert_eq!(
        (&drop_["rule"], &drop_["rules"]),
        (&Value::from(4), &serde_json::json!([3, 4]))
    );
    assert_eq!(
        (&drop_["error"], &drop_["backend"]),
        (&Value::from(1148), &Value::Null)
    );
}

#[test]
fn query_log_gives_the_error_a_rules_timeout_sent() {
    let rules = "query_rules:\n  - match_prefix: 'SELECT /* slow */'\n    timeout: 300ms\n    log: true\n";
    let e = env("qlog_rule_timeout", "", rules);
    let mut c = e.client();
    let err = c
        .query::<mysql::Row, _>("SELECT /* slow */ SLEEP(5)")
        .unwrap_err();
    assert!(err.to_string().contains("1969"), "{err}");
    let got = lines(&e.path(), 1);
    let slow = line_of(&got, "SELECT /* slow */ SLEEP(5)");
    // The client got the rule's ERR, not the server's 1317 it replaced.
    assert_eq!(slow["error"], 1969, "{slow:#?}");
    assert_eq!(slow["rule"], 0);
    assert_eq!(slow["backend"], "primary", "{slow:#?}");
}

#[test]
fn query_log_shows_the_text_a_rewrite_rule_made() {
    let rules = "query_rules:\n  - match_regex: '^SELECT \\* FROM t\\b'\n    rewrite: 'SELECT id FROM t'\n    log: true\n";
    let e = env("qlog_rewrite", "", rules);
    let mut c = e.client();
    let ids: Vec<i32> = c.query("SELECT * FROM t ORDER BY id").unwrap();
    assert_eq!(ids, [1, 2]);
    let got = lines(&e.path(), 1);
    let line = line_of(&got, "SELECT id FROM t ORDER BY id");
    assert_eq!(line["rule"], 0);
    assert_eq!(line["rows"], 2);
}

#[test]
fn query_log_names_the_backend_of_a_statement_cut_by_query_timeout() {
    let e = env(
        "qlog_query_timeout",
        "  all: true\n",
        "pool:\n  query_timeout: 300ms\n",
    );
    let mut c = e.client();
    let err = c.query::<mysql::Row, _>("SELECT SLEEP(5)").unwrap_err();
    assert!(err.to_string().contains("1969"), "{err}");
    // The client's setup statement, then this one.
    let got = lines(&e.path(), 2);
    let slow = line_of(&got, "SELECT SLEEP(5)");
    assert_eq!(slow["error"], 1969, "{slow:#?}");
    // It ran there (a slow query log's line must say where).
    assert_eq!(slow["backend"], "primary", "{slow:#?}");
}

#[test]
fn query_log_takes_the_statements_funnel_answers_itself() {
    let e = env("qlog_own", "  all: true\n", "");
    let mut c = e.client();
    // Refused by Funnel (no server sees it), and a KILL it runs itself.
    let refused = c.query_drop("SHUTDOWN").unwrap_err();
    let killed = c.query_drop("KILL QUERY 987654321").unwrap_err();
    c.query_drop("SELECT 'end'").unwrap();
    let got = lines(&e.path(), 4);
    line_of(&got, "SELECT 'end'");
    for (text, err) in [("SHUTDOWN", refused), ("KILL QUERY 987654321", killed)] {
        let line = line_of(&got, text);
        assert_eq!(line["backend"], Value::Null, "{line:#?}");
        assert!(
            err.to_string().contains(&line["error"].to_string()),
            "{err}: {line:#?}"
        );
    }
}

#[test]
fn query_log_lines_of_harder_statements() {
    let e = env("qlog_hard", "  all: true\n  max_text: 9B\n", "");
    MariaDb::shared().exec("SET GLOBAL local_infile = 1");
    let mut c = Conn::new(
        opts(e.proxy.local_addr().port(), "app", "apppw").local_infile_handler(Some(
            mysql::LocalInfileHandler::new(|_name, writer| {
                for i in 10..20 {
                    writeln!(writer, "{i},r{i}")?;
                }
                Ok(())
            }),
        )),
    )
    .unwrap();
    let mut r = c.query_iter("SELECT 1; SELECT 2, 3").unwrap();
    while let Some(set) = r.iter() {
        for row in set {
            row.unwrap();
        }
    }
    drop(r);
    c.query_drop("LOAD DATA LOCAL INFILE 'x.csv' INTO TABLE t FIELDS TERMINATED BY ','")
        .unwrap();
    // A control character; a cut inside a two-byte character.
    c.query_drop("SELECT '\u{1}', 1").unwrap();
    c.query_drop("SELECT 'é'").unwrap();
    let got = lines(&e.path(), 5);
    let multi = line_of(&got, "SELECT 1;");
    assert_eq!(multi["rows"], 2, "{multi:#?}");
    assert_eq!(multi["text_cut"], true);
    let load = line_of(&got, "LOAD DATA");
    assert_eq!(load["affected"], 10, "{load:#?}");
    line_of(&got, "SELECT '\u{1}");
    line_of(&got, "SELECT '\u{fffd}");
}

#[test]
fn query_log_lines_stay_whole_under_many_clients_and_a_reload_off_writes_what_it_held() {
    let e = env("qlog_many", "  all: true\n", "");
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let mut c = e.client();
            std::thread::spawn(move || {
                for i in 0..60 {
                    let pad = format!("{t}-{i}-").repeat(300);
                    let v: Option<String> = c.query_first(format!("SELECT '{pad}'")).unwrap();
                    assert_eq!(v.unwrap(), pad);
                }
                c
            })
        })
        .collect();
    let clients: Vec<Conn> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    let got = lines(&e.path(), 8 * 61);
    let ours = got
        .iter()
        .filter(|l| l["text"].as_str().unwrap().starts_with("SELECT '"))
        .count();
    assert_eq!(ours, 480);
    // A reload that turns the log off: what the cores held still goes to
    // the file (it was taken while the log was on), nothing after it.
    let Env {
        mut proxy, dir, yaml, ..
    } = e;
    let mut clients = clients;
    for c in &mut clients {
        c.query_drop("SELECT 'before off'").unwrap();
    }
    let off = yaml.replace("query_log:\n", "query_log_off:\n");
    let off: String = off
        .lines()
        .filter(|l| !l.starts_with("query_log_off") && !l.starts_with("  path:") && !l.starts_with("  all:"))
        .collect::<Vec<_>>()
        .join("\n");
    proxy.reload(Config::from_yaml_str(&off).unwrap()).unwrap();
    for c in &mut clients {
        c.query_drop("SELECT 'after off'").unwrap();
    }
    std::thread::sleep(Duration::from_millis(600));
    let path = dir.path().join("queries.jsonl");
    let got = lines(&path, 0);
    assert!(got.iter().all(|l| l["text"] != "SELECT 'after off'"));
    let before = got.iter().filter(|l| l["text"] == "SELECT 'before off'").count();
    assert_eq!(before, 8, "the lines taken before the reload are written");
    let written = got.len() as u64;
    let snaps = proxy.snapshots();
    let logged: u64 = snaps.iter().map(|s| s.counters.query_log_lines).sum();
    let dropped: u64 = snaps.iter().map(|s| s.counters.query_log_dropped).sum();
    assert_eq!((written, dropped), (logged, 0));
}

#[test]
fn query_log_lines_of_statements_stopped_before_or_while_they_ran() {
    let extra = "pool:\n  max_per_core: 1\n  min_idle_per_core: 0\nbacklog:\n  wait_timeout: 500ms\n";
    let e = env_on(1, "qlog_stopped", "  all: true\n", extra);
    let (mut a, mut b, mut ops) = (e.client(), e.client(), e.client());
    let b_id: u64 = b.query_first("SELECT CONNECTION_ID()").unwrap().unwrap();
    // A holds the one connection: B's read waits, then gets ERR 9001.
    a.query_drop("BEGIN").unwrap();
    a.query_drop("SELECT * FROM t FOR UPDATE").unwrap();
    let err = b.query_drop("SELECT 'waited'").unwrap_err();
    assert!(err.to_string().contains("9001"), "{err}");
    // A KILL QUERY of B's wait: ERR 1317 from Funnel.
    let killer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(200));
        ops.query_drop(format!("KILL QUERY {b_id}")).unwrap();
        ops
    });
    let err = b.query_drop("SELECT 'killed'").unwrap_err();
    assert!(err.to_string().contains("1317"), "{err}");
    killer.join().unwrap();
    a.query_drop("COMMIT").unwrap();
    b.query_drop("SELECT 'end'").unwrap();
    let got = lines(&e.path(), 10);
    line_of(&got, "SELECT 'end'");
    let waited = line_of(&got, "SELECT 'waited'");
    assert_eq!(
        (&waited["error"], &waited["backend"]),
        (&Value::from(9001), &Value::Null)
    );
    let killed = line_of(&got, "SELECT 'killed'");
    assert_eq!(
        (&killed["error"], &killed["backend"]),
        (&Value::from(1317), &Value::Null)
    );
    line_of(&got, &format!("KILL QUERY {b_id}"));
}

/// The docs said a wait for a connection whose client left is not logged;
/// Funnel learns the client left only when it answers, so its line is
/// there, with the ERR it answered.
#[test]
fn query_log_logs_a_wait_for_a_connection_the_client_left() {
    let extra = "pool:\n  max_per_core: 1\n  min_idle_per_core: 0\nbacklog:\n  wait_timeout: 800ms\n";
    let e = env_on(1, "qlog_left", "  all: true\n", extra);
    let mut a = e.client();
    let mut b = Conn::new(
        opts(e.proxy.local_addr().port(), "app", "apppw").read_timeout(Some(Duration::from_millis(200))),
    )
    .unwrap();
    a.query_drop("BEGIN").unwrap();
    a.query_drop("SELECT * FROM t FOR UPDATE").unwrap();
    assert!(b.query_drop("SELECT 'left'").is_err());
    drop(b);
    std::thread::sleep(Duration::from_millis(1200));
    a.query_drop("COMMIT").unwrap();
    a.query_drop("SELECT 'end'").unwrap();
    let got = lines(&e.path(), 7);
    line_of(&got, "SELECT 'end'");
    let left = line_of(&got, "SELECT 'left'");
    assert_eq!(
        (&left["error"], &left["backend"]),
        (&Value::from(9001), &Value::Null)
    );
}

#[test]
fn query_log_takes_an_execute_a_rule_refuses() {
    let e = env("qlog_exec_refused", "", "");
    let mut c = e.client();
    let stmt = c.prep("SELECT v FROM t WHERE id = ?").unwrap();
    // A rule added since the prepare refuses its executes, and logs them.
    let rules =
        "query_rules:\n  - match_prefix: 'SELECT v FROM t'\n    error: no reads of t\n    log: true\n";
    let Env {
        mut proxy, dir, yaml, ..
    } = e;
    proxy
        .reload(Config::from_yaml_str(&format!("{yaml}{rules}")).unwrap())
        .unwrap();
    let err = c.exec_drop(&stmt, (1,)).unwrap_err();
    assert!(err.to_string().contains("no reads of t"), "{err}");
    c.query_drop("SELECT v FROM t WHERE id = 2").unwrap_err();
    let got = lines(&dir.path().join("queries.jsonl"), 2);
    let execute = got
        .iter()
        .find(|l| l["command"] == "execute")
        .unwrap_or_else(|| panic!("no execute line: {got:#?}"));
    assert_eq!(execute["text"], "SELECT v FROM t WHERE id = ?");
    assert_eq!(
        (&execute["rule"], &execute["error"]),
        (&Value::from(0), &Value::from(1148))
    );
    assert_eq!(execute["backend"], Value::Null);
}

/// A binary-protocol prepare has a line of its own, as in ProxySQL's and
/// MaxScale's logs: the server that described it, or none when Funnel
/// answered from its registry; its error when it failed. Rules' `log`
/// and `min_duration` apply to it as to any statement.
#[test]
fn query_log_writes_a_line_for_each_prepare() {
    let rules = "query_rules:\n  - match_prefix: 'SELECT /* quiet */'\n    log: false\n";
    // One core: its registry answers the second client.
    let e = env_on(1, "qlog_prepare", "  all: true\n", rules);
    let (mut a, mut b) = (e.client(), e.client());
    let text = "SELECT v FROM t WHERE id = ?";
    let stmt = a.prep(text).unwrap();
    let v: Option<String> = a.exec_first(&stmt, (1,)).unwrap();
    assert_eq!(v.as_deref(), Some("one"));
    // The same text again, from another client: the registry answers.
    b.prep(text).unwrap();
    let err = a.prep("SELECT nope FROM t WHERE id = ?").unwrap_err();
    assert!(err.to_string().contains("1054"), "{err}");
    a.prep("SELECT /* quiet */ v FROM t").unwrap();
    a.query_drop("SELECT 'end'").unwrap();
    let got = lines(&e.path(), 6);
    line_of(&got, "SELECT 'end'");
    let prepares = lines_of(&got, "prepare", text);
    assert_eq!(prepares.len(), 2, "{got:#?}");
    let (first, again) = (prepares[0], prepares[1]);
    assert_eq!(first["backend"], "primary", "{first:#?}");
    assert_eq!(first["error"], Value::Null);
    assert_eq!(first["schema"], e.schema.as_str());
    assert!(first["duration_us"].as_u64().is_some());
    assert_eq!(again["backend"], Value::Null, "from the registry: {again:#?}");
    assert_ne!(first["client"], again["client"]);
    assert_eq!(lines_of(&got, "execute", text).len(), 1, "{got:#?}");
    let failed = lines_of(&got, "prepare", "SELECT nope FROM t WHERE id = ?");
    assert_eq!(failed.len(), 1, "{got:#?}");
    assert_eq!(
        (&failed[0]["error"], &failed[0]["backend"]),
        (&Value::from(1054), &Value::from("primary"))
    );
    assert!(
        got.iter().all(|l| !l["text"].as_str().unwrap().contains("quiet")),
        "the rule's log: false keeps its prepare out: {got:#?}"
    );
}

/// Only a rule's `log: true` takes a prepare when `all` is off, and
/// `min_duration` keeps out a prepare faster than it.
#[test]
fn query_log_takes_a_prepare_as_its_rule_and_min_duration_say() {
    let rules = "query_rules:\n  - match_prefix: 'SELECT /* audit */'\n    log: true\n\
                 \x20 - match_prefix: 'DELETE'\n    error: no deletes\n    log: true\n";
    let e = env("qlog_prepare_rule", "", rules);
    let mut c = e.client();
    c.prep("SELECT v FROM t WHERE id = ?").unwrap();
    let stmt = c.prep("SELECT /* audit */ v FROM t WHERE id = ?").unwrap();
    c.exec_drop(&stmt, (2,)).unwrap();
    let err = c.prep("DELETE FROM t WHERE id = ?").unwrap_err();
    assert!(err.to_string().contains("no deletes"), "{err}");
    let got = lines(&e.path(), 3);
    std::thread::sleep(Duration::from_millis(400));
    let got_later = lines(&e.path(), 0);
    assert_eq!(got.len(), got_later.len());
    let audited: Vec<(&str, &Value)> = got_later
        .iter()
        .map(|l| (l["command"].as_str().unwrap(), &l["rule"]))
        .collect();
    let (zero, one) = (Value::from(0), Value::from(1));
    assert_eq!(
        audited,
        [("prepare", &zero), ("execute", &zero), ("prepare", &one)],
        "{got_later:#?}"
    );
    // Refused by Funnel: no server saw it.
    assert_eq!(
        (&got_later[2]["error"], &got_later[2]["backend"]),
        (&Value::from(1148), &Value::Null)
    );

    let slow = env("qlog_prepare_slow", "  all: true\n  min_duration: 250ms\n", "");
    let mut c = slow.client();
    c.prep("SELECT v FROM t WHERE id = ?").unwrap();
    c.query_drop("SELECT SLEEP(0.3)").unwrap();
    // One client, one core: its prepare's line, had it one, would be
    // written with the SLEEP's or before.
    let got = lines(&slow.path(), 1);
    line_of(&got, "SELECT SLEEP(0.3)");
    // A prepare slowed by a busy machine may be there too.
    assert!(
        got.iter().all(|l| l["duration_us"].as_u64().unwrap() >= 250_000),
        "{got:#?}"
    );
}

/// Each line's `schema` is the one its statement ran in: a `USE` line's
/// is the schema it left (as every other statement's is the one current
/// when it arrived), and an execute's is its statement's, where the
/// server runs it whatever the client selected since.
#[test]
fn query_log_schema_is_the_one_each_statement_ran_in() {
    let e = env("qlog_schema", "  all: true\n", "");
    let other = MariaDb::shared().fresh_database("qlog_schema_other");
    let mut c = e.client();
    let stmt = c.prep("SELECT v FROM t WHERE id = ?").unwrap();
    c.query_drop(format!("USE {other}")).unwrap();
    c.query_drop("SELECT 'in other'").unwrap();
    // `t` is in the statement's schema only: it runs there.
    let v: Option<String> = c.exec_first(&stmt, (1,)).unwrap();
    assert_eq!(v.as_deref(), Some("one"));
    c.query_drop(format!("USE {}", e.schema)).unwrap();
    c.query_drop("SELECT 'back'").unwrap();
    let got = lines(&e.path(), 7);
    line_of(&got, "SELECT 'back'");
    let schema = |command: &str, text: &str| {
        let found = lines_of(&got, command, text);
        assert_eq!(found.len(), 1, "{command} {text}: {got:#?}");
        found[0]["schema"].as_str().unwrap().to_string()
    };
    let (home, other) = (e.schema.as_str(), other.as_str());
    assert_eq!(schema("query", &format!("USE {other}")), home);
    assert_eq!(schema("query", "SELECT 'in other'"), other);
    assert_eq!(schema("execute", "SELECT v FROM t WHERE id = ?"), home);
    assert_eq!(schema("query", &format!("USE {home}")), other);
    assert_eq!(schema("query", "SELECT 'back'"), home);
}

/// A MariaDB bulk execute (`COM_STMT_BULK_EXECUTE`, which the `mysql`
/// crate cannot send) has its `bulk_execute` line: the rows it changed,
/// or the error of one that failed.
#[test]
fn query_log_writes_a_bulk_execute_line() {
    use funnel_protocol::tracker::Expect;
    use funnel_protocol::Capabilities;
    use funnel_testkit::mini_client::MiniClient;

    let e = env("qlog_bulk", "  all: true\n", "");
    let mut c = MiniClient::connect_with(
        e.proxy.local_addr(),
        "app",
        "apppw",
        Some(&e.schema),
        Capabilities::MARIADB_CLIENT_STMT_BULK_OPERATIONS,
    )
    .unwrap();
    let text = "INSERT INTO t (id) VALUES (?)";
    let mut prepare = vec![0x16];
    prepare.extend_from_slice(text.as_bytes());
    let reply = c.roundtrip(&prepare, Expect::Prepare).unwrap();
    let id: [u8; 4] = reply[0][1..5].try_into().unwrap();
    // Its rows' ids as one LONGLONG parameter each, types sent.
    let bulk = |ids: &[i64]| {
        let mut p = vec![0xfa];
        p.extend_from_slice(&id);
        p.extend_from_slice(&128u16.to_le_bytes());
        p.extend_from_slice(&[0x08, 0]);
        for id in ids {
            p.push(0);
            p.extend_from_slice(&id.to_le_bytes());
        }
        p
    };
    let ok = c.roundtrip(&bulk(&[10, 11, 12]), Expect::Results).unwrap();
    assert_eq!(ok[0][..2], [0, 3], "an OK for three rows: {ok:?}");
    // A duplicate in its second row: the bulk fails as one statement.
    let err = c.roundtrip(&bulk(&[20, 1]), Expect::Results).unwrap();
    assert_eq!(err[0][..3], [0xff, 0x26, 0x04], "ERR 1062: {err:?}");
    c.query("SELECT 'end'").unwrap();
    let got = lines(&e.path(), 4);
    line_of(&got, "SELECT 'end'");
    let bulks = lines_of(&got, "bulk_execute", text);
    assert_eq!(bulks.len(), 2, "{got:#?}");
    let (done, failed) = (bulks[0], bulks[1]);
    assert_eq!(
        (&done["affected"], &done["error"], &done["backend"]),
        (&Value::from(3), &Value::Null, &Value::from("primary")),
        "{done:#?}"
    );
    assert_eq!(
        (&failed["affected"], &failed["error"], &failed["backend"]),
        (&Value::from(0), &Value::from(1062), &Value::from("primary")),
        "{failed:#?}"
    );
}

/// Funnel on one core logging into a pipe nobody reads yet, so that a
/// write blocks: `then` is called once a write of more than the pipe
/// holds is under way and more lines are buffered behind it, and must
/// make Funnel write those (a stop, a reload that turns the log off).
/// Gives the lines of the numbered statements, as read from the pipe.
fn through_a_blocked_write(prefix: &str, then: impl FnOnce(Proxy, &str)) -> Vec<Value> {
    let (go, told) = std::sync::mpsc::channel::<()>();
    let (line_tx, line_rx) = std::sync::mpsc::channel::<String>();
    let e = env_with(1, prefix, "  all: true\n", "", move |path| {
        let made = std::process::Command::new("mkfifo").arg(path).status().unwrap();
        assert!(made.success());
        let path = path.to_path_buf();
        std::thread::spawn(move || {
            use std::io::BufRead as _;
            // Until Funnel opens it for writing.
            let pipe = std::fs::File::open(path).unwrap();
            told.recv().unwrap();
            // Small reads: the pipe frees a little at a time, as a slow
            // disk would take it.
            for line in std::io::BufReader::with_capacity(512, pipe).lines() {
                if line_tx.send(line.unwrap()).is_err() {
                    break;
                }
            }
        });
    });
    let pad = "x".repeat(3000);
    let mut c = e.client();
    // More than the pipe's 64 KiB in its first timed write, which blocks.
    for i in 0..80 {
        c.query_drop(format!("SELECT '{i:05}-{pad}'")).unwrap();
    }
    std::thread::sleep(Duration::from_millis(500));
    // Buffered while that write waits.
    for i in 80..120 {
        c.query_drop(format!("SELECT '{i:05}-{pad}'")).unwrap();
    }
    drop(c);
    let reader = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        go.send(()).unwrap();
    });
    let Env { proxy, yaml, .. } = e;
    then(proxy, &yaml);
    reader.join().unwrap();
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while got.len() < 120 {
        let left = deadline.saturating_duration_since(Instant::now());
        let Ok(line) = line_rx.recv_timeout(left) else {
            break;
        };
        let line: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        if line["text"].as_str().unwrap().starts_with("SELECT '0") {
            got.push(line);
        }
    }
    got
}

/// The numbers of the numbered statements' lines, in the order read.
fn numbers(lines: &[Value]) -> Vec<u32> {
    lines
        .iter()
        .map(|l| l["text"].as_str().unwrap()[8..13].parse().unwrap())
        .collect()
}

/// A stop writes what the core held after the write still under way,
/// not beside it.
#[test]
fn query_log_stop_writes_a_cores_last_lines_after_its_write_under_way() {
    let got = through_a_blocked_write("qlog_stop_order", |proxy, _| proxy.shutdown());
    assert_eq!(numbers(&got), (0..120).collect::<Vec<u32>>());
}

/// So does a reload that turns the log off.
#[test]
fn query_log_reload_off_writes_a_cores_last_lines_after_its_write_under_way() {
    let got = through_a_blocked_write("qlog_off_order", |mut proxy, yaml| {
        let off: String = yaml
            .lines()
            .filter(|l| !l.starts_with("query_log") && !l.starts_with("  path:") && !l.starts_with("  all:"))
            .collect::<Vec<_>>()
            .join("\n");
        proxy.reload(Config::from_yaml_str(&off).unwrap()).unwrap();
        // Kept running: the reload's write is on its own.
        std::thread::sleep(Duration::from_secs(3));
        proxy.shutdown();
    });
    assert_eq!(numbers(&got), (0..120).collect::<Vec<u32>>());
}

/// Once a transaction's connection failed, Funnel refuses the session's
/// statements until its ROLLBACK (ERR 9008): an execute's refusal has
/// its line, as a query's has.
#[test]
fn query_log_takes_an_execute_refused_after_a_lost_transaction() {
    let e = env_on(1, "qlog_lost", "  all: true\n", "");
    let mut c = e.client();
    let text = "SELECT v FROM t WHERE id = ?";
    let stmt = c.prep(text).unwrap();
    c.query_drop("BEGIN").unwrap();
    c.query_drop("INSERT INTO t VALUES (5, 'five')").unwrap();
    // The server ends Funnel's connections.
    let mut root = MariaDb::shared().root();
    let rows: Vec<(u64, String)> = root
        .query("SELECT ID, USER FROM information_schema.PROCESSLIST")
        .unwrap();
    let backend = format!("{}_b", e.schema);
    for (id, _) in rows.iter().filter(|(_, user)| *user == backend) {
        let _ = root.query_drop(format!("KILL {id}"));
    }
    c.query_drop("SELECT 'lost'").unwrap_err();
    let err = c.exec_drop(&stmt, (1,)).unwrap_err();
    assert!(err.to_string().contains("9008"), "{err}");
    let err = c.query_drop("SELECT 'refused'").unwrap_err();
    assert!(err.to_string().contains("9008"), "{err}");
    c.query_drop("ROLLBACK").unwrap();
    // The client's setup statement, then seven.
    let got = lines(&e.path(), 8);
    line_of(&got, "ROLLBACK");
    assert_eq!(line_of(&got, "SELECT 'refused'")["error"], 9008);
    let execute = lines_of(&got, "execute", text);
    assert_eq!(execute.len(), 1, "{got:#?}");
    assert_eq!(
        (
            &execute[0]["error"],
            &execute[0]["backend"],
            &execute[0]["schema"]
        ),
        (&Value::from(9008), &Value::Null, &Value::from(e.schema.as_str()))
    );
}

/// A driver's change of schema (`COM_INIT_DB`, the `mysql` crate's
/// `select_db`) has its line, as the text `USE` has: command `init_db`,
/// the schema named as text, the schema it ran in, and the error of one
/// the server refused. Before, it had none.
#[test]
fn query_log_writes_an_init_db_line() {
    let e = env("qlog_init_db", "  all: true\n", "");
    let other = MariaDb::shared().fresh_database("qlog_init_db_other");
    let mut c = e.client();
    c.select_db(&other).unwrap();
    assert!(c.select_db("qlog_no_such_schema").is_err());
    c.query_drop("SELECT 'after'").unwrap();
    let got = lines(&e.path(), 3);
    line_of(&got, "SELECT 'after'");
    let ok = lines_of(&got, "init_db", &other);
    assert_eq!(ok.len(), 1, "{got:#?}");
    assert_eq!(ok[0]["schema"].as_str(), Some(e.schema.as_str()));
    assert!(ok[0]["error"].is_null(), "{:?}", ok[0]);
    let refused = lines_of(&got, "init_db", "qlog_no_such_schema");
    assert_eq!(refused.len(), 1, "{got:#?}");
    assert_eq!(refused[0]["error"].as_u64(), Some(1049));
    assert_eq!(refused[0]["schema"].as_str(), Some(other.as_str()));
}
