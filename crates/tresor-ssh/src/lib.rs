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
mod issuers;
mod keys;
mod otp;
mod pem;
mod roles;
mod sign;
mod store;

use std::sync::Arc;

use serde_json::json;
use tresor_sdk::clock::{Clock, SystemClock};
use tresor_sdk::framework::{Field, Kind, Path, SecretType, Table, TableBackend};
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

fn f(name: &'static str, kind: Kind, desc: &'static str) -> Field {
    Field::new(name, kind, desc)
}

fn role_field() -> Field {
    f(
        "role",
        Kind::Str,
        "Name of the role: letters, digits, '_', '-', '.' and '@'.",
    )
}

fn issuer_ref() -> Field {
    f(
        "issuer_ref",
        Kind::Str,
        "An issuer: its id, its name, or 'default'.",
    )
}

/// The fields that generate or import a CA key (`config/ca`, `issuers/import`).
fn key_fields(p: Path<Engine>) -> Path<Engine> {
    p.field(
        f(
            "generate_signing_key",
            Kind::Bool,
            "Generate the CA key pair here (the default when no private_key is given).",
        )
        .default(json!(true)),
    )
    .field(f(
        "key_type",
        Kind::Str,
        "Type of key to generate: ssh-rsa (default), ecdsa-sha2-nistp256, ecdsa-sha2-nistp384, ecdsa-sha2-nistp521, ssh-ed25519, or rsa, ec, ed25519.",
    ).default(json!("ssh-rsa")))
    .field(f(
        "key_bits",
        Kind::Int,
        "Size of the generated key: RSA 2048, 3072 or 4096 (default 4096); EC 256, 384 or 521 (default 256).",
    ))
    .field(f(
        "private_key",
        Kind::Str,
        "A CA private key to import, in PEM: PKCS#8, PKCS#1 (RSA), SEC1 (EC), or an unencrypted OpenSSH Ed25519 or ECDSA key.",
    ))
    .field(f(
        "public_key",
        Kind::Str,
        "The public half of private_key (optional; checked against it when given).",
    ))
}

