//! TLS to PostgreSQL with rustls, in libpq's terms (the connection URL's `sslmode`,
//! `sslrootcert`, `sslcert`, `sslkey`; files on the Tresor server, as Vault's pgx reads them):
//!
//! | `sslmode` | TLS | the server's certificate |
//! |---|---|---|
//! | `disable` | never | — |
//! | `allow`, `prefer` (the default) | when the server offers it | not checked, unless `sslrootcert` is given (then as `verify-ca`) |
//! | `require` | always | not checked, unless `sslrootcert` is given (then as `verify-ca`) |
//! | `verify-ca` | always | chains to `sslrootcert` (or the system's roots) |
//! | `verify-full` | always | chains, and names the host connected to |
//!
//! `sslcert` and `sslkey` present a client certificate (PEM). Channel binding is not offered.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, SignatureScheme};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect, TlsStream};

/// The TLS settings a connection URL asks for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PgTlsParams {
    pub sslmode: String,
    pub sslrootcert: Option<String>,
    pub sslcert: Option<String>,
    pub sslkey: Option<String>,
}

/// What tokio-postgres is told: whether TLS is off, tried or required.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Negotiate {
    Disable,
    Prefer,
    Require,
}

/// How the server's certificate is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Check {
    Nothing,
    Chain,
    ChainAndName,
}

impl PgTlsParams {
    /// The negotiation and the connector (none for `disable`); an unknown mode or an unreadable
    /// file is an error naming it.
    pub fn build(&self) -> Result<(Negotiate, Option<RustlsConnect>), String> {
        let (negotiate, check) = match self.sslmode.as_str() {
            "disable" => return Ok((Negotiate::Disable, None)),
            "" | "allow" | "prefer" => (Negotiate::Prefer, Check::Nothing),
            "require" => (Negotiate::Require, Check::Nothing),
            "verify-ca" => (Negotiate::Require, Check::Chain),
            "verify-full" => (Negotiate::Require, Check::ChainAndName),
            other => {
                return Err(format!(
                    "sslmode={other} is not one of disable, allow, prefer, require, verify-ca, verify-full"
                ));
            }
        };
        // libpq: a root certificate file makes require (and prefer) verify the chain.
        let check = if check == Check::Nothing && self.sslrootcert.is_some() {
            Check::Chain
        } else {
            check
        };
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let verifier: Arc<dyn ServerCertVerifier> = match check {
            Check::Nothing => Arc::new(Verifier {
                inner: None,
                names: false,
                provider: provider.clone(),
            }),
            Check::Chain | Check::ChainAndName => {
                let mut roots = rustls::RootCertStore::empty();
                match &self.sslrootcert {
                    Some(path) => {
                        for c in read_certs(path, "sslrootcert")? {
                            roots
                                .add(c)
                                .map_err(|e| format!("sslrootcert {path}: {e}"))?;
                        }
                    }
                    None => {
                        for c in rustls_native_certs::load_native_certs().certs {
                            let _ = roots.add(c);
                        }
                    }
                }
                if roots.is_empty() {
                    return Err(
                        "no root certificate to verify the server with (sslrootcert)".into(),
                    );
                }
                let inner =
                    WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                        .build()
                        .map_err(|e| format!("sslrootcert: {e}"))?;
                Arc::new(Verifier {
                    inner: Some(inner),
                    names: check == Check::ChainAndName,
                    provider: provider.clone(),
                })
            }
        };
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS: {e}"))?
            .dangerous()
            .with_custom_certificate_verifier(verifier);
        let config = match (&self.sslcert, &self.sslkey) {
            (Some(cert), Some(key)) => builder
                .with_client_auth_cert(read_certs(cert, "sslcert")?, read_key(key)?)
                .map_err(|e| format!("sslcert/sslkey: {e}"))?,
            (None, None) => builder.with_no_client_auth(),
            _ => return Err("sslcert and sslkey go together".into()),
        };
        Ok((negotiate, Some(RustlsConnect(Arc::new(config)))))
    }
}

