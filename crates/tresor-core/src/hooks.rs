//! The pipeline's extension points, for the features that plug into every request without
//! being engines: quotas (rate limits before authentication), governing policies (after the
//! ACL) and metrics (after the response). Each is a method with a do-nothing default, so the
//! core runs the same straight-line pipeline whether or not a feature is configured.

use std::time::Duration;

use tresor_sdk::Operation;

use crate::error::CoreError;

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
    /// After the response (or the error) is known: metrics.
    fn observe(&self, _facts: &RequestFacts<'_>, _ok: bool, _elapsed: Duration) {}
}

/// No quotas, no governing policies, no metrics.
#[derive(Debug, Default)]
pub struct NoHooks;

impl PipelineHooks for NoHooks {}
