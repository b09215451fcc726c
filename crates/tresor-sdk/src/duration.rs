//! Vault's duration syntax: Go-style strings (`"768h"`, `"1h30m"`, `"1.5s"`, `"250ms"`),
//! bare integers meaning seconds (`"300"` or `300`), and `""`/`0` meaning "unset".

use std::time::Duration;

use serde_json::Value;

/// The longest duration accepted: Go's `time.Duration` limit (about 292 years), which is also
/// what keeps every TTL sum in signed 64-bit seconds far from overflowing.
pub const MAX_SECS: u64 = (i64::MAX / 1_000_000_000) as u64;

fn out_of_range(s: &str) -> String {
    format!("invalid duration {s:?}: out of range (at most {MAX_SECS} seconds)")
}

/// Seconds as a duration, refusing what is out of range.
fn from_secs_checked(n: u64, text: &str) -> Result<Duration, String> {
    if n > MAX_SECS {
        return Err(out_of_range(text));
    }
    Ok(Duration::from_secs(n))
}

/// Fractional seconds as a duration, refusing NaN, infinities and what is out of range.
fn from_f64_checked(f: f64, text: &str) -> Result<Duration, String> {
    if !f.is_finite() || f < 0.0 {
        return Err(format!("invalid duration {text:?}"));
    }
    if f > MAX_SECS as f64 {
        return Err(out_of_range(text));
    }
    Duration::try_from_secs_f64(f).map_err(|_| out_of_range(text))
}

/// Parses a duration string. Errors name the offending text. Never panics: values past
/// [`MAX_SECS`] are an error.
pub fn parse(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if s.is_empty() {
        return Ok(Duration::ZERO);
    }
    if s.bytes().all(|b| b.is_ascii_digit()) {
        return match s.parse::<u64>() {
            Ok(n) => from_secs_checked(n, s),
            Err(_) => Err(out_of_range(s)),
        };
    }
    if s.starts_with('-') {
        return Err(format!(
            "invalid duration {s:?}: negative durations are not allowed"
        ));
    }
    let mut total = 0f64;
    let mut rest = s;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if num_len == 0 {
            return Err(format!("invalid duration {s:?}"));
        }
        let n: f64 = rest[..num_len]
            .parse()
            .map_err(|_| format!("invalid duration {s:?}"))?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let mult = match unit {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            "d" => 86400.0,
            "" => return Err(format!("invalid duration {s:?}: missing unit")),
            _ => return Err(format!("invalid duration {s:?}: unknown unit {unit:?}")),
        };
        total += n * mult;
        if !total.is_finite() || total > MAX_SECS as f64 {
            return Err(out_of_range(s));
        }
    }
    from_f64_checked(total, s)
}

/// Parses a JSON value as a duration: a number of seconds or a duration string.
pub fn from_json(v: &Value) -> Result<Duration, String> {
    match v {
        Value::Number(n) => {
            if let Some(i) = n.as_u64() {
                from_secs_checked(i, &n.to_string())
            } else if let Some(f) = n.as_f64().filter(|f| *f >= 0.0) {
                from_f64_checked(f, &n.to_string())
            } else {
                Err(format!(
                    "invalid duration {n}: negative durations are not allowed"
                ))
            }
        }
        Value::String(s) => parse(s),
        Value::Null => Ok(Duration::ZERO),
        other => Err(format!("invalid duration {other}")),
    }
}

/// Formats like Go's `time.Duration.String()` (`"768h0m0s"`), as Vault prints TTLs in config.
pub fn format_go(d: Duration) -> String {
    let secs = d.as_secs();
    if secs == 0 {
        return "0s".into();
    }
    let (h, m, s) = (secs / 3600, (secs % 3600) / 60, secs % 60);
    if h > 0 {
        format!("{h}h{m}m{s}s")
    } else if m > 0 {
        format!("{m}m{s}s")
    } else {
        format!("{s}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_vault_durations() {
        let cases: &[(&str, u64)] = &[
            ("768h", 768 * 3600),
            ("1h30m", 5400),
            ("90s", 90),
            ("300", 300),
            ("", 0),
            ("2d", 172800),
            ("1m0s", 60),
        ];
        for (s, want) in cases {
            assert_eq!(parse(s).unwrap().as_secs(), *want, "{s}");
        }
        assert_eq!(parse("250ms").unwrap().as_millis(), 250);
        assert_eq!(parse("1.5s").unwrap().as_millis(), 1500);
    }

    #[test]
    fn rejects_bad_durations() {
        for s in ["abc", "10x", "-5s", "h", "1h-2m"] {
            assert!(parse(s).is_err(), "{s} should fail");
        }
        assert!(from_json(&Value::Bool(true)).is_err());
        assert!(from_json(&serde_json::json!(-3)).is_err());
    }

    /// Issue 10, finding 10: huge, infinite and overflowing durations were a panic
    /// (`Duration::from_secs_f64`) reachable unauthenticated through X-Vault-Wrap-TTL.
    #[test]
    fn huge_durations_are_errors_not_panics() {
        for s in [
            "1e300s",
            "99999999999999999999999h",
            "18446744073709551615",
            "184467440737095516150",
            "9223372037",
            "300000000000h",
            "1.0000000000000000000000000000000000000000000000000001e308s",
        ] {
            let e = parse(s).unwrap_err();
            assert!(e.contains("invalid duration"), "{s}: {e}");
        }
        for v in [
            serde_json::json!(1e300),
            serde_json::json!(f64::MAX),
            serde_json::json!(u64::MAX),
            serde_json::json!(10_000_000_000u64),
        ] {
            assert!(from_json(&v).is_err(), "{v}");
        }
        assert_eq!(parse("9223372036").unwrap().as_secs(), MAX_SECS);
        assert_eq!(
            parse(&format!("{}h", MAX_SECS / 3600)).unwrap().as_secs(),
            MAX_SECS / 3600 * 3600
        );
    }

    #[test]
    fn formats_like_go() {
        assert_eq!(format_go(Duration::from_secs(768 * 3600)), "768h0m0s");
        assert_eq!(format_go(Duration::from_secs(61)), "1m1s");
        assert_eq!(format_go(Duration::ZERO), "0s");
    }
}
