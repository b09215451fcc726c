//! The one-time-pad encoding `sys/generate-root` (and the DR / recovery token variants) applies
//! to the new token: the operator supplies a random base62 OTP when starting the attempt, and
//! the final response carries `encoded_token` / `encoded_root_token` = base64(token XOR otp).
//!
//! Behaviour checked against Vault's documentation and its published `sdk/helper/roottoken`
//! package docs (behaviour only, no code taken):
//! - The OTP is a base62 string of `otp_length` characters; Vault reports `otp_length` 28 since
//!   its tokens became `hvs.` + 24 characters (older releases used 24/26 for UUID-style tokens).
//! - "The OTP must have the same length as the token": encoding and decoding refuse a length
//!   mismatch instead of cycling or truncating the pad.
//! - The encoded value is standard-alphabet base64 WITHOUT padding (Go's `RawStdEncoding`):
//!   Vault's decoder uses `RawStdEncoding`, and a Vault-produced `encoded_root_token` for a
//!   26-character token is 35 characters long (padded base64 would be 36). [`xor_encode`] emits
//!   unpadded output; [`xor_decode`] also accepts a padded value, which costs nothing and spares
//!   users of tools that re-pad.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD_NO_PAD;
use thiserror::Error;
use zeroize::Zeroizing;

use crate::random;

/// The OTP length Vault reports (`otp_length`) for `hvs.`-style root tokens.
pub const OTP_LENGTH: usize = 28;

/// Why an OTP encoding or decoding failed. No variant carries the token or the OTP.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum OtpError {
    /// The token (or decoded value) and the OTP differ in length.
    #[error("length of the token ({token}) and the otp ({otp}) must be the same")]
    LengthMismatch {
        /// Length in bytes of the token or decoded value.
        token: usize,
        /// Length in bytes of the OTP.
        otp: usize,
    },
    /// The encoded value is not base64.
    #[error("error decoding base64'd token")]
    InvalidBase64,
    /// The decoded token is not UTF-8 (wrong OTP, or not an encoded token at all).
    #[error("decoded token is not valid utf-8")]
    InvalidUtf8,
}

/// A fresh OTP of `len` random base62 characters (Vault's `otp_length` is [`OTP_LENGTH`]).
pub fn generate_otp(len: usize) -> String {
    random::base62(len).as_str().to_owned()
}

/// `encoded_token`: base64 (standard alphabet, no padding) of `token` XOR `otp`, byte by byte.
///
/// # Errors
/// [`OtpError::LengthMismatch`] when the two differ in length.
pub fn xor_encode(token: &str, otp: &str) -> Result<String, OtpError> {
    let xored = xor(token.as_bytes(), otp.as_bytes())?;
    Ok(STANDARD_NO_PAD.encode(xored.as_slice()))
}

/// Reverses [`xor_encode`]: decodes `encoded` (base64, padded or not) and XORs it with `otp`.
///
/// # Errors
/// [`OtpError::InvalidBase64`], [`OtpError::LengthMismatch`] when the decoded value and the
/// OTP differ in length, [`OtpError::InvalidUtf8`] when the result is not text.
pub fn xor_decode(encoded: &str, otp: &str) -> Result<String, OtpError> {
    let trimmed = encoded.trim().trim_end_matches('=');
    let raw = Zeroizing::new(
        STANDARD_NO_PAD
            .decode(trimmed)
            .map_err(|_| OtpError::InvalidBase64)?,
    );
    let mut xored = xor(&raw, otp.as_bytes())?;
    let bytes = std::mem::take(&mut *xored);
    String::from_utf8(bytes).map_err(|err| {
        // Wipe the rejected bytes before dropping them.
        drop(Zeroizing::new(err.into_bytes()));
        OtpError::InvalidUtf8
    })
}

fn xor(data: &[u8], otp: &[u8]) -> Result<Zeroizing<Vec<u8>>, OtpError> {
    if data.len() != otp.len() {
        return Err(OtpError::LengthMismatch {
            token: data.len(),
            otp: otp.len(),
        });
    }
    Ok(Zeroizing::new(
        data.iter().zip(otp).map(|(d, o)| d ^ o).collect(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::token;

    #[test]
    fn generated_otp_is_base62_of_requested_length() {
        let otp = generate_otp(OTP_LENGTH);
        assert_eq!(otp.len(), 28);
        assert!(otp.bytes().all(|b| b.is_ascii_alphanumeric()));
        assert_ne!(otp, generate_otp(OTP_LENGTH));
    }

    #[test]
    fn otp_length_matches_root_token_length() {
        assert_eq!(token::new_service_token().len(), OTP_LENGTH);
    }

    #[test]
    fn round_trip_with_a_fresh_token() {
        for _ in 0..50 {
            let token = token::new_service_token();
            let otp = generate_otp(OTP_LENGTH);
            let encoded = xor_encode(&token, &otp).expect("encode");
            assert!(!encoded.contains('='), "no padding expected: {encoded}");
            // 28 bytes -> ceil(28 * 4 / 3) = 38 characters unpadded (40 padded).
            assert_eq!(encoded.len(), 38);
            assert_ne!(encoded, token.as_str());
            assert_eq!(xor_decode(&encoded, &otp).expect("decode"), token.as_str());
        }
    }

    #[test]
    fn encoding_is_xor_then_unpadded_base64() {
        // 'a' ^ 'b' = 0x03, 'b' ^ 'a' = 0x03, 'c' ^ 'c' = 0x00 -> bytes 03 03 00 -> "AwMA".
        assert_eq!(xor_encode("abc", "bac").expect("encode"), "AwMA");
        // 'a' ^ 'A' = 0x20 -> one byte -> "IA" unpadded ("IA==" padded).
        assert_eq!(xor_encode("a", "A").expect("encode"), "IA");
        assert_eq!(xor_decode("IA", "A").expect("decode"), "a");
        assert_eq!(xor_decode("IA==", "A").expect("decode padded"), "a");
    }

    #[test]
    fn mismatched_lengths_are_refused() {
        assert_eq!(
            xor_encode("hvs.short", "abc"),
            Err(OtpError::LengthMismatch { token: 9, otp: 3 })
        );
        let encoded = xor_encode("abcd", "wxyz").expect("encode");
        assert_eq!(
            xor_decode(&encoded, "wxy"),
            Err(OtpError::LengthMismatch { token: 4, otp: 3 })
        );
    }

    #[test]
    fn bad_base64_and_non_utf8_are_refused() {
        assert_eq!(
            xor_decode("not*base64", "abcdefg"),
            Err(OtpError::InvalidBase64)
        );
        // 0x80 ^ 'A'... produce a byte >= 0x80: encode [0xc1] against OTP "A" (0x41) -> 0x80.
        let encoded = STANDARD_NO_PAD.encode([0xc1u8]);
        assert_eq!(xor_decode(&encoded, "A"), Err(OtpError::InvalidUtf8));
    }
}
