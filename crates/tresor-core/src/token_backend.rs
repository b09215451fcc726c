//! The token auth method mounted at `auth/token/`: create, lookup, renew and revoke tokens,
//! token roles, accessors and tidy, with Vault's rules for policies, TTLs, orphans and periods.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tresor_sdk::framework::{Fields, Path, Table, TableBackend};
use tresor_sdk::{
    LogicalBackend, LogicalError, Operation, Request, Response, Result, SpecialPaths,
};

use crate::control::Subsystems;
use crate::core::Unsealed;
use crate::error::CoreError;
use crate::tokens::{TokenEntry, new_token_id, now};

/// The token store's API, built from the subsystems of its unseal alone.
pub struct TokenAuth {
    subsystems: Subsystems,
}

pub(crate) fn backend(subsystems: Subsystems) -> Arc<dyn LogicalBackend> {
    TableBackend::new(TokenAuth { subsystems }, table())
}

fn unsealed(s: &TokenAuth) -> Result<Arc<Unsealed>> {
    s.subsystems.get().map_err(le)
}

fn le(e: CoreError) -> LogicalError {
    match e {
        CoreError::InvalidRequest(m) => LogicalError::InvalidRequest(m),
        CoreError::PermissionDenied => LogicalError::PermissionDenied,
        CoreError::Forbidden(m) => LogicalError::Forbidden(m),
        CoreError::RateLimited(m) => LogicalError::RateLimited(m),
        other => LogicalError::Internal(other.to_string()),
    }
}

/// A token role (`auth/token/roles/:name`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Role {
    pub name: String,
    pub allowed_policies: Vec<String>,
    pub disallowed_policies: Vec<String>,
    pub allowed_policies_glob: Vec<String>,
    pub disallowed_policies_glob: Vec<String>,
    pub orphan: bool,
    pub renewable: bool,
    pub path_suffix: String,
    pub explicit_max_ttl: u64,
    pub period: u64,
    pub token_type: String,
    pub allowed_entity_aliases: Vec<String>,
    pub token_no_default_policy: bool,
    pub token_num_uses: i64,
    pub token_bound_cidrs: Vec<String>,
}

impl Role {
    fn to_json(&self) -> Value {
        json!({
            "name": self.name,
            "allowed_policies": self.allowed_policies,
            "disallowed_policies": self.disallowed_policies,
            "allowed_policies_glob": self.allowed_policies_glob,
            "disallowed_policies_glob": self.disallowed_policies_glob,
            "orphan": self.orphan,
            "renewable": self.renewable,
            "path_suffix": self.path_suffix,
            "explicit_max_ttl": self.explicit_max_ttl,
            "token_explicit_max_ttl": self.explicit_max_ttl,
            "period": self.period,
            "token_period": self.period,
            "token_type": if self.token_type.is_empty() { "default-service" } else { &self.token_type },
            "allowed_entity_aliases": if self.allowed_entity_aliases.is_empty() { Value::Null } else { json!(self.allowed_entity_aliases) },
            "token_no_default_policy": self.token_no_default_policy,
            "token_num_uses": self.token_num_uses,
            "token_bound_cidrs": self.token_bound_cidrs,
        })
    }
}

fn glob_match(pattern: &str, s: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == s,
        Some((pre, post)) => {
            s.len() >= pre.len() + post.len() && s.starts_with(pre) && s.ends_with(post)
        }
    }
}

fn sanitize_policies(mut p: Vec<String>, add_default: bool) -> Vec<String> {
    for x in p.iter_mut() {
        *x = x.trim().to_lowercase();
    }
    p.retain(|x| !x.is_empty());
    if add_default && !p.iter().any(|x| x == "default") && !p.iter().any(|x| x == "root") {
        p.push("default".into());
    }
    p.sort();
    p.dedup();
    p
}

async fn caller_entry(u: &Unsealed, req: &Request) -> Result<Arc<TokenEntry>> {
    if let Some(batch) = &req.caller.batch_token {
        return u
            .tokens
            .lookup(batch)
            .await
            .map_err(le)?
            .ok_or(LogicalError::PermissionDenied);
    }
    let id = req
        .caller
        .token_id
        .as_deref()
        .ok_or(LogicalError::PermissionDenied)?;
    u.tokens
        .by_id(id)
        .await
        .map_err(le)?
        .ok_or(LogicalError::PermissionDenied)
}

