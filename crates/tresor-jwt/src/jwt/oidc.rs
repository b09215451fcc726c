//! The browser code flow: `oidc/auth_url` (unauthenticated) starts a login with a fresh
//! `state`, `nonce` and PKCE S256 verifier and answers the provider's authorization URL;
//! `oidc/callback` (GET with the query the provider redirects with, or POST for
//! `form_post`) takes the state back exactly once, exchanges the code at the provider's token
//! endpoint with the client secret and the PKCE verifier, and checks the ID token (signature,
//! issuer, audience = client ID, times, nonce) before the role's checks run as for a JWT login.
//!
//! A `redirect_uri` must be one of the role's `allowed_redirect_uris`; loopback URIs match
//! with any port (RFC 8252, section 7.3), since a CLI listens wherever it can.

use std::sync::Arc;

use base64::Engine as _;
use serde_json::{Map, Value, json};
use tresor_sdk::framework::Fields;
use tresor_sdk::{LogicalError, Request, Response, Result};

use crate::jwt::inputs::{AuthUrlInput, CallbackInput};
use crate::jwt::login::{self, Kind};
use crate::jwt::provider::Discovered;
use crate::jwt::state::{Engine, Pending, STATE_TTL};
use crate::jwt::store::RoleType;
use crate::net;

fn bad(msg: impl Into<String>) -> LogicalError {
    LogicalError::invalid(msg)
}

/// Whether `uri` is allowed by `allowed` (exactly, or a loopback URI on another port).
pub(crate) fn redirect_allowed(uri: &str, allowed: &[String]) -> bool {
    if allowed.iter().any(|a| a == uri) {
        return true;
    }
    let Ok(u) = reqwest::Url::parse(uri) else {
        return false;
    };
    let loopback =
        |u: &reqwest::Url| matches!(u.host_str(), Some("localhost" | "127.0.0.1" | "[::1]"));
    if !loopback(&u) {
        return false;
    }
    allowed
        .iter()
        .filter_map(|a| reqwest::Url::parse(a).ok())
        .any(|a| {
            loopback(&a)
                && a.scheme() == u.scheme()
                && a.host_str() == u.host_str()
                && a.path() == u.path()
                && a.query() == u.query()
        })
}

impl Engine {
    pub(crate) async fn auth_url(
        self: Arc<Self>,
        req: Request,
        f: Fields,
    ) -> Result<Option<Response>> {
        let AuthUrlInput {
            role,
            redirect_uri,
            client_nonce,
        } = f.input();
        let redirect_uri = redirect_uri.trim().to_owned();
        if redirect_uri.is_empty() {
            return Err(bad("missing redirect_uri"));
        }
        let provider = self.provider(&req).await?;
        let cfg = &provider.config;
        let (role_name, role) = login::role_for(&self, &req, cfg, &role).await?;
        if role.role_type != RoleType::Oidc {
            return Err(bad(format!("role {role_name:?} is not an OIDC role")));
        }
        if cfg.oidc_client_id.is_empty() {
            return Err(bad(
                "OIDC is not configured: set oidc_client_id in the mount's config",
            ));
        }
        if !redirect_allowed(&redirect_uri, &role.allowed_redirect_uris) {
            return Err(bad(format!("unauthorized redirect_uri: {redirect_uri}")));
        }
        let doc = provider.discovered().await.map_err(bad)?;
        let state = net::random_token(24).map_err(LogicalError::Internal)?;
        let nonce = net::random_token(24).map_err(LogicalError::Internal)?;
        let verifier = net::random_token(48).map_err(LogicalError::Internal)?;
        let mut scopes = vec!["openid".to_owned()];
        for s in &role.oidc_scopes {
            if !scopes.contains(s) {
                scopes.push(s.clone());
            }
        }
        let response_type = if cfg.oidc_response_types.is_empty() {
            "code".to_owned()
        } else {
            cfg.oidc_response_types.join(" ")
        };
        let challenge = net::pkce_challenge(&verifier);
        let scope = scopes.join(" ");
        let max_age = role.max_age.to_string();
        let mut params = vec![
            ("client_id", cfg.oidc_client_id.as_str()),
            ("response_type", response_type.as_str()),
            ("scope", scope.as_str()),
            ("redirect_uri", redirect_uri.as_str()),
            ("state", state.as_str()),
            ("nonce", nonce.as_str()),
            ("code_challenge", challenge.as_str()),
            ("code_challenge_method", "S256"),
        ];
        if !cfg.oidc_response_mode.is_empty() {
            params.push(("response_mode", cfg.oidc_response_mode.as_str()));
        }
        if role.max_age > 0 {
            params.push(("max_age", max_age.as_str()));
        }
        let sep = if doc.authorization_endpoint.contains('?') {
            '&'
        } else {
            '?'
        };
        let url = format!("{}{sep}{}", doc.authorization_endpoint, net::form(&params));
        // A provider without an authorization endpoint (an issuer of ID tokens only, such as
        // Vault's own identity tokens) gets the URL's query alone, as Vault answers it, and a
        // warning: there is nowhere to send a browser.
        let mut warnings = Vec::new();
        if doc.authorization_endpoint.is_empty() {
            warnings.push(
                "the OIDC provider's discovery document has no authorization_endpoint: auth_url is only the query of an authorization request".to_owned(),
            );
        }
        self.add_pending(
            state,
            Pending {
                role: role_name,
                redirect_uri,
                nonce,
                code_verifier: verifier,
                client_nonce,
                expires: self.now() + STATE_TTL,
            },
        )?;
        let mut resp = Response::json(json!({ "auth_url": url }));
        resp.warnings = warnings;
        Ok(Some(resp))
    }

