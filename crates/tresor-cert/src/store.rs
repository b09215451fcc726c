//! What the method keeps in its view, each record versioned (`tresor_sdk::record`):
//! `cert/<name>` (a trusted certificate and its constraints, Vault's "cert role"),
//! `crls/<name>` (the revoked serials of one CRL) and `config`.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use tresor_sdk::record::{Versioned, decode};
use tresor_sdk::token::TokenParams;
use tresor_sdk::{LogicalError, Result, Storage};

pub(crate) const CERT_PREFIX: &str = "cert/";
pub(crate) const CRL_PREFIX: &str = "crls/";
pub(crate) const CONFIG_KEY: &str = "config";

/// One trusted certificate (a CA or a leaf) and the constraints a client certificate must meet
/// to log in through it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub(crate) struct CertEntry {
    pub version: u32,
    pub name: String,
    /// PEM: one or more certificates, each trusted on its own.
    pub certificate: String,
    pub display_name: String,
    pub allowed_names: Vec<String>,
    pub allowed_common_names: Vec<String>,
    pub allowed_dns_sans: Vec<String>,
    pub allowed_email_sans: Vec<String>,
    pub allowed_uri_sans: Vec<String>,
    pub allowed_organizational_units: Vec<String>,
    /// `oid:glob` (the extension's string value) or `hex:oid:glob` (its DER value in hex).
    pub required_extensions: Vec<String>,
    pub allowed_metadata_extensions: Vec<String>,
    pub ocsp_enabled: bool,
    /// PEM: responder certificates trusted to sign OCSP answers, besides the issuer.
    pub ocsp_ca_certificates: String,
    pub ocsp_servers_override: Vec<String>,
    pub ocsp_fail_open: bool,
    pub ocsp_query_all_servers: bool,
    /// Seconds; 0 means any age.
    pub ocsp_this_update_max_age: u64,
    pub ocsp_max_retries: i64,
    #[serde(flatten)]
    pub token: TokenParams,
}

impl Versioned for CertEntry {
    const FORMAT: u32 = 1;
    fn format(&self) -> u32 {
        self.version
    }
}

/// The serials of one CRL, as lower-case hex without leading zeros.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub(crate) struct CrlEntry {
    pub version: u32,
    pub serials: BTreeSet<String>,
}

impl Versioned for CrlEntry {
    const FORMAT: u32 = 1;
    fn format(&self) -> u32 {
        self.version
    }
}

/// The mount's settings (`config`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub(crate) struct Config {
    pub version: u32,
    pub disable_binding: bool,
    pub enable_identity_alias_metadata: bool,
    pub ocsp_cache_size: i64,
    pub role_cache_size: i64,
    pub enable_metadata_on_failures: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            version: Config::FORMAT,
            disable_binding: false,
            enable_identity_alias_metadata: false,
            ocsp_cache_size: 100,
            role_cache_size: 200,
            enable_metadata_on_failures: false,
        }
    }
}

impl Versioned for Config {
    const FORMAT: u32 = 1;
    fn format(&self) -> u32 {
        self.version
    }
}

async fn load<T: Versioned + serde::de::DeserializeOwned>(
    s: &dyn Storage,
    key: &str,
    what: &str,
) -> Result<Option<T>> {
    match s.get(key).await? {
        None => Ok(None),
        Some(b) => decode(what, &b).map(Some).map_err(LogicalError::Internal),
    }
}

async fn save<T: Serialize>(s: &dyn Storage, key: &str, v: &T) -> Result<()> {
    tresor_sdk::put_json(s, key, v).await
}

pub(crate) async fn cert(s: &dyn Storage, name: &str) -> Result<Option<CertEntry>> {
    load(s, &format!("{CERT_PREFIX}{name}"), "certificate role").await
}

pub(crate) async fn put_cert(s: &dyn Storage, e: &CertEntry) -> Result<()> {
    let mut e = e.clone();
    e.version = CertEntry::FORMAT;
    save(s, &format!("{CERT_PREFIX}{}", e.name), &e).await
}

/// Every certificate role, by name (storage lists keys in order).
pub(crate) async fn cert_names(s: &dyn Storage) -> Result<Vec<String>> {
    let mut names: Vec<String> = s
        .list(CERT_PREFIX)
        .await?
        .into_iter()
        .filter(|n| !n.ends_with('/'))
        .collect();
    names.sort();
    Ok(names)
}

pub(crate) async fn crl(s: &dyn Storage, name: &str) -> Result<Option<CrlEntry>> {
    load(s, &format!("{CRL_PREFIX}{name}"), "CRL").await
}

pub(crate) async fn put_crl(s: &dyn Storage, name: &str, e: &CrlEntry) -> Result<()> {
    let mut e = e.clone();
    e.version = CrlEntry::FORMAT;
    save(s, &format!("{CRL_PREFIX}{name}"), &e).await
}

pub(crate) async fn crl_names(s: &dyn Storage) -> Result<Vec<String>> {
    let mut names: Vec<String> = s
        .list(CRL_PREFIX)
        .await?
        .into_iter()
        .filter(|n| !n.ends_with('/'))
        .collect();
    names.sort();
    Ok(names)
}

/// Every revoked serial of every stored CRL.
pub(crate) async fn revoked_serials(s: &dyn Storage) -> Result<BTreeSet<String>> {
    let mut all = BTreeSet::new();
    for name in crl_names(s).await? {
        if let Some(c) = crl(s, &name).await? {
            all.extend(c.serials);
        }
    }
    Ok(all)
}

pub(crate) async fn config(s: &dyn Storage) -> Result<Config> {
    Ok(load(s, CONFIG_KEY, "cert auth config")
        .await?
        .unwrap_or_default())
}

pub(crate) async fn put_config(s: &dyn Storage, c: &Config) -> Result<()> {
    let mut c = c.clone();
    c.version = Config::FORMAT;
    save(s, CONFIG_KEY, &c).await
}
