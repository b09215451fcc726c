//! The JWT/OIDC method in-process, through a real dev core on in-memory storage and a clock
//! the tests move: config checks (exactly one key source, bad PEM and unreachable URLs refused
//! with nothing stored), roles, JWT logins with RSA and EC keys made by openssl (PEM keys and a
//! JWKS served on 127.0.0.1, refreshed on an unknown kid), the refusals (audience, expiry,
//! signature, bound claims, role type), the OIDC code flow against a small provider on
//! 127.0.0.1 (PKCE and nonce checked), and renewal.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use base64::Engine as _;
use common::*;
use parking_lot::Mutex;
use serde_json::{Value, json};
use tresor_core::CoreError;
use tresor_sdk::Operation::{Delete, List, Read, Update};

fn claims(aud: &str, sub: &str, extra: Value) -> Value {
    let mut c = json!({
        "iss": "https://issuer.example",
        "sub": sub,
        "aud": aud,
        "iat": T0,
        "nbf": T0,
        "exp": T0 + 600,
    });
    if let Value::Object(m) = extra {
        for (k, v) in m {
            c[k] = v;
        }
    }
    c
}

async fn jwt_role(t: &T, name: &str, extra: Value) {
    let mut body = json!({
        "role_type": "jwt",
        "bound_audiences": "tresor",
        "user_claim": "sub",
        "groups_claim": "groups",
        "token_policies": "dev",
        "token_ttl": "10m",
    });
    if let Value::Object(m) = extra {
        for (k, v) in m {
            body[k] = v;
        }
    }
    t.ok(Update, &format!("auth/jwt/role/{name}"), body).await;
}

fn invalid(e: &CoreError) -> String {
    assert!(
        matches!(e, CoreError::InvalidRequest(_)),
        "expected a 400, got {e:?}"
    );
    e.to_string()
}

#[tokio::test]
async fn config_needs_exactly_one_source_and_stores_nothing_when_a_check_fails() {
    let t = setup().await;
    let rsa = openssl_key("rsa");
    let cases = [
        (json!({}), "exactly one of"),
        (
            json!({"jwt_validation_pubkeys": [rsa.public], "jwks_url": "http://127.0.0.1:1/x"}),
            "exactly one of",
        ),
        (
            json!({"jwt_validation_pubkeys": ["-----BEGIN PUBLIC KEY-----\nnot a key\n-----END PUBLIC KEY-----"]}),
            "jwt_validation_pubkeys",
        ),
        (
            json!({"jwt_validation_pubkeys": ["garbage"]}),
            "jwt_validation_pubkeys",
        ),
        (json!({"jwks_url": dead_url()}), "jwks_url"),
        (json!({"jwks_url": "ftp://127.0.0.1/keys"}), "jwks_url"),
        (
            json!({"oidc_discovery_url": dead_url()}),
            "oidc_discovery_url",
        ),
        (
            json!({"jwks_url": "https://127.0.0.1:1/keys", "jwks_ca_pem": "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----"}),
            "jwks_ca_pem",
        ),
        (
            json!({"jwt_validation_pubkeys": [rsa.public], "jwt_supported_algs": "HS256"}),
            "jwt_supported_algs",
        ),
        (
            json!({"jwt_validation_pubkeys": [rsa.public], "oidc_client_id": "x"}),
            "oidc_discovery_url",
        ),
    ];
    for (body, want) in cases {
        let e = t.err(Update, "auth/jwt/config", body.clone()).await;
        let msg = invalid(&e);
        assert!(msg.contains(want), "{body}: {msg}");
        t.absent("auth/jwt/config").await;
    }
    // A good config is stored; a later bad write leaves it as it was.
    t.ok(
        Update,
        "auth/jwt/config",
        json!({"jwt_validation_pubkeys": [rsa.public], "bound_issuer": "https://issuer.example"}),
    )
    .await;
    let e = t
        .err(Update, "auth/jwt/config", json!({"jwks_url": dead_url()}))
        .await;
    assert!(invalid(&e).contains("jwks_url"));
    let d = t.data(Read, "auth/jwt/config", json!({})).await;
    assert_eq!(d["bound_issuer"], "https://issuer.example");
    assert_eq!(d["jwt_validation_pubkeys"][0], json!(rsa.public.trim()));
}

