//! Vault's PKI secrets engine: a certificate authority behind Vault's API, mountable any
//! number of times (`pki/`, `etcd/<cluster>/pki/`, ...).
//!
//! Module map: [`keys`] (key generation, parsing, signing), [`x509`] (certificates, CSRs and
//! CRLs built and read), [`pem`], [`names`] (which names a role allows), `roles`, `issuers`
//! (CA setup and the multi-issuer API), `issue` (issue and sign), `crl` (revocation and
//! CRLs), `ocsp`, `fetch` (reading certificates back), `tidy`, `store` (storage layout).
//!
//! `POST ocsp` receives its DER body (`application/ocsp-request`) from the HTTP edge as the
//! request's raw body.

#![forbid(unsafe_code)]

pub mod clock;
mod crl;
mod fetch;
mod issue;
mod issuers;
pub mod keys;
pub mod names;
mod ocsp;
pub mod pem;
mod roles;
mod store;
mod tidy;
pub mod x509;

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use serde_json::{Map, Value, json};
use tresor_sdk::framework::{Field, Kind, Path, Table};
use tresor_sdk::{
    LogicalBackend, LogicalError, Operation, Request, Response, Result, SpecialPaths,
};

pub use clock::{Clock, SystemClock};

/// An invalid-request error.
pub(crate) fn bad(msg: impl Into<String>) -> LogicalError {
    LogicalError::InvalidRequest(msg.into())
}

/// State shared by every request to every PKI mount served by this backend.
pub(crate) struct Engine {
    clock: Arc<dyn Clock>,
    locks: parking_lot::Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    issuers: parking_lot::Mutex<HashMap<String, issuers::CachedIssuer>>,
    tidy: parking_lot::Mutex<HashMap<String, tidy::TidyStatus>>,
    auto_tidy: parking_lot::Mutex<HashMap<String, (store::AutoTidyConfig, i64)>>,
}

impl Engine {
    fn new(clock: Arc<dyn Clock>) -> Self {
        Engine {
            clock,
            locks: Default::default(),
            issuers: Default::default(),
            tidy: Default::default(),
            auto_tidy: Default::default(),
        }
    }

    pub(crate) fn now(&self) -> i64 {
        clock::unix(self.clock.now())
    }

    /// Names the mount a request belongs to (its accessor, else its path).
    pub(crate) fn mount_id(&self, req: &Request) -> String {
        if req.mount.mount_accessor.is_empty() {
            req.mount.mount_point.clone()
        } else {
            req.mount.mount_accessor.clone()
        }
    }

    /// Serialises writers of one resource (`issuers`, `crl/<issuer>`) within a mount.
    pub(crate) async fn lock(&self, req: &Request, name: &str) -> tokio::sync::OwnedMutexGuard<()> {
        let key = format!("{}\u{0}{name}", self.mount_id(req));
        let m = self.locks.lock().entry(key).or_default().clone();
        m.lock_owned().await
    }
}

/// The PKI engine on the system clock.
pub fn backend() -> Arc<dyn LogicalBackend> {
    backend_with_clock(Arc::new(SystemClock))
}

/// The PKI engine reading time from `clock` (tests pass a clock they control).
pub fn backend_with_clock(clock: Arc<dyn Clock>) -> Arc<dyn LogicalBackend> {
    Arc::new(Pki {
        engine: Arc::new(Engine::new(clock)),
        table: table(),
    })
}

struct Pki {
    engine: Arc<Engine>,
    table: Table<Engine>,
}

#[async_trait]
impl LogicalBackend for Pki {
    async fn handle(&self, req: Request) -> Result<Option<Response>> {
        if req.operation == Operation::Help {
            let help = self
                .table
                .help(&req.path)
                .ok_or(LogicalError::UnsupportedPath)?;
            return Ok(Some(Response::data(help)));
        }
        self.table.handle(self.engine.clone(), req).await
    }

