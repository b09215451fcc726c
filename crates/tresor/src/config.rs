//! The server configuration file: Vault's HCL (or JSON) format, read into typed settings.
//!
//! Every key is honoured, ignored as harmless, or refused (issue 12): a stanza Tresor cannot
//! honour (`seal "awskms"`, `ha_storage`, raft clustering, `telemetry`, an
//! unknown key, ...) stops the server with a message naming it, so that no operator believes
//! they have auto-unseal, HA or metrics they do not have. Keys whose absence changes nothing
//! an operator relies on (`plugin_directory`, `disable_clustering`, ...) are accepted with a
//! warning naming them ([`IGNORED_KEYS`]). The same rule holds inside a listener for keys that
//! would widen access (`chroot_namespace`, `proxy_protocol_behavior = "deny_unauthorized"`) or
//! harden TLS (issue 10, finding 11). Bad values are errors that name the key. docs/compat.md
//! lists the decisions.
//!
//! HCL is Vault's HCL 1: one-line blocks with several attributes and maps without commas are
//! accepted ([`tresor_policy::hcl1`]).

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
    /// An etcd cluster (v3 API), shared by every server pointed at it; see docs/etcd.md.
    Etcd(Box<tresor_physical::EtcdConfig>),
}

/// The whole server configuration.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub storage: StorageConfig,
    pub listeners: Vec<ListenerConfig>,
    pub api_addr: Option<String>,
    /// `cluster_addr`: advertised to the other HA nodes as `leader_cluster_address` (Tresor
    /// forwards over `api_addr`; nothing listens here).
    pub cluster_addr: Option<String>,
    /// HA is enabled (the storage stanza's `ha_enabled`, on a storage shared by several
    /// servers): every server runs for leadership; see docs/ha.md.
    pub ha_enabled: bool,
    /// `disable_standby_reads` (OpenBao's key): standbys forward every request instead of
    /// answering reads themselves.
    pub disable_standby_reads: bool,
    pub cluster_name: Option<String>,
    pub default_lease_ttl: Duration,
    pub max_lease_ttl: Duration,
    pub disable_mlock: bool,
    /// `disable_cache`: no read cache in front of a remote store (etcd).
    pub disable_cache: bool,
    /// `cache_size`: entries the read cache of a remote store holds (Vault's default 131072).
    pub cache_size: usize,
    /// Serve the web UI under `/ui/` (docs/ui.md); `-dev` always does.
    pub ui: bool,
    pub log_level: String,
    pub log_format: String,
    pub max_request_size: usize,
    /// `default_max_request_duration`: how long one request may run.
    pub max_request_duration: Option<Duration>,
    /// `pid_file`: where the server writes its process id.
    pub pid_file: Option<PathBuf>,
    /// The `telemetry` stanza (docs/operations.md): how `sys/metrics` renders.
    pub telemetry: TelemetryConfig,
    /// `log_file` and its rotation (`log_rotate_bytes`, `log_rotate_duration`,
    /// `log_rotate_max_files`): the log also goes to this file.
    pub log_file: Option<LogFileConfig>,
    /// Warnings about keys that were ignored.
    pub warnings: Vec<String>,
    /// The top-level keys the file set (`storage` for `backend` too), for [`ServerConfig::merge`].
    pub keys: std::collections::BTreeSet<String>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        let d = Duration::from_secs(768 * 3600);
        ServerConfig {
            storage: StorageConfig::Inmem,
            listeners: Vec::new(),
            api_addr: None,
            cluster_addr: None,
            ha_enabled: false,
            disable_standby_reads: false,
            cluster_name: None,
            default_lease_ttl: d,
            max_lease_ttl: d,
            disable_mlock: false,
            disable_cache: false,
            cache_size: tresor_physical::DEFAULT_CACHE_SIZE,
            ui: false,
            log_level: "info".into(),
            log_format: "standard".into(),
            max_request_size: tresor_http::DEFAULT_MAX_REQUEST_SIZE,
            max_request_duration: None,
            pid_file: None,
            telemetry: TelemetryConfig::default(),
            log_file: None,
            warnings: Vec::new(),
            keys: Default::default(),
        }
    }
}

/// The `telemetry` stanza: Vault's keys for the Prometheus output; sinks that push metrics
/// elsewhere (statsd, statsite, DogStatsD, Circonus, Stackdriver) are refused.
#[derive(Debug, Clone)]
pub struct TelemetryConfig {
    /// How long a metric no longer updated stays in the output (default 24h; 0 turns the
    /// Prometheus format off).
    pub prometheus_retention_time: Duration,
    /// Gauges are not prefixed with the host name.
    pub disable_hostname: bool,
    /// How often the usage gauges are recomputed (default 10m).
    pub usage_gauge_period: Duration,
    /// The first part of every name (default `vault`, which dashboards expect).
    pub metrics_prefix: String,
    /// Beyond Vault: timers also as Prometheus histograms (`<name>_hist`).
    pub prometheus_histograms: bool,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        TelemetryConfig {
            prometheus_retention_time: Duration::from_secs(24 * 3600),
            disable_hostname: false,
            usage_gauge_period: Duration::from_secs(600),
            metrics_prefix: "vault".into(),
            prometheus_histograms: false,
        }
    }
}

/// `log_file` with Vault's rotation keys.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LogFileConfig {
    /// The file (a directory gets `vault.log` in it).
    pub path: PathBuf,
    /// Rotate when the file reaches this size (0: no size limit).
    pub rotate_bytes: u64,
    /// Rotate after this long (default 24h).
    pub rotate_duration: Duration,
    /// How many rotated files to keep: 0 keeps them all, -1 keeps none.
    pub rotate_max_files: i64,
}

