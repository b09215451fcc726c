//! The browser code flow: `oidc/auth_url` (unauthenticated) starts a login with a fresh
//! `state`, `nonce` and PKCE S256 verifier and answers the provider's authorization URL;
//! `oidc/callback` (GET with the query the provider redirects with, or POST for
//! `form_post`) takes the state back exactly once, exchanges the code at the provider's token
//! endpoint with the client secret and the PKCE verifier, and checks the ID token (signature,
//! issuer, audience = client ID, times, nonce) before the role's checks run as for a JWT login.
//!
//! A `redirect_uri` must be one of the role's `allowed_redirect_uris`; loopback URIs match
//! with any port (RFC 8252, section 7.3), since a CLI listens wherever it can.
//!
//! Beyond Vault, for hosts without a browser: the device authorization grant (RFC 8628).
//! `oidc/device_auth` asks the provider's `device_authorization_endpoint` for a device code
//! with the client's credentials and answers the user code, the verification URI and a
//! `state`; `oidc/device_poll` with that state asks the token endpoint once (no faster than
//! the provider's interval) and answers `authorization_pending` or `slow_down` (400s a client
//! retries) until the user approves, then checks the ID token as the callback does (there is
//! no nonce in this grant) and logs in. The device code never leaves the server.

use std::sync::Arc;

use base64::Engine as _;
use serde_json::{Map, Value, json};
use tresor_sdk::framework::Fields;
use tresor_sdk::{LogicalError, Request, Response, Result};

