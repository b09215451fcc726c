//! X.509 inputs: PEM blocks, DER certificates, CSRs (PEM or DER), CRLs, private keys and
//! serials — through PKI's parsers (`tresor_pki::{pem, x509, keys}`), PKI's
//! `sign-verbatim` (CSR) and `issuers/import/bundle` (PEM bundle of keys and certificates)
//! against a mount with a root issuer, and the cert auth method's `certs/:name`
//! (`certificate`) and `crls/:name` (`crl`) writes.
//!
//! Input: PEM text is used as it is; anything else is taken as DER and wrapped in the PEM
//! block (or base64) each consumer expects, so mutations reach the DER parsers.

use std::sync::LazyLock;

use crate::{Engine, obj};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};
use tresor_pki::{keys, pem, x509};
use tresor_sdk::Operation;

static PKI: LazyLock<Engine> = LazyLock::new(|| {
    Engine::new(
        tresor_pki::backend,
        &[(
            "root/generate/internal",
            obj(&[
                ("common_name", json!("Fuzz Root")),
                ("key_type", json!("ec")),
                ("ttl", json!("87600h")),
            ]),
        )],
    )
});

// One cert auth engine for all inputs: building one builds an HTTP client (tens of ms).
static CERT: LazyLock<Engine> = LazyLock::new(|| Engine::shared(tresor_cert::backend, &[]));

fn pem_of(label: &str, der: &[u8]) -> String {
    format!(
        "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
        STANDARD.encode(der)
    )
}

/// The `x509` target: one input.
pub fn x509(data: &[u8]) {
    let text = std::str::from_utf8(data).ok();
    let is_pem = text.is_some_and(|t| t.contains("-----BEGIN"));

    // The parsers, on the bytes as they are.
    if let Some(t) = text {
        let _ = pem::parse_all(t);
        if let Ok(ders) = pem::certificates(t) {
            for d in ders {
                let _ = x509::parse_cert(&d);
            }
        }
        let _ = keys::PrivateKey::from_pem(t);
        let _ = x509::parse_serial(t);
    }
    if let Ok(c) = x509::parse_cert(data) {
        let _ = (c.common_name(), c.self_issued());
        let _ = x509::signed_by(data, data);
    }
    let _ = x509::parse_csr(data);
    let _ = keys::PrivateKey::from_der_any(data);
    let _ = keys::spki_spec(data);
    let _ = x509::public_key_algorithm(data);

    // The engines, as a client's request reaches them.
    let (csr, bundle, cert, crl) = match text {
        Some(t) if is_pem => (t.to_owned(), t.to_owned(), t.to_owned(), t.to_owned()),
        _ => (
            pem_of("CERTIFICATE REQUEST", data),
            pem_of("CERTIFICATE", data),
            pem_of("CERTIFICATE", data),
            STANDARD.encode(data),
        ),
    };
    let _ = PKI.call(
        Operation::Update,
        "sign-verbatim",
        obj(&[("csr", Value::String(csr)), ("ttl", json!("1h"))]),
        None,
    );
    let _ = PKI.call(
        Operation::Update,
        "issuers/import/bundle",
        obj(&[("pem_bundle", Value::String(bundle))]),
        None,
    );
    let _ = CERT.call(
        Operation::Update,
        "certs/fuzz",
        obj(&[("certificate", Value::String(cert))]),
        None,
    );
    let _ = CERT.call(
        Operation::Update,
        "crls/fuzz",
        obj(&[("crl", Value::String(crl))]),
        None,
    );
}
