//! The policy store: ACL policies persisted behind the barrier, parsed once, and the cache of
//! compiled [`Acl`]s keyed by a token's policy set.
//!
//! Any policy write or delete clears the ACL cache, so a changed policy applies to the very
//! next request of every token that holds it.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::RwLock;
use tresor_policy::{Acl, DEFAULT_POLICY, Policy, parse_policy};
use tresor_sdk::Storage;

use crate::barrier::View;
use crate::error::CoreError;

/// The built-in policy of wrapping tokens: they can do nothing but unwrap themselves. The
/// payload in their cubbyhole is read only by unwrap itself (which spends the token), never
/// through `cubbyhole/response`: a read there would let an interceptor see the payload and
/// leave the recipient's unwrap working, so the interception would go unnoticed.
const RESPONSE_WRAPPING_POLICY: &str = r#"
path "sys/wrapping/unwrap" { capabilities = ["update"] }
path "sys/wrapping/lookup" { capabilities = ["update"] }
path "sys/wrapping/rewrap" { capabilities = ["update"] }
"#;

/// One entity's compiled ACLs: the token's policy set → (identity generation, ACL).
type EntityAcls = HashMap<Vec<String>, (u64, Arc<Acl>)>;

pub struct PolicyStore {
    view: View,
    wrapping: Arc<Acl>,
    policies: RwLock<HashMap<String, Arc<Policy>>>,
    /// Compiled ACLs keyed by a token's policy list, so a lookup borrows the token's list.
    acls: RwLock<HashMap<Vec<String>, Arc<Acl>>>,
    /// Bumped (under the `acls` lock) by every policy change: an ACL compiled from policies
    /// read before a change is not cached after it.
    generation: AtomicU64,
    /// ACLs of tokens with an identity entity, keyed by entity id and then by the token's own
    /// policies, each with the identity generation it was rendered at: templates are rendered
    /// once per (policy set, entity) and again when either changes.
    entity_acls: RwLock<HashMap<String, EntityAcls>>,
    /// Whether any stored policy is templated (then every entity's ACL is rendered).
    any_templated: std::sync::atomic::AtomicBool,
    /// Serialises policy writes and deletes, so storage and memory end with the same text.
    writes: tokio::sync::Mutex<()>,
    root: Arc<Acl>,
}

/// Policies no token may be given and no one may write: they belong to the server.
pub const NON_ASSIGNABLE: &[&str] = &[crate::wrapping::WRAPPING_POLICY, "control-group"];

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
            generation: AtomicU64::new(0),
            entity_acls: RwLock::new(HashMap::new()),
            any_templated: std::sync::atomic::AtomicBool::new(false),
            writes: tokio::sync::Mutex::new(()),
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
        store.invalidate_acls();
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
        if name == "root" || NON_ASSIGNABLE.contains(&name.as_str()) {
            return Err(CoreError::InvalidRequest(format!(
                "cannot update {name:?} policy"
            )));
        }
        if text.trim().is_empty() {
            return Err(CoreError::InvalidRequest(
                "'policy' parameter not supplied or empty".into(),
            ));
        }
        let policy = parse_policy(&name, text)
            .map_err(|e| CoreError::InvalidRequest(format!("failed to parse policy: {e}")))?;
        let _w = self.writes.lock().await;
        self.view
            .put(&format!("acl/{name}"), text.as_bytes().to_vec())
            .await
            .map_err(sdk)?;
        self.policies.write().insert(name, Arc::new(policy));
        self.invalidate_acls();
        Ok(())
    }

    pub async fn delete(&self, name: &str) -> Result<(), CoreError> {
        let name = normalize(name);
        if name == "root" || name == "default" {
            return Err(CoreError::InvalidRequest(format!(
                "cannot delete \"{name}\" policy"
            )));
        }
        let _w = self.writes.lock().await;
        self.view
            .delete(&format!("acl/{name}"))
            .await
            .map_err(sdk)?;
        self.policies.write().remove(&name);
        self.invalidate_acls();
        Ok(())
    }

    /// Drops every compiled ACL after a policy change (see `generation`).
    fn invalidate_acls(&self) {
        let mut acls = self.acls.write();
        let mut entity_acls = self.entity_acls.write();
        self.generation.fetch_add(1, Ordering::SeqCst);
        acls.clear();
        entity_acls.clear();
        let templated = self.policies.read().values().any(|p| p.is_templated());
        self.any_templated.store(templated, Ordering::SeqCst);
    }

    /// Reads one policy again after another server changed or deleted it.
    pub async fn reload(&self, name: &str) -> Result<(), CoreError> {
        let _w = self.writes.lock().await;
        match self.view.get(&format!("acl/{name}")).await.map_err(sdk)? {
            Some(text) => {
                let text = String::from_utf8_lossy(&text).into_owned();
                let p = parse_policy(name, &text).map_err(|e| {
                    CoreError::Internal(format!("stored policy {name:?} no longer parses: {e}"))
                })?;
                self.policies.write().insert(name.to_owned(), Arc::new(p));
            }
            None => {
                self.policies.write().remove(name);
            }
        }
        self.invalidate_acls();
        Ok(())
    }

    /// Every policy name, sorted, without `root`.
    pub fn list(&self) -> Vec<String> {
        let mut v: Vec<String> = self.policies.read().keys().cloned().collect();
        v.sort();
        v
    }

    /// The ACL of a token with an identity entity: its policies plus the entity's identity
    /// policies, templated paths rendered for the entity (cached per entity and policy set).
    pub fn acl_with_identity(
        &self,
        names: &[String],
        entity: &crate::identity::Resolved,
    ) -> Arc<Acl> {
        if names.iter().any(|n| n == "root") {
            return self.root.clone();
        }
        if entity.policies.is_empty() && !self.any_templated.load(Ordering::SeqCst) {
            return self.acl(names);
        }
        if let Some(per_entity) = self.entity_acls.read().get(&entity.info.id)
            && let Some((generation, acl)) = per_entity.get(names)
            && *generation == entity.generation
        {
            return acl.clone();
        }
        let generation = self.generation.load(Ordering::SeqCst);
        let mut all: Vec<&str> = names.iter().map(String::as_str).collect();
        for p in &entity.policies {
            if !all.contains(&p.as_str()) {
                all.push(p);
            }
        }
        let policies: Vec<Arc<Policy>> = all
            .iter()
            .filter_map(|n| self.get(n))
            .map(|p| {
                if p.is_templated() {
                    Arc::new(p.render(Some(&entity.info)).0)
                } else {
                    p
                }
            })
            .collect();
        let acl = Arc::new(Acl::new(&policies));
        let mut cache = self.entity_acls.write();
        if self.generation.load(Ordering::SeqCst) == generation {
            cache
                .entry(entity.info.id.clone())
                .or_default()
                .insert(names.to_vec(), (entity.generation, acl.clone()));
        }
        acl
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
        let generation = self.generation.load(Ordering::SeqCst);
        let policies: Vec<Arc<Policy>> = names.iter().filter_map(|n| self.get(n)).collect();
        let acl = Arc::new(Acl::new(&policies));
        let mut acls = self.acls.write();
        // A policy changed while this ACL was compiled: use it for this request only.
        if self.generation.load(Ordering::SeqCst) == generation {
            acls.insert(names.to_vec(), acl.clone());
        }
        acl
    }
}
