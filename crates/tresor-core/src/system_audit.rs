//! `sys/audit`, `sys/audit-hash`, `sys/config/auditing/request-headers` and `sys/wrapping/*`
//! paths of the system backend.

use std::sync::Arc;

use serde_json::{Map, Value, json};
use tresor_sdk::framework::{Fields, Path};
use tresor_sdk::{LogicalError, Operation, Request, Response, Result};

use crate::audit::AuditEntry;
use crate::mounts::sanitize_path;
use crate::system::{Sys, handles, le};

tresor_sdk::input! {
    /// `sys/audit/:path`.
    struct DeviceInput {
        path: Str, "The path of the audit device.";
        kind("type"): Str, "The type of the audit device: file, socket or syslog.";
        description: Str, "User-friendly description of the device.";
        options: StrMap, "Device options, such as file_path, log_raw, hmac_accessor, mode, format and prefix.";
        local: Bool, "Mark the device as local (not replicated).";
    }
}

tresor_sdk::input! {
    /// `sys/audit-hash/:path`.
    struct HashInput {
        path: Str, "The path of the audit device.";
        input: Str, "The value to hash.";
    }
}

tresor_sdk::input! {
    /// `sys/config/auditing/request-headers/:header`.
    struct HeaderInput {
        header: Str, "The header name.";
        hmac: Bool, "Whether to HMAC the header's value in the log.";
    }
}

tresor_sdk::input! {
    /// `sys/wrapping/unwrap`: the core's pipeline serves it; declared for help and OpenAPI.
    struct UnwrapInput {
        token: Str, "The wrapping token; if absent, the calling token is used.";
    }
}

tresor_sdk::input! {
    /// `sys/wrapping/rewrap` and `sys/wrapping/lookup`.
    struct TokenInput {
        token: Str, "The wrapping token.";
    }
}

async fn audit_list(s: Arc<Sys>) -> Result<Option<Response>> {
    let c = handles(&s);
    let u = c.unsealed().map_err(le)?;
    let mut m = Map::new();
    for e in u.audit.list() {
        m.insert(e.path.clone(), e.info());
    }
    Ok(Some(Response::data(m)))
}

async fn audit_path(s: Arc<Sys>, req: Request, f: Fields) -> Result<Option<Response>> {
    let c = handles(&s);
    let u = c.unsealed().map_err(le)?;
    let input: DeviceInput = f.input();
    let path = sanitize_path(&input.path);
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
            if input.kind.is_empty() {
                return Err(LogicalError::invalid("type is required"));
            }
            let entry = AuditEntry {
                path,
                kind: input.kind,
                description: input.description,
                options: input.options,
                local: input.local,
            };
            u.audit.enable(&u.barrier, entry).await.map_err(le)?;
            Ok(None)
        }
    }
}

async fn audit_hash(s: Arc<Sys>, f: Fields) -> Result<Option<Response>> {
    let c = handles(&s);
    let u = c.unsealed().map_err(le)?;
    let input: HashInput = f.input();
    let path = sanitize_path(&input.path);
    let d = u
        .audit
        .device(&path)
        .ok_or_else(|| LogicalError::invalid(format!("unknown audit backend {path}")))?;
    Ok(Some(Response::json(json!({"hash": d.hash(&input.input)}))))
}

async fn headers_list(s: Arc<Sys>) -> Result<Option<Response>> {
    let c = handles(&s);
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
    let c = handles(&s);
    let u = c.unsealed().map_err(le)?;
    let input: HeaderInput = f.input();
    let name = input.header.to_lowercase();
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
                .set_request_header(&u.barrier, &name, Some(input.hmac))
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
            .input::<DeviceInput>()
            .op(Operation::Read, |s, r, f| Box::pin(audit_path(s, r, f)))
            .op(Operation::Update, |s, r, f| Box::pin(audit_path(s, r, f)))
            .op(Operation::Delete, |s, r, f| Box::pin(audit_path(s, r, f)))
            .help("Enable or disable an audit device.", "Requires sudo. Every request and response is logged to every enabled device; if none can record a request, it is refused."),
        Path::new("audit-hash/{path:+}")
            .input::<HashInput>()
            .op(Operation::Update, |s, _, f| Box::pin(audit_hash(s, f)))
            .help("Hash a value with an audit device's salt.", "Returns the same hmac-sha256 string the device writes for that value."),
        Path::new("config/auditing/request-headers")
            .op(Operation::Read, |s, _, _| Box::pin(headers_list(s)))
            .op(Operation::List, |s, _, _| Box::pin(headers_list(s)))
            .help("List the request headers that are audited.", "Requires sudo."),
        Path::new("config/auditing/request-headers/{header}")
            .input::<HeaderInput>()
            .op(Operation::Read, |s, r, f| Box::pin(header_path(s, r, f)))
            .op(Operation::Update, |s, r, f| Box::pin(header_path(s, r, f)))
            .op(Operation::Delete, |s, r, f| Box::pin(header_path(s, r, f)))
            .help("Configure one audited request header.", "Requires sudo."),
        Path::new("wrapping/wrap")
            .free_form()
            .op(Operation::Update, |_, req, _| Box::pin(async move { Ok(Some(Response::data(req.data))) }))
            .help("Response-wrap arbitrary JSON.", "The request data becomes the wrapped response; the TTL comes from X-Vault-Wrap-TTL (default 5m)."),
        Path::new("wrapping/unwrap")
            .input::<UnwrapInput>()
            .op(Operation::Update, |_, _, _| Box::pin(async { Err(LogicalError::internal("unwrap is served by the core pipeline")) }))
            .help("Unwrap a wrapped response.", "Returns the original response once; the wrapping token is then revoked."),
        Path::new("wrapping/rewrap")
            .input::<TokenInput>()
            .op(Operation::Update, |_, _, _| Box::pin(async { Err(LogicalError::internal("rewrap is served by the core pipeline")) }))
            .help("Rewrap a wrapped response into a new token.", "The old token is revoked; the new one has the remaining TTL."),
        Path::new("wrapping/lookup")
            .input::<TokenInput>()
            .op(Operation::Update, |s, _, f| {
                Box::pin(async move {
                    let c = handles(&s);
                    let m = c.wrapping_lookup(&f.input::<TokenInput>().token).await.map_err(le)?;
                    Ok(Some(Response::data(m)))
                })
            })
            .op(Operation::Read, |s, _, f| {
                Box::pin(async move {
                    let c = handles(&s);
                    let m = c.wrapping_lookup(&f.input::<TokenInput>().token).await.map_err(le)?;
                    Ok(Some(Response::data(m)))
                })
            })
            .help("Look up the properties of a wrapping token.", "Returns its creation path, creation time and TTL without using it."),
    ]
}
