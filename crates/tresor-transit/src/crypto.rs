//! The cryptography of transit keys: key derivation, AEAD encryption in Vault's ciphertext
//! layout, RSA-OAEP, HMAC, digests, signatures. All on aws-lc-rs (SHA3-224 from `sha3`).

use aws_lc_rs::aead::{self, Aad, LessSafeKey, Nonce, UnboundKey};
use aws_lc_rs::digest::{self, Digest};
use aws_lc_rs::hkdf;
use aws_lc_rs::rsa::{
    OAEP_SHA256_MGF1SHA256, OaepPrivateDecryptingKey, OaepPublicEncryptingKey,
    PrivateDecryptingKey, PublicEncryptingKey,
};
use aws_lc_rs::signature::{self, Ed25519KeyPair, KeyPair, RsaPssSaltLength, UnparsedPublicKey};
use tresor_sdk::Result;
use zeroize::Zeroizing;

use crate::key::{PolicyRecord, Prepared, Version, aead_algorithm};
use crate::keytype::KeyType;
use crate::util::{b64url, bad, ecdsa_der_to_fixed, ecdsa_fixed_to_der, internal, unb64, unb64url};

pub(crate) const NONCE_LEN: usize = 12;

pub(crate) const MISSING_CONTEXT: &str = "missing 'context' for key derivation; the key was created using a derived key, which means additional, per-request information must be included in order to perform operations with the key";

/// HKDF-SHA256 with no salt and the context as info: Vault's key derivation.
pub(crate) fn derive(ikm: &[u8], context: &[u8], len: usize) -> Result<Zeroizing<Vec<u8>>> {
    struct Len(usize);
    impl hkdf::KeyType for Len {
        fn len(&self) -> usize {
            self.0
        }
    }
    let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, &[]).extract(ikm);
    let info = [context];
    let okm = prk
        .expand(&info, Len(len))
        .map_err(|_| internal("key derivation failed"))?;
    let mut out = Zeroizing::new(vec![0u8; len]);
    okm.fill(&mut out)
        .map_err(|_| internal("key derivation failed"))?;
    Ok(out)
}

/// `vault:v<N>:<base64>`, built in one allocation.
pub(crate) fn format_versioned(version: u32, bytes: &[u8]) -> String {
    use base64::Engine as _;
    use std::fmt::Write as _;
    let mut out = String::with_capacity(20 + bytes.len().div_ceil(3) * 4);
    let _ = write!(out, "vault:v{version}:");
    base64::engine::general_purpose::STANDARD.encode_string(bytes, &mut out);
    out
}

/// How many random nonces one call to the generator makes at most.
const NONCE_BLOCK: usize = 128;

/// Random AEAD nonces, drawn from the generator a block at a time: a batch of a thousand
/// items makes eight calls, not a thousand (each call reseeds from the CPU's generator).
/// Nonces are public (they lead the ciphertext) and each is used once.
pub(crate) struct Nonces {
    buf: Vec<u8>,
    next: usize,
    /// How many more nonces the caller expects to ask for (sizes the next block).
    expected: usize,
}

impl Nonces {
    /// For `expected` encryptions (a single request: 1; a batch: its size).
    pub(crate) fn new(expected: usize) -> Nonces {
        Nonces {
            buf: Vec::new(),
            next: 0,
            expected: expected.max(1),
        }
    }

    pub(crate) fn next(&mut self) -> Result<[u8; NONCE_LEN]> {
        if self.next == self.buf.len() {
            let count = self.expected.clamp(1, NONCE_BLOCK);
            self.expected = self.expected.saturating_sub(count);
            self.buf.resize(count * NONCE_LEN, 0);
            aws_lc_rs::rand::fill(&mut self.buf)
                .map_err(|_| internal("the random generator failed"))?;
            self.next = 0;
        }
        let mut n = [0u8; NONCE_LEN];
        n.copy_from_slice(&self.buf[self.next..self.next + NONCE_LEN]);
        self.next += NONCE_LEN;
        Ok(n)
    }
}

