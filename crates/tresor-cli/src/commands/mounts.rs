//! Mount management: `secrets enable|disable|list|tune|move`, `auth enable|disable|list|tune`
//! and `audit enable|disable|list`, all against `sys/mounts`, `sys/auth`, `sys/remount` and
//! `sys/audit`.

use std::time::Duration;

use serde_json::{Map, Value, json};
use tresor_client::Method;

use super::{
    Cli, CliError, CmdResult, Usage, exact_args, max_args, min_args, mount_path, remote,
    ttl_for_api,
};
use crate::client::Request;
use crate::duration;
use crate::flags::{Kind, Parsed, Spec, flag};
use crate::format;

const TUNABLE: &[Spec] = &[
    flag("description", Kind::Str, "Human-friendly description."),
    flag(
        "default-lease-ttl",
        Kind::Ttl,
        "Default lease TTL for this mount (\"system\" for the server default).",
    ),
    flag(
        "max-lease-ttl",
        Kind::Ttl,
        "Maximum lease TTL for this mount (\"system\" for the server default).",
    ),
    flag(
        "audit-non-hmac-request-keys",
        Kind::Repeat,
        "Request key not HMAC'd by audit devices; may repeat.",
    ),
    flag(
        "audit-non-hmac-response-keys",
        Kind::Repeat,
        "Response key not HMAC'd by audit devices; may repeat.",
    ),
    flag(
        "listing-visibility",
        Kind::Str,
        "\"unauth\" to list the mount in the UI without a token, or \"hidden\".",
    ),
    flag(
        "passthrough-request-headers",
        Kind::Repeat,
        "Request header passed to the backend; may repeat.",
    ),
    flag(
        "allowed-response-headers",
        Kind::Repeat,
        "Response header the backend may set; may repeat.",
    ),
    flag("options", Kind::Map, "Mount option key=value; may repeat."),
    flag(
        "version",
        Kind::Int,
        "Shorthand for -options=version=N (KV).",
    ),
    flag("plugin-version", Kind::Str, "Plugin version to run."),
];

const ENABLE_EXTRA: &[Spec] = &[
    flag(
        "path",
        Kind::Str,
        "Where to mount (default: the type's name).",
    ),
    flag(
        "force-no-cache",
        Kind::Bool,
        "Disable caching for this mount.",
    ),
    flag(
        "local",
        Kind::Bool,
        "Mark the mount as local-only (not replicated).",
    ),
    flag(
        "seal-wrap",
        Kind::Bool,
        "Seal-wrap the mount's critical values.",
    ),
    flag(
        "external-entropy-access",
        Kind::Bool,
        "Give the mount access to the seal's entropy source.",
    ),
];

const TOKEN_TYPE: &[Spec] = &[flag(
    "token-type",
    Kind::Str,
    "Token type for an auth method (service, batch, ...).",
)];

const LIST_FLAGS: &[Spec] = &[flag("detailed", Kind::Bool, "Show every column.")];

fn options(p: &Parsed) -> Option<Map<String, Value>> {
    let mut opts: Map<String, Value> = p
        .map("options")
        .into_iter()
        .map(|(k, v)| (k, Value::String(v)))
        .collect();
    if let Some(v) = p.int("version").filter(|v| *v > 0) {
        opts.insert("version".to_string(), Value::String(v.to_string()));
    }
    if opts.is_empty() { None } else { Some(opts) }
}