tresor_sdk::input! {
    /// `create`, `create-orphan` and `create/:role_name`.
    struct CreateInput {
        id: Str, "Value for the token ID (root only).";
        role_name: Str, "Name of the role to create the token against.";
        policies: List, "List of policies for the token; defaults to the parent's policies.";
        meta: StrMap, "Arbitrary key=value metadata for the token.";
        no_parent: Bool, "Create the token with no parent (root or sudo only).";
        no_default_policy: Bool, "Do not attach the default policy.";
        renewable: Bool, "Whether the token may be renewed.", default = true;
        ttl: Duration, "Initial TTL of the token.";
        lease: Duration, "Deprecated: use ttl.";
        kind("type"): Str, "Token type: service or batch.";
        explicit_max_ttl: Duration, "A hard maximum lifetime that renewals cannot extend.";
        display_name: Str, "Name to associate with this token.";
        num_uses: Int, "Maximum number of uses of the token (0 = unlimited).";
        period: Duration, "Renewal period: each renewal resets the TTL to this (root or sudo only).";
        entity_alias: Str, "Name of the entity alias the token acts for (only with a role whose allowed_entity_aliases lists it); the entity is not inherited from the parent then.";
    }
}

tresor_sdk::input! {
    /// A token named in the body (`lookup`, `renew`, `revoke`, `revoke-orphan`).
    struct TokenInput {
        token: Str, "The token.";
    }
}

tresor_sdk::input! {
    /// A token named by its accessor (`lookup-accessor`, `renew-accessor`, `revoke-accessor`).
    struct AccessorInput {
        accessor: Str, "The accessor of the token.";
    }
}

tresor_sdk::input! {
    /// The extension a renewal asks for.
    struct IncrementInput {
        increment: Duration, "The desired increment of the TTL.";
    }
}

tresor_sdk::input! {
    /// `roles/:role_name`.
    struct RoleName {
        role_name: Str, "Name of the role.";
    }
}

tresor_sdk::input! {
    /// The settings of a token role: a write changes only the settings it sends.
    struct RoleInput {
        allowed_policies: OptList, "Policies tokens of this role may have.";
        disallowed_policies: OptList, "Policies tokens of this role may never have.";
        allowed_policies_glob: OptList, "Glob patterns of allowed policies.";
        disallowed_policies_glob: OptList, "Glob patterns of disallowed policies.";
        orphan: OptBool, "Whether tokens of this role are orphans.";
        renewable: OptBool, "Whether tokens of this role are renewable.", default = true;
        path_suffix: OptStr, "Suffix added to the token's path.";
        explicit_max_ttl: OptDuration, "Deprecated: use token_explicit_max_ttl.";
        token_explicit_max_ttl: OptDuration, "Hard maximum lifetime of tokens of this role.";
        period: OptDuration, "Deprecated: use token_period.";
        token_period: OptDuration, "Renewal period of tokens of this role.";
        token_type: OptStr, "Type of tokens: service, batch, default-service or default-batch.";
        allowed_entity_aliases: OptList, "Entity aliases tokens may be created against.";
        token_no_default_policy: OptBool, "Do not attach the default policy.";
        token_num_uses: OptInt, "Maximum uses of tokens of this role.";
        token_bound_cidrs: OptList, "CIDRs tokens of this role may be used from.";
        bound_cidrs: OptList, "Deprecated: use token_bound_cidrs.";
    }
}

/// The storage key of the role named in the path (names are case-insensitive).
fn role_key(f: &Fields) -> String {
    format!("roles/{}", f.input::<RoleName>().role_name.to_lowercase())
}

