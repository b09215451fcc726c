//! Test fixtures: certificate authorities, client certificates, CRLs and a small OCSP
//! responder on 127.0.0.1, all made in-process with rcgen and x509-ocsp.

use std::sync::{Arc, Mutex};

use der::asn1::{BitString, GeneralizedTime, Ia5String, OctetString};
use der::oid::ObjectIdentifier;
use der::{Decode, Encode};
use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, CustomExtension, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose,
    RevokedCertParams, SerialNumber, SigningKey as _, date_time_ymd,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::{AccessDescription, AuthorityInfoAccessSyntax};
use x509_cert::spki::AlgorithmIdentifierOwned;
use x509_ocsp::{
    BasicOcspResponse, CertStatus, OcspGeneralizedTime, OcspRequest, OcspResponse,
    OcspResponseStatus, ResponderId, ResponseBytes, ResponseData, RevokedInfo, SingleResponse,
    Version,
};

/// 2030-01-01T00:00:00Z: the tests' "now".
pub(crate) const NOW: i64 = 1_893_456_000;

/// A CA: its parameters (to sign with) and its key and certificate.
pub(crate) struct Ca {
    pub params: CertificateParams,
    pub key: KeyPair,
    pub der: Vec<u8>,
    pub pem: String,
}

impl Ca {
    pub(crate) fn issuer(&self) -> Issuer<'_, &KeyPair> {
        Issuer::from_params(&self.params, &self.key)
    }
}

fn base(cn: &str) -> CertificateParams {
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.distinguished_name.push(DnType::CommonName, cn);
    p.not_before = date_time_ymd(2029, 1, 1);
    p.not_after = date_time_ymd(2031, 1, 1);
    p.key_identifier_method = KeyIdMethod::Sha256;
    p
}

/// A CA named `cn`, self-signed or signed by `parent`; `edit` adjusts its parameters.
pub(crate) fn ca(cn: &str, parent: Option<&Ca>, edit: impl FnOnce(&mut CertificateParams)) -> Ca {
    let mut p = base(cn);
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    p.use_authority_key_identifier_extension = parent.is_some();
    edit(&mut p);
    let key = KeyPair::generate().unwrap();
    let cert = match parent {
        None => p.self_signed(&key).unwrap(),
        Some(parent) => p.signed_by(&key, &parent.issuer()).unwrap(),
    };
    Ca {
        params: p,
        key,
        der: cert.der().to_vec(),
        pem: cert.pem(),
    }
}

/// A client certificate: DER and its key (PEM).
pub(crate) struct Leaf {
    pub der: Vec<u8>,
    pub pem: String,
}

/// A client certificate for `cn` issued by `issuer` with the client-auth usage; `edit`
/// adjusts its parameters.
pub(crate) fn leaf(
    cn: &str,
    issuer: &Ca,
    serial: u64,
    edit: impl FnOnce(&mut CertificateParams),
) -> Leaf {
    let mut p = base(cn);
    p.is_ca = IsCa::ExplicitNoCa;
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    p.serial_number = Some(SerialNumber::from(serial));
    p.use_authority_key_identifier_extension = true;
    edit(&mut p);
    let key = KeyPair::generate().unwrap();
    let cert = p.signed_by(&key, &issuer.issuer()).unwrap();
    Leaf {
        der: cert.der().to_vec(),
        pem: cert.pem(),
    }
}

/// A self-signed client certificate that is not a CA.
pub(crate) fn self_signed_leaf(cn: &str) -> Leaf {
    let mut p = base(cn);
    p.is_ca = IsCa::ExplicitNoCa;
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let key = KeyPair::generate().unwrap();
    let cert = p.self_signed(&key).unwrap();
    Leaf {
        der: cert.der().to_vec(),
        pem: cert.pem(),
    }
}

/// An Authority Information Access extension naming one OCSP responder.
pub(crate) fn aia_ocsp(url: &str) -> CustomExtension {
    let aia = AuthorityInfoAccessSyntax(vec![AccessDescription {
        access_method: ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.1"),
        access_location: GeneralName::UniformResourceIdentifier(Ia5String::new(url).unwrap()),
    }]);
    CustomExtension::from_oid_content(&[1, 3, 6, 1, 5, 5, 7, 1, 1], aia.to_der().unwrap())
}

/// A CRL by `issuer` revoking `serials`, as PEM.
pub(crate) fn crl(issuer: &Ca, serials: &[u64]) -> String {
    CertificateRevocationListParams {
        this_update: date_time_ymd(2029, 12, 1),
        next_update: date_time_ymd(2030, 2, 1),
        crl_number: SerialNumber::from(1u64),
        issuing_distribution_point: None,
        revoked_certs: serials
            .iter()
            .map(|s| RevokedCertParams {
                serial_number: SerialNumber::from(*s),
                revocation_time: date_time_ymd(2029, 12, 1),
                reason_code: None,
                invalidity_date: None,
            })
            .collect(),
        key_identifier_method: KeyIdMethod::Sha256,
    }
    .signed_by(&issuer.issuer())
    .unwrap()
    .pem()
    .unwrap()
}

