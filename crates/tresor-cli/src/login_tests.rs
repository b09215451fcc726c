//! Issue 13, the CLI's side of the auth methods: `login -method=userpass` (password prompted
//! for, or read from a non-terminal stdin), `-method=cert`, `-path`, Vault's flag spellings,
//! `auth enable` with Vault's flags, `auth help`, and `token lookup` showing the identity
//! fields. Each runs in-process against the scripted mock server.

use serde_json::{Value, json};

use crate::testserver::{MockServer, Outcome, Recorded, run_cli};

fn login_reply() -> (u16, String) {
    (
        200,
        json!({"request_id": "r", "lease_id": "", "renewable": false, "lease_duration": 0,
               "data": null, "warnings": null,
               "auth": {"client_token": "hvs.user", "accessor": "acc2",
                        "policies": ["default", "reader"], "token_policies": ["default", "reader"],
                        "identity_policies": ["team"], "metadata": {"username": "alice"},
                        "lease_duration": 2764800, "renewable": true, "entity_id": "ent-1",
                        "token_type": "service", "orphan": true}})
        .to_string(),
    )
}

fn routes(r: &Recorded) -> (u16, String) {
    match (r.method.as_str(), r.target.as_str()) {
        ("POST", "/v1/auth/userpass/login/alice") | ("POST", "/v1/auth/people/login/alice") => {
            if r.json()["password"] == "pw" {
                login_reply()
            } else {
                (
                    400,
                    json!({"errors": ["invalid username or password"]}).to_string(),
                )
            }
        }
        ("GET", "/v1/sys/auth") => (
            200,
            json!({"data": {"people/": {"type": "userpass", "accessor": "auth_userpass_1"},
                            "weird/": {"type": "kerberos", "accessor": "auth_kerberos_2"}}})
            .to_string(),
        ),
        ("GET", "/v1/auth/token/lookup-self") => (
            200,
            json!({"data": {"accessor": "acc2", "display_name": "userpass-alice",
                            "entity_id": "ent-1", "identity_policies": ["team"],
                            "policies": ["default", "reader"], "ttl": 3600,
                            "meta": {"username": "alice"}}})
            .to_string(),
        ),
        ("POST", p) if p.starts_with("/v1/sys/auth/") => (204, String::new()),
        _ => (404, json!({"errors": []}).to_string()),
    }
}

/// Whether a table has the row `key   value` (whatever the column width).
fn has_row(table: &str, key: &str, value: &str) -> bool {
    table.lines().any(|l| {
        l.split_once(char::is_whitespace)
            .is_some_and(|(k, v)| k == key && v.trim() == value)
    })
}

struct Fixture {
    server: MockServer,
    home: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Fixture {
        Fixture {
            server: MockServer::start(routes),
            home: tempfile::tempdir().expect("tempdir"),
        }
    }

    fn run(&self, vars: &[(&str, &str)], args: &[&str], stdin: &str) -> Outcome {
        run_cli(&self.server.url(), self.home.path(), vars, args, stdin)
    }

    fn last(&self) -> Recorded {
        self.server.requests().pop().expect("a request")
    }

    fn stored_token(&self) -> Option<String> {
        std::fs::read_to_string(self.home.path().join(".vault-token")).ok()
    }
}

#[test]
fn userpass_login_reads_the_password_from_a_non_terminal_stdin() {
    let f = Fixture::new();
    let out = f.run(
        &[],
        &["login", "-method=userpass", "username=alice"],
        "pw\n",
    );
    assert_eq!(out.code, 0, "{out:?}");
    let r = f.last();
    assert_eq!(r.target, "/v1/auth/userpass/login/alice");
    assert_eq!(r.json(), json!({"password": "pw"}));
    assert!(
        out.stderr.contains("Password (will be hidden): "),
        "{out:?}"
    );
    assert!(
        !out.stdout.contains("pw\n") && !out.stderr.contains("pw\n"),
        "{out:?}"
    );
    assert_eq!(f.stored_token().as_deref(), Some("hvs.user"));
    // The table shows the identity policies and the metadata, as Vault's does.
    assert!(
        has_row(&out.stdout, "identity_policies", "[\"team\"]"),
        "{}",
        out.stdout
    );
    assert!(
        has_row(&out.stdout, "token_meta_username", "alice"),
        "{}",
        out.stdout
    );

    // No input at all is an error, not an empty password.
    let out = f.run(&[], &["login", "-method=userpass", "username=alice"], "");
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("no input"), "{out:?}");

    // A wrong password is the server's error, exit 2, and nothing is stored over the token.
    let out = f.run(
        &[],
        &["login", "-method=userpass", "username=alice"],
        "nope\n",
    );
    assert_eq!(out.code, 2, "{out:?}");
    assert!(
        out.stderr.contains("invalid username or password"),
        "{out:?}"
    );
    assert_eq!(f.stored_token().as_deref(), Some("hvs.user"));
}

