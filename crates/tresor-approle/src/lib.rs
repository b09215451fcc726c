//! Vault's AppRole auth method: role IDs and secret IDs for machines.

#![forbid(unsafe_code)]

use std::sync::Arc;

use tresor_sdk::LogicalBackend;

/// The auth method, ready to mount.
pub fn backend() -> Arc<dyn LogicalBackend> {
    todo!("tresor-approle")
}
