//! Whole-config tests: loading, defaults, parse errors with locations, and validation reports.

use std::net::SocketAddr;
use std::time::Duration;

use crate::{
    ByteSize, CausalReads, Config, ConfigError, Cores, Credential, HumanDuration, LogLevel, Problem, REDACTED,
};

const EXAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/funnel.yaml");

const MINIMAL: &str = "\
listen: 127.0.0.1:6033
users:
  - name: sbtest
    password: sbtest
backends:
  - name: primary
    address: 127.0.0.1:3306
    user: sbtest
    password: sbtest
";

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// The validation problems for `yaml`, as `path: message` strings; panics if it is valid or
/// fails to parse.
fn problems(yaml: &str) -> Vec<String> {
    match Config::from_yaml_str(yaml) {
        Err(ConfigError::Invalid { problems }) => problems.iter().map(Problem::to_string).collect(),
        other => panic!("expected validation problems, got {other:?}"),
    }
}

/// The (line, column, message) of a parse error; panics on anything else.
fn parse_error(yaml: &str) -> (Option<usize>, Option<usize>, String) {
    match Config::from_yaml_str(yaml) {
        Err(ConfigError::Parse {
            line,
            column,
            message,
        }) => (line, column, message),
        other => panic!("expected a parse error, got {other:?}"),
    }
}

#[test]
fn config_minimal_gets_defaults() {
    let cfg = Config::from_yaml_str(MINIMAL).unwrap();
    assert_eq!(*cfg.listen, [addr("127.0.0.1:6033")]);
    assert_eq!(cfg.cores, Cores::Count(1));
    let user = &cfg.users[0];
    assert_eq!(user.credential(), Some(Credential::ClearText("sbtest")));
    assert_eq!(user.effective_default_hostgroup(), "default");
    assert_eq!(user.effective_read_hostgroup(), "default");
    assert_eq!(user.connection_limit(), None);
    let backend = &cfg.backends[0];
    assert_eq!(backend.hostgroup, "default");
    assert_eq!(backend.weight, 1);
    assert_eq!(backend.max_replication_lag, None);
    assert!(!backend.drained, "a backend serves unless drained");
    assert_eq!(backend.effective_max_per_core(&cfg.pool), 16);
    assert_eq!(backend.host_port(), Some(("127.0.0.1", 3306)));
    assert_eq!(cfg.pool.min_idle_per_core, 2);
    assert_eq!(cfg.pool.idle_timeout, HumanDuration::from_secs(60));
    assert_eq!(cfg.pool.max_lifetime, HumanDuration::from_secs(3600));
    assert_eq!(cfg.pool.connect_timeout, HumanDuration::from_secs(5));
    assert_eq!(cfg.pool.query_timeout.non_zero(), None);
    assert_eq!(cfg.backlog.max_waiting_per_core, 10_000);
    assert_eq!(cfg.backlog.wait_timeout, HumanDuration::from_secs(10));
    assert_eq!(cfg.client.max_connections, 20_000);
    assert_eq!(cfg.client.handshake_timeout, HumanDuration::from_secs(10));
    assert_eq!(cfg.client.idle_timeout, HumanDuration::ZERO);
    assert_eq!(cfg.client.idle_transaction_timeout, HumanDuration::ZERO);
    assert_eq!(cfg.client.max_transaction_time, HumanDuration::ZERO);
    assert_eq!(cfg.client.net_write_timeout, HumanDuration::from_secs(60));
    assert_eq!(cfg.client.net_read_timeout, HumanDuration::from_secs(30));
    assert_eq!(cfg.client.max_packet_size, ByteSize::mib(64));
    assert_eq!(cfg.client.max_prepared_statements, 1024);
    assert_eq!(cfg.admin, None);
    assert_eq!(cfg.metrics, None);
    assert_eq!(cfg.log.level, LogLevel::Info);
}

#[test]
fn config_example_file_loads_with_its_values() {
    let cfg = Config::load(EXAMPLE).unwrap();
    assert_eq!(*cfg.listen, [addr("127.0.0.1:6033")]);
    assert_eq!(cfg.cores.cpu_ids(&[0, 1]).unwrap(), vec![0, 1]);

    assert_eq!(cfg.users.len(), 2);
    let sbtest = &cfg.users[0];
    assert_eq!(sbtest.default_schema.as_deref(), Some("sbtest"));
    assert_eq!(sbtest.effective_default_hostgroup(), "writer");
    assert_eq!(sbtest.effective_read_hostgroup(), "readers");
    let app = &cfg.users[1];
    assert!(matches!(app.credential(), Some(Credential::NativeHash(h)) if h[0] == 0x2A));
    assert_eq!(app.connection_limit(), Some(100));

    let (primary, replica) = (&cfg.backends[0], &cfg.backends[1]);
    assert_eq!(primary.effective_max_per_core(&cfg.pool), 32);
    assert_eq!(replica.hostgroup, "readers");
    assert_eq!(replica.weight, 2);
    assert_eq!(replica.max_replication_lag, Some(HumanDuration::from_secs(10)));
    assert_eq!(replica.resolve().unwrap(), vec![addr("127.0.0.1:3307")]);

    assert_eq!(cfg.pool.max_per_core, 16);
    assert_eq!(cfg.pool.max_lifetime.as_duration(), Duration::from_secs(3600));
    assert_eq!(cfg.backlog.max_waiting_per_core, 10_000);
    assert_eq!(cfg.client.max_packet_size, ByteSize::mib(64));
    let admin = cfg.admin.as_ref().unwrap();
    assert_eq!(admin.listen, addr("127.0.0.1:6032"));
    assert_eq!(
        cfg.listen_socket.as_deref(),
        Some(std::path::Path::new("/run/funnel/funnel.sock"))
    );
    assert_eq!(admin.credential(), Some(Credential::ClearText("admin")));
    assert_eq!(cfg.metrics.as_ref().unwrap().listen, addr("127.0.0.1:9633"));
    assert_eq!(cfg.log.level, LogLevel::Info);
}

