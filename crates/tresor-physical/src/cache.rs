//! A read cache in front of a remote store (etcd): Vault's physical cache (`disable_cache`,
//! `cache_size`). `get` answers from memory when it can; every write through this backend
//! drops the keys it touched, and so does [`Backend::invalidate_cache`] for changes made by
//! other servers (a HA standby applies the change feed through it). A read that raced a write
//! or an invalidation is not kept: each shard counts its invalidations, and a value read from
//! the store is cached only if the count did not move while it was being read.
//!
//! Only `get` is cached. Listings, revisions, conditional reads, snapshots and the feed go to
//! the store every time.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use parking_lot::Mutex;

use crate::{Backend, Check, Event, EventKind, LeaderLock, Op, Result, Snapshot, Watcher};

const SHARDS: usize = 16;

/// Vault's default `cache_size` (entries).
pub const DEFAULT_CACHE_SIZE: usize = 131_072;

#[derive(Default)]
struct Shard {
    map: HashMap<String, Option<Arc<[u8]>>>,
    /// Bumped by every write or invalidation that touches this shard.
    epoch: u64,
}

/// See the module docs.
pub struct CachedBackend {
    inner: Arc<dyn Backend>,
    shards: Vec<Mutex<Shard>>,
    per_shard: usize,
    hasher: RandomState,
    /// Off (reads pass through, nothing kept) until [`Backend::set_cache_enabled`].
    enabled: AtomicBool,
}

impl CachedBackend {
    /// Caches up to `entries` values (absent keys included) of `inner`.
    pub fn new(inner: Arc<dyn Backend>, entries: usize) -> Self {
        Self {
            inner,
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            per_shard: entries.div_ceil(SHARDS).max(1),
            hasher: RandomState::new(),
            enabled: AtomicBool::new(false),
        }
    }

    fn shard(&self, key: &str) -> &Mutex<Shard> {
        &self.shards[(self.hasher.hash_one(key) as usize) % SHARDS]
    }

    fn forget(&self, key: &str) {
        let mut s = self.shard(key).lock();
        s.map.remove(key);
        s.epoch += 1;
    }

    fn forget_prefix(&self, prefix: &str) {
        for shard in &self.shards {
            let mut s = shard.lock();
            s.map.retain(|k, _| !k.starts_with(prefix));
            s.epoch += 1;
        }
    }

    fn forget_ops(&self, ops: &[Op]) {
        for op in ops {
            match op {
                Op::Put(k, _) | Op::Delete(k) => self.forget(k),
            }
        }
    }

