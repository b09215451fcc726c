//! Pure X.509 work on DER bytes: reading PEM bundles and CRLs, building and checking the path
//! from a presented client certificate to a trusted certificate, the role constraints, and the
//! facts a login reports. No I/O, no storage: every function here is tested as a table.
//!
//! The path rules are those of Go's `x509.Verify`, which Vault's method uses: each certificate
//! is within its validity period; each issuer above the leaf is a CA (basic constraints), may
//! sign certificates (key usage, when present) and honours its path length; every certificate
//! that names extended key usages allows client authentication (or any usage); an unknown
//! critical extension refuses the certificate. A trusted certificate that is not a CA trusts
//! exactly itself: the client must present that very certificate.

use std::collections::{BTreeMap, BTreeSet};

use base64::Engine as _;
use x509_parser::asn1_rs::{Any, Tag};
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::num_bigint::BigUint;
use x509_parser::pem::Pem;
use x509_parser::prelude::FromDer;
use x509_parser::time::ASN1Time;

use crate::glob;
use crate::store::CertEntry;

/// The longest chain a client may present (leaf included), and the deepest path searched.
const MAX_CHAIN: usize = 10;
const OID_AD_OCSP: &str = "1.3.6.1.5.5.7.48.1";

/// Parses one DER certificate.
pub(crate) fn parse(der: &[u8]) -> Result<X509Certificate<'_>, String> {
    match X509Certificate::from_der(der) {
        Ok(([], c)) => Ok(c),
        Ok(_) => Err("trailing data after the certificate".into()),
        Err(e) => Err(format!("cannot parse the certificate: {e}")),
    }
}

/// The DER certificates of a PEM bundle, in order. At least one is required.
pub(crate) fn pem_certificates(pem: &str) -> Result<Vec<Vec<u8>>, String> {
    let mut out = Vec::new();
    for block in Pem::iter_from_buffer(pem.as_bytes()) {
        let block = block.map_err(|e| format!("cannot read the PEM data: {e}"))?;
        if block.label != "CERTIFICATE" {
            continue;
        }
        parse(&block.contents)?;
        out.push(block.contents);
    }
    if out.is_empty() {
        return Err("no PEM-encoded certificate found".into());
    }
    Ok(out)
}

/// Checks a certificate offered for trust (`certs/:name`): every certificate parses, and a
/// certificate that is not a CA but names extended key usages allows client authentication
/// (a server-only leaf could never log in).
pub(crate) fn check_trusted(pem: &str) -> Result<Vec<Vec<u8>>, String> {
    let ders = pem_certificates(pem)?;
    for der in &ders {
        let c = parse(der)?;
        if !c.is_ca() && !allows_client_auth(&c) {
            return Err(
                "a certificate that is not a CA must allow TLS client authentication in its extended key usage"
                    .into(),
            );
        }
    }
    Ok(ders)
}

/// A serial as lower-case hex without leading zeros: the one spelling CRL entries are kept in.
pub(crate) fn serial_hex(raw: &[u8]) -> String {
    let trimmed: &[u8] = match raw.iter().position(|b| *b != 0) {
        Some(i) => &raw[i..],
        None => &[0],
    };
    hex::encode(trimmed)
}

/// A serial in decimal, as Vault reports it (`serial_number` metadata, CRL reads).
pub(crate) fn serial_decimal(raw: &[u8]) -> String {
    BigUint::from_bytes_be(raw).to_string()
}

/// Decimal from the hex spelling of [`serial_hex`].
pub(crate) fn hex_to_decimal(h: &str) -> String {
    hex::decode(h)
        .map(|b| serial_decimal(&b))
        .unwrap_or_else(|_| h.to_owned())
}

