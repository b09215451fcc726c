//! Issue 6 in-process: leases (register, renew within max TTL, expire on time, revoke by token
//! and prefix, retry failed revocations with backoff, survive a restart), response wrapping
//! (single use, policy wrap-TTL bounds) and audit (no secrets in clear, audit-hash matches,
//! denied requests recorded, fail closed). Time is driven by calling `expire_tick(at)` with
//! an explicit instant, never by sleeping.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::{TestCore, dev_core_with};
use parking_lot::Mutex;
use serde_json::{Map, Value, json};
use tresor_core::CoreError;
use tresor_core::tokens::now;
use tresor_sdk::Operation::{List, Read, Update};
use tresor_sdk::framework::{Field, Kind, Path, SecretType, Table, TableBackend};
use tresor_sdk::{LogicalError, Operation, Response, SecretLease, SpecialPaths};

/// A test engine issuing leased credentials; records revocations and can be made to fail.
#[derive(Default)]
struct Leasing {
    revoked: Mutex<Vec<String>>,
    fail: AtomicBool,
}

fn leasing_engine(state: Arc<Leasing>) -> Arc<dyn tresor_sdk::LogicalBackend> {
    struct S(Arc<Leasing>);
    let table = Table::<S> {
        help: "test engine",
        special: SpecialPaths::default(),
        paths: vec![
            Path::new("creds/{name}")
                .field(Field::new("name", Kind::Str, "credential name"))
                .op(Operation::Read, |_, _, f| {
                    Box::pin(async move {
                        let mut internal = Map::new();
                        internal.insert("name".into(), json!(f.string("name")));
                        let mut r = Response::json(
                            json!({"username": f.string("name"), "password": "pw-123"}),
                        );
                        r.secret = Some(SecretLease {
                            secret_type: "cred".into(),
                            ttl: Duration::from_secs(60),
                            max_ttl: None,
                            renewable: true,
                            internal_data: internal,
                        });
                        Ok(Some(r))
                    })
                }),
        ],
    };
    let secrets = vec![SecretType::<S> {
        name: "cred",
        renew: Some(|_, _, _| Box::pin(async { Ok(None) })),
        revoke: |s, req, _| {
            Box::pin(async move {
                if s.0.fail.load(Ordering::SeqCst) {
                    return Err(LogicalError::internal("database unreachable"));
                }
                let name = req.secret.unwrap().internal_data["name"]
                    .as_str()
                    .unwrap()
                    .to_owned();
                s.0.revoked.lock().push(name);
                Ok(None)
            })
        },
    }];
    TableBackend::with_secrets(S(state), table, secrets)
}

async fn core_with_leasing() -> (TestCore, Arc<Leasing>) {
    let state = Arc::new(Leasing::default());
    let s2 = state.clone();
    let t = dev_core_with(move |c| {
        c.register_engine("leasing", Arc::new(move |_| Ok(leasing_engine(s2.clone()))))
    })
    .await;
    t.ok(
        Update,
        "sys/mounts/db",
        json!({"type": "leasing", "config": {"max_lease_ttl": "2h"}}),
        &t.root,
    )
    .await;
    (t, state)
}

