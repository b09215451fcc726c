//! Regression tests for the PKI findings of the security review (issue 10): each test
//! reproduces an attack and fails on the code before its fix.
//!
//! - Finding 7: with two issuers sharing subject and key (a reissued CA), a revocation must
//!   land on the CRL that relying parties of the real signer fetch, and OCSP must never answer
//!   `good` for a revoked certificate or when it cannot decide.
//! - Finding 9: `issue/:role`, `sign/:role` and `sign-verbatim[/:role]` take the issuer from
//!   the role, never from `issuer_ref` in the body (which would bypass ACLs written on
//!   `issuer/+/issue/...`).
//! - Finding 13: revocation is one storage transaction, and a retried revocation repairs a
//!   half-written one instead of short-circuiting on it.

mod common;

use std::sync::Arc;

use async_trait::async_trait;
use base64::Engine as _;
use common::{Harness, MemStorage, pem_der};
use der::asn1::{Null, OctetString};
use der::{Decode, Encode};
use serde_json::{Map, Value, json};
use tresor_sdk::{Caller, LogicalError, Operation, Request, Storage};
use x509_ocsp::{BasicOcspResponse, CertStatus, OcspRequest, OcspResponse, OcspResponseStatus};

// ---------------------------------------------------------------------------------------------
// Helpers.

/// The serials on a DER CRL, in the engine's colon form; the CRL must verify with `issuer_pem`.
fn crl_serials(crl_der: &[u8], issuer_pem: &str) -> Vec<String> {
    let (_, crl) = x509_parser::parse_x509_crl(crl_der).expect("a DER CRL");
    let issuer = pem_der(issuer_pem);
    let (_, cert) = x509_parser::parse_x509_certificate(&issuer).unwrap();
    crl.verify_signature(cert.public_key())
        .expect("the CRL verifies with the issuer's key");
    assert_eq!(
        crl.tbs_cert_list.issuer.as_raw(),
        cert.tbs_certificate.subject.as_raw(),
        "the CRL names the issuer"
    );
    crl.iter_revoked_certificates()
        .map(|r| tresor_pki::x509::serial_colon(&tresor_pki::x509::trim_serial(r.raw_serial())))
        .collect()
}

async fn crl_at(h: &Harness, path: &str) -> Vec<u8> {
    h.raw(Operation::Read, path, Value::Null).await.1
}

/// An OCSP request (SHA-1 CertID, as `openssl ocsp` sends) for `serial` under `issuer_pem`.
fn ocsp_request(issuer_pem: &str, serial_colon: &str) -> Vec<u8> {
    use aws_lc_rs::digest::{SHA1_FOR_LEGACY_USE_ONLY, digest};
    let issuer = pem_der(issuer_pem);
    let (_, cert) = x509_parser::parse_x509_certificate(&issuer).unwrap();
    let name_hash = digest(
        &SHA1_FOR_LEGACY_USE_ONLY,
        cert.tbs_certificate.subject.as_raw(),
    );
    let key_hash = digest(
        &SHA1_FOR_LEGACY_USE_ONLY,
        &cert.tbs_certificate.subject_pki.subject_public_key.data,
    );
    let serial = tresor_pki::x509::parse_serial(serial_colon).unwrap();
    let req = OcspRequest {
        tbs_request: x509_ocsp::TbsRequest {
            version: Default::default(),
            requestor_name: None,
            request_list: vec![x509_ocsp::Request {
                req_cert: x509_ocsp::CertId {
                    hash_algorithm: x509_cert::spki::AlgorithmIdentifierOwned {
                        oid: der::oid::ObjectIdentifier::new_unwrap("1.3.14.3.2.26"),
                        parameters: Some(Null.into()),
                    },
                    issuer_name_hash: OctetString::new(name_hash.as_ref()).unwrap(),
                    issuer_key_hash: OctetString::new(key_hash.as_ref()).unwrap(),
                    serial_number: x509_cert::serial_number::SerialNumber::new(&serial).unwrap(),
                },
                single_request_extensions: None,
            }],
            request_extensions: None,
        },
        optional_signature: None,
    };
    req.to_der().unwrap()
}

/// What the responder said.
#[derive(Debug, PartialEq, Eq)]
enum Ocsp {
    Good,
    Revoked,
    Unknown,
    /// An unsigned error status (e.g. 6, unauthorized).
    Status(u8),
}

