//! `role/` (LIST) and `role/:name` (create, read, update, delete).
//!
//! A write validates everything before it stores anything. An update changes only the
//! fields it sends. A `jwt` role needs at least one binding (audience, subject, bound claims
//! or CIDRs) and a `user_claim`; an `oidc` role (the default type, as in Vault) needs
//! `allowed_redirect_uris` too.

use std::sync::Arc;

use serde_json::{Map, Value, json};
use tresor_sdk::framework::Fields;
use tresor_sdk::{LogicalError, Request, Response, Result};

use crate::jwt::inputs::RoleInput;
use crate::jwt::state::Engine;
use crate::jwt::store::{self, Role, RoleType};
use crate::shared::check_role_name;

fn bad(msg: impl Into<String>) -> LogicalError {
    LogicalError::invalid(msg)
}

/// A leeway in seconds: a number, `-1`, or a duration string.
fn parse_leeway(field: &str, v: Option<&Value>) -> Result<i64> {
    let err = || {
        bad(format!(
            "invalid {field}: expected seconds (or -1 for none)"
        ))
    };
    match v {
        None | Some(Value::Null) => Ok(0),
        Some(Value::Number(n)) => n.as_i64().filter(|x| *x >= -1).ok_or_else(err),
        Some(Value::String(s)) => {
            let s = s.trim();
            if let Ok(n) = s.parse::<i64>() {
                return if n >= -1 { Ok(n) } else { Err(err()) };
            }
            tresor_sdk::duration::parse(s)
                .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
                .map_err(|_| err())
        }
        Some(_) => Err(err()),
    }
}

impl Engine {
    pub(crate) async fn role_exists(self: Arc<Self>, req: Request, f: Fields) -> Result<bool> {
        Ok(
            store::load_role(&*req.storage, &f.input::<RoleInput>().name)
                .await?
                .is_some(),
        )
    }

    pub(crate) async fn role_list(
        self: Arc<Self>,
        req: Request,
        _f: Fields,
    ) -> Result<Option<Response>> {
        Ok(Some(Response::list(
            store::list_roles(&*req.storage).await?,
        )))
    }

    pub(crate) async fn role_delete(
        self: Arc<Self>,
        req: Request,
        f: Fields,
    ) -> Result<Option<Response>> {
        let name = f.input::<RoleInput>().name;
        store::delete_role(&*req.storage, &name).await?;
        self.forget_role(&name);
        Ok(None)
    }

    pub(crate) async fn role_read(
        self: Arc<Self>,
        req: Request,
        f: Fields,
    ) -> Result<Option<Response>> {
        let Some(r) = store::load_role(&*req.storage, &f.input::<RoleInput>().name).await? else {
            return Ok(None);
        };
        let mut m = Map::new();
        m.insert("role_type".into(), json!(r.role_type.as_str()));
        m.insert("bound_audiences".into(), json!(r.bound_audiences));
        m.insert("bound_subject".into(), json!(r.bound_subject));
        m.insert(
            "bound_claims".into(),
            if r.bound_claims.is_empty() {
                Value::Null
            } else {
                Value::Object(r.bound_claims.clone())
            },
        );
        m.insert(
            "bound_claims_type".into(),
            json!(if r.bound_claims_glob {
                "glob"
            } else {
                "string"
            }),
        );
        m.insert(
            "claim_mappings".into(),
            if r.claim_mappings.is_empty() {
                Value::Null
            } else {
                json!(r.claim_mappings)
            },
        );
        m.insert("user_claim".into(), json!(r.user_claim));
        m.insert(
            "user_claim_json_pointer".into(),
            json!(r.user_claim_json_pointer),
        );
        m.insert("groups_claim".into(), json!(r.groups_claim));
        m.insert("oidc_scopes".into(), json!(r.oidc_scopes));
        m.insert(
            "allowed_redirect_uris".into(),
            json!(r.allowed_redirect_uris),
        );
        m.insert("verbose_oidc_logging".into(), json!(r.verbose_oidc_logging));
        m.insert("clock_skew_leeway".into(), json!(r.clock_skew_leeway));
        m.insert("expiration_leeway".into(), json!(r.expiration_leeway));
        m.insert("not_before_leeway".into(), json!(r.not_before_leeway));
        m.insert("max_age".into(), json!(r.max_age));
        r.token.show(&mut m);
        // Vault still shows the legacy names of the token fields.
        m.insert("policies".into(), json!(r.token.token_policies));
        m.insert("ttl".into(), json!(r.token.token_ttl));
        m.insert("max_ttl".into(), json!(r.token.token_max_ttl));
        m.insert("period".into(), json!(r.token.token_period));
        m.insert("bound_cidrs".into(), json!(r.token.token_bound_cidrs));
        Ok(Some(Response::data(m)))
    }

