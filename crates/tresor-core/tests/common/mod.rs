//! Shared scaffolding for the core's in-process tests: a dev-initialised core on in-memory
//! storage with KV registered, and request helpers.

#![allow(dead_code)]

use std::sync::Arc;

use serde_json::{Map, Value, json};
use tresor_core::{Core, CoreConfig, CoreError, CoreRequest, CoreResponse};
use tresor_physical::{Backend, InmemBackend};
use tresor_sdk::Operation;

pub struct TestCore {
    pub core: Core,
    /// The single unseal key of the dev init.
    pub key: Vec<u8>,
    pub root: String,
    pub physical: Arc<dyn Backend>,
}

pub async fn dev_core() -> TestCore {
    dev_core_with(|_| {}).await
}

/// A dev core on the given storage.
pub async fn dev_core_on(physical: Arc<dyn Backend>) -> TestCore {
    dev_core_with_storage(physical, |_| {}).await
}

/// A dev core; `register` may add engines before the core is shared.
pub async fn dev_core_with(register: impl FnOnce(&mut Core)) -> TestCore {
    dev_core_with_storage(Arc::new(InmemBackend::new()), register).await
}

/// A dev core with the given settings (hooks, clock).
pub async fn dev_core_with_config(config: CoreConfig) -> TestCore {
    dev_core_with_storage_config(Arc::new(InmemBackend::new()), config, |_| {}).await
}

async fn dev_core_with_storage(
    physical: Arc<dyn Backend>,
    register: impl FnOnce(&mut Core),
) -> TestCore {
    dev_core_with_storage_config(physical, CoreConfig::default(), register).await
}

async fn dev_core_with_storage_config(
    physical: Arc<dyn Backend>,
    config: CoreConfig,
    register: impl FnOnce(&mut Core),
) -> TestCore {
    let mut core = Core::new(physical.clone(), config);
    core.register_engine("kv", Arc::new(|_| Ok(tresor_kv::backend())));
    register(&mut core);
    let (key, root) = core.init_dev(Some("root".into())).await.expect("dev init");
    let t = TestCore {
        core,
        key: key.to_vec(),
        root: root.to_string(),
        physical,
    };
    t.ok(
        Operation::Update,
        "sys/mounts/secret",
        json!({"type": "kv", "options": {"version": "2"}}),
        "root",
    )
    .await;
    t
}

fn obj(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        Value::Null => Map::new(),
        other => panic!("request data must be an object, got {other}"),
    }
}

impl TestCore {
    pub async fn req(
        &self,
        op: Operation,
        path: &str,
        data: Value,
        token: &str,
    ) -> Result<CoreResponse, CoreError> {
        self.core
            .handle(CoreRequest::new(op, path, obj(data), Some(token)))
            .await
    }

    pub async fn req_wrapped(
        &self,
        op: Operation,
        path: &str,
        data: Value,
        token: &str,
        ttl_secs: u64,
    ) -> Result<CoreResponse, CoreError> {
        let mut r = CoreRequest::new(op, path, obj(data), Some(token));
        r.wrap_ttl = Some(std::time::Duration::from_secs(ttl_secs));
        self.core.handle(r).await
    }

    /// A request that must succeed.
    pub async fn ok(&self, op: Operation, path: &str, data: Value, token: &str) -> CoreResponse {
        match self.req(op, path, data, token).await {
            Ok(r) => r,
            Err(e) => panic!("{op:?} {path} failed: {e}"),
        }
    }

    /// The response data of a successful request.
    pub async fn data(
        &self,
        op: Operation,
        path: &str,
        data: Value,
        token: &str,
    ) -> Map<String, Value> {
        self.ok(op, path, data, token)
            .await
            .response
            .and_then(|r| r.data)
            .unwrap_or_default()
    }

    /// Creates a token with the given policies (child of root unless `orphan`).
    pub async fn token(&self, policies: &[&str], extra: Value) -> String {
        let mut body = json!({"policies": policies});
        if let Value::Object(m) = extra {
            for (k, v) in m {
                body[k] = v;
            }
        }
        let r = self
            .ok(Operation::Update, "auth/token/create", body, &self.root)
            .await;
        r.auth.expect("auth block")["client_token"]
            .as_str()
            .expect("token")
            .to_owned()
    }

    pub async fn policy(&self, name: &str, text: &str) {
        self.ok(
            Operation::Update,
            &format!("sys/policies/acl/{name}"),
            json!({"policy": text}),
            &self.root,
        )
        .await;
    }
}
