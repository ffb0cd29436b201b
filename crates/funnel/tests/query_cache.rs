//! Query rules with `cache_ttl`: a read they match is answered from the
//! core's query cache for that long after a server answered it, as the
//! server answered it, to every session whose reply would be the same
//! bytes, and to no other.

use std::time::Duration;

use funnel_config::Config;
use funnel_engine::Proxy;
use funnel_testkit::client_opts as opts;
use funnel_testkit::MariaDb;
use mysql::prelude::Queryable;
use mysql::{Conn, Row};

struct Env {
    proxy: Proxy,
    listeners: funnel_admin::Listeners,
    schema: String,
    yaml: String,
}

fn env(prefix: &str) -> Env {
    env_sized(prefix, "2KiB")
}

/// An [`env`] that keeps replies of up to `max_result_size`.
fn env_sized(prefix: &str, max_result_size: &str) -> Env {
    let db = MariaDb::shared();
    let schema = db.fresh_database(prefix);
    let backend = format!("{schema}_b");
    db.create_user(&backend, "bpw");
    db.exec(&format!("CREATE TABLE {schema}.t (id INT PRIMARY KEY, v INT)"));
    db.exec(&format!("INSERT INTO {schema}.t VALUES (1, 10), (2, 20)"));
    let yaml = format!(
        "listen: 127.0.0.1:0\ncores: 1\n\
         users:\n  - name: app\n    password: apppw\n    default_schema: {schema}\n\
         \x20 - name: ops\n    password: opspw\n    default_schema: {schema}\n\
         backends:\n  - name: primary\n    address: {}\n    user: {backend}\n    password: bpw\n\
         pool:\n  max_per_core: 2\n\
         query_cache:\n  max_result_size: {max_result_size}\n\
         query_rules:\n  - match_prefix: 'SELECT /* cached */'\n    cache_ttl: 2s\n\
         admin:\n  listen: 127.0.0.1:0\n  user: admin\n  password: secret\n",
        db.addr()
    );
    let cfg = Config::from_yaml_str(&yaml).unwrap();
    let proxy = funnel_testkit::funnel::start(cfg.clone());
    let listeners = funnel_admin::start(&cfg, proxy.handle(), None).unwrap();
    Env {
        proxy,
        listeners,
        schema,
        yaml,
    }
}

impl Env {
    fn client(&self, user: &str) -> Conn {
        Conn::new(opts(self.proxy.local_addr().port(), user, &format!("{user}pw"))).unwrap()
    }

    fn admin(&self) -> Conn {
        let port = self.listeners.admin.as_ref().unwrap().local_addr().port();
        Conn::new(opts(port, "admin", "secret")).unwrap()
    }

    /// Sets `t.v` of row 1 on the server, behind Funnel's back.
    fn set_v(&self, v: i64) {
        MariaDb::shared().exec(&format!("UPDATE {}.t SET v = {v} WHERE id = 1", self.schema));
    }

    /// (hits, misses) over the cores.
    fn lookups(&self) -> (u64, u64) {
        let snaps = self.proxy.snapshots();
        (
            snaps.iter().map(|s| s.counters.query_cache_hits).sum(),
            snaps.iter().map(|s| s.counters.query_cache_misses).sum(),
        )
    }
}

const READ: &str = "SELECT /* cached */ v FROM t WHERE id = 1";

fn read(c: &mut Conn) -> i64 {
    c.query_first(READ).unwrap().unwrap()
}

