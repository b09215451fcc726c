//! The engine framework: the only surface secrets engines and auth methods see.
//!
//! An engine is a [`LogicalBackend`]: it receives a fresh [`Request`] carrying everything it may
//! touch (its chrooted [`Storage`] view, its mount's TTL defaults in [`MountView`], the mount
//! point) and answers with a [`Response`] or a typed [`LogicalError`]. Engines never depend on
//! the core and never know HTTP status codes; the HTTP edge maps [`LogicalError`] once.
//!
//! Most engines are written as a [`framework::Table`]: one declarative list of paths with typed
//! fields, which drives routing, parsing, validation errors that name the field, and `path-help`.

#![forbid(unsafe_code)]

pub mod cidr;
pub mod clock;
pub mod der;
pub mod duration;
pub mod framework;
pub mod identity;
pub mod percent;
pub mod record;
#[cfg(test)]
mod test_support;
pub mod token;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::{Map, Value};

/// A logical operation, decoded from the HTTP method (and `?list=true`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    Create,
    Read,
    Update,
    Patch,
    Delete,
    List,
    /// `?help=1`: always allowed, answered from the path table.
    Help,
}

impl std::fmt::Display for Operation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Operation {
    /// Vault's lowercase name of the operation.
    pub const fn as_str(self) -> &'static str {
        match self {
            Operation::Create => "create",
            Operation::Read => "read",
            Operation::Update => "update",
            Operation::Patch => "patch",
            Operation::Delete => "delete",
            Operation::List => "list",
            Operation::Help => "help",
        }
    }
}

/// Errors an engine returns. The HTTP layer alone turns these into status codes.
#[derive(Debug, Clone, thiserror::Error)]
pub enum LogicalError {
    /// Bad input: a missing or malformed field. The message names the field.
    #[error("{0}")]
    InvalidRequest(String),
    /// No path in the engine's table matches.
    #[error("unsupported path")]
    UnsupportedPath,
    /// The path exists but not for this operation.
    #[error("unsupported operation")]
    UnsupportedOperation,
    #[error("permission denied")]
    PermissionDenied,
    /// Permission denied, with the reason the client is told (Vault's `bad token` for a
    /// token lookup that finds nothing): a 403 like [`LogicalError::PermissionDenied`].
    #[error("{0}")]
    Forbidden(String),
    /// A check-and-set or version precondition failed.
    #[error("{0}")]
    Conflict(String),
    /// The target does not exist, with a message (plain 404 with no body uses `Ok(None)`).
    #[error("{0}")]
    NotFound(String),
    /// A quota refused the request (429), with Vault's message.
    #[error("{0}")]
    RateLimited(String),
    #[error("{0}")]
    Internal(String),
}

impl LogicalError {
    pub fn invalid(msg: impl Into<String>) -> Self {
        LogicalError::InvalidRequest(msg.into())
    }
    pub fn internal(msg: impl std::fmt::Display) -> Self {
        LogicalError::Internal(msg.to_string())
    }
}

pub type Result<T> = std::result::Result<T, LogicalError>;

/// An engine's whole world of storage: keys are relative to its mount's view, values are
/// plaintext here and encrypted by the barrier below.
#[async_trait]
pub trait Storage: Send + Sync {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>>;
    async fn put(&self, key: &str, value: Vec<u8>) -> Result<()>;
    async fn delete(&self, key: &str) -> Result<()>;
    /// Immediate children of `prefix`; folders end in `/`.
    async fn list(&self, prefix: &str) -> Result<Vec<String>>;
    /// Writes (`Some`) and deletes (`None`) several keys. Storage that can commits them
    /// atomically in one durable commit (the barrier view does); the default applies them in
    /// order.
    async fn transaction(&self, ops: Vec<(String, Option<Vec<u8>>)>) -> Result<()> {
        for (k, v) in ops {
            match v {
                Some(v) => self.put(&k, v).await?,
                None => self.delete(&k).await?,
            }
        }
        Ok(())
    }
    /// A value with its storage revision, for [`Storage::transaction_if`] (0 is never a
    /// stored revision: it stands for "absent").
    async fn get_with_revision(&self, _key: &str) -> Result<Option<(Vec<u8>, u64)>> {
        Err(LogicalError::internal(
            "this storage does not support conditional writes",
        ))
    }
    /// Writes and deletes atomically if every `(key, revision)` check still holds at commit
    /// (revision 0: the key is absent). `Ok(false)`: a check failed, nothing was written —
    /// another writer, possibly on another server sharing the storage, got there first.
    async fn transaction_if(
        &self,
        _checks: Vec<(String, u64)>,
        _ops: Vec<(String, Option<Vec<u8>>)>,
    ) -> Result<bool> {
        Err(LogicalError::internal(
            "this storage does not support conditional writes",
        ))
    }
    /// Deletes everything under `prefix` (which ends in `/` or is empty). Storage that can
    /// does it in one commit (the barrier view does).
    async fn delete_prefix(&self, prefix: &str) -> Result<()> {
        delete_prefix(self, prefix).await
    }
}

