//! The login MFA paths of the `identity/` built-in: `mfa/method/totp` (create, read, list,
//! delete, `generate`, `admin-generate`, `admin-destroy`) and `mfa/login-enforcement/:name`.
//! Built over the identity store handle ([`HasIdentity`]).

use std::sync::Arc;

use serde_json::json;
use tresor_sdk::framework::{Fields, Path};
use tresor_sdk::{LogicalError, Operation, Request, Response, Result};

use crate::error::CoreError;
use crate::identity::HasIdentity;
use crate::mfa::{Enforcement, TotpMethod};

fn logical(e: CoreError) -> LogicalError {
    match e {
        CoreError::InvalidRequest(m) => LogicalError::InvalidRequest(m),
        CoreError::NotFound(m) => LogicalError::NotFound(m),
        CoreError::PermissionDenied => LogicalError::PermissionDenied,
        other => LogicalError::Internal(other.to_string()),
    }
}

tresor_sdk::input! {
    /// The settings of a TOTP method (`mfa/method/totp[/:method_id]`): each changes only when
    /// sent, so a new method keeps the defaults of the ones not sent.
    struct MethodInput {
        method_name: OptStr, "A unique name for the method (usable instead of its ID).";
        issuer: OptStr, "The issuer shown by authenticator apps.";
        period: OptDuration, "Length of a passcode's validity (default 30s).";
        key_size: OptInt, "Size in bytes of generated secrets (default 20).";
        qr_size: OptInt, "Pixel size of the QR barcode (default 200).";
        algorithm: OptStr, "SHA1 (default), SHA256 or SHA512.";
        digits: OptInt, "Passcode length: 6 (default), 7 or 8.";
        skew: OptInt, "Periods before and after the current one a passcode may be from: 0 or 1 (default).";
        max_validation_attempts: OptInt, "Failed passcodes allowed per period (default 5).";
    }
}

tresor_sdk::input! {
    /// `mfa/method/totp/generate`: the caller enrols its own entity.
    struct EnrolInput {
        method_id: Str, "The TOTP method to enrol in.", required;
    }
}

tresor_sdk::input! {
    /// `mfa/method/totp/admin-generate`.
    struct AdminGenerateInput {
        method_id: Str, "The TOTP method.", required;
        entity_id: Str, "The entity to enrol.", required;
    }
}

tresor_sdk::input! {
    /// `mfa/method/totp/admin-destroy`.
    struct AdminDestroyInput {
        method_id: Str, "The TOTP method.", required;
        entity_id: Str, "The entity whose secret to destroy.", required;
    }
}

tresor_sdk::input! {
    /// `mfa/method/totp/:method_id`.
    struct MethodIdInput {
        method_id: Str, "ID of the method.";
    }
}

tresor_sdk::input! {
    /// `mfa/login-enforcement/:name`: an update changes only the lists it sends.
    struct EnforcementInput {
        name: Str, "Name of the enforcement.";
        mfa_method_ids: OptList, "MFA methods, any one of which satisfies the enforcement.";
        auth_method_accessors: OptList, "Auth mounts (by accessor) whose logins need MFA.";
        auth_method_types: OptList, "Auth method types whose logins need MFA.";
        identity_group_ids: OptList, "Members of these groups need MFA.";
        identity_entity_ids: OptList, "These entities need MFA.";
    }
}

fn apply(m: &mut TotpMethod, f: &Fields) -> Result<()> {
    let i: MethodInput = f.input();
    // A number sent must not be negative; zero keeps the setting (the default for a new
    // method), and ranges are checked when the method is stored.
    let count = |v: Option<i64>, field: &str| -> Result<Option<u64>> {
        match v {
            Some(n) if n < 0 => Err(LogicalError::invalid(format!(
                "{field}: cannot be negative"
            ))),
            Some(n) => Ok(Some(n as u64)),
            None => Ok(None),
        }
    };
    if let Some(v) = i.method_name {
        m.name = v;
    }
    if let Some(v) = i.issuer {
        m.issuer = v;
    }
    if let Some(d) = i.period.filter(|d| !d.is_zero()) {
        m.period = d.as_secs();
    }
    if let Some(n) = count(i.key_size, "key_size")?.filter(|n| *n > 0) {
        m.key_size = n as usize;
    }
    if let Some(n) = count(i.qr_size, "qr_size")? {
        m.qr_size = n;
    }
    if let Some(a) = i.algorithm.filter(|a| !a.is_empty()) {
        m.algorithm = a.to_uppercase();
    }
    if let Some(n) = count(i.digits, "digits")?.filter(|n| *n > 0) {
        m.digits = u32::try_from(n).unwrap_or(u32::MAX);
    }
    if let Some(n) = count(i.skew, "skew")? {
        m.skew = n;
    }
    if let Some(n) = count(i.max_validation_attempts, "max_validation_attempts")? {
        m.max_validation_attempts = n;
    }
    Ok(())
}

