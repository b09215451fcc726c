//! The core: seal state, the unsealed world, and the one request pipeline.
//!
//! `Core` is sealed or unsealed; [`Unsealed`] holds everything behind the barrier (barrier,
//! router, token and policy stores) and exists only after a successful unseal, so no code path
//! can reach stored data while sealed. Sealing drops the `Unsealed` value.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::RwLock;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use tresor_physical::Backend;
use tresor_sdk::{
    Caller, LogicalBackend, Operation, Request, Response, SpecialPaths, path_matches_special,
};
use zeroize::Zeroizing;

use crate::barrier::{Barrier, Key, View};
use crate::error::CoreError;
use crate::mounts::{AUTH_PATH, MOUNTS_PATH, MountEntry, Route, Router, Table};
use crate::policies::PolicyStore;
use crate::seal::{self, GenerateRoot, Progress, Rekey, SEAL_CONFIG_PATH, SealConfig};
use crate::tokens::{TokenEntry, TokenStore, new_token_id, now};

/// Builds an engine for a mount entry.
pub type EngineFactory =
    Arc<dyn Fn(&MountEntry) -> Result<Arc<dyn LogicalBackend>, String> + Send + Sync>;

/// Server-wide settings the core needs.
#[derive(Clone)]
pub struct CoreConfig {
    pub default_lease_ttl: Duration,
    pub max_lease_ttl: Duration,
    pub cluster_name: Option<String>,
    /// Where the core's background work reads the time (tests inject a manual clock).
    pub clock: Arc<dyn tresor_sdk::clock::Clock>,
    /// How long an engine may take over one request (Vault's `max_request_duration`).
    pub max_request_duration: Duration,
    /// Quotas, governing policies and metrics plug in here.
    pub hooks: Arc<dyn crate::hooks::PipelineHooks>,
    /// High availability (`ha_enabled`): takes effect when the storage has a leader lock.
    pub ha: Option<crate::ha::HaConfig>,
    /// Where clients reach this server (`api_addr`, else derived from the first listener):
    /// engines see it through [`tresor_sdk::SystemView::api_addr`] (the default issuer of
    /// identity tokens and OIDC providers).
    pub api_addr: Option<String>,
}

impl std::fmt::Debug for CoreConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CoreConfig")
            .field("default_lease_ttl", &self.default_lease_ttl)
            .field("max_lease_ttl", &self.max_lease_ttl)
            .field("cluster_name", &self.cluster_name)
            .field("ha", &self.ha)
            .field("api_addr", &self.api_addr)
            .finish_non_exhaustive()
    }
}

impl Default for CoreConfig {
    fn default() -> Self {
        let d = Duration::from_secs(768 * 3600);
        CoreConfig {
            default_lease_ttl: d,
            max_lease_ttl: d,
            cluster_name: None,
            clock: Arc::new(tresor_sdk::clock::SystemClock),
            max_request_duration: Duration::from_secs(90),
            hooks: Arc::new(crate::hooks::NoHooks),
            ha: None,
            api_addr: None,
        }
    }
}

/// How often engines' `periodic` work runs (Vault's rollback manager runs once a minute).
pub const PERIODIC_INTERVAL_SECS: i64 = 60;

/// One logical request as the HTTP layer hands it to the core.
#[derive(Clone)]
pub struct CoreRequest {
    pub operation: Operation,
    /// Path below `/v1/`, without a leading `/`.
    pub path: String,
    pub data: Map<String, Value>,
    pub token: Option<Zeroizing<String>>,
    pub remote_addr: Option<String>,
    /// `X-Vault-Wrap-TTL`: wrap the response in a single-use token with this TTL.
    pub wrap_ttl: Option<Duration>,
    /// Request headers (lowercase names), for the audit log's configured headers and the
    /// mount's passthrough headers.
    pub headers: Vec<(String, String)>,
    /// The DER certificates the client presented in the TLS handshake, leaf first.
    pub peer_certificates: Vec<Vec<u8>>,
    /// The body as sent, when it is not JSON (an OCSP request's DER).
    pub raw_body: Option<Arc<[u8]>>,
    /// The `Authorization` header as sent. It reaches an engine only on the engine's
    /// unauthenticated paths, and only when the mount lets `Authorization` through
    /// (`passthrough_request_headers`): the identity mount's OIDC provider authenticates its
    /// clients (HTTP Basic) and their access tokens (Bearer) from it. Never audited.
    pub authorization: Option<Zeroizing<String>>,
}

/// Never prints the token or the request data (which may hold secrets).
impl std::fmt::Debug for CoreRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CoreRequest")
            .field("operation", &self.operation)
            .field("path", &self.path)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("data_keys", &self.data.keys().collect::<Vec<_>>())
            .field("remote_addr", &self.remote_addr)
            .finish_non_exhaustive()
    }
}

impl CoreRequest {
    pub fn new(
        operation: Operation,
        path: impl Into<String>,
        data: Map<String, Value>,
        token: Option<&str>,
    ) -> Self {
        CoreRequest {
            operation,
            path: path.into(),
            data,
            token: token.map(|t| Zeroizing::new(t.to_owned())),
            remote_addr: None,
            wrap_ttl: None,
            headers: Vec::new(),
            peer_certificates: Vec::new(),
            raw_body: None,
            authorization: None,
        }
    }
}

/// Decides whether and for how long to wrap the response, enforcing the policy's bounds.
fn wrap_ttl_for(
    req: &CoreRequest,
    rel: &str,
    route: &Route,
    a: &tresor_policy::Authorized,
) -> Result<Option<Duration>, CoreError> {
    let (min_wrap, max_wrap) = (a.min_wrapping_ttl(), a.max_wrapping_ttl());
    let mut ttl = req.wrap_ttl.filter(|d| !d.is_zero());
    // sys/wrapping/wrap always wraps (five minutes unless asked otherwise).
    if ttl.is_none() && route.entry.kind == "system" && rel == "wrapping/wrap" {
        ttl = Some(Duration::from_secs(300));
    }
    match ttl {
        None if min_wrap.is_some() || max_wrap.is_some() => Err(CoreError::InvalidRequest(
            "request must be wrapped: the policy for this path sets a wrapping TTL".into(),
        )),
        Some(t) if min_wrap.is_some_and(|m| t < m) => {
            Err(CoreError::InvalidRequest("wrapping ttl too low".into()))
        }
        Some(t) if max_wrap.is_some_and(|m| t > m) => {
            Err(CoreError::InvalidRequest("wrapping ttl too high".into()))
        }
        other => Ok(other),
    }
}

/// Audit helpers for one request: the broker writes entries in Vault's shape straight from
/// these borrowed facts (see `audit_entry`). Each helper first asks whether any device is
/// enabled, so without one the pipeline allocates nothing and awaits no device.
struct AuditCtx<'a> {
    u: &'a Unsealed,
    route: &'a Route,
    req: &'a CoreRequest,
    /// The canonical path the request was authorized and dispatched on.
    path: &'a str,
    request_id: &'a str,
}

impl AuditCtx<'_> {
    async fn log(
        &self,
        kind: &'static str,
        token: Option<&TokenEntry>,
        op: Operation,
        error: &str,
        response: Option<crate::audit_entry::ResponseFacts<'_>>,
    ) -> Result<(), CoreError> {
        let wanted = self.u.audit.request_headers();
        let headers: Vec<(String, String, bool)> = if wanted.is_empty() {
            Vec::new()
        } else {
            self.req
                .headers
                .iter()
                .filter_map(|(n, v)| wanted.get(n).map(|h| (n.clone(), v.clone(), *h)))
                .collect()
        };
        let time = crate::audit::now_rfc3339();
        let issue = token
            .map(|t| crate::tokens::rfc3339(t.creation_time))
            .unwrap_or_default();
        let facts = crate::audit_entry::Facts {
            kind,
            time: &time,
            id: self.request_id,
            operation: op.as_str(),
            path: self.path,
            mount_point: &self.route.path,
            mount_type: &self.route.entry.kind,
            mount_accessor: &self.route.entry.accessor,
            token,
            token_issue_time: &issue,
            data: &self.req.data,
            remote: self.req.remote_addr.as_deref().unwrap_or_default(),
            headers: &headers,
            error,
            response,
            non_hmac_req: &self.route.entry.config.audit_non_hmac_request_keys,
            non_hmac_resp: &self.route.entry.config.audit_non_hmac_response_keys,
        };
        self.u.audit.log(&facts).await
    }

    async fn request(
        &self,
        token: Option<&TokenEntry>,
        op: Operation,
        error: &str,
    ) -> Result<(), CoreError> {
        if !self.u.audit.enabled() {
            return Ok(());
        }
        self.log("request", token, op, error, None).await
    }

    /// Records a refused request and hands back the error to return.
    async fn denied(&self, token: Option<&TokenEntry>, op: Operation, err: CoreError) -> CoreError {
        match self.request(token, op, &err.to_string()).await {
            Ok(()) => err,
            Err(audit_err) => audit_err,
        }
    }

    async fn response(
        &self,
        token: Option<&TokenEntry>,
        op: Operation,
        out: Option<&CoreResponse>,
        error: &str,
    ) -> Result<(), CoreError> {
        if !self.u.audit.enabled() {
            return Ok(());
        }
        let facts = out.map(|out| {
            let resp = out.response.as_ref();
            crate::audit_entry::ResponseFacts {
                mount_type: &out.mount_type,
                data: resp.and_then(|r| r.data.as_ref()),
                auth: out.auth.as_ref(),
                lease_id: &out.lease_id,
                wrap_info: out.wrap_info.as_ref(),
                warnings: resp.map(|r| r.warnings.as_slice()).unwrap_or_default(),
            }
        });
        self.log("response", token, op, error, facts).await
    }
}

