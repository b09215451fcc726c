//! `login` (unauthenticated: a role and a JWT), the checks every token passes (shared with
//! the OIDC callback), and the renewal of login tokens.
//!
//! Order of checks: the role exists and is a `jwt` role → the signature verifies with a
//! configured key and an allowed algorithm → `exp`/`nbf`/`iat` within the role's leeways →
//! issuer → audience → subject → bound claims → the user claim names the alias → groups.
//! Claims are only read after the signature verified.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value, json};
use tresor_sdk::framework::Fields;
use tresor_sdk::{Alias, Auth, LogicalError, Request, Response, Result, cidr};

use crate::claims::{self, Leeways};
use crate::jwt::inputs::LoginInput;
use crate::jwt::state::Engine;
use crate::jwt::store::{self, JwtConfig, Role, RoleType};
use crate::shared::same_policies;

fn bad(msg: impl Into<String>) -> LogicalError {
    LogicalError::invalid(msg)
}

/// Vault's leeway rule: 0 is the default, -1 none, anything else itself.
fn leeway(v: i64, default: i64) -> i64 {
    match v {
        0 => default,
        n if n < 0 => 0,
        n => n,
    }
}

/// The role a login names (or the mount's `default_role`), which must exist.
pub(crate) async fn role_for(
    engine: &Engine,
    req: &Request,
    cfg: &JwtConfig,
    asked: &str,
) -> Result<(String, Arc<Role>)> {
    let name = if asked.trim().is_empty() {
        cfg.default_role.clone()
    } else {
        asked.trim().to_owned()
    };
    if name.is_empty() {
        return Err(bad("missing role"));
    }
    match engine.role(req, &name).await? {
        Some(r) => Ok((name, r)),
        None => Err(bad(format!("role {name:?} could not be found"))),
    }
}

/// Which kind of token is being checked.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind<'a> {
    /// A JWT presented at `login`.
    Jwt,
    /// An OIDC ID token, for the mount's client ID.
    IdToken { client_id: &'a str },
}

/// Checks verified claims against the config and role (see the module docs).
pub(crate) fn validate(
    claims: &Map<String, Value>,
    cfg: &JwtConfig,
    role: &Role,
    discovered_issuer: Option<&str>,
    now: i64,
    kind: Kind<'_>,
) -> std::result::Result<(), String> {
    let leeways = Leeways {
        clock_skew: leeway(role.clock_skew_leeway, 60),
        expiration: leeway(role.expiration_leeway, 150),
        not_before: leeway(role.not_before_leeway, 150),
    };
    claims::check_times(claims, now, leeways)?;
    let iss = claims
        .get("iss")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if let Some(want) = discovered_issuer
        && iss != want
    {
        return Err(format!("issuer {iss:?} is not the provider's ({want:?})"));
    }
    if !cfg.bound_issuer.is_empty() && iss != cfg.bound_issuer {
        return Err(format!("issuer {iss:?} does not match bound_issuer"));
    }
    match kind {
        Kind::Jwt => {
            if role.bound_audiences.is_empty() {
                if claims.get("aud").is_some_and(|a| !a.is_null()) {
                    return Err(
                        "audience claim found in JWT but no audiences bound to the role".into(),
                    );
                }
            } else if !claims::audience_matches(claims, &role.bound_audiences) {
                return Err("aud claim does not match any bound audience".into());
            }
        }
        Kind::IdToken { client_id } => {
            let want = if role.bound_audiences.is_empty() {
                vec![client_id.to_owned()]
            } else {
                role.bound_audiences.clone()
            };
            if !claims::audience_matches(claims, &want) {
                return Err("aud claim does not match any bound audience".into());
            }
        }
    }
    if !role.bound_subject.is_empty()
        && claims.get("sub").and_then(Value::as_str) != Some(role.bound_subject.as_str())
    {
        return Err("sub claim does not match bound subject".into());
    }
    claims::check_bound(claims, &role.bound_claims, role.bound_claims_glob)?;
    Ok(())
}

