//! The Kubernetes method's handlers: `config`, `role/:name`, `login`, renewal.
//!
//! **Login** (unauthenticated: a role and a service-account JWT). The token's claims name the
//! namespace, service account and UID (legacy secret-based tokens and projected tokens
//! both); with `pem_keys` its signature must verify locally first, and unless
//! `disable_iss_validation` its issuer must be the configured one. The namespace and name
//! must match the role's bindings (`*` globs), and the role's `audience`, when set, must be in
//! the token's `aud`. Then the API server decides: a TokenReview (`POST
//! {kubernetes_host}/apis/authentication.k8s.io/v1/tokenreviews`, authenticated with the
//! reviewer JWT, or the login's own JWT when none is configured) must say the token is
//! authenticated, for the same service account and UID. Only then is a token issued.
//!
//! When `token_reviewer_jwt` or `kubernetes_ca_cert` is empty and `disable_local_ca_jwt` is
//! off, the pod's own service-account token and CA are read from
//! `/var/run/secrets/kubernetes.io/serviceaccount/` at each login, so a rotated projected
//! token is picked up.
//!
//! Beyond Vault: `token_reviewer_jwt_file` names a file holding the reviewer JWT, read again
//! whenever its inode, size or modification time changes (the kubelet swaps a projected
//! token's file before it expires); it must hold a JWT, so the setting cannot send an
//! arbitrary file of this host to `kubernetes_host`. A role with `review_mode = local_keys`
//! skips TokenReview: the config's `pem_keys` verify the token, which must carry `exp`.

use std::os::unix::fs::MetadataExt as _;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use parking_lot::Mutex;
use serde_json::{Map, Value, json};
use tresor_sdk::framework::Fields;
use tresor_sdk::{Alias, Auth, LogicalError, Request, Response, Result, cidr};

use crate::claims::{self, Leeways};
use crate::glob;
use crate::keys::{self, ASYMMETRIC};
use crate::kubernetes::inputs::{ConfigInput, LoginInput, RoleInput};
use crate::kubernetes::store::{self, AliasSource, K8sConfig, K8sRole, ReviewMode};
use crate::net;

const LOCAL_TOKEN: &str = "/var/run/secrets/kubernetes.io/serviceaccount/token";
const LOCAL_CA: &str = "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt";
const DEFAULT_ISSUER: &str = "kubernetes/serviceaccount";
/// The largest reviewer JWT file read (projected tokens are around 1 KiB).
const MAX_REVIEWER_FILE: u64 = 64 * 1024;
/// Clock difference forgiven on `exp`, `nbf` and `iat` when local keys decide a login.
const LOCAL_CLOCK_SKEW: i64 = 60;
const UNAUTHORIZED: &str = "lookup failed: service account unauthorized; this could mean it has been deleted or recreated with a new token";

fn bad(msg: impl Into<String>) -> LogicalError {
    LogicalError::invalid(msg)
}

/// The config as logins use it: parsed keys and an HTTP client for the API server.
struct Ready {
    config: K8sConfig,
    keys: Vec<keys::Key>,
    client: reqwest::Client,
    /// The reviewer JWT last read from `token_reviewer_jwt_file`, with the file's stamp then.
    reviewer_file: Mutex<Option<(FileStamp, String)>>,
}

/// What tells a changed file: its inode (an atomic swap), size and modification time.
#[derive(Clone, Copy, PartialEq, Eq)]
struct FileStamp {
    dev: u64,
    ino: u64,
    len: u64,
    modified: Option<SystemTime>,
}

impl FileStamp {
    fn of(m: &std::fs::Metadata) -> Self {
        FileStamp {
            dev: m.dev(),
            ino: m.ino(),
            len: m.len(),
            modified: m.modified().ok(),
        }
    }
}

