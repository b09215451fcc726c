//! Scale: 100,000 stored certificates list in pages without slowing down, and a CRL of
//! 10,000 revoked certificates rebuilds in well under a second from the revocation index.
//!
//! The certificates for the listing test are written straight into the mount's storage in the
//! engine's layout (`certs/<first byte>/<serial>`), since issuing 100,000 certificates in a
//! debug build would take minutes; the revocations go through the API.

mod common;

use std::time::{Duration, Instant};

use common::{Harness, openssl, pem_der, tmp, write_file};
use serde_json::{Value, json};
use tresor_sdk::Operation;

#[tokio::test]
async fn one_hundred_thousand_stored_certificates_list_in_pages() {
    let h = Harness::new("pki/");
    h.root("ec", 256).await;
    h.write("roles/r", json!({"allow_any_name": true, "key_type": "ec"}))
        .await;
    let sample = pem_der(
        h.write("issue/r", json!({"common_name": "x"})).await["certificate"]
            .as_str()
            .unwrap(),
    );
    {
        let mut map = h.storage.map.lock();
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..100_000 {
            // A cheap deterministic generator of 20-byte serials.
            let mut serial = Vec::with_capacity(20);
            for _ in 0..20 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                serial.push((x >> 24) as u8);
            }
            serial[0] = (serial[0] & 0x7f).max(1);
            let key = serial
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<Vec<_>>()
                .join("-");
            map.insert(format!("certs/{}/{key}", &key[..2]), sample.clone());
        }
    }
    let total = h.storage.keys_under("certs/").len();
    assert!(total >= 100_000);
    // A first page is fast.
    let t = Instant::now();
    let page = h
        .ok(Operation::List, "certs/", json!({"limit": "1000"}))
        .await;
    let first = t.elapsed();
    assert_eq!(page["keys"].as_array().unwrap().len(), 1000);
    assert!(
        first < Duration::from_millis(500),
        "first page took {first:?}"
    );
    // Walking every page returns every serial once, in order.
    let mut after = String::new();
    let mut seen = 0usize;
    let mut last = String::new();
    let t = Instant::now();
    loop {
        let page = h
            .ok(
                Operation::List,
                "certs/",
                json!({"after": after, "limit": "10000"}),
            )
            .await;
        let keys = page["keys"].as_array().cloned().unwrap_or_default();
        if keys.is_empty() {
            break;
        }
        for k in &keys {
            let k = k.as_str().unwrap().to_owned();
            assert!(k > last, "{k} after {last}");
            last = k;
        }
        seen += keys.len();
        after = last.clone();
    }
    assert_eq!(seen, total);
    assert!(
        t.elapsed() < Duration::from_secs(20),
        "full walk took {:?}",
        t.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crl_of_ten_thousand_revocations_rebuilds_in_under_a_second() {
    let h = Harness::new("pki/");
    let root = h.root("ec", 256).await;
    h.write("roles/r", json!({"allow_any_name": true, "key_type": "ec"}))
        .await;
    // Revocations do not rebuild the CRL one by one (auto_rebuild), as a large CA runs.
    h.write("config/crl", json!({"auto_rebuild": true})).await;
    let n = 10_000;
    let t = Instant::now();
    let mut serials = Vec::with_capacity(n);
    for i in 0..n {
        let c = h
            .write("issue/r", json!({"common_name": format!("n{i}")}))
            .await;
        serials.push(c["serial_number"].as_str().unwrap().to_owned());
    }
    let issued = t.elapsed();
    let t = Instant::now();
    for s in &serials {
        h.write("revoke", json!({"serial_number": s})).await;
    }
    let revoked = t.elapsed();
    eprintln!("issued {n} in {issued:?}, revoked in {revoked:?}");
    let t = Instant::now();
    h.ok(Operation::Update, "crl/rotate", Value::Null).await;
    let rebuild = t.elapsed();
    eprintln!("crl rebuild with {n} entries: {rebuild:?}");
    assert!(rebuild < Duration::from_secs(1), "rebuild took {rebuild:?}");
    // One more revocation without auto_rebuild rebuilds inline, also under a second.
    h.write("config/crl", json!({"auto_rebuild": false})).await;
    let extra = h.write("issue/r", json!({"common_name": "extra"})).await;
    let t = Instant::now();
    h.write("revoke", json!({"serial_number": extra["serial_number"]}))
        .await;
    let inline = t.elapsed();
    assert!(
        inline < Duration::from_secs(1),
        "revoke with rebuild took {inline:?}"
    );
    // openssl reads all 10,001 entries and verifies the signature.
    let (_, der) = h.raw(Operation::Read, "crl", Value::Null).await;
    let d = tmp();
    let r = write_file(d.path(), "root.pem", root["certificate"].as_str().unwrap());
    let c = write_file(d.path(), "crl.der", &der);
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
    assert!(
        ok && out.contains("verify OK"),
        "{}",
        &out[..out.len().min(2000)]
    );
    assert_eq!(out.matches("Serial Number:").count(), n + 1);
    // The index is compact: 41 chunks, not one entry per read.
    assert_eq!(h.storage.keys_under("crl-index/").len(), 41);
}
