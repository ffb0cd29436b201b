//! Query rules: ordered matches on a statement's text (prefix or regular
//! expression), the user, the schema and the client's address. The first rule that matches
//! applies: it rewrites the text, names a hostgroup, refuses the
//! statement or answers it with an OK, bounds its running time, holds it
//! back a while, keeps the client on its connection, or lets the query
//! cache answer it.
//! Compiled once per configuration; each core counts its rules' hits for
//! `SHOW QUERY RULES`.

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use funnel_config::QueryRule;
use funnel_protocol::response::ErrPacket;
use regex::bytes::Regex;

/// How a rule matches the statement text.
#[derive(Debug)]
enum Matcher {
    /// Case-insensitive prefix, after leading spaces and comments.
    Prefix(Vec<u8>),
    /// A regular expression anywhere in the text.
    Regex(Regex),
    /// A regular expression anywhere in the statement's shape (see
    /// [`crate::digest::text`]).
    Digest(Regex),
}

/// What a matching rule does to a statement.
#[derive(Debug, PartialEq, Eq)]
pub struct Action {
    /// Its place in `query_rules`.
    pub index: usize,
    /// Where the statement goes (else the user's hostgroups).
    pub hostgroup: Option<Rc<str>>,
    /// The statement is refused with this ERR, sent nowhere.
    pub refusal: Option<ErrPacket>,
    /// A statement still running after this long is stopped (`KILL QUERY`).
    pub timeout: Option<Duration>,
    /// The statement's text is rewritten first (see [`Rules::rewrite`]).
    pub rewrites: bool,
    /// A read's reply is answered from the core's query cache for this
    /// long after a server gave it.
    pub cache_ttl: Option<Duration>,
    /// The statement goes to the query log (`Some(true)`), or stays out
    /// of it (`Some(false)`) when `query_log.all` logs the rest.
    pub log: Option<bool>,
    /// The statement is answered with an OK carrying this message, sent
    /// nowhere.
    pub ok: Option<Vec<u8>>,
    /// The statement waits this long before it runs.
    pub delay: Option<Duration>,
    /// The session keeps the connection the statement ran on.
    pub pin: bool,
}

impl Action {
    /// The ERR a statement stopped by this rule's timeout gets: MariaDB's
    /// own for `max_statement_time` (1969, 70100), naming the rule.
    pub fn timeout_err(&self) -> Option<ErrPacket> {
        let limit = self.timeout?;
        Some(ErrPacket::new(
            1969,
            "70100",
            format!(
                "Query execution was interrupted (query_rules[{}].timeout of {} ms exceeded)",
                self.index,
                limit.as_millis()
            ),
        ))
    }
}

/// One compiled rule.
#[derive(Debug)]
struct Rule {
    matcher: Matcher,
    /// The rule takes the statements its matcher does not match.
    negate: bool,
    user: Option<String>,
    schema: Option<Vec<u8>>,
    client_addr: Option<funnel_config::HostPattern>,
    action: Rc<Action>,
    /// What replaces each match of its regular expression.
    rewrite: Option<Vec<u8>>,
    /// Statements it applied to on this core.
    hits: Cell<u64>,
}

/// The statement being matched, with its shape made once, when a rule
/// first needs it.
struct Statement<'a> {
    sql: &'a [u8],
    head: &'a [u8],
    shape: Option<String>,
}

impl Rule {
    fn matches(&self, stmt: &mut Statement<'_>, user: &str, schema: Option<&[u8]>, peer: &str) -> bool {
        self.user.as_deref().is_none_or(|u| u == user)
            && self.schema.as_deref().is_none_or(|s| Some(s) == schema)
            && self.client_addr.as_ref().is_none_or(|a| a.matches(peer))
            && self.negate
                != match &self.matcher {
                    Matcher::Prefix(p) => {
                        stmt.head.len() >= p.len() && stmt.head[..p.len()].eq_ignore_ascii_case(p)
                    }
                    Matcher::Regex(re) => re.is_match(stmt.sql),
                    Matcher::Digest(re) => {
                        let sql = stmt.sql;
                        re.is_match(
                            stmt.shape
                                .get_or_insert_with(|| crate::digest::text(sql))
                                .as_bytes(),
                        )
                    }
                }
    }
}

