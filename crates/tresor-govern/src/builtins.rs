//! Tresor's Rego built-ins, under the `tresor.` prefix (documented in
//! docs/governing-policies.md):
//!
//! - `tresor.x509.parse_csr(pem)`: a PEM certificate request;
//! - `tresor.x509.parse_certificate(pem)`: the first certificate of a PEM bundle.
//!
//! Both answer one object in the words of Vault's PKI API: `key_type` (`rsa`, `ec`,
//! `ed25519`, `ed448` or `unknown`), `key_bits` (the RSA modulus size, the EC curve size:
//! 224/256/384/521; 0 for Edwards keys, as Vault's roles say), `subject` (`common_name`,
//! `organization`, `organizational_unit`, `country`, `locality`, `province`, and `string` in
//! RFC 4514 form), the SANs (`dns_names`, `ip_addresses`, `email_addresses`, `uri_sans`) and
//! `signature_algorithm`; a certificate adds `serial_number`, `issuer`, `not_before` and
//! `not_after` (RFC 3339), `not_before_unix`, `not_after_unix`, `validity_seconds` and
//! `is_ca`. OPA's `crypto.x509.parse_certificate_request` shape does not fit: regorus cannot
//! hold an RSA modulus as a number, and a policy wants the key size, not the key.
//! A value that does not parse is an evaluation error (the request is denied).

use regorus::{Engine, Value};
use serde_json::{Map, Value as Json, json};
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::prelude::*;
use x509_parser::public_key::PublicKey;

/// Adds the built-ins to an engine.
pub fn register(e: &mut Engine) {
    // The names are fixed and new to the engine; adding one cannot fail.
    let _ = e.add_extension(
        "tresor.x509.parse_csr".into(),
        1,
        Box::new(|args: Vec<Value>| {
            let pem = pem_arg(&args, "tresor.x509.parse_csr")?;
            parse_csr(&pem)
                .map(Value::from)
                .map_err(|e| anyhow::anyhow!("tresor.x509.parse_csr: {e}"))
        }),
    );
    let _ = e.add_extension(
        "tresor.x509.parse_certificate".into(),
        1,
        Box::new(|args: Vec<Value>| {
            let pem = pem_arg(&args, "tresor.x509.parse_certificate")?;
            parse_certificate(&pem)
                .map(Value::from)
                .map_err(|e| anyhow::anyhow!("tresor.x509.parse_certificate: {e}"))
        }),
    );
}

fn pem_arg(args: &[Value], name: &str) -> anyhow::Result<String> {
    match args.first() {
        Some(Value::String(s)) => Ok(s.to_string()),
        _ => Err(anyhow::anyhow!("{name}: the argument must be a PEM string")),
    }
}

fn first_pem(pem: &str, label: &[&str]) -> Result<Vec<u8>, String> {
    for p in Pem::iter_from_buffer(pem.trim().as_bytes()) {
        let p = p.map_err(|e| format!("not PEM: {e}"))?;
        if label.contains(&p.label.as_str()) {
            return Ok(p.contents);
        }
    }
    Err(format!("no {} block in the PEM", label[0]))
}

/// The key type and size of a public key, in Vault's words.
fn key_facts(spki: &SubjectPublicKeyInfo<'_>) -> (&'static str, u64) {
    let alg = spki.algorithm.algorithm.to_id_string();
    match alg.as_str() {
        "1.3.101.112" => return ("ed25519", 0),
        "1.3.101.113" => return ("ed448", 0),
        _ => {}
    }
    match spki.parsed() {
        Ok(PublicKey::RSA(rsa)) => ("rsa", rsa.key_size() as u64),
        Ok(PublicKey::EC(point)) => {
            let curve = spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.as_oid().ok())
                .map(|o| o.to_id_string());
            let bits = match curve.as_deref() {
                Some("1.2.840.10045.3.1.1") => 192,
                Some("1.3.132.0.33") => 224,
                Some("1.2.840.10045.3.1.7") => 256,
                Some("1.3.132.0.34") => 384,
                Some("1.3.132.0.35") => 521,
                // An unnamed curve: the size of the point's coordinates.
                _ => point.key_size() as u64,
            };
            ("ec", bits)
        }
        _ => ("unknown", 0),
    }
}

fn subject(name: &X509Name<'_>) -> Json {
    let all = |it: &mut dyn Iterator<Item = &AttributeTypeAndValue<'_>>| -> Vec<String> {
        it.filter_map(|a| a.as_str().ok().map(str::to_owned))
            .collect()
    };
    json!({
        "common_name": all(&mut name.iter_common_name()).into_iter().next().unwrap_or_default(),
        "organization": all(&mut name.iter_organization()),
        "organizational_unit": all(&mut name.iter_organizational_unit()),
        "country": all(&mut name.iter_country()),
        "locality": all(&mut name.iter_locality()),
        "province": all(&mut name.iter_state_or_province()),
        "string": name.to_string(),
    })
}

