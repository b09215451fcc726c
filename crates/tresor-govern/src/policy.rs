//! One governing policy, compiled once and evaluated many times.
//!
//! The convention (design-next.md §5): the module declares `main` (a boolean; `default main
//! := false` makes "no rule matched" a denial) and may declare `deny contains msg` for the
//! reasons shown to the client. A policy whose `main` is not `true` fails. Anything else that
//! goes wrong while evaluating (a built-in's error, a non-boolean `main`, the time limit)
//! is an [`EvalError`]: the hook treats it as a failure (fail closed).
//!
//! Evaluation needs a mutable `regorus::Engine` (it holds the input and evaluation state), so
//! each compiled policy keeps a small pool of engines cloned from one parsed template: a
//! request borrows one, and concurrent requests never wait for each other or parse again.

use std::collections::BTreeMap;
use std::num::NonZeroU32;
use std::time::Duration;

use parking_lot::Mutex;
use regorus::Engine;
use regorus::Value;
use regorus::utils::limits::ExecutionTimerConfig;

/// How long one evaluation may take before it is stopped (and the request denied).
pub const DEFAULT_EVAL_TIMEOUT: Duration = Duration::from_millis(100);

/// Engines kept per policy for reuse (more are cloned under load, then dropped).
const POOL_SIZE: usize = 8;

/// Decisions kept per policy (`crate::reads`); the whole set is dropped when full.
const DECISIONS: usize = 1024;

/// The outcome of one evaluation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// `main` evaluated to `true`.
    pub allowed: bool,
    /// The `deny` messages (sorted), evaluated only when the policy did not allow.
    pub reasons: Vec<String>,
}

/// A policy that could not be evaluated; the message says why.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct EvalError(pub String);

/// A policy that does not compile; the message names the line and column.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct CompileError(pub String);

pub struct Compiled {
    /// `data.<package>`.
    package: String,
    /// `data.<package>.main` and `data.<package>.deny`, spelled once.
    main_rule: String,
    deny_rule: String,
    has_deny: bool,
    template: Engine,
    pool: Mutex<Vec<Engine>>,
    /// What the policy reads of its input (`crate::reads`).
    reads: crate::reads::Reads,
    /// The same paths as values, for [`crate::reads::key`]; empty when `reads` is `Anything`.
    key_paths: Vec<Vec<Value>>,
    /// Recent decisions by the values at `key_paths` (a deterministic policy gives the same
    /// answer for the same values there).
    decisions: Mutex<BTreeMap<Value, Decision>>,
}

impl std::fmt::Debug for Compiled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Compiled")
            .field("package", &self.package)
            .field("has_deny", &self.has_deny)
            .finish_non_exhaustive()
    }
}

/// A fresh engine with Tresor's built-ins and the time limit.
pub fn engine(timeout: Duration) -> Engine {
    let mut e = Engine::new();
    e.set_execution_timer_config(ExecutionTimerConfig {
        limit: timeout,
        check_interval: NonZeroU32::new(64).unwrap_or(NonZeroU32::MIN),
    });
    // Built-in errors are evaluation errors (OPA's strict mode): a policy never silently
    // skips a check because its input did not parse.
    e.set_strict_builtin_errors(true);
    crate::builtins::register(&mut e);
    e
}

/// regorus' parse errors read "--> <file>:<line>:<col>", the source line with a pointer,
/// then "error: <msg>". Clients get "line L, column C: <msg>" first, then the pointer lines.
fn compile_message(e: &anyhow::Error) -> String {
    let text = e.to_string();
    let mut at = None;
    let mut msg = None;
    let mut pointer = Vec::new();
    for l in text.lines() {
        let t = l.trim();
        if let Some(loc) = t.strip_prefix("--> ") {
            let parts: Vec<&str> = loc.rsplitn(3, ':').collect();
            if let [col, line, _] = parts.as_slice() {
                at = Some((line.to_string(), col.to_string()));
            }
        } else if let Some(m) = t.strip_prefix("error: ") {
            msg = Some(m.to_owned());
        } else if !t.is_empty() {
            pointer.push(l.to_owned());
        }
    }
    match (at, msg) {
        (Some((line, col)), Some(msg)) => {
            let mut out = format!("line {line}, column {col}: {msg}");
            for p in pointer {
                out.push('\n');
                out.push_str(&p);
            }
            out
        }
        _ => text.trim().to_owned(),
    }
}

