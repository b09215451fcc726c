//! Private keys: generation (RSA 2048/3072/4096, EC P-256/P-384/P-521, Ed25519), parsing of
//! PKCS#8, PKCS#1 and SEC1 keys in PEM or DER, signing, and export in Vault's formats. All of
//! it through aws-lc-rs. Key material lives in zeroizing buffers and never appears in `Debug`.

use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _, RsaKeyPair};
use der::asn1::{Any, OctetString};
use der::oid::ObjectIdentifier;
use der::{Decode, Encode};
use serde::{Deserialize, Serialize};
use x509_cert::spki::AlgorithmIdentifierOwned;
use zeroize::Zeroizing;

use crate::pem;

/// The algorithm family of a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyType {
    Rsa,
    Ec,
    Ed25519,
}

impl KeyType {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyType::Rsa => "rsa",
            KeyType::Ec => "ec",
            KeyType::Ed25519 => "ed25519",
        }
    }
}

/// A key type with its size: RSA modulus bits, EC curve bits (256 = NIST P-256), 0 for
/// Ed25519.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeySpec {
    pub kind: KeyType,
    pub bits: u32,
}

/// Errors about keys. Messages never contain key material.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyError {
    #[error("unknown key_type {0:?}: expected rsa, ec or ed25519")]
    UnknownType(String),
    #[error("unsupported key_bits {bits} for key_type {kind}")]
    UnsupportedBits { kind: &'static str, bits: i64 },
    #[error("key generation failed")]
    Generation,
    #[error("unable to parse private key: {0}")]
    Parse(&'static str),
    #[error("signing failed")]
    Signing,
}

impl KeySpec {
    /// Resolves Vault's `key_type`/`key_bits` pair; `key_bits` 0 takes the type's default
    /// (RSA 2048, EC 256). EC 256 is NIST P-256 (secp256r1), never secp256k1.
    pub fn resolve(key_type: &str, key_bits: i64) -> Result<KeySpec, KeyError> {
        let kind = match key_type.trim().to_ascii_lowercase().as_str() {
            "rsa" => KeyType::Rsa,
            "ec" | "ecdsa" => KeyType::Ec,
            "ed25519" => KeyType::Ed25519,
            other => return Err(KeyError::UnknownType(other.to_owned())),
        };
        let bits = match (kind, key_bits) {
            (KeyType::Rsa, 0) => 2048,
            (KeyType::Rsa, b @ (2048 | 3072 | 4096)) => b as u32,
            (KeyType::Ec, 0) => 256,
            (KeyType::Ec, b @ (256 | 384 | 521)) => b as u32,
            (KeyType::Ed25519, _) => 0,
            (k, b) => {
                return Err(KeyError::UnsupportedBits {
                    kind: k.as_str(),
                    bits: b,
                });
            }
        };
        Ok(KeySpec { kind, bits })
    }
}

/// The hash a signature uses, from Vault's `signature_bits`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SigAlg {
    RsaSha256,
    RsaSha384,
    RsaSha512,
    EcdsaSha256,
    EcdsaSha384,
    EcdsaSha512,
    Ed25519,
}

const OID_RSA_ENCRYPTION: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
const OID_EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const OID_ED25519: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.112");
const OID_P256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
const OID_P384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.34");
const OID_P521: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.35");

impl SigAlg {
    pub fn oid(self) -> ObjectIdentifier {
        ObjectIdentifier::new_unwrap(match self {
            SigAlg::RsaSha256 => "1.2.840.113549.1.1.11",
            SigAlg::RsaSha384 => "1.2.840.113549.1.1.12",
            SigAlg::RsaSha512 => "1.2.840.113549.1.1.13",
            SigAlg::EcdsaSha256 => "1.2.840.10045.4.3.2",
            SigAlg::EcdsaSha384 => "1.2.840.10045.4.3.3",
            SigAlg::EcdsaSha512 => "1.2.840.10045.4.3.4",
            SigAlg::Ed25519 => "1.3.101.112",
        })
    }

    /// The AlgorithmIdentifier for certificates, CRLs and OCSP responses (RSA carries an
    /// explicit NULL parameter, ECDSA and Ed25519 none).
    pub fn identifier(self) -> AlgorithmIdentifierOwned {
        let parameters = match self {
            SigAlg::RsaSha256 | SigAlg::RsaSha384 | SigAlg::RsaSha512 => Some(Any::null()),
            _ => None,
        };
        AlgorithmIdentifierOwned {
            oid: self.oid(),
            parameters,
        }
    }

