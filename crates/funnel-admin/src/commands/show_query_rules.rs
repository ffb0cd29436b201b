//! `SHOW QUERY RULES`: the running `query_rules`, in order, with what each
//! does and the statements it applied to, summed over the cores.

use crate::resultset::{Reply, Table};
use crate::server::AdminContext;

/// Answers `SHOW QUERY RULES`.
pub fn run(ctx: &AdminContext) -> Reply {
    let rules = ctx.handle.config().query_rules;
    let mut hits = vec![0u64; rules.len()];
    for s in ctx.handle.snapshots() {
        for &(index, n) in &s.rule_hits {
            // A core that has not applied a reload yet counts for the
            // rules it had: by place, while the list is as long.
            if let Some(h) = hits.get_mut(index) {
                *h += n;
            }
        }
    }
    let mut t = Table::new(&[
        "rule",
        "match_prefix",
        "match_regex",
        "match_digest",
        "negate_match",
        "user",
        "schema",
        "client_addr",
        "hostgroup",
        "error",
        "ok",
        "timeout",
        "delay",
        "pin",
        "rewrite",
        "cache_ttl",
        "log",
        "hits",
    ]);
    let or_empty = |v: &Option<String>| v.clone().unwrap_or_default();
    for (i, r) in rules.iter().enumerate() {
        t.row(vec![
            i.to_string(),
            or_empty(&r.match_prefix),
            or_empty(&r.match_regex),
            or_empty(&r.match_digest),
            // As ProxySQL's `negate_match_pattern`.
            u8::from(r.negate_match).to_string(),
            or_empty(&r.user),
            or_empty(&r.schema),
            r.client_addr
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_default(),
            or_empty(&r.hostgroup),
            or_empty(&r.error),
            or_empty(&r.ok),
            r.timeout.map(|d| d.to_string()).unwrap_or_default(),
            r.delay.map(|d| d.to_string()).unwrap_or_default(),
            u8::from(r.pin).to_string(),
            or_empty(&r.rewrite),
            r.cache_ttl.map(|d| d.to_string()).unwrap_or_default(),
            r.log.map(|l| u8::from(l).to_string()).unwrap_or_default(),
            hits[i].to_string(),
        ]);
    }
    Reply::Table(t)
}
