//! Identity tokens (Vault's `identity/oidc/*`): named signing keys, roles, OIDC ID tokens signed
//! for the caller's entity, introspection, and the unauthenticated discovery documents
//! (`.well-known/openid-configuration`, `.well-known/keys`) with which other systems verify
//! Tresor-issued tokens without a Tresor token.
//!
//! Storage, in the `identity/` mount's view (`sys/identity/` behind the barrier): `oidc/config`
//! (the issuer), `oidc/role/<name>`, and `oidc/key/<name>`: the key's settings, its current
//! signing key (private PKCS#8 and public JWK) and the public JWKs of rotated-out keys, each
//! until its `verification_ttl` runs out. Private keys are only read to sign; in memory they are
//! zeroized on drop and print as `<redacted>`.
//!
//! Signing is aws-lc-rs (RSA-2048 PKCS#1 v1.5, ECDSA with fixed-size signatures, Ed25519); the
//! compact JWS is built here. Introspection verifies with the same public JWKs the discovery
//! document serves, choosing the key by `kid` and requiring the header's `alg` to be that key's
//! algorithm (a token cannot pick a weaker verification than its key's).
//!
//! **Rotation is lazy.** The identity mount is a plain [`tresor_sdk::framework::TableBackend`],
//! which does not forward [`tresor_sdk::LogicalBackend::periodic`], so a key whose
//! `rotation_period` has passed is rotated when it is next used to sign. The rotated-out public
//! key stays in the JWKS for `verification_ttl` from that moment, which is at least as long as
//! any token it signed lives (a role's `ttl` may not exceed its key's `verification_ttl`).
//!
//! **Writes are conditional.** Every key write (create, update, rotation, lazy rotation) commits
//! only if the key's storage revision is still the one read, and retries otherwise: two servers
//! rotating the same key at once keep exactly one new key, so no token is ever signed with a key
//! that was then lost.
//!
//! **Time** is the wall clock, as in the identity store (the identity backend is built from the
//! store alone and has no injected clock).

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime};

use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{
    self, EcdsaKeyPair, EcdsaSigningAlgorithm, Ed25519KeyPair, KeyPair as _, RsaKeyPair,
    RsaParameters, RsaPublicKeyComponents, UnparsedPublicKey,
};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use tresor_sdk::framework::{Fields, Path};
use tresor_sdk::identity::{RESERVED_CLAIMS, render_json, validate_json};
use tresor_sdk::{
    LogicalError, Operation, RawResponse, Request, Response, Result, SpecialPaths, Storage,
};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

const CONFIG_KEY: &str = "oidc/config";
const KEY_PREFIX: &str = "oidc/key/";
const ROLE_PREFIX: &str = "oidc/role/";
/// The issuer's base when none is configured and the server knows no `api_addr` (a core
/// built without one, in tests): the dev server's address.
const DEFAULT_ISSUER: &str = "http://127.0.0.1:8200";
/// Where the issuer's base is followed by this mount's path, as in Vault.
const ISSUER_PATH: &str = "/v1/identity/oidc";
pub(crate) const DAY: u64 = 24 * 3600;
/// Clock difference tolerated between servers for `iat` and `nbf` in the future. Expiry gets
/// none: a token is inactive from its `exp` on.
const SKEW: i64 = 60;
/// How many times a write that lost a race to another writer is tried again.
pub(crate) const ATTEMPTS: usize = 5;
/// The format of every record this module stores (decoding refuses newer ones).
pub(crate) const FORMAT: u32 = 1;
/// The built-in key, as in Vault: RS256, every client allowed, rotated daily. It exists before
/// anything is stored (read and listed with these settings); its key pair is made when it is
/// first written or first signs. It cannot be deleted.
pub(crate) const DEFAULT_KEY: &str = "default";

/// The unauthenticated paths of the identity mount.
pub(crate) fn special_paths() -> SpecialPaths {
    SpecialPaths {
        unauthenticated: std::iter::once("oidc/.well-known/*".to_owned())
            .chain(crate::identity_provider::unauthenticated_paths())
            .collect(),
        root: Vec::new(),
    }
}

/// A signing algorithm of a named key.
#[allow(clippy::upper_case_acronyms)] // reason: the JOSE names, as stored and as sent
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
enum Alg {
    RS256,
    RS384,
    RS512,
    ES256,
    ES384,
    ES512,
    EdDSA,
}

const ALGS: [Alg; 7] = [
    Alg::RS256,
    Alg::RS384,
    Alg::RS512,
    Alg::ES256,
    Alg::ES384,
    Alg::ES512,
    Alg::EdDSA,
];

impl Alg {
    fn name(self) -> &'static str {
        match self {
            Alg::RS256 => "RS256",
            Alg::RS384 => "RS384",
            Alg::RS512 => "RS512",
            Alg::ES256 => "ES256",
            Alg::ES384 => "ES384",
            Alg::ES512 => "ES512",
            Alg::EdDSA => "EdDSA",
        }
    }
    fn parse(s: &str) -> Option<Alg> {
        ALGS.into_iter().find(|a| a.name() == s)
    }
    fn rsa(self) -> Option<(&'static dyn signature::RsaEncoding, &'static RsaParameters)> {
        match self {
            Alg::RS256 => Some((
                &signature::RSA_PKCS1_SHA256,
                &signature::RSA_PKCS1_2048_8192_SHA256,
            )),
            Alg::RS384 => Some((
                &signature::RSA_PKCS1_SHA384,
                &signature::RSA_PKCS1_2048_8192_SHA384,
            )),
            Alg::RS512 => Some((
                &signature::RSA_PKCS1_SHA512,
                &signature::RSA_PKCS1_2048_8192_SHA512,
            )),
            _ => None,
        }
    }
    /// Signing and verification algorithms, curve name and coordinate size of ECDSA keys.
    fn ecdsa(
        self,
    ) -> Option<(
        &'static EcdsaSigningAlgorithm,
        &'static signature::EcdsaVerificationAlgorithm,
        &'static str,
        usize,
    )> {
        match self {
            Alg::ES256 => Some((
                &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
                &signature::ECDSA_P256_SHA256_FIXED,
                "P-256",
                32,
            )),
            Alg::ES384 => Some((
                &signature::ECDSA_P384_SHA384_FIXED_SIGNING,
                &signature::ECDSA_P384_SHA384_FIXED,
                "P-384",
                48,
            )),
            Alg::ES512 => Some((
                &signature::ECDSA_P521_SHA512_FIXED_SIGNING,
                &signature::ECDSA_P521_SHA512_FIXED,
                "P-521",
                66,
            )),
            _ => None,
        }
    }
}

/// A private key as stored: PKCS#8, base64. Zeroized on drop, never printed.
#[derive(Clone, Serialize, Deserialize, Zeroize, ZeroizeOnDrop)]
#[serde(transparent)]
struct PrivateKey(String);

impl std::fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PrivateKey(<redacted>)")
    }
}

/// The key a named key signs with now.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct SigningKey {
    kid: String,
    alg: Alg,
    private_key: PrivateKey,
    /// The public half, as the JWKS serves it.
    jwk: Value,
}

