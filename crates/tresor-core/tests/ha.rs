//! Issue 17: high availability in the core. Three cores share one in-memory storage and its
//! in-process leader lock, as three servers share etcd: one is active, the others are
//! standbys that follow its writes through the change feed, never write, and take over when
//! the active node steps down or loses the lock. Background work runs on the active node only.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime};

use serde_json::{Map, Value, json};
use tresor_core::barrier::Key;
use tresor_core::ha::{HaConfig, HaRole, StandbyOutcome};
use tresor_core::{Core, CoreConfig, CoreError, CoreRequest, CoreResponse};
use tresor_physical::{
    Backend, Check, InProcessLock, InmemBackend, LeaderLock, Op, Snapshot, Watcher,
};
use tresor_sdk::Operation::{self, Delete, List, Read, Update};

/// In-memory storage whose leader lock the test holds, to depose the holder.
struct Shared {
    inner: InmemBackend,
    lock: Arc<InProcessLock>,
}

#[async_trait::async_trait]
impl Backend for Shared {
    async fn get(&self, key: &str) -> tresor_physical::Result<Option<Vec<u8>>> {
        self.inner.get(key).await
    }
    async fn transaction(&self, ops: Vec<Op>) -> tresor_physical::Result<()> {
        self.inner.transaction(ops).await
    }
    async fn list(&self, prefix: &str) -> tresor_physical::Result<Vec<String>> {
        self.inner.list(prefix).await
    }
    fn kind(&self) -> &'static str {
        "inmem"
    }
    fn durable(&self) -> bool {
        false
    }
    async fn get_with_revision(
        &self,
        key: &str,
    ) -> tresor_physical::Result<Option<(Vec<u8>, u64)>> {
        self.inner.get_with_revision(key).await
    }
    async fn revision(&self) -> tresor_physical::Result<u64> {
        self.inner.revision().await
    }
    async fn transaction_if(
        &self,
        checks: Vec<Check>,
        ops: Vec<Op>,
    ) -> tresor_physical::Result<u64> {
        self.inner.transaction_if(checks, ops).await
    }
    async fn watch(&self, prefix: &str, from: u64) -> tresor_physical::Result<Watcher> {
        self.inner.watch(prefix, from).await
    }
    async fn delete_prefix(&self, prefix: &str) -> tresor_physical::Result<u64> {
        self.inner.delete_prefix(prefix).await
    }
    async fn list_page(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> tresor_physical::Result<(Vec<String>, Option<String>)> {
        self.inner.list_page(prefix, after, limit).await
    }
    async fn snapshot(&self) -> tresor_physical::Result<Box<dyn Snapshot>> {
        self.inner.snapshot().await
    }
    fn leader_lock(&self) -> Option<Arc<dyn LeaderLock>> {
        Some(self.lock.clone())
    }
}

/// A clock 120 times faster than the wall clock: the engines' once-a-minute periodic work
/// is due at every tick of the background loop.
struct Fast(SystemTime, Instant);

impl tresor_sdk::clock::Clock for Fast {
    fn now(&self) -> SystemTime {
        self.0 + self.1.elapsed() * 120
    }
}

/// An engine that counts its periodic runs, per node.
struct Probe(Arc<AtomicUsize>);

