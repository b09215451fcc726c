//! Tresor as an OIDC identity provider (Vault's `identity/oidc/provider`), end to end over a
//! real dev server. Users log in with userpass; an application logs them in through the
//! provider with Authlib (PyPI `Authlib`, an OIDC client library: discovery, the code flow with
//! PKCE, client_secret_basic, client_secret_post and a public client, ID token validation with
//! the published JWKS including `nonce` and `at_hash`, userinfo). The attacks are written as
//! steps of the same script: codes replayed, raced by eight exchanges, redeemed with a wrong
//! secret, verifier, redirect URI or client; authorize without a token, for an entity no
//! assignment names, with a foreign redirect URI, without `openid`; forged access tokens, one
//! sent to another provider or used as a Tresor token. The configuration's refusals (a key,
//! assignment or scope in use; the built-ins) are checked here.

mod common;

use std::time::Duration;

use common::{Server, client_script, errors, free_port};
use serde_json::{Value, json};

const RP_PY: &str = include_str!("oidc_provider_rp.py");

fn ok(s: &Server, method: &str, path: &str, body: Value, token: &str) -> Value {
    let (code, v) = s.api(method, path, Some(&body.to_string()), Some(token));
    assert!(
        (200..300).contains(&code),
        "{method} {path} -> {code}: {v}\n--- server log\n{}",
        s.log()
    );
    v
}

fn refused(s: &Server, method: &str, path: &str, body: Value, want: &str) {
    let (code, v) = s.api(method, path, Some(&body.to_string()), Some("root"));
    assert_eq!(code, 400, "{method} {path}: {v}");
    let e = errors(&v).join(" ");
    assert!(e.contains(want), "{method} {path}: {e:?} lacks {want:?}");
}

fn login(s: &Server, user: &str) -> (String, String) {
    let v = ok(
        s,
        "POST",
        &format!("auth/userpass/login/{user}"),
        json!({"password": "pw"}),
        "",
    );
    let token = v["auth"]["client_token"].as_str().unwrap().to_owned();
    let entity = v["auth"]["entity_id"].as_str().unwrap().to_owned();
    (token, entity)
}

