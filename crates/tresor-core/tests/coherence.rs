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
use tresor_sdk::Operation::{Read, Update};

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
