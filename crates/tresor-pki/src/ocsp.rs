//! The OCSP responder (RFC 6960) at `ocsp`: `GET ocsp/<base64 request>` and `POST ocsp` with
//! a DER body. The issuers the request names (by name and key hash: every issuer of that
//! subject and key, as they share one CRL) answer for the certificates signed with that key:
//! `revoked` (with its time) when it is on their CRL, `good` when the mount stored it and its
//! signature verifies, else `unknown`. Responses are signed by one of those issuers allowed
//! `ocsp-signing`, carry its certificate, and echo the request's nonce. As in Vault, a request
//! naming no issuer of the mount is answered `unknown` (signed by the default issuer), and one
//! whose issuers may not sign OCSP responses `unauthorized`: never `good` when the responder
//! cannot decide.
//!
//! The HTTP edge parses bodies as JSON; a DER body arrives here base64-encoded in the request
//! request's raw body (see the crate documentation).

use std::sync::Arc;

use base64::Engine as _;
use der::asn1::{BitString, GeneralizedTime, Null, OctetString};
use der::oid::{AssociatedOid, ObjectIdentifier};
use der::{Decode, Encode};
use tresor_sdk::framework::Fields;

use crate::inputs::OcspRequestInput;
use tresor_sdk::{Request, Response, Result, get_json};
use x509_ocsp::ext::Nonce;
use x509_ocsp::{
    BasicOcspResponse, CertStatus, OcspGeneralizedTime, OcspRequest, OcspResponse,
    OcspResponseStatus, ResponderId, ResponseBytes, ResponseData, RevokedInfo, SingleResponse,
    Version,
};

use crate::issuers::{LoadedIssuer, raw};
use crate::store::{self, CrlConfig, RevokedEntry};
use crate::{Engine, x509};

const OID_SHA1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.14.3.2.26");
const OID_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.1");
const OID_SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.2");
const OID_SHA512: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.3");
const OID_OCSP_BASIC: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.1.1");

fn digest(alg: &ObjectIdentifier, data: &[u8]) -> Option<Vec<u8>> {
    use aws_lc_rs::digest as d;
    let a = match *alg {
        x if x == OID_SHA1 => &d::SHA1_FOR_LEGACY_USE_ONLY,
        x if x == OID_SHA256 => &d::SHA256,
        x if x == OID_SHA384 => &d::SHA384,
        x if x == OID_SHA512 => &d::SHA512,
        _ => return None,
    };
    Some(d::digest(a, data).as_ref().to_vec())
}

fn gtime(secs: i64) -> Option<OcspGeneralizedTime> {
    let d = std::time::Duration::from_secs(u64::try_from(secs).ok()?);
    GeneralizedTime::from_unix_duration(d)
        .ok()
        .map(OcspGeneralizedTime)
}

/// An unsigned answer carrying only an error status, with the HTTP status Vault sends beside
/// it (400 malformed, 401 unauthorized, 500 internal error): OCSP clients read the body, HTTP
/// tooling and monitoring see the failure.
fn status_only(status: OcspResponseStatus) -> Response {
    let http = match status {
        OcspResponseStatus::MalformedRequest => 400,
        OcspResponseStatus::Unauthorized => 401,
        OcspResponseStatus::InternalError => 500,
        _ => 200,
    };
    let body = OcspResponse {
        response_status: status,
        response_bytes: None,
    }
    .to_der()
    .unwrap_or_default();
    raw(http, "application/ocsp-response", body)
}

impl Engine {
    pub(crate) async fn ocsp(self: Arc<Self>, req: Request, f: Fields) -> Result<Option<Response>> {
        // POST carries the DER request as its body, handed on untouched by the HTTP edge.
        if req.operation != tresor_sdk::Operation::Read {
            let Some(der) = req.raw_body.clone() else {
                return Ok(Some(status_only(OcspResponseStatus::MalformedRequest)));
            };
            return self.answer_ocsp(&req, &der).await;
        }
        let OcspRequestInput { request: encoded } = f.input();
        let cleaned: String = encoded.chars().filter(|c| !c.is_whitespace()).collect();
        let der = base64::engine::general_purpose::STANDARD
            .decode(cleaned.as_bytes())
            .or_else(|_| base64::engine::general_purpose::URL_SAFE.decode(cleaned.as_bytes()))
            .or_else(|_| {
                base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(cleaned.as_bytes())
            });
        let Ok(der) = der else {
            return Ok(Some(status_only(OcspResponseStatus::MalformedRequest)));
        };
        self.answer_ocsp(&req, &der).await
    }

