//! Managing users: `users/` (LIST), `users/:username` (create, read, update, delete),
//! `users/:username/password` and `users/:username/policies` (update).
//!
//! Usernames are case-insensitive, as in Vault: the table declares them so, and the core folds
//! them to lower case before the ACL and the handler see the path. Every write validates all
//! of its input before anything is stored, and a new password is hashed before the user's
//! record is written, so a refused write stores nothing.

use std::sync::Arc;

use serde_json::Map;
use tresor_sdk::framework::{Fields, Path};
use tresor_sdk::token::TokenParams;
use tresor_sdk::{LogicalError, Operation, Request, Response, Result};

use crate::inputs::{PasswordInput, PoliciesInput, UsernameInput};
use crate::password::{self, MAX_PASSWORD_BYTES};
use crate::state::State;
use crate::store::{self, User};

const LIST_SYNOPSIS: &str = "List the users of this mount.";
const LIST_DESCRIPTION: &str = "
A LIST returns the usernames of every user of this mount, in lower case and sorted.
";
const USER_SYNOPSIS: &str = "Create, read, update or delete a user.";
const USER_DESCRIPTION: &str = "
A user has a password, kept only as a bcrypt hash, and the token settings of the tokens its
logins get (token_ttl, token_max_ttl, token_policies, token_bound_cidrs, ...; the legacy
names ttl, max_ttl, policies, bound_cidrs and period are accepted too). Creating a user
needs a password (or password_hash); an update changes only the fields it sends. A read
shows the token settings, never the password or its hash. Tokens issued before a user is
deleted, or before its password or policies change, are no longer renewed.
";
const PASSWORD_SYNOPSIS: &str = "Change a user's password.";
const PASSWORD_PATH_DESCRIPTION: &str = "
Sets a new password (or a pre-computed bcrypt hash in password_hash) for an existing user.
Tokens from logins with the old password are not renewed afterwards.
";
const POLICIES_SYNOPSIS: &str = "Change a user's policies.";
const POLICIES_DESCRIPTION: &str = "
Replaces the policies of the tokens the user's logins get (token_policies, or the legacy
name policies). Tokens issued with the old policies are not renewed afterwards.
";

pub(crate) fn paths() -> Vec<Path<State>> {
    vec![
        Path::new("users")
            .op(Operation::List, |s, req, f| {
                Box::pin(async move { list(&s, req, f).await })
            })
            .help(LIST_SYNOPSIS, LIST_DESCRIPTION),
        Path::new("users/{username}/password")
            .case_insensitive("username")
            .input::<UsernameInput>()
            .input::<PasswordInput>()
            .op(Operation::Update, |s, req, f| {
                Box::pin(async move { set_password(&s, req, f).await })
            })
            .help(PASSWORD_SYNOPSIS, PASSWORD_PATH_DESCRIPTION),
        Path::new("users/{username}/policies")
            .case_insensitive("username")
            .input::<UsernameInput>()
            .input::<PoliciesInput>()
            .op(Operation::Update, |s, req, f| {
                Box::pin(async move { set_policies(&s, req, f).await })
            })
            .help(POLICIES_SYNOPSIS, POLICIES_DESCRIPTION),
        TokenParams::add_fields(
            Path::new("users/{username}")
                .case_insensitive("username")
                .input::<UsernameInput>()
                .input::<PasswordInput>(),
        )
        .op(Operation::Read, |s, req, f| {
            Box::pin(async move { read(&s, req, f).await })
        })
        .op(Operation::Update, |s, req, f| {
            Box::pin(async move { write(&s, req, f).await })
        })
        .op(Operation::Delete, |s, req, f| {
            Box::pin(async move { delete(&s, req, f).await })
        })
        .existence(|_, req, f| {
            Box::pin(async move {
                Ok(
                    store::load(&*req.storage, &f.input::<UsernameInput>().username)
                        .await?
                        .is_some(),
                )
            })
        })
        .help(USER_SYNOPSIS, USER_DESCRIPTION),
    ]
}

/// Vault's rule for usernames: `\w` characters plus `-` and `.`, not beginning with `-` and
/// neither beginning nor ending with `.`.
pub(crate) fn check_username(name: &str) -> Result<()> {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.');
    let bad = name.is_empty()
        || !name.chars().all(ok_char)
        || name.starts_with('-')
        || name.starts_with('.')
        || name.ends_with('.');
    if bad {
        return Err(LogicalError::invalid(format!(
            "invalid username {name:?}: use letters, digits, '_', '-' and '.', not beginning with '-' nor beginning or ending with '.'"
        )));
    }
    Ok(())
}