#[derive(Default)]
struct Sans {
    dns: Vec<String>,
    ip: Vec<String>,
    email: Vec<String>,
    uri: Vec<String>,
}

impl Sans {
    fn add(&mut self, ext: &ParsedExtension<'_>) {
        let ParsedExtension::SubjectAlternativeName(san) = ext else {
            return;
        };
        for n in &san.general_names {
            match n {
                GeneralName::DNSName(d) => self.dns.push((*d).to_owned()),
                GeneralName::RFC822Name(e) => self.email.push((*e).to_owned()),
                GeneralName::URI(u) => self.uri.push((*u).to_owned()),
                GeneralName::IPAddress(b) => match b.len() {
                    4 => self.ip.push(
                        std::net::Ipv4Addr::from(<[u8; 4]>::try_from(*b).unwrap_or_default())
                            .to_string(),
                    ),
                    16 => self.ip.push(
                        std::net::Ipv6Addr::from(<[u8; 16]>::try_from(*b).unwrap_or_default())
                            .to_string(),
                    ),
                    _ => {}
                },
                _ => {}
            }
        }
    }

    fn into_json(self, m: &mut Map<String, Json>) {
        m.insert("dns_names".into(), json!(self.dns));
        m.insert("ip_addresses".into(), json!(self.ip));
        m.insert("email_addresses".into(), json!(self.email));
        m.insert("uri_sans".into(), json!(self.uri));
    }
}

fn signature_algorithm(oid: &str) -> &'static str {
    match oid {
        "1.2.840.113549.1.1.11" => "SHA256-RSA",
        "1.2.840.113549.1.1.12" => "SHA384-RSA",
        "1.2.840.113549.1.1.13" => "SHA512-RSA",
        "1.2.840.113549.1.1.5" => "SHA1-RSA",
        "1.2.840.113549.1.1.10" => "RSA-PSS",
        "1.2.840.10045.4.3.2" => "ECDSA-SHA256",
        "1.2.840.10045.4.3.3" => "ECDSA-SHA384",
        "1.2.840.10045.4.3.4" => "ECDSA-SHA512",
        "1.2.840.10045.4.1" => "ECDSA-SHA1",
        "1.3.101.112" => "Ed25519",
        _ => "unknown",
    }
}

/// `tresor.x509.parse_csr`'s object, as JSON.
pub fn parse_csr(pem: &str) -> Result<Json, String> {
    let der = first_pem(pem, &["CERTIFICATE REQUEST", "NEW CERTIFICATE REQUEST"])?;
    let (_, csr) = X509CertificationRequest::from_der(&der)
        .map_err(|e| format!("not a certificate request: {e}"))?;
    let info = &csr.certification_request_info;
    let (key_type, key_bits) = key_facts(&info.subject_pki);
    let mut m = Map::new();
    m.insert("key_type".into(), json!(key_type));
    m.insert("key_bits".into(), json!(key_bits));
    m.insert("subject".into(), subject(&info.subject));
    let mut sans = Sans::default();
    if let Some(exts) = csr.requested_extensions() {
        for e in exts {
            sans.add(e);
        }
    }
    sans.into_json(&mut m);
    m.insert(
        "signature_algorithm".into(),
        json!(signature_algorithm(
            &csr.signature_algorithm.algorithm.to_id_string()
        )),
    );
    Ok(Json::Object(m))
}

