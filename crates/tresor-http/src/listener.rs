//! TCP and TLS listeners: an accept loop per listener feeding hyper connections into
//! [`crate::dispatch`].
//!
//! By default a TLS listener *asks for* a client certificate but does not require one (Vault's
//! behaviour): TLS-certificate login verifies the chain itself later, against its own trusted
//! CAs. With `tls_client_ca_file` set, a presented certificate must chain to that CA; without
//! it, any presented certificate is accepted at the TLS layer (its signature over the handshake
//! is still checked) and passed on to the request. `tls_require_and_verify_client_cert` makes a
//! certificate from `tls_client_ca_file` mandatory; `tls_disable_client_certs` stops asking.
//!
//! Unauthenticated clients must not be able to exhaust the server (issue 10, finding 6), so:
//! - a listener holds at most `max_connections` connections (a Tresor extension); at the cap the
//!   next client waits for a slot and further ones wait in the kernel's backlog, while
//!   connections with no request in flight for a second (idle, or stuck in their head or TLS
//!   handshake) are closed to make room;
//! - the TLS handshake must finish within the header timeout, counted from accept (as in Go,
//!   where the first header deadline covers the handshake);
//! - every connection carries the deadlines of [`crate::deadline`] (head, idle, write stall) and
//!   every request body the whole-request read deadline (in `dispatch`);
//! - a failing `accept` (EMFILE, ENFILE, ENOBUFS) backs off exponentially from 5 ms to 1 s and
//!   logs at most one line a second, with the number of failures it did not log.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Weak};
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{CipherSuite, DigitallySignedStruct, DistinguishedName, SignatureScheme};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, TryAcquireError, watch};
use tokio::time::Instant;
use tresor_core::Core;

use crate::deadline::{ConnState, Limits, TimedIo};
use crate::forwarded::ForwardedFor;
use crate::{ConnInfo, HttpConfig, ReadDeadline};

/// Whether a TLS listener asks clients for a certificate.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ClientAuth {
    /// Ask, but serve clients without one (Vault's default).
    #[default]
    Request,
    /// Refuse the handshake without a certificate that chains to `client_ca_file`
    /// (`tls_require_and_verify_client_cert`).
    Require,
    /// Do not ask (`tls_disable_client_certs`).
    Disabled,
}

/// TLS settings of one listener.
#[derive(Debug, Clone, Default)]
pub struct TlsSettings {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    pub client_ca_file: Option<PathBuf>,
    /// "tls12" or "tls13" ("" = tls12).
    pub min_version: String,
    /// "tls12" or "tls13" ("" = tls13).
    pub max_version: String,
    /// Go's names of the allowed cipher suites (`tls_cipher_suites`), each one that
    /// [`cipher_suite`] offers; empty = rustls's defaults. As in Go, listing only TLS 1.2 suites
    /// leaves TLS 1.3's suites alone; naming TLS 1.3 suites restricts those too.
    pub cipher_suites: Vec<String>,
    pub client_auth: ClientAuth,
}

/// A listener's timeouts (Vault's `http_*_timeout` keys). `Duration::ZERO` turns one off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// `http_read_header_timeout`: from the first byte of a request (or from accepting the
    /// connection) to the end of its head; also the TLS handshake's limit.
    pub read_header: Duration,
    /// `http_read_timeout`: from the first byte of a request to the end of its body.
    pub read: Duration,
    /// `http_write_timeout`: how long a response write may make no progress (the client not
    /// reading). Go also counts the handler's time; Tresor does not.
    pub write: Duration,
    /// `http_idle_timeout`: how long a connection may wait for its next request.
    pub idle: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            read_header: Duration::from_secs(10),
            read: Duration::from_secs(30),
            write: Duration::from_secs(30),
            idle: Duration::from_secs(300),
        }
    }
}

fn nonzero(d: Duration) -> Option<Duration> {
    (!d.is_zero()).then_some(d)
}

