//! `SET`s answered by Funnel from a backend's earlier reply to the same
//! text (`learned_sets.rs`, `session/local_set.rs`): the client must see
//! what a direct connection to the server shows.

use std::time::Duration;

use funnel_config::Config;
use funnel_engine::Proxy;
use funnel_protocol::tracker::Expect;
use funnel_protocol::Capabilities;
use funnel_testkit::mini_client::MiniClient;
use funnel_testkit::MariaDb;

/// A test's own schema, backend user and Funnel.
struct Env {
    db: &'static MariaDb,
    schema: String,
    proxy: Proxy,
}

/// Starts Funnel (one core) in front of the shared server with user
/// `app`/`apppw`; `extra` is appended YAML.
fn env(prefix: &str, extra: &str) -> Env {
    let db = MariaDb::shared();
    let schema = db.fresh_database(prefix);
    let backend_user = format!("{schema}_b");
    db.create_user(&backend_user, "bpw");
    let yaml = format!(
        "listen: 127.0.0.1:0\ncores: 1\n\
         users:\n  - name: app\n    password: apppw\n    default_schema: {schema}\n\
         backends:\n  - name: primary\n    address: {addr}\n    user: {backend_user}\n    password: bpw\n{extra}",
        addr = db.addr()
    );
    let cfg = Config::from_yaml_str(&yaml).unwrap_or_else(|e| panic!("{e}\n{yaml}"));
    let e = Env {
        db,
        schema,
        proxy: funnel_testkit::funnel::start(cfg),
    };
    funnel_testkit::wait_until_within("the warm backend connections", SETTLE, || {
        e.proxy.snapshots().iter().all(|s| s.pool.opening == 0)
    });
    wait_for_monitor(&e.proxy);
    e
}

/// Waits until the health monitor has reported on every backend: until
/// then Funnel does not know the servers' `sql_mode` at login, and a
/// session that has run nothing learns no `SET` (`sql_mode_unknown`).
fn wait_for_monitor(proxy: &Proxy) {
    funnel_testkit::wait_until_within("the monitor's first checks", SETTLE, || {
        proxy
            .snapshots()
            .iter()
            .all(|s| s.pools.iter().all(|p| p.last_check.is_some()))
    });
}

const SETTLE: Duration = Duration::from_secs(30);

impl Env {
    /// A client of Funnel with `caps`, in `schema`.
    fn funnel(&self, schema: &str, caps: Capabilities) -> MiniClient {
        MiniClient::connect_with(self.proxy.local_addr(), "app", "apppw", Some(schema), caps).unwrap()
    }

    /// A client of the server itself with `caps`, in `schema`.
    fn direct(&self, schema: &str, caps: Capabilities) -> MiniClient {
        let user = format!("{}_b", self.schema);
        MiniClient::connect_with(self.db.addr(), &user, "bpw", Some(schema), caps).unwrap()
    }

    fn answered_locally(&self) -> u64 {
        self.proxy
            .snapshots()
            .iter()
            .map(|s| s.counters.sets_answered_locally)
            .sum()
    }
}

/// The raw reply packets to `sql`.
fn reply(c: &mut MiniClient, sql: &str) -> Vec<Vec<u8>> {
    let mut p = bytes::BytesMut::new();
    funnel_protocol::command::write_query(&mut p, sql.as_bytes());
    c.roundtrip(&p, Expect::Results).unwrap()
}

/// `SET CHARACTER SET` gives the connection the collation of the
/// session's schema: the OK's session-tracking data
/// (`character_set_connection`) shows it. A reply learned from a session
/// in a `latin1` schema must not answer one in a `utf8mb4` schema.
#[test]
fn local_sets_set_character_set_follows_the_schema() {
    let e = env("lsschema", "");
    let latin = e.db.fresh_database("lsschema_latin");
    let utf8 = e.db.fresh_database("lsschema_utf8");
    e.db.exec(&format!("ALTER DATABASE `{latin}` CHARACTER SET latin1"));
    e.db.exec(&format!("ALTER DATABASE `{utf8}` CHARACTER SET utf8mb4"));
    let tracking = Capabilities::CLIENT_SESSION_TRACK;
    let sql = "SET CHARACTER SET utf8mb4";

    let mut first = e.funnel(&latin, tracking);
    let learned = reply(&mut first, sql);
    assert_eq!(learned, reply(&mut e.direct(&latin, tracking), sql));
    drop(first);

    let mut second = e.funnel(&utf8, tracking);
    let got = reply(&mut second, sql);
    let want = reply(&mut e.direct(&utf8, tracking), sql);
    assert_ne!(learned, want, "the schemas' charsets show in the OK");
    assert_eq!(got, want, "the OK of a direct connection in the same schema");
    assert_eq!(e.answered_locally(), 0);
}

