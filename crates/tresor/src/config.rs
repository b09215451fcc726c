//! The server configuration file: Vault's HCL (or JSON) format, read into typed settings.
//!
//! Unknown keys are reported as warnings, so a Vault config with features Tresor lacks still
//! starts, with one exception: a listener key whose loss would widen who may reach the server
//! (`chroot_namespace`, `proxy_protocol_behavior = "deny_unauthorized"`) stops the server, as
//! do hardening keys that cannot be honoured as written (issue 10, finding 11). Bad values are
//! errors that name the key.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use serde_json::{Map, Value};
use tresor_http::{Cidr, ClientAuth, ForwardedFor, ListenerConfig, TlsSettings};

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

/// A comma-separated string or a list of strings (Vault accepts both for address lists and
/// cipher suites).
fn str_list(v: &Value, key: &str) -> Result<Vec<String>> {
    let items: Vec<String> = match v {
        Value::String(s) => s.split(',').map(|x| x.trim().to_owned()).collect(),
        Value::Array(a) => a
            .iter()
            .map(|x| as_str(x, key).map(|s| s.trim().to_owned()))
            .collect::<Result<_>>()?,
        other => bail!("{key}: expected a comma-separated string or a list, got {other}"),
    };
    Ok(items.into_iter().filter(|s| !s.is_empty()).collect())
}

/// Whether an unimplemented listener key, so set, narrows who may reach the server: ignoring it
/// would silently widen access, so the server refuses to start instead of warning.
fn refused_listener_key(key: &str, v: &Value) -> Option<&'static str> {
    match key {
        // Vault drops connections from outside proxy_protocol_authorized_addrs.
        "proxy_protocol_behavior" if v.as_str() == Some("deny_unauthorized") => {
            Some("the PROXY protocol is not supported, so unauthorized sources would be served")
        }
        // Vault confines the listener to one namespace.
        "chroot_namespace" => {
            Some("namespaces are not supported, so the listener would serve the root namespace")
        }
        _ => None,
    }
}

