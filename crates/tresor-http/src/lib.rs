//! The HTTP edge: the only crate that knows status codes, headers and Vault's JSON envelope.
//!
//! Every request goes through [`dispatch`]: the seal-lifecycle endpoints that Vault answers with
//! bare JSON (`sys/init`, `sys/unseal`, `sys/health`, ...) are served here on the [`Core`]
//! directly; everything else becomes a [`CoreRequest`] for the core's pipeline, and the answer
//! is wrapped in Vault's envelope. Errors are mapped to status codes once, in [`error_status`].
//!
//! We use hyper directly rather than an axum router: every `/v1/` path is routed dynamically by
//! the core's mount table, so a router would only ever hold one fallback route.

#![forbid(unsafe_code)]

mod client_key;
mod deadline;
mod forwarded;
pub mod ha;
mod listener;
pub mod ops;
mod raw;
mod ui;

pub use forwarded::{Cidr, ForwardedFor};
pub use listener::{
    Bound, ClientAuth, ListenerConfig, Timeouts, TlsSettings, bind, cipher_suite,
    default_max_connections, serve,
};

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use serde_json::{Map, Value, json};
use tresor_core::{Core, CoreError, CoreRequest, CoreResponse};
use tresor_sdk::Operation;
use zeroize::Zeroizing;

/// Vault's default request size limit (`max_request_size`).
pub const DEFAULT_MAX_REQUEST_SIZE: usize = 32 * 1024 * 1024;

/// The request size limit of a snapshot restore (`POST sys/storage/raft/snapshot[-force]`),
/// which alone may exceed `max_request_size`: the body is held in memory while it is checked.
pub const DEFAULT_MAX_SNAPSHOT_SIZE: usize = 1024 * 1024 * 1024;

pub type Body = Full<Bytes>;

/// The HTTP settings a request is handled with: the server's, with its listener's laid over
/// them by [`serve`].
#[derive(Debug, Clone)]
pub struct HttpConfig {
    pub max_request_size: usize,
    /// The body limit of a snapshot restore, the one request allowed past `max_request_size`
    /// (never below it).
    pub max_snapshot_size: usize,
    /// How long a request's body may take to arrive (`http_read_timeout`); `None` = no limit.
    /// The listener counts it from the request's first byte; a caller of [`dispatch`] that sets
    /// no [`ReadDeadline`] gets it counted from the call.
    pub read_timeout: Option<Duration>,
    /// The listener's `X-Forwarded-For` handling; `None` ignores the header.
    pub forwarded_for: Option<ForwardedFor>,
    /// Serve the web UI under `/ui/` (`ui = true`, always in `-dev`); off, `/ui/` is a 404.
    pub ui: bool,
    /// The listener's `telemetry { unauthenticated_metrics_access }`.
    pub unauthenticated_metrics_access: bool,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            max_request_size: DEFAULT_MAX_REQUEST_SIZE,
            max_snapshot_size: DEFAULT_MAX_SNAPSHOT_SIZE,
            read_timeout: None,
            forwarded_for: None,
            ui: false,
            unauthenticated_metrics_access: false,
        }
    }
}

/// A request extension: the instant by which its body must have arrived.
#[derive(Debug, Clone, Copy)]
pub struct ReadDeadline(pub tokio::time::Instant);

/// Facts about the connection a request came in on.
#[derive(Debug, Clone, Default)]
pub struct ConnInfo {
    pub remote_addr: Option<String>,
    /// DER of the client's certificate chain, if it presented one.
    pub peer_certs: Vec<Vec<u8>>,
}

fn with_headers(status: StatusCode, body: Vec<u8>, content_type: &str) -> http::Response<Body> {
    let mut r = http::Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Some(v) = HeaderValue::from_str(content_type)
        .ok()
        .filter(|_| !content_type.is_empty())
    {
        h.insert(header::CONTENT_TYPE, v);
    }
    r
}

/// A JSON response with Vault's standard headers.
pub fn json_response(status: StatusCode, v: &Value) -> http::Response<Body> {
    let mut body = serde_json::to_vec(v).unwrap_or_default();
    body.push(b'\n');
    with_headers(status, body, "application/json")
}

pub fn empty(status: StatusCode) -> http::Response<Body> {
    with_headers(status, Vec::new(), "application/json")
}

