//! MariaDB Connector/J (the JDBC driver, 2.7.6 as Debian's
//! `libmariadb-java` ships it) through Funnel: `connectors/ConnectorJ.java`
//! runs its scenarios against the server directly and through a Funnel
//! with two backend connections, and both must print the same lines.
//!
//! Checked (several clients at once where sessions share connections):
//! the connector's own set-up queries at connect, `isValid` (`COM_PING`),
//! `setCatalog` (`COM_INIT_DB`), `setAutoCommit(false)` with commit,
//! rollback and savepoints, `setTransactionIsolation`, `setReadOnly` with
//! `assureReadOnly=true` (`SET SESSION TRANSACTION READ ONLY`), each
//! client seeing only its own; server-side (`useServerPrepStmts=true`) and
//! client-side prepared statements, 30 distinct texts per client, with
//! metadata, `getGeneratedKeys` and errors; `executeBatch` plain, with
//! `rewriteBatchedStatements=true`, with `useBulkStmts=true` (MariaDB's
//! `COM_STMT_BULK_EXECUTE`: update counts `SUCCESS_NO_INFO`, and a batch
//! with a failing row is one statement that applies no row) and
//! server-side; `setQueryTimeout` (`SET STATEMENT max_statement_time=..
//! FOR ..`); `Statement.cancel()` from another thread (`KILL QUERY` on a
//! new connection, with Funnel's id); `setFetchSize` streaming while other
//! clients query; `allowMultiQueries=true`; `useCompression=true`;
//! warnings; time zones (`serverTimezone`, `sessionVariables`);
//! `MariaDbPoolDataSource` with six pooled connections on Funnel's two
//! (`useResetConnection=true`: `COM_RESET_CONNECTION` on return, then a
//! `COM_PING` on borrow); and `useSSL=true&trustServerCertificate=true` to
//! a Funnel with client TLS, with and without compression; `setMaxRows`,
//! callable statements with `OUT` / `INOUT` parameters (text and binary),
//! `{? = call f(?)}`, `LOAD DATA LOCAL INFILE` from an input stream, and
//! more distinct server-side statements than `prepStmtCacheSize` holds
//! (the connector closes those it evicts); `DatabaseMetaData` and a
//! server-side prepare's columns after another client's `ALTER TABLE`
//! (Funnel's registry of prepares must not answer with the old ones;
//! the connector's own cache does, directly too). A `CALL` pins its session
//! (multiplexing.md): the script has one caller at a time, since two
//! pinned callers would hold both backend connections and the third
//! client would wait out `backlog.wait_timeout`. The `callable` scenario
//! runs four callers on two connections with `stateless_procedures`
//! (run only when named; see
//! [`connector_java_callable_statements_share_connections_with_stateless_procedures`]).
//! Connector/J 2.7.6's `prepareCall("{call p(?, ?)}")` is a
//! `COM_STMT_PREPARE` of `call p(?, ?)` and a `COM_STMT_EXECUTE` (`OUT`
//! values come back in the binary protocol's out-parameter result, no
//! user variable, no metadata query), closed after each use without
//! `useServerPrepStmts`, cached with it; `getWarnings` sends `show
//! warnings` (measured with the server's general log). `call p(?, ?)`
//! without braces, `{call schema.p(?, ?)}` and `{call p(7, ?)}` are the
//! same prepared `call` (the text as written); parameters set by name
//! first read `information_schema.PARAMETERS`; `{? = call f(?)}` is a
//! text `SELECT f(3)`.
//!
//! Found and fixed: every connector session but the first on a backend
//! connection lost the `IGNORE_SPACE` its login (`CLIENT_IGNORE_SPACE`)
//! adds to `sql_mode` (Funnel put `sql_mode` back with `DEFAULT`); and
//! Funnel greeted with `utf8mb4_general_ci` whatever the server's default
//! collation, which Connector/J takes for its session's (directly it got
//! `utf8mb4_unicode_ci` from a `latin1` server). Everything prints the
//! same lines, `useBulkStmts=true` batches included: Funnel offers
//! MariaDB's bulk operations where its backend does, and the connector
//! sends them as bulk executes through it as directly (measured in the
//! server's general log, see
//! [`connector_java_bulk_batches_share_connections_as_bulk_executes`]).
//! Connector/J 2.7.6 sends a batch with `RETURN_GENERATED_KEYS`, or whose
//! rows bind different types (a `setNull` among `setBigDecimal`s), as one
//! execute per row, directly too.

use std::path::Path;
use std::process::Command;

use funnel_engine::Proxy;
use funnel_testkit::MariaDb;

const USER: &str = "jdbc";
const PASSWORD: &str = "jdbcpw";
const JAR: &str = "/usr/share/java/mariadb-java-client.jar";

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
    funnel_yaml(schema, max, "")
}

