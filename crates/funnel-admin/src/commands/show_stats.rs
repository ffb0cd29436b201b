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
        ("queries", t.counters.commands),
        ("forwarded", t.counters.forwarded),
        ("sets_answered_locally", t.counters.sets_answered_locally),
        ("calls_unpinned", t.counters.calls_unpinned),
        ("query_cache_hits", t.counters.query_cache_hits),
        ("query_cache_misses", t.counters.query_cache_misses),
        (
            "query_cache_entries",
            shards.iter().map(|s| s.query_cache.0 as u64).sum(),
        ),
        (
            "query_cache_bytes",
            shards.iter().map(|s| s.query_cache.1 as u64).sum(),
        ),
        ("bulk_executes", t.counters.bulk_executes),
        ("bytes_in", t.counters.bytes_from_clients),
        ("bytes_out", t.counters.bytes_to_clients),
        ("funnel_errors", t.counters.funnel_errors),
        ("clients_active", t.clients_active),
        ("clients_accepted", t.counters.clients_accepted),
        ("clients_refused", t.counters.clients_refused),
        ("session_panics", t.counters.session_panics),
        ("backend_connections_opened", t.counters.backend_opened),
        ("backend_connections_closed", t.counters.backend_discarded),
        ("backend_connections_reset", t.counters.backend_resets),
        ("backend_connections_switched", t.counters.connections_switched),
        ("backend_connect_failures", t.counters.backend_open_failures),
        ("health_checks_failed", t.counters.health_checks_failed),
        ("backlog_waits", t.counters.backlog_waits),
        ("backlog_timeouts", t.counters.backlog_timeouts),
        ("backlog_full", t.counters.backlog_full),
        ("state_syncs", t.counters.state_syncs),
        ("reprepares", t.counters.reprepares),
        ("prepares_rechecked", t.counters.prepares_rechecked),
        ("prepares_from_registry", t.counters.prepares_from_registry),
        ("causal_waits", t.counters.causal_waits),
        ("causal_waits_skipped", t.counters.causal_waits_skipped),
        ("causal_reads_on_writer", t.counters.causal_reads_on_writer),
        ("causal_position_reads", t.counters.causal_position_reads),
        ("causal_positions_shared", t.counters.causal_positions_shared),
        ("query_log_lines", t.counters.query_log_lines),
        ("query_log_dropped", t.counters.query_log_dropped),
    ] {
        add("all", name, v.to_string());
    }
    add(
        "all",
        "queries_per_second",
        format!("{:.1}", t.counters.commands as f64 / secs),
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
        add(&scope, "queries", s.counters.commands.to_string());
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
