//! The expiration manager: every leased secret and every expiring service token is a lease,
//! renewed and revoked on time, with revocation routed back to the engine that issued it.
//!
//! Nothing per lease is held in memory, so a million leases cost storage, not RAM. Storage
//! layout (in the `sys/expire/` view, behind the barrier):
//! - `id/<lease_id>`: the lease entry (lease ids look like `<request path>/<random>`, so
//!   listing `id/<prefix>` answers `LIST sys/leases/lookup/<prefix>`);
//! - `time/<hour>/<second>/<b64(lease_id)>`: the expiry index, two levels so a tick lists only
//!   the hours and seconds that are due;
//! - `token/<token-id>/<b64(lease_id)>`: which leases a token created, revoked with it.
//!
//! Renewing writes a new index entry; the old one is recognised as stale by comparing its
//! second with the entry's `expire_time`. A failed revocation is retried with exponential
//! backoff (by re-indexing the lease later) and never holds up other expirations.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use tresor_sdk::{SecretLease, SecretRef, Storage};

use crate::barrier::View;
use crate::error::CoreError;
use crate::tokens::rfc3339;

/// What kind of thing a lease stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LeaseKind {
    Secret,
    Token,
}

/// One persisted lease.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LeaseEntry {
    pub version: u32,
    pub lease_id: String,
    pub kind: LeaseKind,
    /// The request path that created the secret (`secret/creds/web`), used to find its engine.
    pub path: String,
    pub secret_type: String,
    #[serde(default)]
    pub internal_data: Map<String, Value>,
    /// The internal id of the token that created it (or, for a token lease, the token itself).
    pub token_id: String,
    pub issue_time: i64,
    pub expire_time: i64,
    #[serde(default)]
    pub last_renewal: Option<i64>,
    /// Hard deadline: the lease never lives past this (issue time + max TTL).
    pub max_expire: i64,
    pub renewable: bool,
    #[serde(default)]
    pub attempts: u32,
    /// For a login token's lease: the role the login named (an AppRole role, a token role),
    /// counted by lease-count quotas with a `role`. Empty otherwise.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub role: String,
}

/// A service token's lease id: `<creation path>/<order>.<token id>`, the accessor's
/// time-ordered prefix first (so token leases are stored in creation order, like the token
/// store's indexes), or `<creation path>/<token id>` for an accessor without one (tokens of
/// earlier versions).
pub fn token_lease_id(path: &str, token_id: &str, accessor: &str) -> String {
    let path = path.trim_end_matches('/');
    match tresor_seal::token::accessor_order(accessor) {
        Some(order) => format!("{path}/{order}.{token_id}"),
        None => format!("{path}/{token_id}"),
    }
}

impl LeaseEntry {
    pub fn lookup_json(&self, at: i64) -> Value {
        json!({
            "id": self.lease_id,
            "issue_time": rfc3339(self.issue_time),
            "expire_time": rfc3339(self.expire_time),
            "last_renewal": self.last_renewal.map(rfc3339),
            "renewable": self.renewable,
            "ttl": (self.expire_time - at).max(0),
        })
    }
}

/// The expiration manager over its view.
pub struct Expiration {
    view: View,
}

fn sdk(e: tresor_sdk::LogicalError) -> CoreError {
    CoreError::from(e)
}

fn enc(lease_id: &str) -> String {
    URL_SAFE_NO_PAD.encode(lease_id)
}

fn dec(s: &str) -> Option<String> {
    URL_SAFE_NO_PAD
        .decode(s)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
}

fn time_key(at: i64, lease_id: &str) -> String {
    let at = at.max(0);
    format!("time/{:010}/{:012}/{}", at / 3600, at, enc(lease_id))
}

/// Backoff before retrying a failed revocation: 2^attempts seconds, at most an hour.
pub fn backoff(attempts: u32) -> i64 {
    1i64 << attempts.min(12)
}

impl tresor_sdk::record::Versioned for LeaseEntry {
    const FORMAT: u32 = 1;
    fn format(&self) -> u32 {
        self.version
    }
}

impl Expiration {
    pub fn new(view: View) -> Self {
        Expiration { view }
    }

    pub async fn get(&self, lease_id: &str) -> Result<Option<LeaseEntry>, CoreError> {
        match self
            .view
            .get(&format!("id/{lease_id}"))
            .await
            .map_err(sdk)?
        {
            None => Ok(None),
            Some(b) => tresor_sdk::record::decode("lease", &b)
                .map(Some)
                .map_err(CoreError::Internal),
        }
    }

    /// Writes a lease entry, its expiry index entry and (optionally) its token index entry in
    /// one commit.
    async fn put(&self, e: &LeaseEntry, token_index: bool) -> Result<(), CoreError> {
        let bytes = serde_json::to_vec(e).map_err(|x| CoreError::Internal(x.to_string()))?;
        let mut ops = vec![
            (format!("id/{}", e.lease_id), Some(bytes)),
            (time_key(e.expire_time, &e.lease_id), Some(Vec::new())),
        ];
        if token_index {
            ops.push((
                format!("token/{}/{}", e.token_id, enc(&e.lease_id)),
                Some(Vec::new()),
            ));
        }
        self.view.transaction(ops).await
    }

