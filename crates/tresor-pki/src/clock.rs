//! Time for the PKI engine: the injected [`Clock`] every validity period, revocation time, CRL
//! and OCSP timestamp comes from, so tests move time instead of sleeping.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Where the engine reads the current time.
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

/// Seconds since the Unix epoch; times before it clamp to zero.
pub(crate) fn unix(t: SystemTime) -> i64 {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

/// Formats Unix seconds as RFC 3339 in UTC (`2026-01-02T03:04:05Z`), as Vault prints times.
pub(crate) fn rfc3339(secs: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(secs)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

/// Parses an RFC 3339 timestamp into Unix seconds.
pub(crate) fn parse_rfc3339(s: &str) -> Option<i64> {
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
}