impl Compiled {
    /// Parses a policy and checks it the way the server will use it: one module that
    /// declares `main`, and a trial evaluation against an empty input (which finds calls of
    /// unknown functions and other errors the parser alone does not).
    pub fn compile(name: &str, text: &str, timeout: Duration) -> Result<Self, CompileError> {
        let mut e = engine(timeout);
        let file = format!("{name}.rego");
        let package = e
            .add_policy(file.clone(), text.to_owned())
            .map_err(|err| CompileError(compile_message(&err)))?;
        let declared = |e: &Engine, rule: &str| {
            e.has_declared_rule_rooted_at(&file, rule)
                .map_err(|err| CompileError(err.to_string()))
        };
        if !declared(&e, "main")? {
            return Err(CompileError(format!(
                "the policy declares no `main` rule (write `default main := false` and the rules that make it true in {package})"
            )));
        }
        let has_deny = declared(&e, "deny")?;
        let reads = crate::reads::analyze(&file, text);
        let key_paths = match &reads {
            crate::reads::Reads::Paths(p) => crate::reads::as_values(p),
            crate::reads::Reads::Anything => Vec::new(),
        };
        let compiled = Compiled {
            reads,
            key_paths,
            decisions: Mutex::new(BTreeMap::new()),
            main_rule: format!("{package}.main"),
            deny_rule: format!("{package}.deny"),
            package,
            has_deny,
            template: e,
            pool: Mutex::new(Vec::new()),
        };
        compiled
            .evaluate_now(&Value::new_object())
            .map_err(|err| CompileError(format!("the policy does not evaluate: {err}")))?;
        Ok(compiled)
    }

    /// The package the policy declares (`data.tresor.pki_keys`).
    pub fn package(&self) -> &str {
        &self.package
    }

    /// What the policy reads of its input.
    pub fn reads(&self) -> &crate::reads::Reads {
        &self.reads
    }

    /// Evaluates `main` (and, when it is not `true`, `deny`) against one input document, or
    /// answers with the decision of an earlier input that agreed on everything the policy
    /// reads. Errors (a time limit included) are never kept.
    pub fn evaluate(&self, input: &Value) -> Result<Decision, EvalError> {
        let key = match self.reads {
            crate::reads::Reads::Paths(_) => crate::reads::key(input, &self.key_paths),
            crate::reads::Reads::Anything => None,
        };
        if let Some(k) = &key
            && let Some(d) = self.decisions.lock().get(k)
        {
            return Ok(d.clone());
        }
        let d = self.evaluate_now(input)?;
        if let Some(k) = key {
            let mut kept = self.decisions.lock();
            if kept.len() >= DECISIONS {
                kept.clear();
            }
            kept.insert(k, d.clone());
        }
        Ok(d)
    }

    /// Evaluates the policy, whatever was decided before.
    pub fn evaluate_now(&self, input: &Value) -> Result<Decision, EvalError> {
        let mut e = self
            .pool
            .lock()
            .pop()
            .unwrap_or_else(|| self.template.clone());
        let result = self.evaluate_with(&mut e, input);
        let mut pool = self.pool.lock();
        if pool.len() < POOL_SIZE {
            pool.push(e);
        }
        result
    }

    fn evaluate_with(&self, e: &mut Engine, input: &Value) -> Result<Decision, EvalError> {
        e.set_input(input.clone());
        let main = e
            .eval_rule(self.main_rule.clone())
            .map_err(|err| EvalError(err.to_string()))?;
        let allowed = match main {
            Value::Bool(b) => b,
            Value::Undefined => false,
            other => {
                return Err(EvalError(format!(
                    "`main` must be a boolean, got {}",
                    other.to_json_str().unwrap_or_default()
                )));
            }
        };
        let reasons = if allowed || !self.has_deny {
            Vec::new()
        } else {
            let deny = e
                .eval_rule(self.deny_rule.clone())
                .map_err(|err| EvalError(err.to_string()))?;
            messages(&deny)
        };
        Ok(Decision { allowed, reasons })
    }
}

