//! `SHOW DIGESTS`: each statement shape with its count, time, rows, errors,
//! the clients it pinned and how many of its executions Funnel answered
//! itself (`answered_by_funnel`: a query rule's `ok` or `error`, the query
//! cache, a `SET` answered locally, Funnel's own errors; ProxySQL shows
//! these under hostgroup -1), merged over the cores, slowest in total first.

use std::collections::HashMap;

use crate::resultset::{Reply, Table};
use crate::server::AdminContext;

/// Rows shown at most.
const LIMIT: usize = 200;

/// One shape, summed over the cores.
#[derive(Debug, Default)]
struct Merged {
    text: String,
    count: u64,
    total_us: u64,
    max_us: u64,
    rows: u64,
    errors: u64,
    pins: u64,
    by_funnel: u64,
}

/// `RESET DIGESTS`: every core forgets its digests, so the next `SHOW
/// DIGESTS` covers the statements since (ProxySQL's
/// `stats_mysql_query_digest_reset`, read first with `SHOW DIGESTS`).
pub fn reset(ctx: &AdminContext) -> Reply {
    ctx.handle.reset_digests();
    Reply::Ok("digests reset".into())
}

/// Answers `SHOW DIGESTS`.
pub fn run(ctx: &AdminContext) -> Reply {
    let mut merged: HashMap<u64, Merged> = HashMap::new();
    for s in ctx.handle.snapshots() {
        for (key, d) in &s.digests {
            let e = merged.entry(*key).or_insert_with(|| Merged {
                text: d.text.clone(),
                ..Merged::default()
            });
            e.count += d.count;
            e.total_us += d.total_us;
            e.max_us = e.max_us.max(d.max_us);
            e.rows += d.rows;
            e.errors += d.errors;
            e.by_funnel += d.by_funnel;
        }
        for (key, n) in &s.pins_by_digest {
            if let Some(e) = merged.get_mut(key) {
                e.pins += n;
            }
        }
    }
    let mut rows: Vec<(u64, Merged)> = merged.into_iter().collect();
    rows.sort_by_key(|(_, m)| std::cmp::Reverse(m.total_us));
    let mut t = Table::new(&[
        "digest",
        "statement",
        "count",
        "total_ms",
        "avg_us",
        "max_us",
        "rows",
        "errors",
        "pinned_clients",
        "answered_by_funnel",
    ]);
    for (key, m) in rows.into_iter().take(LIMIT) {
        t.row(vec![
            format!("{key:016x}"),
            m.text,
            m.count.to_string(),
            format!("{:.3}", m.total_us as f64 / 1000.0),
            (m.total_us / m.count.max(1)).to_string(),
            m.max_us.to_string(),
            m.rows.to_string(),
            m.errors.to_string(),
            m.pins.to_string(),
            m.by_funnel.to_string(),
        ]);
    }
    Reply::Table(t)
}