/// [`funnel_with`] with `extra`, more top-level YAML.
fn funnel_yaml(schema: &str, max: u32, extra: &str) -> Proxy {
    let db = server();
    let backend = format!("{schema}_b");
    db.create_user(&backend, "bpw");
    let yaml = format!(
        "listen: 127.0.0.1:0\ncores: 1\n\
         users:\n  - name: {USER}\n    password: {PASSWORD}\n    default_schema: {schema}\n\
         backends:\n  - name: primary\n    address: {}\n    user: {backend}\n    password: bpw\n\
         pool:\n  max_per_core: {max}\n  min_idle_per_core: {max}\n{extra}",
        db.addr()
    );
    let cfg = funnel_config::Config::from_yaml_str(&yaml).unwrap();
    funnel_testkit::funnel::start(cfg)
}

/// Whether `java` and the connector's jar are here.
fn java_ready() -> bool {
    let java = Command::new("javac")
        .arg("-version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !java || !Path::new(JAR).exists() {
        eprintln!("skipping: no javac or no {JAR} (apt-get install default-jdk-headless libmariadb-java)");
        return false;
    }
    true
}

/// What the program prints for `scenarios` (all when empty) on `port`.
fn run(port: u16, schemas: &[String; 3], scenarios: &[&str]) -> String {
    run_with(port, schemas, scenarios, "")
}

/// [`run`] with `tls`, the connector's TLS options, for the `tls` scenario.
fn run_with(port: u16, schemas: &[String; 3], scenarios: &[&str], tls: &str) -> String {
    run_as(port, USER, schemas, scenarios, tls)
}

/// [`run_with`] as `user` (password [`PASSWORD`]).
fn run_as(port: u16, user: &str, schemas: &[String; 3], scenarios: &[&str], tls: &str) -> String {
    let source = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/connectors/ConnectorJ.java");
    let out = Command::new("timeout")
        .env("CONNECTOR_TLS", tls)
        .args([
            "120",
            "java",
            "-cp",
            JAR,
            source,
            &port.to_string(),
            user,
            PASSWORD,
        ])
        .args(schemas)
        .args(scenarios)
        .output()
        .unwrap();
    format!(
        "{}{}{:?}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        out.status.code()
    )
}

/// Runs `scenarios` directly and through Funnel; the direct output, once
/// both are the same.
fn same_both_ways(prefix: &str, scenarios: &[&str]) -> String {
    let db = server();
    let direct = run(db.port(), &schemas(prefix), scenarios);
    let s = schemas(prefix);
    let proxy = funnel(&s[0]);
    let through = run(proxy.local_addr().port(), &s, scenarios);
    if through != direct {
        let diff: Vec<String> = direct
            .lines()
            .zip(through.lines())
            .filter(|(a, b)| a != b)
            .map(|(a, b)| format!("direct: {a}\nfunnel: {b}"))
            .collect();
        panic!(
            "outputs differ:\n{}\n--- direct ---\n{direct}\n--- funnel ---\n{through}",
            diff.join("\n")
        );
    }
    assert!(direct.ends_with("done\nSome(0)"), "{direct}");
    direct
}

#[test]
fn connector_java_all_scenarios_match_direct() {
    if !java_ready() {
        return;
    }
    let out = same_both_ways("cj", &[]);
    if std::env::var_os("CONNECTOR_SHOW").is_some() {
        eprintln!("{out}");
    }
    for want in [
        "connect autocommit true catalog S0 isolation 4 readonly false valid true",
        "state c1 r2 db S1 catalog S1 1,+01:00,NO_ZERO_DATE,READ-COMMITTED,0,1 api 2,false,true valid true",
        "state c0 insert ERR 1792",
        "tx c2 savepoint sp2a",
        "prep-server c3 genkey n=1 matches true last_insert_id true",
        "prep-client c1 bad prepare ERR 1054",
        "batch-bulk c1 update counts [-2, -2, -2]",
        "batch-bulk-server c0 update counts [-2, -2, -2]",
        "batch-bulk c0 dup batch ERR 1062 23000 Duplicate entry 'v3' for key 'v' counts [-3, -3, -3]",
        "batch-bulk-server c1 rows 20,1690,v0,",
        "batch-plain c1 update counts [5, 5, 5]",
        "batch-plain c0 dup batch ERR 1062 23000 Duplicate entry 'v3' for key 'v' counts [1, -3, 1]",
        "timeout c0 query timeout ERR 1969",
        "timeout c1 cancel ERR 1317",
        "timeout c1 cancel took<4s true",
        "stream c0 streamed 20000 sum 200010000",
        "multi rs[1] upd[1] rs[x,2] upd[0] rs[3]",
        "compress rows 2100000",
        "pool c5 r3 own 5,+05:00,0,READ-COMMITTED db S2",
        "more-text c2 maxrows 1;2;3;4",
        "more-text c0 call rs[20] out 40 c0!",
        "more-server c0 call rs[20] out 40 c0!",
        "more-server c1 function 101",
        "more-text c1 load 100",
        "more-server c2 evicted sum 14520",
        "meta pk S0,null,md,id,1,PRIMARY",
        "meta after alter id:10 s:40 d:12 j:0 extra:11 | 5",
    ] {
        assert!(out.contains(want), "{want}\n{out}");
    }
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
    if java_ready() {
        let connect = run(proxy.local_addr().port(), &s, &["connect"]);
        assert_eq!(connect, run(db.port(), &schemas("cjgreet"), &["connect"]));
        assert!(connect.contains("utf8mb4_unicode_ci"), "{connect}");
    }
}

