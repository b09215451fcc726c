//! Go-style durations, as Vault's CLI reads and prints them.
//!
//! Parsing accepts what Vault's TTL flags accept: Go's `time.ParseDuration` syntax
//! (`1h30m`, `1.5s`, `300ms`, `-2m`), a bare integer meaning seconds (`30` is `30s`), and a
//! `d` unit for days. Values are nanoseconds in an `i64`, the range Go uses.
//!
//! Printing comes in two flavours: [`go_string`] is Go's `Duration.String()` (`1h0m0s`), and
//! [`human`] is the shorter form Vault's tables show (`1h`, `768h`, `1m30s`).

/// Nanoseconds in one second.
pub const SECOND: i64 = 1_000_000_000;

/// Why a duration string was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    /// The text is not a duration at all.
    #[error("time: invalid duration {0:?}")]
    Invalid(String),
    /// A number without a unit (other than a lone integer, which means seconds).
    #[error("time: missing unit in duration {0:?}")]
    MissingUnit(String),
    /// A unit that is not one of ns, us, µs, ms, s, m, h, d.
    #[error("time: unknown unit {unit:?} in duration {input:?}")]
    UnknownUnit {
        /// The unit as written.
        unit: String,
        /// The whole input.
        input: String,
    },
    /// The value does not fit in 64-bit nanoseconds.
    #[error("time: invalid duration {0:?}")]
    Overflow(String),
}

fn unit_nanos(unit: &str) -> Option<u128> {
    Some(match unit {
        "ns" => 1,
        "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
        "ms" => 1_000_000,
        "s" => 1_000_000_000,
        "m" => 60 * 1_000_000_000,
        "h" => 3_600 * 1_000_000_000,
        "d" => 86_400 * 1_000_000_000,
        _ => return None,
    })
}

