//! `SHOW QUERY RULES`: the running `query_rules`, in order, with what each
//! does, how it chains (`flag_in`, `flag_out`, `apply`) and the statements
//! it matched, summed over the cores.

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
        "flag_in",
        "flag_out",
        "apply",
        "hits",
    ]);
    let or_empty = |v: &Option<String>| v.clone().unwrap_or_default();
    for (i, r) in rules.iter().enumerate() {
        let row: Vec<Option<String>> = vec![
            Some(i.to_string()),
            Some(or_empty(&r.match_prefix)),
            Some(or_empty(&r.match_regex)),
            Some(or_empty(&r.match_digest)),
            // As ProxySQL's `negate_match_pattern`.
            Some(u8::from(r.negate_match).to_string()),
            Some(or_empty(&r.user)),
            Some(or_empty(&r.schema)),
            Some(
                r.client_addr
                    .as_ref()
                    .map(ToString::to_string)
                    .unwrap_or_default(),
            ),
            Some(or_empty(&r.hostgroup)),
            Some(or_empty(&r.error)),
            // NULL without `ok`: an empty message answers too.
            r.ok.clone(),
            Some(r.timeout.map(|d| d.to_string()).unwrap_or_default()),
            Some(r.delay.map(|d| d.to_string()).unwrap_or_default()),
            Some(u8::from(r.pin).to_string()),
            Some(or_empty(&r.rewrite)),
            Some(r.cache_ttl.map(|d| d.to_string()).unwrap_or_default()),
            Some(r.log.map(|l| u8::from(l).to_string()).unwrap_or_default()),
            Some(r.flag_in.to_string()),
            // NULL without one, as ProxySQL's `flagOUT`.
            r.flag_out.map(|f| f.to_string()),
            Some(u8::from(r.apply).to_string()),
            Some(hits[i].to_string()),
        ];
        debug_assert_eq!(row.len(), t.columns.len());
        t.rows.push(row);
    }
    Reply::Table(t)
}