/// `{"errors": [...]}` with the given status.
pub fn error_response(status: StatusCode, errors: &[String]) -> http::Response<Body> {
    json_response(status, &json!({ "errors": errors }))
}

/// The one mapping from core errors to HTTP status codes.
pub fn error_status(e: &CoreError) -> StatusCode {
    match e {
        CoreError::Sealed => StatusCode::SERVICE_UNAVAILABLE,
        CoreError::NotInitialized => StatusCode::SERVICE_UNAVAILABLE,
        CoreError::AlreadyInitialized
        | CoreError::InvalidUnsealKey
        | CoreError::InvalidRequest(_)
        | CoreError::Conflict(_) => StatusCode::BAD_REQUEST,
        CoreError::PermissionDenied | CoreError::Forbidden(_) => StatusCode::FORBIDDEN,
        CoreError::NoRoute(_)
        | CoreError::UnsupportedPath
        | CoreError::NotFound(_)
        | CoreError::NotFoundEmpty => StatusCode::NOT_FOUND,
        CoreError::UnsupportedOperation => StatusCode::METHOD_NOT_ALLOWED,
        CoreError::RateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
        CoreError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

pub fn core_error(e: &CoreError) -> http::Response<Body> {
    let status = error_status(e);
    if let CoreError::Internal(m) = e {
        tracing::error!(error = %m, "internal error");
    }
    match e {
        CoreError::NotFoundEmpty => error_response(status, &[]),
        CoreError::NotInitialized => error_response(status, &["Vault is sealed".into()]),
        other => error_response(status, &[other.to_string()]),
    }
}

/// Routes whose `data` Vault also copies to the top level of the envelope.
fn injects_data(path: &str) -> bool {
    const EXACT: &[&str] = &[
        "sys/audit",
        "sys/auth",
        "sys/config/cors",
        "sys/config/auditing/request-headers",
        "sys/capabilities",
        "sys/capabilities-accessor",
        "sys/capabilities-self",
        "sys/ha-status",
        "sys/key-status",
        "sys/mounts",
        "sys/policy",
        "sys/rekey/backup",
        "sys/rekey/recovery-key-backup",
        "sys/remount",
        "sys/rotate",
        "sys/wrapping/wrap",
    ];
    const PREFIX: &[&str] = &[
        "sys/audit/",
        "sys/audit-hash/",
        "sys/auth/",
        "sys/config/auditing/request-headers/",
        "sys/mounts/",
        "sys/policy/",
    ];
    let p = path.trim_end_matches('/');
    EXACT.contains(&p) || PREFIX.iter().any(|x| path.starts_with(x))
}

fn envelope(path: &str, r: CoreResponse) -> Value {
    if let Some(w) = r.wrap_info {
        return json!({"request_id": r.request_id, "lease_id": "", "renewable": false, "lease_duration": 0, "data": null, "wrap_info": w, "warnings": null, "auth": null, "mount_type": ""});
    }
    let resp = r.response.unwrap_or_default();
    let data = resp.data.map(Value::Object).unwrap_or(Value::Null);
    let mut out = Map::new();
    if injects_data(path)
        && let Value::Object(d) = &data
    {
        for (k, v) in d {
            out.insert(k.clone(), v.clone());
        }
    }
    out.insert("request_id".into(), json!(r.request_id));
    out.insert("lease_id".into(), json!(r.lease_id));
    out.insert("renewable".into(), json!(r.renewable));
    out.insert("lease_duration".into(), json!(r.lease_duration));
    out.insert("data".into(), data);
    out.insert("wrap_info".into(), Value::Null);
    out.insert(
        "warnings".into(),
        if resp.warnings.is_empty() {
            Value::Null
        } else {
            json!(resp.warnings)
        },
    );
    out.insert("auth".into(), r.auth.unwrap_or(Value::Null));
    out.insert("mount_type".into(), json!(r.mount_type));
    Value::Object(out)
}

/// Parses a query string into (key, value) pairs, percent-decoded.
pub fn parse_query(q: Option<&str>) -> Vec<(String, String)> {
    let Some(q) = q else { return Vec::new() };
    q.split('&')
        .filter(|s| !s.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

/// An `application/x-www-form-urlencoded` body as request data.
fn form_data(body: &[u8]) -> Map<String, Value> {
    let text = String::from_utf8_lossy(body);
    let mut out = Map::new();
    for (k, v) in parse_query(Some(text.trim())) {
        match out.get_mut(&k) {
            None => {
                out.insert(k, Value::String(v));
            }
            Some(Value::Array(a)) => a.push(Value::String(v)),
            Some(first) => {
                let prev = first.take();
                *first = Value::Array(vec![prev, Value::String(v)]);
            }
        }
    }
    out
}

fn percent_decode(s: &str) -> String {
    String::from_utf8_lossy(&tresor_sdk::percent::decode(s, true)).into_owned()
}

/// Decodes a request path once, for the ACL and the handler alike. Unlike a query string, a
/// path keeps `+` as `+`; bytes that are not UTF-8 or decode to control characters are refused
/// (two spellings must never alias one key, and nothing internal may echo back).
fn decode_path(s: &str) -> Result<String, http::Response<Body>> {
    let bad = |why: &str| {
        error_response(
            StatusCode::BAD_REQUEST,
            &[format!("invalid request path: {why}")],
        )
    };
    let decoded = String::from_utf8(tresor_sdk::percent::decode(s, false))
        .map_err(|_| bad("it is not valid UTF-8"))?;
    if decoded.chars().any(char::is_control) {
        return Err(bad("control characters are not allowed"));
    }
    Ok(decoded)
}

/// The clean form of a decoded request path (what follows `/v1/`) when it is spelled with
/// empty, `.` or `..` segments, as Go's `path.Clean` makes it: the full path from `/`, a
/// trailing `/` kept. `None` when the path is already clean.
fn clean_path(path: &str) -> Option<String> {
    let segments = path.split('/').count();
    let unclean = path
        .split('/')
        .enumerate()
        .any(|(i, seg)| seg == "." || seg == ".." || (seg.is_empty() && i + 1 < segments));
    if !unclean {
        return None;
    }
    let mut out: Vec<&str> = vec!["v1"];
    for seg in path.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            s => out.push(s),
        }
    }
    let mut clean = format!("/{}", out.join("/"));
    if path.ends_with('/') && clean != "/" {
        clean.push('/');
    }
    Some(clean)
}

/// Percent-encodes what may not appear as is in a URL path (a redirect's `Location`).
fn encode_path(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for b in path.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/!$&'()*+,;=:@".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn token_of(headers: &HeaderMap) -> Option<Zeroizing<String>> {
    if let Some(t) = headers.get("x-vault-token").and_then(|v| v.to_str().ok()) {
        return Some(Zeroizing::new(t.trim().to_owned()));
    }
    headers
        .get_all(header::AUTHORIZATION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| {
            v.strip_prefix("Bearer ")
                .map(|t| Zeroizing::new(t.trim().to_owned()))
        })
}

fn parse_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" | "" => Some(false),
        _ => None,
    }
}

