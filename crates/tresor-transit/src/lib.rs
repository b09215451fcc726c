//! Vault's transit secrets engine: encryption, signing and HMAC as a service with named, rotating keys.

#![forbid(unsafe_code)]

use std::sync::Arc;

use tresor_sdk::LogicalBackend;

/// The engine, ready to mount.
pub fn backend() -> Arc<dyn LogicalBackend> {
    todo!("tresor-transit")
}
