//! The Prometheus text exposition format, built from the cores' snapshots,
//! with names by Prometheus conventions.

use std::collections::BTreeMap;
use std::fmt::Write;

use funnel_engine::ShardSnapshot;
use hdrhistogram::Histogram;

use crate::merge::totals;

/// Histogram bucket bounds, in seconds.
const BUCKETS: [f64; 16] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Renders every metric.
pub fn render(shards: &[ShardSnapshot]) -> String {
    let mut out = String::new();
    let t = totals(shards);
    let mut counter = |name: &str, help: &str, values: Vec<(String, u64)>| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
        for (labels, v) in values {
            let _ = writeln!(out, "{name}{labels} {v}");
        }
    };
    let per_core = |f: &dyn Fn(&ShardSnapshot) -> u64| -> Vec<(String, u64)> {
        shards
            .iter()
            .map(|s| (format!("{{core=\"{}\"}}", s.shard.0), f(s)))
            .collect()
    };
    counter(
        "funnel_queries_total",
        "Commands received from clients.",
        per_core(&|s| s.counters.commands),
    );
    counter(
        "funnel_forwarded_total",
        "Commands forwarded to a backend.",
        per_core(&|s| s.counters.forwarded),
    );
    counter(
        "funnel_sets_answered_locally_total",
        "SETs answered from a backend's earlier reply, without a backend connection.",
        per_core(&|s| s.counters.sets_answered_locally),
    );
    counter(
        "funnel_query_log_lines_total",
        "Lines written to the query log.",
        per_core(&|s| s.counters.query_log_lines),
    );
    counter(
        "funnel_query_log_dropped_total",
        "Query log lines dropped: the core's writes fell behind or failed.",
        per_core(&|s| s.counters.query_log_dropped),
    );
    counter(
        "funnel_calls_unpinned_total",
        "CALLs of stateless_procedures after which the client's backend connection was given back.",
        per_core(&|s| s.counters.calls_unpinned),
    );
    // One series per core and outcome, the outcome under `label`.
    let per_core_by = |label: &str, outcomes: &dyn Fn(&ShardSnapshot) -> Vec<(&'static str, u64)>| {
        let mut series = Vec::new();
        for s in shards {
            for (outcome, n) in outcomes(s) {
                series.push((format!("{{core=\"{}\",{label}=\"{outcome}\"}}", s.shard.0), n));
            }
        }
        series
    };
    counter(
        "funnel_query_cache_lookups_total",
        "Reads a query rule with cache_ttl matched: answered from the core's query cache (hit) or by a server (miss).",
        per_core_by("result", &|s| {
            vec![
                ("hit", s.counters.query_cache_hits),
                ("miss", s.counters.query_cache_misses),
            ]
        }),
    );
    counter(
        "funnel_bulk_executes_total",
        "MariaDB bulk executes (COM_STMT_BULK_EXECUTE, a batch of rows for one statement) forwarded.",
        per_core(&|s| s.counters.bulk_executes),
    );
    counter(
        "funnel_causal_reads_total",
        "Replica reads of causal_reads sessions after a write: waited for the replica to apply it, served at once (seen applied), or sent to the writer.",
        per_core_by("outcome", &|s| {
            vec![
                ("waited", s.counters.causal_waits),
                ("no_wait", s.counters.causal_waits_skipped),
                ("writer", s.counters.causal_reads_on_writer),
            ]
        }),
    );
    counter(
        "funnel_causal_position_reads_total",
        "Reads of the writer's GTID position for causal_reads: universal reads: sent to the writer, or shared (a read took one another read of its core sent after it arrived).",
        per_core_by("how", &|s| {
            vec![
                ("sent", s.counters.causal_position_reads),
                ("shared", s.counters.causal_positions_shared),
            ]
        }),
    );
    counter(
        "funnel_bytes_total",
        "Bytes from and to clients.",
        vec![
            ("{direction=\"in\"}".into(), t.counters.bytes_from_clients),
            ("{direction=\"out\"}".into(), t.counters.bytes_to_clients),
        ],
    );
    let mut codes = BTreeMap::<u16, u64>::new();
    for s in shards {
        for (c, n) in &s.errors_by_code {
            *codes.entry(*c).or_default() += n;
        }
    }
    counter(
        "funnel_errors_total",
        "Errors Funnel generated itself, by MySQL error code.",
        codes
            .into_iter()
            .map(|(c, n)| (format!("{{code=\"{c}\"}}"), n))
            .collect(),
    );
    let mut rule_hits = BTreeMap::<usize, u64>::new();
    for s in shards {
        for &(rule, n) in &s.rule_hits {
            *rule_hits.entry(rule).or_default() += n;
        }
    }
    counter(
        "funnel_query_rule_hits_total",
        "Statements each query rule matched (routed, refused or bounded; every rule of a chain counts), by its place in query_rules, since the rules last changed.",
        rule_hits
            .into_iter()
            .map(|(r, n)| (format!("{{rule=\"{r}\"}}"), n))
            .collect(),
    );
    counter(
        "funnel_client_connections_accepted_total",
        "Client connections accepted.",
        vec![(String::new(), t.counters.clients_accepted)],
    );
    counter(
        "funnel_client_connections_refused_total",
        "Client connections refused.",
        vec![(String::new(), t.counters.clients_refused)],
    );
    counter(
        "funnel_stats_snapshots_total",
        "Statistics snapshots the cores built for the admin and metrics listeners (scrapes arriving together share one).",
        vec![(String::new(), t.counters.snapshots)],
    );
    counter(
        "funnel_session_panics_total",
        "Client sessions ended by a panic (a bug in Funnel; each is logged).",
        vec![(String::new(), t.counters.session_panics)],
    );
    counter(
        "funnel_backend_connections_opened_total",
        "Backend connections opened.",
        vec![(String::new(), t.counters.backend_opened)],
    );
    counter(
        "funnel_backend_connections_closed_total",
        "Backend connections Funnel closed: unusable, stale, idle too long or too old.",
        vec![(String::new(), t.counters.backend_discarded)],
    );
    counter(
        "funnel_backend_connections_reset_total",
        "Backend connections reset before reuse after a failed statement that may have run stored code.",
        vec![(String::new(), t.counters.backend_resets)],
    );
    counter(
        "funnel_backend_connections_switched_total",
        "Backend connections given another client's charset or multi-statement flag instead of a new connection.",
        vec![(String::new(), t.counters.connections_switched)],
    );
    counter(
        "funnel_backend_connect_failures_total",
        "Failed backend connection attempts.",
        vec![(String::new(), t.counters.backend_open_failures)],
    );
    counter(
        "funnel_health_checks_failed_total",
        "Health checks that failed and counted toward marking a backend down.",
        vec![(String::new(), t.counters.health_checks_failed)],
    );
    counter(
        "funnel_backlog_timeouts_total",
        "Commands that gave up waiting for a backend connection.",
        vec![(String::new(), t.counters.backlog_timeouts)],
    );
    counter(
        "funnel_backlog_full_total",
        "Commands refused because the backlog was full.",
        vec![(String::new(), t.counters.backlog_full)],
    );
    counter(
        "funnel_state_syncs_total",
        "SET statements run to bring a connection in line with a session.",
        vec![(String::new(), t.counters.state_syncs)],
    );

    let mut gauge_lines = String::new();
    let mut gauge = |name: &str, help: &str, values: Vec<(String, f64)>| {
        let _ = writeln!(gauge_lines, "# HELP {name} {help}\n# TYPE {name} gauge");
        for (labels, v) in values {
            let _ = writeln!(gauge_lines, "{name}{labels} {v}");
        }
    };
    let mut by_state = BTreeMap::<&str, u64>::new();
    let mut pinned = BTreeMap::<&str, u64>::new();
    let mut oldest_transaction = std::time::Duration::ZERO;
    for s in shards {
        for c in &s.clients {
            *by_state.entry(c.state).or_default() += 1;
            if let Some(r) = c.pinned {
                *pinned.entry(r).or_default() += 1;
            }
            oldest_transaction = oldest_transaction.max(c.transaction_for.unwrap_or_default());
        }
    }
    gauge(
        "funnel_clients",
        "Connected clients by state.",
        by_state
            .into_iter()
            .map(|(s, n)| (format!("{{state=\"{s}\"}}"), n as f64))
            .collect(),
    );
    gauge(
        "funnel_query_cache_bytes",
        "Bytes the replies in each core's query cache take (at most query_cache.max_memory_per_core).",
        shards
            .iter()
            .map(|s| (format!("{{core=\"{}\"}}", s.shard.0), s.query_cache.1 as f64))
            .collect(),
    );
    gauge(
        "funnel_pinned_clients",
        "Clients holding a backend connection between commands, by reason.",
        pinned
            .into_iter()
            .map(|(r, n)| (format!("{{reason=\"{r}\"}}"), n as f64))
            .collect(),
    );
    gauge(
        "funnel_oldest_transaction_seconds",
        "How long the longest-open client transaction has been open (0 when none is).",
        vec![(String::new(), oldest_transaction.as_secs_f64())],
    );
    gauge(
        "funnel_backlog_waiting",
        "Commands waiting for a backend connection.",
        vec![(String::new(), t.waiting as f64)],
    );
    let mut conns = BTreeMap::<(String, String, &str), usize>::new();
    let mut up = BTreeMap::<(String, String), f64>::new();
    let mut drained = BTreeMap::<(String, String), f64>::new();
    let mut writes = BTreeMap::<(String, String), f64>::new();
    for s in shards {
        for p in &s.pools {
            let key = |state| (p.backend.clone(), p.hostgroup.clone(), state);
            *conns.entry(key("idle")).or_default() += p.counts.idle;
            *conns.entry(key("leased")).or_default() += p.counts.total - p.counts.idle - p.counts.opening;
            *conns.entry(key("opening")).or_default() += p.counts.opening;
            // The monitor's verdict, not the routing status: a drained
            // backend is not down, and an alert on 0 must not fire for a
            // planned drain. Every core gets the same verdict; the first
            // to hear of a failure is enough to report it.
            let v = up.entry((p.backend.clone(), p.hostgroup.clone())).or_insert(1.0);
            if !p.healthy {
                *v = 0.0;
            }
            // Left-over pools of a removed or undrained backend say
            // nothing about whether it is drained now.
            if !p.retired {
                let d = drained
                    .entry((p.backend.clone(), p.hostgroup.clone()))
                    .or_insert(0.0);
                if p.drained {
                    *d = 1.0;
                }
                // 1 on every core that sends it writes: the cores agree
                // but for the moment a verdict takes to reach them all.
                let w = writes
                    .entry((p.backend.clone(), p.hostgroup.clone()))
                    .or_insert(1.0);
                if !p.takes_writes {
                    *w = 0.0;
                }
            }
        }
    }
    gauge(
        "funnel_backend_connections",
        "Backend connections by backend, hostgroup and state.",
        conns
            .into_iter()
            .map(|((b, h, s), n)| {
                (
                    format!(
                        "{{backend=\"{}\",hostgroup=\"{}\",state=\"{s}\"}}",
                        label(&b),
                        label(&h)
                    ),
                    n as f64,
                )
            })
            .collect(),
    );
    // One series per backend, labelled with its name and hostgroup.
    let by_backend = |values: BTreeMap<(String, String), f64>| -> Vec<(String, f64)> {
        values
            .into_iter()
            .map(|((b, h), v)| {
                (
                    format!("{{backend=\"{}\",hostgroup=\"{}\"}}", label(&b), label(&h)),
                    v,
                )
            })
            .collect()
    };
    gauge(
        "funnel_backend_up",
        "1 when the health monitor considers the backend up.",
        by_backend(up),
    );
    gauge(
        "funnel_backend_drained",
        "1 while an operator has drained the backend (DRAIN BACKEND, backends[].drained).",
        by_backend(drained),
    );
    gauge(
        "funnel_backend_takes_writes",
        "1 when the backend takes its hostgroup's writes on every core: up, writable, checked, and among the hostgroup's max_writers.",
        by_backend(writes),
    );
    out.push_str(&gauge_lines);
    histogram(
        &mut out,
        "funnel_query_duration_seconds",
        "Time from a command's arrival to the end of its response.",
        &t.query_us,
    );
    histogram(
        &mut out,
        "funnel_backlog_wait_seconds",
        "Time commands waited for a backend connection.",
        &t.backlog_wait_us,
    );
    histogram(
        &mut out,
        "funnel_backend_connect_seconds",
        "Time to open and log in a backend connection.",
        &t.connect_us,
    );
    out
}

