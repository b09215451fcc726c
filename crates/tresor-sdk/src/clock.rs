//! Time, injected: the core and every engine read the current time from a [`Clock`], so tests
//! move time instead of sleeping (leases, TTLs, certificate validity, CRLs, periodic work).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Where the current time comes from.
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> SystemTime;
}

/// The wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// A clock tests set and advance by hand.
#[derive(Debug)]
pub struct ManualClock(std::sync::Mutex<SystemTime>);

impl ManualClock {
    /// A clock stopped at `unix` seconds.
    pub fn at(unix: i64) -> Self {
        ManualClock(std::sync::Mutex::new(
            UNIX_EPOCH + Duration::from_secs(unix.max(0) as u64),
        ))
    }
    fn time(&self) -> std::sync::MutexGuard<'_, SystemTime> {
        // A test clock has no invariant a panic could break.
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
    pub fn advance(&self, by: Duration) {
        *self.time() += by;
    }
    pub fn set(&self, unix: i64) {
        *self.time() = UNIX_EPOCH + Duration::from_secs(unix.max(0) as u64);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> SystemTime {
        *self.time()
    }
}

/// Seconds since the Unix epoch; times before it clamp to zero.
pub fn unix(t: SystemTime) -> i64 {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

/// Formats Unix seconds as RFC 3339 in UTC (`2026-01-02T03:04:05Z`), as Vault prints times.
pub fn rfc3339(secs: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(secs)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

/// Parses an RFC 3339 timestamp into Unix seconds.
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    time::OffsetDateTime::parse(s.trim(), &time::format_description::well_known::Rfc3339)
        .ok()
        .map(|t| t.unix_timestamp())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_round_trips() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_521_685_446), "2018-03-22T02:24:06Z");
        assert_eq!(parse_rfc3339("2018-03-22T02:24:06Z"), Some(1_521_685_446));
        assert_eq!(
            parse_rfc3339("2018-03-22T03:24:06+01:00"),
            Some(1_521_685_446)
        );
        assert_eq!(parse_rfc3339("yesterday"), None);
    }

    #[test]
    fn a_manual_clock_moves_only_when_told() {
        let c = ManualClock::at(1_000);
        assert_eq!(unix(c.now()), 1_000);
        c.advance(Duration::from_secs(61));
        assert_eq!(unix(c.now()), 1_061);
        c.set(5);
        assert_eq!(unix(c.now()), 5);
    }
}
