//! `RELOAD`, `PAUSE` / `RESUME` and `SHUTDOWN [GRACEFUL]`.

use std::time::Duration;

use funnel_config::Config;
use funnel_protocol::response::ErrPacket;

use super::{invalid, SHUTTING_DOWN};
use crate::resultset::Reply;
use crate::server::AdminContext;

/// How long `SHUTDOWN GRACEFUL` waits for clients to leave.
const GRACE: Duration = Duration::from_secs(30);

/// How long `PAUSE` waits for running commands to finish before it answers.
const PAUSE_SETTLE: Duration = Duration::from_secs(30);

/// Re-reads the configuration file and applies it live.
pub fn reload(ctx: &AdminContext) -> Reply {
    let Some(path) = &ctx.config_path else {
        return Reply::Err(ErrPacket::new(
            1105,
            "HY000",
            "Funnel: RELOAD needs a configuration file (this Funnel was started without one)",
        ));
    };
    match Config::load(path) {
        Ok(cfg) => apply(ctx, cfg),
        Err(e) => invalid(e),
    }
}

/// Applies a validated configuration and says what needs a restart.
pub(super) fn apply(ctx: &AdminContext, cfg: Config) -> Reply {
    applied(ctx.handle.reload(cfg))
}

/// Edits the running configuration and applies it in one step (see
/// `ProxyHandle::update`); `edit` returns the validated next configuration
/// or the reply that refuses the change.
pub(super) fn apply_edit(ctx: &AdminContext, edit: impl FnOnce(Config) -> Result<Config, Reply>) -> Reply {
    match ctx.handle.update(edit) {
        Ok(result) => applied(result),
        Err(refused) => refused,
    }
}

fn applied(result: Result<Vec<String>, funnel_engine::StartError>) -> Reply {
    match result {
        Ok(not_applied) if not_applied.is_empty() => Reply::Ok("reloaded".into()),
        Ok(not_applied) => Reply::Ok(format!("reloaded; needs a restart: {}", not_applied.join("; "))),
        Err(e) => invalid(e),
    }
}

/// Stops or resumes handing out backend connections. `PAUSE` answers, as
/// PgBouncer's does, once every core has stopped and no command is running
/// (or after [`PAUSE_SETTLE`], saying how many still are), so a failover
/// script can switch the primary as soon as it returns.
pub fn pause(ctx: &AdminContext, on: bool) -> Reply {
    ctx.handle.pause(on);
    if !on {
        return Reply::Ok("resumed".into());
    }
    let running = ctx.handle.wait_for_zero(PAUSE_SETTLE, |shards| {
        let running = shards
            .iter()
            .flat_map(|s| &s.clients)
            .filter(|c| c.state == "running");
        running.count() as u64
    });
    if running == 0 {
        return Reply::Ok("paused; no command running".into());
    }
    Reply::Ok(format!(
        "paused; {running} commands still running after {} s (pinned sessions keep their connections: see SHOW CLIENTS)",
        PAUSE_SETTLE.as_secs()
    ))
}

/// Stops Funnel; gracefully: no new clients, idle ones closed, running
/// commands and transactions may finish (up to 30 s), then stop.
pub fn shutdown(ctx: &AdminContext, graceful: bool) -> Reply {
    // The journal must say why Funnel stopped, as it does for a signal.
    if graceful {
        tracing::info!(
            grace_s = GRACE.as_secs(),
            "stopping gracefully (admin SHUTDOWN GRACEFUL); signal to stop now"
        );
        // Recorded now, so a signal that follows means "stop now".
        ctx.handle.begin_stop();
        let handle = ctx.handle.clone();
        std::thread::spawn(move || handle.graceful_shutdown(GRACE));
        return Reply::Ok(format!("{SHUTTING_DOWN} once clients leave (at most 30 s)"));
    }
    tracing::warn!("stopping now (admin SHUTDOWN)");
    ctx.handle.shutdown();
    Reply::Ok(SHUTTING_DOWN.into())
}