/// What the pipeline answers; the HTTP layer turns it into Vault's envelope.
#[derive(Default)]
pub struct CoreResponse {
    pub request_id: String,
    pub response: Option<Response>,
    pub auth: Option<Value>,
    pub mount_type: String,
    pub lease_id: String,
    pub lease_duration: u64,
    pub renewable: bool,
    /// Set when the response was wrapped: Vault's `wrap_info` object.
    pub wrap_info: Option<Value>,
}

#[derive(Serialize, Deserialize)]
struct ClusterInfo {
    name: String,
    id: String,
}

/// Everything that exists only while unsealed.
pub struct Unsealed {
    pub barrier: Arc<Barrier>,
    pub tokens: TokenStore,
    pub expiration: crate::expiration::Expiration,
    pub audit: crate::audit::AuditBroker,
    pub policies: PolicyStore,
    /// Endpoint and role governing policies (EGPs, RGPs), evaluated by the governing hook.
    pub governing: crate::governing::GoverningStore,
    pub identity: Arc<crate::identity::IdentityStore>,
    /// Rate-limit and lease-count quotas (`crate::quotas`).
    pub quotas: crate::quotas::QuotaStore,
    /// Client counts (`crate::activity`).
    pub activity: crate::activity::ActivityLog,
    router: RwLock<Arc<Router>>,
    mount_lock: tokio::sync::Mutex<()>,
    pub cluster_name: String,
    pub cluster_id: String,
    /// Unix seconds of the last run of the engines' periodic work.
    last_periodic: std::sync::atomic::AtomicI64,
}

impl Unsealed {
    pub fn router(&self) -> Arc<Router> {
        self.router.read().clone()
    }
    /// Installs a new route table and tells the identity store the auth mounts it now has
    /// (alias mount paths and types, templates keyed by mount path).
    pub(crate) fn set_router(&self, r: Router) {
        self.identity.set_mounts(
            r.routes()
                .iter()
                .filter(|r| r.entry.table == Table::Auth)
                .map(|r| {
                    (
                        r.entry.accessor.clone(),
                        r.path.to_string(),
                        r.entry.kind.clone(),
                    )
                }),
        );
        *self.router.write() = Arc::new(r);
    }

    /// The entity behind a token, if it has one that still exists.
    pub fn entity(&self, entity_id: &str) -> Option<Arc<crate::identity::Resolved>> {
        self.identity.resolve(entity_id)
    }

    /// The compiled ACL of a token: its own policies, plus, when it has an entity, the
    /// entity's and its groups' policies with templated paths rendered for that entity. A
    /// token of a disabled entity is denied.
    pub fn acl_for(
        &self,
        policies: &[String],
        entity_id: &str,
    ) -> Result<Arc<tresor_policy::Acl>, CoreError> {
        match self.entity(entity_id) {
            None => Ok(self.policies.acl(policies)),
            Some(r) if r.info.disabled => Err(CoreError::PermissionDenied),
            Some(r) => Ok(self.policies.acl_with_identity(policies, &r)),
        }
    }
    pub(crate) fn mount_lock(&self) -> &tokio::sync::Mutex<()> {
        &self.mount_lock
    }

    /// All mount entries of a table, in path order.
    pub fn mount_entries(&self, table: Table) -> Vec<Arc<MountEntry>> {
        let router = self.router();
        let mut v: Vec<Arc<MountEntry>> = router
            .routes()
            .iter()
            .filter(|r| r.entry.table == table)
            .map(|r| r.entry.clone())
            .collect();
        v.sort_by(|a, b| a.path.cmp(&b.path));
        v
    }
}

pub(crate) struct Inner {
    pub(crate) physical: Arc<dyn Backend>,
    pub(crate) config: CoreConfig,
    engines: HashMap<String, EngineFactory>,
    /// Other names of registered engine types (Vault's `generic` for `kv`): a mount keeps the
    /// name it was made with and is served by the engine it stands for.
    engine_aliases: HashMap<String, String>,
    credentials: HashMap<String, EngineFactory>,
    pub(crate) state: RwLock<Option<Arc<Unsealed>>>,
    /// High availability, when configured and the storage has a lock (`crate::ha`).
    pub(crate) ha: Option<Arc<crate::ha::Ha>>,
    /// Every request holds this for reading while it runs; sealing takes it for writing, so
    /// engines are cleaned up only after the requests in flight have finished.
    in_flight: tokio::sync::RwLock<()>,
    /// The background cleanup of the last seal, until it has run.
    draining: parking_lot::Mutex<Option<tokio::task::JoinHandle<()>>>,
    unseal_progress: tokio::sync::Mutex<Progress>,
    pub(crate) rekey: tokio::sync::Mutex<Option<Rekey>>,
    pub(crate) genroot: tokio::sync::Mutex<Option<GenerateRoot>>,
    seal_config: RwLock<Option<SealConfig>>,
    /// Automatic snapshots' run status on this node (`crate::snapshot_auto`).
    pub(crate) autosnap: crate::snapshot_auto::Statuses,
}

/// The core. Cheap to clone.
#[derive(Clone)]
pub struct Core(pub(crate) Arc<Inner>);

/// What `sys/init` returns.
pub struct InitResult {
    pub keys: Vec<Zeroizing<Vec<u8>>>,
    pub root_token: Zeroizing<String>,
}

/// Init parameters.
#[derive(Clone, Default)]
pub struct InitRequest {
    pub secret_shares: usize,
    pub secret_threshold: usize,
    pub pgp_keys: Vec<String>,
    pub root_token_pgp_key: String,
    /// Dev mode: choose the root token's id.
    pub root_token_id: Option<String>,
}

