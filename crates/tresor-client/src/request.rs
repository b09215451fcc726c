//! One request and its response, as plain values: the API path (without `/v1/`), query,
//! JSON body, which token to send, and whether the configured wrap TTL applies.

use std::fmt;

use serde_json::Value;
use zeroize::Zeroizing;

pub use reqwest::Method;
pub use reqwest::header::HeaderMap;

/// Which token a request carries.
#[derive(Clone, Default)]
pub enum TokenChoice {
    /// The client's configured token, if any.
    #[default]
    Default,
    /// This token instead.
    Override(Zeroizing<String>),
    /// No token at all (logins, unauthenticated endpoints).
    Without,
}

impl fmt::Debug for TokenChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TokenChoice::Default => f.write_str("Default"),
            TokenChoice::Override(_) => f.write_str("Override(<redacted>)"),
            TokenChoice::Without => f.write_str("Without"),
        }
    }
}

/// One request to the server.
#[derive(Debug, Clone)]
pub struct Request {
    /// HTTP method.
    pub method: Method,
    /// API path without the `/v1/` prefix, e.g. `secret/data/foo`. A `?` here is part of the
    /// path (sent as `%3F`), as in Vault's client: query parameters go in [`Request::query`].
    pub path: String,
    /// Query parameters.
    pub query: Vec<(String, String)>,
    /// JSON body.
    pub body: Option<Value>,
    /// Whether the configured wrap TTL applies.
    pub wrap: bool,
    /// Which token to send.
    pub token: TokenChoice,
    /// Send the body as a JSON merge patch (`application/merge-patch+json`).
    pub merge_patch: bool,
}

impl Request {
    /// A request for `path` (leading slashes are ignored).
    pub fn new(method: Method, path: &str) -> Request {
        Request {
            method,
            path: path.trim_start_matches('/').to_string(),
            query: Vec::new(),
            body: None,
            wrap: true,
            token: TokenChoice::Default,
            merge_patch: false,
        }
    }

    /// Adds a query parameter.
    pub fn query(mut self, key: &str, value: &str) -> Request {
        self.query.push((key.to_string(), value.to_string()));
        self
    }

    /// Sets the JSON body.
    pub fn json(mut self, body: Value) -> Request {
        self.body = Some(body);
        self
    }

    /// Never wrap this request's response.
    pub fn no_wrap(mut self) -> Request {
        self.wrap = false;
        self
    }

    /// Chooses the token.
    pub fn token(mut self, token: TokenChoice) -> Request {
        self.token = token;
        self
    }
}

/// A response, whatever its status.
#[derive(Debug, Clone)]
pub struct Response {
    /// HTTP status.
    pub status: u16,
    /// Response headers (`X-Vault-Index`, `Retry-After`, ...).
    pub headers: HeaderMap,
    /// Raw body.
    pub body: Vec<u8>,
    /// The method, for error text.
    pub method: String,
    /// The full URL, for error text.
    pub url: String,
}