async fn create(
    s: Arc<TokenAuth>,
    req: Request,
    f: Fields,
    mode: &'static str,
) -> Result<Option<Response>> {
    let u = unsealed(&s)?;
    let parent = caller_entry(&u, &req).await?;
    let parent_root = parent.is_root();
    let sudo = req.caller.sudo || parent_root;
    let i = f.input::<CreateInput>();
    let role_name = &i.role_name;
    let role: Option<Role> = if mode == "role" {
        let r: Role = tresor_sdk::get_json(
            &*req.storage,
            &format!("roles/{}", role_name.to_lowercase()),
        )
        .await?
        .ok_or_else(|| LogicalError::invalid(format!("unknown role {role_name}")))?;
        Some(r)
    } else {
        None
    };
    if parent.is_batch()
        && role.as_ref().is_none_or(|r| !r.orphan)
        && mode != "orphan"
        && !i.no_parent
    {
        return Err(LogicalError::invalid(
            "batch tokens cannot create more tokens",
        ));
    }
    let mut token_type = i.kind.clone();
    if token_type.is_empty() {
        token_type = role
            .as_ref()
            .map(|r| r.token_type.replace("default-", ""))
            .filter(|t| !t.is_empty())
            .unwrap_or_else(|| "service".into());
    }
    if token_type != "service" && token_type != "batch" {
        return Err(LogicalError::invalid(format!(
            "invalid 'type' value {token_type:?}"
        )));
    }
    let custom_id = i.id.clone();
    if !custom_id.is_empty() {
        if !parent_root {
            return Err(LogicalError::invalid(
                "root or sudo privileges required to specify token id",
            ));
        }
        if custom_id.contains('.') {
            return Err(LogicalError::invalid(
                "token IDs can not contain period characters",
            ));
        }
    }
    // Policies: default to the parent's; otherwise a subset of the parent's (unless root).
    let no_default =
        i.no_default_policy || role.as_ref().is_some_and(|r| r.token_no_default_policy);
    let requested = i.policies.clone();
    let mut policies = if requested.is_empty() {
        match &role {
            Some(r) if !r.allowed_policies.is_empty() => r.allowed_policies.clone(),
            _ => parent
                .policies
                .iter()
                .filter(|p| *p != "root" || parent_root)
                .cloned()
                .collect(),
        }
    } else {
        requested
    };
    policies = sanitize_policies(policies, !no_default);
    if no_default {
        policies.retain(|p| p != "default" || i.policies.iter().any(|x| x == "default"));
    }
    if let Some(r) = &role {
        for p in &policies {
            if r.disallowed_policies.contains(p)
                || r.disallowed_policies_glob.iter().any(|g| glob_match(g, p))
            {
                return Err(LogicalError::invalid(format!(
                    "token policies ({p}) contains disallowed policies"
                )));
            }
            let allowed = (r.allowed_policies.is_empty()
                && r.allowed_policies_glob.is_empty()
                && (parent_root || parent.policies.contains(p)))
                || r.allowed_policies.contains(p)
                || r.allowed_policies_glob.iter().any(|g| glob_match(g, p))
                || p == "default";
            if !allowed {
                return Err(LogicalError::invalid(
                    "token policies must be subset of the role's allowed policies",
                ));
            }
        }
    } else if !parent_root {
        for p in &policies {
            if p != "default" && !parent.policies.contains(p) {
                return Err(LogicalError::invalid(
                    "child policies must be subset of parent",
                ));
            }
        }
    }
    // Internal policies are never assignable; a root token needs a root parent whatever a
    // role allows; a batch token is never root (it could not be revoked).
    if let Some(p) = policies
        .iter()
        .find(|p| crate::policies::NON_ASSIGNABLE.contains(&p.as_str()))
    {
        return Err(LogicalError::invalid(format!("cannot assign policy {p:?}")));
    }
    if policies.iter().any(|p| p == "root") {
        if !parent_root {
            return Err(LogicalError::invalid(
                "root tokens may not be created without parent token being root",
            ));
        }
        if token_type == "batch" {
            return Err(LogicalError::invalid("batch tokens cannot be root tokens"));
        }
    }
    let mut warnings = Vec::new();
    for p in &policies {
        if p != "root" && u.policies.get(p).is_none() {
            warnings.push(format!("Policy {p:?} does not exist"));
        }
    }
    let orphan = mode == "orphan" || i.no_parent || role.as_ref().is_some_and(|r| r.orphan);
    if i.no_parent && !sudo {
        return Err(LogicalError::invalid(
            "root or sudo privileges required to create orphan token",
        ));
    }
    if mode == "orphan" && !sudo {
        return Err(LogicalError::invalid(
            "root or sudo privileges required to create orphan token",
        ));
    }
    let requested_period = Some(i.period).filter(|d| !d.is_zero());
    let period = requested_period.or_else(|| {
        role.as_ref()
            .map(|r| Duration::from_secs(r.period))
            .filter(|d| !d.is_zero())
    });
    // Setting a period needs sudo, with or without a role (a role's own period does not).
    if requested_period.is_some() && !sudo {
        return Err(LogicalError::invalid(
            "root or sudo privileges required to create periodic token",
        ));
    }
    // A request may tighten the role's limits, never loosen them: the lesser explicit max TTL
    // and the lesser number of uses win (0 means none on either side).
    let lesser = |a: Option<Duration>, b: Option<Duration>| match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    let explicit_max = lesser(
        Some(i.explicit_max_ttl).filter(|d| !d.is_zero()),
        role.as_ref()
            .map(|r| Duration::from_secs(r.explicit_max_ttl))
            .filter(|d| !d.is_zero()),
    );
    let requested_uses = i.num_uses;
    if requested_uses < 0 {
        return Err(LogicalError::invalid("number of uses cannot be negative"));
    }
    let role_uses = role.as_ref().map(|r| r.token_num_uses).unwrap_or(0).max(0);
    let num_uses = match (requested_uses, role_uses) {
        (0, r) => r,
        (n, 0) => n,
        (n, r) => n.min(r),
    };
    let mut ttl = Some(i.ttl)
        .filter(|d| !d.is_zero())
        .or_else(|| Some(i.lease).filter(|d| !d.is_zero()));
    if let Some(p) = period {
        ttl = Some(p);
    }
    let is_root_token = policies.iter().any(|p| p == "root");
    let sys_max = req.mount.max_lease_ttl;
    let ttl = match ttl {
        Some(t) => Some(t),
        None if is_root_token && explicit_max.is_none() => None,
        None => Some(req.mount.default_lease_ttl),
    };
    let mut ttl = ttl.map(|t| if period.is_none() { t.min(sys_max) } else { t });
    if let (Some(t), Some(m)) = (ttl, explicit_max) {
        ttl = Some(t.min(m));
    }
    if ttl.is_none()
        && let Some(m) = explicit_max
    {
        ttl = Some(m);
    }
    // A child never outlives a parent that expires.
    if !orphan && let (Some(t), Some(pe)) = (ttl, parent.expire_time) {
        let left = Duration::from_secs((pe - now()).max(0) as u64);
        if t > left {
            ttl = Some(left);
        }
    }
    let created = now();
    let display = &i.display_name;
    let display_name = {
        let d: String = display
            .chars()
            .map(|ch| {
                if ch.is_ascii_alphanumeric() || ch == '-' || ch == '_' {
                    ch
                } else {
                    '-'
                }
            })
            .collect();
        if d.is_empty() {
            "token".to_owned()
        } else {
            format!("token-{d}")
        }
    };
    let path = match mode {
        "role" => format!(
            "auth/token/create/{}",
            role.as_ref()
                .map(|r| format!(
                    "{}{}",
                    r.name,
                    r.path_suffix
                        .trim_start_matches('/')
                        .is_empty()
                        .then(String::new)
                        .unwrap_or_else(|| format!("/{}", r.path_suffix))
                ))
                .unwrap_or_default()
        ),
        "orphan" => "auth/token/create-orphan".to_owned(),
        _ => "auth/token/create".to_owned(),
    };
    let renewable = i.renewable && role.as_ref().is_none_or(|r| r.renewable);
    let mut entry = TokenEntry {
        version: 1,
        id: if custom_id.is_empty() {
            new_token_id()
        } else {
            custom_id
        },
        hash: String::new(),
        accessor: tresor_seal::token::new_accessor(),
        parent: if orphan {
            String::new()
        } else {
            parent.hash.clone()
        },
        policies: policies.clone(),
        path,
        meta: i.meta,
        display_name,
        num_uses,
        creation_time: created,
        ttl: ttl.map(|t| t.as_secs()).unwrap_or(0),
        explicit_max_ttl: explicit_max.map(|d| d.as_secs()).unwrap_or(0),
        period: period.map(|d| d.as_secs()).unwrap_or(0),
        expire_time: ttl.map(|t| created.saturating_add(crate::tokens::secs(t))),
        last_renewal_time: None,
        token_type: token_type.clone(),
        orphan,
        role: role.as_ref().map(|r| r.name.clone()).unwrap_or_default(),
        renewable: renewable && token_type == "service",
        // A child acts for the same identity as its creator (as in Vault).
        entity_id: parent.entity_id.clone(),
        bound_cidrs: role
            .as_ref()
            .map(|r| r.token_bound_cidrs.clone())
            .unwrap_or_default(),
        max_ttl: 0,
        internal_data: serde_json::Map::new(),
        mount_accessor: String::new(),
    };
    // `entity_alias`: the token acts for the entity of that alias on the token mount
    // (created on first use), instead of its creator's.
    if let Some(alias) = Some(i.entity_alias.as_str()).filter(|a| !a.is_empty()) {
        let Some(role) = &role else {
            return Err(LogicalError::invalid(
                "'entity_alias' is only allowed in combination with token role",
            ));
        };
        let alias = alias.to_lowercase();
        if !role
            .allowed_entity_aliases
            .iter()
            .any(|g| glob_match(&g.to_lowercase(), &alias))
        {
            return Err(LogicalError::invalid("invalid 'entity_alias' value"));
        }
        let accessor = u
            .router()
            .exact("auth/token/")
            .map(|r| r.entry.accessor.clone())
            .unwrap_or_default();
        let named = tresor_sdk::Alias {
            name: alias,
            ..Default::default()
        };
        entry.entity_id = u.identity.login(&accessor, &named, &[]).await.map_err(le)?;
    }
    if token_type == "batch" {
        if num_uses > 0 {
            return Err(LogicalError::invalid(
                "batch tokens cannot have a use limit",
            ));
        }
        if period.is_some() {
            return Err(LogicalError::invalid("batch tokens cannot be periodic"));
        }
        entry.accessor.clear();
        entry.renewable = false;
        entry.id = u.tokens.mint_batch(&entry).map_err(le)?;
    }
    // The token and (when it expires) its lease are one commit.
    let lease_ops = match entry.expire_time {
        Some(exp) if token_type == "service" => {
            entry.hash = u.tokens.hash(&entry.id);
            u.expiration
                .token_lease_ops(
                    &entry.path,
                    &entry.hash,
                    &entry.accessor,
                    entry.creation_time,
                    exp,
                    &entry.role,
                )
                .map_err(le)?
        }
        _ => Vec::new(),
    };
    // A lease-count quota on the token store (a quota with a `role` counts that token role's
    // tokens) is checked here, its guard held until the token and its lease are stored, so
    // concurrent creations cannot overshoot it and a refused creation leaves no token.
    let _quota = if lease_ops.is_empty() {
        None
    } else {
        let path = format!("auth/token/{}", req.path);
        let role = (!entry.role.is_empty()).then_some(entry.role.as_str());
        u.quotas
            .check_lease(&path, role, &u.expiration)
            .await
            .map_err(le)?
    };
    let entry = u.tokens.store_child(entry, lease_ops).await.map_err(le)?;
    let mut resp = Response::default();
    resp.auth = Some(auth_of(&entry));
    resp.warnings = warnings;
    Ok(Some(resp))
}

