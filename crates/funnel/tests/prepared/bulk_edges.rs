//! Edges of MariaDB's bulk execute (`COM_STMT_BULK_EXECUTE`) and of the
//! extended column metadata through Funnel, against a direct connection:
//! long data, the last-prepared id, pinning statements, transactions, big
//! commands and results, and clients with and without the extensions
//! sharing one backend connection.

use super::bulk::*;
use super::*;

/// A `COM_STMT_RESET` or `COM_STMT_CLOSE`-like command with one reply.
fn reset(c: &mut Raw, id: u32) -> Reply {
    let mut p = vec![0x1a];
    p.extend_from_slice(&id.to_le_bytes());
    c.call(&p, Expect::Status)
}

#[test]
fn prepared_bulk_after_long_data_matches_direct() {
    // The server refuses a bulk of a statement with long data (1210) and
    // forgets that long data: the next execute reads its value from the
    // execute, and other clients may share the connection again (failed
    // with Funnel keeping the session on it for that long data: ERR 9001
    // for the other client, its pool of one taken).
    let (d, f) = differential_with("ps_bulk_ld", &[TABLE], 2, 1, BULK, |c| {
        let ins = c[0].prepare("INSERT INTO t (v, s) VALUES (?, ?)").unwrap();
        c[0].long_data(ins, 1, b"long");
        let mut out = vec![c[0].bulk(ins, SEND_TYPES, &[vec![v(1), s("a")], vec![v(2), s("b")]])];
        out.push(c[1].query("INSERT INTO t (v) VALUES (100)"));
        out.push(c[0].execute(ins, 0, &[int(3), text("c")], true));
        c[0].long_data(ins, 1, b"again");
        out.push(c[0].bulk(ins, 0, &[vec![v(4), s("d")]]));
        out.push(reset(&mut c[0], ins));
        out.push(c[0].execute(ins, 0, &[int(5), text("e")], true));
        // Flags the server refuses before it finds the statement: the long
        // data stays, for the execute.
        c[0].long_data(ins, 1, b"kept");
        out.push(c[0].bulk(ins, SEND_TYPES | 64, &[vec![v(6), s("f")]]));
        out.push(c[0].execute(ins, 0, &[int(7), text("g")], true));
        out.push(c[1].query("SELECT LAST_INSERT_ID()"));
        out.push(c[0].query("SELECT id, v, s FROM t ORDER BY id"));
        out
    });
    assert_same(&d, &f);
    // A bulk takes no long data: refused, the long data gone.
    assert_eq!((&d[0], &d[3], &d[6]), (&Err(1210), &Err(1210), &Err(1295)));
    let rows = d[9].as_ref().unwrap();
    assert_eq!(rows[rows.len() - 2], b"\x014\x017\x04kept", "{rows:?}");
}

#[test]
fn prepared_bulk_of_the_last_prepared_statement_matches_direct() {
    // Statement id -1: the statement this connection prepared last, for a
    // bulk as for an execute; none after a failed prepare.
    let (d, f) = differential_with("ps_bulk_last", &[TABLE], 1, 1, BULK, |c| {
        let _ins = c[0].prepare("INSERT INTO t (v, s) VALUES (?, ?)").unwrap();
        vec![
            c[0].bulk(
                LAST_PREPARED,
                SEND_TYPES,
                &[vec![v(1), s("a")], vec![v(2), s("b")]],
            ),
            c[0].prepare("SELECT v FROM t WHERE v = ?").map(|_| Vec::new()),
            c[0].bulk(LAST_PREPARED, SEND_TYPES, &[vec![v(1)]]),
            c[0].prepare("SELEC bogus").map(|_| Vec::new()),
            c[0].bulk(LAST_PREPARED, SEND_TYPES, &[vec![v(3), s("c")]]),
            c[0].query("SELECT id, v, s FROM t ORDER BY id"),
        ]
    });
    assert_same(&d, &f);
    assert!(d[0].is_ok(), "{:?}", d[0]);
}

#[test]
fn prepared_bulk_of_refused_statements_matches_direct() {
    // The server runs no bulk of a SET, a DO, a CALL, a statement without
    // parameters (1295): nothing of them stays
    // for the client or the others.
    let setup = &[TABLE, "CREATE PROCEDURE p(x INT) SET @w = x"];
    let (d, f) = differential_with("ps_bulk_refused", setup, 2, 2, BULK, |c| {
        let set = c[0].prepare("SET @v = ?").unwrap();
        let lock = c[0].prepare("DO GET_LOCK(?, 0)").unwrap();
        let call = c[0].prepare("CALL p(?)").unwrap();
        let none = c[0].prepare("INSERT INTO t (v) VALUES (1)").unwrap();
        let del = c[0].prepare("DELETE FROM t WHERE v = ? RETURNING id").unwrap();
        vec![
            c[0].bulk(set, SEND_TYPES, &[vec![v(5)]]),
            c[0].bulk(lock, SEND_TYPES, &[vec![s("lk")]]),
            c[0].bulk(call, SEND_TYPES, &[vec![v(6)]]),
            c[0].bulk(none, SEND_TYPES, &[vec![]]),
            c[0].bulk(del, SEND_TYPES, &[vec![v(1)]]),
            c[1].query("SELECT @v, @w, IS_USED_LOCK('lk') IS NULL"),
            c[0].query("SELECT @v, @w, IS_FREE_LOCK('lk'), (SELECT COUNT(*) FROM t)"),
        ]
    });
    assert_same(&d, &f);
    // A DELETE ... RETURNING runs.
    assert!(d[..4].iter().all(|r| r == &Err(1295)), "{:?}", &d[..4]);
}

#[test]
fn prepared_bulk_of_last_insert_id_matches_direct() {
    // LAST_INSERT_ID(expr) in a bulk sets the connection's insert id: the
    // client that ran it sees its own, the other one its own.
    let (d, f) = differential_with("ps_bulk_lid", &[TABLE], 2, 2, BULK, |c| {
        let lid = c[0]
            .prepare("INSERT INTO t (v) VALUES (LAST_INSERT_ID(?))")
            .unwrap();
        let upd = c[0].prepare("UPDATE t SET s = ? WHERE v = ?").unwrap();
        vec![
            c[1].query("INSERT INTO t (v) VALUES (1)"),
            c[0].bulk(lid, SEND_TYPES, &[vec![v(40)], vec![v(41)]]),
            c[0].query("SELECT LAST_INSERT_ID()"),
            c[1].query("SELECT LAST_INSERT_ID()"),
            c[0].bulk(
                upd,
                SEND_TYPES,
                &[vec![s("x"), v(40)], vec![s("y"), v(41)], vec![s("z"), v(9)]],
            ),
            c[0].query("SELECT ROW_COUNT()"),
            c[1].query("SELECT ROW_COUNT(), LAST_INSERT_ID()"),
            c[1].query("SELECT id, v, s FROM t ORDER BY id"),
        ]
    });
    assert_same(&d, &f);
}