#[tokio::test]
async fn roles_are_validated_read_listed_and_deleted() {
    let t = setup().await;
    for (body, want) in [
        (
            json!({"role_type": "jwt", "user_claim": "sub"}),
            "at least one bound constraint",
        ),
        (
            json!({"role_type": "jwt", "bound_audiences": "a"}),
            "user_claim",
        ),
        (json!({"user_claim": "sub"}), "allowed_redirect_uris"),
        (
            json!({"role_type": "weird", "user_claim": "sub"}),
            "role_type",
        ),
        (
            json!({"role_type": "jwt", "user_claim": "sub", "bound_claims_type": "regex", "bound_audiences": "a"}),
            "bound_claims_type",
        ),
        (
            json!({"role_type": "jwt", "user_claim": "sub", "bound_claims": {"a": {"b": 1}}}),
            "bound_claims",
        ),
        (
            json!({"role_type": "jwt", "user_claim": "sub", "bound_audiences": "a", "clock_skew_leeway": -5}),
            "clock_skew_leeway",
        ),
        (
            json!({"role_type": "jwt", "user_claim": "sub", "bound_audiences": "a", "token_ttl": "2h", "token_max_ttl": "1h"}),
            "token_ttl",
        ),
    ] {
        let e = t.err(Update, "auth/jwt/role/bad", body.clone()).await;
        assert!(invalid(&e).contains(want), "{body}: {e}");
        t.absent("auth/jwt/role/bad").await;
    }
    jwt_role(
        &t,
        "ci",
        json!({"bound_claims": {"repo": ["org/*"]}, "bound_claims_type": "glob",
               "claim_mappings": {"email": "mail"}, "clock_skew_leeway": "-1", "expiration_leeway": "30s"}),
    )
    .await;
    t.ok(
        Update,
        "auth/jwt/role/web",
        json!({"user_claim": "email", "allowed_redirect_uris": "http://localhost:8250/oidc/callback", "oidc_scopes": "profile,email"}),
    )
    .await;
    let d = t.data(Read, "auth/jwt/role/ci", json!({})).await;
    assert_eq!(d["role_type"], "jwt");
    assert_eq!(d["bound_audiences"], json!(["tresor"]));
    assert_eq!(d["bound_claims"], json!({"repo": ["org/*"]}));
    assert_eq!(d["bound_claims_type"], "glob");
    assert_eq!(d["claim_mappings"], json!({"email": "mail"}));
    assert_eq!(d["clock_skew_leeway"], -1);
    assert_eq!(d["expiration_leeway"], 30);
    assert_eq!(d["token_policies"], json!(["dev"]));
    assert_eq!(d["token_ttl"], 600);
    let d = t.data(Read, "auth/jwt/role/web", json!({})).await;
    assert_eq!(d["role_type"], "oidc");
    assert_eq!(d["oidc_scopes"], json!(["profile", "email"]));
    // An update changes only what it sends.
    t.ok(
        Update,
        "auth/jwt/role/ci",
        json!({"bound_subject": "alice"}),
    )
    .await;
    let d = t.data(Read, "auth/jwt/role/ci", json!({})).await;
    assert_eq!(d["bound_subject"], "alice");
    assert_eq!(d["bound_audiences"], json!(["tresor"]));
    let keys = t.data(List, "auth/jwt/role", json!({})).await;
    assert_eq!(keys["keys"], json!(["ci", "web"]));
    t.ok(Delete, "auth/jwt/role/ci", json!({})).await;
    t.absent("auth/jwt/role/ci").await;
}

