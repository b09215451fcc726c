//! Issuing and signing leaf certificates under a role: `issue/:role`, `sign/:role`,
//! `sign-verbatim[/:role]` and their `issuer/:ref/...` forms.
//!
//! Every name that ends up in a certificate (common name, DNS and email SANs, IP, URI and
//! other SANs, subject serial number) passes the role's rules first; TTLs are clamped by the
//! role's `max_ttl`, the mount's maximum lease TTL and the issuer's own expiry
//! (`leaf_not_after_behavior`).

use std::net::IpAddr;
use std::sync::Arc;

use der::oid::ObjectIdentifier;
use serde_json::{Map, Value, json};
use tresor_sdk::framework::Fields;

use crate::inputs::{IssuerInUrl, LeafInput, SubjectInput};
use tresor_sdk::{Request, Response, Result, SecretLease};

use crate::issuers::{LoadedIssuer, encode_cert, generate_key};
use crate::keys::{KeySpec, KeyType};
use crate::names::{DomainPolicy, glob_match, valid_hostname};
use crate::roles::{self, Role};
use crate::store::{self, UrlsConfig};
use crate::x509::{self, CertSpec, CsrInfo, Sans, Subject};
use crate::{Engine, bad, pem};

/// Parses Vault's other-SAN syntax `<oid>;UTF8:<value>`; in a role (`pattern`), the OID may be
/// `*` and the value a glob.
pub fn parse_other_san(s: &str, pattern: bool) -> Result<(ObjectIdentifier, String)> {
    let err = || {
        bad(format!(
            "invalid other_sans value {s:?}: expected <oid>;UTF8:<value>"
        ))
    };
    let (oid, rest) = s.split_once(';').ok_or_else(err)?;
    let (ty, value) = rest.split_once(':').ok_or_else(err)?;
    if !ty.eq_ignore_ascii_case("utf8") && !ty.eq_ignore_ascii_case("utf-8") {
        return Err(bad(format!(
            "other_sans value {s:?}: only UTF8 values are supported"
        )));
    }
    let oid = if pattern && oid == "*" {
        // Any OID: a placeholder never used in a certificate.
        ObjectIdentifier::new_unwrap("2.5.29.17")
    } else {
        ObjectIdentifier::new(oid.trim()).map_err(|_| err())?
    };
    Ok((oid, value.to_owned()))
}

fn other_san_allowed(role: &Role, oid: &ObjectIdentifier, value: &str) -> bool {
    role.allowed_other_sans.iter().any(|rule| {
        if rule == "*" {
            return true;
        }
        let Some((roid, rest)) = rule.split_once(';') else {
            return false;
        };
        let Some((_, rvalue)) = rest.split_once(':') else {
            return false;
        };
        (roid == "*" || roid.trim() == oid.to_string()) && glob_match(rvalue, value)
    })
}

/// What a caller asked for, from the request fields and (for `sign`) the CSR.
struct LeafRequest<'a> {
    role: &'a Role,
    common_name: String,
    alt_names: Vec<String>,
    ip_sans: Vec<String>,
    uri_sans: Vec<String>,
    other_sans: Vec<String>,
    subject_serial: String,
    exclude_cn_from_sans: bool,
    csr: Option<&'a CsrInfo>,
    /// `sign-verbatim`: no name rules, subject and SANs from the CSR.
    verbatim: bool,
    display_name: &'a str,
    /// The caller's identity entity, for templated `allowed_domains` / `allowed_uri_sans`.
    entity: Option<&'a tresor_sdk::identity::EntityInfo>,
}

/// A role's allowed names with identity templates rendered for the caller (when the role
/// enables templating). A template that does not render for this caller allows nothing.
fn rendered(
    names: &[String],
    templated: bool,
    entity: Option<&tresor_sdk::identity::EntityInfo>,
) -> Vec<String> {
    names
        .iter()
        .filter_map(|n| {
            if !templated || !tresor_sdk::identity::is_templated(n) {
                return Some(n.clone());
            }
            tresor_sdk::identity::render(n, entity?).ok()
        })
        .collect()
}

