//! When to try a request again, and how long to wait first: Vault's Go client's policy
//! (`api.DefaultRetryPolicy` over `retryablehttp.DefaultRetryPolicy`, with
//! `retryablehttp.RateLimitLinearJitterBackoff`).
//!
//! Retried: 412 (a performance standby has not yet seen the index the request requires: the
//! read-after-write answer), 429, every 5xx except 501 Not Implemented, and transport
//! failures other than a refused certificate. Every method is retried, writes included: the
//! body is a buffer that is sent again whole, exactly as Go rewinds it.
//!
//! The wait before retry `n` (1-based) is `n × random(min..max)` (Vault: 1000–1500 ms), or,
//! on a 429 or 503 with `Retry-After: <seconds>`, what the server asked for. Go's backoff
//! is linear with jitter, not exponential; Tresor follows Go so that a fleet of clients
//! behaves like Vault's against the same server.

use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

/// Whether an answer with this status is worth another try.
pub fn is_retryable_status(status: u16) -> bool {
    status == 412 || status == 429 || (status >= 500 && status != 501)
}

/// `Retry-After` in its delay-seconds form. (The HTTP-date form is not honoured: Vault only
/// sends seconds, and a date would need the client's clock to agree with the server's.)
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
}

/// The wait before retry number `retry` (1-based): `retry × (min + jitter × (max − min))`
/// with `jitter` in `[0, 1)`, unless the server's `Retry-After` (on 429 and 503) says
/// otherwise.
pub fn backoff(
    min: Duration,
    max: Duration,
    retry: u32,
    status: Option<u16>,
    retry_after: Option<Duration>,
    jitter: f64,
) -> Duration {
    if matches!(status, Some(429 | 503))
        && let Some(wait) = retry_after
    {
        return wait;
    }
    let base = if max <= min {
        min
    } else {
        min + (max - min).mul_f64(jitter.clamp(0.0, 1.0))
    };
    base.saturating_mul(retry.max(1))
}

/// A number in `[0, 1)` for jitter. Not for secrets: it only spreads clients apart in time.
pub fn jitter() -> f64 {
    let bits = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    (bits >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_vault_retries() {
        for s in [412, 429, 500, 502, 503, 504, 599] {
            assert!(is_retryable_status(s), "{s}");
        }
        for s in [200, 204, 301, 400, 403, 404, 409, 501] {
            assert!(!is_retryable_status(s), "{s}");
        }
    }

    #[test]
    fn waits_grow_linearly_within_the_jitter_bounds() {
        let (min, max) = (Duration::from_millis(1000), Duration::from_millis(1500));
        assert_eq!(backoff(min, max, 1, Some(500), None, 0.0), min);
        assert_eq!(backoff(min, max, 2, Some(500), None, 0.0), min * 2);
        assert_eq!(
            backoff(min, max, 1, Some(500), None, 0.5),
            Duration::from_millis(1250)
        );
        assert_eq!(
            backoff(min, max, 3, None, None, 0.5),
            Duration::from_millis(3750)
        );
        // min >= max: min × retry, as Go.
        assert_eq!(backoff(max, min, 2, None, None, 0.9), max * 2);
        for _ in 0..100 {
            let w = backoff(min, max, 1, None, None, jitter());
            assert!(w >= min && w < max, "{w:?}");
        }
    }

    #[test]
    fn retry_after_is_honoured_on_429_and_503_only() {
        let (min, max) = (Duration::from_millis(10), Duration::from_millis(20));
        let asked = parse_retry_after(" 3 ");
        assert_eq!(asked, Some(Duration::from_secs(3)));
        assert_eq!(
            backoff(min, max, 1, Some(429), asked, 0.0),
            Duration::from_secs(3)
        );
        assert_eq!(
            backoff(min, max, 1, Some(503), asked, 0.0),
            Duration::from_secs(3)
        );
        assert_eq!(backoff(min, max, 1, Some(500), asked, 0.0), min);
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), None);
        assert_eq!(parse_retry_after("-1"), None);
    }
}
