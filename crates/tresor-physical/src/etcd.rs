//! Storage on an etcd cluster (v3 API), for several servers sharing one store (HA).
//!
//! # Layout
//! Every Tresor key `k` is the etcd key `{path}k` (`path` defaults to Vault's `/vault/`). Its
//! value starts with one tag byte: `0` then the value itself, or `1` then a chunk manifest.
//! Keys with a NUL after `{path}` are internal (Tresor keys never contain NUL) and hidden from
//! listing, paging, snapshots and watchers:
//! - `{path}k\0{generation}\0{index}`: the chunks of a large value of `k`;
//! - `{path}\0delete-prefix`: written by every [`Backend::delete_prefix`] in the same
//!   transaction as the range delete, holding the prefix, so that a watcher reports one
//!   [`EventKind::DeletePrefix`] instead of one delete per key;
//! - `{path}\0leader/{lease}`: the election keys of the [`LeaderLock`] (etcd's election API).
//!
//! # Chunking
//! One etcd request is at most `--max-request-bytes` (1.5 MiB by default), so values above
//! [`CHUNK_SIZE`] (1 MiB), and smaller ones when a transaction would exceed that budget, are
//! split. The chunks are written first, each in its own transaction, under a fresh random
//! generation that nothing points to yet; then one transaction writes the manifest (with the
//! rest of the caller's transaction), removes any other generation of that key, and checks
//! that every staged chunk is still there. Readers see the old value or the new one, never a
//! mix: a manifest and its chunks are read at the manifest's revision. A writer that dies
//! between the two steps leaves hidden chunks behind until the key is next written or deleted.
//!
//! # Fencing
//! Once this backend has been granted the leader lock, every write it makes (staged chunks
//! included) is a transaction that also compares the lock key's create revision with the one
//! granted. A deposed leader (its lease expired or was revoked, another node elected) cannot
//! write: the comparison fails, nothing is written, and the error is
//! [`PhysicalError::Fenced`]. Fencing stays on after the guard is released or lost, until
//! this backend is granted the lock again: a node that stopped being active must not write.
//!
//! # Members failing
//! The client balances over every address given. A call that fails because a member went
//! away, or while the cluster elects a new leader, is retried on another member until
//! `request_timeout` (for the whole call) runs out. A conditional write whose first attempt
//! may have been applied before the connection broke is not reported as a conflict: the error
//! says its outcome is unknown.

use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use etcd_client::{
    Certificate, Client, Compare, CompareOp, ConnectOptions, DeleteOptions, ElectionClient,
    EventType, GetOptions, Identity, KvClient, LeaseClient, TlsOptions, Txn, TxnOp, TxnOpResponse,
    WatchClient, WatchOptions,
};
use parking_lot::Mutex;
use tokio::sync::{mpsc, watch};
use zeroize::Zeroizing;

use crate::feed::concerns;
use crate::lock::{HeldLock, Leader, LeaderGuard, LeaderLock};
use crate::{
    Backend, Check, Entry, Event, EventKind, Op, PhysicalError, Result, Snapshot, WATCH_BUFFER,
    Watcher, check_key, check_limit, page,
};

/// Values larger than this are split into chunks of this size.
pub const CHUNK_SIZE: usize = 1024 * 1024;
/// Inline bytes one transaction may carry before its larger values are chunked too (etcd's
/// default request limit is 1.5 MiB; this leaves room for keys and the rest).
const TXN_INLINE_BUDGET: usize = 1024 * 1024;
/// Values at least this large may be chunked to fit a transaction into its budget.
const CHUNKABLE: usize = 64 * 1024;
/// Keys per keys-only range read.
const KEY_PAGE: i64 = 1000;
/// Entries per range read of a snapshot, halved while a response is too large.
const VALUE_PAGE: i64 = 64;
/// Vault's default `path`.
pub const DEFAULT_PATH: &str = "/vault/";
/// Vault's default `request_timeout`.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Our default `lock_timeout` (Vault's is 15 s): the lease TTL of the leader lock. A killed
/// active node's lease expires within 3 s (etcd checks expiry every 0.5 s), so a standby can
/// take over within 5 s; the lease is renewed every second.
pub const DEFAULT_LOCK_TIMEOUT: Duration = Duration::from_secs(3);
/// The etcd Go client's default receive limit (Vault's `max_receive_size` when unset).
pub const DEFAULT_MAX_RECEIVE_SIZE: usize = i32::MAX as usize;

const TAG_INLINE: u8 = 0;
const TAG_MANIFEST: u8 = 1;
const MARKER: &[u8] = b"\0delete-prefix";
const ELECTION: &[u8] = b"\0leader";

/// The `storage "etcd"` settings Tresor understands (Vault's names).
#[derive(Clone)]
pub struct EtcdConfig {
    /// Client URLs of the members (`address`, comma-separated).
    pub endpoints: Vec<String>,
    /// Key prefix, always ending in `/`.
    pub path: String,
    /// Whether the server should use this storage for HA (the backend itself does not care).
    pub ha_enabled: bool,
    pub tls_ca_file: Option<PathBuf>,
    pub tls_cert_file: Option<PathBuf>,
    pub tls_key_file: Option<PathBuf>,
    pub tls_server_name: Option<String>,
    pub username: Option<String>,
    pub password: Option<Zeroizing<String>>,
    /// Bound on one storage call, retries included.
    pub request_timeout: Duration,
    /// TTL of the leader lock's lease.
    pub lock_timeout: Duration,
    /// Largest response accepted from etcd, in bytes.
    pub max_receive_size: usize,
}

impl std::fmt::Debug for EtcdConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdConfig")
            .field("endpoints", &self.endpoints)
            .field("path", &self.path)
            .field("ha_enabled", &self.ha_enabled)
            .field("tls_ca_file", &self.tls_ca_file)
            .field("tls_cert_file", &self.tls_cert_file)
            .field("tls_key_file", &self.tls_key_file)
            .field("tls_server_name", &self.tls_server_name)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("request_timeout", &self.request_timeout)
            .field("lock_timeout", &self.lock_timeout)
            .field("max_receive_size", &self.max_receive_size)
            .finish()
    }
}

impl PartialEq for EtcdConfig {
    fn eq(&self, o: &Self) -> bool {
        self.endpoints == o.endpoints
            && self.path == o.path
            && self.ha_enabled == o.ha_enabled
            && self.tls_ca_file == o.tls_ca_file
            && self.tls_cert_file == o.tls_cert_file
            && self.tls_key_file == o.tls_key_file
            && self.tls_server_name == o.tls_server_name
            && self.username == o.username
            && self.password.as_ref().map(|p| p.as_str()) == o.password.as_ref().map(|p| p.as_str())
            && self.request_timeout == o.request_timeout
            && self.lock_timeout == o.lock_timeout
            && self.max_receive_size == o.max_receive_size
    }
}

impl Eq for EtcdConfig {}

impl EtcdConfig {
    /// Defaults for the given members.
    pub fn new(endpoints: Vec<String>) -> Self {
        Self {
            endpoints,
            path: DEFAULT_PATH.to_owned(),
            ha_enabled: false,
            tls_ca_file: None,
            tls_cert_file: None,
            tls_key_file: None,
            tls_server_name: None,
            username: None,
            password: None,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            lock_timeout: DEFAULT_LOCK_TIMEOUT,
            max_receive_size: DEFAULT_MAX_RECEIVE_SIZE,
        }
    }