/// Never prints the response's data, the auth block (it holds the token) or the wrapping
/// token.
impl std::fmt::Debug for CoreResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CoreResponse")
            .field("request_id", &self.request_id)
            .field("response", &self.response)
            .field("auth", &self.auth.as_ref().map(|_| "<redacted>"))
            .field("mount_type", &self.mount_type)
            .field("lease_id", &self.lease_id)
            .field("lease_duration", &self.lease_duration)
            .field("renewable", &self.renewable)
            .field("wrap_info", &self.wrap_info.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// Never prints the chosen root token id; PGP keys are public and shown.
impl std::fmt::Debug for InitRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InitRequest")
            .field("secret_shares", &self.secret_shares)
            .field("secret_threshold", &self.secret_threshold)
            .field("pgp_keys", &self.pgp_keys.len())
            .field("root_token_pgp_key", &!self.root_token_pgp_key.is_empty())
            .field(
                "root_token_id",
                &self.root_token_id.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

/// `sys/seal-status`.
#[derive(Debug, Clone, Serialize)]
pub struct SealStatus {
    #[serde(rename = "type")]
    pub kind: String,
    pub initialized: bool,
    pub sealed: bool,
    pub t: usize,
    pub n: usize,
    pub progress: usize,
    pub nonce: String,
    pub version: String,
    pub build_date: String,
    pub migration: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster_id: Option<String>,
    pub recovery_seal: bool,
    pub storage_type: String,
}

pub const VERSION: &str = env!("CARGO_PKG_VERSION");
pub const BUILD_DATE: &str = "2026-11-22T00:00:00Z";

impl Core {
    pub fn new(physical: Arc<dyn Backend>, config: CoreConfig) -> Self {
        // With HA, the core's storage is gated: only the active node writes.
        let (physical, ha) = crate::ha::Ha::new(config.ha.clone(), physical);
        Core(Arc::new(Inner {
            physical,
            ha,
            config,
            engines: HashMap::new(),
            engine_aliases: HashMap::new(),
            credentials: HashMap::new(),
            state: RwLock::new(None),
            in_flight: tokio::sync::RwLock::new(()),
            draining: parking_lot::Mutex::new(None),
            unseal_progress: tokio::sync::Mutex::new(Progress::default()),
            rekey: tokio::sync::Mutex::new(None),
            genroot: tokio::sync::Mutex::new(None),
            seal_config: RwLock::new(None),
            autosnap: Default::default(),
        }))
    }

    /// Registers a secrets engine type. Call before the core is shared.
    pub fn register_engine(&mut self, kind: &str, f: EngineFactory) {
        Arc::get_mut(&mut self.0)
            .expect("register engines before sharing the core")
            .engines
            .insert(kind.to_owned(), f);
    }

    /// Registers `alias` as another name of the engine type `kind` (registered too, before or
    /// after). Call before the core is shared.
    pub fn register_engine_alias(&mut self, alias: &str, kind: &str) {
        Arc::get_mut(&mut self.0)
            .expect("register engines before sharing the core")
            .engine_aliases
            .insert(alias.to_owned(), kind.to_owned());
    }

    /// The type names a mount of `table` can be made with: the registered engines (and their
    /// aliases) or auth methods, sorted. The built-in `system`, `cubbyhole` and `token` are
    /// not among them (they exist once, at fixed paths).
    pub fn mountable_types(&self, table: Table) -> Vec<String> {
        let mut v = self.registered_types(table);
        if table == Table::Mounts {
            v.extend(self.0.engine_aliases.keys().cloned());
            v.sort();
        }
        v
    }

    /// The registered engine (or auth method) types, without aliases, sorted.
    pub fn registered_types(&self, table: Table) -> Vec<String> {
        let mut v: Vec<String> = match table {
            Table::Mounts => self.0.engines.keys().cloned().collect(),
            Table::Auth => self.0.credentials.keys().cloned().collect(),
        };
        v.sort();
        v
    }

    /// Registers an auth method type. Call before the core is shared.
    pub fn register_credential(&mut self, kind: &str, f: EngineFactory) {
        Arc::get_mut(&mut self.0)
            .expect("register auth methods before sharing the core")
            .credentials
            .insert(kind.to_owned(), f);
    }

    pub fn config(&self) -> &CoreConfig {
        &self.0.config
    }

    pub fn storage_type(&self) -> &'static str {
        self.0.physical.kind()
    }

    /// The unsealed state, or `Sealed`.
    pub fn unsealed(&self) -> Result<Arc<Unsealed>, CoreError> {
        self.0.state.read().clone().ok_or(CoreError::Sealed)
    }

    pub fn is_sealed(&self) -> bool {
        self.0.state.read().is_none()
    }

    pub async fn seal_config(&self) -> Result<Option<SealConfig>, CoreError> {
        if let Some(c) = self.0.seal_config.read().clone() {
            return Ok(Some(c));
        }
        let Some(bytes) = self.0.physical.get(SEAL_CONFIG_PATH).await? else {
            return Ok(None);
        };
        let c: SealConfig = serde_json::from_slice(&bytes)
            .map_err(|e| CoreError::Internal(format!("decoding seal config: {e}")))?;
        *self.0.seal_config.write() = Some(c.clone());
        Ok(Some(c))
    }

    pub async fn initialized(&self) -> Result<bool, CoreError> {
        Ok(self.seal_config().await?.is_some())
    }

    pub async fn seal_status(&self) -> Result<SealStatus, CoreError> {
        let cfg = self.seal_config().await?;
        let progress = self.0.unseal_progress.lock().await;
        let unsealed = self.0.state.read().clone();
        Ok(SealStatus {
            kind: "shamir".into(),
            initialized: cfg.is_some(),
            sealed: unsealed.is_none(),
            t: cfg.as_ref().map(|c| c.secret_threshold).unwrap_or(0),
            n: cfg.as_ref().map(|c| c.secret_shares).unwrap_or(0),
            progress: progress.shares.len(),
            nonce: progress.nonce.clone(),
            version: VERSION.into(),
            build_date: BUILD_DATE.into(),
            migration: false,
            cluster_name: unsealed.as_ref().map(|u| u.cluster_name.clone()),
            cluster_id: unsealed.as_ref().map(|u| u.cluster_id.clone()),
            recovery_seal: false,
            storage_type: self.storage_type().into(),
        })
    }

    /// `sys/init`: creates the keyring, the root key and the root token. Leaves the core sealed.
    pub async fn init(&self, req: InitRequest) -> Result<InitResult, CoreError> {
        let _guard = self.0.unseal_progress.lock().await;
        if self.initialized().await? {
            return Err(CoreError::InvalidRequest(
                "Vault is already initialized".into(),
            ));
        }
        seal::validate_shares(req.secret_shares, req.secret_threshold, &req.pgp_keys)?;
        let unseal_key = Key::generate();
        let (keys, _fps) = seal::make_shares(
            &unseal_key,
            req.secret_shares,
            req.secret_threshold,
            &req.pgp_keys,
        )?;
        let barrier = Barrier::initialize(self.0.physical.clone(), &unseal_key).await?;
        let unsealed = self.setup(barrier).await?;
        let root = self
            .create_root_token(&unsealed, req.root_token_id.clone())
            .await?;
        let root_token = if req.root_token_pgp_key.is_empty() {
            root
        } else {
            use base64::Engine as _;
            let enc = tresor_seal::pgp::encrypt_to_key(&req.root_token_pgp_key, root.as_bytes())
                .map_err(|e| {
                    CoreError::InvalidRequest(format!("error encrypting root token: {e}"))
                })?;
            Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(enc))
        };
        let cfg = SealConfig {
            version: 1,
            kind: "shamir".into(),
            secret_shares: req.secret_shares,
            secret_threshold: req.secret_threshold,
            pgp_keys: req.pgp_keys,
        };
        // The seal config is written last: a crash before this leaves the server uninitialized.
        self.0
            .physical
            .put(
                SEAL_CONFIG_PATH,
                serde_json::to_vec(&cfg).map_err(|e| CoreError::Internal(e.to_string()))?,
            )
            .await?;
        *self.0.seal_config.write() = Some(cfg);
        Ok(InitResult { keys, root_token })
    }

    /// Dev mode and tests: unseal directly with a full key.
    pub async fn unseal_with_key(&self, key: &Key) -> Result<(), CoreError> {
        let barrier = Barrier::unseal(self.0.physical.clone(), key).await?;
        self.go_live(barrier).await
    }

    /// Loads the unsealed state behind an opened barrier and starts serving: at once without
    /// HA; with HA, as a standby that runs for leadership (`crate::ha`).
    async fn go_live(&self, barrier: Arc<Barrier>) -> Result<(), CoreError> {
        // The storage's read cache (etcd) serves from here on: this server is the only writer,
        // or (HA) it follows the change feed from a revision read before anything is loaded.
        self.0.physical.set_cache_enabled(true);
        let Some(ha) = self.0.ha.clone() else {
            let u = self.setup(barrier).await?;
            *self.0.state.write() = Some(u.clone());
            self.spawn_expiry_loop(&u);
            return Ok(());
        };
        // A standby never writes: the gate closes before anything is loaded, and the change
        // feed is followed from a revision read before the load.
        ha.gate_close();
        let from = self.0.physical.revision().await?;
        let u = self.setup(barrier).await?;
        *self.0.state.write() = Some(u);
        self.ha_start(&ha, from);
        Ok(())
    }

    /// `sys/unseal` with one share. Returns the status after it.
    pub async fn unseal(&self, share: Option<&str>, reset: bool) -> Result<SealStatus, CoreError> {
        let cfg = self
            .seal_config()
            .await?
            .ok_or_else(|| CoreError::InvalidRequest("Vault is not initialized".into()))?;
        {
            let mut progress = self.0.unseal_progress.lock().await;
            if reset {
                if !self.is_sealed() {
                    return Err(CoreError::InvalidRequest("vault is unsealed".into()));
                }
                progress.reset();
            } else if self.is_sealed() {
                let share = share.ok_or_else(|| {
                    CoreError::InvalidRequest(
                        "'key' must be specified in request body as JSON, or 'reset' set to true"
                            .into(),
                    )
                })?;
                let share = seal::decode_share(share)?;
                let want = if cfg.secret_threshold == 1 { 32 } else { 33 };
                if share.len() != want {
                    return Err(CoreError::InvalidRequest(format!(
                        "invalid key: expected {want} bytes, got {}",
                        share.len()
                    )));
                }
                if progress.nonce.is_empty() {
                    progress.nonce = uuid::Uuid::new_v4().to_string();
                }
                progress.add(share)?;
                if progress.shares.len() >= cfg.secret_threshold {
                    let shares = std::mem::take(&mut progress.shares);
                    progress.reset();
                    let key = seal::combine(cfg.secret_threshold, &shares)?;
                    let barrier = Barrier::unseal(self.0.physical.clone(), &key).await?;
                    self.go_live(barrier).await?;
                    tracing::info!("vault is unsealed");
                }
            }
        }
        self.seal_status().await
    }

    /// `sys/seal`: drops everything behind the barrier.
    ///
    /// From the moment it returns, every new request gets `Sealed`. Requests already in flight
    /// finish with the state they started with (it, and the barrier key, live as long as they
    /// do); then the engines' `cleanup` runs and the key is dropped. That last part happens in
    /// the background, because `sys/seal` itself is a request in flight: see
    /// [`Core::sealed_and_drained`].
    pub async fn seal(&self) -> Result<(), CoreError> {
        // An active node releases the lock; nothing is written from here on.
        self.ha_stop();
        self.seal_state().await
    }

    /// [`Core::seal`] without giving up leadership: a HA active node restoring a snapshot
    /// stays the one writer (its writes fenced by the lock) until the store is replaced, then
    /// calls `ha_stop` itself.
    pub(crate) async fn seal_state(&self) -> Result<(), CoreError> {
        let u = self.0.state.write().take();
        // Sealed, nothing follows other servers' writes: no cached reads until the next unseal.
        self.0.physical.set_cache_enabled(false);
        *self.0.rekey.lock().await = None;
        *self.0.genroot.lock().await = None;
        if let Some(u) = u {
            tracing::info!("vault is sealed");
            let core = self.clone();
            let task = tokio::spawn(async move { core.drain_and_cleanup(u).await });
            *self.0.draining.lock() = Some(task);
        }
        Ok(())
    }

    /// Waits for the requests in flight, then cleans up every engine of the sealed state and
    /// records the barrier's exact counters.
    async fn drain_and_cleanup(&self, u: Arc<Unsealed>) {
        let _all = self.0.in_flight.write().await;
        // Nothing is audited any more: the audit devices' writer threads stop.
        u.audit.shutdown();
        for r in u.router().routes() {
            r.backend.cleanup().await;
        }
        let _ = u.barrier.flush().await;
    }

    /// Waits until the last seal's requests in flight have finished and its engines were
    /// cleaned up. For tests and orderly shutdown; never call it from inside a request.
    pub async fn sealed_and_drained(&self) {
        let task = self.0.draining.lock().take();
        if let Some(task) = task {
            let _ = task.await;
        }
    }

    /// What an engine is handed outside a request, at the clock's current time.
    pub(crate) fn engine_context(&self, route: &Route) -> tresor_sdk::Context {
        self.context(route, self.0.config.clock.now())
    }

    /// The same mount and engine with a changed entry (a tune).
    pub(crate) fn retuned(&self, route: &Route, entry: MountEntry) -> Route {
        Route {
            mount: Arc::new(entry.mount_view(
                self.0.config.default_lease_ttl,
                self.0.config.max_lease_ttl,
                route.mount.system.clone(),
            )),
            entry: Arc::new(entry),
            ..route.clone()
        }
    }

    /// What an engine is handed outside a request.
    fn context(&self, route: &Route, at: std::time::SystemTime) -> tresor_sdk::Context {
        tresor_sdk::Context {
            storage: Arc::new(route.view.clone()),
            mount: route.mount.clone(),
            now: at,
        }
    }

    /// Runs every engine's `periodic` work at time `at` (Unix seconds). The background loop
    /// calls it once a minute; tests call it with a chosen `at`. An engine's failure is logged
    /// and does not stop the others.
    pub async fn periodic_tick(&self, at: i64) -> Result<(), CoreError> {
        let u = self.unsealed()?;
        u.last_periodic
            .store(at, std::sync::atomic::Ordering::SeqCst);
        let when = std::time::UNIX_EPOCH + Duration::from_secs(at.max(0) as u64);
        for r in u.router().routes() {
            if let Err(e) = r.backend.periodic(&self.context(r, when)).await {
                tracing::warn!(mount = %r.path, error = %e, "periodic work failed");
            }
        }
        Ok(())
    }

    /// Whether the engines' periodic work is due at `at`.
    pub(crate) fn periodic_due(&self, u: &Unsealed, at: i64) -> bool {
        at - u.last_periodic.load(std::sync::atomic::Ordering::SeqCst) >= PERIODIC_INTERVAL_SECS
    }

    /// Calls `initialize` on a route's engine at the current time.
    pub(crate) async fn initialize_route(&self, route: &Route) -> Result<(), CoreError> {
        let ctx = self.context(route, self.0.config.clock.now());
        route
            .backend
            .initialize(&ctx)
            .await
            .map_err(CoreError::from)
    }

    /// Checks that `key` is the current unseal key (for rekey and generate-root).
    pub(crate) async fn verify_unseal_key(&self, key: &Key) -> Result<(), CoreError> {
        Barrier::unseal(self.0.physical.clone(), key)
            .await
            .map(|_| ())
    }

    /// The unseal progress lock: held by init, unseal and seal-status, and by a snapshot
    /// restore while it replaces the store (`crate::snapshot`).
    pub(crate) fn unseal_progress(&self) -> &tokio::sync::Mutex<Progress> {
        &self.0.unseal_progress
    }

    /// Forgets the cached seal configuration (another node rekeyed).
    pub(crate) fn cache_seal_config_clear(&self) {
        *self.0.seal_config.write() = None;
    }

    /// Replaces the cached seal configuration; rekey calls it only after its commit.
    pub(crate) fn cache_seal_config(&self, cfg: SealConfig) {
        *self.0.seal_config.write() = Some(cfg);
    }

    /// Builds the unsealed world: stores, mount tables, router. On a HA standby nothing is
    /// written: a missing piece of a fresh store is an error, and upgrades of stored tables
    /// are kept in memory until the active node writes them.
    pub(crate) async fn setup(&self, barrier: Arc<Barrier>) -> Result<Arc<Unsealed>, CoreError> {
        let cluster: ClusterInfo = match barrier.get("core/cluster").await? {
            Some(b) => {
                serde_json::from_slice(&b).map_err(|e| CoreError::Internal(e.to_string()))?
            }
            None => {
                let id = uuid::Uuid::new_v4().to_string();
                let name = self
                    .0
                    .config
                    .cluster_name
                    .clone()
                    .unwrap_or_else(|| format!("vault-cluster-{}", &id[..8]));
                let c = ClusterInfo { name, id };
                barrier
                    .put(
                        "core/cluster",
                        &serde_json::to_vec(&c).map_err(|e| CoreError::Internal(e.to_string()))?,
                    )
                    .await?;
                c
            }
        };
        let tokens = TokenStore::open(View::new(barrier.clone(), "sys/token/")).await?;
        let policies = PolicyStore::open(View::new(barrier.clone(), "sys/policy/")).await?;
        let governing =
            crate::governing::GoverningStore::open(View::new(barrier.clone(), "sys/policy/"))
                .await?;
        let identity = Arc::new(
            crate::identity::IdentityStore::open(View::new(
                barrier.clone(),
                crate::identity::PREFIX,
            ))
            .await?,
        );
        let quotas =
            crate::quotas::QuotaStore::open(View::new(barrier.clone(), crate::quotas::PREFIX))
                .await?;
        let activity =
            crate::activity::ActivityLog::open(View::new(barrier.clone(), crate::activity::PREFIX))
                .await?;
        if self.may_write() {
            crate::system_ops::record_version(&barrier).await;
        }
        let u = Arc::new(Unsealed {
            barrier: barrier.clone(),
            tokens,
            policies,
            governing,
            identity,
            quotas,
            activity,
            expiration: crate::expiration::Expiration::new(View::new(
                barrier.clone(),
                "sys/expire/",
            )),
            audit: crate::audit::AuditBroker::load(&barrier).await?,
            router: RwLock::new(Arc::new(Router::default())),
            mount_lock: tokio::sync::Mutex::new(()),
            cluster_name: cluster.name,
            cluster_id: cluster.id,
            last_periodic: std::sync::atomic::AtomicI64::new(0),
        });
        let mut mounts = self.load_table(&barrier, MOUNTS_PATH).await?;
        if mounts.is_empty() {
            let mut cubby = MountEntry::new(
                Table::Mounts,
                "cubbyhole/",
                "cubbyhole",
                "per-token private secret storage",
            );
            cubby.local = true;
            let mut sys = MountEntry::new(
                Table::Mounts,
                "sys/",
                "system",
                "system endpoints used for control, policy and debugging",
            );
            sys.config.passthrough_request_headers = vec!["Accept".into()];
            mounts = vec![cubby, sys];
            self.save_table(&barrier, MOUNTS_PATH, &mounts).await?;
        }
        // The identity store's mount, added to tables written before it existed.
        if !mounts.iter().any(|m| m.kind == "identity") {
            let mut identity =
                MountEntry::new(Table::Mounts, "identity/", "identity", "identity store");
            identity.config.passthrough_request_headers = vec!["Authorization".into()];
            mounts.push(identity);
            if self.may_write() {
                self.save_table(&barrier, MOUNTS_PATH, &mounts).await?;
            }
        }
        let mut auth = self.load_table(&barrier, AUTH_PATH).await?;
        if auth.is_empty() {
            auth = vec![MountEntry::new(
                Table::Auth,
                "token/",
                "token",
                "token based credentials",
            )];
            self.save_table(&barrier, AUTH_PATH, &auth).await?;
        }
        let mut routes = Vec::new();
        for e in mounts.into_iter().chain(auth) {
            match self.route_for(&u, e.clone()) {
                Ok(r) => routes.push(r),
                Err(err) => {
                    tracing::error!(path = %e.path, kind = %e.kind, error = %err, "cannot set up mount; skipping it")
                }
            }
        }
        for r in &routes {
            if let Err(e) = self.initialize_route(r).await {
                tracing::error!(mount = %r.path, error = %e, "engine failed to initialize");
            }
        }
        u.set_router(Router::new(routes));
        Ok(u)
    }

    pub(crate) async fn load_table(
        &self,
        barrier: &Barrier,
        path: &str,
    ) -> Result<Vec<MountEntry>, CoreError> {
        match barrier.get(path).await? {
            None => Ok(Vec::new()),
            Some(b) => serde_json::from_slice(&b)
                .map_err(|e| CoreError::Internal(format!("decoding mount table: {e}"))),
        }
    }

    async fn save_table(
        &self,
        barrier: &Barrier,
        path: &str,
        entries: &[MountEntry],
    ) -> Result<(), CoreError> {
        barrier
            .put(
                path,
                &serde_json::to_vec(entries).map_err(|e| CoreError::Internal(e.to_string()))?,
            )
            .await
    }

    /// The backend serving a mount entry. The built-ins get handles to the subsystems of the
    /// unseal `u` (and `sys/` the core's `Control` operations), never the core.
    pub(crate) fn backend_for(
        &self,
        u: &Arc<Unsealed>,
        entry: &MountEntry,
    ) -> Result<Arc<dyn LogicalBackend>, CoreError> {
        let subsystems = crate::control::Subsystems::new(u);
        match (entry.table, entry.kind.as_str()) {
            (Table::Mounts, "system") => Ok(crate::system::backend(crate::control::SysHandles {
                subsystems,
                control: crate::control::Control::new(self),
            })),
            (Table::Mounts, "cubbyhole") => Ok(crate::cubbyhole::backend()),
            (Table::Auth, "token") => Ok(crate::token_backend::backend(subsystems)),
            (Table::Mounts, kind) => {
                let kind = self.0.engine_aliases.get(kind).map_or(kind, String::as_str);
                let f = self
                    .0
                    .engines
                    .get(kind)
                    .ok_or_else(|| self.not_in_catalog(entry))?;
                f(entry).map_err(CoreError::InvalidRequest)
            }
            (Table::Auth, kind) => {
                let f = self
                    .0
                    .credentials
                    .get(kind)
                    .ok_or_else(|| self.not_in_catalog(entry))?;
                f(entry).map_err(CoreError::InvalidRequest)
            }
        }
    }

    /// Vault's error for a type no engine or auth method has, naming the ones there are.
    fn not_in_catalog(&self, entry: &MountEntry) -> CoreError {
        let available = self.mountable_types(entry.table);
        let available = if available.is_empty() {
            "none besides the built-in token method".to_owned()
        } else {
            available.join(", ")
        };
        CoreError::InvalidRequest(format!(
            "plugin not found in the catalog: {} (available: {available})",
            entry.kind
        ))
    }

    pub(crate) fn route_for(
        &self,
        u: &Arc<Unsealed>,
        entry: MountEntry,
    ) -> Result<Route, CoreError> {
        let backend = match (entry.table, entry.kind.as_str()) {
            (Table::Mounts, "identity") => crate::identity_backend::backend(u.identity.clone()),
            _ => self.backend_for(u, &entry)?,
        };
        let special = backend.special_paths();
        let system: Arc<dyn tresor_sdk::SystemView> =
            Arc::new(crate::system_password::SystemPolicies {
                view: View::new(u.barrier.clone(), "sys/"),
                api_addr: self.0.config.api_addr.clone(),
            });
        let mount = entry.mount_view(
            self.0.config.default_lease_ttl,
            self.0.config.max_lease_ttl,
            Some(system),
        );
        Ok(Route {
            view: View::new(u.barrier.clone(), entry.view_prefix()),
            path: entry.route_path().into(),
            entry: Arc::new(entry),
            backend,
            mount: Arc::new(mount),
            special: Arc::new(special),
        })
    }

    /// All mount entries of a table, in path order.
    pub fn mount_entries(&self, table: Table) -> Result<Vec<Arc<MountEntry>>, CoreError> {
        Ok(self.unsealed()?.mount_entries(table))
    }

    /// `sys/metrics` in `format` (`prometheus`, or `""` for Vault's JSON form): `Err` for an
    /// unknown format, or Prometheus with a zero retention time (Vault's rule).
    pub async fn metrics(&self, format: &str) -> Result<(String, String), String> {
        crate::system_ops::render_metrics(self.unsealed().ok(), self.is_standby(), format).await
    }

    /// Adds a mount (`sys/mounts/:path`, `sys/auth/:path`).
    pub async fn mount(&self, entry: MountEntry) -> Result<(), CoreError> {
        let u = self.unsealed()?;
        let _g = u.mount_lock.lock().await;
        let full = entry.route_path();
        if crate::mounts::protected(&entry.path, entry.table) {
            return Err(CoreError::InvalidRequest(format!(
                "cannot mount {:?}",
                entry.path
            )));
        }
        let router = u.router();
        for r in router.routes() {
            if full.starts_with(&*r.path) || r.path.starts_with(&full) {
                return Err(CoreError::InvalidRequest(format!(
                    "path is already in use at {}",
                    r.path
                )));
            }
        }
        let route = self.route_for(&u, entry.clone())?;
        self.initialize_route(&route).await.map_err(|e| {
            CoreError::InvalidRequest(format!("failed to initialize the mount: {e}"))
        })?;
        let mut entries: Vec<MountEntry> = router
            .routes()
            .iter()
            .filter(|r| r.entry.table == entry.table)
            .map(|r| (*r.entry).clone())
            .collect();
        entries.push(entry.clone());
        self.save_table(&u.barrier, table_path(entry.table), &entries)
            .await?;
        let mut routes = router.routes().to_vec();
        routes.push(route);
        u.set_router(Router::new(routes));
        Ok(())
    }

    /// Removes a mount and all its data. Missing mounts are not an error (as in Vault).
    pub async fn unmount(&self, table: Table, path: &str) -> Result<(), CoreError> {
        let u = self.unsealed()?;
        let _g = u.mount_lock.lock().await;
        let full = match table {
            Table::Mounts => path.to_owned(),
            Table::Auth => format!("auth/{path}"),
        };
        let router = u.router();
        let Some(route) = router.exact(&full).cloned() else {
            return Ok(());
        };
        if matches!(
            route.entry.kind.as_str(),
            "system" | "cubbyhole" | "identity"
        ) || (table == Table::Auth && route.entry.kind == "token")
        {
            return Err(CoreError::InvalidRequest(format!(
                "cannot unmount {:?}",
                route.entry.path
            )));
        }
        // As in Vault, the mount's leases go with it: its secrets are revoked through the
        // engine while it still serves, and an auth method's tokens are revoked.
        drop(_g);
        if let Err(e) = self.revoke_prefix(&full, true).await {
            tracing::warn!(mount = %full, error = %e, "revoking the leases of an unmounted path failed");
        }
        let _g = u.mount_lock.lock().await;
        let router = u.router();
        if router.exact(&full).is_none() {
            return Ok(());
        }
        let routes: Vec<Route> = router
            .routes()
            .iter()
            .filter(|r| *r.path != *full)
            .cloned()
            .collect();
        let entries: Vec<MountEntry> = routes
            .iter()
            .filter(|r| r.entry.table == table)
            .map(|r| (*r.entry).clone())
            .collect();
        self.save_table(&u.barrier, table_path(table), &entries)
            .await?;
        u.set_router(Router::new(routes));
        tresor_sdk::Storage::delete_prefix(&route.view, "").await?;
        route.backend.cleanup().await;
        Ok(())
    }

    /// Replaces a mount's entry (tune). The engine is rebuilt so it sees new options.
    pub async fn update_mount(
        &self,
        table: Table,
        path: &str,
        f: impl FnOnce(&mut MountEntry) -> Result<(), CoreError>,
    ) -> Result<(), CoreError> {
        let u = self.unsealed()?;
        let _g = u.mount_lock.lock().await;
        let full = match table {
            Table::Mounts => path.to_owned(),
            Table::Auth => format!("auth/{path}"),
        };
        let router = u.router();
        let route = router.exact(&full).cloned().ok_or_else(|| {
            CoreError::InvalidRequest(format!(
                "tune of path {path:?} failed: no mount entry found"
            ))
        })?;
        let mut entry = (*route.entry).clone();
        f(&mut entry)?;
        let new_route = self.retuned(&route, entry);
        let routes: Vec<Route> = router
            .routes()
            .iter()
            .map(|r| {
                if *r.path == *full {
                    new_route.clone()
                } else {
                    r.clone()
                }
            })
            .collect();
        let entries: Vec<MountEntry> = routes
            .iter()
            .filter(|r| r.entry.table == table)
            .map(|r| (*r.entry).clone())
            .collect();
        self.save_table(&u.barrier, table_path(table), &entries)
            .await?;
        u.set_router(Router::new(routes));
        Ok(())
    }

    /// Moves a mount to a new path, keeping its data (same uuid, same view).
    pub async fn remount(&self, from: &str, to: &str) -> Result<(), CoreError> {
        let u = self.unsealed()?;
        let _g = u.mount_lock.lock().await;
        let router = u.router();
        let route = router
            .exact(from)
            .cloned()
            .ok_or_else(|| CoreError::InvalidRequest(format!("no matching mount at {from:?}")))?;
        if matches!(
            route.entry.kind.as_str(),
            "system" | "cubbyhole" | "token" | "identity"
        ) {
            return Err(CoreError::InvalidRequest(format!(
                "cannot remount {from:?}"
            )));
        }
        let (table, rel) = match to.strip_prefix("auth/") {
            Some(rest) => (Table::Auth, rest.to_owned()),
            None => (Table::Mounts, to.to_owned()),
        };
        if table != route.entry.table {
            return Err(CoreError::InvalidRequest(
                "cannot move a mount between secrets engines and auth methods".into(),
            ));
        }
        if crate::mounts::protected(&rel, table) {
            return Err(CoreError::InvalidRequest(format!(
                "cannot remount to {to:?}"
            )));
        }
        for r in router.routes() {
            if *r.path != *from && (to.starts_with(&*r.path) || r.path.starts_with(to)) {
                return Err(CoreError::InvalidRequest(format!(
                    "path already in use at {:?}",
                    r.path
                )));
            }
        }
        let mut entry = (*route.entry).clone();
        entry.path = rel;
        let new_route = self.route_for(&u, entry)?;
        self.initialize_route(&new_route).await?;
        let routes: Vec<Route> = router
            .routes()
            .iter()
            .filter(|r| *r.path != *from)
            .cloned()
            .chain(std::iter::once(new_route))
            .collect();
        let entries: Vec<MountEntry> = routes
            .iter()
            .filter(|r| r.entry.table == table)
            .map(|r| (*r.entry).clone())
            .collect();
        self.save_table(&u.barrier, table_path(table), &entries)
            .await?;
        u.set_router(Router::new(routes));
        // The engine instance that served the old path is done.
        route.backend.cleanup().await;
        Ok(())
    }

    /// Creates a root token (init, generate-root, dev mode).
    pub(crate) async fn create_root_token(
        &self,
        u: &Unsealed,
        id: Option<String>,
    ) -> Result<Zeroizing<String>, CoreError> {
        let id = id.unwrap_or_else(new_token_id);
        let mut entry = TokenEntry::service(vec!["root".into()], "auth/token/root", "root", now());
        entry.id = id.clone();
        u.tokens.store(entry).await?;
        Ok(Zeroizing::new(id))
    }

    /// Dev mode: init with one share, unseal, and return (key, root token).
    pub async fn init_dev(
        &self,
        root_token_id: Option<String>,
    ) -> Result<(Zeroizing<Vec<u8>>, Zeroizing<String>), CoreError> {
        let r = self
            .init(InitRequest {
                secret_shares: 1,
                secret_threshold: 1,
                root_token_id,
                ..Default::default()
            })
            .await?;
        let key = r.keys[0].clone();
        self.unseal_with_key(&Key::from_slice(&key)?).await?;
        Ok((key, r.root_token))
    }

    /// Resolves a token and its ACL for a request (the pipeline and `sys/capabilities-self`).
    pub async fn authenticate(
        &self,
        u: &Unsealed,
        token: Option<&str>,
        remote_addr: Option<&str>,
    ) -> Result<Arc<TokenEntry>, CoreError> {
        let token = token
            .filter(|t| !t.is_empty())
            .ok_or(CoreError::PermissionDenied)?;
        u.tokens
            .lookup(token)
            .await?
            .filter(|t| !t.is_exhausted() && t.allows_remote(remote_addr))
            .ok_or(CoreError::PermissionDenied)
    }

    /// The role a request to `path` names, as its auth method resolves it
    /// (`LogicalBackend::resolve_role`: an AppRole `role_id` gives its role's name), for
    /// rate-limit quotas with a `role`. `None` when the method does not say.
    pub async fn resolve_role(&self, path: &str, data: &Map<String, Value>) -> Option<String> {
        let u = self.unsealed().ok()?;
        check_request_path(path).ok()?;
        let router = u.router();
        let (route, rel) = router.route(path)?;
        let ctx = self.engine_context(route);
        match route.backend.resolve_role(&ctx, rel, data).await {
            Ok(r) => r,
            Err(e) => {
                tracing::debug!(mount = %route.path, error = %e, "could not resolve a login's role");
                None
            }
        }
    }

    /// The role a login to `path` names for quotas: as its auth method resolves it
    /// ([`Core::resolve_role`]), else the request's `role` or `role_name` field.
    pub async fn login_role(&self, path: &str, data: &Map<String, Value>) -> Option<String> {
        match self.resolve_role(path, data).await {
            Some(r) => Some(r),
            None => data
                .get("role")
                .or_else(|| data.get("role_name"))
                .and_then(Value::as_str)
                .map(str::to_owned),
        }
    }

    /// A request a rate-limit quota turned away before the pipeline: written to the audit
    /// devices as a request entry with the refusal as its error when `sys/quotas/config` has
    /// `enable_rate_limit_audit_logging` (Vault's behaviour; off by default, so a flood does
    /// not also flood the audit log). No token is looked up for it. An audit failure changes
    /// nothing: the request is refused either way.
    pub async fn audit_rate_limited(&self, req: &CoreRequest, error: &str) {
        let Ok(u) = self.unsealed() else {
            return;
        };
        if !u.audit.enabled() || !u.quotas.audits_refusals() {
            return;
        }
        if check_request_path(&req.path).is_err() {
            return;
        }
        let router = u.router();
        let Some((route, _)) = router.route(&req.path) else {
            return;
        };
        let request_id = uuid::Uuid::new_v4().to_string();
        let audit = AuditCtx {
            u: &u,
            route,
            req,
            path: &req.path,
            request_id: &request_id,
        };
        if let Err(e) = audit.request(None, req.operation, error).await {
            tracing::warn!(error = %e, "could not audit a rate-limited request");
        }
    }

    /// The request pipeline, timed for the metrics hook.
    pub async fn handle(&self, mut req: CoreRequest) -> Result<CoreResponse, CoreError> {
        let started = std::time::Instant::now();
        let result = self.pipeline(&mut req).await;
        // Vault's names: a login is timed as handle_login_request, everything else as
        // handle_request (lock-free, crate::telemetry).
        if req.path.starts_with("auth/") && req.path.contains("/login") {
            crate::telemetry::m::HANDLE_LOGIN_REQUEST.since(started);
        } else {
            crate::telemetry::m::HANDLE_REQUEST.since(started);
        }
        let facts = crate::hooks::RequestFacts {
            path: &req.path,
            operation: req.operation,
            remote_addr: req.remote_addr.as_deref(),
            mount_path: "",
            mount_type: result.as_ref().map(|r| r.mount_type.as_str()).unwrap_or(""),
            unauthenticated: false,
            policies: None,
            governing: None,
        };
        self.0
            .config
            .hooks
            .observe(&facts, result.is_ok(), started.elapsed());
        result
    }

    /// The error for a path no mount serves. Vault checks the token before it routes, so a
    /// caller without a valid token, or whose policies do not grant the operation on the path,
    /// is refused with 403 whether or not a mount is there: mounts cannot be probed (a login to
    /// an auth mount that is not enabled is a 403, as in Vault 1.10 and later). Only a caller
    /// the ACL lets through learns that no handler serves the route (404).
    async fn no_route(&self, u: &Unsealed, req: &CoreRequest) -> CoreError {
        let presented = req.token.as_deref().map(|t| t.as_str());
        let token = match self
            .authenticate(u, presented, req.remote_addr.as_deref())
            .await
        {
            Ok(t) => t,
            Err(e) => return e,
        };
        let acl = match u.acl_for(&token.policies, &token.entity_id) {
            Ok(acl) => acl,
            Err(e) => return e,
        };
        if acl
            .allow_operation(req.operation, &req.path, Some(&req.data))
            .allowed
        {
            CoreError::NoRoute(req.path.clone())
        } else {
            CoreError::PermissionDenied
        }
    }

    /// The request pipeline. Reads top to bottom in Vault's order; see house-style §1.
    async fn pipeline(&self, req: &mut CoreRequest) -> Result<CoreResponse, CoreError> {
        // 1. seal gate; a seal waits for this request before cleaning up the engines
        let _in_flight = self.0.in_flight.read().await;
        let u = self.unsealed()?;
        // 2. the one canonical spelling of the path, then longest-prefix mount lookup. The ACL
        //    decides on exactly the path (and names) the handler acts on.
        check_request_path(&req.path)?;
        let router = u.router();
        let Some((route, rel)) = router.route(&req.path) else {
            return Err(self.no_route(&u, req).await);
        };
        let (path, rel) = match route.backend.canonical_path(rel) {
            Some(canon) => (format!("{}{canon}", route.path), canon),
            None => (req.path.clone(), rel.to_owned()),
        };
        let rel = rel.as_str();
        // The engine gets the request's data by value when nothing reads it again: no audit
        // device (its entries carry the request), no governing policy (its input), not the
        // wrapping endpoints (they read it themselves). A batch of a thousand items is then
        // never copied. Step 8 uses this same snapshot of the governing policies.
        let governing = u.governing.snapshot();
        let moved_data = if !u.audit.enabled()
            && governing.is_empty()
            && !(route.entry.kind == "system" && rel.starts_with("wrapping/"))
        {
            Some(std::mem::take(&mut req.data))
        } else {
            None
        };
        let req: &CoreRequest = req;
        let request_id = uuid::Uuid::new_v4().to_string();
        let audit = AuditCtx {
            u: &u,
            route,
            req,
            path: &path,
            request_id: &request_id,
        };
        let unauthenticated = path_matches_special(&route.special.unauthenticated, rel);
        let mut facts = crate::hooks::RequestFacts {
            path: &path,
            operation: req.operation,
            remote_addr: req.remote_addr.as_deref(),
            mount_path: &route.path,
            mount_type: &route.entry.kind,
            unauthenticated,
            policies: None,
            governing: None,
        };
        // 3. rate limit: quotas turn a flood away before it costs a token lookup
        if let Err(e) = self.0.config.hooks.rate_limit(&facts) {
            return Err(audit.denied(None, req.operation, e).await);
        }
        // 4. token lookup. Unauthenticated paths skip the check but still learn who is calling
        //    when a valid token is sent (the CLI's mount preflight relies on that).
        let check_started = std::time::Instant::now();
        let presented = req.token.as_deref().map(|t| t.as_str());
        let token =
            if unauthenticated {
                match presented.filter(|t| !t.is_empty()) {
                    Some(t) => u.tokens.lookup(t).await?.filter(|t| {
                        !t.is_exhausted() && t.allows_remote(req.remote_addr.as_deref())
                    }),
                    None => None,
                }
            } else {
                let fetched = std::time::Instant::now();
                let t = self
                    .authenticate(&u, presented, req.remote_addr.as_deref())
                    .await;
                crate::telemetry::m::FETCH_ACL_AND_TOKEN.since(fetched);
                match t {
                    Ok(t) => Some(t),
                    // A spent wrapping token sent as the request token gets Vault's unwrap error.
                    Err(CoreError::PermissionDenied)
                        if route.entry.kind == "system"
                            && rel == "wrapping/unwrap"
                            && !req.data.contains_key("token") =>
                    {
                        return Err(audit
                            .denied(
                                None,
                                req.operation,
                                CoreError::InvalidRequest(crate::wrapping::INVALID.into()),
                            )
                            .await);
                    }
                    Err(e) => return Err(audit.denied(None, req.operation, e).await),
                }
            };
        // 5. a fresh engine request (the original is never mutated)
        let mut engine_req = Request {
            operation: req.operation,
            path: rel.to_owned(),
            data: moved_data.unwrap_or_else(|| req.data.clone()),
            storage: Arc::new(route.view.clone()),
            mount: route.mount.clone(),
            caller: Caller::default(),
            secret: None,
            connection: Arc::new(tresor_sdk::Connection {
                remote_addr: req.remote_addr.clone(),
                peer_certificates: req.peer_certificates.clone(),
            }),
            headers: passthrough_headers(
                &route.entry.config.passthrough_request_headers,
                req,
                // A Bearer that is a valid Tresor token is the caller's credential, never the
                // engine's.
                unauthenticated && !(token.is_some() && bearer_is_token(req)),
            ),
            raw_body: req.raw_body.clone(),
            deadline: Some(std::time::Instant::now() + self.0.config.max_request_duration),
        };
        // 6. the existence check decides create vs update, but only for a caller the ACL lets
        //    do one of the two: nothing reaches an engine for a write the token cannot make.
        if engine_req.operation == Operation::Update {
            if let Some(t) = token.as_deref()
                && !unauthenticated
            {
                let acl = match u.acl_for(&t.policies, &t.entity_id) {
                    Ok(acl) => acl,
                    Err(e) => return Err(audit.denied(Some(t), engine_req.operation, e).await),
                };
                let may = |op| {
                    acl.allow_operation(op, &path, Some(&engine_req.data))
                        .allowed
                };
                if !may(Operation::Update) && !may(Operation::Create) {
                    return Err(audit
                        .denied(Some(t), engine_req.operation, CoreError::PermissionDenied)
                        .await);
                }
            }
            match route.backend.exists(&engine_req).await {
                Ok(Some(false)) => engine_req.operation = Operation::Create,
                Ok(_) => {}
                Err(e) => {
                    return Err(audit
                        .denied(token.as_deref(), engine_req.operation, CoreError::from(e))
                        .await);
                }
            }
        }
        // 7. authorization: only the policy module can build the `Authorized` dispatch needs
        let sudo_path = path_matches_special(&route.special.root, rel);
        let authorized = match self.authorize(
            &u,
            token.as_deref(),
            unauthenticated,
            sudo_path,
            &path,
            &engine_req,
        ) {
            Ok(a) => a,
            Err(e) => {
                return Err(audit
                    .denied(token.as_deref(), engine_req.operation, e)
                    .await);
            }
        };
        crate::telemetry::m::CHECK_TOKEN.since(check_started);
        let wrap_ttl = match wrap_ttl_for(req, rel, route, &authorized) {
            Ok(w) => w,
            Err(e) => {
                return Err(audit
                    .denied(token.as_deref(), engine_req.operation, e)
                    .await);
            }
        };
        // 8. governing policies, after the ACL: they may refuse, or allow with warnings
        facts.operation = engine_req.operation;
        facts.policies = token.as_deref().map(|t| t.policies.as_slice());
        let identity = match token.as_deref() {
            Some(t) if !governing.is_empty() => u.entity(&t.entity_id),
            _ => None,
        };
        if !governing.is_empty() {
            facts.governing = Some(crate::governing::facts(
                &governing,
                req,
                token.as_deref(),
                identity.as_deref(),
                self.0.config.clock.now(),
            ));
        }
        let governed = match self.0.config.hooks.govern(&facts) {
            Ok(w) => w,
            Err(e) => {
                return Err(audit
                    .denied(token.as_deref(), engine_req.operation, e)
                    .await);
            }
        };
        // A full lease-count quota refuses requests on its path before they reach the engine
        // (which could otherwise create a credential no lease would ever revoke). The role a
        // login names is found only when a lease-count quota with a role covers the path.
        let login_role =
            if engine_req.operation != Operation::Help && u.quotas.lease_role_matters(&path) {
                self.login_role(&path, &engine_req.data).await
            } else {
                None
            };
        if engine_req.operation != Operation::Help
            && let Err(e) = u
                .quotas
                .check_lease(&path, login_role.as_deref(), &u.expiration)
                .await
        {
            return Err(audit
                .denied(token.as_deref(), engine_req.operation, e)
                .await);
        }
        // Limited-use tokens spend a use on every authorized request, under the token's lock
        // on its stored count; wrapping tokens are spent by the unwrap itself (their policy
        // allows nothing else). The last use revokes the token when this request ends, however
        // it ends: the guard revokes it even if a later step fails or panics.
        let mut last_use = None;
        if let Some(t) = &token
            && !unauthenticated
            && t.policies != [crate::wrapping::WRAPPING_POLICY]
        {
            match u.tokens.use_token(t).await {
                Ok(true) => last_use = Some(LastUse::new(&u, &t.hash)),
                Ok(false) => {}
                Err(e) => return Err(audit.denied(Some(t), engine_req.operation, e).await),
            }
        }
        // 9. audit the request; if no device can record it, it does not happen. From here on
        //    the operation is final (create or update after the existence check), and the
        //    response entry names the same one, as Vault's do.
        let operation = engine_req.operation;
        audit.request(token.as_deref(), operation, "").await?;
        // 10. dispatch
        let mount_type = route.entry.kind.clone();
        engine_req.caller = Self::caller(&u, token.as_deref(), &authorized);
        let mut out = CoreResponse {
            request_id: request_id.clone(),
            mount_type,
            ..Default::default()
        };
        let dispatched = std::time::Instant::now();
        let result = if engine_req.operation == Operation::Help {
            // Help is answered from the engine's path table, never by a handler.
            match route.backend.help(rel) {
                Some(h) => {
                    out.response = Some(Response::data(h));
                    Ok(None)
                }
                None => Err(CoreError::UnsupportedPath),
            }
        } else if route.entry.kind == "system"
            && (rel == "wrapping/unwrap" || rel == "wrapping/rewrap")
        {
            u.unwrap_dispatch(rel, req, token.as_deref()).await
        } else {
            // A panic in an engine is an internal error for this request, not a lost
            // connection: the response is still audited and the token's use still counted.
            let limit = self.0.config.max_request_duration;
            match tokio::time::timeout(limit, CatchPanic(dispatch(route, engine_req, authorized)))
                .await
            {
                Err(_) => Err(CoreError::Internal(format!(
                    "the request took longer than the maximum request duration ({}s)",
                    limit.as_secs()
                ))),
                Ok(Err(e)) => Err(e),
                Ok(Ok(Err(e))) => Err(CoreError::from(e)),
                Ok(Ok(Ok(response))) => self
                    .finish(
                        &u,
                        route,
                        &path,
                        token.as_deref(),
                        response,
                        &mut out,
                        &mfa_headers(req),
                        login_role.as_deref(),
                    )
                    .await
                    .map(|()| None),
            }
        };
        crate::telemetry::route_timer(operation, &route.path).since(dispatched);
        if let Some(last) = last_use {
            last.revoke_now().await?;
        }
        match result {
            Err(e) => {
                audit
                    .response(token.as_deref(), operation, None, &e.to_string())
                    .await?;
                return Err(e);
            }
            Ok(Some(unwrapped)) => out = unwrapped,
            Ok(None) => {}
        }
        if !governed.is_empty() {
            out.response
                .get_or_insert_with(Response::default)
                .warnings
                .extend(governed);
        }
        // 11. response wrapping
        if let Some(ttl) = wrap_ttl
            && (out
                .response
                .as_ref()
                .is_some_and(|r| r.data.is_some() || !r.warnings.is_empty())
                || out.auth.is_some())
        {
            out = u.wrap(out, ttl, &path).await?;
        }
        // 12. audit the response
        audit
            .response(token.as_deref(), operation, Some(&out), "")
            .await?;
        Ok(out)
    }

    /// Step 8's second half: leases for secrets, tokens for auth (or a login held for MFA),
    /// lease reports.
    #[allow(clippy::too_many_arguments)] // reason: the pipeline's borrowed pieces, one call site
    async fn finish(
        &self,
        u: &Unsealed,
        route: &Route,
        path: &str,
        token: Option<&TokenEntry>,
        response: Option<Response>,
        out: &mut CoreResponse,
        mfa_headers: &[&str],
        login_role: Option<&str>,
    ) -> Result<(), CoreError> {
        let Some(mut resp) = response else {
            return Ok(());
        };
        let at = now();
        if let Some(secret) = resp.secret.take() {
            let token_id = token.map(|t| t.hash.as_str()).unwrap_or_default();
            // A lease-count quota refuses the lease (and so the secret) when full; its guard
            // is held until the lease is stored.
            let _quota = u.quotas.check_lease(path, None, &u.expiration).await?;
            let registered = std::time::Instant::now();
            let lease = u
                .expiration
                .register_secret(
                    path,
                    token_id,
                    &secret,
                    route.mount.default_lease_ttl,
                    route.mount.max_lease_ttl,
                    at,
                )
                .await?;
            crate::telemetry::m::EXPIRE_REGISTER.since(registered);
            out.lease_id = lease.lease_id;
            out.lease_duration = (lease.expire_time - at).max(0) as u64;
            out.renewable = lease.renewable;
        }
        // An advisory duration with no lease behind it (KV v1's refresh interval).
        if let Some(d) = resp.lease_duration.take() {
            out.lease_duration = d.as_secs();
        }
        if let Some((id, ttl, renewable)) = resp.renewed.take() {
            out.lease_id = id;
            out.lease_duration = ttl.as_secs();
            out.renewable = renewable;
        }
        if let Some(mut auth) = resp.auth.take() {
            self.resolve_login_entity(u, route, &mut auth).await?;
            if let Some(requirement) = self.login_mfa(u, route, &auth, path, mfa_headers).await? {
                // No token yet: the login waits for its passcodes (`sys/mfa/validate`).
                out.auth = Some(json!({
                    "client_token": "",
                    "accessor": "",
                    "policies": null,
                    "token_policies": null,
                    "metadata": null,
                    "lease_duration": 0,
                    "renewable": false,
                    "entity_id": "",
                    "token_type": "",
                    "orphan": false,
                    "num_uses": 0,
                    "mfa_requirement": requirement,
                }));
                out.response = Some(resp);
                return Ok(());
            }
            // A lease-count quota on the login path counts login tokens' leases too; its guard
            // is held until the token (and its lease) is stored, so concurrent logins cannot
            // all take the last place.
            // Tokens the token store created arrive with their lease stored (the store checked
            // its own quotas under the same guard).
            let _quota = if auth.client_token.is_empty() {
                u.quotas
                    .check_lease(path, login_role, &u.expiration)
                    .await?
            } else {
                None
            };
            let auth = self
                .materialize_auth(u, route, auth, path, at, login_role)
                .await?;
            let identity = u
                .entity(&auth.entity_id)
                .map(|r| r.policies.clone())
                .unwrap_or_default();
            out.auth = Some(render_auth(&auth, &identity));
        }
        out.response = Some(resp);
        Ok(())
    }

    /// The ACL decision: the policy module alone builds the [`tresor_policy::Authorized`]
    /// that dispatch takes.
    fn authorize(
        &self,
        u: &Unsealed,
        token: Option<&TokenEntry>,
        unauthenticated: bool,
        sudo_path: bool,
        full_path: &str,
        req: &Request,
    ) -> Result<tresor_policy::Authorized, CoreError> {
        let Some(token) = token else {
            // Only unauthenticated paths get here without a token.
            return Ok(tresor_policy::Authorized::unauthenticated_path(false));
        };
        if unauthenticated {
            let root = u
                .acl_for(&token.policies, &token.entity_id)
                .is_ok_and(|acl| acl.is_root());
            return Ok(tresor_policy::Authorized::unauthenticated_path(root));
        }
        let acl = u.acl_for(&token.policies, &token.entity_id)?;
        acl.authorize(req.operation, full_path, Some(&req.data), sudo_path)
            .map_err(|_| CoreError::PermissionDenied)
    }

    /// The caller an engine sees: who the token is, and what the ACL decided.
    fn caller(u: &Unsealed, token: Option<&TokenEntry>, a: &tresor_policy::Authorized) -> Caller {
        let Some(token) = token else {
            return Caller::default();
        };
        let entity = u.entity(&token.entity_id).map(|r| r.info.clone());
        Caller {
            token_id: Some(token.hash.clone()),
            token_accessor: Some(token.accessor.clone()),
            sudo: a.sudo(),
            is_root: a.is_root(),
            display_name: token.display_name.clone(),
            policies: token.policies.clone(),
            entity_id: token.entity_id.clone(),
            entity,
            batch_token: token.is_batch().then(|| token.id.clone()),
            token_issued_at: Some(token.creation_time),
        }
    }

    /// The compiled ACL and special paths needed by `sys/capabilities`.
    pub fn special_paths_for(&self, path: &str) -> Option<Arc<SpecialPaths>> {
        let u = self.unsealed().ok()?;
        let router = u.router();
        router.route(path).map(|(r, _)| r.special.clone())
    }
}

