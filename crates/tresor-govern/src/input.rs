//! The input document a governing policy sees (`input`), built once per request from the
//! pipeline's facts. Field by field in docs/governing-policies.md; JSON schema in
//! docs/governing-input.schema.json (a test checks this builder against it).

use serde_json::{Map, Value, json};
use tresor_core::hooks::{GoverningFacts, RequestFacts};

/// `time.*` of the input: the request's time (the core's injected clock) in UTC.
pub fn time_facts(now: std::time::SystemTime) -> Value {
    let ns = now
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i128)
        .unwrap_or_default();
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(ns)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    json!({
        "unix": t.unix_timestamp(),
        "unix_ns": ns as i64,
        "rfc3339": t.format(&time::format_description::well_known::Rfc3339).unwrap_or_default(),
        "date": format!("{:04}-{:02}-{:02}", t.year(), u8::from(t.month()), t.day()),
        "hour": t.hour(),
        "minute": t.minute(),
        "weekday": t.weekday().to_string(),
    })
}

fn rfc3339(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

/// The whole input document of one request.
pub fn document(facts: &RequestFacts<'_>, g: &GoverningFacts<'_>) -> Value {
    let request = json!({
        "path": facts.path,
        "operation": facts.operation.as_str(),
        "data": Value::Object(g.data.clone()),
        "mount_path": facts.mount_path,
        "mount_type": facts.mount_type,
        "connection": {"remote_addr": facts.remote_addr.unwrap_or_default()},
        "unauthenticated": facts.unauthenticated,
        "policy_override": g.policy_override,
        "wrapping": {
            "wrapped": g.wrap_ttl.is_some(),
            "ttl": g.wrap_ttl.map(|d| d.as_secs()).unwrap_or(0),
        },
    });
    let token = match &g.token {
        None => Value::Null,
        Some(t) => json!({
            "accessor": t.accessor,
            "policies": t.policies,
            "metadata": t.meta,
            "display_name": t.display_name,
            "path": t.path,
            "type": if t.token_type.is_empty() { "service" } else { t.token_type },
            "entity_id": t.entity_id,
            "creation_time": rfc3339(t.creation_time),
            "creation_time_unix": t.creation_time,
            "expire_time": t.expire_time.map(rfc3339),
            "ttl": t.ttl,
            "explicit_max_ttl": t.explicit_max_ttl,
            "period": t.period,
            "num_uses": t.num_uses,
            "orphan": t.orphan,
            "renewable": t.renewable,
            "role": t.role,
        }),
    };
    let (entity, groups) = match g.identity {
        None => (Value::Null, Value::Array(Vec::new())),
        Some(r) => {
            let e = &r.info;
            let aliases: Vec<Value> = e
                .aliases
                .iter()
                .map(|a| {
                    json!({
                        "id": a.id,
                        "name": a.name,
                        "mount_accessor": a.mount_accessor,
                        "mount_path": a.mount_path,
                        "mount_type": a.mount_type,
                        "metadata": a.metadata,
                    })
                })
                .collect();
            let groups: Vec<Value> = e
                .groups
                .iter()
                .map(|gr| json!({"id": gr.id, "name": gr.name}))
                .collect();
            (
                json!({
                    "id": e.id,
                    "name": e.name,
                    "metadata": e.metadata,
                    "aliases": aliases,
                    "disabled": e.disabled,
                    "policies": r.policies,
                }),
                Value::Array(groups),
            )
        }
    };
    let mut m = Map::new();
    m.insert("request".into(), request);
    m.insert("token".into(), token);
    m.insert(
        "identity".into(),
        json!({"entity": entity, "groups": groups}),
    );
    m.insert("mfa".into(), json!({"sent": g.mfa_sent}));
    m.insert("time".into(), time_facts(g.now));
    Value::Object(m)
}
