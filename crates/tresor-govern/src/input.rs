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

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Arc;
    use std::time::{Duration, UNIX_EPOCH};

    use serde_json::{Map, Value, json};
    use tresor_core::governing::GoverningSet;
    use tresor_core::hooks::{GoverningFacts, RequestFacts, TokenFacts};
    use tresor_sdk::identity::{AliasInfo, EntityInfo, GroupInfo};

    /// Every object in `v` has exactly the properties its schema allows and requires.
    fn check(v: &Value, schema: &Value, at: &str) {
        if let Some(branches) = schema.get("oneOf").and_then(Value::as_array) {
            let branch = branches
                .iter()
                .find(|b| {
                    matches!(
                        (b["type"].as_str(), v),
                        (Some("null"), Value::Null) | (Some("object"), Value::Object(_))
                    )
                })
                .unwrap_or_else(|| panic!("{at}: no schema branch for {v}"));
            return check(v, branch, at);
        }
        match v {
            Value::Object(m) if schema.get("properties").is_some() => {
                let props = schema["properties"].as_object().unwrap();
                for k in m.keys() {
                    assert!(props.contains_key(k), "{at}.{k} is not in the schema");
                }
                for r in schema["required"].as_array().unwrap() {
                    assert!(m.contains_key(r.as_str().unwrap()), "{at}.{r} is missing");
                }
                for (k, x) in m {
                    check(x, &props[k], &format!("{at}.{k}"));
                }
            }
            Value::Array(items) if schema.get("items").is_some() => {
                for x in items {
                    check(x, &schema["items"], &format!("{at}[]"));
                }
            }
            _ => {}
        }
    }

    #[test]
    fn the_document_matches_the_documented_schema() {
        let schema: Value =
            serde_json::from_str(include_str!("../../../docs/governing-input.schema.json"))
                .unwrap();
        let set = GoverningSet::default();
        let data: Map<String, Value> = json!({"csr": "..."}).as_object().unwrap().clone();
        let policies = vec!["default".to_owned(), "business-hours".to_owned()];
        let meta = BTreeMap::from([("team".to_owned(), "ops".to_owned())]);
        let resolved = tresor_core::identity::Resolved {
            info: Arc::new(EntityInfo {
                id: "e1".into(),
                name: "alice".into(),
                metadata: BTreeMap::new(),
                aliases: vec![AliasInfo {
                    id: "a1".into(),
                    name: "alice".into(),
                    mount_accessor: "auth_userpass_1".into(),
                    mount_path: "auth/userpass/".into(),
                    mount_type: "userpass".into(),
                    ..AliasInfo::default()
                }],
                groups: vec![GroupInfo {
                    id: "g1".into(),
                    name: "ops".into(),
                }],
                disabled: false,
            }),
            policies: vec!["business-hours".into()],
            generation: 1,
        };
        let token = TokenFacts {
            accessor: "acc",
            policies: &policies,
            meta: &meta,
            display_name: "userpass-alice",
            path: "auth/userpass/login/alice",
            token_type: "service",
            entity_id: "e1",
            creation_time: 1_796_266_800,
            expire_time: Some(1_796_270_400),
            ttl: 3600,
            explicit_max_ttl: 0,
            period: 0,
            num_uses: 0,
            orphan: false,
            renewable: true,
            role: "",
        };
        let g = GoverningFacts {
            set: &set,
            data: &data,
            policy_override: true,
            wrap_ttl: Some(Duration::from_secs(60)),
            token: Some(token),
            identity: Some(&resolved),
            mfa_sent: false,
            now: UNIX_EPOCH + Duration::from_secs(1_796_266_800),
        };
        let facts = RequestFacts {
            path: "pki/sign/web",
            operation: tresor_sdk::Operation::Update,
            remote_addr: Some("127.0.0.2"),
            mount_path: "pki/",
            mount_type: "pki",
            unauthenticated: false,
            policies: Some(&policies),
            governing: Some(g),
        };
        let doc = super::document(&facts, &g);
        check(&doc, &schema, "input");
        assert_eq!(doc["time"]["hour"], 3);
        assert_eq!(doc["time"]["weekday"], "Thursday");
        assert_eq!(
            doc["request"]["wrapping"],
            json!({"wrapped": true, "ttl": 60})
        );
        assert_eq!(
            doc["identity"]["groups"],
            json!([{"id": "g1", "name": "ops"}])
        );
        // Without a token or an entity (a login).
        let login = GoverningFacts {
            token: None,
            identity: None,
            ..g
        };
        let doc = super::document(&facts, &login);
        check(&doc, &schema, "input");
        assert_eq!(doc["token"], Value::Null);
    }
}
