//! Keys, all private-key work on aws-lc-rs: CA keys (generated, or imported from PKCS#8,
//! PKCS#1, SEC1 or OpenSSH PEM), the certificate signer ssh-key's builder calls (RSA with
//! `rsa-sha2-256`/`rsa-sha2-512`, ECDSA with the curve's hash, Ed25519), the checks on a
//! public key sent for signing, and the key pairs `issue/` generates. Private keys live in
//! zeroizing buffers and never appear in `Debug` or in an error.

use aws_lc_rs::digest;
use aws_lc_rs::encoding::{AsBigEndian, AsDer};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeySize, PublicKeyComponents};
use aws_lc_rs::signature::{
    self as lc_sig, ECDSA_P256_SHA256_FIXED_SIGNING, ECDSA_P384_SHA384_FIXED_SIGNING,
    ECDSA_P521_SHA512_FIXED_SIGNING, EcdsaKeyPair, EcdsaSigningAlgorithm, Ed25519KeyPair,
    KeyPair as _, RsaKeyPair,
};
use ssh_key::private::KeypairData;
use ssh_key::public::{EcdsaPublicKey, Ed25519PublicKey, KeyData, RsaPublicKey};
use ssh_key::{Algorithm, EcdsaCurve, HashAlg, LineEnding, Mpint, PrivateKey, PublicKey};
use zeroize::Zeroizing;

use crate::pem;

/// The algorithm of a key the engine generates or holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Algo {
    Rsa,
    EcP256,
    EcP384,
    EcP521,
    Ed25519,
}

impl Algo {
    /// Vault's `private_key_type` / short name.
    pub fn short_name(self) -> &'static str {
        match self {
            Algo::Rsa => "rsa",
            Algo::EcP256 | Algo::EcP384 | Algo::EcP521 => "ec",
            Algo::Ed25519 => "ed25519",
        }
    }

    fn ec_alg(self) -> &'static EcdsaSigningAlgorithm {
        match self {
            Algo::EcP384 => &ECDSA_P384_SHA384_FIXED_SIGNING,
            Algo::EcP521 => &ECDSA_P521_SHA512_FIXED_SIGNING,
            _ => &ECDSA_P256_SHA256_FIXED_SIGNING,
        }
    }
}

/// A key type and size to generate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeySpec {
    pub algo: Algo,
    pub bits: u32,
}

impl KeySpec {
    /// Resolves Vault's `key_type`/`key_bits`: OpenSSH names (`ssh-rsa`,
    /// `ecdsa-sha2-nistp256`, `ssh-ed25519`) or short ones (`rsa`, `ec`, `ed25519`).
    /// `key_bits` 0 takes `rsa_default` for RSA and P-256 for EC; RSA below 2048 is refused.
    pub fn resolve(key_type: &str, key_bits: i64, rsa_default: u32) -> Result<KeySpec, String> {
        let t = key_type.trim().to_ascii_lowercase();
        let (algo, bits) = match (t.as_str(), key_bits) {
            ("ssh-rsa" | "rsa", 0) => (Algo::Rsa, rsa_default),
            ("ssh-rsa" | "rsa", b @ (2048 | 3072 | 4096)) => (Algo::Rsa, b as u32),
            ("ssh-rsa" | "rsa", b) if b < 2048 => {
                return Err(format!(
                    "refusing to generate a weak RSA key: {b} bits < 2048 bits"
                ));
            }
            ("ssh-rsa" | "rsa", b) => {
                return Err(format!(
                    "unsupported key_bits {b} for RSA: expected 2048, 3072 or 4096"
                ));
            }
            ("ecdsa-sha2-nistp256", 0 | 256) | ("ec" | "ecdsa", 0 | 256) => (Algo::EcP256, 256),
            ("ecdsa-sha2-nistp384", 0 | 384) | ("ec" | "ecdsa", 384) => (Algo::EcP384, 384),
            ("ecdsa-sha2-nistp521", 0 | 521) | ("ec" | "ecdsa", 521) => (Algo::EcP521, 521),
            (
                "ec"
                | "ecdsa"
                | "ecdsa-sha2-nistp256"
                | "ecdsa-sha2-nistp384"
                | "ecdsa-sha2-nistp521",
                b,
            ) => {
                return Err(format!(
                    "unsupported key_bits {b} for key_type {t:?}: expected 256, 384 or 521"
                ));
            }
            ("ssh-ed25519" | "ed25519", _) => (Algo::Ed25519, 0),
            _ => {
                return Err(format!(
                    "unknown key_type {key_type:?}: expected ssh-rsa, ecdsa-sha2-nistp256, ecdsa-sha2-nistp384, ecdsa-sha2-nistp521, ssh-ed25519 (or rsa, ec, ed25519)"
                ));
            }
        };
        Ok(KeySpec { algo, bits })
    }
}

