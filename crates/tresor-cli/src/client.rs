//! The HTTP client for a Vault-API server.
//!
//! Owns: building the configuration from flags and `VAULT_*` variables (flags win), TLS
//! (custom CA file or directory, client certificate, skip-verify), the headers every request
//! carries (`X-Vault-Request: true`, `X-Vault-Token`, `X-Vault-Namespace`,
//! `X-Vault-Wrap-TTL`), the `/v1/` URL layout, and Vault's API error text. It also offers the
//! logical operations with the Go client's 404 rules: a read or list that gets a 404 without
//! data is "nothing there" rather than an error.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use reqwest::Method;
use serde_json::Value;
use zeroize::Zeroizing;

use crate::duration;
use crate::env::{self, Env};
use crate::flags::{Kind, Parsed, Spec, flag, parse_bool};
use crate::secret::{self, DecodeError, Secret};

/// Vault's default address.
pub const DEFAULT_ADDRESS: &str = "https://127.0.0.1:8200";

/// The HTTP flags every command accepts.
pub const HTTP_FLAGS: &[Spec] = &[
    flag(
        "address",
        Kind::Str,
        "Address of the server (VAULT_ADDR, default https://127.0.0.1:8200).",
    ),
    flag(
        "ca-cert",
        Kind::Str,
        "PEM file of CA certificates to verify the server with (VAULT_CACERT).",
    ),
    flag(
        "ca-path",
        Kind::Str,
        "Directory of PEM CA certificates (VAULT_CAPATH).",
    ),
    flag(
        "client-cert",
        Kind::Str,
        "PEM client certificate for TLS authentication (VAULT_CLIENT_CERT).",
    ),
    flag(
        "client-key",
        Kind::Str,
        "PEM private key for the client certificate (VAULT_CLIENT_KEY).",
    ),
    flag(
        "tls-skip-verify",
        Kind::Bool,
        "Do not verify the server's certificate (VAULT_SKIP_VERIFY). Insecure.",
    ),
    flag(
        "namespace",
        Kind::Str,
        "Namespace sent as X-Vault-Namespace (VAULT_NAMESPACE).",
    ),
    flag("ns", Kind::Str, "Alias of -namespace."),
    flag(
        "wrap-ttl",
        Kind::Duration,
        "Wrap the response in a cubbyhole token with this TTL (VAULT_WRAP_TTL).",
    ),
    flag(
        "header",
        Kind::Map,
        "Extra request header as key=value; may repeat.",
    ),
    flag(
        "policy-override",
        Kind::Bool,
        "Override soft-mandatory policy checks.",
    ),
];

/// Which token a request carries.
#[derive(Clone, Default)]
pub enum TokenChoice {
    /// The configured token, if any.
    #[default]
    Default,
    /// This token instead.
    Override(Zeroizing<String>),
    /// No token at all.
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
    /// API path without the `/v1/` prefix, e.g. `secret/data/foo`.
    pub path: String,
    /// Query parameters.
    pub query: Vec<(String, String)>,
    /// JSON body.
    pub body: Option<Value>,
    /// Whether the configured wrap TTL applies.
    pub wrap: bool,
    /// Which token to send.
    pub token: TokenChoice,
    /// Send the body as a JSON merge patch.
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
    /// Raw body.
    pub body: Vec<u8>,
    /// The method, for error text.
    pub method: String,
    /// The full URL, for error text.
    pub url: String,
}

/// An error status from the server, printed the way Vault's client prints it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// The method.
    pub method: String,
    /// The full URL.
    pub url: String,
    /// The HTTP status.
    pub status: u16,
    /// The `errors` array of the body.
    pub errors: Vec<String>,
    /// The body, when it was not `{"errors": [...]}`.
    pub raw: Option<String>,
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Error making API request.\n\nURL: {} {}\nCode: {}.",
            self.method, self.url, self.status
        )?;
        if let Some(raw) = &self.raw {
            write!(f, " Raw Message:\n\n{raw}")?;
        } else if !self.errors.is_empty() {
            f.write_str(" Errors:\n\n")?;
            let lines: Vec<String> = self.errors.iter().map(|e| format!("* {e}")).collect();
            f.write_str(&lines.join("\n"))?;
        }
        Ok(())
    }
}

