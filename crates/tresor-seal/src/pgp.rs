//! Encrypting key shares and tokens to OpenPGP public keys, as Vault does for `pgp_keys`
//! (init, rekey), `recovery_pgp_keys` and `pgp_key` (generate-root), and computing the key
//! fingerprints Vault reports back (`pgp_fingerprints`, `pgp_fingerprint`).
//!
//! # Input
//! Each entry is a base64-encoded BINARY OpenPGP transferable public key — what
//! `gpg --export KEYID | base64` prints. Line breaks and other whitespace inside the base64
//! (the `base64` tool wraps at 76 columns) are ignored, as Go's decoder ignores them. Entries
//! of the form `keybase:<user>` name a key on Keybase, which Tresor cannot reach: they are
//! refused with [`PgpError::KeybaseUnsupported`] rather than looked up.
//!
//! # Output
//! A binary (non-armored) OpenPGP message: one PKESK v3 packet to the chosen encryption key,
//! then a SEIPD v1 (integrity-protected, AES-256) packet holding a binary literal data packet.
//! That is the RFC 4880 form every GnuPG since 2.0 decrypts, including Debian 12's 2.2; SEIPD
//! v2 (AEAD) is avoided because GnuPG 2.2 cannot open it. The caller chooses the text encoding
//! of the result (Vault returns hex and base64 for shares, base64 for tokens).
//!
//! # Which key receives the message
//! Following the usual OpenPGP rule: among the subkeys whose binding signature verifies, that
//! are not revoked or expired, whose algorithm can encrypt and whose key flags allow
//! encryption (or carry no usage flags at all), the most recently created one; failing that,
//! the primary key if its own self-signature allows encryption. The primary key itself must
//! carry at least one valid self-signature and must not be revoked or expired.

use std::time::{SystemTime, UNIX_EPOCH};

use ::pgp::composed::{Deserializable, MessageBuilder, SignedPublicKey, SignedPublicSubKey};
use ::pgp::crypto::sym::SymmetricKeyAlgorithm;
use ::pgp::packet::{Signature, SignatureType};
use ::pgp::types::{KeyDetails, Tag};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use thiserror::Error;
use zeroize::Zeroizing;

use crate::random::AwsLcRng;

/// Why a PGP key could not be used. Messages name the problem, never the plaintext.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PgpError {
    /// A `keybase:` entry: Tresor has no route to Keybase.
    #[error("keybase keys are not supported: supply the base64-encoded public key instead")]
    KeybaseUnsupported,
    /// The entry is empty.
    #[error("pgp key is empty")]
    Empty,
    /// The entry is not base64.
    #[error("pgp key is not valid base64: {0}")]
    InvalidBase64(String),
    /// The bytes are not an OpenPGP public key.
    #[error("error parsing pgp public key: {0}")]
    InvalidKey(String),
    /// No self-signature of the primary key verifies.
    #[error("pgp key has no valid self-signature")]
    NoValidSelfSignature,
    /// The primary key has been revoked.
    #[error("pgp key {fingerprint} is revoked")]
    Revoked {
        /// Fingerprint of the key, lowercase hex.
        fingerprint: String,
    },
    /// The primary key has expired.
    #[error("pgp key {fingerprint} has expired")]
    Expired {
        /// Fingerprint of the key, lowercase hex.
        fingerprint: String,
    },
    /// Neither a subkey nor the primary key may be used for encryption.
    #[error("pgp key {fingerprint} has no valid encryption key")]
    NoEncryptionKey {
        /// Fingerprint of the key, lowercase hex.
        fingerprint: String,
    },
    /// rPGP refused to build the message.
    #[error("error encrypting to pgp key: {0}")]
    Encryption(String),
}

