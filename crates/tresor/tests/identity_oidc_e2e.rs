//! Issue 13, identity tokens end to end over a real server: a userpass user asks for identity
//! tokens (RS256 and ES256 keys, a role template with entity metadata), and an independent
//! verifier checks them the way another system would: curl fetches the discovery document and
//! the JWKS without a Tresor token, and PyJWT (with `cryptography`) verifies each token's
//! signature, issuer, audience and expiry against those keys — once from the JWKS curl fetched
//! and once through `PyJWKClient` following `jwks_uri` itself. Introspection answers Vault's
//! bare `{"active": ...}` body.

mod common;

use std::time::Duration;

use common::{Server, clean_command, free_port, run_for};
use serde_json::{Value, json};

/// The verifier: PyJWT only, no Tresor code. Reads JWKS, ISSUER, JWKS_URI and CASES (a JSON
/// list of {token, audience}) from the environment; prints one JSON line of claims per case,
/// then `ALL OK`.
const VERIFY_PY: &str = r#"
import json, os, sys
import jwt
from jwt import PyJWKSet, PyJWKClient

jwks = PyJWKSet.from_json(os.environ["JWKS"])
issuer = os.environ["ISSUER"]
client = PyJWKClient(os.environ["JWKS_URI"], cache_keys=False)
required = {"require": ["iss", "sub", "aud", "iat", "exp"]}
for case in json.loads(os.environ["CASES"]):
    token, aud = case["token"], case["audience"]
    header = jwt.get_unverified_header(token)
    key = jwks[header["kid"]]
    claims = jwt.decode(token, key=key.key, algorithms=[header["alg"]],
                        audience=aud, issuer=issuer, options=required)
    # The same through jwks_uri, as an OIDC library would find the keys.
    via_uri = jwt.decode(token, key=client.get_signing_key_from_jwt(token).key,
                         algorithms=[header["alg"]], audience=aud, issuer=issuer,
                         options=required)
    assert via_uri == claims, (via_uri, claims)
    # A wrong audience and a changed signature are refused.
    try:
        jwt.decode(token, key=key.key, algorithms=[header["alg"]], audience="someone-else",
                   issuer=issuer)
        sys.exit("a wrong audience verified")
    except jwt.InvalidAudienceError:
        pass
    head, body, sig = token.split(".")
    flipped = ("A" if sig[5] != "A" else "B")
    bad = ".".join([head, body, sig[:5] + flipped + sig[6:]])
    try:
        jwt.decode(bad, key=key.key, algorithms=[header["alg"]], audience=aud, issuer=issuer)
        sys.exit("a tampered signature verified")
    except jwt.InvalidSignatureError:
        pass
    print(json.dumps({"header": header, "claims": claims}))
print("ALL OK")
"#;

fn ok(s: &Server, method: &str, path: &str, body: Value, token: &str) -> Value {
    let (code, v) = s.api(method, path, Some(&body.to_string()), Some(token));
    assert!(
        (200..300).contains(&code),
        "{method} {path} -> {code}: {v}\n--- server log\n{}",
        s.log()
    );
    v
}

