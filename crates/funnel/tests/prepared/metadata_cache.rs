//! MariaDB's metadata cache (`MARIADB_CLIENT_CACHE_METADATA`) through
//! Funnel: every column count carries the byte that says whether column
//! definitions follow, and an execute leaves out the definitions the
//! client has for its statement, exactly where a direct connection does.
//! Backend connections never ask for the cache themselves: what each
//! client has is its own (one changes its charset, one opens cursors, a
//! table changes under both), also where a client without the cache
//! shares the connection. Replies are compared byte for byte, and every
//! packet's sequence id is checked.

use super::bulk::{s, v, BULK, SEND_TYPES};
use super::*;

const CACHE: Capabilities = Capabilities::MARIADB_CLIENT_CACHE_METADATA;

const SETUP: &[&str] = &[
    "CREATE TABLE t (id INT PRIMARY KEY, c VARCHAR(20), n INT)",
    "INSERT INTO t VALUES (1, 'one', 10), (2, 'two', 20)",
    "CREATE PROCEDURE p2() BEGIN SELECT 1 AS a; SELECT 'x' AS b, 2 AS c; END",
];

/// The column count of a reply's first packet and the byte after it.
fn count_and_flag(reply: &Reply) -> Option<(u8, u8)> {
    let first = reply.as_ref().ok()?.first()?;
    (first.len() == 2).then(|| (first[0], first[1]))
}

fn script(c: &mut [Raw]) -> Vec<Reply> {
    let sel = "SELECT * FROM t WHERE id = ?";
    let a = c[0].prepare(sel).unwrap();
    // From the shard's registry through Funnel.
    let b = c[1].prepare(sel).unwrap();
    let q = c[0].prepare("SELECT ? AS q").unwrap();
    let call = c[1].prepare("CALL p2()").unwrap();
    let mut out = vec![
        c[0].execute(a, 0, &[int(1)], true),
        c[1].execute(b, 0, &[int(2)], true),
        c[0].execute(a, 0, &[int(2)], false),
        c[0].query("SELECT c FROM t"),
        c[1].query("CALL p2()"),
        // Another charset: other definitions, once.
        c[1].query("SET NAMES latin1"),
        c[1].execute(b, 0, &[int(1)], false),
        c[1].execute(b, 0, &[int(1)], false),
        c[0].execute(a, 0, &[int(1)], false),
        // A cursor's definitions differ (a temporary table's flags).
        c[0].execute(a, 1, &[int(1)], false),
        c[0].fetch(a, 5),
        c[0].execute(a, 1, &[int(2)], false),
        c[0].execute(a, 0, &[int(2)], false),
        // A parameter's type shapes the column.
        c[0].execute(q, 0, &[int(5)], true),
        c[0].execute(q, 0, &[text("abc")], true),
        c[0].execute(q, 0, &[text("abc")], true),
        // A procedure's result sets come with definitions every time.
        c[1].execute(call, 0, &[], false),
        c[1].execute(call, 0, &[], false),
        // A failed execute leaves what the client has as it was.
        c[0].execute(a, 0, &[text("x'")], true),
        c[0].execute(a, 0, &[int(1)], true),
    ];
    // The table changes under both clients' statements.
    out.push(c[1].query("ALTER TABLE t ADD COLUMN z INT"));
    out.push(c[0].execute(a, 0, &[int(1)], false));
    out.push(c[1].execute(b, 0, &[int(1)], false));
    out.push(c[0].execute(a, 0, &[int(1)], false));
    out.push(c[1].execute(b, 0, &[int(2)], false));
    out.push(c[1].query("ALTER TABLE t DROP COLUMN z"));
    out
}

#[test]
fn prepared_metadata_cache_matches_direct() {
    let (d, f) = differential_with("ps_mcache", SETUP, 2, 2, CACHE, script);
    assert_same(&d, &f);
    // The script reaches both kinds of execute, and text results.
    assert_eq!(count_and_flag(&d[0]), Some((3, 0)), "{:?}", d[0]);
    assert_eq!(count_and_flag(&d[3]), Some((1, 1)));
    assert_eq!(count_and_flag(&d[6]), Some((3, 1)), "latin1: {:?}", d[6]);
    assert_eq!(count_and_flag(&d[7]), Some((3, 0)));
}

