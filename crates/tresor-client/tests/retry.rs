//! Retries, as Vault's Go client makes them (issue 11, item 7): 5xx except 501, 412 and 429
//! are tried again, every method included and with the same body; other statuses are not;
//! `VAULT_MAX_RETRIES=0` turns retrying off; the deadline bounds the whole exchange.

mod common;

use std::time::{Duration, Instant};

use common::{Reply, TestServer, errors, fast_config};
use serde_json::json;
use tresor_client::env::MapEnv;
use tresor_client::{Client, ClientConfig, ClientError, Method, Overrides, Request};

fn ok_envelope() -> String {
    json!({"request_id": "r", "lease_id": "", "renewable": false, "lease_duration": 0,
           "data": {"ok": true}, "warnings": null})
    .to_string()
}

/// Fails the first `failures` requests with `status`, then answers 200.
fn failing_then_ok(status: u16, failures: usize) -> TestServer {
    TestServer::start(move |n, _| {
        if n < failures {
            Reply::new(status, errors(&["try again"]))
        } else {
            Reply::new(200, ok_envelope())
        }
    })
}

#[tokio::test]
async fn a_500_twice_then_200_is_three_requests_and_a_success() {
    let server = failing_then_ok(500, 2);
    let client = Client::new(fast_config(&server.url())).unwrap();
    let secret = client.read("secret/foo", &[]).await.unwrap().unwrap();
    assert_eq!(secret.data().get("ok"), Some(&json!(true)));
    let seen = server.requests();
    assert_eq!(seen.len(), 3, "{seen:#?}");
    assert!(seen.iter().all(|r| r.target == "/v1/secret/foo"));
}

#[tokio::test]
async fn a_412_is_retried_like_a_5xx() {
    let server = failing_then_ok(412, 2);
    let client = Client::new(fast_config(&server.url())).unwrap();
    client.read("secret/foo", &[]).await.unwrap();
    assert_eq!(server.requests().len(), 3);
}

#[tokio::test]
async fn writes_are_retried_with_the_same_body() {
    let server = failing_then_ok(503, 1);
    let client = Client::new(fast_config(&server.url())).unwrap();
    client.write("secret/foo", json!({"a": "b"})).await.unwrap();
    let seen = server.requests();
    assert_eq!(seen.len(), 2);
    for r in &seen {
        assert_eq!(r.method, "PUT");
        assert_eq!(r.body, r#"{"a":"b"}"#);
        assert_eq!(r.header("content-type"), Some("application/json"));
    }
}

#[tokio::test]
async fn statuses_vault_does_not_retry_are_answered_at_once() {
    for status in [400, 403, 404, 409, 501] {
        let server = failing_then_ok(status, 5);
        let client = Client::new(fast_config(&server.url())).unwrap();
        let err = client
            .call(&Request::new(Method::GET, "secret/foo"))
            .await
            .unwrap_err();
        assert_eq!(err.status(), Some(status));
        assert_eq!(server.requests().len(), 1, "{status} must not be retried");
    }
}

#[tokio::test]
async fn retries_stop_after_max_retries_with_the_last_answer() {
    let server = failing_then_ok(502, 100);
    let client = Client::new(ClientConfig {
        max_retries: 3,
        ..fast_config(&server.url())
    })
    .unwrap();
    let err = client.read("secret/foo", &[]).await.unwrap_err();
    let ClientError::Api(api) = err else {
        panic!("expected an API error, got {err}")
    };
    assert_eq!(api.status, 502);
    assert_eq!(api.errors, vec!["try again".to_string()]);
    assert_eq!(server.requests().len(), 4, "one try and three retries");
}

#[tokio::test]
async fn vault_max_retries_zero_disables_retrying() {
    let server = failing_then_ok(500, 2);
    let env = MapEnv::new(None)
        .with("VAULT_ADDR", &server.url())
        .with("VAULT_MAX_RETRIES", "0");
    let cfg = ClientConfig::load(&env, &Overrides::default()).unwrap();
    assert_eq!(cfg.max_retries, 0);
    let client = Client::new(cfg).unwrap();
    let err = client.read("secret/foo", &[]).await.unwrap_err();
    assert_eq!(err.status(), Some(500));
    assert_eq!(server.requests().len(), 1);
}

#[tokio::test]
async fn the_default_is_two_retries() {
    let server = failing_then_ok(500, 100);
    let env = MapEnv::new(None).with("VAULT_ADDR", &server.url());
    let cfg = ClientConfig {
        min_retry_wait: Duration::from_millis(1),
        max_retry_wait: Duration::from_millis(2),
        ..ClientConfig::from_env(&env).unwrap()
    };
    let client = Client::new(cfg).unwrap();
    client.read("secret/foo", &[]).await.unwrap_err();
    assert_eq!(server.requests().len(), 3);
}

#[tokio::test]
async fn retry_after_on_429_sets_the_wait() {
    let server = TestServer::start(|n, _| {
        if n == 0 {
            Reply::new(429, errors(&["rate limited"])).header("Retry-After", "1")
        } else {
            Reply::new(200, ok_envelope())
        }
    });
    let client = Client::new(fast_config(&server.url())).unwrap();
    let start = Instant::now();
    client.read("secret/foo", &[]).await.unwrap();
    let waited = start.elapsed();
    assert_eq!(server.requests().len(), 2);
    assert!(waited >= Duration::from_secs(1), "waited only {waited:?}");
}

#[tokio::test]
async fn no_retry_is_started_past_the_deadline() {
    // Waits of ~1 s against a 300 ms deadline: the first answer is final.
    let server = failing_then_ok(500, 100);
    let client = Client::new(ClientConfig {
        timeout: Duration::from_millis(300),
        min_retry_wait: Duration::from_secs(1),
        max_retry_wait: Duration::from_secs(1),
        ..fast_config(&server.url())
    })
    .unwrap();
    let start = Instant::now();
    let err = client.read("secret/foo", &[]).await.unwrap_err();
    assert_eq!(err.status(), Some(500));
    assert_eq!(server.requests().len(), 1);
    assert!(start.elapsed() < Duration::from_secs(1));
}

#[tokio::test]
async fn connection_failures_are_retried_then_reported_like_go() {
    // A port nothing listens on: bind, note the port, release it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let client = Client::new(fast_config(&format!("http://127.0.0.1:{port}"))).unwrap();
    let err = client.read("secret/foo", &[]).await.unwrap_err();
    let text = err.to_string();
    assert!(
        text.starts_with(&format!("Get \"http://127.0.0.1:{port}/v1/secret/foo\": ")),
        "{text}"
    );
    assert_eq!(err.status(), None);
}

#[tokio::test]
async fn a_server_that_never_answers_hits_the_deadline() {
    // Accepts connections but never replies.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let client = Client::new(ClientConfig {
        timeout: Duration::from_millis(300),
        ..fast_config(&format!("http://{addr}"))
    })
    .unwrap();
    let start = Instant::now();
    let err = client.read("sys/health", &[]).await.unwrap_err();
    assert!(start.elapsed() < Duration::from_secs(5));
    assert!(
        err.to_string().ends_with(": context deadline exceeded"),
        "{err}"
    );
    drop(listener);
}
