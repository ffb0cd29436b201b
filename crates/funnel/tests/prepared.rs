//! Binary prepared statements through Funnel, spoken byte by byte: each
//! script runs once directly against MariaDB and once through Funnel,
//! where its clients share one backend connection, and every reply must
//! be the same both ways (statement ids aside, which are Funnel's own).

use std::net::SocketAddr;

use funnel_protocol::tracker::Expect;
use funnel_protocol::Capabilities;
use funnel_testkit::mini_client::{MiniClient, MiniError};
use funnel_testkit::MariaDb;
use mysql::prelude::Queryable;

#[path = "prepared/bulk.rs"]
mod bulk;
#[path = "prepared/bulk_edges.rs"]
mod bulk_edges;
#[path = "prepared/charset_soak.rs"]
mod charset_soak;
#[path = "prepared/charset_switch.rs"]
mod charset_switch;
#[path = "prepared/described_again.rs"]
mod described_again;
#[path = "prepared/extended_metadata.rs"]
mod extended_metadata;
#[path = "prepared/metadata_cache.rs"]
mod metadata_cache;

/// `MYSQL_TYPE_LONGLONG`.
const LONGLONG: u8 = 8;
/// `MYSQL_TYPE_VAR_STRING`.
const VAR_STRING: u8 = 253;

/// One binary parameter: its type and its encoded value (`None`: NULL).
#[derive(Clone)]
struct Param {
    ty: u8,
    value: Option<Vec<u8>>,
}

fn int(v: i64) -> Param {
    Param {
        ty: LONGLONG,
        value: Some(v.to_le_bytes().to_vec()),
    }
}

fn text(s: &str) -> Param {
    assert!(s.len() < 251);
    let mut v = vec![s.len() as u8];
    v.extend_from_slice(s.as_bytes());
    Param {
        ty: VAR_STRING,
        value: Some(v),
    }
}

/// A raw client of either side.
struct Raw(MiniClient);

/// What a command answered, comparable across both sides: an error code,
/// or every packet with statement ids blanked.
type Reply = Result<Vec<Vec<u8>>, u16>;

impl Raw {
    fn connect(addr: SocketAddr, user: &str, pw: &str, db: &str) -> Raw {
        Raw::connect_with(addr, user, pw, db, Capabilities::EMPTY)
    }

    /// Logs in asking for `extra` capabilities too (what the server offers of them).
    fn connect_with(addr: SocketAddr, user: &str, pw: &str, db: &str, extra: Capabilities) -> Raw {
        Raw::connect_as(addr, user, pw, db, extra, 45)
    }

    /// [`Raw::connect_with`] with the handshake collation `charset`.
    fn connect_as(addr: SocketAddr, user: &str, pw: &str, db: &str, extra: Capabilities, charset: u8) -> Raw {
        Raw(
            MiniClient::connect_with_charset(addr, user, pw, Some(db), extra, charset)
                .unwrap_or_else(|e| panic!("login with charset {charset}: {e:?}")),
        )
    }

    fn call(&mut self, payload: &[u8], expect: Expect) -> Reply {
        match self.0.roundtrip(payload, expect) {
            Ok(packets) if packets.first().is_some_and(|p| p.first() == Some(&0xff)) => {
                Err(u16::from_le_bytes([packets[0][1], packets[0][2]]))
            }
            Ok(packets) => Ok(packets),
            Err(MiniError::Server(e)) => Err(e.code),
            Err(e) => panic!("{e:?}"),
        }
    }

    /// Prepares `sql`: the statement id, or the error code.
    fn prepare(&mut self, sql: &str) -> Result<u32, u16> {
        let mut p = vec![0x16];
        p.extend_from_slice(sql.as_bytes());
        let packets = self.call(&p, Expect::Prepare)?;
        Ok(u32::from_le_bytes(packets[0][1..5].try_into().unwrap()))
    }

    /// Prepares `sql`: the whole reply (its metadata), statement id blanked.
    fn prepare_reply(&mut self, sql: &str) -> Reply {
        let mut p = vec![0x16];
        p.extend_from_slice(sql.as_bytes());
        self.call(&p, Expect::Prepare).map(|mut packets| {
            packets[0][1..5].fill(0);
            packets
        })
    }

    /// Executes statement `id` with `flags` (cursor type); `types` says
    /// whether the parameter types are sent (new-params-bound flag).
    fn execute(&mut self, id: u32, flags: u8, params: &[Param], types: bool) -> Reply {
        self.call(&execute_payload(id, flags, params, types), Expect::Results)
    }

    fn fetch(&mut self, id: u32, rows: u32) -> Reply {
        let mut p = vec![0x1c];
        p.extend_from_slice(&id.to_le_bytes());
        p.extend_from_slice(&rows.to_le_bytes());
        self.call(&p, Expect::Fetch)
    }

    /// `COM_STMT_SEND_LONG_DATA` (no reply).
    fn long_data(&mut self, id: u32, param: u16, data: &[u8]) {
        let mut p = vec![0x18];
        p.extend_from_slice(&id.to_le_bytes());
        p.extend_from_slice(&param.to_le_bytes());
        p.extend_from_slice(data);
        self.0.send_command(&p).unwrap();
    }

    fn stmt_command(&mut self, code: u8, id: u32) {
        let mut p = vec![code];
        p.extend_from_slice(&id.to_le_bytes());
        self.0.send_command(&p).unwrap();
    }

    fn query(&mut self, sql: &str) -> Reply {
        let mut p = vec![0x03];
        p.extend_from_slice(sql.as_bytes());
        self.call(&p, Expect::Results)
    }
}

fn execute_payload(id: u32, flags: u8, params: &[Param], types: bool) -> Vec<u8> {
    let mut p = vec![0x17];
    p.extend_from_slice(&id.to_le_bytes());
    p.push(flags);
    p.extend_from_slice(&1u32.to_le_bytes());
    if !params.is_empty() {
        let mut nulls = vec![0u8; params.len().div_ceil(8)];
        for (i, prm) in params.iter().enumerate() {
            if prm.value.is_none() {
                nulls[i / 8] |= 1 << (i % 8);
            }
        }
        p.extend_from_slice(&nulls);
        p.push(u8::from(types));
        if types {
            for prm in params {
                p.extend_from_slice(&[prm.ty, 0]);
            }
        }
        for prm in params {
            if let Some(v) = &prm.value {
                p.extend_from_slice(v);
            }
        }
    }
    p
}

/// One side of a differential run: `n` clients logged in to `addr`.
fn clients(addr: SocketAddr, user: &str, pw: &str, db: &str, n: usize, extra: Capabilities) -> Vec<Raw> {
    (0..n)
        .map(|_| Raw::connect_with(addr, user, pw, db, extra))
        .collect()
}

/// The direct and backend accounts, created once per server.
fn users(db: &MariaDb) {
    static DONE: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut done = DONE.lock().unwrap();
    if !done.contains(&db.port()) {
        db.create_user("ps_direct", "dpw");
        db.create_user("ps_backend", "bpw");
        done.push(db.port());
    }
}

/// Funnel with one backend connection (`pool` of them) in front of the shared server.
fn funnel(db: &MariaDb, schema: &str, pool: usize) -> funnel_engine::Proxy {
    users(db);
    let cfg = funnel_testkit::funnel::config(
        db,
        ("app", "apppw"),
        ("ps_backend", "bpw"),
        Some(schema),
        &format!("pool:\n  max_per_core: {pool}\n  min_idle_per_core: 1\nbacklog:\n  wait_timeout: 3s\n"),
    );
    funnel_testkit::funnel::start(cfg)
}

/// A fresh schema named after `name`, made by `setup` (run there as root;
/// `<db>` in a statement names the schema).
fn schema_with(db: &MariaDb, name: &str, setup: &[&str]) -> String {
    let schema = db.fresh_database(name);
    let mut root = db.root();
    root.query_drop(format!("USE {schema}")).unwrap();
    for sql in setup {
        root.query_drop(sql.replace("<db>", &schema)).unwrap();
    }
    schema
}

/// Runs `script` on both sides and returns (direct, funnel) replies.
fn differential(
    name: &str,
    setup: &[&str],
    n: usize,
    pool: usize,
    script: impl Fn(&mut [Raw]) -> Vec<Reply>,
) -> (Vec<Reply>, Vec<Reply>) {
    differential_with(name, setup, n, pool, Capabilities::EMPTY, script)
}

/// [`differential`] with clients that ask for `extra` capabilities.
fn differential_with(
    name: &str,
    setup: &[&str],
    n: usize,
    pool: usize,
    extra: Capabilities,
    script: impl Fn(&mut [Raw]) -> Vec<Reply>,
) -> (Vec<Reply>, Vec<Reply>) {
    let db = MariaDb::shared();
    users(db);
    let direct_schema = schema_with(db, &format!("{name}_d"), setup);
    let funnel_schema = schema_with(db, &format!("{name}_f"), setup);
    let mut direct = clients(db.addr(), "ps_direct", "dpw", &direct_schema, n, extra);
    let d = script(&mut direct);
    let proxy = funnel(db, &funnel_schema, pool);
    let mut through = clients(proxy.local_addr(), "app", "apppw", &funnel_schema, n, extra);
    let f = script(&mut through);
    (mask(d, &direct_schema), mask(f, &funnel_schema))
}

/// Runs `script` with two clients that ask for capabilities `caps.0` and
/// `caps.1`, directly and then through Funnel with one backend connection,
/// in one fresh schema made by `setup` (the script leaves its tables as it
/// found them): (direct, funnel) replies.
fn differential_pair(
    name: &str,
    setup: &[&str],
    caps: (Capabilities, Capabilities),
    script: impl Fn(&mut Raw, &mut Raw) -> Vec<Reply>,
) -> (Vec<Reply>, Vec<Reply>) {
    let db = MariaDb::shared();
    users(db);
    let schema = schema_with(db, name, setup);
    let connect = |addr, user, pw, extra| Raw::connect_with(addr, user, pw, &schema, extra);
    let d = script(
        &mut connect(db.addr(), "ps_direct", "dpw", caps.0),
        &mut connect(db.addr(), "ps_direct", "dpw", caps.1),
    );
    let proxy = funnel(db, &schema, 1);
    let f = script(
        &mut connect(proxy.local_addr(), "app", "apppw", caps.0),
        &mut connect(proxy.local_addr(), "app", "apppw", caps.1),
    );
    (d, f)
}

