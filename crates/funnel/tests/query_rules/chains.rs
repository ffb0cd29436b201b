//! Query rules that chain (`apply: false`, `flag_in`, `flag_out`), as
//! ProxySQL's `mysql_query_rules`: every matching rule adds its actions,
//! a rewrite changes what the later rules match, a `flag_out` switches to
//! another set of rules, and every rule that matched counts a hit.

use mysql::prelude::Queryable;
use mysql::{Conn, Row};

use super::{env, env_on, server_error, Env};

/// The hits `SHOW QUERY RULES` counts from `before` to now, by rule (the
/// connector's own statements at login count for the rules that take
/// every statement: differences leave them out).
fn hits_since(env: &Env, before: &[(u32, u64)]) -> Vec<u64> {
    env.hits()
        .iter()
        .zip(before)
        .map(|(now, then)| now.1 - then.1)
        .collect()
}

fn current_user(c: &mut Conn, sql: &str) -> String {
    c.query_first::<String, _>(sql).unwrap().unwrap()
}

#[test]
fn query_rules_chain_bounds_every_statement_and_routes_some_elsewhere() {
    let rules = r"query_rules:
  - match_regex: '.'
    user: app
    timeout: 300ms
    apply: false
  - match_prefix: 'SELECT /* other */'
    hostgroup: other
";
    let env = env("qr_chain_timeout", rules);
    let primary = format!("{}@%", env.backend);
    let other = format!("{}_o@%", env.backend);
    let mut c = env.client("app");
    let before = env.hits();
    // The second rule routes what it matches; the first bounds all.
    assert_eq!(current_user(&mut c, "SELECT /* other */ CURRENT_USER()"), other);
    assert_eq!(current_user(&mut c, "SELECT CURRENT_USER()"), primary);
    let timed_out = (
        1969,
        "70100".to_string(),
        "Query execution was interrupted (query_rules[0].timeout of 300 ms exceeded)".to_string(),
    );
    for sql in ["SELECT /* other */ SLEEP(20)", "SELECT SLEEP(20)"] {
        assert_eq!(
            server_error(c.query::<Row, _>(sql).unwrap_err()),
            timed_out,
            "{sql}"
        );
    }
    // An execute follows its prepare's chain: both rules, both counted.
    let stmt = c.prep("SELECT /* other */ CURRENT_USER(), SLEEP(?)").unwrap();
    let row: (String, i64) = c.exec_first(&stmt, (0,)).unwrap().unwrap();
    assert_eq!(row, (other.clone(), 0));
    assert_eq!(
        server_error(c.exec::<Row, _, _>(&stmt, (20,)).unwrap_err()),
        timed_out
    );
    // Each rule that matched counts: the first all six statements (and
    // the prepare), the second the three it routed (and the prepare).
    assert_eq!(hits_since(&env, &before), [4 + 1 + 2, 2 + 1 + 2]);
    // Without the first rule's user the chain starts at the second.
    let mut ops = env.client("ops");
    let before = env.hits();
    assert_eq!(current_user(&mut ops, "SELECT /* other */ CURRENT_USER()"), other);
    assert_eq!(
        ops.query_first::<i64, _>("SELECT /* other */ SLEEP(0.5)")
            .unwrap(),
        Some(0),
        "no timeout"
    );
    assert_eq!(hits_since(&env, &before), [0, 2]);
}

#[test]
fn query_rules_chain_matches_the_text_a_rewrite_made() {
    let rules = r"query_rules:
  - match_regex: '(?i)^SELECT \* FROM t WHERE id = (?P<id>\d+)$'
    rewrite: 'SELECT /* narrowed */ CURRENT_USER(), id FROM t WHERE id = ${id}'
    apply: false
  - match_prefix: 'SELECT /* narrowed */'
    hostgroup: other
";
    let env = env("qr_chain_rewrite", rules);
    let other = format!("{}_o@%", env.backend);
    let mut c = env.client("app");
    let before = env.hits();
    // The first rule rewrites; the second matches only the new text, and
    // routes it.
    let row: (String, i64) = c.query_first("select * from t where id = 1").unwrap().unwrap();
    assert_eq!(row, (other.clone(), 1));
    // A binary prepare: the server prepares the new text, and its
    // executes go where the chain said.
    let stmt = c.prep("SELECT * FROM t WHERE id = 2").unwrap();
    assert_eq!(stmt.num_columns(), 2);
    let row: (String, i64) = c.exec_first(&stmt, ()).unwrap().unwrap();
    assert_eq!(row, (other, 2));
    // Text the first rule does not rewrite stays where it was.
    assert_eq!(
        c.query_first::<i64, _>("SELECT COUNT(*) FROM t").unwrap(),
        Some(2)
    );
    assert_eq!(hits_since(&env, &before), [1 + 2, 1 + 2]);
}