#[test]
fn prepared_metadata_cache_with_deprecate_eof_matches_direct() {
    let caps = CACHE | Capabilities::CLIENT_DEPRECATE_EOF;
    let (d, f) = differential_with("ps_mcache_eof", SETUP, 2, 2, caps, script);
    assert_same(&d, &f);
    assert_eq!(count_and_flag(&d[0]), Some((3, 0)));
}

#[test]
fn prepared_metadata_cache_bulk_returning_matches_direct() {
    let (d, f) = differential_with("ps_mcache_bulk", SETUP, 2, 1, CACHE | BULK, |c| {
        let ret = c[0]
            .prepare("INSERT INTO t (id, c) VALUES (?, ?) RETURNING id, c")
            .unwrap();
        vec![
            c[0].bulk(ret, SEND_TYPES, &[vec![v(7), s("s")]]),
            c[1].query("SELECT 1"),
            c[0].bulk(ret, SEND_TYPES, &[vec![v(8), s("s")], vec![v(9), s("s")]]),
            c[0].execute(ret, 0, &[int(10), text("x")], true),
            c[0].execute(ret, 0, &[int(10), text("x")], true),
        ]
    });
    assert_same(&d, &f);
}

#[test]
fn prepared_metadata_cache_and_plain_clients_share_a_connection() {
    let sql = "SELECT c, n FROM t WHERE id = ?";
    let (d, f) = differential_pair(
        "ps_mcache_mix",
        SETUP,
        (CACHE, Capabilities::EMPTY),
        |cached, plain| {
            let a = cached.prepare(sql).unwrap();
            let b = plain.prepare(sql).unwrap();
            vec![
                plain.execute(b, 0, &[int(1)], true),
                cached.execute(a, 0, &[int(1)], true),
                plain.query("SELECT c FROM t"),
                cached.query("SELECT c FROM t"),
                plain.execute(b, 0, &[int(2)], true),
                cached.execute(a, 0, &[int(2)], true),
            ]
        },
    );
    assert_same(&d, &f);
    assert_eq!(count_and_flag(&d[1]), Some((2, 0)));
    assert_eq!(
        d[0].as_ref().unwrap()[0],
        vec![2],
        "no flag byte without the cache"
    );
}

#[test]
fn prepared_metadata_cache_sends_the_definitions_of_a_new_results_charset() {
    // The server leaves the definitions out after `SET
    // character_set_results` (its cache is checked when the statement is
    // prepared again, which a new client charset does): the client keeps
    // the old charset's. Funnel compares the definitions themselves.
    let (d, f) = differential_with("ps_mcache_cs", SETUP, 1, 1, CACHE, |c| {
        let id = c[0].prepare("SELECT c FROM t WHERE id = ?").unwrap();
        vec![
            c[0].execute(id, 0, &[int(1)], true),
            c[0].query("SET character_set_results = latin1"),
            c[0].execute(id, 0, &[int(1)], false),
            c[0].execute(id, 0, &[int(1)], false),
        ]
    });
    assert_same(&d[..2], &f[..2]);
    assert_eq!(count_and_flag(&d[2]), Some((1, 0)), "{:?}", d[2]);
    assert_eq!(count_and_flag(&f[2]), Some((1, 1)), "{:?}", f[2]);
    let def = &f[2].as_ref().unwrap()[1];
    // The charset id sits after the fixed-length fields' length byte 0x0c.
    let at = def.iter().rposition(|&b| b == 0x0c).unwrap();
    assert_eq!(def[at + 1], 8, "latin1 in the new definition: {def:?}");
    assert_eq!(d[3], f[3], "then left out again");
}