#[test]
fn prepared_bulk_in_transactions_matches_direct() {
    let (d, f) = differential_with("ps_bulk_tx", &[TABLE], 1, 1, BULK, |c| {
        let ins = c[0].prepare("INSERT INTO t (v, s) VALUES (?, ?)").unwrap();
        vec![
            c[0].query("BEGIN"),
            c[0].bulk(ins, SEND_TYPES, &[vec![v(1), s("a")], vec![v(2), s("b")]]),
            c[0].query("SELECT COUNT(*) FROM t"),
            c[0].query("ROLLBACK"),
            c[0].query("XA START 'x1'"),
            c[0].bulk(ins, SEND_TYPES, &[vec![v(3), s("c")]]),
            c[0].query("XA END 'x1'"),
            // The server refuses it in XA's IDLE state.
            c[0].bulk(ins, SEND_TYPES, &[vec![v(4), s("d")]]),
            c[0].query("XA PREPARE 'x1'"),
            c[0].query("XA COMMIT 'x1'"),
            c[0].query("SET autocommit = 0"),
            c[0].bulk(ins, 0, &[vec![v(5), s("e")]]),
            c[0].query("ROLLBACK"),
            c[0].query("SET autocommit = 1"),
            c[0].query("SELECT id, v, s FROM t ORDER BY id"),
        ]
    });
    assert_same(&d, &f);
}

#[test]
fn prepared_bulk_returning_many_rows_matches_direct() {
    // RETURNING's one result set for every row: larger than any buffer.
    let (d, f) = differential_with("ps_bulk_ret", &[TABLE], 1, 1, BULK, |c| {
        let ret = c[0]
            .prepare("INSERT INTO t (v, s) VALUES (?, ?) RETURNING id, v, s")
            .unwrap();
        let rows: Vec<Vec<Cell>> = (0..20_000).map(|n| vec![v(n), s("some text")]).collect();
        vec![
            c[0].bulk(ret, SEND_TYPES, &rows),
            c[0].query("SELECT COUNT(*), SUM(v) FROM t"),
        ]
    });
    assert_same(&d, &f);
    assert_eq!(d[0].as_ref().map(Vec::len), Ok(20_000 + 6));
}

#[test]
fn prepared_bulk_over_16_mib_matches_direct() {
    // A bulk larger than one protocol packet (several, the last short).
    let setup = &["CREATE TABLE t (id INT AUTO_INCREMENT PRIMARY KEY, v INT, s VARCHAR(250))"];
    let (d, f) = differential_with("ps_bulk_big", setup, 1, 1, BULK, |c| {
        let ins = c[0].prepare("INSERT INTO t (v, s) VALUES (?, ?)").unwrap();
        let long = "x".repeat(240);
        let rows: Vec<Vec<Cell>> = (0..70_000).map(|n| vec![v(n), s(&long)]).collect();
        assert!(bulk_payload(ins, SEND_TYPES, &rows).len() > 1 << 24);
        vec![
            c[0].bulk(ins, SEND_TYPES, &rows),
            c[0].query("SELECT COUNT(*), SUM(LENGTH(s)) FROM t"),
        ]
    });
    assert_same(&d, &f);
    assert!(d[0].is_ok(), "{:?}", d[0]);
}

#[test]
fn prepared_bulk_killed_mid_way_matches_direct() {
    // KILL QUERY of a bulk whose rows each sleep (a trigger): the bulk
    // ends with 1317, no row stays, and the session goes on.
    let setup = &[
        TABLE,
        "CREATE TRIGGER slow BEFORE INSERT ON t FOR EACH ROW SET NEW.s = CONCAT(SLEEP(0.3), 'z')",
    ];
    let (d, f) = differential_with("ps_bulk_kill", setup, 2, 2, BULK, |c| {
        let ins = c[0].prepare("INSERT INTO t (v, s) VALUES (?, ?)").unwrap();
        let id = c[0].0.connection_id;
        let (a, b) = c.split_at_mut(1);
        let rows: Vec<Vec<Cell>> = (0..20).map(|n| vec![v(n), s("r")]).collect();
        let (bulk, kill) = std::thread::scope(|sc| {
            let killer = sc.spawn(|| {
                std::thread::sleep(std::time::Duration::from_millis(1000));
                b[0].query(&format!("KILL QUERY {id}"))
            });
            let bulk = a[0].bulk(ins, SEND_TYPES, &rows);
            (bulk, killer.join().unwrap())
        });
        vec![
            bulk,
            kill,
            a[0].query("SELECT COUNT(*) FROM t"),
            a[0].bulk(ins, SEND_TYPES, &[vec![v(100), s("a")]]),
            a[0].query("SELECT v, s FROM t"),
        ]
    });
    assert_same(&d, &f);
    assert_eq!(d[0], Err(1317));
}

const EXT: Capabilities = Capabilities::MARIADB_CLIENT_EXTENDED_METADATA;

/// Whether a reply's column descriptions carry the `json` format.
fn says_json(reply: &Reply) -> bool {
    reply
        .as_ref()
        .is_ok_and(|packets| packets.iter().any(|p| p.windows(4).any(|w| w == b"json")))
}

#[test]
fn prepared_extended_metadata_clients_share_one_connection_under_load() {
    // Clients with and without extended metadata (and with bulk
    // operations, or not) taking turns on a pool of one backend
    // connection: each reply is described the way its client asked, at
    // every turn, also across COM_RESET_CONNECTION.
    let db = MariaDb::shared();
    users(db);
    let schema = db.fresh_database("ps_ext_load");
    let mut root = db.root();
    root.query_drop(format!("USE {schema}")).unwrap();
    root.query_drop("CREATE TABLE t (id INT PRIMARY KEY, doc JSON, n INT)")
        .unwrap();
    root.query_drop("INSERT INTO t VALUES (1, '{\"a\": 1}', 7)")
        .unwrap();
    let proxy = funnel(db, &schema, 1);
    let addr = proxy.local_addr();
    let kinds = [EXT | BULK, Capabilities::EMPTY, EXT, BULK];
    std::thread::scope(|sc| {
        for (k, caps) in kinds.into_iter().enumerate() {
            let schema = &schema;
            sc.spawn(move || {
                let mut c = Raw::connect_with(addr, "app", "apppw", schema, caps);
                let ext = caps.contains(EXT);
                assert_eq!(c.0.caps().contains(EXT), ext);
                let mut sel = c.prepare("SELECT doc, n FROM t WHERE id = ?").unwrap();
                for i in 0..60 {
                    let r = c.query("SELECT doc FROM t");
                    assert_eq!(says_json(&r), ext, "client {k} turn {i}: {r:?}");
                    let r = c.execute(sel, 0, &[int(1)], true);
                    assert_eq!(says_json(&r), ext, "client {k} turn {i}: {r:?}");
                    let r = c.prepare_reply("SELECT doc FROM t WHERE n = ?");
                    assert_eq!(says_json(&r), ext, "client {k} turn {i}: {r:?}");
                    if i % 10 == 9 {
                        assert!(c.call(&[0x1f], Expect::Status).is_ok(), "client {k}");
                        // The reset closed its statements.
                        sel = c.prepare("SELECT doc, n FROM t WHERE id = ?").unwrap();
                    }
                }
            });
        }
    });
}

