//! Vault's LDAP auth method: logins against a directory, its groups as identity group aliases.

#![forbid(unsafe_code)]

use std::sync::Arc;

use tresor_sdk::LogicalBackend;

/// The auth method, ready to mount.
pub fn backend() -> Arc<dyn LogicalBackend> {
    todo!("tresor-ldap")
}