    pub(crate) async fn callback(
        self: Arc<Self>,
        req: Request,
        f: Fields,
    ) -> Result<Option<Response>> {
        // A form_post body arrives as fields (JSON) or, from a client that posts the browser's
        // form as it is, as a raw urlencoded body.
        let mut form: Map<String, Value> = Map::new();
        if let Some(raw) = req.raw_body.as_ref() {
            for (k, v) in net::parse_form(&String::from_utf8_lossy(raw)) {
                form.insert(k, Value::String(v));
            }
        }
        let sent: CallbackInput = f.input();
        // A field of the JSON body, else the same of the urlencoded form.
        let field = |v: &str, n: &str| {
            if v.is_empty() {
                form.get(n)
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned()
            } else {
                v.to_owned()
            }
        };
        let state = field(&sent.state, "state");
        let Some(pending) = self.take_pending(&state) else {
            return Err(bad("Expired or missing OAuth state."));
        };
        let provider_error = field(&sent.error, "error");
        if !provider_error.is_empty() {
            let desc = field(&sent.error_description, "error_description");
            return Err(bad(format!(
                "provider returned an error: {provider_error}: {desc}"
            )));
        }
        if !pending.client_nonce.is_empty()
            && !net::ct_eq(
                &pending.client_nonce,
                &field(&sent.client_nonce, "client_nonce"),
            )
        {
            return Err(bad("invalid client_nonce"));
        }
        let provider = self.provider(&req).await?;
        let cfg = &provider.config;
        let (role_name, role) = login::role_for(&self, &req, cfg, &pending.role).await?;
        if role.role_type != RoleType::Oidc {
            return Err(bad(format!("role {role_name:?} is not an OIDC role")));
        }
        let doc = provider.discovered().await.map_err(bad)?;
        let code = field(&sent.code, "code");
        let (id_token, access_token) = if !code.is_empty() {
            exchange(&doc, cfg, &code, &pending).await?
        } else {
            let t = field(&sent.id_token, "id_token");
            if t.is_empty() || !cfg.oidc_response_types.iter().any(|x| x == "id_token") {
                return Err(bad("OAuth code parameter not provided"));
            }
            (t, String::new())
        };
        let (mut claims, issuer) = provider
            .verify(&id_token, true)
            .await
            .map_err(|e| bad(format!("error validating ID token: {e}")))?;
        let kind = Kind::IdToken {
            client_id: &cfg.oidc_client_id,
        };
        login::validate(&claims, cfg, &role, issuer.as_deref(), self.now(), kind)
            .map_err(|e| bad(format!("error validating ID token claims: {e}")))?;
        let nonce = claims
            .get("nonce")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if !net::ct_eq(nonce, &pending.nonce) {
            return Err(bad("invalid ID token nonce"));
        }
        if role.max_age > 0 {
            let auth_time = claims.get("auth_time").and_then(Value::as_i64).unwrap_or(0);
            if auth_time == 0
                || self.now() - auth_time > i64::try_from(role.max_age).unwrap_or(i64::MAX)
            {
                return Err(bad("the user authenticated too long ago (max_age)"));
            }
        }
        // Claims the ID token lacks may come from the userinfo endpoint (groups often do).
        if !access_token.is_empty() && !doc.userinfo_endpoint.is_empty() {
            match userinfo(
                &provider_client(cfg)?,
                &doc.userinfo_endpoint,
                &access_token,
            )
            .await
            {
                Ok(info) => {
                    let sub = claims.get("sub").cloned();
                    if info.get("sub").is_some() && info.get("sub").cloned() == sub {
                        for (k, v) in info {
                            claims.entry(k).or_insert(v);
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "OIDC userinfo request failed; using the ID token's claims")
                }
            }
        }
        if role.verbose_oidc_logging {
            let shown = Value::Object(claims.clone()).to_string();
            tracing::info!(role = %role_name, claims = %shown, "OIDC login claims");
        }
        let auth = login::auth_from_claims(&req, &role_name, &role, &claims)?;
        Ok(Some(Response {
            auth: Some(auth),
            ..Default::default()
        }))
    }
}

fn provider_client(cfg: &crate::jwt::store::JwtConfig) -> Result<reqwest::Client> {
    net::client(&cfg.oidc_discovery_ca_pem, "oidc_discovery_ca_pem").map_err(LogicalError::Internal)
}

/// Exchanges an authorization code at the token endpoint: (id_token, access_token).
async fn exchange(
    doc: &Discovered,
    cfg: &crate::jwt::store::JwtConfig,
    code: &str,
    pending: &Pending,
) -> Result<(String, String)> {
    let client = provider_client(cfg)?;
    let mut params = vec![
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", pending.redirect_uri.as_str()),
        ("code_verifier", pending.code_verifier.as_str()),
    ];
    // client_secret_basic unless the provider supports only client_secret_post.
    let post = !doc.token_auth_methods.is_empty()
        && !doc
            .token_auth_methods
            .iter()
            .any(|m| m == "client_secret_basic")
        && doc
            .token_auth_methods
            .iter()
            .any(|m| m == "client_secret_post");
    if post {
        params.push(("client_id", cfg.oidc_client_id.as_str()));
        params.push(("client_secret", cfg.oidc_client_secret.as_str()));
    }
    let mut rb = client
        .post(&doc.token_endpoint)
        .header("content-type", "application/x-www-form-urlencoded")
        .header("accept", "application/json")
        .body(net::form(&params));
    if !post {
        let basic = base64::engine::general_purpose::STANDARD.encode(format!(
            "{}:{}",
            net::encode(&cfg.oidc_client_id),
            net::encode(&cfg.oidc_client_secret)
        ));
        rb = rb.header("authorization", format!("Basic {basic}"));
    }
    let resp = rb
        .send()
        .await
        .map_err(|e| bad(format!("error exchanging oidc code: {}", net::chain(&e))))?;
    let status = resp.status();
    let body: Value = resp.json().await.map_err(|e| {
        bad(format!(
            "error exchanging oidc code: the token endpoint's answer is not JSON: {e}"
        ))
    })?;
    if !status.is_success() {
        let err = body
            .get("error")
            .and_then(Value::as_str)
            .unwrap_or("unknown error");
        return Err(bad(format!("error exchanging oidc code: {status}: {err}")));
    }
    let id_token = body
        .get("id_token")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if id_token.is_empty() {
        return Err(bad(
            "error exchanging oidc code: no id_token in the token response",
        ));
    }
    let access = body
        .get("access_token")
        .and_then(Value::as_str)
        .unwrap_or_default();
    Ok((id_token.to_owned(), access.to_owned()))
}

async fn userinfo(
    client: &reqwest::Client,
    url: &str,
    access_token: &str,
) -> std::result::Result<Map<String, Value>, String> {
    let resp = client
        .get(url)
        .bearer_auth(access_token)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if !resp.status().is_success() {
        return Err(format!("userinfo answered {}", resp.status()));
    }
    match resp.json::<Value>().await.map_err(|e| e.to_string())? {
        Value::Object(m) => Ok(m),
        _ => Err("userinfo is not a JSON object".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::redirect_allowed;

    #[test]
    fn redirect_uris() {
        let allowed = vec![
            "http://localhost:8250/oidc/callback".to_owned(),
            "https://app.example.org/cb".to_owned(),
        ];
        assert!(redirect_allowed(
            "http://localhost:8250/oidc/callback",
            &allowed
        ));
        assert!(redirect_allowed(
            "http://localhost:9999/oidc/callback",
            &allowed
        ));
        assert!(!redirect_allowed("http://localhost:9999/other", &allowed));
        assert!(!redirect_allowed(
            "http://127.0.0.1:8250/oidc/callback",
            &allowed
        ));
        assert!(redirect_allowed("https://app.example.org/cb", &allowed));
        assert!(!redirect_allowed(
            "https://app.example.org:444/cb",
            &allowed
        ));
        assert!(!redirect_allowed("https://evil.example.org/cb", &allowed));
    }
}
