//! The governing-policy store: endpoint governing policies (EGPs, `sys/policies/egp/:name`)
//! and role governing policies (RGPs, `sys/policies/rgp/:name`) persisted behind the barrier,
//! next to the ACL policies (`sys/policy/egp/<name>`, `sys/policy/rgp/<name>`).
//!
//! The core stores and serves the policies' text and settings; it never parses Rego. The
//! pipeline hands the current [`GoverningSet`] to the governing hook
//! (`PipelineHooks::govern`), which compiles each policy once and caches it by the identity
//! of the `Arc` it got: every change replaces the `Arc`, so a changed policy applies to the
//! very next request. A policy is checked by the hook (`PipelineHooks::check_governing_policy`)
//! before it is stored, so a policy that does not compile is refused with its line and column.

use std::collections::BTreeMap;
use std::sync::Arc;

use parking_lot::RwLock;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tresor_sdk::Storage;

use crate::barrier::View;
use crate::error::CoreError;

/// The two kinds of governing policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum GoverningKind {
    /// Endpoint governing policy: applies to every request on its `paths`.
    Egp,
    /// Role governing policy: applies to the tokens, entities and groups that name it.
    Rgp,
}

impl GoverningKind {
    pub fn as_str(self) -> &'static str {
        match self {
            GoverningKind::Egp => "egp",
            GoverningKind::Rgp => "rgp",
        }
    }
}

/// What a failing policy does to the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EnforcementLevel {
    /// Allowed, with a warning in the response and the audit entry.
    Advisory,
    /// Denied unless the request carries `X-Vault-Policy-Override: true`.
    SoftMandatory,
    /// Denied.
    HardMandatory,
}

impl EnforcementLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            EnforcementLevel::Advisory => "advisory",
            EnforcementLevel::SoftMandatory => "soft-mandatory",
            EnforcementLevel::HardMandatory => "hard-mandatory",
        }
    }

    pub fn parse(s: &str) -> Result<Self, CoreError> {
        match s.trim().to_ascii_lowercase().as_str() {
            "advisory" => Ok(EnforcementLevel::Advisory),
            "soft-mandatory" => Ok(EnforcementLevel::SoftMandatory),
            "hard-mandatory" => Ok(EnforcementLevel::HardMandatory),
            other => Err(CoreError::InvalidRequest(format!(
                "invalid enforcement_level {other:?}: must be \"advisory\", \"soft-mandatory\" or \"hard-mandatory\""
            ))),
        }
    }
}

/// The stored format's version (house style: decoding is the one place that upgrades).
const FORMAT_VERSION: u32 = 1;

/// One governing policy as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GoverningPolicy {
    #[serde(default)]
    pub version: u32,
    pub name: String,
    /// The Rego source.
    pub policy: String,
    pub enforcement_level: EnforcementLevel,
    /// EGPs only: the request paths it governs (`*` matches any run of characters, `+` one
    /// path segment).
    #[serde(default)]
    pub paths: Vec<String>,
}

impl GoverningPolicy {
    /// The API's view of the policy (`sys/policies/<kind>/:name` read).
    pub fn to_json(&self, kind: GoverningKind) -> Value {
        let mut v = serde_json::json!({
            "name": self.name,
            "policy": self.policy,
            "enforcement_level": self.enforcement_level.as_str(),
        });
        if kind == GoverningKind::Egp {
            v["paths"] = serde_json::json!(self.paths);
        }
        v
    }
}

/// Every governing policy at one moment. Cheap to hand out (`Arc`); replaced on each change.
#[derive(Debug, Default)]
pub struct GoverningSet {
    pub egp: BTreeMap<String, Arc<GoverningPolicy>>,
    pub rgp: BTreeMap<String, Arc<GoverningPolicy>>,
}

impl GoverningSet {
    pub fn is_empty(&self) -> bool {
        self.egp.is_empty() && self.rgp.is_empty()
    }

