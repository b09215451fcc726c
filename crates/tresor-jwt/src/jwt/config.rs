//! `config`: where keys come from (exactly one of `oidc_discovery_url`, `jwks_url` /
//! `jwks_pairs`, `jwt_validation_pubkeys`), the OIDC client, and mount-wide defaults.
//!
//! A write replaces the whole config, as in Vault. It is checked completely before it is
//! stored: PEM keys and CA bundles are parsed, and the discovery document and every JWKS are
//! fetched, so a bad PEM or an unreachable URL is a 400 naming the field and the old config
//! stays as it was.

use std::sync::Arc;

use serde_json::{Map, Value, json};
use tresor_sdk::framework::Fields;
use tresor_sdk::{LogicalError, Request, Response, Result};

use crate::jwt::inputs::ConfigInput;
use crate::jwt::provider::Provider;
use crate::jwt::state::Engine;
use crate::jwt::store::{self, JwksPair, JwtConfig};

fn bad(msg: impl Into<String>) -> LogicalError {
    LogicalError::invalid(msg)
}

/// Parses `jwks_pairs`: a list of `{jwks_url, jwks_ca_pem}` objects (or a JSON string of one).
fn parse_pairs(v: Option<&Value>) -> Result<Vec<JwksPair>> {
    let v = match v {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::String(s)) if s.trim().is_empty() => return Ok(Vec::new()),
        Some(Value::String(s)) => {
            serde_json::from_str::<Value>(s).map_err(|e| bad(format!("invalid jwks_pairs: {e}")))?
        }
        Some(v) => v.clone(),
    };
    let pairs: Vec<JwksPair> = match v {
        Value::Array(_) => serde_json::from_value(v),
        Value::Object(_) => serde_json::from_value(Value::Array(vec![v])),
        _ => {
            return Err(bad(
                "invalid jwks_pairs: expected a list of {jwks_url, jwks_ca_pem} objects",
            ));
        }
    }
    .map_err(|e| bad(format!("invalid jwks_pairs: {e}")))?;
    if pairs.iter().any(|p| p.jwks_url.trim().is_empty()) {
        return Err(bad("invalid jwks_pairs: every entry needs a jwks_url"));
    }
    Ok(pairs)
}

impl Engine {
    pub(crate) async fn config_read(
        self: Arc<Self>,
        req: Request,
        _f: Fields,
    ) -> Result<Option<Response>> {
        let Some(c) = store::load_config(&*req.storage).await? else {
            return Ok(None);
        };
        let mut m = Map::new();
        m.insert("oidc_discovery_url".into(), json!(c.oidc_discovery_url));
        m.insert(
            "oidc_discovery_ca_pem".into(),
            json!(c.oidc_discovery_ca_pem),
        );
        m.insert("oidc_client_id".into(), json!(c.oidc_client_id));
        m.insert("oidc_response_mode".into(), json!(c.oidc_response_mode));
        m.insert("oidc_response_types".into(), json!(c.oidc_response_types));
        m.insert("jwks_url".into(), json!(c.jwks_url));
        m.insert("jwks_ca_pem".into(), json!(c.jwks_ca_pem));
        m.insert("jwks_pairs".into(), json!(c.jwks_pairs));
        m.insert(
            "jwt_validation_pubkeys".into(),
            json!(c.jwt_validation_pubkeys),
        );
        m.insert("jwt_supported_algs".into(), json!(c.jwt_supported_algs));
        m.insert("bound_issuer".into(), json!(c.bound_issuer));
        m.insert("default_role".into(), json!(c.default_role));
        m.insert("provider_config".into(), Value::Object(c.provider_config));
        m.insert("namespace_in_state".into(), json!(c.namespace_in_state));
        Ok(Some(Response::data(m)))
    }

    pub(crate) async fn config_write(
        self: Arc<Self>,
        req: Request,
        f: Fields,
    ) -> Result<Option<Response>> {
        let i: ConfigInput = f.input();
        let trimmed = |v: String| v.trim().to_owned();
        let cfg = JwtConfig {
            version: JwtConfig::FORMAT_VERSION,
            oidc_discovery_url: trimmed(i.oidc_discovery_url),
            oidc_discovery_ca_pem: i.oidc_discovery_ca_pem,
            oidc_client_id: trimmed(i.oidc_client_id),
            oidc_client_secret: i.oidc_client_secret,
            oidc_response_mode: trimmed(i.oidc_response_mode),
            oidc_response_types: i.oidc_response_types,
            jwks_url: trimmed(i.jwks_url),
            jwks_ca_pem: i.jwks_ca_pem,
            jwks_pairs: parse_pairs(Some(&i.jwks_pairs))?,
            jwt_validation_pubkeys: i
                .jwt_validation_pubkeys
                .into_iter()
                .filter(|k| !k.trim().is_empty())
                .collect(),
            jwt_supported_algs: i.jwt_supported_algs,
            bound_issuer: trimmed(i.bound_issuer),
            default_role: trimmed(i.default_role),
            provider_config: i.provider_config,
            namespace_in_state: i.namespace_in_state,
        };
        let sources = [
            !cfg.oidc_discovery_url.is_empty(),
            !cfg.jwks_url.is_empty() || !cfg.jwks_pairs.is_empty(),
            !cfg.jwt_validation_pubkeys.is_empty(),
        ]
        .iter()
        .filter(|x| **x)
        .count();
        if sources != 1 {
            return Err(bad(
                "exactly one of 'jwt_validation_pubkeys', 'jwks_url' (or 'jwks_pairs') or 'oidc_discovery_url' must be set",
            ));
        }
        if !cfg.jwks_url.is_empty() && !cfg.jwks_pairs.is_empty() {
            return Err(bad("'jwks_url' and 'jwks_pairs' cannot both be set"));
        }
        if !cfg.oidc_client_id.is_empty() && cfg.oidc_discovery_url.is_empty() {
            return Err(bad("'oidc_discovery_url' must be set for OIDC"));
        }
        if !cfg.oidc_client_secret.is_empty() && cfg.oidc_client_id.is_empty() {
            return Err(bad(
                "'oidc_client_id' must be set when 'oidc_client_secret' is",
            ));
        }
        match cfg.oidc_response_mode.as_str() {
            "" | "query" | "form_post" => {}
            other => {
                return Err(bad(format!(
                    "invalid oidc_response_mode {other:?}: use \"query\" or \"form_post\""
                )));
            }
        }
        for t in &cfg.oidc_response_types {
            if !matches!(t.as_str(), "code" | "id_token") {
                return Err(bad(format!(
                    "invalid oidc_response_types value {t:?}: use \"code\" or \"id_token\""
                )));
            }
        }
        if cfg.oidc_response_types.iter().any(|t| t == "id_token")
            && cfg.oidc_response_mode != "form_post"
        {
            return Err(bad(
                "oidc_response_types \"id_token\" requires oidc_response_mode \"form_post\"",
            ));
        }
        let provider = Provider::new(cfg.clone()).map_err(bad)?;
        provider.check().await.map_err(bad)?;
        store::save_config(&*req.storage, &cfg).await?;
        self.set_provider(Some(Arc::new(provider)));
        Ok(None)
    }
}

impl JwtConfig {
    /// The format this build writes.
    pub(crate) const FORMAT_VERSION: u32 = <JwtConfig as tresor_sdk::record::Versioned>::FORMAT;
}