    /// Vault's name for the algorithm (`revocation_signature_algorithm`).
    pub fn vault_name(self) -> &'static str {
        match self {
            SigAlg::RsaSha256 => "SHA256WithRSA",
            SigAlg::RsaSha384 => "SHA384WithRSA",
            SigAlg::RsaSha512 => "SHA512WithRSA",
            SigAlg::EcdsaSha256 => "ECDSAWithSHA256",
            SigAlg::EcdsaSha384 => "ECDSAWithSHA384",
            SigAlg::EcdsaSha512 => "ECDSAWithSHA512",
            SigAlg::Ed25519 => "PureEd25519",
        }
    }
}

enum Signer {
    Rsa(RsaKeyPair),
    Ec(EcdsaKeyPair),
    Ed(Ed25519KeyPair),
}

/// A private key held in memory: its PKCS#8 encoding (zeroized on drop) and a parsed signer.
pub struct PrivateKey {
    spec: KeySpec,
    pkcs8: Zeroizing<Vec<u8>>,
    signer: Signer,
    spki: Vec<u8>,
}

impl std::fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PrivateKey")
            .field("spec", &self.spec)
            .field("key", &"[redacted]")
            .finish()
    }
}

fn ec_alg(bits: u32) -> &'static signature::EcdsaSigningAlgorithm {
    match bits {
        384 => &signature::ECDSA_P384_SHA384_ASN1_SIGNING,
        521 => &signature::ECDSA_P521_SHA512_ASN1_SIGNING,
        _ => &signature::ECDSA_P256_SHA256_ASN1_SIGNING,
    }
}

/// The minimal PKCS#8 `PrivateKeyInfo` (v1), to reach the inner PKCS#1 key of an RSA key.
#[derive(der::Sequence)]
struct PrivateKeyInfo {
    version: u8,
    algorithm: AlgorithmIdentifierOwned,
    private_key: OctetString,
}

impl PrivateKey {
    /// Generates a new key.
    pub fn generate(spec: KeySpec) -> Result<PrivateKey, KeyError> {
        let pkcs8: Vec<u8> = match spec.kind {
            KeyType::Rsa => {
                let size = match spec.bits {
                    3072 => KeySize::Rsa3072,
                    4096 => KeySize::Rsa4096,
                    _ => KeySize::Rsa2048,
                };
                let kp = RsaKeyPair::generate(size).map_err(|_| KeyError::Generation)?;
                let der: Pkcs8V1Der<'static> = kp.as_der().map_err(|_| KeyError::Generation)?;
                der.as_ref().to_vec()
            }
            KeyType::Ec => EcdsaKeyPair::generate(ec_alg(spec.bits))
                .and_then(|kp| kp.to_pkcs8v1())
                .map_err(|_| KeyError::Generation)?
                .as_ref()
                .to_vec(),
            KeyType::Ed25519 => Ed25519KeyPair::generate()
                .and_then(|kp| kp.to_pkcs8v1())
                .map_err(|_| KeyError::Generation)?
                .as_ref()
                .to_vec(),
        };
        Self::from_pkcs8(&pkcs8)
    }

