//! The KV engine's storage layout and persisted records. Keys are relative to the mount's
//! private view:
//!
//! | key | record | used by |
//! |---|---|---|
//! | `v1/<path>` | [`DataRecord`]: the secret's JSON object | version 1 |
//! | `config` | [`Config`]: mount-wide `max_versions`, `cas_required`, `delete_version_after` | version 2 |
//! | `meta/<path>` | [`SecretMeta`]: one per secret, with every version's metadata | version 2 |
//! | `versions/<hex(path)>/<n>` | [`DataRecord`]: the data of version `n` | version 2 |
//! | `upgraded` | [`UpgradeMarker`]: the v1 → v2 upgrade of this mount is done | version 2 |
//!
//! A v2 read is two gets (metadata, then the version); listing `metadata/` lists `meta/`.
//! Version keys use the hex of the secret path so that one secret's versions can never be
//! mistaken for another secret nested below it (`a` and `a/1`).
//!
//! Every record carries a `format` number; decoding is the one place that would upgrade an
//! older format, and it refuses a format newer than this build understands.

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tresor_sdk::{LogicalError, Result, Storage};
use zeroize::Zeroizing;

pub(crate) const V1_PREFIX: &str = "v1/";
pub(crate) const META_PREFIX: &str = "meta/";
pub(crate) const VERSIONS_PREFIX: &str = "versions/";
pub(crate) const CONFIG_KEY: &str = "config";
pub(crate) const UPGRADE_MARKER: &str = "upgraded";

/// The record format this build writes.
const FORMAT: u32 = 1;

fn current_format() -> u32 {
    FORMAT
}

/// Versions kept per secret when neither the secret nor the mount says otherwise.
pub(crate) const DEFAULT_MAX_VERSIONS: u64 = 10;

/// Mount-wide v2 settings (`<mount>/config`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct Config {
    #[serde(default = "current_format")]
    pub format: u32,
    pub max_versions: u64,
    pub cas_required: bool,
    pub delete_version_after_secs: u64,
}

/// One version's metadata, kept inside its secret's [`SecretMeta`].
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct VersionMeta {
    pub created_ns: u64,
    /// When the version was (or will be, with `delete_version_after`) soft-deleted.
    pub deletion_ns: Option<u64>,
    pub destroyed: bool,
}

impl VersionMeta {
    /// Soft-deleted as of `now` (a scheduled deletion counts once its time has come).
    pub fn is_deleted(&self, now_ns: u64) -> bool {
        self.deletion_ns.is_some_and(|t| t <= now_ns)
    }
    /// Neither destroyed nor deleted as of `now`: the data may be returned.
    pub fn is_live(&self, now_ns: u64) -> bool {
        !self.destroyed && !self.is_deleted(now_ns)
    }
}

/// A secret's metadata: its settings and the metadata of every version still tracked.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct SecretMeta {
    #[serde(default = "current_format")]
    pub format: u32,
    pub created_ns: u64,
    pub updated_ns: u64,
    pub current_version: u64,
    /// 0 until versions are pruned by `max_versions`, then the oldest version kept.
    pub oldest_version: u64,
    /// 0 means "use the mount's".
    pub max_versions: u64,
    pub cas_required: bool,
    /// 0 means "use the mount's".
    pub delete_version_after_secs: u64,
    pub custom_metadata: Option<BTreeMap<String, String>>,
    pub versions: BTreeMap<u64, VersionMeta>,
}

impl SecretMeta {
    pub fn new(now_ns: u64) -> Self {
        SecretMeta {
            format: FORMAT,
            created_ns: now_ns,
            updated_ns: now_ns,
            current_version: 0,
            oldest_version: 0,
            max_versions: 0,
            cas_required: false,
            delete_version_after_secs: 0,
            custom_metadata: None,
            versions: BTreeMap::new(),
        }
    }
}

/// A secret's data: a v1 entry or one v2 version. Debug never shows the values.
#[derive(Clone, Serialize, Deserialize)]
pub(crate) struct DataRecord {
    #[serde(default = "current_format")]
    pub format: u32,
    pub data: Map<String, Value>,
}