    /// Reads Vault's `storage "etcd"` keys from `(key, value)` pairs (values as strings, as
    /// HCL gives them). Errors name the key. Unknown keys are refused.
    pub fn from_settings<'a>(
        settings: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> std::result::Result<Self, String> {
        let mut c = Self::new(vec!["http://localhost:2379".to_owned()]);
        let mut cert_and_key = (false, false);
        for (key, value) in settings {
            let value = value.trim();
            match key {
                "address" => {
                    let eps: Vec<String> = value
                        .split(',')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(str::to_owned)
                        .collect();
                    if eps.is_empty() {
                        return Err("address: no etcd member given".into());
                    }
                    for e in &eps {
                        let rest = e
                            .strip_prefix("http://")
                            .or_else(|| e.strip_prefix("https://"))
                            .unwrap_or(e);
                        if rest.is_empty() || rest.contains(['/', ' ']) && !rest.ends_with('/') {
                            return Err(format!(
                                "address: {e:?} is not a member URL like http://host:2379"
                            ));
                        }
                    }
                    c.endpoints = eps;
                }
                "path" => {
                    if value.contains('\0') {
                        return Err("path: must not contain NUL".into());
                    }
                    let mut p = value.to_owned();
                    if !p.ends_with('/') {
                        p.push('/');
                    }
                    c.path = p;
                }
                "ha_enabled" => c.ha_enabled = parse_bool("ha_enabled", value)?,
                "tls_ca_file" => c.tls_ca_file = Some(PathBuf::from(value)),
                "tls_cert_file" => {
                    cert_and_key.0 = true;
                    c.tls_cert_file = Some(PathBuf::from(value));
                }
                "tls_key_file" => {
                    cert_and_key.1 = true;
                    c.tls_key_file = Some(PathBuf::from(value));
                }
                "tls_server_name" => c.tls_server_name = Some(value.to_owned()),
                "username" => c.username = Some(value.to_owned()),
                "password" => c.password = Some(Zeroizing::new(value.to_owned())),
                "request_timeout" => c.request_timeout = parse_duration("request_timeout", value)?,
                "lock_timeout" => c.lock_timeout = parse_duration("lock_timeout", value)?,
                "max_receive_size" => {
                    let n: u64 = value.parse().map_err(|_| {
                        format!("max_receive_size: {value:?} is not a number of bytes")
                    })?;
                    if n == 0 {
                        // Unset in Vault: the client's default.
                        c.max_receive_size = DEFAULT_MAX_RECEIVE_SIZE;
                    } else if n < 64 * 1024 || n > DEFAULT_MAX_RECEIVE_SIZE as u64 {
                        return Err(format!(
                            "max_receive_size: {n} is out of range (65536 to {DEFAULT_MAX_RECEIVE_SIZE} bytes)"
                        ));
                    } else {
                        c.max_receive_size = n as usize;
                    }
                }
                "etcd_api" => match value {
                    "v3" | "3" => {}
                    "v2" | "2" => {
                        return Err("etcd_api: the etcd v2 API is not supported (etcd removed it in 3.6, Vault in 1.10); use \"v3\" with an etcd 3.4+ cluster".into());
                    }
                    other => return Err(format!("etcd_api: {other:?} is not \"v3\"")),
                },
                "sync" => {
                    // Vault's v2-era member discovery switch: the v3 client balances over the
                    // given addresses and does not discover others.
                    parse_bool("sync", value)?;
                }
                other => {
                    return Err(format!(
                        "{other}: not supported (known: address, path, ha_enabled, tls_ca_file, tls_cert_file, tls_key_file, tls_server_name, username, password, request_timeout, lock_timeout, max_receive_size, etcd_api, sync)"
                    ));
                }
            }
        }
        if cert_and_key.0 != cert_and_key.1 {
            return Err("tls_cert_file and tls_key_file: give both or neither".into());
        }
        if c.username.is_some() != c.password.is_some() {
            return Err("username and password: give both or neither".into());
        }
        if c.request_timeout < Duration::from_millis(100) {
            return Err("request_timeout: must be at least 100ms".into());
        }
        if c.lock_timeout < Duration::from_secs(2) {
            return Err(
                "lock_timeout: must be at least 2s (etcd's shortest lease with its default timing)"
                    .into(),
            );
        }
        Ok(c)
    }
}

fn parse_bool(key: &str, v: &str) -> std::result::Result<bool, String> {
    match v {
        "true" | "1" => Ok(true),
        "false" | "0" | "" => Ok(false),
        _ => Err(format!("{key}: {v:?} is not true or false")),
    }
}

/// `500ms`, `5s`, `1m`, `1h`, or a number of seconds.
fn parse_duration(key: &str, v: &str) -> std::result::Result<Duration, String> {
    let bad = || format!("{key}: {v:?} is not a duration like \"5s\" or \"500ms\"");
    let (num, unit) = match v.find(|c: char| !c.is_ascii_digit() && c != '.') {
        Some(i) => (&v[..i], &v[i..]),
        None => (v, "s"),
    };
    let n: f64 = num.parse().map_err(|_| bad())?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(bad()),
    };
    if !secs.is_finite() || secs <= 0.0 || secs > 86_400.0 {
        return Err(format!("{key}: {v:?} is out of range"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// The byte string just after every string starting with `prefix` (etcd's range end).
fn range_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0] // the whole key space
}

fn concat(a: &[u8], b: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(a.len() + b.len());
    v.extend_from_slice(a);
    v.extend_from_slice(b);
    v
}

fn rev_u64(r: i64) -> u64 {
    u64::try_from(r).unwrap_or(0)
}

fn rev_i64(r: u64) -> i64 {
    i64::try_from(r).unwrap_or(i64::MAX)
}

/// gRPC codes we look at.
const UNAVAILABLE: i32 = 14;
/// gRPC's CANCELLED: what tonic reports when the member's connection drops under a request
/// (the h2 stream is reset), like a transport error; our own cancellations are timeouts.
const CANCELLED: i32 = 1;
const DEADLINE: i32 = 4;
const RESOURCE_EXHAUSTED: i32 = 8;
const OUT_OF_RANGE: i32 = 11;
const UNAUTHENTICATED: i32 = 16;
const PERMISSION_DENIED: i32 = 7;

/// What went wrong, in words an operator can act on.
fn describe(e: &etcd_client::Error) -> String {
    match e {
        etcd_client::Error::GRpcStatus(s) => {
            let m = s.message();
            let code = i32::from(s.code());
            if m.contains("request is too large") || m.contains("received message larger than max")
            {
                format!(
                    "the request is larger than etcd accepts (its --max-request-bytes, 1.5 MiB by default): {m}"
                )
            } else if m.contains("too many operations in txn") {
                format!(
                    "the transaction has more operations than etcd allows (its --max-txn-ops, 128 by default; each Tresor write is up to two): {m}"
                )
            } else if m.contains("database space exceeded") || m.contains("NOSPACE") {
                format!(
                    "etcd is out of space (alarm NOSPACE: its --quota-backend-bytes is reached; compact, defragment and disarm the alarm): {m}"
                )
            } else if m.contains("compacted") {
                format!("the revision asked for was compacted away by etcd: {m}")
            } else if code == UNAUTHENTICATED
                || code == PERMISSION_DENIED
                || m.contains("authentication")
                || m.contains("permission denied")
                || m.contains("user name")
                || m.contains("auth token")
            {
                format!(
                    "etcd refused the credentials (check username, password and the user's role): {m}"
                )
            } else if code == RESOURCE_EXHAUSTED
                || code == OUT_OF_RANGE
                || m.contains("message length too large")
            {
                format!("etcd's response is larger than max_receive_size allows: {m}")
            } else if code == DEADLINE || m.contains("timed out") {
                format!("etcd did not answer in time: {m}")
            } else if code == UNAVAILABLE {
                format!("no etcd member reachable: {m}")
            } else {
                format!("{m} (gRPC code {code})")
            }
        }
        other => other.to_string(),
    }
}

/// Whether another attempt (on another member) may succeed.
fn retryable(e: &etcd_client::Error) -> bool {
    match e {
        etcd_client::Error::GRpcStatus(s) => {
            let m = s.message();
            let code = i32::from(s.code());
            code == UNAVAILABLE
                || code == CANCELLED
                || m.contains("transport error")
                || m.contains("connection")
                || m.contains("broken pipe")
                || m.contains("leader changed")
                || m.contains("no leader")
                || m.contains("request timed out")
                || m.contains("not capable")
                || m.contains("stopped")
                || (code == DEADLINE && !m.contains("compacted"))
        }
        etcd_client::Error::TransportError(_) | etcd_client::Error::IoError(_) => true,
        _ => false,
    }
}

/// Whether the failed attempt certainly did not reach etcd.
fn never_sent(e: &etcd_client::Error) -> bool {
    let m = e.to_string();
    m.contains("connect") || m.contains("Connection refused")
}

fn is_compacted(e: &etcd_client::Error) -> bool {
    matches!(e, etcd_client::Error::GRpcStatus(s) if s.message().contains("compacted"))
}

struct Fence {
    key: Vec<u8>,
    rev: i64,
}

/// What the backend and its snapshots and lock share.
struct Inner {
    kv: KvClient,
    watch: WatchClient,
    lease: LeaseClient,
    election: ElectionClient,
    root: Vec<u8>,
    request_timeout: Duration,
    fence: Mutex<Option<Fence>>,
}

/// The etcd storage backend; see the module docs.
pub struct EtcdBackend {
    inner: Arc<Inner>,
    lock: Arc<EtcdLock>,
    config: EtcdConfig,
}

impl std::fmt::Debug for EtcdBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdBackend")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl EtcdBackend {
    /// Connects to the cluster (TLS and credentials as configured) and checks it answers.
    pub async fn connect(config: EtcdConfig) -> Result<Self> {
        if config.endpoints.is_empty() {
            return Err(PhysicalError::InvalidArgument(
                "etcd: no member address given".into(),
            ));
        }
        let mut opts = ConnectOptions::new()
            .with_connect_timeout(config.request_timeout)
            .with_keep_alive(Duration::from_secs(10), config.request_timeout)
            .with_keep_alive_while_idle(false)
            // A member cut off from the leader says so at once instead of holding requests.
            .with_require_leader(true);
        if let (Some(u), Some(p)) = (&config.username, &config.password) {
            opts = opts
                .with_user(u.clone(), p.as_str())
                .with_auto_token_refresh(true);
        }
        let tls_wanted = config.tls_ca_file.is_some()
            || config.tls_cert_file.is_some()
            || config.endpoints.iter().any(|e| e.starts_with("https://"));
        if tls_wanted {
            let mut tls = TlsOptions::new();
            if let Some(ca) = &config.tls_ca_file {
                let pem = std::fs::read(ca).map_err(|e| {
                    PhysicalError::InvalidArgument(format!(
                        "etcd tls_ca_file {}: {e}",
                        ca.display()
                    ))
                })?;
                tls = tls.ca_certificate(Certificate::from_pem(pem));
            }
            if let (Some(cert), Some(key)) = (&config.tls_cert_file, &config.tls_key_file) {
                let c = std::fs::read(cert).map_err(|e| {
                    PhysicalError::InvalidArgument(format!(
                        "etcd tls_cert_file {}: {e}",
                        cert.display()
                    ))
                })?;
                let k = Zeroizing::new(std::fs::read(key).map_err(|e| {
                    PhysicalError::InvalidArgument(format!(
                        "etcd tls_key_file {}: {e}",
                        key.display()
                    ))
                })?);
                tls = tls.identity(Identity::from_pem(c, k.as_slice()));
            }
            if let Some(name) = &config.tls_server_name {
                tls = tls.domain_name(name.clone());
            }
            opts = opts.with_tls(tls);
        }
        // With TLS, bare host:port addresses become https:// ones.
        let endpoints: Vec<String> = if tls_wanted {
            config
                .endpoints
                .iter()
                .map(|e| {
                    e.strip_prefix("http://")
                        .map_or_else(|| e.clone(), |h| format!("https://{h}"))
                })
                .collect()
        } else {
            config.endpoints.clone()
        };
        let client = tokio::time::timeout(
            config.request_timeout * 2,
            Client::connect(&endpoints, Some(opts)),
        )
        .await
        .map_err(|_| {
            PhysicalError::Io(format!(
                "etcd connect to {}: no answer within {:?}",
                endpoints.join(","),
                config.request_timeout * 2
            ))
        })?
        .map_err(|e| {
            PhysicalError::Io(format!(
                "etcd connect to {}: {}",
                endpoints.join(","),
                describe(&e)
            ))
        })?;
        let inner = Arc::new(Inner {
            kv: client
                .kv_client()
                .max_decoding_message_size(config.max_receive_size),
            watch: client
                .watch_client()
                .max_decoding_message_size(config.max_receive_size),
            lease: client.lease_client(),
            election: client.election_client(),
            root: config.path.as_bytes().to_vec(),
            request_timeout: config.request_timeout,
            fence: Mutex::new(None),
        });
        let lock = Arc::new(EtcdLock {
            inner: inner.clone(),
            ttl: i64::try_from(config.lock_timeout.as_secs().max(1)).unwrap_or(15),
        });
        let b = Self {
            inner,
            lock,
            config,
        };
        // Fail at start-up, not on the first request, when etcd is unreachable or refuses us.
        b.inner.current_revision("connect").await?;
        Ok(b)
    }

    /// The settings this backend was built with.
    pub fn config(&self) -> &EtcdConfig {
        &self.config
    }

    /// Compacts etcd's history up to `revision` (operators normally let etcd auto-compact);
    /// watchers starting before it then get [`PhysicalError::Compacted`].
    pub async fn compact(&self, revision: u64) -> Result<()> {
        let kv = self.inner.kv.clone();
        self.inner
            .call("compact", || {
                let mut kv = kv.clone();
                async move { kv.compact(rev_i64(revision), None).await }
            })
            .await?;
        Ok(())
    }
}

