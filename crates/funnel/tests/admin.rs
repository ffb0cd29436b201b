//! The admin interface and the metrics endpoint, driven with real clients;
//! figures are checked against the traffic each test generated.

use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use funnel_config::Config;
use funnel_engine::Proxy;
use funnel_testkit::client_opts as opts;
use funnel_testkit::MariaDb;
use mysql::prelude::Queryable;
use mysql::Conn;

struct Env {
    proxy: Proxy,
    listeners: funnel_admin::Listeners,
    /// The account backend `primary` logs in with.
    backend_user: String,
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
    Env {
        proxy,
        listeners,
        backend_user: backend,
    }
}

impl Env {
    fn admin(&self) -> Conn {
        let port = self.listeners.admin.as_ref().unwrap().local_addr().port();
        Conn::new(opts(port, "admin", "secret")).unwrap()
    }

    fn client(&self) -> Conn {
        Conn::new(opts(self.proxy.local_addr().port(), "app", "apppw")).unwrap()
    }

    fn http(&self, path: &str) -> (String, String) {
        let addr = self.listeners.metrics.as_ref().unwrap().local_addr();
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let mut body = String::new();
        s.read_to_string(&mut body).unwrap();
        let (head, rest) = body.split_once("\r\n\r\n").unwrap();
        (head.lines().next().unwrap().to_string(), rest.to_string())
    }
}

/// Answers `greeting` with a mysql_native_password login; the reply's payload.
fn native_login(s: &mut std::net::TcpStream, greeting: &[u8], user: &str, pw: &str) -> Vec<u8> {
    use funnel_protocol::handshake::{HandshakeResponse41, HandshakeV10};
    use funnel_protocol::Capabilities;
    let greeting = HandshakeV10::parse(greeting).unwrap();
    let resp = HandshakeResponse41 {
        capabilities: Capabilities(
            Capabilities::CLIENT_PROTOCOL_41.0
                | Capabilities::CLIENT_SECURE_CONNECTION.0
                | Capabilities::CLIENT_PLUGIN_AUTH.0,
        ),
        max_packet_size: 1 << 24,
        charset: 45,
        username: user.as_bytes().to_vec(),
        auth_response: funnel_protocol::auth::native_password_scramble(
            pw.as_bytes(),
            &greeting.auth_plugin_data,
        ),
        database: None,
        auth_plugin_name: Some(b"mysql_native_password".to_vec()),
        attributes: Vec::new(),
    };
    let mut out = bytes::BytesMut::new();
    resp.write(&mut out);
    let mut framed = bytes::BytesMut::new();
    funnel_protocol::framing::write_packet(&mut framed, 1, &out);
    s.write_all(&framed).unwrap();
    funnel_testkit::mini_client::read_raw_packet(s).unwrap().1
}

/// A SHOW STATS value.
fn stat(admin: &mut Conn, scope: &str, name: &str) -> String {
    let rows: Vec<(String, String, String)> = admin.query("SHOW STATS").unwrap();
    rows.into_iter()
        .find(|(s, n, _)| s == scope && n == name)
        .unwrap_or_else(|| panic!("no {scope}/{name}"))
        .2
}

#[test]
fn admin_counts_match_the_traffic_and_percentiles_are_reported() {
    let e = env("admstats", "");
    let mut admin = e.admin();
    let mut c = e.client();
    let before: u64 = stat(&mut admin, "all", "queries").parse().unwrap();
    for i in 0..1000 {
        c.query_drop(format!("SELECT {i}")).unwrap();
    }
    let after: u64 = stat(&mut admin, "all", "queries").parse().unwrap();
    assert_eq!(after - before, 1000, "1000 queries -> the counter says 1000");
    let p99: u64 = stat(&mut admin, "all", "query_p99_us").parse().unwrap();
    let max: u64 = stat(&mut admin, "all", "query_max_us").parse().unwrap();
    assert!(p99 > 0 && p99 <= max, "p99 {p99} max {max}");
    stat(&mut admin, "core0", "query_p50_us");
    stat(&mut admin, "core1", "queries");
}

#[test]
fn admin_login_needs_its_credentials_and_unknown_commands_list_the_rest() {
    let e = env("admlogin", "");
    let port = e.listeners.admin.as_ref().unwrap().local_addr().port();
    let err = Conn::new(opts(port, "admin", "nope")).map(|_| ()).unwrap_err();
    assert!(
        matches!(err, mysql::Error::MySqlError(ref m) if m.code == 1045),
        "{err:?}"
    );
    let err = Conn::new(opts(port, "app", "apppw")).map(|_| ()).unwrap_err();
    assert!(
        matches!(err, mysql::Error::MySqlError(ref m) if m.code == 1045),
        "{err:?}"
    );
    let mut admin = e.admin();
    let err = admin.query_drop("DROP EVERYTHING").unwrap_err();
    let mysql::Error::MySqlError(m) = err else {
        panic!()
    };
    assert!(
        m.message.contains("SHOW POOLS") && m.message.contains("SHUTDOWN GRACEFUL"),
        "{}",
        m.message
    );
    let v: Vec<(String, String)> = admin.query("SHOW VERSION").unwrap();
    assert_eq!(v[0].0, "funnel");
    let cfg: Vec<String> = admin.query("SHOW CONFIG").unwrap();
    let text = cfg.join("\n");
    assert!(
        text.contains("max_per_core") && !text.contains("apppw") && !text.contains("bpw"),
        "{text}"
    );
}

#[test]
fn admin_pools_clients_servers_and_multiplexing() {
    let e = env("admshow", "");
    let mut admin = e.admin();
    let mut plain = e.client();
    let mut pinned = e.client();
    plain.query_drop("SELECT 1").unwrap();
    pinned.query_drop("SELECT 1 INTO @v").unwrap();
    let pools: Vec<mysql::Row> = admin.query("SHOW POOLS").unwrap();
    assert_eq!(pools.len(), 2, "one row per core for the one backend");
    let pinned_total: usize = pools
        .iter()
        .map(|r| r.get::<String, _>("pinned").unwrap().parse::<usize>().unwrap())
        .sum();
    assert_eq!(pinned_total, 1);
    let clients: Vec<mysql::Row> = admin.query("SHOW CLIENTS").unwrap();
    assert_eq!(clients.len(), 2);
    let reasons: Vec<Option<String>> = clients.iter().map(|r| r.get("pinned").unwrap()).collect();
    assert!(reasons.contains(&Some("user_variable".into())), "{reasons:?}");
    let servers: Vec<mysql::Row> = admin.query("SHOW SERVERS").unwrap();
    assert_eq!(servers[0].get::<String, _>("status").unwrap(), "up");
    let mux: Vec<(String, String, String)> = admin.query("SHOW MULTIPLEXING").unwrap();
    assert!(
        mux.iter()
            .any(|(w, k, v)| w == "pinned_now_by_reason" && k == "user_variable" && v == "1"),
        "{mux:?}"
    );
    assert!(
        mux.iter()
            .any(|(w, k, v)| w == "pinned_now_by_user" && k == "app" && v == "1"),
        "{mux:?}"
    );
}

/// `SHOW CLIENTS` says how long each client's open transaction has been
/// open (`transaction_s`, NULL outside one), and `/metrics` the oldest
/// (`funnel_oldest_transaction_seconds`): where to look before
/// `client.max_transaction_time` ends it, or to find who holds the pool.
/// A `COMMIT` ends the count.
#[test]
fn admin_show_clients_and_metrics_show_how_long_transactions_are_open() {
    let e = env("admtxage", "");
    let mut admin = e.admin();
    let mut busy = e.client();
    let mut plain = e.client();
    busy.query_drop("CREATE TABLE t (id INT PRIMARY KEY)").unwrap();
    plain.query_drop("SELECT 1").unwrap();
    busy.query_drop("BEGIN").unwrap();
    busy.query_drop("INSERT INTO t VALUES (1)").unwrap();
    let busy_id: u64 = busy.query_first("SELECT CONNECTION_ID()").unwrap().unwrap();
    std::thread::sleep(Duration::from_millis(1200));
    let ages = |admin: &mut Conn| -> Vec<(u64, Option<f64>)> {
        let rows: Vec<mysql::Row> = admin.query("SHOW CLIENTS").unwrap();
        rows.iter()
            .map(|r| {
                let id: String = r.get("id").unwrap();
                let age: Option<String> = r.get("transaction_s").unwrap();
                (id.parse().unwrap(), age.map(|a| a.parse().unwrap()))
            })
            .collect()
    };
    let now = ages(&mut admin);
    assert_eq!(now.len(), 2, "{now:?}");
    for (id, age) in &now {
        if *id == busy_id {
            // From the `BEGIN`'s arrival.
            assert!(age.is_some_and(|a| (1.2..10.0).contains(&a)), "{now:?}");
        } else {
            assert_eq!(*age, None, "{now:?}");
        }
    }
    let oldest = |e: &Env| -> f64 {
        let (_, body) = e.http("/metrics");
        let line = body
            .lines()
            .find(|l| l.starts_with("funnel_oldest_transaction_seconds "))
            .unwrap_or_else(|| panic!("no gauge:\n{body}"));
        line.rsplit(' ').next().unwrap().parse().unwrap()
    };
    let seconds = oldest(&e);
    assert!((1.2..10.0).contains(&seconds), "{seconds}");
    busy.query_drop("COMMIT").unwrap();
    assert!(ages(&mut admin).iter().all(|(_, a)| a.is_none()));
    assert_eq!(oldest(&e), 0.0);
}

#[test]
fn admin_metrics_endpoint_is_scraped() {
    let e = env("admmetrics", "");
    let mut c = e.client();
    for _ in 0..10 {
        c.query_drop("SELECT 1").unwrap();
    }
    let (status, body) = e.http("/metrics");
    assert!(status.contains("200"), "{status}");
    for needle in [
        "# TYPE funnel_queries_total counter",
        "funnel_queries_total{core=\"0\"}",
        "# TYPE funnel_query_duration_seconds histogram",
        "funnel_query_duration_seconds_bucket{le=\"+Inf\"}",
        "funnel_backend_connections{backend=\"primary\",hostgroup=\"default\",state=\"idle\"}",
        "funnel_backend_up{backend=\"primary\",hostgroup=\"default\"} 1",
    ] {
        assert!(body.contains(needle), "missing {needle}:\n{body}");
    }
    let total: u64 = body
        .lines()
        .filter(|l| l.starts_with("funnel_queries_total{"))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
        .sum();
    assert!(total >= 10);
    let (status, body) = e.http("/healthz");
    assert!(status.contains("200"), "{status} {body}");
    // A scrape job's `params` arrive as a query string.
    let (status, body) = e.http("/metrics?format=prometheus");
    assert!(
        status.contains("200") && body.contains("funnel_queries_total"),
        "{status}"
    );
}

