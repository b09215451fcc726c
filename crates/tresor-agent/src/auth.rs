//! Auto-auth: log in with the configured method, write the token to the sinks, keep it alive
//! (renew while the server allows, log in again before the end), and back off with jitter
//! when a login fails.
//!
//! On start, a token already in a sink is looked up (`auth/token/lookup-self`) and reused
//! while it is valid: a restarted agent keeps working when its single-use wrapped secret ID
//! was consumed by the previous run. The token is published through a `watch` channel to the
//! parts that use it (templates, certificates, the proxy); it never reaches a log.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::watch;
use tresor_client::{Client, ClientConfig, Method as HttpMethod, Request, TokenChoice};
use zeroize::Zeroizing;

use crate::backoff::{Backoff, jitter};
use crate::config::{AutoAuth, MethodKind, Sink, Vault};
use crate::files;

/// A token shared by the agent's tasks.
pub type Token = Arc<Zeroizing<String>>;

/// What a login (or a reused token) gave.
struct Login {
    token: Zeroizing<String>,
    ttl: Duration,
    renewable: bool,
}

/// Reads a small file holding a credential, without the trailing newline.
fn read_secret_file(path: &Path, what: &str) -> Result<Zeroizing<String>, String> {
    let raw = Zeroizing::new(
        std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {what} file {}: {e}", path.display()))?,
    );
    Ok(Zeroizing::new(raw.trim().to_string()))
}

fn remove(path: &Path) {
    if let Err(e) = std::fs::remove_file(path) {
        tracing::warn!(path = %path.display(), error = %e, "cannot remove the credential file");
    }
}

/// Logs in with one method; keeps what a method needs between logins.
pub struct Authenticator {
    client: Client,
    /// A client presenting the cert method's TLS identity.
    cert_client: Option<Client>,
    auto: AutoAuth,
    /// The last secret ID read (Vault's agent also keeps it, for logins after the file is gone).
    cached_secret_id: Option<Zeroizing<String>>,
    /// Clients with the sink's wrap TTL, one per wrapping sink.
    wrap_clients: Vec<Option<Client>>,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("method", &self.auto.method.kind)
            .finish_non_exhaustive()
    }
}

impl Authenticator {
    /// Prepares the clients a method needs (a bad certificate file fails here, at start).
    pub fn new(client: Client, auto: AutoAuth, vault: &Vault) -> Result<Authenticator, String> {
        let cert_client = match &auto.method.kind {
            MethodKind::Cert {
                client_cert,
                client_key,
                ca_cert,
                ..
            } => {
                let mut cfg: ClientConfig = client.config().clone();
                if client_cert.is_some() {
                    cfg.tls.client_cert = client_cert.clone();
                    cfg.tls.client_key = client_key.clone();
                }
                if ca_cert.is_some() {
                    cfg.tls.ca_cert = ca_cert.clone();
                }
                if cfg.tls.client_cert.is_none() && vault.client_cert.is_none() {
                    return Err(
                        "auto_auth.method \"cert\": no client certificate (config.client_cert or vault.client_cert)"
                            .to_string(),
                    );
                }
                Some(Client::new(cfg).map_err(|e| format!("auto_auth.method \"cert\": {e}"))?)
            }
            _ => None,
        };
        let wrap_clients = auto
            .sinks
            .iter()
            .map(|s| {
                s.wrap_ttl
                    .map(|ttl| {
                        let mut cfg = client.config().clone();
                        cfg.wrap_ttl = Some(format!("{}s", ttl.as_secs().max(1)));
                        Client::new(cfg).map_err(|e| e.to_string())
                    })
                    .transpose()
            })
            .collect::<Result<_, _>>()?;
        Ok(Authenticator {
            client,
            cert_client,
            auto,
            cached_secret_id: None,
            wrap_clients,
        })
    }

    fn mount(&self) -> &str {
        &self.auto.method.mount_path
    }

