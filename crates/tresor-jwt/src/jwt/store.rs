//! What a JWT/OIDC mount persists, in its own view: `config` (one versioned record) and
//! `role/<name>` (one per role). The client secret is stored (the code exchange needs it)
//! and never shown.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tresor_sdk::record::{Versioned, decode};
use tresor_sdk::token::TokenParams;
use tresor_sdk::{LogicalError, Result, Storage};

pub(crate) const CONFIG_KEY: &str = "config";
pub(crate) const ROLE_PREFIX: &str = "role/";

/// One extra JWKS endpoint with the CA that signs its TLS certificate.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub(crate) struct JwksPair {
    pub(crate) jwks_url: String,
    pub(crate) jwks_ca_pem: String,
}

/// The mount's configuration (`config`).
#[derive(Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub(crate) struct JwtConfig {
    pub(crate) version: u32,
    pub(crate) oidc_discovery_url: String,
    pub(crate) oidc_discovery_ca_pem: String,
    pub(crate) oidc_client_id: String,
    pub(crate) oidc_client_secret: String,
    pub(crate) oidc_response_mode: String,
    pub(crate) oidc_response_types: Vec<String>,
    pub(crate) jwks_url: String,
    pub(crate) jwks_ca_pem: String,
    pub(crate) jwks_pairs: Vec<JwksPair>,
    pub(crate) jwt_validation_pubkeys: Vec<String>,
    pub(crate) jwt_supported_algs: Vec<String>,
    pub(crate) bound_issuer: String,
    pub(crate) default_role: String,
    pub(crate) provider_config: Map<String, Value>,
    pub(crate) namespace_in_state: bool,
}

impl Versioned for JwtConfig {
    const FORMAT: u32 = 1;
    fn format(&self) -> u32 {
        self.version
    }
}

/// Never prints the client secret.
impl std::fmt::Debug for JwtConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtConfig")
            .field("oidc_discovery_url", &self.oidc_discovery_url)
            .field("oidc_client_id", &self.oidc_client_id)
            .field("jwks_url", &self.jwks_url)
            .field("jwt_validation_pubkeys", &self.jwt_validation_pubkeys.len())
            .field("bound_issuer", &self.bound_issuer)
            .finish_non_exhaustive()
    }
}

impl JwtConfig {
    /// Every JWKS endpoint: `jwks_url` first, then `jwks_pairs`.
    pub(crate) fn jwks_endpoints(&self) -> Vec<JwksPair> {
        let mut v = Vec::new();
        if !self.jwks_url.is_empty() {
            v.push(JwksPair {
                jwks_url: self.jwks_url.clone(),
                jwks_ca_pem: self.jwks_ca_pem.clone(),
            });
        }
        v.extend(self.jwks_pairs.iter().cloned());
        v
    }
}

/// `jwt` (a token presented at `login`) or `oidc` (the browser code flow).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum RoleType {
    Jwt,
    #[default]
    Oidc,
}

impl RoleType {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            RoleType::Jwt => "jwt",
            RoleType::Oidc => "oidc",
        }
    }
}

/// One role (`role/<name>`).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub(crate) struct Role {
    pub(crate) version: u32,
    pub(crate) role_type: RoleType,
    pub(crate) bound_audiences: Vec<String>,
    pub(crate) bound_subject: String,
    pub(crate) bound_claims: Map<String, Value>,
    /// `glob` when bound claim values are `*` patterns, else exact strings.
    pub(crate) bound_claims_glob: bool,
    pub(crate) claim_mappings: std::collections::BTreeMap<String, String>,
    pub(crate) user_claim: String,
    pub(crate) user_claim_json_pointer: bool,
    pub(crate) groups_claim: String,
    pub(crate) oidc_scopes: Vec<String>,
    pub(crate) allowed_redirect_uris: Vec<String>,
    pub(crate) verbose_oidc_logging: bool,
    /// Seconds; 0 means the default (60), -1 none.
    pub(crate) clock_skew_leeway: i64,
    /// Seconds; 0 means the default (150), -1 none.
    pub(crate) expiration_leeway: i64,
    /// Seconds; 0 means the default (150), -1 none.
    pub(crate) not_before_leeway: i64,
    /// Seconds; for OIDC roles, the longest time since the user last authenticated at the
    /// provider (0: no limit).
    pub(crate) max_age: u64,
    #[serde(flatten)]
    pub(crate) token: TokenParams,
}

impl Versioned for Role {
    const FORMAT: u32 = 1;
    fn format(&self) -> u32 {
        self.version
    }
}

pub(crate) async fn load_config(s: &dyn Storage) -> Result<Option<JwtConfig>> {
    match s.get(CONFIG_KEY).await? {
        None => Ok(None),
        Some(b) => decode::<JwtConfig>("jwt config", &b)
            .map(Some)
            .map_err(LogicalError::Internal),
    }
}

pub(crate) async fn save_config(s: &dyn Storage, c: &JwtConfig) -> Result<()> {
    tresor_sdk::put_json(s, CONFIG_KEY, c).await
}

pub(crate) async fn load_role(s: &dyn Storage, name: &str) -> Result<Option<Role>> {
    match s.get(&format!("{ROLE_PREFIX}{name}")).await? {
        None => Ok(None),
        Some(b) => decode::<Role>("jwt role", &b)
            .map(Some)
            .map_err(LogicalError::Internal),
    }
}

pub(crate) async fn save_role(s: &dyn Storage, name: &str, r: &Role) -> Result<()> {
    tresor_sdk::put_json(s, &format!("{ROLE_PREFIX}{name}"), r).await
}

pub(crate) async fn delete_role(s: &dyn Storage, name: &str) -> Result<()> {
    s.delete(&format!("{ROLE_PREFIX}{name}")).await
}

pub(crate) async fn list_roles(s: &dyn Storage) -> Result<Vec<String>> {
    let mut v = s.list(ROLE_PREFIX).await?;
    v.retain(|n| !n.ends_with('/'));
    v.sort();
    Ok(v)
}
