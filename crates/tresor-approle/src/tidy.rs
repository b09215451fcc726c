//! `tidy/secret-id` and the periodic tidy: removes expired secret IDs, secret IDs and
//! accessors no live role owns (left by a crash during a role's deletion), accessors whose
//! secret ID is gone and secret IDs whose accessor is gone (neither can be listed or
//! destroyed any more). Each removal is conditional on the entry being as read, so a login
//! or a destroy racing with tidy is never undone.

use std::collections::HashSet;
use std::sync::Arc;

use tresor_sdk::framework::Fields;
use tresor_sdk::{Request, Response, Result, Storage};

use crate::engine::{Engine, mount_id};
use crate::store::{self, AccessorEntry, SecretIdEntry};

/// What one tidy removed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TidyCounts {
    pub expired: usize,
    pub orphaned: usize,
    pub dangling_accessors: usize,
}

/// Removes the mount from the running set when a tidy ends, however it ends.
struct Running<'a> {
    engine: &'a Engine,
    mount: String,
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.engine.tidying.lock().remove(&self.mount);
    }
}

impl Engine {
    /// Runs one tidy of a mount at `now`; `None` when one is already running.
    pub(crate) async fn tidy_mount(
        &self,
        mount: &str,
        s: &dyn Storage,
        now: i64,
    ) -> Result<Option<TidyCounts>> {
        if !self.tidying.lock().insert(mount.to_owned()) {
            return Ok(None);
        }
        let _running = Running {
            engine: self,
            mount: mount.to_owned(),
        };
        let mut counts = TidyCounts::default();
        let mut live = HashSet::new();
        for name in s.list(store::ROLE_PREFIX).await? {
            if let Some(r) = store::load_role(s, &name).await? {
                live.insert(r.instance);
            }
        }
        for dir in s.list(store::SECRET_ID_PREFIX).await? {
            let Some(instance) = dir.strip_suffix('/') else {
                continue;
            };
            if !live.contains(instance) {
                counts.orphaned += s.list(&store::secret_prefix(instance)).await?.len();
                s.delete_prefix(&store::secret_prefix(instance)).await?;
                continue;
            }
            for hmac in s.list(&store::secret_prefix(instance)).await? {
                if self.tidy_secret(mount, s, instance, &hmac, now).await? {
                    counts.expired += 1;
                }
            }
        }
        for dir in s.list(store::ACCESSOR_PREFIX).await? {
            let Some(instance) = dir.strip_suffix('/') else {
                continue;
            };
            if !live.contains(instance) {
                s.delete_prefix(&store::accessor_prefix(instance)).await?;
                continue;
            }
            for accessor in s.list(&store::accessor_prefix(instance)).await? {
                let key = store::accessor_key(instance, &accessor);
                let Some((acc, rev)) =
                    store::load_rev::<AccessorEntry>(s, "approle secret ID accessor", &key).await?
                else {
                    continue;
                };
                let secret = store::secret_key(instance, &acc.secret_id_hmac);
                // Deleted only if the accessor is unchanged and its secret ID still absent.
                if s.get(&secret).await?.is_none()
                    && s.transaction_if(vec![(key.clone(), rev), (secret, 0)], vec![(key, None)])
                        .await?
                {
                    counts.dangling_accessors += 1;
                }
            }
        }
        Ok(Some(counts))
    }

    /// Removes one secret ID if it has expired or lost its accessor; true if it did.
    async fn tidy_secret(
        &self,
        mount: &str,
        s: &dyn Storage,
        instance: &str,
        hmac: &str,
        now: i64,
    ) -> Result<bool> {
        let key = store::secret_key(instance, hmac);
        let _g = self.lock(mount, &key).await;
        let Some((e, rev)) = store::load_rev::<SecretIdEntry>(s, "approle secret ID", &key).await?
        else {
            return Ok(false);
        };
        let accessor = store::accessor_key(instance, &e.accessor);
        let lost_accessor = s.get(&accessor).await?.is_none();
        if !e.expired(now) && !lost_accessor {
            return Ok(false);
        }
        s.transaction_if(
            vec![(key.clone(), rev)],
            vec![(key, None), (accessor, None)],
        )
        .await
    }

    /// `POST tidy/secret-id`: starts a tidy in the background, as Vault does.
    pub(crate) async fn tidy_endpoint(
        self: Arc<Self>,
        req: Request,
        _f: Fields,
    ) -> Result<Option<Response>> {
        let mount = mount_id(&req);
        if self.tidying.lock().contains(&mount) {
            return Ok(Some(
                Response::default().with_warning("Tidy operation already in progress."),
            ));
        }
        let engine = self.clone();
        let storage = req.storage.clone();
        let now = self.now();
        tokio::spawn(async move {
            match engine.tidy_mount(&mount, &*storage, now).await {
                Ok(Some(c)) => tracing::info!(
                    mount = %mount,
                    expired = c.expired,
                    orphaned = c.orphaned,
                    dangling_accessors = c.dangling_accessors,
                    "approle secret ID tidy finished"
                ),
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(mount = %mount, error = %e, "approle secret ID tidy failed")
                }
            }
        });
        // Started in the background: 202 Accepted, as Vault answers.
        Ok(Some(Response::tidy_started()))
    }
}
