//! Issuers and keys: generating roots and intermediate CSRs, signing intermediates, importing
//! PEM bundles (`config/ca`, `issuers/import/bundle`, `intermediate/set-signed`), the
//! multi-issuer API (`issuer/:ref`, `issuers`, `key/:ref`, `keys`, `config/issuers`,
//! `config/keys`) and `DELETE root`.
//!
//! Issuers are loaded through a per-mount cache keyed by the stored bytes of the issuer and
//! key records: a request re-reads both records (two cheap gets) and reuses the parsed
//! certificate and key only when the bytes are unchanged, so a write through any path or node
//! is seen at once.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{Map, Value, json};
use tresor_sdk::framework::Fields;
use tresor_sdk::{LogicalError, RawResponse, Request, Response, Result, Storage, get_json};

use crate::inputs::{
    CaInput, ConfigIssuersInput, ConfigKeysInput, IssuerInUrl, IssuerRef, IssuerSettings,
    KeyImportInput, KeyNameInput, KeyRef, ReplaceRootInput, SelfIssuedInput, SetSignedInput,
    SignIntermediateInput, SubjectInput,
};
use crate::keys::{KeySpec, PrivateKey};
use crate::store::{
    self, IssuerEntry, IssuersConfig, KeyEntry, KeysConfig, SecretBytes, UrlsConfig,
};
use crate::x509::{self, AiaUrls, CertInfo, CertSpec, Sans, SignerRef, Subject};
use crate::{Engine, bad, pem};

/// An issuer ready to sign: its record, parsed certificate and (if held) key.
pub struct LoadedIssuer {
    pub entry: IssuerEntry,
    pub cert: CertInfo,
    pub key: Option<PrivateKey>,
    /// The CRL this issuer's revocations go on ([`crl_id`]).
    pub crl_id: String,
}

/// Names the CRL of an issuer certificate: a digest of its subject and public key.
///
/// Issuers with the same subject and key (a CA reissued with its key: `root/generate` or
/// `issuers/generate/root` with `existing`, or an imported reissue) share one CRL, as in
/// Vault: their signatures verify with either certificate, so a relying party holding either
/// one must find every revocation of both on the CRL it fetches, under one CRL number
/// sequence. Hex of SHA-256, so it never looks like an issuer id (a UUID).
pub fn crl_id(cert: &CertInfo) -> String {
    use aws_lc_rs::digest;
    use der::Decode;
    let key = x509_cert::spki::SubjectPublicKeyInfoOwned::from_der(&cert.spki_der)
        .map(|k| k.subject_public_key.raw_bytes().to_vec())
        .unwrap_or_else(|_| cert.spki_der.clone());
    let mut ctx = digest::Context::new(&digest::SHA256);
    ctx.update(&(cert.subject_der.len() as u64).to_be_bytes());
    ctx.update(&cert.subject_der);
    ctx.update(&key);
    hex::encode(ctx.finish().as_ref())
}

impl std::fmt::Debug for LoadedIssuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedIssuer")
            .field("id", &self.entry.id)
            .field("has_key", &self.key.is_some())
            .finish()
    }
}

impl LoadedIssuer {
    /// The signer for certificates and CRLs, or an error naming the issuer without a key.
    pub fn signer(&self, signature_bits: u32) -> Result<SignerRef<'_>> {
        let key = self.key.as_ref().ok_or_else(|| {
            bad(format!(
                "issuer {} has no private key in this mount and cannot sign",
                self.entry.id
            ))
        })?;
        let bits = if signature_bits == 0 {
            match self.entry.revocation_signature_algorithm.as_str() {
                "SHA384WithRSA" => 384,
                "SHA512WithRSA" => 512,
                _ => 256,
            }
        } else {
            signature_bits
        };
        Ok(SignerRef {
            name: &self.cert.subject,
            key_id: &self.cert.subject_key_id,
            key,
            alg: key.sig_alg(bits),
        })
    }

    pub fn has_usage(&self, usage: &str) -> bool {
        self.entry.usage.iter().any(|u| u == usage)
    }

    /// AIA and CRL URLs for certificates this issuer signs.
    pub fn urls(&self, cfg: &UrlsConfig) -> AiaUrls {
        let u = &self.entry.urls;
        if !u.issuing_certificates.is_empty()
            || !u.crl_distribution_points.is_empty()
            || !u.ocsp_servers.is_empty()
        {
            AiaUrls {
                issuing_certificates: u.issuing_certificates.clone(),
                crl_distribution_points: u.crl_distribution_points.clone(),
                ocsp_servers: u.ocsp_servers.clone(),
            }
        } else {
            AiaUrls {
                issuing_certificates: cfg.issuing_certificates.clone(),
                crl_distribution_points: cfg.crl_distribution_points.clone(),
                ocsp_servers: cfg.ocsp_servers.clone(),
            }
        }
    }
}

/// What the cache keeps for one issuer.
pub(crate) struct CachedIssuer {
    issuer_bytes: Vec<u8>,
    key_bytes: Option<Vec<u8>>,
    loaded: Arc<LoadedIssuer>,
}

fn is_uuid(s: &str) -> bool {
    uuid::Uuid::parse_str(s).is_ok()
}

pub async fn list_issuer_ids(s: &dyn Storage) -> Result<Vec<String>> {
    let mut ids = s.list("issuer/").await?;
    ids.retain(|k| !k.ends_with('/'));
    Ok(ids)
}

/// Every stored entry under `prefix` (`issuer/` or `key/`).
async fn list_entries<T: serde::de::DeserializeOwned>(
    s: &dyn Storage,
    prefix: &str,
) -> Result<Vec<T>> {
    let mut out = Vec::new();
    for id in s.list(prefix).await? {
        if id.ends_with('/') {
            continue;
        }
        if let Some(e) = get_json::<T>(s, &format!("{prefix}{id}")).await? {
            out.push(e);
        }
    }
    Ok(out)
}

pub async fn list_issuer_entries(s: &dyn Storage) -> Result<Vec<IssuerEntry>> {
    list_entries(s, "issuer/").await
}

pub async fn list_key_entries(s: &dyn Storage) -> Result<Vec<KeyEntry>> {
    list_entries(s, "key/").await
}

/// The fields every issuer and key entry (and their `config/...` defaults) share, for
/// resolving references without decoding whole entries.
#[derive(serde::Deserialize, Default)]
struct Named {
    #[serde(default)]
    id: String,
    #[serde(default)]
    name: String,
}

#[derive(serde::Deserialize, Default)]
struct DefaultRef {
    #[serde(default)]
    default: String,
}

/// Resolves a reference (`default`, an id or a name) to the id of an `issuer` or a `key`.
async fn resolve_ref(s: &dyn Storage, reference: &str, kind: &str) -> Result<String> {
    // No trimming: a reference is matched exactly as written, so `default ` or `%20default` in
    // a URL is not a second spelling of `default` that an ACL on `issuer/default/...` misses.
    let r = reference;
    if r.is_empty() || r == "default" {
        let cfg: DefaultRef = store::load_or_default(s, &format!("config/{kind}s")).await?;
        if cfg.default.is_empty() {
            return Err(bad(format!("no default {kind} currently configured")));
        }
        return Ok(cfg.default);
    }
    if is_uuid(r) && s.get(&format!("{kind}/{r}")).await?.is_some() {
        return Ok(r.to_owned());
    }
    list_entries::<Named>(s, &format!("{kind}/"))
        .await?
        .into_iter()
        .find(|e| e.name == r)
        .map(|e| e.id)
        .ok_or_else(|| bad(format!("unable to find PKI {kind} for reference: {r}")))
}