impl Inner {
    fn ek(&self, key: &str) -> Vec<u8> {
        concat(&self.root, key.as_bytes())
    }

    fn marker(&self) -> Vec<u8> {
        concat(&self.root, MARKER)
    }

    /// Runs `f` until it succeeds, fails for good, or `request_timeout` runs out; failures a
    /// member going away causes are retried (the client then picks another member). The
    /// second element says whether a failed attempt may have been applied all the same (a
    /// conditional write must then not report the retry's conflict as its own).
    async fn call_tracked<T, F, Fut>(&self, op: &str, mut f: F) -> (Result<T>, bool)
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = std::result::Result<T, etcd_client::Error>>,
    {
        let start = Instant::now();
        let deadline = start + self.request_timeout;
        let mut backoff = Duration::from_millis(50);
        let mut maybe_applied = false;
        // One attempt may hang on a member that just died, or on a proposal its leader took
        // down with it: give each a slice of the budget and try again on another member.
        let slice = (self.request_timeout / 3).max(Duration::from_secs(1));
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return (
                    Err(PhysicalError::Io(format!(
                        "etcd {op}: no answer within request_timeout ({:?})",
                        self.request_timeout
                    ))),
                    true,
                );
            }
            match tokio::time::timeout(left.min(slice), f()).await {
                Ok(Ok(v)) => return (Ok(v), maybe_applied),
                Ok(Err(e)) if retryable(&e) && Instant::now() + backoff < deadline => {
                    if !never_sent(&e) {
                        maybe_applied = true;
                    }
                    tracing::debug!(op, error = %e, "etcd call failed; trying again");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_millis(800));
                }
                Ok(Err(e)) => {
                    return (
                        Err(PhysicalError::Io(format!("etcd {op}: {}", describe(&e)))),
                        maybe_applied,
                    );
                }
                Err(_) => {
                    // Timed out: it may have been applied; try again while time is left.
                    maybe_applied = true;
                    tracing::debug!(op, "etcd call got no answer in its slice; trying again");
                }
            }
        }
    }

    async fn call<T, F, Fut>(&self, op: &str, f: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = std::result::Result<T, etcd_client::Error>>,
    {
        self.call_tracked(op, f).await.0
    }

    /// A range read; compaction of `revision` is reported as such (not retried).
    async fn range(
        &self,
        op: &str,
        key: Vec<u8>,
        opts: GetOptions,
    ) -> Result<std::result::Result<etcd_client::GetResponse, ()>> {
        let kv = self.kv.clone();
        let (r, _) = self
            .call_tracked(op, || {
                let mut kv = kv.clone();
                let (key, opts) = (key.clone(), opts.clone());
                async move {
                    match kv.get(key, Some(opts)).await {
                        Err(e) if is_compacted(&e) => Ok(Err(())),
                        Err(e) => Err(e),
                        Ok(r) => Ok(Ok(r)),
                    }
                }
            })
            .await;
        r
    }

    async fn current_revision(&self, op: &str) -> Result<u64> {
        let r = self
            .range(op, self.marker(), GetOptions::new().with_count_only())
            .await?
            .map_err(|()| PhysicalError::Io(format!("etcd {op}: unexpected compaction")))?;
        Ok(rev_u64(r.header().map_or(0, |h| h.revision())))
    }

    fn fence(&self) -> Option<(Vec<u8>, i64)> {
        self.fence.lock().as_ref().map(|f| (f.key.clone(), f.rev))
    }

    /// The value of one etcd key's stored form at `revision` (0: latest), reassembling chunks;
    /// `None` if absent. Also the key's mod revision and the read's revision.
    async fn read(&self, op: &str, key: &str) -> Result<Option<(Vec<u8>, u64)>> {
        check_key(key)?;
        let ek = self.ek(key);
        for _ in 0..5 {
            let r = self
                .range(op, ek.clone(), GetOptions::new())
                .await?
                .map_err(|()| PhysicalError::Io(format!("etcd {op}: unexpected compaction")))?;
            let at = r.header().map_or(0, |h| h.revision());
            let Some(kv) = r.kvs().first() else {
                return Ok(None);
            };
            match self.decode(op, &ek, kv.value(), at).await? {
                Some(v) => return Ok(Some((v, rev_u64(kv.mod_revision())))),
                // The chunks' revision was compacted between the two reads: read again.
                None => continue,
            }
        }
        Err(PhysicalError::Io(format!(
            "etcd {op} {key}: the value kept changing while its chunks were read"
        )))
    }

    /// A stored value's bytes; for a manifest, its chunks read at revision `at`. `None` when
    /// that revision has been compacted meanwhile.
    async fn decode(&self, op: &str, ek: &[u8], stored: &[u8], at: i64) -> Result<Option<Vec<u8>>> {
        let name = String::from_utf8_lossy(&ek[self.root.len()..]).into_owned();
        match stored.split_first() {
            Some((&TAG_INLINE, v)) => Ok(Some(v.to_vec())),
            Some((&TAG_MANIFEST, m)) => {
                let Some(man) = Manifest::decode(m) else {
                    return Err(PhysicalError::Io(format!(
                        "etcd {op} {name}: damaged chunk manifest"
                    )));
                };
                let mut out = Vec::with_capacity(usize::try_from(man.len).unwrap_or(0));
                for i in 0..man.chunks {
                    let ck = chunk_key(ek, &man.generation, i);
                    let r = match self
                        .range(op, ck, GetOptions::new().with_revision(at))
                        .await?
                    {
                        Ok(r) => r,
                        Err(()) => return Ok(None),
                    };
                    let Some(kv) = r.kvs().first() else {
                        return Err(PhysicalError::Io(format!(
                            "etcd {op} {name}: chunk {i} of {} is missing (damaged store)",
                            man.chunks
                        )));
                    };
                    out.extend_from_slice(kv.value());
                }
                if out.len() as u64 != man.len {
                    return Err(PhysicalError::Io(format!(
                        "etcd {op} {name}: chunks hold {} bytes, the manifest says {}",
                        out.len(),
                        man.len
                    )));
                }
                Ok(Some(out))
            }
            _ => Err(PhysicalError::Io(format!(
                "etcd {op} {name}: the value was not written by Tresor (unknown format)"
            ))),
        }
    }

    /// Whether the rest of an etcd key after the root is an internal key.
    fn internal(rest: &[u8]) -> bool {
        rest.contains(&0)
    }

    /// Runs one write transaction: `ops` if `checks` hold (and, once the lock was granted,
    /// the fence), staging large values' chunks first. Returns the commit's revision.
    async fn write(&self, op: &'static str, checks: &[Check], ops: Vec<Op>) -> Result<u64> {
        for c in checks {
            check_key(&c.key)?;
        }
        for o in &ops {
            match o {
                Op::Put(k, _) | Op::Delete(k) => check_key(k)?,
            }
        }
        // One op per key, the last one given (applying them in order ends the same way).
        let mut last: HashMap<&str, usize> = HashMap::new();
        for (i, o) in ops.iter().enumerate() {
            let (Op::Put(k, _) | Op::Delete(k)) = o;
            last.insert(k.as_str(), i);
        }
        let keep: Vec<bool> = ops
            .iter()
            .enumerate()
            .map(|(i, o)| {
                let (Op::Put(k, _) | Op::Delete(k)) = o;
                last[k.as_str()] == i
            })
            .collect();
        let ops: Vec<Op> = ops
            .into_iter()
            .zip(keep)
            .filter_map(|(o, k)| k.then_some(o))
            .collect();
        // Which puts are chunked: the large ones, then the largest until the inline rest fits.
        let mut chunked: Vec<bool> = ops
            .iter()
            .map(|o| matches!(o, Op::Put(_, v) if v.len() > CHUNK_SIZE))
            .collect();
        let mut inline: usize = ops
            .iter()
            .zip(&chunked)
            .map(|(o, c)| match o {
                Op::Put(_, v) if !c => v.len(),
                _ => 0,
            })
            .sum();
        if inline > TXN_INLINE_BUDGET {
            let mut by_size: Vec<(usize, usize)> = ops
                .iter()
                .enumerate()
                .filter_map(|(i, o)| match o {
                    Op::Put(_, v) if !chunked[i] && v.len() >= CHUNKABLE => Some((v.len(), i)),
                    _ => None,
                })
                .collect();
            by_size.sort_unstable_by(|a, b| b.cmp(a));
            for (len, i) in by_size {
                if inline <= TXN_INLINE_BUDGET {
                    break;
                }
                chunked[i] = true;
                inline -= len;
            }
        }
        for attempt in 0..5 {
            let fence = self.fence();
            let mut compares = Vec::new();
            if let Some((fk, frev)) = &fence {
                compares.push(Compare::create_revision(
                    fk.clone(),
                    CompareOp::Equal,
                    *frev,
                ));
            }
            for c in checks {
                compares.push(Compare::mod_revision(
                    self.ek(&c.key),
                    CompareOp::Equal,
                    rev_i64(c.revision),
                ));
            }
            let mut then = Vec::new();
            let mut staged_all = Vec::new();
            for (o, &ch) in ops.iter().zip(&chunked) {
                match o {
                    Op::Put(k, v) if ch => {
                        let ek = self.ek(k);
                        let (man, staged) = self.stage(op, &ek, v, fence.as_ref()).await?;
                        for (ck, rev) in &staged {
                            compares.push(Compare::mod_revision(
                                ck.clone(),
                                CompareOp::Equal,
                                *rev,
                            ));
                        }
                        then.push(TxnOp::put(ek.clone(), man.encode(), None));
                        // Every other generation of this key goes.
                        let gen_start = concat(&concat(&ek, b"\0"), man.generation.as_bytes());
                        then.push(TxnOp::delete(
                            concat(&ek, b"\0"),
                            Some(DeleteOptions::new().with_range(gen_start.clone())),
                        ));
                        then.push(TxnOp::delete(
                            concat(&gen_start, b"\x01"),
                            Some(DeleteOptions::new().with_range(concat(&ek, b"\x01"))),
                        ));
                        staged_all.push((ek, man.generation));
                    }
                    Op::Put(k, v) => {
                        let ek = self.ek(k);
                        let mut stored = Vec::with_capacity(v.len() + 1);
                        stored.push(TAG_INLINE);
                        stored.extend_from_slice(v);
                        then.push(TxnOp::put(ek.clone(), stored, None));
                        then.push(TxnOp::delete(
                            concat(&ek, b"\0"),
                            Some(DeleteOptions::new().with_range(concat(&ek, b"\x01"))),
                        ));
                    }
                    Op::Delete(k) => {
                        let ek = self.ek(k);
                        then.push(TxnOp::delete(
                            ek.clone(),
                            Some(DeleteOptions::new().with_range(concat(&ek, b"\x01"))),
                        ));
                    }
                }
            }
            // On failure, read what decides which comparison failed.
            let mut otherwise = Vec::new();
            if let Some((fk, _)) = &fence {
                otherwise.push(TxnOp::get(
                    fk.clone(),
                    Some(GetOptions::new().with_keys_only()),
                ));
            }
            for c in checks {
                otherwise.push(TxnOp::get(
                    self.ek(&c.key),
                    Some(GetOptions::new().with_keys_only()),
                ));
            }
            let txn = Txn::new().when(compares).and_then(then).or_else(otherwise);
            let kv = self.kv.clone();
            let (res, maybe_applied) = self
                .call_tracked(op, || {
                    let mut kv = kv.clone();
                    let txn = txn.clone();
                    async move { kv.txn(txn).await }
                })
                .await;
            let resp = match res {
                Ok(r) => r,
                Err(e) => {
                    self.unstage(&staged_all).await;
                    return Err(e);
                }
            };
            let revision = rev_u64(resp.header().map_or(0, |h| h.revision()));
            if resp.succeeded() {
                return Ok(revision);
            }
            self.unstage(&staged_all).await;
            let mut answers = resp.op_responses().into_iter();
            let first_rev = |a: Option<TxnOpResponse>| match a {
                Some(TxnOpResponse::Get(g)) => g.kvs().first().map_or(0, |kv| kv.create_revision()),
                _ => 0,
            };
            let mod_rev = |a: Option<TxnOpResponse>| match a {
                Some(TxnOpResponse::Get(g)) => {
                    g.kvs().first().map_or(0, |kv| rev_u64(kv.mod_revision()))
                }
                _ => 0,
            };
            if let Some((_, frev)) = &fence {
                let now = first_rev(answers.next());
                if now != *frev {
                    return Err(PhysicalError::Fenced(format!(
                        "etcd {op}: this node no longer holds the leader lock (granted at revision {frev}, the lock key is now {}); nothing was written",
                        if now == 0 {
                            "gone".to_owned()
                        } else {
                            format!("at revision {now}")
                        }
                    )));
                }
            }
            for c in checks {
                let actual = mod_rev(answers.next());
                if actual != c.revision {
                    if maybe_applied {
                        return Err(PhysicalError::Io(format!(
                            "etcd {op}: a member failed while the transaction was sent, and trying again found {:?} at revision {actual}: the first attempt may have been applied; read the key again",
                            c.key
                        )));
                    }
                    return Err(PhysicalError::Conflict {
                        key: c.key.clone(),
                        expected: c.revision,
                        actual,
                    });
                }
            }
            // Only a staged chunk vanished (another writer of the same key won the race):
            // write again.
            tracing::debug!(
                op,
                attempt,
                "etcd write: staged chunks were replaced; retrying"
            );
        }
        Err(PhysicalError::Io(format!(
            "etcd {op}: other writers of the same large value kept winning; gave up after 5 attempts"
        )))
    }

    /// Writes the chunks of `value` for etcd key `ek` under a new generation, each in its own
    /// (fenced) transaction; returns the manifest and each chunk's key and revision.
    async fn stage(
        &self,
        op: &str,
        ek: &[u8],
        value: &[u8],
        fence: Option<&(Vec<u8>, i64)>,
    ) -> Result<(Manifest, Vec<(Vec<u8>, i64)>)> {
        let generation = uuid::Uuid::new_v4().simple().to_string();
        let chunks: Vec<&[u8]> = value.chunks(CHUNK_SIZE).collect();
        let man = Manifest {
            generation,
            chunks: u32::try_from(chunks.len()).unwrap_or(u32::MAX),
            len: value.len() as u64,
        };
        let mut staged = Vec::with_capacity(chunks.len());
        for (i, c) in chunks.into_iter().enumerate() {
            let ck = chunk_key(ek, &man.generation, u32::try_from(i).unwrap_or(u32::MAX));
            let mut compares = Vec::new();
            if let Some((fk, frev)) = fence {
                compares.push(Compare::create_revision(
                    fk.clone(),
                    CompareOp::Equal,
                    *frev,
                ));
            }
            let txn =
                Txn::new()
                    .when(compares)
                    .and_then(vec![TxnOp::put(ck.clone(), c.to_vec(), None)]);
            let kv = self.kv.clone();
            let r = self
                .call(op, || {
                    let mut kv = kv.clone();
                    let txn = txn.clone();
                    async move { kv.txn(txn).await }
                })
                .await?;
            if !r.succeeded() {
                let gen_key = ek.to_vec();
                self.unstage(&[(gen_key, man.generation.clone())]).await;
                return Err(PhysicalError::Fenced(format!(
                    "etcd {op}: this node no longer holds the leader lock; nothing was written"
                )));
            }
            staged.push((ck, r.header().map_or(0, |h| h.revision())));
        }
        Ok((man, staged))
    }

    /// Best-effort removal of staged chunks that no manifest will point to.
    async fn unstage(&self, staged: &[(Vec<u8>, String)]) {
        for (ek, generation) in staged {
            let start = concat(&concat(&concat(ek, b"\0"), generation.as_bytes()), b"\0");
            let end = range_end(&start);
            let mut compares = Vec::new();
            if let Some((fk, frev)) = self.fence() {
                compares.push(Compare::create_revision(fk, CompareOp::Equal, frev));
            }
            let txn = Txn::new().when(compares).and_then(vec![TxnOp::delete(
                start,
                Some(DeleteOptions::new().with_range(end)),
            )]);
            let mut kv = self.kv.clone();
            if let Err(e) = kv.txn(txn).await {
                tracing::warn!(error = %describe(&e), "etcd: could not remove staged chunks; they stay hidden until the key is written or deleted again");
            }
        }
    }

    /// Keys-only pages of `[from, end)` at one revision, without internal keys; `each` gets
    /// every key (the part after the root) and returns where to continue (`None`: right after
    /// it) or stops by returning `Err(())`.
    async fn scan_keys(
        &self,
        op: &str,
        mut from: Vec<u8>,
        end: Vec<u8>,
        page_size: i64,
        mut each: impl FnMut(&str) -> std::result::Result<Option<Vec<u8>>, ()>,
    ) -> Result<()> {
        let mut at = 0i64;
        loop {
            let mut opts = GetOptions::new()
                .with_range(end.clone())
                .with_keys_only()
                .with_limit(page_size);
            if at > 0 {
                opts = opts.with_revision(at);
            }
            let r = match self.range(op, from.clone(), opts).await? {
                Ok(r) => r,
                Err(()) => {
                    return Err(PhysicalError::Io(format!(
                        "etcd {op}: the listing's revision was compacted while paging; try again"
                    )));
                }
            };
            if at == 0 {
                at = r.header().map_or(0, |h| h.revision());
            }
            let kvs = r.kvs();
            let mut next: Option<Vec<u8>> = None;
            for kv in kvs {
                let full = kv.key();
                let rest = &full[self.root.len()..];
                next = Some(concat(full, b"\x01"));
                if Self::internal(rest) {
                    continue;
                }
                let Ok(name) = std::str::from_utf8(rest) else {
                    continue;
                };
                match each(name) {
                    Err(()) => return Ok(()),
                    Ok(Some(skip_to)) => next = Some(concat(&self.root, &skip_to)),
                    Ok(None) => {}
                }
            }
            match next {
                Some(n) if r.more() && n < end => from = n,
                Some(n) if r.more() && end == [0] => from = n,
                _ => return Ok(()),
            }
        }
    }
}

