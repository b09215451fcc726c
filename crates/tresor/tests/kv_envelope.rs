//! KV answers whose envelope the engine decides through the SDK response (issue 11: no
//! engine knowledge in the core or the HTTP layer): KV v1's advisory `lease_duration`, and KV
//! v2's 404 that still carries the deleted version's metadata, and its 404 with a warning for a
//! version 1 style request.

mod common;

use common::{Server, free_port};
use serde_json::json;

#[test]
fn kv_v1_refresh_interval_and_kv_v2_deleted_version() {
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port();
    let s = Server::start_dev(tmp.path(), port);
    let root = Some("root");
    let (code, v) = s.api(
        "POST",
        "sys/mounts/kv1",
        Some(r#"{"type":"kv","options":{"version":"1"},"config":{"default_lease_ttl":"45m"}}"#),
        root,
    );
    assert_eq!(code, 204, "{v}");
    s.api("POST", "kv1/a", Some(r#"{"k":"v"}"#), root);
    s.api("POST", "kv1/b", Some(r#"{"k":"v","ttl":"90s"}"#), root);
    let (code, v) = s.api("GET", "kv1/a", None, root);
    assert_eq!(code, 200);
    assert_eq!(v["lease_duration"], 45 * 60, "the mount default: {v}");
    assert_eq!(v["lease_id"], "", "no lease behind it");
    let (_, v) = s.api("GET", "kv1/b", None, root);
    assert_eq!(v["lease_duration"], 90, "the secret's ttl: {v}");

    s.api(
        "POST",
        "secret/data/app",
        Some(r#"{"data":{"k":"v"}}"#),
        root,
    );
    let (code, _) = s.api("DELETE", "secret/data/app", None, root);
    assert_eq!(code, 204);
    let (code, v) = s.api("GET", "secret/data/app", None, root);
    assert_eq!(code, 404, "{v}");
    assert_eq!(v["data"]["data"], json!(null));
    assert_eq!(v["data"]["metadata"]["version"], 1);
    assert!(
        v["data"]["metadata"]["deletion_time"]
            .as_str()
            .is_some_and(|t| !t.is_empty())
    );
    let (code, v) = s.api("GET", "secret/subkeys/app", None, root);
    assert_eq!(code, 404, "{v}");
    // A live version is a plain 200.
    s.api(
        "POST",
        "secret/data/app",
        Some(r#"{"data":{"k":"w"}}"#),
        root,
    );
    let (code, v) = s.api("GET", "secret/data/app", None, root);
    assert_eq!(code, 200);
    assert_eq!(v["data"]["data"]["k"], "w");
    // A KV version 1 style request on the version 2 mount: 404 with the whole envelope, no
    // data and a warning naming the `kv` command, as Vault answers it. Nothing is written.
    for (method, body, command) in [
        ("GET", None, "get"),
        ("POST", Some(r#"{"k":"x"}"#), "put"),
        ("LIST", None, "list"),
        ("DELETE", None, "delete"),
    ] {
        let (code, v) = s.api(method, "secret/app", body, root);
        assert_eq!(code, 404, "{method}: {v}");
        assert_eq!(v["data"], json!(null), "{method}: {v}");
        let w = v["warnings"][0].as_str().unwrap_or_default();
        assert!(
            w.starts_with("Invalid path for a versioned K/V secrets engine.")
                && w.contains(&format!("'vault kv {command}'")),
            "{method}: {v}"
        );
    }
    let (_, v) = s.api("GET", "secret/data/app", None, root);
    assert_eq!(v["data"]["data"]["k"], "w", "the secret is as it was");
}