use crate::jwt::inputs::{AuthUrlInput, CallbackInput, DeviceAuthInput, DevicePollInput};
use crate::jwt::login::{self, Kind};
use crate::jwt::provider::{Discovered, Provider};
use crate::jwt::state::{DevicePending, Engine, Pending, STATE_TTL};
use crate::jwt::store::{JwtConfig, Role, RoleType};
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
        let (role_name, role) = oidc_role(&self, &req, cfg, &role).await?;
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
        let scopes = scopes(&role);
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
        let (role_name, role) = oidc_role(&self, &req, cfg, &pending.role).await?;
        let doc = provider.discovered().await.map_err(bad)?;
        let code = field(&sent.code, "code");
        let (id_token, access_token) = if !code.is_empty() {
            exchange(
                provider.oidc_client().map_err(bad)?,
                &doc,
                cfg,
                &code,
                &pending,
            )
            .await?
        } else {
            let t = field(&sent.id_token, "id_token");
            if t.is_empty() || !cfg.oidc_response_types.iter().any(|x| x == "id_token") {
                return Err(bad("OAuth code parameter not provided"));
            }
            (t, String::new())
        };
        self.finish(
            &req,
            &provider,
            &doc,
            (&role_name, &role),
            (&id_token, &access_token),
            Some(&pending.nonce),
        )
        .await
    }

    /// The end of every OIDC login: the ID token's signature and claims (and its nonce when
    /// the flow has one), `max_age`, claims from userinfo, and the login itself.
    async fn finish(
        &self,
        req: &Request,
        provider: &Provider,
        doc: &Discovered,
        (role_name, role): (&str, &Role),
        (id_token, access_token): (&str, &str),
        nonce: Option<&str>,
    ) -> Result<Option<Response>> {
        let cfg = &provider.config;
        let (mut claims, issuer) = provider
            .verify(id_token, true)
            .await
            .map_err(|e| bad(format!("error validating ID token: {e}")))?;
        let kind = Kind::IdToken {
            client_id: &cfg.oidc_client_id,
        };
        login::validate(&claims, cfg, role, issuer.as_deref(), self.now(), kind)
            .map_err(|e| bad(format!("error validating ID token claims: {e}")))?;
        if let Some(want) = nonce {
            let got = claims
                .get("nonce")
                .and_then(Value::as_str)
                .unwrap_or_default();
            if !net::ct_eq(got, want) {
                return Err(bad("invalid ID token nonce"));
            }
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
                provider.oidc_client().map_err(bad)?,
                &doc.userinfo_endpoint,
                access_token,
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
        let auth = login::auth_from_claims(req, role_name, role, &claims)?;
        Ok(Some(Response {
            auth: Some(auth),
            ..Default::default()
        }))
    }

    /// `oidc/device_auth`: starts a device login at the provider.
    pub(crate) async fn device_auth(
        self: Arc<Self>,
        req: Request,
        f: Fields,
    ) -> Result<Option<Response>> {
        let DeviceAuthInput { role } = f.input();
        let provider = self.provider(&req).await?;
        let cfg = &provider.config;
        let (role_name, role) = oidc_role(&self, &req, cfg, &role).await?;
        if cfg.oidc_client_id.is_empty() {
            return Err(bad(
                "OIDC is not configured: set oidc_client_id in the mount's config",
            ));
        }
        let doc = provider.discovered().await.map_err(bad)?;
        if doc.device_authorization_endpoint.is_empty() {
            return Err(bad(
                "the OIDC provider does not offer the device authorization grant (its discovery document has no device_authorization_endpoint)",
            ));
        }
        let scopes = scopes(&role);
        let scope = scopes.join(" ");
        let body = client_post(
            provider.oidc_client().map_err(bad)?,
            &doc.device_authorization_endpoint,
            &doc,
            cfg,
            vec![("scope", scope.as_str())],
        )
        .send()
        .await
        .map_err(|e| {
            bad(format!(
                "error starting the device login: {}",
                net::chain(&e)
            ))
        })?;
        let status = body.status();
        let v: Value = body.json().await.unwrap_or(Value::Null);
        let text = |k: &str| {
            v.get(k)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        if !status.is_success() {
            let err = provider_error(&v, "no error given");
            return Err(bad(format!(
                "error starting the device login: the provider answered {status}: {err}"
            )));
        }
        let device_code = text("device_code");
        let user_code = text("user_code");
        // Google spells it verification_url.
        let uri = Some(text("verification_uri"))
            .filter(|u| !u.is_empty())
            .unwrap_or_else(|| text("verification_url"));
        if device_code.is_empty() || user_code.is_empty() || uri.is_empty() {
            return Err(bad(
                "error starting the device login: the provider's answer lacks device_code, user_code or verification_uri",
            ));
        }
        let expires_in = seconds(&v, "expires_in", STATE_TTL, 1800);
        let interval = seconds(&v, "interval", 5, 60);
        let state = net::random_token(24).map_err(LogicalError::Internal)?;
        let now = self.now();
        self.add_device(
            state.clone(),
            DevicePending {
                role: role_name,
                device_code,
                interval,
                next_poll_ms: 0,
                expires: now + expires_in,
            },
        )?;
        Ok(Some(Response::json(json!({
            "state": state,
            "user_code": user_code,
            "verification_uri": uri,
            "verification_uri_complete": text("verification_uri_complete"),
            "expires_in": expires_in,
            "interval": interval,
        }))))
    }

    /// `oidc/device_poll`: asks the provider once whether the user approved the device login.
    pub(crate) async fn device_poll(
        self: Arc<Self>,
        req: Request,
        f: Fields,
    ) -> Result<Option<Response>> {
        let DevicePollInput { state } = f.input();
        // Out of the map while this poll runs: a concurrent poll of the same state finds
        // nothing, so one state logs in at most once.
        let Some(mut device) = self.take_device(state.trim()) else {
            return Err(bad("Expired or missing device login state."));
        };
        let now_ms = self.now_ms();
        if now_ms < device.next_poll_ms {
            let wait = device.interval;
            self.add_device(state, device)?;
            return Err(bad(format!("slow_down: poll at most every {wait} seconds")));
        }
        let provider = self.provider(&req).await?;
        let cfg = &provider.config;
        let doc = provider.discovered().await.map_err(bad)?;
        let resp = client_post(
            provider.oidc_client().map_err(bad)?,
            &doc.token_endpoint,
            &doc,
            cfg,
            vec![
                ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
                ("device_code", device.device_code.as_str()),
            ],
        )
        .send()
        .await;
        let resp = match resp {
            Ok(r) => r,
            Err(e) => {
                device.next_poll_ms = now_ms + device.interval * 1000;
                self.add_device(state, device)?;
                return Err(bad(format!(
                    "error polling the device login: {}",
                    net::chain(&e)
                )));
            }
        };
        let status = resp.status();
        let v: Value = resp.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            let err = provider_error(&v, "no error given");
            match err {
                "authorization_pending" | "slow_down" => {
                    if err == "slow_down" {
                        device.interval = (device.interval + 5).min(60);
                    }
                    device.next_poll_ms = now_ms + device.interval * 1000;
                    let wait = device.interval;
                    self.add_device(state, device)?;
                    let why = if err == "slow_down" {
                        format!("poll at most every {wait} seconds")
                    } else {
                        "the user has not approved the login yet".to_owned()
                    };
                    return Err(bad(format!("{err}: {why}")));
                }
                "access_denied" => return Err(bad("access_denied: the user refused the login")),
                "expired_token" => {
                    return Err(bad("expired_token: the device code expired; start again"));
                }
                _ => {
                    return Err(bad(format!(
                        "error polling the device login: the provider answered {status}: {err}"
                    )));
                }
            }
        }
        let (id_token, access) = tokens(&v, "error polling the device login")?;
        let (role_name, role) = oidc_role(&self, &req, cfg, &device.role).await?;
        self.finish(
            &req,
            &provider,
            &doc,
            (&role_name, &role),
            (&id_token, &access),
            None,
        )
        .await
    }
}

