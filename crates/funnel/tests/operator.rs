//! What an operator sends to the admin and metrics ports, malformed or
//! hostile: every statement and command gets an answer (an ERR with a
//! proper code where it is wrong), the admin connection stays usable, and
//! the clients on the data path never notice.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use funnel_config::Config;
use funnel_engine::Proxy;
use funnel_testkit::client_opts as opts;
use funnel_testkit::mini_client::MiniClient;
use funnel_testkit::MariaDb;
use mysql::prelude::Queryable;
use mysql::Conn;

struct Env {
    proxy: Proxy,
    listeners: funnel_admin::Listeners,
}

fn env(prefix: &str, extra: &str) -> Env {
    let db = MariaDb::shared();
    let schema = db.fresh_database(prefix);
    let backend = format!("{schema}_b");
    db.create_user(&backend, "bpw");
    let yaml = format!(
        "listen: 127.0.0.1:0\ncores: 2\n\
         users:\n  - name: app\n    password: apppw\n    default_schema: {schema}\n\
         backends:\n  - name: primary\n    address: {}\n    user: {backend}\n    password: bpw\n\
         admin:\n  listen: 127.0.0.1:0\n  user: admin\n  password: secret\n\
         metrics:\n  listen: 127.0.0.1:0\n{extra}",
        db.addr()
    );
    let cfg = Config::from_yaml_str(&yaml).unwrap();
    let proxy = funnel_testkit::funnel::start(cfg.clone());
    let listeners = funnel_admin::start(&cfg, proxy.handle(), None).unwrap();
    Env { proxy, listeners }
}

impl Env {
    fn admin_addr(&self) -> SocketAddr {
        self.listeners.admin.as_ref().unwrap().local_addr()
    }

    fn admin(&self) -> Conn {
        Conn::new(opts(self.admin_addr().port(), "admin", "secret")).unwrap()
    }

    fn raw_admin(&self) -> MiniClient {
        MiniClient::connect(self.admin_addr(), "admin", "secret", None).unwrap()
    }

    fn client(&self) -> Conn {
        Conn::new(opts(self.proxy.local_addr().port(), "app", "apppw")).unwrap()
    }

    fn metrics_addr(&self) -> SocketAddr {
        self.listeners.metrics.as_ref().unwrap().local_addr()
    }
}

/// The code of the MySQL error `r` failed with.
fn code<T: std::fmt::Debug>(r: Result<T, mysql::Error>) -> u16 {
    match r {
        Err(mysql::Error::MySqlError(e)) => e.code,
        other => panic!("expected a MySQL error, got {other:?}"),
    }
}

/// A duration too long for the clock (`Instant::now() + d` overflows) in
/// any timeout is refused like any invalid value; before, `SET` took it
/// and the first timer armed with it panicked a core, dropping its clients.
#[test]
fn operator_set_of_a_duration_past_the_clock_is_refused() {
    let e = env("opdur", "");
    let mut admin = e.admin();
    let mut c = e.client();
    for key in [
        "pool.query_timeout",
        "pool.connect_timeout",
        "pool.idle_timeout",
        "pool.max_lifetime",
        "backlog.wait_timeout",
        "client.idle_timeout",
        "client.idle_transaction_timeout",
        "client.max_transaction_time",
        "client.net_read_timeout",
        "client.net_write_timeout",
        "client.handshake_timeout",
        "monitor.interval",
        "monitor.timeout",
    ] {
        for value in ["18446744073709551615", "5124095576030431h"] {
            let r = admin.query_drop(format!("SET {key} = {value}"));
            assert_eq!(code(r), 1210, "SET {key} = {value}");
        }
        // The running value is untouched and clients are served.
        assert_eq!(
            c.query_first::<i64, _>("SELECT 1").unwrap(),
            Some(1),
            "after {key}"
        );
    }
    // Nor a monitor that would log in to every backend without pause.
    assert_eq!(code(admin.query_drop("SET monitor.interval = 1ns")), 1210);
    let mut fresh = e.client();
    assert_eq!(fresh.query_first::<i64, _>("SELECT 2").unwrap(), Some(2));
}

