//! The agent's listener: an API proxy to the server with an optional cache, and the agent's
//! own endpoints under `/agent/v1/`.
//!
//! - `api_proxy.use_auto_auth_token`: `true` adds the agent's token to requests that carry
//!   none; `"force"` replaces the client's token.
//! - `cache {}`: a response that carries a lease (`lease_id`) or a new token (token creation
//!   and logins) is kept, keyed by method, path, query, body and the token that asked; the
//!   same request again is answered from the cache without reaching the server. Cached leases
//!   and tokens are renewed at two thirds of their TTL while they live, and evicted when the
//!   renewal fails, when they expire, when a revocation of them (or of the token that
//!   created them) goes through the proxy, and on `/agent/v1/cache-clear`.
//! - `POST /agent/v1/certificate/NAME/rotate` forces a certificate block to rotate (at most
//!   one request per certificate every 10 seconds).
//! - `GET /agent/v1/metrics`: request and cache counters in Prometheus text.
//!
//! Tokens are kept in memory only, never logged.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio::sync::watch;
use tresor_client::Client;

use crate::auth::Token;
use crate::cert::Rotations;
use crate::config::{Config, Listener, UseAutoAuthToken};

/// A bound listener, ready to serve.
pub enum Bound {
    /// TCP.
    Tcp(tokio::net::TcpListener),
    /// A Unix socket (removed again when the agent stops).
    Unix(tokio::net::UnixListener, PathBuf),
}

/// Binds every listener; a port in use stops the agent before it starts.
pub async fn bind(listeners: &[Listener]) -> Result<Vec<Bound>, String> {
    let mut out = Vec::new();
    for l in listeners {
        out.push(match l {
            Listener::Tcp(addr) => Bound::Tcp(
                tokio::net::TcpListener::bind(addr)
                    .await
                    .map_err(|e| format!("listener \"tcp\": cannot listen on {addr}: {e}"))?,
            ),
            Listener::Unix(path) => {
                if path.exists() {
                    let _ = std::fs::remove_file(path);
                }
                let u = tokio::net::UnixListener::bind(path).map_err(|e| {
                    format!(
                        "listener \"unix\": cannot listen on {}: {e}",
                        path.display()
                    )
                })?;
                Bound::Unix(u, path.clone())
            }
        });
    }
    Ok(out)
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    Lease(String),
    Token {
        client_token: String,
        accessor: String,
    },
}

struct Entry {
    status: u16,
    content_type: Option<HeaderValue>,
    body: Bytes,
    kind: Kind,
    /// The token of the request that created the entry.
    token: String,
    /// The request path, for `request_path` clears.
    path: String,
    expires: Instant,
}

#[derive(Default)]
struct Metrics {
    requests: AtomicU64,
    hits: AtomicU64,
    misses: AtomicU64,
}

struct Inner {
    http: reqwest::Client,
    base: String,
    use_token: UseAutoAuthToken,
    token_rx: watch::Receiver<Option<Token>>,
    cache: Option<Mutex<HashMap<String, Entry>>>,
    rotations: Arc<Rotations>,
    last_rotation: Mutex<HashMap<String, Instant>>,
    metrics: Metrics,
}

/// What every connection shares.
#[derive(Clone)]
pub struct State(Arc<Inner>);

impl State {
    /// Builds the proxy's upstream client and cache.
    pub fn new(
        cfg: &Config,
        client: Client,
        token_rx: watch::Receiver<Option<Token>>,
        rotations: Arc<Rotations>,
    ) -> Result<State, String> {
        let c = client.config();
        let mut b = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .pool_max_idle_per_host(64);
        if c.address.starts_with("https") {
            let tls =
                tresor_client::tls::rustls_config(&c.tls).map_err(|e| format!("vault: {e}"))?;
            b = b.tls_backend_preconfigured(tls);
        }
        let http = b.build().map_err(|e| format!("proxy: {e}"))?;
        Ok(State(Arc::new(Inner {
            http,
            base: c.address.trim_end_matches('/').to_string(),
            use_token: cfg.api_proxy.use_auto_auth_token,
            token_rx,
            cache: cfg.cache.then(|| Mutex::new(HashMap::new())),
            rotations,
            last_rotation: Mutex::new(HashMap::new()),
            metrics: Metrics::default(),
        })))
    }
}