impl std::fmt::Debug for DataRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataRecord")
            .field("format", &self.format)
            .field("keys", &self.data.len())
            .finish_non_exhaustive()
    }
}

impl DataRecord {
    pub fn new(data: Map<String, Value>) -> Self {
        DataRecord {
            format: FORMAT,
            data,
        }
    }
}

/// Written once the v1 → v2 upgrade of a mount has finished.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct UpgradeMarker {
    #[serde(default = "current_format")]
    pub format: u32,
    pub upgraded_ns: u64,
    pub migrated: u64,
}

impl UpgradeMarker {
    pub fn new(upgraded_ns: u64, migrated: u64) -> Self {
        UpgradeMarker {
            format: FORMAT,
            upgraded_ns,
            migrated,
        }
    }
}

/// Records that know their own format number.
trait Versioned {
    fn format(&self) -> u32;
}

macro_rules! versioned {
    ($($t:ty),*) => {$(
        impl Versioned for $t {
            fn format(&self) -> u32 {
                self.format
            }
        }
    )*};
}
versioned!(Config, SecretMeta, DataRecord, UpgradeMarker);

/// Reads and decodes one record. The raw bytes are wiped once decoded.
async fn load<T: DeserializeOwned + Versioned>(s: &dyn Storage, key: &str) -> Result<Option<T>> {
    let Some(bytes) = s.get(key).await? else {
        return Ok(None);
    };
    decode(key, bytes)
}

fn decode<T: DeserializeOwned + Versioned>(key: &str, bytes: Vec<u8>) -> Result<Option<T>> {
    let bytes = Zeroizing::new(bytes);
    let record: T = serde_json::from_slice(&bytes)
        .map_err(|e| LogicalError::Internal(format!("decoding stored entry {key:?}: {e}")))?;
    if record.format() > FORMAT {
        return Err(LogicalError::Internal(format!(
            "stored entry {key:?} has format {}, newer than this build understands ({FORMAT})",
            record.format()
        )));
    }
    Ok(Some(record))
}

async fn save<T: Serialize>(s: &dyn Storage, key: &str, record: &T) -> Result<()> {
    let bytes = serde_json::to_vec(record).map_err(LogicalError::internal)?;
    s.put(key, bytes).await
}

fn hex(s: &str) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(s.len() * 2);
    for b in s.bytes() {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 0xf)] as char);
    }
    out
}

pub(crate) fn meta_key(path: &str) -> String {
    format!("{META_PREFIX}{path}")
}

pub(crate) fn versions_prefix(path: &str) -> String {
    format!("{VERSIONS_PREFIX}{}/", hex(path))
}

fn version_key(path: &str, n: u64) -> String {
    format!("{}{n}", versions_prefix(path))
}

pub(crate) async fn load_config(s: &dyn Storage) -> Result<Config> {
    Ok(load(s, CONFIG_KEY).await?.unwrap_or_default())
}

pub(crate) async fn save_config(s: &dyn Storage, c: &Config) -> Result<()> {
    save(s, CONFIG_KEY, c).await
}

pub(crate) async fn load_meta(s: &dyn Storage, path: &str) -> Result<Option<SecretMeta>> {
    load(s, &meta_key(path)).await
}

/// A secret's metadata and its storage revision (0 when there is none yet), for a write that
/// must not land if another writer changed the secret in between.
pub(crate) async fn load_meta_with_revision(
    s: &dyn Storage,
    path: &str,
) -> Result<(Option<SecretMeta>, u64)> {
    let key = meta_key(path);
    match s.get_with_revision(&key).await? {
        None => Ok((None, 0)),
        Some((bytes, rev)) => Ok((decode(&key, bytes)?, rev)),
    }
}

pub(crate) async fn save_meta(s: &dyn Storage, path: &str, m: &SecretMeta) -> Result<()> {
    save(s, &meta_key(path), m).await
}

pub(crate) async fn load_version(
    s: &dyn Storage,
    path: &str,
    n: u64,
) -> Result<Option<Map<String, Value>>> {
    Ok(load::<DataRecord>(s, &version_key(path, n))
        .await?
        .map(|r| r.data))
}