/// Resolves an issuer reference (`default`, an id or a name) to an id.
pub async fn resolve_issuer(s: &dyn Storage, reference: &str) -> Result<String> {
    resolve_ref(s, reference, "issuer").await
}

/// Resolves a key reference (`default`, an id or a name) to an id.
pub async fn resolve_key(s: &dyn Storage, reference: &str) -> Result<String> {
    resolve_ref(s, reference, "key").await
}

pub fn load_key(entry: &KeyEntry) -> Result<PrivateKey> {
    PrivateKey::from_pkcs8(&entry.pkcs8.0).map_err(LogicalError::internal)
}

/// Generates a key off the async runtime (RSA generation takes tens of milliseconds).
pub async fn generate_key(spec: KeySpec) -> Result<PrivateKey> {
    let gen_key = move || PrivateKey::generate(spec).map_err(LogicalError::internal);
    if spec.kind == crate::keys::KeyType::Rsa {
        tokio::task::spawn_blocking(gen_key)
            .await
            .map_err(LogicalError::internal)?
    } else {
        gen_key()
    }
}

/// Stores a key unless one with the same public key exists; returns (id, newly stored).
pub async fn store_key(s: &dyn Storage, key: &PrivateKey, name: &str) -> Result<(String, bool)> {
    for e in list_key_entries(s).await? {
        if let Ok(k) = load_key(&e)
            && crate::keys::same_public_key(k.spki_der(), key.spki_der())
        {
            return Ok((e.id, false));
        }
    }
    if !name.is_empty() && list_key_entries(s).await?.iter().any(|e| e.name == name) {
        return Err(bad(format!("key name {name:?} is already in use")));
    }
    let id = uuid::Uuid::new_v4().to_string();
    let entry = KeyEntry {
        v: store::RECORD_VERSION,
        id: id.clone(),
        name: name.to_owned(),
        key_type: key.key_type().as_str().into(),
        key_bits: key.spec().bits,
        pkcs8: SecretBytes(zeroize::Zeroizing::new(key.pkcs8().to_vec())),
    };
    store::save(s, &format!("key/{id}"), &entry).await?;
    let mut cfg: KeysConfig = store::load_or_default(s, "config/keys").await?;
    if cfg.default.is_empty() {
        cfg.default = id.clone();
        store::save(s, "config/keys", &cfg).await?;
    }
    Ok((id, true))
}

/// Recomputes every issuer's `ca_chain`: itself, then the issuer that signed it (same name,
/// verified signature), up to a self-signed root or a missing parent.
pub async fn rebuild_chains(s: &dyn Storage) -> Result<()> {
    let entries = list_issuer_entries(s).await?;
    let mut parsed = Vec::new();
    for e in &entries {
        let der = pem::certificates(&e.certificate)
            .ok()
            .and_then(|c| c.into_iter().next())
            .unwrap_or_default();
        parsed.push((e.id.clone(), der.clone(), x509::parse_cert(&der).ok()));
    }
    for e in entries {
        let mut chain = Vec::new();
        if !e.manual_chain.is_empty() {
            for id in &e.manual_chain {
                if let Some((_, der, _)) = parsed.iter().find(|(pid, _, _)| pid == id) {
                    chain.push(pem::cert(der));
                }
            }
        } else {
            let mut current = e.id.clone();
            let mut seen = vec![];
            while let Some((_, der, Some(info))) = parsed.iter().find(|(id, _, _)| *id == current) {
                if seen.contains(&current) || seen.len() > 16 {
                    break;
                }
                seen.push(current.clone());
                chain.push(pem::cert(der));
                if info.self_issued() && x509::signed_by(der, der) {
                    break;
                }
                let parent = parsed.iter().find(|(pid, pder, pinfo)| {
                    *pid != current
                        && pinfo
                            .as_ref()
                            .is_some_and(|p| p.subject_der == info.issuer_der)
                        && x509::signed_by(der, pder)
                });
                match parent {
                    Some((pid, _, _)) => current = pid.clone(),
                    None => break,
                }
            }
        }
        if chain != e.ca_chain {
            let mut updated = e.clone();
            updated.ca_chain = chain;
            store::save(s, &format!("issuer/{}", e.id), &updated).await?;
        }
    }
    Ok(())
}

/// The result of importing a bundle, in Vault's response shape.
#[derive(Debug, Default)]
pub struct Imported {
    pub imported_issuers: Vec<String>,
    pub imported_keys: Vec<String>,
    pub existing_issuers: Vec<String>,
    pub existing_keys: Vec<String>,
    pub mapping: BTreeMap<String, String>,
    pub warnings: Vec<String>,
}

impl Imported {
    pub fn response(self) -> Response {
        let opt = |v: Vec<String>| if v.is_empty() { Value::Null } else { json!(v) };
        let mut r = Response::json(json!({
            "imported_issuers": opt(self.imported_issuers),
            "imported_keys": opt(self.imported_keys),
            "existing_issuers": self.existing_issuers,
            "existing_keys": self.existing_keys,
            "mapping": self.mapping,
        }));
        r.warnings = self.warnings;
        r
    }
}