/// The configured rules, in order.
#[derive(Debug, Default)]
pub struct Rules(Vec<Rule>, u32);

/// Numbers each compiled rule set in the process (0: none compiled).
static COMPILED: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

/// ER_NOT_ALLOWED_COMMAND: what ProxySQL answers a statement its rules
/// refuse, so clients moved from it see the same code.
const REFUSED_CODE: u16 = 1148;

impl Rules {
    /// Compiles the config's rules (validation already checked the patterns).
    pub fn compile(rules: &[QueryRule]) -> Rules {
        Rules(
            rules
                .iter()
                .enumerate()
                .filter_map(|(index, r)| {
                    let matcher = match (&r.match_prefix, &r.match_regex, &r.match_digest) {
                        (Some(p), _, _) => Matcher::Prefix(p.trim_start().as_bytes().to_ascii_lowercase()),
                        (None, Some(re), _) => Matcher::Regex(Regex::new(re).ok()?),
                        (None, None, Some(re)) => Matcher::Digest(Regex::new(re).ok()?),
                        (None, None, None) => return None,
                    };
                    Some(Rule {
                        matcher,
                        negate: r.negate_match,
                        user: r.user.clone(),
                        schema: r.schema.as_ref().map(|s| s.as_bytes().to_vec()),
                        client_addr: r.client_addr.clone(),
                        action: Rc::new(Action {
                            index,
                            hostgroup: r.hostgroup.as_deref().map(Rc::from),
                            refusal: r.error.as_ref().map(|m| ErrPacket::new(REFUSED_CODE, "42000", m)),
                            timeout: r.timeout.map(|t| t.as_duration()),
                            rewrites: r.rewrite.is_some(),
                            cache_ttl: r.cache_ttl.map(|t| t.as_duration()),
                            log: r.log,
                            ok: r.ok.as_ref().map(|m| m.as_bytes().to_vec()),
                            delay: r.delay.map(|t| t.as_duration()),
                            pin: r.pin,
                        }),
                        rewrite: r.rewrite.as_ref().map(|t| t.as_bytes().to_vec()),
                        hits: Cell::new(0),
                    })
                })
                .collect(),
            COMPILED
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
                .wrapping_add(1),
        )
    }

    /// Tells this compilation from every other (never 0): a statement
    /// matched against it keeps its rule while the shard still has it.
    pub fn id(&self) -> u32 {
        self.1
    }

    /// True when no rule is configured (the common case: skip all work).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn first(&self, sql: &[u8], user: &str, schema: Option<&[u8]>, peer: &str) -> Option<&Rule> {
        let mut stmt = Statement {
            sql,
            head: skip_leading_noise(sql),
            shape: None,
        };
        self.0.iter().find(|r| r.matches(&mut stmt, user, schema, peer))
    }

    /// The action of the first rule matching this statement, sent by
    /// `user` in `schema` from `peer` (its host as Funnel names it),
    /// counted as a hit: call it once per statement the client sent.
    pub fn apply(&self, sql: &[u8], user: &str, schema: Option<&[u8]>, peer: &str) -> Option<Rc<Action>> {
        let rule = self.first(sql, user, schema, peer)?;
        rule.hits.set(rule.hits.get() + 1);
        Some(rule.action.clone())
    }

    /// Counts a hit of the rule of `action`, matched earlier against these
    /// rules (a prepared statement's execute follows its prepare's rule).
    pub fn count_hit(&self, action: &Action) {
        if let Some(rule) = self.0.iter().find(|r| r.action.index == action.index) {
            rule.hits.set(rule.hits.get() + 1);
        }
    }

    /// The hostgroup the first rule matching this statement names, if it
    /// names one (not counted: a statement is routed more than once).
    pub fn route(&self, sql: &[u8], user: &str, schema: Option<&[u8]>, peer: &str) -> Option<Rc<str>> {
        self.first(sql, user, schema, peer)?.action.hostgroup.clone()
    }

    /// The action of the first rule matching this statement, not counted.
    pub fn route_rule(
        &self,
        sql: &[u8],
        user: &str,
        schema: Option<&[u8]>,
        peer: &str,
    ) -> Option<Rc<Action>> {
        Some(self.first(sql, user, schema, peer)?.action.clone())
    }

    /// The text `sql` becomes under the rule of `action`, when it rewrites
    /// and its expression finds something to replace (every match, as
    /// `regex`'s `replace_all`).
    pub fn rewrite(&self, action: &Action, sql: &[u8]) -> Option<Vec<u8>> {
        let rule = self.0.iter().find(|r| r.action.index == action.index)?;
        match (&rule.matcher, &rule.rewrite) {
            (Matcher::Regex(re), Some(with)) => match re.replace_all(sql, with.as_slice()) {
                std::borrow::Cow::Owned(text) => Some(text),
                std::borrow::Cow::Borrowed(_) => None,
            },
            _ => None,
        }
    }

    /// Each rule's hits on this core, by its place in `query_rules`.
    pub fn hits(&self) -> Vec<(usize, u64)> {
        self.0.iter().map(|r| (r.action.index, r.hits.get())).collect()
    }
}

