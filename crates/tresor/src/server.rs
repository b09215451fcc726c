//! `tresor server`: load the config, open storage, build the core with its engines, and serve.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use tresor_core::{Core, CoreConfig};
use tresor_http::{HttpConfig, ListenerConfig, TlsSettings};
use tresor_physical::{Backend, EmbeddedBackend, InmemBackend};

use crate::config::{ServerConfig, StorageConfig};
use crate::logging::say;

/// Flags of `tresor server`.
#[derive(Debug, Default)]
pub struct ServerFlags {
    pub configs: Vec<PathBuf>,
    pub dev: bool,
    pub dev_root_token_id: Option<String>,
    pub dev_listen_address: Option<String>,
    /// `-dev-tls`: the dev listener serves TLS with a generated CA and certificate.
    pub dev_tls: bool,
    /// `-dev-tls-cert-dir`: where `-dev-tls` writes its files (default: a temporary directory).
    pub dev_tls_cert_dir: Option<PathBuf>,
    /// `-dev-kv-v1`: `secret/` is KV version 1.
    pub dev_kv_v1: bool,
    pub log_level: Option<String>,
    pub log_format: Option<String>,
    /// `-log-file`, `-log-rotate-bytes`, `-log-rotate-duration`, `-log-rotate-max-files` as
    /// (config key, value): they win over the config's keys of the same names.
    pub log_file: Vec<(String, String)>,
}

/// Parses `server` flags in Vault's style (`-flag=v`, `--flag=v`, `-flag v`), with the
/// process environment for the `VAULT_*` variables the flags stand for.
pub fn parse_flags(args: &[String]) -> Result<ServerFlags> {
    parse_flags_with(args, &|k| std::env::var(k).ok())
}

fn bool_flag(inline: Option<&str>, name: &str) -> Result<bool> {
    match inline {
        None | Some("true" | "1" | "t" | "T" | "TRUE" | "True") => Ok(true),
        Some("false" | "0" | "f" | "F" | "FALSE" | "False") => Ok(false),
        Some(v) => bail!("invalid boolean value {v:?} for -{name}"),
    }
}

