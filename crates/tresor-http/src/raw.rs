//! The endpoints Vault answers with bare JSON, outside the logical router: `sys/init`,
//! `sys/seal-status`, `sys/unseal`, `sys/health`, `sys/leader`, `sys/rekey/{init,update,verify}` and
//! `sys/generate-root/{attempt,update}`, and OpenBao's newer names for the same endpoints
//! (`sys/rotate/root/*`, `sys/generate-root-token/*`). They work while sealed.

use http::{Method, StatusCode};
use serde_json::{Map, Value, json};
use tresor_core::seal::RekeyRequest;
use tresor_core::{Core, CoreError, InitRequest};

use crate::{Body, core_error, empty, error_response, json_response, parse_bool};

fn s(body: Option<&Map<String, Value>>, key: &str) -> String {
    // Vault decodes these bodies case-insensitively (its structs have no JSON tags).
    body.and_then(|b| {
        b.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v)
    })
    .and_then(|v| v.as_str().map(str::to_owned))
    .unwrap_or_default()
}

fn n(body: Option<&Map<String, Value>>, key: &str) -> Result<usize, String> {
    match body.and_then(|b| b.get(key)) {
        None | Some(Value::Null) => Ok(0),
        Some(Value::Number(x)) => x
            .as_u64()
            .map(|v| v as usize)
            .ok_or_else(|| format!("{key} must be a non-negative integer")),
        Some(Value::String(x)) => x
            .parse()
            .map_err(|_| format!("{key} must be a non-negative integer")),
        Some(_) => Err(format!("{key} must be a non-negative integer")),
    }
}

fn b(body: Option<&Map<String, Value>>, key: &str) -> bool {
    match body.and_then(|b| {
        b.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v)
    }) {
        Some(Value::Bool(x)) => *x,
        Some(Value::String(x)) => parse_bool(x).unwrap_or(false),
        _ => false,
    }
}

fn list(body: Option<&Map<String, Value>>, key: &str) -> Vec<String> {
    match body.and_then(|b| b.get(key)) {
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(|x| x.as_str().map(str::to_owned))
            .collect(),
        Some(Value::String(x)) if !x.is_empty() => x.split(',').map(str::to_owned).collect(),
        _ => Vec::new(),
    }
}

fn ok(v: Result<Value, CoreError>) -> http::Response<Body> {
    match v {
        Ok(v) => json_response(StatusCode::OK, &v),
        Err(e) => core_error(&e),
    }
}

fn status_json(s: tresor_core::SealStatus) -> Value {
    serde_json::to_value(s).unwrap_or(Value::Null)
}

fn method_not_allowed() -> Option<http::Response<Body>> {
    Some(error_response(StatusCode::METHOD_NOT_ALLOWED, &[]))
}

fn is_write(m: &Method) -> bool {
    *m == Method::PUT || *m == Method::POST
}

