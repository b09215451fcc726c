//! Issue 18 end to end: governing policies on the real server (embedded storage), driven by
//! the bao CLI, curl from two loopback addresses and openssl CSRs: an EGP on PKI signing
//! refuses weak keys with its reason shown by bao, an EGP on userpass logins allows only
//! 127.0.0.2, an advisory policy's warning is printed by bao, a soft-mandatory policy yields
//! to `-policy-override` (audited), a policy that does not compile is refused with its line,
//! and the policies survive a restart. `tresor policy test|eval` run on docs/governing.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{Out, Server, clean_command, free_port, plain_config, run};
use serde_json::Value;

fn library() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/governing")
}

fn tresor(args: &[&str]) -> Out {
    run(clean_command(env!("CARGO_BIN_EXE_tresor")).args(args))
}

/// A CSR for `a.example.com` with a fresh key: `rsa:1024`, `ec:secp224r1`, ...
fn csr(dir: &Path, name: &str, newkey: &[&str]) -> PathBuf {
    let out = dir.join(format!("{name}.csr"));
    let mut c = Command::new("openssl");
    c.args(["req", "-new", "-nodes", "-subj", "/CN=a.example.com"])
        .args(newkey)
        .arg("-keyout")
        .arg(dir.join(format!("{name}.key")))
        .arg("-out")
        .arg(&out);
    run(&mut c).expect(0, "openssl req");
    out
}

/// curl from a chosen local address: (status, body).
fn curl_from(s: &Server, local: &str, path: &str, body: &str) -> (u16, Value) {
    let mut c = Command::new("curl");
    c.args([
        "-s",
        "--max-time",
        "20",
        "--interface",
        local,
        "-X",
        "POST",
        "-w",
        "\n%{http_code}",
        "--data-binary",
        body,
    ])
    .arg(format!("{}/v1/{path}", s.addr));
    let o = run(&mut c);
    assert_eq!(o.code, 0, "curl from {local}: {o}");
    let (text, code) = o.stdout.rsplit_once('\n').expect("status line");
    (
        code.trim().parse().expect("status"),
        serde_json::from_str(text).unwrap_or(Value::Null),
    )
}

fn start(dir: &Path, port: u16) -> Server {
    Server::start(dir, port, &plain_config(port, ""))
}

