//! Issue 6 end to end with the `bao` CLI: `audit enable/list/disable` with a file device (no
//! secret in clear, `sys/audit-hash` reproduces the logged HMAC), `write -wrap-ttl` and
//! `unwrap` (exactly once), and `lease lookup/renew/revoke` on token leases.

mod common;

use common::{Server, free_port};

#[test]
fn audit_file_device_hides_secrets_and_audit_hash_matches() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start_dev(dir.path(), free_port());
    let log = dir.path().join("audit.log");
    s.bao_as(
        "root",
        &[
            "audit",
            "enable",
            "file",
            &format!("file_path={}", log.display()),
        ],
    )
    .expect(0, "audit enable");
    let l = s
        .bao_as("root", &["audit", "list", "-format=json"])
        .expect(0, "audit list")
        .json();
    assert_eq!(l["file/"]["type"], "file");
    s.bao_as(
        "root",
        &["kv", "put", "secret/db", "password=Tr0ub4dor&3-unique"],
    )
    .expect(0, "put");
    s.bao_as("root", &["kv", "get", "secret/db"])
        .expect(0, "get");
    let denied = s
        .bao_as(
            "root",
            &["token", "create", "-policy=default", "-field=token"],
        )
        .expect(0, "token")
        .stdout
        .trim()
        .to_owned();
    assert_eq!(s.bao_as(&denied, &["kv", "get", "secret/db"]).code, 2);
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        !text.contains("Tr0ub4dor&3-unique"),
        "secret in clear in the audit log"
    );
    assert!(!text.contains(&denied), "a token in clear in the audit log");
    assert!(
        text.lines()
            .all(|l| serde_json::from_str::<serde_json::Value>(l).is_ok()),
        "every line is JSON"
    );
    assert!(
        text.contains("\"error\":\"permission denied\""),
        "denied request recorded"
    );
    let h = s
        .bao_as(
            "root",
            &[
                "write",
                "-field=hash",
                "sys/audit-hash/file",
                "input=Tr0ub4dor&3-unique",
            ],
        )
        .expect(0, "audit-hash")
        .stdout
        .trim()
        .to_owned();
    assert!(h.starts_with("hmac-sha256:"), "{h}");
    assert!(
        text.contains(&h),
        "the logged HMAC is reproducible with sys/audit-hash"
    );
    s.bao_as("root", &["audit", "disable", "file/"])
        .expect(0, "audit disable");
    let before = std::fs::read_to_string(&log).unwrap().len();
    s.bao_as("root", &["kv", "get", "secret/db"])
        .expect(0, "get after disable");
    assert_eq!(
        std::fs::read_to_string(&log).unwrap().len(),
        before,
        "nothing logged after disable"
    );
}

#[test]
fn wrap_and_unwrap_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start_dev(dir.path(), free_port());
    let wt = s
        .bao_as(
            "root",
            &[
                "write",
                "-wrap-ttl=5m",
                "-field=wrapping_token",
                "sys/wrapping/wrap",
                "bootstrap=first-secret",
            ],
        )
        .expect(0, "wrap")
        .stdout
        .trim()
        .to_owned();
    assert!(wt.starts_with("hvs."), "{wt}");
    let look = s
        .bao_as(
            "root",
            &[
                "write",
                "-format=json",
                "sys/wrapping/lookup",
                &format!("token={wt}"),
            ],
        )
        .expect(0, "lookup")
        .json();
    assert_eq!(look["data"]["creation_ttl"], 300);
    let u = s
        .bao_as("root", &["unwrap", "-format=json", &wt])
        .expect(0, "unwrap")
        .json();
    assert_eq!(u["data"]["bootstrap"], "first-secret");
    let o = s.bao_as("root", &["unwrap", &wt]);
    assert_eq!(o.code, 2, "second unwrap must fail\n{o}");
    assert!(
        o.stderr
            .contains("wrapping token is not valid or does not exist"),
        "{o}"
    );
    // A wrapped token creation: the new machine gets its token by unwrapping.
    let wt = s
        .bao_as(
            "root",
            &[
                "token",
                "create",
                "-policy=default",
                "-wrap-ttl=2m",
                "-field=wrapping_token",
            ],
        )
        .expect(0, "wrapped token create")
        .stdout
        .trim()
        .to_owned();
    let u = s
        .bao(&["unwrap", "-format=json", &wt])
        .expect(0, "unwrap with the wrapping token itself");
    let tok = u.json()["auth"]["client_token"]
        .as_str()
        .unwrap()
        .to_owned();
    s.bao_as(&tok, &["token", "lookup"])
        .expect(0, "the unwrapped token works");
}

#[test]
fn lease_commands_on_token_leases() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start_dev(dir.path(), free_port());
    let tok = s
        .bao_as(
            "root",
            &[
                "token",
                "create",
                "-policy=default",
                "-ttl=1h",
                "-format=json",
            ],
        )
        .expect(0, "token")
        .json();
    let t = tok["auth"]["client_token"].as_str().unwrap().to_owned();
    let keys = s
        .bao_as(
            "root",
            &[
                "list",
                "-format=json",
                "sys/leases/lookup/auth/token/create/",
            ],
        )
        .expect(0, "list leases")
        .json();
    let id = format!("auth/token/create/{}", keys[0].as_str().unwrap());
    let look = s
        .bao_as("root", &["lease", "lookup", "-format=json", &id])
        .expect(0, "lease lookup")
        .json();
    assert_eq!(look["data"]["id"], id.as_str());
    assert!(look["data"]["ttl"].as_i64().unwrap() > 3500);
    s.bao_as("root", &["lease", "revoke", &id])
        .expect(0, "lease revoke");
    assert_eq!(
        s.bao_as(&t, &["token", "lookup"]).code,
        2,
        "revoking the token's lease revokes the token"
    );
    let o = s.bao_as("root", &["lease", "lookup", &id]);
    assert_eq!(o.code, 2, "{o}");
    // revoke -prefix needs sudo and removes everything below.
    for _ in 0..3 {
        s.bao_as("root", &["token", "create", "-policy=default", "-ttl=1h"])
            .expect(0, "token");
    }
    s.bao_as("root", &["lease", "revoke", "-prefix", "auth/token/create"])
        .expect(0, "revoke prefix");
    let o = s.bao_as("root", &["list", "sys/leases/lookup/auth/token/create/"]);
    assert_eq!(o.code, 2, "no leases left\n{o}");
}
