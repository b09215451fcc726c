//! Issue 11 (auth-method contract): `token_bound_cidrs` is enforced on every request, over real
//! connections from two loopback addresses (127.0.0.1 and 127.0.0.2).

mod common;

use std::process::Command;

use common::{Server, free_port, run};
use serde_json::{Value, json};

/// One request with curl from a chosen local address: (status, JSON body).
fn from(
    s: &Server,
    local: &str,
    method: &str,
    path: &str,
    body: Option<&Value>,
    token: &str,
) -> (u16, Value) {
    from_with(s, local, method, path, body, token, &[])
}

/// [`from`] with extra request headers.
fn from_with(
    s: &Server,
    local: &str,
    method: &str,
    path: &str,
    body: Option<&Value>,
    token: &str,
    headers: &[&str],
) -> (u16, Value) {
    let mut c = Command::new("curl");
    c.args([
        "-s",
        "--max-time",
        "20",
        "--interface",
        local,
        "-X",
        method,
        "-w",
        "\n%{http_code}",
    ]);
    c.args(["-H", &format!("X-Vault-Token: {token}")]);
    for h in headers {
        c.args(["-H", h]);
    }
    if let Some(b) = body {
        c.args(["--data-binary", &b.to_string()]);
    }
    c.arg(format!("{}/v1/{path}", s.addr));
    let o = run(&mut c);
    assert_eq!(o.code, 0, "curl {method} {path} from {local}: {o}");
    let (text, code) = o.stdout.rsplit_once('\n').expect("status line");
    let v = if text.trim().is_empty() {
        Value::Null
    } else {
        serde_json::from_str(text).expect("json")
    };
    (code.trim().parse().expect("status"), v)
}

#[test]
fn a_token_bound_to_an_address_works_only_from_it() {
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port();
    let s = Server::start_dev(tmp.path(), port);
    let (code, v) = from(
        &s,
        "127.0.0.1",
        "POST",
        "auth/token/roles/bound",
        Some(&json!({"allowed_policies": ["default"], "token_bound_cidrs": ["127.0.0.2/32"]})),
        "root",
    );
    assert_eq!(code, 204, "{v}");
    let (code, v) = from(
        &s,
        "127.0.0.1",
        "GET",
        "auth/token/roles/bound",
        None,
        "root",
    );
    assert_eq!(code, 200);
    assert_eq!(v["data"]["token_bound_cidrs"], json!(["127.0.0.2/32"]));
    let (code, v) = from(
        &s,
        "127.0.0.1",
        "POST",
        "auth/token/create/bound",
        Some(&json!({})),
        "root",
    );
    assert_eq!(code, 200, "{v}");
    let tok = v["auth"]["client_token"].as_str().unwrap().to_owned();

    let (code, v) = from(&s, "127.0.0.2", "GET", "auth/token/lookup-self", None, &tok);
    assert_eq!(code, 200, "from the bound address: {v}");
    assert_eq!(v["data"]["bound_cidrs"], json!(["127.0.0.2/32"]));
    let (code, v) = from(&s, "127.0.0.1", "GET", "auth/token/lookup-self", None, &tok);
    assert_eq!(code, 403, "from another address: {v}");
    let (code, _) = from(&s, "127.0.0.1", "GET", "cubbyhole/x", None, &tok);
    assert_eq!(code, 403);
    // A client cannot claim the bound address: without x_forwarded_for_authorized_addrs the
    // header is not believed, whatever it says.
    for xff in ["127.0.0.2", "127.0.0.2, 127.0.0.1", "127.0.0.1, 127.0.0.2"] {
        let (code, v) = from_with(
            &s,
            "127.0.0.1",
            "GET",
            "auth/token/lookup-self",
            None,
            &tok,
            &[&format!("X-Forwarded-For: {xff}")],
        );
        assert_eq!(code, 403, "X-Forwarded-For: {xff} -> {v}");
    }

    // Bad blocks are refused when the role is written, and nothing changes.
    for bad in [
        json!(["10.0.0.0/33"]),
        json!(["banana"]),
        json!("127.0.0.1/8, nope"),
    ] {
        let (code, v) = from(
            &s,
            "127.0.0.1",
            "POST",
            "auth/token/roles/bound",
            Some(&json!({"token_bound_cidrs": bad})),
            "root",
        );
        assert_eq!(code, 400, "{bad}: {v}");
    }
    let (_, v) = from(
        &s,
        "127.0.0.1",
        "GET",
        "auth/token/roles/bound",
        None,
        "root",
    );
    assert_eq!(v["data"]["token_bound_cidrs"], json!(["127.0.0.2/32"]));
}
