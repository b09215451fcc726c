//! Shamir secret sharing over GF(2^8), in the share layout Vault uses for unseal and recovery
//! keys, so that shares produced by Vault combine here and the other way round.
//!
//! # Layout and field
//! Each byte of the secret is the constant term of its own random polynomial of degree
//! `threshold - 1`. A share is the value of every one of those polynomials at one point `x`,
//! written as `len(secret)` y-bytes followed by ONE trailing byte holding `x`. The `x` values of
//! one split are distinct, non-zero and chosen at random. The field is GF(2^8) reduced by the
//! AES polynomial x^8 + x^4 + x^3 + x + 1 (0x11b), as in Vault.
//!
//! # Why the arithmetic is written the way it is
//! The y-bytes and polynomial coefficients are secret. Table-based GF(2^8) arithmetic (log/exp
//! tables indexed by the operands) leaks them through cache timing, so multiplication here is a
//! fixed 8-round shift-and-xor loop with masks instead of branches, and the inverse is `a^254`
//! computed with a fixed sequence of multiplications. Only the public `x` coordinates and
//! lengths decide control flow.

use thiserror::Error;
use zeroize::Zeroizing;

use crate::random;

/// The most shares one split can produce: `x` is one non-zero byte.
pub const MAX_PARTS: usize = 255;

/// Why a split or a combine was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum ShamirError {
    /// Fewer shares requested than the threshold.
    #[error("parts cannot be less than threshold")]
    PartsLessThanThreshold,
    /// More than 255 shares requested.
    #[error("parts cannot exceed {MAX_PARTS}")]
    TooManyParts,
    /// A threshold below 2 (other than the 1-of-1 case, which is not a split).
    #[error("threshold must be at least 2")]
    ThresholdTooSmall,
    /// Nothing to split.
    #[error("cannot split an empty secret")]
    EmptySecret,
    /// Fewer than two shares given to combine.
    #[error("less than two parts cannot be used to reconstruct the secret")]
    TooFewParts,
    /// A share shorter than one y-byte plus the x-byte.
    #[error("parts must be at least two bytes")]
    PartTooShort,
    /// Shares of different lengths.
    #[error("all parts must be the same length")]
    LengthMismatch,
    /// Two shares with the same x coordinate.
    #[error("duplicate part detected")]
    DuplicatePart,
}

/// Multiplication in GF(2^8) modulo 0x11b, in constant time.
///
/// Eight rounds, each adding `a` to the result under a mask built from the low bit of `b`, then
/// doubling `a` and reducing it under a mask built from its high bit. No branch or memory access
/// depends on the operands.
#[inline]
fn mul(mut a: u8, mut b: u8) -> u8 {
    let mut product = 0u8;
    for _ in 0..8 {
        product ^= a & 0u8.wrapping_sub(b & 1);
        let carry = 0u8.wrapping_sub(a >> 7);
        a = (a << 1) ^ (0x1b & carry);
        b >>= 1;
    }
    product
}

/// Multiplicative inverse in GF(2^8) as `a^254` (the group of non-zero elements has order 255),
/// by a fixed chain of squarings and multiplications. `inverse(0)` is 0; callers never need it.
#[inline]
fn inverse(a: u8) -> u8 {
    // 254 = 0b1111_1110: a^254 = a^2 * a^4 * a^8 * ... * a^128.
    let mut square = mul(a, a); // a^2
    let mut result = square;
    for _ in 0..6 {
        square = mul(square, square); // a^4, a^8, ..., a^128
        result = mul(result, square);
    }
    result
}

/// Value at `x` of the polynomial whose coefficients (constant term first) are `coefficients`,
/// by Horner's rule.
fn evaluate(coefficients: &[u8], x: u8) -> u8 {
    coefficients
        .iter()
        .rev()
        .fold(0u8, |acc, &coefficient| mul(acc, x) ^ coefficient)
}

