//! User variables through Funnel: tracked and replayed, so clients that set
//! and read them keep sharing a small pool, while the forms Funnel cannot
//! track still pin, and so do those it cannot see at all (a trigger or a
//! stored function), by the server's own state-change report. (Value and
//! type fidelity against a direct connection is in session.rs.)

use std::thread;

use funnel_config::Config;
use funnel_engine::Proxy;
use funnel_protocol::tracker::Expect;
use funnel_protocol::Capabilities;
use funnel_testkit::client_opts as opts;
use funnel_testkit::mini_client::MiniClient;
use funnel_testkit::MariaDb;
use mysql::prelude::Queryable;
use mysql::Conn;

struct Env {
    proxy: Proxy,
    listeners: funnel_admin::Listeners,
    /// The clients' default schema.
    schema: String,
}

fn env(prefix: &str, pool: usize) -> Env {
    env_with(prefix, pool, "")
}

/// [`env`] with more `pool:` settings (each a line, two spaces in).
fn env_with(prefix: &str, pool: usize, pool_extra: &str) -> Env {
    env_on(MariaDb::shared(), prefix, pool, pool_extra)
}

/// [`env_with`] in front of `db`.
fn env_on(db: &MariaDb, prefix: &str, pool: usize, pool_extra: &str) -> Env {
    let schema = db.fresh_database(prefix);
    let backend = format!("{schema}_b");
    db.create_user(&backend, "bpw");
    let yaml = format!(
        "listen: 127.0.0.1:0\ncores: 1\n\
         users:\n  - name: app\n    password: apppw\n    default_schema: {schema}\n\
         \x20 - name: other\n    password: opw\n    default_schema: {schema}\n\
         backends:\n  - name: primary\n    address: {}\n    user: {backend}\n    password: bpw\n\
         pool:\n  max_per_core: {pool}\n  min_idle_per_core: 1\n{pool_extra}backlog:\n  wait_timeout: 5s\n\
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
    }
}

/// A schema for direct connections beside `e`'s, both with
/// [`create_hidden_writers`]. Its name has the length of `e`'s: column
/// definitions name the schema, and same-length names are masked alike.
fn direct_twin(db: &MariaDb, e: &Env, prefix: &str) -> String {
    let direct_schema = loop {
        let name = db.fresh_database(prefix);
        if name.len() == e.schema.len() {
            break name;
        }
    };
    create_hidden_writers(db, &e.schema);
    create_hidden_writers(db, &direct_schema);
    direct_schema
}

/// A table whose trigger sets `@trig`, and a function that sets `@fx`, in `schema`.
fn create_hidden_writers(db: &MariaDb, schema: &str) {
    for sql in [
        "CREATE TABLE log (id INT)",
        "CREATE TRIGGER trg BEFORE INSERT ON log FOR EACH ROW SET @trig = NEW.id",
        "CREATE FUNCTION f_uv() RETURNS INT DETERMINISTIC BEGIN SET @fx = 7; RETURN 1; END",
    ] {
        db.exec(&format!("USE `{schema}`; {sql}"));
    }
}

impl Env {
    fn client(&self) -> Conn {
        Conn::new(opts(self.proxy.local_addr().port(), "app", "apppw")).unwrap()
    }

    fn admin(&self) -> Conn {
        let port = self.listeners.admin.as_ref().unwrap().local_addr().port();
        Conn::new(opts(port, "admin", "secret")).unwrap()
    }

    /// The pin reasons of the connected clients (`None`: not pinned).
    fn pins(&self) -> Vec<Option<String>> {
        let rows: Vec<mysql::Row> = self.admin().query("SHOW CLIENTS").unwrap();
        rows.iter().map(|r| r.get("pinned").unwrap()).collect()
    }

    /// The server's ids of Funnel's backend connections on `db`.
    fn backend_threads(&self, db: &MariaDb) -> Vec<i64> {
        let sql = format!(
            "SELECT ID FROM information_schema.PROCESSLIST WHERE USER = '{}_b' ORDER BY ID",
            self.schema
        );
        db.root().query(sql).unwrap()
    }

    /// How many clients were pinned for `reason` since the start.
    fn pinned_since_start(&self, reason: &str) -> u64 {
        let rows: Vec<(String, String, String)> = self.admin().query("SHOW MULTIPLEXING").unwrap();
        rows.iter()
            .find(|(w, k, _)| w == "pinned_since_start_by_reason" && k == reason)
            .map_or(0, |(_, _, v)| v.parse().unwrap())
    }
}

/// ANCHORS rule 5: `SET @x = <own value>; SELECT @x` gives every client its
/// own value while many clients share two backend connections, and none is
/// pinned for it.
#[test]
fn user_vars_every_client_reads_its_own_under_contention() {
    let e = env("uv_contend", 2);
    let port = e.proxy.local_addr().port();
    let workers: Vec<_> = (0..12)
        .map(|id: i64| {
            thread::spawn(move || {
                let mut c = Conn::new(opts(port, "app", "apppw")).unwrap();
                for round in 0..40i64 {
                    let x = id * 1000 + round;
                    c.query_drop(format!("SET @x = {x}")).unwrap();
                    assert_eq!(c.query_first::<i64, _>("SELECT @x").unwrap(), Some(x));
                    // A string is read back after the SET, then replayed.
                    c.query_drop(format!("SET @s = CONCAT('client-', {id}), @y{id} = {round}"))
                        .unwrap();
                    let row: (i64, String, i64, Option<i64>) = c
                        .query_first(format!("SELECT @x, @s, @y{id}, @y{}", (id + 1) % 12))
                        .unwrap()
                        .unwrap();
                    assert_eq!(row, (x, format!("client-{id}"), round, None), "client {id}");
                    assert_eq!(
                        c.exec_first::<i64, _, _>("SELECT @x + ?", (1,)).unwrap(),
                        Some(x + 1),
                        "binary protocol, client {id}"
                    );
                }
                c
            })
        })
        .collect();
    let clients: Vec<Conn> = workers.into_iter().map(|w| w.join().unwrap()).collect();
    let pins = e.pins();
    assert_eq!(pins.len(), clients.len());
    assert!(pins.iter().all(Option::is_none), "{pins:?}");
    assert_eq!(e.pinned_since_start("user_variable"), 0);
}