#[test]
fn prepared_bulk_on_another_connection_matches_direct() {
    // The other client's transaction holds the connection a statement was
    // prepared on: a bulk (or an execute after a bulk) runs on the other
    // one, prepared there anew, with the types the client sent last.
    let (d, f) = differential_with("ps_bulk_move", &[TABLE], 2, 2, BULK, |c| {
        let a = c[0].prepare("INSERT INTO t (v, s) VALUES (?, ?)").unwrap();
        let mut out = vec![c[0].execute(a, 0, &[int(1), text("a")], true)];
        out.push(c[1].query("BEGIN"));
        out.push(c[1].query("INSERT INTO t (v) VALUES (2)"));
        out.push(c[0].bulk(a, 0, &[vec![v(3), s("c")], vec![v(4), Cell::Null]]));
        out.push(c[1].query("COMMIT"));
        out.push(c[1].query("BEGIN"));
        out.push(c[1].query("INSERT INTO t (v) VALUES (5)"));
        out.push(c[0].bulk(a, SEND_TYPES, &[vec![s("6"), s("f")]]));
        out.push(c[1].query("COMMIT"));
        out.push(c[1].query("BEGIN"));
        out.push(c[1].query("SELECT COUNT(*) FROM t"));
        // Types of the bulk: a string for v.
        out.push(c[0].execute(a, 0, &[text("7"), text("g")], false));
        out.push(c[1].query("COMMIT"));
        out.push(c[0].query("SELECT id, v, s FROM t ORDER BY id"));
        out
    });
    assert_same(&d, &f);
}

#[test]
fn prepared_bulk_after_failed_long_data_matches_direct() {
    // Long data for a parameter the statement does not have: the server
    // remembers the failure for the next execute, a bulk's too.
    let (d, f) = differential_with("ps_bulk_ldfail", &[TABLE], 1, 1, BULK, |c| {
        let a = c[0].prepare("INSERT INTO t (v, s) VALUES (?, ?)").unwrap();
        c[0].long_data(a, 5, b"nowhere");
        let mut out = vec![
            c[0].bulk(a, SEND_TYPES, &[vec![v(1), s("a")]]),
            c[0].execute(a, 0, &[int(2), text("b")], true),
            c[0].bulk(a, SEND_TYPES, &[vec![v(3), s("c")]]),
        ];
        c[0].long_data(a, 5, b"nowhere");
        out.push(reset(&mut c[0], a));
        out.push(c[0].bulk(a, SEND_TYPES, &[vec![v(4), s("d")]]));
        out.push(c[0].query("SELECT v, s FROM t ORDER BY id"));
        out
    });
    assert_same(&d, &f);
}

#[test]
fn prepared_extended_metadata_field_list_matches_direct() {
    // COM_FIELD_LIST's descriptions carry the extended field too.
    let setup = &["CREATE TABLE t (id INT PRIMARY KEY, doc JSON, p POINT)"];
    let (d, f) = differential_with("ps_ext_fields", setup, 1, 1, EXT, |c| {
        vec![
            c[0].call(b"\x04t\0", Expect::FieldList),
            c[0].call(b"\x04t\0d%", Expect::FieldList),
        ]
    });
    assert_same(&d, &f);
    assert!(says_json(&d[0]), "{:?}", d[0]);
}

/// A PyMySQL program (a client that sets `CLIENT_MYSQL` and knows no
/// MariaDB extension): JSON, UUID and geometry columns described and
/// read, `executemany`, an error.
const PYMYSQL: &str = r#"
import sys, pymysql
port, schema, user, password = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
c = pymysql.connect(host="127.0.0.1", port=port, user=user, password=password, database=schema, autocommit=True)
cur = c.cursor()
out = []
cur.execute("CREATE TABLE j (id INT PRIMARY KEY, doc JSON, u UUID, p POINT)")
cur.executemany("INSERT INTO j VALUES (%s, %s, %s, POINT(%s, %s))", [(1, '{"a": [1, 2]}', '123e4567-e89b-12d3-a456-426614174000', 1, 2), (2, None, None, 3, 4)])
out.append(cur.rowcount)
cur.execute("SELECT id, doc, u, ST_AsText(p), JSON_OBJECT('k', id) FROM j ORDER BY id")
out.append([d[:2] for d in cur.description])
out.append(cur.fetchall())
try:
    cur.execute("SELECT * FROM nosuch")
except pymysql.MySQLError as e:
    out.append(e.args[0])
print(repr(out))
"#;

#[test]
fn pymysql_without_mariadb_extensions_matches_direct() {
    let importable = std::process::Command::new("/usr/bin/python3")
        .args(["-c", "import pymysql"])
        .status()
        .is_ok_and(|s| s.success());
    if !importable {
        eprintln!("skipping: /usr/bin/python3 cannot import pymysql");
        return;
    }
    let db = MariaDb::shared();
    users(db);
    let direct = db.fresh_database("ps_pymysql_d");
    let through = db.fresh_database("ps_pymysql_f");
    let proxy = funnel(db, &through, 1);
    let run = |port: u16, schema: &str, user: &str, pw: &str| {
        let out = std::process::Command::new("/usr/bin/python3")
            .args(["-c", PYMYSQL, &port.to_string(), schema, user, pw])
            .output()
            .unwrap();
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    };
    let d = run(db.port(), &direct, "ps_direct", "dpw");
    let f = run(proxy.local_addr().port(), &through, "app", "apppw");
    assert_eq!(f, d);
    assert!(d.contains("'{\"a\": [1, 2]}'"), "{d}");
}

#[test]
fn prepared_extended_metadata_of_answers_funnel_rewrites_matches_direct() {
    // What Funnel answers for each client of a shared connection (its own
    // insert id, row count, found rows, warnings, variables) is described
    // as the server describes it to a client with extended metadata.
    let setup = &[TABLE, "INSERT INTO t (v) VALUES (1), (2), (3)"];
    let (d, f) = differential_with("ps_ext_rewrites", setup, 2, 1, EXT | BULK, |c| {
        let ins = c[0].prepare("INSERT INTO t (v, s) VALUES (?, ?)").unwrap();
        vec![
            c[0].bulk(ins, SEND_TYPES, &[vec![v(10), s("a")], vec![v(11), s("b")]]),
            c[1].query("INSERT INTO t (v) VALUES (12)"),
            c[0].query("SELECT LAST_INSERT_ID(), ROW_COUNT(), @@insert_id, @@last_insert_id"),
            c[1].query("SELECT SQL_CALC_FOUND_ROWS * FROM t LIMIT 1"),
            c[1].query("SELECT FOUND_ROWS(), LAST_INSERT_ID()"),
            c[0].query("SELECT CAST('x' AS INT)"),
            c[0].query("SHOW WARNINGS"),
            c[0].query("SHOW COUNT(*) WARNINGS"),
            c[0].query("SELECT @@warning_count, @@error_count"),
            c[1].query("SELECT 1"),
            c[1].query("SELECT JSON_OBJECT('b', 2), CAST('{}' AS JSON)"),
            c[0].query("SELECT * FROM t WHERE v > 10 ORDER BY id"),
        ]
    });
    assert_same(&d, &f);
}

