//! Issue 11, the auth-method contract: a login's `Auth` becomes a token that honours the auth
//! mount's tuned TTLs and token type and every `token_*` setting, and renewing a login token
//! calls back the method, which may refuse or shorten it.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{TestCore, dev_core_with};
use serde_json::{Map, Value, json};
use tresor_core::{CoreError, CoreRequest};
use tresor_sdk::Operation::{Read, Update};
use tresor_sdk::{
    Alias, Auth, LogicalBackend, LogicalError, Request, Response, Result, SpecialPaths,
};

/// A tiny auth method: `login` takes the token settings from the request itself.
struct TestAuth;

#[async_trait::async_trait]
impl LogicalBackend for TestAuth {
    async fn handle(&self, req: Request) -> Result<Option<Response>> {
        if req.path != "login" {
            return Err(LogicalError::UnsupportedPath);
        }
        let d = &req.data;
        let secs = |k: &str| Duration::from_secs(d.get(k).and_then(Value::as_u64).unwrap_or(0));
        let mut internal = Map::new();
        for k in ["refuse_renew", "renew_cap"] {
            if let Some(v) = d.get(k) {
                internal.insert(k.into(), v.clone());
            }
        }
        let auth = Auth {
            display_name: "test-user".into(),
            policies: d
                .get("policies")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|p| p.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default(),
            ttl: secs("ttl"),
            max_ttl: secs("max_ttl"),
            period: secs("period"),
            explicit_max_ttl: secs("explicit_max_ttl"),
            num_uses: d.get("num_uses").and_then(Value::as_i64).unwrap_or(0),
            no_default_policy: d.get("no_default_policy") == Some(&json!(true)),
            token_type: d
                .get("token_type")
                .and_then(Value::as_str)
                .map(str::to_owned),
            bound_cidrs: d
                .get("bound_cidrs")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|p| p.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default(),
            renewable: true,
            internal_data: internal,
            alias: Some(Alias {
                name: "test-user".into(),
                ..Default::default()
            }),
            ..Default::default()
        };
        Ok(Some(Response {
            auth: Some(auth),
            ..Default::default()
        }))
    }
    fn special_paths(&self) -> SpecialPaths {
        SpecialPaths {
            unauthenticated: vec!["login".into()],
            root: Vec::new(),
        }
    }
    fn help(&self, _path: &str) -> Option<Map<String, Value>> {
        None
    }
    async fn renew_auth(&self, req: Request) -> Result<Option<Response>> {
        let data = &req.secret.as_ref().expect("the token's data").internal_data;
        if data.get("refuse_renew") == Some(&json!(true)) {
            return Err(LogicalError::invalid("the user no longer exists"));
        }
        Ok(data
            .get("renew_cap")
            .and_then(Value::as_u64)
            .map(|cap| Response {
                auth: Some(Auth {
                    ttl: Duration::from_secs(cap),
                    ..Default::default()
                }),
                ..Default::default()
            }))
    }
}

async fn core() -> TestCore {
    let t =
        dev_core_with(|c| c.register_credential("testauth", Arc::new(|_| Ok(Arc::new(TestAuth)))))
            .await;
    t.ok(
        Update,
        "sys/auth/test",
        json!({"type": "testauth", "config": {"default_lease_ttl": "30m", "max_lease_ttl": "1h"}}),
        &t.root,
    )
    .await;
    t
}

async fn login(t: &TestCore, mount: &str, body: Value) -> std::result::Result<Value, CoreError> {
    let r = t
        .core
        .handle(CoreRequest::new(
            Update,
            format!("auth/{mount}/login"),
            body.as_object().cloned().unwrap_or_default(),
            None,
        ))
        .await?;
    Ok(r.auth.expect("auth block"))
}

async fn lookup(t: &TestCore, token: &str) -> Map<String, Value> {
    t.data(
        Update,
        "auth/token/lookup",
        json!({"token": token}),
        &t.root,
    )
    .await
}

#[tokio::test]
async fn login_tokens_honour_the_auth_mounts_tuned_ttls() {
    let t = core().await;
    let a = login(&t, "test", json!({})).await.unwrap();
    assert_eq!(a["lease_duration"], 1800, "mount default: {a}");
    let a = login(&t, "test", json!({"ttl": 5 * 3600})).await.unwrap();
    assert_eq!(a["lease_duration"], 3600, "capped by the mount max: {a}");
    let a = login(&t, "test", json!({"max_ttl": 600})).await.unwrap();
    assert_eq!(a["lease_duration"], 600, "the method's max TTL: {a}");
    let a = login(&t, "test", json!({"ttl": 900, "explicit_max_ttl": 300}))
        .await
        .unwrap();
    assert_eq!(a["lease_duration"], 300);
    let look = lookup(&t, a["client_token"].as_str().unwrap()).await;
    assert_eq!(look["path"], "auth/test/login");
    assert_eq!(look["explicit_max_ttl"], 300);
    // Tuning the mount applies to the next login.
    t.ok(
        Update,
        "sys/auth/test/tune",
        json!({"default_lease_ttl": "10m"}),
        &t.root,
    )
    .await;
    let a = login(&t, "test", json!({})).await.unwrap();
    assert_eq!(a["lease_duration"], 600);
}

