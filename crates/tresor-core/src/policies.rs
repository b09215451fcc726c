//! The policy store: ACL policies persisted behind the barrier, parsed once, and the cache of
//! compiled [`Acl`]s keyed by a token's policy set.
//!
//! Any policy write or delete clears the ACL cache, so a changed policy applies to the very
//! next request of every token that holds it.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::RwLock;
use tresor_policy::{Acl, DEFAULT_POLICY, Policy, parse_policy};
use tresor_sdk::Storage;

use crate::barrier::View;
use crate::error::CoreError;

/// The built-in policy of wrapping tokens: they can do nothing but unwrap themselves.
const RESPONSE_WRAPPING_POLICY: &str = r#"
path "cubbyhole/response" { capabilities = ["create", "read"] }
path "sys/wrapping/unwrap" { capabilities = ["update"] }
path "sys/wrapping/lookup" { capabilities = ["update"] }
path "sys/wrapping/rewrap" { capabilities = ["update"] }
"#;

pub struct PolicyStore {
    view: View,
    wrapping: Arc<Acl>,
    policies: RwLock<HashMap<String, Arc<Policy>>>,
    /// Compiled ACLs keyed by a token's policy list, so a lookup borrows the token's list.
    acls: RwLock<HashMap<Vec<String>, Arc<Acl>>>,
    root: Arc<Acl>,
}

fn sdk(e: tresor_sdk::LogicalError) -> CoreError {
    CoreError::from(e)
}

/// Policy names are case-insensitive, as in Vault.
pub fn normalize(name: &str) -> String {
    name.trim().to_lowercase()
}

impl PolicyStore {
    /// Opens the store and installs the built-in `default` policy on first use.
    pub async fn open(view: View) -> Result<Self, CoreError> {
        let wrapping = parse_policy("response-wrapping", RESPONSE_WRAPPING_POLICY)
            .map_err(|e| CoreError::Internal(e.to_string()))?;
        let store = PolicyStore {
            view,
            wrapping: Arc::new(Acl::new(&[Arc::new(wrapping)])),
            policies: RwLock::new(HashMap::new()),
            acls: RwLock::new(HashMap::new()),
            root: Arc::new(Acl::root()),
        };
        if store.view.get("acl/default").await.map_err(sdk)?.is_none() {
            store.set("default", DEFAULT_POLICY).await?;
        }
        for name in store.view.list("acl/").await.map_err(sdk)? {
            if let Some(text) = store.view.get(&format!("acl/{name}")).await.map_err(sdk)? {
                let text = String::from_utf8_lossy(&text).into_owned();
                match parse_policy(&name, &text) {
                    Ok(p) => {
                        store.policies.write().insert(name.clone(), Arc::new(p));
                    }
                    Err(e) => {
                        tracing::error!(policy = %name, error = %e, "stored policy no longer parses; ignoring it")
                    }
                }
            }
        }
        Ok(store)
    }

    pub fn get(&self, name: &str) -> Option<Arc<Policy>> {
        self.policies.read().get(&normalize(name)).cloned()
    }

    /// Parses and stores a policy. Parse errors are 400s that name the line or field.
    pub async fn set(&self, name: &str, text: &str) -> Result<(), CoreError> {
        let name = normalize(name);
        if name.is_empty() {
            return Err(CoreError::InvalidRequest(
                "policy name must be provided".into(),
            ));
        }
        if name == "root" {
            return Err(CoreError::InvalidRequest(
                "cannot update \"root\" policy".into(),
            ));
        }
        if text.trim().is_empty() {
            return Err(CoreError::InvalidRequest(
                "'policy' parameter not supplied or empty".into(),
            ));
        }
        let policy = parse_policy(&name, text)
            .map_err(|e| CoreError::InvalidRequest(format!("failed to parse policy: {e}")))?;
        self.view
            .put(&format!("acl/{name}"), text.as_bytes().to_vec())
            .await
            .map_err(sdk)?;
        self.policies.write().insert(name, Arc::new(policy));
        self.acls.write().clear();
        Ok(())
    }

    pub async fn delete(&self, name: &str) -> Result<(), CoreError> {
        let name = normalize(name);
        if name == "root" || name == "default" {
            return Err(CoreError::InvalidRequest(format!(
                "cannot delete \"{name}\" policy"
            )));
        }
        self.view
            .delete(&format!("acl/{name}"))
            .await
            .map_err(sdk)?;
        self.policies.write().remove(&name);
        self.acls.write().clear();
        Ok(())
    }

    /// Every policy name, sorted, without `root`.
    pub fn list(&self) -> Vec<String> {
        let mut v: Vec<String> = self.policies.read().keys().cloned().collect();
        v.sort();
        v
    }

    /// The compiled ACL for a set of policy names (cached). Unknown names grant nothing.
    pub fn acl(&self, names: &[String]) -> Arc<Acl> {
        if names.iter().any(|n| n == "root") {
            return self.root.clone();
        }
        if names.len() == 1 && names[0] == crate::wrapping::WRAPPING_POLICY {
            return self.wrapping.clone();
        }
        if let Some(a) = self.acls.read().get(names) {
            return a.clone();
        }
        let policies: Vec<Arc<Policy>> = names.iter().filter_map(|n| self.get(n)).collect();
        let acl = Arc::new(Acl::new(&policies));
        self.acls.write().insert(names.to_vec(), acl.clone());
        acl
    }
}