fn telemetry(v: &Value, warnings: &mut Vec<String>) -> Result<TelemetryConfig> {
    let mut t = TelemetryConfig::default();
    for b in blocks(v) {
        for (k, v) in b {
            let key = format!("telemetry.{k}");
            let key = key.as_str();
            match k.as_str() {
                "prometheus_retention_time" => t.prometheus_retention_time = duration(v, key)?,
                "disable_hostname" => t.disable_hostname = as_bool(v, key)?,
                "usage_gauge_period" => {
                    t.usage_gauge_period = if v.as_str() == Some("none") {
                        Duration::from_secs(u64::MAX / 4)
                    } else {
                        duration(v, key)?
                    }
                }
                "metrics_prefix" => {
                    let p = as_str(v, key)?;
                    if p.is_empty()
                        || !p
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
                    {
                        bail!(
                            "{key}: {p:?} is not a metric name prefix (letters, digits, _ and .)"
                        );
                    }
                    t.metrics_prefix = p;
                }
                "prometheus_histograms" => t.prometheus_histograms = as_bool(v, key)?,
                "statsite_address"
                | "statsd_address"
                | "dogstatsd_addr"
                | "dogstatsd_tags"
                | "circonus_api_token"
                | "circonus_api_app"
                | "circonus_api_url"
                | "circonus_submission_interval"
                | "circonus_submission_url"
                | "circonus_check_id"
                | "circonus_check_force_metric_activation"
                | "circonus_check_instance_id"
                | "circonus_check_search_tag"
                | "circonus_check_display_name"
                | "circonus_check_tags"
                | "circonus_broker_id"
                | "circonus_broker_select_tag"
                | "stackdriver_project_id"
                | "stackdriver_location"
                | "stackdriver_namespace"
                | "stackdriver_debug_logs" => bail!(
                    "{key}: not supported by Tresor (metrics are served by sys/metrics for Prometheus to scrape; no push sink); remove it to start"
                ),
                "enable_hostname_label"
                | "maximum_gauge_cardinality"
                | "lease_metrics_epsilon"
                | "num_lease_metrics_buckets"
                | "add_lease_metrics_namespace_labels"
                | "add_mount_point_rollback_metrics"
                | "filter_default"
                | "prefix_filter"
                | "usage_gauge_period_seconds" => warnings.push(format!(
                    "{key} ignored: Tresor does not have this metrics option"
                )),
                _ => bail!(
                    "{key}: not supported by Tresor (an unknown telemetry key); remove it to start"
                ),
            }
        }
    }
    Ok(t)
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

/// Top-level keys Tresor accepts without acting on them, and why that is harmless: nothing
/// an operator relies on (who may reach the server, where data or keys live, what is kept)
/// depends on them. Each is reported as a warning naming it.
pub const IGNORED_KEYS: &[(&str, &str)] = &[
    ("plugin_directory", "Tresor runs no external plugins"),
    ("plugin_file_uid", "Tresor runs no external plugins"),
    ("plugin_file_permissions", "Tresor runs no external plugins"),
    ("plugin_tmpdir", "Tresor runs no external plugins"),
    (
        "disable_clustering",
        "there is no cluster port (single node)",
    ),
    (
        "cluster_cipher_suites",
        "there is no cluster port (single node)",
    ),
    (
        "disable_performance_standby",
        "there are no standbys (single node)",
    ),
    (
        "raw_storage_endpoint",
        "sys/raw is not served, so it stays off",
    ),
    (
        "introspection_endpoint",
        "sys/internal/inspect is not served, so it stays off",
    ),
    (
        "enable_response_header_hostname",
        "an informational response header",
    ),
    (
        "enable_response_header_raft_node_id",
        "an informational response header",
    ),
    ("license_path", "Tresor needs no license"),
    (
        "disable_sealwrap",
        "seal wrapping is an HSM feature; values are barrier-encrypted as always",
    ),
    (
        "disable_printable_check",
        "Tresor keeps refusing non-printable characters in paths",
    ),
    (
        "log_requests_level",
        "request logging is the audit devices' job",
    ),
    ("detect_deadlocks", "a debugging aid"),
    (
        "imprecise_lease_role_tracking",
        "lease counting by role is not kept",
    ),
    (
        "user_lockout",
        "no auth method Tresor has (token) locks users out",
    ),
];

/// Top-level keys that name a feature Tresor lacks and whose absence an operator would not
/// notice: the server refuses to start rather than pretend. The text says what is missing.
fn refused_key(key: &str) -> Option<&'static str> {
    Some(match key {
        "service_registration" => "service registration (Consul, Kubernetes) is not implemented",
        "entropy" => "entropy augmentation is not implemented",
        "replication"
        | "sentinel"
        | "kms_library"
        | "hcp_link"
        | "reporting"
        | "administrative_namespace_path"
        | "experiments" => "a Vault Enterprise, HCP or experimental feature Tresor does not have",
        _ => return None,
    })
}

fn refuse(key: &str, why: &str) -> anyhow::Error {
    anyhow!(
        "{key}: not supported by Tresor ({why}); remove it to start (docs/compat.md lists what is supported)"
    )
}