#[tokio::test]
async fn leases_expire_renew_and_revoke_through_the_engine() {
    let (t, state) = core_with_leasing().await;
    let r = t.ok(Read, "db/creds/alice", json!({}), &t.root).await;
    assert!(r.lease_id.starts_with("db/creds/alice/"), "{}", r.lease_id);
    assert_eq!(r.lease_duration, 60);
    assert!(r.renewable);
    let lease = r.lease_id.clone();
    let d = t
        .data(
            Update,
            "sys/leases/lookup",
            json!({"lease_id": lease}),
            &t.root,
        )
        .await;
    assert_eq!(d["id"], json!(lease));
    let keys = t
        .data(List, "sys/leases/lookup/db/creds/", json!({}), &t.root)
        .await;
    assert_eq!(keys["keys"], json!(["alice/"]));

    // Renewal is clamped by the mount's max lease TTL (2h).
    let r = t
        .ok(
            Update,
            "sys/leases/renew",
            json!({"lease_id": lease, "increment": "10h"}),
            &t.root,
        )
        .await;
    assert_eq!(r.lease_id, lease);
    assert!(
        r.lease_duration <= 7200 && r.lease_duration > 7000,
        "{}",
        r.lease_duration
    );

    // Nothing is revoked before the lease is due...
    assert_eq!(t.core.expire_tick(now() + 3600).await.unwrap(), 0);
    assert!(state.revoked.lock().is_empty());
    // ...and it is revoked through the engine once due.
    assert_eq!(t.core.expire_tick(now() + 7300).await.unwrap(), 1);
    assert_eq!(*state.revoked.lock(), vec!["alice".to_string()]);
    assert!(matches!(
        t.req(
            Update,
            "sys/leases/lookup",
            json!({"lease_id": lease}),
            &t.root
        )
        .await,
        Err(CoreError::InvalidRequest(_))
    ));
}

#[tokio::test]
async fn failed_revocations_retry_with_backoff_and_do_not_block_others() {
    let (t, state) = core_with_leasing().await;
    let a = t.ok(Read, "db/creds/a", json!({}), &t.root).await.lease_id;
    state.fail.store(true, Ordering::SeqCst);
    let at = now() + 61;
    assert_eq!(t.core.expire_tick(at).await.unwrap(), 1);
    assert!(state.revoked.lock().is_empty(), "engine failed");
    // The lease is still there and is retried after a backoff, not at once.
    t.ok(Update, "sys/leases/lookup", json!({"lease_id": a}), &t.root)
        .await;
    assert_eq!(
        t.core.expire_tick(at).await.unwrap(),
        0,
        "not retried before the backoff"
    );
    // Meanwhile another lease expires normally.
    state.fail.store(false, Ordering::SeqCst);
    let b = t.ok(Read, "db/creds/b", json!({}), &t.root).await.lease_id;
    let _ = b;
    assert_eq!(
        t.core.expire_tick(at + 10).await.unwrap(),
        2,
        "retry of a plus expiry of b"
    );
    let mut got = state.revoked.lock().clone();
    got.sort();
    assert_eq!(got, vec!["a", "b"]);
}

