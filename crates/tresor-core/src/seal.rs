//! The Shamir seal: `sys/init`, `sys/unseal`, `sys/seal-status`, rekey and generate-root.
//!
//! The unseal key (a 256-bit AES key) is split into shares and never stored; it only opens the
//! root key blob (see [`crate::barrier`]). Progress of an unseal, rekey or root generation lives
//! in memory only, behind a nonce; a wrong combined key resets the progress.

use serde::{Deserialize, Serialize};
use tresor_seal::{otp, pgp, shamir};
use zeroize::Zeroizing;

use crate::barrier::Key;
use crate::error::CoreError;

pub const SEAL_CONFIG_PATH: &str = "core/seal-config";
pub const REKEY_BACKUP_PATH: &str = "core/rekey-backup";

/// The persisted seal configuration (plaintext: it holds no secret).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SealConfig {
    pub version: u32,
    #[serde(rename = "type")]
    pub kind: String,
    pub secret_shares: usize,
    pub secret_threshold: usize,
    #[serde(default)]
    pub pgp_keys: Vec<String>,
}

/// Validates share parameters with Vault's rules and messages.
pub fn validate_shares(
    shares: usize,
    threshold: usize,
    pgp_keys: &[String],
) -> Result<(), CoreError> {
    let bad = |m: &str| Err(CoreError::InvalidRequest(m.to_owned()));
    if shares == 0 {
        return bad("shares must be at least one");
    }
    if threshold == 0 {
        return bad("threshold must be at least one");
    }
    if shares > 255 {
        return bad("shares must be less than 256");
    }
    if threshold > shares {
        return bad("threshold cannot be larger than shares");
    }
    if shares > 1 && threshold == 1 {
        return bad("threshold must be greater than one for multiple shares");
    }
    if !pgp_keys.is_empty() && pgp_keys.len() != shares {
        return bad("count mismatch between number of provided PGP keys and number of shares");
    }
    Ok(())
}

/// Decodes a key share given as hex or standard base64, as Vault accepts both.
pub fn decode_share(s: &str) -> Result<Zeroizing<Vec<u8>>, CoreError> {
    use base64::Engine as _;
    let s = s.trim();
    if let Ok(b) = hex::decode(s)
        && (32..=33).contains(&b.len())
    {
        return Ok(Zeroizing::new(b));
    }
    base64::engine::general_purpose::STANDARD
        .decode(s)
        .map(Zeroizing::new)
        .map_err(|_| CoreError::InvalidRequest("'key' must be a valid hex or base64 string".into()))
}

/// New shares of `key`, optionally PGP-encrypted: returns (raw-or-encrypted bytes, fingerprints).
pub fn make_shares(
    key: &Key,
    shares: usize,
    threshold: usize,
    pgp_keys: &[String],
) -> Result<(Vec<Zeroizing<Vec<u8>>>, Vec<String>), CoreError> {
    let parts = shamir::split(&key.0[..], shares, threshold)
        .map_err(|e| CoreError::InvalidRequest(e.to_string()))?;
    if pgp_keys.is_empty() {
        return Ok((parts, Vec::new()));
    }
    let mut out = Vec::with_capacity(parts.len());
    let mut fps = Vec::with_capacity(parts.len());
    for (part, pk) in parts.iter().zip(pgp_keys) {
        // Vault encrypts the hex form of each share, so `gpg -d` yields a pasteable key.
        let hexed = Zeroizing::new(hex::encode(&part[..]));
        let enc = pgp::encrypt_to_key(pk, hexed.as_bytes()).map_err(|e| {
            CoreError::InvalidRequest(format!("error encrypting shares with pgp keys: {e}"))
        })?;
        fps.push(pgp::fingerprint(pk).map_err(|e| CoreError::InvalidRequest(e.to_string()))?);
        out.push(Zeroizing::new(enc));
    }
    Ok((out, fps))
}

/// Combines collected shares into the unseal key.
pub fn combine(threshold: usize, shares: &[Zeroizing<Vec<u8>>]) -> Result<Key, CoreError> {
    if threshold == 1 {
        return Key::from_slice(&shares[0]).map_err(|_| CoreError::InvalidUnsealKey);
    }
    let refs: Vec<&[u8]> = shares.iter().map(|s| &s[..]).collect();
    let key = shamir::combine(&refs).map_err(|_| CoreError::InvalidUnsealKey)?;
    Key::from_slice(&key).map_err(|_| CoreError::InvalidUnsealKey)
}

