//! The JWT/OIDC and Kubernetes auth methods' inputs (`tresor-jwt`): tokens presented at
//! `login` (compact JWS: header, claims, signature; verification with `jwt_validation_pubkeys`
//! and the Kubernetes method's `pem_keys`; times, issuer, audience, subject and the role's
//! bound claims, strings, lists, JSON pointers and globs; claim mappings and the groups claim),
//! and the mounts' `config` and `role/:name` writes (PEM keys and certificates, algorithms,
//! bound claims) — through the methods' handlers.
//!
//! The target signs fuzzed claims itself with a fixed ES256 key (fixtures/jwt_es256_key.pem,
//! a throwaway test key) so that mutations of the claims get past the signature check and
//! reach the claim checks. Kubernetes logins that verify then ask the TokenReview API at
//! 127.0.0.1:1, where nothing listens; URLs in fuzzed configs (discovery, JWKS, the API
//! server) are pointed there too, so no input reaches out to the network. JWKS documents come
//! from a small HTTP server the target runs on 127.0.0.1, which answers with the input.
//!
//! Input: first byte (mod 9) 0: the rest is a raw token for the JWT role `r`; 1 and 2: a JSON
//! object of claims, signed, for the role `r` (string bound claims) or `g` (glob bound
//! claims); 3: the JWT `config` body as JSON, or a PEM key for `jwt_validation_pubkeys`; 4: a
//! role body as JSON (over `role_type=jwt`, `user_claim=sub`), then a login with fixed signed
//! claims on that role; 5: a raw token for the Kubernetes role; 6: signed claims for it; 7: the
//! Kubernetes `config` body as JSON, or a PEM key for `pem_keys`; 8: a JWKS document, served
//! to a `config` write with `jwks_url`, then a login with fixed signed claims (`kid` "k1").

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::LazyLock;
use std::time::Duration;

use parking_lot::Mutex;

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Map, Value, json};
use tresor_sdk::Operation::Update;

use crate::{Engine, obj};

const PRIVATE: &str = include_str!("../../fixtures/jwt_es256_key.pem");
const PUBLIC: &str = include_str!("../../fixtures/jwt_es256_pub.pem");
/// 2100-01-01: tokens the target signs expire after the corpus stops mattering.
const FAR: i64 = 4_102_444_800;

static KEY: LazyLock<EncodingKey> =
    LazyLock::new(|| EncodingKey::from_ec_pem(PRIVATE.as_bytes()).expect("fixture key"));

static JWT: LazyLock<Engine> = LazyLock::new(|| {
    Engine::new(
        tresor_jwt::backend,
        &[
            (
                "config",
                obj(&[
                    ("jwt_validation_pubkeys", json!([PUBLIC])),
                    ("bound_issuer", json!("https://issuer.example")),
                ]),
            ),
            (
                "role/r",
                obj(&[
                    ("role_type", json!("jwt")),
                    ("user_claim", json!("sub")),
                    ("bound_audiences", json!(["fuzz"])),
                    (
                        "bound_claims",
                        json!({"groups": ["admins", "ops"], "/org/team": "blue"}),
                    ),
                    (
                        "claim_mappings",
                        json!({"email": "email", "/org/team": "team"}),
                    ),
                    ("groups_claim", json!("groups")),
                ]),
            ),
            (
                "role/g",
                obj(&[
                    ("role_type", json!("jwt")),
                    ("user_claim", json!("/org/user")),
                    ("user_claim_json_pointer", json!(true)),
                    ("bound_audiences", json!(["fuzz"])),
                    ("bound_subject", json!("alice")),
                    ("bound_claims_type", json!("glob")),
                    (
                        "bound_claims",
                        json!({"email": "*@example.com", "roles": ["dev-*", "*-ops"]}),
                    ),
                    ("groups_claim", json!("/org/groups")),
                ]),
            ),
        ],
    )
});

static K8S: LazyLock<Engine> = LazyLock::new(|| {
    Engine::new(
        tresor_jwt::kubernetes_backend,
        &[
            (
                "config",
                obj(&[
                    ("kubernetes_host", json!("https://127.0.0.1:1")),
                    ("pem_keys", json!([PUBLIC])),
                    ("disable_local_ca_jwt", json!(true)),
                    ("disable_iss_validation", json!(false)),
                ]),
            ),
            (
                "role/r",
                obj(&[
                    ("bound_service_account_names", json!(["app", "web-*"])),
                    ("bound_service_account_namespaces", json!(["default"])),
                    ("audience", json!("fuzz")),
                ]),
            ),
        ],
    )
});

/// What the JWKS server answers with next.
static JWKS_BODY: Mutex<Vec<u8>> = Mutex::new(Vec::new());

