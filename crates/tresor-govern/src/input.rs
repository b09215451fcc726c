//! The input document a governing policy sees (`input`), built once per request from the
//! pipeline's facts. Field by field in docs/governing-policies.md; JSON schema in
//! docs/governing-input.schema.json (a test checks this builder against it).

use std::collections::BTreeMap;

use regorus::Value as V;
use tresor_core::hooks::{GoverningFacts, RequestFacts};

fn rfc3339_ns(t: time::OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

fn rfc3339(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .map(rfc3339_ns)
        .unwrap_or_default()
}

type Field<'f> = (&'static str, &'f dyn Fn() -> V);

/// An object of the fields `want` names, each built only when wanted.
fn pick(want: &dyn Fn(&str) -> bool, fields: &[Field<'_>]) -> V {
    V::from(
        fields
            .iter()
            .filter(|(k, _)| want(k))
            .map(|(k, f)| (V::from(*k), f()))
            .collect::<BTreeMap<V, V>>(),
    )
}

fn all(_: &str) -> bool {
    true
}

fn strs(items: &[String]) -> V {
    V::from(
        items
            .iter()
            .map(|s| V::from(s.as_str()))
            .collect::<Vec<V>>(),
    )
}

fn str_map(m: &BTreeMap<String, String>) -> V {
    V::from(
        m.iter()
            .map(|(k, v)| (V::from(k.as_str()), V::from(v.as_str())))
            .collect::<BTreeMap<V, V>>(),
    )
}

/// The input document of one request as the engine takes it (built once, shared by every
/// policy the request meets), with the sections `wanted`.
pub fn value(facts: &RequestFacts<'_>, g: &GoverningFacts<'_>, wanted: &Sections) -> V {
    let section = |name: &'static str| move |field: &str| wanted.has_field(name, field);
    pick(
        &|s| wanted.has(s),
        &[
            ("request", &|| request(facts, g, &section("request"))),
            ("token", &|| token(g, &section("token"))),
            ("identity", &|| identity(g, &section("identity"))),
            ("mfa", &|| {
                pick(&section("mfa"), &[("sent", &|| V::from(g.mfa_sent))])
            }),
            ("time", &|| time_facts(g.now, &section("time"))),
        ],
    )
}

/// `time.*`: the request's time (the core's injected clock) in UTC.
fn time_facts(now: std::time::SystemTime, want: &dyn Fn(&str) -> bool) -> V {
    let ns = now
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i128)
        .unwrap_or_default();
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(ns)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    pick(
        want,
        &[
            ("unix", &|| V::from(t.unix_timestamp())),
            ("unix_ns", &|| V::from(ns as i64)),
            ("rfc3339", &|| V::from(rfc3339_ns(t))),
            ("date", &|| {
                V::from(format!(
                    "{:04}-{:02}-{:02}",
                    t.year(),
                    u8::from(t.month()),
                    t.day()
                ))
            }),
            ("hour", &|| V::from(u32::from(t.hour()))),
            ("minute", &|| V::from(u32::from(t.minute()))),
            ("weekday", &|| V::from(t.weekday().to_string())),
        ],
    )
}

fn request(facts: &RequestFacts<'_>, g: &GoverningFacts<'_>, want: &dyn Fn(&str) -> bool) -> V {
    pick(
        want,
        &[
            ("path", &|| V::from(facts.path)),
            ("operation", &|| V::from(facts.operation.as_str())),
            // The request's fields, converted without a serde_json copy first.
            ("data", &|| {
                V::from(
                    g.data
                        .iter()
                        .map(|(k, v)| {
                            let v = serde::Deserialize::deserialize(v).unwrap_or(V::Undefined);
                            (V::from(k.as_str()), v)
                        })
                        .collect::<BTreeMap<V, V>>(),
                )
            }),
            ("mount_path", &|| V::from(facts.mount_path)),
            ("mount_type", &|| V::from(facts.mount_type)),
            ("connection", &|| {
                pick(
                    &all,
                    &[("remote_addr", &|| {
                        V::from(facts.remote_addr.unwrap_or_default())
                    })],
                )
            }),
            ("unauthenticated", &|| V::from(facts.unauthenticated)),
            ("policy_override", &|| V::from(g.policy_override)),
            ("wrapping", &|| {
                pick(
                    &all,
                    &[
                        ("wrapped", &|| V::from(g.wrap_ttl.is_some())),
                        ("ttl", &|| {
                            V::from(g.wrap_ttl.map(|d| d.as_secs()).unwrap_or(0))
                        }),
                    ],
                )
            }),
        ],
    )
}

fn token(g: &GoverningFacts<'_>, want: &dyn Fn(&str) -> bool) -> V {
    let Some(t) = g.token.as_ref() else {
        return V::Null;
    };
    pick(
        want,
        &[
            ("accessor", &|| V::from(t.accessor)),
            ("policies", &|| strs(t.policies)),
            ("metadata", &|| str_map(t.meta)),
            ("display_name", &|| V::from(t.display_name)),
            ("path", &|| V::from(t.path)),
            ("type", &|| {
                V::from(if t.token_type.is_empty() {
                    "service"
                } else {
                    t.token_type
                })
            }),
            ("entity_id", &|| V::from(t.entity_id)),
            ("creation_time", &|| V::from(rfc3339(t.creation_time))),
            ("creation_time_unix", &|| V::from(t.creation_time)),
            ("expire_time", &|| {
                t.expire_time.map_or(V::Null, |e| V::from(rfc3339(e)))
            }),
            ("ttl", &|| V::from(t.ttl)),
            ("explicit_max_ttl", &|| V::from(t.explicit_max_ttl)),
            ("period", &|| V::from(t.period)),
            ("num_uses", &|| V::from(t.num_uses)),
            ("orphan", &|| V::from(t.orphan)),
            ("renewable", &|| V::from(t.renewable)),
            ("role", &|| V::from(t.role)),
        ],
    )
}

fn identity(g: &GoverningFacts<'_>, want: &dyn Fn(&str) -> bool) -> V {
    let entity = || {
        let Some(r) = g.identity else {
            return V::Null;
        };
        let e = &r.info;
        pick(
            &all,
            &[
                ("id", &|| V::from(e.id.as_str())),
                ("name", &|| V::from(e.name.as_str())),
                ("metadata", &|| str_map(&e.metadata)),
                ("aliases", &|| {
                    V::from(
                        e.aliases
                            .iter()
                            .map(|a| {
                                pick(
                                    &all,
                                    &[
                                        ("id", &|| V::from(a.id.as_str())),
                                        ("name", &|| V::from(a.name.as_str())),
                                        ("mount_accessor", &|| V::from(a.mount_accessor.as_str())),
                                        ("mount_path", &|| V::from(a.mount_path.as_str())),
                                        ("mount_type", &|| V::from(a.mount_type.as_str())),
                                        ("metadata", &|| str_map(&a.metadata)),
                                    ],
                                )
                            })
                            .collect::<Vec<V>>(),
                    )
                }),
                ("disabled", &|| V::from(e.disabled)),
                ("policies", &|| strs(&r.policies)),
            ],
        )
    };
    let groups = || {
        V::from(
            g.identity
                .iter()
                .flat_map(|r| r.info.groups.iter())
                .map(|gr| {
                    pick(
                        &all,
                        &[
                            ("id", &|| V::from(gr.id.as_str())),
                            ("name", &|| V::from(gr.name.as_str())),
                        ],
                    )
                })
                .collect::<Vec<V>>(),
        )
    };
    pick(want, &[("entity", &entity), ("groups", &groups)])
}

/// The parts of the input document a request's policies read: sections (`request`, `token`,
/// `identity`, `mfa`, `time`) and, within them, fields (`request.operation`); the rest is left
/// out of the request's document.
#[derive(Debug, Clone, Default)]
pub struct Sections(Option<BTreeMap<String, Option<Vec<String>>>>);

impl Sections {
    /// Everything.
    pub fn all() -> Self {
        Sections(None)
    }

    /// Nothing yet; [`Sections::add`] the reads of each policy.
    pub fn none() -> Self {
        Sections(Some(BTreeMap::new()))
    }

    /// Adds what one policy reads.
    pub fn add(&mut self, reads: &crate::reads::Reads) {
        let Some(have) = &mut self.0 else {
            return;
        };
        let crate::reads::Reads::Paths(paths) = reads else {
            self.0 = None;
            return;
        };
        for p in paths {
            let Some(section) = p.first() else {
                continue;
            };
            let fields = have
                .entry(section.clone())
                .or_insert_with(|| Some(Vec::new()));
            match (fields, p.get(1)) {
                (None, _) => {}
                (f @ Some(_), None) => *f = None,
                (Some(list), Some(field)) => {
                    if !list.contains(field) {
                        list.push(field.clone());
                    }
                }
            }
        }
    }

    /// Whether the document has this section.
    pub fn has(&self, section: &str) -> bool {
        self.0.as_ref().is_none_or(|s| s.contains_key(section))
    }

    /// Whether the document has this field of a section it has.
    pub fn has_field(&self, section: &str, field: &str) -> bool {
        match &self.0 {
            None => true,
            Some(s) => match s.get(section) {
                None => false,
                Some(None) => true,
                Some(Some(fields)) => fields.iter().any(|f| f == field),
            },
        }
    }
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

    fn json_of(v: &regorus::Value) -> Value {
        serde_json::to_value(v).unwrap()
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
        let doc = json_of(&super::value(&facts, &g, &super::Sections::all()));
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
        let doc = json_of(&super::value(&facts, &login, &super::Sections::all()));
        check(&doc, &schema, "input");
        assert_eq!(doc["token"], Value::Null);

        // Only what the request's policies read: the same values there, nothing else.
        let full = json_of(&super::value(&facts, &g, &super::Sections::all()));
        let mut wanted = super::Sections::none();
        for text in [
            "package a\nmain if input.request.operation == \"read\"\n",
            "package b\nmain if { input.time.hour > 1; input.identity.groups[_].name == \"ops\"; input.token }\n",
        ] {
            wanted.add(&crate::reads::analyze("p.rego", text));
        }
        let part = json_of(&super::value(&facts, &g, &wanted));
        assert_eq!(
            part,
            json!({
                "request": {"operation": full["request"]["operation"]},
                "time": {"hour": 3},
                "identity": {"groups": full["identity"]["groups"]},
                "token": full["token"],
            })
        );
        // A policy that may read anything gets everything.
        wanted.add(&crate::reads::analyze(
            "c.rego",
            "package c\nmain if count(input) > 0\n",
        ));
        assert_eq!(json_of(&super::value(&facts, &g, &wanted)), full);
    }
}