#[test]
fn query_cache_answers_a_matching_read_until_its_ttl() {
    let env = env("qc_ttl");
    let mut c = env.client("app");
    assert_eq!(read(&mut c), 10);
    env.set_v(11);
    // Within the TTL, the reply the server gave, to this session and to
    // another of the same user, settings and schema.
    assert_eq!(read(&mut c), 10);
    assert_eq!(read(&mut env.client("app")), 10);
    assert_eq!(env.lookups(), (2, 1));
    let (entries, bytes) = env.proxy.snapshots()[0].query_cache;
    assert_eq!(entries, 1);
    assert!(bytes > 0 && bytes < 2048, "{bytes}");
    // The session notes it as the read it stands for.
    assert_eq!(c.query_first::<i64, _>("SELECT FOUND_ROWS()").unwrap(), Some(1));
    assert_eq!(read(&mut c), 10);
    assert_eq!(c.query_first::<i64, _>("SELECT ROW_COUNT()").unwrap(), Some(-1));
    // After warnings the read is answered from the cache too, and the
    // session's SHOW WARNINGS after it is empty, as directly.
    c.query_drop("SELECT 1/0").unwrap();
    assert_eq!(read(&mut c), 10);
    let warnings: Vec<Row> = c.query("SHOW WARNINGS").unwrap();
    assert!(
        warnings.is_empty(),
        "the read cleared the diagnostics area: {warnings:?}"
    );
    env.set_v(12);
    // A text the rule does not match is not cached.
    assert_eq!(
        c.query_first::<i64, _>("SELECT v FROM t WHERE id = 1").unwrap(),
        Some(12)
    );
    // Past the TTL the server answers again.
    std::thread::sleep(Duration::from_millis(2200));
    assert_eq!(read(&mut c), 12);
}

#[test]
fn query_cache_keeps_apart_what_would_answer_otherwise() {
    let env = env("qc_keys");
    let mut c = env.client("app");
    assert_eq!(read(&mut c), 10);
    env.set_v(11);
    // Another user (grants), another schema, other session settings, a
    // transaction, autocommit off: the server answers.
    assert_eq!(read(&mut env.client("ops")), 11);
    let mut other = env.client("app");
    other.query_drop("SET time_zone = '+01:00'").unwrap();
    assert_eq!(read(&mut other), 11);
    other.query_drop("SET time_zone = DEFAULT").unwrap();
    other.query_drop("BEGIN").unwrap();
    assert_eq!(read(&mut other), 11);
    other.query_drop("COMMIT").unwrap();
    other.query_drop("SET autocommit = 0").unwrap();
    assert_eq!(read(&mut other), 11);
    other.query_drop("SET autocommit = 1").unwrap();
    let mut elsewhere = env.client("app");
    elsewhere
        .query_drop(format!("CREATE DATABASE IF NOT EXISTS {}_x", env.schema))
        .unwrap();
    elsewhere.query_drop(format!("USE {}_x", env.schema)).unwrap();
    elsewhere
        .query_drop(format!("CREATE TABLE t AS SELECT * FROM {}.t", env.schema))
        .unwrap();
    assert_eq!(read(&mut elsewhere), 11);
    // The first session still has the reply it was given.
    assert_eq!(read(&mut c), 10);
}

#[test]
fn query_cache_keeps_only_clean_replies_within_the_size_limit() {
    let env = env("qc_clean");
    let mut c = env.client("app");
    // An error, a warning, a reply over max_result_size: each time from
    // the server.
    for _ in 0..2 {
        let e = c.query_drop("SELECT /* cached */ nosuch FROM t").unwrap_err();
        assert!(e.to_string().contains("1054"), "{e}");
        c.query_drop("SELECT /* cached */ 1/0").unwrap();
        let warnings: Vec<Row> = c.query("SHOW WARNINGS").unwrap();
        assert_eq!(warnings.len(), 1, "the division's warning, from the server");
    }
    let big = "SELECT /* cached */ REPEAT('x', 5000), v FROM t WHERE id = 1";
    assert_eq!(c.query_first::<(String, i64), _>(big).unwrap().unwrap().1, 10);
    env.set_v(11);
    assert_eq!(c.query_first::<(String, i64), _>(big).unwrap().unwrap().1, 11);
    assert_eq!(env.lookups().0, 0, "nothing was answered from the cache");
}

#[test]
fn query_cache_memory_is_set_live_and_a_lower_bound_drops_entries() {
    let env = env("qc_set");
    let mut c = env.client("app");
    for id in 1..=2 {
        let sql = format!("SELECT /* cached */ v, REPEAT('x', 300) FROM t WHERE id = {id}");
        c.query_drop(&sql).unwrap();
    }
    c.query_drop("SELECT /* cached */ 3, REPEAT('y', 300)").unwrap();
    let (entries, bytes) = env.proxy.snapshots()[0].query_cache;
    assert!(entries == 3 && bytes > 1024, "{entries} entries, {bytes} bytes");
    let mut admin = env.admin();
    admin
        .query_drop("SET query_cache.max_result_size = 1KiB")
        .unwrap();
    admin
        .query_drop("SET query_cache.max_memory_per_core = 1KiB")
        .unwrap();
    let (entries, bytes) = env.proxy.snapshots()[0].query_cache;
    assert!(entries < 3 && bytes <= 1024, "{entries} entries, {bytes} bytes");
    let e = admin
        .query_drop("SET query_cache.max_result_size = 2KiB")
        .unwrap_err();
    assert!(e.to_string().contains("max_result_size"), "{e}");
}

