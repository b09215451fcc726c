//! High availability: one active node among the servers that share one storage, and standbys
//! that follow its writes.
//!
//! HA is on when the server config enables it ([`HaConfig`] in [`crate::CoreConfig`]) and the
//! storage offers a leader lock ([`tresor_physical::Backend::leader_lock`]). Then:
//!
//! - **Every node unseals separately** and, once unsealed, runs for leadership. The lock's
//!   value advertises the node id, `api_addr` and `cluster_addr` ([`LeaderValue`]).
//! - **Standbys never write.** The core's storage is wrapped in a gate ([`Gated`]) that refuses
//!   every write unless this node is active (or the store is not initialised yet, for
//!   `sys/init`). A request that tries to write on a standby fails before anything reaches
//!   storage, and the HTTP layer forwards it to the active node ([`Core::run_on_standby`]).
//!   The etcd backend adds its own fence (a write of a deposed leader fails in etcd itself).
//! - **Coherence.** From the revision read just before the unseal loaded its state, every node
//!   watches the storage change feed. A standby calls [`Core::invalidate`] for each changed
//!   key; a prefix deletion rebuilds the engine of that mount (or, outside mounts, reloads
//!   everything); a compacted history reloads everything. The last applied revision is the
//!   node's index ([`Core::storage_index`]); a request can make a standby wait for one
//!   ([`Core::wait_for_index`]).
//! - **Becoming active** reloads every store and engine from storage (as an unseal does), opens
//!   the gate and starts the background work (lease expiry, periodic engine work, key
//!   rotation): that work runs on the active node only. **Losing the lock** (lease expired,
//!   lock deposed) closes the gate at once, stops the background work and reloads the state
//!   as a standby; the node runs for leadership again. A **step-down** does the same, then
//!   waits [`HaConfig::step_down_wait`] before running again so that another node takes over.
//! - **Membership.** Standbys send an echo to the active node every [`ECHO_INTERVAL`],
//!   authenticated with a key derived from the root key ([`Core::ha_echo`]); the active lists
//!   the nodes it heard from in `sys/ha-status`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use async_trait::async_trait;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::watch;
use tresor_physical::{
    Backend, Check, Event, EventKind, LeaderLock, Op, PhysicalError, Snapshot, Watcher,
};

use crate::core::{Core, Inner, Unsealed};
use crate::error::CoreError;

/// How often a standby tells the active node it is there.
pub const ECHO_INTERVAL: Duration = Duration::from_secs(2);
/// A node not heard from for this long is dropped from `sys/ha-status`.
pub const ECHO_EXPIRY: Duration = Duration::from_secs(30);
/// An echo whose timestamp is further than this from the active node's clock is refused.
const ECHO_SKEW: i64 = 60;

/// The server's HA settings (Vault's `ha_enabled`, `api_addr`, `cluster_addr`).
#[derive(Debug, Clone)]
pub struct HaConfig {
    /// This node's id in the lock and in `sys/ha-status`; unique per server.
    pub node_id: String,
    /// Where clients reach this node (`api_addr`): standbys forward and redirect here.
    pub api_addr: String,
    /// Advertised as `leader_cluster_address` (`cluster_addr`). Tresor forwards over the API
    /// address; this is shown, not dialled.
    pub cluster_addr: String,
    /// Shown as `hostname` in `sys/ha-status`.
    pub hostname: String,
    /// Whether standbys answer reads themselves (as OpenBao does; `disable_standby_reads`
    /// turns it off and every request goes to the active node).
    pub standby_reads: bool,
    /// After `sys/step-down`, how long the node waits before running for leadership again
    /// (Vault waits 10 s).
    pub step_down_wait: Duration,
}

impl HaConfig {
    pub fn new(node_id: impl Into<String>, api_addr: impl Into<String>) -> Self {
        let node_id = node_id.into();
        HaConfig {
            hostname: node_id.clone(),
            node_id,
            api_addr: api_addr.into(),
            cluster_addr: String::new(),
            standby_reads: true,
            step_down_wait: Duration::from_secs(10),
        }
    }
}

/// This node's part in HA.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HaRole {
    /// Sealed: not running for leadership.
    Sealed,
    Standby,
    Active,
}