/// A validated leaf ready to sign.
struct LeafPlan {
    subject: x509_cert::name::Name,
    sans: Sans,
}

fn split_alt_names(names: &[String], sans: &mut Sans) {
    for n in names {
        if n.contains('@') {
            if !sans.email.contains(n) {
                sans.email.push(n.clone());
            }
        } else if !sans.dns.contains(n) {
            sans.dns.push(n.clone());
        }
    }
}

fn plan_leaf(r: &LeafRequest<'_>) -> Result<LeafPlan> {
    let role = r.role;
    if r.verbatim {
        let csr = r.csr.ok_or_else(|| bad("a csr is required"))?;
        return Ok(LeafPlan {
            subject: csr.subject.clone(),
            sans: csr.sans.clone(),
        });
    }
    // The common name: the request's, else (when allowed) the CSR's.
    let mut cn = r.common_name.trim().to_owned();
    if cn.is_empty()
        && role.use_csr_common_name
        && let Some(csr) = r.csr
    {
        cn = x509::common_name(&csr.subject);
    }
    if cn.is_empty() && role.require_cn {
        return Err(bad(
            "the common_name field is required, or must be provided in a CSR with \"use_csr_common_name\" set to true, unless \"require_cn\" is set to false",
        ));
    }
    let mut sans = Sans::default();
    let csr_sans = r.csr.filter(|_| role.use_csr_sans);
    match csr_sans {
        Some(csr) => {
            sans.dns = csr.sans.dns.clone();
            sans.email = csr.sans.email.clone();
            sans.ip = csr.sans.ip.clone();
            sans.uri = csr.sans.uri.clone();
            sans.other = csr.sans.other.clone();
        }
        None => {
            split_alt_names(&r.alt_names, &mut sans);
            for ip in &r.ip_sans {
                sans.ip.push(
                    ip.parse()
                        .map_err(|_| bad(format!("the value {ip:?} is not a valid IP address")))?,
                );
            }
            sans.uri = r.uri_sans.clone();
            for o in &r.other_sans {
                sans.other.push(parse_other_san(o, false)?);
            }
        }
    }
    // The common name is checked like any other name, whether or not it is a SAN.
    let cn_ip: Option<IpAddr> = cn.parse().ok();
    if !cn.is_empty() {
        let disabled = role.cn_validations.iter().any(|v| v == "disabled");
        if !disabled && cn_ip.is_none() {
            let as_email = cn.contains('@') && role.cn_validations.iter().any(|v| v == "email");
            let host = cn.rsplit_once("*.").map_or(cn.as_str(), |(_, rest)| rest);
            let as_host = !cn.contains('@')
                && role.cn_validations.iter().any(|v| v == "hostname")
                && (valid_hostname(host) || !role.enforce_hostnames);
            if !as_email && !as_host {
                return Err(bad(format!(
                    "common name {cn} is not a valid email address or hostname"
                )));
            }
        }
    }
    let allowed_domains = rendered(
        &role.allowed_domains,
        role.allowed_domains_template,
        r.entity,
    );
    let allowed_uri_sans = rendered(
        &role.allowed_uri_sans,
        role.allowed_uri_sans_template,
        r.entity,
    );
    let policy = DomainPolicy {
        allowed_domains: &allowed_domains,
        allow_bare_domains: role.allow_bare_domains,
        allow_subdomains: role.allow_subdomains,
        allow_glob_domains: role.allow_glob_domains,
        allow_wildcard_certificates: role.allow_wildcard_certificates,
        allow_localhost: role.allow_localhost,
        allow_any_name: role.allow_any_name,
        enforce_hostnames: role.enforce_hostnames,
        allow_token_displayname: role.allow_token_displayname,
        display_name: r.display_name,
    };
    if !cn.is_empty() {
        match cn_ip {
            Some(ip) => {
                if !role.allow_ip_sans {
                    return Err(bad(format!("common name {cn} not allowed by this role")));
                }
                if !r.exclude_cn_from_sans && !sans.ip.contains(&ip) {
                    sans.ip.insert(0, ip);
                }
            }
            None => {
                policy
                    .check(&cn)
                    .map_err(|_| bad(format!("common name {cn} not allowed by this role")))?;
                if !r.exclude_cn_from_sans {
                    if cn.contains('@') {
                        if !sans.email.contains(&cn) {
                            sans.email.insert(0, cn.clone());
                        }
                    } else if !sans.dns.contains(&cn) {
                        sans.dns.insert(0, cn.clone());
                    }
                }
            }
        }
    }
    for n in sans.dns.iter().chain(sans.email.iter()) {
        policy.check(n).map_err(|_| {
            bad(format!(
                "subject alternate name {n} not allowed by this role"
            ))
        })?;
    }
    if !sans.ip.is_empty() && !role.allow_ip_sans {
        return Err(bad(format!(
            "IP Subject Alternative Names are not allowed in this role, but was provided {}",
            sans.ip[0]
        )));
    }
    for u in &sans.uri {
        if allowed_uri_sans.is_empty() {
            return Err(bad(
                "URI Subject Alternative Names are not allowed in this role",
            ));
        }
        if !allowed_uri_sans.iter().any(|p| glob_match(p, u)) {
            return Err(bad(format!(
                "URI Subject Alternative Name {u} not allowed by this role"
            )));
        }
    }
    for (oid, value) in &sans.other {
        if !other_san_allowed(role, oid, value) {
            return Err(bad(format!(
                "other SAN {oid};UTF8:{value} not allowed by this role"
            )));
        }
    }
    if !r.subject_serial.is_empty()
        && !role
            .allowed_serial_numbers
            .iter()
            .any(|p| glob_match(p, &r.subject_serial))
    {
        return Err(bad(format!(
            "serial_number {} not allowed by this role",
            r.subject_serial
        )));
    }
    let subject = Subject {
        common_name: cn,
        serial_number: r.subject_serial.clone(),
        country: role.country.clone(),
        organization: role.organization.clone(),
        ou: role.ou.clone(),
        locality: role.locality.clone(),
        province: role.province.clone(),
        street_address: role.street_address.clone(),
        postal_code: role.postal_code.clone(),
    }
    .to_name()
    .map_err(|e| bad(e.to_string()))?;
    Ok(LeafPlan { subject, sans })
}