/// Splits `secret` into `parts` shares, any `threshold` of which recover it.
///
/// Each share is `secret.len() + 1` bytes: the y-bytes, then the x coordinate.
///
/// `parts == 1 && threshold == 1` is not a split: the one share is the secret itself, returned
/// unchanged (Vault does the same when initialised with `secret_shares = 1` and
/// `secret_threshold = 1`, so that single key is the root key itself, with no x byte).
///
/// # Errors
/// [`ShamirError::PartsLessThanThreshold`], [`ShamirError::TooManyParts`] (more than 255),
/// [`ShamirError::ThresholdTooSmall`] (below 2, except 1-of-1), [`ShamirError::EmptySecret`].
pub fn split(
    secret: &[u8],
    parts: usize,
    threshold: usize,
) -> Result<Vec<Zeroizing<Vec<u8>>>, ShamirError> {
    if secret.is_empty() {
        return Err(ShamirError::EmptySecret);
    }
    if parts == 1 && threshold == 1 {
        return Ok(vec![Zeroizing::new(secret.to_vec())]);
    }
    if parts < threshold {
        return Err(ShamirError::PartsLessThanThreshold);
    }
    if parts > MAX_PARTS {
        return Err(ShamirError::TooManyParts);
    }
    if threshold < 2 {
        return Err(ShamirError::ThresholdTooSmall);
    }

    let xs = random_x_coordinates(parts);

    let mut shares: Vec<Zeroizing<Vec<u8>>> = xs
        .iter()
        .map(|_| Zeroizing::new(Vec::with_capacity(secret.len() + 1)))
        .collect();

    // One polynomial per secret byte: the byte is the constant term, the other
    // `threshold - 1` coefficients are uniformly random bytes.
    let mut coefficients = Zeroizing::new(vec![0u8; threshold]);
    for &byte in secret {
        random::fill(&mut coefficients[1..]);
        coefficients[0] = byte;
        for (share, &x) in shares.iter_mut().zip(xs.iter()) {
            share.push(evaluate(&coefficients, x));
        }
    }
    for (share, &x) in shares.iter_mut().zip(xs.iter()) {
        share.push(x);
    }
    Ok(shares)
}

/// `parts` distinct non-zero x coordinates in random order: the first `parts` entries of a
/// uniform shuffle of 1..=255 (Fisher-Yates with unbiased indices).
fn random_x_coordinates(parts: usize) -> Vec<u8> {
    let mut all: Vec<u8> = (1..=255u8).collect();
    for i in (1..all.len()).rev() {
        let j = random::below(i + 1);
        all.swap(i, j);
    }
    all.truncate(parts);
    all
}

