//! Storage layout and versioned records, all under the mount's view:
//!
//! - `config/<name>`: a connection (plugin, URL, root credentials, pool settings);
//! - `role/<name>`: a dynamic role (statements and TTLs);
//! - `static-role/<name>`: a static role with the account's current password;
//! - `password_policies/<name>`: a password policy's HCL (Tresor's mount-local fallback for
//!   `sys/policies/password`, which engines cannot read).
//!
//! Records holding a password zeroize it when dropped and have no `Debug`.

use serde::{Deserialize, Serialize};
use tresor_sdk::record::{self, Versioned};
use tresor_sdk::{LogicalError, Result, Storage};
use zeroize::{Zeroize, Zeroizing};

pub const CONFIG: &str = "config/";
pub const ROLE: &str = "role/";
pub const STATIC_ROLE: &str = "static-role/";
pub const POLICIES: &str = "password_policies/";

/// Decodes a versioned record stored at `key`.
pub async fn load<T: serde::de::DeserializeOwned + Versioned>(
    s: &dyn Storage,
    what: &str,
    key: &str,
) -> Result<Option<T>> {
    match s.get(key).await? {
        None => Ok(None),
        Some(bytes) => {
            let bytes = Zeroizing::new(bytes);
            record::decode(what, &bytes)
                .map(Some)
                .map_err(LogicalError::Internal)
        }
    }
}

pub async fn save<T: Serialize>(s: &dyn Storage, key: &str, value: &T) -> Result<()> {
    let bytes = serde_json::to_vec(value).map_err(LogicalError::internal)?;
    s.put(key, bytes).await
}

/// Names are one path segment of letters, digits, `-`, `_` and `.`.
pub fn check_name(name: &str, what: &str) -> Result<()> {
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        || name.starts_with('.')
    {
        return Err(LogicalError::invalid(format!(
            "invalid {what} name {name:?}: use letters, digits, '-', '_' and '.'"
        )));
    }
    Ok(())
}

fn one() -> u32 {
    1
}

/// One configured database connection.
#[derive(Serialize, Deserialize, Clone, Default)]
pub struct ConnConfig {
    #[serde(default = "one")]
    pub version: u32,
    pub plugin_name: String,
    pub connection_url: String,
    #[serde(default)]
    pub username: String,
    #[serde(default)]
    pub password: String,
    #[serde(default)]
    pub allowed_roles: Vec<String>,
    #[serde(default)]
    pub root_rotation_statements: Vec<String>,
    #[serde(default)]
    pub password_policy: String,
    #[serde(default)]
    pub verify_connection: bool,
    pub max_open_connections: i64,
    pub max_idle_connections: i64,
    /// Seconds; 0 means forever.
    pub max_connection_lifetime: u64,
    #[serde(default)]
    pub username_template: String,
    #[serde(default)]
    pub tls_ca: String,
    #[serde(default)]
    pub tls_certificate_key: String,
}

impl Versioned for ConnConfig {
    const FORMAT: u32 = 1;
    fn format(&self) -> u32 {
        self.version
    }
}

impl Drop for ConnConfig {
    fn drop(&mut self) {
        self.password.zeroize();
        self.tls_certificate_key.zeroize();
        self.connection_url.zeroize();
    }
}

impl ConnConfig {
    /// Whether `role` may use this connection (`allowed_roles` globs; empty allows none).
    pub fn allows(&self, role: &str) -> bool {
        self.allowed_roles.iter().any(|g| glob(g.trim(), role))
    }
}

/// `*` matches any run of characters; everything else matches itself.
pub fn glob(pattern: &str, s: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == s;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !s.starts_with(first) || s.len() < first.len() + last.len() || !s.ends_with(last) {
        return false;
    }
    let mut rest = &s[first.len()..s.len() - last.len()];
    for mid in &parts[1..parts.len() - 1] {
        match rest.find(mid) {
            Some(i) => rest = &rest[i + mid.len()..],
            None => return false,
        }
    }
    true
}

/// A dynamic role.
#[derive(Serialize, Deserialize, Clone, Default)]
pub struct Role {
    #[serde(default = "one")]
    pub version: u32,
    pub db_name: String,
    pub creation_statements: Vec<String>,
    #[serde(default)]
    pub revocation_statements: Vec<String>,
    #[serde(default)]
    pub rollback_statements: Vec<String>,
    #[serde(default)]
    pub renew_statements: Vec<String>,
    /// Seconds; 0 takes the mount's.
    pub default_ttl: u64,
    pub max_ttl: u64,
}

impl Versioned for Role {
    const FORMAT: u32 = 1;
    fn format(&self) -> u32 {
        self.version
    }
}

/// A static role: an existing account whose password Tresor rotates.
#[derive(Serialize, Deserialize, Clone, Default)]
pub struct StaticRole {
    #[serde(default = "one")]
    pub version: u32,
    pub db_name: String,
    pub username: String,
    /// Seconds; 0 when the role rotates on `rotation_schedule` instead.
    pub rotation_period: u64,
    /// A cron schedule (UTC) the role rotates on instead of a period (`crate::cron`).
    #[serde(default)]
    pub rotation_schedule: String,
    /// Seconds after a scheduled time during which the rotation may still happen (0: any time
    /// until the next one).
    #[serde(default)]
    pub rotation_window: u64,
    #[serde(default)]
    pub rotation_statements: Vec<String>,
    /// The password the account has now.
    #[serde(default)]
    pub password: String,
    /// Unix seconds of the last successful rotation.
    pub last_vault_rotation: i64,
    /// Failed rotations since the last success, and when to try again (Unix seconds).
    #[serde(default)]
    pub failures: u32,
    #[serde(default)]
    pub retry_at: i64,
}

impl Versioned for StaticRole {
    const FORMAT: u32 = 1;
    fn format(&self) -> u32 {
        self.version
    }
}

impl Drop for StaticRole {
    fn drop(&mut self) {
        self.password.zeroize();
    }
}

/// A password policy stored in the mount.
#[derive(Serialize, Deserialize, Clone, Default)]
pub struct StoredPolicy {
    #[serde(default = "one")]
    pub version: u32,
    pub policy: String,
}

impl Versioned for StoredPolicy {
    const FORMAT: u32 = 1;
    fn format(&self) -> u32 {
        self.version
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        for (p, s, want) in [
            ("*", "anything", true),
            ("readonly", "readonly", true),
            ("readonly", "readonly2", false),
            ("read*", "readonly", true),
            ("*only", "readonly", true),
            ("r*d*y", "readonly", true),
            ("r*x*y", "readonly", false),
            ("ab*ba", "aba", false),
            ("", "x", false),
        ] {
            assert_eq!(glob(p, s), want, "{p} {s}");
        }
        let mut c = ConnConfig::default();
        c.allowed_roles = vec!["app-*".into(), "ro".into()];
        assert!(c.allows("app-1") && c.allows("ro") && !c.allows("rw"));
        assert!(!ConnConfig::default().allows("ro"), "empty allows none");
    }
}
