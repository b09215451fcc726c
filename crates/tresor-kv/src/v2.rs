//! KV version 2: versioned secrets with Vault's paths and response shapes.
//!
//! | path | operations |
//! |---|---|
//! | `config` | read, write the mount-wide settings |
//! | `data/<path>` | read (`?version=N`), write (`options.cas`), patch (merge patch), delete (latest version) |
//! | `delete/<path>`, `undelete/<path>`, `destroy/<path>` | write a `versions` list |
//! | `metadata/<path>` | read, list, write, patch, delete (everything) |
//! | `subkeys/<path>` | read (`version`, `depth`) |
//!
//! A read of a deleted or destroyed version answers `{"data": null, "metadata": {...}}` (and
//! `subkeys` answers `{"subkeys": null, ...}`) marked `not_found`: Vault sends that body with a
//! 404 status, which the HTTP layer decides, since engines never know status codes.
//!
//! Writes to one secret are serialised by a per-secret lock, so check-and-set is atomic.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value, json};
use tresor_sdk::duration::format_go;
use tresor_sdk::framework::{Fields, Path, Table};
use tresor_sdk::{LogicalError, Operation, Request, Response, Result, SpecialPaths, Storage};

use crate::Engine;
use crate::clock::format_rfc3339_nano;
use crate::inputs::{
    ConfigInput, DataWrite, DeleteVersions, DestroyVersions, MetadataInput, ReadVersion,
    SecretPath, SubkeysDepth, UndeleteVersions,
};
use crate::json::{merge_patch, subkeys};
use crate::store::{self, Config, DEFAULT_MAX_VERSIONS, SecretMeta, VersionMeta};

/// Vault's limits on `custom_metadata`.
const CUSTOM_METADATA_MAX_KEYS: usize = 64;
const CUSTOM_METADATA_MAX_KEY_LEN: usize = 128;
const CUSTOM_METADATA_MAX_VALUE_LEN: usize = 512;

// Help texts.
const CONFIG_SYNOPSIS: &str = "Read or write the engine-wide settings of this KV version 2 mount.";
const CONFIG_DESCRIPTION: &str = "
These settings apply to every secret of the mount. A secret's own metadata can set its own
max_versions and cas_required; its own delete_version_after applies only when shorter than
the mount's. Fields left out of a write keep their current value.
";
const DATA_SYNOPSIS: &str = "Write, patch, read or soft-delete the versioned data of a secret.";
const DATA_DESCRIPTION: &str = "
A write stores 'data' as a new version and answers with that version's metadata. With
options.cas the write succeeds only if cas equals the secret's current version (0: only if
the secret does not exist yet). A PATCH merges 'data' into the current version (JSON merge
patch: null removes a key) and stores the result as a new version; the current version must
exist and be neither deleted nor destroyed.

A read returns the latest version, or the one named by 'version', with its metadata. A
DELETE soft-deletes the latest version; it can be restored with the undelete path.
";
const DELETE_SYNOPSIS: &str = "Soft-delete the given versions of a secret.";
const DELETE_DESCRIPTION: &str = "
The versions are marked deleted and are no longer returned by reads; their data stays in
storage and can be restored with the undelete path.
";
const UNDELETE_SYNOPSIS: &str = "Restore soft-deleted versions of a secret.";
const UNDELETE_DESCRIPTION: &str = "
Clears the deletion time of the given versions so that reads return them again. Destroyed
versions cannot be restored.
";
const DESTROY_SYNOPSIS: &str = "Permanently remove the data of the given versions of a secret.";
const DESTROY_DESCRIPTION: &str = "
The data of each given version is erased from storage and the version is marked destroyed
in the secret's metadata. This cannot be undone.
";
const METADATA_SYNOPSIS: &str =
    "Read, list, configure or delete a secret's metadata and version history.";
const METADATA_DESCRIPTION: &str = "
A read returns the secret's settings and the metadata of every version kept. A LIST on a
folder returns the secrets and folders below it, folders ending in '/'. A write creates the
secret if needed and sets max_versions, cas_required, delete_version_after and
custom_metadata (replacing it whole) without creating a version; a PATCH changes only the
given fields and merges custom_metadata (null removes a key). A DELETE removes the
metadata and every version of the secret for good.
";
const UNVERSIONED_SYNOPSIS: &str = "Not an endpoint: a version 1 style path on a version 2 mount.";
const UNVERSIONED_DESCRIPTION: &str = "\
A KV version 2 mount keeps a secret's data under data/, its versions' bookkeeping under
metadata/, and changes versions through delete/, undelete/ and destroy/. A request for the
secret's path itself, as a version 1 mount would take it, answers 404 with a warning that says
which 'vault kv' command to use instead.
";

