//! The pipeline's extension points, for the features that plug into every request without
//! being engines: quotas (rate limits before authentication), governing policies (after the
//! ACL) and metrics (after the response). Each is a method with a do-nothing default, so the
//! core runs the same straight-line pipeline whether or not a feature is configured.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use serde_json::{Map, Value};
use tresor_sdk::Operation;

use crate::error::CoreError;
use crate::governing::{GoverningKind, GoverningSet};
use crate::identity::Resolved;

/// What a hook sees of one request. Borrowed: building it costs nothing.
#[derive(Debug, Clone, Copy)]
pub struct RequestFacts<'a> {
    /// The canonical path the request is routed, authorized and dispatched on.
    pub path: &'a str,
    pub operation: Operation,
    pub remote_addr: Option<&'a str>,
    /// The mount serving the path (`secret/`) and its type (`kv`).
    pub mount_path: &'a str,
    pub mount_type: &'a str,
    /// Whether the engine declares the path unauthenticated (logins, CA certificates).
    pub unauthenticated: bool,
    /// The token's policies, once authenticated (`None` before, or without a token).
    pub policies: Option<&'a [String]>,
    /// For `govern` only, and only when governing policies exist: what a policy's input
    /// document is built from (`None` otherwise, so a server without them pays nothing).
    pub governing: Option<GoverningFacts<'a>>,
}

/// The facts governing policies decide on (design-next.md §5's input document).
#[derive(Debug, Clone, Copy)]
pub struct GoverningFacts<'a> {
    /// Every governing policy at this moment.
    pub set: &'a GoverningSet,
    /// The request's fields as the client sent them (a login's too).
    pub data: &'a Map<String, Value>,
    /// The request carried `X-Vault-Policy-Override: true`.
    pub policy_override: bool,
    /// The response will be wrapped with this TTL (`X-Vault-Wrap-TTL`).
    pub wrap_ttl: Option<Duration>,
    /// The calling token, if any (never its id).
    pub token: Option<TokenFacts<'a>>,
    /// The token's identity entity with its groups and identity policies, if it has one.
    pub identity: Option<&'a Resolved>,
    /// The request carried `X-Vault-MFA` passcodes (a login finishing its MFA in one step).
    pub mfa_sent: bool,
    /// The time of the request, from `CoreConfig::clock`.
    pub now: SystemTime,
}

/// What a governing policy may know of the calling token: everything but the token itself.
#[derive(Debug, Clone, Copy)]
pub struct TokenFacts<'a> {
    pub accessor: &'a str,
    pub policies: &'a [String],
    pub meta: &'a BTreeMap<String, String>,
    pub display_name: &'a str,
    pub path: &'a str,
    pub token_type: &'a str,
    pub entity_id: &'a str,
    pub creation_time: i64,
    pub expire_time: Option<i64>,
    pub ttl: u64,
    pub explicit_max_ttl: u64,
    pub period: u64,
    pub num_uses: i64,
    pub orphan: bool,
    pub renewable: bool,
    pub role: &'a str,
}

impl<'a> TokenFacts<'a> {
    pub fn of(t: &'a crate::tokens::TokenEntry) -> Self {
        TokenFacts {
            accessor: &t.accessor,
            policies: &t.policies,
            meta: &t.meta,
            display_name: &t.display_name,
            path: &t.path,
            token_type: &t.token_type,
            entity_id: &t.entity_id,
            creation_time: t.creation_time,
            expire_time: t.expire_time,
            ttl: t.ttl,
            explicit_max_ttl: t.explicit_max_ttl,
            period: t.period,
            num_uses: t.num_uses,
            orphan: t.orphan,
            renewable: t.renewable,
            role: &t.role,
        }
    }
}

/// Extension points of the request pipeline (`CoreConfig::hooks`).
pub trait PipelineHooks: Send + Sync + 'static {
    /// Before authentication: a quota may refuse the request (`CoreError::RateLimited`), so
    /// that a flood is turned away before it costs a token lookup.
    fn rate_limit(&self, _facts: &RequestFacts<'_>) -> Result<(), CoreError> {
        Ok(())
    }
    /// After the ACL allowed the request: governing policies may refuse it, or let it through
    /// with warnings for the response.
    fn govern(&self, _facts: &RequestFacts<'_>) -> Result<Vec<String>, CoreError> {
        Ok(Vec::new())
    }
    /// Before a governing policy is stored: `Err` (shown to the client, with the line and
    /// column of the problem) refuses it. Without a policy engine nothing can be checked, or
    /// enforced, so nothing is stored.
    fn check_governing_policy(
        &self,
        _kind: GoverningKind,
        _name: &str,
        _text: &str,
    ) -> Result<(), String> {
        Err("governing policies are not enabled on this server".into())
    }
    /// After the response (or the error) is known: metrics.
    fn observe(&self, _facts: &RequestFacts<'_>, _ok: bool, _elapsed: Duration) {}
}

/// No quotas, no governing policies, no metrics.
#[derive(Debug, Default)]
pub struct NoHooks;

impl PipelineHooks for NoHooks {}