/// Asks the mount's responder (GET form) and decodes the answer; a signed answer must verify
/// with the certificate it carries, whose key is `signer_pem`'s when given.
async fn ocsp(h: &Harness, issuer_pem: &str, serial: &str, signer_pem: Option<&str>) -> Ocsp {
    let b64 = base64::engine::general_purpose::STANDARD.encode(ocsp_request(issuer_pem, serial));
    let (status, ct, body) = h
        .raw_with_status(Operation::Read, &format!("ocsp/{b64}"), Value::Null)
        .await;
    assert_eq!(ct, "application/ocsp-response");
    let resp = OcspResponse::from_der(&body).expect("an OCSP response");
    if resp.response_status != OcspResponseStatus::Successful {
        // Vault's HTTP status beside an error answer.
        let want = match resp.response_status {
            OcspResponseStatus::MalformedRequest => 400,
            OcspResponseStatus::Unauthorized => 401,
            _ => 500,
        };
        assert_eq!(status, want, "{:?}", resp.response_status);
        return Ocsp::Status(resp.response_status as u8);
    }
    assert_eq!(status, 200);
    let bytes = resp.response_bytes.expect("response bytes");
    let basic = BasicOcspResponse::from_der(bytes.response.as_bytes()).unwrap();
    // The signature verifies with the key of the certificate sent along.
    let signer_der = basic.certs.as_ref().expect("the signer's certificate")[0]
        .to_der()
        .unwrap();
    let (_, signer) = x509_parser::parse_x509_certificate(&signer_der).unwrap();
    if let Some(want) = signer_pem {
        let want = pem_der(want);
        let (_, want) = x509_parser::parse_x509_certificate(&want).unwrap();
        assert_eq!(
            signer.public_key().raw,
            want.public_key().raw,
            "signed by the expected issuer's key"
        );
    }
    // (Every issuer in these tests is EC P-256, signing with ECDSA-SHA256.)
    let tbs = basic.tbs_response_data.to_der().unwrap();
    aws_lc_rs::signature::UnparsedPublicKey::new(
        &aws_lc_rs::signature::ECDSA_P256_SHA256_ASN1,
        &signer.public_key().subject_public_key.data,
    )
    .verify(&tbs, basic.signature.raw_bytes())
    .expect("the OCSP response signature verifies");
    match &basic.tbs_response_data.responses[0].cert_status {
        CertStatus::Good(_) => Ocsp::Good,
        CertStatus::Revoked(_) => Ocsp::Revoked,
        CertStatus::Unknown(_) => Ocsp::Unknown,
    }
}

/// Two issuers with the same subject and key, as Vault's documented rotation makes them
/// (`issuers/generate/root/existing` with the first root's key). Returns (first by id,
/// second by id) as (id, pem); the mount's default is the first generated root.
async fn reissued_root(h: &Harness) -> ((String, String), (String, String), String) {
    let a = h.root("ec", 256).await;
    let b = h
        .write(
            "issuers/generate/root/existing",
            json!({
                "common_name": "Tresor Test Root",
                "key_ref": a["key_id"],
                "issuer_name": "next",
                "ttl": "87600h",
            }),
        )
        .await;
    assert_eq!(a["key_id"], b["key_id"], "the same key");
    let pa = pem_der(a["certificate"].as_str().unwrap());
    let pb = pem_der(b["certificate"].as_str().unwrap());
    let (_, ca) = x509_parser::parse_x509_certificate(&pa).unwrap();
    let (_, cb) = x509_parser::parse_x509_certificate(&pb).unwrap();
    assert_eq!(
        ca.tbs_certificate.subject.as_raw(),
        cb.tbs_certificate.subject.as_raw(),
        "the same subject"
    );
    let mut both = [
        (
            a["issuer_id"].as_str().unwrap().to_owned(),
            a["certificate"].as_str().unwrap().to_owned(),
        ),
        (
            b["issuer_id"].as_str().unwrap().to_owned(),
            b["certificate"].as_str().unwrap().to_owned(),
        ),
    ];
    both.sort();
    let [first, second] = both;
    (first, second, a["issuer_id"].as_str().unwrap().to_owned())
}

async fn role(h: &Harness, name: &str, extra: Value) {
    let mut body = json!({"allow_any_name": true, "key_type": "ec", "ttl": "24h"});
    if let (Value::Object(b), Value::Object(e)) = (&mut body, extra) {
        b.extend(e);
    }
    h.write(&format!("roles/{name}"), body).await;
}

// ---------------------------------------------------------------------------------------------
// Finding 7: revocation against the issuer that signed.

