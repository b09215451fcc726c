//! The storage layout of one PKI mount and its versioned records.
//!
//! ```text
//! config/urls, config/crl, config/issuers, config/keys, config/auto-tidy,
//! config/cluster                   JSON configs
//! role/<name>                      Role
//! key/<key id>                     KeyEntry (PKCS#8, zeroized in memory)
//! issuer/<issuer id>               IssuerEntry (certificate, chain, AIA overrides)
//! certs/<xx>/<serial>              raw DER of every stored certificate, sharded by the
//!                                  first byte of the serial so listing pages stay cheap
//! issued-by/<xx>/<serial>          IssuedBy: the issuer that signed a certificate this mount
//!                                  issued, written with the certificate in one transaction
//! revoked/<serial>                 RevokedEntry (time, issuer, CRL, expiry)
//! crl-index/<crl id>/<chunk>       the compact revocation index: append-only chunks of
//!                                  (serial, time) pairs that a CRL rebuild reads instead of
//!                                  every revoked entry
//! crl-state/<crl id>               CRL numbers and index positions
//! crls/<crl id>/full|delta         the last signed CRLs (DER)
//! ```
//!
//! A `<crl id>` names one CRL: issuers with the same subject and the same key (a reissued
//! CA) share it, as in Vault, since a relying party cannot tell their signatures apart (see
//! `issuers::crl_id`). Mounts written before CRLs were shared keyed the last three by issuer
//! id (a UUID, never a CRL id); the CRL code folds those into the shared CRL on first use.
//!
//! Serials in keys are lowercase hex joined by `-` (Vault's storage spelling); the API prints
//! them with `:`. Every JSON record carries `v` (its format version); decoding is where an
//! older format would be upgraded.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use tresor_sdk::{LogicalError, Result, Storage, get_json, put_json};
use zeroize::Zeroizing;

/// The current version of every record written by this engine.
pub const RECORD_VERSION: u32 = 1;

fn v1() -> u32 {
    RECORD_VERSION
}

/// Bytes kept secret: base64 in storage, zeroized in memory, redacted in `Debug`.
#[derive(Clone, Default)]
pub struct SecretBytes(pub Zeroizing<Vec<u8>>);

impl std::fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretBytes([redacted])")
    }
}

impl Serialize for SecretBytes {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let text = Zeroizing::new(STANDARD.encode(&*self.0));
        s.serialize_str(&text)
    }
}

impl<'de> Deserialize<'de> for SecretBytes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let text = Zeroizing::new(String::deserialize(d)?);
        STANDARD
            .decode(text.as_bytes())
            .map(|b| SecretBytes(Zeroizing::new(b)))
            .map_err(serde::de::Error::custom)
    }
}

/// `config/urls`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct UrlsConfig {
    #[serde(default = "v1")]
    pub v: u32,
    pub issuing_certificates: Vec<String>,
    pub crl_distribution_points: Vec<String>,
    pub ocsp_servers: Vec<String>,
    pub enable_templating: bool,
}

/// `config/cluster`: this mount's URL as seen by clients (Vault's `{{cluster_path}}`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ClusterConfig {
    #[serde(default = "v1")]
    pub v: u32,
    pub path: String,
    pub aia_path: String,
}

/// `config/crl`. Durations in seconds.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct CrlConfig {
    pub v: u32,
    pub expiry: u64,
    pub disable: bool,
    pub ocsp_disable: bool,
    pub ocsp_expiry: u64,
    pub auto_rebuild: bool,
    pub auto_rebuild_grace_period: u64,
    pub enable_delta: bool,
    pub delta_rebuild_interval: u64,
}

impl Default for CrlConfig {
    fn default() -> Self {
        CrlConfig {
            v: RECORD_VERSION,
            expiry: 72 * 3600,
            disable: false,
            ocsp_disable: false,
            ocsp_expiry: 12 * 3600,
            auto_rebuild: false,
            auto_rebuild_grace_period: 12 * 3600,
            enable_delta: false,
            delta_rebuild_interval: 15 * 60,
        }
    }
}

/// `config/issuers`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct IssuersConfig {
    #[serde(default = "v1")]
    pub v: u32,
    pub default: String,
    pub default_follows_latest_issuer: bool,
}

/// `config/keys`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct KeysConfig {
    #[serde(default = "v1")]
    pub v: u32,
    pub default: String,
}

/// `config/auto-tidy`. Durations in seconds.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct AutoTidyConfig {
    pub v: u32,
    pub enabled: bool,
    pub interval_duration: u64,
    pub tidy_cert_store: bool,
    pub tidy_revoked_certs: bool,
    pub tidy_revoked_cert_issuer_associations: bool,
    pub tidy_expired_issuers: bool,
    pub safety_buffer: u64,
    pub issuer_safety_buffer: u64,
    pub pause_duration: String,
}

