//! A scripted HTTP(S) server on 127.0.0.1 for the client's tests, and a small PKI for the TLS
//! ones.
//!
//! The server runs on its own thread and runtime, so both the async client (in a test's own
//! runtime) and the blocking facade (on the test thread) can talk to it. It answers one
//! request per connection (`Connection: close`), records every request and counts
//! connections, and stops when dropped. Every read has a deadline, so a confused client
//! cannot hang a test.

#![allow(dead_code)] // reason: each test binary uses its own subset of the harness

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// How long the server waits for any one read or handshake.
const IO_DEADLINE: Duration = Duration::from_secs(5);

/// One request as the server saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    /// Path and query as sent, e.g. `/v1/secret/foo?list=true`.
    pub target: String,
    /// Headers, names lowercased.
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Seen {
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// What the server answers.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Reply {
    pub fn new(status: u16, body: impl Into<String>) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            body: body.into(),
        }
    }

    pub fn header(mut self, k: &str, v: &str) -> Reply {
        self.headers.push((k.to_string(), v.to_string()));
        self
    }
}

type Handler = dyn Fn(usize, &Seen) -> Reply + Send + Sync;

/// The running server; stops when dropped.
pub struct TestServer {
    addr: SocketAddr,
    tls: bool,
    seen: Arc<Mutex<Vec<Seen>>>,
    connections: Arc<AtomicUsize>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl TestServer {
    /// A plain-HTTP server; `handler` gets the 0-based request number and the request.
    pub fn start(handler: impl Fn(usize, &Seen) -> Reply + Send + Sync + 'static) -> TestServer {
        Self::spawn(None, Arc::new(handler))
    }

    /// An HTTPS server with `config`.
    pub fn start_tls(
        config: rustls::ServerConfig,
        handler: impl Fn(usize, &Seen) -> Reply + Send + Sync + 'static,
    ) -> TestServer {
        Self::spawn(Some(Arc::new(config)), Arc::new(handler))
    }

    fn spawn(tls: Option<Arc<rustls::ServerConfig>>, handler: Arc<Handler>) -> TestServer {
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        std_listener.set_nonblocking(true).expect("nonblocking");
        let addr = std_listener.local_addr().expect("local addr");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let connections = Arc::new(AtomicUsize::new(0));
        let (stop_tx, mut stop_rx) = tokio::sync::oneshot::channel::<()>();
        let is_tls = tls.is_some();
        let (seen2, conns2) = (seen.clone(), connections.clone());
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("server runtime");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(std_listener).expect("listener");
                let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
                loop {
                    tokio::select! {
                        _ = &mut stop_rx => break,
                        accepted = listener.accept() => {
                            let Ok((tcp, _)) = accepted else { continue };
                            conns2.fetch_add(1, Ordering::SeqCst);
                            let (handler, seen, acceptor) =
                                (handler.clone(), seen2.clone(), acceptor.clone());
                            tokio::spawn(async move {
                                match acceptor {
                                    None => serve(tcp, &*handler, &seen).await,
                                    Some(a) => {
                                        if let Ok(Ok(s)) =
                                            tokio::time::timeout(IO_DEADLINE, a.accept(tcp)).await
                                        {
                                            serve(s, &*handler, &seen).await;
                                        }
                                    }
                                }
                            });
                        }
                    }
                }
            });
            // Dropping the runtime cancels any connection task still running.
        });
        TestServer {
            addr,
            tls: is_tls,
            seen,
            connections,
            stop: Some(stop_tx),
            thread: Some(thread),
        }
    }

    /// `http://127.0.0.1:PORT` (or `https://`).
    pub fn url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Every request answered so far, in order.
    pub fn requests(&self) -> Vec<Seen> {
        self.seen.lock().expect("lock").clone()
    }

    /// TCP connections accepted so far (a TLS handshake the client aborted counts too).
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