    /// Parses a PKCS#8 DER key of any supported type.
    pub fn from_pkcs8(der: &[u8]) -> Result<PrivateKey, KeyError> {
        let der = Zeroizing::new(der.to_vec());
        let info = PrivateKeyInfo::from_der(&der).map_err(|_| KeyError::Parse("not pkcs8"))?;
        let (signer, spec) = if info.algorithm.oid == OID_RSA_ENCRYPTION {
            let kp = RsaKeyPair::from_pkcs8(&der).map_err(|_| KeyError::Parse("bad rsa key"))?;
            let bits = (kp.public_modulus_len() * 8) as u32;
            (
                Signer::Rsa(kp),
                KeySpec {
                    kind: KeyType::Rsa,
                    bits,
                },
            )
        } else if info.algorithm.oid == OID_EC_PUBLIC_KEY {
            let curve = info
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.decode_as::<ObjectIdentifier>().ok())
                .ok_or(KeyError::Parse("ec key without a named curve"))?;
            let bits = match curve {
                c if c == OID_P256 => 256,
                c if c == OID_P384 => 384,
                c if c == OID_P521 => 521,
                _ => return Err(KeyError::Parse("unsupported elliptic curve")),
            };
            let kp = EcdsaKeyPair::from_pkcs8(ec_alg(bits), &der)
                .map_err(|_| KeyError::Parse("bad ec key"))?;
            (
                Signer::Ec(kp),
                KeySpec {
                    kind: KeyType::Ec,
                    bits,
                },
            )
        } else if info.algorithm.oid == OID_ED25519 {
            let kp = Ed25519KeyPair::from_pkcs8_maybe_unchecked(&der)
                .map_err(|_| KeyError::Parse("bad ed25519 key"))?;
            (
                Signer::Ed(kp),
                KeySpec {
                    kind: KeyType::Ed25519,
                    bits: 0,
                },
            )
        } else {
            return Err(KeyError::Parse("unsupported key algorithm"));
        };
        let spki = match &signer {
            Signer::Rsa(kp) => kp.public_key().as_der().map(|d| d.as_ref().to_vec()),
            Signer::Ec(kp) => kp.public_key().as_der().map(|d| d.as_ref().to_vec()),
            Signer::Ed(kp) => kp.public_key().as_der().map(|d| d.as_ref().to_vec()),
        }
        .map_err(|_| KeyError::Parse("cannot encode the public key"))?;
        Ok(PrivateKey {
            spec,
            pkcs8: der,
            signer,
            spki,
        })
    }

    /// Parses one DER key in any of PKCS#8, PKCS#1 (RSA) or SEC1 (EC).
    pub fn from_der_any(der: &[u8]) -> Result<PrivateKey, KeyError> {
        if let Ok(k) = Self::from_pkcs8(der) {
            return Ok(k);
        }
        if let Ok(kp) = RsaKeyPair::from_der(der) {
            let p8: Pkcs8V1Der<'static> =
                kp.as_der().map_err(|_| KeyError::Parse("bad rsa key"))?;
            return Self::from_pkcs8(p8.as_ref());
        }
        for bits in [256, 384, 521] {
            if let Ok(kp) = EcdsaKeyPair::from_private_key_der(ec_alg(bits), der) {
                let doc = kp.to_pkcs8v1().map_err(|_| KeyError::Parse("bad ec key"))?;
                return Self::from_pkcs8(doc.as_ref());
            }
        }
        Err(KeyError::Parse("not a pkcs8, pkcs1 or sec1 private key"))
    }

    /// Parses the first private key block of a PEM text.
    pub fn from_pem(text: &str) -> Result<PrivateKey, KeyError> {
        let blocks = pem::parse_all(text).map_err(|_| KeyError::Parse("malformed pem"))?;
        let block = blocks
            .iter()
            .find(|b| b.label.ends_with("PRIVATE KEY"))
            .ok_or(KeyError::Parse("no private key in pem"))?;
        if block.label.contains("ENCRYPTED") {
            return Err(KeyError::Parse("encrypted private keys are not supported"));
        }
        let der = Zeroizing::new(block.der.clone());
        Self::from_der_any(&der)
    }

    pub fn spec(&self) -> KeySpec {
        self.spec
    }

    pub fn key_type(&self) -> KeyType {
        self.spec.kind
    }

    /// The DER SubjectPublicKeyInfo of the public half.
    pub fn spki_der(&self) -> &[u8] {
        &self.spki
    }

    /// The PKCS#8 DER encoding.
    pub fn pkcs8(&self) -> &[u8] {
        &self.pkcs8
    }

    /// The signature algorithm this key signs with, given Vault's `signature_bits` (RSA only;
    /// ECDSA uses its curve's hash, Ed25519 none).
    pub fn sig_alg(&self, signature_bits: u32) -> SigAlg {
        match (self.spec.kind, self.spec.bits) {
            (KeyType::Rsa, _) => match signature_bits {
                384 => SigAlg::RsaSha384,
                512 => SigAlg::RsaSha512,
                _ => SigAlg::RsaSha256,
            },
            (KeyType::Ec, 384) => SigAlg::EcdsaSha384,
            (KeyType::Ec, 521) => SigAlg::EcdsaSha512,
            (KeyType::Ec, _) => SigAlg::EcdsaSha256,
            (KeyType::Ed25519, _) => SigAlg::Ed25519,
        }
    }

    /// Signs `msg` with `alg` (which must come from [`PrivateKey::sig_alg`]).
    pub fn sign(&self, alg: SigAlg, msg: &[u8]) -> Result<Vec<u8>, KeyError> {
        let rng = SystemRandom::new();
        match &self.signer {
            Signer::Rsa(kp) => {
                let pad: &'static dyn signature::RsaEncoding = match alg {
                    SigAlg::RsaSha384 => &signature::RSA_PKCS1_SHA384,
                    SigAlg::RsaSha512 => &signature::RSA_PKCS1_SHA512,
                    _ => &signature::RSA_PKCS1_SHA256,
                };
                let mut sig = vec![0; kp.public_modulus_len()];
                kp.sign(pad, &rng, msg, &mut sig)
                    .map_err(|_| KeyError::Signing)?;
                Ok(sig)
            }
            Signer::Ec(kp) => kp
                .sign(&rng, msg)
                .map(|s| s.as_ref().to_vec())
                .map_err(|_| KeyError::Signing),
            Signer::Ed(kp) => Ok(kp.sign(msg).as_ref().to_vec()),
        }
    }

    /// The key in Vault's `private_key_format`: `pem` (PKCS#1 for RSA, SEC1 for EC, PKCS#8
    /// for Ed25519, as Vault writes them), `pkcs8` (PEM PKCS#8) or `der` (base64 of the DER
    /// of the `pem` form).
    pub fn export(&self, format: &str) -> Result<Zeroizing<String>, KeyError> {
        use base64::Engine as _;
        let (label, der) = match format {
            "pkcs8" => ("PRIVATE KEY", Zeroizing::new(self.pkcs8.to_vec())),
            _ => self.traditional()?,
        };
        Ok(Zeroizing::new(match format {
            "der" => base64::engine::general_purpose::STANDARD.encode(&*der),
            _ => pem::encode(label, &der),
        }))
    }

    /// The "traditional" encoding: PKCS#1 for RSA, SEC1 for EC, PKCS#8 for Ed25519.
    fn traditional(&self) -> Result<(&'static str, Zeroizing<Vec<u8>>), KeyError> {
        match &self.signer {
            Signer::Rsa(_) => {
                let info = PrivateKeyInfo::from_der(&self.pkcs8)
                    .map_err(|_| KeyError::Parse("not pkcs8"))?;
                Ok((
                    "RSA PRIVATE KEY",
                    Zeroizing::new(info.private_key.as_bytes().to_vec()),
                ))
            }
            Signer::Ec(kp) => {
                let der = kp
                    .private_key()
                    .as_der()
                    .map_err(|_| KeyError::Parse("cannot encode ec key"))?;
                Ok(("EC PRIVATE KEY", Zeroizing::new(der.as_ref().to_vec())))
            }
            Signer::Ed(_) => Ok(("PRIVATE KEY", Zeroizing::new(self.pkcs8.to_vec()))),
        }
    }
}