impl Default for AutoTidyConfig {
    fn default() -> Self {
        AutoTidyConfig {
            v: RECORD_VERSION,
            enabled: false,
            interval_duration: 12 * 3600,
            tidy_cert_store: false,
            tidy_revoked_certs: false,
            tidy_revoked_cert_issuer_associations: false,
            tidy_expired_issuers: false,
            safety_buffer: 72 * 3600,
            issuer_safety_buffer: 365 * 24 * 3600,
            pause_duration: "0s".into(),
        }
    }
}

/// `key/<id>`: one private key of the mount.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KeyEntry {
    #[serde(default = "v1")]
    pub v: u32,
    pub id: String,
    #[serde(default)]
    pub name: String,
    pub key_type: String,
    #[serde(default)]
    pub key_bits: u32,
    pub pkcs8: SecretBytes,
}

/// Per-issuer authority URLs, which override `config/urls` when any is set.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct IssuerUrls {
    pub issuing_certificates: Vec<String>,
    pub crl_distribution_points: Vec<String>,
    pub ocsp_servers: Vec<String>,
    pub enable_aia_url_templating: bool,
}

/// `issuer/<id>`: one CA certificate of the mount, with or without a key.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IssuerEntry {
    #[serde(default = "v1")]
    pub v: u32,
    pub id: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub key_id: String,
    /// PEM of the issuer's own certificate.
    pub certificate: String,
    /// PEMs from this issuer up to its root, this issuer first.
    #[serde(default)]
    pub ca_chain: Vec<String>,
    /// Issuer ids set by the operator to override chain building.
    #[serde(default)]
    pub manual_chain: Vec<String>,
    #[serde(default = "default_leaf_behavior")]
    pub leaf_not_after_behavior: String,
    #[serde(default = "default_usage")]
    pub usage: Vec<String>,
    #[serde(default)]
    pub revocation_signature_algorithm: String,
    #[serde(default)]
    pub urls: IssuerUrls,
    #[serde(default)]
    pub revoked: bool,
    #[serde(default)]
    pub revocation_time: i64,
    /// Colon-hex serial of the certificate.
    #[serde(default)]
    pub serial_number: String,
}

pub fn default_leaf_behavior() -> String {
    "err".into()
}

pub fn default_usage() -> Vec<String> {
    [
        "crl-signing",
        "issuing-certificates",
        "ocsp-signing",
        "read-only",
    ]
    .map(String::from)
    .to_vec()
}

/// `revoked/<serial>`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RevokedEntry {
    #[serde(default = "v1")]
    pub v: u32,
    pub serial: String,
    pub revocation_time: i64,
    /// The issuer that signed the certificate.
    pub issuer_id: String,
    /// The CRL (and index) it is listed on; empty in entries written before CRLs were shared,
    /// which are read through their issuer.
    #[serde(default)]
    pub crl_id: String,
    pub not_after: i64,
}

/// `issued-by/<xx>/<serial>`: which issuer signed a certificate this mount issued. Issuers that
/// share subject and key produce signatures nobody can tell apart, so this is the only record
/// of which one it was.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IssuedBy {
    #[serde(default = "v1")]
    pub v: u32,
    pub issuer_id: String,
}

/// One chunk of the revocation index of an issuer.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct IndexChunk {
    #[serde(default = "v1")]
    pub v: u32,
    /// (hex serial, revocation time) pairs in revocation order.
    pub entries: Vec<(String, i64)>,
}

/// Entries per index chunk: a revocation rewrites one chunk of at most this many pairs, and a
/// CRL of 10,000 entries reads forty chunks. Measured: at 1,000 the chunk rewrite dominated a
/// revocation (about 5x slower); at 250 a rebuild costs the same.
pub const INDEX_CHUNK: usize = 250;

/// `crl-state/<issuer>`: CRL numbering and where the index stood at the last full CRL.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct CrlState {
    #[serde(default = "v1")]
    pub v: u32,
    /// The next CRL number to use (full and delta CRLs share one sequence, RFC 5280 5.2.3).
    pub next_number: u64,
    /// The number of the last full CRL (the base of delta CRLs).
    pub base_number: u64,
    /// Index chunks in use.
    pub chunks: u32,
    /// Entries in the index.
    pub count: u64,
    /// Entries the last full CRL covered; later ones go on the delta CRL.
    pub count_at_full: u64,
    /// Entries the last delta (or full) CRL covered: a CRL behind the index is one whose
    /// revocation crashed before it was signed, and is rebuilt when served.
    pub count_at_delta: u64,
    pub last_full: i64,
    pub last_delta: i64,
    /// The full CRL the stored delta CRL was built against (0: none yet, or a record written
    /// before this field existed); a delta whose base is not `base_number` is stale.
    pub delta_base: u64,
}

