//! A HA node's HTTP edge (see `tresor_core::ha` for the core's part).
//!
//! - **Index.** Every response of a HA node carries `X-Vault-Index`: the storage revision its
//!   answer reflects (decimal; clients treat it as opaque). A request that sends it back makes
//!   a standby wait until it has applied that revision, at most [`INDEX_WAIT`]; then it is
//!   answered 412 ("required index state not present"), or forwarded to the active node if it
//!   also says `X-Vault-Inconsistent: forward-active-node` (OpenBao's headers, same meaning).
//! - **Standbys** answer the seal-lifecycle endpoints, `sys/health` and `sys/leader`
//!   themselves, and the reads the core lets them serve (`Core::standby_may_serve`). Everything
//!   else (and a read that turns out to need a write) is forwarded to the active node: the same
//!   method, path, query, headers (the token included) and body, the answer passed back as it
//!   is. With `X-Vault-No-Request-Forwarding` set, or when the active node cannot be reached,
//!   the answer is 307 to the active node's `api_addr` plus the original path and query. A
//!   request that arrives forwarded ([`FORWARDED`]) is never forwarded again.
//! - **Echo.** [`spawn_echo`] sends a standby's echo to the active node every two seconds, for
//!   `sys/ha-status`.

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use http_body_util::Full;
use tresor_core::Core;

use crate::{Body, ConnInfo, HttpConfig, empty, error_response};

/// The response (and request) header carrying the storage index.
pub const INDEX: &str = "x-vault-index";
/// Set on requests a standby forwards, so they are never forwarded twice.
pub const FORWARDED: &str = "x-tresor-forwarded";
/// The longest a standby waits for an index a request asked for.
pub const INDEX_WAIT: Duration = Duration::from_secs(2);
/// The longest a forwarded request may take.
const FORWARD_TIMEOUT: Duration = Duration::from_secs(95);
/// The path of the standbys' echo (unauthenticated; the echo carries its own MAC).
pub(crate) const ECHO_PATH: &str = "sys/internal/ha/echo";

/// The HTTP client standbys forward with.
#[derive(Debug, Clone)]
pub struct Forwarder {
    client: reqwest::Client,
}

impl Forwarder {
    /// A client trusting the system roots and, if given, the PEM CA certificates in `ca_pem`
    /// (the CA of the other servers' listeners). Redirects are passed back, never followed.
    pub fn new(ca_pem: Option<&[u8]>) -> Result<Self, String> {
        let mut b = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(2))
            .timeout(FORWARD_TIMEOUT);
        if let Some(pem) = ca_pem {
            for c in reqwest::Certificate::from_pem_bundle(pem).map_err(|e| e.to_string())? {
                b = b.add_root_certificate(c);
            }
        }
        Ok(Forwarder {
            client: b.build().map_err(|e| e.to_string())?,
        })
    }
}

static FORWARDER: std::sync::OnceLock<Forwarder> = std::sync::OnceLock::new();

/// Sets the client standbys forward with (once, before serving; the server passes the CA of
/// its listeners). Without it, a client trusting the system roots is used.
pub fn install_forwarder(f: Forwarder) {
    let _ = FORWARDER.set(f);
}

fn default_forwarder() -> &'static Forwarder {
    FORWARDER.get_or_init(|| Forwarder::new(None).expect("a default HTTP client"))
}

/// Marks a response of the local pipeline as "this request needed a write": forward it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ForwardMarker;

/// Adds the node's index to a response (unless the active node's answer already has one).
pub(crate) fn with_index(core: &Core, mut r: http::Response<Body>) -> http::Response<Body> {
    if let Some(i) = core.storage_index()
        && !r.headers().contains_key(INDEX)
        && let Ok(v) = HeaderValue::from_str(&i.to_string())
    {
        r.headers_mut().insert(INDEX, v);
    }
    r
}

/// The seal-lifecycle endpoints a standby answers itself (Vault's unforwarded handlers).
fn answered_here(path: &str) -> bool {
    matches!(
        path.trim_end_matches('/'),
        "sys/health"
            | "sys/seal-status"
            | "sys/unseal"
            | "sys/init"
            | "sys/leader"
            | "sys/seal"
            | ECHO_PATH
    )
}

/// Rekey and root generation change the barrier: they go to the active node.
fn barrier_changing(path: &str) -> bool {
    ["sys/rekey/", "sys/rotate/root/", "sys/generate-root"]
        .iter()
        .any(|p| path.starts_with(p))
}