/// Splits `vault:v<N>:<rest>` into the version and the rest (undecoded).
pub(crate) fn split_versioned<'a>(s: &'a str, what: &str) -> Result<(u32, &'a str)> {
    let rest = s
        .strip_prefix("vault:")
        .ok_or_else(|| bad(format!("invalid {what}: no prefix")))?;
    let (ver, body) = rest
        .split_once(':')
        .ok_or_else(|| bad(format!("invalid {what}: wrong number of fields")))?;
    let n = ver
        .strip_prefix('v')
        .and_then(|v| v.parse::<u32>().ok())
        .filter(|n| *n > 0)
        .ok_or_else(|| {
            bad(format!(
                "invalid {what}: version number could not be decoded"
            ))
        })?;
    Ok((n, body))
}

/// A ciphertext's version and bytes.
pub(crate) fn parse_ciphertext(s: &str) -> Result<(u32, Vec<u8>)> {
    let (n, body) = split_versioned(s.trim(), "ciphertext")?;
    let bytes =
        unb64(body).ok_or_else(|| bad("invalid ciphertext: could not decode base64 ciphertext"))?;
    Ok((n, bytes))
}

/// Whether ciphertext (or a signature) of version `n` may be used.
pub(crate) fn check_decrypt_version(p: &PolicyRecord, n: u32) -> Result<()> {
    if n < p.min_decryption_version.max(p.min_available_version) {
        return Err(bad(
            "ciphertext or signature version is disallowed by policy (too old)",
        ));
    }
    if n > p.latest_version {
        return Err(bad("invalid ciphertext: version is too new"));
    }
    Ok(())
}

/// The version to encrypt or sign with: the latest, or the one asked for within
/// `[min_encryption_version, latest]`.
pub(crate) fn encryption_version(p: &PolicyRecord, asked: i64) -> Result<u32> {
    if asked == 0 {
        return Ok(p.latest_version);
    }
    let asked = u32::try_from(asked).map_err(|_| bad("invalid key version"))?;
    if asked > p.latest_version {
        return Err(bad(
            "requested version for encryption is higher than the latest key version",
        ));
    }
    if asked < p.min_encryption_version.max(p.min_available_version).max(1) {
        return Err(bad(
            "requested version for encryption is less than the minimum encryption key version",
        ));
    }
    if asked < p.min_decryption_version {
        return Err(bad(
            "requested version for encryption is less than the minimum decryption key version",
        ));
    }
    Ok(asked)
}

/// The AEAD key (and, for convergent keys, the nonce HMAC key) of a version for `context`.
fn aead_keys(
    p: &PolicyRecord,
    t: KeyType,
    v: &Version,
    context: &[u8],
) -> Result<(Option<LessSafeKey>, Zeroizing<Vec<u8>>)> {
    if !p.derived {
        return Ok((None, Zeroizing::new(Vec::new())));
    }
    if context.is_empty() {
        return Err(bad(MISSING_CONTEXT));
    }
    let enc = t.aead_key_len();
    let extra = if p.convergent_encryption { 32 } else { 0 };
    let bytes = derive(&v.key, context, enc + extra)?;
    let key = UnboundKey::new(aead_algorithm(t), &bytes[..enc])
        .map_err(|_| internal("derived key rejected"))?;
    Ok((
        Some(LessSafeKey::new(key)),
        Zeroizing::new(bytes[enc..].to_vec()),
    ))
}

fn prepared_aead(v: &Version) -> Result<&LessSafeKey> {
    match &v.prepared {
        Prepared::Aead(k) => Ok(k),
        _ => Err(internal("key version is not an AEAD key")),
    }
}