#[tokio::test]
async fn finding_7_a_revocation_under_a_reissued_ca_is_on_every_crl_and_ocsp_says_revoked() {
    let h = Harness::new("pki/");
    let (first, second, default_id) = reissued_root(&h).await;
    role(&h, "r", json!({})).await;
    // Issue from the issuer that is second by id: the old lookup picked the first.
    let leaf = h
        .write(
            &format!("issuer/{}/issue/r", second.0),
            json!({"common_name": "victim.example.com"}),
        )
        .await;
    let serial = leaf["serial_number"].as_str().unwrap().to_owned();
    assert_eq!(leaf["issuing_ca"].as_str().unwrap(), second.1);
    h.write("revoke", json!({"serial_number": serial})).await;

    // On the CRL of the signer, of the other issuer of the same subject and key (they share
    // one CRL, as in Vault), and on the default CRL (the default is one of them).
    for (path, pem) in [
        (format!("issuer/{}/crl/der", second.0), &second.1),
        (format!("issuer/{}/crl/der", first.0), &first.1),
        ("crl".to_owned(), &second.1),
        ("crl".to_owned(), &first.1),
        (format!("issuer/{default_id}/crl/der"), &first.1),
    ] {
        let serials = crl_serials(&crl_at(&h, &path).await, pem);
        assert!(serials.contains(&serial), "{path}: {serials:?}");
    }
    // A revoked certificate is revoked in OCSP, whichever copy of the CA the client names.
    assert_eq!(ocsp(&h, &second.1, &serial, None).await, Ocsp::Revoked);
    assert_eq!(ocsp(&h, &first.1, &serial, None).await, Ocsp::Revoked);
    // The revocation is recorded against the issuer that signed (stored at issuance).
    assert_eq!(
        h.read(&format!("cert/{serial}")).await["issuer_id"],
        second.0
    );

    // The same holds for a certificate issued from the first issuer, and after a CRL rotation.
    let other = h
        .write(
            &format!("issuer/{}/issue/r", first.0),
            json!({"common_name": "other.example.com"}),
        )
        .await;
    let other_serial = other["serial_number"].as_str().unwrap().to_owned();
    assert_eq!(
        h.read(&format!("cert/{other_serial}")).await["issuer_id"],
        first.0
    );
    h.write(
        "revoke-with-key",
        json!({"serial_number": other_serial, "private_key": other["private_key"]}),
    )
    .await;
    h.ok(Operation::Update, "crl/rotate", Value::Null).await;
    for id in [&first.0, &second.0] {
        let serials = crl_serials(&crl_at(&h, &format!("issuer/{id}/crl/der")).await, &first.1);
        assert!(
            serials.contains(&serial) && serials.contains(&other_serial),
            "{id}: {serials:?}"
        );
    }
    assert_eq!(
        ocsp(&h, &second.1, &other_serial, None).await,
        Ocsp::Revoked
    );
}

#[tokio::test]
async fn finding_7_a_certificate_brought_to_revoke_is_matched_by_name_key_and_signature() {
    // A certificate the mount did not store (no_store) is revoked by PEM: the issuer is
    // found by issuer name, key identifier and a verified signature, and the revocation
    // reaches the shared CRL and OCSP.
    let h = Harness::new("pki/");
    let (first, second, _) = reissued_root(&h).await;
    role(&h, "nostore", json!({"no_store": true})).await;
    let leaf = h
        .write(
            &format!("issuer/{}/issue/nostore", second.0),
            json!({"common_name": "byoc.example.com"}),
        )
        .await;
    let serial = leaf["serial_number"].as_str().unwrap().to_owned();
    // A forged certificate with the same issuer name but another key is refused.
    let other = h.sibling("other/");
    other.root("ec", 256).await;
    role(&other, "nostore", json!({"no_store": true})).await;
    let forged = other
        .write("issue/nostore", json!({"common_name": "byoc.example.com"}))
        .await;
    let e = h
        .invalid(
            Operation::Update,
            "revoke",
            json!({"certificate": forged["certificate"]}),
        )
        .await;
    assert!(e.contains("not issued by any issuer"), "{e}");

    h.write("revoke", json!({"certificate": leaf["certificate"]}))
        .await;
    let read = h.read(&format!("cert/{serial}")).await;
    assert!(read["revocation_time"].as_i64().unwrap() > 0);
    assert!(
        [&first.0, &second.0].contains(&&read["issuer_id"].as_str().unwrap().to_owned()),
        "{read}"
    );
    for id in [&first.0, &second.0] {
        let serials = crl_serials(
            &crl_at(&h, &format!("issuer/{id}/crl/der")).await,
            &second.1,
        );
        assert!(serials.contains(&serial), "{id}: {serials:?}");
    }
    assert_eq!(ocsp(&h, &first.1, &serial, None).await, Ocsp::Revoked);
}

