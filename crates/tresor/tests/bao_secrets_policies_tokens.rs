//! Issue 4 end to end: the `bao` CLI's kv, secrets, policy, token, read/write/list/delete and
//! path-help commands against `tresor server -dev`, and hvac's KV v2 and token calls.

mod common;

use common::{Server, free_port, run_with_stdin};
use serde_json::Value;

fn dev() -> (tempfile::TempDir, Server) {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start_dev(dir.path(), free_port());
    (dir, s)
}

#[test]
fn kv_v2_with_the_bao_cli() {
    let (_d, s) = dev();
    s.bao_as(
        "root",
        &["kv", "put", "secret/app", "user=alice", "pass=one"],
    )
    .expect(0, "kv put");
    s.bao_as(
        "root",
        &[
            "kv",
            "put",
            "-cas=1",
            "secret/app",
            "user=alice",
            "pass=two",
        ],
    )
    .expect(0, "kv put cas");
    let o = s.bao_as("root", &["kv", "put", "-cas=1", "secret/app", "pass=three"]);
    assert_eq!(o.code, 2, "stale cas must fail\n{o}");
    assert!(o.stderr.contains("check-and-set"), "{o}");
    let v = s
        .bao_as(
            "root",
            &["kv", "get", "-format=json", "-version=1", "secret/app"],
        )
        .expect(0, "get v1")
        .json();
    assert_eq!(v["data"]["data"]["pass"], "one");
    assert_eq!(
        s.bao_as("root", &["kv", "get", "-field=pass", "secret/app"])
            .expect(0, "field")
            .stdout
            .trim(),
        "two"
    );
    s.bao_as("root", &["kv", "patch", "secret/app", "pass=patched"])
        .expect(0, "patch");
    assert_eq!(
        s.bao_as("root", &["kv", "get", "-field=pass", "secret/app"])
            .stdout
            .trim(),
        "patched"
    );
    s.bao_as(
        "root",
        &[
            "kv",
            "metadata",
            "put",
            "-max-versions=5",
            "-custom-metadata=owner=ops",
            "secret/app",
        ],
    )
    .expect(0, "metadata put");
    let m = s
        .bao_as(
            "root",
            &["kv", "metadata", "get", "-format=json", "secret/app"],
        )
        .expect(0, "metadata get")
        .json();
    assert_eq!(m["data"]["max_versions"], 5);
    assert_eq!(m["data"]["custom_metadata"]["owner"], "ops");
    assert_eq!(m["data"]["current_version"], 3);
    s.bao_as("root", &["kv", "delete", "secret/app"])
        .expect(0, "delete");
    let o = s.bao_as("root", &["kv", "get", "-format=json", "secret/app"]);
    assert!(o.stdout.contains("deletion_time") || o.code != 0, "{o}");
    s.bao_as("root", &["kv", "undelete", "-versions=3", "secret/app"])
        .expect(0, "undelete");
    assert_eq!(
        s.bao_as("root", &["kv", "get", "-field=pass", "secret/app"])
            .stdout
            .trim(),
        "patched"
    );
    s.bao_as("root", &["kv", "destroy", "-versions=1", "secret/app"])
        .expect(0, "destroy");
    let v = s
        .bao_as(
            "root",
            &["kv", "metadata", "get", "-format=json", "secret/app"],
        )
        .json();
    assert_eq!(v["data"]["versions"]["1"]["destroyed"], true);
    s.bao_as("root", &["kv", "rollback", "-version=2", "secret/app"])
        .expect(0, "rollback");
    assert_eq!(
        s.bao_as("root", &["kv", "get", "-field=pass", "secret/app"])
            .stdout
            .trim(),
        "two"
    );
    s.bao_as("root", &["kv", "put", "secret/dir/x", "a=1"])
        .expect(0, "put nested");
    let l = s
        .bao_as("root", &["kv", "list", "-format=json", "secret/"])
        .expect(0, "list")
        .json();
    assert_eq!(l, serde_json::json!(["app", "dir/"]));
    s.bao_as("root", &["kv", "metadata", "delete", "secret/app"])
        .expect(0, "metadata delete");
    assert_eq!(s.bao_as("root", &["kv", "get", "secret/app"]).code, 2);
}