/// What the leader advertises in the lock's value.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct LeaderValue {
    pub node_id: String,
    pub api_addr: String,
    pub cluster_addr: String,
    #[serde(default)]
    pub hostname: String,
    #[serde(default)]
    pub version: String,
}

/// `sys/leader`.
#[derive(Debug, Clone, Serialize)]
pub struct LeaderStatus {
    pub ha_enabled: bool,
    pub is_self: bool,
    pub active_time: String,
    pub leader_address: String,
    pub leader_cluster_address: String,
    pub performance_standby: bool,
    pub performance_standby_last_remote_wal: u64,
}

/// The write gate between a HA node's core and its storage.
#[derive(Debug)]
pub(crate) struct Gate {
    open: AtomicBool,
    /// The revision of the newest write that passed the gate.
    last_write: AtomicU64,
    /// How many writes the gate refused.
    refusals: AtomicU64,
}

impl Gate {
    fn set(&self, open: bool) {
        self.open.store(open, Ordering::SeqCst);
    }
}

tokio::task_local! {
    /// Set when the gate refuses a write of the request running in this task.
    static REFUSED: std::cell::Cell<bool>;
}

/// What the error of a refused write says.
const REFUSED_WRITE: &str = "writes on a standby node";

/// The error of a write the gate refused.
fn refused(gate: &Gate) -> PhysicalError {
    let _ = REFUSED.try_with(|r| r.set(true));
    gate.refusals.fetch_add(1, Ordering::SeqCst);
    PhysicalError::Unsupported(REFUSED_WRITE)
}

/// A HA node's storage: reads pass, writes only while the gate is open. Every write goes
/// through [`Backend::transaction_if`] so its revision is known (the node's index).
pub(crate) struct Gated {
    inner: Arc<dyn Backend>,
    gate: Arc<Gate>,
}

impl Gated {
    fn check(&self) -> tresor_physical::Result<()> {
        if self.gate.open.load(Ordering::SeqCst) {
            Ok(())
        } else {
            Err(refused(&self.gate))
        }
    }

    fn wrote(&self, rev: u64) -> u64 {
        self.gate.last_write.fetch_max(rev, Ordering::SeqCst);
        rev
    }
}

#[async_trait]
impl Backend for Gated {
    async fn get(&self, key: &str) -> tresor_physical::Result<Option<Vec<u8>>> {
        self.inner.get(key).await
    }
    async fn transaction(&self, ops: Vec<Op>) -> tresor_physical::Result<()> {
        self.check()?;
        let rev = self.inner.transaction_if(Vec::new(), ops).await?;
        self.wrote(rev);
        Ok(())
    }
    async fn list(&self, prefix: &str) -> tresor_physical::Result<Vec<String>> {
        self.inner.list(prefix).await
    }
    fn kind(&self) -> &'static str {
        self.inner.kind()
    }
    fn durable(&self) -> bool {
        self.inner.durable()
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
        self.check()?;
        let rev = self.inner.transaction_if(checks, ops).await?;
        Ok(self.wrote(rev))
    }
    async fn watch(&self, prefix: &str, from: u64) -> tresor_physical::Result<Watcher> {
        self.inner.watch(prefix, from).await
    }
    async fn delete_prefix(&self, prefix: &str) -> tresor_physical::Result<u64> {
        self.check()?;
        let rev = self.inner.delete_prefix(prefix).await?;
        Ok(self.wrote(rev))
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
        self.inner.leader_lock()
    }
    fn invalidate_cache(&self, event: &tresor_physical::Event) {
        self.inner.invalidate_cache(event);
    }
    fn clear_cache(&self) {
        self.inner.clear_cache();
    }
    fn set_cache_enabled(&self, on: bool) {
        self.inner.set_cache_enabled(on);
    }
}

/// A node the active one heard from.
#[derive(Debug, Clone)]
struct Peer {
    value: LeaderValue,
    last_echo: std::time::SystemTime,
}

