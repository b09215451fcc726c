//! Typed helpers for the `sys/` and `auth/token/` endpoints the CLI, the bench tool and the
//! tests use: seal status, health, leader, mounts, ACL policies, tokens. None of them is
//! wrapped, whatever the configured wrap TTL.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::client::Client;
use crate::error::ClientError;
use crate::request::{Method, Request};
use crate::secret::{DecodeError, Secret, SecretAuth, nullable};

/// `GET sys/seal-status`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealStatus {
    /// Seal type (`shamir`).
    #[serde(rename = "type", default, deserialize_with = "nullable")]
    pub seal_type: String,
    /// Whether the server has been initialized.
    #[serde(default, deserialize_with = "nullable")]
    pub initialized: bool,
    /// Whether it is sealed.
    #[serde(default, deserialize_with = "nullable")]
    pub sealed: bool,
    /// Unseal threshold.
    #[serde(default, deserialize_with = "nullable")]
    pub t: u32,
    /// Number of key shares.
    #[serde(default, deserialize_with = "nullable")]
    pub n: u32,
    /// Keys given so far in the current unseal.
    #[serde(default, deserialize_with = "nullable")]
    pub progress: u32,
    /// The current unseal attempt's nonce.
    #[serde(default, deserialize_with = "nullable")]
    pub nonce: String,
    /// Server version.
    #[serde(default, deserialize_with = "nullable")]
    pub version: String,
    /// Cluster name (empty while sealed).
    #[serde(default, deserialize_with = "nullable")]
    pub cluster_name: String,
    /// Cluster id (empty while sealed).
    #[serde(default, deserialize_with = "nullable")]
    pub cluster_id: String,
    /// Storage type.
    #[serde(default, deserialize_with = "nullable")]
    pub storage_type: String,
}

/// `GET sys/health`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health {
    /// Whether the server has been initialized.
    #[serde(default, deserialize_with = "nullable")]
    pub initialized: bool,
    /// Whether it is sealed.
    #[serde(default, deserialize_with = "nullable")]
    pub sealed: bool,
    /// Whether it is a standby.
    #[serde(default, deserialize_with = "nullable")]
    pub standby: bool,
    /// Whether it is a performance standby.
    #[serde(default, deserialize_with = "nullable")]
    pub performance_standby: bool,
    /// The server's clock, Unix seconds.
    #[serde(default, deserialize_with = "nullable")]
    pub server_time_utc: i64,
    /// Server version.
    #[serde(default, deserialize_with = "nullable")]
    pub version: String,
    /// Cluster name.
    #[serde(default, deserialize_with = "nullable")]
    pub cluster_name: String,
    /// Cluster id.
    #[serde(default, deserialize_with = "nullable")]
    pub cluster_id: String,
}

/// `GET sys/leader`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Leader {
    /// Whether HA is enabled.
    #[serde(default, deserialize_with = "nullable")]
    pub ha_enabled: bool,
    /// Whether this node is the active one.
    #[serde(default, deserialize_with = "nullable")]
    pub is_self: bool,
    /// The active node's API address.
    #[serde(default, deserialize_with = "nullable")]
    pub leader_address: String,
    /// The active node's cluster address.
    #[serde(default, deserialize_with = "nullable")]
    pub leader_cluster_address: String,
}

/// The body of `POST sys/mounts/:path` (Vault's `MountInput`).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct MountInput {
    /// Engine type (`kv`, `pki`).
    #[serde(rename = "type")]
    pub engine: String,
    /// Human-readable description.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// Engine options (`version = "2"` for KV v2).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub options: BTreeMap<String, String>,
    /// Mount tuning (`default_lease_ttl`, `max_lease_ttl`, ...), as JSON.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub config: Option<Value>,
}

fn decode<T: serde::de::DeserializeOwned>(v: Value) -> Result<T, ClientError> {
    serde_json::from_value(v).map_err(|e| DecodeError(e.to_string()).into())
}

impl Client {
    /// `GET sys/seal-status`.
    pub async fn seal_status(&self) -> Result<SealStatus, ClientError> {
        decode(
            self.json(&Request::new(Method::GET, "sys/seal-status").no_wrap())
                .await?,
        )
    }

    /// `GET sys/health`, asking for 200-range codes in every state (as the Go client does),
    /// so that a sealed or standby server is an answer rather than an error (or a retry).
    pub async fn health(&self) -> Result<Health, ClientError> {
        let mut req = Request::new(Method::GET, "sys/health").no_wrap();
        for code in [
            "uninitcode",
            "sealedcode",
            "standbycode",
            "drsecondarycode",
            "performancestandbycode",
        ] {
            req = req.query(code, "299");
        }
        decode(self.json(&req).await?)
    }

