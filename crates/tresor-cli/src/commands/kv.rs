//! `kv ...`: the key/value commands, for both KV versions.
//!
//! Every command first asks the server which mount holds the path and which KV version it
//! runs (`GET sys/internal/ui/mounts/<path>`; a 404 means an old server and KV v1). For
//! version 2 the API path gets `data/`, `metadata/`, `delete/`, `undelete/` or `destroy/`
//! inserted right after the mount path; version 1 paths are used as given. With `-mount`
//! the argument is the path inside that mount.

use serde_json::{Map, Value, json};
use tresor_client::Method;

use super::{
    Cli, CliError, CmdResult, Usage, exact_args, max_args, min_args, remote, sanitize_path,
    ttl_for_api,
};
use crate::client::{ApiError, Client, ClientError, Request};
use crate::flags::{Kind, Parsed, Spec, flag};
use crate::format;
use crate::secret::{self, Secret};

const MOUNT: Spec = flag(
    "mount",
    Kind::Str,
    "The KV mount; the argument is then the path inside it.",
);

/// Go's `path.Join`: non-empty parts joined by `/`, then cleaned (no empty or `.` segments,
/// `..` applied, no trailing slash).
pub fn path_join(parts: &[&str]) -> String {
    let joined = parts
        .iter()
        .filter(|p| !p.is_empty())
        .copied()
        .collect::<Vec<_>>()
        .join("/");
    let absolute = joined.starts_with('/');
    let mut out: Vec<&str> = Vec::new();
    for seg in joined.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                if out.last().is_some_and(|l| *l != "..") {
                    out.pop();
                } else if !absolute {
                    out.push("..");
                }
            }
            s => out.push(s),
        }
    }
    let body = out.join("/");
    if absolute { format!("/{body}") } else { body }
}

/// Inserts `api_prefix` after the mount path: `secret/foo` in mount `secret/` becomes
/// `secret/data/foo`. With `skip_if_present`, a path that already starts with the prefix
/// inside the mount is left alone.
pub fn add_prefix(path: &str, mount: &str, api_prefix: &str, skip_if_present: bool) -> String {
    if path == mount || path == mount.trim_end_matches('/') {
        return path_join(&[mount, api_prefix]);
    }
    let mut mount_path = mount.to_string();
    let suffix = loop {
        if mount_path.is_empty() {
            break path.to_string();
        }
        if let Some(s) = path.strip_prefix(mount_path.as_str()) {
            break s.to_string();
        }
        // Drop the leading segment: the mount path may carry a namespace the path lacks.
        mount_path = match mount_path.split_once('/') {
            Some((_, rest)) => rest.to_string(),
            None => String::new(),
        };
    };
    if skip_if_present
        && (suffix.starts_with(api_prefix) || suffix.starts_with(&format!("/{api_prefix}")))
    {
        return path.to_string();
    }
    path_join(&[&mount_path, api_prefix, &suffix])
}

/// Reads the mount path and KV version from a preflight response's data.
pub fn version_from_preflight(data: &Map<String, Value>) -> (String, bool) {
    let mount = data
        .get("path")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let v2 = data
        .get("options")
        .and_then(Value::as_object)
        .and_then(|o| o.get("version"))
        .and_then(Value::as_str)
        == Some("2");
    (mount, v2)
}

/// Asks the server which mount holds `path` and whether it is KV v2.
pub fn preflight(client: &Client, path: &str) -> Result<(String, bool), ClientError> {
    let req = Request::new(Method::GET, &format!("sys/internal/ui/mounts/{path}")).no_wrap();
    let resp = client.send(&req)?;
    if resp.status == 404 {
        return Ok((String::new(), false));
    }
    if resp.status >= 400 {
        return Err(ApiError::from_response(&resp).into());
    }
    let secret = secret::parse(&resp.body)?
        .ok_or_else(|| secret::DecodeError("nil response from pre-flight request".to_string()))?;
    Ok(version_from_preflight(&secret.data()))
}

/// Where a kv command's path lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KvPath {
    /// The mount path, with a trailing slash (empty for pre-preflight servers).
    pub mount: String,
    /// Whether the mount is KV version 2.
    pub v2: bool,
    /// The path including the mount, before any API prefix.
    pub partial: String,
    /// Whether `-mount` was used.
    pub mount_flag: bool,
}

impl KvPath {
    /// The v2 API path with `prefix` inserted.
    pub fn v2(&self, prefix: &str) -> String {
        add_prefix(&self.partial, &self.mount, prefix, false)
    }