/// NotAfter of a leaf: `not_after`, else now + ttl (request, role, mount default), clamped by
/// the role's `max_ttl` (or the mount's maximum) and the issuer's expiry.
fn leaf_not_after(
    req: &Request,
    role: &Role,
    issuer: &LoadedIssuer,
    ttl: Option<i64>,
    not_after: Option<i64>,
    now: i64,
    warnings: &mut Vec<String>,
) -> Result<i64> {
    let mount_max = req.mount.max_lease_ttl.as_secs() as i64;
    let max_ttl = match role.max_ttl as i64 {
        0 => mount_max,
        m if mount_max > 0 => m.min(mount_max),
        m => m,
    };
    let mut end = match (not_after, role.not_after.as_str()) {
        (Some(na), _) => na,
        (None, na) if !na.is_empty() => crate::clock::parse_rfc3339(na).unwrap_or(now),
        _ => {
            let ttl = ttl
                .filter(|t| *t > 0)
                .or(Some(role.ttl as i64).filter(|t| *t > 0))
                .unwrap_or(req.mount.default_lease_ttl.as_secs() as i64);
            now + ttl
        }
    };
    if max_ttl > 0 && end > now + max_ttl {
        warnings.push(format!(
            "TTL {}s is greater than the role's or mount's maximum of {max_ttl}s; truncated",
            end - now
        ));
        end = now + max_ttl;
    }
    if end <= now {
        return Err(bad("the requested validity period has already ended"));
    }
    if end > issuer.cert.not_after {
        match issuer.entry.leaf_not_after_behavior.as_str() {
            "permit" => {}
            "truncate" => end = issuer.cert.not_after,
            _ => {
                return Err(bad(format!(
                    "cannot satisfy request, as TTL would result in notAfter of {} that is beyond the expiration of the CA certificate at {}",
                    crate::clock::rfc3339(end),
                    crate::clock::rfc3339(issuer.cert.not_after)
                )));
            }
        }
    }
    Ok(end)
}

