//! The server configuration file: Vault's HCL (or JSON) format, read into typed settings.
//!
//! Unknown keys are reported as warnings, never errors, so a Vault config with features Tresor
//! lacks still starts. Bad values are errors that name the key.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use serde_json::{Map, Value};
use tresor_http::{ListenerConfig, TlsSettings};

/// Where the server keeps its data.
#[derive(Debug, Clone, PartialEq)]
pub enum StorageConfig {
    /// The embedded redb store in this directory.
    Embedded(PathBuf),
    Inmem,
}

/// The whole server configuration.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub storage: StorageConfig,
    pub listeners: Vec<ListenerConfig>,
    pub api_addr: Option<String>,
    pub cluster_name: Option<String>,
    pub default_lease_ttl: Duration,
    pub max_lease_ttl: Duration,
    pub disable_mlock: bool,
    pub ui: bool,
    pub log_level: String,
    pub log_format: String,
    pub max_request_size: usize,
    /// Warnings about keys that were ignored.
    pub warnings: Vec<String>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        let d = Duration::from_secs(768 * 3600);
        ServerConfig {
            storage: StorageConfig::Inmem,
            listeners: Vec::new(),
            api_addr: None,
            cluster_name: None,
            default_lease_ttl: d,
            max_lease_ttl: d,
            disable_mlock: false,
            ui: false,
            log_level: "info".into(),
            log_format: "standard".into(),
            max_request_size: tresor_http::DEFAULT_MAX_REQUEST_SIZE,
            warnings: Vec::new(),
        }
    }
}

fn as_bool(v: &Value, key: &str) -> Result<bool> {
    match v {
        Value::Bool(b) => Ok(*b),
        Value::String(s) => match s.as_str() {
            "true" | "1" => Ok(true),
            "false" | "0" | "" => Ok(false),
            _ => bail!("{key}: expected a boolean, got {s:?}"),
        },
        Value::Number(n) => Ok(n.as_i64() != Some(0)),
        other => bail!("{key}: expected a boolean, got {other}"),
    }
}

fn as_str(v: &Value, key: &str) -> Result<String> {
    match v {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        other => bail!("{key}: expected a string, got {other}"),
    }
}

fn duration(v: &Value, key: &str) -> Result<Duration> {
    tresor_sdk::duration::from_json(v).map_err(|e| anyhow!("{key}: {e}"))
}

/// Blocks may come as an object (one block) or an array of objects (repeated blocks).
fn blocks(v: &Value) -> Vec<&Map<String, Value>> {
    match v {
        Value::Object(m) => vec![m],
        Value::Array(a) => a.iter().filter_map(Value::as_object).collect(),
        _ => Vec::new(),
    }
}

/// Labelled blocks (`listener "tcp" { ... }`) as objects keyed by label. HCL gives one object;
/// Vault's JSON configs also write them as a list (`"listener": [{"tcp": {...}}]`). Anything
/// that is neither yields no groups, which callers report as a malformed block.
fn block_groups(v: &Value) -> Vec<&Map<String, Value>> {
    match v {
        Value::Object(m) => vec![m],
        Value::Array(a) if a.iter().all(Value::is_object) => {
            a.iter().filter_map(Value::as_object).collect()
        }
        _ => Vec::new(),
    }
}

fn resolve(base: &Path, p: &str) -> PathBuf {
    let p = PathBuf::from(p);
    if p.is_absolute() { p } else { base.join(p) }
}