fn auth_of(e: &TokenEntry) -> tresor_sdk::Auth {
    // The TTL granted, measured from the moment the expiry was set (creation or this renewal):
    // a slow store write must not turn a 1h token's answer into 3599 seconds.
    let remaining = e.remaining(e.last_renewal_time.unwrap_or(e.creation_time));
    tresor_sdk::Auth {
        client_token: e.id.clone(),
        accessor: e.accessor.clone(),
        orphan: e.orphan,
        entity_id: e.entity_id.clone(),
        policies: e.policies.clone(),
        metadata: e.meta.clone(),
        display_name: e.display_name.clone(),
        ttl: Duration::from_secs(remaining as u64),
        renewable: e.renewable && e.expire_time.is_some(),
        num_uses: e.num_uses,
        token_type: Some(e.token_type.clone()),
        ..Default::default()
    }
}

async fn lookup_target(
    u: &Unsealed,
    req: &Request,
    f: &Fields,
    which: &str,
) -> Result<Arc<TokenEntry>> {
    match which {
        "self" => caller_entry(u, req).await,
        "accessor" => {
            let a = f.input::<AccessorInput>().accessor;
            if a.is_empty() {
                return Err(LogicalError::invalid("missing accessor"));
            }
            u.tokens
                .by_accessor(&a)
                .await
                .map_err(le)?
                .ok_or_else(|| LogicalError::invalid("invalid accessor"))
        }
        _ => {
            let t = f.input::<TokenInput>().token;
            if t.is_empty() {
                return caller_entry(u, req).await;
            }
            u.tokens
                .lookup(&t)
                .await
                .map_err(le)?
                .ok_or_else(|| LogicalError::PermissionDenied)
        }
    }
}

