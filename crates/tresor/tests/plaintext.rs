//! End to end: nothing secret is stored in plaintext. A known secret value is written through
//! the API and the raw bytes of the embedded store (`data/tresor.redb`, and anything else in
//! `data/`) are searched for it and for the root token. As a control, the search must find the
//! seal configuration, which is stored unencrypted on purpose (it holds no secret).

mod common;

use std::path::Path;

use common::{Server, free_port, plain_config, strings};

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// Every file under `dir`, concatenated.
fn all_bytes(dir: &Path) -> Vec<u8> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).expect("data dir") {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(all_bytes(&p));
        } else {
            out.extend(std::fs::read(&p).expect("read store file"));
        }
    }
    out
}

#[test]
fn the_store_holds_no_plaintext_secret_or_token() {
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut s = Server::start(tmp.path(), port, &plain_config(port, ""));
    let init = s.init(1, 1);
    let key = strings(&init["keys"]).remove(0);
    let root = init["root_token"].as_str().unwrap().to_owned();
    s.unseal(&[&key]);

    let (code, v) = s.api(
        "POST",
        "sys/mounts/secret",
        Some(r#"{"type":"kv","options":{"version":"2"}}"#),
        Some(&root),
    );
    assert_eq!(code, 204, "mount kv v2: {v}");
    let canary = format!(
        "tresor-canary-{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    );
    let body = serde_json::json!({"data": {"password": canary}}).to_string();
    let (code, v) = s.api("PUT", "secret/data/app/db", Some(&body), Some(&root));
    assert_eq!(code, 200, "kv put: {v}");
    let (code, v) = s.api("GET", "secret/data/app/db", None, Some(&root));
    assert_eq!(
        (code, &v["data"]["data"]["password"]),
        (200, &serde_json::json!(canary))
    );

    // Acknowledged writes are on disk; stop the server so nothing is held back in memory.
    s.kill9();
    let file = tmp.path().join("data").join("tresor.redb");
    let raw = std::fs::read(&file).expect("data/tresor.redb exists");
    assert!(raw.len() > 4096, "store file is suspiciously small");
    let everything = all_bytes(&tmp.path().join("data"));

    // Control: plaintext that is meant to be there is found by this search.
    assert!(
        contains(&raw, b"secret_threshold"),
        "control: seal config not found"
    );

    let key_bytes = hex::decode(&key).expect("hex key");
    for (what, needle) in [
        ("the secret value", canary.as_bytes()),
        ("the unseal key (raw)", &key_bytes[..]),
        ("the root token", root.as_bytes()),
        (
            "the root token id",
            root.trim_start_matches("hvs.").as_bytes(),
        ),
        ("the unseal key (hex)", key.as_bytes()),
    ] {
        assert!(
            !contains(&everything, needle),
            "{what} is stored in plaintext"
        );
    }
}
