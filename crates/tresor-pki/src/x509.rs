//! X.509 building and reading: certificates, CSRs and CRLs assembled from typed parts and
//! signed with a [`PrivateKey`], and the facts the engine needs read back out of certificates
//! and CSRs (serial, validity, names, key identifiers, signatures checked).
//!
//! Certificates are built directly on `x509-cert`'s types rather than through a generator so
//! that the issuer name is copied byte for byte from the issuing certificate (a re-encoded
//! name can break chain building in strict verifiers) and so that names may repeat attributes
//! (several `OU`s, `DC=example,DC=com`).

use std::net::IpAddr;
use std::time::Duration;

use der::asn1::{
    Any, BitString, GeneralizedTime, Ia5String, Ia5StringRef, OctetString, PrintableStringRef,
    SetOfVec, TeletexStringRef, UtcTime, Utf8StringRef,
};
use der::oid::{AssociatedOid, ObjectIdentifier};
use der::{Decode, Encode};
use x509_cert::attr::{Attribute, AttributeTypeAndValue};
use x509_cert::certificate::{Certificate, TbsCertificate, Version};
use x509_cert::crl::{CertificateList, RevokedCert, TbsCertList};
use x509_cert::ext::Extension;
use x509_cert::ext::pkix::certpolicy::PolicyInformation;
use x509_cert::ext::pkix::constraints::name::{GeneralSubtree, NameConstraints};
use x509_cert::ext::pkix::crl::dp::DistributionPoint;
use x509_cert::ext::pkix::crl::{CrlDistributionPoints, CrlNumber};
use x509_cert::ext::pkix::name::{DistributionPointName, GeneralName, OtherName};
use x509_cert::ext::pkix::{
    AccessDescription, AuthorityInfoAccessSyntax, AuthorityKeyIdentifier, BasicConstraints,
    CertificatePolicies, ExtendedKeyUsage, SubjectAltName, SubjectKeyIdentifier,
};
use x509_cert::name::{Name, RdnSequence, RelativeDistinguishedName};
use x509_cert::request::{CertReq, CertReqInfo, ExtensionReq};
use x509_cert::serial_number::SerialNumber;
use x509_cert::spki::SubjectPublicKeyInfoOwned;
use x509_cert::time::{Time, Validity};

use crate::keys::{PrivateKey, SigAlg};

/// Errors building or reading X.509 structures.
#[derive(Debug, thiserror::Error)]
pub enum X509Error {
    #[error("encoding failed: {0}")]
    Encode(String),
    #[error("unable to parse certificate: {0}")]
    BadCertificate(String),
    #[error("unable to parse csr: {0}")]
    BadCsr(String),
    #[error("csr signature is invalid")]
    CsrSignature,
    #[error("invalid value {value:?} for {field}")]
    BadValue { field: &'static str, value: String },
    #[error("signing failed")]
    Signing,
}

fn enc(e: der::Error) -> X509Error {
    X509Error::Encode(e.to_string())
}

pub const OID_CN: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.4.3");
pub const OID_SERIAL_NUMBER: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.4.5");
pub const OID_C: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.4.6");
pub const OID_L: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.4.7");
pub const OID_ST: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.4.8");
pub const OID_STREET: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.4.9");
pub const OID_O: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.4.10");
pub const OID_OU: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.4.11");
pub const OID_POSTAL_CODE: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.4.17");
const OID_AD_OCSP: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.1");
const OID_AD_CA_ISSUERS: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.2");
const OID_DELTA_CRL_INDICATOR: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.27");

/// The subject fields Vault takes as parameters. Lists may repeat an attribute.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Subject {
    pub common_name: String,
    pub serial_number: String,
    pub country: Vec<String>,
    pub organization: Vec<String>,
    pub ou: Vec<String>,
    pub locality: Vec<String>,
    pub province: Vec<String>,
    pub street_address: Vec<String>,
    pub postal_code: Vec<String>,
}

/// An attribute value as PrintableString when every character allows it, else UTF8String
/// (Go's encoding, which Vault's certificates use).
fn dir_string(s: &str) -> Result<Any, X509Error> {
    let printable = s
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || " '()+,-./:=?".contains(c));
    if printable && let Ok(p) = PrintableStringRef::new(s) {
        return Any::encode_from(&p).map_err(enc);
    }
    Any::encode_from(&Utf8StringRef::new(s).map_err(enc)?).map_err(enc)
}

