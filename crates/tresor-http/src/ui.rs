//! The web UI (docs/ui.md): static files compiled into the binary (see `build.rs`) and served
//! under `/ui/` when the server's `ui = true` (always in `-dev`). The UI talks to the server
//! only through `/v1/`, like any other client; nothing here touches the core.
//!
//! Every UI response carries a strict Content-Security-Policy: scripts only from this origin
//! and never inline, no string-to-DOM sinks (Trusted Types), no framing, no form submissions,
//! no requests to another host. A client that accepts gzip gets the build-time gzipped file.

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use http_body_util::Full;

use crate::Body;

/// One embedded file.
pub(crate) struct Asset {
    pub name: &'static str,
    pub raw: &'static [u8],
    pub gz: &'static [u8],
    pub etag: &'static str,
}

include!(concat!(env!("OUT_DIR"), "/ui_assets.rs"));

/// The policy on every UI response. `style-src 'self'` also forbids `style=` attributes, and
/// `require-trusted-types-for 'script'` makes `innerHTML` and friends throw: the UI builds
/// its DOM from nodes and text only.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; font-src 'self'; manifest-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'; require-trusted-types-for 'script'; trusted-types 'none'";

/// Answers `/`, `/ui` and `/ui/...`; `None` for every other path (and, when the UI is off,
/// for these too: the caller answers 404 as Vault does).
pub(crate) fn handle(
    enabled: bool,
    method: &Method,
    path: &str,
    headers: &HeaderMap,
) -> Option<http::Response<Body>> {
    if !enabled {
        return None;
    }
    if path == "/" || path == "/ui" {
        let mut r = bare(StatusCode::TEMPORARY_REDIRECT, Bytes::new());
        r.headers_mut()
            .insert(header::LOCATION, HeaderValue::from_static("/ui/"));
        return Some(r);
    }
    let rest = path.strip_prefix("/ui/")?;
    if method != Method::GET && method != Method::HEAD {
        let mut r = bare(StatusCode::METHOD_NOT_ALLOWED, Bytes::new());
        r.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return Some(r);
    }
    Some(serve(rest, headers))
}

/// The file for `rest` (the path after `/ui/`). A path naming no file gets `index.html`, so
/// the UI's own pages (such as the OIDC callback, `/ui/vault/auth/<mount>/oidc/callback`)
/// load the application; a missing file with an extension is a 404.
fn serve(rest: &str, headers: &HeaderMap) -> http::Response<Body> {
    let asset = match find(rest) {
        Some(a) => a,
        None if rest.rsplit('/').next().is_some_and(|f| f.contains('.')) => {
            return bare(StatusCode::NOT_FOUND, Bytes::from_static(b"not found\n"));
        }
        None => find("index.html").expect("index.html is embedded"),
    };
    let etag = HeaderValue::from_static(asset.etag);
    let fresh = headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim() == asset.etag || t.trim() == "*");
    let gzip = accepts_gzip(headers);
    let mut r = if fresh {
        bare(StatusCode::NOT_MODIFIED, Bytes::new())
    } else if gzip {
        bare(StatusCode::OK, Bytes::from_static(asset.gz))
    } else {
        bare(StatusCode::OK, Bytes::from_static(asset.raw))
    };
    let h = r.headers_mut();
    h.insert(header::ETAG, etag);
    h.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    if gzip && !fresh {
        h.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(mime(asset.name)),
    );
    r
}

fn find(name: &str) -> Option<&'static Asset> {
    ASSETS
        .binary_search_by(|a| a.name.cmp(name))
        .ok()
        .map(|i| &ASSETS[i])
}

/// Whether `Accept-Encoding` lists gzip (or `*`) with a non-zero quality.
fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|item| {
            let mut parts = item.split(';').map(str::trim);
            let coding = parts.next().unwrap_or("");
            let q_zero = parts.any(|p| {
                p.strip_prefix("q=")
                    .and_then(|q| q.parse::<f32>().ok())
                    .is_some_and(|q| q <= 0.0)
            });
            (coding.eq_ignore_ascii_case("gzip") || coding == "*") && !q_zero
        })
}

fn mime(name: &str) -> &'static str {
    match name.rsplit('.').next().unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "svg" => "image/svg+xml",
        "json" => "application/json",
        "txt" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