fn listener(
    b: &Map<String, Value>,
    cwd: &Path,
    warnings: &mut Vec<String>,
) -> Result<ListenerConfig> {
    let mut l = ListenerConfig {
        address: "127.0.0.1:8200".to_owned(),
        ..ListenerConfig::default()
    };
    let mut tls_disable = false;
    let mut tls = TlsSettings::default();
    let (mut cert_file, mut key_file) = (None, None);
    let (mut require_client_cert, mut disable_client_certs) = (false, false);
    let mut xff_addrs: Option<Vec<Cidr>> = None;
    let (mut hop_skips, mut reject_not_authorized, mut reject_not_present) = (0, false, false);
    for (k, v) in b {
        let key = format!("listener.tcp.{k}");
        let key = key.as_str();
        match k.as_str() {
            "address" => l.address = as_str(v, key)?,
            "tls_disable" => tls_disable = as_bool(v, key)?,
            "tls_cert_file" => cert_file = Some(resolve(cwd, &as_str(v, key)?)),
            "tls_key_file" => key_file = Some(resolve(cwd, &as_str(v, key)?)),
            "tls_client_ca_file" => tls.client_ca_file = Some(resolve(cwd, &as_str(v, key)?)),
            "tls_min_version" => tls.min_version = tls_version(v, key)?,
            "tls_max_version" => tls.max_version = tls_version(v, key)?,
            "tls_cipher_suites" => {
                for name in str_list(v, key)? {
                    match tresor_http::cipher_suite(&name) {
                        Some(true) => tls.cipher_suites.push(name),
                        Some(false) => warnings.push(format!(
                            "{key}: {name} is not offered (rustls implements no CBC, RC4, 3DES or RSA key-exchange suites); dropped from the list"
                        )),
                        None => bail!("{key}: unknown cipher suite {name:?} (use Go's names, e.g. TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256)"),
                    }
                }
                if tls.cipher_suites.is_empty() {
                    bail!("{key}: none of the listed cipher suites is offered by Tresor");
                }
            }
            "tls_require_and_verify_client_cert" => require_client_cert = as_bool(v, key)?,
            "tls_disable_client_certs" => disable_client_certs = as_bool(v, key)?,
            "tls_prefer_server_cipher_suites" => warnings.push(format!(
                "{key} ignored: it is deprecated in Vault and has no effect there either"
            )),
            "http_read_header_timeout" => l.timeouts.read_header = duration(v, key)?,
            "http_read_timeout" => l.timeouts.read = duration(v, key)?,
            "http_write_timeout" => l.timeouts.write = duration(v, key)?,
            "http_idle_timeout" => l.timeouts.idle = duration(v, key)?,
            "max_connections" => {
                let n = v
                    .as_u64()
                    .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
                    .filter(|n| *n > 0)
                    .ok_or_else(|| anyhow!("{key}: expected a positive integer, got {v}"))?;
                l.max_connections = Some(usize::try_from(n).unwrap_or(usize::MAX));
            }
            "max_request_size" => {
                // Vault: 0 means the default, a negative number means no limit.
                let n = v
                    .as_i64()
                    .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
                    .ok_or_else(|| anyhow!("{key}: expected an integer, got {v}"))?;
                l.max_request_size = match n {
                    0 => None,
                    n if n < 0 => Some(usize::MAX),
                    n => Some(usize::try_from(n).unwrap_or(usize::MAX)),
                };
            }
            "x_forwarded_for_authorized_addrs" => {
                let addrs = str_list(v, key)?
                    .iter()
                    .map(|a| a.parse::<Cidr>().map_err(|e| anyhow!("{key}: {e}")))
                    .collect::<Result<Vec<_>>>()?;
                if addrs.is_empty() {
                    bail!("{key}: at least one address or CIDR block is required");
                }
                xff_addrs = Some(addrs);
            }
            "x_forwarded_for_hop_skips" => {
                hop_skips = v
                    .as_u64()
                    .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
                    .and_then(|n| usize::try_from(n).ok())
                    .ok_or_else(|| anyhow!("{key}: expected a non-negative integer, got {v}"))?;
            }
            "x_forwarded_for_reject_not_authorized" => reject_not_authorized = as_bool(v, key)?,
            "x_forwarded_for_reject_not_present" => reject_not_present = as_bool(v, key)?,
            other => {
                if let Some(why) = refused_listener_key(other, v) {
                    bail!("{key}: not supported by Tresor ({why}); remove it to start");
                }
                warnings.push(format!("unknown key {key} ignored"));
            }
        }
    }
    l.forwarded_for = match xff_addrs {
        Some(authorized_addrs) => Some(ForwardedFor {
            authorized_addrs,
            hop_skips,
            reject_not_authorized,
            reject_not_present,
        }),
        None => {
            // Without authorized addresses Vault ignores these; a setting that would refuse or
            // rewrite something is refused here rather than silently dropped.
            for (set, name) in [
                (hop_skips > 0, "x_forwarded_for_hop_skips"),
                (
                    reject_not_authorized,
                    "x_forwarded_for_reject_not_authorized",
                ),
                (reject_not_present, "x_forwarded_for_reject_not_present"),
            ] {
                if set {
                    bail!(
                        "listener.tcp.{name} needs listener.tcp.x_forwarded_for_authorized_addrs (which turns X-Forwarded-For handling on)"
                    );
                }
            }
            None
        }
    };
    if tls_disable {
        let tls_only = [
            ("tls_require_and_verify_client_cert", require_client_cert),
            ("tls_cipher_suites", !tls.cipher_suites.is_empty()),
        ];
        for (name, set) in tls_only {
            if set {
                bail!("listener.tcp.{name} cannot be honoured with tls_disable = true");
            }
        }
        return Ok(l);
    }
    tls.cert_file = cert_file.ok_or_else(|| {
        anyhow!("listener.tcp: tls_cert_file must be set (or tls_disable = true)")
    })?;
    tls.key_file = key_file
        .ok_or_else(|| anyhow!("listener.tcp: tls_key_file must be set (or tls_disable = true)"))?;
    let order = |v: &str| if v == "tls13" { 13 } else { 12 };
    let max = if tls.max_version.is_empty() {
        "tls13"
    } else {
        &tls.max_version
    };
    if order(&tls.min_version) > order(max) {
        bail!(
            "listener.tcp.tls_min_version ({:?}) is above listener.tcp.tls_max_version ({max:?})",
            tls.min_version
        );
    }
    tls.client_auth = match (require_client_cert, disable_client_certs) {
        (true, true) => bail!(
            "listener.tcp.tls_require_and_verify_client_cert and listener.tcp.tls_disable_client_certs are mutually exclusive"
        ),
        (true, false) => {
            if tls.client_ca_file.is_none() {
                bail!(
                    "listener.tcp.tls_require_and_verify_client_cert needs listener.tcp.tls_client_ca_file (the CA client certificates must chain to)"
                );
            }
            ClientAuth::Require
        }
        (false, true) => {
            if tls.client_ca_file.is_some() {
                warnings.push(
                    "listener.tcp.tls_client_ca_file is unused: tls_disable_client_certs = true"
                        .into(),
                );
            }
            ClientAuth::Disabled
        }
        (false, false) => ClientAuth::Request,
    };
    l.tls = Some(tls);
    Ok(l)
}

