//! Resource quotas (issue 20): rate limits per client address, checked by the HTTP layer
//! before a request costs anything (no token lookup, no body handed to an engine), and
//! lease-count quotas, checked when a lease would be created.
//!
//! Quotas are stored behind the barrier (`sys/quotas/rate-limit/<name>`,
//! `sys/quotas/lease-count/<name>`, `sys/quotas/config`) and loaded at unseal. A quota's path
//! is empty (every request), a mount (`secret/`), a path under a mount (`secret/data/app`, that
//! path and below), or, beyond Vault, a glob (`*` any characters). Every quota whose path and
//! role match a request is enforced — Vault picks the most specific one only; here a tight
//! quota on a path and a global one both hold.
//!
//! The rate limiter is a token bucket per quota and client address: `rate` requests per
//! `interval`, refilled continuously, holding at most `burst` (default: `rate`). A client that
//! empties it is refused until a token is back, or, with `block_interval`, for that long.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use parking_lot::{Mutex, RwLock};
use serde::{Deserialize, Serialize};
use tresor_sdk::Storage as _;

use crate::barrier::View;
use crate::error::CoreError;
use crate::telemetry::{Counter, counter};

/// Where quotas are stored, below the barrier.
pub const PREFIX: &str = "sys/quotas/";

/// Vault's default `rate_limit_exempt_paths`.
pub const DEFAULT_EXEMPT: [&str; 7] = [
    "sys/generate-recovery-token/attempt",
    "sys/generate-recovery-token/update",
    "sys/generate-root/attempt",
    "sys/generate-root/update",
    "sys/health",
    "sys/seal-status",
    "sys/unseal",
];

fn one() -> u32 {
    1
}

/// A stored rate-limit quota.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RateLimitQuota {
    #[serde(default = "one")]
    pub v: u32,
    pub name: String,
    pub path: String,
    #[serde(default)]
    pub role: String,
    pub rate: f64,
    /// Seconds.
    pub interval: f64,
    /// Seconds; 0: none.
    #[serde(default)]
    pub block_interval: f64,
    #[serde(default)]
    pub inheritable: bool,
    /// Beyond Vault: the most requests at once (default: `rate`).
    #[serde(default)]
    pub burst: Option<u64>,
}

/// A stored lease-count quota.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LeaseCountQuota {
    #[serde(default = "one")]
    pub v: u32,
    pub name: String,
    pub path: String,
    #[serde(default)]
    pub role: String,
    pub max_leases: u64,
    #[serde(default)]
    pub inheritable: bool,
}

/// `sys/quotas/config`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct QuotaConfig {
    #[serde(default = "one")]
    pub v: u32,
    pub rate_limit_exempt_paths: Vec<String>,
    #[serde(default)]
    pub enable_rate_limit_audit_logging: bool,
    #[serde(default)]
    pub enable_rate_limit_response_headers: bool,
}

impl Default for QuotaConfig {
    fn default() -> Self {
        QuotaConfig {
            v: 1,
            rate_limit_exempt_paths: DEFAULT_EXEMPT.iter().map(|s| s.to_string()).collect(),
            enable_rate_limit_audit_logging: false,
            enable_rate_limit_response_headers: false,
        }
    }
}

/// Whether a quota path covers a request path.
pub fn path_matches(quota: &str, path: &str) -> bool {
    if quota.is_empty() {
        return true;
    }
    if quota.contains('*') {
        return glob(quota.as_bytes(), path.as_bytes());
    }
    if quota.ends_with('/') {
        return path.starts_with(quota) || path == quota.trim_end_matches('/');
    }
    path == quota
        || path
            .strip_prefix(quota)
            .is_some_and(|rest| rest.starts_with('/'))
}