    /// Auto-tidy runs here, on the core's schedule (active node only), not on requests.
    async fn periodic(&self, ctx: &tresor_sdk::Context) -> Result<()> {
        let req = ctx.request(Operation::Update, "tidy");
        self.engine
            .maybe_auto_tidy(&req, clock::unix(ctx.now))
            .await;
        Ok(())
    }

    async fn exists(&self, req: &Request) -> Result<Option<bool>> {
        self.table.exists(self.engine.clone(), req).await
    }

    fn special_paths(&self) -> SpecialPaths {
        self.table.special.clone()
    }

    fn help(&self, path: &str) -> Option<Map<String, Value>> {
        self.table.help(path)
    }

    fn openapi_paths(&self) -> Map<String, Value> {
        self.table.openapi_paths()
    }

    /// A certificate issued with `generate_lease` is revoked when its lease is.
    async fn revoke_secret(&self, req: Request) -> Result<Option<Response>> {
        let serial = req
            .secret
            .as_ref()
            .and_then(|s| s.internal_data.get("serial_number"))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        if serial.is_empty() {
            return Ok(None);
        }
        self.engine
            .revoke_cert(&req, &serial, "", None)
            .await
            .map(|_| None)
    }

    async fn renew_secret(&self, _req: Request) -> Result<Option<Response>> {
        Err(bad("certificate leases cannot be renewed"))
    }
}

// ---------------------------------------------------------------------------------------------
// The path table.

fn f(name: &'static str, kind: Kind, desc: &'static str) -> Field {
    Field::new(name, kind, desc)
}

fn subject_fields() -> Vec<Field> {
    vec![
        f("common_name", Kind::Str, "the requested common name"),
        f(
            "alt_names",
            Kind::List,
            "DNS and email subject alternative names",
        ),
        f("ip_sans", Kind::List, "IP subject alternative names"),
        f("uri_sans", Kind::List, "URI subject alternative names"),
        f("other_sans", Kind::List, "other SANs as <oid>;UTF8:<value>"),
        f("ou", Kind::List, "subject OU"),
        f("organization", Kind::List, "subject O"),
        f("country", Kind::List, "subject C"),
        f("locality", Kind::List, "subject L"),
        f("province", Kind::List, "subject ST"),
        f("street_address", Kind::List, "subject street address"),
        f("postal_code", Kind::List, "subject postal code"),
        f("serial_number", Kind::Str, "subject serial number"),
        f(
            "exclude_cn_from_sans",
            Kind::Bool,
            "keep the common name out of the SANs",
        ),
        f("ttl", Kind::Duration, "requested time to live"),
        f("not_after", Kind::Str, "requested NotAfter (RFC 3339)"),
        f("format", Kind::Str, "pem, der or pem_bundle").default(json!("pem")),
        f("private_key_format", Kind::Str, "der, pem or pkcs8"),
        f(
            "not_before_duration",
            Kind::Duration,
            "backdating of NotBefore",
        )
        .default(json!(30)),
        f("signature_bits", Kind::Int, "hash size of RSA signatures"),
        f("use_pss", Kind::Bool, "RSA-PSS signatures (not supported)"),
    ]
}

fn ca_fields() -> Vec<Field> {
    let mut v = subject_fields();
    v.extend([
        f("exported", Kind::Str, "internal, exported, existing or kms"),
        f("key_type", Kind::Str, "rsa, ec or ed25519").default(json!("rsa")),
        f("key_bits", Kind::Int, "key size"),
        f("key_name", Kind::Str, "name of the new key"),
        f("key_ref", Kind::Str, "existing key to use").default(json!("default")),
        f("issuer_name", Kind::Str, "name of the new issuer"),
        f(
            "max_path_length",
            Kind::Int,
            "path length constraint; -1 for none",
        )
        .default(json!(-1)),
        f(
            "permitted_dns_domains",
            Kind::List,
            "name constraints: permitted DNS domains",
        ),
        f(
            "excluded_dns_domains",
            Kind::List,
            "name constraints: excluded DNS domains",
        ),
        f(
            "add_basic_constraints",
            Kind::Bool,
            "ask for CA basic constraints in the CSR",
        ),
        f(
            "managed_key_name",
            Kind::Str,
            "managed keys (not supported)",
        ),
        f("managed_key_id", Kind::Str, "managed keys (not supported)"),
    ]);
    v
}

