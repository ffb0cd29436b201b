//! `ADD BACKEND`, `REMOVE BACKEND`, `DRAIN BACKEND`: changes to the running
//! configuration, validated like a file and applied like a reload.

use funnel_config::Backend;

use super::control::apply_edit;
use super::invalid;
use crate::resultset::Reply;
use crate::server::AdminContext;

/// `ADD BACKEND name address user password [hostgroup h] [weight n]`.
pub fn add(ctx: &AdminContext, args: &[&str]) -> Reply {
    let [name, address, user, password, rest @ ..] = args else {
        return invalid("usage: ADD BACKEND name address user password [hostgroup h] [weight n]");
    };
    let mut backend = Backend {
        name: name.to_string(),
        address: address.to_string(),
        user: user.to_string(),
        password: password.trim_matches('\'').to_string(),
        hostgroup: funnel_config::DEFAULT_HOSTGROUP.to_string(),
        weight: 1,
        max_replication_lag: None,
        max_per_core: None,
        tls: None,
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

/// `DRAIN BACKEND name`: no new leases on it; connections close as they
/// come back (it stays configured until removed).
pub fn drain(ctx: &AdminContext, name: &str) -> Reply {
    if !ctx.handle.config().backends.iter().any(|b| b.name == name) {
        return invalid(format!("no backend named {name}"));
    }
    ctx.handle.drain(name);
    Reply::Ok(format!("draining {name}"))
}
