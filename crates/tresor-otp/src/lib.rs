//! The arithmetic of time-based one-time passwords (RFC 6238 over RFC 4226's HOTP, HMAC on
//! aws-lc-rs), base32 as authenticator apps write secrets, and `otpauth://` URLs, parsed and
//! built. No I/O, no state.

use aws_lc_rs::hmac;
use zeroize::Zeroizing;

/// The HMAC a key uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Algorithm {
    #[serde(rename = "SHA1")]
    Sha1,
    #[serde(rename = "SHA256")]
    Sha256,
    #[serde(rename = "SHA512")]
    Sha512,
}

impl Algorithm {
    pub fn parse(s: &str) -> Option<Algorithm> {
        match s.trim().to_ascii_uppercase().as_str() {
            "SHA1" => Some(Algorithm::Sha1),
            "SHA256" => Some(Algorithm::Sha256),
            "SHA512" => Some(Algorithm::Sha512),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Sha1 => "SHA1",
            Algorithm::Sha256 => "SHA256",
            Algorithm::Sha512 => "SHA512",
        }
    }

    fn hmac(self) -> hmac::Algorithm {
        match self {
            Algorithm::Sha1 => hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
            Algorithm::Sha256 => hmac::HMAC_SHA256,
            Algorithm::Sha512 => hmac::HMAC_SHA512,
        }
    }
}

/// RFC 4226's HOTP value for `counter`, as `digits` decimal digits.
pub fn hotp(key: &[u8], counter: u64, digits: u32, alg: Algorithm) -> String {
    let tag = hmac::sign(&hmac::Key::new(alg.hmac(), key), &counter.to_be_bytes());
    let h = tag.as_ref();
    let off = usize::from(h[h.len() - 1] & 0x0f);
    let bin = (u32::from(h[off] & 0x7f) << 24)
        | (u32::from(h[off + 1]) << 16)
        | (u32::from(h[off + 2]) << 8)
        | u32::from(h[off + 3]);
    let code = bin % 10u32.pow(digits);
    format!("{code:0width$}", width = digits as usize)
}

/// Compares two codes without an early exit.
pub fn same_code(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

const B32: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// Base32 (RFC 4648), upper case, without padding.
pub fn base32_encode(data: &[u8]) -> Zeroizing<String> {
    let mut out = Zeroizing::new(String::with_capacity(data.len().div_ceil(5) * 8));
    let (mut buf, mut bits) = (0u32, 0u32);
    for &b in data {
        buf = (buf << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(B32[((buf >> bits) & 31) as usize] as char);
        }
        buf &= (1 << bits) - 1;
    }
    if bits > 0 {
        out.push(B32[((buf << (5 - bits)) & 31) as usize] as char);
    }
    out
}

/// Decodes base32 as authenticator apps accept it: any case, spaces ignored, padding
/// optional. The error names the first bad byte.
pub fn base32_decode(text: &str) -> Result<Zeroizing<Vec<u8>>, String> {
    let mut out = Zeroizing::new(Vec::with_capacity(text.len() * 5 / 8));
    let (mut buf, mut bits) = (0u32, 0u32);
    let mut padding = false;
    for (i, c) in text.bytes().enumerate() {
        if c == b' ' {
            continue;
        }
        if c == b'=' {
            padding = true;
            continue;
        }
        let v = match c.to_ascii_uppercase() {
            u @ b'A'..=b'Z' if !padding => u - b'A',
            d @ b'2'..=b'7' if !padding => d - b'2' + 26,
            _ => return Err(format!("illegal base32 data at input byte {i}")),
        };
        buf = (buf << 5) | u32::from(v);
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((buf >> bits) as u8);
            buf &= (1 << bits) - 1;
        }
    }
    if out.is_empty() {
        return Err("empty base32 data".into());
    }
    Ok(out)
}

fn percent_decode(s: &str) -> Result<String, String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hex = s
                    .get(i + 1..i + 3)
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| format!("invalid percent-encoding in url at byte {i}"))?;
                out.push(hex);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| "url is not UTF-8 once decoded".to_owned())
}

fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'@') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// What an `otpauth://totp/...` URL says. Missing parameters are `None`.
#[derive(Default)]
pub struct UrlParts {
    pub secret: Zeroizing<String>,
    pub issuer: Option<String>,
    pub account_name: String,
    pub algorithm: Option<String>,
    pub digits: Option<String>,
    pub period: Option<String>,
}