/// Parses config text. `json` picks the syntax; relative paths resolve against `cwd`.
pub fn parse(text: &str, json: bool, cwd: &Path) -> Result<ServerConfig> {
    let root: Value = if json {
        serde_json::from_str(text).context("parsing JSON config")?
    } else {
        hcl::from_str(text).map_err(|e| anyhow!("parsing HCL config: {e}"))?
    };
    let Value::Object(root) = root else {
        bail!("config must be an object")
    };
    let mut c = ServerConfig::default();
    let mut storage_seen = false;
    for (key, v) in &root {
        match key.as_str() {
            "storage" | "backend" => {
                let groups = block_groups(v);
                if groups.len() > 1 {
                    bail!("{key}: only one storage block is allowed");
                }
                let Some(kinds) = groups.into_iter().next() else {
                    bail!("{key}: expected a block like storage \"embedded\" {{ ... }}")
                };
                let Some((kind, body)) = kinds.iter().next() else {
                    bail!("{key}: missing storage type")
                };
                if kinds.len() > 1 || storage_seen {
                    bail!("{key}: only one storage block is allowed");
                }
                storage_seen = true;
                let body = blocks(body).into_iter().next().cloned().unwrap_or_default();
                c.storage = match kind.as_str() {
                    "embedded" | "file" | "raft" => {
                        let path = body
                            .get("path")
                            .map(|p| as_str(p, &format!("{key}.{kind}.path")))
                            .transpose()?;
                        let path = path
                            .filter(|p| !p.is_empty())
                            .ok_or_else(|| anyhow!("{key} \"{kind}\": 'path' must be set"))?;
                        if kind == "raft" {
                            c.warnings.push("storage \"raft\" is served by the embedded store (single node); raft clustering settings are ignored".into());
                        }
                        for k in body.keys().filter(|k| *k != "path") {
                            c.warnings
                                .push(format!("unknown key {key}.{kind}.{k} ignored"));
                        }
                        StorageConfig::Embedded(resolve(cwd, &path))
                    }
                    "inmem" => StorageConfig::Inmem,
                    other => bail!(
                        "{key}: unknown storage type {other:?} (supported: embedded, file, inmem)"
                    ),
                };
            }
            "listener" => {
                let groups = block_groups(v);
                if groups.is_empty() {
                    bail!("listener: expected listener \"tcp\" {{ ... }}")
                }
                for (kind, body) in groups.into_iter().flatten() {
                    if kind != "tcp" {
                        bail!("listener: unknown listener type {kind:?} (supported: tcp)");
                    }
                    for b in blocks(body) {
                        c.listeners.push(listener(b, cwd, &mut c.warnings)?);
                    }
                }
            }
            "api_addr" => c.api_addr = Some(as_str(v, key)?),
            "cluster_name" => c.cluster_name = Some(as_str(v, key)?),
            "default_lease_ttl" => c.default_lease_ttl = duration(v, key)?,
            "max_lease_ttl" => c.max_lease_ttl = duration(v, key)?,
            "disable_mlock" => c.disable_mlock = as_bool(v, key)?,
            "ui" => c.ui = as_bool(v, key)?,
            "log_level" => {
                let l = as_str(v, key)?.to_lowercase();
                if !matches!(
                    l.as_str(),
                    "trace" | "debug" | "info" | "warn" | "err" | "error"
                ) {
                    bail!("log_level: unknown level {l:?} (trace, debug, info, warn, error)");
                }
                c.log_level = if l == "err" { "error".into() } else { l };
            }
            "log_format" => {
                let f = as_str(v, key)?;
                if !matches!(f.as_str(), "standard" | "json") {
                    bail!("log_format: unknown format {f:?} (standard, json)");
                }
                c.log_format = f;
            }
            "max_request_size" => {
                c.max_request_size = match v {
                    Value::Number(n) => n
                        .as_u64()
                        .ok_or_else(|| anyhow!("max_request_size: expected a positive integer"))?
                        as usize,
                    _ => bail!("max_request_size: expected a positive integer"),
                }
            }
            "cluster_addr"
            | "disable_cache"
            | "pid_file"
            | "telemetry"
            | "seal"
            | "plugin_directory"
            | "disable_clustering"
            | "raw_storage_endpoint"
            | "introspection_endpoint"
            | "enable_response_header_hostname"
            | "enable_response_header_raft_node_id"
            | "license_path"
            | "service_registration"
            | "disable_performance_standby"
            | "cache_size" => {
                c.warnings.push(format!(
                    "config key {key:?} is not supported by Tresor and was ignored"
                ));
            }
            other => c
                .warnings
                .push(format!("unknown config key {other:?} ignored")),
        }
    }
    if c.default_lease_ttl > c.max_lease_ttl {
        bail!(
            "default_lease_ttl ({:?}) cannot be greater than max_lease_ttl ({:?})",
            c.default_lease_ttl,
            c.max_lease_ttl
        );
    }
    if !storage_seen {
        bail!(
            "no storage configured: add storage \"embedded\" {{ path = \"...\" }} (or storage \"inmem\" {{}})"
        );
    }
    if c.listeners.is_empty() {
        bail!("no listener configured: add listener \"tcp\" {{ address = \"127.0.0.1:8200\" }}");
    }
    Ok(c)
}

fn listener(
    b: &Map<String, Value>,
    cwd: &Path,
    warnings: &mut Vec<String>,
) -> Result<ListenerConfig> {
    let mut address = "127.0.0.1:8200".to_owned();
    let mut tls_disable = false;
    let (mut cert, mut key, mut ca, mut min) = (None, None, None, String::new());
    for (k, v) in b {
        match k.as_str() {
            "address" => address = as_str(v, "listener.tcp.address")?,
            "tls_disable" => tls_disable = as_bool(v, "listener.tcp.tls_disable")?,
            "tls_cert_file" => cert = Some(resolve(cwd, &as_str(v, "listener.tcp.tls_cert_file")?)),
            "tls_key_file" => key = Some(resolve(cwd, &as_str(v, "listener.tcp.tls_key_file")?)),
            "tls_client_ca_file" => {
                ca = Some(resolve(cwd, &as_str(v, "listener.tcp.tls_client_ca_file")?))
            }
            "tls_min_version" => min = as_str(v, "listener.tcp.tls_min_version")?,
            other => warnings.push(format!("unknown key listener.tcp.{other} ignored")),
        }
    }
    if !matches!(min.as_str(), "" | "tls12" | "tls13") {
        bail!("listener.tcp.tls_min_version: {min:?} is not supported (tls12, tls13)");
    }
    let tls = if tls_disable {
        None
    } else {
        let cert = cert.ok_or_else(|| {
            anyhow!("listener.tcp: tls_cert_file must be set (or tls_disable = true)")
        })?;
        let key = key.ok_or_else(|| {
            anyhow!("listener.tcp: tls_key_file must be set (or tls_disable = true)")
        })?;
        Some(TlsSettings {
            cert_file: cert,
            key_file: key,
            client_ca_file: ca,
            min_version: min,
        })
    };
    Ok(ListenerConfig { address, tls })
}

