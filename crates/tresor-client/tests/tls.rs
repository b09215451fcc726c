//! TLS options against a real rustls server on 127.0.0.1: a named CA (file, PEM text or
//! directory) is trusted, an unknown one is refused without retrying, skip-verify accepts
//! anything, the server name can be overridden, and a client certificate is presented.

mod common;

use common::{Pki, Reply, TestServer, fast_config};
use serde_json::json;
use tresor_client::{Client, ClientConfig, ClientError, TlsOptions, blocking};

fn health() -> Reply {
    Reply::new(
        200,
        json!({"initialized": true, "sealed": false, "standby": false, "version": "test"})
            .to_string(),
    )
}

fn config(server: &TestServer, tls: TlsOptions) -> ClientConfig {
    ClientConfig {
        tls,
        ..fast_config(&server.url())
    }
}

fn write_ca(pki: &Pki) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ca.pem");
    std::fs::write(&path, &pki.ca_pem).unwrap();
    (dir, path)
}

#[tokio::test]
async fn a_ca_file_is_trusted() {
    let pki = Pki::new();
    let server = TestServer::start_tls(pki.server_config(), |_, _| health());
    let (_dir, ca) = write_ca(&pki);
    let client = Client::new(config(
        &server,
        TlsOptions {
            ca_cert: Some(ca),
            ..TlsOptions::default()
        },
    ))
    .unwrap();
    let h = client.health().await.unwrap();
    assert!(h.initialized && !h.sealed);
    assert_eq!(server.requests().len(), 1);
}

#[tokio::test]
async fn ca_text_and_ca_directories_are_trusted() {
    let pki = Pki::new();
    let server = TestServer::start_tls(pki.server_config(), |_, _| health());
    let client = Client::new(config(
        &server,
        TlsOptions {
            ca_cert_pem: Some(pki.ca_pem.clone()),
            ..TlsOptions::default()
        },
    ))
    .unwrap();
    client.health().await.unwrap();
    let (dir, _) = write_ca(&pki);
    let client = Client::new(config(
        &server,
        TlsOptions {
            ca_path: Some(dir.path().to_path_buf()),
            ..TlsOptions::default()
        },
    ))
    .unwrap();
    client.health().await.unwrap();
}

#[tokio::test]
async fn an_unknown_ca_is_refused_and_not_retried() {
    let pki = Pki::new();
    let other = Pki::new();
    let server = TestServer::start_tls(pki.server_config(), |_, _| health());
    let client = Client::new(config(
        &server,
        TlsOptions {
            ca_cert_pem: Some(other.ca_pem.clone()),
            ..TlsOptions::default()
        },
    ))
    .unwrap();
    let err = client.health().await.unwrap_err();
    assert!(matches!(err, ClientError::Transport { .. }), "{err}");
    let text = err.to_string();
    assert!(text.contains("certificate"), "{text}");
    assert_eq!(server.requests().len(), 0);
    assert_eq!(
        server.connections(),
        1,
        "a refused certificate is not retried"
    );
}

#[tokio::test]
async fn skip_verify_accepts_an_unknown_ca() {
    let pki = Pki::new();
    let server = TestServer::start_tls(pki.server_config(), |_, _| health());
    let client = Client::new(config(
        &server,
        TlsOptions {
            skip_verify: true,
            ..TlsOptions::default()
        },
    ))
    .unwrap();
    client.health().await.unwrap();
}

#[tokio::test]
async fn the_server_name_can_be_overridden() {
    let pki = Pki::new();
    let server = TestServer::start_tls(pki.server_config(), |_, _| health());
    let tls = |name: &str| TlsOptions {
        ca_cert_pem: Some(pki.ca_pem.clone()),
        server_name: Some(name.to_string()),
        ..TlsOptions::default()
    };
    // The certificate names localhost: verifying 127.0.0.1's certificate as localhost works.
    let client = Client::new(config(&server, tls("localhost"))).unwrap();
    client.health().await.unwrap();
    // Any other name fails verification, even though the address matches the certificate.
    let client = Client::new(config(&server, tls("vault.example.com"))).unwrap();
    let err = client.health().await.unwrap_err();
    assert!(err.to_string().contains("certificate"), "{err}");
}

#[tokio::test]
async fn a_client_certificate_is_presented() {
    let pki = Pki::new();
    let server = TestServer::start_tls(pki.mtls_server_config(), |_, _| health());
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert, &pki.client_cert_pem).unwrap();
    std::fs::write(&key, &pki.client_key_pem).unwrap();
    let base = TlsOptions {
        ca_cert_pem: Some(pki.ca_pem.clone()),
        ..TlsOptions::default()
    };
    let client = Client::new(ClientConfig {
        max_retries: 0,
        ..config(&server, base.clone())
    })
    .unwrap();
    client
        .health()
        .await
        .expect_err("the server requires a client certificate");
    assert_eq!(server.requests().len(), 0);
    let client = Client::new(config(
        &server,
        TlsOptions {
            client_cert: Some(cert),
            client_key: Some(key),
            ..base
        },
    ))
    .unwrap();
    client.health().await.unwrap();
    assert_eq!(server.requests().len(), 1);
}

