//! `sys/policies/password/:name` and `.../generate` of the system backend: Vault's password
//! policies (HCL `length` and `rule "charset"` blocks with `min-chars`), stored behind the
//! barrier under `sys/password_policy/`, and passwords generated from them (unbiased; see
//! the `tresor-password` crate).

use base64::Engine as _;
use serde_json::json;
use tresor_password::PasswordPolicy;
use tresor_sdk::framework::Path;
use tresor_sdk::{LogicalError, Operation, Request, Response, Result};

use crate::system::Sys;

const PREFIX: &str = "password_policy/";

fn key(name: &str) -> Result<String> {
    let name = name.trim();
    if name.is_empty() || name.contains('/') {
        return Err(LogicalError::invalid("missing or invalid policy name"));
    }
    Ok(format!("{PREFIX}{name}"))
}

/// The stored text of a policy.
async fn text(req: &Request, name: &str) -> Result<Option<String>> {
    Ok(req
        .storage
        .get(&key(name)?)
        .await?
        .map(|b| String::from_utf8_lossy(&b).into_owned()))
}

/// The policy text a write carries: HCL, or base64 of it (as Vault accepts).
fn policy_text(raw: &str) -> String {
    let t = raw.trim();
    if !t.contains('=')
        && let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(t)
        && let Ok(s) = String::from_utf8(bytes)
    {
        return s;
    }
    raw.to_owned()
}

tresor_sdk::input! {
    /// `sys/policies/password/:name/generate`.
    struct GenerateInput {
        name: Str, "Name of the password policy.";
    }
}

tresor_sdk::input! {
    /// `sys/policies/password/:name`.
    struct PolicyInput {
        name: Str, "Name of the password policy.";
        policy: Str, "The policy in HCL (or base64 of it): length, and rule \"charset\" blocks with charset and min-chars.";
    }
}

pub(crate) fn paths() -> Vec<Path<Sys>> {
    vec![
        Path::new("policies/password/")
            .op(Operation::List, |_, req, _| {
                Box::pin(async move {
                    let keys = req.storage.list(PREFIX).await?;
                    Ok((!keys.is_empty()).then(|| Response::list(keys)))
                })
            })
            .help("List password policies.", ""),
        Path::new("policies/password/{name}/generate")
            .input::<GenerateInput>()
            .op(Operation::Read, |_, req, f| {
                Box::pin(async move {
                    let name = f.input::<GenerateInput>().name;
                    let t = text(&req, &name)
                        .await?
                        .ok_or_else(|| LogicalError::invalid(format!("no password policy named {name:?}")))?;
                    let policy = PasswordPolicy::parse(&t)
                        .map_err(|e| LogicalError::Internal(format!("stored password policy {name:?}: {e}")))?;
                    let pw = policy.generate().map_err(LogicalError::Internal)?;
                    Ok(Some(Response::json(json!({"password": pw.as_str()}))))
                })
            })
            .help(
                "Generate a password from a password policy.",
                "Each character is an unbiased draw from the policy's charsets; a candidate that misses a rule's min-chars is drawn again whole.",
            ),
        Path::new("policies/password/{name}")
            .input::<PolicyInput>()
            .op(Operation::Read, |_, req, f| {
                Box::pin(async move {
                    Ok(text(&req, &f.input::<PolicyInput>().name)
                        .await?
                        .map(|t| Response::json(json!({"policy": t}))))
                })
            })
            .op(Operation::Update, |_, req, f| {
                Box::pin(async move {
                    let PolicyInput { name, policy: raw } = f.input();
                    if raw.trim().is_empty() {
                        return Err(LogicalError::invalid("missing policy"));
                    }
                    let t = policy_text(&raw);
                    let policy = PasswordPolicy::parse(&t)
                        .map_err(|e| LogicalError::invalid(format!("invalid password policy: {e}")))?;
                    // A policy no password can satisfy is refused now, not at the first use.
                    policy
                        .generate()
                        .map_err(|e| LogicalError::invalid(format!("invalid password policy: {e}")))?;
                    req.storage.put(&key(&name)?, t.into_bytes()).await?;
                    Ok(None)
                })
            })
            .op(Operation::Delete, |_, req, f| {
                Box::pin(async move {
                    req.storage.delete(&key(&f.input::<PolicyInput>().name)?).await?;
                    Ok(None)
                })
            })
            .help("Create, read or delete a password policy.", "Engines that take a password_policy generate their passwords from it."),
    ]
}

/// What engines see of the system (`MountView::system`): the password policies, read from
/// storage at each use (so a change made on another server applies at once), and the
/// server's `api_addr`.
pub(crate) struct SystemPolicies {
    pub(crate) view: crate::barrier::View,
    pub(crate) api_addr: Option<String>,
}

impl std::fmt::Debug for SystemPolicies {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SystemPolicies")
    }
}

#[async_trait::async_trait]
impl tresor_sdk::SystemView for SystemPolicies {
    async fn password_policy(&self, name: &str) -> Result<Option<String>> {
        let k = key(name)?;
        Ok(tresor_sdk::Storage::get(&self.view, &k)
            .await?
            .map(|b| String::from_utf8_lossy(&b).into_owned()))
    }

    fn api_addr(&self) -> Option<String> {
        self.api_addr.clone()
    }
}
