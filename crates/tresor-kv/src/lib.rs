//! Vault's KV secrets engine, versions 1 and 2, as one [`LogicalBackend`].
//!
//! The mount option `version` picks the behaviour on every request: `"2"` serves the versioned
//! API ([`v2`]: `config`, `data/`, `delete/`, `undelete/`, `destroy/`, `metadata/`, `subkeys/`),
//! anything else (absent, `""`, `"1"`) the unversioned one ([`v1`]). Tuning a mount from 1 to 2
//! therefore switches behaviour at once; the first version 2 request on a mount upgrades its
//! version 1 data in place (each key becomes version 1 of a versioned secret, the old entry is
//! removed) and then writes an `upgraded` marker so the upgrade runs once. Requests wait while
//! the upgrade runs. Going back from 2 to 1 is not supported (Vault refuses it too): version 1
//! would simply not see the versioned data.
//!
//! The storage layout is described in [`store`]. All times come from an injected [`Clock`], so
//! tests move time forward instead of sleeping.
//!
//! What an engine cannot express and the HTTP layer must do: a version 2 read of a deleted or
//! destroyed version answers data `{"data": null, "metadata": {...}}` (for `subkeys/`,
//! `{"subkeys": null, ...}`), which Vault sends with status 404.

#![forbid(unsafe_code)]

mod clock;
mod inputs;
mod json;
mod store;
mod v1;
mod v2;

use std::collections::HashSet;
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use async_trait::async_trait;
use serde_json::{Map, Value};
use tresor_sdk::framework::Table;
use tresor_sdk::{LogicalBackend, LogicalError, Operation, Request, Response, Result, Storage};

pub use clock::{Clock, SystemClock};

use store::{SecretMeta, VersionMeta};

/// The KV engine on the system clock.
pub fn backend() -> Arc<dyn LogicalBackend> {
    backend_with_clock(Arc::new(SystemClock))
}

/// The KV engine reading time from `clock` (tests pass a clock they control).
pub fn backend_with_clock(clock: Arc<dyn Clock>) -> Arc<dyn LogicalBackend> {
    Arc::new(Kv {
        engine: Arc::new(Engine::new(clock)),
        v1: v1::table(),
        v2: v2::table(),
    })
}

/// Which API a request is served by, from the mount's `version` option.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KvVersion {
    V1,
    V2,
}

impl KvVersion {
    fn of(req: &Request) -> Result<Self> {
        match req.mount.options.get("version").map(|v| v.trim()) {
            None | Some("") | Some("1") => Ok(KvVersion::V1),
            Some("2") => Ok(KvVersion::V2),
            Some(other) => Err(LogicalError::invalid(format!(
                "unsupported kv version {other:?}: expected \"1\" or \"2\""
            ))),
        }
    }
}

/// Writes to one secret are serialised through one of these many locks (chosen by hashing the
/// mount and the secret's path), which makes check-and-set atomic without a lock per secret.
const LOCK_STRIPES: usize = 64;

/// The state every handler shares.
pub(crate) struct Engine {
    clock: Arc<dyn Clock>,
    locks: Vec<tokio::sync::Mutex<()>>,
    /// Mount accessors known to be upgraded, so the marker is read once per mount.
    upgraded: parking_lot::RwLock<HashSet<String>>,
    upgrade_lock: tokio::sync::Mutex<()>,
    /// KV v2 writes waiting to be combined into one commit, by (mount accessor, path).
    queued: parking_lot::Mutex<std::collections::HashMap<(String, String), Vec<v2::PendingWrite>>>,
}

impl Engine {
    fn new(clock: Arc<dyn Clock>) -> Self {
        Engine {
            clock,
            locks: (0..LOCK_STRIPES)
                .map(|_| tokio::sync::Mutex::new(()))
                .collect(),
            upgraded: parking_lot::RwLock::new(HashSet::new()),
            upgrade_lock: tokio::sync::Mutex::new(()),
            queued: parking_lot::Mutex::new(std::collections::HashMap::new()),
        }
    }

    pub(crate) fn now_ns(&self) -> u64 {
        clock::to_nanos(self.clock.now())
    }

    /// Serialises writers of `key` within the request's mount.
    pub(crate) async fn lock(&self, req: &Request, key: &str) -> tokio::sync::MutexGuard<'_, ()> {
        self.lock_key(&req.mount.mount_accessor, key).await
    }

    /// Serialises writers of `key` within the mount with `accessor`.
    pub(crate) async fn lock_key(
        &self,
        accessor: &str,
        key: &str,
    ) -> tokio::sync::MutexGuard<'_, ()> {
        let mut h = DefaultHasher::new();
        accessor.hash(&mut h);
        key.hash(&mut h);
        let stripe = usize::try_from(h.finish() % LOCK_STRIPES as u64).unwrap_or(0);
        self.locks[stripe].lock().await
    }

    /// Queues a write of `key`; true when the queue was empty, so the caller starts a batch.
    pub(crate) fn queue_write(&self, req: &Request, key: &str, w: v2::PendingWrite) -> bool {
        let mut q = self.queued.lock();
        let list = q
            .entry((req.mount.mount_accessor.clone(), key.to_owned()))
            .or_default();
        list.push(w);
        list.len() == 1
    }

    /// Takes every write queued for `key`, in arrival order.
    pub(crate) fn take_writes(&self, accessor: &str, key: &str) -> Vec<v2::PendingWrite> {
        self.queued
            .lock()
            .remove(&(accessor.to_owned(), key.to_owned()))
            .unwrap_or_default()
    }

    /// Runs the v1 → v2 upgrade of the request's mount unless it is known to be done.
    async fn ensure_upgraded(&self, req: &Request) -> Result<()> {
        let accessor = &req.mount.mount_accessor;
        let known = |this: &Self| !accessor.is_empty() && this.upgraded.read().contains(accessor);
        if known(self) {
            return Ok(());
        }
        let _guard = self.upgrade_lock.lock().await;
        if known(self) {
            return Ok(());
        }
        let s = &*req.storage;
        if store::load_marker(s).await?.is_none() {
            let now = self.now_ns();
            let migrated = upgrade_v1(s, now).await?;
            store::save_marker(s, &store::UpgradeMarker::new(now, migrated)).await?;
        }
        if !accessor.is_empty() {
            self.upgraded.write().insert(accessor.clone());
        }
        Ok(())
    }
}