#[test]
fn query_cache_leaves_to_the_server_a_read_of_warnings_it_would_keep() {
    let env = env("qc_diag");
    // A read that opens no table leaves the diagnostics area as the
    // statement before it left it, and `@@warning_count` in it reads that.
    // (`UPPER()` makes it more than a diagnostics statement, which Funnel
    // sends to the connection holding the area.)
    let counts = "SELECT /* cached */ @@warning_count, @@error_count, UPPER('a') = 'A'";
    let mut clean = env.client("app");
    let first: (i64, i64, i64) = clean.query_first(counts).unwrap().unwrap();
    assert_eq!(first, (0, 0, 1));
    let mut c = env.client("app");
    c.query_drop("SELECT 1/0").unwrap();
    let after_warning: (i64, i64, i64) = c.query_first(counts).unwrap().unwrap();
    assert_eq!(after_warning, (1, 0, 1), "the division's warning, as directly");
    c.query_drop("SELECT nosuch").unwrap_err();
    let after_error: (i64, i64, i64) = c.query_first(counts).unwrap().unwrap();
    assert_eq!(after_error, (1, 1, 1), "the error, as directly");
    // A session with a clean area still shares the reply.
    assert_eq!(
        clean.query_first::<(i64, i64, i64), _>(counts).unwrap().unwrap(),
        first
    );
    assert_eq!(env.lookups().0, 1);
    // A `FROM` that names no table (`TRIM(... FROM ...)`) leaves the area
    // alone too.
    let trimmed = "SELECT /* cached */ @@warning_count, TRIM(LEADING 'x' FROM 'xa')";
    let first: (i64, String) = clean.query_first(trimmed).unwrap().unwrap();
    assert_eq!(first, (0, "a".to_string()));
    c.query_drop("SELECT 1/0").unwrap();
    let after_warning: (i64, String) = c.query_first(trimmed).unwrap().unwrap();
    assert_eq!(
        after_warning,
        (1, "a".to_string()),
        "the division's warning, as directly"
    );
}

#[test]
fn query_cache_forgets_its_replies_when_a_reload_changes_the_rules() {
    let mut env = env("qc_reload");
    let mut c = env.client("app");
    assert_eq!(read(&mut c), 10);
    env.set_v(11);
    assert_eq!(read(&mut c), 10);
    // The rule now keeps replies for a millisecond (it might as well route
    // elsewhere, or another user's hostgroup change): a reply kept under
    // the old rule is no answer of the new one.
    let yaml = env.yaml.replace("cache_ttl: 2s", "cache_ttl: 1ms");
    env.proxy.reload(Config::from_yaml_str(&yaml).unwrap()).unwrap();
    assert_eq!(read(&mut c), 11);
}

/// Two rules cache the same text for clients of two addresses
/// (`client_addr`), for 60 s and for 1 ms: a reply the first kept is no
/// answer for the clients of the second, which would otherwise get it for
/// a minute (the same text, user, schema and settings made the same key).
#[test]
fn query_cache_keeps_the_replies_of_each_rule_apart() {
    let mut env = env("qc_client_addr");
    let rules = "query_rules:\n  - match_prefix: 'SELECT /* cached */'\n    client_addr: 127.0.0.2\n    cache_ttl: 60s\n\
                 \x20 - match_prefix: 'SELECT /* cached */'\n    cache_ttl: 1ms\n";
    let yaml = env.yaml.replace(
        "query_rules:\n  - match_prefix: 'SELECT /* cached */'\n    cache_ttl: 2s\n",
        rules,
    );
    assert_ne!(yaml, env.yaml);
    env.proxy.reload(Config::from_yaml_str(&yaml).unwrap()).unwrap();
    let port = env.proxy.local_addr().port();
    let from_2 =
        opts(port, "app", "apppw").bind_address(Some(std::net::SocketAddr::from(([127, 0, 0, 2], 0))));
    let mut lan = Conn::new(from_2).unwrap();
    assert_eq!(read(&mut lan), 10);
    env.set_v(11);
    assert_eq!(read(&mut lan), 10, "60 s for 127.0.0.2");
    std::thread::sleep(Duration::from_millis(20));
    assert_eq!(read(&mut env.client("app")), 11, "1 ms for 127.0.0.1");
}