/// The `config` object for enable and the body for tune: only settings that were given.
pub fn mount_config(p: &Parsed, with_token_type: bool) -> Map<String, Value> {
    let mut cfg = Map::new();
    for (flag_name, key) in [
        ("default-lease-ttl", "default_lease_ttl"),
        ("max-lease-ttl", "max_lease_ttl"),
    ] {
        if let Some(v) = ttl_for_api(p, flag_name) {
            cfg.insert(key.to_string(), json!(v));
        }
    }
    if p.is_set("force-no-cache") {
        cfg.insert(
            "force_no_cache".to_string(),
            json!(p.bool("force-no-cache")),
        );
    }
    for (flag_name, key) in [
        ("audit-non-hmac-request-keys", "audit_non_hmac_request_keys"),
        (
            "audit-non-hmac-response-keys",
            "audit_non_hmac_response_keys",
        ),
        ("passthrough-request-headers", "passthrough_request_headers"),
        ("allowed-response-headers", "allowed_response_headers"),
    ] {
        if p.is_set(flag_name) {
            cfg.insert(key.to_string(), json!(p.all(flag_name)));
        }
    }
    if let Some(v) = p.str("listing-visibility") {
        cfg.insert("listing_visibility".to_string(), json!(v));
    }
    if let Some(v) = p.str("plugin-version") {
        cfg.insert("plugin_version".to_string(), json!(v));
    }
    if with_token_type && let Some(v) = p.str("token-type") {
        cfg.insert("token_type".to_string(), json!(v));
    }
    cfg
}

/// The body of `secrets enable` / `auth enable`.
pub fn enable_body(kind: &str, p: &Parsed, auth: bool) -> Value {
    let mut body = Map::new();
    body.insert("type".to_string(), json!(kind));
    body.insert("description".to_string(), json!(p.string("description")));
    body.insert("config".to_string(), Value::Object(mount_config(p, auth)));
    body.insert("local".to_string(), json!(p.bool("local")));
    body.insert("seal_wrap".to_string(), json!(p.bool("seal-wrap")));
    body.insert(
        "external_entropy_access".to_string(),
        json!(p.bool("external-entropy-access")),
    );
    if let Some(v) = p.str("plugin-version") {
        body.insert("plugin_version".to_string(), json!(v));
    }
    body.insert(
        "options".to_string(),
        options(p).map(Value::Object).unwrap_or(Value::Null),
    );
    Value::Object(body)
}

/// The body of `secrets tune` / `auth tune`.
pub fn tune_body(p: &Parsed, auth: bool) -> Value {
    let mut body = mount_config(p, auth);
    if let Some(d) = p.str("description") {
        body.insert("description".to_string(), json!(d));
    }
    if let Some(o) = options(p) {
        body.insert("options".to_string(), Value::Object(o));
    }
    Value::Object(body)
}

fn warn_secret(cli: &mut Cli<'_, '_>, s: &Option<crate::secret::Secret>) {
    if let Some(w) = s
        .as_ref()
        .and_then(|s| s.warnings.as_ref())
        .filter(|w| !w.is_empty())
    {
        let block = format::warnings_block(w);
        let _ = std::io::Write::write_all(cli.ctx.stderr, block.as_bytes());
    }
}

// ---- secrets ----

/// `tresor secrets enable`.
pub fn secrets_enable(cli: &mut Cli<'_, '_>, args: &[String]) -> CmdResult {
    let usage = Usage {
        text: "Usage: tresor secrets enable [options] TYPE

  Enables a secrets engine of TYPE at -path (default: TYPE).",
        flags: TUNABLE,
    };
    let p = cli.parse_with(&usage, &[ENABLE_EXTRA], args)?;
    exact_args(&p.args, 1)?;
    let kind = p.args[0].trim().to_string();
    let path = mount_path(p.str("path").filter(|s| !s.is_empty()).unwrap_or(&kind));
    let client = cli.client(&p)?;
    let resp = client
        .secret(
            &Request::new(Method::POST, &format!("sys/mounts/{path}"))
                .json(enable_body(&kind, &p, false)),
        )
        .map_err(|e| remote("enabling", e))?;
    warn_secret(cli, &resp);
    cli.outln(&format!(
        "Success! Enabled the {kind} secrets engine at: {path}"
    ));
    Ok(0)
}

const SECRETS_DISABLE: Usage = Usage {
    text: "Usage: tresor secrets disable [options] PATH

  Disables the secrets engine at PATH, revoking its leases and deleting its data.",
    flags: &[],
};

