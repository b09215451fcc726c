//! Issue 11, engine lifecycle: `initialize` before the first request (mount and unseal),
//! `periodic` on a schedule driven by the injected clock, `cleanup` on seal (after the requests
//! in flight), remount and unmount.

mod common;

use std::sync::Arc;

use common::dev_core_with;
use parking_lot::Mutex;
use serde_json::{Map, Value, json};
use tresor_core::CoreError;
use tresor_sdk::Operation::{Delete, Read, Update};
use tresor_sdk::{Context, LogicalBackend, Request, Response, Result};

/// Records every lifecycle call and request, in order, as `"<event> <mount>"`.
#[derive(Default)]
struct Journal(Mutex<Vec<String>>);

impl Journal {
    fn push(&self, e: String) {
        self.0.lock().push(e);
    }
    fn events(&self) -> Vec<String> {
        self.0.lock().clone()
    }
    fn count(&self, prefix: &str) -> usize {
        self.0
            .lock()
            .iter()
            .filter(|e| e.starts_with(prefix))
            .count()
    }
}

struct Probe {
    journal: Arc<Journal>,
    gate: Arc<tokio::sync::Notify>,
}

#[async_trait::async_trait]
impl LogicalBackend for Probe {
    async fn handle(&self, req: Request) -> Result<Option<Response>> {
        if req.path == "slow" {
            self.journal.push("slow started".into());
            self.gate.notified().await;
            // Storage still works: the barrier outlives the seal for requests in flight.
            req.storage.put("slow", b"done".to_vec()).await?;
            self.journal.push("slow finished".into());
        }
        let mut m = Map::new();
        m.insert("path".into(), Value::String(req.path.clone()));
        Ok(Some(Response::data(m)))
    }
    fn help(&self, _path: &str) -> Option<Map<String, Value>> {
        None
    }
    async fn initialize(&self, ctx: &Context) -> Result<()> {
        self.journal
            .push(format!("initialize {}", ctx.mount.mount_point));
        Ok(())
    }
    async fn periodic(&self, ctx: &Context) -> Result<()> {
        self.journal.push(format!(
            "periodic {} {}",
            ctx.mount.mount_point,
            tresor_sdk::clock::unix(ctx.now)
        ));
        Ok(())
    }
    async fn cleanup(&self) {
        self.journal.push("cleanup".into());
    }
    async fn invalidate(&self, ctx: &Context, key: &str) {
        self.journal
            .push(format!("invalidate {} {key}", ctx.mount.mount_point));
    }
}

async fn core_with_probe() -> (common::TestCore, Arc<Journal>, Arc<tokio::sync::Notify>) {
    let journal = Arc::new(Journal::default());
    let gate = Arc::new(tokio::sync::Notify::new());
    let (j, g) = (journal.clone(), gate.clone());
    let t = dev_core_with(move |c| {
        c.register_engine(
            "probe",
            Arc::new(move |_| {
                Ok(Arc::new(Probe {
                    journal: j.clone(),
                    gate: g.clone(),
                }))
            }),
        )
    })
    .await;
    (t, journal, gate)
}

#[tokio::test]
async fn initialize_runs_on_mount_and_unseal_and_cleanup_on_unmount_and_remount() {
    let (t, j, _) = core_with_probe().await;
    t.ok(Update, "sys/mounts/p1", json!({"type": "probe"}), &t.root)
        .await;
    assert_eq!(j.events(), vec!["initialize p1/"]);
    t.ok(Read, "p1/x", json!({}), &t.root).await;

    t.ok(
        Update,
        "sys/remount",
        json!({"from": "p1", "to": "p2"}),
        &t.root,
    )
    .await;
    assert_eq!(
        j.events()[1..],
        ["initialize p2/".to_string(), "cleanup".to_string()],
        "{:?}",
        j.events()
    );
    t.ok(Delete, "sys/mounts/p2", json!({}), &t.root).await;
    assert_eq!(j.count("cleanup"), 2, "{:?}", j.events());

    // Unseal initializes every mount before it serves.
    t.ok(Update, "sys/mounts/p3", json!({"type": "probe"}), &t.root)
        .await;
    t.core.seal().await.unwrap();
    t.core.sealed_and_drained().await;
    assert_eq!(j.count("cleanup"), 3, "seal cleans up: {:?}", j.events());
    t.core
        .unseal_with_key(&tresor_core::barrier::Key::from_slice(&t.key).unwrap())
        .await
        .unwrap();
    assert_eq!(j.count("initialize p3/"), 2, "{:?}", j.events());
    t.ok(Read, "p3/x", json!({}), &t.root).await;
}

