//! Test harness: an in-memory storage view, a clock the tests move, and a PKI mount driven
//! through its public `LogicalBackend`, plus helpers that run the real `openssl` tool.

#![allow(dead_code)] // reason: each test binary uses a different subset of the harness

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use serde_json::{Map, Value};
use tresor_sdk::{
    Caller, LogicalBackend, LogicalError, MountView, Operation, Request, Response, Storage,
};

#[derive(Default)]
pub struct MemStorage {
    pub map: parking_lot::Mutex<BTreeMap<String, Vec<u8>>>,
}

impl MemStorage {
    pub fn keys_under(&self, prefix: &str) -> Vec<String> {
        self.map
            .lock()
            .keys()
            .filter(|k| k.starts_with(prefix))
            .cloned()
            .collect()
    }
}

#[async_trait]
impl Storage for MemStorage {
    async fn get(&self, key: &str) -> tresor_sdk::Result<Option<Vec<u8>>> {
        Ok(self.map.lock().get(key).cloned())
    }
    async fn put(&self, key: &str, value: Vec<u8>) -> tresor_sdk::Result<()> {
        self.map.lock().insert(key.to_owned(), value);
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
}

/// A clock that only moves when told to; it starts at the real current time so that
/// `openssl verify` (which uses the wall clock) accepts what the engine issues.
pub struct FakeClock(parking_lot::Mutex<SystemTime>);

impl FakeClock {
    pub fn new() -> Self {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        FakeClock(parking_lot::Mutex::new(
            UNIX_EPOCH + Duration::from_secs(now),
        ))
    }
    pub fn advance(&self, d: Duration) {
        *self.0.lock() += d;
    }
    pub fn unix(&self) -> i64 {
        self.0.lock().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
    }
}

impl tresor_pki::Clock for FakeClock {
    fn now(&self) -> SystemTime {
        *self.0.lock()
    }
}

pub struct Harness {
    pub pki: Arc<dyn LogicalBackend>,
    pub storage: Arc<MemStorage>,
    pub clock: Arc<FakeClock>,
    pub mount: Arc<MountView>,
}

pub fn mount_view(point: &str, default_ttl: u64, max_ttl: u64) -> Arc<MountView> {
    Arc::new(MountView {
        mount_point: point.to_owned(),
        mount_type: "pki".into(),
        mount_accessor: format!("pki_{}", point.len()),
        default_lease_ttl: Duration::from_secs(default_ttl),
        max_lease_ttl: Duration::from_secs(max_ttl),
        options: BTreeMap::new(),
        system: None,
    })
}

impl Harness {
    /// A mount at `point` with Vault's system defaults (768h default and max lease TTL).
    pub fn new(point: &str) -> Self {
        Self::with_ttls(point, 768 * 3600, 768 * 3600)
    }

    pub fn with_ttls(point: &str, default_ttl: u64, max_ttl: u64) -> Self {
        let clock = Arc::new(FakeClock::new());
        Harness {
            pki: tresor_pki::backend_with_clock(clock.clone()),
            storage: Arc::new(MemStorage::default()),
            clock,
            mount: mount_view(point, default_ttl, max_ttl),
        }
    }

    /// A second mount served by the same backend (its own storage view).
    pub fn sibling(&self, point: &str) -> Harness {
        Harness {
            pki: self.pki.clone(),
            storage: Arc::new(MemStorage::default()),
            clock: self.clock.clone(),
            mount: mount_view(point, 768 * 3600, 768 * 3600),
        }
    }