#[tokio::test]
async fn jwt_logins_with_pem_keys_and_their_refusals() {
    let t = setup().await;
    let rsa = openssl_key("rsa");
    let ec = openssl_key("ec");
    let other = openssl_key("rsa");
    t.ok(
        Update,
        "auth/jwt/config",
        json!({"jwt_validation_pubkeys": [rsa.public, ec.public], "bound_issuer": "https://issuer.example"}),
    )
    .await;
    jwt_role(
        &t,
        "ci",
        json!({"bound_claims": {"repo": "org/*"}, "bound_claims_type": "glob",
               "claim_mappings": {"email": "mail"}}),
    )
    .await;
    let good = |extra: Value| {
        let mut e = json!({"repo": "org/app", "email": "a@example.org", "groups": ["eng", "ops"]});
        for (k, v) in extra.as_object().cloned().unwrap_or_default() {
            e[k] = v;
        }
        claims("tresor", "alice", e)
    };
    for key in [&rsa, &ec] {
        let jwt = key.sign(None, &good(json!({})));
        let auth = t
            .login("auth/jwt/login", json!({"role": "ci", "jwt": jwt}))
            .await
            .unwrap_or_else(|e| panic!("{:?} login: {e}", key.alg));
        assert_eq!(auth["policies"], json!(["default", "dev"]));
        assert_eq!(auth["metadata"]["role"], "ci");
        assert_eq!(auth["metadata"]["mail"], "a@example.org");
        assert_eq!(auth["lease_duration"], 600);
        assert!(
            !auth["entity_id"].as_str().unwrap_or_default().is_empty(),
            "{auth}"
        );
    }
    let cases: Vec<(String, &str)> = vec![
        (
            rsa.sign(
                None,
                &claims("other", "alice", json!({"repo": "org/app", "groups": []})),
            ),
            "aud",
        ),
        (
            rsa.sign(
                None,
                &claims(
                    "tresor",
                    "alice",
                    json!({"repo": "other/app", "groups": []}),
                ),
            ),
            "repo",
        ),
        (
            rsa.sign(None, &claims("tresor", "alice", json!({"groups": []}))),
            "repo",
        ),
        (rsa.sign(None, &good(json!({"exp": T0 - 211}))), "expired"),
        (rsa.sign(None, &good(json!({"nbf": T0 + 400}))), "nbf"),
        (
            rsa.sign(None, &good(json!({"iss": "https://evil.example"}))),
            "issuer",
        ),
        (other.sign(None, &good(json!({}))), "signature"),
        ("not.a.jwt".into(), "token"),
    ];
    for (jwt, want) in cases {
        let e = t
            .login("auth/jwt/login", json!({"role": "ci", "jwt": jwt}))
            .await
            .expect_err(want);
        assert!(invalid(&e).contains(want), "{want}: {e}");
    }
    // A tampered payload fails the signature check.
    let jwt = rsa.sign(None, &good(json!({})));
    let mut parts: Vec<String> = jwt.split('.').map(str::to_owned).collect();
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut payload: Value = serde_json::from_slice(&b64.decode(&parts[1]).unwrap()).unwrap();
    payload["sub"] = json!("mallory");
    parts[1] = b64.encode(payload.to_string());
    let e = t
        .login(
            "auth/jwt/login",
            json!({"role": "ci", "jwt": parts.join(".")}),
        )
        .await
        .unwrap_err();
    assert!(invalid(&e).contains("signature"), "{e}");
    // alg none and HMAC never verify.
    let none = format!("{}.{}.", b64.encode(r#"{"alg":"none"}"#), parts[1]);
    assert!(
        t.login("auth/jwt/login", json!({"role": "ci", "jwt": none}))
            .await
            .is_err()
    );
    // The leeway lets a just-expired token in; -1 turns it off.
    let late = rsa.sign(None, &good(json!({"exp": T0 - 100})));
    t.login("auth/jwt/login", json!({"role": "ci", "jwt": late.clone()}))
        .await
        .unwrap();
    t.ok(
        Update,
        "auth/jwt/role/ci",
        json!({"expiration_leeway": -1, "clock_skew_leeway": -1}),
    )
    .await;
    let e = t
        .login("auth/jwt/login", json!({"role": "ci", "jwt": late}))
        .await
        .unwrap_err();
    assert!(invalid(&e).contains("expired"), "{e}");
    // Time moves: the token that was fine expires.
    let jwt = rsa.sign(None, &good(json!({})));
    t.clock.advance(Duration::from_secs(601));
    let e = t
        .login("auth/jwt/login", json!({"role": "ci", "jwt": jwt}))
        .await
        .unwrap_err();
    assert!(invalid(&e).contains("expired"), "{e}");
    // Unknown role, OIDC role, missing role.
    let jwt = rsa.sign(
        None,
        &claims(
            "tresor",
            "alice",
            json!({"exp": T0 + 10_000, "repo": "org/x", "groups": []}),
        ),
    );
    let e = t
        .login(
            "auth/jwt/login",
            json!({"role": "nope", "jwt": jwt.clone()}),
        )
        .await
        .unwrap_err();
    assert!(invalid(&e).contains("could not be found"), "{e}");
    t.ok(
        Update,
        "auth/jwt/role/web",
        json!({"user_claim": "sub", "allowed_redirect_uris": "http://localhost:8250/cb"}),
    )
    .await;
    let e = t
        .login("auth/jwt/login", json!({"role": "web", "jwt": jwt.clone()}))
        .await
        .unwrap_err();
    assert!(invalid(&e).contains("oidc role_type"), "{e}");
    let e = t
        .login("auth/jwt/login", json!({"jwt": jwt}))
        .await
        .unwrap_err();
    assert!(invalid(&e).contains("missing role"), "{e}");
}

#[tokio::test]
async fn a_role_without_audiences_refuses_tokens_that_have_one() {
    let t = setup().await;
    let rsa = openssl_key("rsa");
    t.ok(
        Update,
        "auth/jwt/config",
        json!({"jwt_validation_pubkeys": [rsa.public], "default_role": "plain"}),
    )
    .await;
    t.ok(
        Update,
        "auth/jwt/role/plain",
        json!({"role_type": "jwt", "user_claim": "sub", "bound_subject": "svc"}),
    )
    .await;
    let with_aud = rsa.sign(None, &claims("x", "svc", json!({})));
    let e = t
        .login("auth/jwt/login", json!({"jwt": with_aud}))
        .await
        .unwrap_err();
    assert!(invalid(&e).contains("no audiences bound"), "{e}");
    let mut c = claims("x", "svc", json!({}));
    c.as_object_mut().unwrap().remove("aud");
    let auth = t
        .login("auth/jwt/login", json!({"jwt": rsa.sign(None, &c)}))
        .await
        .unwrap();
    assert_eq!(auth["metadata"]["role"], "plain");
    c["sub"] = json!("other");
    let e = t
        .login("auth/jwt/login", json!({"jwt": rsa.sign(None, &c)}))
        .await
        .unwrap_err();
    assert!(invalid(&e).contains("sub claim"), "{e}");
}

#[tokio::test]
async fn jwks_keys_are_cached_and_refetched_for_an_unknown_kid() {
    let t = setup().await;
    let k1 = openssl_key("rsa");
    let k2 = openssl_key("ec");
    let body = Arc::new(Mutex::new(json!({"keys": [k1.jwk("one")]}).to_string()));
    let hits = Arc::new(AtomicUsize::new(0));
    let (b, h) = (body.clone(), hits.clone());
    let url = serve(Arc::new(move |_s| {
        h.fetch_add(1, Ordering::SeqCst);
        (200, b.lock().clone())
    }))
    .await;
    // A second endpoint (jwks_pairs) with its own key.
    let k3 = openssl_key("rsa");
    let body3 = json!({"keys": [k3.jwk("three")]}).to_string();
    let url3 = serve(Arc::new(move |_s| (200, body3.clone()))).await;
    t.ok(
        Update,
        "auth/jwt/config",
        json!({"jwks_pairs": [{"jwks_url": format!("{url}/keys")}, {"jwks_url": format!("{url3}/keys")}]}),
    )
    .await;
    let after_config = hits.load(Ordering::SeqCst);
    assert_eq!(after_config, 1, "the config write fetched the JWKS once");
    jwt_role(&t, "ci", json!({"groups_claim": ""})).await;
    let c = claims("tresor", "alice", json!({}));
    for _ in 0..3 {
        t.login(
            "auth/jwt/login",
            json!({"role": "ci", "jwt": k1.sign(Some("one"), &c)}),
        )
        .await
        .unwrap();
    }
    t.login(
        "auth/jwt/login",
        json!({"role": "ci", "jwt": k3.sign(Some("three"), &c)}),
    )
    .await
    .unwrap();
    assert_eq!(
        hits.load(Ordering::SeqCst),
        after_config,
        "logins use the cached keys"
    );
    // The provider rotates to a new key: the first token with its kid triggers one refetch
    // (after the minimum refresh interval).
    *body.lock() = json!({"keys": [k1.jwk("one"), k2.jwk("two")]}).to_string();
    tokio::time::sleep(Duration::from_millis(5100)).await;
    t.login(
        "auth/jwt/login",
        json!({"role": "ci", "jwt": k2.sign(Some("two"), &c)}),
    )
    .await
    .unwrap();
    let n = hits.load(Ordering::SeqCst);
    assert!(n > after_config, "an unknown kid refetched the JWKS");
    // A made-up kid right after does not make the server fetch again.
    let e = t
        .login(
            "auth/jwt/login",
            json!({"role": "ci", "jwt": k2.sign(Some("made-up"), &c)}),
        )
        .await
        .unwrap_err();
    assert!(invalid(&e).contains("made-up"), "{e}");
    assert_eq!(hits.load(Ordering::SeqCst), n, "refetches are rate-limited");
}

#[tokio::test]
async fn a_jwks_with_no_keys_yet_is_accepted_and_logins_wait_for_a_key() {
    // Vault's identity token provider publishes an empty key set until a named key exists;
    // Vault accepts such a jwks_url (hvac's suite configures one). Logins find no key.
    let t = setup().await;
    let k1 = openssl_key("rsa");
    let body = Arc::new(Mutex::new(json!({"keys": []}).to_string()));
    let b = body.clone();
    let url = serve(Arc::new(move |_s| (200, b.lock().clone()))).await;
    t.ok(
        Update,
        "auth/jwt/config",
        json!({"jwks_url": format!("{url}/keys")}),
    )
    .await;
    jwt_role(&t, "ci", json!({"groups_claim": ""})).await;
    let c = claims("tresor", "alice", json!({}));
    let e = t
        .login(
            "auth/jwt/login",
            json!({"role": "ci", "jwt": k1.sign(Some("one"), &c)}),
        )
        .await
        .unwrap_err();
    assert!(invalid(&e).contains("one"), "{e}");
    // The provider publishes a key: after the refresh interval the next login uses it.
    *body.lock() = json!({"keys": [k1.jwk("one")]}).to_string();
    tokio::time::sleep(Duration::from_millis(5100)).await;
    t.login(
        "auth/jwt/login",
        json!({"role": "ci", "jwt": k1.sign(Some("one"), &c)}),
    )
    .await
    .unwrap();
}

/// A small OIDC provider on 127.0.0.1: discovery, JWKS, and a token endpoint that checks the
/// client credentials and the PKCE verifier and answers the ID token the test prepared.
struct Provider {
    url: String,
    /// (challenge expected, id_token to answer)
    next: Arc<Mutex<Option<(String, String)>>>,
}

async fn provider(key: &KeyPair) -> Provider {
    let next: Arc<Mutex<Option<(String, String)>>> = Arc::new(Mutex::new(None));
    let url_cell: Arc<Mutex<String>> = Arc::new(Mutex::new(String::new()));
    let (n, u) = (next.clone(), url_cell.clone());
    let jwks = json!({"keys": [key.jwk("p1")]});
    let url = serve(Arc::new(move |s| {
        let base = u.lock().clone();
        match s.path.split('?').next().unwrap_or_default() {
            "/.well-known/openid-configuration" => json_body(json!({
                "issuer": base,
                "authorization_endpoint": format!("{base}/authorize"),
                "token_endpoint": format!("{base}/token"),
                "jwks_uri": format!("{base}/jwks"),
                "token_endpoint_auth_methods_supported": ["client_secret_basic"],
            })),
            "/jwks" => json_body(jwks.clone()),
            "/token" => {
                let b64 = base64::engine::general_purpose::STANDARD;
                let want = format!("Basic {}", b64.encode("tresor-client:s3cret"));
                if s.headers.get("authorization") != Some(&want) {
                    return (401, json!({"error": "invalid_client"}).to_string());
                }
                let form: std::collections::HashMap<String, String> = s
                    .body
                    .split('&')
                    .filter_map(|p| p.split_once('='))
                    .map(|(k, v)| (k.to_owned(), v.to_owned()))
                    .collect();
                let Some((challenge, id_token)) = n.lock().take() else {
                    return (400, json!({"error": "invalid_grant"}).to_string());
                };
                let verifier = form.get("code_verifier").cloned().unwrap_or_default();
                let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, verifier.as_bytes());
                let got = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(d.as_ref());
                if got != challenge || form.get("code").map(String::as_str) != Some("the-code") {
                    return (400, json!({"error": "invalid_grant"}).to_string());
                }
                json_body(
                    json!({"access_token": "at", "token_type": "Bearer", "id_token": id_token}),
                )
            }
            _ => (404, "{}".into()),
        }
    }))
    .await;
    *url_cell.lock() = url.clone();
    Provider { url, next }
}

fn query(url: &str) -> std::collections::HashMap<String, String> {
    let u = reqwest::Url::parse(url).unwrap();
    u.query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

#[tokio::test]
async fn the_oidc_code_flow_checks_state_pkce_and_nonce() {
    let t = setup().await;
    let key = openssl_key("rsa");
    let p = provider(&key).await;
    t.ok(
        Update,
        "auth/oidc/config",
        json!({"oidc_discovery_url": p.url, "oidc_client_id": "tresor-client", "oidc_client_secret": "s3cret", "default_role": "web"}),
    )
    .await;
    let cfg = t.data(Read, "auth/oidc/config", json!({})).await;
    assert!(
        cfg.get("oidc_client_secret").is_none(),
        "the secret is never read back"
    );
    t.ok(
        Update,
        "auth/oidc/role/web",
        json!({"user_claim": "email", "groups_claim": "groups", "allowed_redirect_uris": "http://localhost:8250/oidc/callback",
               "oidc_scopes": "email", "token_policies": "reader"}),
    )
    .await;
    let e = t
        .req_as(
            Update,
            "auth/oidc/oidc/auth_url",
            json!({"redirect_uri": "http://evil.example/cb"}),
            None,
        )
        .await
        .unwrap_err();
    assert!(invalid(&e).contains("unauthorized redirect_uri"), "{e}");

    let purl = p.url.clone();
    let start = |client_nonce: &'static str| {
        let t = &t;
        let purl = purl.clone();
        async move {
            let r = t
                .req_as(
                    Update,
                    "auth/oidc/oidc/auth_url",
                    json!({"redirect_uri": "http://localhost:8250/oidc/callback", "client_nonce": client_nonce}),
                    None,
                )
                .await
                .unwrap();
            let url = r.response.unwrap().data.unwrap()["auth_url"]
                .as_str()
                .unwrap()
                .to_owned();
            assert!(url.starts_with(&format!("{purl}/authorize?")), "{url}");
            query(&url)
        }
    };
    let q = start("cn").await;
    assert_eq!(q["client_id"], "tresor-client");
    assert_eq!(q["response_type"], "code");
    assert_eq!(q["scope"], "openid email");
    assert_eq!(q["code_challenge_method"], "S256");
    let id = |nonce: &str| {
        key.sign(
            Some("p1"),
            &json!({"iss": p.url, "aud": "tresor-client", "sub": "u1", "email": "alice@example.org",
                    "groups": ["eng"], "nonce": nonce, "iat": T0, "exp": T0 + 300}),
        )
    };
    *p.next.lock() = Some((q["code_challenge"].clone(), id(&q["nonce"])));
    let r = t
        .req_as(
            Read,
            "auth/oidc/oidc/callback",
            json!({"state": q["state"], "code": "the-code", "client_nonce": "cn"}),
            None,
        )
        .await
        .unwrap();
    let auth = r.auth.expect("auth");
    assert_eq!(auth["policies"], json!(["default", "reader"]));
    assert_eq!(auth["metadata"]["role"], "web");
    // The state is spent.
    let e = t
        .req_as(
            Read,
            "auth/oidc/oidc/callback",
            json!({"state": q["state"], "code": "the-code", "client_nonce": "cn"}),
            None,
        )
        .await
        .unwrap_err();
    assert!(invalid(&e).contains("OAuth state"), "{e}");

    // A wrong nonce in the ID token is refused (form_post-style POST this time).
    let q = start("").await;
    *p.next.lock() = Some((q["code_challenge"].clone(), id("another-nonce")));
    let e = t
        .req_as(
            Update,
            "auth/oidc/oidc/callback",
            json!({"state": q["state"], "code": "the-code"}),
            None,
        )
        .await
        .unwrap_err();
    assert!(invalid(&e).contains("nonce"), "{e}");

    // A wrong client_nonce is refused before the code is exchanged.
    let q = start("cn2").await;
    let e = t
        .req_as(
            Read,
            "auth/oidc/oidc/callback",
            json!({"state": q["state"], "code": "the-code", "client_nonce": "x"}),
            None,
        )
        .await
        .unwrap_err();
    assert!(invalid(&e).contains("client_nonce"), "{e}");

    // An ID token for another client is refused; a state expires after five minutes.
    let q = start("").await;
    let other_aud = key.sign(
        Some("p1"),
        &json!({"iss": p.url, "aud": "someone-else", "sub": "u1", "email": "a@x", "groups": [],
                "nonce": q["nonce"], "iat": T0, "exp": T0 + 300}),
    );
    *p.next.lock() = Some((q["code_challenge"].clone(), other_aud));
    let e = t
        .req_as(
            Read,
            "auth/oidc/oidc/callback",
            json!({"state": q["state"], "code": "the-code"}),
            None,
        )
        .await
        .unwrap_err();
    assert!(invalid(&e).contains("aud"), "{e}");
    let q = start("").await;
    t.clock.advance(Duration::from_secs(301));
    let e = t
        .req_as(
            Read,
            "auth/oidc/oidc/callback",
            json!({"state": q["state"], "code": "the-code"}),
            None,
        )
        .await
        .unwrap_err();
    assert!(invalid(&e).contains("OAuth state"), "{e}");
}

#[tokio::test]
async fn renewal_follows_the_role() {
    let t = setup().await;
    let rsa = openssl_key("rsa");
    t.ok(
        Update,
        "auth/jwt/config",
        json!({"jwt_validation_pubkeys": [rsa.public]}),
    )
    .await;
    jwt_role(&t, "ci", json!({"groups_claim": "", "token_max_ttl": "1h"})).await;
    let auth = t
        .login(
            "auth/jwt/login",
            json!({"role": "ci", "jwt": rsa.sign(None, &claims("tresor", "alice", json!({})))}),
        )
        .await
        .unwrap();
    let tok = auth["client_token"].as_str().unwrap().to_owned();
    let r = t
        .req_as(Update, "auth/token/renew-self", json!({}), Some(&tok))
        .await
        .unwrap();
    assert_eq!(r.auth.unwrap()["lease_duration"], 600);
    t.ok(
        Update,
        "auth/jwt/role/ci",
        json!({"token_policies": "dev,admin"}),
    )
    .await;
    let e = t
        .req_as(Update, "auth/token/renew-self", json!({}), Some(&tok))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("policies have changed"), "{e}");
    t.ok(Delete, "auth/jwt/role/ci", json!({})).await;
    let e = t
        .req_as(Update, "auth/token/renew-self", json!({}), Some(&tok))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("no longer exists"), "{e}");
}

