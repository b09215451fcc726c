//! `policy write|read|list|delete|fmt`: ACL policies under `sys/policies/acl`, and local
//! HCL formatting; `policy test|eval`: governing policies (Rego) evaluated locally with the
//! server's engine and built-ins (`tresor-govern` without the server hook).

use serde_json::{Map, Value, json};
use tresor_client::Method;

use super::{Cli, CliError, CmdResult, Usage, exact_args, max_args, remote};
use crate::client::{ClientError, Request};
use crate::flags::{Kind, Spec, flag};

const WRITE: Usage = Usage {
    text: "Usage: tresor policy write [options] NAME PATH

  Uploads the policy in the file at PATH (or stdin when PATH is -) under NAME.",
    flags: &[],
};

const READ: Usage = Usage {
    text: "Usage: tresor policy read [options] NAME

  Prints the policy called NAME.",
    flags: &[],
};

const LIST: Usage = Usage {
    text: "Usage: tresor policy list [options]

  Lists the names of the installed policies.",
    flags: &[],
};

const DELETE: Usage = Usage {
    text: "Usage: tresor policy delete [options] NAME

  Deletes the policy called NAME. Tokens that have it keep it, with no effect.",
    flags: &[],
};

const FMT: Usage = Usage {
    text: "Usage: tresor policy fmt [options] PATH

  Checks the policy file at PATH and rewrites it in canonical HCL formatting.",
    flags: &[],
};

const TEST_FLAGS: &[Spec] = &[
    flag(
        "run",
        Kind::Str,
        "Run only the tests whose rule name matches this regular expression (RE2).",
    ),
    flag(
        "json",
        Kind::Bool,
        "Print the results as JSON (one object per test, like opa test --format=json).",
    ),
    flag(
        "coverage",
        Kind::Bool,
        "Report which lines of each file the tests evaluated.",
    ),
];

const TEST: Usage = Usage {
    text: "Usage: tresor policy test [options] DIR

  Runs every test_* rule of the Rego files under DIR (recursively) with the server's engine
  and Tresor's built-ins, as `opa test` does: tests mock the request with `with input as`.
  Prints one line per test and \"N passed, N failed\"; exits 1 if any test fails.",
    flags: TEST_FLAGS,
};

const EVAL_FLAGS: &[Spec] = &[
    flag(
        "policy",
        Kind::Str,
        "The Rego file of the governing policy.",
    ),
    flag(
        "input",
        Kind::Str,
        "A JSON file with the input document (docs/governing-policies.md).",
    ),
];

const EVAL: Usage = Usage {
    text: "Usage: tresor policy eval -policy=FILE -input=FILE

  Evaluates a governing policy against one input document as the server would, and prints
  the decision with the policy's deny reasons. Exits 0 when the policy allows, 1 when it
  denies or cannot be evaluated.",
    flags: EVAL_FLAGS,
};

/// `tresor policy test`.
pub fn test(cli: &mut Cli<'_, '_>, args: &[String]) -> CmdResult {
    let p = cli.parse(&TEST, args)?;
    exact_args(&p.args, 1)?;
    let dir = std::path::Path::new(&p.args[0]);
    let as_json = p.bool("json") || !cli.is_table();
    let run = tresor_govern::testing::run_tests(dir, p.str("run"), p.bool("coverage"))
        .map_err(CliError::Local)?;
    if as_json {
        let mut out = json!(run.results.iter().map(|r| r.to_json()).collect::<Vec<_>>());
        if let Some(cov) = &run.coverage {
            out = json!({"results": out, "coverage": coverage_json(cov)});
        }
        cli.outln(&serde_json::to_string_pretty(&out).unwrap_or_default());
    } else {
        for r in &run.results {
            let status = match (&r.error, r.passed) {
                (_, true) => "PASS".to_owned(),
                (Some(e), false) => format!("ERROR: {e}"),
                (None, false) => "FAIL".to_owned(),
            };
            cli.outln(&format!(
                "{}: {}.{}: {status} ({:.3}ms)",
                r.file,
                r.package.trim_start_matches("data."),
                r.name,
                r.duration.as_secs_f64() * 1000.0
            ));
        }
        if let Some(cov) = &run.coverage {
            for f in cov {
                cli.outln(&format!(
                    "coverage: {}: {:.1}% ({} of {} lines; not covered: {})",
                    f.file,
                    f.percent(),
                    f.covered.len(),
                    f.covered.len() + f.not_covered.len(),
                    f.not_covered
                        .iter()
                        .map(u32::to_string)
                        .collect::<Vec<_>>()
                        .join(",")
                ));
            }
        }
        cli.outln(&format!("{} passed, {} failed", run.passed(), run.failed()));
    }
    Ok(if run.failed() == 0 && !run.results.is_empty() {
        0
    } else {
        1
    })
}