/// The value of `name` in a scrape (a sample line `name value`), 0 if absent.
fn sample(body: &str, name: &str) -> u64 {
    body.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .map_or(0, |v| v.parse().unwrap())
}

/// Errors Funnel sends before or around a session (refused logins, limits,
/// timeouts) are its own errors too: operations.md lists them under
/// `errors_<code>` and `funnel_errors_total{code}`, and alerts rely on it.
#[test]
fn admin_counts_refused_logins_and_timeouts_by_error_code() {
    let e = env(
        "admerrcodes",
        "client:\n  handshake_timeout: 1s\n  idle_timeout: 1s\n",
    );
    let port = e.proxy.local_addr().port();
    let err = Conn::new(opts(port, "app", "wrong")).map(|_| ()).unwrap_err();
    assert!(
        matches!(err, mysql::Error::MySqlError(ref m) if m.code == 1045),
        "{err:?}"
    );
    // Says nothing after the greeting: ERR 1159 after handshake_timeout.
    let mut silent = std::net::TcpStream::connect(e.proxy.local_addr()).unwrap();
    silent.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let _greeting = funnel_testkit::mini_client::read_raw_packet(&mut silent).unwrap();
    let (_, err) = funnel_testkit::mini_client::read_raw_packet(&mut silent).unwrap();
    assert_eq!(u16::from_le_bytes([err[1], err[2]]), 1159);
    // Logged in, then idle past client.idle_timeout: ERR 4031.
    let mut idle = e.client();
    thread::sleep(Duration::from_millis(1500));
    assert!(idle.query_drop("SELECT 1").is_err());
    e.assert_errors(&[("1045", 1), ("1159", 1), ("4031", 1)], 1);

    // Two cores share client.max_connections = 2: of three clients at
    // least one lands on a core that already has its one.
    let e = env("admerr1040", "client:\n  max_connections: 2\n");
    let port = e.proxy.local_addr().port();
    let mut held = Vec::new();
    let mut too_many = 0;
    for _ in 0..3 {
        match Conn::new(opts(port, "app", "apppw")) {
            Ok(c) => held.push(c),
            Err(mysql::Error::MySqlError(m)) if m.code == 1040 => too_many += 1,
            Err(other) => panic!("{other:?}"),
        }
    }
    assert!(too_many >= 1);
    e.assert_errors(&[("1040", too_many)], too_many);
}

impl Env {
    /// SHOW STATS and /metrics both count `errors` (code, how many) and
    /// `refused` refused clients.
    fn assert_errors(&self, errors: &[(&str, u64)], refused: u64) {
        let mut admin = self.admin();
        let (_, body) = self.http("/metrics");
        for &(code, n) in errors {
            assert_eq!(stat(&mut admin, "all", &format!("errors_{code}")), n.to_string());
            let metric = format!("funnel_errors_total{{code=\"{code}\"}}");
            assert_eq!(sample(&body, &metric), n, "{metric}:\n{body}");
        }
        assert_eq!(sample(&body, "funnel_client_connections_refused_total"), refused);
    }
}