#[tokio::test]
async fn revoking_a_token_revokes_its_leases_and_prefix_revocation_works() {
    let (t, state) = core_with_leasing().await;
    t.policy("db", r#"path "db/*" { capabilities = ["read"] }"#)
        .await;
    let tok = t.token(&["db"], json!({})).await;
    t.ok(Read, "db/creds/t1", json!({}), &tok).await;
    t.ok(Read, "db/creds/r1", json!({}), &t.root).await;
    t.ok(Read, "db/creds/r2", json!({}), &t.root).await;
    t.ok(Update, "auth/token/revoke", json!({"token": tok}), &t.root)
        .await;
    assert_eq!(*state.revoked.lock(), vec!["t1".to_string()]);
    t.ok(
        Update,
        "sys/leases/revoke-prefix/db/creds",
        json!({}),
        &t.root,
    )
    .await;
    let mut got = state.revoked.lock().clone();
    got.sort();
    assert_eq!(got, vec!["r1", "r2", "t1"]);
    // revoke-force forgets leases even when the engine fails.
    t.ok(Read, "db/creds/stuck", json!({}), &t.root).await;
    state.fail.store(true, Ordering::SeqCst);
    assert!(
        t.req(Update, "sys/leases/revoke-prefix/db/", json!({}), &t.root)
            .await
            .is_err()
    );
    t.ok(Update, "sys/leases/revoke-force/db/", json!({}), &t.root)
        .await;
    assert!(
        t.req(List, "sys/leases/lookup/db/creds/", json!({}), &t.root)
            .await
            .unwrap()
            .response
            .is_none()
    );
}

#[tokio::test]
async fn leases_survive_a_seal_and_unseal() {
    let (t, state) = core_with_leasing().await;
    let lease = t
        .ok(Read, "db/creds/kept", json!({}), &t.root)
        .await
        .lease_id;
    t.core.seal().await.unwrap();
    assert!(matches!(
        t.core.expire_tick(now() + 120).await,
        Err(CoreError::Sealed)
    ));
    t.core
        .unseal_with_key(&tresor_core::barrier::Key::from_slice(&t.key).unwrap())
        .await
        .unwrap();
    // Still known after the restart of the unsealed state...
    t.ok(
        Update,
        "sys/leases/lookup",
        json!({"lease_id": lease}),
        &t.root,
    )
    .await;
    // ...and what expired meanwhile is revoked by the first tick after unseal.
    assert_eq!(t.core.expire_tick(now() + 120).await.unwrap(), 1);
    assert_eq!(*state.revoked.lock(), vec!["kept".to_string()]);
}

#[tokio::test]
async fn token_expiry_revokes_the_token_and_its_leases() {
    let (t, state) = core_with_leasing().await;
    t.policy("db", r#"path "db/*" { capabilities = ["read"] }"#)
        .await;
    let tok = t.token(&["db"], json!({"ttl": "30m"})).await;
    t.ok(Read, "db/creds/short", json!({}), &tok).await;
    // 61 s later the credential's own lease is due.
    t.core.expire_tick(now() + 61).await.unwrap();
    assert_eq!(*state.revoked.lock(), vec!["short".to_string()]);
    t.ok(Read, "db/creds/again", json!({}), &tok).await;
    // 31 minutes later the token is due: it and its remaining lease go.
    t.core.expire_tick(now() + 31 * 60).await.unwrap();
    let mut got = state.revoked.lock().clone();
    got.sort();
    assert_eq!(got, vec!["again", "short"]);
    let u = t.core.unsealed().unwrap();
    assert!(
        u.tokens.lookup(&tok).await.unwrap().is_none()
            || u.tokens
                .by_id_raw(&u.tokens.hash(&tok))
                .await
                .unwrap()
                .is_none(),
        "token revoked"
    );
}

#[tokio::test]
async fn wrapped_responses_unwrap_exactly_once() {
    let (t, _) = core_with_leasing().await;
    t.ok(
        Update,
        "secret/data/w",
        json!({"data": {"pw": "hunter2"}}),
        &t.root,
    )
    .await;
    let r = t
        .req_wrapped(Read, "secret/data/w", json!({}), &t.root, 120)
        .await
        .unwrap();
    assert!(r.response.is_none(), "a wrapped response carries no data");
    let info = r.wrap_info.expect("wrap_info");
    assert_eq!(info["ttl"], json!(120));
    assert_eq!(info["creation_path"], json!("secret/data/w"));
    let wt = info["token"].as_str().unwrap().to_owned();
    let look = t
        .data(Update, "sys/wrapping/lookup", json!({"token": wt}), "")
        .await;
    assert_eq!(look["creation_ttl"], json!(120));
    let u1 = t
        .ok(Update, "sys/wrapping/unwrap", json!({"token": wt}), &t.root)
        .await;
    assert_eq!(u1.response.unwrap().data.unwrap()["data"]["pw"], "hunter2");
    let e = t
        .req(Update, "sys/wrapping/unwrap", json!({"token": wt}), &t.root)
        .await
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "wrapping token is not valid or does not exist"
    );
    // The wrapping token itself as the request token works once, too.
    let wt2 = t
        .req_wrapped(Update, "sys/wrapping/wrap", json!({"a": "b"}), &t.root, 60)
        .await
        .unwrap()
        .wrap_info
        .unwrap()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let u2 = t.ok(Update, "sys/wrapping/unwrap", json!({}), &wt2).await;
    assert_eq!(u2.response.unwrap().data.unwrap()["a"], "b");
    assert!(
        t.req(Update, "sys/wrapping/unwrap", json!({}), &wt2)
            .await
            .is_err()
    );
    // A wrapped leased secret keeps its lease for the unwrapper.
    let r = t
        .req_wrapped(Read, "db/creds/w", json!({}), &t.root, 60)
        .await
        .unwrap();
    let wt3 = r.wrap_info.unwrap()["token"].as_str().unwrap().to_owned();
    let u3 = t
        .ok(
            Update,
            "sys/wrapping/unwrap",
            json!({"token": wt3}),
            &t.root,
        )
        .await;
    assert!(u3.lease_id.starts_with("db/creds/w/"));
}

#[tokio::test]
async fn policies_enforce_wrapping_ttl_bounds() {
    let (t, _) = core_with_leasing().await;
    t.policy(
        "wrapped",
        r#"path "secret/data/*" {
  capabilities = ["read"]
  min_wrapping_ttl = "1m"
  max_wrapping_ttl = "10m"
}"#,
    )
    .await;
    let tok = t.token(&["wrapped"], json!({})).await;
    t.ok(
        Update,
        "secret/data/x",
        json!({"data": {"a": "1"}}),
        &t.root,
    )
    .await;
    assert!(
        matches!(
            t.req(Read, "secret/data/x", json!({}), &tok).await,
            Err(CoreError::InvalidRequest(_))
        ),
        "must be wrapped"
    );
    assert!(
        t.req_wrapped(Read, "secret/data/x", json!({}), &tok, 30)
            .await
            .is_err(),
        "below min"
    );
    assert!(
        t.req_wrapped(Read, "secret/data/x", json!({}), &tok, 3600)
            .await
            .is_err(),
        "above max"
    );
    assert!(
        t.req_wrapped(Read, "secret/data/x", json!({}), &tok, 300)
            .await
            .unwrap()
            .wrap_info
            .is_some()
    );
}

