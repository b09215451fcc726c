//! Issue 11: every cache can be invalidated from outside its process. Two cores share one
//! storage (as two servers share etcd); what one changes, the other serves stale until
//! `invalidate(key)` for the changed key, then serves the new state. HA will call it from the
//! storage change feed.

mod common;

use std::sync::Arc;

use common::{TestCore, dev_core};
use serde_json::json;
use tresor_core::barrier::Key;
use tresor_core::{Core, CoreConfig, CoreError};
use tresor_physical::{Backend, InmemBackend, Op};
use tresor_sdk::Operation::{Read, Update};

/// Shared storage a little slow to read, as a network store is: reads of a revision yield to
/// other tasks, so two servers' read-modify-writes interleave as they do for real.
struct Slow(Arc<dyn Backend>);

#[async_trait::async_trait]
impl Backend for Slow {
    async fn get(&self, key: &str) -> tresor_physical::Result<Option<Vec<u8>>> {
        self.0.get(key).await
    }
    async fn transaction(&self, ops: Vec<Op>) -> tresor_physical::Result<()> {
        self.0.transaction(ops).await
    }
    async fn list(&self, prefix: &str) -> tresor_physical::Result<Vec<String>> {
        self.0.list(prefix).await
    }
    fn kind(&self) -> &'static str {
        "slow"
    }
    fn durable(&self) -> bool {
        false
    }
    async fn get_with_revision(
        &self,
        key: &str,
    ) -> tresor_physical::Result<Option<(Vec<u8>, u64)>> {
        let r = self.0.get_with_revision(key).await;
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        r
    }
    async fn transaction_if(
        &self,
        checks: Vec<tresor_physical::Check>,
        ops: Vec<Op>,
    ) -> tresor_physical::Result<u64> {
        self.0.transaction_if(checks, ops).await
    }
    async fn delete_prefix(&self, prefix: &str) -> tresor_physical::Result<u64> {
        self.0.delete_prefix(prefix).await
    }
}

/// A second server on the first one's storage, unsealed with the same key.
async fn second(a: &TestCore) -> Core {
    let mut b = Core::new(a.physical.clone(), CoreConfig::default());
    b.register_engine("kv", Arc::new(|_| Ok(tresor_kv::backend())));
    b.unseal_with_key(&Key::from_slice(&a.key).unwrap())
        .await
        .unwrap();
    b
}

async fn read(
    core: &Core,
    path: &str,
    token: &str,
) -> Result<tresor_core::CoreResponse, CoreError> {
    core.handle(tresor_core::CoreRequest::new(
        Read,
        path,
        serde_json::Map::new(),
        Some(token),
    ))
    .await
}

