//! `token-create` and `token-lookup`: the token store under load.
//!
//! Both work under a parent token that setup creates with the caller's token (policy `root`,
//! so it may hand out any policy). Every token the benchmark makes is that parent's child, and
//! cleanup revokes the parent, which revokes the whole tree: nothing is left behind however
//! many tokens the run created.

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Uri};
use http_body_util::Full;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{BoxFuture, Kind, SetupContext, Workload};
use crate::client::{Api, Target, Token};
use crate::error::BenchError;

/// The `token-create` registry entry.
pub const CREATE: Kind = Kind {
    name: "token-create",
    aliases: &["token_create"],
    summary: "create a service token (ttl = \"1h\", policies = [\"default\"])",
    needs_token: true,
    check_config: check_create,
    setup: setup_create,
};

/// The `token-lookup` registry entry.
pub const LOOKUP: Kind = Kind {
    name: "token-lookup",
    aliases: &["token_lookup"],
    summary: "look up a token with auth/token/lookup (numtokens = 100)",
    needs_token: true,
    check_config: check_lookup,
    setup: setup_lookup,
};

/// `token-create` options.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateConfig {
    /// The TTL of each created token.
    #[serde(default = "default_ttl")]
    ttl: String,
    /// The policies of each created token.
    #[serde(default = "default_policies")]
    policies: Vec<String>,
}

/// `token-lookup` options.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LookupConfig {
    /// How many tokens to create and look up in turn.
    #[serde(default = "default_numtokens")]
    numtokens: usize,
}

fn default_ttl() -> String {
    "1h".into()
}

fn default_policies() -> Vec<String> {
    vec!["default".into()]
}

fn default_numtokens() -> usize {
    100
}

fn check_create(v: &Value) -> Result<(), String> {
    let c: CreateConfig = super::parse_config(v)?;
    if c.ttl.is_empty() {
        return Err("ttl must not be empty".into());
    }
    Ok(())
}

fn check_lookup(v: &Value) -> Result<(), String> {
    let c: LookupConfig = super::parse_config(v)?;
    if c.numtokens == 0 {
        return Err("numtokens must be at least 1".into());
    }
    Ok(())
}

/// Reads `auth.client_token` from a token-creation response.
pub(crate) fn client_token(resp: &Value, workload: &str) -> Result<Token, BenchError> {
    resp.pointer("/auth/client_token")
        .and_then(Value::as_str)
        .map(|s| Token::new(s.to_owned()))
        .ok_or_else(|| BenchError::Server {
            context: format!("{workload}: creating a token"),
            message: "the response has no auth.client_token".into(),
        })
}

/// Revokes `token` and its children.
pub(crate) async fn revoke(api: &Api, token: &Token) -> Result<(), BenchError> {
    api.check(
        "revoking a benchmark token",
        api.client().revoke_token(token.expose()),
    )
    .await
}

/// Creates the parent token every token of this workload descends from.
async fn create_parent(ctx: &SetupContext) -> Result<Token, BenchError> {
    if ctx.api.token().is_none() {
        return Err(BenchError::NoToken(ctx.name.clone()));
    }
    let resp = ctx
        .api
        .expect_ok(
            &format!("{}: creating the parent token", ctx.name),
            Method::POST,
            "auth/token/create",
            Some(&json!({
                "policies": ["root"],
                "ttl": "24h",
                "display_name": "tresor-bench-parent",
                "meta": { "tresor-bench": ctx.unique },
            })),
            None,
        )
        .await?;
    client_token(&resp, &ctx.name)
}

/// `token-create` after setup.
struct TokenCreate {
    uri: Uri,
    body: Bytes,
    parent: Token,
    parent_header: HeaderValue,
}

fn setup_create(ctx: SetupContext) -> BoxFuture<'static, Result<Box<dyn Workload>, BenchError>> {
    Box::pin(async move {
        let cfg: CreateConfig = super::config_of(&ctx)?;
        let parent = create_parent(&ctx).await?;
        let body = json!({
            "policies": cfg.policies,
            "ttl": cfg.ttl,
            "display_name": "tresor-bench",
        });
        Ok(Box::new(TokenCreate {
            uri: Uri::from_static("/v1/auth/token/create"),
            body: Bytes::from(serde_json::to_vec(&body).unwrap_or_default()),
            parent_header: parent.header()?,
            parent,
        }) as Box<dyn Workload>)
    })
}

#[async_trait::async_trait]
impl Workload for TokenCreate {
    fn request(&self, target: &Target, _worker: usize, _seq: u64) -> Request<Full<Bytes>> {
        let mut req = target.request(
            Method::POST,
            self.uri.clone(),
            Some(&self.parent_header),
            self.body.clone(),
        );
        req.headers_mut().insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        req
    }

    async fn cleanup(&self, api: &Api) -> Result<(), BenchError> {
        revoke(api, &self.parent).await
    }
}

/// `token-lookup` after setup.
struct TokenLookup {
    uri: Uri,
    /// One `{"token": "..."}` body per created token.
    bodies: Vec<Bytes>,
    caller: HeaderValue,
    parent: Token,
}

fn setup_lookup(ctx: SetupContext) -> BoxFuture<'static, Result<Box<dyn Workload>, BenchError>> {
    Box::pin(async move {
        let cfg: LookupConfig = super::config_of(&ctx)?;
        let caller = ctx
            .api
            .token()
            .ok_or_else(|| BenchError::NoToken(ctx.name.clone()))?
            .header()?;
        let parent = create_parent(&ctx).await?;
        let made = create_children(&ctx, &parent, cfg.numtokens).await;
        let tokens = match made {
            Ok(t) => t,
            Err(e) => {
                let _ = revoke(&ctx.api, &parent).await;
                return Err(e);
            }
        };
        let bodies = tokens
            .iter()
            .map(|t| {
                Bytes::from(serde_json::to_vec(&json!({ "token": t.expose() })).unwrap_or_default())
            })
            .collect();
        Ok(Box::new(TokenLookup {
            uri: Uri::from_static("/v1/auth/token/lookup"),
            bodies,
            caller,
            parent,
        }) as Box<dyn Workload>)
    })
}

async fn create_children(
    ctx: &SetupContext,
    parent: &Token,
    count: usize,
) -> Result<Vec<Token>, BenchError> {
    let mut tokens = Vec::with_capacity(count);
    for _ in 0..count {
        let resp = ctx
            .api
            .expect_ok(
                &format!("{}: creating tokens to look up", ctx.name),
                Method::POST,
                "auth/token/create",
                Some(&json!({ "policies": ["default"], "ttl": "2h" })),
                Some(parent),
            )
            .await?;
        tokens.push(client_token(&resp, &ctx.name)?);
    }
    Ok(tokens)
}

#[async_trait::async_trait]
impl Workload for TokenLookup {
    fn request(&self, target: &Target, worker: usize, seq: u64) -> Request<Full<Bytes>> {
        let i = ((worker as u64).wrapping_mul(31).wrapping_add(seq) % self.bodies.len() as u64)
            as usize;
        let mut req = target.request(
            Method::POST,
            self.uri.clone(),
            Some(&self.caller),
            self.bodies[i].clone(),
        );
        req.headers_mut().insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        req
    }

    async fn cleanup(&self, api: &Api) -> Result<(), BenchError> {
        revoke(api, &self.parent).await
    }
}
