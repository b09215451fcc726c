//! The server configuration parser (crates/tresor/src/config.rs, compiled in from the binary
//! crate): HCL (with Vault's HCL 1 one-line forms) or JSON into `ServerConfig`, then its
//! validation. Input: the first byte picks the syntax (odd: JSON), the rest is the file.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[allow(dead_code, unused_imports)]
#[path = "../../crates/tresor/src/config.rs"]
mod config;

fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else { return };
    let Ok(text) = std::str::from_utf8(rest) else { return };
    let _ = config::parse(text, sel & 1 == 1, std::path::Path::new("/nonexistent/fuzz"));
});