#[test]
fn config_example_file_sets_every_key() {
    // Every key the serializer knows about appears in the example, so it stays a full reference.
    let text = std::fs::read_to_string(EXAMPLE).unwrap();
    let shown = Config::from_yaml_str(&text).unwrap().to_yaml_string();
    for line in shown.lines() {
        let key = line.trim_start().trim_start_matches("- ");
        if let Some((key, _)) = key.split_once(':') {
            let written = format!("{key}:");
            assert!(text.contains(&written), "example lacks {key}");
        }
    }
    assert!(text.contains("password_hash:"));
}

#[test]
fn config_unknown_key_rejected_with_line_and_column() {
    let yaml = format!("{MINIMAL}pool:\n  max_per_core: 8\n  max_per_cor: 9\n");
    let (line, column, message) = parse_error(&yaml);
    assert_eq!((line, column), (Some(12), Some(3)));
    assert!(
        message.starts_with("pool: unknown field `max_per_cor`"),
        "{message}"
    );

    let top = format!("{MINIMAL}listen_port: 1\n");
    let (line, _, message) = parse_error(&top);
    assert_eq!(line, Some(10));
    assert!(message.contains("unknown field `listen_port`"), "{message}");
}

#[test]
fn config_max_prepared_statements_stays_within_a_cores_budget() {
    let at_most = format!("{MINIMAL}client:\n  max_prepared_statements: 16382\n");
    assert_eq!(
        Config::from_yaml_str(&at_most)
            .unwrap()
            .client
            .max_prepared_statements,
        16_382
    );
    assert_eq!(
        problems(&format!("{MINIMAL}client:\n  max_prepared_statements: 16383\n")),
        ["client.max_prepared_statements: must be between 1 and 16382, got 16383"]
    );
}

#[test]
fn config_bad_values_are_parse_errors_with_location() {
    let yaml = format!("{MINIMAL}pool:\n  idle_timeout: 10x\n");
    let (line, column, message) = parse_error(&yaml);
    assert_eq!((line, column), (Some(11), Some(17)));
    assert!(message.contains("unknown unit \"x\""), "{message}");

    let yaml = format!("{MINIMAL}client:\n  max_packet_size: 1.5MiB\n");
    let (line, _, message) = parse_error(&yaml);
    assert_eq!(line, Some(11));
    assert!(message.starts_with("client.max_packet_size: "), "{message}");

    let yaml = format!("{MINIMAL}log:\n  level: loud\n");
    let (_, _, message) = parse_error(&yaml);
    assert!(message.contains("unknown variant `loud`"), "{message}");

    let (_, _, message) = parse_error("listen: 127.0.0.1:6033\nusers: []\n");
    assert!(message.contains("missing field `backends`"), "{message}");
}

#[test]
fn config_backend_drained_is_a_bool() {
    // MINIMAL ends inside its one backend.
    let drained = format!("{MINIMAL}    drained: true\n");
    let cfg = Config::from_yaml_str(&drained).unwrap();
    assert!(cfg.backends[0].drained);
    assert!(
        cfg.to_yaml_string().contains("drained: true"),
        "SHOW CONFIG shows it"
    );
    for bad in ["maybe", "1", "\"yes\""] {
        let yaml = format!("{MINIMAL}    drained: {bad}\n");
        let (line, _, message) = parse_error(&yaml);
        assert_eq!(line, Some(10), "{bad}: {message}");
        assert!(
            message.starts_with("backends[0].drained: invalid type"),
            "{bad}: {message}"
        );
    }
}

#[test]
fn config_parse_error_display_reads_well() {
    let err = Config::from_yaml_str("listen: [1\n").unwrap_err();
    let text = err.to_string();
    assert!(text.starts_with("config error at line "), "{text}");
    let (line, column, _) = parse_error("");
    assert_eq!((line, column), (None, None));
    let empty = Config::from_yaml_str("# nothing here\n").unwrap_err();
    assert_eq!(
        empty.to_string(),
        "config error: the file has no settings; at least listen, users and backends are required"
    );
}

#[test]
fn config_missing_file_is_io_error() {
    let err = Config::load("/nonexistent/funnel.yaml").unwrap_err();
    assert!(matches!(err, ConfigError::Io { .. }));
    assert!(
        err.to_string()
            .starts_with("cannot read config file /nonexistent/funnel.yaml: "),
        "{err}"
    );
}

#[test]
fn config_reports_every_problem_with_its_path() {
    let yaml = "\
listen: 127.0.0.1:6033
cores: 0
users:
  - name: sbtest
  - name: sbtest
    password: a
    password_hash: '*2AFD99E79E4AA23DE141540F4179F64FFB3AC521'
    default_hostgroup: writer
backends:
  - name: primary
    address: 127.0.0.1:3306
    user: sbtest
    password: sbtest
  - name: primary
    address: foo
    user: ''
    password: x
    weight: 0
    max_per_core: 1
pool:
  min_idle_per_core: 20
backlog:
  wait_timeout: 0s
client:
  handshake_timeout: 0
  max_packet_size: 512B
  max_prepared_statements: 0
";
    assert_eq!(
        problems(yaml),
        [
            "cores: must be at least 1",
            "users[0]: give exactly one of password or password_hash",
            "users[1].name: \"sbtest\" is already used by users[0]",
            "users[1]: give exactly one of password or password_hash",
            "users[1].default_hostgroup: no backend is in hostgroup \"writer\" (hostgroups: \"default\")",
            "backends[1].name: \"primary\" is already used by backends[0]",
            "backends[1].address: \"foo\" is not host:port (a Unix socket is written as an absolute path)",
            "backends[1].user: must not be empty",
            "backends[1].weight: must be at least 1",
            "backends[1].max_per_core: 1 is less than pool.min_idle_per_core (20)",
            "pool.min_idle_per_core: 20 is more than pool.max_per_core (16)",
            "backlog.wait_timeout: must be more than 0s: a waiting client needs a deadline",
            "client.handshake_timeout: must be more than 0s: a client that never logs in must not hold a connection",
            "client.max_packet_size: must be between 1KiB and 1GiB, got 512B",
            "client.max_prepared_statements: must be between 1 and 16382, got 0",
        ]
    );
    let err = Config::from_yaml_str(yaml).unwrap_err();
    assert!(err
        .to_string()
        .starts_with("invalid configuration (15 problems):\n  cores: must be at least 1\n"));
    assert_eq!(err.problems().len(), 15);
}

