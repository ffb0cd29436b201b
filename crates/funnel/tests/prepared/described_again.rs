//! What a prepare describes after a table changed in a way that keeps its
//! column count (`VARCHAR(20)` to `VARCHAR(40)`, a view redefined), which
//! no execute's column count shows. A change run through Funnel is seen
//! by the next prepare on its core; one behind Funnel's back (a migration
//! tool's own connection) within a second, as each description the
//! shard recorded is had from the server again. Replies are compared with
//! direct MariaDB byte for byte.

use super::*;

const SETUP: &[&str] = &[
    "CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(20))",
    "INSERT INTO t VALUES (1, 'one')",
    "CREATE VIEW w AS SELECT v FROM t",
];

const SELECT_V: &str = "SELECT v FROM t WHERE id = ?";

/// The schema a client is in (the two sides' differ).
fn schema_of(c: &mut Raw) -> String {
    let Ok(packets) = c.query("SELECT DATABASE()") else {
        panic!("no schema")
    };
    let row = packets.iter().rev().nth(1).unwrap();
    std::str::from_utf8(&row[1..]).unwrap().to_owned()
}

/// Longer than a recorded description answers prepares.
const PAST_FRESH: std::time::Duration = std::time::Duration::from_millis(1_300);

#[test]
fn prepared_a_change_through_funnel_is_described_at_the_next_prepare() {
    let (d, f) = differential("ps_redescribe", SETUP, 2, 2, |c| {
        let mut r = vec![
            c[0].prepare_reply(SELECT_V),
            c[1].prepare_reply("SELECT * FROM w"),
            c[1].query("ALTER TABLE t MODIFY v VARCHAR(40)"),
            // The client that altered the table, and another on its core.
            c[1].prepare_reply(SELECT_V),
            c[0].prepare_reply(SELECT_V),
            c[0].prepare_reply("SELECT * FROM w"),
        ];
        // A change run as a prepared statement.
        let alter = c[0].prepare("ALTER TABLE t MODIFY v VARCHAR(60)").unwrap();
        r.push(c[0].execute(alter, 0, &[], false));
        r.push(c[1].prepare_reply(SELECT_V));
        let id = c[1].prepare(SELECT_V).unwrap();
        r.push(c[1].execute(id, 0, &[int(1)], true));
        // A view redefined with as many columns.
        r.push(c[1].query("CREATE OR REPLACE VIEW w AS SELECT id FROM t"));
        r.push(c[0].prepare_reply("SELECT * FROM w"));
        r
    });
    assert_same(&d, &f);
    assert_ne!(d[0], d[3], "the server describes a longer column");
    assert_ne!(d[3], d[7]);
    assert_ne!(d[5], d[10], "another column of the view");
}

#[test]
fn prepared_a_change_behind_funnels_back_is_described_a_second_later() {
    let (d, f) = differential("ps_redescribe_behind", SETUP, 2, 2, |c| {
        let mut r = vec![c[0].prepare_reply(SELECT_V)];
        let id = c[0].prepare(SELECT_V).unwrap();
        let schema = schema_of(&mut c[0]);
        MariaDb::shared().exec(&format!("ALTER TABLE `{schema}`.t MODIFY v VARCHAR(40)"));
        std::thread::sleep(PAST_FRESH);
        r.push(c[1].prepare_reply(SELECT_V));
        r.push(c[0].prepare_reply(SELECT_V));
        r.push(c[0].execute(id, 0, &[int(1)], true));
        // A column dropped: the text no longer prepares, for the client
        // that has it checked and for the next one.
        MariaDb::shared().exec(&format!("ALTER TABLE `{schema}`.t DROP COLUMN v"));
        std::thread::sleep(PAST_FRESH);
        r.push(c[1].prepare_reply(SELECT_V));
        r.push(c[0].prepare_reply(SELECT_V));
        r.push(c[0].execute(id, 0, &[int(1)], true));
        r
    });
    assert_same(&d, &f);
    assert_ne!(d[0], d[1], "the server describes a longer column");
    assert_eq!(d[4], Err(1054), "no column v");
    assert_eq!(d[5], Err(1054));
}