    /// The v1 API path.
    pub fn v1(&self) -> String {
        if self.mount_flag {
            path_join(&[&self.mount, &self.partial])
        } else {
            self.partial.clone()
        }
    }

    /// The data path for either version.
    pub fn data_path(&self) -> String {
        if self.v2 { self.v2("data") } else { self.v1() }
    }
}

/// Builds a [`KvPath`] from a preflight answer; pure, so it can be tested without a server.
pub fn kv_path(arg: &str, mount_flag: Option<&str>, preflight_mount: &str, v2: bool) -> KvPath {
    let given = sanitize_path(arg);
    match mount_flag {
        Some(m) => {
            let mount = if preflight_mount.is_empty() {
                format!("{}/", sanitize_path(m))
            } else {
                preflight_mount.to_string()
            };
            let partial = if v2 {
                path_join(&[&mount, &given])
            } else {
                given
            };
            KvPath {
                mount,
                v2,
                partial,
                mount_flag: true,
            }
        }
        None => KvPath {
            mount: preflight_mount.to_string(),
            v2,
            partial: given,
            mount_flag: false,
        },
    }
}

fn resolve(client: &Client, p: &Parsed, arg: &str) -> Result<KvPath, CliError> {
    let mount_flag = p.str("mount").filter(|m| !m.is_empty());
    let probe = match mount_flag {
        Some(m) => sanitize_path(m),
        None => sanitize_path(arg),
    };
    let (mount, v2) = preflight(client, &probe).map_err(|e| CliError::Remote(e.to_string()))?;
    Ok(kv_path(arg, mount_flag, &mount, v2))
}

/// The one path argument (optional when `-mount` is given).
fn path_arg(p: &Parsed) -> Result<String, CliError> {
    if p.args.is_empty() && p.is_set("mount") {
        return Ok(String::new());
    }
    exact_args(&p.args, 1)?;
    Ok(p.args[0].clone())
}

fn versions(p: &Parsed) -> Vec<Value> {
    p.list("versions").into_iter().map(Value::String).collect()
}

fn print_path_header(cli: &mut Cli<'_, '_>, path: &str, title: &str) {
    cli.outln(&format::header(title, path.chars().count()));
    cli.outln(path);
    cli.outln("");
}

fn warn(cli: &mut Cli<'_, '_>, secret: &Secret) {
    if let Some(w) = secret.warnings.as_ref().filter(|w| !w.is_empty()) {
        let block = format::warnings_block(w);
        let _ = std::io::Write::write_all(cli.ctx.stderr, block.as_bytes());
    }
}

const GET: Usage = Usage {
    text: "Usage: tresor kv get [options] KEY

  Retrieves the value at KEY. For KV version 2, -version selects an older version.",
    flags: &[
        MOUNT,
        flag(
            "version",
            Kind::Int,
            "The version to read (KV v2; default latest).",
        ),
    ],
};

/// `tresor kv get`.
pub fn get(cli: &mut Cli<'_, '_>, args: &[String]) -> CmdResult {
    let p = cli.parse(&GET, args)?;
    let arg = path_arg(&p)?;
    let client = cli.client(&p)?;
    let kv = resolve(&client, &p, &arg)?;
    let full = kv.data_path();
    let mut query = Vec::new();
    if kv.v2
        && let Some(v) = p.int("version").filter(|v| *v > 0)
    {
        query.push(("version".to_string(), v.to_string()));
    }
    let secret = client
        .read(&full, &query)
        .map_err(|e| remote(format_args!("reading {full}"), e))?;
    let Some(secret) = secret else {
        return Err(CliError::Remote(format!("No value found at {full}")));
    };
    if let Some(field) = cli.field.clone() {
        // v1 data and wrapped responses (wrapping_token etc.) are looked up as usual.
        if !kv.v2 || secret.wrap_info.is_some() {
            return cli.print_secret(&secret);
        }
        let inner = secret
            .data
            .as_ref()
            .and_then(|d| d.get("data"))
            .filter(|d| !d.is_null());
        let Some(inner) = inner.cloned() else {
            return Err(CliError::Remote(format!("No data found at {full}")));
        };
        if field == "data" && inner.get("data").is_none() {
            let v = secret.data.as_ref().and_then(|d| d.get("data")).cloned();
            return cli.print_field(v.as_ref(), &field);
        }
        return cli.print_field(inner.get(&field), &field);
    }
    if secret.wrap_info.is_some() || !cli.is_table() {
        return cli.print_secret(&secret);
    }
    warn(cli, &secret);
    if kv.v2 {
        print_path_header(cli, &full, "Secret Path");
    }
    let data = secret.data();
    if let Some(Value::Object(meta)) = data.get("metadata") {
        cli.outln(&format::header_for_map("Metadata", meta));
        if let Some(t) = format::map_table(meta) {
            cli.out(&t);
        }
        cli.outln("");
    }
    let shown = if kv.v2 {
        data.get("data").and_then(Value::as_object).cloned()
    } else {
        Some(data)
    };
    if let Some(d) = shown {
        cli.outln(&format::header_for_map("Data", &d));
        if let Some(t) = format::map_table(&d) {
            cli.out(&t);
        }
    }
    Ok(0)
}

