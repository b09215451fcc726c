//! The key source a mount's config names, ready to verify tokens: static PEM keys, one or
//! more JWKS endpoints, or an OIDC provider found through discovery (whose JWKS, token and
//! authorization endpoints come from its discovery document).
//!
//! **JWKS caching.** Each endpoint's keys are fetched on first use and kept. A token whose
//! `kid` no cached key has triggers a refetch of the endpoints (a provider rotated its keys),
//! at most once per [`REFRESH_EVERY`] per endpoint, so tokens with made-up `kid`s cannot
//! turn this server into a load generator against the provider.

use std::time::Duration;

use jsonwebtoken::Algorithm;
use serde_json::Value;
use tokio::sync::Mutex;
use tokio::time::Instant;

use crate::jwt::store::JwtConfig;
use crate::keys::{self, ASYMMETRIC, Key};
use crate::net;

/// The shortest time between two fetches of one JWKS endpoint caused by unknown `kid`s.
const REFRESH_EVERY: Duration = Duration::from_secs(5);

/// What the OIDC provider's discovery document says.
#[derive(Clone, Debug, Default)]
pub(crate) struct Discovered {
    pub(crate) issuer: String,
    pub(crate) authorization_endpoint: String,
    /// RFC 8628's endpoint, when the provider offers the device authorization grant.
    pub(crate) device_authorization_endpoint: String,
    pub(crate) token_endpoint: String,
    pub(crate) userinfo_endpoint: String,
    pub(crate) jwks_uri: String,
    pub(crate) token_auth_methods: Vec<String>,
}

/// One JWKS endpoint and its cached keys.
struct Jwks {
    url: String,
    client: reqwest::Client,
    /// The field that configured it, for errors.
    field: &'static str,
    cache: Mutex<(Vec<Key>, Option<Instant>)>,
}

impl Jwks {
    async fn fetch(&self) -> Result<Vec<Key>, String> {
        let what = self.field;
        let resp = self
            .client
            .get(&self.url)
            .header("accept", "application/json")
            .send()
            .await
            .map_err(|e| {
                format!(
                    "error checking {what}: fetching {}: {}",
                    self.url,
                    net::chain(&e)
                )
            })?;
        if !resp.status().is_success() {
            return Err(format!(
                "error checking {what}: {} answered {}",
                self.url,
                resp.status()
            ));
        }
        let body = resp
            .bytes()
            .await
            .map_err(|e| format!("error checking {what}: reading {}: {e}", self.url))?;
        // An empty key set is not an error (Vault's identity provider publishes none until a
        // named key exists); a login then finds no key for its token.
        keys::parse_jwks(&body).map_err(|e| format!("error checking {what}: {e}"))
    }

    /// The cached keys; fetched when there are none yet, or refetched when `kid` is unknown
    /// and the last fetch is older than [`REFRESH_EVERY`].
    async fn keys(&self, kid: Option<&str>) -> Result<Vec<Key>, String> {
        let mut c = self.cache.lock().await;
        let known = |keys: &[Key]| match kid {
            None => !keys.is_empty(),
            Some(k) => keys.iter().any(|x| x.kid.as_deref() == Some(k)),
        };
        let stale = c.1.is_none_or(|t| t.elapsed() >= REFRESH_EVERY);
        if c.1.is_none() || (!known(&c.0) && stale) {
            let fresh = self.fetch().await;
            c.1 = Some(Instant::now());
            match fresh {
                Ok(k) => c.0 = k,
                // Keep serving the keys we had; the caller reports the unknown kid.
                Err(e) if c.0.is_empty() => return Err(e),
                Err(e) => tracing::warn!(url = %self.url, error = %e, "JWKS refresh failed"),
            }
        }
        Ok(c.0.clone())
    }
}

/// The discovery endpoint, its document (fetched once) and the JWKS it names.
struct Discovery {
    url: String,
    client: reqwest::Client,
    doc: Mutex<Option<(Discovered, std::sync::Arc<Jwks>)>>,
}

