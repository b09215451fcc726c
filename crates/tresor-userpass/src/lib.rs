//! Vault's userpass auth method: users with bcrypt-hashed passwords.

#![forbid(unsafe_code)]

use std::sync::Arc;

use tresor_sdk::LogicalBackend;

/// The auth method, ready to mount.
pub fn backend() -> Arc<dyn LogicalBackend> {
    todo!("tresor-userpass")
}
