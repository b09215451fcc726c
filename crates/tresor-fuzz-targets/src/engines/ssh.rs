//! The SSH engine's inputs: the public key a client sends to `sign/:role` (OpenSSH
//! authorized_keys form: key type, base64 wire encoding, comment) with the request's
//! principals, extensions, critical options and TTL; and a CA private key imported through
//! `config/ca` / `issuers/import` (PEM PKCS#8, PKCS#1/SEC1, or OpenSSH).
//!
//! Input: first byte 0..=1: the rest is the public key to sign (as a user key, as a host
//! key); 2: the rest is the request's JSON object for `sign/user` (or the public key if it is
//! not JSON); 3: the rest is a CA private key to import.

use std::sync::LazyLock;

use crate::{Engine, obj};
use serde_json::{Map, Value, json};
use tresor_sdk::Operation::Update;

static SSH: LazyLock<Engine> = LazyLock::new(|| {
    Engine::new(
        tresor_ssh::backend,
        &[
            (
                "config/ca",
                obj(&[
                    ("generate_signing_key", json!(true)),
                    ("key_type", json!("ed25519")),
                ]),
            ),
            (
                "roles/user",
                obj(&[
                    ("key_type", json!("ca")),
                    ("allow_user_certificates", json!(true)),
                    ("allowed_users", json!("*")),
                    ("allowed_extensions", json!("*")),
                    ("allowed_critical_options", json!("*")),
                    ("default_extensions", json!({"permit-pty": ""})),
                    ("ttl", json!("1h")),
                ]),
            ),
            (
                "roles/host",
                obj(&[
                    ("key_type", json!("ca")),
                    ("allow_host_certificates", json!(true)),
                    ("allowed_domains", json!("example.com")),
                    ("allow_subdomains", json!(true)),
                ]),
            ),
        ],
    )
});

/// The `ssh` target: one input.
pub fn ssh(data: &[u8]) {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let key = |k: &str| Value::String(k.to_owned());
    let (path, body): (&str, Map<String, Value>) = match sel % 4 {
        0 => (
            "sign/user",
            obj(&[
                ("public_key", key(text)),
                ("valid_principals", json!("alice")),
            ]),
        ),
        1 => (
            "sign/host",
            obj(&[
                ("public_key", key(text)),
                ("cert_type", json!("host")),
                ("valid_principals", json!("a.example.com")),
            ]),
        ),
        2 => match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(m)) => ("sign/user", m),
            _ => ("sign/user", obj(&[("public_key", key(text))])),
        },
        _ => ("issuers/import/fuzzed", obj(&[("private_key", key(text))])),
    };
    let _ = SSH.call(Update, path, body, None);
}
