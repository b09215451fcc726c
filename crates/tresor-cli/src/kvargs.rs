//! `key=value` arguments, read the way Vault's CLI reads request data.
//!
//! - `k=v` sets `k` to the string `v`;
//! - `k=@path` reads the value from a file, `k=-` from standard input (kept byte for byte,
//!   trailing newline included);
//! - a lone `-` reads a JSON object from standard input and merges its keys;
//! - `@path` alone reads a JSON object from a file and merges its keys;
//! - a key given twice becomes a list of its values.
//!
//! Standard input can be consumed only once per command.

use std::io::Read;

use serde_json::{Map, Value};

/// Why the arguments could not be turned into request data.
#[derive(Debug, thiserror::Error)]
pub enum KvError {
    /// An argument without `=`.
    #[error("format must be key=value, got {0:?}")]
    NotKeyValue(String),
    /// An argument with an empty key.
    #[error("key is empty in {0:?}")]
    EmptyKey(String),
    /// Standard input was asked for twice.
    #[error("stdin can only be read once")]
    StdinTwice,
    /// A file or standard input could not be read.
    #[error("error reading {what}: {source}")]
    Io {
        /// Which file, or "stdin".
        what: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A JSON object argument that is not a JSON object.
    #[error("error parsing JSON from {what}: {reason}")]
    Json {
        /// Which file, or "stdin".
        what: String,
        /// What the parser said.
        reason: String,
    },
}

struct Builder<'a> {
    stdin: &'a mut dyn Read,
    stdin_used: bool,
    out: Map<String, Value>,
}

impl Builder<'_> {
    fn read_stdin(&mut self) -> Result<String, KvError> {
        if self.stdin_used {
            return Err(KvError::StdinTwice);
        }
        self.stdin_used = true;
        let mut buf = String::new();
        self.stdin
            .read_to_string(&mut buf)
            .map_err(|source| KvError::Io {
                what: "stdin".to_string(),
                source,
            })?;
        Ok(buf)
    }

    fn add(&mut self, key: String, value: Value) {
        match self.out.get_mut(&key) {
            Some(Value::Array(items)) => items.push(value),
            Some(existing) => {
                let first = existing.take();
                *existing = Value::Array(vec![first, value]);
            }
            None => {
                self.out.insert(key, value);
            }
        }
    }

    fn merge_json(&mut self, text: &str, what: &str) -> Result<(), KvError> {
        let parsed: Value = serde_json::from_str(text).map_err(|e| KvError::Json {
            what: what.to_string(),
            reason: e.to_string(),
        })?;
        match parsed {
            Value::Object(map) => {
                for (k, v) in map {
                    self.add(k, v);
                }
                Ok(())
            }
            _ => Err(KvError::Json {
                what: what.to_string(),
                reason: "expected a JSON object".to_string(),
            }),
        }
    }
}

fn read_file(path: &str) -> Result<String, KvError> {
    std::fs::read_to_string(path).map_err(|source| KvError::Io {
        what: path.to_string(),
        source,
    })
}

/// Turns `key=value` arguments into a JSON object of request data.
pub fn parse(args: &[String], stdin: &mut dyn Read) -> Result<Map<String, Value>, KvError> {
    let mut b = Builder {
        stdin,
        stdin_used: false,
        out: Map::new(),
    };
    for arg in args {
        if arg == "-" {
            let text = b.read_stdin()?;
            b.merge_json(&text, "stdin")?;
            continue;
        }
        if let Some(path) = arg.strip_prefix('@')
            && !arg.contains('=')
        {
            let text = read_file(path)?;
            b.merge_json(&text, path)?;
            continue;
        }
        let (key, raw) = arg
            .split_once('=')
            .ok_or_else(|| KvError::NotKeyValue(arg.clone()))?;
        if key.is_empty() {
            return Err(KvError::EmptyKey(arg.clone()));
        }
        let value = if raw == "-" {
            b.read_stdin()?
        } else if let Some(path) = raw.strip_prefix('@') {
            read_file(path)?
        } else {
            raw.to_string()
        };
        b.add(key.to_string(), Value::String(value));
    }
    Ok(b.out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn args(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn run(v: &[&str], stdin: &str) -> Result<Value, KvError> {
        let mut input = stdin.as_bytes();
        parse(&args(v), &mut input).map(Value::Object)
    }

    #[test]
    fn plain_pairs_keep_everything_after_the_first_equals() {
        let got = run(&["a=b", "url=http://x?y=z", "empty="], "").unwrap();
        assert_eq!(got, json!({"a": "b", "url": "http://x?y=z", "empty": ""}));
    }

    #[test]
    fn repeated_keys_become_lists() {
        let got = run(&["p=a", "p=b", "p=c", "q=1"], "").unwrap();
        assert_eq!(got, json!({"p": ["a", "b", "c"], "q": "1"}));
    }

    #[test]
    fn values_from_files() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("cert.pem");
        std::fs::write(&file, "line1\nline2\n").unwrap();
        let arg = format!("cert=@{}", file.display());
        let got = run(&[&arg], "").unwrap();
        assert_eq!(got, json!({"cert": "line1\nline2\n"}));

        let missing = format!("k=@{}", dir.path().join("nope").display());
        assert!(matches!(run(&[&missing], ""), Err(KvError::Io { .. })));
    }

    #[test]
    fn value_from_stdin_is_kept_verbatim() {
        let got = run(&["password=-"], "s3cret\n").unwrap();
        assert_eq!(got, json!({"password": "s3cret\n"}));
    }

    #[test]
    fn stdin_only_once() {
        assert!(matches!(
            run(&["a=-", "b=-"], "x"),
            Err(KvError::StdinTwice)
        ));
        assert!(matches!(run(&["-", "b=-"], "{}"), Err(KvError::StdinTwice)));
    }

    #[test]
    fn json_object_from_stdin_and_file() {
        let got = run(&["-", "extra=1"], r#"{"a": 1, "b": {"c": true}}"#).unwrap();
        assert_eq!(got, json!({"a": 1, "b": {"c": true}, "extra": "1"}));

        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("data.json");
        std::fs::write(&file, r#"{"k": ["x"]}"#).unwrap();
        let arg = format!("@{}", file.display());
        assert_eq!(run(&[&arg], "").unwrap(), json!({"k": ["x"]}));

        assert!(matches!(run(&["-"], "[1,2]"), Err(KvError::Json { .. })));
        assert!(matches!(run(&["-"], "{"), Err(KvError::Json { .. })));
    }

    #[test]
    fn rejects_malformed_arguments() {
        assert!(matches!(
            run(&["novalue"], ""),
            Err(KvError::NotKeyValue(_))
        ));
        assert!(matches!(run(&["=v"], ""), Err(KvError::EmptyKey(_))));
    }
}