impl Timeouts {
    /// The head (and TLS handshake) limit: as in Go, `read` stands in when `read_header` is 0.
    pub fn head(&self) -> Option<Duration> {
        nonzero(self.read_header).or_else(|| nonzero(self.read))
    }

    /// The idle limit: as in Vault, `read`, then `read_header`, stand in when `idle` is 0.
    pub fn idle(&self) -> Option<Duration> {
        nonzero(self.idle)
            .or_else(|| nonzero(self.read))
            .or_else(|| nonzero(self.read_header))
    }

    fn limits(&self) -> Limits {
        Limits {
            head: self.head(),
            idle: self.idle(),
            write_stall: nonzero(self.write),
        }
    }
}

/// One `listener "tcp"` block.
#[derive(Debug, Clone, Default)]
pub struct ListenerConfig {
    pub address: String,
    pub tls: Option<TlsSettings>,
    pub timeouts: Timeouts,
    /// At most this many connections at once (Tresor's `max_connections`); `None` derives it
    /// from the open-file limit ([`default_max_connections`]).
    pub max_connections: Option<usize>,
    /// `X-Forwarded-For` handling; `None` ignores the header.
    pub forwarded_for: Option<ForwardedFor>,
    /// The listener's `max_request_size`, overriding the server-wide one.
    pub max_request_size: Option<usize>,
    /// `telemetry { unauthenticated_metrics_access = true }`: `sys/metrics` without a token.
    pub unauthenticated_metrics_access: bool,
}

/// The connection cap when the config sets none: 4096, or three quarters of the open-file soft
/// limit if that is lower (the rest is for storage, audit files and outgoing sockets), so that
/// reaching the cap comes before `accept` starts failing with EMFILE.
pub fn default_max_connections() -> usize {
    let soft = std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("Max open files"))
                .and_then(|l| l.split_whitespace().nth(3))
                .and_then(|n| n.parse::<usize>().ok())
        });
    match soft {
        Some(n) => (n / 4 * 3).clamp(16, 4096),
        None => 4096,
    }
}

/// What Tresor makes of one of Go's cipher-suite names (`tls_cipher_suites`): `Some(true)` for
/// the suites rustls offers, `Some(false)` for Go's other suites (CBC, RC4, 3DES, RSA key
/// exchange), which rustls does not implement, and `None` for names Go does not know either.
pub fn cipher_suite(name: &str) -> Option<bool> {
    if rustls_suite(name).is_some() {
        return Some(true);
    }
    const NOT_IMPLEMENTED: &[&str] = &[
        "TLS_RSA_WITH_RC4_128_SHA",
        "TLS_RSA_WITH_3DES_EDE_CBC_SHA",
        "TLS_RSA_WITH_AES_128_CBC_SHA",
        "TLS_RSA_WITH_AES_256_CBC_SHA",
        "TLS_RSA_WITH_AES_128_CBC_SHA256",
        "TLS_RSA_WITH_AES_128_GCM_SHA256",
        "TLS_RSA_WITH_AES_256_GCM_SHA384",
        "TLS_ECDHE_ECDSA_WITH_RC4_128_SHA",
        "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA",
        "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA",
        "TLS_ECDHE_RSA_WITH_RC4_128_SHA",
        "TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA",
        "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA",
        "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA",
        "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256",
        "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256",
    ];
    NOT_IMPLEMENTED.contains(&name).then_some(false)
}

