//! Printing a config back as YAML for the admin `SHOW CONFIG`, with secrets hidden.

use crate::model::Config;

/// What every secret is replaced with.
pub const REDACTED: &str = "<redacted>";

impl Config {
    /// A copy with every password and password hash replaced by [`REDACTED`].
    ///
    /// Hashes are hidden too: a mysql_native_password hash is enough to brute-force the password
    /// offline, and nobody reading `SHOW CONFIG` needs it.
    pub fn redacted(&self) -> Config {
        let mut copy = self.clone();
        let hide = |secret: &mut Option<String>| {
            if let Some(secret) = secret {
                *secret = REDACTED.to_owned();
            }
        };
        for user in &mut copy.users {
            hide(&mut user.password);
            hide(&mut user.password_hash);
        }
        for backend in &mut copy.backends {
            backend.password = REDACTED.to_owned();
        }
        if let Some(admin) = &mut copy.admin {
            hide(&mut admin.password);
            hide(&mut admin.password_hash);
        }
        hide(&mut copy.monitor.password);
        copy
    }

    /// The effective config (defaults filled in) as YAML, with secrets redacted.
    pub fn to_yaml_string(&self) -> String {
        // Only maps, sequences, strings and numbers are serialized, which serde_yaml cannot
        // fail on (its errors are for bytes and nested enums).
        serde_yaml::to_string(&self.redacted()).expect("config serializes to YAML")
    }
}
