//! `SHOW CLIENTS`: every connected client.

use crate::resultset::{Reply, Table};
use crate::server::AdminContext;

/// Answers `SHOW CLIENTS`.
pub fn run(ctx: &AdminContext) -> Reply {
    let mut t = Table::new(&[
        "id",
        "user",
        "host",
        "schema",
        "core",
        "state",
        "pinned",
        "state_for_s",
        "prepared_statements",
        "statement",
        "transaction_s",
    ]);
    for s in ctx.handle.snapshots() {
        for c in &s.clients {
            t.rows.push(vec![
                Some(c.id.0.to_string()),
                Some(c.user.clone()),
                Some(c.peer.clone()),
                c.schema.clone(),
                Some(s.shard.0.to_string()),
                Some(c.state.to_string()),
                c.pinned.map(str::to_string),
                Some(format!("{:.1}", c.for_how_long.as_secs_f64())),
                Some(c.prepared_statements.to_string()),
                c.statement.clone(),
                c.transaction_for.map(|d| format!("{:.1}", d.as_secs_f64())),
            ]);
        }
    }
    Reply::Table(t)
}
