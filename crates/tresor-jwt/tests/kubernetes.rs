//! The Kubernetes method in-process, against a TokenReview endpoint on 127.0.0.1 written
//! for this test: it verifies the service-account JWT with a key made by openssl (signature,
//! expiry, audiences), answers the real TokenReview response shape, and refuses callers whose
//! bearer is not the configured reviewer JWT. No real Kubernetes API server is exercised.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::*;
use jsonwebtoken::{DecodingKey, Validation};
use serde_json::{Value, json};
use tresor_core::CoreError;
use tresor_sdk::Operation::{List, Read, Update};

const REVIEWER: &str = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQ6a3ViZS1zeXN0ZW06cmV2aWV3ZXIifQ.c2ln";

/// The TokenReview endpoint: (base URL, request count).
async fn token_review(key: &KeyPair) -> (String, Arc<AtomicUsize>) {
    let public = DecodingKey::from_rsa_pem(key.public.as_bytes()).unwrap();
    let hits = Arc::new(AtomicUsize::new(0));
    let h = hits.clone();
    let url = serve(Arc::new(move |s| {
        h.fetch_add(1, Ordering::SeqCst);
        if s.method != "POST" || s.path != "/apis/authentication.k8s.io/v1/tokenreviews" {
            return (404, json!({"kind": "Status", "message": "not found"}).to_string());
        }
        if s.headers.get("authorization").map(String::as_str) != Some(&format!("Bearer {REVIEWER}")) {
            return (401, json!({"kind": "Status", "message": "Unauthorized", "code": 401}).to_string());
        }
        let req: Value = serde_json::from_str(&s.body).unwrap_or(Value::Null);
        let token = req.pointer("/spec/token").and_then(Value::as_str).unwrap_or_default();
        let audiences: Vec<String> = req
            .pointer("/spec/audiences")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(|x| x.as_str().map(str::to_owned)).collect())
            .unwrap_or_else(|| vec!["https://kubernetes.default.svc".into()]);
        let mut v = Validation::new(jsonwebtoken::Algorithm::RS256);
        v.set_audience(&audiences);
        v.leeway = 0;
        let status = match jsonwebtoken::decode::<Value>(token, &public, &v) {
            Ok(d) => {
                let k = &d.claims["kubernetes.io"];
                json!({
                    "authenticated": true,
                    "user": {
                        "username": format!("system:serviceaccount:{}:{}", k["namespace"].as_str().unwrap_or(""), k["serviceaccount"]["name"].as_str().unwrap_or("")),
                        "uid": k["serviceaccount"]["uid"],
                        "groups": ["system:serviceaccounts"],
                    },
                    "audiences": audiences,
                })
            }
            Err(e) => json!({"authenticated": false, "error": e.to_string()}),
        };
        (
            201,
            json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": req["spec"], "status": status}).to_string(),
        )
    }))
    .await;
    (url, hits)
}

/// A projected service-account token, as the kubelet mounts it (real wall-clock times: the
/// endpoint checks them).
fn sa_token(key: &KeyPair, ns: &str, name: &str, aud: &str) -> String {
    let now = jsonwebtoken::get_current_timestamp() as i64;
    key.sign(
        Some("k1"),
        &json!({
            "iss": "https://kubernetes.default.svc.cluster.local",
            "sub": format!("system:serviceaccount:{ns}:{name}"),
            "aud": [aud],
            "iat": now, "nbf": now, "exp": now + 600,
            "kubernetes.io": {"namespace": ns, "serviceaccount": {"name": name, "uid": format!("uid-{ns}-{name}")},
                              "pod": {"name": "p-1", "uid": "pod-uid"}},
        }),
    )
}

fn invalid(e: &CoreError) -> String {
    assert!(
        matches!(e, CoreError::InvalidRequest(_)),
        "expected a 400, got {e:?}"
    );
    e.to_string()
}

