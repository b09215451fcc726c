//! Parsing of Vault-style durations as policies write them: an integer number of seconds, or a
//! Go-style duration string such as `"90s"`, `"1h30m"`, `"768h"` or `"1.5h"` (units `ns`, `us`,
//! `µs`, `ms`, `s`, `m`, `h`, and `d` for days as Vault's helpers accept).

use std::time::Duration;

/// Why a duration string could not be parsed. Messages are meant to follow a field name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    /// Nothing to parse.
    #[error("empty duration")]
    Empty,
    /// Negative durations make no sense for TTLs.
    #[error("negative duration {0:?}")]
    Negative(String),
    /// A number without a unit, inside a longer string (e.g. `"1h30"`).
    #[error("missing unit in duration {0:?}")]
    MissingUnit(String),
    /// A unit Vault does not know.
    #[error("unknown unit {unit:?} in duration {input:?}")]
    UnknownUnit {
        /// The unit as written.
        unit: String,
        /// The whole input.
        input: String,
    },
    /// Not a number where one was expected.
    #[error("invalid duration {0:?}")]
    Invalid(String),
    /// Larger than a `Duration` can hold.
    #[error("duration {0:?} is too large")]
    Overflow(String),
}

/// Parses a duration string: a bare non-negative integer is seconds; otherwise a sequence of
/// `<number><unit>` pairs, as Go's `time.ParseDuration` accepts, plus `d` for days.
pub fn parse_duration(input: &str) -> Result<Duration, DurationError> {
    let s = input.trim();
    if s.is_empty() {
        return Err(DurationError::Empty);
    }
    if s.starts_with('-') {
        return Err(DurationError::Negative(input.to_owned()));
    }
    let s = s.strip_prefix('+').unwrap_or(s);
    if s.bytes().all(|b| b.is_ascii_digit()) {
        let secs: u64 = s
            .parse()
            .map_err(|_| DurationError::Overflow(input.to_owned()))?;
        return Ok(Duration::from_secs(secs));
    }
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    let mut total = Duration::ZERO;
    let mut rest = s;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (num, after) = rest.split_at(num_len);
        if num.is_empty() || num == "." || num.matches('.').count() > 1 {
            return Err(DurationError::Invalid(input.to_owned()));
        }
        let unit_len = after
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after.len());
        let (unit, next) = after.split_at(unit_len);
        if unit.is_empty() {
            return Err(DurationError::MissingUnit(input.to_owned()));
        }
        let nanos_per_unit: f64 = match unit {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            "d" => 86_400e9,
            other => {
                return Err(DurationError::UnknownUnit {
                    unit: other.to_owned(),
                    input: input.to_owned(),
                });
            }
        };
        let value: f64 = num
            .parse()
            .map_err(|_| DurationError::Invalid(input.to_owned()))?;
        let nanos = value * nanos_per_unit;
        // u64 nanoseconds cover about 584 years, far beyond any TTL.
        if !nanos.is_finite() || nanos >= u64::MAX as f64 {
            return Err(DurationError::Overflow(input.to_owned()));
        }
        total = total
            .checked_add(Duration::from_nanos(nanos.round() as u64))
            .ok_or_else(|| DurationError::Overflow(input.to_owned()))?;
        rest = next;
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_vault_forms() {
        let cases: &[(&str, u64)] = &[
            ("0", 0),
            ("10", 10),
            ("10s", 10),
            ("1m", 60),
            ("1h30m", 5400),
            ("768h", 768 * 3600),
            ("1.5h", 5400),
            ("2d", 172_800),
            ("1h0m30s", 3630),
            (" 90s ", 90),
        ];
        for (input, secs) in cases {
            assert_eq!(
                parse_duration(input),
                Ok(Duration::from_secs(*secs)),
                "{input}"
            );
        }
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
    }

    #[test]
    fn rejects_bad_forms() {
        assert_eq!(parse_duration(""), Err(DurationError::Empty));
        assert!(matches!(
            parse_duration("-5s"),
            Err(DurationError::Negative(_))
        ));
        assert!(matches!(
            parse_duration("1h30"),
            Err(DurationError::MissingUnit(_))
        ));
        assert!(matches!(
            parse_duration("5y"),
            Err(DurationError::UnknownUnit { .. })
        ));
        assert!(matches!(
            parse_duration("abc"),
            Err(DurationError::Invalid(_))
        ));
        assert!(matches!(
            parse_duration("1..5s"),
            Err(DurationError::Invalid(_))
        ));
        assert!(matches!(
            parse_duration("99999999999999999999"),
            Err(DurationError::Overflow(_))
        ));
    }
}
