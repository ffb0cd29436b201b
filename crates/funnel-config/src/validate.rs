//! Rules a parsed config must follow, checked all at once so the operator sees every problem in
//! one run of `funnel check` instead of fixing them one at a time.
//!
//! Each check appends a [`Problem`] with the YAML path of the offending key; checks run in file
//! order so the report reads top to bottom.

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::path::Path;

use crate::address::{check_unix_socket_path, split_host_port, unix_socket_path};
use crate::cores::Cores;
use crate::credential::parse_native_hash;
use crate::error::Problem;
use crate::model::{
    AdminConfig, Backend, BackendTlsMode, BacklogConfig, ClientConfig, Config, PoolConfig, QueryRule, User,
    DEFAULT_HOSTGROUP, MAX_PREPARED_PER_CORE,
};
use crate::size::ByteSize;

/// The packet size bounds: below 1KiB even a login does not fit, and 1GiB is MySQL's own
/// ceiling for max_allowed_packet.
const MIN_PACKET: ByteSize = ByteSize::KIB;
const MAX_PACKET: ByteSize = ByteSize::GIB;

/// Every problem with `config`, in file order; empty when it is valid.
pub(crate) fn problems(config: &Config) -> Vec<Problem> {
    let mut out = Vec::new();
    check_cores(&config.cores, &mut out);
    let hostgroups: BTreeSet<&str> = config.backends.iter().map(|b| b.hostgroup.as_str()).collect();
    check_users(&config.users, &hostgroups, &mut out);
    check_backends(&config.backends, &config.pool, &mut out);
    check_pool(&config.pool, &mut out);
    check_backlog(&config.backlog, &mut out);
    check_client(&config.client, &mut out);
    if let Some(admin) = &config.admin {
        check_admin(admin, &mut out);
    }
    check_listeners(config, &mut out);
    check_query_rules(&config.query_rules, &hostgroups, &mut out);
    check_hostgroups(config, &hostgroups, &mut out);
    let cache = &config.query_cache;
    if cache.max_result_size.as_u64() < ByteSize::KIB.as_u64()
        || cache.max_result_size > cache.max_memory_per_core
    {
        push(
            &mut out,
            "query_cache.max_result_size",
            format!(
                "must be at least 1KiB and at most query_cache.max_memory_per_core ({})",
                cache.max_memory_per_core
            ),
        );
    }
    check_query_log(config, &mut out);
    check_monitor(config, &mut out);
    check_idle_poll(config, &mut out);
    if let Some(tls) = &config.client.tls {
        // Whether the files are readable is checked when Funnel starts: a
        // config may be checked on another machine.
        for (key, path) in [("cert", &tls.cert), ("key", &tls.key)] {
            if path.as_os_str().is_empty() {
                push(&mut out, format!("client.tls.{key}"), "must name a PEM file");
            }
        }
    }
    for (i, b) in config.backends.iter().enumerate() {
        if let Some(tls) = &b.tls {
            if tls.mode != BackendTlsMode::Required && tls.ca.is_none() {
                push(
                    &mut out,
                    format!("backends[{i}].tls.ca"),
                    "verify_ca and verify_identity need a CA file",
                );
            }
        }
    }
    if config
        .client
        .proxy_protocol_networks
        .as_ref()
        .is_some_and(Vec::is_empty)
    {
        push(
            &mut out,
            "client.proxy_protocol_networks",
            "must name at least one balancer (leave it out for none)",
        );
    }
    for (i, u) in config.users.iter().enumerate() {
        if u.allowed_hosts.as_ref().is_some_and(Vec::is_empty) {
            push(
                &mut out,
                format!("users[{i}].allowed_hosts"),
                "must name at least one host (leave it out for any)",
            );
        }
        if u.require_tls && config.client.tls.is_none() {
            push(
                &mut out,
                format!("users[{i}].require_tls"),
                "needs client.tls (a certificate and key)",
            );
        }
    }
    for (i, l) in config.schema_limits.iter().enumerate() {
        check_not_empty(format!("schema_limits[{i}].schema"), &l.schema, &mut out);
        if l.max_backend_connections_per_core == 0 {
            push(
                &mut out,
                format!("schema_limits[{i}].max_backend_connections_per_core"),
                "must be at least 1",
            );
        }
    }
    for (i, entry) in config.stateless_procedures.iter().enumerate() {
        if let Some(why) = crate::procedures::entry_problem(entry) {
            push(&mut out, format!("stateless_procedures[{i}]"), why);
        }
    }
    out
}