    async fn post_login(&self, client: &Client, path: &str, body: Value) -> Result<Login, String> {
        let req = Request::new(HttpMethod::POST, path)
            .json(body)
            .token(TokenChoice::Without)
            .no_wrap();
        let secret = client
            .secret(&req)
            .await
            .map_err(|e| format!("login at {path} failed: {e}"))?
            .ok_or_else(|| format!("login at {path}: empty response"))?;
        let auth = secret
            .auth
            .ok_or_else(|| format!("login at {path}: the response has no auth block"))?;
        if auth.mfa_requirement.is_some() {
            return Err(format!(
                "login at {path} asks for MFA, which the agent cannot give"
            ));
        }
        Ok(Login {
            token: Zeroizing::new(auth.client_token.clone()),
            ttl: Duration::from_secs(auth.lease_duration.max(0) as u64),
            renewable: auth.renewable,
        })
    }

    /// Unwraps a wrapped secret ID after checking where the wrapping token was created.
    async fn unwrap_secret_id(
        &self,
        wrapping: &Zeroizing<String>,
        expected_path: &str,
    ) -> Result<Zeroizing<String>, String> {
        let lookup = Request::new(HttpMethod::POST, "sys/wrapping/lookup")
            .json(json!({ "token": wrapping.as_str() }))
            .token(TokenChoice::Without)
            .no_wrap();
        let info = self
            .client
            .secret(&lookup)
            .await
            .map_err(|e| format!("looking up the wrapped secret ID: {e}"))?
            .ok_or("looking up the wrapped secret ID: empty response")?;
        let created = info.data_str("creation_path").unwrap_or_default();
        if created.trim_matches('/') != expected_path {
            return Err(format!(
                "the wrapped secret ID was created at {created:?}, not at secret_id_response_wrapping_path {expected_path:?}"
            ));
        }
        let unwrap = Request::new(HttpMethod::POST, "sys/wrapping/unwrap")
            .token(TokenChoice::Override(wrapping.clone()))
            .no_wrap();
        let s = self
            .client
            .secret(&unwrap)
            .await
            .map_err(|e| format!("unwrapping the secret ID: {e}"))?
            .ok_or("unwrapping the secret ID: empty response")?;
        s.data_str("secret_id")
            .map(|v| Zeroizing::new(v.to_string()))
            .ok_or_else(|| "the unwrapped response has no secret_id".to_string())
    }

    async fn login(&mut self) -> Result<Login, String> {
        let mount = self.mount().to_string();
        match self.auto.method.kind.clone() {
            MethodKind::AppRole {
                role_id_file_path,
                secret_id_file_path,
                remove_secret_id_file_after_reading,
                secret_id_response_wrapping_path,
            } => {
                let role_id = read_secret_file(&role_id_file_path, "role ID")?;
                let mut body = json!({ "role_id": role_id.as_str() });
                if let Some(path) = &secret_id_file_path {
                    let from_file = match std::fs::metadata(path) {
                        Ok(_) => Some(read_secret_file(path, "secret ID")?),
                        Err(_) => None,
                    };
                    let secret_id = match from_file.filter(|s| !s.is_empty()) {
                        Some(raw) => {
                            let id = match &secret_id_response_wrapping_path {
                                Some(wp) => self.unwrap_secret_id(&raw, wp).await?,
                                None => raw,
                            };
                            if remove_secret_id_file_after_reading {
                                remove(path);
                            }
                            self.cached_secret_id = Some(id.clone());
                            id
                        }
                        None => self.cached_secret_id.clone().ok_or_else(|| {
                            format!(
                                "no secret ID: {} is missing or empty and none was read before",
                                path.display()
                            )
                        })?,
                    };
                    body["secret_id"] = Value::String(secret_id.to_string());
                }
                let r = self
                    .post_login(&self.client, &format!("{mount}/login"), body.clone())
                    .await;
                if let Some(Value::String(s)) = body.get_mut("secret_id") {
                    zeroize::Zeroize::zeroize(s);
                }
                r
            }
            MethodKind::TokenFile { token_file_path } => {
                let token = read_secret_file(&token_file_path, "token")?;
                let (ttl, renewable) = lookup_self(&self.client, &token).await?;
                Ok(Login {
                    token,
                    ttl,
                    renewable,
                })
            }
            MethodKind::Userpass { username, password } => {
                self.post_login(
                    &self.client,
                    &format!("{mount}/login/{username}"),
                    json!({ "password": password.as_str() }),
                )
                .await
            }
            MethodKind::Cert { name, .. } => {
                let client = self
                    .cert_client
                    .clone()
                    .unwrap_or_else(|| self.client.clone());
                let body = match name {
                    Some(n) => json!({ "name": n }),
                    None => json!({}),
                };
                self.post_login(&client, &format!("{mount}/login"), body)
                    .await
            }
            MethodKind::Jwt {
                path,
                role,
                remove_jwt_after_reading,
            } => {
                let jwt = read_secret_file(&path, "JWT")?;
                let r = self
                    .post_login(
                        &self.client,
                        &format!("{mount}/login"),
                        json!({ "role": role, "jwt": jwt.as_str() }),
                    )
                    .await;
                if remove_jwt_after_reading && r.is_ok() {
                    remove(&path);
                }
                r
            }
            MethodKind::Kubernetes { role, token_path } => {
                let jwt = read_secret_file(&token_path, "service-account token")?;
                self.post_login(
                    &self.client,
                    &format!("{mount}/login"),
                    json!({ "role": role, "jwt": jwt.as_str() }),
                )
                .await
            }
        }
    }

