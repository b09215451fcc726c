//! Lease operations on the core: renew and revoke (routed back to the issuing engine), token
//! revocation with everything hanging off a token, and the expiry loop.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Map;
use tresor_sdk::{Caller, Operation, Request};

use crate::core::{Core, Unsealed};
use crate::error::CoreError;
use crate::expiration::{LeaseEntry, LeaseKind, secret_ref};
use crate::tokens::{TokenEntry, now};

/// How many due leases one tick revokes at most (the rest wait for the next tick).
const TICK_BATCH: usize = 10_000;
/// Leases listed and revoked per round of a prefix revocation.
const REVOKE_BATCH: usize = 1024;
/// Revocations in flight at once during a tick.
const TICK_PARALLEL: usize = 32;

/// Whether a login gets a batch token: the auth mount's `token_type` forces a type or sets the
/// default, which the role's choice overrides.
fn login_token_type(role: &str, mount: &str) -> Result<bool, CoreError> {
    let explicit = match role {
        "service" => Some(false),
        "batch" => Some(true),
        _ => None,
    };
    match mount {
        "service" | "batch" => {
            let forced = mount == "batch";
            if explicit.is_some_and(|b| b != forced) {
                return Err(CoreError::InvalidRequest(format!(
                    "the auth mount only issues {mount} tokens, and the role asks for {role} tokens"
                )));
            }
            Ok(forced)
        }
        "default-batch" => Ok(explicit.unwrap_or(true)),
        _ => Ok(explicit.unwrap_or(role == "default-batch")),
    }
}

/// A login token's TTL (`None`: never expires) and the cap on its lifetime.
struct LoginTtl {
    ttl: Duration,
    max: Duration,
}

/// Vault's rules: the method's TTL or the mount's default; never past the method's max TTL or
/// the mount's; a period replaces the TTL; an explicit max TTL caps everything.
fn login_ttl(auth: &tresor_sdk::Auth, mount: &tresor_sdk::MountView) -> LoginTtl {
    let mut max = mount.max_lease_ttl;
    if !auth.max_ttl.is_zero() {
        max = max.min(auth.max_ttl);
    }
    let mut ttl = if !auth.period.is_zero() {
        auth.period
    } else if auth.ttl.is_zero() {
        mount.default_lease_ttl.min(max)
    } else {
        auth.ttl.min(max)
    };
    if !auth.explicit_max_ttl.is_zero() {
        ttl = ttl.min(auth.explicit_max_ttl);
        max = max.min(auth.explicit_max_ttl);
    }
    LoginTtl { ttl, max }
}

impl Core {
    /// Resolves a login's alias to its identity entity (created on first login), once.
    pub(crate) async fn resolve_login_entity(
        &self,
        u: &Unsealed,
        route: &crate::mounts::Route,
        auth: &mut tresor_sdk::Auth,
    ) -> Result<(), CoreError> {
        if auth.client_token.is_empty()
            && auth.entity_id.is_empty()
            && let Some(alias) = &auth.alias
        {
            auth.entity_id = u
                .identity
                .login(&route.entry.accessor, alias, &auth.group_aliases)
                .await?;
        }
        Ok(())
    }

    /// Login MFA: `Ok(Some(requirement))` when an enforcement selects this login and its
    /// passcodes did not come with it (`X-Vault-MFA`); the login is then held until
    /// `sys/mfa/validate`. `Ok(None)`: no MFA needed, or the passcodes validated.
    pub(crate) async fn login_mfa(
        &self,
        u: &Unsealed,
        route: &crate::mounts::Route,
        auth: &tresor_sdk::Auth,
        login_path: &str,
        mfa_headers: &[&str],
    ) -> Result<Option<serde_json::Value>, CoreError> {
        if !auth.client_token.is_empty() {
            return Ok(None);
        }
        let (direct, inherited) = u.identity.groups_of(&auth.entity_id);
        let groups: Vec<String> = direct.into_iter().chain(inherited).collect();
        let required = u.identity.mfa.required(
            &route.entry.accessor,
            &route.entry.kind,
            &auth.entity_id,
            &groups,
        );
        if required.is_empty() {
            return Ok(None);
        }
        if !mfa_headers.is_empty() {
            let payload = crate::mfa::payload_from_headers(mfa_headers);
            u.identity
                .mfa
                .validate(&auth.entity_id, &required, &payload)
                .await?;
            return Ok(None);
        }
        let id = u.identity.mfa.hold(crate::mfa::PendingInput {
            auth: auth.clone(),
            mount_path: route.path.to_string(),
            login_path: login_path.to_owned(),
            constraints: required.clone(),
        });
        Ok(Some(u.identity.mfa.requirement(&id, &required)))
    }

