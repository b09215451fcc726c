//! `tresor agent generate-config -type=agent-config -path=secret/app [-exec=CMD] FILE`:
//! a starting configuration for the KV secrets a token can read, as Vault's command writes
//! it: auto-auth from the token helper file, one `env_template` per secret key (named
//! `SECRET_KEY` in capitals) and an `exec` block. A path ending in `/*` takes every secret
//! under it. The file must not exist yet.

use std::fmt::Write as _;
use std::path::PathBuf;

use serde_json::Value;
use tresor_cli::client::{Client, HTTP_FLAGS};
use tresor_cli::flags::{self, FlagError, Kind, Spec, flag};
use tresor_client::env::ProcessEnv;

const FLAGS: &[Spec] = &[
    flag(
        "type",
        Kind::Str,
        "The type of configuration to generate: agent-config.",
    ),
    flag(
        "path",
        Kind::Repeat,
        "A KV path to read secrets from (repeatable); a trailing /* includes everything under it.",
    ),
    flag(
        "exec",
        Kind::Str,
        "The command the exec block runs (default: env).",
    ),
];

const USAGE: &str = "Usage: tresor agent generate-config -type=agent-config [options] [FILE]\n\n  Writes a starting agent configuration (default file: agent.hcl) that renders the KV\n  secrets at the given paths into the environment of a child process.\n\nOptions:\n\n";

/// Upper-case with every character other than a letter or digit turned into `_`.
fn env_name(parts: &[&str]) -> String {
    parts
        .join("_")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect()
}

struct Mount {
    path: String,
    v2: bool,
}

fn mount_of(c: &Client, path: &str) -> Result<Mount, String> {
    let s = c
        .read(&format!("sys/internal/ui/mounts/{path}"), &[])
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("no mount at {path}"))?;
    let d = s.data.unwrap_or_default();
    let mp = d
        .get("path")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    if mp.is_empty() {
        return Err(format!("no mount at {path}"));
    }
    let v2 = d
        .get("options")
        .and_then(|o| o.get("version"))
        .and_then(Value::as_str)
        == Some("2");
    Ok(Mount { path: mp, v2 })
}

/// Secret paths (relative to the mount) under `rel`, recursively.
fn walk(c: &Client, m: &Mount, rel: &str, out: &mut Vec<String>) -> Result<(), String> {
    let list_path = if m.v2 {
        format!("{}metadata/{rel}", m.path)
    } else {
        format!("{}{rel}", m.path)
    };
    let Some(s) = c.list(&list_path).map_err(|e| e.to_string())? else {
        return Ok(());
    };
    let keys = s
        .data
        .and_then(|d| d.get("keys").cloned())
        .and_then(|k| k.as_array().cloned())
        .unwrap_or_default();
    for k in keys.iter().filter_map(Value::as_str) {
        let child = format!("{rel}{k}");
        if k.ends_with('/') {
            walk(c, m, &child, out)?;
        } else {
            out.push(child);
        }
    }
    Ok(())
}

fn quote(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_default()
}