/// Parses HCL, accepting Vault's HCL 1 forms; errors give the position as written.
fn parse_hcl(text: &str) -> Result<Value> {
    let located = |e: hcl::Error, normalized: Option<&tresor_policy::hcl1::Normalized>| match e {
        hcl::Error::Parse(p) => {
            let loc = p.location();
            let (line, column) = match normalized {
                Some(n) => tresor_policy::hcl1::line_column(text, n.original_offset(loc.offset())),
                None => (loc.line(), loc.column()),
            };
            anyhow!(
                "parsing HCL config: syntax error on line {line}, column {column}: {}",
                p.message().replace('\n', " ")
            )
        }
        other => anyhow!("parsing HCL config: {other}"),
    };
    // The parser's time grows exponentially with nesting on some invalid input (issue 12).
    if let Some(at) = tresor_policy::hcl1::too_deep(text) {
        let (line, column) = tresor_policy::hcl1::line_column(text, at);
        bail!(
            "parsing HCL config: syntax error on line {line}, column {column}: nested more than {} levels deep",
            tresor_policy::hcl1::MAX_PARSE_NESTING
        );
    }
    let first = match hcl::from_str(text) {
        Ok(v) => return Ok(v),
        Err(e) => e,
    };
    let normalized = tresor_policy::hcl1::normalize(text);
    if !normalized.changed() {
        return Err(located(first, None));
    }
    hcl::from_str(&normalized.text).map_err(|e| located(e, Some(&normalized)))
}

/// The `seal` stanza: only Shamir (Tresor's only seal) may be named.
fn seal(v: &Value) -> Result<()> {
    let groups = block_groups(v);
    if groups.is_empty() {
        bail!("seal: expected a block like seal \"shamir\" {{}}");
    }
    let kinds: Vec<(&String, &Value)> = groups.into_iter().flatten().collect();
    if kinds.len() > 1 {
        return Err(refuse(
            "seal",
            "one seal only: seal high availability and seal migration need auto-unseal, and Tresor's seal is Shamir",
        ));
    }
    for (kind, body) in kinds {
        if kind != "shamir" {
            return Err(refuse(
                &format!("seal \"{kind}\""),
                "auto-unseal is not implemented: the only seal is Shamir, unsealed with key shares (supported: seal \"shamir\" {}, or no seal stanza)",
            ));
        }
        if let Some(k) = blocks(body).iter().flat_map(|b| b.keys()).next() {
            return Err(refuse(
                &format!("seal.shamir.{k}"),
                "the Shamir seal takes no settings",
            ));
        }
    }
    Ok(())
}

/// Raft settings that only tune Raft's log and elections, which a single node on the embedded
/// store does not have: ignored with a warning.
const RAFT_TUNING_KEYS: &[&str] = &[
    "node_id",
    "performance_multiplier",
    "trailing_logs",
    "snapshot_threshold",
    "snapshot_interval",
];

/// The settings of a `storage "etcd"` or `ha_storage "etcd"` block (Vault's keys; values may
/// be strings, numbers or booleans). Errors name the stanza and the key.
fn etcd(key: &str, body: &Map<String, Value>) -> Result<tresor_physical::EtcdConfig> {
    let mut settings = Vec::new();
    for (k, v) in body {
        let text = match v {
            Value::String(s) => s.clone(),
            Value::Bool(b) => b.to_string(),
            Value::Number(n) => n.to_string(),
            _ => bail!("{key}.etcd.{k}: expected a string, number or boolean"),
        };
        settings.push((k.as_str(), text));
    }
    tresor_physical::EtcdConfig::from_settings(settings.iter().map(|(k, v)| (*k, v.as_str())))
        .map_err(|e| anyhow!("{key}.etcd.{e}"))
}

/// `ha_storage "etcd"`: validated, then refused: the embedded store is local to one server,
/// so a lock elsewhere would elect an active node among servers that do not share data.
fn ha_storage(key: &str, v: &Value) -> Result<()> {
    let groups = block_groups(v);
    let Some((kind, body)) = groups.into_iter().flatten().next() else {
        bail!("{key}: expected a block like {key} \"etcd\" {{ ... }}")
    };
    if kind != "etcd" {
        return Err(refuse(
            &format!("{key} \"{kind}\""),
            "high availability runs on etcd only: storage \"etcd\" with ha_enabled = \"true\"",
        ));
    }
    let body = blocks(body).into_iter().next().cloned().unwrap_or_default();
    etcd(key, &body)?;
    Err(refuse(
        &format!("{key} \"etcd\""),
        "the embedded store is local to one server, so servers electing a leader through etcd would not share their data; put the data on etcd too: storage \"etcd\" { ha_enabled = \"true\" } (a single server needs no ha_storage)",
    ))
}

/// A storage stanza: `embedded`/`file`/`raft` (single node) take `path`, `inmem` nothing.
fn storage(
    key: &str,
    kind: &str,
    body: &Map<String, Value>,
    cwd: &Path,
    warnings: &mut Vec<String>,
) -> Result<StorageConfig> {
    let supported = "supported: storage \"embedded\", \"file\" or \"raft\" with path (one node), storage \"etcd\" (one or several servers), or storage \"inmem\"";
    match kind {
        "embedded" | "file" | "raft" => {
            for k in body.keys().filter(|k| *k != "path") {
                if kind == "raft" && RAFT_TUNING_KEYS.contains(&k.as_str()) {
                    warnings.push(format!(
                        "{key}.raft.{k} ignored: it tunes Raft's log or elections, which a single node on the embedded store does not have"
                    ));
                    continue;
                }
                let why = match (kind, k.as_str()) {
                    ("raft", "retry_join") => {
                        "Raft clustering is not implemented: the embedded store serves one node, and retry_join would join others".to_string()
                    }
                    ("raft", _) => format!(
                        "Raft clustering is not implemented: the embedded store serves one node ({supported}; ignored on one node: {})",
                        RAFT_TUNING_KEYS.join(", ")
                    ),
                    _ => format!("unknown setting ({supported})"),
                };
                return Err(refuse(&format!("{key}.{kind}.{k}"), &why));
            }
            let path = body
                .get("path")
                .map(|p| as_str(p, &format!("{key}.{kind}.path")))
                .transpose()?
                .filter(|p| !p.is_empty())
                .ok_or_else(|| anyhow!("{key} \"{kind}\": 'path' must be set"))?;
            if kind == "raft" {
                warnings.push(
                    "storage \"raft\" is served by the embedded store on this one node".into(),
                );
            }
            Ok(StorageConfig::Embedded(resolve(cwd, &path)))
        }
        "etcd" => Ok(StorageConfig::Etcd(Box::new(etcd(key, body)?))),
        "inmem" => match body.keys().next() {
            Some(k) => Err(refuse(
                &format!("{key}.inmem.{k}"),
                "storage \"inmem\" takes no settings",
            )),
            None => Ok(StorageConfig::Inmem),
        },
        other => Err(refuse(
            &format!("{key} \"{other}\""),
            &format!("unknown storage type {other:?}; {supported}"),
        )),
    }
}

