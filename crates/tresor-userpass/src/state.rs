//! What every handler of one mount shares: the password hasher and the locks that serialise
//! writes to one user.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use crate::password::Passwords;

/// Writes to one user (create, update, password, policies, delete) take one of these locks,
/// chosen by the username, so a password change and a policy change never lose each other.
/// Logins take none.
const LOCK_STRIPES: usize = 16;

pub(crate) struct State {
    pub(crate) passwords: Arc<Passwords>,
    locks: Vec<tokio::sync::Mutex<()>>,
}

impl State {
    pub(crate) fn new(cost: u32) -> Self {
        State {
            passwords: Arc::new(Passwords::new(cost)),
            locks: (0..LOCK_STRIPES)
                .map(|_| tokio::sync::Mutex::new(()))
                .collect(),
        }
    }

    /// Serialises writers of `username` within this mount.
    pub(crate) async fn lock(&self, username: &str) -> tokio::sync::MutexGuard<'_, ()> {
        let mut h = DefaultHasher::new();
        username.hash(&mut h);
        let stripe = usize::try_from(h.finish() % LOCK_STRIPES as u64).unwrap_or(0);
        self.locks[stripe].lock().await
    }
}