#[test]
fn pyjwt_verifies_identity_tokens_with_the_published_keys() {
    let tmp = tempfile::tempdir().unwrap();
    let s = Server::start_dev(tmp.path(), free_port());
    let root = "root";

    // Tokens name this server as their issuer.
    ok(
        &s,
        "POST",
        "identity/oidc/config",
        json!({"issuer": s.addr}),
        root,
    );
    let issuer = format!("{}/v1/identity/oidc", s.addr);

    // alice logs in with userpass; her entity carries metadata for the template.
    ok(
        &s,
        "POST",
        "sys/auth/userpass",
        json!({"type": "userpass"}),
        root,
    );
    ok(
        &s,
        "POST",
        "sys/policies/acl/oidc",
        json!({"policy": "path \"identity/oidc/token/*\" { capabilities = [\"read\"] }"}),
        root,
    );
    ok(
        &s,
        "POST",
        "auth/userpass/users/alice",
        json!({"password": "pw-123456", "token_policies": "oidc"}),
        root,
    );
    let (code, login) = s.api(
        "POST",
        "auth/userpass/login/alice",
        Some(&json!({"password": "pw-123456"}).to_string()),
        None,
    );
    assert_eq!(code, 200, "login: {login}");
    let alice = login["auth"]["client_token"].as_str().unwrap().to_owned();
    let entity_id = login["auth"]["entity_id"].as_str().unwrap().to_owned();
    ok(
        &s,
        "POST",
        &format!("identity/entity/id/{entity_id}"),
        json!({"metadata": {"team": "blue"}}),
        root,
    );

    // One RSA and one ECDSA key, each with a role.
    let mut cases = Vec::new();
    for (key, alg) in [("rsa", "RS256"), ("ec", "ES256")] {
        ok(
            &s,
            "POST",
            &format!("identity/oidc/key/{key}"),
            json!({"algorithm": alg, "allowed_client_ids": ["*"]}),
            root,
        );
        ok(
            &s,
            "POST",
            &format!("identity/oidc/role/{key}-app"),
            json!({
                "key": key,
                "ttl": "10m",
                "template": "{\"team\": {{identity.entity.metadata.team}}, \"username\": {{identity.entity.aliases.auth/userpass/.name}}}",
            }),
            root,
        );
        let (code, t) = s.api(
            "GET",
            &format!("identity/oidc/token/{key}-app"),
            None,
            Some(&alice),
        );
        assert_eq!(code, 200, "token {key}: {t}");
        cases.push(json!({
            "token": t["data"]["token"],
            "audience": t["data"]["client_id"],
            "alg": alg,
        }));
    }

    // The root token has no entity: Vault's 400.
    let (code, v) = s.api("GET", "identity/oidc/token/rsa-app", None, Some(root));
    assert_eq!(code, 400, "{v}");
    assert_eq!(
        common::errors(&v),
        vec!["no entity associated with the request's token"]
    );

    // The discovery documents, fetched with curl and no token.
    let (code, conf) = s.api(
        "GET",
        "identity/oidc/.well-known/openid-configuration",
        None,
        None,
    );
    assert_eq!(code, 200, "{conf}");
    assert_eq!(conf["issuer"], issuer.as_str());
    let jwks_uri = format!("{issuer}/.well-known/keys");
    assert_eq!(conf["jwks_uri"], jwks_uri.as_str());
    let (code, jwks) = s.curl("GET", "identity/oidc/.well-known/keys", None, None);
    assert_eq!(code, 200, "{jwks}");
    let parsed: Value = serde_json::from_str(&jwks).unwrap();
    assert_eq!(parsed["keys"].as_array().unwrap().len(), 2, "{parsed}");
    assert!(!jwks.contains("\"d\""), "no private key material: {jwks}");

    // The independent verifier.
    let mut cmd = clean_command("python3");
    cmd.arg("-")
        .env("JWKS", &jwks)
        .env("ISSUER", &issuer)
        .env("JWKS_URI", &jwks_uri)
        .env("CASES", Value::Array(cases.clone()).to_string());
    let o = run_for(
        &mut cmd,
        Some(VERIFY_PY.as_bytes()),
        Duration::from_secs(60),
    );
    assert_eq!(
        o.code,
        0,
        "PyJWT verification failed\n{o}\n--- server log\n{}",
        s.log()
    );
    assert!(o.stdout.contains("ALL OK"), "{o}");
    let verified: Vec<Value> = o
        .stdout
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(verified.len(), 2, "{o}");
    for (v, case) in verified.iter().zip(&cases) {
        assert_eq!(v["header"]["alg"], case["alg"]);
        let c = &v["claims"];
        assert_eq!(c["iss"], issuer.as_str());
        assert_eq!(c["sub"], entity_id.as_str());
        assert_eq!(c["aud"], case["audience"]);
        assert_eq!(c["namespace"], "root");
        assert_eq!(c["team"], "blue");
        assert_eq!(c["username"], "alice");
        assert_eq!(c["exp"].as_i64().unwrap() - c["iat"].as_i64().unwrap(), 600);
    }

    // Introspection answers Vault's bare body, not the envelope.
    let token = cases[0]["token"].as_str().unwrap();
    let (code, v) = s.api(
        "POST",
        "identity/oidc/introspect",
        Some(&json!({"token": token, "client_id": cases[0]["audience"]}).to_string()),
        Some(root),
    );
    assert_eq!((code, v), (200, json!({"active": true})));
    let (code, v) = s.api(
        "POST",
        "identity/oidc/introspect",
        Some(&json!({"token": token, "client_id": "someone-else"}).to_string()),
        Some(root),
    );
    assert_eq!(code, 200);
    assert_eq!(v["active"], false, "{v}");
    assert!(
        v["error"].as_str().unwrap().contains("invalid audience"),
        "{v}"
    );
}