    async fn answer_ocsp(&self, req: &Request, der: &[u8]) -> Result<Option<Response>> {
        let s = &*req.storage;
        let Ok(request) = OcspRequest::from_der(der) else {
            return Ok(Some(status_only(OcspResponseStatus::MalformedRequest)));
        };
        let cfg: CrlConfig = store::load_or_default(s, "config/crl").await?;
        if cfg.ocsp_disable {
            return Ok(Some(status_only(OcspResponseStatus::Unauthorized)));
        }
        let list = &request.tbs_request.request_list;
        if list.len() != 1 {
            return Ok(Some(status_only(OcspResponseStatus::MalformedRequest)));
        }
        let cert_id = &list[0].req_cert;
        // The issuers this request is about: every issuer whose name and key hash match (all
        // of one subject and key, so one CRL).
        let alg = &cert_id.hash_algorithm.oid;
        let mut matched = Vec::new();
        for issuer in self.all_issuers(req).await? {
            let key_bits =
                x509_cert::spki::SubjectPublicKeyInfoOwned::from_der(&issuer.cert.spki_der)
                    .map(|k| k.subject_public_key.raw_bytes().to_vec())
                    .unwrap_or_default();
            if digest(alg, &issuer.cert.subject_der).as_deref()
                == Some(cert_id.issuer_name_hash.as_bytes())
                && digest(alg, &key_bits).as_deref() == Some(cert_id.issuer_key_hash.as_bytes())
            {
                matched.push(issuer);
            }
        }
        let can_sign = |i: &LoadedIssuer| i.key.is_some() && i.has_usage("ocsp-signing");
        if matched.is_empty() {
            // Not an issuer of this mount: `unknown`, signed by the default issuer if it may
            // sign OCSP responses, else unauthorized (Vault's rule).
            let signer = match self.issuer_by_ref(req, "default").await {
                Ok(d) if can_sign(&d) => d,
                _ => return Ok(Some(status_only(OcspResponseStatus::Unauthorized))),
            };
            return self
                .signed_ocsp(&request, &cfg, &signer, CertStatus::unknown())
                .map(Some);
        }
        // Among them, one allowed to sign. None means this mount may not answer for that
        // issuer (Vault: unauthorized), rather than falling through to another issuer.
        let Some(signer) = matched
            .iter()
            .filter(|i| can_sign(i))
            .max_by(|a, b| {
                a.cert
                    .not_after
                    .cmp(&b.cert.not_after)
                    .then_with(|| b.entry.id.cmp(&a.entry.id))
            })
            .cloned()
        else {
            return Ok(Some(status_only(OcspResponseStatus::Unauthorized)));
        };
        let serial = x509::trim_serial(cert_id.serial_number.as_bytes());
        let revoked: Option<RevokedEntry> =
            get_json(s, &format!("revoked/{}", store::serial_key(&serial))).await?;
        // Issued under this name with this key: the stored certificate verifies.
        let ours = match store::get_cert(s, &serial).await? {
            Some(d) => x509::signed_by(&d, &signer.cert.der),
            None => false,
        };
        let on_this_crl = |r: &RevokedEntry| {
            ours || r.crl_id == signer.crl_id
                || (r.crl_id.is_empty() && matched.iter().any(|m| m.entry.id == r.issuer_id))
        };
        let status = match revoked {
            Some(r) if on_this_crl(&r) => match gtime(r.revocation_time) {
                Some(t) => CertStatus::Revoked(RevokedInfo {
                    revocation_time: t,
                    revocation_reason: None,
                }),
                None => CertStatus::unknown(),
            },
            _ if ours => CertStatus::Good(Null),
            _ => CertStatus::unknown(),
        };
        self.signed_ocsp(&request, &cfg, &signer, status).map(Some)
    }

    /// A successful response with one answer, `status`, for the request's certificate, signed
    /// by `issuer`.
    fn signed_ocsp(
        &self,
        request: &OcspRequest,
        cfg: &CrlConfig,
        issuer: &LoadedIssuer,
        status: CertStatus,
    ) -> Result<Response> {
        let cert_id = &request.tbs_request.request_list[0].req_cert;
        let now = self.now();
        let (Some(produced), Some(this_update)) = (gtime(now), gtime(now)) else {
            return Ok(status_only(OcspResponseStatus::InternalError));
        };
        let next_update = if cfg.ocsp_expiry > 0 {
            gtime(now + cfg.ocsp_expiry as i64)
        } else {
            None
        };
        let nonce = request
            .tbs_request
            .request_extensions
            .as_deref()
            .unwrap_or(&[])
            .iter()
            .find(|e| e.extn_id == Nonce::OID)
            .cloned();
        let key_hash = OctetString::new(crate::keys::key_id(&issuer.cert.spki_der))
            .map_err(crate::store::internal)?;
        let data = ResponseData {
            version: Version::V1,
            responder_id: ResponderId::ByKey(key_hash),
            produced_at: produced,
            responses: vec![SingleResponse {
                cert_id: cert_id.clone(),
                cert_status: status,
                this_update,
                next_update,
                single_extensions: None,
            }],
            response_extensions: nonce.map(|n| vec![n]),
        };
        let signer = issuer.signer(0)?;
        let tbs = data.to_der().map_err(crate::store::internal)?;
        let sig = signer
            .key
            .sign(signer.alg, &tbs)
            .map_err(crate::store::internal)?;
        let basic = BasicOcspResponse {
            tbs_response_data: data,
            signature_algorithm: signer.alg.identifier(),
            signature: BitString::from_bytes(&sig).map_err(crate::store::internal)?,
            // The signer's certificate goes along so clients find it without configuration.
            certs: x509_cert::Certificate::from_der(&issuer.cert.der)
                .ok()
                .map(|c| vec![c]),
        };
        let body = OcspResponse {
            response_status: OcspResponseStatus::Successful,
            response_bytes: Some(ResponseBytes {
                response_type: OID_OCSP_BASIC,
                response: OctetString::new(basic.to_der().map_err(crate::store::internal)?)
                    .map_err(crate::store::internal)?,
            }),
        }
        .to_der()
        .map_err(crate::store::internal)?;
        Ok(raw(200, "application/ocsp-response", body))
    }
}