#[test]
fn config_stateless_procedures_name_schema_and_procedure() {
    let yaml = format!(
        "{MINIMAL}stateless_procedures:\n  - shop.add_item\n  - reports.*\n  - add_item\n  - shop.add_*\n"
    );
    assert_eq!(
        problems(&yaml),
        [
            "stateless_procedures[2]: write schema.procedure (`*` for any schema or any procedure)",
            "stateless_procedures[3]: `*` stands for a whole part only (`shop.*`, not `shop.add_*`)",
        ]
    );
    let ok = format!("{MINIMAL}stateless_procedures: [shop.add_item, \"*.*\"]\n");
    let config = Config::from_yaml_str(&ok).unwrap();
    assert_eq!(config.stateless_procedures, ["shop.add_item", "*.*"]);
    assert!(Config::from_yaml_str(MINIMAL)
        .unwrap()
        .stateless_procedures
        .is_empty());
}

#[test]
fn config_requires_users_and_backends() {
    let yaml = "listen: 127.0.0.1:6033\nusers: []\nbackends: []\n";
    assert_eq!(
        problems(yaml),
        [
            "users: at least one user is required",
            "backends: at least one backend is required",
        ]
    );
}

#[test]
fn config_password_hash_format() {
    let with_user = |secret: &str| {
        MINIMAL.replace(
            "    password: sbtest\nbackends",
            &format!("    {secret}\nbackends"),
        )
    };
    let good = with_user("password_hash: '*2afd99e79e4aa23de141540f4179f64ffb3ac521'");
    assert!(Config::from_yaml_str(&good).is_ok());
    let empty_password = with_user("password: ''");
    let cfg = Config::from_yaml_str(&empty_password).unwrap();
    assert_eq!(cfg.users[0].credential(), Some(Credential::ClearText("")));

    let hint = "users[0].password_hash: must be \"*\" followed by 40 hex digits, as SELECT PASSWORD('...') prints it";
    for bad in [
        "password_hash: '2AFD99E79E4AA23DE141540F4179F64FFB3AC521'",
        "password_hash: '*2AFD99E79E4AA23DE141540F4179F64FFB3AC5'",
        "password_hash: '*2AFD99E79E4AA23DE141540F4179F64FFB3AC52Z'",
    ] {
        assert_eq!(problems(&with_user(bad)), [hint], "{bad}");
    }
    assert_eq!(
        problems(&with_user("password_hash: ''")),
        ["users[0].password_hash: is empty; for an empty password write password: \"\""]
    );
}

#[test]
fn config_cores_as_count_and_list() {
    let with_cores = |cores: &str| format!("cores: {cores}\n{MINIMAL}");
    let count = Config::from_yaml_str(&with_cores("4")).unwrap();
    assert_eq!(count.cores, Cores::Count(4));
    assert_eq!(
        count.cores.cpu_ids(&[0, 1, 2, 3, 4, 5, 6, 7]).unwrap(),
        vec![0, 1, 2, 3]
    );
    let list = Config::from_yaml_str(&with_cores("[3, 1]")).unwrap();
    assert_eq!(list.cores, Cores::List(vec![3, 1]));
    assert_eq!(list.cores.cpu_ids(&[0, 1, 2, 3]).unwrap(), vec![3, 1]);

    assert_eq!(
        problems(&with_cores("[]")),
        ["cores: the CPU list must not be empty"]
    );
    assert_eq!(
        problems(&with_cores("[0, 1, 1]")),
        ["cores[2]: CPU 1 is listed twice"]
    );
    let (line, _, message) = parse_error(&with_cores("many"));
    assert_eq!(line, Some(1));
    assert!(message.starts_with("cores: invalid type"), "{message}");
}

#[test]
fn config_user_hostgroups_must_exist() {
    let yaml = MINIMAL.replace(
        "    password: sbtest\nbackends",
        "    password: sbtest\n    read_hostgroup: readers\nbackends",
    );
    assert_eq!(
        problems(&yaml),
        ["users[0].read_hostgroup: no backend is in hostgroup \"readers\" (hostgroups: \"default\")"]
    );
    let no_default = format!("{MINIMAL}    hostgroup: writer\n");
    assert_eq!(
        problems(&no_default),
        ["users[0].default_hostgroup: not set, so \"default\" is used, but no backend is in it (hostgroups: \"writer\")"]
    );
}