/// `open_failures` in SHOW SERVERS belongs to its row's backend: a
/// backend that refuses connections must not make a healthy one look
/// flaky.
#[test]
fn admin_servers_count_failed_connects_per_backend() {
    let e = env("admfailures", "");
    let mut admin = e.admin();
    // Nothing listens on a port taken and let go again.
    let closed = closed_port();
    admin
        .query_drop(format!("ADD BACKEND dead {closed} nobody x hostgroup spare"))
        .unwrap();
    let failures = |admin: &mut Conn| -> Vec<(String, u64)> {
        let rows: Vec<mysql::Row> = admin.query("SHOW SERVERS").unwrap();
        rows.iter()
            .map(|r| {
                let n: String = r.get("open_failures").unwrap();
                (r.get("backend").unwrap(), n.parse().unwrap())
            })
            .collect()
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    let rows = loop {
        let rows = failures(&mut admin);
        if rows.iter().any(|(b, n)| b == "dead" && *n > 0) || Instant::now() > deadline {
            break rows;
        }
        thread::sleep(Duration::from_millis(50));
    };
    assert!(rows.iter().any(|(b, n)| b == "dead" && *n > 0), "{rows:?}");
    assert!(rows.contains(&("primary".to_string(), 0)), "{rows:?}");
}

/// SHOW SERVERS lists what every core holds: a drained backend whose last
/// connection is on core 1 (core 0's pool is empty) is still `draining`
/// with that connection, and `drained` once it closes.
#[test]
fn admin_servers_show_connections_held_on_any_core() {
    let e = env("admsrvcores", "");
    let mut admin = e.admin();
    let core_of_only_client = |admin: &mut Conn| -> String {
        let rows: Vec<mysql::Row> = admin.query("SHOW CLIENTS").unwrap();
        assert_eq!(rows.len(), 1);
        rows[0].get("core").unwrap()
    };
    let mut pinned = None;
    for _ in 0..100 {
        let mut c = e.client();
        c.query_drop("SELECT 1 INTO @keep").unwrap();
        if core_of_only_client(&mut admin) == "1" {
            pinned = Some(c);
            break;
        }
        drop(c);
        wait_until("the client to leave", || {
            admin.query::<mysql::Row, _>("SHOW CLIENTS").unwrap().is_empty()
        });
    }
    let pinned = pinned.expect("a client on core 1");
    admin.query_drop("DRAIN BACKEND primary").unwrap();
    wait_until("core 0 to close its idle connections", || {
        let rows: Vec<mysql::Row> = admin.query("SHOW POOLS").unwrap();
        rows.iter().any(|r| {
            r.get::<String, _>("core").unwrap() == "0" && r.get::<String, _>("status").unwrap() == "drained"
        })
    });
    assert_eq!(
        server(&mut admin, "primary"),
        Some(("draining".into(), 1)),
        "the connection core 1 still holds"
    );
    drop(pinned);
    wait_until("the last connection to close", || {
        server(&mut admin, "primary") == Some(("drained".into(), 0))
    });
}

/// A backend's SHOW SERVERS status and open connections; `None` without a row.
fn server(admin: &mut Conn, backend: &str) -> Option<(String, u64)> {
    let rows: Vec<mysql::Row> = admin.query("SHOW SERVERS").unwrap();
    let rows: Vec<_> = rows
        .iter()
        .filter(|r| r.get::<String, _>("backend").unwrap() == backend)
        .collect();
    assert!(rows.len() <= 1, "one row per backend: {rows:?}");
    rows.first().map(|r| {
        let conns: String = r.get("connections").unwrap();
        (r.get("status").unwrap(), conns.parse().unwrap())
    })
}

/// The backend account that served a query: each backend of these tests
/// logs in with an account of its own.
fn served_by(c: &mut Conn) -> String {
    c.query_first("SELECT SUBSTRING_INDEX(CURRENT_USER(), '@', 1)")
        .unwrap()
        .unwrap()
}

/// Adds backend `second` (same server, its own account) and returns that account.
fn add_second(admin: &mut Conn, account: &str) -> String {
    MariaDb::shared().create_user(account, "cpw");
    let addr = MariaDb::shared().addr();
    admin
        .query_drop(format!("ADD BACKEND second {addr} {account} cpw"))
        .unwrap();
    account.to_string()
}

/// A drain is part of the running configuration: an admin change made
/// after it (which re-applies that configuration) keeps the backend
/// drained, rather than giving it a fresh pool and traffic.
#[test]
fn admin_drain_outlives_later_admin_changes() {
    let e = env("admdrainkeep", "monitor:\n  interval: 100ms\n");
    let mut admin = e.admin();
    let second = add_second(&mut admin, "admdrainkeep_c");
    admin.query_drop("DRAIN BACKEND primary").unwrap();
    admin.query_drop("SET pool.max_per_core = 8").unwrap();
    let closed = closed_port();
    admin
        .query_drop(format!("ADD BACKEND spare {closed} nobody x hostgroup spare"))
        .unwrap();
    admin.query_drop("REMOVE BACKEND spare").unwrap();
    wait_until("primary to be drained", || {
        server(&mut admin, "primary") == Some(("drained".into(), 0))
    });
    // Long enough for the monitor to check a backend put back by mistake.
    thread::sleep(Duration::from_millis(300));
    let mut c = e.client();
    for _ in 0..40 {
        assert_eq!(served_by(&mut c), second, "only the other backend serves");
    }
    assert_eq!(server(&mut admin, "primary"), Some(("drained".into(), 0)));
    let cfg: Vec<String> = admin.query("SHOW CONFIG").unwrap();
    let flags: Vec<&str> = cfg
        .iter()
        .map(|l| l.trim())
        .filter(|l| l.starts_with("drained:"))
        .collect();
    assert_eq!(flags, ["drained: true", "drained: false"], "{cfg:?}");
}

/// A drained backend stays listed (SHOW SERVERS, SHOW POOLS, metrics)
/// with no connection; a hostgroup drained whole answers ERR 9004 saying
/// so; UNDRAIN gives it a fresh pool and traffic again.
#[test]
fn admin_drained_backend_stays_visible_and_undrain_brings_it_back() {
    let e = env("admundrain", "monitor:\n  interval: 100ms\n");
    let mut admin = e.admin();
    let second = add_second(&mut admin, "admundrain_c");
    admin.query_drop("DRAIN BACKEND primary").unwrap();
    wait_until("primary to be drained", || {
        server(&mut admin, "primary") == Some(("drained".into(), 0))
    });
    let pools: Vec<mysql::Row> = admin.query("SHOW POOLS").unwrap();
    let statuses: Vec<String> = pools
        .iter()
        .filter(|r| r.get::<String, _>("backend").unwrap() == "primary")
        .map(|r| r.get("status").unwrap())
        .collect();
    assert_eq!(statuses, ["drained", "drained"], "one row per core");
    let (_, metrics) = e.http("/metrics");
    for series in [
        "funnel_backend_drained{backend=\"primary\",hostgroup=\"default\"} 1",
        "funnel_backend_drained{backend=\"second\",hostgroup=\"default\"} 0",
        "funnel_backend_connections{backend=\"primary\",hostgroup=\"default\",state=\"idle\"} 0",
    ] {
        assert!(metrics.contains(series), "{series} in {metrics}");
    }
    let mut c = e.client();
    for _ in 0..20 {
        assert_eq!(served_by(&mut c), second);
    }

    admin.query_drop("DRAIN BACKEND second").unwrap();
    let err = c.query_drop("SELECT 1").unwrap_err();
    assert!(
        matches!(&err, mysql::Error::MySqlError(m)
            if m.code == 9004 && m.message.contains("every backend in it is drained")),
        "{err:?}"
    );

    admin.query_drop("UNDRAIN BACKEND primary").unwrap();
    assert_eq!(server(&mut admin, "primary").unwrap().0, "up");
    assert_eq!(served_by(&mut c), e.backend_user, "the only backend left serves");
    admin.query_drop("UNDRAIN BACKEND second").unwrap();
    let mut seen = std::collections::BTreeSet::new();
    wait_until("both backends to serve", || {
        seen.insert(served_by(&mut c));
        seen.len() == 2
    });
    let (_, metrics) = e.http("/metrics");
    assert!(
        metrics.contains("funnel_backend_drained{backend=\"primary\",hostgroup=\"default\"} 0"),
        "{metrics}"
    );
    let err = admin.query_drop("UNDRAIN BACKEND nope").unwrap_err();
    assert!(
        matches!(&err, mysql::Error::MySqlError(m) if m.code == 1210 && m.message.contains("no backend named nope")),
        "{err:?}"
    );
}

/// An address nobody listens on (the listener is closed at once).
fn closed_port() -> std::net::SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

fn wait_until(what: &str, done: impl FnMut() -> bool) {
    funnel_testkit::wait_until_within(what, Duration::from_secs(10), done)
}

/// Once a graceful stop begins, new clients are refused while running work
/// finishes: /healthz says so, so that load balancers stop sending clients.
#[test]
fn admin_healthz_fails_while_stopping_gracefully() {
    let e = env("admhealthstop", "");
    let mut busy = e.client();
    busy.query_drop("BEGIN").unwrap();
    let (status, _) = e.http("/healthz");
    assert!(status.contains("200"), "{status}");
    e.admin().query_drop("SHUTDOWN GRACEFUL").unwrap();
    let (status, body) = e.http("/healthz");
    assert!(
        status.contains("503") && body.contains("stopping"),
        "{status} {body}"
    );
    busy.query_drop("COMMIT").unwrap();
}

/// `funnel_backend_up` is the health monitor's verdict: a backend drained
/// for maintenance is not down (alerts on 0 must not fire for it), and a
/// backend that refuses connections is.
#[test]
fn admin_backend_up_metric_follows_health_not_draining() {
    let e = env(
        "admupmetric",
        "monitor:\n  interval: 100ms\n  failures_before_down: 1\n",
    );
    let mut admin = e.admin();
    // A pinned client keeps the drained pool (and its series) alive.
    let mut pinned = e.client();
    pinned.query_drop("SELECT 1 INTO @keep").unwrap();
    admin.query_drop("DRAIN BACKEND primary").unwrap();
    let closed = closed_port();
    admin
        .query_drop(format!("ADD BACKEND dead {closed} nobody x hostgroup spare"))
        .unwrap();
    let up = |name: &str| format!("funnel_backend_up{{backend=\"{name}\",hostgroup=");
    let deadline = Instant::now() + Duration::from_secs(10);
    let body = loop {
        let (_, body) = e.http("/metrics");
        if body.contains(&format!("{}\"spare\"}} 0", up("dead"))) || Instant::now() > deadline {
            break body;
        }
        thread::sleep(Duration::from_millis(50));
    };
    let pools: Vec<mysql::Row> = admin.query("SHOW POOLS").unwrap();
    let statuses: Vec<String> = pools
        .iter()
        .filter(|r| r.get::<String, _>("backend").unwrap() == "primary")
        .map(|r| r.get("status").unwrap())
        .collect();
    assert!(statuses.contains(&"draining".to_string()), "{statuses:?}");
    assert!(
        body.contains(&format!("{}\"default\"}} 1", up("primary"))),
        "{body}"
    );
    assert!(body.contains(&format!("{}\"spare\"}} 0", up("dead"))), "{body}");
}

/// Two admin sessions changing the configuration at once: each change is
/// applied to the other's result, none is lost.
#[test]
fn admin_concurrent_changes_are_all_kept() {
    let e = env("admrace", "pool:\n  min_idle_per_core: 0\n");
    let adders: Vec<_> = ["a", "b"]
        .into_iter()
        .map(|tag| {
            let mut admin = e.admin();
            thread::spawn(move || {
                for i in 0..25 {
                    admin
                        .query_drop(format!("ADD BACKEND {tag}{i} 127.0.0.1:1 u p hostgroup spare"))
                        .unwrap();
                }
            })
        })
        .collect();
    for a in adders {
        a.join().unwrap();
    }
    let mut admin = e.admin();
    let config: Vec<String> = admin.query("SHOW CONFIG").unwrap();
    let added = config
        .iter()
        .filter_map(|l| l.trim_start().strip_prefix("- name: "))
        .filter(|n| {
            let (tag, i) = n.split_at(1);
            (tag == "a" || tag == "b") && i.parse::<u32>().is_ok()
        })
        .count();
    assert_eq!(added, 50, "every ADD BACKEND is kept:\n{}", config.join("\n"));
}

/// Hostile peers on the operator ports: a request line without an end is
/// cut off after 8 KiB instead of filling memory (and answered 400: it is
/// no HTTP request); a port full of connections that send nothing still
/// lets an operator or a health probe in (before, the 33rd connection was
/// refused while they waited out their 10 s), and over the cap of
/// logged-in operators the admin port says 1040.
#[test]
fn admin_and_metrics_ports_bound_what_a_peer_can_hold() {
    let e = env("admhostile", "");
    let addr = e.listeners.metrics.as_ref().unwrap().local_addr();
    let mut endless = std::net::TcpStream::connect(addr).unwrap();
    endless.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let chunk = vec![b'a'; 64 * 1024];
    // The server stops reading at its bound: writes fail or the socket
    // buffers fill, and the server answers and closes.
    for _ in 0..64 {
        if endless.write_all(&chunk).is_err() {
            break;
        }
        if endless.set_nonblocking(true).is_ok() {
            let mut probe = [0u8; 1];
            let answered = matches!(endless.peek(&mut probe), Ok(n) if n > 0);
            endless.set_nonblocking(false).unwrap();
            if answered {
                break;
            }
        }
    }
    let mut answer = Vec::new();
    let _ = endless.read_to_end(&mut answer);
    assert!(
        String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 400"),
        "an endless request line is answered: {:?}",
        String::from_utf8_lossy(&answer[..answer.len().min(80)])
    );
    assert_eq!(e.http("/healthz").0, "HTTP/1.1 200 OK");
    // A request dripped a byte at a time is cut off at its deadline (10 s).
    let mut slow = std::net::TcpStream::connect(addr).unwrap();
    let started = Instant::now();
    write!(slow, "GET /metrics").unwrap();
    while slow.write_all(b"x").is_ok() && started.elapsed() < Duration::from_secs(20) {
        let mut probe = [0u8; 1];
        slow.set_nonblocking(true).unwrap();
        let done = !matches!(slow.peek(&mut probe), Err(ref e) if e.kind() == std::io::ErrorKind::WouldBlock);
        slow.set_nonblocking(false).unwrap();
        if done {
            break;
        }
        thread::sleep(Duration::from_millis(500));
    }
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "a slow request holds its place for {:?}",
        started.elapsed()
    );

    // A full port of connections that never finish their first step
    // (a login, a request) keeps no one out: the oldest makes room.
    let admin_addr = e.listeners.admin.as_ref().unwrap().local_addr();
    let cap = funnel_admin::conn_slots::MAX_CONNECTIONS;
    let silent: Vec<_> = (0..cap)
        .map(|_| {
            let mut s = std::net::TcpStream::connect(admin_addr).unwrap();
            let mut greeting = [0u8; 4];
            s.read_exact(&mut greeting).unwrap(); // served: a greeting comes
            s
        })
        .collect();
    let mut admin = Conn::new(opts(admin_addr.port(), "admin", "secret")).expect("an operator gets in");
    assert!(admin.query_drop("SHOW POOLS").is_ok());
    let silent_http: Vec<_> = (0..cap)
        .map(|_| std::net::TcpStream::connect(addr).unwrap())
        .collect();
    thread::sleep(Duration::from_millis(200));
    assert_eq!(e.http("/healthz").0, "HTTP/1.1 200 OK", "a probe gets in");
    drop((silent, silent_http));

    // Logged-in operators are never cut off: over the cap of them, 1040.
    let mut held: Vec<_> = (1..cap)
        .map(|_| Conn::new(opts(admin_addr.port(), "admin", "secret")).unwrap())
        .collect();
    let mut over = std::net::TcpStream::connect(admin_addr).unwrap();
    over.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut reply = Vec::new();
    let _ = over.read_to_end(&mut reply);
    assert!(
        reply.len() > 7 && reply[4] == 0xff && u16::from_le_bytes([reply[5], reply[6]]) == 1040,
        "over the cap: {reply:?}"
    );
    for c in &mut held {
        assert!(c.query_drop("SHOW POOLS").is_ok(), "the logged-in sessions go on");
    }
    assert!(admin.query_drop("SHOW POOLS").is_ok());
    held.clear();
    drop(admin);
    // Freed places are served again.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match Conn::new(opts(admin_addr.port(), "admin", "secret")) {
            Ok(mut admin) => {
                assert!(admin.query_drop("SHOW POOLS").is_ok());
                break;
            }
            Err(err) if Instant::now() < deadline => {
                let _ = err;
                thread::sleep(Duration::from_millis(100));
            }
            Err(err) => panic!("admin port not served again: {err}"),
        }
    }
}

