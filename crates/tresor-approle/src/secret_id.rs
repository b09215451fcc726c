//! Secret IDs: `role/:role_name/secret-id` (generate, and LIST of accessors),
//! `custom-secret-id`, `secret-id/lookup|destroy` and `secret-id-accessor/lookup|destroy`.
//!
//! A secret ID and its accessor are written in one commit, conditional on the role being as
//! read (a role deleted or changed meanwhile is read again) and on both keys being absent
//! (a custom secret ID registered twice is refused). Lookups of an expired secret ID fail;
//! tidy removes it.

use std::sync::Arc;

use serde_json::{Value, json};
use tresor_sdk::framework::Fields;
use tresor_sdk::{LogicalError, Request, Response, Result};

use crate::engine::{
    Engine, MAX_ID_BYTES, bad, is_subset, mount_id, parse_cidrs, parse_metadata, role_missing,
};
use crate::inputs::{AccessorInput, NewSecretIdInput, RoleNameInput, SecretIdInput};
use crate::store::{self, AccessorEntry, RoleEntry, SecretIdEntry};

/// Vault prints a secret ID that never expires with Go's zero time.
const NEVER: &str = "0001-01-01T00:00:00Z";

fn time(secs: i64) -> Value {
    if secs == 0 {
        json!(NEVER)
    } else {
        json!(tresor_sdk::clock::rfc3339(secs))
    }
}

/// What lookups show of a secret ID (never the secret itself).
fn show(e: &SecretIdEntry) -> Response {
    Response::json(json!({
        "secret_id_accessor": e.accessor,
        "creation_time": time(e.creation_time),
        "expiration_time": time(e.expiration_time),
        "last_updated_time": time(e.last_updated_time),
        "metadata": e.metadata,
        "secret_id_num_uses": e.num_uses,
        "secret_id_ttl": e.ttl,
        "cidr_list": e.cidr_list,
        "token_bound_cidrs": e.token_bound_cidrs,
    }))
}

fn accessor_not_found(accessor: &str) -> LogicalError {
    LogicalError::NotFound(format!(
        "failed to find accessor entry for secret_id_accessor: {accessor:?}"
    ))
}

/// A presented secret ID: required, and no longer than Vault allows.
fn presented(f: &Fields) -> Result<String> {
    let id = f.input::<SecretIdInput>().secret_id.trim().to_owned();
    if id.is_empty() {
        return Err(bad("missing secret_id"));
    }
    if id.len() > MAX_ID_BYTES {
        return Err(bad(format!(
            "secret_id is longer than the maximum of {MAX_ID_BYTES} bytes"
        )));
    }
    Ok(id)
}

/// The settings of a new secret ID, checked against its role: a secret ID may narrow what
/// the role allows, never widen it.
fn new_entry(role: &RoleEntry, f: &Fields, now: i64) -> Result<SecretIdEntry> {
    let NewSecretIdInput {
        metadata,
        cidr_list,
        token_bound_cidrs,
        num_uses,
        ttl,
    } = f.input();
    let blocks = parse_cidrs("cidr_list", &cidr_list)?;
    if !role.secret_id_bound_cidrs.is_empty() {
        let outer = parse_cidrs("secret_id_bound_cidrs", &role.secret_id_bound_cidrs)?;
        if !is_subset(&blocks, &outer) {
            return Err(bad(
                "failed to verify the CIDR restrictions set on the secret ID: cidr_list must lie within the role's secret_id_bound_cidrs",
            ));
        }
    }
    let blocks = parse_cidrs("token_bound_cidrs", &token_bound_cidrs)?;
    if !role.token.token_bound_cidrs.is_empty() {
        let outer = parse_cidrs("token_bound_cidrs", &role.token.token_bound_cidrs)?;
        if !is_subset(&blocks, &outer) {
            return Err(bad(
                "failed to verify the token bound CIDR restrictions set on the secret ID: token_bound_cidrs must lie within the role's token_bound_cidrs",
            ));
        }
    }
    let num_uses = if let Some(n) = num_uses {
        if n < 0 {
            return Err(bad("num_uses cannot be negative"));
        }
        if role.secret_id_num_uses > 0 && (n == 0 || n > role.secret_id_num_uses) {
            return Err(bad(
                "num_uses cannot be higher than the role's secret_id_num_uses",
            ));
        }
        n
    } else {
        role.secret_id_num_uses
    };
    let ttl = if let Some(t) = ttl {
        let t = t.as_secs();
        if role.secret_id_ttl > 0 && (t == 0 || t > role.secret_id_ttl) {
            return Err(bad("ttl cannot be longer than the role's secret_id_ttl"));
        }
        t
    } else {
        role.secret_id_ttl
    };
    let expiration_time = if ttl > 0 {
        now.saturating_add(i64::try_from(ttl).unwrap_or(i64::MAX))
    } else {
        0
    };
    Ok(SecretIdEntry {
        version: 1,
        secret_id_hmac: String::new(),
        accessor: store::new_uuid(),
        num_uses,
        ttl,
        creation_time: now,
        expiration_time,
        last_updated_time: now,
        metadata: parse_metadata(Some(&metadata))?,
        cidr_list,
        token_bound_cidrs,
    })
}

