//! Governing policies as code (design-next.md §5, issue 18): Rego policies compiled once with
//! `regorus` and evaluated per request within a time limit, Tresor's `tresor.x509.*`
//! built-ins, the input document, the core's pipeline hook, and local evaluation for the CLI
//! (`tresor policy test`, `tresor policy eval`).
//!
//! The `hook` feature (on by default) adds the parts that need `tresor-core`; the CLI builds
//! without it, so the client does not link the server.

#![forbid(unsafe_code)]

pub mod builtins;
#[cfg(feature = "hook")]
pub mod hook;
#[cfg(feature = "hook")]
pub mod input;
pub mod policy;
pub mod reads;
pub mod testing;

#[cfg(feature = "hook")]
pub use hook::GoverningHooks;
pub use policy::{Compiled, DEFAULT_EVAL_TIMEOUT, Decision};