/// A HA node's state; see the module docs.
pub(crate) struct Ha {
    pub(crate) cfg: HaConfig,
    lock: Arc<dyn LeaderLock>,
    pub(crate) gate: Arc<Gate>,
    role: watch::Sender<HaRole>,
    /// The newest revision whose change this node has applied (or made).
    applied: watch::Sender<u64>,
    /// Bumped by `sys/step-down`.
    step_down: watch::Sender<u64>,
    active_since: Mutex<Option<std::time::SystemTime>>,
    /// The current unseal's leadership loop and its stop signal.
    run: Mutex<Option<watch::Sender<bool>>>,
    peers: Mutex<HashMap<String, Peer>>,
    /// The active node as last looked up, and when.
    leader_cache: Mutex<Option<(std::time::Instant, Option<LeaderValue>)>>,
}

impl Ha {
    /// HA for a core on `physical`, if configured and the storage has a lock. Returns the
    /// storage the core must use (the gated one).
    pub(crate) fn new(
        cfg: Option<HaConfig>,
        physical: Arc<dyn Backend>,
    ) -> (Arc<dyn Backend>, Option<Arc<Ha>>) {
        let (Some(cfg), Some(lock)) = (cfg, physical.leader_lock()) else {
            return (physical, None);
        };
        // Open until the first unseal: an uninitialised store must take `sys/init`.
        let gate = Arc::new(Gate {
            open: AtomicBool::new(true),
            last_write: AtomicU64::new(0),
            refusals: AtomicU64::new(0),
        });
        let gated: Arc<dyn Backend> = Arc::new(Gated {
            inner: physical,
            gate: gate.clone(),
        });
        let ha = Ha {
            cfg,
            lock,
            gate,
            role: watch::channel(HaRole::Sealed).0,
            applied: watch::channel(0).0,
            step_down: watch::channel(0).0,
            active_since: Mutex::new(None),
            run: Mutex::new(None),
            peers: Mutex::new(HashMap::new()),
            leader_cache: Mutex::new(None),
        };
        (gated, Some(Arc::new(ha)))
    }

    /// Closes the write gate (a standby's unseal, before anything is loaded).
    pub(crate) fn gate_close(&self) {
        self.gate.set(false);
    }

    pub(crate) fn role(&self) -> HaRole {
        *self.role.borrow()
    }

    fn set_role(&self, r: HaRole) {
        self.role.send_replace(r);
    }

    fn applied(&self, rev: u64) {
        self.applied.send_if_modified(|a| {
            let newer = rev > *a;
            *a = (*a).max(rev);
            newer
        });
    }

    fn value(&self) -> LeaderValue {
        LeaderValue {
            node_id: self.cfg.node_id.clone(),
            api_addr: self.cfg.api_addr.clone(),
            cluster_addr: self.cfg.cluster_addr.clone(),
            hostname: self.cfg.hostname.clone(),
            version: crate::VERSION.into(),
        }
    }

    /// The active node, from the lock (cached for a second unless `fresh`).
    async fn leader(&self, fresh: bool) -> Option<LeaderValue> {
        if !fresh
            && let Some((at, v)) = self.leader_cache.lock().clone()
            && at.elapsed() < Duration::from_secs(1)
        {
            return v;
        }
        let v = match self.lock.leader().await {
            Ok(Some(l)) => serde_json::from_slice::<LeaderValue>(&l.value).ok(),
            Ok(None) => None,
            Err(e) => {
                tracing::warn!(error = %e, "looking up the active node failed");
                None
            }
        };
        *self.leader_cache.lock() = Some((std::time::Instant::now(), v.clone()));
        v
    }
}

