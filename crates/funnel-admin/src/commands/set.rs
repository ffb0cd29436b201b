//! `SET key = value`: change one setting of the running configuration
//! (pool sizes, timeouts, limits), validated and applied like a reload.

use serde_yaml::Value;

use super::control::apply_edit;
use super::invalid;
use crate::resultset::Reply;
use crate::server::AdminContext;

/// Sections whose keys `SET` may change.
const SETTABLE: [&str; 7] = [
    "pool",
    "backlog",
    "client",
    "monitor",
    "query_cache",
    "query_log",
    "log",
];

/// Keys that change only with the configuration file. `client.tls` names
/// files that must load as a pair, so one key at a time cannot change it:
/// a reload of the file reads both (also renewed under the same names).
const FILE_ONLY: [&str; 1] = ["client.tls"];

fn restart_only(key: &str) -> Reply {
    let why = if key.starts_with("log") {
        " (this Funnel's log cannot change live, as when RUST_LOG set its filter: then a restart without RUST_LOG applies log.level)"
    } else {
        ""
    };
    invalid(format!(
        "{key} changes only at a restart, which reads it from the configuration file: \
         change it there, then restart{why}"
    ))
}

fn file_only(key: &str) -> Reply {
    invalid(format!(
        "{key} changes only with the configuration file: change it there, then RELOAD \
         (a reload also reads a certificate renewed under the same name)"
    ))
}

/// True when `key` is `section_key` or one of its keys.
fn names(key: &str, section_key: &str) -> bool {
    key == section_key
        || key
            .strip_prefix(section_key)
            .is_some_and(|rest| rest.starts_with('.'))
}

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
    if FILE_ONLY.iter().any(|k| names(key, k)) {
        return file_only(key);
    }
    // Asked before the edit: the edit runs under the running
    // configuration's lock, which this takes too.
    let log_live = ctx.handle.log_level_is_live();
    apply_edit(ctx, |cfg| {
        let mut doc = serde_yaml::to_value(&cfg).map_err(invalid)?;
        let Some(map) = doc.get_mut(section).and_then(Value::as_mapping_mut) else {
            return Err(invalid(format!("{section}: no such section")));
        };
        // A key the map lacks may still be a real one left unset (an
        // optional key such as `monitor.user`): the sections deny unknown
        // keys, so parsing says which it is, listing the valid ones.
        let parsed: Value = serde_yaml::from_str(value).unwrap_or_else(|_| Value::String(value.to_string()));
        map.insert(Value::String(field.to_string()), parsed);
        // `to_value` is the plain serialization (only SHOW CONFIG redacts),
        // so credentials survive this round trip.
        let new: funnel_config::Config =
            serde_yaml::from_value(doc).map_err(|e| invalid(format!("{key}: {e}")))?;
        new.validate().map_err(invalid)?;
        // A reload keeps such a key until a restart, which reads the file:
        // a value given here would never run, so say so instead of "OK".
        if !funnel_engine::proxy::restart_only_changes(&cfg, &new, log_live).is_empty() {
            return Err(restart_only(key));
        }
        Ok(new)
    })
}
