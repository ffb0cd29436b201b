//! MariaDB's bulk execute (`COM_STMT_BULK_EXECUTE`) through Funnel, byte
//! by byte against a direct connection, as the other prepared tests.

use super::*;

/// One value of a bulk row: its indicator, and the value when it has one.
#[derive(Clone)]
pub(super) enum Cell {
    Value(Param),
    Null,
    Default,
    Ignore,
}

/// `SEND_TYPES_TO_SERVER`.
pub(super) const SEND_TYPES: u16 = 128;

/// A bulk execute of statement `id`, `rows` of values, with the types of
/// the first row's values when `flags` has [`SEND_TYPES`].
pub(super) fn bulk_payload(id: u32, flags: u16, rows: &[Vec<Cell>]) -> Vec<u8> {
    let mut p = vec![0xfa];
    p.extend_from_slice(&id.to_le_bytes());
    p.extend_from_slice(&flags.to_le_bytes());
    if flags & SEND_TYPES != 0 {
        for cell in &rows[0] {
            let ty = match cell {
                Cell::Value(v) => v.ty,
                _ => LONGLONG,
            };
            p.extend_from_slice(&[ty, 0]);
        }
    }
    for row in rows {
        for cell in row {
            match cell {
                Cell::Value(v) => {
                    p.push(0);
                    p.extend_from_slice(v.value.as_ref().expect("a value"));
                }
                Cell::Null => p.push(1),
                Cell::Default => p.push(2),
                Cell::Ignore => p.push(3),
            }
        }
    }
    p
}

impl Raw {
    pub(super) fn bulk(&mut self, id: u32, flags: u16, rows: &[Vec<Cell>]) -> Reply {
        self.call(&bulk_payload(id, flags, rows), Expect::Results)
    }
}

pub(super) fn v(n: i64) -> Cell {
    Cell::Value(int(n))
}

pub(super) fn s(t: &str) -> Cell {
    Cell::Value(text(t))
}

pub(super) const BULK: Capabilities = Capabilities::MARIADB_CLIENT_STMT_BULK_OPERATIONS;

pub(super) const TABLE: &str = "CREATE TABLE t (id INT AUTO_INCREMENT PRIMARY KEY, v INT UNIQUE, \
     s VARCHAR(20) DEFAULT 'dflt')";

/// Reads an OK packet's affected rows and insert id (both one byte here).
pub(super) fn ok_counts(r: &Reply) -> (u8, u8) {
    let p = &r.as_ref().expect("an OK")[0];
    assert_eq!(p[0], 0, "an OK: {p:?}");
    (p[1], p[2])
}

