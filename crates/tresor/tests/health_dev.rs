//! End to end: `sys/health` status codes through the seal lifecycle with Vault's query
//! overrides and HEAD, `sys/leader` on a single node, and `tresor server -dev` as a new user
//! meets it (root token, KV v2 at `secret/`).

mod common;

use common::{Server, free_port, plain_config, raw_http, strings};
use serde_json::Value;

fn health(s: &Server, query: &str) -> (u16, Value) {
    s.api("GET", &format!("sys/health{query}"), None, None)
}

/// HEAD over a raw socket: the status code, and whatever came after the headers.
fn head_health(s: &Server) -> (u16, Vec<u8>) {
    let raw = raw_http(
        s.port,
        "HEAD /v1/sys/health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
    );
    let text = String::from_utf8_lossy(&raw);
    let code = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text:?}"));
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no end of headers in {text:?}"));
    (code, raw[end + 4..].to_vec())
}

#[test]
fn health_codes_follow_the_seal_state_and_honour_overrides() {
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port();
    let s = Server::start(tmp.path(), port, &plain_config(port, ""));

    // Uninitialized: 501, or what uninitcode says.
    let (code, v) = health(&s, "");
    assert_eq!(code, 501, "{v}");
    assert_eq!(
        (&v["initialized"], &v["sealed"], &v["standby"]),
        (&Value::Bool(false), &Value::Bool(true), &Value::Bool(true)),
        "a sealed node reports itself a standby, as Vault: {v}"
    );
    assert_eq!(v["replication_dr_mode"], "unknown", "{v}");
    assert_eq!(health(&s, "?uninitcode=299").0, 299);
    assert_eq!(head_health(&s), (501, Vec::new()), "HEAD: code and no body");

    // Sealed: 503, or sealedcode; standbyok does not make a sealed node healthy.
    let init = s.init(1, 1);
    let (code, v) = health(&s, "");
    assert_eq!(code, 503, "{v}");
    assert_eq!(
        (&v["initialized"], &v["sealed"], &v["standby"]),
        (&Value::Bool(true), &Value::Bool(true), &Value::Bool(true)),
        "{v}"
    );
    assert_eq!(health(&s, "?sealedcode=299").0, 299);
    assert_eq!(
        health(&s, "?uninitcode=299").0,
        503,
        "uninitcode must not apply once initialized"
    );
    assert_eq!(health(&s, "?standbyok=true").0, 503);
    assert_eq!(head_health(&s), (503, Vec::new()));

    // Active: 200; standbyok and the sealed/uninit overrides leave it at 200.
    s.unseal(&[strings(&init["keys"])[0].as_str()]);
    let (code, v) = health(&s, "");
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["initialized"], true);
    assert_eq!(v["sealed"], false);
    assert_eq!(v["standby"], false);
    assert!(v["version"].as_str().is_some_and(|x| !x.is_empty()), "{v}");
    assert!(
        v["cluster_id"].as_str().is_some_and(|x| !x.is_empty()),
        "{v}"
    );
    assert!(
        v["server_time_utc"]
            .as_u64()
            .is_some_and(|t| t > 1_600_000_000),
        "{v}"
    );
    assert_eq!(health(&s, "?standbyok=true").0, 200);
    assert_eq!(health(&s, "?sealedcode=299&uninitcode=299").0, 200);
    assert_eq!(health(&s, "?activecode=299").0, 299);
    assert_eq!(head_health(&s), (200, Vec::new()));
    // A nonsense override is a 400, not a silent default.
    let (code, v) = health(&s, "?sealedcode=abc");
    assert_eq!(code, 400, "{v}");

    // sys/leader on a single node without HA.
    let (code, v) = s.api("GET", "sys/leader", None, None);
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["ha_enabled"], false, "{v}");
    assert_eq!(v["is_self"], false, "{v}");
    assert_eq!(v["leader_address"], "", "{v}");
    assert_eq!(v["leader_cluster_address"], "", "{v}");
    assert_eq!(v["performance_standby"], false, "{v}");
    assert!(v["active_time"].is_string(), "{v}");
}

#[test]
fn dev_mode_starts_unsealed_with_the_chosen_root_token_and_kv_v2_at_secret() {
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port();
    let s = Server::start_dev(tmp.path(), port);

    let (code, v) = health(&s, "");
    assert_eq!(code, 200, "a dev server is active at once: {v}");
    assert!(s.log().contains("Root Token: root"), "{}", s.log());

    let me = s
        .bao_as("root", &["token", "lookup", "-format=json"])
        .expect(0, "token lookup")
        .json();
    assert_eq!(me["data"]["policies"], serde_json::json!(["root"]), "{me}");
    // Like Vault, the dev server logs the CLI in through ~/.vault-token.
    s.bao(&["token", "lookup"])
        .expect(0, "token from ~/.vault-token");

    let o = s
        .bao_as("root", &["secrets", "list", "-format=json"])
        .expect(0, "secrets list");
    let mounts = o.json();
    assert_eq!(mounts["secret/"]["type"], "kv", "{mounts}");
    assert_eq!(mounts["secret/"]["options"]["version"], "2", "{mounts}");

    s.bao_as("root", &["kv", "put", "secret/x", "a=1"])
        .expect(0, "kv put");
    s.bao_as("root", &["kv", "put", "secret/x", "a=2"])
        .expect(0, "kv put v2");
    let got = s
        .bao_as("root", &["kv", "get", "-format=json", "secret/x"])
        .expect(0, "kv get")
        .json();
    assert_eq!(got["data"]["data"]["a"], "2", "{got}");
    assert_eq!(
        got["data"]["metadata"]["version"], 2,
        "KV v2 keeps versions: {got}"
    );
    let old = s
        .bao_as(
            "root",
            &["kv", "get", "-version=1", "-format=json", "secret/x"],
        )
        .expect(0, "kv get -version=1")
        .json();
    assert_eq!(old["data"]["data"]["a"], "1", "{old}");

    // A wrong token is refused.
    let o = s.bao_as("not-root", &["kv", "get", "secret/x"]);
    assert_ne!(o.code, 0, "{o}");
    assert!(o.stderr.contains("permission denied"), "{o}");
}
