//! End to end: `tresor server -config=FILE` with a bad value exits non-zero with a message
//! naming the key; so does a stanza naming a feature Tresor lacks (auto-unseal, HA, raft
//! clustering, a telemetry push sink, an unknown key: issue 12), while harmless keys only warn and the
//! server starts. Vault's HCL 1 one-line forms are read. JSON configs are chosen by the
//! `.json` extension.

mod common;

use std::path::Path;
use std::time::Duration;

use common::{Server, clean_command, free_port, run_for};

/// Runs `tresor server -config=FILE` on a config that must be refused.
fn refused(dir: &Path, file: &str, text: &str) -> common::Out {
    std::fs::write(dir.join(file), text).unwrap();
    let o = run_for(
        clean_command(env!("CARGO_BIN_EXE_tresor"))
            .args(["server", &format!("-config={file}")])
            .current_dir(dir)
            .env("HOME", dir),
        None,
        Duration::from_secs(10),
    );
    assert_ne!(o.code, 0, "a bad config must stop the server\n{text}\n{o}");
    o
}

#[test]
fn bad_values_stop_the_server_with_a_message_naming_the_key() {
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port();
    let listener = format!(
        "listener \"tcp\" {{\n  address = \"127.0.0.1:{port}\"\n  tls_disable = true\n}}\n"
    );
    // disable_mlock everywhere, so no case fails for the wrong reason (mlock in a container).
    let storage = "disable_mlock = true\nstorage \"embedded\" {\n  path = \"data\"\n}\n";
    let cases: Vec<(String, &str)> = vec![
        (
            format!(
                "{storage}listener \"tcp\" {{\n  address = \"127.0.0.1:{port}\"\n  tls_disable = \"maybe\"\n}}\n"
            ),
            "tls_disable",
        ),
        (
            format!("{storage}{listener}max_lease_ttl = \"soon\"\n"),
            "max_lease_ttl",
        ),
        (
            format!("{storage}{listener}default_lease_ttl = \"-\"\n"),
            "default_lease_ttl",
        ),
        (
            format!("{storage}{listener}log_level = \"loud\"\n"),
            "log_level",
        ),
        (
            format!("storage \"inmem\" {{}}\n{listener}disable_mlock = \"perhaps\"\n"),
            "disable_mlock",
        ),
        (
            format!("{storage}{listener}max_request_size = \"big\"\n"),
            "max_request_size",
        ),
        (
            format!("disable_mlock = true\nstorage \"embedded\" {{}}\n{listener}"),
            "path",
        ),
        (
            format!("disable_mlock = true\nstorage \"consul\" {{\n  path = \"x\"\n}}\n{listener}"),
            "consul",
        ),
        (
            format!("{storage}listener \"tcp\" {{\n  address = \"127.0.0.1:{port}\"\n}}\n"),
            "tls_cert_file",
        ),
        (
            format!(
                "{storage}listener \"tcp\" {{\n  address = \"127.0.0.1:{port}\"\n  tls_disable = true\n  tls_min_version = \"ssl3\"\n}}\n"
            ),
            "tls_min_version",
        ),
    ];
    for (text, key) in &cases {
        let o = refused(tmp.path(), "bad.hcl", text);
        assert!(
            o.stderr.contains(key),
            "the error must name {key:?}\n{text}\n{o}"
        );
    }

    // The same in JSON.
    let json = format!(
        r#"{{"storage": {{"embedded": {{"path": "data"}}}}, "listener": {{"tcp": {{"address": "127.0.0.1:{port}", "tls_disable": true}}}}, "disable_mlock": true, "ui": "sometimes"}}"#
    );
    let o = refused(tmp.path(), "bad.json", &json);
    assert!(o.stderr.contains("ui"), "{o}");

    // A missing file names the file.
    let o = run_for(
        clean_command(env!("CARGO_BIN_EXE_tresor"))
            .args(["server", "-config=does-not-exist.hcl"])
            .current_dir(tmp.path()),
        None,
        Duration::from_secs(10),
    );
    assert_ne!(o.code, 0, "{o}");
    assert!(o.stderr.contains("does-not-exist.hcl"), "{o}");

    // None of these left a server behind on the port.
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());
}