#[test]
fn query_rules_flag_out_switches_to_a_second_set_of_rules() {
    // ProxySQL's usual shape: a rule per user sets a flag, and each flag
    // has its own rules.
    let rules = r"query_rules:
  - match_regex: '.'
    user: ops
    flag_out: 1
    apply: false
  - flag_in: 1
    match_prefix: 'SELECT /* report */'
    hostgroup: other
  - flag_in: 1
    match_prefix: DELETE
    error: 'ops may not delete'
  - match_prefix: 'SELECT /* report */'
    timeout: 5s
";
    let env = env("qr_chain_flags", rules);
    let primary = format!("{}@%", env.backend);
    let other = format!("{}_o@%", env.backend);
    let mut ops = env.client("ops");
    let mut app = env.client("app");
    let before = env.hits();
    // The flag-1 rules take ops's statements, the flag-0 rule app's.
    assert_eq!(
        current_user(&mut ops, "SELECT /* report */ CURRENT_USER()"),
        other
    );
    assert_eq!(
        current_user(&mut app, "SELECT /* report */ CURRENT_USER()"),
        primary
    );
    assert_eq!(
        server_error(ops.query_drop("DELETE FROM t WHERE id = 1").unwrap_err()),
        (1148, "42000".into(), "ops may not delete".into())
    );
    assert_eq!(env.rows_in_t(), 2, "nothing ran");
    app.query_drop("DELETE FROM t WHERE id = 1").unwrap();
    assert_eq!(env.rows_in_t(), 1);
    // Matched by the first rule alone: the user's hostgroups.
    assert_eq!(current_user(&mut ops, "SELECT CURRENT_USER()"), primary);
    assert_eq!(hits_since(&env, &before), [3, 1, 1, 1]);
    // SHOW QUERY RULES shows how the rules chain.
    let rows: Vec<Row> = env.admin().query("SHOW QUERY RULES").unwrap();
    let chaining: Vec<(String, Option<String>, String)> = rows
        .iter()
        .map(|r| {
            (
                r.get("flag_in").unwrap(),
                r.get("flag_out").unwrap(),
                r.get("apply").unwrap(),
            )
        })
        .collect();
    let row = |flag_in: &str, flag_out: Option<&str>, apply: &str| {
        (flag_in.to_string(), flag_out.map(String::from), apply.to_string())
    };
    assert_eq!(
        chaining,
        [
            row("0", Some("1"), "0"),
            row("1", None, "1"),
            row("1", None, "1"),
            row("0", None, "1"),
        ]
    );
}

/// A read cached under a chain answers only reads the same rules matched:
/// here the last rule (its `cache_ttl`) is the same, but for clients of
/// 127.0.0.2 a rule before it sends the read to another hostgroup.
#[test]
fn query_rules_chain_keeps_cached_replies_of_each_chain_apart() {
    let rules = r"query_rules:
  - match_prefix: 'SELECT /* cached */'
    client_addr: 127.0.0.2
    hostgroup: other
    apply: false
  - match_prefix: 'SELECT /* cached */'
    cache_ttl: 60s
";
    // One core: one cache, which both clients' reads would share.
    let env = env_on(1, "qr_chain_cache", rules);
    let primary = format!("{}@%", env.backend);
    let other = format!("{}_o@%", env.backend);
    let from_2 = super::opts(env.proxy.local_addr().port(), "app", "apppw")
        .bind_address(Some(std::net::SocketAddr::from(([127, 0, 0, 2], 0))));
    let mut lan = Conn::new(from_2).unwrap();
    let mut local = env.client("app");
    let sql = "SELECT /* cached */ CURRENT_USER()";
    let before = env.hits();
    for _ in 0..2 {
        assert_eq!(current_user(&mut lan, sql), other);
        assert_eq!(current_user(&mut local, sql), primary);
    }
    assert_eq!(hits_since(&env, &before), [2, 4]);
    // The second round was answered from the cache.
    let snaps = env.proxy.snapshots();
    let lookups = |f: fn(&funnel_engine::control::Counters) -> u64| -> u64 {
        snaps.iter().map(|s| f(&s.counters)).sum()
    };
    assert_eq!(
        (lookups(|c| c.query_cache_hits), lookups(|c| c.query_cache_misses)),
        (2, 2)
    );
}