impl Subject {
    /// The distinguished name, in Go's attribute order (C, O, OU, L, ST, STREET, postalCode,
    /// serialNumber, CN), one attribute per RDN.
    pub fn to_name(&self) -> Result<Name, X509Error> {
        let mut rdns = Vec::new();
        let mut push = |oid: ObjectIdentifier, v: &str| -> Result<(), X509Error> {
            if v.is_empty() {
                return Ok(());
            }
            let value = if oid == OID_C {
                Any::encode_from(
                    &PrintableStringRef::new(v).map_err(|_| X509Error::BadValue {
                        field: "country",
                        value: v.to_owned(),
                    })?,
                )
                .map_err(enc)?
            } else {
                dir_string(v)?
            };
            let atv = AttributeTypeAndValue { oid, value };
            let set = SetOfVec::try_from(vec![atv]).map_err(enc)?;
            rdns.push(RelativeDistinguishedName(set));
            Ok(())
        };
        for (oid, list) in [
            (OID_C, &self.country),
            (OID_O, &self.organization),
            (OID_OU, &self.ou),
            (OID_L, &self.locality),
            (OID_ST, &self.province),
            (OID_STREET, &self.street_address),
            (OID_POSTAL_CODE, &self.postal_code),
        ] {
            for v in list {
                push(oid, v)?;
            }
        }
        push(OID_SERIAL_NUMBER, &self.serial_number)?;
        push(OID_CN, &self.common_name)?;
        Ok(RdnSequence(rdns))
    }
}

/// The string of a directory attribute value, whatever its string type.
pub fn attr_string(v: &Any) -> Option<String> {
    if let Ok(s) = v.decode_as::<Utf8StringRef<'_>>() {
        return Some(s.as_str().to_owned());
    }
    if let Ok(s) = v.decode_as::<PrintableStringRef<'_>>() {
        return Some(s.as_str().to_owned());
    }
    if let Ok(s) = v.decode_as::<Ia5StringRef<'_>>() {
        return Some(s.as_str().to_owned());
    }
    if let Ok(s) = v.decode_as::<TeletexStringRef<'_>>() {
        return Some(s.as_str().to_owned());
    }
    None
}

/// Every value of attribute `oid` in a name.
pub fn name_values(name: &Name, oid: ObjectIdentifier) -> Vec<String> {
    name.0
        .iter()
        .flat_map(|rdn| rdn.0.iter())
        .filter(|atv| atv.oid == oid)
        .filter_map(|atv| attr_string(&atv.value))
        .collect()
}

/// The (last) common name of a name, or "".
pub fn common_name(name: &Name) -> String {
    name_values(name, OID_CN).pop().unwrap_or_default()
}

/// Subject alternative names of every kind.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sans {
    pub dns: Vec<String>,
    pub email: Vec<String>,
    pub ip: Vec<IpAddr>,
    pub uri: Vec<String>,
    /// (type OID, UTF-8 value) pairs.
    pub other: Vec<(ObjectIdentifier, String)>,
}

impl Sans {
    pub fn is_empty(&self) -> bool {
        self.dns.is_empty()
            && self.email.is_empty()
            && self.ip.is_empty()
            && self.uri.is_empty()
            && self.other.is_empty()
    }

    fn general_names(&self) -> Result<Vec<GeneralName>, X509Error> {
        let ia5 = |field: &'static str, s: &str| {
            Ia5String::new(s).map_err(|_| X509Error::BadValue {
                field,
                value: s.to_owned(),
            })
        };
        let mut out = Vec::new();
        for d in &self.dns {
            out.push(GeneralName::DnsName(ia5("alt_names", d)?));
        }
        for e in &self.email {
            out.push(GeneralName::Rfc822Name(ia5("alt_names", e)?));
        }
        for ip in &self.ip {
            out.push(GeneralName::from(*ip));
        }
        for u in &self.uri {
            out.push(GeneralName::UniformResourceIdentifier(ia5("uri_sans", u)?));
        }
        for (oid, v) in &self.other {
            out.push(GeneralName::OtherName(OtherName {
                type_id: *oid,
                value: Any::encode_from(&Utf8StringRef::new(v).map_err(enc)?).map_err(enc)?,
            }));
        }
        Ok(out)
    }

    fn from_general_names(names: &[GeneralName]) -> Sans {
        let mut s = Sans::default();
        for n in names {
            match n {
                GeneralName::DnsName(d) => s.dns.push(d.to_string()),
                GeneralName::Rfc822Name(e) => s.email.push(e.to_string()),
                GeneralName::UniformResourceIdentifier(u) => s.uri.push(u.to_string()),
                GeneralName::IpAddress(o) => match o.as_bytes().len() {
                    4 => {
                        let b: [u8; 4] = o.as_bytes().try_into().unwrap_or_default();
                        s.ip.push(IpAddr::from(b));
                    }
                    16 => {
                        let b: [u8; 16] = o.as_bytes().try_into().unwrap_or_default();
                        s.ip.push(IpAddr::from(b));
                    }
                    _ => {}
                },
                GeneralName::OtherName(o) => {
                    if let Some(v) = attr_string(&o.value) {
                        s.other.push((o.type_id, v));
                    }
                }
                _ => {}
            }
        }
        s
    }
}

/// Key usage bits, in RFC 5280 order.
pub const KU_NAMES: [&str; 9] = [
    "DigitalSignature",
    "ContentCommitment",
    "KeyEncipherment",
    "DataEncipherment",
    "KeyAgreement",
    "CertSign",
    "CRLSign",
    "EncipherOnly",
    "DecipherOnly",
];