/// The hash an RSA CA signs certificates with (`algorithm_signer`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RsaHash {
    Sha256,
    Sha512,
}

enum Signer {
    Rsa(RsaKeyPair),
    Ec(EcdsaKeyPair),
    Ed(Ed25519KeyPair),
}

/// A CA's private key: its PKCS#8 encoding (zeroized on drop), the parsed signer and the
/// SSH public key.
pub struct CaKey {
    pub algo: Algo,
    pkcs8: Zeroizing<Vec<u8>>,
    signer: Signer,
    public: KeyData,
}

impl std::fmt::Debug for CaKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CaKey")
            .field("algo", &self.algo)
            .field("key", &"[redacted]")
            .finish()
    }
}

fn rsa_public(kp: &RsaKeyPair) -> Result<KeyData, String> {
    let c = PublicKeyComponents::<Vec<u8>>::from(kp.public_key());
    let e = Mpint::from_positive_bytes(&c.e).map_err(|e| e.to_string())?;
    let n = Mpint::from_positive_bytes(&c.n).map_err(|e| e.to_string())?;
    Ok(KeyData::Rsa(RsaPublicKey { e, n }))
}

fn ec_public(point: &[u8]) -> Result<KeyData, String> {
    EcdsaPublicKey::from_sec1_bytes(point)
        .map(KeyData::Ecdsa)
        .map_err(|e| format!("invalid EC public key: {e}"))
}

fn ed_public(bytes: &[u8]) -> Result<KeyData, String> {
    let arr: [u8; 32] = bytes
        .try_into()
        .map_err(|_| "invalid Ed25519 public key".to_owned())?;
    Ok(KeyData::Ed25519(Ed25519PublicKey(arr)))
}

fn ec_algo_of_bits(bits: usize) -> Option<Algo> {
    match bits {
        32 => Some(Algo::EcP256),
        48 => Some(Algo::EcP384),
        66 => Some(Algo::EcP521),
        _ => None,
    }
}

impl CaKey {
    /// Generates a key.
    pub fn generate(spec: KeySpec) -> Result<CaKey, String> {
        let fail = |_| "key generation failed".to_owned();
        let der: Zeroizing<Vec<u8>> = Zeroizing::new(match spec.algo {
            Algo::Rsa => {
                let size = match spec.bits {
                    3072 => KeySize::Rsa3072,
                    4096 => KeySize::Rsa4096,
                    _ => KeySize::Rsa2048,
                };
                let kp = RsaKeyPair::generate(size).map_err(fail)?;
                let der: aws_lc_rs::encoding::Pkcs8V1Der<'static> = kp.as_der().map_err(fail)?;
                der.as_ref().to_vec()
            }
            Algo::Ed25519 => Ed25519KeyPair::generate()
                .and_then(|kp| kp.to_pkcs8v1())
                .map_err(fail)?
                .as_ref()
                .to_vec(),
            ec => EcdsaKeyPair::generate(ec.ec_alg())
                .and_then(|kp| kp.to_pkcs8v1())
                .map_err(fail)?
                .as_ref()
                .to_vec(),
        });
        CaKey::from_pkcs8(spec.algo, der)
    }

    /// A key from its stored PKCS#8 encoding.
    pub fn from_pkcs8(algo: Algo, der: Zeroizing<Vec<u8>>) -> Result<CaKey, String> {
        let bad = |_| "stored CA key does not parse".to_owned();
        let (signer, public) = match algo {
            Algo::Rsa => {
                let kp = RsaKeyPair::from_pkcs8(&der).map_err(bad)?;
                let public = rsa_public(&kp)?;
                (Signer::Rsa(kp), public)
            }
            Algo::Ed25519 => {
                let kp = Ed25519KeyPair::from_pkcs8(&der).map_err(bad)?;
                let public = ed_public(kp.public_key().as_ref())?;
                (Signer::Ed(kp), public)
            }
            ec => {
                let kp = EcdsaKeyPair::from_pkcs8(ec.ec_alg(), &der).map_err(bad)?;
                let public = ec_public(kp.public_key().as_ref())?;
                (Signer::Ec(kp), public)
            }
        };
        Ok(CaKey {
            algo,
            pkcs8: der,
            signer,
            public,
        })
    }

