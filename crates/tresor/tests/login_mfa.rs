//! Issue 14, login MFA (TOTP) end to end: a userpass login selected by a login enforcement
//! gets no token until `sys/mfa/validate` receives the passcode `oathtool` computes for the
//! entity's enrolled secret; a wrong passcode and a replayed one are refused, and the
//! passcode can come with the login in `X-Vault-MFA`.

mod common;

use std::process::Command;

use common::{Server, free_port, run};
use serde_json::{Value, json};

fn api(s: &Server, method: &str, path: &str, body: Value, token: Option<&str>) -> (u16, Value) {
    s.api(method, path, Some(&body.to_string()), token)
}

/// A TOTP method as `identity/mfa/method/totp/:id` shows it to root.
fn read_method(s: &Server, id: &str) -> Value {
    let (code, r) = api(
        s,
        "GET",
        &format!("identity/mfa/method/totp/{id}"),
        json!({}),
        Some("root"),
    );
    assert_eq!(code, 200, "{r}");
    r
}

fn login(s: &Server) -> Value {
    let (code, v) = api(
        s,
        "POST",
        "auth/userpass/login/alice",
        json!({"password": "pw-123456"}),
        None,
    );
    assert_eq!(code, 200, "{v}");
    v["auth"].clone()
}

fn oathtool(secret: &str) -> String {
    let o = run(Command::new("oathtool").args(["--totp", "-b", secret]));
    assert_eq!(o.code, 0, "oathtool (Debian package oathtool): {o}");
    o.stdout.trim().to_owned()
}