#[test]
fn prepared_a_description_the_server_confirms_keeps_one_statement_per_connection() {
    // Every second a text's next prepare is described by the server
    // again; where it says the same, the connection that has the
    // statement prepared already keeps it, and the new server statement
    // is closed. Without that, each check would leave one more statement
    // on the connection, up to the server's limit.
    let db = MariaDb::builder().start().unwrap();
    users(&db);
    let schema = schema_with(&db, "ps_confirmed", SETUP);
    let proxy = funnel(&db, &schema, 1);
    let mut c = clients(
        proxy.local_addr(),
        "app",
        "apppw",
        &schema,
        2,
        Capabilities::EMPTY,
    );
    let count = || {
        db.query_first::<(String, u64)>("SHOW GLOBAL STATUS LIKE 'Prepared_stmt_count'")
            .map(|(_, n)| n)
    };
    let first = c[0].prepare(SELECT_V).unwrap();
    let one = c[0].execute(first, 0, &[int(1)], true);
    assert!(one.is_ok(), "{one:?}");
    assert_eq!(count(), Some(1));
    for round in 0..3 {
        std::thread::sleep(PAST_FRESH);
        // The other client's first statement of the text (a client's
        // second one is a second server statement, as directly).
        let again = c[1].prepare(SELECT_V).unwrap();
        // On the one connection, after the close of the server's new statement.
        assert_eq!(c[1].execute(again, 0, &[int(1)], true), one);
        assert_eq!(count(), Some(1), "round {round}");
        c[1].stmt_command(0x19, again);
    }
    let rechecked: u64 = proxy
        .snapshots()
        .iter()
        .map(|s| s.counters.prepares_rechecked)
        .sum();
    assert_eq!(rechecked, 3, "SHOW STATS prepares_rechecked");
}

impl Raw {
    /// Sends a prepare of `sql` without reading its reply ([`Raw::read_prepare`]).
    fn send_prepare(&mut self, sql: &str) {
        let mut p = vec![0x16];
        p.extend_from_slice(sql.as_bytes());
        self.0.send_command(&p).unwrap();
    }

    /// Reads the reply of a prepare sent before, as [`Raw::prepare_reply`] gives it.
    fn read_prepare(&mut self) -> Reply {
        let mut next = || self.0.read_packet().unwrap().1;
        let mut ok = next();
        if ok[0] == 0xff {
            return Err(u16::from_le_bytes([ok[1], ok[2]]));
        }
        ok[1..5].fill(0);
        let columns = u16::from_le_bytes([ok[5], ok[6]]);
        let params = u16::from_le_bytes([ok[7], ok[8]]);
        let mut packets = vec![ok];
        for n in [params, columns] {
            if n > 0 {
                // The definitions, then an EOF (no CLIENT_DEPRECATE_EOF here).
                packets.extend((0..=n).map(|_| next()));
            }
        }
        Ok(packets)
    }
}

#[test]
fn prepared_a_change_through_funnel_is_described_while_another_check_is_under_way() {
    // After an ALTER through Funnel, the first prepare of a text has the
    // server describe it again; one that comes while that check waits
    // (here for the one backend connection, which a transaction holds)
    // must not be answered with the description the ALTER outdated.
    let pause = || std::thread::sleep(std::time::Duration::from_millis(300));
    let (d, f) = differential("ps_redescribe_busy", SETUP, 3, 1, |c| {
        let mut r = vec![
            c[0].prepare_reply(SELECT_V),
            c[1].query("ALTER TABLE t MODIFY v VARCHAR(40)"),
            c[2].query("BEGIN"),
            c[2].query("SELECT id FROM t"),
        ];
        c[0].send_prepare(SELECT_V);
        pause();
        // The client that altered the table.
        c[1].send_prepare(SELECT_V);
        pause();
        r.push(c[2].query("COMMIT"));
        r.push(c[0].read_prepare());
        r.push(c[1].read_prepare());
        r
    });
    assert_same(&d, &f);
    assert_ne!(d[0], d[6], "the server describes a longer column");
}

#[test]
fn prepared_an_alter_of_a_column_named_temporary_is_a_change() {
    // `TEMPORARY` names a temporary table only right after `CREATE [OR
    // REPLACE]` or `DROP`; an ALTER whose fourth word is a column of
    // that name changes the table everyone sees.
    let setup = &["CREATE TABLE t (id INT PRIMARY KEY, temporary VARCHAR(20))"];
    let (d, f) = differential("ps_redescribe_temporary", setup, 2, 2, |c| {
        vec![
            c[0].prepare_reply("SELECT temporary FROM t"),
            c[1].query("ALTER TABLE t MODIFY temporary VARCHAR(40)"),
            c[1].prepare_reply("SELECT temporary FROM t"),
        ]
    });
    assert_same(&d, &f);
    assert_ne!(d[0], d[2], "the server describes a longer column");
}

