//! Revocation end to end: `revoke` and `revoke-with-key`, the CRL in every form checked with
//! `openssl crl`, delta CRLs, the OCSP responder checked with `openssl ocsp` (good, revoked,
//! unknown), and tidy removing expired certificates and revocations.

mod common;

use std::time::Duration;

use base64::Engine as _;
use common::{Harness, keys_of, openssl, pem_der, tmp, write_file};
use serde_json::{Value, json};
use tresor_sdk::Operation;

async fn ca(h: &Harness) -> Value {
    let root = h.root("ec", 256).await;
    h.write(
        "roles/r",
        json!({"allow_any_name": true, "key_type": "ec", "ttl": "24h"}),
    )
    .await;
    root
}

fn openssl_serial(colon: &str) -> String {
    colon.replace(':', "").to_ascii_uppercase()
}

/// `openssl crl` on a DER CRL: verifies it against the CA and returns its text.
fn crl_text(root_pem: &str, crl_der: &[u8]) -> String {
    let d = tmp();
    let r = write_file(d.path(), "root.pem", root_pem);
    let c = write_file(d.path(), "crl.der", crl_der);
    let (ok, out) = openssl(&[
        "crl",
        "-inform",
        "DER",
        "-in",
        c.to_str().unwrap(),
        "-CAfile",
        r.to_str().unwrap(),
        "-noout",
        "-text",
    ]);
    assert!(ok, "{out}");
    assert!(out.contains("verify OK"), "{out}");
    out
}

#[tokio::test]
async fn story_3_a_revoked_certificate_is_on_the_next_crl_and_ocsp_says_revoked() {
    let h = Harness::new("pki/");
    let root = ca(&h).await;
    let root_pem = root["certificate"].as_str().unwrap();
    let keep = h.write("issue/r", json!({"common_name": "keep"})).await;
    let gone = h.write("issue/r", json!({"common_name": "gone"})).await;
    let serial = gone["serial_number"].as_str().unwrap();
    let r = h.write("revoke", json!({"serial_number": serial})).await;
    assert_eq!(
        keys_of(&r),
        ["revocation_time", "revocation_time_rfc3339", "state"]
    );
    assert_eq!(r["revocation_time"], h.clock.unix());
    assert_eq!(r["state"], "revoked");
    // Revoking again answers the first revocation time.
    h.clock.advance(Duration::from_secs(10));
    assert_eq!(
        h.write("revoke", json!({"serial_number": serial})).await["revocation_time"],
        r["revocation_time"]
    );

    let (ct, der) = h.raw(Operation::Read, "crl", Value::Null).await;
    assert_eq!(ct, "application/pkix-crl");
    let text = crl_text(root_pem, &der);
    assert!(text.contains(&openssl_serial(serial)), "{text}");
    assert!(
        !text.contains(&openssl_serial(keep["serial_number"].as_str().unwrap())),
        "{text}"
    );
    assert!(text.contains("X509v3 CRL Number"), "{text}");
    let (ct, pem) = h.raw(Operation::Read, "crl/pem", Value::Null).await;
    assert_eq!(ct, "application/x-pem-file");
    assert!(
        String::from_utf8(pem)
            .unwrap()
            .starts_with("-----BEGIN X509 CRL-----")
    );
    assert!(
        h.read("cert/crl").await["certificate"]
            .as_str()
            .unwrap()
            .starts_with("-----BEGIN X509 CRL-----")
    );
    assert!(
        h.read("issuer/default/crl").await["crl"]
            .as_str()
            .unwrap()
            .starts_with("-----BEGIN X509 CRL-----")
    );

    // The certificate reads back revoked; LIST certs/revoked has it.
    let c = h.read(&format!("cert/{serial}")).await;
    assert_eq!(c["revocation_time"], r["revocation_time"]);
    assert!(!c["revocation_time_rfc3339"].as_str().unwrap().is_empty());
    assert_eq!(
        h.ok(Operation::List, "certs/revoked/", Value::Null).await["keys"],
        json!([serial])
    );

    // OCSP with the real openssl client: revoked, good, and the nonce echoed.
    let d = tmp();
    let rootf = write_file(d.path(), "root.pem", root_pem);
    for (cert, want) in [(&gone, "revoked"), (&keep, "good")] {
        let leaf = write_file(d.path(), "leaf.pem", cert["certificate"].as_str().unwrap());
        let reqf = d.path().join("req.der");
        let (ok, out) = openssl(&[
            "ocsp",
            "-issuer",
            rootf.to_str().unwrap(),
            "-cert",
            leaf.to_str().unwrap(),
            "-reqout",
            reqf.to_str().unwrap(),
        ]);
        assert!(ok, "{out}");
        let req = std::fs::read(&reqf).unwrap();
        let b64 = base64::engine::general_purpose::STANDARD.encode(&req);
        let (ct, resp) = h
            .raw(Operation::Read, &format!("ocsp/{b64}"), Value::Null)
            .await;
        assert_eq!(ct, "application/ocsp-response");
        let respf = write_file(d.path(), "resp.der", &resp);
        // The response verifies and echoes the request's nonce...
        let (ok, out) = openssl(&[
            "ocsp",
            "-reqin",
            reqf.to_str().unwrap(),
            "-respin",
            respf.to_str().unwrap(),
            "-CAfile",
            rootf.to_str().unwrap(),
        ]);
        assert!(ok, "{out}");
        assert!(out.contains("Response verify OK"), "{out}");
        assert!(!out.contains("Nonce"), "{out}");
        // ...and carries the status.
        let (ok, out) = openssl(&[
            "ocsp",
            "-respin",
            respf.to_str().unwrap(),
            "-issuer",
            rootf.to_str().unwrap(),
            "-CAfile",
            rootf.to_str().unwrap(),
            "-cert",
            leaf.to_str().unwrap(),
            "-no_nonce",
        ]);
        assert!(ok, "{out}");
        assert!(out.contains(&format!(": {want}")), "{out}");
        // POST with the DER body gives the same status.
        let (_, resp) = h.post_raw("ocsp", std::fs::read(&reqf).unwrap()).await;
        let respf = write_file(d.path(), "resp2.der", &resp);
        let (ok, out) = openssl(&[
            "ocsp",
            "-respin",
            respf.to_str().unwrap(),
            "-issuer",
            rootf.to_str().unwrap(),
            "-CAfile",
            rootf.to_str().unwrap(),
            "-cert",
            leaf.to_str().unwrap(),
            "-no_nonce",
        ]);
        assert!(ok && out.contains(&format!(": {want}")), "{out}");
    }
}

