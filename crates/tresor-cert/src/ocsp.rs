//! OCSP (RFC 6960) for `ocsp_enabled` roles: ask the responders of the client certificate (its
//! Authority Information Access, or the role's `ocsp_servers_override`) about it, over HTTP
//! `POST` with a DER request carrying a nonce, and believe only an answer signed by the
//! certificate's issuer, by a responder certificate the role trusts (`ocsp_ca_certificates`),
//! or by a responder certificate one of those issued for OCSP signing.
//!
//! [`query`] says `Good`, `Revoked` or `Unknown`, or why it could not tell (unreachable, a
//! refused or malformed answer, a bad signature, a stale answer): the caller decides what
//! `ocsp_fail_open` makes of that. Nothing here is cached: a revocation takes effect on the
//! next login.

use std::time::Duration;

use der::asn1::{Any, Null, OctetString};
use der::oid::ObjectIdentifier;
use der::{Decode, Encode};
use x509_cert::ext::Extension;
use x509_cert::serial_number::SerialNumber;
use x509_cert::spki::AlgorithmIdentifierOwned;
use x509_ocsp::{
    BasicOcspResponse, CertId, CertStatus, OcspRequest, OcspResponse, OcspResponseStatus, Request,
    TbsRequest, Version,
};
use x509_parser::certificate::X509Certificate;
use x509_parser::prelude::FromDer;

use crate::x509;

const OID_SHA1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.14.3.2.26");
const OID_OCSP_BASIC: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.1.1");
const OID_OCSP_NONCE: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.1.2");
/// How far a responder's clock may be ahead of or behind ours.
const SKEW: i64 = 300;
/// The largest OCSP answer read.
const MAX_RESPONSE: usize = 256 * 1024;
/// Retries per responder are bounded whatever the role says.
pub(crate) const RETRY_CAP: u32 = 8;

/// What a role asks of the OCSP check.
#[derive(Debug, Clone, Default)]
pub(crate) struct Settings {
    /// Responder URLs; empty means the certificate's own (Authority Information Access).
    pub servers_override: Vec<String>,
    /// DER responder certificates trusted besides the issuer.
    pub extra_signers: Vec<Vec<u8>>,
    pub query_all: bool,
    /// Seconds; 0: any age.
    pub this_update_max_age: u64,
    /// Extra tries per responder after a transport failure.
    pub max_retries: u32,
}

/// A definitive answer about one certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Answer {
    Good,
    Revoked,
    Unknown,
}

fn sha1(data: &[u8]) -> Vec<u8> {
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY, data)
        .as_ref()
        .to_vec()
}

/// The CertID naming `leaf` as issued by `issuer` (SHA-1, as responders expect).
fn cert_id(leaf: &X509Certificate, issuer: &X509Certificate) -> Result<CertId, String> {
    let e = |e: der::Error| format!("building the OCSP request: {e}");
    Ok(CertId {
        hash_algorithm: AlgorithmIdentifierOwned {
            oid: OID_SHA1,
            parameters: Some(Any::from(Null)),
        },
        issuer_name_hash: OctetString::new(sha1(issuer.subject().as_raw())).map_err(e)?,
        issuer_key_hash: OctetString::new(sha1(&issuer.public_key().subject_public_key.data))
            .map_err(e)?,
        serial_number: SerialNumber::new(leaf.raw_serial()).map_err(e)?,
    })
}

/// A DER OCSP request for `id`, with a fresh nonce; also returns the nonce extension's value.
fn build_request(id: &CertId) -> Result<(Vec<u8>, Vec<u8>), String> {
    let e = |e: der::Error| format!("building the OCSP request: {e}");
    let mut nonce = [0u8; 16];
    aws_lc_rs::rand::fill(&mut nonce).map_err(|_| "no randomness for the OCSP nonce")?;
    let nonce_value = OctetString::new(nonce.to_vec())
        .and_then(|o| o.to_der())
        .map_err(e)?;
    let req = OcspRequest {
        tbs_request: TbsRequest {
            version: Version::V1,
            requestor_name: None,
            request_list: vec![Request {
                req_cert: id.clone(),
                single_request_extensions: None,
            }],
            request_extensions: Some(vec![Extension {
                extn_id: OID_OCSP_NONCE,
                critical: false,
                extn_value: OctetString::new(nonce_value.clone()).map_err(e)?,
            }]),
        },
        optional_signature: None,
    };
    Ok((req.to_der().map_err(e)?, nonce_value))
}

