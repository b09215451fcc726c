//! CA setup beyond a generated root: an offline openssl root and intermediate imported through
//! `config/ca` (story 2), intermediates generated and signed between mounts, `sign/:role`,
//! `sign-verbatim`, and the multi-issuer API (issuers, keys, defaults, deletion).

mod common;

use std::path::Path;

use common::{Harness, keys_of, openssl, openssl_verify, pem_der, tmp, write_file};
use serde_json::{Value, json};
use tresor_sdk::Operation;
use x509_parser::prelude::*;

fn run(args: &[&str]) -> String {
    let (ok, out) = openssl(args);
    assert!(ok, "openssl {args:?}: {out}");
    out
}

/// An offline root (EC P-384, 10 years) and an intermediate (RSA 2048, path length 0, 5
/// years) made with the openssl CLI, as an operator would. Returns (root pem, int key, int pem).
fn offline_ca(dir: &Path) -> (String, String, String) {
    let p = |n: &str| dir.join(n).display().to_string();
    run(&[
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-384",
        "-nodes",
        "-keyout",
        &p("root.key"),
        "-out",
        &p("root.pem"),
        "-days",
        "3650",
        "-subj",
        "/O=Example/CN=Example Offline Root",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
    ]);
    run(&[
        "req",
        "-new",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        &p("int.key"),
        "-out",
        &p("int.csr"),
        "-subj",
        "/O=Example/OU=Prod/CN=Example Prod Intermediate",
    ]);
    write_file(
        dir,
        "ext.cnf",
        "basicConstraints=critical,CA:TRUE,pathlen:0\nkeyUsage=critical,keyCertSign,cRLSign\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n",
    );
    run(&[
        "x509",
        "-req",
        "-in",
        &p("int.csr"),
        "-CA",
        &p("root.pem"),
        "-CAkey",
        &p("root.key"),
        "-CAcreateserial",
        "-out",
        &p("int.pem"),
        "-days",
        "1825",
        "-extfile",
        &p("ext.cnf"),
    ]);
    let read = |n: &str| std::fs::read_to_string(dir.join(n)).unwrap();
    (read("root.pem"), read("int.key"), read("int.pem"))
}