/// Imports every CA certificate and private key of a PEM bundle. Keys are matched to
/// certificates by public key; known certificates and keys are reported as existing.
pub async fn import_bundle(s: &dyn Storage, bundle: &str) -> Result<Imported> {
    let blocks = pem::parse_all(bundle).map_err(|e| bad(format!("invalid pem bundle: {e}")))?;
    let mut out = Imported::default();
    let mut certs = Vec::new();
    for b in &blocks {
        if b.label == "CERTIFICATE" {
            certs.push(b.der.clone());
        } else if b.label.ends_with("PRIVATE KEY") {
            if b.label.contains("ENCRYPTED") {
                return Err(bad(
                    "encrypted private keys are not supported in pem_bundle",
                ));
            }
            let key =
                PrivateKey::from_der_any(&b.der).map_err(|e| bad(format!("pem_bundle: {e}")))?;
            let (id, new) = store_key(s, &key, "").await?;
            if new {
                out.imported_keys.push(id);
            } else if !out.existing_keys.contains(&id) {
                out.existing_keys.push(id);
            }
        }
    }
    if certs.is_empty() && out.imported_keys.is_empty() && out.existing_keys.is_empty() {
        return Err(bad("pem_bundle contains no certificates or private keys"));
    }
    let keys: Vec<(String, Vec<u8>)> = list_key_entries(s)
        .await?
        .into_iter()
        .filter_map(|e| load_key(&e).ok().map(|k| (e.id, k.spki_der().to_vec())))
        .collect();
    let existing = list_issuer_entries(s).await?;
    let mut first_with_key = None;
    for der in certs {
        let info = x509::parse_cert(&der).map_err(|e| bad(format!("pem_bundle: {e}")))?;
        if !info.is_ca {
            return Err(bad(format!(
                "certificate {} is not a ca certificate (basic constraints ca:true is missing)",
                x509::serial_colon(&info.serial)
            )));
        }
        let pem_text = pem::cert(&der);
        if let Some(e) = existing.iter().find(|e| {
            pem::certificates(&e.certificate)
                .ok()
                .and_then(|c| c.into_iter().next())
                .as_deref()
                == Some(&der[..])
        }) {
            // A known issuer gains a key that arrives later (intermediate/set-signed order).
            if e.key_id.is_empty()
                && let Some((kid, _)) = keys
                    .iter()
                    .find(|(_, spki)| crate::keys::same_public_key(spki, &info.spki_der))
            {
                let mut updated = e.clone();
                updated.key_id = kid.clone();
                store::save(s, &format!("issuer/{}", e.id), &updated).await?;
            }
            out.existing_issuers.push(e.id.clone());
            continue;
        }
        let key_id = keys
            .iter()
            .find(|(_, spki)| crate::keys::same_public_key(spki, &info.spki_der))
            .map(|(id, _)| id.clone())
            .unwrap_or_default();
        let id = uuid::Uuid::new_v4().to_string();
        let entry = IssuerEntry {
            v: store::RECORD_VERSION,
            id: id.clone(),
            name: String::new(),
            key_id: key_id.clone(),
            certificate: pem_text,
            ca_chain: vec![],
            manual_chain: vec![],
            leaf_not_after_behavior: store::default_leaf_behavior(),
            usage: store::default_usage(),
            revocation_signature_algorithm: String::new(),
            urls: Default::default(),
            revoked: false,
            revocation_time: 0,
            serial_number: x509::serial_colon(&info.serial),
        };
        store::save(s, &format!("issuer/{id}"), &entry).await?;
        store::put_cert(s, &info.serial, &der).await?;
        if !key_id.is_empty() {
            out.mapping.insert(id.clone(), key_id);
            first_with_key.get_or_insert(id.clone());
        } else {
            out.mapping.insert(id.clone(), String::new());
        }
        out.imported_issuers.push(id);
    }
    rebuild_chains(s).await?;
    let mut cfg: IssuersConfig = store::load_or_default(s, "config/issuers").await?;
    if cfg.default.is_empty()
        && let Some(id) = first_with_key.or_else(|| out.imported_issuers.first().cloned())
    {
        cfg.default = id;
        store::save(s, "config/issuers", &cfg).await?;
    }
    if !out.imported_issuers.is_empty() && first_with_key_missing(&out) {
        out.warnings.push(
            "none of the imported issuers has a private key in this mount; they cannot issue"
                .into(),
        );
    }
    Ok(out)
}

fn first_with_key_missing(out: &Imported) -> bool {
    out.imported_issuers
        .iter()
        .all(|id| out.mapping.get(id).is_none_or(|k| k.is_empty()))
}

/// The issuer a signing path names: its `issuer/:issuer_ref/...` URL, else `default` (the
/// `root/...` forms). Decided by the route, so a body `issuer_ref` never chooses.
pub fn issuer_from_route(req: &Request, f: &Fields) -> String {
    if req.path.starts_with("issuer/") {
        f.input::<IssuerInUrl>().issuer_ref
    } else {
        "default".to_owned()
    }
}

/// Subject parameters shared by root, intermediate and issue paths.
pub(crate) fn subject_from(f: &SubjectInput, common_name: String) -> Subject {
    Subject {
        common_name,
        serial_number: f.serial_number.clone(),
        country: f.country.clone(),
        organization: f.organization.clone(),
        ou: f.ou.clone(),
        locality: f.locality.clone(),
        province: f.province.clone(),
        street_address: f.street_address.clone(),
        postal_code: f.postal_code.clone(),
    }
}

/// SANs from `alt_names`, `ip_sans`, `uri_sans` and `other_sans`, plus the common name unless
/// `exclude_cn_from_sans`.
pub(crate) fn ca_sans(f: &SubjectInput, cn: &str) -> Result<Sans> {
    let mut sans = Sans::default();
    for n in &f.alt_names {
        if n.contains('@') {
            sans.email.push(n.clone());
        } else {
            sans.dns.push(n.clone());
        }
    }
    for ip in &f.ip_sans {
        sans.ip.push(
            ip.parse()
                .map_err(|_| bad(format!("invalid ip_sans value {ip:?}")))?,
        );
    }
    sans.uri = f.uri_sans.clone();
    for o in &f.other_sans {
        sans.other.push(crate::issue::parse_other_san(o, false)?);
    }
    if !f.exclude_cn_from_sans && !cn.is_empty() {
        if cn.contains('@') {
            if !sans.email.iter().any(|e| e == cn) {
                sans.email.insert(0, cn.to_owned());
            }
        } else if let Ok(ip) = cn.parse() {
            if !sans.ip.contains(&ip) {
                sans.ip.insert(0, ip);
            }
        } else if !sans.dns.iter().any(|d| d == cn) {
            sans.dns.insert(0, cn.to_owned());
        }
    }
    Ok(sans)
}

