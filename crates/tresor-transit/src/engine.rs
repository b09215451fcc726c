//! The state every handler of a transit mount shares: the clock, the cache of loaded keys, the
//! in-process writer locks; and the storage layout.
//!
//! Storage: `policy/<name>` holds a key's settings and version bounds (no key material);
//! `version/<name>/<n>` holds each version's material, so a key rotated every hour for years
//! never makes one large value; `config/cache` the cache size; `config/wrapping-key` the
//! mount's RSA key for BYOK imports.

use std::collections::HashMap;
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use parking_lot::RwLock;
use serde_json::{Map, Value, json};
use tresor_sdk::clock::Clock;
use tresor_sdk::{MountView, Request, Result, Storage, get_json};
use zeroize::Zeroizing;

use crate::key::{self, KDF, PolicyRecord, Version, VersionRecord};
use crate::keytype::KeyType;
use crate::util::{bad, internal};

const LOCK_STRIPES: usize = 64;
pub(crate) const POLICY_PREFIX: &str = "policy/";
pub(crate) const CACHE_CONFIG: &str = "config/cache";
pub(crate) const WRAPPING_KEY: &str = "config/wrapping-key";

pub(crate) fn policy_key(name: &str) -> String {
    format!("{POLICY_PREFIX}{name}")
}

pub(crate) fn version_key(name: &str, n: u32) -> String {
    format!("version/{name}/{n}")
}

pub(crate) fn version_prefix(name: &str) -> String {
    format!("version/{name}/")
}

/// A loaded key: its policy, and the versions used so far (loaded on first use).
pub(crate) struct Key {
    pub policy: PolicyRecord,
    pub kind: KeyType,
    versions: RwLock<HashMap<u32, Arc<Version>>>,
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Key")
            .field("name", &self.policy.name)
            .field("type", &self.kind)
            .finish_non_exhaustive()
    }
}

impl Key {
    pub(crate) fn new(policy: PolicyRecord) -> Result<Key> {
        Ok(Key {
            kind: policy.kind()?,
            policy,
            versions: RwLock::new(HashMap::new()),
        })
    }

    /// Version `n`, loaded from storage on first use.
    pub(crate) async fn version(&self, s: &dyn Storage, n: u32) -> Result<Arc<Version>> {
        if let Some(v) = self.versions.read().get(&n) {
            return Ok(v.clone());
        }
        if n == 0 || n > self.policy.latest_version || n < self.policy.min_available_version {
            return Err(bad(format!("key version {n} does not exist")));
        }
        let rec: VersionRecord = get_json(s, &version_key(&self.policy.name, n))
            .await?
            .ok_or_else(|| bad(format!("key version {n} does not exist")))?;
        let v = Arc::new(Version::load(self.kind, self.policy.derived, n, &rec)?);
        self.versions.write().insert(n, v.clone());
        Ok(v)
    }

    /// Vault's answer for a key read (also returned by create, config and rotate).
    pub(crate) async fn describe(&self, s: &dyn Storage) -> Result<Map<String, Value>> {
        let p = &self.policy;
        let t = self.kind;
        let mut keys = Map::new();
        let first = p.min_available_version.max(1);
        for n in first..=p.latest_version {
            let v = self.version(s, n).await?;
            let created = tresor_sdk::clock::parse_rfc3339(&v.created).unwrap_or(0);
            if t.asymmetric() {
                let mut e = Map::new();
                e.insert("creation_time".into(), json!(v.created));
                e.insert("name".into(), json!(t.public_name()));
                // Vault's field for a version's imported certificate chain (none here).
                e.insert("certificate_chain".into(), json!(""));
                e.insert(
                    "public_key".into(),
                    json!(v.public_key().unwrap_or_default()),
                );
                keys.insert(n.to_string(), Value::Object(e));
            } else {
                keys.insert(n.to_string(), json!(created));
            }
        }
        let mut d = Map::new();
        d.insert("name".into(), json!(p.name));
        d.insert("type".into(), json!(t.name()));
        d.insert("keys".into(), Value::Object(keys));
        d.insert("deletion_allowed".into(), json!(p.deletion_allowed));
        d.insert("derived".into(), json!(p.derived));
        d.insert("exportable".into(), json!(p.exportable));
        d.insert(
            "allow_plaintext_backup".into(),
            json!(p.allow_plaintext_backup),
        );
        d.insert(
            "min_decryption_version".into(),
            json!(p.min_decryption_version),
        );
        d.insert(
            "min_encryption_version".into(),
            json!(p.min_encryption_version),
        );
        d.insert(
            "min_available_version".into(),
            json!(p.min_available_version),
        );
        d.insert("latest_version".into(), json!(p.latest_version));
        d.insert("auto_rotate_period".into(), json!(p.auto_rotate_period));
        d.insert("imported_key".into(), json!(p.imported));
        if p.imported {
            d.insert(
                "imported_key_allow_rotation".into(),
                json!(p.allow_rotation),
            );
        }
        d.insert("supports_encryption".into(), json!(t.supports_encryption()));
        d.insert("supports_decryption".into(), json!(t.supports_encryption()));
        d.insert("supports_derivation".into(), json!(t.supports_derivation()));
        d.insert("supports_signing".into(), json!(t.supports_signing()));
        if p.derived {
            d.insert("kdf".into(), json!(KDF));
            d.insert(
                "convergent_encryption".into(),
                json!(p.convergent_encryption),
            );
            if p.convergent_encryption {
                d.insert(
                    "convergent_encryption_version".into(),
                    json!(key::CONVERGENT_VERSION),
                );
            }
        }
        if t == KeyType::Hmac {
            d.insert("key_size".into(), json!(p.key_size));
        }
        if let Some(b) = &p.backup_info {
            d.insert("backup_info".into(), b.clone());
        }
        if let Some(r) = &p.restore_info {
            d.insert("restore_info".into(), r.clone());
        }
        Ok(d)
    }
}

