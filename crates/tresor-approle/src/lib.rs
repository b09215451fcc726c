//! Vault's AppRole auth method: machines log in with a role ID (which names a role) and a
//! secret ID (a credential issued for that role, which may be limited in uses, lifetime and
//! client addresses), and get a token with the role's `token_*` settings.
//!
//! Module map: `engine` (shared state: clock, locks, salt; checks several paths need),
//! `store` (storage layout and versioned records), `role` (roles, per-field sub-paths,
//! `role-id`), `secret_id` (generate, custom, list, lookup, destroy, by accessor), `login`
//! (login and token renewal), `tidy`. This file holds the path table and the
//! [`LogicalBackend`] the core mounts.
//!
//! Differences from Vault, all deliberate: a lookup of a secret ID that does not exist (or
//! has expired) is a 404 instead of an empty 204; `tidy/secret-id` answers 200 with its
//! warning (Vault: 202). `local_secret_ids` is stored and shown; with no replication it
//! changes nothing else.

#![forbid(unsafe_code)]

mod engine;
mod inputs;
mod login;
mod role;
mod secret_id;
mod store;
mod tidy;

use std::sync::Arc;

use async_trait::async_trait;
use serde_json::{Map, Value};
use tresor_sdk::clock::{Clock, SystemClock};
use tresor_sdk::framework::{Path, Table};
use tresor_sdk::token::TokenParams;
use tresor_sdk::{
    Context, LogicalBackend, LogicalError, Operation, Request, Response, Result, SpecialPaths,
};

use engine::Engine;
use inputs::{
    AccessorInput, LoginInput, NewSecretIdInput, RoleIdInput, RoleInput, RoleNameInput,
    SecretIdInput,
};
use role::Prop;

/// The auth method on the system clock, ready to mount.
pub fn backend() -> Arc<dyn LogicalBackend> {
    backend_with_clock(Arc::new(SystemClock))
}

/// The auth method reading time from `clock` (tests pass a clock they control).
pub fn backend_with_clock(clock: Arc<dyn Clock>) -> Arc<dyn LogicalBackend> {
    Arc::new(AppRole {
        engine: Arc::new(Engine::new(clock)),
        table: table(),
    })
}

struct AppRole {
    engine: Arc<Engine>,
    table: Table<Engine>,
}

#[async_trait]
impl LogicalBackend for AppRole {
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

