//! Vault's duration syntax: Go-style strings (`"768h"`, `"1h30m"`, `"1.5s"`, `"250ms"`),
//! bare integers meaning seconds (`"300"` or `300`), and `""`/`0` meaning "unset".

use std::time::Duration;

use serde_json::Value;

/// Parses a duration string. Errors name the offending text.
pub fn parse(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if s.is_empty() {
        return Ok(Duration::ZERO);
    }
    if let Ok(n) = s.parse::<u64>() {
        return Ok(Duration::from_secs(n));
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
    }
    Ok(Duration::from_secs_f64(total))
}

/// Parses a JSON value as a duration: a number of seconds or a duration string.
pub fn from_json(v: &Value) -> Result<Duration, String> {
    match v {
        Value::Number(n) => {
            if let Some(i) = n.as_u64() {
                Ok(Duration::from_secs(i))
            } else if let Some(f) = n.as_f64().filter(|f| *f >= 0.0) {
                Ok(Duration::from_secs_f64(f))
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

    #[test]
    fn formats_like_go() {
        assert_eq!(format_go(Duration::from_secs(768 * 3600)), "768h0m0s");
        assert_eq!(format_go(Duration::from_secs(61)), "1m1s");
        assert_eq!(format_go(Duration::ZERO), "0s");
    }
}