#[test]
fn prepared_bulk_refusal_diagnostics_match_direct() {
    // The 1295 Funnel answers for a client without bulk operations is
    // the client's last condition, as the server's would be.
    let (d, f) = differential_with("ps_bulk_diag", &[TABLE], 1, 1, Capabilities::EMPTY, |c| {
        let ins = c[0].prepare("INSERT INTO t (v, s) VALUES (?, ?)").unwrap();
        vec![
            c[0].query("INSERT INTO t (v) VALUES (1), (2)"),
            c[0].bulk(ins, SEND_TYPES, &[vec![v(3), s("c")]]),
            c[0].query("SHOW WARNINGS"),
            c[0].query("SELECT @@warning_count, @@error_count"),
            c[0].query("SELECT ROW_COUNT()"),
        ]
    });
    assert_same(&d, &f);
}

#[test]
fn prepared_bulk_types_of_a_refused_flag_are_not_kept() {
    // A bulk with a flag the server refuses before it reads anything
    // (SEND_UNIT_RESULTS, never offered) sets no types: the client's next
    // execute without types is read with those of its execute before,
    // also once Funnel runs it on a new connection (another client with
    // other capabilities took the pool's only one in between): failed with
    // 1210, Funnel adding the refused bulk's types there.
    let (d, f) = differential_pair(
        "ps_bulk_flagtypes",
        &[TABLE],
        (BULK, BULK | EXT),
        |a: &mut Raw, other: &mut Raw| {
            let ins = a.prepare("INSERT INTO t (v, s) VALUES (?, ?)").unwrap();
            let out = vec![
                a.execute(ins, 0, &[int(1), text("a")], true),
                a.bulk(ins, SEND_TYPES | 64, &[vec![s("x"), v(2)]]),
                other.query("SELECT 1"),
                a.execute(ins, 0, &[int(4), text("d")], false),
                a.query("SELECT v, s FROM t ORDER BY id"),
            ];
            a.query("TRUNCATE t").unwrap();
            out
        },
    );
    assert_same(&d, &f);
    assert_eq!(d[1], Err(1295));
}

#[test]
fn prepared_bulk_refused_for_a_connection_without_it_sets_no_types() {
    // Funnel offered bulk operations, its connection lacks them (a server
    // swapped after its look at start): the refused bulk's types must not
    // serve the client's next execute without types, which a server
    // without bulk operations reads with the types of the execute before.
    let db = MariaDb::shared();
    users(db);
    let schema = db.fresh_database("ps_bulk_old_types");
    db.root()
        .query_drop(format!("CREATE TABLE {schema}.t (v INT)"))
        .unwrap();
    let relay = bulk_dropped_after(db.addr(), 1);
    let yaml = format!(
        "listen: 127.0.0.1:0\ncores: 1\n\
         users:\n  - name: app\n    password: apppw\n    default_schema: {schema}\n\
         backends:\n  - name: old\n    address: {relay}\n    user: ps_backend\n    password: bpw\n\
         pool:\n  max_per_core: 1\n  min_idle_per_core: 0\n"
    );
    let proxy = funnel_testkit::funnel::start(funnel_config::Config::from_yaml_str(&yaml).unwrap());
    let mut c = Raw::connect_with(proxy.local_addr(), "app", "apppw", &schema, BULK);
    assert!(c.0.caps().contains(BULK));
    let ins = c.prepare("INSERT INTO t VALUES (?)").unwrap();
    assert!(c.execute(ins, 0, &[int(1)], true).is_ok());
    assert_eq!(c.bulk(ins, SEND_TYPES, &[vec![s("2")]]), Err(1295));
    assert!(c.execute(ins, 0, &[int(3)], false).is_ok());
    let reply = c.query("SELECT GROUP_CONCAT(v ORDER BY v) FROM t").unwrap();
    assert_eq!(reply[3], b"\x031,3", "{reply:?}");
}

#[test]
fn prepared_extended_metadata_cursor_and_returning_match_direct() {
    // Descriptions with the extended field in a cursor's execute, its
    // fetches, and a bulk's RETURNING result set.
    let setup = &[
        "CREATE TABLE t (id INT AUTO_INCREMENT PRIMARY KEY, doc JSON, u UUID)",
        "INSERT INTO t (doc, u) VALUES ('[1]', UUID()), ('[2]', NULL), ('{}', NULL)",
    ];
    let (d, f) = differential_with("ps_ext_cursor", setup, 2, 2, EXT | BULK, |c| {
        let sel = c[0]
            .prepare("SELECT id, doc, u IS NULL FROM t WHERE id > ?")
            .unwrap();
        let ret = c[1]
            .prepare("INSERT INTO t (doc) VALUES (?) RETURNING id, doc, u")
            .unwrap();
        vec![
            c[0].execute(sel, 1, &[int(0)], true),
            c[0].fetch(sel, 2),
            c[1].bulk(ret, SEND_TYPES, &[vec![s("[7]")], vec![Cell::Null]]),
            c[0].fetch(sel, 5),
            c[0].execute(sel, 0, &[int(3)], false),
        ]
    });
    assert_same(&d, &f);
    assert!(says_json(&d[0]) && says_json(&d[2]), "{:?}", d[2]);
}

#[test]
fn prepared_bulk_into_a_temporary_table_matches_direct() {
    // A temporary table that hides the statement's table takes the
    // bulk's rows, as the server reopens the table at each execute.
    let (d, f) = differential_with("ps_bulk_temp", &[TABLE], 2, 2, BULK, |c| {
        let ins = c[0].prepare("INSERT INTO t (v, s) VALUES (?, ?)").unwrap();
        let other = c[1].prepare("INSERT INTO t (v, s) VALUES (?, ?)").unwrap();
        vec![
            c[0].bulk(ins, SEND_TYPES, &[vec![v(1), s("a")]]),
            c[0].query("CREATE TEMPORARY TABLE t (id INT AUTO_INCREMENT PRIMARY KEY, v INT, s TEXT)"),
            c[0].bulk(ins, 0, &[vec![v(2), s("b")], vec![v(3), Cell::Default]]),
            c[1].bulk(other, SEND_TYPES, &[vec![v(4), s("d")]]),
            c[0].query("SELECT v, s FROM t ORDER BY id"),
            c[1].query("SELECT v, s FROM t ORDER BY id"),
            c[0].query("DROP TEMPORARY TABLE t"),
            c[0].bulk(ins, 0, &[vec![v(5), s("e")]]),
            c[1].query("SELECT v, s FROM t ORDER BY id"),
        ]
    });
    assert_same(&d, &f);
}

#[test]
fn prepared_bulk_row_count_after_update_and_delete_matches_direct() {
    // Two clients share the connection, so Funnel answers each one's
    // ROW_COUNT() from what it recorded: 0 after the UPDATE bulk (its
    // last row matched nothing) and 1 after the DELETE bulk (its last row
    // deleted one), as directly, where the OK says 2 for each.
    let setup = &[TABLE, "INSERT INTO t (v) VALUES (1), (2), (3)"];
    let (d, f) = differential_with("ps_bulk_rowcount", setup, 2, 1, BULK, |c| {
        let upd = c[1].prepare("UPDATE t SET s = ? WHERE v = ?").unwrap();
        let del = c[0].prepare("DELETE FROM t WHERE v = ?").unwrap();
        vec![
            c[1].bulk(
                upd,
                SEND_TYPES,
                &[vec![s("x"), v(1)], vec![s("x"), v(2)], vec![s("y"), v(9)]],
            ),
            c[0].query("SELECT 1"),
            c[1].query("SELECT ROW_COUNT()"),
            c[0].bulk(del, SEND_TYPES, &[vec![v(1)], vec![v(7)], vec![v(3)]]),
            c[1].query("SELECT 1"),
            c[0].query("SELECT ROW_COUNT()"),
        ]
    });
    assert_same(&d, &f);
}