#[test]
fn admin_set_pool_size_under_load_with_zero_errors_and_pause_resume() {
    let e = env("admset", "pool:\n  max_per_core: 4\n  min_idle_per_core: 1\n");
    let mut admin = e.admin();
    let stop = Arc::new(AtomicBool::new(false));
    let errors = Arc::new(AtomicUsize::new(0));
    let workers: Vec<_> = (0..6)
        .map(|_| {
            let (stop, errors) = (stop.clone(), errors.clone());
            let mut c = e.client();
            thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    if c.query_drop("SELECT SLEEP(0.002)").is_err() {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    thread::sleep(Duration::from_millis(500));
    admin.query_drop("SET pool.max_per_core = 2").unwrap();
    thread::sleep(Duration::from_millis(500));
    // PAUSE: commands wait; RESUME: they go on (well within wait_timeout).
    admin.query_drop("PAUSE").unwrap();
    thread::sleep(Duration::from_millis(300));
    admin.query_drop("RESUME").unwrap();
    thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.join().unwrap();
    }
    assert_eq!(errors.load(Ordering::Relaxed), 0);
    let pools: Vec<mysql::Row> = admin.query("SHOW POOLS").unwrap();
    assert!(pools.iter().all(|r| r.get::<String, _>("max").unwrap() == "2"));
    let err = admin.query_drop("SET pool.max_per_core = 0").unwrap_err();
    assert!(
        matches!(err, mysql::Error::MySqlError(ref m) if m.message.contains("max_per_core")),
        "{err:?}"
    );
    let started = Instant::now();
    let mut c = e.client();
    assert_eq!(c.query_first::<i64, _>("SELECT 1").unwrap(), Some(1));
    assert!(started.elapsed() < Duration::from_secs(2));
}

/// `SET client.max_connections` applies at once: each core's share of it
/// changes for the next logins, and clients over a lowered share stay
/// connected (new ones get 1040 until there is room). Before, it was a
/// restart-only key, and `SET` refused it.
#[test]
fn admin_set_client_max_connections_applies_live() {
    let e = env("admsetmaxconn", "");
    let mut admin = e.admin();
    let port = e.proxy.local_addr().port();
    let open = |n: usize| {
        let (mut held, mut refused) = (Vec::new(), 0);
        for _ in 0..n {
            match Conn::new(opts(port, "app", "apppw")) {
                Ok(c) => held.push(c),
                Err(mysql::Error::MySqlError(m)) if m.code == 1040 => refused += 1,
                Err(other) => panic!("{other:?}"),
            }
        }
        (held, refused)
    };
    // Two cores: a share of one client each.
    admin.query_drop("SET client.max_connections = 2").unwrap();
    let (few, refused) = open(6);
    assert!(
        few.len() <= 2 && refused >= 4,
        "{} in, {refused} refused",
        few.len()
    );
    drop(few);
    admin.query_drop("SET client.max_connections = 200").unwrap();
    let (mut many, refused) = open(20);
    assert_eq!((many.len(), refused), (20, 0));
    let cfg: Vec<String> = admin.query("SHOW CONFIG").unwrap();
    assert!(cfg.iter().any(|l| l.trim() == "max_connections: 200"), "{cfg:?}");
    // Lowered under the clients connected: they stay, new ones wait.
    admin.query_drop("SET client.max_connections = 2").unwrap();
    for c in &mut many {
        assert_eq!(c.query_first::<i64, _>("SELECT 1").unwrap(), Some(1));
    }
    let (none, refused) = open(4);
    assert_eq!((none.len(), refused), (0, 4));
}

/// Backend connections of every core, as `SHOW POOLS` counts them.
fn pool_connections(admin: &mut Conn) -> usize {
    let pools: Vec<mysql::Row> = admin.query("SHOW POOLS").unwrap();
    pools
        .iter()
        .map(|r| {
            ["idle", "leased", "opening"]
                .iter()
                .map(|c| r.get::<String, _>(*c).unwrap().parse::<usize>().unwrap())
                .sum::<usize>()
        })
        .sum()
}

/// Runs `n` `SELECT SLEEP(0.5)` at once, so the pools open `n` connections.
fn burst(e: &Env, n: usize) {
    sleep_on_each((0..n).map(|_| e.client()).collect());
}

/// Runs `SELECT SLEEP(0.5)` on every client at once, and waits for them.
fn sleep_on_each(clients: Vec<Conn>) {
    let running: Vec<_> = clients
        .into_iter()
        .map(|mut c| thread::spawn(move || c.query_drop("SELECT SLEEP(0.5)").unwrap()))
        .collect();
    for r in running {
        r.join().unwrap();
    }
}

/// `pool.idle_timeout: 0s` means never, as configuration.md says (and
/// PgBouncer's `server_idle_timeout = 0`): connections above
/// `min_idle_per_core` stay open, rather than close within the second.
#[test]
fn admin_pool_idle_timeout_zero_keeps_idle_connections() {
    let e = env(
        "admidlezero",
        "pool:\n  max_per_core: 4\n  min_idle_per_core: 1\n  idle_timeout: 0s\n",
    );
    let mut admin = e.admin();
    burst(&e, 4);
    let opened = pool_connections(&mut admin);
    assert!(opened >= 4, "{opened}");
    // The pools' upkeep runs every second.
    thread::sleep(Duration::from_millis(2500));
    assert_eq!(pool_connections(&mut admin), opened);
}

/// Lowering `pool.max_per_core` (live) bounds the connections at once:
/// idle ones above the new size close, and the pool no longer lends more
/// than it, as PgBouncer does when `pool_size` is lowered.
#[test]
fn admin_pool_max_per_core_lowered_closes_the_surplus() {
    let e = env("admshrink", "pool:\n  max_per_core: 4\n  min_idle_per_core: 1\n");
    let mut admin = e.admin();
    burst(&e, 6);
    assert!(pool_connections(&mut admin) >= 4, "the burst opened connections");
    admin.query_drop("SET pool.max_per_core = 1").unwrap();
    // 2 cores, 1 connection each; `idle_timeout` (60 s) reaps nothing here.
    assert!(pool_connections(&mut admin) <= 2);
    let busy = thread::spawn({
        let clients: Vec<Conn> = (0..4).map(|_| e.client()).collect();
        move || sleep_on_each(clients)
    });
    thread::sleep(Duration::from_millis(250));
    assert!(pool_connections(&mut admin) <= 2);
    busy.join().unwrap();
}

/// Seconds since the health monitor last checked backend `primary`.
fn last_check_s_ago(admin: &mut Conn) -> Option<f64> {
    let rows: Vec<mysql::Row> = admin.query("SHOW SERVERS").unwrap();
    let ago: Option<String> = rows[0].get("last_check_s_ago").unwrap();
    ago.map(|s| s.parse().unwrap())
}

/// `monitor.interval` is live: shortened by a reload, the next check
/// comes within the new interval, not after the old one runs out.
#[test]
fn admin_monitor_interval_shortened_applies_at_once() {
    let e = env("admmoninterval", "monitor:\n  interval: 60s\n");
    let mut admin = e.admin();
    let deadline = Instant::now() + Duration::from_secs(10);
    while last_check_s_ago(&mut admin).is_none() {
        assert!(Instant::now() < deadline, "no first check");
        thread::sleep(Duration::from_millis(50));
    }
    admin.query_drop("SET monitor.interval = 1s").unwrap();
    thread::sleep(Duration::from_millis(3500));
    let ago = last_check_s_ago(&mut admin).unwrap();
    assert!(ago < 2.5, "last check {ago} s ago");
}

/// `SHOW CLIENTS` says how many prepared statements each client holds, so
/// the client that leaks them (ERR 1461, operations.md) can be found; a
/// close lowers the count.
#[test]
fn admin_show_clients_counts_prepared_statements() {
    let e = env("admprepared", "");
    let mut admin = e.admin();
    let mut c = e.client();
    let id: u64 = c.query_first("SELECT CONNECTION_ID()").unwrap().unwrap();
    let held = |admin: &mut Conn| -> String {
        let rows: Vec<mysql::Row> = admin.query("SHOW CLIENTS").unwrap();
        let row = rows
            .iter()
            .find(|r| r.get::<String, _>("id").unwrap() == id.to_string())
            .expect("the client is listed");
        row.get("prepared_statements").unwrap()
    };
    assert_eq!(held(&mut admin), "0");
    let stmts: Vec<_> = (1..=3)
        .map(|i| c.prep(format!("SELECT {i} + ?")).unwrap())
        .collect();
    assert_eq!(held(&mut admin), "3");
    c.close(stmts[0].clone()).unwrap();
    // COM_STMT_CLOSE has no reply: the next command shows its effect.
    c.query_drop("SELECT 1").unwrap();
    assert_eq!(held(&mut admin), "2");
}

/// `SET` names what is wrong with a key that the running configuration
/// leaves out (an optional key not set): `client.tls` is refused as a
/// key of the configuration file, which a `RELOAD` reads, not as "no such
/// setting"; an
/// unset `monitor.user` is a real key, refused for its missing password;
/// a misspelt key gets the section's valid keys.
#[test]
fn admin_set_explains_keys_the_running_config_leaves_out() {
    let e = env("admsetunset", "");
    let mut admin = e.admin();
    let refusal = |admin: &mut Conn, sql: &str| {
        let err = admin.query_drop(sql).unwrap_err();
        let mysql::Error::MySqlError(m) = err else {
            panic!("{sql}: {err:?}")
        };
        assert_eq!(m.code, 1210, "{sql}: {}", m.message);
        m.message
    };
    for sql in ["SET client.tls = x", "SET client.tls.cert = /tmp/c.pem"] {
        let m = refusal(&mut admin, sql);
        assert!(m.contains("client.tls") && m.contains("RELOAD"), "{sql}: {m}");
    }
    let m = refusal(&mut admin, "SET monitor.user = checker");
    assert!(m.contains("give both user and password"), "{m}");
    let m = refusal(&mut admin, "SET pool.max_per_cor = 4");
    assert!(m.contains("max_per_cor") && m.contains("max_per_core"), "{m}");
    let cfg: Vec<String> = admin.query("SHOW CONFIG").unwrap();
    assert!(
        !cfg.iter()
            .any(|l| l.contains("checker") || l.trim_start().starts_with("tls:")),
        "{cfg:?}"
    );
}

#[test]
fn admin_add_drain_remove_backend_and_shutdown() {
    let e = env("admbackend", "");
    let db = MariaDb::shared();
    let mut admin = e.admin();
    // An invalid backend (no port) is refused and changes nothing.
    let err = admin.query_drop("ADD BACKEND broken nohostport u p").unwrap_err();
    assert!(
        matches!(err, mysql::Error::MySqlError(ref m) if m.message.contains("host:port")),
        "{err:?}"
    );
    let servers: Vec<mysql::Row> = admin.query("SHOW SERVERS").unwrap();
    assert_eq!(servers.len(), 1, "a refused change changes nothing");
    let backend_user = {
        let cfg: Vec<String> = admin.query("SHOW CONFIG").unwrap();
        cfg.iter()
            .find(|l| l.trim_start().starts_with("user: admbackend"))
            .unwrap()
            .trim()
            .trim_start_matches("user: ")
            .to_string()
    };
    let err = admin
        .query_drop(format!(
            "ADD BACKEND second {} {backend_user} bpw max_replication_lag soon",
            db.addr()
        ))
        .unwrap_err();
    assert!(
        matches!(err, mysql::Error::MySqlError(ref m) if m.message.contains("max_replication_lag soon")),
        "{err:?}"
    );
    // A replica added by hand gets the lag limit its peers have in the file.
    admin
        .query_drop(format!(
            "ADD BACKEND second {} {backend_user} bpw weight 2 max_replication_lag 5s",
            db.addr()
        ))
        .unwrap();
    let servers: Vec<mysql::Row> = admin.query("SHOW SERVERS").unwrap();
    assert_eq!(servers.len(), 2);
    let cfg: Vec<String> = admin.query("SHOW CONFIG").unwrap();
    let second = cfg.iter().position(|l| l.contains("name: second")).unwrap();
    let keys: Vec<&str> = cfg[second..].iter().take(8).map(|l| l.trim()).collect();
    assert!(keys.contains(&"max_replication_lag: 5s"), "{keys:?}");
    admin.query_drop("DRAIN BACKEND primary").unwrap();
    let mut c = e.client();
    for _ in 0..20 {
        assert_eq!(
            c.query_first::<i64, _>("SELECT 1").unwrap(),
            Some(1),
            "the other backend serves"
        );
    }
    admin.query_drop("REMOVE BACKEND primary").unwrap();
    admin.query_drop("SHUTDOWN").unwrap();
    // A connection accepted just as the cores stop may never be greeted:
    // the probe gives up rather than wait for it.
    let probe = || {
        let o = opts(e.proxy.local_addr().port(), "app", "apppw")
            .tcp_connect_timeout(Some(Duration::from_secs(1)))
            .read_timeout(Some(Duration::from_secs(1)));
        Conn::new(o).is_ok()
    };
    wait_until("SHUTDOWN to stop serving", || !probe());
}

#[test]
fn admin_digests_group_statements_by_shape() {
    let e = env("admdigest", "");
    let mut admin = e.admin();
    let mut c = e.client();
    c.query_drop("CREATE TABLE t (id INT PRIMARY KEY, v INT)")
        .unwrap();
    for i in 0..50 {
        c.query_drop(format!("INSERT INTO t VALUES ({i}, {})", i * 2))
            .unwrap();
    }
    for i in 0..30 {
        c.query_drop(format!("SELECT v FROM t WHERE id = {i}")).unwrap();
    }
    let _ = c.query_drop("SELECT nope FROM t WHERE id = 1");
    c.query_drop("SELECT 1 INTO @pinned").unwrap();
    let rows: Vec<mysql::Row> = admin.query("SHOW DIGESTS").unwrap();
    let find = |shape: &str| {
        rows.iter()
            .find(|r| r.get::<String, _>("statement").unwrap() == shape)
            .unwrap_or_else(|| panic!("no digest {shape}: {rows:?}"))
    };
    let ins = find("INSERT INTO t VALUES (?, ?)");
    assert_eq!(ins.get::<String, _>("count").unwrap(), "50");
    let sel = find("SELECT v FROM t WHERE id = ?");
    assert_eq!(sel.get::<String, _>("count").unwrap(), "30");
    assert_eq!(sel.get::<String, _>("rows").unwrap(), "30");
    let bad = find("SELECT nope FROM t WHERE id = ?");
    assert_eq!(bad.get::<String, _>("errors").unwrap(), "1");
    let pin = find("SELECT ? INTO @pinned");
    assert_eq!(pin.get::<String, _>("pinned_clients").unwrap(), "1");
    let mux: Vec<(String, String, String)> = admin.query("SHOW MULTIPLEXING").unwrap();
    assert!(
        mux.iter()
            .any(|(w, k, _)| w == "pinned_since_start_by_digest" && k == "SELECT ? INTO @pinned"),
        "{mux:?}"
    );
}

/// Statements Funnel answers itself are counted under their shape as those
/// a backend runs, and apart in `answered_by_funnel` (ProxySQL's hostgroup
/// -1): a rule's `ok` and `error`, the query cache, a `SET` answered
/// locally, and Funnel's own refusal of a statement. Before, a rule's `ok`
/// and `error` were not counted at all, and cache hits and local `SET`s
/// could not be told from statements a backend ran.
#[test]
fn admin_digests_count_statements_funnel_answered() {
    let e = env(
        "admdigestown",
        "query_rules:\n\
         \x20 - match_prefix: 'SELECT /* cached */'\n    cache_ttl: 60s\n\
         \x20 - match_prefix: 'DELETE FROM audit'\n    ok: 'ignored'\n\
         \x20 - match_prefix: 'DROP TABLE'\n    error: 'not here'\n\
         \x20 - match_prefix: 'SELECT /* held */'\n    delay: 30s\n",
    );
    let mut admin = e.admin();
    let mut c = e.client();
    c.query_drop("CREATE TABLE t (id INT PRIMARY KEY, v INT)")
        .unwrap();
    c.query_drop("INSERT INTO t VALUES (1, 10)").unwrap();
    // One miss runs on the backend; the four after it come from the cache.
    for _ in 0..5 {
        let v: Option<i64> = c
            .query_first("SELECT /* cached */ v FROM t WHERE id = 1")
            .unwrap();
        assert_eq!(v, Some(10));
    }
    for i in 0..3 {
        c.query_drop(format!("DELETE FROM audit WHERE id = {i}")).unwrap();
        assert_eq!(c.info_str(), "ignored");
    }
    for name in ["t", "u"] {
        let err = c.query_drop(format!("DROP TABLE {name}")).unwrap_err();
        assert!(err.to_string().contains("not here"), "{err}");
    }
    // A SET a backend accepted before is answered locally the next times.
    for _ in 0..3 {
        c.query_drop("SET SESSION sql_mode = 'STRICT_ALL_TABLES'")
            .unwrap();
    }
    // A statement Funnel refuses itself (its own error, no rule): a KILL
    // of an id no client has.
    let _ = c.query_drop("KILL QUERY 999999").unwrap_err();
    // One a rule holds back, killed while it waits: ERR 1317 from Funnel.
    let mut held = e.client();
    let id = held.connection_id();
    let waiting = thread::spawn(move || held.query_drop("SELECT /* held */ 1").unwrap_err());
    wait_until("the held statement to wait", || {
        let clients: Vec<mysql::Row> = admin.query("SHOW CLIENTS").unwrap();
        clients.iter().any(|r| {
            r.get::<String, _>("id").unwrap() == id.to_string()
                && r.get::<String, _>("state").unwrap() == "waiting"
        })
    });
    admin.query_drop(format!("KILL QUERY {id}")).unwrap();
    let err = waiting.join().unwrap();
    assert!(
        matches!(&err, mysql::Error::MySqlError(m) if m.code == 1317),
        "{err:?}"
    );

    let rows: Vec<mysql::Row> = admin.query("SHOW DIGESTS").unwrap();
    let counts = |shape: &str| -> (String, String, String, String) {
        let r = rows
            .iter()
            .find(|r| r.get::<String, _>("statement").unwrap() == shape)
            .unwrap_or_else(|| panic!("no digest {shape}: {rows:?}"));
        let get = |col: &str| r.get::<String, _>(col).unwrap();
        (
            get("count"),
            get("answered_by_funnel"),
            get("errors"),
            get("rows"),
        )
    };
    let own = |count: &str, by_funnel: &str, errors: &str, rows: &str| {
        (
            count.to_string(),
            by_funnel.to_string(),
            errors.to_string(),
            rows.to_string(),
        )
    };
    assert_eq!(counts("INSERT INTO t VALUES (?, ?)"), own("1", "0", "0", "0"));
    assert_eq!(
        counts("SELECT v FROM t WHERE id = ?"),
        own("5", "4", "0", "5"),
        "the shape leaves the comment out; four cache hits"
    );
    assert_eq!(counts("DELETE FROM audit WHERE id = ?"), own("3", "3", "0", "0"));
    assert_eq!(counts("DROP TABLE t"), own("1", "1", "1", "0"));
    assert_eq!(counts("DROP TABLE u"), own("1", "1", "1", "0"));
    let set = counts("SET SESSION sql_mode = ?");
    assert_eq!((set.0.as_str(), set.2.as_str()), ("3", "0"), "{set:?}");
    let answered_locally: u64 = e
        .proxy
        .snapshots()
        .iter()
        .map(|s| s.counters.sets_answered_locally)
        .sum();
    assert_eq!(set.1, answered_locally.to_string(), "{set:?}");
    assert!(answered_locally >= 1, "{set:?}");
    assert_eq!(counts("KILL QUERY ?"), own("1", "1", "1", "0"));
    assert_eq!(counts("SELECT ?"), own("1", "1", "1", "0"), "the killed wait");
}

/// One SHOW DIGESTS row's `count`, `answered_by_funnel`, `errors`.
fn digest_counts(admin: &mut Conn, shape: &str) -> Option<(String, String, String)> {
    let rows: Vec<mysql::Row> = admin.query("SHOW DIGESTS").unwrap();
    rows.iter()
        .find(|r| r.get::<String, _>("statement").unwrap() == shape)
        .map(|r| {
            let get = |col: &str| r.get::<String, _>(col).unwrap();
            (get("count"), get("answered_by_funnel"), get("errors"))
        })
}

/// A statement the server refused before it ran, on Funnel's sync of the
/// connection to the session's schema (dropped meanwhile: ERR 1049 passed
/// on as the server's), is counted under its shape with its error, as a
/// backend's answer. Before, such a statement was not counted at all.
#[test]
fn admin_digests_count_a_statement_refused_at_its_connection_sync() {
    let db = MariaDb::shared();
    let schema = db.fresh_database("admdigestsync");
    let gone = db.fresh_database("admdigestsyncgone");
    let backend = format!("{schema}_b");
    db.create_user(&backend, "bpw");
    let yaml = format!(
        "listen: 127.0.0.1:0\ncores: 1\n\
         users:\n  - name: app\n    password: apppw\n    default_schema: {schema}\n\
         backends:\n  - name: primary\n    address: {}\n    user: {backend}\n    password: bpw\n\
         pool:\n  max_per_core: 1\n  min_idle_per_core: 0\n\
         admin:\n  listen: 127.0.0.1:0\n  user: admin\n  password: secret\n",
        db.addr()
    );
    let cfg = Config::from_yaml_str(&yaml).unwrap();
    let proxy = funnel_testkit::funnel::start(cfg.clone());
    let listeners = funnel_admin::start(&cfg, proxy.handle(), None).unwrap();
    let port = proxy.local_addr().port();
    let mut admin = Conn::new(opts(
        listeners.admin.as_ref().unwrap().local_addr().port(),
        "admin",
        "secret",
    ))
    .unwrap();
    let mut a = Conn::new(opts(port, "app", "apppw")).unwrap();
    let mut b = Conn::new(opts(port, "app", "apppw")).unwrap();
    a.query_drop(format!("USE {gone}")).unwrap();
    // The one connection goes back to the default schema for b.
    b.query_drop("SELECT 1").unwrap();
    db.root().query_drop(format!("DROP DATABASE {gone}")).unwrap();
    let err = a.query_drop("SELECT 'a' FROM DUAL").unwrap_err();
    assert!(
        matches!(&err, mysql::Error::MySqlError(m) if m.code == 1049),
        "{err:?}"
    );
    assert_eq!(
        digest_counts(&mut admin, "SELECT ? FROM DUAL"),
        Some(("1".into(), "0".into(), "1".into()))
    );
}

/// Once a transaction's connection failed, Funnel answers the session's
/// statements with ERR 9008 until its `ROLLBACK`: an execute refused so is
/// counted under its statement's shape as answered by Funnel, as a text
/// query is (and so is a prepared `ROLLBACK` Funnel answers). Before, the
/// executes were not counted at all.
#[test]
fn admin_digests_count_executes_refused_after_a_lost_transaction() {
    let e = env("admdigestlost", "");
    let mut admin = e.admin();
    let mut c = e.client();
    c.query_drop("CREATE TABLE t (id INT PRIMARY KEY)").unwrap();
    let stmt = c.prep("SELECT id FROM t WHERE id = ?").unwrap();
    let rollback = c.prep("ROLLBACK").unwrap();
    c.query_drop("BEGIN").unwrap();
    c.query_drop("INSERT INTO t VALUES (5)").unwrap();
    // The server ends Funnel's connections.
    let mut root = MariaDb::shared().root();
    let rows: Vec<(u64, String)> = root
        .query("SELECT ID, USER FROM information_schema.PROCESSLIST")
        .unwrap();
    for (id, _) in rows.iter().filter(|(_, user)| *user == e.backend_user) {
        let _ = root.query_drop(format!("KILL {id}"));
    }
    c.query_drop("SELECT 'lost'").unwrap_err();
    for _ in 0..2 {
        let err = c.exec_drop(&stmt, (1,)).unwrap_err();
        assert!(err.to_string().contains("9008"), "{err}");
    }
    let err = c.query_drop("SELECT 'refused'").unwrap_err();
    assert!(err.to_string().contains("9008"), "{err}");
    c.exec_drop(&rollback, ()).unwrap();
    assert_eq!(
        digest_counts(&mut admin, "SELECT id FROM t WHERE id = ?"),
        Some(("2".into(), "2".into(), "2".into()))
    );
    assert_eq!(
        digest_counts(&mut admin, "ROLLBACK"),
        Some(("1".into(), "1".into(), "0".into()))
    );
}

/// An execute a query rule refuses (a rule a reload added after the
/// prepare) is counted under its statement's shape as answered by Funnel,
/// as a refused text query is. Before, it was not counted at all.
#[test]
fn admin_digests_count_an_execute_a_rule_refuses() {
    let e = env("admdigestruleexec", "");
    let mut admin = e.admin();
    let mut c = e.client();
    c.query_drop("CREATE TABLE t (id INT PRIMARY KEY, v INT)")
        .unwrap();
    let stmt = c.prep("UPDATE t SET v = v + 1 WHERE id = ?").unwrap();
    c.exec_drop(&stmt, (1,)).unwrap();
    let mut cfg = e.proxy.handle().config();
    let rules = "listen: 127.0.0.1:0\nusers:\n  - name: a\n    password: b\n\
                 backends:\n  - name: p\n    address: 127.0.0.1:1\n    user: u\n    password: p\n\
                 query_rules:\n  - match_prefix: UPDATE t\n    error: 'writes to t are paused'\n";
    cfg.query_rules = Config::from_yaml_str(rules).unwrap().query_rules;
    e.proxy.handle().reload(cfg).unwrap();
    let err = c.exec_drop(&stmt, (1,)).unwrap_err();
    assert!(err.to_string().contains("writes to t are paused"), "{err}");
    assert_eq!(
        digest_counts(&mut admin, "UPDATE t SET v = v + ? WHERE id = ?"),
        Some(("2".into(), "1".into(), "1".into()))
    );
}

/// `RESET DIGESTS` (ProxySQL's `stats_mysql_query_digest_reset`) forgets
/// every shape on every core, pins by digest too: the next `SHOW DIGESTS`
/// counts only what ran since.
#[test]
fn admin_reset_digests_starts_counting_again() {
    let e = env("admdigestreset", "");
    let mut admin = e.admin();
    let mut c = e.client();
    for i in 0..5 {
        c.query_drop(format!("SELECT {i} + 1")).unwrap();
    }
    c.query_drop("SELECT 1 INTO @pinned_before").unwrap();
    let count = |admin: &mut Conn, shape: &str| -> Option<String> {
        let rows: Vec<mysql::Row> = admin.query("SHOW DIGESTS").unwrap();
        rows.iter()
            .find(|r| r.get::<String, _>("statement").unwrap() == shape)
            .map(|r| r.get::<String, _>("count").unwrap())
    };
    assert_eq!(count(&mut admin, "SELECT ? + ?").as_deref(), Some("5"));
    let reply = admin.query_iter("RESET DIGESTS").unwrap().info_str().into_owned();
    assert_eq!(reply, "digests reset");
    assert_eq!(count(&mut admin, "SELECT ? + ?"), None);
    assert_eq!(count(&mut admin, "SELECT ? INTO @pinned_before"), None);
    let mux: Vec<(String, String, String)> = admin.query("SHOW MULTIPLEXING").unwrap();
    assert!(
        !mux.iter().any(|(w, _, _)| w == "pinned_since_start_by_digest"),
        "{mux:?}"
    );
    c.query_drop("SELECT 7 + 1").unwrap();
    assert_eq!(count(&mut admin, "SELECT ? + ?").as_deref(), Some("1"));
}

/// A statement under way at `RESET DIGESTS` whose shape its core knew
/// (so its session kept no text of it): `SHOW CLIENTS` still names it, and
/// when it ends it is counted under its shape. Before, the reset took the
/// shape away: `SHOW CLIENTS` showed `NULL` and `SHOW DIGESTS` a row with
/// an empty statement.
#[test]
fn admin_reset_digests_keeps_the_shape_of_a_running_statement() {
    let e = env("admdigestrun", "");
    let mut admin = e.admin();
    let mut c = e.client();
    c.query_drop("SELECT SLEEP(0)").unwrap();
    let running = std::thread::spawn(move || {
        c.query_drop("SELECT SLEEP(2)").unwrap();
    });
    let statements = |admin: &mut Conn| -> Vec<Option<String>> {
        let rows: Vec<mysql::Row> = admin.query("SHOW CLIENTS").unwrap();
        rows.iter()
            .map(|r| r.get::<Option<String>, _>("statement").unwrap())
            .collect()
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !statements(&mut admin).contains(&Some("SELECT SLEEP(?)".into())) {
        assert!(
            std::time::Instant::now() < deadline,
            "{:?}",
            statements(&mut admin)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    admin.query_drop("RESET DIGESTS").unwrap();
    assert!(
        statements(&mut admin).contains(&Some("SELECT SLEEP(?)".into())),
        "{:?}",
        statements(&mut admin)
    );
    let rows: Vec<mysql::Row> = admin.query("SHOW DIGESTS").unwrap();
    assert!(
        rows.is_empty(),
        "a running statement is counted once it ends: {rows:?}"
    );
    running.join().unwrap();
    let rows: Vec<mysql::Row> = admin.query("SHOW DIGESTS").unwrap();
    let shapes: Vec<(String, String)> = rows
        .iter()
        .map(|r| (r.get("statement").unwrap(), r.get("count").unwrap()))
        .collect();
    assert_eq!(shapes, vec![("SELECT SLEEP(?)".to_string(), "1".to_string())]);
}

#[test]
fn admin_reload_from_the_file_and_graceful_shutdown() {
    let db = MariaDb::shared();
    let schema = db.fresh_database("admreload");
    db.create_user("admreload_b", "bpw");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("funnel.yaml");
    let yaml = |max: u32| {
        format!(
            "listen: 127.0.0.1:0\ncores: 1\n\
             users:\n  - name: app\n    password: apppw\n    default_schema: {schema}\n\
             backends:\n  - name: primary\n    address: {}\n    user: admreload_b\n    password: bpw\n\
             pool:\n  max_per_core: {max}\n  min_idle_per_core: 1\n\
             admin:\n  listen: 127.0.0.1:0\n  user: admin\n  password: secret\n\
             monitor:\n  interval: 100ms\n",
            db.addr()
        )
    };
    std::fs::write(&path, yaml(3)).unwrap();
    let cfg = Config::load(&path).unwrap();
    let proxy = funnel_testkit::funnel::start(cfg.clone());
    let listeners = funnel_admin::start(&cfg, proxy.handle(), Some(path.clone())).unwrap();
    let admin_port = listeners.admin.as_ref().unwrap().local_addr().port();
    let mut admin = Conn::new(opts(admin_port, "admin", "secret")).unwrap();
    std::fs::write(&path, yaml(5)).unwrap();
    admin.query_drop("RELOAD").unwrap();
    let pools: Vec<mysql::Row> = admin.query("SHOW POOLS").unwrap();
    assert_eq!(pools[0].get::<String, _>("max").unwrap(), "5");
    // The monitor checks every 100 ms; a loaded box may take longer.
    wait_until("the monitor's first report", || {
        let servers: Vec<mysql::Row> = admin.query("SHOW SERVERS").unwrap();
        servers[0]
            .get::<Option<String>, _>("last_check_s_ago")
            .unwrap()
            .is_some()
    });
    std::fs::write(&path, "listen: [broken").unwrap();
    let err = admin.query_drop("RELOAD").unwrap_err();
    assert!(
        matches!(err, mysql::Error::MySqlError(ref m) if m.message.contains("line")),
        "{err:?}"
    );

    // Graceful: new clients are refused at once, idle ones are closed, one
    // inside a transaction finishes it.
    let port = proxy.local_addr().port();
    let mut idle = Conn::new(opts(port, "app", "apppw").read_timeout(Some(Duration::from_secs(3)))).unwrap();
    let mut busy = Conn::new(opts(port, "app", "apppw")).unwrap();
    busy.query_drop("BEGIN").unwrap();
    // One client is still logging in when the stop begins.
    let mut late = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    late.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let (_, greeting) = funnel_testkit::mini_client::read_raw_packet(&mut late).unwrap();
    admin.query_drop("SHUTDOWN GRACEFUL").unwrap();
    thread::sleep(Duration::from_millis(200));
    let logged_in = native_login(&mut late, &greeting, "app", "apppw");
    assert_eq!(logged_in[0], 0x00, "the late login completes: {logged_in:?}");
    let started = Instant::now();
    let mut rest = Vec::new();
    let _ = late.read_to_end(&mut rest);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "a client that logged in during the stop is closed when idle, not kept to the deadline"
    );
    let quick = opts(port, "app", "apppw").tcp_connect_timeout(Some(Duration::from_secs(1)));
    assert!(
        Conn::new(quick).is_err(),
        "no new clients during a graceful shutdown"
    );
    assert!(idle.query_drop("SELECT 1").is_err(), "idle clients are closed");
    assert_eq!(
        busy.query_first::<i64, _>("SELECT 7").unwrap(),
        Some(7),
        "the transaction carries on"
    );
    busy.query_drop("COMMIT").unwrap();
    drop(busy);
    let deadline = Instant::now() + Duration::from_secs(5);
    while proxy.snapshots().len() == 1 {
        assert!(
            Instant::now() < deadline,
            "did not stop once the last client left"
        );
        thread::sleep(Duration::from_millis(50));
    }
}

/// A reload from the file takes the file's `drained`: a backend drained
/// through the admin interface comes back when the file does not drain
/// it, and stays drained (through later admin changes too) when it does.
#[test]
fn admin_reload_takes_drained_from_the_file() {
    let db = MariaDb::shared();
    let schema = db.fresh_database("admreloaddrain");
    db.create_user("admreloaddrain_b", "bpw");
    db.create_user("admreloaddrain_c", "cpw");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("funnel.yaml");
    let yaml = |drained: &str| {
        format!(
            "listen: 127.0.0.1:0\ncores: 2\n\
             users:\n  - name: app\n    password: apppw\n    default_schema: {schema}\n\
             backends:\n  - name: primary\n    address: {addr}\n    user: admreloaddrain_b\n    password: bpw\n{drained}\
             \x20 - name: second\n    address: {addr}\n    user: admreloaddrain_c\n    password: cpw\n\
             admin:\n  listen: 127.0.0.1:0\n  user: admin\n  password: secret\n\
             monitor:\n  interval: 100ms\n",
            addr = db.addr()
        )
    };
    std::fs::write(&path, yaml("")).unwrap();
    let cfg = Config::load(&path).unwrap();
    let proxy = funnel_testkit::funnel::start(cfg.clone());
    let listeners = funnel_admin::start(&cfg, proxy.handle(), Some(path.clone())).unwrap();
    let admin_port = listeners.admin.as_ref().unwrap().local_addr().port();
    let mut admin = Conn::new(opts(admin_port, "admin", "secret")).unwrap();
    let mut c = Conn::new(opts(proxy.local_addr().port(), "app", "apppw")).unwrap();
    let only_second = |c: &mut Conn| (0..20).all(|_| served_by(c) == "admreloaddrain_c");

    admin.query_drop("DRAIN BACKEND primary").unwrap();
    // An opening started before the drain may still be on its way.
    wait_until("primary to be drained", || {
        server(&mut admin, "primary") == Some(("drained".into(), 0))
    });
    admin.query_drop("RELOAD").unwrap();
    assert_eq!(
        server(&mut admin, "primary").unwrap().0,
        "up",
        "the file does not drain it"
    );
    wait_until("primary to serve again", || {
        served_by(&mut c) == "admreloaddrain_b"
    });

    std::fs::write(&path, yaml("    drained: true\n")).unwrap();
    admin.query_drop("RELOAD").unwrap();
    admin.query_drop("SET backlog.wait_timeout = 5s").unwrap();
    wait_until("primary to be drained", || {
        server(&mut admin, "primary") == Some(("drained".into(), 0))
    });
    assert!(only_second(&mut c), "drained by the file, through a later SET");
}

/// `PAUSE` answers only once the command running when it came has
/// finished, as PgBouncer's does, so a failover can start right after it;
/// new commands then wait until `RESUME`.
#[test]
fn admin_pause_answers_once_running_commands_finish() {
    let e = env(
        "admpause",
        "pool:\n  max_per_core: 2\n  min_idle_per_core: 1\nbacklog:\n  wait_timeout: 10s\n",
    );
    let mut admin = e.admin();
    let mut late = e.client();
    let mut slow = e.client();
    let sent = Instant::now();
    let sleeper = thread::spawn(move || slow.query_drop("SELECT SLEEP(1)").unwrap());
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let clients: Vec<mysql::Row> = admin.query("SHOW CLIENTS").unwrap();
        if clients
            .iter()
            .any(|r| r.get::<String, _>("state").as_deref() == Some("running"))
        {
            break;
        }
        assert!(Instant::now() < deadline, "the SLEEP never showed as running");
        thread::sleep(Duration::from_millis(10));
    }
    admin.query_drop("PAUSE").unwrap();
    let answered = sent.elapsed();
    let info = admin.info_str().into_owned();
    assert!(
        answered >= Duration::from_millis(950),
        "PAUSE answered {answered:?} after a SLEEP(1) began, before it ended"
    );
    assert!(info.contains("no command running"), "{info}");
    sleeper.join().unwrap();

    // Paused: a new command waits for RESUME.
    let waiter = thread::spawn(move || {
        let started = Instant::now();
        assert_eq!(late.query_first::<i64, _>("SELECT 1").unwrap(), Some(1));
        started.elapsed()
    });
    thread::sleep(Duration::from_millis(400));
    admin.query_drop("RESUME").unwrap();
    let waited = waiter.join().unwrap();
    assert!(
        waited >= Duration::from_millis(300),
        "ran during the pause: {waited:?}"
    );
}

/// An operator's `KILL` on the admin port reaches any user's client on any
/// core: `KILL QUERY id` stops the statement it runs (the client goes on),
/// `KILL id` ends the client. An id no client has gets ERR 1094, and a
/// malformed `KILL` the usage.
#[test]
fn admin_kill_stops_a_statement_or_ends_a_client_on_any_core() {
    let e = env("admkill", "");
    let mut admin = e.admin();
    // One client on each core (the kernel spreads connections between the
    // cores' listeners by hash, so a few tries may land on one).
    let mut clients: Vec<(Conn, u32)> = Vec::new();
    for _ in 0..200 {
        let mut c = e.client();
        let id: u32 = c.query_first("SELECT CONNECTION_ID()").unwrap().unwrap();
        if clients.iter().all(|(_, other)| other >> 24 != id >> 24) {
            clients.push((c, id));
        }
        if clients.len() == 2 {
            break;
        }
    }
    assert_eq!(clients.len(), 2, "clients on both cores");

    for (c, id) in clients.iter_mut() {
        let id = *id;
        let mut sleeper = e.client();
        let sleeper_id: u32 = sleeper.query_first("SELECT CONNECTION_ID()").unwrap().unwrap();
        let started = Instant::now();
        let sleeping = thread::spawn(move || {
            let r: Result<Option<u64>, _> = sleeper.query_first("SELECT SLEEP(30)");
            (r.map_err(|e| e.to_string()), sleeper)
        });
        // The statement must be running on the server before the KILL.
        wait_until("the SLEEP to run", || {
            let clients: Vec<mysql::Row> = admin.query("SHOW CLIENTS").unwrap();
            clients.iter().any(|r| {
                r.get::<String, _>("id").unwrap() == sleeper_id.to_string()
                    && r.get::<String, _>("state").unwrap() == "running"
            })
        });
        admin.query_drop(format!("KILL QUERY {sleeper_id}")).unwrap();
        let (slept, mut sleeper) = sleeping.join().unwrap();
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "KILL QUERY stopped the SLEEP: {slept:?} after {:?}",
            started.elapsed()
        );
        assert_eq!(
            sleeper.query_first::<u64, _>("SELECT 5").unwrap(),
            Some(5),
            "the client goes on"
        );

        admin.query_drop(format!("KILL {id}")).unwrap();
        assert!(c.query_drop("SELECT 1").is_err(), "client {id} was ended");
    }

    let unknown = admin.query_drop("KILL 123456").unwrap_err().to_string();
    assert!(unknown.contains("1094"), "{unknown}");
    for bad in [
        "KILL",
        "KILL CONNECTION",
        "KILL QUERY x",
        "KILL USER app",
        "KILL -1",
    ] {
        let err = admin.query_drop(bad).unwrap_err().to_string();
        assert!(
            err.contains("1064") && err.contains("Usage: KILL"),
            "{bad}: {err}"
        );
    }
}

/// `SHOW CLIENTS` shows the shape of the statement each busy client runs
/// (literals as `?`), also while it waits for a backend connection, so an
/// operator can tell what to `KILL`; an idle client shows none.
#[test]
fn admin_show_clients_shows_the_running_statement() {
    let e = env(
        "admstatement",
        "pool:\n  max_per_core: 1\n  min_idle_per_core: 0\n",
    );
    let mut admin = e.admin();
    let statement_of = |admin: &mut Conn, id: u32| -> Option<(String, Option<String>)> {
        let rows: Vec<mysql::Row> = admin.query("SHOW CLIENTS").unwrap();
        rows.iter()
            .find(|r| r.get::<String, _>("id").unwrap() == id.to_string())
            .map(|r| (r.get("state").unwrap(), r.get("statement").unwrap()))
    };
    let mut sleeper = e.client();
    let sleeper_id: u32 = sleeper.query_first("SELECT CONNECTION_ID()").unwrap().unwrap();
    // One on the sleeper's core, to wait for its one connection.
    let on_sleepers_core = || loop {
        let mut c = e.client();
        let id: u32 = c.query_first("SELECT CONNECTION_ID()").unwrap().unwrap();
        if id >> 24 == sleeper_id >> 24 {
            break (c, id);
        }
    };
    let (mut waiter, waiter_id) = on_sleepers_core();
    // And one that executes a statement it prepared before.
    let (mut executor, executor_id) = on_sleepers_core();
    let doubled = executor.prep("SELECT ? * 2").unwrap();
    assert_eq!(
        statement_of(&mut admin, sleeper_id),
        Some(("idle".to_string(), None))
    );
    let sleeping = thread::spawn(move || {
        sleeper.query_drop("SELECT SLEEP(3), 'secret literal'").unwrap();
        sleeper
    });
    wait_until("the SLEEP to run", || {
        statement_of(&mut admin, sleeper_id).is_some_and(|(state, _)| state == "running")
    });
    let waiting = thread::spawn(move || {
        let _: Option<u64> = waiter.query_first("SELECT 42 + 1").unwrap();
        waiter
    });
    let executing = thread::spawn(move || {
        let _: Option<u64> = executor.exec_first(&doubled, (21,)).unwrap();
        executor
    });
    wait_until("the other two to wait for the connection", || {
        [waiter_id, executor_id]
            .iter()
            .all(|id| statement_of(&mut admin, *id).is_some_and(|(state, _)| state == "waiting"))
    });
    let (_, running) = statement_of(&mut admin, sleeper_id).unwrap();
    assert_eq!(running.as_deref(), Some("SELECT SLEEP(?), ?"), "no literal shown");
    let (_, waiting_for) = statement_of(&mut admin, waiter_id).unwrap();
    assert_eq!(waiting_for.as_deref(), Some("SELECT ? + ?"));
    let (_, executing_while_waiting) = statement_of(&mut admin, executor_id).unwrap();
    assert_eq!(executing_while_waiting.as_deref(), Some("SELECT ? * ?"));
    // Kept open: idle now, they show no statement.
    let _sleeper = sleeping.join().unwrap();
    let _waiter = waiting.join().unwrap();
    let _executor = executing.join().unwrap();
    wait_until("all three to be idle", || {
        let now: Vec<_> = [sleeper_id, waiter_id, executor_id]
            .iter()
            .map(|id| statement_of(&mut admin, *id))
            .collect();
        now.iter().all(|s| s == &Some(("idle".to_string(), None)))
    });
}

/// `SET log.level` changes the log's level at once where the process's
/// log can change live (the binary's can; `binary.rs` shows its lines), and
/// `SHOW CONFIG` shows the new level; where it cannot, the key is refused
/// as one a restart applies, as before.
#[test]
fn admin_set_log_level_applies_live_where_the_log_can_change() {
    let e = env("admsetlog", "");
    let mut admin = e.admin();
    let err = admin.query_drop("SET log.level = debug").unwrap_err();
    assert!(err.to_string().contains("restart"), "{err}");

    let (tx, rx) = std::sync::mpsc::channel();
    e.proxy
        .handle()
        .set_log_level_setter(Box::new(move |level| tx.send(level).unwrap()));
    admin.query_drop("SET log.level = debug").unwrap();
    assert_eq!(rx.try_recv(), Ok(funnel_config::LogLevel::Debug));
    let cfg: Vec<String> = admin.query("SHOW CONFIG").unwrap();
    assert!(cfg.iter().any(|l| l.contains("level: debug")), "{cfg:?}");
    // The same level again changes nothing.
    admin.query_drop("SET log.level = debug").unwrap();
    assert!(rx.try_recv().is_err());
    let err = admin.query_drop("SET log.level = loud").unwrap_err();
    assert!(err.to_string().contains("log.level"), "{err}");
}

/// `RECONNECT BACKEND name` (PgBouncer's `RECONNECT`): the backend's idle
/// connections close at once and the ones in use once their clients are
/// done, so the next commands run on new connections (that read the
/// server's settings anew) while an open transaction keeps its own to
/// its end.
#[test]
fn admin_reconnect_replaces_a_backends_connections_after_their_clients_are_done() {
    let e = env("admreconnect", "");
    let mut admin = e.admin();
    let thread = |c: &mut Conn| {
        c.query_first::<u64, _>("SELECT @@pseudo_thread_id")
            .unwrap()
            .unwrap()
    };
    let on_server = |id: u64| {
        MariaDb::shared()
            .query_first::<i64>(&format!(
                "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE ID = {id}"
            ))
            .unwrap()
            == 1
    };
    // The transaction's connection first: the other client's, taken
    // after, is then another one, idle once its statement is done.
    let mut tx = e.client();
    tx.query_drop("BEGIN").unwrap();
    let held = thread(&mut tx);
    let mut c = e.client();
    let before = thread(&mut c);
    assert_ne!(before, held);
    let reply = admin
        .query_iter("RECONNECT BACKEND primary")
        .unwrap()
        .info_str()
        .into_owned();
    assert!(reply.starts_with("reconnecting primary"), "{reply}");
    assert_ne!(thread(&mut c), before, "a new connection");
    funnel_testkit::wait_until_within("the idle connection closed", Duration::from_secs(5), || {
        !on_server(before)
    });
    assert_eq!(thread(&mut tx), held, "the transaction keeps its connection");
    tx.query_drop("COMMIT").unwrap();
    funnel_testkit::wait_until_within(
        "the transaction's connection closed",
        Duration::from_secs(5),
        || !on_server(held),
    );
    assert_ne!(thread(&mut tx), held);
    let err = admin.query_drop("RECONNECT BACKEND nosuch").unwrap_err();
    assert!(err.to_string().contains("no backend named"), "{err}");
    let reply = admin.query_iter("RECONNECT").unwrap().info_str().into_owned();
    assert!(reply.starts_with("reconnecting every backend"), "{reply}");
}

/// A connection still opening when `RECONNECT` comes (its server took the
/// TCP connection, and made the session's variables, before) is replaced
/// too, as PgBouncer's `RECONNECT` takes connections still logging in:
/// the first command runs on it, the next on a new one.
#[test]
fn admin_reconnect_replaces_a_connection_that_was_opening() {
    let db = MariaDb::start();
    db.create_user("reopen_b", "bpw");
    let yaml = format!(
        "listen: 127.0.0.1:0\ncores: 1\n\
         users:\n  - name: app\n    password: apppw\n\
         backends:\n  - name: primary\n    address: {}\n    user: reopen_b\n    password: bpw\n\
         pool:\n  min_idle_per_core: 0\n\
         admin:\n  listen: 127.0.0.1:0\n  user: admin\n  password: secret\n",
        db.addr()
    );
    let cfg = Config::from_yaml_str(&yaml).unwrap();
    let proxy = funnel_testkit::funnel::start(cfg.clone());
    let listeners = funnel_admin::start(&cfg, proxy.handle(), None).unwrap();
    let admin_port = listeners.admin.as_ref().unwrap().local_addr().port();
    let mut admin = Conn::new(opts(admin_port, "admin", "secret")).unwrap();
    let mut c = Conn::new(opts(proxy.local_addr().port(), "app", "apppw")).unwrap();
    let thread = |c: &mut Conn| {
        c.query_first::<u64, _>("SELECT @@pseudo_thread_id")
            .unwrap()
            .unwrap()
    };
    // Holds the connection the drivers' logins left idle, so the next
    // command needs a new one.
    let mut tx = Conn::new(opts(proxy.local_addr().port(), "app", "apppw")).unwrap();
    tx.query_drop("BEGIN").unwrap();
    thread(&mut tx);
    db.pause();
    let first = std::thread::spawn(move || {
        let id = thread(&mut c);
        (c, id)
    });
    // The pool's connection waits for the frozen server's greeting.
    funnel_testkit::wait_until_within("a connection opening", Duration::from_secs(5), || {
        proxy.snapshots()[0].pools.iter().any(|p| p.counts.opening > 0)
    });
    let reply = admin.query_iter("RECONNECT").unwrap().info_str().into_owned();
    assert!(reply.contains(": 0 idle"), "{reply}");
    db.resume();
    let (mut c, opened_across) = first.join().unwrap();
    assert_ne!(
        thread(&mut c),
        opened_across,
        "the connection that was opening at RECONNECT is replaced"
    );
}

/// `SHOW USERS` counts each user's clients by state and the pinned ones,
/// with its limits (NULL for none) and hostgroups.
#[test]
fn admin_show_users_counts_each_users_clients() {
    let e = env("admusers", "");
    let mut admin = e.admin();
    let app = |admin: &mut Conn| -> Vec<Option<String>> {
        let rows: Vec<mysql::Row> = admin.query("SHOW USERS").unwrap();
        assert_eq!(rows.len(), 1, "one configured user");
        let r = &rows[0];
        [
            "user",
            "clients",
            "idle",
            "waiting",
            "running",
            "pinned",
            "max_connections",
            "default_hostgroup",
            "read_hostgroup",
        ]
        .iter()
        .map(|c| r.get::<Option<String>, _>(*c).unwrap())
        .collect()
    };
    let s = |v: &str| Some(v.to_string());
    assert_eq!(
        app(&mut admin),
        [
            s("app"),
            s("0"),
            s("0"),
            s("0"),
            s("0"),
            s("0"),
            None,
            s("default"),
            None
        ]
    );
    let mut idle = e.client();
    idle.query_drop("SELECT 1").unwrap();
    let mut pinned = e.client();
    pinned.query_drop("SELECT GET_LOCK('admusers', 0)").unwrap();
    let mut busy = e.client();
    let running = thread::spawn(move || busy.query_drop("SELECT SLEEP(2)").unwrap());
    wait_until("the sleep to run", || app(&mut e.admin())[4] == s("1"));
    assert_eq!(
        app(&mut admin),
        [
            s("app"),
            s("3"),
            s("2"),
            s("0"),
            s("1"),
            s("1"),
            None,
            s("default"),
            None
        ]
    );
    running.join().unwrap();
    drop((idle, pinned));
    wait_until("the clients to leave", || app(&mut e.admin())[1] == s("0"));
}