#[test]
fn the_blocking_facade_speaks_tls_too() {
    let pki = Pki::new();
    let server = TestServer::start_tls(pki.server_config(), |_, _| health());
    let client = blocking::Client::new(config(
        &server,
        TlsOptions {
            ca_cert_pem: Some(pki.ca_pem.clone()),
            ..TlsOptions::default()
        },
    ))
    .unwrap();
    assert_eq!(client.health().unwrap().version, "test");
    let h = server.requests().pop().unwrap();
    assert_eq!(
        h.target,
        "/v1/sys/health?uninitcode=299&sealedcode=299&standbycode=299&drsecondarycode=299&performancestandbycode=299"
    );
}

#[tokio::test]
async fn a_redirect_from_https_to_http_is_refused() {
    let pki = Pki::new();
    let server = TestServer::start_tls(pki.server_config(), |_, _| {
        Reply::new(307, "").header("Location", "http://127.0.0.1:1/v1/sys/health")
    });
    let client = Client::new(config(
        &server,
        TlsOptions {
            ca_cert_pem: Some(pki.ca_pem.clone()),
            ..TlsOptions::default()
        },
    ))
    .unwrap();
    let err = client.health().await.unwrap_err();
    assert!(
        err.to_string()
            .ends_with(": redirect would cause protocol downgrade"),
        "{err}"
    );
    assert_eq!(server.requests().len(), 1);
}

/// What `openssl req -x509` makes: one self-signed `CA:TRUE` certificate used as the server's
/// own, valid from `not_before` to `not_after` (Unix seconds).
fn self_signed_ca_leaf(not_before: i64, not_after: i64) -> (rustls::ServerConfig, String) {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.not_before = time::OffsetDateTime::from_unix_timestamp(not_before).unwrap();
    params.not_after = time::OffsetDateTime::from_unix_timestamp(not_after).unwrap();
    let cert = params.self_signed(&key).unwrap();
    let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der().clone()],
            rustls::pki_types::PrivatePkcs8KeyDer::from(key.serialize_der()).into(),
        )
        .unwrap();
    (config, cert.pem())
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

#[tokio::test]
async fn a_trusted_self_signed_ca_certificate_serves_as_its_own_chain() {
    let (server_config, pem) = self_signed_ca_leaf(now() - 3600, now() + 86_400);
    let server = TestServer::start_tls(server_config, |_, _| health());
    let tls = |name: Option<&str>| TlsOptions {
        ca_cert_pem: Some(pem.clone()),
        server_name: name.map(str::to_string),
        ..TlsOptions::default()
    };
    let client = Client::new(config(&server, tls(None))).unwrap();
    client.health().await.unwrap();
    // The name is still checked.
    let client = Client::new(ClientConfig {
        max_retries: 0,
        ..config(&server, tls(Some("vault.example.com")))
    })
    .unwrap();
    let err = client.health().await.unwrap_err();
    assert!(err.to_string().contains("certificate"), "{err}");
    // Only a certificate the user named stands in for its chain: skip-verify aside, an unnamed
    // one is refused.
    let other = Pki::new();
    let client = Client::new(config(
        &server,
        TlsOptions {
            ca_cert_pem: Some(other.ca_pem.clone()),
            ..TlsOptions::default()
        },
    ))
    .unwrap();
    client.health().await.unwrap_err();
}

#[tokio::test]
async fn an_expired_self_signed_certificate_is_refused() {
    let (server_config, pem) = self_signed_ca_leaf(now() - 7200, now() - 3600);
    let server = TestServer::start_tls(server_config, |_, _| health());
    let client = Client::new(config(
        &server,
        TlsOptions {
            ca_cert_pem: Some(pem),
            ..TlsOptions::default()
        },
    ))
    .unwrap();
    let err = client.health().await.unwrap_err();
    assert!(err.to_string().contains("expired"), "{err}");
    assert_eq!(
        server.connections(),
        1,
        "certificate errors are not retried"
    );
}

/// Issue 12: an HTTPS request to a plain-HTTP server says so, as Go's client does, with the
/// likely fix, instead of a TLS record error; it is not retried.
#[tokio::test]
async fn an_http_answer_to_https_says_so() {
    use std::io::{Read as _, Write as _};
    use std::sync::atomic::{AtomicUsize, Ordering};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let accepted = std::sync::Arc::new(AtomicUsize::new(0));
    let counter = accepted.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { return };
            counter.fetch_add(1, Ordering::SeqCst);
            let _ = conn.set_read_timeout(Some(std::time::Duration::from_secs(5)));
            let mut buf = [0u8; 1024];
            let _ = conn.read(&mut buf);
            // What Go's and hyper's servers answer to a TLS hello.
            let _ = conn.write_all(
                b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            );
        }
    });
    let mut cfg = fast_config(&format!("https://127.0.0.1:{port}"));
    cfg.max_retries = 2;
    let client = Client::new(cfg).unwrap();
    let e = client.health().await.unwrap_err();
    let text = e.to_string();
    assert!(matches!(e, ClientError::Transport { .. }), "{e:?}");
    assert!(
        text.contains("server gave HTTP response to HTTPS client"),
        "{text}"
    );
    assert!(
        text.contains(&format!("is VAULT_ADDR http://127.0.0.1:{port}?")),
        "{text}"
    );
    assert_eq!(accepted.load(Ordering::SeqCst), 1, "not retried");
}
