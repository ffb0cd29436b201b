//! Query rules that refuse statements (`error`) or stop them once they
//! have run too long (`timeout`), whatever the session holds, and
//! `SHOW QUERY RULES` counting what each rule applied to. Routing by rules
//! is in `backends.rs`; rules that chain in `query_rules/chains.rs`.

use std::time::{Duration, Instant};

use funnel_config::Config;
use funnel_engine::Proxy;
use funnel_testkit::client_opts as opts;
use funnel_testkit::MariaDb;
use mysql::prelude::Queryable;
use mysql::{Conn, Row};

#[path = "query_rules/chains.rs"]
mod chains;

struct Env {
    proxy: Proxy,
    listeners: funnel_admin::Listeners,
    schema: String,
    backend: String,
}

/// The YAML of a Funnel in front of the shared server for users `app` and
/// `ops`, and `split`, whose reads go to hostgroup `other`: the same
/// server as `primary`'s, through account `<backend>_o` (so
/// `CURRENT_USER()` tells the two apart). `rules` is a `query_rules:`
/// section, or nothing.
fn yaml(schema: &str, backend: &str, rules: &str) -> String {
    format!(
        "listen: 127.0.0.1:0\ncores: 2\n\
         users:\n  - name: app\n    password: apppw\n    default_schema: {schema}\n\
         \x20 - name: ops\n    password: opspw\n    default_schema: {schema}\n\
         \x20 - name: split\n    password: splitpw\n    default_schema: {schema}\n    read_hostgroup: other\n\
         backends:\n  - name: primary\n    address: {addr}\n    user: {backend}\n    password: bpw\n\
         \x20 - name: copy\n    address: {addr}\n    user: {backend}_o\n    password: bpw\n    hostgroup: other\n\
         pool:\n  max_per_core: 2\n\
         admin:\n  listen: 127.0.0.1:0\n  user: admin\n  password: secret\n{rules}",
        addr = MariaDb::shared().addr()
    )
}

fn env(prefix: &str, rules: &str) -> Env {
    env_on(2, prefix, rules)
}

/// [`env`] on `cores` cores.
fn env_on(cores: u16, prefix: &str, rules: &str) -> Env {
    let db = MariaDb::shared();
    let schema = db.fresh_database(prefix);
    let backend = format!("{schema}_b");
    db.create_user(&backend, "bpw");
    db.create_user(&format!("{backend}_o"), "bpw");
    db.exec(&format!("CREATE TABLE {schema}.t (id INT PRIMARY KEY, v INT)"));
    db.exec(&format!("INSERT INTO {schema}.t VALUES (1, 10), (2, 20)"));
    let yaml = yaml(&schema, &backend, rules).replacen("cores: 2\n", &format!("cores: {cores}\n"), 1);
    let cfg = Config::from_yaml_str(&yaml).unwrap();
    let proxy = funnel_testkit::funnel::start(cfg.clone());
    let listeners = funnel_admin::start(&cfg, proxy.handle(), None).unwrap();
    Env {
        proxy,
        listeners,
        schema,
        backend,
    }
}

impl Env {
    fn client(&self, user: &str) -> Conn {
        let pw = format!("{user}pw");
        Conn::new(opts(self.proxy.local_addr().port(), user, &pw)).unwrap()
    }

    fn admin(&self) -> Conn {
        let port = self.listeners.admin.as_ref().unwrap().local_addr().port();
        Conn::new(opts(port, "admin", "secret")).unwrap()
    }

    fn rows_in_t(&self) -> i64 {
        MariaDb::shared()
            .query_first::<i64>(&format!("SELECT COUNT(*) FROM {}.t", self.schema))
            .unwrap()
    }