fn print_write_result(
    cli: &mut Cli<'_, '_>,
    kv: &KvPath,
    full: &str,
    secret: Option<Secret>,
) -> CmdResult {
    let Some(secret) = secret else {
        if cli.is_table() {
            cli.outln(&format!("Success! Data written to: {full}"));
        }
        return Ok(0);
    };
    if cli.field.is_some() || !cli.is_table() {
        return cli.print_secret(&secret);
    }
    if kv.v2 {
        print_path_header(cli, full, "Secret Path");
    }
    cli.outln(&format::header_for_map("Metadata", &secret.data()));
    cli.print_secret(&secret)
}

const PUT: Usage = Usage {
    text: "Usage: tresor kv put [options] KEY [DATA]

  Writes the data to KEY, replacing what was there. Data is K=V pairs, k=@file, k=- or a
  lone - for a JSON object on stdin.",
    flags: &[
        MOUNT,
        flag(
            "cas",
            Kind::Int,
            "Check-and-set version (KV v2): 0 writes only if the key does not exist.",
        ),
    ],
};

/// `tresor kv put`.
pub fn put(cli: &mut Cli<'_, '_>, args: &[String]) -> CmdResult {
    let p = cli.parse(&PUT, args)?;
    if p.args.is_empty() {
        return Err(CliError::Usage(
            "Not enough arguments (expected >1, got 0)".to_string(),
        ));
    }
    let (arg, rest) = if p.is_set("mount") && p.args[0].contains('=') {
        (String::new(), &p.args[..])
    } else {
        (p.args[0].clone(), &p.args[1..])
    };
    let data = cli.kv_data(rest)?;
    if data.is_empty() {
        return Err(CliError::Usage("Must supply data".to_string()));
    }
    let client = cli.client(&p)?;
    let kv = resolve(&client, &p, &arg)?;
    let full = kv.data_path();
    let body = if kv.v2 {
        let mut options = Map::new();
        if let Some(cas) = p.int("cas").filter(|c| *c > -1) {
            options.insert("cas".to_string(), json!(cas));
        }
        json!({"data": data, "options": options})
    } else {
        Value::Object(data)
    };
    let secret = client
        .write(&full, body)
        .map_err(|e| remote(format_args!("writing data to {full}"), e))?;
    print_write_result(cli, &kv, &full, secret)
}

const PATCH: Usage = Usage {
    text: "Usage: tresor kv patch [options] KEY [DATA]

  Updates KEY (KV v2 only) without replacing keys that are not given. -method=patch sends a
  JSON merge patch; -method=rw reads, merges locally and writes back with check-and-set.",
    flags: &[
        MOUNT,
        flag("cas", Kind::Int, "Check-and-set version."),
        flag("method", Kind::Str, "patch (default) or rw."),
        flag(
            "remove-data",
            Kind::List,
            "Keys to remove from the secret; may repeat.",
        ),
    ],
};

