//! The agent's template engine (`tresor_agent::template`, consul-template's language as
//! agents use it): `Template::parse` with the default or custom delimiters (text, actions,
//! trim markers, pipelines, variables, `if`/`else if`/`with`/`range`, comments, raw and quoted
//! strings, numbers) and `render` in lenient and strict mode against a fixed set of secrets
//! (`secret` reads and writes, `pkiCert`, the functions `index`, `printf`, `toJSON`, `split`,
//! `join`, `base64Encode`, comparisons, ...).
//!
//! Input: first byte: bit 0 picks strict rendering, bit 1 the delimiters `[[ ]]` instead of
//! `{{ }}`; the rest is the template. Text naming anything under `/dev` or `/proc` is skipped
//! (the `file` function reads files, and `/dev/zero` never ends).

use serde_json::{Value, json};
use tresor_agent::template::{Source, Template};

struct Secrets;

impl Source for Secrets {
    fn secret(&mut self, path: &str, args: &[String]) -> Result<Value, String> {
        match path {
            "secret/data/app" => Ok(json!({
                "LeaseID": "", "LeaseDuration": 0, "Renewable": false,
                "Data": {"data": {"user": "admin", "pw": "s3cr3t", "n": 3, "list": ["a", "b"],
                                  "nested": {"k": "v"}},
                         "metadata": {"version": 2}}
            })),
            "kv1/app" => Ok(json!({"Data": {"b": "2", "a": "1"}})),
            "auth/token/create" => Ok(json!({"Data": null, "args": args})),
            _ => Err(format!("{path}: no secret exists at this path")),
        }
    }
    fn pki_cert(&mut self, _path: &str, args: &[String]) -> Result<Value, String> {
        Ok(
            json!({"Data": {"Cert": "CERT", "Key": "KEY", "CA": "CA", "CAChain": ["CA"]},
                  "args": args}),
        )
    }
}

/// The `agent_template` target: one input.
pub fn agent_template(data: &[u8]) {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    if crate::engines::agent_config::names_special_files(text) {
        return;
    }
    let (left, right) = if sel & 2 == 0 {
        ("{{", "}}")
    } else {
        ("[[", "]]")
    };
    if let Ok(t) = Template::parse(text, left, right) {
        let _ = t.render(&mut Secrets, sel & 1 == 1);
    }
}
