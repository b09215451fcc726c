//! PEM armour and the few DER structures the engine reads: the label and body of a PEM
//! block, one TLV, and the private key inside a PKCS#8 `PrivateKeyInfo`. Decoded key bytes
//! are returned in zeroizing buffers.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use zeroize::Zeroizing;

/// The first PEM block of `text`: its label (`RSA PRIVATE KEY`) and decoded body.
pub fn decode(text: &str) -> Option<(String, Zeroizing<Vec<u8>>)> {
    let start = text.find("-----BEGIN ")?;
    let rest = &text[start + 11..];
    let label_end = rest.find("-----")?;
    let label = rest[..label_end].to_owned();
    let body_start = &rest[label_end + 5..];
    let end_marker = format!("-----END {label}-----");
    let body_end = body_start.find(&end_marker)?;
    let b64: Zeroizing<String> = Zeroizing::new(
        body_start[..body_end]
            .lines()
            .map(str::trim)
            // PEM headers (Proc-Type, DEK-Info) mark an encrypted legacy key.
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>()
            .concat(),
    );
    if b64.contains(':') {
        return None;
    }
    STANDARD
        .decode(b64.as_bytes())
        .ok()
        .map(|v| (label, Zeroizing::new(v)))
}

/// PEM armour around `der`, 64 columns, ending in a newline.
pub fn encode(label: &str, der: &[u8]) -> Zeroizing<String> {
    let b64 = Zeroizing::new(STANDARD.encode(der));
    let mut out = Zeroizing::new(format!("-----BEGIN {label}-----\n"));
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// One DER TLV: (tag, contents, rest). Definite lengths only.
pub fn tlv(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, mut rest) = rest.split_first()?;
    let len = if first < 0x80 {
        usize::from(first)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let mut len = 0usize;
        for &b in &rest[..n] {
            len = (len << 8) | usize::from(b);
        }
        rest = &rest[n..];
        len
    };
    if rest.len() < len {
        return None;
    }
    Some((tag, &rest[..len], &rest[len..]))
}

/// The `privateKey` OCTET STRING of a PKCS#8 `PrivateKeyInfo` (for RSA: the PKCS#1 key).
pub fn pkcs8_inner(der: &[u8]) -> Option<&[u8]> {
    let (0x30, seq, _) = tlv(der)? else {
        return None;
    };
    let (0x02, _version, rest) = tlv(seq)? else {
        return None;
    };
    let (0x30, _alg, rest) = tlv(rest)? else {
        return None;
    };
    let (0x04, key, _) = tlv(rest)? else {
        return None;
    };
    Some(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_round_trips_and_refuses_encrypted_legacy_keys() {
        let pem = encode("TEST", &[1, 2, 3, 250]);
        let (label, body) = decode(&pem).unwrap();
        assert_eq!(label, "TEST");
        assert_eq!(&body[..], &[1, 2, 3, 250]);
        let enc = "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,00\n\nAAAA\n-----END RSA PRIVATE KEY-----\n";
        assert!(decode(enc).is_none());
        assert!(decode("no pem here").is_none());
    }

    #[test]
    fn tlv_reads_short_and_long_lengths() {
        assert_eq!(
            tlv(&[0x04, 2, 9, 8, 7]),
            Some((4, &[9u8, 8][..], &[7u8][..]))
        );
        let mut long = vec![0x04, 0x81, 0x80];
        long.extend([0u8; 128]);
        assert_eq!(tlv(&long).unwrap().1.len(), 128);
        assert!(tlv(&[0x04, 5, 1]).is_none());
    }
}