impl Discovery {
    async fn fetch(&self) -> Result<Discovered, String> {
        let field = "oidc_discovery_url";
        let url = format!(
            "{}/.well-known/openid-configuration",
            self.url.trim_end_matches('/')
        );
        let resp =
            self.client.get(&url).send().await.map_err(|e| {
                format!("error checking {field}: fetching {url}: {}", net::chain(&e))
            })?;
        if !resp.status().is_success() {
            return Err(format!(
                "error checking {field}: {url} answered {}",
                resp.status()
            ));
        }
        let v: Value = resp.json().await.map_err(|e| {
            format!("error checking {field}: {url} is not a discovery document: {e}")
        })?;
        let s = |k: &str| {
            v.get(k)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        let d = Discovered {
            issuer: s("issuer"),
            authorization_endpoint: s("authorization_endpoint"),
            device_authorization_endpoint: s("device_authorization_endpoint"),
            token_endpoint: s("token_endpoint"),
            userinfo_endpoint: s("userinfo_endpoint"),
            jwks_uri: s("jwks_uri"),
            token_auth_methods: v
                .get("token_endpoint_auth_methods_supported")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|x| x.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default(),
        };
        if d.issuer.trim_end_matches('/') != self.url.trim_end_matches('/') {
            return Err(format!(
                "error checking {field}: the provider's issuer {:?} is not the discovery URL {:?}",
                d.issuer, self.url
            ));
        }
        if d.jwks_uri.is_empty() {
            return Err(format!(
                "error checking {field}: the discovery document has no jwks_uri"
            ));
        }
        Ok(d)
    }

    async fn get(&self) -> Result<(Discovered, std::sync::Arc<Jwks>), String> {
        let mut g = self.doc.lock().await;
        if let Some(d) = g.as_ref() {
            return Ok(d.clone());
        }
        let d = self.fetch().await?;
        let jwks = std::sync::Arc::new(Jwks {
            url: d.jwks_uri.clone(),
            client: self.client.clone(),
            field: "oidc_discovery_url",
            cache: Mutex::new((Vec::new(), None)),
        });
        *g = Some((d.clone(), jwks.clone()));
        Ok((d, jwks))
    }
}

/// A mount's configured key source.
pub(crate) struct Provider {
    pub(crate) config: JwtConfig,
    static_keys: Vec<Key>,
    jwks: Vec<Jwks>,
    discovery: Option<Discovery>,
}

impl Provider {
    /// Builds the source from a config: parses keys and CA bundles (no network yet). Errors
    /// name the field.
    pub(crate) fn new(config: JwtConfig) -> Result<Provider, String> {
        let mut static_keys = Vec::new();
        for (i, pem) in config.jwt_validation_pubkeys.iter().enumerate() {
            let k = keys::parse_pem(pem)
                .map_err(|e| format!("error parsing jwt_validation_pubkeys[{i}]: {e}"))?;
            static_keys.push(k);
        }
        let mut jwks = Vec::new();
        for (i, p) in config.jwks_endpoints().into_iter().enumerate() {
            let (field, ca_field) = if i == 0 && !config.jwks_url.is_empty() {
                ("jwks_url", "jwks_ca_pem")
            } else {
                ("jwks_pairs", "jwks_pairs.jwks_ca_pem")
            };
            check_url(&p.jwks_url, field)?;
            jwks.push(Jwks {
                client: net::client(&p.jwks_ca_pem, ca_field)?,
                url: p.jwks_url,
                field,
                cache: Mutex::new((Vec::new(), None)),
            });
        }
        let discovery = if config.oidc_discovery_url.is_empty() {
            None
        } else {
            check_url(&config.oidc_discovery_url, "oidc_discovery_url")?;
            Some(Discovery {
                url: config.oidc_discovery_url.clone(),
                client: net::client(&config.oidc_discovery_ca_pem, "oidc_discovery_ca_pem")?,
                doc: Mutex::new(None),
            })
        };
        for a in &config.jwt_supported_algs {
            keys::parse_alg(a).map_err(|e| format!("invalid jwt_supported_algs: {e}"))?;
        }
        Ok(Provider {
            config,
            static_keys,
            jwks,
            discovery,
        })
    }

    /// Reaches every remote source once (discovery document, JWKS), so a config write with an
    /// unreachable or wrong URL fails and stores nothing.
    pub(crate) async fn check(&self) -> Result<(), String> {
        for j in &self.jwks {
            j.keys(None).await?;
        }
        if let Some(d) = &self.discovery {
            let (_, jwks) = d.get().await?;
            jwks.keys(None).await?;
        }
        Ok(())
    }

    /// The HTTP client for the OIDC provider (trusting `oidc_discovery_ca_pem`), built once
    /// with the provider: the flows' token, device and userinfo requests reuse it.
    pub(crate) fn oidc_client(&self) -> Result<&reqwest::Client, String> {
        self.discovery.as_ref().map(|d| &d.client).ok_or_else(|| {
            "OIDC is not configured: set oidc_discovery_url in the mount's config".into()
        })
    }

    /// The discovery document, for OIDC flows; an error when the mount has none.
    pub(crate) async fn discovered(&self) -> Result<Discovered, String> {
        match &self.discovery {
            Some(d) => d.get().await.map(|(doc, _)| doc),
            None => {
                Err("OIDC is not configured: set oidc_discovery_url in the mount's config".into())
            }
        }
    }

    /// The algorithms a token may be signed with: `jwt_supported_algs`, else every
    /// asymmetric algorithm for JWT logins and RS256 for OIDC ID tokens (Vault's defaults).
    pub(crate) fn algorithms(&self, id_token: bool) -> Vec<Algorithm> {
        if self.config.jwt_supported_algs.is_empty() {
            return if id_token {
                vec![Algorithm::RS256]
            } else {
                ASYMMETRIC.to_vec()
            };
        }
        self.config
            .jwt_supported_algs
            .iter()
            .filter_map(|a| keys::parse_alg(a).ok())
            .collect()
    }

    /// Verifies a token's signature with the configured keys (refreshing JWKS for an unknown
    /// `kid`) and returns its claims. `expected_issuer` is the discovery issuer, if any.
    pub(crate) async fn verify(
        &self,
        token: &str,
        id_token: bool,
    ) -> Result<(serde_json::Map<String, Value>, Option<String>), String> {
        let parsed = keys::parse(token)?;
        let kid = parsed.kid.as_deref();
        let algs = self.algorithms(id_token);
        let mut candidates = self.static_keys.clone();
        let mut issuer = None;
        for j in &self.jwks {
            candidates.extend(j.keys(kid).await?);
        }
        if let Some(d) = &self.discovery {
            let (doc, jwks) = d.get().await?;
            candidates.extend(jwks.keys(kid).await?);
            issuer = Some(doc.issuer);
        }
        parsed
            .verify(&candidates, &algs)
            .map(|claims| (claims, issuer))
    }
}

fn check_url(url: &str, field: &str) -> Result<(), String> {
    let u = reqwest::Url::parse(url).map_err(|e| format!("invalid {field} {url:?}: {e}"))?;
    if !matches!(u.scheme(), "http" | "https") {
        return Err(format!(
            "invalid {field} {url:?}: only http and https URLs are supported"
        ));
    }
    Ok(())
}
