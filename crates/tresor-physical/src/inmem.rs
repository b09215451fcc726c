//! The in-memory backend: a sorted map behind a lock. Used by `-dev` and by tests; not durable.

use std::collections::BTreeMap;

use async_trait::async_trait;
use parking_lot::RwLock;

use crate::{Backend, Op, Result, check_key, children};

/// A sorted in-memory map. Nothing survives the process.
#[derive(Default)]
pub struct InmemBackend {
    map: RwLock<BTreeMap<String, Vec<u8>>>,
}

impl InmemBackend {
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl Backend for InmemBackend {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        check_key(key)?;
        Ok(self.map.read().get(key).cloned())
    }

    async fn transaction(&self, ops: Vec<Op>) -> Result<()> {
        for op in &ops {
            match op {
                Op::Put(k, _) | Op::Delete(k) => check_key(k)?,
            }
        }
        let mut map = self.map.write();
        for op in ops {
            match op {
                Op::Put(k, v) => {
                    map.insert(k, v);
                }
                Op::Delete(k) => {
                    map.remove(&k);
                }
            }
        }
        Ok(())
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>> {
        let map = self.map.read();
        let keys = map
            .range::<str, _>((
                std::ops::Bound::Included(prefix),
                std::ops::Bound::Unbounded,
            ))
            .map(|(k, _)| k.as_str())
            .take_while(|k| k.starts_with(prefix));
        Ok(children(prefix, keys))
    }

    fn kind(&self) -> &'static str {
        "inmem"
    }

    fn durable(&self) -> bool {
        false
    }
}