#[tokio::test]
async fn finding_7_ocsp_never_answers_good_when_the_matching_issuer_cannot_sign_or_is_unknown() {
    let h = Harness::new("pki/");
    let (first, second, _) = reissued_root(&h).await;
    role(&h, "r", json!({})).await;
    // Issued and revoked under the first issuer (by id), which then loses ocsp-signing: the
    // old responder skipped it, answered with the second issuer, did not find the revocation
    // recorded against that one, and said `good`.
    let leaf = h
        .write(
            &format!("issuer/{}/issue/r", first.0),
            json!({"common_name": "revoked.example.com"}),
        )
        .await;
    let serial = leaf["serial_number"].as_str().unwrap().to_owned();
    let good = h
        .write(
            &format!("issuer/{}/issue/r", first.0),
            json!({"common_name": "good.example.com"}),
        )
        .await;
    let good_serial = good["serial_number"].as_str().unwrap().to_owned();
    h.write("revoke", json!({"serial_number": serial})).await;
    h.write(
        &format!("issuer/{}", first.0),
        json!({"usage": ["read-only", "issuing-certificates", "crl-signing"]}),
    )
    .await;
    assert_eq!(
        ocsp(&h, &first.1, &serial, Some(&second.1)).await,
        Ocsp::Revoked
    );
    assert_eq!(
        ocsp(&h, &first.1, &good_serial, Some(&second.1)).await,
        Ocsp::Good
    );
    // With no issuer of that subject and key allowed to sign OCSP, the responder cannot
    // answer: unauthorized (6), as Vault does, never `good`.
    h.write(
        &format!("issuer/{}", second.0),
        json!({"usage": ["read-only", "issuing-certificates", "crl-signing"]}),
    )
    .await;
    assert_eq!(ocsp(&h, &first.1, &serial, None).await, Ocsp::Status(6));
    assert_eq!(
        ocsp(&h, &first.1, &good_serial, None).await,
        Ocsp::Status(6)
    );

    // A request naming an issuer this mount does not have: `unknown` (signed by the
    // default issuer), never `good` -- even for a serial this mount did issue.
    let h = Harness::new("pki/");
    let root = h.root("ec", 256).await;
    let root_pem = root["certificate"].as_str().unwrap();
    role(&h, "r", json!({})).await;
    let mine = h.write("issue/r", json!({"common_name": "mine"})).await;
    let other = h.sibling("other/");
    let other_root = other.root("ec", 256).await;
    let other_pem = other_root["certificate"].as_str().unwrap();
    assert_eq!(
        ocsp(
            &h,
            other_pem,
            mine["serial_number"].as_str().unwrap(),
            Some(root_pem)
        )
        .await,
        Ocsp::Unknown
    );
    assert_eq!(
        ocsp(&h, root_pem, mine["serial_number"].as_str().unwrap(), None).await,
        Ocsp::Good
    );
}

#[tokio::test]
async fn finding_7_revoking_an_issuer_puts_it_on_its_signers_shared_crl() {
    // An intermediate signed by a reissued root: its revocation lands on the CRL every copy
    // of the root serves.
    let h = Harness::new("pki/");
    let (first, second, _) = reissued_root(&h).await;
    let csr = h
        .write(
            "intermediate/generate/internal",
            json!({"common_name": "Int", "key_type": "ec"}),
        )
        .await;
    let signed = h
        .write(
            &format!("issuer/{}/sign-intermediate", second.0),
            json!({"csr": csr["csr"], "common_name": "Int", "ttl": "100h"}),
        )
        .await;
    let set = h
        .write(
            "intermediate/set-signed",
            json!({"certificate": signed["certificate"]}),
        )
        .await;
    let int_id = set["imported_issuers"][0].as_str().unwrap().to_owned();
    h.write(&format!("issuer/{int_id}/revoke"), Value::Null)
        .await;
    let serial = signed["serial_number"].as_str().unwrap().to_owned();
    for id in [&first.0, &second.0] {
        let serials = crl_serials(&crl_at(&h, &format!("issuer/{id}/crl/der")).await, &first.1);
        assert!(serials.contains(&serial), "{id}: {serials:?}");
    }
    assert_eq!(ocsp(&h, &second.1, &serial, None).await, Ocsp::Revoked);
}