/// `SET x = DEFAULT` takes the server's global value, which the OK's
/// session-tracking data shows: a reply learned before `SET GLOBAL x`
/// must not answer after it.
#[test]
fn local_sets_default_shows_the_global_value_of_now() {
    let e = env("lsdefault", "");
    let tracking = Capabilities::CLIENT_SESSION_TRACK;
    let sqls = [
        "SET session_track_system_variables = 'range_alloc_block_size'",
        "SET range_alloc_block_size = DEFAULT",
    ];
    let mut first = e.funnel(&e.schema, tracking);
    for sql in sqls {
        reply(&mut first, sql);
    }
    drop(first);
    let global: u64 =
        e.db.query_first("SELECT @@global.range_alloc_block_size")
            .unwrap();
    e.db.exec("SET GLOBAL range_alloc_block_size = 8192");
    let mut second = e.funnel(&e.schema, tracking);
    let mut direct = e.direct(&e.schema, tracking);
    let mut got = Vec::new();
    let mut want = Vec::new();
    for sql in sqls {
        got.push(reply(&mut second, sql));
        want.push(reply(&mut direct, sql));
    }
    e.db.exec(&format!("SET GLOBAL range_alloc_block_size = {global}"));
    assert_eq!(got, want, "the OKs of a direct connection");
}

/// The raw replies to each of `sqls` in turn.
fn replies(c: &mut MiniClient, sqls: &[&str]) -> Vec<(String, Vec<Vec<u8>>)> {
    sqls.iter().map(|sql| (sql.to_string(), reply(c, sql))).collect()
}

/// The replies to a binary prepare of `sql` (the statement id zeroed: the
/// server numbers them per connection) and to its execute with `param`
/// (a string) for each of its parameters, then closes it.
fn prepare_and_execute(c: &mut MiniClient, sql: &str, param: &[u8]) -> Vec<Vec<u8>> {
    let mut p = bytes::BytesMut::new();
    p.extend_from_slice(&[0x16]);
    p.extend_from_slice(sql.as_bytes());
    let mut out = c.roundtrip(&p, Expect::Prepare).unwrap();
    assert_eq!(out[0][0], 0x00, "{sql}: {out:?}");
    let id: [u8; 4] = out[0][1..5].try_into().unwrap();
    out[0][1..5].fill(0);
    let params = u16::from_le_bytes([out[0][7], out[0][8]]) as usize;
    let mut x = vec![0x17];
    x.extend_from_slice(&id);
    x.push(0);
    x.extend_from_slice(&1u32.to_le_bytes());
    if params > 0 {
        x.extend(std::iter::repeat_n(0u8, params.div_ceil(8)));
        x.push(1);
        for _ in 0..params {
            x.extend_from_slice(&[0xfd, 0x00]);
        }
        for _ in 0..params {
            x.push(param.len() as u8);
            x.extend_from_slice(param);
        }
    }
    out.extend(c.roundtrip(&x, Expect::Results).unwrap());
    let mut close = vec![0x19];
    close.extend_from_slice(&id);
    c.send_command(&close).unwrap();
    out
}

/// A text query of a string, its comparison and the connection's
/// character set variables: what `SET NAMES` changes.
const CHARSET_PROBE: &str = "SELECT 'abc' AS s, 'a' = 'A' AS eq, CHARSET('x') AS cs, \
     COLLATION('x') AS co, @@character_set_client, @@character_set_results, @@collation_connection";

/// String parameters are read in `character_set_client` and compared
/// under `collation_connection`.
const PARAM_PROBE: &str = "SELECT HEX(CONVERT(? USING utf8mb4)) AS h, ? = 'A' AS eq, ? = '\u{e9}' AS e, \
     CHARSET(?) AS cs, COLLATION(?) AS co";

/// Binary prepared statements after a locally answered `SET NAMES`: the
/// result columns' character sets in the metadata, and comparisons under
/// the collation, are those of a direct connection.
#[test]
fn local_sets_prepared_statements_follow_set_names() {
    let e = env("lsprep", "");
    let none = Capabilities::EMPTY;
    for set in [
        "SET NAMES latin1",
        "SET NAMES utf8mb4 COLLATE utf8mb4_bin",
        "SET NAMES binary",
        "SET character_set_results = NULL",
        "SET collation_connection = latin1_german1_ci",
    ] {
        reply(&mut e.funnel(&e.schema, none), set);
        // The second client's prepares are described from Funnel's
        // registry of the first's.
        for round in 0..2 {
            let before = e.answered_locally();
            let mut f = e.funnel(&e.schema, none);
            let mut d = e.direct(&e.schema, none);
            let mut got = vec![reply(&mut f, set)];
            assert_eq!(e.answered_locally(), before + 1, "{set} answered by Funnel");
            let mut want = vec![reply(&mut d, set)];
            for (c, out) in [(&mut f, &mut got), (&mut d, &mut want)] {
                out.push(prepare_and_execute(c, CHARSET_PROBE, b""));
                out.push(prepare_and_execute(c, PARAM_PROBE, "\u{e9}".as_bytes()));
                out.push(prepare_and_execute(c, PARAM_PROBE, b"\xe9"));
                out.push(reply(c, CHARSET_PROBE));
            }
            assert_eq!(got, want, "{set}, client {round}: as on a direct connection");
        }
    }
}