/// Replaces the (length-prefixed) schema name in column definitions, the
/// only place where the two sides' replies differ by design.
fn mask(replies: Vec<Reply>, schema: &str) -> Vec<Reply> {
    let mut needle = vec![schema.len() as u8];
    needle.extend_from_slice(schema.as_bytes());
    replies
        .into_iter()
        .map(|r| {
            r.map(|packets| {
                packets
                    .into_iter()
                    .map(|p| match p.windows(needle.len()).position(|w| w == needle) {
                        Some(at) => [&p[..at], b"\x04<db>", &p[at + needle.len()..]].concat(),
                        None => p,
                    })
                    .collect()
            })
        })
        .collect()
}

/// Asserts both sides answered every step alike.
#[track_caller]
fn assert_same(d: &[Reply], f: &[Reply]) {
    let diffs: Vec<String> = d
        .iter()
        .zip(f)
        .enumerate()
        .filter(|(_, (d, f))| d != f)
        .map(|(i, (d, f))| format!("step {i}:\n  direct {d:?}\n  funnel {f:?}"))
        .collect();
    assert!(diffs.is_empty(), "{}", diffs.join("\n"));
}

/// Prepares of a text Funnel's registry knew: answered from it, or (a
/// second after a server last described the text) described again. A
/// test that looks for the registry's answer counts these, since under
/// load more than a second may pass between its steps; a text the
/// registry no longer knows (stale) counts in neither.
fn known_prepares(proxy: &funnel_engine::Proxy) -> u64 {
    proxy
        .snapshots()
        .iter()
        .map(|s| s.counters.prepares_from_registry + s.counters.prepares_rechecked)
        .sum()
}

/// The id MariaDB reads as "the statement this connection prepared last".
const LAST_PREPARED: u32 = u32::MAX;

#[test]
fn prepared_last_prepared_id_after_a_failed_prepare_is_unknown() {
    // A failed prepare leaves no "last statement": an execute of id -1
    // (as Connector/C's execute_direct pipelines it) must fail, not run
    // the statement prepared before.
    let setup = &[
        "CREATE TABLE t (id INT PRIMARY KEY, v INT)",
        "INSERT INTO t VALUES (1, 10)",
    ];
    let (d, f) = differential("ps_last", setup, 1, 1, |c| {
        let a = c[0].prepare("UPDATE t SET v = v + 1").unwrap();
        vec![
            c[0].prepare("SELEC bogus").map(|_| Vec::new()),
            c[0].execute(LAST_PREPARED, 0, &[], false),
            c[0].execute(a, 0, &[], false),
            c[0].query("SELECT v FROM t"),
        ]
    });
    assert_same(&d, &f);
    assert_eq!(d[1], Err(1243), "MariaDB refuses it");
}

fn null() -> Param {
    Param {
        ty: LONGLONG,
        value: None,
    }
}

#[test]
fn prepared_execute_without_types_reads_the_clients_own_types() {
    // Two clients share one backend statement: each execute that omits
    // the types (new-params-bound flag 0, as libmariadb sends after the
    // first execute) must be read with the types that client bound last,
    // not with those another client's execute left on the server.
    let nine = "SELECT CONCAT_WS(',', ?, ?, ?, ?, ?, ?, ?, ?, ?)";
    let (d, f) = differential("ps_types", &[], 2, 1, |c| {
        let a = c[0].prepare("SELECT ?").unwrap();
        let b = c[1].prepare("SELECT ?").unwrap();
        let a9 = c[0].prepare(nine).unwrap();
        let b9 = c[1].prepare(nine).unwrap();
        let mut ints: Vec<Param> = (0..9).map(int).collect();
        ints[8] = null();
        let texts: Vec<Param> = (0..9).map(|i| text(&format!("s{i}"))).collect();
        let mut out = vec![
            c[0].execute(a, 0, &[int(5)], true),
            c[1].execute(b, 0, &[text("hello")], true),
            c[0].execute(a, 0, &[int(7)], false),
            c[1].execute(b, 0, &[text("again")], false),
            c[0].execute(a, 0, &[null()], false),
            c[0].execute(a9, 0, &ints, true),
            c[1].execute(b9, 0, &texts, true),
        ];
        ints[0] = null();
        ints[8] = int(8);
        out.push(c[0].execute(a9, 0, &ints, false));
        out.push(c[1].execute(b9, 0, &texts, false));
        out
    });
    assert_same(&d, &f);
}

#[test]
fn prepared_execute_without_types_never_sent_is_refused_as_by_mariadb() {
    // The second client never sent types for its statement: MariaDB
    // refuses the execute (1210) or reads NULLs; another client's types,
    // bound on the shared backend statement, must not be used instead.
    let (d, f) = differential("ps_notypes", &[], 2, 1, |c| {
        let a = c[0].prepare("SELECT ?").unwrap();
        let b = c[1].prepare("SELECT ?").unwrap();
        vec![
            c[0].execute(a, 0, &[text("mine")], true),
            c[1].execute(b, 0, &[int(3)], false),
            c[1].execute(b, 0, &[null()], false),
            c[0].execute(a, 0, &[text("still mine")], false),
        ]
    });
    assert_same(&d, &f);
    assert_eq!(d[1], Err(1210));
}

/// Five rows to read through cursors.
const ROWS: &[&str] = &[
    "CREATE TABLE t (id INT PRIMARY KEY, v INT)",
    "INSERT INTO t VALUES (1, 10), (2, 20), (3, 30), (4, 40), (5, 50)",
];

/// `CURSOR_TYPE_READ_ONLY`.
const CURSOR: u8 = 1;

#[test]
fn prepared_row_count_after_a_fetch_reads_minus_one_as_directly() {
    // A fetch sends rows, as a SELECT does: the server's ROW_COUNT() reads
    // -1 after it, whether it ended the cursor or not; Funnel answered
    // the count of the statement before it (the insert's 1).
    let rows = &[
        "CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(20))",
        "INSERT INTO t VALUES (1, 'one'), (2, 'two'), (3, 'three')",
    ];
    let (d, f) = differential("ps_fetch_rc", rows, 1, 1, |c| {
        let cur = c[0].prepare("SELECT v FROM t ORDER BY id").unwrap();
        let ins = c[0].prepare("INSERT INTO t VALUES (?, ?)").unwrap();
        vec![
            c[0].execute(cur, CURSOR, &[], false),
            c[0].execute(ins, 0, &[int(4), text("x")], true),
            c[0].fetch(cur, 1),
            c[0].query("SELECT ROW_COUNT()"),
            c[0].execute(ins, 0, &[int(5), text("x")], true),
            c[0].fetch(cur, 5),
            c[0].query("SELECT ROW_COUNT()"),
            c[0].execute(ins, 0, &[int(6), text("x")], true),
            c[0].fetch(cur, 5),
            c[0].query("SELECT ROW_COUNT()"),
        ]
    });
    assert_same(&d, &f);
    assert_eq!(d[3], d[6], "-1 after a fetch that ended the cursor too");
}

#[test]
fn prepared_execute_without_a_cursor_ends_the_cursor_pin() {
    // Executing the statement again closes its open cursor on the server:
    // the client no longer needs its connection, and the next client (one
    // backend connection in all) must not wait for it in vain.
    let (d, f) = differential("ps_recur", ROWS, 2, 1, |c| {
        let a = c[0].prepare("SELECT v FROM t ORDER BY id").unwrap();
        vec![
            c[0].execute(a, CURSOR, &[], false),
            c[0].fetch(a, 2),
            c[0].execute(a, 0, &[], false),
            c[1].query("SELECT 1"),
            c[0].fetch(a, 1),
        ]
    });
    assert_same(&d, &f);
}

/// A parameter whose value came with `COM_STMT_SEND_LONG_DATA`.
fn long() -> Param {
    Param {
        ty: VAR_STRING,
        value: Some(Vec::new()),
    }
}

#[test]
fn prepared_same_text_twice_keeps_two_cursors_and_two_long_data() {
    // One client prepares the same text twice: MariaDB gives it two
    // statements, each with its own cursor and its own long data.
    let (d, f) = differential("ps_twice", ROWS, 1, 1, |c| {
        let sql = "SELECT v FROM t ORDER BY id";
        let a = c[0].prepare(sql).unwrap();
        let b = c[0].prepare(sql).unwrap();
        let x = c[0].prepare("SELECT CONCAT('<', ?, '>')").unwrap();
        let y = c[0].prepare("SELECT CONCAT('<', ?, '>')").unwrap();
        let mut out = vec![
            c[0].execute(a, CURSOR, &[], false),
            c[0].fetch(a, 2),
            c[0].execute(b, CURSOR, &[], false),
            c[0].fetch(a, 2),
            c[0].fetch(b, 1),
            c[0].fetch(a, 5),
        ];
        c[0].long_data(x, 0, b"xx");
        c[0].long_data(y, 0, b"yy");
        out.push(c[0].execute(x, 0, &[long()], true));
        out.push(c[0].execute(y, 0, &[long()], true));
        out
    });
    assert_same(&d, &f);
}