/// A label value as the exposition format writes it: backslash, double
/// quote and line feed escaped. Backend and hostgroup names are free text
/// (any YAML string, any word of `ADD BACKEND`), and one broken line makes
/// Prometheus refuse the whole scrape.
fn label(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

fn histogram(out: &mut String, name: &str, help: &str, h: &Histogram<u64>) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
    for le in BUCKETS {
        let us = (le * 1e6) as u64;
        let count = h.count_between(0, us);
        let _ = writeln!(out, "{name}_bucket{{le=\"{le}\"}} {count}");
    }
    let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {}", h.len());
    let _ = writeln!(out, "{name}_sum {}", h.mean() * h.len() as f64 / 1e6);
    let _ = writeln!(out, "{name}_count {}", h.len());
}

/// Appends the expiry of client TLS's certificate, so alerts can fire
/// before clients that check it start failing (nothing without `client.tls`).
pub fn render_tls_expiry(out: &mut String, not_after: Option<i64>) {
    let Some(at) = not_after else {
        return;
    };
    let name = "funnel_client_tls_certificate_expiry_timestamp_seconds";
    let _ = writeln!(
        out,
        "# HELP {name} When client TLS's certificate expires (Unix time); a reload reads a renewed one.\n\
         # TYPE {name} gauge\n{name} {at}"
    );
}
