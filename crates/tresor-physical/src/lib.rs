//! Physical storage: the bottom of Tresor's stack.
//!
//! A [`Backend`] stores opaque byte values under `/`-separated keys. It never sees plaintext:
//! the barrier above it encrypts every value before it gets here. Backends must give:
//! - read-your-writes: a `put` that returned `Ok` is visible to every later `get`;
//! - durability where the backend claims it ([`Backend::durable`]): an acknowledged write
//!   survives a crash of the process;
//! - Vault's listing semantics: `list("a/")` returns the immediate children of `a/`, folders
//!   with a trailing `/`, each once, sorted.
//!
//! # Primitives for high availability and snapshots
//!
//! These are what HA on etcd (a standby follows the active node's writes) and snapshots build
//! on. The in-memory and embedded backends implement all of them; the trait gives each a
//! default that fails with [`PhysicalError::Unsupported`], so a wrapper that does not forward
//! them says so instead of pretending.
//!
//! - **Revisions.** The store has one revision counter, like etcd's: every commit that changes
//!   something takes the next number, and every key it writes carries that number as its
//!   revision (etcd's `mod_revision`). A missing key is revision 0. A commit that changes
//!   nothing (deleting missing keys, a failed check) takes no number. Revisions never go
//!   backwards, across restarts too (the embedded store persists the counter in the same commit
//!   as the data). One call is one commit: every key a [`Backend::transaction`] writes gets the
//!   same revision, even when group commit folds many calls into one fsync.
//!   [`Backend::get_with_revision`], [`Backend::revision`].
//! - **Conditional writes.** [`Backend::transaction_if`] applies its ops only if every
//!   [`Check`] holds (the key is at exactly that revision, 0 meaning absent) at the moment of the
//!   commit; otherwise nothing is written and the error is [`PhysicalError::Conflict`], naming
//!   the first check that failed. Checks are evaluated by the committer itself, so two writers
//!   racing on the same revision cannot both win, and a failed check fails only its own
//!   transaction, never the others in its group commit. [`Backend::compare_and_swap`] is the
//!   one-key form. Checks are separate from [`Op`] (as in etcd's `Txn`: compares, then writes)
//!   so the existing matches on `Op` stay exhaustive.
//! - **Change feed.** [`Backend::watch`] returns a [`Watcher`] that yields an [`Event`] (key,
//!   revision, [`EventKind`]) for every change under a prefix, in commit order, starting just
//!   after a given revision. Backends keep a bounded ring of recent changes
//!   ([`WATCH_HISTORY`] events); starting from a revision older than the ring fails with
//!   [`PhysicalError::Compacted`]: the caller must reload what it caches and watch again from
//!   the revision of that reload (a [`Snapshot`]'s, or [`Backend::revision`] read before it).
//!   Each watcher has a bounded buffer ([`WATCH_BUFFER`] events) and writers never wait for it:
//!   a watcher that falls behind is cut off, yields what it had buffered, and then
//!   [`PhysicalError::Lagged`] with the revision to resume from (events of that revision may be
//!   seen twice; invalidation is idempotent).
//! - **Range delete.** [`Backend::delete_prefix`] removes every key starting with a prefix (a
//!   string prefix: `a/` never touches `ab`) in one commit, so one revision, and one
//!   [`EventKind::DeletePrefix`] event carrying the prefix, not one event per key (an unmount
//!   of 100,000 keys is one event a standby handles by dropping everything under the prefix).
//! - **Paged listing.** [`Backend::list_page`] returns full keys (not immediate children)
//!   under a prefix in order, at most `limit`, after a given key, without reading values.
//! - **Point-in-time iteration.** [`Backend::snapshot`] returns a [`Snapshot`]: every key,
//!   value and revision as of one instant, and that instant's revision, unaffected by writes
//!   made after it was taken.
//! - **Leadership.** [`LeaderLock`] elects one active node. Single-server backends hand out an
//!   [`InProcessLock`] from [`Backend::leader_lock`]: granted at once to the only node, but two
//!   acquirers in one process still exclude each other.
//!
//! [`conformance`] holds the one test suite every backend must pass.