/// `useSSL=true&trustServerCertificate=true` to a Funnel with client TLS
/// (the test server has none: the direct run is plain).
#[test]
fn connector_java_tls_answers_as_a_plain_direct_connection() {
    if !java_ready() {
        return;
    }
    let db = server();
    let direct = run(db.port(), &schemas("cjtls"), &["tls"]);
    assert!(
        direct.contains("tls c1 prepared 1,1000000") && direct.ends_with("done\nSome(0)"),
        "{direct}"
    );
    let s = schemas("cjtls");
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = funnel_testkit::certs::self_signed(dir.path(), "127.0.0.1");
    let backend = format!("{}_b", s[0]);
    db.create_user(&backend, "bpw");
    let yaml = format!(
        "listen: 127.0.0.1:0\ncores: 1\n\
         users:\n  - name: {USER}\n    password: {PASSWORD}\n    default_schema: {}\n    require_tls: true\n\
         backends:\n  - name: primary\n    address: {}\n    user: {backend}\n    password: bpw\n\
         pool:\n  max_per_core: 1\n  min_idle_per_core: 1\n\
         client:\n  tls:\n    cert: {}\n    key: {}\n",
        s[0],
        db.addr(),
        cert.display(),
        key.display()
    );
    let proxy = funnel_testkit::funnel::start(funnel_config::Config::from_yaml_str(&yaml).unwrap());
    let port = proxy.local_addr().port();
    let tls = "useSSL=true&trustServerCertificate=true";
    assert_eq!(run_with(port, &s, &["tls"], tls), direct);
    // The user must use TLS: without it the login is refused.
    let plain = run(port, &s, &["tls"]);
    assert!(!plain.contains("tls c0 valid true"), "{plain}");
}

/// Four Connector/J clients use callable statements over Funnel's two
/// backend connections, with `stateless_procedures` listing the
/// scenario's procedures: each `CALL` (the connector prepares `call
/// p(?, ?)` and executes it, `OUT` values coming back in the binary
/// protocol's out-parameter result, with or without
/// `useServerPrepStmts`) gives its connection back, so no client waits
/// for one (without the list the third caller got ERR 9001), and every
/// client reads what it reads directly: `OUT` and `INOUT` values, result
/// sets, `LAST_INSERT_ID()` / `ROW_COUNT()` / `FOUND_ROWS()` after an
/// insert, warnings (`getWarnings`, which sends `SHOW WARNINGS`). The
/// client whose listed procedure sets a user variable keeps its
/// connection (MariaDB reports the change) and sees its variable; a
/// `CALL` in a client's transaction (`setAutoCommit(false)`) holds the
/// connection until its `commit()`, then gives it back.
#[test]
fn connector_java_callable_statements_share_connections_with_stateless_procedures() {
    if !java_ready() {
        return;
    }
    let db = server();
    let direct = run(db.port(), &schemas("cjcall"), &["callable"]);
    assert!(direct.ends_with("done\nSome(0)"), "{direct}");
    assert!(
        direct.contains("callable-server c3 r7 add 614 counts 0,1 named 14 inout c3+7 rows 1,10;2,20;3,30 insert n=1 read own-id,1,3 warn W1292:Truncated incorrect INTEGER value: 'x3' count 16 id kept 1 var 1003"),
        "{direct}"
    );
    assert_eq!(direct.matches(" in tx 1,1 ").count(), 6, "{direct}");
    assert!(
        !direct.contains("ERR") && !direct.contains("EXCEPTION"),
        "{direct}"
    );
    let s = schemas("cjcall");
    let listed: String = [
        "cp_add",
        "cp_inout",
        "cp_rows",
        "cp_insert",
        "cp_warn",
        "cp_setvar",
        "cp_count",
    ]
    .iter()
    .map(|p| format!("  - {}.{p}\n", s[0]))
    .collect();
    let proxy = funnel_yaml(
        &s[0],
        2,
        &format!("backlog:\n  wait_timeout: 3s\nstateless_procedures:\n{listed}"),
    );
    let through = run(proxy.local_addr().port(), &s, &["callable"]);
    assert_eq!(through, direct);
    // Clients 0 to 2 give their connection back at least once a round,
    // in both modes (often once a CALL: a CALL after one that warned
    // waits for the warnings' linger to end).
    let unpinned: u64 = proxy.snapshots().iter().map(|s| s.counters.calls_unpinned).sum();
    assert!(unpinned >= 2 * 8 * 3, "{unpinned}");
    // Without the list, the third caller waits out backlog.wait_timeout.
    let s = schemas("cjcall");
    let proxy = funnel_yaml(&s[0], 2, "backlog:\n  wait_timeout: 1s\n");
    let pinned = run(proxy.local_addr().port(), &s, &["callable"]);
    assert!(
        pinned
            .contains("SQLTransientConnectionException: (conn=N) Funnel: no backend connection became free"),
        "{pinned}"
    );
}