#[test]
fn prepared_an_sql_prepared_alter_executed_is_a_change() {
    // `PREPARE s FROM 'ALTER ...'` changes nothing; its `EXECUTE s` does,
    // and the next prepare must be described by the server again, also
    // when a prepare in between had the description checked.
    let (d, f) = differential("ps_redescribe_sql_prepare", SETUP, 2, 2, |c| {
        vec![
            c[0].prepare_reply(SELECT_V),
            c[1].query("PREPARE s FROM 'ALTER TABLE t MODIFY v VARCHAR(40)'"),
            c[0].prepare_reply(SELECT_V),
            c[1].query("EXECUTE s"),
            c[1].prepare_reply(SELECT_V),
            c[0].prepare_reply(SELECT_V),
        ]
    });
    assert_same(&d, &f);
    assert_ne!(d[0], d[4], "the server describes a longer column");
}

#[test]
fn prepared_descriptions_the_server_repeats_are_kept_in_every_response_shape() {
    // A check that finds the description the server gave before keeps
    // the registry's statement, whatever the client asked for (no EOFs,
    // extended metadata) and whatever status the first client's EOFs
    // carried (a transaction): no text is prepared anew every second.
    let db = MariaDb::builder().start().unwrap();
    users(&db);
    let schema = schema_with(&db, "ps_kept", SETUP);
    let proxy = funnel(&db, &schema, 1);
    let status = |name: &str| {
        db.query_first::<(String, u64)>(&format!("SHOW GLOBAL STATUS LIKE '{name}'"))
            .map(|(_, n)| n)
            .unwrap()
    };
    let texts = [
        "SELECT ?",
        "SELECT NOW(), NOW(6), CURRENT_USER(), DATABASE()",
        SELECT_V,
        "SELECT * FROM w",
        "SELECT id, ? + 1 FROM t WHERE v LIKE ?",
        "INSERT INTO t VALUES (?, ?)",
    ];
    let eof = Capabilities::CLIENT_DEPRECATE_EOF;
    let ext = Capabilities::MARIADB_CLIENT_EXTENDED_METADATA;
    for caps in [Capabilities::EMPTY, eof, ext, eof | ext] {
        let mut c = clients(proxy.local_addr(), "app", "apppw", &schema, 2, caps);
        assert!(c[0].query("BEGIN").is_ok());
        for t in texts {
            c[0].prepare(t).unwrap();
        }
        assert!(c[0].query("COMMIT").is_ok());
        // Each shape is served by a connection of its own (the previous
        // one was traded in), whose statements the server frees when it
        // gets round to it: their count may still fall meanwhile, and a
        // new statement kept is told by the close that did not come.
        let (total, closed) = (status("Prepared_stmt_count"), status("Com_stmt_close"));
        std::thread::sleep(PAST_FRESH);
        for t in texts {
            let id = c[1].prepare(t).unwrap_or_else(|e| panic!("{caps:?} {t}: {e}"));
            c[1].stmt_command(0x19, id);
        }
        // After the closes, on the one backend connection.
        assert!(c[1].query("SELECT 1").is_ok());
        let closes = status("Com_stmt_close") - closed;
        assert!(
            status("Prepared_stmt_count") <= total,
            "{caps:?}: a text prepared anew"
        );
        assert_eq!(
            closes,
            texts.len() as u64,
            "{caps:?}: each check's own statement closed"
        );
    }
}

#[test]
fn prepared_a_check_on_a_pinned_connection_keeps_its_cursor_long_data_and_transaction() {
    // A second on, a client's prepare of a text it holds already is
    // described by its own connection (a transaction, an open cursor,
    // long data pending pin it there); the check must leave all of that
    // as the client left it, as a second prepare on a direct connection
    // does.
    let rows = &[
        "CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(20))",
        "INSERT INTO t VALUES (1, 'one'), (2, 'two'), (3, 'three')",
    ];
    let select = "SELECT v FROM t ORDER BY id";
    let insert = "INSERT INTO t VALUES (?, ?)";
    let (d, f) = differential("ps_redescribe_pinned", rows, 2, 1, |c| {
        // The texts known to the registry, from another client.
        let mut r = vec![c[1].prepare_reply(select), c[1].prepare_reply(insert)];
        let cur = c[0].prepare(select).unwrap();
        let ins = c[0].prepare(insert).unwrap();
        r.push(c[0].query("BEGIN"));
        r.push(c[0].query("UPDATE t SET v = 'uno' WHERE id = 1"));
        r.push(c[0].execute(cur, CURSOR, &[], false));
        r.push(c[0].fetch(cur, 1));
        c[0].long_data(ins, 1, b"long ");
        std::thread::sleep(PAST_FRESH);
        // Checked on the connection the client holds.
        r.push(c[0].prepare_reply(select));
        r.push(c[0].prepare_reply(insert));
        r.push(c[0].fetch(cur, 1));
        c[0].long_data(ins, 1, b"data");
        r.push(c[0].execute(ins, 0, &[int(4), text("ignored")], true));
        r.push(c[0].fetch(cur, 5));
        r.push(c[0].query("SELECT ROW_COUNT(), @@in_transaction"));
        r.push(c[0].query("ROLLBACK"));
        r.push(c[0].query("SELECT * FROM t ORDER BY id"));
        // A client's two ids for one text, the first closed and prepared
        // again past a second: the copy comes back on the connection.
        let one = c[1].prepare(select).unwrap();
        let two = c[1].prepare(select).unwrap();
        r.push(c[1].execute(one, CURSOR, &[], false));
        r.push(c[1].execute(two, 0, &[], false));
        r.push(c[1].fetch(one, 1));
        c[1].stmt_command(0x19, one);
        std::thread::sleep(PAST_FRESH);
        let again = c[1].prepare(select).unwrap();
        r.push(c[1].fetch(again, 1));
        r.push(c[1].execute(again, 0, &[], false));
        r.push(c[1].execute(two, 0, &[], false));
        r
    });
    assert_same(&d, &f);
}