/// The `X-Vault-MFA` header values of a request (login MFA passcodes sent with the login).
fn mfa_headers(req: &CoreRequest) -> Vec<&str> {
    req.headers
        .iter()
        .filter(|(n, _)| n == "x-vault-mfa")
        .map(|(_, v)| v.as_str())
        .collect()
}

/// Whether the `Authorization` header is `Bearer <the request's token>`.
fn bearer_is_token(req: &CoreRequest) -> bool {
    let (Some(a), Some(t)) = (&req.authorization, &req.token) else {
        return false;
    };
    a.len() > 7
        && a[..7].eq_ignore_ascii_case("bearer ")
        && a[7..].trim().as_bytes() == t.as_bytes()
}

/// The request headers a mount lets through to its engine (`passthrough_request_headers`,
/// compared without case). The token and cookies never pass; `Authorization` passes only to
/// an unauthenticated path, where it is a credential for the engine itself (the OIDC
/// provider's client authentication and access tokens), not the caller's Vault token.
fn passthrough_headers(
    allowed: &[String],
    req: &CoreRequest,
    authorization: bool,
) -> Vec<(String, String)> {
    if allowed.is_empty() {
        return Vec::new();
    }
    let lets = |name: &str| allowed.iter().any(|a| a.eq_ignore_ascii_case(name));
    let mut out: Vec<(String, String)> = req
        .headers
        .iter()
        .filter(|(n, _)| {
            !matches!(n.as_str(), "x-vault-token" | "authorization" | "cookie") && lets(n)
        })
        .cloned()
        .collect();
    if authorization
        && lets("authorization")
        && let Some(a) = &req.authorization
    {
        out.push(("authorization".into(), a.to_string()));
    }
    out
}

