//! Vault's SSH secrets engine: an SSH certificate authority and one-time passwords.
//!
//! Module map: `keys` (CA keys, signing on aws-lc-rs, user key checks, generated key pairs),
//! `pem` (PEM and the little DER read), `store` (storage layout and versioned records),
//! `engine` (shared state and helpers: issuer lookup, names, OTP salt), `issuers`
//! (`config/ca`, `issuers`, `issuer/:ref`, `config/issuers`, `public_key`), `roles`,
//! `sign` (`sign/:role`, `issue/:role`), `otp` (`creds`, `verify`, `lookup`,
//! `config/zeroaddress`). This file holds the path table.
//!
//! Differences from Vault, all deliberate: RSA keys under 2048 bits are never signed, and
//! `algorithm_signer=ssh-rsa` (SHA-1) is refused (OpenSSH 8.8+ rejects such certificates);
//! RSA CA keys in OpenSSH's own private key format are refused on import (PKCS#1, PKCS#8
//! and OpenSSH Ed25519/ECDSA keys are accepted); the removed dynamic-key mode and
//! `tidy/dynamic-keys` do not exist.

#![forbid(unsafe_code)]

mod engine;
mod inputs;
mod issuers;
mod keys;
mod otp;
mod pem;
mod roles;
mod sign;
mod store;

use std::sync::Arc;

use tresor_sdk::clock::{Clock, SystemClock};
use tresor_sdk::framework::{Path, SecretType, Table, TableBackend};
use tresor_sdk::{LogicalBackend, Operation, SpecialPaths};

use engine::Engine;

macro_rules! h {
    ($method:ident) => {
        |e, r, fl| Box::pin(async move { e.$method(r, fl).await })
    };
}

/// The engine, ready to mount.
pub fn backend() -> Arc<dyn LogicalBackend> {
    backend_with_clock(Arc::new(SystemClock))
}

/// The engine reading time from `clock` (tests pass a clock they control).
pub fn backend_with_clock(clock: Arc<dyn Clock>) -> Arc<dyn LogicalBackend> {
    TableBackend::with_secrets(
        Engine { clock },
        table(),
        vec![SecretType {
            name: otp::SECRET_TYPE,
            renew: None,
            revoke: h!(revoke_otp),
        }],
    )
}

use inputs::*;

const BACKEND_HELP: &str = "
The SSH secrets engine signs SSH keys with a certificate authority (CA mode) and issues
one-time passwords for hosts running a verification helper (OTP mode).

CA mode: configure a CA key with config/ca (or several with issuers/import), publish its
public key (public_key, unauthenticated) as sshd's TrustedUserCAKeys or in an
@cert-authority known_hosts line, create roles with key_type=ca, then sign keys with
sign/:role or have a key pair generated and signed with issue/:role.";