    /// Imports a PEM private key: PKCS#8 (`PRIVATE KEY`), PKCS#1 (`RSA PRIVATE KEY`), SEC1
    /// (`EC PRIVATE KEY`) or an unencrypted OpenSSH key (Ed25519 or ECDSA).
    pub fn import(text: &str) -> Result<CaKey, String> {
        let (label, der) =
            pem::decode(text).ok_or("private_key is not a PEM-encoded private key")?;
        let unparsable = || format!("unable to parse private_key ({label})");
        match label.as_str() {
            "PRIVATE KEY" => {
                if RsaKeyPair::from_pkcs8(&der).is_ok() {
                    return CaKey::from_pkcs8(Algo::Rsa, der);
                }
                if Ed25519KeyPair::from_pkcs8(&der).is_ok() {
                    let kp = Ed25519KeyPair::from_pkcs8(&der).map_err(|_| unparsable())?;
                    let v1 = kp.to_pkcs8v1().map_err(|_| unparsable())?;
                    return CaKey::from_pkcs8(Algo::Ed25519, Zeroizing::new(v1.as_ref().to_vec()));
                }
                for algo in [Algo::EcP256, Algo::EcP384, Algo::EcP521] {
                    if EcdsaKeyPair::from_pkcs8(algo.ec_alg(), &der).is_ok() {
                        return CaKey::from_pkcs8(algo, der);
                    }
                }
                Err(unparsable())
            }
            "RSA PRIVATE KEY" => {
                let kp = RsaKeyPair::from_der(&der).map_err(|_| unparsable())?;
                let p8: aws_lc_rs::encoding::Pkcs8V1Der<'static> =
                    kp.as_der().map_err(|_| unparsable())?;
                CaKey::from_pkcs8(Algo::Rsa, Zeroizing::new(p8.as_ref().to_vec()))
            }
            "EC PRIVATE KEY" => {
                for algo in [Algo::EcP256, Algo::EcP384, Algo::EcP521] {
                    if let Ok(kp) = EcdsaKeyPair::from_private_key_der(algo.ec_alg(), &der) {
                        let p8 = kp.to_pkcs8v1().map_err(|_| unparsable())?;
                        return CaKey::from_pkcs8(algo, Zeroizing::new(p8.as_ref().to_vec()));
                    }
                }
                Err(unparsable())
            }
            "OPENSSH PRIVATE KEY" => Self::import_openssh(text),
            other => Err(format!("unsupported private_key PEM type {other:?}")),
        }
    }

    fn import_openssh(text: &str) -> Result<CaKey, String> {
        let key = PrivateKey::from_openssh(text)
            .map_err(|e| format!("unable to parse private_key: {e}"))?;
        if key.is_encrypted() {
            return Err("private_key is encrypted: import an unencrypted key".into());
        }
        let unparsable = |_| "unable to parse private_key".to_owned();
        match key.key_data() {
            KeypairData::Ed25519(kp) => {
                let seed = Zeroizing::new(kp.private.to_bytes());
                let pair = Ed25519KeyPair::from_seed_and_public_key(&seed[..], &kp.public.0)
                    .map_err(unparsable)?;
                let v1 = pair.to_pkcs8v1().map_err(|_| "unable to parse private_key")?;
                CaKey::from_pkcs8(Algo::Ed25519, Zeroizing::new(v1.as_ref().to_vec()))
            }
            KeypairData::Ecdsa(kp) => {
                let algo = ec_algo_of_bits(kp.private_key_bytes().len())
                    .ok_or("unsupported ECDSA curve")?;
                let pair = EcdsaKeyPair::from_private_key_and_public_key(
                    algo.ec_alg(),
                    kp.private_key_bytes(),
                    kp.public_key_bytes(),
                )
                .map_err(unparsable)?;
                let p8 = pair.to_pkcs8v1().map_err(|_| "unable to parse private_key")?;
                CaKey::from_pkcs8(algo, Zeroizing::new(p8.as_ref().to_vec()))
            }
            KeypairData::Rsa(_) => Err(
                "RSA private keys in OpenSSH format are not supported: convert it with `ssh-keygen -p -m PEM -f KEY` (PKCS#1) and import that"
                    .into(),
            ),
            _ => Err("unsupported private_key type: expected RSA, ECDSA or Ed25519".into()),
        }
    }

