//! Query rules: ordered matches on a statement's text (prefix or regular
//! expression), the user, the schema and the client's address. A rule that
//! matches rewrites the text, names a hostgroup, refuses the statement or
//! answers it with an OK, bounds its running time, holds it back a while,
//! keeps the client on its connection, or lets the query cache answer it.
//!
//! Evaluation follows ProxySQL's `mysql_query_rules` (its Query_Processor):
//! it starts with flag 0 and tries, in order, the rules whose `flag_in` is
//! the current flag. A rule that matches adds its actions to those of the
//! rules that matched before it (a later one overrides what both set); its
//! `flag_out`, if it has one, becomes the current flag; its rewrite
//! changes the text the later rules match; and unless it has `apply:
//! false` (or if it answers the statement: `error`, `ok`) evaluation stops
//! there. Without `apply: false` anywhere, the first rule that matches
//! applies whole, as it is compiled: a statement costs what it did before
//! rules chained, and an [`Action`] is made only when several rules
//! combined.
//!
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

/// What the rules that matched a statement do to it: one rule's actions,
/// or those of a chain combined (see the module's documentation).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Action {
    /// The rules that matched, by their places in `query_rules`, in the
    /// order they did: one, unless rules chained.
    pub matched: Rc<[usize]>,
    /// The last rule that matched, where evaluation stopped (for a
    /// single rule, the rule): the one an `ok`'s or `error`'s messages name.
    pub index: usize,
    /// Where the statement goes (else the user's hostgroups).
    pub hostgroup: Option<Rc<str>>,
    /// The statement is refused with this ERR, sent nowhere.
    pub refusal: Option<ErrPacket>,
    /// A statement still running after this long is stopped (`KILL QUERY`).
    pub timeout: Option<Duration>,
    /// The rule that set `timeout` (its ERR names it).
    timeout_rule: usize,
    /// The first rule that rewrote the statement's text, if one did.
    pub rewrite_rule: Option<usize>,
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
    /// The ERR a statement stopped by the rules' timeout gets: MariaDB's
    /// own for `max_statement_time` (1969, 70100), naming the rule that
    /// set it.
    pub fn timeout_err(&self) -> Option<ErrPacket> {
        let limit = self.timeout?;
        Some(ErrPacket::new(
            1969,
            "70100",
            format!(
                "Query execution was interrupted (query_rules[{}].timeout of {} ms exceeded)",
                self.timeout_rule,
                limit.as_millis()
            ),
        ))
    }

    /// True when the statement is answered here (`error`, `ok`): it ends
    /// evaluation.
    fn answers(&self) -> bool {
        self.refusal.is_some() || self.ok.is_some()
    }

    /// Adds the actions of `later`, a rule that matched after these: what
    /// it sets overrides (`hostgroup`, `timeout`, `cache_ttl`, `log`,
    /// `delay`), `pin` adds up, and the first rewrite stays named. When it
    /// answers the statement (`error`, `ok`), the statement runs nowhere:
    /// only the answer and `log` are left.
    fn add(&mut self, later: &Action) {
        self.index = later.index;
        self.log = later.log.or(self.log);
        if later.answers() {
            self.refusal.clone_from(&later.refusal);
            self.ok.clone_from(&later.ok);
            (self.hostgroup, self.timeout, self.cache_ttl, self.delay) = (None, None, None, None);
            self.pin = false;
            return;
        }
        if later.hostgroup.is_some() {
            self.hostgroup.clone_from(&later.hostgroup);
        }
        if later.timeout.is_some() {
            (self.timeout, self.timeout_rule) = (later.timeout, later.timeout_rule);
        }
        self.rewrite_rule = self.rewrite_rule.or(later.rewrite_rule);
        self.cache_ttl = later.cache_ttl.or(self.cache_ttl);
        self.delay = later.delay.or(self.delay);
        self.pin |= later.pin;
    }
}

