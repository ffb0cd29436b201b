//! MariaDB Connector/J (the JDBC driver, 2.7.6 as Debian's
//! `libmariadb-java` ships it) through Funnel: what it does at login,
//! against MariaDB directly and through a Funnel.

use funnel_engine::Proxy;
use funnel_testkit::MariaDb;

const USER: &str = "jdbc";
const PASSWORD: &str = "jdbcpw";

/// The shared server, with [`USER`] (for direct connections) made once.
fn server() -> &'static MariaDb {
    static USER_MADE: std::sync::Once = std::sync::Once::new();
    let db = MariaDb::shared();
    USER_MADE.call_once(|| db.create_user(USER, PASSWORD));
    db
}

/// Three fresh schemas.
fn schemas(prefix: &str) -> [String; 3] {
    let db = server();
    [0, 1, 2].map(|_| db.fresh_database(prefix))
}

/// A Funnel on one core with two backend connections in front of the
/// shared server, its client [`USER`] in `schema`.
fn funnel(schema: &str) -> Proxy {
    funnel_with(schema, 2)
}

/// [`funnel`] with `max` backend connections.
fn funnel_with(schema: &str, max: u32) -> Proxy {
    let db = server();
    let backend = format!("{schema}_b");
    db.create_user(&backend, "bpw");
    let yaml = format!(
        "listen: 127.0.0.1:0\ncores: 1\n\
         users:\n  - name: {USER}\n    password: {PASSWORD}\n    default_schema: {schema}\n\
         backends:\n  - name: primary\n    address: {}\n    user: {backend}\n    password: bpw\n\
         pool:\n  max_per_core: {max}\n  min_idle_per_core: {max}\n",
        db.addr()
    );
    let cfg = funnel_config::Config::from_yaml_str(&yaml).unwrap();
    funnel_testkit::funnel::start(cfg)
}

/// Connector/J logs in with `CLIENT_IGNORE_SPACE`, to which the server
/// adds `IGNORE_SPACE` to the session's `sql_mode`, then runs `SET ...,
/// sql_mode = concat(@@sql_mode, ',STRICT_TRANS_TABLES')`. Funnel put
/// another session's `sql_mode` back with `DEFAULT`, the global value
/// without `IGNORE_SPACE`: every connector session but the first on a
/// connection lost it (`f(x)` and `f (x)` then parse differently). And
/// `DEFAULT` and `COM_RESET_CONNECTION` (a client's or Funnel's own) do
/// leave the global value, which Funnel took for the login's.
#[test]
fn connector_java_ignore_space_login_keeps_its_sql_mode_on_a_shared_connection() {
    use funnel_protocol::tracker::Expect;
    use funnel_protocol::Capabilities;
    use funnel_testkit::mini_client::MiniClient;
    let db = server();
    let run = |addr, schema: &str| {
        let client = || {
            MiniClient::connect_with(
                addr,
                USER,
                PASSWORD,
                Some(schema),
                Capabilities::CLIENT_IGNORE_SPACE,
            )
            .unwrap()
        };
        let mode = |c: &mut MiniClient| format!("{:?}", c.query("SELECT @@sql_mode").unwrap().rows());
        let mut out = Vec::new();
        for _ in 0..2 {
            // A session that sets its own sql_mode on the one connection...
            let mut c = client();
            c.query("SET sql_mode = 'ANSI_QUOTES'").unwrap();
            out.push(mode(&mut c));
            drop(c);
            // ... then a fresh one gets the login's, and `DEFAULT` the global one.
            let mut c = client();
            out.push(mode(&mut c));
            c.query("SET sql_mode = DEFAULT").unwrap();
            out.push(mode(&mut c));
            drop(c);
            let mut c = client();
            out.push(mode(&mut c));
            // The server's reset leaves the global value too.
            c.roundtrip(&[0x1f], Expect::Status).unwrap();
            out.push(mode(&mut c));
            drop(c);
            // A failed insert: Funnel resets the connection after it.
            let mut c = client();
            out.push(format!("{:?}", c.query("INSERT INTO t VALUES (1), (1)").err()));
            drop(c);
            std::thread::sleep(std::time::Duration::from_millis(300));
            out.push(mode(&mut client()));
        }
        out
    };
    let direct = {
        let s = schemas("cjspace");
        db.exec(&format!("CREATE TABLE {}.t (id INT PRIMARY KEY)", s[0]));
        run(db.addr(), &s[0])
    };
    assert!(direct[1].contains("IGNORE_SPACE"), "{direct:?}");
    assert!(!direct[2].contains("IGNORE_SPACE"), "{direct:?}");
    let s = schemas("cjspace");
    db.exec(&format!("CREATE TABLE {}.t (id INT PRIMARY KEY)", s[0]));
    let proxy = funnel_with(&s[0], 1);
    assert_eq!(run(proxy.local_addr(), &s[0]), direct);
    let resets: u64 = proxy.snapshots().iter().map(|s| s.counters.backend_resets).sum();
    assert!(resets >= 2, "{resets}");
}

/// Connector/J logs in with the collation the server greets with when
/// it is a `utf8mb4` one, else with `utf8mb4_unicode_ci`: Funnel greeted
/// with `utf8mb4_general_ci` whatever the server's, so the connector's
/// sessions compared strings otherwise through Funnel ('ß' = 'ss' is true
/// under `utf8mb4_unicode_ci`). Funnel greets with a backend's collation.
#[test]
fn connector_java_greeting_carries_the_servers_collation() {
    use funnel_protocol::handshake::HandshakeV10;
    let db = server();
    let s = schemas("cjgreet");
    let proxy = funnel(&s[0]);
    let greeting = |addr| {
        let mut c = std::net::TcpStream::connect(addr).unwrap();
        let (_, p) = funnel_testkit::mini_client::read_raw_packet(&mut c).unwrap();
        HandshakeV10::parse(&p).unwrap().charset
    };
    let direct = greeting(db.addr());
    assert_eq!(greeting(proxy.local_addr()), direct);
}