#[test]
fn prepared_metadata_cache_renumbers_rows_that_span_reads() {
    // Rows larger than the read buffer arrive over several reads after
    // the left-out definitions: each packet's id moves down once.
    let (d, f) = differential_with("ps_mcache_big", SETUP, 1, 1, CACHE, |c| {
        let mid = c[0]
            .prepare("SELECT REPEAT(c, 10000) AS big, id FROM t WHERE id > ?")
            .unwrap();
        let huge = c[0].prepare("SELECT REPEAT('y', ?) AS huge").unwrap();
        vec![
            c[0].execute(mid, 0, &[int(0)], true),
            c[0].execute(mid, 0, &[int(0)], true),
            c[0].execute(huge, 0, &[int(300_000)], true),
            c[0].execute(huge, 0, &[int(300_000)], true),
        ]
    });
    assert_same(&d, &f);
    assert_eq!(count_and_flag(&d[1]), Some((2, 0)));
    assert_eq!(count_and_flag(&d[3]), Some((1, 0)));
}

#[test]
fn prepared_metadata_cache_leaves_out_definitions_longer_than_a_read() {
    // 300 columns of long names: their definitions (some 45 KiB) reach
    // Funnel over several reads. The server leaves them out all the same.
    // (A count of 300 takes three bytes, and moves sequence ids by 44.)
    let cols: Vec<String> = (0..300).map(|i| format!("{}_{i:03}", "c".repeat(56))).collect();
    let create = format!(
        "CREATE TABLE w ({}, PRIMARY KEY ({}))",
        cols.iter()
            .map(|c| format!("{c} INT"))
            .collect::<Vec<_>>()
            .join(", "),
        cols[0]
    );
    let insert = format!("INSERT INTO w ({}) VALUES (1)", cols[0]);
    let setup = [create.as_str(), insert.as_str()];
    let (d, f) = differential_with("ps_mcache_wide", &setup, 1, 1, CACHE, |c| {
        let id = c[0].prepare("SELECT * FROM w WHERE ? > 0").unwrap();
        vec![
            c[0].execute(id, 0, &[int(1)], true),
            c[0].execute(id, 0, &[int(1)], true),
            c[0].execute(id, 1, &[int(1)], true),
            c[0].fetch(id, 5),
            c[0].execute(id, 0, &[int(1)], true),
        ]
    });
    assert_same(&d, &f);
    assert_eq!(d[1].as_ref().map(|p| &p[0][..]), Ok(&[0xfc, 44, 1, 0][..]));
}

#[test]
fn prepared_metadata_cache_multi_statements_match_direct() {
    // Several result sets (an ERR among them, a procedure's) in one text
    // query, each count with its byte, then executes and a cursor.
    let caps = CACHE | Capabilities::CLIENT_MULTI_STATEMENTS;
    let (d, f) = differential_with("ps_mcache_multi", SETUP, 2, 2, caps, |c| {
        let id = c[0].prepare("SELECT c, n FROM t WHERE id = ?").unwrap();
        vec![
            c[0].query("SELECT 1; SELECT 'a' AS x, 2; DO 1; SELECT c FROM t; INSERT INTO t VALUES (5, 'f', 1) RETURNING id"),
            c[0].execute(id, 0, &[int(1)], true),
            c[1].query("CALL p2(); SELECT 3"),
            c[0].query("SELECT 1; SELECT nope; SELECT 2"),
            c[0].execute(id, 0, &[int(1)], true),
            c[0].execute(id, 1, &[int(1)], true),
            c[0].query("SELECT 1"),
            c[0].fetch(id, 1),
            c[0].fetch(id, 1),
            c[0].execute(id, 0, &[int(2)], true),
        ]
    });
    assert_same(&d, &f);
}