/// Where a large value's chunks are: generation and count, and the total length.
struct Manifest {
    generation: String,
    chunks: u32,
    len: u64,
}

impl Manifest {
    fn encode(&self) -> Vec<u8> {
        let mut v = vec![TAG_MANIFEST];
        v.extend_from_slice(&self.chunks.to_be_bytes());
        v.extend_from_slice(&self.len.to_be_bytes());
        v.extend_from_slice(self.generation.as_bytes());
        v
    }

    fn decode(m: &[u8]) -> Option<Self> {
        if m.len() < 12 + 32 {
            return None;
        }
        let chunks = u32::from_be_bytes(m[0..4].try_into().ok()?);
        let len = u64::from_be_bytes(m[4..12].try_into().ok()?);
        let generation = std::str::from_utf8(&m[12..]).ok()?.to_owned();
        if generation.len() != 32 || !generation.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        Some(Self {
            generation,
            chunks,
            len,
        })
    }
}

fn chunk_key(ek: &[u8], generation: &str, i: u32) -> Vec<u8> {
    let mut k = concat(ek, b"\0");
    k.extend_from_slice(generation.as_bytes());
    k.push(0);
    k.extend_from_slice(format!("{i:08x}").as_bytes());
    k
}

#[async_trait]
impl Backend for EtcdBackend {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        Ok(self.inner.read("get", key).await?.map(|(v, _)| v))
    }

    async fn put(&self, key: &str, value: Vec<u8>) -> Result<()> {
        self.inner
            .write("put", &[], vec![Op::Put(key.to_owned(), value)])
            .await
            .map(|_| ())
    }

    async fn delete(&self, key: &str) -> Result<()> {
        self.inner
            .write("delete", &[], vec![Op::Delete(key.to_owned())])
            .await
            .map(|_| ())
    }

    async fn transaction(&self, ops: Vec<Op>) -> Result<()> {
        self.inner.write("transaction", &[], ops).await.map(|_| ())
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>> {
        let start = self.inner.ek(prefix);
        let end = range_end(&start);
        let mut out: Vec<String> = Vec::new();
        self.inner
            .scan_keys("list", start, end, KEY_PAGE, |name| {
                let Some(rest) = name.strip_prefix(prefix) else {
                    return Err(());
                };
                match rest.find('/') {
                    Some(i) => {
                        let folder = &rest[..=i];
                        if out.last().map(String::as_str) != Some(folder) {
                            out.push(folder.to_owned());
                        }
                        // Skip everything below the folder: `a0` sorts right after `a/...`.
                        Ok(Some(format!("{prefix}{}0", &rest[..i]).into_bytes()))
                    }
                    None => {
                        out.push(rest.to_owned());
                        Ok(None)
                    }
                }
            })
            .await?;
        out.sort();
        out.dedup();
        Ok(out)
    }

    fn kind(&self) -> &'static str {
        "etcd"
    }

    fn durable(&self) -> bool {
        true
    }

    async fn get_with_revision(&self, key: &str) -> Result<Option<(Vec<u8>, u64)>> {
        self.inner.read("get", key).await
    }

    async fn revision(&self) -> Result<u64> {
        self.inner.current_revision("revision").await
    }

    async fn transaction_if(&self, checks: Vec<Check>, ops: Vec<Op>) -> Result<u64> {
        self.inner.write("transaction", &checks, ops).await
    }

    async fn watch(&self, prefix: &str, from_revision: u64) -> Result<Watcher> {
        if prefix.contains('\0') {
            return Err(PhysicalError::InvalidKey(prefix.to_owned()));
        }
        start_watch(self.inner.clone(), prefix.to_owned(), from_revision).await
    }

    async fn delete_prefix(&self, prefix: &str) -> Result<u64> {
        if prefix.is_empty() || prefix.starts_with('/') || prefix.contains('\0') {
            return Err(PhysicalError::InvalidKey(prefix.to_owned()));
        }
        let inner = &self.inner;
        let start = inner.ek(prefix);
        let end = range_end(&start);
        let fence = inner.fence();
        let mut compares = Vec::new();
        if let Some((fk, frev)) = &fence {
            compares.push(Compare::create_revision(
                fk.clone(),
                CompareOp::Equal,
                *frev,
            ));
        }
        // Something to delete (on an empty range etcd compares against a zero entry).
        compares.push(
            Compare::create_revision(start.clone(), CompareOp::Greater, 0).with_range(end.clone()),
        );
        let mut otherwise = Vec::new();
        if let Some((fk, _)) = &fence {
            otherwise.push(TxnOp::get(
                fk.clone(),
                Some(GetOptions::new().with_keys_only()),
            ));
        }
        let txn = Txn::new()
            .when(compares)
            .and_then(vec![
                TxnOp::put(inner.marker(), prefix.as_bytes().to_vec(), None),
                TxnOp::delete(start, Some(DeleteOptions::new().with_range(end))),
            ])
            .or_else(otherwise);
        let kv = inner.kv.clone();
        let resp = inner
            .call("delete_prefix", || {
                let mut kv = kv.clone();
                let txn = txn.clone();
                async move { kv.txn(txn).await }
            })
            .await?;
        let revision = rev_u64(resp.header().map_or(0, |h| h.revision()));
        if !resp.succeeded()
            && let Some((_, frev)) = fence
        {
            let now = match resp.op_responses().into_iter().next() {
                Some(TxnOpResponse::Get(g)) => g.kvs().first().map_or(0, |kv| kv.create_revision()),
                _ => 0,
            };
            if now != frev {
                return Err(PhysicalError::Fenced(format!(
                    "etcd delete_prefix: this node no longer holds the leader lock (granted at revision {frev}); nothing was written"
                )));
            }
        }
        Ok(revision)
    }

    async fn list_page(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<String>, Option<String>)> {
        check_limit(limit)?;
        let start = match after {
            // Right after `after` and its chunks.
            Some(a) if a >= prefix => concat(&self.inner.ek(a), b"\x01"),
            _ => self.inner.ek(prefix),
        };
        let end = range_end(&self.inner.ek(prefix));
        let want = limit.saturating_add(1);
        let page_size = i64::try_from(want.min(KEY_PAGE as usize)).unwrap_or(KEY_PAGE);
        let mut keys = Vec::new();
        self.inner
            .scan_keys("list_page", start, end, page_size, |name| {
                if keys.len() >= want {
                    return Err(());
                }
                keys.push(name.to_owned());
                if keys.len() >= want {
                    Err(())
                } else {
                    Ok(None)
                }
            })
            .await?;
        Ok(page(keys, limit))
    }

    async fn snapshot(&self) -> Result<Box<dyn Snapshot>> {
        let revision = self.inner.current_revision("snapshot").await?;
        Ok(Box::new(EtcdSnapshot {
            inner: self.inner.clone(),
            revision,
            handle: tokio::runtime::Handle::current(),
        }))
    }

    fn leader_lock(&self) -> Option<Arc<dyn LeaderLock>> {
        Some(self.lock.clone())
    }
}