/// `a1:b2:...`, as Vault prints key identifiers.
pub(crate) fn colon_hex(b: &[u8]) -> String {
    b.iter()
        .map(|x| format!("{x:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// The revoked serials of a CRL given as PEM (`X509 CRL`) or as base64 DER.
pub(crate) fn crl_serials(input: &str) -> Result<BTreeSet<String>, String> {
    let der = if input.contains("-----BEGIN") {
        Pem::iter_from_buffer(input.as_bytes())
            .filter_map(|p| p.ok())
            .find(|p| p.label == "X509 CRL")
            .map(|p| p.contents)
            .ok_or("no PEM-encoded CRL (X509 CRL) found")?
    } else {
        let cleaned: String = input.chars().filter(|c| !c.is_whitespace()).collect();
        base64::engine::general_purpose::STANDARD
            .decode(cleaned.as_bytes())
            .map_err(|_| "the CRL is neither PEM nor base64-encoded DER")?
    };
    let (rest, crl) =
        x509_parser::parse_x509_crl(&der).map_err(|e| format!("cannot parse the CRL: {e}"))?;
    if !rest.is_empty() {
        return Err("trailing data after the CRL".into());
    }
    Ok(crl
        .iter_revoked_certificates()
        .map(|r| serial_hex(r.raw_serial()))
        .collect())
}

fn allows_client_auth(c: &X509Certificate) -> bool {
    match c.extended_key_usage() {
        Ok(Some(e)) => e.value.any || e.value.client_auth,
        Ok(None) => true,
        Err(_) => false,
    }
}

/// Whether `child` names `parent` as its issuer and carries its signature.
pub(crate) fn issued_by(child: &X509Certificate, parent: &X509Certificate) -> bool {
    child.issuer().as_raw() == parent.subject().as_raw()
        && child.verify_signature(Some(parent.public_key())).is_ok()
}

/// Whether `c` is within its validity period at `now` (Unix seconds).
pub(crate) fn valid_at(c: &X509Certificate, now: i64) -> bool {
    ASN1Time::from_timestamp(now)
        .map(|t| c.validity().is_valid_at(t))
        .unwrap_or(false)
}

fn unknown_critical(c: &X509Certificate) -> bool {
    c.extensions().iter().any(|e| {
        e.critical
            && matches!(
                e.parsed_extension(),
                ParsedExtension::UnsupportedExtension { .. } | ParsedExtension::ParseError { .. }
            )
    })
}

/// Finds a path from `cur` up to `anchor` through the presented intermediates (`used` holds
/// their indices, nearest the leaf first).
fn search(
    cur: &X509Certificate,
    ints: &[X509Certificate],
    anchor: &X509Certificate,
    used: &mut Vec<usize>,
) -> bool {
    if issued_by(cur, anchor) {
        return true;
    }
    if used.len() + 2 >= MAX_CHAIN {
        return false;
    }
    for (i, c) in ints.iter().enumerate() {
        if used.contains(&i) || !issued_by(cur, c) {
            continue;
        }
        used.push(i);
        if search(c, ints, anchor, used) {
            return true;
        }
        used.pop();
    }
    false
}

/// Why a presented chain does not verify against one trusted certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PathError {
    /// The certificate is not the trusted one and does not chain to it.
    NoPath,
    /// A path exists but breaks a rule (expiry, usage, CA, path length, ...).
    Invalid(String),
}

/// Verifies the presented chain (leaf first, then any intermediates, in any order) against one
/// trusted certificate at `now`. Returns the verified path as DER, leaf first and the trusted
/// certificate last (just the leaf when the trusted certificate is that leaf itself).
pub(crate) fn verify_path(
    chain: &[Vec<u8>],
    trusted: &[u8],
    now: i64,
) -> Result<Vec<Vec<u8>>, PathError> {
    let leaf_der = chain.first().ok_or(PathError::NoPath)?;
    if chain.len() > MAX_CHAIN {
        return Err(PathError::Invalid(format!(
            "more than {MAX_CHAIN} certificates presented"
        )));
    }
    let leaf = parse(leaf_der).map_err(PathError::Invalid)?;
    let anchor = parse(trusted).map_err(PathError::Invalid)?;
    if !anchor.is_ca() {
        if leaf_der.as_slice() != trusted {
            return Err(PathError::NoPath);
        }
        check_each(&[&leaf], now).map_err(PathError::Invalid)?;
        return Ok(vec![leaf_der.clone()]);
    }
    // Unparseable intermediates are skipped: they can only fail to be part of a path.
    let ints: Vec<(usize, X509Certificate)> = chain[1..]
        .iter()
        .enumerate()
        .filter_map(|(i, d)| parse(d).ok().map(|c| (i + 1, c)))
        .collect();
    let certs: Vec<X509Certificate> = ints.iter().map(|(_, c)| c.clone()).collect();
    let mut used = Vec::new();
    if !search(&leaf, &certs, &anchor, &mut used) {
        return Err(PathError::NoPath);
    }
    let mut path: Vec<&X509Certificate> = vec![&leaf];
    path.extend(used.iter().map(|i| &certs[*i]));
    path.push(&anchor);
    check_each(&path, now).map_err(PathError::Invalid)?;
    let mut out = vec![leaf_der.clone()];
    out.extend(used.iter().map(|i| chain[ints[*i].0].clone()));
    out.push(trusted.to_vec());
    Ok(out)
}

/// The per-certificate rules of a path, leaf first.
fn check_each(path: &[&X509Certificate], now: i64) -> Result<(), String> {
    for (depth, c) in path.iter().enumerate() {
        let what = if depth == 0 {
            "the client certificate".to_owned()
        } else {
            format!("issuer {}", c.subject())
        };
        if !valid_at(c, now) {
            return Err(format!("{what} is expired or not yet valid"));
        }
        if !allows_client_auth(c) {
            return Err(format!(
                "{what} does not allow TLS client authentication (extended key usage)"
            ));
        }
        if unknown_critical(c) {
            return Err(format!("{what} has an unknown critical extension"));
        }
        if depth == 0 {
            continue;
        }
        let bc = c.basic_constraints().ok().flatten();
        if !bc.as_ref().is_some_and(|b| b.value.ca) {
            return Err(format!("{what} is not a CA"));
        }
        if let Ok(Some(ku)) = c.key_usage()
            && !ku.value.key_cert_sign()
        {
            return Err(format!("{what} may not sign certificates (key usage)"));
        }
        // Intermediates between this issuer and the leaf.
        let below = depth as u32 - 1;
        if let Some(max) = bc.and_then(|b| b.value.path_len_constraint)
            && below > max
        {
            return Err(format!("{what} allows a path length of {max}, not {below}"));
        }
    }
    Ok(())
}

/// What a login reports about the client certificate.
#[derive(Debug, Clone, Default)]
pub(crate) struct LeafFacts {
    pub common_name: String,
    pub serial_raw: Vec<u8>,
    pub subject_key_id: Vec<u8>,
    pub authority_key_id: Vec<u8>,
    /// The OCSP responders of its Authority Information Access extension.
    pub ocsp_servers: Vec<String>,
}

fn first_cn(c: &X509Certificate) -> String {
    c.subject()
        .iter_common_name()
        .next()
        .and_then(|a| a.as_str().ok())
        .unwrap_or_default()
        .to_owned()
}

pub(crate) fn leaf_facts(der: &[u8]) -> Result<LeafFacts, String> {
    let c = parse(der)?;
    let mut f = LeafFacts {
        common_name: first_cn(&c),
        serial_raw: c.raw_serial().to_vec(),
        ..Default::default()
    };
    for e in c.extensions() {
        match e.parsed_extension() {
            ParsedExtension::SubjectKeyIdentifier(k) => f.subject_key_id = k.0.to_vec(),
            ParsedExtension::AuthorityKeyIdentifier(a) => {
                if let Some(k) = &a.key_identifier {
                    f.authority_key_id = k.0.to_vec();
                }
            }
            ParsedExtension::AuthorityInfoAccess(aia) => {
                for d in aia.iter() {
                    if d.access_method.to_id_string() == OID_AD_OCSP
                        && let GeneralName::URI(u) = &d.access_location
                    {
                        f.ocsp_servers.push((*u).to_owned());
                    }
                }
            }
            _ => {}
        }
    }
    Ok(f)
}

/// The string inside an extension's value (UTF8String, PrintableString, IA5String, ...), as
/// `required_extensions` and `allowed_metadata_extensions` compare it.
fn ext_string(value: &[u8]) -> Option<String> {
    let (rest, any) = Any::from_der(value).ok()?;
    if !rest.is_empty() {
        return None;
    }
    match any.tag() {
        Tag::Utf8String
        | Tag::PrintableString
        | Tag::Ia5String
        | Tag::NumericString
        | Tag::T61String
        | Tag::VisibleString => std::str::from_utf8(any.data).ok().map(str::to_owned),
        _ => None,
    }
}

/// Checks the role's name and extension constraints against the client certificate.
pub(crate) fn check_constraints(leaf: &[u8], e: &CertEntry) -> Result<(), String> {
    let c = parse(leaf)?;
    let cn = first_cn(&c);
    let (mut dns, mut email, mut uri) = (Vec::new(), Vec::new(), Vec::new());
    if let Ok(Some(san)) = c.subject_alternative_name() {
        for n in &san.value.general_names {
            match n {
                GeneralName::DNSName(s) => dns.push(*s),
                GeneralName::RFC822Name(s) => email.push(*s),
                GeneralName::URI(s) => uri.push(*s),
                _ => {}
            }
        }
    }
    let ous: Vec<&str> = c
        .subject()
        .iter_organizational_unit()
        .filter_map(|a| a.as_str().ok())
        .collect();
    let names = std::iter::once(cn.as_str())
        .chain(dns.iter().copied())
        .chain(email.iter().copied());
    let checks: [(&str, &[String], Vec<&str>); 6] = [
        ("allowed_names", &e.allowed_names, names.collect()),
        (
            "allowed_common_names",
            &e.allowed_common_names,
            vec![cn.as_str()],
        ),
        ("allowed_dns_sans", &e.allowed_dns_sans, dns.clone()),
        ("allowed_email_sans", &e.allowed_email_sans, email.clone()),
        ("allowed_uri_sans", &e.allowed_uri_sans, uri.clone()),
        (
            "allowed_organizational_units",
            &e.allowed_organizational_units,
            ous,
        ),
    ];
    for (field, patterns, values) in checks {
        if !glob::any_matches(patterns, values.iter().copied()) {
            return Err(format!("the certificate does not match {field}"));
        }
    }
    let mut strings = BTreeMap::new();
    let mut hexes = BTreeMap::new();
    for x in c.extensions() {
        let oid = x.oid.to_id_string();
        strings.insert(oid.clone(), ext_string(x.value).unwrap_or_default());
        hexes.insert(oid, hex::encode(x.value));
    }
    for req in &e.required_extensions {
        let ok = match req.split_once(':') {
            Some(("hex", rest)) => rest.split_once(':').is_some_and(|(oid, pat)| {
                hexes
                    .get(oid)
                    .is_some_and(|v| glob::matches(&pat.to_lowercase(), v))
            }),
            Some((oid, pat)) => strings.get(oid).is_some_and(|v| glob::matches(pat, v)),
            None => false,
        };
        if !ok {
            return Err("the certificate does not carry the required extensions".into());
        }
    }
    Ok(())
}

/// Checks the spelling of `required_extensions` entries (`oid:glob` or `hex:oid:glob`).
pub(crate) fn check_required_extension(s: &str) -> Result<(), String> {
    let oid_ok = |o: &str| !o.is_empty() && o.split('.').all(|p| p.parse::<u64>().is_ok());
    let ok = match s.split_once(':') {
        Some(("hex", rest)) => rest.split_once(':').is_some_and(|(o, _)| oid_ok(o)),
        Some((o, _)) => oid_ok(o),
        None => false,
    };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid required_extensions entry {s:?}: expected \"<oid>:<glob>\" or \"hex:<oid>:<glob>\""
        ))
    }
}