fn check_query_rules(rules: &[QueryRule], hostgroups: &BTreeSet<&str>, out: &mut Vec<Problem>) {
    // The flags evaluation may carry when it reaches the rule at hand: 0
    // (no rule changed it, or none matched), and the `flag_out` of every
    // earlier rule that goes on (`apply: false`).
    let mut flags = BTreeSet::from([0]);
    for (i, r) in rules.iter().enumerate() {
        let path = format!("query_rules[{i}]");
        check_chaining(&path, r, &flags, out);
        if let (false, Some(flag), None, None) = (r.apply, r.flag_out, &r.error, &r.ok) {
            // Evaluation goes on only with the later rules of that flag:
            // with none, it ends here, a typo's likely sign.
            if !rules[i + 1..].iter().any(|later| later.flag_in == flag) {
                push(
                    out,
                    format!("{path}.flag_out"),
                    format!(
                        "no later rule has flag_in: {flag}, so evaluation ends at this rule as with apply: true; \
                         add the rules of flag_in: {flag}, or drop flag_out"
                    ),
                );
            }
        }
        if let (false, Some(flag)) = (r.apply, r.flag_out) {
            if r.error.is_none() && r.ok.is_none() {
                flags.insert(flag);
            }
        }
        let matchers = [&r.match_prefix, &r.match_regex, &r.match_digest];
        if matchers.iter().filter(|m| m.is_some()).count() != 1 {
            push(
                out,
                path.clone(),
                "give exactly one of match_prefix, match_regex or match_digest",
            );
        }
        for (key, re) in [("match_regex", &r.match_regex), ("match_digest", &r.match_digest)] {
            if let Some(Err(e)) = re.as_deref().map(regex::Regex::new) {
                push(
                    out,
                    format!("{path}.{key}"),
                    format!("not a valid regular expression: {e}"),
                );
            }
        }
        if let Some(hostgroup) = &r.hostgroup {
            if !hostgroups.contains(hostgroup.as_str()) {
                push(
                    out,
                    format!("{path}.hostgroup"),
                    format!("no backend is in hostgroup \"{hostgroup}\""),
                );
            }
        }
        // What only a statement that runs has (a refused one may be logged).
        let runs = r.hostgroup.is_some()
            || r.timeout.is_some()
            || r.rewrite.is_some()
            || r.cache_ttl.is_some()
            || r.delay.is_some()
            || r.pin;
        if r.error.is_some() && r.ok.is_some() {
            push(out, format!("{path}.ok"), "give error or ok, not both");
        }
        if let Some(message) = &r.ok {
            if runs {
                push(
                    out,
                    format!("{path}.ok"),
                    "a statement answered with ok runs nowhere: give no hostgroup, timeout, rewrite, \
                     cache_ttl, delay or pin with ok",
                );
            }
            if message.len() > MAX_RULE_ERROR {
                push(
                    out,
                    format!("{path}.ok"),
                    format!("longer than {MAX_RULE_ERROR} bytes"),
                );
            }
        }
        match &r.error {
            None if !runs && r.log.is_none() && r.ok.is_none() && r.flag_out.is_none() => {
                push(
                    out,
                    path.clone(),
                    "give hostgroup, error, ok, timeout, delay, pin, rewrite, cache_ttl, log or flag_out",
                );
            }
            None => {}
            Some(_) if runs => push(
                out,
                format!("{path}.error"),
                "a refused statement runs nowhere: give no hostgroup, timeout, rewrite, cache_ttl, delay \
                 or pin with error",
            ),
            Some(message) if message.trim().is_empty() => {
                push(out, format!("{path}.error"), "the message is empty");
            }
            Some(message) if message.len() > MAX_RULE_ERROR => push(
                out,
                format!("{path}.error"),
                format!("longer than {MAX_RULE_ERROR} bytes, the most an ERR message holds"),
            ),
            Some(_) => {}
        }
        if let Some(rewrite) = &r.rewrite {
            check_rewrite(&path, r, rewrite, out);
        }
        if let Some(timeout) = r.timeout {
            if timeout.as_duration() < MIN_RULE_TIMEOUT {
                push(out, format!("{path}.timeout"), "must be at least 1ms");
            }
        }
        if let Some(ttl) = r.cache_ttl {
            if ttl.as_duration() < MIN_RULE_TIMEOUT {
                push(out, format!("{path}.cache_ttl"), "must be at least 1ms");
            }
            if r.pin {
                // A statement that pins is never answered from the cache.
                push(
                    out,
                    format!("{path}.cache_ttl"),
                    "a cached answer runs on no connection to pin: give no cache_ttl with pin",
                );
            }
        }
        if let Some(delay) = r.delay {
            let d = delay.as_duration();
            if d < MIN_RULE_TIMEOUT || d > MAX_RULE_DELAY {
                push(
                    out,
                    format!("{path}.delay"),
                    "must be at least 1ms and at most 1h",
                );
            }
        }
    }
}

