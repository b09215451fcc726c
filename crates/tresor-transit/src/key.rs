//! A named key as stored (its policy record, one storage entry per version) and as used (each
//! version's material, with the AEAD key or key pair built once and kept while cached).

use aws_lc_rs::aead::{self, LessSafeKey, UnboundKey};
use aws_lc_rs::encoding::{AsBigEndian, AsDer};
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair, RsaKeyPair};
use serde::{Deserialize, Serialize};
use tresor_sdk::Result;
use zeroize::Zeroizing;

use crate::keytype::KeyType;
use crate::util::{b64, bad, internal, pem, random, unb64_secret};

/// The key derivation function of derived keys (Vault's only current one).
pub(crate) const KDF: &str = "hkdf_sha256";
/// Vault's current convergent-encryption version: the nonce is an HMAC of the plaintext
/// under a key derived together with the encryption key.
pub(crate) const CONVERGENT_VERSION: u32 = 3;

/// A key's policy: its settings and version bounds, no key material (`policy/<name>`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct PolicyRecord {
    pub name: String,
    #[serde(rename = "type")]
    pub key_type: String,
    #[serde(default)]
    pub derived: bool,
    #[serde(default)]
    pub convergent_encryption: bool,
    #[serde(default)]
    pub exportable: bool,
    #[serde(default)]
    pub allow_plaintext_backup: bool,
    #[serde(default)]
    pub deletion_allowed: bool,
    pub latest_version: u32,
    pub min_decryption_version: u32,
    #[serde(default)]
    pub min_encryption_version: u32,
    #[serde(default)]
    pub min_available_version: u32,
    /// Seconds; 0: no automatic rotation.
    #[serde(default)]
    pub auto_rotate_period: u64,
    /// When the latest version was made (Unix seconds), for automatic rotation.
    #[serde(default)]
    pub last_rotated: i64,
    #[serde(default)]
    pub imported: bool,
    /// An imported key may rotate only when imported with `allow_rotation`.
    #[serde(default = "yes")]
    pub allow_rotation: bool,
    /// Bytes of an `hmac` key.
    #[serde(default)]
    pub key_size: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup_info: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore_info: Option<serde_json::Value>,
}

fn yes() -> bool {
    true
}

impl PolicyRecord {
    pub(crate) fn kind(&self) -> Result<KeyType> {
        KeyType::parse(&self.key_type).map_err(|_| internal("stored key has an unknown type"))
    }
}

/// One version's material (`version/<name>/<n>`).
#[derive(Serialize, Deserialize)]
pub(crate) struct VersionRecord {
    /// Base64: the AEAD or HMAC key; Ed25519's 64-byte private key (seed then public key);
    /// ECDSA and RSA keys as PKCS#8 DER.
    pub key: String,
    /// Base64: the version's HMAC key (`hmac/`), 32 random bytes.
    pub hmac_key: String,
    /// RFC 3339.
    pub creation_time: String,
}

impl std::fmt::Debug for VersionRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VersionRecord")
            .field("creation_time", &self.creation_time)
            .finish_non_exhaustive()
    }
}

/// What a version can do, built once from its material.
pub(crate) enum Prepared {
    /// An AEAD key used as is (not derived).
    Aead(LessSafeKey),
    /// Derived AEAD keys and HMAC keys are used from the raw bytes.
    Raw,
    Ed25519(Ed25519KeyPair),
    Ecdsa(EcdsaKeyPair),
    Rsa(RsaKeyPair),
}

/// One loaded key version. Key bytes are zeroed when dropped; `Debug` shows none of them.
pub(crate) struct Version {
    pub number: u32,
    pub created: String,
    pub key: Zeroizing<Vec<u8>>,
    pub hmac_key: Zeroizing<Vec<u8>>,
    pub prepared: Prepared,
}

impl std::fmt::Debug for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Version")
            .field("number", &self.number)
            .field("created", &self.created)
            .finish_non_exhaustive()
    }
}

pub(crate) fn aead_algorithm(t: KeyType) -> &'static aead::Algorithm {
    match t {
        KeyType::Aes128Gcm96 => &aead::AES_128_GCM,
        KeyType::ChaCha20Poly1305 => &aead::CHACHA20_POLY1305,
        _ => &aead::AES_256_GCM,
    }
}

pub(crate) fn ecdsa_signing(t: KeyType) -> &'static signature::EcdsaSigningAlgorithm {
    match t {
        KeyType::EcdsaP384 => &signature::ECDSA_P384_SHA384_ASN1_SIGNING,
        KeyType::EcdsaP521 => &signature::ECDSA_P521_SHA512_ASN1_SIGNING,
        _ => &signature::ECDSA_P256_SHA256_ASN1_SIGNING,
    }
}

