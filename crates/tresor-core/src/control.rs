//! The narrow handles the built-in backends are built from. `sys/` and `auth/token/` never
//! hold the core: each gets the subsystems of the unseal it was mounted in ([`Subsystems`]),
//! and `sys/` also gets [`Control`], the few operations of the seal state machine and the
//! mount table that its API exposes. Neither can run the pipeline, unseal, initialise, reach
//! the engine catalogue's factories or another unseal's state; `crates/tresor/tests/
//! invariants.rs` checks that no built-in backend's module names `Core` or `Inner`.

use std::sync::{Arc, Weak};
use std::time::Duration;

use serde_json::{Map, Value};

use crate::core::{Core, Inner, Unsealed};
use crate::error::CoreError;
use crate::expiration::LeaseEntry;
use crate::mounts::{MountEntry, Table};

/// The subsystems of one unseal (token store, policies, leases, wrapping, audit, identity,
/// quotas, the router), as a built-in backend mounted in that unseal sees them. Weak, because
/// the backend is part of that unseal's router; after a seal it finds nothing, so a backend
/// can never act on a state the server no longer has.
#[derive(Clone)]
pub(crate) struct Subsystems(Weak<Unsealed>);

impl Subsystems {
    pub(crate) fn new(u: &Arc<Unsealed>) -> Self {
        Subsystems(Arc::downgrade(u))
    }

    pub(crate) fn get(&self) -> Result<Arc<Unsealed>, CoreError> {
        self.0.upgrade().ok_or(CoreError::Sealed)
    }
}

/// What `sys/` may ask of the core beyond the subsystems: seal and step down, HA status, the
/// rekey backup, changes to the mount tables (which build engines from the catalogue), the
/// catalogue's names, the configured lease TTLs, the governing-policy syntax check and the
/// metrics rendering.
pub(crate) struct Control(Weak<Inner>);

impl Control {
    pub(crate) fn new(core: &Core) -> Self {
        Control(Arc::downgrade(&core.0))
    }

    fn core(&self) -> Result<Core, CoreError> {
        self.0
            .upgrade()
            .map(Core)
            .ok_or_else(|| CoreError::Internal("core is shutting down".into()))
    }

    pub(crate) async fn seal(&self) -> Result<(), CoreError> {
        self.core()?.seal().await
    }

    pub(crate) fn step_down(&self) -> Result<(), CoreError> {
        self.core()?.step_down();
        Ok(())
    }

    pub(crate) fn ha_status(&self) -> Result<Value, CoreError> {
        self.core()?.ha_status()
    }

    pub(crate) async fn rekey_backup(&self) -> Result<Option<Value>, CoreError> {
        self.core()?.rekey_backup().await
    }

    pub(crate) async fn rekey_backup_delete(&self) -> Result<(), CoreError> {
        self.core()?.rekey_backup_delete().await
    }

    pub(crate) async fn mount(&self, entry: MountEntry) -> Result<(), CoreError> {
        self.core()?.mount(entry).await
    }

    pub(crate) async fn unmount(&self, table: Table, path: &str) -> Result<(), CoreError> {
        self.core()?.unmount(table, path).await
    }

    pub(crate) async fn update_mount(
        &self,
        table: Table,
        path: &str,
        f: impl FnOnce(&mut MountEntry) -> Result<(), CoreError>,
    ) -> Result<(), CoreError> {
        self.core()?.update_mount(table, path, f).await
    }

    pub(crate) async fn remount(&self, from: &str, to: &str) -> Result<(), CoreError> {
        self.core()?.remount(from, to).await
    }

    /// The engine or auth method types the catalogue holds.
    pub(crate) fn registered_types(&self, table: Table) -> Vec<String> {
        self.core()
            .map(|c| c.registered_types(table))
            .unwrap_or_default()
    }

