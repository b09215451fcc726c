//! What the engine targets share: an in-memory storage view, one tokio runtime, and a harness
//! that drives an engine through its public `LogicalBackend` (the same entry the core uses),
//! each input on a fresh copy of storage that a setup step filled once.

use std::collections::BTreeMap;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use async_trait::async_trait;
use parking_lot::Mutex;
use serde_json::{Map, Value};
use tresor_sdk::{Caller, LogicalBackend, MountView, Operation, Request, Response, Storage};

/// One runtime for every input: current-thread, with the blocking pool the engines use.
pub static RT: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
});

/// An engine's storage view in memory, with revisions for conditional writes.
#[derive(Default)]
pub struct MemStorage {
    pub map: Mutex<BTreeMap<String, (Vec<u8>, u64)>>,
    rev: Mutex<u64>,
}

impl MemStorage {
    pub fn from_snapshot(map: BTreeMap<String, (Vec<u8>, u64)>) -> Self {
        let rev = map.values().map(|(_, r)| *r).max().unwrap_or(0);
        MemStorage {
            map: Mutex::new(map),
            rev: Mutex::new(rev),
        }
    }
    fn next(&self) -> u64 {
        let mut r = self.rev.lock();
        *r += 1;
        *r
    }
}

#[async_trait]
impl Storage for MemStorage {
    async fn get(&self, key: &str) -> tresor_sdk::Result<Option<Vec<u8>>> {
        Ok(self.map.lock().get(key).map(|(v, _)| v.clone()))
    }
    async fn put(&self, key: &str, value: Vec<u8>) -> tresor_sdk::Result<()> {
        let r = self.next();
        self.map.lock().insert(key.to_owned(), (value, r));
        Ok(())
    }
    async fn delete(&self, key: &str) -> tresor_sdk::Result<()> {
        self.map.lock().remove(key);
        Ok(())
    }
    async fn list(&self, prefix: &str) -> tresor_sdk::Result<Vec<String>> {
        let map = self.map.lock();
        let mut out = std::collections::BTreeSet::new();
        for (k, _) in map.range(prefix.to_owned()..) {
            let Some(rest) = k.strip_prefix(prefix) else {
                break;
            };
            out.insert(match rest.find('/') {
                Some(i) => rest[..=i].to_owned(),
                None => rest.to_owned(),
            });
        }
        Ok(out.into_iter().collect())
    }
    async fn get_with_revision(&self, key: &str) -> tresor_sdk::Result<Option<(Vec<u8>, u64)>> {
        Ok(self.map.lock().get(key).cloned())
    }
    async fn transaction_if(
        &self,
        checks: Vec<(String, u64)>,
        ops: Vec<(String, Option<Vec<u8>>)>,
    ) -> tresor_sdk::Result<bool> {
        let r = self.next();
        let mut map = self.map.lock();
        for (k, want) in &checks {
            let have = map.get(k).map(|(_, r)| *r).unwrap_or(0);
            if have != *want {
                return Ok(false);
            }
        }
        for (k, v) in ops {
            match v {
                Some(v) => {
                    map.insert(k, (v, r));
                }
                None => {
                    map.remove(&k);
                }
            }
        }
        Ok(true)
    }
}

/// A mount of one engine: `setup` requests run once; each fuzz input then runs on a fresh
/// engine over a copy of the storage they left.
pub struct Engine {
    make: fn() -> Arc<dyn LogicalBackend>,
    base: BTreeMap<String, (Vec<u8>, u64)>,
    /// One engine for every input, for engines that are costly to build and keep no state
    /// between requests beyond storage (cert auth builds an HTTP client).
    shared: Option<Arc<dyn LogicalBackend>>,
}

fn mount() -> Arc<MountView> {
    Arc::new(MountView {
        mount_point: "fuzz/".into(),
        mount_type: "fuzz".into(),
        mount_accessor: "fuzz_accessor".into(),
        default_lease_ttl: Duration::from_secs(768 * 3600),
        max_lease_ttl: Duration::from_secs(768 * 3600),
        options: BTreeMap::new(),
        system: None,
    })
}