/// Helpers for storing JSON values in a [`Storage`].
pub async fn get_json<T: serde::de::DeserializeOwned>(
    s: &dyn Storage,
    key: &str,
) -> Result<Option<T>> {
    match s.get(key).await? {
        None => Ok(None),
        Some(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| LogicalError::Internal(format!("decoding stored entry {key:?}: {e}"))),
    }
}

pub async fn put_json<T: serde::Serialize>(s: &dyn Storage, key: &str, value: &T) -> Result<()> {
    let bytes = serde_json::to_vec(value).map_err(LogicalError::internal)?;
    s.put(key, bytes).await
}

/// Recursively deletes everything below `prefix` (which ends in `/` or is empty), one key at
/// a time: the fallback of [`Storage::delete_prefix`].
pub async fn delete_prefix<S: Storage + ?Sized>(s: &S, prefix: &str) -> Result<()> {
    let mut stack = vec![prefix.to_owned()];
    while let Some(p) = stack.pop() {
        for child in s.list(&p).await? {
            let full = format!("{p}{child}");
            if child.ends_with('/') {
                stack.push(full);
            } else {
                s.delete(&full).await?;
            }
        }
    }
    Ok(())
}

/// What the system offers an engine beyond its own storage (Vault's system view): the
/// password policies of `sys/policies/password`.
#[async_trait]
pub trait SystemView: Send + Sync + std::fmt::Debug {
    /// The text (HCL) of the password policy `name`, if there is one.
    async fn password_policy(&self, name: &str) -> Result<Option<String>>;
    /// Where clients reach this server (`api_addr`, else derived from the first listener),
    /// for engines that publish URLs of themselves (identity token issuers).
    fn api_addr(&self) -> Option<String> {
        None
    }
}

/// What an engine may know of its mount: TTL defaults already resolved against the system's.
#[derive(Debug, Clone)]
pub struct MountView {
    pub mount_point: String,
    pub mount_type: String,
    pub mount_accessor: String,
    pub default_lease_ttl: Duration,
    pub max_lease_ttl: Duration,
    pub options: BTreeMap<String, String>,
    /// The system's view, when the engine runs in a server (`None` in engine-level tests).
    pub system: Option<Arc<dyn SystemView>>,
}

/// Facts about the caller that some engines need (cubbyhole, token-bound features).
#[derive(Clone, Default)]
pub struct Caller {
    /// The internal (hashed) id of the caller's token: names it without revealing it.
    pub token_id: Option<String>,
    pub token_accessor: Option<String>,
    /// Whether the caller's policies grant `sudo` on the request path (or it is root).
    pub sudo: bool,
    pub is_root: bool,
    pub display_name: String,
    pub policies: Vec<String>,
    pub entity_id: String,
    /// The entity behind the token (its aliases, metadata and groups), for engines that
    /// render identity templates (PKI's `allowed_domains_template`).
    pub entity: Option<Arc<identity::EntityInfo>>,
    /// A batch token is not stored anywhere: it is its own entry. The token store reads it
    /// back from here (`lookup-self`); other engines must ignore it, and nothing stores it.
    /// A batch token has no cubbyhole.
    pub batch_token: Option<String>,
    /// When the caller's token was created (Unix seconds): the time of the login behind it
    /// (the OIDC provider's `auth_time` and `max_age`).
    pub token_issued_at: Option<i64>,
}