/// The entity an admin names, or (`None`) the caller's own for self-enrolment.
fn entity_of(b: &impl HasIdentity, req: &Request, named: Option<String>) -> Result<String> {
    let admin = named.is_some();
    let id = named.unwrap_or_else(|| req.caller.entity_id.clone());
    if id.is_empty() {
        return Err(LogicalError::invalid(if admin {
            "missing entity ID"
        } else {
            "no entity associated with the request's token"
        }));
    }
    b.identity()
        .entity(&id)
        .map(|e| e.id.clone())
        .ok_or_else(|| LogicalError::invalid(format!("entity with ID {id:?} not found")))
}

async fn generate<B: HasIdentity>(
    b: Arc<B>,
    req: Request,
    method_id: String,
    named: Option<String>,
) -> Result<Option<Response>> {
    let entity = entity_of(&*b, &req, named)?;
    let account = b
        .identity()
        .entity(&entity)
        .map(|e| e.name.clone())
        .unwrap_or_default();
    let (url, _secret) = b
        .identity()
        .mfa
        .generate(&method_id, &entity, &account)
        .await
        .map_err(logical)?;
    Ok(Some(Response::json(
        json!({"url": url.as_str(), "barcode": ""}),
    )))
}

pub(crate) fn paths<B: HasIdentity + Send + Sync + 'static>() -> Vec<Path<B>> {
    use Operation::{Delete, List, Read, Update};
    vec![
        Path::new("mfa/method/totp/generate")
            .input::<EnrolInput>()
            .op(Update, |b: Arc<B>, req, f| {
                Box::pin(generate(b, req, f.input::<EnrolInput>().method_id, None))
            })
            .help(
                "Enrol the caller's entity in a TOTP method.",
                "Answers the otpauth:// URL of a new secret (refused if the entity already has one).",
            ),
        Path::new("mfa/method/totp/admin-generate")
            .input::<AdminGenerateInput>()
            .op(Update, |b: Arc<B>, req, f| {
                let i = f.input::<AdminGenerateInput>();
                Box::pin(generate(b, req, i.method_id, Some(i.entity_id)))
            })
            .help(
                "Enrol an entity in a TOTP method.",
                "Answers the otpauth:// URL of a new secret (refused if the entity already has one).",
            ),
        Path::new("mfa/method/totp/admin-destroy")
            .input::<AdminDestroyInput>()
            .op(Update, |b: Arc<B>, req, f| {
                Box::pin(async move {
                    let i = f.input::<AdminDestroyInput>();
                    let entity = entity_of(&*b, &req, Some(i.entity_id))?;
                    b.identity()
                        .mfa
                        .destroy(&i.method_id, &entity)
                        .await
                        .map_err(logical)?;
                    Ok(None)
                })
            })
            .help("Destroy an entity's TOTP secret.", ""),
        Path::new("mfa/method/totp/")
            .op(List, |b: Arc<B>, _, _| {
                Box::pin(async move {
                    let ms = b.identity().mfa.methods();
                    if ms.is_empty() {
                        return Ok(None);
                    }
                    let mut info = serde_json::Map::new();
                    for m in &ms {
                        info.insert(m.id.clone(), m.to_json());
                    }
                    let keys: Vec<String> = ms.iter().map(|m| m.id.clone()).collect();
                    Ok(Some(Response::json(json!({"keys": keys, "key_info": info}))))
                })
            })
            .help("List TOTP methods.", ""),
        Path::new("mfa/method/totp")
            .input::<MethodInput>()
            .op(Update, |b: Arc<B>, _, f| {
                Box::pin(async move {
                    let mut m = TotpMethod {
                        id: uuid::Uuid::new_v4().to_string(),
                        ..Default::default()
                    };
                    apply(&mut m, &f)?;
                    b.identity().mfa.put_method(m.clone()).await.map_err(logical)?;
                    Ok(Some(Response::json(json!({"method_id": m.id}))))
                })
            })
            .help("Create a TOTP MFA method.", "Answers the new method's ID."),
        Path::new("mfa/method/totp/{method_id}")
            .input::<MethodInput>()
            .input::<MethodIdInput>()
            .op(Read, |b: Arc<B>, _, f| {
                Box::pin(async move {
                    Ok(b.identity()
                        .mfa
                        .method(&f.input::<MethodIdInput>().method_id)
                        .map(|m| Response::json(m.to_json())))
                })
            })
            .op(Update, |b: Arc<B>, _, f| {
                Box::pin(async move {
                    let mut m = b
                        .identity()
                        .mfa
                        .method(&f.input::<MethodIdInput>().method_id)
                        .ok_or_else(|| LogicalError::invalid("invalid method ID"))?;
                    apply(&mut m, &f)?;
                    b.identity().mfa.put_method(m).await.map_err(logical)?;
                    Ok(None)
                })
            })
            .op(Delete, |b: Arc<B>, _, f| {
                Box::pin(async move {
                    b.identity()
                        .mfa
                        .delete_method(&f.input::<MethodIdInput>().method_id)
                        .await
                        .map_err(logical)?;
                    Ok(None)
                })
            })
            .help("Read, update or delete a TOTP MFA method.", ""),
        Path::new("mfa/login-enforcement/")
            .op(List, |b: Arc<B>, _, _| {
                Box::pin(async move {
                    let es = b.identity().mfa.enforcements();
                    if es.is_empty() {
                        return Ok(None);
                    }
                    let mut info = serde_json::Map::new();
                    for e in &es {
                        info.insert(e.name.clone(), e.to_json());
                    }
                    let keys: Vec<String> = es.iter().map(|e| e.name.clone()).collect();
                    Ok(Some(Response::json(json!({"keys": keys, "key_info": info}))))
                })
            })
            .help("List login enforcements.", ""),
        Path::new("mfa/login-enforcement/{name}")
            .input::<EnforcementInput>()
            .op(Read, |b: Arc<B>, _, f| {
                Box::pin(async move {
                    Ok(b.identity()
                        .mfa
                        .enforcement(&f.input::<EnforcementInput>().name)
                        .map(|e| Response::json(e.to_json())))
                })
            })
            .op(Update, |b: Arc<B>, _, f| {
                Box::pin(async move {
                    let i = f.input::<EnforcementInput>();
                    let name = i.name;
                    let mut e = b.identity().mfa.enforcement(&name).unwrap_or_else(|| Enforcement {
                        name: name.clone(),
                        id: uuid::Uuid::new_v4().to_string(),
                        ..Default::default()
                    });
                    for (sent, slot) in [
                        (i.mfa_method_ids, &mut e.mfa_method_ids),
                        (i.auth_method_accessors, &mut e.auth_method_accessors),
                        (i.auth_method_types, &mut e.auth_method_types),
                        (i.identity_group_ids, &mut e.identity_group_ids),
                        (i.identity_entity_ids, &mut e.identity_entity_ids),
                    ] {
                        if let Some(v) = sent {
                            *slot = v;
                        }
                    }
                    b.identity().mfa.put_enforcement(e).await.map_err(logical)?;
                    Ok(None)
                })
            })
            .op(Delete, |b: Arc<B>, _, f| {
                Box::pin(async move {
                    b.identity()
                        .mfa
                        .delete_enforcement(&f.input::<EnforcementInput>().name)
                        .await
                        .map_err(logical)?;
                    Ok(None)
                })
            })
            .help(
                "Create, read, update or delete a login enforcement.",
                "Logins selected by mount accessor, mount type, entity or group need a passcode of one of its MFA methods.",
            ),
    ]
}
