//! Issue 16: `sys/policies/password/:name` in Vault's HCL and `.../generate`: a policy asking
//! for 4 digits and 4 symbols in 20 characters is honoured on every generation, and a policy
//! no password can meet is refused when written.

mod common;

use common::{Server, free_port};
use serde_json::json;

const POLICY: &str = r#"
length = 20
rule "charset" {
  charset = "abcdefghijklmnopqrstuvwxyz"
}
rule "charset" {
  charset = "0123456789"
  min-chars = 4
}
rule "charset" {
  charset = "!@#$%^&*"
  min-chars = 4
}
"#;

#[test]
fn password_policies_are_honoured() {
    let tmp = tempfile::tempdir().unwrap();
    let s = Server::start_dev(tmp.path(), free_port());
    let file = tmp.path().join("p.hcl");
    std::fs::write(&file, POLICY).unwrap();
    let o = s.bao_as(
        "root",
        &[
            "write",
            "sys/policies/password/app",
            &format!("policy=@{}", file.display()),
        ],
    );
    assert_eq!(o.code, 0, "{o}");
    let (code, v) = s.api("GET", "sys/policies/password/app", None, Some("root"));
    assert_eq!(code, 200, "{v}");
    assert!(
        v["data"]["policy"].as_str().unwrap().contains("min-chars"),
        "{v}"
    );
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..200 {
        let (code, v) = s.api(
            "GET",
            "sys/policies/password/app/generate",
            None,
            Some("root"),
        );
        assert_eq!(code, 200, "{v}");
        let pw = v["data"]["password"].as_str().unwrap();
        assert_eq!(pw.chars().count(), 20, "{pw}");
        assert!(pw.chars().filter(char::is_ascii_digit).count() >= 4, "{pw}");
        assert!(
            pw.chars().filter(|c| "!@#$%^&*".contains(*c)).count() >= 4,
            "{pw}"
        );
        assert!(
            pw.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "!@#$%^&*".contains(c)),
            "{pw}"
        );
        seen.extend(pw.chars());
    }
    assert_eq!(
        seen.len(),
        26 + 10 + 8,
        "every allowed character appears: {seen:?}"
    );
    let (code, v) = s.api("LIST", "sys/policies/password", None, Some("root"));
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["data"]["keys"], json!(["app"]));
    // Impossible or malformed policies are refused and not stored.
    for bad in [
        "length = 4\nrule \"charset\" {\n charset = \"01\"\n min-chars = 5\n}\n",
        "length = \"x\"",
        "not hcl {",
    ] {
        let (code, v) = s.api(
            "POST",
            "sys/policies/password/bad",
            Some(&json!({"policy": bad}).to_string()),
            Some("root"),
        );
        assert_eq!(code, 400, "{bad}: {v}");
    }
    let (code, _) = s.api("GET", "sys/policies/password/bad", None, Some("root"));
    assert_eq!(code, 404);
    let (code, _) = s.api("DELETE", "sys/policies/password/app", None, Some("root"));
    assert_eq!(code, 204);
    let (code, _) = s.api(
        "GET",
        "sys/policies/password/app/generate",
        None,
        Some("root"),
    );
    assert_eq!(code, 400);
}
