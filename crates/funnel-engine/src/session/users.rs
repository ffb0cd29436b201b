//! The users who may log in to Funnel, with their stored credentials.

use std::collections::HashMap;
use std::rc::Rc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use funnel_config::{Credential, User};
use funnel_protocol::auth::{NativePasswordHash, Sha2PasswordHash};

/// One login account.
#[derive(Debug)]
pub struct UserEntry {
    /// Login name.
    pub name: String,
    /// `mysql_native_password` verifier (never the clear password).
    pub hash: NativePasswordHash,
    /// `caching_sha2_password` verifier, known for clear-text passwords only.
    pub sha2: Option<Sha2PasswordHash>,
    /// Schema used when the client names none.
    pub default_schema: Option<Vec<u8>>,
    /// Where this user's commands go.
    pub default_hostgroup: Rc<str>,
    /// Where its read-only statements go (read/write split), if anywhere else.
    pub read_hostgroup: Option<Rc<str>>,
    /// Reads fall back to the default hostgroup when the read one has no backend.
    pub read_fallback: bool,
    /// Client connections allowed across all cores (0: no limit).
    pub max_connections: u32,
    /// Backend connections its clients may hold per core (0: no limit).
    pub max_backend_per_core: usize,
    /// Refuse logins without TLS.
    pub require_tls: bool,
    /// Where its clients may log in from (`None`: anywhere).
    pub allowed_hosts: Option<Vec<funnel_config::HostPattern>>,
    /// With `causal_reads`: how long a replica read waits for the
    /// session's writes (see [`crate::causal`]).
    pub causal_reads: Option<std::time::Duration>,
    /// With `causal_reads: universal`: a replica read waits for every
    /// write committed before it arrived, not only the session's (the
    /// writer's position, read first; see [`crate::causal::PositionReads`]).
    pub causal_universal: bool,
    /// This user's client connections across all cores.
    pub connected: Arc<AtomicU32>,
}

impl UserEntry {
    /// True when a client on `peer` (an IP address, or `localhost` for
    /// Funnel's Unix socket) may log in as this user.
    pub fn may_connect_from(&self, peer: &str) -> bool {
        self.allowed_hosts
            .as_ref()
            .is_none_or(|hosts| hosts.iter().any(|h| h.matches(peer)))
    }

    /// Counts a new client connection; `None` when the user is at its
    /// `max_connections`. The slot is given back when the guard drops.
    pub fn admit(self: &Rc<Self>) -> Option<ConnectionSlot> {
        let before = self.connected.fetch_add(1, Ordering::AcqRel);
        if self.max_connections > 0 && before >= self.max_connections {
            self.connected.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        Some(ConnectionSlot(self.connected.clone()))
    }
}

/// One counted client connection of a user.
#[derive(Debug)]
pub struct ConnectionSlot(Arc<AtomicU32>);

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Per-user connection counters shared by every core. The only state cores
/// share besides control messages: touched once per login and logout,
/// never per query.
#[derive(Debug, Clone, Default)]
pub struct UserCounters(Arc<HashMap<String, Arc<AtomicU32>>>);

impl UserCounters {
    /// Counters for `users`, keeping the running counts of users already
    /// known. A removed user's counter is kept while its sessions still
    /// count on it: re-added by a later reload, the user must not start
    /// again from zero beside them.
    pub fn for_users(users: &[User], previous: Option<&UserCounters>) -> Self {
        let mut map: HashMap<String, Arc<AtomicU32>> = users
            .iter()
            .map(|u| {
                let c = previous
                    .and_then(|p| p.0.get(&u.name).cloned())
                    .unwrap_or_else(|| Arc::new(AtomicU32::new(0)));
                (u.name.clone(), c)
            })
            .collect();
        for (name, c) in previous.iter().flat_map(|p| p.0.iter()) {
            if c.load(Ordering::Acquire) > 0 {
                map.entry(name.clone()).or_insert_with(|| c.clone());
            }
        }
        UserCounters(Arc::new(map))
    }

    fn get(&self, name: &str) -> Arc<AtomicU32> {
        self.0
            .get(name)
            .cloned()
            .unwrap_or_else(|| Arc::new(AtomicU32::new(0)))
    }
}

/// Accounts by name.
#[derive(Debug, Default)]
pub struct UserTable(HashMap<Vec<u8>, Rc<UserEntry>>);

impl UserTable {
    /// Builds the table from the config (which validated every credential).
    pub fn from_config(users: &[User], counters: &UserCounters) -> Self {
        let map = users
            .iter()
            .map(|u| {
                let (hash, sha2) = match u.credential() {
                    Some(Credential::ClearText(pw)) => (
                        NativePasswordHash::from_password(pw.as_bytes()),
                        Some(Sha2PasswordHash::from_password(pw.as_bytes())),
                    ),
                    Some(Credential::NativeHash(h)) => (NativePasswordHash::Hash(h), None),
                    None => (NativePasswordHash::Empty, None),
                };
                let entry = UserEntry {
                    name: u.name.clone(),
                    hash,
                    sha2,
                    default_schema: u.default_schema.as_ref().map(|s| s.as_bytes().to_vec()),
                    default_hostgroup: Rc::from(u.effective_default_hostgroup()),
                    read_hostgroup: u.read_hostgroup.as_deref().map(Rc::from),
                    read_fallback: u.read_fallback,
                    max_connections: u.max_connections,
                    max_backend_per_core: u.max_backend_connections_per_core as usize,
                    require_tls: u.require_tls,
                    allowed_hosts: u.allowed_hosts.clone(),
                    causal_reads: u
                        .causal_reads
                        .is_on()
                        .then(|| u.causal_reads_timeout.as_duration()),
                    causal_universal: u.causal_reads == funnel_config::CausalReads::Universal,
                    connected: counters.get(&u.name),
                };
                (u.name.as_bytes().to_vec(), Rc::new(entry))
            })
            .collect();
        UserTable(map)
    }

    /// Looks a user up by the name a client sent.
    pub fn get(&self, name: &[u8]) -> Option<&Rc<UserEntry>> {
        self.0.get(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn users(names: &[&str]) -> Vec<User> {
        let yaml: String = names
            .iter()
            .map(|n| format!("  - name: {n}\n    password: pw\n"))
            .collect();
        let cfg = funnel_config::Config::from_yaml_str(&format!(
            "listen: 127.0.0.1:0\nusers:\n{yaml}\
             backends:\n  - name: b\n    address: 127.0.0.1:3306\n    user: u\n    password: p\n"
        ))
        .unwrap();
        cfg.users
    }

    /// A user removed while connected and added back keeps its count.
    #[test]
    fn users_counters_survive_a_removal_while_sessions_count_on_them() {
        let first = UserCounters::for_users(&users(&["a", "b"]), None);
        first.get("a").fetch_add(2, Ordering::AcqRel);
        let without_a = UserCounters::for_users(&users(&["b"]), Some(&first));
        let back = UserCounters::for_users(&users(&["a", "b"]), Some(&without_a));
        assert_eq!(back.get("a").load(Ordering::Acquire), 2);
        // Once nobody counts on it, it is forgotten.
        first.get("a").fetch_sub(2, Ordering::AcqRel);
        let gone = UserCounters::for_users(&users(&["b"]), Some(&back));
        assert!(!gone.0.contains_key("a"));
    }
}