/// `tresor secrets disable`.
pub fn secrets_disable(cli: &mut Cli<'_, '_>, args: &[String]) -> CmdResult {
    let p = cli.parse(&SECRETS_DISABLE, args)?;
    exact_args(&p.args, 1)?;
    let path = mount_path(&p.args[0]);
    let client = cli.client(&p)?;
    client
        .delete(&format!("sys/mounts/{path}"), &[])
        .map_err(|e| remote(format_args!("disabling secrets engine at {path}"), e))?;
    cli.outln(&format!(
        "Success! Disabled the secrets engine (if it existed) at: {path}"
    ));
    Ok(0)
}

fn ttl_cell(v: Option<&Value>) -> String {
    match v.and_then(Value::as_i64) {
        None | Some(0) => "system".to_string(),
        Some(s) => duration::human(s),
    }
}

fn str_field(m: &Value, k: &str) -> String {
    m.get(k)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

fn bool_field(m: &Value, k: &str) -> String {
    m.get(k)
        .and_then(Value::as_bool)
        .unwrap_or(false)
        .to_string()
}

fn sorted_mounts(data: &Map<String, Value>) -> Vec<(&String, &Value)> {
    let mut v: Vec<(&String, &Value)> = data.iter().filter(|(_, m)| m.is_object()).collect();
    v.sort_by(|a, b| a.0.cmp(b.0));
    v
}

/// The rows of `secrets list` / `auth list`.
pub fn mount_rows(
    data: &Map<String, Value>,
    detailed: bool,
    auth: bool,
) -> (Vec<&'static str>, Vec<Vec<String>>) {
    let header: Vec<&'static str> = match (detailed, auth) {
        (false, false) => vec!["Path", "Type", "Accessor", "Description"],
        (false, true) => vec!["Path", "Type", "Accessor", "Description", "Version"],
        (true, false) => vec![
            "Path",
            "Plugin",
            "Accessor",
            "Default TTL",
            "Max TTL",
            "Force No Cache",
            "Replication",
            "Seal Wrap",
            "External Entropy Access",
            "Options",
            "Description",
            "UUID",
            "Version",
            "Running Version",
            "Running SHA256",
            "Deprecation Status",
        ],
        (true, true) => vec![
            "Path",
            "Plugin",
            "Accessor",
            "Default TTL",
            "Max TTL",
            "Token Type",
            "Replication",
            "Seal Wrap",
            "External Entropy Access",
            "Options",
            "Description",
            "UUID",
            "Version",
            "Running Version",
            "Running SHA256",
            "Deprecation Status",
        ],
    };
    let mut rows = Vec::new();
    for (path, m) in sorted_mounts(data) {
        let cfg = m.get("config").cloned().unwrap_or(Value::Null);
        let row = if !detailed {
            let mut r = vec![
                path.clone(),
                str_field(m, "type"),
                str_field(m, "accessor"),
                str_field(m, "description"),
            ];
            if auth {
                r.push(str_field(m, "plugin_version"));
            }
            r
        } else {
            let replication = if m.get("local").and_then(Value::as_bool) == Some(true) {
                "local"
            } else {
                "replicated"
            };
            let opts = match m.get("options") {
                Some(Value::Null) | None => "map[]".to_string(),
                Some(o) => format::go_value(o),
            };
            let fourth = if auth {
                str_field(&cfg, "token_type")
            } else {
                bool_field(&cfg, "force_no_cache")
            };
            vec![
                path.clone(),
                str_field(m, "type"),
                str_field(m, "accessor"),
                ttl_cell(cfg.get("default_lease_ttl")),
                ttl_cell(cfg.get("max_lease_ttl")),
                fourth,
                replication.to_string(),
                bool_field(m, "seal_wrap"),
                bool_field(m, "external_entropy_access"),
                opts,
                str_field(m, "description"),
                str_field(m, "uuid"),
                str_field(m, "plugin_version"),
                str_field(m, "running_plugin_version"),
                str_field(m, "running_sha256"),
                str_field(m, "deprecation_status"),
            ]
        };
        rows.push(row);
    }
    (header, rows)
}