impl std::error::Error for ApiError {}

impl ApiError {
    /// Whether any error message contains `needle`.
    pub fn mentions(&self, needle: &str) -> bool {
        self.errors.iter().any(|e| e.contains(needle))
            || self.raw.as_deref().is_some_and(|r| r.contains(needle))
    }

    /// Decodes an error response.
    pub fn from_response(resp: &Response) -> ApiError {
        let parsed: Option<Vec<String>> = serde_json::from_slice::<Value>(&resp.body)
            .ok()
            .and_then(|v| v.get("errors").cloned())
            .and_then(|e| serde_json::from_value(e).ok());
        let (errors, raw) = match parsed {
            Some(errors) => (errors, None),
            None if resp.body.is_empty() => (Vec::new(), None),
            None => (
                Vec::new(),
                Some(String::from_utf8_lossy(&resp.body).into_owned()),
            ),
        };
        ApiError {
            method: resp.method.clone(),
            url: resp.url.clone(),
            status: resp.status,
            errors,
            raw,
        }
    }
}

/// Anything that can go wrong talking to the server.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The request did not get a response (connection refused, TLS failure, timeout).
    #[error("{method} \"{url}\": {message}")]
    Transport {
        /// Go-style method name (`Get`, `Put`).
        method: String,
        /// The URL.
        url: String,
        /// What failed.
        message: String,
    },
    /// The server answered with an error status.
    #[error(transparent)]
    Api(#[from] ApiError),
    /// The body was not what a Vault server sends.
    #[error(transparent)]
    Decode(#[from] DecodeError),
}

impl ClientError {
    /// The HTTP status, for API errors.
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Api(e) => Some(e.status),
            _ => None,
        }
    }
}

/// Why a client could not be configured.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The address does not parse.
    #[error("invalid address {address:?}: {reason}")]
    Address {
        /// The address given.
        address: String,
        /// What is wrong.
        reason: String,
    },
    /// A variable holds a value of the wrong kind.
    #[error("could not parse {name}: {value:?}")]
    Variable {
        /// The variable.
        name: &'static str,
        /// Its value.
        value: String,
    },
    /// A certificate or key file problem.
    #[error("error loading {what}: {reason}")]
    Tls {
        /// Which file.
        what: String,
        /// What failed.
        reason: String,
    },
    /// Only one of client certificate and key was given.
    #[error("both a client certificate and a client key are needed")]
    HalfIdentity,
    /// The HTTP client could not be built.
    #[error("error creating the HTTP client: {0}")]
    Build(String),
}

