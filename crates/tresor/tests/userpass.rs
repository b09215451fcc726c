//! Issue 13 end to end: the userpass auth method on a real `tresor server -dev`, driven as a
//! new user would, with the `bao` CLI, curl and Tresor's own CLI.

mod common;

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Server, clean_command, errors, free_port, run, run_with_stdin};
use serde_json::{Value, json};

const READER: &str = r#"path "secret/data/app" { capabilities = ["read"] }"#;

fn dev() -> (tempfile::TempDir, Server) {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start_dev(dir.path(), free_port());
    (dir, s)
}

/// Userpass at `userpass/`, a `reader` policy, a secret, and alice with that policy.
fn setup(s: &Server) {
    s.bao_as("root", &["auth", "enable", "userpass"])
        .expect(0, "auth enable");
    std::fs::write(s.dir.join("reader.hcl"), READER).unwrap();
    s.bao_as("root", &["policy", "write", "reader", "reader.hcl"])
        .expect(0, "policy write");
    s.bao_as("root", &["kv", "put", "secret/app", "password=hunter2"])
        .expect(0, "kv put");
    s.bao_as(
        "root",
        &[
            "write",
            "auth/userpass/users/alice",
            "password=correct horse",
            "token_policies=reader",
        ],
    )
    .expect(0, "create user");
}

fn tresor(s: &Server) -> Command {
    let mut c = clean_command(env!("CARGO_BIN_EXE_tresor"));
    c.current_dir(&s.dir)
        .env("HOME", &s.home)
        .env("VAULT_ADDR", &s.addr);
    c
}

fn login_body(password: &str) -> String {
    json!({ "password": password }).to_string()
}

#[test]
fn bao_login_with_userpass_and_the_policy_applies() {
    let (_d, s) = dev();
    setup(&s);
    let o = s
        .bao(&[
            "login",
            "-method=userpass",
            "username=alice",
            "password=correct horse",
        ])
        .expect(0, "bao login");
    assert!(o.stdout.contains("token_meta_username"), "{o}");
    // The token bao stored is alice's: it reads, and writing is refused with a 403.
    let v = s
        .bao(&["kv", "get", "-format=json", "secret/app"])
        .expect(0, "read allowed")
        .json();
    assert_eq!(v["data"]["data"]["password"], "hunter2");
    let o = s.bao(&["kv", "put", "secret/app", "password=mine"]);
    assert_eq!(o.code, 2, "write must be denied\n{o}");
    assert!(
        o.stderr.contains("403") && o.stderr.contains("permission denied"),
        "{o}"
    );
    let look = s
        .bao(&["token", "lookup", "-format=json"])
        .expect(0, "lookup")
        .json();
    assert_eq!(look["data"]["policies"], json!(["default", "reader"]));
    assert_eq!(look["data"]["meta"]["username"], "alice");
    assert_eq!(look["data"]["path"], "auth/userpass/login/alice");
    // A wrong password: bao fails and says why.
    let o = s.bao(&[
        "login",
        "-method=userpass",
        "username=alice",
        "password=nope",
    ]);
    assert_eq!(o.code, 2, "{o}");
    assert!(o.stderr.contains("invalid username or password"), "{o}");
    // Users are listed, read without their password, and the method answers path-help.
    let v = s
        .bao_as("root", &["list", "-format=json", "auth/userpass/users"])
        .expect(0, "list")
        .json();
    assert_eq!(v, json!(["alice"]));
    let v = s
        .bao_as(
            "root",
            &["read", "-format=json", "auth/userpass/users/alice"],
        )
        .expect(0, "read user")
        .json();
    assert_eq!(v["data"]["token_policies"], json!(["reader"]));
    assert!(v["data"].get("password").is_none() && v["data"].get("password_hash").is_none());
    let o = s
        .bao_as("root", &["path-help", "auth/userpass/login/alice"])
        .expect(0, "path-help");
    assert!(o.stdout.contains("password"), "{o}");
}