/// Shares collected towards a threshold, with Vault's duplicate check.
#[derive(Default)]
pub struct Progress {
    pub nonce: String,
    pub shares: Vec<Zeroizing<Vec<u8>>>,
}

impl Progress {
    pub fn add(&mut self, share: Zeroizing<Vec<u8>>) -> Result<(), CoreError> {
        if self
            .shares
            .iter()
            .any(|s| tresor_seal::token::ct_eq(s, &share))
        {
            return Err(CoreError::InvalidRequest(
                "given key has already been provided during this generation operation".into(),
            ));
        }
        self.shares.push(share);
        Ok(())
    }
    pub fn reset(&mut self) {
        self.shares.clear();
        self.nonce.clear();
    }
}

/// What `sys/rekey/init` asks for.
#[derive(Debug, Clone, Default)]
pub struct RekeyRequest {
    pub secret_shares: usize,
    pub secret_threshold: usize,
    pub pgp_keys: Vec<String>,
    /// Keep the PGP-encrypted new shares in storage (`sys/rekey/backup`).
    pub backup: bool,
    /// The new shares take effect only once a threshold of them has been given back to
    /// `sys/rekey/verify`.
    pub require_verification: bool,
}

/// A rekey in progress.
pub struct Rekey {
    pub progress: Progress,
    pub secret_shares: usize,
    pub secret_threshold: usize,
    pub pgp_keys: Vec<String>,
    pub backup: bool,
    pub fingerprints: Vec<String>,
    pub require_verification: bool,
    /// Set once the current shares were given and verification is required: the new key
    /// and what its switch will write, waiting for the new shares.
    pub pending: Option<PendingRekey>,
}

/// A rekey whose new shares were handed out but not yet proven (`sys/rekey/verify`). Nothing
/// is written until they are: the old shares stay valid until the switch commits.
pub struct PendingRekey {
    pub key: Key,
    /// The new shares given back so far, behind the verification nonce.
    pub progress: Progress,
    /// The backup document (PGP-encrypted shares) written with the switch, if asked for.
    pub backup: Option<Vec<u8>>,
}

/// A root-token generation in progress.
pub struct GenerateRoot {
    pub progress: Progress,
    pub otp: Option<Zeroizing<String>>,
    pub pgp_key: Option<String>,
    pub pgp_fingerprint: String,
}

/// Encodes a freshly generated root token for the generate-root response.
pub fn encode_root_token(g: &GenerateRoot, token: &str) -> Result<String, CoreError> {
    use base64::Engine as _;
    if let Some(pk) = &g.pgp_key {
        let enc = pgp::encrypt_to_key(pk, token.as_bytes())
            .map_err(|e| CoreError::Internal(e.to_string()))?;
        return Ok(base64::engine::general_purpose::STANDARD.encode(enc));
    }
    let otp = g
        .otp
        .as_ref()
        .ok_or_else(|| CoreError::Internal("no otp".into()))?;
    otp::xor_encode(token, otp).map_err(|e| CoreError::InvalidRequest(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn share_validation_follows_vault() {
        assert!(validate_shares(5, 3, &[]).is_ok());
        assert!(validate_shares(1, 1, &[]).is_ok());
        for (s, t, frag) in [
            (3, 5, "larger than shares"),
            (256, 3, "less than 256"),
            (5, 1, "greater than one"),
            (0, 0, "at least one"),
        ] {
            let e = validate_shares(s, t, &[]).unwrap_err().to_string();
            assert!(e.contains(frag), "{s}/{t}: {e}");
        }
        assert!(
            validate_shares(2, 2, &["x".into()])
                .unwrap_err()
                .to_string()
                .contains("PGP")
        );
    }

    #[test]
    fn shares_round_trip_through_hex_and_base64() {
        use base64::Engine as _;
        let key = Key::generate();
        let (parts, _) = make_shares(&key, 5, 3, &[]).unwrap();
        let hexed = decode_share(&hex::encode(&parts[0][..])).unwrap();
        let b64 =
            decode_share(&base64::engine::general_purpose::STANDARD.encode(&parts[1][..])).unwrap();
        let third = parts[4].clone();
        let got = combine(3, &[hexed, b64, third]).unwrap();
        assert_eq!(&got.0[..], &key.0[..]);
        assert!(decode_share("not a key!").is_err());
    }
}