    /// The server's default and maximum lease TTLs.
    pub(crate) fn lease_ttls(&self) -> Result<(Duration, Duration), CoreError> {
        let c = self.core()?;
        Ok((c.config().default_lease_ttl, c.config().max_lease_ttl))
    }

    /// Checks a governing policy's text with the registered hook, without storing it.
    pub(crate) fn check_governing_policy(
        &self,
        kind: crate::governing::GoverningKind,
        name: &str,
        text: &str,
    ) -> Result<(), String> {
        let c = self.core().map_err(|e| e.to_string())?;
        c.config().hooks.check_governing_policy(kind, name, text)
    }

    /// Mints the token of a login that `sys/mfa/validate` completed.
    pub(crate) async fn materialize_auth(
        &self,
        u: &Unsealed,
        route: &crate::mounts::Route,
        auth: tresor_sdk::Auth,
        path: &str,
        at: i64,
    ) -> Result<tresor_sdk::Auth, CoreError> {
        self.core()?
            .materialize_auth(u, route, auth, path, at, None)
            .await
    }

    /// `GET sys/storage/raft/snapshot`.
    pub(crate) async fn snapshot(&self) -> Result<Vec<u8>, CoreError> {
        self.core()?.snapshot().await
    }

    /// `POST sys/storage/raft/snapshot[-force]`: validates, seals, replaces the store.
    pub(crate) async fn restore_snapshot(
        &self,
        bytes: Arc<[u8]>,
        force: bool,
    ) -> Result<crate::snapshot::Restored, CoreError> {
        self.core()?.restore_snapshot(bytes, force).await
    }

    /// This node's run status of an automatic snapshot configuration.
    pub(crate) fn autosnap_status(&self, name: &str) -> crate::snapshot_auto::Status {
        self.core()
            .ok()
            .and_then(|c| c.0.autosnap.lock().get(name).cloned())
            .unwrap_or_default()
    }

    /// Forgets the run status of an automatic snapshot configuration (changed or deleted).
    pub(crate) fn forget_autosnap(&self, name: &str) {
        if let Ok(c) = self.core() {
            c.0.autosnap.lock().remove(name);
        }
    }

    pub(crate) async fn metrics(&self, format: &str) -> Result<(String, String), String> {
        let c = self.core().map_err(|e| e.to_string())?;
        c.metrics(format).await
    }
}

/// The handles `sys/` is built from, with the subsystem calls its handlers make spelled the
/// way they read: `h.unsealed()`, `h.mount(...)`.
pub(crate) struct SysHandles {
    pub(crate) subsystems: Subsystems,
    pub(crate) control: Control,
}

impl SysHandles {
    pub(crate) fn unsealed(&self) -> Result<Arc<Unsealed>, CoreError> {
        self.subsystems.get()
    }

    pub(crate) fn mount_entries(&self, table: Table) -> Result<Vec<Arc<MountEntry>>, CoreError> {
        Ok(self.unsealed()?.mount_entries(table))
    }

    pub(crate) async fn wrapping_lookup(
        &self,
        token: &str,
    ) -> Result<Map<String, Value>, CoreError> {
        self.unsealed()?.wrapping_lookup(token).await
    }

    pub(crate) async fn revoke_prefix(
        &self,
        prefix: &str,
        force: bool,
    ) -> Result<usize, CoreError> {
        self.unsealed()?.revoke_prefix(prefix, force).await
    }

    pub(crate) async fn revoke_lease(&self, lease_id: &str, force: bool) -> Result<(), CoreError> {
        self.unsealed()?.revoke_lease(lease_id, force).await
    }

    pub(crate) async fn renew_lease(
        &self,
        lease_id: &str,
        increment: Option<Duration>,
    ) -> Result<LeaseEntry, CoreError> {
        self.unsealed()?.renew_lease(lease_id, increment).await
    }
}

impl std::ops::Deref for SysHandles {
    type Target = Control;
    fn deref(&self) -> &Control {
        &self.control
    }
}