/// Everything a client needs.
#[derive(Clone, Default)]
pub struct Config {
    /// Server address, e.g. `http://127.0.0.1:8200`.
    pub address: String,
    /// The token sent with requests.
    pub token: Option<Zeroizing<String>>,
    /// `X-Vault-Namespace`.
    pub namespace: Option<String>,
    /// `X-Vault-Wrap-TTL`.
    pub wrap_ttl: Option<String>,
    /// PEM CA bundle.
    pub ca_cert: Option<PathBuf>,
    /// Directory of PEM CA certificates.
    pub ca_path: Option<PathBuf>,
    /// PEM client certificate.
    pub client_cert: Option<PathBuf>,
    /// PEM client key.
    pub client_key: Option<PathBuf>,
    /// Skip server certificate verification.
    pub skip_verify: bool,
    /// Per-request timeout.
    pub timeout: Duration,
    /// Extra headers.
    pub headers: Vec<(String, String)>,
    /// `X-Vault-Policy-Override: true`.
    pub policy_override: bool,
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("address", &self.address)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("namespace", &self.namespace)
            .field("wrap_ttl", &self.wrap_ttl)
            .field("ca_cert", &self.ca_cert)
            .field("ca_path", &self.ca_path)
            .field("client_cert", &self.client_cert)
            .field("client_key", &self.client_key)
            .field("skip_verify", &self.skip_verify)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl Config {
    /// Builds the configuration: flags first, then `VAULT_*` variables, then defaults; the
    /// token comes from `VAULT_TOKEN`, else the token helper file.
    pub fn from_env(env: &dyn Env, p: &Parsed) -> Result<Config, ConfigError> {
        let pick = |flag_name: &str, var: &str| {
            p.str(flag_name)
                .map(str::to_string)
                .or_else(|| env.var(var))
        };
        let address = pick("address", "VAULT_ADDR").unwrap_or_else(|| DEFAULT_ADDRESS.to_string());
        let skip_verify = if p.is_set("tls-skip-verify") {
            p.bool("tls-skip-verify")
        } else {
            match env.var("VAULT_SKIP_VERIFY") {
                None => false,
                Some(v) => parse_bool(&v).ok_or(ConfigError::Variable {
                    name: "VAULT_SKIP_VERIFY",
                    value: v,
                })?,
            }
        };
        let timeout = match env.var("VAULT_CLIENT_TIMEOUT") {
            None => Duration::from_secs(60),
            Some(v) => {
                let nanos = duration::parse(&v).map_err(|_| ConfigError::Variable {
                    name: "VAULT_CLIENT_TIMEOUT",
                    value: v.clone(),
                })?;
                Duration::from_nanos(nanos.max(0) as u64)
            }
        };
        let wrap_ttl = match p.str("wrap-ttl") {
            Some(v) => Some(v.to_string()),
            None => env.var("VAULT_WRAP_TTL"),
        };
        let token = env
            .var("VAULT_TOKEN")
            .map(Zeroizing::new)
            .or_else(|| env::read_stored_token(env));
        Ok(Config {
            address,
            token,
            namespace: p
                .str("namespace")
                .or(p.str("ns"))
                .map(str::to_string)
                .or_else(|| env.var("VAULT_NAMESPACE")),
            wrap_ttl,
            ca_cert: pick("ca-cert", "VAULT_CACERT").map(PathBuf::from),
            ca_path: pick("ca-path", "VAULT_CAPATH").map(PathBuf::from),
            client_cert: pick("client-cert", "VAULT_CLIENT_CERT").map(PathBuf::from),
            client_key: pick("client-key", "VAULT_CLIENT_KEY").map(PathBuf::from),
            skip_verify,
            timeout,
            headers: p.map("header").into_iter().collect(),
            policy_override: p.bool("policy-override"),
        })
    }
}

fn read_file(path: &PathBuf) -> Result<Vec<u8>, ConfigError> {
    std::fs::read(path).map_err(|e| ConfigError::Tls {
        what: path.display().to_string(),
        reason: e.to_string(),
    })
}

fn load_certs(path: &PathBuf) -> Result<Vec<reqwest::Certificate>, ConfigError> {
    let pem = read_file(path)?;
    let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| ConfigError::Tls {
        what: path.display().to_string(),
        reason: e.to_string(),
    })?;
    if certs.is_empty() {
        return Err(ConfigError::Tls {
            what: path.display().to_string(),
            reason: "no PEM certificates found".to_string(),
        });
    }
    Ok(certs)
}

/// A configured client.
pub struct Client {
    http: reqwest::blocking::Client,
    base: reqwest::Url,
    cfg: Config,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("cfg", &self.cfg)
            .finish_non_exhaustive()
    }
}

fn go_method_name(m: &Method) -> String {
    let s = m.as_str().to_ascii_lowercase();
    let mut c = s.chars();
    match c.next() {
        Some(first) => first.to_ascii_uppercase().to_string() + c.as_str(),
        None => s,
    }
}

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

