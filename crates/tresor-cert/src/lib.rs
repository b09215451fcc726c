//! Vault's TLS certificate auth method (`cert`): logins from the client certificate of the TLS
//! handshake.
//!
//! An operator trusts certificates under `certs/:name` (a CA, whose descendants may log in, or
//! one leaf, which may log in as itself), each with name and extension constraints, OCSP
//! settings and the common `token_*` fields. `POST login` takes the chain the client presented
//! in the TLS handshake (`req.connection.peer_certificates`; the listener asks for one and does
//! not require it), finds the first role, by name, whose certificate it verifies against and
//! whose constraints it meets, refuses a certificate on a CRL posted to `crls/:name` or, for
//! `ocsp_enabled` roles, one its OCSP responder calls revoked, and answers with an `Auth` the
//! core turns into a token. Renewing that token checks again that the role exists with the same
//! policies and still trusts the certificate, and that it is not revoked.
//!
//! Module map: `x509` (pure certificate work: PEM, CRLs, paths, constraints), `glob`, `ocsp`
//! (the HTTP OCSP client), `store` (records in the view), and the handlers: `certs`, `crls`,
//! `config`, `login` (login and renewal).

#![forbid(unsafe_code)]

mod certs;
mod config;
mod crls;
mod glob;
mod inputs;
mod login;
mod ocsp;
mod store;
#[cfg(test)]
mod testpki;
#[cfg(test)]
mod tests;
mod x509;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use inputs::{CertInput, CertNameInput, ConfigInput, CrlInput, LoginInput};
use serde_json::{Map, Value};
use tresor_sdk::clock::{Clock, SystemClock};
use tresor_sdk::framework::{Path, Table};
use tresor_sdk::token::TokenParams;
use tresor_sdk::{
    LogicalBackend, LogicalError, Operation, Request, Response, Result, SpecialPaths,
};

/// How long one OCSP request may take.
const OCSP_TIMEOUT: Duration = Duration::from_secs(5);

/// State shared by every request to the mount.
pub(crate) struct Engine {
    clock: Arc<dyn Clock>,
    /// The OCSP client: no redirects, no proxies, bounded time.
    http: reqwest::Client,
}

impl Engine {
    pub(crate) fn now(&self) -> i64 {
        tresor_sdk::clock::unix(self.clock.now())
    }
}

/// An invalid-request error (a 400 at the HTTP edge).
pub(crate) fn bad(msg: impl Into<String>) -> LogicalError {
    LogicalError::InvalidRequest(msg.into())
}

/// The auth method, ready to mount.
pub fn backend() -> Arc<dyn LogicalBackend> {
    backend_with_clock(Arc::new(SystemClock))
}

/// The auth method reading time from `clock` (tests pass a clock they control).
pub fn backend_with_clock(clock: Arc<dyn Clock>) -> Arc<dyn LogicalBackend> {
    let http = reqwest::Client::builder()
        .timeout(OCSP_TIMEOUT)
        .connect_timeout(OCSP_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .build()
        .unwrap_or_else(|_| reqwest::Client::new());
    Arc::new(CertAuth {
        engine: Arc::new(Engine { clock, http }),
        table: table(),
    })
}

struct CertAuth {
    engine: Arc<Engine>,
    table: Table<Engine>,
}

#[async_trait]
impl LogicalBackend for CertAuth {
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

    async fn exists(&self, req: &Request) -> Result<Option<bool>> {
        self.table.exists(self.engine.clone(), req).await
    }

    fn canonical_path(&self, path: &str) -> Option<String> {
        self.table.canonical_path(path)
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

    /// A login token is renewed only while its role exists with the same policies and still
    /// trusts the certificate, which must not be revoked.
    async fn renew_auth(&self, req: Request) -> Result<Option<Response>> {
        self.engine.clone().renew(req).await
    }
}

// ---------------------------------------------------------------------------------------------
// The path table.

const CERTS_HELP: &str = r#"
A certificate role trusts one certificate (or a PEM bundle of them). A CA certificate lets every
certificate it issued log in, through any intermediates the client presents; a certificate that
is not a CA lets exactly that certificate log in. The allowed_* fields narrow who may log in
(globs, '*' matching any run of characters); OCSP fields check revocation with the
certificate's responder; the token_* fields shape the tokens a login gets.
"#;

const CRLS_HELP: &str = r#"
Posts a certificate revocation list (PEM, or base64-encoded DER) under a name. A login whose
verified chain contains a certificate with a serial number on any stored CRL is refused, and so
is the renewal of a token it obtained. Update a CRL by posting it again; delete it to forget it.
"#;

const CONFIG_HELP: &str = r#"
disable_binding: when a renewal presents a client certificate, do not require it to be the one
the token logged in with. enable_identity_alias_metadata: copy the login's metadata onto its
identity alias. ocsp_cache_size, role_cache_size and enable_metadata_on_failures are accepted and
shown for compatibility.
"#;

const LOGIN_HELP: &str = r#"
Logs in with the client certificate presented in the TLS handshake (curl --cert/--key,
bao login -method=cert -client-cert=... -client-key=...). Without a name, every certificate
role is tried in name order and the first that trusts the certificate and whose constraints it
meets is used; with a name, only that role.
"#;

const BACKEND_HELP: &str = r#"
The "cert" auth method logs clients in with TLS client certificates, verified against the
certificates trusted under certs/, checked against posted CRLs and, where enabled, OCSP.
"#;

/// A handler calling the engine method of that name.
macro_rules! h {
    ($method:ident) => {
        |e, r, fl| Box::pin(async move { e.$method(r, fl).await })
    };
}

fn table() -> Table<Engine> {
    use Operation::{Delete, List, Read, Update};
    Table {
        paths: vec![
            Path::<Engine>::new("certs")
                .op(List, h!(list_certs))
                .help("Lists the certificate roles.", CERTS_HELP),
            TokenParams::add_fields(
                Path::<Engine>::new("certs/{name}")
                    .case_insensitive("name")
                    .input::<CertNameInput>()
                    .input::<CertInput>(),
            )
            .op(Read, h!(read_cert))
            .op(Update, h!(write_cert))
            .op(Delete, h!(delete_cert))
            .existence(h!(cert_exists))
            .help(
                "Manages a trusted certificate and the constraints of logins through it.",
                CERTS_HELP,
            ),
            Path::<Engine>::new("crls")
                .op(List, h!(list_crls))
                .help("Lists the stored certificate revocation lists.", CRLS_HELP),
            Path::<Engine>::new("crls/{name}")
                .case_insensitive("name")
                .input::<CrlInput>()
                .op(Read, h!(read_crl))
                .op(Update, h!(write_crl))
                .op(Delete, h!(delete_crl))
                .help(
                    "Manages a certificate revocation list that refuses logins.",
                    CRLS_HELP,
                ),
            Path::<Engine>::new("config")
                .input::<ConfigInput>()
                .op(Read, h!(read_config))
                .op(Update, h!(write_config))
                .help("Configures the method.", CONFIG_HELP),
            Path::<Engine>::new("login")
                .input::<LoginInput>()
                .op(Update, h!(login))
                .help(
                    "Logs in with the client certificate of the TLS handshake.",
                    LOGIN_HELP,
                ),
        ],
        special: SpecialPaths {
            unauthenticated: vec!["login".into()],
            root: Vec::new(),
        },
        help: BACKEND_HELP,
    }
}