    pub fn pkcs8(&self) -> &[u8] {
        &self.pkcs8
    }

    pub fn public_key(&self) -> &KeyData {
        &self.public
    }

    /// The public key in `authorized_keys` form, with a trailing newline (as Vault shows it).
    pub fn public_openssh(&self) -> String {
        let s = PublicKey::new(self.public.clone(), "")
            .to_openssh()
            .unwrap_or_default();
        format!("{}\n", s.trim_end())
    }

    /// A signer for ssh-key's certificate builder, hashing RSA signatures with `rsa_hash`.
    pub fn signer(&self, rsa_hash: RsaHash) -> CertSigner<'_> {
        CertSigner {
            key: self,
            rsa_hash,
        }
    }
}

/// The CA key as ssh-key's certificate builder wants it.
pub struct CertSigner<'a> {
    key: &'a CaKey,
    rsa_hash: RsaHash,
}

/// SSH `mpint` of an unsigned big-endian integer, as ECDSA signature blobs carry r and s.
fn put_mpint(out: &mut Vec<u8>, bytes: &[u8]) {
    let trimmed = {
        let i = bytes.iter().position(|&b| b != 0).unwrap_or(bytes.len());
        &bytes[i..]
    };
    let pad = trimmed.first().is_some_and(|&b| b & 0x80 != 0);
    let len = trimmed.len() + usize::from(pad);
    out.extend_from_slice(&(len as u32).to_be_bytes());
    if pad {
        out.push(0);
    }
    out.extend_from_slice(trimmed);
}

impl signature::Signer<ssh_key::Signature> for CertSigner<'_> {
    fn try_sign(&self, msg: &[u8]) -> Result<ssh_key::Signature, signature::Error> {
        let rng = SystemRandom::new();
        let err = |_| signature::Error::new();
        match &self.key.signer {
            Signer::Ed(kp) => {
                let sig = kp.sign(msg);
                ssh_key::Signature::new(Algorithm::Ed25519, sig.as_ref()).map_err(err)
            }
            Signer::Ec(kp) => {
                let sig = kp.sign(&rng, msg).map_err(|_| signature::Error::new())?;
                let raw = sig.as_ref();
                let (r, s) = raw.split_at(raw.len() / 2);
                let mut blob = Vec::with_capacity(raw.len() + 10);
                put_mpint(&mut blob, r);
                put_mpint(&mut blob, s);
                let curve = match self.key.algo {
                    Algo::EcP384 => EcdsaCurve::NistP384,
                    Algo::EcP521 => EcdsaCurve::NistP521,
                    _ => EcdsaCurve::NistP256,
                };
                ssh_key::Signature::new(Algorithm::Ecdsa { curve }, blob).map_err(err)
            }
            Signer::Rsa(kp) => {
                let (pad, hash): (&'static dyn lc_sig::RsaEncoding, HashAlg) = match self.rsa_hash {
                    RsaHash::Sha256 => (&lc_sig::RSA_PKCS1_SHA256, HashAlg::Sha256),
                    RsaHash::Sha512 => (&lc_sig::RSA_PKCS1_SHA512, HashAlg::Sha512),
                };
                let mut sig = vec![0u8; kp.public_modulus_len()];
                kp.sign(pad, &rng, msg, &mut sig)
                    .map_err(|_| signature::Error::new())?;
                ssh_key::Signature::new(Algorithm::Rsa { hash: Some(hash) }, sig).map_err(err)
            }
        }
    }
}

impl From<&CertSigner<'_>> for KeyData {
    fn from(s: &CertSigner<'_>) -> KeyData {
        s.key.public.clone()
    }
}

/// A public key sent for signing, parsed, with its type and size for the role's checks.
#[derive(Debug, Clone)]
pub struct UserKey {
    pub key: KeyData,
    /// `rsa`, `ec`, `ed25519` (Vault's names in `allowed_user_key_lengths`).
    pub kind: &'static str,
    /// The OpenSSH algorithm name (`ssh-rsa`, `ecdsa-sha2-nistp256`, `ssh-ed25519`).
    pub ssh_name: String,
    /// Modulus bits for RSA, curve bits for ECDSA, 256 for Ed25519.
    pub bits: u32,
}