/// Issue 12: a stanza Tresor cannot honour stops the server with a message naming it; before,
/// each only logged a warning and the server started with a Shamir seal on one node.
#[test]
fn stanzas_tresor_cannot_honour_stop_the_server() {
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port();
    let base = format!(
        "disable_mlock = true\nstorage \"embedded\" {{\n  path = \"data\"\n}}\nlistener \"tcp\" {{\n  address = \"127.0.0.1:{port}\"\n  tls_disable = true\n}}\n"
    );
    let cases = [
        (
            format!(
                "{base}seal \"awskms\" {{\n  region = \"us-east-1\"\n  kms_key_id = \"alias/vault\"\n}}\n"
            ),
            "seal \"awskms\": not supported",
        ),
        (
            format!("{base}ha_storage \"consul\" {{\n  address = \"127.0.0.1:8500\"\n}}\n"),
            "ha_storage \"consul\": not supported",
        ),
        (
            format!("{base}telemetry {{\n  statsite_address = \"127.0.0.1:8125\"\n}}\n"),
            // Issue 20: the stanza is honoured; a push sink is refused by name.
            "telemetry.statsite_address: not supported",
        ),
        (
            format!("{base}something_new = 42\n"),
            "something_new: not supported",
        ),
        (
            format!(
                "disable_mlock = true\nstorage \"raft\" {{\n  path = \"data\"\n  node_id = \"n1\"\n  retry_join {{\n    leader_api_addr = \"http://10.0.0.2:8200\"\n  }}\n}}\nlistener \"tcp\" {{\n  address = \"127.0.0.1:{port}\"\n  tls_disable = true\n}}\n"
            ),
            "storage.raft.retry_join: not supported",
        ),
    ];
    for (text, want) in &cases {
        let o = refused(tmp.path(), "refused.hcl", text);
        assert!(o.stderr.contains(want), "wanted {want:?}\n{text}\n{o}");
        assert!(o.stderr.contains("remove it to start"), "{o}");
    }
    // The same in JSON.
    let json = format!(
        r#"{{"storage": {{"embedded": {{"path": "data"}}}}, "listener": {{"tcp": {{"address": "127.0.0.1:{port}", "tls_disable": true}}}}, "disable_mlock": true, "seal": {{"transit": {{"address": "https://v:8200"}}}}}}"#
    );
    let o = refused(tmp.path(), "refused.json", &json);
    assert!(o.stderr.contains("seal \"transit\": not supported"), "{o}");
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());
}

/// Harmless keys warn and the server starts; a single-node raft stanza is served by the
/// embedded store; one-line blocks (HCL 1) are read; `pid_file` is written.
#[test]
fn harmless_keys_warn_and_json_configs_work() {
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port();
    let text = format!(
        r#"storage "raft" {{
  path    = "data"
  node_id = "node-1"
}}

listener "tcp" {{ address = "127.0.0.1:{port}" tls_disable = true proxy_protocol_behavior = "allow_any" }}

seal "shamir" {{}}

ui                = true
plugin_directory  = "/usr/lib/vault/plugins"
disable_mlock     = true
pid_file          = "tresor.pid"
api_addr          = "http://127.0.0.1:{port}"
default_lease_ttl = "1h"
max_lease_ttl     = "768h"
"#
    );
    let s = Server::start(tmp.path(), port, &text);
    let (code, v) = s.api("GET", "sys/health", None, None);
    assert_eq!(code, 501, "{v}");
    let log = s.log();
    // `ui` is honoured now (the web UI), so it is not warned about.
    for key in ["plugin_directory", "proxy_protocol_behavior", "node_id"] {
        assert!(log.contains(key), "no warning naming {key:?}:\n{log}");
    }
    assert!(
        tmp.path().join("data").join("tresor.redb").exists(),
        "storage \"raft\" with a path is the embedded store"
    );
    let pid = std::fs::read_to_string(tmp.path().join("tresor.pid")).unwrap();
    assert_eq!(pid.trim(), s.pid().to_string());
    drop(s);

    // A .json config is read as JSON.
    let port = free_port();
    let dir = tmp.path().join("json");
    std::fs::create_dir_all(&dir).unwrap();
    let json = format!(
        r#"{{"storage": {{"embedded": {{"path": "data"}}}}, "listener": [{{"tcp": {{"address": "127.0.0.1:{port}", "tls_disable": true}}}}], "disable_mlock": true}}"#
    );
    let s = Server::start_named(&dir, port, "config.json", &json, None);
    let (code, v) = s.api("GET", "sys/health", None, None);
    assert_eq!(code, 501, "{v}");
    assert!(
        dir.join("data").join("tresor.redb").exists(),
        "relative path resolves against the working directory"
    );
}
