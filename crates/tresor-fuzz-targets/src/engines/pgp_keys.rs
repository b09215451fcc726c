//! OpenPGP public keys as `pgp_keys` (init, rekey), `recovery_pgp_keys` and generate-root's
//! `pgp_key` take them: `tresor_seal::pgp::fingerprint` and `encrypt_to_key`.
//!
//! Input: the binary transferable public key (what `gpg --export` writes); it is base64-encoded
//! as a client would send it. Text input is also tried as the entry itself (whitespace,
//! `keybase:`, bad base64).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use tresor_seal::pgp::{encrypt_to_key, fingerprint};

/// The `pgp_keys` target: one input.
pub fn pgp_keys(data: &[u8]) {
    let b64 = STANDARD.encode(data);
    if fingerprint(&b64).is_ok() {
        let _ = encrypt_to_key(&b64, b"fuzz share");
    }
    if let Ok(t) = std::str::from_utf8(data) {
        let _ = fingerprint(t);
    }
}