/// Go's name of a suite rustls implements, as rustls's identifier.
fn rustls_suite(name: &str) -> Option<CipherSuite> {
    Some(match name {
        "TLS_AES_128_GCM_SHA256" => CipherSuite::TLS13_AES_128_GCM_SHA256,
        "TLS_AES_256_GCM_SHA384" => CipherSuite::TLS13_AES_256_GCM_SHA384,
        "TLS_CHACHA20_POLY1305_SHA256" => CipherSuite::TLS13_CHACHA20_POLY1305_SHA256,
        "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256" => {
            CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
        }
        "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384" => {
            CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384
        }
        "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256" => {
            CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256
        }
        "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384" => {
            CipherSuite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384
        }
        // Go accepts both spellings of the ChaCha20 suites.
        "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256"
        | "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305" => {
            CipherSuite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256
        }
        "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256" | "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305" => {
            CipherSuite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256
        }
        _ => return None,
    })
}

/// Accepts any client certificate, of any X.509 version (the handshake signature is still
/// verified with its key, `client_key`), for TLS-cert login.
#[derive(Debug)]
struct AskForAnyCert {
    algs: rustls::crypto::WebPkiSupportedAlgorithms,
}

impl ClientCertVerifier for AskForAnyCert {
    fn offer_client_auth(&self) -> bool {
        true
    }
    fn client_auth_mandatory(&self) -> bool {
        false
    }
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }
    fn verify_client_cert(
        &self,
        _ee: &CertificateDer<'_>,
        _im: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        crate::client_key::verify(false, message, cert, dss, &self.algs)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        crate::client_key::verify(true, message, cert, dss, &self.algs)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algs.supported_schemes()
    }
}

fn version(v: &str, key: &str, default: &'static str) -> Result<&'static str, String> {
    match v {
        "" => Ok(default),
        "tls12" => Ok("tls12"),
        "tls13" => Ok("tls13"),
        other => Err(format!(
            "{key} {other:?} is not supported (use tls12 or tls13)"
        )),
    }
}

fn tls_config(t: &TlsSettings) -> Result<rustls::ServerConfig, String> {
    let mut provider = rustls::crypto::aws_lc_rs::default_provider();
    if !t.cipher_suites.is_empty() {
        let mut wanted = Vec::new();
        for name in &t.cipher_suites {
            wanted.push(rustls_suite(name).ok_or_else(|| {
                format!("tls_cipher_suites: {name:?} is not a cipher suite Tresor offers")
            })?);
        }
        let names_tls13 = provider
            .cipher_suites
            .iter()
            .any(|s| s.tls13().is_some() && wanted.contains(&s.suite()));
        provider.cipher_suites.retain(|s| {
            // As in Go, a list of TLS 1.2 suites leaves TLS 1.3 alone.
            wanted.contains(&s.suite()) || (s.tls13().is_some() && !names_tls13)
        });
    }
    let min = version(&t.min_version, "tls_min_version", "tls12")?;
    let max = version(&t.max_version, "tls_max_version", "tls13")?;
    let versions: &[&rustls::SupportedProtocolVersion] = match (min, max) {
        ("tls12", "tls13") => &[&rustls::version::TLS13, &rustls::version::TLS12],
        ("tls12", _) => &[&rustls::version::TLS12],
        (_, "tls13") => &[&rustls::version::TLS13],
        _ => {
            return Err(format!(
                "tls_min_version {min:?} is above tls_max_version {max:?}"
            ));
        }
    };
    for v in versions {
        if !provider.cipher_suites.iter().any(|s| s.version() == *v) {
            return Err(format!(
                "tls_cipher_suites: no suite listed for {}, which tls_min_version/tls_max_version enable",
                if v.version == rustls::ProtocolVersion::TLSv1_2 {
                    "TLS 1.2"
                } else {
                    "TLS 1.3"
                }
            ));
        }
    }
    let provider = Arc::new(provider);
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&t.cert_file)
        .map_err(|e| format!("tls_cert_file {}: {e}", t.cert_file.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("tls_cert_file {}: {e}", t.cert_file.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "tls_cert_file {}: no certificate found",
            t.cert_file.display()
        ));
    }
    let key = PrivateKeyDer::from_pem_file(&t.key_file)
        .map_err(|e| format!("tls_key_file {}: {e}", t.key_file.display()))?;
    let roots = |ca: &PathBuf| -> Result<Arc<rustls::RootCertStore>, String> {
        let mut roots = rustls::RootCertStore::empty();
        for c in CertificateDer::pem_file_iter(ca)
            .map_err(|e| format!("tls_client_ca_file {}: {e}", ca.display()))?
        {
            roots
                .add(c.map_err(|e| format!("tls_client_ca_file: {e}"))?)
                .map_err(|e| format!("tls_client_ca_file: {e}"))?;
        }
        if roots.is_empty() {
            return Err(format!(
                "tls_client_ca_file {}: no certificate found",
                ca.display()
            ));
        }
        Ok(Arc::new(roots))
    };
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(versions)
        .map_err(|e| e.to_string())?;
    let builder = match (t.client_auth, &t.client_ca_file) {
        (ClientAuth::Disabled, _) => builder.with_no_client_auth(),
        (ClientAuth::Require, None) => {
            return Err(
                "tls_require_and_verify_client_cert needs tls_client_ca_file (the CA client certificates must chain to)"
                    .into(),
            );
        }
        (ClientAuth::Require, Some(ca)) => builder.with_client_cert_verifier(
            WebPkiClientVerifier::builder_with_provider(roots(ca)?, provider.clone())
                .build()
                .map_err(|e| format!("tls_client_ca_file: {e}"))?,
        ),
        (ClientAuth::Request, Some(ca)) => builder.with_client_cert_verifier(
            WebPkiClientVerifier::builder_with_provider(roots(ca)?, provider.clone())
                .allow_unauthenticated()
                .build()
                .map_err(|e| format!("tls_client_ca_file: {e}"))?,
        ),
        (ClientAuth::Request, None) => builder.with_client_cert_verifier(Arc::new(AskForAnyCert {
            algs: provider.signature_verification_algorithms,
        })),
    };
    let mut cfg = builder
        .with_single_cert(certs, key)
        .map_err(|e| format!("tls certificate/key: {e}"))?;
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(cfg)
}

