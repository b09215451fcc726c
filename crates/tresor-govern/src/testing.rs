//! Local evaluation for the CLI: `tresor policy test DIR` (every `test_*` rule of the `.rego`
//! files under DIR, like `opa test`) and `tresor policy eval` (one policy, one input). Both
//! use the server's engine and built-ins, so a policy tested here behaves the same when
//! enforced.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use regorus::{Engine, Value};
use serde_json::json;

use crate::policy::{Compiled, Decision};

/// How long one test or evaluation may run locally.
pub const LOCAL_TIMEOUT: Duration = Duration::from_secs(10);

/// One test's outcome.
#[derive(Debug, Clone)]
pub struct TestResult {
    pub file: String,
    /// `data.tresor.business_hours`.
    pub package: String,
    pub name: String,
    pub passed: bool,
    /// Why it did not pass, when it errored rather than evaluating to false or undefined.
    pub error: Option<String>,
    pub duration: Duration,
}

impl TestResult {
    pub fn to_json(&self) -> serde_json::Value {
        json!({
            "location": {"file": self.file},
            "package": self.package,
            "name": self.name,
            "passed": self.passed,
            "fail": !self.passed,
            "error": self.error,
            "duration": self.duration.as_nanos() as u64,
        })
    }
}

/// Lines covered and not covered, per file.
#[derive(Debug, Clone)]
pub struct FileCoverage {
    pub file: String,
    pub covered: Vec<u32>,
    pub not_covered: Vec<u32>,
}

