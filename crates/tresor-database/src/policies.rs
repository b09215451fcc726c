//! `password_policies/:name` and `password_policies/:name/generate`: password policies kept
//! in the mount, which a connection's `password_policy` names.
//!
//! Vault keeps password policies in `sys/policies/password`, which a connection's
//! `password_policy` names first (through the mount's system view); these mount-local ones
//! (same HCL, same generation) are from before engines could read the system's, and are used
//! when the system has no policy of that name.

use std::sync::Arc;

use serde_json::json;
use tresor_sdk::framework::Fields;
use tresor_sdk::{LogicalError, Request, Response, Result};

use crate::engine::Engine;
use crate::inputs::{PolicyInput, PolicyNameInput};
use crate::password::PasswordPolicy;
use crate::store::{self, StoredPolicy};

fn key(name: &str) -> String {
    format!("{}{name}", store::POLICIES)
}

/// The policy text: HCL as given, or base64 of it (as some clients send it).
fn policy_text(raw: &str) -> String {
    use base64::Engine as _;
    if PasswordPolicy::parse(raw).is_ok() {
        return raw.to_owned();
    }
    base64::engine::general_purpose::STANDARD
        .decode(raw.trim())
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .unwrap_or_else(|| raw.to_owned())
}

impl Engine {
    pub async fn policy_write(
        self: Arc<Self>,
        req: Request,
        f: Fields,
    ) -> Result<Option<Response>> {
        let PolicyInput { name, policy } = f.input();
        store::check_name(&name, "password policy")?;
        let text = policy_text(&policy);
        if text.trim().is_empty() {
            return Err(LogicalError::invalid("missing policy"));
        }
        PasswordPolicy::parse(&text)
            .map_err(|e| LogicalError::invalid(format!("invalid password policy: {e}")))?;
        store::save(
            &*req.storage,
            &key(&name),
            &StoredPolicy {
                version: 1,
                policy: text,
            },
        )
        .await?;
        Ok(None)
    }

    pub async fn policy_read(self: Arc<Self>, req: Request, f: Fields) -> Result<Option<Response>> {
        let p: Option<StoredPolicy> = store::load(
            &*req.storage,
            "password policy",
            &key(&f.input::<PolicyNameInput>().name),
        )
        .await?;
        Ok(p.map(|p| Response::json(json!({ "policy": p.policy }))))
    }

    pub async fn policy_delete(
        self: Arc<Self>,
        req: Request,
        f: Fields,
    ) -> Result<Option<Response>> {
        req.storage
            .delete(&key(&f.input::<PolicyNameInput>().name))
            .await?;
        Ok(None)
    }

    pub async fn policy_list(
        self: Arc<Self>,
        req: Request,
        _f: Fields,
    ) -> Result<Option<Response>> {
        Ok(Some(Response::list(
            req.storage.list(store::POLICIES).await?,
        )))
    }

    pub async fn policy_generate(
        self: Arc<Self>,
        req: Request,
        f: Fields,
    ) -> Result<Option<Response>> {
        let name = f.input::<PolicyNameInput>().name;
        // This mount's own policies only.
        let p = self.policy(&*req.storage, None, &name).await?;
        let pw = p.generate().map_err(LogicalError::Internal)?;
        Ok(Some(Response::json(json!({ "password": pw.as_str() }))))
    }
}