/// A statement prepared before a locally answered `SET NAMES` and executed
/// after it: its result columns are described in the new character set,
/// as on a direct connection.
#[test]
fn local_sets_statement_prepared_before_set_names() {
    let e = env("lsprepbefore", "");
    let none = Capabilities::EMPTY;
    let set = "SET NAMES latin1";
    let run = |c: &mut MiniClient, local: Option<u64>| {
        let mut p = bytes::BytesMut::new();
        p.extend_from_slice(&[0x16]);
        p.extend_from_slice(CHARSET_PROBE.as_bytes());
        let mut out = c.roundtrip(&p, Expect::Prepare).unwrap();
        let id: [u8; 4] = out[0][1..5].try_into().unwrap();
        out[0][1..5].fill(0);
        out.extend(reply(c, set));
        if let Some(before) = local {
            assert_eq!(e.answered_locally(), before + 1, "{set} answered by Funnel");
        }
        let mut x = vec![0x17];
        x.extend_from_slice(&id);
        x.push(0);
        x.extend_from_slice(&1u32.to_le_bytes());
        out.extend(c.roundtrip(&x, Expect::Results).unwrap());
        out
    };
    run(&mut e.funnel(&e.schema, none), None);
    let got = run(&mut e.funnel(&e.schema, none), Some(e.answered_locally()));
    let want = run(&mut e.direct(&e.schema, none), None);
    assert_eq!(got, want, "as on a direct connection");
}

/// A `mysql` crate connection to `addr`.
fn mysql_conn(
    addr: std::net::SocketAddr,
    user: &str,
    pass: &str,
    schema: &str,
    compress: bool,
) -> mysql::Conn {
    let mut o = mysql::OptsBuilder::new()
        .ip_or_hostname(Some("127.0.0.1"))
        .tcp_port(addr.port())
        .user(Some(user))
        .pass(Some(pass))
        .db_name(Some(schema))
        .prefer_socket(false);
    if compress {
        o = o.compress(Some(mysql::Compression::default()));
    }
    mysql::Conn::new(o).unwrap()
}

impl Env {
    fn funnel_mysql(&self, compress: bool) -> mysql::Conn {
        mysql_conn(self.proxy.local_addr(), "app", "apppw", &self.schema, compress)
    }

    fn direct_mysql(&self, compress: bool) -> mysql::Conn {
        let user = format!("{}_b", self.schema);
        mysql_conn(self.db.addr(), &user, "bpw", &self.schema, compress)
    }
}

/// What a client sees of a statement through the `mysql` crate: its rows
/// (or error) and the OK's counts and status.
fn seen(c: &mut mysql::Conn, sql: &str) -> String {
    use mysql::prelude::Queryable;
    match c.query::<mysql::Row, _>(sql) {
        Ok(rows) => format!(
            "{sql}: {:?} affected {} warnings {} info {:?}",
            rows.iter().map(|r| r.clone().unwrap()).collect::<Vec<_>>(),
            c.affected_rows(),
            c.warnings(),
            c.info_str()
        ),
        Err(e) => format!("{sql}: {e}"),
    }
}

const SESSION_PROBE: &str = "SELECT @@character_set_client, @@character_set_results, \
     @@collation_connection, @@autocommit, @@time_zone, @@in_transaction";

/// `COM_RESET_CONNECTION` and `COM_CHANGE_USER` after locally answered
/// `SET`s: the variables are the defaults again, and the same `SET`s
/// answered locally after them take effect, as on a direct connection.
#[test]
fn local_sets_reset_and_change_user_forget_them() {
    let e = env("lsreset", "");
    let sets = [
        "SET NAMES latin1",
        "SET time_zone = '+03:00'",
        "SET autocommit = 0",
    ];
    let run = |c: &mut mysql::Conn| {
        let mut out = Vec::new();
        for set in sets {
            out.push(seen(c, set));
        }
        out.push(seen(c, SESSION_PROBE));
        c.reset().unwrap();
        out.push(seen(c, SESSION_PROBE));
        for set in sets {
            out.push(seen(c, set));
            out.push(seen(c, SESSION_PROBE));
        }
        c.change_user(mysql::ChangeUserOpts::DEFAULT).unwrap();
        out.push(seen(c, SESSION_PROBE));
        for set in sets {
            out.push(seen(c, set));
            out.push(seen(c, SESSION_PROBE));
        }
        out
    };
    run(&mut e.funnel_mysql(false));
    let before = e.answered_locally();
    let got = run(&mut e.funnel_mysql(false));
    assert_eq!(e.answered_locally(), before + 9, "every SET answered by Funnel");
    let want = run(&mut e.direct_mysql(false));
    assert_eq!(got, want, "as on a direct connection");
}