/// Recovers the secret from shares produced by [`split`] (or by Vault).
///
/// Any `threshold` or more shares of one split give the secret; fewer give an unrelated value of
/// the same length (the scheme cannot tell, so the caller verifies the result, as Vault does by
/// decrypting the keyring with it).
///
/// # Errors
/// [`ShamirError::TooFewParts`] (fewer than 2), [`ShamirError::PartTooShort`] (under 2 bytes),
/// [`ShamirError::LengthMismatch`], [`ShamirError::DuplicatePart`] (same x twice).
pub fn combine(shares: &[&[u8]]) -> Result<Zeroizing<Vec<u8>>, ShamirError> {
    if shares.len() < 2 {
        return Err(ShamirError::TooFewParts);
    }
    let share_len = shares[0].len();
    if share_len < 2 {
        return Err(ShamirError::PartTooShort);
    }
    if shares.iter().any(|share| share.len() != share_len) {
        return Err(ShamirError::LengthMismatch);
    }
    let secret_len = share_len - 1;

    // The x coordinates are public: checking them with ordinary branches leaks nothing.
    let xs: Vec<u8> = shares.iter().map(|share| share[secret_len]).collect();
    let mut seen = [false; 256];
    for &x in &xs {
        if seen[usize::from(x)] {
            return Err(ShamirError::DuplicatePart);
        }
        seen[usize::from(x)] = true;
    }

    // Lagrange basis polynomials evaluated at 0:
    // l_i(0) = prod_{j != i} x_j / (x_j - x_i), and subtraction in GF(2^8) is xor.
    let basis: Vec<u8> = xs
        .iter()
        .enumerate()
        .map(|(i, &xi)| {
            let mut numerator = 1u8;
            let mut denominator = 1u8;
            for (j, &xj) in xs.iter().enumerate() {
                if i != j {
                    numerator = mul(numerator, xj);
                    denominator = mul(denominator, xj ^ xi);
                }
            }
            mul(numerator, inverse(denominator))
        })
        .collect();

    let mut secret = Zeroizing::new(vec![0u8; secret_len]);
    for (share, &weight) in shares.iter().zip(basis.iter()) {
        for (out, &y) in secret.iter_mut().zip(share[..secret_len].iter()) {
            *out ^= mul(y, weight);
        }
    }
    Ok(secret)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn random_bytes(len: usize) -> Vec<u8> {
        let mut v = vec![0u8; len];
        random::fill(&mut v);
        v
    }

    fn refs(shares: &[Zeroizing<Vec<u8>>]) -> Vec<&[u8]> {
        shares.iter().map(|s| s.as_slice()).collect()
    }

    /// Carry-less ("polynomial") product of two bytes, then reduction modulo 0x11b by long
    /// division: the textbook definition of multiplication in GF(2^8), written independently of
    /// `mul`'s interleaved loop.
    fn reference_mul(a: u8, b: u8) -> u8 {
        let mut wide: u16 = 0;
        for bit in 0..8 {
            if (b >> bit) & 1 == 1 {
                wide ^= u16::from(a) << bit;
            }
        }
        for bit in (8..16).rev() {
            if (wide >> bit) & 1 == 1 {
                wide ^= 0x11b << (bit - 8);
            }
        }
        u8::try_from(wide).expect("reduced below 256")
    }

    #[test]
    fn field_known_answers_from_fips_197() {
        // FIPS-197 section 4.2: {57} * {83} = {c1} and {57} * {13} = {fe}.
        assert_eq!(mul(0x57, 0x83), 0xc1);
        assert_eq!(mul(0x57, 0x13), 0xfe);
        // FIPS-197 section 4.2.1 (xtime): {57} * {02} = {ae}, {57} * {04} = {47}.
        assert_eq!(mul(0x57, 0x02), 0xae);
        assert_eq!(mul(0x57, 0x04), 0x47);
        // The S-box construction's inverse: {53}^-1 = {ca}.
        assert_eq!(inverse(0x53), 0xca);
        assert_eq!(inverse(0x01), 0x01);
    }

    #[test]
    fn mul_matches_reference_for_every_pair() {
        for a in 0..=255u8 {
            for b in 0..=255u8 {
                assert_eq!(mul(a, b), reference_mul(a, b), "{a:#04x} * {b:#04x}");
            }
        }
    }

    #[test]
    fn inverse_is_inverse_for_every_nonzero_element() {
        assert_eq!(inverse(0), 0);
        for a in 1..=255u8 {
            assert_eq!(mul(a, inverse(a)), 1, "{a:#04x}");
        }
    }

    #[test]
    fn mul_and_inverse_agree_with_vsss_rs_gf256() {
        use vsss_rs::Gf256;
        for a in 0..=255u8 {
            for b in 0..=255u8 {
                assert_eq!(mul(a, b), (Gf256(a) * Gf256(b)).0, "{a:#04x} * {b:#04x}");
                if b != 0 {
                    assert_eq!(mul(a, inverse(b)), (Gf256(a) / Gf256(b)).0);
                }
            }
        }
    }

    #[test]
    fn split_layout_is_y_bytes_then_distinct_nonzero_x() {
        let secret = random_bytes(32);
        let shares = split(&secret, 5, 3).expect("split");
        assert_eq!(shares.len(), 5);
        let mut xs: Vec<u8> = shares.iter().map(|s| s[32]).collect();
        assert!(shares.iter().all(|s| s.len() == 33));
        assert!(xs.iter().all(|&x| x != 0));
        xs.sort_unstable();
        xs.dedup();
        assert_eq!(xs.len(), 5, "x coordinates must be distinct");
    }

    #[test]
    fn x_coordinates_are_random_not_sequential() {
        // Across 20 splits of 3 parts, a fixed 1,2,3 numbering would repeat every time.
        let mut distinct = std::collections::BTreeSet::new();
        for _ in 0..20 {
            let shares = split(b"k", 3, 2).expect("split");
            let xs: Vec<u8> = shares.iter().map(|s| s[1]).collect();
            distinct.insert(xs);
        }
        assert!(
            distinct.len() > 10,
            "only {} distinct x sets",
            distinct.len()
        );
    }

    #[test]
    fn round_trip_many_parameter_combinations() {
        let combos = [
            (2, 2),
            (3, 2),
            (3, 3),
            (5, 3),
            (5, 5),
            (10, 2),
            (10, 7),
            (16, 16),
            (255, 2),
            (255, 3),
            (255, 128),
            (255, 255),
        ];
        for (parts, threshold) in combos {
            let secret = random_bytes(32);
            let shares = split(&secret, parts, threshold).expect("split");
            assert_eq!(shares.len(), parts);
            // All shares.
            assert_eq!(combine(&refs(&shares)).expect("all").as_slice(), secret);
            // The first and the last `threshold` shares.
            let first = refs(&shares[..threshold]);
            assert_eq!(combine(&first).expect("first").as_slice(), secret);
            let last = refs(&shares[parts - threshold..]);
            assert_eq!(combine(&last).expect("last").as_slice(), secret);
        }
    }

    #[test]
    fn every_threshold_subset_recovers_and_smaller_subsets_do_not() {
        let secret = random_bytes(16);
        let parts = 6;
        let threshold = 3;
        let shares = split(&secret, parts, threshold).expect("split");
        for mask in 1u32..(1 << parts) {
            let chosen: Vec<&[u8]> = (0..parts)
                .filter(|i| mask & (1 << i) != 0)
                .map(|i| shares[i].as_slice())
                .collect();
            if chosen.len() < 2 {
                continue;
            }
            let recovered = combine(&chosen).expect("combine");
            if chosen.len() >= threshold {
                assert_eq!(recovered.as_slice(), secret, "subset {mask:#b}");
            } else {
                // With 16 random bytes a coincidental match has probability 2^-128.
                assert_ne!(recovered.as_slice(), secret, "subset {mask:#b}");
            }
        }
    }

    #[test]
    fn random_secrets_of_many_lengths_round_trip() {
        for round in 0..200usize {
            let len = 1 + random::below(64);
            let parts = 2 + random::below(20);
            let threshold = 2 + random::below(parts - 1);
            assert!(threshold <= parts);
            let secret = random_bytes(len);
            let shares = split(&secret, parts, threshold).expect("split");
            // A random subset of exactly `threshold` shares, in shuffled order.
            let mut order: Vec<usize> = (0..parts).collect();
            for i in (1..order.len()).rev() {
                order.swap(i, random::below(i + 1));
            }
            let chosen: Vec<&[u8]> = order[..threshold]
                .iter()
                .map(|&i| shares[i].as_slice())
                .collect();
            assert_eq!(
                combine(&chosen).expect("combine").as_slice(),
                secret,
                "round {round}: len {len}, {threshold}-of-{parts}"
            );
        }
    }

    #[test]
    fn one_of_one_returns_secret_unchanged() {
        let secret = random_bytes(32);
        let shares = split(&secret, 1, 1).expect("1-of-1");
        assert_eq!(shares.len(), 1);
        assert_eq!(shares[0].as_slice(), secret);
    }

    #[test]
    fn split_rejects_bad_parameters() {
        assert_eq!(split(b"s", 2, 3), Err(ShamirError::PartsLessThanThreshold));
        assert_eq!(split(b"s", 256, 3), Err(ShamirError::TooManyParts));
        assert_eq!(split(b"s", 5, 1), Err(ShamirError::ThresholdTooSmall));
        assert_eq!(split(b"s", 5, 0), Err(ShamirError::ThresholdTooSmall));
        assert_eq!(split(b"", 5, 3), Err(ShamirError::EmptySecret));
        assert_eq!(split(b"", 1, 1), Err(ShamirError::EmptySecret));
        assert_eq!(split(b"s", 1, 2), Err(ShamirError::PartsLessThanThreshold));
    }

    #[test]
    fn combine_rejects_bad_shares() {
        let shares = split(b"secret", 3, 2).expect("split");
        let a = shares[0].as_slice();
        let b = shares[1].as_slice();
        assert_eq!(combine(&[]), Err(ShamirError::TooFewParts));
        assert_eq!(combine(&[a]), Err(ShamirError::TooFewParts));
        assert_eq!(
            combine(&[&[7u8][..], &[9u8][..]]),
            Err(ShamirError::PartTooShort)
        );
        assert_eq!(combine(&[a, &b[1..]]), Err(ShamirError::LengthMismatch));
        assert_eq!(combine(&[a, a]), Err(ShamirError::DuplicatePart));
        let mut same_x = b.to_vec();
        *same_x.last_mut().expect("x") = a[a.len() - 1];
        assert_eq!(combine(&[a, &same_x]), Err(ShamirError::DuplicatePart));
    }

    #[test]
    fn known_answer_from_a_fixed_polynomial() {
        // Secret "Hi" = [0x48, 0x69], threshold 3, with fixed polynomials
        //   f0(x) = 0x48 + 0x1f x + 0xa3 x^2
        //   f1(x) = 0x69 + 0x00 x + 0xff x^2
        // evaluated at x = 0x01, 0x02, 0xc5 with the textbook multiplication, so the shares
        // below are exactly what any correct implementation of Vault's scheme must accept.
        let polys: [[u8; 3]; 2] = [[0x48, 0x1f, 0xa3], [0x69, 0x00, 0xff]];
        let eval = |p: &[u8; 3], x: u8| {
            p[0] ^ reference_mul(p[1], x) ^ reference_mul(p[2], reference_mul(x, x))
        };
        let xs = [0x01u8, 0x02, 0xc5];
        let shares: Vec<Vec<u8>> = xs
            .iter()
            .map(|&x| vec![eval(&polys[0], x), eval(&polys[1], x), x])
            .collect();
        // Worked by hand: at x = 1 every power of x is 1, so a share byte is the xor of its
        // polynomial's coefficients: 0x48^0x1f^0xa3 = 0xf4, 0x69^0x00^0xff = 0x96.
        assert_eq!(shares[0], vec![0xf4, 0x96, 0x01]);
        // At x = 2 (x^2 = 4): 0x1f*2 = 0x3e; 0xa3*2 = 0x146^0x11b = 0x5d, *2 = 0xba;
        // 0xff*2 = 0x1fe^0x11b = 0xe5, *2 = 0x1ca^0x11b = 0xd1.
        // f0(2) = 0x48^0x3e^0xba = 0xcc, f1(2) = 0x69^0xd1 = 0xb8.
        assert_eq!(shares[1], vec![0xcc, 0xb8, 0x02]);
        let share_refs: Vec<&[u8]> = shares.iter().map(|s| s.as_slice()).collect();
        assert_eq!(combine(&share_refs).expect("combine").as_slice(), b"Hi");
        // Two of the three shares are below the threshold and give something else.
        assert_ne!(
            combine(&share_refs[..2]).expect("combine").as_slice(),
            b"Hi"
        );
    }

    #[test]
    fn shares_combine_with_vsss_rs() {
        // vsss-rs lays a byte share out as [x, y...]; ours is [y..., x].
        for (parts, threshold) in [(3, 2), (5, 3), (10, 10), (255, 4)] {
            let secret = random_bytes(33);
            let shares = split(&secret, parts, threshold).expect("split");
            let foreign: Vec<Vec<u8>> = shares[..threshold]
                .iter()
                .map(|s| {
                    let mut v = Vec::with_capacity(s.len());
                    v.push(s[s.len() - 1]);
                    v.extend_from_slice(&s[..s.len() - 1]);
                    v
                })
                .collect();
            let recovered = vsss_rs::Gf256::combine_bytes(&foreign).expect("vsss combine");
            assert_eq!(recovered, secret, "{threshold}-of-{parts}");
        }
    }
}