/// [`parse_flags`] with the environment given: a flag wins over its variable
/// (`VAULT_DEV_ROOT_TOKEN_ID`, `VAULT_DEV_LISTEN_ADDRESS`, `VAULT_LOG_LEVEL`,
/// `VAULT_LOG_FORMAT`), which wins over the config file.
pub fn parse_flags_with(
    args: &[String],
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<ServerFlags> {
    let mut f = ServerFlags::default();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let Some(stripped) = a.strip_prefix("--").or_else(|| a.strip_prefix('-')) else {
            bail!("unexpected argument {a:?}: server takes flags only (see tresor server -help)");
        };
        let (name, inline) = match stripped.split_once('=') {
            Some((n, v)) => (n, Some(v.to_owned())),
            None => (stripped, None),
        };
        let mut value = |name: &str| -> Result<String> {
            match &inline {
                Some(v) => Ok(v.clone()),
                None => it
                    .next()
                    .cloned()
                    .with_context(|| format!("flag -{name} needs a value")),
            }
        };
        match name {
            "config" => f.configs.push(PathBuf::from(value(name)?)),
            "dev" => f.dev = bool_flag(inline.as_deref(), name)?,
            "dev-root-token-id" => f.dev_root_token_id = Some(value(name)?),
            "dev-listen-address" => f.dev_listen_address = Some(value(name)?),
            "dev-tls" => f.dev_tls = bool_flag(inline.as_deref(), name)?,
            "dev-tls-cert-dir" => f.dev_tls_cert_dir = Some(PathBuf::from(value(name)?)),
            "dev-kv-v1" => f.dev_kv_v1 = bool_flag(inline.as_deref(), name)?,
            "log-level" => f.log_level = Some(value(name)?),
            "log-format" => f.log_format = Some(value(name)?),
            "log-file" | "log-rotate-bytes" | "log-rotate-duration" | "log-rotate-max-files" => {
                let v = value(name)?;
                f.log_file.push((name.replace('-', "_"), v));
            }
            "h" | "help" => {
                println!("{HELP}");
                std::process::exit(0);
            }
            other => bail!("flag provided but not defined: -{other}"),
        }
    }
    let from_env = |name: &str| env(name).filter(|v| !v.is_empty());
    if f.dev_root_token_id.is_none() {
        f.dev_root_token_id = from_env("VAULT_DEV_ROOT_TOKEN_ID");
    }
    if f.dev_listen_address.is_none() {
        f.dev_listen_address = from_env("VAULT_DEV_LISTEN_ADDRESS");
    }
    f.log_level = match (f.log_level.take(), from_env("VAULT_LOG_LEVEL")) {
        (Some(l), _) => Some(crate::config::log_level(&l).context("-log-level")?),
        (None, Some(l)) => Some(crate::config::log_level(&l).context("VAULT_LOG_LEVEL")?),
        (None, None) => None,
    };
    f.log_format = match (f.log_format.take(), from_env("VAULT_LOG_FORMAT")) {
        (Some(l), _) => Some(crate::config::log_format(&l).context("-log-format")?),
        (None, Some(l)) => Some(crate::config::log_format(&l).context("VAULT_LOG_FORMAT")?),
        (None, None) => None,
    };
    // As in Vault, the dev options turn dev mode on.
    f.dev |= f.dev_tls || f.dev_kv_v1;
    if f.dev_tls_cert_dir.is_some() && !f.dev_tls {
        bail!("-dev-tls-cert-dir is where -dev-tls writes its certificates: add -dev-tls");
    }
    if f.dev && !f.configs.is_empty() {
        bail!(
            "-dev and -config cannot be combined: a dev server has its own in-memory storage and listener (use one or the other)"
        );
    }
    if !f.dev && f.configs.is_empty() {
        bail!("no configuration files found: use -config=FILE, or -dev for a development server");
    }
    Ok(f)
}

pub const HELP: &str = "Usage: tresor server [options]

  Starts a Tresor server that responds to API requests. By default it loads its
  configuration from the files given with -config (HCL, or JSON for .json files).

  Start a development server (in-memory, unsealed, root token printed):

      $ tresor server -dev

Options:
  -config=<path>               A configuration file (may be repeated; later files win).
  -log-level=<level>           trace, debug, info, warn or error (VAULT_LOG_LEVEL; default:
                               the config's log_level, else info).
  -log-format=<format>         standard or json (VAULT_LOG_FORMAT; default: the config's
                               log_format, else standard).
  -log-file=<path>             Also write the log to this file (a directory gets vault.log,
                               a name without an extension gets .log); the config's log_file.
  -log-rotate-bytes=<n>        Rotate the log file when it would pass n bytes (0: never).
  -log-rotate-duration=<d>     Rotate the log file after this long (default 24h).
  -log-rotate-max-files=<n>    Rotated files to keep (0: all, -1: none).

Dev options:
  -dev                         Development mode: in-memory storage, initialized and unsealed.
  -dev-root-token-id=<string>  The root token id (VAULT_DEV_ROOT_TOKEN_ID; default: random).
  -dev-listen-address=<addr>   The dev listener's address (VAULT_DEV_LISTEN_ADDRESS; default
                               127.0.0.1:8200).
  -dev-tls                     Serve TLS with a generated CA and certificate, and print the
                               CA file to export as VAULT_CACERT. Implies -dev.
  -dev-tls-cert-dir=<path>     Where -dev-tls writes its files (default: a temporary
                               directory, removed at shutdown).
  -dev-kv-v1                   Mount secret/ as KV version 1 instead of 2. Implies -dev.";

/// Registers every built-in engine and auth method with the core.
pub fn register_engines(core: &mut Core) {
    crate::engines::register(core);
}