#[tokio::test]
async fn ocsp_answers_unknown_unauthorized_and_malformed() {
    let h = Harness::new("pki/");
    let root = ca(&h).await;
    h.write(
        "roles/nostore",
        json!({"allow_any_name": true, "key_type": "ec", "no_store": true}),
    )
    .await;
    let unstored = h.write("issue/nostore", json!({"common_name": "x"})).await;
    let other = h.sibling("other/");
    let other_root = ca(&other).await;
    let foreign = other.write("issue/r", json!({"common_name": "y"})).await;
    let d = tmp();
    let ask = |issuer: &str, cert: &str| {
        let i = write_file(d.path(), "i.pem", issuer);
        let c = write_file(d.path(), "c.pem", cert);
        let reqf = d.path().join("q.der");
        let (ok, out) = openssl(&[
            "ocsp",
            "-issuer",
            i.to_str().unwrap(),
            "-cert",
            c.to_str().unwrap(),
            "-reqout",
            reqf.to_str().unwrap(),
            "-no_nonce",
        ]);
        assert!(ok, "{out}");
        std::fs::read(reqf).unwrap()
    };
    let status_of = |resp: &[u8], issuer: &str, cert: &str| {
        let i = write_file(d.path(), "i2.pem", issuer);
        let c = write_file(d.path(), "c2.pem", cert);
        let r = write_file(d.path(), "r.der", resp);
        openssl(&[
            "ocsp",
            "-respin",
            r.to_str().unwrap(),
            "-issuer",
            i.to_str().unwrap(),
            "-CAfile",
            i.to_str().unwrap(),
            "-cert",
            c.to_str().unwrap(),
            "-no_nonce",
        ])
        .1
    };
    let root_pem = root["certificate"].as_str().unwrap();
    let req = ask(root_pem, unstored["certificate"].as_str().unwrap());
    let b64 = base64::engine::general_purpose::STANDARD.encode(&req);
    let (_, resp) = h
        .raw(Operation::Read, &format!("ocsp/{b64}"), Value::Null)
        .await;
    let out = status_of(&resp, root_pem, unstored["certificate"].as_str().unwrap());
    assert!(out.contains(": unknown"), "{out}");
    // A certificate of another CA: this mount does not know it, and says so (Vault answers
    // `unknown`, signed by the default issuer), verifiably signed.
    let req = ask(
        other_root["certificate"].as_str().unwrap(),
        foreign["certificate"].as_str().unwrap(),
    );
    let b64 = base64::engine::general_purpose::STANDARD.encode(&req);
    let (_, resp) = h
        .raw(Operation::Read, &format!("ocsp/{b64}"), Value::Null)
        .await;
    let r = write_file(d.path(), "foreign.der", &resp);
    let root_file = write_file(d.path(), "root-only.pem", root_pem);
    let (ok, out) = openssl(&[
        "ocsp",
        "-respin",
        r.to_str().unwrap(),
        "-resp_text",
        "-VAfile",
        root_file.to_str().unwrap(),
    ]);
    assert!(ok, "{out}");
    assert!(out.contains("Response verify OK"), "{out}");
    assert!(out.contains("Cert Status: unknown"), "{out}");
    // Garbage is malformed (status 1): a 3-byte OCSPResponse SEQUENCE { ENUMERATED 1 }.
    // Its HTTP status is Vault's 400 beside it.
    let (status, ctype, resp) = h
        .raw_with_status(Operation::Read, "ocsp/AAAA", Value::Null)
        .await;
    assert_eq!((status, ctype.as_str()), (400, "application/ocsp-response"));
    assert_eq!(resp, [0x30, 0x03, 0x0a, 0x01, 0x01]);
    // ocsp_disable turns the responder off (unauthorized).
    h.write("config/crl", json!({"ocsp_disable": true})).await;
    let req = ask(root_pem, unstored["certificate"].as_str().unwrap());
    let b64 = base64::engine::general_purpose::STANDARD.encode(&req);
    let (status, _, resp) = h
        .raw_with_status(Operation::Read, &format!("ocsp/{b64}"), Value::Null)
        .await;
    assert_eq!(status, 401, "unauthorized is Vault's HTTP 401");
    assert_eq!(resp, [0x30, 0x03, 0x0a, 0x01, 0x06]);
}