/// Parses Vault's key usage names (case-insensitive) into bit flags (bit i = RFC bit i).
pub fn key_usage_bits(names: &[String]) -> Result<u16, X509Error> {
    let mut bits = 0u16;
    for n in names {
        let i = KU_NAMES
            .iter()
            .position(|k| k.eq_ignore_ascii_case(n.trim()))
            .ok_or_else(|| X509Error::BadValue {
                field: "key_usage",
                value: n.clone(),
            })?;
        bits |= 1 << i;
    }
    Ok(bits)
}

/// Extended key usage names Vault accepts, with their OIDs.
const EKU: &[(&str, &str)] = &[
    ("Any", "2.5.29.37.0"),
    ("ServerAuth", "1.3.6.1.5.5.7.3.1"),
    ("ClientAuth", "1.3.6.1.5.5.7.3.2"),
    ("CodeSigning", "1.3.6.1.5.5.7.3.3"),
    ("EmailProtection", "1.3.6.1.5.5.7.3.4"),
    ("IPSECEndSystem", "1.3.6.1.5.5.7.3.5"),
    ("IPSECTunnel", "1.3.6.1.5.5.7.3.6"),
    ("IPSECUser", "1.3.6.1.5.5.7.3.7"),
    ("TimeStamping", "1.3.6.1.5.5.7.3.8"),
    ("OCSPSigning", "1.3.6.1.5.5.7.3.9"),
    ("MicrosoftServerGatedCrypto", "1.3.6.1.4.1.311.10.3.3"),
    ("NetscapeServerGatedCrypto", "2.16.840.1.113730.4.1"),
    ("MicrosoftCommercialCodeSigning", "1.3.6.1.4.1.311.2.1.22"),
    ("MicrosoftKernelCodeSigning", "1.3.6.1.4.1.311.61.1.1"),
];

pub fn eku_oid(name: &str) -> Result<ObjectIdentifier, X509Error> {
    EKU.iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name.trim()))
        .map(|(_, o)| ObjectIdentifier::new_unwrap(o))
        .ok_or_else(|| X509Error::BadValue {
            field: "ext_key_usage",
            value: name.to_owned(),
        })
}

pub fn parse_oid(field: &'static str, s: &str) -> Result<ObjectIdentifier, X509Error> {
    ObjectIdentifier::new(s.trim()).map_err(|_| X509Error::BadValue {
        field,
        value: s.to_owned(),
    })
}

/// Authority information written into certificates (Vault's `config/urls`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AiaUrls {
    pub issuing_certificates: Vec<String>,
    pub crl_distribution_points: Vec<String>,
    pub ocsp_servers: Vec<String>,
}

/// Everything that goes into one certificate except its issuer.
#[derive(Debug, Clone, Default)]
pub struct CertSpec {
    pub serial: Vec<u8>,
    pub subject: Name,
    pub spki_der: Vec<u8>,
    pub not_before: i64,
    pub not_after: i64,
    /// `Some(path_len)` for a CA certificate (`None` inside means unlimited).
    pub ca: Option<Option<u8>>,
    /// Writes `CA:FALSE` basic constraints into a leaf.
    pub basic_constraints_for_leaf: bool,
    pub key_usage: u16,
    pub ext_key_usage: Vec<ObjectIdentifier>,
    pub sans: Sans,
    pub urls: AiaUrls,
    pub policy_identifiers: Vec<ObjectIdentifier>,
    pub permitted_dns_domains: Vec<String>,
    pub excluded_dns_domains: Vec<String>,
    /// A subject key identifier to use instead of the SHA-1 of the key.
    pub skid: Option<Vec<u8>>,
}

/// What signs: the issuing certificate's subject (copied byte for byte), its key identifier
/// and its key.
pub struct SignerRef<'a> {
    pub name: &'a Name,
    pub key_id: &'a [u8],
    pub key: &'a PrivateKey,
    pub alg: SigAlg,
}

/// A certificate time: UTCTime through 2049, GeneralizedTime after, as RFC 5280 requires.
pub fn x509_time(secs: i64) -> Result<Time, X509Error> {
    let d = Duration::from_secs(u64::try_from(secs.max(0)).unwrap_or(0));
    let dt = der::DateTime::from_unix_duration(d).map_err(enc)?;
    Ok(if dt.year() < 2050 {
        Time::UtcTime(UtcTime::from_date_time(dt).map_err(enc)?)
    } else {
        Time::GeneralTime(GeneralizedTime::from_date_time(dt))
    })
}

fn ext<T: Encode + AssociatedOid>(critical: bool, v: &T) -> Result<Extension, X509Error> {
    Ok(Extension {
        extn_id: T::OID,
        critical,
        extn_value: OctetString::new(v.to_der().map_err(enc)?).map_err(enc)?,
    })
}

fn raw_ext(oid: ObjectIdentifier, critical: bool, der: Vec<u8>) -> Result<Extension, X509Error> {
    Ok(Extension {
        extn_id: oid,
        critical,
        extn_value: OctetString::new(der).map_err(enc)?,
    })
}