fn root_caller() -> Caller {
    Caller {
        token_id: Some("fuzz-token-id".into()),
        token_accessor: Some("fuzz-accessor".into()),
        sudo: true,
        is_root: true,
        display_name: "root".into(),
        policies: vec!["root".into()],
        ..Default::default()
    }
}

/// Builds one request as the core would hand it to the engine.
pub fn request(
    storage: Arc<dyn Storage>,
    op: Operation,
    path: &str,
    data: Map<String, Value>,
    raw_body: Option<Arc<[u8]>>,
) -> Request {
    Request {
        operation: op,
        path: path.to_owned(),
        data,
        storage,
        mount: mount(),
        caller: root_caller(),
        secret: None,
        connection: Default::default(),
        headers: Vec::new(),
        raw_body,
        deadline: None,
    }
}

/// `{"k": v, ...}` from pairs.
pub fn obj(pairs: &[(&str, Value)]) -> Map<String, Value> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect()
}

impl Engine {
    /// Mounts the engine and runs the setup writes, each of which must succeed.
    pub fn new(
        make: fn() -> Arc<dyn LogicalBackend>,
        setup: &[(&str, Map<String, Value>)],
    ) -> Self {
        let ops: Vec<_> = setup
            .iter()
            .map(|(p, d)| (Operation::Update, *p, d.clone()))
            .collect();
        Self::with_ops(make, &ops)
    }

    /// Like [`Engine::new`], with each setup request's operation given.
    pub fn with_ops(
        make: fn() -> Arc<dyn LogicalBackend>,
        setup: &[(Operation, &str, Map<String, Value>)],
    ) -> Self {
        let storage = Arc::new(MemStorage::default());
        let backend = make();
        RT.block_on(async {
            for (op, path, data) in setup {
                let req = request(storage.clone(), *op, path, data.clone(), None);
                if let Err(e) = backend.handle(req).await {
                    panic!("fuzz setup {path}: {e}");
                }
            }
        });
        let base = storage.map.lock().clone();
        Engine {
            make,
            base,
            shared: None,
        }
    }

    /// Like [`Engine::new`], reusing one engine for every input (see [`Engine::shared`]).
    pub fn shared(
        make: fn() -> Arc<dyn LogicalBackend>,
        setup: &[(&str, Map<String, Value>)],
    ) -> Self {
        let mut e = Self::new(make, setup);
        e.shared = Some(make());
        e
    }

    /// A fresh engine over a fresh copy of the set-up storage, for an input that makes several
    /// requests which must see each other's writes.
    pub fn session(&self) -> Session {
        Session {
            storage: Arc::new(MemStorage::from_snapshot(self.base.clone())),
            backend: match &self.shared {
                Some(b) => b.clone(),
                None => (self.make)(),
            },
        }
    }

    /// Runs one request on a fresh engine and a fresh copy of the set-up storage.
    pub fn call(
        &self,
        op: Operation,
        path: &str,
        data: Map<String, Value>,
        raw_body: Option<Arc<[u8]>>,
    ) -> tresor_sdk::Result<Option<Response>> {
        let storage = Arc::new(MemStorage::from_snapshot(self.base.clone()));
        let backend = match &self.shared {
            Some(b) => b.clone(),
            None => (self.make)(),
        };
        RT.block_on(async move {
            let req = request(storage, op, path, data, raw_body);
            backend.handle(req).await
        })
    }
}

/// One engine and one storage copy: requests made through it see each other's writes.
pub struct Session {
    storage: Arc<MemStorage>,
    backend: Arc<dyn LogicalBackend>,
}

impl Session {
    /// Runs one request.
    pub fn call(
        &self,
        op: Operation,
        path: &str,
        data: Map<String, Value>,
    ) -> tresor_sdk::Result<Option<Response>> {
        let req = request(self.storage.clone(), op, path, data, None);
        let backend = self.backend.clone();
        RT.block_on(async move { backend.handle(req).await })
    }
}
