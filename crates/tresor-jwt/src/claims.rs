//! What verified claims must say: times within their leeways, the issuer, the audience, the
//! subject and the role's bound claims; and reading a claim by name or JSON pointer
//! (`/a/b`), as Vault's roles name nested claims.

use serde_json::{Map, Value};

use crate::glob;

/// Reads a claim: a name, or a JSON pointer when it starts with `/`.
pub(crate) fn get<'a>(claims: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    if let Some(pointer) = name.strip_prefix('/') {
        let mut cur: Option<&Value> = None;
        for (i, seg) in pointer.split('/').enumerate() {
            let seg = seg.replace("~1", "/").replace("~0", "~");
            cur = if i == 0 {
                claims.get(&seg)
            } else {
                match cur? {
                    Value::Object(m) => m.get(&seg),
                    Value::Array(a) => seg.parse::<usize>().ok().and_then(|i| a.get(i)),
                    _ => None,
                }
            };
        }
        cur.filter(|v| !v.is_null())
    } else {
        claims.get(name).filter(|v| !v.is_null())
    }
}

/// A claim as a string: strings as they are, numbers and booleans printed.
pub(crate) fn as_string(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// A claim as a list of strings: a list, or one value.
pub(crate) fn as_list(v: &Value) -> Option<Vec<String>> {
    match v {
        Value::Array(a) => a.iter().map(as_string).collect(),
        other => as_string(other).map(|s| vec![s]),
    }
}

/// How much clock difference each time check forgives, in seconds (already resolved: Vault's
/// 0 means "the default", -1 "none").
#[derive(Debug, Clone, Copy)]
pub(crate) struct Leeways {
    pub(crate) clock_skew: i64,
    pub(crate) expiration: i64,
    pub(crate) not_before: i64,
}

fn time_claim(claims: &Map<String, Value>, name: &str) -> Result<Option<i64>, String> {
    match claims.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_i64()
            .or_else(|| n.as_f64().map(|f| f as i64))
            .map(Some)
            .ok_or_else(|| format!("the {name} claim is not a number")),
        Some(_) => Err(format!("the {name} claim is not a number")),
    }
}

/// Checks `exp` (required), `nbf` and `iat` against `now` with the leeways.
pub(crate) fn check_times(claims: &Map<String, Value>, now: i64, l: Leeways) -> Result<(), String> {
    let exp = time_claim(claims, "exp")?.ok_or("the token has no exp claim")?;
    if now
        > exp
            .saturating_add(l.expiration)
            .saturating_add(l.clock_skew)
    {
        return Err("token is expired (exp)".into());
    }
    if let Some(nbf) = time_claim(claims, "nbf")?
        && now
            < nbf
                .saturating_sub(l.not_before)
                .saturating_sub(l.clock_skew)
    {
        return Err("token is not valid yet (nbf)".into());
    }
    if let Some(iat) = time_claim(claims, "iat")?
        && now < iat.saturating_sub(l.clock_skew)
    {
        return Err("token is issued in the future (iat)".into());
    }
    Ok(())
}

/// The `aud` claim as a list (a string or a list of strings).
pub(crate) fn audiences(claims: &Map<String, Value>) -> Vec<String> {
    claims.get("aud").and_then(as_list).unwrap_or_default()
}

/// Whether the token's audience contains one of `bound`.
pub(crate) fn audience_matches(claims: &Map<String, Value>, bound: &[String]) -> bool {
    let aud = audiences(claims);
    bound.iter().any(|b| aud.iter().any(|a| a == b))
}

/// Checks the role's bound claims: every bound claim must be present, and match one of its
/// allowed values (a value, or a list of values; with `glob`, values are `*` patterns). A
/// claim that is a list matches if any of its members matches.
pub(crate) fn check_bound(
    claims: &Map<String, Value>,
    bound: &Map<String, Value>,
    glob_values: bool,
) -> Result<(), String> {
    for (name, want) in bound {
        let have = get(claims, name).ok_or_else(|| format!("claim {name:?} is missing"))?;
        let have = as_list(have)
            .ok_or_else(|| format!("claim {name:?} is not a string or a list of strings"))?;
        let allowed = as_list(want).unwrap_or_default();
        let ok = allowed.iter().any(|a| {
            have.iter().any(|h| {
                if glob_values {
                    glob::matches(a, h)
                } else {
                    a == h
                }
            })
        });
        if !ok {
            return Err(format!(
                "claim {name:?} does not match any associated bound claim values"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn pointers_and_names() {
        let c = obj(json!({"a": {"b": ["x", "y"], "c/d": 1}, "plain": "p", "n": null}));
        assert_eq!(get(&c, "plain"), Some(&json!("p")));
        assert_eq!(get(&c, "/a/b/1"), Some(&json!("y")));
        assert_eq!(get(&c, "/a/c~1d"), Some(&json!(1)));
        assert_eq!(get(&c, "/a/zz"), None);
        assert_eq!(get(&c, "n"), None);
    }

    #[test]
    fn time_checks_with_leeways() {
        let l = Leeways {
            clock_skew: 60,
            expiration: 150,
            not_before: 150,
        };
        let now = 1_000_000;
        let cases = [
            (json!({"exp": now + 10}), true),
            (json!({"exp": now - 200}), true),
            (json!({"exp": now - 211}), false),
            (json!({}), false),
            (json!({"exp": "soon"}), false),
            (json!({"exp": now + 10, "nbf": now + 200}), true),
            (json!({"exp": now + 10, "nbf": now + 211}), false),
            (json!({"exp": now + 10, "iat": now + 61}), false),
        ];
        for (c, ok) in cases {
            assert_eq!(check_times(&obj(c.clone()), now, l).is_ok(), ok, "{c}");
        }
        let none = Leeways {
            clock_skew: 0,
            expiration: 0,
            not_before: 0,
        };
        assert!(check_times(&obj(json!({"exp": now - 1})), now, none).is_err());
    }

    #[test]
    fn bound_claims() {
        let c = obj(json!({"groups": ["dev", "ops"], "email": "a@example.org", "n": 5}));
        let ok = [
            (json!({"groups": "dev"}), false),
            (json!({"groups": ["x", "ops"]}), false),
            (json!({"email": "*@example.org"}), true),
            (json!({"n": "5"}), false),
        ];
        for (b, glob) in ok {
            check_bound(&c, &obj(b.clone()), glob).unwrap_or_else(|e| panic!("{b}: {e}"));
        }
        let bad = [
            (json!({"groups": "admin"}), false),
            (json!({"email": "*@example.org"}), false),
            (json!({"missing": "x"}), false),
            (json!({"email": "*@other.org"}), true),
        ];
        for (b, glob) in bad {
            assert!(check_bound(&c, &obj(b.clone()), glob).is_err(), "{b}");
        }
        assert!(audience_matches(&obj(json!({"aud": "x"})), &["x".into()]));
        assert!(audience_matches(
            &obj(json!({"aud": ["y", "x"]})),
            &["x".into()]
        ));
        assert!(!audience_matches(
            &obj(json!({"aud": ["y"]})),
            &["x".into()]
        ));
    }
}
