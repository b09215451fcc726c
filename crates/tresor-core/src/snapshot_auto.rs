//! Automatic snapshots: named configurations (an interval, a local directory, a retention
//! count, a space limit) under Vault Enterprise's `sys/storage/raft/snapshot-auto/config/:name`
//! (also served as `sys/storage/snapshot-auto/...`), run by the active node's background tick.
//! Each run writes the same snapshot as `sys/storage/raft/snapshot` to a temporary file in the
//! directory (mode 0600), renames it into place, then deletes the oldest beyond `retain`.
//! Configurations are stored behind the barrier under `sys/snapshot-auto/config/`; each node
//! keeps the run status in memory (`.../status/:name`).

use std::collections::HashMap;
use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::json;
use tresor_sdk::framework::Path;
use tresor_sdk::{LogicalError, Operation, Request, Response, Result};

use crate::core::Core;
use crate::system::{Sys, handles, le};

/// Where configurations live, below the system backend's view (`sys/`).
const PREFIX: &str = "snapshot-auto/config/";
/// The same, as a barrier path (what the background tick reads).
const BARRIER_PREFIX: &str = "sys/snapshot-auto/config/";
/// Vault's default `file_prefix`.
const DEFAULT_FILE_PREFIX: &str = "vault-snapshot";

/// One stored configuration.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct Config {
    /// Seconds between snapshots.
    interval: u64,
    retain: u64,
    path_prefix: String,
    file_prefix: String,
    storage_type: String,
    /// Bytes the retained snapshots may use together; 0: no limit.
    local_max_space: u64,
}

/// What `status/:name` reports; kept in memory by the node that runs the snapshots.
#[derive(Debug, Clone, Default)]
pub(crate) struct Status {
    consecutive_errors: u64,
    last_start: String,
    last_end: String,
    last_error: String,
    last_url: String,
    /// Unix time of the next run; 0 until the tick has seen the configuration.
    next_at: i64,
    running: bool,
}

/// Every configuration's status on this node.
pub(crate) type Statuses = parking_lot::Mutex<HashMap<String, Status>>;

fn name_of(raw: &str) -> Result<String> {
    let n = raw.trim();
    if n.is_empty() || n.contains('/') {
        return Err(LogicalError::invalid(
            "missing or invalid configuration name",
        ));
    }
    Ok(n.to_owned())
}

async fn load(req: &Request, name: &str) -> Result<Option<Config>> {
    match req.storage.get(&format!("{PREFIX}{name}")).await? {
        None => Ok(None),
        Some(b) => serde_json::from_slice(&b).map(Some).map_err(|e| {
            LogicalError::internal(format!("stored snapshot-auto config {name:?}: {e}"))
        }),
    }
}

fn config_json(c: &Config) -> serde_json::Value {
    json!({
        "interval": c.interval,
        "retain": c.retain,
        "path_prefix": c.path_prefix,
        "file_prefix": c.file_prefix,
        "storage_type": c.storage_type,
        "local_max_space": c.local_max_space,
    })
}

tresor_sdk::input! {
    /// `sys/storage/raft/snapshot-auto/config/:name`: each setting changes only when sent.
    struct ConfigInput {
        name: Str, "Name of the configuration.";
        interval: OptDuration, "Time between snapshots: seconds or a Go duration (24h). Required.";
        retain: OptInt, "How many snapshots to keep; older ones are deleted after each new one (default 1).";
        path_prefix: OptStr, "The directory to write snapshots in (absolute). Required.";
        file_prefix: OptStr, "File name prefix (default vault-snapshot); files are PREFIX-UNIXMILLIS.snap.";
        storage_type: OptStr, "Where snapshots go: only \"local\" (a directory on the active node). Required.";
        local_max_space: OptInt, "Bytes the kept snapshots may use together; a snapshot that would exceed it is not kept (0: no limit).";
    }
}

