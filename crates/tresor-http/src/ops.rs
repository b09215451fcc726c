//! The HTTP half of the operations features (issue 20): rate-limit quotas before anything
//! else runs, their response headers, `sys/metrics` without a token where the listener allows
//! it, and the `sys/monitor` log stream.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{HeaderValue, StatusCode, header};
use http_body_util::Full;
use hyper::body::Frame;
use std::sync::Mutex;
use tresor_core::Core;
use tresor_core::quotas::{RateDecision, RateHeaders};

use crate::Body;

/// The client address a rate limit counts by: the IP without the port.
pub(crate) fn client_ip(remote: Option<&str>) -> String {
    let Some(r) = remote else {
        return String::new();
    };
    r.parse::<std::net::SocketAddr>()
        .map(|a| a.ip().to_string())
        .unwrap_or_else(|_| r.to_owned())
}

/// A request a rate-limit quota refused.
pub(crate) struct Refused {
    /// The 429 to send.
    pub response: http::Response<Body>,
    /// The refusal's message, when `sys/quotas/config` asks for refused requests to be
    /// audited (`Core::audit_rate_limited`).
    pub audit: Option<String>,
}

/// The rate-limit check of a request.
pub(crate) async fn rate_limit(
    core: &Core,
    path: &str,
    remote: Option<&str>,
    body: Option<&serde_json::Map<String, serde_json::Value>>,
) -> Result<Option<RateHeaders>, Box<Refused>> {
    let Ok(u) = core.unsealed() else {
        return Ok(None);
    };
    // The role a login names, only when a quota with a role covers the path: as its auth
    // method resolves it (an AppRole role_id), else the request's role field.
    let role = if u.quotas.role_matters(path) {
        let empty = serde_json::Map::new();
        core.login_role(path, body.unwrap_or(&empty)).await
    } else {
        None
    };
    match u
        .quotas
        .check_rate(path, &client_ip(remote), role.as_deref())
    {
        RateDecision::Allowed(h) => Ok(h),
        RateDecision::Refused(msg, h) => {
            // The entry itself is the core's (`Core::audit_rate_limited`); this only spares
            // building its request when nothing would be written.
            let audit = (u.audit.enabled() && u.quotas.audits_refusals()).then(|| msg.clone());
            let mut r = crate::error_response(StatusCode::TOO_MANY_REQUESTS, &[msg]);
            if let Some(h) = h {
                add_headers(&mut r, &h, true);
            }
            Err(Box::new(Refused { response: r, audit }))
        }
    }
}

/// `X-RateLimit-Limit`, `-Remaining`, `-Reset` (Unix time), and `Retry-After` on a refusal.
pub(crate) fn add_headers<B>(r: &mut http::Response<B>, h: &RateHeaders, refused: bool) {
    let hs = r.headers_mut();
    let mut set = |k: &'static str, v: String| {
        if let Ok(v) = HeaderValue::from_str(&v) {
            hs.insert(k, v);
        }
    };
    set("x-ratelimit-limit", h.limit.to_string());
    set("x-ratelimit-remaining", h.remaining.to_string());
    set("x-ratelimit-reset", h.reset.to_string());
    if refused {
        set("retry-after", h.retry_after.to_string());
    }
}

/// `GET sys/metrics` on a listener with `unauthenticated_metrics_access`: no token, no ACL.
pub(crate) async fn metrics_unauthenticated(
    core: &Core,
    query: &[(String, String)],
    headers: &http::HeaderMap,
) -> http::Response<Body> {
    let mut format = query
        .iter()
        .find(|(k, _)| k == "format")
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    if format.is_empty()
        && headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/openmetrics-text"))
    {
        format = "prometheus".into();
    }
    match core.metrics(&format).await {
        Ok((ct, body)) => crate::with_headers(StatusCode::OK, body.into_bytes(), &ct),
        Err(e) => crate::error_response(StatusCode::BAD_REQUEST, &[e]),
    }
}

/// A log stream for `sys/monitor`, carried from dispatch to the listener in the response's
/// extensions (they must be `Clone`; the receiver is taken out once).
#[derive(Clone)]
pub struct MonitorStream(pub(crate) Arc<Mutex<Option<Stream>>>);

/// The log lines, and the request's in-flight registration, held until the stream ends.
pub struct Stream {
    rx: tokio::sync::mpsc::Receiver<String>,
    in_flight: Option<tresor_core::diagnostics::InFlightGuard>,
}

impl MonitorStream {
    /// Keeps the request listed in flight (`sys/in-flight-req`) for as long as it streams.
    pub(crate) fn hold(&self, g: tresor_core::diagnostics::InFlightGuard) {
        if let Ok(mut s) = self.0.lock()
            && let Some(s) = s.as_mut()
        {
            s.in_flight = Some(g);
        }
    }
}

/// After the pipeline allowed and audited `GET sys/monitor`: the answer that streams the log.
pub(crate) fn monitor_response(query: &[(String, String)]) -> http::Response<Body> {
    let get = |k: &str| {
        query
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.to_lowercase())
            .unwrap_or_default()
    };
    let level = Some(get("log_level"))
        .filter(|l| !l.is_empty())
        .unwrap_or_else(|| "info".into());
    let json = get("log_format") == "json";
    let Some(logs) = tresor_core::diagnostics::installed() else {
        return crate::error_response(
            StatusCode::BAD_REQUEST,
            &["this server's log cannot be streamed".into()],
        );
    };
    match logs.logs.subscribe(&level, json) {
        Ok(rx) => {
            let mut r = crate::with_headers(
                StatusCode::OK,
                Vec::new(),
                if json {
                    "application/x-ndjson"
                } else {
                    "text/plain; charset=utf-8"
                },
            );
            r.extensions_mut()
                .insert(MonitorStream(Arc::new(Mutex::new(Some(Stream {
                    rx,
                    in_flight: None,
                })))));
            r
        }
        Err(e) => crate::error_response(StatusCode::BAD_REQUEST, &[e]),
    }
}

/// The body the listener sends: a whole answer, or a log stream.
pub enum OutBody {
    Full(Full<Bytes>),
    Stream(Stream),
}

impl hyper::body::Body for OutBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        match self.get_mut() {
            OutBody::Full(f) => Pin::new(f).poll_frame(cx),
            OutBody::Stream(s) => match s.rx.poll_recv(cx) {
                Poll::Ready(Some(line)) => Poll::Ready(Some(Ok(Frame::data(Bytes::from(line))))),
                Poll::Ready(None) => Poll::Ready(None),
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            OutBody::Full(f) => f.is_end_stream(),
            OutBody::Stream(_) => false,
        }
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        match self {
            OutBody::Full(f) => f.size_hint(),
            OutBody::Stream(_) => hyper::body::SizeHint::default(),
        }
    }
}

/// Swaps in the log stream of a `sys/monitor` answer.
pub fn into_out(r: http::Response<Body>) -> http::Response<OutBody> {
    let (mut parts, body) = r.into_parts();
    let stream = parts
        .extensions
        .remove::<MonitorStream>()
        .and_then(|s| s.0.lock().ok().and_then(|mut g| g.take()));
    match stream {
        Some(s) => http::Response::from_parts(parts, OutBody::Stream(s)),
        None => http::Response::from_parts(parts, OutBody::Full(body)),
    }
}