#[tokio::test]
async fn config_and_roles_are_validated() {
    let t = setup().await;
    for (body, want) in [
        (json!({}), "kubernetes_host"),
        (json!({"kubernetes_host": "not a url"}), "kubernetes_host"),
        (
            json!({"kubernetes_host": "https://127.0.0.1:6443", "kubernetes_ca_cert": "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----"}),
            "kubernetes_ca_cert",
        ),
        // The placeholder of Vault's API docs: Vault 1.17 and later refuse it too.
        (
            json!({"kubernetes_host": "https://127.0.0.1:6443", "kubernetes_ca_cert": "-----BEGIN CERTIFICATE-----\n.....\n-----END CERTIFICATE-----"}),
            "kubernetes_ca_cert",
        ),
        (
            json!({"kubernetes_host": "https://127.0.0.1:6443", "pem_keys": ["junk"]}),
            "pem_keys",
        ),
        (
            json!({"kubernetes_host": "https://127.0.0.1:6443", "token_reviewer_jwt": "two words"}),
            "token_reviewer_jwt",
        ),
    ] {
        let e = t.err(Update, "auth/kubernetes/config", body.clone()).await;
        assert!(invalid(&e).contains(want), "{body}: {e}");
        t.absent("auth/kubernetes/config").await;
    }
    t.ok(
        Update,
        "auth/kubernetes/config",
        json!({"kubernetes_host": "https://127.0.0.1:6443", "token_reviewer_jwt": "opaque-token.1"}),
    )
    .await;
    let d = t.data(Read, "auth/kubernetes/config", json!({})).await;
    assert_eq!(d["token_reviewer_jwt_set"], true);
    t.ok(
        Update,
        "auth/kubernetes/config",
        json!({"kubernetes_host": "https://127.0.0.1:6443", "token_reviewer_jwt": REVIEWER}),
    )
    .await;
    let d = t.data(Read, "auth/kubernetes/config", json!({})).await;
    assert_eq!(d["kubernetes_host"], "https://127.0.0.1:6443");
    assert_eq!(d["token_reviewer_jwt_set"], true);
    assert_eq!(d["disable_iss_validation"], true);
    assert!(d.get("token_reviewer_jwt").is_none());
    for (body, want) in [
        (
            json!({"bound_service_account_namespaces": "ci"}),
            "bound_service_account_names",
        ),
        (
            json!({"bound_service_account_names": "builder"}),
            "bound_service_account_namespaces",
        ),
        (
            json!({"bound_service_account_names": "b", "bound_service_account_namespaces": "ci", "alias_name_source": "pod"}),
            "alias_name_source",
        ),
    ] {
        let e = t
            .err(Update, "auth/kubernetes/role/bad", body.clone())
            .await;
        assert!(invalid(&e).contains(want), "{body}: {e}");
    }
    // Both bindings "*" is allowed, as in Vault (the TokenReview still decides each login).
    t.ok(
        Update,
        "auth/kubernetes/role/anyone",
        json!({"bound_service_account_names": "*", "bound_service_account_namespaces": "*"}),
    )
    .await;
    let d = t.data(Read, "auth/kubernetes/role/anyone", json!({})).await;
    assert_eq!(d["bound_service_account_names"], json!(["*"]));
    assert_eq!(d["bound_service_account_namespaces"], json!(["*"]));
    t.ok(
        Update,
        "auth/kubernetes/role/builder",
        json!({"bound_service_account_names": "builder", "bound_service_account_namespaces": "ci,ci-*", "token_policies": "ci"}),
    )
    .await;
    let d = t
        .data(Read, "auth/kubernetes/role/builder", json!({}))
        .await;
    assert_eq!(d["bound_service_account_namespaces"], json!(["ci", "ci-*"]));
    assert_eq!(d["alias_name_source"], "serviceaccount_uid");
    let d = t.data(List, "auth/kubernetes/role", json!({})).await;
    assert_eq!(d["keys"], json!(["anyone", "builder"]));
}

