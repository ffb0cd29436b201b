//! `SHOW CONFIG` (the running configuration, secrets redacted) and `SHOW VERSION`.

use crate::resultset::{Reply, Table};
use crate::server::AdminContext;

/// Answers `SHOW CONFIG`: one row per line of the effective YAML.
pub fn config(ctx: &AdminContext) -> Reply {
    let mut t = Table::new(&["config"]);
    for line in ctx.handle.config().to_yaml_string().lines() {
        t.row(vec![line.to_string()]);
    }
    Reply::Table(t)
}

/// Answers `SHOW VERSION`.
pub fn version() -> Reply {
    let mut t = Table::new(&["name", "version"]);
    t.row(vec!["funnel".into(), env!("CARGO_PKG_VERSION").into()]);
    Reply::Table(t)
}
