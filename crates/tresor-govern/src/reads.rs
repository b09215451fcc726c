//! What a policy can read of its input, found once at compile time from its tokens.
//!
//! Every read of the input document starts with the identifier `input` (an `import input.x
//! as y` alias too starts with it), so the static chains that follow each `input` token
//! (`input.request.operation`, `input["token"].policies`) cover everything the policy can see:
//! two requests that agree on those subtrees get the same decision from a deterministic policy.
//! The analysis is conservative: a bare `input` (passed to a function, compared whole,
//! replaced with `with input as`), or a call of a built-in whose answer changes between calls
//! (`time.now_ns`, `rand.*`, `uuid.*`, DNS lookups, `print`, `trace`) makes the policy
//! [`Reads::Anything`], and its decisions are never reused.
//!
//! The hook uses the answer twice: it builds only the sections of the input document (`request`,
//! `token`, ...) that the request's policies read, and each compiled policy keeps the decisions
//! of recent inputs keyed by the values at its paths (`crate::policy`).

use regorus::Value;
use regorus::unstable::{Lexer, Token, TokenKind};

/// The input paths a policy reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reads {
    /// Only the subtrees at these paths (each at least one component long), sorted, without
    /// a path that another one in the list already covers.
    Paths(Vec<Vec<String>>),
    /// Anything, or its answer may change between two evaluations of the same input.
    Anything,
}

/// Built-ins whose answer is not a function of their arguments.
const VOLATILE: &[(&str, Option<&str>)] = &[
    ("time", Some("now_ns")),
    ("rand", None),
    ("uuid", None),
    ("net", Some("lookup_ip_addr")),
    ("http", None),
    ("opa", None),
    ("print", None),
    ("trace", None),
];

fn is(t: &Token, kind: TokenKind, text: &str) -> bool {
    std::mem::discriminant(&t.0) == std::mem::discriminant(&kind) && t.1.text() == text
}

fn is_ident(t: &Token) -> bool {
    matches!(t.0, TokenKind::Ident)
}

/// The reads of one policy's text (which must already compile).
pub fn analyze(name: &str, text: &str) -> Reads {
    let Ok(source) = regorus::Source::from_contents(name.to_owned(), text.to_owned()) else {
        return Reads::Anything;
    };
    let mut lexer = Lexer::new(&source);
    let mut tokens = Vec::new();
    loop {
        match lexer.next_token() {
            Ok(t) if matches!(t.0, TokenKind::Eof) => break,
            Ok(t) => tokens.push(t),
            Err(_) => return Reads::Anything,
        }
    }
    let mut paths: Vec<Vec<String>> = Vec::new();
    for (i, t) in tokens.iter().enumerate() {
        if !is_ident(t) {
            continue;
        }
        // A field named like a root (`x.input`, `x.time.now_ns`) is not one.
        if i > 0 && is(&tokens[i - 1], TokenKind::Symbol, ".") {
            continue;
        }
        let word = t.1.text();
        for (root, member) in VOLATILE {
            if word == *root {
                let hit = match member {
                    None => true,
                    Some(m) => {
                        tokens
                            .get(i + 1)
                            .is_some_and(|d| is(d, TokenKind::Symbol, "."))
                            && tokens.get(i + 2).is_some_and(|n| n.1.text() == *m)
                    }
                };
                if hit {
                    return Reads::Anything;
                }
            }
        }
        if word != "input" {
            continue;
        }
        let mut path = Vec::new();
        let mut j = i + 1;
        loop {
            match (tokens.get(j), tokens.get(j + 1), tokens.get(j + 2)) {
                (Some(dot), Some(field), _)
                    if is(dot, TokenKind::Symbol, ".") && is_ident(field) =>
                {
                    path.push(field.1.text().to_owned());
                    j += 2;
                }
                (Some(open), Some(key), Some(close))
                    if is(open, TokenKind::Symbol, "[")
                        && matches!(key.0, TokenKind::String | TokenKind::RawString)
                        && !key.1.text().contains('\\')
                        && is(close, TokenKind::Symbol, "]") =>
                {
                    path.push(key.1.text().to_owned());
                    j += 3;
                }
                _ => break,
            }
        }
        if path.is_empty() {
            return Reads::Anything;
        }
        paths.push(path);
    }
    paths.sort();
    paths.dedup();
    // `input.request` covers `input.request.path`.
    let mut kept: Vec<Vec<String>> = Vec::new();
    for p in paths {
        if !kept.iter().any(|k| p.starts_with(k)) {
            kept.push(p);
        }
    }
    Reads::Paths(kept)
}