/// Serves one listener until the agent stops.
pub async fn serve(l: Bound, state: State) -> Result<(), String> {
    let app = axum::Router::new().fallback(handle).with_state(state);
    match l {
        Bound::Tcp(t) => axum::serve(t, app)
            .await
            .map_err(|e| format!("listener: {e}")),
        Bound::Unix(u, path) => {
            struct Cleanup(PathBuf);
            impl Drop for Cleanup {
                fn drop(&mut self) {
                    let _ = std::fs::remove_file(&self.0);
                }
            }
            let _c = Cleanup(path);
            axum::serve(u, app)
                .await
                .map_err(|e| format!("listener: {e}"))
        }
    }
}

fn error(status: StatusCode, msg: &str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        json!({ "errors": [msg] }).to_string(),
    )
        .into_response()
}

async fn handle(
    axum::extract::State(state): axum::extract::State<State>,
    req: axum::extract::Request,
) -> Response {
    let s = &state.0;
    let (parts, body) = req.into_parts();
    let path = parts.uri.path().to_string();
    let body = match axum::body::to_bytes(body, 32 << 20).await {
        Ok(b) => b,
        Err(_) => return error(StatusCode::PAYLOAD_TOO_LARGE, "request body too large"),
    };
    if let Some(rest) = path.strip_prefix("/agent/v1/") {
        return agent_endpoint(s, &parts.method, rest, &body);
    }
    if !path.starts_with("/v1/") {
        return error(StatusCode::NOT_FOUND, "not found");
    }
    s.metrics.requests.fetch_add(1, Ordering::Relaxed);
    let client_token = parts
        .headers
        .get("x-vault-token")
        .and_then(|v| v.to_str().ok())
        .filter(|t| !t.is_empty())
        .map(str::to_string);
    let agent_token = || s.token_rx.borrow().as_ref().map(|t| t.to_string());
    let token = match s.use_token {
        UseAutoAuthToken::No => client_token,
        UseAutoAuthToken::Yes => client_token.or_else(agent_token),
        UseAutoAuthToken::Force => agent_token(),
    };
    let token = token.unwrap_or_default();
    let api_path = path.trim_start_matches("/v1/").to_string();
    let pq = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| path.clone());
    let key = format!(
        "{}\0{pq}\0{token}\0{}",
        parts.method,
        String::from_utf8_lossy(&body)
    );
    if let Some(cache) = &s.cache
        && cacheable_request(&parts.method, &api_path)
    {
        let mut c = cache.lock().unwrap_or_else(|e| e.into_inner());
        match c.get(&key) {
            Some(e) if e.expires > Instant::now() => {
                s.metrics.hits.fetch_add(1, Ordering::Relaxed);
                let mut r = Response::new(Body::from(e.body.clone()));
                *r.status_mut() = StatusCode::from_u16(e.status).unwrap_or(StatusCode::OK);
                if let Some(ct) = &e.content_type {
                    r.headers_mut().insert(header::CONTENT_TYPE, ct.clone());
                }
                r.headers_mut()
                    .insert("x-cache", HeaderValue::from_static("HIT"));
                return r;
            }
            Some(_) => {
                c.remove(&key);
            }
            None => {}
        }
        s.metrics.misses.fetch_add(1, Ordering::Relaxed);
    }

    // Forward.
    let url = format!("{}{pq}", s.base);
    let mut rb = s.http.request(parts.method.clone(), &url);
    for (k, v) in parts.headers.iter() {
        if matches!(
            k.as_str(),
            "host" | "content-length" | "connection" | "x-vault-token" | "transfer-encoding"
        ) {
            continue;
        }
        rb = rb.header(k, v);
    }
    if !token.is_empty() {
        rb = rb.header("x-vault-token", &token);
    }
    let resp = match rb.body(body.clone()).send().await {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(path = %api_path, error = %e, "proxy: the server did not answer");
            return error(
                StatusCode::BAD_GATEWAY,
                "the agent could not reach the server",
            );
        }
    };
    let status = resp.status().as_u16();
    let headers: HeaderMap = resp.headers().clone();
    let rbody = match resp.bytes().await {
        Ok(b) => b,
        Err(_) => return error(StatusCode::BAD_GATEWAY, "the server's answer was cut short"),
    };
    if let Some(cache) = &s.cache {
        if (200..300).contains(&status) {
            evict_on_revocation(cache, &parts.method, &api_path, &body, &token);
        }
        if status == 200 && cacheable_request(&parts.method, &api_path) {
            remember(&state, cache, key, &api_path, &headers, &rbody, &token);
        }
    }
    let mut r = Response::new(Body::from(rbody));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
    for (k, v) in headers.iter() {
        if matches!(
            k.as_str(),
            "content-length" | "transfer-encoding" | "connection"
        ) {
            continue;
        }
        r.headers_mut().append(k, v.clone());
    }
    r
}