/// What the rules make of a statement.
#[derive(Debug)]
pub struct Applied {
    /// What the rules that matched do.
    pub action: Rc<Action>,
    /// The statement's new text, when a rule rewrote it.
    pub text: Option<Vec<u8>>,
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
    /// Tried only while evaluation's flag is this.
    flag_in: u32,
    /// Evaluation's flag after a match.
    flag_out: Option<u32>,
    /// Evaluation stops at a match.
    apply: bool,
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

impl<'a> Statement<'a> {
    fn new(sql: &'a [u8]) -> Self {
        Statement {
            sql,
            head: skip_leading_noise(sql),
            shape: None,
        }
    }
}

/// Who sent a statement: the user, the current schema, the client's host.
struct Sender<'a> {
    user: &'a str,
    schema: Option<&'a [u8]>,
    peer: &'a str,
}

impl Rule {
    fn matches(&self, stmt: &mut Statement<'_>, who: &Sender<'_>) -> bool {
        self.user.as_deref().is_none_or(|u| u == who.user)
            && self.schema.as_deref().is_none_or(|s| Some(s) == who.schema)
            && self.client_addr.as_ref().is_none_or(|a| a.matches(who.peer))
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

    /// The text `sql` becomes under this rule, when it rewrites and its
    /// expression finds something to replace (every match, as `regex`'s
    /// `replace_all`).
    fn rewritten(&self, sql: &[u8]) -> Option<Vec<u8>> {
        match (&self.matcher, &self.rewrite) {
            (Matcher::Regex(re), Some(with)) => match re.replace_all(sql, with.as_slice()) {
                std::borrow::Cow::Owned(text) => Some(text),
                std::borrow::Cow::Borrowed(_) => None,
            },
            _ => None,
        }
    }

    fn count(&self) {
        self.hits.set(self.hits.get() + 1);
    }
}

/// The actions of the rules a chain matched so far.
enum Combined<'r> {
    /// One rule: its compiled action, shared.
    One(&'r Rule),
    /// Several: their actions combined, and their places.
    Many(Action, Vec<usize>),
}

impl<'r> Combined<'r> {
    fn add(this: &mut Option<Self>, rule: &'r Rule) {
        *this = Some(match this.take() {
            None => Combined::One(rule),
            Some(Combined::One(first)) => {
                let mut action = Action::clone(&first.action);
                action.add(&rule.action);
                Combined::Many(action, vec![first.action.index, rule.action.index])
            }
            Some(Combined::Many(mut action, mut matched)) => {
                action.add(&rule.action);
                matched.push(rule.action.index);
                Combined::Many(action, matched)
            }
        });
    }