/// A bound listener, ready for [`serve`].
pub struct Bound {
    tcp: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    config: ListenerConfig,
}

impl std::fmt::Debug for Bound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bound")
            .field("tcp", &self.tcp)
            .field("tls", &self.tls.is_some())
            .field("config", &self.config)
            .finish()
    }
}

impl Bound {
    /// The address actually bound (the port when the config asked for port 0).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.tcp.local_addr()
    }
}

/// Binds a listener (so bind and TLS errors surface before the server reports it is up).
pub async fn bind(l: &ListenerConfig) -> Result<Bound, String> {
    let tls = match &l.tls {
        Some(t) => Some(tokio_rustls::TlsAcceptor::from(Arc::new(tls_config(t)?))),
        None => None,
    };
    let tcp = TcpListener::bind(&l.address)
        .await
        .map_err(|e| format!("listener {}: {e}", l.address))?;
    Ok(Bound {
        tcp,
        tls,
        config: l.clone(),
    })
}

/// Paces a failing `accept`: the delay before the next attempt doubles from [`Self::MIN`] to
/// [`Self::MAX`], and at most one failure a second is logged, with the count of those that were
/// not. Without it, running out of file descriptors turned the accept loop into a busy loop
/// writing gigabytes of identical log lines.
#[derive(Debug, Default)]
pub(crate) struct AcceptBackoff {
    delay: Duration,
    unlogged: u64,
    last_log: Option<Instant>,
}

impl AcceptBackoff {
    pub(crate) const MIN: Duration = Duration::from_millis(5);
    pub(crate) const MAX: Duration = Duration::from_secs(1);
    const LOG_EVERY: Duration = Duration::from_secs(1);