/// What a new key is made of.
#[derive(Debug, Clone)]
pub(crate) struct NewKey {
    pub kind: KeyType,
    pub derived: bool,
    pub convergent: bool,
    pub exportable: bool,
    pub allow_plaintext_backup: bool,
    pub auto_rotate_period: u64,
    pub key_size: usize,
}

impl NewKey {
    pub(crate) fn check(&self) -> Result<()> {
        if self.convergent && !self.derived {
            return Err(bad(
                "convergent encryption requires derivation to be enabled",
            ));
        }
        if self.convergent && !self.kind.is_aead() {
            return Err(bad(format!(
                "convergent encryption is not supported for keys of type {}",
                self.kind.name()
            )));
        }
        if self.derived && !self.kind.supports_derivation() {
            return Err(bad(format!(
                "key derivation is not supported for keys of type {}",
                self.kind.name()
            )));
        }
        if self.kind == KeyType::Hmac && !(32..=512).contains(&self.key_size) {
            return Err(bad("invalid key_size: must be between 32 and 512 bytes"));
        }
        check_rotate_period(self.auto_rotate_period)
    }
}

pub(crate) fn check_rotate_period(secs: u64) -> Result<()> {
    if secs != 0 && secs < 3600 {
        return Err(bad(
            "auto rotate period must be 0 to disable or at least an hour",
        ));
    }
    Ok(())
}

pub(crate) struct Engine {
    clock: Arc<dyn Clock>,
    /// Loaded keys by (mount, name).
    keys: RwLock<HashMap<(String, String), Arc<Key>>>,
    /// The cache size of each mount (0: unbounded).
    cache_size: RwLock<HashMap<String, usize>>,
    locks: Vec<tokio::sync::Mutex<()>>,
}

impl Engine {
    pub(crate) fn new(clock: Arc<dyn Clock>) -> Self {
        Engine {
            clock,
            keys: Default::default(),
            cache_size: Default::default(),
            locks: (0..LOCK_STRIPES)
                .map(|_| tokio::sync::Mutex::new(()))
                .collect(),
        }
    }

    pub(crate) fn now(&self) -> i64 {
        tresor_sdk::clock::unix(self.clock.now())
    }