/// What chains a rule into the next (`apply`, `flag_in`, `flag_out`),
/// where it could do nothing: evaluation reaches a rule only with a flag
/// an earlier rule that goes on set, `flag_out` matters only to the rules
/// after it, and `error` and `ok` end evaluation (the statement has its
/// answer).
fn check_chaining(path: &str, r: &QueryRule, flags: &BTreeSet<u32>, out: &mut Vec<Problem>) {
    if !flags.contains(&r.flag_in) {
        push(
            out,
            format!("{path}.flag_in"),
            format!(
                "no earlier rule with apply: false sets flag_out: {}, so this rule is never tried",
                r.flag_in
            ),
        );
    }
    let answers = r.error.is_some() || r.ok.is_some();
    if answers && !r.apply {
        push(
            out,
            format!("{path}.apply"),
            "a rule with error or ok answers the statement and ends evaluation: apply: false has no effect",
        );
    }
    match r.flag_out {
        Some(_) if answers => push(
            out,
            format!("{path}.flag_out"),
            "a rule with error or ok answers the statement and ends evaluation: flag_out has no effect",
        ),
        Some(_) if r.apply => push(
            out,
            format!("{path}.flag_out"),
            "evaluation stops at this rule (apply is true, the default): flag_out has no effect; give \
             apply: false to go on with the rules of that flag_in",
        ),
        _ => {}
    }
}

/// The query log's bounds, and a file for the rules that log to write to.
fn check_query_log(config: &Config, out: &mut Vec<Problem>) {
    let log = &config.query_log;
    if log.max_text > ByteSize::MIB {
        push(out, "query_log.max_text", "must be at most 1MiB");
    }
    if log.path.as_ref().is_some_and(|p| p.as_os_str().is_empty()) {
        push(out, "query_log.path", "is empty");
    }
    if log.path.is_none() {
        if log.all {
            push(out, "query_log.all", "give query_log.path, the file to log to");
        }
        for (i, r) in config.query_rules.iter().enumerate() {
            if r.log == Some(true) {
                push(
                    out,
                    format!("query_rules[{i}].log"),
                    "give query_log.path, the file to log to",
                );
            }
        }
    }
}