    /// Turns an auth method's `Auth` into a token (logins), honouring the auth mount's tuned
    /// TTLs and token type and recording the login path (the issuing method, called back on
    /// renewal). Tokens the token store created itself pass through unchanged.
    pub(crate) async fn materialize_auth(
        &self,
        u: &Unsealed,
        route: &crate::mounts::Route,
        mut auth: tresor_sdk::Auth,
        path: &str,
        at: i64,
        role: Option<&str>,
    ) -> Result<tresor_sdk::Auth, CoreError> {
        if auth.client_token.is_empty() {
            let mut policies: Vec<String> = auth
                .policies
                .iter()
                .map(|p| p.trim().to_lowercase())
                .filter(|p| !p.is_empty())
                .collect();
            refuse_unassignable(&policies)?;
            if !auth.no_default_policy && !policies.iter().any(|p| p == "default") {
                policies.push("default".into());
            }
            policies.sort();
            policies.dedup();
            let batch = login_token_type(
                auth.token_type.as_deref().unwrap_or("default"),
                &route.entry.config.token_type,
            )?;
            let limits = login_ttl(&auth, &route.mount);
            self.resolve_login_entity(u, route, &mut auth).await?;
            // The entity's and its groups' policies count as the token's, as in Vault.
            if let Some(r) = u.entity(&auth.entity_id) {
                refuse_unassignable(&r.policies)?;
            }
            let mut entry = TokenEntry::service(policies.clone(), path, &auth.display_name, at)
                .with_ttl(limits.ttl.as_secs());
            entry.meta = auth.metadata.clone();
            entry.num_uses = auth.num_uses.max(0);
            entry.explicit_max_ttl = auth.explicit_max_ttl.as_secs();
            entry.max_ttl = limits.max.as_secs();
            entry.period = auth.period.as_secs();
            entry.renewable = auth.renewable && !batch;
            entry.bound_cidrs = auth.bound_cidrs.clone();
            entry.internal_data = auth.internal_data.clone();
            entry.mount_accessor = route.entry.accessor.clone();
            entry.entity_id = auth.entity_id.clone();
            if let Some(r) = u.entity(&entry.entity_id)
                && r.info.disabled
            {
                return Err(CoreError::PermissionDenied);
            }
            let e = if batch {
                if entry.num_uses > 0 || entry.period > 0 {
                    return Err(CoreError::InvalidRequest(
                        "batch tokens cannot be periodic or have a use limit".into(),
                    ));
                }
                entry.token_type = "batch".into();
                entry.accessor.clear();
                entry.id = u.tokens.mint_batch(&entry)?;
                std::sync::Arc::new(entry)
            } else {
                entry.hash = u.tokens.hash(&entry.id);
                let lease = match entry.expire_time {
                    Some(exp) => u.expiration.token_lease_ops(
                        &entry.path,
                        &entry.hash,
                        &entry.accessor,
                        at,
                        exp,
                        role.unwrap_or(""),
                    )?,
                    None => Vec::new(),
                };
                u.tokens.store_with(entry, lease).await?
            };
            auth.client_token = e.id.clone();
            auth.accessor = e.accessor.clone();
            auth.orphan = true;
            auth.policies = policies;
            auth.ttl = Duration::from_secs(e.remaining(at).max(0) as u64);
            auth.renewable = e.renewable && e.expire_time.is_some();
            auth.token_type = Some(e.token_type.clone());
            auth.num_uses = e.num_uses;
        }
        // Tokens the token store created arrive with their lease already committed.
        // Counting clients never fails a login: a storage error is logged and the token
        // handed out.
        if let Err(e) = u
            .activity
            .record(
                &auth.entity_id,
                &auth.policies,
                (&route.path, &route.entry.accessor, &route.entry.kind),
                at,
            )
            .await
        {
            tracing::warn!(error = %e, "could not record the client in the activity log");
        }
        Ok(auth)
    }