#[test]
fn prepared_bulk_execute_matches_direct() {
    // Every shape of reply a bulk execute has: rows with each indicator,
    // types sent or remembered, RETURNING's result set, and each refusal.
    let (d, f) = differential_with("ps_bulk", &[TABLE], 1, 1, BULK, |c| {
        let ins = c[0].prepare("INSERT INTO t (v, s) VALUES (?, ?)").unwrap();
        let sel = c[0].prepare("SELECT * FROM t WHERE v = ?").unwrap();
        let ret = c[0]
            .prepare("INSERT INTO t (v, s) VALUES (?, ?) RETURNING id, v, s")
            .unwrap();
        let rows = [
            vec![v(1), s("a")],
            vec![v(2), Cell::Null],
            vec![Cell::Default, Cell::Default],
            vec![v(4), Cell::Ignore],
        ];
        vec![
            // Never given types: the server cannot read the row.
            c[0].bulk(ins, 0, &[vec![v(1), s("a")]]),
            c[0].bulk(ins, SEND_TYPES, &rows),
            c[0].query("SELECT ROW_COUNT(), LAST_INSERT_ID()"),
            // The types of the bulk before.
            c[0].bulk(ins, 0, &[vec![v(5), s("e")]]),
            c[0].bulk(sel, SEND_TYPES, &[vec![v(1)]]),
            c[0].bulk(ret, SEND_TYPES, &[vec![v(7), s("g")], vec![v(8), s("h")]]),
            c[0].bulk(999, SEND_TYPES, &[vec![v(7)]]),
            c[0].call(&[0xfa, 1, 0, 0], Expect::Results),
            c[0].call(&[0xfa, ins as u8, 0, 0, 0, 0x80], Expect::Results),
            c[0].call(&[0xfa, ins as u8, 0, 0, 0, 0x80, 0, 8, 0, 8, 0], Expect::Results),
            c[0].call(&[0xfa, ins as u8, 0, 0, 0, 0x40, 0], Expect::Results),
            // A duplicate in the third row: one statement, no row applied.
            c[0].bulk(
                ins,
                SEND_TYPES,
                &[vec![v(20), s("x")], vec![v(21), s("y")], vec![v(1), s("z")]],
            ),
            c[0].query("SELECT ROW_COUNT()"),
            c[0].query("SHOW WARNINGS"),
            c[0].query("SELECT * FROM t ORDER BY id"),
        ]
    });
    assert_same(&d, &f);
    assert_eq!(d[0], Err(1210));
    assert_eq!(ok_counts(&d[1]), (4, 1), "four rows, the first one's id");
    assert_eq!(ok_counts(&d[3]).0, 1);
    assert_eq!(d[4], Err(1295), "no bulk SELECT");
    assert!(
        d[5].as_ref().is_ok_and(|p| p.len() == 8),
        "RETURNING's two rows: {:?}",
        d[5]
    );
    assert_eq!((&d[6], &d[7], &d[10]), (&Err(1243), &Err(1835), &Err(1295)));
    assert_eq!(d[11], Err(1062));
}

#[test]
fn prepared_bulk_without_the_capability_is_refused() {
    // Funnel's backend connections have bulk operations: a client that
    // did not ask for them must still get the server's refusal.
    let (d, f) = differential_with("ps_bulk_nocap", &[TABLE], 1, 1, Capabilities::EMPTY, |c| {
        let ins = c[0].prepare("INSERT INTO t (v, s) VALUES (?, ?)").unwrap();
        vec![
            c[0].bulk(ins, SEND_TYPES, &[vec![v(1), s("a")]]),
            c[0].bulk(999, SEND_TYPES, &[vec![v(1), s("a")]]),
            c[0].query("SELECT COUNT(*) FROM t"),
        ]
    });
    assert_same(&d, &f);
    assert_eq!((&d[0], &d[1]), (&Err(1295), &Err(1295)));
}

#[test]
fn prepared_bulk_clients_share_one_connection() {
    // Three clients on one backend connection: each one's types, insert
    // id and counts stay its own, as on connections of their own.
    let (d, f) = differential_with("ps_bulk_share", &[TABLE], 3, 1, BULK, |c| {
        let a = c[0].prepare("INSERT INTO t (v, s) VALUES (?, ?)").unwrap();
        let b = c[1].prepare("INSERT INTO t (v, s) VALUES (?, ?)").unwrap();
        let e = c[2].prepare("INSERT INTO t (v, s) VALUES (?, ?)").unwrap();
        vec![
            // a's execute gives the statement types; b never sent any.
            c[0].execute(a, 0, &[int(1), text("x")], true),
            c[1].bulk(b, 0, &[vec![v(2), s("b")]]),
            c[0].bulk(a, 0, &[vec![v(3), s("c")], vec![v(4), s("d")]]),
            c[1].bulk(
                b,
                SEND_TYPES,
                &[vec![v(5), s("e")], vec![v(6), s("f")], vec![v(7), s("g")]],
            ),
            c[2].query("INSERT INTO t (v) VALUES (8)"),
            c[0].query("SELECT LAST_INSERT_ID(), ROW_COUNT()"),
            c[1].query("SELECT LAST_INSERT_ID(), ROW_COUNT()"),
            // The types b's bulk sent, for its plain execute.
            c[1].execute(b, 0, &[int(9), text("i")], false),
            c[2].execute(e, 0, &[int(10), text("j")], true),
            c[1].bulk(b, 0, &[vec![v(11), s("k")]]),
            c[2].bulk(e, 0, &[vec![v(12), s("l")]]),
            c[0].query("BEGIN"),
            c[0].bulk(a, 0, &[vec![v(13), s("m")]]),
            c[0].query("ROLLBACK"),
            c[2].query("SELECT * FROM t ORDER BY id"),
        ]
    });
    assert_same(&d, &f);
    assert_eq!(d[1], Err(1210), "b had given no types");
    assert_eq!(ok_counts(&d[3]).0, 3);
}

