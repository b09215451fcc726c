//! The `-config` file: vault-benchmark's HCL layout, kept small.
//!
//! ```hcl
//! vault_addr  = "http://127.0.0.1:8200"
//! duration    = "10s"
//! workers     = 32
//!
//! test "kv-read" "reads" {
//!   weight = 80
//!   config {
//!     numkvs   = 100
//!     non_root = true
//!   }
//! }
//!
//! test "kvv2_write" "writes" {
//!   weight = 20
//! }
//! ```
//!
//! Top-level keys (with vault-benchmark's spelling as an alias): `address`/`vault_addr`,
//! `token`/`vault_token`, `concurrency`/`workers`, `duration`, `requests`, `rate`/`rps`,
//! `warmup`, `cleanup`, `ca_cert`/`vault_cacert`, `tls_skip_verify`, `timeout`, `threads`.
//! Each `test "<workload>" "<name>"` block has a `weight` (default 1) and an optional `config`
//! block handed to the workload as JSON. An unknown key is an error naming it and its line of
//! the file: a benchmark that silently ignores a misspelt option measures the wrong thing.

use std::path::{Path, PathBuf};
use std::time::Duration;

use hcl::{Body, Expression};
use serde_json::Value;

use crate::client::Token;
use crate::error::BenchError;
use crate::options::{parse_bool, parse_duration};

/// One `test` block.
#[derive(Debug, Clone)]
pub struct TestBlock {
    /// The workload type (first label).
    pub kind: String,
    /// The entry's name in the report (second label).
    pub name: String,
    /// Relative share of requests.
    pub weight: u64,
    /// The `config` block as JSON (null when absent).
    pub config: Value,
}

/// What a config file sets; `None` leaves the default (or the environment) in place.
#[derive(Debug, Default)]
pub struct FileConfig {
    pub address: Option<String>,
    pub token: Option<Token>,
    pub concurrency: Option<usize>,
    pub duration: Option<Duration>,
    pub requests: Option<u64>,
    pub rate: Option<f64>,
    pub warmup: Option<Duration>,
    pub cleanup: Option<bool>,
    pub ca_cert: Option<PathBuf>,
    pub tls_skip_verify: Option<bool>,
    pub timeout: Option<Duration>,
    pub threads: Option<usize>,
    pub tests: Vec<TestBlock>,
}

/// Reads and parses a config file.
pub fn load(path: &Path) -> Result<FileConfig, BenchError> {
    let text = std::fs::read_to_string(path).map_err(|e| BenchError::Config {
        path: path.to_owned(),
        message: e.to_string(),
    })?;
    parse(&text).map_err(|message| BenchError::Config {
        path: path.to_owned(),
        message,
    })
}

fn value_of(e: &Expression) -> Value {
    serde_json::to_value(hcl::Value::from(e.clone())).unwrap_or(Value::Null)
}

fn as_string(key: &str, e: &Expression) -> Result<String, String> {
    match value_of(e) {
        Value::String(s) => Ok(s),
        other => Err(format!("{key} must be a string, not {other}")),
    }
}

fn as_count(key: &str, e: &Expression) -> Result<u64, String> {
    value_of(e)
        .as_u64()
        .ok_or_else(|| format!("{key} must be a whole number"))
}

fn as_positive(key: &str, e: &Expression) -> Result<usize, String> {
    match as_count(key, e)? {
        0 => Err(format!("{key} must be at least 1")),
        n => usize::try_from(n).map_err(|_| format!("{key} is too large")),
    }
}

fn as_bool(key: &str, e: &Expression) -> Result<bool, String> {
    match value_of(e) {
        Value::Bool(b) => Ok(b),
        Value::String(s) => parse_bool(key, &s).map_err(|e| e.to_string()),
        _ => Err(format!("{key} must be true or false")),
    }
}

/// A duration given as a string (`"5s"`) or a number of seconds.
fn as_duration(key: &str, e: &Expression) -> Result<Duration, String> {
    let s = match value_of(e) {
        Value::String(s) => s,
        Value::Number(n) => n.to_string(),
        _ => return Err(format!("{key} must be a duration such as \"5s\"")),
    };
    parse_duration(key, &s).map_err(|e| e.to_string())
}

/// The line a key first appears on, for error messages (best effort).
fn line_of(text: &str, key: &str) -> Option<usize> {
    text.lines()
        .position(|l| {
            let t = l.trim_start();
            t.starts_with(key)
                && t[key.len()..]
                    .trim_start()
                    .starts_with(['=', '{', '"', ' '])
        })
        .map(|i| i + 1)
}