/// A client that never set a variable reads NULL for it, even on the
/// connection another client's value was replayed on; `COM_RESET_CONNECTION`
/// and `COM_CHANGE_USER` clear the client's own (the server does too).
#[test]
fn user_vars_not_seen_by_others_and_cleared_by_reset_and_change_user() {
    let e = env("uv_clear", 1);
    let mut a = e.client();
    let mut b = e.client();
    a.query_drop("SET @y = 'of a', @n = 1").unwrap();
    assert_eq!(
        b.query_first::<(Option<String>, Option<i64>), _>("SELECT @y, @n")
            .unwrap(),
        Some((None, None))
    );
    assert_eq!(
        a.query_first::<String, _>("SELECT @y").unwrap(),
        Some("of a".into())
    );
    a.reset().unwrap();
    assert_eq!(a.query_first::<Option<i64>, _>("SELECT @n").unwrap(), Some(None));
    a.query_drop("SET @n = 2").unwrap();
    a.change_user(
        mysql::ChangeUserOpts::default()
            .with_user(Some("other".into()))
            .with_pass(Some("opw".into())),
    )
    .unwrap();
    assert_eq!(a.query_first::<Option<i64>, _>("SELECT @n").unwrap(), Some(None));
    b.query_drop("SET @n = 3").unwrap();
    assert_eq!(a.query_first::<Option<i64>, _>("SELECT @n").unwrap(), Some(None));
    assert_eq!(b.query_first::<i64, _>("SELECT @n").unwrap(), Some(3));
    assert!(e.pins().iter().all(Option::is_none));
}

/// What Funnel cannot track still pins, and the pinned client keeps the
/// value the server gave it.
#[test]
fn user_vars_untracked_writes_still_pin() {
    let e = env("uv_pin", 16);
    e.client()
        .query_drop("CREATE PROCEDURE p(OUT o INT) SET o = 42")
        .unwrap();
    let forms = [
        ("SELECT 7 INTO @v", "SELECT @v", "7"),
        ("SELECT @v := 7", "SELECT @v", "7"),
        // The quote is in a `--` comment (a control character after `--`).
        ("SELECT 7 --\x01 '\n INTO @v -- '", "SELECT @v", "7"),
        // Warnings (division by zero): the read-back would replace them.
        ("SET @v = 1/0", "SELECT @v IS NULL", "1"),
        // A double the server computed.
        ("SET @v = 1e0/3", "SELECT @v * 3", "1"),
        ("SET @v = (SELECT 7 FROM DUAL WHERE 1)", "SELECT @v", "7"),
        ("GET DIAGNOSTICS @v = NUMBER", "SELECT @v", "0"),
        ("CALL p(@v)", "SELECT @v", "42"),
        ("PS:SET @v = 7", "SELECT @v", "7"),
        ("PS:SET @v = ?", "SELECT @v", "7"),
    ];
    // Every client stays connected: the count of pinned ones grows by one.
    let mut clients = Vec::new();
    for (n, (write, read, want)) in forms.into_iter().enumerate() {
        let mut c = e.client();
        match write.strip_prefix("PS:") {
            Some(ps) if ps.contains('?') => c.exec_drop(ps, (7,)).unwrap(),
            Some(ps) => c.exec_drop(ps, ()).unwrap(),
            None => c.query_drop(write).unwrap(),
        }
        let got: String = c.query_first(read).unwrap().unwrap();
        assert_eq!(got, want, "{write}");
        assert_eq!(e.pins().into_iter().flatten().count(), n + 1, "{write} pins");
        clients.push(c);
    }
    let pinned = clients.len();
    // Over the cap of 64 variables per client.
    let mut c = e.client();
    for i in 0..64 {
        c.query_drop(format!("SET @cap{i} = {i}")).unwrap();
    }
    assert_eq!(e.pins().into_iter().flatten().count(), pinned, "64 are tracked");
    c.query_drop("SET @cap64 = 64").unwrap();
    assert_eq!(
        e.pins().into_iter().flatten().count(),
        pinned + 1,
        "the 65th pins"
    );
    assert_eq!(
        c.query_first::<i64, _>("SELECT @cap0 + @cap64").unwrap(),
        Some(64)
    );
}

