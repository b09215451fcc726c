//! A write-ahead entry for each user being created (`wal/<hex of the username>`), so that a
//! server that stops between `CREATE` and the lease being stored does not leave a user nobody
//! will drop: the entry is written before the creation statements run and deleted once they
//! have (or have been rolled back). An entry older than [`MIN_AGE`] belongs to a creation that
//! never finished; the periodic pass drops its user with the role's revocation statements (or
//! the default ones) and forgets it.

use serde::{Deserialize, Serialize};
use tresor_sdk::{Context, Result};

use crate::engine::Engine;
use tresor_sdk::record::Versioned;

use crate::store;

pub const WAL: &str = "wal/";

/// How old an entry must be before it is taken for an interrupted creation (Vault's minimum
/// rollback age): no creation takes that long.
pub const MIN_AGE: i64 = 600;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WalEntry {
    pub version: u32,
    pub db_name: String,
    pub role: String,
    pub username: String,
    /// Unix seconds.
    pub created: i64,
}

impl Versioned for WalEntry {
    const FORMAT: u32 = 1;
    fn format(&self) -> u32 {
        self.version
    }
}

fn hex_of(username: &str) -> String {
    username.bytes().map(|b| format!("{b:02x}")).collect()
}

pub fn key(username: &str) -> String {
    format!("{WAL}{}", hex_of(username))
}

impl Engine {
    /// Drops the users of creations that never finished; entries whose database or role is
    /// gone are dropped with the default statements where the database still exists.
    pub async fn rollback_stale(&self, ctx: &Context) -> Result<()> {
        let s = &*ctx.storage;
        let now = tresor_sdk::clock::unix(ctx.now);
        let mut first_err = None;
        for k in s.list(WAL).await? {
            let key = format!("{WAL}{k}");
            let Some(e): Option<WalEntry> = store::load(s, "database WAL entry", &key).await?
            else {
                continue;
            };
            if e.created + MIN_AGE > now {
                continue;
            }
            let stmts = match self.role(s, &e.role).await? {
                Some(r) if r.db_name == e.db_name => r.revocation_statements,
                _ => Vec::new(),
            };
            match self.pool(s, &e.db_name).await {
                Ok((_, db)) => match db.revoke_user(&e.username, &stmts).await {
                    Ok(()) => {
                        tracing::info!(user = %e.username, db = %e.db_name, "dropped the user of an interrupted creation");
                        s.delete(&key).await?;
                    }
                    Err(err) => {
                        tracing::warn!(user = %e.username, error = %err, "could not drop the user of an interrupted creation; will retry");
                        first_err
                            .get_or_insert(tresor_sdk::LogicalError::Internal(err.to_string()));
                    }
                },
                // The connection was deleted: nothing left to reach the user through.
                Err(_) if self.config(s, &e.db_name).await?.is_none() => s.delete(&key).await?,
                Err(err) => {
                    first_err.get_or_insert(err);
                }
            }
        }
        first_err.map_or(Ok(()), Err)
    }
}