/// A relay to `server` that passes the first `kept` connections'
/// greetings as they are (the first is Funnel's look at the backend when
/// it starts) and takes bulk operations out of every later one, as a
/// server without them (MySQL, an older MariaDB put in after a failover)
/// would greet.
pub(super) fn bulk_dropped_after(server: SocketAddr, kept: usize) -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    relay_dropping_bulk(listener, server, kept);
    addr
}

/// [`bulk_dropped_after`] on `listener`.
fn relay_dropping_bulk(listener: std::net::TcpListener, server: SocketAddr, kept: usize) {
    use std::io::{Read, Write};
    std::thread::spawn(move || {
        for (n, client) in listener.incoming().enumerate() {
            let Ok(mut client) = client else { return };
            let Ok(mut backend) = std::net::TcpStream::connect(server) else {
                return;
            };
            let mut header = [0u8; 4];
            if backend.read_exact(&mut header).is_err() {
                continue;
            }
            let len = usize::from(header[0]) | usize::from(header[1]) << 8 | usize::from(header[2]) << 16;
            let mut greeting = vec![0u8; len];
            if backend.read_exact(&mut greeting).is_err() {
                continue;
            }
            if n >= kept {
                // CLIENT_MYSQL, the lowest capability bit, after the
                // version, the thread id, the first scramble part and a filler.
                let nul = greeting[1..].iter().position(|&b| b == 0).unwrap();
                greeting[1 + nul + 1 + 4 + 8 + 1] |= 1;
            }
            if client
                .write_all(&header)
                .and_then(|()| client.write_all(&greeting))
                .is_ok()
            {
                funnel_testkit::splice::splice(client, backend);
            }
        }
    });
}

#[test]
fn prepared_bulk_to_a_server_without_bulk_operations_is_refused() {
    let db = MariaDb::shared();
    users(db);
    let schema = db.fresh_database("ps_bulk_old");
    db.root()
        .query_drop(format!("CREATE TABLE {schema}.t (v INT)"))
        .unwrap();
    let funnel = |kept| {
        let relay = bulk_dropped_after(db.addr(), kept);
        let yaml = format!(
            "listen: 127.0.0.1:0\ncores: 1\n\
         users:\n  - name: app\n    password: apppw\n    default_schema: {schema}\n\
         backends:\n  - name: old\n    address: {relay}\n    user: ps_backend\n    password: bpw\n\
         pool:\n  max_per_core: 1\n  min_idle_per_core: 0\n"
        );
        funnel_testkit::funnel::start(funnel_config::Config::from_yaml_str(&yaml).unwrap())
    };
    // The backend greets without them from the start: not offered.
    let proxy = funnel(0);
    let mut c = Raw::connect_with(proxy.local_addr(), "app", "apppw", &schema, BULK);
    assert!(!c.0.caps().contains(BULK));
    let ins = c.prepare("INSERT INTO t VALUES (?)").unwrap();
    assert_eq!(c.bulk(ins, SEND_TYPES, &[vec![v(1)]]), Err(1295));
    drop((c, proxy));
    let proxy = funnel(1);
    let mut c = Raw::connect_with(proxy.local_addr(), "app", "apppw", &schema, BULK);
    assert!(
        c.0.caps().contains(BULK),
        "offered: the greeting read at start had it"
    );
    let ins = c.prepare("INSERT INTO t VALUES (?)").unwrap();
    // The connection lacks it, so the server would refuse it: ERR 1295,
    // and nothing written.
    assert_eq!(c.bulk(ins, SEND_TYPES, &[vec![v(1)], vec![v(2)]]), Err(1295));
    assert!(c.execute(ins, 0, &[int(3)], true).is_ok());
    let reply = c.query("SELECT v FROM t").unwrap();
    assert_eq!(reply.len(), 5, "one row: {reply:?}");
    assert_eq!(reply[3], b"\x013");
}