/// The dev server's configuration: in-memory storage and one listener, with TLS under
/// `-dev-tls` (the generated files are returned, to print and to remove at shutdown).
fn dev_config(flags: &ServerFlags) -> Result<(ServerConfig, Option<crate::devtls::DevTls>)> {
    let address = flags
        .dev_listen_address
        .clone()
        .unwrap_or_else(|| "127.0.0.1:8200".into());
    let tls = if flags.dev_tls {
        let host = address
            .rsplit_once(':')
            .map_or(address.as_str(), |(h, _)| h);
        Some(crate::devtls::generate(
            flags.dev_tls_cert_dir.as_deref(),
            host,
        )?)
    } else {
        None
    };
    let c = ServerConfig {
        storage: StorageConfig::Inmem,
        disable_mlock: true,
        listeners: vec![ListenerConfig {
            address,
            tls: tls.as_ref().map(|t| TlsSettings {
                cert_file: t.cert.clone(),
                key_file: t.key.clone(),
                ..TlsSettings::default()
            }),
            ..ListenerConfig::default()
        }],
        ..ServerConfig::default()
    };
    Ok((c, tls))
}

/// Writes the process id to `pid_file` (Vault's `pid_file`), readable by all as pid files are.
fn write_pid_file(path: &std::path::Path) -> Result<()> {
    std::fs::write(path, format!("{}\n", std::process::id()))
        .with_context(|| format!("pid_file: writing {}", path.display()))
}

/// Runs the server until SIGINT/SIGTERM.
pub async fn run(flags: ServerFlags) -> Result<()> {
    let started = Instant::now();
    let (mut cfg, dev_tls) = if flags.dev {
        dev_config(&flags)?
    } else {
        (crate::config::load_all(&flags.configs)?, None)
    };
    if let Some(l) = &flags.log_level {
        cfg.log_level = l.clone();
    }
    if let Some(f) = &flags.log_format {
        cfg.log_format = f.clone();
    }
    crate::config::overlay_log_flags(&mut cfg, &flags.log_file)?;
    // The rotation keys alone (no file) mean nothing, as in Vault.
    let log_file = cfg
        .log_file
        .as_ref()
        .filter(|f| !f.path.as_os_str().is_empty());
    let logs = crate::logging::init(&cfg.log_level, &cfg.log_format, log_file)?;
    // Metrics as the telemetry stanza says; the log control and the sanitized config for
    // sys/loggers, sys/monitor and sys/config/state/sanitized (docs/operations.md).
    let t = &cfg.telemetry;
    tresor_core::telemetry::configure(tresor_core::telemetry::Settings {
        prometheus_retention: t.prometheus_retention_time,
        disable_hostname: t.disable_hostname,
        usage_gauge_period: t.usage_gauge_period,
        metrics_prefix: t.metrics_prefix.clone(),
        prometheus_histograms: t.prometheus_histograms,
        enabled: std::env::var("TRESOR_METRICS").map_or(true, |v| v != "off"),
        ..tresor_core::telemetry::Settings::default()
    });
    tresor_core::diagnostics::install(tresor_core::diagnostics::Installed {
        logs,
        sanitized_config: sanitized(&cfg),
    });
    let result = serve(&flags, &cfg, dev_tls.as_ref(), started).await;
    if let Some(t) = &dev_tls {
        t.remove();
    }
    result
}

