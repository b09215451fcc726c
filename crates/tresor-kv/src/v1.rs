//! KV version 1: one unversioned JSON object per path. Read, write (replace), delete and list
//! any path under the mount. A `ttl` key is ordinary data: it is stored and returned as written
//! (Vault also echoes it as the advisory `lease_duration`; no lease is ever created).

use std::sync::Arc;

use tresor_sdk::framework::{Fields, Path, Table};
use tresor_sdk::{LogicalError, Operation, Request, Response, Result, SpecialPaths};

use crate::Engine;
use crate::inputs::SecretPath;
use crate::store;

const SECRET_SYNOPSIS: &str =
    "Pass-through secret storage: read, write, delete or list the secret at this path.";
const SECRET_DESCRIPTION: &str = "
The KV (version 1) engine stores any JSON object at any path and returns it unchanged on
read. A write replaces the whole object: fields are never merged. A LIST on a folder returns
the names below it, folders ending in '/'.

A key named 'ttl' is stored like any other key; it is a hint to readers of how often to
re-read the value and never causes the data to expire.
";

const ROOT_SYNOPSIS: &str = "List the secrets at the top of the mount.";
const ROOT_DESCRIPTION: &str = "
A LIST at the mount's root returns the names of the secrets and folders directly below it,
folders ending in '/'.
";

pub(crate) fn table() -> Table<Engine> {
    Table {
        paths: vec![
            Path::new("{path:+}")
                .free_form()
                .input::<SecretPath>()
                .op(Operation::Read, |b, req, f| {
                    Box::pin(async move { read(&b, req, f).await })
                })
                .op(Operation::Update, |b, req, f| {
                    Box::pin(async move { write(&b, req, f).await })
                })
                .op(Operation::Delete, |b, req, f| {
                    Box::pin(async move { delete(&b, req, f).await })
                })
                .op(Operation::List, |b, req, f| {
                    Box::pin(async move { list(&b, req, f).await })
                })
                .existence(|b, req, f| Box::pin(async move { exists(&b, req, f).await }))
                .help(SECRET_SYNOPSIS, SECRET_DESCRIPTION),
            Path::new("{path:*}")
                .input::<SecretPath>()
                .op(Operation::List, |b, req, f| {
                    Box::pin(async move { list(&b, req, f).await })
                })
                .help(ROOT_SYNOPSIS, ROOT_DESCRIPTION),
        ],
        special: SpecialPaths::default(),
        help: "The KV secrets engine, version 1: unversioned key/value storage.",
    }
}

async fn exists(_b: &Arc<Engine>, req: Request, f: Fields) -> Result<bool> {
    let SecretPath { path } = f.input();
    Ok(store::load_v1(&*req.storage, &path).await?.is_some())
}

/// A read reports the secret's `ttl` (else its legacy `lease` key, else the mount's default
/// lease TTL) as an advisory refresh interval, as Vault does; no lease is created.
async fn read(_b: &Arc<Engine>, req: Request, f: Fields) -> Result<Option<Response>> {
    let SecretPath { path } = f.input();
    let Some(data) = store::load_v1(&*req.storage, &path).await? else {
        return Ok(None);
    };
    let hint = data
        .get("ttl")
        .or_else(|| data.get("lease"))
        .and_then(|v| tresor_sdk::duration::from_json(v).ok())
        .filter(|d| !d.is_zero())
        .unwrap_or(req.mount.default_lease_ttl);
    let mut r = Response::data(data);
    r.lease_duration = Some(hint);
    Ok(Some(r))
}

async fn write(_b: &Arc<Engine>, req: Request, f: Fields) -> Result<Option<Response>> {
    let SecretPath { path } = f.input();
    if path.ends_with('/') {
        return Err(LogicalError::invalid(
            "cannot write to a path ending in '/'",
        ));
    }
    if f.raw.is_empty() {
        return Err(LogicalError::invalid("missing data fields"));
    }
    store::save_v1(&*req.storage, &path, f.raw).await?;
    Ok(None)
}

async fn delete(_b: &Arc<Engine>, req: Request, f: Fields) -> Result<Option<Response>> {
    let SecretPath { path } = f.input();
    req.storage
        .delete(&format!("{}{path}", store::V1_PREFIX))
        .await?;
    Ok(None)
}

async fn list(_b: &Arc<Engine>, req: Request, f: Fields) -> Result<Option<Response>> {
    let SecretPath { path: mut folder } = f.input();
    if !folder.is_empty() && !folder.ends_with('/') {
        folder.push('/');
    }
    let mut keys = req
        .storage
        .list(&format!("{}{folder}", store::V1_PREFIX))
        .await?;
    keys.sort();
    Ok(Some(Response::list(keys)))
}