/// The strings of a `deny` set (or array); other values are shown as JSON.
pub fn messages(v: &Value) -> Vec<String> {
    let json: serde_json::Value = match v {
        Value::Undefined => return Vec::new(),
        v => serde_json::to_value(v).unwrap_or_default(),
    };
    let mut out: Vec<String> = match json {
        serde_json::Value::Array(items) => items
            .into_iter()
            .map(|i| match i {
                serde_json::Value::String(s) => s,
                other => other.to_string(),
            })
            .collect(),
        serde_json::Value::Null => Vec::new(),
        serde_json::Value::String(s) => vec![s],
        other => vec![other.to_string()],
    };
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(json: &str) -> Value {
        Value::from_json_str(json).unwrap()
    }

    #[test]
    fn main_and_deny_decide() {
        let p = Compiled::compile(
            "t",
            r#"package tresor.t
default main := false
main if input.request.operation == "read"
deny contains msg if {
  input.request.operation != "read"
  msg := sprintf("operation %s is not allowed", [input.request.operation])
}"#,
            DEFAULT_EVAL_TIMEOUT,
        )
        .unwrap();
        assert_eq!(p.package(), "data.tresor.t");
        let d = p
            .evaluate(&input(r#"{"request":{"operation":"read"}}"#))
            .unwrap();
        assert!(d.allowed);
        assert!(d.reasons.is_empty());
        let d = p
            .evaluate(&input(r#"{"request":{"operation":"update"}}"#))
            .unwrap();
        assert!(!d.allowed);
        assert_eq!(d.reasons, vec!["operation update is not allowed"]);
    }

    #[test]
    fn a_syntax_error_names_line_and_column() {
        let err = Compiled::compile(
            "broken",
            "package tresor.broken\n\ndefault main := false\nmain if {\n  input.x ==\n}\n",
            DEFAULT_EVAL_TIMEOUT,
        )
        .unwrap_err();
        assert!(err.0.starts_with("line 6, column 1: "), "{err}");
    }

    #[test]
    fn a_policy_without_main_is_refused() {
        let err = Compiled::compile(
            "nomain",
            "package tresor.nomain\nallow := true\n",
            DEFAULT_EVAL_TIMEOUT,
        )
        .unwrap_err();
        assert!(err.0.contains("no `main` rule"), "{err}");
    }

    #[test]
    fn an_unknown_function_is_refused_at_compile_time() {
        let err = Compiled::compile(
            "unknown",
            "package tresor.unknown\ndefault main := false\nmain if no_such.function(1)\n",
            DEFAULT_EVAL_TIMEOUT,
        )
        .unwrap_err();
        assert!(err.0.contains("no_such.function"), "{err}");
    }

    #[test]
    fn a_non_boolean_main_is_an_error() {
        let p = Compiled::compile(
            "nb",
            "package tresor.nb\ndefault main := false\nmain := 3 if input.x\n",
            DEFAULT_EVAL_TIMEOUT,
        )
        .unwrap();
        let err = p.evaluate(&input(r#"{"x": true}"#)).unwrap_err();
        assert!(err.0.contains("must be a boolean"), "{err}");
    }

    #[test]
    fn a_slow_policy_is_stopped() {
        let p = Compiled::compile(
            "slow",
            r#"package tresor.slow
default main := false
main if {
  input.n
  count([1 | some x in numbers.range(1, input.n); some y in numbers.range(1, input.n)]) > 0
}"#,
            Duration::from_millis(20),
        )
        .unwrap();
        let started = std::time::Instant::now();
        let err = p.evaluate(&input(r#"{"n": 5000}"#)).unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(5));
        assert!(
            err.0.to_lowercase().contains("time") || err.0.to_lowercase().contains("limit"),
            "{err}"
        );
    }

    #[test]
    fn net_cidr_contains_works_as_in_opa() {
        let p = Compiled::compile(
            "net",
            r#"package tresor.net
default main := false
main if net.cidr_contains("127.0.0.2/32", input.request.connection.remote_addr)"#,
            DEFAULT_EVAL_TIMEOUT,
        )
        .unwrap();
        let ok = |a: &str| {
            p.evaluate(&input(&format!(
                r#"{{"request":{{"connection":{{"remote_addr":"{a}"}}}}}}"#
            )))
            .unwrap()
            .allowed
        };
        assert!(ok("127.0.0.2"));
        assert!(!ok("127.0.0.1"));
    }

    #[test]
    fn a_reused_decision_is_the_one_evaluation_gives() {
        let p = Compiled::compile(
            "reuse",
            r#"package tresor.reuse
default main := false
main if { input.request.operation == "read"; count(input.request.data.note) < 5 }
deny contains sprintf("%s of %d characters", [input.request.operation, count(input.request.data.note)]) if not main
"#,
            DEFAULT_EVAL_TIMEOUT,
        )
        .unwrap();
        let req = |op: &str, note: &str, path: &str| {
            input(&format!(
                r#"{{"request":{{"operation":"{op}","path":"{path}","data":{{"note":"{note}"}}}}}}"#
            ))
        };
        // The same answers the first time, and again from the kept decisions, whatever the
        // fields the policy does not read.
        for round in 0..3 {
            for (op, note, path, allowed, reason) in [
                ("read", "abc", "a", true, None),
                ("update", "abc", "b", false, Some("update of 3 characters")),
                ("read", "abcdef", "c", false, Some("read of 6 characters")),
                ("read", "abc", "d", true, None),
            ] {
                let d = p
                    .evaluate(&req(op, note, &format!("{path}{round}")))
                    .unwrap();
                assert_eq!(d.allowed, allowed, "{op} {note}");
                assert_eq!(
                    d.reasons,
                    reason.into_iter().map(String::from).collect::<Vec<_>>()
                );
                assert_eq!(d, p.evaluate_now(&req(op, note, path)).unwrap());
            }
        }
        // A value too large to keep is still decided, every time.
        let big = "x".repeat(4000);
        for _ in 0..2 {
            let d = p.evaluate(&req("read", &big, "a")).unwrap();
            assert_eq!(d.reasons, vec!["read of 4000 characters"]);
        }
    }

    /// A caller sending many distinct values cannot grow a policy's kept decisions without
    /// bound, and every answer stays right across the resets.
    #[test]
    fn kept_decisions_are_bounded() {
        let p = Compiled::compile(
            "bound",
            "package tresor.bound\ndefault main := false\nmain if endswith(input.request.path, \"0\")\n",
            DEFAULT_EVAL_TIMEOUT,
        )
        .unwrap();
        for i in 0..(DECISIONS * 3) {
            let d = p
                .evaluate(&input(&format!(r#"{{"request":{{"path":"p{i}"}}}}"#)))
                .unwrap();
            assert_eq!(d.allowed, i % 10 == 0, "{i}");
            assert!(p.decisions.lock().len() <= DECISIONS);
        }
    }
}