impl Client {
    /// Builds a client from a configuration.
    ///
    /// This uses reqwest's blocking client, which runs its own small runtime: call it from
    /// plain threads, not from inside an async runtime.
    pub fn new(cfg: Config) -> Result<Client, ConfigError> {
        let base = reqwest::Url::parse(&cfg.address).map_err(|e| ConfigError::Address {
            address: cfg.address.clone(),
            reason: e.to_string(),
        })?;
        if base.scheme() != "http" && base.scheme() != "https" {
            return Err(ConfigError::Address {
                address: cfg.address.clone(),
                reason: "scheme must be http or https".to_string(),
            });
        }
        let mut b = reqwest::blocking::Client::builder()
            .timeout(cfg.timeout)
            .user_agent(concat!("tresor-cli/", env!("CARGO_PKG_VERSION")));
        let mut roots = Vec::new();
        if let Some(path) = &cfg.ca_cert {
            roots.extend(load_certs(path)?);
        }
        if let Some(dir) = &cfg.ca_path {
            let entries = std::fs::read_dir(dir).map_err(|e| ConfigError::Tls {
                what: dir.display().to_string(),
                reason: e.to_string(),
            })?;
            let mut files: Vec<PathBuf> = entries
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.is_file())
                .collect();
            files.sort();
            for file in files {
                roots.extend(load_certs(&file)?);
            }
        }
        if !roots.is_empty() {
            b = b.tls_certs_only(roots);
        }
        match (&cfg.client_cert, &cfg.client_key) {
            (Some(cert), Some(key)) => {
                let mut pem = read_file(cert)?;
                pem.push(b'\n');
                pem.extend(read_file(key)?);
                let id = reqwest::Identity::from_pem(&pem).map_err(|e| ConfigError::Tls {
                    what: cert.display().to_string(),
                    reason: e.to_string(),
                })?;
                b = b.identity(id);
            }
            (None, None) => {}
            _ => return Err(ConfigError::HalfIdentity),
        }
        if cfg.skip_verify {
            b = b.tls_danger_accept_invalid_certs(true);
        }
        let http = b.build().map_err(|e| ConfigError::Build(error_chain(&e)))?;
        Ok(Client { http, base, cfg })
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// The token requests carry by default.
    pub fn token(&self) -> Option<&str> {
        self.cfg.token.as_ref().map(|t| t.as_str())
    }

    /// Replaces the default token.
    pub fn set_token(&mut self, token: Option<Zeroizing<String>>) {
        self.cfg.token = token;
    }

    /// The full URL for an API path (with query).
    pub fn url(&self, path: &str, query: &[(String, String)]) -> reqwest::Url {
        let mut url = self.base.clone();
        let prefix = url.path().trim_end_matches('/').to_string();
        url.set_path(&format!("{prefix}/v1/{}", path.trim_start_matches('/')));
        if !query.is_empty() {
            let mut q = url.query_pairs_mut();
            for (k, v) in query {
                q.append_pair(k, v);
            }
        }
        url
    }

    /// Sends a request and returns the response whatever its status.
    pub fn send(&self, req: &Request) -> Result<Response, ClientError> {
        let url = self.url(&req.path, &req.query);
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
            rb = rb.header("X-Vault-Token", t);
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
        if let Some(body) = &req.body {
            let ct = if req.merge_patch {
                "application/merge-patch+json"
            } else {
                "application/json"
            };
            rb = rb
                .header("Content-Type", ct)
                .body(serde_json::to_vec(body).unwrap_or_default());
        }
        let transport = |message: String| ClientError::Transport {
            method: go_method_name(&req.method),
            url: url.to_string(),
            message,
        };
        let resp = rb.send().map_err(|e| transport(error_chain(&e)))?;
        let status = resp.status().as_u16();
        let final_url = resp.url().to_string();
        let body = resp.bytes().map_err(|e| transport(error_chain(&e)))?;
        Ok(Response {
            status,
            body: body.to_vec(),
            method: req.method.as_str().to_string(),
            url: final_url,
        })
    }

    /// Sends a request; statuses of 400 and above become [`ApiError`]s.
    pub fn call(&self, req: &Request) -> Result<Response, ClientError> {
        let resp = self.send(req)?;
        if resp.status >= 400 {
            return Err(ApiError::from_response(&resp).into());
        }
        Ok(resp)
    }

    /// Sends a request and decodes the body as a response envelope.
    pub fn secret(&self, req: &Request) -> Result<Option<Secret>, ClientError> {
        let resp = self.call(req)?;
        Ok(secret::parse(&resp.body)?)
    }

    /// Sends a request and decodes the body as plain JSON (`Null` when empty).
    pub fn json(&self, req: &Request) -> Result<Value, ClientError> {
        let resp = self.call(req)?;
        if resp.body.iter().all(u8::is_ascii_whitespace) {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&resp.body).map_err(|e| DecodeError(e.to_string()).into())
    }