impl UserKey {
    pub fn parse(text: &str) -> Result<UserKey, String> {
        let key = PublicKey::from_openssh(text.trim())
            .map_err(|e| format!("failed to parse public_key as SSH key: {e}"))?;
        let data = key.key_data().clone();
        let ssh_name = data.algorithm().as_str().to_owned();
        let (kind, bits) = match &data {
            KeyData::Rsa(rsa) => {
                let n = rsa.n.as_positive_bytes().unwrap_or_default();
                let lead = n.first().map_or(0, |b| 8 - b.leading_zeros());
                ("rsa", (n.len().saturating_sub(1) * 8) as u32 + lead)
            }
            KeyData::Ecdsa(ec) => (
                "ec",
                match ec.curve() {
                    EcdsaCurve::NistP256 => 256,
                    EcdsaCurve::NistP384 => 384,
                    EcdsaCurve::NistP521 => 521,
                },
            ),
            KeyData::Ed25519(_) => ("ed25519", 256),
            _ => {
                return Err(format!(
                    "public_key type {ssh_name} is not supported: expected RSA, ECDSA or Ed25519"
                ));
            }
        };
        Ok(UserKey {
            key: data,
            kind,
            ssh_name,
            bits,
        })
    }

    /// The SHA-256 of the key's wire encoding, in hex (`{{public_key_hash}}` in key IDs).
    pub fn hash_hex(&self) -> String {
        let bytes = PublicKey::new(self.key.clone(), "")
            .to_bytes()
            .unwrap_or_default();
        hex::encode(digest::digest(&digest::SHA256, &bytes))
    }
}

/// A key pair made by `issue/`: the private key in PEM (PKCS#1 for RSA, SEC1 for ECDSA,
/// OpenSSH for Ed25519, as ssh reads them all) and its public key.
pub struct IssuedKey {
    pub private_pem: Zeroizing<String>,
    pub public: UserKey,
}

impl std::fmt::Debug for IssuedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedKey")
            .field("public", &self.public.ssh_name)
            .field("private_pem", &"[redacted]")
            .finish()
    }
}