/// The logical operation a method names, as far as the standby's choice needs it.
fn operation_of(method: &Method, query: Option<&str>) -> Option<tresor_sdk::Operation> {
    use tresor_sdk::Operation;
    let list = query.is_some_and(|q| {
        crate::parse_query(Some(q))
            .iter()
            .any(|(k, v)| k == "list" && crate::parse_bool(v) == Some(true))
    });
    Some(match *method {
        Method::GET if list => Operation::List,
        Method::GET => Operation::Read,
        Method::POST | Method::PUT => Operation::Update,
        _ if method.as_str() == "LIST" => Operation::List,
        _ => return None,
    })
}

/// Handles one request on a HA node; see the module docs.
pub(crate) async fn dispatch(
    core: &Core,
    cfg: &HttpConfig,
    conn: &ConnInfo,
    parts: http::request::Parts,
    body: Bytes,
) -> http::Response<Body> {
    let header = |name: &str| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|v| !v.is_empty())
    };
    let path = parts.uri.path().strip_prefix("/v1/").map(str::to_owned);
    let local = match &path {
        None => true,
        Some(_) if !core.is_standby() => true,
        Some(p) => {
            let p = crate::decode_path(p).unwrap_or_default();
            if answered_here(&p) {
                true
            } else if barrier_changing(&p) {
                false
            } else {
                operation_of(&parts.method, parts.uri.query())
                    .is_some_and(|op| core.standby_may_serve(op, &p))
            }
        }
    };
    if local {
        if let Some(want) = header(INDEX)
            && path.is_some()
        {
            let Ok(want) = want.parse::<u64>() else {
                return error_response(
                    StatusCode::BAD_REQUEST,
                    &[format!("invalid {INDEX} header")],
                );
            };
            if !core.wait_for_index(want, INDEX_WAIT).await {
                if header("x-vault-inconsistent") == Some("forward-active-node") {
                    return forward(core, conn, &parts, body).await;
                }
                return error_response(
                    StatusCode::PRECONDITION_FAILED,
                    &["required index state not present".into()],
                );
            }
        }
        let standby = core.is_standby() && path.is_some() && !answered_here_path(&path);
        let req = rebuild(&parts, body.clone());
        let r = crate::dispatch_inner(core, cfg, conn, req, standby).await;
        // A read that needed a write: nothing was written; the active node answers it.
        if r.extensions().get::<ForwardMarker>().is_none() {
            return r;
        }
    }
    forward(core, conn, &parts, body).await
}

fn answered_here_path(path: &Option<String>) -> bool {
    path.as_deref()
        .map(|p| answered_here(&crate::decode_path(p).unwrap_or_default()))
        .unwrap_or(true)
}

/// The same request again, for local handling after the body was buffered.
fn rebuild(parts: &http::request::Parts, body: Bytes) -> http::Request<Full<Bytes>> {
    let mut r = http::Request::new(Full::new(body));
    *r.method_mut() = parts.method.clone();
    *r.uri_mut() = parts.uri.clone();
    *r.version_mut() = parts.version;
    *r.headers_mut() = parts.headers.clone();
    if let Some(d) = parts.extensions.get::<crate::ReadDeadline>() {
        r.extensions_mut().insert(*d);
    }
    r
}

/// Headers that belong to one connection, not to the request.
fn hop_by_hop(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "proxy-connection"
            | "transfer-encoding"
            | "te"
            | "trailer"
            | "upgrade"
            | "host"
            | "content-length"
    )
}

fn redirect(addr: &str, parts: &http::request::Parts) -> http::Response<Body> {
    let mut loc = format!("{}{}", addr.trim_end_matches('/'), parts.uri.path());
    if let Some(q) = parts.uri.query() {
        loc.push('?');
        loc.push_str(q);
    }
    let mut r = empty(StatusCode::TEMPORARY_REDIRECT);
    if let Ok(v) = HeaderValue::from_str(&loc) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r
}

fn no_active() -> http::Response<Body> {
    error_response(
        StatusCode::SERVICE_UNAVAILABLE,
        &["local node not active but active cluster node not found".into()],
    )
}

