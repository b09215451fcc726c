//! The response envelope as a Vault client decodes it.
//!
//! [`Secret`] has exactly the fields (and field order) Vault's Go client keeps, so that
//! `-format=json` prints what `vault` prints. [`parse`] mirrors the client's leniency: a body
//! without any envelope field (the bare JSON of `sys/seal-status` and friends) becomes the
//! secret's `data`.
//!
//! These structs carry tokens (`client_token`, wrapping tokens); their `Debug` output is
//! redacted. They are plain `String`s rather than zeroizing buffers because the CLI prints them
//! on purpose; a long-lived caller (the agent) should move a token it keeps into a zeroizing
//! type.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

/// Decodes `null` as the type's default (Go's zero value).
pub(crate) fn nullable<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// A decoded response envelope.
#[derive(Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Secret {
    /// Server-assigned request id.
    #[serde(default, deserialize_with = "nullable")]
    pub request_id: String,
    /// Lease id, empty when the response has no lease.
    #[serde(default, deserialize_with = "nullable")]
    pub lease_id: String,
    /// Lease (or refresh) duration in seconds.
    #[serde(default, deserialize_with = "nullable")]
    pub lease_duration: i64,
    /// Whether the lease can be renewed.
    #[serde(default, deserialize_with = "nullable")]
    pub renewable: bool,
    /// The payload.
    #[serde(default)]
    pub data: Option<Map<String, Value>>,
    /// Warnings the server attached.
    #[serde(default)]
    pub warnings: Option<Vec<String>>,
    /// Present on logins and token creation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<SecretAuth>,
    /// Present when the response was wrapped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wrap_info: Option<WrapInfo>,
    /// The mount's type, when the server says.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub mount_type: String,
}

/// The `auth` block of a response.
#[derive(Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SecretAuth {
    /// The token.
    #[serde(default, deserialize_with = "nullable")]
    pub client_token: String,
    /// Its accessor.
    #[serde(default, deserialize_with = "nullable")]
    pub accessor: String,
    /// All policies.
    #[serde(default)]
    pub policies: Option<Vec<String>>,
    /// Policies attached to the token itself.
    #[serde(default)]
    pub token_policies: Option<Vec<String>>,
    /// Policies from the identity system.
    #[serde(default)]
    pub identity_policies: Option<Vec<String>>,
    /// Token metadata.
    #[serde(default)]
    pub metadata: Option<BTreeMap<String, String>>,
    /// Whether the token has no parent.
    #[serde(default, deserialize_with = "nullable")]
    pub orphan: bool,
    /// Identity entity id.
    #[serde(default, deserialize_with = "nullable")]
    pub entity_id: String,
    /// Token TTL in seconds (0 = never expires).
    #[serde(default, deserialize_with = "nullable")]
    pub lease_duration: i64,
    /// Whether the token can be renewed.
    #[serde(default, deserialize_with = "nullable")]
    pub renewable: bool,
    /// MFA requirement, when a login needs a second factor.
    #[serde(default)]
    pub mfa_requirement: Option<Value>,
}

/// The `wrap_info` block of a wrapped response.
#[derive(Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WrapInfo {
    /// The wrapping token.
    #[serde(default, deserialize_with = "nullable")]
    pub token: String,
    /// Its accessor.
    #[serde(default, deserialize_with = "nullable")]
    pub accessor: String,
    /// Its TTL in seconds.
    #[serde(default, deserialize_with = "nullable")]
    pub ttl: i64,
    /// When it was created (RFC 3339).
    #[serde(default, deserialize_with = "nullable")]
    pub creation_time: String,
    /// The path whose response it wraps.
    #[serde(default, deserialize_with = "nullable")]
    pub creation_path: String,
    /// Accessor of a wrapped token, if any.
    #[serde(default, deserialize_with = "nullable")]
    pub wrapped_accessor: String,
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Secret")
            .field("request_id", &self.request_id)
            .field("lease_id", &self.lease_id)
            .field("lease_duration", &self.lease_duration)
            .field("renewable", &self.renewable)
            .field(
                "data_keys",
                &self.data.as_ref().map(|d| d.keys().collect::<Vec<_>>()),
            )
            .field("warnings", &self.warnings)
            .field("auth", &self.auth)
            .field("wrap_info", &self.wrap_info)
            .finish()
    }
}

impl fmt::Debug for SecretAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretAuth")
            .field("client_token", &"<redacted>")
            .field("accessor", &self.accessor)
            .field("policies", &self.policies)
            .field("lease_duration", &self.lease_duration)
            .field("renewable", &self.renewable)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for WrapInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WrapInfo")
            .field("token", &"<redacted>")
            .field("accessor", &self.accessor)
            .field("ttl", &self.ttl)
            .field("creation_path", &self.creation_path)
            .finish_non_exhaustive()
    }
}