#[tokio::test]
async fn login_tokens_carry_every_token_setting() {
    let t = core().await;
    t.policy("app", r#"path "secret/*" { capabilities = ["read"] }"#)
        .await;
    let a = login(
        &t,
        "test",
        json!({"policies": ["App"], "num_uses": 2, "bound_cidrs": ["127.0.0.1/32"], "no_default_policy": true}),
    )
    .await
    .unwrap();
    assert_eq!(a["policies"], json!(["app"]));
    assert_eq!(a["token_type"], "service");
    let tok = a["client_token"].as_str().unwrap().to_owned();
    let look = lookup(&t, &tok).await;
    assert_eq!(look["num_uses"], 2);
    assert_eq!(look["bound_cidrs"], json!(["127.0.0.1/32"]));
    assert_eq!(look["policies"], json!(["app"]));
    // Bound to 127.0.0.1: a request without that address is refused.
    let mut r = CoreRequest::new(Read, "auth/token/lookup-self", Map::new(), Some(&tok));
    r.remote_addr = Some("10.1.1.1".into());
    assert!(matches!(
        t.core.handle(r).await,
        Err(CoreError::PermissionDenied)
    ));
    // A method cannot hand out root.
    let e = login(&t, "test", json!({"policies": ["root"]}))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("root"), "{e}");
}

#[tokio::test]
async fn the_mount_and_the_role_decide_the_token_type() {
    let t = core().await;
    let a = login(&t, "test", json!({"token_type": "batch"}))
        .await
        .unwrap();
    assert_eq!(a["token_type"], "batch");
    let b = a["client_token"].as_str().unwrap().to_owned();
    assert!(b.starts_with("hvb."), "{b}");
    t.ok(Read, "auth/token/lookup-self", json!({}), &b).await;
    t.ok(
        Update,
        "sys/auth/test/tune",
        json!({"token_type": "default-batch"}),
        &t.root,
    )
    .await;
    let a = login(&t, "test", json!({})).await.unwrap();
    assert_eq!(a["token_type"], "batch");
    let a = login(&t, "test", json!({"token_type": "service"}))
        .await
        .unwrap();
    assert_eq!(a["token_type"], "service");
    t.ok(
        Update,
        "sys/auth/test/tune",
        json!({"token_type": "service"}),
        &t.root,
    )
    .await;
    let e = login(&t, "test", json!({"token_type": "batch"}))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("only issues service tokens"), "{e}");
    let e = login(&t, "test", json!({"token_type": "batch", "num_uses": 3}));
    assert!(e.await.is_err());
}

#[tokio::test]
async fn renewing_a_login_token_asks_the_method() {
    let t = core().await;
    let a = login(&t, "test", json!({"ttl": 600})).await.unwrap();
    let tok = a["client_token"].as_str().unwrap().to_owned();
    let r = t
        .ok(
            Update,
            "auth/token/renew-self",
            json!({"increment": "20m"}),
            &tok,
        )
        .await;
    assert_eq!(r.auth.unwrap()["lease_duration"], 1200);

    let a = login(&t, "test", json!({"ttl": 600, "refuse_renew": true}))
        .await
        .unwrap();
    let tok = a["client_token"].as_str().unwrap().to_owned();
    let e = t
        .req(Update, "auth/token/renew-self", json!({}), &tok)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("no longer exists"), "{e}");

    let a = login(&t, "test", json!({"ttl": 600, "renew_cap": 120}))
        .await
        .unwrap();
    let tok = a["client_token"].as_str().unwrap().to_owned();
    let r = t
        .ok(
            Update,
            "auth/token/renew-self",
            json!({"increment": "30m"}),
            &tok,
        )
        .await;
    assert_eq!(
        r.auth.unwrap()["lease_duration"],
        120,
        "shortened by the method"
    );

    // The method's mount max TTL caps renewals too.
    let a = login(&t, "test", json!({"ttl": 600})).await.unwrap();
    let tok = a["client_token"].as_str().unwrap().to_owned();
    let r = t
        .ok(
            Update,
            "auth/token/renew-self",
            json!({"increment": "5h"}),
            &tok,
        )
        .await;
    let ttl = r.auth.unwrap()["lease_duration"].as_u64().unwrap();
    assert!(ttl <= 3600, "renewed past the auth mount's max TTL: {ttl}");

    // Once the method is unmounted, its tokens are revoked with it, as in Vault; a token
    // whose method is gone cannot be renewed.
    t.ok(
        tresor_sdk::Operation::Delete,
        "sys/auth/test",
        json!({}),
        &t.root,
    )
    .await;
    assert!(
        t.req(Update, "auth/token/renew-self", json!({}), &tok)
            .await
            .is_err()
    );
}