    pub fn of(&self, kind: GoverningKind) -> &BTreeMap<String, Arc<GoverningPolicy>> {
        match kind {
            GoverningKind::Egp => &self.egp,
            GoverningKind::Rgp => &self.rgp,
        }
    }

    fn of_mut(&mut self, kind: GoverningKind) -> &mut BTreeMap<String, Arc<GoverningPolicy>> {
        match kind {
            GoverningKind::Egp => &mut self.egp,
            GoverningKind::Rgp => &mut self.rgp,
        }
    }
}

/// Whether an EGP path pattern matches a request path: `*` matches any run of characters
/// (across segments), `+` exactly one non-empty path segment, anything else itself.
pub fn path_matches(pattern: &str, path: &str) -> bool {
    let (p, s) = (pattern.as_bytes(), path.as_bytes());
    // Iterative glob with backtracking to the last `*`.
    let (mut pi, mut si) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while si < s.len() {
        if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, si));
            pi += 1;
        } else if pi < p.len() && p[pi] == b'+' && s[si] != b'/' {
            // One segment: consume up to the next `/`.
            let end = s[si..]
                .iter()
                .position(|&c| c == b'/')
                .map_or(s.len(), |i| si + i);
            si = end;
            pi += 1;
        } else if pi < p.len() && p[pi] == s[si] {
            pi += 1;
            si += 1;
        } else if let Some((sp, ss)) = star {
            pi = sp + 1;
            si = ss + 1;
            star = Some((sp, ss + 1));
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == b'*' {
        pi += 1;
    }
    pi == p.len()
}

/// The governing facts of one request (step 8 of the pipeline): everything borrowed.
pub(crate) fn facts<'a>(
    set: &'a GoverningSet,
    req: &'a crate::core::CoreRequest,
    token: Option<&'a crate::tokens::TokenEntry>,
    identity: Option<&'a crate::identity::Resolved>,
    now: std::time::SystemTime,
) -> crate::hooks::GoverningFacts<'a> {
    let header = |name: &str| {
        req.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    };
    crate::hooks::GoverningFacts {
        set,
        data: &req.data,
        policy_override: header(POLICY_OVERRIDE_HEADER)
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("true")),
        wrap_ttl: req.wrap_ttl.filter(|d| !d.is_zero()),
        token: token.map(crate::hooks::TokenFacts::of),
        identity,
        mfa_sent: header("x-vault-mfa").is_some(),
        now,
    }
}

/// The request header that overrides soft-mandatory policies (the CLI's `-policy-override`).
pub const POLICY_OVERRIDE_HEADER: &str = "x-vault-policy-override";

/// Stores and serves governing policies; see the module docs.
pub struct GoverningStore {
    view: View,
    set: RwLock<Arc<GoverningSet>>,
    /// Serialises writes and deletes, so storage and memory end with the same text.
    writes: tokio::sync::Mutex<()>,
}

fn sdk(e: tresor_sdk::LogicalError) -> CoreError {
    CoreError::from(e)
}

fn key(kind: GoverningKind, name: &str) -> String {
    format!("{}/{name}", kind.as_str())
}

fn decode(bytes: &[u8]) -> Result<GoverningPolicy, CoreError> {
    let mut p: GoverningPolicy = serde_json::from_slice(bytes)
        .map_err(|e| CoreError::Internal(format!("stored governing policy: {e}")))?;
    // Version 0 does not exist yet; every stored version decodes as is.
    p.version = FORMAT_VERSION;
    Ok(p)
}

impl GoverningStore {
    /// Opens the store on the policy view (`sys/policy/`) and loads every policy.
    pub async fn open(view: View) -> Result<Self, CoreError> {
        let mut set = GoverningSet::default();
        for kind in [GoverningKind::Egp, GoverningKind::Rgp] {
            let prefix = format!("{}/", kind.as_str());
            for name in view.list(&prefix).await.map_err(sdk)? {
                if let Some(bytes) = view.get(&key(kind, &name)).await.map_err(sdk)? {
                    match decode(&bytes) {
                        Ok(p) => {
                            set.of_mut(kind).insert(name, Arc::new(p));
                        }
                        Err(e) => {
                            tracing::error!(policy = %name, kind = kind.as_str(), error = %e, "stored governing policy does not decode; ignoring it")
                        }
                    }
                }
            }
        }
        Ok(GoverningStore {
            view,
            set: RwLock::new(Arc::new(set)),
            writes: tokio::sync::Mutex::new(()),
        })
    }

