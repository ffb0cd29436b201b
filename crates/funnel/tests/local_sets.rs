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
    e
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
