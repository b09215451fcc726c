//! The in-memory backend: a sorted map behind a lock. Used by `-dev` and by tests; not durable.
//!
//! The map sits in an `Arc` and writes go through `Arc::make_mut`, so a [`Snapshot`] is one
//! reference count: the first write after it copies the map once, and the snapshot keeps the
//! old one. Every commit takes the write lock, applies, and publishes its events before
//! releasing it, which keeps the change feed in commit order.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::Arc;

use async_trait::async_trait;
use parking_lot::RwLock;

use crate::feed::Feed;
use crate::lock::{InProcessLock, LeaderLock};
use crate::txn::{self, Request, Store};
use crate::{
    Backend, Check, Entry, Op, Result, Snapshot, Watcher, check_key, check_limit, children, page,
    prefix_end,
};

#[derive(Clone)]
struct Stored {
    value: Vec<u8>,
    revision: u64,
}

type Map = BTreeMap<String, Stored>;

struct State {
    map: Arc<Map>,
    revision: u64,
}

/// A sorted in-memory map. Nothing survives the process.
pub struct InmemBackend {
    state: RwLock<State>,
    feed: Feed,
    lock: Arc<InProcessLock>,
}

impl Default for InmemBackend {
    fn default() -> Self {
        Self {
            state: RwLock::new(State {
                map: Arc::new(Map::new()),
                revision: 0,
            }),
            feed: Feed::new(0),
            lock: Arc::new(InProcessLock::new()),
        }
    }
}

impl InmemBackend {
    pub fn new() -> Self {
        Self::default()
    }

    fn commit(&self, req: Request) -> Result<u64> {
        let mut s = self.state.write();
        let State { map, revision } = &mut *s;
        let mut events = Vec::new();
        // Nothing here fails except a check, which writes nothing: no rollback is needed.
        let out = txn::apply(&mut MapStore(map), req, revision, &mut events)?;
        self.feed.publish(&events);
        out
    }
}

/// The keys of `map` that start with `prefix`, from `from` on.
fn prefixed<'a>(
    map: &'a Map,
    prefix: &'a str,
    from: Bound<&'a str>,
) -> impl Iterator<Item = (&'a String, &'a Stored)> + 'a {
    map.range::<str, _>((from, Bound::Unbounded))
        .take_while(move |(k, _)| k.starts_with(prefix))
}

struct MapStore<'a>(&'a mut Arc<Map>);

impl Store for MapStore<'_> {
    fn revision_of(&mut self, key: &str) -> Result<u64> {
        Ok(self.0.get(key).map_or(0, |s| s.revision))
    }

    fn put(&mut self, key: &str, value: Vec<u8>, revision: u64) -> Result<()> {
        Arc::make_mut(self.0).insert(key.to_owned(), Stored { value, revision });
        Ok(())
    }

    fn delete(&mut self, key: &str) -> Result<bool> {
        if !self.0.contains_key(key) {
            return Ok(false);
        }
        Ok(Arc::make_mut(self.0).remove(key).is_some())
    }

    fn delete_prefix(&mut self, prefix: &str) -> Result<bool> {
        if prefixed(self.0, prefix, Bound::Included(prefix))
            .next()
            .is_none()
        {
            return Ok(false);
        }
        let map = Arc::make_mut(self.0);
        // Cut [prefix, end) out of the map and put the tail back: no per-key removal.
        let mut rest = map.split_off(prefix);
        let mut tail = match prefix_end(prefix) {
            Some(end) => rest.split_off(end.as_str()),
            None => Map::new(),
        };
        map.append(&mut tail);
        Ok(!rest.is_empty())
    }
}

struct MapSnapshot {
    map: Arc<Map>,
    revision: u64,
}

impl Snapshot for MapSnapshot {
    fn revision(&self) -> u64 {
        self.revision
    }

    fn entries<'a>(&'a self, prefix: &'a str) -> Box<dyn Iterator<Item = Result<Entry>> + 'a> {
        Box::new(
            prefixed(&self.map, prefix, Bound::Included(prefix)).map(|(k, s)| {
                Ok(Entry {
                    key: k.clone(),
                    value: s.value.clone(),
                    revision: s.revision,
                })
            }),
        )
    }
}

#[async_trait]
impl Backend for InmemBackend {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        check_key(key)?;
        Ok(self.state.read().map.get(key).map(|s| s.value.clone()))
    }

    async fn transaction(&self, ops: Vec<Op>) -> Result<()> {
        self.commit(Request::new(Vec::new(), ops)?).map(|_| ())
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>> {
        let s = self.state.read();
        let keys = prefixed(&s.map, prefix, Bound::Included(prefix)).map(|(k, _)| k.as_str());
        Ok(children(prefix, keys))
    }

    fn kind(&self) -> &'static str {
        "inmem"
    }

    fn durable(&self) -> bool {
        false
    }

    async fn get_with_revision(&self, key: &str) -> Result<Option<(Vec<u8>, u64)>> {
        check_key(key)?;
        Ok(self
            .state
            .read()
            .map
            .get(key)
            .map(|s| (s.value.clone(), s.revision)))
    }

    async fn revision(&self) -> Result<u64> {
        Ok(self.state.read().revision)
    }

    async fn transaction_if(&self, checks: Vec<Check>, ops: Vec<Op>) -> Result<u64> {
        self.commit(Request::new(checks, ops)?)
    }

    async fn watch(&self, prefix: &str, from_revision: u64) -> Result<Watcher> {
        self.feed.watch(prefix, from_revision)
    }

    async fn delete_prefix(&self, prefix: &str) -> Result<u64> {
        self.commit(Request::delete_prefix(prefix)?)
    }

    async fn list_page(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<String>, Option<String>)> {
        check_limit(limit)?;
        let s = self.state.read();
        let from = match after {
            Some(a) if a >= prefix => Bound::Excluded(a),
            _ => Bound::Included(prefix),
        };
        let keys: Vec<String> = prefixed(&s.map, prefix, from)
            .take(limit + 1)
            .map(|(k, _)| k.clone())
            .collect();
        Ok(page(keys, limit))
    }

    async fn snapshot(&self) -> Result<Box<dyn Snapshot>> {
        let s = self.state.read();
        Ok(Box::new(MapSnapshot {
            map: s.map.clone(),
            revision: s.revision,
        }))
    }

    fn leader_lock(&self) -> Option<Arc<dyn LeaderLock>> {
        Some(self.lock.clone())
    }
}