/// The public half of a rotated-out key, served until `expire_at` (Unix seconds).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct RetiredKey {
    kid: String,
    alg: Alg,
    jwk: Value,
    expire_at: i64,
}

/// A named key (`oidc/key/<name>`).
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct NamedKey {
    format: u32,
    algorithm: Alg,
    /// Seconds between rotations.
    rotation_period: u64,
    /// Seconds a rotated-out public key stays in the JWKS.
    verification_ttl: u64,
    allowed_client_ids: Vec<String>,
    /// When the signing key is next rotated (Unix seconds).
    next_rotation: i64,
    signing: SigningKey,
    #[serde(default)]
    previous: Vec<RetiredKey>,
}

impl NamedKey {
    pub(crate) fn allows(&self, client_id: &str) -> bool {
        self.allowed_client_ids
            .iter()
            .any(|c| c == "*" || c == client_id)
    }

    /// Makes `new` the signing key at `now`: the old key's public half verifies for
    /// `verification_ttl` seconds more (not at all for 0), expired ones are dropped, and the
    /// next rotation is a whole period away.
    fn rotate(&mut self, new: SigningKey, verification_ttl: u64, now: i64) {
        let old = std::mem::replace(&mut self.signing, new);
        self.previous.retain(|k| k.expire_at > now);
        if verification_ttl > 0 {
            self.previous.push(RetiredKey {
                kid: old.kid.clone(),
                alg: old.alg,
                jwk: old.jwk.clone(),
                expire_at: now.saturating_add(secs_i64(verification_ttl)),
            });
        }
        self.next_rotation = now.saturating_add(secs_i64(self.rotation_period));
    }

    /// The public keys that verify at `now`: the signing key's and unexpired retired ones.
    fn public_keys(&self, now: i64) -> Vec<(String, Alg, Value)> {
        let mut out = vec![(
            self.signing.kid.clone(),
            self.signing.alg,
            self.signing.jwk.clone(),
        )];
        out.extend(
            self.previous
                .iter()
                .filter(|k| k.expire_at > now)
                .map(|k| (k.kid.clone(), k.alg, k.jwk.clone())),
        );
        out
    }
}

/// The built-in `default` key's settings around a new signing key.
fn default_key(signing: SigningKey, now: i64) -> NamedKey {
    NamedKey {
        format: FORMAT,
        algorithm: Alg::RS256,
        rotation_period: DAY,
        verification_ttl: DAY,
        allowed_client_ids: vec!["*".into()],
        next_rotation: now.saturating_add(secs_i64(DAY)),
        signing,
        previous: Vec::new(),
    }
}

/// A role (`oidc/role/<name>`).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Role {
    format: u32,
    key: String,
    /// The JSON template, decoded (it may be written as base64).
    template: String,
    client_id: String,
    /// Seconds a token of this role lives.
    ttl: u64,
}

/// `oidc/config`.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Config {
    format: u32,
    /// The configured base URL (scheme, host, port), empty for the default.
    issuer: String,
}

pub(crate) fn now() -> i64 {
    tresor_sdk::clock::unix(SystemTime::now())
}

pub(crate) fn secs(d: Duration) -> u64 {
    d.as_secs()
}

pub(crate) fn secs_i64(s: u64) -> i64 {
    i64::try_from(s).unwrap_or(i64::MAX)
}

pub(crate) fn invalid(m: impl Into<String>) -> LogicalError {
    LogicalError::InvalidRequest(m.into())
}