/// A statement over the admin port's packet limit gets ERR 1153 (as a
/// server answers over its max_allowed_packet), not a silent close, and
/// `SELECT @@max_allowed_packet` tells drivers that limit.
#[test]
fn operator_admin_packet_over_the_limit_gets_1153() {
    let e = env("oppacket", "");
    let mut raw = e.raw_admin();
    let big = format!("SHOW '{}'", "x".repeat(2 << 20));
    raw.send_query(&big).unwrap();
    let (_, reply) = raw.read_packet().unwrap();
    let err = funnel_protocol::response::ErrPacket::parse(&reply).unwrap();
    assert_eq!(err.code, 1153, "{err:?}");
    // A driver that reads the limit refuses such a statement itself.
    let mut admin = e.admin();
    let limit: Option<u64> = admin.query_first("SELECT @@max_allowed_packet").unwrap();
    assert_eq!(limit, Some(funnel_admin::server::MAX_PACKET as u64));
    assert!(admin.query_drop("SHOW POOLS").is_ok());
}

/// Commands other than COM_QUERY on the admin port: each gets an answer
/// (ERR 1047 for those the admin interface does not serve) and the
/// connection goes on.
#[test]
fn operator_admin_other_commands_get_an_err_and_the_connection_goes_on() {
    let e = env("opcom", "");
    let mut admin = e.raw_admin();
    let cases: [(&str, Vec<u8>); 9] = [
        ("COM_STMT_PREPARE", [&[0x16u8][..], b"SHOW POOLS"].concat()),
        ("COM_FIELD_LIST", [&[0x04u8][..], b"t\0"].concat()),
        ("COM_CHANGE_USER", [&[0x11u8][..], b"app\0\0"].concat()),
        ("COM_STMT_EXECUTE", vec![0x17, 1, 0, 0, 0, 0, 1, 0, 0, 0]),
        ("COM_PROCESS_KILL", vec![0x0c, 1, 0, 0, 0]),
        ("COM_SET_OPTION", vec![0x1b, 0, 0]),
        ("COM_RESET_CONNECTION", vec![0x1f]),
        ("unknown 0xee", vec![0xee]),
        ("empty", vec![]),
    ];
    for (what, payload) in cases {
        admin.send_command(&payload).unwrap();
        let (_, reply) = admin
            .read_packet()
            .unwrap_or_else(|e| panic!("{what}: no answer: {e:?}"));
        assert_eq!(reply.first(), Some(&0xff), "{what}: {reply:?}");
        let err = funnel_protocol::response::ErrPacket::parse(&reply).unwrap();
        assert_eq!(err.code, 1047, "{what}: {err:?}");
        let rows = admin.query("SHOW VERSION").unwrap();
        assert_eq!(rows.rows().len(), 1, "{what}: the connection goes on");
    }
    // COM_INIT_DB and COM_PING are answered with OK.
    for (what, payload) in [
        ("COM_INIT_DB", [&[0x02u8][..], b"x"].concat()),
        ("COM_PING", vec![0x0e]),
    ] {
        admin.send_command(&payload).unwrap();
        let (_, reply) = admin.read_packet().unwrap();
        assert_eq!(reply.first(), Some(&0x00), "{what}: {reply:?}");
    }
}