/// The raw DER of the first element of a SEQUENCE (the signed part of a BasicOCSPResponse).
fn first_element(seq: &[u8]) -> Option<&[u8]> {
    let (_, outer) = x509_parser::asn1_rs::Any::from_der(seq).ok()?;
    let content = outer.data;
    let (rest, _) = x509_parser::asn1_rs::Any::from_der(content).ok()?;
    Some(&content[..content.len() - rest.len()])
}

/// Verifies `basic`'s signature with `signer`'s key.
fn signed_with(
    basic_der: &[u8],
    basic: &BasicOcspResponse,
    signer: &X509Certificate,
) -> Result<bool, String> {
    let tbs = first_element(basic_der).ok_or("malformed OCSP response")?;
    let alg_der = basic
        .signature_algorithm
        .to_der()
        .map_err(|e| format!("malformed OCSP response: {e}"))?;
    let (_, alg) = x509_parser::x509::AlgorithmIdentifier::from_der(&alg_der)
        .map_err(|e| format!("malformed OCSP response: {e}"))?;
    let sig = x509_parser::asn1_rs::BitString::new(0, basic.signature.raw_bytes());
    Ok(x509_parser::verify::verify_signature(signer.public_key(), &alg, &sig, tbs).is_ok())
}

fn ocsp_signing(c: &X509Certificate) -> bool {
    matches!(c.extended_key_usage(), Ok(Some(e)) if e.value.ocsp_signing)
}

/// Judges one responder's answer about `id`.
fn evaluate(
    body: &[u8],
    id: &CertId,
    nonce: &[u8],
    trusted: &[X509Certificate],
    now: i64,
    max_age: u64,
) -> Result<Answer, String> {
    let resp = OcspResponse::from_der(body).map_err(|e| format!("malformed OCSP response: {e}"))?;
    if resp.response_status != OcspResponseStatus::Successful {
        return Err(format!(
            "the responder refused the request ({:?})",
            resp.response_status
        ));
    }
    let rb = resp
        .response_bytes
        .ok_or("the responder's answer has no response")?;
    if rb.response_type != OID_OCSP_BASIC {
        return Err("the responder's answer is not a basic OCSP response".into());
    }
    let basic_der = rb.response.as_bytes();
    let basic = BasicOcspResponse::from_der(basic_der)
        .map_err(|e| format!("malformed OCSP response: {e}"))?;
    // Signed by a trusted certificate itself, or by a responder certificate it issued for
    // OCSP signing (carried in the answer).
    let mut verified = false;
    for t in trusted {
        if signed_with(basic_der, &basic, t)? {
            verified = true;
            break;
        }
    }
    if !verified {
        for c in basic.certs.iter().flatten() {
            let Ok(der) = c.to_der() else { continue };
            let Ok(rc) = x509::parse(&der) else { continue };
            if x509::valid_at(&rc, now)
                && ocsp_signing(&rc)
                && trusted.iter().any(|t| x509::issued_by(&rc, t))
                && signed_with(basic_der, &basic, &rc)?
            {
                verified = true;
                break;
            }
        }
    }
    if !verified {
        return Err("the OCSP response is not signed by the issuer or a trusted responder".into());
    }
    let data = &basic.tbs_response_data;
    if let Some(ext) = data
        .response_extensions
        .iter()
        .flatten()
        .find(|e| e.extn_id == OID_OCSP_NONCE)
        && ext.extn_value.as_bytes() != nonce
    {
        return Err("the OCSP response answers another request (nonce)".into());
    }
    let single = data
        .responses
        .iter()
        .find(|r| r.cert_id == *id)
        .ok_or("the OCSP response does not answer for this certificate")?;
    let secs = |t: &x509_ocsp::OcspGeneralizedTime| t.0.to_unix_duration().as_secs() as i64;
    let this_update = secs(&single.this_update);
    if this_update > now + SKEW {
        return Err("the OCSP response is not yet valid (thisUpdate)".into());
    }
    if let Some(next) = &single.next_update
        && secs(next) + SKEW < now
    {
        return Err("the OCSP response is stale (nextUpdate has passed)".into());
    }
    if max_age > 0 && now - this_update > max_age as i64 {
        return Err("the OCSP response is older than ocsp_this_update_max_age".into());
    }
    Ok(match single.cert_status {
        CertStatus::Good(_) => Answer::Good,
        CertStatus::Revoked(_) => Answer::Revoked,
        CertStatus::Unknown(_) => Answer::Unknown,
    })
}

