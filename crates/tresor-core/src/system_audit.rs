//! `sys/audit`, `sys/audit-hash`, `sys/config/auditing/request-headers` and `sys/wrapping/*`
//! paths of the system backend.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{Map, Value, json};
use tresor_sdk::framework::{Field, Fields, Kind, Path};
use tresor_sdk::{LogicalError, Operation, Request, Response, Result};

use crate::audit::AuditEntry;
use crate::mounts::sanitize_path;
use crate::system::{Sys, core, le};

async fn audit_list(s: Arc<Sys>) -> Result<Option<Response>> {
    let c = core(&s)?;
    let u = c.unsealed().map_err(le)?;
    let mut m = Map::new();
    for e in u.audit.list() {
        m.insert(e.path.clone(), e.info());
    }
    Ok(Some(Response::data(m)))
}

async fn audit_path(s: Arc<Sys>, req: Request, f: Fields) -> Result<Option<Response>> {
    let c = core(&s)?;
    let u = c.unsealed().map_err(le)?;
    let path = sanitize_path(&f.string("path"));
    match req.operation {
        Operation::Delete => {
            let enabled = u.audit.device(&path).is_some();
            u.audit.disable(&u.barrier, &path).await.map_err(le)?;
            if enabled {
                // Also in the server log: when every device fails, this disable is the one
                // request that proceeds without an audit entry.
                tracing::warn!(
                    device = %path,
                    accessor = %req.caller.token_accessor.as_deref().unwrap_or_default(),
                    "audit device disabled"
                );
            }
            Ok(None)
        }
        Operation::Read => Ok(u
            .audit
            .list()
            .into_iter()
            .find(|e| e.path == path)
            .map(|e| Response::json(e.info()))),
        _ => {
            let kind = f.string("type");
            if kind.is_empty() {
                return Err(LogicalError::invalid("type is required"));
            }
            let options: BTreeMap<String, String> = f.str_map("options");
            let entry = AuditEntry {
                path,
                kind,
                description: f.string("description"),
                options,
                local: f.flag("local"),
            };
            u.audit.enable(&u.barrier, entry).await.map_err(le)?;
            Ok(None)
        }
    }
}

async fn audit_hash(s: Arc<Sys>, f: Fields) -> Result<Option<Response>> {
    let c = core(&s)?;
    let u = c.unsealed().map_err(le)?;
    let path = sanitize_path(&f.string("path"));
    let d = u
        .audit
        .device(&path)
        .ok_or_else(|| LogicalError::invalid(format!("unknown audit backend {path}")))?;
    Ok(Some(Response::json(
        json!({"hash": d.hash(&f.string("input"))}),
    )))
}

async fn headers_list(s: Arc<Sys>) -> Result<Option<Response>> {
    let c = core(&s)?;
    let u = c.unsealed().map_err(le)?;
    let h: Map<String, Value> = u
        .audit
        .request_headers()
        .into_iter()
        .map(|(k, v)| (k, json!({"hmac": v})))
        .collect();
    Ok(Some(Response::json(json!({"headers": h}))))
}

async fn header_path(s: Arc<Sys>, req: Request, f: Fields) -> Result<Option<Response>> {
    let c = core(&s)?;
    let u = c.unsealed().map_err(le)?;
    let name = f.string("header").to_lowercase();
    match req.operation {
        Operation::Read => Ok(u
            .audit
            .request_headers()
            .get(&name)
            .map(|h| Response::json(json!({name.clone(): {"hmac": h}})))),
        Operation::Delete => {
            u.audit
                .set_request_header(&u.barrier, &name, None)
                .await
                .map_err(le)?;
            Ok(None)
        }
        _ => {
            u.audit
                .set_request_header(&u.barrier, &name, Some(f.flag("hmac")))
                .await
                .map_err(le)?;
            Ok(None)
        }
    }
}

