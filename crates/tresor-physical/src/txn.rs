//! What one write request does, in one place for every backend's committer: check the
//! preconditions against the state at commit time, apply the writes under the next revision,
//! and record the change events. The backends only say how to read and write their storage
//! ([`Store`]); the semantics (what takes a revision, what emits which event) live here.

use crate::{Check, Event, EventKind, Op, PhysicalError, Result, check_key};

/// One write inside a [`Request`]. `DeletePrefix` is internal: callers reach it through
/// [`crate::Backend::delete_prefix`], so the public [`Op`] keeps its two variants.
pub(crate) enum Write {
    Put(String, Vec<u8>),
    Delete(String),
    DeletePrefix(String),
}

/// One caller's transaction: all of its writes commit under one revision, or none do.
pub(crate) struct Request {
    checks: Vec<Check>,
    writes: Vec<Write>,
}

impl Request {
    /// A transaction of `ops` guarded by `checks`; every key is validated before anything is
    /// queued, so an invalid key rejects the whole request.
    pub(crate) fn new(checks: Vec<Check>, ops: Vec<Op>) -> Result<Self> {
        for c in &checks {
            check_key(&c.key)?;
        }
        let writes = ops
            .into_iter()
            .map(|op| match op {
                Op::Put(k, v) => check_key(&k).map(|()| Write::Put(k, v)),
                Op::Delete(k) => check_key(&k).map(|()| Write::Delete(k)),
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self { checks, writes })
    }

    /// Removal of every key starting with `prefix`, which must not be empty: deleting the
    /// whole store is not something a typo should be able to do.
    pub(crate) fn delete_prefix(prefix: &str) -> Result<Self> {
        if prefix.is_empty() || prefix.starts_with('/') || prefix.contains('\0') {
            return Err(PhysicalError::InvalidKey(prefix.to_owned()));
        }
        Ok(Self {
            checks: Vec::new(),
            writes: vec![Write::DeletePrefix(prefix.to_owned())],
        })
    }
}

/// Reading and writing one backend's storage inside its commit.
pub(crate) trait Store {
    /// The revision `key` was last written at; 0 if it does not exist.
    fn revision_of(&mut self, key: &str) -> Result<u64>;
    fn put(&mut self, key: &str, value: Vec<u8>, revision: u64) -> Result<()>;
    /// Whether the key existed.
    fn delete(&mut self, key: &str) -> Result<bool>;
    /// Whether any key started with `prefix`.
    fn delete_prefix(&mut self, prefix: &str) -> Result<bool>;
}

/// Applies `req` to `store`, whose current revision is `*revision`.
///
/// The outer error means the store itself failed mid-way: the caller must abandon everything
/// it applied since its own transaction began. The inner result is this request's answer: the
/// revision it committed at (the unchanged current revision if it changed nothing), or
/// [`PhysicalError::Conflict`] when a check failed, in which case nothing was written and the
/// caller's other requests are unaffected.
pub(crate) fn apply(
    store: &mut impl Store,
    req: Request,
    revision: &mut u64,
    events: &mut Vec<Event>,
) -> Result<Result<u64>> {
    for c in &req.checks {
        let actual = store.revision_of(&c.key)?;
        if actual != c.revision {
            return Ok(Err(PhysicalError::Conflict {
                key: c.key.clone(),
                expected: c.revision,
                actual,
            }));
        }
    }
    let next = *revision + 1;
    let mut changed = false;
    for w in req.writes {
        let (key, kind) = match w {
            Write::Put(k, v) => {
                store.put(&k, v, next)?;
                (k, EventKind::Put)
            }
            Write::Delete(k) => {
                if !store.delete(&k)? {
                    continue;
                }
                (k, EventKind::Delete)
            }
            Write::DeletePrefix(p) => {
                if !store.delete_prefix(&p)? {
                    continue;
                }
                (p, EventKind::DeletePrefix)
            }
        };
        changed = true;
        events.push(Event {
            key,
            revision: next,
            kind,
        });
    }
    if changed {
        *revision = next;
    }
    Ok(Ok(*revision))
}