impl FileCoverage {
    pub fn percent(&self) -> f64 {
        let total = self.covered.len() + self.not_covered.len();
        if total == 0 {
            100.0
        } else {
            100.0 * self.covered.len() as f64 / total as f64
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct TestRun {
    pub results: Vec<TestResult>,
    pub coverage: Option<Vec<FileCoverage>>,
}

impl TestRun {
    pub fn passed(&self) -> usize {
        self.results.iter().filter(|r| r.passed).count()
    }
    pub fn failed(&self) -> usize {
        self.results.len() - self.passed()
    }
}

/// The `.rego` files under `dir` (recursively, sorted), or `dir` itself if it is a file.
pub fn rego_files(dir: &Path) -> Result<Vec<PathBuf>, String> {
    if dir.is_file() {
        return Ok(vec![dir.to_owned()]);
    }
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        let entries = std::fs::read_dir(&d).map_err(|e| format!("reading {}: {e}", d.display()))?;
        for entry in entries {
            let p = entry
                .map_err(|e| format!("reading {}: {e}", d.display()))?
                .path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|e| e == "rego") {
                out.push(p);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Rule names a file declares with a `test_` prefix, in order, each once. Heads are found by
/// their text and confirmed with the engine (a `test_x` inside a body is not a rule).
fn test_names(e: &Engine, file: &str, text: &str) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for line in text.lines() {
        let l = line.trim_start();
        if !l.starts_with("test_") {
            continue;
        }
        let name: String = l
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if !names.contains(&name) && e.has_declared_rule_rooted_at(file, &name).unwrap_or(false) {
            names.push(name);
        }
    }
    names
}

/// Whether `name` matches the `-run` pattern (RE2 syntax, as OPA's `regex.match`, evaluated
/// by the same engine so the CLI needs no regex crate of its own).
fn run_filter(pattern: &str) -> Result<impl Fn(&str) -> bool, String> {
    let mut e = Engine::new();
    e.add_policy(
        "filter.rego".into(),
        "package filter\nmatch := regex.match(input.pattern, input.name)\n".into(),
    )
    .map_err(|err| err.to_string())?;
    let pattern = pattern.to_owned();
    let check = move |name: &str| {
        let mut e = e.clone();
        e.set_input(Value::from(json!({"pattern": pattern, "name": name})));
        matches!(
            e.eval_rule("data.filter.match".into()),
            Ok(Value::Bool(true))
        )
    };
    Ok(check)
}

/// Whether a `-run` pattern is a valid RE2 expression.
pub fn valid_pattern(pattern: &str) -> bool {
    let mut e = Engine::new();
    if e.add_policy(
        "probe.rego".into(),
        "package probe\nok := regex.is_valid(input.pattern)\n".into(),
    )
    .is_err()
    {
        return false;
    }
    e.set_input(Value::from(json!({"pattern": pattern})));
    matches!(e.eval_rule("data.probe.ok".into()), Ok(Value::Bool(true)))
}

/// Runs every `test_*` rule of the `.rego` files under `dir` (those whose name matches `run`,
/// if given). `Err` when a file cannot be read or does not parse.
pub fn run_tests(dir: &Path, run: Option<&str>, coverage: bool) -> Result<TestRun, String> {
    let files = rego_files(dir)?;
    if files.is_empty() {
        return Err(format!("no .rego files under {}", dir.display()));
    }
    let filter = match run {
        Some(p) if !valid_pattern(p) => return Err(format!("-run: invalid pattern {p:?}")),
        Some(p) => Some(run_filter(p)?),
        None => None,
    };
    let mut e = crate::policy::engine(LOCAL_TIMEOUT);
    let mut tests: Vec<(String, String, String)> = Vec::new();
    for f in &files {
        let text =
            std::fs::read_to_string(f).map_err(|err| format!("reading {}: {err}", f.display()))?;
        let file = f.display().to_string();
        let package = e
            .add_policy(file.clone(), text.clone())
            .map_err(|err| err.to_string())?;
        for name in test_names(&e, &file, &text) {
            if filter.as_ref().is_none_or(|m| m(&name)) {
                tests.push((file.clone(), package.clone(), name));
            }
        }
    }
    if coverage {
        e.set_enable_coverage(true);
    }
    let mut out = TestRun::default();
    for (file, package, name) in tests {
        let started = Instant::now();
        let (passed, error) = match e.eval_rule(format!("{package}.{name}")) {
            Ok(Value::Bool(true)) => (true, None),
            Ok(_) => (false, None),
            Err(err) => (false, Some(err.to_string())),
        };
        out.results.push(TestResult {
            file,
            package,
            name,
            passed,
            error,
            duration: started.elapsed(),
        });
    }
    if coverage {
        let report = e.get_coverage_report().map_err(|err| err.to_string())?;
        out.coverage = Some(
            report
                .files
                .into_iter()
                .map(|f| FileCoverage {
                    file: f.path,
                    covered: f.covered.into_iter().collect(),
                    not_covered: f.not_covered.into_iter().collect(),
                })
                .collect(),
        );
    }
    Ok(out)
}

/// Evaluates one policy file against one input document, as the server would.
pub fn eval(policy: &Path, input: &serde_json::Value) -> Result<Decision, String> {
    let text = std::fs::read_to_string(policy)
        .map_err(|err| format!("reading {}: {err}", policy.display()))?;
    let name = policy
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "policy".into());
    let compiled = Compiled::compile(&name, &text, LOCAL_TIMEOUT).map_err(|e| e.to_string())?;
    compiled
        .evaluate(&Value::from(input.clone()))
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tests_run_and_filter() {
        let dir = std::env::temp_dir().join(format!("tresor-govern-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("p.rego"),
            "package tresor.p\ndefault main := false\nmain if input.ok\n",
        )
        .unwrap();
        std::fs::write(
            dir.join("p_test.rego"),
            "package tresor.p_test\nimport data.tresor.p\ntest_ok if p.main with input as {\"ok\": true}\ntest_bad if p.main with input as {\"ok\": false}\n",
        )
        .unwrap();
        let run = run_tests(&dir, None, true).unwrap();
        assert_eq!((run.passed(), run.failed()), (1, 1));
        assert!(run.coverage.as_ref().is_some_and(|c| !c.is_empty()));
        let run = run_tests(&dir, Some("^test_ok$"), false).unwrap();
        assert_eq!((run.passed(), run.failed()), (1, 0));
        assert!(run_tests(&dir, Some("(["), false).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
