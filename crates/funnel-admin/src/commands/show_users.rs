//! `SHOW USERS`: each configured user (and any user still connected whom a
//! reload removed) with its clients by state, how many hold a backend
//! connection between commands, and its limits, as ProxySQL's
//! `stats_mysql_users` and PgBouncer's `SHOW USERS` give them.

use std::collections::BTreeMap;

use crate::resultset::{Reply, Table};
use crate::server::AdminContext;

/// One user's clients, summed over the cores.
#[derive(Default)]
struct Count {
    clients: u64,
    idle: u64,
    waiting: u64,
    running: u64,
    pinned: u64,
}

/// Answers `SHOW USERS`.
pub fn run(ctx: &AdminContext) -> Reply {
    let config = ctx.handle.config();
    let mut counts: BTreeMap<String, Count> = BTreeMap::new();
    for s in ctx.handle.snapshots() {
        for c in &s.clients {
            let n = counts.entry(c.user.clone()).or_default();
            n.clients += 1;
            match c.state {
                "waiting" => n.waiting += 1,
                "running" => n.running += 1,
                _ => n.idle += 1,
            }
            n.pinned += u64::from(c.pinned.is_some());
        }
    }
    let mut t = Table::new(&[
        "user",
        "clients",
        "idle",
        "waiting",
        "running",
        "pinned",
        "max_connections",
        "max_backend_connections_per_core",
        "default_hostgroup",
        "read_hostgroup",
    ]);
    let limit = |n: u32| (n > 0).then(|| n.to_string());
    let row = |name: &str, n: Option<&Count>, user: Option<&funnel_config::User>| {
        let n = n.map_or([0; 5], |n| [n.clients, n.idle, n.waiting, n.running, n.pinned]);
        let mut cells: Vec<Option<String>> = vec![Some(name.to_string())];
        cells.extend(n.iter().map(|v| Some(v.to_string())));
        cells.push(user.and_then(|u| limit(u.max_connections)));
        cells.push(user.and_then(|u| limit(u.max_backend_connections_per_core)));
        cells.push(user.map(|u| {
            u.default_hostgroup
                .clone()
                .unwrap_or_else(|| funnel_config::DEFAULT_HOSTGROUP.to_string())
        }));
        cells.push(user.and_then(|u| u.read_hostgroup.clone()));
        cells
    };
    for u in &config.users {
        t.rows.push(row(&u.name, counts.get(&u.name), Some(u)));
    }
    // Removed by a reload, still connected: their sessions go on.
    for (name, n) in &counts {
        if !config.users.iter().any(|u| u.name == *name) {
            t.rows.push(row(name, Some(n), None));
        }
    }
    Reply::Table(t)
}