/// Serves `path` if it is a bare endpoint; `None` hands it to the logical pipeline.
pub(crate) async fn handle(
    core: &Core,
    method: &Method,
    path: &str,
    query: &[(String, String)],
    body: Option<&Map<String, Value>>,
) -> Option<http::Response<Body>> {
    let path = path.trim_end_matches('/');
    match path {
        "sys/init" => Some(match method {
            &Method::GET => ok(core.initialized().await.map(|i| json!({"initialized": i}))),
            m if is_write(m) => {
                let (shares, threshold) =
                    match (n(body, "secret_shares"), n(body, "secret_threshold")) {
                        (Ok(a), Ok(b)) => (a, b),
                        (Err(e), _) | (_, Err(e)) => {
                            return Some(error_response(StatusCode::BAD_REQUEST, &[e]));
                        }
                    };
                if n(body, "recovery_shares").unwrap_or(0) > 0
                    || n(body, "recovery_threshold").unwrap_or(0) > 0
                {
                    return Some(error_response(
                        StatusCode::BAD_REQUEST,
                        &["parameters specific to auto unseal seals present".into()],
                    ));
                }
                let req = InitRequest {
                    secret_shares: shares,
                    secret_threshold: threshold,
                    pgp_keys: list(body, "pgp_keys"),
                    root_token_pgp_key: s(body, "root_token_pgp_key"),
                    root_token_id: None,
                };
                match core.init(req).await {
                    Err(e) => core_error(&e),
                    Ok(r) => {
                        use base64::Engine as _;
                        let keys: Vec<String> = r.keys.iter().map(|k| hex_encode(k)).collect();
                        let b64: Vec<String> = r
                            .keys
                            .iter()
                            .map(|k| base64::engine::general_purpose::STANDARD.encode(&k[..]))
                            .collect();
                        json_response(
                            StatusCode::OK,
                            &json!({"keys": keys, "keys_base64": b64, "root_token": r.root_token.as_str()}),
                        )
                    }
                }
            }
            _ => return method_not_allowed(),
        }),
        "sys/seal-status" => Some(match *method {
            Method::GET => ok(core.seal_status().await.map(status_json)),
            _ => return method_not_allowed(),
        }),
        "sys/unseal" => Some(match method {
            m if is_write(m) => {
                let key = s(body, "key");
                let reset = b(body, "reset");
                if key.is_empty() && !reset {
                    return Some(error_response(StatusCode::BAD_REQUEST, &["'key' must be specified in request body as JSON, or 'reset' set to true".into()]));
                }
                ok(core
                    .unseal((!key.is_empty()).then_some(key.as_str()), reset)
                    .await
                    .map(status_json))
            }
            _ => return method_not_allowed(),
        }),
        "sys/health" => Some(health(core, method, query).await),
        "sys/leader" => Some(match *method {
            Method::GET => json_response(
                StatusCode::OK,
                &serde_json::to_value(core.leader_status().await).unwrap_or(Value::Null),
            ),
            _ => return method_not_allowed(),
        }),
        "sys/rekey/init" | "sys/rotate/root/init" => Some(match method {
            &Method::GET => ok(core.rekey_status().await),
            &Method::DELETE => match core.rekey_cancel().await {
                Ok(()) => empty(StatusCode::NO_CONTENT),
                Err(e) => core_error(&e),
            },
            m if is_write(m) => {
                let (shares, threshold) =
                    match (n(body, "secret_shares"), n(body, "secret_threshold")) {
                        (Ok(a), Ok(b)) => (a, b),
                        (Err(e), _) | (_, Err(e)) => {
                            return Some(error_response(StatusCode::BAD_REQUEST, &[e]));
                        }
                    };
                ok(core
                    .rekey_init(RekeyRequest {
                        secret_shares: shares,
                        secret_threshold: threshold,
                        pgp_keys: list(body, "pgp_keys"),
                        backup: b(body, "backup"),
                        require_verification: b(body, "require_verification"),
                    })
                    .await)
            }
            _ => return method_not_allowed(),
        }),
        "sys/rekey/verify" | "sys/rotate/root/verify" => Some(match method {
            &Method::GET => ok(core.rekey_verify_status().await),
            &Method::DELETE => ok(core.rekey_verify_cancel().await),
            m if is_write(m) => {
                let key = s(body, "key");
                if key.is_empty() {
                    return Some(error_response(
                        StatusCode::BAD_REQUEST,
                        &["'key' must be specified in request body as JSON".into()],
                    ));
                }
                ok(core.rekey_verify_update(&key, &s(body, "nonce")).await)
            }
            _ => return method_not_allowed(),
        }),
        "sys/rekey/update" | "sys/rotate/root/update" => Some(match method {
            m if is_write(m) => {
                let key = s(body, "key");
                if key.is_empty() {
                    return Some(error_response(
                        StatusCode::BAD_REQUEST,
                        &["'key' must be specified in request body as JSON".into()],
                    ));
                }
                ok(core.rekey_update(&key, &s(body, "nonce")).await)
            }
            _ => return method_not_allowed(),
        }),
        "sys/generate-root/attempt" | "sys/generate-root-token/attempt" => {
            let answer = match method {
                &Method::GET => core.generate_root_status().await,
                &Method::DELETE => {
                    return Some(match core.generate_root_cancel().await {
                        Ok(()) => empty(StatusCode::NO_CONTENT),
                        Err(e) => core_error(&e),
                    });
                }
                m if is_write(m) => {
                    core.generate_root_init(&s(body, "otp"), &s(body, "pgp_key"))
                        .await
                }
                _ => return method_not_allowed(),
            };
            Some(genroot_answer(path, answer))
        }
        "sys/generate-root/update" | "sys/generate-root-token/update" => Some(match method {
            m if is_write(m) => {
                let key = s(body, "key");
                if key.is_empty() {
                    return Some(error_response(
                        StatusCode::BAD_REQUEST,
                        &["'key' must be specified in request body as JSON".into()],
                    ));
                }
                genroot_answer(
                    path,
                    core.generate_root_update(&key, &s(body, "nonce")).await,
                )
            }
            _ => return method_not_allowed(),
        }),
        _ => None,
    }
}