tresor_sdk::input! {
    /// `sys/storage/raft/snapshot-auto/status/:name`.
    struct StatusInput {
        name: Str, "Name of the configuration.";
    }
}

fn non_negative(v: Option<i64>, field: &str) -> Result<Option<u64>> {
    match v {
        None => Ok(None),
        Some(v) => u64::try_from(v)
            .map(Some)
            .map_err(|_| LogicalError::invalid(format!("{field} must not be negative"))),
    }
}

async fn write(
    s: Arc<Sys>,
    req: Request,
    f: tresor_sdk::framework::Fields,
) -> Result<Option<Response>> {
    let input: ConfigInput = f.input();
    let name = name_of(&input.name)?;
    let old = load(&req, &name).await?;
    let interval = match input.interval {
        Some(d) => d.as_secs(),
        None => old
            .as_ref()
            .map(|c| c.interval)
            .ok_or_else(|| LogicalError::invalid("interval is required"))?,
    };
    if interval == 0 {
        return Err(LogicalError::invalid(
            "interval must be at least one second",
        ));
    }
    let retain = non_negative(input.retain, "retain")?
        .or(old.as_ref().map(|c| c.retain))
        .unwrap_or(1);
    if retain == 0 {
        return Err(LogicalError::invalid("retain must be at least 1"));
    }
    let storage_type = input
        .storage_type
        .or(old.as_ref().map(|c| c.storage_type.clone()))
        .ok_or_else(|| LogicalError::invalid("storage_type is required"))?;
    if storage_type != "local" {
        return Err(LogicalError::invalid(format!(
            "storage_type {storage_type:?} is not supported: Tresor writes automatic snapshots to a local directory (storage_type \"local\")"
        )));
    }
    let path_prefix = input
        .path_prefix
        .or(old.as_ref().map(|c| c.path_prefix.clone()))
        .filter(|p| !p.trim().is_empty())
        .ok_or_else(|| {
            LogicalError::invalid("path_prefix is required (the directory to write snapshots in)")
        })?;
    if !FsPath::new(&path_prefix).is_absolute() {
        return Err(LogicalError::invalid(format!(
            "path_prefix {path_prefix:?} must be an absolute directory path"
        )));
    }
    let file_prefix = input
        .file_prefix
        .or(old.as_ref().map(|c| c.file_prefix.clone()))
        .unwrap_or_else(|| DEFAULT_FILE_PREFIX.to_owned());
    if file_prefix.is_empty() || file_prefix.contains('/') || file_prefix.starts_with('.') {
        return Err(LogicalError::invalid(format!(
            "file_prefix {file_prefix:?} must be a plain file name prefix"
        )));
    }
    let local_max_space = non_negative(input.local_max_space, "local_max_space")?
        .or(old.as_ref().map(|c| c.local_max_space))
        .unwrap_or(0);
    let cfg = Config {
        interval,
        retain,
        path_prefix,
        file_prefix,
        storage_type,
        local_max_space,
    };
    let bytes = serde_json::to_vec(&cfg).map_err(|e| LogicalError::internal(e.to_string()))?;
    req.storage.put(&format!("{PREFIX}{name}"), bytes).await?;
    // A changed interval takes effect from now.
    handles(&s).forget_autosnap(&name);
    Ok(None)
}

async fn status(s: Arc<Sys>, req: Request, name: String) -> Result<Option<Response>> {
    let name = name_of(&name)?;
    if load(&req, &name).await?.is_none() {
        return Ok(None);
    }
    let st = handles(&s).autosnap_status(&name);
    let next = if st.next_at > 0 {
        tresor_sdk::clock::rfc3339(st.next_at)
    } else {
        String::new()
    };
    Ok(Some(Response::json(json!({
        "consecutive_errors": st.consecutive_errors,
        "last_snapshot_start": st.last_start,
        "last_snapshot_end": st.last_end,
        "last_snapshot_error": st.last_error,
        "last_snapshot_url": st.last_url,
        "next_snapshot_start": next,
        "snapshot_start": if st.running { st.last_start.clone() } else { String::new() },
        "snapshot_url": "",
    }))))
}