/// The answer to a version 1 style request: 404 with a warning, as Vault gives it. A path
/// under one of the version 2 prefixes that its own path did not take (`data/` with no secret
/// name) is not such a request: it is an unsupported path, as before.
fn wrong_version(req: &Request, command: &str) -> Result<Option<Response>> {
    const PREFIXES: [&str; 5] = ["data/", "delete/", "undelete/", "destroy/", "subkeys/"];
    if PREFIXES.iter().any(|p| req.path.starts_with(p)) {
        return Err(LogicalError::UnsupportedPath);
    }
    let mut r = Response::default().with_warning(format!(
        "Invalid path for a versioned K/V secrets engine. See the API docs for the appropriate \
         API endpoints to use. If using the Vault CLI, use 'vault kv {command}' for this \
         operation."
    ));
    r.not_found = true;
    Ok(Some(r))
}

const SUBKEYS_SYNOPSIS: &str = "Read the structure of a secret without its values.";
const SUBKEYS_DESCRIPTION: &str = "
Returns the keys of a version of the secret with every leaf value (anything but a non-empty
object) replaced by null. 'depth' limits how deep the structure is shown: keys at that depth
are shown as leaves.
";

pub(crate) fn table() -> Table<Engine> {
    Table {
        paths: vec![
            Path::new("config")
                .input::<ConfigInput>()
                .op(Operation::Read, |b, req, f| {
                    Box::pin(async move { config_read(&b, req, f).await })
                })
                .op(Operation::Update, |b, req, f| {
                    Box::pin(async move { config_write(&b, req, f).await })
                })
                .existence(|_, _, _| Box::pin(async move { Ok(true) }))
                .help(CONFIG_SYNOPSIS, CONFIG_DESCRIPTION),
            Path::new("data/{path:+}")
                .input::<SecretPath>()
                .input::<ReadVersion>()
                .input::<DataWrite>()
                .op(Operation::Read, |b, req, f| {
                    Box::pin(async move { data_read(&b, req, f).await })
                })
                .op(Operation::Update, |b, req, f| {
                    Box::pin(async move { data_write(&b, req, f).await })
                })
                .op(Operation::Patch, |b, req, f| {
                    Box::pin(async move { data_patch(&b, req, f).await })
                })
                .op(Operation::Delete, |b, req, f| {
                    Box::pin(async move { data_delete(&b, req, f).await })
                })
                .existence(|b, req, f| Box::pin(async move { secret_exists(&b, req, f).await }))
                .help(DATA_SYNOPSIS, DATA_DESCRIPTION),
            Path::new("delete/{path:+}")
                .input::<SecretPath>()
                .input::<DeleteVersions>()
                .op(Operation::Update, |b, req, f| {
                    Box::pin(async move { versions_delete(&b, req, f).await })
                })
                .existence(|_, _, _| Box::pin(async move { Ok(true) }))
                .help(DELETE_SYNOPSIS, DELETE_DESCRIPTION),
            Path::new("undelete/{path:+}")
                .input::<SecretPath>()
                .input::<UndeleteVersions>()
                .op(Operation::Update, |b, req, f| {
                    Box::pin(async move { versions_undelete(&b, req, f).await })
                })
                .existence(|_, _, _| Box::pin(async move { Ok(true) }))
                .help(UNDELETE_SYNOPSIS, UNDELETE_DESCRIPTION),
            Path::new("destroy/{path:+}")
                .input::<SecretPath>()
                .input::<DestroyVersions>()
                .op(Operation::Update, |b, req, f| {
                    Box::pin(async move { versions_destroy(&b, req, f).await })
                })
                .existence(|_, _, _| Box::pin(async move { Ok(true) }))
                .help(DESTROY_SYNOPSIS, DESTROY_DESCRIPTION),
            Path::new("metadata/{path:*}")
                .input::<SecretPath>()
                .input::<MetadataInput>()
                .op(Operation::Read, |b, req, f| {
                    Box::pin(async move { metadata_read(&b, req, f).await })
                })
                .op(Operation::List, |b, req, f| {
                    Box::pin(async move { metadata_list(&b, req, f).await })
                })
                .op(Operation::Update, |b, req, f| {
                    Box::pin(async move { metadata_write(&b, req, f).await })
                })
                .op(Operation::Patch, |b, req, f| {
                    Box::pin(async move { metadata_patch(&b, req, f).await })
                })
                .op(Operation::Delete, |b, req, f| {
                    Box::pin(async move { metadata_delete(&b, req, f).await })
                })
                .existence(|b, req, f| Box::pin(async move { secret_exists(&b, req, f).await }))
                .help(METADATA_SYNOPSIS, METADATA_DESCRIPTION),
            Path::new("subkeys/{path:+}")
                .input::<SecretPath>()
                .input::<ReadVersion>()
                .input::<SubkeysDepth>()
                .op(Operation::Read, |b, req, f| {
                    Box::pin(async move { subkeys_read(&b, req, f).await })
                })
                .help(SUBKEYS_SYNOPSIS, SUBKEYS_DESCRIPTION),
            // Last, so it only sees what no path above serves: a KV version 1 style request.
            Path::new("{path:*}")
                .input::<SecretPath>()
                .free_form()
                .op(Operation::Read, |_, req, _| {
                    Box::pin(async move { wrong_version(&req, "get") })
                })
                .op(Operation::Update, |_, req, _| {
                    Box::pin(async move { wrong_version(&req, "put") })
                })
                .op(Operation::Patch, |_, req, _| {
                    Box::pin(async move { wrong_version(&req, "patch") })
                })
                .op(Operation::List, |_, req, _| {
                    Box::pin(async move { wrong_version(&req, "list") })
                })
                .op(Operation::Delete, |_, req, _| {
                    Box::pin(async move { wrong_version(&req, "delete") })
                })
                .help(UNVERSIONED_SYNOPSIS, UNVERSIONED_DESCRIPTION),
        ],
        special: SpecialPaths::default(),
        help: "The KV secrets engine, version 2: versioned key/value storage with check-and-set.",
    }
}