/// Runs `f` to completion from synchronous code (a snapshot's iterator).
fn block_on<F: Future + Send>(handle: &tokio::runtime::Handle, f: F) -> F::Output
where
    F::Output: Send,
{
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current() {
        Ok(h) if h.runtime_flavor() == RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(|| handle.block_on(f))
        }
        // On a current-thread runtime, or outside any: another thread drives the future.
        _ => std::thread::scope(|s| {
            s.spawn(|| handle.block_on(f))
                .join()
                .expect("snapshot reader thread")
        }),
    }
}

/// Every entry as of one revision, read page by page as it is iterated.
struct EtcdSnapshot {
    inner: Arc<Inner>,
    revision: u64,
    handle: tokio::runtime::Handle,
}

impl Snapshot for EtcdSnapshot {
    fn revision(&self) -> u64 {
        self.revision
    }

    fn entries<'a>(&'a self, prefix: &'a str) -> Box<dyn Iterator<Item = Result<Entry>> + 'a> {
        let start = self.inner.ek(prefix);
        let end = range_end(&start);
        Box::new(SnapshotIter {
            snap: self,
            from: Some(start),
            end,
            page: VALUE_PAGE,
            buffer: std::collections::VecDeque::new(),
        })
    }
}

struct SnapshotIter<'a> {
    snap: &'a EtcdSnapshot,
    from: Option<Vec<u8>>,
    end: Vec<u8>,
    page: i64,
    buffer: std::collections::VecDeque<Result<Entry>>,
}