/// Reads a reviewer JWT file: an absolute path to a regular file of at most
/// [`MAX_REVIEWER_FILE`] bytes holding one JWT. Errors name the field and never quote the
/// file's content.
fn read_reviewer_file(path: &str) -> std::result::Result<String, String> {
    use std::io::Read as _;
    let field = "token_reviewer_jwt_file";
    if !std::path::Path::new(path).is_absolute() {
        return Err(format!("invalid {field} {path:?}: use an absolute path"));
    }
    let file = std::fs::File::open(path).map_err(|e| format!("invalid {field} {path:?}: {e}"))?;
    let meta = file
        .metadata()
        .map_err(|e| format!("invalid {field} {path:?}: {e}"))?;
    if !meta.is_file() {
        return Err(format!("invalid {field} {path:?}: not a regular file"));
    }
    let mut raw = Vec::new();
    file.take(MAX_REVIEWER_FILE + 1)
        .read_to_end(&mut raw)
        .map_err(|e| format!("invalid {field} {path:?}: {e}"))?;
    if raw.len() as u64 > MAX_REVIEWER_FILE {
        return Err(format!(
            "invalid {field} {path:?}: larger than {MAX_REVIEWER_FILE} bytes"
        ));
    }
    let text = String::from_utf8(raw).unwrap_or_default();
    let jwt = text.trim();
    if jwt.bytes().any(|b| !b.is_ascii_graphic()) || keys::parse(jwt).is_err() {
        return Err(format!(
            "invalid {field} {path:?}: the file does not hold a JWT"
        ));
    }
    Ok(jwt.to_owned())
}

impl Ready {
    /// The reviewer JWT from `path`, read again only when the file changed.
    fn reviewer_from_file(&self, path: &str) -> std::result::Result<String, String> {
        let meta = std::fs::metadata(path)
            .map_err(|e| format!("invalid token_reviewer_jwt_file {path:?}: {e}"))?;
        let stamp = FileStamp::of(&meta);
        if let Some((seen, jwt)) = self.reviewer_file.lock().as_ref()
            && *seen == stamp
        {
            return Ok(jwt.clone());
        }
        let jwt = read_reviewer_file(path)?;
        *self.reviewer_file.lock() = Some((stamp, jwt.clone()));
        Ok(jwt)
    }
}

fn prepare(config: K8sConfig) -> std::result::Result<Ready, String> {
    let mut parsed = Vec::new();
    for (i, pem) in config.pem_keys.iter().enumerate() {
        parsed.push(keys::parse_pem(pem).map_err(|e| format!("error parsing pem_keys[{i}]: {e}"))?);
    }
    let mut ca = config.kubernetes_ca_cert.clone();
    if ca.trim().is_empty() && !config.disable_local_ca_jwt {
        ca = std::fs::read_to_string(LOCAL_CA).unwrap_or_default();
    }
    let client = net::client(&ca, "kubernetes_ca_cert")?;
    Ok(Ready {
        config,
        keys: parsed,
        client,
        reviewer_file: Mutex::new(None),
    })
}

pub(crate) struct Engine {
    ready: Mutex<(Option<Arc<Ready>>, u64)>,
}

/// Who a service-account token says it is.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct ServiceAccount {
    pub(crate) namespace: String,
    pub(crate) name: String,
    pub(crate) uid: String,
    pub(crate) secret_name: String,
}

/// Reads the service account from legacy (`kubernetes.io/serviceaccount/...`) or projected
/// (`kubernetes.io: {namespace, serviceaccount: {name, uid}}`) claims.
pub(crate) fn service_account(
    claims: &Map<String, Value>,
) -> std::result::Result<ServiceAccount, String> {
    let s = |v: Option<&Value>| v.and_then(Value::as_str).unwrap_or_default().to_owned();
    let sa = if let Some(k) = claims.get("kubernetes.io").and_then(Value::as_object) {
        let acct = k.get("serviceaccount").and_then(Value::as_object);
        ServiceAccount {
            namespace: s(k.get("namespace")),
            name: s(acct.and_then(|a| a.get("name"))),
            uid: s(acct.and_then(|a| a.get("uid"))),
            secret_name: s(k.get("secret").and_then(|x| x.get("name"))),
        }
    } else {
        ServiceAccount {
            namespace: s(claims.get("kubernetes.io/serviceaccount/namespace")),
            name: s(claims.get("kubernetes.io/serviceaccount/service-account.name")),
            uid: s(claims.get("kubernetes.io/serviceaccount/service-account.uid")),
            secret_name: s(claims.get("kubernetes.io/serviceaccount/secret.name")),
        }
    };
    if sa.namespace.is_empty() || sa.name.is_empty() {
        return Err("the token names no service account namespace and name".into());
    }
    Ok(sa)
}

fn matches_any(patterns: &[String], value: &str) -> bool {
    patterns.iter().any(|p| glob::matches(p, value))
}

impl Engine {
    pub(crate) fn new() -> Self {
        Engine {
            ready: Mutex::new((None, 0)),
        }
    }

    pub(crate) fn forget(&self) {
        let mut g = self.ready.lock();
        g.0 = None;
        g.1 += 1;
    }

