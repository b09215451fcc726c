//! `login` (unauthenticated: a role ID and, when the role binds one, a secret ID) and the
//! renewal of the tokens logins get.
//!
//! **A secret ID's uses are counted exactly.** Consuming a use holds the secret ID's
//! in-process lock (this server's racing logins queue, and each re-reads what the previous
//! one left) and commits only if storage still holds the revision read (servers sharing the
//! storage): a secret ID with `num_uses=1` logs in once, however many logins race for it.
//! Every check that can refuse a login runs before that commit, so a refused login changes
//! nothing (an expired secret ID is removed, as Vault does).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value, json};
use tresor_sdk::cidr;
use tresor_sdk::framework::Fields;
use tresor_sdk::{Alias, Auth, Request, Response, Result};

use crate::engine::{Engine, MAX_ID_BYTES, bad, invalid_credentials, mount_id, parse_cidrs};
use crate::inputs::LoginInput;
use crate::store::{self, RoleEntry, RoleIdIndex, Salt, SecretIdEntry};

/// The token's display name: the mount's path, as Vault names login tokens
/// (`auth/approle/` → `approle`).
fn display_name(req: &Request) -> String {
    req.mount
        .mount_point
        .trim_start_matches("auth/")
        .trim_end_matches('/')
        .replace('/', "-")
}

/// The role `role_id` belongs to (its name and entry), found through the role-ID index under
/// the mount's salt and checked against the role's own ID in constant time.
async fn role_by_id(
    s: &dyn tresor_sdk::Storage,
    salt: &Salt,
    role_id: &str,
) -> Result<Option<(String, RoleEntry)>> {
    let index: Option<RoleIdIndex> = store::load(
        s,
        "approle role ID index",
        &store::role_id_key(&salt.role_id(role_id)),
    )
    .await?;
    let Some(index) = index else {
        return Ok(None);
    };
    Ok(match store::load_role(s, &index.name).await? {
        Some(r) if store::ct_eq(&r.role_id, role_id) => Some((index.name, r)),
        _ => None,
    })
}

impl Engine {
    /// The name of the role `role_id` belongs to, if any (for quotas: no secret ID is checked
    /// and nothing is spent).
    pub(crate) async fn role_of(
        &self,
        ctx: &tresor_sdk::Context,
        role_id: &str,
    ) -> Result<Option<String>> {
        if role_id.is_empty() || role_id.len() > MAX_ID_BYTES {
            return Ok(None);
        }
        let s = &*ctx.storage;
        let salt = self.salt(&crate::engine::mount_of(&ctx.mount), s).await?;
        Ok(role_by_id(s, &salt, role_id).await?.map(|(name, _)| name))
    }

    pub(crate) async fn login(
        self: Arc<Self>,
        req: Request,
        f: Fields,
    ) -> Result<Option<Response>> {
        let LoginInput { role_id, secret_id } = f.input();
        let role_id = role_id.trim().to_owned();
        if role_id.is_empty() {
            return Err(bad("missing role_id"));
        }
        if role_id.len() > MAX_ID_BYTES {
            return Err(invalid_credentials());
        }
        let s = &*req.storage;
        let salt = self.salt(&mount_id(&req), s).await?;
        let Some((_, role)) = role_by_id(s, &salt, &role_id).await? else {
            return Err(invalid_credentials());
        };
        let remote = req.connection.remote_addr.as_deref();
        if !role.secret_id_bound_cidrs.is_empty() {
            let blocks = parse_cidrs("secret_id_bound_cidrs", &role.secret_id_bound_cidrs)?;
            if !cidr::allows(&blocks, remote) {
                return Err(bad(format!(
                    "source address {:?} unauthorized by CIDR restrictions on the role",
                    remote.unwrap_or_default()
                )));
            }
        }
        let mut metadata = BTreeMap::new();
        let mut token_cidrs = role.token.token_bound_cidrs.clone();
        if role.bind_secret_id {
            let secret_id = secret_id.trim().to_owned();
            if secret_id.is_empty() {
                return Err(bad("missing secret_id"));
            }
            if secret_id.len() > MAX_ID_BYTES {
                return Err(invalid_credentials());
            }
            let entry = self.consume(&req, &salt, &role, &secret_id).await?;
            metadata = entry.metadata;
            if !entry.token_bound_cidrs.is_empty() {
                token_cidrs = entry.token_bound_cidrs;
            }
        }
        metadata.insert("role_name".into(), role.name.clone());
        let mut internal = Map::new();
        internal.insert("role_name".into(), json!(role.name));
        internal.insert("role_instance".into(), json!(role.instance));
        internal.insert("login_time".into(), json!(self.now()));
        let mut auth = Auth {
            display_name: display_name(&req),
            metadata,
            internal_data: internal,
            alias: Some(Alias {
                name: role.role_id.clone(),
                metadata: [("role_name".to_owned(), role.name.clone())].into(),
            }),
            ..Default::default()
        };
        role.token.populate(&mut auth);
        auth.bound_cidrs = token_cidrs;
        Ok(Some(Response {
            auth: Some(auth),
            ..Default::default()
        }))
    }