#[tokio::test]
async fn audit_log_has_no_secret_in_clear_records_denials_and_fails_closed() {
    let (t, _) = core_with_leasing().await;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("audit.log");
    t.ok(
        Update,
        "sys/audit/file",
        json!({"type": "file", "options": {"file_path": log.to_str().unwrap()}}),
        &t.root,
    )
    .await;
    t.ok(
        Update,
        "secret/data/s",
        json!({"data": {"password": "correct-horse-battery"}}),
        &t.root,
    )
    .await;
    t.ok(Read, "secret/data/s", json!({}), &t.root).await;
    let nobody = t.token(&["default"], json!({})).await;
    assert!(
        t.req(Read, "secret/data/s", json!({}), &nobody)
            .await
            .is_err()
    );
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        !text.contains("correct-horse-battery"),
        "secret value in clear in the audit log"
    );
    assert!(
        !text.contains(&t.root) || t.root == "root" && !text.contains("\"client_token\":\"root\""),
        "root token in clear"
    );
    assert!(!text.contains(&nobody), "token in clear");
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(
        lines.iter().any(|l| l["type"] == "request"
            && l["error"] == "permission denied"
            && l["request"]["path"] == "secret/data/s"),
        "denied request recorded"
    );
    // sys/audit-hash reproduces the logged HMAC.
    let h = t
        .data(
            Update,
            "sys/audit-hash/file",
            json!({"input": "correct-horse-battery"}),
            &t.root,
        )
        .await["hash"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(h.starts_with("hmac-sha256:"));
    assert!(text.contains(&h), "audit-hash matches the logged value");
    // Fail closed: a device that cannot write refuses every request.
    t.ok(
        tresor_sdk::Operation::Delete,
        "sys/audit/file",
        json!({}),
        &t.root,
    )
    .await;
    // A device that cannot write is refused at enable (tests/security_audit.rs); one that
    // breaks later (its directory removed, then reopened as on SIGHUP) blocks requests.
    let logs = dir.path().join("logs");
    std::fs::create_dir(&logs).unwrap();
    t.ok(
        Update,
        "sys/audit/full",
        json!({"type": "file", "options": {"file_path": logs.join("a.log").to_str().unwrap()}}),
        &t.root,
    )
    .await;
    std::fs::remove_dir_all(&logs).unwrap();
    t.core.unsealed().unwrap().audit.reload();
    let e = t
        .req(
            Update,
            "secret/data/s",
            json!({"data": {"password": "changed"}}),
            &t.root,
        )
        .await
        .unwrap_err();
    assert!(e.to_string().contains("audit"), "{e}");
    // And the refused write did not happen.
    let u = t.core.unsealed().unwrap();
    u.audit.disable(&u.barrier, "full/").await.unwrap();
    assert_eq!(
        t.data(Read, "secret/data/s", json!({}), &t.root).await["data"]["password"],
        "correct-horse-battery"
    );
}