    /// Registers a secret lease from an engine response. Returns the entry (with its id).
    pub async fn register_secret(
        &self,
        path: &str,
        token_id: &str,
        lease: &SecretLease,
        default_ttl: Duration,
        max_ttl: Duration,
        at: i64,
    ) -> Result<LeaseEntry, CoreError> {
        let mut rand = [0u8; 12];
        aws_lc_rs::rand::fill(&mut rand).map_err(|_| CoreError::Internal("randomness".into()))?;
        let suffix: String = URL_SAFE_NO_PAD
            .encode(rand)
            .chars()
            .map(|c| if c == '-' || c == '_' { 'x' } else { c })
            .collect();
        let ttl = if lease.ttl.is_zero() {
            default_ttl
        } else {
            lease.ttl
        };
        let max = lease
            .max_ttl
            .filter(|m| !m.is_zero())
            .map(|m| m.min(max_ttl))
            .unwrap_or(max_ttl);
        let ttl = ttl.min(max);
        let e = LeaseEntry {
            version: 1,
            lease_id: format!("{}/{}", path.trim_end_matches('/'), suffix),
            kind: LeaseKind::Secret,
            path: path.to_owned(),
            secret_type: lease.secret_type.clone(),
            internal_data: lease.internal_data.clone(),
            token_id: token_id.to_owned(),
            issue_time: at,
            expire_time: at.saturating_add(crate::tokens::secs(ttl)),
            last_renewal: None,
            max_expire: at.saturating_add(crate::tokens::secs(max)),
            renewable: lease.renewable,
            attempts: 0,
            role: String::new(),
        };
        self.put(&e, !token_id.is_empty()).await?;
        Ok(e)
    }

    fn token_entry(
        path: &str,
        token_id: &str,
        accessor: &str,
        issue: i64,
        expire: i64,
    ) -> LeaseEntry {
        LeaseEntry {
            version: 1,
            lease_id: token_lease_id(path, token_id, accessor),
            kind: LeaseKind::Token,
            path: path.to_owned(),
            secret_type: "token".into(),
            internal_data: Map::new(),
            token_id: token_id.to_owned(),
            issue_time: issue,
            expire_time: expire,
            last_renewal: None,
            max_expire: i64::MAX,
            renewable: true,
            attempts: 0,
            role: String::new(),
        }
    }

    /// Registers an expiring service token (lease id: [`token_lease_id`]).
    pub async fn register_token(
        &self,
        path: &str,
        token_id: &str,
        accessor: &str,
        issue: i64,
        expire: i64,
    ) -> Result<String, CoreError> {
        let e = Self::token_entry(path, token_id, accessor, issue, expire);
        self.put(&e, false).await?;
        Ok(e.lease_id)
    }

    /// The writes that register a token's lease, as full barrier paths, so the token store can
    /// commit them together with the token itself (one fsync per token creation).
    pub fn token_lease_ops(
        &self,
        path: &str,
        token_id: &str,
        accessor: &str,
        issue: i64,
        expire: i64,
        role: &str,
    ) -> Result<Vec<(String, Option<Vec<u8>>)>, CoreError> {
        let mut e = Self::token_entry(path, token_id, accessor, issue, expire);
        e.role = role.to_owned();
        let bytes = serde_json::to_vec(&e).map_err(|x| CoreError::Internal(x.to_string()))?;
        let p = self.view.prefix();
        Ok(vec![
            (format!("{p}id/{}", e.lease_id), Some(bytes)),
            (
                format!("{p}{}", time_key(e.expire_time, &e.lease_id)),
                Some(Vec::new()),
            ),
        ])
    }

    /// Records a renewal: new expiry (already clamped by the caller).
    pub async fn renewed(
        &self,
        mut e: LeaseEntry,
        expire: i64,
        at: i64,
    ) -> Result<LeaseEntry, CoreError> {
        e.expire_time = expire.min(e.max_expire);
        e.last_renewal = Some(at);
        self.put(&e, false).await?;
        Ok(e)
    }

    /// Forgets a lease after its secret was revoked.
    pub async fn remove(&self, e: &LeaseEntry) -> Result<(), CoreError> {
        let mut ops = vec![(format!("id/{}", e.lease_id), None)];
        if !e.token_id.is_empty() && e.kind == LeaseKind::Secret {
            ops.push((format!("token/{}/{}", e.token_id, enc(&e.lease_id)), None));
        }
        self.view.transaction(ops).await?;
        // Time index entries are removed lazily by the next tick (they point at nothing).
        Ok(())
    }