fn list_mounts(cli: &mut Cli<'_, '_>, args: &[String], auth: bool) -> CmdResult {
    let usage = Usage {
        text: if auth {
            "Usage: tresor auth list [options]

  Lists the enabled auth methods."
        } else {
            "Usage: tresor secrets list [options]

  Lists the enabled secrets engines."
        },
        flags: LIST_FLAGS,
    };
    let p = cli.parse(&usage, args)?;
    max_args(&p.args, 0)?;
    let client = cli.client(&p)?;
    let what = if auth {
        "auth methods"
    } else {
        "secrets engines"
    };
    let path = if auth { "sys/auth" } else { "sys/mounts" };
    let secret = client
        .read(path, &[])
        .map_err(|e| remote(format_args!("listing {what}"), e))?
        .ok_or_else(|| CliError::Remote(format!("Error listing {what}: no data returned")))?;
    let data = secret.data();
    if !cli.is_table() {
        return cli.print_map(&data);
    }
    let (header, rows) = mount_rows(&data, p.bool("detailed"), auth);
    cli.out(&format::table(&header, &rows));
    Ok(0)
}

/// `tresor secrets list`.
pub fn secrets_list(cli: &mut Cli<'_, '_>, args: &[String]) -> CmdResult {
    list_mounts(cli, args, false)
}

fn tune(cli: &mut Cli<'_, '_>, args: &[String], auth: bool) -> CmdResult {
    let usage = Usage {
        text: if auth {
            "Usage: tresor auth tune [options] PATH

  Changes the configuration of the auth method at PATH."
        } else {
            "Usage: tresor secrets tune [options] PATH

  Changes the configuration of the secrets engine at PATH."
        },
        flags: TUNABLE,
    };
    let extra: &[&[Spec]] = if auth { &[TOKEN_TYPE] } else { &[] };
    let p = cli.parse_with(&usage, extra, args)?;
    exact_args(&p.args, 1)?;
    let path = mount_path(&p.args[0]);
    let client = cli.client(&p)?;
    let (api, what) = if auth {
        (format!("sys/auth/{path}tune"), "auth method")
    } else {
        (format!("sys/mounts/{path}tune"), "secrets engine")
    };
    let resp = client
        .write(&api, tune_body(&p, auth))
        .map_err(|e| remote(format_args!("tuning {what} {path}"), e))?;
    warn_secret(cli, &resp);
    cli.outln(&format!("Success! Tuned the {what} at: {path}"));
    Ok(0)
}

/// `tresor secrets tune`.
pub fn secrets_tune(cli: &mut Cli<'_, '_>, args: &[String]) -> CmdResult {
    tune(cli, args, false)
}

const SECRETS_MOVE: Usage = Usage {
    text: "Usage: tresor secrets move [options] SOURCE DESTINATION

  Moves the secrets engine at SOURCE to DESTINATION and waits for the move to finish.",
    flags: &[],
};

/// `tresor secrets move`.
pub fn secrets_move(cli: &mut Cli<'_, '_>, args: &[String]) -> CmdResult {
    let p = cli.parse(&SECRETS_MOVE, args)?;
    exact_args(&p.args, 2)?;
    let (from, to) = (mount_path(&p.args[0]), mount_path(&p.args[1]));
    let client = cli.client(&p)?;
    let resp = client
        .write("sys/remount", json!({"from": from, "to": to}))
        .map_err(|e| remote("moving mount", e))?;
    let id = resp
        .as_ref()
        .and_then(|s| s.data_str("migration_id"))
        .map(str::to_string)
        .ok_or_else(|| {
            CliError::Remote("Error moving mount: no migration id returned".to_string())
        })?;
    // The server moves the mount in the background; poll its status once a second.
    for attempt in 0..600 {
        if attempt > 0 {
            std::thread::sleep(Duration::from_secs(1));
        }
        let status = client
            .read(&format!("sys/remount/status/{id}"), &[])
            .map_err(|e| remote("checking mount move status", e))?;
        let state = status
            .as_ref()
            .and_then(|s| s.data.as_ref())
            .and_then(|d| d.get("migration_info"))
            .and_then(|i| i.get("status"))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        match state.as_str() {
            "success" => {
                cli.outln(&format!(
                    "Success! Finished moving secrets engine {from} to {to}, with migration ID {id}"
                ));
                return Ok(0);
            }
            "failure" => {
                return Err(CliError::Remote(format!(
                    "Failure! Error encountered moving secrets engine {from} to {to}, with migration ID {id}"
                )));
            }
            _ => {}
        }
    }
    Err(CliError::Remote(format!(
        "Timed out waiting for the move of {from} to {to} (migration ID {id})"
    )))
}