/// Builds the configuration text.
fn generate(c: &Client, paths: &[String], exec: &str) -> Result<String, String> {
    let mut envs = String::new();
    for p in paths {
        let (base, recursive) = match p.strip_suffix("/*") {
            Some(b) => (b.trim_matches('/'), true),
            None => (p.trim_matches('/'), false),
        };
        let m = mount_of(c, base)?;
        let rel = base
            .strip_prefix(m.path.trim_end_matches('/'))
            .unwrap_or("")
            .trim_start_matches('/')
            .to_string();
        let secrets = if recursive {
            let mut v = Vec::new();
            let prefix = if rel.is_empty() {
                rel
            } else {
                format!("{rel}/")
            };
            walk(c, &m, &prefix, &mut v)?;
            v
        } else {
            vec![rel]
        };
        for rel in secrets {
            let read_path = if m.v2 {
                format!("{}data/{rel}", m.path)
            } else {
                format!("{}{rel}", m.path)
            };
            let Some(s) = c.read(&read_path, &[]).map_err(|e| e.to_string())? else {
                return Err(format!("no secret at {read_path}"));
            };
            let mut data = s.data.unwrap_or_default();
            if m.v2 {
                data = data
                    .get("data")
                    .and_then(Value::as_object)
                    .cloned()
                    .unwrap_or_default();
            }
            let mut keys: Vec<&String> = data.keys().collect();
            keys.sort();
            let leaf = rel.rsplit('/').next().unwrap_or(&rel);
            for k in keys {
                let base = if m.v2 { ".Data.data" } else { ".Data" };
                // A key that is not a Go identifier is reached with `index`.
                let field = if !k.is_empty()
                    && !k.starts_with(|c: char| c.is_ascii_digit())
                    && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                {
                    format!("{base}.{k}")
                } else {
                    format!("index {base} {}", quote(k))
                };
                let contents =
                    format!("{{{{ with secret \"{read_path}\" }}}}{{{{ {field} }}}}{{{{ end }}}}");
                let _ = write!(
                    envs,
                    "env_template \"{}\" {{\n  contents             = {}\n  error_on_missing_key = true\n}}\n\n",
                    env_name(&[leaf, k]),
                    quote(&contents)
                );
            }
        }
    }
    let home = std::env::var("HOME").unwrap_or_else(|_| "/root".into());
    let address = c.config().address.clone();
    let command: Vec<String> = exec.split_whitespace().map(quote).collect();
    Ok(format!(
        "auto_auth {{\n\n  method {{\n    type = \"token_file\"\n\n    config {{\n      token_file_path = {}\n    }}\n  }}\n}}\n\ntemplate_config {{\n  static_secret_render_interval = \"5m\"\n  exit_on_retry_failure         = true\n}}\n\nvault {{\n  address = {}\n}}\n\n{envs}exec {{\n  command                   = [{}]\n  restart_on_secret_changes = \"always\"\n  restart_stop_signal       = \"SIGTERM\"\n}}\n",
        quote(&format!("{home}/.vault-token")),
        quote(&address),
        command.join(", ")
    ))
}

/// Runs the subcommand; returns the exit code.
pub fn run(args: &[String]) -> i32 {
    let p = match flags::parse(&[FLAGS, HTTP_FLAGS], args) {
        Ok(p) => p,
        Err(FlagError::Help) => {
            println!("{USAGE}{}", flags::help(&[FLAGS]));
            return 0;
        }
        Err(e) => {
            eprintln!("Error: {e}");
            return 1;
        }
    };
    match p.str("type") {
        Some("agent-config") => {}
        Some(other) => {
            eprintln!("Error: unsupported -type {other:?}: only agent-config is supported");
            return 1;
        }
        None => {
            eprintln!("Error: -type is required (-type=agent-config)");
            return 1;
        }
    }
    let paths = p.all("path");
    if paths.is_empty() {
        eprintln!("Error: at least one -path is required");
        return 1;
    }
    if p.args.len() > 1 {
        eprintln!("Error: too many arguments: expected at most one file name");
        return 1;
    }
    let file = PathBuf::from(p.args.first().map(String::as_str).unwrap_or("agent.hcl"));
    if file.exists() {
        eprintln!("Error: {} already exists", file.display());
        return 1;
    }
    let client = match tresor_cli::client::config(&ProcessEnv, &p)
        .map_err(|e| e.to_string())
        .and_then(|cfg| Client::new(cfg).map_err(|e| e.to_string()))
    {
        Ok(c) => c,
        Err(e) => {
            eprintln!("Error: {e}");
            return 1;
        }
    };
    let text = match generate(&client, &paths, p.str("exec").unwrap_or("env")) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("Error: {e}");
            return 1;
        }
    };
    if let Err(e) = std::fs::write(&file, text) {
        eprintln!("Error: cannot write {}: {e}", file.display());
        return 1;
    }
    println!(
        "Successfully generated \"{}\" configuration file!",
        file.display()
    );
    0
}

#[cfg(test)]
mod tests {
    #[test]
    fn env_names_are_upper_snake() {
        assert_eq!(
            super::env_name(&["my-app", "db.password"]),
            "MY_APP_DB_PASSWORD"
        );
    }
}
