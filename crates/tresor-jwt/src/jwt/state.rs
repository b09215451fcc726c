//! What every handler of one JWT/OIDC mount shares: the clock, the provider built from the
//! stored config (cached until the config changes), and the OIDC logins in progress.
//!
//! **Pending OIDC logins live in memory**, as in Vault: a `state` is good for
//! [`STATE_TTL`] on the server that issued it, and for one callback. At most
//! [`MAX_PENDING`] are kept (`oidc/auth_url` is unauthenticated), expired ones are dropped
//! first. Device logins (`oidc/device_auth`, beyond Vault) are kept the same way, each
//! until its device code expires, and taken out while one poll runs, so a state logs in once.

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

/// One device login between `oidc/device_auth` and the poll that finishes it.
pub(crate) struct DevicePending {
    pub(crate) role: String,
    /// The provider's device code: with the client secret, it redeems the login.
    pub(crate) device_code: String,
    /// Seconds between polls the provider asks for.
    pub(crate) interval: i64,
    /// The earliest time the provider may be polled again, in Unix milliseconds.
    pub(crate) next_poll_ms: i64,
    pub(crate) expires: i64,
}

/// What the maps of logins in progress keep: things that expire.
pub(crate) trait Expiring {
    fn expires(&self) -> i64;
}

impl Expiring for Pending {
    fn expires(&self) -> i64 {
        self.expires
    }
}

impl Expiring for DevicePending {
    fn expires(&self) -> i64 {
        self.expires
    }
}

/// Inserts into a bounded map of logins in progress, dropping expired ones when it is full.
fn insert_bounded<T: Expiring>(
    map: &Mutex<HashMap<String, T>>,
    key: String,
    value: T,
    now: i64,
) -> Result<()> {
    let mut g = map.lock();
    if g.len() >= MAX_PENDING {
        g.retain(|_, v| v.expires() > now);
    }
    if g.len() >= MAX_PENDING {
        return Err(LogicalError::invalid(
            "too many OIDC logins in progress; try again in a few minutes",
        ));
    }
    g.insert(key, value);
    Ok(())
}

/// Takes an entry that has not expired out of a map of logins in progress.
fn take_live<T: Expiring>(map: &Mutex<HashMap<String, T>>, key: &str, now: i64) -> Option<T> {
    let v = map.lock().remove(key)?;
    (v.expires() > now).then_some(v)
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
    devices: Mutex<HashMap<String, DevicePending>>,
}

impl Engine {
    pub(crate) fn new(clock: Arc<dyn Clock>) -> Self {
        Engine {
            clock,
            provider: Mutex::new((None, 0)),
            roles: Mutex::new((HashMap::new(), 0)),
            pending: Mutex::new(HashMap::new()),
            devices: Mutex::new(HashMap::new()),
        }
    }

    pub(crate) fn now(&self) -> i64 {
        clock::unix(self.clock.now())
    }

    /// The time in Unix milliseconds (the device grant's polling interval is kept to it).
    pub(crate) fn now_ms(&self) -> i64 {
        self.clock
            .now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
            .unwrap_or_default()
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
        insert_bounded(&self.pending, state, p, self.now())
    }

    /// Takes a pending login by its state: each state serves one callback.
    pub(crate) fn take_pending(&self, state: &str) -> Option<Pending> {
        take_live(&self.pending, state, self.now())
    }

    /// Keeps a device login (again, after a poll that did not finish it).
    pub(crate) fn add_device(&self, state: String, d: DevicePending) -> Result<()> {
        insert_bounded(&self.devices, state, d, self.now())
    }

    /// Takes a device login out for one poll.
    pub(crate) fn take_device(&self, state: &str) -> Option<DevicePending> {
        take_live(&self.devices, state, self.now())
    }

    pub(crate) fn forget_all(&self) {
        self.pending.lock().clear();
        self.devices.lock().clear();
        self.set_provider(None);
        let mut g = self.roles.lock();
        g.0.clear();
        g.1 += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use tresor_sdk::clock::ManualClock;

    fn device(expires: i64) -> DevicePending {
        DevicePending {
            role: "web".into(),
            device_code: "dc".into(),
            interval: 5,
            next_poll_ms: 0,
            expires,
        }
    }

    /// Device logins expire with their code, are taken once, and a flood of device_auth
    /// calls cannot grow the map past MAX_PENDING (expired ones make room first).
    #[test]
    fn device_logins_expire_are_taken_once_and_are_bounded() {
        let clock = Arc::new(ManualClock::at(1_000));
        let e = Engine::new(clock.clone());
        e.add_device("s1".into(), device(1_010)).unwrap();
        assert!(e.take_device("s1").is_some());
        assert!(e.take_device("s1").is_none(), "taken once");
        e.add_device("s2".into(), device(1_010)).unwrap();
        clock.advance(Duration::from_secs(10));
        assert!(e.take_device("s2").is_none(), "expired with its code");

        for i in 0..MAX_PENDING {
            e.add_device(format!("live{i}"), device(2_000)).unwrap();
        }
        let err = e.add_device("one-more".into(), device(2_000)).unwrap_err();
        assert!(err.to_string().contains("too many"), "{err}");
        clock.advance(Duration::from_secs(1_000));
        e.add_device("after".into(), device(3_000)).unwrap();
        assert_eq!(e.devices.lock().len(), 1, "the expired ones made room");
    }
}