/// Reads the raw body under the size limit.
async fn read_raw<B>(body: B, limit: usize) -> Result<Bytes, http::Response<Body>>
where
    B: hyper::body::Body,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    match Limited::new(body, limit).collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) if e.to_string().contains("length limit exceeded") => Err(error_response(
            StatusCode::PAYLOAD_TOO_LARGE,
            &["http: request body too large".into()],
        )),
        Err(e) => Err(error_response(
            StatusCode::BAD_REQUEST,
            &[format!("error reading request body: {e}")],
        )),
    }
}

/// Reads the body under the size limit and parses it as a JSON object.
async fn read_body<B>(
    body: B,
    limit: usize,
) -> Result<Option<Map<String, Value>>, http::Response<Body>>
where
    B: hyper::body::Body,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let collected = match Limited::new(body, limit).collect().await {
        Ok(c) => c.to_bytes(),
        Err(e) => {
            let too_large = e.to_string().contains("length limit exceeded");
            return Err(if too_large {
                error_response(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    &["http: request body too large".into()],
                )
            } else {
                error_response(
                    StatusCode::BAD_REQUEST,
                    &[format!("error reading request body: {e}")],
                )
            });
        }
    };
    json_body(&collected)
}

/// A JSON request body: an object, or nothing.
fn json_body(collected: &[u8]) -> Result<Option<Map<String, Value>>, http::Response<Body>> {
    if collected.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    match serde_json::from_slice::<Value>(collected) {
        Ok(Value::Object(m)) => Ok(Some(m)),
        Ok(Value::Null) => Ok(None),
        Ok(_) => Err(error_response(
            StatusCode::BAD_REQUEST,
            &["error parsing JSON: request body must be a JSON object".into()],
        )),
        Err(e) => Err(error_response(
            StatusCode::BAD_REQUEST,
            &[format!("error parsing JSON: {e}")],
        )),
    }
}

