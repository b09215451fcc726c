//! Issue 13 end to end: the AppRole auth method on a real `tresor server -dev`, driven as a
//! new user would, with the `bao` CLI, curl and hvac: a response-wrapped secret ID is
//! unwrapped and logs in, the role's policy applies; CIDR bindings refuse other addresses; a
//! single-use secret ID logs in once however many logins race; bad input is a clear 4xx.

mod common;

use std::process::Command;
use std::time::Duration;

use common::{Out, Server, clean_command, errors, free_port, run, run_for, run_with_stdin};
use serde_json::{Value, json};

const READER: &str = r#"path "secret/data/app" { capabilities = ["read"] }"#;

fn dev() -> (tempfile::TempDir, Server) {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start_dev(dir.path(), free_port());
    (dir, s)
}

/// AppRole at `approle/`, a `reader` policy and a secret it may read.
fn setup(s: &Server) {
    s.bao_as("root", &["auth", "enable", "approle"])
        .expect(0, "auth enable approle");
    std::fs::write(s.dir.join("reader.hcl"), READER).unwrap();
    s.bao_as("root", &["policy", "write", "reader", "reader.hcl"])
        .expect(0, "policy write");
    s.bao_as("root", &["kv", "put", "secret/app", "password=hunter2"])
        .expect(0, "kv put");
}

fn role_id(s: &Server, role: &str) -> String {
    let v = s
        .bao_as(
            "root",
            &[
                "read",
                "-format=json",
                &format!("auth/approle/role/{role}/role-id"),
            ],
        )
        .expect(0, "read role-id")
        .json();
    v["data"]["role_id"].as_str().unwrap().to_owned()
}

/// curl with extra arguments (headers, `--interface`): (status, body as JSON or null).
fn curl(s: &Server, extra: &[&str], method: &str, path: &str, body: Option<&str>) -> (u16, Value) {
    let mut c = Command::new("curl");
    c.args([
        "-s",
        "--max-time",
        "20",
        "-X",
        method,
        "-w",
        "\n%{http_code}",
    ]);
    c.args(extra);
    let url = format!("{}/v1/{path}", s.addr);
    let o = match body {
        Some(b) => {
            c.args(["--data-binary", "@-", &url]);
            run_with_stdin(&mut c, Some(b.as_bytes()))
        }
        None => {
            c.arg(&url);
            run(&mut c)
        }
    };
    assert_eq!(o.code, 0, "curl {method} {path} failed\n{o}");
    let (text, code) = o.stdout.rsplit_once('\n').expect("status line");
    let v = if text.trim().is_empty() {
        Value::Null
    } else {
        serde_json::from_str(text).unwrap_or_else(|e| panic!("{path}: not JSON ({e}): {text}"))
    };
    (code.trim().parse().expect("status"), v)
}

fn login_body(role_id: &str, secret_id: &str) -> String {
    json!({"role_id": role_id, "secret_id": secret_id}).to_string()
}

fn unwrap(s: &Server, wrapping_token: &str) -> Value {
    let (code, v) = s.api("POST", "sys/wrapping/unwrap", None, Some(wrapping_token));
    assert_eq!(code, 200, "unwrap: {v}");
    v["data"].clone()
}

