//! The handshake signature of a client certificate the listener accepts without verifying
//! (no `tls_client_ca_file`): checked against the certificate's public key, read with a small
//! DER walk instead of a full X.509 parse.
//!
//! Why not rustls's `verify_tls1x_signature`: they parse the certificate with webpki, which
//! refuses anything but an X.509 v3 certificate, so a client presenting a v1 certificate (what
//! `openssl x509 -req` makes without extensions, and what hvac's test suite presents) had its
//! handshake aborted with `certificate_unknown` before any request. Vault (Go's
//! `tls.RequestClientCert`) accepts any certificate at this layer; the certificate auth
//! method verifies the chain later, as it does here. What must still hold is that the client
//! owns the key: the signature over the handshake is verified with the certificate's
//! `subjectPublicKeyInfo` and an algorithm rustls offers for the signature scheme.

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::CertificateDer;
use rustls::{CertificateError, DigitallySignedStruct, Error, PeerMisbehaved, SignatureScheme};

use tresor_sdk::der::next as element;

const SEQUENCE: u8 = 0x30;
const BIT_STRING: u8 = 0x03;
const VERSION: u8 = 0xa0;

/// The certificate's public key: (AlgorithmIdentifier contents, key bits). Any X.509
/// version; nothing else in the certificate is looked at.
fn public_key(cert: &[u8]) -> Option<(&[u8], &[u8])> {
    let (tag, cert, _) = element(cert)?;
    if tag != SEQUENCE {
        return None;
    }
    let (tag, mut tbs, _) = element(cert)?;
    if tag != SEQUENCE {
        return None;
    }
    if tbs.first() == Some(&VERSION) {
        tbs = element(tbs)?.2;
    }
    // serialNumber, signature, issuer, validity, subject.
    for _ in 0..5 {
        tbs = element(tbs)?.2;
    }
    let (tag, spki, _) = element(tbs)?;
    if tag != SEQUENCE {
        return None;
    }
    let (tag, alg, rest) = element(spki)?;
    if tag != SEQUENCE {
        return None;
    }
    let (tag, bits, _) = element(rest)?;
    match bits.split_first() {
        Some((0, key)) if tag == BIT_STRING => Some((alg, key)),
        _ => None,
    }
}

/// Verifies `dss` over `message` with `cert`'s public key. `tls13` applies TLS 1.3's rule
/// that a scheme names one algorithm.
pub(crate) fn verify(
    tls13: bool,
    message: &[u8],
    cert: &CertificateDer<'_>,
    dss: &DigitallySignedStruct,
    algs: &WebPkiSupportedAlgorithms,
) -> Result<HandshakeSignatureValid, Error> {
    // TLS 1.3 signs with RSA-PSS, ECDSA or EdDSA only (RFC 8446, 4.2.3).
    let pkcs1_or_sha1 = matches!(
        dss.scheme,
        SignatureScheme::RSA_PKCS1_SHA1
            | SignatureScheme::ECDSA_SHA1_Legacy
            | SignatureScheme::RSA_PKCS1_SHA256
            | SignatureScheme::RSA_PKCS1_SHA384
            | SignatureScheme::RSA_PKCS1_SHA512
    );
    if tls13 && pkcs1_or_sha1 {
        return Err(PeerMisbehaved::SignedHandshakeWithUnadvertisedSigScheme.into());
    }
    let (alg_id, key) = public_key(cert.as_ref())
        .ok_or(Error::InvalidCertificate(CertificateError::BadEncoding))?;
    let candidates = algs
        .mapping
        .iter()
        .find(|(scheme, _)| *scheme == dss.scheme)
        .map(|(_, a)| *a)
        .filter(|a| !a.is_empty())
        .ok_or(PeerMisbehaved::SignedHandshakeWithUnadvertisedSigScheme)?;
    let candidates = if tls13 { &candidates[..1] } else { candidates };
    let alg = candidates
        .iter()
        .find(|a| a.public_key_alg_id().as_ref() == alg_id)
        .ok_or(Error::InvalidCertificate(CertificateError::BadSignature))?;
    alg.verify_signature(key, message, dss.signature())
        .map(|()| HandshakeSignatureValid::assertion())
        .map_err(|_| Error::InvalidCertificate(CertificateError::BadSignature))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_certificate_that_is_not_one_has_no_key() {
        assert_eq!(public_key(&[0x30, 0x00]), None);
    }
}
