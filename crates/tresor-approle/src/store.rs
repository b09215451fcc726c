//! The storage layout of an AppRole mount and its versioned records.
//!
//! ```text
//! salt                                  the mount's HMAC key (created at first use)
//! role/<name>                           RoleEntry (names are lower case)
//! role_id/<hmac(role_id)>               RoleIdIndex: which role a role ID belongs to
//! secret_id/<instance>/<hmac(secret)>   SecretIdEntry
//! accessor/<instance>/<accessor>        AccessorEntry: which secret ID an accessor names
//! ```
//!
//! Neither a role ID nor a secret ID is ever a storage key: both are keyed by an HMAC-SHA256
//! under the mount's salt (with a domain prefix each, so one cannot stand for the other).
//! Secret IDs and accessors live under the role's `instance`, a random id a role gets when it
//! is created: a role deleted and re-created under the same name starts with no secret IDs
//! even if a crash left the old ones behind, and tidy removes what no live role owns.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;
use tresor_sdk::record::{self, Versioned};
use tresor_sdk::token::TokenParams;
use tresor_sdk::{LogicalError, Result, Storage};

pub(crate) const SALT_KEY: &str = "salt";
pub(crate) const ROLE_PREFIX: &str = "role/";
pub(crate) const ROLE_ID_PREFIX: &str = "role_id/";
pub(crate) const SECRET_ID_PREFIX: &str = "secret_id/";
pub(crate) const ACCESSOR_PREFIX: &str = "accessor/";

/// The mount's HMAC key.
#[derive(Clone, Serialize, Deserialize)]
pub(crate) struct Salt {
    pub version: u32,
    /// 32 random bytes, hex.
    pub key: String,
}

impl Versioned for Salt {
    const FORMAT: u32 = 1;
    fn format(&self) -> u32 {
        self.version
    }
}

/// Never prints the key.
impl std::fmt::Debug for Salt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Salt").finish_non_exhaustive()
    }
}

impl Salt {
    pub(crate) fn generate() -> Result<Salt> {
        Ok(Salt {
            version: Salt::FORMAT,
            key: hex::encode(random_bytes::<32>()?),
        })
    }

    fn mac(&self, domain: &str, value: &str) -> String {
        let raw = hex::decode(&self.key).unwrap_or_default();
        let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &raw);
        let mut ctx = aws_lc_rs::hmac::Context::with_key(&key);
        ctx.update(domain.as_bytes());
        ctx.update(&[0]);
        ctx.update(value.as_bytes());
        hex::encode(ctx.sign().as_ref())
    }

    /// The storage name of a role ID.
    pub(crate) fn role_id(&self, role_id: &str) -> String {
        self.mac("role_id", role_id)
    }

    /// The storage name of a secret ID.
    pub(crate) fn secret_id(&self, secret_id: &str) -> String {
        self.mac("secret_id", secret_id)
    }
}

pub(crate) fn random_bytes<const N: usize>() -> Result<[u8; N]> {
    use aws_lc_rs::rand::SecureRandom;
    let mut b = [0u8; N];
    aws_lc_rs::rand::SystemRandom::new()
        .fill(&mut b)
        .map_err(|_| LogicalError::internal("the system random generator failed"))?;
    Ok(b)
}

/// A random UUID (role IDs, secret IDs, accessors, role instances), as Vault makes them.
pub(crate) fn new_uuid() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// Constant-time equality of two strings.
pub(crate) fn ct_eq(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// One AppRole. Durations in seconds.
#[derive(Clone, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub(crate) struct RoleEntry {
    pub version: u32,
    pub name: String,
    /// Namespace of this role's secret IDs and accessors (see the module docs).
    pub instance: String,
    pub role_id: String,
    pub bind_secret_id: bool,
    pub secret_id_bound_cidrs: Vec<String>,
    pub secret_id_num_uses: i64,
    pub secret_id_ttl: u64,
    pub local_secret_ids: bool,
    pub token: TokenParams,
}

impl Default for RoleEntry {
    fn default() -> Self {
        RoleEntry {
            version: RoleEntry::FORMAT,
            name: String::new(),
            instance: String::new(),
            role_id: String::new(),
            bind_secret_id: true,
            secret_id_bound_cidrs: Vec::new(),
            secret_id_num_uses: 0,
            secret_id_ttl: 0,
            local_secret_ids: false,
            token: TokenParams::default(),
        }
    }
}

impl Versioned for RoleEntry {
    const FORMAT: u32 = 1;
    fn format(&self) -> u32 {
        self.version
    }
}

/// Never prints the role ID (half of a login's credentials).
impl std::fmt::Debug for RoleEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RoleEntry")
            .field("name", &self.name)
            .field("instance", &self.instance)
            .field("bind_secret_id", &self.bind_secret_id)
            .field("secret_id_bound_cidrs", &self.secret_id_bound_cidrs)
            .field("secret_id_num_uses", &self.secret_id_num_uses)
            .field("secret_id_ttl", &self.secret_id_ttl)
            .field("local_secret_ids", &self.local_secret_ids)
            .field("token", &self.token)
            .finish_non_exhaustive()
    }
}

