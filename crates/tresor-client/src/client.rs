//! The async client: the `/v1/` URL layout, the headers every request carries
//! (`X-Vault-Request: true`, `X-Vault-Token`, `X-Vault-Namespace`, `X-Vault-Wrap-TTL`,
//! `X-Vault-Policy-Override`), retries and the one redirect Vault's client follows, and the
//! logical operations with the Go client's 404 rule.
//!
//! One request runs under one deadline ([`ClientConfig::timeout`]) that covers every attempt
//! and every wait, as Go's context does. A retry that would end after the deadline is not
//! started: the last answer (or failure) is returned instead of a bare "deadline exceeded".

use std::fmt;
use std::sync::Arc;

use reqwest::Url;
use reqwest::header::{CONTENT_TYPE, HeaderValue, LOCATION, RETRY_AFTER};
use serde_json::Value;
use tokio::time::Instant;
use zeroize::Zeroizing;

use crate::config::ClientConfig;
use crate::error::{ApiError, ClientError, ConfigError};
use crate::request::{Method, Request, Response, TokenChoice};
use crate::retry;
use crate::secret::{self, DecodeError, Secret};
use crate::tls;

/// A configured client. Cloning is cheap and clones share connections.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    base: Url,
    cfg: Arc<ClientConfig>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("cfg", &self.cfg)
            .finish_non_exhaustive()
    }
}

/// Go's method name in a `*url.Error` (`Get`, `Put`).
fn go_method_name(m: &Method) -> String {
    let s = m.as_str().to_ascii_lowercase();
    let mut c = s.chars();
    match c.next() {
        Some(first) => first.to_ascii_uppercase().to_string() + c.as_str(),
        None => s,
    }
}

/// An error and its causes on one line, without repeating a cause its parent already shows.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut parts = vec![e.to_string()];
    let mut cur = e.source();
    while let Some(s) = cur {
        let text = s.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        cur = s.source();
    }
    parts.join(": ")
}

/// What to say when a server answered plain HTTP to an HTTPS request: Go's words (scripts
/// match them), and the likely fix, instead of a TLS record error.
fn plain_http_answer(url: &Url) -> String {
    let host = url.host_str().unwrap_or("127.0.0.1");
    let addr = match url.port() {
        Some(port) => format!("http://{host}:{port}"),
        None => format!("http://{host}"),
    };
    format!(
        "http: server gave HTTP response to HTTPS client (the server answered HTTP to an HTTPS request: is VAULT_ADDR {addr}?)"
    )
}

/// Why one attempt got no response, and whether another attempt could help.
struct Failure {
    message: String,
    retryable: bool,
}