    /// Serialises this server's writers of one key.
    pub(crate) async fn lock(&self, mount: &str, name: &str) -> tokio::sync::MutexGuard<'_, ()> {
        let mut h = DefaultHasher::new();
        mount.hash(&mut h);
        name.hash(&mut h);
        let stripe = usize::try_from(h.finish() % LOCK_STRIPES as u64).unwrap_or(0);
        self.locks[stripe].lock().await
    }

    /// The key, from the cache or storage; `None` if there is none.
    pub(crate) async fn key(
        &self,
        mount: &str,
        s: &dyn Storage,
        name: &str,
    ) -> Result<Option<Arc<Key>>> {
        let id = (mount.to_owned(), name.to_owned());
        if let Some(k) = self.keys.read().get(&id) {
            return Ok(Some(k.clone()));
        }
        let Some(policy) = get_json::<PolicyRecord>(s, &policy_key(name)).await? else {
            return Ok(None);
        };
        let k = Arc::new(Key::new(policy)?);
        let limit = self.cache_size.read().get(mount).copied().unwrap_or(0);
        let mut keys = self.keys.write();
        if limit > 0 && keys.len() >= limit {
            // Make room: forget one key of this mount (any; it reloads on its next use).
            if let Some(victim) = keys.keys().find(|(m, _)| m == mount).cloned() {
                keys.remove(&victim);
            }
        }
        keys.insert(id, k.clone());
        Ok(Some(k))
    }

    /// The key, or Vault's error for a missing one.
    pub(crate) async fn existing(
        &self,
        mount: &str,
        s: &dyn Storage,
        name: &str,
        missing: &str,
    ) -> Result<Arc<Key>> {
        self.key(mount, s, name)
            .await?
            .ok_or_else(|| bad(missing.to_owned()))
    }

    /// The policy as stored now (bypassing the cache), for writers holding the lock.
    pub(crate) async fn stored_policy(
        &self,
        s: &dyn Storage,
        name: &str,
    ) -> Result<Option<PolicyRecord>> {
        get_json(s, &policy_key(name)).await
    }

    pub(crate) fn forget(&self, mount: &str, name: &str) {
        self.keys
            .write()
            .remove(&(mount.to_owned(), name.to_owned()));
    }

    pub(crate) fn forget_mount(&self, mount: &str) {
        self.keys.write().retain(|(m, _), _| m != mount);
    }

    pub(crate) fn forget_all(&self) {
        self.keys.write().clear();
        self.cache_size.write().clear();
    }

    pub(crate) fn set_cache_size(&self, mount: &str, size: usize) {
        self.cache_size.write().insert(mount.to_owned(), size);
    }

    /// Writes a policy (and new versions' records) in one commit, then drops the cached key.
    pub(crate) async fn save(
        &self,
        mount: &str,
        s: &dyn Storage,
        p: &PolicyRecord,
        versions: Vec<(u32, VersionRecord)>,
    ) -> Result<()> {
        let mut ops = Vec::with_capacity(versions.len() + 1);
        for (n, rec) in versions {
            ops.push((
                version_key(&p.name, n),
                Some(serde_json::to_vec(&rec).map_err(internal)?),
            ));
        }
        ops.push((
            policy_key(&p.name),
            Some(serde_json::to_vec(p).map_err(internal)?),
        ));
        s.transaction(ops).await?;
        self.forget(mount, &p.name);
        Ok(())
    }

    /// Makes new key material off the async workers (RSA generation takes a while).
    pub(crate) async fn generate(&self, t: KeyType, size: usize) -> Result<Zeroizing<Vec<u8>>> {
        if t.is_rsa() {
            tokio::task::spawn_blocking(move || key::generate(t, size))
                .await
                .map_err(internal)?
        } else {
            key::generate(t, size)
        }
    }

    /// Creates a key with its first version. The caller holds the key's lock and has
    /// checked that it does not exist.
    pub(crate) async fn create(
        &self,
        mount: &str,
        s: &dyn Storage,
        name: &str,
        n: &NewKey,
    ) -> Result<Arc<Key>> {
        n.check()?;
        let material = self.generate(n.kind, n.key_size).await?;
        let now = self.now();
        let p = PolicyRecord {
            name: name.to_owned(),
            key_type: n.kind.name().to_owned(),
            derived: n.derived,
            convergent_encryption: n.convergent,
            exportable: n.exportable,
            allow_plaintext_backup: n.allow_plaintext_backup,
            deletion_allowed: false,
            latest_version: 1,
            min_decryption_version: 1,
            min_encryption_version: 0,
            min_available_version: 0,
            auto_rotate_period: n.auto_rotate_period,
            last_rotated: now,
            imported: false,
            allow_rotation: true,
            key_size: if n.kind == KeyType::Hmac {
                n.key_size
            } else {
                0
            },
            backup_info: None,
            restore_info: None,
        };
        let rec = Version::record(&material, tresor_sdk::clock::rfc3339(now))?;
        self.save(mount, s, &p, vec![(1, rec)]).await?;
        self.existing(mount, s, name, "key not found").await
    }

    /// Adds a version with fresh material. The caller holds the key's lock.
    pub(crate) async fn rotate(
        &self,
        mount: &str,
        s: &dyn Storage,
        mut p: PolicyRecord,
        material: Option<Zeroizing<Vec<u8>>>,
    ) -> Result<()> {
        let t = p.kind()?;
        let material = match material {
            Some(m) => m,
            None => {
                if p.imported && !p.allow_rotation {
                    return Err(bad("imported key does not allow rotation within Vault"));
                }
                self.generate(t, p.key_size.max(32)).await?
            }
        };
        let now = self.now();
        p.latest_version += 1;
        p.last_rotated = now;
        let rec = Version::record(&material, tresor_sdk::clock::rfc3339(now))?;
        let n = p.latest_version;
        self.save(mount, s, &p, vec![(n, rec)]).await
    }
}

/// Names the mount a request belongs to (its accessor, else its path).
pub(crate) fn mount_id(req: &Request) -> String {
    mount_of(&req.mount)
}

pub(crate) fn mount_of(m: &MountView) -> String {
    if m.mount_accessor.is_empty() {
        m.mount_point.clone()
    } else {
        m.mount_accessor.clone()
    }
}

/// Checks a key name from the URL.
pub(crate) fn check_name(name: &str) -> Result<()> {
    if name.is_empty() || name.len() > 1024 || name.chars().any(|c| c.is_control()) {
        return Err(bad("invalid key name"));
    }
    Ok(())
}
