//! Vault's database secrets engine: leased and static credentials for PostgreSQL and
//! MariaDB/MySQL.
//!
//! Module map, lowest first: `password` (password policies and unbiased generation),
//! `template` (statement placeholders and the username template language), `sql` (splitting
//! statements, quoting), `dsn` (connection URLs with `{{username}}`/`{{password}}`), `db`
//! (plugins, pools and the SQL the engine runs), `store` (storage layout and records),
//! `engine` (shared state: pools per connection, rotation lock); then the handlers: `config`
//! (connections, reset, rotate-root), `roles` (dynamic roles, creds, the lease's renew and
//! revoke), `static_roles` (static roles, static-creds, rotate-role, periodic rotation) and
//! `policies` (mount-local password policies). This file holds the path table and the
//! [`LogicalBackend`] the core mounts.
//!
//! `password_policy` names a policy of `sys/policies/password` (read through the mount's
//! system view), or of this mount's own `password_policies/` when the system has none.
//!
//! TLS to PostgreSQL follows the URL's `sslmode`, `sslrootcert`, `sslcert` and `sslkey` as
//! libpq does (`pgtls`).
//!
//! Static roles rotate every `rotation_period`, or on a cron `rotation_schedule` within an
//! optional `rotation_window` (`cron`).
//!
//! Differences from Vault: the engine talks to the databases itself (no plugin processes).

#![forbid(unsafe_code)]

mod config;
mod cron;
mod db;
mod dsn;
mod engine;
mod inputs;
use tresor_password as password;
mod pgtls;
mod policies;
mod roles;
mod sql;
mod static_roles;
mod store;
mod template;
mod wal;

use std::sync::Arc;

use async_trait::async_trait;
use serde_json::{Map, Value};
use tresor_sdk::clock::{Clock, SystemClock};
use tresor_sdk::framework::{Fields, Path, Table};
use tresor_sdk::{
    Context, LogicalBackend, LogicalError, Operation, Request, Response, Result, SpecialPaths,
};

use engine::Engine;

pub use password::PasswordPolicy;

/// The engine on the system clock, ready to mount.
pub fn backend() -> Arc<dyn LogicalBackend> {
    backend_with_clock(Arc::new(SystemClock))
}

/// The engine reading time from `clock` (tests pass a clock they control).
pub fn backend_with_clock(clock: Arc<dyn Clock>) -> Arc<dyn LogicalBackend> {
    Arc::new(Database {
        engine: Arc::new(Engine::new(clock)),
        table: table(),
    })
}

struct Database {
    engine: Arc<Engine>,
    table: Table<Engine>,
}

#[async_trait]
impl LogicalBackend for Database {
    async fn handle(&self, req: Request) -> Result<Option<Response>> {
        if req.operation == Operation::Help {
            let help = self
                .table
                .help(&req.path)
                .ok_or(LogicalError::UnsupportedPath)?;
            return Ok(Some(Response::data(help)));
        }
        self.table.handle(self.engine.clone(), req).await
    }

    async fn exists(&self, req: &Request) -> Result<Option<bool>> {
        self.table.exists(self.engine.clone(), req).await
    }

    fn special_paths(&self) -> SpecialPaths {
        self.table.special.clone()
    }

    fn help(&self, path: &str) -> Option<Map<String, Value>> {
        self.table.help(path)
    }

    fn openapi_paths(&self) -> Map<String, Value> {
        self.table.openapi_paths()
    }

    async fn renew_secret(&self, req: Request) -> Result<Option<Response>> {
        self.check_secret_type(&req)?;
        self.engine
            .clone()
            .creds_renew(req, Fields::default())
            .await
    }

    async fn revoke_secret(&self, req: Request) -> Result<Option<Response>> {
        self.check_secret_type(&req)?;
        self.engine
            .clone()
            .creds_revoke(req, Fields::default())
            .await
    }

    /// A connection's config changed on another server: its pool is rebuilt on next use.
    async fn invalidate(&self, _ctx: &Context, key: &str) {
        if let Some(name) = key.strip_prefix(store::CONFIG) {
            self.engine.replace_pool(name, None).await;
        }
    }

    /// Static-role rotation, once a minute on the active node.
    /// Static-role rotations that are due, and the users of interrupted creations.
    async fn periodic(&self, ctx: &Context) -> Result<()> {
        let rotated = self.engine.rotate_due(ctx).await;
        let rolled_back = self.engine.rollback_stale(ctx).await;
        rotated.and(rolled_back)
    }

    async fn cleanup(&self) {
        self.engine.close_all().await;
    }
}