    /// The current policies (what the pipeline hands the governing hook).
    pub fn snapshot(&self) -> Arc<GoverningSet> {
        self.set.read().clone()
    }

    pub fn get(&self, kind: GoverningKind, name: &str) -> Option<Arc<GoverningPolicy>> {
        self.set
            .read()
            .of(kind)
            .get(&crate::policies::normalize(name))
            .cloned()
    }

    pub fn list(&self, kind: GoverningKind) -> Vec<String> {
        self.set.read().of(kind).keys().cloned().collect()
    }

    /// Stores a policy that the caller has already checked (see `system_governing`).
    pub async fn set(&self, kind: GoverningKind, mut p: GoverningPolicy) -> Result<(), CoreError> {
        p.name = crate::policies::normalize(&p.name);
        p.version = FORMAT_VERSION;
        let bytes = serde_json::to_vec(&p).map_err(|e| CoreError::Internal(e.to_string()))?;
        let _w = self.writes.lock().await;
        self.view
            .put(&key(kind, &p.name), bytes)
            .await
            .map_err(sdk)?;
        self.replace(kind, &p.name.clone(), Some(Arc::new(p)));
        Ok(())
    }

    pub async fn delete(&self, kind: GoverningKind, name: &str) -> Result<(), CoreError> {
        let name = crate::policies::normalize(name);
        let _w = self.writes.lock().await;
        self.view.delete(&key(kind, &name)).await.map_err(sdk)?;
        self.replace(kind, &name, None);
        Ok(())
    }

    /// Reads one policy again after another server changed or deleted it
    /// (`Core::invalidate` of `sys/policy/egp/<name>` or `sys/policy/rgp/<name>`).
    pub async fn reload(&self, kind: GoverningKind, name: &str) -> Result<(), CoreError> {
        let _w = self.writes.lock().await;
        let p = match self.view.get(&key(kind, name)).await.map_err(sdk)? {
            Some(bytes) => Some(Arc::new(decode(&bytes)?)),
            None => None,
        };
        self.replace(kind, name, p);
        Ok(())
    }

    /// Publishes a new set with one policy replaced or removed (copy on write: a request
    /// holding the old set keeps a consistent view).
    fn replace(&self, kind: GoverningKind, name: &str, p: Option<Arc<GoverningPolicy>>) {
        let mut guard = self.set.write();
        let mut next = GoverningSet {
            egp: guard.egp.clone(),
            rgp: guard.rgp.clone(),
        };
        match p {
            Some(p) => next.of_mut(kind).insert(name.to_owned(), p),
            None => next.of_mut(kind).remove(name),
        };
        *guard = Arc::new(next);
    }
}

#[cfg(test)]
mod tests {
    use super::path_matches;

    #[test]
    fn egp_path_globs() {
        for (pattern, path, want) in [
            ("pki/sign/*", "pki/sign/web", true),
            ("pki/sign/*", "pki/sign/", true),
            ("pki/sign/*", "pki/issue/web", false),
            ("*", "anything/at/all", true),
            ("auth/userpass/login/*", "auth/userpass/login/alice", true),
            ("secret/data/+", "secret/data/app", true),
            ("secret/data/+", "secret/data/app/x", false),
            ("secret/+/app", "secret/data/app", true),
            ("sys/mounts", "sys/mounts", true),
            ("sys/mounts", "sys/mounts/x", false),
            ("sys/*/x", "sys/a/b/x", true),
        ] {
            assert_eq!(path_matches(pattern, path), want, "{pattern} vs {path}");
        }
    }
}
