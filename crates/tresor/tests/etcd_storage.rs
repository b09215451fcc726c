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
