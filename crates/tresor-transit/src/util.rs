//! Small helpers every part of the engine uses: errors, base64, randomness, PEM and DER.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use tresor_sdk::{LogicalError, Result};
use zeroize::Zeroizing;

/// An invalid-request (4xx) error.
pub(crate) fn bad(msg: impl Into<String>) -> LogicalError {
    LogicalError::InvalidRequest(msg.into())
}

pub(crate) fn internal(msg: impl std::fmt::Display) -> LogicalError {
    LogicalError::internal(msg)
}

pub(crate) fn b64(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}

pub(crate) fn b64url(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Decodes standard base64 (padding optional, surrounding whitespace ignored).
pub(crate) fn unb64(s: &str) -> Option<Vec<u8>> {
    let s = s.trim();
    STANDARD.decode(s).ok().or_else(|| {
        base64::engine::general_purpose::STANDARD_NO_PAD
            .decode(s)
            .ok()
    })
}

pub(crate) fn unb64url(s: &str) -> Option<Vec<u8>> {
    let s = s.trim().trim_end_matches('=');
    URL_SAFE_NO_PAD.decode(s).ok()
}

/// Secret bytes from base64 (the buffer is zeroed when dropped).
pub(crate) fn unb64_secret(s: &str) -> Option<Zeroizing<Vec<u8>>> {
    unb64(s).map(Zeroizing::new)
}

pub(crate) fn random(n: usize) -> Result<Zeroizing<Vec<u8>>> {
    let mut buf = Zeroizing::new(vec![0u8; n]);
    aws_lc_rs::rand::fill(&mut buf).map_err(|_| internal("the random generator failed"))?;
    Ok(buf)
}

/// PEM with 64-character lines.
pub(crate) fn pem(label: &str, der: &[u8]) -> String {
    let body = b64(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in body.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// One DER element at the start of `input`: (tag, contents, rest).
pub(crate) use tresor_sdk::der::next as der_next;

/// The PKCS#1 `RSAPrivateKey` inside a PKCS#8 `PrivateKeyInfo` (its `privateKey` octets).
pub(crate) fn pkcs8_inner(pkcs8: &[u8]) -> Option<&[u8]> {
    let (tag, seq, _) = der_next(pkcs8)?;
    if tag != 0x30 {
        return None;
    }
    let (_, _, rest) = der_next(seq)?; // version
    let (_, _, rest) = der_next(rest)?; // algorithm
    let (tag, key, _) = der_next(rest)?;
    (tag == 0x04).then_some(key)
}

/// A DER length.
fn der_len(len: usize, out: &mut Vec<u8>) {
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
}

/// A DER element from its tag and contents.
pub(crate) fn der(tag: u8, contents: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    der_len(contents.len(), &mut out);
    out.extend_from_slice(contents);
    out
}

/// Splits a fixed-size `r || s` ECDSA signature into DER (for `marshaling_algorithm=jws`).
pub(crate) fn ecdsa_fixed_to_der(fixed: &[u8]) -> Option<Vec<u8>> {
    if fixed.is_empty() || !fixed.len().is_multiple_of(2) {
        return None;
    }
    let (r, s) = fixed.split_at(fixed.len() / 2);
    let int = |x: &[u8]| {
        let x = &x[x.iter().take_while(|b| **b == 0).count().min(x.len() - 1)..];
        let mut v = Vec::new();
        if x[0] & 0x80 != 0 {
            v.push(0);
        }
        v.extend_from_slice(x);
        der(0x02, &v)
    };
    let mut seq = int(r);
    seq.extend(int(s));
    Some(der(0x30, &seq))
}

/// The fixed-size `r || s` form of a DER ECDSA signature, each half `half` bytes.
pub(crate) fn ecdsa_der_to_fixed(sig: &[u8], half: usize) -> Option<Vec<u8>> {
    let (tag, seq, _) = der_next(sig)?;
    if tag != 0x30 {
        return None;
    }
    let (_, r, rest) = der_next(seq)?;
    let (_, s, _) = der_next(rest)?;
    let mut out = Vec::with_capacity(half * 2);
    for x in [r, s] {
        let x = &x[x.iter().take_while(|b| **b == 0).count()..];
        if x.len() > half {
            return None;
        }
        out.extend(std::iter::repeat_n(0u8, half - x.len()));
        out.extend_from_slice(x);
    }
    Some(out)
}

/// Big-endian unsigned bytes as a decimal string (Go's JSON form of a `big.Int`).
pub(crate) fn be_to_decimal(bytes: &[u8]) -> String {
    let mut digits: Vec<u8> = vec![0]; // little-endian base-10 digits
    for &b in bytes {
        let mut carry = u32::from(b);
        for d in digits.iter_mut() {
            let v = u32::from(*d) * 256 + carry;
            *d = (v % 10) as u8;
            carry = v / 10;
        }
        while carry > 0 {
            digits.push((carry % 10) as u8);
            carry /= 10;
        }
    }
    digits.iter().rev().map(|d| char::from(b'0' + d)).collect()
}

/// A decimal string as big-endian unsigned bytes, left-padded to `len`.
pub(crate) fn decimal_to_be(s: &str, len: usize) -> Option<Vec<u8>> {
    let mut bytes: Vec<u8> = vec![0]; // little-endian base-256
    for c in s.trim().chars() {
        let d = c.to_digit(10)?;
        let mut carry = d;
        for b in bytes.iter_mut() {
            let v = u32::from(*b) * 10 + carry;
            *b = (v & 0xff) as u8;
            carry = v >> 8;
        }
        while carry > 0 {
            bytes.push((carry & 0xff) as u8);
            carry >>= 8;
        }
    }
    while bytes.len() > 1 && bytes.last() == Some(&0) {
        bytes.pop();
    }
    if bytes.len() > len {
        return None;
    }
    bytes.resize(len, 0);
    bytes.reverse();
    Some(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_round_trip() {
        let n = [0x01, 0x00, 0xff, 0x7a];
        let d = be_to_decimal(&n);
        assert_eq!(d, u32::from_be_bytes(n).to_string());
        assert_eq!(decimal_to_be(&d, 6).unwrap(), vec![0, 0, 1, 0, 0xff, 0x7a]);
        assert_eq!(be_to_decimal(&[0]), "0");
    }

    #[test]
    fn ecdsa_signature_forms_round_trip() {
        let fixed: Vec<u8> = (0..64)
            .map(|i| if i == 0 { 0x80 } else { i as u8 })
            .collect();
        let der = ecdsa_fixed_to_der(&fixed).unwrap();
        assert_eq!(ecdsa_der_to_fixed(&der, 32).unwrap(), fixed);
    }
}
