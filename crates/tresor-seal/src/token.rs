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

/// Number of characters of an accessor's time-ordered prefix (milliseconds since 1970 in
/// fixed-width base62, good until the year 8888).
pub const ACCESSOR_ORDER_LENGTH: usize = 8;

/// Base62 digits in ASCII order, so fixed-width encodings sort as the numbers do.
const ORDERED_BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

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

/// A new token accessor: the time-ordered prefix of [`accessor_order`] (8 characters, from
/// the current time) then 24 random base62 characters (about 143 bits, as Vault's).
///
/// The prefix is not secret (it says when the token was made); it lets the token store keep
/// its accessor and parent indexes in creation order, so a new token's index entries land at
/// the end of their range in storage instead of on a random page each.
pub fn new_accessor() -> String {
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    new_accessor_at(millis)
}

/// [`new_accessor`] at a given time (milliseconds since 1970).
pub fn new_accessor_at(millis: u64) -> String {
    let mut out = String::with_capacity(ACCESSOR_ORDER_LENGTH + ACCESSOR_LENGTH);
    let mut digits = [0u8; ACCESSOR_ORDER_LENGTH];
    let mut n = millis;
    for d in digits.iter_mut().rev() {
        *d = ORDERED_BASE62[(n % 62) as usize];
        n /= 62;
    }
    out.extend(digits.iter().map(|&b| char::from(b)));
    out.push_str(&random::base62(ACCESSOR_LENGTH));
    out
}

/// The time-ordered prefix of an accessor made by [`new_accessor`]; `None` for any other
/// string (the 24-character accessors of earlier versions included).
pub fn accessor_order(accessor: &str) -> Option<&str> {
    (accessor.len() == ACCESSOR_ORDER_LENGTH + ACCESSOR_LENGTH
        && accessor.bytes().all(|b| b.is_ascii_alphanumeric()))
    .then(|| &accessor[..ACCESSOR_ORDER_LENGTH])
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
        assert_eq!(accessor.len(), 32);
        assert!(accessor.bytes().all(|b| b.is_ascii_alphanumeric()));
        assert_eq!(accessor_order(&accessor), Some(&accessor[..8]));
        // Earlier accessors, and anything else, have no order.
        assert_eq!(accessor_order("abcdefghijklmnopqrstuvwx"), None);
        assert_eq!(accessor_order(&format!("{}/../", &accessor[..28])), None);
    }

    #[test]
    fn accessor_prefixes_sort_by_time() {
        let times = [
            0u64,
            1,
            61,
            62,
            1_000,
            1_796_000_000_000,
            1_796_000_000_001,
            62u64.pow(8) - 1,
        ];
        let prefixes: Vec<String> = times
            .iter()
            .map(|&t| accessor_order(&new_accessor_at(t)).unwrap().to_owned())
            .collect();
        let mut sorted = prefixes.clone();
        sorted.sort();
        assert_eq!(prefixes, sorted);
        assert_eq!(prefixes[0], "00000000");
        assert_eq!(prefixes[3], "00000010");
        assert_eq!(prefixes[7], "zzzzzzzz");
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
