//! The little X.509 the agent needs: a certificate's serial and validity, whether a private
//! key belongs to a certificate, and (CSR mode) a key and a certificate signing request made
//! here so the key never leaves the host.

use std::net::IpAddr;

use rcgen::{CertificateParams, DnType, KeyPair, PublicKeyData, SanType};
use zeroize::Zeroizing;

use crate::config::KeyType;

/// What the agent keeps of a certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertInfo {
    /// Serial as Vault prints it (`xx:xx:...`, lowercase hex).
    pub serial: String,
    /// Not before, Unix seconds.
    pub not_before: i64,
    /// Not after, Unix seconds.
    pub not_after: i64,
    /// The subject's common name, if any.
    pub common_name: Option<String>,
    /// The subject public key, raw (for matching a private key).
    spki: Vec<u8>,
}

/// Parses the first certificate of a PEM text.
pub fn parse_cert(pem: &str) -> Result<CertInfo, String> {
    let (_, p) = x509_parser::pem::parse_x509_pem(pem.as_bytes())
        .map_err(|e| format!("not a PEM certificate: {e}"))?;
    let (_, c) = x509_parser::parse_x509_certificate(&p.contents)
        .map_err(|e| format!("not an X.509 certificate: {e}"))?;
    Ok(CertInfo {
        serial: c.raw_serial_as_string().to_ascii_lowercase(),
        not_before: c.validity().not_before.timestamp(),
        not_after: c.validity().not_after.timestamp(),
        common_name: c
            .subject()
            .iter_common_name()
            .next()
            .and_then(|cn| cn.as_str().ok())
            .map(str::to_string),
        spki: c.public_key().subject_public_key.data.to_vec(),
    })
}

/// Whether the PEM private key is the one of `cert`.
pub fn key_matches(cert: &CertInfo, key_pem: &str) -> bool {
    match KeyPair::from_pem(key_pem) {
        Ok(k) => k.der_bytes() == cert.spki.as_slice(),
        Err(_) => false,
    }
}

/// A new key pair of `ty`, and its PKCS#8 PEM.
pub fn generate_key(ty: KeyType) -> Result<(KeyPair, Zeroizing<String>), String> {
    let kp = match ty {
        KeyType::Ec(384) => KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384),
        KeyType::Ec(_) => KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256),
        KeyType::Rsa(bits) => KeyPair::generate_rsa_for(
            &rcgen::PKCS_RSA_SHA256,
            match bits {
                4096 => rcgen::RsaKeySize::_4096,
                3072 => rcgen::RsaKeySize::_3072,
                _ => rcgen::RsaKeySize::_2048,
            },
        ),
    }
    .map_err(|e| format!("generating the key: {e}"))?;
    let pem = Zeroizing::new(kp.serialize_pem());
    Ok((kp, pem))
}

/// A CSR for `common_name` and the SANs, signed by `key`.
pub fn csr_pem(
    key: &KeyPair,
    common_name: &str,
    alt_names: &[String],
    ip_sans: &[String],
    uri_sans: &[String],
) -> Result<String, String> {
    let mut params = CertificateParams::default();
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    let ia5 = |s: &str| {
        rcgen::string::Ia5String::try_from(s.to_string())
            .map_err(|e| format!("invalid name {s:?}: {e}"))
    };
    for n in alt_names {
        params.subject_alt_names.push(if n.contains('@') {
            SanType::Rfc822Name(ia5(n)?)
        } else {
            SanType::DnsName(ia5(n)?)
        });
    }
    for ip in ip_sans {
        let ip: IpAddr = ip.parse().map_err(|_| format!("invalid IP SAN {ip:?}"))?;
        params.subject_alt_names.push(SanType::IpAddress(ip));
    }
    for u in uri_sans {
        params.subject_alt_names.push(SanType::URI(ia5(u)?));
    }
    params
        .serialize_request(key)
        .and_then(|csr| csr.pem())
        .map_err(|e| format!("building the CSR: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_matches_its_certificate_and_no_other() {
        for ty in [KeyType::Ec(256), KeyType::Ec(384)] {
            let (kp, pem) = generate_key(ty).unwrap();
            let mut params = CertificateParams::new(vec!["a.example".to_string()]).unwrap();
            params
                .distinguished_name
                .push(DnType::CommonName, "a.example");
            let cert = params.self_signed(&kp).unwrap();
            let info = parse_cert(&cert.pem()).unwrap();
            assert!(key_matches(&info, &pem));
            assert_eq!(info.common_name.as_deref(), Some("a.example"));
            assert!(info.not_after > info.not_before);
            let (_, other) = generate_key(ty).unwrap();
            assert!(!key_matches(&info, &other));
            assert!(!key_matches(&info, "garbage"));
        }
        let (kp, _) = generate_key(KeyType::Ec(256)).unwrap();
        let csr = csr_pem(&kp, "x", &["x.example".into()], &["10.0.0.1".into()], &[]).unwrap();
        assert!(csr.starts_with("-----BEGIN CERTIFICATE REQUEST-----"));
        assert!(csr_pem(&kp, "x", &[], &["not-an-ip".into()], &[]).is_err());
    }
}
