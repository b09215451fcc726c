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
//! [`conformance`] holds the one test suite every backend must pass.

#![forbid(unsafe_code)]

pub mod conformance;
mod embedded;
mod inmem;

pub use embedded::EmbeddedBackend;
pub use inmem::InmemBackend;

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
}

pub type Result<T> = std::result::Result<T, PhysicalError>;

/// One change in a batch given to [`Backend::transaction`].
#[derive(Debug, Clone)]
pub enum Op {
    Put(String, Vec<u8>),
    Delete(String),
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
}

/// Keys are UTF-8 paths without NUL and not starting with `/`.
pub(crate) fn check_key(key: &str) -> Result<()> {
    if key.is_empty() || key.starts_with('/') || key.contains('\0') {
        return Err(PhysicalError::InvalidKey(key.to_owned()));
    }
    Ok(())
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