/// The new password hash a write asks for, if any: `password` hashed at the mount's cost, or
/// `password_hash` checked. Sending both, or an empty password, is an error.
async fn new_hash(s: &State, f: &Fields) -> Result<Option<String>> {
    let PasswordInput {
        password,
        password_hash,
    } = f.input();
    match (password, password_hash) {
        (Some(_), Some(_)) => Err(LogicalError::invalid(
            "only one of password and password_hash can be given",
        )),
        (Some(password), None) if password.is_empty() => {
            Err(LogicalError::invalid("missing password"))
        }
        (Some(password), None) => {
            if password.len() > MAX_PASSWORD_BYTES {
                return Err(LogicalError::invalid(format!(
                    "password is longer than {MAX_PASSWORD_BYTES} bytes, which bcrypt cannot use"
                )));
            }
            s.passwords.hash(password).await.map(Some)
        }
        (None, Some(given_hash)) => {
            password::check_hash(&given_hash)?;
            Ok(Some(given_hash))
        }
        (None, None) => Ok(None),
    }
}

async fn list(_s: &Arc<State>, req: Request, _f: Fields) -> Result<Option<Response>> {
    Ok(Some(Response::list(store::list(&*req.storage).await?)))
}

async fn read(_s: &Arc<State>, req: Request, f: Fields) -> Result<Option<Response>> {
    let name = f.input::<UsernameInput>().username;
    let Some(user) = store::load(&*req.storage, &name).await? else {
        return Ok(None);
    };
    let mut m = Map::new();
    user.token.show(&mut m);
    // Vault also shows the legacy names of settings that are set (hvac's read_user reads
    // `policies`).
    user.token.show_legacy(&mut m);
    Ok(Some(Response::data(m)))
}

async fn write(s: &Arc<State>, req: Request, f: Fields) -> Result<Option<Response>> {
    let name = f.input::<UsernameInput>().username;
    check_username(&name)?;
    let _guard = s.lock(&name).await;
    let existing = store::load(&*req.storage, &name).await?;
    // Validate the token settings before paying for a hash.
    let mut token = existing
        .as_ref()
        .map(|u| u.token.clone())
        .unwrap_or_default();
    token.update(&f)?;
    let hash = new_hash(s, &f).await?;
    let mut user = match (existing, hash) {
        (Some(mut u), h) => {
            if let Some(h) = h {
                u.password_hash = h;
            }
            u
        }
        (None, Some(h)) => User::new(h),
        (None, None) => return Err(LogicalError::invalid("missing password")),
    };
    user.token = token;
    store::save(&*req.storage, &name, &user).await?;
    Ok(None)
}

async fn delete(s: &Arc<State>, req: Request, f: Fields) -> Result<Option<Response>> {
    let name = f.input::<UsernameInput>().username;
    let _guard = s.lock(&name).await;
    store::delete(&*req.storage, &name).await?;
    Ok(None)
}

async fn existing_user(req: &Request, name: &str) -> Result<User> {
    store::load(&*req.storage, name)
        .await?
        .ok_or_else(|| LogicalError::invalid(format!("user {name:?} does not exist")))
}

async fn set_password(s: &Arc<State>, req: Request, f: Fields) -> Result<Option<Response>> {
    let name = f.input::<UsernameInput>().username;
    let _guard = s.lock(&name).await;
    let mut user = existing_user(&req, &name).await?;
    user.password_hash = new_hash(s, &f)
        .await?
        .ok_or_else(|| LogicalError::invalid("missing password"))?;
    store::save(&*req.storage, &name, &user).await?;
    Ok(None)
}

async fn set_policies(s: &Arc<State>, req: Request, f: Fields) -> Result<Option<Response>> {
    let name = f.input::<UsernameInput>().username;
    let _guard = s.lock(&name).await;
    let mut user = existing_user(&req, &name).await?;
    let PoliciesInput {
        token_policies,
        policies,
    } = f.input();
    if token_policies.is_none() && policies.is_none() {
        return Err(LogicalError::invalid("missing token_policies"));
    }
    user.token.update(&f)?;
    store::save(&*req.storage, &name, &user).await?;
    Ok(None)
}