#[test]
fn config_causal_reads_default_off_with_a_bounded_timeout() {
    let cfg = Config::from_yaml_str(MINIMAL).unwrap();
    assert_eq!(cfg.users[0].causal_reads, CausalReads::Off);
    assert_eq!(cfg.users[0].causal_reads_timeout, HumanDuration::from_secs(1));
    let on = MINIMAL.replace(
        "    password: sbtest\nbackends",
        "    password: sbtest\n    causal_reads: true\n    causal_reads_timeout: 250ms\nbackends",
    );
    let cfg = Config::from_yaml_str(&on).unwrap();
    assert_eq!(cfg.users[0].causal_reads, CausalReads::Session);
    assert_eq!(
        cfg.users[0].causal_reads_timeout.as_duration(),
        Duration::from_millis(250)
    );
    for bad in ["0s", "2h"] {
        let yaml = on.replace("250ms", bad);
        assert_eq!(
            problems(&yaml),
            ["users[0].causal_reads_timeout: must be above 0 and at most 1h (a read waits that long for a replica)"],
            "{bad}"
        );
    }
}

#[test]
fn config_causal_reads_is_off_per_session_or_universal() {
    let with = |value: &str| {
        MINIMAL.replace(
            "    password: sbtest\nbackends",
            &format!("    password: sbtest\n    causal_reads: {value}\nbackends"),
        )
    };
    for (value, want) in [
        ("false", CausalReads::Off),
        ("true", CausalReads::Session),
        ("universal", CausalReads::Universal),
    ] {
        let cfg = Config::from_yaml_str(&with(value)).unwrap();
        assert_eq!(cfg.users[0].causal_reads, want, "{value}");
        // Shown (SHOW CONFIG, a dump) as written, and read back alike.
        let shown = cfg.to_yaml_string();
        assert!(shown.contains(&format!("causal_reads: {value}\n")), "{shown}");
        assert_eq!(Config::from_yaml_str(&shown).unwrap().users[0].causal_reads, want);
    }
    assert!(!CausalReads::Off.is_on());
    assert!(CausalReads::Session.is_on() && CausalReads::Universal.is_on());
    for bad in ["global", "local", "1", "yes"] {
        let (line, _, message) = parse_error(&with(bad));
        assert_eq!(line, Some(5), "{bad}");
        assert!(
            message.contains("users[0].causal_reads")
                && message.contains("true (the session's own writes), false, or universal"),
            "{bad}: {message}"
        );
    }
}

#[test]
fn config_admin_and_listener_rules() {
    let yaml = format!(
        "{MINIMAL}admin:\n  listen: 127.0.0.1:6033\n  user: ''\nmetrics:\n  listen: 127.0.0.1:6033\n"
    );
    assert_eq!(
        problems(&yaml),
        [
            "admin.user: must not be empty",
            "admin: give exactly one of password or password_hash",
            "admin.listen: 127.0.0.1:6033 is also the client listen address",
            "metrics.listen: 127.0.0.1:6033 is also the client listen address",
        ]
    );
    // Port 0 means "any free port", as tests bind, so it never clashes.
    let zeros = MINIMAL.replace("127.0.0.1:6033", "127.0.0.1:0")
        + "admin:\n  listen: 127.0.0.1:0\n  user: admin\n  password: x\nmetrics: {}\n";
    let cfg = Config::from_yaml_str(&zeros).unwrap();
    assert_eq!(cfg.metrics.unwrap().listen, addr("127.0.0.1:9633"));
}

#[test]
fn config_listen_socket_rules() {
    let long = format!("/{}", "s".repeat(120));
    for (socket, message) in [
        ("funnel.sock", "listen_socket: funnel.sock: must be an absolute path (e.g. /run/funnel/funnel.sock)"),
        (long.as_str(), "a Unix socket path has at most 107 bytes, this one 121"),
        (
            "/run/mysqld/mysqld.sock",
            "listen_socket: /run/mysqld/mysqld.sock is also the address of backends[0] (primary): Funnel needs a socket of its own",
        ),
    ] {
        let yaml = MINIMAL.replace("127.0.0.1:3306", "/run/mysqld/mysqld.sock") + &format!("listen_socket: {socket}\n");
        let found = problems(&yaml);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].contains(message), "{found:?}");
    }
    let ok = Config::from_yaml_str(&format!("{MINIMAL}listen_socket: /tmp/funnel.sock\n")).unwrap();
    assert_eq!(
        ok.listen_socket.as_deref(),
        Some(std::path::Path::new("/tmp/funnel.sock"))
    );
    assert_eq!(Config::from_yaml_str(MINIMAL).unwrap().listen_socket, None);
}

#[test]
fn config_to_yaml_redacts_secrets_and_round_trips() {
    let cfg = Config::load(EXAMPLE).unwrap();
    let shown = cfg.to_yaml_string();
    assert!(!shown.contains("password: sbtest"), "{shown}");
    assert!(!shown.contains("2AFD99E7"), "{shown}");
    assert!(!shown.contains("password: admin"), "{shown}");
    assert!(shown.contains(&format!("password: {REDACTED}")), "{shown}");
    assert!(shown.contains("max_packet_size: 64MiB"), "{shown}");
    assert!(shown.contains("max_lifetime: 1h"), "{shown}");

    // What SHOW CONFIG prints parses back to the same (redacted) config.
    let back: Config = serde_yaml::from_str(&shown).unwrap();
    assert_eq!(back, cfg.redacted());
    assert_ne!(back, cfg);
}