/// The issuer that signs, on the `issuer/:issuer_ref/...` forms only (part of the URL, where
/// ACLs see it); the `root/...` forms sign with the default issuer, as in Vault, and ignore
/// an `issuer_ref` in the body with the unrecognized-parameter warning.
fn issuer_in_url(v: &mut Vec<Field>, issuer_in_path: bool) {
    if issuer_in_path {
        v.push(f(
            "issuer_ref",
            Kind::Str,
            "issuer that signs (part of the URL)",
        ));
    }
}

fn sign_intermediate_fields(issuer_in_path: bool) -> Vec<Field> {
    let mut v = subject_fields();
    issuer_in_url(&mut v, issuer_in_path);
    v.extend([
        f("csr", Kind::Str, "PEM CSR of the intermediate").required(),
        f(
            "use_csr_values",
            Kind::Bool,
            "take subject and SANs from the CSR",
        ),
        f("max_path_length", Kind::Int, "path length constraint").default(json!(-1)),
        f(
            "permitted_dns_domains",
            Kind::List,
            "name constraints: permitted DNS domains",
        ),
        f(
            "excluded_dns_domains",
            Kind::List,
            "name constraints: excluded DNS domains",
        ),
        f("skid", Kind::Str, "subject key identifier to use (hex)"),
    ]);
    v
}

fn self_issued_fields(issuer_in_path: bool) -> Vec<Field> {
    let mut v = vec![
        f(
            "certificate",
            Kind::Str,
            "PEM of the self-issued CA certificate",
        )
        .required(),
        f(
            "require_matching_certificate_algorithms",
            Kind::Bool,
            "refuse a certificate whose key algorithm differs from the issuer's",
        ),
    ];
    issuer_in_url(&mut v, issuer_in_path);
    v
}

/// The fields of the issue and sign paths. Only the `issuer/:issuer_ref/...` forms name an
/// issuer, in their URL, where ACLs can see it; on `issue/:role`, `sign/:role` and
/// `sign-verbatim[/:role]` the role chooses, and an `issuer_ref` in the body is ignored with
/// Vault's unrecognized-parameter warning.
fn leaf_fields(issuer_in_path: bool) -> Vec<Field> {
    let mut v = subject_fields();
    issuer_in_url(&mut v, issuer_in_path);
    v.extend([
        f("role", Kind::Str, "the role"),
        f("csr", Kind::Str, "PEM CSR to sign"),
        f(
            "remove_roots_from_chain",
            Kind::Bool,
            "leave self-signed roots out of ca_chain",
        ),
        f("user_ids", Kind::List, "user ids"),
        f("key_usage", Kind::List, "key usages (sign-verbatim)").default(json!([
            "DigitalSignature",
            "KeyAgreement",
            "KeyEncipherment"
        ])),
        f(
            "ext_key_usage",
            Kind::List,
            "extended key usages (sign-verbatim)",
        ),
        f(
            "ext_key_usage_oids",
            Kind::List,
            "extended key usage OIDs (sign-verbatim)",
        ),
    ]);
    v
}

/// A path of this engine's table.
fn p(pattern: &'static str) -> Path<Engine> {
    Path::new(pattern)
}

fn with(mut p: Path<Engine>, fields: Vec<Field>) -> Path<Engine> {
    for x in fields {
        p = p.field(x);
    }
    p
}

macro_rules! h {
    ($method:ident) => {
        |e, r, fl| Box::pin(async move { e.$method(r, fl).await })
    };
}