    /// Revokes every lease under a prefix (`sys/leases/revoke-prefix`, `-force`).
    pub async fn revoke_prefix(&self, prefix: &str, force: bool) -> Result<usize, CoreError> {
        self.unsealed()?.revoke_prefix(prefix, force).await
    }

    /// The background loop's work at time `at`: rotate the barrier key when its configured
    /// interval has elapsed, then expire what is due. Tests call it with a chosen `at`.
    pub async fn maintenance_tick(&self, at: i64) -> Result<usize, CoreError> {
        let u = self.unsealed()?;
        if u.barrier.rotation_due(at) {
            let term = u.barrier.rotate().await?;
            tracing::info!(term, "barrier key rotated: rotation interval elapsed");
        }
        if self.periodic_due(&u, at) {
            self.periodic_tick(at).await?;
        }
        drop(u);
        self.snapshot_auto_tick(at).await;
        self.expire_tick(at).await
    }

    /// One expiry pass at time `at`: revokes what is due, retrying failures with backoff.
    /// Tests call this with a chosen `at` instead of waiting.
    pub async fn expire_tick(&self, at: i64) -> Result<usize, CoreError> {
        let u = self.unsealed()?;
        let due = u.expiration.due(at, TICK_BATCH).await?;
        let n = due.len();
        let tasks = spawn_bounded(due, |e| {
            let u = u.clone();
            async move { u.expire_one(e, at).await }
        })
        .await?;
        for t in tasks {
            if let Ok(Err(e)) = t.await {
                tracing::warn!(error = %e, "lease expiry step failed");
            }
        }
        Ok(n)
    }

    /// Starts the background expiry loop for the current unsealed state; it stops by itself
    /// when the core is sealed or dropped.
    pub(crate) fn spawn_expiry_loop(&self, u: &Arc<Unsealed>) {
        let weak_core = Arc::downgrade(&self.0);
        let weak_u = Arc::downgrade(u);
        tokio::spawn(async move {
            let mut interval = tokio::time::interval(Duration::from_secs(1));
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                interval.tick().await;
                let (Some(inner), Some(u)) = (weak_core.upgrade(), weak_u.upgrade()) else {
                    return;
                };
                let core = Core(inner);
                // Sealed, or unsealed again with a new state: this loop's state is gone.
                match core.unsealed() {
                    Ok(cur) if Arc::ptr_eq(&cur, &u) => {}
                    _ => return,
                }
                drop(u);
                // With HA, background work runs on the active node only.
                if !core.runs_background_work() {
                    continue;
                }
                let at = tresor_sdk::clock::unix(core.config().clock.now());
                if let Err(e) = core.maintenance_tick(at).await {
                    tracing::warn!(error = %e, "background tick failed");
                }
            }
        });
    }
}

/// Lease and token revocation need only the subsystems of one unseal: the token store, the
/// expiration manager and the router (to reach the issuing engine).
impl Unsealed {
    async fn expire_one(&self, e: LeaseEntry, at: i64) -> Result<(), CoreError> {
        if e.kind == LeaseKind::Token {
            // Token renewals move the token's expiry, not the lease's: follow the token.
            match self.tokens.by_id_raw(&e.token_id).await? {
                Some(t) if t.expire_time.is_some_and(|x| x > at) => {
                    let exp = t.expire_time.unwrap_or(at);
                    self.expiration.renewed(e, exp, at).await?;
                    return Ok(());
                }
                _ => {}
            }
        }
        let timeout = Duration::from_secs(30);
        match tokio::time::timeout(timeout, self.revoke_entry(&e)).await {
            Ok(Ok(())) => self.expiration.remove(&e).await,
            Ok(Err(err)) => {
                tracing::warn!(lease_id = %e.lease_id, attempts = e.attempts + 1, error = %err, "revocation failed; will retry with backoff");
                self.expiration.retry_later(e, at).await
            }
            Err(_) => {
                tracing::warn!(lease_id = %e.lease_id, "revocation timed out; will retry with backoff");
                self.expiration.retry_later(e, at).await
            }
        }
    }

