//! Shared pieces of the in-process tests: a dev core with the methods registered on a clock
//! the tests move, keys made with openssl, JWT signing, and a tiny HTTP server on 127.0.0.1
//! (JWKS, a mock OIDC provider, a TokenReview endpoint). All traffic stays on loopback.

#![allow(
    dead_code,
    reason = "each test file uses a different part of this module"
)]

use std::collections::HashMap;
use std::process::Command;
use std::sync::Arc;

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Map, Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tresor_core::{Core, CoreConfig, CoreError, CoreRequest, CoreResponse};
use tresor_physical::InmemBackend;
use tresor_sdk::Operation;
use tresor_sdk::clock::ManualClock;

pub const T0: i64 = 1_700_000_000;

pub struct T {
    pub core: Core,
    pub clock: Arc<ManualClock>,
    pub root: String,
}

pub fn obj(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        Value::Null => Map::new(),
        other => panic!("request data must be an object, got {other}"),
    }
}

/// A dev core with `jwt` and `kubernetes` credential types; `auth/jwt`, `auth/oidc` and
/// `auth/kubernetes` mounted.
pub async fn setup() -> T {
    let clock = Arc::new(ManualClock::at(T0));
    let cfg = CoreConfig {
        clock: clock.clone(),
        ..Default::default()
    };
    let mut core = Core::new(Arc::new(InmemBackend::new()), cfg);
    for kind in ["jwt", "oidc"] {
        let c = clock.clone();
        core.register_credential(
            kind,
            Arc::new(move |_| Ok(tresor_jwt::backend_with_clock(c.clone()))),
        );
    }
    let c = clock.clone();
    core.register_credential(
        "kubernetes",
        Arc::new(move |_| Ok(tresor_jwt::kubernetes_backend_with_clock(c.clone()))),
    );
    let (_key, root) = core.init_dev(Some("root".into())).await.expect("dev init");
    let t = T {
        core,
        clock,
        root: root.to_string(),
    };
    for (path, kind) in [
        ("jwt", "jwt"),
        ("oidc", "oidc"),
        ("kubernetes", "kubernetes"),
    ] {
        t.ok(
            Operation::Update,
            &format!("sys/auth/{path}"),
            json!({ "type": kind }),
        )
        .await;
    }
    t
}

impl T {
    pub async fn req_as(
        &self,
        op: Operation,
        path: &str,
        data: Value,
        token: Option<&str>,
    ) -> Result<CoreResponse, CoreError> {
        let mut r = CoreRequest::new(op, path, obj(data), token);
        r.remote_addr = Some("127.0.0.1".into());
        self.core.handle(r).await
    }

    pub async fn req(
        &self,
        op: Operation,
        path: &str,
        data: Value,
    ) -> Result<CoreResponse, CoreError> {
        self.req_as(op, path, data, Some(&self.root.clone())).await
    }

    pub async fn ok(&self, op: Operation, path: &str, data: Value) -> CoreResponse {
        match self.req(op, path, data).await {
            Ok(r) => r,
            Err(e) => panic!("{op:?} {path} failed: {e}"),
        }
    }

    pub async fn data(&self, op: Operation, path: &str, data: Value) -> Map<String, Value> {
        self.ok(op, path, data)
            .await
            .response
            .and_then(|r| r.data)
            .unwrap_or_else(|| panic!("{op:?} {path}: no data"))
    }

    pub async fn err(&self, op: Operation, path: &str, data: Value) -> CoreError {
        match self.req(op, path, data).await {
            Ok(r) => panic!("{op:?} {path} succeeded: {:?}", r.response),
            Err(e) => e,
        }
    }

    /// An unauthenticated login: the auth block, or the error.
    pub async fn login(&self, path: &str, data: Value) -> Result<Value, CoreError> {
        let r = self.req_as(Operation::Update, path, data, None).await?;
        Ok(r.auth.expect("auth block"))
    }

    pub async fn absent(&self, path: &str) {
        let r = self.ok(Operation::Read, path, json!({})).await;
        assert!(
            r.response.as_ref().and_then(|r| r.data.as_ref()).is_none(),
            "{path} should not exist"
        );
    }
}