fn b64(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A stored record with its storage revision. The bytes may hold a private key: they are
/// zeroized once decoded.
pub(crate) async fn load<T: DeserializeOwned + HasFormat>(
    s: &dyn Storage,
    key: &str,
) -> Result<Option<(T, u64)>> {
    let Some((bytes, rev)) = s.get_with_revision(key).await? else {
        return Ok(None);
    };
    let bytes = Zeroizing::new(bytes);
    let v: T = serde_json::from_slice(&bytes)
        .map_err(|e| LogicalError::Internal(format!("decoding stored entry {key:?}: {e}")))?;
    if v.format() > FORMAT {
        return Err(LogicalError::Internal(format!(
            "stored entry {key:?} has format {} (newer than this server's {FORMAT})",
            v.format()
        )));
    }
    Ok(Some((v, rev)))
}

pub(crate) async fn get<T: DeserializeOwned + HasFormat>(
    s: &dyn Storage,
    key: &str,
) -> Result<Option<T>> {
    Ok(load(s, key).await?.map(|(v, _)| v))
}

/// Writes `v` if `key` is still at revision `rev` (0: still absent).
pub(crate) async fn store_if<T: Serialize>(
    s: &dyn Storage,
    key: &str,
    v: &T,
    rev: u64,
) -> Result<bool> {
    let bytes = serde_json::to_vec(v).map_err(LogicalError::internal)?;
    s.transaction_if(
        vec![(key.to_owned(), rev)],
        vec![(key.to_owned(), Some(bytes))],
    )
    .await
}

/// Records carry their format number (house style: every persisted struct is versioned).
pub(crate) trait HasFormat {
    fn format(&self) -> u32;
}
impl HasFormat for NamedKey {
    fn format(&self) -> u32 {
        self.format
    }
}
impl HasFormat for Role {
    fn format(&self) -> u32 {
        self.format
    }
}
impl HasFormat for Config {
    fn format(&self) -> u32 {
        self.format
    }
}

// --- keys, signing and verification ---------------------------------------------------------

/// A new key pair for `alg`, generated on the blocking pool (RSA takes tens of milliseconds).
async fn generate(alg: Alg) -> Result<SigningKey> {
    tokio::task::spawn_blocking(move || generate_now(alg))
        .await
        .map_err(LogicalError::internal)?
}

fn generate_now(alg: Alg) -> Result<SigningKey> {
    let failed = |_| LogicalError::internal("generating a signing key failed");
    let kid = uuid::Uuid::new_v4().to_string();
    let mut jwk = json!({"use": "sig", "kid": kid, "alg": alg.name()});
    let pkcs8: Zeroizing<Vec<u8>> = if alg.rsa().is_some() {
        let kp = RsaKeyPair::generate(KeySize::Rsa2048).map_err(failed)?;
        let der: Pkcs8V1Der<'static> = kp.as_der().map_err(failed)?;
        let public = kp.public_key();
        jwk["kty"] = json!("RSA");
        jwk["n"] = json!(b64(public.modulus().big_endian_without_leading_zero()));
        jwk["e"] = json!(b64(public.exponent().big_endian_without_leading_zero()));
        Zeroizing::new(der.as_ref().to_vec())
    } else if let Some((signing, _, crv, size)) = alg.ecdsa() {
        let kp = EcdsaKeyPair::generate(signing).map_err(failed)?;
        let doc = kp.to_pkcs8v1().map_err(failed)?;
        // The public key is the uncompressed point: 0x04, then X and Y.
        let point = kp.public_key().as_ref();
        if point.len() != 1 + 2 * size || point[0] != 4 {
            return Err(LogicalError::internal("unexpected EC public key encoding"));
        }
        jwk["kty"] = json!("EC");
        jwk["crv"] = json!(crv);
        jwk["x"] = json!(b64(&point[1..1 + size]));
        jwk["y"] = json!(b64(&point[1 + size..]));
        Zeroizing::new(doc.as_ref().to_vec())
    } else {
        let kp = Ed25519KeyPair::generate().map_err(failed)?;
        let doc = kp.to_pkcs8v1().map_err(failed)?;
        jwk["kty"] = json!("OKP");
        jwk["crv"] = json!("Ed25519");
        jwk["x"] = json!(b64(kp.public_key().as_ref()));
        Zeroizing::new(doc.as_ref().to_vec())
    };
    Ok(SigningKey {
        kid,
        alg,
        private_key: PrivateKey(STANDARD.encode(&*pkcs8)),
        jwk,
    })
}

/// The compact JWS of `claims`, signed with `key`.
fn sign(key: &SigningKey, claims: &Map<String, Value>) -> Result<String> {
    let header = json!({"alg": key.alg.name(), "kid": key.kid});
    let input = format!(
        "{}.{}",
        b64(header.to_string()),
        b64(Value::Object(claims.clone()).to_string())
    );
    fn bad_key<E>(_: E) -> LogicalError {
        LogicalError::internal("the stored signing key cannot be used")
    }
    let der = Zeroizing::new(STANDARD.decode(&key.private_key.0).map_err(bad_key)?);
    let sig: Vec<u8> = if let Some((encoding, _)) = key.alg.rsa() {
        let kp = RsaKeyPair::from_pkcs8(&der).map_err(bad_key)?;
        let mut sig = vec![0; kp.public_modulus_len()];
        kp.sign(encoding, &SystemRandom::new(), input.as_bytes(), &mut sig)
            .map_err(|_| LogicalError::internal("signing failed"))?;
        sig
    } else if let Some((signing, ..)) = key.alg.ecdsa() {
        let kp = EcdsaKeyPair::from_pkcs8(signing, &der).map_err(bad_key)?;
        kp.sign(&SystemRandom::new(), input.as_bytes())
            .map_err(|_| LogicalError::internal("signing failed"))?
            .as_ref()
            .to_vec()
    } else {
        let kp = Ed25519KeyPair::from_pkcs8_maybe_unchecked(&der).map_err(bad_key)?;
        kp.sign(input.as_bytes()).as_ref().to_vec()
    };
    Ok(format!("{input}.{}", b64(sig)))
}

/// Whether `sig` is `alg`'s signature of `input` by the key `jwk`.
fn verify(alg: Alg, jwk: &Value, input: &[u8], sig: &[u8]) -> bool {
    let part = |name: &str| {
        jwk.get(name)
            .and_then(Value::as_str)
            .and_then(|s| URL_SAFE_NO_PAD.decode(s).ok())
    };
    if let Some((_, params)) = alg.rsa() {
        let (Some(n), Some(e)) = (part("n"), part("e")) else {
            return false;
        };
        return RsaPublicKeyComponents { n, e }
            .verify(params, input, sig)
            .is_ok();
    }
    if let Some((_, verification, _, _)) = alg.ecdsa() {
        let (Some(x), Some(y)) = (part("x"), part("y")) else {
            return false;
        };
        let point = [&[4u8][..], &x, &y].concat();
        return UnparsedPublicKey::new(verification, point)
            .verify(input, sig)
            .is_ok();
    }
    part("x").is_some_and(|x| {
        UnparsedPublicKey::new(&signature::ED25519, x)
            .verify(input, sig)
            .is_ok()
    })
}

/// The named key `name`, rotated first if its rotation is due (see the module docs).
pub(crate) async fn signing_key(s: &dyn Storage, name: &str, now: i64) -> Result<Option<NamedKey>> {
    let path = format!("{KEY_PREFIX}{name}");
    for _ in 0..ATTEMPTS {
        let Some((mut key, rev)) = load::<NamedKey>(s, &path).await? else {
            if name != DEFAULT_KEY {
                return Ok(None);
            }
            let key = default_key(generate(Alg::RS256).await?, now);
            if store_if(s, &path, &key, 0).await? {
                return Ok(Some(key));
            }
            continue; // another writer made it first: use theirs
        };
        if now < key.next_rotation {
            return Ok(Some(key));
        }
        let fresh = generate(key.algorithm).await?;
        let ttl = key.verification_ttl;
        key.rotate(fresh, ttl, now);
        if store_if(s, &path, &key, rev).await? {
            return Ok(Some(key));
        }
        // Another writer got there first: use what it stored.
    }
    Err(LogicalError::Conflict(format!(
        "key {name:?} kept changing while it was being rotated; try again"
    )))
}

/// The warning a write with an explicit issuer answers, in Vault's words.
pub(crate) const EXPLICIT_ISSUER_WARNING: &str = "If \"issuer\" is set explicitly, all tokens must be validated against that address, including those issued by secondary clusters. Setting issuer to \"\" will restore the default behavior of using the cluster's api_addr as the issuer.";

/// Whether the named key `name` lets `client_id` sign with it (a missing key lets nobody).
pub(crate) async fn key_allows(s: &dyn Storage, name: &str, client_id: &str) -> Result<bool> {
    Ok(
        match get::<NamedKey>(s, &format!("{KEY_PREFIX}{name}")).await? {
            Some(k) => k.allows(client_id),
            None => name == DEFAULT_KEY,
        },
    )
}

/// The `verification_ttl` of the named key `name`, `None` if there is no such key.
pub(crate) async fn key_verification_ttl(s: &dyn Storage, name: &str) -> Result<Option<u64>> {
    Ok(
        match get::<NamedKey>(s, &format!("{KEY_PREFIX}{name}")).await? {
            Some(k) => Some(k.verification_ttl),
            None if name == DEFAULT_KEY => Some(DAY),
            None => None,
        },
    )
}

/// The compact JWS of `claims`, signed with the named key's current signing key.
pub(crate) fn sign_with(key: &NamedKey, claims: &Map<String, Value>) -> Result<String> {
    sign(&key.signing, claims)
}

/// OIDC's `at_hash`: the left half of the hash of `value` under the hash of the key's
/// algorithm (SHA-512 for EdDSA), base64url.
pub(crate) fn half_hash(key: &NamedKey, value: &str) -> String {
    use aws_lc_rs::digest;
    let alg = match key.signing.alg {
        Alg::RS256 | Alg::ES256 => &digest::SHA256,
        Alg::RS384 | Alg::ES384 => &digest::SHA384,
        Alg::RS512 | Alg::ES512 | Alg::EdDSA => &digest::SHA512,
    };
    let d = digest::digest(alg, value.as_bytes());
    b64(&d.as_ref()[..d.as_ref().len() / 2])
}

/// The JOSE names of the signing algorithms.
pub(crate) fn algorithm_names() -> Vec<&'static str> {
    ALGS.map(Alg::name).to_vec()
}

/// The public JWKs that verify at `now` of the named keys `names` (the built-in key's once
/// it has been made).
pub(crate) async fn public_jwks_of(
    s: &dyn Storage,
    names: &[String],
    now: i64,
) -> Result<Vec<Value>> {
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for name in names {
        if let Some(k) = get::<NamedKey>(s, &format!("{KEY_PREFIX}{name}")).await? {
            for (kid, _, jwk) in k.public_keys(now) {
                if seen.insert(kid) {
                    out.push(jwk);
                }
            }
        }
    }
    Ok(out)
}

