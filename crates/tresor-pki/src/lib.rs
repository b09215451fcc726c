//! Vault's PKI secrets engine.
#![forbid(unsafe_code)]

pub mod clock;
pub mod keys;
pub mod names;
pub mod pem;
pub mod x509;