#[test]
fn prepared_bulk_row_count_after_an_update_or_delete_is_the_last_rows() {
    // On the server a bulk UPDATE or DELETE runs once per row, and
    // ROW_COUNT() answers the last row's count (0 here), where the OK
    // says the sum (5, then 1); a bulk INSERT is one statement, whose
    // count is its OK's. Found with the connectors.
    let q = "SELECT LAST_INSERT_ID(), ROW_COUNT()";
    let setup = &["CREATE TABLE t (id INT AUTO_INCREMENT PRIMARY KEY, v INT UNIQUE, n INT DEFAULT 0)"];
    let (d, f) = differential_with("ps_bulk_counts", setup, 2, 1, BULK, |c| {
        let ins = c[0].prepare("INSERT INTO t (v) VALUES (?)").unwrap();
        let upd = c[0].prepare("UPDATE t SET n = n + 1 WHERE v >= ?").unwrap();
        let del = c[0].prepare("/* comment */ DELETE FROM t WHERE v = ?").unwrap();
        let rows = |vs: &[i64]| vs.iter().map(|&n| vec![v(n)]).collect::<Vec<_>>();
        vec![
            c[0].bulk(ins, SEND_TYPES, &rows(&[1, 2, 3])),
            c[0].query(q),
            c[0].bulk(upd, SEND_TYPES, &rows(&[1, 2, 9])),
            // Another client on the connection between.
            c[1].query("SELECT COUNT(*) FROM t"),
            c[0].query(q),
            c[0].bulk(del, SEND_TYPES, &rows(&[1, 99])),
            c[0].query("SHOW WARNINGS"),
            c[0].query(q),
            c[0].bulk(upd, SEND_TYPES, &rows(&[9, 2])),
            c[0].query("SELECT ROW_COUNT()"),
            c[0].bulk(ins, SEND_TYPES, &rows(&[4, 2, 5])),
            c[0].query("SELECT ROW_COUNT()"),
        ]
    });
    assert_same(&d, &f);
    assert_eq!(ok_counts(&d[2]).0, 5, "the OK's sum");
}

#[test]
fn prepared_extensions_are_offered_as_the_first_backend_met_has_them() {
    // Funnel starts while its backend does not answer: it cannot read the
    // backend's greeting then, and offers no MariaDB extension until a
    // connection to it opened. Before, it offered them all: a client
    // that took extended metadata then had no connection to be served
    // on where the server lacked it (as MySQL does), ERR 9003.
    let db = MariaDb::shared();
    users(db);
    let schema = db.fresh_database("ps_late_backend");
    for kept in [0, usize::MAX] {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let relay = listener.local_addr().unwrap();
        drop(listener);
        let yaml = format!(
            "listen: 127.0.0.1:0\ncores: 1\n\
             users:\n  - name: app\n    password: apppw\n    default_schema: {schema}\n\
             backends:\n  - name: late\n    address: {relay}\n    user: ps_backend\n    password: bpw\n\
             pool:\n  max_per_core: 1\n  min_idle_per_core: 0\n  connect_timeout: 1s\n\
             backlog:\n  wait_timeout: 20s\n"
        );
        let proxy = funnel_testkit::funnel::start(funnel_config::Config::from_yaml_str(&yaml).unwrap());
        // Now the backend answers: without the extensions (kept 0), or with them.
        relay_dropping_bulk(std::net::TcpListener::bind(relay).unwrap(), db.addr(), kept);
        let ext = BULK | Capabilities::MARIADB_CLIENT_EXTENDED_METADATA;
        let mut first = Raw::connect_with(proxy.local_addr(), "app", "apppw", &schema, ext);
        assert_eq!(first.0.caps().upper(), 0, "nothing known yet (kept {kept})");
        assert!(first.query("SELECT 1").is_ok());
        let mut later = Raw::connect_with(proxy.local_addr(), "app", "apppw", &schema, ext);
        let offered = later.0.caps().intersect(ext);
        if kept == 0 {
            assert_eq!(offered.0, 0, "a server without them");
        } else {
            assert_eq!(offered, ext, "learned from the first connection");
        }
        assert!(later.query("SELECT 2").is_ok());
    }
}