#[tokio::test]
async fn periodic_work_follows_the_injected_clock() {
    let (t, j, _) = core_with_probe().await;
    t.ok(Update, "sys/mounts/p", json!({"type": "probe"}), &t.root)
        .await;
    let t0 = 2_000_000_000;
    t.core.maintenance_tick(t0).await.unwrap();
    assert_eq!(j.count("periodic p/"), 1);
    assert!(j.events().contains(&format!("periodic p/ {t0}")));
    for at in [t0 + 1, t0 + 30, t0 + 59] {
        t.core.maintenance_tick(at).await.unwrap();
    }
    assert_eq!(j.count("periodic p/"), 1, "ran before a minute passed");
    t.core.maintenance_tick(t0 + 60).await.unwrap();
    assert_eq!(j.count("periodic p/"), 2);
    assert!(j.events().contains(&format!("periodic p/ {}", t0 + 60)));
}

#[tokio::test]
async fn a_seal_waits_for_requests_in_flight_before_cleaning_up() {
    let (t, j, gate) = core_with_probe().await;
    let t = Arc::new(t);
    t.ok(Update, "sys/mounts/p", json!({"type": "probe"}), &t.root)
        .await;
    let slow = {
        let t = t.clone();
        tokio::spawn(async move { t.req(Update, "p/slow", json!({}), &t.root).await })
    };
    while j.count("slow started") == 0 {
        tokio::task::yield_now().await;
    }
    t.core.seal().await.unwrap();
    // New requests see the seal at once.
    assert!(matches!(
        t.req(Read, "p/x", json!({}), &t.root).await,
        Err(CoreError::Sealed)
    ));
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    assert_eq!(
        j.count("cleanup"),
        0,
        "cleaned up under a request in flight"
    );
    gate.notify_one();
    let r = slow
        .await
        .unwrap()
        .expect("the request in flight completes");
    assert_eq!(r.response.unwrap().data.unwrap()["path"], "slow");
    t.core.sealed_and_drained().await;
    tokio::task::yield_now().await;
    let ev = j.events();
    let fin = ev.iter().position(|e| e == "slow finished").unwrap();
    let clean = ev.iter().position(|e| e == "cleanup");
    assert!(
        clean.is_some_and(|c| c > fin),
        "cleanup must follow the request in flight: {ev:?}"
    );
}

/// Echoes what the engine is told about the request's connection.
struct Echo;

#[async_trait::async_trait]
impl LogicalBackend for Echo {
    async fn handle(&self, req: Request) -> Result<Option<Response>> {
        let mut m = Map::new();
        m.insert("remote".into(), json!(req.connection.remote_addr));
        m.insert(
            "certs".into(),
            json!(req.connection.peer_certificates.len()),
        );
        m.insert("headers".into(), json!(req.headers));
        m.insert(
            "raw".into(),
            json!(req.raw_body.as_deref().map(<[u8]>::to_vec)),
        );
        m.insert(
            "deadline_in_future".into(),
            json!(req.deadline.is_some_and(|d| d > std::time::Instant::now())),
        );
        Ok(Some(Response::data(m)))
    }
    fn help(&self, _path: &str) -> Option<Map<String, Value>> {
        None
    }
}

/// Issue 11: engines see the connection facts (client address, TLS peer certificates), the
/// headers their mount lets through (never the token), a raw body, and their deadline.
#[tokio::test]
async fn engines_see_connection_facts_and_passthrough_headers() {
    let t = dev_core_with(|c| c.register_engine("echo", Arc::new(|_| Ok(Arc::new(Echo))))).await;
    t.ok(
        Update,
        "sys/mounts/echo",
        json!({"type": "echo", "config": {"passthrough_request_headers": ["X-Custom", "Authorization"]}}),
        &t.root,
    )
    .await;
    let mut r = tresor_core::CoreRequest::new(Read, "echo/x", Map::new(), Some(&t.root));
    r.remote_addr = Some("127.0.0.2".into());
    r.peer_certificates = vec![vec![1, 2, 3], vec![4]];
    r.raw_body = Some(vec![0x30, 0x03].into());
    r.headers = vec![
        ("x-custom".into(), "yes".into()),
        ("authorization".into(), "Bearer secret".into()),
        ("x-other".into(), "no".into()),
    ];
    let d = t
        .core
        .handle(r)
        .await
        .unwrap()
        .response
        .unwrap()
        .data
        .unwrap();
    assert_eq!(d["remote"], "127.0.0.2");
    assert_eq!(d["certs"], 2);
    assert_eq!(d["headers"], json!([["x-custom", "yes"]]), "{d:?}");
    assert_eq!(d["raw"], json!([48, 3]));
    assert_eq!(d["deadline_in_future"], true);
}

/// Issue 11: a storage key inside a mount's view reaches that engine's `invalidate`, relative
/// to its view.
#[tokio::test]
async fn invalidate_reaches_the_engine_that_owns_the_key() {
    let (t, j, _) = core_with_probe().await;
    t.ok(Update, "sys/mounts/p", json!({"type": "probe"}), &t.root)
        .await;
    let mounts = t.data(Read, "sys/mounts", json!({}), &t.root).await;
    let uuid = mounts["p/"]["uuid"].as_str().expect("uuid").to_owned();
    t.core
        .invalidate(&format!("logical/{uuid}/config/x"))
        .await
        .unwrap();
    assert!(
        j.events().contains(&"invalidate p/ config/x".to_string()),
        "{:?}",
        j.events()
    );
}