impl Client {
    /// Builds a client. Loads the TLS material now, so a bad CA or key file is reported here
    /// rather than on the first request.
    pub fn new(cfg: ClientConfig) -> Result<Client, ConfigError> {
        let base = Url::parse(&cfg.address).map_err(|e| ConfigError::Address {
            address: cfg.address.clone(),
            reason: e.to_string(),
        })?;
        if base.scheme() != "http" && base.scheme() != "https" {
            return Err(ConfigError::Address {
                address: cfg.address.clone(),
                reason: "scheme must be http or https".to_string(),
            });
        }
        let tls = tls::build(&cfg.tls, base.scheme() == "https")?;
        let http = reqwest::Client::builder()
            .user_agent(cfg.user_agent.clone())
            .tls_backend_preconfigured(tls)
            // Redirects are followed here, once and the way Vault's client does (same method
            // and body, never from https to http), not by reqwest's policy.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| ConfigError::Build(error_chain(&e)))?;
        Ok(Client {
            http,
            base,
            cfg: Arc::new(cfg),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &ClientConfig {
        &self.cfg
    }

    /// The token requests carry by default.
    pub fn token(&self) -> Option<&str> {
        self.cfg.token.as_ref().map(|t| t.as_str())
    }

    /// Replaces the default token.
    pub fn set_token(&mut self, token: Option<Zeroizing<String>>) {
        Arc::make_mut(&mut self.cfg).token = token;
    }

    /// A client sharing this one's connections with another default token.
    pub fn with_token(&self, token: Option<Zeroizing<String>>) -> Client {
        let mut c = self.clone();
        c.set_token(token);
        c
    }

    /// The full URL for an API path (with query): the address, any path it has, `/v1/`, then
    /// `path` with `?`, `#` and spaces percent-encoded.
    pub fn url(&self, path: &str, query: &[(String, String)]) -> Url {
        let mut url = self.base.clone();
        let prefix = url.path().trim_end_matches('/').to_string();
        url.set_path(&format!("{prefix}/v1/{}", path.trim_start_matches('/')));
        url.set_query(None);
        if !query.is_empty() {
            let mut q = url.query_pairs_mut();
            for (k, v) in query {
                q.append_pair(k, v);
            }
        }
        url
    }

    /// The request with Vault's headers (token, namespace, wrap TTL, policy override, the
    /// configured extra headers); no body yet.
    pub(crate) fn builder(
        &self,
        req: &Request,
        url: &Url,
    ) -> Result<reqwest::RequestBuilder, ClientError> {
        self.headers(req, url).map_err(|f| ClientError::Transport {
            method: go_method_name(&req.method),
            url: url.to_string(),
            message: f.message,
        })
    }

    /// A transport failure of `req` as Go's client words it.
    pub(crate) fn transport_error(
        &self,
        req: &Request,
        url: &Url,
        e: &reqwest::Error,
    ) -> ClientError {
        ClientError::Transport {
            method: go_method_name(&req.method),
            url: url.to_string(),
            message: error_chain(e),
        }
    }

    fn headers(&self, req: &Request, url: &Url) -> Result<reqwest::RequestBuilder, Failure> {
        let mut rb = self
            .http
            .request(req.method.clone(), url.clone())
            .header("X-Vault-Request", "true");
        let token = match &req.token {
            TokenChoice::Default => self.cfg.token.as_ref().map(|t| t.as_str()),
            TokenChoice::Override(t) => Some(t.as_str()),
            TokenChoice::Without => None,
        };
        if let Some(t) = token.filter(|t| !t.is_empty()) {
            let mut value = HeaderValue::from_str(t).map_err(|_| Failure {
                message: "the token contains characters that cannot be sent in a header"
                    .to_string(),
                retryable: false,
            })?;
            value.set_sensitive(true);
            rb = rb.header("X-Vault-Token", value);
        }
        if let Some(ns) = &self.cfg.namespace {
            rb = rb.header("X-Vault-Namespace", ns);
        }
        if req.wrap
            && let Some(ttl) = &self.cfg.wrap_ttl
        {
            rb = rb.header("X-Vault-Wrap-TTL", ttl);
        }
        if self.cfg.policy_override {
            rb = rb.header("X-Vault-Policy-Override", "true");
        }
        for (k, v) in &self.cfg.headers {
            rb = rb.header(k, v);
        }
        Ok(rb)
    }

    /// One attempt against `url`: build, send, read the whole body.
    async fn attempt(&self, req: &Request, url: &Url) -> Result<Response, Failure> {
        let mut rb = self.headers(req, url)?;
        if let Some(body) = &req.body {
            let ct = if req.merge_patch {
                "application/merge-patch+json"
            } else {
                "application/json"
            };
            rb = rb
                .header(CONTENT_TYPE, ct)
                .body(serde_json::to_vec(body).unwrap_or_default());
        }
        let failure = |e: reqwest::Error| {
            if url.scheme() == "https" && tls::is_plain_http_answer(&e) {
                return Failure {
                    retryable: false,
                    message: plain_http_answer(url),
                };
            }
            Failure {
                retryable: !e.is_builder() && !tls::is_certificate_error(&e),
                message: error_chain(&e),
            }
        };
        let resp = rb.send().await.map_err(failure)?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let final_url = resp.url().to_string();
        let body = resp.bytes().await.map_err(failure)?;
        Ok(Response {
            status,
            headers,
            body: body.to_vec(),
            method: req.method.as_str().to_string(),
            url: final_url,
        })
    }

    /// Sends a request and returns the response whatever its status, after the retries and
    /// the redirect Vault's client makes.
    pub async fn send(&self, req: &Request) -> Result<Response, ClientError> {
        let deadline = (!self.cfg.timeout.is_zero()).then(|| Instant::now() + self.cfg.timeout);
        let mut url = self.url(&req.path, &req.query);
        let mut redirected = false;
        let mut retries = 0u32;
        loop {
            let outcome = match deadline {
                Some(d) => tokio::time::timeout_at(d, self.attempt(req, &url))
                    .await
                    .unwrap_or_else(|_| {
                        Err(Failure {
                            message: "context deadline exceeded".to_string(),
                            retryable: false,
                        })
                    }),
                None => self.attempt(req, &url).await,
            };
            if let Ok(resp) = &outcome
                && matches!(resp.status, 301 | 302 | 307)
                && !redirected
                && !self.cfg.disable_redirects
            {
                url = self.redirect_target(req, &url, resp)?;
                redirected = true;
                continue;
            }
            let (retryable, status, retry_after) = match &outcome {
                Ok(resp) => (
                    retry::is_retryable_status(resp.status),
                    Some(resp.status),
                    resp.headers
                        .get(RETRY_AFTER)
                        .and_then(|v| v.to_str().ok())
                        .and_then(retry::parse_retry_after),
                ),
                Err(f) => (f.retryable, None, None),
            };
            if retryable && retries < self.cfg.max_retries {
                let wait = retry::backoff(
                    self.cfg.min_retry_wait,
                    self.cfg.max_retry_wait,
                    retries + 1,
                    status,
                    retry_after,
                    retry::jitter(),
                );
                if deadline.is_none_or(|d| Instant::now() + wait < d) {
                    tokio::time::sleep(wait).await;
                    retries += 1;
                    continue;
                }
            }
            return outcome.map_err(|f| ClientError::Transport {
                method: go_method_name(&req.method),
                url: url.to_string(),
                message: f.message,
            });
        }
    }

    /// Where a redirect points, refusing a move from https to http (as Vault's client does).
    fn redirect_target(
        &self,
        req: &Request,
        from: &Url,
        resp: &Response,
    ) -> Result<Url, ClientError> {
        let transport = |message: &str| ClientError::Transport {
            method: go_method_name(&req.method),
            url: from.to_string(),
            message: message.to_string(),
        };
        let to = resp
            .headers
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|loc| from.join(loc).ok())
            .ok_or_else(|| transport("redirect without a valid Location"))?;
        if from.scheme() == "https" && to.scheme() != "https" {
            return Err(transport("redirect would cause protocol downgrade"));
        }
        Ok(to)
    }

    /// Sends a request; statuses of 400 and above become [`ApiError`]s.
    pub async fn call(&self, req: &Request) -> Result<Response, ClientError> {
        let resp = self.send(req).await?;
        if resp.status >= 400 {
            return Err(ApiError::from_response(&resp).into());
        }
        Ok(resp)
    }

    /// Sends a request and decodes the body as a response envelope (`None` when empty).
    pub async fn secret(&self, req: &Request) -> Result<Option<Secret>, ClientError> {
        let resp = self.call(req).await?;
        Ok(secret::parse(&resp.body)?)
    }

    /// Sends a request and decodes the body as plain JSON (`Null` when empty).
    pub async fn json(&self, req: &Request) -> Result<Value, ClientError> {
        let resp = self.call(req).await?;
        if resp.body.iter().all(u8::is_ascii_whitespace) {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&resp.body).map_err(|e| DecodeError(e.to_string()).into())
    }

    /// A read or list with the Go client's 404 rule: a 404 is "nothing there" unless the
    /// body carries data or warnings (KV v2 answers a deleted version that way).
    pub async fn lenient(&self, req: &Request) -> Result<Option<Secret>, ClientError> {
        let resp = self.send(req).await?;
        if resp.status == 404 {
            return Ok(secret::parse(&resp.body)
                .ok()
                .flatten()
                .filter(|s| s.has_data() || s.has_warnings()));
        }
        if resp.status >= 400 {
            return Err(ApiError::from_response(&resp).into());
        }
        Ok(secret::parse(&resp.body)?)
    }

    /// `GET path` (query parameters as request data), with the 404 rule.
    pub async fn read(
        &self,
        path: &str,
        query: &[(String, String)],
    ) -> Result<Option<Secret>, ClientError> {
        let mut req = Request::new(Method::GET, path);
        req.query = query.to_vec();
        self.lenient(&req).await
    }

    /// `GET path?list=true`, with the 404 rule.
    pub async fn list(&self, path: &str) -> Result<Option<Secret>, ClientError> {
        self.lenient(&Request::new(Method::GET, path).query("list", "true"))
            .await
    }

    /// `PUT path` with a JSON body.
    pub async fn write(&self, path: &str, body: Value) -> Result<Option<Secret>, ClientError> {
        self.secret(&Request::new(Method::PUT, path).json(body))
            .await
    }

    /// `PATCH path` as a JSON merge patch.
    pub async fn patch(&self, path: &str, body: Value) -> Result<Option<Secret>, ClientError> {
        let mut req = Request::new(Method::PATCH, path).json(body);
        req.merge_patch = true;
        self.secret(&req).await
    }

    /// `DELETE path`.
    pub async fn delete(
        &self,
        path: &str,
        query: &[(String, String)],
    ) -> Result<Option<Secret>, ClientError> {
        let mut req = Request::new(Method::DELETE, path);
        req.query = query.to_vec();
        self.secret(&req).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(address: &str) -> Client {
        Client::new(ClientConfig {
            address: address.into(),
            ..ClientConfig::default()
        })
        .unwrap()
    }

    #[test]
    fn urls_put_v1_after_any_base_path() {
        let c = client("http://127.0.0.1:8200/");
        assert_eq!(
            c.url("secret/foo bar", &[("list".into(), "true".into())])
                .as_str(),
            "http://127.0.0.1:8200/v1/secret/foo%20bar?list=true"
        );
        let c = client("https://vault.example/prefix");
        assert_eq!(
            c.url("/sys/health", &[]).as_str(),
            "https://vault.example/prefix/v1/sys/health"
        );
        // A `?` is part of the path, as in Vault's client.
        let c = client("http://127.0.0.1:8200");
        assert_eq!(
            c.url("secret/a?b", &[]).as_str(),
            "http://127.0.0.1:8200/v1/secret/a%3Fb"
        );
    }

    #[test]
    fn bad_addresses_and_half_identities_are_rejected() {
        let bad = |cfg: ClientConfig| Client::new(cfg).unwrap_err();
        let e = bad(ClientConfig {
            address: "ftp://x".into(),
            ..ClientConfig::default()
        });
        assert!(matches!(e, ConfigError::Address { .. }), "{e}");
        let e = bad(ClientConfig {
            address: "not a url".into(),
            ..ClientConfig::default()
        });
        assert!(matches!(e, ConfigError::Address { .. }), "{e}");
        let mut cfg = ClientConfig {
            address: "http://x".into(),
            ..ClientConfig::default()
        };
        cfg.tls.client_cert = Some("/nonexistent".into());
        assert!(matches!(bad(cfg), ConfigError::HalfIdentity));
        let mut cfg = ClientConfig {
            address: "http://x".into(),
            ..ClientConfig::default()
        };
        cfg.tls.ca_cert = Some("/nonexistent/ca.pem".into());
        assert!(matches!(bad(cfg), ConfigError::Tls { .. }));
    }

    #[test]
    fn tokens_can_be_replaced_without_touching_the_original() {
        let mut a = client("http://127.0.0.1:8200");
        a.set_token(Some(Zeroizing::new("tok-alpha".into())));
        let b = a.with_token(Some(Zeroizing::new("tok-beta".into())));
        assert_eq!(
            (a.token(), b.token()),
            (Some("tok-alpha"), Some("tok-beta"))
        );
        assert!(!format!("{a:?}").contains("tok-alpha"));
    }

    #[test]
    fn go_method_names() {
        assert_eq!(go_method_name(&Method::GET), "Get");
        assert_eq!(go_method_name(&Method::DELETE), "Delete");
    }
}