#[test]
fn prepared_returning_then_last_insert_id_matches_direct() {
    // No OK carries what INSERT ... RETURNING leaves: the server answers
    // LAST_INSERT_ID() with the first id it inserted (Funnel reads it
    // back), and FOUND_ROWS() as before the statement, whatever the rows
    // returned (the other client's count on the same connection is 3).
    let (d, f) = differential_with("ps_ret_counts", &[TABLE], 2, 1, BULK, |c| {
        let ret = c[0]
            .prepare("INSERT INTO t (v, s) VALUES (?, ?) RETURNING id")
            .unwrap();
        vec![
            // A new session's FOUND_ROWS() is what the server thread's last
            // connection left: set one first.
            c[0].query("SELECT 1"),
            c[0].query("INSERT INTO t (v, s) VALUES (1, 'a'), (2, 'b') RETURNING id"),
            c[1].query("SELECT 1"),
            c[0].query("SELECT FOUND_ROWS(), ROW_COUNT(), LAST_INSERT_ID()"),
            c[0].query("SELECT 1 UNION SELECT 2"),
            c[1].query("SELECT 1 UNION SELECT 2 UNION SELECT 3"),
            c[0].execute(ret, 0, &[int(3), text("c")], true),
            c[1].query("SELECT 1"),
            c[0].query("SELECT FOUND_ROWS(), ROW_COUNT(), LAST_INSERT_ID()"),
            c[0].bulk(
                ret,
                SEND_TYPES,
                &[vec![v(4), s("d")], vec![v(5), s("e")], vec![v(6), s("f")]],
            ),
            c[1].query("SELECT 1"),
            c[0].query("SELECT FOUND_ROWS(), ROW_COUNT(), LAST_INSERT_ID()"),
        ]
    });
    assert_same(&d, &f);
}

#[test]
fn prepared_bulk_insert_row_counts_match_direct() {
    // An INSERT bulk's ROW_COUNT() is the OK's count of every row, also
    // with IGNORE (a duplicate last) and ON DUPLICATE KEY UPDATE.
    let setup = &[TABLE, "INSERT INTO t (v) VALUES (1)"];
    let (d, f) = differential_with("ps_bulk_inscount", setup, 2, 1, BULK, |c| {
        let ign = c[0].prepare("INSERT IGNORE INTO t (v) VALUES (?)").unwrap();
        let odku = c[0]
            .prepare("INSERT INTO t (v) VALUES (?) ON DUPLICATE KEY UPDATE s = 'u'")
            .unwrap();
        vec![
            c[0].bulk(ign, SEND_TYPES, &[vec![v(5)], vec![v(6)], vec![v(1)]]),
            c[1].query("SELECT 1"),
            c[0].query("SELECT ROW_COUNT(), LAST_INSERT_ID()"),
            c[0].bulk(odku, SEND_TYPES, &[vec![v(1)], vec![v(7)], vec![v(5)]]),
            c[1].query("SELECT 1"),
            c[0].query("SELECT ROW_COUNT(), LAST_INSERT_ID()"),
        ]
    });
    assert_same(&d, &f);
    assert!(d[0].is_ok() && d[3].is_ok(), "{:?} {:?}", d[0], d[3]);
}

#[test]
fn mariadb_cli_column_type_info_matches_direct() {
    // The mariadb client (libmariadb, which takes extended metadata and
    // bulk operations where offered) describes a JSON column alike.
    if std::process::Command::new("mariadb")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("skipping: no mariadb client");
        return;
    }
    let db = MariaDb::shared();
    users(db);
    let direct = db.fresh_database("ps_cli_d");
    let through = db.fresh_database("ps_cli_f");
    let mut root = db.root();
    for schema in [&direct, &through] {
        root.query_drop(format!("CREATE TABLE {schema}.t (doc JSON, u UUID, p POINT)"))
            .unwrap();
        root.query_drop(format!(
            "INSERT INTO {schema}.t VALUES ('[1]', '123e4567-e89b-12d3-a456-426614174000', POINT(1, 2))"
        ))
        .unwrap();
    }
    let proxy = funnel(db, &through, 1);
    let run = |port: u16, schema: &str, user: &str, pw: &str| {
        let out = std::process::Command::new("mariadb")
            .args([
                "--protocol=TCP",
                "-h127.0.0.1",
                &format!("-P{port}"),
                &format!("-u{user}"),
                &format!("-p{pw}"),
                "--column-type-info",
                "--table",
                schema,
                "-e",
                "SELECT doc, u, ST_AsText(p) FROM t",
            ])
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        text.replace(schema, "<db>")
    };
    let d = run(db.port(), &direct, "ps_direct", "dpw");
    let f = run(proxy.local_addr().port(), &through, "app", "apppw");
    assert_eq!(f, d);
    assert!(d.contains("(format=json)") && d.contains("(type=uuid)"), "{d}");
}

#[test]
fn prepared_bulk_of_a_statement_with_an_open_cursor_matches_direct() {
    // The server refuses a bulk SELECT before it would close the
    // statement's cursor: fetches go on after it.
    let setup = &[TABLE, "INSERT INTO t (v) VALUES (1), (2), (3), (4)"];
    let (d, f) = differential_with("ps_bulk_cursor", setup, 1, 1, BULK, |c| {
        let sel = c[0].prepare("SELECT v FROM t WHERE v > ? ORDER BY v").unwrap();
        vec![
            c[0].execute(sel, 1, &[int(0)], true),
            c[0].fetch(sel, 1),
            c[0].bulk(sel, SEND_TYPES, &[vec![v(2)]]),
            c[0].fetch(sel, 2),
            c[0].bulk(sel, 0, &[vec![v(2)]]),
            c[0].fetch(sel, 5),
            c[0].fetch(sel, 5),
        ]
    });
    assert_same(&d, &f);
    assert_eq!(d[2], Err(1295));
}

#[test]
fn prepared_bulk_after_close_matches_direct() {
    let (d, f) = differential_with("ps_bulk_close", &[TABLE], 1, 1, BULK, |c| {
        let ins = c[0].prepare("INSERT INTO t (v, s) VALUES (?, ?)").unwrap();
        let mut out = vec![c[0].bulk(ins, SEND_TYPES, &[vec![v(1), s("a")]])];
        c[0].stmt_command(0x19, ins);
        out.push(c[0].bulk(ins, SEND_TYPES, &[vec![v(2), s("b")]]));
        out.push(c[0].bulk(LAST_PREPARED, SEND_TYPES, &[vec![v(3), s("c")]]));
        let again = c[0].prepare("INSERT INTO t (v, s) VALUES (?, ?)").unwrap();
        // A new statement: the closed one's types are gone.
        out.push(c[0].bulk(again, 0, &[vec![v(4), s("d")]]));
        out.push(c[0].bulk(LAST_PREPARED, SEND_TYPES, &[vec![v(5), s("e")]]));
        out.push(c[0].query("SELECT v, s FROM t ORDER BY id"));
        out
    });
    assert_same(&d, &f);
    assert_eq!((&d[1], &d[3]), (&Err(1243), &Err(1210)));
}