/// `tresor kv patch`.
pub fn patch(cli: &mut Cli<'_, '_>, args: &[String]) -> CmdResult {
    let p = cli.parse(&PATCH, args)?;
    min_args(&p.args, 1)?;
    let data = cli.kv_data(&p.args[1..])?;
    let removals = p.list("remove-data");
    if data.is_empty() && removals.is_empty() {
        return Err(CliError::Usage("Must supply data".to_string()));
    }
    let client = cli.client(&p)?;
    let kv = resolve(&client, &p, &p.args[0])?;
    if !kv.v2 {
        return Err(CliError::Remote(
            "K/V engine mount must be version 2 for patch support".to_string(),
        ));
    }
    let full = kv.v2("data");
    let method = p.str("method").unwrap_or("patch");
    let secret = match method {
        "" | "patch" => {
            let mut patch_data = data;
            for key in removals {
                patch_data.insert(key, Value::Null);
            }
            let mut options = Map::new();
            if let Some(cas) = p.int("cas").filter(|c| *c > -1) {
                options.insert("cas".to_string(), json!(cas));
            }
            client
                .patch(&full, json!({"data": patch_data, "options": options}))
                .map_err(|e| remote(format_args!("writing data to {full}"), e))?
        }
        "rw" => {
            let current = client
                .read(&full, &[])
                .map_err(|e| remote(format_args!("doing pre-read at {full}"), e))?
                .ok_or_else(|| CliError::Remote(format!("No value found at {full}")))?;
            let cur = current.data();
            let mut merged = cur
                .get("data")
                .and_then(Value::as_object)
                .cloned()
                .ok_or_else(|| CliError::Remote(format!("No data found at {full}")))?;
            for (k, v) in data {
                merged.insert(k, v);
            }
            for key in removals {
                merged.remove(&key);
            }
            let version = cur
                .get("metadata")
                .and_then(|m| m.get("version"))
                .and_then(Value::as_i64)
                .unwrap_or(0);
            let cas = p.int("cas").filter(|c| *c > -1).unwrap_or(version);
            client
                .write(&full, json!({"data": merged, "options": {"cas": cas}}))
                .map_err(|e| remote(format_args!("writing data to {full}"), e))?
        }
        other => {
            return Err(CliError::Usage(format!(
                "Unsupported method provided to -method flag: {other}"
            )));
        }
    };
    print_write_result(cli, &kv, &full, secret)
}

const DELETE: Usage = Usage {
    text: "Usage: tresor kv delete [options] KEY

  Deletes the data at KEY. For KV v2 this soft-deletes the latest version, or the versions
  given with -versions.",
    flags: &[
        MOUNT,
        flag("versions", Kind::List, "Versions to delete (KV v2)."),
    ],
};

/// `tresor kv delete`.
pub fn delete(cli: &mut Cli<'_, '_>, args: &[String]) -> CmdResult {
    let p = cli.parse(&DELETE, args)?;
    let arg = path_arg(&p)?;
    let client = cli.client(&p)?;
    let kv = resolve(&client, &p, &arg)?;
    let full = kv.data_path();
    let vs = versions(&p);
    let result = if kv.v2 && !vs.is_empty() {
        client.write(&kv.v2("delete"), json!({ "versions": vs }))
    } else {
        client.delete(&full, &[])
    };
    result.map_err(|e| remote(format_args!("deleting {full}"), e))?;
    if cli.is_table() {
        cli.outln(&format!("Success! Data deleted (if it existed) at: {full}"));
    }
    Ok(0)
}

const UNDELETE: Usage = Usage {
    text: "Usage: tresor kv undelete [options] KEY

  Restores soft-deleted versions of KEY (KV v2).",
    flags: &[MOUNT, flag("versions", Kind::List, "Versions to undelete.")],
};

const DESTROY: Usage = Usage {
    text: "Usage: tresor kv destroy [options] KEY

  Permanently removes versions of KEY (KV v2).",
    flags: &[MOUNT, flag("versions", Kind::List, "Versions to destroy.")],
};

fn versions_op(cli: &mut Cli<'_, '_>, args: &[String], usage: &Usage, op: &str) -> CmdResult {
    let p = cli.parse(usage, args)?;
    let arg = path_arg(&p)?;
    let vs = versions(&p);
    if vs.is_empty() {
        return Err(CliError::Usage(format!(
            "No versions provided, use the \"-versions\" flag to specify the version to {op}."
        )));
    }
    let client = cli.client(&p)?;
    let kv = resolve(&client, &p, &arg)?;
    if !kv.v2 {
        return Err(CliError::Local(format!(
            "{} not supported on KV Version 1",
            capitalise(op)
        )));
    }
    let path = kv.v2(op);
    let secret = client
        .write(&path, json!({ "versions": vs }))
        .map_err(|e| remote(format_args!("writing data to {path}"), e))?;
    match secret {
        Some(s) => cli.print_secret(&s),
        None => {
            if cli.is_table() {
                cli.outln(&format!("Success! Data written to: {path}"));
            }
            Ok(0)
        }
    }
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
        .unwrap_or_default()
}

