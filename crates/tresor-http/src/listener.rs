//! TCP and TLS listeners: an accept loop per listener feeding hyper connections into
//! [`crate::dispatch`].
//!
//! A TLS listener *asks for* a client certificate but does not require one (Vault's behaviour):
//! TLS-certificate login verifies the chain itself later, against its own trusted CAs. With
//! `tls_client_ca_file` set, a presented certificate must chain to that CA; without it, any
//! presented certificate is accepted at the TLS layer (its signature over the handshake is still
//! checked) and passed on to the request.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tresor_core::Core;

use crate::{ConnInfo, HttpConfig};

/// TLS settings of one listener.
#[derive(Debug, Clone)]
pub struct TlsSettings {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    pub client_ca_file: Option<PathBuf>,
    /// "tls12" or "tls13".
    pub min_version: String,
}

/// One `listener "tcp"` block.
#[derive(Debug, Clone)]
pub struct ListenerConfig {
    pub address: String,
    pub tls: Option<TlsSettings>,
}

/// Accepts any client certificate (signatures are still verified), for TLS-cert login.
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
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algs)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algs)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algs.supported_schemes()
    }
}

fn tls_config(t: &TlsSettings) -> Result<rustls::ServerConfig, String> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
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
    let versions: &[&rustls::SupportedProtocolVersion] = match t.min_version.as_str() {
        "" | "tls12" => &[&rustls::version::TLS13, &rustls::version::TLS12],
        "tls13" => &[&rustls::version::TLS13],
        other => {
            return Err(format!(
                "tls_min_version {other:?} is not supported (use tls12 or tls13)"
            ));
        }
    };
    let verifier: Arc<dyn ClientCertVerifier> = match &t.client_ca_file {
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for c in CertificateDer::pem_file_iter(ca)
                .map_err(|e| format!("tls_client_ca_file {}: {e}", ca.display()))?
            {
                roots
                    .add(c.map_err(|e| format!("tls_client_ca_file: {e}"))?)
                    .map_err(|e| format!("tls_client_ca_file: {e}"))?;
            }
            WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                .allow_unauthenticated()
                .build()
                .map_err(|e| format!("tls_client_ca_file: {e}"))?
        }
        None => Arc::new(AskForAnyCert {
            algs: provider.signature_verification_algorithms,
        }),
    };
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .map_err(|e| e.to_string())?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs, key)
        .map_err(|e| format!("tls certificate/key: {e}"))?;
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(cfg)
}

/// Binds a listener (so bind errors surface before the server reports it is up).
pub async fn bind(
    l: &ListenerConfig,
) -> Result<(TcpListener, Option<tokio_rustls::TlsAcceptor>), String> {
    let acceptor = match &l.tls {
        Some(t) => Some(tokio_rustls::TlsAcceptor::from(Arc::new(tls_config(t)?))),
        None => None,
    };
    let tcp = TcpListener::bind(&l.address)
        .await
        .map_err(|e| format!("listener {}: {e}", l.address))?;
    Ok((tcp, acceptor))
}

/// Serves connections until `shutdown` flips to true.
pub async fn serve(
    core: Core,
    cfg: Arc<HttpConfig>,
    tcp: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let (stream, peer): (tokio::net::TcpStream, SocketAddr) = tokio::select! {
            r = tcp.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    continue;
                }
            },
            _ = shutdown.changed() => return,
        };
        let _ = stream.set_nodelay(true);
        let core = core.clone();
        let cfg = cfg.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            let mut info = ConnInfo {
                remote_addr: Some(peer.ip().to_string()),
                peer_certs: Vec::new(),
            };
            match tls {
                None => serve_conn(core, cfg, info, TokioIo::new(stream)).await,
                Some(acceptor) => match acceptor.accept(stream).await {
                    Ok(s) => {
                        if let Some(certs) = s.get_ref().1.peer_certificates() {
                            info.peer_certs = certs.iter().map(|c| c.to_vec()).collect();
                        }
                        serve_conn(core, cfg, info, TokioIo::new(s)).await
                    }
                    Err(e) => tracing::debug!(error = %e, "tls handshake failed"),
                },
            }
        });
    }
}

async fn serve_conn<I>(core: Core, cfg: Arc<HttpConfig>, info: ConnInfo, io: I)
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let info = Arc::new(info);
    let svc = service_fn(move |req| {
        let core = core.clone();
        let cfg = cfg.clone();
        let info = info.clone();
        async move { Ok::<_, std::convert::Infallible>(crate::dispatch(&core, &cfg, &info, req).await) }
    });
    if let Err(e) = Builder::new(TokioExecutor::new())
        .serve_connection(io, svc)
        .await
    {
        tracing::debug!(error = %e, "connection closed with error");
    }
}