#[test]
fn prepared_bulk_reading_last_insert_id_matches_direct() {
    // A bulk whose statement reads LAST_INSERT_ID() reads the client's,
    // not the one another client left on the shared connection.
    let (d, f) = differential_with("ps_bulk_readlid", &[TABLE], 2, 1, BULK, |c| {
        let rd = c[0]
            .prepare("INSERT INTO t (v, s) VALUES (LAST_INSERT_ID() * 100 + ?, ?)")
            .unwrap();
        vec![
            c[0].query("INSERT INTO t (v) VALUES (1)"),
            c[1].query("INSERT INTO t (v) VALUES (2)"),
            c[0].bulk(rd, SEND_TYPES, &[vec![v(1), s("a")], vec![v(2), s("b")]]),
            c[1].query("INSERT INTO t (v) VALUES (3)"),
            c[0].bulk(rd, 0, &[vec![v(3), s("c")]]),
            c[1].query("SELECT id, v, s FROM t ORDER BY id"),
        ]
    });
    assert_same(&d, &f);
}

#[test]
fn prepared_bulk_refused_flag_without_types_sets_none_on_the_connection() {
    // A bulk with only a flag the server refuses (no types sent): Funnel
    // must not count the types it would add as the connection's, since
    // the server never reads them; the client's next execute without
    // types then still gets its own added, not the other client's read.
    let (d, f) = differential_with("ps_bulk_flag_inject", &[TABLE], 2, 1, BULK, |c| {
        let a = c[0].prepare("INSERT INTO t (v, s) VALUES (?, ?)").unwrap();
        let b = c[1].prepare("INSERT INTO t (v, s) VALUES (?, ?)").unwrap();
        vec![
            c[0].execute(a, 0, &[int(1), text("a")], true),
            c[1].execute(b, 0, &[text("2"), int(2)], true),
            c[0].bulk(a, 64, &[vec![v(3), s("c")]]),
            c[0].execute(a, 0, &[int(4), text("d")], false),
            c[1].query("SELECT v, s FROM t ORDER BY id"),
        ]
    });
    assert_same(&d, &f);
    assert_eq!(d[2], Err(1295));
}

#[test]
fn prepared_bulk_on_a_new_connection_after_key_changes_matches_direct() {
    // A pool of one, taken in turn by a client with extended metadata (a
    // pool key of its own): each of the other client's bulks and executes
    // runs on a connection opened anew, its statement prepared there,
    // with the types it sent last (by an execute or by a bulk) added.
    let (d, f) = differential_pair(
        "ps_bulk_rekey",
        &[TABLE],
        (BULK, BULK | EXT),
        |a: &mut Raw, other: &mut Raw| {
            let ins = a.prepare("INSERT INTO t (v, s) VALUES (?, ?)").unwrap();
            let out = vec![
                a.execute(ins, 0, &[int(1), text("a")], true),
                other.query("SELECT 1"),
                a.bulk(ins, 0, &[vec![v(3), s("c")], vec![v(4), Cell::Null]]),
                other.query("SELECT 2"),
                a.bulk(ins, SEND_TYPES, &[vec![s("6"), s("f")]]),
                other.query("SELECT 3"),
                a.execute(ins, 0, &[text("7"), text("g")], false),
                other.query("SELECT 4"),
                a.bulk(ins, 0, &[vec![s("8"), s("h")]]),
                a.query("SELECT v, s FROM t ORDER BY id"),
            ];
            a.query("TRUNCATE t").unwrap();
            out
        },
    );
    assert_same(&d, &f);
    assert!(d.iter().all(Result::is_ok), "{d:?}");
}

/// A client of the compressed protocol, over a [`MiniClient`] that
/// negotiated `CLIENT_COMPRESS` (which speaks only the plain one).
struct Zipped {
    stream: std::net::TcpStream,
    plain: Vec<u8>,
    caps: Capabilities,
}

impl Zipped {
    fn connect(addr: SocketAddr, user: &str, pw: &str, db: &str) -> (Zipped, MiniClient) {
        let c =
            MiniClient::connect_with(addr, user, pw, Some(db), BULK | Capabilities::CLIENT_COMPRESS).unwrap();
        assert!(c.caps().contains(Capabilities::CLIENT_COMPRESS) && c.caps().contains(BULK));
        let z = Zipped {
            stream: c.try_clone_stream().unwrap(),
            plain: Vec::new(),
            caps: c.caps(),
        };
        (z, c)
    }

    /// Sends `payload` as one command, compressed in one frame.
    fn send(&mut self, payload: &[u8]) {
        use std::io::Write;
        assert!(payload.len() < 0xff_ffff);
        let mut plain = (payload.len() as u32).to_le_bytes()[..3].to_vec();
        plain.push(0);
        plain.extend_from_slice(payload);
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        z.write_all(&plain).unwrap();
        let packed = z.finish().unwrap();
        let mut frame = (packed.len() as u32).to_le_bytes()[..3].to_vec();
        frame.push(0);
        frame.extend_from_slice(&(plain.len() as u32).to_le_bytes()[..3]);
        frame.extend_from_slice(&packed);
        self.stream.write_all(&frame).unwrap();
    }

    /// The next plain packet's payload, reading frames as needed.
    fn packet(&mut self) -> Vec<u8> {
        use std::io::Read;
        loop {
            if self.plain.len() >= 4 {
                let len = usize::from(self.plain[0])
                    | usize::from(self.plain[1]) << 8
                    | usize::from(self.plain[2]) << 16;
                if self.plain.len() >= 4 + len {
                    let p = self.plain[4..4 + len].to_vec();
                    self.plain.drain(..4 + len);
                    return p;
                }
            }
            let mut head = [0u8; 7];
            self.stream.read_exact(&mut head).unwrap();
            let len = usize::from(head[0]) | usize::from(head[1]) << 8 | usize::from(head[2]) << 16;
            let raw_len = usize::from(head[4]) | usize::from(head[5]) << 8 | usize::from(head[6]) << 16;
            let mut body = vec![0u8; len];
            self.stream.read_exact(&mut body).unwrap();
            if raw_len == 0 {
                self.plain.extend_from_slice(&body);
            } else {
                flate2::read::ZlibDecoder::new(&body[..])
                    .read_to_end(&mut self.plain)
                    .unwrap();
            }
        }
    }

    fn call(&mut self, payload: &[u8], expect: Expect) -> Reply {
        use funnel_protocol::tracker::{Event, ResponseTracker};
        self.send(payload);
        let mut tracker = ResponseTracker::new(expect, self.caps, funnel_protocol::StatusFlags(2));
        let mut out = Vec::new();
        loop {
            let p = self.packet();
            let event = tracker.feed(&p, p.len()).unwrap();
            out.push(p);
            if event == Event::Done {
                break;
            }
        }
        if out[0].first() == Some(&0xff) {
            return Err(u16::from_le_bytes([out[0][1], out[0][2]]));
        }
        Ok(out)
    }
}