/// A key pair made with openssl: the private key PEM (PKCS#8) and the public key PEM.
pub struct KeyPair {
    pub private: String,
    pub public: String,
    pub alg: Algorithm,
}

pub fn openssl_key(kind: &str) -> KeyPair {
    let dir = tempfile::tempdir().expect("tempdir");
    let key = dir.path().join("key.pem");
    let (args, alg): (&[&str], Algorithm) = match kind {
        "rsa" => (
            &["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"],
            Algorithm::RS256,
        ),
        "ec" => (
            &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"],
            Algorithm::ES256,
        ),
        other => panic!("unknown key kind {other}"),
    };
    let st = Command::new("openssl")
        .arg("genpkey")
        .args(args)
        .arg("-out")
        .arg(&key)
        .output()
        .expect("openssl genpkey");
    assert!(st.status.success(), "openssl genpkey: {st:?}");
    let out = Command::new("openssl")
        .args(["pkey", "-pubout", "-in"])
        .arg(&key)
        .output()
        .expect("openssl pkey");
    assert!(out.status.success(), "openssl pkey: {out:?}");
    KeyPair {
        private: std::fs::read_to_string(&key).unwrap(),
        public: String::from_utf8(out.stdout).unwrap(),
        alg,
    }
}

impl KeyPair {
    pub fn encoding(&self) -> EncodingKey {
        match self.alg {
            Algorithm::RS256 => EncodingKey::from_rsa_pem(self.private.as_bytes()).unwrap(),
            _ => EncodingKey::from_ec_pem(self.private.as_bytes()).unwrap(),
        }
    }

    pub fn sign(&self, kid: Option<&str>, claims: &Value) -> String {
        let mut h = Header::new(self.alg);
        h.kid = kid.map(str::to_owned);
        jsonwebtoken::encode(&h, claims, &self.encoding()).unwrap()
    }

    /// The public key as a JWK with `kid`.
    pub fn jwk(&self, kid: &str) -> Value {
        let mut j = jsonwebtoken::jwk::Jwk::from_encoding_key(&self.encoding(), self.alg).unwrap();
        j.common.key_id = Some(kid.to_owned());
        serde_json::to_value(j).unwrap()
    }
}

/// One request as the tiny server saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub headers: HashMap<String, String>,
    pub body: String,
}

pub type Handler = Arc<dyn Fn(&Seen) -> (u16, String) + Send + Sync>;

/// A tiny HTTP/1.1 server on 127.0.0.1 answering every request with `handler`; one request
/// per connection. Returns the base URL.
pub async fn serve(handler: Handler) -> String {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = l.accept().await else {
                return;
            };
            let h = handler.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut tmp = [0u8; 4096];
                let head_end = loop {
                    let n = match s.read(&mut tmp).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => n,
                    };
                    buf.extend_from_slice(&tmp[..n]);
                    if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        break i + 4;
                    }
                };
                let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
                let mut lines = head.lines();
                let first = lines.next().unwrap_or_default().to_owned();
                let mut parts = first.split(' ');
                let method = parts.next().unwrap_or_default().to_owned();
                let path = parts.next().unwrap_or_default().to_owned();
                let headers: HashMap<String, String> = lines
                    .filter_map(|l| l.split_once(':'))
                    .map(|(k, v)| (k.trim().to_lowercase(), v.trim().to_owned()))
                    .collect();
                let len: usize = headers
                    .get("content-length")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
                while buf.len() < head_end + len {
                    match s.read(&mut tmp).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => buf.extend_from_slice(&tmp[..n]),
                    }
                }
                let body = String::from_utf8_lossy(&buf[head_end..]).into_owned();
                let seen = Seen {
                    method,
                    path,
                    headers,
                    body,
                };
                let (status, out) = h(&seen);
                let resp = format!(
                    "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{out}",
                    out.len()
                );
                let _ = s.write_all(resp.as_bytes()).await;
                let _ = s.shutdown().await;
            });
        }
    });
    format!("http://{addr}")
}

/// A port nothing listens on (bound, then closed).
pub fn dead_url() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    drop(l);
    format!("http://127.0.0.1:{port}/jwks")
}

pub fn json_body(v: Value) -> (u16, String) {
    (200, v.to_string())
}
