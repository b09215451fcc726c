//! The JWT/OIDC auth method (`auth/jwt`, `auth/oidc`): logins with a signed JWT, and the
//! OIDC authorization code flow with PKCE.
//!
//! Module map: `store` (what a mount persists), `provider` (the configured key source:
//! PEM keys, JWKS endpoints or OIDC discovery, with the JWKS cache), `state` (what handlers
//! share), `config`, `role`, `login` (checks shared by both flows, and renewal), `oidc`
//! (`oidc/auth_url`, `oidc/callback`, and the device grant's `oidc/device_auth` and
//! `oidc/device_poll`). This file holds the path table.

mod config;
mod inputs;
mod login;
mod oidc;
mod provider;
mod role;
mod state;
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

use state::Engine;

pub(crate) fn backend(clock: Arc<dyn Clock>) -> Arc<dyn LogicalBackend> {
    Arc::new(Jwt {
        engine: Arc::new(Engine::new(clock)),
        table: table(),
    })
}

struct Jwt {
    engine: Arc<Engine>,
    table: Table<Engine>,
}

#[async_trait]
impl LogicalBackend for Jwt {
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
            self.engine.set_provider(None);
        } else if let Some(name) = key.strip_prefix(store::ROLE_PREFIX) {
            self.engine.forget_role(name);
        }
    }
    async fn cleanup(&self) {
        self.engine.forget_all();
    }
}

macro_rules! h {
    ($method:ident) => {
        |e, r, fl| Box::pin(async move { e.$method(r, fl).await })
    };
}

const HELP: &str = "
The JWT/OIDC auth method lets users and machines log in with a JSON Web Token signed by a key
the mount trusts (PEM public keys, JWKS endpoints, or an OIDC provider found by discovery), or
through an OIDC provider's browser flow (authorization code with PKCE). Roles bind what a token
must say (audience, subject, claims) and set the token a login gets; the user claim names the
identity alias and the groups claim the external groups.";

fn config_path() -> Path<Engine> {
    use Operation::*;
    Path::<Engine>::new("config")
        .input::<inputs::ConfigInput>()
        .op(Read, h!(config_read))
        .op(Update, h!(config_write))
        .help(
            "Configure the JWT/OIDC method.",
            "Sets where verification keys come from (exactly one of oidc_discovery_url, jwks_url or jwks_pairs, jwt_validation_pubkeys), the OIDC client and mount-wide defaults. A write replaces the whole configuration and is checked first: keys and CA certificates are parsed and URLs fetched, and a failed check stores nothing. A read never shows oidc_client_secret.",
        )
}

fn role_path() -> Path<Engine> {
    use Operation::*;
    TokenParams::add_fields(
        Path::<Engine>::new("role/{name}").input::<inputs::RoleInput>(),
    )
    .existence(h!(role_exists))
    .op(Read, h!(role_read))
    .op(Update, h!(role_write))
    .op(Delete, h!(role_delete))
    .help(
        "Create, read, update or delete a role.",
        "A role binds what a token must say (bound_audiences, bound_subject, bound_claims) and sets the token a login gets (token_*). user_claim names the identity alias; groups_claim the external groups; claim_mappings copy claims into metadata. An update changes only the fields it sends.",
    )
}

fn table() -> Table<Engine> {
    use Operation::*;
    let paths = vec![
        config_path(),
        Path::<Engine>::new("role")
            .op(List, h!(role_list))
            .help("List the roles.", "The names of the roles of this mount."),
        role_path(),
        Path::<Engine>::new("login")
            .input::<inputs::LoginInput>()
            .op(Update, h!(login))
            .help(
                "Log in with a signed JWT.",
                "Verifies the token's signature with the configured keys, its times, issuer, audience, subject and the role's bound claims, and issues a token with the role's settings. The role must be a jwt role.",
            ),
        Path::<Engine>::new("oidc/auth_url")
            .input::<inputs::AuthUrlInput>()
            .op(Update, h!(auth_url))
            .help(
                "Start an OIDC login.",
                "Answers the provider's authorization URL, with a fresh state, nonce and PKCE challenge. The state is good for five minutes and one callback.",
            ),
        Path::<Engine>::new("oidc/callback")
            .input::<inputs::CallbackInput>()
            .op(Read, h!(callback))
            .op(Update, h!(callback))
            .help(
                "Finish an OIDC login.",
                "Exchanges the code at the provider's token endpoint, checks the ID token and its nonce, and issues a token with the role's settings. GET takes the query the provider redirects with; POST serves response_mode form_post.",
            ),
        Path::<Engine>::new("oidc/device_auth")
            .input::<inputs::DeviceAuthInput>()
            .op(Update, h!(device_auth))
            .help(
                "Start an OIDC device login (beyond Vault).",
                "For a host without a browser: asks the provider's device authorization endpoint (RFC 8628) for a code with the mount's client credentials, and answers the user_code to enter at verification_uri (or verification_uri_complete) on any device, how long it stays valid, the polling interval, and a state for oidc/device_poll. The role must be an OIDC role; the provider's discovery document must name a device_authorization_endpoint.",
            ),
        Path::<Engine>::new("oidc/device_poll")
            .input::<inputs::DevicePollInput>()
            .op(Update, h!(device_poll))
            .help(
                "Finish an OIDC device login (beyond Vault).",
                "Asks the provider once whether the user approved the login started with oidc/device_auth. Until then it answers a 400 starting with authorization_pending (or slow_down when polled faster than the interval; wait 5 seconds more); after approval it checks the ID token as the callback does and issues a token with the role's settings. A state logs in once; access_denied and expired_token end it.",
            ),
    ];
    Table {
        paths,
        special: SpecialPaths {
            unauthenticated: vec![
                "login".into(),
                "oidc/auth_url".into(),
                "oidc/callback".into(),
                "oidc/device_auth".into(),
                "oidc/device_poll".into(),
            ],
            root: Vec::new(),
        },
        help: HELP,
    }
}