/// Hands a request to its engine. The ACL's [`tresor_policy::Authorized`], which only the
/// policy module can build, is the ticket: no other code path reaches an engine's handler.
fn dispatch(
    route: &Route,
    req: Request,
    _authorized: tresor_policy::Authorized,
) -> std::pin::Pin<
    Box<dyn std::future::Future<Output = tresor_sdk::Result<Option<Response>>> + Send + '_>,
> {
    route.backend.handle(req)
}

/// Refuses request paths that no client sends and that could be read two ways: control
/// characters (a NUL once reached storage and came back in an error naming the internal key)
/// and `.`/`..` segments.
fn check_request_path(path: &str) -> Result<(), CoreError> {
    if path.chars().any(char::is_control) {
        return Err(CoreError::InvalidRequest(
            "invalid request path: control characters are not allowed".into(),
        ));
    }
    if path.split('/').any(|seg| seg == "." || seg == "..") {
        return Err(CoreError::InvalidRequest(
            "invalid request path: '.' and '..' segments are not allowed".into(),
        ));
    }
    Ok(())
}

/// A limited-use token whose last use the current request spent: revoked when the request
/// ends. Should the request end another way (an error returned early, a panic), dropping the
/// guard revokes it in the background; the token authenticates nothing in the meantime.
struct LastUse {
    u: Arc<Unsealed>,
    hash: String,
    /// Cleared once the request itself revoked the token.
    armed: bool,
}

