//! What the login workloads share: an auth method enabled at a path unique to the run (so
//! cleanup, by disabling it, removes its users or roles and revokes every token its logins
//! made), and the login request itself, which carries no token.

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Uri};
use http_body_util::Full;
use serde_json::{Value, json};

use super::SetupContext;
use crate::client::{Api, Target};
use crate::error::BenchError;

/// Enables an auth method of `kind` at `mount/`.
pub(crate) async fn enable(ctx: &SetupContext, kind: &str, mount: &str) -> Result<(), BenchError> {
    if ctx.api.token().is_none() {
        return Err(BenchError::NoToken(ctx.name.clone()));
    }
    ctx.api
        .expect_ok(
            &format!("{}: enabling {kind} auth at {mount}/", ctx.name),
            Method::POST,
            &format!("sys/auth/{mount}"),
            Some(&json!({
                "type": kind,
                "description": "tresor bench (removed when the run ends)",
            })),
            None,
        )
        .await
        .map(|_| ())
}

/// Disables the auth method at `mount/`: its data goes, and every token it issued is revoked.
pub(crate) async fn disable(api: &Api, mount: &str) -> Result<(), BenchError> {
    api.expect_ok(
        &format!("disabling auth method {mount}/"),
        Method::DELETE,
        &format!("sys/auth/{mount}"),
        None,
        None,
    )
    .await
    .map(|_| ())
}

/// `POST /v1/auth/{mount}/{path}` with `body`, as a `Uri` built once at setup.
pub(crate) fn login_uri(mount: &str, path: &str) -> Result<Uri, BenchError> {
    format!("/v1/auth/{mount}/{path}")
        .parse()
        .map_err(|_| BenchError::Server {
            context: "building the login request".into(),
            message: format!("invalid path auth/{mount}/{path}"),
        })
}

/// A JSON body, serialized once at setup.
pub(crate) fn body(v: &Value) -> Bytes {
    Bytes::from(serde_json::to_vec(v).unwrap_or_default())
}

/// A login: unauthenticated, JSON.
pub(crate) fn login_request(target: &Target, uri: Uri, body: Bytes) -> Request<Full<Bytes>> {
    let mut req = target.request(Method::POST, uri, None, body);
    req.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    req
}