/// Parses an `otpauth://totp/LABEL?secret=...` URL (`LABEL` is `issuer:account` or
/// `account`; the `issuer` parameter wins over the label's).
pub fn parse_url(url: &str) -> Result<UrlParts, String> {
    let rest = url
        .trim()
        .strip_prefix("otpauth://")
        .ok_or("url must start with otpauth://")?;
    let (kind, rest) = rest.split_once('/').ok_or("url has no label")?;
    if !kind.eq_ignore_ascii_case("totp") {
        return Err(format!("url type {kind:?} is not supported: only totp"));
    }
    let (label, query) = rest.split_once('?').unwrap_or((rest, ""));
    let label = percent_decode(label)?;
    let mut parts = UrlParts::default();
    match label.split_once(':') {
        Some((issuer, account)) => {
            parts.issuer = Some(issuer.trim().to_owned());
            parts.account_name = account.trim().to_owned();
        }
        None => parts.account_name = label.trim().to_owned(),
    }
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let v = percent_decode(v)?;
        match k.to_ascii_lowercase().as_str() {
            "secret" => parts.secret = Zeroizing::new(v),
            "issuer" => parts.issuer = Some(v),
            "algorithm" => parts.algorithm = Some(v),
            "digits" => parts.digits = Some(v),
            "period" => parts.period = Some(v),
            _ => {}
        }
    }
    if parts.secret.is_empty() {
        return Err("url has no secret parameter".into());
    }
    Ok(parts)
}

/// The `otpauth://` URL authenticator apps read.
pub fn build_url(
    issuer: &str,
    account: &str,
    secret_b32: &str,
    alg: Algorithm,
    digits: u32,
    period: u64,
) -> Zeroizing<String> {
    let label = if issuer.is_empty() {
        percent_encode(account)
    } else {
        format!("{}:{}", percent_encode(issuer), percent_encode(account))
    };
    Zeroizing::new(format!(
        "otpauth://totp/{label}?algorithm={}&digits={digits}&issuer={}&period={period}&secret={secret_b32}",
        alg.name(),
        percent_encode(issuer),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 Appendix B, at T = 59 s and 1111111109 s, 8 digits.
    #[test]
    fn rfc6238_vectors() {
        let k1 = b"12345678901234567890";
        let k256 = b"12345678901234567890123456789012";
        let k512 = b"1234567890123456789012345678901234567890123456789012345678901234";
        assert_eq!(hotp(k1, 59 / 30, 8, Algorithm::Sha1), "94287082");
        assert_eq!(hotp(k256, 59 / 30, 8, Algorithm::Sha256), "46119246");
        assert_eq!(hotp(k512, 59 / 30, 8, Algorithm::Sha512), "90693936");
        assert_eq!(hotp(k1, 1_111_111_109 / 30, 8, Algorithm::Sha1), "07081804");
        assert_eq!(hotp(k1, 1_111_111_109 / 30, 6, Algorithm::Sha1), "081804");
    }

    #[test]
    fn base32_round_trips_and_names_bad_bytes() {
        assert_eq!(
            base32_encode(b"Hello!\xde\xad\xbe\xef").as_str(),
            "JBSWY3DPEHPK3PXP"
        );
        assert_eq!(
            &base32_decode("jbswy3dpehpk3pxp").unwrap()[..],
            b"Hello!\xde\xad\xbe\xef"
        );
        assert_eq!(&base32_decode("MZXW6===").unwrap()[..], b"foo");
        assert_eq!(
            base32_decode("AB1C").unwrap_err(),
            "illegal base32 data at input byte 2"
        );
        assert!(base32_decode("!!!").is_err());
        assert!(base32_decode("").is_err());
    }

    #[test]
    fn urls_parse_and_round_trip() {
        let u = parse_url("otpauth://totp/Ex:al%40ex.com?secret=JBSWY3DPEHPK3PXP&issuer=Ex&algorithm=SHA256&digits=8&period=60").unwrap();
        assert_eq!(u.issuer.as_deref(), Some("Ex"));
        assert_eq!(u.account_name, "al@ex.com");
        assert_eq!(u.secret.as_str(), "JBSWY3DPEHPK3PXP");
        assert_eq!(u.algorithm.as_deref(), Some("SHA256"));
        assert_eq!(u.digits.as_deref(), Some("8"));
        assert_eq!(u.period.as_deref(), Some("60"));
        let built = build_url(
            "Acme Co",
            "a@b.c",
            "JBSWY3DPEHPK3PXP",
            Algorithm::Sha1,
            6,
            30,
        );
        let back = parse_url(&built).unwrap();
        assert_eq!(back.issuer.as_deref(), Some("Acme Co"));
        assert_eq!(back.account_name, "a@b.c");
        assert!(parse_url("otpauth://hotp/x?secret=AA").is_err());
        assert!(parse_url("https://x").is_err());
        assert!(parse_url("otpauth://totp/x?issuer=y").is_err());
    }
}
