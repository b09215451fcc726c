//! Logging in (`login/:username`, unauthenticated) and renewing the tokens logins got.
//!
//! A wrong password and an unknown user are one answer, `invalid username or password`, and
//! one cost: an unknown user's password is verified against a dummy hash at the mount's
//! cost, so the bcrypt verification that dominates a login runs either way. (Storage reads
//! still differ slightly, far below bcrypt's tens of milliseconds.) The user's bound CIDRs are
//! checked only after the password, so they reveal nothing about users to strangers.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{Map, Value, json};
use subtle::ConstantTimeEq;
use tresor_sdk::framework::{Fields, Path};
use tresor_sdk::{Alias, Auth, LogicalError, Operation, Request, Response, Result, cidr};

use crate::inputs::LoginInput;
use crate::password;
use crate::state::State;
use crate::store;

/// The one answer to a failed login, whichever part was wrong (Vault's text).
pub(crate) const INVALID_CREDENTIALS: &str = "invalid username or password";

const LOGIN_SYNOPSIS: &str = "Log in with a username and password.";
const LOGIN_DESCRIPTION: &str = "
Checks the password against the user's bcrypt hash and, if it matches, issues a token with the
user's token settings. The username is case-insensitive. A wrong password and an unknown user
get the same error and take the same time. If the user has token_bound_cidrs, the login must
come from one of those addresses.
";

pub(crate) fn paths() -> Vec<Path<State>> {
    vec![
        Path::new("login/{username}")
            .case_insensitive("username")
            .input::<LoginInput>()
            .op(Operation::Update, |s, req, f| {
                Box::pin(async move { login(&s, req, f).await })
            })
            .help(LOGIN_SYNOPSIS, LOGIN_DESCRIPTION),
    ]
}

async fn login(s: &Arc<State>, req: Request, f: Fields) -> Result<Option<Response>> {
    // The core hands over the folded spelling; lower-casing again keeps a direct caller
    // (tests, another router) to the same rule.
    let LoginInput { username, password } = f.input();
    let username = username.trim().to_lowercase();
    if password.is_empty() {
        return Err(LogicalError::invalid("missing password"));
    }
    let user = store::load(&*req.storage, &username).await?;
    let matched = s
        .passwords
        .verify(password, user.as_ref().map(|u| u.password_hash.clone()))
        .await?;
    let user = match user {
        Some(u) if matched => u,
        _ => return Err(LogicalError::invalid(INVALID_CREDENTIALS)),
    };
    let blocks = cidr::parse_list(&user.token.token_bound_cidrs).map_err(LogicalError::Internal)?;
    if !cidr::allows(&blocks, req.connection.remote_addr.as_deref()) {
        return Err(LogicalError::PermissionDenied);
    }
    let mut internal = Map::new();
    internal.insert("username".into(), json!(username));
    internal.insert(
        "password_stamp".into(),
        json!(password::stamp(&user.password_hash)),
    );
    internal.insert("policies".into(), json!(user.token.token_policies));
    let mut auth = Auth {
        display_name: username.clone(),
        metadata: BTreeMap::from([("username".to_owned(), username.clone())]),
        alias: Some(Alias {
            name: username,
            ..Default::default()
        }),
        internal_data: internal,
        ..Default::default()
    };
    user.token.populate(&mut auth);
    Ok(Some(Response {
        auth: Some(auth),
        ..Default::default()
    }))
}

/// Renewal of a login token: refused once the user is gone, its password was changed or its
/// policies differ from the login's (Vault refuses the first and the last; a changed password
/// ending old sessions is Tresor's addition). Otherwise the user's current `token_ttl` and
/// `token_max_ttl` cap the renewal.
pub(crate) async fn renew(req: Request) -> Result<Option<Response>> {
    let data = req
        .secret
        .as_ref()
        .map(|s| &s.internal_data)
        .ok_or_else(|| LogicalError::internal("renewal without the token's data"))?;
    let text = |k: &str| data.get(k).and_then(Value::as_str).unwrap_or_default();
    let username = text("username");
    let Some(user) = store::load(&*req.storage, username).await? else {
        return Err(LogicalError::invalid(format!(
            "user {username:?} no longer exists, not renewing"
        )));
    };
    let stamp = password::stamp(&user.password_hash);
    let same_password: bool = stamp
        .as_bytes()
        .ct_eq(text("password_stamp").as_bytes())
        .into();
    if !same_password {
        return Err(LogicalError::invalid(
            "the user's password has changed, not renewing",
        ));
    }
    let login_policies: Vec<String> = data
        .get("policies")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|p| p.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    if !equivalent(&login_policies, &user.token.token_policies) {
        return Err(LogicalError::invalid("policies have changed, not renewing"));
    }
    Ok(Some(Response {
        auth: Some(Auth {
            ttl: std::time::Duration::from_secs(user.token.token_ttl),
            max_ttl: std::time::Duration::from_secs(user.token.token_max_ttl),
            period: std::time::Duration::from_secs(user.token.token_period),
            ..Default::default()
        }),
        ..Default::default()
    }))
}

/// Two policy lists grant the same, ignoring order, duplicates and `default` (which the
/// token store adds on its own), as Vault compares them.
fn equivalent(a: &[String], b: &[String]) -> bool {
    let set = |l: &[String]| {
        l.iter()
            .map(|p| p.trim().to_lowercase())
            .filter(|p| !p.is_empty() && p != "default")
            .collect::<std::collections::BTreeSet<_>>()
    };
    set(a) == set(b)
}
