//! Issue 13, identity tokens: named keys and roles (CRUD, LIST), signed ID tokens for the
//! caller's entity (template claims rendered from its metadata, aliases and groups),
//! introspection (active, and inactive for an expired token, a wrong audience, a tampered
//! signature or payload, a deleted key, a wrong issuer), rotation that keeps old public keys in
//! the JWKS until their verification_ttl, the unauthenticated discovery documents, a caller
//! without an entity refused, and bad input refused with a 400 naming the field, storing nothing.

mod common;

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::{TestCore, dev_core_with};
use serde_json::{Map, Value, json};
use tresor_core::{CoreError, CoreRequest, CoreResponse};
use tresor_sdk::Operation::{self, Delete, List, Read, Update};
use tresor_sdk::{
    Alias, Auth, LogicalBackend, LogicalError, Request, Response, Result, SpecialPaths,
};

const ISSUER: &str = "http://127.0.0.1:8200/v1/identity/oidc";

/// A method whose login names the user in the request (alias metadata `team=red`).
struct Named;

#[async_trait::async_trait]
impl LogicalBackend for Named {
    async fn handle(&self, req: Request) -> Result<Option<Response>> {
        if req.path != "login" {
            return Err(LogicalError::UnsupportedPath);
        }
        let user = req.data.get("user").and_then(Value::as_str).unwrap_or("");
        Ok(Some(Response {
            auth: Some(Auth {
                display_name: user.to_owned(),
                renewable: true,
                alias: Some(Alias {
                    name: user.to_owned(),
                    metadata: [("team".to_owned(), "red".to_owned())].into(),
                }),
                ..Default::default()
            }),
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
}

/// A dev core with the `named` method at `auth/one/` and an `oidc` policy that lets a token
/// ask for identity tokens and introspect them.
async fn core() -> TestCore {
    let t =
        dev_core_with(|c| c.register_credential("named", Arc::new(|_| Ok(Arc::new(Named))))).await;
    t.ok(Update, "sys/auth/one", json!({"type": "named"}), &t.root)
        .await;
    t.policy(
        "oidc",
        r#"
path "identity/oidc/token/*" { capabilities = ["read"] }
path "identity/oidc/introspect" { capabilities = ["update"] }
"#,
    )
    .await;
    t
}

/// Logs `user` in; returns (token, entity id). The entity gets the `oidc` policy.
async fn login(t: &TestCore, user: &str) -> (String, String) {
    let mut body = Map::new();
    body.insert("user".into(), json!(user));
    let r = t
        .core
        .handle(CoreRequest::new(Update, "auth/one/login", body, None))
        .await
        .unwrap_or_else(|e| panic!("login {user}: {e}"));
    let auth = r.auth.expect("auth block");
    let token = auth["client_token"].as_str().unwrap().to_owned();
    let id = auth["entity_id"].as_str().unwrap().to_owned();
    t.ok(
        Update,
        &format!("identity/entity/id/{id}"),
        json!({"policies": ["oidc"]}),
        &t.root,
    )
    .await;
    (token, id)
}

/// The data of a read, `None` when there is nothing.
async fn read(t: &TestCore, path: &str) -> Option<Map<String, Value>> {
    match t.req(Read, path, json!({}), &t.root).await {
        Ok(r) => r.response.and_then(|r| r.data),
        Err(CoreError::NotFoundEmpty) => None,
        Err(e) => panic!("read {path}: {e}"),
    }
}

/// The JSON body of a raw (envelope-less) answer.
fn raw(r: CoreResponse) -> Value {
    let raw = r.response.and_then(|r| r.raw).expect("a raw answer");
    assert_eq!(raw.status, 200);
    assert_eq!(raw.content_type, "application/json");
    serde_json::from_slice(&raw.body).expect("JSON body")
}

/// An unauthenticated request, as an OIDC verifier makes it.
async fn anonymous(t: &TestCore, path: &str) -> Value {
    let r = t
        .core
        .handle(CoreRequest::new(Read, path, Map::new(), None))
        .await
        .unwrap_or_else(|e| panic!("GET {path} without a token: {e}"));
    raw(r)
}

async fn introspect(t: &TestCore, token: &str, client_id: Option<&str>) -> Value {
    let mut body = json!({ "token": token });
    if let Some(c) = client_id {
        body["client_id"] = json!(c);
    }
    raw(t
        .ok(Update, "identity/oidc/introspect", body, &t.root)
        .await)
}

fn assert_inactive(v: &Value, why: &str) {
    assert_eq!(v["active"], false, "{v}");
    let e = v["error"].as_str().unwrap_or_default();
    assert!(e.contains(why), "want {why:?} in {v}");
}

async fn token_for(t: &TestCore, role: &str, token: &str) -> Map<String, Value> {
    t.data(
        Read,
        &format!("identity/oidc/token/{role}"),
        json!({}),
        token,
    )
    .await
}

/// The header and claims of a compact JWS.
fn decode(jwt: &str) -> (Value, Value) {
    let parts: Vec<&str> = jwt.split('.').collect();
    assert_eq!(parts.len(), 3, "{jwt}");
    let part = |p: &str| -> Value {
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(p).expect("base64url")).expect("JSON")
    };
    (part(parts[0]), part(parts[1]))
}

async fn jwks_kids(t: &TestCore) -> Vec<String> {
    let keys = anonymous(t, "identity/oidc/.well-known/keys").await;
    keys["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect()
}

/// A key and a role for it; returns the role's client_id.
async fn key_and_role(
    t: &TestCore,
    key: &str,
    role: &str,
    key_body: Value,
    role_body: Value,
) -> String {
    t.ok(
        Update,
        &format!("identity/oidc/key/{key}"),
        key_body,
        &t.root,
    )
    .await;
    let mut body = role_body;
    body["key"] = json!(key);
    t.ok(Update, &format!("identity/oidc/role/{role}"), body, &t.root)
        .await;
    read(t, &format!("identity/oidc/role/{role}"))
        .await
        .unwrap()["client_id"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn keys_and_roles_are_created_read_listed_and_deleted() {
    let t = core().await;
    t.ok(Update, "identity/oidc/key/k1", json!({}), &t.root)
        .await;
    let k = read(&t, "identity/oidc/key/k1").await.unwrap();
    assert_eq!(
        Value::Object(k),
        json!({"algorithm": "RS256", "allowed_client_ids": [], "rotation_period": 86400, "verification_ttl": 86400})
    );
    t.ok(
        Update,
        "identity/oidc/key/k2",
        json!({"algorithm": "ES256", "rotation_period": "12h", "verification_ttl": 3600, "allowed_client_ids": "a,b"}),
        &t.root,
    )
    .await;
    let k = read(&t, "identity/oidc/key/k2").await.unwrap();
    assert_eq!(k["algorithm"], "ES256");
    assert_eq!(k["rotation_period"], 43200);
    assert_eq!(k["verification_ttl"], 3600);
    assert_eq!(k["allowed_client_ids"], json!(["a", "b"]));
    // An update changes only what it names.
    t.ok(
        Update,
        "identity/oidc/key/k2",
        json!({"allowed_client_ids": ["*"]}),
        &t.root,
    )
    .await;
    let k = read(&t, "identity/oidc/key/k2").await.unwrap();
    assert_eq!(k["allowed_client_ids"], json!(["*"]));
    assert_eq!(k["rotation_period"], 43200);
    let keys = t.data(List, "identity/oidc/key/", json!({}), &t.root).await;
    assert_eq!(keys["keys"], json!(["default", "k1", "k2"]));

    t.ok(
        Update,
        "identity/oidc/role/r1",
        json!({"key": "k2", "ttl": "30m"}),
        &t.root,
    )
    .await;
    let r = read(&t, "identity/oidc/role/r1").await.unwrap();
    assert_eq!(r["key"], "k2");
    assert_eq!(r["ttl"], 1800);
    assert_eq!(r["template"], "");
    let client_id = r["client_id"].as_str().unwrap().to_owned();
    assert_eq!(client_id.len(), 26, "{client_id}");
    // An update keeps the generated client_id; a chosen one replaces it.
    t.ok(Update, "identity/oidc/role/r1", json!({"ttl": 60}), &t.root)
        .await;
    let r = read(&t, "identity/oidc/role/r1").await.unwrap();
    assert_eq!(r["client_id"], client_id.as_str());
    assert_eq!(r["ttl"], 60);
    t.ok(
        Update,
        "identity/oidc/role/r2",
        json!({"key": "k2", "client_id": "my-app", "ttl": 60}),
        &t.root,
    )
    .await;
    assert_eq!(
        read(&t, "identity/oidc/role/r2").await.unwrap()["client_id"],
        "my-app"
    );
    let roles = t
        .data(List, "identity/oidc/role/", json!({}), &t.root)
        .await;
    assert_eq!(roles["keys"], json!(["r1", "r2"]));

    // A key a role uses cannot be deleted.
    let e = t
        .req(Delete, "identity/oidc/key/k2", json!({}), &t.root)
        .await
        .unwrap_err();
    assert!(matches!(e, CoreError::InvalidRequest(_)), "{e:?}");
    assert!(e.to_string().contains("r1, r2"), "{e}");
    assert!(read(&t, "identity/oidc/key/k2").await.is_some());
    for r in ["r1", "r2"] {
        t.ok(
            Delete,
            &format!("identity/oidc/role/{r}"),
            json!({}),
            &t.root,
        )
        .await;
        assert!(read(&t, &format!("identity/oidc/role/{r}")).await.is_none());
    }
    t.ok(Delete, "identity/oidc/key/k2", json!({}), &t.root)
        .await;
    assert!(read(&t, "identity/oidc/key/k2").await.is_none());
    let keys = t.data(List, "identity/oidc/key/", json!({}), &t.root).await;
    assert_eq!(keys["keys"], json!(["default", "k1"]));
}

/// As in Vault, the key `default` exists on a fresh server (RS256, every client, daily), is
/// listed, signs for a role that names it (its key pair made then, once, and published), may
/// be changed and rotated, and cannot be deleted.
#[tokio::test]
async fn the_built_in_default_key_exists_signs_and_cannot_be_deleted() {
    let t = core().await;
    assert_eq!(
        Value::Object(read(&t, "identity/oidc/key/default").await.unwrap()),
        json!({"algorithm": "RS256", "allowed_client_ids": ["*"], "rotation_period": 86400, "verification_ttl": 86400})
    );
    let keys = t.data(List, "identity/oidc/key/", json!({}), &t.root).await;
    assert_eq!(keys["keys"], json!(["default"]));
    assert!(
        jwks_kids(&t).await.is_empty(),
        "no key pair before first use"
    );
    let e = t
        .req(Delete, "identity/oidc/key/default", json!({}), &t.root)
        .await
        .unwrap_err();
    assert!(matches!(e, CoreError::InvalidRequest(_)), "{e:?}");
    assert!(
        e.to_string()
            .contains("deletion of key \"default\" not allowed"),
        "{e}"
    );
    // A role's ttl is held to the default key's verification_ttl (24h).
    let e = t
        .req(
            Update,
            "identity/oidc/role/long",
            json!({"key": "default", "ttl": "25h"}),
            &t.root,
        )
        .await
        .unwrap_err();
    assert!(matches!(e, CoreError::InvalidRequest(_)), "{e:?}");
    t.ok(
        Update,
        "identity/oidc/role/app",
        json!({"key": "default", "ttl": "1h"}),
        &t.root,
    )
    .await;
    let (token, entity) = login(&t, "dana").await;
    let jwt = token_for(&t, "app", &token).await["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let (header, claims) = decode(&jwt);
    assert_eq!(header["alg"], "RS256");
    assert_eq!(claims["sub"], entity.as_str());
    let kids = jwks_kids(&t).await;
    assert_eq!(kids, vec![header["kid"].as_str().unwrap().to_owned()]);
    assert_eq!(introspect(&t, &jwt, None).await["active"], true);
    // The same key pair signs the next token.
    let again = token_for(&t, "app", &token).await["token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(decode(&again).0["kid"], header["kid"]);
    // Changing it keeps what the write does not name; rotating it publishes a new key
    // while the old one still verifies.
    t.ok(
        Update,
        "identity/oidc/key/default",
        json!({"rotation_period": "12h"}),
        &t.root,
    )
    .await;
    let k = read(&t, "identity/oidc/key/default").await.unwrap();
    assert_eq!(k["rotation_period"], 43200);
    assert_eq!(k["allowed_client_ids"], json!(["*"]));
    t.ok(
        Update,
        "identity/oidc/key/default/rotate",
        json!({}),
        &t.root,
    )
    .await;
    assert_eq!(jwks_kids(&t).await.len(), 2);
    assert_eq!(introspect(&t, &jwt, None).await["active"], true);
}

#[tokio::test]
async fn a_token_carries_the_entity_and_introspects_as_active() {
    let t = core().await;
    let client_id = key_and_role(
        &t,
        "k",
        "app",
        json!({"allowed_client_ids": ["*"]}),
        json!({"ttl": "1h"}),
    )
    .await;
    let (user, entity_id) = login(&t, "alice").await;
    let d = token_for(&t, "app", &user).await;
    assert_eq!(d["client_id"], client_id.as_str());
    assert_eq!(d["ttl"], 3600);
    let jwt = d["token"].as_str().unwrap();
    let (header, claims) = decode(jwt);
    assert_eq!(header["alg"], "RS256");
    assert_eq!(claims["iss"], ISSUER);
    assert_eq!(claims["sub"], entity_id.as_str());
    assert_eq!(claims["aud"], client_id.as_str());
    assert_eq!(claims["namespace"], "root");
    let (iat, exp) = (
        claims["iat"].as_i64().unwrap(),
        claims["exp"].as_i64().unwrap(),
    );
    assert_eq!(exp - iat, 3600);
    // The header's kid is a key the unauthenticated JWKS serves.
    assert!(
        jwks_kids(&t)
            .await
            .contains(&header["kid"].as_str().unwrap().to_owned())
    );

    assert_eq!(introspect(&t, jwt, None).await, json!({"active": true}));
    assert_eq!(
        introspect(&t, jwt, Some(&client_id)).await,
        json!({"active": true})
    );
    // The user's own token may introspect too (the oidc policy); without a token, no.
    let own = t
        .ok(
            Update,
            "identity/oidc/introspect",
            json!({"token": jwt}),
            &user,
        )
        .await;
    assert_eq!(raw(own)["active"], true);
    let anon = t
        .core
        .handle(CoreRequest::new(
            Update,
            "identity/oidc/introspect",
            json!({"token": jwt}).as_object().unwrap().clone(),
            None,
        ))
        .await;
    assert!(matches!(anon, Err(CoreError::PermissionDenied)), "{anon:?}");

    assert_inactive(
        &introspect(&t, jwt, Some("someone-else")).await,
        "error validating claims: validation failed, invalid audience claim (aud)",
    );
    // A changed signature, a changed payload, garbage.
    let (rest, sig) = jwt.rsplit_once('.').unwrap();
    let mut sig_bytes = URL_SAFE_NO_PAD.decode(sig).unwrap();
    sig_bytes[10] ^= 1;
    let tampered = format!("{rest}.{}", URL_SAFE_NO_PAD.encode(&sig_bytes));
    assert_inactive(
        &introspect(&t, &tampered, None).await,
        "unable to validate the token signature",
    );
    let (h, _) = rest.split_once('.').unwrap();
    let mut forged = claims.clone();
    forged["sub"] = json!("someone-else");
    let forged = format!("{h}.{}.{sig}", URL_SAFE_NO_PAD.encode(forged.to_string()));
    assert_inactive(
        &introspect(&t, &forged, None).await,
        "unable to validate the token signature",
    );
    assert_inactive(
        &introspect(&t, "not-a-jwt", None).await,
        "error parsing token",
    );
    assert_inactive(&introspect(&t, "", None).await, "error parsing token");

    // A disabled entity's tokens are inactive; a deleted entity's too.
    t.ok(
        Update,
        &format!("identity/entity/id/{entity_id}"),
        json!({"disabled": true}),
        &t.root,
    )
    .await;
    assert_inactive(&introspect(&t, jwt, None).await, "entity is disabled");
    t.ok(
        Delete,
        &format!("identity/entity/id/{entity_id}"),
        json!({}),
        &t.root,
    )
    .await;
    assert_inactive(&introspect(&t, jwt, None).await, "entity was not found");
}

#[tokio::test]
async fn discovery_documents_are_served_without_a_token() {
    let t = core().await;
    let d = anonymous(&t, "identity/oidc/.well-known/openid-configuration").await;
    assert_eq!(d["issuer"], ISSUER);
    assert_eq!(d["jwks_uri"], format!("{ISSUER}/.well-known/keys"));
    assert_eq!(d["subject_types_supported"], json!(["public"]));
    assert!(
        d["id_token_signing_alg_values_supported"]
            .as_array()
            .unwrap()
            .contains(&json!("ES256"))
    );
    assert_eq!(
        anonymous(&t, "identity/oidc/.well-known/keys").await,
        json!({"keys": []})
    );
    // A configured issuer is the base of iss and of the JWKS address.
    let w = t
        .ok(
            Update,
            "identity/oidc/config",
            json!({"issuer": "https://vault.example.com:8200"}),
            &t.root,
        )
        .await;
    assert!(
        w.response.unwrap().warnings[0].contains("issuer"),
        "Vault's warning about an explicit issuer"
    );
    assert_eq!(
        read(&t, "identity/oidc/config").await.unwrap()["issuer"],
        "https://vault.example.com:8200"
    );
    let d = anonymous(&t, "identity/oidc/.well-known/openid-configuration").await;
    assert_eq!(
        d["issuer"],
        "https://vault.example.com:8200/v1/identity/oidc"
    );
    assert_eq!(
        d["jwks_uri"],
        "https://vault.example.com:8200/v1/identity/oidc/.well-known/keys"
    );
    // Other identity paths still need a token.
    let r = t
        .core
        .handle(CoreRequest::new(
            Read,
            "identity/oidc/config",
            Map::new(),
            None,
        ))
        .await;
    assert!(matches!(r, Err(CoreError::PermissionDenied)), "{r:?}");

    // A token issued under one issuer is inactive once the issuer changes.
    key_and_role(
        &t,
        "k",
        "app",
        json!({"allowed_client_ids": "*"}),
        json!({}),
    )
    .await;
    let (user, _) = login(&t, "alice").await;
    let jwt = token_for(&t, "app", &user).await["token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        decode(&jwt).1["iss"],
        "https://vault.example.com:8200/v1/identity/oidc"
    );
    t.ok(
        Update,
        "identity/oidc/config",
        json!({"issuer": ""}),
        &t.root,
    )
    .await;
    assert_inactive(
        &introspect(&t, &jwt, None).await,
        "invalid issuer claim (iss)",
    );
}

#[tokio::test]
async fn an_expired_token_is_inactive() {
    let t = core().await;
    key_and_role(
        &t,
        "k",
        "short",
        json!({"allowed_client_ids": "*", "algorithm": "ES256"}),
        json!({"ttl": 1}),
    )
    .await;
    let (user, _) = login(&t, "alice").await;
    let jwt = token_for(&t, "short", &user).await["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let (header, claims) = decode(&jwt);
    assert_eq!(header["alg"], "ES256");
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        1
    );
    // The identity backend reads the wall clock (no injected clock reaches it): wait out the
    // one-second TTL.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_inactive(
        &introspect(&t, &jwt, None).await,
        "error validating claims: validation failed, token is expired (exp)",
    );
}

#[tokio::test]
async fn a_deleted_key_verifies_nothing() {
    let t = core().await;
    key_and_role(
        &t,
        "gone",
        "app",
        json!({"allowed_client_ids": "*"}),
        json!({}),
    )
    .await;
    let (user, _) = login(&t, "alice").await;
    let jwt = token_for(&t, "app", &user).await["token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(introspect(&t, &jwt, None).await["active"], true);
    t.ok(Delete, "identity/oidc/role/app", json!({}), &t.root)
        .await;
    t.ok(Delete, "identity/oidc/key/gone", json!({}), &t.root)
        .await;
    assert!(jwks_kids(&t).await.is_empty());
    assert_inactive(
        &introspect(&t, &jwt, None).await,
        "unable to validate the token signature",
    );
}

#[tokio::test]
async fn rotation_keeps_old_public_keys_until_their_verification_ttl() {
    let t = core().await;
    key_and_role(
        &t,
        "k",
        "app",
        json!({"allowed_client_ids": "*", "algorithm": "ES256"}),
        json!({"ttl": 60}),
    )
    .await;
    let (user, _) = login(&t, "alice").await;
    let old = token_for(&t, "app", &user).await["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let old_kid = decode(&old).0["kid"].as_str().unwrap().to_owned();
    assert_eq!(jwks_kids(&t).await, vec![old_kid.clone()]);

    t.ok(
        Update,
        "identity/oidc/key/k/rotate",
        json!({"verification_ttl": "2s"}),
        &t.root,
    )
    .await;
    let new = token_for(&t, "app", &user).await["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let new_kid = decode(&new).0["kid"].as_str().unwrap().to_owned();
    assert_ne!(new_kid, old_kid, "a rotation signs with a new key");
    let kids = jwks_kids(&t).await;
    assert!(
        kids.contains(&old_kid) && kids.contains(&new_kid),
        "{kids:?}"
    );
    assert_eq!(introspect(&t, &old, None).await["active"], true);
    assert_eq!(introspect(&t, &new, None).await["active"], true);

    // Once the old key's verification_ttl is over, it leaves the JWKS and its tokens fail.
    tokio::time::sleep(Duration::from_millis(3100)).await;
    assert_eq!(jwks_kids(&t).await, vec![new_kid]);
    assert_inactive(
        &introspect(&t, &old, None).await,
        "unable to validate the token signature",
    );
    assert_eq!(introspect(&t, &new, None).await["active"], true);

    // A new algorithm is a rotation too: the old key keeps verifying for verification_ttl.
    t.ok(
        Update,
        "identity/oidc/key/k",
        json!({"algorithm": "RS256"}),
        &t.root,
    )
    .await;
    assert_eq!(jwks_kids(&t).await.len(), 2);
    let rs = token_for(&t, "app", &user).await["token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(decode(&rs).0["alg"], "RS256");
    assert_eq!(introspect(&t, &new, None).await["active"], true);
    assert_eq!(introspect(&t, &rs, None).await["active"], true);
}

#[tokio::test]
async fn a_role_template_renders_the_entity_into_claims() {
    let t = core().await;
    let (user, entity_id) = login(&t, "alice").await;
    let acc = t.data(Read, "sys/auth", json!({}), &t.root).await["one/"]["accessor"]
        .as_str()
        .unwrap()
        .to_owned();
    t.ok(
        Update,
        &format!("identity/entity/id/{entity_id}"),
        json!({"metadata": {"color": "green", "tricky": "\"}, \"sub\": \"x"}}),
        &t.root,
    )
    .await;
    t.ok(
        Update,
        "identity/group",
        json!({"name": "engineers", "member_entity_ids": [entity_id]}),
        &t.root,
    )
    .await;
    let template = format!(
        r#"{{
  "color": {{{{identity.entity.metadata.color}}}},
  "tricky": {{{{identity.entity.metadata.tricky}}}},
  "userinfo": {{
    "name": {{{{identity.entity.aliases.{acc}.name}}}},
    "team": {{{{identity.entity.aliases.auth/one/.metadata.team}}}},
    "groups": {{{{identity.entity.groups.names}}}}
  }},
  "label": "user-{{{{identity.entity.name}}}}",
  "missing": {{{{identity.entity.metadata.nope}}}},
  "nbf": {{{{time.now}}}}
}}"#
    );
    // Written base64-encoded, as Vault also accepts; read back decoded.
    let b64 = base64::engine::general_purpose::STANDARD.encode(&template);
    key_and_role(
        &t,
        "k",
        "app",
        json!({"allowed_client_ids": "*"}),
        json!({"template": b64}),
    )
    .await;
    assert_eq!(
        read(&t, "identity/oidc/role/app").await.unwrap()["template"],
        template.as_str()
    );
    let jwt = token_for(&t, "app", &user).await["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let (_, claims) = decode(&jwt);
    assert_eq!(claims["color"], "green");
    assert_eq!(
        claims["tricky"], "\"}, \"sub\": \"x",
        "entity data stays a string value"
    );
    assert_eq!(claims["sub"], entity_id.as_str());
    assert_eq!(claims["userinfo"]["name"], "alice");
    assert_eq!(claims["userinfo"]["team"], "red");
    assert_eq!(claims["userinfo"]["groups"], json!(["engineers"]));
    assert_eq!(
        claims["label"],
        format!("user-{}", claims_entity_name(&t, &entity_id).await)
    );
    assert_eq!(claims["missing"], "");
    assert_eq!(claims["nbf"], claims["iat"]);
    assert_eq!(introspect(&t, &jwt, None).await["active"], true);
}

async fn claims_entity_name(t: &TestCore, id: &str) -> String {
    read(t, &format!("identity/entity/id/{id}")).await.unwrap()["name"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn a_caller_without_an_entity_or_an_allowed_client_id_gets_no_token() {
    let t = core().await;
    key_and_role(
        &t,
        "k",
        "app",
        json!({"allowed_client_ids": "*"}),
        json!({}),
    )
    .await;
    // The root token has no entity.
    let e = t
        .req(Read, "identity/oidc/token/app", json!({}), &t.root)
        .await
        .unwrap_err();
    assert!(matches!(e, CoreError::InvalidRequest(_)), "{e:?}");
    assert_eq!(
        e.to_string(),
        "no entity associated with the request's token"
    );
    // Nor does a plain token.
    let plain = t.token(&["oidc"], json!({})).await;
    let e = t
        .req(Read, "identity/oidc/token/app", json!({}), &plain)
        .await
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "no entity associated with the request's token"
    );

    let (user, _) = login(&t, "alice").await;
    let e = t
        .req(Read, "identity/oidc/token/nope", json!({}), &user)
        .await
        .unwrap_err();
    assert_eq!(e.to_string(), "role \"nope\" not found");
    // A key that does not list the role's client ID signs nothing for it.
    key_and_role(
        &t,
        "strict",
        "other",
        json!({"allowed_client_ids": ["someone"]}),
        json!({}),
    )
    .await;
    let e = t
        .req(Read, "identity/oidc/token/other", json!({}), &user)
        .await
        .unwrap_err();
    assert!(matches!(e, CoreError::InvalidRequest(_)), "{e:?}");
    assert!(
        e.to_string()
            .contains("does not list the client ID of the role \"other\""),
        "{e}"
    );
    // A user without the policy is denied by the ACL.
    let mut body = Map::new();
    body.insert("user".into(), json!("bob"));
    let bob = t
        .core
        .handle(CoreRequest::new(Update, "auth/one/login", body, None))
        .await
        .unwrap()
        .auth
        .unwrap()["client_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let e = t
        .req(Read, "identity/oidc/token/app", json!({}), &bob)
        .await
        .unwrap_err();
    assert!(matches!(e, CoreError::PermissionDenied), "{e:?}");
}

async fn refused(t: &TestCore, op: Operation, path: &str, body: Value, field: &str) {
    match t.req(op, path, body.clone(), &t.root).await {
        Err(CoreError::InvalidRequest(m)) => {
            assert!(
                m.contains(field),
                "{path} {body}: {m:?} does not name {field}"
            )
        }
        other => panic!("{path} {body}: want a 400 naming {field}, got {other:?}"),
    }
}

#[tokio::test]
async fn bad_input_is_a_400_naming_the_field_and_stores_nothing() {
    let t = core().await;
    for (body, field) in [
        (json!({"rotation_period": "30s"}), "rotation_period"),
        (json!({"rotation_period": "soon"}), "rotation_period"),
        (
            json!({"rotation_period": "1h", "verification_ttl": "11h"}),
            "verification_ttl",
        ),
        (json!({"verification_ttl": "forever"}), "verification_ttl"),
        (json!({"algorithm": "HS256"}), "algorithm"),
        (json!({"algorithm": "rs256"}), "algorithm"),
        (
            json!({"allowed_client_ids": {"a": 1}}),
            "allowed_client_ids",
        ),
    ] {
        refused(&t, Update, "identity/oidc/key/bad", body, field).await;
        assert!(read(&t, "identity/oidc/key/bad").await.is_none());
    }
    assert!(
        t.req(List, "identity/oidc/key/", json!({}), &t.root)
            .await
            .map_or(true, |r| {
                r.response
                    .and_then(|r| r.data)
                    .is_none_or(|d| d["keys"] == json!(["default"]))
            })
    );

    t.ok(
        Update,
        "identity/oidc/key/k",
        json!({"verification_ttl": "1h"}),
        &t.root,
    )
    .await;
    for (body, field) in [
        (json!({}), "key"),
        (json!({"key": "missing"}), "key"),
        (json!({"key": "k", "ttl": "2h"}), "ttl"),
        (json!({"key": "k", "ttl": "later"}), "ttl"),
        (
            json!({"key": "k", "ttl": 60, "template": "{\"a\": "}),
            "template",
        ),
        (
            json!({"key": "k", "ttl": 60, "template": "[1]"}),
            "template",
        ),
        (
            json!({"key": "k", "ttl": 60, "template": "{\"sub\": \"me\"}"}),
            "template",
        ),
        (
            json!({"key": "k", "ttl": 60, "template": "{\"a\": {{identity.entity.nope}}}"}),
            "template",
        ),
        (
            json!({"key": "k", "ttl": 60, "template": "{\"a\": {{time.now.plus.soon}}}"}),
            "template",
        ),
    ] {
        refused(&t, Update, "identity/oidc/role/bad", body, field).await;
        assert!(read(&t, "identity/oidc/role/bad").await.is_none());
    }
    // A role's ttl holds the key's verification_ttl down.
    t.ok(
        Update,
        "identity/oidc/role/r",
        json!({"key": "k", "ttl": "1h"}),
        &t.root,
    )
    .await;
    refused(
        &t,
        Update,
        "identity/oidc/key/k",
        json!({"verification_ttl": "30m"}),
        "token ttl",
    )
    .await;
    assert_eq!(
        read(&t, "identity/oidc/key/k").await.unwrap()["verification_ttl"],
        3600
    );

    for issuer in [
        "example.com",
        "https://example.com/path",
        "ftp://x",
        "https://a b",
    ] {
        refused(
            &t,
            Update,
            "identity/oidc/config",
            json!({"issuer": issuer}),
            "issuer",
        )
        .await;
        assert_eq!(
            read(&t, "identity/oidc/config").await.unwrap()["issuer"],
            ""
        );
    }
    refused(
        &t,
        Update,
        "identity/oidc/key/nope/rotate",
        json!({}),
        "nope",
    )
    .await;
    assert!(read(&t, "identity/oidc/key/nope").await.is_none());
}