/// Odd statements: wrong arity, unknown names, quoting, multi-statements,
/// out-of-range numbers. Each is an ERR with a proper code, and nothing
/// changes.
#[test]
fn operator_admin_malformed_statements_get_proper_errors() {
    let e = env("opmalformed", "");
    let mut admin = e.admin();
    let cases: &[(&str, u16)] = &[
        ("", 1064),
        (";", 1064),
        ("SHOW", 1064),
        ("SHOW POOLS extra", 1064),
        ("SHOW POOLS; SHUTDOWN", 1064),
        ("DRAIN BACKEND", 1064),
        ("DRAIN BACKEND a b", 1064),
        ("DRAIN BACKEND nosuch", 1210),
        ("UNDRAIN BACKEND nosuch", 1210),
        ("REMOVE BACKEND nosuch", 1210),
        ("REMOVE BACKEND primary", 1210),
        ("ADD BACKEND", 1210),
        ("ADD BACKEND x 127.0.0.1:1 u", 1210),
        ("ADD BACKEND primary 127.0.0.1:1 u p", 1210),
        ("ADD BACKEND x notanaddress u p", 1210),
        ("ADD BACKEND x 127.0.0.1:99999 u p", 1210),
        ("ADD BACKEND x nosuchhost.invalid:3306 u p", 1210),
        ("ADD BACKEND x /no/such/dir/mysqld.sock u p hostgroup", 1210),
        ("ADD BACKEND x 127.0.0.1:1 u p weight -1", 1210),
        ("ADD BACKEND x 127.0.0.1:1 u p weight 0", 1210),
        ("ADD BACKEND x 127.0.0.1:1 u p weight 99999999999999999999", 1210),
        ("ADD BACKEND x 127.0.0.1:1 u p weight", 1210),
        ("ADD BACKEND x 127.0.0.1:1 u p colour blue", 1210),
        ("ADD BACKEND x 127.0.0.1:1 u p max_replication_lag -5s", 1210),
        ("SET", 1210),
        ("SET pool", 1210),
        ("SET pool.max_per_core", 1210),
        ("SET pool.max_per_core = -1", 1210),
        ("SET pool.max_per_core = 99999999999999999999", 1210),
        ("SET pool.max_per_core = 1e3", 1210),
        ("SET pool.max_per_core = {a: 1}", 1210),
        ("SET pool.max_per_core = [1]", 1210),
        ("SET pool.max_per_core = *x", 1210),
        ("SET pool.max_per_core = 8; SHUTDOWN", 1210),
        ("SET pool.nosuch = 1", 1210),
        ("SET pool.max_per_core.x = 1", 1210),
        ("SET nosuch.key = 1", 1210),
        ("SET users.name = x", 1210),
        ("SET backlog.wait_timeout = -1s", 1210),
        ("SET backlog.wait_timeout = 1.5s", 1210),
        ("SET backlog.wait_timeout = 0", 1210),
        ("SET client.max_packet_size = 1", 1210),
        ("SET client.max_packet_size = 99999999999999999999999", 1210),
        ("SELECT", 1064),
        // The admin port's KILL: no client has id 1; a KILL it cannot read.
        ("KILL 1", 1094),
        ("KILL x", 1064),
        ("KILL QUERY", 1064),
        ("\u{0}\u{1}\u{ff}", 1064),
    ];
    for (sql, want) in cases {
        let got = code(admin.query_drop(*sql));
        assert_eq!(got, *want, "{sql:?}");
    }
    // YAML built to hurt the parser: deep nesting, an alias bomb.
    let deep = format!("SET pool.max_per_core = {}", "[".repeat(10_000));
    let bomb = format!(
        "SET pool.max_per_core = {{a: &a [x,x,x,x,x,x,x,x,x], {}}}",
        (b'b'..=b'z')
            .map(|c| format!(
                "{}: &{} [{}]",
                c as char,
                c as char,
                vec![format!("*{}", (c - 1) as char); 9].join(",")
            ))
            .collect::<Vec<_>>()
            .join(", ")
    );
    for sql in [deep, bomb] {
        assert_eq!(code(admin.query_drop(&sql)), 1210, "{}", &sql[..60]);
    }
    // Nothing changed: one backend, in service, and clients are served.
    let servers: Vec<mysql::Row> = admin.query("SHOW SERVERS").unwrap();
    assert_eq!(servers.len(), 1);
    let mut c = e.client();
    assert_eq!(c.query_first::<i64, _>("SELECT 1").unwrap(), Some(1));
}

/// A backend named with quotes, as ProxySQL's admin takes strings, is the
/// backend of that name: `ADD BACKEND 'r2' ...` then `DRAIN BACKEND r2`.
#[test]
fn operator_admin_quoted_names_are_the_names() {
    let e = env("opquote", "");
    let mut admin = e.admin();
    let db = MariaDb::shared();
    let backend = format!("{}_q", db.fresh_database("opquoteb"));
    db.create_user(&backend, "bpw");
    admin
        .query_drop(format!(
            "ADD BACKEND 'r2' '{}' '{backend}' 'bpw' hostgroup 'default' weight '1'",
            db.addr()
        ))
        .unwrap();
    let names: Vec<String> = admin
        .query::<mysql::Row, _>("SHOW SERVERS")
        .unwrap()
        .into_iter()
        .map(|r| r.get::<String, _>(0).unwrap())
        .collect();
    assert!(names.contains(&"r2".to_string()), "{names:?}");
    admin.query_drop("DRAIN BACKEND `r2`").unwrap();
    admin.query_drop("REMOVE BACKEND \"r2\"").unwrap();
}

