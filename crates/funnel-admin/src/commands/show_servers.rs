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
        "takes_writes",
        "lag_s",
        "last_check_s_ago",
        "connections",
        "open_failures",
    ]);
    let shards = ctx.handle.snapshots();
    // One row per backend for its current pools, and one for the retired
    // pools (removed, undrained or replaced) that still hold connections
    // on some core, as `retiring`: the name may be in service again, and
    // that row must not read as a drain of it. Core 0 comes first, so its
    // health fields are the ones shown.
    let same = |p: &PoolSnapshot, q: &PoolSnapshot| q.backend == p.backend && q.retired == p.retired;
    let mut rows: Vec<&PoolSnapshot> = Vec::new();
    for p in shards.iter().flat_map(|s| &s.pools) {
        if !rows.iter().any(|q| same(p, q)) {
            rows.push(p);
        }
    }
    for p in rows {
        let group = || shards.iter().flat_map(|s| s.pools.iter()).filter(|q| same(p, q));
        let conns: usize = group().map(|q| q.counts.total).sum();
        // A drained backend is `drained` only once no core holds a
        // connection to it: until then it is still draining.
        let status = if group().any(|q| q.status == "draining") {
            "draining"
        } else {
            p.status
        };
        let failures: u64 = shards
            .iter()
            .filter_map(|s| s.open_failures_by_backend.get(&p.backend))
            .sum();
        t.rows.push(vec![
            Some(p.backend.clone()),
            Some(p.address.clone()),
            Some(p.hostgroup.clone()),
            Some(status.to_string()),
            Some(p.weight.to_string()),
            Some(if p.read_only { "1" } else { "0" }.to_string()),
            Some(if p.takes_writes { "1" } else { "0" }.to_string()),
            p.lag.map(|l| l.as_secs().to_string()),
            p.last_check.map(|d| format!("{:.1}", d.as_secs_f64())),
            Some(conns.to_string()),
            Some(failures.to_string()),
        ]);
    }
    Reply::Table(t)
}
