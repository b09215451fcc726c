//! The cubbyhole engine: private storage per token. Each token sees only `<token-id>/` of the
//! mount's view; the token store deletes that prefix when the token is revoked.

use std::sync::Arc;

use serde_json::{Map, Value};
use tresor_sdk::framework::{Fields, Path, Table, TableBackend};
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

tresor_sdk::input! {
    /// Every cubbyhole path: the secret's path inside the caller's cubbyhole (the data keys
    /// of a write are the secret itself).
    struct SecretPath {
        path: Str, "Path of the secret inside the calling token's cubbyhole.";
    }
}

fn secret_path(f: &Fields) -> String {
    f.input::<SecretPath>().path
}

fn table() -> Table<Cubbyhole> {
    Table {
        help: "Private storage for each token: a token reads, writes, lists and deletes secrets under its own cubbyhole, which no other token (root included) can see and which is destroyed with the token.",
        special: SpecialPaths::default(),
        paths: vec![
            Path::new("{path:*}")
                .free_form()
                .input::<SecretPath>()
                .op(Operation::Read, |_, req, f| {
                    Box::pin(async move {
                        let k = key(&req, &secret_path(&f))?;
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
                        let path = secret_path(&f);
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
                        let k = key(&req, &secret_path(&f))?;
                        req.storage.delete(&k).await?;
                        Ok(None)
                    })
                })
                .op(Operation::List, |_, req, f| {
                    Box::pin(async move {
                        let mut p = secret_path(&f);
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
                .help("Read, write, list or delete a secret in the calling token's own cubbyhole.", "Any JSON keys may be written. The cubbyhole is destroyed when the token is revoked; batch tokens have none."),
        ],
    }
}