/// Every public key that verifies at `now`, across all named keys.
async fn public_keys(s: &dyn Storage, now: i64) -> Result<Vec<(String, Alg, Value)>> {
    let mut out = Vec::new();
    for name in s.list(KEY_PREFIX).await? {
        if name.ends_with('/') {
            continue;
        }
        if let Some(k) = get::<NamedKey>(s, &format!("{KEY_PREFIX}{name}")).await? {
            out.extend(k.public_keys(now));
        }
    }
    Ok(out)
}

async fn roles(s: &dyn Storage) -> Result<Vec<(String, Role)>> {
    all(s, ROLE_PREFIX).await
}

/// Every record stored directly under `prefix`, with its name.
pub(crate) async fn all<T: DeserializeOwned + HasFormat>(
    s: &dyn Storage,
    prefix: &str,
) -> Result<Vec<(String, T)>> {
    let mut out = Vec::new();
    for name in s.list(prefix).await? {
        if name.ends_with('/') {
            continue;
        }
        if let Some(v) = get::<T>(s, &format!("{prefix}{name}")).await? {
            out.push((name, v));
        }
    }
    Ok(out)
}

/// The base of an issuer with none configured: the server's `api_addr` (as in Vault).
pub(crate) fn default_base(req: &Request) -> String {
    req.mount
        .system
        .as_ref()
        .and_then(|s| s.api_addr())
        .map(|a| a.trim_end_matches('/').to_owned())
        .filter(|a| !a.is_empty())
        .unwrap_or_else(|| DEFAULT_ISSUER.to_owned())
}

/// The `iss` of every token: the configured base (or `default`) and the mount's path.
async fn issuer(s: &dyn Storage, default: &str) -> Result<String> {
    let c = get::<Config>(s, CONFIG_KEY).await?.unwrap_or_default();
    let base = if c.issuer.is_empty() {
        default
    } else {
        c.issuer.as_str()
    };
    Ok(format!("{base}{ISSUER_PATH}"))
}

/// Vault's rule for `issuer`: a scheme, a host and an optional port, nothing more.
pub(crate) fn check_issuer(issuer: &str) -> Result<String> {
    let bad = || {
        invalid(
            "invalid issuer, which must include only a scheme, host, and optional port (e.g. https://example.com:8200)",
        )
    };
    let trimmed = issuer.strip_suffix('/').unwrap_or(issuer);
    let host = trimmed
        .strip_prefix("https://")
        .or_else(|| trimmed.strip_prefix("http://"))
        .ok_or_else(bad)?;
    if host.is_empty()
        || host.starts_with(':')
        || host.chars().any(|c| {
            matches!(c, '/' | '?' | '#' | '@' | '\\') || c.is_whitespace() || c.is_control()
        })
    {
        return Err(bad());
    }
    if let Some((_, port)) = host.rsplit_once(':')
        && !host.ends_with(']')
        && port.parse::<u16>().is_err()
    {
        return Err(bad());
    }
    Ok(trimmed.to_owned())
}

/// A client ID as Vault makes them: 26 random letters and digits.
fn new_client_id() -> Result<String> {
    random_alnum(26)
}

/// `n` random letters and digits.
pub(crate) fn random_alnum(n: usize) -> Result<String> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut out = String::with_capacity(n);
    while out.len() < n {
        let mut buf = [0u8; 64];
        aws_lc_rs::rand::fill(&mut buf).map_err(|_| LogicalError::internal("no randomness"))?;
        // Rejection sampling keeps every character equally likely.
        for b in buf {
            if out.len() < n && usize::from(b) < 4 * ALPHABET.len() {
                out.push(char::from(ALPHABET[usize::from(b) % ALPHABET.len()]));
            }
        }
    }
    Ok(out)
}

/// A template as stored: as in Vault, it may be sent base64-encoded.
pub(crate) fn decode_template(t: String) -> String {
    STANDARD
        .decode(t.trim())
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .unwrap_or(t)
}

pub(crate) fn raw_json(v: &Value) -> Response {
    raw_json_status(200, v)
}

/// `v` as a bare JSON body with `status`, outside Vault's envelope.
pub(crate) fn raw_json_status(status: u16, v: &Value) -> Response {
    Response {
        raw: Some(RawResponse {
            headers: Vec::new(),
            status,
            content_type: "application/json".into(),
            body: v.to_string().into_bytes(),
        }),
        ..Default::default()
    }
}

// --- inputs ---------------------------------------------------------------------------------

tresor_sdk::input! {
    /// `oidc/config`.
    struct ConfigInput {
        issuer: Str, "Base URL (scheme, host, optional port) of the tokens' iss claim; empty for the default.";
    }
}

tresor_sdk::input! {
    /// `oidc/key/:name`: an update changes only the settings it sends.
    struct KeyInput {
        name: Str, "Name of the key.";
        rotation_period: OptDuration, "How often a new signing key is generated (at least one minute; default 24h).";
        verification_ttl: OptDuration, "How long a rotated-out public key stays available for verification (at most 10x rotation_period; default 24h).";
        allowed_client_ids: OptList, "Client IDs of the roles that may sign with this key; \"*\" allows every role, empty allows none.";
        algorithm: OptStr, "Signing algorithm: RS256 (default), RS384, RS512, ES256, ES384, ES512 or EdDSA.";
    }
}

tresor_sdk::input! {
    /// `oidc/key/:name/rotate`.
    struct RotateInput {
        name: Str, "Name of the key.";
        verification_ttl: OptDuration, "How long the rotated-out public key stays available for verification; overrides the key's own.";
    }
}

tresor_sdk::input! {
    /// `oidc/role/:name`: an update changes only the settings it sends.
    struct RoleInput {
        name: Str, "Name of the role.";
        key: OptStr, "The named key that signs this role's tokens; it must exist.";
        template: OptStr, "JSON template of extra claims, with {{identity...}} and {{time.now}} values; plain or base64.";
        client_id: Str, "The tokens' audience (aud); generated when not given.";
        ttl: OptDuration, "How long the role's tokens live (default 24h; at most the key's verification_ttl).";
    }
}

tresor_sdk::input! {
    /// `oidc/token/:name`.
    struct TokenInput {
        name: Str, "Name of the role.";
    }
}

tresor_sdk::input! {
    /// `oidc/introspect`.
    struct IntrospectInput {
        token: Str, "A signed identity token.";
        client_id: Str, "If given, the token's aud must contain it.";
    }
}

// --- handlers -------------------------------------------------------------------------------

type Reply = Result<Option<Response>>;

async fn read_config(req: Request) -> Reply {
    let c = get::<Config>(&*req.storage, CONFIG_KEY)
        .await?
        .unwrap_or_default();
    Ok(Some(Response::json(json!({"issuer": c.issuer}))))
}