    async fn ready(&self, req: &Request) -> Result<Arc<Ready>> {
        let generation = {
            let g = self.ready.lock();
            if let Some(r) = g.0.as_ref() {
                return Ok(r.clone());
            }
            g.1
        };
        let Some(cfg) = store::load_config(&*req.storage).await? else {
            return Err(bad("could not load backend configuration"));
        };
        let r = Arc::new(prepare(cfg).map_err(LogicalError::Internal)?);
        let mut g = self.ready.lock();
        if g.1 == generation {
            g.0 = Some(r.clone());
        }
        Ok(r)
    }

    pub(crate) async fn config_read(
        self: Arc<Self>,
        req: Request,
        _f: Fields,
    ) -> Result<Option<Response>> {
        let Some(c) = store::load_config(&*req.storage).await? else {
            return Ok(None);
        };
        Ok(Some(Response::json(json!({
            "kubernetes_host": c.kubernetes_host,
            "kubernetes_ca_cert": c.kubernetes_ca_cert,
            "pem_keys": c.pem_keys,
            "issuer": c.issuer,
            "disable_iss_validation": c.disable_iss_validation,
            "disable_local_ca_jwt": c.disable_local_ca_jwt,
            "token_reviewer_jwt_set": !c.token_reviewer_jwt.is_empty(),
            "token_reviewer_jwt_file": c.token_reviewer_jwt_file,
        }))))
    }

    pub(crate) async fn config_write(
        self: Arc<Self>,
        req: Request,
        f: Fields,
    ) -> Result<Option<Response>> {
        let i: ConfigInput = f.input();
        let host = i.kubernetes_host.trim().trim_end_matches('/').to_owned();
        if host.is_empty() {
            return Err(bad("no host provided: kubernetes_host is required"));
        }
        let u = reqwest::Url::parse(&host)
            .map_err(|e| bad(format!("invalid kubernetes_host {host:?}: {e}")))?;
        if !matches!(u.scheme(), "http" | "https") {
            return Err(bad(format!(
                "invalid kubernetes_host {host:?}: use an http or https URL"
            )));
        }
        let reviewer = i.token_reviewer_jwt.trim().to_owned();
        // Any bearer token (Vault's docs: "a service account JWT (or other token)"; Vault
        // stopped requiring a JWT in 1.15), but one an Authorization header can carry.
        if reviewer.bytes().any(|b| !b.is_ascii_graphic()) {
            return Err(bad(
                "invalid token_reviewer_jwt: a bearer token is visible ASCII without spaces",
            ));
        }
        let reviewer_file = i.token_reviewer_jwt_file.trim().to_owned();
        if !reviewer_file.is_empty() {
            if !reviewer.is_empty() {
                return Err(bad(
                    "token_reviewer_jwt and token_reviewer_jwt_file cannot both be set",
                ));
            }
            read_reviewer_file(&reviewer_file).map_err(bad)?;
        }
        let cfg = K8sConfig {
            version: 1,
            kubernetes_host: host,
            kubernetes_ca_cert: i.kubernetes_ca_cert,
            token_reviewer_jwt: reviewer,
            token_reviewer_jwt_file: reviewer_file,
            pem_keys: i
                .pem_keys
                .into_iter()
                .filter(|k| !k.trim().is_empty())
                .collect(),
            issuer: i.issuer.trim().to_owned(),
            disable_iss_validation: i.disable_iss_validation,
            disable_local_ca_jwt: i.disable_local_ca_jwt,
        };
        // A CA bundle with no usable certificate in it (the API docs' placeholder among them)
        // is refused, as Vault 1.17 and later refuse it, and nothing is stored.
        if !cfg.kubernetes_ca_cert.trim().is_empty() {
            net::client(&cfg.kubernetes_ca_cert, "kubernetes_ca_cert").map_err(bad)?;
        }
        let ready = prepare(cfg.clone()).map_err(bad)?;
        store::save_config(&*req.storage, &cfg).await?;
        let mut g = self.ready.lock();
        g.0 = Some(Arc::new(ready));
        g.1 += 1;
        Ok(None)
    }

    pub(crate) async fn role_exists(self: Arc<Self>, req: Request, f: Fields) -> Result<bool> {
        Ok(
            store::load_role(&*req.storage, &f.input::<RoleInput>().name)
                .await?
                .is_some(),
        )
    }

