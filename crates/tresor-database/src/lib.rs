//! Vault's database secrets engine: leased and static credentials for PostgreSQL and MariaDB/MySQL.

#![forbid(unsafe_code)]

use std::sync::Arc;

use tresor_sdk::LogicalBackend;

/// The engine, ready to mount.
pub fn backend() -> Arc<dyn LogicalBackend> {
    todo!("tresor-database")
}