/// Never prints the batch token.
impl std::fmt::Debug for Caller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Caller")
            .field("token_accessor", &self.token_accessor)
            .field("sudo", &self.sudo)
            .field("is_root", &self.is_root)
            .field("display_name", &self.display_name)
            .field("policies", &self.policies)
            .field("entity_id", &self.entity_id)
            .field("batch", &self.batch_token.is_some())
            .finish_non_exhaustive()
    }
}

/// Facts about the connection a request arrived on.
#[derive(Clone, Default)]
pub struct Connection {
    /// The client's address (after a trusted proxy's `X-Forwarded-For`).
    pub remote_addr: Option<String>,
    /// The DER certificates the client presented in the TLS handshake, leaf first (the
    /// listener asks for them and does not require them).
    pub peer_certificates: Vec<Vec<u8>>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("remote_addr", &self.remote_addr)
            .field("peer_certificates", &self.peer_certificates.len())
            .finish()
    }
}

/// One request as an engine sees it: built fresh by the router for each dispatch.
#[derive(Clone)]
pub struct Request {
    pub operation: Operation,
    /// The path relative to the mount point, without a leading `/`.
    pub path: String,
    pub data: Map<String, Value>,
    pub storage: Arc<dyn Storage>,
    pub mount: Arc<MountView>,
    pub caller: Caller,
    /// Set for secret renew/revoke callbacks.
    pub secret: Option<SecretRef>,
    pub connection: Arc<Connection>,
    /// The request headers the mount lets through (`passthrough_request_headers`), names in
    /// lower case. Never the `X-Vault-Token` header or cookies; `authorization` only on the
    /// engine's unauthenticated paths (a credential for the engine, such as an OIDC client's).
    pub headers: Vec<(String, String)>,
    /// The body as sent, when it is not JSON (an OCSP request's DER).
    pub raw_body: Option<Arc<[u8]>>,
    /// When the core stops waiting for this request (`max_request_duration`): long work
    /// should stop by then.
    pub deadline: Option<std::time::Instant>,
}

impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Request")
            .field("operation", &self.operation)
            .field("path", &self.path)
            .field("mount", &self.mount.mount_point)
            .finish_non_exhaustive()
    }
}

/// What an engine is handed outside a request: at `initialize`, `invalidate` and `periodic`.
#[derive(Clone)]
pub struct Context {
    /// The mount's storage view, as in a request.
    pub storage: Arc<dyn Storage>,
    pub mount: Arc<MountView>,
    /// The time of this call, from the core's injected clock.
    pub now: std::time::SystemTime,
}

impl Context {
    /// A request carrying this context (no caller, no data), for engine code written against
    /// requests, such as a periodic tidy.
    pub fn request(&self, operation: Operation, path: &str) -> Request {
        Request {
            operation,
            path: path.to_owned(),
            data: Map::new(),
            storage: self.storage.clone(),
            mount: self.mount.clone(),
            caller: Caller::default(),
            secret: None,
            connection: Default::default(),
            headers: Vec::new(),
            raw_body: None,
            deadline: None,
        }
    }
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("mount", &self.mount.mount_point)
            .field("now", &self.now)
            .finish_non_exhaustive()
    }
}

/// A secret being renewed or revoked: what the engine stored in `internal_data` at issue time.
#[derive(Clone)]
pub struct SecretRef {
    pub lease_id: String,
    pub secret_type: String,
    pub internal_data: Map<String, Value>,
    pub increment: Option<Duration>,
}

/// A leased secret in a response: the core registers it with the expiration manager.
#[derive(Clone, Default)]
pub struct SecretLease {
    pub secret_type: String,
    pub ttl: Duration,
    pub max_ttl: Option<Duration>,
    pub renewable: bool,
    pub internal_data: Map<String, Value>,
}

/// Who logged in, as the auth method names them: resolved to an identity entity by the core
/// (the mount accessor and `name` identify the alias).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Alias {
    pub name: String,
    pub metadata: BTreeMap<String, String>,
}