    fn action(self) -> Rc<Action> {
        match self {
            Combined::One(rule) => rule.action.clone(),
            Combined::Many(mut action, matched) => {
                action.matched = matched.into();
                Rc::new(action)
            }
        }
    }
}

/// The configured rules, in order.
#[derive(Debug, Default)]
pub struct Rules {
    rules: Vec<Rule>,
    /// See [`Rules::id`].
    id: u32,
    /// Some rule goes on after it matched (`apply: false`): evaluation
    /// follows flags and combines actions. Else the first rule that
    /// matches applies, alone.
    chains: bool,
}

/// Numbers each compiled rule set in the process (0: none compiled).
static COMPILED: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

/// ER_NOT_ALLOWED_COMMAND: what ProxySQL answers a statement its rules
/// refuse, so clients moved from it see the same code.
const REFUSED_CODE: u16 = 1148;

impl Rules {
    /// Compiles the config's rules (validation already checked the patterns).
    pub fn compile(rules: &[QueryRule]) -> Rules {
        let chains = rules.iter().any(|r| !r.apply);
        Rules {
            rules: rules
                .iter()
                .enumerate()
                // Without a rule that goes on, the flag stays 0.
                .filter(|(_, r)| chains || r.flag_in == 0)
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
                            matched: Rc::from([index]),
                            index,
                            hostgroup: r.hostgroup.as_deref().map(Rc::from),
                            refusal: r.error.as_ref().map(|m| ErrPacket::new(REFUSED_CODE, "42000", m)),
                            timeout: r.timeout.map(|t| t.as_duration()),
                            timeout_rule: index,
                            rewrite_rule: r.rewrite.is_some().then_some(index),
                            cache_ttl: r.cache_ttl.map(|t| t.as_duration()),
                            log: r.log,
                            ok: r.ok.as_ref().map(|m| m.as_bytes().to_vec()),
                            delay: r.delay.map(|t| t.as_duration()),
                            pin: r.pin,
                        }),
                        rewrite: r.rewrite.as_ref().map(|t| t.as_bytes().to_vec()),
                        flag_in: r.flag_in,
                        flag_out: r.flag_out,
                        apply: r.apply,
                        hits: Cell::new(0),
                    })
                })
                .collect(),
            id: COMPILED
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
                .wrapping_add(1),
            chains,
        }
    }

    /// Tells this compilation from every other (never 0): a statement
    /// matched against it keeps its rule while the shard still has it.
    pub fn id(&self) -> u32 {
        self.id
    }

    /// True when no rule is configured (the common case: skip all work).
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    fn first(&self, sql: &[u8], who: &Sender<'_>) -> Option<&Rule> {
        let mut stmt = Statement::new(sql);
        self.rules.iter().find(|r| r.matches(&mut stmt, who))
    }

    /// What the rules do to this statement, sent by `user` in `schema`
    /// from `peer` (its host as Funnel names it), with its text as they
    /// rewrote it; every rule that matched counts a hit: call it once per
    /// statement the client sent.
    pub fn apply(&self, sql: &[u8], user: &str, schema: Option<&[u8]>, peer: &str) -> Option<Applied> {
        let who = Sender { user, schema, peer };
        if self.chains {
            return self.chain(sql, &who, true);
        }
        let rule = self.first(sql, &who)?;
        rule.count();
        Some(Applied {
            action: rule.action.clone(),
            text: rule.rewritten(sql),
        })
    }

    /// Evaluates a chain (see the module's documentation), counting the
    /// rules that match when `count`.
    fn chain(&self, sql: &[u8], who: &Sender<'_>, count: bool) -> Option<Applied> {
        let mut flag = 0;
        let mut combined = None;
        let mut text: Option<Vec<u8>> = None;
        let mut next = 0;
        'text: loop {
            // The text as rewritten so far, which the rules after a
            // rewrite match.
            let current = text.as_deref().unwrap_or(sql);
            let mut stmt = Statement::new(current);
            for (at, rule) in self.rules.iter().enumerate().skip(next) {
                if rule.flag_in != flag || !rule.matches(&mut stmt, who) {
                    continue;
                }
                if count {
                    rule.count();
                }
                Combined::add(&mut combined, rule);
                if rule.action.answers() {
                    break 'text;
                }
                flag = rule.flag_out.unwrap_or(flag);
                if let Some(new) = rule.rewritten(current) {
                    text = Some(new);
                    if rule.apply {
                        break 'text;
                    }
                    next = at + 1;
                    continue 'text;
                }
                if rule.apply {
                    break 'text;
                }
            }
            break;
        }
        Some(Applied {
            action: combined?.action(),
            text,
        })
    }

    /// Counts a hit of each rule of `action`, matched earlier against
    /// these rules (a prepared statement's execute follows its prepare's
    /// rules).
    pub fn count_hit(&self, action: &Action) {
        for &index in action.matched.iter() {
            if let Some(rule) = self.rules.iter().find(|r| r.action.index == index) {
                rule.count();
            }
        }
    }

    /// The hostgroup the rules matching this statement name, if they name
    /// one (not counted: a statement is routed more than once).
    pub fn route(&self, sql: &[u8], user: &str, schema: Option<&[u8]>, peer: &str) -> Option<Rc<str>> {
        self.route_rule(sql, user, schema, peer)?.hostgroup.clone()
    }

    /// What the rules matching this statement do, not counted.
    pub fn route_rule(
        &self,
        sql: &[u8],
        user: &str,
        schema: Option<&[u8]>,
        peer: &str,
    ) -> Option<Rc<Action>> {
        let who = Sender { user, schema, peer };
        if self.chains {
            return Some(self.chain(sql, &who, false)?.action);
        }
        Some(self.first(sql, &who)?.action.clone())
    }

    /// Each rule's hits on this core, by its place in `query_rules`.
    pub fn hits(&self) -> Vec<(usize, u64)> {
        self.rules
            .iter()
            .map(|r| (r.action.index, r.hits.get()))
            .collect()
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
            apply: true,
            flag_in: 0,
            flag_out: None,
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
        let refused = rules
            .apply(b"delete from t", "u", None, "127.0.0.1")
            .unwrap()
            .action;
        let err = refused.refusal.as_ref().unwrap();
        assert_eq!((err.code, &err.sql_state), (1148, b"42000"));
        assert_eq!(err.message, b"no DELETE without WHERE");
        assert!(rules
            .apply(b"DELETE FROM t WHERE id = 1", "u", None, "127.0.0.1")
            .is_none());
        let timed = rules.apply(b"SELECT 1", "u", None, "127.0.0.1").unwrap().action;
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
            let applied = rules.apply(sql, "u", None, "127.0.0.1").unwrap();
            assert!(applied.action.rewrite_rule.is_some());
            applied.text
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

    /// A rule matching `prefix` that does nothing yet (tests set the rest).
    fn on(prefix: &str) -> QueryRule {
        QueryRule {
            hostgroup: None,
            ..rule(Some(prefix), None, None, None, "")
        }
    }

    /// A rule matching `regex` that does nothing yet.
    fn on_regex(regex: &str) -> QueryRule {
        QueryRule {
            hostgroup: None,
            ..rule(None, Some(regex), None, None, "")
        }
    }

    fn go_on(r: QueryRule) -> QueryRule {
        QueryRule { apply: false, ..r }
    }

    fn ms(n: u64) -> Option<funnel_config::HumanDuration> {
        Some(funnel_config::HumanDuration::from_millis(n))
    }

    fn apply(rules: &Rules, sql: &str) -> Option<Applied> {
        rules.apply(sql.as_bytes(), "u", None, "127.0.0.1")
    }

    #[test]
    fn rules_chain_adds_the_actions_of_later_matches() {
        let rules = Rules::compile(&[
            go_on(QueryRule {
                timeout: ms(2000),
                ..on_regex(".")
            }),
            QueryRule {
                hostgroup: Some("readers".into()),
                ..on("SELECT")
            },
            QueryRule {
                hostgroup: Some("never".into()),
                ..on("SELECT")
            },
        ]);
        let select = apply(&rules, "SELECT 1").unwrap();
        assert_eq!(select.text, None);
        let action = select.action;
        assert_eq!(action.hostgroup.as_deref(), Some("readers"));
        assert_eq!(action.timeout, Some(Duration::from_millis(2000)));
        assert_eq!((&action.matched[..], action.index), (&[0, 1][..], 1));
        // The timeout's ERR names the rule that set it.
        assert_eq!(
            String::from_utf8_lossy(&action.timeout_err().unwrap().message),
            "Query execution was interrupted (query_rules[0].timeout of 2000 ms exceeded)"
        );
        // A statement only the first rule matches: its compiled action,
        // shared (nothing was made for it).
        let update = apply(&rules, "UPDATE t SET a = 1").unwrap().action;
        let again = apply(&rules, "DELETE FROM t").unwrap().action;
        assert!(Rc::ptr_eq(&update, &again));
        assert_eq!(
            (&update.matched[..], update.hostgroup.as_deref()),
            (&[0][..], None)
        );
        assert_eq!(rules.hits(), [(0, 3), (1, 1), (2, 0)]);
        // Routing evaluates the chain too, uncounted.
        assert_eq!(route(&rules, b"select 2", "u", None), Some("readers".into()));
        assert_eq!(
            rules
                .route_rule(b"select 2", "u", None, "127.0.0.1")
                .unwrap()
                .timeout,
            Some(Duration::from_millis(2000))
        );
        assert_eq!(rules.hits(), [(0, 3), (1, 1), (2, 0)]);
        // An execute following its prepare's chain counts each rule again.
        rules.count_hit(&action);
        assert_eq!(rules.hits(), [(0, 4), (1, 2), (2, 0)]);
    }

    #[test]
    fn rules_chain_later_rules_override_what_they_set() {
        let rules = Rules::compile(&[
            go_on(QueryRule {
                timeout: ms(1000),
                hostgroup: Some("a".into()),
                log: Some(true),
                delay: ms(5),
                pin: true,
                ..on("SELECT")
            }),
            go_on(QueryRule {
                timeout: ms(3000),
                log: Some(false),
                ..on("SELECT")
            }),
            go_on(QueryRule {
                cache_ttl: ms(700),
                ..on_regex("cached")
            }),
            go_on(QueryRule {
                delay: ms(9),
                ..on_regex("slow")
            }),
        ]);
        let a = apply(&rules, "SELECT cached").unwrap().action;
        assert_eq!(a.hostgroup.as_deref(), Some("a"), "kept: no later rule set one");
        assert_eq!(a.timeout, Some(Duration::from_millis(3000)));
        assert!(a
            .timeout_err()
            .unwrap()
            .message
            .starts_with(b"Query execution was interrupted (query_rules[1]"));
        assert_eq!(a.log, Some(false));
        assert_eq!(a.cache_ttl, Some(Duration::from_millis(700)));
        assert_eq!(a.delay, Some(Duration::from_millis(5)));
        assert!(a.pin, "a pin of any rule stays");
        assert_eq!((&a.matched[..], a.index), (&[0, 1, 2][..], 2));
        let b = apply(&rules, "SELECT slow").unwrap().action;
        assert_eq!((b.delay, b.cache_ttl), (Some(Duration::from_millis(9)), None));
        assert_eq!(&b.matched[..], [0, 1, 3]);
    }

    #[test]
    fn rules_chain_follows_flags() {
        let rules = Rules::compile(&[
            // Never tried: evaluation reaches flag 5 only after rule 1.
            QueryRule {
                flag_in: 5,
                hostgroup: Some("too_early".into()),
                ..on_regex(".")
            },
            go_on(QueryRule {
                flag_out: Some(5),
                ..on("SELECT")
            }),
            QueryRule {
                hostgroup: Some("flag_0".into()),
                ..on("SELECT")
            },
            QueryRule {
                flag_in: 5,
                hostgroup: Some("reports".into()),
                ..on("SELECT /* report */")
            },
            QueryRule {
                flag_in: 5,
                hostgroup: Some("other_reads".into()),
                ..on_regex(".")
            },
            QueryRule {
                hostgroup: Some("writes".into()),
                ..on_regex(".")
            },
        ]);
        let hostgroup = |sql: &str| {
            let a = apply(&rules, sql).unwrap().action;
            (a.hostgroup.as_deref().map(String::from), a.matched.to_vec())
        };
        assert_eq!(
            hostgroup("SELECT /* report */ 1"),
            (Some("reports".into()), vec![1, 3])
        );
        assert_eq!(hostgroup("SELECT 1"), (Some("other_reads".into()), vec![1, 4]));
        assert_eq!(hostgroup("UPDATE t SET a = 1"), (Some("writes".into()), vec![5]));
        assert_eq!(rules.hits(), [(0, 0), (1, 2), (2, 0), (3, 1), (4, 1), (5, 1)]);
    }

    #[test]
    fn rules_chain_matches_the_text_as_rewritten() {
        let rules = Rules::compile(&[
            go_on(QueryRule {
                rewrite: Some("SELECT id FROM ${t}".into()),
                ..on_regex(r"(?i)^SELECT \* FROM (?P<t>\w+)")
            }),
            go_on(QueryRule {
                rewrite: Some("FROM orders_archive".into()),
                ..on_regex(r"FROM orders\b")
            }),
            QueryRule {
                hostgroup: Some("archive".into()),
                ..on("select id from orders_archive")
            },
            QueryRule {
                hostgroup: Some("shape".into()),
                match_prefix: None,
                match_digest: Some(r"^SELECT id FROM items WHERE id ?= ?\?$".into()),
                ..on("x")
            },
        ]);
        let orders = apply(&rules, "select * from orders").unwrap();
        assert_eq!(
            orders.text.as_deref(),
            Some(&b"SELECT id FROM orders_archive"[..])
        );
        assert_eq!(orders.action.hostgroup.as_deref(), Some("archive"));
        assert_eq!(
            (&orders.action.matched[..], orders.action.rewrite_rule),
            (&[0, 1, 2][..], Some(0))
        );
        // The statement's shape is made from the rewritten text.
        let items = apply(&rules, "SELECT * FROM items WHERE id = 7").unwrap();
        assert_eq!(
            items.text.as_deref(),
            Some(&b"SELECT id FROM items WHERE id = 7"[..])
        );
        assert_eq!(items.action.hostgroup.as_deref(), Some("shape"));
        assert_eq!(&items.action.matched[..], [0, 3]);
    }

    #[test]
    fn rules_chain_ends_at_an_answer() {
        let rules = Rules::compile(&[
            go_on(QueryRule {
                hostgroup: Some("a".into()),
                timeout: ms(10),
                delay: ms(10),
                pin: true,
                log: Some(true),
                ..on_regex(".")
            }),
            QueryRule {
                error: Some("no DELETE".into()),
                ..on("DELETE")
            },
            QueryRule {
                ok: Some("skipped".into()),
                ..on("SET sql_log_bin")
            },
            QueryRule {
                hostgroup: Some("never".into()),
                ..on_regex(".")
            },
        ]);
        let refused = apply(&rules, "DELETE FROM t").unwrap().action;
        assert_eq!(refused.refusal.as_ref().unwrap().message, b"no DELETE");
        // Refused, it runs nowhere; it is still logged as the chain says.
        assert_eq!(
            (
                refused.hostgroup.as_deref(),
                refused.timeout,
                refused.delay,
                refused.pin
            ),
            (None, None, None, false)
        );
        assert_eq!(
            (refused.log, &refused.matched[..], refused.index),
            (Some(true), &[0, 1][..], 1)
        );
        let answered = apply(&rules, "SET sql_log_bin = 0").unwrap().action;
        assert_eq!(answered.ok.as_deref(), Some(&b"skipped"[..]));
        assert_eq!((answered.hostgroup.as_deref(), answered.index), (None, 2));
        assert_eq!(rules.hits(), [(0, 2), (1, 1), (2, 1), (3, 0)]);
    }

    #[test]
    fn rules_without_apply_false_ignore_flags_and_stop_at_the_first_match() {
        // A flag_in other than 0 with no rule that goes on: never tried
        // (validation refuses it), and evaluation is the first match's.
        let rules = Rules::compile(&[
            QueryRule {
                flag_in: 1,
                hostgroup: Some("flagged".into()),
                ..on("SELECT")
            },
            QueryRule {
                timeout: ms(5),
                ..on("SELECT")
            },
            QueryRule {
                hostgroup: Some("later".into()),
                ..on("SELECT")
            },
        ]);
        assert!(!rules.chains);
        let a = apply(&rules, "SELECT 1").unwrap().action;
        assert_eq!((a.hostgroup.as_deref(), &a.matched[..]), (None, &[1][..]));
        assert_eq!(rules.hits(), [(1, 1), (2, 0)]);
    }
}