#[test]
fn query_cache_keeps_no_reply_that_read_another_clients_warnings() {
    let env = env("qc_foreign");
    let counts = "SELECT /* cached */ @@warning_count, @@error_count, UPPER('a') = 'A'";
    // A client leaves a warning on its connection and goes.
    let mut x = env.client("app");
    x.query_drop("SELECT 1/0").unwrap();
    drop(x);
    // The next read of the counts on that connection leaves the area
    // alone: what it reads is not what a session of its own would read.
    let mut y = env.client("app");
    let _: (i64, i64, i64) = y.query_first(counts).unwrap().unwrap();
    // Once a read that opens a table cleared the area, the counts are 0,
    // as for any fresh session, and no kept reply says otherwise.
    assert_eq!(
        y.query_first::<i64, _>("SELECT v FROM t WHERE id = 1").unwrap(),
        Some(10)
    );
    let mut z = env.client("app");
    let got: (i64, i64, i64) = z.query_first(counts).unwrap().unwrap();
    assert_eq!(got, (0, 0, 1), "another client's warning, from the cache");
}

#[test]
fn query_cache_gives_large_replies_whole_to_compressing_clients_and_others() {
    let env = env_sized("qc_large", "1MiB");
    // Rows over 64 KiB, which the relay streams in pieces.
    let big = "SELECT /* cached */ REPEAT('x', 300000), v, REPEAT('y', 70000) FROM t WHERE id = 1 UNION ALL SELECT REPEAT('z', 200000), 7, 'w'";
    let want = |v: i64| {
        vec![
            ("x".repeat(300000), v, "y".repeat(70000)),
            ("z".repeat(200000), 7, "w".to_string()),
        ]
    };
    let port = env.proxy.local_addr().port();
    let mut plain = Conn::new(opts(port, "app", "apppw")).unwrap();
    let compressing =
        || Conn::new(opts(port, "app", "apppw").compress(Some(mysql::Compression::default()))).unwrap();
    let mut packed = compressing();
    let rows = |c: &mut Conn| -> Vec<(String, i64, String)> { c.query(big).unwrap() };
    // (Compared with `assert!`: a failure would print megabytes.)
    assert!(rows(&mut plain) == want(10));
    assert!(rows(&mut packed) == want(10));
    env.set_v(11);
    for _ in 0..2 {
        assert!(rows(&mut plain) == want(10));
        assert!(rows(&mut packed) == want(10));
        assert!(rows(&mut compressing()) == want(10));
    }
    let (hits, misses) = env.lookups();
    assert_eq!(
        misses, 2,
        "one for each set of client capabilities (compressing or not)"
    );
    assert_eq!(hits, 6);
}