// ---------------------------------------------------------------------------------------------
// Input helpers: every error names the field it is about.

/// The value of the integer field `name`, which must not be negative.
fn non_negative(name: &str, v: i64) -> Result<u64> {
    u64::try_from(v).map_err(|_| {
        LogicalError::invalid(format!(
            "field {name:?} must be a non-negative integer, got {v}"
        ))
    })
}

/// The secret's path, refusing the empty path and folders for operations on one secret.
fn secret_path(f: &Fields) -> Result<String> {
    let SecretPath { path } = f.input();
    if path.is_empty() {
        return Err(LogicalError::invalid("missing required field \"path\""));
    }
    if path.ends_with('/') {
        return Err(LogicalError::invalid(
            "cannot write to a path ending in '/'",
        ));
    }
    Ok(path)
}

/// `options.cas`, if given. Any integer is a `cas`: a negative one names a version no secret
/// is ever at, so it fails the check as a mismatch (as in Vault), not as bad input.
fn cas_option(options: &Map<String, Value>) -> Result<Option<i64>> {
    let Some(v) = options.get("cas") else {
        return Ok(None);
    };
    let bad = || {
        LogicalError::invalid(format!(
            "error converting input {v} for field \"cas\": expected an integer"
        ))
    };
    match v {
        Value::Null => Ok(None),
        Value::Number(n) => n.as_i64().map(Some).ok_or_else(bad),
        Value::String(s) => s.trim().parse::<i64>().map(Some).map_err(|_| bad()),
        _ => Err(bad()),
    }
}

/// The `data` object of a write or patch (`sent`, [`DataWrite::data`]); absent or null is
/// Vault's "no data provided". A sent `null` parses as an empty object, so it is told apart
/// from `{}` by the request's own keys.
fn data_object(sent: Option<Map<String, Value>>, f: &Fields) -> Result<Map<String, Value>> {
    match sent {
        Some(data) if !matches!(f.raw.get("data"), None | Some(Value::Null)) => Ok(data),
        _ => Err(LogicalError::invalid("no data provided")),
    }
}

/// The `versions` list of delete/undelete/destroy. An empty list is refused in Vault's words,
/// which are capitalised for delete and undelete and not for destroy.
fn versions_list(raw: Vec<String>, action: VersionAction) -> Result<Vec<u64>> {
    if raw.is_empty() {
        return Err(LogicalError::invalid(match action {
            VersionAction::Destroy => "no version number provided",
            VersionAction::Delete | VersionAction::Undelete => "No version number provided",
        }));
    }
    raw.iter()
        .map(|s| {
            s.parse::<u64>().map_err(|_| {
                LogicalError::invalid(format!(
                    "error converting input {s:?} for field \"versions\": expected a version number"
                ))
            })
        })
        .collect()
}