/// Parses a duration into nanoseconds: `""` is zero, an integer is seconds, anything else
/// uses Go's syntax (with `d` for days as well).
pub fn parse(input: &str) -> Result<i64, DurationError> {
    let s = input.trim();
    if s.is_empty() {
        return Ok(0);
    }
    let (neg, body) = match s.as_bytes()[0] {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    if !body.is_empty() && body.bytes().all(|b| b.is_ascii_digit()) {
        let secs: i128 = body
            .parse()
            .map_err(|_| DurationError::Overflow(input.to_string()))?;
        return finish(secs * i128::from(SECOND), neg, input);
    }
    if body == "0" {
        return Ok(0);
    }
    if body.is_empty() {
        return Err(DurationError::Invalid(input.to_string()));
    }
    let bytes = body.as_bytes();
    let mut i = 0;
    let mut total: u128 = 0;
    while i < bytes.len() {
        // The number: digits, optionally a fraction.
        let int_start = i;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        let int_part = &body[int_start..i];
        let mut frac_part = "";
        if i < bytes.len() && bytes[i] == b'.' {
            i += 1;
            let frac_start = i;
            while i < bytes.len() && bytes[i].is_ascii_digit() {
                i += 1;
            }
            frac_part = &body[frac_start..i];
        }
        if int_part.is_empty() && frac_part.is_empty() {
            return Err(DurationError::Invalid(input.to_string()));
        }
        // The unit: everything up to the next digit or dot.
        let unit_start = i;
        while i < bytes.len() && !(bytes[i].is_ascii_digit() || bytes[i] == b'.') {
            i += 1;
        }
        let unit = &body[unit_start..i];
        if unit.is_empty() {
            return Err(DurationError::MissingUnit(input.to_string()));
        }
        let scale = unit_nanos(unit).ok_or_else(|| DurationError::UnknownUnit {
            unit: unit.to_string(),
            input: input.to_string(),
        })?;
        let whole: u128 = if int_part.is_empty() {
            0
        } else {
            int_part
                .parse()
                .map_err(|_| DurationError::Overflow(input.to_string()))?
        };
        let mut value = whole
            .checked_mul(scale)
            .ok_or_else(|| DurationError::Overflow(input.to_string()))?;
        if !frac_part.is_empty() {
            // Precision past 18 digits cannot change a nanosecond count.
            let digits = &frac_part[..frac_part.len().min(18)];
            let numerator: u128 = digits.parse().unwrap_or(0);
            let denominator = 10u128.pow(digits.len() as u32);
            value += numerator * scale / denominator;
        }
        total = total
            .checked_add(value)
            .ok_or_else(|| DurationError::Overflow(input.to_string()))?;
        if total > i64::MAX as u128 + 1 {
            return Err(DurationError::Overflow(input.to_string()));
        }
    }
    finish(total as i128, neg, input)
}

fn finish(nanos: i128, neg: bool, input: &str) -> Result<i64, DurationError> {
    let signed = if neg { -nanos } else { nanos };
    i64::try_from(signed).map_err(|_| DurationError::Overflow(input.to_string()))
}

/// Parses a duration and truncates it to whole seconds.
pub fn parse_seconds(input: &str) -> Result<i64, DurationError> {
    parse(input).map(|n| n / SECOND)
}

/// Formats the fraction of `v / 10^prec`, Go-style: trailing zeros dropped, no dot if nothing
/// is left. Returns the text and the integer quotient.
fn frac(v: u64, prec: u32) -> (String, u64) {
    let div = 10u64.pow(prec);
    let (int, rem) = (v / div, v % div);
    if rem == 0 {
        return (String::new(), int);
    }
    let mut digits = format!("{rem:0width$}", width = prec as usize);
    while digits.ends_with('0') {
        digits.pop();
    }
    (format!(".{digits}"), int)
}

/// Go's `time.Duration.String()`: `0s`, `1.5s`, `1m30s`, `1h0m0s`, `300ms`, `2µs`, `7ns`.
pub fn go_string(nanos: i64) -> String {
    if nanos == 0 {
        return "0s".to_string();
    }
    let neg = nanos < 0;
    let u = nanos.unsigned_abs();
    let mut out = String::new();
    if u < SECOND as u64 {
        if u < 1_000 {
            out.push_str(&format!("{u}ns"));
        } else if u < 1_000_000 {
            let (f, i) = frac(u, 3);
            out.push_str(&format!("{i}{f}\u{b5}s"));
        } else {
            let (f, i) = frac(u, 6);
            out.push_str(&format!("{i}{f}ms"));
        }
    } else {
        let (f, secs_total) = frac(u, 9);
        let secs = secs_total % 60;
        let mins_total = secs_total / 60;
        let mins = mins_total % 60;
        let hours = mins_total / 60;
        if hours > 0 {
            out.push_str(&format!("{hours}h"));
        }
        if hours > 0 || mins > 0 {
            out.push_str(&format!("{mins}m"));
        }
        out.push_str(&format!("{secs}{f}s"));
    }
    if neg { format!("-{out}") } else { out }
}

/// The compact form Vault's tables use for a number of seconds: Go's string with the zero
/// minutes and seconds trimmed (`3600` is `1h`, `3630` is `1h30s`, `0` is `0s`).
pub fn human(seconds: i64) -> String {
    if seconds == 0 {
        return "0s".to_string();
    }
    let mut s = go_string(seconds.saturating_mul(SECOND));
    if s.ends_with("m0s") {
        s.truncate(s.len() - 2);
    }
    if let Some(idx) = s.find("h0m") {
        s = format!("{}{}", &s[..idx + 1], &s[idx + 3..]);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_go_syntax() {
        let cases: &[(&str, i64)] = &[
            ("", 0),
            ("0", 0),
            ("30", 30 * SECOND),
            ("-30", -30 * SECOND),
            ("1h", 3600 * SECOND),
            ("1h30m", 5400 * SECOND),
            ("1.5s", 1_500_000_000),
            (".5s", 500_000_000),
            ("300ms", 300_000_000),
            ("2us", 2_000),
            ("2\u{b5}s", 2_000),
            ("7ns", 7),
            ("-2m", -120 * SECOND),
            ("+2m", 120 * SECOND),
            ("1d", 86_400 * SECOND),
            ("768h", 768 * 3600 * SECOND),
            ("1h0m0s", 3600 * SECOND),
            ("1.25h", 4500 * SECOND),
        ];
        for (input, want) in cases {
            assert_eq!(parse(input), Ok(*want), "input {input:?}");
        }
    }

    #[test]
    fn rejects_bad_durations() {
        assert!(matches!(parse("abc"), Err(DurationError::Invalid(_))));
        assert!(parse("1").is_ok());
        assert!(matches!(parse("1h30"), Err(DurationError::MissingUnit(_))));
        assert!(matches!(
            parse("5y"),
            Err(DurationError::UnknownUnit { unit, .. }) if unit == "y"
        ));
        assert!(matches!(parse("-"), Err(DurationError::Invalid(_))));
        assert!(matches!(parse("."), Err(DurationError::Invalid(_))));
        assert!(matches!(
            parse("9999999999999999999h"),
            Err(DurationError::Overflow(_))
        ));
    }

    #[test]
    fn seconds_truncate() {
        assert_eq!(parse_seconds("1500ms"), Ok(1));
        assert_eq!(parse_seconds("2m"), Ok(120));
    }

    #[test]
    fn prints_like_go() {
        let cases: &[(i64, &str)] = &[
            (0, "0s"),
            (1, "1ns"),
            (1_500, "1.5\u{b5}s"),
            (300_000_000, "300ms"),
            (1_500_000_000, "1.5s"),
            (90 * SECOND, "1m30s"),
            (3600 * SECOND, "1h0m0s"),
            (768 * 3600 * SECOND, "768h0m0s"),
            (-90 * SECOND, "-1m30s"),
            (3661 * SECOND + 500_000_000, "1h1m1.5s"),
        ];
        for (nanos, want) in cases {
            assert_eq!(go_string(*nanos), *want, "nanos {nanos}");
        }
    }

    #[test]
    fn human_trims_zero_units() {
        let cases: &[(i64, &str)] = &[
            (0, "0s"),
            (45, "45s"),
            (90, "1m30s"),
            (120, "2m"),
            (3600, "1h"),
            (3660, "1h1m"),
            (3630, "1h30s"),
            (2_764_800, "768h"),
            (2_764_790, "767h59m50s"),
        ];
        for (secs, want) in cases {
            assert_eq!(human(*secs), *want, "secs {secs}");
        }
    }

    #[test]
    fn round_trips_through_go_string() {
        for nanos in [
            1,
            999,
            1_000_001,
            59 * SECOND,
            3601 * SECOND,
            86_400 * SECOND,
        ] {
            assert_eq!(parse(&go_string(nanos)), Ok(nanos));
        }
    }
}