async fn lookup(
    s: Arc<TokenAuth>,
    req: Request,
    f: Fields,
    which: &'static str,
) -> Result<Option<Response>> {
    let u = unsealed(&s)?;
    let e = match lookup_target(&u, &req, &f, which).await {
        // As in Vault: a token that does not exist (or no longer does) is a permission error.
        Err(LogicalError::PermissionDenied) if which == "token" => {
            return Err(LogicalError::Forbidden("bad token".into()));
        }
        other => other?,
    };
    let mut data = e.lookup_data(which != "accessor");
    if let Some(r) = u.entity(&e.entity_id)
        && !r.policies.is_empty()
    {
        data.insert("identity_policies".into(), serde_json::json!(r.policies));
    }
    Ok(Some(Response::data(data)))
}

async fn renew(
    s: Arc<TokenAuth>,
    req: Request,
    f: Fields,
    which: &'static str,
) -> Result<Option<Response>> {
    let u = unsealed(&s)?;
    let e = lookup_target(&u, &req, &f, which)
        .await
        .map_err(|e| match e {
            LogicalError::PermissionDenied => LogicalError::invalid("token not found"),
            o => o,
        })?;
    if e.is_batch() {
        return Err(LogicalError::invalid("batch tokens cannot be renewed"));
    }
    let increment = Some(f.input::<IncrementInput>().increment).filter(|d| !d.is_zero());
    // A login token goes back to the auth method that issued it, which may refuse the
    // renewal or shorten it; its own max TTL (from the method and its mount) caps it.
    let method_cap = renew_with_method(&u, &e, increment, req.connection.clone()).await?;
    let max_lease = if e.max_ttl > 0 {
        Duration::from_secs(e.max_ttl)
    } else {
        req.mount.max_lease_ttl
    };
    // Under the token's lock, on the entry as stored now: a renewal racing a revocation
    // finds nothing to renew and can never write the revoked token back.
    let updated = u
        .tokens
        .modify(&e.hash, |e| {
            if !e.renewable || e.expire_time.is_none() {
                return Err(CoreError::InvalidRequest("lease is not renewable".into()));
            }
            let at = now();
            let secs = crate::tokens::secs;
            let mut ttl = if e.period > 0 {
                secs(Duration::from_secs(e.period))
            } else {
                secs(
                    increment
                        .unwrap_or(Duration::from_secs(e.ttl))
                        .min(max_lease),
                )
            };
            if e.explicit_max_ttl > 0 {
                let hard = e
                    .creation_time
                    .saturating_add(secs(Duration::from_secs(e.explicit_max_ttl)))
                    .saturating_sub(at);
                ttl = ttl.min(hard.max(0));
            }
            if e.period == 0 {
                // Without a period a token never lives past the system max TTL from its
                // creation.
                let cap = e
                    .creation_time
                    .saturating_add(secs(max_lease))
                    .saturating_sub(at);
                ttl = ttl.min(cap.max(0));
            }
            if let Some(cap) = method_cap {
                ttl = ttl.min(secs(cap));
            }
            e.expire_time = Some(at.saturating_add(ttl));
            e.last_renewal_time = Some(at);
            Ok(())
        })
        .await
        .map_err(le)?
        .map(|(e, ())| e)
        .ok_or_else(|| LogicalError::invalid("token not found"))?;
    let mut a = auth_of(&updated);
    if which == "accessor" {
        a.client_token.clear();
    }
    let mut r = Response::default();
    r.auth = Some(a);
    Ok(Some(r))
}