    /// Client `id`'s `SHOW CLIENTS` row once it shows as waiting (a
    /// rule's delay holds it), within 4 s.
    fn waiting_row(&self, admin: &mut Conn, id: &str) -> Row {
        let deadline = Instant::now() + Duration::from_secs(4);
        loop {
            let rows: Vec<Row> = admin.query("SHOW CLIENTS").unwrap();
            let waiting = rows.into_iter().find(|r| {
                r.get::<String, _>("id").unwrap() == id && r.get::<String, _>("state").unwrap() == "waiting"
            });
            if let Some(row) = waiting {
                return row;
            }
            assert!(Instant::now() < deadline, "client {id} never showed as waiting");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// `SHOW QUERY RULES` as (rule, hits) pairs.
    fn hits(&self) -> Vec<(u32, u64)> {
        let rows: Vec<Row> = self.admin().query("SHOW QUERY RULES").unwrap();
        rows.into_iter()
            .map(|r| {
                let rule: String = r.get("rule").unwrap();
                let hits: String = r.get("hits").unwrap();
                (rule.parse().unwrap(), hits.parse().unwrap())
            })
            .collect()
    }
}

// A result set's rows are read with `query`: `query_drop` drops an ERR
// that comes in place of a row.

/// The code, SQLSTATE and message of a server error.
fn server_error(e: mysql::Error) -> (u16, String, String) {
    match e {
        mysql::Error::MySqlError(e) => (e.code, e.state, e.message),
        other => panic!("expected a server error, got {other}"),
    }
}

const REFUSE_DELETE: &str = r"query_rules:
  - match_regex: '(?i)^\s*DELETE\s+FROM\s+\S+\s*$'
    user: app
    error: 'DELETE without WHERE is refused'
  - match_prefix: 'SELECT /* slow */'
    timeout: 300ms
";

#[test]
fn query_rules_refuse_a_statement_before_any_server_sees_it() {
    let env = env("qr_refuse", REFUSE_DELETE);
    let mut c = env.client("app");
    let refused = |c: &mut Conn, sql: &str| server_error(c.query_drop(sql).unwrap_err());
    let expected = (
        1148,
        "42000".to_string(),
        "DELETE without WHERE is refused".to_string(),
    );
    assert_eq!(refused(&mut c, "DELETE FROM t"), expected);
    assert_eq!(env.rows_in_t(), 2, "nothing ran");
    // To the client it is a failed statement, as the server's own.
    let warnings: Vec<(String, u16, String)> = c.query("SHOW WARNINGS").unwrap();
    assert_eq!(
        warnings,
        [("Error".into(), 1148, "DELETE without WHERE is refused".into())]
    );
    assert_eq!(c.query_first::<i64, _>("SELECT ROW_COUNT()").unwrap(), Some(-1));
    // A statement the rule does not match runs.
    c.query_drop("DELETE FROM t WHERE id = 2").unwrap();
    assert_eq!(env.rows_in_t(), 1);
    // Inside a transaction (the session holds its connection, where
    // routing rules do not apply) the statement is refused too, and the
    // transaction goes on.
    c.query_drop("BEGIN").unwrap();
    c.query_drop("INSERT INTO t VALUES (3, 30)").unwrap();
    assert_eq!(refused(&mut c, "delete from t").0, 1148);
    c.query_drop("COMMIT").unwrap();
    assert_eq!(env.rows_in_t(), 2, "the transaction's insert committed");
    c.query_drop("SET autocommit = 0").unwrap();
    assert_eq!(refused(&mut c, "  DELETE FROM t ").0, 1148);
    c.query_drop("SET autocommit = 1").unwrap();
    // A binary prepare of the text is refused as well.
    assert_eq!(server_error(c.prep("DELETE FROM t").unwrap_err()), expected);
    // The rule names its user: another user's statement runs.
    let mut ops = env.client("ops");
    ops.query_drop("DELETE FROM t").unwrap();
    assert_eq!(env.rows_in_t(), 0);
    // Hits, summed over the cores: three queries and a prepare refused.
    assert_eq!(env.hits(), [(0, 4), (1, 0)]);
}

#[test]
fn query_rules_added_by_a_reload_refuse_executes_of_statements_prepared_before() {
    let env = env("qr_reload", "");
    let mut c = env.client("app");
    let stmt = c.prep("UPDATE t SET v = v + 1 WHERE id = ?").unwrap();
    c.exec_drop(&stmt, (1,)).unwrap();
    let rules = "query_rules:\n  - match_prefix: UPDATE t\n    error: 'writes to t are paused'\n";
    let cfg = Config::from_yaml_str(&yaml(&env.schema, &env.backend, rules)).unwrap();
    env.proxy.handle().reload(cfg).unwrap();
    let e = server_error(c.exec_drop(&stmt, (1,)).unwrap_err());
    assert_eq!(e, (1148, "42000".into(), "writes to t are paused".into()));
    assert_eq!(
        MariaDb::shared().query_first::<i64>(&format!("SELECT v FROM {}.t WHERE id = 1", env.schema)),
        Some(11),
        "only the execute before the reload ran"
    );
    // The session goes on, and its other statements run.
    assert_eq!(
        c.query_first::<i64, _>("SELECT v FROM t WHERE id = 2").unwrap(),
        Some(20)
    );
    assert_eq!(env.hits(), [(0, 1)]);
}

#[test]
fn query_rules_timeout_stops_the_statement_on_the_server_and_keeps_the_session() {
    let env = env("qr_timeout", REFUSE_DELETE);
    let mut c = env.client("app");
    let started = Instant::now();
    let e = server_error(c.query::<Row, _>("SELECT /* slow */ SLEEP(20)").unwrap_err());
    assert_eq!(
        e,
        (
            1969,
            "70100".into(),
            "Query execution was interrupted (query_rules[1].timeout of 300 ms exceeded)".into()
        )
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    // The server stopped it: no thread still runs it.
    let running = MariaDb::shared().query_first::<i64>(
        "SELECT COUNT(*) FROM information_schema.processlist WHERE info LIKE 'SELECT /* slow */%'",
    );
    assert_eq!(running, Some(0));
    // Its diagnostics are the client's error.
    let warnings: Vec<(String, u16, String)> = c.query("SHOW WARNINGS").unwrap();
    assert_eq!(warnings.len(), 1);
    assert_eq!(
        (warnings[0].1, warnings[0].2.contains("query_rules[1].timeout")),
        (1969, true)
    );
    // A statement stopped inside a transaction leaves the transaction open,
    // as the server's own `max_statement_time` does.
    c.query_drop("BEGIN").unwrap();
    c.query_drop("INSERT INTO t VALUES (5, 50)").unwrap();
    assert_eq!(
        server_error(c.query::<Row, _>("SELECT /* slow */ SLEEP(20)").unwrap_err()).0,
        1969
    );
    c.query_drop("COMMIT").unwrap();
    assert_eq!(env.rows_in_t(), 3);
    // A stop in the middle of a result set's rows.
    let e = c
        .query_iter("SELECT /* slow */ seq, SLEEP(0.002) FROM seq_1_to_100000")
        .and_then(|mut r| r.by_ref().try_for_each(|row| row.map(drop)))
        .unwrap_err();
    assert_eq!(server_error(e).0, 1969);
    // The same text within the time runs whole; the connection serves the
    // session (and the other clients) on, with no late KILL cutting in.
    for _ in 0..20 {
        assert_eq!(c.query_first::<i64, _>("SELECT /* slow */ 7").unwrap(), Some(7));
        assert_eq!(
            env.client("ops")
                .query_first::<i64, _>("SELECT SLEEP(0.01) + 1")
                .unwrap(),
            Some(1)
        );
    }
    // A prepared statement's executes are bounded too.
    let stmt = c.prep("SELECT /* slow */ SLEEP(?)").unwrap();
    assert_eq!(
        server_error(c.exec::<Row, _, _>(&stmt, (20,)).unwrap_err()).0,
        1969
    );
    assert_eq!(c.exec_first::<i64, _, _>(&stmt, (0,)).unwrap(), Some(0));
    let hits = env.hits();
    assert_eq!(hits[1], (1, 2 + 1 + 20 + 1 + 2), "{hits:?}");
}

#[test]
fn query_rules_rewrite_the_text_funnel_reads_routes_and_sends() {
    let rules = r"query_rules:
  - match_regex: '(?i)^SELECT \* FROM t\b'
    rewrite: 'SELECT id FROM t'
  - match_regex: '^SELECT /\* who \*/ 1$'
    rewrite: 'SELECT CURRENT_USER() FROM t LIMIT 1 FOR UPDATE'
  - match_regex: '^SELECT /\* there \*/ (?P<id>\d+)$'
    rewrite: 'SELECT CURRENT_USER() FROM t WHERE id = ${id} FOR UPDATE'
    hostgroup: other
  - match_regex: 'xxxx'
    rewrite: '{}'
  - match_regex: '^SELECT /\* prep \*/ (.*)$'
    rewrite: 'SELECT CURRENT_USER(), $1 FROM t LIMIT 1 FOR UPDATE'
    hostgroup: other
";
    let rules = rules.replace("{}", &"y".repeat(1024));
    let env = env("qr_rewrite", &rules);
    let primary = format!("{}@%", env.backend);
    let other = format!("{}_o@%", env.backend);
    let mut c = env.client("split");
    // The server runs the rewritten text: one column, not two.
    let rows: Vec<Row> = c.query("select * from t where id = 1").unwrap();
    assert_eq!((rows.len(), rows[0].len()), (1, 1));
    // A plain read goes to the read hostgroup; the same text rewritten
    // into a locking read is read as one, and goes to the writer.
    assert_eq!(
        c.query_first::<String, _>("SELECT CURRENT_USER()").unwrap(),
        Some(other.clone())
    );
    assert_eq!(
        c.query_first::<String, _>("SELECT /* who */ 1").unwrap(),
        Some(primary)
    );
    // The matching rule's hostgroup holds for the rewritten text, which
    // that rule no longer matches.
    assert_eq!(
        c.query_first::<String, _>("SELECT /* there */ 2").unwrap(),
        Some(other.clone())
    );
    // A binary prepare is of the rewritten text: its description and
    // its executes.
    let stmt = c.prep("SELECT * FROM t WHERE id = ?").unwrap();
    assert_eq!(stmt.num_columns(), 1);
    let row: Row = c.exec_first(&stmt, (2,)).unwrap().unwrap();
    assert_eq!((row.len(), row.get::<i64, _>(0)), (1, Some(2)));
    // A rewrite past one packet is refused, not sent as the client wrote it.
    let e = server_error(
        c.query_drop(format!("SELECT '{}'", "xxxx".repeat(16 * 1024 + 100)))
            .unwrap_err(),
    );
    assert_eq!((e.0, e.2.contains("query_rules[3].rewrite")), (1153, true));
    assert_eq!(c.query_first::<i64, _>("SELECT 5").unwrap(), Some(5));
    // An execute follows its prepare's rule, though the new text no longer
    // matches it: its hostgroup, not the writer a locking read would take.
    let stmt = c.prep("SELECT /* prep */ ?").unwrap();
    for i in 0..3 {
        let row: (String, i64) = c.exec_first(&stmt, (i,)).unwrap().unwrap();
        assert_eq!(row, (other.clone(), i));
    }
    assert_eq!(env.hits(), [(0, 3), (1, 1), (2, 1), (3, 1), (4, 4)]);
}

/// Under NO_BACKSLASH_ESCAPES a query with a backslash is planned again
/// as the server reads it: the rule that matched its text still bounds it.
#[test]
fn query_rules_timeout_bounds_a_query_read_with_literal_backslashes() {
    let env = env("qr_backslash", REFUSE_DELETE);
    let mut c = env.client("app");
    c.query_drop("SET sql_mode = CONCAT(@@sql_mode, ',NO_BACKSLASH_ESCAPES')")
        .unwrap();
    let started = Instant::now();
    let e = server_error(
        c.query::<Row, _>(r"SELECT /* slow */ SLEEP(5), 'a\b'")
            .unwrap_err(),
    );
    assert_eq!(e.0, 1969, "{e:?}");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        c.query_first::<String, _>(r"SELECT /* slow */ 'a\b'").unwrap(),
        Some(r"a\b".into())
    );
}

/// A `ROLLBACK AND CHAIN` ends a transaction Funnel lost with its backend
/// connection (9008) only if it runs: one a rule refuses ended nothing,
/// and the statements after it must not run in autocommit as if the
/// client had left the transaction.
#[test]
fn query_rules_refused_rollback_and_chain_leaves_a_lost_transaction_lost() {
    let rules = "query_rules:\n  - match_regex: '(?i)AND\\s+CHAIN'\n    error: 'no chains'\n";
    let env = env("qr_lost", rules);
    let mut c = env.client("app");
    lose_transaction(&env, &mut c);
    assert_eq!(
        server_error(c.query_drop("ROLLBACK AND CHAIN").unwrap_err()).0,
        1148
    );
    assert_eq!(
        server_error(c.query_drop("INSERT INTO t VALUES (4, 40)").unwrap_err()).0,
        9008,
        "still in the lost transaction"
    );
    c.query_drop("ROLLBACK").unwrap();
    c.query_drop("INSERT INTO t VALUES (5, 50)").unwrap();
    let ids: Vec<i64> = MariaDb::shared()
        .root()
        .query(format!("SELECT id FROM {}.t ORDER BY id", env.schema))
        .unwrap();
    assert_eq!(ids, [1, 2, 5]);
}

/// A `ROLLBACK AND CHAIN` a rule's `delay` holds back, and a `KILL
/// QUERY` stops there, never ran: the lost transaction stays lost.
#[test]
fn query_rules_delayed_rollback_and_chain_killed_leaves_a_lost_transaction_lost() {
    let rules = "query_rules:\n  - match_regex: '(?i)AND\\s+CHAIN'\n    delay: 5s\n";
    let env = env("qr_lost_delay", rules);
    let mut c = env.client("app");
    lose_transaction(&env, &mut c);
    let id = c.connection_id().to_string();
    let held = std::thread::spawn(move || {
        let r = c.query_drop("ROLLBACK AND CHAIN").map_err(server_error);
        (r, c)
    });
    let mut admin = env.admin();
    env.waiting_row(&mut admin, &id);
    admin.query_drop(format!("KILL QUERY {id}")).unwrap();
    let (r, mut c) = held.join().unwrap();
    assert_eq!(r.unwrap_err().0, 1317);
    assert_still_lost(&env, &mut c);
}

/// A `ROLLBACK AND CHAIN` that gets no connection (the pool paused past
/// `backlog.wait_timeout`) never ran: the lost transaction stays lost.
#[test]
fn lost_transaction_rollback_and_chain_that_got_no_connection_ended_nothing() {
    let env = env("qr_lost_paused", "");
    let mut c = env.client("app");
    lose_transaction(&env, &mut c);
    let mut admin = env.admin();
    admin.query_drop("SET backlog.wait_timeout = 300ms").unwrap();
    admin.query_drop("PAUSE").unwrap();
    let (code, _, message) = server_error(c.query_drop("ROLLBACK AND CHAIN").unwrap_err());
    admin.query_drop("RESUME").unwrap();
    assert_ne!(code, 9008, "{message}");
    assert_still_lost(&env, &mut c);
}

/// Opens a transaction on `c` (inserting id 3) and has the server close
/// its connection mid-statement: Funnel refuses the session's statements
/// with 9008 from then on, until it ends the transaction.
/// The session's transaction is still lost: a write gets ERR 9008 (and
/// does not run), and the client's `ROLLBACK` ends it.
fn assert_still_lost(env: &Env, c: &mut Conn) {
    assert_eq!(
        server_error(c.query_drop("INSERT INTO t VALUES (4, 40)").unwrap_err()).0,
        9008,
        "still in the lost transaction"
    );
    c.query_drop("ROLLBACK").unwrap();
    assert_eq!(env.rows_in_t(), 2);
}

fn lose_transaction(env: &Env, c: &mut Conn) {
    c.query_drop("BEGIN").unwrap();
    c.query_drop("INSERT INTO t VALUES (3, 30)").unwrap();
    let schema = env.schema.clone();
    let killer = std::thread::spawn(move || {
        let db = MariaDb::shared();
        for _ in 0..200 {
            let sleeping = db.query_first::<i64>(&format!(
                "SELECT ID FROM information_schema.processlist \
                 WHERE info = 'SELECT SLEEP(5)' AND db = '{schema}'"
            ));
            if let Some(id) = sleeping {
                db.exec(&format!("KILL CONNECTION {id}"));
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    });
    assert_eq!(server_error(c.query_drop("SELECT SLEEP(5)").unwrap_err()).0, 9007);
    killer.join().unwrap();
}

/// A `ROLLBACK AND CHAIN` that ran ended the lost transaction for good: a
/// statement a rule refuses after it does not bring the lost state back.
#[test]
fn query_rules_refusal_after_a_chain_that_ended_a_lost_transaction_ends_nothing() {
    let rules = "query_rules:\n  - match_prefix: 'SELECT /* no */'\n    error: 'no'\n";
    let env = env("qr_chain", rules);
    let mut c = env.client("app");
    lose_transaction(&env, &mut c);
    c.query_drop("ROLLBACK AND CHAIN").unwrap();
    assert_eq!(
        server_error(c.query_drop("SELECT /* no */ 1").unwrap_err()).0,
        1148
    );
    c.query_drop("INSERT INTO t VALUES (6, 60)").unwrap();
    c.query_drop("COMMIT").unwrap();
    let ids: Vec<i64> = MariaDb::shared()
        .root()
        .query(format!("SELECT id FROM {}.t ORDER BY id", env.schema))
        .unwrap();
    assert_eq!(ids, [1, 2, 6]);
}

/// Runs `steps` on `c`, each as written but for two marks: `!` (the
/// statement a rule refuses, or what stands for it) and a leading `~`
/// (a statement stopped after 300 ms), which `mark` turns into text.
/// Returns what each step answered: its rows, or its error's code and
/// message (any "interrupted" message as one).
fn transcript(c: &mut Conn, steps: &[&str], mark: impl Fn(&str) -> String) -> Vec<String> {
    let mut out = Vec::new();
    for step in steps {
        let sql = mark(step);
        let answer = c.query_iter(&sql).and_then(|mut result| {
            let mut sets = Vec::new();
            while let Some(set) = result.iter() {
                let mut rows = Vec::new();
                for row in set {
                    let values: Vec<String> = row?
                        .unwrap()
                        .into_iter()
                        .map(|v| match v {
                            mysql::Value::Bytes(b) => String::from_utf8_lossy(&b).into_owned(),
                            other => format!("{other:?}"),
                        })
                        .collect();
                    rows.push(values.join("|"));
                }
                sets.push(rows.join("; "));
            }
            Ok(sets.join(" || "))
        });
        let answer = match answer {
            Ok(rows) => rows,
            Err(e) => {
                let (code, _, message) = server_error(e);
                format!("ERR {code} {message}")
            }
        };
        let answer = match answer.find("Query execution was interrupted") {
            Some(at) => format!("{}interrupted", &answer[..at]),
            None => answer,
        };
        out.push(format!("{step} => {answer}"));
    }
    out
}

/// `steps` through Funnel and on a direct connection, where `mark` makes
/// each side's statement of a marked step.
fn both_ways(
    env: &Env,
    steps: &[&str],
    funnel: impl Fn(&str) -> String,
    direct: impl Fn(&str) -> String,
) -> (Vec<String>, Vec<String>) {
    let db = MariaDb::shared();
    let reset = || db.exec(&format!("DELETE FROM {}.t WHERE id > 2", env.schema));
    reset();
    let through = transcript(&mut env.client("app"), steps, funnel);
    reset();
    let mut root = db.root();
    root.query_drop(format!("USE {}", env.schema)).unwrap();
    let direct = transcript(&mut root, steps, direct);
    (through, direct)
}

/// After a refusal every diagnostics read answers as after a statement
/// the server failed with the same error (a `SIGNAL` of it), also after
/// a statement that warned, in a transaction and with session state.
#[test]
fn query_rules_refusal_reads_as_a_statement_the_server_failed() {
    let env = env("qr_refdiag", REFUSE_DELETE);
    let scripts: &[&[&str]] = &[
        &["!", "SHOW WARNINGS", "SELECT @@warning_count, @@error_count"],
        &[
            "!",
            "GET DIAGNOSTICS @n = NUMBER, @r = ROW_COUNT",
            "GET DIAGNOSTICS CONDITION 1 @c = MYSQL_ERRNO, @s = RETURNED_SQLSTATE, @m = MESSAGE_TEXT",
            "SELECT @n, @r, @c, @s, @m",
        ],
        &[
            "INSERT INTO t VALUES (7, 7)",
            "!",
            "SELECT ROW_COUNT()",
            "SHOW WARNINGS",
        ],
        &[
            "BEGIN",
            "INSERT INTO t VALUES (8, 8)",
            "!",
            "SHOW WARNINGS",
            "SELECT ROW_COUNT()",
            "SELECT @@error_count, @@in_transaction",
            "ROLLBACK",
        ],
        &["SELECT 1/0", "!", "SHOW WARNINGS", "SELECT @@warning_count"],
        &["SELECT CAST('x' AS INT)", "!", "SELECT 1", "SHOW WARNINGS"],
        &[
            "SET @x = 1",
            "!",
            "!",
            "SHOW WARNINGS",
            "SELECT ROW_COUNT(), @@error_count",
        ],
        &[
            "SELECT * FROM t",
            "!",
            "SELECT FOUND_ROWS()",
            "DO 0",
            "SHOW WARNINGS",
        ],
    ];
    let signal = "SIGNAL SQLSTATE '42000' SET MYSQL_ERRNO = 1148, \
                  MESSAGE_TEXT = 'DELETE without WHERE is refused'";
    for steps in scripts {
        let (through, direct) = both_ways(
            &env,
            steps,
            |s| s.replace('!', "DELETE FROM t"),
            |s| s.replace('!', signal),
        );
        assert_eq!(through, direct);
    }
    assert_eq!(env.rows_in_t(), 2);
}

/// After a statement a rule's timeout stopped, diagnostics and the
/// transaction read as after the server's own `max_statement_time`
/// (but for the message, which names the rule; and for warnings the
/// statement raised before it was stopped, which are not kept: see
/// docs/configuration.md).
#[test]
fn query_rules_timeout_reads_as_the_servers_max_statement_time() {
    let rules = "query_rules:\n  - match_regex: 'SLOW_ONE'\n    timeout: 300ms\n";
    let env = env("qr_tdiag", rules);
    let scripts: &[&[&str]] = &[
        &[
            "~SELECT SLEEP(2)",
            "SHOW WARNINGS",
            "SELECT @@warning_count, @@error_count",
        ],
        &[
            "~SELECT SLEEP(2)",
            "GET DIAGNOSTICS @n = NUMBER, @r = ROW_COUNT",
            "GET DIAGNOSTICS CONDITION 1 @c = MYSQL_ERRNO, @s = RETURNED_SQLSTATE",
            "SELECT @n, @r, @c, @s",
        ],
        &[
            "INSERT INTO t VALUES (7, 7)",
            "~SELECT SLEEP(2)",
            "SELECT ROW_COUNT()",
        ],
        &[
            "BEGIN",
            "INSERT INTO t VALUES (8, 8)",
            "~INSERT INTO t VALUES (9, SLEEP(2))",
            "SELECT ROW_COUNT(), @@in_transaction",
            "SELECT id FROM t ORDER BY id",
            "ROLLBACK",
        ],
        &[
            "~UPDATE t SET v = v + SLEEP(2) WHERE id = 1",
            "SELECT v FROM t WHERE id = 1",
        ],
    ];
    let bounded = |s: &str, f: &dyn Fn(&str) -> String| match s.strip_prefix('~') {
        Some(statement) => f(statement),
        None => s.to_string(),
    };
    for steps in scripts {
        let (through, direct) = both_ways(
            &env,
            steps,
            |s| bounded(s, &|st| format!("{st} /* SLOW_ONE */")),
            |s| {
                bounded(s, &|st| {
                    format!("SET STATEMENT max_statement_time = 0.3 FOR {st}")
                })
            },
        );
        assert_eq!(through, direct);
    }
}

/// A rule's `KILL QUERY` that reaches the server only after the statement
/// ended (held back here by fault injection) stops nothing else: not the
/// session's next statement on its connection, in or out of a
/// transaction, nor another client's on the one pooled connection.
#[test]
fn query_rules_timeout_kill_landing_after_the_end_stops_nothing_else() {
    std::env::set_var("FUNNEL_FAULT_INJECTION", "1");
    std::env::set_var("FUNNEL_FAULT_KILL_DELAY_MS", "150");
    let db = MariaDb::shared();
    let schema = db.fresh_database("qr_late");
    let backend = format!("{schema}_b");
    db.create_user(&backend, "bpw");
    let rules = "query_rules:\n  - match_prefix: 'SELECT /* slow */'\n    timeout: 300ms\n";
    let yaml = yaml(&schema, &backend, rules)
        .replace("cores: 2", "cores: 1")
        .replace("max_per_core: 2", "max_per_core: 1\n  min_idle_per_core: 0");
    let proxy = funnel_testkit::funnel::start(Config::from_yaml_str(&yaml).unwrap());
    let connect =
        |user: &str| Conn::new(opts(proxy.local_addr().port(), user, &format!("{user}pw"))).unwrap();
    let (mut a, mut b) = (connect("app"), connect("ops"));
    for ms in [305, 315, 325, 335] {
        // Still running at 300 ms, over before the KILL arrives.
        let slow = format!("SELECT /* slow */ SLEEP({ms} / 1000)");
        assert_eq!(a.query_first::<i64, _>(&slow).unwrap(), Some(0));
        assert_eq!(
            a.query_first::<i64, _>("SELECT SLEEP(0.02) + 1").unwrap(),
            Some(1)
        );
        assert_eq!(
            b.query_first::<i64, _>("SELECT SLEEP(0.02) + 2").unwrap(),
            Some(2)
        );
        a.query_drop("BEGIN").unwrap();
        assert_eq!(a.query_first::<i64, _>(&slow).unwrap(), Some(0));
        assert_eq!(
            a.query_first::<i64, _>("SELECT SLEEP(0.02) + 3").unwrap(),
            Some(3)
        );
        a.query_drop("COMMIT").unwrap();
    }
    std::env::remove_var("FUNNEL_FAULT_KILL_DELAY_MS");
}

/// `match_digest` matches the statement's shape as `SHOW DIGESTS` shows
/// it: every literal, spacing and comments alike.
#[test]
fn query_rules_match_a_statement_by_its_shape() {
    let rules = r"query_rules:
  - match_digest: '^DELETE FROM t WHERE id = \?$'
    error: 'deletes by id are paused'
";
    let env = env("qr_digest", rules);
    let mut c = env.client("app");
    for sql in [
        "DELETE FROM t WHERE id = 1",
        "DELETE  FROM t /* c */ WHERE id = 2",
    ] {
        assert_eq!(server_error(c.query_drop(sql).unwrap_err()).0, 1148, "{sql}");
    }
    assert_eq!(env.rows_in_t(), 2);
    c.query_drop("DELETE FROM t WHERE id IN (1)").unwrap();
    assert_eq!(env.rows_in_t(), 1);
    let rows: Vec<Row> = env.admin().query("SHOW QUERY RULES").unwrap();
    let digest: String = rows[0].get("match_digest").unwrap();
    assert_eq!(digest, r"^DELETE FROM t WHERE id = \?$");
    assert_eq!(env.hits(), [(0, 2)]);
}

/// `client_addr` limits a rule to clients from an address or network:
/// routing by where the application runs, as ProxySQL's `client_addr`.
/// The first rule (another network) is passed over for a client on
/// loopback, in text queries and binary prepares alike; the second
/// (loopback's network) applies.
#[test]
fn query_rules_client_addr_matches_where_the_client_connects_from() {
    let rules = "query_rules:\n\
                 \x20 - match_prefix: 'SELECT 42'\n    client_addr: 10.0.0.0/8\n    error: 'from the lan'\n\
                 \x20 - match_prefix: 'SELECT 42'\n    client_addr: 127.0.0.0/8\n    error: 'from loopback'\n";
    let env = env("qr_client_addr", rules);
    let mut c = env.client("app");
    let (code, _, message) = server_error(c.query_drop("SELECT 42").unwrap_err());
    assert_eq!((code, message.as_str()), (1148, "from loopback"));
    let (_, _, message) = server_error(c.prep("SELECT 42, v FROM t").unwrap_err());
    assert_eq!(message, "from loopback");
    assert_eq!(c.query_first::<i64, _>("SELECT 1").unwrap(), Some(1));
    assert_eq!(env.hits(), [(0, 0), (1, 2)]);
    // The rules differ only there: SHOW QUERY RULES says where.
    let rows: Vec<Row> = env.admin().query("SHOW QUERY RULES").unwrap();
    let addrs: Vec<String> = rows.iter().map(|r| r.get("client_addr").unwrap()).collect();
    assert_eq!(addrs, ["10.0.0.0/8", "127.0.0.0/8"]);
}

/// `negate_match` takes the statements the pattern does not match: here a
/// read-only user whose every statement but a `SELECT` is refused.
#[test]
fn query_rules_negate_match_refuses_all_but_what_the_pattern_matches() {
    let rules = "query_rules:\n\
                 \x20 - match_regex: '(?i)^\\s*(SELECT|SET|SHOW)\\b'\n    negate_match: true\n    user: ops\n    error: 'ops may only read'\n";
    let env = env("qr_negate", rules);
    let mut ops = env.client("ops");
    assert_eq!(
        ops.query_first::<i64, _>("SELECT COUNT(*) FROM t").unwrap(),
        Some(2)
    );
    let (code, _, message) = server_error(ops.query_drop("DELETE FROM t").unwrap_err());
    assert_eq!((code, message.as_str()), (1148, "ops may only read"));
    assert_eq!(env.rows_in_t(), 2);
    env.client("app")
        .query_drop("DELETE FROM t WHERE id = 1")
        .unwrap();
    assert_eq!(env.rows_in_t(), 1, "the rule names its user");
    let rows: Vec<Row> = env.admin().query("SHOW QUERY RULES").unwrap();
    let negated: String = rows[0].get("negate_match").unwrap();
    assert_eq!(negated, "1", "SHOW QUERY RULES says the match is negated");
}

const OK_DELAY_PIN: &str = r"query_rules:
  - match_prefix: 'INSERT INTO t /* ignored */'
    ok: 'ignored by Funnel'
  - match_prefix: 'SELECT /* held */'
    delay: 400ms
  - match_prefix: 'INSERT INTO t /* held */'
    delay: 5s
  - match_prefix: 'SELECT /* pin */'
    pin: true
";

/// A rule's `ok` answers the statement without any server running it,
/// and to the client it reads as a statement that succeeded, changed no
/// row and left no warning (as an `UPDATE` of no row does on a direct
/// connection), also after warnings, in a transaction and pinned.
#[test]
fn query_rules_ok_answers_a_statement_no_server_runs() {
    let env = env("qr_ok", OK_DELAY_PIN);
    let ignored = "INSERT INTO t /* ignored */ VALUES (5, 50)";
    let mut c = env.client("app");
    c.query_drop(ignored).unwrap();
    assert_eq!(c.info_str(), "ignored by Funnel");
    assert_eq!(c.affected_rows(), 0);
    assert_eq!(env.rows_in_t(), 2, "nothing ran");
    // A binary prepare gets the server's answer for a statement it cannot
    // prepare, on which connectors send it as a text query.
    let (code, _, message) = server_error(c.prep("INSERT INTO t /* ignored */ VALUES (?, ?)").unwrap_err());
    assert_eq!(code, 1295, "{message}");
    assert!(message.contains("query_rules[0].ok"), "{message}");
    let scripts: &[&[&str]] = &[
        &[
            "SELECT 1/0",
            "!",
            "SHOW WARNINGS",
            "SELECT @@warning_count, ROW_COUNT()",
        ],
        &[
            "INSERT INTO t VALUES (7, 7)",
            "!",
            "SELECT ROW_COUNT(), LAST_INSERT_ID()",
        ],
        &[
            "BEGIN",
            "INSERT INTO t VALUES (8, 8)",
            "!",
            "SELECT @@in_transaction, ROW_COUNT()",
            "ROLLBACK",
            "SELECT COUNT(*) FROM t",
        ],
        &[
            "SELECT GET_LOCK('qr_ok', 0)",
            "SELECT CAST('x' AS INT)",
            "!",
            "SHOW WARNINGS",
            "SELECT ROW_COUNT(), @@warning_count",
            "SELECT RELEASE_LOCK('qr_ok')",
        ],
        &[
            "DELETE FROM no_such_table",
            "!",
            "SHOW ERRORS",
            "SELECT @@error_count",
        ],
        // Pinned where the server answers ROW_COUNT(): Funnel does, once.
        &[
            "SELECT LAST_INSERT_ID(5)",
            "INSERT INTO t VALUES (6, 6)",
            "!",
            "SELECT ROW_COUNT(), LAST_INSERT_ID()",
            "SELECT ROW_COUNT()",
        ],
        &[
            "SET autocommit = 0",
            "INSERT INTO t VALUES (9, 9)",
            "!",
            "SELECT @@in_transaction",
            "ROLLBACK",
            "SET autocommit = 1",
            "SELECT COUNT(*) FROM t",
        ],
    ];
    for steps in scripts {
        let (through, direct) = both_ways(
            &env,
            steps,
            |s| s.replace('!', ignored),
            |s| s.replace('!', "UPDATE t SET v = v WHERE 0"),
        );
        assert_eq!(through, direct);
    }
    assert_eq!(env.rows_in_t(), 2);
    // Hits: the first query, the prepare, one per script.
    assert_eq!(env.hits()[0], (0, 2 + scripts.len() as u64));
}

/// A rule's `delay` holds statements (text and executes) back before they
/// run, holding no connection; a `KILL QUERY` during the wait stops the
/// statement, which never runs.
#[test]
fn query_rules_delay_holds_statements_back_and_a_kill_ends_the_wait() {
    let env = env("qr_delay", OK_DELAY_PIN);
    let mut c = env.client("app");
    let started = Instant::now();
    assert_eq!(c.query_first::<i64, _>("SELECT /* held */ 7").unwrap(), Some(7));
    assert!(
        started.elapsed() >= Duration::from_millis(400),
        "{:?}",
        started.elapsed()
    );
    let stmt = c.prep("SELECT /* held */ ?").unwrap();
    let id = c.connection_id().to_string();
    let execute = std::thread::spawn(move || {
        let started = Instant::now();
        let got = c.exec_first::<i64, _, _>(&stmt, (8,)).unwrap();
        (got, started.elapsed(), c)
    });
    // Held, it shows what it waits to run, as a text query does.
    let row = env.waiting_row(&mut env.admin(), &id);
    let statement: Option<String> = row.get("statement").unwrap();
    assert!(
        statement.as_deref().is_some_and(|s| s.starts_with("SELECT")),
        "{statement:?}"
    );
    let (got, took, mut c) = execute.join().unwrap();
    assert_eq!(got, Some(8));
    assert!(took >= Duration::from_millis(400), "{took:?}");
    // A statement not matched runs at once.
    let started = Instant::now();
    c.query_drop("SELECT 1").unwrap();
    assert!(
        started.elapsed() < Duration::from_millis(400),
        "{:?}",
        started.elapsed()
    );

    let id = c.connection_id();
    let held = std::thread::spawn(move || {
        let started = Instant::now();
        let r = c.query_drop("INSERT INTO t /* held */ VALUES (3, 30)");
        (r.map_err(server_error), started.elapsed(), c)
    });
    let mut admin = env.admin();
    // Waiting, with what it waits to run, and no backend connection in use.
    let row = env.waiting_row(&mut admin, &id.to_string());
    let statement: Option<String> = row.get("statement").unwrap();
    assert!(
        statement
            .as_deref()
            .is_some_and(|s| s.starts_with("INSERT INTO t")),
        "{statement:?}"
    );
    let in_use = MariaDb::shared()
        .query_first::<i64>(&format!(
            "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE USER = '{}' AND COMMAND = 'Query'",
            env.backend
        ))
        .unwrap();
    assert_eq!(in_use, 0, "no backend runs anything for the held statement");
    admin.query_drop(format!("KILL QUERY {id}")).unwrap();
    let (result, took, mut c) = held.join().unwrap();
    assert_eq!(result.unwrap_err().0, 1317);
    assert!(took < Duration::from_secs(4), "the KILL ended the wait: {took:?}");
    assert_eq!(env.rows_in_t(), 2, "the held statement never ran");
    // The session goes on.
    assert_eq!(
        c.query_first::<i64, _>("SELECT COUNT(*) FROM t").unwrap(),
        Some(2)
    );
}

/// A rule's `pin` keeps the client on the connection its statement ran
/// on until the session is reset: state the statement left there that
/// Funnel cannot see (a named lock a stored function took) stays the
/// client's, and no other client gets that connection.
#[test]
fn query_rules_pin_keeps_the_client_on_its_connection() {
    let env = env("qr_pin", OK_DELAY_PIN);
    let db = MariaDb::shared();
    db.exec(&format!(
        "CREATE FUNCTION {}.f_lock() RETURNS INT RETURN GET_LOCK('{}_lock', 0)",
        env.schema, env.schema
    ));
    let mut c = env.client("app");
    let id = c.connection_id().to_string();
    let clients = |admin: &mut Conn| -> Vec<(String, String, Option<String>)> {
        let rows: Vec<Row> = admin.query("SHOW CLIENTS").unwrap();
        rows.iter()
            .map(|r| {
                (
                    r.get("id").unwrap(),
                    r.get("core").unwrap(),
                    r.get("pinned").unwrap(),
                )
            })
            .collect()
    };
    let mut admin = env.admin();
    let mine = |admin: &mut Conn| clients(admin).into_iter().find(|x| x.0 == id).unwrap();
    c.query_drop("SELECT 1").unwrap();
    assert_eq!(mine(&mut admin).2, None);
    let core = mine(&mut admin).1;
    assert_eq!(
        c.query_first::<i64, _>("SELECT /* pin */ f_lock()").unwrap(),
        Some(1)
    );
    assert_eq!(mine(&mut admin).2.as_deref(), Some("query_rule"));

    // Another client on the same core opens a transaction: the pool gives
    // it the connection released last, which would have been this one.
    let mut other = loop {
        let mut o = env.client("ops");
        let oid = o.connection_id().to_string();
        if clients(&mut admin).iter().any(|x| x.0 == oid && x.1 == core) {
            o.query_drop("BEGIN").unwrap();
            o.query_drop("SELECT COUNT(*) FROM t").unwrap();
            break o;
        }
    };
    // The lock is still the client's: its connection is the one that took it.
    let lock = format!("SELECT RELEASE_LOCK('{}_lock')", env.schema);
    assert_eq!(c.query_first::<i64, _>(&lock).unwrap(), Some(1));
    other.query_drop("COMMIT").unwrap();
    // A reset ends the pin, as for any.
    c.reset().unwrap();
    assert_eq!(mine(&mut admin).2, None);
}

/// A rule that pins every statement of one user (`user`, `match_regex:
/// '.'`, `pin: true`) gives each of its clients a backend connection of its
/// own for the session: PgBouncer's session pooling, or ProxySQL's
/// `fast_forward`, for an application whose session state Funnel cannot
/// follow, while the other users stay multiplexed. Without the pin, the
/// other client's transaction takes the connection `ops` ran on last (the
/// pool hands out the one released last), and `ops` moves to another.
#[test]
fn query_rules_pin_of_every_statement_gives_a_user_session_pooling() {
    let rules = "query_rules:\n  - user: ops\n    match_regex: '.'\n    pin: true\n";
    let env = env_on(1, "qr_session", rules);
    // The server's thread id of the connection the statement runs on
    // (`CONNECTION_ID()` answers Funnel's client id).
    let thread = |c: &mut Conn| -> u64 {
        c.query_first("SELECT ID FROM information_schema.PROCESSLIST WHERE INFO LIKE 'SELECT ID %thread%'")
            .unwrap()
            .unwrap()
    };
    let mut ops = env.client("ops");
    let mut app = env.client("app");
    let first = thread(&mut ops);
    for _ in 0..3 {
        app.query_drop("BEGIN").unwrap();
        app.query_drop("SELECT COUNT(*) FROM t").unwrap();
        assert_eq!(thread(&mut ops), first, "ops kept its connection");
        app.query_drop("COMMIT").unwrap();
    }
    let rows: Vec<Row> = env.admin().query("SHOW CLIENTS").unwrap();
    let pinned: Vec<(String, Option<String>)> = rows
        .iter()
        .map(|r| (r.get("user").unwrap(), r.get("pinned").unwrap()))
        .collect();
    assert!(
        pinned.contains(&("ops".into(), Some("query_rule".into()))),
        "{pinned:?}"
    );
    assert!(pinned.contains(&("app".into(), None)), "{pinned:?}");
}

/// A rule's `ok` answers one statement: a multi-statement query it
/// matches gets an ERR naming the rule, and none of its statements runs
/// (one OK for all would tell the client the ones after the first
/// succeeded, which nothing ran).
#[test]
fn query_rules_ok_refuses_a_query_of_several_statements() {
    let env = env("qr_ok_multi", OK_DELAY_PIN);
    let mut c = env.client("app");
    for sql in [
        "INSERT INTO t /* ignored */ VALUES (5, 50); INSERT INTO t VALUES (12, 1)",
        "INSERT INTO t /* ignored */ VALUES (5, 50); COMMIT",
    ] {
        let (code, _, message) = server_error(c.query_drop(sql).unwrap_err());
        assert_eq!(code, 1148, "{message}");
        assert!(message.contains("query_rules[0].ok"), "{message}");
        assert_eq!(env.rows_in_t(), 2, "nothing ran: {sql}");
    }
    // Where a backslash ends no string, the server would read two
    // statements where a backslash escape would make one.
    c.query_drop("SET sql_mode = CONCAT(@@sql_mode, ',NO_BACKSLASH_ESCAPES')")
        .unwrap();
    let sql = r"INSERT INTO t /* ignored */ VALUES (5, 'a'); INSERT INTO t VALUES (12, 1) -- ')";
    let (code, _, message) = server_error(c.query_drop(sql).unwrap_err());
    assert_eq!(code, 1148, "{message}");
    assert_eq!(env.rows_in_t(), 2, "nothing ran: {sql}");
    c.query_drop(r"INSERT INTO t /* ignored */ VALUES (5, 'a')")
        .unwrap();
    assert_eq!(c.info_str(), "ignored by Funnel");
    // One statement, with its closing semicolon, is answered.
    c.query_drop("INSERT INTO t /* ignored */ VALUES (5, 50);")
        .unwrap();
    assert_eq!(c.info_str(), "ignored by Funnel");
    assert_eq!(env.rows_in_t(), 2);
}

/// A rule's `ok` does not answer a statement that would end the open
/// transaction (the client would take it as committed or rolled back
/// while it goes on): it gets an ERR naming the rule, the transaction
/// stays open. Outside a transaction the OK answers.
#[test]
fn query_rules_ok_ends_no_open_transaction() {
    let rules = "query_rules:\n  - match_regex: '(?i)^\\s*(COMMIT|ROLLBACK)\\s*$'\n    ok: 'skipped'\n";
    let env = env("qr_ok_tx", rules);
    let mut c = env.client("app");
    c.query_drop("COMMIT").unwrap();
    assert_eq!(c.info_str(), "skipped");
    c.query_drop("BEGIN").unwrap();
    c.query_drop("INSERT INTO t VALUES (3, 30)").unwrap();
    for sql in ["COMMIT", "ROLLBACK"] {
        let (code, _, message) = server_error(c.query_drop(sql).unwrap_err());
        assert_eq!(code, 1148, "{message}");
        assert!(message.contains("query_rules[0].ok"), "{message}");
        assert_eq!(
            c.query_first::<i64, _>("SELECT @@in_transaction").unwrap(),
            Some(1),
            "{sql}"
        );
    }
    assert_eq!(env.rows_in_t(), 2, "not committed");
    c.query_drop("COMMIT WORK").unwrap();
    assert_eq!(env.rows_in_t(), 3);
    c.query_drop("ROLLBACK").unwrap();
    assert_eq!(c.info_str(), "skipped");
}

/// The same for a prepared `COMMIT` whose execute a rule's `ok`, added
/// by a reload after its prepare, matches: ERR 1148, the transaction
/// stays open.
#[test]
fn query_rules_ok_ends_no_open_transaction_for_an_execute() {
    let env = env("qr_ok_tx_exec", "");
    let mut c = env.client("app");
    let commit = c.prep("COMMIT").unwrap();
    let rules = "query_rules:\n  - match_regex: '(?i)^\\s*COMMIT\\s*$'\n    ok: 'skipped'\n";
    let cfg = Config::from_yaml_str(&yaml(&env.schema, &env.backend, rules)).unwrap();
    env.proxy.handle().reload(cfg).unwrap();
    c.exec_drop(&commit, ()).unwrap();
    assert_eq!(c.info_str(), "skipped");
    c.query_drop("BEGIN").unwrap();
    c.query_drop("INSERT INTO t VALUES (3, 30)").unwrap();
    let (code, _, message) = server_error(c.exec_drop(&commit, ()).unwrap_err());
    assert_eq!(code, 1148, "{message}");
    assert_eq!(
        c.query_first::<i64, _>("SELECT @@in_transaction").unwrap(),
        Some(1)
    );
    assert_eq!(env.rows_in_t(), 2, "not committed");
    c.query_drop("COMMIT WORK").unwrap();
    assert_eq!(env.rows_in_t(), 3);
}

/// A client that leaves during a rule's `delay` (its read timed out, and
/// it may send the statement again elsewhere) ends the wait: the held
/// statement never runs.
#[test]
fn query_rules_delay_ends_when_the_client_leaves() {
    let env = env("qr_delay_gone", OK_DELAY_PIN);
    let port = env.proxy.local_addr().port();
    let started = Instant::now();
    {
        let mut c =
            Conn::new(opts(port, "app", "apppw").read_timeout(Some(Duration::from_millis(500)))).unwrap();
        c.query_drop("INSERT INTO t /* held */ VALUES (3, 30)")
            .unwrap_err();
    }
    // Past the 5 s delay (from the client's start).
    std::thread::sleep(Duration::from_secs(6).saturating_sub(started.elapsed()));
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(env.rows_in_t(), 2, "the statement of a client gone never ran");
}

/// `SHOW QUERY RULES` tells a rule that answers with an empty OK from
/// one that does not answer: its `ok` is empty, the other's NULL.
#[test]
fn query_rules_show_an_empty_ok_apart_from_none() {
    let env = env(
        "qr_ok_empty",
        "query_rules:\n  - match_prefix: 'SET sql_log_bin'\n    ok: ''\n  - match_prefix: 'SELECT /* pin */'\n    pin: true\n",
    );
    let mut c = env.client("app");
    c.query_drop("SET sql_log_bin = 0").unwrap();
    assert_eq!(c.info_str(), "");
    let rows: Vec<Row> = env.admin().query("SHOW QUERY RULES").unwrap();
    let ok: Vec<Option<String>> = rows.iter().map(|r| r.get("ok").unwrap()).collect();
    assert_eq!(ok, [Some(String::new()), None]);
    let pin: Vec<String> = rows.iter().map(|r| r.get("pin").unwrap()).collect();
    assert_eq!(pin, ["0", "1"]);
}

/// The OK of a rule's `ok` carries the session's lasting status flags
/// (a transaction, autocommit) and none the server set for the statement
/// before it on a held connection (no index used, a slow query), as a
/// server's OK for a statement of its own would: PHP's
/// `MYSQLI_REPORT_INDEX` turns "no index used" into an exception.
#[test]
fn query_rules_ok_carries_no_status_of_the_statement_before() {
    use funnel_testkit::mini_client::{MiniClient, QueryResult};
    let env = env("qr_ok_status", OK_DELAY_PIN);
    let mut c = MiniClient::connect(env.proxy.local_addr(), "app", "apppw", Some(&env.schema)).unwrap();
    let status = |r: QueryResult| match r {
        QueryResult::Ok(ok) => ok.status.0,
        other => panic!("expected an OK, got {other:?}"),
    };
    c.query("BEGIN").unwrap();
    // A full scan: the server says no index was used.
    let scan = status(c.query("UPDATE t SET v = v + 1").unwrap());
    assert_ne!(scan & 0x20, 0, "{scan:#x}");
    let ok = status(c.query("INSERT INTO t /* ignored */ VALUES (5, 50)").unwrap());
    assert_eq!(
        ok & !0x0001 & !0x0002,
        0,
        "only in a transaction, autocommit: {ok:#x}"
    );
    assert_ne!(ok & 0x0001, 0, "in a transaction: {ok:#x}");
    c.query("ROLLBACK").unwrap();
}

/// A client whose last statement warned keeps its connection a moment
/// for its `SHOW WARNINGS`; a rule's `delay` lets it go rather than hold
/// it from other clients for the whole wait.
#[test]
fn query_rules_delay_holds_no_connection_kept_for_warnings() {
    let rules = "query_rules:\n  - match_prefix: 'SELECT /* held long */'\n    delay: 5s\n";
    let env = env("qr_delay_linger", rules);
    let mut c = env.client("app");
    let id = c.connection_id().to_string();
    c.query_drop("SELECT 1/0").unwrap();
    let held = std::thread::spawn(move || {
        let r = c.query_drop("SELECT /* held long */ 1").map_err(server_error);
        (r, c)
    });
    let mut admin = env.admin();
    env.waiting_row(&mut admin, &id);
    let pools: Vec<Row> = admin.query("SHOW POOLS").unwrap();
    let leased: u64 = pools
        .iter()
        .map(|r| r.get::<String, _>("leased").unwrap().parse::<u64>().unwrap())
        .sum();
    admin.query_drop(format!("KILL QUERY {id}")).unwrap();
    let (r, _c) = held.join().unwrap();
    assert_eq!(r.unwrap_err().0, 1317);
    assert_eq!(leased, 0, "{pools:?}");
}