/// What a prepare answers depends on the session's own state: under
/// `LOCK TABLES` a statement naming a table not locked fails at prepare
/// (1100), in a `READ ONLY` transaction a write fails (1792), and a
/// temporary table hides the table of its name (the columns described are
/// its own). Such a session's prepares run on its own connection, never
/// answered from what other clients prepared, and what they describe is
/// never handed to others (soak seed 70255: a prepare answered in `{a}`
/// under `LOCK TABLES` failed at each execute after `USE {b}`, where the
/// server, having refused the prepare, prepared it again in `{b}`).
#[test]
fn prepared_statements_describe_the_sessions_own_tables_and_locks() {
    let setup = &[
        "CREATE TABLE t (id INT PRIMARY KEY, v INT)",
        "CREATE TABLE t2 (id INT PRIMARY KEY, v INT)",
        "INSERT INTO t VALUES (1, 10)",
        "INSERT INTO t2 VALUES (1, 20)",
    ];
    let (d, f) = differential("ps_own_state", setup, 2, 2, |c| {
        let mut r = Vec::new();
        // Known statements: client 1 prepared them first.
        for sql in [
            "UPDATE t2 SET v = v + 1",
            "SELECT * FROM t",
            "UPDATE t SET v = v + 1",
        ] {
            r.push(c[1].prepare_reply(sql));
        }
        r.push(c[0].query("LOCK TABLES t WRITE"));
        r.push(c[0].prepare_reply("UPDATE t2 SET v = v + 1"));
        r.push(c[0].query("UNLOCK TABLES"));
        r.push(c[0].query("START TRANSACTION READ ONLY"));
        r.push(c[0].prepare_reply("UPDATE t SET v = v + 1"));
        r.push(c[0].query("COMMIT"));
        r.push(c[0].query("CREATE TEMPORARY TABLE t (x VARCHAR(5))"));
        r.push(c[0].prepare_reply("SELECT * FROM t"));
        // First prepared by the session whose temporary table hides t2.
        r.push(c[0].query("CREATE TEMPORARY TABLE t2 (x VARCHAR(5))"));
        r.push(c[0].prepare_reply("SELECT * FROM t2 WHERE 1"));
        r.push(c[1].prepare_reply("SELECT * FROM t2 WHERE 1"));
        let id = c[1].prepare("SELECT * FROM t2 WHERE 1").unwrap();
        r.push(c[1].execute(id, 0, &[], false));
        r
    });
    assert_same(&d, &f);
    assert_eq!(d[4], Err(1100), "refused under LOCK TABLES");
    assert_eq!(d[7], Err(1792), "refused in a READ ONLY transaction");
    assert_ne!(d[10], d[1], "the temporary table's columns");
    assert_ne!(d[12], d[13], "the temporary table is client 0's alone");
}

/// A table altered on the server (by a migration tool, not through
/// Funnel) changes what a prepare of `SELECT *` describes. Once an execute
/// (or a connection's own prepare) shows another column count than the
/// statement Funnel recorded, the next client's prepare is described by
/// the server again, as on a direct connection; a client that prepared
/// before keeps its statement, as there (its executes carry the new
/// columns).
#[test]
fn prepared_statements_are_described_again_after_a_table_changed() {
    let setup = &[
        "CREATE TABLE t (id INT PRIMARY KEY, v INT)",
        "INSERT INTO t VALUES (1, 10)",
    ];
    let (d, f) = differential("ps_altered", setup, 2, 2, |c| {
        let mut r = Vec::new();
        let sql = "SELECT * FROM t WHERE id = 1";
        r.push(c[0].prepare_reply(sql));
        let a = c[0].prepare(sql).unwrap();
        r.push(c[0].execute(a, 0, &[], false));
        // The schema's name differs between the sides: read it.
        let Ok(packets) = c[0].query("SELECT DATABASE()") else {
            panic!("no schema")
        };
        let row = packets.iter().rev().nth(1).unwrap();
        let schema = std::str::from_utf8(&row[1..]).unwrap().to_owned();
        MariaDb::shared().exec(&format!("ALTER TABLE `{schema}`.t ADD COLUMN w INT DEFAULT 7"));
        r.push(c[0].execute(a, 0, &[], false));
        r.push(c[1].prepare_reply(sql));
        let b = c[1].prepare(sql).unwrap();
        r.push(c[1].execute(b, 0, &[], false));
        r
    });
    assert_same(&d, &f);
    assert_ne!(d[0], d[3], "the server describes three columns now");
}

/// Once an XA transaction's branch ended (`XA END`, then `XA PREPARE`),
/// the server refuses every statement until `XA COMMIT` / `XA ROLLBACK`,
/// a prepare too (1399): the session's prepares go to its connection, not
/// answered from what another client prepared, nor is a statement prepared
/// while the branch was active run elsewhere.
#[test]
fn prepared_statements_in_an_ended_xa_branch_are_refused_as_by_mariadb() {
    let (d, f) = differential("ps_xa", ROWS, 2, 2, |c| {
        let mut r = vec![
            c[1].prepare_reply("SELECT * FROM t"),
            c[1].prepare_reply("UPDATE t SET v = 2"),
            c[0].query("XA START 'ps_xa'"),
            c[0].query("UPDATE t SET v = 3 WHERE id = 1"),
        ];
        let active = c[0].prepare("SELECT v FROM t WHERE id = 1").unwrap();
        r.push(c[0].execute(active, 0, &[], false));
        r.push(c[0].query("XA END 'ps_xa'"));
        r.push(c[0].prepare_reply("SELECT * FROM t"));
        r.push(c[0].prepare_reply("UPDATE t SET v = 2"));
        r.push(c[0].execute(active, 0, &[], false));
        r.push(c[0].query("XA PREPARE 'ps_xa'"));
        r.push(c[0].prepare_reply("SELECT * FROM t"));
        r.push(c[0].query("XA ROLLBACK 'ps_xa'"));
        r.push(c[0].prepare_reply("SELECT * FROM t"));
        r.push(c[0].execute(active, 0, &[], false));
        r
    });
    assert_same(&d, &f);
    assert_eq!(d[6], Err(1399), "refused once the branch ended");
    assert_eq!(d[10], Err(1399), "refused once the branch is prepared");
    assert_eq!(d[12], d[0], "the same statement after the rollback");
}

/// A statement a pinned session prepared is its own (see
/// `prepared_statements_describe_the_sessions_own_tables_and_locks`): when
/// the client closes it, its server statement goes too, as on a direct
/// connection, instead of staying on the connection (and in the server's
/// count) until the connection's cache is full and evicts it.
#[test]
fn prepared_private_statements_closed_by_the_client_leave_the_server() {
    let db = MariaDb::start();
    users(&db);
    let schema = db.fresh_database("ps_private_close");
    let proxy = funnel(&db, &schema, 1);
    let count = || {
        db.query_first::<i64>(
            "SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS \
             WHERE VARIABLE_NAME = 'PREPARED_STMT_COUNT'",
        )
        .unwrap()
    };
    let mut c = Raw::connect(proxy.local_addr(), "app", "apppw", &schema);
    c.query("CREATE TEMPORARY TABLE tmp (x INT)").unwrap();
    let before = count();
    for _ in 0..20 {
        let id = c.prepare("SELECT * FROM tmp").unwrap();
        c.execute(id, 0, &[], false).unwrap();
        c.stmt_command(0x19, id);
    }
    // COM_STMT_CLOSE has no reply: a query after it is done after it.
    c.query("SELECT 1").unwrap();
    assert_eq!(count(), before, "statements the client closed");
    let kept = c.prepare("SELECT * FROM tmp").unwrap();
    c.query("SELECT 1").unwrap();
    assert_eq!(count(), before + 1, "a statement the client holds");
    c.execute(kept, 0, &[], false).unwrap();
}

/// Only state that can change what a prepare answers sends a pinned
/// session's prepares to its connection: a session pinned for a user
/// variable or a named lock is answered from what another client prepared
/// (no prepare reaches the server), one with a temporary table is not.
#[test]
fn prepared_sessions_pinned_for_state_prepares_ignore_still_share_statements() {
    let db = MariaDb::start();
    users(&db);
    let schema = db.fresh_database("ps_pin_share");
    db.exec(&format!("CREATE TABLE `{schema}`.t (id INT PRIMARY KEY, v INT)"));
    let proxy = funnel(&db, &schema, 2);
    let prepares = || {
        db.query_first::<i64>(
            "SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS \
             WHERE VARIABLE_NAME = 'COM_STMT_PREPARE'",
        )
        .unwrap()
    };
    let sql = "SELECT * FROM t WHERE id = ?";
    let mut c = clients(
        proxy.local_addr(),
        "app",
        "apppw",
        &schema,
        2,
        Capabilities::EMPTY,
    );
    c[1].prepare(sql).unwrap();
    for pin in ["SELECT @u := 1", "SELECT GET_LOCK('ps_pin_share', 0)"] {
        c[0].query(pin).unwrap();
        let known = known_prepares(&proxy);
        c[0].prepare(sql).unwrap();
        assert_eq!(
            known_prepares(&proxy),
            known + 1,
            "pinned by {pin}: from the registry"
        );
    }
    let (before, known) = (prepares(), known_prepares(&proxy));
    c[0].query("CREATE TEMPORARY TABLE tmp (x INT)").unwrap();
    c[0].prepare(sql).unwrap();
    assert_eq!(
        (prepares(), known_prepares(&proxy)),
        (before + 1, known),
        "a temporary table may hide t"
    );
}

#[test]
fn prepared_failed_prepare_pins_nothing() {
    // A statement reading FOUND_ROWS() keeps its client on one connection,
    // but one that fails to prepare is no statement: the only backend
    // connection must stay free for the next client.
    let (d, f) = differential("ps_failpin", ROWS, 2, 1, |c| {
        vec![
            c[0].prepare("SELECT FOUND_ROWS( FROM t").map(|_| Vec::new()),
            c[1].query("SELECT 1"),
            c[0].query("SELECT 2"),
        ]
    });
    assert_same(&d, &f);
}