    /// A still-valid token from a sink, if any (unwrapped sinks only).
    async fn reuse_from_sinks(&self) -> Option<Login> {
        for sink in self.auto.sinks.iter().filter(|s| s.wrap_ttl.is_none()) {
            let Ok(token) = read_secret_file(&sink.path, "sink") else {
                continue;
            };
            if token.is_empty() {
                continue;
            }
            match lookup_self(&self.client, &token).await {
                Ok((ttl, renewable)) if ttl.is_zero() || ttl >= Duration::from_secs(3) => {
                    tracing::info!(sink = %sink.path.display(), "reusing the valid token found in the sink");
                    return Some(Login {
                        token,
                        ttl,
                        renewable,
                    });
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::info!(sink = %sink.path.display(), error = %e, "the token in the sink cannot be reused");
                }
            }
        }
        None
    }

    async fn write_sinks(&self, token: &Zeroizing<String>) -> Result<(), String> {
        for (sink, wrap) in self.auto.sinks.iter().zip(&self.wrap_clients) {
            let content = match wrap {
                None => token.clone(),
                Some(c) => {
                    let req = Request::new(HttpMethod::POST, "sys/wrapping/wrap")
                        .json(json!({ "token": token.as_str() }))
                        .token(TokenChoice::Override(token.clone()));
                    let s = c
                        .secret(&req)
                        .await
                        .map_err(|e| {
                            format!("wrapping the token for {}: {e}", sink.path.display())
                        })?
                        .and_then(|s| s.wrap_info)
                        .ok_or("wrapping the token: no wrap_info in the response")?;
                    Zeroizing::new(serde_json::to_string(&s).unwrap_or_default())
                }
            };
            write_sink(sink, &content)?;
        }
        Ok(())
    }

    /// Runs forever (or until the first login when `exit_after_auth`): publishes each token.
    pub async fn run(
        mut self,
        tx: watch::Sender<Option<Token>>,
        exit_after_auth: bool,
    ) -> Result<(), String> {
        let method = self.auto.method.clone();
        let mut backoff = Backoff::new(method.min_backoff, method.max_backoff);
        let mut first = true;
        loop {
            let reused = if first {
                self.reuse_from_sinks().await
            } else {
                None
            };
            first = false;
            let login = match reused {
                Some(l) => l,
                None => loop {
                    match self.login().await {
                        Ok(l) => {
                            if let Err(e) = self.write_sinks(&l.token).await {
                                tracing::error!(error = %e, "writing the sinks failed");
                            }
                            break l;
                        }
                        Err(e) => {
                            if method.exit_on_err {
                                return Err(e);
                            }
                            let wait = backoff.next_wait();
                            tracing::error!(error = %e, retry_in = ?wait, "auto-auth login failed");
                            tokio::time::sleep(wait).await;
                        }
                    }
                },
            };
            backoff.reset();
            tracing::info!(ttl = ?login.ttl, renewable = login.renewable, "authenticated");
            let _ = tx.send(Some(Arc::new(login.token.clone())));
            if exit_after_auth {
                return Ok(());
            }
            self.keep_alive(&login).await;
            tracing::info!("the token is at its end: logging in again");
        }
    }

