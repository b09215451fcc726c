//! Whole-command tests: each runs the CLI in-process against the scripted mock server and
//! checks what went over the wire (method, path, headers, body), what was printed and the
//! exit code.

use serde_json::{Value, json};

use crate::testserver::{MockServer, Outcome, Recorded, run_cli};

fn envelope(data: Value) -> String {
    json!({
        "request_id": "req-1", "lease_id": "", "renewable": false, "lease_duration": 0,
        "data": data, "wrap_info": null, "warnings": null, "auth": null, "mount_type": ""
    })
    .to_string()
}

fn errors(msgs: &[&str]) -> String {
    json!({ "errors": msgs }).to_string()
}

struct Fixture {
    server: MockServer,
    home: tempfile::TempDir,
}

impl Fixture {
    fn new(routes: impl Fn(&Recorded) -> (u16, String) + Send + Sync + 'static) -> Fixture {
        Fixture {
            server: MockServer::start(routes),
            home: tempfile::tempdir().expect("tempdir"),
        }
    }

    fn run(&self, args: &[&str]) -> Outcome {
        self.run_with(&[("VAULT_TOKEN", "root")], args, "")
    }

    fn run_with(&self, vars: &[(&str, &str)], args: &[&str], stdin: &str) -> Outcome {
        run_cli(&self.server.url(), self.home.path(), vars, args, stdin)
    }

    fn requests(&self) -> Vec<Recorded> {
        self.server.requests()
    }

    fn only_request(&self) -> Recorded {
        let r = self.requests();
        assert_eq!(r.len(), 1, "expected one request, got {r:#?}");
        r.into_iter().next().unwrap()
    }
}

/// Preflight answers for a KV v2 mount at `secret/` and a KV v1 mount at `kv1/`.
fn kv_preflight(r: &Recorded) -> Option<(u16, String)> {
    let rest = r.target.strip_prefix("/v1/sys/internal/ui/mounts/")?;
    if rest.starts_with("secret") {
        return Some((
            200,
            envelope(json!({"path": "secret/", "type": "kv", "options": {"version": "2"}})),
        ));
    }
    if rest.starts_with("kv1") {
        return Some((
            200,
            envelope(json!({"path": "kv1/", "type": "kv", "options": {"version": "1"}})),
        ));
    }
    Some((403, errors(&["preflight capability check returned 403"])))
}

#[test]
fn read_prints_vault_table_and_sends_standard_headers() {
    let f = Fixture::new(|r| {
        match (r.method.as_str(), r.target.as_str()) {
        ("GET", "/v1/secret/foo") => (
            200,
            json!({"request_id": "r", "lease_id": "", "renewable": false, "lease_duration": 2764800,
                   "data": {"foo": "bar", "n": 1}, "warnings": null}).to_string(),
        ),
        _ => (404, errors(&[])),
    }
    });
    let out = f.run(&["read", "secret/foo"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(
        out.stdout,
        "Key                 Value\n---                 -----\nrefresh_interval    768h\nfoo                 bar\nn                   1\n"
    );
    let req = f.only_request();
    assert_eq!(req.header("x-vault-request"), Some("true"));
    assert_eq!(req.header("x-vault-token"), Some("root"));
    assert_eq!(req.header("x-vault-namespace"), None);
}

#[test]
fn read_field_json_yaml_and_query() {
    let f = Fixture::new(|r| {
        if r.target.starts_with("/v1/secret/foo") {
            (200, envelope(json!({"foo": "bar", "list": ["a", "b"]})))
        } else {
            (404, errors(&[]))
        }
    });
    let out = f.run(&["read", "-field=foo", "secret/foo"]);
    assert_eq!(
        (out.code, out.stdout.as_str()),
        (0, "bar"),
        "no newline when piped"
    );
    let out = f.run(&["read", "--field", "list", "secret/foo"]);
    assert_eq!(out.stdout, "[a b]");
    let out = f.run(&["read", "-field=nope", "secret/foo"]);
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("Field \"nope\" not present in secret"));

    let out = f.run(&["read", "-format=json", "secret/foo"]);
    let v: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v["data"], json!({"foo": "bar", "list": ["a", "b"]}));
    assert!(out.stdout.starts_with(
        "{\n  \"request_id\": \"req-1\",\n  \"lease_id\": \"\",\n  \"lease_duration\": 0,"
    ));

    let out = f.run_with(
        &[("VAULT_TOKEN", "root"), ("VAULT_FORMAT", "yaml")],
        &["read", "secret/foo"],
        "",
    );
    assert!(
        out.stdout
            .contains("data:\n  foo: bar\n  list:\n  - a\n  - b\n"),
        "{}",
        out.stdout
    );

    let out = f.run(&["read", "secret/foo", "version=2", "x=a b"]);
    assert_eq!(out.code, 0);
    let last = f.requests().pop().unwrap();
    assert_eq!(last.target, "/v1/secret/foo?version=2&x=a+b");

    let out = f.run(&["read", "-format=raw", "secret/foo"]);
    assert_eq!(
        out.stdout,
        envelope(json!({"foo": "bar", "list": ["a", "b"]}))
    );

    let out = f.run(&["read", "-format=xml", "secret/foo"]);
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("Invalid output format: xml"));
}

#[test]
fn read_errors_exit_2_with_vault_error_text() {
    let f = Fixture::new(|r| match r.target.as_str() {
        "/v1/secret/denied" => (403, errors(&["permission denied"])),
        _ => (404, errors(&[])),
    });
    let out = f.run(&["read", "secret/missing"]);
    assert_eq!(out.code, 2);
    assert_eq!(out.stderr, "No value found at secret/missing\n");
    let out = f.run(&["read", "secret/denied"]);
    assert_eq!(out.code, 2);
    assert_eq!(
        out.stderr,
        format!(
            "Error reading secret/denied: Error making API request.\n\nURL: GET {}/v1/secret/denied\nCode: 403. Errors:\n\n* permission denied\n",
            f.server.url()
        )
    );
    // Usage errors are local: exit 1.
    let out = f.run(&["read"]);
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("Not enough arguments"));
    let out = f.run(&["read", "-bogus", "x"]);
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("flag provided but not defined: -bogus"));
}

#[test]
fn unreachable_server_is_a_remote_error() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let home = tempfile::tempdir().unwrap();
    let addr = format!("http://127.0.0.1:{port}");
    let out = run_cli(&addr, home.path(), &[], &["read", "secret/foo"], "");
    assert_eq!(out.code, 2);
    assert!(
        out.stderr.starts_with(&format!(
            "Error reading secret/foo: Get \"{addr}/v1/secret/foo\": "
        )),
        "{}",
        out.stderr
    );
}