fn read_certs(path: &str, what: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let pem = std::fs::read(path).map_err(|e| format!("{what} {path}: {e}"))?;
    let certs: Vec<CertificateDer<'static>> = rustls_pemfile::certs(&mut pem.as_slice())
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{what} {path}: {e}"))?;
    if certs.is_empty() {
        return Err(format!("{what} {path}: no PEM certificate in it"));
    }
    Ok(certs)
}

fn read_key(path: &str) -> Result<PrivateKeyDer<'static>, String> {
    let pem =
        zeroize::Zeroizing::new(std::fs::read(path).map_err(|e| format!("sslkey {path}: {e}"))?);
    rustls_pemfile::private_key(&mut pem.as_slice())
        .map_err(|e| format!("sslkey {path}: {e}"))?
        .ok_or_else(|| format!("sslkey {path}: no PEM private key in it"))
}

/// The server-certificate check of one `sslmode`: none, the chain, or the chain and the name.
/// Handshake signatures are always checked.
#[derive(Debug)]
struct Verifier {
    inner: Option<Arc<WebPkiServerVerifier>>,
    names: bool,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(inner) = &self.inner else {
            return Ok(ServerCertVerified::assertion());
        };
        match inner.verify_server_cert(end_entity, intermediates, server_name, ocsp, now) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) if !self.names => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// tokio-postgres' TLS hook over rustls.
#[derive(Clone)]
pub struct RustlsConnect(Arc<rustls::ClientConfig>);

impl std::fmt::Debug for RustlsConnect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RustlsConnect")
    }
}

impl<S> MakeTlsConnect<S> for RustlsConnect
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = RustlsStream<S>;
    type TlsConnect = RustlsConnector;
    type Error = io::Error;

    fn make_tls_connect(&mut self, domain: &str) -> Result<RustlsConnector, io::Error> {
        let name = ServerName::try_from(domain.to_owned()).map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("invalid host name {domain:?}"),
            )
        })?;
        Ok(RustlsConnector {
            config: self.0.clone(),
            name,
        })
    }
}

pub struct RustlsConnector {
    config: Arc<rustls::ClientConfig>,
    name: ServerName<'static>,
}

impl<S> TlsConnect<S> for RustlsConnector
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = RustlsStream<S>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<RustlsStream<S>>> + Send>>;

    fn connect(self, stream: S) -> Self::Future {
        Box::pin(async move {
            let tls = tokio_rustls::TlsConnector::from(self.config)
                .connect(self.name, stream)
                .await?;
            Ok(RustlsStream(tls))
        })
    }
}

pub struct RustlsStream<S>(tokio_rustls::client::TlsStream<S>);

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for RustlsStream<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for RustlsStream<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> TlsStream for RustlsStream<S> {
    fn channel_binding(&self) -> ChannelBinding {
        ChannelBinding::none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(mode: &str) -> PgTlsParams {
        PgTlsParams {
            sslmode: mode.into(),
            ..PgTlsParams::default()
        }
    }

    #[test]
    fn modes_negotiate_as_libpq_does() {
        assert_eq!(p("disable").build().unwrap().0, Negotiate::Disable);
        assert!(p("disable").build().unwrap().1.is_none());
        for m in ["", "allow", "prefer"] {
            assert_eq!(p(m).build().unwrap().0, Negotiate::Prefer, "{m}");
        }
        assert_eq!(p("require").build().unwrap().0, Negotiate::Require);
        let e = p("sometimes").build().unwrap_err();
        assert!(e.contains("sslmode=sometimes"), "{e}");
        let e = PgTlsParams {
            sslmode: "verify-full".into(),
            sslrootcert: Some("/nonexistent/ca.pem".into()),
            ..PgTlsParams::default()
        }
        .build()
        .unwrap_err();
        assert!(e.contains("sslrootcert /nonexistent/ca.pem"), "{e}");
        let e = PgTlsParams {
            sslmode: "require".into(),
            sslcert: Some("/x".into()),
            ..PgTlsParams::default()
        }
        .build()
        .unwrap_err();
        assert!(e.contains("go together"), "{e}");
    }
}