/// Parses and checks `custom_metadata` values: a JSON object of strings (a number is taken as
/// its text, a boolean as "1" or "0", as Vault stores them). `null` members are kept as
/// `None` for merge patches.
fn custom_metadata_entries(v: &Value) -> Result<BTreeMap<String, Option<String>>> {
    let Value::Object(m) = v else {
        return Err(LogicalError::invalid(format!(
            "error converting input {v} for field \"custom_metadata\": expected a map of strings"
        )));
    };
    m.iter()
        .map(|(k, x)| {
            let s = match x {
                Value::Null => None,
                Value::String(s) => Some(s.clone()),
                Value::Number(_) => Some(x.to_string()),
                // Vault's weak decoding of a boolean into a string.
                Value::Bool(b) => Some(if *b { "1" } else { "0" }.to_owned()),
                _ => {
                    return Err(LogicalError::invalid(format!(
                        "field \"custom_metadata\": the value of key {k:?} must be a string"
                    )));
                }
            };
            Ok((k.clone(), s))
        })
        .collect()
}

fn check_custom_metadata(m: &BTreeMap<String, String>) -> Result<()> {
    let mut problems = Vec::new();
    if m.len() > CUSTOM_METADATA_MAX_KEYS {
        problems.push(format!(
            "{} keys exceed the limit of {CUSTOM_METADATA_MAX_KEYS}",
            m.len()
        ));
    }
    for (k, v) in m {
        if k.is_empty() {
            problems.push("keys must not be empty".to_owned());
        }
        if k.len() > CUSTOM_METADATA_MAX_KEY_LEN {
            problems.push(format!(
                "key {k:?} is longer than {CUSTOM_METADATA_MAX_KEY_LEN} bytes"
            ));
        }
        if v.len() > CUSTOM_METADATA_MAX_VALUE_LEN {
            problems.push(format!(
                "the value of key {k:?} is longer than {CUSTOM_METADATA_MAX_VALUE_LEN} bytes"
            ));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(LogicalError::invalid(format!(
            "field \"custom_metadata\" is invalid: {}",
            problems.join("; ")
        )))
    }
}

// ---------------------------------------------------------------------------------------------
// Policy: which of the mount's and the secret's settings applies.

/// 0 is unset on either side; when the mount and the secret both set a limit, the greater one
/// applies (Vault's rule: a secret's own limit cannot keep fewer versions than the mount's);
/// with neither set, ten versions are kept.
fn effective_max_versions(meta: &SecretMeta, config: &Config) -> u64 {
    match meta.max_versions.max(config.max_versions) {
        0 => DEFAULT_MAX_VERSIONS,
        n => n,
    }
}

/// The secret's own value applies unless the mount's is set and shorter.
fn effective_delete_version_after(meta: &SecretMeta, config: &Config) -> u64 {
    match (
        meta.delete_version_after_secs,
        config.delete_version_after_secs,
    ) {
        (0, c) => c,
        (m, 0) => m,
        (m, c) => m.min(c),
    }
}

/// When a version written (or undeleted) at `now` is to be deleted, if delete_version_after
/// applies to the secret.
fn scheduled_deletion(meta: &SecretMeta, config: &Config, now: u64) -> Option<u64> {
    let dva = effective_delete_version_after(meta, config);
    (dva > 0).then(|| now.saturating_add(dva.saturating_mul(1_000_000_000)))
}

fn check_cas(meta: &SecretMeta, config: &Config, cas: Option<i64>) -> Result<()> {
    match cas {
        Some(c) if u64::try_from(c) != Ok(meta.current_version) => Err(LogicalError::invalid(
            "check-and-set parameter did not match the current version",
        )),
        None if meta.cas_required || config.cas_required => Err(LogicalError::invalid(
            "check-and-set parameter required for this call",
        )),
        _ => Ok(()),
    }
}

// ---------------------------------------------------------------------------------------------
// Response shapes.

fn time_or_empty(ns: Option<u64>) -> Value {
    Value::String(ns.map(format_rfc3339_nano).unwrap_or_default())
}

fn custom_metadata_json(meta: &SecretMeta) -> Value {
    match &meta.custom_metadata {
        None => Value::Null,
        Some(m) => Value::Object(
            m.iter()
                .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                .collect(),
        ),
    }
}

/// The per-version metadata of data reads, writes and subkeys.
fn version_json(meta: &SecretMeta, n: u64, vm: &VersionMeta) -> Value {
    json!({
        "created_time": format_rfc3339_nano(vm.created_ns),
        "custom_metadata": custom_metadata_json(meta),
        "deletion_time": time_or_empty(vm.deletion_ns),
        "destroyed": vm.destroyed,
        "version": n,
    })
}

fn metadata_json(meta: &SecretMeta) -> Value {
    let versions: Map<String, Value> = meta
        .versions
        .iter()
        .map(|(n, vm)| {
            (
                n.to_string(),
                json!({
                    "created_time": format_rfc3339_nano(vm.created_ns),
                    "deletion_time": time_or_empty(vm.deletion_ns),
                    "destroyed": vm.destroyed,
                }),
            )
        })
        .collect();
    json!({
        "cas_required": meta.cas_required,
        "created_time": format_rfc3339_nano(meta.created_ns),
        "current_version": meta.current_version,
        "custom_metadata": custom_metadata_json(meta),
        "delete_version_after": format_go(Duration::from_secs(meta.delete_version_after_secs)),
        "max_versions": meta.max_versions,
        "oldest_version": meta.oldest_version,
        "updated_time": format_rfc3339_nano(meta.updated_ns),
        "versions": versions,
    })
}

// ---------------------------------------------------------------------------------------------
// Shared steps.

/// Adds `data` as the next version of the secret, prunes versions beyond the limit and saves
/// everything. Returns the new version's metadata object.
async fn write_version(
    s: &dyn Storage,
    config: &Config,
    meta: &mut SecretMeta,
    path: &str,
    data: Map<String, Value>,
    now: u64,
) -> Result<Value> {
    let (n, vm, pruned) = stage_version(config, meta, now);
    // The new version, the pruned versions' erasure and the metadata go in one commit: one
    // fsync per write, and no state where metadata and data disagree.
    store::write_versions_atomically(s, path, vec![(n, data)], &pruned, meta).await?;
    Ok(version_json(meta, n, &vm))
}

/// Adds the next version to `meta` (not to storage): its number, its metadata, and the
/// versions `max_versions` pushes out.
fn stage_version(config: &Config, meta: &mut SecretMeta, now: u64) -> (u64, VersionMeta, Vec<u64>) {
    let n = meta.current_version + 1;
    let deletion_ns = scheduled_deletion(meta, config, now);
    let vm = VersionMeta {
        created_ns: now,
        deletion_ns,
        destroyed: false,
    };
    meta.versions.insert(n, vm.clone());
    meta.current_version = n;
    meta.updated_ns = now;
    let max = usize::try_from(effective_max_versions(meta, config)).unwrap_or(usize::MAX);
    let excess = meta.versions.len().saturating_sub(max);
    let pruned: Vec<u64> = meta.versions.keys().take(excess).copied().collect();
    for old in &pruned {
        meta.versions.remove(old);
    }
    if !pruned.is_empty() {
        meta.oldest_version = meta.versions.keys().next().copied().unwrap_or(n);
    }
    (n, vm, pruned)
}

/// One `PUT data/<path>` waiting to be written (see [`data_write`]).
pub(crate) struct PendingWrite {
    data: Map<String, Value>,
    cas: Option<i64>,
    reply: tokio::sync::oneshot::Sender<Result<Value>>,
}

/// Writes queued for one secret, in arrival order, as one commit: each is checked against the
/// metadata the ones before it left (so check-and-set holds exactly as if they ran one by
/// one), then every new version and the final metadata are written together — only if the
/// metadata is still at the revision read. Otherwise another writer (another server sharing
/// the storage) got there first, and the whole batch is decided again on what it wrote: the
/// in-process lock batches writes, storage decides who wins.
async fn write_batch(b: &Engine, s: &dyn Storage, path: &str, batch: Vec<PendingWrite>) {
    let now = b.now_ns();
    let outcome = loop {
        let loaded = async {
            let config = store::load_config(s).await?;
            let (meta, rev) = store::load_meta_with_revision(s, path).await?;
            Ok::<_, LogicalError>((config, meta.unwrap_or_else(|| SecretMeta::new(now)), rev))
        };
        let (config, mut meta, rev) = match loaded.await {
            Ok(x) => x,
            Err(e) => break Err(e),
        };
        let mut staged: Vec<(u64, Map<String, Value>)> = Vec::new();
        let mut pruned: Vec<u64> = Vec::new();
        let mut plan: Vec<Result<(u64, VersionMeta)>> = Vec::with_capacity(batch.len());
        for p in &batch {
            if let Err(e) = check_cas(&meta, &config, p.cas) {
                plan.push(Err(e));
                continue;
            }
            let (n, vm, gone) = stage_version(&config, &mut meta, now);
            staged.push((n, p.data.clone()));
            pruned.extend(gone);
            plan.push(Ok((n, vm)));
        }
        if !plan.iter().any(|r| r.is_ok()) {
            break Ok((meta, plan));
        }
        // A version written and pushed out within the same batch is never stored.
        staged.retain(|(n, _)| !pruned.contains(n));
        match store::write_versions_if(s, path, staged, &pruned, &meta, rev).await {
            Ok(true) => break Ok((meta, plan)),
            Ok(false) => continue,
            Err(e) => break Err(e),
        }
    };
    match outcome {
        Err(e) => {
            for p in batch {
                let _ = p.reply.send(Err(e.clone()));
            }
        }
        Ok((meta, plan)) => {
            for (p, r) in batch.into_iter().zip(plan) {
                let _ = p.reply.send(r.map(|(n, vm)| version_json(&meta, n, &vm)));
            }
        }
    }
}

/// Which version a read asks for, or `None` when there is nothing to read.
fn requested_version(meta: &SecretMeta, asked: u64) -> Option<(u64, &VersionMeta)> {
    let n = if asked == 0 {
        meta.current_version
    } else {
        asked
    };
    meta.versions.get(&n).map(|vm| (n, vm))
}

// ---------------------------------------------------------------------------------------------
// Handlers.

async fn secret_exists(_b: &Arc<Engine>, req: Request, f: Fields) -> Result<bool> {
    let SecretPath { path } = f.input();
    if path.is_empty() {
        return Ok(false);
    }
    Ok(store::load_meta(&*req.storage, &path).await?.is_some())
}

async fn config_read(_b: &Arc<Engine>, req: Request, _f: Fields) -> Result<Option<Response>> {
    let c = store::load_config(&*req.storage).await?;
    Ok(Some(Response::json(json!({
        "cas_required": c.cas_required,
        "delete_version_after": format_go(Duration::from_secs(c.delete_version_after_secs)),
        "max_versions": c.max_versions,
    }))))
}

async fn config_write(b: &Arc<Engine>, req: Request, f: Fields) -> Result<Option<Response>> {
    let input: ConfigInput = f.input();
    let max_versions = input
        .max_versions
        .map(|v| non_negative("max_versions", v))
        .transpose()?;
    let _guard = b.lock(&req, "\0config").await;
    let s = &*req.storage;
    let mut c = store::load_config(s).await?;
    if let Some(n) = max_versions {
        c.max_versions = n;
    }
    if let Some(on) = input.cas_required {
        c.cas_required = on;
    }
    if let Some(d) = input.delete_version_after {
        c.delete_version_after_secs = d.as_secs();
    }
    store::save_config(s, &c).await?;
    Ok(None)
}

async fn data_read(b: &Arc<Engine>, req: Request, f: Fields) -> Result<Option<Response>> {
    let asked = non_negative("version", f.input::<ReadVersion>().version)?;
    let SecretPath { path } = f.input();
    let s = &*req.storage;
    let Some(meta) = store::load_meta(s, &path).await? else {
        return Ok(None);
    };
    let Some((n, vm)) = requested_version(&meta, asked) else {
        return Ok(None);
    };
    let metadata = version_json(&meta, n, vm);
    let data = if vm.is_live(b.now_ns()) {
        // A version pruned or destroyed between the two reads reads as gone.
        store::load_version(s, &path, n)
            .await?
            .map(Value::Object)
            .unwrap_or(Value::Null)
    } else {
        Value::Null
    };
    let gone = data.is_null();
    let mut r = Response::json(json!({ "data": data, "metadata": metadata }));
    r.not_found = gone;
    Ok(Some(r))
}

/// Writes to one secret are combined: each request queues its write, and whoever holds the
/// secret's lock writes everything queued so far in one commit. Concurrent writers of the
/// same secret thus share one fsync instead of taking turns at one each. The batch runs in its
/// own task, so a client that goes away cannot abandon the writes queued behind it.
async fn data_write(b: &Arc<Engine>, req: Request, f: Fields) -> Result<Option<Response>> {
    let path = secret_path(&f)?;
    let DataWrite { data, options } = f.input();
    let data = data_object(data, &f)?;
    let cas = cas_option(&options)?;
    let (reply, answer) = tokio::sync::oneshot::channel();
    let first = b.queue_write(&req, &path, PendingWrite { data, cas, reply });
    if first {
        let (b, storage, path) = (b.clone(), req.storage.clone(), path.clone());
        let accessor = req.mount.mount_accessor.clone();
        tokio::spawn(async move {
            let _guard = b.lock_key(&accessor, &path).await;
            let batch = b.take_writes(&accessor, &path);
            if !batch.is_empty() {
                write_batch(&b, &*storage, &path, batch).await;
            }
        });
    }
    let written = answer
        .await
        .map_err(|_| LogicalError::internal("the write was abandoned"))??;
    Ok(Some(Response::json(written)))
}

async fn data_patch(b: &Arc<Engine>, req: Request, f: Fields) -> Result<Option<Response>> {
    let path = secret_path(&f)?;
    let DataWrite { data, options } = f.input();
    let patch = data_object(data, &f)?;
    let cas = cas_option(&options)?;
    let _guard = b.lock(&req, &path).await;
    let s = &*req.storage;
    let now = b.now_ns();
    let config = store::load_config(s).await?;
    let not_found = || LogicalError::NotFound(format!("no secret to patch at {path:?}"));
    let Some(mut meta) = store::load_meta(s, &path).await? else {
        return Err(not_found());
    };
    check_cas(&meta, &config, cas)?;
    let Some((n, vm)) = requested_version(&meta, 0) else {
        return Err(not_found());
    };
    if !vm.is_live(now) {
        return Err(LogicalError::NotFound(format!(
            "the current version of {path:?} is deleted or destroyed and cannot be patched"
        )));
    }
    let Some(current) = store::load_version(s, &path, n).await? else {
        return Err(not_found());
    };
    let mut merged = Value::Object(current);
    merge_patch(&mut merged, &Value::Object(patch));
    let Value::Object(merged) = merged else {
        return Err(LogicalError::internal(
            "merge patch of two objects produced a non-object",
        ));
    };
    let written = write_version(s, &config, &mut meta, &path, merged, now).await?;
    Ok(Some(Response::json(written)))
}

async fn data_delete(b: &Arc<Engine>, req: Request, f: Fields) -> Result<Option<Response>> {
    let SecretPath { path } = f.input();
    let _guard = b.lock(&req, &path).await;
    let s = &*req.storage;
    let now = b.now_ns();
    let Some(mut meta) = store::load_meta(s, &path).await? else {
        return Ok(None);
    };
    let current = meta.current_version;
    if let Some(vm) = meta.versions.get_mut(&current).filter(|vm| vm.is_live(now)) {
        vm.deletion_ns = Some(now);
        store::save_meta(s, &path, &meta).await?;
    }
    Ok(None)
}

/// What a `versions` endpoint does to each version it names.
#[derive(Clone, Copy)]
enum VersionAction {
    Delete,
    Undelete,
    Destroy,
}

/// Applies `action` to the `versions` (as sent) of the secret at the request's `path`.
async fn apply_to_versions(
    b: &Arc<Engine>,
    req: Request,
    f: Fields,
    versions: Vec<String>,
    action: VersionAction,
) -> Result<Option<Response>> {
    let SecretPath { path } = f.input();
    let versions = versions_list(versions, action)?;
    let _guard = b.lock(&req, &path).await;
    let s = &*req.storage;
    let now = b.now_ns();
    let Some(mut meta) = store::load_meta(s, &path).await? else {
        return Ok(None);
    };
    // An undeleted version is scheduled for deletion again when delete_version_after applies,
    // counted from now, as a new version would be (Vault's rule).
    let rearmed = match action {
        VersionAction::Undelete => {
            let config = store::load_config(s).await?;
            scheduled_deletion(&meta, &config, now)
        }
        _ => None,
    };
    let mut changed = false;
    for n in versions {
        let Some(vm) = meta.versions.get_mut(&n) else {
            continue;
        };
        match action {
            VersionAction::Delete if vm.is_live(now) => {
                vm.deletion_ns = Some(now);
                changed = true;
            }
            VersionAction::Undelete if !vm.destroyed && vm.deletion_ns.is_some() => {
                vm.deletion_ns = rearmed;
                changed = true;
            }
            VersionAction::Destroy if !vm.destroyed => {
                store::delete_version(s, &path, n).await?;
                vm.destroyed = true;
                changed = true;
            }
            _ => {}
        }
    }
    if changed {
        store::save_meta(s, &path, &meta).await?;
    }
    Ok(None)
}

async fn versions_delete(b: &Arc<Engine>, req: Request, f: Fields) -> Result<Option<Response>> {
    let versions = f.input::<DeleteVersions>().versions;
    apply_to_versions(b, req, f, versions, VersionAction::Delete).await
}

async fn versions_undelete(b: &Arc<Engine>, req: Request, f: Fields) -> Result<Option<Response>> {
    let versions = f.input::<UndeleteVersions>().versions;
    apply_to_versions(b, req, f, versions, VersionAction::Undelete).await
}

async fn versions_destroy(b: &Arc<Engine>, req: Request, f: Fields) -> Result<Option<Response>> {
    let versions = f.input::<DestroyVersions>().versions;
    apply_to_versions(b, req, f, versions, VersionAction::Destroy).await
}

async fn metadata_read(_b: &Arc<Engine>, req: Request, f: Fields) -> Result<Option<Response>> {
    let SecretPath { path } = f.input();
    if path.is_empty() {
        return Ok(None);
    }
    let meta = store::load_meta(&*req.storage, &path).await?;
    Ok(meta.map(|m| Response::json(metadata_json(&m))))
}

async fn metadata_list(_b: &Arc<Engine>, req: Request, f: Fields) -> Result<Option<Response>> {
    let SecretPath { path: mut folder } = f.input();
    if !folder.is_empty() && !folder.ends_with('/') {
        folder.push('/');
    }
    let mut keys = req
        .storage
        .list(&format!("{}{folder}", store::META_PREFIX))
        .await?;
    keys.sort();
    Ok(Some(Response::list(keys)))
}

/// Applies the settings fields common to metadata write and patch (those sent).
fn apply_settings(meta: &mut SecretMeta, input: &MetadataInput) -> Result<()> {
    if let Some(n) = input.max_versions {
        meta.max_versions = non_negative("max_versions", n)?;
    }
    if let Some(on) = input.cas_required {
        meta.cas_required = on;
    }
    if let Some(d) = input.delete_version_after {
        meta.delete_version_after_secs = d.as_secs();
    }
    Ok(())
}

fn stored_custom_metadata(m: BTreeMap<String, String>) -> Option<BTreeMap<String, String>> {
    (!m.is_empty()).then_some(m)
}

async fn metadata_write(b: &Arc<Engine>, req: Request, f: Fields) -> Result<Option<Response>> {
    let path = secret_path(&f)?;
    let input: MetadataInput = f.input();
    let custom = match &input.custom_metadata {
        None => None,
        Some(Value::Null) => Some(None),
        Some(v) => {
            let entries = custom_metadata_entries(v)?;
            let mut m = BTreeMap::new();
            for (k, x) in entries {
                let x = x.ok_or_else(|| {
                    LogicalError::invalid(format!(
                        "field \"custom_metadata\": the value of key {k:?} must be a string"
                    ))
                })?;
                m.insert(k, x);
            }
            check_custom_metadata(&m)?;
            Some(stored_custom_metadata(m))
        }
    };
    let _guard = b.lock(&req, &path).await;
    let s = &*req.storage;
    let now = b.now_ns();
    let mut meta = store::load_meta(s, &path)
        .await?
        .unwrap_or_else(|| SecretMeta::new(now));
    apply_settings(&mut meta, &input)?;
    if let Some(custom) = custom {
        meta.custom_metadata = custom;
    }
    store::save_meta(s, &path, &meta).await?;
    Ok(None)
}

async fn metadata_patch(b: &Arc<Engine>, req: Request, f: Fields) -> Result<Option<Response>> {
    let path = secret_path(&f)?;
    let input: MetadataInput = f.input();
    let _guard = b.lock(&req, &path).await;
    let s = &*req.storage;
    let Some(mut meta) = store::load_meta(s, &path).await? else {
        return Err(LogicalError::NotFound(format!(
            "no metadata to patch at {path:?}"
        )));
    };
    apply_settings(&mut meta, &input)?;
    if let Some(custom) = &input.custom_metadata {
        match custom {
            Value::Null => meta.custom_metadata = None,
            v => {
                let mut m = meta.custom_metadata.take().unwrap_or_default();
                for (k, x) in custom_metadata_entries(v)? {
                    match x {
                        Some(x) => m.insert(k, x),
                        None => m.remove(&k),
                    };
                }
                check_custom_metadata(&m)?;
                meta.custom_metadata = stored_custom_metadata(m);
            }
        }
    }
    store::save_meta(s, &path, &meta).await?;
    Ok(None)
}

async fn metadata_delete(b: &Arc<Engine>, req: Request, f: Fields) -> Result<Option<Response>> {
    let path = secret_path(&f)?;
    let _guard = b.lock(&req, &path).await;
    let s = &*req.storage;
    let Some(meta) = store::load_meta(s, &path).await? else {
        return Ok(None);
    };
    for n in meta.versions.keys() {
        store::delete_version(s, &path, *n).await?;
    }
    // Anything a crash once left behind under this secret goes too.
    s.delete_prefix(&store::versions_prefix(&path)).await?;
    s.delete(&store::meta_key(&path)).await?;
    Ok(None)
}

async fn subkeys_read(b: &Arc<Engine>, req: Request, f: Fields) -> Result<Option<Response>> {
    let asked = non_negative("version", f.input::<ReadVersion>().version)?;
    let depth = non_negative("depth", f.input::<SubkeysDepth>().depth)?;
    let SecretPath { path } = f.input();
    let s = &*req.storage;
    let Some(meta) = store::load_meta(s, &path).await? else {
        return Ok(None);
    };
    let Some((n, vm)) = requested_version(&meta, asked) else {
        return Ok(None);
    };
    let metadata = version_json(&meta, n, vm);
    let keys = if vm.is_live(b.now_ns()) {
        store::load_version(s, &path, n)
            .await?
            .map(|d| subkeys(&d, depth))
            .unwrap_or(Value::Null)
    } else {
        Value::Null
    };
    let gone = keys.is_null();
    let mut r = Response::json(json!({ "subkeys": keys, "metadata": metadata }));
    r.not_found = gone;
    Ok(Some(r))
}