    /// Revokes a token (and its children unless `orphan`), its leases and its cubbyhole.
    pub async fn revoke_token(&self, id: &str, orphan: bool) -> Result<(), CoreError> {
        let ids = if orphan {
            vec![(id.to_owned(), self.tokens.revoke_orphan(id).await?)]
        } else {
            self.tokens.revoke_tree(id).await?
        };
        let router = self.router();
        let cubby = router.exact("cubbyhole/").map(|r| r.view.clone());
        // Independent per token: in groups, so their storage commits share fsyncs.
        let cubby = cubby.as_ref();
        crate::join::in_groups(&ids, 64, |(t, lease_id)| {
            self.forget_revoked_token(t, lease_id.as_deref(), cubby)
        })
        .await
        .into_iter()
        .collect::<Result<Vec<()>, CoreError>>()?;
        Ok(())
    }

    /// What a revoked token leaves behind: the leases it created, its lease index, its own
    /// lease and its cubbyhole.
    async fn forget_revoked_token(
        &self,
        t: &str,
        lease_id: Option<&str>,
        cubby: Option<&crate::barrier::View>,
    ) -> Result<(), CoreError> {
        for lease in self.expiration.by_token(t).await? {
            if let Err(e) = self.revoke_lease(&lease, true).await {
                tracing::warn!(lease_id = %lease, error = %e, "revoking a lease of a revoked token failed");
            }
        }
        self.expiration.forget_token_index(t).await?;
        // The token's own lease: gone with the token, so that sys/leases and lease-count
        // quotas stop counting it. A token whose ordered accessor came before ordered
        // lease ids has its lease under `<path>/<id>`.
        if let Some(lease_id) = lease_id {
            let mut found = self.expiration.get(lease_id).await?;
            if found.is_none()
                && let Some((path, last)) = lease_id.rsplit_once('/')
                && let Some((_, plain)) = last.split_once('.')
            {
                found = self.expiration.get(&format!("{path}/{plain}")).await?;
            }
            if let Some(e) = found
                && e.kind == crate::expiration::LeaseKind::Token
            {
                self.expiration.remove(&e).await?;
            }
        }
        if let Some(v) = cubby {
            tresor_sdk::Storage::delete_prefix(v, &format!("{t}/")).await?;
        }
        Ok(())
    }

    fn engine_request(
        &self,
        e: &LeaseEntry,
        increment: Option<Duration>,
    ) -> Result<(Request, Arc<dyn tresor_sdk::LogicalBackend>), CoreError> {
        let router = self.router();
        let (route, rel) = router.route(&e.path).ok_or_else(|| {
            CoreError::InvalidRequest(format!("no mount serves lease {:?} any more", e.lease_id))
        })?;
        let req = Request {
            operation: Operation::Delete,
            path: rel.to_owned(),
            data: Map::new(),
            storage: Arc::new(route.view.clone()),
            mount: route.mount.clone(),
            caller: Caller::default(),
            secret: Some(secret_ref(e, increment)),
            connection: Default::default(),
            headers: Vec::new(),
            raw_body: None,
            deadline: None,
        };
        Ok((req, route.backend.clone()))
    }

    /// Revokes one lease. `force` forgets it even when the engine fails to revoke.
    pub async fn revoke_lease(&self, lease_id: &str, force: bool) -> Result<(), CoreError> {
        let _timer = crate::telemetry::m::EXPIRE_REVOKE.start();
        let Some(e) = self.expiration.get(lease_id).await? else {
            return Ok(());
        };
        match self.revoke_entry(&e).await {
            Ok(()) => self.expiration.remove(&e).await,
            Err(err) if force => {
                tracing::warn!(lease_id, error = %err, "forced revocation: engine failed, lease forgotten anyway");
                self.expiration.remove(&e).await
            }
            Err(err) => Err(err),
        }
    }

    async fn revoke_entry(&self, e: &LeaseEntry) -> Result<(), CoreError> {
        match e.kind {
            LeaseKind::Token => Box::pin(self.revoke_token(&e.token_id, false)).await,
            LeaseKind::Secret => {
                let (req, backend) = self.engine_request(e, None)?;
                backend.revoke_secret(req).await?;
                Ok(())
            }
        }
    }

