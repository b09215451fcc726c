//! The core's governing hook: after the ACL allowed a request, the token's RGPs and then the
//! EGPs whose paths match run against one input document; advisory failures become warnings,
//! soft-mandatory failures are denials unless overridden, hard-mandatory failures are
//! denials. A policy that cannot be evaluated (an error, the time limit) fails (fail closed).
//!
//! Compiled policies are cached per (kind, name) together with the `Arc` of the stored policy
//! they were compiled from: the store replaces that `Arc` on every change, so a changed policy
//! is compiled again on its next use and never parsed per request.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::RwLock;
use tresor_core::CoreError;
use tresor_core::governing::{EnforcementLevel, GoverningKind, GoverningPolicy, path_matches};
use tresor_core::hooks::{PipelineHooks, RequestFacts};

use crate::policy::{Compiled, DEFAULT_EVAL_TIMEOUT};

/// Compiled policies of one kind by name, with the stored policy each was compiled from.
type Cache = HashMap<String, (Arc<GoverningPolicy>, Arc<Compiled>)>;

/// Governing policies as a pipeline hook (`CoreConfig::hooks`).
pub struct GoverningHooks {
    timeout: Duration,
    /// EGPs, RGPs.
    cache: [RwLock<Cache>; 2],
}

impl std::fmt::Debug for GoverningHooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GoverningHooks")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl Default for GoverningHooks {
    fn default() -> Self {
        Self::new(DEFAULT_EVAL_TIMEOUT)
    }
}

/// One policy that did not pass.
struct Failure<'a> {
    kind: GoverningKind,
    policy: &'a GoverningPolicy,
    reasons: Vec<String>,
}

impl Failure<'_> {
    /// `egp policy "x" (hard-mandatory) denied the request: reason; reason`, with `verb`
    /// saying what the failure did.
    fn describe(&self, verb: &str) -> String {
        let mut s = format!(
            "{} policy {:?} ({}) {verb}",
            self.kind.as_str(),
            self.policy.name,
            self.policy.enforcement_level.as_str()
        );
        if !self.reasons.is_empty() {
            s.push_str(": ");
            s.push_str(&self.reasons.join("; "));
        }
        s
    }
}

impl GoverningHooks {
    /// A hook whose evaluations are stopped after `timeout` each.
    pub fn new(timeout: Duration) -> Self {
        GoverningHooks {
            timeout,
            cache: [RwLock::new(HashMap::new()), RwLock::new(HashMap::new())],
        }
    }

    /// The compiled form of a stored policy, from the cache unless the policy changed.
    fn compiled(
        &self,
        kind: GoverningKind,
        p: &Arc<GoverningPolicy>,
    ) -> Result<Arc<Compiled>, String> {
        let cache = &self.cache[match kind {
            GoverningKind::Egp => 0,
            GoverningKind::Rgp => 1,
        }];
        if let Some((stored, c)) = cache.read().get(p.name.as_str())
            && Arc::ptr_eq(stored, p)
        {
            return Ok(c.clone());
        }
        let c = Arc::new(
            Compiled::compile(&p.name, &p.policy, self.timeout).map_err(|e| e.to_string())?,
        );
        cache.write().insert(p.name.clone(), (p.clone(), c.clone()));
        Ok(c)
    }
}

impl PipelineHooks for GoverningHooks {
    fn check_governing_policy(
        &self,
        _kind: GoverningKind,
        name: &str,
        text: &str,
    ) -> Result<(), String> {
        Compiled::compile(name, text, self.timeout)
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    fn govern(&self, facts: &RequestFacts<'_>) -> Result<Vec<String>, CoreError> {
        let Some(g) = facts.governing else {
            return Ok(Vec::new());
        };
        // Root tokens are exempt.
        if let Some(t) = &g.token
            && t.policies.iter().any(|p| p == "root")
        {
            return Ok(Vec::new());
        }
        // The token's RGPs (its own policy names, then its entity's and groups'), then the
        // EGPs whose paths match.
        let mut applicable: Vec<(GoverningKind, &Arc<GoverningPolicy>)> = Vec::new();
        if !g.set.rgp.is_empty() {
            let names = g
                .token
                .iter()
                .flat_map(|t| t.policies.iter())
                .chain(g.identity.iter().flat_map(|r| r.policies.iter()));
            for n in names {
                if let Some(p) = g.set.rgp.get(n.as_str())
                    && !applicable.iter().any(|(_, q)| Arc::ptr_eq(p, q))
                {
                    applicable.push((GoverningKind::Rgp, p));
                }
            }
        }
        for p in g.set.egp.values() {
            if p.paths.iter().any(|pat| path_matches(pat, facts.path)) {
                applicable.push((GoverningKind::Egp, p));
            }
        }
        if applicable.is_empty() {
            return Ok(Vec::new());
        }
        // Compiled (or found compiled) first: the input document holds only the sections the
        // request's policies read (crate::reads).
        let compiled: Vec<Result<Arc<Compiled>, String>> = applicable
            .iter()
            .map(|(kind, p)| self.compiled(*kind, p))
            .collect();
        let mut sections = crate::input::Sections::none();
        for c in compiled.iter().flatten() {
            sections.add(c.reads());
        }
        let input = crate::input::value(facts, &g, &sections);
        let mut warnings = Vec::new();
        let mut denials = Vec::new();
        for ((kind, p), c) in applicable.into_iter().zip(compiled) {
            let decision = c.and_then(|c| c.evaluate(&input).map_err(|e| e.to_string()));
            let reasons = match decision {
                Ok(d) if d.allowed => continue,
                Ok(d) => d.reasons,
                Err(e) => {
                    // Fail closed, whatever the level: a policy that cannot say yes says no.
                    tracing::warn!(policy = %p.name, kind = kind.as_str(), error = %e, "governing policy failed to evaluate; denying");
                    denials.push(format!(
                        "{} policy {:?} failed to evaluate: {e}",
                        kind.as_str(),
                        p.name
                    ));
                    continue;
                }
            };
            let failure = Failure {
                kind,
                policy: p,
                reasons,
            };
            match p.enforcement_level {
                EnforcementLevel::Advisory => {
                    warnings.push(format!("advisory: {}", failure.describe("did not pass")));
                }
                // The override needs a caller to hold accountable: a login has none yet.
                EnforcementLevel::SoftMandatory if g.policy_override && g.token.is_some() => {
                    warnings.push(format!(
                        "{}; overridden with X-Vault-Policy-Override",
                        failure.describe("did not pass")
                    ));
                }
                _ => denials.push(failure.describe("denied the request")),
            }
        }
        if denials.is_empty() {
            Ok(warnings)
        } else {
            Err(CoreError::Forbidden(denials.join("\n")))
        }
    }
}