/// A section written with nothing under it (`metrics:` whose only line was
/// commented out) is the section with its defaults, as `pool:` is, never
/// the section left out: an empty `metrics:` or backend `tls:` must not
/// silently turn the metrics listener or TLS off, and an empty `admin:`
/// or `client.tls:` is missing its required keys.
#[test]
fn config_empty_section_takes_its_defaults() {
    let cfg = Config::from_yaml_str(&format!("{MINIMAL}metrics:\n#  listen: 0.0.0.0:9633\n")).unwrap();
    assert_eq!(cfg.metrics.unwrap().listen, addr("127.0.0.1:9633"));

    let backend_tls = format!("{MINIMAL}    tls:\n");
    let cfg = Config::from_yaml_str(&backend_tls).unwrap();
    let tls = cfg.backends[0]
        .tls
        .as_ref()
        .expect("an empty tls: is TLS with its defaults");
    assert_eq!(tls.mode, crate::BackendTlsMode::Required);

    let (_, _, message) = parse_error(&format!("{MINIMAL}admin:\n"));
    assert!(
        message.contains("admin") && message.contains("missing field `user`"),
        "{message}"
    );
    let (_, _, message) = parse_error(&format!("{MINIMAL}client:\n  tls:\n"));
    assert!(
        message.contains("client.tls") && message.contains("missing field `cert`"),
        "{message}"
    );
}

/// A listen address that is not `IP:port` (a host name, a bare port, a
/// PgBouncer-style `*`) says what is expected, not serde's bare "invalid
/// socket address syntax".
#[test]
fn config_listen_address_error_says_what_is_expected() {
    for (yaml, key) in [
        (MINIMAL.replace("127.0.0.1:6033", "localhost:6033"), "listen"),
        (MINIMAL.replace("127.0.0.1:6033", "6033"), "listen"),
        (
            format!("{MINIMAL}metrics:\n  listen: '*:9633'\n"),
            "metrics.listen",
        ),
        (
            format!("{MINIMAL}admin:\n  listen: localhost:6032\n  user: a\n  password: b\n"),
            "admin.listen",
        ),
    ] {
        let (line, _, message) = parse_error(&yaml);
        assert!(line.is_some(), "{message}");
        assert!(
            message.starts_with(&format!("{key}: "))
                && message.contains("IP:port")
                && message.contains("0.0.0.0:"),
            "{message}"
        );
    }
}

/// `listen` takes one address (as files written before lists did) or a
/// list; SHOW CONFIG writes each back the way it came.
#[test]
fn config_listen_takes_one_address_or_a_list() {
    let one = Config::from_yaml_str(MINIMAL).unwrap();
    assert_eq!(*one.listen, [addr("127.0.0.1:6033")]);
    assert!(one.to_yaml_string().starts_with("listen: 127.0.0.1:6033\n"));
    assert_eq!(one.listen.to_string(), "127.0.0.1:6033");

    let yaml = MINIMAL.replace(
        "listen: 127.0.0.1:6033",
        "listen:\n  - 127.0.0.1:6033\n  - '[::1]:6033'",
    );
    let list = Config::from_yaml_str(&yaml).unwrap();
    assert_eq!(*list.listen, [addr("127.0.0.1:6033"), addr("[::1]:6033")]);
    let shown = list.to_yaml_string();
    assert!(
        shown.starts_with("listen:\n- 127.0.0.1:6033\n- '[::1]:6033'\n"),
        "{shown}"
    );
    assert_eq!(
        Config::from_yaml_str(&shown.replace("<redacted>", "x"))
            .unwrap()
            .listen,
        list.listen
    );
    assert_eq!(list.listen.to_string(), "127.0.0.1:6033, [::1]:6033");
    // The flow form, and a one-element list.
    let flow = MINIMAL.replace(
        "listen: 127.0.0.1:6033",
        "listen: [127.0.0.1:6033, 10.0.0.5:6033]",
    );
    assert_eq!(Config::from_yaml_str(&flow).unwrap().listen.len(), 2);
    let single = MINIMAL.replace("listen: 127.0.0.1:6033", "listen: [127.0.0.1:6033]");
    assert_eq!(
        *Config::from_yaml_str(&single).unwrap().listen,
        [addr("127.0.0.1:6033")]
    );
    // A bad element names its place in the list and says what is expected.
    let bad = MINIMAL.replace(
        "listen: 127.0.0.1:6033",
        "listen:\n  - 127.0.0.1:6033\n  - localhost:6033",
    );
    let (line, _, message) = parse_error(&bad);
    assert_eq!(line, Some(3), "{message}");
    assert!(
        message.starts_with("listen[1]: ") && message.contains("IP:port"),
        "{message}"
    );
}

/// An empty list, an address listed twice, or one a wildcard of its family
/// on the same port already serves, is refused with the element's path.
#[test]
fn config_listen_list_rules() {
    for (list, want) in [
        ("[]", vec!["listen: must name at least one IP:port"]),
        (
            "[127.0.0.1:6033, 127.0.0.2:6033, 127.0.0.1:6033]",
            vec!["listen[2]: 127.0.0.1:6033 is listed twice (also listen[0])"],
        ),
        (
            "['[::1]:6033', '[0:0::1]:6033']",
            vec!["listen[1]: [::1]:6033 is listed twice (also listen[0])"],
        ),
        (
            "[127.0.0.1:6033, 0.0.0.0:6033]",
            vec!["listen[0]: 127.0.0.1:6033 is already served by 0.0.0.0:6033, which takes every address of its family"],
        ),
        (
            "['[::]:6033', '[::1]:6033']",
            vec!["listen[1]: [::1]:6033 is already served by [::]:6033, which takes every address of its family"],
        ),
    ] {
        let yaml = MINIMAL.replace("listen: 127.0.0.1:6033", &format!("listen: {list}"));
        assert_eq!(problems(&yaml), want, "{list}");
    }
    // Allowed: both wildcards on one port (each family its own socket),
    // a wildcard and a specific address on other ports, and port 0 twice on
    // different addresses.
    for list in [
        "[0.0.0.0:6033, '[::]:6033']",
        "[0.0.0.0:6033, 127.0.0.1:7033]",
        "[127.0.0.1:0, 127.0.0.2:0]",
        "[0.0.0.0:0, 127.0.0.1:0]",
    ] {
        let yaml = MINIMAL.replace("listen: 127.0.0.1:6033", &format!("listen: {list}"));
        Config::from_yaml_str(&yaml).unwrap_or_else(|e| panic!("{list}: {e}"));
    }
    // admin and metrics must not take any of the client addresses.
    let yaml = MINIMAL.replace(
        "listen: 127.0.0.1:6033",
        "listen: [127.0.0.1:6033, 127.0.0.1:7033]",
    )
        + "admin:\n  listen: 127.0.0.1:7033\n  user: a\n  password: b\nmetrics:\n  listen: 127.0.0.1:6033\n";
    assert_eq!(
        problems(&yaml),
        [
            "admin.listen: 127.0.0.1:7033 is also the client listen address",
            "metrics.listen: 127.0.0.1:6033 is also the client listen address",
        ]
    );
}