/// Encrypts `plaintext` to the public key in `public_key_b64` (base64 of a binary OpenPGP
/// key, as Vault's `pgp_keys` entries) and returns the binary OpenPGP message.
///
/// # Errors
/// [`PgpError::KeybaseUnsupported`] for `keybase:` entries; parsing errors; a revoked or
/// expired key; no usable encryption (sub)key; an encryption failure.
pub fn encrypt_to_key(public_key_b64: &str, plaintext: &[u8]) -> Result<Vec<u8>, PgpError> {
    let key = parse_key(public_key_b64)?;
    let now = unix_now();
    check_primary(&key, now)?;
    let recipient = select_recipient(&key, now)?;

    let mut rng = AwsLcRng;
    // rPGP holds the plaintext as `Bytes`; owning it through `Zeroizing` wipes that copy when
    // the builder is done with it.
    let owned = ::pgp::bytes::Bytes::from_owner(Zeroizing::new(plaintext.to_vec()));
    let mut builder =
        MessageBuilder::from_bytes("", owned).seipd_v1(&mut rng, SymmetricKeyAlgorithm::AES256);
    let added = match recipient {
        Recipient::Subkey(subkey) => builder.encrypt_to_key(&mut rng, subkey),
        Recipient::Primary => builder.encrypt_to_key(&mut rng, &key.primary_key),
    };
    added.map_err(|err| PgpError::Encryption(err.to_string()))?;
    builder
        .to_vec(rng)
        .map_err(|err| PgpError::Encryption(err.to_string()))
}

/// The fingerprint of the primary key in `public_key_b64`, as lowercase hex (40 characters for
/// a v4 key), as Vault returns it in `pgp_fingerprints`.
///
/// # Errors
/// [`PgpError::KeybaseUnsupported`] for `keybase:` entries; parsing errors.
pub fn fingerprint(public_key_b64: &str) -> Result<String, PgpError> {
    let key = parse_key(public_key_b64)?;
    Ok(fingerprint_of(&key))
}

fn fingerprint_of(key: &SignedPublicKey) -> String {
    hex::encode(key.primary_key.fingerprint().as_bytes())
}

fn parse_key(public_key_b64: &str) -> Result<SignedPublicKey, PgpError> {
    let entry = public_key_b64.trim();
    if entry.starts_with("keybase:") {
        return Err(PgpError::KeybaseUnsupported);
    }
    let compact: String = entry.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    if compact.is_empty() {
        return Err(PgpError::Empty);
    }
    let bytes = STANDARD
        .decode(compact.as_bytes())
        .map_err(|err| PgpError::InvalidBase64(err.to_string()))?;
    SignedPublicKey::from_bytes(bytes.as_slice())
        .map_err(|err| PgpError::InvalidKey(err.to_string()))
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Whether a component created at `created` with validity `expires_after` seconds (0 or absent
/// meaning "never") has expired at `now`.
fn expired(created: u32, expires_after: Option<u32>, now: u64) -> bool {
    match expires_after {
        Some(secs) if secs > 0 => u64::from(created) + u64::from(secs) <= now,
        _ => false,
    }
}

fn newest<'a>(signatures: impl Iterator<Item = &'a Signature>) -> Option<&'a Signature> {
    signatures.max_by_key(|sig| sig.created().map(|t| t.as_secs()).unwrap_or(0))
}

/// The newest self-signature over the primary key (direct-key or user id certification) that
/// verifies.
fn primary_self_signature(key: &SignedPublicKey) -> Option<&Signature> {
    let primary = &key.primary_key;
    let direct = key
        .details
        .direct_signatures
        .iter()
        .filter(|sig| sig.typ() == Some(SignatureType::Key) && sig.verify_key(primary).is_ok());
    let certifications = key.details.users.iter().flat_map(|user| {
        user.signatures.iter().filter(move |sig| {
            sig.verify_certification(primary, Tag::UserId, &user.id)
                .is_ok()
        })
    });
    newest(direct.chain(certifications))
}