/// The KeyUsage extension value: a named bit string with trailing zero bits removed.
fn key_usage_der(bits: u16) -> Result<Vec<u8>, X509Error> {
    let highest = 15 - bits.leading_zeros() as u8; // highest set bit index
    let len = (highest / 8 + 1) as usize;
    let mut bytes = vec![0u8; len];
    for i in 0..=highest {
        if bits & (1 << i) != 0 {
            bytes[(i / 8) as usize] |= 0x80 >> (i % 8);
        }
    }
    let unused = 7 - (highest % 8);
    BitString::new(unused, bytes)
        .and_then(|b| b.to_der())
        .map_err(enc)
}

fn uri_names(urls: &[String]) -> Result<Vec<GeneralName>, X509Error> {
    urls.iter()
        .map(|u| {
            Ia5String::new(u)
                .map(GeneralName::UniformResourceIdentifier)
                .map_err(|_| X509Error::BadValue {
                    field: "urls",
                    value: u.clone(),
                })
        })
        .collect()
}

/// The SHA-1 key identifier of a DER SubjectPublicKeyInfo.
pub fn key_identifier(spki_der: &[u8]) -> Vec<u8> {
    crate::keys::key_id(spki_der)
}

fn serial(bytes: &[u8]) -> Result<SerialNumber, X509Error> {
    SerialNumber::new(bytes).map_err(enc)
}

