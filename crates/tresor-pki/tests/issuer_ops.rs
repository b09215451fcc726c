//! Issuer operations that clients such as hvac and `bao pki health-check` reach:
//! `root/sign-self-issued`, `issuer/:ref/revoke`, and the CRLs every issuer answers for (a
//! delta CRL even with delta CRLs off; a clear "unable to find" for issuers without a key).

mod common;

use common::*;
use serde_json::{Value, json};
use tresor_sdk::{LogicalError, Operation};

fn openssl_serial(colon: &str) -> String {
    colon.replace(':', "").to_ascii_uppercase()
}

/// `openssl crl` on a DER CRL, verified against `ca_pem`; returns its text.
fn crl_text(ca_pem: &str, crl_der: &[u8]) -> String {
    let d = tmp();
    let ca = write_file(d.path(), "ca.pem", ca_pem);
    let c = write_file(d.path(), "crl.der", crl_der);
    let (ok, out) = openssl(&[
        "crl",
        "-inform",
        "DER",
        "-in",
        c.to_str().unwrap(),
        "-CAfile",
        ca.to_str().unwrap(),
        "-noout",
        "-text",
    ]);
    assert!(ok, "openssl crl: {out}");
    assert!(out.contains("verify OK"), "{out}");
    out
}

/// A self-issued CA certificate made with openssl: (cert PEM, key path's dir kept alive).
fn openssl_ca(dir: &std::path::Path, name: &str, cn: &str, kind: &str, ca: bool) -> String {
    let key = dir.join(format!("{name}.key"));
    let crt = dir.join(format!("{name}.crt"));
    let mut args = vec!["req", "-x509", "-newkey"];
    let (alg, opt) = match kind {
        "ec" => ("ec", "ec_paramgen_curve:P-256"),
        _ => ("rsa", "rsa_keygen_bits:2048"),
    };
    args.extend([alg, "-pkeyopt", opt, "-nodes", "-days", "30", "-subj"]);
    let subj = format!("/CN={cn}");
    args.push(&subj);
    let bc = if ca {
        "basicConstraints=critical,CA:true"
    } else {
        "basicConstraints=critical,CA:false"
    };
    args.extend(["-addext", bc, "-keyout"]);
    let (k, c) = (key.display().to_string(), crt.display().to_string());
    args.extend([k.as_str(), "-out", c.as_str()]);
    let (ok, out) = openssl(&args);
    assert!(ok, "openssl req: {out}");
    std::fs::read_to_string(crt).unwrap()
}

#[tokio::test]
async fn sign_self_issued_resigns_a_ca_certificate_and_refuses_others() {
    let h = Harness::new("pki/");
    let root = h.root("ec", 256).await;
    let root_pem = root["certificate"].as_str().unwrap();
    let d = tmp();
    let own = openssl_ca(d.path(), "own", "Tresor Test Root", "ec", true);
    let signed = h
        .write("root/sign-self-issued", json!({"certificate": own}))
        .await;
    assert_eq!(keys_of(&signed), ["certificate", "issuing_ca"]);
    assert_eq!(signed["issuing_ca"], root["certificate"]);
    let out_pem = signed["certificate"].as_str().unwrap();
    // Signed by the root (openssl builds the path), same key and serial as the input.
    let (ok, text) = openssl_verify(root_pem, &[], out_pem, None);
    assert!(ok, "{text}");
    let (a, b) = (
        tresor_pki::x509::parse_cert(&pem_der(&own)).unwrap(),
        tresor_pki::x509::parse_cert(&pem_der(out_pem)).unwrap(),
    );
    assert_eq!(a.spki_der, b.spki_der);
    assert_eq!(a.serial, b.serial);
    assert_eq!(a.not_after, b.not_after);
    assert!(tresor_pki::x509::signed_by(
        &pem_der(out_pem),
        &pem_der(root_pem)
    ));
    // The same through issuer/:ref.
    let id = root["issuer_id"].as_str().unwrap();
    h.write(
        &format!("issuer/{id}/sign-self-issued"),
        json!({"certificate": own}),
    )
    .await;

    // Not a CA, not self-issued, or (when asked) another key algorithm: refused.
    let leaf = openssl_ca(d.path(), "leaf", "leaf", "ec", false);
    let m = h
        .invalid(
            Operation::Update,
            "root/sign-self-issued",
            json!({"certificate": leaf}),
        )
        .await;
    assert!(m.contains("not a ca"), "{m}");
    h.write("roles/r", json!({"allow_any_name": true, "key_type": "ec"}))
        .await;
    let issued = h.write("issue/r", json!({"common_name": "x"})).await;
    let m = h
        .invalid(
            Operation::Update,
            "root/sign-self-issued",
            json!({"certificate": issued["certificate"]}),
        )
        .await;
    assert!(m.contains("not self-issued"), "{m}");
    let rsa = openssl_ca(d.path(), "rsa", "rsa ca", "rsa", true);
    let m = h
        .invalid(
            Operation::Update,
            "root/sign-self-issued",
            json!({"certificate": rsa, "require_matching_certificate_algorithms": true}),
        )
        .await;
    assert!(m.contains("algorithm"), "{m}");
    h.write("root/sign-self-issued", json!({"certificate": rsa}))
        .await;
}