fn check_primary(key: &SignedPublicKey, now: u64) -> Result<(), PgpError> {
    let primary = &key.primary_key;
    let self_sig = primary_self_signature(key).ok_or(PgpError::NoValidSelfSignature)?;
    let revoked = key.details.revocation_signatures.iter().any(|sig| {
        sig.typ() == Some(SignatureType::KeyRevocation) && sig.verify_key(primary).is_ok()
    });
    if revoked {
        return Err(PgpError::Revoked {
            fingerprint: fingerprint_of(key),
        });
    }
    let expires_after = self_sig.key_expiration_time().map(|d| d.as_secs());
    if expired(primary.created_at().as_secs(), expires_after, now) {
        return Err(PgpError::Expired {
            fingerprint: fingerprint_of(key),
        });
    }
    Ok(())
}

enum Recipient<'a> {
    Subkey(&'a SignedPublicSubKey),
    Primary,
}

/// Whether a (self- or binding) signature's key flags allow encryption. A signature with no
/// usage flags at all leaves the decision to the key's algorithm.
fn flags_allow_encryption(sig: &Signature) -> bool {
    let flags = sig.key_flags();
    let any_usage = flags.certify()
        || flags.sign()
        || flags.encrypt_comms()
        || flags.encrypt_storage()
        || flags.authentication();
    !any_usage || flags.encrypt_comms() || flags.encrypt_storage()
}

fn usable_subkey(key: &SignedPublicKey, subkey: &SignedPublicSubKey, now: u64) -> bool {
    let primary = &key.primary_key;
    if !subkey.key.algorithm().can_encrypt() {
        return false;
    }
    let verified = |typ: SignatureType| {
        subkey.signatures.iter().filter(move |sig| {
            sig.typ() == Some(typ) && sig.verify_subkey_binding(primary, &subkey.key).is_ok()
        })
    };
    if verified(SignatureType::SubkeyRevocation).next().is_some() {
        return false;
    }
    let Some(binding) = newest(verified(SignatureType::SubkeyBinding)) else {
        return false;
    };
    let expires_after = binding.key_expiration_time().map(|d| d.as_secs());
    flags_allow_encryption(binding)
        && !expired(subkey.key.created_at().as_secs(), expires_after, now)
}

fn select_recipient(key: &SignedPublicKey, now: u64) -> Result<Recipient<'_>, PgpError> {
    let best_subkey = key
        .public_subkeys
        .iter()
        .filter(|subkey| usable_subkey(key, subkey, now))
        .max_by_key(|subkey| subkey.key.created_at().as_secs());
    if let Some(subkey) = best_subkey {
        return Ok(Recipient::Subkey(subkey));
    }
    let primary_allows = key.primary_key.algorithm().can_encrypt()
        && primary_self_signature(key).is_some_and(flags_allow_encryption);
    if primary_allows {
        return Ok(Recipient::Primary);
    }
    Err(PgpError::NoEncryptionKey {
        fingerprint: fingerprint_of(key),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keybase_entries_are_refused_clearly() {
        let err = encrypt_to_key("keybase:jefferai", b"x").expect_err("keybase");
        assert_eq!(err, PgpError::KeybaseUnsupported);
        assert!(err.to_string().contains("keybase"));
        assert_eq!(
            fingerprint("keybase:someone"),
            Err(PgpError::KeybaseUnsupported)
        );
    }

    #[test]
    fn garbage_is_refused() {
        assert_eq!(fingerprint("   "), Err(PgpError::Empty));
        assert!(matches!(
            fingerprint("%%%not base64"),
            Err(PgpError::InvalidBase64(_))
        ));
        // Valid base64 of bytes that are not an OpenPGP key.
        assert!(matches!(
            encrypt_to_key(&STANDARD.encode(b"hello, not a key"), b"x"),
            Err(PgpError::InvalidKey(_))
        ));
    }

    #[test]
    fn expiry_arithmetic() {
        assert!(!expired(1000, None, 5000));
        assert!(!expired(1000, Some(0), 5000));
        assert!(!expired(1000, Some(4001), 5000));
        assert!(expired(1000, Some(4000), 5000));
        assert!(expired(1000, Some(10), 5000));
    }
}