/// Handles one HTTP request end to end. A HA node buffers the body first: a standby may
/// forward the request to the active node ([`ha`]), and every answer carries the node's index.
pub async fn dispatch<B>(
    core: &Core,
    cfg: &HttpConfig,
    conn: &ConnInfo,
    req: http::Request<B>,
) -> http::Response<Body>
where
    B: hyper::body::Body,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    if !core.ha_enabled() {
        return dispatch_inner(core, cfg, conn, req, false).await;
    }
    let (parts, body) = req.into_parts();
    let path = parts.uri.path().strip_prefix("/v1/").unwrap_or_default();
    let limit = if is_snapshot_restore(&parts.method, path) {
        cfg.max_snapshot_size.max(cfg.max_request_size)
    } else {
        cfg.max_request_size
    };
    let deadline = parts
        .extensions
        .get::<ReadDeadline>()
        .map(|d| d.0)
        .or_else(|| cfg.read_timeout.map(|d| tokio::time::Instant::now() + d));
    let body = match deadline {
        None => read_raw(body, limit).await,
        Some(at) => match tokio::time::timeout_at(at, read_raw(body, limit)).await {
            Ok(r) => r,
            Err(_) => Err(error_response(
                StatusCode::REQUEST_TIMEOUT,
                &["http: request body read timed out".into()],
            )),
        },
    };
    let r = match body {
        Ok(b) => ha::dispatch(core, cfg, conn, parts, b).await,
        Err(r) => r,
    };
    ha::with_index(core, r)
}