    /// Renews a lease by `increment` (or its original TTL), within the mount's and the
    /// system's max TTL. Returns the renewed entry.
    pub async fn renew_lease(
        &self,
        lease_id: &str,
        increment: Option<Duration>,
    ) -> Result<LeaseEntry, CoreError> {
        let _timer = crate::telemetry::m::EXPIRE_RENEW.start();
        let e = self
            .expiration
            .get(lease_id)
            .await?
            .ok_or_else(|| CoreError::InvalidRequest("lease not found".into()))?;
        let at = now();
        if e.expire_time <= at {
            return Err(CoreError::InvalidRequest("lease expired".into()));
        }
        if !e.renewable {
            return Err(CoreError::InvalidRequest("lease is not renewable".into()));
        }
        match e.kind {
            LeaseKind::Token => Err(CoreError::InvalidRequest(
                "tokens are renewed through auth/token/renew".into(),
            )),
            LeaseKind::Secret => {
                let (req, backend) = self.engine_request(&e, increment)?;
                let max = req.mount.max_lease_ttl;
                let resp = backend.renew_secret(req).await?;
                let granted = resp
                    .and_then(|r| r.secret)
                    .map(|s| s.ttl)
                    .filter(|t| !t.is_zero());
                let ttl = increment
                    .or(granted)
                    .unwrap_or(Duration::from_secs(
                        (e.expire_time - e.issue_time).max(0) as u64
                    ))
                    .min(max);
                self.expiration
                    .renewed(e, at.saturating_add(crate::tokens::secs(ttl)), at)
                    .await
            }
        }
    }

    /// Revokes every lease under a prefix (`sys/leases/revoke-prefix`, `-force`).
    pub async fn revoke_prefix(
        self: &Arc<Self>,
        prefix: &str,
        force: bool,
    ) -> Result<usize, CoreError> {
        // In bounded batches, so memory does not grow with the number of leases; each
        // batch revokes concurrently (engine calls and commits are independent).
        let mut total = 0;
        loop {
            let ids = self.expiration.all_under(prefix, REVOKE_BATCH).await?;
            if ids.is_empty() {
                return Ok(total);
            }
            let tasks = spawn_bounded(ids, |id| {
                let u = self.clone();
                async move { u.revoke_lease(&id, force).await }
            })
            .await?;
            let mut first_err = None;
            for t in tasks {
                match t.await {
                    Ok(Ok(())) => total += 1,
                    Ok(Err(e)) if first_err.is_none() => first_err = Some(e),
                    Err(e) if first_err.is_none() => {
                        first_err = Some(CoreError::Internal(e.to_string()))
                    }
                    _ => {}
                }
            }
            // A lease that failed to revoke stays listed; stop rather than retry it forever.
            if let Some(e) = first_err {
                return Err(e);
            }
        }
    }
}

/// Runs `f` on each item as a task of its own, at most `TICK_PARALLEL` at a time (a task is
/// started only when one of the running ones has finished); the tasks in the items' order.
async fn spawn_bounded<T, F, Fut>(
    items: Vec<T>,
    f: F,
) -> Result<Vec<tokio::task::JoinHandle<Fut::Output>>, CoreError>
where
    F: Fn(T) -> Fut,
    Fut: std::future::Future + Send + 'static,
    Fut::Output: Send + 'static,
{
    let sem = Arc::new(tokio::sync::Semaphore::new(TICK_PARALLEL));
    let mut tasks = Vec::with_capacity(items.len());
    for item in items {
        let permit = sem
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| CoreError::Internal(e.to_string()))?;
        let work = f(item);
        tasks.push(tokio::spawn(async move {
            let _permit = permit;
            work.await
        }));
    }
    Ok(tasks)
}

/// A login is refused a token that would carry `root` or a policy that belongs to the server
/// (`response-wrapping`, `control-group`), with Vault's words for each.
fn refuse_unassignable(policies: &[String]) -> Result<(), CoreError> {
    for p in policies {
        if p == "root" {
            return Err(CoreError::InvalidRequest(
                "auth methods cannot create root tokens".into(),
            ));
        }
        if crate::policies::NON_ASSIGNABLE.contains(&p.as_str()) {
            return Err(CoreError::InvalidRequest(format!(
                "cannot assign policy {p:?}"
            )));
        }
    }
    Ok(())
}