#[test]
fn prepared_bulk_over_the_compressed_protocol_matches_direct() {
    // A 2 MiB bulk (frames of compressed data) and a RETURNING result of
    // many rows, compressed both ways.
    let db = MariaDb::shared();
    users(db);
    let table = "t (id INT AUTO_INCREMENT PRIMARY KEY, v INT, s VARCHAR(250))";
    let script = |addr: SocketAddr, user: &str, pw: &str, schema: &str| -> Vec<Reply> {
        db.root()
            .query_drop(format!("CREATE TABLE {schema}.{table}"))
            .unwrap();
        let (mut z, _keep) = Zipped::connect(addr, user, pw, schema);
        let mut prep = vec![0x16];
        prep.extend_from_slice(b"INSERT INTO t (v, s) VALUES (?, ?) RETURNING id, v");
        let id = u32::from_le_bytes(
            z.call(&prep, Expect::Prepare).unwrap()[0][1..5]
                .try_into()
                .unwrap(),
        );
        let long = "y".repeat(240);
        let big: Vec<Vec<Cell>> = (0..8000).map(|n| vec![v(n), s(&long)]).collect();
        let many: Vec<Vec<Cell>> = (0..3000).map(|n| vec![v(n), s("r")]).collect();
        let mut count = vec![0x03];
        count.extend_from_slice(b"SELECT COUNT(*), SUM(LENGTH(s)) FROM t");
        let out = vec![
            z.call(&bulk_payload(id, SEND_TYPES, &big), Expect::Results),
            z.call(&bulk_payload(id, 0, &many), Expect::Results),
            z.call(&count, Expect::Results),
        ];
        mask(out, schema)
    };
    let direct = db.fresh_database("ps_bulk_zip_d");
    let through = db.fresh_database("ps_bulk_zip_f");
    let d = script(db.addr(), "ps_direct", "dpw", &direct);
    let proxy = funnel(db, &through, 1);
    let f = script(proxy.local_addr(), "app", "apppw", &through);
    assert_same(&d, &f);
    assert_eq!(d[1].as_ref().map(Vec::len), Ok(3000 + 5));
}

#[test]
fn prepared_bulk_around_client_max_packet_size() {
    // A bulk just under client.max_packet_size runs; one over it gets
    // ERR 1153 (and the connection is closed, as the server does with
    // max_allowed_packet), never a hang.
    let db = MariaDb::shared();
    users(db);
    let schema = db.fresh_database("ps_bulk_maxpkt");
    db.root()
        .query_drop(format!("CREATE TABLE {schema}.t (v INT, s VARCHAR(250))"))
        .unwrap();
    let cfg = funnel_testkit::funnel::config(
        db,
        ("app", "apppw"),
        ("ps_backend", "bpw"),
        Some(&schema),
        "pool:\n  max_per_core: 1\n  min_idle_per_core: 0\nclient:\n  max_packet_size: 1MiB\n",
    );
    let proxy = funnel_testkit::funnel::start(cfg);
    let long = "z".repeat(240);
    let rows = |n: i64| -> Vec<Vec<Cell>> { (0..n).map(|i| vec![v(i), s(&long)]).collect() };
    let mut c = Raw::connect_with(proxy.local_addr(), "app", "apppw", &schema, BULK);
    let ins = c.prepare("INSERT INTO t VALUES (?, ?)").unwrap();
    let under = bulk_payload(ins, SEND_TYPES, &rows(4000));
    assert!(under.len() < 1 << 20, "{}", under.len());
    assert!(c.call(&under, Expect::Results).is_ok());
    let over = bulk_payload(ins, SEND_TYPES, &rows(4300));
    assert!(over.len() > 1 << 20, "{}", over.len());
    c.0.send_command(&over).unwrap();
    let (_, reply) = c.0.read_packet().unwrap();
    let err = funnel_protocol::response::ErrPacket::parse(&reply).unwrap();
    assert_eq!(err.code, 1153, "{err:?}");
    let mut fresh = Raw::connect(proxy.local_addr(), "app", "apppw", &schema);
    let count = fresh.query("SELECT COUNT(*) FROM t").unwrap();
    assert_eq!(count[3], b"\x044000");
}

#[test]
fn prepared_bulk_replace_and_insert_select_row_counts_match_direct() {
    // A REPLACE bulk (a row replaced counts two): the client's
    // ROW_COUNT() and LAST_INSERT_ID() as directly; the server refuses an
    // INSERT ... SELECT bulk, which leaves them.
    let setup = &[TABLE, "INSERT INTO t (v) VALUES (1)"];
    let (d, f) = differential_with("ps_bulk_morecounts", setup, 2, 1, BULK, |c| {
        let rep = c[0].prepare("REPLACE INTO t (v, s) VALUES (?, 'r')").unwrap();
        let insel = c[0]
            .prepare("INSERT INTO t (v) SELECT ? + seq FROM seq_1_to_2")
            .unwrap();
        vec![
            c[0].bulk(rep, SEND_TYPES, &[vec![v(1)], vec![v(9)]]),
            c[1].query("SELECT 1"),
            c[0].query("SELECT ROW_COUNT(), LAST_INSERT_ID()"),
            c[0].bulk(insel, SEND_TYPES, &[vec![v(100)], vec![v(200)], vec![v(300)]]),
            c[1].query("SELECT 1"),
            c[0].query("SELECT ROW_COUNT(), LAST_INSERT_ID()"),
        ]
    });
    assert_same(&d, &f);
    assert!(d[0].is_ok(), "{:?}", d[0]);
    assert_eq!(d[3], Err(1295));
}

#[test]
fn prepared_extended_metadata_with_deprecate_eof_matches_direct() {
    // Extended metadata with CLIENT_DEPRECATE_EOF (as Connector/J and
    // Node.js negotiate both): prepares, one replayed from Funnel's
    // registry, executes, a bulk's RETURNING, text results.
    let setup = &["CREATE TABLE t (id INT AUTO_INCREMENT PRIMARY KEY, doc JSON, u UUID)"];
    let caps = EXT | BULK | Capabilities::CLIENT_DEPRECATE_EOF;
    let (d, f) = differential_with("ps_ext_deof", setup, 2, 1, caps, |c| {
        let sql = "INSERT INTO t (doc) VALUES (?) RETURNING id, doc, u";
        let a = c[0].prepare_reply(sql);
        let b = c[1].prepare_reply(sql);
        let id = c[1].prepare(sql).unwrap();
        let sel = c[0].prepare("SELECT doc, u FROM t WHERE id > ?").unwrap();
        vec![
            a,
            b,
            c[1].bulk(id, SEND_TYPES, &[vec![s("[1]")], vec![s("{}")]]),
            c[1].execute(id, 0, &[text("[2]")], true),
            c[0].execute(sel, 0, &[int(0)], true),
            c[0].query("SELECT doc, u FROM t"),
        ]
    });
    assert_same(&d, &f);
    assert!(says_json(&d[5]), "{:?}", d[5]);
}

