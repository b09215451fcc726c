//! The Kubernetes auth method (`auth/kubernetes`): pods log in with their service-account
//! JWT, which the Kubernetes API server confirms through the TokenReview API.
//!
//! Module map: `store` (what a mount persists), `engine` (the handlers). This file holds the
//! path table.

mod engine;
mod inputs;
mod store;

use std::sync::Arc;

use async_trait::async_trait;
use serde_json::{Map, Value};
use tresor_sdk::clock::Clock;
use tresor_sdk::framework::{Path, Table};
use tresor_sdk::token::TokenParams;
use tresor_sdk::{
    Context, LogicalBackend, LogicalError, Operation, Request, Response, Result, SpecialPaths,
};

use engine::Engine;

/// The method. Logins defer every time check to the API server's TokenReview, so the clock
/// is not consulted.
pub(crate) fn backend(_clock: Arc<dyn Clock>) -> Arc<dyn LogicalBackend> {
    Arc::new(Kubernetes {
        engine: Arc::new(Engine::new()),
        table: table(),
    })
}

struct Kubernetes {
    engine: Arc<Engine>,
    table: Table<Engine>,
}

#[async_trait]
impl LogicalBackend for Kubernetes {
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
    async fn invalidate(&self, _ctx: &Context, key: &str) {
        if key == store::CONFIG_KEY {
            self.engine.forget();
        }
    }
    async fn cleanup(&self) {
        self.engine.forget();
    }
}

macro_rules! h {
    ($method:ident) => {
        |e, r, fl| Box::pin(async move { e.$method(r, fl).await })
    };
}

const HELP: &str = "
The Kubernetes auth method lets pods log in with their service-account token. The Kubernetes
API server confirms each token through its TokenReview API; roles bind service account names
and namespaces and set the token a login gets.";

fn table() -> Table<Engine> {
    use Operation::*;
    let role = TokenParams::add_fields(
        Path::<Engine>::new("role/{name}").input::<inputs::RoleInput>(),
    )
    .existence(h!(role_exists))
    .op(Read, h!(role_read))
    .op(Update, h!(role_write))
    .op(Delete, h!(role_delete))
    .help(
        "Create, read, update or delete a role.",
        "A role binds service account names and namespaces (both required) and sets the token a login gets. Beyond Vault, review_mode local_keys lets the config's pem_keys decide logins without a TokenReview. An update changes only the fields it sends.",
    );
    let paths = vec![
        Path::<Engine>::new("config")
            .input::<inputs::ConfigInput>()
            .op(Read, h!(config_read))
            .op(Update, h!(config_write))
            .help(
                "Configure the Kubernetes method.",
                "Sets the API server that reviews tokens and how to reach it. A write replaces the whole configuration; a bad URL or key, or a reviewer token an Authorization header cannot carry, is refused and stores nothing. So is a CA certificate with no usable certificate in it (the API docs' placeholder among them), as Vault 1.17 and later refuse it. A read shows whether a reviewer JWT is set, never the JWT. Beyond Vault, token_reviewer_jwt_file names a file holding the reviewer JWT (a projected token), read again whenever it changes.",
            ),
        Path::<Engine>::new("role").op(List, h!(role_list)).help("List the roles.", "The names of the roles of this mount."),
        role,
        Path::<Engine>::new("login")
            .input::<inputs::LoginInput>()
            .op(Update, h!(login))
            .help(
                "Log in with a service-account JWT.",
                "Checks the token's service account against the role and asks the API server (TokenReview) whether the token is valid; issues a token with the role's settings.",
            ),
    ];
    Table {
        paths,
        special: SpecialPaths {
            unauthenticated: vec!["login".into()],
            root: Vec::new(),
        },
        help: HELP,
    }
}