/// The compressed protocol: a learned reply goes out compressed like any
/// other, and the session is as on a direct compressed connection.
#[test]
fn local_sets_compressed_clients() {
    let e = env("lszip", "");
    let sets = ["SET NAMES latin1", "SET autocommit = 0", "SET autocommit = 1"];
    let run = |c: &mut mysql::Conn| {
        let mut out: Vec<String> = sets.iter().map(|s| seen(c, s)).collect();
        out.push(seen(c, CHARSET_PROBE));
        out.push(seen(c, SESSION_PROBE));
        out
    };
    run(&mut e.funnel_mysql(true));
    let before = e.answered_locally();
    let got = run(&mut e.funnel_mysql(true));
    assert_eq!(e.answered_locally(), before + 3, "every SET answered by Funnel");
    // An uncompressed client has other capabilities: its SETs are its own.
    run(&mut e.funnel_mysql(false));
    assert_eq!(
        e.answered_locally(),
        before + 3,
        "learned from compressed clients only"
    );
    assert_eq!(got, run(&mut e.direct_mysql(true)), "as on a direct connection");
}

/// Warnings, then a `SET`: within Funnel's 200 ms linger the `SET` goes
/// to the lingering connection (not answered locally) and `SHOW WARNINGS`
/// sees the client's warning, as directly (a `SET` opens no table, so the
/// server keeps the area). Past the linger the `SET` is answered locally,
/// and the diagnostics read what they read after a forwarded `SET`: the
/// known limit (docs/multiplexing.md, an empty area), never another
/// client's warnings.
#[test]
fn local_sets_keep_diagnostics_as_a_forwarded_set() {
    let e = env("lsdiag", "");
    let none = Capabilities::EMPTY;
    let set = "SET NAMES latin1";
    let reads = ["SHOW WARNINGS", "SELECT @@warning_count", "SELECT ROW_COUNT()"];
    let run = |c: &mut MiniClient, wait: bool| {
        let mut out = replies(c, &["SELECT 1/0", "SELECT CAST('x' AS SIGNED)"]);
        if wait {
            std::thread::sleep(Duration::from_millis(500));
        }
        out.extend(replies(c, &[set]));
        out.extend(replies(c, &reads));
        out
    };
    // Learned by a first client.
    reply(&mut e.funnel(&e.schema, none), set);
    let before = e.answered_locally();
    let got = run(&mut e.funnel(&e.schema, none), false);
    assert_eq!(e.answered_locally(), before, "the lingering connection ran it");
    assert_eq!(got, run(&mut e.direct(&e.schema, none), false), "as directly");

    // Past the linger: a forwarded SET (another text, not learned yet)
    // and a local one give the same.
    let mut other = e.funnel(&e.schema, none);
    reply(&mut other, "SELECT 1/0"); // another client's warning in the pool
    std::thread::sleep(Duration::from_millis(500));
    drop(other);
    let before = e.answered_locally();
    let mut forwarded = e.funnel(&e.schema, none);
    let mut fwd = replies(&mut forwarded, &["SELECT CAST('x' AS SIGNED)"]);
    std::thread::sleep(Duration::from_millis(500));
    fwd.extend(replies(&mut forwarded, &["SET NAMES latin2"]));
    fwd.extend(replies(&mut forwarded, &reads));
    assert_eq!(e.answered_locally(), before);
    let mut local = e.funnel(&e.schema, none);
    let mut loc = replies(&mut local, &["SELECT CAST('x' AS SIGNED)"]);
    std::thread::sleep(Duration::from_millis(500));
    loc.extend(replies(&mut local, &["SET NAMES latin2"]));
    assert_eq!(e.answered_locally(), before + 1, "answered by Funnel");
    loc.extend(replies(&mut local, &reads));
    assert_eq!(loc, fwd, "as after a forwarded SET");
}