/// Vault's `sys/generate-root/*` answers with bare JSON. OpenBao 2.5+ serves the same
/// operations as logical endpoints under `sys/generate-root-token/*`, and its CLI reads the
/// fields from the envelope's `data`, so those names get the envelope. (The unseal-key shares
/// remain the authorization, as on Vault's unauthenticated endpoints.)
fn genroot_answer(path: &str, answer: Result<Value, CoreError>) -> http::Response<Body> {
    if !path.starts_with("sys/generate-root-token/") {
        return ok(answer);
    }
    match answer {
        Ok(data) => json_response(
            StatusCode::OK,
            &json!({
                "request_id": uuid::Uuid::new_v4().to_string(),
                "lease_id": "",
                "renewable": false,
                "lease_duration": 0,
                "data": data,
                "wrap_info": null,
                "warnings": null,
                "auth": null,
                "mount_type": "system",
            }),
        ),
        Err(e) => core_error(&e),
    }
}

fn hex_encode(b: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(b.len() * 2);
    for x in b {
        s.push(HEX[(x >> 4) as usize] as char);
        s.push(HEX[(x & 15) as usize] as char);
    }
    s
}

async fn health(core: &Core, method: &Method, query: &[(String, String)]) -> http::Response<Body> {
    if *method != Method::GET && *method != Method::HEAD {
        return error_response(StatusCode::METHOD_NOT_ALLOWED, &[]);
    }
    let (mut standbyok, mut perfstandbyok) = (false, false);
    let mut codes = [
        ("activecode", 200u16),
        ("standbycode", 429),
        ("sealedcode", 503),
        ("uninitcode", 501),
        ("drsecondarycode", 472),
        ("performancestandbycode", 473),
    ];
    for (k, v) in query {
        if k == "standbyok" || k == "perfstandbyok" {
            match parse_bool(v) {
                Some(x) if k == "standbyok" => standbyok |= x,
                Some(x) => perfstandbyok |= x,
                None => {
                    return error_response(
                        StatusCode::BAD_REQUEST,
                        &[format!("bad value for {k} parameter: {v}")],
                    );
                }
            }
        } else if let Some(slot) = codes.iter_mut().find(|(name, _)| name == k) {
            match v.parse::<u16>() {
                Ok(c) if (100..=999).contains(&c) => slot.1 = c,
                _ => {
                    return error_response(
                        StatusCode::BAD_REQUEST,
                        &[format!("bad value for {k} parameter: {v}")],
                    );
                }
            }
        }
    }
    let code = |name: &str| {
        codes
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, c)| *c)
            .unwrap_or(200)
    };
    let initialized = core.initialized().await.unwrap_or(false);
    let sealed = core.is_sealed();
    // A standby that serves reads is what Vault calls a performance standby.
    let standby = !sealed && core.is_standby();
    let perf_standby = standby && core.standby_reads();
    let status = if !initialized {
        code("uninitcode")
    } else if sealed {
        code("sealedcode")
    } else if perf_standby && !perfstandbyok {
        code("performancestandbycode")
    } else if standby && !perf_standby && !standbyok {
        code("standbycode")
    } else {
        code("activecode")
    };
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    if *method == Method::HEAD {
        return empty(status);
    }
    // A sealed (or uninitialised) node reports itself a standby, and its replication modes
    // as not known yet, as Vault and OpenBao do; the status code above is the sealed one.
    let replication = if sealed { "unknown" } else { "disabled" };
    let mut body = json!({
        "initialized": initialized,
        "sealed": sealed,
        "standby": standby || sealed,
        "performance_standby": perf_standby,
        "replication_performance_mode": replication,
        "replication_dr_mode": replication,
        "server_time_utc": std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0),
        "version": tresor_core::VERSION,
    });
    if let Ok(u) = core.unsealed() {
        body["cluster_name"] = json!(u.cluster_name);
        body["cluster_id"] = json!(u.cluster_id);
    }
    json_response(status, &body)
}
