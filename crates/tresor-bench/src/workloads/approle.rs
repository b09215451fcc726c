//! `approle-login`: machine logins with a role ID and a secret ID, against Vault's documented
//! AppRole API.
//!
//! Setup enables `approle` at a path unique to the run, writes one role `bench`
//! (`token_policies = ["default"]`, the configured `token_ttl` and `token_type`, secret IDs
//! with unlimited uses), reads its role ID (`role/bench/role-id`) and generates `numsecrets`
//! secret IDs (`role/bench/secret-id`); each request logs in at `login` with the role ID and
//! one of the secret IDs. Cleanup disables the mount, which deletes the role and its secret IDs
//! and revokes every token the logins made.

use bytes::Bytes;
use http::{Method, Request, Uri};
use http_body_util::Full;
use serde::Deserialize;
use serde_json::{Value, json};
use zeroize::Zeroizing;

use super::{BoxFuture, Kind, SetupContext, Workload, auth};
use crate::client::{Api, Target};
use crate::error::BenchError;

/// The `approle-login` registry entry.
pub const LOGIN: Kind = Kind {
    name: "approle-login",
    aliases: &["approle_auth"],
    summary: "log in with AppRole (numsecrets = 10, token_ttl = \"1h\", token_type = \"service\")",
    needs_token: true,
    check_config: check,
    setup,
};

/// The role every run writes.
const ROLE: &str = "bench";

/// `approle-login` options.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    /// How many secret IDs to generate and log in with in turn.
    #[serde(default = "default_numsecrets")]
    numsecrets: usize,
    /// The TTL of the tokens the logins get.
    #[serde(default = "default_ttl")]
    token_ttl: String,
    /// `service` or `batch` (batch tokens are not stored).
    #[serde(default = "default_token_type")]
    token_type: String,
}

fn default_numsecrets() -> usize {
    10
}

fn default_ttl() -> String {
    "1h".into()
}

fn default_token_type() -> String {
    "service".into()
}

fn check(v: &Value) -> Result<(), String> {
    let c: Config = super::parse_config(v)?;
    if c.numsecrets == 0 {
        return Err("numsecrets must be at least 1".into());
    }
    if c.token_ttl.is_empty() {
        return Err("token_ttl must not be empty".into());
    }
    if !matches!(c.token_type.as_str(), "service" | "batch") {
        return Err(format!(
            "token_type must be \"service\" or \"batch\", not {:?}",
            c.token_type
        ));
    }
    Ok(())
}

/// `approle-login` after setup.
struct ApproleLogin {
    mount: String,
    uri: Uri,
    /// One `{"role_id": ..., "secret_id": ...}` body per secret ID (credentials: never printed).
    bodies: Vec<Bytes>,
}

fn setup(ctx: SetupContext) -> BoxFuture<'static, Result<Box<dyn Workload>, BenchError>> {
    Box::pin(async move {
        let cfg: Config = super::config_of(&ctx)?;
        let mount = ctx.unique.clone();
        auth::enable(&ctx, "approle", &mount).await?;
        let bodies = match credentials(&ctx, &mount, &cfg).await {
            Ok(b) => b,
            Err(e) => {
                let _ = auth::disable(&ctx.api, &mount).await;
                return Err(e);
            }
        };
        Ok(Box::new(ApproleLogin {
            uri: auth::login_uri(&mount, "login")?,
            mount,
            bodies,
        }) as Box<dyn Workload>)
    })
}

fn field(resp: &Value, name: &str, context: &str) -> Result<Zeroizing<String>, BenchError> {
    resp.pointer(&format!("/data/{name}"))
        .and_then(Value::as_str)
        .map(|s| Zeroizing::new(s.to_owned()))
        .ok_or_else(|| BenchError::Server {
            context: context.to_owned(),
            message: format!("the response has no data.{name}"),
        })
}

/// Writes the role, reads its role ID and generates the secret IDs: the login bodies.
async fn credentials(
    ctx: &SetupContext,
    mount: &str,
    cfg: &Config,
) -> Result<Vec<Bytes>, BenchError> {
    let role = format!("auth/{mount}/role/{ROLE}");
    ctx.api
        .expect_ok(
            &format!("{}: writing role {ROLE}", ctx.name),
            Method::POST,
            &role,
            Some(&json!({
                "token_policies": ["default"],
                "token_ttl": cfg.token_ttl,
                "token_type": cfg.token_type,
                "secret_id_num_uses": 0,
                "secret_id_ttl": 0,
            })),
            None,
        )
        .await?;
    let what = format!("{}: reading the role ID", ctx.name);
    let resp = ctx
        .api
        .expect_ok(&what, Method::GET, &format!("{role}/role-id"), None, None)
        .await?;
    let role_id = field(&resp, "role_id", &what)?;
    let what = format!("{}: generating secret IDs", ctx.name);
    let mut bodies = Vec::with_capacity(cfg.numsecrets);
    for _ in 0..cfg.numsecrets {
        let resp = ctx
            .api
            .expect_ok(
                &what,
                Method::POST,
                &format!("{role}/secret-id"),
                Some(&json!({})),
                None,
            )
            .await?;
        let secret_id = field(&resp, "secret_id", &what)?;
        bodies.push(auth::body(&json!({
            "role_id": role_id.as_str(),
            "secret_id": secret_id.as_str(),
        })));
    }
    Ok(bodies)
}

#[async_trait::async_trait]
impl Workload for ApproleLogin {
    fn request(&self, target: &Target, worker: usize, seq: u64) -> Request<Full<Bytes>> {
        let i = ((worker as u64).wrapping_mul(31).wrapping_add(seq) % self.bodies.len() as u64)
            as usize;
        auth::login_request(target, self.uri.clone(), self.bodies[i].clone())
    }

    async fn cleanup(&self, api: &Api) -> Result<(), BenchError> {
        auth::disable(api, &self.mount).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_is_checked() {
        check(&json!({})).unwrap();
        check(&json!({"numsecrets": 2, "token_ttl": "5m", "token_type": "batch"})).unwrap();
        for bad in [
            json!({"numsecrets": 0}),
            json!({"token_ttl": ""}),
            json!({"token_type": "default"}),
        ] {
            assert!(check(&bad).is_err(), "{bad}");
        }
    }
}
