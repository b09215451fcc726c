//! Issue 10 over the wire: the ACL decides on exactly the path the handler acts on, whatever
//! spelling a client sends (findings 1 and 16), and client-controlled numbers in headers never
//! take the server down (finding 10). Driven with curl against `tresor server -dev`.

mod common;

use std::process::Command;

use common::{Server, errors, free_port, run};
use serde_json::{Value, json};

/// curl with the path sent exactly as written (no dot-segment squashing): (status, JSON body).
fn curl_as_is(
    s: &Server,
    method: &str,
    path: &str,
    body: Option<&Value>,
    token: &str,
    headers: &[&str],
) -> (u16, Value) {
    curl_impl(s, method, path, body, token, headers, false)
}

/// Like [`curl_as_is`], following redirects (Vault's 307 to a path's clean spelling) with the
/// same method, body and token, as Vault's own clients do.
fn curl_following(
    s: &Server,
    method: &str,
    path: &str,
    body: Option<&Value>,
    token: &str,
) -> (u16, Value) {
    curl_impl(s, method, path, body, token, &[], true)
}

fn curl_impl(
    s: &Server,
    method: &str,
    path: &str,
    body: Option<&Value>,
    token: &str,
    headers: &[&str],
    follow: bool,
) -> (u16, Value) {
    let mut c = Command::new("curl");
    if follow {
        c.arg("-L");
    }
    c.args([
        "-s",
        "--path-as-is",
        "--max-time",
        "20",
        "-X",
        method,
        "-w",
        "\n%{http_code}",
        "-H",
        &format!("X-Vault-Token: {token}"),
    ]);
    for h in headers {
        c.args(["-H", h]);
    }
    if let Some(b) = body {
        c.args(["--data-binary", &b.to_string()]);
    }
    c.arg(format!("{}/v1/{path}", s.addr));
    let o = run(&mut c);
    assert_eq!(o.code, 0, "curl {method} {path}: {o}");
    let (text, code) = o.stdout.rsplit_once('\n').expect("status line");
    let v = if text.trim().is_empty() {
        Value::Null
    } else {
        serde_json::from_str(text).unwrap_or_else(|_| json!({"raw": text}))
    };
    (code.trim().parse().expect("status"), v)
}

fn must(s: &Server, method: &str, path: &str, body: Value) -> Value {
    let (code, v) = curl_as_is(s, method, path, Some(&body), "root", &[]);
    assert!((200..300).contains(&code), "{method} {path} -> {code}: {v}");
    v
}