#[tokio::test]
async fn logins_are_decided_by_the_role_and_the_token_review() {
    let t = setup().await;
    let sa_key = openssl_key("rsa");
    let stranger = openssl_key("rsa");
    let (url, hits) = token_review(&sa_key).await;
    t.ok(
        Update,
        "auth/kubernetes/config",
        json!({"kubernetes_host": url, "token_reviewer_jwt": REVIEWER}),
    )
    .await;
    t.ok(
        Update,
        "auth/kubernetes/role/builder",
        json!({"bound_service_account_names": "builder", "bound_service_account_namespaces": "ci*",
               "audience": "vault", "token_policies": "ci", "token_ttl": "5m"}),
    )
    .await;
    let login = |jwt: String| {
        let t = &t;
        async move {
            t.login(
                "auth/kubernetes/login",
                json!({"role": "builder", "jwt": jwt}),
            )
            .await
        }
    };
    let auth = login(sa_token(&sa_key, "ci", "builder", "vault"))
        .await
        .unwrap();
    assert_eq!(auth["policies"], json!(["ci", "default"]));
    assert_eq!(auth["metadata"]["service_account_namespace"], "ci");
    assert_eq!(auth["metadata"]["service_account_name"], "builder");
    assert_eq!(auth["metadata"]["service_account_uid"], "uid-ci-builder");
    assert_eq!(auth["metadata"]["role"], "builder");
    assert_eq!(auth["lease_duration"], 300);
    assert_eq!(hits.load(Ordering::SeqCst), 1);

    // The role's bindings refuse before any review is asked for.
    let e = login(sa_token(&sa_key, "prod", "builder", "vault"))
        .await
        .unwrap_err();
    assert!(invalid(&e).contains("namespace not authorized"), "{e}");
    let e = login(sa_token(&sa_key, "ci", "deployer", "vault"))
        .await
        .unwrap_err();
    assert!(
        invalid(&e).contains("service account name not authorized"),
        "{e}"
    );
    let e = login(sa_token(&sa_key, "ci", "builder", "other"))
        .await
        .unwrap_err();
    assert!(invalid(&e).contains("audience"), "{e}");
    assert_eq!(hits.load(Ordering::SeqCst), 1);

    // A token the API server does not recognise (signed by another key) is refused.
    let e = login(sa_token(&stranger, "ci", "builder", "vault"))
        .await
        .unwrap_err();
    assert!(invalid(&e).contains("service account unauthorized"), "{e}");
    assert_eq!(hits.load(Ordering::SeqCst), 2);

    // With a wrong reviewer JWT the API server refuses the review itself.
    t.ok(
        Update,
        "auth/kubernetes/config",
        json!({"kubernetes_host": url, "token_reviewer_jwt": "eyJhbGciOiJSUzI1NiJ9.eyJ4IjoxfQ.eA"}),
    )
    .await;
    let e = login(sa_token(&sa_key, "ci", "builder", "vault"))
        .await
        .unwrap_err();
    assert!(invalid(&e).contains("401"), "{e}");

    // With pem_keys the signature is checked locally first: a stranger's token never
    // reaches the API server.
    t.ok(
        Update,
        "auth/kubernetes/config",
        json!({"kubernetes_host": url, "token_reviewer_jwt": REVIEWER, "pem_keys": [sa_key.public]}),
    )
    .await;
    let before = hits.load(Ordering::SeqCst);
    let e = login(sa_token(&stranger, "ci-2", "builder", "vault"))
        .await
        .unwrap_err();
    assert!(invalid(&e).contains("signature"), "{e}");
    assert_eq!(hits.load(Ordering::SeqCst), before);
    login(sa_token(&sa_key, "ci-2", "builder", "vault"))
        .await
        .unwrap();

    // Issuer validation, when turned on.
    t.ok(
        Update,
        "auth/kubernetes/config",
        json!({"kubernetes_host": url, "token_reviewer_jwt": REVIEWER, "disable_iss_validation": false, "issuer": "https://other"}),
    )
    .await;
    let e = login(sa_token(&sa_key, "ci", "builder", "vault"))
        .await
        .unwrap_err();
    assert!(invalid(&e).contains("issuer"), "{e}");
}