/// Encrypts with one version: `nonce || ciphertext || tag` for the AEAD types, Vault's layout;
/// RSA-OAEP (SHA-256) for RSA keys.
#[allow(clippy::too_many_arguments)] // reason: an item's inputs, one per field, and the batch's nonces
pub(crate) fn encrypt(
    p: &PolicyRecord,
    t: KeyType,
    v: &Version,
    plaintext: &[u8],
    context: &[u8],
    nonce: &[u8],
    aad: &[u8],
    nonces: &mut Nonces,
) -> Result<Vec<u8>> {
    if t.is_rsa() {
        return rsa_encrypt(v, plaintext);
    }
    if !t.is_aead() {
        return Err(bad(format!(
            "key type {} does not support encryption",
            t.name()
        )));
    }
    if !nonce.is_empty() {
        return Err(bad("nonce provided when not allowed"));
    }
    let (derived, hmac_key) = aead_keys(p, t, v, context)?;
    let key = match &derived {
        Some(k) => k,
        None => prepared_aead(v)?,
    };
    let mut n = [0u8; NONCE_LEN];
    if p.convergent_encryption {
        let tag = aws_lc_rs::hmac::sign(
            &aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &hmac_key),
            plaintext,
        );
        n.copy_from_slice(&tag.as_ref()[..NONCE_LEN]);
    } else {
        n = nonces.next()?;
    }
    let tag_len = key.algorithm().tag_len();
    let mut out = Vec::with_capacity(NONCE_LEN + plaintext.len() + tag_len);
    out.extend_from_slice(&n);
    out.extend_from_slice(plaintext);
    let tag = key
        .seal_in_place_separate_tag(
            Nonce::assume_unique_for_key(n),
            Aad::from(aad),
            &mut out[NONCE_LEN..],
        )
        .map_err(|_| internal("encryption failed"))?;
    out.extend_from_slice(tag.as_ref());
    Ok(out)
}

/// Decrypts bytes made by [`encrypt`] with the same version.
pub(crate) fn decrypt(
    p: &PolicyRecord,
    t: KeyType,
    v: &Version,
    bytes: &[u8],
    context: &[u8],
    aad: &[u8],
) -> Result<Zeroizing<Vec<u8>>> {
    if t.is_rsa() {
        return rsa_decrypt(v, bytes);
    }
    if !t.is_aead() {
        return Err(bad(format!(
            "key type {} does not support decryption",
            t.name()
        )));
    }
    let (derived, _) = aead_keys(p, t, v, context)?;
    let key = match &derived {
        Some(k) => k,
        None => prepared_aead(v)?,
    };
    // Vault's answers: shorter than a nonce is a length error; a nonce without a whole tag
    // fails authentication like any other altered ciphertext.
    if bytes.len() < NONCE_LEN {
        return Err(bad("invalid ciphertext length"));
    }
    if bytes.len() < NONCE_LEN + aead::MAX_TAG_LEN {
        return Err(bad("cipher: message authentication failed"));
    }
    let nonce = Nonce::try_assume_unique_for_key(&bytes[..NONCE_LEN])
        .map_err(|_| bad("invalid ciphertext: bad nonce"))?;
    let mut body = Zeroizing::new(bytes[NONCE_LEN..].to_vec());
    let len = key
        .open_in_place(nonce, Aad::from(aad), &mut body)
        .map_err(|_| bad("cipher: message authentication failed"))?
        .len();
    body.truncate(len);
    Ok(body)
}

fn rsa_kp(v: &Version) -> Result<&aws_lc_rs::signature::RsaKeyPair> {
    match &v.prepared {
        Prepared::Rsa(kp) => Ok(kp),
        _ => Err(internal("key version is not an RSA key")),
    }
}

fn rsa_encrypt(v: &Version, plaintext: &[u8]) -> Result<Vec<u8>> {
    let kp = rsa_kp(v)?;
    let public = PublicEncryptingKey::from_der(
        aws_lc_rs::encoding::AsDer::<aws_lc_rs::encoding::PublicKeyX509Der>::as_der(
            kp.public_key(),
        )
        .map_err(internal)?
        .as_ref(),
    )
    .map_err(internal)?;
    let oaep = OaepPublicEncryptingKey::new(public).map_err(internal)?;
    if plaintext.len() > oaep.max_plaintext_size(&OAEP_SHA256_MGF1SHA256) {
        return Err(bad("plaintext is too long for this RSA key"));
    }
    let mut out = vec![0u8; oaep.ciphertext_size()];
    let n = oaep
        .encrypt(&OAEP_SHA256_MGF1SHA256, plaintext, &mut out, None)
        .map_err(|_| internal("encryption failed"))?
        .len();
    out.truncate(n);
    Ok(out)
}

fn rsa_decrypt(v: &Version, bytes: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
    let private = PrivateDecryptingKey::from_pkcs8(&v.key).map_err(internal)?;
    let oaep = OaepPrivateDecryptingKey::new(private).map_err(internal)?;
    let mut out = Zeroizing::new(vec![0u8; oaep.min_output_size()]);
    let n = oaep
        .decrypt(&OAEP_SHA256_MGF1SHA256, bytes, &mut out, None)
        .map_err(|_| bad("invalid ciphertext: decryption failed"))?
        .len();
    out.truncate(n);
    Ok(out)
}

