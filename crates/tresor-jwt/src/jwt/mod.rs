//! The JWT/OIDC auth method (`auth/jwt`, `auth/oidc`): logins with a signed JWT, and the
//! OIDC authorization code flow with PKCE.
//!
//! Module map: `store` (what a mount persists), `provider` (the configured key source:
//! PEM keys, JWKS endpoints or OIDC discovery, with the JWKS cache), `state` (what handlers
//! share), `config`, `role`, `login` (checks shared by both flows, and renewal), `oidc`
//! (`oidc/auth_url`, `oidc/callback`). This file holds the path table.

mod config;
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
use tresor_sdk::framework::{Field, Kind, Path, Table};
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

fn f(name: &'static str, kind: Kind, desc: &'static str) -> Field {
    Field::new(name, kind, desc)
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
        .field(f("oidc_discovery_url", Kind::Str, "The OIDC discovery URL, without the .well-known part. Exclusive with jwks_url and jwt_validation_pubkeys."))
        .field(f("oidc_discovery_ca_pem", Kind::Str, "PEM CA certificates to trust for the discovery URL (default: the system's)."))
        .field(f("oidc_client_id", Kind::Str, "The OAuth client ID, for OIDC roles."))
        .field(f("oidc_client_secret", Kind::Str, "The OAuth client secret, for OIDC roles. Never returned."))
        .field(f("oidc_response_mode", Kind::Str, "\"query\" (default) or \"form_post\"."))
        .field(f("oidc_response_types", Kind::List, "\"code\" (default), or \"id_token\" with form_post."))
        .field(f("jwks_url", Kind::Str, "A JWKS URL to fetch verification keys from. Exclusive with oidc_discovery_url and jwt_validation_pubkeys."))
        .field(f("jwks_ca_pem", Kind::Str, "PEM CA certificates to trust for jwks_url (default: the system's)."))
        .field(f("jwks_pairs", Kind::Raw, "Several JWKS endpoints: a list of {jwks_url, jwks_ca_pem} objects. Exclusive with jwks_url."))
        .field(f("jwt_validation_pubkeys", Kind::List, "PEM public keys (or certificates) to verify JWTs with. Exclusive with the URLs."))
        .field(f("jwt_supported_algs", Kind::List, "Allowed signing algorithms (default: every asymmetric one for JWT logins, RS256 for OIDC ID tokens)."))
        .field(f("bound_issuer", Kind::Str, "The iss claim every token must have."))
        .field(f("default_role", Kind::Str, "The role used when a login names none."))
        .field(f("provider_config", Kind::Map, "Provider-specific settings (stored and shown; no provider-specific behaviour yet)."))
        .field(f("namespace_in_state", Kind::Bool, "Vault Enterprise namespaces in the OIDC state (stored; Tresor has no namespaces).").default(Value::Bool(true)))
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
        Path::<Engine>::new("role/{name}")
            .field(f("name", Kind::Str, "Name of the role."))
            .field(f("role_type", Kind::Str, "\"oidc\" (default) or \"jwt\"."))
            .field(f("bound_audiences", Kind::List, "A token's aud claim must contain one of these (for OIDC: default the client ID)."))
            .field(f("bound_subject", Kind::Str, "The sub claim a token must have."))
            .field(f("bound_claims", Kind::Map, "Claims a token must have: a claim name (or JSON pointer) to a value or a list of values."))
            .field(f("bound_claims_type", Kind::Str, "\"string\" (default: values match exactly) or \"glob\" (values are * patterns)."))
            .field(f("claim_mappings", Kind::StrMap, "Claims (names or JSON pointers) copied into the alias and token metadata, as claim=metadata_key."))
            .field(f("user_claim", Kind::Str, "The claim whose value names the identity alias (required)."))
            .field(f("user_claim_json_pointer", Kind::Bool, "Read user_claim as a JSON pointer."))
            .field(f("groups_claim", Kind::Str, "The claim (name or JSON pointer) listing the user's groups: each becomes an external group alias."))
            .field(f("oidc_scopes", Kind::List, "Scopes asked for in the OIDC flow besides openid."))
            .field(f("allowed_redirect_uris", Kind::List, "Redirect URIs the OIDC flow may use (required for OIDC roles)."))
            .field(f("verbose_oidc_logging", Kind::Bool, "Log the claims of OIDC logins (for debugging; they may be personal data)."))
            .field(f("clock_skew_leeway", Kind::Raw, "Seconds of clock skew allowed on every time claim (0: 60 seconds, -1: none)."))
            .field(f("expiration_leeway", Kind::Raw, "Seconds past exp still accepted (0: 150 seconds, -1: none)."))
            .field(f("not_before_leeway", Kind::Raw, "Seconds before nbf already accepted (0: 150 seconds, -1: none)."))
            .field(f("max_age", Kind::Duration, "For OIDC roles: the longest time since the user last authenticated at the provider.")),
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
            .field(f("role", Kind::Str, "The role to log in with (default: the config's default_role)."))
            .field(f("jwt", Kind::Str, "The signed JWT."))
            .op(Update, h!(login))
            .help(
                "Log in with a signed JWT.",
                "Verifies the token's signature with the configured keys, its times, issuer, audience, subject and the role's bound claims, and issues a token with the role's settings. The role must be a jwt role.",
            ),
        Path::<Engine>::new("oidc/auth_url")
            .field(f("role", Kind::Str, "The OIDC role (default: the config's default_role)."))
            .field(f("redirect_uri", Kind::Str, "Where the provider sends the browser back; one of the role's allowed_redirect_uris."))
            .field(f("client_nonce", Kind::Str, "A value the client must present again at the callback."))
            .op(Update, h!(auth_url))
            .help(
                "Start an OIDC login.",
                "Answers the provider's authorization URL, with a fresh state, nonce and PKCE challenge. The state is good for five minutes and one callback.",
            ),
        Path::<Engine>::new("oidc/callback")
            .field(f("state", Kind::Str, "The state from the authorization URL."))
            .field(f("code", Kind::Str, "The authorization code."))
            .field(f("id_token", Kind::Str, "The ID token (response type id_token with form_post)."))
            .field(f("client_nonce", Kind::Str, "The client_nonce given to auth_url."))
            .field(f("error", Kind::Str, "An error the provider reported."))
            .field(f("error_description", Kind::Str, "The provider's description of the error."))
            .op(Read, h!(callback))
            .op(Update, h!(callback))
            .help(
                "Finish an OIDC login.",
                "Exchanges the code at the provider's token endpoint, checks the ID token and its nonce, and issues a token with the role's settings. GET takes the query the provider redirects with; POST serves response_mode form_post.",
            ),
    ];
    Table {
        paths,
        special: SpecialPaths {
            unauthenticated: vec![
                "login".into(),
                "oidc/auth_url".into(),
                "oidc/callback".into(),
            ],
            root: Vec::new(),
        },
        help: HELP,
    }
}