impl LastUse {
    fn new(u: &Arc<Unsealed>, hash: &str) -> Self {
        LastUse {
            u: u.clone(),
            hash: hash.to_owned(),
            armed: true,
        }
    }

    async fn revoke_now(mut self) -> Result<(), CoreError> {
        self.u.revoke_token(&self.hash, false).await?;
        self.armed = false;
        Ok(())
    }
}

impl Drop for LastUse {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let (u, hash) = (self.u.clone(), std::mem::take(&mut self.hash));
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                if let Err(e) = u.revoke_token(&hash, false).await {
                    tracing::error!(error = %e, "revoking a spent limited-use token failed");
                }
            });
        }
    }
}

/// Runs an engine's future, turning a panic into an internal error for this request.
struct CatchPanic<F>(F);

impl<F, T> std::future::Future for CatchPanic<std::pin::Pin<Box<F>>>
where
    F: std::future::Future<Output = T> + ?Sized,
{
    type Output = Result<T, CoreError>;
    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        let fut = self.0.as_mut();
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| fut.poll(cx))) {
            Ok(std::task::Poll::Pending) => std::task::Poll::Pending,
            Ok(std::task::Poll::Ready(v)) => std::task::Poll::Ready(Ok(v)),
            Err(_) => {
                tracing::error!("an engine panicked while handling a request");
                std::task::Poll::Ready(Err(CoreError::Internal("internal error".into())))
            }
        }
    }
}

