//! Roles: `role/:role_name` (create, update, read, delete), `LIST role`, the per-field
//! sub-paths Vault offers so ACLs can delegate single settings, and `role-id`.
//!
//! Every change of a role is a read-modify-write under the role's in-process lock, committed
//! only if storage still holds the revision read (another server sharing the storage may
//! have written it); a new role ID is committed only if no other role holds it.

use std::sync::Arc;

use serde_json::{Map, Value, json};
use tresor_sdk::framework::{Fields, Path};
use tresor_sdk::{LogicalError, Request, Response, Result};

use crate::engine::{Engine, MAX_ID_BYTES, bad, mount_id, parse_cidrs, validate_role_name};
use crate::inputs::{
    BindSecretIdInput, BoundCidrListInput, PeriodInput, PoliciesInput, RoleIdInput, RoleInput,
    RoleNameInput, SecretIdBoundCidrsInput, SecretIdNumUsesInput, SecretIdTtlInput,
    TokenBoundCidrsInput, TokenMaxTtlInput, TokenNumUsesInput, TokenTtlInput,
};
use crate::store::{self, RoleEntry, RoleIdIndex};

/// One setting served by its own sub-path (`role/:role_name/<path>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Prop {
    Policies,
    LocalSecretIds,
    BoundCidrList,
    SecretIdBoundCidrs,
    TokenBoundCidrs,
    BindSecretId,
    SecretIdNumUses,
    SecretIdTtl,
    Period,
    TokenNumUses,
    TokenTtl,
    TokenMaxTtl,
}

impl Prop {
    /// Declares the sub-path's input: its own setting (and that setting's legacy name), and
    /// nothing for `local-secret-ids`, which is read-only.
    pub(crate) fn declare(self, p: Path<Engine>) -> Path<Engine> {
        match self {
            Prop::Policies => p.input::<PoliciesInput>(),
            Prop::LocalSecretIds => p,
            Prop::BoundCidrList => p.input::<BoundCidrListInput>(),
            Prop::SecretIdBoundCidrs => p.input::<SecretIdBoundCidrsInput>(),
            Prop::TokenBoundCidrs => p.input::<TokenBoundCidrsInput>(),
            Prop::BindSecretId => p.input::<BindSecretIdInput>(),
            Prop::SecretIdNumUses => p.input::<SecretIdNumUsesInput>(),
            Prop::SecretIdTtl => p.input::<SecretIdTtlInput>(),
            Prop::Period => p.input::<PeriodInput>(),
            Prop::TokenNumUses => p.input::<TokenNumUsesInput>(),
            Prop::TokenTtl => p.input::<TokenTtlInput>(),
            Prop::TokenMaxTtl => p.input::<TokenMaxTtlInput>(),
        }
    }