/// Calls back the auth method that issued a login token: `Err` when it refuses the renewal,
/// `Some(ttl)` when it shortens it. Tokens the token store created renew without a callback.
/// The method sees the renewing connection (its address, its TLS client certificate), so a
/// certificate login can check that the certificate renewing is the one that logged in.
async fn renew_with_method(
    u: &Unsealed,
    e: &TokenEntry,
    increment: Option<Duration>,
    connection: Arc<tresor_sdk::Connection>,
) -> Result<Option<Duration>> {
    if !e.path.starts_with("auth/") || e.path.starts_with("auth/token/") {
        return Ok(None);
    }
    let router = u.router();
    let Some((route, rel)) = router.route(&e.path) else {
        return Err(LogicalError::invalid(
            "the auth method that issued this token is no longer mounted",
        ));
    };
    if !e.mount_accessor.is_empty() && route.entry.accessor != e.mount_accessor {
        return Err(LogicalError::invalid(
            "the auth method that issued this token is no longer mounted",
        ));
    }
    let req = Request {
        operation: Operation::Update,
        path: rel.to_owned(),
        data: serde_json::Map::new(),
        storage: Arc::new(route.view.clone()),
        mount: route.mount.clone(),
        caller: tresor_sdk::Caller {
            token_accessor: Some(e.accessor.clone()),
            policies: e.policies.clone(),
            display_name: e.display_name.clone(),
            ..Default::default()
        },
        secret: Some(tresor_sdk::SecretRef {
            lease_id: e.path.clone(),
            secret_type: "auth".into(),
            internal_data: e.internal_data.clone(),
            increment,
        }),
        connection,
        headers: Vec::new(),
        raw_body: None,
        deadline: None,
    };
    let resp = route.backend.renew_auth(req).await?;
    Ok(resp.and_then(|r| r.auth).and_then(|a| {
        [a.ttl, a.max_ttl]
            .into_iter()
            .filter(|d| !d.is_zero())
            .min()
    }))
}

async fn revoke(
    s: Arc<TokenAuth>,
    req: Request,
    f: Fields,
    which: &'static str,
) -> Result<Option<Response>> {
    let u = unsealed(&s)?;
    let e = match which {
        "orphan" => {
            let t = f.input::<TokenInput>().token;
            u.tokens.lookup(&t).await.map_err(le)?
        }
        _ => match lookup_target(&u, &req, &f, which).await {
            Ok(e) => Some(e),
            Err(LogicalError::PermissionDenied) => None,
            Err(e) => return Err(e),
        },
    };
    // Revoking a token that does not exist succeeds, as in Vault.
    let Some(e) = e else { return Ok(None) };
    if e.is_batch() {
        return Err(LogicalError::invalid("batch tokens cannot be revoked"));
    }
    u.revoke_token(&e.hash, which == "orphan")
        .await
        .map_err(le)?;
    Ok(None)
}