/// A one-thread HTTP server on 127.0.0.1 answering every request with [`JWKS_BODY`].
static JWKS_URL: LazyLock<String> = LazyLock::new(|| {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind the JWKS server");
    let addr = listener.local_addr().expect("its address");
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
            let mut req = Vec::new();
            let mut buf = [0u8; 1024];
            while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                match conn.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => req.extend_from_slice(&buf[..n]),
                }
            }
            let body = JWKS_BODY.lock().clone();
            let head = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                body.len()
            );
            let _ = conn.write_all(head.as_bytes());
            let _ = conn.write_all(&body);
        }
    });
    format!("http://{addr}/jwks")
});

fn claims_for(role_sub: &str) -> Map<String, Value> {
    obj(&[
        ("iss", json!("https://issuer.example")),
        ("sub", json!(role_sub)),
        ("aud", json!("fuzz")),
        ("exp", json!(FAR)),
        ("email", json!("alice@example.com")),
        ("groups", json!(["admins", "dev-1"])),
        (
            "org",
            json!({"team": "blue", "user": "alice", "groups": ["g1"]}),
        ),
    ])
}

fn sign(claims: &Map<String, Value>) -> Option<String> {
    jsonwebtoken::encode(&Header::new(Algorithm::ES256), claims, &KEY).ok()
}

fn object(text: &str) -> Option<Map<String, Value>> {
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(m)) => Some(m),
        _ => None,
    }
}

/// Where nothing listens: URLs in fuzzed configs are pointed here, so a write that would fetch
/// a discovery document, a JWKS or ask TokenReview fails at once instead of reaching out.
const DEAD: &str = "http://127.0.0.1:1/";

fn no_network(body: &mut Map<String, Value>) {
    for k in ["oidc_discovery_url", "jwks_url", "kubernetes_host"] {
        if body.contains_key(k) {
            body.insert(k.into(), json!(DEAD));
        }
    }
    if let Some(Value::Array(pairs)) = body.get_mut("jwks_pairs") {
        for p in pairs {
            if let Value::Object(p) = p {
                p.insert("jwks_url".into(), json!(DEAD));
            }
        }
    }
}

fn login(engine: &Engine, role: &str, jwt: String) {
    let _ = engine.call(
        Update,
        "login",
        obj(&[("role", json!(role)), ("jwt", Value::String(jwt))]),
        None,
    );
}

/// The `jwt` target: one input.
pub fn jwt(data: &[u8]) {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    match sel % 9 {
        0 => login(&JWT, "r", text.to_owned()),
        1 | 2 => {
            if let Some(token) = object(text).as_ref().and_then(sign) {
                login(&JWT, if sel % 9 == 1 { "r" } else { "g" }, token);
            }
        }
        3 => {
            let mut body =
                object(text).unwrap_or_else(|| obj(&[("jwt_validation_pubkeys", json!([text]))]));
            no_network(&mut body);
            let _ = JWT.call(Update, "config", body, None);
        }
        4 => {
            let mut body = obj(&[("role_type", json!("jwt")), ("user_claim", json!("sub"))]);
            match object(text) {
                Some(m) => body.extend(m),
                None => {
                    body.insert("bound_claims".into(), json!({"groups": text}));
                }
            }
            let s = JWT.session();
            if s.call(Update, "role/f", body).is_ok()
                && let Some(token) = sign(&claims_for("alice"))
            {
                let _ = s.call(
                    Update,
                    "login",
                    obj(&[("role", json!("f")), ("jwt", Value::String(token))]),
                );
            }
        }
        5 => login(&K8S, "r", text.to_owned()),
        6 => {
            if let Some(token) = object(text).as_ref().and_then(sign) {
                login(&K8S, "r", token);
            }
        }
        8 => {
            *JWKS_BODY.lock() = rest.to_vec();
            let s = JWT.session();
            let config = obj(&[
                ("jwks_url", json!(&*JWKS_URL)),
                ("bound_issuer", json!("https://issuer.example")),
            ]);
            if s.call(Update, "config", config).is_ok() {
                let mut header = Header::new(Algorithm::ES256);
                header.kid = Some("k1".into());
                if let Ok(token) = jsonwebtoken::encode(&header, &claims_for("alice"), &KEY) {
                    let _ = s.call(
                        Update,
                        "login",
                        obj(&[("role", json!("r")), ("jwt", Value::String(token))]),
                    );
                }
            }
        }
        _ => {
            let mut body = object(text).unwrap_or_else(|| {
                obj(&[
                    ("kubernetes_host", json!("https://127.0.0.1:1")),
                    ("disable_local_ca_jwt", json!(true)),
                    ("pem_keys", json!([text])),
                ])
            });
            no_network(&mut body);
            let _ = K8S.call(Update, "config", body, None);
        }
    }
}
