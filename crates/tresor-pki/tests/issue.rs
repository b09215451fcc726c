//! CA setup and issuance driven in-process: root generation, config/urls, roles and their
//! name rules, issue/:role with Vault's response shape and TTL clamping, the fetch endpoints,
//! LIST certs with paging, and the chain checked by the real `openssl verify`.

mod common;

use std::time::Duration;

use common::{Harness, keys_of, openssl, openssl_verify, pem_der, tmp, write_file};
use serde_json::{Value, json};
use tresor_sdk::Operation;
use x509_parser::prelude::*;

fn parse(pem: &str) -> (Vec<u8>, ()) {
    (pem_der(pem), ())
}

#[tokio::test]
async fn root_generation_answers_vaults_fields_and_is_fetchable() {
    let h = Harness::new("pki/");
    let root = h.root("ec", 384).await;
    assert_eq!(
        keys_of(&root),
        [
            "certificate",
            "expiration",
            "issuer_id",
            "issuer_name",
            "issuing_ca",
            "key_id",
            "key_name",
            "serial_number"
        ]
    );
    let serial = root["serial_number"].as_str().unwrap();
    assert!(serial.split(':').all(|b| {
        b.len() == 2
            && b.chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
    }));
    let (der, _) = parse(root["certificate"].as_str().unwrap());
    let (_, cert) = X509Certificate::from_der(&der).unwrap();
    assert!(cert.is_ca());
    assert_eq!(
        cert.subject()
            .iter_common_name()
            .next()
            .unwrap()
            .as_str()
            .unwrap(),
        "Tresor Test Root"
    );
    assert_eq!(
        cert.validity().not_after.timestamp(),
        root["expiration"].as_i64().unwrap()
    );
    let ku = cert.key_usage().unwrap().unwrap().value;
    assert!(ku.key_cert_sign() && ku.crl_sign());
    // The root's TTL was capped by the mount's max lease TTL (768h), not 87600h.
    assert_eq!(
        root["expiration"].as_i64().unwrap() - h.clock.unix(),
        768 * 3600
    );

    // Fetch endpoints.
    let (ct, body) = h.raw(Operation::Read, "ca", Value::Null).await;
    assert_eq!(ct, "application/pkix-cert");
    assert_eq!(body, der);
    let (ct, body) = h.raw(Operation::Read, "ca/pem", Value::Null).await;
    assert_eq!(ct, "application/pem-certificate-chain");
    assert_eq!(
        String::from_utf8(body).unwrap().trim(),
        root["certificate"].as_str().unwrap()
    );
    let (_, chain) = h.raw(Operation::Read, "ca_chain", Value::Null).await;
    assert!(
        String::from_utf8(chain)
            .unwrap()
            .contains(root["certificate"].as_str().unwrap())
    );
    let by_serial = h.read(&format!("cert/{serial}")).await;
    assert_eq!(by_serial["certificate"], root["certificate"]);
    assert_eq!(by_serial["revocation_time"], 0);
    let dashed = serial.replace(':', "-");
    assert_eq!(
        h.read(&format!("cert/{dashed}")).await["certificate"],
        root["certificate"]
    );
    let (_, raw) = h
        .raw(Operation::Read, &format!("cert/{serial}/raw"), Value::Null)
        .await;
    assert_eq!(raw, der);
    assert_eq!(h.read("cert/ca").await["certificate"], root["certificate"]);
    let (ct, raw) = h.raw(Operation::Read, "cert/ca/raw", Value::Null).await;
    assert_eq!((ct.as_str(), raw), ("application/pkix-cert", der.clone()));
    let (_, raw) = h.raw(Operation::Read, "cert/ca/raw/pem", Value::Null).await;
    assert_eq!(
        String::from_utf8(raw).unwrap().trim(),
        root["certificate"].as_str().unwrap()
    );
    // openssl reads it as a self-signed CA.
    let (ok, out) = openssl_verify(
        root["certificate"].as_str().unwrap(),
        &[],
        root["certificate"].as_str().unwrap(),
        None,
    );
    assert!(ok, "{out}");
}

