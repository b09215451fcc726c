//! The cubbyhole engine: private storage per token. Each token sees only `<token-id>/` of the
//! mount's view; the token store deletes that prefix when the token is revoked.

use std::sync::Arc;

use serde_json::{Map, Value};
use tresor_sdk::framework::{Field, Kind, Path, Table, TableBackend};
use tresor_sdk::{
    LogicalBackend, LogicalError, Operation, Request, Response, Result, SpecialPaths,
};

pub struct Cubbyhole;

pub fn backend() -> Arc<dyn LogicalBackend> {
    TableBackend::new(Cubbyhole, table())
}

fn key(req: &Request, path: &str) -> Result<String> {
    if req.caller.batch_token.is_some() {
        return Err(LogicalError::invalid(
            "batch tokens do not have a cubbyhole",
        ));
    }
    let id = req
        .caller
        .token_id
        .as_deref()
        .ok_or(LogicalError::PermissionDenied)?;
    Ok(format!("{id}/{path}"))
}

fn table() -> Table<Cubbyhole> {
    Table {
        help: "The cubbyhole backend reads and writes arbitrary secrets to a storage area private to the calling token.",
        special: SpecialPaths::default(),
        paths: vec![
            Path::new("{path:*}")
                .free_form()
                .field(Field::new("path", Kind::Str, "Specifies the path of the secret."))
                .op(Operation::Read, |_, req, f| {
                    Box::pin(async move {
                        let k = key(&req, f.str("path").unwrap_or_default())?;
                        match req.storage.get(&k).await? {
                            None => Ok(None),
                            Some(b) => {
                                let data: Map<String, Value> = serde_json::from_slice(&b).map_err(LogicalError::internal)?;
                                Ok(Some(Response::data(data)))
                            }
                        }
                    })
                })
                .op(Operation::Update, |_, req, f| {
                    Box::pin(async move {
                        let path = f.string("path");
                        if path.is_empty() || path.ends_with('/') {
                            return Err(LogicalError::invalid("missing path"));
                        }
                        if req.data.is_empty() {
                            return Err(LogicalError::invalid("missing data fields"));
                        }
                        let k = key(&req, &path)?;
                        req.storage.put(&k, serde_json::to_vec(&req.data).map_err(LogicalError::internal)?).await?;
                        Ok(None)
                    })
                })
                .op(Operation::Delete, |_, req, f| {
                    Box::pin(async move {
                        let k = key(&req, f.str("path").unwrap_or_default())?;
                        req.storage.delete(&k).await?;
                        Ok(None)
                    })
                })
                .op(Operation::List, |_, req, f| {
                    Box::pin(async move {
                        let mut p = f.string("path");
                        if !p.is_empty() && !p.ends_with('/') {
                            p.push('/');
                        }
                        let k = key(&req, &p)?;
                        let keys = req.storage.list(&k).await?;
                        if keys.is_empty() {
                            return Ok(None);
                        }
                        Ok(Some(Response::list(keys)))
                    })
                })
                .help("Pass-through secret storage to a token-specific cubbyhole in the storage backend, allowing you to read/write arbitrary data into secret storage.", "The cubbyhole is destroyed when the token is revoked."),
        ],
    }
}