    pub(crate) async fn role_list(
        self: Arc<Self>,
        req: Request,
        _f: Fields,
    ) -> Result<Option<Response>> {
        Ok(Some(Response::list(
            store::list_roles(&*req.storage).await?,
        )))
    }

    pub(crate) async fn role_delete(
        self: Arc<Self>,
        req: Request,
        f: Fields,
    ) -> Result<Option<Response>> {
        store::delete_role(&*req.storage, &f.input::<RoleInput>().name).await?;
        Ok(None)
    }

    pub(crate) async fn role_read(
        self: Arc<Self>,
        req: Request,
        f: Fields,
    ) -> Result<Option<Response>> {
        let Some(r) = store::load_role(&*req.storage, &f.input::<RoleInput>().name).await? else {
            return Ok(None);
        };
        let mut m = Map::new();
        m.insert(
            "bound_service_account_names".into(),
            json!(r.bound_service_account_names),
        );
        m.insert(
            "bound_service_account_namespaces".into(),
            json!(r.bound_service_account_namespaces),
        );
        m.insert("audience".into(), json!(r.audience));
        m.insert(
            "alias_name_source".into(),
            json!(match r.alias_name_source {
                AliasSource::ServiceaccountUid => "serviceaccount_uid",
                AliasSource::ServiceaccountName => "serviceaccount_name",
            }),
        );
        m.insert("review_mode".into(), json!(r.review_mode.name()));
        r.token.show(&mut m);
        m.insert("policies".into(), json!(r.token.token_policies));
        m.insert("ttl".into(), json!(r.token.token_ttl));
        m.insert("max_ttl".into(), json!(r.token.token_max_ttl));
        m.insert("period".into(), json!(r.token.token_period));
        Ok(Some(Response::data(m)))
    }

    pub(crate) async fn role_write(
        self: Arc<Self>,
        req: Request,
        f: Fields,
    ) -> Result<Option<Response>> {
        let i: RoleInput = f.input();
        let name = i.name;
        crate::shared::check_role_name(&name)?;
        let mut r = store::load_role(&*req.storage, &name)
            .await?
            .unwrap_or_default();
        r.version = 1;
        if let Some(v) = i.bound_service_account_names {
            r.bound_service_account_names = v;
        }
        if let Some(v) = i.bound_service_account_namespaces {
            r.bound_service_account_namespaces = v;
        }
        if let Some(v) = i.audience {
            r.audience = v.trim().to_owned();
        }
        if let Some(v) = i.alias_name_source {
            r.alias_name_source = match v.trim() {
                "" | "serviceaccount_uid" => AliasSource::ServiceaccountUid,
                "serviceaccount_name" => AliasSource::ServiceaccountName,
                other => {
                    return Err(bad(format!(
                        "invalid alias_name_source {other:?}: use \"serviceaccount_uid\" or \"serviceaccount_name\""
                    )));
                }
            };
        }
        if let Some(v) = i.review_mode {
            r.review_mode = match v.trim() {
                "" | "token_review" => ReviewMode::TokenReview,
                "local_keys" => ReviewMode::LocalKeys,
                other => {
                    return Err(bad(format!(
                        "invalid review_mode {other:?}: use \"token_review\" or \"local_keys\""
                    )));
                }
            };
        }
        r.token.update(&f)?;
        if r.bound_service_account_names.is_empty() {
            return Err(bad("\"bound_service_account_names\" can not be empty"));
        }
        if r.bound_service_account_namespaces.is_empty() {
            return Err(bad("\"bound_service_account_namespaces\" can not be empty"));
        }
        // Both bindings may be "*" (any service account in any namespace), as in Vault: the
        // API server's TokenReview still has to accept each login's token.
        store::save_role(&*req.storage, &name, &r).await?;
        Ok(None)
    }