/// Vault's hash algorithm names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Hash {
    Sha1,
    Sha224,
    Sha256,
    Sha384,
    Sha512,
    Sha3_224,
    Sha3_256,
    Sha3_384,
    Sha3_512,
}

impl Hash {
    pub(crate) fn parse(s: &str) -> Result<Hash> {
        Ok(match s {
            "sha1" => Hash::Sha1,
            "sha2-224" => Hash::Sha224,
            "" | "sha2-256" => Hash::Sha256,
            "sha2-384" => Hash::Sha384,
            "sha2-512" => Hash::Sha512,
            "sha3-224" => Hash::Sha3_224,
            "sha3-256" => Hash::Sha3_256,
            "sha3-384" => Hash::Sha3_384,
            "sha3-512" => Hash::Sha3_512,
            other => return Err(bad(format!("unsupported hash algorithm {other}"))),
        })
    }

    fn aws(self) -> Option<&'static digest::Algorithm> {
        Some(match self {
            Hash::Sha1 => &digest::SHA1_FOR_LEGACY_USE_ONLY,
            Hash::Sha224 => &digest::SHA224,
            Hash::Sha256 => &digest::SHA256,
            Hash::Sha384 => &digest::SHA384,
            Hash::Sha512 => &digest::SHA512,
            Hash::Sha3_256 => &digest::SHA3_256,
            Hash::Sha3_384 => &digest::SHA3_384,
            Hash::Sha3_512 => &digest::SHA3_512,
            Hash::Sha3_224 => return None,
        })
    }

    pub(crate) fn output_len(self) -> usize {
        match self {
            Hash::Sha1 => 20,
            Hash::Sha224 | Hash::Sha3_224 => 28,
            Hash::Sha256 | Hash::Sha3_256 => 32,
            Hash::Sha384 | Hash::Sha3_384 => 48,
            Hash::Sha512 | Hash::Sha3_512 => 64,
        }
    }

    fn block_len(self) -> usize {
        match self {
            Hash::Sha1 | Hash::Sha224 | Hash::Sha256 => 64,
            Hash::Sha384 | Hash::Sha512 => 128,
            Hash::Sha3_224 => 144,
            Hash::Sha3_256 => 136,
            Hash::Sha3_384 => 104,
            Hash::Sha3_512 => 72,
        }
    }

    pub(crate) fn digest(self, input: &[u8]) -> Vec<u8> {
        use sha3::Digest as _;
        match self.aws() {
            Some(alg) => digest::digest(alg, input).as_ref().to_vec(),
            None => sha3::Sha3_224::digest(input).to_vec(),
        }
    }

    /// HMAC under this hash (RFC 2104).
    pub(crate) fn hmac(self, key: &[u8], input: &[u8]) -> Vec<u8> {
        use aws_lc_rs::hmac as h;
        let alg = match self {
            Hash::Sha1 => Some(h::HMAC_SHA1_FOR_LEGACY_USE_ONLY),
            Hash::Sha224 => Some(h::HMAC_SHA224),
            Hash::Sha256 => Some(h::HMAC_SHA256),
            Hash::Sha384 => Some(h::HMAC_SHA384),
            Hash::Sha512 => Some(h::HMAC_SHA512),
            _ => None,
        };
        if let Some(alg) = alg {
            return h::sign(&h::Key::new(alg, key), input).as_ref().to_vec();
        }
        // SHA-3: the construction by hand (aws-lc-rs's HMAC has no SHA-3).
        let block = self.block_len();
        let mut k = Zeroizing::new(if key.len() > block {
            self.digest(key)
        } else {
            key.to_vec()
        });
        k.resize(block, 0);
        let mut inner = Zeroizing::new(k.iter().map(|b| b ^ 0x36).collect::<Vec<u8>>());
        inner.extend_from_slice(input);
        let ih = self.digest(&inner);
        let mut outer = Zeroizing::new(k.iter().map(|b| b ^ 0x5c).collect::<Vec<u8>>());
        outer.extend_from_slice(&ih);
        self.digest(&outer)
    }

    fn rsa_encoding(
        self,
        pss: bool,
        salt: Salt,
    ) -> Result<&'static signature::RsaSignatureEncoding> {
        if let (true, Salt::Exact(n)) = (pss, salt) {
            return exact_salt::encoding(self, n);
        }
        let max_salt = salt == Salt::Max;
        const PSS_256_MAX: signature::RsaSignatureEncoding =
            signature::RSA_PSS_SHA256.with_pss_salt_length(RsaPssSaltLength::Max);
        const PSS_384_MAX: signature::RsaSignatureEncoding =
            signature::RSA_PSS_SHA384.with_pss_salt_length(RsaPssSaltLength::Max);
        const PSS_512_MAX: signature::RsaSignatureEncoding =
            signature::RSA_PSS_SHA512.with_pss_salt_length(RsaPssSaltLength::Max);
        Ok(match (self, pss, max_salt) {
            (Hash::Sha256, true, true) => &PSS_256_MAX,
            (Hash::Sha384, true, true) => &PSS_384_MAX,
            (Hash::Sha512, true, true) => &PSS_512_MAX,
            (Hash::Sha256, true, false) => &signature::RSA_PSS_SHA256,
            (Hash::Sha384, true, false) => &signature::RSA_PSS_SHA384,
            (Hash::Sha512, true, false) => &signature::RSA_PSS_SHA512,
            (Hash::Sha256, false, _) => &signature::RSA_PKCS1_SHA256,
            (Hash::Sha384, false, _) => &signature::RSA_PKCS1_SHA384,
            (Hash::Sha512, false, _) => &signature::RSA_PKCS1_SHA512,
            _ => return Err(unsupported_rsa_hash(self)),
        })
    }

    fn rsa_params(self, pss: bool, salt: Salt) -> Result<&'static signature::RsaParameters> {
        if let (true, Salt::Exact(n)) = (pss, salt) {
            return exact_salt::params(self, n);
        }
        let max_salt = salt == Salt::Max;
        const PSS_256_MAX: signature::RsaParameters =
            signature::RSA_PSS_2048_8192_SHA256.with_pss_salt_length(RsaPssSaltLength::Max);
        const PSS_384_MAX: signature::RsaParameters =
            signature::RSA_PSS_2048_8192_SHA384.with_pss_salt_length(RsaPssSaltLength::Max);
        const PSS_512_MAX: signature::RsaParameters =
            signature::RSA_PSS_2048_8192_SHA512.with_pss_salt_length(RsaPssSaltLength::Max);
        Ok(match (self, pss, max_salt) {
            (Hash::Sha256, true, true) => &PSS_256_MAX,
            (Hash::Sha384, true, true) => &PSS_384_MAX,
            (Hash::Sha512, true, true) => &PSS_512_MAX,
            (Hash::Sha256, true, false) => &signature::RSA_PSS_2048_8192_SHA256,
            (Hash::Sha384, true, false) => &signature::RSA_PSS_2048_8192_SHA384,
            (Hash::Sha512, true, false) => &signature::RSA_PSS_2048_8192_SHA512,
            (Hash::Sha256, false, _) => &signature::RSA_PKCS1_2048_8192_SHA256,
            (Hash::Sha384, false, _) => &signature::RSA_PKCS1_2048_8192_SHA384,
            (Hash::Sha512, false, _) => &signature::RSA_PKCS1_2048_8192_SHA512,
            _ => return Err(unsupported_rsa_hash(self)),
        })
    }
}

