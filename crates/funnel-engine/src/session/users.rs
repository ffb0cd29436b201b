//! The users who may log in to Funnel, with their stored credentials.

use std::collections::HashMap;
use std::rc::Rc;

use funnel_config::{Credential, User};
use funnel_protocol::auth::NativePasswordHash;

/// One login account.
#[derive(Debug)]
pub struct UserEntry {
    /// Login name.
    pub name: String,
    /// `mysql_native_password` verifier (never the clear password).
    pub hash: NativePasswordHash,
    /// Schema used when the client names none.
    pub default_schema: Option<Vec<u8>>,
    /// Where this user's commands go.
    pub default_hostgroup: Rc<str>,
    /// Where its read-only statements go (read/write split), if anywhere else.
    pub read_hostgroup: Option<Rc<str>>,
    /// Reads fall back to the default hostgroup when the read one has no backend.
    pub read_fallback: bool,
}

/// Accounts by name.
#[derive(Debug, Default)]
pub struct UserTable(HashMap<Vec<u8>, Rc<UserEntry>>);

impl UserTable {
    /// Builds the table from the config (which validated every credential).
    pub fn from_config(users: &[User]) -> Self {
        let map = users
            .iter()
            .map(|u| {
                let hash = match u.credential() {
                    Some(Credential::ClearText(pw)) => NativePasswordHash::from_password(pw.as_bytes()),
                    Some(Credential::NativeHash(h)) => NativePasswordHash::Hash(h),
                    None => NativePasswordHash::Empty,
                };
                let entry = UserEntry {
                    name: u.name.clone(),
                    hash,
                    default_schema: u.default_schema.as_ref().map(|s| s.as_bytes().to_vec()),
                    default_hostgroup: Rc::from(u.effective_default_hostgroup()),
                    read_hostgroup: u.read_hostgroup.as_deref().map(Rc::from),
                    read_fallback: u.read_fallback,
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