/// Under `ANSI_QUOTES` `"x\"` is a name that ends at its second quote: the
/// `:=` after it writes a user variable, so the client pins and no other
/// client of its connection reads the value.
#[test]
fn user_vars_write_after_an_ansi_quoted_name_pins() {
    let e = env("uv_ansi", 2);
    let mut a = e.client();
    let mut b = e.client();
    a.query_drop("SET sql_mode = 'ANSI_QUOTES'").unwrap();
    let row: (String, i64) = a
        .query_first(r#"SELECT 'x' AS "x\", @v := 7 -- ""#)
        .unwrap()
        .unwrap();
    assert_eq!(row, ("x".to_string(), 7));
    assert_eq!(
        e.pins().into_iter().flatten().collect::<Vec<_>>(),
        vec!["user_variable".to_string()]
    );
    assert_eq!(b.query_first::<Option<i64>, _>("SELECT @v").unwrap(), Some(None));
    assert_eq!(a.query_first::<i64, _>("SELECT @v").unwrap(), Some(7));
}

/// A compound statement's body runs statements Funnel does not classify:
/// under `sql_mode=ORACLE` every `BEGIN ... END` is a block (`BEGIN` alone
/// starts no transaction there), in which a procedure is called without
/// `CALL`, and a procedure's `SELECT ... INTO @x` is not in the server's
/// state-change report. Such a block pins (also `DECLARE ... BEGIN`, and a
/// block as a later statement), so the next client of the one connection
/// does not read the variable.
#[test]
fn user_vars_set_inside_a_compound_statement_pin() {
    let e = env("uv_block", 1);
    MariaDb::shared().exec(&format!(
        "USE `{}`; CREATE PROCEDURE p_into() BEGIN SELECT 5 INTO @hidden; END",
        e.schema
    ));
    for (mode, block) in [
        ("ORACLE", "BEGIN p_into; END"),
        ("ORACLE", "DECLARE BEGIN p_into; END"),
        ("ORACLE", "BEGIN CALL p_into(); END"),
        ("DEFAULT", "DO 0; BEGIN NOT ATOMIC CALL p_into(); END"),
    ] {
        let mut a = e.client();
        a.query_drop(format!("SET sql_mode = {mode}")).unwrap();
        a.query_drop(block).unwrap();
        assert_eq!(
            a.query_first::<i64, _>("SELECT @hidden").unwrap(),
            Some(5),
            "{block}"
        );
        assert_eq!(
            e.pins().into_iter().flatten().collect::<Vec<_>>(),
            vec!["unknown".to_string()],
            "{block}"
        );
        drop(a);
        let mut b = e.client();
        assert_eq!(
            b.query_first::<Option<i64>, _>("SELECT @hidden").unwrap(),
            Some(None),
            "{block}"
        );
    }
}

/// Under `sql_mode=MSSQL` `[a']` is a quoted name, so the quote in it
/// opens no string: the `:=` after it writes a user variable, and the
/// client pins.
#[test]
fn user_vars_write_after_an_mssql_bracketed_name_pins() {
    let e = env("uv_mssql", 1);
    let mut a = e.client();
    a.query_drop("SET sql_mode = 'MSSQL'").unwrap();
    let row: (i64, i64) = a
        .query_first("SELECT 1 AS [a'], @v := 7 AS [']")
        .unwrap()
        .unwrap();
    assert_eq!(row, (1, 7));
    assert_eq!(
        e.pins().into_iter().flatten().collect::<Vec<_>>(),
        vec!["user_variable".to_string()]
    );
    assert_eq!(a.query_first::<i64, _>("SELECT @v").unwrap(), Some(7));
    drop(a);
    let mut b = e.client();
    assert_eq!(b.query_first::<Option<i64>, _>("SELECT @v").unwrap(), Some(None));
}

/// In sjis `'\x95\x5c'` is one character in quotes (its second byte is
/// that of a backslash): the `:=` after it writes a user variable, so the
/// client pins and no other client of its connection reads the value.
#[test]
fn user_vars_write_after_a_sjis_character_ending_in_a_backslash_pins() {
    let e = env("uv_sjis", 2);
    let mut a =
        funnel_testkit::mini_client::MiniClient::connect(e.proxy.local_addr(), "app", "apppw", None).unwrap();
    let mut b = e.client();
    a.query("SET NAMES sjis").unwrap();
    let mut q = vec![0x03];
    q.extend_from_slice(b"SELECT '\x95\x5c' AS a, @v := 7 -- '");
    let reply = a
        .roundtrip(&q, funnel_protocol::tracker::Expect::Results)
        .unwrap();
    assert_ne!(reply[0].first(), Some(&0xff), "{reply:?}");
    assert_eq!(
        e.pins().into_iter().flatten().collect::<Vec<_>>(),
        vec!["user_variable".to_string()]
    );
    assert_eq!(b.query_first::<Option<i64>, _>("SELECT @v").unwrap(), Some(None));
}

/// A user variable set by a trigger or a stored function shows up only in
/// the server's state-change report: the client is pinned for it
/// (`untracked_state`) until a reset, which also turns Funnel's reports on
/// again on that connection. The reports Funnel expects (tracked `SET`s, `SET
/// STATEMENT`, `USE`) pin nothing.
#[test]
fn user_vars_set_by_a_trigger_or_function_pin_until_a_reset() {
    // One connection: whatever runs, runs there.
    let e = env("uv_hidden", 1);
    create_hidden_writers(MariaDb::shared(), &e.schema);
    let mut a = e.client();
    for sql in [
        "SET @x = 1".to_string(),
        "SET time_zone = '+01:00'".into(),
        "SET STATEMENT max_statement_time = 10 FOR SELECT 1".into(),
        "SET autocommit = 0".into(),
        "SET autocommit = 1".into(),
        format!("USE `{}`", e.schema),
        "SELECT @x".into(),
    ] {
        a.query_drop(&sql).unwrap();
        assert_eq!(e.pins(), [None], "{sql}");
    }
    a.query_drop("INSERT INTO log VALUES (5)").unwrap();
    assert_eq!(e.pins(), [Some("untracked_state".to_string())]);
    assert_eq!(a.query_first::<i64, _>("SELECT @trig").unwrap(), Some(5));
    a.reset().unwrap();
    assert_eq!(e.pins(), [None]);
    assert_eq!(
        a.query_first::<Option<i64>, _>("SELECT @trig").unwrap(),
        Some(None)
    );
    // The same connection, reset: its reports are on again. A prepared
    // statement's reply carries them too.
    a.exec_drop("SELECT f_uv()", ()).unwrap();
    assert_eq!(e.pins(), [Some("untracked_state".to_string())]);
    assert_eq!(a.query_first::<i64, _>("SELECT @fx").unwrap(), Some(7));
    assert_eq!(e.pinned_since_start("untracked_state"), 2);
}

/// A client's `COM_RESET_CONNECTION` on a pinned session is answered once
/// the server reset the connection and Funnel's reports are on again
/// there: by the time the client has its OK, the session holds nothing
/// (`SHOW CLIENTS`, asked at once on an open admin connection, shows it
/// unpinned every time), and the connection is back in the pool.
#[test]
fn user_vars_reset_answers_once_the_connection_is_clean() {
    let e = env("uv_reset_ok", 1);
    create_hidden_writers(MariaDb::shared(), &e.schema);
    let mut a = e.client();
    let mut admin = e.admin();
    let pins = |admin: &mut Conn| -> Vec<Option<String>> {
        let rows: Vec<mysql::Row> = admin.query("SHOW CLIENTS").unwrap();
        rows.iter().map(|r| r.get("pinned").unwrap()).collect()
    };
    for i in 0..40 {
        a.query_drop(format!("INSERT INTO log VALUES ({i})")).unwrap();
        assert_eq!(pins(&mut admin), [Some("untracked_state".to_string())], "{i}");
        a.reset().unwrap();
        assert_eq!(pins(&mut admin), [None], "after reset {i}");
    }
    assert_eq!(
        a.query_first::<Option<i64>, _>("SELECT @trig").unwrap(),
        Some(None)
    );
}

/// A reset puts the session's `sql_mode` back to the server's default, so
/// after `NO_BACKSLASH_ESCAPES` a backslash is an escape again: Funnel
/// reads the next query with one as any other, not as text it cannot read
/// (sent as written, which pins the session as `unknown`), whether the
/// reset ran on the client's connection (pinned for a temporary table) or
/// was Funnel's alone.
#[test]
fn user_vars_reset_ends_no_backslash_escapes() {
    let e = env("uv_reset_nbe", 2);
    let mut a = e.client();
    for pinned in [true, false] {
        if pinned {
            a.query_drop("CREATE TEMPORARY TABLE tmp (x INT)").unwrap();
        }
        a.query_drop("SET sql_mode = 'NO_BACKSLASH_ESCAPES'").unwrap();
        a.reset().unwrap();
        let v: Option<String> = a.query_first("SELECT 'a\\'b'").unwrap();
        assert_eq!(v.as_deref(), Some("a'b"), "pinned: {pinned}");
        assert_eq!(e.pins(), [None], "pinned: {pinned}");
    }
}

/// A client's reset rolls back its transaction on the server, which takes
/// as long as the transaction's writes: it runs under `pool.query_timeout`
/// as the client's other commands (none by default), not under
/// `pool.connect_timeout`, the limit of Funnel's own statements. With the
/// server answering after 2.5 s (paused), the reset of a pinned client
/// succeeds behind a 1 s connect timeout, as it does directly, and a 1 s
/// query timeout stops it with ERR 1969.
#[test]
fn user_vars_reset_takes_the_time_of_a_client_command() {
    let db = MariaDb::start();
    // No check while the server is paused (it would be marked down); the
    // one at start gets all the time a loaded machine needs, and writes
    // wait for it (9004 after a first check that timed out).
    let quiet = "monitor:\n  interval: 60s\n  timeout: 30s\n";
    let patient = env_on(
        &db,
        "uv_reset_slow",
        1,
        &format!("  connect_timeout: 1s\n{quiet}"),
    );
    let strict = env_on(
        &db,
        "uv_reset_limit",
        1,
        &format!("  connect_timeout: 5s\n  query_timeout: 1s\n{quiet}"),
    );
    for e in [&patient, &strict] {
        funnel_testkit::wait_until_within(
            "the first health check",
            std::time::Duration::from_secs(40),
            || {
                e.proxy.snapshots()[0]
                    .pools
                    .iter()
                    .all(|p| p.last_check.is_some() && p.healthy)
            },
        );
    }
    let reset_while_paused = |e: &Env| -> (Result<(), u16>, MiniClient) {
        let mut c = MiniClient::connect(e.proxy.local_addr(), "app", "apppw", Some(&e.schema)).unwrap();
        c.query("CREATE TEMPORARY TABLE tmp (x INT)").unwrap();
        db.pause();
        let (reply, shown) = thread::scope(|s| {
            let watcher = s.spawn(|| {
                // What `SHOW CLIENTS` says of the client while its reset
                // waits for the server: it is running a command.
                let started = std::time::Instant::now();
                let mut shown = Vec::new();
                while started.elapsed() < std::time::Duration::from_millis(2000) {
                    shown = e.proxy.snapshots()[0].clients.iter().map(|c| c.state).collect();
                    if shown == ["running"] {
                        break;
                    }
                    thread::sleep(std::time::Duration::from_millis(20));
                }
                thread::sleep(std::time::Duration::from_millis(2500).saturating_sub(started.elapsed()));
                db.resume();
                shown
            });
            let reply = c.roundtrip(&[0x1f], Expect::Status);
            (reply, watcher.join().unwrap())
        });
        assert_eq!(shown, ["running"], "SHOW CLIENTS during the reset");
        let reply = match reply {
            Ok(p) if p[0][0] == 0xff => Err(u16::from_le_bytes([p[0][1], p[0][2]])),
            Ok(_) => Ok(()),
            Err(funnel_testkit::mini_client::MiniError::Server(e)) => Err(e.code),
            Err(e) => panic!("{e:?}"),
        };
        (reply, c)
    };
    let (reply, mut c) = reset_while_paused(&patient);
    assert_eq!(reply, Ok(()), "the reset waits for the server");
    let gone = c.query("SELECT * FROM tmp").map(|_| ()).unwrap_err();
    assert!(format!("{gone:?}").contains("1146"), "{gone:?}");
    assert_eq!(patient.pins(), [None]);
    let (reply, _) = reset_while_paused(&strict);
    assert_eq!(reply, Err(1969), "pool.query_timeout");
}

/// A client's reset on a connection it kept after a failure with
/// autocommit off (whether that statement began a transaction is unknown)
/// rolls back whatever was open there: the connection goes back to the
/// pool and serves on, not closed and replaced by a new login.
#[test]
fn user_vars_reset_after_a_failure_with_autocommit_off_keeps_the_connection() {
    let e = env("uv_reset_txu", 1);
    let db = MariaDb::shared();
    let mut a = e.client();
    a.query_drop("SELECT 1").unwrap();
    let before = e.backend_threads(db);
    assert_eq!(before.len(), 1);
    a.query_drop("SET autocommit = 0").unwrap();
    assert!(a.query_drop("SELECT * FROM missing_table").is_err());
    assert_eq!(e.pins(), [Some("transaction".to_string())]);
    a.reset().unwrap();
    assert_eq!(e.pins(), [None]);
    assert_eq!(a.query_first::<i64, _>("SELECT @@autocommit").unwrap(), Some(1));
    assert_eq!(
        e.backend_threads(db),
        before,
        "the same backend connection serves on"
    );
}

/// A statement that fails after a trigger or a function ran carries no
/// state-change report (an ERR has no status flags, and the server drops
/// the pending report), so what that code set would stay on the connection
/// for the next client: the pool resets the connection first (one
/// connection: the other client surely gets it, and it is the same one,
/// not a new one). The failing client is not pinned, and a failure that
/// surely ran no stored code costs nothing.
#[test]
fn user_vars_failed_stored_code_resets_the_connection_without_pinning() {
    let db = MariaDb::shared();
    let e = env("uv_failed", 1);
    for sql in [
        // The rows first: an insert that fires the trigger and succeeds pins.
        "CREATE TABLE k (id INT PRIMARY KEY)",
        "INSERT INTO k VALUES (1)",
        "CREATE TABLE tk (id INT PRIMARY KEY)",
        "INSERT INTO tk VALUES (1)",
        "CREATE TRIGGER trg_k BEFORE INSERT ON tk FOR EACH ROW SET @pk = NEW.id",
        "CREATE FUNCTION f_tz() RETURNS INT DETERMINISTIC BEGIN SET time_zone = '+03:00'; RETURN 1; END",
    ] {
        db.exec(&format!("USE `{}`; {sql}", e.schema));
    }
    create_hidden_writers(db, &e.schema);
    let stat = |name: &str| -> u64 {
        let rows: Vec<(String, String, String)> = e.admin().query("SHOW STATS").unwrap();
        let row = rows.into_iter().find(|(s, n, _)| s == "all" && n == name);
        row.unwrap_or_else(|| panic!("no {name}")).2.parse().unwrap()
    };
    let code = |r: mysql::Result<()>| match r {
        Err(mysql::Error::MySqlError(e)) => e.code,
        other => panic!("expected a server error, got {other:?}"),
    };
    let mut a = e.client();
    let mut b = e.client();
    let thread: u64 = b.query_first("SELECT @@pseudo_thread_id").unwrap().unwrap();
    let closed = stat("backend_connections_closed");

    // The trigger set @pk, then the insert failed.
    assert_eq!(code(a.query_drop("INSERT INTO tk VALUES (1)")), 1062);
    assert_eq!(e.pins(), [None, None]);
    assert_eq!(b.query_first::<Option<i64>, _>("SELECT @pk").unwrap(), Some(None));
    assert_eq!(stat("backend_connections_reset"), 1);
    // A function set a session variable, then a later row failed.
    assert_eq!(code(a.query_drop("INSERT INTO k VALUES (f_tz()), (1)")), 1062);
    assert_eq!(
        b.query_first::<i64, _>("SELECT @@time_zone = @@GLOBAL.time_zone")
            .unwrap(),
        Some(1)
    );
    // The same through a binary prepared execute (the reset closed b's
    // earlier statements on the server: they are prepared again).
    assert_eq!(
        code(a.exec_drop("INSERT INTO k VALUES (f_uv()), (?)", (1,))),
        1062
    );
    assert_eq!(
        b.exec_first::<Option<i64>, _, _>("SELECT @fx", ()).unwrap(),
        Some(None)
    );
    assert_eq!(stat("backend_connections_reset"), 3);

    // Failures that cannot have run stored code cost nothing; those that
    // may have (any insert: Funnel does not know which tables have
    // triggers; a read of a table: it may be a view that calls a
    // function) cost a reset, never an error nor a pin.
    assert_eq!(code(a.query_drop("SELECT nosuch")), 1054);
    assert_eq!(code(a.query_drop("SET time_zone = 'nowhere'")), 1298);
    assert_eq!(b.query_first::<i64, _>("SELECT 1").unwrap(), Some(1));
    assert_eq!(stat("backend_connections_reset"), 3);
    assert_eq!(code(a.query_drop("SELECT nosuch FROM k")), 1054);
    assert_eq!(
        b.query_first::<i64, _>("SELECT COUNT(*) FROM k").unwrap(),
        Some(1)
    );
    assert_eq!(stat("backend_connections_reset"), 4);
    assert_eq!(code(a.query_drop("INSERT INTO k VALUES (1)")), 1062);
    assert_eq!(
        b.query_first::<i64, _>("SELECT COUNT(*) FROM k").unwrap(),
        Some(1)
    );
    assert_eq!(e.pins(), [None, None]);
    assert_eq!(stat("backend_connections_reset"), 5);
    // Reset, never reconnected.
    assert_eq!(stat("backend_connections_closed"), closed);
    assert_eq!(
        b.query_first::<u64, _>("SELECT @@pseudo_thread_id").unwrap(),
        Some(thread)
    );

    // Within the client's own transaction the connection stays with it
    // (it sees what its trigger set, as on the server); once it ends, the
    // next client gets the connection reset.
    a.query_drop("BEGIN").unwrap();
    assert_eq!(code(a.query_drop("INSERT INTO tk VALUES (1)")), 1062);
    assert_eq!(a.query_first::<i64, _>("SELECT @pk").unwrap(), Some(1));
    a.query_drop("COMMIT").unwrap();
    assert_eq!(b.query_first::<Option<i64>, _>("SELECT @pk").unwrap(), Some(None));

    // Reports are on again after the reset: a trigger that sets a variable
    // in a statement that succeeds pins as before.
    a.query_drop("INSERT INTO log VALUES (5)").unwrap();
    let mut pins = e.pins();
    pins.sort();
    assert_eq!(pins, [None, Some("untracked_state".to_string())]);
    assert_eq!(a.query_first::<i64, _>("SELECT @trig").unwrap(), Some(5));
}

/// Every backend connection asks for session tracking and turns on the
/// state-change report; a client sees its replies as it would from the
/// server: without tracking data when it did not ask for
/// `CLIENT_SESSION_TRACK`, without the state-change entries when it did,
/// and with them once it turned the report on itself.
#[test]
fn user_vars_session_track_replies_match_direct_byte_for_byte() {
    let db = MariaDb::shared();
    let e = env("uv_track", 2);
    let direct_schema = direct_twin(db, &e, "uv_track");
    let script = [
        "CREATE TABLE t (id INT AUTO_INCREMENT PRIMARY KEY, v INT)",
        "INSERT INTO t (v) VALUES (1), (2)",
        "UPDATE t SET v = v + 1",
        "SET @x = 1",
        "SET time_zone = '+01:00'",
        "SET STATEMENT max_statement_time = 10 FOR SELECT v FROM t ORDER BY id",
        "SET autocommit = 0",
        "SELECT v FROM t ORDER BY id",
        "COMMIT",
        "SET autocommit = 1",
        "SELECT f_uv()",
        "SELECT 1; SELECT f_uv(); SELECT 2",
        "INSERT INTO log VALUES (7)",
        // An info text beside the report, rows enough to end in a later
        // read than the first, and a report in the middle of several results.
        "UPDATE t SET v = v + f_uv()",
        "INSERT INTO log VALUES (8), (9)",
        "SELECT v FROM t ORDER BY id FOR UPDATE NOWAIT",
        "SELECT seq, f_uv() FROM seq_1_to_3000",
        "SELECT f_uv(); INSERT INTO log VALUES (10); SELECT seq FROM seq_1_to_700; DO f_uv()",
        "SELECT @trig, @fx",
        "SET session_track_state_change = ON",
        "SET @y = 2",
        "SELECT f_uv()",
        "SET time_zone = '+02:00'",
        "UPDATE t SET v = v + f_uv()",
        "SELECT seq, f_uv() FROM seq_1_to_3000",
    ];
    // Every packet of each reply, the schema's name masked.
    let run = |c: &mut MiniClient, schema: &str| -> Vec<Vec<Vec<u8>>> {
        script
            .iter()
            .map(|sql| {
                let mut p = vec![0x03];
                p.extend_from_slice(sql.as_bytes());
                let reply = c.roundtrip(&p, Expect::Results).unwrap();
                reply
                    .into_iter()
                    .map(|packet| {
                        let mut packet = packet;
                        if let Some(at) = packet.windows(schema.len()).position(|w| w == schema.as_bytes()) {
                            packet[at..at + schema.len()].fill(b'x');
                        }
                        packet
                    })
                    .collect()
            })
            .collect()
    };
    let multi = Capabilities::CLIENT_MULTI_STATEMENTS | Capabilities::CLIENT_MULTI_RESULTS;
    let (track, eof) = (
        Capabilities::CLIENT_SESSION_TRACK,
        Capabilities::CLIENT_DEPRECATE_EOF,
    );
    for extra in [multi, multi | track, multi | eof, multi | track | eof] {
        for schema in [&e.schema, &direct_schema] {
            db.exec(&format!("DROP TABLE IF EXISTS `{schema}`.t"));
        }
        let mut direct =
            MiniClient::connect_with(db.addr(), "root", "", Some(&direct_schema), extra).unwrap();
        let mut through =
            MiniClient::connect_with(e.proxy.local_addr(), "app", "apppw", Some(&e.schema), extra).unwrap();
        let (want, got) = (run(&mut direct, &direct_schema), run(&mut through, &e.schema));
        for ((sql, w), g) in script.iter().zip(&want).zip(&got) {
            assert_eq!(w, g, "`{sql}` with {extra:?}");
            if sql.contains("seq_1_to_3000") {
                assert!(w.len() > 3000, "the rows came: {:?}", w.last());
            }
        }
        // The server did report state changes to Funnel: `SELECT f_uv()` pinned.
        assert!(e.pinned_since_start("untracked_state") > 0);
    }
}

/// Statements the server reports a session-state change for that leaves
/// nothing behind (a lock wait option sets the lock timeouts for the
/// statement alone; `DROP TEMPORARY TABLE IF EXISTS` of nothing) pin
/// nothing: job queues run `SELECT ... FOR UPDATE NOWAIT` all the time.
#[test]
fn user_vars_lock_wait_options_and_temporary_drops_do_not_pin() {
    let e = env("uv_nowait", 1);
    create_hidden_writers(MariaDb::shared(), &e.schema);
    let mut a = e.client();
    for sql in [
        "SELECT id FROM log FOR UPDATE NOWAIT",
        "SELECT id FROM log LOCK IN SHARE MODE WAIT 1",
        "SELECT id FROM log FOR UPDATE\nWAIT 2",
        "DROP TEMPORARY TABLE IF EXISTS nothere",
        "TRUNCATE TABLE log NOWAIT",
    ] {
        a.query_drop(sql).unwrap();
        assert_eq!(e.pins(), [None], "{sql}");
    }
    a.exec_drop("SELECT id FROM log FOR UPDATE WAIT 3", ()).unwrap();
    assert_eq!(e.pins(), [None], "prepared");
    assert_eq!(e.pinned_since_start("untracked_state"), 0);
    // What a function changes in such a statement is not told apart (as in
    // `SET STATEMENT`), but elsewhere it still pins.
    a.query_drop("SELECT f_uv()").unwrap();
    assert_eq!(e.pins(), [Some("untracked_state".to_string())]);
}

/// A client that leaves in the middle of a reply whose statement changed
/// state its text does not show (a function setting `time_zone`, reported
/// only in the reply's last EOF) leaves that state on the connection: it
/// is closed, not given to the next client.
#[test]
fn user_vars_client_gone_mid_reply_after_untracked_state_closes_the_connection() {
    let e = env("uv_gone", 1);
    MariaDb::shared().exec(&format!(
        "USE `{}`; CREATE FUNCTION f_tz() RETURNS INT DETERMINISTIC \
         BEGIN SET SESSION time_zone = '+05:00'; RETURN 1; END",
        e.schema
    ));
    let addr = e.proxy.local_addr();
    let mut a = MiniClient::connect(addr, "app", "apppw", Some(&e.schema)).unwrap();
    // 20 MB: more than the sockets hold, so Funnel is still writing when
    // the client leaves, and drains the rest.
    a.send_query("SELECT REPEAT('x', 1000), f_tz() FROM seq_1_to_20000")
        .unwrap();
    thread::sleep(std::time::Duration::from_millis(100));
    drop(a);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !e.pins().is_empty() {
        assert!(std::time::Instant::now() < deadline, "the session never ended");
        thread::sleep(std::time::Duration::from_millis(20));
    }
    // The same capabilities: the same pool partition (one connection).
    let mut b = MiniClient::connect(addr, "app", "apppw", Some(&e.schema)).unwrap();
    let r = b.query("SELECT @@time_zone = @@global.time_zone").unwrap();
    assert_eq!(r.rows(), [vec![Some("1".to_string())]]);
}

/// `LOAD DATA LOCAL INFILE` into a table whose trigger sets a variable: the
/// OK after the file carries the server's report (and its info text),
/// rewritten for the client, and the client is pinned for it.
#[test]
fn user_vars_load_data_local_infile_through_a_trigger_pins() {
    let e = env("uv_infile", 1);
    let db = MariaDb::shared();
    db.exec("SET GLOBAL local_infile = 1");
    create_hidden_writers(db, &e.schema);
    let handler = mysql::LocalInfileHandler::new(|_name, writer| {
        use std::io::Write;
        for i in 1..=3 {
            writeln!(writer, "{i}")?;
        }
        Ok(())
    });
    let o = opts(e.proxy.local_addr().port(), "app", "apppw");
    let mut c = Conn::new(mysql::OptsBuilder::from_opts(o).local_infile_handler(Some(handler))).unwrap();
    c.query_drop("LOAD DATA LOCAL INFILE 'x.csv' INTO TABLE log")
        .unwrap();
    assert_eq!(c.affected_rows(), 3);
    assert_eq!(c.info_str(), "Records: 3  Deleted: 0  Skipped: 0  Warnings: 0");
    assert_eq!(e.pins(), [Some("untracked_state".to_string())]);
    assert_eq!(c.query_first::<i64, _>("SELECT @trig").unwrap(), Some(3));
}

/// A named lock pins only until it is released; a stored function that
/// changed state in the same statement must not ride out with it to the
/// next client (the lock's pin explains no state-change report).
#[test]
fn user_vars_state_changed_beside_a_named_lock_outlives_its_release() {
    let e = env("uv_lockfn", 1);
    MariaDb::shared().exec(&format!(
        "USE `{}`; CREATE FUNCTION f_tz() RETURNS INT DETERMINISTIC \
         BEGIN SET SESSION time_zone = '+05:00'; RETURN 1; END",
        e.schema
    ));
    let lock = format!("{}_l", e.schema);
    let mut a = e.client();
    // Locks alone report nothing: their pin ends with them.
    a.query_drop(format!("SELECT GET_LOCK('{lock}', 0)")).unwrap();
    assert_eq!(e.pins(), [Some("named_lock".to_string())]);
    a.query_drop(format!("SELECT RELEASE_LOCK('{lock}')")).unwrap();
    assert_eq!(e.pins(), [None]);
    a.query_drop(format!("SELECT GET_LOCK('{lock}', 0), IS_USED_LOCK('{lock}')"))
        .unwrap();
    a.query_drop("SELECT RELEASE_ALL_LOCKS()").unwrap();
    assert_eq!(e.pins(), [None]);
    // With a function that sets time_zone beside it, the client keeps its
    // connection after the release.
    a.query_drop(format!("SELECT GET_LOCK('{lock}', 0), f_tz()"))
        .unwrap();
    a.query_drop(format!("SELECT RELEASE_LOCK('{lock}')")).unwrap();
    assert_ne!(e.pins(), [None]);
    assert_eq!(e.pinned_since_start("untracked_state"), 1);
    assert_eq!(
        a.query_first::<String, _>("SELECT @@time_zone")
            .unwrap()
            .as_deref(),
        Some("+05:00")
    );
    // Its connection leaves with it; the next client's is clean.
    drop(a);
    let mut b = e.client();
    assert_eq!(
        b.query_first::<i64, _>("SELECT @@time_zone = @@global.time_zone")
            .unwrap(),
        Some(1)
    );
}

/// A function that sets a variable, run through a cursor
/// (`COM_STMT_EXECUTE` with `CURSOR_TYPE_READ_ONLY`, then `COM_STMT_FETCH`):
/// every reply is the server's, byte for byte, whatever the client asked
/// for, and the client is pinned for the state.
#[test]
fn user_vars_cursor_fetch_replies_match_direct_byte_for_byte() {
    let db = MariaDb::shared();
    let e = env("uv_cur", 2);
    let direct_schema = direct_twin(db, &e, "uv_cur");
    let run = |c: &mut MiniClient| -> Vec<Vec<Vec<u8>>> {
        let mut out = Vec::new();
        let mut p = vec![0x16];
        p.extend_from_slice(b"SELECT seq, f_uv() FROM seq_1_to_5");
        let mut prep = c.roundtrip(&p, Expect::Prepare).unwrap();
        // The statement ids are Funnel's and the server's.
        let id = prep[0][1..5].to_vec();
        prep[0][1..5].fill(0);
        out.push(prep);
        let mut x = vec![0x17];
        x.extend_from_slice(&id);
        x.push(1);
        x.extend_from_slice(&1u32.to_le_bytes());
        out.push(c.roundtrip(&x, Expect::Results).unwrap());
        for _ in 0..4 {
            let mut f = vec![0x1c];
            f.extend_from_slice(&id);
            f.extend_from_slice(&2u32.to_le_bytes());
            let r = c.roundtrip(&f, Expect::Fetch).unwrap();
            let last = r.last().cloned();
            out.push(r);
            // SERVER_STATUS_LAST_ROW_SENT: the cursor is done.
            if last.is_some_and(|l| l.len() >= 5 && l[3] & 0x80 != 0) {
                break;
            }
        }
        let mut q = vec![0x03];
        q.extend_from_slice(b"SELECT @fx");
        out.push(c.roundtrip(&q, Expect::Results).unwrap());
        out
    };
    let (track, eof) = (
        Capabilities::CLIENT_SESSION_TRACK,
        Capabilities::CLIENT_DEPRECATE_EOF,
    );
    for extra in [Capabilities::EMPTY, track, eof, track | eof] {
        let mut direct =
            MiniClient::connect_with(db.addr(), "root", "", Some(&direct_schema), extra).unwrap();
        let mut through =
            MiniClient::connect_with(e.proxy.local_addr(), "app", "apppw", Some(&e.schema), extra).unwrap();
        // Column definitions name the schema: same-length names are masked alike.
        let mask = |v: Vec<Vec<Vec<u8>>>, s: &str| -> Vec<Vec<Vec<u8>>> {
            let hide = |mut p: Vec<u8>| {
                if let Some(at) = p.windows(s.len()).position(|w| w == s.as_bytes()) {
                    p[at..at + s.len()].fill(b'x');
                }
                p
            };
            v.into_iter().map(|r| r.into_iter().map(hide).collect()).collect()
        };
        let want = mask(run(&mut direct), &direct_schema);
        let got = mask(run(&mut through), &e.schema);
        assert_eq!(want.len(), got.len(), "{extra:?}");
        for (i, (w, g)) in want.iter().zip(&got).enumerate() {
            assert_eq!(w, g, "step {i} with {extra:?}");
        }
        assert_eq!(e.pins(), [Some("untracked_state".to_string())], "{extra:?}");
    }
}

/// A client that turns `session_track_state_change` on with a binary
/// prepared statement sees the state-change entries of its later replies,
/// byte for byte as on a direct connection.
#[test]
fn user_vars_state_change_tracking_set_by_a_prepared_statement_is_the_clients() {
    let db = MariaDb::shared();
    let e = env("uv_ps_track", 2);
    let direct_schema = db.fresh_database("uv_ps_track_d");
    let track = Capabilities::CLIENT_SESSION_TRACK;
    let replies = |c: &mut MiniClient| -> Vec<Vec<u8>> {
        let mut prepare = vec![0x16];
        prepare.extend_from_slice(b"SET session_track_state_change = ON");
        let prepared = c.roundtrip(&prepare, Expect::Prepare).unwrap();
        let id = funnel_protocol::tracker::PrepareOk::parse(&prepared[0])
            .unwrap()
            .stmt_id;
        let mut execute = vec![0x17];
        execute.extend_from_slice(&id.to_le_bytes());
        execute.push(0);
        execute.extend_from_slice(&1u32.to_le_bytes());
        let mut out = vec![c.roundtrip(&execute, Expect::Results).unwrap().pop().unwrap()];
        for sql in ["SET @y = 2", "SELECT 1"] {
            let mut p = vec![0x03];
            p.extend_from_slice(sql.as_bytes());
            out.push(c.roundtrip(&p, Expect::Results).unwrap().pop().unwrap());
        }
        out
    };
    let mut direct = MiniClient::connect_with(db.addr(), "root", "", Some(&direct_schema), track).unwrap();
    let mut through =
        MiniClient::connect_with(e.proxy.local_addr(), "app", "apppw", Some(&e.schema), track).unwrap();
    let want = replies(&mut direct);
    assert!(
        want[1].ends_with(&[2, 1, b'1']),
        "a state-change entry: {:?}",
        want[1]
    );
    assert_eq!(replies(&mut through), want);
}

/// The server runs an execute in the schema its statement was prepared in,
/// switching there and back when the connection is in another (a client
/// of another schema used it last), and reports the switch as a
/// session-state change: Funnel selects the statement's schema first, so
/// an execute that changes nothing pins nothing, while one whose function
/// sets a variable still does.
#[test]
fn user_vars_execute_after_another_schemas_client_does_not_pin() {
    // One connection, shared by a client of each schema.
    let e = env("uv_psdb", 1);
    let db = MariaDb::shared();
    create_hidden_writers(db, &e.schema);
    let other = db.fresh_database("uv_psdb_other");
    let mut a = e.client();
    let mut b = e.client();
    b.query_drop(format!("USE `{other}`")).unwrap();
    for sql in ["SELECT 1", "SELECT id FROM log", "SELECT DATABASE()"] {
        a.exec_drop(sql, ()).unwrap();
        b.query_drop("SELECT 2").unwrap();
        a.exec_drop(sql, ()).unwrap();
        assert_eq!(e.pins(), [None, None], "{sql}");
    }
    assert_eq!(
        a.exec_first::<String, _, _>("SELECT DATABASE()", ())
            .unwrap()
            .as_deref(),
        Some(e.schema.as_str())
    );
    assert_eq!(
        b.query_first::<String, _>("SELECT DATABASE()")
            .unwrap()
            .as_deref(),
        Some(other.as_str())
    );
    // A client that left the statement's schema for another gets the same
    // answers as from the server, which runs the statement in its schema.
    a.query_drop(format!("USE `{other}`")).unwrap();
    assert_eq!(
        a.exec_first::<String, _, _>("SELECT DATABASE()", ())
            .unwrap()
            .as_deref(),
        Some(e.schema.as_str())
    );
    assert_eq!(
        a.query_first::<String, _>("SELECT DATABASE()")
            .unwrap()
            .as_deref(),
        Some(other.as_str())
    );
    assert_eq!(e.pins(), [None, None]);
    assert_eq!(e.pinned_since_start("untracked_state"), 0);
    // A function that does set a variable still pins.
    a.query_drop(format!("USE `{}`", e.schema)).unwrap();
    let f = a.prep("SELECT f_uv()").unwrap();
    b.query_drop("SELECT 2").unwrap();
    a.exec_drop(&f, ()).unwrap();
    assert_eq!(e.pinned_since_start("untracked_state"), 1);
    assert_eq!(a.query_first::<i64, _>("SELECT @fx").unwrap(), Some(7));
}

/// Column metadata of `sql`'s first result (type, charset, flags,
/// decimals, length) and its first row. A user variable's length of
/// 2^24 - 1 reads as 2^24: Funnel nulls another client's variable with
/// `CAST(NULL AS BINARY)`, which the server gives the shorter length
/// (docs/multiplexing.md, known limits).
fn described(c: &mut Conn, sql: &str) -> (Vec<String>, Vec<mysql::Value>) {
    let mut result = c.query_iter(sql).unwrap();
    let columns = result
        .columns()
        .as_ref()
        .iter()
        .map(|c| {
            let length = match c.column_length() {
                16_777_215 => 16_777_216,
                n => n,
            };
            format!(
                "{}:{:?}:{}:{:?}:{}:{length}",
                c.name_str(),
                c.column_type(),
                c.character_set(),
                c.flags(),
                c.decimals()
            )
        })
        .collect();
    let row: mysql::Row = result.next().unwrap().unwrap();
    (columns, row.unwrap())
}

/// MariaDB creates a user variable a statement assigns (`SET @y = ?`,
/// `@y := ...`) when it prepares the statement, NULL with the type of the
/// value, even when the prepare fails on a later part of it. A client that
/// only prepares such a statement must not leave that variable for the
/// next client on its connection, which never set it and reads it as on a
/// fresh connection of its own, metadata included (differential soak
/// seeds 10033, 11043). The variables are the preparing client's own
/// (`user_vars_created_by_a_clients_own_prepare_are_its_own`): it is
/// pinned for them, and its connection is closed when it leaves.
#[test]
fn user_vars_created_by_another_clients_prepare_read_as_never_set() {
    let db = MariaDb::shared();
    let e = env("uv_prep_made", 1);
    let read = "SELECT @y, @w, @v, @u, @t, CONCAT(@y, 'a') AS c";
    let mut direct = Conn::new(opts(db.port(), "root", "").db_name(Some(e.schema.as_str()))).unwrap();
    let want = described(&mut direct, read);
    let mut a = e.client();
    a.query_drop("CREATE TABLE pm (v INT)").unwrap();
    a.prep("SET @y = ?").unwrap();
    a.prep("SELECT v, @w := v + 1 FROM pm").unwrap();
    a.prep("SELECT v INTO @t FROM pm").unwrap();
    // Refused at `nosuch`, after the server made `@v`.
    assert!(a.prep("SET @v = 'x', @u = nosuch").is_err());
    assert_eq!(e.pins(), [Some("user_variable".to_owned())]);
    drop(a);
    let mut b = e.client();
    assert_eq!(described(&mut b, read), want);
    assert_eq!(want.1, vec![mysql::Value::NULL; 6]);
}

/// A pinned client that prepares a statement assigning a user variable
/// reads the variable as the server made it on its own connection, as on
/// a direct one, and is pinned for it (`user_variable`), so the release of
/// its lock does not hand the connection back to the pool carrying it.
#[test]
fn user_vars_created_by_a_pinned_clients_prepare_keep_its_pin() {
    let db = MariaDb::shared();
    let e = env("uv_prep_pin", 2);
    let read = "SELECT @p, CONCAT(@p, 'a') AS c";
    let script = |c: &mut Conn| {
        c.query_drop("DO GET_LOCK('uv_prep_pin', 0)").unwrap();
        c.prep("SELECT @p := 'x'").unwrap();
        let seen = described(c, read);
        c.query_drop("DO RELEASE_LOCK('uv_prep_pin')").unwrap();
        seen
    };
    let mut direct = Conn::new(opts(db.port(), "root", "").db_name(Some(e.schema.as_str()))).unwrap();
    let want = script(&mut direct);
    let mut a = e.client();
    assert_eq!(script(&mut a), want);
    // Without it the lock's release would hand the connection back.
    assert!(e.pins()[0].is_some(), "{:?}", e.pins());
    assert_eq!(e.pinned_since_start("user_variable"), 1);
}

/// The variables a client's own prepare makes (NULL with the type of the
/// value) are its own as on a direct connection, also when it never
/// executes the statement and when another client prepared the same text
/// first (Funnel answers repeated prepares from its registry, without a
/// prepare on the server): the client reads them typed, not as never set
/// (differential soak, the variables were read as binary NULLs).
#[test]
fn user_vars_created_by_a_clients_own_prepare_are_its_own() {
    let db = MariaDb::shared();
    let e = env("uv_prep_own", 1);
    let read = "SELECT @y, @w, CONCAT(@y, 'a') AS c, CONCAT(@w, 'a') AS d";
    let script = |c: &mut Conn| {
        c.prep("SET @y = 'lit'").unwrap();
        c.prep("SELECT 1 AS v, @w := 'a' FROM DUAL").unwrap();
        described(c, read)
    };
    let mut direct = Conn::new(opts(db.port(), "root", "").db_name(Some(e.schema.as_str()))).unwrap();
    direct.query_drop("SET NAMES latin1").unwrap();
    let want = script(&mut direct);
    // The same text in the registry first, from a client that keeps it.
    let mut first = e.client();
    first.query_drop("SET @y = 1, @w = 2").unwrap();
    first.prep("SET @y = 'lit'").unwrap();
    first.prep("SELECT 1 AS v, @w := 'a' FROM DUAL").unwrap();
    let mut a = e.client();
    a.query_drop("SET NAMES latin1").unwrap();
    assert_eq!(script(&mut a), want);
    // The second client is pinned; the first set both itself, and its
    // prepares leave them alone.
    let mut pins = e.pins();
    pins.sort();
    assert_eq!(pins, [None, Some("user_variable".to_owned())]);
    assert_eq!(e.pinned_since_start("user_variable"), 1);
    // The variables a prepare makes are never set, in no client's session.
    assert_eq!(want.1, vec![mysql::Value::NULL; 4]);
}
