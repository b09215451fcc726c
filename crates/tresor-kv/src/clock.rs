//! Time for the KV engine: the injected [`Clock`] every timestamp comes from, and Vault's
//! timestamp format (Go's `time.RFC3339Nano`: UTC, fractional seconds with trailing zeros
//! trimmed, no fraction at all on a whole second).
//!
//! Timestamps are kept as nanoseconds since the Unix epoch (`u64`, good until the year 2554)
//! in storage and formatted only when a response is built.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Where the engine reads the current time. Production uses [`SystemClock`]; tests inject a
/// clock they can move forward, so `delete_version_after` is tested without sleeping.
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

/// Nanoseconds since the epoch; times before the epoch clamp to zero.
pub(crate) fn to_nanos(t: SystemTime) -> u64 {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// Formats nanoseconds since the epoch as Go's `RFC3339Nano` in UTC.
pub(crate) fn format_rfc3339_nano(nanos: u64) -> String {
    let secs = nanos / 1_000_000_000;
    let frac = nanos % 1_000_000_000;
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    let mut out = format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    );
    if frac != 0 {
        let digits = format!("{frac:09}");
        out.push('.');
        out.push_str(digits.trim_end_matches('0'));
    }
    out.push('Z');
    out
}

/// Days since 1970-01-01 to a proleptic Gregorian (year, month, day), after Howard Hinnant's
/// `civil_from_days` algorithm.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_like_go_rfc3339_nano() {
        let cases: &[(u64, &str)] = &[
            (0, "1970-01-01T00:00:00Z"),
            (1_521_685_446_945_319_214, "2018-03-22T02:24:06.945319214Z"),
            (1_521_685_446_500_000_000, "2018-03-22T02:24:06.5Z"),
            (1_521_685_446_000_000_100, "2018-03-22T02:24:06.0000001Z"),
            (951_868_799_000_000_000, "2000-02-29T23:59:59Z"),
            (951_868_800_000_000_000, "2000-03-01T00:00:00Z"),
        ];
        for (n, want) in cases {
            assert_eq!(format_rfc3339_nano(*n), *want, "{n}");
        }
    }

    #[test]
    fn nanos_round_trip_through_system_time() {
        let t = UNIX_EPOCH + Duration::new(1_521_685_446, 945_319_214);
        assert_eq!(to_nanos(t), 1_521_685_446_945_319_214);
        assert_eq!(to_nanos(UNIX_EPOCH - Duration::from_secs(5)), 0);
    }
}