async fn write_config(req: Request, f: Fields) -> Reply {
    let issuer = f.input::<ConfigInput>().issuer;
    let issuer_is_default = issuer.trim().is_empty();
    let issuer = if issuer_is_default {
        String::new()
    } else {
        check_issuer(issuer.trim())?
    };
    let bytes = serde_json::to_vec(&Config {
        format: FORMAT,
        issuer,
    })
    .map_err(LogicalError::internal)?;
    req.storage.put(CONFIG_KEY, bytes).await?;
    // As in Vault: the warning is about an explicit issuer; restoring the default answers 204.
    if issuer_is_default {
        return Ok(None);
    }
    Ok(Some(
        Response::default().with_warning(EXPLICIT_ISSUER_WARNING),
    ))
}

async fn read_key(req: Request, f: Fields) -> Reply {
    let name = f.input::<KeyInput>().name;
    let (algorithm, allowed_client_ids, rotation_period, verification_ttl) =
        match get::<NamedKey>(&*req.storage, &format!("{KEY_PREFIX}{name}")).await? {
            Some(k) => (
                k.algorithm,
                k.allowed_client_ids,
                k.rotation_period,
                k.verification_ttl,
            ),
            None if name == DEFAULT_KEY => (Alg::RS256, vec!["*".into()], DAY, DAY),
            None => return Ok(None),
        };
    Ok(Some(Response::json(json!({
        "algorithm": algorithm.name(),
        "allowed_client_ids": allowed_client_ids,
        "rotation_period": rotation_period,
        "verification_ttl": verification_ttl,
    }))))
}

/// The names stored under `prefix`, with `built_in` among them even before it is stored.
pub(crate) async fn list_prefix(req: Request, prefix: &str, built_in: Option<&str>) -> Reply {
    let mut keys: Vec<String> = req
        .storage
        .list(prefix)
        .await?
        .into_iter()
        .filter(|k| !k.ends_with('/'))
        .collect();
    keys.extend(built_in.map(str::to_owned));
    keys.sort();
    keys.dedup();
    Ok(Some(Response::list(keys)))
}

async fn write_key(req: Request, f: Fields) -> Reply {
    let i = f.input::<KeyInput>();
    let name = i.name;
    let path = format!("{KEY_PREFIX}{name}");
    let s = &*req.storage;
    let algorithm = match i.algorithm {
        Some(a) => Some(Alg::parse(&a).ok_or_else(|| {
            invalid(format!(
                "unknown signing algorithm {a:?}: algorithm must be one of {}",
                ALGS.map(Alg::name).join(", ")
            ))
        })?),
        None => None,
    };
    // A key generated for this write is kept across attempts that lost a race.
    let mut fresh: Option<SigningKey> = None;
    for _ in 0..ATTEMPTS {
        let now = now();
        let (old, rev) = match load::<NamedKey>(s, &path).await? {
            Some((k, rev)) => (Some(k), rev),
            None => (None, 0),
        };
        let rotation_period = match i.rotation_period {
            Some(d) => secs(d),
            None => old.as_ref().map_or(DAY, |k| k.rotation_period),
        };
        let verification_ttl = match i.verification_ttl {
            Some(d) => secs(d),
            None => old.as_ref().map_or(DAY, |k| k.verification_ttl),
        };
        let allowed_client_ids = match &i.allowed_client_ids {
            Some(ids) => ids.clone(),
            None => match &old {
                Some(k) => k.allowed_client_ids.clone(),
                None if name == DEFAULT_KEY => vec!["*".into()],
                None => Vec::new(),
            },
        };
        let algorithm = algorithm.unwrap_or(old.as_ref().map_or(Alg::RS256, |k| k.algorithm));
        if rotation_period < 60 {
            return Err(invalid("rotation_period must be at least one minute"));
        }
        if verification_ttl > rotation_period.saturating_mul(10) {
            return Err(invalid(
                "verification_ttl cannot be longer than 10x rotation_period",
            ));
        }
        if old
            .as_ref()
            .is_some_and(|k| verification_ttl < k.verification_ttl)
        {
            let too_long = roles(s)
                .await?
                .into_iter()
                .any(|(_, r)| r.key == name && r.ttl > verification_ttl);
            if too_long {
                return Err(invalid(format!(
                    "unable to update key {name:?} because it is currently referenced by one or more roles with a token ttl greater than {verification_ttl} seconds"
                )));
            }
        }
        let needs_new_key = old.as_ref().is_none_or(|k| k.algorithm != algorithm);
        if needs_new_key && fresh.as_ref().is_none_or(|k| k.alg != algorithm) {
            fresh = Some(generate(algorithm).await?);
        }
        let key = match old {
            None => NamedKey {
                format: FORMAT,
                algorithm,
                rotation_period,
                verification_ttl,
                allowed_client_ids,
                next_rotation: now.saturating_add(secs_i64(rotation_period)),
                signing: fresh
                    .clone()
                    .ok_or_else(|| LogicalError::internal("no key"))?,
                previous: Vec::new(),
            },
            Some(mut k) => {
                let period_changed = k.rotation_period != rotation_period;
                k.format = FORMAT;
                k.rotation_period = rotation_period;
                k.verification_ttl = verification_ttl;
                k.allowed_client_ids = allowed_client_ids;
                if k.algorithm != algorithm {
                    // A new algorithm takes a new key; the old one still verifies its tokens.
                    k.algorithm = algorithm;
                    let new = fresh
                        .clone()
                        .ok_or_else(|| LogicalError::internal("no key"))?;
                    k.rotate(new, verification_ttl, now);
                } else if period_changed {
                    k.next_rotation = now.saturating_add(secs_i64(rotation_period));
                }
                k
            }
        };
        if store_if(s, &path, &key, rev).await? {
            return Ok(None);
        }
    }
    Err(LogicalError::Conflict(format!(
        "key {name:?} kept changing while it was being written; try again"
    )))
}

async fn delete_key(req: Request, f: Fields) -> Reply {
    let name = f.input::<KeyInput>().name;
    if name == DEFAULT_KEY {
        return Err(invalid(format!("deletion of key {name:?} not allowed")));
    }
    let users: Vec<String> = roles(&*req.storage)
        .await?
        .into_iter()
        .filter(|(_, r)| r.key == name)
        .map(|(n, _)| n)
        .collect();
    if !users.is_empty() {
        return Err(invalid(format!(
            "unable to delete key {name:?} because it is currently referenced by these roles: {}",
            users.join(", ")
        )));
    }
    let clients = crate::identity_provider::clients_using_key(&*req.storage, &name).await?;
    if !clients.is_empty() {
        return Err(invalid(format!(
            "unable to delete key {name:?} because it is currently referenced by these clients: {}",
            clients.join(", ")
        )));
    }
    req.storage.delete(&format!("{KEY_PREFIX}{name}")).await?;
    Ok(None)
}