#[test]
fn secrets_engines_read_write_list_delete_and_path_help() {
    let (_d, s) = dev();
    s.bao_as(
        "root",
        &[
            "secrets",
            "enable",
            "-path=etcd/c1/kv",
            "-description=cluster kv",
            "kv",
        ],
    )
    .expect(0, "enable nested kv v1");
    s.bao_as("root", &["write", "etcd/c1/kv/member", "ip=10.0.0.5"])
        .expect(0, "write");
    assert_eq!(
        s.bao_as("root", &["read", "-field=ip", "etcd/c1/kv/member"])
            .stdout
            .trim(),
        "10.0.0.5"
    );
    let l = s
        .bao_as("root", &["list", "-format=json", "etcd/c1/kv"])
        .expect(0, "list")
        .json();
    assert_eq!(l, serde_json::json!(["member"]));
    s.bao_as("root", &["delete", "etcd/c1/kv/member"])
        .expect(0, "delete");
    assert_eq!(s.bao_as("root", &["read", "etcd/c1/kv/member"]).code, 2);
    s.bao_as(
        "root",
        &[
            "secrets",
            "tune",
            "-max-lease-ttl=730h",
            "-default-lease-ttl=1h",
            "etcd/c1/kv",
        ],
    )
    .expect(0, "tune");
    let t = s
        .bao_as(
            "root",
            &["read", "-format=json", "sys/mounts/etcd/c1/kv/tune"],
        )
        .expect(0, "read tune")
        .json();
    assert_eq!(t["data"]["max_lease_ttl"], 730 * 3600);
    assert_eq!(t["data"]["default_lease_ttl"], 3600);
    let list = s
        .bao_as("root", &["secrets", "list", "-format=json"])
        .expect(0, "list mounts")
        .json();
    assert_eq!(list["etcd/c1/kv/"]["description"], "cluster kv");
    assert_eq!(list["secret/"]["options"]["version"], "2");
    s.bao_as("root", &["secrets", "move", "etcd/c1/kv", "etcd/c2/kv"])
        .expect(0, "move");
    s.bao_as("root", &["write", "etcd/c2/kv/x", "a=b"])
        .expect(0, "write after move");
    s.bao_as("root", &["secrets", "disable", "etcd/c2/kv"])
        .expect(0, "disable");
    let list = s
        .bao_as("root", &["secrets", "list", "-format=json"])
        .json();
    assert!(list.get("etcd/c2/kv/").is_none());
    // Unknown paths and types are Vault-shaped errors.
    let (code, v) = s.api("GET", "nowhere/x", None, Some("root"));
    assert_eq!(code, 404);
    assert_eq!(
        v["errors"][0],
        "no handler for route \"nowhere/x\". route entry not found."
    );
    let o = s.bao_as("root", &["secrets", "enable", "nosuchengine"]);
    assert_eq!(o.code, 2);
    let help = s
        .bao_as("root", &["path-help", "secret/data/foo"])
        .expect(0, "path-help");
    assert!(help.stdout.contains("DESCRIPTION"), "{help}");
    let help = s
        .bao_as("root", &["path-help", "auth/token/create"])
        .expect(0, "path-help token");
    assert!(help.stdout.contains("policies"), "{help}");
}

