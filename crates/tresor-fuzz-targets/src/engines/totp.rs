//! The TOTP engine's inputs (`tresor-totp`, on `tresor-otp`): keys imported from an
//! `otpauth://totp/...` URL or a base32 secret with their options (algorithm, digits,
//! period, skew; generated keys with their QR barcode size), and codes to validate — through
//! the engine's handler; plus `tresor_otp::{parse_url, base32_decode}` directly, with
//! base32's round trip.
//!
//! Input: first byte 0: the rest is a URL to import; 1: a base32 key to import; 2: the JSON
//! body of a `keys/:name` write; 3: a code for a key that exists.

use std::sync::LazyLock;

use crate::{Engine, obj};
use serde_json::{Map, Value, json};
use tresor_sdk::Operation::Update;

static TOTP: LazyLock<Engine> = LazyLock::new(|| {
    Engine::new(
        tresor_totp::backend,
        &[(
            "keys/k",
            obj(&[
                ("generate", json!(false)),
                ("key", json!("JBSWY3DPEHPK3PXP")),
                ("digits", json!(8)),
                ("algorithm", json!("SHA256")),
            ]),
        )],
    )
});

/// The `totp` target: one input.
pub fn totp(data: &[u8]) {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let _ = tresor_otp::parse_url(text);
    if let Ok(key) = tresor_otp::base32_decode(text) {
        let again =
            tresor_otp::base32_decode(&tresor_otp::base32_encode(&key)).expect("round trip");
        assert_eq!(*again, *key);
    }
    let s = |t: &str| Value::String(t.to_owned());
    let (path, body): (&str, Map<String, Value>) = match sel % 4 {
        0 => ("keys/u", obj(&[("url", s(text))])),
        1 => ("keys/b", obj(&[("key", s(text))])),
        2 => match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(m)) => ("keys/j", m),
            _ => (
                "keys/j",
                obj(&[("url", s(text)), ("generate", json!(false))]),
            ),
        },
        _ => ("code/k", obj(&[("code", s(text))])),
    };
    let _ = TOTP.call(Update, path, body, None);
}
