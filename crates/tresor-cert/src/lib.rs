//! Vault's TLS certificate auth method: logins from the client certificate of the TLS handshake.

#![forbid(unsafe_code)]

use std::sync::Arc;

use tresor_sdk::LogicalBackend;

/// The auth method, ready to mount.
pub fn backend() -> Arc<dyn LogicalBackend> {
    todo!("tresor-cert")
}