    fn show(self, r: &RoleEntry) -> Map<String, Value> {
        let t = &r.token;
        let v = match self {
            Prop::Policies => {
                json!({"policies": t.token_policies, "token_policies": t.token_policies})
            }
            Prop::LocalSecretIds => json!({"local_secret_ids": r.local_secret_ids}),
            Prop::BoundCidrList => json!({"bound_cidr_list": r.secret_id_bound_cidrs}),
            Prop::SecretIdBoundCidrs => {
                json!({"secret_id_bound_cidrs": r.secret_id_bound_cidrs})
            }
            Prop::TokenBoundCidrs => json!({"token_bound_cidrs": t.token_bound_cidrs}),
            Prop::BindSecretId => json!({"bind_secret_id": r.bind_secret_id}),
            Prop::SecretIdNumUses => json!({"secret_id_num_uses": r.secret_id_num_uses}),
            Prop::SecretIdTtl => json!({"secret_id_ttl": r.secret_id_ttl}),
            Prop::Period => json!({"period": t.token_period, "token_period": t.token_period}),
            Prop::TokenNumUses => json!({"token_num_uses": t.token_num_uses}),
            Prop::TokenTtl => json!({"token_ttl": t.token_ttl}),
            Prop::TokenMaxTtl => json!({"token_max_ttl": t.token_max_ttl}),
        };
        match v {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }

    /// Applies the value the request sent; refuses a request that sends none (naming the
    /// setting's current name). The `token_*` settings go through `TokenParams::update`,
    /// which validates them as a role write does and takes a current name over its legacy one.
    fn set(self, r: &mut RoleEntry, f: &Fields) -> Result<()> {
        fn sent<T>(v: Option<T>, name: &str) -> Result<T> {
            v.ok_or_else(|| bad(format!("missing {name}")))
        }
        match self {
            Prop::LocalSecretIds => {
                return Err(bad(
                    "local_secret_ids can only be modified during role creation",
                ));
            }
            Prop::BoundCidrList => {
                let list = sent(
                    f.input::<BoundCidrListInput>().bound_cidr_list,
                    "bound_cidr_list",
                )?;
                parse_cidrs("bound_cidr_list", &list)?;
                r.secret_id_bound_cidrs = list;
            }
            Prop::SecretIdBoundCidrs => {
                let list = sent(
                    f.input::<SecretIdBoundCidrsInput>().secret_id_bound_cidrs,
                    "secret_id_bound_cidrs",
                )?;
                parse_cidrs("secret_id_bound_cidrs", &list)?;
                r.secret_id_bound_cidrs = list;
            }
            Prop::BindSecretId => {
                r.bind_secret_id = sent(
                    f.input::<BindSecretIdInput>().bind_secret_id,
                    "bind_secret_id",
                )?;
            }
            Prop::SecretIdNumUses => {
                r.secret_id_num_uses = sent(
                    f.input::<SecretIdNumUsesInput>().secret_id_num_uses,
                    "secret_id_num_uses",
                )?;
            }
            Prop::SecretIdTtl => {
                r.secret_id_ttl =
                    sent(f.input::<SecretIdTtlInput>().secret_id_ttl, "secret_id_ttl")?.as_secs();
            }
            Prop::Policies => {
                let PoliciesInput {
                    token_policies,
                    policies,
                } = f.input();
                sent(token_policies.or(policies), "token_policies")?;
                r.token.update(f)?;
            }
            Prop::TokenBoundCidrs => {
                sent(
                    f.input::<TokenBoundCidrsInput>().token_bound_cidrs,
                    "token_bound_cidrs",
                )?;
                r.token.update(f)?;
            }
            Prop::Period => {
                let PeriodInput {
                    token_period,
                    period,
                } = f.input();
                sent(token_period.or(period), "token_period")?;
                r.token.update(f)?;
            }
            Prop::TokenNumUses => {
                sent(
                    f.input::<TokenNumUsesInput>().token_num_uses,
                    "token_num_uses",
                )?;
                r.token.update(f)?;
            }
            Prop::TokenTtl => {
                sent(f.input::<TokenTtlInput>().token_ttl, "token_ttl")?;
                r.token.update(f)?;
            }
            Prop::TokenMaxTtl => {
                sent(f.input::<TokenMaxTtlInput>().token_max_ttl, "token_max_ttl")?;
                r.token.update(f)?;
            }
        }
        Ok(())
    }

    /// Resets the setting to its default (`DELETE`).
    fn reset(self, r: &mut RoleEntry) {
        let t = &mut r.token;
        match self {
            Prop::Policies => t.token_policies.clear(),
            Prop::LocalSecretIds => {}
            Prop::BoundCidrList | Prop::SecretIdBoundCidrs => r.secret_id_bound_cidrs.clear(),
            Prop::TokenBoundCidrs => t.token_bound_cidrs.clear(),
            Prop::BindSecretId => r.bind_secret_id = true,
            Prop::SecretIdNumUses => r.secret_id_num_uses = 0,
            Prop::SecretIdTtl => r.secret_id_ttl = 0,
            Prop::Period => t.token_period = 0,
            Prop::TokenNumUses => t.token_num_uses = 0,
            Prop::TokenTtl => t.token_ttl = 0,
            Prop::TokenMaxTtl => t.token_max_ttl = 0,
        }
    }
}

/// What every stored role satisfies.
fn validate(r: &RoleEntry) -> Result<()> {
    if !r.bind_secret_id
        && r.secret_id_bound_cidrs.is_empty()
        && r.token.token_bound_cidrs.is_empty()
    {
        return Err(bad(
            "at least one constraint should be enabled on the role: bind_secret_id, secret_id_bound_cidrs or token_bound_cidrs",
        ));
    }
    if r.secret_id_num_uses < 0 {
        return Err(bad("secret_id_num_uses cannot be negative"));
    }
    parse_cidrs("secret_id_bound_cidrs", &r.secret_id_bound_cidrs)?;
    Ok(())
}

fn check_role_id(id: &str) -> Result<()> {
    if id.is_empty() {
        return Err(bad("missing role_id"));
    }
    if id.len() > MAX_ID_BYTES {
        return Err(bad(format!(
            "role_id is longer than the maximum of {MAX_ID_BYTES} bytes"
        )));
    }
    Ok(())
}

fn no_role(name: &str) -> LogicalError {
    LogicalError::NotFound(format!("role {name:?} does not exist"))
}

impl Engine {
    /// Changes (or, with `create`, creates) a role: `edit` gets the role as stored now (a
    /// fresh one, flagged `true`, when there is none) and may run again if another server
    /// wrote the role in between.
    pub(crate) async fn modify_role(
        &self,
        req: &Request,
        name: &str,
        create: bool,
        mut edit: impl FnMut(&mut RoleEntry, bool) -> Result<()>,
    ) -> Result<RoleEntry> {
        let s = &*req.storage;
        let mount = mount_id(req);
        let salt = self.salt(&mount, s).await?;
        let key = store::role_key(name);
        let _g = self.lock(&mount, &key).await;
        loop {
            let current = store::load_rev::<RoleEntry>(s, "approle role", &key).await?;
            let (mut role, rev, old_id) = match current {
                Some((r, rev)) => {
                    let id = r.role_id.clone();
                    (r, rev, Some(id))
                }
                None if create => (
                    RoleEntry {
                        name: name.to_owned(),
                        instance: store::new_uuid(),
                        role_id: store::new_uuid(),
                        ..Default::default()
                    },
                    0,
                    None,
                ),
                None => return Err(no_role(name)),
            };
            edit(&mut role, old_id.is_none())?;
            validate(&role)?;
            let mut checks = vec![(key.clone(), rev)];
            let mut ops = vec![(key.clone(), Some(store::encode(&role)?))];
            if old_id.as_deref() != Some(role.role_id.as_str()) {
                let index_key = store::role_id_key(&salt.role_id(&role.role_id));
                match store::load_rev::<RoleIdIndex>(s, "approle role ID index", &index_key).await?
                {
                    Some((ix, _)) if ix.name != name => {
                        return Err(bad("role_id is already in use by another role"));
                    }
                    Some((_, r)) => checks.push((index_key.clone(), r)),
                    None => checks.push((index_key.clone(), 0)),
                }
                let ix = RoleIdIndex {
                    version: 1,
                    name: name.to_owned(),
                };
                ops.push((index_key, Some(store::encode(&ix)?)));
                if let Some(old) = &old_id {
                    ops.push((store::role_id_key(&salt.role_id(old)), None));
                }
            }
            if s.transaction_if(checks, ops).await? {
                return Ok(role);
            }
        }
    }