#[test]
fn prepared_a_check_the_server_refuses_for_want_of_room_leaves_the_statement_shared() {
    // The server holds its max_prepared_stmt_count when a text's check
    // comes (1461): that says nothing of the text, whose statement must
    // stay the registry's. Taken for stale, the next prepare would give
    // the text a second statement, which every connection then prepares
    // beside the first for the clients that hold it: more statements on a
    // server that has no room.
    let db = MariaDb::builder().start().unwrap();
    users(&db);
    let schema = schema_with(&db, "ps_check_full", SETUP);
    let proxy = funnel(&db, &schema, 1);
    let mut c = clients(
        proxy.local_addr(),
        "app",
        "apppw",
        &schema,
        3,
        Capabilities::EMPTY,
    );
    let count = || {
        db.query_first::<(String, u64)>("SHOW GLOBAL STATUS LIKE 'Prepared_stmt_count'")
            .map(|(_, n)| n)
    };
    let first = c[0].prepare(SELECT_V).unwrap();
    let one = c[0].execute(first, 0, &[int(1)], true);
    assert!(one.is_ok(), "{one:?}");
    // Another session's statement, and no room for one more.
    let mut root = db.root();
    let held: mysql::Statement = root.prep("SELECT 1").unwrap();
    assert_eq!(count(), Some(2));
    db.exec("SET GLOBAL max_prepared_stmt_count = 1");
    std::thread::sleep(PAST_FRESH);
    assert_eq!(c[1].prepare(SELECT_V), Err(1461), "as the server refuses");
    db.exec("SET GLOBAL max_prepared_stmt_count = DEFAULT");
    let again = c[2].prepare(SELECT_V).unwrap();
    assert_eq!(c[0].execute(first, 0, &[int(1)], true), one);
    assert_eq!(c[2].execute(again, 0, &[int(1)], true), one);
    assert_eq!(count(), Some(2), "one statement of the text on the connection");
    drop(held);
}

#[test]
fn prepared_an_alter_under_set_statement_is_a_change() {
    // Migration tools bound a DDL's lock wait with `SET STATEMENT ... FOR
    // ALTER TABLE`: its first word is SET, but it alters the table, as a
    // query and as a prepared statement.
    let alter = "SET STATEMENT lock_wait_timeout = 5 FOR ALTER TABLE t MODIFY v VARCHAR(40)";
    let (d, f) = differential("ps_redescribe_set_statement", SETUP, 2, 2, |c| {
        let mut r = vec![
            c[0].prepare_reply(SELECT_V),
            c[1].query(alter),
            c[1].prepare_reply(SELECT_V),
        ];
        let again = c[0]
            .prepare("SET STATEMENT lock_wait_timeout = 5 FOR ALTER TABLE t MODIFY v VARCHAR(60)")
            .unwrap();
        r.push(c[0].execute(again, 0, &[], false));
        r.push(c[0].prepare_reply(SELECT_V));
        r
    });
    assert_same(&d, &f);
    assert_ne!(d[0], d[2], "the server describes a longer column");
    assert_ne!(d[2], d[4]);
}

