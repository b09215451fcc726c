//! The bodies of Tresor's fuzz targets, one plain function per target taking the input bytes.
//!
//! cargo-fuzz's binaries in `fuzz/fuzz_targets/` are one-line calls of these functions, and
//! `tests/replay.rs` runs every input of every corpus in `fuzz/corpus/<target>/` through them
//! in the ordinary test build, so CI checks each target on its whole corpus without the
//! sanitizer build (docs/fuzzing.md). Each target drives the real entry point a request or a
//! config file reaches: the public parser where there is one, otherwise the engine's handler
//! through `LogicalBackend::handle` (what the core calls), or `tresor_http::dispatch`.
//!
//! Without the `engines` feature only `policy` and `fields_duration` are built (they need
//! only `tresor-sdk` and `tresor-policy`).

mod harness;
pub use harness::{Engine, MemStorage, RT, Session, obj, request};

mod fields_duration;
mod policy;
pub use fields_duration::fields_duration;
pub use policy::policy;

#[cfg(feature = "engines")]
mod engines {
    pub mod agent_config;
    pub mod agent_template;
    pub mod database;
    pub mod http_request;
    pub mod jwt;
    pub mod ldap;
    pub mod pgp_keys;
    pub mod pki_ocsp;
    pub mod server_config;
    pub mod ssh;
    pub mod totp;
    pub mod transit;
    pub mod x509;
}
#[cfg(feature = "engines")]
pub use engines::{
    agent_config::agent_config, agent_template::agent_template, database::database,
    http_request::http_request, jwt::jwt, ldap::ldap, pgp_keys::pgp_keys, pki_ocsp::pki_ocsp,
    server_config::server_config, ssh::ssh, totp::totp, transit::transit, x509::x509,
};

/// A target's body.
pub type Target = fn(&[u8]);

/// Every target: its name (the directory of its corpus) and its function.
pub const TARGETS: &[(&str, Target)] = &[
    ("policy", policy),
    ("fields_duration", fields_duration),
    #[cfg(feature = "engines")]
    ("http_request", http_request),
    #[cfg(feature = "engines")]
    ("server_config", server_config),
    #[cfg(feature = "engines")]
    ("x509", x509),
    #[cfg(feature = "engines")]
    ("pki_ocsp", pki_ocsp),
    #[cfg(feature = "engines")]
    ("pgp_keys", pgp_keys),
    #[cfg(feature = "engines")]
    ("transit", transit),
    #[cfg(feature = "engines")]
    ("ssh", ssh),
    #[cfg(feature = "engines")]
    ("totp", totp),
    #[cfg(feature = "engines")]
    ("jwt", jwt),
    #[cfg(feature = "engines")]
    ("database", database),
    #[cfg(feature = "engines")]
    ("agent_config", agent_config),
    #[cfg(feature = "engines")]
    ("agent_template", agent_template),
    #[cfg(feature = "engines")]
    ("ldap", ldap),
];
