//! The HTTP client side: one kept-alive HTTP/1.1 connection per worker, over TCP or TLS.
//!
//! A load generator wants as little between the clock and the socket as possible, so each
//! worker owns a raw hyper connection (no pool, no redirects, no retries) and reconnects only
//! when the server closes it. [`Api`] is the small JSON client that workloads use for setup and
//! cleanup; it keeps a few connections of its own so that seeding can run in parallel.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HOST};
use http::{HeaderValue, Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::Value;
use tokio::net::TcpStream;
use zeroize::Zeroizing;

use crate::error::BenchError;

/// The request header that carries a Vault token.
pub const TOKEN_HEADER: &str = "x-vault-token";

/// A Vault token. The text is zeroized on drop and never printed.
#[derive(Clone)]
pub struct Token(Arc<Zeroizing<String>>);

impl Token {
    /// Wraps a token string.
    pub fn new(s: String) -> Self {
        Token(Arc::new(Zeroizing::new(s)))
    }

    /// The token text, for request bodies such as `auth/token/lookup`.
    pub fn expose(&self) -> &str {
        self.0.as_str()
    }

    /// The token as a header value marked sensitive (hyper never logs it).
    pub fn header(&self) -> Result<HeaderValue, BenchError> {
        let mut v = HeaderValue::from_str(self.expose()).map_err(|_| BenchError::BadToken)?;
        v.set_sensitive(true);
        Ok(v)
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

/// How to verify the server's certificate.
#[derive(Clone, Debug, Default)]
pub struct TlsOptions {
    /// A PEM file of CA certificates to trust instead of the system's.
    pub ca_cert: Option<PathBuf>,
    /// Accept any certificate (testing only).
    pub skip_verify: bool,
    /// The name to verify the certificate against, instead of the address's host.
    pub server_name: Option<String>,
}

/// Where requests go: the parsed address and, for `https`, a TLS connector.
pub struct Target {
    address: String,
    authority: String,
    host: HeaderValue,
    tls: Option<(tokio_rustls::TlsConnector, ServerName<'static>)>,
    timeout: Duration,
}

impl fmt::Debug for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Target")
            .field("address", &self.address)
            .field("tls", &self.tls.is_some())
            .finish()
    }
}

/// A response with its whole body read.
#[derive(Debug)]
pub struct Response {
    pub status: StatusCode,
    pub body: Bytes,
}

/// One kept-alive HTTP/1.1 connection.
pub struct Conn {
    sender: SendRequest<Full<Bytes>>,
}

impl Target {
    /// Parses `address` (`http://host:port` or `https://host:port`; Vault's default port 8200
    /// when none is given) and prepares TLS for `https`.
    pub fn new(address: &str, tls: &TlsOptions, timeout: Duration) -> Result<Self, BenchError> {
        let invalid = |reason: &str| BenchError::InvalidValue {
            flag: "-address".into(),
            value: address.to_owned(),
            reason: reason.to_owned(),
        };
        let uri: Uri = address.parse().map_err(|_| invalid("not a URL"))?;
        let secure = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => return Err(invalid("the scheme must be http or https")),
        };
        let host = uri.host().ok_or_else(|| invalid("no host"))?;
        if uri.path() != "/" && !uri.path().is_empty() {
            return Err(invalid("the address must not have a path"));
        }
        let port = uri.port_u16().unwrap_or(8200);
        let bare_host = host.trim_start_matches('[').trim_end_matches(']');
        let authority = if bare_host.contains(':') {
            format!("[{bare_host}]:{port}")
        } else {
            format!("{bare_host}:{port}")
        };
        let tls = if secure {
            let name = tls.server_name.as_deref().unwrap_or(bare_host).to_owned();
            let server_name = ServerName::try_from(name.clone())
                .map_err(|_| BenchError::Tls(format!("invalid server name {name:?}")))?;
            Some((
                tokio_rustls::TlsConnector::from(Arc::new(tls_config(tls)?)),
                server_name,
            ))
        } else {
            None
        };
        Ok(Target {
            address: format!("{}://{authority}", if secure { "https" } else { "http" }),
            host: HeaderValue::from_str(&authority).map_err(|_| invalid("bad host"))?,
            authority,
            tls,
            timeout,
        })
    }

    /// The normalized address, for messages.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// The `Host` header value every request carries.
    pub fn host(&self) -> &HeaderValue {
        &self.host
    }

    /// The per-request timeout.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Opens a new connection.
    pub async fn connect(&self) -> Result<Conn, String> {
        let tcp = tokio::time::timeout(self.timeout, TcpStream::connect(&self.authority))
            .await
            .map_err(|_| "connect timed out".to_owned())?
            .map_err(|e| e.to_string())?;
        tcp.set_nodelay(true).map_err(|e| e.to_string())?;
        match &self.tls {
            None => handshake(tcp).await,
            Some((connector, name)) => {
                let stream =
                    tokio::time::timeout(self.timeout, connector.connect(name.clone(), tcp))
                        .await
                        .map_err(|_| "tls handshake timed out".to_owned())?
                        .map_err(|e| format!("tls handshake: {e}"))?;
                handshake(stream).await
            }
        }
    }

    /// Builds a request for `path` (which starts with `/`).
    pub fn request(
        &self,
        method: Method,
        uri: Uri,
        token: Option<&HeaderValue>,
        body: Bytes,
    ) -> Request<Full<Bytes>> {
        let mut req = Request::new(Full::new(body));
        *req.method_mut() = method;
        *req.uri_mut() = uri;
        let h = req.headers_mut();
        h.insert(HOST, self.host.clone());
        if let Some(t) = token {
            h.insert(TOKEN_HEADER, t.clone());
        }
        req
    }
}

async fn handshake<S>(stream: S) -> Result<Conn, String>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (sender, conn) = http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        // The connection ends when the sender is dropped or the server closes it; either way
        // the worker notices on its next request.
        let _ = conn.await;
    });
    Ok(Conn { sender })
}