#[test]
fn an_oidc_client_logs_users_in_through_the_provider() {
    let tmp = tempfile::tempdir().unwrap();
    let s = Server::start_dev(tmp.path(), free_port());
    let root = "root";
    let audit_log = tmp.path().join("audit.log");
    ok(
        &s,
        "POST",
        "sys/audit/file",
        json!({"type": "file", "options": {"file_path": audit_log}}),
        root,
    );
    ok(
        &s,
        "POST",
        "sys/auth/userpass",
        json!({"type": "userpass"}),
        root,
    );
    for user in ["alice", "bob"] {
        ok(
            &s,
            "POST",
            &format!("auth/userpass/users/{user}"),
            json!({"password": "pw"}),
            root,
        );
    }
    let (alice, alice_entity) = login(&s, "alice");
    let (bob, _) = login(&s, "bob");
    ok(
        &s,
        "POST",
        &format!("identity/entity/id/{alice_entity}"),
        json!({"name": "alice", "metadata": {"email": "alice@example.com"}}),
        root,
    );
    let group = ok(
        &s,
        "POST",
        "identity/group",
        json!({"name": "engineers", "member_entity_ids": [alice_entity]}),
        root,
    );
    let group_id = group["data"]["id"].as_str().unwrap().to_owned();

    // Configuration, as the docs order it: key, scopes, assignment, clients, provider.
    ok(
        &s,
        "POST",
        "identity/oidc/key/app-key",
        json!({"allowed_client_ids": ["*"], "algorithm": "RS256"}),
        root,
    );
    ok(
        &s,
        "POST",
        "identity/oidc/scope/profile",
        json!({
            "template": r#"{"username": {{identity.entity.name}}, "contact": {"email": {{identity.entity.metadata.email}} } }"#,
            "description": "who the user is",
        }),
        root,
    );
    ok(
        &s,
        "POST",
        "identity/oidc/scope/groups",
        // Closing braces apart from the template's, as Vault's parser needs them.
        json!({"template": r#"{"groups": {{identity.entity.groups.names}} }"#}),
        root,
    );
    ok(
        &s,
        "POST",
        "identity/oidc/assignment/devs",
        json!({"group_ids": [group_id]}),
        root,
    );
    let redirect = "http://127.0.0.1:8251/callback";
    ok(
        &s,
        "POST",
        "identity/oidc/client/app",
        json!({"key": "app-key", "redirect_uris": [redirect], "assignments": ["devs"],
               "id_token_ttl": "30m", "access_token_ttl": "1h"}),
        root,
    );
    ok(
        &s,
        "POST",
        "identity/oidc/client/cli",
        json!({"key": "app-key", "redirect_uris": [redirect], "assignments": ["devs"],
               "client_type": "public"}),
        root,
    );
    let app = ok(&s, "GET", "identity/oidc/client/app", json!({}), root)["data"].clone();
    let cli = ok(&s, "GET", "identity/oidc/client/cli", json!({}), root)["data"].clone();
    assert_eq!(app["client_type"], "confidential");
    assert_eq!(app["id_token_ttl"], 1800);
    assert_eq!(app["access_token_ttl"], 3600);
    assert_eq!(app["client_id"].as_str().unwrap().len(), 32);
    assert!(
        app["client_secret"]
            .as_str()
            .unwrap()
            .starts_with("hvo_secret_")
    );
    assert_eq!(cli["client_type"], "public");
    assert!(cli.get("client_secret").is_none(), "{cli}");
    let (app_id, cli_id) = (
        app["client_id"].as_str().unwrap().to_owned(),
        cli["client_id"].as_str().unwrap().to_owned(),
    );
    ok(
        &s,
        "POST",
        "identity/oidc/provider/acme",
        json!({"issuer": s.addr, "allowed_client_ids": [app_id, cli_id],
               "scopes_supported": ["profile", "groups"]}),
        root,
    );
    let p = ok(&s, "GET", "identity/oidc/provider/acme", json!({}), root)["data"].clone();
    assert_eq!(
        p["issuer"],
        format!("{}/v1/identity/oidc/provider/acme", s.addr)
    );
    // Without an issuer, the base is the server's api_addr (here derived from its listener),
    // for providers and identity tokens alike, as in Vault.
    let d = ok(&s, "GET", "identity/oidc/provider/default", json!({}), root);
    assert_eq!(
        d["data"]["issuer"],
        format!("{}/v1/identity/oidc/provider/default", s.addr)
    );
    let (_, disc) = s.api(
        "GET",
        "identity/oidc/.well-known/openid-configuration",
        None,
        None,
    );
    assert_eq!(disc["issuer"], format!("{}/v1/identity/oidc", s.addr));
    // LIST filtered by client: acme and the built-in default (which allows every client).
    let (code, listed) = s.api(
        "LIST",
        &format!("identity/oidc/provider?allowed_client_id={app_id}"),
        None,
        Some(root),
    );
    assert_eq!(code, 200, "{listed}");
    assert_eq!(listed["data"]["keys"], json!(["acme", "default"]));
    let (_, listed) = s.api(
        "LIST",
        "identity/oidc/provider?allowed_client_id=someone",
        None,
        Some(root),
    );
    assert_eq!(listed["data"]["keys"], json!(["default"]));

    // The relying party, with alice's and bob's Tresor tokens standing in for the web UI's
    // signed-in user.
    client_script(
        &s,
        RP_PY,
        tmp.path(),
        &[
            ("PROVIDER", "acme"),
            ("ALICE_TOKEN", &alice),
            ("BOB_TOKEN", &bob),
            ("ALICE_ENTITY", &alice_entity),
            ("APP_ID", &app_id),
            ("APP_SECRET", app["client_secret"].as_str().unwrap()),
            ("CLI_ID", &cli_id),
            ("REDIRECT", redirect),
        ],
        Duration::from_secs(120),
        &[
            "discovery",
            "confidential client, basic auth, PKCE",
            "userinfo",
            "code replay refused",
            "client_secret_post, openid only",
            "public client with PKCE",
            "public client needs PKCE",
            "wrong secret and wrong verifier refused",
            "other redirect, other client, other grant refused",
            "racing exchanges: one token",
            "authorize refusals",
            "huge, negative and malformed values refused",
            "access token checks",
        ],
    );

    // A deny on one provider's authorize holds however the path is spelled: carol's policy
    // denies acme's authorize (the default policy grants every provider's), and each
    // spelling is the ACL's 403, never an OAuth answer from the endpoint.
    ok(
        &s,
        "POST",
        "sys/policies/acl/no-acme",
        json!({"policy": r#"path "identity/oidc/provider/acme/authorize" { capabilities = ["deny"] }"#}),
        root,
    );
    ok(
        &s,
        "POST",
        "auth/userpass/users/carol",
        json!({"password": "pw", "token_policies": "no-acme"}),
        root,
    );
    let (carol, _) = login(&s, "carol");
    let query =
        format!("?client_id={app_id}&scope=openid&redirect_uri={redirect}&response_type=code");
    for spelling in [
        "identity/oidc/provider/acme/authorize",
        "identity/oidc/provider/acme/authorize/",
        "identity/oidc/provider//acme/authorize",
        "identity/oidc/provider/./acme/authorize",
        "identity/oidc/provider/x/../acme/authorize",
        "identity/oidc/provider/acme%2Fauthorize",
        "identity/oidc/provider/ACME/authorize",
        "identity/oidc/provider/acme%20/authorize",
        "identity/oidc/provider/acme/Authorize",
    ] {
        let (code, body) = s.curl("GET", &format!("{spelling}{query}"), None, Some(&carol));
        // Never a code: the spelling is refused (403), sent to the clean path (307), not a
        // path at all, or names another provider (names are case-sensitive), which does not
        // exist.
        assert!(
            !body.contains("\"code\"") && code != 200,
            "{spelling}: {code} {body}"
        );
        if spelling.ends_with("acme/authorize") && !spelling.contains("ACME") {
            assert!([307, 403].contains(&code), "{spelling}: {code} {body}");
        }
    }
    // Another provider's authorize is still hers (the default policy's grant).
    let (code, body) = s.curl(
        "GET",
        &format!("identity/oidc/provider/default/authorize{query}"),
        None,
        Some(&carol),
    );
    assert_eq!(code, 400, "{body}");
    assert!(
        body.contains("unauthorized_client") || body.contains("access_denied"),
        "{body}"
    );

    // A disabled entity's access token stops answering userinfo at once.
    let access = std::fs::read_to_string(tmp.path().join("access_token")).unwrap();
    let userinfo = |expect: u16| {
        let o = common::run(std::process::Command::new("curl").args([
            "-s",
            "--max-time",
            "20",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "-H",
            &format!("Authorization: Bearer {access}"),
            &format!("{}/v1/identity/oidc/provider/acme/userinfo", s.addr),
        ]));
        assert_eq!(o.stdout.trim(), expect.to_string(), "{o}");
    };
    userinfo(200);
    ok(
        &s,
        "POST",
        &format!("identity/entity/id/{alice_entity}"),
        json!({"disabled": true}),
        root,
    );
    userinfo(401);
    ok(
        &s,
        "POST",
        &format!("identity/entity/id/{alice_entity}"),
        json!({"disabled": false}),
        root,
    );
    userinfo(200);
    // No access token or client secret reaches the server's log or the audit log (where the
    // token endpoint's requests are recorded, their values hashed).
    let audit = std::fs::read_to_string(&audit_log).unwrap();
    assert!(
        audit.contains("identity/oidc/provider/acme/token"),
        "token requests audited"
    );
    for (name, text) in [("server log", s.log()), ("audit log", audit)] {
        assert!(!text.contains(&access), "access token in the {name}");
        assert!(
            !text.contains(app["client_secret"].as_str().unwrap()),
            "client secret in the {name}"
        );
    }

    // The configuration's refusals.
    refused(
        &s,
        "DELETE",
        "identity/oidc/key/app-key",
        json!({}),
        "referenced by these clients: app, cli",
    );
    refused(
        &s,
        "DELETE",
        "identity/oidc/assignment/devs",
        json!({}),
        "referenced by these clients",
    );
    refused(
        &s,
        "DELETE",
        "identity/oidc/scope/groups",
        json!({}),
        "referenced by these providers: acme",
    );
    refused(
        &s,
        "DELETE",
        "identity/oidc/provider/default",
        json!({}),
        "not allowed",
    );
    refused(
        &s,
        "POST",
        "identity/oidc/assignment/allow_all",
        json!({"entity_ids": ["x"]}),
        "not allowed",
    );
    refused(
        &s,
        "POST",
        "identity/oidc/scope/openid",
        json!({}),
        "reserved",
    );
    refused(
        &s,
        "POST",
        "identity/oidc/scope/bad",
        json!({"template": r#"{"nonce": "me"}"#}),
        "top level key \"nonce\" not allowed",
    );
    // Entity data cannot choose the claim names: the template's keys are its own.
    refused(
        &s,
        "POST",
        "identity/oidc/scope/bad",
        json!({"template": "{{identity.entity.metadata}}"}),
        "must be a JSON object whose keys are written in it",
    );
    refused(
        &s,
        "POST",
        "identity/oidc/client/x",
        json!({"key": "missing"}),
        "key \"missing\" does not exist",
    );
    refused(
        &s,
        "POST",
        "identity/oidc/client/x",
        json!({"assignments": ["missing"]}),
        "assignment \"missing\" does not exist",
    );
    refused(
        &s,
        "POST",
        "identity/oidc/client/cli",
        json!({"client_type": "confidential"}),
        "client_type modification is not allowed",
    );
    refused(
        &s,
        "POST",
        "identity/oidc/provider/p2",
        json!({"scopes_supported": ["missing"]}),
        "scope \"missing\" does not exist",
    );
    refused(
        &s,
        "POST",
        "identity/oidc/provider/p2",
        json!({"issuer": "https://example.com/path"}),
        "invalid issuer",
    );
    // Nothing half-written stayed behind.
    for path in ["identity/oidc/client/x", "identity/oidc/provider/p2"] {
        let (code, _) = s.api("GET", path, None, Some(root));
        assert_eq!(code, 404, "{path}");
    }
    // Built-ins are listed before anything is written about them.
    let (_, a) = s.api("LIST", "identity/oidc/assignment", None, Some(root));
    assert_eq!(a["data"]["keys"], json!(["allow_all", "devs"]));
    let (_, c) = s.api("LIST", "identity/oidc/client", None, Some(root));
    assert_eq!(c["data"]["keys"], json!(["app", "cli"]));
    assert_eq!(c["data"]["key_info"]["cli"]["client_type"], "public");
    // A listing never carries secrets (reading them takes read on the client).
    assert!(
        c["data"]["key_info"]["app"].get("client_secret").is_none(),
        "{c}"
    );
    assert_eq!(c["data"]["key_info"]["app"]["client_id"], app_id.as_str());
    // The delete order the docs give works: provider, clients, then what they used.
    for path in [
        "identity/oidc/provider/acme",
        "identity/oidc/client/app",
        "identity/oidc/client/cli",
        "identity/oidc/assignment/devs",
        "identity/oidc/scope/groups",
        "identity/oidc/key/app-key",
    ] {
        ok(&s, "DELETE", path, json!({}), root);
    }
}