/// Builds and signs a certificate; returns its DER.
pub fn build_certificate(spec: &CertSpec, signer: &SignerRef<'_>) -> Result<Vec<u8>, X509Error> {
    let spki = SubjectPublicKeyInfoOwned::from_der(&spec.spki_der).map_err(enc)?;
    let mut exts = Vec::new();
    let skid = spec
        .skid
        .clone()
        .unwrap_or_else(|| key_identifier(&spec.spki_der));
    match spec.ca {
        Some(path_len) => exts.push(ext(
            true,
            &BasicConstraints {
                ca: true,
                path_len_constraint: path_len,
            },
        )?),
        None if spec.basic_constraints_for_leaf => exts.push(ext(
            true,
            &BasicConstraints {
                ca: false,
                path_len_constraint: None,
            },
        )?),
        None => {}
    }
    if spec.key_usage != 0 {
        exts.push(raw_ext(
            ObjectIdentifier::new_unwrap("2.5.29.15"),
            true,
            key_usage_der(spec.key_usage)?,
        )?);
    }
    if !spec.ext_key_usage.is_empty() {
        exts.push(ext(false, &ExtendedKeyUsage(spec.ext_key_usage.clone()))?);
    }
    exts.push(ext(
        false,
        &SubjectKeyIdentifier(OctetString::new(skid).map_err(enc)?),
    )?);
    exts.push(ext(
        false,
        &AuthorityKeyIdentifier {
            key_identifier: Some(OctetString::new(signer.key_id).map_err(enc)?),
            authority_cert_issuer: None,
            authority_cert_serial_number: None,
        },
    )?);
    let mut aia = Vec::new();
    for u in uri_names(&spec.urls.ocsp_servers)? {
        aia.push(AccessDescription {
            access_method: OID_AD_OCSP,
            access_location: u,
        });
    }
    for u in uri_names(&spec.urls.issuing_certificates)? {
        aia.push(AccessDescription {
            access_method: OID_AD_CA_ISSUERS,
            access_location: u,
        });
    }
    if !aia.is_empty() {
        exts.push(ext(false, &AuthorityInfoAccessSyntax(aia))?);
    }
    if !spec.sans.is_empty() {
        // The SAN extension is critical when the subject is empty (RFC 5280 4.2.1.6).
        exts.push(ext(
            spec.subject.0.is_empty(),
            &SubjectAltName(spec.sans.general_names()?),
        )?);
    }
    if !spec.permitted_dns_domains.is_empty() || !spec.excluded_dns_domains.is_empty() {
        let subtrees = |list: &[String]| -> Result<Option<Vec<GeneralSubtree>>, X509Error> {
            if list.is_empty() {
                return Ok(None);
            }
            list.iter()
                .map(|d| {
                    Ok(GeneralSubtree {
                        base: GeneralName::DnsName(Ia5String::new(d).map_err(|_| {
                            X509Error::BadValue {
                                field: "permitted_dns_domains",
                                value: d.clone(),
                            }
                        })?),
                        minimum: 0,
                        maximum: None,
                    })
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Some)
        };
        exts.push(ext(
            true,
            &NameConstraints {
                permitted_subtrees: subtrees(&spec.permitted_dns_domains)?,
                excluded_subtrees: subtrees(&spec.excluded_dns_domains)?,
            },
        )?);
    }
    if !spec.urls.crl_distribution_points.is_empty() {
        let dps = vec![DistributionPoint {
            distribution_point: Some(DistributionPointName::FullName(uri_names(
                &spec.urls.crl_distribution_points,
            )?)),
            reasons: None,
            crl_issuer: None,
        }];
        exts.push(ext(false, &CrlDistributionPoints(dps))?);
    }
    if !spec.policy_identifiers.is_empty() {
        let policies = spec
            .policy_identifiers
            .iter()
            .map(|oid| PolicyInformation {
                policy_identifier: *oid,
                policy_qualifiers: None,
            })
            .collect();
        exts.push(ext(false, &CertificatePolicies(policies))?);
    }
    let tbs = TbsCertificate {
        version: Version::V3,
        serial_number: serial(&spec.serial)?,
        signature: signer.alg.identifier(),
        issuer: signer.name.clone(),
        validity: Validity {
            not_before: x509_time(spec.not_before)?,
            not_after: x509_time(spec.not_after)?,
        },
        subject: spec.subject.clone(),
        subject_public_key_info: spki,
        issuer_unique_id: None,
        subject_unique_id: None,
        extensions: Some(exts),
    };
    sign_tbs(tbs, signer)
}

/// Signs a to-be-signed certificate; returns the certificate's DER.
fn sign_tbs(tbs: TbsCertificate, signer: &SignerRef<'_>) -> Result<Vec<u8>, X509Error> {
    let tbs_der = tbs.to_der().map_err(enc)?;
    let sig = signer
        .key
        .sign(signer.alg, &tbs_der)
        .map_err(|_| X509Error::Signing)?;
    let cert = Certificate {
        tbs_certificate: tbs,
        signature_algorithm: signer.alg.identifier(),
        signature: BitString::from_bytes(&sig).map_err(enc)?,
    };
    cert.to_der().map_err(enc)
}

/// Signs an existing certificate again with `signer` (Vault's `sign-self-issued`): subject,
/// key, serial, validity and every extension are kept; only the issuer name, the authority
/// key identifier and the signature change.
pub fn resign(der: &[u8], signer: &SignerRef<'_>) -> Result<Vec<u8>, X509Error> {
    let cert = Certificate::from_der(der).map_err(|e| X509Error::BadCertificate(e.to_string()))?;
    let mut tbs = cert.tbs_certificate;
    let mut exts: Vec<Extension> = tbs
        .extensions
        .take()
        .unwrap_or_default()
        .into_iter()
        .filter(|e| e.extn_id != AuthorityKeyIdentifier::OID)
        .collect();
    exts.push(ext(
        false,
        &AuthorityKeyIdentifier {
            key_identifier: Some(OctetString::new(signer.key_id).map_err(enc)?),
            authority_cert_issuer: None,
            authority_cert_serial_number: None,
        },
    )?);
    tbs.version = Version::V3;
    tbs.extensions = Some(exts);
    tbs.signature = signer.alg.identifier();
    tbs.issuer = signer.name.clone();
    sign_tbs(tbs, signer)
}

/// Builds a PKCS#10 request for `key` with the subject and SANs (Vault's intermediate CSRs),
/// optionally asking for CA basic constraints.
pub fn build_csr(
    subject: &Name,
    sans: &Sans,
    key: &PrivateKey,
    add_basic_constraints: bool,
) -> Result<Vec<u8>, X509Error> {
    let mut exts = Vec::new();
    if !sans.is_empty() {
        exts.push(ext(false, &SubjectAltName(sans.general_names()?))?);
    }
    if add_basic_constraints {
        exts.push(ext(
            true,
            &BasicConstraints {
                ca: true,
                path_len_constraint: None,
            },
        )?);
    }
    let mut attributes = SetOfVec::new();
    if !exts.is_empty() {
        let value = Any::encode_from(&ExtensionReq(exts)).map_err(enc)?;
        attributes
            .insert(Attribute {
                oid: ExtensionReq::OID,
                values: SetOfVec::try_from(vec![value]).map_err(enc)?,
            })
            .map_err(enc)?;
    }
    let info = CertReqInfo {
        version: x509_cert::request::Version::V1,
        subject: subject.clone(),
        public_key: SubjectPublicKeyInfoOwned::from_der(key.spki_der()).map_err(enc)?,
        attributes,
    };
    let alg = key.sig_alg(0);
    let info_der = info.to_der().map_err(enc)?;
    let sig = key.sign(alg, &info_der).map_err(|_| X509Error::Signing)?;
    CertReq {
        info,
        algorithm: alg.identifier(),
        signature: BitString::from_bytes(&sig).map_err(enc)?,
    }
    .to_der()
    .map_err(enc)
}

/// One revoked certificate on a CRL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrlEntry {
    pub serial: Vec<u8>,
    pub revoked_at: i64,
}

/// A CRL to sign: `delta_of` makes it a delta CRL against that base CRL number.
pub struct CrlSpec<'a> {
    pub this_update: i64,
    pub next_update: i64,
    pub number: u64,
    pub delta_of: Option<u64>,
    pub entries: &'a [CrlEntry],
}

fn uint(n: u64) -> Result<der::asn1::Uint, X509Error> {
    der::asn1::Uint::new(&n.to_be_bytes()).map_err(enc)
}

