//! Issue 13, identity end to end over a real server with the bao CLI and curl: templated
//! policies give each user their own path, a group policy granted later applies to a live
//! token, two logins through two methods share one entity once merged, and a PKI role with a
//! templated `allowed_domains` issues Kubernetes client certificates only for the caller's own
//! name (user story 1).

mod common;

use common::{Server, free_port};
use serde_json::{Value, json};

fn ok(s: &Server, args: &[&str]) -> String {
    let o = s.bao_as("root", args);
    assert_eq!(o.code, 0, "bao {args:?}: {o}");
    o.stdout
}

/// `bao ARGS` with `-format=json` among them, parsed.
fn json_of(s: &Server, args: &[&str]) -> Value {
    let out = ok(s, args);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("bao {args:?}: not JSON ({e}): {out}"))
}

/// Logs in with userpass over the HTTP API; returns the auth block.
fn login(s: &Server, mount: &str, user: &str, password: &str) -> Value {
    let (code, v) = s.api(
        "POST",
        &format!("auth/{mount}/login/{user}"),
        Some(&json!({ "password": password }).to_string()),
        None,
    );
    assert_eq!(code, 200, "login {user} on {mount}: {v}");
    v["auth"].clone()
}

fn accessor(s: &Server, mount: &str) -> String {
    let v = json_of(s, &["auth", "list", "-format=json"]);
    v[&format!("{mount}/")]["accessor"]
        .as_str()
        .expect("accessor")
        .to_owned()
}