fn coverage_json(cov: &[tresor_govern::testing::FileCoverage]) -> Value {
    let files: Map<String, Value> = cov
        .iter()
        .map(|f| {
            (
                f.file.clone(),
                json!({"covered": f.covered, "not_covered": f.not_covered, "coverage": f.percent()}),
            )
        })
        .collect();
    let (c, n) = cov.iter().fold((0, 0), |(c, n), f| {
        (c + f.covered.len(), n + f.not_covered.len())
    });
    let total = if c + n == 0 {
        100.0
    } else {
        100.0 * c as f64 / (c + n) as f64
    };
    json!({"files": files, "coverage": total})
}

/// `tresor policy eval`.
pub fn eval(cli: &mut Cli<'_, '_>, args: &[String]) -> CmdResult {
    let p = cli.parse(&EVAL, args)?;
    max_args(&p.args, 0)?;
    let (Some(policy), Some(input)) = (p.str("policy"), p.str("input")) else {
        return Err(CliError::Usage(
            "both -policy=FILE and -input=FILE are required".to_string(),
        ));
    };
    let text = std::fs::read_to_string(input)
        .map_err(|e| CliError::Local(format!("Error opening input file: {e}")))?;
    let doc: Value = serde_json::from_str(&text)
        .map_err(|e| CliError::Local(format!("Error parsing input file: {e}")))?;
    let decision = tresor_govern::testing::eval(std::path::Path::new(policy), &doc)
        .map_err(|e| CliError::Local(format!("Error evaluating policy: {e}")))?;
    if cli.is_table() {
        cli.outln(if decision.allowed {
            "Decision: allow"
        } else {
            "Decision: deny"
        });
        for r in &decision.reasons {
            cli.outln(&format!("  * {r}"));
        }
    } else {
        cli.outln(
            &serde_json::to_string_pretty(
                &json!({"allowed": decision.allowed, "reasons": decision.reasons}),
            )
            .unwrap_or_default(),
        );
    }
    Ok(if decision.allowed { 0 } else { 1 })
}

fn policy_name(raw: &str) -> String {
    raw.trim().to_lowercase()
}

/// `tresor policy write`.
pub fn write(cli: &mut Cli<'_, '_>, args: &[String]) -> CmdResult {
    let p = cli.parse(&WRITE, args)?;
    exact_args(&p.args, 2)?;
    let name = policy_name(&p.args[0]);
    let source = &p.args[1];
    let rules = if source == "-" {
        cli.read_stdin()?.to_string()
    } else {
        std::fs::read_to_string(source)
            .map_err(|e| CliError::Local(format!("Error opening policy file: {e}")))?
    };
    let client = cli.client(&p)?;
    client
        .write(
            &format!("sys/policies/acl/{name}"),
            json!({ "policy": rules }),
        )
        .map_err(|e| remote("uploading policy", e))?;
    cli.outln(&format!("Success! Uploaded policy: {name}"));
    Ok(0)
}

/// `tresor policy read`.
pub fn read(cli: &mut Cli<'_, '_>, args: &[String]) -> CmdResult {
    let p = cli.parse(&READ, args)?;
    exact_args(&p.args, 1)?;
    let name = policy_name(&p.args[0]);
    let client = cli.client(&p)?;
    let rules = match client.json(&Request::new(
        Method::GET,
        &format!("sys/policies/acl/{name}"),
    )) {
        Ok(v) => v
            .get("data")
            .and_then(|d| d.get("policy"))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
        Err(ClientError::Api(e)) if e.status == 404 => String::new(),
        Err(e) => return Err(remote(format_args!("reading policy named {name}"), e)),
    };
    if rules.is_empty() {
        return Err(CliError::Remote(format!("No policy named: {name}")));
    }
    if cli.is_table() && cli.field.is_none() {
        cli.outln(rules.trim_end_matches('\n'));
        return Ok(0);
    }
    let mut m = Map::new();
    m.insert("policy".to_string(), Value::String(rules));
    cli.print_map(&m)
}

/// `tresor policy list`.
pub fn list(cli: &mut Cli<'_, '_>, args: &[String]) -> CmdResult {
    let p = cli.parse(&LIST, args)?;
    max_args(&p.args, 0)?;
    let client = cli.client(&p)?;
    let secret = client
        .list("sys/policies/acl")
        .map_err(|e| remote("listing policies", e))?;
    let keys: Vec<Value> = secret
        .and_then(|s| s.data)
        .and_then(|d| d.get("keys").cloned())
        .and_then(|k| k.as_array().cloned())
        .unwrap_or_default();
    if cli.is_table() {
        for k in &keys {
            cli.outln(&crate::format::go_value(k));
        }
        return Ok(0);
    }
    cli.print_list(&keys)
}