/// `tresor kv undelete`.
pub fn undelete(cli: &mut Cli<'_, '_>, args: &[String]) -> CmdResult {
    versions_op(cli, args, &UNDELETE, "undelete")
}

/// `tresor kv destroy`.
pub fn destroy(cli: &mut Cli<'_, '_>, args: &[String]) -> CmdResult {
    versions_op(cli, args, &DESTROY, "destroy")
}

const ROLLBACK: Usage = Usage {
    text: "Usage: tresor kv rollback [options] KEY

  Writes the data of an older version of KEY as its newest version (KV v2).",
    flags: &[
        MOUNT,
        flag("version", Kind::Int, "The version to roll back to."),
    ],
};

/// `tresor kv rollback`.
pub fn rollback(cli: &mut Cli<'_, '_>, args: &[String]) -> CmdResult {
    let p = cli.parse(&ROLLBACK, args)?;
    let arg = path_arg(&p)?;
    let target = match p.int("version") {
        Some(v) if v > 0 => v,
        _ => {
            return Err(CliError::Usage(
                "Must specify a version to rollback to".to_string(),
            ));
        }
    };
    let client = cli.client(&p)?;
    let kv = resolve(&client, &p, &arg)?;
    if !kv.v2 {
        return Err(CliError::Local(
            "Rollback not supported on KV Version 1".to_string(),
        ));
    }
    let meta_path = kv.v2("metadata");
    let meta = client
        .read(&meta_path, &[])
        .map_err(|e| remote(format_args!("reading {meta_path}"), e))?
        .ok_or_else(|| CliError::Remote(format!("No value found at {meta_path}")))?
        .data();
    let current = meta
        .get("current_version")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    let info = meta
        .get("versions")
        .and_then(|v| v.get(target.to_string()))
        .ok_or_else(|| {
            CliError::Remote(format!(
                "Cannot roll back to a version that does not exist: {target}"
            ))
        })?;
    if info.get("destroyed").and_then(Value::as_bool) == Some(true) {
        return Err(CliError::Remote(format!(
            "Cannot roll back to a version that has been destroyed: {target}"
        )));
    }
    if info
        .get("deletion_time")
        .and_then(Value::as_str)
        .is_some_and(|t| !t.is_empty())
    {
        return Err(CliError::Remote(format!(
            "Cannot roll back to a version that has been deleted: {target}"
        )));
    }
    let full = kv.v2("data");
    let old = client
        .read(&full, &[("version".to_string(), target.to_string())])
        .map_err(|e| remote(format_args!("reading {full}"), e))?
        .ok_or_else(|| CliError::Remote(format!("No value found at {full}")))?;
    let data = old
        .data()
        .get("data")
        .cloned()
        .filter(|d| d.is_object())
        .ok_or_else(|| CliError::Remote(format!("No data found at {full}")))?;
    let secret = client
        .write(&full, json!({"data": data, "options": {"cas": current}}))
        .map_err(|e| remote(format_args!("writing data to {full}"), e))?;
    print_write_result(cli, &kv, &full, secret)
}

const LIST: Usage = Usage {
    text: "Usage: tresor kv list [options] PATH

  Lists the keys under PATH.",
    flags: &[MOUNT],
};

/// `tresor kv list`.
pub fn list(cli: &mut Cli<'_, '_>, args: &[String]) -> CmdResult {
    let p = cli.parse(&LIST, args)?;
    let arg = path_arg(&p)?;
    let client = cli.client(&p)?;
    let kv = resolve(&client, &p, &arg)?;
    let full = if kv.v2 {
        add_prefix(&kv.partial, &kv.mount, "metadata", true)
    } else {
        kv.v1()
    };
    let full = format!("{}/", full.trim_end_matches('/'));
    let secret = client
        .list(&full)
        .map_err(|e| remote(format_args!("listing {full}"), e))?;
    if let Some(s) = &secret
        && s.wrap_info.as_ref().is_some_and(|w| w.ttl != 0)
    {
        return cli.print_secret(s);
    }
    let keys_present = secret
        .as_ref()
        .and_then(|s| s.data.as_ref())
        .and_then(|d| d.get("keys"))
        .and_then(Value::as_array)
        .is_some_and(|k| !k.is_empty());
    if !cli.is_table() && !keys_present {
        cli.print_map(&Map::new())?;
        return Ok(2);
    }
    let Some(secret) = secret.filter(|s| s.data.is_some()) else {
        return Err(CliError::Remote(format!("No value found at {full}")));
    };
    super::logical::print_keys(cli, &secret, &full)
}