/// The result of a successful login, turned into a token by the core. The core honours the
/// auth mount's tuned TTLs and token type, records the method that issued the token, and calls
/// the method's [`LogicalBackend::renew_auth`] when the token is renewed.
#[derive(Clone, Default)]
pub struct Auth {
    /// Set when the token already exists (the token store creates its own tokens); empty for
    /// logins, where the core mints the token from the rest of this struct.
    pub client_token: String,
    pub accessor: String,
    pub orphan: bool,
    pub entity_id: String,
    pub policies: Vec<String>,
    pub metadata: BTreeMap<String, String>,
    pub display_name: String,
    pub ttl: Duration,
    pub max_ttl: Duration,
    pub period: Duration,
    pub renewable: bool,
    pub num_uses: i64,
    pub explicit_max_ttl: Duration,
    pub no_default_policy: bool,
    pub token_type: Option<String>,
    /// Kept with the token and handed back to the method on renewal; never shown to clients.
    pub internal_data: Map<String, Value>,
    /// The login's identity alias (entity resolution comes with the identity store).
    pub alias: Option<Alias>,
    /// External groups the login belongs to (LDAP groups, OIDC `groups` claim).
    pub group_aliases: Vec<Alias>,
    /// `token_bound_cidrs`: the token works only from these client addresses.
    pub bound_cidrs: Vec<String>,
}

/// Never prints the token or the method's internal data.
impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth")
            .field(
                "client_token",
                &(!self.client_token.is_empty()).then_some("<redacted>"),
            )
            .field("accessor", &self.accessor)
            .field("policies", &self.policies)
            .field("display_name", &self.display_name)
            .field("ttl", &self.ttl)
            .field("max_ttl", &self.max_ttl)
            .field("period", &self.period)
            .field("num_uses", &self.num_uses)
            .field("token_type", &self.token_type)
            .field("alias", &self.alias.as_ref().map(|a| &a.name))
            .field("bound_cidrs", &self.bound_cidrs)
            .finish_non_exhaustive()
    }
}

/// A raw HTTP body for endpoints that do not answer in the JSON envelope (CA PEMs, CRLs).
#[derive(Clone)]
pub struct RawResponse {
    pub status: u16,
    pub content_type: String,
    pub body: Vec<u8>,
    /// Extra response headers. The HTTP layer sends only those a protocol needs
    /// (`Cache-Control`, `Pragma`, `WWW-Authenticate`) and drops any other.
    pub headers: Vec<(String, String)>,
}

/// What an engine answers. `None` data with no other part is an empty 204.
#[derive(Clone, Default)]
pub struct Response {
    pub data: Option<Map<String, Value>>,
    pub secret: Option<SecretLease>,
    pub auth: Option<Auth>,
    pub warnings: Vec<String>,
    pub raw: Option<RawResponse>,
    /// Set by lease renewal endpoints: the existing lease this response reports on
    /// (lease id, remaining TTL, renewable), shown in the envelope's lease fields.
    pub renewed: Option<(String, Duration, bool)>,
    /// An advisory `lease_duration` shown without creating a lease (KV v1's refresh
    /// interval).
    pub lease_duration: Option<Duration>,
    /// The answer is "not found" but still carries its data (a KV v2 read of a deleted
    /// version answers 404 with the version's metadata).
    pub not_found: bool,
    /// The request started work that goes on in the background (a tidy): answered 202
    /// Accepted with the envelope, as Vault does.
    pub accepted: bool,
}

impl Response {
    pub fn data(data: Map<String, Value>) -> Self {
        Response {
            data: Some(data),
            ..Default::default()
        }
    }
    /// A response from a JSON object literal; panics in tests if `v` is not an object.
    pub fn json(v: Value) -> Self {
        match v {
            Value::Object(m) => Self::data(m),
            other => {
                let mut m = Map::new();
                m.insert("value".into(), other);
                Self::data(m)
            }
        }
    }
    pub fn list(keys: Vec<String>) -> Self {
        let mut m = Map::new();
        m.insert("keys".into(), Value::from(keys));
        Self::data(m)
    }
    pub fn with_warning(mut self, w: impl Into<String>) -> Self {
        self.warnings.push(w.into());
        self
    }
    /// Marks the answer as 202 Accepted (see [`Response::accepted`]).
    pub fn accepted(mut self) -> Self {
        self.accepted = true;
        self
    }
    /// The answer to a tidy started in the background: 202 Accepted with [`TIDY_STARTED`].
    pub fn tidy_started() -> Self {
        Response::default().accepted().with_warning(TIDY_STARTED)
    }
}