/// A key written twice in one mapping (a second `pool:` section appended
/// at the end of the file) is reported at the second one, with the line
/// of the first, not at line 1 column 1 where the mapping starts.
#[test]
fn config_duplicate_key_points_at_the_second_one() {
    let yaml =
        format!("{MINIMAL}pool:\n  max_per_core: 4\nlog:\n  level: info\npool:\n  min_idle_per_core: 1\n");
    let (line, column, message) = parse_error(&yaml);
    assert_eq!((line, column), (Some(14), Some(1)), "{message}");
    assert!(
        message.contains("`pool`") && message.contains("line 10"),
        "{message}"
    );

    let nested = format!("{MINIMAL}pool:\n  max_per_core: 4\n  idle_timeout: 1s\n  max_per_core: 8\n");
    let (line, column, message) = parse_error(&nested);
    assert_eq!((line, column), (Some(13), Some(3)), "{message}");
    assert!(
        message.starts_with("pool: ") && message.contains("line 11"),
        "{message}"
    );
}

/// The YAML slips a new user makes most, a `password_hash` not quoted
/// (`*` starts an alias in YAML) and a tab in the indentation, are
/// explained, not only reported in the YAML parser's words.
#[test]
fn config_common_yaml_slips_are_explained() {
    let unquoted = MINIMAL.replace(
        "    password: sbtest\nbackends",
        "    password_hash: *2AFD99E79E4AA23DE141540F4179F64FFB3AC521\nbackends",
    );
    let (line, _, message) = parse_error(&unquoted);
    assert_eq!(line, Some(4), "{message}");
    assert!(
        message.contains("unknown anchor") && message.contains("quote"),
        "{message}"
    );

    let (line, _, message) = parse_error(&format!("{MINIMAL}pool:\n\tmax_per_core: 4\n"));
    assert_eq!(line, Some(11), "{message}");
    assert!(message.contains("tab"), "{message}");
}

/// A value of the wrong shape is described in the file's terms, not by
/// the Rust type behind it (`expected struct LogConfig`, `expected u32`).
#[test]
fn config_wrong_shape_is_described_without_rust_type_names() {
    let (_, _, message) = parse_error(&format!("{MINIMAL}log: debug\n"));
    assert!(
        message.starts_with("log: ") && message.contains("a section"),
        "{message}"
    );
    assert!(!message.contains("LogConfig"), "{message}");
    let (_, _, message) = parse_error(&format!("{MINIMAL}pool:\n  max_per_core: 1.5\n"));
    assert!(
        message.contains("a whole number") && !message.contains("u32"),
        "{message}"
    );
}

/// The smallest valid file: one user, one backend.
const ONE_USER_ONE_BACKEND: &str = "listen: 127.0.0.1:6033\nusers:\n  - name: u\n    password: p\n\
                                    backends:\n  - name: b\n    address: 127.0.0.1:3306\n    user: x\n    password: y\n";

#[test]
fn config_monitor_interval_has_a_floor() {
    let base = ONE_USER_ONE_BACKEND;
    // A nanosecond between rounds made the monitor log in hundreds of
    // times a second.
    for (interval, ok) in [
        ("1ns", false),
        ("0", false),
        ("9ms", false),
        ("10ms", true),
        ("1s", true),
    ] {
        let yaml = format!("{base}monitor:\n  interval: {interval}\n");
        if ok {
            assert!(Config::from_yaml_str(&yaml).is_ok(), "{interval}");
        } else {
            let found = problems(&yaml);
            assert!(
                found[0].starts_with("monitor.interval: must be at least 10ms"),
                "{found:?}"
            );
        }
    }
}

#[test]
fn config_idle_poll_defaults_and_bounds() {
    let base = ONE_USER_ONE_BACKEND;
    let cfg = Config::from_yaml_str(base).unwrap();
    assert_eq!(cfg.idle_poll, HumanDuration::from_micros(300));
    for (value, ok) in [
        ("0", true),
        ("250us", true),
        ("10ms", true),
        ("11ms", false),
        ("1s", false),
    ] {
        let yaml = format!("{base}idle_poll: {value}\n");
        if ok {
            assert!(Config::from_yaml_str(&yaml).is_ok(), "{value}");
        } else {
            let found = problems(&yaml);
            assert!(
                found[0].starts_with("idle_poll: must be at most 10ms"),
                "{found:?}"
            );
        }
    }
}

