//! What a Kubernetes mount persists: `config` and `role/<name>`. The reviewer JWT is stored
//! (TokenReview needs it) and never shown.

use serde::{Deserialize, Serialize};
use tresor_sdk::record::{Versioned, decode};
use tresor_sdk::token::TokenParams;
use tresor_sdk::{LogicalError, Result, Storage};

pub(crate) const CONFIG_KEY: &str = "config";
const ROLE_PREFIX: &str = "role/";

#[derive(Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub(crate) struct K8sConfig {
    pub(crate) version: u32,
    pub(crate) kubernetes_host: String,
    pub(crate) kubernetes_ca_cert: String,
    pub(crate) token_reviewer_jwt: String,
    /// Beyond Vault: a file holding the reviewer JWT, read again whenever it changes (a
    /// projected token is rotated by the kubelet before it expires).
    pub(crate) token_reviewer_jwt_file: String,
    pub(crate) pem_keys: Vec<String>,
    pub(crate) issuer: String,
    pub(crate) disable_iss_validation: bool,
    pub(crate) disable_local_ca_jwt: bool,
}

impl Versioned for K8sConfig {
    const FORMAT: u32 = 1;
    fn format(&self) -> u32 {
        self.version
    }
}

/// Never prints the reviewer JWT.
impl std::fmt::Debug for K8sConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("K8sConfig")
            .field("kubernetes_host", &self.kubernetes_host)
            .field(
                "token_reviewer_jwt_set",
                &!self.token_reviewer_jwt.is_empty(),
            )
            .field("pem_keys", &self.pem_keys.len())
            .finish_non_exhaustive()
    }
}

/// How a role's logins are confirmed (beyond Vault, which always asks TokenReview).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum ReviewMode {
    /// The API server's TokenReview decides (Vault's behaviour).
    #[default]
    TokenReview,
    /// The token's signature (the config's `pem_keys`), times and claims decide; no call to
    /// the API server, so a deleted service account's unexpired token still logs in.
    LocalKeys,
}

impl ReviewMode {
    pub(crate) fn name(self) -> &'static str {
        match self {
            ReviewMode::TokenReview => "token_review",
            ReviewMode::LocalKeys => "local_keys",
        }
    }
}

/// Which claim names the identity alias.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum AliasSource {
    #[default]
    ServiceaccountUid,
    ServiceaccountName,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub(crate) struct K8sRole {
    pub(crate) version: u32,
    pub(crate) bound_service_account_names: Vec<String>,
    pub(crate) bound_service_account_namespaces: Vec<String>,
    pub(crate) audience: String,
    pub(crate) alias_name_source: AliasSource,
    pub(crate) review_mode: ReviewMode,
    #[serde(flatten)]
    pub(crate) token: TokenParams,
}

impl Versioned for K8sRole {
    const FORMAT: u32 = 1;
    fn format(&self) -> u32 {
        self.version
    }
}

pub(crate) async fn load_config(s: &dyn Storage) -> Result<Option<K8sConfig>> {
    match s.get(CONFIG_KEY).await? {
        None => Ok(None),
        Some(b) => decode::<K8sConfig>("kubernetes config", &b)
            .map(Some)
            .map_err(LogicalError::Internal),
    }
}

pub(crate) async fn save_config(s: &dyn Storage, c: &K8sConfig) -> Result<()> {
    tresor_sdk::put_json(s, CONFIG_KEY, c).await
}

pub(crate) async fn load_role(s: &dyn Storage, name: &str) -> Result<Option<K8sRole>> {
    match s.get(&format!("{ROLE_PREFIX}{name}")).await? {
        None => Ok(None),
        Some(b) => decode::<K8sRole>("kubernetes role", &b)
            .map(Some)
            .map_err(LogicalError::Internal),
    }
}

pub(crate) async fn save_role(s: &dyn Storage, name: &str, r: &K8sRole) -> Result<()> {
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
