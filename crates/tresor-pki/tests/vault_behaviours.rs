//! Issue 12, "Vault behaviours that differ today", for the PKI engine: `tidy` with no
//! operation named, reading an issuer after it was deleted, and `format` checked before
//! anything is stored.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{Value, json};
use tresor_sdk::{LogicalError, Operation};

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

/// Vault's tidy operations all default to off: a `tidy` naming none is accepted and runs
/// with nothing enabled (a warning says so), removing nothing, even long-expired
/// certificates.
#[tokio::test]
async fn tidy_with_no_operation_named_runs_with_vaults_defaults() {
    let h = Harness::new("pki/");
    h.root("ec", 256).await;
    h.write(
        "roles/short",
        json!({"allow_any_name": true, "key_type": "ec", "ttl": "1h"}),
    )
    .await;
    h.write("issue/short", json!({"common_name": "expiring"}))
        .await;
    h.clock.advance(Duration::from_secs(100 * 3600));
    let resp = h.resp(Operation::Update, "tidy", json!({})).await;
    assert_eq!(resp.warnings.len(), 1, "{:?}", resp.warnings);
    assert!(
        resp.warnings[0].contains("tidy_cert_store"),
        "the warning names the operations: {:?}",
        resp.warnings
    );
    let st = wait_tidy(&h).await;
    assert_eq!(st["state"], "Finished", "{st}");
    for op in [
        "tidy_cert_store",
        "tidy_revoked_certs",
        "tidy_revoked_cert_issuer_associations",
        "tidy_expired_issuers",
    ] {
        assert_eq!(st[op], false, "{op}: {st}");
    }
    assert_eq!(st["safety_buffer"], 72 * 3600, "{st}");
    assert_eq!(st["cert_store_deleted_count"], 0, "{st}");
    let listed = h.ok(Operation::List, "certs/", Value::Null).await;
    assert_eq!(listed["keys"].as_array().unwrap().len(), 2, "{listed}");
}

/// After `DELETE issuer/:ref`, reading it (by id or name, as JSON, PEM or DER) fails as Vault
/// fails it: with the resolution error as a server error, `unable to find PKI issuer for
/// reference: <ref>`; `default` with no default left says so.
#[tokio::test]
async fn reading_a_deleted_issuer_fails_as_in_vault() {
    let h = Harness::new("pki/");
    let root = h
        .write(
            "root/generate/internal",
            json!({"common_name": "Gone", "issuer_name": "gone", "key_type": "ec"}),
        )
        .await;
    let id = root["issuer_id"].as_str().unwrap().to_owned();
    h.call(Operation::Delete, &format!("issuer/{id}"), Value::Null)
        .await
        .expect("delete");
    for reference in [id.as_str(), "gone"] {
        for suffix in ["", "/json", "/pem", "/der"] {
            let path = format!("issuer/{reference}{suffix}");
            match h.call(Operation::Read, &path, Value::Null).await {
                Err(LogicalError::Internal(m)) => assert_eq!(
                    m,
                    format!("unable to find PKI issuer for reference: {reference}"),
                    "{path}"
                ),
                other => panic!("{path}: {other:?}"),
            }
        }
    }
    match h.call(Operation::Read, "issuer/default", Value::Null).await {
        Err(LogicalError::Internal(m)) => assert_eq!(m, "no default issuer currently configured"),
        other => panic!("issuer/default: {other:?}"),
    }
    // Deleting it again is not an error, as in Vault.
    assert!(
        h.call(Operation::Delete, &format!("issuer/{id}"), Value::Null)
            .await
            .is_ok()
    );
}

/// A bad `format` is refused before anything is stored: no certificate that was never
/// returned, no issuer, no key.
#[tokio::test]
async fn format_is_checked_before_anything_is_stored() {
    let h = Harness::new("pki/");
    let bad = |extra: Value| {
        let mut body = json!({"common_name": "x.example.com", "format": "foo", "key_type": "ec"});
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        body
    };
    let msg = h
        .invalid(Operation::Update, "root/generate/internal", bad(json!({})))
        .await;
    assert!(msg.contains("format"), "{msg}");
    assert!(
        h.storage.map.lock().is_empty(),
        "a refused root stored {:?}",
        h.storage.keys_under("")
    );
    h.invalid(
        Operation::Update,
        "intermediate/generate/internal",
        bad(json!({})),
    )
    .await;
    assert!(h.storage.keys_under("key/").is_empty(), "no key stored");

    h.root("ec", 256).await;
    h.write(
        "roles/r",
        json!({"allow_any_name": true, "key_type": "ec", "ttl": "1h"}),
    )
    .await;
    let before = h.storage.keys_under("");
    for path in ["issue/r", "issuer/default/issue/r"] {
        let msg = h.invalid(Operation::Update, path, bad(json!({}))).await;
        assert!(msg.contains("format"), "{path}: {msg}");
    }
    let csr = h
        .write(
            "intermediate/generate/exported",
            json!({"common_name": "Int", "key_type": "ec"}),
        )
        .await["csr"]
        .as_str()
        .unwrap()
        .to_owned();
    let before = {
        let mut b = before;
        b.extend(h.storage.keys_under("key/"));
        b.sort();
        b.dedup();
        b
    };
    for path in ["sign/r", "sign-verbatim", "root/sign-intermediate"] {
        let msg = h
            .invalid(Operation::Update, path, bad(json!({"csr": csr})))
            .await;
        assert!(msg.contains("format"), "{path}: {msg}");
    }
    let mut after = h.storage.keys_under("");
    after.sort();
    assert_eq!(
        after.iter().filter(|k| k.starts_with("certs/")).count(),
        before.iter().filter(|k| k.starts_with("certs/")).count(),
        "a refused request stored a certificate: {after:?}"
    );
    // The same requests with a good format work and store their certificate.
    let ok = h
        .write(
            "issue/r",
            json!({"common_name": "x.example.com", "format": "der"}),
        )
        .await;
    assert!(!ok["certificate"].as_str().unwrap().starts_with("-----"));
}

/// `signature_bits` of a CA path is 0 (the key's default), 256, 384 or 512, as on a role: a
/// negative or huge value is refused before anything is stored, not truncated to 32 bits
/// (2^32 + 384 used to sign with SHA-384, -1 with SHA-256).
#[tokio::test]
async fn ca_signature_bits_out_of_range_are_refused() {
    let h = Harness::new("pki/");
    for bits in [json!(-1), json!(4_294_967_680_i64), json!(128)] {
        let body = json!({"common_name": "x.example.com", "signature_bits": bits});
        let msg = h
            .invalid(Operation::Update, "root/generate/internal", body.clone())
            .await;
        assert!(msg.contains("signature_bits"), "{bits}: {msg}");
        assert!(
            h.storage.map.lock().is_empty(),
            "a refused root stored {:?}",
            h.storage.keys_under("")
        );
    }
    h.root("ec", 256).await;
    let csr = h
        .write(
            "intermediate/generate/internal",
            json!({"common_name": "int.example.com", "key_type": "ec"}),
        )
        .await["csr"]
        .clone();
    for bits in [json!(-1), json!(4_294_967_680_i64)] {
        let msg = h
            .invalid(
                Operation::Update,
                "root/sign-intermediate",
                json!({"csr": csr, "common_name": "int.example.com", "signature_bits": bits}),
            )
            .await;
        assert!(msg.contains("signature_bits"), "{bits}: {msg}");
    }
    for bits in [0, 256, 384, 512] {
        h.write(
            "root/sign-intermediate",
            json!({"csr": csr, "common_name": "int.example.com", "signature_bits": bits}),
        )
        .await;
    }
}