#[test]
fn prepared_metadata_cache_call_in_an_executable_comment_keeps_its_definitions() {
    // The server sends a procedure's definitions at every execute, also
    // for a CALL Funnel cannot read (an executable comment): Funnel left
    // the first result set's out at the second execute, and the client,
    // whose statement describes no columns, had none to read its rows by.
    // A SELECT in one still leaves them out.
    let (d, f) = differential_with("ps_mcache_hcall", SETUP, 1, 1, CACHE, |c| {
        let a = c[0].prepare("/*!CALL p2() */").unwrap();
        let b = c[0]
            .prepare("SET STATEMENT max_statement_time = 100 FOR CALL p2()")
            .unwrap();
        let e = c[0].prepare("/*M!100000 CALL p2() */").unwrap();
        let s = c[0].prepare("/*!SELECT c FROM t WHERE id = ? */").unwrap();
        vec![
            c[0].execute(s, 0, &[int(1)], true),
            c[0].execute(s, 0, &[int(1)], true),
            c[0].execute(a, 0, &[], false),
            c[0].execute(a, 0, &[], false),
            c[0].execute(b, 0, &[], false),
            c[0].execute(b, 0, &[], false),
            c[0].execute(e, 0, &[], false),
            c[0].execute(e, 0, &[], false),
        ]
    });
    assert_same(&d, &f);
    assert_eq!(count_and_flag(&d[1]), Some((1, 0)));
    assert_eq!(count_and_flag(&d[3]), Some((1, 1)));
}

#[test]
fn prepared_metadata_cache_client_gone_mid_reply_leaves_the_connection_right() {
    // A client leaves while its execute's rows (definitions left out,
    // sequence ids moved) are relayed: the next clients on the connection
    // get their own replies as from the server.
    let (d, f) = differential_with("ps_mcache_gone", SETUP, 3, 1, CACHE, |c| {
        let big = c[0]
            .prepare("SELECT REPEAT(c, 100000) AS big, id FROM t WHERE id > ?")
            .unwrap();
        let other = c[1]
            .prepare("SELECT REPEAT(c, 100000) AS big, id FROM t WHERE id > ?")
            .unwrap();
        let mut out = vec![c[0].execute(big, 0, &[int(0)], true)];
        c[0].0
            .send_command(&execute_payload(big, 0, &[int(0)], true))
            .unwrap();
        let _ = c[0].0.read_raw(100);
        c[0].0
            .try_clone_stream()
            .unwrap()
            .shutdown(std::net::Shutdown::Both)
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(200));
        out.push(c[1].execute(other, 0, &[int(0)], true));
        out.push(c[1].execute(other, 0, &[int(1)], true));
        out.push(c[2].query("SELECT c FROM t"));
        out
    });
    assert_same(&d, &f);
}

/// A text query whose LOCAL INFILE request is answered with `file`: every
/// packet of the reply with its sequence id.
fn query_with_file(c: &mut Raw, sql: &str, file: &[u8]) -> Vec<(u8, Vec<u8>)> {
    use funnel_protocol::tracker::{Event, ResponseTracker};
    c.0.send_query(sql).unwrap();
    let mut tracker = ResponseTracker::new(Expect::Results, c.0.caps(), funnel_protocol::StatusFlags(2));
    let mut out = Vec::new();
    loop {
        let (seq, p) = c.0.read_packet().unwrap();
        let event = tracker.feed(&p, p.len()).unwrap();
        out.push((seq, p));
        match event {
            Event::Done => return out,
            Event::LocalInfile => {
                let mut raw = bytes::BytesMut::new();
                let next = funnel_protocol::framing::write_packet(&mut raw, seq.wrapping_add(1), file);
                funnel_protocol::framing::write_packet(&mut raw, next, b"");
                c.0.write_raw(&raw).unwrap();
            }
            Event::More => {}
        }
    }
}

#[test]
fn prepared_metadata_cache_local_infile_among_results_matches_direct() {
    // A LOCAL INFILE between result sets of one text query for a client
    // with the cache: each count gets its byte, the file goes through,
    // and every sequence id is the server's.
    let caps = CACHE | Capabilities::CLIENT_MULTI_STATEMENTS | Capabilities::CLIENT_LOCAL_FILES;
    let setup = [SETUP[0], SETUP[1], SETUP[2], "CREATE TABLE lt (a INT)"];
    let (d, f) = differential_with("ps_mcache_infile", &setup, 1, 1, caps, |c| {
        let got = query_with_file(
            &mut c[0],
            "SELECT 1 AS a; LOAD DATA LOCAL INFILE 'x.csv' INTO TABLE lt; SELECT c FROM t; SELECT COUNT(*) FROM lt",
            b"1\n2\n",
        );
        vec![
            Ok(got
                .into_iter()
                .map(|(s, mut p)| {
                    p.insert(0, s);
                    p
                })
                .collect()),
            c[0].query("SELECT 2"),
        ]
    });
    assert_same(&d, &f);
    let packets = d[0].as_ref().unwrap();
    assert!(packets.iter().any(|p| p[1] == 0xfb), "{packets:?}");
    assert!(
        packets.iter().any(|p| p[1..] == [1, 1]),
        "a count with its byte: {packets:?}"
    );
}