#[tokio::test]
async fn a_policy_changed_elsewhere_applies_after_invalidate() {
    let a = dev_core().await;
    a.ok(
        Update,
        "secret/data/app",
        json!({"data": {"k": "v"}}),
        &a.root,
    )
    .await;
    a.policy("p", r#"path "secret/data/*" { capabilities = ["read"] }"#)
        .await;
    let tok = a.token(&["p"], json!({})).await;
    let b = second(&a).await;
    read(&b, "secret/data/app", &tok).await.unwrap();
    a.policy("p", r#"path "secret/data/*" { capabilities = ["deny"] }"#)
        .await;
    // Stale until told.
    read(&b, "secret/data/app", &tok).await.unwrap();
    b.invalidate("sys/policy/acl/p").await.unwrap();
    assert!(matches!(
        read(&b, "secret/data/app", &tok).await,
        Err(CoreError::PermissionDenied)
    ));
}

#[tokio::test]
async fn a_token_revoked_elsewhere_is_refused_after_invalidate() {
    let a = dev_core().await;
    a.ok(
        Update,
        "secret/data/app",
        json!({"data": {"k": "v"}}),
        &a.root,
    )
    .await;
    a.policy("p", r#"path "secret/data/*" { capabilities = ["read"] }"#)
        .await;
    let tok = a.token(&["p"], json!({})).await;
    let b = second(&a).await;
    read(&b, "secret/data/app", &tok).await.unwrap(); // now cached on b
    a.ok(Update, "auth/token/revoke", json!({"token": tok}), &a.root)
        .await;
    let id = b.unsealed().unwrap().tokens.hash(&tok);
    b.invalidate(&format!("sys/token/id/{id}")).await.unwrap();
    assert!(matches!(
        read(&b, "secret/data/app", &tok).await,
        Err(CoreError::PermissionDenied)
    ));
}

#[tokio::test]
async fn mounts_and_key_rotations_elsewhere_apply_after_invalidate() {
    let a = dev_core().await;
    let b = second(&a).await;
    a.ok(
        Update,
        "sys/mounts/kv2",
        json!({"type": "kv", "options": {"version": "2"}}),
        &a.root,
    )
    .await;
    // a rotates the barrier key and writes under the new term.
    a.ok(Update, "sys/rotate", json!({}), &a.root).await;
    a.ok(Update, "kv2/data/x", json!({"data": {"n": 1}}), &a.root)
        .await;
    assert!(matches!(
        read(&b, "kv2/data/x", "root").await,
        Err(CoreError::NoRoute(_))
    ));
    b.invalidate("core/mounts").await.unwrap();
    // The mount is there now, but the value is under a key term b does not know yet.
    assert!(read(&b, "kv2/data/x", "root").await.is_err());
    b.invalidate("core/keyring").await.unwrap();
    let r = read(&b, "kv2/data/x", "root").await.unwrap();
    assert_eq!(r.response.unwrap().data.unwrap()["data"]["n"], 1);
    // An unmount elsewhere removes the route here too.
    a.ok(
        tresor_sdk::Operation::Delete,
        "sys/mounts/kv2",
        json!({}),
        &a.root,
    )
    .await;
    b.invalidate("core/mounts").await.unwrap();
    assert!(matches!(
        read(&b, "kv2/data/x", "root").await,
        Err(CoreError::NoRoute(_))
    ));
}

/// Issue 11, correct under concurrency across servers: the guarantees the in-process locks
/// give one server hold through storage's conditional writes when two servers share it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uses_unwraps_and_check_and_set_hold_across_two_servers() {
    let shared: Arc<dyn Backend> = Arc::new(Slow(Arc::new(InmemBackend::new())));
    let a = Arc::new(common::dev_core_on(shared).await);
    let b = Arc::new(second(&a).await);
    a.ok(
        Update,
        "secret/data/app",
        json!({"data": {"k": "v"}}),
        &a.root,
    )
    .await;
    a.policy(
        "reader",
        r#"path "secret/data/*" { capabilities = ["read"] }"#,
    )
    .await;
    let servers = |i: usize| -> Core {
        if i.is_multiple_of(2) {
            a.core.clone()
        } else {
            (*b).clone()
        }
    };

    // N uses serve exactly N requests, wherever they arrive.
    let tok = a.token(&["reader"], json!({"num_uses": 5})).await;
    let mut tasks = Vec::new();
    for i in 0..40 {
        let (core, tok) = (servers(i), tok.clone());
        tasks.push(tokio::spawn(async move {
            read(&core, "secret/data/app", &tok).await.is_ok()
        }));
    }
    let mut served = 0;
    for t in tasks {
        served += usize::from(t.await.unwrap());
    }
    assert_eq!(served, 5, "num_uses=5 served {served} across two servers");

    // One unwrap, wherever the 50 attempts arrive.
    let w = a
        .req_wrapped(Read, "secret/data/app", json!({}), &a.root, 300)
        .await
        .unwrap();
    let wtok = w.wrap_info.unwrap()["token"].as_str().unwrap().to_owned();
    let mut tasks = Vec::new();
    for i in 0..50 {
        let (core, wtok) = (servers(i), wtok.clone());
        tasks.push(tokio::spawn(async move {
            core.handle(tresor_core::CoreRequest::new(
                Update,
                "sys/wrapping/unwrap",
                json!({"token": wtok}).as_object().cloned().unwrap(),
                Some("root"),
            ))
            .await
            .ok()
            .and_then(|r| r.response)
            .and_then(|r| r.data)
            .is_some()
        }));
    }
    let mut got = 0;
    for t in tasks {
        got += usize::from(t.await.unwrap());
    }
    assert_eq!(got, 1, "{got} unwraps across two servers got the payload");

    // Check-and-set: of 16 writers with cas=0 on a new secret, one wins.
    let mut tasks = Vec::new();
    for i in 0..16 {
        let core = servers(i);
        tasks.push(tokio::spawn(async move {
            core.handle(tresor_core::CoreRequest::new(
                Update,
                "secret/data/race",
                json!({"data": {"writer": i}, "options": {"cas": 0}})
                    .as_object()
                    .cloned()
                    .unwrap(),
                Some("root"),
            ))
            .await
            .is_ok()
        }));
    }
    let mut wins = 0;
    for t in tasks {
        wins += usize::from(t.await.unwrap());
    }
    assert_eq!(wins, 1, "{wins} cas=0 writes won across two servers");
    let meta = read(&a.core, "secret/metadata/race", "root").await.unwrap();
    assert_eq!(meta.response.unwrap().data.unwrap()["current_version"], 1);
}

/// Issue 11, versioned records: a record written by a newer build (a format this build does
/// not know) is refused where it is decoded, never half-understood.
#[tokio::test]
async fn a_token_entry_from_a_newer_format_is_refused() {
    let a = dev_core().await;
    let tok = a.token(&["default"], json!({})).await;
    let u = a.core.unsealed().unwrap();
    let id = u.tokens.hash(&tok);
    let key = format!("sys/token/id/{id}");
    let stored = u.barrier.get(&key).await.unwrap().unwrap();
    let mut v: serde_json::Value = serde_json::from_slice(&stored).unwrap();
    v["version"] = json!(99);
    u.barrier
        .put(&key, &serde_json::to_vec(&v).unwrap())
        .await
        .unwrap();
    u.tokens.invalidate(&id).await;
    let e = read(&a.core, "auth/token/lookup-self", &tok)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("newer than this build"), "{e}");
}