fn ext_key_usages(role: &Role) -> Result<Vec<ObjectIdentifier>> {
    let mut out = Vec::new();
    let mut add = |name: &str| -> Result<()> {
        let oid = x509::eku_oid(name).map_err(|e| bad(e.to_string()))?;
        if !out.contains(&oid) {
            out.push(oid);
        }
        Ok(())
    };
    if role.server_flag {
        add("ServerAuth")?;
    }
    if role.client_flag {
        add("ClientAuth")?;
    }
    if role.code_signing_flag {
        add("CodeSigning")?;
    }
    if role.email_protection_flag {
        add("EmailProtection")?;
    }
    for n in &role.ext_key_usage {
        add(n)?;
    }
    for o in &role.ext_key_usage_oids {
        let oid = x509::parse_oid("ext_key_usage_oids", o).map_err(|e| bad(e.to_string()))?;
        if !out.contains(&oid) {
            out.push(oid);
        }
    }
    Ok(out)
}

/// Which endpoint is being served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Issue,
    Sign,
    Verbatim,
}

impl Engine {
    pub(crate) async fn issue(
        self: Arc<Self>,
        req: Request,
        f: Fields,
    ) -> Result<Option<Response>> {
        self.leaf(req, f, Mode::Issue).await
    }

    pub(crate) async fn sign(self: Arc<Self>, req: Request, f: Fields) -> Result<Option<Response>> {
        self.leaf(req, f, Mode::Sign).await
    }

    pub(crate) async fn sign_verbatim(
        self: Arc<Self>,
        req: Request,
        f: Fields,
    ) -> Result<Option<Response>> {
        self.leaf(req, f, Mode::Verbatim).await
    }

