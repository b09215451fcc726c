//! Key-handling primitives for Tresor's seal, init, rekey and generate-root flows.
//!
//! This crate owns the small, self-contained pieces of cryptography that those flows are built
//! from, and nothing else: it knows no HTTP, no storage and no seal state.
//!
//! - [`shamir`]: splitting the root key into unseal key shares and combining them again, in
//!   Vault's share layout and field, with constant-time arithmetic.
//! - [`pgp`]: encrypting a share or a token to an OpenPGP public key given as `pgp_keys` /
//!   `pgp_key` (base64 of a binary key), and the key's fingerprint.
//! - [`otp`]: the one-time-pad encoding that `sys/generate-root` applies to the new root token.
//! - [`token`]: random token ids and accessors, and constant-time comparison.
//!
//! All randomness comes from aws-lc-rs (`aws_lc_rs::rand`).

#![forbid(unsafe_code)]

pub mod otp;
pub mod pgp;
mod random;
pub mod shamir;
pub mod token;
