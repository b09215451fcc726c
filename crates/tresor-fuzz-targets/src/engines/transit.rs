//! The transit engine's inputs: ciphertext (`vault:v1:...`, derived and convergent keys),
//! `batch_input` lists, signatures and HMACs to verify, backups to restore, and BYOK imports
//! (key material wrapped for the mount's wrapping key) — through the engine's handler, on a
//! mount with one key of each family.
//!
//! Input: the first byte picks the endpoint; the rest is the request's JSON object or, when it
//! is not one, the endpoint's main field (ciphertext, signature, hmac, backup, ...).

use std::sync::LazyLock;

use crate::{Engine, obj};
use serde_json::{Map, Value, json};
use tresor_sdk::Operation::{Read, Update};

static TRANSIT: LazyLock<Engine> = LazyLock::new(|| {
    let key = |t: &str| obj(&[("type", json!(t))]);
    Engine::with_ops(
        tresor_transit::backend,
        &[
            (Update, "keys/aes", key("aes256-gcm96")),
            (Update, "keys/cha", key("chacha20-poly1305")),
            (
                Update,
                "keys/derived",
                obj(&[("type", json!("aes256-gcm96")), ("derived", json!(true))]),
            ),
            (
                Update,
                "keys/conv",
                obj(&[
                    ("type", json!("aes256-gcm96")),
                    ("derived", json!(true)),
                    ("convergent_encryption", json!(true)),
                ]),
            ),
            (Update, "keys/ed", key("ed25519")),
            (Update, "keys/ec", key("ecdsa-p256")),
            (Update, "keys/rsa", key("rsa-2048")),
            (Update, "keys/hm", key("hmac")),
            (Update, "keys/aes/rotate", Map::new()),
            (Read, "wrapping_key", Map::new()),
        ],
    )
});

/// An endpoint: its path, its main field, and fixed fields.
type Endpoint = (
    &'static str,
    &'static str,
    &'static [(&'static str, &'static str)],
);

const ENDPOINTS: &[Endpoint] = &[
    ("decrypt/aes", "ciphertext", &[]),
    ("decrypt/cha", "ciphertext", &[]),
    ("decrypt/derived", "ciphertext", &[("context", "Y3R4")]),
    ("decrypt/conv", "ciphertext", &[("context", "Y3R4")]),
    ("rewrap/aes", "ciphertext", &[]),
    ("encrypt/aes", "plaintext", &[]),
    ("encrypt/conv", "plaintext", &[("context", "Y3R4")]),
    ("verify/ed", "signature", &[("input", "aGVsbG8=")]),
    (
        "verify/ec",
        "signature",
        &[("input", "aGVsbG8="), ("marshaling_algorithm", "jws")],
    ),
    ("verify/ec", "signature", &[("input", "aGVsbG8=")]),
    (
        "verify/rsa",
        "signature",
        &[("input", "aGVsbG8="), ("signature_algorithm", "pkcs1v15")],
    ),
    ("verify/rsa", "signature", &[("input", "aGVsbG8=")]),
    ("verify/hm", "hmac", &[("input", "aGVsbG8=")]),
    ("hmac/hm", "input", &[]),
    ("sign/ed", "input", &[]),
    ("restore/fuzzed", "backup", &[]),
    ("restore", "backup", &[]),
    (
        "keys/imported/import",
        "ciphertext",
        &[("type", "aes256-gcm96")],
    ),
    (
        "keys/imported/import",
        "ciphertext",
        &[("type", "ecdsa-p256")],
    ),
    (
        "keys/imported/import",
        "ciphertext",
        &[("type", "rsa-2048")],
    ),
    ("keys/imported/import", "ciphertext", &[("type", "ed25519")]),
    ("hash", "input", &[]),
    ("datakey/plaintext/aes", "bits", &[]),
];

/// The `transit` target: one input.
pub fn transit(data: &[u8]) {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let (path, main, fixed) = ENDPOINTS[sel as usize % ENDPOINTS.len()];
    let mut body: Map<String, Value> = fixed
        .iter()
        .map(|(k, v)| ((*k).to_owned(), json!(v)))
        .collect();
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(m)) => body.extend(m),
        _ => {
            body.insert(main.to_owned(), Value::String(text.to_owned()));
        }
    }
    let _ = TRANSIT.call(Update, path, body, None);
}