impl IssuedKey {
    pub fn generate(spec: KeySpec) -> Result<IssuedKey, String> {
        let fail = |_| "key generation failed".to_owned();
        let (private_pem, public) = match spec.algo {
            Algo::Rsa => {
                let ca = CaKey::generate(spec)?;
                let inner = pem::pkcs8_inner(ca.pkcs8()).ok_or("key generation failed")?;
                (pem::encode("RSA PRIVATE KEY", inner), ca.public.clone())
            }
            Algo::Ed25519 => {
                let kp = Ed25519KeyPair::generate().map_err(fail)?;
                let seed = kp.seed().map_err(fail)?;
                let seed: aws_lc_rs::encoding::Curve25519SeedBin<'static> =
                    seed.as_be_bytes().map_err(fail)?;
                let seed: [u8; 32] = seed.as_ref().try_into().map_err(|_| "bad seed")?;
                let seed = Zeroizing::new(seed);
                let pair = ssh_key::private::Ed25519Keypair::from_seed(&seed);
                let public = KeyData::Ed25519(pair.public);
                let key =
                    PrivateKey::new(KeypairData::Ed25519(pair), "").map_err(|e| e.to_string())?;
                let pem = key.to_openssh(LineEnding::LF).map_err(|e| e.to_string())?;
                (pem, public)
            }
            ec => {
                let kp = EcdsaKeyPair::generate(ec.ec_alg()).map_err(fail)?;
                let der: aws_lc_rs::encoding::EcPrivateKeyRfc5915Der<'static> =
                    kp.private_key().as_der().map_err(fail)?;
                let public = ec_public(kp.public_key().as_ref())?;
                (pem::encode("EC PRIVATE KEY", der.as_ref()), public)
            }
        };
        let text = PublicKey::new(public, "")
            .to_openssh()
            .map_err(|e| e.to_string())?;
        Ok(IssuedKey {
            private_pem,
            public: UserKey::parse(&text)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_types_resolve_as_vault_names_them() {
        let ok = |t, b| KeySpec::resolve(t, b, 4096).unwrap();
        assert_eq!(
            ok("ssh-rsa", 0),
            KeySpec {
                algo: Algo::Rsa,
                bits: 4096
            }
        );
        assert_eq!(ok("rsa", 2048).bits, 2048);
        assert_eq!(ok("ec", 0).algo, Algo::EcP256);
        assert_eq!(ok("ecdsa-sha2-nistp384", 0).algo, Algo::EcP384);
        assert_eq!(ok("ec", 521).algo, Algo::EcP521);
        assert_eq!(ok("ssh-ed25519", 0).algo, Algo::Ed25519);
        for (t, b, want) in [
            ("rsa", 1024, "weak RSA key"),
            ("rsa", 5000, "unsupported key_bits"),
            ("ec", 255, "unsupported key_bits"),
            ("dsa", 0, "unknown key_type"),
            ("ecdsa-sha2-nistp256", 384, "unsupported key_bits"),
        ] {
            let e = KeySpec::resolve(t, b, 4096).unwrap_err();
            assert!(e.contains(want), "{t}/{b}: {e}");
        }
    }

    #[test]
    fn mpint_pads_high_bits_and_strips_zeros() {
        let mut v = Vec::new();
        put_mpint(&mut v, &[0, 0, 0x80, 1]);
        assert_eq!(v, [0, 0, 0, 3, 0, 0x80, 1]);
        let mut v = Vec::new();
        put_mpint(&mut v, &[0, 0x7f]);
        assert_eq!(v, [0, 0, 0, 1, 0x7f]);
    }

    #[test]
    fn every_ca_algorithm_signs_a_certificate_ssh_key_verifies() {
        for spec in [
            KeySpec {
                algo: Algo::Ed25519,
                bits: 0,
            },
            KeySpec {
                algo: Algo::EcP256,
                bits: 256,
            },
            KeySpec {
                algo: Algo::EcP384,
                bits: 384,
            },
            KeySpec {
                algo: Algo::EcP521,
                bits: 521,
            },
            KeySpec {
                algo: Algo::Rsa,
                bits: 2048,
            },
        ] {
            let ca = CaKey::generate(spec).unwrap();
            // Round trip through storage form.
            let ca = CaKey::from_pkcs8(ca.algo, Zeroizing::new(ca.pkcs8().to_vec())).unwrap();
            let user = IssuedKey::generate(KeySpec {
                algo: Algo::Ed25519,
                bits: 0,
            })
            .unwrap();
            let mut b = ssh_key::certificate::Builder::new(
                [7u8; 16].to_vec(),
                user.public.key.clone(),
                100,
                200,
            )
            .unwrap();
            b.valid_principal("alice").unwrap();
            let cert = b.sign(&ca.signer(RsaHash::Sha256)).unwrap();
            cert.verify_signature().unwrap();
            if spec.algo == Algo::Rsa {
                assert_eq!(cert.signature().algorithm().as_str(), "rsa-sha2-256");
            }
            let fp = ca.public_key().fingerprint(HashAlg::Sha256);
            cert.validate_at(150, [&fp]).unwrap();
        }
    }

    #[test]
    fn imports_pem_and_openssh_keys_and_refuses_garbage() {
        let ec = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).unwrap();
        let sec1: aws_lc_rs::encoding::EcPrivateKeyRfc5915Der<'static> =
            ec.private_key().as_der().unwrap();
        let k = CaKey::import(&pem::encode("EC PRIVATE KEY", sec1.as_ref())).unwrap();
        assert_eq!(k.algo, Algo::EcP256);
        let ed = IssuedKey::generate(KeySpec {
            algo: Algo::Ed25519,
            bits: 0,
        })
        .unwrap();
        let k = CaKey::import(&ed.private_pem).unwrap();
        assert_eq!(k.algo, Algo::Ed25519);
        assert_eq!(k.public_key(), &ed.public.key);
        let rsa = IssuedKey::generate(KeySpec {
            algo: Algo::Rsa,
            bits: 2048,
        })
        .unwrap();
        let k = CaKey::import(&rsa.private_pem).unwrap();
        assert_eq!(k.algo, Algo::Rsa);
        assert_eq!(k.public_key(), &rsa.public.key);
        assert_eq!(rsa.public.bits, 2048);
        assert!(CaKey::import("nonsense").is_err());
        assert!(CaKey::import(&pem::encode("PRIVATE KEY", b"junk")).is_err());
    }
}