/// A UI response with the security headers and nothing else.
fn bare(status: StatusCode, body: Bytes) -> http::Response<Body> {
    let mut r = http::Response::new(Full::new(body));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(
        "content-security-policy",
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    h.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    h.insert(
        "cross-origin-opener-policy",
        HeaderValue::from_static("same-origin"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(path: &str, accept: Option<&str>) -> http::Response<Body> {
        let mut h = HeaderMap::new();
        if let Some(a) = accept {
            h.insert(header::ACCEPT_ENCODING, HeaderValue::from_str(a).unwrap());
        }
        handle(true, &Method::GET, path, &h).expect("a UI path")
    }

    #[test]
    fn off_answers_nothing_so_the_caller_says_404() {
        for p in ["/", "/ui", "/ui/", "/ui/app.js"] {
            assert!(
                handle(false, &Method::GET, p, &HeaderMap::new()).is_none(),
                "{p}"
            );
        }
        assert!(handle(true, &Method::GET, "/v1/sys/health", &HeaderMap::new()).is_none());
        assert!(handle(true, &Method::GET, "/uix", &HeaderMap::new()).is_none());
    }

    #[test]
    fn redirects_index_fallback_and_missing_files() {
        for p in ["/", "/ui"] {
            let r = get(p, None);
            assert_eq!(r.status(), StatusCode::TEMPORARY_REDIRECT);
            assert_eq!(r.headers()[header::LOCATION], "/ui/");
        }
        let index = find("index.html").unwrap();
        for p in ["/ui/", "/ui/vault/auth/oidc/oidc/callback"] {
            let r = get(p, None);
            assert_eq!(r.status(), StatusCode::OK, "{p}");
            assert_eq!(r.headers()[header::ETAG], index.etag, "{p}");
            assert!(
                r.headers()[header::CONTENT_TYPE]
                    .to_str()
                    .unwrap()
                    .starts_with("text/html")
            );
        }
        assert_eq!(get("/ui/nope.js", None).status(), StatusCode::NOT_FOUND);
        let r = handle(true, &Method::POST, "/ui/", &HeaderMap::new()).unwrap();
        assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
    }

    #[test]
    fn every_response_has_the_strict_policy() {
        for p in ["/", "/ui/", "/ui/app.js", "/ui/nope.js"] {
            let r = get(p, Some("gzip"));
            let csp = r.headers()["content-security-policy"].to_str().unwrap();
            assert!(csp.contains("script-src 'self';"), "{p}: {csp}");
            assert!(
                !csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"),
                "{p}"
            );
            assert!(csp.contains("frame-ancestors 'none'") && csp.contains("default-src 'none'"));
            assert_eq!(r.headers()["x-content-type-options"], "nosniff");
        }
    }

    #[test]
    fn gzip_only_when_accepted_and_304_on_a_matching_etag() {
        let js = find("app.js").unwrap();
        for (accept, gz) in [
            (None, false),
            (Some("gzip, deflate, br"), true),
            (Some("br;q=1.0, gzip;q=0.5"), true),
            (Some("gzip;q=0"), false),
            (Some("identity"), false),
            (Some("*"), true),
        ] {
            let r = get("/ui/app.js", accept);
            assert_eq!(
                r.headers().get(header::CONTENT_ENCODING).is_some(),
                gz,
                "{accept:?}"
            );
            let body = futures_body(r);
            assert_eq!(body, if gz { js.gz } else { js.raw }, "{accept:?}");
        }
        // The gzipped copy really is the file.
        let mut out = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(js.gz), &mut out).unwrap();
        assert_eq!(out, js.raw);
        let mut h = HeaderMap::new();
        h.insert(header::IF_NONE_MATCH, HeaderValue::from_static(js.etag));
        let r = handle(true, &Method::GET, "/ui/app.js", &h).unwrap();
        assert_eq!(r.status(), StatusCode::NOT_MODIFIED);
    }

    #[test]
    fn no_file_loads_anything_from_another_host() {
        for a in ASSETS {
            let text = String::from_utf8_lossy(a.raw);
            for bad in [
                "http://",
                "https://",
                "//cdn",
                "@import url(",
                "innerHTML",
                "eval(",
            ] {
                assert!(!text.contains(bad), "{} contains {bad}", a.name);
            }
        }
    }

    fn futures_body(r: http::Response<Body>) -> Vec<u8> {
        use http_body_util::BodyExt;
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(r.into_body().collect())
            .unwrap()
            .to_bytes()
            .to_vec()
    }
}