#[test]
fn prepared_returning_without_an_id_keeps_the_clients_last_insert_id() {
    // A RETURNING that inserts no auto-increment id (a table without one,
    // an explicit id, no row) leaves the server's LAST_INSERT_ID() as it
    // was: the client's own, not the one another client left on the
    // shared connection (failed with Funnel reading back the other's).
    let setup = &[
        TABLE,
        "CREATE TABLE n (x INT)",
        "CREATE TABLE a2 (id INT AUTO_INCREMENT PRIMARY KEY, x INT) AUTO_INCREMENT = 100",
    ];
    let (d, f) = differential_with("ps_ret_other", setup, 2, 1, BULK, |c| {
        let ret = c[0].prepare("INSERT INTO n (x) VALUES (?) RETURNING x").unwrap();
        vec![
            c[0].query("INSERT INTO t (v) VALUES (1)"),
            c[1].query("INSERT INTO a2 (x) VALUES (1)"),
            c[0].query("INSERT INTO n (x) VALUES (5) RETURNING x"),
            c[0].query("SELECT LAST_INSERT_ID()"),
            c[1].query("INSERT INTO a2 (x) VALUES (2)"),
            c[0].execute(ret, 0, &[int(6)], true),
            c[0].query("SELECT LAST_INSERT_ID()"),
            c[1].query("INSERT INTO a2 (x) VALUES (3)"),
            c[0].query("INSERT INTO t (id, v) VALUES (50, 7) RETURNING id"),
            c[0].query("SELECT LAST_INSERT_ID()"),
            c[1].query("INSERT INTO a2 (x) VALUES (4)"),
            c[0].query("INSERT INTO t (v) SELECT 8 FROM DUAL WHERE 0 RETURNING id"),
            c[0].query("SELECT LAST_INSERT_ID()"),
            c[1].query("INSERT INTO a2 (x) VALUES (5)"),
            c[0].bulk(ret, SEND_TYPES, &[vec![v(7)], vec![v(8)]]),
            c[0].query("SELECT LAST_INSERT_ID()"),
            c[1].query("SELECT LAST_INSERT_ID()"),
        ]
    });
    assert_same(&d, &f);
}

#[test]
fn prepared_returning_warnings_transactions_and_delete_match_direct() {
    // What the read-back after RETURNING leaves: the statement's warnings,
    // ROW_COUNT(), a transaction's id after ROLLBACK; DELETE ... RETURNING
    // is not read back.
    let setup = &[TABLE, "INSERT INTO t (v) VALUES (1)"];
    let (d, f) = differential_with("ps_ret_warn", setup, 2, 1, BULK, |c| {
        vec![
            c[0].query("INSERT IGNORE INTO t (v) VALUES (1), (2) RETURNING id, v"),
            c[0].query("SHOW WARNINGS"),
            c[0].query("SELECT @@warning_count, ROW_COUNT(), LAST_INSERT_ID()"),
            c[1].query("SELECT 1"),
            c[0].query("BEGIN"),
            c[0].query("INSERT INTO t (v) VALUES (3) RETURNING id"),
            c[0].query("SELECT LAST_INSERT_ID(), ROW_COUNT()"),
            c[0].query("INSERT INTO t (v) VALUES (CAST('4x' AS INT)) RETURNING id"),
            c[0].query("SHOW WARNINGS"),
            c[0].query("ROLLBACK"),
            c[0].query("SELECT LAST_INSERT_ID()"),
            c[0].query("DELETE FROM t WHERE v = 2 RETURNING id"),
            c[0].query("SELECT LAST_INSERT_ID(), ROW_COUNT(), FOUND_ROWS()"),
            c[0].query("INSERT INTO t (v) VALUES (1) RETURNING id"),
            c[0].query("SELECT LAST_INSERT_ID(), ROW_COUNT()"),
            c[0].query("SET @x = 1"),
            c[0].query("INSERT INTO t (v) VALUES (9) RETURNING id"),
            c[0].query("SELECT LAST_INSERT_ID(), @x"),
            c[0].query("/* c */ REPLACE INTO t (v) VALUES (9) RETURNING id"),
            c[0].query("SELECT LAST_INSERT_ID()"),
        ]
    });
    assert_same(&d, &f);
}

#[test]
fn prepared_returning_on_pinned_sessions_matches_direct() {
    // RETURNING on a session pinned for its insert id (where the server
    // answers LAST_INSERT_ID() itself), one pinned for a user variable,
    // and one in a transaction.
    let setup = &[TABLE, "CREATE TABLE n (x INT)"];
    let (d, f) = differential_with("ps_ret_pinned", setup, 2, 2, BULK, |c| {
        let ret = c[0].prepare("INSERT INTO t (v) VALUES (?) RETURNING id").unwrap();
        vec![
            c[0].query("SELECT LAST_INSERT_ID(5)"),
            c[0].query("INSERT INTO n (x) VALUES (5) RETURNING x"),
            c[0].query("SELECT LAST_INSERT_ID()"),
            c[0].query("INSERT INTO t (v) VALUES (1) RETURNING id"),
            c[0].query("SELECT LAST_INSERT_ID()"),
            c[0].execute(ret, 0, &[int(2)], true),
            c[1].query("INSERT INTO t (v) VALUES (3)"),
            c[0].query("SELECT LAST_INSERT_ID()"),
            c[1].query("SET @a = 1"),
            c[1].query("INSERT INTO t (v) VALUES (4) RETURNING id"),
            c[1].query("SELECT LAST_INSERT_ID()"),
            c[1].query("INSERT INTO n (x) VALUES (4) RETURNING x"),
            c[1].query("SELECT LAST_INSERT_ID(), @a"),
            c[1].query("BEGIN"),
            c[1].query("INSERT INTO n (x) VALUES (4) RETURNING x"),
            c[1].query("COMMIT"),
            c[1].query("SELECT LAST_INSERT_ID()"),
        ]
    });
    assert_same(&d, &f);
}

#[test]
fn prepared_bulk_after_a_lost_transaction_is_refused_as_an_execute() {
    // The session's transaction died with its connection: Funnel refuses
    // its statements until its ROLLBACK (ERR 9008), so that none runs in
    // autocommit on another connection, half a transaction. A bulk too.
    let db = MariaDb::shared();
    let schema = schema_with(db, "ps_bulk_lost", &[TABLE]);
    let proxy = funnel(db, &schema, 1);
    let mut c = Raw::connect_with(proxy.local_addr(), "app", "apppw", &schema, BULK);
    let ins = c.prepare("INSERT INTO t (v, s) VALUES (?, ?)").unwrap();
    c.query("BEGIN").unwrap();
    c.query("INSERT INTO t (v) VALUES (1)").unwrap();
    let mut root = db.root();
    let rows: Vec<(u64, String, Option<String>)> = root
        .query("SELECT ID, USER, DB FROM information_schema.PROCESSLIST")
        .unwrap();
    for (id, _, _) in rows
        .iter()
        .filter(|(_, user, db)| user == "ps_backend" && db.as_deref() == Some(schema.as_str()))
    {
        let _ = root.query_drop(format!("KILL {id}"));
    }
    assert!(c.query("SELECT 1").is_err(), "the connection is gone");
    assert_eq!(c.bulk(ins, SEND_TYPES, &[vec![v(2), s("b")]]), Err(9008));
    c.query("ROLLBACK").unwrap();
    let left: Option<u64> = db.query_first(&format!("SELECT COUNT(*) FROM {schema}.t"));
    assert_eq!(
        left,
        Some(0),
        "nothing of the lost transaction, nor the bulk, was kept"
    );
}
