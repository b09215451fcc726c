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
mod inputs;
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
use serde_json::{Map, Value};
use tresor_sdk::framework::{Path, Table};
use tresor_sdk::{
    LogicalBackend, LogicalError, Operation, Request, Response, Result, SpecialPaths,
};

pub use clock::{Clock, SystemClock};

use inputs::*;

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

/// A path of this engine's table.
fn p(pattern: &'static str) -> Path<Engine> {
    Path::new(pattern)
}

macro_rules! h {
    ($method:ident) => {
        |e, r, fl| Box::pin(async move { e.$method(r, fl).await })
    };
}

/// A CA path (`root/generate`, `intermediate/generate`, `keys/generate`, ...).
fn ca_path(pattern: &'static str) -> Path<Engine> {
    p(pattern).input::<SubjectInput>().input::<CaInput>()
}

/// The issuer that signs, on the `issuer/:issuer_ref/...` forms only (part of the URL, where
/// ACLs see it); the `root/...` forms sign with the default issuer, as in Vault, and ignore
/// an `issuer_ref` in the body with the unrecognized-parameter warning.
fn issuer_in_url(p: Path<Engine>, issuer_in_path: bool) -> Path<Engine> {
    if issuer_in_path {
        p.input::<IssuerInUrl>()
    } else {
        p
    }
}

fn sign_intermediate_path(pattern: &'static str, issuer_in_path: bool) -> Path<Engine> {
    issuer_in_url(p(pattern).input::<SubjectInput>(), issuer_in_path)
        .input::<SignIntermediateInput>()
}

fn self_issued_path(pattern: &'static str, issuer_in_path: bool) -> Path<Engine> {
    issuer_in_url(p(pattern).input::<SelfIssuedInput>(), issuer_in_path)
}

/// The issue and sign paths. Only the `issuer/:issuer_ref/...` forms name an issuer, in their
/// URL, where ACLs can see it; on `issue/:role`, `sign/:role` and `sign-verbatim[/:role]` the
/// role chooses, and an `issuer_ref` in the body is ignored with Vault's
/// unrecognized-parameter warning.
fn leaf_path(pattern: &'static str, issuer_in_path: bool) -> Path<Engine> {
    issuer_in_url(p(pattern).input::<SubjectInput>(), issuer_in_path).input::<LeafInput>()
}