#![forbid(unsafe_code)]

mod cache;
pub mod conformance;
mod embedded;
mod etcd;
mod feed;
mod inmem;
mod lock;
pub mod testing;
mod txn;

pub use cache::{CachedBackend, DEFAULT_CACHE_SIZE};
pub use embedded::EmbeddedBackend;
pub use etcd::{
    CHUNK_SIZE, DEFAULT_LOCK_TIMEOUT, DEFAULT_MAX_RECEIVE_SIZE, DEFAULT_PATH,
    DEFAULT_REQUEST_TIMEOUT, EtcdBackend, EtcdConfig,
};
pub use feed::{WATCH_BUFFER, WATCH_HISTORY, Watcher};
pub use inmem::InmemBackend;
pub use lock::{HeldLock, InProcessLock, Leader, LeaderGuard, LeaderLock};

use std::sync::Arc;

use async_trait::async_trait;

/// Errors a physical backend can report. Messages name the backend and the operation.
#[derive(Debug, thiserror::Error)]
pub enum PhysicalError {
    #[error("storage backend i/o: {0}")]
    Io(String),
    #[error("storage backend is closed")]
    Closed,
    #[error("invalid storage key {0:?}")]
    InvalidKey(String),
    /// A [`Check`] of [`Backend::transaction_if`] did not hold; nothing was written.
    #[error("storage conflict on {key:?}: expected revision {expected}, found {actual}")]
    Conflict {
        key: String,
        expected: u64,
        actual: u64,
    },
    /// [`Backend::watch`] was asked for changes the backend no longer remembers: reload
    /// everything, then watch from the reload's revision.
    #[error("storage history compacted: revision {requested} is older than {oldest}")]
    Compacted { requested: u64, oldest: u64 },
    /// A [`Watcher`] fell behind and was cut off; watch again from `resume_from` (or reload, if
    /// that is [`PhysicalError::Compacted`]).
    #[error("storage watcher fell behind: resume from revision {resume_from}")]
    Lagged { resume_from: u64 },
    #[error("invalid storage request: {0}")]
    InvalidArgument(String),
    #[error("storage backend does not support {0}")]
    Unsupported(&'static str),
    /// A write of a node that held the leader lock and no longer does (etcd: the lock key's
    /// create revision is not the one granted); nothing was written.
    #[error("storage write fenced: {0}")]
    Fenced(String),
}

pub type Result<T> = std::result::Result<T, PhysicalError>;

/// One change in a batch given to [`Backend::transaction`].
#[derive(Debug, Clone)]
pub enum Op {
    Put(String, Vec<u8>),
    Delete(String),
}

/// A precondition of [`Backend::transaction_if`]: `key` is at exactly `revision` when the
/// transaction commits (0: the key does not exist).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub key: String,
    pub revision: u64,
}

impl Check {
    pub fn new(key: impl Into<String>, revision: u64) -> Self {
        Self {
            key: key.into(),
            revision,
        }
    }
}

/// What a change-feed [`Event`] did to its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    Put,
    Delete,
    /// [`Backend::delete_prefix`]: every key starting with the event's `key` is gone.
    DeletePrefix,
}

/// One change, as [`Backend::watch`] delivers it. Values are not included: a consumer
/// invalidates `key` and reads it again if it cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// The key written or deleted; for [`EventKind::DeletePrefix`], the prefix.
    pub key: String,
    /// The revision of the commit that made the change.
    pub revision: u64,
    pub kind: EventKind,
}

/// One stored entry as a [`Snapshot`] yields it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub key: String,
    pub value: Vec<u8>,
    pub revision: u64,
}