#[tokio::test]
async fn finding_7_revocations_kept_per_issuer_by_an_older_mount_stay_on_the_shared_crl() {
    // Before CRLs were shared, the index, state and CRLs were keyed by issuer id. Rewrite a
    // mount into that layout and check that the revocation survives, numbering continues,
    // and the old records are folded away.
    let h = Harness::new("pki/");
    let (first, second, _) = reissued_root(&h).await;
    role(&h, "r", json!({})).await;
    let leaf = h
        .write(
            &format!("issuer/{}/issue/r", second.0),
            json!({"common_name": "old.example.com"}),
        )
        .await;
    let serial = leaf["serial_number"].as_str().unwrap().to_owned();
    h.write("revoke", json!({"serial_number": serial})).await;
    let number_before = {
        let der = crl_at(&h, "crl").await;
        let (_, crl) = x509_parser::parse_x509_crl(&der).unwrap();
        crl.crl_number().unwrap().clone()
    };
    {
        let mut map = h.storage.map.lock();
        let crl_ids: Vec<String> = map
            .keys()
            .filter_map(|k| k.strip_prefix("crl-state/"))
            .map(str::to_owned)
            .collect();
        assert_eq!(crl_ids.len(), 1, "one CRL for both issuers: {crl_ids:?}");
        let crl_id = &crl_ids[0];
        let moved: Vec<(String, Vec<u8>)> = map
            .iter()
            .filter(|(k, _)| k.contains(crl_id.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        for (k, v) in moved {
            map.remove(&k);
            if !k.starts_with("crls/") {
                // The old code recorded it against the first issuer by id.
                map.insert(k.replace(crl_id.as_str(), &first.0), v);
            }
        }
        let key = format!("revoked/{}", serial.replace(':', "-"));
        let mut entry: Value = serde_json::from_slice(&map[&key]).unwrap();
        entry.as_object_mut().unwrap().remove("crl_id");
        entry["issuer_id"] = json!(first.0);
        map.insert(key, serde_json::to_vec(&entry).unwrap());
    }
    for id in [&second.0, &first.0] {
        let der = crl_at(&h, &format!("issuer/{id}/crl/der")).await;
        let serials = crl_serials(&der, &second.1);
        assert!(serials.contains(&serial), "{id}: {serials:?}");
        let (_, crl) = x509_parser::parse_x509_crl(&der).unwrap();
        assert!(crl.crl_number().unwrap() > &number_before);
    }
    assert_eq!(ocsp(&h, &second.1, &serial, None).await, Ocsp::Revoked);
    assert!(
        h.storage
            .keys_under("crl-")
            .iter()
            .all(|k| !k.contains(first.0.as_str())),
        "{:?}",
        h.storage.keys_under("crl-")
    );
}

// ---------------------------------------------------------------------------------------------
// Finding 9: issuer_ref in the body of issue/sign/sign-verbatim is ignored.

#[tokio::test]
async fn finding_9_issuer_ref_in_the_body_does_not_choose_the_issuer() {
    let h = Harness::new("pki/");
    let default = h.root("ec", 256).await;
    let default_pem = default["certificate"].as_str().unwrap().to_owned();
    let other = h
        .write(
            "issuers/generate/root/internal",
            json!({"common_name": "Other Root", "key_type": "ec", "issuer_name": "other", "ttl": "87600h"}),
        )
        .await;
    let other_id = other["issuer_id"].as_str().unwrap().to_owned();
    let other_pem = other["certificate"].as_str().unwrap().to_owned();
    assert_eq!(
        h.read("config/issuers").await["default"],
        default["issuer_id"]
    );
    role(&h, "r", json!({})).await;
    let csr_pem = {
        let key = tresor_pki::keys::PrivateKey::generate(
            tresor_pki::keys::KeySpec::resolve("ec", 256).unwrap(),
        )
        .unwrap();
        let name = tresor_pki::x509::Subject {
            common_name: "leaf.example.com".into(),
            ..Default::default()
        }
        .to_name()
        .unwrap();
        let der = tresor_pki::x509::build_csr(&name, &Default::default(), &key, false).unwrap();
        tresor_pki::pem::encode("CERTIFICATE REQUEST", &der)
    };
    let signed_by = |cert: &str, issuer: &str| {
        let c = pem_der(cert);
        let i = pem_der(issuer);
        tresor_pki::x509::signed_by(&c, &i)
    };
    for (path, body) in [
        (
            "issue/r",
            json!({"common_name": "leaf.example.com", "issuer_ref": other_id}),
        ),
        (
            "issue/r",
            json!({"common_name": "leaf.example.com", "issuer_ref": "other"}),
        ),
        (
            "sign/r",
            json!({"csr": csr_pem, "common_name": "leaf.example.com", "issuer_ref": other_id}),
        ),
        (
            "sign-verbatim/r",
            json!({"csr": csr_pem, "issuer_ref": other_id}),
        ),
        (
            "sign-verbatim",
            json!({"csr": csr_pem, "issuer_ref": other_id}),
        ),
    ] {
        let resp = h.resp(Operation::Update, path, body).await;
        let data = resp.data.unwrap();
        let cert = data["certificate"].as_str().unwrap();
        assert!(
            signed_by(cert, &default_pem),
            "{path}: not signed by the default"
        );
        assert!(
            !signed_by(cert, &other_pem),
            "{path}: signed by the body's issuer"
        );
        assert_eq!(data["issuing_ca"].as_str().unwrap(), default_pem, "{path}");
        // As Vault: the parameter is not part of the endpoint, and the caller is told.
        assert!(
            resp.warnings
                .iter()
                .any(|w| w.contains("ignored") && w.contains("issuer_ref")),
            "{path}: {:?}",
            resp.warnings
        );
    }
    // The role's issuer_ref is what chooses, on the role paths...
    role(&h, "pinned", json!({"issuer_ref": "other"})).await;
    let pinned = h
        .write(
            "issue/pinned",
            json!({"common_name": "leaf.example.com", "issuer_ref": "default"}),
        )
        .await;
    assert!(signed_by(
        pinned["certificate"].as_str().unwrap(),
        &other_pem
    ));
    // ...and the URL on the issuer/:ref paths (which ACLs can name).
    for path in [
        format!("issuer/{other_id}/issue/r"),
        "issuer/other/issue/r".to_owned(),
    ] {
        let c = h
            .write(
                &path,
                json!({"common_name": "leaf.example.com", "issuer_ref": "default"}),
            )
            .await;
        assert!(
            signed_by(c["certificate"].as_str().unwrap(), &other_pem),
            "{path}"
        );
    }
    let c = h
        .write(
            &format!("issuer/{other_id}/sign/r"),
            json!({"csr": csr_pem, "common_name": "leaf.example.com"}),
        )
        .await;
    assert!(signed_by(c["certificate"].as_str().unwrap(), &other_pem));
    let c = h
        .write(
            &format!("issuer/{other_id}/sign-verbatim"),
            json!({"csr": csr_pem}),
        )
        .await;
    assert!(signed_by(c["certificate"].as_str().unwrap(), &other_pem));
}

#[tokio::test]
async fn finding_9_root_sign_paths_sign_with_the_default_issuer_whatever_the_body_says() {
    // root/sign-intermediate and root/sign-self-issued sign with the default issuer (Vault:
    // the parameter is not present there); only issuer/:ref/... picks another.
    let h = Harness::new("pki/");
    let default = h.root("ec", 256).await;
    let default_pem = default["certificate"].as_str().unwrap().to_owned();
    let other = h
        .write(
            "issuers/generate/root/internal",
            json!({"common_name": "Other Root", "key_type": "ec", "issuer_name": "other", "ttl": "87600h"}),
        )
        .await;
    let other_pem = other["certificate"].as_str().unwrap().to_owned();
    let signed_by =
        |cert: &str, issuer: &str| tresor_pki::x509::signed_by(&pem_der(cert), &pem_der(issuer));
    let csr = h
        .write(
            "intermediate/generate/internal",
            json!({"common_name": "Int", "key_type": "ec"}),
        )
        .await["csr"]
        .clone();
    let resp = h
        .resp(
            Operation::Update,
            "root/sign-intermediate",
            json!({"csr": csr, "common_name": "Int", "ttl": "1h", "issuer_ref": "other"}),
        )
        .await;
    let cert = resp.data.as_ref().unwrap()["certificate"].as_str().unwrap();
    assert!(signed_by(cert, &default_pem));
    assert!(!signed_by(cert, &other_pem));
    assert!(
        resp.warnings.iter().any(|w| w.contains("issuer_ref")),
        "{:?}",
        resp.warnings
    );
    let c = h
        .write(
            "issuer/other/sign-intermediate",
            json!({"csr": csr, "common_name": "Int", "ttl": "1h", "issuer_ref": "default"}),
        )
        .await;
    assert!(signed_by(c["certificate"].as_str().unwrap(), &other_pem));

    let elsewhere = h.sibling("elsewhere/");
    let self_issued = elsewhere.root("ec", 256).await["certificate"].clone();
    let resp = h
        .resp(
            Operation::Update,
            "root/sign-self-issued",
            json!({"certificate": self_issued, "issuer_ref": "other"}),
        )
        .await;
    let cert = resp.data.as_ref().unwrap()["certificate"].as_str().unwrap();
    assert!(signed_by(cert, &default_pem));
    assert!(!signed_by(cert, &other_pem));
    let c = h
        .write(
            "issuer/other/sign-self-issued",
            json!({"certificate": self_issued}),
        )
        .await;
    assert!(signed_by(c["certificate"].as_str().unwrap(), &other_pem));
}

// ---------------------------------------------------------------------------------------------
// Finding 13: atomic revocation, and a retry that repairs.

/// A storage view over the harness's storage that fails writes to keys under a prefix, like
/// a crash between two writes. Its transaction is atomic, as the barrier view's is: it fails
/// whole or applies whole.
struct Crashing {
    inner: Arc<MemStorage>,
    fail_prefix: parking_lot::Mutex<Option<String>>,
}

impl Crashing {
    fn fails(&self, key: &str) -> bool {
        self.fail_prefix
            .lock()
            .as_deref()
            .is_some_and(|p| key.starts_with(p))
    }
}

#[async_trait]
impl Storage for Crashing {
    async fn get(&self, key: &str) -> tresor_sdk::Result<Option<Vec<u8>>> {
        self.inner.get(key).await
    }
    async fn put(&self, key: &str, value: Vec<u8>) -> tresor_sdk::Result<()> {
        if self.fails(key) {
            return Err(LogicalError::Internal(format!("crash writing {key}")));
        }
        self.inner.put(key, value).await
    }
    async fn delete(&self, key: &str) -> tresor_sdk::Result<()> {
        if self.fails(key) {
            return Err(LogicalError::Internal(format!("crash deleting {key}")));
        }
        self.inner.delete(key).await
    }
    async fn list(&self, prefix: &str) -> tresor_sdk::Result<Vec<String>> {
        self.inner.list(prefix).await
    }
    async fn transaction(&self, ops: Vec<(String, Option<Vec<u8>>)>) -> tresor_sdk::Result<()> {
        if let Some((k, _)) = ops.iter().find(|(k, _)| self.fails(k)) {
            return Err(LogicalError::Internal(format!("crash committing {k}")));
        }
        for (k, v) in ops {
            match v {
                Some(v) => self.inner.put(&k, v).await?,
                None => self.inner.delete(&k).await?,
            }
        }
        Ok(())
    }
}

fn request_on(h: &Harness, s: Arc<dyn Storage>, op: Operation, path: &str, data: Value) -> Request {
    let data = match data {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    Request {
        operation: op,
        path: path.to_owned(),
        data,
        storage: s,
        mount: h.mount.clone(),
        caller: Caller::default(),
        secret: None,
        connection: Default::default(),
        headers: Vec::new(),
        raw_body: None,
        deadline: None,
    }
}

#[tokio::test]
async fn finding_13_a_crash_inside_a_revocation_leaves_nothing_half_written_and_a_retry_lists_it() {
    let h = Harness::new("pki/");
    let root = h.root("ec", 256).await;
    let root_pem = root["certificate"].as_str().unwrap().to_owned();
    role(&h, "r", json!({})).await;
    let leaf = h.write("issue/r", json!({"common_name": "a"})).await;
    let serial = leaf["serial_number"].as_str().unwrap().to_owned();
    let key = format!("revoked/{}", serial.replace(':', "-"));
    // A CRL exists before the revocation.
    assert!(crl_serials(&crl_at(&h, "crl").await, &root_pem).is_empty());

    let crashing = Arc::new(Crashing {
        inner: h.storage.clone(),
        fail_prefix: parking_lot::Mutex::new(Some("crl-index/".into())),
    });
    let r = h
        .pki
        .handle(request_on(
            &h,
            crashing.clone(),
            Operation::Update,
            "revoke",
            json!({"serial_number": serial}),
        ))
        .await;
    assert!(r.is_err(), "the crash surfaces: {r:?}");
    // Nothing half-written: not revoked for cert/ and OCSP while missing from the CRL.
    assert!(
        h.storage.map.lock().get(&key).is_none(),
        "revoked/<serial> was committed without the CRL index"
    );
    assert_eq!(
        h.read(&format!("cert/{serial}")).await["revocation_time"],
        0
    );

    // The retry (storage healthy again) revokes it and lists it on the next CRL.
    *crashing.fail_prefix.lock() = None;
    h.write("revoke", json!({"serial_number": serial})).await;
    let serials = crl_serials(&crl_at(&h, "crl").await, &root_pem);
    assert_eq!(serials, std::slice::from_ref(&serial));
    assert_eq!(ocsp(&h, &root_pem, &serial, None).await, Ocsp::Revoked);

    // A crash after the revocation was recorded but before the CRL was re-signed: the
    // served CRL is rebuilt rather than left stale.
    let later = h.write("issue/r", json!({"common_name": "b"})).await;
    let later_serial = later["serial_number"].as_str().unwrap().to_owned();
    *crashing.fail_prefix.lock() = Some("crls/".into());
    let r = h
        .pki
        .handle(request_on(
            &h,
            crashing.clone(),
            Operation::Update,
            "revoke",
            json!({"serial_number": later_serial}),
        ))
        .await;
    assert!(r.is_err(), "{r:?}");
    *crashing.fail_prefix.lock() = None;
    let serials = crl_serials(&crl_at(&h, "crl").await, &root_pem);
    assert!(serials.contains(&later_serial), "{serials:?}");
}

#[tokio::test]
async fn finding_13_a_retry_repairs_a_revocation_missing_from_the_crl_index() {
    // The half state the old code could leave behind: revoked/<serial> committed, the index
    // and the CRL never written. A retried revoke used to short-circuit on the entry.
    let h = Harness::new("pki/");
    let root = h.root("ec", 256).await;
    let root_pem = root["certificate"].as_str().unwrap().to_owned();
    let root_id = root["issuer_id"].as_str().unwrap().to_owned();
    role(&h, "r", json!({})).await;
    let mut serials = vec![];
    for cn in ["a", "b"] {
        let leaf = h.write("issue/r", json!({"common_name": cn})).await;
        serials.push(leaf);
    }
    let not_after = |v: &Value| v["expiration"].as_i64().unwrap();
    for leaf in &serials {
        let serial = leaf["serial_number"].as_str().unwrap();
        let entry = json!({
            "v": 1,
            "serial": serial,
            "revocation_time": h.clock.unix(),
            "issuer_id": root_id,
            "not_after": not_after(leaf),
        });
        h.storage.map.lock().insert(
            format!("revoked/{}", serial.replace(':', "-")),
            serde_json::to_vec(&entry).unwrap(),
        );
    }
    let a = serials[0]["serial_number"].as_str().unwrap().to_owned();
    let b = serials[1]["serial_number"].as_str().unwrap().to_owned();
    assert!(
        h.read(&format!("cert/{a}")).await["revocation_time"]
            .as_i64()
            .unwrap()
            > 0
    );
    assert!(crl_serials(&crl_at(&h, "crl").await, &root_pem).is_empty());

    // Retrying the revocation repairs the index and the CRL, keeping the first time.
    let again = h.write("revoke", json!({"serial_number": a})).await;
    assert_eq!(again["revocation_time"], h.clock.unix());
    assert_eq!(
        crl_serials(&crl_at(&h, "crl").await, &root_pem),
        std::slice::from_ref(&a)
    );
    // Revoking again does not list it twice.
    h.write("revoke", json!({"serial_number": a})).await;
    assert_eq!(
        crl_serials(&crl_at(&h, "crl").await, &root_pem),
        std::slice::from_ref(&a)
    );

    // tidy with tidy_revoked_cert_issuer_associations repairs the rest without a retry.
    h.write(
        "tidy",
        json!({"tidy_revoked_cert_issuer_associations": true}),
    )
    .await;
    for _ in 0..200 {
        if h.read("tidy-status").await["state"] != "Running" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(h.read("tidy-status").await["state"], "Finished");
    let mut on_crl = crl_serials(&crl_at(&h, "crl").await, &root_pem);
    on_crl.sort();
    let mut want = vec![a, b];
    want.sort();
    assert_eq!(on_crl, want);
}