#[tokio::test]
async fn fetch_paths_are_unauthenticated_as_in_vault() {
    let h = Harness::new("pki/");
    let special = h.pki.special_paths();
    for p in [
        "ca",
        "ca/pem",
        "ca_chain",
        "cert/1a-2b",
        "cert/ca_chain",
        "crl",
        "crl/pem",
        "ocsp",
        "ocsp/MEow",
        "issuers/",
    ] {
        assert!(
            tresor_sdk::path_matches_special(&special.unauthenticated, p),
            "{p}"
        );
    }
    for p in [
        "issue/web",
        "roles/web",
        "certs/",
        "revoke",
        "root/generate/internal",
        "config/ca",
        "issuer/default",
    ] {
        assert!(
            !tresor_sdk::path_matches_special(&special.unauthenticated, p),
            "{p}"
        );
    }
    assert!(tresor_sdk::path_matches_special(&special.root, "root"));
}

async fn member_role(h: &Harness) {
    h.write(
        "roles/member",
        json!({
            "allowed_domains": "example.internal",
            "allow_subdomains": true,
            "key_type": "ec",
            "key_bits": 256,
            "max_ttl": "72h",
        }),
    )
    .await;
}

#[tokio::test]
async fn story_1_issue_with_cn_and_ip_san_on_a_nested_mount_verifies_with_openssl() {
    let h = Harness::new("etcd/c1/pki/");
    let root = h.root("ec", 256).await;
    h.write(
        "config/urls",
        json!({
            "issuing_certificates": "http://127.0.0.1:8200/v1/etcd/c1/pki/ca",
            "crl_distribution_points": "http://127.0.0.1:8200/v1/etcd/c1/pki/crl",
            "ocsp_servers": "http://127.0.0.1:8200/v1/etcd/c1/pki/ocsp",
        }),
    )
    .await;
    member_role(&h).await;
    let r = h
        .write(
            "issue/member",
            json!({"common_name": "etcd-1.example.internal", "ip_sans": "10.0.0.5"}),
        )
        .await;
    assert_eq!(
        keys_of(&r),
        [
            "ca_chain",
            "certificate",
            "expiration",
            "issuing_ca",
            "private_key",
            "private_key_type",
            "serial_number"
        ]
    );
    assert_eq!(r["private_key_type"], "ec");
    assert!(
        r["private_key"]
            .as_str()
            .unwrap()
            .starts_with("-----BEGIN EC PRIVATE KEY-----")
    );
    assert_eq!(r["issuing_ca"], root["certificate"]);
    assert_eq!(r["ca_chain"], json!([root["certificate"]]));
    // Default TTL: the mount's 768h, clamped by the role's 72h max.
    let exp = r["expiration"].as_i64().unwrap();
    assert_eq!(exp - h.clock.unix(), 72 * 3600);

    let der = pem_der(r["certificate"].as_str().unwrap());
    let (_, cert) = X509Certificate::from_der(&der).unwrap();
    assert_eq!(
        cert.subject()
            .iter_common_name()
            .next()
            .unwrap()
            .as_str()
            .unwrap(),
        "etcd-1.example.internal"
    );
    let san = cert.subject_alternative_name().unwrap().unwrap().value;
    let dns: Vec<String> = san
        .general_names
        .iter()
        .filter_map(|g| match g {
            GeneralName::DNSName(d) => Some(d.to_string()),
            _ => None,
        })
        .collect();
    let ips: Vec<Vec<u8>> = san
        .general_names
        .iter()
        .filter_map(|g| match g {
            GeneralName::IPAddress(i) => Some(i.to_vec()),
            _ => None,
        })
        .collect();
    assert_eq!(dns, ["etcd-1.example.internal"]);
    assert_eq!(ips, [vec![10, 0, 0, 5]]);
    let eku = cert.extended_key_usage().unwrap().unwrap().value;
    assert!(eku.server_auth && eku.client_auth && !eku.code_signing);
    let ku = cert.key_usage().unwrap().unwrap().value;
    assert!(
        ku.digital_signature()
            && ku.key_agreement()
            && ku.key_encipherment()
            && !ku.key_cert_sign()
    );
    assert!(!cert.is_ca());
    assert_eq!(cert.validity().not_after.timestamp(), exp);
    assert_eq!(cert.validity().not_before.timestamp(), h.clock.unix() - 30);
    assert_eq!(
        cert.raw_serial_as_string(),
        r["serial_number"].as_str().unwrap()
    );
    // EC 256 is NIST P-256.
    let spki = cert.public_key();
    assert_eq!(
        spki.algorithm
            .parameters
            .as_ref()
            .unwrap()
            .as_oid()
            .unwrap()
            .to_id_string(),
        "1.2.840.10045.3.1.7"
    );
    // AIA and CRL distribution point from config/urls.
    let text = openssl_text(r["certificate"].as_str().unwrap());
    assert!(
        text.contains("CA Issuers - URI:http://127.0.0.1:8200/v1/etcd/c1/pki/ca"),
        "{text}"
    );
    assert!(
        text.contains("OCSP - URI:http://127.0.0.1:8200/v1/etcd/c1/pki/ocsp"),
        "{text}"
    );
    assert!(
        text.contains("URI:http://127.0.0.1:8200/v1/etcd/c1/pki/crl"),
        "{text}"
    );

    let (ok, out) = openssl_verify(
        root["certificate"].as_str().unwrap(),
        &[],
        r["certificate"].as_str().unwrap(),
        Some("sslserver"),
    );
    assert!(ok, "{out}");
    let (ok, out) = openssl_verify(
        root["certificate"].as_str().unwrap(),
        &[],
        r["certificate"].as_str().unwrap(),
        Some("sslclient"),
    );
    assert!(ok, "{out}");
    // The private key matches the certificate.
    let d = tmp();
    let k = write_file(d.path(), "k.pem", r["private_key"].as_str().unwrap());
    let c = write_file(d.path(), "c.pem", r["certificate"].as_str().unwrap());
    let (_, kpub) = openssl(&["pkey", "-in", k.to_str().unwrap(), "-pubout"]);
    let (_, cpub) = openssl(&["x509", "-in", c.to_str().unwrap(), "-noout", "-pubkey"]);
    assert_eq!(kpub, cpub);
    // The certificate is stored and listed.
    let list = h.ok(Operation::List, "certs/", Value::Null).await;
    assert!(
        list["keys"]
            .as_array()
            .unwrap()
            .contains(&r["serial_number"])
    );
}