/// A rule's `rewrite` replaces what its `match_regex` finds, and may name
/// only groups the expression has (the `regex` crate would put nothing in
/// place of another, silently).
fn check_rewrite(path: &str, r: &QueryRule, rewrite: &str, out: &mut Vec<Problem>) {
    let Some(re) = &r.match_regex else {
        push(
            out,
            format!("{path}.rewrite"),
            "needs match_regex (it replaces what the expression finds)",
        );
        return;
    };
    if r.negate_match {
        // Taken only where the expression finds nothing: the rewrite would
        // silently change nothing (ProxySQL's does nothing there either).
        push(
            out,
            format!("{path}.rewrite"),
            "with negate_match the rule takes statements match_regex finds nothing in: nothing to rewrite",
        );
    }
    let Ok(re) = regex::Regex::new(re) else {
        return; // reported for match_regex
    };
    for group in replacement_groups(rewrite) {
        let known = match group.parse::<usize>() {
            Ok(n) => n < re.captures_len(),
            Err(_) => re.capture_names().flatten().any(|name| name == group),
        };
        if !known {
            push(
                out,
                format!("{path}.rewrite"),
                format!("names group ${group}, which match_regex does not have (write $$ for a `$`)"),
            );
        }
    }
}

/// The group names and numbers a `regex` replacement text refers to
/// (`$1`, `$name`, `${name}`; `$$` is a plain `$`).
fn replacement_groups(rewrite: &str) -> Vec<&str> {
    let mut groups = Vec::new();
    let mut rest = rewrite;
    while let Some(at) = rest.find('$') {
        rest = &rest[at + 1..];
        if let Some(after) = rest.strip_prefix('$') {
            rest = after;
        } else if let Some(braced) = rest.strip_prefix('{') {
            let Some(end) = braced.find('}') else { break };
            groups.push(&braced[..end]);
            rest = &braced[end + 1..];
        } else {
            // As the crate reads it: the longest run of letters, digits and `_`.
            let end = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            if end > 0 {
                groups.push(&rest[..end]);
            }
            rest = &rest[end..];
        }
    }
    groups
}

/// The longest message of a rule's `error`: MySQL's `MYSQL_ERRMSG_SIZE`.
const MAX_RULE_ERROR: usize = 512;

/// The longest `query_rules[].delay`: a statement held longer is one
/// the rule should refuse.
const MAX_RULE_DELAY: std::time::Duration = std::time::Duration::from_secs(3600);

/// The shortest rule `timeout`.
const MIN_RULE_TIMEOUT: std::time::Duration = std::time::Duration::from_millis(1);

fn check_hostgroups(config: &Config, hostgroups: &BTreeSet<&str>, out: &mut Vec<Problem>) {
    let mut seen = HashMap::new();
    for (i, h) in config.hostgroups.iter().enumerate() {
        let path = format!("hostgroups[{i}]");
        if let Some(first) = seen.insert(h.name.as_str(), i) {
            push(
                out,
                format!("{path}.name"),
                format!("\"{}\" is already used by hostgroups[{first}]", h.name),
            );
        }
        if !hostgroups.is_empty() && !hostgroups.contains(h.name.as_str()) {
            push(
                out,
                format!("{path}.name"),
                format!("no backend is in hostgroup \"{}\"", h.name),
            );
        }
        if h.max_writers == Some(0) {
            push(out, format!("{path}.max_writers"), "must be at least 1");
        }
    }
}

/// The longest `idle_poll`: a core polling longer than this between bursts
/// spends a CPU on nothing.
const MAX_IDLE_POLL: std::time::Duration = std::time::Duration::from_millis(10);

fn check_idle_poll(config: &Config, out: &mut Vec<Problem>) {
    if config.idle_poll.as_duration() > MAX_IDLE_POLL {
        push(
            out,
            "idle_poll",
            format!("must be at most 10ms, got {}", config.idle_poll),
        );
    }
}

/// The shortest time between two health-check rounds.
const MIN_MONITOR_INTERVAL: std::time::Duration = std::time::Duration::from_millis(10);

fn check_monitor(config: &Config, out: &mut Vec<Problem>) {
    let m = &config.monitor;
    // Each check logs in to every backend: a few microseconds between
    // rounds would flood the servers with connections (hundreds a second).
    if m.interval.as_duration() < MIN_MONITOR_INTERVAL {
        push(
            out,
            "monitor.interval",
            format!("must be at least 10ms, got {}", m.interval),
        );
    }
    if m.timeout.is_zero() {
        push(out, "monitor.timeout", "must be more than 0");
    }
    if m.failures_before_down == 0 {
        push(out, "monitor.failures_before_down", "must be at least 1");
    }
    if m.user.is_some() != m.password.is_some() {
        push(out, "monitor", "give both user and password, or neither");
    }
}

