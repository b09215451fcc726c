//! Login MFA (TOTP), as in Vault's community edition: TOTP methods, login enforcements that
//! select logins by auth mount accessor or type, entity or group, the secrets enrolled per
//! (method, entity), and the logins waiting for their passcodes.
//!
//! A login an enforcement selects does not get a token: its answer carries an
//! `mfa_requirement` (a request id and, per enforcement, the methods that satisfy it), and
//! `sys/mfa/validate` with a passcode per method finishes it. A login may also send the
//! passcodes at once in `X-Vault-MFA: <method id or name>:<passcode>` headers. A passcode
//! validates once: it is remembered as spent until it could no longer validate. Pending
//! logins live in memory for [`PENDING_TTL`] (this server only, as in Vault).
//!
//! Storage (the identity view): `mfa/method/<id>`, `mfa/enforcement/<name>`,
//! `mfa/secret/<method id>/<entity id>`.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Mutex, RwLock};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tresor_otp::Algorithm;
use tresor_sdk::Storage;
use zeroize::Zeroizing;

use crate::barrier::View;
use crate::error::CoreError;

/// How long a login waits for its passcodes.
pub const PENDING_TTL: Duration = Duration::from_secs(300);

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct TotpMethod {
    pub id: String,
    pub name: String,
    pub issuer: String,
    pub period: u64,
    pub key_size: usize,
    pub qr_size: u64,
    pub algorithm: String,
    pub digits: u32,
    pub skew: u64,
    pub max_validation_attempts: u64,
}

impl Default for TotpMethod {
    fn default() -> Self {
        TotpMethod {
            id: String::new(),
            name: String::new(),
            issuer: String::new(),
            period: 30,
            key_size: 20,
            qr_size: 200,
            algorithm: "SHA1".into(),
            digits: 6,
            skew: 1,
            max_validation_attempts: 5,
        }
    }
}

impl TotpMethod {
    pub fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "name": self.name,
            "method_name": self.name,
            "type": "totp",
            "issuer": self.issuer,
            "period": self.period,
            "key_size": self.key_size,
            "qr_size": self.qr_size,
            "algorithm": self.algorithm,
            "digits": self.digits,
            "skew": self.skew,
            "max_validation_attempts": self.max_validation_attempts,
            "namespace_id": "root",
        })
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct Enforcement {
    pub name: String,
    pub id: String,
    pub mfa_method_ids: Vec<String>,
    pub auth_method_accessors: Vec<String>,
    pub auth_method_types: Vec<String>,
    pub identity_group_ids: Vec<String>,
    pub identity_entity_ids: Vec<String>,
}

impl Enforcement {
    pub fn to_json(&self) -> Value {
        json!({
            "name": self.name,
            "id": self.id,
            "mfa_method_ids": self.mfa_method_ids,
            "auth_method_accessors": self.auth_method_accessors,
            "auth_method_types": self.auth_method_types,
            "identity_group_ids": self.identity_group_ids,
            "identity_entity_ids": self.identity_entity_ids,
            "namespace_id": "root",
        })
    }

    fn selects(&self, accessor: &str, mount_type: &str, entity: &str, groups: &[String]) -> bool {
        self.auth_method_accessors.iter().any(|a| a == accessor)
            || self.auth_method_types.iter().any(|t| t == mount_type)
            || (!entity.is_empty() && self.identity_entity_ids.iter().any(|e| e == entity))
            || self.identity_group_ids.iter().any(|g| groups.contains(g))
    }
}

/// An entity's enrolled secret for one method.
#[derive(Clone, Serialize, Deserialize)]
struct Secret {
    key: String,
}

/// A login waiting for its passcodes.
pub struct Pending {
    pub auth: tresor_sdk::Auth,
    /// The auth mount's route path (`auth/userpass/`) and the login's path.
    pub mount_path: String,
    pub login_path: String,
    /// (enforcement name, the methods any one of which satisfies it).
    pub constraints: Vec<(String, Vec<String>)>,
    expires: Instant,
}

pub struct MfaStore {
    view: View,
    methods: RwLock<HashMap<String, TotpMethod>>,
    enforcements: RwLock<BTreeMap<String, Enforcement>>,
    pending: Mutex<HashMap<String, Pending>>,
    /// (method, entity, passcode) → until when it stays spent.
    spent: Mutex<HashMap<(String, String, String), Instant>>,
    /// (method, entity) → failed attempts in the current period.
    failures: Mutex<HashMap<(String, String), (u64, u64)>>,
    writes: tokio::sync::Mutex<()>,
}