/// A consistent, read-only view of the whole store as of one revision, from
/// [`Backend::snapshot`]. Writes made after it was taken are invisible to it. Holding one keeps
/// the old state alive (the embedded store cannot reuse those pages until it is dropped), so
/// take it, iterate, and drop it.
pub trait Snapshot: Send + Sync {
    /// The store's revision at the instant the snapshot was taken.
    fn revision(&self) -> u64;
    /// Every entry whose key starts with `prefix` (`""` for all), in key order. Iteration
    /// reads storage synchronously: run it on a blocking thread when it is long.
    fn entries<'a>(&'a self, prefix: &'a str) -> Box<dyn Iterator<Item = Result<Entry>> + 'a>;
}

/// A key-value store of opaque bytes. See the module docs for the guarantees.
#[async_trait]
pub trait Backend: Send + Sync + 'static {
    /// The value stored under `key`, if any.
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>>;
    /// Store `value` under `key`, replacing any previous value.
    async fn put(&self, key: &str, value: Vec<u8>) -> Result<()> {
        self.transaction(vec![Op::Put(key.to_owned(), value)]).await
    }
    /// Remove `key`; removing a missing key is not an error.
    async fn delete(&self, key: &str) -> Result<()> {
        self.transaction(vec![Op::Delete(key.to_owned())]).await
    }
    /// Apply all `ops` atomically: after a crash either all or none are visible.
    async fn transaction(&self, ops: Vec<Op>) -> Result<()>;
    /// The immediate children of `prefix` (which is empty or ends in `/`).
    async fn list(&self, prefix: &str) -> Result<Vec<String>>;
    /// A short name for `sys/seal-status`'s `storage_type`.
    fn kind(&self) -> &'static str;
    /// Whether acknowledged writes survive a crash.
    fn durable(&self) -> bool;

    /// The value stored under `key` and the revision of the commit that last wrote it.
    async fn get_with_revision(&self, _key: &str) -> Result<Option<(Vec<u8>, u64)>> {
        Err(PhysicalError::Unsupported("revisions"))
    }
    /// The store's current revision: that of the newest commit that changed something.
    async fn revision(&self) -> Result<u64> {
        Err(PhysicalError::Unsupported("revisions"))
    }
    /// Apply `ops` atomically if every check holds when the transaction commits, else write
    /// nothing and fail with [`PhysicalError::Conflict`] naming the first failed check. Returns
    /// the revision of the commit (the current revision if the ops changed nothing).
    async fn transaction_if(&self, _checks: Vec<Check>, _ops: Vec<Op>) -> Result<u64> {
        Err(PhysicalError::Unsupported("conditional transactions"))
    }
    /// Replace (`Some`) or delete (`None`) `key` if it is at `revision` (0: absent).
    async fn compare_and_swap(
        &self,
        key: &str,
        revision: u64,
        value: Option<Vec<u8>>,
    ) -> Result<u64> {
        let op = match value {
            Some(v) => Op::Put(key.to_owned(), v),
            None => Op::Delete(key.to_owned()),
        };
        self.transaction_if(vec![Check::new(key, revision)], vec![op])
            .await
    }
    /// Changes to keys under `prefix` committed after `from_revision`, then live ones; see the
    /// module docs. Fails with [`PhysicalError::Compacted`] when the backend no longer has the
    /// history from `from_revision`.
    async fn watch(&self, _prefix: &str, _from_revision: u64) -> Result<Watcher> {
        Err(PhysicalError::Unsupported("watch"))
    }
    /// Remove every key starting with `prefix` (not empty) in one commit, emitting one
    /// [`EventKind::DeletePrefix`] event. Returns the commit's revision (the current revision
    /// if nothing matched).
    async fn delete_prefix(&self, _prefix: &str) -> Result<u64> {
        Err(PhysicalError::Unsupported("range delete"))
    }
    /// Up to `limit` (at least 1) full keys starting with `prefix`, in order, each greater than
    /// `after` if given; and the key to pass as `after` for the next page, `None` when there is
    /// none. Values are not read.
    async fn list_page(
        &self,
        _prefix: &str,
        _after: Option<&str>,
        _limit: usize,
    ) -> Result<(Vec<String>, Option<String>)> {
        Err(PhysicalError::Unsupported("paged listing"))
    }
    /// A consistent point-in-time view of every entry; see [`Snapshot`].
    async fn snapshot(&self) -> Result<Box<dyn Snapshot>> {
        Err(PhysicalError::Unsupported("snapshots"))
    }
    /// The lock that elects the active node among the servers sharing this storage, if the
    /// backend provides one (single-server backends give an [`InProcessLock`]).
    fn leader_lock(&self) -> Option<Arc<dyn LeaderLock>> {
        None
    }
    /// A change made elsewhere (another server, seen on the change feed): a caching backend
    /// drops what it holds for it; wrappers pass it on. Nothing to do for the others.
    fn invalidate_cache(&self, _event: &Event) {}
    /// Drops every cached value (the change feed lost events, or the node reloads).
    fn clear_cache(&self) {}
    /// Turns a read cache on (unsealed: this server writes, or follows the change feed) or off
    /// and empty (sealed: nothing tells it about other servers' writes then).
    fn set_cache_enabled(&self, _on: bool) {}
}