#[test]
fn query_cache_gives_no_reply_of_another_session_state() {
    let env = env("qc_state");
    let mut c = env.client("app");
    assert_eq!(read(&mut c), 10);
    env.set_v(11);
    // A temporary table of the same name shadows `t`.
    let mut tmp = env.client("app");
    tmp.query_drop("CREATE TEMPORARY TABLE t (id INT, v INT)")
        .unwrap();
    tmp.query_drop("INSERT INTO t VALUES (1, 99)").unwrap();
    assert_eq!(read(&mut tmp), 99);
    // Other character sets, quoting and escaping rules.
    let mut latin = env.client("app");
    latin.query_drop("SET NAMES latin1").unwrap();
    let text = "SELECT /* cached */ CONCAT(v, _utf8mb4 X'C3A9') FROM t WHERE id = 1";
    let bytes = |c: &mut Conn| -> Vec<u8> { c.query_first(text).unwrap().unwrap() };
    assert_eq!(bytes(&mut c), "11é".as_bytes());
    assert_eq!(bytes(&mut latin), b"11\xe9");
    let quoted = "SELECT /* cached */ \"v\" FROM t WHERE id = 1";
    assert_eq!(c.query_first::<String, _>(quoted).unwrap().unwrap(), "v");
    let mut ansi = env.client("app");
    ansi.query_drop("SET sql_mode = 'ANSI_QUOTES'").unwrap();
    assert_eq!(ansi.query_first::<String, _>(quoted).unwrap().unwrap(), "11");
    let escaped = "SELECT /* cached */ 'a\\\\b', v FROM t WHERE id = 1";
    assert_eq!(
        c.query_first::<(String, i64), _>(escaped).unwrap().unwrap().0,
        "a\\b"
    );
    let mut raw = env.client("app");
    raw.query_drop("SET sql_mode = 'NO_BACKSLASH_ESCAPES'").unwrap();
    assert_eq!(
        raw.query_first::<(String, i64), _>(escaped).unwrap().unwrap().0,
        "a\\\\b"
    );
    // Each session's own id; a locking read each time from the server.
    let id = "SELECT /* cached */ CONNECTION_ID() + 0 * v FROM t WHERE id = 1";
    let ids: Vec<u32> = [&mut c, &mut latin]
        .into_iter()
        .map(|s| s.query_first(id).unwrap().unwrap())
        .collect();
    assert_eq!(ids, vec![c.connection_id(), latin.connection_id()]);
    let locking = "SELECT /* cached */ v FROM t WHERE id = 1 LOCK IN SHARE MODE";
    assert_eq!(c.query_first::<i64, _>(locking).unwrap(), Some(11));
    env.set_v(12);
    assert_eq!(c.query_first::<i64, _>(locking).unwrap(), Some(12));
}

#[test]
fn query_cache_keeps_no_reply_of_a_read_that_began_before_a_reload() {
    let mut env = env("qc_reload_race");
    let slow = "SELECT /* cached */ SLEEP(1) + v FROM t WHERE id = 1";
    let port = env.proxy.local_addr().port();
    let reader = std::thread::spawn(move || {
        let mut c = Conn::new(opts(port, "app", "apppw")).unwrap();
        c.query_first::<i64, _>(slow).unwrap().unwrap()
    });
    // While it runs, the rule changes: its reply, once there, answers
    // for the old rule.
    std::thread::sleep(Duration::from_millis(300));
    let yaml = env.yaml.replace("cache_ttl: 2s", "cache_ttl: 1ms");
    env.proxy.reload(Config::from_yaml_str(&yaml).unwrap()).unwrap();
    assert_eq!(reader.join().unwrap(), 10);
    env.set_v(11);
    let mut c = env.client("app");
    assert_eq!(c.query_first::<i64, _>(slow).unwrap(), Some(11));
}

/// As a read running on the server: one held by its rule's `delay` while
/// a reload changes the rules, looked up in the cache only once the
/// delay is over, keeps no reply under the old rule's key and TTL.
#[test]
fn query_cache_keeps_no_reply_of_a_read_held_back_across_a_reload() {
    let mut env = env("qc_reload_delay");
    let held = env.yaml.replace("cache_ttl: 2s", "cache_ttl: 2s\n    delay: 1s");
    env.proxy.reload(Config::from_yaml_str(&held).unwrap()).unwrap();
    let port = env.proxy.local_addr().port();
    let reader = std::thread::spawn(move || {
        let mut c = Conn::new(opts(port, "app", "apppw")).unwrap();
        read(&mut c)
    });
    std::thread::sleep(Duration::from_millis(300));
    let yaml = env.yaml.replace("cache_ttl: 2s", "cache_ttl: 1ms");
    env.proxy.reload(Config::from_yaml_str(&yaml).unwrap()).unwrap();
    assert_eq!(reader.join().unwrap(), 10);
    env.set_v(11);
    std::thread::sleep(Duration::from_millis(10));
    let mut c = env.client("app");
    assert_eq!(
        read(&mut c),
        11,
        "no reply kept for 2s by the rule the reload replaced"
    );
}