async fn serve(
    flags: &ServerFlags,
    cfg: &ServerConfig,
    dev_tls: Option<&crate::devtls::DevTls>,
    started: Instant,
) -> Result<()> {
    for w in &cfg.warnings {
        tracing::warn!("{w}");
    }
    crate::secure::disable_core_dumps();
    if !cfg.disable_mlock {
        crate::secure::lock_memory().map_err(|e| anyhow::anyhow!(e))?;
    }
    let physical: Arc<dyn Backend> = match &cfg.storage {
        StorageConfig::Inmem => Arc::new(InmemBackend::new()),
        StorageConfig::Embedded(dir) => Arc::new(
            EmbeddedBackend::open(dir)
                .with_context(|| format!("opening storage at {}", dir.display()))?,
        ),
        StorageConfig::Etcd(e) => {
            let etcd: Arc<dyn Backend> = Arc::new(
                tresor_physical::EtcdBackend::connect(e.as_ref().clone())
                    .await
                    .with_context(|| {
                        format!(
                            "storage \"etcd\": connecting to {} (path {:?})",
                            e.endpoints.join(","),
                            e.path
                        )
                    })?,
            );
            // Vault's physical read cache: every read would otherwise be a round trip to
            // etcd's quorum. Writes through it and the HA change feed keep it current.
            if cfg.disable_cache {
                etcd
            } else {
                Arc::new(tresor_physical::CachedBackend::new(etcd, cfg.cache_size))
            }
        }
    };
    let mut core_config = CoreConfig {
        default_lease_ttl: cfg.default_lease_ttl,
        max_lease_ttl: cfg.max_lease_ttl,
        cluster_name: cfg.cluster_name.clone(),
        // Governing policies (EGPs, RGPs in Rego) after the ACL of every request.
        hooks: Arc::new(tresor_govern::GoverningHooks::default()),
        ..CoreConfig::default()
    };
    if let Some(d) = cfg.max_request_duration {
        core_config.max_request_duration = d;
    }
    core_config.api_addr = api_addr(cfg);
    if cfg.ha_enabled {
        core_config.ha = Some(ha_config(cfg)?);
    }
    let mut core = Core::new(physical, core_config);
    register_engines(&mut core);
    if core.ha_enabled() {
        // Forwarding to an https api_addr trusts the system roots and VAULT_CACERT's CA.
        if let Ok(path) = std::env::var("VAULT_CACERT")
            && !path.is_empty()
        {
            let pem =
                std::fs::read(&path).with_context(|| format!("reading VAULT_CACERT {path}"))?;
            let f = tresor_http::ha::Forwarder::new(Some(&pem))
                .map_err(|e| anyhow::anyhow!("VAULT_CACERT {path}: {e}"))?;
            tresor_http::ha::install_forwarder(f);
        }
        // Standbys tell the active node they are there (sys/ha-status).
        tresor_http::ha::spawn_echo(core.clone());
    }
    let mut bound = Vec::new();
    for l in &cfg.listeners {
        bound.push((
            l.clone(),
            tresor_http::bind(l).await.map_err(|e| anyhow::anyhow!(e))?,
        ));
    }
    let mut dev_info = None;
    if flags.dev {
        let (key, root) = core
            .init_dev(flags.dev_root_token_id.clone())
            .await
            .map_err(|e| anyhow::anyhow!("dev init: {e}"))?;
        let kv_version = if flags.dev_kv_v1 { 1 } else { 2 };
        crate::engines::dev_mounts(&core, kv_version).await?;
        dev_info = Some((key, root));
    }
    if let Some(p) = &cfg.pid_file {
        write_pid_file(p)?;
    }
    let http = Arc::new(HttpConfig {
        max_request_size: cfg.max_request_size,
        ui: cfg.ui || flags.dev,
        ..HttpConfig::default()
    });
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut tasks = Vec::new();
    for (l, b) in bound {
        let addr = b
            .local_addr()
            .map(|a| a.to_string())
            .unwrap_or(l.address.clone());
        say(&format!(
            "==> Tresor server listening on {} ({})",
            addr,
            if l.tls.is_some() {
                "tls"
            } else {
                "tls disabled"
            }
        ));
        tasks.push(tokio::spawn(tresor_http::serve(
            core.clone(),
            http.clone(),
            b,
            stop_rx.clone(),
        )));
    }
    say(&format!(
        "==> Tresor server configuration:\n\n            Storage: {}\n            Version: Tresor v{}\n               Mlock: {}\n\n==> Tresor server started in {} ms! Log data will stream in below:\n",
        core.storage_type(),
        tresor_core::VERSION,
        if cfg.disable_mlock {
            "disabled"
        } else {
            "enabled"
        },
        started.elapsed().as_millis()
    ));
    if let Some((key, root)) = &dev_info {
        use base64::Engine as _;
        let addr = &cfg.listeners[0].address;
        let exports = match dev_tls {
            Some(t) => format!(
                "    $ export VAULT_ADDR='https://{addr}'\n    $ export VAULT_CACERT='{}'\n",
                t.ca_cert.display()
            ),
            None => format!("    $ export VAULT_ADDR='http://{addr}'\n"),
        };
        println!(
            "WARNING! dev mode is enabled! In this mode, Tresor runs entirely in-memory\nand starts unsealed with a single unseal key. The root token is already\nauthenticated to the CLI, so you can immediately begin using Tresor.\n\nYou may need to set the following environment variables:\n\n{exports}\nThe unseal key and root token are displayed below in case you want to\nseal/unseal the Vault or re-authenticate.\n\nUnseal Key: {}\nRoot Token: {}\n\nDevelopment mode should NOT be used in production installations!\n",
            base64::engine::general_purpose::STANDARD.encode(&key[..]),
            root.as_str()
        );
        if let Some(t) = dev_tls {
            println!(
                "The CA certificate, server certificate and key are in {}{}.\n",
                t.dir.display(),
                if t.temporary {
                    " (removed at shutdown)"
                } else {
                    ""
                }
            );
        }
        use std::io::Write as _;
        let _ = std::io::stdout().flush();
        // Like Vault, the dev server logs the CLI in by writing the token helper file.
        if let Some(home) = std::env::var_os("HOME") {
            let path = PathBuf::from(home).join(".vault-token");
            if let Err(e) = write_token_file(&path, root) {
                tracing::warn!(path = %path.display(), error = %e, "could not write the token helper file");
            }
        }
    }
    wait_for_signal(&core).await;
    say("==> Tresor shutdown triggered");
    let _ = stop_tx.send(true);
    let _ = core.seal().await;
    for t in tasks {
        let _ = tokio::time::timeout(tresor_http::SHUTDOWN_GRACE, t).await;
    }
    if let Some(p) = &cfg.pid_file {
        let _ = std::fs::remove_file(p);
    }
    Ok(())
}

