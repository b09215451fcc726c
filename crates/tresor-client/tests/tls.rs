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