#[test]
fn governing_policies_end_to_end() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let port = free_port();
    let mut s = start(dir, port);
    let init = s.init(1, 1);
    let key = init["keys_base64"][0].as_str().unwrap().to_owned();
    let root = init["root_token"].as_str().unwrap().to_owned();
    s.unseal(&[&key]);
    let bao = |s: &Server, args: &[&str]| s.bao_as(&root, args);

    // Setup: PKI with a root and a role, userpass with a user, KV v2, an audit file, and a
    // non-root token (root is exempt from governing policies).
    bao(&s, &["secrets", "enable", "pki"]).expect(0, "enable pki");
    bao(
        &s,
        &[
            "write",
            "pki/root/generate/internal",
            "common_name=example.com",
            "ttl=87600h",
        ],
    )
    .expect(0, "root CA");
    bao(
        &s,
        &[
            "write",
            "pki/roles/web",
            "allow_any_name=true",
            "key_type=any",
            "max_ttl=720h",
        ],
    )
    .expect(0, "role");
    bao(
        &s,
        &["secrets", "enable", "-path=secret", "-version=2", "kv"],
    )
    .expect(0, "kv");
    bao(&s, &["auth", "enable", "userpass"]).expect(0, "userpass");
    bao(
        &s,
        &[
            "write",
            "auth/userpass/users/alice",
            "password=wonderland",
            "policies=worker",
        ],
    )
    .expect(0, "user");
    let audit = dir.join("audit.log");
    bao(
        &s,
        &[
            "audit",
            "enable",
            "file",
            &format!("file_path={}", audit.display()),
        ],
    )
    .expect(0, "audit");
    std::fs::write(
        dir.join("worker.hcl"),
        r#"
path "pki/sign/*" { capabilities = ["update"] }
path "secret/*" { capabilities = ["create", "update", "read"] }
path "sys/mounts/*" { capabilities = ["create", "update", "read", "sudo"] }
"#,
    )
    .unwrap();
    bao(&s, &["policy", "write", "worker", "worker.hcl"]).expect(0, "acl");
    let worker = bao(&s, &["token", "create", "-policy=worker", "-field=token"])
        .expect(0, "token")
        .stdout
        .trim()
        .to_owned();

    // A policy that does not compile is refused with its line and column.
    std::fs::write(
        dir.join("bad.rego"),
        "package tresor.bad\n\ndefault main := false\nmain if {\n  input.x ==\n}\n",
    )
    .unwrap();
    let o = bao(
        &s,
        &[
            "write",
            "sys/policies/egp/bad",
            "policy=@bad.rego",
            "paths=*",
        ],
    );
    assert_eq!(o.code, 2, "{o}");
    assert!(o.stderr.contains("line 6, column 1"), "{o}");

    // The EGP on PKI signing: RSA-1024 and EC P-224 refused with the reason, RSA-2048 signed.
    let pki_keys = library().join("pki_key_strength.rego");
    bao(
        &s,
        &[
            "write",
            "sys/policies/egp/pki-keys",
            &format!("policy=@{}", pki_keys.display()),
            "enforcement_level=hard-mandatory",
            "paths=pki/sign/*,pki/issue/*",
        ],
    )
    .expect(0, "egp pki-keys");
    let rsa1024 = csr(dir, "rsa1024", &["-newkey", "rsa:1024"]);
    let ec224 = csr(
        dir,
        "ec224",
        &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:secp224r1"],
    );
    let rsa2048 = csr(dir, "rsa2048", &["-newkey", "rsa:2048"]);
    let sign = |s: &Server, csr: &Path| {
        s.bao_as(
            &worker,
            &[
                "write",
                "pki/sign/web",
                &format!("csr=@{}", csr.display()),
                "common_name=a.example.com",
                "ttl=24h",
            ],
        )
    };
    let o = sign(&s, &rsa1024);
    assert_eq!(o.code, 2, "{o}");
    assert!(o.stderr.contains("Code: 403"), "{o}");
    assert!(o.stderr.contains("\"pki-keys\""), "{o}");
    assert!(
        o.stderr
            .contains("rsa keys must have at least 2048 bits; this CSR has 1024"),
        "{o}"
    );
    let o = sign(&s, &ec224);
    assert_eq!(o.code, 2, "{o}");
    assert!(
        o.stderr
            .contains("ec keys must have at least 256 bits; this CSR has 224"),
        "{o}"
    );
    let o = sign(&s, &rsa2048).expect(0, "RSA-2048 is signed");
    assert!(o.stdout.contains("BEGIN CERTIFICATE"), "{o}");

    // The EGP on userpass logins: only 127.0.0.2 may log in.
    let office = library().join("office_network.rego");
    bao(
        &s,
        &[
            "write",
            "sys/policies/egp/office",
            &format!("policy=@{}", office.display()),
            "paths=auth/userpass/login/*",
        ],
    )
    .expect(0, "egp office");
    let login = r#"{"password":"wonderland"}"#;
    let (code, v) = curl_from(&s, "127.0.0.1", "auth/userpass/login/alice", login);
    assert_eq!(code, 403, "{v}");
    assert!(
        v.to_string()
            .contains("logins are allowed from the office network only, not from 127.0.0.1"),
        "{v}"
    );
    let (code, v) = curl_from(&s, "127.0.0.2", "auth/userpass/login/alice", login);
    assert_eq!(code, 200, "{v}");
    assert!(
        v["auth"]["client_token"]
            .as_str()
            .is_some_and(|t| !t.is_empty()),
        "{v}"
    );
    // bao connects from 127.0.0.1: refused, with the reason.
    let o = s.bao(&[
        "login",
        "-method=userpass",
        "username=alice",
        "password=wonderland",
    ]);
    assert_eq!(o.code, 2, "{o}");
    assert!(o.stderr.contains("office network only"), "{o}");

    // An advisory policy: the write goes through and bao prints the warning.
    std::fs::write(
        dir.join("watch.rego"),
        "package tresor.watch\n\ndefault main := false\n\ndeny contains \"writes to secret/ are reviewed weekly\" if true\n",
    )
    .unwrap();
    bao(
        &s,
        &[
            "write",
            "sys/policies/egp/watch",
            "policy=@watch.rego",
            "enforcement_level=advisory",
            "paths=secret/data/*",
        ],
    )
    .expect(0, "egp watch");
    let o = common::run_with_stdin(
        s.bao_cmd(&["write", "secret/data/app", "-"])
            .env("VAULT_TOKEN", &worker),
        Some(br#"{"data": {"k": "v"}}"#),
    )
    .expect(0, "advisory lets the write through");
    // bao wraps long warnings; compare with the whitespace folded.
    let all = format!("{}{}", o.stdout, o.stderr)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    assert!(all.contains("WARNING"), "{o}");
    assert!(
        all.contains("advisory: egp policy \"watch\" (advisory) did not pass: writes to secret/ are reviewed weekly"),
        "{o}"
    );

    // Soft-mandatory: refused, then allowed with bao's -policy-override, which is audited.
    std::fs::write(
        dir.join("freeze.rego"),
        "package tresor.freeze\n\ndefault main := false\n\ndeny contains \"mount changes are frozen\" if true\n",
    )
    .unwrap();
    bao(
        &s,
        &[
            "write",
            "sys/policies/egp/freeze",
            "policy=@freeze.rego",
            "enforcement_level=soft-mandatory",
            "paths=sys/mounts/*",
        ],
    )
    .expect(0, "egp freeze");
    let o = s.bao_as(&worker, &["secrets", "enable", "-path=kv-frozen", "kv"]);
    assert_eq!(o.code, 2, "{o}");
    assert!(o.stderr.contains("mount changes are frozen"), "{o}");
    s.bao_as(
        &worker,
        &[
            "secrets",
            "enable",
            "-policy-override",
            "-path=kv-frozen",
            "kv",
        ],
    )
    .expect(0, "override");
    let log = std::fs::read_to_string(&audit).unwrap();
    assert!(
        log.contains("overridden with X-Vault-Policy-Override"),
        "the override is in the audit log"
    );

    // Restart: the policies come back with the store.
    s.kill9();
    drop(s);
    let s = start(dir, port);
    s.unseal(&[&key]);
    let o = s
        .bao_as(&root, &["list", "-format=json", "sys/policies/egp"])
        .expect(0, "list");
    let names: Vec<String> = serde_json::from_str(&o.stdout).unwrap();
    assert_eq!(names, ["freeze", "office", "pki-keys", "watch"]);
    let o = sign(&s, &rsa1024);
    assert_eq!(o.code, 2, "{o}");
    assert!(o.stderr.contains("this CSR has 1024"), "{o}");
    let (code, _) = curl_from(&s, "127.0.0.1", "auth/userpass/login/alice", login);
    assert_eq!(code, 403);
}

