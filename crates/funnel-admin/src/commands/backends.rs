//! `ADD BACKEND`, `REMOVE BACKEND`, `DRAIN BACKEND`, `UNDRAIN BACKEND`:
//! changes to the running configuration, validated like a file and applied
//! like a reload.

use funnel_config::Backend;

use super::control::apply_edit;
use super::{invalid, unquote};
use crate::resultset::Reply;
use crate::server::AdminContext;

/// `ADD BACKEND name address user password [hostgroup h] [weight n]
/// [max_replication_lag d]`.
pub fn add(ctx: &AdminContext, args: &[&str]) -> Reply {
    let args: Vec<&str> = args.iter().map(|a| unquote(a)).collect();
    let [name, address, user, password, rest @ ..] = args.as_slice() else {
        return invalid(
            "usage: ADD BACKEND name address user password [hostgroup h] [weight n] [max_replication_lag d]",
        );
    };
    let mut backend = Backend {
        name: name.to_string(),
        address: address.to_string(),
        user: user.to_string(),
        password: password.to_string(),
        hostgroup: funnel_config::DEFAULT_HOSTGROUP.to_string(),
        weight: 1,
        max_replication_lag: None,
        max_per_core: None,
        tls: None,
        drained: false,
    };
    let mut it = rest.iter();
    while let Some(key) = it.next() {
        let Some(value) = it.next() else {
            return invalid(format!("{key} needs a value"));
        };
        match key.to_ascii_lowercase().as_str() {
            "hostgroup" => backend.hostgroup = value.to_string(),
            "weight" => match value.parse() {
                Ok(w) => backend.weight = w,
                Err(_) => return invalid(format!("weight {value} is not a number")),
            },
            // A replica added to a farm whose replicas carry a lag limit
            // needs one too.
            "max_replication_lag" => match value.parse() {
                Ok(d) => backend.max_replication_lag = Some(d),
                Err(e) => return invalid(format!("max_replication_lag {value}: {e}")),
            },
            other => return invalid(format!("unknown option {other}")),
        }
    }
    apply_edit(ctx, |mut cfg| {
        cfg.backends.push(backend);
        cfg.validate().map_err(invalid)?;
        Ok(cfg)
    })
}

/// `REMOVE BACKEND name`: drains it, then forgets it.
pub fn remove(ctx: &AdminContext, name: &str) -> Reply {
    apply_edit(ctx, |mut cfg| {
        let before = cfg.backends.len();
        cfg.backends.retain(|b| b.name != name);
        if cfg.backends.len() == before {
            return Err(invalid(format!("no backend named {name}")));
        }
        cfg.validate().map_err(invalid)?;
        Ok(cfg)
    })
}

/// `DRAIN BACKEND name`: sets its `drained` key in the running
/// configuration, so no new leases go to it and its connections close as
/// they come back. Being configuration, the drain outlives later admin
/// changes; a reload takes the file's value.
pub fn drain(ctx: &AdminContext, name: &str) -> Reply {
    set_drained(ctx, name, true)
}

/// `UNDRAIN BACKEND name`: clears its `drained` key; it gets a fresh pool
/// and takes traffic again.
pub fn undrain(ctx: &AdminContext, name: &str) -> Reply {
    set_drained(ctx, name, false)
}

fn set_drained(ctx: &AdminContext, name: &str, drained: bool) -> Reply {
    let reply = apply_edit(ctx, |mut cfg| {
        let Some(backend) = cfg.backends.iter_mut().find(|b| b.name == name) else {
            return Err(invalid(format!("no backend named {name}")));
        };
        backend.drained = drained;
        cfg.validate().map_err(invalid)?;
        Ok(cfg)
    });
    match reply {
        // Only `drained` changed, which needs no restart: say what it did.
        Reply::Ok(_) if drained => Reply::Ok(format!("draining {name}")),
        Reply::Ok(_) => Reply::Ok(format!("undrained {name}")),
        refused => refused,
    }
}

/// `RECONNECT BACKEND name` / `RECONNECT`: every connection of that
/// backend (of every backend) is replaced with a new one, idle ones at
/// once and the others as their clients give them back, as PgBouncer's
/// `RECONNECT`; for server settings changed under running connections.
pub fn reconnect(ctx: &AdminContext, name: Option<&str>) -> Reply {
    match ctx.handle.reconnect(name) {
        Ok(closed) => Reply::Ok(format!(
            "reconnecting {}: {closed} idle connection(s) closed, the others close once their clients are done",
            name.unwrap_or("every backend")
        )),
        Err(e) => invalid(e),
    }
}