#[test]
fn curl_login_errors_and_renewal() {
    let (_d, s) = dev();
    setup(&s);
    let (code, v) = s.api(
        "POST",
        "auth/userpass/login/alice",
        Some(&login_body("correct horse")),
        None,
    );
    assert_eq!(code, 200, "{v}");
    let auth = &v["auth"];
    let token = auth["client_token"].as_str().unwrap().to_owned();
    assert_eq!(auth["policies"], json!(["default", "reader"]));
    assert_eq!(auth["token_policies"], json!(["default", "reader"]));
    assert_eq!(auth["metadata"], json!({"username": "alice"}));
    assert_eq!(auth["token_type"], "service");
    assert_eq!(auth["renewable"], true);
    assert!(
        auth["accessor"].as_str().is_some_and(|a| !a.is_empty()),
        "{v}"
    );
    let (code, _) = s.api("GET", "secret/data/app", None, Some(&token));
    assert_eq!(code, 200);
    let (code, v) = s.api(
        "POST",
        "secret/data/app",
        Some(r#"{"data":{"x":"y"}}"#),
        Some(&token),
    );
    assert_eq!(code, 403, "{v}");

    // The username is case-insensitive.
    let (code, v) = s.api(
        "POST",
        "auth/userpass/login/ALICE",
        Some(&login_body("correct horse")),
        None,
    );
    assert_eq!(code, 200, "{v}");

    // A wrong password and an unknown user: the same 400, the same words.
    let (c1, wrong) = s.api(
        "POST",
        "auth/userpass/login/alice",
        Some(&login_body("x")),
        None,
    );
    let (c2, unknown) = s.api(
        "POST",
        "auth/userpass/login/mallory",
        Some(&login_body("x")),
        None,
    );
    assert_eq!((c1, c2), (400, 400), "{wrong} {unknown}");
    assert_eq!(errors(&wrong), ["invalid username or password"]);
    assert_eq!(wrong, unknown);

    // Renewal works until the password changes.
    let (code, v) = s.api("POST", "auth/token/renew-self", Some("{}"), Some(&token));
    assert_eq!(code, 200, "{v}");
    s.bao_as(
        "root",
        &[
            "write",
            "auth/userpass/users/alice/password",
            "password=battery staple",
        ],
    )
    .expect(0, "password change");
    let (code, v) = s.api("POST", "auth/token/renew-self", Some("{}"), Some(&token));
    assert_eq!(code, 400, "{v}");
    assert!(errors(&v)[0].contains("password has changed"), "{v}");
    let (code, _) = s.api(
        "POST",
        "auth/userpass/login/alice",
        Some(&login_body("battery staple")),
        None,
    );
    assert_eq!(code, 200);
}

#[test]
fn bad_input_gets_a_clear_4xx_and_stores_nothing() {
    let (_d, s) = dev();
    s.bao_as("root", &["auth", "enable", "userpass"])
        .expect(0, "auth enable");
    let cases = [
        ("auth/userpass/users/bob", json!({}), "missing password"),
        (
            "auth/userpass/users/bob",
            json!({"password": ""}),
            "missing password",
        ),
        (
            "auth/userpass/users/-bob",
            json!({"password": "pw"}),
            "invalid username",
        ),
        (
            "auth/userpass/users/bob.",
            json!({"password": "pw"}),
            "invalid username",
        ),
        (
            "auth/userpass/users/bob",
            json!({"password": "pw", "token_bound_cidrs": "10.0.0.300/8"}),
            "token_bound_cidrs",
        ),
        (
            "auth/userpass/users/bob",
            json!({"password": "pw", "token_ttl": "2h", "token_max_ttl": "1h"}),
            "token_ttl",
        ),
        (
            "auth/userpass/users/bob",
            json!({"password": "pw", "token_ttl": "soon"}),
            "token_ttl",
        ),
        (
            "auth/userpass/users/bob",
            json!({"password_hash": "plain"}),
            "bcrypt",
        ),
        (
            "auth/userpass/users/bob",
            json!({"password": "p".repeat(80)}),
            "72 bytes",
        ),
        (
            "auth/userpass/users/bob/password",
            json!({"password": "pw"}),
            "does not exist",
        ),
        (
            "auth/userpass/users/bob/policies",
            json!({"policies": "a"}),
            "does not exist",
        ),
        ("auth/userpass/login/bob", json!({}), "missing password"),
    ];
    for (path, body, want) in cases {
        let (code, v) = s.api("POST", path, Some(&body.to_string()), Some("root"));
        assert_eq!(code, 400, "{path} {body}: {v}");
        let e = errors(&v);
        assert!(e.len() == 1 && e[0].contains(want), "{path} {body}: {v}");
    }
    let (code, v) = s.api("LIST", "auth/userpass/users", None, Some("root"));
    assert!(
        code == 404 || v["data"]["keys"] == json!([]),
        "no user was stored: {code} {v}"
    );
    // Managing users needs a token; logging in does not.
    let (code, _) = s.api("LIST", "auth/userpass/users", None, None);
    assert_eq!(code, 403);
}

/// One login with curl from a chosen local address.
fn login_from(s: &Server, local: &str, user: &str, password: &str) -> (u16, Value) {
    let o = run(Command::new("curl").args([
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
        &login_body(password),
        &format!("{}/v1/auth/userpass/login/{user}", s.addr),
    ]));
    assert_eq!(o.code, 0, "{o}");
    let (text, code) = o.stdout.rsplit_once('\n').unwrap();
    (
        code.trim().parse().unwrap(),
        serde_json::from_str(text).unwrap(),
    )
}

#[test]
fn bound_cidrs_are_checked_at_login() {
    let (_d, s) = dev();
    s.bao_as("root", &["auth", "enable", "userpass"])
        .expect(0, "auth enable");
    s.bao_as(
        "root",
        &[
            "write",
            "auth/userpass/users/carol",
            "password=pw",
            "token_bound_cidrs=127.0.0.2/32",
        ],
    )
    .expect(0, "create");
    let (code, v) = login_from(&s, "127.0.0.1", "carol", "pw");
    assert_eq!(code, 403, "{v}");
    let (code, v) = login_from(&s, "127.0.0.2", "carol", "pw");
    assert_eq!(code, 200, "{v}");
    // From the wrong address, a wrong password is still just a wrong password.
    let (code, v) = login_from(&s, "127.0.0.1", "carol", "nope");
    assert_eq!(
        (code, errors(&v)),
        (400, vec!["invalid username or password".to_string()])
    );
}

#[test]
fn tresor_cli_login_reads_the_password_from_stdin() {
    let (_d, s) = dev();
    setup(&s);
    let o = run_with_stdin(
        tresor(&s).args(["login", "-method=userpass", "username=alice"]),
        Some(b"correct horse\n"),
    );
    assert_eq!(o.code, 0, "{o}");
    assert!(
        !o.stdout.contains("correct horse") && !o.stderr.contains("correct horse"),
        "{o}"
    );
    let o = run(tresor(&s).args(["kv", "get", "-field=password", "secret/app"]));
    assert_eq!((o.code, o.stdout.as_str()), (0, "hunter2"), "{o}");
    let o = run(tresor(&s).args(["kv", "put", "secret/app", "password=mine"]));
    assert_eq!(o.code, 2, "{o}");
    assert!(o.stderr.contains("permission denied"), "{o}");
    let o = run(tresor(&s).args(["token", "lookup", "-format=json"]));
    let v: Value = serde_json::from_str(&o.stdout).unwrap_or_else(|e| panic!("{e}: {o}"));
    assert_eq!(v["data"]["meta"]["username"], "alice");
    assert!(v["data"].get("entity_id").is_some(), "{v}");
    // `auth list` and `auth help` against the real server.
    let o = run(tresor(&s).env("VAULT_TOKEN", "root").args(["auth", "list"]));
    assert!(o.stdout.contains("userpass/"), "{o}");
    let o = run(tresor(&s)
        .env("VAULT_TOKEN", "root")
        .args(["auth", "help", "userpass/"]));
    assert_eq!(o.code, 0, "{o}");
}

/// Runs `tresor login` on a pseudo-terminal (`script` allocates one) and types the password
/// only once the prompt shows; returns everything the terminal displayed.
fn login_on_a_terminal(s: &Server, password: &str) -> (i32, String) {
    let cmd = format!(
        "{} login -method=userpass username=alice",
        env!("CARGO_BIN_EXE_tresor")
    );
    let mut child = clean_command("script")
        .args(["-q", "-e", "-c", &cmd, "/dev/null"])
        .current_dir(&s.dir)
        .env("HOME", &s.home)
        .env("VAULT_ADDR", &s.addr)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("script");
    let mut out = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<Vec<u8>>();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = out.read(&mut buf) {
            if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut stdin = child.stdin.take().unwrap();
    let mut typed = false;
    loop {
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(chunk) => seen.extend(chunk),
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
            Err(_) => {}
        }
        if !typed && String::from_utf8_lossy(&seen).contains("Password (will be hidden): ") {
            stdin.write_all(format!("{password}\r").as_bytes()).unwrap();
            stdin.flush().unwrap();
            typed = true;
        }
        assert!(
            Instant::now() < deadline,
            "login on a terminal hung: {}",
            String::from_utf8_lossy(&seen)
        );
    }
    let status = child.wait().unwrap();
    (
        status.code().unwrap_or(-1),
        String::from_utf8_lossy(&seen).into_owned(),
    )
}

#[test]
fn tresor_cli_login_on_a_terminal_does_not_echo_the_password() {
    let (_d, s) = dev();
    setup(&s);
    let (code, screen) = login_on_a_terminal(&s, "correct horse");
    assert_eq!(code, 0, "{screen}");
    assert!(
        screen.contains("Success! You are now authenticated."),
        "{screen}"
    );
    assert!(
        !screen.contains("correct horse"),
        "the password was echoed:\n{screen}"
    );
    // The terminal is left as it was: stty is back to echo (checked by the login above
    // printing normally afterwards), and the stored token is alice's.
    let o = run(tresor(&s).args(["token", "lookup", "-format=json"]));
    let v: Value = serde_json::from_str(&o.stdout).unwrap_or_else(|e| panic!("{e}: {o}"));
    assert_eq!(v["data"]["meta"]["username"], "alice");
}
