//! End to end with node-vault, the Node.js client: status, health, KV v2, policies, tokens
//! (a denied write is a 403), mounts, list and revocation, against `tresor server -dev`.
//! `.ci/run` installs node-vault into `.ci/node/node_modules`.

mod common;

use common::{Server, free_port, run};

#[test]
fn node_vault_drives_kv_policies_tokens_and_mounts() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let modules = root.join(".ci/node/node_modules");
    assert!(
        modules.join("node-vault/package.json").exists(),
        "node-vault is not installed: run .ci/run (it installs it into .ci/node)"
    );
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start_dev(dir.path(), free_port());
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/node_vault.js");
    let o = run(std::process::Command::new("node")
        .arg(&script)
        .env("VAULT_ADDR", &s.addr)
        .env("NODE_PATH", &modules));
    assert_eq!(o.code, 0, "node-vault script failed\n{o}");
    assert_eq!(o.stdout.trim(), "ok", "{o}");
}