/// [`dispatch`] on this node. `standby`: the core runs the request as a standby's read, and
/// an answer marked [`ha::ForwardMarker`] means it needed a write (nothing was written).
pub(crate) async fn dispatch_inner<B>(
    core: &Core,
    cfg: &HttpConfig,
    conn: &ConnInfo,
    req: http::Request<B>,
    standby: bool,
) -> http::Response<Body>
where
    B: hyper::body::Body,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let (parts, body) = req.into_parts();
    // A trusted proxy's X-Forwarded-For decides the client address, for every path (as in Vault).
    let forwarded;
    let conn = match &cfg.forwarded_for {
        None => conn,
        Some(ff) => {
            let peer = conn.remote_addr.as_deref().and_then(|a| a.parse().ok());
            let values: Vec<&str> = parts
                .headers
                .get_all("x-forwarded-for")
                .iter()
                .map(|v| v.to_str().unwrap_or(""))
                .collect();
            match ff.client(peer, &values) {
                Ok(None) => conn,
                Ok(Some(client)) => {
                    forwarded = ConnInfo {
                        remote_addr: Some(client.to_string()),
                        peer_certs: conn.peer_certs.clone(),
                    };
                    &forwarded
                }
                Err(e) => return error_response(StatusCode::BAD_REQUEST, &[e]),
            }
        }
    };
    let Some(path) = parts.uri.path().strip_prefix("/v1/") else {
        return ui::handle(cfg.ui, &parts.method, parts.uri.path(), &parts.headers)
            .unwrap_or_else(|| error_response(StatusCode::NOT_FOUND, &[]));
    };
    let path = match decode_path(path) {
        Ok(p) => p,
        Err(resp) => return resp,
    };
    // Another spelling of a path (`//`, `.` or `..` segments) is sent to the clean one with a
    // 307, as Vault's Go router does: the client asks again, and the ACL and the handler only
    // ever see the clean path (`secret/data//app` would otherwise name a key `/app`).
    if let Some(clean) = clean_path(&path) {
        let mut location = encode_path(&clean);
        if let Some(q) = parts.uri.query() {
            location.push('?');
            location.push_str(q);
        }
        let mut r = with_headers(
            StatusCode::TEMPORARY_REDIRECT,
            format!("<a href=\"{location}\">Temporary Redirect</a>.\n").into_bytes(),
            "text/html; charset=utf-8",
        );
        match HeaderValue::from_str(&location) {
            Ok(v) => {
                r.headers_mut().insert(header::LOCATION, v);
                return r;
            }
            Err(_) => {
                return error_response(StatusCode::BAD_REQUEST, &["invalid request path".into()]);
            }
        }
    }
    let query = parse_query(parts.uri.query());
    // sys/in-flight-req lists it, and vault.core.in_flight_requests counts it.
    let in_flight = tresor_core::diagnostics::begin(
        parts.method.as_str(),
        parts.uri.path(),
        conn.remote_addr.as_deref(),
    );
    if cfg.unauthenticated_metrics_access
        && parts.method == Method::GET
        && path.trim_end_matches('/') == "sys/metrics"
    {
        return ops::metrics_unauthenticated(core, &query, &parts.headers).await;
    }

    // OCSP requests arrive as DER, not JSON: the bytes are handed on as the raw body. So does
    // a snapshot to restore, under a limit of its own.
    let snapshot_restore = is_snapshot_restore(&parts.method, &path);
    let content_type = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    // A browser's form post (an OIDC provider's `form_post` callback) is decoded into request
    // data as Vault does: one value is a string, several a list.
    // A snapshot is raw whatever it is labelled (curl --data-binary says form-urlencoded).
    let form = !snapshot_restore && content_type.starts_with("application/x-www-form-urlencoded");
    let raw = snapshot_restore || form || content_type.starts_with("application/ocsp-request");
    let limit = if snapshot_restore {
        cfg.max_snapshot_size.max(cfg.max_request_size)
    } else {
        cfg.max_request_size
    };
    let deadline = parts
        .extensions
        .get::<ReadDeadline>()
        .map(|d| d.0)
        .or_else(|| cfg.read_timeout.map(|d| tokio::time::Instant::now() + d));
    let body = match deadline {
        None => read_request_body(body, raw, limit).await,
        Some(at) => {
            match tokio::time::timeout_at(at, read_request_body(body, raw, limit)).await {
                Ok(r) => r,
                Err(_) => {
                    let mut r = error_response(
                        StatusCode::REQUEST_TIMEOUT,
                        &["http: request body read timed out".into()],
                    );
                    // The rest of the body is still owed: the connection cannot carry another request.
                    if parts.version < http::Version::HTTP_2 {
                        r.headers_mut()
                            .insert(header::CONNECTION, HeaderValue::from_static("close"));
                    }
                    return r;
                }
            }
        }
    };
    let (body, raw_body) = match body {
        // As in Vault, a body that starts like JSON is JSON whatever the content type says
        // (`curl -d '{...}'` labels JSON as a form).
        Ok(RequestBody::Raw(r)) if form => {
            let json = r
                .iter()
                .find(|c| !c.is_ascii_whitespace())
                .is_some_and(|c| *c == b'{' || *c == b'[');
            if json {
                match json_body(&r) {
                    Ok(b) => (b, None),
                    Err(resp) => return resp,
                }
            } else {
                (Some(form_data(&r)), None)
            }
        }
        Ok(RequestBody::Json(b)) => (b, None),
        Ok(RequestBody::Raw(r)) => (None, Some(r)),
        Err(resp) => return resp,
    };
    // An uninitialised server has no token yet: a snapshot restore is served bare, like
    // sys/init, and the server then unseals with the snapshot's keys.
    if snapshot_restore
        && let Some(raw) = &raw_body
        && matches!(core.initialized().await, Ok(false))
    {
        return match core.restore_uninitialized(raw).await {
            Ok(r) => json_response(StatusCode::OK, &tresor_core::snapshot::restore_response(&r)),
            Err(e) => core_error(&e),
        };
    }
    // Rate-limit quotas, before anything costs more (no token lookup yet).
    let quota = match ops::rate_limit(core, &path, conn.remote_addr.as_deref(), body.as_ref()).await
    {
        Ok(h) => h,
        Err(refused) => {
            if let Some(error) = &refused.audit {
                let req = CoreRequest {
                    operation: refused_operation(&parts.method, &query),
                    path: path.clone(),
                    data: body.unwrap_or_default(),
                    token: None,
                    remote_addr: conn.remote_addr.clone(),
                    wrap_ttl: None,
                    headers: request_headers(&parts.headers),
                    peer_certificates: Vec::new(),
                    raw_body: None,
                    authorization: None,
                };
                core.audit_rate_limited(&req, error).await;
            }
            return refused.response;
        }
    };
    let mut resp = async {
        // Bare-JSON endpoints are served on the core directly; the rest goes through the
        // pipeline.
        if let Some(resp) = raw::handle(core, &parts.method, &path, &query, body.as_ref()).await {
            return resp;
        }
        if path.trim_end_matches('/') == ha::ECHO_PATH
            && (parts.method == Method::PUT || parts.method == Method::POST)
        {
            return ha::receive_echo(core, body.as_ref());
        }
        // sys/monitor: the pipeline authorizes and audits it, then the log streams.
        let monitor = parts.method == Method::GET && path.trim_end_matches('/') == "sys/monitor";
        let monitor_query = if monitor { query.clone() } else { Vec::new() };
        let req = Incoming {
            method: &parts.method,
            headers: &parts.headers,
            path,
            query,
            body,
            raw_body,
            standby,
        };
        let r = logical(core, req, conn).await;
        if monitor && r.status() == StatusCode::OK {
            return ops::monitor_response(&monitor_query);
        }
        r
    }
    .await;
    if let Some(h) = quota {
        ops::add_headers(&mut resp, &h, false);
    }
    match resp.extensions().get::<ops::MonitorStream>() {
        Some(stream) => stream.hold(in_flight),
        None => drop(in_flight),
    }
    resp
}