async fn rotate_key(req: Request, f: Fields) -> Reply {
    let RotateInput {
        name,
        verification_ttl,
    } = f.input();
    let path = format!("{KEY_PREFIX}{name}");
    let s = &*req.storage;
    let mut fresh: Option<SigningKey> = None;
    if name == DEFAULT_KEY {
        // The built-in key may not be stored yet: make it, then rotate it.
        signing_key(s, DEFAULT_KEY, now()).await?;
    }
    for _ in 0..ATTEMPTS {
        let Some((mut key, rev)) = load::<NamedKey>(s, &path).await? else {
            return Err(invalid(format!("no named key found at {name:?}")));
        };
        let ttl = verification_ttl.map_or(key.verification_ttl, secs);
        if fresh.as_ref().is_none_or(|k| k.alg != key.algorithm) {
            fresh = Some(generate(key.algorithm).await?);
        }
        let new = fresh
            .clone()
            .ok_or_else(|| LogicalError::internal("no key"))?;
        key.rotate(new, ttl, now());
        if store_if(s, &path, &key, rev).await? {
            return Ok(None);
        }
    }
    Err(LogicalError::Conflict(format!(
        "key {name:?} kept changing while it was being rotated; try again"
    )))
}

async fn read_role(req: Request, f: Fields) -> Reply {
    let name = f.input::<RoleInput>().name;
    let Some(r) = get::<Role>(&*req.storage, &format!("{ROLE_PREFIX}{name}")).await? else {
        return Ok(None);
    };
    Ok(Some(Response::json(json!({
        "client_id": r.client_id,
        "key": r.key,
        "template": r.template,
        "ttl": r.ttl,
    }))))
}

async fn write_role(req: Request, f: Fields) -> Reply {
    let i = f.input::<RoleInput>();
    let name = i.name;
    let path = format!("{ROLE_PREFIX}{name}");
    let s = &*req.storage;
    let (old, rev) = match load::<Role>(s, &path).await? {
        Some((r, rev)) => (Some(r), rev),
        None => (None, 0),
    };
    let key_name = match i.key {
        Some(k) => k,
        None => old.as_ref().map(|r| r.key.clone()).unwrap_or_default(),
    };
    if key_name.is_empty() {
        return Err(invalid("the key parameter is required"));
    }
    let verification_ttl = key_verification_ttl(s, &key_name)
        .await?
        .ok_or_else(|| invalid(format!("key {key_name:?} does not exist")))?;
    let ttl = match i.ttl {
        Some(d) => secs(d),
        None => old.as_ref().map_or(DAY, |r| r.ttl),
    };
    if ttl > verification_ttl {
        return Err(invalid(
            "a role's token ttl cannot be longer than the verification_ttl of the key it references",
        ));
    }
    let template = match i.template {
        Some(t) => decode_template(t),
        None => old.as_ref().map(|r| r.template.clone()).unwrap_or_default(),
    };
    if !template.trim().is_empty() {
        validate_json(&template).map_err(|e| invalid(format!("error parsing template: {e}")))?;
    }
    let client_id = match Some(i.client_id).filter(|c| !c.is_empty()) {
        Some(c) => c,
        None => match &old {
            Some(r) => r.client_id.clone(),
            None => new_client_id()?,
        },
    };
    let role = Role {
        format: FORMAT,
        key: key_name,
        template,
        client_id,
        ttl,
    };
    if !store_if(s, &path, &role, rev).await? {
        return Err(LogicalError::Conflict(format!(
            "role {name:?} changed while it was being written; try again"
        )));
    }
    Ok(None)
}

async fn issue_token(req: Request, f: Fields) -> Reply {
    let name = f.input::<TokenInput>().name;
    let s = &*req.storage;
    let entity = req
        .caller
        .entity
        .clone()
        .filter(|e| !e.id.is_empty())
        .ok_or_else(|| invalid("no entity associated with the request's token"))?;
    let Some(role) = get::<Role>(s, &format!("{ROLE_PREFIX}{name}")).await? else {
        return Err(invalid(format!("role {name:?} not found")));
    };
    let now = now();
    let Some(key) = signing_key(s, &role.key, now).await? else {
        return Err(invalid(format!("key {:?} not found", role.key)));
    };
    if !key.allows(&role.client_id) {
        return Err(invalid(format!(
            "the key {:?} does not list the client ID of the role {name:?} as an allowed client ID",
            role.key
        )));
    }
    let mut claims = Map::new();
    claims.insert("iss".into(), json!(issuer(s, &default_base(&req)).await?));
    claims.insert("sub".into(), json!(entity.id));
    claims.insert("aud".into(), json!(role.client_id));
    claims.insert("iat".into(), json!(now));
    claims.insert("exp".into(), json!(now.saturating_add(secs_i64(role.ttl))));
    claims.insert("namespace".into(), json!("root"));
    if !role.template.trim().is_empty() {
        let extra = render_json(&role.template, &entity, now)
            .map_err(|e| invalid(format!("error populating template: {e}")))?;
        for (k, v) in extra {
            // Validated when the role was written; a key rendered from entity data is
            // checked again here, so no entity can set its own `sub` or `exp`.
            if !RESERVED_CLAIMS.contains(&k.as_str()) {
                claims.insert(k, v);
            }
        }
    }
    let token = sign(&key.signing, &claims)?;
    Ok(Some(Response::json(json!({
        "client_id": role.client_id,
        "token": token,
        "ttl": role.ttl,
    }))))
}

/// Why a token is not active, in Vault's words; `Ok(())` when it is.
async fn check_token(
    s: &dyn Storage,
    default_base: &str,
    token: &str,
    client_id: &str,
    now: i64,
) -> Result<std::result::Result<(), String>> {
    let parse = |what: &str| Err(format!("error parsing token: {what}"));
    let parts: Vec<&str> = token.trim().split('.').collect();
    let [header, body, sig] = parts[..] else {
        return Ok(parse("compact JWS format must have three parts"));
    };
    let decode_json = |part: &str| -> Option<Map<String, Value>> {
        let bytes = URL_SAFE_NO_PAD.decode(part).ok()?;
        match serde_json::from_slice(&bytes).ok()? {
            Value::Object(m) => Some(m),
            _ => None,
        }
    };
    let Some(h) = decode_json(header) else {
        return Ok(parse("the header is not base64url-encoded JSON"));
    };
    let Some(claims) = decode_json(body) else {
        return Ok(parse("the payload is not base64url-encoded JSON"));
    };
    let Ok(sig) = URL_SAFE_NO_PAD.decode(sig) else {
        return Ok(parse("the signature is not base64url-encoded"));
    };
    let kid = h.get("kid").and_then(Value::as_str);
    let alg = h.get("alg").and_then(Value::as_str);
    let input = &token.trim()[..header.len() + 1 + body.len()];
    let valid = public_keys(s, now).await?.iter().any(|(k, a, jwk)| {
        kid == Some(k.as_str()) && alg == Some(a.name()) && verify(*a, jwk, input.as_bytes(), &sig)
    });
    if !valid {
        return Ok(Err("unable to validate the token signature".into()));
    }
    let claim_err = |what: &str| {
        Err(format!(
            "error validating claims: validation failed, {what}"
        ))
    };
    if claims.get("iss").and_then(Value::as_str) != Some(issuer(s, default_base).await?.as_str()) {
        return Ok(claim_err("invalid issuer claim (iss)"));
    }
    if !client_id.is_empty() {
        let aud_ok = match claims.get("aud") {
            Some(Value::String(a)) => a == client_id,
            Some(Value::Array(a)) => a.iter().any(|x| x.as_str() == Some(client_id)),
            _ => false,
        };
        if !aud_ok {
            return Ok(claim_err("invalid audience claim (aud)"));
        }
    }
    let time = |name: &str| claims.get(name).and_then(Value::as_f64);
    if time("nbf").is_some_and(|t| t > (now + SKEW) as f64) {
        return Ok(claim_err("token not valid yet (nbf)"));
    }
    if time("exp").is_some_and(|t| now as f64 >= t) {
        return Ok(claim_err("token is expired (exp)"));
    }
    if time("iat").is_some_and(|t| t > (now + SKEW) as f64) {
        return Ok(claim_err("token issued in the future (iat)"));
    }
    let sub = claims
        .get("sub")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let entity = if sub.is_empty() || sub.contains('/') {
        None
    } else {
        // The identity store's own record of the entity, read from the view both share.
        tresor_sdk::get_json::<crate::identity::Entity>(s, &format!("entity/{sub}")).await?
    };
    match entity {
        None => Ok(Err("entity was not found".into())),
        Some(e) if e.disabled => Ok(Err("entity is disabled".into())),
        Some(_) => Ok(Ok(())),
    }
}