impl ServerConfig {
    /// Lays a later config file over this one, as Vault does with several `-config` files:
    /// listeners add up, and every other key the later file sets replaces this one's.
    pub fn merge(&mut self, later: ServerConfig) {
        for key in &later.keys {
            match key.as_str() {
                "storage" => self.storage = later.storage.clone(),
                "api_addr" => self.api_addr = later.api_addr.clone(),
                "cluster_addr" => self.cluster_addr = later.cluster_addr.clone(),
                "disable_standby_reads" => self.disable_standby_reads = later.disable_standby_reads,
                "cluster_name" => self.cluster_name = later.cluster_name.clone(),
                "default_lease_ttl" => self.default_lease_ttl = later.default_lease_ttl,
                "max_lease_ttl" => self.max_lease_ttl = later.max_lease_ttl,
                "default_max_request_duration" => {
                    self.max_request_duration = later.max_request_duration
                }
                "disable_mlock" => self.disable_mlock = later.disable_mlock,
                "disable_cache" => self.disable_cache = later.disable_cache,
                "cache_size" => self.cache_size = later.cache_size,
                "ui" => self.ui = later.ui,
                "log_level" => self.log_level = later.log_level.clone(),
                "log_format" => self.log_format = later.log_format.clone(),
                "max_request_size" => self.max_request_size = later.max_request_size,
                "pid_file" => self.pid_file = later.pid_file.clone(),
                "telemetry" => self.telemetry = later.telemetry.clone(),
                // Key by key: a later file that only changes the rotation keeps the file.
                "log_file"
                | "log_rotate_bytes"
                | "log_rotate_duration"
                | "log_rotate_max_files" => {
                    if let Some(l) = &later.log_file {
                        let mine = self.log_file.get_or_insert_with(default_log_file);
                        match key.as_str() {
                            "log_file" => mine.path = l.path.clone(),
                            "log_rotate_bytes" => mine.rotate_bytes = l.rotate_bytes,
                            "log_rotate_duration" => mine.rotate_duration = l.rotate_duration,
                            _ => mine.rotate_max_files = l.rotate_max_files,
                        }
                    }
                }
                _ => {}
            }
        }
        self.listeners.extend(later.listeners);
        self.warnings.extend(later.warnings);
        self.keys.extend(later.keys);
    }

    /// What a whole configuration needs: storage, a listener, and TTLs in order.
    pub fn validate(&self) -> Result<()> {
        if self.default_lease_ttl > self.max_lease_ttl {
            bail!(
                "default_lease_ttl ({:?}) cannot be greater than max_lease_ttl ({:?})",
                self.default_lease_ttl,
                self.max_lease_ttl
            );
        }
        if !self.keys.contains("storage") {
            bail!(
                "no storage configured: add storage \"embedded\" {{ path = \"...\" }} (or storage \"inmem\" {{}})"
            );
        }
        if self.listeners.is_empty() {
            bail!(
                "no listener configured: add listener \"tcp\" {{ address = \"127.0.0.1:8200\" }}"
            );
        }
        Ok(())
    }
}

/// Parses a whole configuration in one text. `json` picks the syntax; relative paths resolve
/// against `cwd`. Used by the tests and by the fuzz target (fuzz/fuzz_targets/server_config.rs).
#[cfg_attr(not(test), allow(dead_code))]
pub fn parse(text: &str, json: bool, cwd: &Path) -> Result<ServerConfig> {
    let c = parse_part(text, json, cwd)?;
    c.validate()?;
    Ok(c)
}

