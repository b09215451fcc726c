//! TLS for clients: which servers to trust and which certificate to present, as one
//! `rustls::ClientConfig` that both the HTTP client and `tresor bench`'s raw load connections
//! use, so the two cannot disagree about what `-ca-cert` or `-tls-skip-verify` mean.
//!
//! Trust: the PEM CA file (`VAULT_CACERT`), PEM text (`VAULT_CACERT_BYTES`) and every file
//! of the CA directory (`VAULT_CAPATH`) together; with none of them, the system trust store.
//! (Vault's Go client uses only the first of file, bytes and directory that is set; Tresor's
//! CLI has always trusted all that are named, and keeps doing so.)
//!
//! A server certificate that is itself one of the named CA certificates (what
//! `openssl req -x509` makes: self-signed, `CA:TRUE`) is accepted when it is valid now and
//! for the server's name, as Go's and OpenSSL's verifiers accept it; webpki alone refuses a CA
//! certificate as an end entity.
//!
//! `skip_verify` accepts any certificate chain but still checks the handshake signatures, so
//! the session is at least bound to whoever holds the presented key. `server_name` verifies
//! the certificate against that name instead of the address's host, like Go's
//! `tls.Config.ServerName`; unlike Go, the SNI sent is still the address's host (reqwest sets
//! it), which only matters to servers that pick a certificate by SNI.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};

use crate::error::ConfigError;

/// How to verify the server and what to present to it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TlsOptions {
    /// A PEM file of CA certificates to trust instead of the system's (`VAULT_CACERT`).
    pub ca_cert: Option<PathBuf>,
    /// PEM text of CA certificates to trust (`VAULT_CACERT_BYTES`).
    pub ca_cert_pem: Option<String>,
    /// A directory of PEM CA files to trust (`VAULT_CAPATH`).
    pub ca_path: Option<PathBuf>,
    /// A PEM client certificate (chain) for TLS client authentication (`VAULT_CLIENT_CERT`).
    pub client_cert: Option<PathBuf>,
    /// The PEM private key of the client certificate (`VAULT_CLIENT_KEY`).
    pub client_key: Option<PathBuf>,
    /// Accept any server certificate (`VAULT_SKIP_VERIFY`). Insecure; for testing.
    pub skip_verify: bool,
    /// Verify the certificate against this name instead of the address's host
    /// (`VAULT_TLS_SERVER_NAME`).
    pub server_name: Option<String>,
}

impl TlsOptions {
    /// Whether any CA was named explicitly (so the system trust store is not consulted).
    pub fn has_custom_roots(&self) -> bool {
        self.ca_cert.is_some() || self.ca_cert_pem.is_some() || self.ca_path.is_some()
    }
}

fn tls_error(what: impl Into<String>, reason: impl ToString) -> ConfigError {
    ConfigError::Tls {
        what: what.into(),
        reason: reason.to_string(),
    }
}

fn read_file(path: &Path) -> Result<Vec<u8>, ConfigError> {
    std::fs::read(path).map_err(|e| tls_error(path.display().to_string(), e))
}

fn pem_certs(pem: &[u8], what: &str) -> Result<Vec<CertificateDer<'static>>, ConfigError> {
    let certs: Vec<_> = rustls_pemfile::certs(&mut &pem[..])
        .collect::<Result<_, _>>()
        .map_err(|e| tls_error(what, e))?;
    if certs.is_empty() {
        return Err(tls_error(what, "no PEM certificates found"));
    }
    Ok(certs)
}

/// The explicitly named CA certificates, in a stable order (file, PEM text, then the
/// directory's files sorted by name).
fn custom_roots(opts: &TlsOptions) -> Result<Vec<CertificateDer<'static>>, ConfigError> {
    let mut out = Vec::new();
    if let Some(path) = &opts.ca_cert {
        out.extend(pem_certs(&read_file(path)?, &path.display().to_string())?);
    }
    if let Some(pem) = &opts.ca_cert_pem {
        out.extend(pem_certs(pem.as_bytes(), "VAULT_CACERT_BYTES")?);
    }
    if let Some(dir) = &opts.ca_path {
        let entries =
            std::fs::read_dir(dir).map_err(|e| tls_error(dir.display().to_string(), e))?;
        let mut files: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.is_file())
            .collect();
        files.sort();
        for file in files {
            out.extend(pem_certs(&read_file(&file)?, &file.display().to_string())?);
        }
    }
    Ok(out)
}

fn system_roots() -> Result<Vec<CertificateDer<'static>>, ConfigError> {
    let found = rustls_native_certs::load_native_certs();
    if found.certs.is_empty() {
        let reason = found
            .errors
            .first()
            .map(|e| e.to_string())
            .unwrap_or_else(|| "no certificates found".to_string());
        return Err(tls_error(
            "the system trust store",
            format!("{reason}; name a CA with VAULT_CACERT or -ca-cert"),
        ));
    }
    Ok(found.certs)
}