fn issuer_update_fields() -> Vec<Field> {
    vec![
        f("issuer_ref", Kind::Str, "issuer reference"),
        f("issuer_name", Kind::Str, "issuer name"),
        f(
            "leaf_not_after_behavior",
            Kind::Str,
            "err, truncate or permit",
        ),
        f(
            "usage",
            Kind::List,
            "read-only, issuing-certificates, crl-signing, ocsp-signing",
        ),
        f("manual_chain", Kind::List, "issuer ids of the chain"),
        f(
            "revocation_signature_algorithm",
            Kind::Str,
            "CRL signature algorithm",
        ),
        f(
            "issuing_certificates",
            Kind::List,
            "AIA issuing certificate URLs",
        ),
        f(
            "crl_distribution_points",
            Kind::List,
            "CRL distribution points",
        ),
        f("ocsp_servers", Kind::List, "OCSP servers"),
        f(
            "enable_aia_url_templating",
            Kind::Bool,
            "AIA URL templating",
        ),
    ]
}

fn table() -> Table<Engine> {
    use Operation::*;
    let tidy_fields = || {
        vec![
            f("tidy_cert_store", Kind::Bool, "remove expired certificates"),
            f(
                "tidy_revoked_certs",
                Kind::Bool,
                "remove expired revoked certificates",
            ),
            f(
                "tidy_revoked_cert_issuer_associations",
                Kind::Bool,
                "check revocation issuers",
            ),
            f(
                "tidy_expired_issuers",
                Kind::Bool,
                "remove expired issuers (not supported)",
            ),
            f(
                "safety_buffer",
                Kind::Duration,
                "keep certificates this long past expiry",
            )
            .default(json!(72 * 3600)),
            f(
                "issuer_safety_buffer",
                Kind::Duration,
                "issuer safety buffer",
            )
            .default(json!(365 * 24 * 3600)),
            f("pause_duration", Kind::Str, "pause between certificates"),
            f("enabled", Kind::Bool, "auto-tidy enabled"),
            f("interval_duration", Kind::Duration, "auto-tidy interval").default(json!(12 * 3600)),
        ]
    };
    let paths = vec![
        with(p("root/generate/{exported}"), ca_fields())
            .op(Update, h!(root_generate))
            .help("Generate a self-signed root CA", ""),
        with(p("issuers/generate/root/{exported}"), ca_fields())
            .op(Update, h!(root_generate))
            .help("Generate a self-signed root CA", ""),
        with(p("root/sign-intermediate"), sign_intermediate_fields(false))
            .op(Update, h!(sign_intermediate))
            .help("Sign an intermediate CA's CSR", ""),
        with(
            p("issuer/{issuer_ref}/sign-intermediate"),
            sign_intermediate_fields(true),
        )
        .op(Update, h!(sign_intermediate))
        .help("Sign an intermediate CA's CSR with this issuer", ""),
        with(p("root/sign-self-issued"), self_issued_fields(false))
            .op(Update, h!(sign_self_issued))
            .help(
                "Sign a self-issued CA certificate with the default issuer",
                "",
            ),
        with(
            p("issuer/{issuer_ref}/sign-self-issued"),
            self_issued_fields(true),
        )
        .op(Update, h!(sign_self_issued))
        .help("Sign a self-issued CA certificate with this issuer", ""),
        p("issuer/{issuer_ref}/revoke")
            .op(Update, h!(issuer_revoke))
            .help("Revoke this issuer", ""),
        p("root/replace")
            .field(f("default", Kind::Str, "the new default issuer").default(json!("next")))
            .op(Update, h!(config_issuers_write))
            .help("Replace the default issuer", ""),
        p("root")
            .op(Delete, h!(delete_root))
            .help("Delete every issuer and key of this mount", ""),
        with(p("intermediate/generate/{exported}"), ca_fields())
            .op(Update, h!(intermediate_generate))
            .help("Generate an intermediate CA key and CSR", ""),
        with(p("issuers/generate/intermediate/{exported}"), ca_fields())
            .op(Update, h!(intermediate_generate))
            .help("Generate an intermediate CA key and CSR", ""),
        p("intermediate/set-signed")
            .field(
                f(
                    "certificate",
                    Kind::Str,
                    "the signed intermediate (and chain), PEM",
                )
                .required(),
            )
            .op(Update, h!(set_signed))
            .help("Import the signed intermediate certificate", ""),
        p("config/ca")
            .field(
                f(
                    "pem_bundle",
                    Kind::Str,
                    "PEM bundle: key, certificate, chain",
                )
                .required(),
            )
            .op(Update, h!(import_pem_bundle))
            .help("Import a CA bundle", ""),
        p("issuers/import/bundle")
            .field(
                f(
                    "pem_bundle",
                    Kind::Str,
                    "PEM bundle: keys and CA certificates",
                )
                .required(),
            )
            .op(Update, h!(import_pem_bundle))
            .help("Import issuers and keys", ""),
        p("issuers/import/cert")
            .field(f("pem_bundle", Kind::Str, "PEM CA certificates").required())
            .op(Update, h!(import_pem_bundle))
            .help("Import issuers", ""),
        p("issuers")
            .op(List, h!(issuers_list))
            .help("List issuers", ""),
        with(p("issuer/{issuer_ref}/issue/{role}"), leaf_fields(true))
            .op(Update, h!(issue))
            .help("Issue a certificate with this issuer", ""),
        with(p("issuer/{issuer_ref}/sign/{role}"), leaf_fields(true))
            .op(Update, h!(sign))
            .help("Sign a CSR with this issuer", ""),
        with(
            p("issuer/{issuer_ref}/sign-verbatim/{role}"),
            leaf_fields(true),
        )
        .op(Update, h!(sign_verbatim))
        .help("Sign a CSR verbatim with this issuer", ""),
        with(p("issuer/{issuer_ref}/sign-verbatim"), leaf_fields(true))
            .op(Update, h!(sign_verbatim))
            .help("Sign a CSR verbatim with this issuer", ""),
        p("issuer/{issuer_ref}/crl/{rest:*}")
            .op(Read, h!(issuer_crl_fetch))
            .help("This issuer's CRL", ""),
        p("issuer/{issuer_ref}/json")
            .op(Read, |e, r, fl| {
                Box::pin(async move { e.issuer_fetch(r, fl, "json").await })
            })
            .help("This issuer's certificate and chain", ""),
        p("issuer/{issuer_ref}/pem")
            .op(Read, |e, r, fl| {
                Box::pin(async move { e.issuer_fetch(r, fl, "pem").await })
            })
            .help("This issuer's certificate, PEM", ""),
        p("issuer/{issuer_ref}/der")
            .op(Read, |e, r, fl| {
                Box::pin(async move { e.issuer_fetch(r, fl, "der").await })
            })
            .help("This issuer's certificate, DER", ""),
        with(p("issuer/{issuer_ref}"), issuer_update_fields())
            .op(Read, h!(issuer_read))
            .op(Update, h!(issuer_update))
            .op(Patch, h!(issuer_update))
            .op(Delete, h!(issuer_delete))
            .help("Read, change or delete an issuer", ""),
        with(p("keys/generate/{exported}"), ca_fields())
            .op(Update, h!(keys_generate))
            .help("Generate a key", ""),
        p("keys/import")
            .field(f("pem_bundle", Kind::Str, "PEM private key").required())
            .field(f("key_name", Kind::Str, "name of the key"))
            .op(Update, h!(keys_import))
            .help("Import a key", ""),
        p("keys").op(List, h!(keys_list)).help("List keys", ""),
        p("key/{key_ref}")
            .field(f("key_name", Kind::Str, "name of the key"))
            .op(Read, h!(key_read))
            .op(Update, h!(key_update))
            .op(Delete, h!(key_delete))
            .help("Read, rename or delete a key", ""),
        p("config/issuers")
            .field(f("default", Kind::Str, "default issuer reference"))
            .field(f(
                "default_follows_latest_issuer",
                Kind::Bool,
                "new issuers become default",
            ))
            .op(Read, h!(config_issuers_read))
            .op(Update, h!(config_issuers_write))
            .help("The default issuer", ""),
        p("config/keys")
            .field(f("default", Kind::Str, "default key reference"))
            .op(Read, h!(config_keys_read))
            .op(Update, h!(config_keys_write))
            .help("The default key", ""),
        p("config/urls")
            .field(f(
                "issuing_certificates",
                Kind::List,
                "AIA issuing certificate URLs",
            ))
            .field(f(
                "crl_distribution_points",
                Kind::List,
                "CRL distribution point URLs",
            ))
            .field(f("ocsp_servers", Kind::List, "OCSP server URLs"))
            .field(f("enable_templating", Kind::Bool, "URL templating"))
            .op(Read, h!(urls_read))
            .op(Update, h!(urls_write))
            .help("URLs written into issued certificates", ""),
        p("config/cluster")
            .field(f("path", Kind::Str, "this mount's URL as clients reach it"))
            .field(f(
                "aia_path",
                Kind::Str,
                "this mount's URL for AIA information",
            ))
            .op(Read, h!(cluster_read))
            .op(Update, h!(cluster_write))
            .help("The mount's own URLs", ""),
        p("config/acme")
            .field(f(
                "enabled",
                Kind::Bool,
                "ACME (not supported; always false)",
            ))
            .field(f(
                "allowed_issuers",
                Kind::List,
                "ACME issuers (not supported)",
            ))
            .field(f("allowed_roles", Kind::List, "ACME roles (not supported)"))
            .field(f(
                "default_directory_policy",
                Kind::Str,
                "ACME directory policy (not supported)",
            ))
            .field(f(
                "eab_policy",
                Kind::Str,
                "ACME EAB policy (not supported)",
            ))
            .field(f(
                "dns_resolver",
                Kind::Str,
                "ACME DNS resolver (not supported)",
            ))
            .op(Read, h!(acme_read))
            .op(Update, h!(acme_write))
            .help(
                "ACME configuration: ACME is not supported, so it reads disabled",
                "",
            ),
        p("config/crl")
            .field(f("expiry", Kind::Duration, "CRL lifetime"))
            .field(f("disable", Kind::Bool, "serve empty CRLs"))
            .field(f("ocsp_disable", Kind::Bool, "turn the OCSP responder off"))
            .field(f("ocsp_expiry", Kind::Duration, "OCSP response lifetime"))
            .field(f(
                "auto_rebuild",
                Kind::Bool,
                "rebuild CRLs near expiry instead of on revoke",
            ))
            .field(f(
                "auto_rebuild_grace_period",
                Kind::Duration,
                "rebuild this long before expiry",
            ))
            .field(f("enable_delta", Kind::Bool, "build delta CRLs"))
            .field(f(
                "delta_rebuild_interval",
                Kind::Duration,
                "delta CRL rebuild interval",
            ))
            .field(f("cross_cluster_revocation", Kind::Bool, "not supported"))
            .field(f("unified_crl", Kind::Bool, "not supported"))
            .field(f(
                "unified_crl_on_existing_paths",
                Kind::Bool,
                "not supported",
            ))
            .op(Read, h!(config_crl_read))
            .op(Update, h!(config_crl_write))
            .help("CRL and OCSP configuration", ""),
        with(p("config/auto-tidy"), tidy_fields())
            .op(Read, h!(auto_tidy_read))
            .op(Update, h!(auto_tidy_write))
            .help("Automatic tidy", ""),
        p("roles").op(List, h!(role_list)).help("List roles", ""),
        with(p("roles/{name}"), roles::fields())
            .op(Read, h!(role_read))
            .op(Update, h!(role_write))
            .op(Patch, h!(role_write))
            .op(Delete, h!(role_delete))
            .existence(|e, r, fl| Box::pin(async move { e.role_exists(r, fl).await }))
            .help("Manage a role", ""),
        with(p("issue/{role}"), leaf_fields(false))
            .op(Update, h!(issue))
            .help("Issue a certificate and key under a role", ""),
        with(p("sign/{role}"), leaf_fields(false))
            .op(Update, h!(sign))
            .help("Sign a CSR under a role", ""),
        with(p("sign-verbatim/{role}"), leaf_fields(false))
            .op(Update, h!(sign_verbatim))
            .help("Sign a CSR verbatim", ""),
        with(p("sign-verbatim"), leaf_fields(false))
            .op(Update, h!(sign_verbatim))
            .help("Sign a CSR verbatim", ""),
        p("revoke")
            .field(f("serial_number", Kind::Str, "serial of the certificate"))
            .field(f("certificate", Kind::Str, "PEM of the certificate"))
            .op(Update, h!(revoke))
            .help("Revoke a certificate", ""),
        p("revoke-with-key")
            .field(f("serial_number", Kind::Str, "serial of the certificate"))
            .field(f("certificate", Kind::Str, "PEM of the certificate"))
            .field(f("private_key", Kind::Str, "PEM of its private key"))
            .op(Update, h!(revoke_with_key))
            .help("Revoke a certificate, proving possession of its key", ""),
        p("crl/rotate")
            .op(Read, h!(crl_rotate))
            .op(Update, h!(crl_rotate))
            .help("Rebuild the CRLs", ""),
        p("crl/rotate-delta")
            .op(Read, |e, r, fl| {
                Box::pin(async move { e.crl_rotate_delta(r, fl).await })
            })
            .op(Update, |e, r, fl| {
                Box::pin(async move { e.crl_rotate_delta(r, fl).await })
            })
            .help("Rebuild the delta CRLs", ""),
        p("crl/{rest:*}")
            .op(Read, h!(crl_fetch))
            .help("The default issuer's CRL", ""),
        p("ca/pem")
            .op(Read, |e, r, fl| {
                Box::pin(async move { e.ca_fetch(r, fl, true).await })
            })
            .help("The default issuer, PEM", ""),
        p("ca")
            .op(Read, |e, r, fl| {
                Box::pin(async move { e.ca_fetch(r, fl, false).await })
            })
            .help("The default issuer, DER", ""),
        p("ca_chain")
            .op(Read, h!(ca_chain_fetch))
            .help("The default issuer's chain, PEM", ""),
        p("cert/{serial}/{rest:*}")
            .op(Read, h!(cert_fetch))
            .help("A certificate by serial", ""),
        p("certs/revoked")
            .field(f("after", Kind::Str, "list serials after this one"))
            .field(f("limit", Kind::Int, "at most this many serials"))
            .op(List, h!(revoked_list))
            .help("List revoked certificates", ""),
        p("certs")
            .field(f("after", Kind::Str, "list serials after this one"))
            .field(f("limit", Kind::Int, "at most this many serials"))
            .op(List, h!(certs_list))
            .help("List stored certificates", ""),
        p("ocsp")
            .op(Update, h!(ocsp))
            .help("OCSP responder (POST)", ""),
        p("ocsp/{request:+}")
            .op(Read, h!(ocsp))
            .help("OCSP responder (GET)", ""),
        with(p("tidy"), tidy_fields())
            .op(Update, h!(tidy))
            .help("Remove expired certificates", ""),
        p("tidy-status")
            .op(Read, h!(tidy_status))
            .help("Tidy status", ""),
        p("tidy-cancel")
            .op(Update, h!(tidy_cancel))
            .help("Cancel a tidy", ""),
    ];
    let unauth = [
        "cert/*",
        "ca/pem",
        "ca_chain",
        "ca",
        "crl",
        "crl/pem",
        "crl/delta",
        "crl/delta/pem",
        "ocsp",
        "ocsp/*",
        "issuers/",
        "issuer/+/crl",
        "issuer/+/crl/der",
        "issuer/+/crl/pem",
        "issuer/+/crl/delta",
        "issuer/+/crl/delta/der",
        "issuer/+/crl/delta/pem",
        "issuer/+/pem",
        "issuer/+/der",
        "issuer/+/json",
    ];
    Table {
        paths,
        special: SpecialPaths {
            unauthenticated: unauth.iter().map(|s| (*s).to_owned()).collect(),
            root: vec!["root".into(), "root/sign-self-issued".into()],
        },
        help: "The PKI secrets engine issues X.509 certificates.",
    }
}