#[async_trait::async_trait]
impl tresor_sdk::LogicalBackend for Probe {
    async fn handle(
        &self,
        _req: tresor_sdk::Request,
    ) -> tresor_sdk::Result<Option<tresor_sdk::Response>> {
        Ok(None)
    }
    fn help(&self, _path: &str) -> Option<Map<String, Value>> {
        None
    }
    async fn periodic(&self, _ctx: &tresor_sdk::Context) -> tresor_sdk::Result<()> {
        self.0.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

struct Node {
    core: Core,
    periodic: Arc<AtomicUsize>,
}

fn node(storage: &Arc<Shared>, id: &str, fast: bool) -> Node {
    let mut ha = HaConfig::new(id, format!("http://{id}.test:8200"));
    ha.cluster_addr = format!("https://{id}.test:8201");
    ha.step_down_wait = Duration::from_secs(2);
    let mut cfg = CoreConfig {
        ha: Some(ha),
        ..CoreConfig::default()
    };
    if fast {
        cfg.clock = Arc::new(Fast(SystemTime::now(), Instant::now()));
    }
    let mut core = Core::new(storage.clone(), cfg);
    core.register_engine("kv", Arc::new(|_| Ok(tresor_kv::backend())));
    let periodic = Arc::new(AtomicUsize::new(0));
    let p = periodic.clone();
    core.register_engine(
        "probe",
        Arc::new(move |_| Ok(Arc::new(Probe(p.clone())) as Arc<dyn tresor_sdk::LogicalBackend>)),
    );
    Node { core, periodic }
}

async fn wait_role(core: &Core, role: HaRole) {
    let t = Instant::now();
    while core.ha_role() != Some(role) {
        assert!(
            // A bound, not a timing claim: a loaded 2-core CI machine once took over 5 s.
            t.elapsed() < Duration::from_secs(20),
            "no {role:?} within 20 s (is {:?})",
            core.ha_role()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

struct Cluster {
    storage: Arc<Shared>,
    nodes: Vec<Node>,
    key: Key,
}

/// Three nodes: `a` initialised and active, `b` and `c` unsealed standbys.
async fn cluster(fast: bool) -> Cluster {
    let storage = Arc::new(Shared {
        inner: InmemBackend::new(),
        lock: Arc::new(InProcessLock::new()),
    });
    let a = node(&storage, "a", fast);
    let (key, _root) = a.core.init_dev(Some("root".into())).await.unwrap();
    let key = Key::from_slice(&key).unwrap();
    wait_role(&a.core, HaRole::Active).await;
    let mut nodes = vec![a];
    for id in ["b", "c"] {
        let n = node(&storage, id, fast);
        n.core.unseal_with_key(&key).await.unwrap();
        wait_role(&n.core, HaRole::Standby).await;
        nodes.push(n);
    }
    let c = Cluster {
        storage,
        nodes,
        key,
    };
    req(
        &c.nodes[0].core,
        Update,
        "sys/mounts/secret",
        json!({"type": "kv", "options": {"version": "2"}}),
        "root",
    )
    .await
    .unwrap();
    c
}

fn obj(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => panic!("object"),
    }
}

async fn req(
    core: &Core,
    op: Operation,
    path: &str,
    data: Value,
    token: &str,
) -> Result<CoreResponse, CoreError> {
    let Value::Object(m) = data else {
        panic!("object")
    };
    core.handle(CoreRequest::new(op, path, m, Some(token)))
        .await
}

/// Waits until `standby` has applied everything `active` has written.
async fn caught_up(active: &Core, standby: &Core) {
    let idx = active.storage_index().unwrap();
    assert!(
        standby.wait_for_index(idx, Duration::from_secs(5)).await,
        "standby did not reach index {idx}"
    );
}

fn active(c: &Cluster) -> Option<usize> {
    let act: Vec<usize> = (0..c.nodes.len())
        .filter(|i| c.nodes[*i].core.ha_role() == Some(HaRole::Active))
        .collect();
    assert!(act.len() <= 1, "two active nodes: {act:?}");
    act.first().copied()
}

async fn wait_new_active(c: &Cluster, not: usize) -> usize {
    let t = Instant::now();
    loop {
        if let Some(i) = active(c)
            && i != not
        {
            return i;
        }
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "no new active node within 5 s"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_active_two_standbys_and_sys_leader() {
    let c = cluster(false).await;
    assert_eq!(active(&c), Some(0));
    for n in &c.nodes[1..] {
        assert_eq!(n.core.ha_role(), Some(HaRole::Standby));
    }
    let l = c.nodes[0].core.leader_status().await;
    assert!(l.ha_enabled && l.is_self);
    assert_eq!(l.leader_address, "http://a.test:8200");
    assert_eq!(l.leader_cluster_address, "https://a.test:8201");
    assert!(!l.active_time.starts_with("0001"));
    let l = c.nodes[1].core.leader_status().await;
    assert!(l.ha_enabled && !l.is_self && l.performance_standby);
    assert_eq!(l.leader_address, "http://a.test:8200");
    assert_eq!(
        c.nodes[2].core.active_api_addr(true).await.as_deref(),
        Some("http://a.test:8200")
    );
    // Without HA configured, nothing of this is on.
    let plain = Core::new(Arc::new(InmemBackend::new()), CoreConfig::default());
    assert!(!plain.ha_enabled());
    assert!(!plain.leader_status().await.ha_enabled);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_on_the_active_reach_standbys_through_invalidation() {
    let c = cluster(false).await;
    let (a, b) = (&c.nodes[0].core, &c.nodes[1].core);
    // KV.
    req(
        a,
        Update,
        "secret/data/app",
        json!({"data": {"v": 1}}),
        "root",
    )
    .await
    .unwrap();
    caught_up(a, b).await;
    let r = req(b, Read, "secret/data/app", json!({}), "root")
        .await
        .unwrap();
    assert_eq!(r.response.unwrap().data.unwrap()["data"]["v"], 1);
    // A policy, then a token with it: read allowed on the standby.
    req(
        a,
        Update,
        "sys/policies/acl/p",
        json!({"policy": r#"path "secret/data/*" { capabilities = ["read"] }"#}),
        "root",
    )
    .await
    .unwrap();
    let tok = req(
        a,
        Update,
        "auth/token/create",
        json!({"policies": ["p"]}),
        "root",
    )
    .await
    .unwrap()
    .auth
    .unwrap()["client_token"]
        .as_str()
        .unwrap()
        .to_owned();
    caught_up(a, b).await;
    req(b, Read, "secret/data/app", json!({}), &tok)
        .await
        .unwrap();
    // The policy changes on the active: the standby's cached ACL follows.
    req(
        a,
        Update,
        "sys/policies/acl/p",
        json!({"policy": r#"path "secret/data/*" { capabilities = ["deny"] }"#}),
        "root",
    )
    .await
    .unwrap();
    caught_up(a, b).await;
    assert!(matches!(
        req(b, Read, "secret/data/app", json!({}), &tok).await,
        Err(CoreError::PermissionDenied)
    ));
    // The token is revoked on the active: the standby's token cache follows.
    req(
        a,
        Update,
        "sys/policies/acl/p",
        json!({"policy": r#"path "secret/data/*" { capabilities = ["read"] }"#}),
        "root",
    )
    .await
    .unwrap();
    caught_up(a, b).await;
    req(b, Read, "secret/data/app", json!({}), &tok)
        .await
        .unwrap();
    req(
        a,
        Update,
        "auth/token/revoke",
        json!({"token": tok}),
        "root",
    )
    .await
    .unwrap();
    caught_up(a, b).await;
    assert!(matches!(
        req(b, Read, "secret/data/app", json!({}), &tok).await,
        Err(CoreError::PermissionDenied)
    ));
    // A new mount and a key rotation on the active; then an unmount.
    req(
        a,
        Update,
        "sys/mounts/kv2",
        json!({"type": "kv", "options": {"version": "2"}}),
        "root",
    )
    .await
    .unwrap();
    req(a, Update, "sys/rotate", json!({}), "root")
        .await
        .unwrap();
    req(a, Update, "kv2/data/x", json!({"data": {"n": 7}}), "root")
        .await
        .unwrap();
    caught_up(a, b).await;
    let r = req(b, Read, "kv2/data/x", json!({}), "root").await.unwrap();
    assert_eq!(r.response.unwrap().data.unwrap()["data"]["n"], 7);
    req(a, Delete, "sys/mounts/kv2", json!({}), "root")
        .await
        .unwrap();
    caught_up(a, b).await;
    assert!(matches!(
        req(b, Read, "kv2/data/x", json!({}), "root").await,
        Err(CoreError::NoRoute(_))
    ));
    // A KV metadata delete (a prefix deletion inside a mount) on the active.
    req(a, Delete, "secret/metadata/app", json!({}), "root")
        .await
        .unwrap();
    caught_up(a, b).await;
    assert!(
        req(b, Read, "secret/data/app", json!({}), "root")
            .await
            .map(|r| r.response.and_then(|r| r.data).is_none())
            .unwrap_or(true)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standby_never_writes_and_says_so() {
    let c = cluster(false).await;
    let (a, b) = (&c.nodes[0].core, &c.nodes[1].core);
    req(
        a,
        Update,
        "secret/data/app",
        json!({"data": {"v": 1}}),
        "root",
    )
    .await
    .unwrap();
    caught_up(a, b).await;
    let before = c.storage.revision().await.unwrap();
    // A write on the standby fails before storage, and is reported as one to forward.
    let out = b
        .run_on_standby(CoreRequest::new(
            Update,
            "secret/data/app",
            obj(json!({"data": {"v": 2}})),
            Some("root"),
        ))
        .await;
    match out {
        StandbyOutcome::Forward => {}
        StandbyOutcome::Served(r) => panic!("a write was served on the standby: {r:?}"),
    }
    // A read is served.
    let out = b
        .run_on_standby(CoreRequest::new(
            Read,
            "secret/data/app",
            Map::new(),
            Some("root"),
        ))
        .await;
    match out {
        StandbyOutcome::Served(Ok(r)) => {
            assert_eq!(r.response.unwrap().data.unwrap()["data"]["v"], 1)
        }
        _ => panic!("a KV read is served on the standby"),
    }
    // Token creation, a policy write, a mount: none reaches storage.
    for (op, path, body) in [
        (Update, "auth/token/create", json!({})),
        (
            Update,
            "sys/policies/acl/x",
            json!({"policy": "path \"*\" { capabilities = [\"read\"] }"}),
        ),
        (Update, "sys/mounts/other", json!({"type": "kv"})),
    ] {
        assert!(
            req(b, op, path, body, "root").await.is_err(),
            "{path} failed on the standby"
        );
    }
    assert_eq!(
        c.storage.revision().await.unwrap(),
        before,
        "the standby wrote"
    );
    // What a standby answers itself, and what it sends on.
    assert!(b.standby_may_serve(Read, "secret/data/app"));
    assert!(b.standby_may_serve(List, "secret/metadata/"));
    assert!(!b.standby_may_serve(Update, "secret/data/app"));
    assert!(b.standby_may_serve(Read, "auth/token/lookup-self"));
    assert!(!b.standby_may_serve(Update, "auth/token/create"));
    assert!(!b.standby_may_serve(Read, "sys/mounts"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn step_down_moves_leadership() {
    let c = cluster(false).await;
    let a = &c.nodes[0].core;
    req(
        a,
        Update,
        "secret/data/k",
        json!({"data": {"v": "before"}}),
        "root",
    )
    .await
    .unwrap();
    a.step_down();
    let new = wait_new_active(&c, 0).await;
    wait_role(a, HaRole::Standby).await;
    let n = &c.nodes[new].core;
    // The new active serves and writes; the old one follows it as a standby.
    let r = req(n, Read, "secret/data/k", json!({}), "root")
        .await
        .unwrap();
    assert_eq!(r.response.unwrap().data.unwrap()["data"]["v"], "before");
    req(
        n,
        Update,
        "secret/data/k",
        json!({"data": {"v": "after"}}),
        "root",
    )
    .await
    .unwrap();
    caught_up(n, a).await;
    let r = req(a, Read, "secret/data/k", json!({}), "root")
        .await
        .unwrap();
    assert_eq!(r.response.unwrap().data.unwrap()["data"]["v"], "after");
    let l = a.leader_status().await;
    assert!(!l.is_self);
    assert_eq!(
        l.leader_address,
        format!("http://{}.test:8200", ["a", "b", "c"][new])
    );
    // The old active cannot write now.
    assert!(
        req(
            a,
            Update,
            "secret/data/k",
            json!({"data": {"v": "x"}}),
            "root"
        )
        .await
        .is_err()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn background_work_runs_on_the_active_only_and_stops_when_leadership_is_lost() {
    let c = cluster(true).await;
    req(
        &c.nodes[0].core,
        Update,
        "sys/mounts/probe",
        json!({"type": "probe"}),
        "root",
    )
    .await
    .unwrap();
    caught_up(&c.nodes[0].core, &c.nodes[1].core).await;
    caught_up(&c.nodes[0].core, &c.nodes[2].core).await;
    // Every node has the probe mounted; only the active runs its periodic work.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(
        c.nodes[0].periodic.load(Ordering::SeqCst) >= 1,
        "the active ran no periodic work"
    );
    assert_eq!(c.nodes[1].periodic.load(Ordering::SeqCst), 0);
    assert_eq!(c.nodes[2].periodic.load(Ordering::SeqCst), 0);
    // The lock is taken from the active (its lease expired, say): it becomes a standby at
    // once and its background work stops; another node takes over the work.
    c.storage.lock.depose();
    wait_role(&c.nodes[0].core, HaRole::Standby).await;
    let new = wait_new_active(&c, 0).await;
    let stopped_at = c.nodes[0].periodic.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(
        c.nodes[0].periodic.load(Ordering::SeqCst),
        stopped_at,
        "the deposed node kept running background work"
    );
    assert!(
        c.nodes[new].periodic.load(Ordering::SeqCst) >= 1,
        "the new active ran nothing"
    );
    let other = 3 - new;
    assert_eq!(c.nodes[other].periodic.load(Ordering::SeqCst), 0);
    // The deposed node cannot write, and follows the new active.
    let a = &c.nodes[0].core;
    assert!(
        req(
            a,
            Update,
            "secret/data/z",
            json!({"data": {"v": 1}}),
            "root"
        )
        .await
        .is_err()
    );
    let n = &c.nodes[new].core;
    req(
        n,
        Update,
        "secret/data/z",
        json!({"data": {"v": 2}}),
        "root",
    )
    .await
    .unwrap();
    caught_up(n, a).await;
    let r = req(a, Read, "secret/data/z", json!({}), "root")
        .await
        .unwrap();
    assert_eq!(r.response.unwrap().data.unwrap()["data"]["v"], 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leases_expire_on_the_active_only() {
    let c = cluster(false).await;
    let (a, b) = (&c.nodes[0].core, &c.nodes[1].core);
    let tok = req(a, Update, "auth/token/create", json!({"ttl": "2s"}), "root")
        .await
        .unwrap()
        .auth
        .unwrap()["client_token"]
        .as_str()
        .unwrap()
        .to_owned();
    caught_up(a, b).await;
    req(b, Read, "auth/token/lookup-self", json!({}), &tok)
        .await
        .unwrap();
    // The active's expiry loop revokes the token; the standby learns it from the feed.
    let t = Instant::now();
    loop {
        let gone = req(a, Read, "auth/token/lookup-self", json!({}), &tok)
            .await
            .is_err();
        if gone {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "the token did not expire"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    caught_up(a, b).await;
    assert!(
        req(b, Read, "auth/token/lookup-self", json!({}), &tok)
            .await
            .is_err()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echoes_list_standbys_and_forged_echoes_are_refused() {
    let c = cluster(false).await;
    let a = &c.nodes[0].core;
    for n in &c.nodes[1..] {
        let echo = n.core.ha_echo().expect("a standby echoes");
        a.ha_receive_echo(&echo).unwrap();
    }
    let st = a.ha_status().unwrap();
    let nodes = st["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 3);
    assert_eq!(nodes[0]["api_address"], "http://a.test:8200");
    assert_eq!(nodes[0]["active_node"], true);
    assert!(nodes[0]["last_echo"].is_null());
    assert_eq!(nodes[1]["api_address"], "http://b.test:8200");
    assert_eq!(nodes[1]["active_node"], false);
    assert!(nodes[1]["last_echo"].is_string());
    // Tampered, or made without the cluster's keys: refused.
    let mut forged = c.nodes[1].core.ha_echo().unwrap();
    forged["node"]["api_addr"] = json!("http://evil.test:8200");
    assert!(matches!(
        a.ha_receive_echo(&forged),
        Err(CoreError::PermissionDenied)
    ));
    let stranger = node(&c.storage, "x", false);
    assert!(
        stranger.core.ha_echo().is_none(),
        "a sealed node has nothing to echo"
    );
    // The active node itself does not echo.
    assert!(a.ha_echo().is_none());
    let _ = &c.key;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sealed_active_releases_the_lock() {
    let c = cluster(false).await;
    c.nodes[0].core.seal().await.unwrap();
    assert_eq!(c.nodes[0].core.ha_role(), Some(HaRole::Sealed));
    let new = wait_new_active(&c, 0).await;
    req(
        &c.nodes[new].core,
        Update,
        "secret/data/s",
        json!({"data": {"v": 1}}),
        "root",
    )
    .await
    .unwrap();
    // Unsealed again, it comes back as a standby.
    c.nodes[0].core.unseal_with_key(&c.key).await.unwrap();
    wait_role(&c.nodes[0].core, HaRole::Standby).await;
    caught_up(&c.nodes[new].core, &c.nodes[0].core).await;
    let r = req(&c.nodes[0].core, Read, "secret/data/s", json!({}), "root")
        .await
        .unwrap();
    assert_eq!(r.response.unwrap().data.unwrap()["data"]["v"], 1);
}