/// Fresh key material of type `t` (`hmac_size` bytes for an HMAC key). RSA generation takes
/// tens of milliseconds to seconds: call it off the async workers.
pub(crate) fn generate(t: KeyType, hmac_size: usize) -> Result<Zeroizing<Vec<u8>>> {
    let fail = |_| internal("key generation failed");
    Ok(match t {
        KeyType::Aes128Gcm96 | KeyType::Aes256Gcm96 | KeyType::ChaCha20Poly1305 => {
            random(t.aead_key_len())?
        }
        KeyType::Hmac => random(hmac_size)?,
        KeyType::Ed25519 => {
            let kp = Ed25519KeyPair::generate().map_err(fail)?;
            let seed = kp.seed().map_err(fail)?;
            let seed = seed.as_be_bytes().map_err(fail)?;
            let mut key = Zeroizing::new(seed.as_ref().to_vec());
            key.extend_from_slice(kp.public_key().as_ref());
            key
        }
        KeyType::EcdsaP256 | KeyType::EcdsaP384 | KeyType::EcdsaP521 => {
            let kp = EcdsaKeyPair::generate(ecdsa_signing(t)).map_err(fail)?;
            Zeroizing::new(kp.to_pkcs8v1().map_err(fail)?.as_ref().to_vec())
        }
        KeyType::Rsa2048 | KeyType::Rsa3072 | KeyType::Rsa4096 => {
            let size = match t {
                KeyType::Rsa2048 => KeySize::Rsa2048,
                KeyType::Rsa3072 => KeySize::Rsa3072,
                _ => KeySize::Rsa4096,
            };
            let kp = RsaKeyPair::generate(size).map_err(fail)?;
            let der = AsDer::<aws_lc_rs::encoding::Pkcs8V1Der>::as_der(&kp).map_err(fail)?;
            Zeroizing::new(der.as_ref().to_vec())
        }
    })
}

/// Checks imported or restored material for type `t` and builds what it needs.
pub(crate) fn prepare(t: KeyType, derived: bool, key: &[u8]) -> Result<Prepared> {
    let wrong = || bad(format!("the key material is not a valid {} key", t.name()));
    Ok(match t {
        KeyType::Aes128Gcm96 | KeyType::Aes256Gcm96 | KeyType::ChaCha20Poly1305 => {
            if key.len() != t.aead_key_len() {
                return Err(wrong());
            }
            if derived {
                Prepared::Raw
            } else {
                let k = UnboundKey::new(aead_algorithm(t), key).map_err(|_| wrong())?;
                Prepared::Aead(LessSafeKey::new(k))
            }
        }
        KeyType::Hmac => {
            if key.is_empty() {
                return Err(wrong());
            }
            Prepared::Raw
        }
        KeyType::Ed25519 => {
            if key.len() != 64 {
                return Err(wrong());
            }
            if derived {
                Prepared::Raw
            } else {
                Prepared::Ed25519(
                    Ed25519KeyPair::from_seed_and_public_key(&key[..32], &key[32..])
                        .map_err(|_| wrong())?,
                )
            }
        }
        KeyType::EcdsaP256 | KeyType::EcdsaP384 | KeyType::EcdsaP521 => {
            Prepared::Ecdsa(EcdsaKeyPair::from_pkcs8(ecdsa_signing(t), key).map_err(|_| wrong())?)
        }
        KeyType::Rsa2048 | KeyType::Rsa3072 | KeyType::Rsa4096 => {
            let kp = RsaKeyPair::from_pkcs8(key)
                .or_else(|_| RsaKeyPair::from_der(key))
                .map_err(|_| wrong())?;
            let bits = kp.public_modulus_len() * 8;
            let want = match t {
                KeyType::Rsa2048 => 2048,
                KeyType::Rsa3072 => 3072,
                _ => 4096,
            };
            if bits != want {
                return Err(bad(format!(
                    "the key is {bits} bits long, not the {want} bits of {}",
                    t.name()
                )));
            }
            Prepared::Rsa(kp)
        }
    })
}

impl Version {
    /// Loads a stored version of a key of type `t`.
    pub(crate) fn load(t: KeyType, derived: bool, number: u32, r: &VersionRecord) -> Result<Self> {
        let corrupt = || internal(format!("stored key version {number} is unreadable"));
        let key = unb64_secret(&r.key).ok_or_else(corrupt)?;
        let hmac_key = unb64_secret(&r.hmac_key).ok_or_else(corrupt)?;
        let prepared = prepare(t, derived, &key).map_err(|_| corrupt())?;
        Ok(Version {
            number,
            created: r.creation_time.clone(),
            key,
            hmac_key,
            prepared,
        })
    }

    /// A new version from material, with a fresh HMAC key.
    pub(crate) fn record(key: &[u8], created: String) -> Result<VersionRecord> {
        Ok(VersionRecord {
            key: b64(key),
            hmac_key: b64(&random(32)?),
            creation_time: created,
        })
    }

    /// The public key as Vault shows it: base64 of the raw key for Ed25519, PEM (PKIX) for
    /// ECDSA and RSA; `None` for symmetric and derived keys.
    pub(crate) fn public_key(&self) -> Option<String> {
        match &self.prepared {
            Prepared::Ed25519(kp) => Some(b64(kp.public_key().as_ref())),
            Prepared::Ecdsa(kp) => kp
                .public_key()
                .as_der()
                .ok()
                .map(|d| pem("PUBLIC KEY", d.as_ref())),
            Prepared::Rsa(kp) => kp
                .public_key()
                .as_der()
                .ok()
                .map(|d| pem("PUBLIC KEY", d.as_ref())),
            _ => None,
        }
    }

    /// The raw public key bytes for verification: Ed25519's 32 bytes, ECDSA's uncompressed
    /// point, RSA's PKCS#1 `RSAPublicKey`.
    pub(crate) fn public_raw(&self) -> Option<Vec<u8>> {
        match &self.prepared {
            Prepared::Ed25519(kp) => Some(kp.public_key().as_ref().to_vec()),
            Prepared::Ecdsa(kp) => Some(kp.public_key().as_ref().to_vec()),
            Prepared::Rsa(kp) => Some(kp.public_key().as_ref().to_vec()),
            _ => None,
        }
    }
}