// ---- auth ----

/// `tresor auth enable`.
pub fn auth_enable(cli: &mut Cli<'_, '_>, args: &[String]) -> CmdResult {
    let usage = Usage {
        text: "Usage: tresor auth enable [options] TYPE

  Enables an auth method of TYPE at -path (default: TYPE).",
        flags: TUNABLE,
    };
    let p = cli.parse_with(&usage, &[ENABLE_EXTRA, TOKEN_TYPE], args)?;
    exact_args(&p.args, 1)?;
    let kind = p.args[0].trim().to_string();
    let path = mount_path(p.str("path").filter(|s| !s.is_empty()).unwrap_or(&kind));
    let client = cli.client(&p)?;
    let resp = client
        .secret(
            &Request::new(Method::POST, &format!("sys/auth/{path}"))
                .json(enable_body(&kind, &p, true)),
        )
        .map_err(|e| remote(format_args!("enabling {kind} auth"), e))?;
    warn_secret(cli, &resp);
    cli.outln(&format!("Success! Enabled {kind} auth method at: {path}"));
    Ok(0)
}

const AUTH_DISABLE: Usage = Usage {
    text: "Usage: tresor auth disable [options] PATH

  Disables the auth method at PATH, revoking the tokens it issued.",
    flags: &[],
};

/// `tresor auth disable`.
pub fn auth_disable(cli: &mut Cli<'_, '_>, args: &[String]) -> CmdResult {
    let p = cli.parse(&AUTH_DISABLE, args)?;
    exact_args(&p.args, 1)?;
    let path = mount_path(&p.args[0]);
    let client = cli.client(&p)?;
    client
        .delete(&format!("sys/auth/{path}"), &[])
        .map_err(|e| remote(format_args!("disabling auth method at {path}"), e))?;
    cli.outln(&format!(
        "Success! Disabled the auth method (if it existed) at: {path}"
    ));
    Ok(0)
}

/// `tresor auth list`.
pub fn auth_list(cli: &mut Cli<'_, '_>, args: &[String]) -> CmdResult {
    list_mounts(cli, args, true)
}

/// `tresor auth tune`.
pub fn auth_tune(cli: &mut Cli<'_, '_>, args: &[String]) -> CmdResult {
    tune(cli, args, true)
}

// ---- audit ----

const AUDIT_ENABLE: Usage = Usage {
    text: "Usage: tresor audit enable [options] TYPE [CONFIG K=V...]

  Enables an audit device of TYPE (file, socket, syslog) at -path (default: TYPE). The
  K=V arguments are the device's options, e.g. file_path=/var/log/audit.log.",
    flags: &[
        flag(
            "path",
            Kind::Str,
            "Where to enable the device (default: the type).",
        ),
        flag("description", Kind::Str, "Human-friendly description."),
        flag(
            "local",
            Kind::Bool,
            "Mark the device as local-only (not replicated).",
        ),
    ],
};

