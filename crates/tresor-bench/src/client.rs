//! The HTTP client side: one kept-alive HTTP/1.1 connection per worker, over TCP or TLS, and
//! the setup client.
//!
//! A load generator wants as little between the clock and the socket as possible, so each
//! worker owns a raw hyper connection (no pool, no redirects, no retries, no header it does not
//! need) and reconnects only when the server closes it. That loop deliberately does not go
//! through `tresor_client`: retries would hide the failures being measured, and its pool,
//! per-request header building and deadline add work to every request being timed. It does
//! share `tresor_client`'s TLS configuration, so `-ca-cert`, `-tls-skip-verify` and
//! `-tls-server-name` mean the same on both paths.
//!
//! [`Api`] is the JSON client that workloads use for setup and cleanup: `tresor_client`'s
//! async client (connection pool, Vault's headers, retries on 412/5xx), with a timeout of at
//! least [`API_MIN_TIMEOUT`].

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::HOST;
use http::{HeaderValue, Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use serde_json::Value;
use tokio::net::TcpStream;
pub use tresor_client::TlsOptions;
use tresor_client::{ClientConfig, ClientError, TokenChoice};
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

/// Where requests go: the parsed address, for `https` a TLS connector, and the setup client.
pub struct Target {
    address: String,
    authority: String,
    host: HeaderValue,
    tls: Option<(tokio_rustls::TlsConnector, ServerName<'static>)>,
    timeout: Duration,
    setup: tresor_client::Client,
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
    pub fn new(address: &str, opts: &TlsOptions, timeout: Duration) -> Result<Self, BenchError> {
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
            let name = opts.server_name.as_deref().unwrap_or(bare_host).to_owned();
            let server_name = ServerName::try_from(name.clone())
                .map_err(|_| BenchError::Tls(format!("invalid server name {name:?}")))?;
            let config = tresor_client::tls::rustls_config(opts)
                .map_err(|e| BenchError::Tls(e.to_string()))?;
            Some((
                tokio_rustls::TlsConnector::from(Arc::new(config)),
                server_name,
            ))
        } else {
            None
        };
        let address = format!("{}://{authority}", if secure { "https" } else { "http" });
        let setup = tresor_client::Client::new(ClientConfig {
            address: address.clone(),
            tls: opts.clone(),
            timeout: timeout.max(API_MIN_TIMEOUT),
            user_agent: concat!("tresor-bench/", env!("CARGO_PKG_VERSION")).to_owned(),
            ..ClientConfig::default()
        })
        .map_err(|e| BenchError::Tls(e.to_string()))?;
        Ok(Target {
            address,
            host: HeaderValue::from_str(&authority).map_err(|_| invalid("bad host"))?,
            authority,
            tls,
            timeout,
            setup,
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

/// The shortest timeout setup and cleanup requests get: revoking a parent token revokes every
/// token a `token-create` run made, which can take a while on a slow store.
pub const API_MIN_TIMEOUT: Duration = Duration::from_secs(300);

/// The JSON client workloads use for setup and cleanup.
pub struct Api {
    target: Arc<Target>,
    token: Option<Token>,
    client: tresor_client::Client,
}

impl fmt::Debug for Api {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Api").field("target", &self.target).finish()
    }
}

fn zeroizing(t: &Token) -> Zeroizing<String> {
    Zeroizing::new(t.expose().to_owned())
}

/// A one-line description of a failed setup call: the status and Vault's `errors` list (as
/// [`describe_failure`]), or the transport failure.
pub fn describe_error(e: &ClientError) -> String {
    match e {
        ClientError::Api(api) => {
            let status =
                StatusCode::from_u16(api.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let body = match &api.raw {
                Some(raw) => raw.clone().into_bytes(),
                None => serde_json::to_vec(&serde_json::json!({ "errors": api.errors }))
                    .unwrap_or_default(),
            };
            describe_failure(status, &body)
        }
        other => other.to_string(),
    }
}

impl Api {
    /// A client for `target` that sends `token` (when there is one).
    pub fn new(target: Arc<Target>, token: Option<Token>) -> Self {
        let client = target.setup.with_token(token.as_ref().map(zeroizing));
        Api {
            target,
            token,
            client,
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

    /// The `tresor_client` client underneath, sending the caller's token.
    pub fn client(&self) -> &tresor_client::Client {
        &self.client
    }

    /// Awaits one `tresor_client` call, reporting a failure with `context`.
    pub async fn check<T>(
        &self,
        context: &str,
        call: impl std::future::Future<Output = Result<T, ClientError>>,
    ) -> Result<T, BenchError> {
        call.await.map_err(|e| BenchError::Server {
            context: context.to_owned(),
            message: describe_error(&e),
        })
    }

    /// Sends `method /v1/{path}` (a `?query` in `path` is sent as the query) with an optional
    /// JSON body as `token` (or the caller's token when `None`), and returns the raw response
    /// after `tresor_client`'s retries. Transport failures are `Err`.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        token: Option<&Token>,
    ) -> Result<Response, String> {
        let (path, query) = path.split_once('?').unwrap_or((path, ""));
        let mut req = tresor_client::Request::new(method, path);
        req.query = query
            .split('&')
            .filter(|kv| !kv.is_empty())
            .map(|kv| {
                let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
                (k.to_owned(), v.to_owned())
            })
            .collect();
        req.body = body.cloned();
        if let Some(t) = token {
            req.token = TokenChoice::Override(zeroizing(t));
        }
        let resp = self.client.send(&req).await.map_err(|e| e.to_string())?;
        Ok(Response {
            status: StatusCode::from_u16(resp.status).map_err(|e| e.to_string())?,
            body: Bytes::from(resp.body),
        })
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

    /// Answers each connection with the next of `replies` (status, body) and records the
    /// request lines; stops after the last reply.
    fn scripted(
        replies: Vec<(u16, &'static str)>,
    ) -> (String, std::thread::JoinHandle<Vec<String>>) {
        use std::io::{BufRead, BufReader, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = format!("http://{}", listener.local_addr().unwrap());
        let handle = std::thread::spawn(move || {
            let mut seen = Vec::new();
            for (status, body) in replies {
                let (mut s, _) = listener.accept().unwrap();
                s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                let mut r = BufReader::new(s.try_clone().unwrap());
                let mut line = String::new();
                r.read_line(&mut line).unwrap();
                seen.push(line.trim_end().to_owned());
                let mut length = 0;
                loop {
                    let mut h = String::new();
                    r.read_line(&mut h).unwrap();
                    if h.trim_end().is_empty() {
                        break;
                    }
                    if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
                        length = v.trim().parse().unwrap();
                    }
                }
                let mut b = vec![0u8; length];
                std::io::Read::read_exact(&mut r, &mut b).unwrap();
                let reply = format!(
                    "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                s.write_all(reply.as_bytes()).unwrap();
            }
            seen
        });
        (addr, handle)
    }

    #[test]
    fn setup_requests_keep_their_query_and_are_retried() {
        let (addr, server) = scripted(vec![
            (503, r#"{"errors":["busy"]}"#),
            (200, r#"{"data":{"keys":["a"]}}"#),
            (403, r#"{"errors":["permission denied"]}"#),
        ]);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let target = Target::new(&addr, &TlsOptions::default(), Duration::from_secs(10)).unwrap();
        let api = Api::new(Arc::new(target), Some(Token::new("t".into())));
        let v = rt
            .block_on(api.expect_ok("listing", Method::GET, "pki/certs?list=true", None, None))
            .unwrap();
        assert_eq!(v["data"]["keys"][0], "a");
        let e = rt
            .block_on(api.check("deleting policy p", api.client().delete_policy("p")))
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "deleting policy p: 403 Forbidden: permission denied"
        );
        assert_eq!(e.exit_code(), 2);
        let seen = server.join().unwrap();
        assert_eq!(
            seen,
            [
                "GET /v1/pki/certs?list=true HTTP/1.1",
                "GET /v1/pki/certs?list=true HTTP/1.1",
                "DELETE /v1/sys/policies/acl/p HTTP/1.1",
            ]
        );
    }

    #[test]
    fn tokens_never_print() {
        let t = Token::new("hvs.secret".into());
        assert!(!format!("{t:?}").contains("secret"));
        assert!(t.header().unwrap().is_sensitive());
    }
}