#[test]
fn prepared_statements_spread_over_connections_stay_under_the_server_limit() {
    // Two clients hold 12 statements in all, under the server's limit of
    // 15, but a statement runs on whichever connection is free and each
    // connection prepares what it runs: Funnel's connections would hold 18
    // and the server refuses the 16th (1461). Statements no client needs
    // on that connection make room.
    let db = MariaDb::builder()
        .server_arg("--max-prepared-stmt-count=15")
        .start()
        .unwrap();
    users(&db);
    let schema = db.fresh_database("ps_max");
    let run = |c: &mut [Raw]| {
        // Both begin, so each has a connection of its own (two in all);
        // the pool then hands out the connection released last.
        let mut out = vec![c[0].query("BEGIN"), c[1].query("BEGIN")];
        let a: Vec<u32> = (0..6)
            .map(|i| c[0].prepare(&format!("SELECT {i}")).unwrap())
            .collect();
        let b: Vec<u32> = (0..6)
            .map(|i| c[1].prepare(&format!("SELECT {i} + 100")).unwrap())
            .collect();
        out.extend(a.iter().map(|&id| c[0].execute(id, 0, &[], false)));
        out.push(c[0].query("COMMIT"));
        out.extend(b.iter().map(|&id| c[1].execute(id, 0, &[], false)));
        out.push(c[1].query("COMMIT"));
        // The first client's statements now run on the second's connection.
        out.extend(a.iter().map(|&id| c[0].execute(id, 0, &[], false)));
        out.extend(b.iter().map(|&id| c[1].execute(id, 0, &[], false)));
        out
    };
    let mut direct = clients(db.addr(), "ps_direct", "dpw", &schema, 2, Capabilities::EMPTY);
    let d = run(&mut direct);
    drop(direct);
    // The server frees a closed session's statements as it notices the close.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while db
        .query_first::<(String, u64)>("SHOW GLOBAL STATUS LIKE 'Prepared_stmt_count'")
        .is_some_and(|(_, n)| n > 0)
    {
        assert!(
            std::time::Instant::now() < deadline,
            "direct statements never freed"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let proxy = funnel(&db, &schema, 2);
    let mut through = clients(
        proxy.local_addr(),
        "app",
        "apppw",
        &schema,
        2,
        Capabilities::EMPTY,
    );
    let f = run(&mut through);
    assert_same(&d, &f);
}

/// How many health checks Funnel's monitor has run against `db` (each
/// reads the replication status once).
fn health_checks(db: &MariaDb) -> u64 {
    db.query_first::<(String, u64)>("SHOW GLOBAL STATUS LIKE 'Com_show_slave_status'")
        .map_or(0, |(_, n)| n)
}

/// Waits until `db` has seen `count` health checks, and a little longer
/// for the verdict to reach the cores.
fn wait_for_health_checks(db: &MariaDb, count: u64) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while health_checks(db) < count {
        assert!(std::time::Instant::now() < deadline, "no health check");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    std::thread::sleep(std::time::Duration::from_millis(100));
}

#[test]
fn prepared_statements_cached_on_idle_connections_leave_room_on_the_server() {
    // Two clients' 16 statements end up cached on two connections each
    // way round (32 > the server's 24) while a third connection needs
    // room for one more: the retry on 1461 frees only the connection that
    // prepares. Each connection keeps its share of the server's limit
    // instead: 24 / 2 / 4 connections = 3.
    let db = MariaDb::builder()
        .server_arg("--max-prepared-stmt-count=24")
        .start()
        .unwrap();
    users(&db);
    let schema = db.fresh_database("ps_share");
    let before = health_checks(&db);
    let proxy = funnel(&db, &schema, 4);
    // The monitor's first round (it reads the limit) runs at start.
    wait_for_health_checks(&db, before + 1);
    let mut c = clients(
        proxy.local_addr(),
        "app",
        "apppw",
        &schema,
        3,
        Capabilities::EMPTY,
    );
    let texts = |who: usize| (0..8).map(move |i| format!("SELECT {i} + {}", who * 100));
    let ids: Vec<Vec<u32>> = (0..2)
        .map(|who| texts(who).map(|t| c[who].prepare(&t).unwrap()).collect())
        .collect();
    for round in 0..2 {
        // Both hold a connection; the second round swaps them (the pool
        // hands out the connection released last).
        let order = if round == 0 { [0, 1] } else { [1, 0] };
        for who in order {
            c[who].query("BEGIN").unwrap();
        }
        for who in 0..2 {
            for &id in &ids[who] {
                c[who]
                    .execute(id, 0, &[], false)
                    .unwrap_or_else(|e| panic!("round {round}: {e}"));
            }
        }
        for client in c.iter_mut().take(2) {
            client.query("COMMIT").unwrap();
        }
    }
    for client in c.iter_mut().take(2) {
        client.query("BEGIN").unwrap();
    }
    // A third connection: its prepare must find room on the server.
    let id = c[2]
        .prepare("SELECT 'third'")
        .expect("room for the third client's statement");
    c[2].execute(id, 0, &[], false).unwrap();
}

#[test]
fn prepared_statements_cached_before_the_server_limit_shrank_leave_room() {
    limit_shrinks_under_a_connections_cache(false);
}

#[test]
fn prepared_statements_cached_by_a_busy_connection_when_the_limit_shrank_leave_room() {
    limit_shrinks_under_a_connections_cache(true);
}

/// A connection caches 40 statements under the server's limit of 1000;
/// the limit then drops to 20 (SET GLOBAL) while it is idle or, with
/// `busy`, in a client's transaction. Each connection's share shrinks to
/// the minimum, but a cache only gives up one statement per new one it
/// takes: that connection would keep all 40 on the server, and another
/// connection's prepare would be refused (1461) with nothing of its own
/// to free.
fn limit_shrinks_under_a_connections_cache(busy: bool) {
    let db = MariaDb::builder()
        .server_arg("--max-prepared-stmt-count=1000")
        .start()
        .unwrap();
    users(&db);
    let schema = db.fresh_database(if busy { "ps_shrink_busy" } else { "ps_shrink" });
    let wait_checks = |db: &MariaDb, n: u64| wait_for_health_checks(db, health_checks(db) + n);
    let cfg = funnel_testkit::funnel::config(
        &db,
        ("app", "apppw"),
        ("ps_backend", "bpw"),
        Some(&schema),
        "pool:\n  max_per_core: 2\n  min_idle_per_core: 1\nbacklog:\n  wait_timeout: 3s\nmonitor:\n  interval: 50ms\n",
    );
    let proxy = funnel_testkit::funnel::start(cfg);
    wait_checks(&db, 1);
    let mut c = clients(
        proxy.local_addr(),
        "app",
        "apppw",
        &schema,
        2,
        Capabilities::EMPTY,
    );
    c[0].query("BEGIN").unwrap();
    for i in 0..40 {
        let id = c[0].prepare(&format!("SELECT {i} + 1000")).unwrap();
        c[0].execute(id, 0, &[], false).unwrap();
    }
    if !busy {
        c[0].query("COMMIT").unwrap();
    }
    db.root()
        .query_drop("SET GLOBAL max_prepared_stmt_count = 20")
        .unwrap();
    // The second check to finish from here read the new limit, and the
    // third began only after the second's verdict was sent; the snapshot
    // then comes after every core applied it (control messages keep
    // their order). A fixed pause after two was too short under load.
    wait_checks(&db, 3);
    proxy.snapshots();
    if busy {
        c[0].query("COMMIT").unwrap();
    }
    // Funnel closed the connection that kept 40; the server frees a
    // closed session's statements once its thread sees the close, which
    // may come after the next prepare on another connection (a 1461
    // then, one run in four under load).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while db
        .query_first::<(String, u64)>("SHOW GLOBAL STATUS LIKE 'Prepared_stmt_count'")
        .is_some_and(|(_, n)| n > 20)
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the connection over its share kept its statements"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    // Both hold a connection; the second one prepares.
    c[0].query("BEGIN").unwrap();
    c[1].query("BEGIN").unwrap();
    let id = c[1]
        .prepare("SELECT 'after the limit shrank'")
        .expect("room on the server for a new statement");
    c[1].execute(id, 0, &[], false).unwrap();
}

#[test]
fn prepared_prepare_metadata_follows_the_clients_handshake_charset() {
    // The prepare response describes result columns in the client's
    // character set (a latin1 client's 'abc' is 3 bytes long, a utf8mb4
    // client's 12): a repeated prepare answered from Funnel's registry
    // must not replay another charset's description.
    let db = MariaDb::shared();
    users(db);
    let schema = db.fresh_database("ps_cs");
    let run = |addr: SocketAddr, user: &str, pw: &str| {
        [8, 45, 8]
            .into_iter()
            .map(|charset| {
                let mut c = Raw::connect_as(addr, user, pw, &schema, Capabilities::EMPTY, charset);
                let mut reply = c.call(b"\x16SELECT 'abc' AS c, ? AS d", Expect::Prepare);
                if let Ok(packets) = &mut reply {
                    packets[0][1..5].fill(0); // the statement id
                }
                reply
            })
            .collect::<Vec<_>>()
    };
    let d = run(db.addr(), "ps_direct", "dpw");
    let proxy = funnel(db, &schema, 2);
    let f = run(proxy.local_addr(), "app", "apppw");
    assert_same(&d, &f);
}

/// A client whose handshake charset Funnel cannot name (gbk, 28).
fn gbk_client(proxy: &funnel_engine::Proxy, schema: &str) -> Raw {
    Raw::connect_as(
        proxy.local_addr(),
        "app",
        "apppw",
        schema,
        Capabilities::EMPTY,
        28,
    )
}

#[test]
fn prepared_execute_where_the_charset_cannot_be_restored_prepares_on_the_new_connection() {
    // The pooled connection that has the statement holds another client's
    // `SET NAMES`, which Funnel cannot undo by name for a gbk session: it
    // takes a fresh connection, where the statement must be prepared too.
    let db = MariaDb::shared();
    let schema = db.fresh_database("ps_cs_swap");
    let proxy = funnel(db, &schema, 1);
    let mut a = gbk_client(&proxy, &schema);
    let mut b = gbk_client(&proxy, &schema);
    let id = a.prepare("SELECT 7 AS n").unwrap();
    let first = a.execute(id, 0, &[], false).unwrap();
    b.call(b"\x03SET NAMES utf8mb4", Expect::Results).unwrap();
    let again = a.execute(id, 0, &[], false).expect("the execute runs");
    assert_eq!(first, again);
}

#[test]
fn prepared_text_command_on_the_connection_taken_for_a_charset_keeps_its_schema() {
    // The same change of connection for a text command: the connection
    // taken instead gets the session's schema too, not whichever schema
    // it was left in (none here, another client's otherwise).
    let db = MariaDb::shared();
    let mine = db.fresh_database("ps_cs_mine");
    let theirs = db.fresh_database("ps_cs_theirs");
    for schema in [&mine, &theirs] {
        db.exec(&format!(
            "CREATE TABLE {schema}.t (id INT PRIMARY KEY) ENGINE=InnoDB"
        ));
    }
    let proxy = funnel(db, &mine, 1);
    let mut a = gbk_client(&proxy, &mine);
    let mut b = gbk_client(&proxy, &theirs);
    b.call(b"\x03SET NAMES utf8mb4", Expect::Results).unwrap();
    a.call(b"\x03INSERT INTO t VALUES (1)", Expect::Results)
        .expect("the insert runs");
    let count = |schema: &str| db.query_first::<i64>(&format!("SELECT COUNT(*) FROM {schema}.t"));
    assert_eq!((count(&mine), count(&theirs)), (Some(1), Some(0)));
}

#[test]
fn prepared_execute_in_a_transaction_stays_on_its_connection_when_the_charset_cannot_be_restored() {
    // The statement was prepared without `SET NAMES`, the session set it
    // since and holds a transaction on a connection that lacks the
    // statement: the execute must run there, in the transaction, not in
    // autocommit on another connection (with the transaction rolled back).
    let db = MariaDb::shared();
    let schema = db.fresh_database("ps_cs_tx");
    db.exec(&format!(
        "CREATE TABLE {schema}.t (id INT PRIMARY KEY) ENGINE=InnoDB"
    ));
    let proxy = funnel(db, &schema, 2);
    let mut a = gbk_client(&proxy, &schema);
    let mut b = gbk_client(&proxy, &schema);
    // Qualified: on another connection it would run, whatever its schema.
    let id = a.prepare(&format!("INSERT INTO {schema}.t VALUES (2)")).unwrap();
    // b holds the connection that has the statement.
    b.call(b"\x03BEGIN", Expect::Results).unwrap();
    b.call(b"\x03SELECT 1", Expect::Results).unwrap();
    a.call(b"\x03SET NAMES utf8mb4", Expect::Results).unwrap();
    a.call(b"\x03BEGIN", Expect::Results).unwrap();
    a.call(b"\x03INSERT INTO t VALUES (1)", Expect::Results).unwrap();
    a.execute(id, 0, &[], false).unwrap();
    let inside: Option<Option<String>> = db.query_first(&format!("SELECT GROUP_CONCAT(id) FROM {schema}.t"));
    assert_eq!(inside, Some(None), "nothing committed before the COMMIT");
    a.call(b"\x03COMMIT", Expect::Results)
        .expect("the transaction commits");
    let ids: Option<String> = db.query_first(&format!("SELECT GROUP_CONCAT(id ORDER BY id) FROM {schema}.t"));
    assert_eq!(ids.as_deref(), Some("1,2"));
    b.call(b"\x03COMMIT", Expect::Results).unwrap();
}

#[test]
fn prepared_charset_swap_after_a_lost_transaction_ended_loses_no_transaction() {
    // The session's transaction died with its connection while Funnel
    // prepared the client's statement there, before the execute, and the
    // client ended it with ROLLBACK. Its next statement finds the pooled
    // connection in another client's `SET NAMES`, which Funnel cannot undo
    // for a gbk session, and takes another connection: that is no lost
    // transaction, and the statements after it run.
    let db = MariaDb::shared();
    let schema = db.fresh_database("ps_cs_lost");
    db.exec(&format!(
        "CREATE TABLE {schema}.t (id INT PRIMARY KEY) ENGINE=InnoDB"
    ));
    let proxy = funnel(db, &schema, 1);
    // The server ends Funnel's connections in the schema.
    let kill_connections = || {
        let mut root = db.root();
        let rows: Vec<mysql::Row> = root.query("SHOW PROCESSLIST").unwrap();
        for row in rows {
            let id: u64 = row.get(0).unwrap();
            let user: Option<String> = row.get(1).unwrap();
            let in_schema: Option<String> = row.get(3).unwrap();
            if user.as_deref() == Some("ps_backend") && in_schema.as_deref() == Some(schema.as_str()) {
                let _ = root.query_drop(format!("KILL {id}"));
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    let mut a = gbk_client(&proxy, &schema);
    let mut b = gbk_client(&proxy, &schema);
    let id = a.prepare("SELECT 7").unwrap();
    // The transaction's connection is not the one the statement is on.
    kill_connections();
    if a.call(b"\x03BEGIN", Expect::Results).is_err() {
        a.call(b"\x03BEGIN", Expect::Results).unwrap();
    }
    a.call(b"\x03INSERT INTO t VALUES (1)", Expect::Results).unwrap();
    kill_connections();
    assert!(a.execute(id, 0, &[], false).is_err(), "the connection is gone");
    a.call(b"\x03ROLLBACK", Expect::Results)
        .expect("ROLLBACK ends the lost transaction");
    b.call(b"\x03SET NAMES utf8mb4", Expect::Results).unwrap();
    a.call(b"\x03INSERT INTO t VALUES (3)", Expect::Results)
        .expect("the insert runs on another connection");
    a.call(b"\x03INSERT INTO t VALUES (4)", Expect::Results)
        .expect("no transaction was lost by the change of connection");
    let ids: Option<String> = db.query_first(&format!("SELECT GROUP_CONCAT(id ORDER BY id) FROM {schema}.t"));
    assert_eq!(ids.as_deref(), Some("3,4"));
}

#[test]
fn prepared_reset_connection_forgets_long_data() {
    // COM_RESET_CONNECTION on a connection held for long data goes to the
    // server, which drops the data with its statement: the client must
    // not keep its connection for it afterwards.
    let (d, f) = differential("ps_reset_ld", ROWS, 2, 1, |c| {
        let x = c[0].prepare("SELECT CONCAT('<', ?, '>')").unwrap();
        c[0].long_data(x, 0, b"xx");
        vec![c[0].call(&[0x1f], Expect::Status), c[1].query("SELECT 1")]
    });
    assert_same(&d, &f);
}

#[test]
fn prepared_reset_connection_forgets_cursors() {
    // The same for an open cursor: once the client's next cursor is done,
    // its connection is free for the next client.
    let (d, f) = differential("ps_reset_cur", ROWS, 2, 1, |c| {
        let a = c[0].prepare("SELECT v FROM t ORDER BY id").unwrap();
        let mut out = vec![
            c[0].execute(a, CURSOR, &[], false),
            c[0].call(&[0x1f], Expect::Status),
        ];
        let b = c[0].prepare("SELECT v FROM t WHERE id < 3 ORDER BY id").unwrap();
        out.push(c[0].execute(b, CURSOR, &[], false));
        out.push(c[0].fetch(b, 5));
        out.push(c[1].query("SELECT 2"));
        out
    });
    assert_same(&d, &f);
}

#[test]
fn prepared_many_statements_keep_an_open_cursor_and_long_data() {
    // Each backend connection keeps its 256 most recently used statements:
    // a client that prepares and runs 300 others while its cursor is open
    // and its long data waits must still read both afterwards.
    let (d, f) = differential("ps_lru", ROWS, 1, 1, |c| {
        let a = c[0].prepare("SELECT v FROM t ORDER BY id").unwrap();
        let x = c[0].prepare("SELECT CONCAT('<', ?, '>')").unwrap();
        let mut out = vec![c[0].execute(a, CURSOR, &[], false), c[0].fetch(a, 1)];
        c[0].long_data(x, 0, b"xx");
        for i in 0..300 {
            let s = c[0].prepare(&format!("SELECT {i}")).unwrap();
            out.push(c[0].execute(s, 0, &[], false));
        }
        out.push(c[0].fetch(a, 1));
        out.push(c[0].execute(x, 0, &[long()], true));
        out
    });
    assert_same(&d, &f);
}

#[test]
fn prepared_malformed_execute_gets_mariadbs_error_codes() {
    // Truncated executes of a one-parameter statement: before the end of
    // the fixed part (1835), where the new-params-bound flag belongs
    // (1210, wrong arguments), inside the types (1835). The session goes on.
    let (d, f) = differential("ps_malformed", &[], 1, 1, |c| {
        let one = c[0].prepare("SELECT ?").unwrap();
        let head = [&[0x17][..], &one.to_le_bytes(), &[0, 1, 0, 0, 0]].concat();
        vec![
            c[0].call(&head[..8], Expect::Results),
            c[0].call(&[&head[..], &[0]].concat(), Expect::Results),
            c[0].call(&head, Expect::Results),
            c[0].call(&[&head[..], &[0, 1, 8]].concat(), Expect::Results),
            c[0].query("SELECT 1"),
        ]
    });
    assert_same(&d, &f);
}

#[test]
fn prepared_fetch_reads_no_cursor_of_a_closed_statement() {
    // A statement closed with its cursor open, then the same text prepared
    // again in the same transaction: the new statement has no cursor, and
    // its fetch must not read the closed one's rows.
    let (d, f) = differential("ps_closed_cur", ROWS, 1, 1, |c| {
        let sql = "SELECT v FROM t ORDER BY id";
        let mut out = vec![c[0].query("BEGIN")];
        let a = c[0].prepare(sql).unwrap();
        out.push(c[0].execute(a, CURSOR, &[], false));
        out.push(c[0].fetch(a, 1));
        c[0].stmt_command(0x19, a);
        let b = c[0].prepare(sql).unwrap();
        out.push(c[0].fetch(b, 1));
        out.push(c[0].query("COMMIT"));
        out
    });
    assert_same(&d, &f);
}

#[test]
fn prepared_new_params_bound_flag_other_than_0_or_1_is_malformed() {
    // MariaDB refuses an execute whose new-params-bound flag is neither 0
    // nor 1 (1835): Funnel must not take it for one without types and
    // splice the client's remembered types in front of the sent ones.
    let (d, f) = differential("ps_flag2", &[], 2, 1, |c| {
        let a = c[0].prepare("SELECT ?").unwrap();
        let b = c[1].prepare("SELECT ?").unwrap();
        let mut out = vec![
            c[0].execute(a, 0, &[text("x")], true),
            c[1].execute(b, 0, &[int(5)], true),
        ];
        for flag in [2, 3, 255] {
            let mut p = execute_payload(a, 0, &[text("y")], true);
            p[11] = flag; // after the one-byte NULL bitmap
            out.push(c[0].call(&p, Expect::Results));
        }
        out.push(c[0].execute(a, 0, &[text("z")], false));
        out
    });
    assert_same(&d, &f);
}

// ---------------------------------------------------------------------------
// libmariadb (Connector/C), loaded with dlopen: after its first execute it
// sends the parameter types again only when the application binds anew.

use funnel_testkit::libmariadb::sym;
use std::ffi::{c_char, c_int, c_uint, c_ulong, c_void, CStr, CString};

/// `MYSQL_BIND` of libmariadb 3 (`mysql.h`).
#[repr(C)]
struct MysqlBind {
    length: *mut c_ulong,
    is_null: *mut c_char,
    buffer: *mut c_void,
    error: *mut c_char,
    u: *mut c_void,
    store_param_func: *mut c_void,
    fetch_result: *mut c_void,
    skip_result: *mut c_void,
    buffer_length: c_ulong,
    offset: c_ulong,
    length_value: c_ulong,
    flags: c_uint,
    pack_length: c_uint,
    buffer_type: c_uint,
    error_value: c_char,
    is_unsigned: c_char,
    long_data_used: c_char,
    is_null_value: c_char,
    extension: *mut c_void,
}

/// The libmariadb functions these tests call.
struct Connector {
    init: unsafe extern "C" fn(*mut c_void) -> *mut c_void,
    connect: unsafe extern "C" fn(
        *mut c_void,
        *const c_char,
        *const c_char,
        *const c_char,
        *const c_char,
        c_uint,
        *const c_char,
        c_ulong,
    ) -> *mut c_void,
    error: unsafe extern "C" fn(*mut c_void) -> *const c_char,
    close: unsafe extern "C" fn(*mut c_void),
    stmt_init: unsafe extern "C" fn(*mut c_void) -> *mut c_void,
    stmt_prepare: unsafe extern "C" fn(*mut c_void, *const c_char, c_ulong) -> c_int,
    stmt_bind_param: unsafe extern "C" fn(*mut c_void, *mut MysqlBind) -> c_char,
    stmt_execute: unsafe extern "C" fn(*mut c_void) -> c_int,
    stmt_errno: unsafe extern "C" fn(*mut c_void) -> c_uint,
    stmt_error: unsafe extern "C" fn(*mut c_void) -> *const c_char,
    stmt_close: unsafe extern "C" fn(*mut c_void) -> c_char,
    stmt_attr_set: unsafe extern "C" fn(*mut c_void, c_int, *const c_void) -> c_char,
    stmt_affected_rows: unsafe extern "C" fn(*mut c_void) -> u64,
    stmt_insert_id: unsafe extern "C" fn(*mut c_void) -> u64,
}

fn connector() -> &'static Connector {
    static LIB: std::sync::OnceLock<Connector> = std::sync::OnceLock::new();
    LIB.get_or_init(|| {
        let h = funnel_testkit::libmariadb::open();
        // SAFETY: each signature is the one libmariadb 3 declares.
        let lib = unsafe {
            Connector {
                init: sym(h, "mysql_init"),
                connect: sym(h, "mysql_real_connect"),
                error: sym(h, "mysql_error"),
                close: sym(h, "mysql_close"),
                stmt_init: sym(h, "mysql_stmt_init"),
                stmt_prepare: sym(h, "mysql_stmt_prepare"),
                stmt_bind_param: sym(h, "mysql_stmt_bind_param"),
                stmt_execute: sym(h, "mysql_stmt_execute"),
                stmt_errno: sym(h, "mysql_stmt_errno"),
                stmt_error: sym(h, "mysql_stmt_error"),
                stmt_close: sym(h, "mysql_stmt_close"),
                stmt_attr_set: sym(h, "mysql_stmt_attr_set"),
                stmt_affected_rows: sym(h, "mysql_stmt_affected_rows"),
                stmt_insert_id: sym(h, "mysql_stmt_insert_id"),
            }
        };
        // mysql_init's one-time library set-up is not thread-safe: do it here, once.
        // SAFETY: init with null allocates a handle that close frees.
        unsafe { (lib.close)((lib.init)(std::ptr::null_mut())) };
        lib
    })
}

/// One value a libmariadb statement binds.
enum Value {
    Int(i64),
    Text(&'static str),
}

/// A libmariadb connection holding one prepared statement of one parameter.
struct CStatement {
    mysql: *mut c_void,
    stmt: *mut c_void,
    int: i64,
    text: [u8; 64],
    len: c_ulong,
    bind: MysqlBind,
}

impl CStatement {
    fn open(port: u16, user: &str, pw: &str, db: &str, sql: &str) -> Box<CStatement> {
        let lib = connector();
        let c = |s: &str| CString::new(s).unwrap();
        let (host, user, pw, db, sql) = (c("127.0.0.1"), c(user), c(pw), c(db), c(sql));
        // SAFETY: libmariadb's documented call sequence, with checked results
        // and NUL-terminated strings that outlive the calls.
        unsafe {
            let mysql = (lib.init)(std::ptr::null_mut());
            let ok = (lib.connect)(
                mysql,
                host.as_ptr(),
                user.as_ptr(),
                pw.as_ptr(),
                db.as_ptr(),
                c_uint::from(port),
                std::ptr::null(),
                0,
            );
            assert!(!ok.is_null(), "connect: {:?}", CStr::from_ptr((lib.error)(mysql)));
            let stmt = (lib.stmt_init)(mysql);
            let rc = (lib.stmt_prepare)(stmt, sql.as_ptr(), sql.as_bytes().len() as c_ulong);
            assert_eq!(rc, 0, "prepare: {:?}", CStr::from_ptr((lib.stmt_error)(stmt)));
            Box::new(CStatement {
                mysql,
                stmt,
                int: 0,
                text: [0; 64],
                len: 0,
                // SAFETY: MYSQL_BIND is plain data; all zero is its documented initial state.
                bind: std::mem::zeroed(),
            })
        }
    }

    /// Binds a value of a new type (libmariadb then sends the types).
    fn bind(&mut self, v: Value) {
        // SAFETY: as above; the buffers live in the box with the bind.
        unsafe {
            self.bind = std::mem::zeroed();
            self.set(v);
            let rc = (connector().stmt_bind_param)(self.stmt, &mut self.bind);
            assert_eq!(rc, 0, "bind");
        }
    }

    /// Changes the bound value in place, as applications do between
    /// executes (libmariadb then sends no types). libmariadb keeps its own
    /// copy of the bind: the buffers stay where they are.
    fn set(&mut self, v: Value) {
        match v {
            Value::Int(i) => {
                self.int = i;
                self.bind.buffer_type = 8; // MYSQL_TYPE_LONGLONG
                self.bind.buffer = (&mut self.int as *mut i64).cast();
            }
            Value::Text(s) => {
                self.text[..s.len()].copy_from_slice(s.as_bytes());
                self.len = s.len() as c_ulong;
                self.bind.buffer_type = 253; // MYSQL_TYPE_VAR_STRING
                self.bind.buffer = self.text.as_mut_ptr().cast();
                self.bind.buffer_length = self.len;
                self.bind.length = &mut self.len;
            }
        }
    }

    /// Executes; the error code and message on failure.
    fn execute(&mut self) -> Result<(), String> {
        let lib = connector();
        // SAFETY: a prepared statement with its parameters bound.
        unsafe {
            if (lib.stmt_execute)(self.stmt) == 0 {
                return Ok(());
            }
            let msg = CStr::from_ptr((lib.stmt_error)(self.stmt)).to_string_lossy();
            Err(format!("{} {msg}", (lib.stmt_errno)(self.stmt)))
        }
    }
}

/// `STMT_ATTR_ARRAY_SIZE` and `STMT_ATTR_ROW_SIZE` (`mariadb_stmt.h`).
const STMT_ATTR_ARRAY_SIZE: c_int = 201;
const STMT_ATTR_ROW_SIZE: c_int = 202;
/// `STMT_INDICATOR_NONE`, `_NULL`, `_DEFAULT`, `_IGNORE` (`mariadb_stmt.h`).
const IND_NONE: c_char = 0;
const IND_NULL: c_char = 1;
const IND_DEFAULT: c_char = 2;
const IND_IGNORE: c_char = 3;
/// `MYSQL_TYPE_LONG`.
const C_LONG: c_uint = 3;

/// One row of a row-wise array bind of `(v, s)`, as an application lays
/// it out (`STMT_ATTR_ROW_SIZE` is its size).
#[repr(C)]
#[derive(Clone, Copy)]
struct CRow {
    v: i32,
    v_ind: c_char,
    s: [u8; 20],
    s_len: c_ulong,
    s_ind: c_char,
}

/// A row of `(v, s)` for an array bind: each value with its indicator.
type ArrayRow = ((i32, c_char), (&'static str, c_char));

impl CStatement {
    /// Executes the two-parameter statement once for all `rows`, bound
    /// as arrays (libmariadb sends one `COM_STMT_BULK_EXECUTE` where the
    /// server offers bulk operations): column-wise, one array a
    /// parameter, or `row_wise`, an array of [`CRow`]. The affected rows
    /// and insert id, or the error.
    fn execute_array(&mut self, rows: &[ArrayRow], row_wise: bool) -> Result<(u64, u64), String> {
        let lib = connector();
        let n = rows.len() as c_uint;
        // Column-wise: values, lengths, indicators, and the strings' pointers.
        let mut vs: Vec<i32> = rows.iter().map(|r| r.0 .0).collect();
        let mut v_inds: Vec<c_char> = rows.iter().map(|r| r.0 .1).collect();
        let cstrs: Vec<CString> = rows.iter().map(|r| CString::new(r.1 .0).unwrap()).collect();
        let mut ptrs: Vec<*const c_char> = cstrs.iter().map(|c| c.as_ptr()).collect();
        let mut lens: Vec<c_ulong> = rows.iter().map(|r| r.1 .0.len() as c_ulong).collect();
        let mut s_inds: Vec<c_char> = rows.iter().map(|r| r.1 .1).collect();
        // Row-wise.
        let mut crows: Vec<CRow> = rows
            .iter()
            .map(|((v, v_ind), (s, s_ind))| {
                let mut r = CRow {
                    v: *v,
                    v_ind: *v_ind,
                    s: [0; 20],
                    s_len: s.len() as c_ulong,
                    s_ind: *s_ind,
                };
                r.s[..s.len()].copy_from_slice(s.as_bytes());
                r
            })
            .collect();
        // SAFETY: libmariadb's documented array binding; every buffer
        // outlives the execute, and the binds are copied at bind time.
        unsafe {
            let mut bind: [MysqlBind; 2] = std::mem::zeroed();
            bind[0].buffer_type = C_LONG;
            bind[1].buffer_type = 253; // MYSQL_TYPE_VAR_STRING
            let row_size: c_ulong = if row_wise {
                let r = &mut crows[0];
                bind[0].buffer = (&mut r.v as *mut i32).cast();
                bind[0].u = (&mut r.v_ind as *mut c_char).cast();
                bind[1].buffer = r.s.as_mut_ptr().cast();
                bind[1].buffer_length = 20;
                bind[1].length = &mut r.s_len;
                bind[1].u = (&mut r.s_ind as *mut c_char).cast();
                std::mem::size_of::<CRow>() as c_ulong
            } else {
                bind[0].buffer = vs.as_mut_ptr().cast();
                bind[0].u = v_inds.as_mut_ptr().cast();
                bind[1].buffer = ptrs.as_mut_ptr().cast();
                bind[1].length = lens.as_mut_ptr();
                bind[1].u = s_inds.as_mut_ptr().cast();
                0
            };
            let attr = |a: c_int, v: *const c_void| {
                assert_eq!((lib.stmt_attr_set)(self.stmt, a, v), 0, "attr {a}");
            };
            attr(STMT_ATTR_ARRAY_SIZE, (&n as *const c_uint).cast());
            attr(STMT_ATTR_ROW_SIZE, (&row_size as *const c_ulong).cast());
            assert_eq!((lib.stmt_bind_param)(self.stmt, bind.as_mut_ptr()), 0, "bind");
            let outcome = if (lib.stmt_execute)(self.stmt) == 0 {
                Ok((
                    (lib.stmt_affected_rows)(self.stmt),
                    (lib.stmt_insert_id)(self.stmt),
                ))
            } else {
                let msg = CStr::from_ptr((lib.stmt_error)(self.stmt)).to_string_lossy();
                Err(format!("{} {msg}", (lib.stmt_errno)(self.stmt)))
            };
            // Back to single executes.
            let zero: c_uint = 0;
            attr(STMT_ATTR_ARRAY_SIZE, (&zero as *const c_uint).cast());
            outcome
        }
    }
}

impl Drop for CStatement {
    fn drop(&mut self) {
        // SAFETY: handles from this struct's own calls, freed once.
        unsafe {
            (connector().stmt_close)(self.stmt);
            (connector().close)(self.mysql);
        }
    }
}

/// Runs `run(port, user, password, schema)` directly and then through
/// Funnel with one backend connection, each in a fresh schema whose table
/// `t` has `columns`: each side's schema and result, direct first.
fn both_ways<T>(prefix: &str, columns: &str, run: impl Fn(u16, &str, &str, &str) -> T) -> [(String, T); 2] {
    let db = MariaDb::shared();
    let side = |through_funnel: bool| {
        let schema = db.fresh_database(prefix);
        db.exec(&format!("CREATE TABLE {schema}.t {columns}"));
        let result = if through_funnel {
            let proxy = funnel(db, &schema, 1);
            run(proxy.local_addr().port(), "app", "apppw", &schema)
        } else {
            run(db.port(), "ps_direct", "dpw", &schema)
        };
        (schema, result)
    };
    [side(false), side(true)]
}

#[test]
fn prepared_libmariadb_rebinding_clients_share_a_connection() {
    // Two Connector/C clients run one INSERT over one backend connection;
    // each changes its bound value between executes without binding anew,
    // so only its first execute carries the parameter types.
    let db = MariaDb::shared();
    users(db);
    let run = |port: u16, user: &str, pw: &str, schema: &str| {
        let sql = "INSERT INTO t (v) VALUES (?)";
        let mut a = CStatement::open(port, user, pw, schema, sql);
        let mut b = CStatement::open(port, user, pw, schema, sql);
        let mut out = Vec::new();
        a.bind(Value::Int(7));
        out.push(a.execute());
        b.bind(Value::Text("hello"));
        out.push(b.execute());
        a.set(Value::Int(8));
        out.push(a.execute());
        b.set(Value::Text("again"));
        out.push(b.execute());
        let rows: Option<String> =
            db.query_first(&format!("SELECT GROUP_CONCAT(v ORDER BY id) FROM {schema}.t"));
        (out, rows)
    };
    let results = both_ways(
        "ps_capi",
        "(id INT AUTO_INCREMENT PRIMARY KEY, v VARCHAR(40))",
        run,
    )
    .map(|(_, result)| result);
    assert_eq!(results[0], (vec![Ok(()); 4], Some("7,hello,8,again".to_string())));
    assert_eq!(results[1], results[0], "through Funnel");
}

/// Funnel (a pool of two) in front of a fresh schema whose table `t` has
/// two columns and a row, and `n` clients of it.
fn table_t_of_two_columns(prefix: &str, n: usize) -> (funnel_engine::Proxy, Vec<Raw>) {
    let db = MariaDb::shared();
    let schema = db.fresh_database(prefix);
    let mut root = db.root();
    root.query_drop(format!("USE {schema}")).unwrap();
    root.query_drop("CREATE TABLE t (id INT, v INT)").unwrap();
    root.query_drop("INSERT INTO t VALUES (1, 10)").unwrap();
    let proxy = funnel(db, &schema, 2);
    let c = clients(
        proxy.local_addr(),
        "app",
        "apppw",
        &schema,
        n,
        Capabilities::EMPTY,
    );
    (proxy, c)
}

/// A session's temporary table hides the table a shared statement was
/// described with: its executes there return the temporary table's
/// columns, which say nothing of what other clients' prepares are told.
/// The statement stays fresh for them (answered from the registry, no
/// prepare on the server): a session with a temporary table prepares on
/// its own connection anyway.
#[test]
fn prepared_a_temporary_tables_columns_leave_the_shared_description_fresh() {
    let (proxy, mut c) = table_t_of_two_columns("ps_tmpcols", 2);
    let sql = "SELECT * FROM t";
    let a = c[0].prepare(sql).unwrap();
    c[0].query("CREATE TEMPORARY TABLE t (a INT, b INT, c INT)")
        .unwrap();
    c[0].query("INSERT INTO t VALUES (1, 2, 3)").unwrap();
    let rows = c[0].execute(a, 0, &[], false).unwrap();
    assert_eq!(rows[0], [3], "the temporary table's columns");
    let known = known_prepares(&proxy);
    c[1].prepare(sql).unwrap();
    assert_eq!(known_prepares(&proxy), known + 1, "answered from the registry");
    let b = c[1].prepare(sql).unwrap();
    let rows = c[1].execute(b, 0, &[], false).unwrap();
    assert_eq!(rows[0], [2], "the table's columns");
}

/// [`prepared_a_temporary_tables_columns_leave_the_shared_description_fresh`]
/// where the session's connection has not prepared the statement yet: the
/// prepare Funnel runs there before the execute describes the temporary
/// table, and leaves the shared description fresh too.
#[test]
fn prepared_a_temporary_tables_columns_at_a_reprepare_leave_the_shared_description_fresh() {
    let (proxy, mut c) = table_t_of_two_columns("ps_tmpre", 3);
    let sql = "SELECT * FROM t";
    // Prepared on the pool's one connection, which B then holds: A's
    // temporary table goes to a second one.
    let a = c[0].prepare(sql).unwrap();
    c[1].query("BEGIN").unwrap();
    c[1].query("SELECT 1").unwrap();
    c[0].query("CREATE TEMPORARY TABLE t (a INT, b INT, c INT)")
        .unwrap();
    let rows = c[0].execute(a, 0, &[], false).unwrap();
    assert_eq!(rows[0], [3], "the temporary table's columns");
    c[1].query("COMMIT").unwrap();
    let known = known_prepares(&proxy);
    c[2].prepare(sql).unwrap();
    assert_eq!(known_prepares(&proxy), known + 1, "answered from the registry");
}

/// A prepare the server refuses inside a transaction (a write's, in a
/// `READ ONLY` one: 1792) leaves the transaction the session's: its next
/// statement runs in it, also while another client waits for the one
/// connection, as on a direct connection, where the `INSERT` fails with
/// 1792 too and the `ROLLBACK` leaves nothing. Before, a text that
/// mentions `LAST_INSERT_ID()` pinned the session for the prepare, and the
/// unpin after the refusal forgot the transaction: the connection counted
/// as kept only for `SHOW WARNINGS`, went to the waiting client, and the
/// `INSERT` ran outside the transaction (soak seed 402246).
#[test]
fn prepared_refused_in_a_read_only_transaction_keeps_the_transaction() {
    let db = MariaDb::shared();
    let schema = db.fresh_database("ps_rotx");
    let mut root = db.root();
    root.query_drop(format!("USE {schema}")).unwrap();
    root.query_drop("CREATE TABLE k (id INT PRIMARY KEY, v INT)")
        .unwrap();
    root.query_drop("INSERT INTO k VALUES (2, 5)").unwrap();
    root.query_drop("CREATE TABLE t (id INT AUTO_INCREMENT PRIMARY KEY, v INT)")
        .unwrap();
    let proxy = funnel(db, &schema, 1);
    let opts = mysql::OptsBuilder::new()
        .ip_or_hostname(Some("127.0.0.1"))
        .tcp_port(proxy.local_addr().port())
        .user(Some("app"))
        .pass(Some("apppw"))
        .db_name(Some(schema.clone()));
    let mut a = mysql::Conn::new(opts.clone()).unwrap();
    let mut b = mysql::Conn::new(opts).unwrap();
    a.query_drop("START TRANSACTION READ ONLY").unwrap();
    let refused = a
        .prep("UPDATE k SET v = LAST_INSERT_ID(v + 1) WHERE id = 2")
        .unwrap_err();
    assert!(refused.to_string().contains("1792"), "{refused}");
    let waiter = std::thread::spawn(move || b.query_first::<i64, _>("SELECT COUNT(*) FROM k").unwrap());
    // The other client waits for the connection the transaction holds;
    // the INSERT comes within the 200 ms the refused prepare's error
    // keeps it for the client's SHOW WARNINGS.
    std::thread::sleep(std::time::Duration::from_millis(80));
    let insert = a.query_drop("INSERT INTO t (v) VALUES (41)");
    assert!(
        insert.as_ref().is_err_and(|e| e.to_string().contains("1792")),
        "the INSERT ran outside the READ ONLY transaction: {insert:?}"
    );
    a.query_drop("ROLLBACK").unwrap();
    assert_eq!(waiter.join().unwrap(), Some(1));
    let rows: Option<i64> = a.query_first("SELECT COUNT(*) FROM t").unwrap();
    assert_eq!(rows, Some(0));
}

#[test]
fn prepared_libmariadb_array_binds_are_bulk_executes_as_direct() {
    // Connector/C's array binding (STMT_ATTR_ARRAY_SIZE, column-wise and
    // row-wise, with indicators), which it sends as COM_STMT_BULK_EXECUTE
    // where the server offers bulk operations: two clients on Funnel's one
    // backend connection, interleaved, get the affected rows, insert ids,
    // errors and table contents of two direct connections, and the server
    // runs as many bulk executes through Funnel as directly (its general
    // log shows one as an `Execute` of the text with its `?`).
    let db = MariaDb::shared();
    users(db);
    let run = |port: u16, user: &str, pw: &str, schema: &str| {
        let sql = "INSERT INTO t (v, s) VALUES (?, ?)";
        let mut a = CStatement::open(port, user, pw, schema, sql);
        let mut b = CStatement::open(port, user, pw, schema, sql);
        let rows: [ArrayRow; 4] = [
            ((1, IND_NONE), ("one", IND_NONE)),
            ((2, IND_NONE), ("", IND_NULL)),
            ((0, IND_NULL), ("", IND_DEFAULT)),
            ((4, IND_NONE), ("four", IND_NONE)),
        ];
        let more: [ArrayRow; 3] = [
            ((0, IND_DEFAULT), ("five", IND_NONE)),
            ((6, IND_NONE), ("", IND_IGNORE)),
            ((7, IND_NONE), ("seven", IND_NONE)),
        ];
        // A duplicate of `1` in the second row: one statement, no row applied.
        let dup: [ArrayRow; 3] = [
            ((8, IND_NONE), ("x", IND_NONE)),
            ((1, IND_NONE), ("y", IND_NONE)),
            ((9, IND_NONE), ("z", IND_NONE)),
        ];
        let after: [ArrayRow; 2] = [
            ((10, IND_NONE), ("ten", IND_NONE)),
            ((11, IND_NONE), ("", IND_NULL)),
        ];
        let out = vec![
            a.execute_array(&rows, false),
            b.execute_array(&more, true),
            a.execute_array(&dup, true),
            b.execute_array(&dup[..1], false),
            a.execute_array(&after, false),
            b.execute_array(&dup, false),
        ];
        let table: Option<String> = db.query_first(&format!(
            "SELECT GROUP_CONCAT(CONCAT_WS(':', id, IFNULL(v, 'N'), IFNULL(s, 'N')) ORDER BY id) FROM {schema}.t"
        ));
        (out, table)
    };
    let mut root = db.root();
    root.query_drop("SET GLOBAL log_output = 'TABLE'").unwrap();
    root.query_drop("SET GLOBAL general_log = 1").unwrap();
    let [(direct_schema, direct), (funnel_schema, through)] = both_ways(
        "ps_capi_bulk",
        "(id INT AUTO_INCREMENT PRIMARY KEY, v INT UNIQUE, s VARCHAR(20) DEFAULT 'dflt')",
        run,
    );
    let (results, schemas) = ([direct, through], [direct_schema, funnel_schema]);
    root.query_drop("SET GLOBAL general_log = 0").unwrap();
    // Insert ids past the rows a bulk applied are taken (InnoDB reserves
    // a bulk's ids in steps), also by one that failed.
    let dup = |v| Err(format!("1062 Duplicate entry '{v}' for key 'v'"));
    assert_eq!(
        results[0],
        (
            vec![Ok((4, 1)), Ok((3, 8)), dup(1), Ok((1, 14)), Ok((2, 15)), dup(8)],
            Some(
                "1:1:one,2:2:N,3:N:dflt,4:4:four,8:N:five,9:6:dflt,10:7:seven,14:8:x,15:10:ten,16:11:N"
                    .to_string()
            )
        ),
        "directly"
    );
    assert_eq!(results[1], results[0], "through Funnel");
    // The bulk executes each side's connections ran.
    let direct = db.bulk_executes_logged(&schemas[0]);
    assert!(direct >= 4, "{direct} bulk executes directly");
    assert_eq!(
        db.bulk_executes_logged(&schemas[1]),
        direct,
        "bulk executes through Funnel"
    );
}

/// A statement prepared under the session's first charset, executed after
/// `SET NAMES binary` in a session whose variables Funnel no longer
/// tracks (a `CALL` pinned it), on a connection that lacks it: Funnel
/// prepares it there first, and the server describes its literal by the
/// charset of that prepare. The statement is the client's from before the
/// `SET NAMES`, so it must be prepared under that charset, as the
/// server's own statement was: the execute's column flags are the
/// prepare-time charset's (soak seed 501628: `BINARY_FLAG` on `"x"`).
///
#[test]
fn prepared_execute_in_an_untracked_session_prepares_under_the_statements_charset() {
    let setup = &[
        "CREATE TABLE t (id INT PRIMARY KEY, v INT)",
        "CREATE PROCEDURE p() SELECT 1 AS one",
    ];
    let (d, f) = differential("ps_untracked_cs", setup, 2, 2, |c| {
        let sql = "SELECT 'x' AS lit, CHARSET('y') AS cs";
        let id = c[0].prepare(sql).unwrap();
        // The other client holds the connection that prepared it.
        let mut r = vec![c[1].query("BEGIN"), c[1].query("SELECT v FROM t")];
        r.push(c[0].query("BEGIN"));
        r.push(c[0].query("CALL p()"));
        r.push(c[0].query("SET NAMES binary"));
        r.push(c[0].execute(id, 0, &[], false));
        r.push(c[0].query("SELECT 'z' AS lit, @@character_set_results, @@collation_connection"));
        r.push(c[0].query("COMMIT"));
        r.push(c[1].query("COMMIT"));
        r
    });
    assert_same(&d, &f);
}

/// [`prepared_execute_in_an_untracked_session_prepares_under_the_statements_charset`]
/// where the session's charsets came with a collation other than their
/// default (`SET NAMES ... COLLATE`): Funnel switches only the client and
/// connection charsets for that prepare and puts them back, never
/// `character_set_results`, whose collation the server cannot read back
/// (restored by name, later results' metadata said collation 45 for 224:
/// soak seeds 501626, 501647, 501652 with a first attempt).
#[test]
fn prepared_execute_in_an_untracked_session_leaves_the_results_collation() {
    let setup = &[
        "CREATE TABLE t (id INT PRIMARY KEY, v INT)",
        "CREATE PROCEDURE p() SELECT 1 AS one",
    ];
    let (d, f) = differential("ps_untracked_coll", setup, 2, 2, |c| {
        let sql = "SELECT 'x' AS lit, COLLATION('y') AS coll";
        let id = c[0].prepare(sql).unwrap();
        let mut r = vec![c[1].query("BEGIN"), c[1].query("SELECT v FROM t")];
        r.push(c[0].query("BEGIN"));
        r.push(c[0].query("CALL p()"));
        r.push(c[0].query("SET NAMES utf8mb4 COLLATE utf8mb4_unicode_ci"));
        r.push(c[0].execute(id, 0, &[], false));
        r.push(
            c[0].query("SELECT 'z' AS lit, COLLATION('w'), @@collation_connection, @@character_set_client"),
        );
        r.push(c[0].execute(id, 0, &[], false));
        r.push(c[0].query("COMMIT"));
        r.push(c[1].query("COMMIT"));
        r
    });
    assert_same(&d, &f);
}
