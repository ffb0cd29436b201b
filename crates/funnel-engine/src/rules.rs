//! Query rules: ordered matches on a statement's text (prefix or regular
//! expression), the user and the schema, each naming a hostgroup. The first
//! rule that matches wins. Compiled once per configuration.

use funnel_config::QueryRule;
use regex::bytes::Regex;

/// How a rule matches the statement text.
#[derive(Debug)]
enum Matcher {
    /// Case-insensitive prefix, after leading spaces and comments.
    Prefix(Vec<u8>),
    /// A regular expression anywhere in the text.
    Regex(Regex),
}

/// One compiled rule.
#[derive(Debug)]
struct Rule {
    matcher: Matcher,
    user: Option<String>,
    schema: Option<Vec<u8>>,
    hostgroup: String,
}

/// The configured rules, in order.
#[derive(Debug, Default)]
pub struct Rules(Vec<Rule>);

impl Rules {
    /// Compiles the config's rules (validation already checked the patterns).
    pub fn compile(rules: &[QueryRule]) -> Rules {
        Rules(
            rules
                .iter()
                .filter_map(|r| {
                    let matcher = match (&r.match_prefix, &r.match_regex) {
                        (Some(p), _) => Matcher::Prefix(p.trim_start().as_bytes().to_ascii_lowercase()),
                        (None, Some(re)) => Matcher::Regex(Regex::new(re).ok()?),
                        (None, None) => return None,
                    };
                    Some(Rule {
                        matcher,
                        user: r.user.clone(),
                        schema: r.schema.as_ref().map(|s| s.as_bytes().to_vec()),
                        hostgroup: r.hostgroup.clone(),
                    })
                })
                .collect(),
        )
    }

    /// True when no rule is configured (the common case: skip all work).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The hostgroup of the first rule matching this statement.
    pub fn route(&self, sql: &[u8], user: &str, schema: Option<&[u8]>) -> Option<&str> {
        let head = skip_leading_noise(sql);
        self.0
            .iter()
            .find(|r| {
                r.user.as_deref().is_none_or(|u| u == user)
                    && r.schema.as_deref().is_none_or(|s| Some(s) == schema)
                    && match &r.matcher {
                        Matcher::Prefix(p) => {
                            head.len() >= p.len() && head[..p.len()].eq_ignore_ascii_case(p)
                        }
                        Matcher::Regex(re) => re.is_match(sql),
                    }
            })
            .map(|r| r.hostgroup.as_str())
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
            user: user.map(Into::into),
            schema: schema.map(Into::into),
            hostgroup: hg.into(),
        }
    }

    #[test]
    fn rules_first_match_wins() {
        let rules = Rules::compile(&[
            rule(Some("select /* report */"), None, None, None, "reports"),
            rule(None, Some("(?i)FOR UPDATE"), None, None, "writer"),
            rule(Some("SELECT"), None, Some("bob"), Some("db1"), "readers"),
        ]);
        assert_eq!(
            rules.route(b"  SELECT /* report */ 1", "x", None),
            Some("reports")
        );
        assert_eq!(
            rules.route(b"select * from t for update", "bob", Some(b"db1")),
            Some("writer")
        );
        assert_eq!(
            rules.route(b"/* c */ SELECT 1", "bob", Some(b"db1")),
            Some("readers")
        );
        assert_eq!(
            rules.route(b"SELECT 1", "bob", Some(b"db2")),
            None,
            "schema must match"
        );
        assert_eq!(
            rules.route(b"SELECT 1", "amy", Some(b"db1")),
            None,
            "user must match"
        );
        assert!(Rules::default().is_empty());
    }
}