async fn introspect(req: Request, f: Fields) -> Reply {
    let i = f.input::<IntrospectInput>();
    let base = default_base(&req);
    let verdict = check_token(&*req.storage, &base, &i.token, &i.client_id, now()).await?;
    Ok(Some(raw_json(&match verdict {
        Ok(()) => json!({"active": true}),
        Err(e) => json!({"active": false, "error": e}),
    })))
}

async fn discovery(req: Request) -> Reply {
    let iss = issuer(&*req.storage, &default_base(&req)).await?;
    Ok(Some(raw_json(&json!({
        "issuer": iss,
        "jwks_uri": format!("{iss}/.well-known/keys"),
        "response_types_supported": ["id_token"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ALGS.map(Alg::name),
    }))))
}

async fn jwks(req: Request) -> Reply {
    let mut seen = BTreeSet::new();
    let keys: Vec<Value> = public_keys(&*req.storage, now())
        .await?
        .into_iter()
        .filter(|(kid, ..)| seen.insert(kid.clone()))
        .map(|(_, _, jwk)| jwk)
        .collect();
    Ok(Some(raw_json(&json!({ "keys": keys }))))
}

pub(crate) async fn exists(req: Request, prefix: &str, name: String) -> Result<bool> {
    Ok(req.storage.get(&format!("{prefix}{name}")).await?.is_some())
}

/// The `identity/oidc/*` paths, for the identity mount's table. Generic over the table's
/// state, which they do not use: everything they need arrives with the request.
pub(crate) fn paths<B: Send + Sync + 'static>() -> Vec<Path<B>> {
    use Operation::{Delete, List, Read, Update};
    vec![
        Path::new("oidc/config")
            .input::<ConfigInput>()
            .op(Read, |_b, req, _f| Box::pin(read_config(req)))
            .op(Update, |_b, req, f| Box::pin(write_config(req, f)))
            .help(
                "Configure the issuer of identity tokens.",
                "Tokens carry iss = <issuer>/v1/identity/oidc. Without a configured issuer the base is http://127.0.0.1:8200.",
            ),
        Path::new("oidc/key/")
            .op(List, |_b, req, _f| Box::pin(list_prefix(req, KEY_PREFIX, Some(DEFAULT_KEY))))
            .help("List named keys.", ""),
        Path::new("oidc/key/{name}/rotate")
            .input::<RotateInput>()
            .op(Update, |_b, req, f| Box::pin(rotate_key(req, f)))
            .help("Rotate a named key now.", ""),
        Path::new("oidc/key/{name}")
            .input::<KeyInput>()
            .existence(|_b, req, f| {
                let name = f.input::<KeyInput>().name;
                Box::pin(async move {
                    Ok(name == DEFAULT_KEY || exists(req, KEY_PREFIX, name).await?)
                })
            })
            .op(Read, |_b, req, f| Box::pin(read_key(req, f)))
            .op(Update, |_b, req, f| Box::pin(write_key(req, f)))
            .op(Delete, |_b, req, f| Box::pin(delete_key(req, f)))
            .help(
                "Create, read, update or delete a named key.",
                "A named key signs the tokens of the roles that reference it and rotates every rotation_period. A key referenced by a role cannot be deleted. The built-in key \"default\" (RS256, allowed_client_ids [\"*\"], rotated daily) always exists and cannot be deleted.",
            ),
        Path::new("oidc/role/")
            .op(List, |_b, req, _f| Box::pin(list_prefix(req, ROLE_PREFIX, None)))
            .help("List roles.", ""),
        Path::new("oidc/role/{name}")
            .input::<RoleInput>()
            .existence(|_b, req, f| {
                let name = f.input::<RoleInput>().name;
                Box::pin(exists(req, ROLE_PREFIX, name))
            })
            .op(Read, |_b, req, f| Box::pin(read_role(req, f)))
            .op(Update, |_b, req, f| Box::pin(write_role(req, f)))
            .op(Delete, |_b, req, f| {
                Box::pin(async move {
                    let name = f.input::<RoleInput>().name;
                    req.storage.delete(&format!("{ROLE_PREFIX}{name}")).await?;
                    Ok(None)
                })
            })
            .help(
                "Create, read, update or delete a role.",
                "Tokens are generated against a role: its key signs them, its client_id is their audience, its template adds claims.",
            ),
        Path::new("oidc/token/{name}")
            .input::<TokenInput>()
            .op(Read, |_b, req, f| Box::pin(issue_token(req, f)))
            .help(
                "Generate a signed identity token for the caller's entity.",
                "The token is an OIDC ID token: iss, sub (the entity ID), aud (the role's client_id), iat, exp, namespace, and the role's template claims.",
            ),
        Path::new("oidc/introspect")
            .input::<IntrospectInput>()
            .op(Update, |_b, req, f| Box::pin(introspect(req, f)))
            .help(
                "Verify an identity token.",
                "Answers {\"active\": true}, or {\"active\": false, \"error\": ...}: a bad signature, an unknown or deleted key, a wrong issuer or audience, an expired token, or an entity that is gone or disabled.",
            ),
        Path::new("oidc/.well-known/openid-configuration")
            .op(Read, |_b, req, _f| Box::pin(discovery(req)))
            .help("The OpenID discovery document (unauthenticated).", ""),
        Path::new("oidc/.well-known/keys")
            .op(Read, |_b, req, _f| Box::pin(jwks(req)))
            .help(
                "The public keys that verify identity tokens (unauthenticated).",
                "Every named key's current key, and rotated-out keys until their verification_ttl runs out.",
            ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(alg: Alg) -> NamedKey {
        NamedKey {
            format: FORMAT,
            algorithm: alg,
            rotation_period: 3600,
            verification_ttl: 600,
            allowed_client_ids: vec!["*".into()],
            next_rotation: 1000 + 3600,
            signing: generate_now(alg).unwrap(),
            previous: Vec::new(),
        }
    }

    /// Every algorithm signs a JWS its own JWK verifies; a changed payload or another key's
    /// JWK does not verify.
    #[test]
    fn every_algorithm_signs_and_verifies() {
        for alg in ALGS {
            let k = generate_now(alg).unwrap();
            let other = generate_now(alg).unwrap();
            let mut claims = Map::new();
            claims.insert("sub".into(), json!("e-1"));
            let jws = sign(&k, &claims).unwrap();
            let (input, sig) = jws.rsplit_once('.').unwrap();
            let sig = URL_SAFE_NO_PAD.decode(sig).unwrap();
            assert!(verify(alg, &k.jwk, input.as_bytes(), &sig), "{alg:?}");
            assert!(!verify(alg, &other.jwk, input.as_bytes(), &sig), "{alg:?}");
            let tampered = format!("{input}x");
            assert!(!verify(alg, &k.jwk, tampered.as_bytes(), &sig), "{alg:?}");
            assert_eq!(k.jwk["alg"], alg.name());
            assert_eq!(k.jwk["kid"], k.kid.as_str());
        }
        let es = generate_now(Alg::ES256).unwrap();
        assert_eq!(es.jwk["crv"], "P-256");
        let jws = sign(&es, &Map::new()).unwrap();
        let sig = URL_SAFE_NO_PAD
            .decode(jws.rsplit_once('.').unwrap().1)
            .unwrap();
        assert_eq!(sig.len(), 64, "ES256 signatures are fixed-size r||s");
    }

    /// Lazy rotation's arithmetic: the old public key stays for verification_ttl from the
    /// rotation, then leaves; the next rotation is a whole period away.
    #[test]
    fn rotation_keeps_old_public_keys_until_verification_ttl() {
        let mut k = key(Alg::ES256);
        let first = k.signing.kid.clone();
        k.rotate(generate_now(Alg::ES256).unwrap(), k.verification_ttl, 5000);
        assert_eq!(k.next_rotation, 5000 + 3600);
        let kids = |k: &NamedKey, at| {
            k.public_keys(at)
                .into_iter()
                .map(|(kid, ..)| kid)
                .collect::<Vec<_>>()
        };
        assert!(kids(&k, 5599).contains(&first));
        assert!(!kids(&k, 5600).contains(&first));
        assert_eq!(kids(&k, 5600), vec![k.signing.kid.clone()]);
        // A rotation with verification_ttl 0 drops the old key at once; expired ones go too.
        let second = k.signing.kid.clone();
        k.rotate(generate_now(Alg::ES256).unwrap(), 0, 6000);
        assert!(!kids(&k, 6000).contains(&second));
        assert!(k.previous.is_empty(), "{:?}", k.previous);
    }

    /// Storage with revisions, as the barrier view has them.
    #[derive(Default)]
    struct Mem(parking_lot::Mutex<(u64, Entries)>);

    /// Each key's value and revision.
    type Entries = std::collections::BTreeMap<String, (Vec<u8>, u64)>;

    #[async_trait::async_trait]
    impl Storage for Mem {
        async fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
            Ok(self.0.lock().1.get(key).map(|(v, _)| v.clone()))
        }
        async fn put(&self, key: &str, value: Vec<u8>) -> Result<()> {
            let mut g = self.0.lock();
            g.0 += 1;
            let rev = g.0;
            g.1.insert(key.to_owned(), (value, rev));
            Ok(())
        }
        async fn delete(&self, key: &str) -> Result<()> {
            self.0.lock().1.remove(key);
            Ok(())
        }
        async fn list(&self, prefix: &str) -> Result<Vec<String>> {
            let g = self.0.lock();
            Ok(g.1
                .keys()
                .filter_map(|k| k.strip_prefix(prefix))
                .map(str::to_owned)
                .collect())
        }
        async fn get_with_revision(&self, key: &str) -> Result<Option<(Vec<u8>, u64)>> {
            Ok(self.0.lock().1.get(key).cloned())
        }
        async fn transaction_if(
            &self,
            checks: Vec<(String, u64)>,
            ops: Vec<(String, Option<Vec<u8>>)>,
        ) -> Result<bool> {
            let mut g = self.0.lock();
            if checks
                .iter()
                .any(|(k, r)| g.1.get(k).map_or(0, |(_, rev)| *rev) != *r)
            {
                return Ok(false);
            }
            g.0 += 1;
            let rev = g.0;
            for (k, v) in ops {
                match v {
                    Some(v) => g.1.insert(k, (v, rev)),
                    None => g.1.remove(&k),
                };
            }
            Ok(true)
        }
    }

    /// Rotation by `rotation_period` happens when the key is next used to sign: before it is
    /// due the key is unchanged; after, a new key signs, the old one verifies for
    /// verification_ttl, and racing signers agree on one new key.
    #[tokio::test]
    async fn a_due_key_rotates_when_next_used_and_racers_agree() {
        let s = Mem::default();
        let mut k = key(Alg::ES256);
        k.next_rotation = 5000;
        let first = k.signing.kid.clone();
        assert!(store_if(&s, "oidc/key/k", &k, 0).await.unwrap());
        let before = signing_key(&s, "k", 4999).await.unwrap().unwrap();
        assert_eq!(before.signing.kid, first, "not due yet");
        let (a, b) = tokio::join!(signing_key(&s, "k", 5000), signing_key(&s, "k", 5001));
        let (a, b) = (a.unwrap().unwrap(), b.unwrap().unwrap());
        assert_ne!(a.signing.kid, first, "due: rotated");
        assert_eq!(a.signing.kid, b.signing.kid, "racers use one new key");
        let stored: NamedKey = get(&s, "oidc/key/k").await.unwrap().unwrap();
        assert_eq!(stored.signing.kid, a.signing.kid);
        let kids: Vec<String> = public_keys(&s, 5001)
            .await
            .unwrap()
            .into_iter()
            .map(|(kid, ..)| kid)
            .collect();
        assert!(
            kids.contains(&first) && kids.contains(&a.signing.kid),
            "{kids:?}"
        );
        let later: Vec<String> = public_keys(&s, 5000 + 600 + 1)
            .await
            .unwrap()
            .into_iter()
            .map(|(kid, ..)| kid)
            .collect();
        assert_eq!(later, vec![a.signing.kid.clone()]);
        assert!(stored.next_rotation >= 5000 + 3600);
    }

    #[test]
    fn issuer_rules() {
        for ok in [
            "https://example.com",
            "https://example.com:8200",
            "http://127.0.0.1:8200/",
            "https://[::1]:8200",
        ] {
            assert!(check_issuer(ok).is_ok(), "{ok}");
        }
        for bad in [
            "example.com",
            "ftp://example.com",
            "https://",
            "https://example.com/v1",
            "https://example.com?x=1",
            "https://user@example.com",
            "https://example.com:port",
            "https://exa mple.com",
        ] {
            assert!(check_issuer(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn private_keys_never_print() {
        let k = key(Alg::RS256);
        let printed = format!("{k:?}");
        assert!(!printed.contains(&k.signing.private_key.0), "{printed}");
        assert!(printed.contains("<redacted>"), "{printed}");
    }

    #[test]
    fn client_ids_are_26_letters_and_digits() {
        let a = new_client_id().unwrap();
        assert_eq!(a.len(), 26);
        assert!(a.chars().all(|c| c.is_ascii_alphanumeric()), "{a}");
        assert_ne!(a, new_client_id().unwrap());
    }
}