#[test]
fn policies_and_tokens_with_the_bao_cli() {
    let (d, s) = dev();
    let pol = d.path().join("app.hcl");
    std::fs::write(&pol, "path \"secret/data/app/*\" {\n  capabilities = [\"read\", \"list\"]\n}\npath \"secret/metadata/app/*\" {\n  capabilities = [\"list\"]\n}\n").unwrap();
    s.bao_as("root", &["policy", "write", "app", pol.to_str().unwrap()])
        .expect(0, "policy write");
    let list = s
        .bao_as("root", &["policy", "list", "-format=json"])
        .expect(0, "policy list")
        .json();
    assert_eq!(list, serde_json::json!(["app", "default", "root"]));
    let r = s
        .bao_as("root", &["policy", "read", "app"])
        .expect(0, "policy read");
    assert!(r.stdout.contains("secret/data/app/*"));
    // A bad policy is a 400 naming the problem and nothing is stored.
    let bad = d.path().join("bad.hcl");
    std::fs::write(&bad, "path \"x\" {\n  capabilities = [\"reed\"]\n}\n").unwrap();
    let o = s.bao_as("root", &["policy", "write", "bad", bad.to_str().unwrap()]);
    assert_eq!(o.code, 2);
    assert!(o.stderr.contains("reed") && o.stderr.contains("400"), "{o}");
    assert_eq!(s.bao_as("root", &["policy", "read", "bad"]).code, 2);

    s.bao_as("root", &["kv", "put", "secret/app/db", "pw=s3"])
        .expect(0, "seed");
    let tok = s
        .bao_as(
            "root",
            &["token", "create", "-policy=app", "-ttl=1h", "-format=json"],
        )
        .expect(0, "token create")
        .json();
    let t = tok["auth"]["client_token"].as_str().unwrap().to_owned();
    assert_eq!(
        tok["auth"]["policies"],
        serde_json::json!(["app", "default"])
    );
    assert_eq!(
        s.bao_as(&t, &["kv", "get", "-field=pw", "secret/app/db"])
            .expect(0, "read allowed")
            .stdout
            .trim(),
        "s3"
    );
    let o = s.bao_as(&t, &["kv", "put", "secret/app/db", "pw=evil"]);
    assert_eq!(o.code, 2);
    assert!(o.stderr.contains("403"), "{o}");
    assert_eq!(
        s.bao_as("root", &["kv", "get", "-field=pw", "secret/app/db"])
            .stdout
            .trim(),
        "s3",
        "denied write changed nothing"
    );
    let caps = s
        .bao_as("root", &["token", "capabilities", &t, "secret/data/app/db"])
        .expect(0, "capabilities");
    assert_eq!(caps.stdout.trim(), "list, read");
    let look = s
        .bao_as("root", &["token", "lookup", "-format=json", &t])
        .expect(0, "lookup")
        .json();
    assert!(look["data"]["ttl"].as_i64().unwrap() > 3500);
    s.bao_as(&t, &["token", "renew", "-increment=2h"])
        .expect(0, "renew self");
    let acc = look["data"]["accessor"].as_str().unwrap();
    s.bao_as("root", &["token", "lookup", "-accessor", acc])
        .expect(0, "lookup accessor");
    s.bao_as("root", &["token", "revoke", "-accessor", acc])
        .expect(0, "revoke accessor");
    assert_eq!(
        s.bao_as(&t, &["token", "lookup"]).code,
        2,
        "revoked token no longer works"
    );
    // login with a token writes the token helper file used by later commands.
    let t2 = s
        .bao_as("root", &["token", "create", "-policy=app", "-field=token"])
        .expect(0, "t2")
        .stdout
        .trim()
        .to_owned();
    s.bao(&["login", &t2]).expect(0, "login");
    assert_eq!(
        std::fs::read_to_string(s.home.join(".vault-token"))
            .unwrap()
            .trim(),
        t2
    );
    assert_eq!(
        s.bao(&["kv", "get", "-field=pw", "secret/app/db"])
            .expect(0, "as logged-in")
            .stdout
            .trim(),
        "s3"
    );
    s.bao_as("root", &["policy", "delete", "app"])
        .expect(0, "policy delete");
    assert_eq!(
        s.bao(&["kv", "get", "secret/app/db"]).code,
        2,
        "policy gone: denied at once"
    );
}

#[test]
fn hvac_kv_v2_and_tokens() {
    let (_d, s) = dev();
    let script = format!(
        r#"
import hvac, json
c = hvac.Client(url="{addr}", token="root")
assert c.is_authenticated()
c.secrets.kv.v2.create_or_update_secret(path="hv", secret={{"a": "1"}})
c.secrets.kv.v2.create_or_update_secret(path="hv", secret={{"a": "2"}}, cas=1)
r = c.secrets.kv.v2.read_secret_version(path="hv", raise_on_deleted_version=True)
assert r["data"]["data"] == {{"a": "2"}}, r
assert r["data"]["metadata"]["version"] == 2
old = c.secrets.kv.v2.read_secret_version(path="hv", version=1, raise_on_deleted_version=True)
assert old["data"]["data"] == {{"a": "1"}}
keys = c.secrets.kv.v2.list_secrets(path="")["data"]["keys"]
assert keys == ["hv"], keys
c.sys.create_or_update_policy(name="hv", policy='path "secret/data/hv" {{ capabilities = ["read"] }}')
t = c.auth.token.create(policies=["hv"], ttl="1h")["auth"]["client_token"]
c2 = hvac.Client(url="{addr}", token=t)
assert c2.secrets.kv.v2.read_secret_version(path="hv", raise_on_deleted_version=True)["data"]["data"]["a"] == "2"
try:
    c2.secrets.kv.v2.create_or_update_secret(path="hv", secret={{"a": "x"}})
    raise SystemExit("write should be forbidden")
except hvac.exceptions.Forbidden:
    pass
look = c.auth.token.lookup(t)["data"]
assert look["policies"] == ["default", "hv"], look
c.auth.token.revoke(t)
assert not c2.is_authenticated()
mounts = c.sys.list_mounted_secrets_engines()["data"]
assert mounts["secret/"]["options"]["version"] == "2"
print("ok")
"#,
        addr = s.addr
    );
    let o = run_with_stdin(
        std::process::Command::new("python3").arg("-"),
        Some(script.as_bytes()),
    );
    assert_eq!(o.code, 0, "hvac script failed\n{o}");
    assert_eq!(o.stdout.trim(), "ok");
    let _: Option<Value> = None;
}
