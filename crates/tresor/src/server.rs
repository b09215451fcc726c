//! `tresor server`: load the config, open storage, build the core with its engines, and serve.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use tresor_core::{Core, CoreConfig};
use tresor_http::{HttpConfig, ListenerConfig};
use tresor_physical::{Backend, EmbeddedBackend, InmemBackend};

use crate::config::{ServerConfig, StorageConfig};

/// Flags of `tresor server`.
#[derive(Debug, Default)]
pub struct ServerFlags {
    pub configs: Vec<PathBuf>,
    pub dev: bool,
    pub dev_root_token_id: Option<String>,
    pub dev_listen_address: Option<String>,
    pub log_level: Option<String>,
}

/// Parses `server` flags in Vault's style (`-flag=v`, `--flag=v`, `-flag v`).
pub fn parse_flags(args: &[String]) -> Result<ServerFlags> {
    let mut f = ServerFlags::default();
    let mut it = args.iter().peekable();
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
            "dev" => f.dev = inline.as_deref().is_none_or(|v| v != "false"),
            "dev-root-token-id" => f.dev_root_token_id = Some(value(name)?),
            "dev-listen-address" => f.dev_listen_address = Some(value(name)?),
            "log-level" => f.log_level = Some(value(name)?),
            "h" | "help" => {
                println!("{HELP}");
                std::process::exit(0);
            }
            other => bail!("flag provided but not defined: -{other}"),
        }
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
  -dev                         Development mode: in-memory storage, initialized and unsealed.
  -dev-root-token-id=<string>  The root token id in dev mode (default: random).
  -dev-listen-address=<addr>   Address for the dev listener (default 127.0.0.1:8200).
  -log-level=<level>           trace, debug, info, warn or error.";

fn init_logging(level: &str, format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if format == "json" {
        let _ = b.json().try_init();
    } else {
        let _ = b.try_init();
    }
}

/// Registers every built-in engine and auth method with the core.
pub fn register_engines(core: &mut Core) {
    crate::engines::register(core);
}

/// Writes the process id to `pid_file` (Vault's `pid_file`), readable by all as pid files are.
fn write_pid_file(path: &std::path::Path) -> Result<()> {
    std::fs::write(path, format!("{}\n", std::process::id()))
        .with_context(|| format!("pid_file: writing {}", path.display()))
}

/// Runs the server until SIGINT/SIGTERM.
pub async fn run(flags: ServerFlags) -> Result<()> {
    let started = Instant::now();
    let mut cfg = if flags.dev {
        let mut c = ServerConfig::default();
        c.storage = StorageConfig::Inmem;
        c.disable_mlock = true;
        c.listeners = vec![ListenerConfig {
            address: flags
                .dev_listen_address
                .clone()
                .unwrap_or_else(|| "127.0.0.1:8200".into()),
            ..ListenerConfig::default()
        }];
        c
    } else {
        crate::config::load_all(&flags.configs)?
    };
    if let Some(l) = &flags.log_level {
        cfg.log_level = l.clone();
    }
    init_logging(&cfg.log_level, &cfg.log_format);
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
    };
    let mut core_config = CoreConfig {
        default_lease_ttl: cfg.default_lease_ttl,
        max_lease_ttl: cfg.max_lease_ttl,
        cluster_name: cfg.cluster_name.clone(),
        ..CoreConfig::default()
    };
    if let Some(d) = cfg.max_request_duration {
        core_config.max_request_duration = d;
    }
    let mut core = Core::new(physical, core_config);
    register_engines(&mut core);
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
        crate::engines::dev_mounts(&core).await?;
        dev_info = Some((key, root));
    }
    if let Some(p) = &cfg.pid_file {
        write_pid_file(p)?;
    }
    let http = Arc::new(HttpConfig {
        max_request_size: cfg.max_request_size,
        ..HttpConfig::default()
    });
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut tasks = Vec::new();
    for (l, b) in bound {
        let addr = b
            .local_addr()
            .map(|a| a.to_string())
            .unwrap_or(l.address.clone());
        eprintln!(
            "==> Tresor server listening on {} ({})",
            addr,
            if l.tls.is_some() {
                "tls"
            } else {
                "tls disabled"
            }
        );
        tasks.push(tokio::spawn(tresor_http::serve(
            core.clone(),
            http.clone(),
            b,
            stop_rx.clone(),
        )));
    }
    eprintln!(
        "==> Tresor server configuration:\n\n            Storage: {}\n            Version: Tresor v{}\n               Mlock: {}\n\n==> Tresor server started in {} ms! Log data will stream in below:\n",
        core.storage_type(),
        tresor_core::VERSION,
        if cfg.disable_mlock {
            "disabled"
        } else {
            "enabled"
        },
        started.elapsed().as_millis()
    );
    if let Some((key, root)) = &dev_info {
        use base64::Engine as _;
        let addr = &cfg.listeners[0].address;
        println!(
            "WARNING! dev mode is enabled! In this mode, Tresor runs entirely in-memory\nand starts unsealed with a single unseal key. The root token is already\nauthenticated to the CLI, so you can immediately begin using Tresor.\n\nYou may need to set the following environment variables:\n\n    $ export VAULT_ADDR='http://{addr}'\n\nThe unseal key and root token are displayed below in case you want to\nseal/unseal the Vault or re-authenticate.\n\nUnseal Key: {}\nRoot Token: {}\n\nDevelopment mode should NOT be used in production installations!\n",
            base64::engine::general_purpose::STANDARD.encode(&key[..]),
            root.as_str()
        );
        // Like Vault, the dev server logs the CLI in by writing the token helper file.
        if let Some(home) = std::env::var_os("HOME") {
            let path = PathBuf::from(home).join(".vault-token");
            if let Err(e) = write_token_file(&path, root) {
                tracing::warn!(path = %path.display(), error = %e, "could not write the token helper file");
            }
        }
    }
    wait_for_signal(&core).await;
    eprintln!("==> Tresor shutdown triggered");
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

    use super::write_token_file;

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