fn table_path(t: Table) -> &'static str {
    match t {
        Table::Mounts => MOUNTS_PATH,
        Table::Auth => AUTH_PATH,
    }
}

/// Vault's `auth` block from an engine's [`tresor_sdk::Auth`]: `policies` is the token's own
/// policies followed by its identity policies (the entity's and its groups'), which are also
/// listed as `identity_policies` when there are any (Vault leaves the key out otherwise).
pub fn render_auth(a: &tresor_sdk::Auth, identity_policies: &[String]) -> Value {
    let mut all = a.policies.clone();
    for p in identity_policies {
        if !all.contains(p) {
            all.push(p.clone());
        }
    }
    let mut auth = json!({
        "client_token": a.client_token,
        "accessor": a.accessor,
        "policies": all,
        "token_policies": a.policies,
        "metadata": if a.metadata.is_empty() { Value::Null } else { json!(a.metadata) },
        "lease_duration": a.ttl.as_secs(),
        "renewable": a.renewable,
        "entity_id": a.entity_id,
        "token_type": a.token_type.clone().unwrap_or_else(|| "service".into()),
        "orphan": a.orphan,
        "mfa_requirement": null,
        "num_uses": a.num_uses,
    });
    if !identity_policies.is_empty() {
        auth["identity_policies"] = json!(identity_policies);
    }
    auth
}