#[test]
fn write_sends_data_from_args_files_and_stdin() {
    let f = Fixture::new(|r| match r.target.as_str() {
        "/v1/secret/foo" => (204, String::new()),
        "/v1/auth/token/roles/x" => (200, envelope(json!({"warning_free": true}))),
        _ => (404, errors(&[])),
    });
    let file = f.home.path().join("cert.pem");
    std::fs::write(&file, "PEM\n").unwrap();
    let cert_arg = format!("cert=@{}", file.display());
    let out = f.run_with(
        &[("VAULT_TOKEN", "root")],
        &["write", "secret/foo", "a=1", "a=2", &cert_arg, "pw=-"],
        "hunter2",
    );
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(out.stdout, "Success! Data written to: secret/foo\n");
    let req = f.only_request();
    assert_eq!(req.method, "PUT");
    assert_eq!(req.header("content-type"), Some("application/json"));
    assert_eq!(
        req.json(),
        json!({"a": ["1", "2"], "cert": "PEM\n", "pw": "hunter2"})
    );

    let out = f.run(&["write", "secret/foo"]);
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("Must supply data or use -force"));
    let out = f.run(&["write", "-force", "secret/foo"]);
    assert_eq!(out.code, 0);
    assert_eq!(f.requests().last().unwrap().json(), json!({}));

    // A response body is printed as a table.
    let out = f.run(&["write", "auth/token/roles/x", "a=b"]);
    assert!(
        out.stdout.contains("warning_free    true"),
        "{}",
        out.stdout
    );

    // JSON on stdin with a lone "-".
    let out = f.run_with(
        &[("VAULT_TOKEN", "root")],
        &["write", "secret/foo", "-"],
        r#"{"k": {"nested": 1}}"#,
    );
    assert_eq!(out.code, 0);
    assert_eq!(
        f.requests().last().unwrap().json(),
        json!({"k": {"nested": 1}})
    );
}

#[test]
fn list_delete_patch_and_path_help() {
    let f = Fixture::new(|r| match (r.method.as_str(), r.target.as_str()) {
        ("GET", "/v1/secret/?list=true") => (200, envelope(json!({"keys": ["a", "b/"]}))),
        ("GET", "/v1/empty/?list=true") => (404, errors(&[])),
        ("DELETE", "/v1/secret/foo") => (204, String::new()),
        ("PATCH", "/v1/secret/foo") => (204, String::new()),
        ("GET", "/v1/secret/foo?help=1") => {
            (200, json!({"help": "## DESCRIPTION\n\nKV.\n"}).to_string())
        }
        _ => (
            404,
            errors(&["no handler for route \"x\". route entry not found."]),
        ),
    });
    let out = f.run(&["list", "secret"]);
    assert_eq!((out.code, out.stdout.as_str()), (0, "Keys\n----\na\nb/\n"));
    let out = f.run(&["list", "-format=json", "secret/"]);
    assert_eq!(out.stdout, "[\n  \"a\",\n  \"b/\"\n]\n");
    let out = f.run(&["list", "empty"]);
    assert_eq!(
        (out.code, out.stderr.as_str()),
        (2, "No value found at empty/\n")
    );

    let out = f.run(&["delete", "secret/foo"]);
    assert_eq!(
        out.stdout,
        "Success! Data deleted (if it existed) at: secret/foo\n"
    );

    let out = f.run(&["patch", "secret/foo", "a=b"]);
    assert_eq!(out.code, 0);
    let req = f
        .requests()
        .into_iter()
        .find(|r| r.method == "PATCH")
        .unwrap();
    assert_eq!(
        req.header("content-type"),
        Some("application/merge-patch+json")
    );

    let out = f.run(&["path-help", "secret/foo"]);
    assert_eq!(out.stdout, "## DESCRIPTION\n\nKV.\n");
    let out = f.run(&["path-help", "nowhere"]);
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("does not exist or is not mounted"));
}