/// The warning a started tidy answers with, in Vault's words.
pub const TIDY_STARTED: &str = "Tidy operation successfully started. Any information from the operation will be printed to Tresor's server logs.";

/// Paths that bypass the token check (`unauthenticated`) or require `sudo` (`root`).
/// Entries ending in `*` are prefixes.
#[derive(Debug, Clone, Default)]
pub struct SpecialPaths {
    pub unauthenticated: Vec<String>,
    pub root: Vec<String>,
}

/// Matches a path against a special-paths list (exact, or prefix for entries ending in `*`).
/// A `+` segment matches exactly one path segment (`issuer/+/pem` matches `issuer/x/pem`).
pub fn path_matches_special(list: &[String], path: &str) -> bool {
    list.iter().any(|p| special_matches(p, path))
}

fn special_matches(pattern: &str, path: &str) -> bool {
    if !pattern.contains('+') {
        return match pattern.strip_suffix('*') {
            Some(prefix) => path.starts_with(prefix),
            None => pattern.trim_end_matches('/') == path.trim_end_matches('/'),
        };
    }
    // Segment-wise: `+` is one whole segment; a trailing `*` on the last pattern segment is a
    // prefix of the rest of the path.
    let (pat, glob) = match pattern.strip_suffix('*') {
        Some(p) => (p, true),
        None => (pattern.trim_end_matches('/'), false),
    };
    let path = if glob {
        path
    } else {
        path.trim_end_matches('/')
    };
    let mut rest = path;
    let segs: Vec<&str> = pat.split('/').collect();
    for (i, seg) in segs.iter().enumerate() {
        let last = i + 1 == segs.len();
        if last && glob {
            return rest.starts_with(seg);
        }
        let (head, tail) = match rest.split_once('/') {
            Some((h, t)) => (h, Some(t)),
            None => (rest, None),
        };
        if *seg == "+" {
            if head.is_empty() {
                return false;
            }
        } else if *seg != head {
            return false;
        }
        match (last, tail) {
            (true, None) => return true,
            (true, Some(_)) => return false,
            (false, None) => return false,
            (false, Some(t)) => rest = t,
        }
    }
    false
}

/// The names of a map's keys, for `Debug` output that must not show the values (secrets).
pub fn keys_only(m: &Map<String, Value>) -> Vec<&str> {
    m.keys().map(String::as_str).collect()
}

/// Never prints the engine's internal data (it may hold credentials).
impl std::fmt::Debug for SecretRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretRef")
            .field("lease_id", &self.lease_id)
            .field("secret_type", &self.secret_type)
            .field("internal_data_keys", &keys_only(&self.internal_data))
            .field("increment", &self.increment)
            .finish()
    }
}

/// Never prints the engine's internal data (it may hold credentials).
impl std::fmt::Debug for SecretLease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretLease")
            .field("secret_type", &self.secret_type)
            .field("ttl", &self.ttl)
            .field("max_ttl", &self.max_ttl)
            .field("renewable", &self.renewable)
            .field("internal_data_keys", &keys_only(&self.internal_data))
            .finish()
    }
}

/// Prints the status, type and size, never the body.
impl std::fmt::Debug for RawResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawResponse")
            .field("status", &self.status)
            .field("content_type", &self.content_type)
            .field("body_len", &self.body.len())
            .finish()
    }
}

/// Never prints the data's values, the lease's internal data or a token (secrets all).
impl std::fmt::Debug for Response {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Response")
            .field("data_keys", &self.data.as_ref().map(keys_only))
            .field("secret", &self.secret)
            .field("auth", &self.auth)
            .field("warnings", &self.warnings)
            .field("raw", &self.raw)
            .field("lease_duration", &self.lease_duration)
            .field("not_found", &self.not_found)
            .finish_non_exhaustive()
    }
}