#[tokio::test]
async fn revoke_by_certificate_with_key_and_the_refusals() {
    let h = Harness::new("pki/");
    let root = ca(&h).await;
    let a = h.write("issue/r", json!({"common_name": "a"})).await;
    let b = h.write("issue/r", json!({"common_name": "b"})).await;
    let r = h
        .write("revoke", json!({"certificate": a["certificate"]}))
        .await;
    assert_eq!(r["state"], "revoked");
    let e = h
        .invalid(
            Operation::Update,
            "revoke-with-key",
            json!({"serial_number": b["serial_number"], "private_key": a["private_key"]}),
        )
        .await;
    assert!(e.contains("does not match"), "{e}");
    h.write(
        "revoke-with-key",
        json!({"serial_number": b["serial_number"], "private_key": b["private_key"]}),
    )
    .await;
    assert!(
        h.invalid(
            Operation::Update,
            "revoke",
            json!({"serial_number": "01:02:03"})
        )
        .await
        .contains("not found")
    );
    assert!(
        h.invalid(Operation::Update, "revoke", json!({}))
            .await
            .contains("exactly one")
    );
    let e = h
        .invalid(
            Operation::Update,
            "revoke",
            json!({"serial_number": root["serial_number"]}),
        )
        .await;
    assert!(e.contains("own crl"), "{e}");
    let (_, der) = h.raw(Operation::Read, "crl", Value::Null).await;
    let text = crl_text(root["certificate"].as_str().unwrap(), &der);
    for c in [&a, &b] {
        assert!(
            text.contains(&openssl_serial(c["serial_number"].as_str().unwrap())),
            "{text}"
        );
    }
    // An expired certificate is not added.
    h.write(
        "roles/short",
        json!({"allow_any_name": true, "key_type": "ec", "ttl": "1m"}),
    )
    .await;
    let s = h.write("issue/short", json!({"common_name": "s"})).await;
    h.clock.advance(Duration::from_secs(120));
    let resp = h
        .resp(
            Operation::Update,
            "revoke",
            json!({"serial_number": s["serial_number"]}),
        )
        .await;
    assert!(resp.warnings[0].contains("expired"));
    assert_eq!(
        h.ok(Operation::List, "certs/revoked/", Value::Null).await["keys"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
}

#[tokio::test]
async fn delta_crls_carry_new_revocations_until_the_next_full_crl() {
    let h = Harness::new("pki/");
    let root = ca(&h).await;
    let root_pem = root["certificate"].as_str().unwrap();
    assert!(
        h.invalid(
            Operation::Update,
            "config/crl",
            json!({"enable_delta": true})
        )
        .await
        .contains("auto_rebuild")
    );
    let cfg = h
        .write(
            "config/crl",
            json!({"auto_rebuild": true, "enable_delta": true, "expiry": "48h"}),
        )
        .await;
    assert_eq!(cfg["expiry"], "48h");
    assert_eq!(cfg["enable_delta"], true);
    let first = h.write("issue/r", json!({"common_name": "first"})).await;
    h.write("revoke", json!({"serial_number": first["serial_number"]}))
        .await;
    h.ok(Operation::Read, "crl/rotate", Value::Null).await;
    let second = h.write("issue/r", json!({"common_name": "second"})).await;
    h.write("revoke", json!({"serial_number": second["serial_number"]}))
        .await;
    let (_, full) = h.raw(Operation::Read, "crl", Value::Null).await;
    let full_text = crl_text(root_pem, &full);
    assert!(full_text.contains(&openssl_serial(first["serial_number"].as_str().unwrap())));
    assert!(
        !full_text.contains(&openssl_serial(second["serial_number"].as_str().unwrap())),
        "{full_text}"
    );
    let (_, delta) = h.raw(Operation::Read, "crl/delta", Value::Null).await;
    let delta_text = crl_text(root_pem, &delta);
    assert!(delta_text.contains("Delta CRL Indicator"), "{delta_text}");
    assert!(
        delta_text.contains(&openssl_serial(second["serial_number"].as_str().unwrap())),
        "{delta_text}"
    );
    assert!(
        !delta_text.contains(&openssl_serial(first["serial_number"].as_str().unwrap())),
        "{delta_text}"
    );
    // A rotation folds everything into the full CRL and empties the delta.
    h.ok(Operation::Update, "crl/rotate", Value::Null).await;
    let (_, full) = h.raw(Operation::Read, "crl", Value::Null).await;
    assert!(
        crl_text(root_pem, &full)
            .contains(&openssl_serial(second["serial_number"].as_str().unwrap()))
    );
    let (_, delta) = h.raw(Operation::Read, "crl/delta", Value::Null).await;
    assert!(crl_text(root_pem, &delta).contains("No Revoked Certificates"));
    // With auto_rebuild, the full CRL is rebuilt once it is within the grace period of expiry.
    let third = h.write("issue/r", json!({"common_name": "third"})).await;
    h.write("revoke", json!({"serial_number": third["serial_number"]}))
        .await;
    h.clock.advance(Duration::from_secs(37 * 3600));
    let (_, full) = h.raw(Operation::Read, "crl", Value::Null).await;
    assert!(
        crl_text(root_pem, &full)
            .contains(&openssl_serial(third["serial_number"].as_str().unwrap()))
    );
}

#[tokio::test]
async fn disabled_crls_are_empty_and_config_reads_back() {
    let h = Harness::new("pki/");
    let root = ca(&h).await;
    let c = h.read("config/crl").await;
    assert_eq!(c["expiry"], "72h");
    assert_eq!(c["disable"], false);
    let a = h.write("issue/r", json!({"common_name": "a"})).await;
    h.write("revoke", json!({"serial_number": a["serial_number"]}))
        .await;
    h.write("config/crl", json!({"disable": true})).await;
    let (_, der) = h.raw(Operation::Read, "crl", Value::Null).await;
    assert!(
        crl_text(root["certificate"].as_str().unwrap(), &der).contains("No Revoked Certificates")
    );
    h.write("config/crl", json!({"disable": false})).await;
    let (_, der) = h.raw(Operation::Read, "crl", Value::Null).await;
    assert!(
        crl_text(root["certificate"].as_str().unwrap(), &der)
            .contains(&openssl_serial(a["serial_number"].as_str().unwrap()))
    );
}

async fn wait_tidy(h: &Harness) -> Value {
    for _ in 0..500 {
        let st = h.read("tidy-status").await;
        if st["state"] != "Running" {
            return st;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("tidy did not finish");
}

#[tokio::test]
async fn tidy_removes_expired_certificates_and_revocations_after_the_safety_buffer() {
    let h = Harness::new("pki/");
    let root = ca(&h).await;
    h.write(
        "roles/short",
        json!({"allow_any_name": true, "key_type": "ec", "ttl": "1h"}),
    )
    .await;
    let live = h
        .write("issue/r", json!({"common_name": "live", "ttl": "720h"}))
        .await;
    let expiring = h
        .write("issue/short", json!({"common_name": "expiring"}))
        .await;
    let revoked = h
        .write("issue/short", json!({"common_name": "revoked"}))
        .await;
    h.write("revoke", json!({"serial_number": revoked["serial_number"]}))
        .await;
    assert_eq!(h.read("tidy-status").await["state"], "Inactive");
    // Within the safety buffer nothing goes.
    h.clock.advance(Duration::from_secs(2 * 3600));
    let resp = h
        .resp(
            Operation::Update,
            "tidy",
            json!({"tidy_cert_store": true, "tidy_revoked_certs": true}),
        )
        .await;
    assert!(resp.warnings[0].contains("Tidy operation successfully started"));
    let st = wait_tidy(&h).await;
    assert_eq!(st["state"], "Finished");
    assert_eq!(st["cert_store_deleted_count"], 0);
    // Past expiry + 72h both expired certificates go, the live one and the root stay.
    h.clock.advance(Duration::from_secs(72 * 3600));
    h.write(
        "tidy",
        json!({"tidy_cert_store": true, "tidy_revoked_certs": true}),
    )
    .await;
    let st = wait_tidy(&h).await;
    assert_eq!(st["state"], "Finished", "{st}");
    assert_eq!(st["cert_store_deleted_count"], 1);
    assert_eq!(st["revoked_cert_deleted_count"], 1);
    assert_eq!(st["current_cert_store_count"], 2);
    let listed = h.ok(Operation::List, "certs/", Value::Null).await["keys"].clone();
    assert!(listed.as_array().unwrap().contains(&live["serial_number"]));
    assert!(listed.as_array().unwrap().contains(&root["serial_number"]));
    assert!(
        !listed
            .as_array()
            .unwrap()
            .contains(&expiring["serial_number"])
    );
    assert!(
        h.call(Operation::List, "certs/revoked/", Value::Null)
            .await
            .unwrap()
            .unwrap()
            .data
            .unwrap()["keys"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    let (_, der) = h.raw(Operation::Read, "crl", Value::Null).await;
    assert!(
        crl_text(root["certificate"].as_str().unwrap(), &der).contains("No Revoked Certificates")
    );
    let _ = pem_der;
}

#[tokio::test]
async fn auto_tidy_runs_once_its_interval_has_passed() {
    let h = Harness::new("pki/");
    ca(&h).await;
    h.write(
        "roles/short",
        json!({"allow_any_name": true, "key_type": "ec", "ttl": "1h"}),
    )
    .await;
    h.write("issue/short", json!({"common_name": "old"})).await;
    let cfg = h.write("config/auto-tidy", json!({"enabled": true, "interval_duration": "1h", "tidy_cert_store": true, "safety_buffer": "1s"})).await;
    assert_eq!(cfg["enabled"], true);
    assert_eq!(h.read("config/auto-tidy").await["interval_duration"], 3600);
    // The core's periodic tick starts it once the interval has passed, and only then.
    let start = h.clock.unix();
    h.periodic(start).await;
    h.clock.advance(Duration::from_secs(2 * 3600));
    h.read("config/urls").await; // requests no longer start a tidy
    assert_eq!(h.read("tidy-status").await["state"], "Inactive");
    h.periodic(start + 1800).await;
    assert_eq!(h.read("tidy-status").await["state"], "Inactive");
    h.periodic(start + 2 * 3600).await;
    let st = wait_tidy(&h).await;
    assert_eq!(st["state"], "Finished", "{st}");
    assert_eq!(st["cert_store_deleted_count"], 1);
}