#[test]
fn kv_v2_put_get_and_paths() {
    let f = Fixture::new(|r| {
        if let Some(resp) = kv_preflight(r) {
            return resp;
        }
        let meta = json!({"created_time": "2024-01-01T00:00:00Z", "custom_metadata": null,
                          "deletion_time": "", "destroyed": false, "version": 1});
        match (r.method.as_str(), r.target.as_str()) {
            ("PUT", "/v1/secret/data/foo") => (200, envelope(meta)),
            ("GET", "/v1/secret/data/foo") | ("GET", "/v1/secret/data/foo?version=1") => (
                200,
                envelope(json!({"data": {"user": "alice"}, "metadata": meta})),
            ),
            _ => (404, errors(&[])),
        }
    });
    let out = f.run(&["kv", "put", "secret/foo", "user=alice"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(
        out.stdout,
        "\
= Secret Path =
secret/data/foo

======= Metadata =======
Key                Value
---                -----
created_time       2024-01-01T00:00:00Z
custom_metadata    <nil>
deletion_time      n/a
destroyed          false
version            1
"
    );
    let reqs = f.requests();
    assert_eq!(reqs[0].target, "/v1/sys/internal/ui/mounts/secret/foo");
    assert_eq!(
        reqs[1].json(),
        json!({"data": {"user": "alice"}, "options": {}})
    );

    let out = f.run(&["kv", "put", "-mount=secret", "-cas=0", "foo", "user=alice"]);
    assert_eq!(out.code, 0, "{out:?}");
    let reqs = f.requests();
    assert_eq!(reqs[2].target, "/v1/sys/internal/ui/mounts/secret");
    assert_eq!(reqs[3].target, "/v1/secret/data/foo");
    assert_eq!(reqs[3].json()["options"], json!({"cas": 0}));

    let out = f.run(&["kv", "get", "secret/foo"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stdout
            .starts_with("= Secret Path =\nsecret/data/foo\n\n======= Metadata =======\n")
    );
    assert!(
        out.stdout
            .ends_with("\n==== Data ====\nKey     Value\n---     -----\nuser    alice\n"),
        "{}",
        out.stdout
    );

    let out = f.run(&["kv", "get", "-version=1", "-field=user", "secret/foo"]);
    assert_eq!((out.code, out.stdout.as_str()), (0, "alice"));
    assert_eq!(
        f.requests().last().unwrap().target,
        "/v1/secret/data/foo?version=1"
    );

    let out = f.run(&["kv", "get", "-format=json", "secret/foo"]);
    let v: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v["data"]["data"], json!({"user": "alice"}));

    let out = f.run(&["kv", "get", "secret/missing"]);
    assert_eq!(
        (out.code, out.stderr.as_str()),
        (2, "No value found at secret/data/missing\n")
    );

    let out = f.run(&["kv", "get", "denied/x"]);
    assert_eq!(out.code, 2);
    assert!(
        out.stderr
            .contains("preflight capability check returned 403")
    );
}

#[test]
fn kv_v1_and_old_servers_use_paths_as_given() {
    let f = Fixture::new(|r| {
        if r.target.starts_with("/v1/sys/internal/ui/mounts/old") {
            return (404, errors(&[]));
        }
        if let Some(resp) = kv_preflight(r) {
            return resp;
        }
        match (r.method.as_str(), r.target.as_str()) {
            ("GET", "/v1/kv1/foo") | ("GET", "/v1/old/foo") => (
                200,
                json!({"lease_duration": 2764800, "data": {"a": "b"}}).to_string(),
            ),
            ("PUT", "/v1/kv1/foo") => (204, String::new()),
            _ => (404, errors(&[])),
        }
    });
    let out = f.run(&["kv", "get", "kv1/foo"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(
        out.stdout,
        "== Data ==\nKey    Value\n---    -----\na      b\n"
    );
    let out = f.run(&["kv", "put", "-mount=kv1", "foo", "a=b"]);
    assert_eq!(
        (out.code, out.stdout.as_str()),
        (0, "Success! Data written to: kv1/foo\n")
    );
    assert_eq!(f.requests().last().unwrap().json(), json!({"a": "b"}));
    let out = f.run(&["kv", "get", "old/foo"]);
    assert_eq!(out.code, 0, "{out:?}");
    let out = f.run(&["kv", "patch", "kv1/foo", "a=c"]);
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("must be version 2"));
    let out = f.run(&["kv", "undelete", "-versions=1", "kv1/foo"]);
    assert_eq!(out.code, 1);
}

#[test]
fn kv_v2_delete_list_metadata_and_versions() {
    let f = Fixture::new(|r| {
        if let Some(resp) = kv_preflight(r) {
            return resp;
        }
        match (r.method.as_str(), r.target.as_str()) {
            ("DELETE", "/v1/secret/data/foo") => (204, String::new()),
            ("PUT", "/v1/secret/delete/foo")
            | ("PUT", "/v1/secret/undelete/foo")
            | ("PUT", "/v1/secret/destroy/foo") => (204, String::new()),
            ("GET", "/v1/secret/metadata/?list=true")
            | ("GET", "/v1/secret/metadata/dir/?list=true") => {
                (200, envelope(json!({"keys": ["foo", "dir/"]})))
            }
            ("GET", "/v1/secret/metadata/foo") => (
                200,
                envelope(
                    json!({"cas_required": false, "created_time": "t0", "current_version": 2,
                    "custom_metadata": {"owner": "me"}, "delete_version_after": "0s", "max_versions": 0,
                    "oldest_version": 0, "updated_time": "t1",
                    "versions": {"10": {"created_time": "t9", "deletion_time": "", "destroyed": false},
                                 "2": {"created_time": "t1", "deletion_time": "", "destroyed": true}}}),
                ),
            ),
            ("PUT", "/v1/secret/metadata/foo")
            | ("PATCH", "/v1/secret/metadata/foo")
            | ("DELETE", "/v1/secret/metadata/foo") => (204, String::new()),
            _ => (404, errors(&[])),
        }
    });
    let out = f.run(&["kv", "delete", "secret/foo"]);
    assert_eq!(
        out.stdout,
        "Success! Data deleted (if it existed) at: secret/data/foo\n"
    );
    let out = f.run(&[
        "kv",
        "delete",
        "-versions=1,2",
        "-versions",
        "3",
        "secret/foo",
    ]);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(
        f.requests().last().unwrap().json(),
        json!({"versions": ["1", "2", "3"]})
    );
    let out = f.run(&["kv", "undelete", "-versions=2", "secret/foo"]);
    assert_eq!(
        out.stdout,
        "Success! Data written to: secret/undelete/foo\n"
    );
    let out = f.run(&["kv", "destroy", "secret/foo"]);
    assert_eq!(out.code, 1, "versions are required");
    let out = f.run(&["kv", "destroy", "-versions=1", "-mount=secret", "foo"]);
    assert_eq!(out.stdout, "Success! Data written to: secret/destroy/foo\n");

    let out = f.run(&["kv", "list", "secret"]);
    assert_eq!(
        (out.code, out.stdout.as_str()),
        (0, "Keys\n----\nfoo\ndir/\n")
    );
    let out = f.run(&["kv", "list", "-mount=secret", "dir"]);
    assert_eq!(out.code, 0, "{out:?}");
    let out = f.run(&["kv", "list", "secret/nothing"]);
    assert_eq!(out.code, 2);

    let out = f.run(&["kv", "metadata", "get", "secret/foo"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stdout
            .starts_with("== Metadata Path ==\nsecret/metadata/foo\n\n"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("custom_metadata         map[owner:me]\n"),
        "{}",
        out.stdout
    );
    let v2 = out.stdout.find("Version 2 =").expect("version 2 shown");
    let v10 = out.stdout.find("Version 10 =").expect("version 10 shown");
    assert!(v2 < v10, "versions sorted numerically");
    assert!(
        !out.stdout.lines().any(|l| l.starts_with("versions")),
        "versions are not a metadata row"
    );

    let out = f.run(&[
        "kv",
        "metadata",
        "put",
        "-max-versions=3",
        "-custom-metadata=a=b",
        "secret/foo",
    ]);
    assert_eq!(
        out.stdout,
        "Success! Data written to: secret/metadata/foo\n"
    );
    assert_eq!(
        f.requests().last().unwrap().json(),
        json!({"max_versions": 3, "custom_metadata": {"a": "b"}})
    );
    let out = f.run(&[
        "kv",
        "metadata",
        "patch",
        "-remove-custom-metadata=a",
        "secret/foo",
    ]);
    assert_eq!(out.code, 0);
    let last = f.requests().pop().unwrap();
    assert_eq!(last.method, "PATCH");
    assert_eq!(last.json(), json!({"custom_metadata": {"a": null}}));
    let out = f.run(&["kv", "metadata", "delete", "secret/foo"]);
    assert_eq!(
        out.stdout,
        "Success! Data deleted (if it existed) at: secret/metadata/foo\n"
    );
}

#[test]
fn kv_patch_and_rollback() {
    let f = Fixture::new(|r| {
        if let Some(resp) = kv_preflight(r) {
            return resp;
        }
        let meta =
            json!({"created_time": "t", "deletion_time": "", "destroyed": false, "version": 3});
        match (r.method.as_str(), r.target.as_str()) {
            ("PATCH", "/v1/secret/data/foo") | ("PUT", "/v1/secret/data/foo") => {
                (200, envelope(meta))
            }
            ("GET", "/v1/secret/data/foo") => (
                200,
                envelope(json!({"data": {"a": "1", "b": "2"}, "metadata": {"version": 2}})),
            ),
            ("GET", "/v1/secret/data/foo?version=1") => (
                200,
                envelope(json!({"data": {"old": "yes"}, "metadata": {"version": 1}})),
            ),
            ("GET", "/v1/secret/metadata/foo") => (
                200,
                envelope(json!({"current_version": 2, "versions": {
                    "1": {"deletion_time": "", "destroyed": false},
                    "2": {"deletion_time": "2024-01-01T00:00:00Z", "destroyed": false}}})),
            ),
            _ => (404, errors(&[])),
        }
    });
    let out = f.run(&["kv", "patch", "-remove-data=b", "secret/foo", "a=9"]);
    assert_eq!(out.code, 0, "{out:?}");
    let last = f.requests().pop().unwrap();
    assert_eq!(last.method, "PATCH");
    assert_eq!(
        last.header("content-type"),
        Some("application/merge-patch+json")
    );
    assert_eq!(
        last.json(),
        json!({"data": {"a": "9", "b": null}, "options": {}})
    );

    let out = f.run(&["kv", "patch", "-method=rw", "secret/foo", "c=3"]);
    assert_eq!(out.code, 0, "{out:?}");
    let last = f.requests().pop().unwrap();
    assert_eq!(last.method, "PUT");
    assert_eq!(
        last.json(),
        json!({"data": {"a": "1", "b": "2", "c": "3"}, "options": {"cas": 2}})
    );

    let out = f.run(&["kv", "rollback", "-version=1", "secret/foo"]);
    assert_eq!(out.code, 0, "{out:?}");
    let last = f.requests().pop().unwrap();
    assert_eq!(
        last.json(),
        json!({"data": {"old": "yes"}, "options": {"cas": 2}})
    );
    let out = f.run(&["kv", "rollback", "-version=2", "secret/foo"]);
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("has been deleted"));
    let out = f.run(&["kv", "rollback", "secret/foo"]);
    assert_eq!(out.code, 1);
}

#[test]
fn status_exit_codes_and_table() {
    let sealed = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let s2 = sealed.clone();
    let f = Fixture::new(move |r| {
        let is_sealed = s2.load(std::sync::atomic::Ordering::SeqCst);
        match r.target.as_str() {
            "/v1/sys/seal-status" => (
                200,
                json!({"type": "shamir", "initialized": true, "sealed": is_sealed, "t": 1, "n": 1,
                       "progress": 0, "nonce": "", "version": "0.1.0", "build_date": "2024-01-01T00:00:00Z",
                       "migration": false, "recovery_seal": false, "storage_type": "inmem",
                       "cluster_name": if is_sealed { "" } else { "c1" }, "cluster_id": "id1"})
                .to_string(),
            ),
            "/v1/sys/leader" if is_sealed => (503, errors(&["Vault is sealed"])),
            "/v1/sys/leader" => (200, json!({"ha_enabled": false, "is_self": false, "leader_address": ""}).to_string()),
            _ => (404, errors(&[])),
        }
    });
    let out = f.run(&["status"]);
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stdout.contains("Unseal Progress    0/1\n"));
    assert!(!out.stdout.contains("HA Enabled"));
    sealed.store(false, std::sync::atomic::Ordering::SeqCst);
    let out = f.run(&["status"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("Cluster Name    c1\n"));
    assert!(
        out.stdout.ends_with("HA Enabled      false\n"),
        "{}",
        out.stdout
    );
    let out = f.run(&["status", "-format=json"]);
    let v: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v["sealed"], false);
    assert_eq!(v["ha_enabled"], false);
    assert!(
        out.stdout.starts_with(
            "{\n  \"type\": \"shamir\",\n  \"initialized\": true,\n  \"sealed\": false,"
        ),
        "seal status keeps the struct order: {}",
        out.stdout
    );

    let home = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let out = run_cli(
        &format!("http://127.0.0.1:{port}"),
        home.path(),
        &[],
        &["status"],
        "",
    );
    assert_eq!(out.code, 1, "errors are 1 for status");
    assert!(out.stderr.starts_with("Error checking seal status: "));
}

#[test]
fn operator_init_unseal_seal() {
    let f = Fixture::new(|r| {
        match (r.method.as_str(), r.target.as_str()) {
        ("GET", "/v1/sys/init") => (200, json!({"initialized": false}).to_string()),
        ("PUT", "/v1/sys/init") => (
            200,
            json!({"keys": ["abcd"], "keys_base64": ["q80="], "root_token": "hvs.root"}).to_string(),
        ),
        ("PUT", "/v1/sys/unseal") => (
            200,
            json!({"type": "shamir", "initialized": true, "sealed": false, "t": 1, "n": 1, "progress": 0,
                   "version": "0.1.0", "cluster_name": "c", "cluster_id": "i"}).to_string(),
        ),
        ("GET", "/v1/sys/leader") => (200, json!({"ha_enabled": false}).to_string()),
        ("PUT", "/v1/sys/seal") => (204, String::new()),
        _ => (404, errors(&[])),
    }
    });
    let out = f.run(&["operator", "init", "-status"]);
    assert_eq!(out.code, 2);
    let out = f.run(&["operator", "init", "-key-shares=1", "-key-threshold=1"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stdout
            .starts_with("Unseal Key 1: q80=\n\nInitial Root Token: hvs.root\n")
    );
    let init = f.requests().pop().unwrap();
    assert_eq!(init.json()["secret_shares"], 1);
    assert_eq!(init.json()["pgp_keys"], Value::Null);
    let out = f.run(&[
        "operator",
        "init",
        "-format=json",
        "-key-shares=1",
        "-key-threshold=1",
    ]);
    let v: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v["unseal_keys_b64"], json!(["q80="]));
    assert_eq!(v["root_token"], "hvs.root");

    // The key typed at the prompt (stdin), not echoed to stdout.
    let out = f.run_with(&[], &["operator", "unseal"], "q80=\n");
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stderr.contains("Unseal Key (will be hidden): "));
    assert!(!out.stdout.contains("q80="));
    assert!(
        out.stdout.contains("Sealed          false\n"),
        "{}",
        out.stdout
    );
    let unseal = f
        .requests()
        .into_iter()
        .rev()
        .find(|r| r.target == "/v1/sys/unseal")
        .unwrap();
    assert_eq!(unseal.json(), json!({"key": "q80="}));
    let out = f.run(&["operator", "unseal", "-reset"]);
    assert_eq!(out.code, 0);
    let unseal = f
        .requests()
        .into_iter()
        .rev()
        .find(|r| r.target == "/v1/sys/unseal")
        .unwrap();
    assert_eq!(unseal.json(), json!({"reset": true}));

    let out = f.run(&["operator", "seal"]);
    assert_eq!(
        (out.code, out.stdout.as_str()),
        (0, "Success! Server is sealed.\n")
    );
}

#[test]
fn generate_root_flow_and_offline_decode() {
    let f = Fixture::new(|r| match (r.method.as_str(), r.target.as_str()) {
        ("GET", "/v1/sys/generate-root/attempt") => (
            200,
            json!({"nonce": "n1", "started": true, "progress": 0, "required": 1, "complete": false,
                   "encoded_token": "", "encoded_root_token": "", "pgp_fingerprint": "", "otp": "",
                   "otp_length": 28})
            .to_string(),
        ),
        ("PUT", "/v1/sys/generate-root/attempt") => (
            200,
            json!({"nonce": "n1", "started": true, "progress": 0, "required": 1, "complete": false,
                   "otp": "OTPOTPOTPOTPOTPOTPOTPOTPOTPO", "otp_length": 28})
            .to_string(),
        ),
        ("PUT", "/v1/sys/generate-root/update") => (
            200,
            json!({"nonce": "n1", "started": true, "progress": 1, "required": 1, "complete": true,
                   "encoded_token": "ENC"})
            .to_string(),
        ),
        _ => (404, errors(&[])),
    });
    let out = f.run(&["operator", "generate-root", "-init"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stdout
            .contains("OTP           OTPOTPOTPOTPOTPOTPOTPOTPOTPO\n"),
        "{}",
        out.stdout
    );
    assert_eq!(
        f.requests().pop().unwrap().json(),
        json!({"otp": "", "pgp_key": ""})
    );
    let out = f.run(&["operator", "generate-root", "-generate-otp"]);
    assert_eq!(out.code, 0);
    assert_eq!(out.stdout.len(), 28);
    let out = f.run(&["operator", "generate-root", "key1"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stdout.contains("Encoded Token    ENC\n"),
        "{}",
        out.stdout
    );
    assert_eq!(
        f.requests().pop().unwrap().json(),
        json!({"key": "key1", "nonce": "n1"})
    );

    // Decoding needs no server.
    let home = tempfile::tempdir().unwrap();
    let token = "hvs.abcdefghijklmnopqrstuvwx";
    let otp = "0123456789abcdefghijklmnopqr";
    assert_eq!(token.len(), otp.len());
    let enc: Vec<u8> = token.bytes().zip(otp.bytes()).map(|(a, b)| a ^ b).collect();
    use base64::Engine as _;
    let encoded = base64::engine::general_purpose::STANDARD_NO_PAD.encode(enc);
    let decode = format!("-decode={encoded}");
    let otp_flag = format!("-otp={otp}");
    let out = run_cli(
        "http://127.0.0.1:1",
        home.path(),
        &[],
        &["operator", "generate-root", &decode, &otp_flag],
        "",
    );
    assert_eq!((out.code, out.stdout.as_str()), (0, token));
    let out = run_cli(
        "http://127.0.0.1:1",
        home.path(),
        &[],
        &["operator", "generate-root", &decode],
        "",
    );
    assert_eq!(out.code, 1);
}

#[test]
fn token_create_lookup_capabilities() {
    let f = Fixture::new(|r| {
        match (r.method.as_str(), r.target.as_str()) {
        ("POST", "/v1/auth/token/create") | ("POST", "/v1/auth/token/create-orphan") => (
            200,
            json!({"request_id": "r", "lease_id": "", "renewable": false, "lease_duration": 0, "data": null,
                   "warnings": ["Policy \"web\" does not exist"],
                   "auth": {"client_token": "hvs.child", "accessor": "acc1", "policies": ["default", "web"],
                            "token_policies": ["default", "web"], "metadata": {"user": "armon"},
                            "lease_duration": 3600, "renewable": true, "entity_id": "", "token_type": "service",
                            "orphan": false}}).to_string(),
        ),
        ("GET", "/v1/auth/token/lookup-self") | ("POST", "/v1/auth/token/lookup") => (
            200,
            envelope(json!({"accessor": "acc0", "creation_ttl": 0, "display_name": "root", "entity_id": "",
                            "expire_time": null, "explicit_max_ttl": 0, "id": "root", "meta": null,
                            "num_uses": 0, "orphan": true, "path": "auth/token/root", "policies": ["root"],
                            "ttl": 0, "type": "service"})),
        ),
        ("POST", "/v1/sys/capabilities-self") => (
            200,
            envelope(json!({"secret/foo": ["update", "read"], "capabilities": ["update", "read"]})),
        ),
        ("POST", "/v1/sys/capabilities") => (200, envelope(json!({"secret/foo": ["deny"]}))),
        _ => (404, errors(&[])),
    }
    });
    let out = f.run(&[
        "token",
        "create",
        "-policy=web",
        "-policy",
        "stage,ops",
        "-ttl=1h",
        "-metadata=user=armon",
    ]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stderr.contains("Policy \"web\" does not exist"),
        "warnings go to stderr"
    );
    assert!(
        out.stdout.contains("token                hvs.child\n"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("token_duration       1h\n"));
    assert!(
        out.stdout
            .contains("token_policies       [\"default\" \"web\"]\n")
    );
    assert!(out.stdout.contains("token_meta_user      armon\n"));
    let req = f.requests().pop().unwrap();
    assert_eq!(req.json()["policies"], json!(["web", "stage", "ops"]));
    assert_eq!(req.json()["ttl"], "1h0m0s");
    let out = f.run(&["token", "create", "-orphan", "-field=token"]);
    assert_eq!(out.stdout, "hvs.child");
    assert_eq!(
        f.requests().pop().unwrap().target,
        "/v1/auth/token/create-orphan"
    );

    let out = f.run(&["token", "lookup"]);
    assert_eq!(out.code, 0);
    assert!(
        out.stdout.contains("entity_id           n/a\n"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("expire_time         <nil>\n"));
    assert!(out.stdout.contains("explicit_max_ttl    0s\n"));
    assert!(out.stdout.contains("policies            [root]\n"));
    let out = f.run(&["token", "lookup", "hvs.other"]);
    assert_eq!(out.code, 0);
    assert_eq!(
        f.requests().pop().unwrap().json(),
        json!({"token": "hvs.other"})
    );

    let out = f.run(&["token", "capabilities", "secret/foo"]);
    assert_eq!((out.code, out.stdout.as_str()), (0, "read, update\n"));
    assert_eq!(
        f.requests().pop().unwrap().json(),
        json!({"path": "secret/foo"})
    );
    let out = f.run(&["token", "capabilities", "hvs.other", "secret/foo"]);
    assert_eq!(out.stdout, "deny\n");
    assert_eq!(
        f.requests().pop().unwrap().json(),
        json!({"token": "hvs.other", "path": "secret/foo"})
    );
    // The current token goes to the -self endpoint.
    let out = f.run(&["token", "capabilities", "root", "secret/foo"]);
    assert_eq!(out.stdout, "read, update\n");
}

#[test]
fn token_renew_and_revoke_variants() {
    let f = Fixture::new(|r| match (r.method.as_str(), r.target.as_str()) {
        ("PUT", p) if p.starts_with("/v1/auth/token/renew") => (
            200,
            json!({"auth": {"client_token": "t", "lease_duration": 60, "renewable": true}})
                .to_string(),
        ),
        ("PUT", p)
            if p.starts_with("/v1/auth/token/revoke")
                || p.starts_with("/v1/sys/leases/revoke-prefix/") =>
        {
            (204, String::new())
        }
        _ => (404, errors(&[])),
    });
    let out = f.run(&["token", "renew", "-increment=30m"]);
    assert_eq!(out.code, 0, "{out:?}");
    let r = f.requests().pop().unwrap();
    assert_eq!(
        (r.target.as_str(), r.json()),
        ("/v1/auth/token/renew-self", json!({"increment": 1800}))
    );
    let _ = f.run(&["token", "renew", "-accessor", "acc"]);
    assert_eq!(
        f.requests().pop().unwrap().json(),
        json!({"accessor": "acc", "increment": 0})
    );

    let out = f.run(&["token", "revoke", "hvs.x"]);
    assert_eq!(out.stdout, "Success! Revoked token (if it existed)\n");
    let r = f.requests().pop().unwrap();
    assert_eq!(
        (r.target.as_str(), r.json()),
        ("/v1/auth/token/revoke", json!({"token": "hvs.x"}))
    );
    let _ = f.run(&["token", "revoke", "-self"]);
    assert_eq!(
        f.requests().pop().unwrap().target,
        "/v1/auth/token/revoke-self"
    );
    let _ = f.run(&["token", "revoke", "-accessor", "acc"]);
    assert_eq!(
        f.requests().pop().unwrap().json(),
        json!({"accessor": "acc"})
    );
    let _ = f.run(&["token", "revoke", "-mode=orphan", "hvs.x"]);
    assert_eq!(
        f.requests().pop().unwrap().target,
        "/v1/auth/token/revoke-orphan"
    );
    let _ = f.run(&["token", "revoke", "-mode=path", "auth/token/create"]);
    assert_eq!(
        f.requests().pop().unwrap().target,
        "/v1/sys/leases/revoke-prefix/auth/token/create"
    );
    let out = f.run(&["token", "revoke", "-self", "hvs.x"]);
    assert_eq!(out.code, 1);
    let out = f.run(&["token", "revoke", "-mode=weird", "x"]);
    assert_eq!(out.code, 1);
}

#[test]
fn login_validates_and_stores_the_token() {
    let f = Fixture::new(|r| match (r.method.as_str(), r.target.as_str()) {
        ("GET", "/v1/auth/token/lookup-self") if r.header("x-vault-token") == Some("good") => (
            200,
            envelope(json!({"accessor": "acc", "policies": ["root"], "ttl": 0, "id": "good"})),
        ),
        ("GET", "/v1/auth/token/lookup-self") => (403, errors(&["permission denied"])),
        ("POST", "/v1/auth/userpass/login/alice") => (
            200,
            json!({"auth": {"client_token": "hvs.user", "accessor": "a2", "policies": ["default"],
                            "lease_duration": 2764800, "renewable": true}})
            .to_string(),
        ),
        _ => (404, errors(&[])),
    });
    let token_file = f.home.path().join(".vault-token");
    let out = f.run_with(&[], &["login", "good"], "");
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("Success! You are now authenticated."));
    assert!(
        out.stdout.contains("token_duration       \u{221e}\n"),
        "{}",
        out.stdout
    );
    assert_eq!(std::fs::read_to_string(&token_file).unwrap(), "good");

    // Later commands pick the stored token up.
    let out = f.run_with(&[], &["token", "lookup"], "");
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(
        f.requests().pop().unwrap().header("x-vault-token"),
        Some("good")
    );

    let out = f.run_with(&[], &["login", "bad"], "");
    assert_eq!(out.code, 2);
    assert!(out.stderr.starts_with("Error authenticating: "));
    assert_eq!(
        std::fs::read_to_string(&token_file).unwrap(),
        "good",
        "not overwritten"
    );

    let out = f.run_with(&[], &["login", "-no-store", "-token-only", "-"], "good\n");
    assert_eq!((out.code, out.stdout.as_str()), (0, "good"));

    let out = f.run_with(
        &[("VAULT_TOKEN", "x")],
        &["login", "-method=userpass", "username=alice", "password=pw"],
        "",
    );
    assert_eq!(out.code, 0, "{out:?}");
    let r = f.requests().pop().unwrap();
    assert_eq!(r.json(), json!({"password": "pw"}));
    assert_eq!(r.header("x-vault-token"), None, "logins carry no token");
    assert_eq!(std::fs::read_to_string(&token_file).unwrap(), "hvs.user");
    assert!(
        out.stderr
            .contains("VAULT_TOKEN environment variable is set")
    );
}

#[test]
fn mounts_auth_audit_commands() {
    let f = Fixture::new(|r| match (r.method.as_str(), r.target.as_str()) {
        ("POST", p) if p.starts_with("/v1/sys/mounts/") || p.starts_with("/v1/sys/auth/") => {
            (204, String::new())
        }
        ("PUT", p)
            if p.starts_with("/v1/sys/mounts/")
                || p.starts_with("/v1/sys/auth/")
                || p.starts_with("/v1/sys/audit/") =>
        {
            (204, String::new())
        }
        ("DELETE", _) => (204, String::new()),
        ("GET", "/v1/sys/mounts") => (
            200,
            envelope(json!({
                "secret/": {"type": "kv", "accessor": "kv_1", "description": "key/value secret storage",
                            "options": {"version": "2"}, "config": {"default_lease_ttl": 0, "max_lease_ttl": 0}},
                "cubbyhole/": {"type": "cubbyhole", "accessor": "cubbyhole_2",
                               "description": "per-token private secret storage", "local": true}})),
        ),
        ("GET", "/v1/sys/auth") => (
            200,
            envelope(
                json!({"token/": {"type": "token", "accessor": "auth_token_1",
                                       "description": "token based credentials", "plugin_version": ""}}),
            ),
        ),
        ("GET", "/v1/sys/audit") => (200, envelope(json!({}))),
        ("PUT", "/v1/sys/remount") | ("POST", "/v1/sys/remount") => {
            (200, envelope(json!({"migration_id": "m1"})))
        }
        ("GET", "/v1/sys/remount/status/m1") => (
            200,
            envelope(
                json!({"migration_id": "m1", "migration_info": {"source_mount": "a/", "target_mount": "b/", "status": "success"}}),
            ),
        ),
        _ => (404, errors(&[])),
    });
    let out = f.run(&[
        "secrets",
        "enable",
        "-path=kv2",
        "-version=2",
        "-description=mine",
        "kv",
    ]);
    assert_eq!(
        (out.code, out.stdout.as_str()),
        (0, "Success! Enabled the kv secrets engine at: kv2/\n")
    );
    let r = f.requests().pop().unwrap();
    assert_eq!(r.target, "/v1/sys/mounts/kv2/");
    assert_eq!(r.json()["options"], json!({"version": "2"}));
    assert_eq!(r.json()["description"], "mine");

    let out = f.run(&["secrets", "list"]);
    assert_eq!(out.code, 0);
    assert_eq!(
        out.stdout,
        "\
Path          Type         Accessor       Description
----          ----         --------       -----------
cubbyhole/    cubbyhole    cubbyhole_2    per-token private secret storage
secret/       kv           kv_1           key/value secret storage
"
    );
    let out = f.run(&["secrets", "list", "-format=json"]);
    let v: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v["secret/"]["type"], "kv");

    let out = f.run(&["secrets", "tune", "-max-lease-ttl=1h", "secret"]);
    assert_eq!(
        out.stdout,
        "Success! Tuned the secrets engine at: secret/\n"
    );
    let r = f.requests().pop().unwrap();
    assert_eq!(
        (r.target.as_str(), r.json()),
        (
            "/v1/sys/mounts/secret/tune",
            json!({"max_lease_ttl": "1h0m0s"})
        )
    );
    let out = f.run(&["secrets", "disable", "kv2/"]);
    assert_eq!(
        out.stdout,
        "Success! Disabled the secrets engine (if it existed) at: kv2/\n"
    );
    let out = f.run(&["secrets", "move", "a", "b"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(
        out.stdout,
        "Success! Finished moving secrets engine a/ to b/, with migration ID m1\n"
    );

    let out = f.run(&["auth", "enable", "userpass"]);
    assert_eq!(
        out.stdout,
        "Success! Enabled userpass auth method at: userpass/\n"
    );
    assert_eq!(f.requests().pop().unwrap().target, "/v1/sys/auth/userpass/");
    let out = f.run(&["auth", "list"]);
    assert!(
        out.stdout
            .contains("token/    token    auth_token_1    token based credentials    n/a\n"),
        "{}",
        out.stdout
    );
    let out = f.run(&["auth", "tune", "-default-lease-ttl=30m", "userpass"]);
    assert_eq!(out.stdout, "Success! Tuned the auth method at: userpass/\n");
    let out = f.run(&["auth", "disable", "userpass"]);
    assert_eq!(
        out.stdout,
        "Success! Disabled the auth method (if it existed) at: userpass/\n"
    );

    let out = f.run(&["audit", "list"]);
    assert_eq!(
        (out.code, out.stdout.as_str()),
        (2, "No audit devices are enabled.\n")
    );
    let out = f.run(&["audit", "enable", "file", "file_path=/tmp/audit.log"]);
    assert_eq!(
        out.stdout,
        "Success! Enabled the file audit device at: file/\n"
    );
    let r = f.requests().pop().unwrap();
    assert_eq!(r.target, "/v1/sys/audit/file/");
    assert_eq!(r.json()["options"], json!({"file_path": "/tmp/audit.log"}));
    let out = f.run(&["audit", "disable", "file"]);
    assert_eq!(
        out.stdout,
        "Success! Disabled audit device (if it was enabled) at: file/\n"
    );
}

#[test]
fn policy_commands() {
    let f = Fixture::new(|r| match (r.method.as_str(), r.target.as_str()) {
        ("PUT", "/v1/sys/policies/acl/web") | ("DELETE", "/v1/sys/policies/acl/web") => {
            (204, String::new())
        }
        ("GET", "/v1/sys/policies/acl/web") => (
            200,
            envelope(
                json!({"name": "web", "policy": "path \"secret/*\" {\n  capabilities = [\"read\"]\n}\n"}),
            ),
        ),
        ("GET", "/v1/sys/policies/acl?list=true") => {
            (200, envelope(json!({"keys": ["default", "web", "root"]})))
        }
        _ => (404, errors(&[])),
    });
    let file = f.home.path().join("web.hcl");
    std::fs::write(&file, "path \"secret/*\" { capabilities = [\"read\"] }").unwrap();
    let out = f.run(&["policy", "write", "WEB", file.to_str().unwrap()]);
    assert_eq!(
        (out.code, out.stdout.as_str()),
        (0, "Success! Uploaded policy: web\n")
    );
    assert_eq!(
        f.requests().pop().unwrap().json(),
        json!({"policy": "path \"secret/*\" { capabilities = [\"read\"] }"})
    );
    let out = f.run_with(
        &[("VAULT_TOKEN", "root")],
        &["policy", "write", "web", "-"],
        "path \"x\" {}",
    );
    assert_eq!(out.code, 0);
    assert_eq!(
        f.requests().pop().unwrap().json(),
        json!({"policy": "path \"x\" {}"})
    );
    let out = f.run(&["policy", "read", "web"]);
    assert_eq!(
        out.stdout,
        "path \"secret/*\" {\n  capabilities = [\"read\"]\n}\n"
    );
    let out = f.run(&["policy", "read", "nope"]);
    assert_eq!(
        (out.code, out.stderr.as_str()),
        (2, "No policy named: nope\n")
    );
    let out = f.run(&["policy", "list"]);
    assert_eq!(out.stdout, "default\nweb\nroot\n");
    let out = f.run(&["policy", "delete", "web"]);
    assert_eq!(out.stdout, "Success! Deleted policy: web\n");

    let out = f.run(&["policy", "fmt", file.to_str().unwrap()]);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        "path \"secret/*\" {\n  capabilities = [\"read\"]\n}\n"
    );
    std::fs::write(&file, "path \"x\" {").unwrap();
    let out = f.run(&["policy", "fmt", file.to_str().unwrap()]);
    assert_eq!(out.code, 1);
    assert!(out.stderr.starts_with("Failed to parse policy: "));
}

#[test]
fn namespace_wrap_and_extra_headers() {
    let f = Fixture::new(|r| {
        if let Some(resp) = kv_preflight(r) {
            return resp;
        }
        if r.target == "/v1/secret/data/foo" {
            return (
                200,
                json!({"request_id": "", "lease_id": "", "lease_duration": 0, "renewable": false, "data": null,
                       "wrap_info": {"token": "hvs.wrap", "accessor": "wacc", "ttl": 300,
                                     "creation_time": "2024-01-01T00:00:00Z", "creation_path": "secret/data/foo"}})
                .to_string(),
            );
        }
        (404, errors(&[]))
    });
    let out = f.run_with(
        &[("VAULT_TOKEN", "root"), ("VAULT_NAMESPACE", "ns1")],
        &[
            "kv",
            "get",
            "-wrap-ttl=5m",
            "-header=X-Custom=yes",
            "secret/foo",
        ],
        "",
    );
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stdout
            .contains("wrapping_token:                  hvs.wrap\n"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("wrapping_token_ttl:              5m\n"));
    let reqs = f.requests();
    assert_eq!(
        reqs[0].header("x-vault-wrap-ttl"),
        None,
        "the preflight is never wrapped"
    );
    assert_eq!(reqs[1].header("x-vault-wrap-ttl"), Some("5m"));
    for r in &reqs {
        assert_eq!(r.header("x-vault-namespace"), Some("ns1"));
        assert_eq!(r.header("x-custom"), Some("yes"));
        assert_eq!(r.header("x-vault-request"), Some("true"));
    }
    // -field picks wrapping fields out of a wrapped KV v2 read.
    let out = f.run(&[
        "kv",
        "get",
        "-wrap-ttl=5m",
        "-field=wrapping_token",
        "secret/foo",
    ]);
    assert_eq!((out.code, out.stdout.as_str()), (0, "hvs.wrap"));
}

#[test]
fn unwrap_and_leases() {
    let f = Fixture::new(|r| {
        match (r.method.as_str(), r.target.as_str()) {
        ("PUT", "/v1/sys/wrapping/unwrap") => (200, envelope(json!({"secret": "value"}))),
        ("PUT", "/v1/sys/leases/lookup") => (
            200,
            envelope(json!({"id": "db/creds/x/1", "ttl": 600, "renewable": true, "expire_time": "t"})),
        ),
        ("PUT", "/v1/sys/leases/renew") => (
            200,
            json!({"lease_id": "db/creds/x/1", "lease_duration": 1200, "renewable": true, "data": null}).to_string(),
        ),
        ("PUT", _) => (204, String::new()),
        _ => (404, errors(&[])),
    }
    });
    let out = f.run(&["unwrap", "hvs.wrapping"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("secret    value\n"));
    let r = f.requests().pop().unwrap();
    assert_eq!(r.json(), json!({"token": "hvs.wrapping"}));
    assert_eq!(r.header("x-vault-token"), Some("root"));
    // With no token configured, the wrapping token authenticates the call itself.
    let out = f.run_with(&[], &["unwrap", "hvs.wrapping"], "");
    assert_eq!(out.code, 0);
    let r = f.requests().pop().unwrap();
    assert_eq!(r.header("x-vault-token"), Some("hvs.wrapping"));
    assert_eq!(r.body, "");

    let out = f.run(&["lease", "lookup", "db/creds/x/1"]);
    assert!(
        out.stdout.contains("ttl            10m\n"),
        "{}",
        out.stdout
    );
    let out = f.run(&["lease", "renew", "-increment=1h", "db/creds/x/1"]);
    assert!(
        out.stdout.contains("lease_duration     20m\n"),
        "{}",
        out.stdout
    );
    assert_eq!(
        f.requests().pop().unwrap().json(),
        json!({"lease_id": "db/creds/x/1", "increment": 3600})
    );
    let out = f.run(&["lease", "revoke", "db/creds/x/1"]);
    assert_eq!(out.stdout, "Success! Revoked lease: db/creds/x/1\n");
    assert_eq!(
        f.requests().pop().unwrap().json(),
        json!({"lease_id": "db/creds/x/1"})
    );
    let out = f.run(&["lease", "revoke", "-prefix", "db/creds"]);
    assert_eq!(
        out.stdout,
        "Success! Revoked any leases with prefix: db/creds\n"
    );
    assert_eq!(
        f.requests().pop().unwrap().target,
        "/v1/sys/leases/revoke-prefix/db/creds"
    );
    let out = f.run(&["lease", "revoke", "-force", "-prefix", "db/creds"]);
    assert_eq!(out.code, 0);
    assert_eq!(
        f.requests().pop().unwrap().target,
        "/v1/sys/leases/revoke-force/db/creds"
    );
    let out = f.run(&["lease", "revoke", "-force", "db/creds"]);
    assert_eq!(out.code, 1);
}

#[test]
fn dispatch_version_help_and_unknown() {
    let home = tempfile::tempdir().unwrap();
    let addr = "http://127.0.0.1:1";
    let out = run_cli(addr, home.path(), &[], &["version"], "");
    assert_eq!((out.code, out.stdout.as_str()), (0, "Tresor v0.1.0\n"));
    let out = run_cli(addr, home.path(), &[], &["frobnicate"], "");
    assert_eq!(out.code, 127);
    assert!(out.stderr.contains("Unknown command: frobnicate"));
    let out = run_cli(addr, home.path(), &[], &["kv"], "");
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("metadata"));
    let out = run_cli(addr, home.path(), &[], &["kv", "-help"], "");
    assert_eq!(out.code, 0);
    assert!(out.stdout.contains("Usage: tresor kv <command>"));
    let out = run_cli(addr, home.path(), &[], &["kv", "get", "-h"], "");
    assert_eq!(out.code, 0);
    assert!(out.stdout.contains("Usage: tresor kv get"));
    assert!(out.stdout.contains("-mount=<string>"));
    let out = run_cli(addr, home.path(), &[], &["operator"], "");
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("generate-root"));
}

/// The rows of every `    name    synopsis` table in a help text: (name, synopsis, column
/// where the synopsis starts), one list per table.
fn help_tables(text: &str) -> Vec<Vec<(String, String, usize)>> {
    let mut tables = Vec::new();
    let mut cur: Vec<(String, String, usize)> = Vec::new();
    for line in text.lines() {
        let Some(row) = line.strip_prefix("    ") else {
            if !cur.is_empty() {
                tables.push(std::mem::take(&mut cur));
            }
            continue;
        };
        let name: String = row.chars().take_while(|c| !c.is_whitespace()).collect();
        let rest = &row[name.len()..];
        let synopsis = rest.trim_start();
        let column = 4 + name.len() + (rest.len() - synopsis.len());
        cur.push((name, synopsis.to_owned(), column));
    }
    if !cur.is_empty() {
        tables.push(cur);
    }
    tables
}

/// Issue 12: `tresor -help` lists every command, the binary's own (`server`, `bench`)
/// included, each group with a one-line description, aligned however long the names; `tresor
/// help` and `tresor help CMD` work.
#[test]
fn help_lists_every_command_aligned_and_help_cmd_works() {
    let home = tempfile::tempdir().unwrap();
    let addr = "http://127.0.0.1:1";
    let top = run_cli(addr, home.path(), &[], &["-help"], "");
    assert_eq!(top.code, 0, "{}", top.stderr);
    let tables = help_tables(&top.stdout);
    assert_eq!(
        tables.len(),
        2,
        "common and other commands:\n{}",
        top.stdout
    );
    let names: Vec<&str> = tables
        .iter()
        .flatten()
        .map(|(n, _, _)| n.as_str())
        .collect();
    let mut wanted: Vec<&str> = crate::COMMANDS.iter().map(|e| e.path[0]).collect();
    wanted.extend(["server", "bench"]);
    for w in &wanted {
        assert!(names.contains(w), "{w} missing:\n{}", top.stdout);
    }
    assert!(!names.contains(&"agent"), "there is no agent yet");
    let mut unique = names.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), names.len(), "each command once: {names:?}");
    for table in &tables {
        for (name, synopsis, column) in table {
            assert!(!synopsis.is_empty(), "{name} has no description");
            assert_eq!(
                *column, table[0].2,
                "{name} is out of line:\n{}",
                top.stdout
            );
        }
    }
    // `tresor help` is the same text; so is a group's listing with `help`.
    let help = run_cli(addr, home.path(), &[], &["help"], "");
    assert_eq!((help.code, help.stdout.as_str()), (0, top.stdout.as_str()));

    // Every group lists its commands, aligned even with long names (`enable-versioning`).
    let groups: Vec<Vec<&str>> = crate::COMMANDS
        .iter()
        .flat_map(|e| (1..e.path.len()).map(|n| e.path[..n].to_vec()))
        .collect();
    for group in groups {
        let mut args = vec!["help"];
        args.extend(&group);
        let out = run_cli(addr, home.path(), &[], &args, "");
        assert_eq!(out.code, 0, "{args:?}: {}", out.stderr);
        let tables = help_tables(&out.stdout);
        assert_eq!(tables.len(), 1, "{args:?}:\n{}", out.stdout);
        for (name, synopsis, column) in &tables[0] {
            assert!(!synopsis.is_empty(), "{args:?}: {name} has no description");
            assert_eq!(*column, tables[0][0].2, "{args:?}: {name}:\n{}", out.stdout);
        }
    }
    let kv = run_cli(addr, home.path(), &[], &["help", "kv"], "");
    assert!(kv.stdout.contains("enable-versioning"), "{}", kv.stdout);

    // `help CMD` is the command's own help, for every command.
    for e in crate::COMMANDS {
        let mut args = vec!["help"];
        args.extend(e.path);
        let out = run_cli(addr, home.path(), &[], &args, "");
        assert_eq!(out.code, 0, "{args:?}: {}", out.stderr);
        // `operator raft snapshot ...` are Vault's names for `operator snapshot ...`.
        let shown = e
            .path
            .join(" ")
            .replace("operator raft snapshot", "operator snapshot");
        assert!(
            out.stdout.starts_with(&format!("Usage: tresor {shown}")),
            "{args:?}:\n{}",
            out.stdout
        );
    }
    let out = run_cli(addr, home.path(), &[], &["help", "frobnicate"], "");
    assert_eq!(out.code, 127);
    assert!(out.stderr.contains("Unknown command: frobnicate"));
}