/// Turns checked claims into the login's `Auth`: the user claim names the alias, the groups
/// claim gives the group aliases, claim mappings become alias and token metadata.
pub(crate) fn auth_from_claims(
    req: &Request,
    role_name: &str,
    role: &Role,
    claims: &Map<String, Value>,
) -> Result<Auth> {
    let user_claim = if role.user_claim_json_pointer && !role.user_claim.starts_with('/') {
        format!("/{}", role.user_claim)
    } else {
        role.user_claim.clone()
    };
    let lookup = |name: &str| {
        if role.user_claim_json_pointer || name.starts_with('/') {
            claims::get(claims, name)
        } else {
            claims.get(name).filter(|v| !v.is_null())
        }
    };
    let user = lookup(&user_claim)
        .ok_or_else(|| bad(format!("claim {:?} not found in token", role.user_claim)))?;
    let user = claims::as_string(user)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| {
            bad(format!(
                "claim {:?} could not be converted to string",
                role.user_claim
            ))
        })?;
    let mut metadata = BTreeMap::new();
    for (claim, key) in &role.claim_mappings {
        if let Some(v) = claims::get(claims, claim).and_then(claims::as_string) {
            metadata.insert(key.clone(), v);
        }
    }
    let mut group_aliases = Vec::new();
    if !role.groups_claim.is_empty() {
        let raw = claims::get(claims, &role.groups_claim)
            .ok_or_else(|| bad(format!("{:?} claim not found in token", role.groups_claim)))?;
        let groups = claims::as_list(raw).ok_or_else(|| {
            bad(format!(
                "{:?} claim is not a string or a list of strings",
                role.groups_claim
            ))
        })?;
        for g in groups {
            if !g.is_empty() && !group_aliases.iter().any(|a: &Alias| a.name == g) {
                group_aliases.push(Alias {
                    name: g,
                    ..Default::default()
                });
            }
        }
    }
    let blocks = cidr::parse_list(&role.token.token_bound_cidrs).map_err(LogicalError::Internal)?;
    if !cidr::allows(&blocks, req.connection.remote_addr.as_deref()) {
        return Err(LogicalError::PermissionDenied);
    }
    let mut token_meta = metadata.clone();
    token_meta.insert("role".into(), role_name.to_owned());
    let mut internal = Map::new();
    internal.insert("role".into(), json!(role_name));
    let mut auth = Auth {
        display_name: user.clone(),
        metadata: token_meta,
        alias: Some(Alias {
            name: user,
            metadata,
        }),
        group_aliases,
        internal_data: internal,
        ..Default::default()
    };
    role.token.populate(&mut auth);
    auth.internal_data
        .insert("policies".into(), json!(role.token.token_policies));
    Ok(auth)
}

impl Engine {
    pub(crate) async fn login(
        self: Arc<Self>,
        req: Request,
        f: Fields,
    ) -> Result<Option<Response>> {
        let LoginInput { role, jwt: token } = f.input();
        if token.trim().is_empty() {
            return Err(bad("missing token"));
        }
        let provider = self.provider(&req).await?;
        let cfg = &provider.config;
        let (role_name, role) = role_for(&self, &req, cfg, &role).await?;
        if role.role_type != RoleType::Jwt {
            return Err(bad("role with oidc role_type is not allowed"));
        }
        let (claims, issuer) = provider
            .verify(&token, false)
            .await
            .map_err(|e| bad(format!("error validating token: {e}")))?;
        validate(
            &claims,
            cfg,
            &role,
            issuer.as_deref(),
            self.now(),
            Kind::Jwt,
        )
        .map_err(|e| bad(format!("error validating claims: {e}")))?;
        let auth = auth_from_claims(&req, &role_name, &role, &claims)?;
        Ok(Some(Response {
            auth: Some(auth),
            ..Default::default()
        }))
    }

    /// Renewal: refused once the role is gone or its policies changed; otherwise the role's
    /// current TTLs apply.
    pub(crate) async fn renew(&self, req: &Request) -> Result<Option<Response>> {
        let data = req
            .secret
            .as_ref()
            .map(|s| s.internal_data.clone())
            .unwrap_or_default();
        let name = data.get("role").and_then(Value::as_str).unwrap_or_default();
        let Some(role) = store::load_role(&*req.storage, name).await? else {
            return Err(bad(format!("role {name:?} no longer exists, not renewing")));
        };
        let had: Vec<String> = data
            .get("policies")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|p| p.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        if !same_policies(&had, &role.token.token_policies) {
            return Err(bad("policies have changed, not renewing"));
        }
        Ok(Some(Response {
            auth: Some(Auth {
                ttl: Duration::from_secs(role.token.token_ttl),
                max_ttl: Duration::from_secs(role.token.token_max_ttl),
                period: Duration::from_secs(role.token.token_period),
                ..Default::default()
            }),
            ..Default::default()
        }))
    }
}