fn rfc3339(t: &ASN1Time) -> String {
    t.to_datetime()
        .format(&::time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// `tresor.x509.parse_certificate`'s object, as JSON.
pub fn parse_certificate(pem: &str) -> Result<Json, String> {
    let der = first_pem(pem, &["CERTIFICATE"])?;
    let (_, cert) =
        X509Certificate::from_der(&der).map_err(|e| format!("not a certificate: {e}"))?;
    let (key_type, key_bits) = key_facts(cert.public_key());
    let mut m = Map::new();
    m.insert("key_type".into(), json!(key_type));
    m.insert("key_bits".into(), json!(key_bits));
    m.insert("subject".into(), subject(cert.subject()));
    m.insert("issuer".into(), subject(cert.issuer()));
    let mut sans = Sans::default();
    for e in cert.extensions() {
        sans.add(e.parsed_extension());
    }
    sans.into_json(&mut m);
    let v = cert.validity();
    let (nb, na) = (v.not_before.timestamp(), v.not_after.timestamp());
    m.insert("serial_number".into(), json!(cert.raw_serial_as_string()));
    m.insert("not_before".into(), json!(rfc3339(&v.not_before)));
    m.insert("not_after".into(), json!(rfc3339(&v.not_after)));
    m.insert("not_before_unix".into(), json!(nb));
    m.insert("not_after_unix".into(), json!(na));
    m.insert("validity_seconds".into(), json!(na - nb));
    m.insert("is_ca".into(), json!(cert.is_ca()));
    m.insert(
        "signature_algorithm".into(),
        json!(signature_algorithm(
            &cert.signature_algorithm.algorithm.to_id_string()
        )),
    );
    Ok(Json::Object(m))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:secp224r1 -subj /CN=small.example.com`
    const P224_CSR: &str = "-----BEGIN CERTIFICATE REQUEST-----
MIHEMHMCAQAwHDEaMBgGA1UEAwwRc21hbGwuZXhhbXBsZS5jb20wTjAQBgcqhkjO
PQIBBgUrgQQAIQM6AATmMX96F9wlFZn1HkwuWm5JuThWu5sEx3p5e/QhjL8pdVf9
0rDfAjj4Pc2aCFNgtFHchxq57QZGd6AAMAoGCCqGSM49BAMCA0EAMD4CHQCZ6rtY
UYe1QP9V111SYFfAjhdTQvIpwrFRH01UAh0Atgrlj5wS+rpHMnjV2zvu8BSq30Eu
m322JjJt0A==
-----END CERTIFICATE REQUEST-----";

    fn csr(alg: &'static rcgen::SignatureAlgorithm, sans: Vec<String>) -> String {
        let key = rcgen::KeyPair::generate_for(alg).unwrap();
        let mut params = rcgen::CertificateParams::new(sans).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "web.example.com");
        params
            .distinguished_name
            .push(rcgen::DnType::OrganizationName, "Example");
        params.serialize_request(&key).unwrap().pem().unwrap()
    }

    #[test]
    fn csr_key_types_and_sizes() {
        let p = parse_csr(&csr(&rcgen::PKCS_ECDSA_P256_SHA256, vec![])).unwrap();
        assert_eq!(
            (p["key_type"].as_str(), p["key_bits"].as_u64()),
            (Some("ec"), Some(256))
        );
        let p = parse_csr(&csr(&rcgen::PKCS_ECDSA_P384_SHA384, vec![])).unwrap();
        assert_eq!(p["key_bits"], 384);
        let p = parse_csr(&csr(&rcgen::PKCS_ED25519, vec![])).unwrap();
        assert_eq!(
            (p["key_type"].as_str(), p["key_bits"].as_u64()),
            (Some("ed25519"), Some(0))
        );
        let p = parse_csr(P224_CSR).unwrap();
        assert_eq!(
            (p["key_type"].as_str(), p["key_bits"].as_u64()),
            (Some("ec"), Some(224))
        );
        assert_eq!(p["subject"]["common_name"], "small.example.com");
    }

    #[test]
    fn csr_subject_and_sans() {
        let p = parse_csr(&csr(
            &rcgen::PKCS_ECDSA_P256_SHA256,
            vec!["web.example.com".into(), "10.0.0.1".into()],
        ))
        .unwrap();
        assert_eq!(p["subject"]["common_name"], "web.example.com");
        assert_eq!(p["subject"]["organization"], json!(["Example"]));
        assert_eq!(p["dns_names"], json!(["web.example.com"]));
        assert_eq!(p["ip_addresses"], json!(["10.0.0.1"]));
        assert_eq!(p["signature_algorithm"], "ECDSA-SHA256");
    }

    #[test]
    fn certificate_validity_and_key() {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["a.example.com".into()]).unwrap();
        params.not_before = rcgen::date_time_ymd(2026, 1, 1);
        params.not_after = rcgen::date_time_ymd(2026, 1, 31);
        let cert = params.self_signed(&key).unwrap();
        let p = parse_certificate(&cert.pem()).unwrap();
        assert_eq!(
            (p["key_type"].as_str(), p["key_bits"].as_u64()),
            (Some("ec"), Some(384))
        );
        assert_eq!(p["validity_seconds"], 30 * 86400);
        assert_eq!(p["not_before"], "2026-01-01T00:00:00Z");
        assert_eq!(p["dns_names"], json!(["a.example.com"]));
        assert_eq!(p["is_ca"], false);
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(parse_csr("not pem").is_err());
        assert!(parse_certificate(P224_CSR).is_err());
    }

    #[test]
    fn built_ins_are_callable_from_rego() {
        let mut e = crate::policy::engine(crate::policy::DEFAULT_EVAL_TIMEOUT);
        e.add_policy(
            "t.rego".into(),
            "package t\nbits := tresor.x509.parse_csr(input.csr).key_bits\n".into(),
        )
        .unwrap();
        e.set_input(Value::from(json!({"csr": P224_CSR})));
        assert_eq!(
            e.eval_rule("data.t.bits".into()).unwrap(),
            Value::from(224u64)
        );
    }
}
