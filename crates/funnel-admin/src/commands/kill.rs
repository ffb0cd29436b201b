//! `KILL [CONNECTION | QUERY] id`: an operator ends a client, or stops its
//! running statement, whoever its user (a client's own `KILL` may only
//! reach its user's sessions). The id is the one `SHOW CLIENTS` lists and
//! the client sees as `CONNECTION_ID()`.

use std::time::Duration;

use funnel_engine::kill::KillRefused;
use funnel_protocol::response::ErrPacket;

use crate::resultset::Reply;
use crate::server::AdminContext;

/// How long the command waits for the owning core (which may first need a
/// backend connection of its own to stop the statement there).
const KILL_LIMIT: Duration = Duration::from_secs(10);

/// Runs `KILL` with the words after it.
pub fn run(ctx: &AdminContext, args: &[&str]) -> Reply {
    let upper: Vec<String> = args.iter().map(|w| w.to_ascii_uppercase()).collect();
    let (query_only, id) = match upper.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        [id] => (false, *id),
        ["CONNECTION", id] => (false, *id),
        ["QUERY", id] => (true, *id),
        _ => return usage(),
    };
    let Ok(id) = id.parse::<u32>() else {
        return usage();
    };
    match ctx.handle.kill(id, query_only, KILL_LIMIT) {
        Ok(()) if query_only => Reply::Ok(format!("stopped the statement of client {id}, if it ran one")),
        Ok(()) => Reply::Ok(format!("killed client {id}")),
        Err(KillRefused::UnknownThread(_)) | Err(KillRefused::NotOwner(_)) => Reply::Err(ErrPacket::new(
            1094,
            "HY000",
            format!("Unknown thread id: {id} (see SHOW CLIENTS)"),
        )),
        Err(KillRefused::Server(err)) => Reply::Err(err),
        Err(KillRefused::Backend(reason)) => Reply::Err(ErrPacket::new(
            1105,
            "HY000",
            format!("Funnel: could not stop client {id}'s statement on its backend: {reason}"),
        )),
    }
}

fn usage() -> Reply {
    Reply::Err(ErrPacket::new(
        1064,
        "42000",
        "Usage: KILL [CONNECTION | QUERY] id (a client id from SHOW CLIENTS)",
    ))
}