/// `*` matches any run of characters (slashes too).
fn glob(p: &[u8], s: &[u8]) -> bool {
    let (mut pi, mut si) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while si < s.len() {
        if pi < p.len() && p[pi] == b'*' {
            star = Some(pi);
            mark = si;
            pi += 1;
        } else if pi < p.len() && p[pi] == s[si] {
            pi += 1;
            si += 1;
        } else if let Some(st) = star {
            pi = st + 1;
            mark += 1;
            si = mark;
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == b'*' {
        pi += 1;
    }
    pi == p.len()
}

struct Bucket {
    tokens: f64,
    at: Instant,
    blocked_until: Option<Instant>,
}

const SHARDS: usize = 16;

/// One rate-limit quota in force: its buckets by client address.
struct Limiter {
    q: RateLimitQuota,
    capacity: f64,
    per_sec: f64,
    shards: [Mutex<HashMap<String, Bucket>>; SHARDS],
    violations: &'static Counter,
}

/// What a rate limit decided, for the response headers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateHeaders {
    pub limit: u64,
    pub remaining: u64,
    /// Unix seconds at which the bucket is full again.
    pub reset: i64,
    /// Seconds until the next request may pass (for `Retry-After`).
    pub retry_after: u64,
}

impl Limiter {
    fn new(q: RateLimitQuota) -> Self {
        let capacity = q.burst.map(|b| b as f64).unwrap_or(q.rate).max(1.0);
        let per_sec = q.rate / q.interval.max(1e-3);
        let violations = counter(
            "vault.quota.rate_limit.violation",
            &[("name", q.name.as_str())],
        );
        Limiter {
            q,
            capacity,
            per_sec,
            shards: std::array::from_fn(|_| Mutex::new(HashMap::new())),
            violations,
        }
    }

    fn shard(&self, client: &str) -> &Mutex<HashMap<String, Bucket>> {
        let h = client.bytes().fold(0xcbf29ce484222325u64, |h, b| {
            (h ^ b as u64).wrapping_mul(0x100000001b3)
        });
        &self.shards[(h as usize) % SHARDS]
    }

    /// Takes a token for `client`, or says why not; the response headers' values only when
    /// `want_headers` (they read the wall clock).
    fn take(&self, client: &str, now: Instant, want_headers: bool) -> (bool, Option<RateHeaders>) {
        let mut shard = self.shard(client).lock();
        if shard.len() > 100_000 {
            // Forget clients whose buckets are full again (they are as good as new).
            let full = self.capacity;
            let per_sec = self.per_sec;
            shard.retain(|_, b| {
                b.blocked_until.is_some_and(|u| u > now)
                    || b.tokens + now.duration_since(b.at).as_secs_f64() * per_sec < full
            });
        }
        // A known client's bucket is found without allocating its key.
        if !shard.contains_key(client) {
            shard.insert(
                client.to_owned(),
                Bucket {
                    tokens: self.capacity,
                    at: now,
                    blocked_until: None,
                },
            );
        }
        let Some(b) = shard.get_mut(client) else {
            return (true, None);
        };
        b.tokens =
            (b.tokens + now.duration_since(b.at).as_secs_f64() * self.per_sec).min(self.capacity);
        b.at = now;
        let headers = |b: &Bucket, retry: f64| {
            want_headers.then(|| RateHeaders {
                limit: self.q.rate.round() as u64,
                remaining: b.tokens.max(0.0).floor() as u64,
                reset: crate::tokens::now()
                    + ((self.capacity - b.tokens).max(0.0) / self.per_sec).ceil() as i64,
                retry_after: retry.ceil().max(1.0) as u64,
            })
        };
        if let Some(until) = b.blocked_until {
            if until > now {
                let h = headers(b, (until - now).as_secs_f64());
                return (false, h);
            }
            b.blocked_until = None;
        }
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            return (true, headers(b, 0.0));
        }
        let mut retry = (1.0 - b.tokens) / self.per_sec;
        if self.q.block_interval > 0.0 {
            b.blocked_until = Some(now + Duration::from_secs_f64(self.q.block_interval));
            retry = self.q.block_interval;
        }
        (false, headers(b, retry))
    }
}

struct State {
    rate: Vec<Arc<Limiter>>,
    lease: Vec<LeaseCountQuota>,
    config: QuotaConfig,
}

/// The quotas of an unsealed server.
pub struct QuotaStore {
    view: View,
    state: RwLock<Arc<State>>,
    /// Any rate-limit quota at all: without one, a check is one atomic load.
    any_rate: AtomicBool,
    /// Held while a lease under a lease-count quota is counted and created.
    lease_lock: Arc<tokio::sync::Mutex<()>>,
}

/// The outcome of a rate-limit check.
#[derive(Debug, Clone, PartialEq)]
pub enum RateDecision {
    /// Allowed; the headers of the tightest quota when response headers are on.
    Allowed(Option<RateHeaders>),
    /// Refused with Vault's message; headers when response headers are on.
    Refused(String, Option<RateHeaders>),
}

fn decode<T: for<'de> Deserialize<'de>>(b: &[u8]) -> Result<T, CoreError> {
    serde_json::from_slice(b).map_err(|e| CoreError::Internal(format!("stored quota: {e}")))
}

fn sdk(e: tresor_sdk::LogicalError) -> CoreError {
    CoreError::Internal(e.to_string())
}

impl QuotaStore {
    pub async fn open(view: View) -> Result<Self, CoreError> {
        let s = QuotaStore {
            view,
            state: RwLock::new(Arc::new(State {
                rate: Vec::new(),
                lease: Vec::new(),
                config: QuotaConfig::default(),
            })),
            any_rate: AtomicBool::new(false),
            lease_lock: Arc::new(tokio::sync::Mutex::new(())),
        };
        s.reload().await?;
        Ok(s)
    }