#[tokio::test]
async fn revoking_an_issuer_puts_it_on_its_parents_crl_and_stops_it_signing() {
    let h = Harness::new("pki/");
    let root = h.root("ec", 256).await;
    let root_pem = root["certificate"].as_str().unwrap().to_owned();
    // An intermediate in the same mount, signed by the root.
    let csr = h
        .write(
            "intermediate/generate/internal",
            json!({"common_name": "Int", "key_type": "ec", "issuer_name": "int"}),
        )
        .await;
    let signed = h
        .write(
            "root/sign-intermediate",
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
    h.write(
        "roles/r",
        json!({"allow_any_name": true, "key_type": "ec", "issuer_ref": int_id, "ttl": "1h"}),
    )
    .await;
    h.write("issue/r", json!({"common_name": "before"})).await;

    let revoked = h
        .write(&format!("issuer/{int_id}/revoke"), Value::Null)
        .await;
    assert_eq!(revoked["revoked"], true);
    assert!(revoked["revocation_time"].as_i64().unwrap() > 0);
    assert_eq!(h.read(&format!("issuer/{int_id}")).await["revoked"], true);
    // On the root's CRL.
    let root_id = root["issuer_id"].as_str().unwrap();
    let (_, crl) = h
        .raw(
            Operation::Read,
            &format!("issuer/{root_id}/crl/der"),
            Value::Null,
        )
        .await;
    let text = crl_text(&root_pem, &crl);
    assert!(
        text.contains(&openssl_serial(signed["serial_number"].as_str().unwrap())),
        "{text}"
    );
    // It can no longer issue or sign intermediates.
    let m = h
        .invalid(
            Operation::Update,
            "issue/r",
            json!({"common_name": "after"}),
        )
        .await;
    assert!(m.contains("revoked"), "{m}");
    let m = h
        .invalid(
            Operation::Update,
            &format!("issuer/{int_id}/sign-intermediate"),
            json!({"csr": csr["csr"]}),
        )
        .await;
    assert!(m.contains("revoked"), "{m}");
    // Revoking again is harmless and keeps the first time.
    let again = h
        .write(&format!("issuer/{int_id}/revoke"), Value::Null)
        .await;
    assert_eq!(again["revocation_time"], revoked["revocation_time"]);
}

#[tokio::test]
async fn every_keyed_issuer_serves_a_delta_crl_and_keyless_issuers_have_none() {
    let h = Harness::new("pki/");
    let root = h.root("ec", 256).await;
    let root_pem = root["certificate"].as_str().unwrap();
    h.write("roles/r", json!({"allow_any_name": true, "key_type": "ec"}))
        .await;
    // Delta CRLs are off (the default), yet the delta CRL answers: valid, signed, pointing at
    // the current full CRL, with nothing on it because every revocation rebuilt the full CRL.
    assert_eq!(h.read("config/crl").await["enable_delta"], false);
    let a = h.write("issue/r", json!({"common_name": "a"})).await;
    h.write("revoke", json!({"serial_number": a["serial_number"]}))
        .await;
    let (_, full) = h.raw(Operation::Read, "crl", Value::Null).await;
    let full_text = crl_text(root_pem, &full);
    assert!(full_text.contains(&openssl_serial(a["serial_number"].as_str().unwrap())));
    let (_, delta) = h.raw(Operation::Read, "crl/delta", Value::Null).await;
    let delta_text = crl_text(root_pem, &delta);
    assert!(delta_text.contains("Delta CRL Indicator"), "{delta_text}");
    assert!(
        delta_text.contains("No Revoked Certificates"),
        "{delta_text}"
    );
    let base = |t: &str| {
        t.lines()
            .skip_while(|l| !l.contains("CRL Number"))
            .nth(1)
            .map(|l| l.trim().to_owned())
            .unwrap()
    };
    let indicator = delta_text
        .lines()
        .skip_while(|l| !l.contains("Delta CRL Indicator"))
        .nth(1)
        .unwrap()
        .trim()
        .to_owned();
    assert_eq!(indicator, base(&full_text), "{delta_text}");
    // A later revocation rebuilds the full CRL; the delta follows the new base.
    let b = h.write("issue/r", json!({"common_name": "b"})).await;
    h.write("revoke", json!({"serial_number": b["serial_number"]}))
        .await;
    let (_, full2) = h.raw(Operation::Read, "crl", Value::Null).await;
    let (_, delta2) = h.raw(Operation::Read, "crl/delta", Value::Null).await;
    let delta2_text = crl_text(root_pem, &delta2);
    let indicator2 = delta2_text
        .lines()
        .skip_while(|l| !l.contains("Delta CRL Indicator"))
        .nth(1)
        .unwrap()
        .trim()
        .to_owned();
    assert_eq!(indicator2, base(&crl_text(root_pem, &full2)));
    assert_ne!(indicator2, indicator);
    // The JSON form parses too.
    let json_delta = h
        .read(&format!(
            "issuer/{}/crl/delta",
            root["issuer_id"].as_str().unwrap()
        ))
        .await;
    assert!(
        json_delta["crl"]
            .as_str()
            .unwrap()
            .starts_with("-----BEGIN X509 CRL-----")
    );

    // A certificate-only issuer (no key in this mount) has no CRL: Vault's "unable to find".
    let other = h.sibling("other/");
    let imported = other
        .write("issuers/import/cert", json!({"pem_bundle": root_pem}))
        .await;
    let id = imported["imported_issuers"][0].as_str().unwrap().to_owned();
    for path in [format!("issuer/{id}/crl"), format!("issuer/{id}/crl/delta")] {
        match other.call(Operation::Read, &path, Value::Null).await {
            Err(LogicalError::NotFound(m)) => assert!(m.contains("unable to find"), "{m}"),
            r => panic!("{path}: expected not found, got {r:?}"),
        }
    }
}

#[tokio::test]
async fn crl_config_durations_read_back_as_vault_prints_them() {
    let h = Harness::new("pki/");
    let c = h.read("config/crl").await;
    assert_eq!(c["expiry"], "72h");
    assert_eq!(c["ocsp_expiry"], "12h");
    assert_eq!(c["delta_rebuild_interval"], "15m");
    h.write("config/crl", json!({"expiry": "90m"})).await;
    assert_eq!(h.read("config/crl").await["expiry"], "1h30m");
}

#[tokio::test]
async fn cluster_config_round_trips_and_acme_reads_disabled() {
    let h = Harness::new("pki/");
    assert_eq!(h.read("config/cluster").await["path"], "");
    h.write(
        "config/cluster",
        json!({"path": "https://tresor.example:8200/v1/pki"}),
    )
    .await;
    assert_eq!(
        h.read("config/cluster").await["path"],
        "https://tresor.example:8200/v1/pki"
    );
    let m = h
        .invalid(
            Operation::Update,
            "config/cluster",
            json!({"path": "not a url"}),
        )
        .await;
    assert!(m.contains("invalid url"), "{m}");
    assert_eq!(h.read("config/acme").await["enabled"], false);
    let m = h
        .invalid(Operation::Update, "config/acme", json!({"enabled": true}))
        .await;
    assert!(m.contains("acme is not supported"), "{m}");
}
