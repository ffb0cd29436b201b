//! `SHOW POOLS`: per core and backend, where the connections are.

use crate::resultset::{Reply, Table};
use crate::server::AdminContext;

/// Answers `SHOW POOLS`.
pub fn run(ctx: &AdminContext) -> Reply {
    let mut t = Table::new(&[
        "core",
        "backend",
        "hostgroup",
        "status",
        "idle",
        "leased",
        "pinned",
        "opening",
        "waiting",
        "max",
    ]);
    for s in ctx.handle.snapshots() {
        for p in &s.pools {
            let leased = p.counts.total - p.counts.idle - p.counts.opening;
            t.row(vec![
                s.shard.0.to_string(),
                p.backend.clone(),
                p.hostgroup.clone(),
                p.status.to_string(),
                p.counts.idle.to_string(),
                leased.to_string(),
                p.pinned.to_string(),
                p.counts.opening.to_string(),
                p.counts.waiting.to_string(),
                p.max.to_string(),
            ]);
        }
    }
    Reply::Table(t)
}