fn table() -> Table<Engine> {
    use Operation::*;
    let paths = vec![
        ca_path("root/generate/{exported}")
            .op(Update, h!(root_generate))
            .help("Generate a self-signed root CA", ""),
        ca_path("issuers/generate/root/{exported}")
            .op(Update, h!(root_generate))
            .help("Generate a self-signed root CA", ""),
        sign_intermediate_path("root/sign-intermediate", false)
            .op(Update, h!(sign_intermediate))
            .help("Sign an intermediate CA's CSR", ""),
        sign_intermediate_path("issuer/{issuer_ref}/sign-intermediate", true)
            .op(Update, h!(sign_intermediate))
            .help("Sign an intermediate CA's CSR with this issuer", ""),
        self_issued_path("root/sign-self-issued", false)
            .op(Update, h!(sign_self_issued))
            .help(
                "Sign a self-issued CA certificate with the default issuer",
                "",
            ),
        self_issued_path("issuer/{issuer_ref}/sign-self-issued", true)
            .op(Update, h!(sign_self_issued))
            .help("Sign a self-issued CA certificate with this issuer", ""),
        p("issuer/{issuer_ref}/revoke")
            .input::<IssuerRef>()
            .op(Update, h!(issuer_revoke))
            .help("Revoke this issuer", ""),
        p("root/replace")
            .input::<ReplaceRootInput>()
            .op(Update, h!(root_replace))
            .help("Replace the default issuer", ""),
        p("root")
            .op(Delete, h!(delete_root))
            .help("Delete every issuer and key of this mount", ""),
        ca_path("intermediate/generate/{exported}")
            .op(Update, h!(intermediate_generate))
            .help("Generate an intermediate CA key and CSR", ""),
        ca_path("issuers/generate/intermediate/{exported}")
            .op(Update, h!(intermediate_generate))
            .help("Generate an intermediate CA key and CSR", ""),
        p("intermediate/set-signed")
            .input::<SetSignedInput>()
            .op(Update, h!(set_signed))
            .help("Import the signed intermediate certificate", ""),
        p("config/ca")
            .input::<CaBundleInput>()
            .op(Update, |e, r, fl| {
                let bundle = fl.input::<CaBundleInput>().pem_bundle;
                Box::pin(async move { e.import_pem_bundle(r, bundle).await })
            })
            .help("Import a CA bundle", ""),
        p("issuers/import/bundle")
            .input::<ImportBundleInput>()
            .op(Update, |e, r, fl| {
                let bundle = fl.input::<ImportBundleInput>().pem_bundle;
                Box::pin(async move { e.import_pem_bundle(r, bundle).await })
            })
            .help("Import issuers and keys", ""),
        p("issuers/import/cert")
            .input::<ImportCertInput>()
            .op(Update, |e, r, fl| {
                let bundle = fl.input::<ImportCertInput>().pem_bundle;
                Box::pin(async move { e.import_pem_bundle(r, bundle).await })
            })
            .help("Import issuers", ""),
        p("issuers")
            .op(List, h!(issuers_list))
            .help("List issuers", ""),
        leaf_path("issuer/{issuer_ref}/issue/{role}", true)
            .op(Update, h!(issue))
            .help("Issue a certificate with this issuer", ""),
        leaf_path("issuer/{issuer_ref}/sign/{role}", true)
            .op(Update, h!(sign))
            .help("Sign a CSR with this issuer", ""),
        leaf_path("issuer/{issuer_ref}/sign-verbatim/{role}", true)
            .op(Update, h!(sign_verbatim))
            .help("Sign a CSR verbatim with this issuer", ""),
        leaf_path("issuer/{issuer_ref}/sign-verbatim", true)
            .op(Update, h!(sign_verbatim))
            .help("Sign a CSR verbatim with this issuer", ""),
        p("issuer/{issuer_ref}/crl/{rest:*}")
            .input::<IssuerRef>()
            .input::<CrlRest>()
            .op(Read, h!(issuer_crl_fetch))
            .help("This issuer's CRL", ""),
        p("issuer/{issuer_ref}/json")
            .input::<IssuerRef>()
            .op(Read, |e, r, fl| {
                Box::pin(async move { e.issuer_fetch(r, fl, "json").await })
            })
            .help("This issuer's certificate and chain", ""),
        p("issuer/{issuer_ref}/pem")
            .input::<IssuerRef>()
            .op(Read, |e, r, fl| {
                Box::pin(async move { e.issuer_fetch(r, fl, "pem").await })
            })
            .help("This issuer's certificate, PEM", ""),
        p("issuer/{issuer_ref}/der")
            .input::<IssuerRef>()
            .op(Read, |e, r, fl| {
                Box::pin(async move { e.issuer_fetch(r, fl, "der").await })
            })
            .help("This issuer's certificate, DER", ""),
        p("issuer/{issuer_ref}")
            .input::<IssuerRef>()
            .input::<IssuerSettings>()
            .op(Read, h!(issuer_read))
            .op(Update, h!(issuer_update))
            .op(Patch, h!(issuer_update))
            .op(Delete, h!(issuer_delete))
            .help("Read, change or delete an issuer", ""),
        ca_path("keys/generate/{exported}")
            .op(Update, h!(keys_generate))
            .help("Generate a key", ""),
        p("keys/import")
            .input::<KeyImportInput>()
            .op(Update, h!(keys_import))
            .help("Import a key", ""),
        p("keys").op(List, h!(keys_list)).help("List keys", ""),
        p("key/{key_ref}")
            .input::<KeyRef>()
            .input::<KeyNameInput>()
            .op(Read, h!(key_read))
            .op(Update, h!(key_update))
            .op(Delete, h!(key_delete))
            .help("Read, rename or delete a key", ""),
        p("config/issuers")
            .input::<ConfigIssuersInput>()
            .op(Read, h!(config_issuers_read))
            .op(Update, h!(config_issuers_write))
            .help("The default issuer", ""),
        p("config/keys")
            .input::<ConfigKeysInput>()
            .op(Read, h!(config_keys_read))
            .op(Update, h!(config_keys_write))
            .help("The default key", ""),
        p("config/urls")
            .input::<UrlsInput>()
            .op(Read, h!(urls_read))
            .op(Update, h!(urls_write))
            .help("URLs written into issued certificates", ""),
        p("config/cluster")
            .input::<ClusterInput>()
            .op(Read, h!(cluster_read))
            .op(Update, h!(cluster_write))
            .help("The mount's own URLs", ""),
        p("config/acme")
            .input::<AcmeInput>()
            .op(Read, h!(acme_read))
            .op(Update, h!(acme_write))
            .help(
                "ACME configuration: ACME is not supported, so it reads disabled",
                "",
            ),
        p("config/crl")
            .input::<CrlConfigInput>()
            .op(Read, h!(config_crl_read))
            .op(Update, h!(config_crl_write))
            .help("CRL and OCSP configuration", ""),
        p("config/auto-tidy")
            .input::<AutoTidyInput>()
            .op(Read, h!(auto_tidy_read))
            .op(Update, h!(auto_tidy_write))
            .help("Automatic tidy", ""),
        p("roles").op(List, h!(role_list)).help("List roles", ""),
        p("roles/{name}")
            .input::<RoleName>()
            .input::<roles::RoleInput>()
            .op(Read, h!(role_read))
            .op(Update, h!(role_write))
            .op(Patch, h!(role_write))
            .op(Delete, h!(role_delete))
            .existence(|e, r, fl| Box::pin(async move { e.role_exists(r, fl).await }))
            .help("Manage a role", ""),
        leaf_path("issue/{role}", false)
            .op(Update, h!(issue))
            .help("Issue a certificate and key under a role", ""),
        leaf_path("sign/{role}", false)
            .op(Update, h!(sign))
            .help("Sign a CSR under a role", ""),
        leaf_path("sign-verbatim/{role}", false)
            .op(Update, h!(sign_verbatim))
            .help("Sign a CSR verbatim", ""),
        leaf_path("sign-verbatim", false)
            .op(Update, h!(sign_verbatim))
            .help("Sign a CSR verbatim", ""),
        p("revoke")
            .input::<RevokeInput>()
            .op(Update, h!(revoke))
            .help("Revoke a certificate", ""),
        p("revoke-with-key")
            .input::<RevokeInput>()
            .input::<RevokeKeyInput>()
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
            .input::<CrlRest>()
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
            .input::<CertPathInput>()
            .op(Read, h!(cert_fetch))
            .help("A certificate by serial", ""),
        p("certs/revoked")
            .input::<PageInput>()
            .op(List, h!(revoked_list))
            .help("List revoked certificates", ""),
        p("certs")
            .input::<PageInput>()
            .op(List, h!(certs_list))
            .help("List stored certificates", ""),
        p("ocsp")
            .op(Update, h!(ocsp))
            .help("OCSP responder (POST)", ""),
        p("ocsp/{request:+}")
            .input::<OcspRequestInput>()
            .op(Read, h!(ocsp))
            .help("OCSP responder (GET)", ""),
        p("tidy")
            .input::<TidyInput>()
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