fn sdk(e: tresor_sdk::LogicalError) -> CoreError {
    CoreError::from(e)
}

fn invalid(m: impl Into<String>) -> CoreError {
    CoreError::InvalidRequest(m.into())
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl MfaStore {
    pub async fn open(view: View) -> Result<Self, CoreError> {
        let s = MfaStore {
            view,
            methods: RwLock::new(HashMap::new()),
            enforcements: RwLock::new(BTreeMap::new()),
            pending: Mutex::new(HashMap::new()),
            spent: Mutex::new(HashMap::new()),
            failures: Mutex::new(HashMap::new()),
            writes: tokio::sync::Mutex::new(()),
        };
        s.reload().await?;
        Ok(s)
    }

    /// Reads methods and enforcements again (open, and after another server changed them).
    pub async fn reload(&self) -> Result<(), CoreError> {
        let mut methods = HashMap::new();
        for id in self.view.list("mfa/method/").await.map_err(sdk)? {
            if let Some(m) =
                tresor_sdk::get_json::<TotpMethod>(&self.view, &format!("mfa/method/{id}"))
                    .await
                    .map_err(sdk)?
            {
                methods.insert(m.id.clone(), m);
            }
        }
        let mut enforcements = BTreeMap::new();
        for n in self.view.list("mfa/enforcement/").await.map_err(sdk)? {
            if let Some(e) =
                tresor_sdk::get_json::<Enforcement>(&self.view, &format!("mfa/enforcement/{n}"))
                    .await
                    .map_err(sdk)?
            {
                enforcements.insert(e.name.clone(), e);
            }
        }
        *self.methods.write() = methods;
        *self.enforcements.write() = enforcements;
        Ok(())
    }

    // ---- methods ------------------------------------------------------------------------

    pub fn method(&self, id: &str) -> Option<TotpMethod> {
        let m = self.methods.read();
        m.get(id)
            .or_else(|| m.values().find(|x| !x.name.is_empty() && x.name == id))
            .cloned()
    }

    pub fn methods(&self) -> Vec<TotpMethod> {
        let mut v: Vec<_> = self.methods.read().values().cloned().collect();
        v.sort_by(|a, b| a.id.cmp(&b.id));
        v
    }

    pub async fn put_method(&self, m: TotpMethod) -> Result<(), CoreError> {
        if Algorithm::parse(&m.algorithm).is_none() {
            return Err(invalid(format!(
                "algorithm: {:?} is not SHA1, SHA256 or SHA512",
                m.algorithm
            )));
        }
        if !(6..=8).contains(&m.digits) {
            return Err(invalid("digits: must be 6, 7 or 8"));
        }
        if m.period == 0 || m.period > 3600 {
            return Err(invalid("period: must be between 1s and 1h"));
        }
        if m.skew > 1 {
            return Err(invalid("skew: must be 0 or 1"));
        }
        if m.key_size < 10 || m.key_size > 64 {
            return Err(invalid("key_size: must be between 10 and 64 bytes"));
        }
        let _w = self.writes.lock().await;
        if !m.name.is_empty()
            && self
                .methods
                .read()
                .values()
                .any(|x| x.name == m.name && x.id != m.id)
        {
            return Err(invalid(format!(
                "method_name {:?} is already in use",
                m.name
            )));
        }
        tresor_sdk::put_json(&self.view, &format!("mfa/method/{}", m.id), &m)
            .await
            .map_err(sdk)?;
        self.methods.write().insert(m.id.clone(), m);
        Ok(())
    }

    pub async fn delete_method(&self, id: &str) -> Result<(), CoreError> {
        let _w = self.writes.lock().await;
        if let Some(e) = self
            .enforcements
            .read()
            .values()
            .find(|e| e.mfa_method_ids.iter().any(|m| m == id))
        {
            return Err(invalid(format!(
                "method is used by login enforcement {:?}",
                e.name
            )));
        }
        self.view
            .delete(&format!("mfa/method/{id}"))
            .await
            .map_err(sdk)?;
        self.view
            .delete_prefix(&format!("mfa/secret/{id}/"))
            .await
            .map_err(sdk)?;
        self.methods.write().remove(id);
        Ok(())
    }

    // ---- secrets ------------------------------------------------------------------------

    /// Enrols `entity` in `method` with a new secret: (otpauth URL, base32 secret). Refused if
    /// the entity already has one (destroy it first), as in Vault.
    pub async fn generate(
        &self,
        method_id: &str,
        entity_id: &str,
        account: &str,
    ) -> Result<(Zeroizing<String>, Zeroizing<String>), CoreError> {
        let m = self
            .method(method_id)
            .ok_or_else(|| invalid("invalid method ID"))?;
        let key = format!("mfa/secret/{}/{entity_id}", m.id);
        let _w = self.writes.lock().await;
        if self.view.get(&key).await.map_err(sdk)?.is_some() {
            return Err(invalid("Entity already has a secret for MFA method"));
        }
        let mut raw = Zeroizing::new(vec![0u8; m.key_size]);
        aws_lc_rs::rand::fill(&mut raw).map_err(|_| CoreError::Internal("no randomness".into()))?;
        let b32 = tresor_otp::base32_encode(&raw);
        tresor_sdk::put_json(
            &self.view,
            &key,
            &Secret {
                key: b32.to_string(),
            },
        )
        .await
        .map_err(sdk)?;
        let alg = Algorithm::parse(&m.algorithm).unwrap_or(Algorithm::Sha1);
        let issuer = if m.issuer.is_empty() {
            "Tresor"
        } else {
            &m.issuer
        };
        let url = tresor_otp::build_url(issuer, account, &b32, alg, m.digits, m.period);
        Ok((url, b32))
    }

    pub async fn destroy(&self, method_id: &str, entity_id: &str) -> Result<(), CoreError> {
        let m = self
            .method(method_id)
            .ok_or_else(|| invalid("invalid method ID"))?;
        self.view
            .delete(&format!("mfa/secret/{}/{entity_id}", m.id))
            .await
            .map_err(sdk)
    }

    // ---- enforcements -------------------------------------------------------------------

    pub fn enforcement(&self, name: &str) -> Option<Enforcement> {
        self.enforcements.read().get(name).cloned()
    }

    pub fn enforcements(&self) -> Vec<Enforcement> {
        self.enforcements.read().values().cloned().collect()
    }

    pub async fn put_enforcement(&self, e: Enforcement) -> Result<(), CoreError> {
        if e.mfa_method_ids.is_empty() {
            return Err(invalid(
                "mfa_method_ids: at least one MFA method is required",
            ));
        }
        for m in &e.mfa_method_ids {
            if self.method(m).is_none() {
                return Err(invalid(format!(
                    "mfa_method_ids: no MFA method with ID {m:?}"
                )));
            }
        }
        if e.auth_method_accessors.is_empty()
            && e.auth_method_types.is_empty()
            && e.identity_group_ids.is_empty()
            && e.identity_entity_ids.is_empty()
        {
            return Err(invalid(
                "One of auth_method_accessors, auth_method_types, identity_group_ids, identity_entity_ids must be specified",
            ));
        }
        let _w = self.writes.lock().await;
        tresor_sdk::put_json(&self.view, &format!("mfa/enforcement/{}", e.name), &e)
            .await
            .map_err(sdk)?;
        self.enforcements.write().insert(e.name.clone(), e);
        Ok(())
    }

    pub async fn delete_enforcement(&self, name: &str) -> Result<(), CoreError> {
        let _w = self.writes.lock().await;
        self.view
            .delete(&format!("mfa/enforcement/{name}"))
            .await
            .map_err(sdk)?;
        self.enforcements.write().remove(name);
        Ok(())
    }

    // ---- logins -------------------------------------------------------------------------

    /// The enforcements a login is subject to: (name, method ids).
    pub fn required(
        &self,
        accessor: &str,
        mount_type: &str,
        entity: &str,
        groups: &[String],
    ) -> Vec<(String, Vec<String>)> {
        let e = self.enforcements.read();
        if e.is_empty() {
            return Vec::new();
        }
        e.values()
            .filter(|e| e.selects(accessor, mount_type, entity, groups))
            .map(|e| (e.name.clone(), e.mfa_method_ids.clone()))
            .collect()
    }

    /// Keeps a login until its passcodes arrive; returns the request id.
    pub fn hold(&self, p: PendingInput) -> String {
        let id = uuid::Uuid::new_v4().to_string();
        let now = Instant::now();
        let mut pending = self.pending.lock();
        pending.retain(|_, p| p.expires > now);
        pending.insert(
            id.clone(),
            Pending {
                auth: p.auth,
                mount_path: p.mount_path,
                login_path: p.login_path,
                constraints: p.constraints,
                expires: now + PENDING_TTL,
            },
        );
        id
    }

    /// Takes a pending login out (it is finished or refused either way).
    pub fn take(&self, id: &str) -> Option<Pending> {
        let mut pending = self.pending.lock();
        let p = pending.remove(id)?;
        (p.expires > Instant::now()).then_some(p)
    }

    /// The `mfa_requirement` object of a held login.
    pub fn requirement(&self, id: &str, constraints: &[(String, Vec<String>)]) -> Value {
        let mut c = serde_json::Map::new();
        for (name, methods) in constraints {
            let any: Vec<Value> = methods
                .iter()
                .filter_map(|m| self.method(m))
                .map(|m| json!({"type": "totp", "id": m.id, "name": m.name, "uses_passcode": true}))
                .collect();
            c.insert(name.clone(), json!({"any": any}));
        }
        json!({"mfa_request_id": id, "mfa_constraints": c})
    }

    /// Checks the passcodes given for a login (`method id or name` → passcodes): every
    /// enforcement needs one of its methods satisfied by the entity's enrolled secret.
    pub async fn validate(
        &self,
        entity_id: &str,
        constraints: &[(String, Vec<String>)],
        payload: &BTreeMap<String, Vec<String>>,
    ) -> Result<(), CoreError> {
        if entity_id.is_empty() {
            return Err(CoreError::PermissionDenied);
        }
        for (name, methods) in constraints {
            let mut satisfied = false;
            let mut last_err = format!("no passcode given for login enforcement {name:?}");
            for mid in methods {
                let Some(m) = self.method(mid) else { continue };
                let codes = payload
                    .get(&m.id)
                    .or_else(|| (!m.name.is_empty()).then(|| payload.get(&m.name)).flatten());
                let Some(code) = codes.and_then(|c| c.first()) else {
                    continue;
                };
                match self.check_code(&m, entity_id, code).await {
                    Ok(()) => {
                        satisfied = true;
                        break;
                    }
                    Err(e) => last_err = e,
                }
            }
            if !satisfied {
                return Err(CoreError::Forbidden(format!(
                    "login MFA validation failed: {last_err}"
                )));
            }
        }
        Ok(())
    }

    async fn check_code(&self, m: &TotpMethod, entity_id: &str, code: &str) -> Result<(), String> {
        let secret: Option<Secret> =
            tresor_sdk::get_json(&self.view, &format!("mfa/secret/{}/{entity_id}", m.id))
                .await
                .map_err(|e| e.to_string())?;
        let secret =
            secret.ok_or_else(|| "the entity has no TOTP secret for this method".to_owned())?;
        let raw = tresor_otp::base32_decode(&secret.key)?;
        let alg = Algorithm::parse(&m.algorithm).unwrap_or(Algorithm::Sha1);
        let now = unix_now();
        let step = now / m.period;
        // Too many failures in this period: refuse until the next one.
        let fkey = (m.id.clone(), entity_id.to_owned());
        if m.max_validation_attempts > 0
            && let Some((period, n)) = self.failures.lock().get(&fkey).copied()
            && period == step
            && n >= m.max_validation_attempts
        {
            return Err("maximum TOTP validation attempts exceeded".into());
        }
        let code = code.trim();
        let matched = (step.saturating_sub(m.skew)..=step + m.skew)
            .any(|c| tresor_otp::same_code(&tresor_otp::hotp(&raw, c, m.digits, alg), code));
        if !matched {
            let mut f = self.failures.lock();
            let e = f.entry(fkey).or_insert((step, 0));
            if e.0 != step {
                *e = (step, 0);
            }
            e.1 += 1;
            return Err("failed to validate TOTP passcode".into());
        }
        // A passcode validates once: spent until it could no longer validate.
        let now_i = Instant::now();
        let key = (m.id.clone(), entity_id.to_owned(), code.to_owned());
        let mut spent = self.spent.lock();
        spent.retain(|_, until| *until > now_i);
        if spent.contains_key(&key) {
            return Err("code already used; please wait until the next time period".into());
        }
        spent.insert(
            key,
            now_i + Duration::from_secs(m.period * (2 * m.skew + 2)),
        );
        Ok(())
    }
}

/// What [`MfaStore::hold`] keeps.
pub struct PendingInput {
    pub auth: tresor_sdk::Auth,
    pub mount_path: String,
    pub login_path: String,
    pub constraints: Vec<(String, Vec<String>)>,
}

/// Parses `X-Vault-MFA` header values (`method:passcode`, several headers or comma-separated)
/// into the validate payload.
pub fn payload_from_headers(values: &[&str]) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for v in values.iter().flat_map(|v| v.split(',')) {
        let v = v.trim();
        let (m, code) = v.split_once(':').unwrap_or((v, ""));
        if !m.is_empty() {
            out.entry(m.trim().to_owned())
                .or_default()
                .push(code.trim().to_owned());
        }
    }
    out
}

/// The shared handle.
pub type Mfa = Arc<MfaStore>;