fn unsupported_rsa_hash(h: Hash) -> tresor_sdk::LogicalError {
    bad(format!(
        "hash algorithm {h:?} is not supported for RSA signatures here; use sha2-256, sha2-384 or sha2-512"
    ))
}

/// An RSA-PSS salt length (`salt_length`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Salt {
    /// The longest the key allows when signing (`auto`, `0`; Vault's default); verification
    /// takes the longest or the hash length.
    Max,
    /// The hash's length (`hash`, `-1`, or that number).
    Digest,
    /// Exactly this many bytes (another number, at most what the key allows).
    Exact(u16),
}

/// The encodings of exact salt lengths. aws-lc-rs takes an RSA encoding by `&'static`, so one
/// is made per (hash, length) the first time it is asked for and kept; lengths are bounded
/// by the largest key (a few hundred per hash), so the set is too.
mod exact_salt {
    use std::collections::HashMap;
    use std::sync::LazyLock;

    use aws_lc_rs::signature::{self, RsaParameters, RsaPssSaltLength, RsaSignatureEncoding};
    use parking_lot::Mutex;
    use tresor_sdk::Result;

    use super::{Hash, unsupported_rsa_hash};

    type Cache<T> = LazyLock<Mutex<HashMap<(Hash, u16), &'static T>>>;
    static ENCODINGS: Cache<RsaSignatureEncoding> = LazyLock::new(Default::default);
    static PARAMS: Cache<RsaParameters> = LazyLock::new(Default::default);