fn table() -> Table<Engine> {
    use Operation::*;
    let role = Path::<Engine>::new("roles/{role}")
        .input::<RoleInput>()
        .existence(|e, r, fl| Box::pin(async move { e.role_exists(r, fl).await }))
        .op(Update, h!(role_write))
        .op(Read, h!(role_read))
        .op(Delete, h!(role_delete))
        .help(
            "Create, read or delete a role.",
            "A ca role decides what sign/ and issue/ may put in a certificate; an otp role decides which user and addresses creds/ issues one-time passwords for. A write replaces the whole role.",
        );
    let paths = vec![
        Path::<Engine>::new("config/ca")
            .input::<CaKeyInput>()
            .op(Update, h!(config_ca_write))
            .op(Read, h!(config_ca_read))
            .op(Delete, h!(config_ca_delete))
            .help(
                "Configure the CA key: generate or import one and make it the default issuer.",
                "A write adds an issuer and makes it the default; it is refused while a default issuer exists (delete first, or rotate with issuers/import and config/issuers). A read shows the default issuer's public key; a delete removes every issuer.",
            ),
        Path::<Engine>::new("config/issuers")
            .input::<DefaultIssuerInput>()
            .op(Read, h!(config_issuers_read))
            .op(Update, h!(config_issuers_write))
            .help("Read or set the default issuer.", "Roles whose issuer_ref is 'default' sign with this issuer."),
        Path::<Engine>::new("config/zeroaddress")
            .input::<ZeroAddressInput>()
            .op(Read, h!(zeroaddress_read))
            .op(Update, h!(zeroaddress_write))
            .op(Delete, h!(zeroaddress_delete))
            .help("Roles that accept any address.", "The listed OTP roles issue credentials for any IP address (exclude_cidr_list still applies)."),
        Path::<Engine>::new("public_key")
            .op(Read, h!(public_key))
            .help("The default issuer's public key.", "Plain text in authorized_keys form, for sshd's TrustedUserCAKeys or an @cert-authority line. No token needed."),
        Path::<Engine>::new("issuers")
            .op(List, h!(issuers_list))
            .help("List the issuers.", "Issuer ids, with each one's name, public key and whether it is the default."),
        Path::<Engine>::new("issuers/import")
            .input::<CaKeyInput>()
            .input::<ImportInput>()
            .op(Update, h!(issuers_import))
            .help("Add an issuer.", "Generates or imports a CA key as a new issuer."),
        Path::<Engine>::new("issuers/import/{issuer_name}")
            .input::<CaKeyInput>()
            .input::<ImportInput>()
            .op(Update, h!(issuers_import))
            .help("Add a named issuer.", "Generates or imports a CA key as a new issuer with this name."),
        Path::<Engine>::new("issuer/{issuer_ref}/public_key")
            .input::<IssuerRefInput>()
            .op(Read, h!(issuer_public_key))
            .help("An issuer's public key.", "Plain text in authorized_keys form. No token needed."),
        Path::<Engine>::new("issuer/{issuer_ref}")
            .input::<IssuerInput>()
            .op(Read, h!(issuer_read))
            .op(Update, h!(issuer_update))
            .op(Delete, h!(issuer_delete))
            .help("Read, rename or delete an issuer.", "Deleting the default issuer leaves the mount without one until config/issuers names another."),
        Path::<Engine>::new("roles")
            .op(List, h!(role_list))
            .help("List the roles.", "Role names, with each one's key_type in key_info."),
        role,
        Path::<Engine>::new("sign/{role}")
            .input::<CertRequest>()
            .input::<SignInput>()
            .op(Update, h!(sign))
            .help("Sign an SSH public key.", "Returns the certificate (signed_key) and its serial number. The role decides the principals, extensions, critical options, key types and sizes, and lifetime allowed."),
        Path::<Engine>::new("issue/{role}")
            .input::<CertRequest>()
            .input::<IssueInput>()
            .op(Update, h!(issue))
            .help("Generate a key pair and sign it.", "Like sign/, with a key pair generated here; the private key is returned once and not stored."),
        Path::<Engine>::new("creds/{role}")
            .input::<CredsInput>()
            .op(Update, h!(creds))
            .help("Issue a one-time password.", "For otp roles: an OTP for the user on the host, spent by the host's verify call. The lease's revocation deletes an unused OTP."),
        Path::<Engine>::new("verify")
            .input::<VerifyInput>()
            .op(Update, h!(verify))
            .help("Verify and spend a one-time password.", "Returns the user, address and role the OTP was issued for; an OTP verifies once. No token needed."),
        Path::<Engine>::new("lookup")
            .input::<LookupInput>()
            .op(Update, h!(lookup))
            .help("The OTP roles an address belongs to.", "Roles whose cidr_list holds the address (or zero-address roles), minus their exclude_cidr_list."),
    ];
    Table {
        paths,
        special: SpecialPaths {
            unauthenticated: vec![
                "verify".into(),
                "public_key".into(),
                "issuer/+/public_key".into(),
            ],
            root: Vec::new(),
        },
        help: BACKEND_HELP,
    }
}
