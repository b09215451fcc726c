//! Exponential backoff with jitter, for logins, issuances and renders that fail: the wait
//! doubles from `min` up to `max`, and each wait is shortened by a random 0-25% so that many
//! agents restarted together do not retry in step. Randomness here only spreads retries (and
//! names temporary files); it is not used for anything secret.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

/// A non-cryptographic random number (std's per-process random hash keys).
pub fn random_u64() -> u64 {
    let mut h = RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.finish()
}

/// `d` shortened by a random 0-25%.
pub fn jitter(d: Duration) -> Duration {
    let cut = (random_u64() % 1000) as f64 / 4000.0;
    d.mul_f64(1.0 - cut)
}

/// The state of one retry loop.
#[derive(Debug, Clone)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    /// Starts at `min`, never beyond `max`.
    pub fn new(min: Duration, max: Duration) -> Backoff {
        Backoff {
            min,
            max: max.max(min),
            next: min,
        }
    }

    /// The next wait (jittered), doubling the one after.
    pub fn next_wait(&mut self) -> Duration {
        let d = self.next;
        self.next = (self.next * 2).min(self.max);
        jitter(d)
    }

    /// Back to `min` after a success.
    pub fn reset(&mut self) {
        self.next = self.min;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_max_with_jitter_below() {
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(5));
        let waits: Vec<_> = (0..5).map(|_| b.next_wait()).collect();
        let caps = [1, 2, 4, 5, 5];
        for (w, cap) in waits.iter().zip(caps) {
            let cap = Duration::from_secs(cap);
            assert!(*w <= cap && *w >= cap.mul_f64(0.75), "{w:?} vs {cap:?}");
        }
        b.reset();
        assert!(b.next_wait() <= Duration::from_secs(1));
    }
}