#[test]
fn a_wrapped_secret_id_logs_in_with_curl_and_the_policy_applies() {
    let (_d, s) = dev();
    setup(&s);
    s.bao_as(
        "root",
        &[
            "write",
            "auth/approle/role/app",
            "token_policies=reader",
            "secret_id_num_uses=1",
            "secret_id_ttl=10m",
        ],
    )
    .expect(0, "create role");
    let rid = role_id(&s, "app");

    // bao -wrap-ttl: the secret ID comes back wrapped, and unwraps once.
    let v = s
        .bao_as(
            "root",
            &[
                "write",
                "-wrap-ttl=120s",
                "-format=json",
                "-f",
                "auth/approle/role/app/secret-id",
            ],
        )
        .expect(0, "wrapped secret-id")
        .json();
    assert!(v["data"].is_null(), "nothing but wrap_info: {v}");
    let wrap = v["wrap_info"]["token"].as_str().unwrap().to_owned();
    assert_eq!(
        v["wrap_info"]["creation_path"],
        "auth/approle/role/app/secret-id"
    );
    let d = unwrap(&s, &wrap);
    let sid = d["secret_id"].as_str().unwrap().to_owned();
    assert!(d["secret_id_accessor"].is_string(), "{d}");
    let (code, _) = s.api("POST", "sys/wrapping/unwrap", None, Some(&wrap));
    assert_eq!(code, 400, "a wrapping token unwraps once");

    // Log in with curl (no token), then read what the policy allows.
    let (code, v) = s.api(
        "POST",
        "auth/approle/login",
        Some(&login_body(&rid, &sid)),
        None,
    );
    assert_eq!(code, 200, "login: {v}");
    let auth = &v["auth"];
    assert_eq!(auth["policies"], json!(["default", "reader"]));
    assert_eq!(auth["metadata"]["role_name"], "app");
    assert_eq!(auth["renewable"], true);
    let tok = auth["client_token"].as_str().unwrap().to_owned();
    let (code, v) = s.api("GET", "secret/data/app", None, Some(&tok));
    assert_eq!(code, 200, "read allowed: {v}");
    assert_eq!(v["data"]["data"]["password"], "hunter2");
    let (code, v) = s.api(
        "POST",
        "secret/data/app",
        Some(r#"{"data":{"password":"mine"}}"#),
        Some(&tok),
    );
    assert_eq!(code, 403, "write denied: {v}");
    assert!(errors(&v)[0].contains("permission denied"), "{v}");

    // The single use is spent.
    let (code, v) = s.api(
        "POST",
        "auth/approle/login",
        Some(&login_body(&rid, &sid)),
        None,
    );
    assert_eq!(code, 400, "{v}");
    assert_eq!(errors(&v), ["invalid role or secret ID"]);

    // X-Vault-Wrap-TTL with curl, and the bao CLI's login path.
    let (code, v) = curl(
        &s,
        &["-H", "X-Vault-Token: root", "-H", "X-Vault-Wrap-TTL: 60s"],
        "POST",
        "auth/approle/role/app/secret-id",
        Some("{}"),
    );
    assert_eq!(code, 200, "{v}");
    let d = unwrap(&s, v["wrap_info"]["token"].as_str().unwrap());
    let sid = d["secret_id"].as_str().unwrap();
    let o = s
        .bao(&[
            "write",
            "-format=json",
            "auth/approle/login",
            &format!("role_id={rid}"),
            &format!("secret_id={sid}"),
        ])
        .expect(0, "bao write auth/approle/login");
    let tok = o.json()["auth"]["client_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let look = s
        .bao_as(&tok, &["token", "lookup", "-format=json"])
        .expect(0, "lookup-self")
        .json();
    assert_eq!(look["data"]["path"], "auth/approle/login");
    assert_eq!(look["data"]["meta"]["role_name"], "app");
    s.bao_as(&tok, &["token", "renew"]).expect(0, "renew");
}

#[test]
fn cidr_bindings_refuse_a_login_from_another_address() {
    let (_d, s) = dev();
    setup(&s);
    s.bao_as(
        "root",
        &[
            "write",
            "auth/approle/role/bound",
            "token_policies=reader",
            "secret_id_bound_cidrs=127.0.0.2/32",
        ],
    )
    .expect(0, "create bound role");
    let rid = role_id(&s, "bound");
    let v = s
        .bao_as(
            "root",
            &[
                "write",
                "-f",
                "-format=json",
                "auth/approle/role/bound/secret-id",
            ],
        )
        .expect(0, "secret-id")
        .json();
    let sid = v["data"]["secret_id"].as_str().unwrap().to_owned();
    let body = login_body(&rid, &sid);
    // curl connects from 127.0.0.1: refused, with the address named.
    let (code, v) = s.api("POST", "auth/approle/login", Some(&body), None);
    assert_eq!(code, 400, "{v}");
    let e = errors(&v);
    assert!(
        e[0].contains("127.0.0.1") && e[0].contains("CIDR restrictions on the role"),
        "{v}"
    );
    // From 127.0.0.2 (loopback is all of 127/8 on Linux) the same login works.
    let (code, v) = curl(
        &s,
        &["--interface", "127.0.0.2"],
        "POST",
        "auth/approle/login",
        Some(&body),
    );
    assert_eq!(code, 200, "from 127.0.0.2: {v}");

    // A secret ID's own cidr_list binds it the same way, on a role without bindings.
    s.bao_as(
        "root",
        &["write", "auth/approle/role/free", "token_policies=reader"],
    )
    .expect(0, "create role");
    let rid = role_id(&s, "free");
    let v = s
        .bao_as(
            "root",
            &[
                "write",
                "-format=json",
                "auth/approle/role/free/secret-id",
                "cidr_list=127.0.0.2/32",
            ],
        )
        .expect(0, "bound secret-id")
        .json();
    let sid = v["data"]["secret_id"].as_str().unwrap().to_owned();
    let (code, v) = s.api(
        "POST",
        "auth/approle/login",
        Some(&login_body(&rid, &sid)),
        None,
    );
    assert_eq!(code, 400, "{v}");
    assert!(
        errors(&v)[0].contains("CIDR restrictions on the secret ID"),
        "{v}"
    );
}

/// Issue 13: a secret ID with `num_uses=1` logs in once, whatever the number of logins
/// racing for it (50 concurrent curl processes).
#[test]
fn a_single_use_secret_id_logs_in_once_under_a_race() {
    let (_d, s) = dev();
    setup(&s);
    s.bao_as(
        "root",
        &["write", "auth/approle/role/race", "token_policies=reader"],
    )
    .expect(0, "create role");
    let rid = role_id(&s, "race");
    let v = s
        .bao_as(
            "root",
            &[
                "write",
                "-format=json",
                "auth/approle/role/race/secret-id",
                "num_uses=1",
            ],
        )
        .expect(0, "secret-id")
        .json();
    let sid = v["data"]["secret_id"].as_str().unwrap().to_owned();
    let body = login_body(&rid, &sid);
    let codes: Vec<u16> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..50)
            .map(|_| scope.spawn(|| s.curl("POST", "auth/approle/login", Some(&body), None).0))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let ok = codes.iter().filter(|c| **c == 200).count();
    assert_eq!(ok, 1, "logins that succeeded: {codes:?}");
    assert!(codes.iter().all(|c| *c == 200 || *c == 400), "{codes:?}");
}

#[test]
fn bad_input_is_a_clear_4xx_and_stores_nothing() {
    let (_d, s) = dev();
    setup(&s);
    s.bao_as(
        "root",
        &["write", "auth/approle/role/app", "token_policies=reader"],
    )
    .expect(0, "create role");
    let rid = role_id(&s, "app");
    let login = |body: &str| s.api("POST", "auth/approle/login", Some(body), None);
    for (body, want) in [
        (
            login_body("no-such-role-id", "x"),
            "invalid role or secret ID",
        ),
        (
            login_body(&rid, "not a secret id"),
            "invalid role or secret ID",
        ),
        (
            login_body(&rid, &"%".repeat(5000)),
            "invalid role or secret ID",
        ),
        (json!({"secret_id": "x"}).to_string(), "missing role_id"),
        (json!({"role_id": rid}).to_string(), "missing secret_id"),
        (json!({"role_id": ["a"]}).to_string(), "role_id"),
    ] {
        let (code, v) = login(&body);
        assert_eq!(code, 400, "{body}: {v}");
        assert!(errors(&v)[0].contains(want), "{body}: {v}");
    }
    let root = Some("root");
    for (method, path, body, code_want, want) in [
        (
            "POST",
            "auth/approle/role/ghost/secret-id",
            "{}",
            400,
            "role \"ghost\" does not exist",
        ),
        (
            "LIST",
            "auth/approle/role/ghost/secret-id",
            "",
            400,
            "role \"ghost\" does not exist",
        ),
        (
            "POST",
            "auth/approle/role/app/secret-id",
            r#"{"metadata":"{oops"}"#,
            400,
            "failed to parse metadata",
        ),
        (
            "POST",
            "auth/approle/role/app/secret-id",
            r#"{"cidr_list":"300.1.1.1/8"}"#,
            400,
            "cidr_list",
        ),
        (
            "POST",
            "auth/approle/role/app/secret-id",
            r#"{"num_uses":-2}"#,
            400,
            "num_uses",
        ),
        (
            "POST",
            "auth/approle/role/new",
            r#"{"secret_id_bound_cidrs":"nope"}"#,
            400,
            "secret_id_bound_cidrs",
        ),
        (
            "POST",
            "auth/approle/role/new",
            r#"{"bind_secret_id":false}"#,
            400,
            "at least one constraint",
        ),
        (
            "POST",
            "auth/approle/role/new",
            r#"{"token_ttl":"forever"}"#,
            400,
            "token_ttl",
        ),
        ("POST", "auth/approle/role/a*b", "{}", 400, "role_name"),
        (
            "POST",
            "auth/approle/role/app/secret-id-accessor/lookup",
            r#"{"secret_id_accessor":"nope"}"#,
            404,
            "failed to find accessor entry",
        ),
        (
            "POST",
            "auth/approle/role/nope/token-ttl",
            r#"{"token_ttl":5}"#,
            404,
            "does not exist",
        ),
    ] {
        let (code, v) = s.api(method, path, (!body.is_empty()).then_some(body), root);
        assert_eq!(code, code_want, "{method} {path} {body}: {v}");
        assert!(errors(&v)[0].contains(want), "{method} {path} {body}: {v}");
    }
    // An unknown secret ID is not an error to look up: 204 and no body, as in Vault (hvac's
    // test_create_delete_role_secret_id reads a destroyed one and expects 204).
    let (code, v) = s.api(
        "POST",
        "auth/approle/role/app/secret-id/lookup",
        Some(r#"{"secret_id":"nope"}"#),
        root,
    );
    assert_eq!((code, v), (204, Value::Null));
    // Nothing was stored by the refused writes.
    let (code, v) = s.api("LIST", "auth/approle/role", None, root);
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["data"]["keys"], json!(["app"]));
    let (code, _) = s.api("LIST", "auth/approle/role/app/secret-id", None, root);
    assert_eq!(code, 404, "no secret ID was created");
    // Unauthenticated, only login is open.
    let (code, _) = s.api("POST", "auth/approle/role/app/secret-id", Some("{}"), None);
    assert_eq!(code, 403);
}

/// hvac's `client.auth.approle` calls, as a Python user would make them.
#[test]
fn hvac_approle_calls_work() {
    let (_d, s) = dev();
    setup(&s);
    let script = r#"
import os, hvac
c = hvac.Client(url=os.environ["VAULT_ADDR"], token="root")
a = c.auth.approle
a.create_or_update_approle("web", token_policies=["reader"], token_ttl="20m", secret_id_num_uses=5)
assert a.list_roles()["data"]["keys"] == ["web"]
role = a.read_role("web")["data"]
assert role["token_policies"] == ["reader"] and role["token_ttl"] == 1200, role
assert role["secret_id_num_uses"] == 5, role
rid = a.read_role_id("web")["data"]["role_id"]
gen = a.generate_secret_id("web", metadata={"team": "blue"}, cidr_list=["127.0.0.0/8"])["data"]
sid, acc = gen["secret_id"], gen["secret_id_accessor"]
look = a.read_secret_id("web", sid)["data"]
assert look["metadata"] == {"team": "blue"} and look["secret_id_num_uses"] == 5, look
assert look["cidr_list"] == ["127.0.0.0/8"], look
assert a.read_secret_id_accessor("web", acc)["data"]["secret_id_accessor"] == acc
assert acc in a.list_secret_id_accessors("web")["data"]["keys"]
wrapped = a.generate_secret_id("web", wrap_ttl="60s")
assert wrapped["wrap_info"]["ttl"] == 60, wrapped
login = c.auth.approle.login(role_id=rid, secret_id=sid, use_token=False)
assert login["auth"]["metadata"] == {"role_name": "web", "team": "blue"}, login
assert login["auth"]["lease_duration"] == 1200, login
t = hvac.Client(url=os.environ["VAULT_ADDR"], token=login["auth"]["client_token"])
assert t.secrets.kv.v2.read_secret_version("app", raise_on_deleted_version=True)["data"]["data"]["password"] == "hunter2"
try:
    t.secrets.kv.v2.create_or_update_secret("app", secret={"password": "x"})
    raise SystemExit("write was allowed")
except hvac.exceptions.Forbidden:
    pass
try:
    a.login(role_id=rid, secret_id="wrong")
    raise SystemExit("a wrong secret ID logged in")
except hvac.exceptions.InvalidRequest as e:
    assert "invalid role or secret ID" in str(e), e
a.create_custom_secret_id("web", "my-custom-secret")
a.destroy_secret_id_accessor("web", acc)
a.destroy_secret_id("web", "my-custom-secret")
gone = a.read_secret_id("web", "my-custom-secret")
assert gone.status_code == 204, gone
tidy = c.adapter.post("/v1/auth/approle/tidy/secret-id")
# Vault answers a started tidy with 202 Accepted, so hvac hands back the response itself.
assert tidy.status_code == 202, tidy
assert "Tidy operation successfully started" in tidy.json()["warnings"][0], tidy.text
a.update_role_id("web", "custom-role-id")
assert a.read_role_id("web")["data"]["role_id"] == "custom-role-id"
a.delete_role("web")
try:
    a.read_role("web")
    raise SystemExit("deleted role still reads")
except hvac.exceptions.InvalidPath:
    pass
print("ALL OK")
"#;
    let mut cmd = clean_command("python3");
    cmd.arg("-").env("VAULT_ADDR", &s.addr);
    let o: Out = run_for(&mut cmd, Some(script.as_bytes()), Duration::from_secs(60));
    assert_eq!(
        o.code,
        0,
        "hvac script failed\n{o}\n--- server log\n{}",
        s.log()
    );
    assert!(o.stdout.contains("ALL OK"), "{o}");
}

/// Issue 20: a rate-limit quota with a `role` on the AppRole mount limits the logins of that
/// role, which a login names only by its `role_id` (Vault resolves it); another role's logins
/// are not limited.
#[test]
fn a_rate_limit_quota_with_a_role_limits_that_roles_logins() {
    let (_dir, s) = dev();
    setup(&s);
    for role in ["web", "batch"] {
        s.bao_as(
            "root",
            &[
                "write",
                &format!("auth/approle/role/{role}"),
                "token_policies=reader",
            ],
        )
        .expect(0, "write role");
    }
    let (code, v) = s.api(
        "POST",
        "sys/quotas/rate-limit/web-logins",
        Some(r#"{"path":"auth/approle/","role":"web","rate":1,"burst":1}"#),
        Some("root"),
    );
    assert!(code == 200 || code == 204, "{code} {v}");
    let login = |role: &str| {
        let rid = role_id(&s, role);
        let (code, v) = s.api(
            "POST",
            &format!("auth/approle/role/{role}/secret-id"),
            None,
            Some("root"),
        );
        assert_eq!(code, 200, "{v}");
        let sid = v["data"]["secret_id"].as_str().unwrap().to_owned();
        (0..5)
            .map(|_| {
                curl(
                    &s,
                    &[],
                    "POST",
                    "auth/approle/login",
                    Some(&login_body(&rid, &sid)),
                )
                .0
            })
            .collect::<Vec<u16>>()
    };
    let web = login("web");
    assert_eq!(web[0], 200, "{web:?}");
    assert!(web.iter().filter(|c| **c == 429).count() >= 3, "{web:?}");
    // Other spellings of the login path do not get past the role's quota: each is refused
    // by the quota or by the path checks, never a token.
    let rid = role_id(&s, "web");
    let (_, v) = s.api(
        "POST",
        "auth/approle/role/web/secret-id",
        None,
        Some("root"),
    );
    let sid = v["data"]["secret_id"].as_str().unwrap().to_owned();
    for spelling in [
        "auth/approle/login/",
        "auth/approle//login",
        "auth/approle/./login",
        "auth/approle/login%2F",
        "auth/approle/LOGIN",
        "auth/approle/login%20",
    ] {
        // The canonical spelling first takes whatever the bucket holds, so a 200 below could
        // only come from a spelling the quota missed. (Unclean spellings are redirected to the
        // clean path, where the quota applies.)
        s.curl(
            "POST",
            "auth/approle/login",
            Some(&login_body(&rid, &sid)),
            None,
        );
        let (code, text) = s.curl("POST", spelling, Some(&login_body(&rid, &sid)), None);
        assert_ne!(code, 200, "{spelling} logged in past the quota: {text}");
        assert!(!text.contains("client_token"), "{spelling}: {text}");
    }
    let batch = login("batch");
    assert!(batch.iter().all(|c| *c == 200), "{batch:?}");
    // A role_id that belongs to no role is not counted against the role (and fails to log in).
    let (code, _) = curl(
        &s,
        &[],
        "POST",
        "auth/approle/login",
        Some(&login_body("no-such-role-id", "x")),
    );
    assert_eq!(code, 400);
}