/// Reads and parses a config file; `.json` files are JSON, everything else HCL.
pub fn load(path: &Path) -> Result<ServerConfig> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading config file {}", path.display()))?;
    let json = path.extension().is_some_and(|e| e == "json");
    let cwd = std::env::current_dir().context("working directory")?;
    parse(&text, json, &cwd)
        .with_context(|| format!("error loading configuration from {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_vault_style_hcl_config() {
        let c = parse(
            r#"
            storage "file" { path = "data" }
            listener "tcp" {
              address = "127.0.0.1:8201"
              tls_disable = true
            }
            listener "tcp" {
              address = "127.0.0.1:8202"
              tls_cert_file = "/etc/t.crt"
              tls_key_file = "/etc/t.key"
              tls_min_version = "tls13"
            }
            api_addr = "http://127.0.0.1:8201"
            default_lease_ttl = "1h"
            max_lease_ttl = "768h"
            disable_mlock = true
            ui = true
            log_level = "warn"
            something_new = 1
            "#,
            false,
            Path::new("/srv"),
        )
        .unwrap();
        assert_eq!(
            c.storage,
            StorageConfig::Embedded(PathBuf::from("/srv/data"))
        );
        assert_eq!(c.listeners.len(), 2);
        assert!(c.listeners[0].tls.is_none());
        assert_eq!(c.listeners[1].tls.as_ref().unwrap().min_version, "tls13");
        assert_eq!(c.default_lease_ttl, Duration::from_secs(3600));
        assert!(c.disable_mlock && c.ui);
        assert!(
            c.warnings.iter().any(|w| w.contains("something_new")),
            "{:?}",
            c.warnings
        );
    }

    #[test]
    fn json_blocks_may_be_lists() {
        let c = parse(
            r#"{"storage": [{"file": {"path": "d"}}],
                "listener": [{"tcp": {"address": "127.0.0.1:1", "tls_disable": true}},
                             {"tcp": {"address": "127.0.0.1:2", "tls_disable": true}}]}"#,
            true,
            Path::new("/x"),
        )
        .unwrap();
        assert_eq!(c.storage, StorageConfig::Embedded(PathBuf::from("/x/d")));
        assert_eq!(c.listeners.len(), 2);
        let e = parse(
            r#"{"storage": [{"inmem": {}}, {"inmem": {}}], "listener": {"tcp": {"tls_disable": true}}}"#,
            true,
            Path::new("/"),
        )
        .unwrap_err();
        assert!(format!("{e:#}").contains("only one storage block"), "{e:#}");
        let e = parse(
            r#"{"storage": {"inmem": {}}, "listener": 7}"#,
            true,
            Path::new("/"),
        )
        .unwrap_err();
        assert!(format!("{e:#}").contains("listener"), "{e:#}");
    }

    #[test]
    fn backend_alias_and_json() {
        let c = parse(r#"{"backend": {"inmem": {}}, "listener": {"tcp": {"address": "127.0.0.1:1", "tls_disable": "true"}}}"#, true, Path::new("/")).unwrap();
        assert_eq!(c.storage, StorageConfig::Inmem);
    }

    #[test]
    fn bad_configs_name_the_key() {
        // HCL wants a newline between top-level items.
        let cases = [
            (
                "storage \"embedded\" {}\nlistener \"tcp\" { tls_disable = true }",
                "'path' must be set",
            ),
            (
                "storage \"consul\" { path = \"x\" }\nlistener \"tcp\" { tls_disable = true }",
                "unknown storage type",
            ),
            (
                "storage \"inmem\" {}\nlistener \"tcp\" { tls_disable = \"maybe\" }",
                "tls_disable",
            ),
            (
                "storage \"inmem\" {}\nlistener \"tcp\" { }",
                "tls_cert_file must be set",
            ),
            (
                "storage \"inmem\" {}\nlistener \"tcp\" { tls_disable = true }\nmax_lease_ttl = \"soon\"",
                "max_lease_ttl",
            ),
            (
                "storage \"inmem\" {}\nlistener \"tcp\" { tls_disable = true }\ndefault_lease_ttl = \"2h\"\nmax_lease_ttl = \"1h\"",
                "default_lease_ttl",
            ),
            ("listener \"tcp\" { tls_disable = true }", "no storage"),
            ("storage \"inmem\" {}", "no listener"),
            ("storage \"inmem\" { ", "parsing HCL"),
        ];
        for (text, want) in cases {
            let e = format!("{:#}", parse(text, false, Path::new("/")).unwrap_err());
            assert!(e.contains(want), "{text}: {e}");
        }
    }
}