#[test]
fn prepared_metadata_cache_held_replies_and_resets_match_direct() {
    // Replies whose end Funnel holds while it reads back what they left
    // (a user variable, FOUND_ROWS()), then a statement reset, a
    // connection reset and the same text prepared again.
    let (d, f) = differential_with("ps_mcache_hold", SETUP, 2, 2, CACHE, |c| {
        let uv = c[0]
            .prepare("SELECT @x := c AS x, n FROM t WHERE id = ?")
            .unwrap();
        let fr = c[1]
            .prepare("SELECT SQL_CALC_FOUND_ROWS c FROM t WHERE id > ? LIMIT 1")
            .unwrap();
        let big = c[1]
            .prepare("SELECT SQL_CALC_FOUND_ROWS REPEAT(c, 100000) AS b FROM t WHERE id > ?")
            .unwrap();
        let mut out = vec![
            c[0].execute(uv, 0, &[int(1)], true),
            c[0].execute(uv, 0, &[int(2)], true),
            c[0].query("SELECT @x"),
            c[0].execute(uv, 1, &[int(1)], true),
            c[0].fetch(uv, 1),
            c[0].query("SET NAMES latin1"),
            c[0].execute(uv, 0, &[int(2)], true),
            c[0].execute(uv, 0, &[int(2)], true),
            c[1].execute(fr, 0, &[int(0)], true),
            c[1].execute(fr, 0, &[int(0)], true),
            c[1].query("SELECT FOUND_ROWS()"),
            c[1].execute(big, 0, &[int(0)], true),
            c[1].execute(big, 0, &[int(0)], true),
            c[1].query("SELECT FOUND_ROWS()"),
            c[0].call(&[0x1a, uv as u8, (uv >> 8) as u8, 0, 0], Expect::Status),
            c[0].execute(uv, 0, &[int(2)], true),
            c[0].call(&[0x1f], Expect::Status),
        ];
        let again = c[0]
            .prepare("SELECT @x := c AS x, n FROM t WHERE id = ?")
            .unwrap();
        out.extend([
            c[0].execute(again, 0, &[int(2)], true),
            c[0].execute(again, 0, &[int(2)], true),
            c[0].query("SELECT @x"),
        ]);
        out
    });
    // The statement prepared after the reset answers (both ways).
    assert!(d[d.len() - 2].is_ok(), "{:?}", d[d.len() - 2]);
    assert_same(&d, &f);
}

#[test]
fn prepared_metadata_cache_rows_at_the_16_mib_boundary_match_direct() {
    // Rows of exactly 16 MiB - 1 (an empty packet after), one byte less
    // and more, after left-out definitions: every piece's sequence id moves.
    // Binary row: header, null bitmap, 0xfd and 3 length bytes, the
    // string, a 4-byte INT: the string's length + 10.
    let (d, f) = differential_with("ps_mcache_16m", SETUP, 1, 1, CACHE, |c| {
        let huge = c[0].prepare("SELECT REPEAT('y', ?) AS huge, 1 AS one").unwrap();
        let mut out = vec![];
        for n in [16_777_205, 16_777_205, 16_777_204, 16_777_206] {
            out.push(c[0].execute(huge, 0, &[int(n)], true));
        }
        out.push(c[0].query("SELECT REPEAT('y', 16777211) AS h"));
        out.push(c[0].query("SELECT 1"));
        out
    });
    fn lens(r: &[Reply]) -> Vec<Result<Vec<usize>, u16>> {
        r.iter()
            .map(|x| x.clone().map(|p| p.iter().map(|q| q.len()).collect()))
            .collect()
    }
    assert_eq!(lens(&d), lens(&f));
    assert!(d == f);
    assert_eq!(d[1].as_ref().unwrap()[2].len(), 0xff_ffff);
}

