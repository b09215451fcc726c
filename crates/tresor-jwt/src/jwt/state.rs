//! What every handler of one JWT/OIDC mount shares: the clock, the provider built from the
//! stored config (cached until the config changes), and the OIDC logins in progress.
//!
//! **Pending OIDC logins live in memory**, as in Vault: a `state` is good for
//! [`STATE_TTL`] on the server that issued it, and for one callback. At most
//! [`MAX_PENDING`] are kept (`oidc/auth_url` is unauthenticated), expired ones are dropped
//! first.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;
use tresor_sdk::clock::{self, Clock};
use tresor_sdk::{LogicalError, Request, Result};

use crate::jwt::provider::Provider;
use crate::jwt::store::{self, Role};

/// How long an OIDC `state` stays valid.
pub(crate) const STATE_TTL: i64 = 300;
/// The most OIDC logins in progress one mount keeps.
pub(crate) const MAX_PENDING: usize = 10_000;

/// One OIDC login between `auth_url` and `callback`.
pub(crate) struct Pending {
    pub(crate) role: String,
    pub(crate) redirect_uri: String,
    pub(crate) nonce: String,
    pub(crate) code_verifier: String,
    pub(crate) client_nonce: String,
    pub(crate) expires: i64,
}

pub(crate) struct Engine {
    clock: Arc<dyn Clock>,
    /// The cached provider and the generation of the config it was built from: a change of
    /// config moves the generation, so a reader that loaded the old config does not cache it.
    provider: Mutex<(Option<Arc<Provider>>, u64)>,
    /// Roles as logins read them, decoded once (a login read, decrypted and decoded its role
    /// each time). Only roles that exist are kept. A write or delete here, or another server's
    /// (through `invalidate`), drops the entry and moves the generation, so a reader that
    /// loaded the role before the change does not cache what it read.
    roles: Mutex<(HashMap<String, Arc<Role>>, u64)>,
    pending: Mutex<HashMap<String, Pending>>,
}

impl Engine {
    pub(crate) fn new(clock: Arc<dyn Clock>) -> Self {
        Engine {
            clock,
            provider: Mutex::new((None, 0)),
            roles: Mutex::new((HashMap::new(), 0)),
            pending: Mutex::new(HashMap::new()),
        }
    }

    pub(crate) fn now(&self) -> i64 {
        clock::unix(self.clock.now())
    }

    /// The provider of the stored config, built once and cached.
    pub(crate) async fn provider(&self, req: &Request) -> Result<Arc<Provider>> {
        let generation = {
            let g = self.provider.lock();
            if let Some(p) = g.0.as_ref() {
                return Ok(p.clone());
            }
            g.1
        };
        // Two first requests may both build one; either is the same config's.
        let Some(cfg) = store::load_config(&*req.storage).await? else {
            return Err(LogicalError::invalid("could not load configuration"));
        };
        let p = Arc::new(Provider::new(cfg).map_err(LogicalError::Internal)?);
        let mut g = self.provider.lock();
        if g.1 == generation {
            g.0 = Some(p.clone());
        }
        Ok(p)
    }

    /// The role `name`, from the cache or storage.
    pub(crate) async fn role(&self, req: &Request, name: &str) -> Result<Option<Arc<Role>>> {
        let generation = {
            let g = self.roles.lock();
            if let Some(r) = g.0.get(name) {
                return Ok(Some(r.clone()));
            }
            g.1
        };
        let Some(role) = store::load_role(&*req.storage, name).await? else {
            return Ok(None);
        };
        let role = Arc::new(role);
        let mut g = self.roles.lock();
        if g.1 == generation {
            g.0.insert(name.to_owned(), role.clone());
        }
        Ok(Some(role))
    }

    /// Drops a role from the cache after it was written or deleted (here or elsewhere).
    pub(crate) fn forget_role(&self, name: &str) {
        let mut g = self.roles.lock();
        g.0.remove(name);
        g.1 += 1;
    }

    /// Installs the provider of a config just written.
    pub(crate) fn set_provider(&self, p: Option<Arc<Provider>>) {
        let mut g = self.provider.lock();
        g.0 = p;
        g.1 += 1;
    }

    pub(crate) fn add_pending(&self, state: String, p: Pending) -> Result<()> {
        let now = self.now();
        let mut g = self.pending.lock();
        if g.len() >= MAX_PENDING {
            g.retain(|_, v| v.expires > now);
        }
        if g.len() >= MAX_PENDING {
            return Err(LogicalError::invalid(
                "too many OIDC logins in progress; try again in a few minutes",
            ));
        }
        g.insert(state, p);
        Ok(())
    }

    /// Takes a pending login by its state: each state serves one callback.
    pub(crate) fn take_pending(&self, state: &str) -> Option<Pending> {
        let now = self.now();
        let p = self.pending.lock().remove(state)?;
        (p.expires > now).then_some(p)
    }

    pub(crate) fn forget_all(&self) {
        self.pending.lock().clear();
        self.set_provider(None);
        let mut g = self.roles.lock();
        g.0.clear();
        g.1 += 1;
    }
}