/// The key type and size of a DER SubjectPublicKeyInfo (from a CSR or a certificate).
pub fn spki_spec(spki_der: &[u8]) -> Option<KeySpec> {
    let spki = x509_cert::spki::SubjectPublicKeyInfoOwned::from_der(spki_der).ok()?;
    if spki.algorithm.oid == OID_RSA_ENCRYPTION {
        let bits = rsa_modulus_bits(spki.subject_public_key.raw_bytes())?;
        Some(KeySpec {
            kind: KeyType::Rsa,
            bits,
        })
    } else if spki.algorithm.oid == OID_EC_PUBLIC_KEY {
        let curve = spki
            .algorithm
            .parameters
            .as_ref()?
            .decode_as::<ObjectIdentifier>()
            .ok()?;
        let bits = match curve {
            c if c == OID_P256 => 256,
            c if c == OID_P384 => 384,
            c if c == OID_P521 => 521,
            _ => return None,
        };
        Some(KeySpec {
            kind: KeyType::Ec,
            bits,
        })
    } else if spki.algorithm.oid == OID_ED25519 {
        Some(KeySpec {
            kind: KeyType::Ed25519,
            bits: 0,
        })
    } else {
        None
    }
}

/// The bit length of the modulus of a DER RSAPublicKey.
fn rsa_modulus_bits(rsa_public_key: &[u8]) -> Option<u32> {
    let mut reader = der::SliceReader::new(rsa_public_key).ok()?;
    use der::Reader;
    let (modulus_bits,) = reader
        .sequence(|r| {
            let m = der::asn1::UintRef::decode(r)?;
            let _e = der::asn1::UintRef::decode(r)?;
            let bytes = m.as_bytes();
            let lead = bytes.first().copied().unwrap_or(0);
            Ok((bytes.len() as u32 * 8 - lead.leading_zeros(),))
        })
        .ok()?;
    Some(modulus_bits)
}

