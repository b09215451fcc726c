//! What goes over the wire and how answers decode: the headers every request carries, the
//! Go client's 404 rule for reads and lists, typed envelopes and errors, the one redirect,
//! and the sys helpers' requests.

mod common;

use common::{Reply, TestServer, errors, fast_config};
use serde_json::json;
use tresor_client::{
    Client, ClientConfig, ClientError, Method, MountInput, Request, TokenChoice, blocking,
};
use zeroize::Zeroizing;

fn envelope(data: serde_json::Value) -> String {
    json!({"request_id": "req-1", "lease_id": "", "renewable": false, "lease_duration": 60,
           "data": data, "wrap_info": null, "warnings": null, "auth": null, "mount_type": "kv"})
    .to_string()
}

#[tokio::test]
async fn every_request_carries_vaults_headers() {
    let server = TestServer::start(|_, _| Reply::new(200, envelope(json!({"a": 1}))));
    let client = Client::new(ClientConfig {
        token: Some(Zeroizing::new("hvs.root".into())),
        namespace: Some("ns1".into()),
        wrap_ttl: Some("5m".into()),
        policy_override: true,
        headers: vec![("X-Custom".into(), "yes".into())],
        ..fast_config(&server.url())
    })
    .unwrap();
    let s = client.read("secret/foo", &[]).await.unwrap().unwrap();
    assert_eq!(s.request_id, "req-1");
    assert_eq!(s.lease_duration, 60);
    assert_eq!(s.mount_type, "kv");
    client
        .send(&Request::new(Method::GET, "sys/mounts").no_wrap())
        .await
        .unwrap();
    client
        .send(&Request::new(Method::POST, "auth/userpass/login/u").token(TokenChoice::Without))
        .await
        .unwrap();
    client
        .send(
            &Request::new(Method::POST, "sys/wrapping/unwrap")
                .token(TokenChoice::Override(Zeroizing::new("hvs.wrapping".into()))),
        )
        .await
        .unwrap();
    let seen = server.requests();
    for r in &seen {
        assert_eq!(r.header("x-vault-request"), Some("true"));
        assert_eq!(r.header("x-vault-namespace"), Some("ns1"));
        assert_eq!(r.header("x-vault-policy-override"), Some("true"));
        assert_eq!(r.header("x-custom"), Some("yes"));
        assert!(
            r.header("user-agent")
                .unwrap()
                .starts_with("tresor-client/")
        );
    }
    assert_eq!(seen[0].header("x-vault-token"), Some("hvs.root"));
    assert_eq!(seen[0].header("x-vault-wrap-ttl"), Some("5m"));
    assert_eq!(seen[1].header("x-vault-wrap-ttl"), None, "no_wrap");
    assert_eq!(
        seen[2].header("x-vault-token"),
        None,
        "logins carry no token"
    );
    assert_eq!(seen[3].header("x-vault-token"), Some("hvs.wrapping"));
}

#[tokio::test]
async fn reads_and_lists_follow_the_go_clients_404_rule() {
    let server = TestServer::start(|_, r| match r.target.as_str() {
        "/v1/secret/missing" => Reply::new(404, errors(&[])),
        "/v1/secret/deleted" => Reply::new(
            404,
            json!({"data": {"data": null, "metadata": {"deletion_time": "x"}}}).to_string(),
        ),
        "/v1/secret/warned" => Reply::new(404, json!({"warnings": ["gone"]}).to_string()),
        "/v1/secret/?list=true" => Reply::new(200, envelope(json!({"keys": ["a", "b/"]}))),
        "/v1/secret/none?list=true" => Reply::new(404, errors(&[])),
        _ => Reply::new(403, errors(&["permission denied"])),
    });
    let client = Client::new(fast_config(&server.url())).unwrap();
    assert!(client.read("secret/missing", &[]).await.unwrap().is_none());
    let deleted = client.read("secret/deleted", &[]).await.unwrap().unwrap();
    assert!(deleted.has_data());
    let warned = client.read("secret/warned", &[]).await.unwrap().unwrap();
    assert_eq!(warned.warnings, Some(vec!["gone".to_string()]));
    let listed = client.list("secret/").await.unwrap().unwrap();
    assert_eq!(listed.data()["keys"], json!(["a", "b/"]));
    assert!(client.list("secret/none").await.unwrap().is_none());
    let err = client.read("secret/forbidden", &[]).await.unwrap_err();
    let ClientError::Api(api) = err else {
        panic!("expected an API error")
    };
    assert_eq!(api.status, 403);
    assert_eq!(
        api.to_string(),
        format!(
            "Error making API request.\n\nURL: GET {}/v1/secret/forbidden\nCode: 403. Errors:\n\n* permission denied",
            server.url()
        )
    );
}