    /// Re-schedules a failed revocation with backoff.
    pub async fn retry_later(&self, mut e: LeaseEntry, at: i64) -> Result<(), CoreError> {
        e.attempts += 1;
        let next = at + backoff(e.attempts);
        self.view
            .put(&time_key(next, &e.lease_id), Vec::new())
            .await
            .map_err(sdk)?;
        tresor_sdk::put_json(&self.view, &format!("id/{}", e.lease_id), &e)
            .await
            .map_err(sdk)
    }

    /// Lease ids created by a token.
    pub async fn by_token(&self, token_id: &str) -> Result<Vec<String>, CoreError> {
        let keys = self
            .view
            .list(&format!("token/{token_id}/"))
            .await
            .map_err(sdk)?;
        Ok(keys.iter().filter_map(|k| dec(k)).collect())
    }

    pub async fn forget_token_index(&self, token_id: &str) -> Result<(), CoreError> {
        tresor_sdk::Storage::delete_prefix(&self.view, &format!("token/{token_id}/"))
            .await
            .map_err(sdk)
    }

    /// Children of a lease-id prefix (for `LIST sys/leases/lookup/<prefix>`).
    pub async fn list(&self, prefix: &str) -> Result<Vec<String>, CoreError> {
        self.view.list(&format!("id/{prefix}")).await.map_err(sdk)
    }

    /// Up to `limit` lease ids under a prefix (for revoke-prefix), depth first.
    pub async fn all_under(&self, prefix: &str, limit: usize) -> Result<Vec<String>, CoreError> {
        let mut out = Vec::new();
        let base = prefix.trim_end_matches('/');
        // The prefix may itself be a lease id.
        if self.get(base).await?.is_some() {
            out.push(base.to_owned());
        }
        let mut stack = vec![format!("{base}/")];
        if base.is_empty() {
            stack = vec![String::new()];
        }
        while let Some(p) = stack.pop() {
            for child in self.view.list(&format!("id/{p}")).await.map_err(sdk)? {
                let full = format!("{p}{child}");
                if child.ends_with('/') {
                    stack.push(full);
                } else {
                    out.push(full);
                    if out.len() >= limit {
                        return Ok(out);
                    }
                }
            }
        }
        Ok(out)
    }

    /// Leases due at `at`: walks only the due hours and seconds. Stale index entries (from
    /// renewals or removed leases) are deleted on the way.
    pub async fn due(&self, at: i64, limit: usize) -> Result<Vec<LeaseEntry>, CoreError> {
        let mut out = Vec::new();
        let now_hour = at / 3600;
        for hour in self.view.list("time/").await.map_err(sdk)? {
            let h: i64 = hour.trim_end_matches('/').parse().unwrap_or(i64::MAX);
            if h > now_hour {
                break;
            }
            let hour_prefix = format!("time/{hour}");
            let secs = self.view.list(&hour_prefix).await.map_err(sdk)?;
            if secs.is_empty() {
                continue;
            }
            for sec in secs {
                let s: i64 = sec.trim_end_matches('/').parse().unwrap_or(i64::MAX);
                if s > at {
                    break;
                }
                let sec_prefix = format!("{hour_prefix}{sec}");
                for leaf in self.view.list(&sec_prefix).await.map_err(sdk)? {
                    let key = format!("{sec_prefix}{leaf}");
                    let Some(id) = dec(&leaf) else {
                        self.view.delete(&key).await.map_err(sdk)?;
                        continue;
                    };
                    match self.get(&id).await? {
                        // Due (a lease renewed past `at` has a later index entry instead).
                        Some(e) if e.expire_time <= at => {
                            self.view.delete(&key).await.map_err(sdk)?;
                            if !out.iter().any(|o: &LeaseEntry| o.lease_id == e.lease_id) {
                                out.push(e);
                            }
                        }
                        // Renewed (a later index entry exists) or gone: drop this entry.
                        _ => self.view.delete(&key).await.map_err(sdk)?,
                    }
                    if out.len() >= limit {
                        return Ok(out);
                    }
                }
            }
        }
        Ok(out)
    }

    /// Removes index entries that point at nothing (`sys/leases/tidy`).
    pub async fn tidy(&self) -> Result<usize, CoreError> {
        let mut removed = 0;
        for token in self.view.list("token/").await.map_err(sdk)? {
            let prefix = format!("token/{token}");
            for leaf in self.view.list(&prefix).await.map_err(sdk)? {
                let gone = match dec(&leaf) {
                    Some(id) => self.get(&id).await?.is_none(),
                    None => true,
                };
                if gone {
                    self.view
                        .delete(&format!("{prefix}{leaf}"))
                        .await
                        .map_err(sdk)?;
                    removed += 1;
                }
            }
        }
        Ok(removed)
    }
}

/// The secret reference handed to an engine's renew/revoke callback.
pub fn secret_ref(e: &LeaseEntry, increment: Option<Duration>) -> SecretRef {
    SecretRef {
        lease_id: e.lease_id.clone(),
        secret_type: e.secret_type.clone(),
        internal_data: e.internal_data.clone(),
        increment,
    }
}

/// Shared handle.
pub type ExpirationRef = Arc<Expiration>;
