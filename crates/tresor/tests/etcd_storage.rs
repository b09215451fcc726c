//! End to end: `tresor server` on `storage "etcd"` (a real 3-member etcd cluster on
//! 127.0.0.1): init, unseal, KV writes and reads; a second server started on the same etcd
//! after the first is killed finds everything, sealed, and unseals with the same key
//! (issue 17).

mod common;

use common::{Server, free_port};
use tresor_physical::testing::EtcdCluster;

fn config(port: u16, address: &str) -> String {
    format!(
        "storage \"etcd\" {{\n  address = \"{address}\"\n  path = \"/tresor-e2e/\"\n  request_timeout = \"5s\"\n}}\n\nlistener \"tcp\" {{\n  address = \"127.0.0.1:{port}\"\n  tls_disable = true\n}}\n\ndisable_mlock = true\n"
    )
}

#[test]
fn a_server_on_etcd_keeps_its_data_across_servers() {
    let etcd = EtcdCluster::start(3).expect("etcd cluster");
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut s = Server::start(tmp.path(), port, &config(port, &etcd.address()));
    let status = s.seal_status();
    assert_eq!(status["storage_type"], "etcd", "{status}");
    assert_eq!(status["initialized"], false);
    let init = s.init(1, 1);
    let key = init["keys_base64"][0].as_str().unwrap().to_owned();
    let root = init["root_token"].as_str().unwrap().to_owned();
    s.unseal(&[&key]);
    let (code, v) = s.api(
        "POST",
        "sys/mounts/secret",
        Some(r#"{"type":"kv","options":{"version":"2"}}"#),
        Some(&root),
    );
    assert!(code == 204 || code == 200, "mount: {code} {v}");
    let big = "x".repeat(2 * 1024 * 1024);
    let (code, v) = s.api(
        "PUT",
        "secret/data/app/big",
        Some(&format!(r#"{{"data":{{"v":"{big}"}}}}"#)),
        Some(&root),
    );
    assert_eq!(code, 200, "large write: {v}");
    let (code, v) = s.api(
        "PUT",
        "secret/data/app/db",
        Some(r#"{"data":{"password":"s3cr3t"}}"#),
        Some(&root),
    );
    assert_eq!(code, 200, "write: {v}");
    // Nothing readable in etcd: values are ciphertext.
    let dump = etcd
        .etcdctl(&["get", "--prefix", "/tresor-e2e/"])
        .expect("etcdctl get");
    assert!(
        dump.contains("/tresor-e2e/core/"),
        "Tresor's keys are in etcd"
    );
    assert!(!dump.contains("s3cr3t"), "a secret in clear in etcd");
    s.kill9();
    drop(s);

    let tmp2 = tempfile::tempdir().unwrap();
    let port2 = free_port();
    let s2 = Server::start(tmp2.path(), port2, &config(port2, &etcd.address()));
    let status = s2.seal_status();
    assert_eq!(status["initialized"], true, "{status}");
    assert_eq!(status["sealed"], true);
    s2.unseal(&[&key]);
    let (code, v) = s2.api("GET", "secret/data/app/db", None, Some(&root));
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["data"]["data"]["password"], "s3cr3t");
    let (code, v) = s2.api("GET", "secret/data/app/big", None, Some(&root));
    assert_eq!(code, 200);
    assert_eq!(
        v["data"]["data"]["v"].as_str().map(str::len),
        Some(big.len())
    );
    let (code, v) = s2.api("LIST", "secret/metadata/app", None, Some(&root));
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["data"]["keys"], serde_json::json!(["big", "db"]));
}

/// `tresor operator snapshot save|restore` with the token in the environment.
fn snapshot_cli(s: &Server, token: Option<&str>, args: &[&str]) -> common::Out {
    let mut c = common::clean_command(env!("CARGO_BIN_EXE_tresor"));
    c.args(args)
        .current_dir(&s.dir)
        .env("HOME", &s.home)
        .env("VAULT_ADDR", &s.addr);
    if let Some(t) = token {
        c.env("VAULT_TOKEN", t);
    }
    common::run_for(&mut c, None, std::time::Duration::from_secs(60))
}

/// One snapshot format for both stores (issue 17): a snapshot of a server on etcd restores into
/// an uninitialised server on the embedded store, and one of an embedded server into an
/// uninitialised server on etcd; each then unseals with the original key and serves the same
/// secrets.
#[test]
fn snapshots_move_between_etcd_and_the_embedded_store() {
    let etcd = EtcdCluster::start(3).expect("etcd cluster");
    let plain = |port: u16| common::plain_config(port, "");
    let on_etcd =
        |port: u16, path: &str| config(port, &etcd.address()).replace("/tresor-e2e/", path);
    let mut secrets = Vec::new();
    for (from_etcd, value) in [(true, "from-etcd"), (false, "from-embedded")] {
        let (tmp_a, tmp_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let (port_a, port_b) = (free_port(), free_port());
        let (cfg_a, cfg_b) = if from_etcd {
            (on_etcd(port_a, "/snap-src/"), plain(port_b))
        } else {
            (plain(port_a), on_etcd(port_b, "/snap-dst/"))
        };
        let a = Server::start(tmp_a.path(), port_a, &cfg_a);
        let init = a.init(1, 1);
        let key = init["keys_base64"][0].as_str().unwrap().to_owned();
        let root = init["root_token"].as_str().unwrap().to_owned();
        a.unseal(&[&key]);
        let (code, v) = a.api(
            "POST",
            "sys/mounts/secret",
            Some(r#"{"type":"kv","options":{"version":"2"}}"#),
            Some(&root),
        );
        assert!(code == 204 || code == 200, "mount: {code} {v}");
        let (code, v) = a.api(
            "PUT",
            "secret/data/app",
            Some(&format!(r#"{{"data":{{"v":"{value}"}}}}"#)),
            Some(&root),
        );
        assert_eq!(code, 200, "{v}");
        snapshot_cli(&a, Some(&root), &["operator", "snapshot", "save", "s.snap"])
            .expect(0, "save");
        let b = Server::start(tmp_b.path(), port_b, &cfg_b);
        assert_eq!(b.seal_status()["initialized"], false);
        std::fs::copy(a.dir.join("s.snap"), b.dir.join("s.snap")).unwrap();
        snapshot_cli(&b, None, &["operator", "snapshot", "restore", "s.snap"])
            .expect(0, "restore into an uninitialised server");
        let status = b.seal_status();
        assert_eq!(
            status["storage_type"],
            if from_etcd { "embedded" } else { "etcd" },
            "{status}"
        );
        b.unseal(&[&key]);
        let (code, v) = b.api("GET", "secret/data/app", None, Some(&root));
        assert_eq!(code, 200, "{v}");
        secrets.push(
            v["data"]["data"]["v"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        );
    }
    assert_eq!(secrets, ["from-etcd", "from-embedded"]);
}
