//! User variables through Funnel: tracked and replayed, so clients that set
//! and read them keep sharing a small pool, while the forms Funnel cannot
//! track still pin. (Value and type fidelity against a direct connection is
//! in session.rs.)

use std::thread;

use funnel_config::Config;
use funnel_engine::Proxy;
use funnel_testkit::client_opts as opts;
use funnel_testkit::MariaDb;
use mysql::prelude::Queryable;
use mysql::Conn;

struct Env {
    proxy: Proxy,
    listeners: funnel_admin::Listeners,
}

fn env(prefix: &str, pool: usize) -> Env {
    let db = MariaDb::shared();
    let schema = db.fresh_database(prefix);
    let backend = format!("{schema}_b");
    db.create_user(&backend, "bpw");
    let yaml = format!(
        "listen: 127.0.0.1:0\ncores: 1\n\
         users:\n  - name: app\n    password: apppw\n    default_schema: {schema}\n\
         \x20 - name: other\n    password: opw\n    default_schema: {schema}\n\
         backends:\n  - name: primary\n    address: {}\n    user: {backend}\n    password: bpw\n\
         pool:\n  max_per_core: {pool}\n  min_idle_per_core: 1\nbacklog:\n  wait_timeout: 5s\n\
         admin:\n  listen: 127.0.0.1:0\n  user: admin\n  password: secret\n",
        db.addr()
    );
    let cfg = Config::from_yaml_str(&yaml).unwrap();
    let proxy = funnel_testkit::funnel::start(cfg.clone());
    let listeners = funnel_admin::start(&cfg, proxy.handle(), None).unwrap();
    Env { proxy, listeners }
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