fn push(out: &mut Vec<Problem>, path: impl Into<String>, message: impl Into<String>) {
    out.push(Problem::new(path, message));
}

fn check_cores(cores: &Cores, out: &mut Vec<Problem>) {
    match cores {
        Cores::Count(0) => push(out, "cores", "must be at least 1"),
        Cores::Count(_) => {}
        Cores::List(ids) if ids.is_empty() => push(out, "cores", "the CPU list must not be empty"),
        Cores::List(ids) => {
            let mut seen = BTreeSet::new();
            for (i, id) in ids.iter().enumerate() {
                if !seen.insert(id) {
                    push(out, format!("cores[{i}]"), format!("CPU {id} is listed twice"));
                }
            }
        }
    }
}

/// Reports a name used twice; `first` remembers where each name was first seen.
fn check_unique<'a>(
    first: &mut HashMap<&'a str, usize>,
    section: &str,
    i: usize,
    name: &'a str,
    out: &mut Vec<Problem>,
) {
    if let Some(&earlier) = first.get(name) {
        push(
            out,
            format!("{section}[{i}].name"),
            format!("{name:?} is already used by {section}[{earlier}]"),
        );
    } else {
        first.insert(name, i);
    }
}

fn check_not_empty(path: String, value: &str, out: &mut Vec<Problem>) {
    if value.is_empty() {
        push(out, path, "must not be empty");
    }
}

/// Checks that exactly one of `password` and `password_hash` is given, and that a hash is well
/// formed.
fn check_secret(path: &str, password: Option<&str>, hash: Option<&str>, out: &mut Vec<Problem>) {
    match (password, hash) {
        (Some(_), Some(_)) | (None, None) => push(out, path, "give exactly one of password or password_hash"),
        (None, Some(hash)) => {
            if let Err(message) = parse_native_hash(hash) {
                push(out, format!("{path}.password_hash"), message);
            }
        }
        (Some(_), None) => {}
    }
}

/// The longest a read may wait for a replica to apply a session's writes.
const MAX_CAUSAL_READS_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3600);

fn check_users(users: &[User], hostgroups: &BTreeSet<&str>, out: &mut Vec<Problem>) {
    if users.is_empty() {
        push(out, "users", "at least one user is required");
    }
    let mut first = HashMap::new();
    for (i, user) in users.iter().enumerate() {
        let path = format!("users[{i}]");
        check_not_empty(format!("{path}.name"), &user.name, out);
        check_unique(&mut first, "users", i, &user.name, out);
        check_secret(
            &path,
            user.password.as_deref(),
            user.password_hash.as_deref(),
            out,
        );
        if user.default_schema.as_deref() == Some("") {
            push(
                out,
                format!("{path}.default_schema"),
                "must not be empty (leave it out for no default schema)",
            );
        }
        // With no backends every hostgroup would be missing; "backends" reports the real cause.
        if !hostgroups.is_empty() {
            check_user_hostgroups(&path, user, hostgroups, out);
        }
        let wait = user.causal_reads_timeout.as_duration();
        if wait.is_zero() || wait > MAX_CAUSAL_READS_TIMEOUT {
            push(
                out,
                format!("{path}.causal_reads_timeout"),
                "must be above 0 and at most 1h (a read waits that long for a replica)",
            );
        }
    }
}