const ENABLE_VERSIONING: Usage = Usage {
    text: "Usage: tresor kv enable-versioning [options] MOUNT

  Upgrades a KV version 1 mount to version 2.",
    flags: &[],
};

/// `tresor kv enable-versioning`.
pub fn enable_versioning(cli: &mut Cli<'_, '_>, args: &[String]) -> CmdResult {
    let p = cli.parse(&ENABLE_VERSIONING, args)?;
    exact_args(&p.args, 1)?;
    let mount = super::mount_path(&p.args[0]);
    let client = cli.client(&p)?;
    let path = format!("sys/mounts/{mount}tune");
    let secret = client
        .write(&path, json!({"options": {"version": "2"}}))
        .map_err(|e| remote("tuning secrets engine", e))?;
    if let Some(s) = secret {
        warn(cli, &s);
    }
    cli.outln(&format!("Success! Tuned the secrets engine at: {mount}"));
    Ok(0)
}

const METADATA_GET: Usage = Usage {
    text: "Usage: tresor kv metadata get [options] KEY

  Prints the metadata of KEY and of each of its versions (KV v2).",
    flags: &[MOUNT],
};

/// `tresor kv metadata get`.
pub fn metadata_get(cli: &mut Cli<'_, '_>, args: &[String]) -> CmdResult {
    let p = cli.parse(&METADATA_GET, args)?;
    let arg = path_arg(&p)?;
    let client = cli.client(&p)?;
    let kv = resolve(&client, &p, &arg)?;
    if !kv.v2 {
        return Err(CliError::Local(
            "Metadata not supported on KV Version 1".to_string(),
        ));
    }
    let full = kv.v2("metadata");
    let secret = client
        .read(&full, &[])
        .map_err(|e| remote(format_args!("reading {full}"), e))?
        .ok_or_else(|| CliError::Remote(format!("No value found at {full}")))?;
    if let Some(field) = cli.field.clone() {
        let v = secret.data.as_ref().and_then(|d| d.get(&field)).cloned();
        return cli.print_field(v.as_ref(), &field);
    }
    if !cli.is_table() {
        return cli.print_secret(&secret);
    }
    warn(cli, &secret);
    print_path_header(cli, &full, "Metadata Path");
    let mut data = secret.data();
    let versions = data.remove("versions");
    cli.outln(&format::header_for_map("Metadata", &data));
    if let Some(t) = format::map_table(&data) {
        cli.out(&t);
    }
    if let Some(Value::Object(vmap)) = versions {
        let mut numbers: Vec<(i64, &String)> =
            vmap.keys().map(|k| (k.parse().unwrap_or(0), k)).collect();
        numbers.sort();
        for (n, key) in numbers {
            let info = vmap[key].as_object().cloned().unwrap_or_default();
            cli.outln("");
            cli.outln(&format::header_for_map(&format!("Version {n}"), &info));
            if let Some(t) = format::map_table(&info) {
                cli.out(&t);
            }
        }
    }
    Ok(0)
}

const METADATA_PUT: Usage = Usage {
    text: "Usage: tresor kv metadata put [options] KEY

  Creates or updates the settings of KEY (KV v2): version limits, check-and-set, automatic
  deletion and custom metadata.",
    flags: &[
        MOUNT,
        flag(
            "max-versions",
            Kind::Int,
            "Number of versions to keep (0 = mount default).",
        ),
        flag(
            "cas-required",
            Kind::Bool,
            "Require check-and-set on every write.",
        ),
        flag(
            "delete-version-after",
            Kind::Duration,
            "Delete versions this long after they were written (0 = never).",
        ),
        flag(
            "custom-metadata",
            Kind::Map,
            "Custom metadata key=value; may repeat.",
        ),
    ],
};

const METADATA_PATCH: Usage = Usage {
    text: "Usage: tresor kv metadata patch [options] KEY

  Updates only the given settings of KEY (KV v2).",
    flags: &[
        MOUNT,
        flag("max-versions", Kind::Int, "Number of versions to keep."),
        flag(
            "cas-required",
            Kind::Bool,
            "Require check-and-set on every write.",
        ),
        flag(
            "delete-version-after",
            Kind::Duration,
            "Delete versions this long after they were written.",
        ),
        flag(
            "custom-metadata",
            Kind::Map,
            "Custom metadata key=value; may repeat.",
        ),
        flag(
            "remove-custom-metadata",
            Kind::List,
            "Custom metadata keys to remove; may repeat.",
        ),
    ],
};