    /// An accept failed at `now`: how long to wait before the next attempt, and, if this
    /// failure is to be logged, how many earlier ones were not.
    pub(crate) fn failed(&mut self, now: Instant) -> (Duration, Option<u64>) {
        self.delay = (self.delay * 2).clamp(Self::MIN, Self::MAX);
        let log = match self.last_log {
            Some(t) if now.saturating_duration_since(t) < Self::LOG_EVERY => {
                self.unlogged += 1;
                None
            }
            _ => {
                self.last_log = Some(now);
                Some(std::mem::take(&mut self.unlogged))
            }
        };
        (self.delay, log)
    }

    /// An accept succeeded: the next failure starts again from the shortest delay.
    pub(crate) fn succeeded(&mut self) {
        self.delay = Duration::ZERO;
    }
}

/// Serves connections until `shutdown` flips to true. `http` holds the server-wide settings;
/// the listener's own (read timeout, `X-Forwarded-For`, request size) are laid over them.
pub async fn serve(
    core: Core,
    http: Arc<HttpConfig>,
    bound: Bound,
    mut shutdown: watch::Receiver<bool>,
) {
    let Bound { tcp, tls, config } = bound;
    let cfg = Arc::new(HttpConfig {
        max_request_size: config.max_request_size.unwrap_or(http.max_request_size),
        max_snapshot_size: http.max_snapshot_size,
        read_timeout: nonzero(config.timeouts.read),
        forwarded_for: config.forwarded_for.clone(),
        unauthenticated_metrics_access: config.unauthenticated_metrics_access,
        ui: http.ui,
    });
    let limits = config.timeouts.limits();
    let cap = config
        .max_connections
        .unwrap_or_else(default_max_connections);
    let slots = Arc::new(Semaphore::new(cap));
    let open = Arc::new(OpenConns::default());
    let mut backoff = AcceptBackoff::default();
    loop {
        let (stream, peer): (tokio::net::TcpStream, SocketAddr) = loop {
            tokio::select! {
                r = tcp.accept() => match r {
                    Ok(x) => {
                        backoff.succeeded();
                        break x;
                    }
                    Err(e) => {
                        // Out of file descriptors: the cap is above what the process may open.
                        // Make room as at the cap, or clients wait for whole timeouts.
                        if matches!(e.raw_os_error(), Some(EMFILE | ENFILE)) {
                            open.evict_quiet(EVICT_AFTER);
                        }
                        let (delay, log) = backoff.failed(Instant::now());
                        if let Some(unlogged) = log {
                            tracing::warn!(
                                error = %e,
                                retry_in_ms = delay.as_millis() as u64,
                                failures_not_logged = unlogged,
                                "accept failed"
                            );
                        }
                        tokio::select! {
                            _ = tokio::time::sleep(delay) => {}
                            _ = shutdown.changed() => return,
                        }
                    }
                },
                _ = shutdown.changed() => return,
            }
        };
        // At the cap this client waits for a slot, and the loop accepts no one else meanwhile:
        // further clients wait in the kernel's listen backlog, not in our memory. While it
        // waits, connections doing nothing make room (see `OpenConns::evict_quiet`).
        let permit = match slots.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(TryAcquireError::Closed) => return,
            Err(TryAcquireError::NoPermits) => loop {
                let evicted = open.evict_quiet(EVICT_AFTER);
                if evicted > 0 {
                    tracing::debug!(
                        evicted,
                        cap,
                        "at the connection cap: closed quiet connections"
                    );
                }
                tokio::select! {
                    p = slots.clone().acquire_owned() => match p {
                        Ok(p) => break p,
                        Err(_) => return,
                    },
                    _ = tokio::time::sleep(EVICT_ROUND) => {}
                    _ = shutdown.changed() => return,
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let core = core.clone();
        let cfg = cfg.clone();
        let tls = tls.clone();
        // The deadlines sit under TLS: the first head deadline, from now, bounds the handshake.
        let state = ConnState::new(limits);
        open.add(&state, cap);
        let io = TimedIo::new(stream, state.clone());
        tokio::spawn(async move {
            let _slot = permit;
            let mut info = ConnInfo {
                remote_addr: Some(peer.ip().to_string()),
                peer_certs: Vec::new(),
            };
            match tls {
                None => serve_conn(core, cfg, state, info, io).await,
                Some(acceptor) => match acceptor.accept(io).await {
                    Ok(s) => {
                        if let Some(certs) = s.get_ref().1.peer_certificates() {
                            info.peer_certs = certs.iter().map(|c| c.to_vec()).collect();
                        }
                        serve_conn(core, cfg, state, info, s).await
                    }
                    Err(e) => tracing::debug!(error = %e, %peer, "tls handshake failed"),
                },
            }
        });
    }
}

/// How long a connection must have had no request in flight before it may be closed to make
/// room at the cap. Real clients send a request head within milliseconds of connecting.
const EVICT_AFTER: Duration = Duration::from_secs(1);
/// How often a client waiting at the cap looks again for connections to close.
const EVICT_ROUND: Duration = Duration::from_millis(250);
/// `accept`'s "too many open files" (process, system): the same numbers on Linux and the BSDs.
const EMFILE: i32 = 24;
const ENFILE: i32 = 23;

/// The open connections of one listener, for eviction at the cap.
#[derive(Debug, Default)]
struct OpenConns(std::sync::Mutex<Vec<Weak<ConnState>>>);

impl OpenConns {
    fn list(&self) -> std::sync::MutexGuard<'_, Vec<Weak<ConnState>>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn add(&self, c: &Arc<ConnState>, cap: usize) {
        let mut l = self.list();
        // Entries of closed connections are dropped once they could outnumber the live ones.
        if l.len() >= cap.saturating_mul(2) {
            l.retain(|w| w.strong_count() > 0);
        }
        l.push(Arc::downgrade(c));
    }

    /// Closes every connection with no request in flight that has been idle, or in its request
    /// head or TLS handshake, for at least `quiet`. Returns how many.
    fn evict_quiet(&self, quiet: Duration) -> usize {
        let mut l = self.list();
        l.retain(|w| w.strong_count() > 0);
        l.iter()
            .filter_map(Weak::upgrade)
            .filter(|c| c.evict_if_quiet(quiet))
            .count()
    }
}

async fn serve_conn<S>(
    core: Core,
    cfg: Arc<HttpConfig>,
    state: Arc<ConnState>,
    info: ConnInfo,
    io: S,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let info = Arc::new(info);
    let io = TokioIo::new(io);
    let svc = service_fn(move |mut req: http::Request<hyper::body::Incoming>| {
        let core = core.clone();
        let cfg = cfg.clone();
        let info = info.clone();
        // The request stays in flight (no connection deadline) until this future ends or is
        // dropped; its body must arrive within the read timeout, counted from its first byte.
        let (in_flight, head_started) = state.begin();
        if let Some(d) = cfg.read_timeout {
            req.extensions_mut().insert(ReadDeadline(head_started + d));
        }
        async move {
            let _in_flight = in_flight;
            Ok::<_, std::convert::Infallible>(crate::ops::into_out(
                crate::dispatch(&core, &cfg, &info, req).await,
            ))
        }
    });
    let mut builder = Builder::new(TokioExecutor::new());
    // The head deadline is TimedIo's: hyper's own header timer would also run while a
    // keep-alive connection is idle, cutting idle connections at the header timeout.
    builder.http1().header_read_timeout(None);
    if let Err(e) = builder.serve_connection(io, svc).await {
        tracing::debug!(error = %e, "connection closed with error");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_backoff_doubles_to_a_second_and_logs_once_a_second() {
        let mut b = AcceptBackoff::default();
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        // The first failure is logged at once, with nothing before it.
        assert_eq!(b.failed(t0), (ms(5), Some(0)));
        // Within the second: delays double, nothing is logged.
        let mut delays = Vec::new();
        for i in 1..=9 {
            let (d, log) = b.failed(t0 + ms(i * 10));
            assert_eq!(log, None);
            delays.push(d.as_millis());
        }
        assert_eq!(delays, [10, 20, 40, 80, 160, 320, 640, 1000, 1000]);
        // A second later: one line, counting the nine it held back.
        assert_eq!(b.failed(t0 + ms(1000)), (ms(1000), Some(9)));
        assert_eq!(b.failed(t0 + ms(1500)), (ms(1000), None));
        // A success resets the delay, not the log pacing.
        b.succeeded();
        assert_eq!(b.failed(t0 + ms(1600)), (ms(5), None));
        assert_eq!(b.failed(t0 + ms(2000)), (ms(10), Some(2)));
    }

    #[test]
    fn a_storm_of_failures_logs_a_line_a_second() {
        // 60 s of failures retried as fast as the backoff allows: at most 61 lines.
        let mut b = AcceptBackoff::default();
        let start = Instant::now();
        let mut now = start;
        let (mut lines, mut failures, mut counted) = (0u64, 0u64, 0u64);
        while now < start + Duration::from_secs(60) {
            let (delay, log) = b.failed(now);
            failures += 1;
            if let Some(n) = log {
                lines += 1;
                counted += n + 1;
            }
            now += delay;
        }
        assert!(lines <= 61, "{lines} lines");
        assert!(failures >= 59, "the loop keeps retrying: {failures}");
        // Every failure but those after the last line is accounted for.
        assert!(
            failures - counted <= 1,
            "{failures} failures, {counted} reported"
        );
    }

    #[test]
    fn timeouts_fall_back_as_in_vault() {
        let s = Duration::from_secs;
        let t = |read_header, read, idle| Timeouts {
            read_header: s(read_header),
            read: s(read),
            write: s(0),
            idle: s(idle),
        };
        assert_eq!(t(10, 30, 300).head(), Some(s(10)));
        assert_eq!(t(10, 30, 300).idle(), Some(s(300)));
        assert_eq!(t(0, 30, 0).head(), Some(s(30)));
        assert_eq!(t(10, 30, 0).idle(), Some(s(30)));
        assert_eq!(t(10, 0, 0).idle(), Some(s(10)));
        assert_eq!(t(0, 0, 0).head(), None);
        assert_eq!(t(0, 0, 0).idle(), None);
    }

    #[test]
    fn go_cipher_suite_names() {
        assert_eq!(
            cipher_suite("TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"),
            Some(true)
        );
        assert_eq!(
            cipher_suite("TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305"),
            Some(true)
        );
        assert_eq!(cipher_suite("TLS_AES_256_GCM_SHA384"), Some(true));
        assert_eq!(
            cipher_suite("TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA"),
            Some(false)
        );
        assert_eq!(cipher_suite("TLS_RSA_WITH_RC4_128_SHA"), Some(false));
        assert_eq!(cipher_suite("TLS_ECDHE_ECDSA_WITH_AES_128_GCM"), None);
        assert_eq!(
            cipher_suite("tls_ecdhe_ecdsa_with_aes_128_gcm_sha256"),
            None
        );
        // Every name offered is one the aws-lc-rs provider has.
        let provider = rustls::crypto::aws_lc_rs::default_provider();
        for name in [
            "TLS_AES_128_GCM_SHA256",
            "TLS_AES_256_GCM_SHA384",
            "TLS_CHACHA20_POLY1305_SHA256",
            "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
            "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
            "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
            "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
            "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
            "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
        ] {
            let suite = rustls_suite(name).unwrap();
            assert!(
                provider.cipher_suites.iter().any(|s| s.suite() == suite),
                "{name}"
            );
        }
    }

    #[test]
    fn the_default_connection_cap_is_bounded() {
        let n = default_max_connections();
        assert!((16..=4096).contains(&n), "{n}");
    }
}