fn rfc3339(t: std::time::SystemTime) -> String {
    let d = t
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos() as i128;
    time::OffsetDateTime::from_unix_timestamp_nanos(d)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// What [`Core::run_on_standby`] found.
pub enum StandbyOutcome<T> {
    /// Served here.
    Served(T),
    /// The request needed a write: nothing was written, send it to the active node.
    Forward,
}

impl Core {
    pub(crate) fn ha(&self) -> Option<&Arc<Ha>> {
        self.0.ha.as_ref()
    }

    /// Whether HA is enabled (configured, and the storage has a lock).
    pub fn ha_enabled(&self) -> bool {
        self.0.ha.is_some()
    }

    /// This node's HA role; `None` without HA.
    pub fn ha_role(&self) -> Option<HaRole> {
        self.ha().map(|h| h.role())
    }

    /// Whether this node is an unsealed standby (requests go to the active node, or are
    /// served from here if [`Core::standby_may_serve`] says so).
    pub fn is_standby(&self) -> bool {
        self.ha_role() == Some(HaRole::Standby)
    }

    /// Whether standbys serve reads (then `sys/health` and `sys/leader` report a performance
    /// standby).
    pub fn standby_reads(&self) -> bool {
        self.ha().is_some_and(|h| h.cfg.standby_reads)
    }

    /// Whether background work (expiry, periodic, rotation) may run here: always without HA,
    /// on the active node only with it.
    pub(crate) fn runs_background_work(&self) -> bool {
        match self.ha() {
            None => true,
            Some(h) => h.role() == HaRole::Active,
        }
    }

    /// Whether this node may write to storage now (`setup` skips optional writes otherwise).
    pub(crate) fn may_write(&self) -> bool {
        self.ha().is_none_or(|h| h.gate.open.load(Ordering::SeqCst))
    }

    /// The storage revision this node's answers reflect: the newest change it has applied
    /// from the feed or written itself. `None` without HA.
    pub fn storage_index(&self) -> Option<u64> {
        let h = self.ha()?;
        Some((*h.applied.borrow()).max(h.gate.last_write.load(Ordering::SeqCst)))
    }

    /// Waits until this node has applied revision `rev` (at most `timeout`). The active node
    /// reads storage itself and never waits. `false`: not caught up in time.
    pub async fn wait_for_index(&self, rev: u64, timeout: Duration) -> bool {
        let Some(h) = self.ha() else { return true };
        if h.role() == HaRole::Active || self.storage_index().unwrap_or(0) >= rev {
            return true;
        }
        let mut rx = h.applied.subscribe();
        tokio::time::timeout(timeout, rx.wait_for(|a| *a >= rev))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// The active node's `api_addr` (looked up again when `fresh`); `None` if there is none
    /// or this node is it.
    pub async fn active_api_addr(&self, fresh: bool) -> Option<String> {
        let h = self.ha()?;
        if h.role() == HaRole::Active {
            return None;
        }
        h.leader(fresh)
            .await
            .filter(|l| l.node_id != h.cfg.node_id)
            .map(|l| l.api_addr)
    }

    /// `sys/leader`.
    pub async fn leader_status(&self) -> LeaderStatus {
        let zero = "0001-01-01T00:00:00Z".to_owned();
        let Some(h) = self.ha() else {
            return LeaderStatus {
                ha_enabled: false,
                is_self: false,
                active_time: zero,
                leader_address: String::new(),
                leader_cluster_address: String::new(),
                performance_standby: false,
                performance_standby_last_remote_wal: 0,
            };
        };
        let role = h.role();
        let leader = if role == HaRole::Sealed {
            None
        } else if role == HaRole::Active {
            Some(h.value())
        } else {
            h.leader(false).await
        };
        let is_self = role == HaRole::Active;
        LeaderStatus {
            ha_enabled: true,
            is_self,
            active_time: match *h.active_since.lock() {
                Some(t) if is_self => rfc3339(t),
                _ => zero,
            },
            leader_address: leader
                .as_ref()
                .map(|l| l.api_addr.clone())
                .unwrap_or_default(),
            leader_cluster_address: leader.map(|l| l.cluster_addr).unwrap_or_default(),
            performance_standby: role == HaRole::Standby && h.cfg.standby_reads,
            performance_standby_last_remote_wal: 0,
        }
    }

    /// `sys/step-down`: the active node gives up the lock and becomes a standby. Without HA, or
    /// on a node that is not active, nothing happens (as in Vault).
    pub fn step_down(&self) {
        if let Some(h) = self.ha()
            && h.role() == HaRole::Active
        {
            h.step_down.send_modify(|n| *n += 1);
        }
    }

    /// Handles `req` on a standby and reports whether it tried to write: then nothing was
    /// written and the request must go to the active node. A write refused in this task, an
    /// error naming a refused write (engines write from tasks of their own), or any refusal
    /// on this node while the request ran, all count: answering the rest of a read from the
    /// active node again costs nothing, and only reads are served here.
    pub async fn run_on_standby(
        &self,
        req: crate::CoreRequest,
    ) -> StandbyOutcome<Result<crate::CoreResponse, CoreError>> {
        let before = self.ha().map(|h| h.gate.refusals.load(Ordering::SeqCst));
        let (out, refused) = REFUSED
            .scope(std::cell::Cell::new(false), async move {
                let out = self.handle(req).await;
                (out, REFUSED.with(|r| r.get()))
            })
            .await;
        let after = self.ha().map(|h| h.gate.refusals.load(Ordering::SeqCst));
        let named = matches!(&out, Err(e) if e.to_string().contains(REFUSED_WRITE));
        if refused || named || before != after {
            StandbyOutcome::Forward
        } else {
            StandbyOutcome::Served(out)
        }
    }

    /// Whether a standby answers `operation` on `path` itself: reads that its coherent caches
    /// and storage can answer without writing (KV reads, PKI fetches, transit's
    /// cryptographic operations, token lookups). Everything else goes to the active node.
    pub fn standby_may_serve(&self, operation: tresor_sdk::Operation, path: &str) -> bool {
        use tresor_sdk::Operation::{List, Read, Update};
        if !self.standby_reads() {
            return false;
        }
        let Ok(u) = self.unsealed() else { return false };
        let router = u.router();
        let Some((route, rel)) = router.route(path) else {
            return false;
        };
        let first = rel.split('/').next().unwrap_or_default();
        match route.entry.kind.as_str() {
            "kv" | "generic" => matches!(operation, Read | List),
            "pki" => matches!(operation, Read | List),
            "transit" => match operation {
                Read | List => true,
                Update => matches!(
                    first,
                    "encrypt"
                        | "decrypt"
                        | "rewrap"
                        | "sign"
                        | "verify"
                        | "hmac"
                        | "hash"
                        | "random"
                        | "datakey"
                ),
                _ => false,
            },
            "token" => {
                matches!(rel, "lookup-self" | "lookup" | "lookup-accessor")
                    && matches!(operation, Read | Update)
            }
            // Per-node diagnostics: a standby's own metrics, host, requests and log levels
            // (Prometheus scrapes every node); none of them writes to storage.
            "system" => match operation {
                Read => {
                    matches!(
                        rel,
                        "metrics"
                            | "host-info"
                            | "in-flight-req"
                            | "monitor"
                            | "config/state/sanitized"
                    ) || rel == "loggers"
                        || rel.starts_with("loggers/")
                }
                Update | tresor_sdk::Operation::Delete => {
                    rel == "loggers" || rel.starts_with("loggers/")
                }
                _ => false,
            },
            _ => false,
        }
    }

    /// `sys/ha-status` (active node): this node and the nodes it heard from. Without HA the
    /// node is alone and active, as Vault and OpenBao answer (so `operator members` works).
    pub fn ha_status(&self) -> Result<Value, CoreError> {
        let Some(h) = self.ha() else {
            let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|h| h.trim().to_owned())
                .unwrap_or_default();
            return Ok(json!({ "nodes": [{
                "hostname": hostname,
                "api_address": "",
                "cluster_address": "",
                "active_node": true,
                "last_echo": null,
                "version": crate::core::VERSION,
            }]}));
        };
        let me = h.value();
        let mut nodes = vec![json!({
            "hostname": me.hostname,
            "api_address": me.api_addr,
            "cluster_address": me.cluster_addr,
            "active_node": h.role() == HaRole::Active,
            "last_echo": null,
            "version": me.version,
        })];
        let now = std::time::SystemTime::now();
        let mut peers: Vec<Peer> = {
            let mut p = h.peers.lock();
            p.retain(|_, x| {
                now.duration_since(x.last_echo)
                    .is_ok_and(|d| d < ECHO_EXPIRY)
                    || x.last_echo > now
            });
            p.values().cloned().collect()
        };
        peers.sort_by(|a, b| a.value.api_addr.cmp(&b.value.api_addr));
        for p in peers {
            nodes.push(json!({
                "hostname": p.value.hostname,
                "api_address": p.value.api_addr,
                "cluster_address": p.value.cluster_addr,
                "active_node": false,
                "last_echo": rfc3339(p.last_echo),
                "version": p.value.version,
            }));
        }
        Ok(json!({ "nodes": nodes }))
    }

    /// A standby's echo for the active node: who it is and when, under a MAC keyed from the
    /// root key (only a node that was unsealed can make one). `None` unless a standby.
    pub fn ha_echo(&self) -> Option<Value> {
        let h = self.ha()?;
        if h.role() != HaRole::Standby {
            return None;
        }
        let u = self.unsealed().ok()?;
        let value = h.value();
        let time = unix_now();
        let mac = echo_mac(&u, &value, time);
        Some(json!({ "node": value, "time": time, "mac": mac }))
    }

    /// The active node records a standby's echo; a bad MAC or a stale time is refused.
    pub fn ha_receive_echo(&self, echo: &Value) -> Result<(), CoreError> {
        let bad = || CoreError::PermissionDenied;
        let h = self.ha().ok_or_else(bad)?;
        if h.role() != HaRole::Active {
            return Err(CoreError::InvalidRequest("this node is not active".into()));
        }
        let u = self.unsealed()?;
        let value: LeaderValue =
            serde_json::from_value(echo.get("node").cloned().unwrap_or(Value::Null))
                .map_err(|_| bad())?;
        let time = echo.get("time").and_then(Value::as_i64).ok_or_else(bad)?;
        let mac = echo.get("mac").and_then(Value::as_str).ok_or_else(bad)?;
        let want = echo_mac(&u, &value, time);
        if !bool::from(subtle::ConstantTimeEq::ct_eq(
            mac.as_bytes(),
            want.as_bytes(),
        )) || (time - unix_now()).abs() > ECHO_SKEW
        {
            return Err(bad());
        }
        if value.node_id == h.cfg.node_id {
            return Ok(());
        }
        h.peers.lock().insert(
            value.node_id.clone(),
            Peer {
                value,
                last_echo: std::time::SystemTime::now(),
            },
        );
        Ok(())
    }

    /// Starts HA for a fresh unseal: the state `u` was loaded from storage at revision
    /// `from` or later. The node is a standby until it acquires the lock.
    pub(crate) fn ha_start(&self, h: &Arc<Ha>, from: u64) {
        let (stop_tx, stop_rx) = watch::channel(false);
        if let Some(old) = h.run.lock().replace(stop_tx) {
            let _ = old.send(true);
        }
        h.applied(from);
        h.set_role(HaRole::Standby);
        let weak = Arc::downgrade(&self.0);
        tokio::spawn(follow(weak.clone(), h.clone(), stop_rx.clone(), from));
        tokio::spawn(campaign(weak, h.clone(), stop_rx));
    }

    /// Seal: stop running for leadership (an active node releases the lock) and close the gate.
    pub(crate) fn ha_stop(&self) {
        if let Some(h) = self.ha() {
            h.gate.set(false);
            h.set_role(HaRole::Sealed);
            if let Some(stop) = h.run.lock().take() {
                let _ = stop.send(true);
            }
        }
    }

    /// Replaces the unsealed state with one loaded afresh from storage (same barrier, same
    /// keys): new stores, new engine instances. The old state's engines are cleaned up once
    /// the requests that hold it have finished.
    pub(crate) async fn reload_all(&self) -> Result<Arc<Unsealed>, CoreError> {
        let old = self.unsealed()?;
        // Promotion, step-down or a lost feed: read everything from the store itself.
        self.0.physical.clear_cache();
        old.barrier.reload_keyring().await?;
        let new = self.setup(old.barrier.clone()).await?;
        {
            let mut st = self.0.state.write();
            match &*st {
                Some(cur) if Arc::ptr_eq(cur, &old) => *st = Some(new.clone()),
                // Sealed (or reloaded) meanwhile: keep what is there.
                _ => return Err(CoreError::Sealed),
            }
        }
        self.cache_seal_config_clear();
        tokio::spawn(retire(old));
        Ok(new)
    }

    /// Applies one change of the feed on a standby.
    async fn apply_event(&self, e: &Event) {
        let result = match e.kind {
            EventKind::Put | EventKind::Delete => self.invalidate(&e.key).await,
            EventKind::DeletePrefix => self.invalidate_prefix(&e.key).await,
        };
        if let Err(err) = result {
            tracing::warn!(key = %e.key, error = %err, "applying a change from the active node failed");
        }
    }
}

/// The echo's MAC: HMAC-SHA256 under the echo key of every field, length-prefixed.
fn echo_mac(u: &Unsealed, v: &LeaderValue, time: i64) -> String {
    use aws_lc_rs::hmac;
    let key = u.barrier.echo_mac_key();
    let key = hmac::Key::new(hmac::HMAC_SHA256, &key.0[..]);
    let mut ctx = hmac::Context::with_key(&key);
    for part in [
        v.node_id.as_str(),
        &v.api_addr,
        &v.cluster_addr,
        &v.hostname,
        &v.version,
        &time.to_string(),
    ] {
        ctx.update(&(part.len() as u64).to_be_bytes());
        ctx.update(part.as_bytes());
    }
    hex::encode(ctx.sign().as_ref())
}

/// Cleans up a replaced state's engines once no request holds it any more (bounded: after
/// the longest request could have run, it is cleaned up anyway).
async fn retire(old: Arc<Unsealed>) {
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while Arc::strong_count(&old) > 1 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    old.audit.shutdown();
    for r in old.router().routes() {
        r.backend.cleanup().await;
    }
}

fn upgrade(weak: &Weak<Inner>) -> Option<Core> {
    weak.upgrade().map(Core)
}

/// Waits for `stop`, or forever if it never comes.
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// Sleeps `d` unless stopped first; `false` when stopped.
async fn pause(stop: &mut watch::Receiver<bool>, d: Duration) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(d) => !*stop.borrow(),
        _ = stopped(stop) => false,
    }
}