impl Conn {
    /// Sends one request and reads the whole response body.
    pub async fn send(&mut self, req: Request<Full<Bytes>>) -> Result<Response, String> {
        self.sender.ready().await.map_err(|e| e.to_string())?;
        let resp = self
            .sender
            .send_request(req)
            .await
            .map_err(|e| e.to_string())?;
        let status = resp.status();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        Ok(Response { status, body })
    }

    /// Whether the connection can take another request.
    pub fn is_open(&self) -> bool {
        !self.sender.is_closed()
    }
}

/// A one-line description of a failed response: the status and Vault's `errors` list.
pub fn describe_failure(status: StatusCode, body: &[u8]) -> String {
    let detail = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| {
            v.get("errors").and_then(Value::as_array).map(|errs| {
                errs.iter()
                    .map(|e| {
                        e.as_str()
                            .map(str::to_owned)
                            .unwrap_or_else(|| e.to_string())
                    })
                    .collect::<Vec<_>>()
                    .join("; ")
            })
        })
        .unwrap_or_else(|| String::from_utf8_lossy(body).trim().to_owned());
    let mut s = format!("{}", status);
    if !detail.is_empty() {
        s.push_str(": ");
        s.push_str(&detail);
    }
    if s.len() > 240 {
        let mut cut = 240;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push('…');
    }
    s
}

fn tls_config(opts: &TlsOptions) -> Result<rustls::ClientConfig, BenchError> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| BenchError::Tls(e.to_string()))?;
    let mut config = if opts.skip_verify {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate(provider)))
            .with_no_client_auth()
    } else {
        let mut roots = rustls::RootCertStore::empty();
        let file = match &opts.ca_cert {
            Some(p) => p.clone(),
            None => system_ca_file().ok_or_else(|| {
                BenchError::Tls(
                    "no CA bundle found: use -ca-cert=FILE (or VAULT_CACERT), or -tls-skip-verify"
                        .into(),
                )
            })?,
        };
        for cert in read_certs(&file)? {
            roots
                .add(cert)
                .map_err(|e| BenchError::Tls(format!("{}: {e}", file.display())))?;
        }
        builder.with_root_certificates(roots).with_no_client_auth()
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

fn system_ca_file() -> Option<PathBuf> {
    let candidates = std::env::var_os("SSL_CERT_FILE")
        .map(PathBuf::from)
        .into_iter()
        .chain(
            [
                "/etc/ssl/certs/ca-certificates.crt",
                "/etc/pki/tls/certs/ca-bundle.crt",
                "/etc/ssl/cert.pem",
            ]
            .map(PathBuf::from),
        );
    candidates.into_iter().find(|p| p.is_file())
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, BenchError> {
    let data = std::fs::read(path)
        .map_err(|e| BenchError::Tls(format!("reading {}: {e}", path.display())))?;
    let certs: Vec<_> = rustls_pemfile::certs(&mut data.as_slice())
        .collect::<Result<_, _>>()
        .map_err(|e| BenchError::Tls(format!("{}: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(BenchError::Tls(format!(
            "{}: no PEM certificate found",
            path.display()
        )));
    }
    Ok(certs)
}

/// `-tls-skip-verify`: accepts any certificate chain but still checks the handshake
/// signatures, so the connection is encrypted to whoever holds the presented key.
#[derive(Debug)]
struct AcceptAnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
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
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// The shortest timeout setup and cleanup requests get: revoking a parent token revokes every
/// token a `token-create` run made, which can take a while on a slow store.
const API_MIN_TIMEOUT: Duration = Duration::from_secs(300);

/// The JSON client workloads use for setup and cleanup.
pub struct Api {
    target: Arc<Target>,
    token: Option<Token>,
    idle: Mutex<Vec<Conn>>,
    timeout: Duration,
}

impl fmt::Debug for Api {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Api").field("target", &self.target).finish()
    }
}