    /// `GET sys/leader`.
    pub async fn leader(&self) -> Result<Leader, ClientError> {
        decode(
            self.json(&Request::new(Method::GET, "sys/leader").no_wrap())
                .await?,
        )
    }

    /// `POST sys/mounts/:path`: enables a secrets engine.
    pub async fn mount(&self, path: &str, input: &MountInput) -> Result<(), ClientError> {
        let body = serde_json::to_value(input).map_err(|e| DecodeError(e.to_string()))?;
        let path = format!("sys/mounts/{}", path.trim_matches('/'));
        self.call(&Request::new(Method::POST, &path).json(body).no_wrap())
            .await
            .map(drop)
    }

    /// `POST sys/mounts/:path/tune`.
    pub async fn tune_mount(&self, path: &str, config: Value) -> Result<(), ClientError> {
        let path = format!("sys/mounts/{}/tune", path.trim_matches('/'));
        self.call(&Request::new(Method::POST, &path).json(config).no_wrap())
            .await
            .map(drop)
    }

    /// `DELETE sys/mounts/:path`: disables a secrets engine and deletes its data.
    pub async fn unmount(&self, path: &str) -> Result<(), ClientError> {
        let path = format!("sys/mounts/{}", path.trim_matches('/'));
        self.call(&Request::new(Method::DELETE, &path).no_wrap())
            .await
            .map(drop)
    }

    /// `PUT sys/policies/acl/:name` with HCL or JSON rules.
    pub async fn put_policy(&self, name: &str, rules: &str) -> Result<(), ClientError> {
        let path = format!("sys/policies/acl/{name}");
        self.call(
            &Request::new(Method::PUT, &path)
                .json(json!({ "policy": rules }))
                .no_wrap(),
        )
        .await
        .map(drop)
    }

    /// `DELETE sys/policies/acl/:name`.
    pub async fn delete_policy(&self, name: &str) -> Result<(), ClientError> {
        let path = format!("sys/policies/acl/{name}");
        self.call(&Request::new(Method::DELETE, &path).no_wrap())
            .await
            .map(drop)
    }

    /// `POST auth/token/create` as the client's token: the new token's `auth` block.
    pub async fn create_token(&self, input: Value) -> Result<SecretAuth, ClientError> {
        let secret = self
            .secret(
                &Request::new(Method::POST, "auth/token/create")
                    .json(input)
                    .no_wrap(),
            )
            .await?;
        secret
            .and_then(|s| s.auth)
            .filter(|a| !a.client_token.is_empty())
            .ok_or_else(|| DecodeError("no auth.client_token in the response".into()).into())
    }

    /// `POST auth/token/revoke`: revokes `token` and its children.
    pub async fn revoke_token(&self, token: &str) -> Result<(), ClientError> {
        self.call(
            &Request::new(Method::POST, "auth/token/revoke")
                .json(json!({ "token": token }))
                .no_wrap(),
        )
        .await
        .map(drop)
    }

    /// `GET auth/token/lookup-self`: what the server knows about the client's token.
    pub async fn lookup_self(&self) -> Result<Option<Secret>, ClientError> {
        self.secret(&Request::new(Method::GET, "auth/token/lookup-self").no_wrap())
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_decode_with_nulls_and_unknown_fields() {
        let s: SealStatus = decode(
            json!({"type": "shamir", "initialized": true, "sealed": false,
            "t": 3, "n": 5, "progress": 0, "nonce": null, "version": "0.1.0",
            "cluster_name": "c", "cluster_id": "i", "recovery_seal": false}),
        )
        .unwrap();
        assert_eq!((s.seal_type.as_str(), s.t, s.n), ("shamir", 3, 5));
        assert!(s.initialized && !s.sealed && s.nonce.is_empty());
        let h: Health = decode(
            json!({"initialized": true, "sealed": true, "standby": false,
            "server_time_utc": 1700000000, "version": "0.1.0"}),
        )
        .unwrap();
        assert!(h.sealed && h.server_time_utc == 1_700_000_000);
        let l: Leader = decode(json!({"ha_enabled": false, "is_self": false,
            "leader_address": "", "active_time": "0001-01-01T00:00:00Z"}))
        .unwrap();
        assert!(!l.ha_enabled);
        assert!(decode::<SealStatus>(json!({"sealed": "maybe"})).is_err());
    }

    #[test]
    fn mount_input_is_vaults_shape() {
        let m = MountInput {
            engine: "kv".into(),
            options: [("version".to_string(), "2".to_string())].into(),
            ..MountInput::default()
        };
        assert_eq!(
            serde_json::to_value(&m).unwrap(),
            json!({"type": "kv", "options": {"version": "2"}})
        );
    }
}