impl SnapshotIter<'_> {
    /// Reads the next page (entries with values, chunks reassembled) into the buffer.
    async fn fill(
        inner: &Inner,
        at: i64,
        from: Vec<u8>,
        end: Vec<u8>,
        mut page: i64,
    ) -> (Vec<Result<Entry>>, Option<Vec<u8>>, i64) {
        let op = "snapshot";
        loop {
            let opts = GetOptions::new()
                .with_range(end.clone())
                .with_limit(page)
                .with_revision(at);
            let kv = inner.kv.clone();
            let r = inner
                .call_tracked(op, || {
                    let mut kv = kv.clone();
                    let (from, opts) = (from.clone(), opts.clone());
                    async move { kv.get(from, Some(opts)).await }
                })
                .await
                .0;
            let r = match r {
                Ok(r) => r,
                Err(PhysicalError::Io(m)) if m.contains("max_receive_size") && page > 1 => {
                    page /= 2;
                    continue;
                }
                Err(PhysicalError::Io(m)) if m.contains("compacted") => {
                    return (
                        vec![Err(PhysicalError::Compacted {
                            requested: rev_u64(at),
                            oldest: rev_u64(at),
                        })],
                        None,
                        page,
                    );
                }
                Err(e) => return (vec![Err(e)], None, page),
            };
            let mut out = Vec::new();
            let mut next = None;
            for kv in r.kvs() {
                let full = kv.key();
                next = Some(concat(full, b"\x01"));
                let rest = &full[inner.root.len()..];
                if Inner::internal(rest) {
                    continue;
                }
                let Ok(name) = std::str::from_utf8(rest) else {
                    continue;
                };
                match inner.decode(op, full, kv.value(), at).await {
                    Ok(Some(value)) => out.push(Ok(Entry {
                        key: name.to_owned(),
                        value,
                        revision: rev_u64(kv.mod_revision()),
                    })),
                    Ok(None) => out.push(Err(PhysicalError::Compacted {
                        requested: rev_u64(at),
                        oldest: rev_u64(at),
                    })),
                    Err(e) => out.push(Err(e)),
                }
            }
            let next = if r.more() { next } else { None };
            return (out, next, page);
        }
    }
}

impl Iterator for SnapshotIter<'_> {
    type Item = Result<Entry>;

    fn next(&mut self) -> Option<Result<Entry>> {
        loop {
            if let Some(e) = self.buffer.pop_front() {
                return Some(e);
            }
            let from = self.from.take()?;
            let inner = self.snap.inner.clone();
            let at = rev_i64(self.snap.revision);
            let (end, page) = (self.end.clone(), self.page);
            let (entries, next, page) = block_on(&self.snap.handle, async move {
                Self::fill(&inner, at, from, end, page).await
            });
            self.page = page;
            self.from = next;
            self.buffer.extend(entries);
        }
    }
}