/// A form POST to one of the provider's endpoints with the client's credentials:
/// `client_secret_basic` unless the provider supports only `client_secret_post`.
fn client_post<'a>(
    client: &reqwest::Client,
    url: &str,
    doc: &Discovered,
    cfg: &'a JwtConfig,
    mut params: Vec<(&'a str, &'a str)>,
) -> reqwest::RequestBuilder {
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
    let rb = client
        .post(url)
        .header("content-type", "application/x-www-form-urlencoded")
        .header("accept", "application/json")
        .body(net::form(&params));
    if post {
        return rb;
    }
    let basic = base64::engine::general_purpose::STANDARD.encode(format!(
        "{}:{}",
        net::encode(&cfg.oidc_client_id),
        net::encode(&cfg.oidc_client_secret)
    ));
    rb.header("authorization", format!("Basic {basic}"))
}

/// Exchanges an authorization code at the token endpoint: (id_token, access_token).
async fn exchange(
    client: &reqwest::Client,
    doc: &Discovered,
    cfg: &JwtConfig,
    code: &str,
    pending: &Pending,
) -> Result<(String, String)> {
    let params = vec![
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", pending.redirect_uri.as_str()),
        ("code_verifier", pending.code_verifier.as_str()),
    ];
    let resp = client_post(client, &doc.token_endpoint, doc, cfg, params)
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
        let err = provider_error(&body, "unknown error");
        return Err(bad(format!("error exchanging oidc code: {status}: {err}")));
    }
    tokens(&body, "error exchanging oidc code")
}

/// A provider's number of seconds `key`, kept to 1..=`max` (`default` when it is missing, not
/// a whole number, zero or negative): a provider cannot make a device login live for days or
/// be polled in a tight loop.
fn seconds(body: &Value, key: &str, default: i64, max: i64) -> i64 {
    body.get(key)
        .and_then(Value::as_i64)
        .filter(|n| *n > 0)
        .unwrap_or(default)
        .min(max)
}

/// The OAuth `error` code of a provider's failed answer, or `missing` when it gives none.
fn provider_error<'a>(body: &'a Value, missing: &'a str) -> &'a str {
    body.get("error").and_then(Value::as_str).unwrap_or(missing)
}

/// The ID token (required) and access token of a token endpoint's answer.
fn tokens(body: &Value, context: &str) -> Result<(String, String)> {
    let text = |k: &str| {
        body.get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let id_token = text("id_token");
    if id_token.is_empty() {
        return Err(bad(format!("{context}: no id_token in the token response")));
    }
    Ok((id_token, text("access_token")))
}

/// The role a flow names (or the default role), which must be an OIDC role.
async fn oidc_role(
    engine: &Engine,
    req: &Request,
    cfg: &JwtConfig,
    asked: &str,
) -> Result<(String, Arc<Role>)> {
    let (name, role) = login::role_for(engine, req, cfg, asked).await?;
    if role.role_type != RoleType::Oidc {
        return Err(bad(format!("role {name:?} is not an OIDC role")));
    }
    Ok((name, role))
}

/// The scopes an OIDC role asks for: `openid` and the role's `oidc_scopes`.
fn scopes(role: &Role) -> Vec<String> {
    let mut out = vec!["openid".to_owned()];
    for s in &role.oidc_scopes {
        if !out.contains(s) {
            out.push(s.clone());
        }
    }
    out
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
    use super::{redirect_allowed, seconds};
    use serde_json::json;

    #[test]
    fn a_providers_intervals_are_kept_in_bounds() {
        let v = json!({"a": 7, "neg": -5, "zero": 0, "huge": 9_999_999_999_i64, "text": "5",
                       "float": 2.5, "big": u64::MAX});
        assert_eq!(seconds(&v, "a", 5, 60), 7);
        for k in ["neg", "zero", "text", "float", "big", "missing"] {
            assert_eq!(seconds(&v, k, 5, 60), 5, "{k}");
        }
        assert_eq!(seconds(&v, "huge", 5, 60), 60);
    }

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