/// `POST`/`PUT sys/storage/raft/snapshot` or `snapshot-force`: a snapshot to restore.
fn is_snapshot_restore(method: &Method, path: &str) -> bool {
    (*method == Method::POST || *method == Method::PUT)
        && matches!(
            path.trim_end_matches('/'),
            "sys/storage/raft/snapshot" | "sys/storage/raft/snapshot-force"
        )
}

/// A request body: JSON (the usual), or bytes handed on untouched (an OCSP request's DER).
enum RequestBody {
    Json(Option<Map<String, Value>>),
    Raw(std::sync::Arc<[u8]>),
}

/// Reads a request body under the size limit.
async fn read_request_body<B>(
    body: B,
    raw: bool,
    limit: usize,
) -> Result<RequestBody, http::Response<Body>>
where
    B: hyper::body::Body,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    if raw {
        Ok(RequestBody::Raw(
            read_raw(body, limit).await?.to_vec().into(),
        ))
    } else {
        read_body(body, limit).await.map(RequestBody::Json)
    }
}

/// The request headers the core sees (audit's configured headers, a mount's passthrough
/// headers): every one but the token and the credentials.
fn request_headers(headers: &HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .filter(|(k, _)| !matches!(k.as_str(), "x-vault-token" | "authorization" | "cookie"))
        .filter_map(|(k, v)| {
            v.to_str()
                .ok()
                .map(|v| (k.as_str().to_owned(), v.to_owned()))
        })
        .collect()
}

/// The operation a method asks for, `help` and `list` (a GET's `?list=true`) first; `None`
/// for a method the API does not take. (A PATCH's content type is checked by the caller.)
fn operation_for(method: &Method, list: bool, help: bool) -> Option<Operation> {
    Some(match *method {
        _ if help => Operation::Help,
        _ if list => Operation::List,
        Method::GET => Operation::Read,
        Method::POST | Method::PUT => Operation::Update,
        Method::DELETE => Operation::Delete,
        Method::PATCH => Operation::Patch,
        _ if method.as_str() == "LIST" => Operation::List,
        _ => return None,
    })
}

/// The operation a refused request asked for, for its audit entry: the pipeline's reading of
/// the method and query, without its checks (a refused request gets no further).
fn refused_operation(method: &Method, query: &[(String, String)]) -> Operation {
    let list = *method == Method::GET
        && query
            .iter()
            .any(|(k, v)| k == "list" && parse_bool(v) == Some(true));
    let help = query.iter().any(|(k, v)| k == "help" && !v.is_empty());
    operation_for(method, list, help).unwrap_or(Operation::Read)
}

/// A decoded request on its way to the pipeline.
struct Incoming<'a> {
    method: &'a Method,
    headers: &'a HeaderMap,
    path: String,
    query: Vec<(String, String)>,
    body: Option<Map<String, Value>>,
    raw_body: Option<std::sync::Arc<[u8]>>,
    /// Run as a HA standby's read ([`Core::run_on_standby`]).
    standby: bool,
}

