//! Test harness: an in-memory storage view, a clock the tests move, and a mount whose
//! `version` option can be tuned, driving the engine through its public `LogicalBackend`.

#![allow(dead_code)] // reason: each test binary uses a different subset of the harness

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use serde_json::{Map, Value, json};
use tresor_sdk::{
    Caller, LogicalBackend, LogicalError, MountView, Operation, Request, Response, Storage,
};

#[derive(Default)]
pub struct MemStorage {
    /// Each key's value and revision (a store-wide counter, as the real backends keep).
    map: parking_lot::Mutex<BTreeMap<String, (Vec<u8>, u64)>>,
    revision: std::sync::atomic::AtomicU64,
    pub gets: AtomicUsize,
}

impl MemStorage {
    pub fn keys(&self) -> Vec<String> {
        self.map.lock().keys().cloned().collect()
    }
    pub fn reset_gets(&self) {
        self.gets.store(0, Ordering::SeqCst);
    }
    pub fn get_count(&self) -> usize {
        self.gets.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl Storage for MemStorage {
    async fn get(&self, key: &str) -> tresor_sdk::Result<Option<Vec<u8>>> {
        self.gets.fetch_add(1, Ordering::SeqCst);
        Ok(self.map.lock().get(key).map(|(v, _)| v.clone()))
    }
    async fn put(&self, key: &str, value: Vec<u8>) -> tresor_sdk::Result<()> {
        let rev = self.revision.fetch_add(1, Ordering::SeqCst) + 1;
        self.map.lock().insert(key.to_owned(), (value, rev));
        Ok(())
    }
    async fn get_with_revision(&self, key: &str) -> tresor_sdk::Result<Option<(Vec<u8>, u64)>> {
        self.gets.fetch_add(1, Ordering::SeqCst);
        Ok(self.map.lock().get(key).cloned())
    }
    async fn transaction_if(
        &self,
        checks: Vec<(String, u64)>,
        ops: Vec<(String, Option<Vec<u8>>)>,
    ) -> tresor_sdk::Result<bool> {
        let mut map = self.map.lock();
        for (k, want) in &checks {
            if map.get(k).map_or(0, |(_, r)| *r) != *want {
                return Ok(false);
            }
        }
        let rev = self.revision.fetch_add(1, Ordering::SeqCst) + 1;
        for (k, v) in ops {
            match v {
                Some(v) => {
                    map.insert(k, (v, rev));
                }
                None => {
                    map.remove(&k);
                }
            }
        }
        Ok(true)
    }
    async fn delete(&self, key: &str) -> tresor_sdk::Result<()> {
        self.map.lock().remove(key);
        Ok(())
    }
    async fn list(&self, prefix: &str) -> tresor_sdk::Result<Vec<String>> {
        let map = self.map.lock();
        let mut out = std::collections::BTreeSet::new();
        for rest in map.keys().filter_map(|k| k.strip_prefix(prefix)) {
            out.insert(match rest.find('/') {
                Some(i) => rest[..=i].to_owned(),
                None => rest.to_owned(),
            });
        }
        Ok(out.into_iter().collect())
    }
}

/// A clock that only moves when told to.
pub struct FakeClock(parking_lot::Mutex<SystemTime>);

impl FakeClock {
    pub fn new() -> Self {
        // 2018-03-22T02:24:06.945319214Z, the timestamp of Vault's documentation samples.
        FakeClock(parking_lot::Mutex::new(
            UNIX_EPOCH + Duration::new(1_521_685_446, 945_319_214),
        ))
    }
    pub fn advance(&self, d: Duration) {
        *self.0.lock() += d;
    }
}

impl tresor_kv::Clock for FakeClock {
    fn now(&self) -> SystemTime {
        *self.0.lock()
    }
}

pub struct Harness {
    pub kv: Arc<dyn LogicalBackend>,
    pub storage: Arc<MemStorage>,
    pub clock: Arc<FakeClock>,
    pub mount: Arc<MountView>,
}

impl Harness {
    pub fn new(version: &str) -> Self {
        let clock = Arc::new(FakeClock::new());
        let kv = tresor_kv::backend_with_clock(clock.clone());
        let mut h = Harness {
            kv,
            storage: Arc::new(MemStorage::default()),
            clock,
            mount: mount(None, ""),
        };
        h.tune(version);
        h
    }
    pub fn v1() -> Self {
        Self::new("1")
    }
    pub fn v2() -> Self {
        Self::new("2")
    }

    /// Changes the mount's `version` option, as `sys/mounts/<mount>/tune` does. An empty
    /// string removes the option.
    pub fn tune(&mut self, version: &str) {
        let mut options = self.mount.options.clone();
        if version.is_empty() {
            options.remove("version");
        } else {
            options.insert("version".into(), version.into());
        }
        self.mount = mount(Some(options), &self.mount.mount_accessor);
    }

    /// Gives the mount an accessor (the engine caches per-mount facts under it).
    pub fn set_accessor(&mut self, accessor: &str) {
        self.mount = mount(Some(self.mount.options.clone()), accessor);
    }

    pub fn req(&self, op: Operation, path: &str, data: Value) -> Request {
        let data = match data {
            Value::Object(m) => m,
            Value::Null => Map::new(),
            other => panic!("request data must be an object, got {other}"),
        };
        Request {
            operation: op,
            path: path.to_owned(),
            data,
            storage: self.storage.clone(),
            mount: self.mount.clone(),
            caller: Caller::default(),
            secret: None,
            connection: Default::default(),
            headers: Vec::new(),
            raw_body: None,
            deadline: None,
        }
    }

    pub async fn call(
        &self,
        op: Operation,
        path: &str,
        data: Value,
    ) -> Result<Option<Response>, LogicalError> {
        self.kv.handle(self.req(op, path, data)).await
    }

    /// A call that must succeed; its data as a JSON value (`null` for no response).
    pub async fn ok(&self, op: Operation, path: &str, data: Value) -> Value {
        match self.call(op, path, data).await {
            Ok(Some(resp)) => {
                assert!(
                    resp.warnings.is_empty(),
                    "unexpected warnings on {op:?} {path}: {:?}",
                    resp.warnings
                );
                resp.data.map(Value::Object).unwrap_or(Value::Null)
            }
            Ok(None) => Value::Null,
            Err(e) => panic!("{op:?} {path} failed: {e:?}"),
        }
    }

    /// A call that must answer with no response at all (204 on writes, 404 on reads).
    pub async fn none(&self, op: Operation, path: &str, data: Value) {
        match self.call(op, path, data).await {
            Ok(None) => {}
            other => panic!("{op:?} {path}: expected no response, got {other:?}"),
        }
    }

    /// A call that must fail with `InvalidRequest`; returns the message.
    pub async fn invalid(&self, op: Operation, path: &str, data: Value) -> String {
        match self.call(op, path, data).await {
            Err(LogicalError::InvalidRequest(m)) => m,
            other => panic!("{op:?} {path}: expected an invalid request error, got {other:?}"),
        }
    }

    pub async fn exists(&self, path: &str) -> Option<bool> {
        self.kv
            .exists(&self.req(Operation::Update, path, Value::Null))
            .await
            .expect("existence check")
    }

    pub async fn put(&self, path: &str, data: Value) -> Value {
        self.ok(
            Operation::Update,
            &format!("data/{path}"),
            json!({ "data": data }),
        )
        .await
    }

    pub async fn get(&self, path: &str) -> Value {
        self.ok(Operation::Read, &format!("data/{path}"), Value::Null)
            .await
    }

    pub async fn get_version(&self, path: &str, version: u64) -> Value {
        // Query parameters arrive as strings.
        self.ok(
            Operation::Read,
            &format!("data/{path}"),
            json!({ "version": version.to_string() }),
        )
        .await
    }

    pub async fn metadata(&self, path: &str) -> Value {
        self.ok(Operation::Read, &format!("metadata/{path}"), Value::Null)
            .await
    }
}

fn mount(options: Option<BTreeMap<String, String>>, accessor: &str) -> Arc<MountView> {
    Arc::new(MountView {
        mount_point: "secret/".into(),
        mount_type: "kv".into(),
        mount_accessor: accessor.to_owned(),
        default_lease_ttl: Duration::from_secs(768 * 3600),
        max_lease_ttl: Duration::from_secs(768 * 3600),
        options: options.unwrap_or_default(),
        system: None,
    })
}

/// The sorted keys of a JSON object.
pub fn keys_of(v: &Value) -> Vec<String> {
    let mut k: Vec<String> = v.as_object().expect("an object").keys().cloned().collect();
    k.sort();
    k
}

/// Asserts a Vault RFC3339Nano timestamp in UTC.
pub fn assert_timestamp(v: &Value) {
    let s = v
        .as_str()
        .unwrap_or_else(|| panic!("timestamp must be a string, got {v}"));
    assert!(
        s.len() >= 20 && s.ends_with('Z') && s.as_bytes()[10] == b'T',
        "not RFC3339: {s}"
    );
}