/// The SHA-1 hash of the subjectPublicKey bits: the subject key identifier (RFC 5280 method 1,
/// as Vault computes it) and OCSP's issuerKeyHash.
pub fn key_id(spki_der: &[u8]) -> Vec<u8> {
    let bits = x509_cert::spki::SubjectPublicKeyInfoOwned::from_der(spki_der)
        .map(|s| s.subject_public_key.raw_bytes().to_vec())
        .unwrap_or_default();
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY, &bits)
        .as_ref()
        .to_vec()
}

/// Whether two DER encodings denote the same public key.
pub fn same_public_key(a: &[u8], b: &[u8]) -> bool {
    a == b || {
        let pa = x509_cert::spki::SubjectPublicKeyInfoOwned::from_der(a);
        let pb = x509_cert::spki::SubjectPublicKeyInfoOwned::from_der(b);
        matches!((pa, pb), (Ok(x), Ok(y)) if x.to_der().ok() == y.to_der().ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_vault_key_specs() {
        let ok: &[(&str, i64, KeyType, u32)] = &[
            ("rsa", 0, KeyType::Rsa, 2048),
            ("rsa", 4096, KeyType::Rsa, 4096),
            ("ec", 0, KeyType::Ec, 256),
            ("ec", 256, KeyType::Ec, 256),
            ("ec", 521, KeyType::Ec, 521),
            ("ed25519", 0, KeyType::Ed25519, 0),
        ];
        for (t, b, kind, bits) in ok {
            assert_eq!(
                KeySpec::resolve(t, *b).unwrap(),
                KeySpec {
                    kind: *kind,
                    bits: *bits
                }
            );
        }
        assert!(matches!(
            KeySpec::resolve("rsa", 1024),
            Err(KeyError::UnsupportedBits { .. })
        ));
        assert!(matches!(
            KeySpec::resolve("ec", 255),
            Err(KeyError::UnsupportedBits { .. })
        ));
        assert!(matches!(
            KeySpec::resolve("dsa", 0),
            Err(KeyError::UnknownType(_))
        ));
    }

    #[test]
    fn ec_256_is_nist_p256() {
        let k = PrivateKey::generate(KeySpec::resolve("ec", 256).unwrap()).unwrap();
        let spki = x509_cert::spki::SubjectPublicKeyInfoOwned::from_der(k.spki_der()).unwrap();
        let curve: ObjectIdentifier = spki.algorithm.parameters.unwrap().decode_as().unwrap();
        assert_eq!(curve, OID_P256);
        assert_eq!(spki_spec(k.spki_der()).unwrap().bits, 256);
    }

    #[test]
    fn keys_round_trip_through_every_export_format() {
        for (t, b) in [
            ("ec", 256),
            ("ec", 384),
            ("ec", 521),
            ("ed25519", 0),
            ("rsa", 2048),
        ] {
            let k = PrivateKey::generate(KeySpec::resolve(t, b).unwrap()).unwrap();
            assert_eq!(spki_spec(k.spki_der()), Some(k.spec()), "{t} {b}");
            for fmt in ["pem", "pkcs8"] {
                let text = k.export(fmt).unwrap();
                let back = PrivateKey::from_pem(&text).unwrap();
                assert_eq!(back.spki_der(), k.spki_der(), "{t} {b} {fmt}");
            }
            let pem = k.export("pem").unwrap();
            let want_label = match t {
                "rsa" => "RSA PRIVATE KEY",
                "ec" => "EC PRIVATE KEY",
                _ => "PRIVATE KEY",
            };
            assert!(
                pem.starts_with(&format!("-----BEGIN {want_label}-----")),
                "{t}"
            );
            assert!(!format!("{k:?}").contains(&pem[30..60]));
        }
    }
}