/// Requests whose answers may be cached: not renewals, revocations or lookups of leases.
fn cacheable_request(method: &Method, path: &str) -> bool {
    matches!(*method, Method::GET | Method::PUT | Method::POST)
        && !path.starts_with("sys/")
        && !path.starts_with("auth/token/renew")
        && !path.starts_with("auth/token/revoke")
        && !path.starts_with("auth/token/lookup")
}

fn remember(
    state: &State,
    cache: &Mutex<HashMap<String, Entry>>,
    key: String,
    path: &str,
    headers: &HeaderMap,
    body: &Bytes,
    token: &str,
) {
    let Ok(v) = serde_json::from_slice::<Value>(body) else {
        return;
    };
    let lease = v
        .get("lease_id")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let auth = v.get("auth").filter(|a| a.is_object());
    let (kind, ttl) = if !lease.is_empty() {
        (
            Kind::Lease(lease.to_string()),
            v.get("lease_duration").and_then(Value::as_i64).unwrap_or(0),
        )
    } else if let Some(a) = auth
        && let Some(ct) = a.get("client_token").and_then(Value::as_str)
        && !ct.is_empty()
    {
        (
            Kind::Token {
                client_token: ct.to_string(),
                accessor: a
                    .get("accessor")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
            },
            a.get("lease_duration").and_then(Value::as_i64).unwrap_or(0),
        )
    } else {
        return;
    };
    if ttl <= 0 {
        return;
    }
    let ttl = Duration::from_secs(ttl as u64);
    cache.lock().unwrap_or_else(|e| e.into_inner()).insert(
        key.clone(),
        Entry {
            status: 200,
            content_type: headers.get(header::CONTENT_TYPE).cloned(),
            body: body.clone(),
            kind,
            token: token.to_string(),
            path: path.to_string(),
            expires: Instant::now() + ttl,
        },
    );
    tokio::spawn(renew_entry(state.clone(), key, ttl));
}

/// Renews one cached lease or token at two thirds of its TTL while it stays cached.
async fn renew_entry(state: State, key: String, mut ttl: Duration) {
    let s = &state.0;
    loop {
        tokio::time::sleep(crate::backoff::jitter(ttl.mul_f64(2.0 / 3.0))).await;
        let Some(cache) = &s.cache else { return };
        let (kind, token) = {
            let c = cache.lock().unwrap_or_else(|e| e.into_inner());
            match c.get(&key) {
                Some(e) => (e.kind.clone(), e.token.clone()),
                None => return,
            }
        };
        let req = match &kind {
            Kind::Lease(id) => s
                .http
                .put(format!("{}/v1/sys/leases/renew", s.base))
                .header("x-vault-token", &token)
                .json(&json!({ "lease_id": id })),
            Kind::Token { client_token, .. } => s
                .http
                .post(format!("{}/v1/auth/token/renew-self", s.base))
                .header("x-vault-token", client_token)
                .json(&json!({})),
        };
        let new_ttl = match req.send().await {
            Ok(r) if r.status().is_success() => r
                .json::<Value>()
                .await
                .ok()
                .and_then(|v| {
                    v.get("lease_duration")
                        .and_then(Value::as_i64)
                        .filter(|d| *d > 0)
                        .or_else(|| v.pointer("/auth/lease_duration").and_then(Value::as_i64))
                })
                .unwrap_or(0),
            _ => 0,
        };
        let mut c = cache.lock().unwrap_or_else(|e| e.into_inner());
        if new_ttl < 1 {
            c.remove(&key);
            return;
        }
        ttl = Duration::from_secs(new_ttl as u64);
        match c.get_mut(&key) {
            Some(e) => e.expires = Instant::now() + ttl,
            None => return,
        }
    }
}

fn body_field(body: &[u8], name: &str) -> Option<String> {
    serde_json::from_slice::<Value>(body)
        .ok()?
        .get(name)?
        .as_str()
        .map(str::to_string)
}

