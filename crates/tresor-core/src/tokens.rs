//! The token store: creation, lookup, renewal and revocation of tokens, and its cache.
//!
//! Tokens are never used as storage keys: entries live at `id/<hmac(token)>` in the token
//! store's view, with `accessor/<hmac(accessor)>` and `parent/<parent-id>/<child-id>` indexes.
//! The HMAC key (the store's salt) is random per installation and sits behind the barrier.
//! Lookups on the hot path hit an in-memory cache keyed by that HMAC; the presented token is then
//! compared with the stored one in constant time.
//!
//! Batch tokens (`hvb.`) are not stored: they are the entry itself, sealed with a key derived
//! from the salt, so they cost no write and disappear when they expire.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use aws_lc_rs::hmac;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use parking_lot::RwLock;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tresor_sdk::Storage;
use zeroize::Zeroizing;

use crate::barrier::{Key, View, open_value, seal_value};
use crate::error::CoreError;

const SALT_PATH: &str = "salt";
/// Most token entries kept in memory at once.
const CACHE_CAP: usize = 16_384;
/// `num_uses` of a token whose last use has been spent: it authenticates nothing more and is
/// revoked when that request ends (or, should the process die first, reads as unusable).
pub const EXHAUSTED: i64 = -1;
/// Stripes of the per-token lock: every read-modify-write or removal of a stored token holds
/// its stripe, so a use, a renewal and a revocation of one token never interleave.
const LOCK_STRIPES: usize = 256;

/// A stored token. `id` is the token itself, only ever held behind the barrier.
#[derive(Clone, Serialize, Deserialize)]
pub struct TokenEntry {
    #[serde(default = "v1")]
    pub version: u32,
    pub id: String,
    #[serde(default)]
    pub hash: String,
    pub accessor: String,
    #[serde(default)]
    pub parent: String,
    pub policies: Vec<String>,
    pub path: String,
    #[serde(default)]
    pub meta: BTreeMap<String, String>,
    pub display_name: String,
    #[serde(default)]
    pub num_uses: i64,
    pub creation_time: i64,
    /// The TTL the token was created with (seconds), 0 = none.
    pub ttl: u64,
    #[serde(default)]
    pub explicit_max_ttl: u64,
    #[serde(default)]
    pub period: u64,
    /// Unix seconds of expiry; `None` never expires.
    pub expire_time: Option<i64>,
    #[serde(default)]
    pub last_renewal_time: Option<i64>,
    #[serde(default = "service")]
    pub token_type: String,
    #[serde(default)]
    pub orphan: bool,
    #[serde(default)]
    pub role: String,
    #[serde(default)]
    pub renewable: bool,
    #[serde(default)]
    pub entity_id: String,
    /// `token_bound_cidrs`: the token works only from these client addresses.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bound_cidrs: Vec<String>,
    /// Login tokens: the cap on the token's lifetime from its creation (seconds; 0 means the
    /// token store's mount maximum).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub max_ttl: u64,
    /// Login tokens: the auth method's data, handed back to it on renewal.
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub internal_data: serde_json::Map<String, Value>,
    /// Login tokens: the accessor of the auth mount that issued it.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub mount_accessor: String,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

fn v1() -> u32 {
    1
}
fn service() -> String {
    "service".into()
}

impl tresor_sdk::record::Versioned for TokenEntry {
    const FORMAT: u32 = 1;
    fn format(&self) -> u32 {
        self.version
    }
}

/// Decodes a stored token entry (refusing a format newer than this build's).
fn decode_entry(bytes: &[u8]) -> Result<TokenEntry, CoreError> {
    tresor_sdk::record::decode("token entry", bytes).map_err(CoreError::Internal)
}

impl Drop for TokenEntry {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.id);
    }
}

impl std::fmt::Debug for TokenEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenEntry")
            .field("accessor", &self.accessor)
            .field("policies", &self.policies)
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// Whole seconds of a client-controlled duration, capped so that adding it to a Unix time can
/// neither wrap nor exceed what a duration may be (Go's limit, as in Vault).
pub fn secs(d: std::time::Duration) -> i64 {
    d.as_secs().min(tresor_sdk::duration::MAX_SECS) as i64
}