#[test]
fn login_takes_vaults_flag_spellings_and_the_mount_path() {
    let f = Fixture::new();
    for args in [
        &[
            "login",
            "--method=userpass",
            "--path=people",
            "--format=json",
            "username=alice",
            "password=pw",
        ][..],
        &[
            "login",
            "-method",
            "userpass",
            "-path=people/",
            "-format",
            "json",
            "username=alice",
            "password=pw",
        ],
    ] {
        let out = f.run(&[], args, "");
        assert_eq!(out.code, 0, "{args:?}: {out:?}");
        assert_eq!(f.last().target, "/v1/auth/people/login/alice", "{args:?}");
        let v: Value = serde_json::from_str(&out.stdout).expect("json output");
        assert_eq!(v["auth"]["client_token"], "hvs.user");
        assert_eq!(v["auth"]["identity_policies"], json!(["team"]));
        assert_eq!(v["auth"]["entity_id"], "ent-1");
    }
    // Flags come before the arguments, as in Vault: after one, a flag is an argument.
    let out = f.run(
        &[],
        &[
            "login",
            "-method=userpass",
            "username=alice",
            "-path=people",
            "password=pw",
        ],
        "",
    );
    assert_ne!(f.last().target, "/v1/auth/people/login/alice", "{out:?}");
    // -token-only prints the token alone and stores nothing.
    let home_token = f.stored_token();
    let out = f.run(
        &[],
        &[
            "login",
            "-token-only",
            "-method=userpass",
            "username=alice",
            "password=pw",
        ],
        "",
    );
    assert_eq!((out.code, out.stdout.as_str()), (0, "hvs.user"), "{out:?}");
    assert_eq!(f.stored_token(), home_token);
}

#[test]
fn cert_login_needs_a_client_certificate_and_tls() {
    let f = Fixture::new();
    let out = f.run(&[], &["login", "-method=cert"], "");
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("-client-cert"), "{out:?}");
    assert!(f.server.requests().is_empty(), "nothing sent");
    // A certificate without its key is refused before anything is sent.
    let out = f.run(
        &[],
        &["login", "-method=cert", "-client-cert=/nonexistent/c.pem"],
        "",
    );
    assert_eq!(out.code, 1, "{out:?}");
    // The variables count like the flags: here the address is the problem (plain HTTP).
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("c.pem"), dir.path().join("k.pem"));
    std::fs::write(&cert, "x").unwrap();
    std::fs::write(&key, "x").unwrap();
    let out = f.run(
        &[
            ("VAULT_CLIENT_CERT", cert.to_str().unwrap()),
            ("VAULT_CLIENT_KEY", key.to_str().unwrap()),
        ],
        &["login", "-method=cert", "name=people"],
        "",
    );
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("https://"), "{out:?}");
    assert!(f.server.requests().is_empty(), "nothing sent");
}

#[test]
fn auth_help_explains_each_method() {
    let f = Fixture::new();
    let out = f.run(&[], &["auth", "help", "userpass"], "");
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stdout
            .starts_with("Usage: tresor login -method=userpass"),
        "{}",
        out.stdout
    );
    let out = f.run(&[], &["auth", "help", "cert"], "");
    assert!(out.stdout.contains("-client-cert"), "{}", out.stdout);
    // A mount path is looked up on the server.
    let out = f.run(&[("VAULT_TOKEN", "root")], &["auth", "help", "people/"], "");
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("-method=userpass"), "{}", out.stdout);
    let out = f.run(&[("VAULT_TOKEN", "root")], &["auth", "help", "weird"], "");
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr
            .contains("No method-specific CLI help for kerberos"),
        "{out:?}"
    );
    let out = f.run(&[("VAULT_TOKEN", "root")], &["auth", "help", "nowhere"], "");
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.contains("unknown auth method"), "{out:?}");
    let out = f.run(&[], &["auth", "help"], "");
    assert_eq!(out.code, 1, "{out:?}");
}

#[test]
fn auth_enable_sends_vaults_fields() {
    let f = Fixture::new();
    let out = f.run(
        &[("VAULT_TOKEN", "root")],
        &[
            "auth",
            "enable",
            "-path=people",
            "-description=People",
            "-default-lease-ttl=30m",
            "-max-lease-ttl=2h",
            "-listing-visibility=unauth",
            "-options=a=b",
            "-token-type=batch",
            "userpass",
        ],
        "",
    );
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(
        out.stdout,
        "Success! Enabled userpass auth method at: people/\n"
    );
    let r = f.last();
    assert_eq!(r.target, "/v1/sys/auth/people/");
    let b = r.json();
    assert_eq!(b["type"], "userpass");
    assert_eq!(b["description"], "People");
    assert_eq!(
        b["config"],
        json!({"default_lease_ttl": "30m0s", "max_lease_ttl": "2h0m0s",
               "listing_visibility": "unauth", "token_type": "batch"})
    );
    assert_eq!(b["options"], json!({"a": "b"}));
}

#[test]
fn token_lookup_shows_the_identity_fields() {
    let f = Fixture::new();
    let out = f.run(&[("VAULT_TOKEN", "hvs.user")], &["token", "lookup"], "");
    assert_eq!(out.code, 0, "{out:?}");
    assert!(has_row(&out.stdout, "entity_id", "ent-1"), "{}", out.stdout);
    assert!(
        has_row(&out.stdout, "identity_policies", "[team]"),
        "{}",
        out.stdout
    );
    let out = f.run(
        &[("VAULT_TOKEN", "hvs.user")],
        &["token", "lookup", "-format=json"],
        "",
    );
    let v: Value = serde_json::from_str(&out.stdout).expect("json");
    assert_eq!(v["data"]["identity_policies"], json!(["team"]));
    assert_eq!(v["data"]["entity_id"], "ent-1");
}