/// `role_id/<hmac>`: the role a role ID belongs to.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct RoleIdIndex {
    pub version: u32,
    pub name: String,
}

impl Versioned for RoleIdIndex {
    const FORMAT: u32 = 1;
    fn format(&self) -> u32 {
        self.version
    }
}

/// One secret ID. The secret itself is not stored, only its HMAC. Times in Unix seconds;
/// an `expiration_time` of 0 never expires.
#[derive(Debug, Clone, Serialize, Deserialize, Default, PartialEq)]
#[serde(default)]
pub(crate) struct SecretIdEntry {
    pub version: u32,
    pub secret_id_hmac: String,
    pub accessor: String,
    /// Logins left; 0 is unlimited.
    pub num_uses: i64,
    pub ttl: u64,
    pub creation_time: i64,
    pub expiration_time: i64,
    pub last_updated_time: i64,
    pub metadata: BTreeMap<String, String>,
    pub cidr_list: Vec<String>,
    pub token_bound_cidrs: Vec<String>,
}

impl Versioned for SecretIdEntry {
    const FORMAT: u32 = 1;
    fn format(&self) -> u32 {
        self.version
    }
}

impl SecretIdEntry {
    pub(crate) fn expired(&self, now: i64) -> bool {
        self.expiration_time > 0 && now >= self.expiration_time
    }
}

/// `accessor/<instance>/<accessor>`: the secret ID an accessor names.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct AccessorEntry {
    pub version: u32,
    pub secret_id_hmac: String,
}

impl Versioned for AccessorEntry {
    const FORMAT: u32 = 1;
    fn format(&self) -> u32 {
        self.version
    }
}

pub(crate) fn role_key(name: &str) -> String {
    format!("{ROLE_PREFIX}{name}")
}

pub(crate) fn role_id_key(hmac: &str) -> String {
    format!("{ROLE_ID_PREFIX}{hmac}")
}

pub(crate) fn secret_prefix(instance: &str) -> String {
    format!("{SECRET_ID_PREFIX}{instance}/")
}

pub(crate) fn secret_key(instance: &str, hmac: &str) -> String {
    format!("{SECRET_ID_PREFIX}{instance}/{hmac}")
}

pub(crate) fn accessor_prefix(instance: &str) -> String {
    format!("{ACCESSOR_PREFIX}{instance}/")
}

pub(crate) fn accessor_key(instance: &str, accessor: &str) -> String {
    format!("{ACCESSOR_PREFIX}{instance}/{accessor}")
}

pub(crate) fn encode<T: Serialize>(v: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(v).map_err(LogicalError::internal)
}

pub(crate) fn decode<T: serde::de::DeserializeOwned + Versioned>(
    what: &str,
    bytes: &[u8],
) -> Result<T> {
    record::decode(what, bytes).map_err(LogicalError::Internal)
}

/// Reads and decodes a record.
pub(crate) async fn load<T: serde::de::DeserializeOwned + Versioned>(
    s: &dyn Storage,
    what: &str,
    key: &str,
) -> Result<Option<T>> {
    match s.get(key).await? {
        None => Ok(None),
        Some(b) => decode(what, &b).map(Some),
    }
}

/// Reads and decodes a record with its storage revision.
pub(crate) async fn load_rev<T: serde::de::DeserializeOwned + Versioned>(
    s: &dyn Storage,
    what: &str,
    key: &str,
) -> Result<Option<(T, u64)>> {
    match s.get_with_revision(key).await? {
        None => Ok(None),
        Some((b, rev)) => Ok(Some((decode(what, &b)?, rev))),
    }
}

pub(crate) async fn load_role(s: &dyn Storage, name: &str) -> Result<Option<RoleEntry>> {
    load(s, "approle role", &role_key(name)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_keyed_and_separated_by_domain() {
        let a = Salt::generate().unwrap();
        let b = Salt::generate().unwrap();
        assert_ne!(a.secret_id("x"), b.secret_id("x"), "keyed by the salt");
        assert_ne!(a.secret_id("x"), a.role_id("x"), "domain separated");
        assert_eq!(a.secret_id("x"), a.secret_id("x"));
        assert_eq!(a.secret_id("x").len(), 64);
        assert!(!format!("{a:?}").contains(&a.key));
    }

    #[test]
    fn role_debug_hides_the_role_id() {
        let r = RoleEntry {
            role_id: "very-secret-role-id".into(),
            ..Default::default()
        };
        assert!(!format!("{r:?}").contains("very-secret-role-id"));
    }

    #[test]
    fn constant_time_eq() {
        assert!(ct_eq("abc", "abc"));
        assert!(!ct_eq("abc", "abd"));
        assert!(!ct_eq("abc", "abcd"));
    }
}