/// Turns every v1 entry into version 1 of a v2 secret and removes the v1 entry. Safe to run
/// again after a crash: an entry whose secret already exists is only removed.
async fn upgrade_v1(s: &dyn Storage, now: u64) -> Result<u64> {
    let mut migrated = 0;
    let mut folders = vec![String::new()];
    while let Some(folder) = folders.pop() {
        for child in s.list(&format!("{}{folder}", store::V1_PREFIX)).await? {
            let path = format!("{folder}{child}");
            if child.ends_with('/') {
                folders.push(path);
                continue;
            }
            let already_upgraded = store::load_meta(s, &path).await?.is_some();
            if !already_upgraded && let Some(data) = store::load_v1(s, &path).await? {
                let mut meta = SecretMeta::new(now);
                meta.current_version = 1;
                meta.versions.insert(
                    1,
                    VersionMeta {
                        created_ns: now,
                        deletion_ns: None,
                        destroyed: false,
                    },
                );
                store::save_version(s, &path, 1, data).await?;
                store::save_meta(s, &path, &meta).await?;
                migrated += 1;
            }
            s.delete(&format!("{}{path}", store::V1_PREFIX)).await?;
        }
    }
    Ok(migrated)
}

/// The engine as the core sees it: one table per API version over shared state.
struct Kv {
    engine: Arc<Engine>,
    v1: Table<Engine>,
    v2: Table<Engine>,
}

impl Kv {
    fn table(&self, v: KvVersion) -> &Table<Engine> {
        match v {
            KvVersion::V1 => &self.v1,
            KvVersion::V2 => &self.v2,
        }
    }
}

#[async_trait]
impl LogicalBackend for Kv {
    async fn handle(&self, req: Request) -> Result<Option<Response>> {
        let version = KvVersion::of(&req)?;
        if req.operation == Operation::Help {
            let help = self
                .table(version)
                .help(&req.path)
                .ok_or(LogicalError::UnsupportedPath)?;
            return Ok(Some(Response::data(help)));
        }
        match version {
            KvVersion::V1 => self.v1.handle(self.engine.clone(), req).await,
            KvVersion::V2 => {
                self.engine.ensure_upgraded(&req).await?;
                self.v2.handle(self.engine.clone(), req).await
            }
        }
    }

    async fn exists(&self, req: &Request) -> Result<Option<bool>> {
        match KvVersion::of(req)? {
            KvVersion::V1 => self.v1.exists(self.engine.clone(), req).await,
            KvVersion::V2 => {
                self.engine.ensure_upgraded(req).await?;
                self.v2.exists(self.engine.clone(), req).await
            }
        }
    }

    /// Without a request the version is unknown: version 2 paths are answered from the
    /// version 2 table, anything else from version 1's.
    fn help(&self, path: &str) -> Option<Map<String, Value>> {
        self.v2.help(path).or_else(|| self.v1.help(path))
    }

    /// The version 2 document (the version `kv-v2` mounts and dev servers use).
    fn openapi_paths(&self) -> Map<String, Value> {
        self.v2.openapi_paths()
    }
}

#[cfg(test)]
pub(crate) mod test_support {
    //! An in-memory [`Storage`] for unit tests.

    use std::collections::BTreeMap;

    use async_trait::async_trait;
    use tresor_sdk::{Result, Storage};

    #[derive(Default)]
    pub(crate) struct MemStorage(parking_lot::Mutex<BTreeMap<String, Vec<u8>>>);

    #[async_trait]
    impl Storage for MemStorage {
        async fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
            Ok(self.0.lock().get(key).cloned())
        }
        async fn put(&self, key: &str, value: Vec<u8>) -> Result<()> {
            self.0.lock().insert(key.to_owned(), value);
            Ok(())
        }
        async fn delete(&self, key: &str) -> Result<()> {
            self.0.lock().remove(key);
            Ok(())
        }
        async fn list(&self, prefix: &str) -> Result<Vec<String>> {
            let map = self.0.lock();
            let mut out: Vec<String> = Vec::new();
            for key in map.keys().filter_map(|k| k.strip_prefix(prefix)) {
                let child = match key.find('/') {
                    Some(i) => &key[..=i],
                    None => key,
                };
                if out.last().map(String::as_str) != Some(child) {
                    out.push(child.to_owned());
                }
            }
            Ok(out)
        }
    }
}