fn identity(
    opts: &TlsOptions,
) -> Result<Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>, ConfigError> {
    let (cert, key) = match (&opts.client_cert, &opts.client_key) {
        (Some(c), Some(k)) => (c, k),
        (None, None) => return Ok(None),
        _ => return Err(ConfigError::HalfIdentity),
    };
    let chain = pem_certs(&read_file(cert)?, &cert.display().to_string())?;
    let key_pem = zeroize::Zeroizing::new(read_file(key)?);
    let key_der = rustls_pemfile::private_key(&mut &key_pem[..])
        .map_err(|e| tls_error(key.display().to_string(), e))?
        .ok_or_else(|| tls_error(key.display().to_string(), "no PEM private key found"))?;
    Ok(Some((chain, key_der)))
}

/// The provider every Tresor TLS connection uses (aws-lc-rs), whatever the process default.
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// The client TLS configuration `opts` describe. With no CA named, the system trust store is
/// loaded and must not be empty.
pub fn rustls_config(opts: &TlsOptions) -> Result<rustls::ClientConfig, ConfigError> {
    build(opts, true)
}

/// Like [`rustls_config`]; with `need_roots` false an empty or missing system trust store is
/// not an error (a client for an `http://` address never verifies anything, and should start
/// on a machine without CA bundle).
pub(crate) fn build(
    opts: &TlsOptions,
    need_roots: bool,
) -> Result<rustls::ClientConfig, ConfigError> {
    let provider = provider();
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_error("the TLS configuration", e))?;
    let builder = if opts.skip_verify {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate(provider)))
    } else {
        let certs = if opts.has_custom_roots() {
            custom_roots(opts)?
        } else {
            match system_roots() {
                Ok(c) => c,
                Err(e) if need_roots => return Err(e),
                Err(_) => Vec::new(),
            }
        };
        let mut roots = RootCertStore::empty();
        if opts.has_custom_roots() {
            for cert in &certs {
                roots
                    .add(cert.clone())
                    .map_err(|e| tls_error("a CA certificate", e))?;
            }
        } else {
            // A system store may hold a certificate webpki cannot use; skip it, as Go does.
            roots.add_parsable_certificates(certs.iter().cloned());
        }
        let pinned = opts
            .server_name
            .as_ref()
            .map(|n| {
                ServerName::try_from(n.clone()).map_err(|_| {
                    tls_error(
                        "VAULT_TLS_SERVER_NAME",
                        format!("invalid server name {n:?}"),
                    )
                })
            })
            .transpose()?;
        if roots.is_empty() {
            // An `http://` client without a system bundle: nothing to verify against.
            builder.with_root_certificates(roots)
        } else {
            let inner = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| tls_error("the trust store", e))?;
            let verifier = Verifier {
                inner,
                name: pinned,
                // Only certificates the user named can stand in for their own chain.
                trusted_leaves: if opts.has_custom_roots() {
                    certs
                } else {
                    Vec::new()
                },
            };
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(verifier))
        }
    };
    let mut config = match identity(opts)? {
        Some((chain, key)) => builder.with_client_auth_cert(chain, key).map_err(|e| {
            tls_error(
                opts.client_cert
                    .as_deref()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default(),
                e,
            )
        })?,
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// webpki's verification, plus two things Go's client does: verify against a fixed name
/// (`VAULT_TLS_SERVER_NAME`) rather than the name the connection was opened with, and accept a
/// server certificate that is byte for byte one of the named CA certificates.
#[derive(Debug)]
struct Verifier {
    inner: Arc<WebPkiServerVerifier>,
    name: Option<ServerName<'static>>,
    trusted_leaves: Vec<CertificateDer<'static>>,
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let name = self.name.as_ref().unwrap_or(server_name);
        let refused =
            match self
                .inner
                .verify_server_cert(end_entity, intermediates, name, ocsp_response, now)
            {
                Ok(ok) => return Ok(ok),
                Err(e) => e,
            };
        // webpki checks an end entity's validity period before its basic constraints, so
        // "a CA used as end entity" means the certificate is otherwise current; what is left
        // to check for a trusted self-signed certificate is the name.
        if is_ca_used_as_end_entity(&refused)
            && self
                .trusted_leaves
                .iter()
                .any(|c| c.as_ref() == end_entity.as_ref())
        {
            let parsed = ParsedCertificate::try_from(end_entity)?;
            rustls::client::verify_server_name(&parsed, name)?;
            return Ok(ServerCertVerified::assertion());
        }
        Err(refused)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

fn is_ca_used_as_end_entity(e: &rustls::Error) -> bool {
    match e {
        rustls::Error::InvalidCertificate(rustls::CertificateError::Other(other)) => matches!(
            other.0.downcast_ref::<webpki::Error>(),
            Some(webpki::Error::CaUsedAsEndEntity)
        ),
        _ => false,
    }
}

/// `skip_verify`: accepts any certificate chain but still checks the handshake signatures, so
/// the connection is encrypted to whoever holds the presented key.
#[derive(Debug)]
struct AcceptAnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
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
            &self.0.signature_verification_algorithms,
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
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Whether a transport error is a certificate the client refused: retrying cannot help, so
/// the retry policy gives up at once (as Go's `retryablehttp` does for x509 errors).
pub(crate) fn is_certificate_error(err: &(dyn std::error::Error + 'static)) -> bool {
    has_rustls_error(err, |e| matches!(e, rustls::Error::InvalidCertificate(_)))
}

/// Whether a transport error is the server's first bytes not being a TLS record: a plain-HTTP
/// server answering an HTTPS request (Go's client says "server gave HTTP response to HTTPS
/// client").
pub(crate) fn is_plain_http_answer(err: &(dyn std::error::Error + 'static)) -> bool {
    has_rustls_error(err, |e| {
        matches!(
            e,
            rustls::Error::InvalidMessage(rustls::InvalidMessage::InvalidContentType)
        )
    })
}

/// Whether a rustls error matching `pred` is anywhere in the chain.
fn has_rustls_error(
    err: &(dyn std::error::Error + 'static),
    pred: impl Fn(&rustls::Error) -> bool,
) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = cur {
        // `io::Error` hides what it wraps from `source()`, and the TLS stack wraps a rustls
        // error in more than one of them: unwrap them explicitly.
        let mut inner = e;
        loop {
            if inner.downcast_ref::<rustls::Error>().is_some_and(&pred) {
                return true;
            }
            match inner
                .downcast_ref::<std::io::Error>()
                .and_then(|io| io.get_ref())
            {
                Some(wrapped) => inner = wrapped,
                None => break,
            }
        }
        cur = e.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_files_and_half_identities_are_named() {
        let opts = TlsOptions {
            ca_cert: Some("/nonexistent/ca.pem".into()),
            ..TlsOptions::default()
        };
        let e = rustls_config(&opts).unwrap_err();
        assert!(e.to_string().contains("/nonexistent/ca.pem"), "{e}");
        let opts = TlsOptions {
            client_cert: Some("/nonexistent/cert.pem".into()),
            skip_verify: true,
            ..TlsOptions::default()
        };
        assert!(matches!(
            rustls_config(&opts),
            Err(ConfigError::HalfIdentity)
        ));
    }

    #[test]
    fn a_file_without_certificates_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("empty.pem");
        std::fs::write(&path, "not a certificate\n").unwrap();
        let opts = TlsOptions {
            ca_cert: Some(path),
            ..TlsOptions::default()
        };
        let e = rustls_config(&opts).unwrap_err().to_string();
        assert!(e.contains("no PEM certificates found"), "{e}");
        let opts = TlsOptions {
            ca_cert_pem: Some("garbage".into()),
            ..TlsOptions::default()
        };
        let e = rustls_config(&opts).unwrap_err().to_string();
        assert!(e.contains("VAULT_CACERT_BYTES"), "{e}");
    }

    #[test]
    fn an_invalid_server_name_is_refused() {
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let opts = TlsOptions {
            ca_cert_pem: Some(cert.cert.pem()),
            server_name: Some("not a name!".into()),
            ..TlsOptions::default()
        };
        let e = rustls_config(&opts).unwrap_err().to_string();
        assert!(e.contains("VAULT_TLS_SERVER_NAME"), "{e}");
    }

    #[test]
    fn certificate_errors_are_recognised_through_io_errors() {
        let cert_err = rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer);
        let io = std::io::Error::other(cert_err);
        assert!(is_certificate_error(&io));
        // The TLS stack wraps it twice.
        let twice = std::io::Error::other(std::io::Error::other(
            rustls::Error::InvalidCertificate(rustls::CertificateError::BadSignature),
        ));
        assert!(is_certificate_error(&twice));
        let other = std::io::Error::other(rustls::Error::DecryptError);
        assert!(!is_certificate_error(&other));
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert!(!is_certificate_error(&refused));
        // An HTTP answer to a TLS hello: not a certificate error, but recognised as such.
        let http = std::io::Error::other(std::io::Error::other(rustls::Error::InvalidMessage(
            rustls::InvalidMessage::InvalidContentType,
        )));
        assert!(!is_certificate_error(&http));
        assert!(is_plain_http_answer(&http));
        assert!(!is_plain_http_answer(&other));
    }
}