fn openssl_text(pem: &str) -> String {
    let d = tmp();
    let c = write_file(d.path(), "c.pem", pem);
    openssl(&["x509", "-in", c.to_str().unwrap(), "-noout", "-text"]).1
}

#[tokio::test]
async fn a_role_for_example_com_never_issues_for_evil_com() {
    let h = Harness::new("pki/");
    h.root("ec", 256).await;
    h.write(
        "roles/web",
        json!({
            "allowed_domains": ["example.com"],
            "allow_subdomains": true,
            "allow_bare_domains": true,
            "key_type": "ec",
        }),
    )
    .await;
    for req in [
        json!({"common_name": "evil.com"}),
        json!({"common_name": "evilexample.com"}),
        json!({"common_name": "example.com.evil.com"}),
        json!({"common_name": "www.example.com", "alt_names": "evil.com"}),
        json!({"common_name": "www.example.com", "alt_names": "user@evil.com"}),
        json!({"common_name": "*.evil.com"}),
        json!({"common_name": "www.example.com", "alt_names": "*.com"}),
        json!({"common_name": "localhost.evil.com"}),
    ] {
        let err = h.invalid(Operation::Update, "issue/web", req.clone()).await;
        assert!(
            err.contains("not allowed by this role") || err.contains("not a valid"),
            "{req}: {err}"
        );
    }
    // The error names the offending name, as Vault does.
    assert_eq!(
        h.invalid(
            Operation::Update,
            "issue/web",
            json!({"common_name": "evil.com"})
        )
        .await,
        "common name evil.com not allowed by this role"
    );
    for cn in [
        "example.com",
        "www.example.com",
        "*.example.com",
        "a.b.example.com",
    ] {
        let r = h.write("issue/web", json!({"common_name": cn})).await;
        assert!(
            r["certificate"]
                .as_str()
                .unwrap()
                .starts_with("-----BEGIN CERTIFICATE-----"),
            "{cn}"
        );
    }
    // Nothing at all was issued for the refused names.
    let listed = h.ok(Operation::List, "certs/", Value::Null).await["keys"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(listed, 1 + 4); // the root and the four good certificates
}

#[tokio::test]
async fn role_flags_are_enforced_strictly() {
    let h = Harness::new("pki/");
    h.root("ec", 256).await;
    h.write(
        "roles/strict",
        json!({
            "allowed_domains": "example.com", "allow_subdomains": true, "allow_ip_sans": false,
            "allow_localhost": false, "allow_wildcard_certificates": false, "key_type": "ec",
        }),
    )
    .await;
    let e = h
        .invalid(
            Operation::Update,
            "issue/strict",
            json!({"common_name": "a.example.com", "ip_sans": "10.1.1.1"}),
        )
        .await;
    assert!(
        e.contains("IP Subject Alternative Names are not allowed"),
        "{e}"
    );
    h.invalid(
        Operation::Update,
        "issue/strict",
        json!({"common_name": "localhost"}),
    )
    .await;
    h.invalid(
        Operation::Update,
        "issue/strict",
        json!({"common_name": "*.example.com"}),
    )
    .await;
    h.invalid(
        Operation::Update,
        "issue/strict",
        json!({"common_name": "a.example.com", "uri_sans": "spiffe://x/y"}),
    )
    .await;
    h.invalid(
        Operation::Update,
        "issue/strict",
        json!({"common_name": "a.example.com", "other_sans": "1.2.3.4;UTF8:x"}),
    )
    .await;
    h.invalid(
        Operation::Update,
        "issue/strict",
        json!({"common_name": "a.example.com", "serial_number": "123"}),
    )
    .await;
    h.invalid(Operation::Update, "issue/strict", json!({}))
        .await; // require_cn
    h.invalid(
        Operation::Update,
        "issue/strict",
        json!({"common_name": "bad_host.example.com"}),
    )
    .await;

    // Globs, URI SANs, other SANs, any name, localhost, require_cn off.
    h.write("roles/open", json!({
        "allowed_domains": ["*.svc.example.com"], "allow_glob_domains": true,
        "allowed_uri_sans": ["spiffe://cluster/*"], "allowed_other_sans": ["1.3.6.1.4.1.311.20.2.3;UTF8:*@example.com"],
        "allowed_serial_numbers": ["node-*"], "key_type": "ed25519", "require_cn": false,
    })).await;
    let r = h.write("issue/open", json!({
        "common_name": "api.svc.example.com", "uri_sans": "spiffe://cluster/ns/a",
        "other_sans": "1.3.6.1.4.1.311.20.2.3;UTF8:ops@example.com", "serial_number": "node-7",
    })).await;
    assert_eq!(r["private_key_type"], "ed25519");
    let text = openssl_text(r["certificate"].as_str().unwrap());
    assert!(text.contains("URI:spiffe://cluster/ns/a"), "{text}");
    assert!(
        text.contains("serialNumber=node-7") || text.contains("serialNumber = node-7"),
        "{text}"
    );
    assert!(text.contains("ED25519"), "{text}");
    h.invalid(
        Operation::Update,
        "issue/open",
        json!({"common_name": "api.svc.example.com", "uri_sans": "spiffe://other/x"}),
    )
    .await;
    h.invalid(Operation::Update, "issue/open", json!({"common_name": "api.svc.example.com", "other_sans": "1.3.6.1.4.1.311.20.2.3;UTF8:ops@evil.com"})).await;
    h.invalid(
        Operation::Update,
        "issue/open",
        json!({"common_name": "api.svc.example.com", "serial_number": "web-1"}),
    )
    .await;
    h.invalid(
        Operation::Update,
        "issue/open",
        json!({"common_name": "api.other.example.com"}),
    )
    .await;
    // No CN at all is fine without require_cn, with a SAN only.
    let r = h
        .write("issue/open", json!({"alt_names": "x.svc.example.com"}))
        .await;
    let der = pem_der(r["certificate"].as_str().unwrap());
    let (_, c) = X509Certificate::from_der(&der).unwrap();
    assert_eq!(c.subject().iter_common_name().count(), 0);

    h.write("roles/any", json!({"allow_any_name": true, "key_type": "rsa", "key_bits": 3072, "enforce_hostnames": false, "client_flag": false, "ou": ["a", "b"], "organization": "Tresor"})).await;
    let r = h
        .write("issue/any", json!({"common_name": "Any Name At All"}))
        .await;
    let der = pem_der(r["certificate"].as_str().unwrap());
    let (_, c) = X509Certificate::from_der(&der).unwrap();
    assert_eq!(c.public_key().parsed().unwrap().key_size(), 3072);
    let ous: Vec<&str> = c
        .subject()
        .iter_organizational_unit()
        .map(|x| x.as_str().unwrap())
        .collect();
    assert_eq!(ous, ["a", "b"]);
    let eku = c.extended_key_usage().unwrap().unwrap().value;
    assert!(eku.server_auth && !eku.client_auth);
    assert_eq!(r["private_key_type"], "rsa");
    assert!(
        r["private_key"]
            .as_str()
            .unwrap()
            .starts_with("-----BEGIN RSA PRIVATE KEY-----")
    );

    // localhost is allowed by default.
    h.write("roles/local", json!({"key_type": "ec"})).await;
    h.write("issue/local", json!({"common_name": "localhost"}))
        .await;
    h.invalid(
        Operation::Update,
        "issue/local",
        json!({"common_name": "example.com"}),
    )
    .await;
    // Unknown roles are refused.
    assert!(
        h.invalid(Operation::Update, "issue/nope", json!({"common_name": "x"}))
            .await
            .contains("unknown role")
    );
}

#[tokio::test]
async fn roles_read_back_with_vault_defaults_and_patch_changes_only_what_is_sent() {
    let h = Harness::new("pki/");
    let w = h
        .write(
            "roles/web",
            json!({"allowed_domains": "example.com", "ttl": "1h", "max_ttl": "2h"}),
        )
        .await;
    assert_eq!(w["ttl"], 3600);
    let r = h.read("roles/web").await;
    assert_eq!(r["allowed_domains"], json!(["example.com"]));
    assert_eq!(r["key_type"], "rsa");
    assert_eq!(r["key_bits"], 2048);
    assert_eq!(r["signature_bits"], 256);
    assert_eq!(r["max_ttl"], 7200);
    assert_eq!(r["allow_localhost"], true);
    assert_eq!(r["not_before_duration"], 30);
    assert_eq!(r["issuer_ref"], "default");
    h.ok(
        Operation::Patch,
        "roles/web",
        json!({"allow_subdomains": true}),
    )
    .await;
    let r = h.read("roles/web").await;
    assert_eq!(r["allow_subdomains"], true);
    assert_eq!(r["ttl"], 3600);
    // A POST replaces: unspecified fields go back to defaults.
    h.write("roles/web", json!({"allowed_domains": "example.org"}))
        .await;
    let r = h.read("roles/web").await;
    assert_eq!(r["allow_subdomains"], false);
    assert_eq!(r["ttl"], 0);
    let list = h.ok(Operation::List, "roles/", Value::Null).await;
    assert_eq!(list["keys"], json!(["web"]));
    assert!(
        h.invalid(
            Operation::Update,
            "roles/bad",
            json!({"key_type": "ec", "key_bits": 224})
        )
        .await
        .contains("key_bits")
    );
    assert!(
        h.invalid(
            Operation::Update,
            "roles/bad",
            json!({"ttl": "3h", "max_ttl": "1h"})
        )
        .await
        .contains("max_ttl")
    );
    assert_eq!(
        h.pki
            .exists(&h.req(Operation::Update, "roles/web", Value::Null))
            .await
            .unwrap(),
        Some(true)
    );
    assert_eq!(
        h.pki
            .exists(&h.req(Operation::Update, "roles/none", Value::Null))
            .await
            .unwrap(),
        Some(false)
    );
    h.ok(Operation::Delete, "roles/web", Value::Null).await;
    assert!(
        h.call(Operation::Read, "roles/web", Value::Null)
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn ttls_are_clamped_by_role_mount_and_issuer() {
    let mut h = Harness::with_ttls("pki/", 3600, 10 * 3600);
    let root = h
        .write(
            "root/generate/internal",
            json!({"common_name": "Short Root", "key_type": "ec", "ttl": "5h"}),
        )
        .await;
    let root_end = root["expiration"].as_i64().unwrap();
    assert_eq!(root_end - h.clock.unix(), 5 * 3600);
    h.write(
        "roles/r",
        json!({"allow_any_name": true, "key_type": "ec", "max_ttl": "2h"}),
    )
    .await;
    let now = h.clock.unix();
    // Mount default 1h.
    assert_eq!(
        h.write("issue/r", json!({"common_name": "a"})).await["expiration"]
            .as_i64()
            .unwrap()
            - now,
        3600
    );
    // Requested 5m.
    assert_eq!(
        h.write("issue/r", json!({"common_name": "a", "ttl": "5m"}))
            .await["expiration"]
            .as_i64()
            .unwrap()
            - now,
        300
    );
    // Requested 4h, role max 2h: truncated with a warning.
    let resp = h
        .resp(
            Operation::Update,
            "issue/r",
            json!({"common_name": "a", "ttl": "4h"}),
        )
        .await;
    assert_eq!(
        resp.data.as_ref().unwrap()["expiration"].as_i64().unwrap() - now,
        2 * 3600
    );
    assert!(!resp.warnings.is_empty());
    // Role without max_ttl: the mount max (10h) applies, then the issuer's expiry (5h) refuses.
    h.write(
        "roles/long",
        json!({"allow_any_name": true, "key_type": "ec"}),
    )
    .await;
    let e = h
        .invalid(
            Operation::Update,
            "issue/long",
            json!({"common_name": "a", "ttl": "8h"}),
        )
        .await;
    assert!(
        e.contains("beyond the expiration of the CA certificate"),
        "{e}"
    );
    // leaf_not_after_behavior=truncate cuts to the issuer's NotAfter.
    h.write(
        "issuer/default",
        json!({"leaf_not_after_behavior": "truncate"}),
    )
    .await;
    assert_eq!(
        h.write("issue/long", json!({"common_name": "a", "ttl": "8h"}))
            .await["expiration"]
            .as_i64()
            .unwrap(),
        root_end
    );
    // Tuning the mount lower clamps further.
    h.tune(600, 1200);
    assert_eq!(
        h.write("issue/long", json!({"common_name": "a", "ttl": "8h"}))
            .await["expiration"]
            .as_i64()
            .unwrap()
            - now,
        1200
    );
    // not_after is honoured within the limits.
    let na = tresor_pki_time(now + 900);
    assert_eq!(
        h.write("issue/long", json!({"common_name": "a", "not_after": na}))
            .await["expiration"]
            .as_i64()
            .unwrap(),
        now + 900
    );
}

fn tresor_pki_time(secs: i64) -> String {
    ::time::OffsetDateTime::from_unix_timestamp(secs)
        .unwrap()
        .format(&::time::format_description::well_known::Rfc3339)
        .unwrap()
}

#[tokio::test]
async fn formats_der_and_pem_bundle_and_pkcs8() {
    let h = Harness::new("pki/");
    let root = h.root("ec", 256).await;
    h.write("roles/r", json!({"allow_any_name": true, "key_type": "ec"}))
        .await;
    let r = h
        .write("issue/r", json!({"common_name": "a", "format": "der"}))
        .await;
    use base64::Engine as _;
    let der = base64::engine::general_purpose::STANDARD
        .decode(r["certificate"].as_str().unwrap())
        .unwrap();
    assert!(X509Certificate::from_der(&der).is_ok());
    assert_eq!(
        base64::engine::general_purpose::STANDARD
            .decode(r["issuing_ca"].as_str().unwrap())
            .unwrap(),
        pem_der(root["certificate"].as_str().unwrap())
    );
    assert!(
        tresor_pki::keys::PrivateKey::from_der_any(
            &base64::engine::general_purpose::STANDARD
                .decode(r["private_key"].as_str().unwrap())
                .unwrap()
        )
        .is_ok()
    );
    let r = h
        .write(
            "issue/r",
            json!({"common_name": "a", "format": "pem_bundle", "private_key_format": "pkcs8"}),
        )
        .await;
    let bundle = r["certificate"].as_str().unwrap();
    assert!(
        bundle.starts_with("-----BEGIN PRIVATE KEY-----"),
        "{bundle}"
    );
    assert!(bundle.contains("-----BEGIN CERTIFICATE-----"));
    // The self-signed root is not part of the bundle.
    assert_eq!(bundle.matches("BEGIN CERTIFICATE").count(), 1);
    let r = h
        .write(
            "issue/r",
            json!({"common_name": "a", "remove_roots_from_chain": true}),
        )
        .await;
    assert_eq!(r["ca_chain"], json!([]));
    h.invalid(
        Operation::Update,
        "issue/r",
        json!({"common_name": "a", "format": "p12"}),
    )
    .await;
}

#[tokio::test]
async fn listing_certificates_pages_with_after_and_limit() {
    let h = Harness::new("pki/");
    h.root("ec", 256).await;
    h.write("roles/r", json!({"allow_any_name": true, "key_type": "ec"}))
        .await;
    for i in 0..25 {
        h.write("issue/r", json!({"common_name": format!("n{i}")}))
            .await;
    }
    let all: Vec<String> = h.ok(Operation::List, "certs/", Value::Null).await["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(all.len(), 26);
    let mut sorted = all.clone();
    sorted.sort();
    assert_eq!(all, sorted);
    let mut paged = Vec::new();
    let mut after = String::new();
    loop {
        let page = h
            .ok(
                Operation::List,
                "certs/",
                json!({"after": after, "limit": "7"}),
            )
            .await;
        let keys: Vec<String> = page["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_owned())
            .collect();
        if keys.is_empty() {
            break;
        }
        assert!(keys.len() <= 7);
        after = keys.last().unwrap().clone();
        paged.extend(keys);
    }
    assert_eq!(paged, all);
}

#[tokio::test]
async fn no_store_roles_do_not_store_and_unknown_serials_are_404() {
    let h = Harness::new("pki/");
    h.root("ec", 256).await;
    h.write(
        "roles/r",
        json!({"allow_any_name": true, "key_type": "ec", "no_store": true}),
    )
    .await;
    let r = h.write("issue/r", json!({"common_name": "a"})).await;
    let serial = r["serial_number"].as_str().unwrap();
    assert!(
        h.call(Operation::Read, &format!("cert/{serial}"), Value::Null)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        h.call(Operation::Read, "cert/01:02", Value::Null)
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn each_mount_is_its_own_ca() {
    let a = Harness::new("etcd/c1/pki/");
    let b = a.sibling("k8s/c1/pki/");
    let ra = a.root("ec", 256).await;
    let rb = b.root("ec", 256).await;
    assert_ne!(ra["certificate"], rb["certificate"]);
    assert_eq!(a.read("cert/ca").await["certificate"], ra["certificate"]);
    assert_eq!(b.read("cert/ca").await["certificate"], rb["certificate"]);
    let _ = Duration::ZERO;
}

/// Before the mount has a default issuer, the raw fetches answer an empty 204 as Vault's do;
/// the JSON ones say what is missing.
#[tokio::test]
async fn raw_fetches_without_a_default_issuer_are_empty() {
    let h = Harness::new("pki/");
    for path in [
        "ca",
        "ca/pem",
        "ca_chain",
        "crl",
        "crl/pem",
        "crl/delta",
        "crl/delta/pem",
        "cert/ca/raw",
        "cert/ca/raw/pem",
    ] {
        let (status, ct, body) = h.raw_with_status(Operation::Read, path, Value::Null).await;
        assert_eq!((status, ct.as_str(), body.len()), (204, "", 0), "{path}");
    }
    let e = h.invalid(Operation::Read, "cert/ca", Value::Null).await;
    assert!(e.contains("no default issuer"), "{e}");
}
