//! `policy write|read|list|delete|fmt`: ACL policies under `sys/policies/acl`, and local
//! HCL formatting.

use serde_json::{Map, Value, json};
use tresor_client::Method;

use super::{Cli, CliError, CmdResult, Usage, exact_args, max_args, remote};
use crate::client::{ClientError, Request};

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
