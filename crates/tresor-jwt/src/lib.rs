//! Vault's JWT/OIDC and Kubernetes auth methods: logins with signed tokens, the OIDC code flow
//! and TokenReview.
//!
//! Module map: `jwt` (the JWT/OIDC method), `kubernetes` (the Kubernetes method), and what
//! both use: `keys` (signature verification), `claims` (what claims must say), `glob`, `net`
//! (outbound HTTP and the OAuth encoders), `shared` (role names, policy comparison).

#![forbid(unsafe_code)]

mod claims;
mod glob;
mod jwt;
mod keys;
mod kubernetes;
mod net;
mod shared;

use std::sync::Arc;

use tresor_sdk::LogicalBackend;
use tresor_sdk::clock::{Clock, SystemClock};

/// The JWT/OIDC auth method on the system clock, ready to mount.
pub fn backend() -> Arc<dyn LogicalBackend> {
    backend_with_clock(Arc::new(SystemClock))
}

/// The JWT/OIDC auth method reading time from `clock` (tests pass a clock they control).
pub fn backend_with_clock(clock: Arc<dyn Clock>) -> Arc<dyn LogicalBackend> {
    jwt::backend(clock)
}

/// The Kubernetes auth method, ready to mount.
pub fn kubernetes_backend() -> Arc<dyn LogicalBackend> {
    kubernetes_backend_with_clock(Arc::new(SystemClock))
}

/// The Kubernetes auth method reading time from `clock` (logins leave time checks to the
/// API server's TokenReview, so it is not consulted yet).
pub fn kubernetes_backend_with_clock(clock: Arc<dyn Clock>) -> Arc<dyn LogicalBackend> {
    kubernetes::backend(clock)
}