#[test]
fn identity_end_to_end_with_bao_userpass_and_pki() {
    let tmp = tempfile::tempdir().unwrap();
    let s = Server::start_dev(tmp.path(), free_port());
    ok(&s, &["auth", "enable", "userpass"]);
    ok(&s, &["auth", "enable", "-path=userpass2", "userpass"]);
    let up = accessor(&s, "userpass");
    for (mount, user) in [
        ("userpass", "alice"),
        ("userpass", "bob"),
        ("userpass2", "alice2"),
    ] {
        ok(
            &s,
            &[
                "write",
                &format!("auth/{mount}/users/{user}"),
                "password=pw-123456",
                "token_policies=own",
            ],
        );
    }
    let policy = tmp.path().join("own.hcl");
    std::fs::write(
        &policy,
        format!(
            r#"
path "secret/data/{{{{identity.entity.aliases.{up}.name}}}}/*" {{ capabilities = ["create", "update", "read"] }}
path "secret/data/by-path/{{{{identity.entity.aliases.auth/userpass/.name}}}}" {{ capabilities = ["read"] }}
path "pki/issue/people" {{ capabilities = ["update"] }}
"#
        ),
    )
    .unwrap();
    ok(&s, &["policy", "write", "own", policy.to_str().unwrap()]);

    // bao login -method=userpass: the templated policy applies to alice's own path only.
    let o = s.bao(&[
        "login",
        "-method=userpass",
        "username=alice",
        "password=pw-123456",
    ]);
    assert_eq!(o.code, 0, "bao login: {o}");
    let alice_tok = std::fs::read_to_string(s.home.join(".vault-token")).expect("token file");
    let alice_tok = alice_tok.trim().to_owned();
    let o = s.bao_as(&alice_tok, &["kv", "put", "secret/alice/app", "k=v"]);
    assert_eq!(o.code, 0, "alice writes her own path: {o}");
    let o = s.bao_as(&alice_tok, &["kv", "put", "secret/bob/app", "k=v"]);
    assert_ne!(o.code, 0, "alice may not write bob's path: {o}");
    assert!(
        o.stderr.contains("403") || o.stderr.contains("permission denied"),
        "{o}"
    );
    ok(&s, &["kv", "put", "secret/by-path/alice", "w=alice"]);
    let o = s.bao_as(&alice_tok, &["kv", "get", "secret/by-path/alice"]);
    assert_eq!(o.code, 0, "a template keyed by mount path renders: {o}");

    // A group policy granted later applies to the live token at once.
    ok(&s, &["kv", "put", "secret/shared", "k=shared"]);
    let shared = tmp.path().join("shared.hcl");
    std::fs::write(
        &shared,
        r#"path "secret/data/shared" { capabilities = ["read"] }"#,
    )
    .unwrap();
    ok(&s, &["policy", "write", "shared", shared.to_str().unwrap()]);
    let o = s.bao_as(&alice_tok, &["kv", "get", "secret/shared"]);
    assert_ne!(o.code, 0, "not yet in the group: {o}");
    let look = s.bao_as(&alice_tok, &["token", "lookup", "-format=json"]);
    let look: Value = serde_json::from_str(&look.stdout).expect("lookup json");
    let entity = look["data"]["entity_id"].as_str().unwrap().to_owned();
    assert!(!entity.is_empty(), "{look}");
    ok(
        &s,
        &[
            "write",
            "identity/group",
            "name=readers",
            "policies=shared",
            &format!("member_entity_ids={entity}"),
        ],
    );
    let o = s.bao_as(&alice_tok, &["kv", "get", "-format=json", "secret/shared"]);
    assert_eq!(
        o.code, 0,
        "the group's policy applies without a new login: {o}"
    );
    let look = s.bao_as(&alice_tok, &["token", "lookup", "-format=json"]);
    let look: Value = serde_json::from_str(&look.stdout).expect("lookup json");
    assert_eq!(
        look["data"]["identity_policies"],
        json!(["shared"]),
        "{look}"
    );

    // Two methods, one person: merge the entities, and both logins share one entity.
    let a2 = login(&s, "userpass2", "alice2", "pw-123456");
    let e2 = a2["entity_id"].as_str().unwrap().to_owned();
    assert_ne!(e2, entity);
    ok(
        &s,
        &[
            "write",
            "identity/entity/merge",
            &format!("from_entity_ids={e2}"),
            &format!("to_entity_id={entity}"),
        ],
    );
    let again = login(&s, "userpass2", "alice2", "pw-123456");
    assert_eq!(again["entity_id"], entity.as_str());
    assert_eq!(
        login(&s, "userpass", "alice", "pw-123456")["entity_id"],
        entity.as_str()
    );
    let e = json_of(
        &s,
        &[
            "read",
            "-format=json",
            &format!("identity/entity/id/{entity}"),
        ],
    );
    assert_eq!(
        e["data"]["aliases"].as_array().map(Vec::len),
        Some(2),
        "{e}"
    );
    // ... and the second login's token reads the group secret too.
    let t2 = again["client_token"].as_str().unwrap();
    let o = s.bao_as(t2, &["kv", "get", "secret/shared"]);
    assert_eq!(o.code, 0, "{o}");

    // User story 1: a client certificate for CN=alice and only alice.
    ok(&s, &["secrets", "enable", "pki"]);
    ok(
        &s,
        &[
            "write",
            "pki/root/generate/internal",
            "common_name=Kubernetes users CA",
            "ttl=24h",
        ],
    );
    ok(
        &s,
        &[
            "write",
            "pki/roles/people",
            &format!("allowed_domains={{{{identity.entity.aliases.{up}.name}}}}"),
            "allowed_domains_template=true",
            "allow_bare_domains=true",
            "client_flag=true",
            "server_flag=false",
            "ttl=1h",
        ],
    );
    let (code, v) = s.api(
        "POST",
        "pki/issue/people",
        Some(r#"{"common_name":"alice"}"#),
        Some(&alice_tok),
    );
    assert_eq!(code, 200, "alice gets a certificate for herself: {v}");
    let cert = v["data"]["certificate"].as_str().unwrap();
    let pem = tmp.path().join("alice.pem");
    std::fs::write(&pem, cert).unwrap();
    let o = common::run(std::process::Command::new("openssl").args([
        "x509",
        "-noout",
        "-subject",
        "-ext",
        "extendedKeyUsage",
        "-in",
        pem.to_str().unwrap(),
    ]));
    assert!(
        o.stdout.contains("CN=alice") || o.stdout.contains("CN = alice"),
        "{o}"
    );
    assert!(o.stdout.contains("Client Authentication"), "{o}");
    assert!(!o.stdout.contains("Server Authentication"), "{o}");
    let (code, v) = s.api(
        "POST",
        "pki/issue/people",
        Some(r#"{"common_name":"bob"}"#),
        Some(&alice_tok),
    );
    assert_eq!(code, 400, "alice may not get bob's certificate: {v}");
    assert!(
        v["errors"][0].as_str().unwrap().contains("not allowed"),
        "{v}"
    );
    // A template that names nothing is refused when the role is written.
    let (code, v) = s.api(
        "POST",
        "pki/roles/broken",
        Some(r#"{"allowed_domains":["{{identity.entity.nope}}"],"allowed_domains_template":true}"#),
        Some("root"),
    );
    assert_eq!(code, 400, "{v}");
    let (code, _) = s.api("GET", "pki/roles/broken", None, Some("root"));
    assert_eq!(code, 404, "the broken role was not stored");
}
