//! A form-encoded body (`application/x-www-form-urlencoded`, as a browser posts an OIDC
//! provider's `form_post` callback) is request data, as in Vault: one value a string, a
//! repeated key a list.

mod common;

use std::process::Command;

use common::{Server, free_port, run};

#[test]
fn a_form_body_is_request_data() {
    let tmp = tempfile::tempdir().unwrap();
    let s = Server::start_dev(tmp.path(), free_port());
    let o = run(Command::new("curl").args([
        "-s",
        "--max-time",
        "20",
        "-w",
        "\n%{http_code}",
        "-H",
        "X-Vault-Token: root",
        "-H",
        "Content-Type: application/x-www-form-urlencoded",
        "--data-binary",
        "code=a%2Bb+c&state=s1&state=s2",
        &format!("{}/v1/cubbyhole/form", s.addr),
    ]));
    assert!(o.stdout.trim_end().ends_with("204"), "{o}");
    let (code, v) = s.api("GET", "cubbyhole/form", None, Some("root"));
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["data"]["code"], "a+b c", "{v}");
    assert_eq!(v["data"]["state"], serde_json::json!(["s1", "s2"]), "{v}");
    // A JSON body labelled as a form (curl -d's default) is still JSON, as in Vault.
    let o = run(Command::new("curl").args([
        "-s",
        "--max-time",
        "20",
        "-w",
        "\n%{http_code}",
        "-H",
        "X-Vault-Token: root",
        "-d",
        r#"  {"k": "json"}"#,
        &format!("{}/v1/cubbyhole/json", s.addr),
    ]));
    assert!(o.stdout.trim_end().ends_with("204"), "{o}");
    let (_, v) = s.api("GET", "cubbyhole/json", None, Some("root"));
    assert_eq!(v["data"]["k"], "json", "{v}");
}