/// The leadership loop of one unseal: run for the lock, be active while holding it, step down
/// when it is lost, released or the node seals.
async fn campaign(weak: Weak<Inner>, h: Arc<Ha>, mut stop: watch::Receiver<bool>) {
    let value = serde_json::to_vec(&h.value()).unwrap_or_default();
    loop {
        let acquired = tokio::select! {
            g = h.lock.acquire(&h.cfg.node_id, value.clone()) => g,
            _ = stopped(&mut stop) => return,
        };
        let guard = match acquired {
            Ok(g) => g,
            Err(e) => {
                tracing::warn!(error = %e, "running for leadership failed; trying again");
                if !pause(&mut stop, Duration::from_secs(1)).await {
                    return;
                }
                continue;
            }
        };
        if *stop.borrow() {
            let _ = guard.release().await;
            return;
        }
        let Some(core) = upgrade(&weak) else { return };
        let mut step_down = h.step_down.subscribe();
        step_down.mark_unchanged();
        // Active: writes open, everything loaded afresh, background work on.
        h.gate.set(true);
        *h.leader_cache.lock() = None;
        match core.reload_all().await {
            Ok(u) => {
                *h.active_since.lock() = Some(std::time::SystemTime::now());
                h.peers.lock().clear();
                h.set_role(HaRole::Active);
                core.spawn_expiry_loop(&u);
                tracing::info!(node_id = %h.cfg.node_id, term = guard.term(), "this node is now the active node");
            }
            Err(e) => {
                h.gate.set(false);
                tracing::error!(error = %e, "becoming active failed; giving the lock up");
                let _ = guard.release().await;
                if !pause(&mut stop, Duration::from_secs(1)).await {
                    return;
                }
                continue;
            }
        }
        drop(core);
        enum End {
            Lost,
            SteppedDown,
            Sealed,
        }
        let end = tokio::select! {
            _ = guard.lost() => End::Lost,
            _ = step_down.changed() => End::SteppedDown,
            _ = stopped(&mut stop) => End::Sealed,
        };
        // No write from here on, whatever is still running.
        h.gate.set(false);
        *h.active_since.lock() = None;
        *h.leader_cache.lock() = None;
        match end {
            End::Lost => tracing::warn!("leadership lost; this node is now a standby"),
            End::SteppedDown => tracing::info!("stepped down; this node is now a standby"),
            End::Sealed => {}
        }
        if let Err(e) = guard.release().await {
            tracing::warn!(error = %e, "releasing the leader lock failed");
        }
        if matches!(end, End::Sealed) {
            h.set_role(HaRole::Sealed);
            return;
        }
        h.set_role(HaRole::Standby);
        if let Some(core) = upgrade(&weak)
            && let Err(e) = core.reload_all().await
        {
            tracing::warn!(error = %e, "reloading as a standby failed");
        }
        // A node that stepped down waits `step_down_wait` before running again; one that lost
        // its lock (its lease ran out: paused, partitioned, overloaded) waits a little too, so
        // the healthy nodes already waiting take over rather than it winning the lock back.
        let wait = match end {
            End::SteppedDown => Some(h.cfg.step_down_wait),
            End::Lost => Some(h.cfg.step_down_wait.min(Duration::from_secs(2))),
            End::Sealed => None,
        };
        if let Some(d) = wait
            && !pause(&mut stop, d).await
        {
            return;
        }
    }
}