/// The configuration without anything secret (`sys/config/state/sanitized`): storage by type
/// only, listeners by address and TLS file paths, no seal or credential values.
fn sanitized(cfg: &ServerConfig) -> serde_json::Value {
    use serde_json::json;
    let storage = match &cfg.storage {
        StorageConfig::Inmem => "inmem",
        StorageConfig::Embedded(_) => "embedded",
        StorageConfig::Etcd(_) => "etcd",
    };
    let listeners: Vec<_> = cfg
        .listeners
        .iter()
        .map(|l| {
            json!({
                "type": "tcp",
                "config": {
                    "address": l.address,
                    "tls_disable": l.tls.is_none(),
                    "tls_cert_file": l.tls.as_ref().map(|t| t.cert_file.display().to_string()),
                    "tls_key_file": l.tls.as_ref().map(|t| t.key_file.display().to_string()),
                    "telemetry": {"unauthenticated_metrics_access": l.unauthenticated_metrics_access},
                }
            })
        })
        .collect();
    let t = &cfg.telemetry;
    json!({
        "api_addr": cfg.api_addr.clone().unwrap_or_default(),
        "cluster_addr": cfg.cluster_addr.clone().unwrap_or_default(),
        "cluster_name": cfg.cluster_name.clone().unwrap_or_default(),
        "default_lease_ttl": cfg.default_lease_ttl.as_secs(),
        "max_lease_ttl": cfg.max_lease_ttl.as_secs(),
        "default_max_request_duration": cfg.max_request_duration.map_or(0, |d| d.as_secs()),
        "disable_mlock": cfg.disable_mlock,
        "ui": cfg.ui,
        "log_level": cfg.log_level,
        "log_format": cfg.log_format,
        "log_file": cfg.log_file.as_ref().map(|f| f.path.display().to_string()).unwrap_or_default(),
        "log_rotate_bytes": cfg.log_file.as_ref().map_or(0, |f| f.rotate_bytes),
        "log_rotate_duration": cfg.log_file.as_ref().map_or(String::new(), |f| format!("{}s", f.rotate_duration.as_secs())),
        "log_rotate_max_files": cfg.log_file.as_ref().map_or(0, |f| f.rotate_max_files),
        "pid_file": cfg.pid_file.as_ref().map(|p| p.display().to_string()).unwrap_or_default(),
        "max_request_size": cfg.max_request_size,
        "listeners": listeners,
        "storage": {"type": storage, "ha_enabled": cfg.ha_enabled, "disable_clustering": true},
        "ha_storage": null,
        "seals": [{"type": "shamir", "disabled": false}],
        "telemetry": {
            "prometheus_retention_time": format!("{}s", t.prometheus_retention_time.as_secs()),
            "disable_hostname": t.disable_hostname,
            "usage_gauge_period": format!("{}s", t.usage_gauge_period.as_secs()),
            "metrics_prefix": t.metrics_prefix,
            "prometheus_histograms": t.prometheus_histograms,
        },
    })
}