#[test]
fn config_query_rules_route_refuse_or_time_out() {
    let yaml = format!(
        "{MINIMAL}query_rules:
  - match_prefix: SELECT
    hostgroup: default
    timeout: 250ms
  - match_regex: '(?i)^DELETE FROM \\w+$'
    error: 'DELETE without WHERE is refused'
  - match_prefix: UPDATE
    timeout: 2s
  - match_digest: '^SELECT c FROM sbtest1 WHERE id=\\?$'
    cache_ttl: 1s
  - match_regex: '(?i)^SELECT \\* FROM orders'
    rewrite: 'SELECT id, total FROM orders'
    hostgroup: default
"
    );
    let cfg = Config::from_yaml_str(&yaml).unwrap();
    let rules = &cfg.query_rules;
    assert_eq!(rules[0].hostgroup.as_deref(), Some("default"));
    assert_eq!(rules[0].timeout, Some(HumanDuration::from_millis(250)));
    assert_eq!(rules[1].error.as_deref(), Some("DELETE without WHERE is refused"));
    assert_eq!((rules[1].hostgroup.as_deref(), rules[1].timeout), (None, None));
    assert_eq!(rules[2].timeout, Some(HumanDuration::from_secs(2)));
    assert_eq!(
        rules[3].match_digest.as_deref(),
        Some(r"^SELECT c FROM sbtest1 WHERE id=\?$")
    );
    assert_eq!(rules[4].rewrite.as_deref(), Some("SELECT id, total FROM orders"));
    let bad = format!(
        "{MINIMAL}query_rules:
  - match_prefix: SELECT
  - match_prefix: DELETE
    error: no
    hostgroup: default
  - match_prefix: DROP
    error: ' '
  - match_prefix: ALTER
    timeout: 0s
  - match_prefix: LOCK
    hostgroup: nowhere
  - match_prefix: TRUNCATE
    error: '{}'
  - match_prefix: SELECT
    rewrite: SELECT 1
  - match_regex: '(?i)^SELECT (?P<cols>.*) FROM (\\w+)'
    rewrite: 'SELECT $cols, ${{2}} FROM $2 $3 $name $1a $$ ${{cols}}'
  - match_prefix: SELECT
    match_digest: '^SELECT'
    hostgroup: default
  - match_digest: '('
    hostgroup: default
  - match_regex: 'FROM big'
    negate_match: true
    rewrite: 'FROM big FORCE INDEX (k)'
",
        "x".repeat(513)
    );
    assert_eq!(
        problems(&bad),
        [
            "query_rules[0]: give hostgroup, error, ok, timeout, delay, pin, rewrite, cache_ttl, log or flag_out",
            "query_rules[1].error: a refused statement runs nowhere: give no hostgroup, timeout, rewrite, cache_ttl, delay or pin with error",
            "query_rules[2].error: the message is empty",
            "query_rules[3].timeout: must be at least 1ms",
            "query_rules[4].hostgroup: no backend is in hostgroup \"nowhere\"",
            "query_rules[5].error: longer than 512 bytes, the most an ERR message holds",
            "query_rules[6].rewrite: needs match_regex (it replaces what the expression finds)",
            "query_rules[7].rewrite: names group $3, which match_regex does not have (write $$ for a `$`)",
            "query_rules[7].rewrite: names group $name, which match_regex does not have (write $$ for a `$`)",
            "query_rules[7].rewrite: names group $1a, which match_regex does not have (write $$ for a `$`)",
            "query_rules[8]: give exactly one of match_prefix, match_regex or match_digest",
            "query_rules[9].match_digest: not a valid regular expression: regex parse error:\n    (\n    ^\nerror: unclosed group",
            "query_rules[10].rewrite: with negate_match the rule takes statements match_regex finds nothing in: nothing to rewrite",
        ]
    );
}

#[test]
fn config_query_rules_answer_ok_delay_or_pin() {
    let yaml = format!(
        "{MINIMAL}query_rules:
  - match_prefix: SET sql_log_bin
    ok: ''
  - match_prefix: SELECT /* report */
    delay: 200ms
    hostgroup: default
  - match_prefix: SELECT f_state
    pin: true
"
    );
    let cfg = Config::from_yaml_str(&yaml).unwrap();
    let rules = &cfg.query_rules;
    assert_eq!(rules[0].ok.as_deref(), Some(""));
    assert_eq!(rules[1].delay, Some(HumanDuration::from_millis(200)));
    assert!(rules[2].pin && !rules[1].pin);
    let bad = format!(
        "{MINIMAL}query_rules:
  - match_prefix: SET
    ok: done
    error: refused
  - match_prefix: SET
    ok: done
    pin: true
  - match_prefix: SELECT
    delay: 0s
  - match_prefix: SELECT
    delay: 2h
  - match_prefix: SELECT
    pin: true
    error: refused
  - match_prefix: SELECT
    ok: '{}'
  - match_prefix: SELECT
    pin: true
    cache_ttl: 5s
",
        "x".repeat(513)
    );
    assert_eq!(
        problems(&bad),
        [
            "query_rules[0].ok: give error or ok, not both",
            "query_rules[1].ok: a statement answered with ok runs nowhere: give no hostgroup, timeout, rewrite, cache_ttl, delay or pin with ok",
            "query_rules[2].delay: must be at least 1ms and at most 1h",
            "query_rules[3].delay: must be at least 1ms and at most 1h",
            "query_rules[4].error: a refused statement runs nowhere: give no hostgroup, timeout, rewrite, cache_ttl, delay or pin with error",
            "query_rules[5].ok: longer than 512 bytes",
            "query_rules[6].cache_ttl: a cached answer runs on no connection to pin: give no cache_ttl with pin",
        ]
    );
}

