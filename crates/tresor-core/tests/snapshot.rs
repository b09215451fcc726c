//! Issue 17, snapshots: taken while eight tasks write, restored into an uninitialised core that
//! then unseals with the first core's key and holds the same KV tree, policies and mounts; a
//! flipped byte fails inspect and verify; a snapshot with a recomputed checksum fails verify and
//! is refused; another cluster's snapshot needs `snapshot-force`; sudo is required.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use base64::Engine as _;
use common::{TestCore, dev_core};
use serde_json::{Map, Value, json};
use tresor_core::snapshot::{self, SnapshotError};
use tresor_core::{Core, CoreConfig, CoreError, CoreRequest, CoreResponse};
use tresor_physical::InmemBackend;
use tresor_sdk::Operation::{self, List, Read, Update};

/// Every test finishes within this or fails.
const LIMIT: Duration = Duration::from_secs(60);

async fn bounded<F: std::future::Future<Output = ()>>(f: F) {
    tokio::time::timeout(LIMIT, f)
        .await
        .expect("test took longer than its bound");
}

/// An uninitialised core on fresh in-memory storage, with KV registered.
fn blank_core() -> Core {
    let mut core = Core::new(Arc::new(InmemBackend::new()), CoreConfig::default());
    core.register_engine("kv", Arc::new(|_| Ok(tresor_kv::backend())));
    core
}

async fn call(
    core: &Core,
    op: Operation,
    path: &str,
    data: Value,
) -> Result<CoreResponse, CoreError> {
    let Value::Object(m) = data else {
        panic!("data must be an object")
    };
    core.handle(CoreRequest::new(op, path, m, Some("root")))
        .await
}

async fn data(core: &Core, op: Operation, path: &str) -> Map<String, Value> {
    call(core, op, path, json!({}))
        .await
        .unwrap_or_else(|e| panic!("{op:?} {path}: {e}"))
        .response
        .and_then(|r| r.data)
        .unwrap_or_default()
}