    /// Tunes the mount's TTLs, as `sys/mounts/<mount>/tune` does.
    pub fn tune(&mut self, default_ttl: u64, max_ttl: u64) {
        let mut m = (*self.mount).clone();
        m.default_lease_ttl = Duration::from_secs(default_ttl);
        m.max_lease_ttl = Duration::from_secs(max_ttl);
        self.mount = Arc::new(m);
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

    /// The core's periodic tick for this mount at `unix` seconds.
    pub async fn periodic(&self, unix: i64) {
        let ctx = tresor_sdk::Context {
            storage: self.storage.clone(),
            mount: self.mount.clone(),
            now: std::time::UNIX_EPOCH + Duration::from_secs(unix as u64),
        };
        self.pki.periodic(&ctx).await.expect("periodic");
    }

    pub async fn call(
        &self,
        op: Operation,
        path: &str,
        data: Value,
    ) -> Result<Option<Response>, LogicalError> {
        self.pki.handle(self.req(op, path, data)).await
    }

    /// A call that must succeed with data; returns the data.
    pub async fn ok(&self, op: Operation, path: &str, data: Value) -> Value {
        match self.call(op, path, data).await {
            Ok(Some(resp)) => resp.data.map(Value::Object).unwrap_or(Value::Null),
            Ok(None) => Value::Null,
            Err(e) => panic!("{op:?} {path} failed: {e:?}"),
        }
    }

    /// A call that must succeed; returns the whole response (for warnings and raw bodies).
    pub async fn resp(&self, op: Operation, path: &str, data: Value) -> Response {
        match self.call(op, path, data).await {
            Ok(Some(resp)) => resp,
            Ok(None) => panic!("{op:?} {path}: no response"),
            Err(e) => panic!("{op:?} {path} failed: {e:?}"),
        }
    }

    pub async fn write(&self, path: &str, data: Value) -> Value {
        self.ok(Operation::Update, path, data).await
    }

    pub async fn read(&self, path: &str) -> Value {
        self.ok(Operation::Read, path, Value::Null).await
    }

    /// A raw body (PEM, DER, CRL, OCSP) with its content type.
    pub async fn raw(&self, op: Operation, path: &str, data: Value) -> (String, Vec<u8>) {
        let (status, content_type, body) = self.raw_with_status(op, path, data).await;
        assert_eq!(status, 200, "{path}");
        (content_type, body)
    }

    /// A raw response whatever its HTTP status: (status, content type, body).
    pub async fn raw_with_status(
        &self,
        op: Operation,
        path: &str,
        data: Value,
    ) -> (u16, String, Vec<u8>) {
        let r = self.resp(op, path, data).await;
        let raw = r
            .raw
            .unwrap_or_else(|| panic!("{path}: expected a raw response"));
        (raw.status, raw.content_type, raw.body)
    }

    /// A POST whose body is not JSON (an OCSP request's DER): the raw response.
    pub async fn post_raw(&self, path: &str, body: Vec<u8>) -> (String, Vec<u8>) {
        let mut req = self.req(Operation::Update, path, Value::Null);
        req.raw_body = Some(body.into());
        let r = self
            .pki
            .handle(req)
            .await
            .unwrap_or_else(|e| panic!("{path}: {e}"))
            .unwrap_or_else(|| panic!("{path}: no response"));
        let raw = r
            .raw
            .unwrap_or_else(|| panic!("{path}: expected a raw response"));
        assert_eq!(raw.status, 200, "{path}");
        (raw.content_type, raw.body)
    }

    /// A call that must fail with `InvalidRequest`; returns the message.
    pub async fn invalid(&self, op: Operation, path: &str, data: Value) -> String {
        match self.call(op, path, data).await {
            Err(LogicalError::InvalidRequest(m)) => m,
            other => panic!("{op:?} {path}: expected an invalid request error, got {other:?}"),
        }
    }

    /// Generates an internal root and returns the response data.
    pub async fn root(&self, key_type: &str, key_bits: u64) -> Value {
        self.write(
            "root/generate/internal",
            serde_json::json!({
                "common_name": "Tresor Test Root",
                "key_type": key_type,
                "key_bits": key_bits,
                "ttl": "87600h",
            }),
        )
        .await
    }
}

/// The sorted keys of a JSON object.
pub fn keys_of(v: &Value) -> Vec<String> {
    let mut k: Vec<String> = v.as_object().expect("an object").keys().cloned().collect();
    k.sort();
    k
}

/// A scratch directory for openssl files.
pub fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().expect("tempdir")
}

pub fn write_file(dir: &Path, name: &str, content: impl AsRef<[u8]>) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, content).expect("write");
    p
}

/// Runs openssl; returns (success, stdout + stderr).
pub fn openssl(args: &[&str]) -> (bool, String) {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .expect("openssl on PATH");
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

/// `openssl verify` of `leaf` against `root`, with `intermediates` untrusted.
pub fn openssl_verify(
    root: &str,
    intermediates: &[&str],
    leaf: &str,
    purpose: Option<&str>,
) -> (bool, String) {
    let d = tmp();
    let r = write_file(d.path(), "root.pem", root);
    let l = write_file(d.path(), "leaf.pem", leaf);
    let mut args: Vec<String> = vec!["verify".into(), "-CAfile".into(), r.display().to_string()];
    if !intermediates.is_empty() {
        let i = write_file(d.path(), "int.pem", intermediates.join("\n"));
        args.push("-untrusted".into());
        args.push(i.display().to_string());
    }
    if let Some(p) = purpose {
        args.push("-purpose".into());
        args.push(p.into());
    }
    args.push(l.display().to_string());
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    openssl(&refs)
}

/// The DER of the first certificate of a PEM text.
pub fn pem_der(pem: &str) -> Vec<u8> {
    tresor_pki::pem::certificates(pem).unwrap().remove(0)
}