#[test]
fn prepared_clients_with_the_metadata_cache_holding_the_old_description_read_the_new_columns() {
    // A client holds the statement as first described; after an ALTER a
    // check gives the text a new description, which its later prepares
    // get. The old statement's executes must still send the columns as
    // the server now defines them, once, as directly, to a client with
    // MariaDB's metadata cache.
    let cache = Capabilities::MARIADB_CLIENT_CACHE_METADATA;
    let (d, f) = differential_with("ps_redescribe_cache", SETUP, 2, 1, cache, |c| {
        let old = c[0].prepare(SELECT_V).unwrap();
        let mut r = vec![
            c[0].execute(old, 0, &[int(1)], true),
            c[1].query("ALTER TABLE t MODIFY v VARCHAR(40)"),
            c[0].execute(old, 0, &[int(1)], false),
            c[0].execute(old, 0, &[int(1)], false),
            c[1].prepare_reply(SELECT_V),
        ];
        let new = c[1].prepare(SELECT_V).unwrap();
        r.push(c[1].execute(new, 0, &[int(1)], true));
        r.push(c[0].execute(old, 0, &[int(1)], false));
        r.push(c[1].execute(new, 0, &[int(1)], false));
        r.push(c[1].query("ALTER TABLE t MODIFY v VARCHAR(50)"));
        r.push(c[1].execute(new, 0, &[int(1)], false));
        r.push(c[0].execute(old, 0, &[int(1)], false));
        r.push(c[0].prepare_reply(SELECT_V));
        r
    });
    assert_same(&d, &f);
}

#[test]
fn prepared_a_change_within_several_statements_or_execute_immediate_is_described_next() {
    // The DDL word is not the first: several statements in one query,
    // SQL run from a string, a compound statement.
    let multi = Capabilities::CLIENT_MULTI_STATEMENTS;
    let (d, f) = differential_with("ps_redescribe_multi", SETUP, 2, 2, multi, |c| {
        vec![
            c[0].prepare_reply(SELECT_V),
            c[1].query("SELECT 1; ALTER TABLE t MODIFY v VARCHAR(40)"),
            c[1].prepare_reply(SELECT_V),
            c[1].query("EXECUTE IMMEDIATE 'ALTER TABLE t MODIFY v VARCHAR(50)'"),
            c[0].prepare_reply(SELECT_V),
            c[1].query("BEGIN NOT ATOMIC ALTER TABLE t MODIFY v VARCHAR(60); END"),
            c[1].prepare_reply(SELECT_V),
        ]
    });
    assert_same(&d, &f);
    assert_ne!(d[0], d[2]);
    assert_ne!(d[2], d[4]);
    assert_ne!(d[4], d[6]);
}

#[test]
fn prepared_sql_from_a_variable_counts_as_a_change_only_when_it_is_one() {
    // `PREPARE s FROM @v` and `EXECUTE IMMEDIATE @v` run a text Funnel
    // reads from the connection before it sends them: an ALTER there has
    // the next prepare on the core described by the server (also at the
    // `EXECUTE s` that runs it later), a SELECT does not, however often it
    // is executed.
    let db = MariaDb::builder().start().unwrap();
    users(&db);
    let schema = schema_with(&db, "ps_dynamic_change", SETUP);
    let proxy = funnel(&db, &schema, 2);
    let mut c = clients(
        proxy.local_addr(),
        "app",
        "apppw",
        &schema,
        2,
        Capabilities::EMPTY,
    );
    let prepares = || {
        db.query_first::<(String, u64)>("SHOW GLOBAL STATUS LIKE 'Com_stmt_prepare'")
            .map(|(_, n)| n)
            .unwrap()
    };
    let described = |c: &mut Raw| {
        let r = c.prepare_reply(SELECT_V).unwrap();
        r[3][r[3].len() - 10]
    };
    assert_eq!(described(&mut c[0]), 80, "VARCHAR(20) in utf8mb4");
    let ok = |r: Reply| assert!(r.is_ok(), "{r:?}");
    ok(c[1].query("SET @sel = 'SELECT v FROM t', @alter = 'ALTER TABLE t MODIFY v VARCHAR(40)'"));
    ok(c[1].query("PREPARE sel FROM @sel"));
    let before = prepares();
    for _ in 0..3 {
        ok(c[1].query("EXECUTE sel"));
        described(&mut c[0]);
    }
    assert_eq!(prepares(), before, "a SELECT changes no description");
    ok(c[1].query("PREPARE alter_v FROM @alter"));
    // A prepare between the PREPARE and the EXECUTE.
    assert_eq!(described(&mut c[0]), 80);
    ok(c[1].query("EXECUTE alter_v"));
    assert_eq!(described(&mut c[0]), 160, "after the EXECUTE of the ALTER");
    ok(c[1].query("SET @alter = 'ALTER TABLE t MODIFY v VARCHAR(50)'"));
    ok(c[1].query("EXECUTE IMMEDIATE @alter"));
    assert_eq!(described(&mut c[0]), 200, "after EXECUTE IMMEDIATE of one");
}