impl Database {
    fn check_secret_type(&self, req: &Request) -> Result<()> {
        let t = req.secret.as_ref().map(|s| s.secret_type.as_str());
        if t != Some(roles::SECRET_CREDS) {
            return Err(LogicalError::invalid(format!(
                "unknown secret type {:?}",
                t.unwrap_or_default()
            )));
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// The path table.

macro_rules! h {
    ($method:ident) => {
        |e, r, fl| Box::pin(async move { e.$method(r, fl).await })
    };
}

const BACKEND_HELP: &str = "
The database secrets engine generates database credentials on demand. Configure a connection
with config/<name> (PostgreSQL or MySQL/MariaDB, with root credentials Tresor can rotate so no
person knows them), define roles with the SQL that creates a user, and read creds/<role>: each
read creates a user with a lease, and the user is dropped (and its sessions ended) when the
lease expires or is revoked. Static roles rotate the password of an existing account on a
schedule; static-creds/<role> always returns the password that works.";

fn table() -> Table<Engine> {
    use Operation::*;
    Table {
        paths: vec![
            Path::<Engine>::new("config")
                .op(List, h!(config_list))
                .help("List the configured connections.", ""),
            Path::<Engine>::new("config/{name}")
                .input::<inputs::ConfigInput>()
                .existence(|e, r, fl| Box::pin(async move { e.config_exists(r, fl).await }))
                .op(Create, h!(config_write))
                .op(Update, h!(config_write))
                .op(Read, h!(config_read))
                .op(Delete, h!(config_delete))
                .help(
                    "Configure a connection to a database.",
                    "Writes are verified by connecting first (verify_connection=false skips it); an unreachable database is refused and nothing is stored.",
                ),
            Path::<Engine>::new("reset/{name}")
                .input::<inputs::ConnNameInput>()
                .op(Update, h!(reset))
                .help("Close the connection's pool and open a new one from its config.", ""),
            Path::<Engine>::new("rotate-root/{name}")
                .input::<inputs::ConnNameInput>()
                .op(Update, h!(rotate_root))
                .help(
                    "Rotate the root user's password.",
                    "Sets a generated password on the database and stores it: afterwards only Tresor knows the root password.",
                ),
            Path::<Engine>::new("roles")
                .op(List, h!(role_list))
                .help("List the dynamic roles.", ""),
            Path::<Engine>::new("roles/{name}")
                .input::<inputs::RoleInput>()
                .existence(|e, r, fl| Box::pin(async move { e.role_exists(r, fl).await }))
                .op(Create, h!(role_write))
                .op(Update, h!(role_write))
                .op(Read, h!(role_read))
                .op(Delete, h!(role_delete))
                .help("Manage a dynamic role.", ""),
            Path::<Engine>::new("creds/{name}")
                .input::<inputs::RoleNameInput>()
                .op(Read, h!(creds))
                .help(
                    "Create a database user for the role, under a lease.",
                    "The user is dropped and its sessions ended when the lease expires or is revoked.",
                ),
            Path::<Engine>::new("static-roles")
                .op(List, h!(static_list))
                .help("List the static roles.", ""),
            Path::<Engine>::new("static-roles/{name}")
                .input::<inputs::StaticRoleInput>()
                .existence(|e, r, fl| Box::pin(async move { e.static_exists(r, fl).await }))
                .op(Create, h!(static_write))
                .op(Update, h!(static_write))
                .op(Read, h!(static_read))
                .op(Delete, h!(static_delete))
                .help(
                    "Manage a static role.",
                    "Creating a static role rotates the account's password at once.",
                ),
            Path::<Engine>::new("static-creds/{name}")
                .input::<inputs::StaticNameInput>()
                .op(Read, h!(static_creds))
                .help("The static role's current username and password.", ""),
            Path::<Engine>::new("rotate-role/{name}")
                .input::<inputs::StaticNameInput>()
                .op(Update, h!(rotate_role))
                .help("Rotate the static role's password now.", ""),
            Path::<Engine>::new("password_policies")
                .op(List, h!(policy_list))
                .help("List the mount's password policies.", ""),
            Path::<Engine>::new("password_policies/{name}/generate")
                .input::<inputs::PolicyNameInput>()
                .op(Read, h!(policy_generate))
                .help("Generate a password from the policy.", ""),
            Path::<Engine>::new("password_policies/{name}")
                .input::<inputs::PolicyInput>()
                .op(Update, h!(policy_write))
                .op(Read, h!(policy_read))
                .op(Delete, h!(policy_delete))
                .help(
                    "Manage a password policy for this mount's generated passwords.",
                    "The same HCL as Vault's sys/policies/password.",
                ),
        ],
        special: SpecialPaths::default(),
        help: BACKEND_HELP,
    }
}
