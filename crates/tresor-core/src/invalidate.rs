//! Cache coherence across servers sharing one storage: `Core::invalidate(key)` tells the
//! subsystem or engine that owns a storage key that another server changed it, so the cached
//! copy is dropped or reloaded. HA (a change feed from the shared storage) calls it for every
//! key another server wrote; a single server never needs it.
//!
//! Ownership of the barrier's key space:
//! - `core/keyring` → the barrier (new key terms from a rotation elsewhere);
//! - `core/mounts`, `core/auth` → the mount tables and the router;
//! - `core/audit`, `core/audit-request-headers` → the audit broker;
//! - `sys/token/id/<id>` → the token store's cache;
//! - `sys/policy/acl/<name>` → the policy store (and its compiled ACLs);
//! - `sys/policy/egp/<name>`, `sys/policy/rgp/<name>` → the governing-policy store (the
//!   governing hook recompiles a policy whose stored copy changed);
//! - `sys/identity/entity/<id>`, `sys/identity/group/<id>` → the identity store (and every
//!   resolution and compiled ACL built from it);
//! - `logical/<uuid>/…`, `auth/<uuid>/…` → the engine mounted on that view, with the key
//!   relative to it.

use std::sync::Arc;

use crate::core::{Core, Unsealed};
use crate::error::CoreError;
use crate::mounts::{AUTH_PATH, MOUNTS_PATH, Route, Router};

impl Core {
    /// Another server changed `key` (a barrier path): drop or reload what this server cached
    /// of it. Keys nobody caches are ignored.
    pub async fn invalidate(&self, key: &str) -> Result<(), CoreError> {
        let u = self.unsealed()?;
        match key {
            crate::barrier::KEYRING_PATH => return u.barrier.reload_keyring().await,
            MOUNTS_PATH | AUTH_PATH => return self.reload_mounts(&u).await,
            crate::audit::AUDIT_TABLE_PATH | crate::audit::REQUEST_HEADERS_PATH => {
                return u.audit.reload_table(&u.barrier).await;
            }
            crate::seal::SEAL_CONFIG_PATH => {
                self.cache_seal_config_clear();
                return Ok(());
            }
            _ => {}
        }
        if let Some(id) = key.strip_prefix("sys/token/id/") {
            u.tokens.invalidate(id).await;
            return Ok(());
        }
        if let Some(name) = key.strip_prefix("sys/policy/acl/") {
            return u.policies.reload(name).await;
        }
        if let Some(name) = key.strip_prefix("sys/policy/egp/") {
            return u
                .governing
                .reload(crate::governing::GoverningKind::Egp, name)
                .await;
        }
        if let Some(name) = key.strip_prefix("sys/policy/rgp/") {
            return u
                .governing
                .reload(crate::governing::GoverningKind::Rgp, name)
                .await;
        }
        // Quotas are few and small: any change reloads them all (buckets of unchanged quotas
        // keep their tokens), so a standby enforces what the active node was told.
        if key.starts_with(crate::quotas::PREFIX) {
            return u.quotas.reload().await;
        }
        if key == format!("{}config", crate::activity::PREFIX) {
            return u.activity.reload().await;
        }
        if let Some(rel) = key.strip_prefix(crate::identity::PREFIX) {
            return u.identity.invalidate(rel).await;
        }
        if key.starts_with("logical/") || key.starts_with("auth/") {
            let router = u.router();
            if let Some(r) = router
                .routes()
                .iter()
                .find(|r| key.starts_with(r.view.prefix()))
            {
                let rel = &key[r.view.prefix().len()..];
                let ctx = self.engine_context(r);
                r.backend.invalidate(&ctx, rel).await;
            }
        }
        Ok(())
    }

    /// Another server deleted every key under `prefix` at once. Inside a mount, the mount's
    /// engine is rebuilt (its caches start empty); elsewhere the whole state is reloaded.
    pub async fn invalidate_prefix(&self, prefix: &str) -> Result<(), CoreError> {
        let u = self.unsealed()?;
        if prefix.starts_with("logical/") || prefix.starts_with("auth/") {
            let _g = u.mount_lock().lock().await;
            let router = u.router();
            let Some(old) = router
                .routes()
                .iter()
                .find(|r| prefix.starts_with(r.view.prefix()))
                .cloned()
            else {
                // A whole mount's data (an unmount): the mount table change removes it.
                return Ok(());
            };
            if prefix == old.view.prefix() {
                return Ok(());
            }
            let fresh = self.route_for(&u, (*old.entry).clone())?;
            if let Err(e) = self.initialize_route(&fresh).await {
                tracing::warn!(mount = %fresh.path, error = %e, "engine failed to initialize");
            }
            let routes: Vec<Route> = router
                .routes()
                .iter()
                .map(|r| {
                    if Arc::ptr_eq(&r.backend, &old.backend) {
                        fresh.clone()
                    } else {
                        r.clone()
                    }
                })
                .collect();
            u.set_router(Router::new(routes));
            old.backend.cleanup().await;
            return Ok(());
        }
        self.reload_all().await.map(|_| ())
    }

    /// Rebuilds the router from the stored mount tables: mounts that are unchanged keep their
    /// engine instance, new ones are initialized, removed ones are cleaned up.
    async fn reload_mounts(&self, u: &Arc<Unsealed>) -> Result<(), CoreError> {
        let _g = u.mount_lock().lock().await;
        let old = u.router();
        let entries = self
            .load_table(&u.barrier, MOUNTS_PATH)
            .await?
            .into_iter()
            .chain(self.load_table(&u.barrier, AUTH_PATH).await?);
        let mut routes: Vec<Route> = Vec::new();
        for e in entries {
            let same = old
                .routes()
                .iter()
                .find(|r| r.entry.uuid == e.uuid && r.entry.kind == e.kind);
            match same {
                Some(r) if *r.entry == e => routes.push(r.clone()),
                Some(r) if r.entry.path == e.path => {
                    // Tuned elsewhere: same engine, new settings.
                    routes.push(self.retuned(r, e));
                }
                _ => match self.route_for(u, e.clone()) {
                    Ok(r) => {
                        if let Err(err) = self.initialize_route(&r).await {
                            tracing::error!(mount = %r.path, error = %err, "engine failed to initialize");
                        }
                        routes.push(r)
                    }
                    Err(err) => {
                        tracing::error!(path = %e.path, kind = %e.kind, error = %err, "cannot set up mount; skipping it")
                    }
                },
            }
        }
        let gone: Vec<Route> = old
            .routes()
            .iter()
            .filter(|r| !routes.iter().any(|n| Arc::ptr_eq(&n.backend, &r.backend)))
            .cloned()
            .collect();
        u.set_router(Router::new(routes));
        for r in gone {
            r.backend.cleanup().await;
        }
        Ok(())
    }
}