/// `SET autocommit` answered locally, then `INSERT` with `ROLLBACK` or
/// `COMMIT`: the rows kept, the OKs' status flags, `ROW_COUNT()` and
/// `@@in_transaction` as on a direct connection.
#[test]
fn local_sets_autocommit_transactions_as_direct() {
    let e = env("lsac", "");
    let none = Capabilities::EMPTY;
    let run = |c: &mut MiniClient| {
        let t = "t";
        e.db.exec(&format!("DROP TABLE IF EXISTS `{}`.{t}", e.schema));
        e.db.exec(&format!("CREATE TABLE `{}`.{t} (id INT) ENGINE=InnoDB", e.schema));
        let sqls = [
            "SET autocommit = 0".to_string(),
            format!("INSERT INTO {t} VALUES (1)"),
            "ROLLBACK".into(),
            format!("SELECT COUNT(*) FROM {t}"),
            "ROLLBACK".into(),
            "SET autocommit = 1".into(),
            "SELECT ROW_COUNT(), @@autocommit, @@in_transaction".into(),
            format!("INSERT INTO {t} VALUES (2), (3)"),
            "SET NAMES latin1".into(),
            "SELECT ROW_COUNT(), @@warning_count".into(),
            "ROLLBACK".into(),
            format!("SELECT COUNT(*) FROM {t}"),
            "SET autocommit = 0".into(),
            "SELECT @@autocommit, @@in_transaction".into(),
            format!("INSERT INTO {t} VALUES (4)"),
            "COMMIT".into(),
            "SET autocommit = 1".into(),
            format!("INSERT INTO {t} VALUES (5)"),
            "ROLLBACK".into(),
            "SET autocommit = 0".into(),
            format!("INSERT INTO {t} VALUES (6)"),
            // Ends the transaction: the server commits it.
            "SET autocommit = 1".into(),
            "ROLLBACK".into(),
            format!("SELECT COUNT(*), SUM(id) FROM {t}"),
        ];
        let sqls: Vec<&str> = sqls.iter().map(String::as_str).collect();
        replies(c, &sqls)
    };
    let first = run(&mut e.funnel(&e.schema, none));
    let before = e.answered_locally();
    let got = run(&mut e.funnel(&e.schema, none));
    let local = e.answered_locally() - before;
    let want = run(&mut e.direct(&e.schema, none));
    assert_eq!(got, want, "as on a direct connection");
    assert_eq!(first, want, "as on a direct connection");
    assert!(local >= 5, "SETs answered by Funnel: {local}");
}

/// A query rule that routes a `SET` to another hostgroup: a reply learned
/// in one hostgroup does not answer for the other.
#[test]
fn local_sets_learned_per_hostgroup() {
    let db = MariaDb::shared();
    let probe = db.fresh_database("lshg_other");
    let e = env(
        "lshg",
        &format!(
            "  - name: second\n    address: {addr}\n    user: {probe}_b\n    password: bpw\n    hostgroup: other\n\
             query_rules:\n  - match_prefix: \"SET NAMES\"\n    schema: {probe}\n    hostgroup: other\n",
            addr = db.addr()
        ),
    );
    db.create_user(&format!("{probe}_b"), "bpw");
    let none = Capabilities::EMPTY;
    let set = "SET NAMES latin1";
    reply(&mut e.funnel(&e.schema, none), set);
    let before = e.answered_locally();
    reply(&mut e.funnel(&e.schema, none), set);
    assert_eq!(
        e.answered_locally(),
        before + 1,
        "learned in the default hostgroup"
    );
    let mut c = e.funnel(&probe, none);
    let got = replies(&mut c, &[set, CHARSET_PROBE]);
    assert_eq!(e.answered_locally(), before + 1, "not from the other hostgroup");
    let mut d = e.direct(&probe, none);
    assert_eq!(got, replies(&mut d, &[set, CHARSET_PROBE]));
    let mut c = e.funnel(&probe, none);
    let got = replies(&mut c, &[set, CHARSET_PROBE]);
    assert_eq!(e.answered_locally(), before + 2, "learned in the other hostgroup");
    assert_eq!(got, replies(&mut d, &[set, CHARSET_PROBE]));
}

/// `sql_mode` changes how the server reads a `SET` (`ANSI_QUOTES`: a
/// double-quoted value is a name) and the status flags of its OK
/// (`NO_BACKSLASH_ESCAPES`): as on a direct connection, whether answered
/// locally or not.
#[test]
fn local_sets_follow_sql_mode() {
    let e = env("lsmode", "");
    let none = Capabilities::EMPTY;
    let sqls = [
        "SET sql_mode = 'ANSI_QUOTES'",
        "SET NAMES \"latin1\"",
        "SET time_zone = \"+01:00\"",
        "SELECT @@character_set_client, @@time_zone, @@sql_mode",
        "SET sql_mode = 'NO_BACKSLASH_ESCAPES'",
        "SET NAMES 'utf8mb4'",
        "SET time_zone = '+02:00'",
        "SELECT @@character_set_client, @@time_zone, @@sql_mode",
        "SET sql_mode = ''",
        "SET NAMES utf8mb4 COLLATE utf8mb4_bin",
        "SELECT @@collation_connection, 'a' = 'A', @@sql_mode",
    ];
    let first = replies(&mut e.funnel(&e.schema, none), &sqls);
    let mut c = e.funnel(&e.schema, none);
    let mut got = Vec::new();
    let mut forwarded = Vec::new();
    for sql in sqls {
        let before = e.answered_locally();
        got.push((sql.to_string(), reply(&mut c, sql)));
        if sql.starts_with("SET") && e.answered_locally() == before {
            forwarded.push(sql);
        }
    }
    // Under ANSI_QUOTES every OK has the server's status bit 0x8000
    // (SERVER_STATUS_ANSI_QUOTES), which is not learned: those go to it.
    assert_eq!(forwarded, &sqls[..3], "the others answered by Funnel");
    let want = replies(&mut e.direct(&e.schema, none), &sqls);
    assert_eq!(first, want, "as on a direct connection");
    assert_eq!(got, want, "as on a direct connection");
}