/// The logical (enveloped) half of dispatch.
async fn logical(core: &Core, req: Incoming<'_>, conn: &ConnInfo) -> http::Response<Body> {
    let Incoming {
        method,
        headers,
        path,
        query,
        body,
        raw_body,
        standby,
    } = req;
    let mut data = body.unwrap_or_default();
    let mut list = method.as_str() == "LIST";
    let mut help = method.as_str() == "HELP";
    let mut params: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (k, v) in query {
        match k.as_str() {
            "list" => match parse_bool(&v) {
                Some(b) => list |= b && *method == Method::GET,
                None => return error_response(StatusCode::BAD_REQUEST, &[]),
            },
            "help" => help |= !v.is_empty(),
            _ => params.entry(k).or_default().push(v),
        }
    }
    let Some(operation) = operation_for(method, list, help) else {
        return error_response(StatusCode::METHOD_NOT_ALLOWED, &[]);
    };
    if operation == Operation::Patch {
        let ct = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if !ct.starts_with("application/merge-patch+json") {
            return error_response(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                &[format!(
                    "PATCH requires Content-Type of application/merge-patch+json, provided {ct}"
                )],
            );
        }
    }
    // GET/DELETE/LIST query parameters become request data.
    if matches!(
        operation,
        Operation::Read | Operation::Delete | Operation::List | Operation::Help
    ) {
        for (k, mut v) in params {
            let val = if v.len() == 1 {
                json!(v.remove(0))
            } else {
                json!(v)
            };
            data.entry(k).or_insert(val);
        }
    }
    let mut path = path;
    if operation == Operation::List && !path.ends_with('/') {
        path.push('/');
    }
    let wrap_ttl = match headers.get("x-vault-wrap-ttl").map(|v| v.to_str()) {
        None => None,
        // Not visible ASCII: no duration, and no reason to answer unwrapped (issue 12).
        Some(Err(_)) => {
            return error_response(
                StatusCode::BAD_REQUEST,
                &["error parsing X-Vault-Wrap-TTL: invalid duration (not ASCII)".into()],
            );
        }
        Some(Ok(v)) if v.trim().starts_with('-') => {
            return error_response(
                StatusCode::BAD_REQUEST,
                &["requested wrap ttl cannot be negative".into()],
            );
        }
        Some(Ok(v)) => match tresor_sdk::duration::parse(v) {
            Ok(d) => Some(d),
            Err(e) => {
                return error_response(
                    StatusCode::BAD_REQUEST,
                    &[format!("error parsing X-Vault-Wrap-TTL: {e}")],
                );
            }
        },
    };
    let hdrs = request_headers(headers);
    let req = CoreRequest {
        operation,
        path: path.clone(),
        data,
        token: token_of(headers),
        remote_addr: conn.remote_addr.clone(),
        wrap_ttl,
        headers: hdrs,
        peer_certificates: conn.peer_certs.clone(),
        raw_body,
        authorization: headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .map(|v| Zeroizing::new(v.to_owned())),
    };
    let result = if standby {
        match core.run_on_standby(req).await {
            tresor_core::ha::StandbyOutcome::Served(r) => r,
            tresor_core::ha::StandbyOutcome::Forward => {
                let mut r = empty(StatusCode::SERVICE_UNAVAILABLE);
                r.extensions_mut().insert(ha::ForwardMarker);
                return r;
            }
        }
    } else {
        core.handle(req).await
    };
    match result {
        Err(e) => core_error(&e),
        Ok(r) => render(operation, &path, r),
    }
}

/// An engine's extra headers on a raw answer: only those a protocol needs (caching and
/// `WWW-Authenticate`); anything else (cookies, CSP, location) is dropped, and so is a value
/// that is not a valid header.
fn engine_headers(h: &mut HeaderMap, extra: &[(String, String)]) {
    for (name, value) in extra {
        let name = name.to_ascii_lowercase();
        if !matches!(
            name.as_str(),
            "cache-control" | "pragma" | "www-authenticate"
        ) {
            continue;
        }
        if let (Ok(n), Ok(v)) = (
            header::HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            h.insert(n, v);
        }
    }
}