/// The body of `kv metadata put|patch`: only the settings that were given.
pub fn metadata_body(p: &Parsed, patch: bool) -> Map<String, Value> {
    let mut body = Map::new();
    if let Some(n) = p.int("max-versions").filter(|n| *n >= 0) {
        body.insert("max_versions".to_string(), json!(n));
    }
    if let Some(b) = p.opt_bool("cas-required") {
        body.insert("cas_required".to_string(), json!(b));
    }
    if let Some(d) = ttl_for_api(p, "delete-version-after") {
        body.insert("delete_version_after".to_string(), json!(d));
    }
    let mut custom: Map<String, Value> = p
        .map("custom-metadata")
        .into_iter()
        .map(|(k, v)| (k, Value::String(v)))
        .collect();
    if patch {
        for k in p.list("remove-custom-metadata") {
            custom.insert(k, Value::Null);
        }
    }
    if !custom.is_empty() {
        body.insert("custom_metadata".to_string(), Value::Object(custom));
    }
    body
}

fn metadata_write(cli: &mut Cli<'_, '_>, args: &[String], usage: &Usage, patch: bool) -> CmdResult {
    let p = cli.parse(usage, args)?;
    let arg = path_arg(&p)?;
    let client = cli.client(&p)?;
    let kv = resolve(&client, &p, &arg)?;
    if !kv.v2 {
        return Err(CliError::Local(
            "Metadata not supported on KV Version 1".to_string(),
        ));
    }
    let full = kv.v2("metadata");
    let body = Value::Object(metadata_body(&p, patch));
    let result = if patch {
        client.patch(&full, body)
    } else {
        client.write(&full, body)
    };
    let secret = result.map_err(|e| remote(format_args!("writing data to {full}"), e))?;
    match secret {
        Some(s) => cli.print_secret(&s),
        None => {
            if cli.is_table() {
                cli.outln(&format!("Success! Data written to: {full}"));
            }
            Ok(0)
        }
    }
}

/// `tresor kv metadata put`.
pub fn metadata_put(cli: &mut Cli<'_, '_>, args: &[String]) -> CmdResult {
    metadata_write(cli, args, &METADATA_PUT, false)
}

/// `tresor kv metadata patch`.
pub fn metadata_patch(cli: &mut Cli<'_, '_>, args: &[String]) -> CmdResult {
    metadata_write(cli, args, &METADATA_PATCH, true)
}

const METADATA_DELETE: Usage = Usage {
    text: "Usage: tresor kv metadata delete [options] KEY

  Deletes KEY entirely: every version and its metadata (KV v2).",
    flags: &[MOUNT],
};