#[test]
fn policy_test_and_eval_run_locally() {
    let o = tresor(&["policy", "test", library().to_str().unwrap()]).expect(0, "library");
    let last = o.stdout.lines().last().unwrap_or_default().to_owned();
    assert!(last.ends_with(" passed, 0 failed"), "{o}");
    assert!(
        o.stdout.contains("test_mount_at_night_is_denied: PASS"),
        "{o}"
    );

    // -run, -json and -coverage.
    let o = tresor(&[
        "policy",
        "test",
        "-json",
        "-coverage",
        "-run=kv_cas|cas",
        library().to_str().unwrap(),
    ])
    .expect(0, "json");
    let v: Value = serde_json::from_str(&o.stdout).unwrap();
    let results = v["results"].as_array().unwrap();
    assert!(!results.is_empty());
    assert!(results.iter().all(|r| r["passed"] == true));
    assert!(
        v["coverage"]["coverage"].as_f64().is_some_and(|c| c > 0.0),
        "{v}"
    );

    // A broken test makes it exit non-zero.
    let tmp = tempfile::tempdir().unwrap();
    for f in ["kv_cas.rego", "kv_cas_test.rego"] {
        std::fs::copy(library().join(f), tmp.path().join(f)).unwrap();
    }
    std::fs::write(
        tmp.path().join("broken_test.rego"),
        "package tresor.broken_test\n\nimport data.tresor.kv_cas\n\ntest_writes_without_cas_pass if kv_cas.main with input as {\"request\": {\"path\": \"secret/data/a\", \"mount_path\": \"secret/\", \"mount_type\": \"kv\", \"operation\": \"update\", \"data\": {}}}\n",
    )
    .unwrap();
    let o = tresor(&["policy", "test", tmp.path().to_str().unwrap()]);
    assert_eq!(o.code, 1, "{o}");
    assert!(
        o.stdout.contains("test_writes_without_cas_pass: FAIL"),
        "{o}"
    );
    assert!(o.stdout.trim_end().ends_with(" passed, 1 failed"), "{o}");

    // eval: the decision and the reasons.
    let input = tmp.path().join("input.json");
    std::fs::write(
        &input,
        r#"{"request": {"path": "sys/mounts/x", "operation": "update"}, "time": {"hour": 3, "rfc3339": "2026-12-03T03:00:00Z"}}"#,
    )
    .unwrap();
    let policy = library().join("business_hours.rego");
    let o = tresor(&[
        "policy",
        "eval",
        &format!("-policy={}", policy.display()),
        &format!("-input={}", input.display()),
    ]);
    assert_eq!(o.code, 1, "{o}");
    assert!(o.stdout.contains("Decision: deny"), "{o}");
    assert!(o.stdout.contains("08:00-18:00 UTC only"), "{o}");
}