#[test]
fn config_query_rules_chain_with_apply_and_flags() {
    let yaml = format!(
        "{MINIMAL}query_rules:
  - match_regex: '.'
    timeout: 2s
    apply: false
  - match_prefix: SELECT
    flag_out: 7
    apply: false
  - match_prefix: SELECT /* report */
    flag_in: 7
    hostgroup: default
"
    );
    let cfg = Config::from_yaml_str(&yaml).unwrap();
    let rules = &cfg.query_rules;
    assert_eq!(
        (rules[0].apply, rules[0].flag_in, rules[0].flag_out),
        (false, 0, None)
    );
    assert_eq!(
        (rules[1].apply, rules[1].flag_in, rules[1].flag_out),
        (false, 0, Some(7))
    );
    assert_eq!(
        (rules[2].apply, rules[2].flag_in, rules[2].flag_out),
        (true, 7, None)
    );
    // The defaults are not written back (`SHOW CONFIG`, `funnel check`).
    let shown = serde_yaml::to_string(&rules[2]).unwrap();
    assert!(
        shown.contains("flag_in: 7") && !shown.contains("apply"),
        "{shown}"
    );
    let bad = format!(
        "{MINIMAL}query_rules:
  - match_prefix: SELECT
    flag_in: 3
    hostgroup: default
  - match_prefix: SELECT
    flag_out: 3
  - match_prefix: SELECT
    error: refused
    apply: false
    flag_out: 3
  - match_prefix: SELECT
    flag_in: 3
    hostgroup: default
  - match_prefix: SELECT
    apply: false
  - match_prefix: SELECT
    apply: false
    flag_out: 4
  - match_prefix: SELECT
    flag_in: 4
    apply: false
    flag_out: 5
  - match_prefix: SELECT
    flag_in: 5
    ok: ''
  - match_prefix: SELECT
    apply: false
    flag_out: 9
    timeout: 1s
"
    );
    assert_eq!(
        problems(&bad),
        [
            "query_rules[0].flag_in: no earlier rule with apply: false sets flag_out: 3, so this rule is never tried",
            "query_rules[1].flag_out: evaluation stops at this rule (apply is true, the default): flag_out has no effect; give apply: false to go on with the rules of that flag_in",
            "query_rules[2].apply: a rule with error or ok answers the statement and ends evaluation: apply: false has no effect",
            "query_rules[2].flag_out: a rule with error or ok answers the statement and ends evaluation: flag_out has no effect",
            "query_rules[3].flag_in: no earlier rule with apply: false sets flag_out: 3, so this rule is never tried",
            "query_rules[4]: give hostgroup, error, ok, timeout, delay, pin, rewrite, cache_ttl, log or flag_out",
            "query_rules[8].flag_out: no later rule has flag_in: 9, so evaluation ends at this rule as with apply: true; add the rules of flag_in: 9, or drop flag_out",
        ]
    );
    let negative =
        format!("{MINIMAL}query_rules:\n  - match_prefix: SELECT\n    flag_in: -1\n    hostgroup: default\n");
    assert!(Config::from_yaml_str(&negative).is_err());
}

#[test]
fn config_hostgroups_name_a_hostgroup_once_with_at_least_one_writer() {
    let ok = format!("{MINIMAL}hostgroups:\n  - name: default\n    max_writers: 1\n");
    let cfg = Config::from_yaml_str(&ok).unwrap();
    assert_eq!(cfg.hostgroups[0].max_writers, Some(1));
    let bad = format!(
        "{MINIMAL}hostgroups:\n  - name: default\n    max_writers: 0\n  - name: default\n  - name: nowhere\n"
    );
    assert_eq!(
        problems(&bad),
        [
            "hostgroups[0].max_writers: must be at least 1",
            "hostgroups[1].name: \"default\" is already used by hostgroups[0]",
            "hostgroups[2].name: no backend is in hostgroup \"nowhere\"",
        ]
    );
}

#[test]
fn config_query_cache_bounds_its_results_by_its_memory() {
    let cfg = Config::from_yaml_str(&format!(
        "{MINIMAL}query_rules:\n  - match_prefix: SELECT\n    cache_ttl: 5s\n"
    ))
    .unwrap();
    assert_eq!(cfg.query_rules[0].cache_ttl, Some(HumanDuration::from_secs(5)));
    assert_eq!(cfg.query_cache.max_memory_per_core, ByteSize::mib(32));
    assert_eq!(cfg.query_cache.max_result_size, ByteSize::mib(1));
    let bad = format!(
        "{MINIMAL}query_cache:\n  max_memory_per_core: 1MiB\n  max_result_size: 2MiB\n\
         query_rules:\n  - match_prefix: SELECT\n    cache_ttl: 0s\n"
    );
    assert_eq!(
        problems(&bad),
        [
            "query_rules[0].cache_ttl: must be at least 1ms",
            "query_cache.max_result_size: must be at least 1KiB and at most query_cache.max_memory_per_core (1MiB)",
        ]
    );
}

#[test]
fn config_query_log_needs_a_file_for_what_it_logs() {
    let cfg = Config::from_yaml_str(&format!(
        "{MINIMAL}query_log:\n  path: /var/log/funnel/queries.jsonl\n  min_duration: 100ms\n\
         query_rules:\n  - match_prefix: DELETE\n    log: true\n  - match_prefix: SELECT\n    error: no\n    log: true\n"
    ))
    .unwrap();
    assert_eq!(
        cfg.query_log.max_text,
        ByteSize::KIB.as_u64().saturating_mul(4).into()
    );
    assert_eq!(cfg.query_log.min_duration, HumanDuration::from_millis(100));
    assert!(!cfg.query_log.all);
    assert_eq!(cfg.query_rules[0].log, Some(true));
    let bad = format!(
        "{MINIMAL}query_log:\n  all: true\n  max_text: 2MiB\n\
         query_rules:\n  - match_prefix: DELETE\n    log: true\n  - match_prefix: SELECT\n    log: false\n"
    );
    assert_eq!(
        problems(&bad),
        [
            "query_log.max_text: must be at most 1MiB",
            "query_log.all: give query_log.path, the file to log to",
            "query_rules[0].log: give query_log.path, the file to log to",
        ]
    );
}