async fn role_write(_s: Arc<TokenAuth>, req: Request, f: Fields) -> Result<Option<Response>> {
    let name = f.input::<RoleName>().role_name.to_lowercase();
    let i = f.input::<RoleInput>();
    let key = format!("roles/{name}");
    let mut role: Role = tresor_sdk::get_json(&*req.storage, &key)
        .await?
        .unwrap_or_else(|| Role {
            name: name.clone(),
            renewable: true,
            ..Default::default()
        });
    if let Some(v) = i.allowed_policies {
        role.allowed_policies = sanitize_policies(v, false);
    }
    if let Some(v) = i.disallowed_policies {
        role.disallowed_policies = sanitize_policies(v, false);
    }
    if let Some(v) = i.allowed_policies_glob {
        role.allowed_policies_glob = v;
    }
    if let Some(v) = i.disallowed_policies_glob {
        role.disallowed_policies_glob = v;
    }
    if let Some(v) = i.orphan {
        role.orphan = v;
    }
    if let Some(v) = i.renewable {
        role.renewable = v;
    }
    if let Some(v) = i.path_suffix {
        role.path_suffix = v;
    }
    // The current name wins over the deprecated one when both are sent.
    for d in [i.explicit_max_ttl, i.token_explicit_max_ttl]
        .into_iter()
        .flatten()
    {
        role.explicit_max_ttl = d.as_secs();
    }
    for d in [i.period, i.token_period].into_iter().flatten() {
        role.period = d.as_secs();
    }
    if let Some(t) = i.token_type {
        if !matches!(
            t.as_str(),
            "service" | "batch" | "default-service" | "default-batch" | "default"
        ) {
            return Err(LogicalError::invalid(format!(
                "invalid 'token_type' value {t:?}"
            )));
        }
        role.token_type = if t == "default" {
            "default-service".into()
        } else {
            t
        };
    }
    if role.token_type == "batch" && !role.orphan {
        return Err(LogicalError::invalid(
            "'token_type' cannot be 'batch' when role is set to generate non-orphan tokens",
        ));
    }
    if let Some(v) = i.allowed_entity_aliases {
        role.allowed_entity_aliases = v;
    }
    if let Some(v) = i.token_no_default_policy {
        role.token_no_default_policy = v;
    }
    if let Some(n) = i.token_num_uses {
        if n < 0 {
            return Err(LogicalError::invalid("token_num_uses cannot be negative"));
        }
        role.token_num_uses = n;
    }
    for (k, sent) in [
        ("token_bound_cidrs", i.token_bound_cidrs),
        ("bound_cidrs", i.bound_cidrs),
    ] {
        if let Some(list) = sent {
            tresor_sdk::cidr::parse_list(&list)
                .map_err(|e| LogicalError::invalid(format!("invalid {k}: {e}")))?;
            role.token_bound_cidrs = list;
        }
    }
    tresor_sdk::put_json(&*req.storage, &key, &role).await?;
    Ok(None)
}

