//! The server configuration parser (crates/tresor/src/config.rs, compiled in from the binary
//! crate): HCL (with Vault's HCL 1 one-line forms) or JSON into `ServerConfig`, then its
//! validation. Input: the first byte picks the syntax (odd: JSON), the rest is the file.

#[allow(dead_code, unused_imports)]
#[path = "../../../tresor/src/config.rs"]
mod config;

/// The `server_config` target: one input.
pub fn server_config(data: &[u8]) {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let _ = config::parse(
        text,
        sel & 1 == 1,
        std::path::Path::new("/nonexistent/fuzz"),
    );
}