/// After a reload that changed the rules (here: one rule added at the
/// end), the executes of a statement prepared before follow what the
/// rules make of the text the client prepared, as a new prepare of it
/// would: not of the text a rewrite made of it, which the rules before
/// the rewrite never saw (the flag-3 rule is reached only through the
/// rewriting rule's `flag_out`; the second rule's own `hostgroup` is of a
/// rule that does not match its new text).
#[test]
fn query_rules_chain_executes_after_a_reload_follow_the_text_prepared() {
    let rules = r"query_rules:
  - match_regex: '(?i)^SELECT \* FROM t WHERE id = (?P<id>\d+)$'
    rewrite: 'SELECT /* narrowed */ CURRENT_USER(), id FROM t WHERE id = ${id}'
    flag_out: 3
    apply: false
  - match_regex: '^SELECT v FROM t WHERE id = (\d+)$'
    rewrite: 'SELECT /* v */ CURRENT_USER(), v FROM t WHERE id = $1'
    hostgroup: other
  - flag_in: 3
    match_prefix: 'SELECT /* narrowed */'
    hostgroup: other
";
    let env = env("qr_chain_reload", rules);
    let other = format!("{}_o@%", env.backend);
    let mut c = env.client("app");
    let chained = c.prep("SELECT * FROM t WHERE id = 2").unwrap();
    let single = c.prep("SELECT v FROM t WHERE id = 1").unwrap();
    let run = |c: &mut Conn| {
        let a: (String, i64) = c.exec_first(&chained, ()).unwrap().unwrap();
        let b: (String, i64) = c.exec_first(&single, ()).unwrap().unwrap();
        (a, b)
    };
    let routed = ((other.clone(), 2), (other.clone(), 10));
    assert_eq!(run(&mut c), routed);
    let more = format!("{rules}  - match_prefix: 'SELECT /* unrelated */'\n    hostgroup: other\n");
    let cfg = funnel_config::Config::from_yaml_str(&super::yaml(&env.schema, &env.backend, &more)).unwrap();
    env.proxy.handle().reload(cfg).unwrap();
    assert_eq!(run(&mut c), routed, "the reload changed nothing these rules do");
    // Counted under the new rules: each execute, by the rules that
    // matched its prepared text.
    let hits: Vec<u64> = env.hits().iter().map(|h| h.1).collect();
    assert_eq!(hits, [1, 1, 1, 0]);
}

/// A reload while a rewritten text query waits to be routed (here, its
/// chain's `delay`) routes it by what the new rules make of the text the
/// client sent, as for a statement sent after it: not of the text the
/// rewrite made, which the rules before the rewrite never saw.
#[test]
fn query_rules_chain_reload_while_a_rewritten_query_waits_routes_the_text_sent() {
    let rules = r"query_rules:
  - match_regex: '(?i)^SELECT \* FROM t WHERE id = (?P<id>\d+)$'
    rewrite: 'SELECT /* narrowed */ CURRENT_USER(), id FROM t WHERE id = ${id}'
    delay: 1s
    flag_out: 3
    apply: false
  - flag_in: 3
    match_prefix: 'SELECT /* narrowed */'
    hostgroup: other
";
    let env = env("qr_chain_reload_wait", rules);
    let other = format!("{}_o@%", env.backend);
    let mut c = env.client("app");
    let sent = std::thread::spawn(move || {
        let row: (String, i64) = c.query_first("SELECT * FROM t WHERE id = 1").unwrap().unwrap();
        row
    });
    std::thread::sleep(std::time::Duration::from_millis(300));
    let more = format!("{rules}  - match_prefix: 'SELECT /* unrelated */'\n    hostgroup: other\n");
    let cfg = funnel_config::Config::from_yaml_str(&super::yaml(&env.schema, &env.backend, &more)).unwrap();
    env.proxy.handle().reload(cfg).unwrap();
    assert_eq!(
        sent.join().unwrap(),
        (other, 1),
        "the reload changed nothing these rules do"
    );
}