/// Evicts what a successful revocation made stale.
fn evict_on_revocation(
    cache: &Mutex<HashMap<String, Entry>>,
    method: &Method,
    path: &str,
    body: &[u8],
    token: &str,
) {
    if !matches!(*method, Method::PUT | Method::POST) {
        return;
    }
    let tail = |prefixes: &[&str]| {
        prefixes
            .iter()
            .find_map(|p| path.strip_prefix(p))
            .map(str::to_string)
    };
    let mut c = cache.lock().unwrap_or_else(|e| e.into_inner());
    let by_token = |c: &mut HashMap<String, Entry>, t: &str| {
        c.retain(|_, e| {
            e.token != t
                && !matches!(&e.kind, Kind::Token { client_token, .. } if client_token == t)
        })
    };
    if let Some(id) = tail(&["sys/leases/revoke/", "sys/revoke/"]) {
        c.retain(|_, e| e.kind != Kind::Lease(id.clone()));
    } else if path == "sys/leases/revoke" || path == "sys/revoke" {
        if let Some(id) = body_field(body, "lease_id") {
            c.retain(|_, e| e.kind != Kind::Lease(id.clone()));
        }
    } else if let Some(prefix) = tail(&[
        "sys/leases/revoke-prefix/",
        "sys/revoke-prefix/",
        "sys/leases/revoke-force/",
        "sys/revoke-force/",
    ]) {
        c.retain(|_, e| !matches!(&e.kind, Kind::Lease(id) if id.starts_with(&prefix)));
    } else if path == "auth/token/revoke" || path == "auth/token/revoke-orphan" {
        if let Some(t) = body_field(body, "token") {
            by_token(&mut c, &t);
        }
    } else if path == "auth/token/revoke-self" {
        by_token(&mut c, token);
    } else if path == "auth/token/revoke-accessor"
        && let Some(a) = body_field(body, "accessor")
    {
        let tokens: Vec<String> = c
            .values()
            .filter_map(|e| match &e.kind {
                Kind::Token {
                    client_token,
                    accessor,
                } if *accessor == a => Some(client_token.clone()),
                _ => None,
            })
            .collect();
        for t in tokens {
            by_token(&mut c, &t);
        }
    }
}

fn agent_endpoint(s: &Inner, method: &Method, rest: &str, body: &[u8]) -> Response {
    match (method, rest) {
        (&Method::POST | &Method::PUT, "cache-clear") => {
            let Some(cache) = &s.cache else {
                return error(StatusCode::BAD_REQUEST, "the cache is not enabled");
            };
            let kind = body_field(body, "type").unwrap_or_default();
            let value = body_field(body, "value").unwrap_or_default();
            let mut c = cache.lock().unwrap_or_else(|e| e.into_inner());
            match kind.as_str() {
                "all" => c.clear(),
                "lease" => c.retain(|_, e| e.kind != Kind::Lease(value.clone())),
                "token" => c.retain(|_, e| {
                    e.token != value
                        && !matches!(&e.kind, Kind::Token { client_token, .. } if *client_token == value)
                }),
                "token_accessor" => c.retain(
                    |_, e| !matches!(&e.kind, Kind::Token { accessor, .. } if *accessor == value),
                ),
                "request_path" => {
                    let p = value.trim_start_matches('/').trim_start_matches("v1/").to_string();
                    c.retain(|_, e| !e.path.starts_with(&p));
                }
                _ => {
                    return error(
                        StatusCode::BAD_REQUEST,
                        "type must be all, lease, token, token_accessor or request_path",
                    );
                }
            }
            StatusCode::OK.into_response()
        }
        (&Method::GET, "metrics") => {
            let entries = s
                .cache
                .as_ref()
                .map(|c| c.lock().unwrap_or_else(|e| e.into_inner()).len())
                .unwrap_or(0);
            let m = &s.metrics;
            let text = format!(
                "# TYPE tresor_agent_proxy_requests_total counter\ntresor_agent_proxy_requests_total {}\n# TYPE tresor_agent_cache_hits_total counter\ntresor_agent_cache_hits_total {}\n# TYPE tresor_agent_cache_misses_total counter\ntresor_agent_cache_misses_total {}\n# TYPE tresor_agent_cache_entries gauge\ntresor_agent_cache_entries {entries}\n",
                m.requests.load(Ordering::Relaxed),
                m.hits.load(Ordering::Relaxed),
                m.misses.load(Ordering::Relaxed),
            );
            ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
        }
        (&Method::POST | &Method::PUT, r)
            if r.starts_with("certificate/") && r.ends_with("/rotate") =>
        {
            let name = &r["certificate/".len()..r.len() - "/rotate".len()];
            {
                let mut last = s.last_rotation.lock().unwrap_or_else(|e| e.into_inner());
                if let Some(t) = last.get(name)
                    && t.elapsed() < Duration::from_secs(10)
                {
                    return error(
                        StatusCode::TOO_MANY_REQUESTS,
                        "a rotation of this certificate was requested less than 10 seconds ago",
                    );
                }
                if s.rotations.force(name) {
                    last.insert(name.to_string(), Instant::now());
                    return StatusCode::ACCEPTED.into_response();
                }
            }
            error(StatusCode::NOT_FOUND, "no certificate block of that name")
        }
        _ => error(StatusCode::NOT_FOUND, "not found"),
    }
}