/// `allowed_metadata_extensions`: the string value of each listed extension the certificate
/// carries, keyed by its OID with `.` spelled `-` (Vault's metadata keys).
pub(crate) fn metadata_extensions(leaf: &[u8], oids: &[String]) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let Ok(c) = parse(leaf) else { return out };
    for x in c.extensions() {
        let oid = x.oid.to_id_string();
        if oids.contains(&oid)
            && let Some(v) = ext_string(x.value)
        {
            out.insert(oid.replace('.', "-"), v);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testpki::{NOW, ca, leaf};

    #[test]
    fn serial_spellings() {
        assert_eq!(serial_hex(&[0x00, 0x9f, 0x01]), "9f01");
        assert_eq!(serial_hex(&[0, 0]), "00");
        assert_eq!(serial_decimal(&[0x10, 0x01]), "4097");
        assert_eq!(hex_to_decimal("9f01"), "40705");
        assert_eq!(colon_hex(&[0xab, 0x01]), "ab:01");
        assert_eq!(colon_hex(&[]), "");
    }

    #[test]
    fn paths_follow_the_issuer_rules() {
        let root = ca("Root", None, |_| {});
        // An intermediate limited to no further CAs, one below it, and a leaf under that.
        let int0 = ca("Int0", Some(&root), |p| {
            p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Constrained(0));
        });
        let sub = ca("Sub", Some(&int0), |_| {});
        let deep = leaf("deep", &sub, 1, |_| {});
        let shallow = leaf("shallow", &int0, 2, |_| {});
        // A "CA" whose key usage forbids signing certificates.
        let nosign = ca("NoSign", Some(&root), |p| {
            p.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature];
        });
        let under_nosign = leaf("x", &nosign, 3, |_| {});
        type Case<'a> = (&'a str, Vec<&'a [u8]>, &'a [u8], Result<usize, &'a str>);
        let cases: Vec<Case> = vec![
            (
                "leaf under trusted int",
                vec![&shallow.der],
                &int0.der,
                Ok(2),
            ),
            (
                "via int to root",
                vec![&shallow.der, &int0.der],
                &root.der,
                Ok(3),
            ),
            ("missing int", vec![&shallow.der], &root.der, Err("")),
            (
                "path length 0 exceeded",
                vec![&deep.der, &sub.der, &int0.der],
                &root.der,
                Err("path length"),
            ),
            (
                "the anchor's path length counts",
                vec![&deep.der, &sub.der],
                &int0.der,
                Err("path length"),
            ),
            ("path length fine below", vec![&deep.der], &sub.der, Ok(2)),
            (
                "no keyCertSign",
                vec![&under_nosign.der, &nosign.der],
                &root.der,
                Err("may not sign"),
            ),
        ];
        for (what, chain, anchor, want) in cases {
            let chain: Vec<Vec<u8>> = chain.into_iter().map(<[u8]>::to_vec).collect();
            match (verify_path(&chain, anchor, NOW), want) {
                (Ok(p), Ok(n)) => assert_eq!(p.len(), n, "{what}"),
                (Err(PathError::NoPath), Err("")) => {}
                (Err(PathError::Invalid(m)), Err(w)) if !w.is_empty() => {
                    assert!(m.contains(w), "{what}: {m}")
                }
                (got, want) => panic!("{what}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn required_extension_spellings() {
        for ok in ["1.2.3:*", "hex:2.5.29.15:03*", "1.2.3:"] {
            assert!(check_required_extension(ok).is_ok(), "{ok}");
        }
        for bad in ["1.2.3", "hex:1.2.3", "x.y:z", ":v", "hex::v"] {
            assert!(check_required_extension(bad).is_err(), "{bad}");
        }
    }
}