/// The text after leading whitespace and ordinary comments.
fn skip_leading_noise(sql: &[u8]) -> &[u8] {
    let mut s = sql.trim_ascii_start();
    loop {
        if s.starts_with(b"/*") && !s.starts_with(b"/*!") {
            match s.windows(2).position(|w| w == b"*/") {
                Some(e) => s = s[e + 2..].trim_ascii_start(),
                None => return &[],
            }
        } else if s.starts_with(b"-- ") || s.starts_with(b"#") {
            match s.iter().position(|&c| c == b'\n') {
                Some(e) => s = s[e + 1..].trim_ascii_start(),
                None => return &[],
            }
        } else {
            return s;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(
        prefix: Option<&str>,
        regex: Option<&str>,
        user: Option<&str>,
        schema: Option<&str>,
        hg: &str,
    ) -> QueryRule {
        QueryRule {
            match_prefix: prefix.map(Into::into),
            match_regex: regex.map(Into::into),
            match_digest: None,
            negate_match: false,
            user: user.map(Into::into),
            schema: schema.map(Into::into),
            client_addr: None,
            hostgroup: Some(hg.into()),
            error: None,
            timeout: None,
            rewrite: None,
            cache_ttl: None,
            log: None,
            ok: None,
            delay: None,
            pin: false,
        }
    }

    fn route(rules: &Rules, sql: &[u8], user: &str, schema: Option<&[u8]>) -> Option<String> {
        rules.route(sql, user, schema, "127.0.0.1").map(|h| h.to_string())
    }

    #[test]
    fn rules_negate_match_takes_what_the_pattern_does_not() {
        let mut not_select = rule(None, Some("(?i)^\\s*SELECT"), Some("app"), None, "writer");
        not_select.negate_match = true;
        let rules = Rules::compile(&[not_select]);
        assert_eq!(
            route(&rules, b"UPDATE t SET a = 1", "app", None),
            Some("writer".into())
        );
        assert_eq!(route(&rules, b"  select 1", "app", None), None);
        assert_eq!(
            route(&rules, b"UPDATE t SET a = 1", "other", None),
            None,
            "the user still narrows it"
        );
    }

    #[test]
    fn rules_client_addr_limits_a_rule_to_its_clients() {
        let mut lan = rule(Some("SELECT"), None, None, None, "lan");
        lan.client_addr = Some("10.0.0.0/8".to_string().try_into().unwrap());
        let mut local = rule(Some("SELECT"), None, None, None, "local");
        local.client_addr = Some("localhost".to_string().try_into().unwrap());
        let rules = Rules::compile(&[lan, local]);
        let route = |peer: &str| rules.route(b"SELECT 1", "u", None, peer).map(|h| h.to_string());
        assert_eq!(route("10.3.4.5"), Some("lan".into()));
        assert_eq!(route("localhost"), Some("local".into()));
        assert_eq!(route("192.168.1.1"), None);
    }

    #[test]
    fn rules_first_match_wins() {
        let rules = Rules::compile(&[
            rule(Some("select /* report */"), None, None, None, "reports"),
            rule(None, Some("(?i)FOR UPDATE"), None, None, "writer"),
            rule(Some("SELECT"), None, Some("bob"), Some("db1"), "readers"),
        ]);
        assert_eq!(
            route(&rules, b"  SELECT /* report */ 1", "x", None),
            Some("reports".into())
        );
        assert_eq!(
            route(&rules, b"select * from t for update", "bob", Some(b"db1")),
            Some("writer".into())
        );
        assert_eq!(
            route(&rules, b"/* c */ SELECT 1", "bob", Some(b"db1")),
            Some("readers".into())
        );
        assert_eq!(
            route(&rules, b"SELECT 1", "bob", Some(b"db2")),
            None,
            "schema must match"
        );
        assert_eq!(
            route(&rules, b"SELECT 1", "amy", Some(b"db1")),
            None,
            "user must match"
        );
        assert!(Rules::default().is_empty());
    }

    #[test]
    fn rules_refuse_or_time_out_and_count_their_hits() {
        let mut refuse = rule(None, Some("(?i)^DELETE FROM \\w+$"), None, None, "x");
        (refuse.hostgroup, refuse.error) = (None, Some("no DELETE without WHERE".into()));
        let mut slow = rule(Some("SELECT"), None, None, None, "x");
        (slow.hostgroup, slow.timeout) = (None, Some(funnel_config::HumanDuration::from_millis(250)));
        let rules = Rules::compile(&[refuse, slow, rule(Some("SELECT"), None, None, None, "never")]);
        let refused = rules.apply(b"delete from t", "u", None, "127.0.0.1").unwrap();
        let err = refused.refusal.as_ref().unwrap();
        assert_eq!((err.code, &err.sql_state), (1148, b"42000"));
        assert_eq!(err.message, b"no DELETE without WHERE");
        assert!(rules
            .apply(b"DELETE FROM t WHERE id = 1", "u", None, "127.0.0.1")
            .is_none());
        let timed = rules.apply(b"SELECT 1", "u", None, "127.0.0.1").unwrap();
        assert_eq!(timed.timeout, Some(Duration::from_millis(250)));
        let err = timed.timeout_err().unwrap();
        assert_eq!((err.code, &err.sql_state), (1969, b"70100"));
        assert_eq!(
            String::from_utf8_lossy(&err.message),
            "Query execution was interrupted (query_rules[1].timeout of 250 ms exceeded)"
        );
        // The first match applies whole: a later rule's hostgroup does not.
        assert_eq!(route(&rules, b"SELECT 1", "u", None), None);
        rules.apply(b"SELECT 2", "u", None, "127.0.0.1");
        assert_eq!(rules.hits(), [(0, 1), (1, 2), (2, 0)]);
    }

    #[test]
    fn rules_rewrite_every_match_with_its_groups() {
        let mut star = rule(
            None,
            Some("(?i)^SELECT \\* FROM (?P<t>orders|items)\\b"),
            None,
            None,
            "x",
        );
        (star.hostgroup, star.rewrite) = (None, Some("SELECT id, total FROM ${t}".into()));
        let mut hint = rule(None, Some("(?i)FROM big\\b"), None, None, "x");
        (hint.hostgroup, hint.rewrite) = (None, Some("FROM big FORCE INDEX (k)".into()));
        let rules = Rules::compile(&[star, hint]);
        let apply = |sql: &[u8]| {
            let action = rules.apply(sql, "u", None, "127.0.0.1").unwrap();
            assert!(action.rewrites);
            rules.rewrite(&action, sql)
        };
        assert_eq!(
            apply(b"select * from orders where id = 1").as_deref(),
            Some(&b"SELECT id, total FROM orders where id = 1"[..])
        );
        assert_eq!(
            apply(b"SELECT 1 FROM big JOIN (SELECT a FROM big) x").as_deref(),
            Some(&b"SELECT 1 FROM big FORCE INDEX (k) JOIN (SELECT a FROM big FORCE INDEX (k)) x"[..])
        );
    }

    #[test]
    fn rules_match_a_statement_by_its_shape() {
        let mut shape = rule(None, None, None, None, "readers");
        shape.match_digest = Some(r"^SELECT c FROM sbtest1 WHERE id=\?$".into());
        let rules = Rules::compile(&[shape]);
        assert_eq!(
            route(&rules, b"SELECT c FROM sbtest1 WHERE id=42", "u", None),
            Some("readers".into())
        );
        assert_eq!(
            route(&rules, b"SELECT  c FROM sbtest1 /* x */ WHERE id=7", "u", None),
            Some("readers".into()),
            "spacing and comments fold"
        );
        assert_eq!(
            route(&rules, b"SELECT c FROM sbtest1 WHERE id=c", "u", None),
            None
        );
    }
}
