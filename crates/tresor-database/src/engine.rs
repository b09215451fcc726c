//! The engine's shared state: one pool per configured connection (built on first use, rebuilt
//! when the config changes, closed on cleanup), the clock, the password generator, and the
//! locks that keep two rotations of one credential from interleaving.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tresor_sdk::clock::Clock;
use tresor_sdk::{LogicalError, Result, Storage};
use zeroize::Zeroizing;

use crate::db::{Db, Plugin, PoolSettings};
use crate::dsn::{self, MysqlTls};
use crate::password::PasswordPolicy;
use crate::store::{self, ConnConfig, StoredPolicy};

pub struct Engine {
    pub clock: Arc<dyn Clock>,
    pools: Mutex<HashMap<String, Arc<Db>>>,
    /// Serializes root rotations and static-role rotations (rare, and each must read the
    /// password the previous one stored).
    pub rotation: tokio::sync::Mutex<()>,
}

/// Builds a pool from a config (no connection is opened).
pub fn build_db(cfg: &ConnConfig) -> std::result::Result<Db, String> {
    let plugin = Plugin::from_name(&cfg.plugin_name)?;
    let spec = match plugin {
        Plugin::Postgres => dsn::postgres(&cfg.connection_url, &cfg.username, &cfg.password)?,
        Plugin::Mysql { .. } => dsn::mysql(
            &cfg.connection_url,
            &cfg.username,
            &cfg.password,
            &MysqlTls {
                ca_pem: cfg.tls_ca.clone(),
                cert_key_pem: cfg.tls_certificate_key.clone(),
            },
        )?,
    };
    let max_open = usize::try_from(cfg.max_open_connections.max(1)).unwrap_or(4);
    let max_idle = match cfg.max_idle_connections {
        0 => max_open,
        n if n < 0 => 0,
        n => usize::try_from(n).unwrap_or(max_open).min(max_open),
    };
    let settings = PoolSettings {
        max_open,
        max_idle,
        lifetime: (cfg.max_connection_lifetime > 0)
            .then(|| Duration::from_secs(cfg.max_connection_lifetime)),
    };
    Db::new(plugin, spec, settings, &cfg.password)
}

impl Engine {
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        Engine {
            clock,
            pools: Mutex::new(HashMap::new()),
            rotation: tokio::sync::Mutex::new(()),
        }
    }

    pub fn now(&self) -> i64 {
        tresor_sdk::clock::unix(self.clock.now())
    }

    pub async fn config(&self, s: &dyn Storage, name: &str) -> Result<Option<ConnConfig>> {
        store::load(s, "database config", &format!("{}{name}", store::CONFIG)).await
    }

    /// The connection's config and pool; the pool is built on first use.
    pub async fn pool(&self, s: &dyn Storage, name: &str) -> Result<(ConnConfig, Arc<Db>)> {
        let cfg = self
            .config(s, name)
            .await?
            .ok_or_else(|| LogicalError::invalid(format!("unknown database {name:?}")))?;
        if let Some(db) = self.pools.lock().get(name) {
            return Ok((cfg, db.clone()));
        }
        let db = Arc::new(build_db(&cfg).map_err(LogicalError::InvalidRequest)?);
        let db = self
            .pools
            .lock()
            .entry(name.to_owned())
            .or_insert(db)
            .clone();
        Ok((cfg, db))
    }

    /// Puts `db` (or nothing) in place of the connection's pool and closes the old one.
    pub async fn replace_pool(&self, name: &str, db: Option<Arc<Db>>) {
        let old = {
            let mut pools = self.pools.lock();
            match db {
                Some(db) => pools.insert(name.to_owned(), db),
                None => pools.remove(name),
            }
        };
        if let Some(old) = old {
            old.close().await;
        }
    }

    /// Closes every pool.
    pub async fn close_all(&self) {
        let all: Vec<Arc<Db>> = self.pools.lock().drain().map(|(_, d)| d).collect();
        for db in all {
            db.close().await;
        }
    }

    /// The policy a connection's passwords follow: the named one from
    /// `sys/policies/password` (Vault's meaning of `password_policy`), else from this mount's
    /// own `password_policies/` (kept from before engines could read the system's), or the
    /// default when none is named.
    pub async fn policy(
        &self,
        s: &dyn Storage,
        system: Option<&dyn tresor_sdk::SystemView>,
        name: &str,
    ) -> Result<PasswordPolicy> {
        if name.is_empty() {
            return Ok(PasswordPolicy::default_policy());
        }
        let text = match system {
            Some(sys) => sys.password_policy(name).await?,
            None => None,
        };
        let text = match text {
            Some(t) => t,
            None => {
                let stored: StoredPolicy =
                    store::load(s, "password policy", &format!("{}{name}", store::POLICIES))
                        .await?
                        .ok_or_else(|| {
                            LogicalError::invalid(format!(
                                "password policy {name:?} not found: write it to sys/policies/password/{name}"
                            ))
                        })?;
                stored.policy
            }
        };
        PasswordPolicy::parse(&text)
            .map_err(|e| LogicalError::Internal(format!("stored password policy {name:?}: {e}")))
    }

    /// A fresh password for a connection.
    pub async fn password(
        &self,
        s: &dyn Storage,
        system: Option<&dyn tresor_sdk::SystemView>,
        cfg: &ConnConfig,
    ) -> Result<Zeroizing<String>> {
        self.policy(s, system, &cfg.password_policy)
            .await?
            .generate()
            .map_err(LogicalError::Internal)
    }
}