#[test]
fn query_cache_of_each_core_answers_its_sessions_and_a_reload_empties_all() {
    let mut env = env("qc_cores");
    env.yaml = env.yaml.replace("cores: 1", "cores: 2");
    env.proxy = funnel_testkit::funnel::start(Config::from_yaml_str(&env.yaml).unwrap());
    let mut clients: Vec<Conn> = (0..6).map(|_| env.client("app")).collect();
    for c in &mut clients {
        assert_eq!(read(c), 10);
    }
    env.set_v(11);
    for c in &mut clients {
        assert_eq!(read(c), 10);
    }
    let (hits, misses) = env.lookups();
    assert!(
        (1..=2).contains(&misses) && hits + misses == 12,
        "{hits} hits, {misses} misses"
    );
    // A smaller memory bound that the entries fit keeps them.
    let smaller = env.yaml.replace(
        "max_result_size: 2KiB",
        "max_result_size: 1KiB\n  max_memory_per_core: 4KiB",
    );
    env.proxy
        .reload(Config::from_yaml_str(&smaller).unwrap())
        .unwrap();
    for c in &mut clients {
        assert_eq!(read(c), 10);
    }
    // Other rules: every core forgets.
    let other = smaller.replace("cache_ttl: 2s", "cache_ttl: 3s");
    env.proxy.reload(Config::from_yaml_str(&other).unwrap()).unwrap();
    for c in &mut clients {
        assert_eq!(read(c), 11);
    }
}

#[test]
fn query_cache_gives_no_reply_where_a_read_opens_a_transaction() {
    // The server starts every connection of a plain user in a transaction
    // mode (autocommit off by `init_connect`), which no SET of the client
    // shows: a read opens a transaction there.
    let db = MariaDb::builder()
        .server_arg("--init-connect=SET autocommit=0")
        .start()
        .unwrap_or_else(|e| panic!("{e}"));
    // Without SUPER (or READ_ONLY ADMIN... none of ALL ON *.*): the server
    // runs `init_connect` for it.
    db.exec("CREATE USER qb@'%' IDENTIFIED BY 'bpw'");
    db.exec("GRANT SELECT, PROCESS, SLAVE MONITOR ON *.* TO qb@'%'");
    db.create_database("qc");
    db.exec("CREATE TABLE qc.t (id INT PRIMARY KEY, v INT)");
    db.exec("INSERT INTO qc.t VALUES (1, 10)");
    let proxy = private_funnel(&db, "5s");
    let client = || Conn::new(opts(proxy.local_addr().port(), "app", "apppw")).unwrap();
    let in_transaction = |c: &mut Conn| {
        c.query_first::<i64, _>("SELECT @@in_transaction")
            .unwrap()
            .unwrap()
    };
    let mut first = client();
    assert_eq!(read(&mut first), 10);
    assert_eq!(in_transaction(&mut first), 1, "as directly");
    // Another session's read opens its own transaction, as directly.
    let mut second = client();
    assert_eq!(read(&mut second), 10);
    assert_eq!(in_transaction(&mut second), 1, "the read opened a transaction");
}

#[test]
fn query_cache_answers_while_the_server_is_down_until_the_ttl_ends() {
    let db = MariaDb::builder().start().unwrap_or_else(|e| panic!("{e}"));
    db.create_user("qb", "bpw");
    db.create_database("qc");
    db.exec("CREATE TABLE qc.t (id INT PRIMARY KEY, v INT)");
    db.exec("INSERT INTO qc.t VALUES (1, 10)");
    let proxy = private_funnel(&db, "1s");
    let mut c = Conn::new(opts(proxy.local_addr().port(), "app", "apppw")).unwrap();
    assert_eq!(read(&mut c), 10);
    db.stop();
    // As documented: no server is asked within the TTL.
    assert_eq!(read(&mut c), 10);
    std::thread::sleep(Duration::from_millis(1100));
    assert!(
        c.query_first::<i64, _>(READ).is_err(),
        "past the TTL, the server's absence shows"
    );
}

/// A Funnel (one core) in front of a private server `db` that has schema
/// `qc` and account `qb`, caching `SELECT /* cached */` reads for `ttl`.
fn private_funnel(db: &MariaDb, ttl: &str) -> Proxy {
    let yaml = format!(
        "listen: 127.0.0.1:0\ncores: 1\n\
         users:\n  - name: app\n    password: apppw\n    default_schema: qc\n\
         backends:\n  - name: primary\n    address: {}\n    user: qb\n    password: bpw\n\
         query_rules:\n  - match_prefix: 'SELECT /* cached */'\n    cache_ttl: {ttl}\n",
        db.addr()
    );
    funnel_testkit::funnel::start(Config::from_yaml_str(&yaml).unwrap())
}