/// The paths, under both prefixes.
pub(crate) fn paths() -> Vec<Path<Sys>> {
    let mut out = Vec::new();
    for (list, config, status_path) in [
        (
            "storage/raft/snapshot-auto/config/",
            "storage/raft/snapshot-auto/config/{name}",
            "storage/raft/snapshot-auto/status/{name}",
        ),
        (
            "storage/snapshot-auto/config/",
            "storage/snapshot-auto/config/{name}",
            "storage/snapshot-auto/status/{name}",
        ),
    ] {
        out.push(
            Path::new(list)
                .op(Operation::List, |_, req, _| {
                    Box::pin(async move {
                        let keys = req.storage.list(PREFIX).await?;
                        Ok((!keys.is_empty()).then(|| Response::list(keys)))
                    })
                })
                .help("List automatic snapshot configurations.", ""),
        );
        out.push(
            Path::new(config)
                .input::<ConfigInput>()
                .op(Operation::Read, |_, req, f| {
                    Box::pin(async move {
                        let name = name_of(&f.input::<ConfigInput>().name)?;
                        Ok(load(&req, &name).await?.map(|c| Response::json(config_json(&c))))
                    })
                })
                .op(Operation::Update, |s, req, f| Box::pin(write(s, req, f)))
                .op(Operation::Create, |s, req, f| Box::pin(write(s, req, f)))
                .op(Operation::Delete, |s, req, f| {
                    Box::pin(async move {
                        let name = name_of(&f.input::<ConfigInput>().name)?;
                        req.storage.delete(&format!("{PREFIX}{name}")).await?;
                        handles(&s).forget_autosnap(&name);
                        Ok(None)
                    })
                })
                .help(
                    "Configure automatic snapshots.",
                    "The active node writes a snapshot (the same as GET sys/storage/raft/snapshot) to path_prefix every interval, as a file readable by its owner only, and deletes the oldest beyond retain. Snapshots are useless without the unseal keys, but keep the directory private all the same.",
                ),
        );
        out.push(
            Path::new(status_path)
                .input::<StatusInput>()
                .op(Operation::Read, |s, req, f| {
                    Box::pin(async move { status(s, req, f.input::<StatusInput>().name).await })
                })
                .help(
                    "Status of an automatic snapshot configuration on this node.",
                    "When the last snapshot started and ended, its file, the last error and how many runs in a row failed, and when the next run is due.",
                ),
        );
    }
    out
}