impl Secret {
    /// True when no envelope field is set (what Go calls the zero value).
    fn is_zero(&self) -> bool {
        *self == Secret::default()
    }

    /// The data map, or an empty one.
    pub fn data(&self) -> Map<String, Value> {
        self.data.clone().unwrap_or_default()
    }

    /// Whether the data map is empty or absent.
    pub fn has_data(&self) -> bool {
        self.data.as_ref().is_some_and(|d| !d.is_empty())
    }

    /// Whether there are warnings.
    pub fn has_warnings(&self) -> bool {
        self.warnings.as_ref().is_some_and(|w| !w.is_empty())
    }

    /// A string in `data`.
    pub fn data_str(&self, key: &str) -> Option<&str> {
        self.data.as_ref()?.get(key)?.as_str()
    }
}

/// Why a body could not be decoded as a response.
#[derive(Debug, thiserror::Error)]
#[error("error decoding response: {0}")]
pub struct DecodeError(pub String);

/// Decodes a response body. An empty body is `None` (204 No Content).
pub fn parse(body: &[u8]) -> Result<Option<Secret>, DecodeError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    let raw: Value = serde_json::from_slice(body).map_err(|e| DecodeError(e.to_string()))?;
    let Value::Object(object) = raw else {
        return Err(DecodeError("expected a JSON object".to_string()));
    };
    let mut secret: Secret = serde_json::from_value(Value::Object(object.clone()))
        .map_err(|e| DecodeError(e.to_string()))?;
    // A bare JSON object (the seal-lifecycle endpoints) becomes the data; an error body
    // (`{"errors": [...]}`, e.g. on a 404) does not.
    if secret.is_zero() && !object.contains_key("errors") {
        secret.data = Some(object);
    }
    Ok(Some(secret))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn envelope_decodes_into_fields() {
        let body = json!({
            "request_id": "r1", "lease_id": "", "renewable": false, "lease_duration": 2764800,
            "data": {"foo": "bar"}, "wrap_info": null, "warnings": null, "auth": null,
            "mount_type": "kv"
        });
        let s = parse(body.to_string().as_bytes()).unwrap().unwrap();
        assert_eq!(s.request_id, "r1");
        assert_eq!(s.lease_duration, 2_764_800);
        assert_eq!(s.data_str("foo"), Some("bar"));
        assert!(s.auth.is_none());
        assert_eq!(s.mount_type, "kv");
    }

    #[test]
    fn bare_json_becomes_data() {
        let body = json!({"type": "shamir", "sealed": true, "t": 3});
        let s = parse(body.to_string().as_bytes()).unwrap().unwrap();
        assert_eq!(s.data, Some(body.as_object().unwrap().clone()));
    }

    #[test]
    fn error_bodies_are_not_data() {
        let s = parse(br#"{"errors":[]}"#).unwrap().unwrap();
        assert!(s.data.is_none());
        assert!(!s.has_data());
    }

    #[test]
    fn empty_body_is_none_and_garbage_is_an_error() {
        assert!(parse(b"").unwrap().is_none());
        assert!(parse(b" \n").unwrap().is_none());
        assert!(parse(b"[1]").is_err());
        assert!(parse(b"{").is_err());
    }

    #[test]
    fn nulls_decode_as_defaults() {
        let body = json!({"request_id": null, "lease_id": null, "data": {"a": 1},
            "auth": {"client_token": "t", "policies": ["root"], "metadata": null,
                     "lease_duration": 0, "renewable": false}});
        let s = parse(body.to_string().as_bytes()).unwrap().unwrap();
        let auth = s.auth.unwrap();
        assert_eq!(auth.client_token, "t");
        assert_eq!(auth.policies, Some(vec!["root".to_string()]));
        assert!(auth.metadata.is_none());
    }

    #[test]
    fn serializes_in_go_client_order() {
        let s = Secret {
            request_id: "r".into(),
            data: Some(Map::new()),
            ..Secret::default()
        };
        let text = serde_json::to_string(&s).unwrap();
        assert_eq!(
            text,
            r#"{"request_id":"r","lease_id":"","lease_duration":0,"renewable":false,"data":{},"warnings":null}"#
        );
    }

    #[test]
    fn debug_redacts_tokens() {
        let s = Secret {
            auth: Some(SecretAuth {
                client_token: "hvs.supersecret".into(),
                ..SecretAuth::default()
            }),
            wrap_info: Some(WrapInfo {
                token: "hvs.wrapsecret".into(),
                ..WrapInfo::default()
            }),
            ..Secret::default()
        };
        let dbg = format!("{s:?}");
        assert!(!dbg.contains("supersecret"));
        assert!(!dbg.contains("wrapsecret"));
    }
}