    pub(super) fn encoding(h: Hash, n: u16) -> Result<&'static RsaSignatureEncoding> {
        let base = match h {
            Hash::Sha256 => signature::RSA_PSS_SHA256,
            Hash::Sha384 => signature::RSA_PSS_SHA384,
            Hash::Sha512 => signature::RSA_PSS_SHA512,
            _ => return Err(unsupported_rsa_hash(h)),
        };
        Ok(*ENCODINGS.lock().entry((h, n)).or_insert_with(|| {
            Box::leak(Box::new(
                base.with_pss_salt_length(RsaPssSaltLength::Custom(n)),
            ))
        }))
    }

    pub(super) fn params(h: Hash, n: u16) -> Result<&'static RsaParameters> {
        let base = match h {
            Hash::Sha256 => signature::RSA_PSS_2048_8192_SHA256,
            Hash::Sha384 => signature::RSA_PSS_2048_8192_SHA384,
            Hash::Sha512 => signature::RSA_PSS_2048_8192_SHA512,
            _ => return Err(unsupported_rsa_hash(h)),
        };
        Ok(*PARAMS.lock().entry((h, n)).or_insert_with(|| {
            Box::leak(Box::new(
                base.with_pss_salt_length(RsaPssSaltLength::Custom(n)),
            ))
        }))
    }
}

/// An exact RSA-PSS salt must fit the key: at most emLen - hLen - 2 bytes (RFC 8017, 9.1.1).
fn check_salt(o: &SignOpts, modulus_len: usize) -> Result<()> {
    if let (true, Salt::Exact(n)) = (o.pss, o.salt) {
        let max = modulus_len.saturating_sub(o.hash.output_len() + 2);
        if usize::from(n) > max {
            return Err(bad(format!(
                "invalid salt_length {n}: at most {max} for this key and hash"
            )));
        }
    }
    Ok(())
}

/// How a signature is made and checked.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SignOpts {
    pub hash: Hash,
    pub prehashed: bool,
    /// RSA: PSS (else PKCS#1 v1.5).
    pub pss: bool,
    /// RSA-PSS salt length.
    pub salt: Salt,
    /// ECDSA: `r || s` (JWS) instead of ASN.1 DER; also base64url for the whole signature.
    pub jws: bool,
}

/// The digest of the key's own ECDSA algorithm standing in for `h`: ECDSA uses the leftmost
/// bits of the hash up to the order's size, so a longer hash is cut and a shorter one
/// left-padded with zeros (the same integer).
fn ecdsa_digest(t: KeyType, h: &[u8]) -> Result<Digest> {
    let alg = match t {
        KeyType::EcdsaP384 => &digest::SHA384,
        KeyType::EcdsaP521 => &digest::SHA512,
        _ => &digest::SHA256,
    };
    let len = alg.output_len();
    let mut buf = vec![0u8; len];
    if h.len() >= len {
        buf.copy_from_slice(&h[..len]);
    } else {
        buf[len - h.len()..].copy_from_slice(h);
    }
    Digest::import_less_safe(&buf, alg).map_err(|_| internal("digest import failed"))
}

fn digest_of(o: &SignOpts, input: &[u8]) -> Result<Vec<u8>> {
    if o.prehashed {
        if input.len() != o.hash.output_len() {
            return Err(bad(format!(
                "the prehashed input is {} bytes long, not the {} bytes of the hash algorithm",
                input.len(),
                o.hash.output_len()
            )));
        }
        Ok(input.to_vec())
    } else {
        Ok(o.hash.digest(input))
    }
}