    pub(crate) async fn role_list(
        self: Arc<Self>,
        req: Request,
        _f: Fields,
    ) -> Result<Option<Response>> {
        let keys = req.storage.list(store::ROLE_PREFIX).await?;
        Ok(Some(Response::list(
            keys.into_iter().filter(|k| !k.ends_with('/')).collect(),
        )))
    }

    pub(crate) async fn role_exists(self: Arc<Self>, req: Request, f: Fields) -> Result<bool> {
        let name = f.input::<RoleNameInput>().role_name;
        Ok(store::load_role(&*req.storage, &name).await?.is_some())
    }

    pub(crate) async fn role_write(
        self: Arc<Self>,
        req: Request,
        f: Fields,
    ) -> Result<Option<Response>> {
        let name = f.input::<RoleNameInput>().role_name;
        let i: RoleInput = f.input();
        let mut warnings = Vec::new();
        let cidrs = match (i.secret_id_bound_cidrs, i.bound_cidr_list) {
            (Some(list), _) => Some(("secret_id_bound_cidrs", list)),
            (None, Some(list)) => {
                warnings.push(
                    "the \"bound_cidr_list\" parameter is deprecated: use \"secret_id_bound_cidrs\""
                        .to_owned(),
                );
                Some(("bound_cidr_list", list))
            }
            (None, None) => None,
        };
        let token_names: tresor_sdk::token::TokenFields = f.input();
        for (legacy, legacy_sent, current, current_sent) in [
            (
                "policies",
                token_names.policies.is_some(),
                "token_policies",
                token_names.token_policies.is_some(),
            ),
            (
                "period",
                token_names.period.is_some(),
                "token_period",
                token_names.token_period.is_some(),
            ),
        ] {
            if legacy_sent && !current_sent {
                warnings.push(format!(
                    "the {legacy:?} parameter is deprecated: use {current:?}"
                ));
            }
        }
        let role = self
            .modify_role(&req, &name, true, |role, is_new| {
                if is_new {
                    validate_role_name(&name)?;
                }
                if let Some(id) = &i.role_id {
                    let id = id.trim().to_owned();
                    check_role_id(&id)?;
                    role.role_id = id;
                }
                if let Some(b) = i.bind_secret_id {
                    role.bind_secret_id = b;
                }
                if let Some((field, list)) = &cidrs {
                    parse_cidrs(field, list)?;
                    role.secret_id_bound_cidrs = list.clone();
                }
                if let Some(n) = i.secret_id_num_uses {
                    role.secret_id_num_uses = n;
                }
                if let Some(d) = i.secret_id_ttl {
                    role.secret_id_ttl = d.as_secs();
                }
                if let Some(local) = i.local_secret_ids {
                    if !is_new {
                        return Err(bad(
                            "local_secret_ids can only be modified during role creation",
                        ));
                    }
                    role.local_secret_ids = local;
                }
                role.token.update(&f)
            })
            .await?;
        let mount_max = req.mount.max_lease_ttl.as_secs();
        if mount_max > 0 && role.token.token_max_ttl > mount_max {
            warnings.push(
                "token_max_ttl is greater than the auth mount's max TTL: the tokens' max TTL will be capped at the mount's"
                    .to_owned(),
            );
        }
        if warnings.is_empty() {
            return Ok(None);
        }
        Ok(Some(Response {
            warnings,
            ..Default::default()
        }))
    }

