//! Password hashing: bcrypt at one cost, always on tokio's blocking pool, and the dummy hash
//! that makes a login for an unknown user cost exactly what a wrong password costs.
//!
//! bcrypt at cost 10 takes tens of milliseconds of pure CPU; run on a runtime worker it would
//! stall every other request that worker carries, so [`Passwords::hash`] and
//! [`Passwords::verify`] hand the work to `spawn_blocking` and await it.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use tresor_sdk::{LogicalError, Result};

/// Vault's cost: Go's `bcrypt.DefaultCost`, which Vault's userpass passes when it hashes a
/// new password. Each step up doubles the work of a login.
pub const DEFAULT_COST: u32 = 10;

/// bcrypt reads at most 72 bytes of a password. Go's bcrypt (and so Vault) refuses to hash a
/// longer one rather than silently ignore its tail; so does Tresor.
pub const MAX_PASSWORD_BYTES: usize = 72;

/// Hashes and verifies passwords at one cost; shared by every handler of a mount.
pub(crate) struct Passwords {
    cost: u32,
    /// A hash of a fixed throw-away password at `cost`, verified against when the user does not
    /// exist, so that an unknown user takes as long as a wrong password.
    dummy: OnceLock<String>,
    /// How many bcrypt verifications ran (the test hook for "an unknown user still costs a
    /// bcrypt verify"; a counter is cheaper and steadier than timing).
    verifications: AtomicU64,
}

impl Passwords {
    pub(crate) fn new(cost: u32) -> Self {
        Passwords {
            cost,
            dummy: OnceLock::new(),
            verifications: AtomicU64::new(0),
        }
    }

    /// Computes the dummy hash now (on the blocking pool), so the first login for an unknown
    /// user does not pay for it.
    pub(crate) async fn warm(self: &std::sync::Arc<Self>) -> Result<()> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || {
            this.dummy_hash();
        })
        .await
        .map_err(LogicalError::internal)
    }

    fn dummy_hash(&self) -> &str {
        self.dummy.get_or_init(|| {
            // The salt is random, so the dummy differs per mount; the password never matters.
            bcrypt::hash("tresor-userpass-no-such-user", self.cost)
                .unwrap_or_else(|e| unreachable!("bcrypt at a validated cost failed: {e}"))
        })
    }

    /// A new hash of `password` at this mount's cost.
    pub(crate) async fn hash(&self, password: String) -> Result<String> {
        if password.len() > MAX_PASSWORD_BYTES {
            return Err(LogicalError::invalid(format!(
                "password is longer than {MAX_PASSWORD_BYTES} bytes, which bcrypt cannot use"
            )));
        }
        let cost = self.cost;
        tokio::task::spawn_blocking(move || bcrypt::hash(password.as_bytes(), cost))
            .await
            .map_err(LogicalError::internal)?
            .map_err(LogicalError::internal)
    }

    /// Whether `password` matches `hash`; with no hash (an unknown user) the dummy hash is
    /// checked instead and the answer is always false. Either way one bcrypt verification at
    /// this mount's cost runs (a stored hash imported with `password_hash` may carry its own
    /// cost).
    pub(crate) async fn verify(
        self: &std::sync::Arc<Self>,
        password: String,
        hash: Option<String>,
    ) -> Result<bool> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || {
            this.verifications.fetch_add(1, Ordering::Relaxed);
            match &hash {
                Some(h) => bcrypt::verify(password.as_bytes(), h).unwrap_or(false),
                None => {
                    let _ = bcrypt::verify(password.as_bytes(), this.dummy_hash());
                    false
                }
            }
        })
        .await
        .map_err(LogicalError::internal)
    }

    #[cfg(test)]
    pub(crate) fn verifications(&self) -> u64 {
        self.verifications.load(Ordering::Relaxed)
    }

    #[cfg(test)]
    pub(crate) fn dummy_cost(&self) -> u32 {
        self.dummy_hash()
            .parse::<bcrypt::HashParts>()
            .map(|p| p.get_cost())
            .unwrap_or(0)
    }
}

/// Checks a pre-computed hash (`password_hash`): a well-formed bcrypt hash with a cost bcrypt
/// accepts.
pub(crate) fn check_hash(h: &str) -> Result<()> {
    let parts: bcrypt::HashParts = h
        .parse()
        .map_err(|_| LogicalError::invalid("password_hash is not a bcrypt hash"))?;
    if !(4..=31).contains(&parts.get_cost()) {
        return Err(LogicalError::invalid(
            "password_hash has a cost bcrypt does not allow (4 to 31)",
        ));
    }
    Ok(())
}

/// Identifies a password without revealing it: the random salt of its hash, which changes
/// whenever the password is set. A login token carries it, so a renewal can tell that the
/// password changed since the login.
pub(crate) fn stamp(hash: &str) -> String {
    hash.parse::<bcrypt::HashParts>()
        .map(|p| p.get_salt())
        .unwrap_or_default()
}