    fn canonical_path(&self, path: &str) -> Option<String> {
        self.table.canonical_path(path)
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

    async fn renew_auth(&self, req: Request) -> Result<Option<Response>> {
        self.engine.renew(&req).await
    }

    /// A login names its role by `role_id`: the role it belongs to, for quotas with a role.
    async fn resolve_role(
        &self,
        ctx: &Context,
        path: &str,
        data: &Map<String, Value>,
    ) -> Result<Option<String>> {
        if path.trim_end_matches('/') != "login" {
            return Ok(None);
        }
        let role_id = data
            .get("role_id")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .trim();
        self.engine.role_of(ctx, role_id).await
    }

    /// Creates the mount's salt, so the first login does not have to.
    async fn initialize(&self, ctx: &Context) -> Result<()> {
        self.engine
            .salt(&engine::mount_of(&ctx.mount), &*ctx.storage)
            .await
            .map(|_| ())
    }

    async fn invalidate(&self, ctx: &Context, key: &str) {
        if key == store::SALT_KEY {
            self.engine.forget_salt(&engine::mount_of(&ctx.mount));
        }
    }

    /// The secret ID tidy, once a minute on the active node.
    async fn periodic(&self, ctx: &Context) -> Result<()> {
        let now = tresor_sdk::clock::unix(ctx.now);
        self.engine
            .tidy_mount(&engine::mount_of(&ctx.mount), &*ctx.storage, now)
            .await
            .map(|_| ())
    }

    async fn cleanup(&self) {
        self.engine.forget_all();
    }
}

// ---------------------------------------------------------------------------------------------
// The path table.

/// A path under `role/{role_name}`, with the name folded as Vault folds role names.
fn role_path(pattern: &'static str) -> Path<Engine> {
    Path::new(pattern)
        .case_insensitive("role_name")
        .input::<RoleNameInput>()
}

macro_rules! h {
    ($method:ident) => {
        |e, r, fl| Box::pin(async move { e.$method(r, fl).await })
    };
    ($method:ident, $arg:expr) => {
        |e, r, fl| Box::pin(async move { e.$method(r, fl, $arg).await })
    };
}

/// `role/{role_name}/<sub>` for one setting: read, update, delete.
macro_rules! prop_path {
    ($pattern:literal, $prop:expr, $synopsis:literal, $desc:literal) => {{
        $prop
            .declare(role_path($pattern))
            .op(Operation::Read, |e, r, fl| {
                Box::pin(async move { e.prop_read($prop, r, fl).await })
            })
            .op(Operation::Update, |e, r, fl| {
                Box::pin(async move { e.prop_update($prop, r, fl).await })
            })
            .op(Operation::Delete, |e, r, fl| {
                Box::pin(async move { e.prop_delete($prop, r, fl).await })
            })
            .help($synopsis, $desc)
    }};
}

const BACKEND_HELP: &str = "
The AppRole auth method lets machines and services log in with a role ID and a secret ID.

A role sets the constraints of a login (a secret ID is required unless bind_secret_id is off;
client addresses may be bound with secret_id_bound_cidrs) and the settings of the tokens it
gives (token_policies, token_ttl, ...). The role ID names the role; secret IDs are issued per
role, optionally limited in uses, lifetime and client addresses, and can be response-wrapped
for delivery.";

fn table() -> Table<Engine> {
    use Operation::*;
    let role = TokenParams::add_fields(
        role_path("role/{role_name}").input::<RoleInput>(),
    )
    .existence(h!(role_exists))
    .op(Create, h!(role_write))
    .op(Update, h!(role_write))
    .op(Read, h!(role_read))
    .op(Delete, h!(role_delete))
    .help(
        "Create, read, update or delete an AppRole.",
        "A role's constraints decide who may log in with it; its token_* settings decide the token a login gets. At least one constraint is required: bind_secret_id, secret_id_bound_cidrs or token_bound_cidrs. Fields not sent keep their values when the role exists. Deleting a role deletes its secret IDs.",
    );

    let paths = vec![
        Path::<Engine>::new("login")
            .input::<LoginInput>()
            .op(Update, h!(login))
            .help(
                "Log in with a role ID and a secret ID.",
                "Issues a token with the role's settings. role_id is always required; secret_id too when the role binds one. The client's address must be within the role's secret_id_bound_cidrs and the secret ID's cidr_list. A wrong role ID or secret ID, an expired or used-up secret ID all give the same error: invalid role or secret ID.",
            ),
        Path::<Engine>::new("role").op(List, h!(role_list)).help(
            "List the AppRoles.",
            "The names of the roles of this mount.",
        ),
        role_path("role/{role_name}/role-id")
            .input::<RoleIdInput>()
            .op(Read, h!(role_id_read))
            .op(Update, h!(role_id_update))
            .help(
                "Read or set the role ID of a role.",
                "The role ID names the role at login. Setting it replaces the old one, which then logs in no more; a role ID in use by another role is refused.",
            ),
        prop_path!(
            "role/{role_name}/policies",
            Prop::Policies,
            "The token_policies of a role.",
            "Read, set or clear the policies of the tokens this role's logins get."
        ),
        role_path("role/{role_name}/local-secret-ids")
            .op(Read, |e, r, fl| {
                Box::pin(async move { e.prop_read(Prop::LocalSecretIds, r, fl).await })
            })
            .help(
                "Whether a role's secret IDs are local to this cluster.",
                "Set when the role is created, and never after.",
            ),
        prop_path!(
            "role/{role_name}/bound-cidr-list",
            Prop::BoundCidrList,
            "Deprecated: the secret_id_bound_cidrs of a role.",
            "Use role/:role_name/secret-id-bound-cidrs."
        ),
        prop_path!(
            "role/{role_name}/secret-id-bound-cidrs",
            Prop::SecretIdBoundCidrs,
            "The secret_id_bound_cidrs of a role.",
            "Read, set or clear the CIDR blocks of the addresses that may log in with this role."
        ),
        prop_path!(
            "role/{role_name}/token-bound-cidrs",
            Prop::TokenBoundCidrs,
            "The token_bound_cidrs of a role.",
            "Read, set or clear the CIDR blocks the issued tokens work from."
        ),
        prop_path!(
            "role/{role_name}/bind-secret-id",
            Prop::BindSecretId,
            "The bind_secret_id of a role.",
            "Read, set or reset (to true) whether a login needs a secret ID."
        ),
        prop_path!(
            "role/{role_name}/secret-id-num-uses",
            Prop::SecretIdNumUses,
            "The secret_id_num_uses of a role.",
            "Read, set or clear how many logins new secret IDs allow by default."
        ),
        prop_path!(
            "role/{role_name}/secret-id-ttl",
            Prop::SecretIdTtl,
            "The secret_id_ttl of a role.",
            "Read, set or clear how long new secret IDs live by default."
        ),
        prop_path!(
            "role/{role_name}/period",
            Prop::Period,
            "The token_period of a role.",
            "Read, set or clear the period of the issued tokens."
        ),
        prop_path!(
            "role/{role_name}/token-num-uses",
            Prop::TokenNumUses,
            "The token_num_uses of a role.",
            "Read, set or clear how many requests an issued token may make."
        ),
        prop_path!(
            "role/{role_name}/token-ttl",
            Prop::TokenTtl,
            "The token_ttl of a role.",
            "Read, set or clear the initial TTL of the issued tokens (also applied at renewal)."
        ),
        prop_path!(
            "role/{role_name}/token-max-ttl",
            Prop::TokenMaxTtl,
            "The token_max_ttl of a role.",
            "Read, set or clear the maximum lifetime of the issued tokens."
        ),
        role_path("role/{role_name}/secret-id/lookup")
            .input::<SecretIdInput>()
            .op(Update, h!(secret_id_lookup))
            .help(
                "Read the properties of a secret ID.",
                "Shows the accessor, metadata, uses left, TTL and CIDR restrictions of a secret ID, never the secret ID itself. An unknown or expired secret ID is a 404.",
            ),
        role_path("role/{role_name}/secret-id/destroy")
            .input::<SecretIdInput>()
            .op(Update, h!(secret_id_destroy))
            .op(Delete, h!(secret_id_destroy))
            .help(
                "Destroy a secret ID.",
                "The secret ID logs in no more. Destroying one that does not exist succeeds.",
            ),
        role_path("role/{role_name}/secret-id-accessor/lookup")
            .input::<AccessorInput>()
            .op(Update, h!(accessor_lookup))
            .help(
                "Read the properties of a secret ID by its accessor.",
                "As secret-id/lookup, naming the secret ID by its accessor.",
            ),
        role_path("role/{role_name}/secret-id-accessor/destroy")
            .input::<AccessorInput>()
            .op(Update, h!(accessor_destroy))
            .op(Delete, h!(accessor_destroy))
            .help(
                "Destroy a secret ID by its accessor.",
                "As secret-id/destroy, naming the secret ID by its accessor.",
            ),
        role_path("role/{role_name}/secret-id")
            .input::<NewSecretIdInput>()
            .op(Update, h!(secret_id_create, false))
            .op(List, h!(secret_id_list))
            .help(
                "Generate a secret ID for a role, or list its secret IDs' accessors.",
                "A new secret ID is a random UUID, returned with its accessor (which names it without revealing it). Ask for it response-wrapped (X-Vault-Wrap-TTL) to hand it over safely. LIST shows the accessors of the role's secret IDs.",
            ),
        role_path("role/{role_name}/custom-secret-id")
            .input::<NewSecretIdInput>()
            .input::<SecretIdInput>()
            .op(Update, h!(secret_id_create, true))
            .help(
                "Register a secret ID of your choosing for a role.",
                "For the push model: the secret ID is given instead of generated. A secret ID already registered is refused.",
            ),
        role,
        Path::<Engine>::new("tidy/secret-id")
            .op(Update, h!(tidy_endpoint))
            .help(
                "Remove expired and dangling secret IDs.",
                "Starts a tidy in the background: expired secret IDs, secret IDs of deleted roles and accessors without a secret ID are removed. The same tidy runs once a minute on its own.",
            ),
    ];
    Table {
        paths,
        special: SpecialPaths {
            unauthenticated: vec!["login".into()],
            root: Vec::new(),
        },
        help: BACKEND_HELP,
    }
}
