//! `SHOW SERVERS`: each backend's place and health (as core 0 sees it:
//! every core applies the same monitor verdicts).

use funnel_engine::PoolSnapshot;

use crate::resultset::{Reply, Table};
use crate::server::AdminContext;

/// Answers `SHOW SERVERS`.
pub fn run(ctx: &AdminContext) -> Reply {
    let mut t = Table::new(&[
        "backend",
        "address",
        "hostgroup",
        "status",
        "weight",
        "read_only",
        "lag_s",
        "last_check_s_ago",
        "connections",
        "open_failures",
    ]);
    let shards = ctx.handle.snapshots();
    // One row per backend and status over every core: a core may have
    // forgotten a drained pool that another still holds connections of.
    // Core 0 comes first, so its health fields are the ones shown.
    let mut rows: Vec<&PoolSnapshot> = Vec::new();
    for p in shards.iter().flat_map(|s| &s.pools) {
        if !rows
            .iter()
            .any(|q| q.backend == p.backend && q.status == p.status)
        {
            rows.push(p);
        }
    }
    for p in rows {
        let conns: usize = shards
            .iter()
            .flat_map(|s| s.pools.iter())
            .filter(|q| q.backend == p.backend && q.status == p.status)
            .map(|q| q.counts.total)
            .sum();
        let failures: u64 = shards
            .iter()
            .filter_map(|s| s.open_failures_by_backend.get(&p.backend))
            .sum();
        t.rows.push(vec![
            Some(p.backend.clone()),
            Some(p.address.clone()),
            Some(p.hostgroup.clone()),
            Some(p.status.to_string()),
            Some(p.weight.to_string()),
            Some(if p.read_only { "1" } else { "0" }.to_string()),
            p.lag.map(|l| l.as_secs().to_string()),
            p.last_check.map(|d| format!("{:.1}", d.as_secs_f64())),
            Some(conns.to_string()),
            Some(failures.to_string()),
        ]);
    }
    Reply::Table(t)
}