/// Executes `stmt` with libmariadb and reads every result set: (column
/// count, first column's name as libmariadb describes it, rows) of each,
/// or libmariadb's error.
fn libmariadb_results(stmt: *mut c_void) -> Result<Vec<(u32, String, usize)>, String> {
    let h = funnel_testkit::libmariadb::open();
    // SAFETY: each signature is the one libmariadb 3 declares; `stmt` is a
    // prepared statement of a live connection.
    unsafe {
        let execute: unsafe extern "C" fn(*mut c_void) -> c_int = sym(h, "mysql_stmt_execute");
        let field_count: unsafe extern "C" fn(*mut c_void) -> c_uint = sym(h, "mysql_stmt_field_count");
        let fetch: unsafe extern "C" fn(*mut c_void) -> c_int = sym(h, "mysql_stmt_fetch");
        let next: unsafe extern "C" fn(*mut c_void) -> c_int = sym(h, "mysql_stmt_next_result");
        let error: unsafe extern "C" fn(*mut c_void) -> *const c_char = sym(h, "mysql_stmt_error");
        let metadata: unsafe extern "C" fn(*mut c_void) -> *mut c_void = sym(h, "mysql_stmt_result_metadata");
        let field: unsafe extern "C" fn(*mut c_void, c_uint) -> *const *const c_char =
            sym(h, "mysql_fetch_field_direct");
        let free: unsafe extern "C" fn(*mut c_void) = sym(h, "mysql_free_result");
        let err = || CStr::from_ptr(error(stmt)).to_string_lossy().into_owned();
        // MYSQL_FIELD starts with its name.
        let first_name = || {
            let res = metadata(stmt);
            if res.is_null() {
                return String::new();
            }
            let name = CStr::from_ptr(*field(res, 0)).to_string_lossy().into_owned();
            free(res);
            name
        };
        if execute(stmt) != 0 {
            return Err(err());
        }
        let mut out = Vec::new();
        loop {
            let n = field_count(stmt);
            let name = if n > 0 { first_name() } else { String::new() };
            let mut rows = 0;
            if n > 0 {
                // 100: MYSQL_NO_DATA; 101: MYSQL_DATA_TRUNCATED (nothing bound).
                loop {
                    match fetch(stmt) {
                        0 | 101 => rows += 1,
                        100 => break,
                        _ => return Err(err()),
                    }
                }
            }
            out.push((n, name, rows));
            match next(stmt) {
                0 => {}
                -1 => return Ok(out),
                _ => return Err(err()),
            }
        }
    }
}

#[test]
fn prepared_metadata_cache_libmariadb_reads_a_call_in_an_executable_comment() {
    // Connector/C, which asks for the metadata cache, executing a CALL
    // Funnel cannot read: every execute reads the procedure's result sets.
    users(MariaDb::shared());
    let run = |port: u16, user: &str, pw: &str, schema: &str| {
        MariaDb::shared().exec(&format!(
            "CREATE PROCEDURE {schema}.p() BEGIN SELECT 1 AS a; SELECT 'x' AS b, 2 AS n; END"
        ));
        let st = CStatement::open(port, user, pw, schema, "/*!CALL p() */");
        (0..3).map(|_| libmariadb_results(st.stmt)).collect::<Vec<_>>()
    };
    let results = both_ways("ps_capi_call", "(id INT)", run).map(|(_, r)| r);
    let want = vec![
        (1, "a".to_string(), 1),
        (2, "b".to_string(), 1),
        (0, String::new(), 0),
    ];
    assert_eq!(results[0][2], Ok(want), "{:?}", results[0]);
    assert_eq!(results[1], results[0], "through Funnel");
}