/// What the test responder answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    Good,
    Revoked,
    Unknown,
    /// A response signed by a key nobody trusts.
    ForgedSignature,
    /// A `good` answer produced long ago.
    Stale,
    /// HTTP 500.
    ServerError,
}

/// An OCSP responder on 127.0.0.1 answering for `ca` (signing with its key), in `mode`.
pub(crate) struct Responder {
    pub url: String,
    pub mode: Arc<Mutex<Mode>>,
    pub hits: Arc<Mutex<u32>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Responder {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn gtime(secs: i64) -> OcspGeneralizedTime {
    OcspGeneralizedTime(
        GeneralizedTime::from_unix_duration(std::time::Duration::from_secs(secs as u64)).unwrap(),
    )
}

fn answer(req_der: &[u8], mode: Mode, ca: &(Vec<u8>, KeyPair), forger: &KeyPair) -> Vec<u8> {
    let req = OcspRequest::from_der(req_der).unwrap();
    let id = req.tbs_request.request_list[0].req_cert.clone();
    let (status, this_update) = match mode {
        Mode::Revoked => (
            CertStatus::Revoked(RevokedInfo {
                revocation_time: gtime(NOW - 60),
                revocation_reason: None,
            }),
            NOW - 10,
        ),
        Mode::Unknown => (CertStatus::unknown(), NOW - 10),
        Mode::Stale => (CertStatus::Good(der::asn1::Null), NOW - 30 * 86_400),
        _ => (CertStatus::Good(der::asn1::Null), NOW - 10),
    };
    let data = ResponseData {
        version: Version::V1,
        responder_id: ResponderId::ByKey(OctetString::new(vec![1, 2, 3]).unwrap()),
        produced_at: gtime(NOW - 10),
        responses: vec![SingleResponse {
            cert_id: id,
            cert_status: status,
            this_update: gtime(this_update),
            next_update: Some(gtime(this_update + 3600)),
            single_extensions: None,
        }],
        response_extensions: req.tbs_request.request_extensions.clone(),
    };
    let tbs = data.to_der().unwrap();
    let key = if mode == Mode::ForgedSignature {
        forger
    } else {
        &ca.1
    };
    let sig = key.sign(&tbs).unwrap();
    let basic = BasicOcspResponse {
        tbs_response_data: data,
        signature_algorithm: AlgorithmIdentifierOwned {
            oid: ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.2"),
            parameters: None,
        },
        signature: BitString::from_bytes(&sig).unwrap(),
        certs: Some(vec![x509_cert::Certificate::from_der(&ca.0).unwrap()]),
    };
    OcspResponse {
        response_status: OcspResponseStatus::Successful,
        response_bytes: Some(ResponseBytes {
            response_type: ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.1.1"),
            response: OctetString::new(basic.to_der().unwrap()).unwrap(),
        }),
    }
    .to_der()
    .unwrap()
}

/// Starts a responder for the CA whose certificate is `ca_der` and key `ca_key_pem`.
pub(crate) async fn responder(ca: &Ca, mode: Mode) -> Responder {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/ocsp", listener.local_addr().unwrap());
    let mode = Arc::new(Mutex::new(mode));
    let hits = Arc::new(Mutex::new(0));
    let signer = Arc::new((
        ca.der.clone(),
        KeyPair::from_pem(&ca.key.serialize_pem()).unwrap(),
    ));
    let forger = Arc::new(KeyPair::generate().unwrap());
    let (m, h) = (mode.clone(), hits.clone());
    let task = tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            let (m, h, signer, forger) = (m.clone(), h.clone(), signer.clone(), forger.clone());
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                // Read the head, then the body its Content-Length announces.
                let (head_end, len) = loop {
                    let n = sock.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&buf[..i]).to_lowercase();
                        let len = head
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .and_then(|v| v.trim().parse::<usize>().ok())
                            .unwrap_or(0);
                        break (i + 4, len);
                    }
                };
                while buf.len() < head_end + len {
                    let n = sock.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                }
                *h.lock().unwrap() += 1;
                let mode = *m.lock().unwrap();
                let (status, body) = if mode == Mode::ServerError {
                    ("500 Internal Server Error", Vec::new())
                } else {
                    (
                        "200 OK",
                        answer(&buf[head_end..head_end + len], mode, &signer, &forger),
                    )
                };
                let head = format!(
                    "HTTP/1.1 {status}\r\nContent-Type: application/ocsp-response\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = sock.write_all(head.as_bytes()).await;
                let _ = sock.write_all(&body).await;
            });
        }
    });
    Responder {
        url,
        mode,
        hits,
        task,
    }
}