/// Builds and signs a CRL; returns its DER.
pub fn build_crl(spec: &CrlSpec<'_>, signer: &SignerRef<'_>) -> Result<Vec<u8>, X509Error> {
    let mut revoked = Vec::with_capacity(spec.entries.len());
    for e in spec.entries {
        revoked.push(RevokedCert {
            serial_number: serial(&e.serial)?,
            revocation_date: x509_time(e.revoked_at)?,
            crl_entry_extensions: None,
        });
    }
    let mut exts = vec![
        ext(
            false,
            &AuthorityKeyIdentifier {
                key_identifier: Some(OctetString::new(signer.key_id).map_err(enc)?),
                authority_cert_issuer: None,
                authority_cert_serial_number: None,
            },
        )?,
        ext(false, &CrlNumber(uint(spec.number)?))?,
    ];
    if let Some(base) = spec.delta_of {
        exts.push(raw_ext(
            OID_DELTA_CRL_INDICATOR,
            true,
            uint(base)?.to_der().map_err(enc)?,
        )?);
    }
    let tbs = TbsCertList {
        version: Version::V2,
        signature: signer.alg.identifier(),
        issuer: signer.name.clone(),
        this_update: x509_time(spec.this_update)?,
        next_update: Some(x509_time(spec.next_update)?),
        revoked_certificates: (!revoked.is_empty()).then_some(revoked),
        crl_extensions: Some(exts),
    };
    let tbs_der = tbs.to_der().map_err(enc)?;
    let sig = signer
        .key
        .sign(signer.alg, &tbs_der)
        .map_err(|_| X509Error::Signing)?;
    CertificateList {
        tbs_cert_list: tbs,
        signature_algorithm: signer.alg.identifier(),
        signature: BitString::from_bytes(&sig).map_err(enc)?,
    }
    .to_der()
    .map_err(enc)
}

/// The facts of a certificate the engine uses.
#[derive(Debug, Clone)]
pub struct CertInfo {
    pub der: Vec<u8>,
    pub serial: Vec<u8>,
    pub subject: Name,
    pub subject_der: Vec<u8>,
    pub issuer_der: Vec<u8>,
    pub not_before: i64,
    pub not_after: i64,
    pub spki_der: Vec<u8>,
    pub is_ca: bool,
    pub path_len: Option<u8>,
    pub subject_key_id: Vec<u8>,
    pub authority_key_id: Option<Vec<u8>>,
    pub sans: Sans,
}

impl CertInfo {
    pub fn common_name(&self) -> String {
        common_name(&self.subject)
    }
    pub fn self_issued(&self) -> bool {
        self.subject_der == self.issuer_der
    }
}

/// Strips the sign byte(s) of a DER integer so serials print as Vault prints them.
pub fn trim_serial(bytes: &[u8]) -> Vec<u8> {
    let start = bytes
        .iter()
        .position(|b| *b != 0)
        .unwrap_or(bytes.len().saturating_sub(1));
    bytes[start..].to_vec()
}

/// Parses a DER certificate.
pub fn parse_cert(der: &[u8]) -> Result<CertInfo, X509Error> {
    let bad = |e: der::Error| X509Error::BadCertificate(e.to_string());
    let cert = Certificate::from_der(der).map_err(bad)?;
    let tbs = &cert.tbs_certificate;
    let mut is_ca = false;
    let mut path_len = None;
    let mut ski = None;
    let mut aki = None;
    let mut sans = Sans::default();
    for e in tbs.extensions.as_deref().unwrap_or(&[]) {
        let v = e.extn_value.as_bytes();
        if e.extn_id == BasicConstraints::OID {
            let bc = BasicConstraints::from_der(v).map_err(bad)?;
            is_ca = bc.ca;
            path_len = bc.path_len_constraint;
        } else if e.extn_id == SubjectKeyIdentifier::OID {
            ski = Some(
                SubjectKeyIdentifier::from_der(v)
                    .map_err(bad)?
                    .0
                    .as_bytes()
                    .to_vec(),
            );
        } else if e.extn_id == AuthorityKeyIdentifier::OID {
            aki = AuthorityKeyIdentifier::from_der(v)
                .map_err(bad)?
                .key_identifier
                .map(|k| k.as_bytes().to_vec());
        } else if e.extn_id == SubjectAltName::OID {
            sans = Sans::from_general_names(&SubjectAltName::from_der(v).map_err(bad)?.0);
        }
    }
    let spki_der = tbs.subject_public_key_info.to_der().map_err(bad)?;
    Ok(CertInfo {
        der: der.to_vec(),
        serial: trim_serial(tbs.serial_number.as_bytes()),
        subject_der: tbs.subject.to_der().map_err(bad)?,
        issuer_der: tbs.issuer.to_der().map_err(bad)?,
        subject: tbs.subject.clone(),
        not_before: tbs.validity.not_before.to_unix_duration().as_secs() as i64,
        not_after: tbs.validity.not_after.to_unix_duration().as_secs() as i64,
        subject_key_id: ski.unwrap_or_else(|| key_identifier(&spki_der)),
        spki_der,
        is_ca,
        path_len,
        authority_key_id: aki,
        sans,
    })
}