#[test]
fn a_login_enforced_with_totp_needs_the_passcode_once() {
    let tmp = tempfile::tempdir().unwrap();
    let s = Server::start_dev(tmp.path(), free_port());
    let root = Some("root");
    assert_eq!(
        api(
            &s,
            "POST",
            "sys/auth/userpass",
            json!({"type": "userpass"}),
            root
        )
        .0,
        204
    );
    assert_eq!(
        api(
            &s,
            "POST",
            "auth/userpass/users/alice",
            json!({"password": "pw-123456"}),
            root
        )
        .0,
        204
    );
    // The first login (no enforcement yet) creates alice's entity.
    let entity = login(&s)["entity_id"].as_str().unwrap().to_owned();
    let (_, auths) = api(&s, "GET", "sys/auth", json!({}), root);
    let accessor = auths["data"]["userpass/"]["accessor"]
        .as_str()
        .unwrap()
        .to_owned();

    let (code, m) = api(
        &s,
        "POST",
        "identity/mfa/method/totp",
        json!({"issuer": "Tresor", "period": 30}),
        root,
    );
    assert_eq!(code, 200, "{m}");
    let method = m["data"]["method_id"].as_str().unwrap().to_owned();
    // Settings not sent keep Vault's defaults: a passcode from one period either side, five
    // failed passcodes per period (an earlier version stored 0 for both, which allowed
    // unlimited guesses), a 200-pixel barcode.
    let r = read_method(&s, &method);
    assert_eq!(r["data"]["skew"], 1, "{r}");
    assert_eq!(r["data"]["max_validation_attempts"], 5, "{r}");
    assert_eq!(r["data"]["qr_size"], 200, "{r}");
    assert_eq!(r["data"]["digits"], 6, "{r}");
    // An update that sends one setting changes only that one.
    let (code, r) = api(
        &s,
        "POST",
        &format!("identity/mfa/method/totp/{method}"),
        json!({"issuer": "Tresor Inc"}),
        root,
    );
    assert!(code == 200 || code == 204, "{code} {r}");
    let r = read_method(&s, &method);
    assert_eq!(r["data"]["issuer"], "Tresor Inc", "{r}");
    assert_eq!(r["data"]["max_validation_attempts"], 5, "{r}");
    // Settings that would weaken the method are refused and change nothing: a skew wider than
    // one period, negative counts, digits that would wrap around to 6, and garbage.
    for bad in [
        json!({"skew": 2}),
        json!({"skew": -1}),
        json!({"max_validation_attempts": -3}),
        json!({"digits": 4_294_967_302_i64}),
        json!({"digits": 9}),
        json!({"key_size": -20}),
        json!({"key_size": "many"}),
        json!({"period": "forever"}),
        json!({"skew": 1e300}),
    ] {
        let (code, r) = api(
            &s,
            "POST",
            &format!("identity/mfa/method/totp/{method}"),
            bad.clone(),
            root,
        );
        assert_eq!(code, 400, "{bad}: {r}");
        let field = bad.as_object().unwrap().keys().next().unwrap().clone();
        assert!(r.to_string().contains(&field), "{bad}: {r}");
    }
    let r = read_method(&s, &method);
    assert_eq!(r["data"]["skew"], 1, "{r}");
    assert_eq!(r["data"]["max_validation_attempts"], 5, "{r}");
    assert_eq!(r["data"]["digits"], 6, "{r}");
    assert_eq!(r["data"]["key_size"], 20, "{r}");
    let (code, g) = api(
        &s,
        "POST",
        "identity/mfa/method/totp/admin-generate",
        json!({"method_id": method, "entity_id": entity}),
        root,
    );
    assert_eq!(code, 200, "{g}");
    let url = g["data"]["url"].as_str().unwrap();
    let secret = url
        .split(['?', '&'])
        .find_map(|kv| kv.strip_prefix("secret="))
        .expect("otpauth URL with a secret")
        .to_owned();
    // Enrolling twice is refused.
    let (code, _) = api(
        &s,
        "POST",
        "identity/mfa/method/totp/admin-generate",
        json!({"method_id": method, "entity_id": entity}),
        root,
    );
    assert_eq!(code, 400);
    let (code, e) = api(
        &s,
        "POST",
        "identity/mfa/login-enforcement/people",
        json!({"mfa_method_ids": [method], "auth_method_accessors": [accessor]}),
        root,
    );
    assert_eq!(code, 204, "{e}");

    // The login now answers a requirement, not a token.
    let held = login(&s);
    assert_eq!(held["client_token"], "", "{held}");
    let req = &held["mfa_requirement"];
    let request_id = req["mfa_request_id"].as_str().unwrap().to_owned();
    assert_eq!(
        req["mfa_constraints"]["people"]["any"][0]["id"],
        method.as_str(),
        "{held}"
    );
    assert_eq!(req["mfa_constraints"]["people"]["any"][0]["type"], "totp");

    // A wrong passcode is refused (and the held login is gone).
    let (code, v) = api(
        &s,
        "POST",
        "sys/mfa/validate",
        json!({"mfa_request_id": request_id, "mfa_payload": {method.clone(): ["000000"]}}),
        None,
    );
    assert!(code == 403 || code == 400, "{code} {v}");
    assert!(v["errors"][0].as_str().is_some(), "{v}");

    // The right passcode gives the token.
    let held = login(&s);
    let request_id = held["mfa_requirement"]["mfa_request_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let code_now = oathtool(&secret);
    let (code, v) = api(
        &s,
        "POST",
        "sys/mfa/validate",
        json!({"mfa_request_id": request_id, "mfa_payload": {method.clone(): [code_now.clone()]}}),
        None,
    );
    assert_eq!(code, 200, "{v}");
    let token = v["auth"]["client_token"].as_str().unwrap().to_owned();
    assert!(token.starts_with("hvs."), "{v}");
    assert_eq!(v["auth"]["entity_id"], entity.as_str());
    let (code, _) = api(&s, "GET", "auth/token/lookup-self", json!({}), Some(&token));
    assert_eq!(code, 200);

    // The same passcode again is a replay: refused, also through X-Vault-MFA.
    let held = login(&s);
    let request_id = held["mfa_requirement"]["mfa_request_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (code, v) = api(
        &s,
        "POST",
        "sys/mfa/validate",
        json!({"mfa_request_id": request_id, "mfa_payload": {method.clone(): [code_now.clone()]}}),
        None,
    );
    assert_ne!(code, 200, "a replayed passcode was accepted: {v}");
    let o = run(Command::new("curl").args([
        "-s",
        "--max-time",
        "20",
        "-w",
        "\n%{http_code}",
        "-H",
        &format!("X-Vault-MFA: {method}:{code_now}"),
        "--data-binary",
        r#"{"password":"pw-123456"}"#,
        &format!("{}/v1/auth/userpass/login/alice", s.addr),
    ]));
    assert!(
        o.stdout.trim_end().ends_with("403") || o.stdout.trim_end().ends_with("400"),
        "{o}"
    );
    // An unknown request id is a 400.
    let (code, _) = api(
        &s,
        "POST",
        "sys/mfa/validate",
        json!({"mfa_request_id": "nope", "mfa_payload": {method.clone(): ["123456"]}}),
        None,
    );
    assert_eq!(code, 400);
    // `tresor login` prompts for the passcode (read from stdin when it is not a terminal).
    assert_eq!(
        api(
            &s,
            "POST",
            "auth/userpass/users/bob",
            json!({"password": "pw-654321"}),
            root
        )
        .0,
        204
    );
    let (code, bob) = api(&s, "POST", "identity/entity", json!({"name": "bob"}), root);
    assert_eq!(code, 200, "{bob}");
    let bob_id = bob["data"]["id"].as_str().unwrap().to_owned();
    let (code, a) = api(
        &s,
        "POST",
        "identity/entity-alias",
        json!({"name": "bob", "canonical_id": bob_id, "mount_accessor": accessor}),
        root,
    );
    assert_eq!(code, 200, "{a}");
    let (_, g) = api(
        &s,
        "POST",
        "identity/mfa/method/totp/admin-generate",
        json!({"method_id": method, "entity_id": bob_id}),
        root,
    );
    let bob_secret = g["data"]["url"]
        .as_str()
        .unwrap()
        .split(['?', '&'])
        .find_map(|kv| kv.strip_prefix("secret="))
        .unwrap()
        .to_owned();
    let passcode = format!("{}\n", oathtool(&bob_secret));
    let o = common::run_with_stdin(
        common::clean_command(env!("CARGO_BIN_EXE_tresor"))
            .args([
                "login",
                "-method=userpass",
                "-format=json",
                "username=bob",
                "password=pw-654321",
            ])
            .env("VAULT_ADDR", &s.addr)
            .env("HOME", &s.home),
        Some(passcode.as_bytes()),
    );
    assert_eq!(o.code, 0, "tresor login with MFA: {o}");
    assert!(
        o.stderr.contains("Enter the passphrase for methodID"),
        "{o}"
    );
    let v: Value = serde_json::from_str(&o.stdout).expect("json");
    assert_eq!(v["auth"]["entity_id"], bob_id.as_str(), "{v}");
    // A method in use by an enforcement cannot be deleted.
    let (code, _) = api(
        &s,
        "DELETE",
        &format!("identity/mfa/method/totp/{method}"),
        json!({}),
        root,
    );
    assert_eq!(code, 400);
}