#[cfg(test)]
mod header_tests {
    use super::*;

    fn request(token: Option<&str>, authorization: Option<&str>) -> CoreRequest {
        let mut r = CoreRequest::new(Operation::Read, "identity/x", Map::new(), token);
        r.headers = vec![
            ("accept".into(), "text/plain".into()),
            ("cookie".into(), "c=1".into()),
        ];
        r.authorization = authorization.map(|a| Zeroizing::new(a.to_owned()));
        r
    }

    fn names(h: &[(String, String)]) -> Vec<&str> {
        h.iter().map(|(n, _)| n.as_str()).collect()
    }

    #[test]
    fn authorization_passes_only_where_the_engine_may_have_it() {
        let allowed = ["Authorization".to_owned(), "Accept".to_owned()];
        let basic = request(None, Some("Basic YTpi"));
        assert_eq!(
            names(&passthrough_headers(&allowed, &basic, true)),
            ["accept", "authorization"]
        );
        // Authenticated paths (and the mount not naming it) never get it; cookies never.
        assert_eq!(
            names(&passthrough_headers(&allowed, &basic, false)),
            ["accept"]
        );
        assert!(
            passthrough_headers(&["Accept".to_owned()], &basic, true)
                .iter()
                .all(|(n, _)| n != "authorization")
        );
        // A Bearer that is the request's token is recognised as such.
        assert!(bearer_is_token(&request(
            Some("hvs.x"),
            Some("Bearer hvs.x")
        )));
        assert!(bearer_is_token(&request(
            Some("hvs.x"),
            Some("bearer  hvs.x ")
        )));
        assert!(!bearer_is_token(&request(
            Some("hvs.x"),
            Some("Bearer other")
        )));
        assert!(!bearer_is_token(&request(
            Some("hvs.x"),
            Some("Basic aHZzLng=")
        )));
        assert!(!bearer_is_token(&request(None, Some("Bearer hvs.x"))));
    }
}