    /// Keeps `login`'s token alive; returns when a new login is due.
    async fn keep_alive(&self, login: &Login) {
        let first_ttl = login.ttl;
        let mut ttl = login.ttl;
        if ttl.is_zero() {
            // A token without expiry: check now and then that it still works.
            loop {
                tokio::time::sleep(jitter(Duration::from_secs(300))).await;
                if lookup_self(&self.client, &login.token).await.is_err() {
                    return;
                }
            }
        }
        loop {
            tokio::time::sleep(renew_wait(ttl)).await;
            if !login.renewable {
                return;
            }
            let req = Request::new(HttpMethod::POST, "auth/token/renew-self")
                .json(json!({}))
                .token(TokenChoice::Override(login.token.clone()))
                .no_wrap();
            match self.client.secret(&req).await {
                Ok(Some(s)) => {
                    let new = Duration::from_secs(
                        s.auth.map(|a| a.lease_duration).unwrap_or(0).max(0) as u64,
                    );
                    if new < Duration::from_secs(2) {
                        return;
                    }
                    if new < first_ttl / 2 {
                        // The token is near its maximum TTL: use what is left, then log in.
                        tokio::time::sleep(renew_wait(new)).await;
                        return;
                    }
                    ttl = new;
                }
                Ok(None) => return,
                Err(e) => {
                    tracing::warn!(error = %e, "renewing the token failed");
                    return;
                }
            }
        }
    }
}

/// How long to wait before renewing a token with `ttl` left: about two thirds of it (less a
/// random part, so many agents do not renew at once), but leaving at least two seconds, or a
/// third of a short TTL, for the renewal itself to arrive on a busy machine.
fn renew_wait(ttl: Duration) -> Duration {
    let margin = Duration::from_secs(2).min(ttl.mul_f64(2.0 / 3.0));
    jitter(ttl.mul_f64(2.0 / 3.0)).min(ttl.saturating_sub(margin))
}

/// The token's remaining TTL and whether it can be renewed.
async fn lookup_self(
    client: &Client,
    token: &Zeroizing<String>,
) -> Result<(Duration, bool), String> {
    let req = Request::new(HttpMethod::GET, "auth/token/lookup-self")
        .token(TokenChoice::Override(token.clone()))
        .no_wrap();
    let s = client
        .secret(&req)
        .await
        .map_err(|e| format!("token lookup failed: {e}"))?
        .ok_or("token lookup: empty response")?;
    let data = s.data.unwrap_or_default();
    let ttl = data.get("ttl").and_then(Value::as_i64).unwrap_or(0);
    let renewable = data
        .get("renewable")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    Ok((Duration::from_secs(ttl.max(0) as u64), renewable))
}

fn write_sink(sink: &Sink, content: &str) -> Result<(), String> {
    files::write_atomic(&sink.path, content.as_bytes(), sink.mode, None, None)
        .map_err(|e| format!("cannot write the sink {}: {e}", sink.path.display()))
}

#[cfg(test)]
mod renew_tests {
    use super::renew_wait;
    use std::time::Duration;

    #[test]
    fn renewals_leave_room_before_the_end() {
        for _ in 0..100 {
            let w = renew_wait(Duration::from_secs(3));
            assert!(w <= Duration::from_secs(1), "{w:?}");
            let w = renew_wait(Duration::from_secs(3600));
            assert!(
                w >= Duration::from_secs(1800) && w <= Duration::from_secs(2400),
                "{w:?}"
            );
            let w = renew_wait(Duration::from_secs(1));
            assert!(w <= Duration::from_millis(334), "{w:?}");
        }
    }
}