/// Parses one config file, which may hold only part of the configuration.
fn parse_part(text: &str, json: bool, cwd: &Path) -> Result<ServerConfig> {
    let root: Value = if json {
        serde_json::from_str(text).context("parsing JSON config")?
    } else {
        parse_hcl(text)?
    };
    let Value::Object(root) = root else {
        bail!("config must be an object")
    };
    let mut c = ServerConfig::default();
    let mut storage_seen = false;
    for (key, v) in &root {
        c.keys.insert(if key == "backend" {
            "storage".to_owned()
        } else {
            key.clone()
        });
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
                c.storage = storage(key, kind, &body, cwd, &mut c.warnings)?;
                if let StorageConfig::Etcd(e) = &c.storage {
                    c.ha_enabled = e.ha_enabled;
                }
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
            "seal" => seal(v)?,
            "ha_storage" | "ha_backend" => ha_storage(key, v)?,
            "api_addr" => c.api_addr = Some(as_str(v, key)?),
            "cluster_addr" => c.cluster_addr = Some(as_str(v, key)?),
            "disable_standby_reads" => c.disable_standby_reads = as_bool(v, key)?,
            "cluster_name" => c.cluster_name = Some(as_str(v, key)?),
            "default_lease_ttl" => c.default_lease_ttl = duration(v, key)?,
            "max_lease_ttl" => c.max_lease_ttl = duration(v, key)?,
            "default_max_request_duration" => {
                let d = duration(v, key)?;
                c.max_request_duration = (!d.is_zero()).then_some(d);
            }
            "disable_mlock" => c.disable_mlock = as_bool(v, key)?,
            "disable_cache" => c.disable_cache = as_bool(v, key)?,
            "cache_size" => {
                c.cache_size = v
                    .as_u64()
                    .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
                    .filter(|n| *n > 0 && *n <= 1 << 26)
                    .and_then(|n| usize::try_from(n).ok())
                    .ok_or_else(|| {
                        anyhow!("{key}: expected a number of entries from 1 to 67108864, got {v}")
                    })?
            }
            "telemetry" => c.telemetry = telemetry(v, &mut c.warnings)?,
            "log_file" => {
                let p = as_str(v, key)?;
                if !p.is_empty() {
                    // Vault's rule: a directory gets vault.log, a name without an
                    // extension gets .log.
                    let mut path = resolve(cwd, &p);
                    if p.ends_with('/') || path.is_dir() {
                        path = path.join("vault.log");
                    } else if path.extension().is_none() {
                        path.set_extension("log");
                    }
                    c.log_file.get_or_insert_with(default_log_file).path = path;
                }
            }
            "log_rotate_bytes" => {
                c.log_file.get_or_insert_with(default_log_file).rotate_bytes = v
                    .as_u64()
                    .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
                    .ok_or_else(|| anyhow!("{key}: expected a non-negative integer, got {v}"))?
            }
            "log_rotate_duration" => {
                c.log_file
                    .get_or_insert_with(default_log_file)
                    .rotate_duration = duration(v, key)?
            }
            "log_rotate_max_files" => {
                let n = v
                    .as_i64()
                    .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
                    .filter(|n| *n >= -1)
                    .ok_or_else(|| anyhow!("{key}: expected an integer of at least -1, got {v}"))?;
                c.log_file
                    .get_or_insert_with(default_log_file)
                    .rotate_max_files = n;
            }
            "ui" => c.ui = as_bool(v, key)?,
            "pid_file" => {
                let p = as_str(v, key)?;
                if !p.is_empty() {
                    c.pid_file = Some(resolve(cwd, &p));
                }
            }
            "log_level" => c.log_level = log_level(&as_str(v, key)?).context("log_level")?,
            "log_format" => c.log_format = log_format(&as_str(v, key)?).context("log_format")?,
            "max_request_size" => {
                c.max_request_size = match v {
                    Value::Number(n) => n
                        .as_u64()
                        .ok_or_else(|| anyhow!("max_request_size: expected a positive integer"))?
                        as usize,
                    _ => bail!("max_request_size: expected a positive integer"),
                }
            }
            other => {
                if let Some((_, why)) = IGNORED_KEYS.iter().find(|(k, _)| *k == other) {
                    c.warnings
                        .push(format!("config key {other:?} ignored: {why}"));
                } else if let Some(why) = refused_key(other) {
                    return Err(refuse(other, why));
                } else {
                    return Err(refuse(
                        other,
                        "an unknown key; a typo, or a feature Tresor does not have",
                    ));
                }
            }
        }
    }
    Ok(c)
}

/// A log level as Vault spells them (`err` is `error`).
pub fn log_level(l: &str) -> Result<String> {
    let l = l.trim().to_lowercase();
    match l.as_str() {
        "trace" | "debug" | "info" | "warn" | "error" => Ok(l),
        "err" => Ok("error".into()),
        "warning" => Ok("warn".into()),
        _ => bail!("unknown level {l:?} (trace, debug, info, warn, error)"),
    }
}

/// A log format: `standard` or `json`.
pub fn log_format(f: &str) -> Result<String> {
    let f = f.trim().to_lowercase();
    match f.as_str() {
        "standard" | "json" => Ok(f),
        _ => bail!("unknown format {f:?} (standard, json)"),
    }
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
fn default_log_file() -> LogFileConfig {
    LogFileConfig {
        rotate_duration: Duration::from_secs(24 * 3600),
        ..LogFileConfig::default()
    }
}

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
            "telemetry" => {
                for b in blocks(v) {
                    for (k, v) in b {
                        match k.as_str() {
                            "unauthenticated_metrics_access" => {
                                l.unauthenticated_metrics_access =
                                    as_bool(v, &format!("{key}.{k}"))?
                            }
                            _ => warnings.push(format!("unknown key {key}.{k} ignored")),
                        }
                    }
                }
            }
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

/// Reads one config file; `.json` files are JSON, everything else HCL.
fn load_part(path: &Path, cwd: &Path) -> Result<ServerConfig> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading config file {}", path.display()))?;
    let json = path.extension().is_some_and(|e| e == "json");
    parse_part(&text, json, cwd)
        .with_context(|| format!("error loading configuration from {}", path.display()))
}

/// Lays the server's `-log-file`, `-log-rotate-bytes`, `-log-rotate-duration` and
/// `-log-rotate-max-files` flags (as `(config key, value)` pairs) over the configuration: they
/// mean what the config keys of the same names mean, and win over them.
pub fn overlay_log_flags(cfg: &mut ServerConfig, flags: &[(String, String)]) -> Result<()> {
    if flags.is_empty() {
        return Ok(());
    }
    let cwd = std::env::current_dir().context("working directory")?;
    let mut obj = Map::new();
    for (k, v) in flags {
        obj.insert(k.clone(), Value::String(v.clone()));
    }
    let part = parse_part(&Value::Object(obj).to_string(), true, &cwd)
        .context("the -log-file and -log-rotate-* flags")?;
    cfg.merge(part);
    Ok(())
}

