//! Signed tokens: splitting a compact JWS, checking its algorithm against the allowed list,
//! and verifying its signature with public keys (PEM, or JWKS entries) on aws-lc-rs through
//! `jsonwebtoken`'s verifier. Claims are returned as JSON only after a signature verified;
//! what they say (times, audience, bindings) is checked elsewhere (`claims`).
//!
//! Only asymmetric algorithms are accepted: `none` and the HMAC family never verify, whatever
//! the configuration says, so a public key can never be used as an HMAC secret.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey};
use serde_json::{Map, Value};

/// One verification key: from a PEM, or a JWKS entry with its `kid` and optional `alg`.
#[derive(Clone)]
pub(crate) struct Key {
    pub(crate) kid: Option<String>,
    pub(crate) alg: Option<Algorithm>,
    pub(crate) key: DecodingKey,
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Key")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .field("family", &self.key.family())
            .finish()
    }
}

/// The asymmetric algorithms `jsonwebtoken` verifies (Vault also knows ES512, which it does
/// not).
pub(crate) const ASYMMETRIC: &[Algorithm] = &[
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

/// Parses an algorithm name from `jwt_supported_algs`, refusing symmetric ones.
pub(crate) fn parse_alg(name: &str) -> Result<Algorithm, String> {
    let alg: Algorithm = name
        .trim()
        .parse()
        .map_err(|_| format!("unsupported signing algorithm {name:?}"))?;
    if !ASYMMETRIC.contains(&alg) {
        return Err(format!("unsupported signing algorithm {name:?}"));
    }
    Ok(alg)
}

/// Parses one PEM public key (`PUBLIC KEY`, `RSA PUBLIC KEY` or a `CERTIFICATE`): RSA, EC
/// (P-256, P-384) or Ed25519.
pub(crate) fn parse_pem(pem: &str) -> Result<Key, String> {
    let b = pem.trim().as_bytes();
    let key = DecodingKey::from_rsa_pem(b)
        .or_else(|_| DecodingKey::from_ec_pem(b))
        .or_else(|_| DecodingKey::from_ed_pem(b))
        .map_err(|e| format!("not a PEM public key or certificate: {e}"))?;
    Ok(Key {
        kid: None,
        alg: None,
        key,
    })
}

/// Parses a JWKS document, keeping the keys it can verify with (signature keys of a known
/// type; encryption keys and symmetric keys are skipped).
pub(crate) fn parse_jwks(body: &[u8]) -> Result<Vec<Key>, String> {
    let set: JwkSet = serde_json::from_slice(body).map_err(|e| format!("not a JWKS: {e}"))?;
    let mut out = Vec::new();
    for jwk in &set.keys {
        if matches!(
            jwk.common.public_key_use,
            Some(jsonwebtoken::jwk::PublicKeyUse::Encryption)
        ) {
            continue;
        }
        let Ok(key) = DecodingKey::from_jwk(jwk) else {
            continue;
        };
        if key.family() == AlgorithmFamily::Hmac {
            continue;
        }
        let alg = jwk
            .common
            .key_algorithm
            .and_then(|a| a.to_string().parse::<Algorithm>().ok());
        out.push(Key {
            kid: jwk.common.key_id.clone(),
            alg,
            key,
        });
    }
    Ok(out)
}

/// The parts of a compact JWS, decoded but not yet trusted.
pub(crate) struct Parsed<'a> {
    pub(crate) alg: Algorithm,
    pub(crate) kid: Option<String>,
    /// `header.payload`, the signed bytes.
    message: &'a str,
    signature: &'a str,
    payload: &'a str,
}

/// Splits a compact JWS and reads its header. Errors never echo the token.
pub(crate) fn parse(token: &str) -> Result<Parsed<'_>, String> {
    let token = token.trim();
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err("malformed token: expected three dot-separated parts".into());
    };
    let header =
        jsonwebtoken::decode_header(token).map_err(|e| format!("malformed token header: {e}"))?;
    Ok(Parsed {
        alg: header.alg,
        kid: header.kid,
        message: &token[..h.len() + 1 + p.len()],
        signature: s,
        payload: p,
    })
}

impl Parsed<'_> {
    /// The claims, without any verification (Kubernetes reads them before TokenReview).
    pub(crate) fn unverified_claims(&self) -> Result<Map<String, Value>, String> {
        let bytes = URL_SAFE_NO_PAD
            .decode(self.payload.trim_end_matches('='))
            .map_err(|_| "malformed token payload: not base64url".to_owned())?;
        match serde_json::from_slice(&bytes) {
            Ok(Value::Object(m)) => Ok(m),
            _ => Err("malformed token payload: not a JSON object".into()),
        }
    }

    /// Verifies the signature with the first of `keys` that fits, after checking the
    /// algorithm is allowed; returns the claims.
    pub(crate) fn verify(
        &self,
        keys: &[Key],
        allowed: &[Algorithm],
    ) -> Result<Map<String, Value>, String> {
        if !allowed.contains(&self.alg) || !ASYMMETRIC.contains(&self.alg) {
            return Err(format!(
                "token is signed with {:?}, which is not allowed",
                self.alg
            ));
        }
        let family = self.alg.family();
        let mut candidates = keys
            .iter()
            .filter(|k| k.key.family() == family)
            .filter(|k| k.alg.is_none_or(|a| a == self.alg))
            .filter(|k| match (&self.kid, &k.kid) {
                (Some(want), Some(have)) => want == have,
                _ => true,
            })
            .peekable();
        if candidates.peek().is_none() {
            return Err(match &self.kid {
                Some(kid) => format!(
                    "no key with kid {kid:?} can verify a {:?} signature",
                    self.alg
                ),
                None => format!("no configured key can verify a {:?} signature", self.alg),
            });
        }
        for k in candidates {
            if jsonwebtoken::crypto::verify(
                self.signature,
                self.message.as_bytes(),
                &k.key,
                self.alg,
            )
            .unwrap_or(false)
            {
                return self.unverified_claims();
            }
        }
        Err("failed to verify the token's signature".into())
    }
}
