//! Vault's ACL policy language for Tresor: parse once, compile once, check fast.
//!
//! * [`parse_policy`] reads HCL or JSON policy text into a [`Policy`], rejecting anything Vault
//!   would not accept with an error that names the key, path and line.
//! * [`Acl::new`] merges a token's policies into lookup structures; [`Acl::root`] is the root
//!   token's ACL.
//! * [`Acl::allow_operation`] decides one request without allocating; [`Acl::capabilities`]
//!   answers `sys/capabilities`, [`resultant_acl`] `sys/internal/ui/resultant-acl`.
//!
//! Deny by default: with no matching rule, nothing is allowed.
//!
//! Not here yet: identity templating in paths (`{{identity.entity.id}}` rules are skipped),
//! and Vault Enterprise keys (`mfa_methods`, `control_group`), which are rejected as unknown.

#![forbid(unsafe_code)]

mod acl;
mod capability;
mod default_policy;
pub mod hcl1;
mod policy;

pub use acl::{Acl, AclResult, Authorized, DeniedReason, resultant_acl};
pub use capability::{
    Capabilities, CapabilitiesIter, Capability, Operation, Requirement, UnknownCapability,
    checks_parameters, requirement,
};
pub use default_policy::DEFAULT_POLICY;
pub use policy::{ErrorLocation, PathRule, Policy, PolicyError, parse_policy};
