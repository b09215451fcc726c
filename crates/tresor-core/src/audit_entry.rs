//! Writing one audit entry without building it first: the request's facts are borrowed, and
//! each device's line is serialised straight into one buffer, hashing string values on the fly
//! into a stack buffer. This keeps the audited hot path free of intermediate JSON trees (an
//! entry used to cost two `Value` trees, a deep clone and dozens of allocations per device).

use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};
use serde_json::{Map, Value};

use crate::audit::Device;
use crate::tokens::TokenEntry;

/// What a response adds to an entry.
pub struct ResponseFacts<'a> {
    pub mount_type: &'a str,
    pub data: Option<&'a Map<String, Value>>,
    pub auth: Option<&'a Value>,
    pub lease_id: &'a str,
    pub wrap_info: Option<&'a Value>,
    pub warnings: &'a [String],
}

/// Everything an entry says, borrowed from the request being handled.
pub struct Facts<'a> {
    pub kind: &'static str,
    pub time: &'a str,
    pub id: &'a str,
    pub operation: &'a str,
    pub path: &'a str,
    pub mount_point: &'a str,
    pub mount_type: &'a str,
    pub mount_accessor: &'a str,
    pub token: Option<&'a TokenEntry>,
    pub token_issue_time: &'a str,
    pub data: &'a Map<String, Value>,
    pub remote: &'a str,
    /// Audited request headers: (lowercase name, value, hmac it?).
    pub headers: &'a [(String, String, bool)],
    pub error: &'a str,
    pub response: Option<ResponseFacts<'a>>,
    pub non_hmac_req: &'a [String],
    pub non_hmac_resp: &'a [String],
}

/// One device's view of an entry.
pub struct Line<'a> {
    pub f: &'a Facts<'a>,
    pub d: &'a Device,
}

/// A string, HMAC'd under the device's salt when `on` (and the device is not `log_raw`).
struct H<'a> {
    s: &'a str,
    d: &'a Device,
    on: bool,
}

impl Serialize for H<'_> {
    fn serialize<S: Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        if self.on && !self.d.log_raw() {
            let mut buf = [0u8; crate::audit::HASH_LEN];
            ser.serialize_str(self.d.hash_into(self.s, &mut buf))
        } else {
            ser.serialize_str(self.s)
        }
    }
}

/// A JSON value whose string leaves are HMAC'd; top-level keys in `skip` are left alone.
struct HV<'a> {
    v: &'a Value,
    d: &'a Device,
    skip: &'a [String],
}

impl Serialize for HV<'_> {
    fn serialize<S: Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        match self.v {
            Value::String(s) => H {
                s,
                d: self.d,
                on: true,
            }
            .serialize(ser),
            Value::Array(a) => {
                let mut seq = ser.serialize_seq(Some(a.len()))?;
                for x in a {
                    seq.serialize_element(&HV {
                        v: x,
                        d: self.d,
                        skip: &[],
                    })?;
                }
                seq.end()
            }
            Value::Object(m) => {
                let mut map = ser.serialize_map(Some(m.len()))?;
                for (k, x) in m {
                    if self.skip.iter().any(|s| s == k) {
                        map.serialize_entry(k, x)?;
                    } else {
                        map.serialize_entry(
                            k,
                            &HV {
                                v: x,
                                d: self.d,
                                skip: &[],
                            },
                        )?;
                    }
                }
                map.end()
            }
            other => other.serialize(ser),
        }
    }
}

/// An object whose named fields are HMAC'd (tokens and accessors in auth and wrap_info).
struct Selective<'a> {
    v: &'a Value,
    d: &'a Device,
}

impl Serialize for Selective<'_> {
    fn serialize<S: Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        let Value::Object(m) = self.v else {
            return self.v.serialize(ser);
        };
        let mut map = ser.serialize_map(Some(m.len()))?;
        for (k, x) in m {
            let hashed = match k.as_str() {
                "client_token" | "token" => true,
                "accessor" | "wrapped_accessor" => self.d.hmac_accessor(),
                _ => false,
            };
            match (hashed, x.as_str()) {
                (true, Some(s)) if !s.is_empty() => map.serialize_entry(
                    k,
                    &H {
                        s,
                        d: self.d,
                        on: true,
                    },
                )?,
                _ => map.serialize_entry(k, x)?,
            }
        }
        map.end()
    }
}

struct Auth<'a>(&'a Line<'a>);