/// Starts an etcd watch of the whole path from `from + 1` and feeds a [`Watcher`] with the
/// events under `prefix`, resuming on another member if the stream breaks.
async fn start_watch(inner: Arc<Inner>, prefix: String, from: u64) -> Result<Watcher> {
    let now = inner.current_revision("watch").await?;
    if from < now {
        // etcd reports a compacted start only later, on the stream: ask first.
        let probe = inner
            .range(
                "watch",
                inner.marker(),
                GetOptions::new()
                    .with_count_only()
                    .with_revision(rev_i64(from + 1)),
            )
            .await?;
        if probe.is_err() {
            let oldest = compacted_at(&inner, from).await.unwrap_or(now);
            return Err(PhysicalError::Compacted {
                requested: from,
                oldest,
            });
        }
    }
    let (tx, rx) = mpsc::channel(WATCH_BUFFER);
    let cut = Arc::new(Mutex::new(None));
    let mut stream = open_stream(&inner, from).await?;
    let task_cut = cut.clone();
    tokio::spawn(async move {
        let mut progress = from;
        let marker = inner.marker();
        loop {
            let msg = tokio::select! {
                () = tx.closed() => return,
                m = stream.message() => m,
            };
            let resp = match msg {
                Ok(Some(r)) => r,
                Ok(None) | Err(_) => {
                    // The member went away: resume from where we are on another one.
                    match reopen(&inner, progress, &tx).await {
                        Ok(s) => {
                            stream = s;
                            continue;
                        }
                        Err(e) => {
                            *task_cut.lock() = Some(e);
                            return;
                        }
                    }
                }
            };
            if resp.compact_revision() != 0 {
                *task_cut.lock() = Some(PhysicalError::Compacted {
                    requested: progress,
                    oldest: rev_u64(resp.compact_revision() - 1),
                });
                return;
            }
            if resp.canceled() {
                *task_cut.lock() = Some(PhysicalError::Io(format!(
                    "etcd watch: cancelled by etcd: {}",
                    resp.cancel_reason()
                )));
                return;
            }
            // Events come whole revisions at a time; a prefix deletion's marker comes first.
            let mut deleted: Vec<(i64, String)> = Vec::new();
            for e in resp.events() {
                let Some(kv) = e.kv() else { continue };
                if kv.key() == marker.as_slice() && e.event_type() == EventType::Put {
                    deleted.push((
                        kv.mod_revision(),
                        String::from_utf8_lossy(kv.value()).into_owned(),
                    ));
                }
            }
            for e in resp.events() {
                let Some(kv) = e.kv() else { continue };
                let full = kv.key();
                let revision = kv.mod_revision();
                let event = if full == marker.as_slice() {
                    if e.event_type() != EventType::Put {
                        continue;
                    }
                    Event {
                        key: String::from_utf8_lossy(kv.value()).into_owned(),
                        revision: rev_u64(revision),
                        kind: EventKind::DeletePrefix,
                    }
                } else {
                    let Some(rest) = full.strip_prefix(inner.root.as_slice()) else {
                        continue;
                    };
                    if Inner::internal(rest) {
                        continue;
                    }
                    let Ok(name) = std::str::from_utf8(rest) else {
                        continue;
                    };
                    let kind = match e.event_type() {
                        EventType::Put => EventKind::Put,
                        EventType::Delete => EventKind::Delete,
                    };
                    if kind == EventKind::Delete
                        && deleted
                            .iter()
                            .any(|(r, p)| *r == revision && name.starts_with(p.as_str()))
                    {
                        continue;
                    }
                    Event {
                        key: name.to_owned(),
                        revision: rev_u64(revision),
                        kind,
                    }
                };
                if concerns(&prefix, &event) {
                    match tx.try_send(event.clone()) {
                        Ok(()) => {}
                        Err(mpsc::error::TrySendError::Full(_)) => {
                            *task_cut.lock() = Some(PhysicalError::Lagged {
                                resume_from: event.revision - 1,
                            });
                            return;
                        }
                        Err(mpsc::error::TrySendError::Closed(_)) => return,
                    }
                }
            }
            if let Some(last) = resp.events().last().and_then(|e| e.kv()) {
                progress = progress.max(rev_u64(last.mod_revision()));
            }
        }
    });
    Ok(Watcher::from_parts(rx, cut))
}

/// The etcd watch stream of the whole path, from just after `from`, once etcd confirmed it.
async fn open_stream(inner: &Inner, from: u64) -> Result<etcd_client::WatchStream> {
    let root = inner.root.clone();
    let end = range_end(&root);
    let wc = inner.watch.clone();
    let mut stream = inner
        .call("watch", || {
            let mut wc = wc.clone();
            let (root, end) = (root.clone(), end.clone());
            async move {
                wc.watch(
                    root,
                    Some(
                        WatchOptions::new()
                            .with_range(end)
                            .with_start_revision(rev_i64(from + 1)),
                    ),
                )
                .await
            }
        })
        .await?;
    // The first answer confirms the watch.
    match tokio::time::timeout(inner.request_timeout, stream.message()).await {
        Ok(Ok(Some(r))) if r.created() && !r.canceled() => Ok(stream),
        Ok(Ok(Some(r))) => Err(PhysicalError::Io(format!(
            "etcd watch: not created: {}",
            r.cancel_reason()
        ))),
        Ok(Ok(None)) => Err(PhysicalError::Io(
            "etcd watch: stream closed at once".into(),
        )),
        Ok(Err(e)) => Err(PhysicalError::Io(format!("etcd watch: {}", describe(&e)))),
        Err(_) => Err(PhysicalError::Io(format!(
            "etcd watch: not confirmed within request_timeout ({:?})",
            inner.request_timeout
        ))),
    }
}