impl Engine {
    /// The role a secret-ID path names, or Vault's 400 for a role that does not exist.
    async fn existing_role(&self, req: &Request, f: &Fields) -> Result<RoleEntry> {
        let name = f.input::<RoleNameInput>().role_name;
        store::load_role(&*req.storage, &name)
            .await?
            .ok_or_else(|| role_missing(&name))
    }

    /// `role/:role_name/secret-id` (generated) and `custom-secret-id` (given).
    pub(crate) async fn secret_id_create(
        self: Arc<Self>,
        req: Request,
        f: Fields,
        custom: bool,
    ) -> Result<Option<Response>> {
        let name = f.input::<RoleNameInput>().role_name;
        let s = &*req.storage;
        let salt = self.salt(&mount_id(&req), s).await?;
        let secret_id = if custom {
            presented(&f)?
        } else {
            store::new_uuid()
        };
        let hmac = salt.secret_id(&secret_id);
        loop {
            let Some((role, role_rev)) =
                store::load_rev::<RoleEntry>(s, "approle role", &store::role_key(&name)).await?
            else {
                return Err(role_missing(&name));
            };
            if !role.bind_secret_id {
                return Err(bad("bind_secret_id is not set on the role"));
            }
            let mut entry = new_entry(&role, &f, self.now())?;
            entry.secret_id_hmac = hmac.clone();
            let key = store::secret_key(&role.instance, &hmac);
            let acc_key = store::accessor_key(&role.instance, &entry.accessor);
            let acc = AccessorEntry {
                version: 1,
                secret_id_hmac: hmac.clone(),
            };
            let checks = vec![
                (store::role_key(&name), role_rev),
                (key.clone(), 0),
                (acc_key.clone(), 0),
            ];
            let ops = vec![
                (key.clone(), Some(store::encode(&entry)?)),
                (acc_key, Some(store::encode(&acc)?)),
            ];
            if s.transaction_if(checks, ops).await? {
                return Ok(Some(Response::json(json!({
                    "secret_id": secret_id,
                    "secret_id_accessor": entry.accessor,
                    "secret_id_ttl": entry.ttl,
                    "secret_id_num_uses": entry.num_uses,
                }))));
            }
            if s.get(&key).await?.is_some() {
                return Err(bad("SecretID is already registered"));
            }
            // The role changed under us: read it again.
        }
    }

    pub(crate) async fn secret_id_list(
        self: Arc<Self>,
        req: Request,
        f: Fields,
    ) -> Result<Option<Response>> {
        let role = self.existing_role(&req, &f).await?;
        let keys = req
            .storage
            .list(&store::accessor_prefix(&role.instance))
            .await?;
        Ok(Some(Response::list(
            keys.into_iter().filter(|k| !k.ends_with('/')).collect(),
        )))
    }