/// `tresor audit enable`.
pub fn audit_enable(cli: &mut Cli<'_, '_>, args: &[String]) -> CmdResult {
    let p = cli.parse(&AUDIT_ENABLE, args)?;
    min_args(&p.args, 1)?;
    let kind = p.args[0].trim().to_string();
    let opts = cli.kv_data(&p.args[1..])?;
    let options: Map<String, Value> = opts
        .into_iter()
        .map(|(k, v)| {
            let s = match v {
                Value::String(s) => s,
                other => format::go_value(&other),
            };
            (k, Value::String(s))
        })
        .collect();
    let path = mount_path(p.str("path").filter(|s| !s.is_empty()).unwrap_or(&kind));
    let client = cli.client(&p)?;
    let body = json!({
        "type": kind,
        "description": p.string("description"),
        "options": options,
        "local": p.bool("local"),
    });
    client
        .write(&format!("sys/audit/{path}"), body)
        .map_err(|e| remote("enabling audit device", e))?;
    cli.outln(&format!(
        "Success! Enabled the {kind} audit device at: {path}"
    ));
    Ok(0)
}

const AUDIT_DISABLE: Usage = Usage {
    text: "Usage: tresor audit disable [options] PATH

  Disables the audit device at PATH.",
    flags: &[],
};

/// `tresor audit disable`.
pub fn audit_disable(cli: &mut Cli<'_, '_>, args: &[String]) -> CmdResult {
    let p = cli.parse(&AUDIT_DISABLE, args)?;
    exact_args(&p.args, 1)?;
    let path = mount_path(&p.args[0]);
    let client = cli.client(&p)?;
    client
        .delete(&format!("sys/audit/{path}"), &[])
        .map_err(|e| remote("disabling audit device", e))?;
    cli.outln(&format!(
        "Success! Disabled audit device (if it was enabled) at: {path}"
    ));
    Ok(0)
}

/// The rows of `audit list`.
pub fn audit_rows(
    data: &Map<String, Value>,
    detailed: bool,
) -> (Vec<&'static str>, Vec<Vec<String>>) {
    let header = if detailed {
        vec!["Path", "Type", "Description", "Replication", "Options"]
    } else {
        vec!["Path", "Type", "Description"]
    };
    let mut rows = Vec::new();
    for (path, a) in sorted_mounts(data) {
        let mut row = vec![
            path.clone(),
            str_field(a, "type"),
            str_field(a, "description"),
        ];
        if detailed {
            let replication = if a.get("local").and_then(Value::as_bool) == Some(true) {
                "local"
            } else {
                "replicated"
            };
            let mut opts: Vec<String> = a
                .get("options")
                .and_then(Value::as_object)
                .map(|o| {
                    o.iter()
                        .map(|(k, v)| format!("{k}={}", format::go_value(v)))
                        .collect()
                })
                .unwrap_or_default();
            opts.sort();
            row.push(replication.to_string());
            row.push(opts.join(" "));
        }
        rows.push(row);
    }
    (header, rows)
}