    async fn leaf(
        self: Arc<Self>,
        req: Request,
        f: Fields,
        mode: Mode,
    ) -> Result<Option<Response>> {
        let s = &*req.storage;
        // Checked first: a request refused for its format must not leave a certificate behind.
        let subj: SubjectInput = f.input();
        let leaf: LeafInput = f.input();
        let format = crate::issuers::output_format(&subj.format)?;
        let role_name = leaf.role;
        let role = match (mode, role_name.as_str()) {
            (Mode::Verbatim, "") => {
                // sign-verbatim without a role: permissive defaults, as Vault.
                roles::normalize(Role {
                    key_type: "any".into(),
                    key_usage: leaf.key_usage,
                    ext_key_usage: leaf.ext_key_usage,
                    ext_key_usage_oids: leaf.ext_key_usage_oids,
                    signature_bits: subj.signature_bits,
                    server_flag: false,
                    client_flag: false,
                    ..Role::default()
                })?
            }
            _ => roles::load(&req, &role_name)
                .await?
                .ok_or_else(|| bad(format!("unknown role: {role_name}")))?,
        };
        // The issuer comes from the URL on `issuer/:ref/...` (where ACLs can name it) and from
        // the role everywhere else; a body `issuer_ref` on `issue/:role` must not bypass ACLs
        // written on `issuer/+/issue/...` (issue 10, finding 9). Decided by the route, not by
        // which fields happen to be declared.
        let issuer_ref = if req.path.starts_with("issuer/") {
            f.input::<IssuerInUrl>().issuer_ref
        } else {
            role.issuer_ref.clone()
        };
        let issuer = self.issuer_by_ref(&req, &issuer_ref).await?;
        if !issuer.has_usage("issuing-certificates") {
            return Err(bad(format!(
                "issuer {} is not allowed to issue certificates (usage)",
                issuer.entry.id
            )));
        }
        if issuer.entry.revoked {
            return Err(bad("the issuer has been revoked and cannot issue"));
        }
        let csr = match mode {
            Mode::Issue => None,
            _ => {
                let text = &leaf.csr;
                if text.trim().is_empty() {
                    return Err(bad("the csr field is required"));
                }
                Some(x509::parse_csr(text.as_bytes()).map_err(|e| bad(e.to_string()))?)
            }
        };
        // Key: generated for issue, the CSR's for sign (checked against the role).
        let (key, spki_der) = match &csr {
            None => {
                let spec = KeySpec::resolve(&role.key_type, role.key_bits).map_err(|e| {
                    bad(format!(
                        "role key_type {:?} cannot generate keys: {e}",
                        role.key_type
                    ))
                })?;
                let key = generate_key(spec).await?;
                let spki = key.spki_der().to_vec();
                (Some(key), spki)
            }
            Some(c) => {
                let spec = crate::keys::spki_spec(&c.spki_der)
                    .ok_or_else(|| bad("the csr's public key type is not supported"))?;
                if role.key_type != "any" {
                    let want = KeySpec::resolve(&role.key_type, role.key_bits)
                        .map_err(|e| bad(e.to_string()))?;
                    let ok = spec.kind == want.kind
                        && match spec.kind {
                            KeyType::Rsa => spec.bits >= want.bits,
                            KeyType::Ec => spec.bits == want.bits,
                            KeyType::Ed25519 => true,
                        };
                    if !ok {
                        return Err(bad(format!(
                            "role requires keys of type {} with {} bits, but the csr has {} with {} bits",
                            role.key_type,
                            want.bits,
                            spec.kind.as_str(),
                            spec.bits
                        )));
                    }
                }
                (None, c.spki_der.clone())
            }
        };
        let plan = plan_leaf(&LeafRequest {
            role: &role,
            common_name: subj.common_name,
            alt_names: subj.alt_names,
            ip_sans: subj.ip_sans,
            uri_sans: subj.uri_sans,
            other_sans: subj.other_sans,
            subject_serial: subj.serial_number,
            exclude_cn_from_sans: subj.exclude_cn_from_sans,
            csr: csr.as_ref(),
            verbatim: mode == Mode::Verbatim,
            display_name: &req.caller.display_name,
            entity: req.caller.entity.as_deref(),
        })?;
        let now = self.now();
        let mut warnings = Vec::new();
        let ttl = Some(subj.ttl.as_secs() as i64);
        let not_after = match Some(subj.not_after.as_str()).filter(|s| !s.is_empty()) {
            Some(s) => Some(
                crate::clock::parse_rfc3339(s)
                    .ok_or_else(|| bad(format!("invalid not_after {s:?}: expected RFC 3339")))?,
            ),
            None => None,
        };
        let end = leaf_not_after(&req, &role, &issuer, ttl, not_after, now, &mut warnings)?;
        let urls: UrlsConfig = store::load_or_default(s, "config/urls").await?;
        let serial = x509::random_serial();
        let spec = CertSpec {
            serial: serial.clone(),
            subject: plan.subject,
            spki_der,
            not_before: now - role.not_before_duration as i64,
            not_after: end,
            ca: None,
            basic_constraints_for_leaf: role.basic_constraints_valid_for_non_ca,
            key_usage: x509::key_usage_bits(&role.key_usage).map_err(|e| bad(e.to_string()))?,
            ext_key_usage: ext_key_usages(&role)?,
            sans: plan.sans,
            urls: issuer.urls(&urls),
            policy_identifiers: role
                .policy_identifiers
                .iter()
                .map(|o| x509::parse_oid("policy_identifiers", o))
                .collect::<std::result::Result<_, _>>()
                .map_err(|e| bad(e.to_string()))?,
            ..Default::default()
        };
        let der = x509::build_certificate(&spec, &issuer.signer(role.signature_bits as u32)?)
            .map_err(|e| bad(e.to_string()))?;
        if !role.no_store {
            // With the issuer that signed it: a reissued CA's copies sign indistinguishably.
            store::put_issued_cert(s, &serial, &der, &issuer.entry.id).await?;
        }
        // The response, in Vault's shape.
        let mut chain_pems: Vec<String> = if issuer.entry.ca_chain.is_empty() {
            vec![issuer.entry.certificate.clone()]
        } else {
            issuer.entry.ca_chain.clone()
        };
        if leaf.remove_roots_from_chain {
            chain_pems.retain(|p| {
                pem::certificates(p)
                    .ok()
                    .and_then(|c| c.into_iter().next())
                    .and_then(|d| x509::parse_cert(&d).ok())
                    .is_none_or(|c| !c.self_issued())
            });
        }
        let convert = |p: &String| -> String {
            if format == "der" {
                pem::certificates(p)
                    .ok()
                    .and_then(|c| c.into_iter().next())
                    .map(|d| encode_cert(&d, "der"))
                    .unwrap_or_default()
            } else {
                p.clone()
            }
        };
        let mut data = Map::new();
        data.insert("certificate".into(), json!(encode_cert(&der, &format)));
        data.insert(
            "issuing_ca".into(),
            json!(convert(&issuer.entry.certificate)),
        );
        data.insert(
            "ca_chain".into(),
            json!(chain_pems.iter().map(convert).collect::<Vec<_>>()),
        );
        data.insert("serial_number".into(), json!(x509::serial_colon(&serial)));
        data.insert("expiration".into(), json!(end));
        if let Some(key) = &key {
            let pk_format = subj.private_key_format.as_str();
            let pk_format = if format == "der" && pk_format.is_empty() {
                "der"
            } else {
                pk_format
            };
            let exported = key.export(pk_format).map_err(|e| bad(e.to_string()))?;
            data.insert("private_key".into(), json!(*exported));
            data.insert("private_key_type".into(), json!(key.key_type().as_str()));
        }
        if format == "pem_bundle" {
            let mut parts = Vec::new();
            if let Some(k) = data.get("private_key").and_then(Value::as_str) {
                parts.push(k.to_owned());
            }
            parts.push(pem::cert(&der));
            for p in &chain_pems {
                let self_signed = pem::certificates(p)
                    .ok()
                    .and_then(|c| c.into_iter().next())
                    .and_then(|d| x509::parse_cert(&d).ok())
                    .is_some_and(|c| c.self_issued());
                if !self_signed {
                    parts.push(p.clone());
                }
            }
            data.insert("certificate".into(), json!(parts.join("\n")));
        }
        let mut resp = Response::data(data);
        resp.warnings = warnings;
        if role.generate_lease {
            let mut internal = Map::new();
            internal.insert("serial_number".into(), json!(x509::serial_colon(&serial)));
            resp.secret = Some(SecretLease {
                secret_type: "pki".into(),
                ttl: std::time::Duration::from_secs((end - now).max(0) as u64),
                max_ttl: None,
                renewable: false,
                internal_data: internal,
            });
        }
        Ok(Some(resp))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn other_sans_parse() {
        let (oid, v) =
            parse_other_san("1.3.6.1.4.1.311.20.2.3;UTF8:devops@example.com", false).unwrap();
        assert_eq!(oid.to_string(), "1.3.6.1.4.1.311.20.2.3");
        assert_eq!(v, "devops@example.com");
        assert!(parse_other_san("1.2.3;INT:5", false).is_err());
        assert!(parse_other_san("nonsense", false).is_err());
        assert!(parse_other_san("*;UTF8:*", true).is_ok());
        assert!(parse_other_san("*;UTF8:*", false).is_err());
    }

    #[test]
    fn other_san_rules() {
        let mut role = Role {
            allowed_other_sans: vec!["1.2.3.4;UTF8:*@example.com".into()],
            ..Role::default()
        };
        let oid = ObjectIdentifier::new_unwrap("1.2.3.4");
        assert!(other_san_allowed(&role, &oid, "a@example.com"));
        assert!(!other_san_allowed(&role, &oid, "a@evil.com"));
        assert!(!other_san_allowed(
            &role,
            &ObjectIdentifier::new_unwrap("1.2.3.5"),
            "a@example.com"
        ));
        role.allowed_other_sans = vec!["*".into()];
        assert!(other_san_allowed(&role, &oid, "anything"));
    }
}