/// A mounted secrets engine or auth method.
#[async_trait]
pub trait LogicalBackend: Send + Sync {
    /// Handles one request. `Ok(None)` means success with no body (204) for writes and
    /// "not found" (404) for reads.
    async fn handle(&self, req: Request) -> Result<Option<Response>>;
    /// Whether the target of a write exists: decides create vs update for the ACL.
    /// `None` means the path has no existence check (the write is an update).
    async fn exists(&self, _req: &Request) -> Result<Option<bool>> {
        Ok(None)
    }
    /// The canonical spelling of `path` (relative to the mount), when it differs: the core
    /// routes, authorizes and dispatches that spelling, so an ACL decides on exactly the path
    /// the handler acts on. `None` means `path` is canonical.
    fn canonical_path(&self, _path: &str) -> Option<String> {
        None
    }
    fn special_paths(&self) -> SpecialPaths {
        SpecialPaths::default()
    }
    /// `?help=1` for a path: Vault's `{help, openapi, see_also}` data.
    fn help(&self, path: &str) -> Option<Map<String, Value>>;
    /// OpenAPI path items for this engine, keyed by path pattern relative to the mount.
    fn openapi_paths(&self) -> Map<String, Value> {
        Map::new()
    }
    /// Renews a leased secret this engine issued.
    async fn renew_secret(&self, _req: Request) -> Result<Option<Response>> {
        Err(LogicalError::invalid("lease is not renewable"))
    }
    /// A token this auth method issued at login is being renewed. `req.secret` carries the
    /// token's internal data and the requested increment. `Ok(None)` allows the renewal as
    /// asked; an error refuses it (the user was deleted, the certificate revoked); a response
    /// whose `auth` has a TTL (or max TTL) shortens it.
    async fn renew_auth(&self, _req: Request) -> Result<Option<Response>> {
        Ok(None)
    }
    /// Revokes a leased secret this engine issued.
    async fn revoke_secret(&self, _req: Request) -> Result<Option<Response>> {
        Ok(None)
    }
    /// The role a login request to `path` (relative to the mount) names, for rate-limit quotas
    /// with a `role` (Vault's resolve-role operation): an AppRole login names its role by
    /// `role_id`. `None` when the method has no roles, or finds none; the HTTP layer then
    /// takes the request's `role` (or `role_name`) field.
    async fn resolve_role(
        &self,
        _ctx: &Context,
        _path: &str,
        _data: &Map<String, Value>,
    ) -> Result<Option<String>> {
        Ok(None)
    }
    /// Called before the mount serves its first request: when it is mounted, and for every
    /// mount when the server unseals. An error fails a new mount (nothing is stored) and is
    /// logged for an existing one.
    async fn initialize(&self, _ctx: &Context) -> Result<()> {
        Ok(())
    }
    /// A key of this mount's view (relative to it) was changed outside this process, by
    /// another server sharing the storage: drop whatever is cached of it.
    async fn invalidate(&self, _ctx: &Context, _key: &str) {}
    /// Background work (tidies, rotations), run on the active node about once a minute, at
    /// the time the core's clock gives in `ctx.now`.
    async fn periodic(&self, _ctx: &Context) -> Result<()> {
        Ok(())
    }
    /// Called when this engine instance stops serving its mount: after an unmount (its
    /// storage already deleted), a remount (another instance serves the new path) and a seal
    /// (after the requests in flight have finished). Close pools, stop tasks, drop caches.
    async fn cleanup(&self) {}
}

#[cfg(test)]
mod special_tests {
    use super::path_matches_special;

    #[test]
    fn special_path_patterns() {
        let cases: &[(&str, &str, bool)] = &[
            ("ca", "ca", true),
            ("ca", "ca/", true),
            ("ca", "cab", false),
            ("cert/*", "cert/01-02", true),
            ("cert/*", "certs", false),
            ("issuer/+/pem", "issuer/default/pem", true),
            ("issuer/+/pem", "issuer/default/der", false),
            ("issuer/+/pem", "issuer//pem", false),
            ("issuer/+/pem", "issuer/a/b/pem", false),
            ("issuer/+/crl/*", "issuer/x/crl/delta/pem", true),
            ("issuer/+/crl/*", "issuer/x/crl", false),
            ("issuer/+/json", "issuer/x/json/", true),
        ];
        for (pat, path, want) in cases {
            assert_eq!(
                path_matches_special(&[pat.to_string()], path),
                *want,
                "{pat} vs {path}"
            );
        }
    }
}