fn render(op: Operation, path: &str, r: CoreResponse) -> http::Response<Body> {
    if op == Operation::Help {
        let data = r.response.and_then(|x| x.data).unwrap_or_default();
        return json_response(StatusCode::OK, &Value::Object(data));
    }
    if r.wrap_info.is_some() {
        return json_response(StatusCode::OK, &envelope(path, r));
    }
    // A raw body (a snapshot, a CRL) is handed on, not copied.
    let mut r = r;
    if let Some(raw) = r.response.as_mut().and_then(|x| x.raw.take()) {
        let mut resp = with_headers(
            StatusCode::from_u16(raw.status).unwrap_or(StatusCode::OK),
            raw.body,
            &raw.content_type,
        );
        engine_headers(resp.headers_mut(), &raw.headers);
        return resp;
    }
    let Some(resp) = &r.response else {
        if r.auth.is_some() || !r.lease_id.is_empty() {
            return json_response(StatusCode::OK, &envelope(path, r));
        }
        return match op {
            Operation::Read | Operation::List => error_response(StatusCode::NOT_FOUND, &[]),
            _ => empty(StatusCode::NO_CONTENT),
        };
    };
    if resp.data.is_none() && resp.warnings.is_empty() && r.auth.is_none() && r.lease_id.is_empty()
    {
        return match op {
            Operation::Read | Operation::List => error_response(StatusCode::NOT_FOUND, &[]),
            _ => empty(StatusCode::NO_CONTENT),
        };
    }
    if op == Operation::List && list_is_empty(resp) {
        return error_response(StatusCode::NOT_FOUND, &[]);
    }
    // "Not found", with data all the same (KV v2's deleted version and its metadata).
    let status = if resp.not_found {
        StatusCode::NOT_FOUND
    } else if resp.accepted {
        StatusCode::ACCEPTED
    } else {
        StatusCode::OK
    };
    json_response(status, &envelope(path, r))
}

/// Vault's rule for a LIST answer that is a 404 with an empty `errors` list: `keys` present
/// but empty (whatever else the answer carries), or no `keys` and nothing else at all — no
/// data and no warnings. A LIST answer with other data or only warnings is returned as it is.
fn list_is_empty(resp: &tresor_sdk::Response) -> bool {
    let data = resp.data.as_ref();
    match data.and_then(|d| d.get("keys")).filter(|k| !k.is_null()) {
        Some(keys) => keys.as_array().is_some_and(Vec::is_empty),
        None => data.is_none_or(Map::is_empty) && resp.warnings.is_empty(),
    }
}

/// How long a server waits for in-flight requests on shutdown.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

#[cfg(test)]
mod path_tests {
    use super::{clean_path, encode_path};

    #[test]
    fn engines_set_only_protocol_headers() {
        let mut h = http::HeaderMap::new();
        h.insert(http::header::CACHE_CONTROL, "no-store".parse().unwrap());
        let extra = [
            ("Cache-Control", "max-age=3600"),
            ("WWW-Authenticate", "Basic"),
            ("Pragma", "no-cache"),
            ("Set-Cookie", "a=b"),
            ("Content-Security-Policy", "default-src *"),
            ("Location", "http://elsewhere/"),
            ("WWW-Authenticate", "bad\nvalue"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned()));
        super::engine_headers(&mut h, &extra);
        assert_eq!(h["cache-control"], "max-age=3600");
        assert_eq!(h["www-authenticate"], "Basic");
        assert_eq!(h["pragma"], "no-cache");
        assert_eq!(h.len(), 3, "{h:?}");
    }

    #[test]
    fn other_spellings_clean_as_go_does() {
        for (p, want) in [
            ("secret/data//app", Some("/v1/secret/data/app")),
            ("secret//data/app", Some("/v1/secret/data/app")),
            ("/sys/health", Some("/v1/sys/health")),
            ("secret/data/./app", Some("/v1/secret/data/app")),
            ("secret/data/x/../app", Some("/v1/secret/data/app")),
            ("secret/metadata//", Some("/v1/secret/metadata/")),
            ("sys/../../../etc", Some("/etc")),
            ("secret/data/app", None),
            ("secret/metadata/", None),
            ("", None),
            ("secret/data/a..b/.c", None),
        ] {
            assert_eq!(clean_path(p).as_deref(), want, "{p}");
        }
    }

    #[test]
    fn locations_are_encoded() {
        assert_eq!(encode_path("/v1/a b/%/é"), "/v1/a%20b/%25/%C3%A9");
        assert_eq!(encode_path("/v1/secret/data/app"), "/v1/secret/data/app");
    }
}
