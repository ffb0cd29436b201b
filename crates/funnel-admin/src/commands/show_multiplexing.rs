//! `SHOW MULTIPLEXING`: how well clients share backend connections, and
//! what defeats it (pinned clients by reason and by user), so an operator
//! sees at once when an application silently turns multiplexing off.

use std::collections::BTreeMap;

use crate::merge::totals;
use crate::resultset::{Reply, Table};
use crate::server::AdminContext;

/// Answers `SHOW MULTIPLEXING` as (what, key, value) rows.
pub fn run(ctx: &AdminContext) -> Reply {
    let shards = ctx.handle.snapshots();
    let t = totals(&shards);
    let mut table = Table::new(&["what", "key", "value"]);
    let backend = t.backend_total.max(1);
    table.row(vec![
        "clients".into(),
        "connected".into(),
        t.clients_active.to_string(),
    ]);
    table.row(vec![
        "backend_connections".into(),
        "open".into(),
        t.backend_total.to_string(),
    ]);
    table.row(vec![
        "ratio".into(),
        "clients_per_backend_connection".into(),
        format!("{:.2}", t.clients_active as f64 / backend as f64),
    ]);
    let mut now_by_reason: BTreeMap<&str, u64> = BTreeMap::new();
    let mut now_by_user: BTreeMap<String, u64> = BTreeMap::new();
    let mut total_by_reason: BTreeMap<&str, u64> = BTreeMap::new();
    for s in &shards {
        for c in &s.clients {
            if let Some(r) = c.pinned {
                *now_by_reason.entry(r).or_default() += 1;
                *now_by_user.entry(c.user.clone()).or_default() += 1;
            }
        }
        for (r, n) in &s.pins_total {
            *total_by_reason.entry(r).or_default() += n;
        }
    }
    let pinned_now: u64 = now_by_reason.values().sum();
    table.row(vec![
        "pinned_clients".into(),
        "now".into(),
        pinned_now.to_string(),
    ]);
    for (r, n) in now_by_reason {
        table.row(vec!["pinned_now_by_reason".into(), r.into(), n.to_string()]);
    }
    for (u, n) in now_by_user {
        table.row(vec!["pinned_now_by_user".into(), u, n.to_string()]);
    }
    for (r, n) in total_by_reason {
        table.row(vec![
            "pinned_since_start_by_reason".into(),
            r.into(),
            n.to_string(),
        ]);
    }
    // The statements that pinned clients, most first (their shapes).
    let mut by_digest: BTreeMap<u64, (String, u64)> = BTreeMap::new();
    for s in &shards {
        for (key, n) in &s.pins_by_digest {
            let text = s
                .digests
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, d)| d.text.clone());
            let e = by_digest
                .entry(*key)
                .or_insert_with(|| (text.unwrap_or_default(), 0));
            e.1 += n;
        }
    }
    let mut by_digest: Vec<_> = by_digest.into_values().collect();
    by_digest.sort_by_key(|(_, n)| std::cmp::Reverse(*n));
    for (text, n) in by_digest.into_iter().take(20) {
        table.row(vec!["pinned_since_start_by_digest".into(), text, n.to_string()]);
    }
    Reply::Table(table)
}