/// `tresor kv metadata delete`.
pub fn metadata_delete(cli: &mut Cli<'_, '_>, args: &[String]) -> CmdResult {
    let p = cli.parse(&METADATA_DELETE, args)?;
    let arg = path_arg(&p)?;
    max_args(&p.args, 1)?;
    let client = cli.client(&p)?;
    let kv = resolve(&client, &p, &arg)?;
    if !kv.v2 {
        return Err(CliError::Local(
            "Metadata not supported on KV Version 1".to_string(),
        ));
    }
    let full = kv.v2("metadata");
    client
        .delete(&full, &[])
        .map_err(|e| remote(format_args!("deleting {full}"), e))?;
    if cli.is_table() {
        cli.outln(&format!("Success! Data deleted (if it existed) at: {full}"));
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flags;

    #[test]
    fn go_path_join() {
        assert_eq!(path_join(&["secret/", "data", "foo"]), "secret/data/foo");
        assert_eq!(path_join(&["secret/", "data", ""]), "secret/data");
        assert_eq!(path_join(&["", "data", "a//b/"]), "data/a/b");
        assert_eq!(path_join(&["a", "../b"]), "b");
        assert_eq!(path_join(&["a/./b"]), "a/b");
        assert_eq!(path_join(&[]), "");
    }

    #[test]
    fn v2_inserts_prefix_after_mount() {
        let cases: &[(&str, &str, &str, &str)] = &[
            ("secret/foo", "secret/", "data", "secret/data/foo"),
            (
                "secret/a/b/c",
                "secret/",
                "metadata",
                "secret/metadata/a/b/c",
            ),
            ("secret", "secret/", "data", "secret/data"),
            ("secret/", "secret/", "metadata", "secret/metadata"),
            (
                "my/kv/mount/x",
                "my/kv/mount/",
                "destroy",
                "my/kv/mount/destroy/x",
            ),
            // The mount path carries a namespace that the given path does not.
            ("secret/foo", "ns1/secret/", "data", "secret/data/foo"),
            ("foo", "", "data", "data/foo"),
        ];
        for (path, mount, prefix, want) in cases {
            assert_eq!(
                add_prefix(path, mount, prefix, false),
                *want,
                "{path} in {mount}"
            );
        }
    }

    #[test]
    fn list_skips_an_existing_metadata_prefix() {
        assert_eq!(
            add_prefix("secret/metadata/foo", "secret/", "metadata", true),
            "secret/metadata/foo"
        );
        assert_eq!(
            add_prefix("secret/foo", "secret/", "metadata", true),
            "secret/metadata/foo"
        );
        assert_eq!(
            add_prefix("secret/metadata/foo", "secret/", "metadata", false),
            "secret/metadata/metadata/foo"
        );
    }

    #[test]
    fn preflight_data_decides_version() {
        let d = |v: Value| v.as_object().unwrap().clone();
        assert_eq!(
            version_from_preflight(&d(json!({"path": "secret/", "options": {"version": "2"}}))),
            ("secret/".to_string(), true)
        );
        assert_eq!(
            version_from_preflight(&d(json!({"path": "kv/", "options": {"version": "1"}}))),
            ("kv/".to_string(), false)
        );
        assert_eq!(
            version_from_preflight(&d(json!({"path": "kv/", "options": null}))),
            ("kv/".to_string(), false)
        );
        assert_eq!(
            version_from_preflight(&d(json!({"path": "kv/", "options": {}}))),
            ("kv/".to_string(), false)
        );
        // A number is not the string "2": treated as v1 rather than crashing.
        assert_eq!(
            version_from_preflight(&d(json!({"path": "kv/", "options": {"version": 2}}))),
            ("kv/".to_string(), false)
        );
        assert_eq!(
            version_from_preflight(&d(json!({}))),
            (String::new(), false)
        );
    }

    #[test]
    fn kv_paths_with_and_without_mount_flag() {
        let k = kv_path("secret/foo", None, "secret/", true);
        assert_eq!(k.v2("data"), "secret/data/foo");
        assert_eq!(k.data_path(), "secret/data/foo");
        let k = kv_path("foo", Some("secret"), "secret/", true);
        assert_eq!(k.v2("data"), "secret/data/foo");
        assert_eq!(k.v2("metadata"), "secret/metadata/foo");
        let k = kv_path("/foo/bar/", Some("/kv1/"), "kv1/", false);
        assert_eq!(k.data_path(), "kv1/foo/bar");
        let k = kv_path("kv1/foo", None, "kv1/", false);
        assert_eq!(k.data_path(), "kv1/foo");
        // An old server without the preflight endpoint: v1, path as given.
        let k = kv_path("foo", Some("old"), "", false);
        assert_eq!(k.data_path(), "old/foo");
        let k = kv_path("", Some("secret"), "secret/", true);
        assert_eq!(k.v2("metadata"), "secret/metadata");
    }

    #[test]
    fn metadata_body_only_has_given_settings() {
        let parse = |a: &[&str]| {
            let a: Vec<String> = a.iter().map(|s| s.to_string()).collect();
            flags::parse(&[METADATA_PATCH.flags], &a).unwrap()
        };
        assert_eq!(Value::Object(metadata_body(&parse(&[]), false)), json!({}));
        let p = parse(&[
            "-max-versions=5",
            "-cas-required=false",
            "-delete-version-after=90",
            "-custom-metadata=owner=me",
            "-remove-custom-metadata=old",
        ]);
        assert_eq!(
            Value::Object(metadata_body(&p, true)),
            json!({"max_versions": 5, "cas_required": false, "delete_version_after": "1m30s",
                   "custom_metadata": {"owner": "me", "old": null}})
        );
        assert_eq!(
            Value::Object(metadata_body(&p, false)),
            json!({"max_versions": 5, "cas_required": false, "delete_version_after": "1m30s",
                   "custom_metadata": {"owner": "me"}})
        );
    }
}