/// The most bytes of input one cached decision may hold on to.
const KEY_BUDGET: usize = 1024;

/// The values at `paths` in `input`, as one cache key; `None` when they are larger than a
/// cache entry may be (a CSR in the request data, say).
pub fn key(input: &Value, paths: &[Vec<Value>]) -> Option<Value> {
    let mut budget = KEY_BUDGET;
    let mut parts = Vec::with_capacity(paths.len());
    for p in paths {
        let mut v = input;
        for c in p {
            v = match v {
                Value::Object(_) => &v[c],
                _ => &Value::Undefined,
            };
            if matches!(v, Value::Undefined) {
                break;
            }
        }
        if !fits(v, &mut budget) {
            return None;
        }
        parts.push(v.clone());
    }
    Some(Value::from(parts))
}

/// Paths as the values [`key`] indexes with.
pub fn as_values(paths: &[Vec<String>]) -> Vec<Vec<Value>> {
    paths
        .iter()
        .map(|p| p.iter().map(|c| Value::from(c.as_str())).collect())
        .collect()
}

/// Whether `v` fits in what remains of `budget` (counting string bytes and 16 per value).
fn fits(v: &Value, budget: &mut usize) -> bool {
    let cost = match v {
        Value::String(s) => 16 + s.len(),
        _ => 16,
    };
    if cost > *budget {
        return false;
    }
    *budget -= cost;
    match v {
        Value::Array(a) => a.iter().all(|x| fits(x, budget)),
        Value::Set(s) => s.iter().all(|x| fits(x, budget)),
        Value::Object(o) => o.iter().all(|(k, x)| fits(k, budget) && fits(x, budget)),
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths(text: &str) -> Reads {
        analyze("t.rego", text)
    }

    fn p(list: &[&[&str]]) -> Reads {
        Reads::Paths(
            list.iter()
                .map(|x| x.iter().map(|s| s.to_string()).collect())
                .collect(),
        )
    }

    #[test]
    fn static_chains_are_found_and_merged() {
        assert_eq!(
            paths(
                r#"package t
import rego.v1
import input.token as tok
default main := false
main if { input.request.operation == "read"; input["request"].path != ""; tok.ttl < 10 }
main if input.time.hour > 3  # input.comment is not code
deny contains "input.in_a_string" if input.request[x] == 1
"#
            ),
            p(&[&["request"], &["time", "hour"], &["token"]])
        );
    }

    #[test]
    fn a_bare_input_or_a_volatile_builtin_reads_anything() {
        for text in [
            "package t\nmain if count(input) > 1\n",
            "package t\nmain if object.get(input, \"a\", 1)\n",
            "package t\nmain if input.a with input as {}\n",
            "package t\nmain if { time.now_ns() > input.time.unix_ns }\n",
            "package t\nmain if { x := rand.intn(\"a\", 10); x > 1; input.a }\n",
            "package t\nmain if { uuid.rfc4122(\"a\") != input.a }\n",
            "package t\nmain if { print(input.a) }\n",
        ] {
            assert_eq!(paths(text), Reads::Anything, "{text}");
        }
        // Fields and strings that only look like them do not count.
        assert_eq!(
            paths("package t\nmain if { input.x.time.now_ns; \"rand\" != input.y }\n"),
            p(&[&["x", "time", "now_ns"], &["y"]])
        );
    }

    #[test]
    fn keys_hold_the_read_values_and_refuse_large_ones() {
        let input = Value::from_json_str(
            r#"{"request":{"operation":"read","path":"a","data":{"csr":"CSR"}},"time":{"hour":3}}"#,
        )
        .unwrap();
        let ps = as_values(&[
            vec!["request".to_owned(), "operation".to_owned()],
            vec!["time".to_owned(), "hour".to_owned()],
            vec!["token".to_owned(), "policies".to_owned()],
        ]);
        let k = key(&input, &ps).unwrap();
        assert_eq!(
            k,
            Value::from(vec![
                Value::from("read"),
                Value::from(3u64),
                Value::Undefined
            ])
        );
        let big = Value::from_json_str(&format!(
            r#"{{"request":{{"data":{{"csr":"{}"}}}}}}"#,
            "x".repeat(2000)
        ))
        .unwrap();
        assert_eq!(key(&big, &as_values(&[vec!["request".to_owned()]])), None);
    }
}