/// Logins read their role from a cache: a role rewritten or deleted after a login takes effect
/// on the next login, not the cached copy.
#[tokio::test]
async fn a_changed_or_deleted_role_takes_effect_at_the_next_login() {
    let t = setup().await;
    let ec = openssl_key("ec");
    t.ok(
        Update,
        "auth/jwt/config",
        json!({"jwt_validation_pubkeys": [ec.public]}),
    )
    .await;
    jwt_role(&t, "ci", json!({})).await;
    let jwt = ec.sign(None, &claims("tresor", "alice", json!({"groups": []})));
    let login = json!({"role": "ci", "jwt": jwt});
    let auth = t.login("auth/jwt/login", login.clone()).await.unwrap();
    assert_eq!(auth["policies"], json!(["default", "dev"]));
    // Other policies: the next login gets them.
    jwt_role(&t, "ci", json!({"token_policies": "ops"})).await;
    let auth = t.login("auth/jwt/login", login.clone()).await.unwrap();
    assert_eq!(auth["policies"], json!(["default", "ops"]));
    // Another audience: the same token is refused.
    jwt_role(&t, "ci", json!({"bound_audiences": "elsewhere"})).await;
    let e = t.login("auth/jwt/login", login.clone()).await.unwrap_err();
    assert!(invalid(&e).contains("aud"), "{e}");
    // Deleted: refused.
    t.ok(Delete, "auth/jwt/role/ci", json!({})).await;
    let e = t.login("auth/jwt/login", login).await.unwrap_err();
    assert!(invalid(&e).contains("could not be found"), "{e}");
}