impl Api {
    /// A client for `target` that sends `token` (when there is one).
    pub fn new(target: Arc<Target>, token: Option<Token>) -> Self {
        let timeout = target.timeout().max(API_MIN_TIMEOUT);
        Api {
            target,
            token,
            idle: Mutex::new(Vec::new()),
            timeout,
        }
    }

    /// The target this client talks to.
    pub fn target(&self) -> &Arc<Target> {
        &self.target
    }

    /// The caller's token, if any.
    pub fn token(&self) -> Option<&Token> {
        self.token.as_ref()
    }

    /// Sends `method /v1/{path}` with an optional JSON body as `token` (or the caller's token
    /// when `None`), and returns the raw response. Transport failures are `Err`.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        token: Option<&Token>,
    ) -> Result<Response, String> {
        let uri: Uri = format!("/v1/{}", path.trim_start_matches('/'))
            .parse()
            .map_err(|_| format!("invalid path {path:?}"))?;
        let token = match token.or(self.token.as_ref()) {
            Some(t) => Some(t.header().map_err(|e| e.to_string())?),
            None => None,
        };
        let body = body
            .map(|b| Bytes::from(serde_json::to_vec(b).unwrap_or_default()))
            .unwrap_or_default();
        let has_body = !body.is_empty();
        let mut req = self.target.request(method, uri, token.as_ref(), body);
        if has_body {
            req.headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        }
        let pooled = self.idle.lock().map(|mut v| v.pop()).unwrap_or(None);
        let mut conn = match pooled {
            Some(c) if c.is_open() => c,
            _ => self.target.connect().await?,
        };
        let resp = tokio::time::timeout(self.timeout, conn.send(req))
            .await
            .map_err(|_| "request timed out".to_owned())??;
        if let Ok(mut idle) = self.idle.lock() {
            idle.push(conn);
        }
        Ok(resp)
    }

    /// Like [`Api::send`], but any non-2xx answer is an error, reported with `context`; the
    /// body is parsed as JSON (`Null` when empty).
    pub async fn expect_ok(
        &self,
        context: &str,
        method: Method,
        path: &str,
        body: Option<&Value>,
        token: Option<&Token>,
    ) -> Result<Value, BenchError> {
        let resp = self
            .send(method, path, body, token)
            .await
            .map_err(|e| BenchError::Server {
                context: context.to_owned(),
                message: e,
            })?;
        if !resp.status.is_success() {
            return Err(BenchError::Server {
                context: context.to_owned(),
                message: describe_failure(resp.status, &resp.body),
            });
        }
        if resp.body.is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&resp.body).map_err(|e| BenchError::Server {
            context: context.to_owned(),
            message: format!("response is not JSON: {e}"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_parse_with_vaults_default_port() {
        let t = Target::new(
            "http://127.0.0.1",
            &TlsOptions::default(),
            Duration::from_secs(1),
        )
        .unwrap();
        assert_eq!(t.address(), "http://127.0.0.1:8200");
        let t = Target::new(
            "http://localhost:9000/",
            &TlsOptions::default(),
            Duration::from_secs(1),
        )
        .unwrap();
        assert_eq!(t.address(), "http://localhost:9000");
        let t = Target::new(
            "http://[::1]:8300",
            &TlsOptions::default(),
            Duration::from_secs(1),
        )
        .unwrap();
        assert_eq!(t.address(), "http://[::1]:8300");
    }

    #[test]
    fn bad_addresses_are_named() {
        for (addr, reason) in [
            ("ftp://x:1", "scheme"),
            ("127.0.0.1:8200", "scheme"),
            ("http://h:1/v1", "path"),
            ("not a url", "URL"),
        ] {
            let e = Target::new(addr, &TlsOptions::default(), Duration::from_secs(1)).unwrap_err();
            let msg = e.to_string();
            assert!(
                msg.contains(reason) && msg.contains("-address"),
                "{addr}: {msg}"
            );
            assert_eq!(e.exit_code(), 1);
        }
    }

    #[test]
    fn a_missing_ca_file_is_a_tls_error() {
        let opts = TlsOptions {
            ca_cert: Some("/nonexistent/ca.pem".into()),
            ..TlsOptions::default()
        };
        let e = Target::new("https://127.0.0.1:8200", &opts, Duration::from_secs(1)).unwrap_err();
        assert!(matches!(e, BenchError::Tls(_)), "{e}");
        assert!(e.to_string().contains("/nonexistent/ca.pem"));
    }

    #[test]
    fn failures_show_vaults_errors() {
        let s = describe_failure(
            StatusCode::FORBIDDEN,
            br#"{"errors":["permission denied"]}"#,
        );
        assert_eq!(s, "403 Forbidden: permission denied");
        let s = describe_failure(StatusCode::BAD_GATEWAY, b"upstream down\n");
        assert_eq!(s, "502 Bad Gateway: upstream down");
    }

    #[test]
    fn tokens_never_print() {
        let t = Token::new("hvs.secret".into());
        assert!(!format!("{t:?}").contains("secret"));
        assert!(t.header().unwrap().is_sensitive());
    }
}