fn cert_fields(p: Path<Engine>) -> Path<Engine> {
    p.field(f(
        "valid_principals",
        Kind::List,
        "Users (user certificates) or host names (host certificates) the certificate names; each must be allowed by the role. Empty: the role's default_user.",
    ))
    .field(f(
        "cert_type",
        Kind::Str,
        "user (default) or host.",
    ).default(json!("user")))
    .field(f(
        "key_id",
        Kind::Str,
        "Key ID of the certificate; honoured only when the role has allow_user_key_ids.",
    ))
    .field(f(
        "ttl",
        Kind::Duration,
        "Requested lifetime; defaults to the role's ttl and is capped at its max_ttl (or the mount's).",
    ))
    .field(f(
        "critical_options",
        Kind::StrMap,
        "Critical options to set; each must be in the role's allowed_critical_options (empty: any). None given: the role's defaults.",
    ))
    .field(f(
        "extensions",
        Kind::StrMap,
        "Extensions to set; each must be in the role's allowed_extensions ('*': any; empty: none). None given: the role's defaults.",
    ))
}

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
        .field(role_field())
        .field(f("key_type", Kind::Str, "ca or otp."))
        .field(f("default_user", Kind::Str, "User the certificate or OTP is for when the request names none (required for otp roles). For ca roles it must also be in allowed_users to be used."))
        .field(f("default_user_template", Kind::Bool, "default_user may contain identity templates."))
        .field(f("allowed_users", Kind::Str, "Comma-separated users that may be named ('*': any)."))
        .field(f("allowed_users_template", Kind::Bool, "allowed_users may contain identity templates ({{identity.entity.name}}, ...), rendered for the caller."))
        .field(f("allowed_domains", Kind::Str, "Comma-separated domains host certificates may name ('*': any)."))
        .field(f("allowed_domains_template", Kind::Bool, "allowed_domains may contain identity templates."))
        .field(f("allow_user_certificates", Kind::Bool, "The role signs user certificates."))
        .field(f("allow_host_certificates", Kind::Bool, "The role signs host certificates."))
        .field(f("allow_subdomains", Kind::Bool, "Host certificates may name subdomains of allowed_domains."))
        .field(f("allow_bare_domains", Kind::Bool, "Host certificates may name allowed_domains themselves."))
        .field(f("allow_empty_principals", Kind::Bool, "Sign certificates valid for any principal when none is requested or defaulted (dangerous)."))
        .field(f("allowed_extensions", Kind::Str, "Comma-separated extensions a request may set ('*': any; empty: none)."))
        .field(f("default_extensions", Kind::StrMap, "Extensions set when the request sets none, e.g. {\"permit-pty\": \"\"}."))
        .field(f("default_extensions_template", Kind::Bool, "Values of default_extensions may contain identity templates."))
        .field(f("allowed_critical_options", Kind::Str, "Comma-separated critical options a request may set (empty: any)."))
        .field(f("default_critical_options", Kind::StrMap, "Critical options set when the request sets none."))
        .field(f("allowed_user_key_lengths", Kind::Map, "Key types (rsa, ec, ed25519) and the sizes allowed for each, e.g. {\"rsa\": [3072, 4096]}. Empty: any type (RSA at least 2048 bits)."))
        .field(f("algorithm_signer", Kind::Str, "Signature hash for RSA CA keys: default (rsa-sha2-256), rsa-sha2-256 or rsa-sha2-512. ssh-rsa (SHA-1) is refused."))
        .field(f("key_id_format", Kind::Str, "Key ID template: {{token_display_name}}, {{role_name}}, {{public_key_hash}}. Default vault-{{token_display_name}}-{{public_key_hash}}."))
        .field(f("ttl", Kind::Duration, "Default certificate lifetime (default: the mount's)."))
        .field(f("max_ttl", Kind::Duration, "Longest certificate lifetime (default: the mount's)."))
        .field(f("not_before_duration", Kind::Duration, "How far before now certificates become valid, for clock skew (default 30s)."))
        .field(f("allow_user_key_ids", Kind::Bool, "Requests may set the certificate's key_id."))
        .field(issuer_ref())
        .field(f("cidr_list", Kind::Str, "OTP roles: comma-separated CIDR blocks the role's hosts are in."))
        .field(f("exclude_cidr_list", Kind::Str, "OTP roles: comma-separated CIDR blocks excluded from cidr_list."))
        .field(f("port", Kind::Int, "OTP roles: the SSH port of the hosts (default 22)."))
        .existence(|e, r, fl| Box::pin(async move { e.role_exists(r, fl).await }))
        .op(Update, h!(role_write))
        .op(Read, h!(role_read))
        .op(Delete, h!(role_delete))
        .help(
            "Create, read or delete a role.",
            "A ca role decides what sign/ and issue/ may put in a certificate; an otp role decides which user and addresses creds/ issues one-time passwords for. A write replaces the whole role.",
        );
    let paths = vec![
        key_fields(Path::<Engine>::new("config/ca"))
            .op(Update, h!(config_ca_write))
            .op(Read, h!(config_ca_read))
            .op(Delete, h!(config_ca_delete))
            .help(
                "Configure the CA key: generate or import one and make it the default issuer.",
                "A write adds an issuer and makes it the default (earlier issuers remain, so a CA can rotate); a read shows the default issuer's public key; a delete removes every issuer.",
            ),
        Path::<Engine>::new("config/issuers")
            .field(f("default", Kind::Str, "The issuer (id or name) roles naming 'default' sign with."))
            .op(Read, h!(config_issuers_read))
            .op(Update, h!(config_issuers_write))
            .help("Read or set the default issuer.", "Roles whose issuer_ref is 'default' sign with this issuer."),
        Path::<Engine>::new("config/zeroaddress")
            .field(f("roles", Kind::List, "OTP roles that accept any client address."))
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
        key_fields(Path::<Engine>::new("issuers/import"))
            .field(f("issuer_name", Kind::Str, "Optional name of the issuer."))
            .field(f("set_default", Kind::Bool, "Make this issuer the default (the first issuer always is)."))
            .op(Update, h!(issuers_import))
            .help("Add an issuer.", "Generates or imports a CA key as a new issuer."),
        key_fields(Path::<Engine>::new("issuers/import/{issuer_name}"))
            .field(f("issuer_name", Kind::Str, "Name of the issuer."))
            .field(f("set_default", Kind::Bool, "Make this issuer the default (the first issuer always is)."))
            .op(Update, h!(issuers_import))
            .help("Add a named issuer.", "Generates or imports a CA key as a new issuer with this name."),
        Path::<Engine>::new("issuer/{issuer_ref}/public_key")
            .field(issuer_ref())
            .op(Read, h!(issuer_public_key))
            .help("An issuer's public key.", "Plain text in authorized_keys form. No token needed."),
        Path::<Engine>::new("issuer/{issuer_ref}")
            .field(issuer_ref())
            .field(f("issuer_name", Kind::Str, "New name of the issuer."))
            .op(Read, h!(issuer_read))
            .op(Update, h!(issuer_update))
            .op(Delete, h!(issuer_delete))
            .help("Read, rename or delete an issuer.", "Deleting the default issuer leaves the mount without one until config/issuers names another."),
        Path::<Engine>::new("roles")
            .op(List, h!(role_list))
            .help("List the roles.", "Role names, with each one's key_type in key_info."),
        role,
        cert_fields(Path::<Engine>::new("sign/{role}"))
            .field(role_field())
            .field(f("public_key", Kind::Str, "The SSH public key to sign (authorized_keys form).").required())
            .op(Update, h!(sign))
            .help("Sign an SSH public key.", "Returns the certificate (signed_key) and its serial number. The role decides the principals, extensions, critical options, key types and sizes, and lifetime allowed."),
        cert_fields(Path::<Engine>::new("issue/{role}"))
            .field(role_field())
            .field(f("key_type", Kind::Str, "Type of key pair to generate: rsa (default), ec, ed25519 (or OpenSSH names).").default(json!("rsa")))
            .field(f("key_bits", Kind::Int, "Size: RSA 2048, 3072 (default) or 4096; EC 256 (default), 384 or 521."))
            .op(Update, h!(issue))
            .help("Generate a key pair and sign it.", "Like sign/, with a key pair generated here; the private key is returned once and not stored."),
        Path::<Engine>::new("creds/{role}")
            .field(role_field())
            .field(f("ip", Kind::Str, "Address of the host the OTP is for.").required())
            .field(f("username", Kind::Str, "User on the host (default: the role's default_user)."))
            .op(Update, h!(creds))
            .help("Issue a one-time password.", "For otp roles: an OTP for the user on the host, spent by the host's verify call. The lease's revocation deletes an unused OTP."),
        Path::<Engine>::new("verify")
            .field(f("otp", Kind::Str, "The one-time password.").required())
            .op(Update, h!(verify))
            .help("Verify and spend a one-time password.", "Returns the user, address and role the OTP was issued for; an OTP verifies once. No token needed."),
        Path::<Engine>::new("lookup")
            .field(f("ip", Kind::Str, "An IP address.").required())
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