async fn read_request<S: AsyncRead + Unpin>(s: &mut S) -> Option<Seen> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = tokio::time::timeout(IO_DEADLINE, s.read(&mut chunk))
            .await
            .ok()?
            .ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut first = lines.next()?.split_whitespace();
    let (method, target) = (first.next()?.to_string(), first.next()?.to_string());
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let length: usize = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = buf[head_end..].to_vec();
    while body.len() < length {
        let n = tokio::time::timeout(IO_DEADLINE, s.read(&mut chunk))
            .await
            .ok()?
            .ok()?;
        if n == 0 {
            return None;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    Some(Seen {
        method,
        target,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

async fn serve<S: AsyncRead + AsyncWrite + Unpin>(
    mut s: S,
    handler: &Handler,
    seen: &Mutex<Vec<Seen>>,
) {
    let Some(req) = read_request(&mut s).await else {
        return;
    };
    let n = {
        let mut all = seen.lock().expect("lock");
        all.push(req.clone());
        all.len() - 1
    };
    let reply = handler(n, &req);
    let mut out = format!(
        "HTTP/1.1 {} Test\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
        reply.status,
        reply.body.len()
    );
    for (k, v) in &reply.headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str("\r\n");
    out.push_str(&reply.body);
    let _ = tokio::time::timeout(IO_DEADLINE, s.write_all(out.as_bytes())).await;
    let _ = tokio::time::timeout(IO_DEADLINE, s.shutdown()).await;
}

/// A CA and what it issued: a server certificate for `localhost` and `127.0.0.1`, and a
/// client certificate.
pub struct Pki {
    pub ca_pem: String,
    ca_der: CertificateDer<'static>,
    server_der: CertificateDer<'static>,
    server_key: Vec<u8>,
    pub client_cert_pem: String,
    pub client_key_pem: String,
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

impl Pki {
    pub fn new() -> Pki {
        let ca_key = rcgen::KeyPair::generate().expect("ca key");
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "tresor-client test CA");
        let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).expect("ca");

        let server_key = rcgen::KeyPair::generate().expect("server key");
        let server = rcgen::CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()])
            .expect("params")
            .signed_by(&server_key, &ca)
            .expect("server cert");

        let client_key = rcgen::KeyPair::generate().expect("client key");
        let mut client_params =
            rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        client_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "tresor-client test client");
        let client = client_params
            .signed_by(&client_key, &ca)
            .expect("client cert");

        Pki {
            ca_pem: ca.pem(),
            ca_der: ca.der().clone(),
            server_der: server.der().clone(),
            server_key: server_key.serialize_der(),
            client_cert_pem: client.pem(),
            client_key_pem: client_key.serialize_pem(),
        }
    }

    fn key(&self) -> PrivateKeyDer<'static> {
        PrivatePkcs8KeyDer::from(self.server_key.clone()).into()
    }

    /// A server presenting the server certificate and asking for no client certificate.
    pub fn server_config(&self) -> rustls::ServerConfig {
        rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_no_client_auth()
            .with_single_cert(vec![self.server_der.clone()], self.key())
            .expect("server config")
    }

    /// A server that requires a client certificate issued by this CA.
    pub fn mtls_server_config(&self) -> rustls::ServerConfig {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.ca_der.clone()).expect("root");
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            Arc::new(roots),
            provider(),
        )
        .build()
        .expect("client verifier");
        rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_client_cert_verifier(verifier)
            .with_single_cert(vec![self.server_der.clone()], self.key())
            .expect("server config")
    }
}

/// Vault's `{"errors": [...]}`.
pub fn errors(msgs: &[&str]) -> String {
    serde_json::json!({ "errors": msgs }).to_string()
}

/// A client configuration for `address` with waits short enough for tests.
pub fn fast_config(address: &str) -> tresor_client::ClientConfig {
    tresor_client::ClientConfig {
        address: address.to_string(),
        min_retry_wait: Duration::from_millis(5),
        max_retry_wait: Duration::from_millis(10),
        timeout: Duration::from_secs(10),
        ..tresor_client::ClientConfig::default()
    }
}