/// `NO_BACKSLASH_ESCAPES` shows in every OK's status flags: after a
/// `COM_RESET_CONNECTION` the session's `sql_mode` is the default again,
/// and a locally answered `SET` must not carry the flag.
#[test]
fn local_sets_status_after_reset_of_no_backslash_escapes() {
    let e = env("lsnbe", "");
    let none = Capabilities::EMPTY;
    let run = |c: &mut MiniClient| {
        let mut out = replies(c, &["SET sql_mode = 'NO_BACKSLASH_ESCAPES'", "SET NAMES latin1"]);
        out.push(("reset".into(), c.roundtrip(&[0x1f], Expect::Status).unwrap()));
        out.extend(replies(
            c,
            &[
                "SET NAMES latin1",
                "SET autocommit = 0",
                "SELECT @@sql_mode, @@character_set_client",
            ],
        ));
        out
    };
    run(&mut e.funnel(&e.schema, none));
    let before = e.answered_locally();
    let got = run(&mut e.funnel(&e.schema, none));
    assert_eq!(e.answered_locally(), before + 4, "every SET answered by Funnel");
    assert_eq!(
        got,
        run(&mut e.direct(&e.schema, none)),
        "as on a direct connection"
    );
}

/// `SET`s whose effect reaches past the session variables Funnel replays:
/// the ids and time a statement sees, limits, the transaction mode. Each
/// answered locally, then its effect, as on a direct connection.
#[test]
fn local_sets_with_effects_beyond_variables() {
    let e = env("lsmisc", "");
    let none = Capabilities::EMPTY;
    let cases: &[(&str, &[&str])] = &[
        (
            "SET identity = 5",
            &["SELECT LAST_INSERT_ID()", "SELECT @@identity, @@last_insert_id"],
        ),
        (
            "SET insert_id = 100",
            &[
                "INSERT INTO ai (v) VALUES (1)",
                "SELECT LAST_INSERT_ID(), MAX(id) FROM ai",
            ],
        ),
        ("SET timestamp = 1000000000", &["SELECT UNIX_TIMESTAMP(), NOW()"]),
        (
            "SET sql_select_limit = 1",
            &["SELECT * FROM seq_1_to_3", "SELECT FOUND_ROWS()"],
        ),
        ("SET rand_seed1 = 1, rand_seed2 = 2", &["SELECT RAND(), RAND()"]),
        (
            "SET tx_read_only = 1",
            &["START TRANSACTION", "INSERT INTO ai (v) VALUES (2)", "ROLLBACK"],
        ),
        (
            "SET transaction_read_only = 0",
            &["START TRANSACTION", "INSERT INTO ai (v) VALUES (3)", "ROLLBACK"],
        ),
        (
            "SET sql_auto_is_null = 1",
            &[
                "INSERT INTO ai (v) VALUES (4)",
                "SELECT v FROM ai WHERE id IS NULL",
            ],
        ),
        (
            "SET @@SESSION.autocommit = OFF",
            &[
                "INSERT INTO ai (v) VALUES (5)",
                "ROLLBACK",
                "SELECT COUNT(*) FROM ai",
            ],
        ),
        (
            "SET autocommit = 'ON'",
            &["SELECT @@autocommit, @@in_transaction"],
        ),
    ];
    let before_each: &[&str] = &["INSERT INTO ai (v) VALUES (7), (8)", "SELECT * FROM seq_1_to_3"];
    let results = ["SELECT ROW_COUNT(), FOUND_ROWS(), LAST_INSERT_ID()"];
    let mut forwarded = Vec::new();
    for (i, (set, after)) in cases.iter().enumerate() {
        let run = |c: &mut MiniClient| {
            e.db.exec(&format!("DROP TABLE IF EXISTS `{}`.ai", e.schema));
            e.db.exec(&format!(
                "CREATE TABLE `{}`.ai (id INT AUTO_INCREMENT PRIMARY KEY, v INT) ENGINE=InnoDB",
                e.schema
            ));
            let mut out = replies(c, before_each);
            out.extend(replies(c, &[set]));
            out.extend(replies(c, &results));
            out.extend(replies(c, after));
            out
        };
        run(&mut e.funnel(&e.schema, none));
        let before = e.answered_locally();
        let got = run(&mut e.funnel(&e.schema, none));
        if e.answered_locally() == before {
            forwarded.push(*set);
        }
        assert_eq!(
            got,
            run(&mut e.direct(&e.schema, none)),
            "case {i}: as on a direct connection"
        );
    }
    // The others are not plain `SET`s to Funnel (they pin, or set what
    // it tracks itself): the server answers them.
    assert_eq!(
        forwarded,
        [
            "SET identity = 5",
            "SET insert_id = 100",
            "SET timestamp = 1000000000",
            "SET rand_seed1 = 1, rand_seed2 = 2",
            "SET transaction_read_only = 0",
            "SET sql_auto_is_null = 1"
        ]
    );
}