    pub(crate) async fn secret_id_lookup(
        self: Arc<Self>,
        req: Request,
        f: Fields,
    ) -> Result<Option<Response>> {
        let role = self.existing_role(&req, &f).await?;
        let secret_id = presented(&f)?;
        let s = &*req.storage;
        let hmac = self.salt(&mount_id(&req), s).await?.secret_id(&secret_id);
        let entry: Option<SecretIdEntry> = store::load(
            s,
            "approle secret ID",
            &store::secret_key(&role.instance, &hmac),
        )
        .await?;
        match entry {
            Some(e) if !e.expired(self.now()) && store::ct_eq(&e.secret_id_hmac, &hmac) => {
                Ok(Some(show(&e)))
            }
            // As in Vault: no such secret ID (never made, destroyed, used up or expired) is
            // an empty answer (204), not an error; the answer is the same for each reason.
            _ => Ok(None),
        }
    }

    pub(crate) async fn secret_id_destroy(
        self: Arc<Self>,
        req: Request,
        f: Fields,
    ) -> Result<Option<Response>> {
        let role = self.existing_role(&req, &f).await?;
        let secret_id = presented(&f)?;
        let hmac = self
            .salt(&mount_id(&req), &*req.storage)
            .await?
            .secret_id(&secret_id);
        self.destroy(&req, &role.instance, &hmac).await?;
        Ok(None)
    }

    /// Deletes a secret ID and its accessor, if it exists, in one commit.
    async fn destroy(&self, req: &Request, instance: &str, hmac: &str) -> Result<()> {
        let s = &*req.storage;
        let key = store::secret_key(instance, hmac);
        let _g = self.lock(&mount_id(req), &key).await;
        loop {
            let Some((e, rev)) =
                store::load_rev::<SecretIdEntry>(s, "approle secret ID", &key).await?
            else {
                return Ok(());
            };
            let ops = vec![
                (key.clone(), None),
                (store::accessor_key(instance, &e.accessor), None),
            ];
            if s.transaction_if(vec![(key.clone(), rev)], ops).await? {
                return Ok(());
            }
        }
    }

    /// The accessor entry an accessor path names.
    async fn accessor(
        &self,
        req: &Request,
        f: &Fields,
    ) -> Result<(RoleEntry, String, Option<AccessorEntry>)> {
        let role = self.existing_role(req, f).await?;
        let accessor = f
            .input::<AccessorInput>()
            .secret_id_accessor
            .trim()
            .to_owned();
        if accessor.is_empty() {
            return Err(bad("missing secret_id_accessor"));
        }
        // Accessors are UUIDs; anything else (a `/` would name another key) is unknown.
        if accessor.contains('/') || accessor.len() > 128 {
            return Err(accessor_not_found(&accessor));
        }
        let entry = store::load(
            &*req.storage,
            "approle secret ID accessor",
            &store::accessor_key(&role.instance, &accessor),
        )
        .await?;
        Ok((role, accessor, entry))
    }

    pub(crate) async fn accessor_lookup(
        self: Arc<Self>,
        req: Request,
        f: Fields,
    ) -> Result<Option<Response>> {
        let (role, accessor, entry) = self.accessor(&req, &f).await?;
        let Some(acc) = entry else {
            return Err(accessor_not_found(&accessor));
        };
        let secret: Option<SecretIdEntry> = store::load(
            &*req.storage,
            "approle secret ID",
            &store::secret_key(&role.instance, &acc.secret_id_hmac),
        )
        .await?;
        match secret {
            Some(e) if !e.expired(self.now()) => Ok(Some(show(&e))),
            _ => Err(accessor_not_found(&accessor)),
        }
    }

    pub(crate) async fn accessor_destroy(
        self: Arc<Self>,
        req: Request,
        f: Fields,
    ) -> Result<Option<Response>> {
        let (role, accessor, entry) = self.accessor(&req, &f).await?;
        let Some(acc) = entry else {
            return Err(accessor_not_found(&accessor));
        };
        self.destroy(&req, &role.instance, &acc.secret_id_hmac)
            .await?;
        // A dangling accessor (its secret ID already gone) goes too.
        req.storage
            .delete(&store::accessor_key(&role.instance, &accessor))
            .await?;
        Ok(None)
    }
}
