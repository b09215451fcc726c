//! OCSP requests: DER posted to PKI's `ocsp` (the raw body the HTTP edge hands on for
//! `application/ocsp-request`) and the base64 GET form (`ocsp/:request`), against a mount with
//! a fixed root issuer (fixtures/, the issuer of the corpus's requests) and one issued
//! certificate.
//!
//! Input: the DER request. The first byte's low bit also sends it through the GET form.

use std::sync::{Arc, LazyLock};

use crate::{Engine, obj};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE;
use serde_json::{Map, json};
use tresor_sdk::Operation;

static PKI: LazyLock<Engine> = LazyLock::new(|| {
    Engine::new(
        tresor_pki::backend,
        &[
            // A fixed CA, so the corpus's requests name this mount's issuer.
            (
                "config/ca",
                obj(&[(
                    "pem_bundle",
                    json!(include_str!("../../fixtures/ocsp_ca_bundle.pem")),
                )]),
            ),
            (
                "roles/r",
                obj(&[("allow_any_name", json!(true)), ("key_type", json!("ec"))]),
            ),
            ("issue/r", obj(&[("common_name", json!("leaf.example"))])),
        ],
    )
});

/// The `pki_ocsp` target: one input.
pub fn pki_ocsp(data: &[u8]) {
    let raw: Arc<[u8]> = data.into();
    let _ = PKI.call(Operation::Update, "ocsp", Map::new(), Some(raw));
    if data.first().is_some_and(|b| b & 1 == 1) {
        let _ = PKI.call(
            Operation::Read,
            &format!("ocsp/{}", URL_SAFE.encode(data)),
            Map::new(),
            None,
        );
    }
}