#[tokio::test]
async fn story_2_offline_root_intermediate_imported_via_config_ca_issues_five_minute_certs() {
    let d = tmp();
    let (root_pem, int_key, int_pem) = offline_ca(d.path());
    let mut h = Harness::new("pki/");
    let bundle = format!("{int_key}\n{int_pem}\n{root_pem}");
    let imported = h.write("config/ca", json!({"pem_bundle": bundle})).await;
    assert_eq!(
        keys_of(&imported),
        [
            "existing_issuers",
            "existing_keys",
            "imported_issuers",
            "imported_keys",
            "mapping"
        ]
    );
    assert_eq!(imported["imported_issuers"].as_array().unwrap().len(), 2);
    assert_eq!(imported["imported_keys"].as_array().unwrap().len(), 1);
    let key_id = imported["imported_keys"][0].as_str().unwrap();
    // The intermediate (the issuer with the key) is the default.
    let default = h.read("config/issuers").await["default"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(imported["mapping"][&default], key_id);
    let issuer = h.read("issuer/default").await;
    assert_eq!(
        pem_der(issuer["certificate"].as_str().unwrap()),
        pem_der(&int_pem)
    );
    assert_eq!(issuer["ca_chain"].as_array().unwrap().len(), 2);
    assert_eq!(
        pem_der(issuer["ca_chain"][1].as_str().unwrap()),
        pem_der(&root_pem)
    );
    // Importing the same bundle again changes nothing.
    let again = h.write("config/ca", json!({"pem_bundle": bundle})).await;
    assert_eq!(again["imported_issuers"], Value::Null);
    assert_eq!(again["existing_issuers"].as_array().unwrap().len(), 2);

    h.tune(768 * 3600, 730 * 3600);
    h.write("roles/tls", json!({"allowed_domains": "example.com", "allow_subdomains": true, "max_ttl": "168h", "key_type": "ec"})).await;
    let r = h
        .write(
            "issue/tls",
            json!({"common_name": "www.example.com", "ttl": "5m"}),
        )
        .await;
    assert_eq!(r["expiration"].as_i64().unwrap() - h.clock.unix(), 300);
    let der = pem_der(r["certificate"].as_str().unwrap());
    let (_, cert) = X509Certificate::from_der(&der).unwrap();
    assert_eq!(
        cert.validity().not_after.timestamp() - cert.validity().not_before.timestamp(),
        300 + 30
    );
    assert_eq!(r["ca_chain"].as_array().unwrap().len(), 2);
    let (ok, out) = openssl_verify(
        &root_pem,
        &[&int_pem],
        r["certificate"].as_str().unwrap(),
        Some("sslserver"),
    );
    assert!(ok, "{out}");
    // The issuer name is copied byte for byte from the intermediate.
    let int_der = pem_der(&int_pem);
    let (_, int) = X509Certificate::from_der(&int_der).unwrap();
    assert_eq!(cert.issuer().as_raw(), int.subject().as_raw());
    // Without the intermediate, the leaf does not verify.
    let (ok, _) = openssl_verify(&root_pem, &[], r["certificate"].as_str().unwrap(), None);
    assert!(!ok);
    // Asking for 200h is capped at the role's 168h; the mount allows 730h.
    let r = h
        .write(
            "issue/tls",
            json!({"common_name": "a.example.com", "ttl": "200h"}),
        )
        .await;
    assert_eq!(
        r["expiration"].as_i64().unwrap() - h.clock.unix(),
        168 * 3600
    );
    // The intermediate has path length 0: it cannot sign another CA.
    let e = h
        .invalid(
            Operation::Update,
            "root/sign-intermediate",
            json!({"csr": csr_pem(d.path(), "ec", "/CN=sub")}),
        )
        .await;
    assert!(e.contains("path length"), "{e}");
}

fn csr_pem(dir: &Path, kind: &str, subj: &str) -> String {
    let key = dir.join(format!("{kind}-csr.key"));
    let out = dir.join(format!("{kind}-csr.pem"));
    let mut args = vec![
        "req",
        "-new",
        "-nodes",
        "-keyout",
        key.to_str().unwrap(),
        "-out",
        out.to_str().unwrap(),
        "-subj",
        subj,
    ];
    match kind {
        "ec" => args.extend(["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"]),
        "rsa" => args.extend(["-newkey", "rsa:2048"]),
        _ => args.extend(["-newkey", "ed25519"]),
    }
    run(&args);
    std::fs::read_to_string(out).unwrap()
}

#[tokio::test]
async fn intermediate_generated_signed_by_another_mount_and_set_signed() {
    let root_mount = Harness::new("pki/");
    let root = root_mount.root("rsa", 2048).await;
    let int_mount = root_mount.sibling("pki_int/");
    let generated = int_mount
        .write(
            "intermediate/generate/internal",
            json!({"common_name": "Tresor Intermediate", "key_type": "ec", "key_bits": 384}),
        )
        .await;
    assert!(
        generated["csr"]
            .as_str()
            .unwrap()
            .starts_with("-----BEGIN CERTIFICATE REQUEST-----")
    );
    assert!(generated.get("private_key").is_none());
    let signed = root_mount.write("root/sign-intermediate", json!({"csr": generated["csr"], "common_name": "Tresor Intermediate", "ttl": "43800h", "max_path_length": 0})).await;
    assert_eq!(
        keys_of(&signed),
        [
            "ca_chain",
            "certificate",
            "expiration",
            "issuing_ca",
            "serial_number"
        ]
    );
    // The root's own expiry (768h) bounds the intermediate.
    assert_eq!(signed["expiration"], root["expiration"]);
    let set = int_mount.write("intermediate/set-signed", json!({"certificate": format!("{}\n{}", signed["certificate"].as_str().unwrap(), root["certificate"].as_str().unwrap())})).await;
    assert_eq!(set["imported_issuers"].as_array().unwrap().len(), 2);
    let int_cert_der = pem_der(signed["certificate"].as_str().unwrap());
    let (_, int_cert) = X509Certificate::from_der(&int_cert_der).unwrap();
    let bc = int_cert.basic_constraints().unwrap().unwrap().value;
    assert!(bc.ca);
    assert_eq!(bc.path_len_constraint, Some(0));
    int_mount.write("roles/svc", json!({"allowed_domains": "svc.internal", "allow_subdomains": true, "key_type": "ec", "ttl": "1h"})).await;
    let leaf = int_mount
        .write("issue/svc", json!({"common_name": "a.svc.internal"}))
        .await;
    assert_eq!(leaf["issuing_ca"], signed["certificate"]);
    let (ok, out) = openssl_verify(
        root["certificate"].as_str().unwrap(),
        &[signed["certificate"].as_str().unwrap()],
        leaf["certificate"].as_str().unwrap(),
        Some("sslclient"),
    );
    assert!(ok, "{out}");
    // Exported intermediates return their key.
    let exp = int_mount
        .write(
            "intermediate/generate/exported",
            json!({"common_name": "Exported", "key_type": "ed25519"}),
        )
        .await;
    assert!(exp["private_key"].as_str().unwrap().contains("PRIVATE KEY"));
    assert_eq!(exp["private_key_type"], "ed25519");
}

#[tokio::test]
async fn sign_checks_the_csr_signature_the_role_and_the_key_type() {
    let d = tmp();
    let h = Harness::new("pki/");
    let root = h.root("ec", 256).await;
    h.write("roles/web", json!({"allowed_domains": "example.com", "allow_subdomains": true, "key_type": "ec", "key_bits": 256})).await;
    let good = {
        let key = d.path().join("w.key");
        let out = d.path().join("w.csr");
        run(&[
            "req",
            "-new",
            "-nodes",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-keyout",
            key.to_str().unwrap(),
            "-out",
            out.to_str().unwrap(),
            "-subj",
            "/CN=web.example.com",
            "-addext",
            "subjectAltName=DNS:web.example.com,DNS:api.example.com,IP:10.9.8.7",
        ]);
        std::fs::read_to_string(out).unwrap()
    };
    let r = h.write("sign/web", json!({"csr": good, "ttl": "1h"})).await;
    assert_eq!(
        keys_of(&r),
        [
            "ca_chain",
            "certificate",
            "expiration",
            "issuing_ca",
            "serial_number"
        ]
    );
    let cert_der = pem_der(r["certificate"].as_str().unwrap());
    let (_, cert) = X509Certificate::from_der(&cert_der).unwrap();
    assert_eq!(
        cert.subject()
            .iter_common_name()
            .next()
            .unwrap()
            .as_str()
            .unwrap(),
        "web.example.com"
    );
    let san = cert.subject_alternative_name().unwrap().unwrap().value;
    assert_eq!(san.general_names.len(), 3);
    let (ok, out) = openssl_verify(
        root["certificate"].as_str().unwrap(),
        &[],
        r["certificate"].as_str().unwrap(),
        None,
    );
    assert!(ok, "{out}");
    // A CSR asking for a name outside the role is refused.
    let evil = {
        let key = d.path().join("e.key");
        let out = d.path().join("e.csr");
        run(&[
            "req",
            "-new",
            "-nodes",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-keyout",
            key.to_str().unwrap(),
            "-out",
            out.to_str().unwrap(),
            "-subj",
            "/CN=web.example.com",
            "-addext",
            "subjectAltName=DNS:evil.com",
        ]);
        std::fs::read_to_string(out).unwrap()
    };
    assert!(
        h.invalid(Operation::Update, "sign/web", json!({"csr": evil}))
            .await
            .contains("evil.com")
    );
    // A tampered CSR fails its signature check.
    let mut der = tresor_pki::pem::parse_all(&good).unwrap().remove(0).der;
    let n = der.len();
    der[n - 5] ^= 0x01;
    let tampered = tresor_pki::pem::encode("CERTIFICATE REQUEST", &der);
    let e = h
        .invalid(Operation::Update, "sign/web", json!({"csr": tampered}))
        .await;
    assert!(e.contains("signature") || e.contains("csr"), "{e}");
    // RSA and Ed25519 CSRs do not fit an EC role.
    for kind in ["rsa", "ed25519"] {
        let csr = csr_pem(d.path(), kind, "/CN=web.example.com");
        let e = h
            .invalid(Operation::Update, "sign/web", json!({"csr": csr}))
            .await;
        assert!(e.contains("role requires keys"), "{e}");
    }
    // key_type any accepts them; the CN from the request wins over the CSR's.
    h.write(
        "roles/anykey",
        json!({"allowed_domains": "example.com", "allow_subdomains": true, "key_type": "any"}),
    )
    .await;
    let r = h.write("sign/anykey", json!({"csr": csr_pem(d.path(), "rsa", "/CN=x.example.com"), "common_name": "y.example.com"})).await;
    let cert_der = pem_der(r["certificate"].as_str().unwrap());
    let (_, cert) = X509Certificate::from_der(&cert_der).unwrap();
    assert_eq!(
        cert.subject()
            .iter_common_name()
            .next()
            .unwrap()
            .as_str()
            .unwrap(),
        "y.example.com"
    );
    // sign-verbatim keeps the CSR's subject, whatever it is.
    let csr = csr_pem(d.path(), "ec", "/O=Acme/CN=Anything Goes");
    let r = h
        .write("sign-verbatim", json!({"csr": csr, "ttl": "1h"}))
        .await;
    let cert_der = pem_der(r["certificate"].as_str().unwrap());
    let (_, cert) = X509Certificate::from_der(&cert_der).unwrap();
    assert_eq!(cert.subject().to_string(), "O=Acme, CN=Anything Goes");
    assert_eq!(r["expiration"].as_i64().unwrap() - h.clock.unix(), 3600);
}

#[tokio::test]
async fn multi_issuer_api_lists_reads_renames_defaults_and_deletes() {
    let h = Harness::new("pki/");
    let first = h.root("ec", 256).await;
    let second = h.write("root/generate/exported", json!({"common_name": "Second Root", "key_type": "ec", "issuer_name": "second", "key_name": "second-key"})).await;
    assert!(
        second["private_key"]
            .as_str()
            .unwrap()
            .starts_with("-----BEGIN EC PRIVATE KEY-----")
    );
    assert_eq!(second["issuer_name"], "second");
    assert_eq!(second["key_name"], "second-key");
    let id1 = first["issuer_id"].as_str().unwrap();
    let id2 = second["issuer_id"].as_str().unwrap();
    let list = h.ok(Operation::List, "issuers/", Value::Null).await;
    assert_eq!(list["keys"].as_array().unwrap().len(), 2);
    assert_eq!(list["key_info"][id1]["is_default"], true);
    assert_eq!(list["key_info"][id2]["is_default"], false);
    // Issuers resolve by id, by name and as "default".
    assert_eq!(h.read("issuer/second").await["issuer_id"], id2);
    let read = h.read(&format!("issuer/{id1}")).await;
    for k in [
        "ca_chain",
        "certificate",
        "issuer_id",
        "issuer_name",
        "key_id",
        "leaf_not_after_behavior",
        "usage",
        "revocation_signature_algorithm",
        "issuing_certificates",
        "crl_distribution_points",
        "ocsp_servers",
    ] {
        assert!(read.get(k).is_some(), "{k}");
    }
    assert_eq!(
        read["usage"],
        "crl-signing,issuing-certificates,ocsp-signing,read-only"
    );
    assert_eq!(read["revocation_signature_algorithm"], "ECDSAWithSHA256");
    // Rename, and refuse duplicate names.
    h.write(&format!("issuer/{id1}"), json!({"issuer_name": "first"}))
        .await;
    assert_eq!(h.read("issuer/first").await["issuer_id"], id1);
    assert!(
        h.invalid(
            Operation::Update,
            "issuer/first",
            json!({"issuer_name": "second"})
        )
        .await
        .contains("in use")
    );
    // `root/replace` without `default` looks for an issuer named "next" (Vault's default for
    // the field): none here, so it is refused and the default stays.
    assert!(
        h.invalid(Operation::Update, "root/replace", json!({}))
            .await
            .contains("unable to find PKI issuer for reference: next")
    );
    assert_eq!(h.read("config/issuers").await["default"], id1);
    // Switch the default; issuing follows it.
    h.write("config/issuers", json!({"default": "second"}))
        .await;
    assert_eq!(h.read("config/issuers").await["default"], id2);
    // `root/replace` names the new default, by name or id, and answers with the setting.
    let replaced = h.write("root/replace", json!({"default": "first"})).await;
    assert_eq!(replaced["default"], id1);
    assert_eq!(replaced["default_follows_latest_issuer"], false);
    h.write("root/replace", json!({"default": id2})).await;
    assert_eq!(h.read("config/issuers").await["default"], id2);
    h.write("roles/r", json!({"allow_any_name": true, "key_type": "ec"}))
        .await;
    assert_eq!(
        h.write("issue/r", json!({"common_name": "x"})).await["issuing_ca"],
        second["certificate"]
    );
    // issuer/:ref/issue/:role picks another issuer.
    assert_eq!(
        h.write("issuer/first/issue/r", json!({"common_name": "x"}))
            .await["issuing_ca"],
        first["certificate"]
    );
    // An issuer whose usage lacks issuing-certificates cannot issue.
    h.write("issuer/first", json!({"usage": "read-only,crl-signing"}))
        .await;
    h.invalid(
        Operation::Update,
        "issuer/first/issue/r",
        json!({"common_name": "x"}),
    )
    .await;
    // Fetching issuer certificates.
    let (ct, body) = h
        .raw(Operation::Read, "issuer/first/der", Value::Null)
        .await;
    assert_eq!(ct, "application/pkix-cert");
    assert_eq!(body, pem_der(first["certificate"].as_str().unwrap()));
    assert_eq!(
        h.read("issuer/second/json").await["certificate"],
        second["certificate"]
    );
    // Keys.
    let keys = h.ok(Operation::List, "keys/", Value::Null).await;
    assert_eq!(keys["keys"].as_array().unwrap().len(), 2);
    let k = h.read("key/second-key").await;
    assert_eq!(k["key_type"], "ec");
    assert_eq!(k["key_bits"], 256);
    h.write("key/second-key", json!({"key_name": "renamed"}))
        .await;
    assert_eq!(h.read("key/renamed").await["key_id"], second["key_id"]);
    assert!(
        h.invalid(Operation::Delete, "key/renamed", Value::Null)
            .await
            .contains("in use")
    );
    assert_eq!(h.read("config/keys").await["default"], first["key_id"]);
    // Deleting the default issuer clears the default.
    h.ok(Operation::Delete, "issuer/second", Value::Null).await;
    assert_eq!(h.read("config/issuers").await["default"], "");
    h.ok(Operation::Delete, "key/renamed", Value::Null).await;
    assert_eq!(
        h.ok(Operation::List, "keys/", Value::Null).await["keys"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    // DELETE root removes everything but issued certificates.
    h.ok(Operation::Delete, "root", Value::Null).await;
    assert!(
        h.call(Operation::List, "issuers/", Value::Null)
            .await
            .unwrap()
            .unwrap()
            .data
            .unwrap()["keys"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    // No default issuer left: `ca` is Vault's empty 204.
    let (status, _, body) = h.raw_with_status(Operation::Read, "ca", Value::Null).await;
    assert_eq!((status, body.len()), (204, 0));
    assert!(
        !h.ok(Operation::List, "certs/", Value::Null).await["keys"]
            .as_array()
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn import_refuses_leaf_certificates_and_garbage() {
    let h = Harness::new("pki/");
    let src = h.sibling("src/");
    src.root("ec", 256).await;
    src.write("roles/r", json!({"allow_any_name": true, "key_type": "ec"}))
        .await;
    let leaf = src.write("issue/r", json!({"common_name": "leaf"})).await;
    let e = h
        .invalid(
            Operation::Update,
            "config/ca",
            json!({"pem_bundle": leaf["certificate"]}),
        )
        .await;
    assert!(e.contains("not a ca"), "{e}");
    assert!(
        h.invalid(
            Operation::Update,
            "config/ca",
            json!({"pem_bundle": "hello"})
        )
        .await
        .contains("no certificates")
    );
    // A key on its own is imported and becomes the default key.
    let k = h
        .write("config/ca", json!({"pem_bundle": leaf["private_key"]}))
        .await;
    assert_eq!(k["imported_keys"].as_array().unwrap().len(), 1);
    assert_eq!(
        h.read("config/keys").await["default"],
        k["imported_keys"][0]
    );
}
