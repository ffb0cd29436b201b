//! `SET key = value`: change one setting of the running configuration
//! (pool sizes, timeouts, limits), validated and applied like a reload.

use serde_yaml::Value;

use super::control::apply;
use super::invalid;
use crate::resultset::Reply;
use crate::server::AdminContext;

/// Sections whose keys `SET` may change.
const SETTABLE: [&str; 4] = ["pool", "backlog", "client", "monitor"];

/// Applies `key = value` (e.g. `pool.max_per_core = 8`, `backlog.wait_timeout = 5s`).
pub fn run(ctx: &AdminContext, assignment: &str) -> Reply {
    let Some((key, value)) = assignment.split_once('=') else {
        return invalid("usage: SET section.key = value");
    };
    let key = key.trim();
    let value = value.trim().trim_matches('\'').trim_matches('"');
    let Some((section, field)) = key.split_once('.') else {
        return invalid(format!("{key}: name a section and a key, e.g. pool.max_per_core"));
    };
    if !SETTABLE.contains(&section) {
        return invalid(format!("{section}: only {} can be SET", SETTABLE.join(", ")));
    }
    let cfg = ctx.handle.config();
    let mut doc = match serde_yaml::to_value(&cfg) {
        Ok(v) => v,
        Err(e) => return invalid(e),
    };
    let Some(map) = doc.get_mut(section).and_then(Value::as_mapping_mut) else {
        return invalid(format!("{section}: no such section"));
    };
    if !map.contains_key(field) {
        return invalid(format!("{key}: no such setting"));
    }
    let parsed: Value = serde_yaml::from_str(value).unwrap_or_else(|_| Value::String(value.to_string()));
    map.insert(Value::String(field.to_string()), parsed);
    // `to_value` is the plain serialization (only SHOW CONFIG redacts),
    // so credentials survive this round trip.
    let new: funnel_config::Config = match serde_yaml::from_value(doc) {
        Ok(c) => c,
        Err(e) => return invalid(format!("{key}: {e}")),
    };
    if let Err(e) = new.validate() {
        return invalid(e);
    }
    apply(ctx, new)
}