fn ed25519_for(p: &PolicyRecord, v: &Version, context: &[u8]) -> Result<Option<Ed25519KeyPair>> {
    if !p.derived {
        return Ok(None);
    }
    if context.is_empty() {
        return Err(bad(MISSING_CONTEXT));
    }
    let seed = derive(&v.key, context, 32)?;
    Ed25519KeyPair::from_seed_unchecked(&seed)
        .map(Some)
        .map_err(|_| internal("derived key rejected"))
}

/// Signs `input` with one version; the signature as Vault shows it (`vault:v<N>:...`).
pub(crate) fn sign(
    p: &PolicyRecord,
    t: KeyType,
    v: &Version,
    input: &[u8],
    context: &[u8],
    o: &SignOpts,
) -> Result<String> {
    let fail = |_| internal("signing failed");
    let sig: Vec<u8> = match &v.prepared {
        _ if t == KeyType::Ed25519 => {
            if o.prehashed {
                return Err(bad("ed25519 keys do not sign prehashed input"));
            }
            let derived = ed25519_for(p, v, context)?;
            let kp = match (&derived, &v.prepared) {
                (Some(kp), _) => kp,
                (None, Prepared::Ed25519(kp)) => kp,
                _ => return Err(internal("not an ed25519 key")),
            };
            kp.sign(input).as_ref().to_vec()
        }
        Prepared::Ecdsa(kp) => {
            let d = ecdsa_digest(t, &digest_of(o, input)?)?;
            let der = kp.sign_digest(&d).map_err(fail)?;
            if o.jws {
                ecdsa_der_to_fixed(der.as_ref(), ec_half(t))
                    .ok_or_else(|| internal("bad signature"))?
            } else {
                der.as_ref().to_vec()
            }
        }
        Prepared::Rsa(kp) => {
            check_salt(o, kp.public_modulus_len())?;
            let enc = o.hash.rsa_encoding(o.pss, o.salt)?;
            let mut sig = vec![0u8; kp.public_modulus_len()];
            if o.prehashed {
                let alg = match o.hash {
                    Hash::Sha384 => &digest::SHA384,
                    Hash::Sha512 => &digest::SHA512,
                    _ => &digest::SHA256,
                };
                let d = Digest::import_less_safe(&digest_of(o, input)?, alg)
                    .map_err(|_| internal("digest import failed"))?;
                kp.sign_digest(enc, &d, &mut sig).map_err(fail)?;
            } else {
                kp.sign(enc, &aws_lc_rs::rand::SystemRandom::new(), input, &mut sig)
                    .map_err(fail)?;
            }
            sig
        }
        _ => {
            return Err(bad(format!(
                "key type {} does not support signing",
                t.name()
            )));
        }
    };
    Ok(if o.jws {
        format!("vault:v{}:{}", v.number, b64url(&sig))
    } else {
        format_versioned(v.number, &sig)
    })
}

fn ec_half(t: KeyType) -> usize {
    match t {
        KeyType::EcdsaP384 => 48,
        KeyType::EcdsaP521 => 66,
        _ => 32,
    }
}

/// The signature bytes of a `vault:v<N>:...` signature (base64url for JWS).
pub(crate) fn signature_bytes(body: &str, jws: bool) -> Result<Vec<u8>> {
    let decoded = if jws { unb64url(body) } else { unb64(body) };
    decoded.ok_or_else(|| bad("invalid signature: could not decode base64"))
}