/// Parses config text.
pub fn parse(text: &str) -> Result<FileConfig, String> {
    let body: Body = hcl::parse(text).map_err(|e| e.to_string())?;
    let at = |key: &str, msg: String| match line_of(text, key) {
        Some(l) => format!("line {l}: {msg}"),
        None => msg,
    };
    let mut c = FileConfig::default();
    for attr in body.attributes() {
        let key = attr.key();
        let e = attr.expr();
        let r: Result<(), String> = (|| {
            match key {
                "address" | "vault_addr" => c.address = Some(as_string(key, e)?),
                "token" | "vault_token" => c.token = Some(Token::new(as_string(key, e)?)),
                "concurrency" | "workers" => c.concurrency = Some(as_positive(key, e)?),
                "duration" => {
                    let d = as_duration(key, e)?;
                    if d.is_zero() {
                        return Err("duration must be longer than zero".into());
                    }
                    c.duration = Some(d);
                }
                "requests" => {
                    c.requests = Some(as_positive(key, e)? as u64);
                }
                "rate" | "rps" => {
                    let r = value_of(e)
                        .as_f64()
                        .filter(|r| r.is_finite() && *r >= 0.0)
                        .ok_or_else(|| format!("{key} must be a number, zero or more"))?;
                    c.rate = Some(r);
                }
                "warmup" => c.warmup = Some(as_duration(key, e)?),
                "cleanup" => c.cleanup = Some(as_bool(key, e)?),
                "ca_cert" | "vault_cacert" => c.ca_cert = Some(PathBuf::from(as_string(key, e)?)),
                "tls_skip_verify" => c.tls_skip_verify = Some(as_bool(key, e)?),
                "timeout" => c.timeout = Some(as_duration(key, e)?),
                "threads" => c.threads = Some(as_positive(key, e)?),
                other => return Err(format!("unknown key {other:?}")),
            }
            Ok(())
        })();
        r.map_err(|m| at(key, m))?;
    }
    for block in body.blocks() {
        if block.identifier() != "test" {
            return Err(at(
                block.identifier(),
                format!("unknown block {:?} (expected test)", block.identifier()),
            ));
        }
        let labels: Vec<&str> = block.labels().iter().map(|l| l.as_str()).collect();
        let [kind, name] = labels[..] else {
            return Err(at(
                "test",
                "a test block needs two labels: test \"<workload>\" \"<name>\"".into(),
            ));
        };
        if c.tests.iter().any(|t| t.name == name) {
            return Err(at("test", format!("test name {name:?} is used twice")));
        }
        let mut t = TestBlock {
            kind: kind.to_owned(),
            name: name.to_owned(),
            weight: 1,
            config: Value::Null,
        };
        for attr in block.body().attributes() {
            match attr.key() {
                "weight" => {
                    t.weight = as_count("weight", attr.expr())
                        .and_then(|w| {
                            if w == 0 {
                                Err("weight must be at least 1".into())
                            } else {
                                Ok(w)
                            }
                        })
                        .map_err(|m| at("weight", format!("test {name:?}: {m}")))?;
                }
                other => {
                    return Err(at(other, format!("test {name:?}: unknown key {other:?}")));
                }
            }
        }
        for inner in block.body().blocks() {
            if inner.identifier() != "config" || !inner.labels().is_empty() {
                return Err(at(
                    inner.identifier(),
                    format!(
                        "test {name:?}: unknown block {:?} (expected config)",
                        inner.identifier()
                    ),
                ));
            }
            if !t.config.is_null() {
                return Err(at("config", format!("test {name:?}: config given twice")));
            }
            t.config = hcl::from_body::<Value>(inner.body().clone())
                .map_err(|e| format!("test {name:?}: config: {e}"))?;
        }
        c.tests.push(t);
    }
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_vault_benchmark_style_file() {
        let c = parse(
            r#"
vault_addr = "http://127.0.0.1:8200"
vault_token = "root"
duration = "10s"
workers = 8
rps = 500
cleanup = true
warmup = 2

test "kv-read" "reads" {
  weight = 80
  config {
    numkvs   = 100
    non_root = true
  }
}

test "kvv2_write" "writes" {
  weight = 20
}
"#,
        )
        .unwrap();
        assert_eq!(c.address.as_deref(), Some("http://127.0.0.1:8200"));
        assert_eq!(c.token.as_ref().map(Token::expose), Some("root"));
        assert_eq!(c.duration, Some(Duration::from_secs(10)));
        assert_eq!(c.concurrency, Some(8));
        assert_eq!(c.rate, Some(500.0));
        assert_eq!(c.cleanup, Some(true));
        assert_eq!(c.warmup, Some(Duration::from_secs(2)));
        assert_eq!(c.tests.len(), 2);
        assert_eq!(
            (
                c.tests[0].kind.as_str(),
                c.tests[0].name.as_str(),
                c.tests[0].weight
            ),
            ("kv-read", "reads", 80)
        );
        assert_eq!(
            c.tests[0].config,
            serde_json::json!({"numkvs": 100, "non_root": true})
        );
        assert_eq!(
            (c.tests[1].kind.as_str(), c.tests[1].weight),
            ("kvv2_write", 20)
        );
        assert!(c.tests[1].config.is_null());
    }

    #[test]
    fn errors_name_the_key_and_line() {
        for (text, expected) in [
            ("workers = 0\n", "line 1: workers must be at least 1"),
            ("\nduraton = \"5s\"\n", "line 2: unknown key \"duraton\""),
            ("duration = \"soon\"\n", "expected a duration"),
            ("test \"kv-read\" { }\n", "needs two labels"),
            (
                "test \"kv-read\" \"a\" {\n  weight = 0\n}\n",
                "line 2: test \"a\": weight must be at least 1",
            ),
            (
                "test \"kv-read\" \"a\" {\n  wieght = 5\n}\n",
                "line 2: test \"a\": unknown key \"wieght\"",
            ),
            (
                "test \"kv-read\" \"a\" {}\ntest \"kv-write\" \"a\" {}\n",
                "used twice",
            ),
            ("listener \"tcp\" {}\n", "unknown block \"listener\""),
            ("workers = \n", "line 1"),
        ] {
            let e = parse(text).unwrap_err();
            assert!(e.contains(expected), "{text:?}: {e}");
        }
    }

    #[test]
    fn file_options_feed_the_options_and_flags_win() {
        use crate::options::{Env, Parsed, Stop, parse as parse_opts};
        struct NoEnv;
        impl Env for NoEnv {
            fn var(&self, _: &str) -> Option<String> {
                None
            }
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bench.hcl");
        std::fs::write(
            &path,
            "address = \"http://127.0.0.1:1\"\nrequests = 50\nworkers = 3\n\
             test \"kv-list\" \"lists\" {\n  weight = 2\n  config {\n    numkvs = 5\n  }\n}\n\
             test \"sys-health\" \"health\" {}\n",
        )
        .unwrap();
        let cfg = format!("-config={}", path.display());
        let Parsed::Run(o) = parse_opts(std::slice::from_ref(&cfg), &NoEnv).unwrap() else {
            panic!("help")
        };
        assert_eq!(o.address, "http://127.0.0.1:1");
        assert_eq!(o.stop, Stop::Requests(50));
        assert_eq!(o.concurrency, 3);
        let mix: Vec<(&str, &str, u64)> = o
            .mix
            .iter()
            .map(|m| (m.kind.name, m.name.as_str(), m.weight))
            .collect();
        assert_eq!(mix, [("kv-list", "lists", 2), ("sys-health", "health", 1)]);
        let Parsed::Run(o) = parse_opts(
            &[
                cfg.clone(),
                "-workers=7".into(),
                "-duration=2s".into(),
                "-workload=kv-read".into(),
            ],
            &NoEnv,
        )
        .unwrap() else {
            panic!("help")
        };
        assert_eq!(o.concurrency, 7);
        assert_eq!(o.stop, Stop::Duration(Duration::from_secs(2)));
        assert_eq!(o.mix.len(), 1);
        assert_eq!(o.mix[0].name, "kv-read");

        std::fs::write(
            &path,
            "test \"kv-read\" \"r\" {\n  config {\n    numkvz = 5\n  }\n}\n",
        )
        .unwrap();
        let e = parse_opts(std::slice::from_ref(&cfg), &NoEnv).unwrap_err();
        assert!(
            e.to_string()
                .contains("workload \"r\": unknown field `numkvz`"),
            "{e}"
        );
        std::fs::write(&path, "test \"no-such-workload\" \"r\" {}\n").unwrap();
        let e = parse_opts(&[cfg], &NoEnv).unwrap_err();
        assert!(
            e.to_string()
                .contains("unknown workload \"no-such-workload\""),
            "{e}"
        );
    }
}