    /// Reads every quota from storage (at unseal, and after each change). Buckets of quotas
    /// that did not change are kept.
    pub async fn reload(&self) -> Result<(), CoreError> {
        let mut rate = Vec::new();
        for name in self.view.list("rate-limit/").await.map_err(sdk)? {
            if let Some(b) = self
                .view
                .get(&format!("rate-limit/{name}"))
                .await
                .map_err(sdk)?
            {
                rate.push(decode::<RateLimitQuota>(&b)?);
            }
        }
        let mut lease = Vec::new();
        for name in self.view.list("lease-count/").await.map_err(sdk)? {
            if let Some(b) = self
                .view
                .get(&format!("lease-count/{name}"))
                .await
                .map_err(sdk)?
            {
                lease.push(decode::<LeaseCountQuota>(&b)?);
            }
        }
        let config = match self.view.get("config").await.map_err(sdk)? {
            Some(b) => decode(&b)?,
            None => QuotaConfig::default(),
        };
        let old = self.state.read().clone();
        let rate: Vec<Arc<Limiter>> = rate
            .into_iter()
            .map(|q| {
                old.rate
                    .iter()
                    .find(|l| l.q == q)
                    .cloned()
                    .unwrap_or_else(|| Arc::new(Limiter::new(q)))
            })
            .collect();
        self.any_rate.store(!rate.is_empty(), Ordering::Relaxed);
        *self.state.write() = Arc::new(State {
            rate,
            lease,
            config,
        });
        Ok(())
    }

    pub fn rate_limits(&self) -> Vec<RateLimitQuota> {
        self.state.read().rate.iter().map(|l| l.q.clone()).collect()
    }
    pub fn lease_counts(&self) -> Vec<LeaseCountQuota> {
        self.state.read().lease.clone()
    }
    pub fn config(&self) -> QuotaConfig {
        self.state.read().config.clone()
    }

    pub async fn put_rate_limit(&self, q: &RateLimitQuota) -> Result<(), CoreError> {
        self.put(&format!("rate-limit/{}", q.name), q).await
    }
    pub async fn put_lease_count(&self, q: &LeaseCountQuota) -> Result<(), CoreError> {
        self.put(&format!("lease-count/{}", q.name), q).await
    }
    pub async fn put_config(&self, c: &QuotaConfig) -> Result<(), CoreError> {
        self.put("config", c).await
    }
    pub async fn delete(&self, kind: &str, name: &str) -> Result<(), CoreError> {
        self.view
            .delete(&format!("{kind}/{name}"))
            .await
            .map_err(sdk)?;
        self.reload().await
    }

    async fn put<T: Serialize>(&self, key: &str, v: &T) -> Result<(), CoreError> {
        let b = serde_json::to_vec(v).map_err(|e| CoreError::Internal(e.to_string()))?;
        self.view.put(key, b).await.map_err(sdk)?;
        self.reload().await
    }

    /// `sys/quotas/config`'s `enable_rate_limit_audit_logging`, without copying the config.
    pub fn audits_refusals(&self) -> bool {
        self.state.read().config.enable_rate_limit_audit_logging
    }

    /// Whether a rate-limit quota with a `role` covers `path` (only then does the role a
    /// request names need finding out).
    pub fn role_matters(&self, path: &str) -> bool {
        self.any_rate.load(Ordering::Relaxed)
            && self
                .state
                .read()
                .rate
                .iter()
                .any(|l| !l.q.role.is_empty() && path_matches(&l.q.path, path))
    }

    /// Whether a lease-count quota with a `role` covers `path` (only then does the role a
    /// login names need finding out, and get recorded on its token's lease).
    pub fn lease_role_matters(&self, path: &str) -> bool {
        self.state
            .read()
            .lease
            .iter()
            .any(|q| !q.role.is_empty() && path_matches(&q.path, path))
    }

    /// The rate-limit check of one request: every matching quota takes a token for the
    /// client. `role`: the role a login request names, for quotas with a `role`.
    pub fn check_rate(&self, path: &str, client: &str, role: Option<&str>) -> RateDecision {
        if !self.any_rate.load(Ordering::Relaxed) {
            return RateDecision::Allowed(None);
        }
        let state = self.state.read().clone();
        if state
            .config
            .rate_limit_exempt_paths
            .iter()
            .any(|e| path_matches(e, path))
        {
            return RateDecision::Allowed(None);
        }
        let headers_on = state.config.enable_rate_limit_response_headers;
        let now = Instant::now();
        let mut tightest: Option<RateHeaders> = None;
        for l in &state.rate {
            if !path_matches(&l.q.path, path) {
                continue;
            }
            if !l.q.role.is_empty() && role != Some(l.q.role.as_str()) {
                continue;
            }
            let (ok, h) = l.take(client, now, headers_on);
            if !ok {
                l.violations.inc();
                return RateDecision::Refused(
                    format!("request path {path:?}: rate limit quota exceeded"),
                    h,
                );
            }
            if let Some(h) = h
                && tightest.is_none_or(|t| h.remaining < t.remaining)
            {
                tightest = Some(h);
            }
        }
        RateDecision::Allowed(tightest)
    }