/// Findings 1 and 9 over HTTP: with `pki/issue/*` allowed and `pki/issue/admin-role` denied,
/// no spelling of the denied role issues a certificate; the same for `pki/sign/` and for
/// `sys/policy/admin`.
#[test]
fn no_spelling_of_a_denied_path_is_served() {
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port();
    let s = Server::start_dev(tmp.path(), port);
    must(&s, "POST", "sys/mounts/pki", json!({"type": "pki"}));
    must(
        &s,
        "POST",
        "pki/root/generate/internal",
        json!({"common_name": "Test Root", "key_type": "ec"}),
    );
    must(
        &s,
        "POST",
        "pki/roles/admin-role",
        // A leaf TTL well inside the root's, so the second between the two never matters.
        json!({"allow_any_name": true, "key_type": "ec", "ttl": "1h"}),
    );
    must(
        &s,
        "POST",
        "pki/roles/web",
        json!({"allowed_domains": ["example.com"], "allow_subdomains": true, "key_type": "ec", "ttl": "1h"}),
    );
    must(
        &s,
        "PUT",
        "sys/policies/acl/admin",
        json!({"policy": "path \"secret/*\" { capabilities = [\"read\"] }"}),
    );
    must(
        &s,
        "PUT",
        "sys/policies/acl/limited",
        json!({"policy": r#"
path "pki/issue/*"            { capabilities = ["update"] }
path "pki/issue/admin-role"   { capabilities = ["deny"] }
path "pki/sign/*"             { capabilities = ["update"] }
path "pki/sign/admin-role"    { capabilities = ["deny"] }
path "sys/policy/*"           { capabilities = ["create", "update"] }
path "sys/policy/admin"       { capabilities = ["deny"] }
path "pki/issuer/+/issue/*"   { capabilities = ["update"] }
path "pki/issuer/default/issue/*" { capabilities = ["deny"] }
"#}),
    );
    let tok = must(
        &s,
        "POST",
        "auth/token/create",
        json!({"policies": ["limited"]}),
    )["auth"]["client_token"]
        .as_str()
        .unwrap()
        .to_owned();

    // The allowed role works, so a refusal below is the ACL (or a 404), not a broken setup.
    let (code, v) = curl_as_is(
        &s,
        "POST",
        "pki/issue/web",
        Some(&json!({"common_name": "a.example.com"})),
        &tok,
        &[],
    );
    assert_eq!(code, 200, "{v}");
    let (code, _) = curl_as_is(
        &s,
        "POST",
        "pki/issue/admin-role",
        Some(&json!({"common_name": "evil.com"})),
        &tok,
        &[],
    );
    assert_eq!(code, 403);

    let spellings = [
        "admin-role/",
        "admin-role%2F",
        "admin-role%2f",
        "admin-role/.",
        "./admin-role",
        "admin-role%20",
        "%20admin-role",
        "admin-role+",
        "admin-role%00",
        "ADMIN-ROLE",
        "admin-role//",
    ];
    for v in spellings {
        for endpoint in ["issue", "sign"] {
            let path = format!("pki/{endpoint}/{v}");
            let (code, body) = curl_following(
                &s,
                "POST",
                &path,
                Some(&json!({"common_name": "evil.com", "csr": "not a csr"})),
                &tok,
            );
            assert!((400..500).contains(&code), "POST {path} -> {code}: {body}");
            assert!(
                body.pointer("/data/certificate").is_none(),
                "POST {path} issued a certificate"
            );
        }
    }
    // An issuer reference is matched exactly: ` default` is not `default`.
    for v in ["default%20", "%20default", "default%09", "DEFAULT"] {
        let path = format!("pki/issuer/{v}/issue/web");
        let (code, body) = curl_as_is(
            &s,
            "POST",
            &path,
            Some(&json!({"common_name": "b.example.com"})),
            &tok,
            &[],
        );
        assert!((400..500).contains(&code), "POST {path} -> {code}: {body}");
        assert!(body.pointer("/data/certificate").is_none(), "{path} issued");
    }
    let evil = json!({"policy": "path \"*\" { capabilities = [\"sudo\", \"update\", \"read\"] }"});
    for v in [
        "admin/", "admin%2F", "ADMIN", "%20admin", "admin%20", "admin/.", "Admin%09",
    ] {
        let path = format!("sys/policy/{v}");
        let (code, body) = curl_following(&s, "PUT", &path, Some(&evil), &tok);
        assert!((400..500).contains(&code), "PUT {path} -> {code}: {body}");
    }
    // `+` in a path is a plus sign, not a space: `admin+` is another policy, not `admin`.
    let (code, body) = curl_as_is(&s, "PUT", "sys/policy/admin+", Some(&evil), &tok, &[]);
    assert_eq!(code, 204, "{body}");
    let (code, v) = curl_as_is(&s, "GET", "sys/policies/acl/admin%2B", None, "root", &[]);
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["data"]["name"], "admin+");
    let (code, v) = curl_as_is(&s, "GET", "sys/policies/acl/admin", None, "root", &[]);
    assert_eq!(code, 200);
    assert!(
        v["data"]["policy"].as_str().unwrap().contains("secret/*"),
        "the admin policy was overwritten: {v}"
    );
}

/// Finding 16: a path is decoded once: `+` stays `+`, invalid UTF-8 and control characters are
/// a 400 that names nothing internal.
#[test]
fn paths_decode_one_way_and_bad_bytes_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port();
    let s = Server::start_dev(tmp.path(), port);
    must(
        &s,
        "POST",
        "secret/data/a+b",
        json!({"data": {"who": "plus"}}),
    );
    must(
        &s,
        "POST",
        "secret/data/a%20b",
        json!({"data": {"who": "space"}}),
    );
    let read = |p: &str| curl_as_is(&s, "GET", p, None, "root", &[]);
    assert_eq!(read("secret/data/a+b").1["data"]["data"]["who"], "plus");
    assert_eq!(read("secret/data/a%2Bb").1["data"]["data"]["who"], "plus");
    assert_eq!(read("secret/data/a%20b").1["data"]["data"]["who"], "space");
    for bad in [
        "secret/data/a%00b",
        "secret/data/a%0Ab",
        "secret/data/%FF%FE",
        "secret/data/%C3",
    ] {
        let (code, v) = read(bad);
        assert_eq!(code, 400, "{bad}: {v}");
        let errs = errors(&v).join(" ");
        assert!(errs.contains("invalid request path"), "{bad}: {errs}");
        assert!(
            !errs.contains("logical/"),
            "{bad} leaked a storage key: {errs}"
        );
    }
    // `..` is not served: Vault's 307 to the clean path, which the ACL then judges.
    let (code, _) = read("secret/data/x/../../sys/policy/root");
    assert_eq!(code, 307);
    let (code, _) = curl_as_is(&s, "GET", "sys/health", None, "", &[]);
    assert_eq!(code, 200);
}

/// Finding 10: a huge `X-Vault-Wrap-TTL` or duration field is a 400, never a dropped
/// connection, and the server keeps answering.
#[test]
fn huge_durations_in_headers_and_fields_are_400s() {
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port();
    let s = Server::start_dev(tmp.path(), port);
    must(&s, "POST", "secret/data/app", json!({"data": {"k": "v"}}));
    for ttl in [
        "1e300s",
        "99999999999999999999999h",
        "18446744073709551616",
        "300000000000h",
    ] {
        let (code, v) = curl_as_is(
            &s,
            "GET",
            "secret/data/app",
            None,
            "root",
            &[&format!("X-Vault-Wrap-TTL: {ttl}")],
        );
        assert_eq!(code, 400, "wrap ttl {ttl}: {v}");
        assert!(errors(&v).join(" ").contains("X-Vault-Wrap-TTL"), "{v}");
    }
    for body in [
        json!({"ttl": 1e300}),
        json!({"period": "1e300s"}),
        json!({"ttl": "300000000000h"}),
    ] {
        let (code, v) = curl_as_is(&s, "POST", "auth/token/create", Some(&body), "root", &[]);
        assert_eq!(code, 400, "{body}: {v}");
    }
    let (code, _) = curl_as_is(&s, "GET", "sys/health", None, "", &[]);
    assert_eq!(code, 200);
}