/// Raw HTTP on the metrics port: other methods than GET and HEAD get 405,
/// HEAD gets no body, a request that is not HTTP gets 400; each answered
/// at once.
#[test]
fn operator_metrics_methods_and_garbage() {
    let e = env("ophttp", "");
    let ask = |raw: &[u8]| -> String {
        let mut s = TcpStream::connect(e.metrics_addr()).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(raw).unwrap();
        let mut out = Vec::new();
        s.read_to_end(&mut out).unwrap();
        String::from_utf8_lossy(&out).into_owned()
    };
    let post = ask(b"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n");
    assert!(post.starts_with("HTTP/1.1 405"), "{post}");
    let head = ask(b"HEAD /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(head.ends_with("\r\n\r\n"), "HEAD has no body: {head:?}");
    let bin = ask(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n");
    assert!(bin.starts_with("HTTP/1.1 400"), "{bin:?}");
}

/// The backend account that served a query (each backend logs in with an
/// account of its own).
fn served_by(c: &mut Conn) -> String {
    c.query_first("SELECT SUBSTRING_INDEX(CURRENT_USER(), '@', 1)")
        .unwrap()
        .unwrap()
}

/// A reload from the file while clients work: it removes the backend and
/// the user in use, moves the user to another hostgroup, changes its
/// password, shrinks the pool below what is leased and changes `listen`.
/// As configuration.md's "Reloading" says: connected clients go on
/// (open transactions commit on their connection, which then drains), new
/// commands use the new backend, new logins the new users and password,
/// and `listen` waits for a restart.
#[test]
fn operator_reload_under_clients_removes_what_they_use() {
    let db = MariaDb::shared();
    let schema = db.fresh_database("opreload");
    let (old_b, new_b) = (format!("{schema}_old"), format!("{schema}_new"));
    db.create_user(&old_b, "bpw");
    db.create_user(&new_b, "bpw");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("funnel.yaml");
    let addr = db.addr();
    let before = format!(
        "listen: 127.0.0.1:0\ncores: 1\n\
         users:\n  - name: app\n    password: apppw\n    default_schema: {schema}\n    default_hostgroup: hg_old\n  \
         - name: gone\n    password: gonepw\n    default_schema: {schema}\n    default_hostgroup: hg_old\n\
         backends:\n  - name: old\n    address: {addr}\n    user: {old_b}\n    password: bpw\n    hostgroup: hg_old\n\
         pool:\n  max_per_core: 4\n\
         admin:\n  listen: 127.0.0.1:0\n  user: admin\n  password: secret\n"
    );
    let after = format!(
        "listen: 127.0.0.1:1\ncores: 1\n\
         users:\n  - name: app\n    password: newpw\n    default_schema: {schema}\n    default_hostgroup: hg_new\n\
         backends:\n  - name: new\n    address: {addr}\n    user: {new_b}\n    password: bpw\n    hostgroup: hg_new\n\
         pool:\n  max_per_core: 1\n  min_idle_per_core: 0\n\
         admin:\n  listen: 127.0.0.1:0\n  user: admin\n  password: secret\n"
    );
    std::fs::write(&path, &before).unwrap();
    let cfg = Config::load(&path).unwrap();
    let proxy = funnel_testkit::funnel::start(cfg.clone());
    let listeners = funnel_admin::start(&cfg, proxy.handle(), Some(path.clone())).unwrap();
    let admin_port = listeners.admin.as_ref().unwrap().local_addr().port();
    let mut admin = Conn::new(opts(admin_port, "admin", "secret")).unwrap();
    let port = proxy.local_addr().port();
    db.exec(&format!("CREATE TABLE {schema}.t (id INT PRIMARY KEY, v INT)"));
    // Three clients in open transactions (three leased connections), one
    // idle client of the user about to be removed, one idle app client.
    let mut txs: Vec<Conn> = (0..3)
        .map(|_| Conn::new(opts(port, "app", "apppw")).unwrap())
        .collect();
    for (i, c) in txs.iter_mut().enumerate() {
        c.query_drop("BEGIN").unwrap();
        c.query_drop(format!("INSERT INTO t VALUES ({i}, 0)")).unwrap();
    }
    let mut gone = Conn::new(opts(port, "gone", "gonepw")).unwrap();
    let mut idle = Conn::new(opts(port, "app", "apppw")).unwrap();
    assert_eq!(served_by(&mut idle), old_b);

    std::fs::write(&path, &after).unwrap();
    let reply = admin.query_iter("RELOAD").unwrap();
    let info = reply.info_str().into_owned();
    drop(reply);
    assert!(info.contains("listen"), "listen needs a restart: {info}");

    // The transactions commit on their connections to the removed backend.
    for (i, c) in txs.iter_mut().enumerate() {
        assert_eq!(served_by(c), old_b, "tx {i} stays on its connection");
        c.query_drop(format!("UPDATE t SET v = 1 WHERE id = {i}"))
            .unwrap();
        c.query_drop("COMMIT").unwrap();
    }
    let committed: Option<i64> = db.query_first(&format!("SELECT SUM(v) FROM {schema}.t"));
    assert_eq!(committed, Some(3), "every acknowledged commit is there, once");
    // A connected client of a changed user goes on, routed as the file
    // now says (before: ERR 9004 for hg_old on every command until it
    // reconnected).
    assert_eq!(idle.query_first::<i64, _>("SELECT 5").unwrap(), Some(5));
    assert_eq!(served_by(&mut idle), new_b);
    // A removed user's session keeps what it logged in with: its hostgroup
    // is gone, so it is told so at once, and stays connected.
    let started = std::time::Instant::now();
    assert_eq!(code(gone.query_first::<i64, _>("SELECT 6")), 9004);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(code(gone.query_first::<i64, _>("SELECT 7")), 9004);
    // New logins: the new password only; the removed user is refused.
    assert_eq!(
        code(Conn::new(opts(port, "app", "apppw"))),
        1045,
        "the old password is refused"
    );
    assert_eq!(code(Conn::new(opts(port, "gone", "gonepw"))), 1045);
    let mut fresh = Conn::new(opts(port, "app", "newpw")).unwrap();
    assert_eq!(served_by(&mut fresh), new_b);
    // The old backend's connections drain away; the new pool keeps to 1.
    funnel_testkit::wait_until_within("the old backend drains", Duration::from_secs(10), || {
        let rows: Vec<mysql::Row> = admin.query("SHOW SERVERS").unwrap();
        rows.iter()
            .all(|r| r.get::<String, _>("backend").unwrap() != "old")
    });
}

/// `funnel_stats_snapshots_total` from one scrape.
fn snapshots_total(addr: SocketAddr) -> u64 {
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out.lines()
        .find_map(|l| l.strip_prefix("funnel_stats_snapshots_total "))
        .unwrap_or_else(|| panic!("no funnel_stats_snapshots_total in {out}"))
        .trim()
        .parse()
        .unwrap()
}

/// Many connections scraping at once: every one is answered, but the
/// cores build at most one round of snapshots per 100 ms for them (before,
/// each scrape took a round from every core: 16 scrapers made the cores'
/// clients' queries wait hundreds of milliseconds behind snapshots).
#[test]
fn operator_metrics_scrapes_at_once_share_the_cores_snapshots() {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::Arc;
    let e = env("opscrape", "");
    let addr = e.metrics_addr();
    let mut c = e.client();
    let before = snapshots_total(addr);
    let started = std::time::Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let answered = Arc::new(AtomicUsize::new(0));
    let scrapers: Vec<_> = (0..16)
        .map(|_| {
            let (stop, answered) = (stop.clone(), answered.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let mut s = TcpStream::connect(addr).unwrap();
                    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                    s.write_all(b"GET /metrics HTTP/1.1\r\n\r\n").unwrap();
                    let mut out = String::new();
                    s.read_to_string(&mut out).unwrap();
                    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
                    answered.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    // Clients are served meanwhile.
    for i in 0..50 {
        assert_eq!(c.query_first::<i64, _>(format!("SELECT {i}")).unwrap(), Some(i));
    }
    std::thread::sleep(Duration::from_millis(1000));
    stop.store(true, Ordering::Relaxed);
    for s in scrapers {
        s.join().unwrap();
    }
    let took = started.elapsed();
    let answered = answered.load(Ordering::Relaxed);
    let built = snapshots_total(addr) - before;
    // Two cores; a round per 100 ms, plus the first and last scrapes'.
    let most = 2 * (took.as_millis() as u64 / 100 + 3);
    assert!(answered >= 16, "every scraper was answered: {answered}");
    assert!(
        built <= most,
        "{answered} scrapes in {took:?} made the cores build {built} snapshots (at most {most})"
    );
}

/// Admin changes while clients run transactions through Funnel: backends
/// added, drained, undrained and removed, pool sizes set, PAUSE and
/// RESUME, over and over. No client gets an error, no client is stuck,
/// and the table holds exactly the transactions that were acknowledged,
/// each once.
#[test]
fn operator_admin_changes_under_transactions_lose_and_repeat_nothing() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};
    let e = env(
        "opconc",
        "pool:\n  max_per_core: 4\n  min_idle_per_core: 1\nmonitor:\n  interval: 100ms\n",
    );
    let db = MariaDb::shared();
    let schema: String = e.client().query_first("SELECT DATABASE()").unwrap().unwrap();
    db.exec(&format!(
        "CREATE TABLE {schema}.t (worker INT, n INT, PRIMARY KEY (worker, n)) ENGINE=InnoDB"
    ));
    let addr = db.addr();
    let mut admin = e.admin();
    let (second, third) = (format!("{schema}_s"), format!("{schema}_t"));
    db.create_user(&second, "cpw");
    db.create_user(&third, "cpw");
    admin
        .query_drop(format!("ADD BACKEND second {addr} {second} cpw"))
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let failures = Arc::new(Mutex::new(Vec::<String>::new()));
    let workers: Vec<_> = (0..6)
        .map(|w| {
            let (stop, failures) = (stop.clone(), failures.clone());
            let mut c = e.client();
            std::thread::spawn(move || {
                let mut acked = 0;
                while !stop.load(Ordering::Relaxed) {
                    let n = acked;
                    let tx = (|| -> Result<(), mysql::Error> {
                        c.query_drop("BEGIN")?;
                        c.query_drop(format!("INSERT INTO t VALUES ({w}, {n})"))?;
                        c.query_drop("SELECT SLEEP(0.005)")?;
                        c.query_drop("COMMIT")
                    })();
                    match tx {
                        Ok(()) => acked += 1,
                        Err(err) => {
                            failures.lock().unwrap().push(format!("worker {w} tx {n}: {err}"));
                            return acked;
                        }
                    }
                }
                acked
            })
        })
        .collect();
    let deadline = std::time::Instant::now() + Duration::from_secs(4);
    let mut round = 0;
    while std::time::Instant::now() < deadline {
        for sql in [
            "DRAIN BACKEND second".to_string(),
            format!("ADD BACKEND third {addr} {third} cpw weight 2"),
            "SET pool.max_per_core = 2".to_string(),
            "PAUSE".to_string(),
            "RESUME".to_string(),
            "UNDRAIN BACKEND second".to_string(),
            "DRAIN BACKEND primary".to_string(),
            "REMOVE BACKEND third".to_string(),
            "SET pool.max_per_core = 4".to_string(),
            "UNDRAIN BACKEND primary".to_string(),
        ] {
            admin
                .query_drop(&sql)
                .unwrap_or_else(|err| panic!("round {round}: {sql}: {err}"));
        }
        round += 1;
    }
    stop.store(true, Ordering::Relaxed);
    let acked: Vec<i64> = workers.into_iter().map(|w| w.join().unwrap() as i64).collect();
    let failures = failures.lock().unwrap();
    assert!(failures.is_empty(), "after {round} rounds: {failures:?}");
    for (w, n) in acked.iter().enumerate() {
        let (rows, top): (i64, Option<i64>) = db
            .query_first(&format!(
                "SELECT COUNT(*), MAX(n) FROM {schema}.t WHERE worker = {w}"
            ))
            .unwrap();
        assert_eq!(rows, *n, "worker {w}: every acknowledged commit, once");
        assert_eq!(top, (*n > 0).then(|| n - 1), "worker {w}");
    }
    assert!(
        acked.iter().all(|&n| n > 0),
        "every worker got through: {acked:?}"
    );
}

/// A login packet the admin port cannot read gets ERR 1043 (Bad
/// handshake), as a server answers one, not a silent close.
#[test]
fn operator_admin_garbled_login_gets_1043() {
    let e = env("oplogin", "");
    for garbage in [vec![0x01u8], vec![0xff; 40], b"GET / HTTP/1.1\r\n\r\n".to_vec()] {
        let mut s = TcpStream::connect(e.admin_addr()).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let (seq, _greeting) = funnel_testkit::mini_client::read_raw_packet(&mut s).unwrap();
        let mut framed = bytes::BytesMut::new();
        funnel_protocol::framing::write_packet(&mut framed, seq + 1, &garbage);
        s.write_all(&framed).unwrap();
        let (_, reply) = funnel_testkit::mini_client::read_raw_packet(&mut s)
            .unwrap_or_else(|err| panic!("{garbage:?}: no answer: {err}"));
        let err = funnel_protocol::response::ErrPacket::parse(&reply).unwrap();
        assert_eq!(err.code, 1043, "{garbage:?}: {err:?}");
    }
    // The admin port still serves.
    assert!(e.admin().query_drop("SHOW POOLS").is_ok());
}

/// Backend and hostgroup names are free text (any YAML string, any word
/// of ADD BACKEND): in the metrics their quotes, backslashes and line
/// ends are escaped as the exposition format requires. Before, a backend
/// named `a"b` broke the line, and Prometheus refuses the whole scrape
/// for one bad line.
#[test]
fn operator_metrics_escape_backend_names() {
    let e = env("opescape", "");
    let db = MariaDb::shared();
    let acct = format!("{}_e", db.fresh_database("opescapeb"));
    db.create_user(&acct, "cpw");
    let mut admin = e.admin();
    admin
        .query_drop(format!(
            r#"ADD BACKEND we"ird\name {} {acct} cpw hostgroup hg"x"#,
            db.addr()
        ))
        .unwrap();
    let mut s = TcpStream::connect(e.metrics_addr()).unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let body = out.split_once("\r\n\r\n").unwrap().1;
    assert!(
        body.contains(r#"funnel_backend_up{backend="we\"ird\\name",hostgroup="hg\"x"} "#),
        "{body}"
    );
    // Every sample line is `name{labels} value` with its quotes closed.
    for line in body.lines().filter(|l| !l.starts_with('#')) {
        let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("{line}"));
        assert!(value.parse::<f64>().is_ok(), "{line}");
        let unescaped = series.replace(r"\\", "").replace(r#"\""#, "");
        assert_eq!(unescaped.matches('"').count() % 2, 0, "{line}");
    }
}

/// This process's open file descriptors (Funnel runs in it).
fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// Connections to the metrics and admin ports that vanish half-way (a
/// request cut off, a login never sent, more than the cap at once) leave
/// no descriptor or thread behind.
#[test]
fn operator_abandoned_operator_connections_leak_nothing() {
    let e = env("opfds", "");
    let (metrics, admin) = (e.metrics_addr(), e.admin_addr());
    let mut c = e.client();
    assert_eq!(c.query_first::<i64, _>("SELECT 1").unwrap(), Some(1));
    let before = open_fds();
    for round in 0..3 {
        let mut held = Vec::new();
        for i in 0..48 {
            let mut m = TcpStream::connect(metrics).unwrap();
            let _ = m.write_all(if i % 2 == 0 {
                b"GET /met"
            } else {
                b"POST /x HTTP/1.1\r\nHost"
            });
            held.push(m);
            held.push(TcpStream::connect(admin).unwrap());
        }
        drop(held);
        // Clients are served meanwhile.
        assert_eq!(
            c.query_first::<i64, _>(format!("SELECT {round}")).unwrap(),
            Some(round)
        );
    }
    funnel_testkit::wait_until_within(
        "the listeners close what was abandoned",
        Duration::from_secs(15),
        || open_fds() <= before + 2,
    );
    assert!(e.admin().query_drop("SHOW POOLS").is_ok());
}