/// The algorithm OID of a DER SubjectPublicKeyInfo (RSA, EC or Ed25519).
pub fn public_key_algorithm(spki_der: &[u8]) -> Option<ObjectIdentifier> {
    SubjectPublicKeyInfoOwned::from_der(spki_der)
        .ok()
        .map(|s| s.algorithm.oid)
}

/// Whether `child` (DER) carries a valid signature by the key of `parent` (DER).
pub fn signed_by(child_der: &[u8], parent_der: &[u8]) -> bool {
    let Ok((_, child)) = x509_parser::parse_x509_certificate(child_der) else {
        return false;
    };
    let Ok((_, parent)) = x509_parser::parse_x509_certificate(parent_der) else {
        return false;
    };
    child.tbs_certificate.issuer.as_raw() == parent.tbs_certificate.subject.as_raw()
        && child.verify_signature(Some(parent.public_key())).is_ok()
}

/// A parsed, signature-checked certificate signing request.
#[derive(Debug, Clone)]
pub struct CsrInfo {
    pub subject: Name,
    pub spki_der: Vec<u8>,
    pub sans: Sans,
    /// The extensions it asks for (sign-verbatim copies some of them).
    pub extensions: Vec<Extension>,
}

/// Parses a PEM (or DER) CSR and verifies its self-signature.
pub fn parse_csr(text_or_der: &[u8]) -> Result<CsrInfo, X509Error> {
    let der = match std::str::from_utf8(text_or_der) {
        Ok(text) if text.contains("-----BEGIN") => crate::pem::parse_all(text)
            .map_err(|e| X509Error::BadCsr(e.to_string()))?
            .into_iter()
            .find(|b| b.label.contains("CERTIFICATE REQUEST"))
            .map(|b| b.der)
            .ok_or_else(|| X509Error::BadCsr("no certificate request in pem".into()))?,
        _ => text_or_der.to_vec(),
    };
    use x509_parser::prelude::FromDer as _;
    let (_, parsed) = x509_parser::certification_request::X509CertificationRequest::from_der(&der)
        .map_err(|e| X509Error::BadCsr(e.to_string()))?;
    parsed
        .verify_signature()
        .map_err(|_| X509Error::CsrSignature)?;
    let req = CertReq::from_der(&der).map_err(|e| X509Error::BadCsr(e.to_string()))?;
    let mut extensions = Vec::new();
    for attr in req.info.attributes.iter() {
        if attr.oid == ExtensionReq::OID {
            for v in attr.values.iter() {
                if let Ok(er) = v.decode_as::<ExtensionReq>() {
                    extensions.extend(er.0);
                }
            }
        }
    }
    let mut sans = Sans::default();
    for e in &extensions {
        if e.extn_id == SubjectAltName::OID {
            let s = SubjectAltName::from_der(e.extn_value.as_bytes())
                .map_err(|e| X509Error::BadCsr(e.to_string()))?;
            sans = Sans::from_general_names(&s.0);
        }
    }
    Ok(CsrInfo {
        subject: req.info.subject.clone(),
        spki_der: req
            .info
            .public_key
            .to_der()
            .map_err(|e| X509Error::BadCsr(e.to_string()))?,
        sans,
        extensions,
    })
}