/// `tresor audit list`.
pub fn audit_list(cli: &mut Cli<'_, '_>, args: &[String]) -> CmdResult {
    let usage = Usage {
        text: "Usage: tresor audit list [options]

  Lists the enabled audit devices. Exits with 2 when there are none.",
        flags: LIST_FLAGS,
    };
    let p = cli.parse(&usage, args)?;
    max_args(&p.args, 0)?;
    let client = cli.client(&p)?;
    let secret = client
        .read("sys/audit", &[])
        .map_err(|e| remote("retrieving audits", e))?;
    let data = secret.map(|s| s.data()).unwrap_or_default();
    if !cli.is_table() {
        return cli.print_map(&data);
    }
    let (header, rows) = audit_rows(&data, p.bool("detailed"));
    if rows.is_empty() {
        cli.outln("No audit devices are enabled.");
        return Ok(2);
    }
    cli.out(&format::table(&header, &rows));
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flags;

    fn parse(tables: &[&[Spec]], a: &[&str]) -> Parsed {
        let a: Vec<String> = a.iter().map(|s| s.to_string()).collect();
        flags::parse(tables, &a).unwrap()
    }

    #[test]
    fn enable_body_has_vault_shape() {
        let all: &[&[Spec]] = &[TUNABLE, ENABLE_EXTRA, TOKEN_TYPE];
        let p = parse(
            all,
            &[
                "-path=kv2",
                "-version=2",
                "-description=mine",
                "-default-lease-ttl=1h",
                "-max-lease-ttl=system",
                "-local",
            ],
        );
        assert_eq!(
            enable_body("kv", &p, false),
            json!({
                "type": "kv", "description": "mine",
                "config": {"default_lease_ttl": "1h0m0s", "max_lease_ttl": "system"},
                "local": true, "seal_wrap": false, "external_entropy_access": false,
                "options": {"version": "2"}
            })
        );
        let p = parse(all, &[]);
        assert_eq!(enable_body("pki", &p, false)["options"], Value::Null);
        assert_eq!(enable_body("pki", &p, false)["config"], json!({}));
        let p = parse(
            all,
            &[
                "-token-type=batch",
                "-passthrough-request-headers=A,B",
                "-passthrough-request-headers=C",
            ],
        );
        assert_eq!(
            enable_body("userpass", &p, true)["config"],
            json!({"passthrough_request_headers": ["A,B", "C"], "token_type": "batch"})
        );
        // token_type belongs to auth methods only.
        assert_eq!(
            enable_body("kv", &p, false)["config"].get("token_type"),
            None
        );
    }

    #[test]
    fn tune_body_only_sends_given_settings() {
        let all: &[&[Spec]] = &[TUNABLE, TOKEN_TYPE];
        assert_eq!(tune_body(&parse(all, &[]), false), json!({}));
        let p = parse(
            all,
            &["-max-lease-ttl=30m", "-description=", "-options=version=2"],
        );
        assert_eq!(
            tune_body(&p, false),
            json!({"max_lease_ttl": "30m0s", "description": "", "options": {"version": "2"}})
        );
    }

    #[test]
    fn mount_tables() {
        let data = json!({
            "sys/": {"type": "system", "accessor": "system_1", "description": "system endpoints",
                     "local": false, "seal_wrap": true, "options": null,
                     "config": {"default_lease_ttl": 0, "max_lease_ttl": 0, "force_no_cache": false}},
            "cubbyhole/": {"type": "cubbyhole", "accessor": "cubbyhole_2", "description": "per-token private secret storage",
                     "local": true, "options": {"version": "1"},
                     "config": {"default_lease_ttl": 3600, "max_lease_ttl": 0}}
        });
        let (h, rows) = mount_rows(data.as_object().unwrap(), false, false);
        let t = format::table(&h, &rows);
        assert_eq!(
            t,
            "\
Path          Type         Accessor       Description
----          ----         --------       -----------
cubbyhole/    cubbyhole    cubbyhole_2    per-token private secret storage
sys/          system       system_1       system endpoints
"
        );
        let (h, rows) = mount_rows(data.as_object().unwrap(), true, false);
        assert_eq!(h.len(), rows[0].len());
        assert_eq!(rows[0][3], "1h");
        assert_eq!(rows[0][4], "system");
        assert_eq!(rows[0][6], "local");
        assert_eq!(rows[0][9], "map[version:1]");
        assert_eq!(rows[1][6], "replicated");
        assert_eq!(rows[1][7], "true");
        let (h, rows) = mount_rows(data.as_object().unwrap(), false, true);
        assert_eq!(h.last(), Some(&"Version"));
        assert_eq!(rows[0].len(), 5);
    }

    #[test]
    fn audit_table() {
        let data = json!({"file/": {"type": "file", "description": "", "local": false,
                                     "options": {"file_path": "/tmp/a.log", "mode": "0600"}}});
        let (h, rows) = audit_rows(data.as_object().unwrap(), true);
        assert_eq!(h, ["Path", "Type", "Description", "Replication", "Options"]);
        assert_eq!(
            rows[0],
            [
                "file/",
                "file",
                "",
                "replicated",
                "file_path=/tmp/a.log mode=0600"
            ]
        );
        assert!(audit_rows(&Map::new(), false).1.is_empty());
    }
}