pub(crate) fn paths() -> Vec<Path<Sys>> {
    vec![
        Path::new("audit")
            .op(Operation::Read, |s, _, _| Box::pin(audit_list(s)))
            .help("List the enabled audit devices.", "Requires sudo."),
        Path::new("audit/{path:+}")
            .field(Field::new("path", Kind::Str, "The path of the audit device."))
            .field(Field::new("type", Kind::Str, "The type of the audit device: file, socket or syslog."))
            .field(Field::new("description", Kind::Str, "User-friendly description of the device."))
            .field(Field::new("options", Kind::StrMap, "Device options, such as file_path, log_raw, hmac_accessor, mode, format and prefix."))
            .field(Field::new("local", Kind::Bool, "Mark the device as local (not replicated)."))
            .op(Operation::Read, |s, r, f| Box::pin(audit_path(s, r, f)))
            .op(Operation::Update, |s, r, f| Box::pin(audit_path(s, r, f)))
            .op(Operation::Delete, |s, r, f| Box::pin(audit_path(s, r, f)))
            .help("Enable or disable an audit device.", "Requires sudo. Every request and response is logged to every enabled device; if none can record a request, it is refused."),
        Path::new("audit-hash/{path:+}")
            .field(Field::new("path", Kind::Str, "The path of the audit device."))
            .field(Field::new("input", Kind::Str, "The value to hash."))
            .op(Operation::Update, |s, _, f| Box::pin(audit_hash(s, f)))
            .help("Hash a value with an audit device's salt.", "Returns the same hmac-sha256 string the device writes for that value."),
        Path::new("config/auditing/request-headers")
            .op(Operation::Read, |s, _, _| Box::pin(headers_list(s)))
            .op(Operation::List, |s, _, _| Box::pin(headers_list(s)))
            .help("List the request headers that are audited.", "Requires sudo."),
        Path::new("config/auditing/request-headers/{header}")
            .field(Field::new("header", Kind::Str, "The header name."))
            .field(Field::new("hmac", Kind::Bool, "Whether to HMAC the header's value in the log."))
            .op(Operation::Read, |s, r, f| Box::pin(header_path(s, r, f)))
            .op(Operation::Update, |s, r, f| Box::pin(header_path(s, r, f)))
            .op(Operation::Delete, |s, r, f| Box::pin(header_path(s, r, f)))
            .help("Configure one audited request header.", "Requires sudo."),
        Path::new("wrapping/wrap")
            .op(Operation::Update, |_, req, _| Box::pin(async move { Ok(Some(Response::data(req.data))) }))
            .help("Response-wrap arbitrary JSON.", "The request data becomes the wrapped response; the TTL comes from X-Vault-Wrap-TTL (default 5m)."),
        Path::new("wrapping/unwrap")
            .field(Field::new("token", Kind::Str, "The wrapping token; if absent, the calling token is used."))
            .op(Operation::Update, |_, _, _| Box::pin(async { Err(LogicalError::internal("unwrap is served by the core pipeline")) }))
            .help("Unwrap a wrapped response.", "Returns the original response once; the wrapping token is then revoked."),
        Path::new("wrapping/rewrap")
            .field(Field::new("token", Kind::Str, "The wrapping token."))
            .op(Operation::Update, |_, _, _| Box::pin(async { Err(LogicalError::internal("rewrap is served by the core pipeline")) }))
            .help("Rewrap a wrapped response into a new token.", "The old token is revoked; the new one has the remaining TTL."),
        Path::new("wrapping/lookup")
            .field(Field::new("token", Kind::Str, "The wrapping token."))
            .op(Operation::Update, |s, _, f| {
                Box::pin(async move {
                    let c = core(&s)?;
                    let m = c.wrapping_lookup(&f.string("token")).await.map_err(le)?;
                    Ok(Some(Response::data(m)))
                })
            })
            .op(Operation::Read, |s, _, f| {
                Box::pin(async move {
                    let c = core(&s)?;
                    let m = c.wrapping_lookup(&f.string("token")).await.map_err(le)?;
                    Ok(Some(Response::data(m)))
                })
            })
            .help("Look up the properties of a wrapping token.", "Returns its creation path, creation time and TTL without using it."),
    ]
}