impl Core {
    /// The background tick's part (active node only): starts every configuration whose time
    /// has come, each in its own task, one run at a time per configuration.
    pub(crate) async fn snapshot_auto_tick(&self, at: i64) {
        let Ok(u) = self.unsealed() else { return };
        let names = match u.barrier.list(BARRIER_PREFIX).await {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!(error = %e, "automatic snapshots: cannot list configurations");
                return;
            }
        };
        if names.is_empty() {
            return;
        }
        let mut due = Vec::new();
        for name in names {
            let cfg: Config = match u.barrier.get(&format!("{BARRIER_PREFIX}{name}")).await {
                Ok(Some(b)) => match serde_json::from_slice(&b) {
                    Ok(c) => c,
                    Err(_) => continue,
                },
                _ => continue,
            };
            let mut map = self.0.autosnap.lock();
            let st = map.entry(name.clone()).or_default();
            if st.next_at == 0 {
                st.next_at = at + cfg.interval as i64;
                continue;
            }
            if st.running || at < st.next_at {
                continue;
            }
            st.running = true;
            st.last_start = tresor_sdk::clock::rfc3339(at);
            st.next_at = at + cfg.interval as i64;
            due.push((name, cfg));
        }
        drop(u);
        for (name, cfg) in due {
            let core = self.clone();
            tokio::spawn(async move {
                let result = core.snapshot_auto_run(&cfg).await;
                let end =
                    tresor_sdk::clock::rfc3339(tresor_sdk::clock::unix(core.config().clock.now()));
                let mut map = core.0.autosnap.lock();
                let st = map.entry(name.clone()).or_default();
                st.running = false;
                st.last_end = end;
                match result {
                    Ok(file) => {
                        st.consecutive_errors = 0;
                        st.last_error.clear();
                        st.last_url = file.display().to_string();
                        tracing::info!(config = %name, file = %st.last_url, "automatic snapshot written");
                    }
                    Err(e) => {
                        st.consecutive_errors += 1;
                        st.last_error = e.clone();
                        tracing::warn!(config = %name, error = %e, "automatic snapshot failed");
                    }
                }
            });
        }
    }

    /// One run: writes the snapshot next to its final name, keeps it within the space limit,
    /// renames it into place and applies the retention.
    async fn snapshot_auto_run(&self, cfg: &Config) -> std::result::Result<PathBuf, String> {
        let dir = PathBuf::from(&cfg.path_prefix);
        create_private_dir(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0);
        let final_path = dir.join(format!("{}-{stamp}.snap", cfg.file_prefix));
        let tmp = dir.join(format!(".{}-{stamp}.snap.partial", cfg.file_prefix));
        let file = private_file(&tmp).map_err(|e| format!("creating {}: {e}", tmp.display()))?;
        let written = self
            .snapshot_to(std::io::BufWriter::new(file))
            .await
            .and_then(|(_, _, w)| {
                let f = w
                    .into_inner()
                    .map_err(|e| crate::CoreError::Internal(e.to_string()))?;
                f.sync_all()
                    .map_err(|e| crate::CoreError::Internal(e.to_string()))?;
                Ok(())
            });
        if let Err(e) = written {
            let _ = std::fs::remove_file(&tmp);
            return Err(format!("writing the snapshot: {}", le(e)));
        }
        let size = std::fs::metadata(&tmp).map(|m| m.len()).unwrap_or(0);
        let mut kept = existing(&dir, &cfg.file_prefix);
        // The ones that stay after this run: the newest retain-1, plus the new one.
        let keep_old = (cfg.retain as usize).saturating_sub(1);
        let drop_count = kept.len().saturating_sub(keep_old);
        let doomed: Vec<(u128, PathBuf, u64)> = kept.drain(..drop_count).collect();
        if cfg.local_max_space > 0 {
            let total: u64 = kept.iter().map(|(_, _, s)| s).sum::<u64>() + size;
            if total > cfg.local_max_space {
                let _ = std::fs::remove_file(&tmp);
                return Err(format!(
                    "local_max_space exceeded: the kept snapshots would use {total} bytes of {}",
                    cfg.local_max_space
                ));
            }
        }
        std::fs::rename(&tmp, &final_path)
            .map_err(|e| format!("renaming into {}: {e}", final_path.display()))?;
        for (_, p, _) in doomed {
            if let Err(e) = std::fs::remove_file(&p) {
                tracing::warn!(file = %p.display(), error = %e, "automatic snapshots: cannot delete an old snapshot");
            }
        }
        Ok(final_path)
    }
}

/// This configuration's snapshot files in `dir`, oldest first: (stamp, path, size).
fn existing(dir: &FsPath, file_prefix: &str) -> Vec<(u128, PathBuf, u64)> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(dir) else {
        return out;
    };
    let head = format!("{file_prefix}-");
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(stamp) = name
            .strip_prefix(&head)
            .and_then(|r| r.strip_suffix(".snap"))
            .and_then(|n| n.parse::<u128>().ok())
        else {
            continue;
        };
        let size = e.metadata().map(|m| m.len()).unwrap_or(0);
        out.push((stamp, e.path(), size));
    }
    out.sort_by_key(|(s, _, _)| *s);
    out
}

fn create_private_dir(dir: &FsPath) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    if dir.is_dir() {
        return Ok(());
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

fn private_file(path: &FsPath) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
}