/// Writes the dev root token to the token helper file, readable by its owner only: a new file
/// is created 0600, and an existing one is emptied and restricted before the token is written.
fn write_token_file(path: &std::path::Path, token: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    f.write_all(token.as_bytes())
}

/// Waits for SIGINT/SIGTERM; SIGHUP reopens audit files (for logrotate) and keeps serving.
async fn wait_for_signal(core: &Core) {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("signal handler");
    let mut int = signal(SignalKind::interrupt()).expect("signal handler");
    let mut hup = signal(SignalKind::hangup()).expect("signal handler");
    loop {
        tokio::select! {
            _ = term.recv() => return,
            _ = int.recv() => return,
            _ = hup.recv() => {
                if let Ok(u) = core.unsealed() {
                    u.audit.reload();
                }
                tracing::info!("SIGHUP: audit files reopened");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::{parse_flags_with, write_token_file};

    fn flags(args: &[&str], env: &[(&str, &str)]) -> anyhow::Result<super::ServerFlags> {
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        parse_flags_with(&args, &move |k| {
            env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())
        })
    }

    /// Issue 12: the dev server and the log settings read Vault's variables; a flag wins.
    #[test]
    fn flags_fall_back_to_vault_variables() {
        let env = [
            ("VAULT_DEV_ROOT_TOKEN_ID", "from-env"),
            ("VAULT_DEV_LISTEN_ADDRESS", "127.0.0.1:9999"),
            ("VAULT_LOG_LEVEL", "DEBUG"),
            ("VAULT_LOG_FORMAT", "json"),
        ];
        let f = flags(&["-dev"], &env).unwrap();
        assert_eq!(f.dev_root_token_id.as_deref(), Some("from-env"));
        assert_eq!(f.dev_listen_address.as_deref(), Some("127.0.0.1:9999"));
        assert_eq!(f.log_level.as_deref(), Some("debug"));
        assert_eq!(f.log_format.as_deref(), Some("json"));
        let f = flags(
            &[
                "-dev",
                "-dev-root-token-id=flag",
                "-dev-listen-address",
                "127.0.0.1:1",
                "-log-level=err",
                "--log-format=standard",
            ],
            &env,
        )
        .unwrap();
        assert_eq!(f.dev_root_token_id.as_deref(), Some("flag"));
        assert_eq!(f.dev_listen_address.as_deref(), Some("127.0.0.1:1"));
        assert_eq!(f.log_level.as_deref(), Some("error"));
        assert_eq!(f.log_format.as_deref(), Some("standard"));
        // Nothing set: the config decides.
        let f = flags(&["-dev"], &[]).unwrap();
        assert_eq!((f.log_level, f.log_format), (None, None));
        // A bad value names where it came from.
        let e = format!(
            "{:#}",
            flags(&["-dev"], &[("VAULT_LOG_FORMAT", "xml")]).unwrap_err()
        );
        assert!(e.contains("VAULT_LOG_FORMAT") && e.contains("xml"), "{e}");
        let e = format!(
            "{:#}",
            flags(&["-dev", "-log-level=loud"], &[]).unwrap_err()
        );
        assert!(e.contains("-log-level"), "{e}");
    }

    #[test]
    fn dev_options_imply_dev_and_do_not_mix_with_a_config() {
        let f = flags(&["-dev-tls", "-dev-tls-cert-dir=/tmp/x"], &[]).unwrap();
        assert!(f.dev && f.dev_tls);
        let f = flags(&["-dev-kv-v1"], &[]).unwrap();
        assert!(f.dev && f.dev_kv_v1 && !f.dev_tls);
        let e = format!(
            "{:#}",
            flags(&["-dev", "-dev-tls-cert-dir=/x"], &[]).unwrap_err()
        );
        assert!(e.contains("-dev-tls"), "{e}");
        let e = format!("{:#}", flags(&["-dev", "-config=a.hcl"], &[]).unwrap_err());
        assert!(e.contains("-dev and -config"), "{e}");
        let e = format!("{:#}", flags(&["-dev-tls=maybe"], &[]).unwrap_err());
        assert!(e.contains("-dev-tls"), "{e}");
    }

    fn mode(p: &std::path::Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn the_dev_token_file_is_private() {
        let dir = tempfile::tempdir().unwrap();
        // A new file: 0600 whatever the umask (a plain create gives 0644 under umask 022).
        let fresh = dir.path().join(".vault-token");
        write_token_file(&fresh, "hvs.first").unwrap();
        assert_eq!(mode(&fresh), 0o600);
        assert_eq!(std::fs::read_to_string(&fresh).unwrap(), "hvs.first");
        // An existing world-readable file is restricted and replaced.
        std::fs::set_permissions(&fresh, std::fs::Permissions::from_mode(0o644)).unwrap();
        write_token_file(&fresh, "hvs.second").unwrap();
        assert_eq!(mode(&fresh), 0o600);
        assert_eq!(std::fs::read_to_string(&fresh).unwrap(), "hvs.second");
    }
}

/// Where clients reach this server: `api_addr`, else, as in Vault, the first listener's
/// address with its scheme.
fn api_addr(cfg: &ServerConfig) -> Option<String> {
    if let Some(a) = &cfg.api_addr {
        return Some(a.clone());
    }
    let l = cfg.listeners.first()?;
    let scheme = if l.tls.is_some() { "https" } else { "http" };
    Some(format!("{scheme}://{}", l.address))
}

/// This server's HA identity: `api_addr` (required: standbys forward and redirect there; as
/// in Vault, derived from the first listener when unset), `cluster_addr` (shown only), the
/// host name, and whether standbys answer reads.
fn ha_config(cfg: &ServerConfig) -> Result<tresor_core::ha::HaConfig> {
    let api_addr = api_addr(cfg).ok_or_else(|| {
        anyhow::anyhow!("ha_enabled: api_addr must be set (no listener to derive it from)")
    })?;
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| api_addr.clone());
    let mut ha = tresor_core::ha::HaConfig::new(api_addr.clone(), api_addr);
    ha.cluster_addr = cfg.cluster_addr.clone().unwrap_or_default();
    ha.hostname = hostname;
    ha.standby_reads = !cfg.disable_standby_reads;
    Ok(ha)
}
