//! Random token ids and accessors in Vault's shape, and the constant-time comparison used
//! wherever a presented secret (token, nonce, key) is checked against a stored one.
//!
//! A service token is `hvs.` followed by 24 random base62 characters: 28 characters in all,
//! which is the `otp_length` Vault reports for `sys/generate-root`, so a generated root token
//! can be XORed with the operator's OTP byte for byte (see [`crate::otp`]).

use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::random;

/// Prefix of service tokens.
pub const SERVICE_TOKEN_PREFIX: &str = "hvs.";

/// Number of random base62 characters after the prefix of a service token.
pub const TOKEN_RANDOM_LENGTH: usize = 24;

/// Number of random base62 characters in a token accessor.
pub const ACCESSOR_LENGTH: usize = 24;

/// A new service token id: `hvs.` + 24 random base62 characters (about 143 bits).
pub fn new_service_token() -> Zeroizing<String> {
    let random = random::base62(TOKEN_RANDOM_LENGTH);
    let mut token = Zeroizing::new(String::with_capacity(
        SERVICE_TOKEN_PREFIX.len() + TOKEN_RANDOM_LENGTH,
    ));
    token.push_str(SERVICE_TOKEN_PREFIX);
    token.push_str(&random);
    token
}

/// A new token accessor: 24 random base62 characters.
pub fn new_accessor() -> String {
    random::base62(ACCESSOR_LENGTH).as_str().to_owned()
}

/// Constant-time equality of two byte strings.
///
/// The time taken depends only on the lengths (which are not secret here), never on where the
/// contents first differ. Inputs of different lengths are unequal.
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn service_token_shape() {
        let token = new_service_token();
        assert_eq!(token.len(), 28);
        assert!(token.starts_with("hvs."));
        assert!(token[4..].bytes().all(|b| b.is_ascii_alphanumeric()));
    }

    #[test]
    fn accessor_shape() {
        let accessor = new_accessor();
        assert_eq!(accessor.len(), 24);
        assert!(accessor.bytes().all(|b| b.is_ascii_alphanumeric()));
    }

    #[test]
    fn tokens_and_accessors_do_not_repeat() {
        let tokens: HashSet<String> = (0..1000)
            .map(|_| new_service_token().as_str().to_owned())
            .collect();
        assert_eq!(tokens.len(), 1000);
        let accessors: HashSet<String> = (0..1000).map(|_| new_accessor()).collect();
        assert_eq!(accessors.len(), 1000);
    }

    #[test]
    fn ct_eq_compares_contents_and_lengths() {
        assert!(ct_eq(b"", b""));
        assert!(ct_eq(b"hvs.abc", b"hvs.abc"));
        assert!(!ct_eq(b"hvs.abc", b"hvs.abd"));
        assert!(!ct_eq(b"hvs.abc", b"hvs.ab"));
        assert!(!ct_eq(b"a", b""));
        let t = new_service_token();
        assert!(ct_eq(t.as_bytes(), t.clone().as_bytes()));
        assert!(!ct_eq(t.as_bytes(), new_service_token().as_bytes()));
    }
}