/// Keys are UTF-8 paths without NUL and not starting with `/`.
pub(crate) fn check_key(key: &str) -> Result<()> {
    if key.is_empty() || key.starts_with('/') || key.contains('\0') {
        return Err(PhysicalError::InvalidKey(key.to_owned()));
    }
    Ok(())
}

/// The smallest string greater than every string starting with `prefix`, or `None` when no
/// such string exists (the prefix is empty or all `char::MAX`). Strings compare by their UTF-8
/// bytes, which orders them by code point, so replacing the last character that can grow by
/// its successor bounds the whole range.
pub(crate) fn prefix_end(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        let next = match last {
            '\u{D7FF}' => Some('\u{E000}'),
            c => char::from_u32(c as u32 + 1),
        };
        if let Some(next) = next {
            chars.push(next);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

/// [`Backend::list_page`]'s `limit`: a page of nothing would never advance.
pub(crate) fn check_limit(limit: usize) -> Result<()> {
    if limit == 0 {
        return Err(PhysicalError::InvalidArgument(
            "a page holds at least one key".into(),
        ));
    }
    Ok(())
}

/// Cuts `keys` (up to `limit + 1` of them, in order) to one page of [`Backend::list_page`] and
/// names where the next page starts.
pub(crate) fn page(mut keys: Vec<String>, limit: usize) -> (Vec<String>, Option<String>) {
    let more = keys.len() > limit;
    keys.truncate(limit);
    let next = if more { keys.last().cloned() } else { None };
    (keys, next)
}

/// Folds the keys that start with `prefix` into Vault's listing of immediate children.
/// `keys` must be sorted and all start with `prefix`.
pub(crate) fn children<'a>(prefix: &str, keys: impl Iterator<Item = &'a str>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for key in keys {
        let rest = &key[prefix.len()..];
        let child = match rest.find('/') {
            Some(i) => &rest[..=i],
            None => rest,
        };
        if out.last().map(String::as_str) != Some(child) {
            out.push(child.to_owned());
        }
    }
    out.sort();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::prefix_end;

    #[test]
    fn prefix_end_bounds_the_prefix() {
        assert_eq!(prefix_end("a/").as_deref(), Some("a0"));
        assert_eq!(prefix_end("ab").as_deref(), Some("ac"));
        assert_eq!(prefix_end("a\u{D7FF}").as_deref(), Some("a\u{E000}"));
        assert_eq!(prefix_end("a\u{10FFFF}").as_deref(), Some("b"));
        assert_eq!(prefix_end("\u{10FFFF}"), None);
        assert_eq!(prefix_end(""), None);
        // Every string with the prefix sorts below the bound, and the bound lacks the prefix.
        let end = prefix_end("x\u{10FFFF}").unwrap();
        for s in ["x\u{10FFFF}", "x\u{10FFFF}\u{10FFFF}zz", "x\u{10FFFF}/a"] {
            assert!(s < end.as_str(), "{s:?} < {end:?}");
        }
        assert!(!end.starts_with("x\u{10FFFF}"));
    }
}