fn issuer_json(e: &IssuerEntry, sig: &str) -> Map<String, Value> {
    let m = json!({
        "issuer_id": e.id,
        "issuer_name": e.name,
        "key_id": e.key_id,
        "certificate": e.certificate,
        "ca_chain": e.ca_chain,
        "manual_chain": if e.manual_chain.is_empty() { Value::Null } else { json!(e.manual_chain) },
        "leaf_not_after_behavior": e.leaf_not_after_behavior,
        "usage": e.usage.join(","),
        "revocation_signature_algorithm": sig,
        "issuing_certificates": e.urls.issuing_certificates,
        "crl_distribution_points": e.urls.crl_distribution_points,
        "ocsp_servers": e.urls.ocsp_servers,
        "enable_aia_url_templating": e.urls.enable_aia_url_templating,
        "revoked": e.revoked,
        "revocation_time": e.revocation_time,
        "revocation_time_rfc3339": if e.revoked { crate::clock::rfc3339(e.revocation_time) } else { String::new() },
    });
    match m {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

const LEAF_BEHAVIORS: [&str; 3] = ["err", "truncate", "permit"];
const USAGES: [&str; 4] = [
    "read-only",
    "issuing-certificates",
    "crl-signing",
    "ocsp-signing",
];

impl Engine {
    /// Loads an issuer by id through the cache.
    pub(crate) async fn load_issuer(&self, req: &Request, id: &str) -> Result<Arc<LoadedIssuer>> {
        let s = &*req.storage;
        let issuer_bytes = s
            .get(&format!("issuer/{id}"))
            .await?
            .ok_or_else(|| bad(format!("unable to find PKI issuer for reference: {id}")))?;
        let cache_key = format!("{}/{id}", self.mount_id(req));
        let cached_key_id = {
            let cache = self.issuers.lock();
            cache
                .get(&cache_key)
                .filter(|c| c.issuer_bytes == issuer_bytes)
                .map(|c| {
                    (
                        c.loaded.entry.key_id.clone(),
                        c.key_bytes.clone(),
                        c.loaded.clone(),
                    )
                })
        };
        if let Some((key_id, key_bytes, loaded)) = cached_key_id {
            let current = if key_id.is_empty() {
                None
            } else {
                s.get(&format!("key/{key_id}")).await?
            };
            if current == key_bytes {
                return Ok(loaded);
            }
        }
        let entry: IssuerEntry = serde_json::from_slice(&issuer_bytes).map_err(store::internal)?;
        let der = pem::certificates(&entry.certificate)
            .ok()
            .and_then(|c| c.into_iter().next())
            .ok_or_else(|| LogicalError::internal("stored issuer has no certificate"))?;
        let cert = x509::parse_cert(&der).map_err(store::internal)?;
        let (key, key_bytes) = if entry.key_id.is_empty() {
            (None, None)
        } else {
            match s.get(&format!("key/{}", entry.key_id)).await? {
                Some(bytes) => {
                    let ke: KeyEntry = serde_json::from_slice(&bytes).map_err(store::internal)?;
                    (Some(load_key(&ke)?), Some(bytes))
                }
                None => (None, None),
            }
        };
        let crl_id = crl_id(&cert);
        let loaded = Arc::new(LoadedIssuer {
            entry,
            cert,
            key,
            crl_id,
        });
        self.issuers.lock().insert(
            cache_key,
            CachedIssuer {
                issuer_bytes,
                key_bytes,
                loaded: loaded.clone(),
            },
        );
        Ok(loaded)
    }

    pub(crate) async fn issuer_by_ref(
        &self,
        req: &Request,
        reference: &str,
    ) -> Result<Arc<LoadedIssuer>> {
        let id = resolve_issuer(&*req.storage, reference).await?;
        self.load_issuer(req, &id).await
    }

    /// TTL of a CA certificate: `ttl`, else the mount default, within the mount maximum.
    fn ca_not_after(&self, req: &Request, f: &SubjectInput, now: i64) -> Result<i64> {
        if let Some(na) = Some(f.not_after.as_str()).filter(|s| !s.is_empty()) {
            return crate::clock::parse_rfc3339(na)
                .ok_or_else(|| bad(format!("invalid not_after {na:?}: expected RFC 3339")));
        }
        let max = req.mount.max_lease_ttl.as_secs() as i64;
        let mut ttl = Some(f.ttl.as_secs() as i64)
            .filter(|t| *t > 0)
            .unwrap_or(req.mount.default_lease_ttl.as_secs() as i64);
        if max > 0 && ttl > max {
            ttl = max;
        }
        Ok(now + ttl)
    }

    fn check_ca_key_request(&self, f: &CaInput) -> Result<KeySpec> {
        KeySpec::resolve(
            Some(f.key_type.as_str())
                .filter(|s| !s.is_empty())
                .unwrap_or("rsa"),
            f.key_bits,
        )
        .map_err(|e| bad(e.to_string()))
    }

    /// The key for a root or intermediate: generated, or an existing one (`existing`).
    async fn ca_key(&self, req: &Request, f: &CaInput) -> Result<(PrivateKey, String, bool)> {
        let s = &*req.storage;
        let kind = f.exported.as_str();
        match kind {
            "internal" | "exported" => {
                let spec = self.check_ca_key_request(f)?;
                let key = generate_key(spec).await?;
                let (id, _) = store_key(s, &key, &f.key_name).await?;
                Ok((key, id, kind == "exported"))
            }
            "existing" => {
                let id = resolve_key(s, &f.key_ref).await?;
                let entry: KeyEntry = get_json(s, &format!("key/{id}"))
                    .await?
                    .ok_or_else(|| bad("key not found"))?;
                Ok((load_key(&entry)?, id, false))
            }
            "kms" => Err(bad("managed keys (kms) are not supported")),
            other => Err(bad(format!(
                "invalid type {other:?}: expected internal, exported or existing"
            ))),
        }
    }

    pub(crate) async fn root_generate(
        self: Arc<Self>,
        req: Request,
        f: Fields,
    ) -> Result<Option<Response>> {
        let s = &*req.storage;
        let subj: SubjectInput = f.input();
        let ca: CaInput = f.input();
        let _guard = self.lock(&req, "issuers").await;
        let format = output_format(&subj.format)?;
        let signature_bits = ca_signature_bits(subj.signature_bits)?;
        let cn = subj.common_name.clone();
        if cn.is_empty() {
            return Err(bad("the common_name field is required"));
        }
        let issuer_name = ca.issuer_name.clone();
        if !issuer_name.is_empty()
            && list_issuer_entries(s)
                .await?
                .iter()
                .any(|e| e.name == issuer_name)
        {
            return Err(bad(format!(
                "issuer name {issuer_name:?} is already in use"
            )));
        }
        if issuer_name == "default" {
            return Err(bad("issuer name \"default\" is reserved"));
        }
        let now = self.now();
        let not_after = self.ca_not_after(&req, &subj, now)?;
        let (key, key_id, exported) = self.ca_key(&req, &ca).await?;
        let subject = subject_from(&subj, cn.clone())
            .to_name()
            .map_err(|e| bad(e.to_string()))?;
        let urls: UrlsConfig = store::load_or_default(s, "config/urls").await?;
        let serial = x509::random_serial();
        let path_len = ca.max_path_length;
        let spec = CertSpec {
            serial: serial.clone(),
            subject: subject.clone(),
            spki_der: key.spki_der().to_vec(),
            not_before: now - subj.not_before_duration.as_secs() as i64,
            not_after,
            ca: Some(if path_len >= 0 {
                Some(path_len.min(255) as u8)
            } else {
                None
            }),
            key_usage: x509::key_usage_bits(&["CertSign".into(), "CRLSign".into()])
                .map_err(|e| bad(e.to_string()))?,
            sans: ca_sans(&subj, &cn)?,
            urls: AiaUrls {
                issuing_certificates: urls.issuing_certificates,
                crl_distribution_points: urls.crl_distribution_points,
                ocsp_servers: urls.ocsp_servers,
            },
            permitted_dns_domains: ca.permitted_dns_domains,
            excluded_dns_domains: ca.excluded_dns_domains,
            ..Default::default()
        };
        let key_id_bytes = x509::key_identifier(key.spki_der());
        let der = x509::build_certificate(
            &spec,
            &SignerRef {
                name: &subject,
                key_id: &key_id_bytes,
                key: &key,
                alg: key.sig_alg(signature_bits),
            },
        )
        .map_err(|e| bad(e.to_string()))?;
        let id = uuid::Uuid::new_v4().to_string();
        let entry = IssuerEntry {
            v: store::RECORD_VERSION,
            id: id.clone(),
            name: issuer_name.clone(),
            key_id: key_id.clone(),
            certificate: pem::cert(&der),
            ca_chain: vec![pem::cert(&der)],
            manual_chain: vec![],
            leaf_not_after_behavior: store::default_leaf_behavior(),
            usage: store::default_usage(),
            revocation_signature_algorithm: String::new(),
            urls: Default::default(),
            revoked: false,
            revocation_time: 0,
            serial_number: x509::serial_colon(&serial),
        };
        store::save(s, &format!("issuer/{id}"), &entry).await?;
        store::put_issued_cert(s, &serial, &der, &id).await?;
        let mut cfg: IssuersConfig = store::load_or_default(s, "config/issuers").await?;
        let mut warnings = vec![];
        if cfg.default.is_empty() || cfg.default_follows_latest_issuer {
            cfg.default = id.clone();
            store::save(s, "config/issuers", &cfg).await?;
        } else {
            warnings.push(format!(
                "this mount already had a default issuer; the new issuer {id} is not the default (set it with config/issuers)"
            ));
        }
        let key_name = get_json::<KeyEntry>(s, &format!("key/{key_id}"))
            .await?
            .map(|k| k.name)
            .unwrap_or_default();
        let mut data = json!({
            "certificate": encode_cert(&der, &format),
            "issuing_ca": encode_cert(&der, &format),
            "expiration": not_after,
            "serial_number": x509::serial_colon(&serial),
            "issuer_id": id,
            "issuer_name": issuer_name,
            "key_id": key_id,
            "key_name": key_name,
        });
        if exported {
            let pk_format = subj.private_key_format.as_str();
            let pk_format = if format == "der" && pk_format.is_empty() {
                "der"
            } else {
                pk_format
            };
            data["private_key"] = json!(*key.export(pk_format).map_err(|e| bad(e.to_string()))?);
            data["private_key_type"] = json!(key.key_type().as_str());
        }
        if format == "pem_bundle" && exported {
            let bundle = format!(
                "{}\n{}",
                data["private_key"].as_str().unwrap_or_default(),
                pem::cert(&der)
            );
            data["certificate"] = json!(bundle);
        }
        let mut r = Response::json(data);
        r.warnings = warnings;
        Ok(Some(r))
    }

    pub(crate) async fn intermediate_generate(
        self: Arc<Self>,
        req: Request,
        f: Fields,
    ) -> Result<Option<Response>> {
        let subj: SubjectInput = f.input();
        let ca: CaInput = f.input();
        let format = output_format(&subj.format)?;
        let cn = subj.common_name.clone();
        if cn.is_empty() {
            return Err(bad("the common_name field is required"));
        }
        let (key, key_id, exported) = {
            let _guard = self.lock(&req, "issuers").await;
            self.ca_key(&req, &ca).await?
        };
        let subject = subject_from(&subj, cn.clone())
            .to_name()
            .map_err(|e| bad(e.to_string()))?;
        let csr = x509::build_csr(
            &subject,
            &ca_sans(&subj, &cn)?,
            &key,
            ca.add_basic_constraints,
        )
        .map_err(|e| bad(e.to_string()))?;
        let csr_text = if format == "der" {
            use base64::Engine as _;
            base64::engine::general_purpose::STANDARD.encode(&csr)
        } else {
            pem::encode("CERTIFICATE REQUEST", &csr)
        };
        let mut data = json!({"csr": csr_text, "key_id": key_id});
        if exported {
            data["private_key"] = json!(
                *key.export(&subj.private_key_format)
                    .map_err(|e| bad(e.to_string()))?
            );
            data["private_key_type"] = json!(key.key_type().as_str());
        }
        Ok(Some(Response::json(data)))
    }

    /// `root/sign-intermediate` and `issuer/:ref/sign-intermediate`.
    pub(crate) async fn sign_intermediate(
        self: Arc<Self>,
        req: Request,
        f: Fields,
    ) -> Result<Option<Response>> {
        let s = &*req.storage;
        let subj: SubjectInput = f.input();
        let si: SignIntermediateInput = f.input();
        let format = output_format(&subj.format)?;
        let signature_bits = ca_signature_bits(subj.signature_bits)?;
        // From the URL on issuer/:ref/..., else the default issuer: never from the body,
        // which would bypass ACLs on issuer/+/... (issue 10, finding 9).
        let reference = issuer_from_route(&req, &f);
        let issuer = self.issuer_by_ref(&req, &reference).await?;
        if issuer.entry.revoked {
            return Err(bad("the issuer has been revoked and cannot sign"));
        }
        if !issuer.has_usage("issuing-certificates") {
            return Err(bad("this issuer may not issue certificates (usage)"));
        }
        let csr = x509::parse_csr(si.csr.as_bytes()).map_err(|e| bad(e.to_string()))?;
        let use_csr = si.use_csr_values;
        let cn = if use_csr || subj.common_name.is_empty() {
            x509::common_name(&csr.subject)
        } else {
            subj.common_name.clone()
        };
        let subject = if use_csr {
            csr.subject.clone()
        } else {
            subject_from(&subj, cn.clone())
                .to_name()
                .map_err(|e| bad(e.to_string()))?
        };
        let mut sans = ca_sans(&subj, &cn)?;
        if use_csr {
            sans = csr.sans.clone();
        }
        let now = self.now();
        let mut not_after = self.ca_not_after(&req, &subj, now)?;
        let mut warnings = vec![];
        if not_after > issuer.cert.not_after {
            match issuer.entry.leaf_not_after_behavior.as_str() {
                "permit" => {}
                "truncate" => not_after = issuer.cert.not_after,
                _ => {
                    // Vault truncates intermediates to the issuer's life with a warning.
                    warnings
                        .push("the requested ttl is beyond the issuer's expiry; truncated".into());
                    not_after = issuer.cert.not_after;
                }
            }
        }
        let path_len = si.max_path_length;
        let path_len = match (path_len, issuer.cert.path_len) {
            (p, Some(parent)) if p < 0 || p >= i64::from(parent) => {
                if parent == 0 {
                    return Err(bad(
                        "the issuer has a path length of 0 and cannot sign intermediates",
                    ));
                }
                Some(parent - 1)
            }
            (p, _) if p >= 0 => Some(p.min(255) as u8),
            _ => None,
        };
        let urls: UrlsConfig = store::load_or_default(s, "config/urls").await?;
        let serial = x509::random_serial();
        let skid = Some(si.skid.as_str())
            .filter(|x| !x.is_empty())
            .map(|x| hex::decode(x.replace(':', "")).map_err(|_| bad("invalid skid")))
            .transpose()?;
        let spec = CertSpec {
            serial: serial.clone(),
            subject,
            spki_der: csr.spki_der.clone(),
            not_before: now - subj.not_before_duration.as_secs() as i64,
            not_after,
            ca: Some(path_len),
            key_usage: x509::key_usage_bits(&["CertSign".into(), "CRLSign".into()])
                .map_err(|e| bad(e.to_string()))?,
            sans,
            urls: issuer.urls(&urls),
            permitted_dns_domains: si.permitted_dns_domains,
            excluded_dns_domains: si.excluded_dns_domains,
            skid,
            ..Default::default()
        };
        let der = x509::build_certificate(&spec, &issuer.signer(signature_bits)?)
            .map_err(|e| bad(e.to_string()))?;
        store::put_issued_cert(s, &serial, &der, &issuer.entry.id).await?;
        let mut chain: Vec<String> = issuer.entry.ca_chain.clone();
        if chain.is_empty() {
            chain.push(issuer.entry.certificate.clone());
        }
        let certificate = if format == "pem_bundle" {
            let mut parts = vec![pem::cert(&der)];
            parts.extend(chain.iter().cloned());
            parts.join("\n")
        } else {
            encode_cert(&der, &format)
        };
        let mut r = Response::json(json!({
            "certificate": certificate,
            "issuing_ca": issuer.entry.certificate,
            "ca_chain": chain,
            "serial_number": x509::serial_colon(&serial),
            "expiration": not_after,
        }));
        r.warnings = warnings;
        Ok(Some(r))
    }

    /// `root/sign-self-issued` and `issuer/:ref/sign-self-issued`: signs a self-issued CA
    /// certificate (subject equal to issuer, CA basic constraints) again with this issuer,
    /// keeping its subject, key, serial, validity and extensions. Nothing is stored.
    pub(crate) async fn sign_self_issued(
        self: Arc<Self>,
        req: Request,
        f: Fields,
    ) -> Result<Option<Response>> {
        // From the URL on issuer/:ref/..., else the default issuer: never from the body,
        // which would bypass ACLs on issuer/+/... (issue 10, finding 9).
        let input: SelfIssuedInput = f.input();
        let reference = issuer_from_route(&req, &f);
        let issuer = self.issuer_by_ref(&req, &reference).await?;
        if issuer.entry.revoked {
            return Err(bad("the issuer has been revoked and cannot sign"));
        }
        if !issuer.has_usage("issuing-certificates") {
            return Err(bad("this issuer may not issue certificates (usage)"));
        }
        let certs = pem::certificates(&input.certificate).map_err(|e| bad(e.to_string()))?;
        let [der] = certs.as_slice() else {
            return Err(bad(
                "the certificate field must hold exactly one pem certificate",
            ));
        };
        let info = x509::parse_cert(der).map_err(|e| bad(e.to_string()))?;
        if !info.self_issued() {
            return Err(bad("the certificate is not self-issued"));
        }
        if !info.is_ca {
            return Err(bad("the certificate is not a ca certificate"));
        }
        if input.require_matching_certificate_algorithms
            && x509::public_key_algorithm(&info.spki_der)
                != x509::public_key_algorithm(&issuer.cert.spki_der)
        {
            return Err(bad(
                "the certificate's public key algorithm differs from the issuer's",
            ));
        }
        let signed = x509::resign(der, &issuer.signer(0)?).map_err(|e| bad(e.to_string()))?;
        Ok(Some(Response::json(json!({
            "certificate": pem::cert(&signed),
            "issuing_ca": issuer.entry.certificate,
        }))))
    }

    /// `issuer/:ref/revoke`: marks the issuer revoked (it can no longer issue or sign) and
    /// puts its certificate on the CRL of every issuer in this mount that signed it.
    pub(crate) async fn issuer_revoke(
        self: Arc<Self>,
        req: Request,
        f: Fields,
    ) -> Result<Option<Response>> {
        let s = &*req.storage;
        let IssuerRef { issuer_ref } = f.input();
        let guard = self.lock(&req, "issuers").await;
        let id = resolve_issuer(s, &issuer_ref).await?;
        let mut e: IssuerEntry = get_json(s, &format!("issuer/{id}"))
            .await?
            .ok_or_else(|| bad("issuer not found"))?;
        if !e.revoked {
            e.revoked = true;
            e.revocation_time = self.now();
            store::save(s, &format!("issuer/{id}"), &e).await?;
        }
        drop(guard);
        let issuer = self.load_issuer(&req, &id).await?;
        // On the CRL of the issuer that signed it (found as for any certificate: recorded at
        // signing, else by name, key identifier and signature). A self-signed root, or one
        // signed by a reissue of itself, has no CRL to go on: issuers never list themselves.
        // Recorded again on every call, so a retry after a crash completes the listing.
        let stored = store::get_cert(s, &issuer.cert.serial).await?;
        let is_stored = stored.as_deref() == Some(&issuer.cert.der[..]);
        if let Some(parent) = self.issuer_of(&req, &issuer.cert, is_stored).await?
            && parent.crl_id != issuer.crl_id
            && parent.key.is_some()
        {
            self.record_revocation(
                &req,
                &parent,
                &issuer.cert.serial,
                &issuer.cert.der,
                stored.is_none(),
                issuer.cert.not_after,
            )
            .await?;
        }
        Ok(Some(issuer_response(&issuer)))
    }

    pub(crate) async fn set_signed(
        self: Arc<Self>,
        req: Request,
        f: Fields,
    ) -> Result<Option<Response>> {
        let _guard = self.lock(&req, "issuers").await;
        let SetSignedInput { certificate: text } = f.input();
        let certs = pem::certificates(&text).map_err(|e| bad(e.to_string()))?;
        let first = certs.first().ok_or_else(|| bad("no certificate given"))?;
        let info = x509::parse_cert(first).map_err(|e| bad(e.to_string()))?;
        let keys = list_key_entries(&*req.storage).await?;
        let has_key = keys.iter().any(|k| {
            load_key(k).is_ok_and(|k| crate::keys::same_public_key(k.spki_der(), &info.spki_der))
        });
        let mut imported = import_bundle(&*req.storage, &text).await?;
        if !has_key {
            imported
                .warnings
                .push("the signed certificate's public key matches no key in this mount".into());
        }
        Ok(Some(imported.response()))
    }

    /// `config/ca`, `issuers/import/bundle`, `issuers/import/cert`: `bundle` is the path's
    /// `pem_bundle`.
    pub(crate) async fn import_pem_bundle(
        self: Arc<Self>,
        req: Request,
        bundle: String,
    ) -> Result<Option<Response>> {
        let _guard = self.lock(&req, "issuers").await;
        if bundle.trim().is_empty() {
            return Err(bad("the pem_bundle field is required"));
        }
        Ok(Some(
            import_bundle(&*req.storage, &bundle).await?.response(),
        ))
    }

    pub(crate) async fn issuers_list(
        self: Arc<Self>,
        req: Request,
        _f: Fields,
    ) -> Result<Option<Response>> {
        let s = &*req.storage;
        let cfg: IssuersConfig = store::load_or_default(s, "config/issuers").await?;
        let mut entries = list_issuer_entries(s).await?;
        entries.sort_by(|a, b| a.id.cmp(&b.id));
        let mut info = Map::new();
        for e in &entries {
            info.insert(
                e.id.clone(),
                json!({
                    "issuer_name": e.name,
                    "is_default": e.id == cfg.default,
                    "serial_number": e.serial_number,
                    "key_id": e.key_id,
                }),
            );
        }
        let mut r = Response::list(entries.iter().map(|e| e.id.clone()).collect());
        if let Some(d) = r.data.as_mut() {
            d.insert("key_info".into(), Value::Object(info));
        }
        Ok(Some(r))
    }

    pub(crate) async fn issuer_read(
        self: Arc<Self>,
        req: Request,
        f: Fields,
    ) -> Result<Option<Response>> {
        let issuer = self.issuer_to_read(&req, &f).await?;
        Ok(Some(issuer_response(&issuer)))
    }

    /// The issuer `issuer/:ref` (and its `json`, `pem`, `der` forms) reads. As in Vault, a
    /// reference that names no issuer (one that was deleted, or `default` with none set) fails
    /// the read as a server error carrying the resolution error, not as bad input.
    async fn issuer_to_read(&self, req: &Request, f: &Fields) -> Result<Arc<LoadedIssuer>> {
        self.issuer_by_ref(req, &f.input::<IssuerRef>().issuer_ref)
            .await
            .map_err(|e| match e {
                LogicalError::InvalidRequest(m) => LogicalError::Internal(m),
                other => other,
            })
    }

    /// `issuer/:ref/json`, `issuer/:ref/pem`, `issuer/:ref/der` (unauthenticated).
    pub(crate) async fn issuer_fetch(
        self: Arc<Self>,
        req: Request,
        f: Fields,
        kind: &str,
    ) -> Result<Option<Response>> {
        let issuer = self.issuer_to_read(&req, &f).await?;
        Ok(Some(match kind {
            "der" => raw(200, "application/pkix-cert", issuer.cert.der.clone()),
            "pem" => {
                let mut body = issuer.entry.certificate.clone();
                body.push('\n');
                raw(200, "application/pem-certificate-chain", body.into_bytes())
            }
            _ => Response::json(json!({
                "issuer_id": issuer.entry.id,
                "issuer_name": issuer.entry.name,
                "certificate": issuer.entry.certificate,
                "ca_chain": issuer.entry.ca_chain,
            })),
        }))
    }

    pub(crate) async fn issuer_update(
        self: Arc<Self>,
        req: Request,
        f: Fields,
    ) -> Result<Option<Response>> {
        let s = &*req.storage;
        let IssuerRef { issuer_ref } = f.input();
        let input: IssuerSettings = f.input();
        let _guard = self.lock(&req, "issuers").await;
        let id = resolve_issuer(s, &issuer_ref).await?;
        let mut e: IssuerEntry = get_json(s, &format!("issuer/{id}"))
            .await?
            .ok_or_else(|| bad("issuer not found"))?;
        // A write and a PATCH alike change only what is sent.
        if let Some(name) = input.issuer_name {
            if name == "default" {
                return Err(bad("issuer name \"default\" is reserved"));
            }
            if !name.is_empty()
                && list_issuer_entries(s)
                    .await?
                    .iter()
                    .any(|o| o.name == name && o.id != id)
            {
                return Err(bad(format!("issuer name {name:?} is already in use")));
            }
            e.name = name;
        }
        if let Some(b) = input.leaf_not_after_behavior {
            if !LEAF_BEHAVIORS.contains(&b.as_str()) {
                return Err(bad(format!(
                    "invalid leaf_not_after_behavior {b:?}: expected err, truncate or permit"
                )));
            }
            e.leaf_not_after_behavior = b;
        }
        if let Some(usage) = input.usage {
            for u in &usage {
                if !USAGES.contains(&u.as_str()) {
                    return Err(bad(format!("invalid usage {u:?}")));
                }
            }
            e.usage = usage;
        }
        if let Some(alg) = input.revocation_signature_algorithm {
            e.revocation_signature_algorithm = alg;
        }
        if let Some(manual_chain) = input.manual_chain {
            let mut chain = vec![];
            for r in manual_chain {
                chain.push(if r == "self" {
                    id.clone()
                } else {
                    resolve_issuer(s, &r).await?
                });
            }
            e.manual_chain = chain;
        }
        if let Some(urls) = input.issuing_certificates {
            e.urls.issuing_certificates = urls;
        }
        if let Some(urls) = input.crl_distribution_points {
            e.urls.crl_distribution_points = urls;
        }
        if let Some(urls) = input.ocsp_servers {
            e.urls.ocsp_servers = urls;
        }
        if let Some(on) = input.enable_aia_url_templating {
            e.urls.enable_aia_url_templating = on;
        }
        store::save(s, &format!("issuer/{id}"), &e).await?;
        rebuild_chains(s).await?;
        drop(_guard);
        let issuer = self.load_issuer(&req, &id).await?;
        Ok(Some(issuer_response(&issuer)))
    }

    pub(crate) async fn issuer_delete(
        self: Arc<Self>,
        req: Request,
        f: Fields,
    ) -> Result<Option<Response>> {
        let s = &*req.storage;
        let IssuerRef { issuer_ref } = f.input();
        let _guard = self.lock(&req, "issuers").await;
        let Ok(id) = resolve_issuer(s, &issuer_ref).await else {
            return Ok(None);
        };
        let crl_id = self
            .load_issuer(&req, &id)
            .await
            .ok()
            .map(|i| i.crl_id.clone());
        s.delete(&format!("issuer/{id}")).await?;
        // The shared CRL may have been signed by this issuer: drop the signed copies so the
        // next fetch re-signs them with a remaining one (numbering and index are kept).
        if let Some(crl_id) = crl_id {
            s.delete_prefix(&format!("crls/{crl_id}/")).await?;
        }
        s.delete_prefix(&format!("crls/{id}/")).await?;
        let mut cfg: IssuersConfig = store::load_or_default(s, "config/issuers").await?;
        let mut r = Response::default();
        if cfg.default == id {
            cfg.default = String::new();
            store::save(s, "config/issuers", &cfg).await?;
            r.warnings
                .push("the default issuer was deleted; set a new one with config/issuers".into());
        }
        rebuild_chains(s).await?;
        Ok((!r.warnings.is_empty()).then_some(r))
    }

    pub(crate) async fn config_issuers_read(
        self: Arc<Self>,
        req: Request,
        _f: Fields,
    ) -> Result<Option<Response>> {
        let cfg: IssuersConfig = store::load_or_default(&*req.storage, "config/issuers").await?;
        Ok(Some(Response::json(json!({
            "default": cfg.default,
            "default_follows_latest_issuer": cfg.default_follows_latest_issuer,
        }))))
    }

    pub(crate) async fn config_issuers_write(
        self: Arc<Self>,
        req: Request,
        f: Fields,
    ) -> Result<Option<Response>> {
        let input: ConfigIssuersInput = f.input();
        self.set_issuers_config(req, f, input.default, input.default_follows_latest_issuer)
            .await
    }

    /// `root/replace`: sets the default issuer. Without `default` the reference is "next",
    /// resolved like any other (Vault does the same: an issuer must carry that name).
    pub(crate) async fn root_replace(
        self: Arc<Self>,
        req: Request,
        f: Fields,
    ) -> Result<Option<Response>> {
        let input: ReplaceRootInput = f.input();
        let default = input.default.unwrap_or_else(|| "next".to_owned());
        self.set_issuers_config(req, f, Some(default), None).await
    }

    /// Changes the settings of `config/issuers` that were sent and answers with them all.
    async fn set_issuers_config(
        self: Arc<Self>,
        req: Request,
        f: Fields,
        default: Option<String>,
        follows_latest: Option<bool>,
    ) -> Result<Option<Response>> {
        let s = &*req.storage;
        let mut cfg: IssuersConfig = store::load_or_default(s, "config/issuers").await?;
        if let Some(r) = default {
            if r == "default" {
                return Err(bad("invalid issuer reference \"default\""));
            }
            cfg.default = resolve_issuer(s, &r).await?;
        }
        if let Some(on) = follows_latest {
            cfg.default_follows_latest_issuer = on;
        }
        store::save(s, "config/issuers", &cfg).await?;
        self.config_issuers_read(req, f).await
    }

    pub(crate) async fn keys_list(
        self: Arc<Self>,
        req: Request,
        _f: Fields,
    ) -> Result<Option<Response>> {
        let mut entries = list_key_entries(&*req.storage).await?;
        entries.sort_by(|a, b| a.id.cmp(&b.id));
        let mut info = Map::new();
        for e in &entries {
            info.insert(e.id.clone(), json!({"key_name": e.name}));
        }
        let mut r = Response::list(entries.iter().map(|e| e.id.clone()).collect());
        if let Some(d) = r.data.as_mut() {
            d.insert("key_info".into(), Value::Object(info));
        }
        Ok(Some(r))
    }

    pub(crate) async fn key_read(
        self: Arc<Self>,
        req: Request,
        f: Fields,
    ) -> Result<Option<Response>> {
        let KeyRef { key_ref } = f.input();
        let id = resolve_key(&*req.storage, &key_ref).await?;
        key_response(&req, &id).await
    }

    pub(crate) async fn key_update(
        self: Arc<Self>,
        req: Request,
        f: Fields,
    ) -> Result<Option<Response>> {
        let s = &*req.storage;
        let KeyRef { key_ref } = f.input();
        let KeyNameInput { key_name: name } = f.input();
        let id = resolve_key(s, &key_ref).await?;
        let mut e: KeyEntry = get_json(s, &format!("key/{id}"))
            .await?
            .ok_or_else(|| bad("key not found"))?;
        if !name.is_empty()
            && list_key_entries(s)
                .await?
                .iter()
                .any(|o| o.name == name && o.id != id)
        {
            return Err(bad(format!("key name {name:?} is already in use")));
        }
        e.name = name;
        store::save(s, &format!("key/{id}"), &e).await?;
        key_response(&req, &id).await
    }

    pub(crate) async fn key_delete(
        self: Arc<Self>,
        req: Request,
        f: Fields,
    ) -> Result<Option<Response>> {
        let s = &*req.storage;
        let KeyRef { key_ref } = f.input();
        let Ok(id) = resolve_key(s, &key_ref).await else {
            return Ok(None);
        };
        let users: Vec<String> = list_issuer_entries(s)
            .await?
            .into_iter()
            .filter(|e| e.key_id == id)
            .map(|e| e.id)
            .collect();
        if !users.is_empty() {
            return Err(bad(format!(
                "unable to delete key {id}: it is in use by issuer(s) {}",
                users.join(", ")
            )));
        }
        s.delete(&format!("key/{id}")).await?;
        let mut cfg: KeysConfig = store::load_or_default(s, "config/keys").await?;
        if cfg.default == id {
            cfg.default = String::new();
            store::save(s, "config/keys", &cfg).await?;
        }
        Ok(None)
    }

    pub(crate) async fn keys_generate(
        self: Arc<Self>,
        req: Request,
        f: Fields,
    ) -> Result<Option<Response>> {
        let ca: CaInput = f.input();
        let _guard = self.lock(&req, "issuers").await;
        let (key, id, exported) = self.ca_key(&req, &ca).await?;
        let mut data = json!({
            "key_id": id,
            "key_name": ca.key_name,
            "key_type": key.key_type().as_str(),
        });
        if exported {
            data["private_key"] = json!(*key.export("").map_err(|e| bad(e.to_string()))?);
        }
        Ok(Some(Response::json(data)))
    }

    pub(crate) async fn keys_import(
        self: Arc<Self>,
        req: Request,
        f: Fields,
    ) -> Result<Option<Response>> {
        let input: KeyImportInput = f.input();
        let _guard = self.lock(&req, "issuers").await;
        let key = PrivateKey::from_pem(&input.pem_bundle).map_err(|e| bad(e.to_string()))?;
        let (id, _) = store_key(&*req.storage, &key, &input.key_name).await?;
        Ok(Some(Response::json(json!({
            "key_id": id,
            "key_name": input.key_name,
            "key_type": key.key_type().as_str(),
        }))))
    }

    pub(crate) async fn config_keys_read(
        self: Arc<Self>,
        req: Request,
        _f: Fields,
    ) -> Result<Option<Response>> {
        let cfg: KeysConfig = store::load_or_default(&*req.storage, "config/keys").await?;
        Ok(Some(Response::json(json!({"default": cfg.default}))))
    }

    pub(crate) async fn config_keys_write(
        self: Arc<Self>,
        req: Request,
        f: Fields,
    ) -> Result<Option<Response>> {
        let s = &*req.storage;
        let mut cfg: KeysConfig = store::load_or_default(s, "config/keys").await?;
        cfg.default = resolve_key(s, &f.input::<ConfigKeysInput>().default).await?;
        store::save(s, "config/keys", &cfg).await?;
        self.config_keys_read(req, f).await
    }

    /// `DELETE root`: removes every issuer and key (issued certificates stay).
    pub(crate) async fn delete_root(
        self: Arc<Self>,
        req: Request,
        _f: Fields,
    ) -> Result<Option<Response>> {
        let s = &*req.storage;
        let _guard = self.lock(&req, "issuers").await;
        for p in ["issuer/", "key/", "crls/", "crl-state/", "crl-index/"] {
            s.delete_prefix(p).await?;
        }
        s.delete("config/issuers").await?;
        s.delete("config/keys").await?;
        Ok(None)
    }
}

/// A key as `key/:ref` reads it.
async fn key_response(req: &Request, id: &str) -> Result<Option<Response>> {
    let s = &*req.storage;
    let Some(e) = get_json::<KeyEntry>(s, &format!("key/{id}")).await? else {
        return Ok(None);
    };
    let key = load_key(&e)?;
    Ok(Some(Response::json(json!({
        "key_id": e.id,
        "key_name": e.name,
        "key_type": e.key_type,
        "key_bits": e.key_bits,
        "subject_key_id": x509::serial_colon(&x509::key_identifier(key.spki_der())),
    }))))
}

/// An issuer as `issuer/:ref` reads it.
fn issuer_response(issuer: &LoadedIssuer) -> Response {
    let sig = issuer
        .key
        .as_ref()
        .map(|k| {
            let bits = match issuer.entry.revocation_signature_algorithm.as_str() {
                "SHA384WithRSA" => 384,
                "SHA512WithRSA" => 512,
                _ => 256,
            };
            k.sig_alg(bits).vault_name()
        })
        .unwrap_or("");
    Response::data(issuer_json(&issuer.entry, sig))
}

/// The request's `format` (default `pem`), checked before anything is generated or stored.
pub(crate) fn output_format(format: &str) -> Result<String> {
    let format = Some(format).filter(|s| !s.is_empty()).unwrap_or("pem");
    if !["pem", "der", "pem_bundle"].contains(&format) {
        return Err(bad(format!(
            "invalid format {format:?}: expected pem, der or pem_bundle"
        )));
    }
    Ok(format.to_owned())
}

/// The `signature_bits` of a CA path (root, sign-intermediate): 0 for the key's default, else
/// 256, 384 or 512, as a role takes; never truncated to 32 bits.
fn ca_signature_bits(n: i64) -> Result<u32> {
    match n {
        0 => Ok(0),
        256 => Ok(256),
        384 => Ok(384),
        512 => Ok(512),
        n => Err(bad(format!(
            "unsupported signature_bits {n}: expected 256, 384 or 512"
        ))),
    }
}

/// A certificate in Vault's `format`: PEM, or base64 DER for `der`.
pub fn encode_cert(der: &[u8], format: &str) -> String {
    if format == "der" {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(der)
    } else {
        pem::cert(der)
    }
}

pub fn raw(status: u16, content_type: &str, body: Vec<u8>) -> Response {
    Response {
        raw: Some(RawResponse {
            headers: Vec::new(),
            status,
            content_type: content_type.into(),
            body,
        }),
        ..Default::default()
    }
}