fn check_user_hostgroups(path: &str, user: &User, hostgroups: &BTreeSet<&str>, out: &mut Vec<Problem>) {
    let known = || {
        let names: Vec<String> = hostgroups.iter().map(|h| format!("{h:?}")).collect();
        names.join(", ")
    };
    match &user.default_hostgroup {
        Some(group) if !hostgroups.contains(group.as_str()) => push(
            out,
            format!("{path}.default_hostgroup"),
            format!("no backend is in hostgroup {group:?} (hostgroups: {})", known()),
        ),
        None if !hostgroups.contains(DEFAULT_HOSTGROUP) => push(
            out,
            format!("{path}.default_hostgroup"),
            format!(
                "not set, so {DEFAULT_HOSTGROUP:?} is used, but no backend is in it (hostgroups: {})",
                known()
            ),
        ),
        _ => {}
    }
    if let Some(group) = &user.read_hostgroup {
        if !hostgroups.contains(group.as_str()) {
            push(
                out,
                format!("{path}.read_hostgroup"),
                format!("no backend is in hostgroup {group:?} (hostgroups: {})", known()),
            );
        }
    }
}

fn check_backends(backends: &[Backend], pool: &PoolConfig, out: &mut Vec<Problem>) {
    if backends.is_empty() {
        push(out, "backends", "at least one backend is required");
    }
    let mut first = HashMap::new();
    for (i, backend) in backends.iter().enumerate() {
        let path = format!("backends[{i}]");
        check_not_empty(format!("{path}.name"), &backend.name, out);
        check_unique(&mut first, "backends", i, &backend.name, out);
        match unix_socket_path(&backend.address) {
            Some(socket) => {
                if let Err(message) = check_unix_socket_path(socket) {
                    push(out, format!("{path}.address"), message);
                }
                if backend.tls.is_some() {
                    push(
                        out,
                        format!("{path}.tls"),
                        "not used over a Unix socket (the connection never leaves this host); remove it or use host:port",
                    );
                }
            }
            None => {
                if let Err(mut message) = split_host_port(&backend.address) {
                    if !backend.address.contains(':') {
                        // `mysqld.sock`, `run/mysqld.sock`: probably a socket path.
                        message.push_str(" (a Unix socket is written as an absolute path)");
                    }
                    push(out, format!("{path}.address"), message);
                }
            }
        }
        check_not_empty(format!("{path}.user"), &backend.user, out);
        check_not_empty(format!("{path}.hostgroup"), &backend.hostgroup, out);
        if backend.weight == 0 {
            push(out, format!("{path}.weight"), "must be at least 1");
        }
        match backend.max_per_core {
            Some(0) => push(out, format!("{path}.max_per_core"), "must be at least 1"),
            Some(max) if max < pool.min_idle_per_core => push(
                out,
                format!("{path}.max_per_core"),
                format!(
                    "{max} is less than pool.min_idle_per_core ({})",
                    pool.min_idle_per_core
                ),
            ),
            _ => {}
        }
    }
}

fn check_pool(pool: &PoolConfig, out: &mut Vec<Problem>) {
    if pool.max_per_core == 0 {
        push(out, "pool.max_per_core", "must be at least 1");
    }
    if pool.min_idle_per_core > pool.max_per_core {
        push(
            out,
            "pool.min_idle_per_core",
            format!(
                "{} is more than pool.max_per_core ({})",
                pool.min_idle_per_core, pool.max_per_core
            ),
        );
    }
    if pool.connect_timeout.is_zero() {
        push(
            out,
            "pool.connect_timeout",
            "must be more than 0s: a backend connect needs a deadline",
        );
    }
}

fn check_backlog(backlog: &BacklogConfig, out: &mut Vec<Problem>) {
    if backlog.wait_timeout.is_zero() {
        push(
            out,
            "backlog.wait_timeout",
            "must be more than 0s: a waiting client needs a deadline",
        );
    }
}

fn check_client(client: &ClientConfig, out: &mut Vec<Problem>) {
    if client.max_connections == 0 {
        push(out, "client.max_connections", "must be at least 1");
    }
    if client.handshake_timeout.is_zero() {
        push(
            out,
            "client.handshake_timeout",
            "must be more than 0s: a client that never logs in must not hold a connection",
        );
    }
    let size = client.max_packet_size;
    if size < MIN_PACKET || size > MAX_PACKET {
        push(
            out,
            "client.max_packet_size",
            format!("must be between {MIN_PACKET} and {MAX_PACKET}, got {size}"),
        );
    }
    let stmts = client.max_prepared_statements;
    if !(1..=MAX_PREPARED_PER_CORE).contains(&stmts) {
        push(
            out,
            "client.max_prepared_statements",
            format!("must be between 1 and {MAX_PREPARED_PER_CORE}, got {stmts}"),
        );
    }
}