    pub(crate) async fn role_write(
        self: Arc<Self>,
        req: Request,
        f: Fields,
    ) -> Result<Option<Response>> {
        let i: RoleInput = f.input();
        let name = i.name;
        check_role_name(&name)?;
        let existing = store::load_role(&*req.storage, &name).await?;
        let mut r = existing.unwrap_or_default();
        r.version = <Role as tresor_sdk::record::Versioned>::FORMAT;
        if let Some(t) = i.role_type {
            r.role_type = match t.trim() {
                "jwt" => RoleType::Jwt,
                "oidc" | "" => RoleType::Oidc,
                other => {
                    return Err(bad(format!(
                        "invalid role_type {other:?}: use \"jwt\" or \"oidc\""
                    )));
                }
            };
        }
        if let Some(v) = i.bound_audiences {
            r.bound_audiences = v;
        }
        if let Some(v) = i.bound_subject {
            r.bound_subject = v.trim().to_owned();
        }
        if let Some(t) = i.bound_claims_type {
            r.bound_claims_glob = match t.trim() {
                "glob" => true,
                "string" | "" => false,
                other => {
                    return Err(bad(format!(
                        "invalid bound_claims_type {other:?}: use \"string\" or \"glob\""
                    )));
                }
            };
        }
        if let Some(v) = i.bound_claims {
            r.bound_claims = v;
        }
        for (k, v) in &r.bound_claims {
            let ok = match v {
                Value::String(_) | Value::Number(_) | Value::Bool(_) => true,
                Value::Array(a) => a
                    .iter()
                    .all(|x| matches!(x, Value::String(_) | Value::Number(_) | Value::Bool(_))),
                _ => false,
            };
            if !ok {
                return Err(bad(format!(
                    "invalid bound_claims: the value of {k:?} must be a string or a list of strings"
                )));
            }
            if r.bound_claims_glob
                && !matches!(v, Value::String(_))
                && !v.as_array().is_some_and(|a| a.iter().all(Value::is_string))
            {
                return Err(bad(format!(
                    "invalid bound_claims: with bound_claims_type \"glob\", the value of {k:?} must be a string or a list of strings"
                )));
            }
        }
        if let Some(v) = i.claim_mappings {
            r.claim_mappings = v;
            let mut targets: Vec<&String> = r.claim_mappings.values().collect();
            targets.sort();
            if targets.windows(2).any(|w| w[0] == w[1]) {
                return Err(bad(
                    "invalid claim_mappings: two claims map to the same metadata key",
                ));
            }
        }
        if let Some(v) = i.user_claim {
            r.user_claim = v.trim().to_owned();
        }
        if let Some(v) = i.user_claim_json_pointer {
            r.user_claim_json_pointer = v;
        }
        if let Some(v) = i.groups_claim {
            r.groups_claim = v.trim().to_owned();
        }
        if let Some(v) = i.oidc_scopes {
            r.oidc_scopes = v;
        }
        if let Some(v) = i.allowed_redirect_uris {
            r.allowed_redirect_uris = v;
            for u in &r.allowed_redirect_uris {
                reqwest::Url::parse(u)
                    .map_err(|e| bad(format!("invalid allowed_redirect_uris entry {u:?}: {e}")))?;
            }
        }
        if let Some(v) = i.verbose_oidc_logging {
            r.verbose_oidc_logging = v;
        }
        for (field, given, slot) in [
            (
                "clock_skew_leeway",
                i.clock_skew_leeway,
                &mut r.clock_skew_leeway,
            ),
            (
                "expiration_leeway",
                i.expiration_leeway,
                &mut r.expiration_leeway,
            ),
            (
                "not_before_leeway",
                i.not_before_leeway,
                &mut r.not_before_leeway,
            ),
        ] {
            if let Some(v) = given {
                *slot = parse_leeway(field, Some(&v))?;
            }
        }
        if let Some(d) = i.max_age {
            r.max_age = d.as_secs();
        }
        r.token.update(&f)?;
        if r.user_claim.is_empty() {
            return Err(bad("a user_claim must be defined on the role"));
        }
        match r.role_type {
            RoleType::Jwt => {
                if r.bound_audiences.is_empty()
                    && r.bound_subject.is_empty()
                    && r.bound_claims.is_empty()
                    && r.token.token_bound_cidrs.is_empty()
                {
                    return Err(bad(
                        "must have at least one bound constraint when creating/updating a role: bound_audiences, bound_subject, bound_claims or token_bound_cidrs",
                    ));
                }
            }
            RoleType::Oidc => {
                if r.allowed_redirect_uris.is_empty() {
                    return Err(bad(
                        "'allowed_redirect_uris' must be set if 'role_type' is 'oidc' or unspecified",
                    ));
                }
            }
        }
        store::save_role(&*req.storage, &name, &r).await?;
        self.forget_role(&name);
        Ok(None)
    }
}