    pub(crate) async fn login(
        self: Arc<Self>,
        req: Request,
        f: Fields,
    ) -> Result<Option<Response>> {
        let LoginInput { role, jwt } = f.input();
        let role_name = role.trim().to_owned();
        if role_name.is_empty() {
            return Err(bad("missing role"));
        }
        let jwt = jwt.trim().to_owned();
        if jwt.is_empty() {
            return Err(bad("missing jwt"));
        }
        let Some(role) = store::load_role(&*req.storage, &role_name).await? else {
            return Err(bad(format!("invalid role name {role_name:?}")));
        };
        let blocks =
            cidr::parse_list(&role.token.token_bound_cidrs).map_err(LogicalError::Internal)?;
        if !cidr::allows(&blocks, req.connection.remote_addr.as_deref()) {
            return Err(LogicalError::PermissionDenied);
        }
        let ready = self.ready(&req).await?;
        let parsed = keys::parse(&jwt).map_err(|e| bad(format!("invalid jwt: {e}")))?;
        let claims = if ready.keys.is_empty() {
            parsed.unverified_claims()
        } else {
            parsed.verify(&ready.keys, ASYMMETRIC)
        }
        .map_err(|e| bad(format!("invalid jwt: {e}")))?;
        let cfg = &ready.config;
        if !cfg.disable_iss_validation {
            let want = if cfg.issuer.is_empty() {
                DEFAULT_ISSUER
            } else {
                cfg.issuer.as_str()
            };
            if claims.get("iss").and_then(Value::as_str) != Some(want) {
                return Err(bad("invalid jwt: invalid issuer (iss) claim"));
            }
        }
        let sa = service_account(&claims).map_err(|e| bad(format!("invalid jwt: {e}")))?;
        if !matches_any(&role.bound_service_account_namespaces, &sa.namespace) {
            return Err(bad("namespace not authorized"));
        }
        if !matches_any(&role.bound_service_account_names, &sa.name) {
            return Err(bad("service account name not authorized"));
        }
        if !role.audience.is_empty()
            && !crate::claims::audience_matches(&claims, std::slice::from_ref(&role.audience))
        {
            return Err(bad(
                "invalid audience (aud) claim: audience claim does not match any expected audience",
            ));
        }
        match role.review_mode {
            ReviewMode::TokenReview => self.review(&ready, &jwt, &role, &sa).await?,
            ReviewMode::LocalKeys => {
                // The signature was verified above, with these keys; without any, nothing
                // vouches for the token.
                if ready.keys.is_empty() {
                    return Err(bad(format!(
                        "role {role_name:?} has review_mode local_keys, but the config has no pem_keys to verify tokens with"
                    )));
                }
                let now = tresor_sdk::clock::unix(SystemTime::now());
                let leeways = Leeways {
                    clock_skew: LOCAL_CLOCK_SKEW,
                    expiration: 0,
                    not_before: 0,
                };
                claims::check_times(&claims, now, leeways)
                    .map_err(|e| bad(format!("invalid jwt: {e}")))?;
            }
        }
        let alias = match role.alias_name_source {
            AliasSource::ServiceaccountUid if !sa.uid.is_empty() => sa.uid.clone(),
            AliasSource::ServiceaccountUid => {
                return Err(bad(
                    "the token names no service account UID for alias_name_source serviceaccount_uid",
                ));
            }
            AliasSource::ServiceaccountName => format!("{}/{}", sa.namespace, sa.name),
        };
        let meta: std::collections::BTreeMap<String, String> = [
            ("service_account_name", sa.name.clone()),
            ("service_account_namespace", sa.namespace.clone()),
            ("service_account_uid", sa.uid.clone()),
            ("service_account_secret_name", sa.secret_name.clone()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        let mut token_meta = meta.clone();
        token_meta.insert("role".into(), role_name.clone());
        let mut internal = Map::new();
        internal.insert("role".into(), json!(role_name));
        internal.insert("policies".into(), json!(role.token.token_policies));
        let mut auth = Auth {
            display_name: format!("{}-{}", sa.namespace, sa.name),
            metadata: token_meta,
            alias: Some(Alias {
                name: alias,
                metadata: meta,
            }),
            internal_data: internal,
            ..Default::default()
        };
        role.token.populate(&mut auth);
        Ok(Some(Response {
            auth: Some(auth),
            ..Default::default()
        }))
    }

    /// Asks the API server whether `jwt` is a live token of service account `sa`.
    async fn review(
        &self,
        ready: &Ready,
        jwt: &str,
        role: &K8sRole,
        sa: &ServiceAccount,
    ) -> Result<()> {
        let cfg = &ready.config;
        let mut bearer = if cfg.token_reviewer_jwt_file.is_empty() {
            cfg.token_reviewer_jwt.clone()
        } else {
            ready
                .reviewer_from_file(&cfg.token_reviewer_jwt_file)
                .map_err(|e| bad(format!("lookup failed: {e}")))?
        };
        if bearer.is_empty() && !cfg.disable_local_ca_jwt {
            bearer = std::fs::read_to_string(LOCAL_TOKEN)
                .unwrap_or_default()
                .trim()
                .to_owned();
        }
        if bearer.is_empty() {
            // No reviewer: the client's own token authenticates its review, as in Vault.
            bearer = jwt.to_owned();
        }
        let mut spec = json!({ "token": jwt });
        if !role.audience.is_empty() {
            spec["audiences"] = json!([role.audience]);
        }
        let body = json!({
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenReview",
            "spec": spec,
        });
        let url = format!(
            "{}/apis/authentication.k8s.io/v1/tokenreviews",
            cfg.kubernetes_host
        );
        let resp = ready
            .client
            .post(&url)
            .bearer_auth(&bearer)
            .header("content-type", "application/json")
            .header("accept", "application/json")
            .timeout(Duration::from_secs(10))
            .body(body.to_string())
            .send()
            .await
            .map_err(|e| {
                bad(format!(
                    "lookup failed: the TokenReview request failed: {}",
                    net::chain(&e)
                ))
            })?;
        let status = resp.status();
        let v: Value = resp.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            let msg = v
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or("no message");
            return Err(bad(format!(
                "lookup failed: the TokenReview API answered {status}: {msg}"
            )));
        }
        let st = v.get("status").cloned().unwrap_or(Value::Null);
        if let Some(e) = st
            .get("error")
            .and_then(Value::as_str)
            .filter(|e| !e.is_empty())
        {
            tracing::debug!(error = %e, "TokenReview refused a service-account token");
            return Err(bad(UNAUTHORIZED));
        }
        if st.get("authenticated").and_then(Value::as_bool) != Some(true) {
            return Err(bad(UNAUTHORIZED));
        }
        let username = st
            .pointer("/user/username")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let want = format!("system:serviceaccount:{}:{}", sa.namespace, sa.name);
        if username != want {
            return Err(bad("JWT names did not match TokenReview names"));
        }
        let uid = st
            .pointer("/user/uid")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if !sa.uid.is_empty() && uid != sa.uid {
            return Err(bad("JWT UID did not match TokenReview UID"));
        }
        if !role.audience.is_empty() {
            let auds: Vec<&str> = st
                .get("audiences")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            if !auds.contains(&role.audience.as_str()) {
                return Err(bad(
                    "invalid audience (aud) claim: the TokenReview did not confirm the role's audience",
                ));
            }
        }
        Ok(())
    }

    pub(crate) async fn renew(&self, req: &Request) -> Result<Option<Response>> {
        let data = req
            .secret
            .as_ref()
            .map(|s| s.internal_data.clone())
            .unwrap_or_default();
        let name = data.get("role").and_then(Value::as_str).unwrap_or_default();
        let Some(role) = store::load_role(&*req.storage, name).await? else {
            return Err(bad(format!("role {name:?} no longer exists, not renewing")));
        };
        let had: Vec<String> = data
            .get("policies")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|p| p.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        if !crate::shared::same_policies(&had, &role.token.token_policies) {
            return Err(bad("policies have changed, not renewing"));
        }
        Ok(Some(Response {
            auth: Some(Auth {
                ttl: Duration::from_secs(role.token.token_ttl),
                max_ttl: Duration::from_secs(role.token.token_max_ttl),
                period: Duration::from_secs(role.token.token_period),
                ..Default::default()
            }),
            ..Default::default()
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_claim_shapes() {
        let legacy = json!({
            "iss": "kubernetes/serviceaccount",
            "kubernetes.io/serviceaccount/namespace": "ci",
            "kubernetes.io/serviceaccount/service-account.name": "builder",
            "kubernetes.io/serviceaccount/service-account.uid": "u-1",
            "kubernetes.io/serviceaccount/secret.name": "builder-token-x",
        });
        let projected = json!({
            "iss": "https://kubernetes.default.svc",
            "kubernetes.io": {"namespace": "ci", "serviceaccount": {"name": "builder", "uid": "u-1"}},
        });
        let a = service_account(legacy.as_object().unwrap()).unwrap();
        let b = service_account(projected.as_object().unwrap()).unwrap();
        assert_eq!(
            (a.namespace.as_str(), a.name.as_str(), a.uid.as_str()),
            ("ci", "builder", "u-1")
        );
        assert_eq!(a.secret_name, "builder-token-x");
        assert_eq!(
            (b.namespace.as_str(), b.name.as_str(), b.uid.as_str()),
            ("ci", "builder", "u-1")
        );
        assert!(service_account(json!({"sub": "x"}).as_object().unwrap()).is_err());
    }
}