fn table() -> Table<TokenAuth> {
    Table {
        help: "Tokens themselves: this auth method is mounted at auth/token/ on every server and cannot be disabled. It creates child, orphan and role-bound tokens, looks them up, renews and revokes them (by token or accessor), and keeps token roles.",
        special: SpecialPaths { unauthenticated: Vec::new(), root: vec!["revoke-orphan".into(), "revoke-orphan/*".into(), "accessors*".into()] },
        paths: vec![
            Path::new("create-orphan")
                .input::<CreateInput>()
                .op(Operation::Update, |s, r, f| Box::pin(create(s, r, f, "orphan")))
                .help("Create a root token, or an orphan token.", "The token has no parent: revoking its creator does not revoke it."),
            Path::new("create/{role_name}")
                .case_insensitive("role_name")
                .input::<CreateInput>()
                .op(Operation::Update, |s, r, f| Box::pin(create(s, r, f, "role")))
                .help("Create a token against a role.", "The role's settings constrain the token's policies, type, TTLs and orphan status."),
            Path::new("create")
                .input::<CreateInput>()
                .op(Operation::Update, |s, r, f| Box::pin(create(s, r, f, "child")))
                .help("Create a token that is a child of the calling token.", "By default the new token is a child of the calling token and has a subset of its policies."),
            Path::new("lookup")
                .input::<TokenInput>()
                .op(Operation::Read, |s, r, f| Box::pin(lookup(s, r, f, "token")))
                .op(Operation::Update, |s, r, f| Box::pin(lookup(s, r, f, "token")))
                .help("Look up the properties of a token.", "Returns the token's policies, TTL, metadata and more."),
            Path::new("lookup/{token}")
                .input::<TokenInput>()
                .op(Operation::Read, |s, r, f| Box::pin(async move { lookup(s, r, f, "token").await.map(|o| o.map(|x| x.with_warning("Using a token in the path is unsafe as the token can be logged in many places. Please use POST or PUT with the token passed in via the \"token\" parameter."))) }))
                .help("Look up the properties of a token (deprecated URL form).", "Prefer POST auth/token/lookup with the token in the body."),
            Path::new("lookup-self")
                .input::<TokenInput>()
                .op(Operation::Read, |s, r, f| Box::pin(lookup(s, r, f, "self")))
                .op(Operation::Update, |s, r, f| Box::pin(lookup(s, r, f, "self")))
                .help("Look up the properties of the calling token.", "Returns the calling token's policies, TTL, metadata and more."),
            Path::new("lookup-accessor")
                .input::<AccessorInput>()
                .op(Operation::Update, |s, r, f| Box::pin(lookup(s, r, f, "accessor")))
                .help("Look up the properties of a token by its accessor.", "The token itself is not returned."),
            Path::new("renew")
                .input::<TokenInput>()
                .input::<IncrementInput>()
                .op(Operation::Update, |s, r, f| Box::pin(renew(s, r, f, "token")))
                .help("Renew a token.", "Extends the token's TTL by the increment, within its maximum TTL."),
            Path::new("renew-self")
                .input::<TokenInput>()
                .input::<IncrementInput>()
                .op(Operation::Update, |s, r, f| Box::pin(renew(s, r, f, "self")))
                .help("Renew the calling token.", "Extends the calling token's TTL by the increment, within its maximum TTL."),
            Path::new("renew-accessor")
                .input::<AccessorInput>()
                .input::<IncrementInput>()
                .op(Operation::Update, |s, r, f| Box::pin(renew(s, r, f, "accessor")))
                .help("Renew a token by its accessor.", "Extends the token's TTL; the token itself is not returned."),
            Path::new("revoke")
                .input::<TokenInput>()
                .op(Operation::Update, |s, r, f| Box::pin(revoke(s, r, f, "token")))
                .help("Revoke a token and all its children.", "Every child token is revoked with it."),
            Path::new("revoke-self")
                .op(Operation::Update, |s, r, f| Box::pin(revoke(s, r, f, "self")))
                .help("Revoke the calling token and all its children.", "Every child token is revoked with it."),
            Path::new("revoke-accessor")
                .input::<AccessorInput>()
                .op(Operation::Update, |s, r, f| Box::pin(revoke(s, r, f, "accessor")))
                .help("Revoke a token and its children by the token's accessor.", "Every child token is revoked with it."),
            Path::new("revoke-orphan")
                .input::<TokenInput>()
                .op(Operation::Update, |s, r, f| Box::pin(revoke(s, r, f, "orphan")))
                .help("Revoke a token but not its children, which become orphans.", "Requires root or sudo."),
            Path::new("accessors/")
                .op(Operation::List, |s, _, _| {
                    Box::pin(async move {
                        let u = unsealed(&s)?;
                        let keys = u.tokens.accessors().await.map_err(le)?;
                        Ok(Some(Response::list(keys)))
                    })
                })
                .help("List token accessors.", "Requires sudo. Returns every token's accessor."),
            Path::new("roles/")
                .op(Operation::List, |_, req, _| {
                    Box::pin(async move {
                        let keys = req.storage.list("roles/").await?;
                        if keys.is_empty() {
                            return Ok(None);
                        }
                        Ok(Some(Response::list(keys)))
                    })
                })
                .help("List token roles.", "Returns the names of all token roles."),
            Path::new("roles/{role_name}")
                .case_insensitive("role_name")
                .input::<RoleName>()
                .input::<RoleInput>()
                .existence(|_, req, f| Box::pin(async move { Ok(req.storage.get(&role_key(&f)).await?.is_some()) }))
                .op(Operation::Read, |_, req, f| {
                    Box::pin(async move {
                        let r: Option<Role> = tresor_sdk::get_json(&*req.storage, &role_key(&f)).await?;
                        Ok(r.map(|r| Response::json(r.to_json())))
                    })
                })
                .op(Operation::Create, |s, r, f| Box::pin(role_write(s, r, f)))
                .op(Operation::Update, |s, r, f| Box::pin(role_write(s, r, f)))
                .op(Operation::Delete, |_, req, f| {
                    Box::pin(async move {
                        req.storage.delete(&role_key(&f)).await?;
                        Ok(None)
                    })
                })
                .help("Create, read, update or delete a token role.", "Roles constrain the tokens created through auth/token/create/<role>."),
            Path::new("tidy")
                .op(Operation::Update, |s, _, _| {
                    Box::pin(async move {
                        let u = unsealed(&s)?;
                        let n = u.tokens.tidy().await.map_err(le)?;
                        tracing::info!(removed = n, "token store tidy finished");
                        Ok(Some(Response::tidy_started()))
                    })
                })
                .help("Clean up dangling token store entries.", "Removes accessor and parent index entries whose token no longer exists."),
        ],
    }
}
