//! `SHOW STATS`: totals, rates since start, and latency percentiles per
//! core and merged.

use hdrhistogram::Histogram;

use crate::merge::totals;
use crate::resultset::{Reply, Table};
use crate::server::AdminContext;

/// Answers `SHOW STATS` as (scope, name, value) rows.
pub fn run(ctx: &AdminContext) -> Reply {
    let shards = ctx.handle.snapshots();
    let t = totals(&shards);
    let secs = ctx.started.elapsed().as_secs_f64().max(0.001);
    let mut table = Table::new(&["scope", "name", "value"]);
    let mut add = |scope: &str, name: &str, value: String| table.row(vec![scope.into(), name.into(), value]);
    for (name, v) in [
        ("queries", t.commands),
        ("forwarded", t.forwarded),
        ("bytes_in", t.bytes_in),
        ("bytes_out", t.bytes_out),
        ("funnel_errors", t.funnel_errors),
        ("clients_active", t.clients_active),
        ("clients_accepted", t.clients_accepted),
        ("clients_refused", t.clients_refused),
        ("backend_connections_opened", t.backend_opened),
        ("backend_connections_closed", t.backend_discarded),
        ("backend_connect_failures", t.backend_open_failures),
        ("backlog_waits", t.backlog_waits),
        ("backlog_timeouts", t.backlog_timeouts),
        ("backlog_full", t.backlog_full),
        ("state_syncs", t.state_syncs),
        ("reprepares", t.reprepares),
    ] {
        add("all", name, v.to_string());
    }
    add(
        "all",
        "queries_per_second",
        format!("{:.1}", t.commands as f64 / secs),
    );
    let mut codes = std::collections::BTreeMap::<u16, u64>::new();
    for s in &shards {
        for (c, n) in &s.errors_by_code {
            *codes.entry(*c).or_default() += n;
        }
    }
    for (code, n) in codes {
        add("all", &format!("errors_{code}"), n.to_string());
    }
    percentiles(&mut add, "all", &t.query_us, &t.backlog_wait_us, &t.connect_us);
    for s in &shards {
        let scope = format!("core{}", s.shard.0);
        add(&scope, "queries", s.commands.to_string());
        percentiles(&mut add, &scope, &s.query_us, &s.backlog_wait_us, &s.connect_us);
    }
    Reply::Table(table)
}

fn percentiles(
    add: &mut impl FnMut(&str, &str, String),
    scope: &str,
    query: &Histogram<u64>,
    wait: &Histogram<u64>,
    connect: &Histogram<u64>,
) {
    for (what, h) in [("query", query), ("backlog_wait", wait), ("connect", connect)] {
        for (label, q) in [("p50", 50.0), ("p95", 95.0), ("p99", 99.0), ("p99.9", 99.9)] {
            add(
                scope,
                &format!("{what}_{label}_us"),
                h.value_at_percentile(q).to_string(),
            );
        }
        add(scope, &format!("{what}_max_us"), h.max().to_string());
    }
}