    pub(crate) async fn role_read(
        self: Arc<Self>,
        req: Request,
        f: Fields,
    ) -> Result<Option<Response>> {
        let name = f.input::<RoleNameInput>().role_name;
        let Some(r) = store::load_role(&*req.storage, &name).await? else {
            return Ok(None);
        };
        let mut m = Map::new();
        m.insert("bind_secret_id".into(), json!(r.bind_secret_id));
        m.insert("local_secret_ids".into(), json!(r.local_secret_ids));
        m.insert(
            "secret_id_bound_cidrs".into(),
            json!(r.secret_id_bound_cidrs),
        );
        m.insert("secret_id_num_uses".into(), json!(r.secret_id_num_uses));
        m.insert("secret_id_ttl".into(), json!(r.secret_id_ttl));
        r.token.show(&mut m);
        // The legacy names, as Vault still shows them.
        m.insert("policies".into(), json!(r.token.token_policies));
        m.insert("period".into(), json!(r.token.token_period));
        Ok(Some(Response::data(m)))
    }

    pub(crate) async fn role_delete(
        self: Arc<Self>,
        req: Request,
        f: Fields,
    ) -> Result<Option<Response>> {
        let name = f.input::<RoleNameInput>().role_name;
        let s = &*req.storage;
        let mount = mount_id(&req);
        let salt = self.salt(&mount, s).await?;
        let key = store::role_key(&name);
        let instance = {
            let _g = self.lock(&mount, &key).await;
            loop {
                let Some((role, rev)) =
                    store::load_rev::<RoleEntry>(s, "approle role", &key).await?
                else {
                    return Ok(None);
                };
                let ops = vec![
                    (key.clone(), None),
                    (store::role_id_key(&salt.role_id(&role.role_id)), None),
                ];
                if s.transaction_if(vec![(key.clone(), rev)], ops).await? {
                    break role.instance;
                }
            }
        };
        // The role is gone, so are its secret IDs: nothing can log in with them from here
        // on (a crash before these deletes leaves entries tidy removes).
        s.delete_prefix(&store::secret_prefix(&instance)).await?;
        s.delete_prefix(&store::accessor_prefix(&instance)).await?;
        Ok(None)
    }

    pub(crate) async fn prop_read(
        self: Arc<Self>,
        prop: Prop,
        req: Request,
        f: Fields,
    ) -> Result<Option<Response>> {
        let name = f.input::<RoleNameInput>().role_name;
        Ok(store::load_role(&*req.storage, &name)
            .await?
            .map(|r| Response::data(prop.show(&r))))
    }

    pub(crate) async fn prop_update(
        self: Arc<Self>,
        prop: Prop,
        req: Request,
        f: Fields,
    ) -> Result<Option<Response>> {
        let name = f.input::<RoleNameInput>().role_name;
        self.modify_role(&req, &name, false, |r, _| prop.set(r, &f))
            .await?;
        Ok(None)
    }

    pub(crate) async fn prop_delete(
        self: Arc<Self>,
        prop: Prop,
        req: Request,
        f: Fields,
    ) -> Result<Option<Response>> {
        let name = f.input::<RoleNameInput>().role_name;
        match self
            .modify_role(&req, &name, false, |r, _| {
                prop.reset(r);
                Ok(())
            })
            .await
        {
            Ok(_) | Err(LogicalError::NotFound(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub(crate) async fn role_id_read(
        self: Arc<Self>,
        req: Request,
        f: Fields,
    ) -> Result<Option<Response>> {
        let name = f.input::<RoleNameInput>().role_name;
        Ok(store::load_role(&*req.storage, &name)
            .await?
            .map(|r| Response::json(json!({"role_id": r.role_id}))))
    }

    pub(crate) async fn role_id_update(
        self: Arc<Self>,
        req: Request,
        f: Fields,
    ) -> Result<Option<Response>> {
        let name = f.input::<RoleNameInput>().role_name;
        let id = f.input::<RoleIdInput>().role_id.trim().to_owned();
        check_role_id(&id)?;
        self.modify_role(&req, &name, false, |r, _| {
            r.role_id = id.clone();
            Ok(())
        })
        .await?;
        Ok(None)
    }
}
