//! Vault's SSH secrets engine: an SSH certificate authority and one-time passwords.

#![forbid(unsafe_code)]

use std::sync::Arc;

use tresor_sdk::LogicalBackend;

/// The engine, ready to mount.
pub fn backend() -> Arc<dyn LogicalBackend> {
    todo!("tresor-ssh")
}