impl Serialize for Auth<'_> {
    fn serialize<S: Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        let (f, d) = (self.0.f, self.0.d);
        let Some(t) = f.token else {
            return ser.serialize_map(Some(0))?.end();
        };
        let mut m = ser.serialize_map(None)?;
        m.serialize_entry(
            "client_token",
            &H {
                s: &t.id,
                d,
                on: true,
            },
        )?;
        m.serialize_entry(
            "accessor",
            &H {
                s: &t.accessor,
                d,
                on: d.hmac_accessor(),
            },
        )?;
        m.serialize_entry("display_name", &t.display_name)?;
        m.serialize_entry("policies", &t.policies)?;
        m.serialize_entry("token_policies", &t.policies)?;
        if t.meta.is_empty() {
            m.serialize_entry("metadata", &Value::Null)?;
        } else {
            m.serialize_entry("metadata", &t.meta)?;
        }
        m.serialize_entry("entity_id", &t.entity_id)?;
        m.serialize_entry("token_type", &t.token_type)?;
        m.serialize_entry("token_ttl", &t.ttl)?;
        m.serialize_entry("token_issue_time", f.token_issue_time)?;
        m.end()
    }
}

struct Namespace;

impl Serialize for Namespace {
    fn serialize<S: Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        let mut m = ser.serialize_map(Some(1))?;
        m.serialize_entry("id", "root")?;
        m.end()
    }
}

struct Headers<'a>(&'a Line<'a>);

impl Serialize for Headers<'_> {
    fn serialize<S: Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        let mut m = ser.serialize_map(Some(self.0.f.headers.len()))?;
        for (name, value, hmac) in self.0.f.headers {
            m.serialize_entry(
                name,
                &[H {
                    s: value,
                    d: self.0.d,
                    on: *hmac,
                }],
            )?;
        }
        m.end()
    }
}

struct Req<'a>(&'a Line<'a>);

impl Serialize for Req<'_> {
    fn serialize<S: Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        let (f, d) = (self.0.f, self.0.d);
        let mut m = ser.serialize_map(None)?;
        m.serialize_entry("id", f.id)?;
        m.serialize_entry("operation", f.operation)?;
        m.serialize_entry("mount_point", f.mount_point)?;
        m.serialize_entry("mount_type", f.mount_type)?;
        m.serialize_entry("mount_accessor", f.mount_accessor)?;
        m.serialize_entry(
            "client_token",
            &H {
                s: f.token.map(|t| t.id.as_str()).unwrap_or_default(),
                d,
                on: f.token.is_some(),
            },
        )?;
        m.serialize_entry(
            "client_token_accessor",
            &H {
                s: f.token.map(|t| t.accessor.as_str()).unwrap_or_default(),
                d,
                on: f.token.is_some() && d.hmac_accessor(),
            },
        )?;
        m.serialize_entry("namespace", &Namespace)?;
        m.serialize_entry("path", f.path)?;
        if f.data.is_empty() {
            m.serialize_entry("data", &Value::Null)?;
        } else {
            m.serialize_entry(
                "data",
                &HVMap {
                    m: f.data,
                    d,
                    skip: f.non_hmac_req,
                },
            )?;
        }
        m.serialize_entry("remote_address", f.remote)?;
        if !f.headers.is_empty() {
            m.serialize_entry("headers", &Headers(self.0))?;
        }
        m.end()
    }
}

/// A borrowed map serialised like [`HV`] over an object.
struct HVMap<'a> {
    m: &'a Map<String, Value>,
    d: &'a Device,
    skip: &'a [String],
}

impl Serialize for HVMap<'_> {
    fn serialize<S: Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        let mut map = ser.serialize_map(Some(self.m.len()))?;
        for (k, x) in self.m {
            if self.skip.iter().any(|s| s == k) {
                map.serialize_entry(k, x)?;
            } else {
                map.serialize_entry(
                    k,
                    &HV {
                        v: x,
                        d: self.d,
                        skip: &[],
                    },
                )?;
            }
        }
        map.end()
    }
}

struct Resp<'a>(&'a Line<'a>, &'a ResponseFacts<'a>);