#[tokio::test]
async fn writes_patches_and_deletes_send_what_vault_expects() {
    let server = TestServer::start(|_, r| match r.method.as_str() {
        "DELETE" => Reply::new(204, ""),
        _ => Reply::new(200, envelope(json!({"version": 2}))),
    });
    let client = Client::new(fast_config(&server.url())).unwrap();
    let w = client
        .write("secret/data/app", json!({"data": {"k": "v"}}))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(w.data()["version"], 2);
    client
        .patch("secret/data/app", json!({"data": {"k": null}}))
        .await
        .unwrap();
    let d = client
        .delete("secret/data/app", &[("versions".into(), "1".into())])
        .await
        .unwrap();
    assert!(d.is_none(), "204 has no envelope");
    let seen = server.requests();
    assert_eq!(seen[0].method, "PUT");
    assert_eq!(seen[0].body, r#"{"data":{"k":"v"}}"#);
    assert_eq!(seen[1].method, "PATCH");
    assert_eq!(
        seen[1].header("content-type"),
        Some("application/merge-patch+json")
    );
    assert_eq!(seen[2].method, "DELETE");
    assert_eq!(seen[2].target, "/v1/secret/data/app?versions=1");
}

#[tokio::test]
async fn garbage_bodies_are_decode_errors() {
    let server = TestServer::start(|_, _| Reply::new(200, "<html>"));
    let client = Client::new(fast_config(&server.url())).unwrap();
    let err = client.read("secret/foo", &[]).await.unwrap_err();
    assert!(matches!(err, ClientError::Decode(_)), "{err}");
    assert!(err.to_string().starts_with("error decoding response: "));
}

#[tokio::test]
async fn one_redirect_is_followed_with_method_and_body() {
    let server = TestServer::start(|_, r| match r.target.as_str() {
        "/v1/secret/a" => Reply::new(307, "").header("Location", "/v1/secret/b"),
        "/v1/secret/b" => Reply::new(307, "").header("Location", "/v1/secret/c"),
        _ => Reply::new(200, envelope(json!({}))),
    });
    let client = Client::new(fast_config(&server.url())).unwrap();
    // a -> b is followed; b -> c is not: the second redirect is the answer.
    let resp = client
        .send(&Request::new(Method::PUT, "secret/a").json(json!({"x": 1})))
        .await
        .unwrap();
    assert_eq!(resp.status, 307);
    let seen = server.requests();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[1].method, "PUT");
    assert_eq!(seen[1].body, r#"{"x":1}"#);
    // With redirects disabled, the first 307 is the answer.
    let client = Client::new(ClientConfig {
        disable_redirects: true,
        ..fast_config(&server.url())
    })
    .unwrap();
    let resp = client
        .send(&Request::new(Method::GET, "secret/a"))
        .await
        .unwrap();
    assert_eq!(resp.status, 307);
    assert_eq!(server.requests().len(), 3);
}

#[tokio::test]
async fn sys_helpers_send_vaults_requests() {
    let server = TestServer::start(|_, r| {
        match r.target.as_str() {
        "/v1/auth/token/create" => Reply::new(
            200,
            json!({"auth": {"client_token": "hvs.child", "accessor": "acc", "policies": ["default"],
                            "lease_duration": 3600, "renewable": true}})
            .to_string(),
        ),
        "/v1/sys/seal-status" => Reply::new(
            200,
            json!({"type": "shamir", "initialized": true, "sealed": true, "t": 2, "n": 3,
                   "progress": 1, "nonce": "n1", "version": "0.1.0"})
            .to_string(),
        ),
        "/v1/sys/leader" => Reply::new(200, json!({"ha_enabled": false}).to_string()),
        _ => Reply::new(204, ""),
    }
    });
    let client = Client::new(ClientConfig {
        wrap_ttl: Some("1m".into()),
        ..fast_config(&server.url())
    })
    .unwrap();
    let input = MountInput {
        engine: "kv".into(),
        description: "bench".into(),
        options: [("version".to_string(), "2".to_string())].into(),
        config: None,
    };
    client.mount("/kv-x/", &input).await.unwrap();
    client
        .tune_mount("kv-x", json!({"max_lease_ttl": "1h"}))
        .await
        .unwrap();
    client.put_policy("p1", "path \"*\" {}").await.unwrap();
    let auth = client
        .create_token(json!({"policies": ["default"]}))
        .await
        .unwrap();
    assert_eq!(auth.client_token, "hvs.child");
    client.revoke_token(&auth.client_token).await.unwrap();
    client.delete_policy("p1").await.unwrap();
    client.unmount("kv-x").await.unwrap();
    let seal = client.seal_status().await.unwrap();
    assert!(seal.sealed && seal.progress == 1 && seal.seal_type == "shamir");
    assert!(!client.leader().await.unwrap().ha_enabled);
    let seen: Vec<(String, String, String)> = server
        .requests()
        .into_iter()
        .map(|r| {
            assert_eq!(r.header("x-vault-wrap-ttl"), None, "sys helpers never wrap");
            (r.method, r.target, r.body)
        })
        .collect();
    let want = [
        (
            "POST",
            "/v1/sys/mounts/kv-x",
            r#"{"type":"kv","description":"bench","options":{"version":"2"}}"#,
        ),
        (
            "POST",
            "/v1/sys/mounts/kv-x/tune",
            r#"{"max_lease_ttl":"1h"}"#,
        ),
        (
            "PUT",
            "/v1/sys/policies/acl/p1",
            r#"{"policy":"path \"*\" {}"}"#,
        ),
        (
            "POST",
            "/v1/auth/token/create",
            r#"{"policies":["default"]}"#,
        ),
        ("POST", "/v1/auth/token/revoke", r#"{"token":"hvs.child"}"#),
        ("DELETE", "/v1/sys/policies/acl/p1", ""),
        ("DELETE", "/v1/sys/mounts/kv-x", ""),
        ("GET", "/v1/sys/seal-status", ""),
        ("GET", "/v1/sys/leader", ""),
    ];
    assert_eq!(seen.len(), want.len());
    for (got, want) in seen.iter().zip(want) {
        assert_eq!((got.0.as_str(), got.1.as_str(), got.2.as_str()), want);
    }
}

#[tokio::test]
async fn a_token_create_without_auth_is_a_decode_error() {
    let server = TestServer::start(|_, _| Reply::new(200, envelope(json!({}))));
    let client = Client::new(fast_config(&server.url())).unwrap();
    let err = client.create_token(json!({})).await.unwrap_err();
    assert!(matches!(err, ClientError::Decode(_)), "{err}");
}

#[test]
fn the_blocking_facade_matches_the_async_client() {
    let server = TestServer::start(|n, _| {
        if n == 0 {
            Reply::new(500, errors(&["once"]))
        } else {
            Reply::new(200, envelope(json!({"foo": "bar"})))
        }
    });
    let mut client = blocking::Client::new(fast_config(&server.url())).unwrap();
    client.set_token(Some(Zeroizing::new("t1".into())));
    assert_eq!(client.token(), Some("t1"));
    let s = client.read("secret/foo", &[]).unwrap().unwrap();
    assert_eq!(s.data_str("foo"), Some("bar"));
    let seen = server.requests();
    assert_eq!(seen.len(), 2, "retried once");
    assert_eq!(seen[1].header("x-vault-token"), Some("t1"));
}