/// The change feed of one unseal: on a standby, every change is applied
/// ([`Core::invalidate`]); on every node, the applied revision is the node's index.
async fn follow(weak: Weak<Inner>, h: Arc<Ha>, mut stop: watch::Receiver<bool>, mut from: u64) {
    loop {
        if *stop.borrow() {
            return;
        }
        let Some(core) = upgrade(&weak) else { return };
        let watched = core.0.physical.watch("", from).await;
        drop(core);
        let mut w = match watched {
            Ok(w) => w,
            Err(PhysicalError::Compacted { .. }) => {
                // History gone: reload everything, then follow from the reload's revision.
                let Some(core) = upgrade(&weak) else { return };
                match core.0.physical.revision().await {
                    Ok(rev) => {
                        if h.role() != HaRole::Active
                            && let Err(e) = core.reload_all().await
                        {
                            tracing::warn!(error = %e, "reload after a compacted change feed failed");
                        }
                        tracing::info!(from, rev, "change feed compacted: state reloaded");
                        from = rev;
                        h.applied(rev);
                    }
                    Err(e) => tracing::warn!(error = %e, "reading the storage revision failed"),
                }
                continue;
            }
            Err(e) => {
                tracing::warn!(error = %e, "watching storage failed; retrying");
                if !pause(&mut stop, Duration::from_millis(500)).await {
                    return;
                }
                continue;
            }
        };
        loop {
            let next = tokio::select! {
                e = w.next() => e,
                _ = stopped(&mut stop) => return,
            };
            let first = match next {
                Some(Ok(e)) => e,
                Some(Err(PhysicalError::Lagged { resume_from })) => {
                    // Changes were skipped: nothing cached can be trusted.
                    if let Some(core) = upgrade(&weak) {
                        core.0.physical.clear_cache();
                    }
                    from = resume_from;
                    break;
                }
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "storage change feed failed; watching again");
                    break;
                }
                None => {
                    if !pause(&mut stop, Duration::from_millis(500)).await {
                        return;
                    }
                    break;
                }
            };
            // A commit's events are published together: take what is queued, so a revision is
            // reported applied only once all of its changes are.
            let mut batch = vec![first];
            let mut tail = None;
            loop {
                match w.try_next() {
                    Some(Ok(e)) => batch.push(e),
                    Some(Err(e)) => {
                        tail = Some(e);
                        break;
                    }
                    None => break,
                }
            }
            let Some(core) = upgrade(&weak) else { return };
            // The storage's read cache first (every role: another server may have written),
            // then the caches above it.
            for e in &batch {
                core.0.physical.invalidate_cache(e);
            }
            if h.role() != HaRole::Active {
                for e in &batch {
                    core.apply_event(e).await;
                }
            }
            drop(core);
            let last = batch.last().map_or(from, |e| e.revision);
            from = from.max(last);
            h.applied(from);
            match tail {
                Some(PhysicalError::Lagged { resume_from }) => {
                    if let Some(core) = upgrade(&weak) {
                        core.0.physical.clear_cache();
                    }
                    from = resume_from;
                    break;
                }
                Some(_) => break,
                None => {}
            }
        }
    }
}