/// Checks a signature made by version `v`.
pub(crate) fn verify(
    p: &PolicyRecord,
    t: KeyType,
    v: &Version,
    input: &[u8],
    sig: &[u8],
    context: &[u8],
    o: &SignOpts,
) -> Result<bool> {
    Ok(match t {
        KeyType::Ed25519 => {
            if o.prehashed {
                return Err(bad("ed25519 keys do not sign prehashed input"));
            }
            let public = match ed25519_for(p, v, context)? {
                Some(kp) => kp.public_key().as_ref().to_vec(),
                None => v.public_raw().ok_or_else(|| internal("no public key"))?,
            };
            UnparsedPublicKey::new(&signature::ED25519, &public)
                .verify(input, sig)
                .is_ok()
        }
        KeyType::EcdsaP256 | KeyType::EcdsaP384 | KeyType::EcdsaP521 => {
            let der = if o.jws {
                match ecdsa_fixed_to_der(sig) {
                    Some(d) => d,
                    None => return Ok(false),
                }
            } else {
                sig.to_vec()
            };
            let alg: &'static signature::EcdsaVerificationAlgorithm = match t {
                KeyType::EcdsaP384 => &signature::ECDSA_P384_SHA384_ASN1,
                KeyType::EcdsaP521 => &signature::ECDSA_P521_SHA512_ASN1,
                _ => &signature::ECDSA_P256_SHA256_ASN1,
            };
            let d = ecdsa_digest(t, &digest_of(o, input)?)?;
            let public = v.public_raw().ok_or_else(|| internal("no public key"))?;
            UnparsedPublicKey::new(alg, &public)
                .verify_digest(&d, &der)
                .is_ok()
        }
        KeyType::Rsa2048 | KeyType::Rsa3072 | KeyType::Rsa4096 => {
            let public = v.public_raw().ok_or_else(|| internal("no public key"))?;
            let salts: &[Salt] = match o.salt {
                Salt::Max if o.pss => &[Salt::Max, Salt::Digest],
                Salt::Exact(_) if o.pss => std::slice::from_ref(&o.salt),
                _ => &[Salt::Digest],
            };
            let mut ok = false;
            for &salt in salts {
                let params = o.hash.rsa_params(o.pss, salt)?;
                let key = UnparsedPublicKey::new(params, &public);
                ok = if o.prehashed {
                    let alg = match o.hash {
                        Hash::Sha384 => &digest::SHA384,
                        Hash::Sha512 => &digest::SHA512,
                        _ => &digest::SHA256,
                    };
                    let d = Digest::import_less_safe(&digest_of(o, input)?, alg)
                        .map_err(|_| internal("digest import failed"))?;
                    key.verify_digest(&d, sig).is_ok()
                } else {
                    key.verify(input, sig).is_ok()
                };
                if ok {
                    break;
                }
            }
            ok
        }
        _ => {
            return Err(bad(format!(
                "key type {} does not support verification",
                t.name()
            )));
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hkdf_matches_rfc5869_case_3() {
        // RFC 5869 test case 3: SHA-256, no salt, no info.
        let ikm = [0x0bu8; 22];
        let okm = derive(&ikm, &[], 42).unwrap();
        assert_eq!(
            hex::encode(&*okm),
            "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8"
        );
    }

    #[test]
    fn sha3_hmac_matches_known_answer() {
        // NIST HMAC-SHA3-256 example 1 (key = 0x00..0x1f, message "Sample message for keylen<blocklen").
        let key: Vec<u8> = (0u8..32).collect();
        let mac = Hash::Sha3_256.hmac(&key, b"Sample message for keylen<blocklen");
        assert_eq!(
            hex::encode(mac),
            "4fe8e202c4f058e8dddc23d8c34e467343e23555e24fc2f025d598f558f67205"
        );
    }

    /// Nonces drawn a block at a time are still all different, across block boundaries.
    #[test]
    fn batch_nonces_are_distinct_across_blocks() {
        let mut n = Nonces::new(3 * NONCE_BLOCK + 5);
        let mut seen = std::collections::HashSet::new();
        for _ in 0..3 * NONCE_BLOCK + 5 {
            assert!(seen.insert(n.next().unwrap()), "a nonce repeated");
        }
        // Asking past the expected count keeps working (one more block).
        assert!(seen.insert(n.next().unwrap()));
    }

    #[test]
    fn versioned_format_is_vaults() {
        assert_eq!(format_versioned(12, b"hi!"), "vault:v12:aGkh");
        assert_eq!(format_versioned(1, b""), "vault:v1:");
    }

    #[test]
    fn ciphertext_prefix_rules() {
        assert!(parse_ciphertext("vault:v1:AAAA").is_ok());
        for bad in [
            "v1:AAAA",
            "vault:1:AAAA",
            "vault:v0:AAAA",
            "vault:vX",
            "vault:v1:!!",
        ] {
            assert!(parse_ciphertext(bad).is_err(), "{bad}");
        }
    }
}