#[tokio::test]
async fn the_rotation_interval_rotates_the_barrier_key() {
    let (t, _) = core_with_leasing().await;
    let term = |d: serde_json::Map<String, Value>| d["term"].as_u64().unwrap();
    let before = term(t.data(Read, "sys/key-status", json!({}), &t.root).await);
    // Unset, the interval reads as the number 0; set, as a Go duration (Vault's shapes).
    let cfg = t.data(Read, "sys/rotate/config", json!({}), &t.root).await;
    assert_eq!(cfg["interval"], json!(0), "{cfg:?}");
    t.ok(
        Update,
        "sys/rotate/config",
        json!({"interval": "24h"}),
        &t.root,
    )
    .await;
    let cfg = t.data(Read, "sys/rotate/config", json!({}), &t.root).await;
    assert_eq!(cfg["interval"], json!("24h0m0s"), "{cfg:?}");
    t.core.maintenance_tick(now() + 3600).await.unwrap();
    assert_eq!(
        term(t.data(Read, "sys/key-status", json!({}), &t.root).await),
        before,
        "not due after an hour"
    );
    t.core.maintenance_tick(now() + 25 * 3600).await.unwrap();
    assert_eq!(
        term(t.data(Read, "sys/key-status", json!({}), &t.root).await),
        before + 1,
        "rotated once the interval elapsed"
    );
    // Disabled rotation never rotates.
    t.ok(
        Update,
        "sys/rotate/config",
        json!({"enabled": false}),
        &t.root,
    )
    .await;
    t.core.maintenance_tick(now() + 100 * 3600).await.unwrap();
    assert_eq!(
        term(t.data(Read, "sys/key-status", json!({}), &t.root).await),
        before + 1
    );
}

/// The engine is handed the request's data by value only when nothing reads it again; with an
/// audit device enabled both entries of a request still carry its data (HMAC'd), and the
/// engine still gets it.
#[tokio::test]
async fn audited_requests_keep_their_data_in_both_entries() {
    let (t, _) = core_with_leasing().await;
    // Without a device: the engine gets the data (it is stored and read back).
    t.ok(
        Update,
        "secret/data/before",
        json!({"data": {"k": "before-audit-value"}}),
        &t.root,
    )
    .await;
    assert_eq!(
        t.data(Read, "secret/data/before", json!({}), &t.root).await["data"]["k"],
        "before-audit-value"
    );
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("audit.log");
    t.ok(
        Update,
        "sys/audit/file",
        json!({"type": "file", "options": {"file_path": log.to_str().unwrap()}}),
        &t.root,
    )
    .await;
    t.ok(
        Update,
        "secret/data/audited",
        json!({"data": {"k": "audited-value"}}),
        &t.root,
    )
    .await;
    assert_eq!(
        t.data(Read, "secret/data/audited", json!({}), &t.root)
            .await["data"]["k"],
        "audited-value"
    );
    let text = std::fs::read_to_string(&log).unwrap();
    let writes: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|l| {
            l["request"]["path"] == "secret/data/audited" && l["request"]["operation"] != "read"
        })
        .collect();
    assert_eq!(writes.len(), 2, "a request and a response entry: {text}");
    for e in &writes {
        let k = e["request"]["data"]["data"]["k"]
            .as_str()
            .unwrap_or_default();
        assert!(k.starts_with("hmac-sha256:"), "request data in {e}");
    }
}