fn tls_version(v: &Value, key: &str) -> Result<String> {
    let s = as_str(v, key)?;
    if !matches!(s.as_str(), "" | "tls12" | "tls13") {
        bail!("{key}: {s:?} is not supported (tls12, tls13)");
    }
    Ok(s)
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

    fn one_listener(body: &str) -> Result<ServerConfig> {
        parse(
            &format!("storage \"inmem\" {{}}\nlistener \"tcp\" {{\n{body}\n}}\n"),
            false,
            Path::new("/srv"),
        )
    }

    const TLS: &str = "tls_cert_file = \"t.crt\"\ntls_key_file = \"t.key\"";

    #[test]
    fn listener_timeouts_cap_and_request_size() {
        // Defaults: Vault's header, read and idle timeouts; a 30 s write stall; the derived cap.
        let c = one_listener("tls_disable = true").unwrap();
        let l = &c.listeners[0];
        assert_eq!(l.timeouts, tresor_http::Timeouts::default());
        assert_eq!(l.timeouts.read_header, Duration::from_secs(10));
        assert_eq!(l.timeouts.read, Duration::from_secs(30));
        assert_eq!(l.timeouts.idle, Duration::from_secs(300));
        assert_eq!(l.max_connections, None);
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);

        let c = one_listener(
            "tls_disable = true\nhttp_read_header_timeout = \"1s\"\nhttp_read_timeout = 5\nhttp_write_timeout = \"0\"\nhttp_idle_timeout = \"1m30s\"\nmax_connections = 8\nmax_request_size = -1",
        )
        .unwrap();
        let l = &c.listeners[0];
        assert_eq!(l.timeouts.read_header, Duration::from_secs(1));
        assert_eq!(l.timeouts.read, Duration::from_secs(5));
        assert_eq!(l.timeouts.write, Duration::ZERO);
        assert_eq!(l.timeouts.idle, Duration::from_secs(90));
        assert_eq!(l.max_connections, Some(8));
        assert_eq!(l.max_request_size, Some(usize::MAX));
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    }

    #[test]
    fn listener_tls_hardening_keys() {
        let c = one_listener(&format!(
            "{TLS}\ntls_client_ca_file = \"ca.pem\"\ntls_require_and_verify_client_cert = true\ntls_max_version = \"tls12\"\ntls_cipher_suites = \"TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA\""
        ))
        .unwrap();
        let t = c.listeners[0].tls.as_ref().unwrap();
        assert_eq!(t.client_auth, ClientAuth::Require);
        assert_eq!(t.client_ca_file, Some(PathBuf::from("/srv/ca.pem")));
        assert_eq!(t.max_version, "tls12");
        assert_eq!(t.cipher_suites, ["TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"]);
        // A suite Go knows but rustls lacks is dropped with a warning, not silently.
        assert!(
            c.warnings
                .iter()
                .any(|w| w.contains("TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA")),
            "{:?}",
            c.warnings
        );

        let c = one_listener(&format!("{TLS}\ntls_disable_client_certs = true")).unwrap();
        let t = c.listeners[0].tls.as_ref().unwrap();
        assert_eq!(t.client_auth, ClientAuth::Disabled);
        let c = one_listener(TLS).unwrap();
        assert_eq!(
            c.listeners[0].tls.as_ref().unwrap().client_auth,
            ClientAuth::Request
        );
    }

    #[test]
    fn listener_forwarded_for() {
        let c = one_listener(
            "tls_disable = true\nx_forwarded_for_authorized_addrs = \"10.0.0.0/8, 192.0.2.7\"\nx_forwarded_for_hop_skips = \"1\"\nx_forwarded_for_reject_not_present = true",
        )
        .unwrap();
        let ff = c.listeners[0].forwarded_for.as_ref().unwrap();
        assert_eq!(
            ff.authorized_addrs,
            [
                "10.0.0.0/8".parse::<Cidr>().unwrap(),
                "192.0.2.7/32".parse().unwrap()
            ]
        );
        assert_eq!(ff.hop_skips, 1);
        assert!(ff.reject_not_present && !ff.reject_not_authorized);
        // JSON configs may give the addresses as a list.
        let c = parse(
            r#"{"storage": {"inmem": {}}, "listener": {"tcp": {"tls_disable": true, "x_forwarded_for_authorized_addrs": ["127.0.0.1", "::1"]}}}"#,
            true,
            Path::new("/"),
        )
        .unwrap();
        assert_eq!(
            c.listeners[0]
                .forwarded_for
                .as_ref()
                .unwrap()
                .authorized_addrs
                .len(),
            2
        );
        assert!(
            one_listener("tls_disable = true").unwrap().listeners[0]
                .forwarded_for
                .is_none()
        );
    }

    /// Issue 10, finding 11: listener keys that harden a deployment are honoured or refused,
    /// never ignored; the error names the key.
    #[test]
    fn listener_keys_that_cannot_be_honoured_name_the_key() {
        let cases = [
            (
                format!("{TLS}\ntls_require_and_verify_client_cert = true"),
                "tls_require_and_verify_client_cert needs listener.tcp.tls_client_ca_file",
            ),
            (
                format!(
                    "{TLS}\ntls_client_ca_file = \"ca.pem\"\ntls_require_and_verify_client_cert = true\ntls_disable_client_certs = true"
                ),
                "mutually exclusive",
            ),
            (
                format!("{TLS}\ntls_cipher_suites = \"TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,TLS_MADE_UP\""),
                "tls_cipher_suites: unknown cipher suite \"TLS_MADE_UP\"",
            ),
            (
                format!("{TLS}\ntls_cipher_suites = \"TLS_RSA_WITH_AES_128_CBC_SHA\""),
                "tls_cipher_suites: none of the listed cipher suites",
            ),
            (
                format!("{TLS}\ntls_max_version = \"tls11\""),
                "tls_max_version",
            ),
            (
                format!("{TLS}\ntls_min_version = \"tls13\"\ntls_max_version = \"tls12\""),
                "tls_min_version (\"tls13\") is above listener.tcp.tls_max_version",
            ),
            (
                "tls_disable = true\ntls_require_and_verify_client_cert = true".into(),
                "tls_require_and_verify_client_cert cannot be honoured with tls_disable",
            ),
            (
                "tls_disable = true\nx_forwarded_for_authorized_addrs = \"juan\"".into(),
                "x_forwarded_for_authorized_addrs: \"juan\" is not an IP address",
            ),
            (
                "tls_disable = true\nx_forwarded_for_authorized_addrs = \"\"".into(),
                "x_forwarded_for_authorized_addrs: at least one",
            ),
            (
                "tls_disable = true\nx_forwarded_for_reject_not_present = true".into(),
                "x_forwarded_for_reject_not_present needs listener.tcp.x_forwarded_for_authorized_addrs",
            ),
            (
                "tls_disable = true\nx_forwarded_for_authorized_addrs = \"10.0.0.0/8\"\nx_forwarded_for_hop_skips = -1".into(),
                "x_forwarded_for_hop_skips",
            ),
            (
                "tls_disable = true\nhttp_read_header_timeout = \"soon\"".into(),
                "listener.tcp.http_read_header_timeout",
            ),
            (
                "tls_disable = true\nmax_connections = 0".into(),
                "listener.tcp.max_connections: expected a positive integer",
            ),
            (
                "tls_disable = true\nproxy_protocol_behavior = \"deny_unauthorized\"".into(),
                "listener.tcp.proxy_protocol_behavior: not supported",
            ),
            (
                "tls_disable = true\nchroot_namespace = \"admin\"".into(),
                "listener.tcp.chroot_namespace: not supported",
            ),
        ];
        for (body, want) in cases {
            let e = format!("{:#}", one_listener(&body).unwrap_err());
            assert!(e.contains(want), "{body}:\n  {e}\n  wanted {want:?}");
        }
        // What is left over is still reported.
        let c = one_listener(
            "tls_disable = true\ncluster_address = \"127.0.0.1:8201\"\nproxy_protocol_behavior = \"use_always\"",
        )
        .unwrap();
        for key in ["cluster_address", "proxy_protocol_behavior"] {
            assert!(
                c.warnings
                    .iter()
                    .any(|w| w.contains(&format!("listener.tcp.{key}"))),
                "{key}: {:?}",
                c.warnings
            );
        }
    }
}