    /// Checks a secret ID and spends one of its uses (see the module docs). Returns the
    /// entry as it was before the use.
    async fn consume(
        &self,
        req: &Request,
        salt: &Salt,
        role: &RoleEntry,
        secret_id: &str,
    ) -> Result<SecretIdEntry> {
        let s = &*req.storage;
        let hmac = salt.secret_id(secret_id);
        let key = store::secret_key(&role.instance, &hmac);
        let remote = req.connection.remote_addr.as_deref();
        // The checks that do not change storage, on the entry as read.
        let check = |e: &SecretIdEntry| -> Result<()> {
            if !store::ct_eq(&e.secret_id_hmac, &hmac) {
                return Err(invalid_credentials());
            }
            if !e.cidr_list.is_empty() {
                let blocks = parse_cidrs("cidr_list", &e.cidr_list)?;
                if !cidr::allows(&blocks, remote) {
                    return Err(bad(format!(
                        "source address {:?} unauthorized through CIDR restrictions on the secret ID",
                        remote.unwrap_or_default()
                    )));
                }
            }
            Ok(())
        };
        // Fast path: a secret ID with unlimited uses that has not expired is only read, so
        // its logins need no lock (nothing can give an existing secret ID a use limit).
        match store::load::<SecretIdEntry>(s, "approle secret ID", &key).await? {
            None => return Err(invalid_credentials()),
            Some(e) if e.num_uses == 0 && !e.expired(self.now()) => {
                check(&e)?;
                return Ok(e);
            }
            Some(_) => {}
        }
        let _g = self.lock(&mount_id(req), &key).await;
        loop {
            let Some((e, rev)) =
                store::load_rev::<SecretIdEntry>(s, "approle secret ID", &key).await?
            else {
                return Err(invalid_credentials());
            };
            let accessor_key = store::accessor_key(&role.instance, &e.accessor);
            let now = self.now();
            if e.expired(now) {
                s.transaction_if(
                    vec![(key.clone(), rev)],
                    vec![(key.clone(), None), (accessor_key, None)],
                )
                .await?;
                return Err(invalid_credentials());
            }
            check(&e)?;
            let ops = match e.num_uses {
                0 => return Ok(e),
                1 => vec![(key.clone(), None), (accessor_key, None)],
                n => {
                    let mut next = e.clone();
                    next.num_uses = n - 1;
                    next.last_updated_time = now;
                    vec![(key.clone(), Some(store::encode(&next)?))]
                }
            };
            if s.transaction_if(vec![(key.clone(), rev)], ops).await? {
                return Ok(e);
            }
            // Another server spent a use first: look again.
        }
    }

    /// A login token is being renewed: refused once its role is gone (deleted, or deleted
    /// and re-created, which took the role's secret IDs with it); otherwise the role's
    /// current `token_ttl` (or `token_period`) and `token_max_ttl` apply.
    pub(crate) async fn renew(&self, req: &Request) -> Result<Option<Response>> {
        let data = req
            .secret
            .as_ref()
            .map(|s| s.internal_data.clone())
            .unwrap_or_default();
        let text = |k: &str| data.get(k).and_then(Value::as_str).unwrap_or_default();
        let name = text("role_name");
        if name.is_empty() {
            return Err(bad("the token carries no role name to renew against"));
        }
        let Some(role) = store::load_role(&*req.storage, name).await? else {
            return Err(bad(format!("role {name:?} does not exist during renewal")));
        };
        let instance = text("role_instance");
        if !instance.is_empty() && instance != role.instance {
            return Err(bad(format!(
                "role {name:?} was deleted and created again after this login, with none of the secret IDs it had: the token cannot be renewed"
            )));
        }
        let t = &role.token;
        let mut auth = Auth {
            ttl: Duration::from_secs(if t.token_period > 0 {
                t.token_period
            } else {
                t.token_ttl
            }),
            ..Default::default()
        };
        if t.token_max_ttl > 0 {
            let login = data.get("login_time").and_then(Value::as_i64).unwrap_or(0);
            let max = i64::try_from(t.token_max_ttl).unwrap_or(i64::MAX);
            let left = login.saturating_add(max).saturating_sub(self.now());
            if left <= 0 {
                return Err(bad(
                    "the token has reached its role's token_max_ttl and cannot be renewed",
                ));
            }
            auth.max_ttl = Duration::from_secs(left.unsigned_abs());
        }
        Ok(Some(Response {
            auth: Some(auth),
            ..Default::default()
        }))
    }
}
