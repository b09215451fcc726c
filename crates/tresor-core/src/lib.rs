//! Tresor's core: the seal state, the barrier, mount tables and the router, the token and
//! policy stores, and the one request pipeline every logical request passes through.
//!
//! Layering: the core depends on the SDK, never on an engine crate; engines are registered as
//! factories by the binary ([`Core::register_engine`]). Only the HTTP crate knows status codes.

#![forbid(unsafe_code)]

pub mod activity;
pub mod audit;
mod audit_entry;
pub mod barrier;
mod control;
mod core;
mod cubbyhole;
pub mod diagnostics;
pub mod error;
pub mod expiration;
pub mod governing;
pub mod ha;
pub mod hooks;
pub mod identity;
mod identity_backend;
mod identity_mfa;
mod identity_oidc;
mod identity_provider;
mod invalidate;
mod join;
mod leases;
pub mod mfa;
pub mod mounts;
pub mod policies;
pub mod quotas;
pub mod seal;
pub mod seal_ops;
pub mod snapshot;
mod snapshot_auto;
mod system;
mod system_audit;
mod system_catalog;
mod system_counters;
mod system_governing;
mod system_leases;
mod system_ops;
mod system_password;
mod system_tools;
pub mod telemetry;
mod token_backend;
pub mod tokens;
mod wrapping;

pub use crate::core::{
    BUILD_DATE, Core, CoreConfig, CoreRequest, CoreResponse, EngineFactory, InitRequest,
    InitResult, SealStatus, Unsealed, VERSION,
};
pub use error::CoreError;