/// Opens the watch again after its stream broke, trying for a while (members restart).
async fn reopen(
    inner: &Inner,
    from: u64,
    tx: &mpsc::Sender<Event>,
) -> Result<etcd_client::WatchStream> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if tx.is_closed() {
            return Err(PhysicalError::Closed);
        }
        match open_stream(inner, from).await {
            Ok(s) => return Ok(s),
            Err(e) if Instant::now() >= deadline => return Err(e),
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

/// The compaction revision that keeps a watch from `from` from starting (minus one, our
/// "oldest valid start"), read from the refusal etcd sends on a watch stream.
async fn compacted_at(inner: &Inner, from: u64) -> Option<u64> {
    let mut stream = open_stream(inner, from).await.ok()?;
    let deadline = inner.request_timeout;
    let r = tokio::time::timeout(deadline, async {
        loop {
            match stream.message().await {
                Ok(Some(r)) if r.compact_revision() != 0 => {
                    return Some(rev_u64(r.compact_revision() - 1));
                }
                Ok(Some(_)) => {}
                _ => return None,
            }
        }
    })
    .await
    .ok()
    .flatten();
    drop(stream);
    r
}

/// The leader lock: etcd's election API on a lease of `lock_timeout`.
struct EtcdLock {
    inner: Arc<Inner>,
    ttl: i64,
}

fn encode_leader(node_id: &str, value: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(4 + node_id.len() + value.len());
    v.extend_from_slice(&u32::try_from(node_id.len()).unwrap_or(0).to_be_bytes());
    v.extend_from_slice(node_id.as_bytes());
    v.extend_from_slice(value);
    v
}

fn decode_leader(v: &[u8]) -> Option<Leader> {
    let n = usize::try_from(u32::from_be_bytes(v.get(..4)?.try_into().ok()?)).ok()?;
    let id = std::str::from_utf8(v.get(4..4 + n)?).ok()?;
    Some(Leader {
        node_id: id.to_owned(),
        value: v[4 + n..].to_vec(),
    })
}

/// Revokes a lease (which deletes the keys on it) from a drop.
fn revoke_later(inner: &Arc<Inner>, lease: i64) {
    let mut lc = inner.lease.clone();
    if let Ok(h) = tokio::runtime::Handle::try_current() {
        h.spawn(async move {
            if let Err(e) = lc.revoke(lease).await {
                tracing::debug!(error = %describe(&e), "etcd: revoking the lock lease failed; it expires by itself");
            }
        });
    }
}

/// Revokes the lease of an acquire that did not finish (given up, or failed).
struct PendingLease {
    inner: Arc<Inner>,
    lease: i64,
    keepalive: Option<tokio::task::JoinHandle<()>>,
    armed: bool,
}

impl Drop for PendingLease {
    fn drop(&mut self) {
        if self.armed {
            if let Some(k) = self.keepalive.take() {
                k.abort();
            }
            revoke_later(&self.inner, self.lease);
        }
    }
}

/// Keeps `lease` alive every third of its TTL; says `lost` when etcd reports it gone or no
/// renewal succeeded for a whole TTL.
async fn keep_alive(inner: Arc<Inner>, lease: i64, ttl: i64, lost: watch::Sender<bool>) {
    let ttl_d = Duration::from_secs(u64::try_from(ttl).unwrap_or(1));
    let every = (ttl_d / 3).max(Duration::from_millis(300));
    let mut deadline = Instant::now() + ttl_d;
    let mut session: Option<(etcd_client::LeaseKeeper, etcd_client::LeaseKeepAliveStream)> = None;
    loop {
        let sent = Instant::now();
        if session.is_none() {
            let mut lc = inner.lease.clone();
            match tokio::time::timeout(every, lc.keep_alive(lease)).await {
                Ok(Ok(s)) => {
                    // Opening the stream renewed the lease once already.
                    deadline = sent + ttl_d;
                    session = Some(s);
                }
                Ok(Err(e)) if e.to_string().contains("lease not found") => {
                    let _ = lost.send(true);
                    return;
                }
                _ => {}
            }
        } else if let Some((keeper, stream)) = session.as_mut() {
            let renewed = tokio::time::timeout(every, async {
                keeper.keep_alive().await?;
                stream.message().await
            })
            .await;
            match renewed {
                Ok(Ok(Some(r))) if r.ttl() > 0 => deadline = sent + ttl_d,
                Ok(Ok(Some(_))) => {
                    // TTL 0: the lease is gone (expired or revoked).
                    let _ = lost.send(true);
                    return;
                }
                _ => session = None,
            }
        }
        if Instant::now() >= deadline {
            let _ = lost.send(true);
            return;
        }
        tokio::time::sleep(every.saturating_sub(sent.elapsed())).await;
        if Instant::now() >= deadline {
            let _ = lost.send(true);
            return;
        }
    }
}

#[async_trait]
impl LeaderLock for EtcdLock {
    async fn acquire(&self, node_id: &str, value: Vec<u8>) -> Result<LeaderGuard> {
        let inner = &self.inner;
        let name = concat(&inner.root, ELECTION);
        let advertised = encode_leader(node_id, &value);
        loop {
            let lc = inner.lease.clone();
            let ttl = self.ttl;
            let grant = inner
                .call("lock (lease grant)", || {
                    let mut lc = lc.clone();
                    async move { lc.grant(ttl, None).await }
                })
                .await?;
            let lease = grant.id();
            let (lost_tx, lost_rx) = watch::channel(false);
            let mut pending = PendingLease {
                inner: inner.clone(),
                lease,
                keepalive: Some(tokio::spawn(keep_alive(inner.clone(), lease, ttl, lost_tx))),
                armed: true,
            };
            // Waits (server side) until every older candidate's key is gone.
            let mut ec = inner.election.clone();
            let mut lost_wait = lost_rx.clone();
            let won = tokio::select! {
                r = ec.campaign(name.clone(), advertised.clone(), lease) => r,
                _ = lost_wait.wait_for(|l| *l) => {
                    // Our lease died while waiting: start again with a new one.
                    continue;
                }
            };
            let won = match won {
                Ok(w) => w,
                Err(e) if retryable(&e) => {
                    tracing::debug!(error = %describe(&e), "etcd lock: campaign interrupted; trying again");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
                Err(e) => {
                    return Err(PhysicalError::Io(format!(
                        "etcd lock (campaign): {}",
                        describe(&e)
                    )));
                }
            };
            let Some(key) = won.leader() else {
                return Err(PhysicalError::Io(
                    "etcd lock (campaign): etcd answered without a leader key".into(),
                ));
            };
            let (lock_key, rev) = (key.key().to_vec(), key.rev());
            // The lease may have run out just as etcd answered: make sure the key is ours.
            let check = inner
                .range(
                    "lock (check)",
                    lock_key.clone(),
                    GetOptions::new().with_keys_only(),
                )
                .await?
                .map_err(|()| PhysicalError::Io("etcd lock (check): compacted".into()))?;
            let ours = check
                .kvs()
                .first()
                .is_some_and(|kv| kv.create_revision() == rev && kv.lease() == lease);
            if !ours || *lost_rx.borrow() {
                continue;
            }
            *inner.fence.lock() = Some(Fence { key: lock_key, rev });
            pending.armed = false;
            let held = EtcdHeld {
                inner: inner.clone(),
                lease,
                keepalive: pending.keepalive.take(),
            };
            return Ok(LeaderGuard::new(
                Leader {
                    node_id: node_id.to_owned(),
                    value,
                },
                rev_u64(rev),
                lost_rx,
                Box::new(held),
            ));
        }
    }

    async fn leader(&self) -> Result<Option<Leader>> {
        let name = concat(&self.inner.root, ELECTION);
        // The oldest candidate key is the leader (what etcd's election API reports).
        let r = self
            .inner
            .range(
                "leader",
                concat(&name, b"/"),
                GetOptions::new()
                    .with_range(range_end(&concat(&name, b"/")))
                    .with_sort(
                        etcd_client::SortTarget::Create,
                        etcd_client::SortOrder::Ascend,
                    )
                    .with_limit(1),
            )
            .await?
            .map_err(|()| PhysicalError::Io("etcd leader: compacted".into()))?;
        match r.kvs().first() {
            None => Ok(None),
            Some(kv) => decode_leader(kv.value()).map(Some).ok_or_else(|| {
                PhysicalError::Io("etcd leader: the leader key holds an unknown value".into())
            }),
        }
    }
}

struct EtcdHeld {
    inner: Arc<Inner>,
    lease: i64,
    keepalive: Option<tokio::task::JoinHandle<()>>,
}

#[async_trait]
impl HeldLock for EtcdHeld {
    async fn release(mut self: Box<Self>) -> Result<()> {
        if let Some(k) = self.keepalive.take() {
            k.abort();
        }
        let lc = self.inner.lease.clone();
        let lease = self.lease;
        // Done: Drop must not revoke again.
        self.lease = 0;
        self.inner
            .call("lock (release)", || {
                let mut lc = lc.clone();
                async move { lc.revoke(lease).await }
            })
            .await
            .map(|_| ())
            .or_else(|e| match e {
                // Already expired: released all the same.
                PhysicalError::Io(m) if m.contains("lease not found") => Ok(()),
                e => Err(e),
            })
    }
}

impl Drop for EtcdHeld {
    fn drop(&mut self) {
        if let Some(k) = self.keepalive.take() {
            k.abort();
        }
        if self.lease != 0 {
            revoke_later(&self.inner, self.lease);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_follow_vault() {
        let c = EtcdConfig::from_settings([
            ("address", "http://127.0.0.1:1, http://127.0.0.1:2"),
            ("path", "tresor"),
            ("ha_enabled", "true"),
            ("request_timeout", "2s"),
            ("lock_timeout", "4s"),
            ("etcd_api", "v3"),
        ])
        .unwrap();
        assert_eq!(
            c.endpoints,
            vec!["http://127.0.0.1:1", "http://127.0.0.1:2"]
        );
        assert_eq!(c.path, "tresor/");
        assert!(c.ha_enabled);
        assert_eq!(c.request_timeout, Duration::from_secs(2));
        assert_eq!(c.lock_timeout, Duration::from_secs(4));
        let d = EtcdConfig::from_settings([]).unwrap();
        assert_eq!(d.path, "/vault/");
        assert_eq!(d.lock_timeout, DEFAULT_LOCK_TIMEOUT);
        assert_eq!(d.request_timeout, Duration::from_secs(5));
        for (k, v, want) in [
            ("etcd_api", "v2", "v2 API is not supported"),
            ("lock_timeout", "1s", "at least 2s"),
            ("request_timeout", "soon", "not a duration"),
            ("ha_enabled", "yes", "not true or false"),
            ("max_receive_size", "12", "out of range"),
            ("address", " , ", "no etcd member"),
            ("discovery_srv", "x", "not supported"),
        ] {
            let e = EtcdConfig::from_settings([(k, v)]).unwrap_err();
            assert!(e.starts_with(k) && e.contains(want), "{k}={v}: {e}");
        }
        let e = EtcdConfig::from_settings([("username", "u")]).unwrap_err();
        assert!(e.contains("both"), "{e}");
        let c = EtcdConfig::from_settings([("username", "u"), ("password", "hunter2")]).unwrap();
        assert!(
            !format!("{c:?}").contains("hunter2"),
            "the password is not printed"
        );
    }

    #[test]
    fn manifests_round_trip_and_refuse_garbage() {
        let m = Manifest {
            generation: "0123456789abcdef0123456789abcdef".into(),
            chunks: 3,
            len: 3 * 1024 * 1024,
        };
        let enc = m.encode();
        let d = Manifest::decode(&enc[1..]).unwrap();
        assert_eq!((d.chunks, d.len, d.generation), (3, m.len, m.generation));
        assert!(Manifest::decode(&enc[1..20]).is_none());
        assert_eq!(range_end(b"a/"), b"a0".to_vec());
        assert_eq!(range_end(b"a\xff"), b"b".to_vec());
        let l = decode_leader(&encode_leader("node-1", b"addr")).unwrap();
        assert_eq!(
            (l.node_id.as_str(), l.value.as_slice()),
            ("node-1", &b"addr"[..])
        );
    }
}
