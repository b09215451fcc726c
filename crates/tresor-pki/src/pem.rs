//! PEM armour: splitting a bundle into labelled DER blocks and writing blocks back out, in the
//! form Vault and OpenSSL use (64-column base64, LF line endings).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

/// One decoded PEM block.
#[derive(Clone, PartialEq, Eq)]
pub struct Block {
    pub label: String,
    pub der: Vec<u8>,
}

impl std::fmt::Debug for Block {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Blocks may hold private keys: never print their contents.
        f.debug_struct("Block")
            .field("label", &self.label)
            .field("len", &self.der.len())
            .finish()
    }
}

/// Errors from PEM parsing.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PemError {
    #[error("pem block {0:?} has no matching end line")]
    Unterminated(String),
    #[error("pem block {0:?} is not valid base64")]
    BadBase64(String),
}

/// Every block in `text`, in order. Text outside blocks (comments, `openssl x509 -text`
/// output) is ignored.
pub fn parse_all(text: &str) -> Result<Vec<Block>, PemError> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("-----BEGIN ") {
        let after = &rest[start + 11..];
        let Some(label_end) = after.find("-----") else {
            break;
        };
        let label = after[..label_end].to_owned();
        let body_start = &after[label_end + 5..];
        let end_marker = format!("-----END {label}-----");
        let Some(end) = body_start.find(&end_marker) else {
            return Err(PemError::Unterminated(label));
        };
        let body: String = body_start[..end]
            .lines()
            .filter(|l| !l.contains(':')) // RFC 1421 headers such as Proc-Type
            .flat_map(|l| l.chars())
            .filter(|c| !c.is_whitespace())
            .collect();
        let der = STANDARD
            .decode(body.as_bytes())
            .map_err(|_| PemError::BadBase64(label.clone()))?;
        out.push(Block { label, der });
        rest = &body_start[end + end_marker.len()..];
    }
    Ok(out)
}

/// Encodes one block.
pub fn encode(label: &str, der: &[u8]) -> String {
    let b64 = STANDARD.encode(der);
    let mut s = String::with_capacity(b64.len() + b64.len() / 64 + 2 * label.len() + 40);
    s.push_str("-----BEGIN ");
    s.push_str(label);
    s.push_str("-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        s.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        s.push('\n');
    }
    s.push_str("-----END ");
    s.push_str(label);
    s.push_str("-----");
    s
}

/// A certificate as PEM (no trailing newline, as Vault answers).
pub fn cert(der: &[u8]) -> String {
    encode("CERTIFICATE", der)
}

/// The certificates of a PEM text, as DER.
pub fn certificates(text: &str) -> Result<Vec<Vec<u8>>, PemError> {
    Ok(parse_all(text)?
        .into_iter()
        .filter(|b| b.label == "CERTIFICATE")
        .map(|b| b.der)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_skips_noise() {
        let der: Vec<u8> = (0..200u8).collect();
        let one = encode("CERTIFICATE", &der);
        assert!(one.lines().all(|l| l.len() <= 64));
        let text = format!(
            "subject=CN = x\n{one}\n\n-----BEGIN EC PARAMETERS-----\nBggqhkjOPQMBBw==\n-----END EC PARAMETERS-----\n{one}"
        );
        let blocks = parse_all(&text).unwrap();
        assert_eq!(blocks.len(), 3);
        assert_eq!(blocks[0].der, der);
        assert_eq!(blocks[1].label, "EC PARAMETERS");
        assert_eq!(certificates(&text).unwrap().len(), 2);
    }

    #[test]
    fn rejects_broken_blocks() {
        assert_eq!(
            parse_all("-----BEGIN CERTIFICATE-----\nAAAA\n"),
            Err(PemError::Unterminated("CERTIFICATE".into()))
        );
        assert_eq!(
            parse_all("-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----"),
            Err(PemError::BadBase64("CERTIFICATE".into()))
        );
    }
}