/// A client that tracks session state sees in the OK of `SET NAMES` the
/// values it set: the same whatever character set it logged in with, as
/// on a direct connection.
#[test]
fn local_sets_tracking_clients_with_other_login_charsets() {
    let e = env("lscs", "");
    let tracking = Capabilities::CLIENT_SESSION_TRACK;
    let sqls = [
        "SET NAMES latin1",
        "SET character_set_results = utf8mb4",
        "SET autocommit = 0",
    ];
    let funnel = |charset: u8| {
        MiniClient::connect_with_charset(
            e.proxy.local_addr(),
            "app",
            "apppw",
            Some(&e.schema),
            tracking,
            charset,
        )
        .unwrap()
    };
    let direct = |charset: u8| {
        let user = format!("{}_b", e.schema);
        MiniClient::connect_with_charset(e.db.addr(), &user, "bpw", Some(&e.schema), tracking, charset)
            .unwrap()
    };
    for charset in [8u8, 33, 45, 63] {
        replies(&mut funnel(charset), &sqls);
        let probe = "SELECT @@character_set_client, @@character_set_results, @@collation_connection";
        let before = e.answered_locally();
        let mut f = funnel(charset);
        let mut got = replies(&mut f, &sqls);
        let local = e.answered_locally() - before;
        got.extend(replies(&mut f, &[probe]));
        let mut d = direct(charset);
        let mut want = replies(&mut d, &sqls);
        want.extend(replies(&mut d, &[probe]));
        assert_eq!(got, want, "login charset {charset}");
        assert_eq!(local, 3, "login charset {charset}: every SET answered by Funnel");
    }
}

/// `SET`s whose effect depends on the ones before (`SET NAMES` resets the
/// collation, `old_mode` changes what `utf8` means): answered locally,
/// they run on no connection, and the session's next connection gets the
/// recorded variables; the values must be those of running them in
/// order, as on a direct connection.
#[test]
fn local_sets_in_order() {
    let e = env("lsorder", "");
    let none = Capabilities::EMPTY;
    let probe = "SELECT @@character_set_client, @@character_set_connection, @@character_set_results, \
                 @@collation_connection, @@time_zone, @@sql_mode, @@old_mode";
    let sequences: &[&[&str]] = &[
        &[
            "SET collation_connection = latin1_german1_ci",
            "SET NAMES utf8mb4",
        ],
        &["SET NAMES utf8mb4", "SET character_set_client = latin1"],
        &["SET character_set_results = NULL", "SET NAMES latin1"],
        &[
            "SET NAMES latin1 COLLATE latin1_bin",
            "SET character_set_connection = utf8mb4",
        ],
        &["SET NAMES utf8", "SET old_mode = ''"],
        &[
            "SET old_mode = ''",
            "SET NAMES utf8",
            "SET old_mode = 'UTF8_IS_UTF8MB3'",
        ],
        &["SET time_zone = '+01:00'", "SET time_zone = 'SYSTEM'"],
        &["SET sql_mode = 'PIPES_AS_CONCAT'", "SET sql_mode = 'TRADITIONAL'"],
        &["SET NAMES latin1", "SET character_set_client = DEFAULT"],
    ];
    for seq in sequences {
        let run = |c: &mut MiniClient| {
            let mut out = replies(c, seq);
            out.extend(replies(c, &[probe]));
            out
        };
        run(&mut e.funnel(&e.schema, none));
        let before = e.answered_locally();
        let got = run(&mut e.funnel(&e.schema, none));
        // (`= DEFAULT` goes to the server.)
        let plain = seq.iter().filter(|s| !s.ends_with("DEFAULT")).count() as u64;
        assert_eq!(
            e.answered_locally(),
            before + plain,
            "{seq:?}: answered by Funnel"
        );
        assert_eq!(
            got,
            run(&mut e.direct(&e.schema, none)),
            "{seq:?}: as on a direct connection"
        );
    }
}