fn check_admin(admin: &AdminConfig, out: &mut Vec<Problem>) {
    check_not_empty("admin.user".to_owned(), &admin.user, out);
    check_secret(
        "admin",
        admin.password.as_deref(),
        admin.password_hash.as_deref(),
        out,
    );
}

/// The client Unix socket must be a path the kernel takes, and not a
/// backend's own socket: Funnel would find the server listening there and
/// refuse to start, and an operator may not see why.
fn check_listen_socket(socket: &Path, backends: &[Backend], out: &mut Vec<Problem>) {
    if !socket.is_absolute() {
        push(
            out,
            "listen_socket",
            format!(
                "{}: must be an absolute path (e.g. /run/funnel/funnel.sock)",
                socket.display()
            ),
        );
    } else if let Err(message) = check_unix_socket_path(socket) {
        push(out, "listen_socket", message);
    }
    for (i, b) in backends.iter().enumerate() {
        if unix_socket_path(&b.address) == Some(socket) {
            push(
                out,
                "listen_socket",
                format!(
                    "{} is also the address of backends[{i}] ({}): Funnel needs a socket of its own",
                    socket.display(),
                    b.name
                ),
            );
        }
    }
}

/// The client addresses: at least one, none listed twice, and none that a
/// wildcard of its family on the same port (`0.0.0.0:6033`, `[::]:6033`)
/// already serves. The kernel would accept the duplicate too (every socket
/// has `SO_REUSEPORT`), so without this check it would go unnoticed.
fn check_listen(listen: &[SocketAddr], out: &mut Vec<Problem>) {
    if listen.is_empty() {
        push(out, "listen", "must name at least one IP:port");
    }
    for (i, &addr) in listen.iter().enumerate() {
        let earlier = &listen[..i];
        if let Some(j) = earlier.iter().position(|&e| e == addr) {
            push(
                out,
                format!("listen[{i}]"),
                format!("{addr} is listed twice (also listen[{j}])"),
            );
            continue;
        }
        let covers = |wide: SocketAddr, narrow: SocketAddr| {
            wide.ip().is_unspecified()
                && !narrow.ip().is_unspecified()
                && wide.is_ipv4() == narrow.is_ipv4()
                && wide.port() == narrow.port()
                && wide.port() != 0
        };
        if let Some(&wide) = listen.iter().find(|&&w| covers(w, addr)) {
            push(
                out,
                format!("listen[{i}]"),
                format!("{addr} is already served by {wide}, which takes every address of its family"),
            );
        }
    }
}

/// Two listeners on one address would fail at bind time with a less helpful message. Port 0
/// (any free port, as tests use) never clashes.
fn check_listeners(config: &Config, out: &mut Vec<Problem>) {
    check_listen(&config.listen, out);
    if let Some(socket) = &config.listen_socket {
        check_listen_socket(socket, &config.backends, out);
    }
    let clash = |a: SocketAddr, b: SocketAddr| a.port() != 0 && a == b;
    let client = |a: SocketAddr| config.listen.iter().any(|&l| clash(a, l));
    let admin = config.admin.as_ref().map(|a| a.listen);
    if let Some(addr) = admin.filter(|&a| client(a)) {
        push(
            out,
            "admin.listen",
            format!("{addr} is also the client listen address"),
        );
    }
    if let Some(metrics) = &config.metrics {
        let addr = metrics.listen;
        if client(addr) {
            push(
                out,
                "metrics.listen",
                format!("{addr} is also the client listen address"),
            );
        } else if admin.is_some_and(|a| clash(addr, a)) {
            push(
                out,
                "metrics.listen",
                format!("{addr} is also the admin listen address"),
            );
        }
    }
}