    /// Before a lease is created for a secret read at `path`: refuses it (429, Vault's
    /// message) if a lease-count quota covering the path is full. A quota with a `role`
    /// applies only to logins naming that role (`role`) and counts only the leases of the
    /// tokens such logins created. The returned guard is held until the lease is stored, so
    /// two requests cannot both take the last place.
    pub async fn check_lease(
        &self,
        path: &str,
        role: Option<&str>,
        expiration: &crate::expiration::Expiration,
    ) -> Result<Option<tokio::sync::OwnedMutexGuard<()>>, CoreError> {
        let quotas: Vec<LeaseCountQuota> = {
            let s = self.state.read();
            if s.lease.is_empty() {
                return Ok(None);
            }
            s.lease
                .iter()
                .filter(|q| path_matches(&q.path, path))
                .filter(|q| q.role.is_empty() || role == Some(q.role.as_str()))
                .cloned()
                .collect()
        };
        if quotas.is_empty() {
            return Ok(None);
        }
        let guard = self.lease_lock.clone().lock_owned().await;
        for q in quotas {
            let fixed = q.path.split('*').next().unwrap_or_default();
            let mut ids = 0u64;
            for id in expiration.all_under(fixed, usize::MAX).await? {
                if !path_matches(&q.path, &id) {
                    continue;
                }
                if !q.role.is_empty() && expiration.get(&id).await?.is_none_or(|e| e.role != q.role)
                {
                    continue;
                }
                ids += 1;
            }
            crate::telemetry::gauge("vault.quota.lease_count.counter", &[("name", &q.name)])
                .set(ids as f64);
            crate::telemetry::gauge("vault.quota.lease_count.max", &[("name", &q.name)])
                .set(q.max_leases as f64);
            if ids >= q.max_leases {
                counter("vault.quota.lease_count.violation", &[("name", &q.name)]).inc();
                return Err(CoreError::RateLimited(format!(
                    "request path {path:?}: lease count quota exceeded"
                )));
            }
        }
        Ok(Some(guard))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quota_paths() {
        for (q, p, want) in [
            ("", "anything/at/all", true),
            ("secret/", "secret/data/a", true),
            ("secret/", "secret", true),
            ("secret/", "secrets/x", false),
            ("secret/data/app", "secret/data/app", true),
            ("secret/data/app", "secret/data/app/x", true),
            ("secret/data/app", "secret/data/apple", false),
            ("secret/data/*/db", "secret/data/team/db", true),
            ("secret/data/*/db", "secret/data/team/web", false),
            ("pki/issue/*", "pki/issue/web", true),
            ("pki/issue/*", "pki/sign/web", false),
        ] {
            assert_eq!(path_matches(q, p), want, "{q} ~ {p}");
        }
    }

    fn quota(rate: f64, burst: Option<u64>, block: f64) -> Limiter {
        Limiter::new(RateLimitQuota {
            v: 1,
            name: "t".into(),
            path: String::new(),
            role: String::new(),
            rate,
            interval: 1.0,
            block_interval: block,
            inheritable: false,
            burst,
        })
    }

    #[test]
    fn token_bucket_refills_and_is_per_client() {
        let l = quota(10.0, None, 0.0);
        let t0 = Instant::now();
        let passed = (0..50).filter(|_| l.take("1.2.3.4", t0, true).0).count();
        assert_eq!(passed, 10);
        // Another address has its own bucket.
        assert!(l.take("5.6.7.8", t0, true).0);
        // Half a second later, five more.
        let t1 = t0 + Duration::from_millis(500);
        let passed = (0..50).filter(|_| l.take("1.2.3.4", t1, true).0).count();
        assert_eq!(passed, 5);
        let (ok, h) = l.take("1.2.3.4", t1, true);
        assert!(!ok);
        let h = h.expect("headers asked for");
        assert_eq!((h.limit, h.remaining, h.retry_after), (10, 0, 1));
        // Without headers asked for, none are computed.
        assert_eq!(l.take("1.2.3.4", t1, false), (false, None));
    }

    #[test]
    fn burst_and_block_interval() {
        let l = quota(10.0, Some(2), 5.0);
        let t0 = Instant::now();
        assert_eq!((0..10).filter(|_| l.take("c", t0, true).0).count(), 2);
        // Blocked for five seconds, although tokens come back after 100 ms.
        let (ok, h) = l.take("c", t0 + Duration::from_secs(1), true);
        assert!(!ok);
        assert_eq!(h.expect("headers asked for").retry_after, 4);
        assert!(l.take("c", t0 + Duration::from_secs(6), true).0);
    }
}