    /// How many values are cached now (tests and metrics).
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().map.len()).sum()
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[async_trait]
impl Backend for CachedBackend {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        if !self.enabled.load(Ordering::Acquire) {
            return self.inner.get(key).await;
        }
        let shard = self.shard(key);
        let epoch = {
            let s = shard.lock();
            if let Some(v) = s.map.get(key) {
                return Ok(v.as_deref().map(<[u8]>::to_vec));
            }
            s.epoch
        };
        let v = self.inner.get(key).await?;
        let mut s = shard.lock();
        if s.epoch == epoch && self.enabled.load(Ordering::Acquire) {
            if s.map.len() >= self.per_shard
                && let Some(victim) = s.map.keys().next().cloned()
            {
                s.map.remove(&victim);
            }
            s.map.insert(key.to_owned(), v.as_deref().map(Arc::from));
        }
        Ok(v)
    }
    async fn transaction(&self, ops: Vec<Op>) -> Result<()> {
        self.forget_ops(&ops);
        let keys = ops.clone();
        let r = self.inner.transaction(ops).await;
        self.forget_ops(&keys);
        r
    }
    async fn list(&self, prefix: &str) -> Result<Vec<String>> {
        self.inner.list(prefix).await
    }
    fn kind(&self) -> &'static str {
        self.inner.kind()
    }
    fn durable(&self) -> bool {
        self.inner.durable()
    }
    async fn get_with_revision(&self, key: &str) -> Result<Option<(Vec<u8>, u64)>> {
        self.inner.get_with_revision(key).await
    }
    async fn revision(&self) -> Result<u64> {
        self.inner.revision().await
    }
    async fn transaction_if(&self, checks: Vec<Check>, ops: Vec<Op>) -> Result<u64> {
        self.forget_ops(&ops);
        let keys = ops.clone();
        let r = self.inner.transaction_if(checks, ops).await;
        self.forget_ops(&keys);
        r
    }
    async fn watch(&self, prefix: &str, from_revision: u64) -> Result<Watcher> {
        self.inner.watch(prefix, from_revision).await
    }
    async fn delete_prefix(&self, prefix: &str) -> Result<u64> {
        self.forget_prefix(prefix);
        let r = self.inner.delete_prefix(prefix).await;
        self.forget_prefix(prefix);
        r
    }
    async fn list_page(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<String>, Option<String>)> {
        self.inner.list_page(prefix, after, limit).await
    }
    async fn snapshot(&self) -> Result<Box<dyn Snapshot>> {
        self.inner.snapshot().await
    }
    fn leader_lock(&self) -> Option<Arc<dyn LeaderLock>> {
        self.inner.leader_lock()
    }
    fn invalidate_cache(&self, event: &Event) {
        match event.kind {
            EventKind::Put | EventKind::Delete => self.forget(&event.key),
            EventKind::DeletePrefix => self.forget_prefix(&event.key),
        }
        self.inner.invalidate_cache(event);
    }
    fn clear_cache(&self) {
        for shard in &self.shards {
            let mut s = shard.lock();
            s.map.clear();
            s.epoch += 1;
        }
        self.inner.clear_cache();
    }
    fn set_cache_enabled(&self, on: bool) {
        self.enabled.store(on, Ordering::Release);
        if !on {
            self.clear_cache();
        }
        self.inner.set_cache_enabled(on);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::InmemBackend;

    #[tokio::test]
    async fn reads_are_cached_and_writes_and_events_drop_them() {
        let store: Arc<dyn Backend> = Arc::new(InmemBackend::new());
        let c = CachedBackend::new(store.clone(), 1000);
        // Off until enabled (a sealed server): every read goes to the store.
        c.get("a").await.unwrap();
        assert!(c.is_empty());
        c.set_cache_enabled(true);
        c.put("a", b"1".to_vec()).await.unwrap();
        assert_eq!(c.get("a").await.unwrap().as_deref(), Some(&b"1"[..]));
        assert_eq!(c.get("missing").await.unwrap(), None);
        assert_eq!(c.len(), 2, "the value and the absence are cached");
        // Another server writes behind the cache's back: the cache still answers the old value
        // until the change reaches it.
        store.put("a", b"2".to_vec()).await.unwrap();
        store.put("missing", b"now".to_vec()).await.unwrap();
        assert_eq!(c.get("a").await.unwrap().as_deref(), Some(&b"1"[..]));
        let ev = |key: &str, kind| Event {
            key: key.into(),
            revision: 0,
            kind,
        };
        c.invalidate_cache(&ev("a", EventKind::Put));
        c.invalidate_cache(&ev("missing", EventKind::Put));
        assert_eq!(c.get("a").await.unwrap().as_deref(), Some(&b"2"[..]));
        assert_eq!(
            c.get("missing").await.unwrap().as_deref(),
            Some(&b"now"[..])
        );
        // Its own writes: never stale.
        c.put("a", b"3".to_vec()).await.unwrap();
        assert_eq!(c.get("a").await.unwrap().as_deref(), Some(&b"3"[..]));
        c.delete("a").await.unwrap();
        assert_eq!(c.get("a").await.unwrap(), None);
        c.transaction_if(
            vec![Check::new("b", 0)],
            vec![Op::Put("b".into(), b"x".to_vec())],
        )
        .await
        .unwrap();
        assert_eq!(c.get("b").await.unwrap().as_deref(), Some(&b"x"[..]));
        // A prefix delete, by this backend or reported by the feed.
        c.put("p/1", b"1".to_vec()).await.unwrap();
        c.get("p/1").await.unwrap();
        c.delete_prefix("p/").await.unwrap();
        assert_eq!(c.get("p/1").await.unwrap(), None);
        store.put("p/2", b"2".to_vec()).await.unwrap();
        c.get("p/2").await.unwrap();
        store.delete_prefix("p/").await.unwrap();
        c.invalidate_cache(&ev("p/", EventKind::DeletePrefix));
        assert_eq!(c.get("p/2").await.unwrap(), None);
        c.clear_cache();
        assert!(c.is_empty());
        c.get("b").await.unwrap();
        c.set_cache_enabled(false);
        assert!(c.is_empty(), "turning it off empties it");
    }

    #[tokio::test]
    async fn the_size_is_bounded() {
        let c = CachedBackend::new(Arc::new(InmemBackend::new()), 32);
        c.set_cache_enabled(true);
        for i in 0..1000 {
            c.get(&format!("k{i}")).await.unwrap();
        }
        assert!(c.len() <= 32, "{}", c.len());
    }

    /// A value read while a write of the same key commits is not kept (the write's
    /// invalidation moved the shard's count), so the cache never holds what the write replaced.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn reads_racing_writes_never_leave_a_stale_value() {
        let c = Arc::new(CachedBackend::new(Arc::new(InmemBackend::new()), 1000));
        c.set_cache_enabled(true);
        for round in 0..200u32 {
            let readers: Vec<_> = (0..4)
                .map(|_| {
                    let c = c.clone();
                    tokio::spawn(async move {
                        for _ in 0..5 {
                            c.get("k").await.unwrap();
                        }
                    })
                })
                .collect();
            c.put("k", round.to_be_bytes().to_vec()).await.unwrap();
            for r in readers {
                r.await.unwrap();
            }
            assert_eq!(
                c.get("k").await.unwrap().as_deref(),
                Some(&round.to_be_bytes()[..]),
                "round {round}: the cache kept a value older than the last write"
            );
        }
    }
}