impl Serialize for Resp<'_> {
    fn serialize<S: Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        let (f, d, r) = (self.0.f, self.0.d, self.1);
        let mut m = ser.serialize_map(None)?;
        m.serialize_entry("mount_point", f.mount_point)?;
        m.serialize_entry("mount_type", r.mount_type)?;
        m.serialize_entry("mount_accessor", f.mount_accessor)?;
        match r.data {
            None => m.serialize_entry("data", &Value::Null)?,
            Some(data)
                if d.elide_list_responses() && data.get("keys").is_some_and(Value::is_array) =>
            {
                let mut elided = data.clone();
                let n = data["keys"].as_array().map(Vec::len).unwrap_or(0);
                elided.insert("keys".into(), Value::from(n));
                m.serialize_entry(
                    "data",
                    &HVMap {
                        m: &elided,
                        d,
                        skip: f.non_hmac_resp,
                    },
                )?
            }
            Some(data) => m.serialize_entry(
                "data",
                &HVMap {
                    m: data,
                    d,
                    skip: f.non_hmac_resp,
                },
            )?,
        }
        if let Some(a) = r.auth {
            m.serialize_entry("auth", &Selective { v: a, d })?;
        }
        if !r.lease_id.is_empty() {
            let mut s = Map::new();
            s.insert("lease_id".into(), Value::String(r.lease_id.to_owned()));
            m.serialize_entry("secret", &s)?;
        }
        if let Some(w) = r.wrap_info {
            m.serialize_entry("wrap_info", &Selective { v: w, d })?;
        }
        if !r.warnings.is_empty() {
            m.serialize_entry("warnings", r.warnings)?;
        }
        m.end()
    }
}

impl Serialize for Line<'_> {
    fn serialize<S: Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        let f = self.f;
        let mut m = ser.serialize_map(None)?;
        m.serialize_entry("time", f.time)?;
        m.serialize_entry("type", f.kind)?;
        m.serialize_entry("auth", &Auth(self))?;
        m.serialize_entry("request", &Req(self))?;
        if let Some(r) = &f.response {
            m.serialize_entry("response", &Resp(self, r))?;
        }
        if !f.error.is_empty() {
            m.serialize_entry("error", f.error)?;
        }
        m.end()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde_json::json;

    use super::*;
    use crate::audit::{AuditEntry, Device};

    fn device(options: &[(&str, &str)]) -> Device {
        let mut o = BTreeMap::new();
        o.insert("file_path".to_owned(), "discard".to_owned());
        for (k, v) in options {
            o.insert((*k).to_owned(), (*v).to_owned());
        }
        Device::new(
            AuditEntry {
                path: "file/".into(),
                kind: "file".into(),
                description: String::new(),
                options: o,
                local: false,
            },
            b"salt",
        )
        .unwrap()
    }

    fn line(d: &Device, data: &Map<String, Value>, skip: &[String]) -> Value {
        let token = TokenEntry::service(vec!["root".into()], "auth/token/root", "root", 0);
        let f = Facts {
            kind: "request",
            time: "t",
            id: "id",
            operation: "update",
            path: "secret/data/x",
            mount_point: "secret/",
            mount_type: "kv",
            mount_accessor: "kv_1",
            token: Some(&token),
            token_issue_time: "",
            data,
            remote: "127.0.0.1",
            headers: &[],
            error: "",
            response: None,
            non_hmac_req: skip,
            non_hmac_resp: &[],
        };
        let v = serde_json::to_value(Line { f: &f, d }).unwrap();
        assert!(
            !v.to_string().contains(&token.id) || d.log_raw(),
            "token in clear: {v}"
        );
        v
    }

    #[test]
    fn strings_are_hashed_numbers_kept_and_non_hmac_keys_left_alone() {
        let d = device(&[]);
        let data =
            json!({"data": {"pw": "hunter2", "list": ["a", "b"], "n": 5}, "plain": "keep-me"})
                .as_object()
                .unwrap()
                .clone();
        let v = line(&d, &data, &["plain".to_owned()]);
        let req = &v["request"]["data"];
        assert_eq!(req["data"]["pw"], json!(d.hash("hunter2")));
        assert_eq!(req["data"]["list"], json!([d.hash("a"), d.hash("b")]));
        assert_eq!(req["data"]["n"], json!(5));
        assert_eq!(req["plain"], json!("keep-me"));
        assert!(
            v["request"]["client_token"]
                .as_str()
                .unwrap()
                .starts_with("hmac-sha256:")
        );
        assert!(
            v["auth"]["accessor"]
                .as_str()
                .unwrap()
                .starts_with("hmac-sha256:")
        );
    }

    #[test]
    fn log_raw_and_hmac_accessor_options() {
        let raw = device(&[("log_raw", "true")]);
        let data = json!({"pw": "hunter2"}).as_object().unwrap().clone();
        assert_eq!(
            line(&raw, &data, &[])["request"]["data"]["pw"],
            json!("hunter2")
        );
        let no_acc = device(&[("hmac_accessor", "false")]);
        let v = line(&no_acc, &data, &[]);
        assert!(
            !v["auth"]["accessor"]
                .as_str()
                .unwrap()
                .starts_with("hmac-sha256:")
        );
        assert!(
            v["auth"]["client_token"]
                .as_str()
                .unwrap()
                .starts_with("hmac-sha256:")
        );
    }
}
