//! Admin commands: parsed here, each family answered by its own module.

mod backends;
mod control;
mod driver_probes;
mod kill;
mod set;
mod show_clients;
mod show_config;
mod show_digests;
mod show_multiplexing;
mod show_pools;
mod show_query_rules;
mod show_servers;
mod show_stats;
mod show_users;

use funnel_protocol::response::ErrPacket;

use crate::resultset::Reply;
use crate::server::AdminContext;

/// Prefix of the OK message that ends the admin connection (SHUTDOWN).
pub const SHUTTING_DOWN: &str = "shutting down";

/// Every command, for the error that answers an unknown one.
pub const HELP: &str =
    "SHOW POOLS | SHOW SERVERS | SHOW CLIENTS | SHOW USERS | SHOW STATS | SHOW MULTIPLEXING | SHOW CONFIG | \
SHOW VERSION | SHOW DIGESTS | RESET DIGESTS | SHOW QUERY RULES | RELOAD | PAUSE | RESUME | ADD BACKEND name address user password [hostgroup h] [weight n] [max_replication_lag d] | \
REMOVE BACKEND name | DRAIN BACKEND name | UNDRAIN BACKEND name | RECONNECT [BACKEND name] | SET key = value (pool.*, backlog.*, client.*, monitor.*) | \
KILL [CONNECTION | QUERY] id | SHUTDOWN | SHUTDOWN GRACEFUL";

/// Runs one admin statement.
pub fn run(sql: &str, ctx: &AdminContext) -> Reply {
    let text = sql.trim().trim_end_matches(';').trim();
    let words: Vec<&str> = text.split_whitespace().collect();
    let upper: Vec<String> = words.iter().map(|w| w.to_ascii_uppercase()).collect();
    let u: Vec<&str> = upper.iter().map(String::as_str).collect();
    match u.as_slice() {
        ["SHOW", "POOLS"] => show_pools::run(ctx),
        ["SHOW", "SERVERS"] => show_servers::run(ctx),
        ["SHOW", "CLIENTS"] => show_clients::run(ctx),
        ["SHOW", "USERS"] => show_users::run(ctx),
        ["SHOW", "STATS"] => show_stats::run(ctx),
        ["SHOW", "DIGESTS"] => show_digests::run(ctx),
        ["RESET", "DIGESTS"] => show_digests::reset(ctx),
        ["SHOW", "QUERY", "RULES"] => show_query_rules::run(ctx),
        ["SHOW", "MULTIPLEXING"] => show_multiplexing::run(ctx),
        ["SHOW", "CONFIG"] => show_config::config(ctx),
        ["SHOW", "VERSION"] => show_config::version(),
        ["RELOAD"] => control::reload(ctx),
        ["PAUSE"] => control::pause(ctx, true),
        ["RESUME"] => control::pause(ctx, false),
        ["SHUTDOWN"] => control::shutdown(ctx, false),
        ["SHUTDOWN", "GRACEFUL"] => control::shutdown(ctx, true),
        ["ADD", "BACKEND", ..] => backends::add(ctx, &words[2..]),
        ["REMOVE", "BACKEND", _] => backends::remove(ctx, unquote(words[2])),
        ["DRAIN", "BACKEND", _] => backends::drain(ctx, unquote(words[2])),
        ["UNDRAIN", "BACKEND", _] => backends::undrain(ctx, unquote(words[2])),
        ["RECONNECT"] => backends::reconnect(ctx, None),
        ["RECONNECT", "BACKEND", _] => backends::reconnect(ctx, Some(unquote(words[2]))),
        ["SET", ..] => set::run(ctx, &text[3..]),
        ["KILL", ..] => kill::run(ctx, &words[1..]),
        ["SELECT", ..] => driver_probes::select(text),
        _ => unknown(text),
    }
}

/// A word without one pair of enclosing quotes (`'r2'`, `"r2"`, `` `r2` ``):
/// operators used to ProxySQL's admin quote names and strings, and the
/// quotes are not part of the name.
fn unquote(word: &str) -> &str {
    for q in ['\'', '"', '`'] {
        if let Some(inner) = word.strip_prefix(q).and_then(|w| w.strip_suffix(q)) {
            return inner;
        }
    }
    word
}

fn unknown(text: &str) -> Reply {
    Reply::Err(ErrPacket::new(
        1064,
        "42000",
        format!("Unknown admin command '{text}'. Commands: {HELP}"),
    ))
}

/// A config change the validator refused.
fn invalid(e: impl std::fmt::Display) -> Reply {
    Reply::Err(ErrPacket::new(1210, "HY000", format!("Funnel: refused: {e}")))
}