/// A `SET` the user's default hostgroup could not take (no connection
/// there) is checked on its read hostgroup (`route.fallback`): that reply
/// is the read hostgroup's verdict, and must not answer the same `SET`
/// for the default hostgroup once it serves again. Here its backend user
/// may not set `sql_log_off` (no SUPER), the read hostgroup's may.
#[test]
fn local_sets_not_learned_from_the_fallback_hostgroup() {
    let db = MariaDb::shared();
    let schema = db.fresh_database("lsfallback");
    let (writer, reader) = (format!("{schema}_w"), format!("{schema}_r"));
    db.create_user(&reader, "bpw");
    db.exec(&format!(
        "CREATE USER '{writer}'@'%' IDENTIFIED VIA mysql_native_password USING PASSWORD('bpw')"
    ));
    db.exec(&format!("GRANT ALL ON `{schema}`.* TO '{writer}'@'%'"));
    let yaml = format!(
        "listen: 127.0.0.1:0\ncores: 1\n\
         users:\n  - name: app\n    password: apppw\n    default_schema: {schema}\n    \
         default_hostgroup: writer\n    read_hostgroup: readers\n\
         backends:\n\
         \x20 - name: w\n    address: {addr}\n    user: {writer}\n    password: bpw\n    hostgroup: writer\n\
         \x20 - name: r\n    address: {addr}\n    user: {reader}\n    password: bpw\n    hostgroup: readers\n\
         pool:\n  min_idle_per_core: 0\n",
        addr = db.addr()
    );
    let proxy = funnel_testkit::funnel::start(Config::from_yaml_str(&yaml).unwrap());
    wait_for_monitor(&proxy);
    let answered_locally = || -> u64 {
        proxy
            .snapshots()
            .iter()
            .map(|s| s.counters.sets_answered_locally)
            .sum()
    };
    let funnel = || MiniClient::connect(proxy.local_addr(), "app", "apppw", Some(&schema)).unwrap();
    let set = "SET sql_log_off = 1";
    let mut direct = MiniClient::connect(db.addr(), &writer, "bpw", Some(&schema)).unwrap();
    let want = reply(&mut direct, set);
    assert_eq!(want[0][0], 0xff, "the writer's user may not: {want:?}");

    db.exec(&format!("ALTER USER '{writer}'@'%' ACCOUNT LOCK"));
    let mut first = funnel();
    let fallback = reply(&mut first, set);
    drop(first);
    db.exec(&format!("ALTER USER '{writer}'@'%' ACCOUNT UNLOCK"));
    assert_eq!(fallback[0][0], 0x00, "the reader's verdict: {fallback:?}");
    // Funnel remembers the writer's refusal for a while (10 s): a write,
    // which has no fallback, tells when it serves again.
    let mut probe = funnel();
    funnel_testkit::wait_until_within("the writer serving again", SETTLE, || {
        reply(&mut probe, "CREATE TABLE IF NOT EXISTS t (id INT)")[0][0] == 0x00
    });

    let before = answered_locally();
    let got = reply(&mut funnel(), set);
    let local = answered_locally() - before;
    assert_eq!(
        got, want,
        "the writer's verdict, as directly (answered locally: {local})"
    );
    assert_eq!(local, 0);
}

/// A client that sends its next commands without waiting for the `SET`'s
/// OK (pipelining, as connection pools' init scripts may): the answers
/// come in order, as directly.
#[test]
fn local_sets_pipelined_commands() {
    let e = env("lspipe", "");
    let none = Capabilities::EMPTY;
    let sqls = [
        "SET NAMES latin1",
        "SET autocommit = 0",
        SESSION_PROBE,
        "SET autocommit = 1",
        CHARSET_PROBE,
    ];
    let run = |c: &mut MiniClient| {
        let mut bytes = Vec::new();
        for sql in sqls {
            let mut p = bytes::BytesMut::new();
            funnel_protocol::command::write_query(&mut p, sql.as_bytes());
            let mut packet = bytes::BytesMut::new();
            funnel_protocol::framing::write_packet(&mut packet, 0, &p);
            bytes.extend_from_slice(&packet);
        }
        c.write_raw(&bytes).unwrap();
        // Replies: an OK, an OK, 6 columns (count, 6 defs, EOF, row, EOF),
        // an OK, 7 columns.
        let n = 1 + 1 + (1 + 6 + 1 + 1 + 1) + 1 + (1 + 7 + 1 + 1 + 1);
        (0..n).map(|_| c.read_packet().unwrap()).collect::<Vec<_>>()
    };
    run(&mut e.funnel(&e.schema, none));
    let before = e.answered_locally();
    let got = run(&mut e.funnel(&e.schema, none));
    assert_eq!(e.answered_locally(), before + 3, "every SET answered by Funnel");
    assert_eq!(
        got,
        run(&mut e.direct(&e.schema, none)),
        "as on a direct connection"
    );
}
