//! Issue 12, hardening: every type that can hold a token or a secret prints a redacted `Debug`,
//! so a `tracing` field, a panic message or a test failure never shows one.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value, json};
use tresor_core::{CoreRequest, CoreResponse, InitRequest};
use tresor_sdk::{Auth, Caller, Connection, RawResponse, Response, SecretLease, SecretRef};

const SECRET: &str = "s3cr3t-VALUE-never-printed";
const TOKEN: &str = "hvs.SECRETTOKENnever-printed";

fn obj(v: Value) -> Map<String, Value> {
    v.as_object().cloned().unwrap()
}

#[track_caller]
fn clean(what: &str, printed: String) {
    assert!(
        !printed.contains(SECRET) && !printed.contains(TOKEN),
        "{what} printed a secret: {printed}"
    );
}

#[test]
fn secret_bearing_types_print_redacted_debug() {
    let internal = obj(json!({"password": SECRET}));
    let auth = Auth {
        client_token: TOKEN.into(),
        internal_data: internal.clone(),
        metadata: [("note".to_string(), "fine".to_string())].into(),
        ..Default::default()
    };
    clean("Auth", format!("{auth:?}"));
    let lease = SecretLease {
        secret_type: "creds".into(),
        ttl: Duration::from_secs(60),
        internal_data: internal.clone(),
        ..Default::default()
    };
    clean("SecretLease", format!("{lease:?}"));
    let r = SecretRef {
        lease_id: "db/creds/x/1".into(),
        secret_type: "creds".into(),
        internal_data: internal.clone(),
        increment: None,
    };
    clean("SecretRef", format!("{r:?}"));
    let resp = Response {
        data: Some(obj(json!({"password": SECRET, "token": TOKEN}))),
        secret: Some(lease),
        auth: Some(auth),
        raw: Some(RawResponse {
            headers: Vec::new(),
            status: 200,
            content_type: "application/x-pem-file".into(),
            body: SECRET.as_bytes().to_vec(),
        }),
        ..Default::default()
    };
    let printed = format!("{resp:?}");
    clean("Response", printed.clone());
    assert!(
        printed.contains("password"),
        "keys are still named: {printed}"
    );
    let caller = Caller {
        batch_token: Some(TOKEN.into()),
        ..Default::default()
    };
    clean("Caller", format!("{caller:?}"));
    let conn = Connection {
        remote_addr: Some("127.0.0.1".into()),
        peer_certificates: vec![SECRET.as_bytes().to_vec()],
    };
    clean("Connection", format!("{conn:?}"));
    let mut req = CoreRequest::new(
        tresor_sdk::Operation::Update,
        "secret/data/x",
        obj(json!({"data": {"k": SECRET}})),
        Some(TOKEN),
    );
    req.raw_body = Some(Arc::from(SECRET.as_bytes()));
    clean("CoreRequest", format!("{req:?}"));
    let out = CoreResponse {
        response: Some(Response::data(obj(json!({"k": SECRET})))),
        auth: Some(json!({"client_token": TOKEN})),
        wrap_info: Some(json!({"token": TOKEN})),
        ..Default::default()
    };
    clean("CoreResponse", format!("{out:?}"));
    let init = InitRequest {
        secret_shares: 1,
        secret_threshold: 1,
        root_token_id: Some(TOKEN.into()),
        ..Default::default()
    };
    clean("InitRequest", format!("{init:?}"));
}