/// The storage spelling of a serial (`aa-bb-cc`).
pub fn serial_key(serial: &[u8]) -> String {
    crate::x509::serial_colon(serial).replace(':', "-")
}

fn sharded(prefix: &str, serial: &[u8]) -> String {
    let key = serial_key(serial);
    format!("{prefix}/{}/{}", &key[..2.min(key.len())], key)
}

pub fn cert_path(serial: &[u8]) -> String {
    sharded("certs", serial)
}

fn issued_by_path(serial: &[u8]) -> String {
    sharded("issued-by", serial)
}

/// The writes that store a certificate and the issuer that signed it, for a transaction.
pub fn issued_cert_ops(
    serial: &[u8],
    der: &[u8],
    issuer_id: &str,
) -> Result<Vec<(String, Option<Vec<u8>>)>> {
    let by = serde_json::to_vec(&IssuedBy {
        v: RECORD_VERSION,
        issuer_id: issuer_id.to_owned(),
    })
    .map_err(internal)?;
    Ok(vec![
        (cert_path(serial), Some(der.to_vec())),
        (issued_by_path(serial), Some(by)),
    ])
}

/// Stores a certificate signed by `issuer_id` together with that fact, in one commit.
pub async fn put_issued_cert(
    s: &dyn Storage,
    serial: &[u8],
    der: &[u8],
    issuer_id: &str,
) -> Result<()> {
    s.transaction(issued_cert_ops(serial, der, issuer_id)?)
        .await
}

/// Stores a certificate this mount did not sign (an imported CA certificate).
pub async fn put_cert(s: &dyn Storage, serial: &[u8], der: &[u8]) -> Result<()> {
    s.put(&cert_path(serial), der.to_vec()).await
}

pub async fn get_cert(s: &dyn Storage, serial: &[u8]) -> Result<Option<Vec<u8>>> {
    s.get(&cert_path(serial)).await
}

/// The issuer recorded as the signer of a stored certificate, if any.
pub async fn get_issued_by(s: &dyn Storage, serial: &[u8]) -> Result<Option<String>> {
    Ok(get_json::<IssuedBy>(s, &issued_by_path(serial))
        .await?
        .map(|b| b.issuer_id))
}

/// The deletes that remove a stored certificate and its issuer record, for a transaction.
pub fn cert_delete_ops(serial: &[u8]) -> Vec<(String, Option<Vec<u8>>)> {
    vec![(cert_path(serial), None), (issued_by_path(serial), None)]
}

pub async fn delete_cert(s: &dyn Storage, serial: &[u8]) -> Result<()> {
    s.transaction(cert_delete_ops(serial)).await
}

/// Stored serials (storage spelling) in order, starting after `after`, at most `limit`.
pub async fn list_certs(s: &dyn Storage, after: &str, limit: usize) -> Result<Vec<String>> {
    let after = after.replace(':', "-").to_ascii_lowercase();
    let mut out = Vec::new();
    let mut shards = s.list("certs/").await?;
    shards.sort();
    for shard in shards {
        let Some(prefix) = shard.strip_suffix('/') else {
            continue;
        };
        // Skip whole shards that sort before the cursor.
        if !after.is_empty() && prefix < &after[..2.min(after.len())] {
            continue;
        }
        let mut keys = s.list(&format!("certs/{shard}")).await?;
        keys.sort();
        for k in keys {
            if k.ends_with('/') || (!after.is_empty() && k.as_str() <= after.as_str()) {
                continue;
            }
            out.push(k);
            if out.len() >= limit {
                return Ok(out);
            }
        }
    }
    Ok(out)
}

/// Loads a JSON record, mapping absence to the type's default.
pub async fn load_or_default<T: serde::de::DeserializeOwned + Default>(
    s: &dyn Storage,
    key: &str,
) -> Result<T> {
    Ok(get_json(s, key).await?.unwrap_or_default())
}

pub async fn save<T: Serialize>(s: &dyn Storage, key: &str, v: &T) -> Result<()> {
    put_json(s, key, v).await
}

pub async fn load_index_chunk(s: &dyn Storage, issuer: &str, n: u32) -> Result<IndexChunk> {
    load_or_default(s, &format!("crl-index/{issuer}/{n:08}")).await
}

pub fn internal(e: impl std::fmt::Display) -> LogicalError {
    LogicalError::Internal(e.to_string())
}