    /// A read or list with the Go client's 404 rule: a 404 is "nothing there" unless the
    /// body carries data or warnings (KV v2 answers a deleted version that way).
    pub fn lenient(&self, req: &Request) -> Result<Option<Secret>, ClientError> {
        let resp = self.send(req)?;
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

    /// `GET path` (query parameters as request data).
    pub fn read(
        &self,
        path: &str,
        query: &[(String, String)],
    ) -> Result<Option<Secret>, ClientError> {
        let mut req = Request::new(Method::GET, path);
        req.query = query.to_vec();
        self.lenient(&req)
    }

    /// `GET path?list=true`.
    pub fn list(&self, path: &str) -> Result<Option<Secret>, ClientError> {
        self.lenient(&Request::new(Method::GET, path).query("list", "true"))
    }

    /// `PUT path` with a JSON body.
    pub fn write(&self, path: &str, body: Value) -> Result<Option<Secret>, ClientError> {
        self.secret(&Request::new(Method::PUT, path).json(body))
    }

    /// `PATCH path` as a JSON merge patch.
    pub fn patch(&self, path: &str, body: Value) -> Result<Option<Secret>, ClientError> {
        let mut req = Request::new(Method::PATCH, path).json(body);
        req.merge_patch = true;
        self.secret(&req)
    }

    /// `DELETE path`.
    pub fn delete(
        &self,
        path: &str,
        query: &[(String, String)],
    ) -> Result<Option<Secret>, ClientError> {
        let mut req = Request::new(Method::DELETE, path);
        req.query = query.to_vec();
        self.secret(&req)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::env::MapEnv;
    use crate::flags;

    fn parsed(args: &[&str]) -> Parsed {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        flags::parse(&[HTTP_FLAGS], &args).unwrap()
    }

    #[test]
    fn api_error_text_matches_vault() {
        let e = ApiError {
            method: "GET".into(),
            url: "http://127.0.0.1:8200/v1/secret/foo".into(),
            status: 403,
            errors: vec!["permission denied".into()],
            raw: None,
        };
        assert_eq!(
            e.to_string(),
            "Error making API request.\n\nURL: GET http://127.0.0.1:8200/v1/secret/foo\nCode: 403. Errors:\n\n* permission denied"
        );
        let e = ApiError {
            errors: vec!["a".into(), "b".into()],
            ..e
        };
        assert!(e.to_string().ends_with("Errors:\n\n* a\n* b"));
        let e = ApiError {
            errors: vec![],
            ..e
        };
        assert!(e.to_string().ends_with("Code: 403."));
        let resp = Response {
            status: 502,
            body: b"bad gateway".to_vec(),
            method: "PUT".into(),
            url: "http://x/v1/y".into(),
        };
        let e = ApiError::from_response(&resp);
        assert_eq!(e.raw.as_deref(), Some("bad gateway"));
        assert!(
            e.to_string()
                .ends_with("Code: 502. Raw Message:\n\nbad gateway")
        );
        let resp = Response {
            body: br#"{"errors":["x \"y\""]}"#.to_vec(),
            ..resp
        };
        let e = ApiError::from_response(&resp);
        assert_eq!(e.errors, vec!["x \"y\"".to_string()]);
        assert!(e.mentions("x \"y"));
    }

    #[test]
    fn config_precedence_flags_env_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let env = MapEnv::new(Some(dir.path()));
        let cfg = Config::from_env(&env, &parsed(&[])).unwrap();
        assert_eq!(cfg.address, DEFAULT_ADDRESS);
        assert!(cfg.token.is_none());
        assert!(!cfg.skip_verify);
        assert_eq!(cfg.timeout, Duration::from_secs(60));

        let env = env
            .with("VAULT_ADDR", "http://10.0.0.1:8200")
            .with("VAULT_NAMESPACE", "ns1")
            .with("VAULT_SKIP_VERIFY", "true")
            .with("VAULT_WRAP_TTL", "5m")
            .with("VAULT_CLIENT_TIMEOUT", "5");
        let cfg = Config::from_env(&env, &parsed(&[])).unwrap();
        assert_eq!(cfg.address, "http://10.0.0.1:8200");
        assert_eq!(cfg.namespace.as_deref(), Some("ns1"));
        assert!(cfg.skip_verify);
        assert_eq!(cfg.wrap_ttl.as_deref(), Some("5m"));
        assert_eq!(cfg.timeout, Duration::from_secs(5));

        let cfg = Config::from_env(
            &env,
            &parsed(&[
                "-address=http://127.0.0.1:1",
                "-tls-skip-verify=false",
                "-ns=x",
                "-wrap-ttl=1m",
            ]),
        )
        .unwrap();
        assert_eq!(cfg.address, "http://127.0.0.1:1");
        assert!(!cfg.skip_verify);
        assert_eq!(cfg.namespace.as_deref(), Some("x"));
        assert_eq!(cfg.wrap_ttl.as_deref(), Some("1m"));

        let bad = MapEnv::new(None).with("VAULT_SKIP_VERIFY", "sure");
        assert!(matches!(
            Config::from_env(&bad, &parsed(&[])),
            Err(ConfigError::Variable {
                name: "VAULT_SKIP_VERIFY",
                ..
            })
        ));
    }

    #[test]
    fn token_from_env_then_helper_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(".vault-token"), "from-file\n").unwrap();
        let env = MapEnv::new(Some(dir.path()));
        let cfg = Config::from_env(&env, &parsed(&[])).unwrap();
        assert_eq!(cfg.token.as_deref().map(String::as_str), Some("from-file"));
        let env = env.with("VAULT_TOKEN", "from-env");
        let cfg = Config::from_env(&env, &parsed(&[])).unwrap();
        assert_eq!(cfg.token.as_deref().map(String::as_str), Some("from-env"));
        assert!(!format!("{cfg:?}").contains("from-env"));
    }

    #[test]
    fn urls_put_v1_after_any_base_path() {
        let cfg = Config {
            address: "http://127.0.0.1:8200/".into(),
            timeout: Duration::from_secs(1),
            ..Config::default()
        };
        let c = Client::new(cfg).unwrap();
        assert_eq!(
            c.url("secret/foo bar", &[("list".into(), "true".into())])
                .as_str(),
            "http://127.0.0.1:8200/v1/secret/foo%20bar?list=true"
        );
        let cfg = Config {
            address: "https://vault.example/prefix".into(),
            timeout: Duration::from_secs(1),
            ..Config::default()
        };
        let c = Client::new(cfg).unwrap();
        assert_eq!(
            c.url("/sys/health", &[]).as_str(),
            "https://vault.example/prefix/v1/sys/health"
        );
    }

    #[test]
    fn bad_addresses_and_half_identities_are_rejected() {
        let cfg = Config {
            address: "ftp://x".into(),
            ..Config::default()
        };
        assert!(matches!(Client::new(cfg), Err(ConfigError::Address { .. })));
        let cfg = Config {
            address: "not a url".into(),
            ..Config::default()
        };
        assert!(matches!(Client::new(cfg), Err(ConfigError::Address { .. })));
        let cfg = Config {
            address: "http://x".into(),
            client_cert: Some("/nonexistent".into()),
            ..Config::default()
        };
        assert!(matches!(Client::new(cfg), Err(ConfigError::HalfIdentity)));
        let cfg = Config {
            address: "http://x".into(),
            ca_cert: Some("/nonexistent/ca.pem".into()),
            ..Config::default()
        };
        assert!(matches!(Client::new(cfg), Err(ConfigError::Tls { .. })));
    }

    #[test]
    fn transport_errors_name_method_and_url() {
        // A port nothing listens on: bind then drop to get a free one.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let cfg = Config {
            address: format!("http://127.0.0.1:{port}"),
            timeout: Duration::from_secs(5),
            ..Config::default()
        };
        let c = Client::new(cfg).unwrap();
        let err = c.read("secret/foo", &[]).unwrap_err();
        let text = err.to_string();
        assert!(
            text.starts_with(&format!("Get \"http://127.0.0.1:{port}/v1/secret/foo\": ")),
            "{text}"
        );
        assert_eq!(err.status(), None);
    }
}