/// Vault's serial format: lowercase colon-separated hex.
pub fn serial_colon(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 3);
    for (i, b) in bytes.iter().enumerate() {
        if i > 0 {
            s.push(':');
        }
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// Parses a serial in any of Vault's spellings (`aa:bb`, `aa-bb`, `AABB`).
pub fn parse_serial(s: &str) -> Option<Vec<u8>> {
    let clean: String = s
        .trim()
        .chars()
        .filter(|c| *c != ':' && *c != '-')
        .collect();
    if clean.is_empty() || clean.len() > 42 {
        return None;
    }
    let padded = if clean.len() % 2 == 1 {
        format!("0{clean}")
    } else {
        clean
    };
    hex::decode(padded).ok().map(|b| trim_serial(&b))
}

/// A new random serial: 20 bytes with the sign bit clear, never starting with a zero byte.
pub fn random_serial() -> Vec<u8> {
    use aws_lc_rs::rand::SecureRandom;
    let rng = aws_lc_rs::rand::SystemRandom::new();
    let mut b = [0u8; 20];
    loop {
        if rng.fill(&mut b).is_err() {
            continue;
        }
        b[0] &= 0x7f;
        if b[0] != 0 {
            return b.to_vec();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::KeySpec;

    #[test]
    fn key_usage_bit_strings_are_der() {
        // digitalSignature | keyEncipherment | keyAgreement = 1010 1000 -> 03 02 03 a8
        let b = key_usage_bits(&[
            "DigitalSignature".into(),
            "keyencipherment".into(),
            "KeyAgreement".into(),
        ])
        .unwrap();
        assert_eq!(key_usage_der(b).unwrap(), [0x03, 0x02, 0x03, 0xa8]);
        // certSign | cRLSign = bits 5,6 -> 0000 0110 -> 03 02 01 06
        let ca = key_usage_bits(&["CertSign".into(), "CRLSign".into()]).unwrap();
        assert_eq!(key_usage_der(ca).unwrap(), [0x03, 0x02, 0x01, 0x06]);
        // decipherOnly is bit 8, in a second byte.
        let d = key_usage_bits(&["DecipherOnly".into()]).unwrap();
        assert_eq!(key_usage_der(d).unwrap(), [0x03, 0x03, 0x07, 0x00, 0x80]);
        assert!(key_usage_bits(&["Nope".into()]).is_err());
    }

    #[test]
    fn serials_parse_and_print_like_vault() {
        assert_eq!(parse_serial("0a:1b-2C").unwrap(), vec![0x0a, 0x1b, 0x2c]);
        assert_eq!(parse_serial("00:ff").unwrap(), vec![0xff]);
        assert_eq!(serial_colon(&[0x0a, 0xff]), "0a:ff");
        assert!(parse_serial("zz").is_none());
        let s = random_serial();
        assert_eq!(s.len(), 20);
        assert!(s[0] != 0 && s[0] & 0x80 == 0);
    }

    #[test]
    fn builds_a_chain_that_verifies() {
        let ca_key = PrivateKey::generate(KeySpec::resolve("ec", 384).unwrap()).unwrap();
        let ca_name = Subject {
            common_name: "Root".into(),
            ou: vec!["a".into(), "b".into()],
            ..Default::default()
        }
        .to_name()
        .unwrap();
        let ca_kid = key_identifier(ca_key.spki_der());
        let root = build_certificate(
            &CertSpec {
                serial: random_serial(),
                subject: ca_name.clone(),
                spki_der: ca_key.spki_der().to_vec(),
                not_before: 1_700_000_000,
                not_after: 2_700_000_000,
                ca: Some(None),
                key_usage: key_usage_bits(&["CertSign".into(), "CRLSign".into()]).unwrap(),
                ..Default::default()
            },
            &SignerRef {
                name: &ca_name,
                key_id: &ca_kid,
                key: &ca_key,
                alg: ca_key.sig_alg(0),
            },
        )
        .unwrap();
        let info = parse_cert(&root).unwrap();
        assert!(info.is_ca && info.self_issued());
        assert_eq!(name_values(&info.subject, OID_OU), ["a", "b"]);
        assert_eq!(info.not_after, 2_700_000_000);
        assert!(signed_by(&root, &root));

        let leaf_key = PrivateKey::generate(KeySpec::resolve("rsa", 2048).unwrap()).unwrap();
        let leaf = build_certificate(
            &CertSpec {
                serial: vec![0x42],
                subject: Subject {
                    common_name: "*.example.com".into(),
                    ..Default::default()
                }
                .to_name()
                .unwrap(),
                spki_der: leaf_key.spki_der().to_vec(),
                not_before: 1_700_000_000,
                not_after: 1_800_000_000,
                sans: Sans {
                    dns: vec!["*.example.com".into()],
                    ip: vec!["10.0.0.5".parse().unwrap()],
                    ..Default::default()
                },
                ..Default::default()
            },
            &SignerRef {
                name: &info.subject,
                key_id: &info.subject_key_id,
                key: &ca_key,
                alg: ca_key.sig_alg(0),
            },
        )
        .unwrap();
        let l = parse_cert(&leaf).unwrap();
        assert!(signed_by(&leaf, &root));
        assert!(!signed_by(&root, &leaf));
        assert_eq!(l.issuer_der, info.subject_der);
        assert_eq!(l.common_name(), "*.example.com");
        assert_eq!(l.sans.ip, ["10.0.0.5".parse::<IpAddr>().unwrap()]);
        assert_eq!(l.authority_key_id.as_deref(), Some(&ca_kid[..]));
        assert_eq!(l.serial, [0x42]);
    }

    #[test]
    fn csrs_round_trip_and_tampering_is_caught() {
        let key = PrivateKey::generate(KeySpec::resolve("ed25519", 0).unwrap()).unwrap();
        let name = Subject {
            common_name: "int".into(),
            ..Default::default()
        }
        .to_name()
        .unwrap();
        let sans = Sans {
            dns: vec!["int.example".into()],
            ..Default::default()
        };
        let csr = build_csr(&name, &sans, &key, true).unwrap();
        let info = parse_csr(&csr).unwrap();
        assert_eq!(common_name(&info.subject), "int");
        assert_eq!(info.sans.dns, ["int.example"]);
        assert_eq!(info.spki_der, key.spki_der());
        let mut bad = csr.clone();
        let n = bad.len();
        bad[n - 3] ^= 0x55; // inside the signature
        assert!(matches!(parse_csr(&bad), Err(X509Error::CsrSignature)));
    }
}