pub(crate) async fn save_version(
    s: &dyn Storage,
    path: &str,
    n: u64,
    data: Map<String, Value>,
) -> Result<()> {
    save(s, &version_key(path, n), &DataRecord::new(data)).await
}

/// Stores version `n`, erases `pruned` versions and saves the metadata in one transaction.
/// Writes new versions, erases pruned ones and saves the metadata, in one commit.
/// Writes new versions, erases pruned ones and saves the metadata in one commit, if the
/// metadata is still at `meta_revision` (0: absent). `Ok(false)`: it was not, nothing written.
pub(crate) async fn write_versions_if(
    s: &dyn Storage,
    path: &str,
    versions: Vec<(u64, Map<String, Value>)>,
    pruned: &[u64],
    meta: &SecretMeta,
    meta_revision: u64,
) -> Result<bool> {
    let ops = version_ops(path, versions, pruned, meta)?;
    s.transaction_if(vec![(meta_key(path), meta_revision)], ops)
        .await
}

fn version_ops(
    path: &str,
    versions: Vec<(u64, Map<String, Value>)>,
    pruned: &[u64],
    meta: &SecretMeta,
) -> Result<Vec<(String, Option<Vec<u8>>)>> {
    let mut ops = Vec::with_capacity(versions.len() + pruned.len() + 1);
    for (n, data) in versions {
        let record = Zeroizing::new(
            serde_json::to_vec(&DataRecord::new(data)).map_err(LogicalError::internal)?,
        );
        ops.push((version_key(path, n), Some(record.to_vec())));
    }
    for old in pruned {
        ops.push((version_key(path, *old), None));
    }
    ops.push((
        meta_key(path),
        Some(serde_json::to_vec(meta).map_err(LogicalError::internal)?),
    ));
    Ok(ops)
}

/// Writes new versions, erases pruned ones and saves the metadata, in one commit.
pub(crate) async fn write_versions_atomically(
    s: &dyn Storage,
    path: &str,
    versions: Vec<(u64, Map<String, Value>)>,
    pruned: &[u64],
    meta: &SecretMeta,
) -> Result<()> {
    s.transaction(version_ops(path, versions, pruned, meta)?)
        .await
}

pub(crate) async fn delete_version(s: &dyn Storage, path: &str, n: u64) -> Result<()> {
    s.delete(&version_key(path, n)).await
}

pub(crate) async fn load_v1(s: &dyn Storage, path: &str) -> Result<Option<Map<String, Value>>> {
    Ok(load::<DataRecord>(s, &format!("{V1_PREFIX}{path}"))
        .await?
        .map(|r| r.data))
}

pub(crate) async fn save_v1(s: &dyn Storage, path: &str, data: Map<String, Value>) -> Result<()> {
    save(s, &format!("{V1_PREFIX}{path}"), &DataRecord::new(data)).await
}

pub(crate) async fn load_marker(s: &dyn Storage) -> Result<Option<UpgradeMarker>> {
    load(s, UPGRADE_MARKER).await
}

pub(crate) async fn save_marker(s: &dyn Storage, m: &UpgradeMarker) -> Result<()> {
    save(s, UPGRADE_MARKER, m).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_keys_of_nested_secrets_never_collide() {
        // `a` version 1 and the secret `a/1` must not share a prefix.
        assert_ne!(versions_prefix("a"), versions_prefix("a/1"));
        assert!(!version_key("a/1", 1).starts_with(&versions_prefix("a")));
        assert_eq!(versions_prefix("a/b"), "versions/612f62/");
    }

    #[test]
    fn data_record_debug_redacts_values() {
        let mut m = Map::new();
        m.insert("password".into(), Value::String("hunter2".into()));
        let shown = format!("{:?}", DataRecord::new(m));
        assert!(!shown.contains("hunter2"), "{shown}");
    }

    #[test]
    fn newer_formats_are_refused() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(async {
            let s = crate::test_support::MemStorage::default();
            s.put(CONFIG_KEY, br#"{"format":99,"max_versions":1,"cas_required":false,"delete_version_after_secs":0}"#.to_vec())
                .await
                .unwrap();
            let err = load_config(&s).await.unwrap_err();
            assert!(err.to_string().contains("format 99"), "{err}");
        });
    }
}