fn keys(m: &Map<String, Value>) -> Vec<String> {
    m.get("keys")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|k| k.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// Every secret under `secret/` (path → data and version), every policy, and the mounts
/// (path → type, options, uuid), as one comparable JSON value.
async fn digest(core: &Core) -> Value {
    let mut secrets = Map::new();
    let mut folders = vec![String::new()];
    while let Some(dir) = folders.pop() {
        let listed = match call(core, List, &format!("secret/metadata/{dir}"), json!({})).await {
            Ok(r) => r.response.and_then(|r| r.data).unwrap_or_default(),
            Err(CoreError::NotFound(_) | CoreError::NotFoundEmpty) => Map::new(),
            Err(e) => panic!("list {dir}: {e}"),
        };
        for k in keys(&listed) {
            let path = format!("{dir}{k}");
            if k.ends_with('/') {
                folders.push(path);
            } else {
                let d = data(core, Read, &format!("secret/data/{path}")).await;
                secrets.insert(
                    path,
                    json!({"data": d["data"], "version": d["metadata"]["version"]}),
                );
            }
        }
    }
    let mut policies = Map::new();
    for name in keys(&data(core, List, "sys/policies/acl/").await) {
        let p = data(core, Read, &format!("sys/policies/acl/{name}")).await;
        policies.insert(name, p["policy"].clone());
    }
    let mounts: Map<String, Value> = data(core, Read, "sys/mounts")
        .await
        .into_iter()
        .map(|(path, m)| (path, json!([m["type"], m["options"], m["uuid"]])))
        .collect();
    json!({"secrets": secrets, "policies": policies, "mounts": mounts})
}

/// Restores `bytes` into a fresh uninitialised core and unseals it with `t`'s key, as a share.
async fn restore_into_blank(bytes: &[u8], t: &TestCore) -> Core {
    let core = blank_core();
    assert!(!core.initialized().await.unwrap());
    let done = core.restore_uninitialized(bytes).await.expect("restore");
    assert_eq!(done.secret_threshold, 1);
    let st = core.seal_status().await.unwrap();
    assert!(st.initialized && st.sealed, "{st:?}");
    let share = base64::engine::general_purpose::STANDARD.encode(&t.key);
    let st = core.unseal(Some(&share), false).await.expect("unseal");
    assert!(!st.sealed);
    core
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_taken_under_eight_writers_restores_a_state_that_existed() {
    bounded(async {
        let t = dev_core().await;
        t.policy(
            "app",
            r#"path "secret/data/app/*" { capabilities = ["read"] }"#,
        )
        .await;
        t.ok(
            Update,
            "secret/data/app/db",
            json!({"data": {"password": "s3cret"}}),
            &t.root,
        )
        .await;
        t.ok(Update, "sys/mounts/kv1", json!({"type": "kv"}), &t.root)
            .await;
        t.ok(Update, "kv1/plain", json!({"v": "1"}), &t.root).await;

        // Eight writers: each overwrites its own secret (a new version every time) and adds
        // one key per write, strictly in order: a consistent copy shows, per writer, keys
        // 0..k with no gap and a current version matching its data.
        let stop = Arc::new(AtomicBool::new(false));
        let mut tasks = Vec::new();
        for w in 0..8 {
            let core = t.core.clone();
            let stop = stop.clone();
            tasks.push(tokio::spawn(async move {
                let mut n = 0u64;
                while !stop.load(Ordering::SeqCst) {
                    call(
                        &core,
                        Update,
                        &format!("secret/data/w{w}/cur"),
                        json!({"data": {"n": n}}),
                    )
                    .await
                    .expect("writer");
                    call(
                        &core,
                        Update,
                        &format!("secret/data/w{w}/k{n:05}"),
                        json!({"data": {"n": n}}),
                    )
                    .await
                    .expect("writer");
                    n += 1;
                }
                n
            }));
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        let started = std::time::Instant::now();
        let during = t.core.snapshot().await.expect("snapshot under load");
        let took = started.elapsed();
        tokio::time::sleep(Duration::from_millis(100)).await;
        stop.store(true, Ordering::SeqCst);
        let mut written = 0;
        for task in tasks {
            written += task.await.unwrap();
        }
        let m = snapshot::parse(&during).expect("inspect").manifest;
        eprintln!(
            "snapshot under load: {} entries, {} bytes, {took:?}; {written} rounds written in all",
            m.entries,
            during.len()
        );

        // The snapshot under load: internally consistent.
        let restored = restore_into_blank(&during, &t).await;
        let d = digest(&restored).await;
        for w in 0..8 {
            let mut ns: Vec<u64> = d["secrets"]
                .as_object()
                .unwrap()
                .iter()
                .filter(|(k, _)| k.starts_with(&format!("w{w}/k")))
                .map(|(_, v)| v["data"]["n"].as_u64().unwrap())
                .collect();
            ns.sort();
            assert!(
                ns.iter().enumerate().all(|(i, n)| *n == i as u64),
                "writer {w}: keys with a gap: {ns:?}"
            );
            if let Some(cur) = d["secrets"].get(format!("w{w}/cur")) {
                let n = cur["data"]["n"].as_u64().unwrap();
                assert_eq!(cur["version"].as_u64().unwrap(), n + 1, "writer {w}");
                // k(n) is written after cur(n): it exists only up to n.
                assert!(
                    ns.len() as u64 == n || ns.len() as u64 == n + 1,
                    "writer {w}: cur {n}, keys {}",
                    ns.len()
                );
            }
        }
        assert_eq!(d["secrets"]["app/db"]["data"]["password"], "s3cret");

        // Quiet now: a second snapshot restores exactly the same tree, policies and mounts.
        let quiet = t.core.snapshot().await.expect("snapshot");
        let copy = restore_into_blank(&quiet, &t).await;
        let (a, b) = (digest(&t.core).await, digest(&copy).await);
        assert_eq!(a, b);
        assert!(a["secrets"].as_object().unwrap().len() > 16);
        assert!(a["policies"].get("app").is_some());
        assert!(a["mounts"].get("kv1/").is_some());
        assert_eq!(data(&copy, Read, "kv1/plain").await["v"], "1");
        // The token store came along: the root token of the first core works on the copy.
        assert!(
            call(&copy, Read, "auth/token/lookup-self", json!({}))
                .await
                .is_ok()
        );

        // Offline verification with the key: every entry decrypts, counts per mount.
        let v = snapshot::verify_with_key(
            &quiet,
            &tresor_core::barrier::Key::from_slice(&t.key).unwrap(),
        )
        .expect("verify");
        assert_eq!(v.decrypted + 3, v.manifest.entries);
        let secret = v
            .mounts
            .iter()
            .find(|m| m.path == "secret/")
            .expect("secret/ counted");
        assert!(secret.entries > 16, "{secret:?}");
        assert!(v.mounts.iter().any(|m| m.path == "auth/token/"));
    })
    .await;
}

#[tokio::test]
async fn a_flipped_byte_fails_inspect_and_verify() {
    bounded(async {
        let t = dev_core().await;
        t.ok(
            Update,
            "secret/data/a",
            json!({"data": {"x": "y"}}),
            &t.root,
        )
        .await;
        let good = t.core.snapshot().await.unwrap();
        let key = tresor_core::barrier::Key::from_slice(&t.key).unwrap();
        snapshot::parse(&good).expect("intact snapshot inspects");
        snapshot::verify_with_key(&good, &key).expect("intact snapshot verifies");
        let entries_at = good.len() / 2;
        for at in [
            3,
            12,
            entries_at,
            good.len() - 70,
            good.len() - 40,
            good.len() - 1,
        ] {
            let mut bad = good.clone();
            bad[at] ^= 0x01;
            assert!(
                matches!(snapshot::parse(&bad), Err(SnapshotError::Corrupt(_))),
                "byte {at}: inspect passed"
            );
            assert!(
                snapshot::verify_with_key(&bad, &key).is_err(),
                "byte {at}: verify passed"
            );
            // Neither restore path writes anything from it.
            let blank = blank_core();
            assert!(blank.restore_uninitialized(&bad).await.is_err());
            assert!(!blank.initialized().await.unwrap());
        }
        // A truncated file is corrupt too.
        assert!(snapshot::parse(&good[..good.len() - 1]).is_err());
        // The wrong unseal key does not verify.
        let wrong = tresor_core::barrier::Key::generate();
        assert!(matches!(
            snapshot::verify_with_key(&good, &wrong),
            Err(CoreError::InvalidUnsealKey)
        ));

        // Someone who alters an entry and recomputes the checksum passes inspect but not the
        // tag: verify fails and this cluster refuses it, even with force.
        let mut forged = good.clone();
        forged[entries_at] ^= 0x01;
        let n = forged.len();
        let sum = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &forged[..n - 32]);
        forged[n - 32..].copy_from_slice(sum.as_ref());
        // (The manifest's entry checksum catches it first when the byte is in an entry.)
        if snapshot::parse(&forged).is_ok() {
            assert!(snapshot::verify_with_key(&forged, &key).is_err());
        }
        let mut tagless = good.clone();
        tagless[n - 64] ^= 0x01; // inside the HMAC
        let sum = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &tagless[..n - 32]);
        tagless[n - 32..].copy_from_slice(sum.as_ref());
        snapshot::parse(&tagless).expect("checksum recomputed: inspect passes");
        assert!(matches!(
            snapshot::verify_with_key(&tagless, &key),
            Err(CoreError::InvalidRequest(m)) if m.contains("integrity tag")
        ));
        for path in [
            "sys/storage/raft/snapshot",
            "sys/storage/raft/snapshot-force",
        ] {
            let err = restore_call(&t, path, &tagless).await.unwrap_err();
            assert!(err.to_string().contains("altered"), "{path}: {err}");
        }
        assert!(!t.core.is_sealed());
    })
    .await;
}

async fn restore_call(t: &TestCore, path: &str, bytes: &[u8]) -> Result<CoreResponse, CoreError> {
    let mut r = CoreRequest::new(Update, path, Map::new(), Some(&t.root));
    r.raw_body = Some(Arc::from(bytes));
    t.core.handle(r).await
}

#[tokio::test]
async fn another_clusters_snapshot_needs_force_and_then_unseals_with_its_keys() {
    bounded(async {
        let first = dev_core().await;
        first
            .ok(
                Update,
                "secret/data/from-first",
                json!({"data": {"v": 1}}),
                &first.root,
            )
            .await;
        let bytes = first.core.snapshot().await.unwrap();
        let second = dev_core().await;
        second
            .ok(
                Update,
                "secret/data/only-second",
                json!({"data": {"v": 2}}),
                &second.root,
            )
            .await;

        let err = restore_call(&second, "sys/storage/raft/snapshot", &bytes)
            .await
            .unwrap_err();
        assert!(
            matches!(&err, CoreError::InvalidRequest(m) if m.contains("another cluster")),
            "{err}"
        );
        assert!(
            !second.core.is_sealed(),
            "a refused restore leaves the server as it was"
        );
        assert_eq!(
            second
                .data(Read, "secret/data/only-second", json!({}), &second.root)
                .await["data"]["v"],
            2
        );

        // Without a body, and without sudo: refused.
        assert!(
            restore_call(&second, "sys/storage/raft/snapshot", b"")
                .await
                .is_err()
        );
        second
            .policy(
                "ops",
                r#"path "sys/storage/raft/*" { capabilities = ["read", "update"] }"#,
            )
            .await;
        let ops = second.token(&["ops"], json!({})).await;
        let mut r = CoreRequest::new(
            Update,
            "sys/storage/raft/snapshot-force",
            Map::new(),
            Some(&ops),
        );
        r.raw_body = Some(Arc::from(&bytes[..]));
        assert!(matches!(
            second.core.handle(r).await,
            Err(CoreError::PermissionDenied)
        ));
        assert!(matches!(
            second
                .core
                .handle(CoreRequest::new(
                    Read,
                    "sys/storage/raft/snapshot",
                    Map::new(),
                    Some(&ops)
                ))
                .await,
            Err(CoreError::PermissionDenied)
        ));

        let r = restore_call(&second, "sys/storage/raft/snapshot-force", &bytes)
            .await
            .expect("forced restore");
        let resp = r.response.unwrap();
        assert!(
            resp.warnings.iter().any(|w| w.contains("sealed")),
            "{:?}",
            resp.warnings
        );
        assert_eq!(resp.data.unwrap()["tag_verified"], false);
        assert!(second.core.is_sealed());
        // seal-status waits for the restore's writes; then the snapshot's key unseals.
        let st = second.core.seal_status().await.unwrap();
        assert!(st.sealed && st.initialized);
        let theirs = base64::engine::general_purpose::STANDARD.encode(&second.key);
        assert!(second.core.unseal(Some(&theirs), false).await.is_err());
        let ours = base64::engine::general_purpose::STANDARD.encode(&first.key);
        second
            .core
            .unseal(Some(&ours), false)
            .await
            .expect("unseal with the snapshot's key");
        assert_eq!(
            data(&second.core, Read, "secret/data/from-first").await["data"]["v"],
            1
        );
        assert!(matches!(
            call(&second.core, Read, "secret/data/only-second", json!({})).await,
            Ok(CoreResponse { response: None, .. }) | Err(_)
        ));
    })
    .await;
}

#[tokio::test]
async fn restoring_this_clusters_snapshot_rolls_back_and_reseals() {
    bounded(async {
        let t = dev_core().await;
        t.ok(
            Update,
            "secret/data/keep",
            json!({"data": {"v": "old"}}),
            &t.root,
        )
        .await;
        let get = CoreRequest::new(Read, "sys/storage/raft/snapshot", Map::new(), Some(&t.root));
        let raw = t
            .core
            .handle(get)
            .await
            .unwrap()
            .response
            .unwrap()
            .raw
            .unwrap();
        assert_eq!(raw.content_type, "application/octet-stream");
        t.ok(
            Update,
            "secret/data/keep",
            json!({"data": {"v": "new"}}),
            &t.root,
        )
        .await;
        t.ok(
            Update,
            "secret/data/later",
            json!({"data": {"v": 1}}),
            &t.root,
        )
        .await;
        let r = restore_call(&t, "sys/storage/raft/snapshot", &raw.body)
            .await
            .expect("restore");
        assert_eq!(r.response.unwrap().data.unwrap()["tag_verified"], true);
        assert!(t.core.is_sealed());
        let share = base64::engine::general_purpose::STANDARD.encode(&t.key);
        t.core.unseal(Some(&share), false).await.expect("unseal");
        assert_eq!(
            data(&t.core, Read, "secret/data/keep").await["data"]["v"],
            "old"
        );
        let later = call(&t.core, Read, "secret/data/later", json!({})).await;
        assert!(
            !matches!(&later, Ok(CoreResponse { response: Some(r), .. }) if r.data.is_some()),
            "a key written after the snapshot is gone"
        );
    })
    .await;
}
