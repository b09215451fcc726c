//! The crate's one source of randomness: aws-lc-rs's system random generator, exposed as a
//! byte filler, an unbiased base62 string generator and a `rand_core` 0.6 adapter (the RNG
//! interface rPGP's encryption builder takes).

use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use zeroize::Zeroizing;

/// The 62 characters of Vault's base62 alphabet (digits, upper case, lower case).
const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// Fills `buf` with random bytes.
///
/// The system random generator failing leaves nothing safe to do (every key, share and token
/// would be predictable), so this panics instead of returning an error that callers would have
/// to thread through infallible APIs such as token generation.
pub(crate) fn fill(buf: &mut [u8]) {
    aws_lc_rs::rand::fill(buf).expect("system random generator failed");
}

/// A uniformly random byte in `0..bound` (`bound` in `1..=256`), by rejection sampling so that no
/// value is more likely than another.
pub(crate) fn below(bound: usize) -> usize {
    debug_assert!((1..=256).contains(&bound));
    // Largest multiple of `bound` that fits in 0..=255 (plus one): bytes at or above it are
    // rejected, the rest are reduced modulo `bound` without bias.
    let limit = 256 - (256 % bound);
    let mut byte = [0u8; 1];
    loop {
        fill(&mut byte);
        let value = usize::from(byte[0]);
        if value < limit {
            return value % bound;
        }
    }
}

/// A random string of `len` characters drawn uniformly from the base62 alphabet.
pub(crate) fn base62(len: usize) -> Zeroizing<String> {
    let mut out = Zeroizing::new(String::with_capacity(len));
    // 62 * 4 = 248: bytes 248..=255 are rejected so that every character is equally likely.
    let mut chunk = Zeroizing::new([0u8; 64]);
    while out.len() < len {
        fill(chunk.as_mut());
        for &byte in chunk.iter() {
            if out.len() == len {
                break;
            }
            if byte < 248 {
                out.push(char::from(BASE62[usize::from(byte % 62)]));
            }
        }
    }
    out
}

/// `rand_core` 0.6 view of aws-lc-rs's system random generator, for rPGP.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct AwsLcRng;

impl rand_core::RngCore for AwsLcRng {
    fn next_u32(&mut self) -> u32 {
        let mut bytes = [0u8; 4];
        fill(&mut bytes);
        u32::from_le_bytes(bytes)
    }

    fn next_u64(&mut self) -> u64 {
        let mut bytes = [0u8; 8];
        fill(&mut bytes);
        u64::from_le_bytes(bytes)
    }

    fn fill_bytes(&mut self, dest: &mut [u8]) {
        fill(dest);
    }

    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
        SystemRandom::new()
            .fill(dest)
            .map_err(rand_core::Error::new)
    }
}

impl rand_core::CryptoRng for AwsLcRng {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base62_has_requested_length_and_alphabet() {
        for len in [0, 1, 24, 28, 100, 200] {
            let s = base62(len);
            assert_eq!(s.len(), len);
            assert!(
                s.bytes().all(|b| b.is_ascii_alphanumeric()),
                "{}",
                s.as_str()
            );
        }
    }

    #[test]
    fn base62_uses_whole_alphabet_roughly_uniformly() {
        // 62,000 characters: each symbol is expected 1,000 times; a biased mapping (plain
        // `byte % 62`) would make the first 8 symbols about 25% more frequent than the rest.
        let s = base62(62_000);
        let mut counts = [0usize; 62];
        for b in s.bytes() {
            let idx = BASE62
                .iter()
                .position(|&c| c == b)
                .expect("base62 character");
            counts[idx] += 1;
        }
        for (i, &n) in counts.iter().enumerate() {
            assert!((800..1200).contains(&n), "symbol {i} appeared {n} times");
        }
    }

    #[test]
    fn below_stays_in_range_and_hits_every_value() {
        for bound in [1usize, 2, 3, 7, 100, 255, 256] {
            let mut seen = vec![false; bound];
            for _ in 0..(bound * 40) {
                let v = below(bound);
                assert!(v < bound);
                seen[v] = true;
            }
            assert!(
                seen.iter().all(|&s| s),
                "bound {bound}: some value never drawn"
            );
        }
    }

    #[test]
    fn rng_adapter_produces_distinct_output() {
        use rand_core::RngCore;
        let mut rng = AwsLcRng;
        let mut a = [0u8; 32];
        let mut b = [0u8; 32];
        rng.fill_bytes(&mut a);
        rng.try_fill_bytes(&mut b).expect("fill");
        assert_ne!(a, b);
        assert_ne!(rng.next_u64(), rng.next_u64());
    }
}