/// Sends a standby's request to the active node, or redirects the client there.
async fn forward(
    core: &Core,
    conn: &ConnInfo,
    parts: &http::request::Parts,
    body: Bytes,
) -> http::Response<Body> {
    let set = |name: &str| {
        parts
            .headers
            .get(name)
            .is_some_and(|v| !v.as_bytes().is_empty())
    };
    let Some(mut addr) = core.active_api_addr(false).await else {
        return match core.active_api_addr(true).await {
            Some(a) => redirect(&a, parts),
            None => no_active(),
        };
    };
    if set("x-vault-no-request-forwarding") || set(FORWARDED) {
        return redirect(&addr, parts);
    }
    for attempt in 0..2 {
        match send(conn, parts, &body, &addr).await {
            Ok(r) => return r,
            Err(e) => {
                tracing::warn!(active = %addr, error = %e, "forwarding to the active node failed");
                // The active node may have changed: look it up again, once.
                match core.active_api_addr(true).await {
                    Some(a) if a != addr && attempt == 0 => addr = a,
                    Some(a) => return redirect(&a, parts),
                    None => return no_active(),
                }
            }
        }
    }
    redirect(&addr, parts)
}

/// One forwarded exchange. An error means the request may not have reached the active node
/// (a connection failure); an answer of any status is passed back.
async fn send(
    conn: &ConnInfo,
    parts: &http::request::Parts,
    body: &Bytes,
    addr: &str,
) -> Result<http::Response<Body>, String> {
    let mut url = format!("{}{}", addr.trim_end_matches('/'), parts.uri.path());
    if let Some(q) = parts.uri.query() {
        url.push('?');
        url.push_str(q);
    }
    let method =
        reqwest::Method::from_bytes(parts.method.as_str().as_bytes()).map_err(|e| e.to_string())?;
    let mut headers = HeaderMap::new();
    for (k, v) in &parts.headers {
        if !hop_by_hop(k) && k != "x-forwarded-for" {
            headers.append(k.clone(), v.clone());
        }
    }
    // The client as the active node may see it, if it trusts this node's X-Forwarded-For.
    let mut xff: Vec<String> = parts
        .headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok().map(str::to_owned))
        .collect();
    if let Some(ip) = conn
        .remote_addr
        .as_deref()
        .and_then(|a| a.parse::<std::net::SocketAddr>().ok())
    {
        xff.push(ip.ip().to_string());
    }
    if !xff.is_empty()
        && let Ok(v) = HeaderValue::from_str(&xff.join(", "))
    {
        headers.insert("x-forwarded-for", v);
    }
    headers.insert(FORWARDED, HeaderValue::from_static("1"));
    let resp = default_forwarder()
        .client
        .request(method, &url)
        .headers(headers)
        .body(body.clone())
        .send()
        .await
        .map_err(|e| format!("{e}"))?;
    let status = resp.status();
    let mut out_headers = HeaderMap::new();
    for (k, v) in resp.headers() {
        if !hop_by_hop(k) {
            out_headers.append(k.clone(), v.clone());
        }
    }
    let bytes = resp
        .bytes()
        .await
        .map_err(|e| format!("reading the active node's answer: {e}"))?;
    let mut r = http::Response::new(Full::new(bytes));
    *r.status_mut() = StatusCode::from_u16(status.as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
    *r.headers_mut() = out_headers;
    Ok(r)
}

/// The active node's side of the echo: `PUT sys/internal/ha/echo`.
pub(crate) fn receive_echo(
    core: &Core,
    body: Option<&serde_json::Map<String, serde_json::Value>>,
) -> http::Response<Body> {
    let echo = serde_json::Value::Object(body.cloned().unwrap_or_default());
    match core.ha_receive_echo(&echo) {
        Ok(()) => empty(StatusCode::NO_CONTENT),
        Err(e) => crate::core_error(&e),
    }
}

/// Sends this node's echo to the active node every two seconds while it is a standby. The
/// task ends with the process.
pub fn spawn_echo(core: Core) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(tresor_core::ha::ECHO_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let Some(echo) = core.ha_echo() else { continue };
            let Some(addr) = core.active_api_addr(false).await else {
                continue;
            };
            let url = format!("{}/v1/{ECHO_PATH}", addr.trim_end_matches('/'));
            let sent = default_forwarder()
                .client
                .put(&url)
                .timeout(Duration::from_secs(2))
                .json(&echo)
                .send()
                .await;
            match sent {
                Ok(r) if r.status().is_success() => {}
                Ok(r) => tracing::debug!(status = %r.status(), "the active node refused the echo"),
                Err(e) => tracing::debug!(error = %e, "echo to the active node failed"),
            }
        }
    });
}