/// Four Connector/J clients with `useBulkStmts=true` (two with
/// server-side prepares) on Funnel's two backend connections, in step:
/// one `INSERT` text for all four, each binding its own types (a NULL
/// among them), and each client's own table for its `LAST_INSERT_ID()`
/// and `ROW_COUNT()` after a bulk insert, a batch with a duplicate row
/// (one statement: no row applied, update counts all
/// `EXECUTE_FAILED`), a bulk `UPDATE` with a row that matches nothing,
/// and a failing bulk in a transaction (its rows undone, the earlier
/// bulk's committed). They print what they print directly, and the
/// server runs the same bulk executes: MariaDB 10.11's general log shows
/// a bulk execute as an `Execute` of the statement's text with its `?`
/// (an `INSERT` once, an `UPDATE` or `DELETE` once a row), where an
/// execute's shows the values: as many through Funnel (from its backend
/// account) as directly.
///
/// Two reads are left out, where Funnel differs (see the script): the
/// `LAST_INSERT_ID()` after a failed multi-row insert, and `ROW_COUNT()`
/// after a bulk `UPDATE` or `DELETE`.
#[test]
fn connector_java_bulk_batches_share_connections_as_bulk_executes() {
    use mysql::prelude::Queryable;
    if !java_ready() {
        return;
    }
    let db = server();
    // Its own account directly, so that the log's rows of it are this test's.
    let direct_user = "jdbcbulk";
    db.create_user(direct_user, PASSWORD);
    let mut root = db.root();
    root.query_drop("SET GLOBAL log_output = 'TABLE'").unwrap();
    root.query_drop("SET GLOBAL general_log = 1").unwrap();
    let scenarios = ["batch", "bulk"];
    let direct = run_as(db.port(), direct_user, &schemas("cjbulk"), &scenarios, "");
    let s = schemas("cjbulk");
    let proxy = funnel(&s[0]);
    let through = run(proxy.local_addr().port(), &s, &scenarios);
    root.query_drop("SET GLOBAL general_log = 0").unwrap();
    assert_eq!(through, direct);
    assert!(direct.ends_with("done\nSome(0)"), "{direct}");
    for want in [
        "bulk c0 r1 shared [-2, -2, -2, -2] 1,4",
        "bulk c3 r1 shared [1, 1, 1, 1] 0,1",
        "bulk c2 r2 own [-2, -2, -2] 13,3",
        "bulk c1 r2 dup ERR 1062 23000 Duplicate entry 'o21' for key 'v' counts [-3, -3, -3] -1",
        "bulk c3 r0 update [-2, -2, -2, -2] 0 100;101;102",
        "bulk c0 tx dup ERR 1062 23000 Duplicate entry 't1' for key 'v' counts [-3, -3, -3]",
        "bulk c3 rows shared 12,15,9,",
        "bulk c1 rows own 11,1009,o00:100,o01:101,o02:102,o10:110,o11:111,o12:112,o20:120,o21:121,o22:122,t1:5,t2:5",
    ] {
        assert!(direct.contains(want), "{want}\n{direct}");
    }
    let mut bulk_rows = |user: &str| -> u64 {
        root.query_first(format!(
            "SELECT COUNT(*) FROM mysql.general_log WHERE command_type = 'Execute' \
             AND user_host LIKE '{user}[%' AND argument LIKE '%?%'"
        ))
        .unwrap()
        .unwrap()
    };
    let d = bulk_rows(direct_user);
    let f = bulk_rows(&format!("{}_b", s[0]));
    assert!(d > 100, "{d} bulk rows directly");
    assert_eq!(f, d, "bulk rows through Funnel");
}
