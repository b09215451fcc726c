//! Vault's TOTP secrets engine: time-based one-time password keys and codes.

#![forbid(unsafe_code)]

use std::sync::Arc;

use tresor_sdk::LogicalBackend;

/// The engine, ready to mount.
pub fn backend() -> Arc<dyn LogicalBackend> {
    todo!("tresor-totp")
}