pub fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

pub fn rfc3339(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

impl TokenEntry {
    /// A fresh orphan service token with a new id and accessor, created at `at`, that never
    /// expires; callers adjust TTL, uses, parent and the rest.
    pub fn service(policies: Vec<String>, path: &str, display_name: &str, at: i64) -> Self {
        TokenEntry {
            version: 1,
            id: new_token_id(),
            hash: String::new(),
            accessor: tresor_seal::token::new_accessor(),
            parent: String::new(),
            policies,
            path: path.to_owned(),
            meta: BTreeMap::new(),
            display_name: display_name.to_owned(),
            num_uses: 0,
            creation_time: at,
            ttl: 0,
            explicit_max_ttl: 0,
            period: 0,
            expire_time: None,
            last_renewal_time: None,
            token_type: "service".into(),
            orphan: true,
            role: String::new(),
            renewable: false,
            entity_id: String::new(),
            bound_cidrs: Vec::new(),
            max_ttl: 0,
            internal_data: serde_json::Map::new(),
            mount_accessor: String::new(),
        }
    }

    /// Sets a TTL counted from the creation time.
    pub fn with_ttl(mut self, ttl_secs: u64) -> Self {
        self.ttl = ttl_secs;
        self.expire_time = Some(
            self.creation_time
                .saturating_add(secs(std::time::Duration::from_secs(ttl_secs))),
        );
        self
    }

    pub fn is_root(&self) -> bool {
        self.policies.iter().any(|p| p == "root")
    }
    pub fn is_batch(&self) -> bool {
        self.token_type == "batch"
    }
    /// Whether a request from `remote` may use this token (`token_bound_cidrs`). A token
    /// bound to addresses is refused when the address is unknown; a stored block that no
    /// longer parses binds to nothing (fail closed).
    pub fn allows_remote(&self, remote: Option<&str>) -> bool {
        if self.bound_cidrs.is_empty() {
            return true;
        }
        match tresor_sdk::cidr::parse_list(&self.bound_cidrs) {
            Ok(blocks) => tresor_sdk::cidr::allows(&blocks, remote),
            Err(_) => false,
        }
    }

    /// Whether the token can no longer authenticate: its last use is spent (see
    /// [`EXHAUSTED`]).
    pub fn is_exhausted(&self) -> bool {
        self.num_uses < 0
    }
    pub fn expired(&self, at: i64) -> bool {
        self.expire_time.is_some_and(|e| e <= at)
    }
    /// Remaining TTL in seconds (0 for non-expiring).
    pub fn remaining(&self, at: i64) -> i64 {
        self.expire_time.map(|e| (e - at).max(0)).unwrap_or(0)
    }

    /// `auth/token/lookup` data, with Vault's field names and types.
    pub fn lookup_data(&self, include_id: bool) -> serde_json::Map<String, Value> {
        let at = now();
        let mut m = serde_json::Map::new();
        m.insert("accessor".into(), json!(self.accessor));
        m.insert("creation_time".into(), json!(self.creation_time));
        m.insert("creation_ttl".into(), json!(self.ttl));
        m.insert("display_name".into(), json!(self.display_name));
        m.insert("entity_id".into(), json!(self.entity_id));
        m.insert(
            "expire_time".into(),
            self.expire_time
                .map(|e| json!(rfc3339(e)))
                .unwrap_or(Value::Null),
        );
        m.insert("explicit_max_ttl".into(), json!(self.explicit_max_ttl));
        m.insert(
            "id".into(),
            json!(if include_id { self.id.as_str() } else { "" }),
        );
        // A token that never expires (root) shows them too, not renewable, as in Vault.
        m.insert("issue_time".into(), json!(rfc3339(self.creation_time)));
        m.insert(
            "renewable".into(),
            json!(self.renewable && self.expire_time.is_some()),
        );
        m.insert(
            "meta".into(),
            if self.meta.is_empty() {
                Value::Null
            } else {
                json!(self.meta)
            },
        );
        m.insert("num_uses".into(), json!(self.num_uses));
        m.insert("orphan".into(), json!(self.orphan));
        m.insert("path".into(), json!(self.path));
        m.insert("policies".into(), json!(self.policies));
        m.insert("ttl".into(), json!(self.remaining(at)));
        m.insert("type".into(), json!(self.token_type));
        if !self.role.is_empty() {
            m.insert("role".into(), json!(self.role));
        }
        if self.period > 0 {
            m.insert("period".into(), json!(self.period));
        }
        if !self.bound_cidrs.is_empty() {
            m.insert("bound_cidrs".into(), json!(self.bound_cidrs));
        }
        if let Some(r) = self.last_renewal_time {
            m.insert("last_renewal_time".into(), json!(r));
            m.insert("last_renewal".into(), json!(rfc3339(r)));
        }
        m
    }
}

/// The token store over its barrier view.
pub struct TokenStore {
    view: View,
    salt: hmac::Key,
    batch_key: aws_lc_rs::aead::LessSafeKey,
    cache: RwLock<HashMap<String, Arc<TokenEntry>>>,
    /// Striped by internal id. Holders never take a second stripe, so stripes cannot deadlock.
    locks: Box<[tokio::sync::Mutex<()>]>,
    /// Tokens whose tree is being revoked: they authenticate nothing and get no new children
    /// (checked under the parent's lock), so a child created while the tree is walked cannot
    /// survive it. Entered under the token's lock.
    revoking: RwLock<std::collections::HashSet<String>>,
}

fn sdk(e: tresor_sdk::LogicalError) -> CoreError {
    CoreError::from(e)
}

impl TokenStore {
    /// Opens the store, creating its salt on first use.
    pub async fn open(view: View) -> Result<Self, CoreError> {
        let salt = match view.get(SALT_PATH).await.map_err(sdk)? {
            Some(s) => Zeroizing::new(s),
            None => {
                let k = Key::generate();
                view.put(SALT_PATH, k.0.to_vec()).await.map_err(sdk)?;
                Zeroizing::new(k.0.to_vec())
            }
        };
        let hkey = hmac::Key::new(hmac::HMAC_SHA256, &salt);
        let derived = hmac::sign(&hkey, b"tresor batch token key");
        let batch = Key::from_slice(derived.as_ref())?;
        let batch_key = aws_lc_rs::aead::LessSafeKey::new(
            aws_lc_rs::aead::UnboundKey::new(&aws_lc_rs::aead::AES_256_GCM, &batch.0[..])
                .expect("key"),
        );
        Ok(TokenStore {
            view,
            salt: hkey,
            batch_key,
            cache: RwLock::new(HashMap::new()),
            locks: (0..LOCK_STRIPES)
                .map(|_| tokio::sync::Mutex::new(()))
                .collect(),
            revoking: RwLock::new(std::collections::HashSet::new()),
        })
    }

    /// The lock of one token (by internal id). Everything that changes or removes a stored
    /// entry holds it, and reads the entry afresh under it.
    pub async fn lock(&self, id: &str) -> tokio::sync::MutexGuard<'_, ()> {
        let h = id
            .bytes()
            .fold(0usize, |h, b| h.wrapping_mul(31).wrapping_add(b as usize));
        self.locks[h % self.locks.len()].lock().await
    }

    /// Reads an entry from storage (not the cache) and refreshes the cache with it; the
    /// caller holds the token's lock, so no change can slip in between.
    async fn load_locked(&self, id: &str) -> Result<Option<Arc<TokenEntry>>, CoreError> {
        let Some(bytes) = self.view.get(&format!("id/{id}")).await.map_err(sdk)? else {
            self.cache.write().remove(id);
            return Ok(None);
        };
        let bytes = Zeroizing::new(bytes);
        let e = decode_entry(&bytes)?;
        let e = Arc::new(e);
        self.cache_insert(id.to_owned(), e.clone());
        Ok(Some(e))
    }

    /// Changes a stored token in place, on the entry as stored now: under its lock (other
    /// requests of this server), and written only if storage still holds the revision read
    /// (other servers sharing the storage; on a conflict the change is made again on what
    /// they wrote). `None` when the token no longer exists: a revocation always wins, nothing
    /// written here can bring a revoked token back.
    pub async fn modify<R>(
        &self,
        id: &str,
        mut f: impl FnMut(&mut TokenEntry) -> Result<R, CoreError>,
    ) -> Result<Option<(Arc<TokenEntry>, R)>, CoreError> {
        let _g = self.lock(id).await;
        let key = format!("id/{id}");
        loop {
            let Some((bytes, rev)) = self.view.get_with_revision(&key).await.map_err(sdk)? else {
                self.cache.write().remove(id);
                return Ok(None);
            };
            let bytes = Zeroizing::new(bytes);
            let mut e = decode_entry(&bytes)?;
            let r = f(&mut e)?;
            let out = Zeroizing::new(
                serde_json::to_vec(&e).map_err(|e| CoreError::Internal(e.to_string()))?,
            );
            if self
                .view
                .transaction_if(
                    vec![(key.clone(), rev)],
                    vec![(key.clone(), Some(out.to_vec()))],
                )
                .await?
            {
                let e = Arc::new(e);
                self.cache_insert(id.to_owned(), e.clone());
                return Ok(Some((e, r)));
            }
        }
    }

    /// Caches an entry. The cache is bounded: past [`CACHE_CAP`] entries it is emptied and
    /// refills from storage with the tokens actually in use, so memory does not grow with
    /// the number of tokens ever created.
    fn cache_insert(&self, id: String, e: Arc<TokenEntry>) {
        let mut c = self.cache.write();
        if c.len() >= CACHE_CAP {
            c.clear();
        }
        c.insert(id, e);
    }

    /// The internal id of a token or accessor: HMAC-SHA256 under the store's salt.
    pub fn hash(&self, s: &str) -> String {
        hex::encode(hmac::sign(&self.salt, s.as_bytes()).as_ref())
    }

    /// Persists a new or changed entry (service tokens) and its indexes.
    pub async fn store(&self, entry: TokenEntry) -> Result<Arc<TokenEntry>, CoreError> {
        self.store_with(entry, Vec::new()).await
    }

    /// Stores an entry together with `extra` writes (full barrier paths) in one commit.
    pub async fn store_with(
        &self,
        mut entry: TokenEntry,
        extra: Vec<(String, Option<Vec<u8>>)>,
    ) -> Result<Arc<TokenEntry>, CoreError> {
        let _timer = crate::telemetry::m::TOKEN_CREATE.start();
        if entry.is_batch() {
            return Ok(Arc::new(entry));
        }
        if entry.hash.is_empty() {
            entry.hash = self.hash(&entry.id);
        }
        let bytes = Zeroizing::new(
            serde_json::to_vec(&entry).map_err(|e| CoreError::Internal(e.to_string()))?,
        );
        // Entry and indexes in one commit: one fsync per token, and never an index without
        // its entry.
        let mut ops = vec![
            (format!("id/{}", entry.hash), Some(bytes.to_vec())),
            (
                self.accessor_key(&entry.accessor),
                Some(entry.hash.clone().into_bytes()),
            ),
        ];
        if !entry.parent.is_empty() {
            ops.push((parent_key(&entry), Some(Vec::new())));
        }
        self.view.transaction_with(ops, extra).await?;
        let entry = Arc::new(entry);
        self.cache_insert(entry.hash.clone(), entry.clone());
        Ok(entry)
    }

    /// Mints the token string for a new entry (service `hvs.`, batch `hvb.`).
    pub fn mint_batch(&self, entry: &TokenEntry) -> Result<String, CoreError> {
        let bytes = Zeroizing::new(
            serde_json::to_vec(entry).map_err(|e| CoreError::Internal(e.to_string()))?,
        );
        let blob = seal_value(&self.batch_key, 0, "batch", &bytes);
        Ok(format!("hvb.{}", URL_SAFE_NO_PAD.encode(blob)))
    }

    /// Looks up a presented token. Expired tokens are revoked lazily and read as absent.
    pub async fn lookup(&self, token: &str) -> Result<Option<Arc<TokenEntry>>, CoreError> {
        let _timer = crate::telemetry::m::TOKEN_LOOKUP.start();
        if let Some(rest) = token.strip_prefix("hvb.") {
            let Ok(blob) = URL_SAFE_NO_PAD.decode(rest) else {
                return Ok(None);
            };
            let Ok(plain) = open_value(&self.batch_key, "batch", &blob) else {
                return Ok(None);
            };
            let Ok(mut entry) = decode_entry(&plain) else {
                return Ok(None);
            };
            if entry.expired(now()) {
                return Ok(None);
            }
            // A batch token dies with its parent.
            if !entry.parent.is_empty() && self.by_id(&entry.parent).await?.is_none() {
                return Ok(None);
            }
            // Its internal id names it (leases, audit) without revealing it.
            entry.hash = self.hash(token);
            entry.id = token.to_owned();
            return Ok(Some(Arc::new(entry)));
        }
        let id = self.hash(token);
        let Some(entry) = self.by_id(&id).await? else {
            return Ok(None);
        };
        if !tresor_seal::token::ct_eq(entry.id.as_bytes(), token.as_bytes()) {
            return Ok(None);
        }
        Ok(Some(entry))
    }

    /// Looks up by internal id (hash).
    pub async fn by_id(&self, id: &str) -> Result<Option<Arc<TokenEntry>>, CoreError> {
        let cached = self.cache.read().get(id).cloned();
        let entry = match cached {
            Some(e) => e,
            None => {
                // A miss loads under the token's lock: a read racing a revocation can then not
                // put the revoked entry back into the cache after the revocation cleared it.
                let _g = self.lock(id).await;
                let Some(e) = self.load_locked(id).await? else {
                    return Ok(None);
                };
                e
            }
        };
        if entry.expired(now()) {
            // Reads as absent at once; the expiration manager revokes it and its leases.
            return Ok(None);
        }
        if self.is_being_revoked(id) {
            return Ok(None);
        }
        Ok(Some(entry))
    }

    /// Looks up by internal id even if expired (the expiration manager needs to see it).
    pub async fn by_id_raw(&self, id: &str) -> Result<Option<Arc<TokenEntry>>, CoreError> {
        if let Some(e) = self.cache.read().get(id).cloned() {
            return Ok(Some(e));
        }
        let Some(bytes) = self.view.get(&format!("id/{id}")).await.map_err(sdk)? else {
            return Ok(None);
        };
        let bytes = Zeroizing::new(bytes);
        let e = decode_entry(&bytes)?;
        Ok(Some(Arc::new(e)))
    }

    /// The accessor index key: `accessor/<order>.<hmac>` for accessors with a time-ordered
    /// prefix (new entries land at the end of the index, not on a random page), else
    /// `accessor/<hmac>` (earlier accessors).
    fn accessor_key(&self, accessor: &str) -> String {
        match tresor_seal::token::accessor_order(accessor) {
            Some(order) => format!("accessor/{order}.{}", self.hash(accessor)),
            None => format!("accessor/{}", self.hash(accessor)),
        }
    }

    pub async fn by_accessor(&self, accessor: &str) -> Result<Option<Arc<TokenEntry>>, CoreError> {
        let Some(id) = self
            .view
            .get(&self.accessor_key(accessor))
            .await
            .map_err(sdk)?
        else {
            return Ok(None);
        };
        self.by_id(&String::from_utf8_lossy(&id)).await
    }

    /// Spends one use of a limited-use token, under its lock and on the stored count, so N
    /// uses serve exactly N requests however many arrive at once. Returns true when that was
    /// the last one: the token is then [`EXHAUSTED`] (it authenticates nothing more) and the
    /// caller revokes it once the current request is done. A token with no use left, or no
    /// longer stored, is `PermissionDenied`.
    pub async fn use_token(&self, entry: &TokenEntry) -> Result<bool, CoreError> {
        // The number of uses of a stored token never goes from unlimited to limited.
        if entry.num_uses == 0 || entry.is_batch() {
            return Ok(false);
        }
        let spent = self
            .modify(&entry.hash, |e| {
                if e.num_uses <= 0 {
                    return Err(CoreError::PermissionDenied);
                }
                let last = e.num_uses == 1;
                e.num_uses = if last { EXHAUSTED } else { e.num_uses - 1 };
                Ok(last)
            })
            .await?;
        spent
            .map(|(_, last)| last)
            .ok_or(CoreError::PermissionDenied)
    }

    /// Stores a new child token while its parent exists and is not being revoked, so a child
    /// can never outlive a revocation of its parent's tree. No lock is held across the commit
    /// (children of one parent, root included, share group commits): the parent is checked
    /// again after the child is stored. A revocation that listed the parent's children before
    /// this store marked the parent first, so the second check sees it marked or gone, and the
    /// child is revoked at once.
    pub async fn store_child(
        &self,
        entry: TokenEntry,
        extra: Vec<(String, Option<Vec<u8>>)>,
    ) -> Result<Arc<TokenEntry>, CoreError> {
        if entry.parent.is_empty() {
            return self.store_with(entry, extra).await;
        }
        let parent = entry.parent.clone();
        if self.by_id(&parent).await?.is_none() {
            return Err(CoreError::PermissionDenied);
        }
        let stored = self.store_with(entry, extra).await?;
        if self.by_id(&parent).await?.is_none() {
            // Never registered a lease: the entry goes, nothing else.
            self.revoke_one(&stored.hash).await?;
            return Err(CoreError::PermissionDenied);
        }
        Ok(stored)
    }

    /// Revokes a token and, recursively, every child token. Returns the revoked ids, each
    /// with its lease id when it still existed.
    pub async fn revoke_tree(&self, id: &str) -> Result<Vec<(String, Option<String>)>, CoreError> {
        let _timer = crate::telemetry::m::TOKEN_REVOKE_TREE.start();
        // The tree level by level: `levels[d]` holds the tokens `d` generations below `id`.
        let mut levels: Vec<Vec<String>> = vec![vec![id.to_owned()]];
        let mut depth = 0;
        while depth < levels.len() {
            let mut next = Vec::new();
            for cur in &levels[depth] {
                // Mark before listing: from here on no new child of `cur` can be stored.
                {
                    let _g = self.lock(cur).await;
                    self.revoking.write().insert(cur.clone());
                }
                for child in self
                    .view
                    .list(&format!("parent/{cur}/"))
                    .await
                    .map_err(sdk)?
                {
                    next.push(child_of(&child).to_owned());
                }
            }
            if !next.is_empty() {
                levels.push(next);
            }
            depth += 1;
        }
        // Deepest level first, so a crash midway never leaves a child without its parent
        // entry. Within a level the tokens are independent: they go in groups whose commits
        // share the storage's fsyncs (one at a time, 60,000 children took ~50 s).
        let mut result = Ok(());
        let mut revoked = Vec::with_capacity(levels.iter().map(Vec::len).sum());
        'levels: for level in levels.iter().rev() {
            let outcomes =
                crate::join::in_groups(level, REVOKE_GROUP, |t| self.revoke_one(t)).await;
            for (cur, outcome) in level.iter().zip(outcomes) {
                match outcome {
                    Ok(path) => revoked.push((cur.clone(), path)),
                    Err(e) => {
                        result = Err(e);
                        break 'levels;
                    }
                }
            }
        }
        let mut marked = self.revoking.write();
        for cur in levels.iter().flatten() {
            marked.remove(cur);
        }
        result.map(|()| revoked)
    }

    /// Revokes one token; its children become orphans. Returns its lease id
    /// ([`crate::expiration::token_lease_id`]), when it still existed.
    pub async fn revoke_orphan(&self, id: &str) -> Result<Option<String>, CoreError> {
        let _timer = crate::telemetry::m::TOKEN_REVOKE.start();
        for child in self
            .view
            .list(&format!("parent/{id}/"))
            .await
            .map_err(sdk)?
        {
            self.modify(child_of(&child), |c| {
                c.parent.clear();
                c.orphan = true;
                Ok(())
            })
            .await?;
        }
        self.revoke_one(id).await
    }

    /// Deletes one token's entry and indexes; its lease id, if it existed.
    async fn revoke_one(&self, id: &str) -> Result<Option<String>, CoreError> {
        let _g = self.lock(id).await;
        let mut ops: Vec<(String, Option<Vec<u8>>)> = Vec::new();
        let mut path = None;
        if let Some(bytes) = self.view.get(&format!("id/{id}")).await.map_err(sdk)? {
            let bytes = Zeroizing::new(bytes);
            if let Ok(e) = decode_entry(&bytes) {
                ops.push((self.accessor_key(&e.accessor), None));
                if !e.parent.is_empty() {
                    ops.push((parent_key(&e), None));
                }
                path = Some(crate::expiration::token_lease_id(&e.path, id, &e.accessor));
            }
        }
        for child in self
            .view
            .list(&format!("parent/{id}/"))
            .await
            .map_err(sdk)?
        {
            ops.push((format!("parent/{id}/{child}"), None));
        }
        ops.push((format!("id/{id}"), None));
        self.view.transaction(ops).await?;
        self.cache.write().remove(id);
        Ok(path)
    }

    fn is_being_revoked(&self, id: &str) -> bool {
        let set = self.revoking.read();
        !set.is_empty() && set.contains(id)
    }

    /// Forgets the cached entry of a token another server changed or revoked.
    pub async fn invalidate(&self, id: &str) {
        let _g = self.lock(id).await;
        self.cache.write().remove(id);
    }

    /// All accessors (for `LIST auth/token/accessors`).
    pub async fn accessors(&self) -> Result<Vec<String>, CoreError> {
        let mut out = Vec::new();
        for id in self.view.list("id/").await.map_err(sdk)? {
            if let Some(e) = self.by_id(&id).await? {
                out.push(e.accessor.clone());
            }
        }
        out.sort();
        Ok(out)
    }

    /// Removes dangling index entries (`auth/token/tidy`). Returns how many were removed.
    pub async fn tidy(&self) -> Result<usize, CoreError> {
        let mut removed = 0;
        for parent in self.view.list("parent/").await.map_err(sdk)? {
            let parent = parent.trim_end_matches('/');
            for child in self
                .view
                .list(&format!("parent/{parent}/"))
                .await
                .map_err(sdk)?
            {
                if self
                    .view
                    .get(&format!("id/{}", child_of(&child)))
                    .await
                    .map_err(sdk)?
                    .is_none()
                {
                    self.view
                        .delete(&format!("parent/{parent}/{child}"))
                        .await
                        .map_err(sdk)?;
                    removed += 1;
                }
            }
        }
        for acc in self.view.list("accessor/").await.map_err(sdk)? {
            if let Some(id) = self
                .view
                .get(&format!("accessor/{acc}"))
                .await
                .map_err(sdk)?
                && self
                    .view
                    .get(&format!("id/{}", String::from_utf8_lossy(&id)))
                    .await
                    .map_err(sdk)?
                    .is_none()
            {
                self.view
                    .delete(&format!("accessor/{acc}"))
                    .await
                    .map_err(sdk)?;
                removed += 1;
            }
        }
        Ok(removed)
    }

    pub fn view(&self) -> &View {
        &self.view
    }
}

/// How many tokens of one tree level are revoked at once.
const REVOKE_GROUP: usize = 64;

/// A child's entry in its parent's index: `parent/<parent>/<order>.<child>` when its
/// accessor has a time-ordered prefix (so a parent's children are stored in creation order
/// and a new child lands at the end), else `parent/<parent>/<child>` (earlier entries).
fn parent_key(e: &TokenEntry) -> String {
    match tresor_seal::token::accessor_order(&e.accessor) {
        Some(order) => format!("parent/{}/{order}.{}", e.parent, e.hash),
        None => format!("parent/{}/{}", e.parent, e.hash),
    }
}

/// The child token a `parent/<parent>/` index name stands for (either spelling).
fn child_of(name: &str) -> &str {
    name.rsplit('.').next().unwrap_or(name)
}

/// Generates a new service token id.
pub fn new_token_id() -> String {
    tresor_seal::token::new_service_token().to_string()
}