#[test]
fn prepared_extensions_are_offered_only_where_every_backend_has_them() {
    // A MariaDB and a server without the extensions (as MySQL) in one
    // hostgroup: either may serve a client, so neither extension is
    // offered. Before, the first backend's greeting decided, and a client
    // that took extended metadata got ERR 9003 on the other.
    let db = MariaDb::shared();
    users(db);
    let schema = db.fresh_database("ps_mixed_backends");
    let plain = bulk_dropped_after(db.addr(), 0);
    let yaml = format!(
        "listen: 127.0.0.1:0\ncores: 1\n\
         users:\n  - name: app\n    password: apppw\n    default_schema: {schema}\n\
         backends:\n  - name: maria\n    address: {}\n    user: ps_backend\n    password: bpw\n\
         \x20 - name: plain\n    address: {plain}\n    user: ps_backend\n    password: bpw\n\
         pool:\n  max_per_core: 1\n  min_idle_per_core: 0\n",
        db.addr()
    );
    let proxy = funnel_testkit::funnel::start(funnel_config::Config::from_yaml_str(&yaml).unwrap());
    let ext = BULK | Capabilities::MARIADB_CLIENT_EXTENDED_METADATA;
    let mut clients: Vec<Raw> = (0..4)
        .map(|_| Raw::connect_with(proxy.local_addr(), "app", "apppw", &schema, ext))
        .collect();
    for c in &mut clients {
        assert_eq!(c.0.caps().upper(), 0, "offered by one backend only");
    }
    // Both backends serve them (the router spreads the load).
    for round in 0..10 {
        for c in &mut clients {
            assert!(c.query(&format!("SELECT {round}")).is_ok());
        }
    }
}

#[test]
fn prepared_bulk_is_no_longer_offered_once_a_backend_added_by_reload_lacks_it() {
    let db = MariaDb::shared();
    users(db);
    let schema = db.fresh_database("ps_bulk_reload");
    let relay = bulk_dropped_after(db.addr(), 0);
    let yaml = |with_old: bool| {
        let old = if with_old {
            format!("  - name: old\n    address: {relay}\n    user: ps_backend\n    password: bpw\n")
        } else {
            String::new()
        };
        let text = format!(
            "listen: 127.0.0.1:0\ncores: 1\n\
             users:\n  - name: app\n    password: apppw\n    default_schema: {schema}\n\
             backends:\n  - name: new\n    address: {}\n    user: ps_backend\n    password: bpw\n{old}\
             pool:\n  max_per_core: 2\n  min_idle_per_core: 0\nmonitor:\n  interval: 100ms\n",
            db.addr()
        );
        funnel_config::Config::from_yaml_str(&text).unwrap()
    };
    let mut proxy = funnel_testkit::funnel::start(yaml(false));
    let offered = |proxy: &funnel_engine::Proxy| {
        Raw::connect_with(proxy.local_addr(), "app", "apppw", &schema, BULK)
            .0
            .caps()
            .contains(BULK)
    };
    let early = Raw::connect_with(proxy.local_addr(), "app", "apppw", &schema, BULK);
    assert!(early.0.caps().contains(BULK), "the backend read at start has it");
    // A server without bulk operations joins the hostgroup: once a health
    // check has met it, clients that log in are not offered them.
    assert!(proxy.reload(yaml(true)).unwrap().is_empty());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while offered(&proxy) {
        assert!(
            std::time::Instant::now() < deadline,
            "still offered after the checks"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(
        early.0.caps().contains(BULK),
        "a client logged in keeps what it took"
    );
    // Retired again: offered again.
    assert!(proxy.reload(yaml(false)).unwrap().is_empty());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !offered(&proxy) {
        assert!(
            std::time::Instant::now() < deadline,
            "not offered after the reload"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}