/// `tresor policy delete`.
pub fn delete(cli: &mut Cli<'_, '_>, args: &[String]) -> CmdResult {
    let p = cli.parse(&DELETE, args)?;
    exact_args(&p.args, 1)?;
    let name = policy_name(&p.args[0]);
    let client = cli.client(&p)?;
    client
        .delete(&format!("sys/policies/acl/{name}"), &[])
        .map_err(|e| remote(format_args!("deleting {name}"), e))?;
    cli.outln(&format!("Success! Deleted policy: {name}"));
    Ok(0)
}

/// Why a policy file was rejected by `policy fmt`.
#[derive(Debug, thiserror::Error)]
pub enum PolicyFormatError {
    /// Not HCL at all.
    #[error("{0}")]
    Syntax(String),
    /// HCL, but not the shape of an ACL policy.
    #[error("{0}")]
    Shape(String),
}

/// Parses an ACL policy (HCL) and re-emits it in canonical formatting.
///
/// Beyond HCL syntax, the top level may only hold `name = "..."` and `path "<pattern>" {}`
/// blocks, as in Vault's policy language.
pub fn format_policy(text: &str) -> Result<String, PolicyFormatError> {
    let body = hcl::parse(text).map_err(|e| PolicyFormatError::Syntax(e.to_string()))?;
    for structure in body.iter() {
        match structure {
            hcl::Structure::Attribute(a) if a.key.as_str() == "name" => {}
            hcl::Structure::Attribute(a) => {
                return Err(PolicyFormatError::Shape(format!(
                    "invalid key {:?} at the top level",
                    a.key.as_str()
                )));
            }
            hcl::Structure::Block(b) if b.identifier.as_str() == "path" => {
                if b.labels.len() != 1 {
                    return Err(PolicyFormatError::Shape(
                        "a path block needs exactly one label, the path pattern".to_string(),
                    ));
                }
            }
            hcl::Structure::Block(b) => {
                return Err(PolicyFormatError::Shape(format!(
                    "invalid block {:?} at the top level",
                    b.identifier.as_str()
                )));
            }
        }
    }
    use hcl::format::Format as _;
    let mut formatter = hcl::format::Formatter::builder()
        .compact_arrays(true)
        .build_vec();
    let mut out = body
        .format_string(&mut formatter)
        .map_err(|e| PolicyFormatError::Syntax(e.to_string()))?;
    if !out.ends_with('\n') {
        out.push('\n');
    }
    Ok(out)
}

/// `tresor policy fmt`.
pub fn fmt(cli: &mut Cli<'_, '_>, args: &[String]) -> CmdResult {
    let p = cli.parse(&FMT, args)?;
    exact_args(&p.args, 1)?;
    let path = &p.args[0];
    let text = std::fs::read_to_string(path)
        .map_err(|e| CliError::Local(format!("Error opening policy file: {e}")))?;
    let formatted = format_policy(&text)
        .map_err(|e| CliError::Local(format!("Failed to parse policy: {e}")))?;
    std::fs::write(path, formatted)
        .map_err(|e| CliError::Local(format!("Error writing formatted policy: {e}")))?;
    cli.outln(&format!("Success! Formatted policy: {path}"));
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_policies_canonically() {
        let messy = "path   \"secret/*\"   {\ncapabilities=[\"read\",\"list\"]\n}\n\n\n\npath \"sys/*\" { capabilities = [\"deny\"] }";
        let out = format_policy(messy).unwrap();
        assert!(
            out.contains("path \"secret/*\" {\n  capabilities = [\"read\", \"list\"]\n}"),
            "{out}"
        );
        assert!(
            out.contains("path \"sys/*\" {\n  capabilities = [\"deny\"]\n}"),
            "{out}"
        );
        assert!(out.ends_with('\n'));
        // Formatting is idempotent.
        assert_eq!(format_policy(&out).unwrap(), out);
    }

    #[test]
    fn rejects_non_policies() {
        assert!(matches!(
            format_policy("path \"a\" {"),
            Err(PolicyFormatError::Syntax(_))
        ));
        assert!(matches!(
            format_policy("foo = 1"),
            Err(PolicyFormatError::Shape(m)) if m.contains("foo")
        ));
        assert!(matches!(
            format_policy("other \"x\" {}"),
            Err(PolicyFormatError::Shape(_))
        ));
        assert!(matches!(
            format_policy("path {}"),
            Err(PolicyFormatError::Shape(_))
        ));
        assert!(format_policy("name = \"x\"\npath \"a\" { capabilities = [] }").is_ok());
    }

    #[test]
    fn names_are_lowercased() {
        assert_eq!(policy_name(" MyPolicy "), "mypolicy");
    }
}