/// Reads the `-config` files in order, each laid over the ones before ([`ServerConfig::merge`]),
/// and checks the result is a whole configuration.
pub fn load_all(paths: &[PathBuf]) -> Result<ServerConfig> {
    let cwd = std::env::current_dir().context("working directory")?;
    let mut merged: Option<ServerConfig> = None;
    for p in paths {
        let c = load_part(p, &cwd)?;
        match &mut merged {
            None => merged = Some(c),
            Some(m) => m.merge(c),
        }
    }
    let c = merged.context("no configuration files")?;
    c.validate().with_context(|| {
        let names: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
        format!("error loading configuration from {}", names.join(", "))
    })?;
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 20: a later file that sets some log-file keys keeps the others; a name without
    /// an extension gets `.log`, as in Vault.
    #[test]
    fn log_file_keys_merge_one_by_one_and_get_an_extension() {
        let cwd = Path::new("/srv");
        let mut a = parse_part(
            "log_file = \"logs/tresor\"\nlog_rotate_bytes = 100\n",
            false,
            cwd,
        )
        .unwrap();
        let b = parse_part("log_rotate_max_files = 3\n", false, cwd).unwrap();
        a.merge(b);
        let f = a.log_file.unwrap();
        assert_eq!(f.path, Path::new("/srv/logs/tresor.log"));
        assert_eq!((f.rotate_bytes, f.rotate_max_files), (100, 3));
        assert_eq!(f.rotate_duration, Duration::from_secs(24 * 3600));
        let c = parse_part("log_file = \"/var/log/t.txt\"\n", false, cwd).unwrap();
        assert_eq!(c.log_file.unwrap().path, Path::new("/var/log/t.txt"));
    }

    /// Issue 12: the HCL parser backtracks exponentially through some deeply nested invalid
    /// input (found by fuzzing); nesting past `hcl1::MAX_PARSE_NESTING` is refused first.
    #[test]
    fn deep_nesting_is_refused_before_the_parser_runs() {
        let text = format!("ui = true\nx = {}", "a/{{b.c = d/".repeat(30));
        let started = std::time::Instant::now();
        let e = parse(&text, false, Path::new("/")).unwrap_err().to_string();
        assert!(
            e.contains("line 2") && e.contains("nested more than 8"),
            "{e}"
        );
        assert!(started.elapsed() < std::time::Duration::from_secs(2));
    }

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
            disable_cache = true
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
        // Honoured now (the read cache in front of etcd), so not warned about.
        assert!(c.disable_cache);
        assert!(
            !c.warnings.iter().any(|w| w.contains("disable_cache")),
            "{:?}",
            c.warnings
        );
        let sized = with_base("cache_size = 1000").unwrap();
        assert_eq!((sized.cache_size, sized.disable_cache), (1000, false));
        for bad in ["cache_size = 0", "cache_size = \"many\""] {
            let e = with_base(bad).unwrap_err().to_string();
            assert!(e.contains("cache_size"), "{e}");
        }
    }

    fn with_base(extra: &str) -> Result<ServerConfig> {
        parse(
            &format!(
                "storage \"embedded\" {{\n  path = \"d\"\n}}\nlistener \"tcp\" {{\n  address = \"127.0.0.1:8200\"\n  tls_disable = true\n}}\n{extra}\n"
            ),
            false,
            Path::new("/srv"),
        )
    }

    /// Issue 12: a stanza Tresor cannot honour stops the server, and the message names it and
    /// says what is supported; nothing is half-honoured.
    #[test]
    fn stanzas_tresor_cannot_honour_are_refused_by_name() {
        let cases = [
            (
                "seal \"awskms\" {\n  region = \"eu-west-1\"\n  kms_key_id = \"k\"\n}",
                &["seal \"awskms\": not supported", "Shamir"][..],
            ),
            (
                "seal \"transit\" {\n  address = \"https://v:8200\"\n}",
                &["seal \"transit\"", "seal \"shamir\""],
            ),
            (
                "seal \"shamir\" {}\nseal \"pkcs11\" {\n  lib = \"x\"\n}",
                &["seal: not supported", "one seal only"],
            ),
            (
                "ha_storage \"consul\" {\n  address = \"127.0.0.1:8500\"\n}",
                &["ha_storage \"consul\": not supported", "etcd only"],
            ),
            (
                "ha_backend \"consul\" {\n  address = \"x\"\n}",
                &["ha_backend \"consul\": not supported"],
            ),
            (
                "telemetry {\n  statsite_address = \"127.0.0.1:8125\"\n}",
                &["telemetry.statsite_address: not supported", "sys/metrics"],
            ),
            (
                "telemetry {\n  prometheus_retention = \"1h\"\n}",
                &[
                    "telemetry.prometheus_retention: not supported",
                    "unknown telemetry key",
                ],
            ),
            (
                "service_registration \"consul\" {\n  address = \"x\"\n}",
                &["service_registration: not supported"],
            ),
            (
                "something_new = 42",
                &["something_new: not supported", "unknown key"],
            ),
            (
                "listner \"tcp\" {\n  address = \"x\"\n}",
                &["listner: not supported"],
            ),
        ];
        for (extra, wants) in cases {
            let e = format!("{:#}", with_base(extra).unwrap_err());
            for want in wants {
                assert!(e.contains(want), "{extra}:\n  {e}\n  wanted {want:?}");
            }
            assert!(e.contains("remove it to start"), "{e}");
        }
        // Issue 20: telemetry and log_file are honoured; a bad rotation count is an error.
        let c = with_base(
            "telemetry {\n  prometheus_retention_time = \"30s\"\n  disable_hostname = true\n  usage_gauge_period = \"1m\"\n  metrics_prefix = \"tresor\"\n}\nlog_file = \"/var/log/tresor/\"\nlog_rotate_bytes = 1048576\nlog_rotate_max_files = 3",
        )
        .unwrap();
        assert_eq!(
            c.telemetry.prometheus_retention_time,
            Duration::from_secs(30)
        );
        assert!(c.telemetry.disable_hostname);
        assert_eq!(c.telemetry.usage_gauge_period, Duration::from_secs(60));
        assert_eq!(c.telemetry.metrics_prefix, "tresor");
        let f = c.log_file.unwrap();
        assert_eq!(f.path, PathBuf::from("/var/log/tresor/vault.log"));
        assert_eq!((f.rotate_bytes, f.rotate_max_files), (1048576, 3));
        assert_eq!(f.rotate_duration, Duration::from_secs(24 * 3600));
        let e = format!("{:#}", with_base("log_rotate_max_files = -2").unwrap_err());
        assert!(
            e.contains("log_rotate_max_files") && e.contains("at least -1"),
            "{e}"
        );
        // Raft: one node is served by the embedded store; clustering is refused by name.
        let raft = |body: &str| {
            parse(
                &format!(
                    "storage \"raft\" {{\n  path = \"/var/raft\"\n{body}\n}}\nlistener \"tcp\" {{\n  tls_disable = true\n}}\n"
                ),
                false,
                Path::new("/"),
            )
        };
        let c = raft("  node_id = \"node-1\"\n  performance_multiplier = 1").unwrap();
        assert_eq!(
            c.storage,
            StorageConfig::Embedded(PathBuf::from("/var/raft"))
        );
        for key in ["node_id", "performance_multiplier"] {
            assert!(
                c.warnings
                    .iter()
                    .any(|w| w.contains(&format!("raft.{key} ignored"))),
                "{key}: {:?}",
                c.warnings
            );
        }
        for (body, want) in [
            (
                "  retry_join {\n    leader_api_addr = \"http://10.0.0.2:8200\"\n  }",
                "storage.raft.retry_join: not supported",
            ),
            (
                "  autopilot_redundancy_zone = \"a\"",
                "storage.raft.autopilot_redundancy_zone",
            ),
            ("  max_entry_size = 2097152", "storage.raft.max_entry_size"),
        ] {
            let e = format!("{:#}", raft(body).unwrap_err());
            assert!(e.contains(want) && e.contains("one node"), "{body}: {e}");
        }
        // Unknown settings inside a storage block are refused too.
        let e = format!(
            "{:#}",
            parse(
                "storage \"file\" {\n  path = \"d\"\n  pathh = \"e\"\n}\nlistener \"tcp\" {\n  tls_disable = true\n}",
                false,
                Path::new("/")
            )
            .unwrap_err()
        );
        assert!(e.contains("storage.file.pathh: not supported"), "{e}");
    }

    /// Issue 12: keys that change nothing an operator relies on are accepted, with a warning,
    /// and a Shamir seal stanza is what Tresor does anyway.
    #[test]
    fn harmless_keys_keep_working() {
        let c = with_base(
            "ui = true\ndisable_mlock = true\napi_addr = \"https://t:8200\"\nlog_level = \"err\"\nlog_format = \"json\"\npid_file = \"run/tresor.pid\"\ncluster_name = \"c\"\ndefault_max_request_duration = \"30s\"\nplugin_directory = \"/p\"\ndisable_clustering = true\nraw_storage_endpoint = true\nseal \"shamir\" {}",
        )
        .unwrap();
        assert_eq!(c.log_level, "error");
        assert_eq!(c.log_format, "json");
        assert_eq!(c.pid_file, Some(PathBuf::from("/srv/run/tresor.pid")));
        assert_eq!(c.max_request_duration, Some(Duration::from_secs(30)));
        // `ui` is honoured (the web UI, docs/ui.md), not ignored.
        assert!(
            !c.warnings.iter().any(|w| w.starts_with("ui")),
            "{:?}",
            c.warnings
        );
        for key in [
            "plugin_directory",
            "disable_clustering",
            "raw_storage_endpoint",
        ] {
            assert!(
                c.warnings.iter().any(|w| w.contains(key)),
                "{key}: {:?}",
                c.warnings
            );
        }
    }

    /// Several `-config` files: listeners add up, later keys win, and only the whole needs
    /// storage and a listener (before, each file had to be whole and only listeners and
    /// storage of later files were kept).
    #[test]
    fn later_config_files_lay_over_earlier_ones() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.hcl");
        let b = dir.path().join("b.json");
        std::fs::write(
            &a,
            "storage \"inmem\" {}\nlistener \"tcp\" {\n  address = \"127.0.0.1:1\"\n  tls_disable = true\n}\nlog_level = \"warn\"\nmax_lease_ttl = \"2h\"\n",
        )
        .unwrap();
        std::fs::write(
            &b,
            r#"{"listener": {"tcp": {"address": "127.0.0.1:2", "tls_disable": true}}, "log_level": "debug", "disable_mlock": true, "default_lease_ttl": "1h"}"#,
        )
        .unwrap();
        let c = load_all(&[a.clone(), b.clone()]).unwrap();
        assert_eq!(c.listeners.len(), 2);
        assert_eq!(c.storage, StorageConfig::Inmem);
        assert_eq!(c.log_level, "debug");
        assert!(c.disable_mlock);
        assert_eq!(c.default_lease_ttl, Duration::from_secs(3600));
        assert_eq!(c.max_lease_ttl, Duration::from_secs(7200));
        // Alone, the second file lacks storage.
        let e = format!("{:#}", load_all(&[b]).unwrap_err());
        assert!(
            e.contains("no storage configured") && e.contains("b.json"),
            "{e}"
        );
    }

    /// Issue 12: Vault's HCL 1 forms: a one-line block with several attributes, a map on one
    /// line without commas, two blocks on a line. Errors keep the line as written.
    #[test]
    fn one_line_blocks_and_maps_parse() {
        let c = parse(
            "storage \"file\" { path = \"d\" } listener \"tcp\" { address = \"127.0.0.1:8201\" tls_disable = true }\nlistener \"tcp\" { address = \"127.0.0.1:8202\" tls_cert_file = \"t.crt\" tls_key_file = \"t.key\" x_forwarded_for_authorized_addrs = [\"10.0.0.0/8\"] }\nui = true disable_mlock = true\n",
            false,
            Path::new("/srv"),
        );
        // `ui = true disable_mlock = true` is two attributes on one line: HCL 1 takes that too.
        let c = c.unwrap();
        assert_eq!(c.storage, StorageConfig::Embedded(PathBuf::from("/srv/d")));
        assert_eq!(c.listeners.len(), 2);
        assert_eq!(c.listeners[0].address, "127.0.0.1:8201");
        assert!(c.listeners[0].tls.is_none());
        let t = c.listeners[1].tls.as_ref().unwrap();
        assert_eq!(t.cert_file, PathBuf::from("/srv/t.crt"));
        assert!(c.listeners[1].forwarded_for.is_some());
        assert!(c.disable_mlock && c.ui);

        let c = with_base("seal \"shamir\" {}\nmap_test = { \"a\" = [] \"b\" = [\"5m\"] }");
        // An unknown key is still refused, but only after the map parsed.
        let e = format!("{:#}", c.unwrap_err());
        assert!(e.contains("map_test: not supported"), "{e}");

        let e = format!(
            "{:#}",
            parse(
                "storage \"inmem\" {} listener \"tcp\" { tls_disable = true }\n\nx = [1,, 2]\n",
                false,
                Path::new("/")
            )
            .unwrap_err()
        );
        assert!(e.contains("syntax error on line 3"), "{e}");
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

    /// `storage "etcd"` takes Vault's keys; errors name the stanza and the key;
    /// `ha_storage "etcd"` is validated and refused with what to do instead (issue 17).
    #[test]
    fn etcd_storage() {
        let listener = "listener \"tcp\" {\n  tls_disable = true\n}\n";
        let c = parse(
            &format!(
                "storage \"etcd\" {{\n  address = \"http://10.0.0.1:2379,http://10.0.0.2:2379\"\n  path = \"tresor/\"\n  lock_timeout = \"4s\"\n  request_timeout = 3\n  max_receive_size = 10485760\n  etcd_api = \"v3\"\n}}\n{listener}"
            ),
            false,
            Path::new("/srv"),
        )
        .unwrap();
        let StorageConfig::Etcd(e) = &c.storage else {
            panic!("expected etcd storage, got {:?}", c.storage)
        };
        assert_eq!(
            e.endpoints,
            vec!["http://10.0.0.1:2379", "http://10.0.0.2:2379"]
        );
        assert_eq!(e.path, "tresor/");
        assert_eq!(e.lock_timeout, Duration::from_secs(4));
        assert_eq!(e.request_timeout, Duration::from_secs(3));
        assert_eq!(e.max_receive_size, 10_485_760);
        assert!(!e.ha_enabled);
        let d = parse(
            &format!("storage \"etcd\" {{}}\n{listener}"),
            false,
            Path::new("/"),
        )
        .unwrap();
        let StorageConfig::Etcd(d) = d.storage else {
            panic!()
        };
        assert_eq!(d.path, "/vault/", "Vault's default path");
        assert_eq!(d.endpoints, vec!["http://localhost:2379"]);
        for (body, want) in [
            (
                "etcd_api = \"v2\"",
                "storage.etcd.etcd_api: the etcd v2 API is not supported",
            ),
            (
                "lock_timeout = \"1s\"",
                "storage.etcd.lock_timeout: must be at least 2s",
            ),
            (
                "request_timeout = \"later\"",
                "storage.etcd.request_timeout: \"later\" is not a duration",
            ),
            (
                "discovery_srv = \"example.com\"",
                "storage.etcd.discovery_srv: not supported",
            ),
            (
                "tls_cert_file = \"c.pem\"",
                "tls_cert_file and tls_key_file: give both",
            ),
            ("username = \"u\"", "username and password: give both"),
            ("ha_enabled = \"maybe\"", "storage.etcd.ha_enabled"),
            ("address = [1]", "storage.etcd.address: expected a string"),
        ] {
            let e = parse(
                &format!("storage \"etcd\" {{\n  {body}\n}}\n{listener}"),
                false,
                Path::new("/"),
            )
            .unwrap_err()
            .to_string();
            assert!(e.contains(want), "{body}: {e}");
        }
        let e = parse(
            &format!("storage \"file\" {{\n  path = \"d\"\n}}\nha_storage \"etcd\" {{\n  lock_timeout = \"x\"\n}}\n{listener}"),
            false,
            Path::new("/"),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("ha_storage.etcd.lock_timeout"), "{e}");
        let e = parse(
            &format!("storage \"file\" {{\n  path = \"d\"\n}}\nha_storage \"etcd\" {{\n  address = \"http://127.0.0.1:2379\"\n}}\n{listener}"),
            false,
            Path::new("/"),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("ha_storage \"etcd\": not supported") && e.contains("storage \"etcd\""),
            "{e}"
        );
    }
}