async fn post(http: &reqwest::Client, url: &str, body: &[u8]) -> Result<Vec<u8>, String> {
    let resp = http
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, "application/ocsp-request")
        .header(reqwest::header::ACCEPT, "application/ocsp-response")
        .body(body.to_vec())
        .send()
        .await
        .map_err(|e| format!("{url}: {e}"))?;
    if !resp.status().is_success() {
        return Err(format!("{url}: HTTP status {}", resp.status()));
    }
    if resp.content_length().unwrap_or(0) as usize > MAX_RESPONSE {
        return Err(format!("{url}: the answer is too large"));
    }
    let bytes = resp.bytes().await.map_err(|e| format!("{url}: {e}"))?;
    if bytes.len() > MAX_RESPONSE {
        return Err(format!("{url}: the answer is too large"));
    }
    Ok(bytes.to_vec())
}

/// Asks about `leaf` (issued by `issuer`; both DER).
pub(crate) async fn query(
    http: &reqwest::Client,
    leaf: &[u8],
    issuer: &[u8],
    s: &Settings,
    now: i64,
) -> Result<Answer, String> {
    let leaf_c = x509::parse(leaf)?;
    let issuer_c = x509::parse(issuer)?;
    let servers = if s.servers_override.is_empty() {
        x509::leaf_facts(leaf)?.ocsp_servers
    } else {
        s.servers_override.clone()
    };
    if servers.is_empty() {
        return Err(
            "no OCSP responder: the certificate names none and ocsp_servers_override is empty"
                .into(),
        );
    }
    let mut trusted = vec![issuer_c];
    for d in &s.extra_signers {
        trusted.push(x509::parse(d)?);
    }
    let id = cert_id(&leaf_c, &trusted[0])?;
    let mut errors = Vec::new();
    let mut answers = Vec::new();
    for url in &servers {
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            errors.push(format!("{url}: not an http(s) URL"));
            continue;
        }
        let (body, nonce) = build_request(&id)?;
        let mut attempt = 0;
        let got = loop {
            match post(http, url, &body).await {
                Ok(b) => break Ok(b),
                Err(e) if attempt >= s.max_retries.min(RETRY_CAP) => break Err(e),
                Err(_) => {
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(50 * u64::from(attempt))).await;
                }
            }
        };
        let answer = got.and_then(|b| {
            evaluate(&b, &id, &nonce, &trusted, now, s.this_update_max_age)
                .map_err(|e| format!("{url}: {e}"))
        });
        match answer {
            Ok(Answer::Revoked) => return Ok(Answer::Revoked),
            Ok(Answer::Good) if !s.query_all => return Ok(Answer::Good),
            Ok(a) => answers.push(a),
            Err(e) => errors.push(e),
        }
    }
    if s.query_all {
        // Every responder must have said good.
        if errors.is_empty() && answers.iter().all(|a| *a == Answer::Good) {
            return Ok(Answer::Good);
        }
        if errors.is_empty() {
            return Ok(Answer::Unknown);
        }
    } else if answers.contains(&Answer::Unknown) {
        return Ok(Answer::Unknown);
    }
    Err(errors.join("; "))
}
