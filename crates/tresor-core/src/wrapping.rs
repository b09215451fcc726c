//! Response wrapping: a response is stored in the cubbyhole of a fresh single-use token, and
//! the client gets only `wrap_info`. `sys/wrapping/unwrap` returns the original response once;
//! the token is revoked (and its cubbyhole with it) on first unwrap or when its TTL ends.

use std::time::Duration;

use serde_json::{Map, Value, json};
use tresor_sdk::Storage;

use crate::core::{CoreRequest, CoreResponse, Unsealed};
use crate::error::CoreError;
use crate::tokens::{TokenEntry, now, rfc3339};

/// The only policy a wrapping token carries.
pub const WRAPPING_POLICY: &str = "response-wrapping";
pub(crate) const INVALID: &str = "wrapping token is not valid or does not exist";

fn cubby_key(id: &str) -> String {
    format!("{id}/response")
}

/// Wrapping needs only the subsystems of one unseal: the token store, the cubbyhole mount's
/// view and the expiration manager.
impl Unsealed {
    fn cubbyhole(&self) -> Result<crate::barrier::View, CoreError> {
        self.router()
            .exact("cubbyhole/")
            .map(|r| r.view.clone())
            .ok_or_else(|| CoreError::Internal("cubbyhole mount missing".into()))
    }

    /// Wraps a finished response in a new single-use token with `ttl`.
    pub(crate) async fn wrap(
        &self,
        out: CoreResponse,
        ttl: Duration,
        creation_path: &str,
    ) -> Result<CoreResponse, CoreError> {
        let at = now();
        let resp = out.response.unwrap_or_default();
        let stored = json!({
            "request_id": out.request_id,
            "lease_id": out.lease_id,
            "renewable": out.renewable,
            "lease_duration": out.lease_duration,
            "data": resp.data.map(Value::Object).unwrap_or(Value::Null),
            "warnings": if resp.warnings.is_empty() { Value::Null } else { json!(resp.warnings) },
            "auth": out.auth.clone().unwrap_or(Value::Null),
            "mount_type": out.mount_type,
            "creation_path": creation_path,
            "creation_time": at,
            "creation_ttl": ttl.as_secs(),
        });
        let mut entry = TokenEntry::service(
            vec![WRAPPING_POLICY.into()],
            creation_path,
            "response-wrapping",
            at,
        )
        .with_ttl(ttl.as_secs());
        entry.num_uses = 1;
        let e = self.tokens.store(entry).await?;
        self.cubbyhole()?
            .put(
                &cubby_key(&e.hash),
                serde_json::to_vec(&stored).map_err(|e| CoreError::Internal(e.to_string()))?,
            )
            .await?;
        self.expiration
            .register_token(
                "sys/wrapping/wrap",
                &e.hash,
                &e.accessor,
                at,
                at.saturating_add(crate::tokens::secs(ttl)),
            )
            .await?;
        let wrapped_accessor = out
            .auth
            .as_ref()
            .and_then(|a| a.get("accessor"))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let mut info = json!({
            "token": e.id,
            "accessor": e.accessor,
            "ttl": ttl.as_secs(),
            "creation_time": rfc3339(at),
            "creation_path": creation_path,
        });
        if !wrapped_accessor.is_empty() {
            info["wrapped_accessor"] = json!(wrapped_accessor);
        }
        Ok(CoreResponse {
            request_id: out.request_id,
            wrap_info: Some(info),
            ..Default::default()
        })
    }

    /// Reads (and with `consume`, destroys) a wrapping token's stored response.
    async fn take_wrapped(
        &self,
        token: &str,
        consume: bool,
    ) -> Result<(Value, std::sync::Arc<TokenEntry>), CoreError> {
        let e = self
            .tokens
            .lookup(token)
            .await?
            .ok_or_else(|| CoreError::InvalidRequest(INVALID.into()))?;
        if e.policies != [WRAPPING_POLICY] || e.is_exhausted() {
            return Err(CoreError::InvalidRequest(INVALID.into()));
        }
        // The one use of a wrapping token is spent under its lock on the stored count: of
        // any number of concurrent unwraps exactly one gets past this line.
        if consume && self.tokens.use_token(&e).await.is_err() {
            return Err(CoreError::InvalidRequest(INVALID.into()));
        }
        let cubby = self.cubbyhole()?;
        let raw = cubby
            .get(&cubby_key(&e.hash))
            .await?
            .ok_or_else(|| CoreError::InvalidRequest(INVALID.into()))?;
        let v: Value =
            serde_json::from_slice(&raw).map_err(|e| CoreError::Internal(e.to_string()))?;
        if consume {
            self.revoke_token(&e.hash, false).await?;
        }
        Ok((v, e))
    }

    /// `sys/wrapping/unwrap` and `sys/wrapping/rewrap`.
    pub(crate) async fn unwrap_dispatch(
        &self,
        rel: &str,
        req: &CoreRequest,
        caller: Option<&TokenEntry>,
    ) -> Result<Option<CoreResponse>, CoreError> {
        let token = match req
            .data
            .get("token")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
        {
            Some(t) => t.to_owned(),
            None => caller
                .map(|c| c.id.clone())
                .ok_or_else(|| CoreError::InvalidRequest(INVALID.into()))?,
        };
        let (v, entry) = self.take_wrapped(&token, true).await?;
        let mut out = CoreResponse {
            request_id: uuid::Uuid::new_v4().to_string(),
            lease_id: v["lease_id"].as_str().unwrap_or_default().to_owned(),
            renewable: v["renewable"].as_bool().unwrap_or(false),
            lease_duration: v["lease_duration"].as_u64().unwrap_or(0),
            mount_type: v["mount_type"].as_str().unwrap_or_default().to_owned(),
            auth: Some(v["auth"].clone()).filter(|a| !a.is_null()),
            ..Default::default()
        };
        let mut resp = tresor_sdk::Response::default();
        if let Value::Object(d) = &v["data"] {
            resp.data = Some(d.clone());
        }
        if let Value::Array(w) = &v["warnings"] {
            resp.warnings = w
                .iter()
                .filter_map(|x| x.as_str().map(str::to_owned))
                .collect();
        }
        out.response = Some(resp);
        if rel == "wrapping/rewrap" {
            let remaining = Duration::from_secs(entry.remaining(now()).max(1) as u64);
            let path = v["creation_path"]
                .as_str()
                .unwrap_or("sys/wrapping/wrap")
                .to_owned();
            return self.wrap(out, remaining, &path).await.map(Some);
        }
        Ok(Some(out))
    }

    /// `sys/wrapping/lookup`: facts about a wrapping token without using it.
    pub async fn wrapping_lookup(&self, token: &str) -> Result<Map<String, Value>, CoreError> {
        let (v, _) = self.take_wrapped(token, false).await?;
        let mut m = Map::new();
        m.insert("creation_path".into(), v["creation_path"].clone());
        m.insert(
            "creation_time".into(),
            json!(rfc3339(v["creation_time"].as_i64().unwrap_or(0))),
        );
        m.insert("creation_ttl".into(), v["creation_ttl"].clone());
        Ok(m)
    }
}
