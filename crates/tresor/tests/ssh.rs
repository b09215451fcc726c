//! Issue 15 end to end: the SSH secrets engine on a real `tresor server -dev`, driven as a
//! new user would with the `bao` CLI and curl, against a real OpenSSH server.
//!
//! sshd runs as an unprivileged user, `tresor-ssh` (created by the test when missing: sshd
//! without root can log in only the user it runs as, and refuses locked system accounts such
//! as `nobody`), so the certificates name that user. sshd trusts Tresor's CA (`TrustedUserCAKeys`) and presents a host
//! certificate Tresor signed, which the client accepts through an `@cert-authority`
//! known_hosts line. The CA is Tresor's default, an RSA key, so the certificates carry
//! `rsa-sha2-256` signatures that OpenSSH 9 accepts. sshd is stopped by PID when the test
//! ends, however it ends.

mod common;

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Out, Server, errors, free_port, run, run_with_stdin};
use serde_json::json;

/// An sshd process, killed (SIGKILL by PID) when dropped.
struct Sshd {
    child: Child,
    log: std::path::PathBuf,
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The unprivileged user sshd runs as and certificates log in as.
const USER: &str = "tresor-ssh";

/// Creates [`USER`] (no home, /bin/sh) unless it exists. Needs root, as the tests run.
fn ensure_user() {
    if run(Command::new("id").arg(USER)).code == 0 {
        return;
    }
    let o = run(Command::new("useradd").args([
        "--system",
        "--no-create-home",
        "--shell",
        "/bin/sh",
        USER,
    ]));
    assert!(
        o.code == 0 || run(Command::new("id").arg(USER)).code == 0,
        "cannot create the user {USER} sshd runs as (the test needs root)\n{o}"
    );
}

fn id_of(flag: &str, user: &str) -> u32 {
    let o = run(Command::new("id").args([flag, user]));
    assert_eq!(o.code, 0, "id {flag} {user}\n{o}");
    o.stdout.trim().parse().expect("numeric id")
}

fn give_to(path: &Path, uid: u32, gid: u32) {
    std::os::unix::fs::chown(path, Some(uid), Some(gid)).expect("chown");
}

/// Starts sshd as [`USER`] on `port` with the given CA and host certificate; waits until it
/// accepts connections (bounded).
fn start_sshd(dir: &Path, port: u16) -> Sshd {
    let sshd = Path::new("/usr/sbin/sshd");
    assert!(
        sshd.exists(),
        "/usr/sbin/sshd is missing: install openssh-server (.ci/run does)"
    );
    ensure_user();
    let (uid, gid) = (id_of("-u", USER), id_of("-g", USER));
    let config = format!(
        "Port {port}\nListenAddress 127.0.0.1\nHostKey {d}/host_key\nHostCertificate {d}/host_key-cert.pub\n\
         PidFile {d}/sshd.pid\nTrustedUserCAKeys {d}/ca.pub\nAuthorizedKeysFile none\n\
         PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\n",
        d = dir.display()
    );
    std::fs::write(dir.join("sshd_config"), config).unwrap();
    for f in ["host_key", "host_key-cert.pub", "ca.pub", "sshd_config"] {
        give_to(&dir.join(f), uid, gid);
    }
    give_to(dir, uid, gid);
    let log = dir.join("sshd.log");
    let child = Command::new(sshd)
        .arg("-D")
        .arg("-f")
        .arg(dir.join("sshd_config"))
        .arg("-E")
        .arg(&log)
        .uid(uid)
        .gid(gid)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start sshd");
    let mut s = Sshd { child, log };
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Ok(Some(status)) = s.child.try_wait() {
            panic!(
                "sshd exited ({status}):\n{}",
                std::fs::read_to_string(&s.log).unwrap_or_default()
            );
        }
        assert!(Instant::now() < deadline, "sshd did not listen within 10s");
        std::thread::sleep(Duration::from_millis(50));
    }
    s
}

/// `ssh tresor-ssh@127.0.0.1 true` with a key and its certificate, checking the host against
/// `known_hosts`.
fn ssh_login(dir: &Path, port: u16, key: &str, known_hosts: &str) -> Out {
    run(Command::new("ssh")
        .args(["-F", "/dev/null", "-p", &port.to_string()])
        .arg("-i")
        .arg(dir.join(key))
        .arg("-o")
        .arg(format!(
            "CertificateFile={}",
            dir.join(format!("{key}-cert.pub")).display()
        ))
        .arg("-o")
        .arg(format!(
            "UserKnownHostsFile={}",
            dir.join(known_hosts).display()
        ))
        .args([
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            "BatchMode=yes",
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            "ConnectTimeout=10",
        ])
        .arg(format!("{USER}@127.0.0.1"))
        .arg("true"))
}

fn keygen(dir: &Path, name: &str) {
    let o = run(Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", name, "-f"])
        .arg(dir.join(name)));
    assert_eq!(o.code, 0, "ssh-keygen {name}\n{o}");
}

/// `bao write -field=signed_key ssh/sign/ROLE ...` into `NAME-cert.pub`.
fn sign(s: &Server, dir: &Path, role: &str, name: &str, args: &[&str]) -> Out {
    let key_arg = format!("public_key=@{}", dir.join(format!("{name}.pub")).display());
    let mut all = vec!["write", "-field=signed_key"];
    let path = format!("ssh/sign/{role}");
    all.push(&path);
    all.push(&key_arg);
    all.extend_from_slice(args);
    let o = s.bao_as("root", &all);
    if o.code == 0 {
        std::fs::write(dir.join(format!("{name}-cert.pub")), o.stdout.trim()).unwrap();
    }
    o
}

#[test]
fn signed_user_and_host_certificates_work_with_a_real_sshd() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start_dev(dir.path(), free_port());
    let t = tempfile::tempdir().unwrap();
    let t = t.path();

    s.bao_as("root", &["secrets", "enable", "ssh"])
        .expect(0, "secrets enable ssh");
    // The default CA key: RSA (4096 bits), as in Vault.
    let ca = s
        .bao_as(
            "root",
            &[
                "write",
                "-format=json",
                "ssh/config/ca",
                "generate_signing_key=true",
            ],
        )
        .expect(0, "config/ca")
        .json();
    assert!(
        ca["data"]["public_key"]
            .as_str()
            .unwrap()
            .starts_with("ssh-rsa ")
    );
    // public_key needs no token.
    let (code, body) = s.curl("GET", "ssh/public_key", None, None);
    assert_eq!(code, 200);
    assert_eq!(body, ca["data"]["public_key"].as_str().unwrap());
    std::fs::write(t.join("ca.pub"), &body).unwrap();

    let role = json!({
        "key_type": "ca", "allow_user_certificates": true,
        "allowed_users": format!("{USER},alice"), "default_user": USER,
        "default_extensions": {"permit-pty": ""}, "allowed_extensions": "permit-pty",
        "ttl": "30m", "max_ttl": "1h",
    });
    run_with_stdin(
        s.bao_cmd(&["write", "ssh/roles/dev", "-"])
            .env("VAULT_TOKEN", "root"),
        Some(role.to_string().as_bytes()),
    )
    .expect(0, "write role dev");
    s.bao_as(
        "root",
        &[
            "write",
            "ssh/roles/hosts",
            "key_type=ca",
            "allow_host_certificates=true",
            "allowed_domains=127.0.0.1,localhost",
            "allow_bare_domains=true",
            "ttl=1h",
        ],
    )
    .expect(0, "write role hosts");

    // The host key, signed as a host certificate.
    let o = run(Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(t.join("host_key")));
    assert_eq!(o.code, 0, "{o}");
    sign(
        &s,
        t,
        "hosts",
        "host_key",
        &["cert_type=host", "valid_principals=127.0.0.1"],
    )
    .expect(0, "sign host key");

    // User keys: one signed for the sshd user, one for alice.
    keygen(t, "user_key");
    keygen(t, "alice_key");
    let principal = format!("valid_principals={USER}");
    sign(&s, t, "dev", "user_key", &[&principal]).expect(0, "sign user");
    sign(&s, t, "dev", "alice_key", &["valid_principals=alice"]).expect(0, "sign alice");

    // ssh-keygen -L shows what the role set.
    let l = run(Command::new("ssh-keygen")
        .arg("-L")
        .arg("-f")
        .arg(t.join("user_key-cert.pub")));
    assert_eq!(l.code, 0, "{l}");
    assert!(
        l.stdout
            .contains("Type: ssh-ed25519-cert-v01@openssh.com user certificate"),
        "{l}"
    );
    assert!(
        l.stdout.contains("Signing CA: RSA") && l.stdout.contains("(using rsa-sha2-256)"),
        "{l}"
    );
    let principals = l
        .stdout
        .split("Principals:")
        .nth(1)
        .unwrap()
        .split("Critical Options:")
        .next()
        .unwrap();
    assert_eq!(
        principals.split_whitespace().collect::<Vec<_>>(),
        [USER],
        "{l}"
    );
    let extensions = l.stdout.split("Extensions:").nth(1).unwrap();
    assert_eq!(
        extensions.split_whitespace().collect::<Vec<_>>(),
        ["permit-pty"],
        "{l}"
    );
    let valid = l
        .stdout
        .lines()
        .find(|x| x.trim_start().starts_with("Valid:"))
        .unwrap();
    assert!(valid.contains("from ") && valid.contains(" to "), "{valid}");
    // 30 minutes plus the 30 s backdating.
    let stamps: Vec<&str> = valid
        .split_whitespace()
        .filter(|w| w.contains('T'))
        .collect();
    assert_eq!(stamps.len(), 2, "{valid}");
    let secs = |s: &str| {
        let o = run(Command::new("date").args(["-d", s, "+%s"]));
        o.stdout.trim().parse::<i64>().unwrap()
    };
    assert_eq!(secs(stamps[1]) - secs(stamps[0]), 1800 + 30, "{valid}");
    let h = run(Command::new("ssh-keygen")
        .arg("-L")
        .arg("-f")
        .arg(t.join("host_key-cert.pub")));
    assert!(
        h.stdout.contains("host certificate") && h.stdout.contains("127.0.0.1"),
        "{h}"
    );

    let port = free_port();
    let ca_pub = std::fs::read_to_string(t.join("ca.pub")).unwrap();
    std::fs::write(
        t.join("known_hosts"),
        format!("@cert-authority * {}", ca_pub.trim()),
    )
    .unwrap();
    let other_ca = run(Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(t.join("other_ca")));
    assert_eq!(other_ca.code, 0);
    let other = std::fs::read_to_string(t.join("other_ca.pub")).unwrap();
    std::fs::write(
        t.join("known_hosts_other"),
        format!("@cert-authority * {}", other.trim()),
    )
    .unwrap();
    let sshd = start_sshd(t, port);
    let sshd_log = || std::fs::read_to_string(&sshd.log).unwrap_or_default();

    // The allowed principal logs in and runs `true`.
    let ok = ssh_login(t, port, "user_key", "known_hosts");
    assert_eq!(
        ok.code,
        0,
        "login as {USER} should succeed:\n{ok}\n--- sshd log\n{}",
        sshd_log()
    );
    // A certificate for another principal is refused.
    let refused = ssh_login(t, port, "alice_key", "known_hosts");
    assert_eq!(refused.code, 255, "{refused}");
    assert!(refused.stderr.contains("Permission denied"), "{refused}");
    // A client trusting another CA does not accept the host.
    let bad_host = ssh_login(t, port, "user_key", "known_hosts_other");
    assert_eq!(bad_host.code, 255, "{bad_host}");
    assert!(
        bad_host.stderr.contains("Host key verification failed"),
        "{bad_host}"
    );
    // `tresor ssh` signs the local key and runs ssh with it (extra arguments go to ssh).
    let o = run(common::clean_command(env!("CARGO_BIN_EXE_tresor"))
        .env("HOME", &s.home)
        .env("VAULT_ADDR", &s.addr)
        .env("VAULT_TOKEN", "root")
        .arg("ssh")
        .arg("-mode=ca")
        .arg("-role=dev")
        .arg(format!(
            "-public-key-path={}",
            t.join("user_key.pub").display()
        ))
        .arg("-strict-host-key-checking=yes")
        .arg(format!(
            "-user-known-hosts-file={}",
            t.join("known_hosts").display()
        ))
        .arg(format!("{USER}@127.0.0.1"))
        .args([
            "-p",
            &port.to_string(),
            "-F",
            "/dev/null",
            "-o",
            "BatchMode=yes",
        ])
        .args(["echo", "signed-by-tresor"]));
    assert_eq!(o.code, 0, "tresor ssh\n{o}\n--- sshd log\n{}", sshd_log());
    assert_eq!(o.stdout.trim(), "signed-by-tresor", "{o}");
    // As a principal the role refuses: the signing fails and ssh never runs.
    let o = run(common::clean_command(env!("CARGO_BIN_EXE_tresor"))
        .env("HOME", &s.home)
        .env("VAULT_ADDR", &s.addr)
        .env("VAULT_TOKEN", "root")
        .arg("ssh")
        .arg("-role=dev")
        .arg(format!(
            "-public-key-path={}",
            t.join("user_key.pub").display()
        ))
        .arg("root@127.0.0.1")
        .args(["-p", &port.to_string(), "true"]));
    assert_eq!(o.code, 2, "{o}");
    assert!(
        o.stderr
            .contains("root is not a valid value for valid_principals"),
        "{o}"
    );
    drop(sshd);

    // Bad input: clear 4xx errors in Vault's shape, nothing stored.
    let o = sign(&s, t, "dev", "user_key", &["valid_principals=root"]);
    assert_eq!(o.code, 2, "{o}");
    assert!(
        o.stderr
            .contains("root is not a valid value for valid_principals"),
        "{o}"
    );
    let (code, v) = s.api(
        "POST",
        "ssh/sign/nope",
        Some(r#"{"public_key":"ssh-ed25519 AAAA"}"#),
        Some("root"),
    );
    assert_eq!(code, 400);
    assert_eq!(errors(&v), ["Unknown role: nope"]);
    let o = run(Command::new("ssh-keygen")
        .args(["-q", "-t", "rsa", "-b", "1024", "-N", "", "-f"])
        .arg(t.join("weak")));
    assert_eq!(o.code, 0, "{o}");
    let o = sign(&s, t, "dev", "weak", &[&principal]);
    assert_eq!(o.code, 2, "{o}");
    assert!(
        o.stderr.contains("RSA keys under 2048 bits are refused"),
        "{o}"
    );
    let (code, v) = s.api(
        "POST",
        "ssh/roles/bad",
        Some(r#"{"key_type":"ca","allow_user_certificates":true,"algorithm_signer":"ssh-rsa"}"#),
        Some("root"),
    );
    assert_eq!(code, 400, "{v}");
    assert!(errors(&v)[0].contains("SHA-1"), "{v}");
    let (code, v) = s.api(
        "POST",
        "ssh/config/ca",
        Some(r#"{"key_type":"dsa"}"#),
        Some("root"),
    );
    assert_eq!(code, 400, "{v}");
    let (code, _) = s.api("GET", "ssh/roles/bad", None, Some("root"));
    assert_eq!(code, 404);
    let (_, v) = s.api("LIST", "ssh/issuers", None, Some("root"));
    assert_eq!(v["data"]["keys"].as_array().unwrap().len(), 1, "{v}");
}

#[test]
fn issue_generates_a_key_pair_ssh_keygen_reads() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start_dev(dir.path(), free_port());
    s.bao_as("root", &["secrets", "enable", "ssh"])
        .expect(0, "enable");
    s.bao_as("root", &["write", "ssh/config/ca", "key_type=ed25519"])
        .expect(0, "ca");
    s.bao_as(
        "root",
        &[
            "write",
            "ssh/roles/dev",
            "key_type=ca",
            "allow_user_certificates=true",
            "allowed_users=*",
        ],
    )
    .expect(0, "role");
    for (kt, want) in [("ed25519", "ED25519"), ("ec", "ECDSA"), ("rsa", "RSA")] {
        let v = s
            .bao_as(
                "root",
                &[
                    "write",
                    "-format=json",
                    "ssh/issue/dev",
                    &format!("key_type={kt}"),
                    "valid_principals=ops",
                ],
            )
            .expect(0, "issue")
            .json();
        let d = &v["data"];
        let key = dir.path().join(format!("issued_{kt}"));
        std::fs::write(&key, d["private_key"].as_str().unwrap()).unwrap();
        std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .unwrap();
        // ssh-keygen derives the public key from the private key ...
        let o = run(Command::new("ssh-keygen").arg("-y").arg("-f").arg(&key));
        assert_eq!(o.code, 0, "{kt}: {o}");
        // ... and it is the key the certificate certifies.
        std::fs::write(dir.path().join("c.pub"), d["signed_key"].as_str().unwrap()).unwrap();
        let l = run(Command::new("ssh-keygen")
            .arg("-L")
            .arg("-f")
            .arg(dir.path().join("c.pub")));
        assert!(
            l.stdout.contains("Public key: ") && l.stdout.contains(want),
            "{kt}: {l}"
        );
        let fp_key = run(Command::new("ssh-keygen").arg("-l").arg("-f").arg(&key));
        let fp = fp_key.stdout.split_whitespace().nth(1).unwrap().to_owned();
        assert!(l.stdout.contains(&fp), "{kt}: {fp} not in\n{l}");
    }
}

/// `allowed_users_template`: each person may get certificates only for their own login name,
/// rendered from the entity behind the token that asks.
#[test]
fn templated_allowed_users_follow_the_callers_identity() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start_dev(dir.path(), free_port());
    s.bao_as("root", &["secrets", "enable", "ssh"])
        .expect(0, "enable ssh");
    s.bao_as("root", &["write", "ssh/config/ca", "key_type=ed25519"])
        .expect(0, "ca");
    s.bao_as("root", &["auth", "enable", "userpass"])
        .expect(0, "enable userpass");
    let auths = s
        .bao_as("root", &["auth", "list", "-format=json"])
        .expect(0, "auth list")
        .json();
    let accessor = auths["userpass/"]["accessor"].as_str().unwrap().to_owned();
    s.bao_as(
        "root",
        &[
            "write",
            "ssh/roles/me",
            "key_type=ca",
            "allow_user_certificates=true",
            "allowed_users_template=true",
            &format!("allowed_users={{{{identity.entity.aliases.{accessor}.name}}}}"),
            &format!("default_user={{{{identity.entity.aliases.{accessor}.name}}}}"),
            "default_user_template=true",
        ],
    )
    .expect(0, "role me");
    std::fs::write(
        dir.path().join("signer.hcl"),
        r#"path "ssh/sign/me" { capabilities = ["update"] }"#,
    )
    .unwrap();
    s.bao_as("root", &["policy", "write", "signer", "signer.hcl"])
        .expect(0, "policy");
    for user in ["carol", "dave"] {
        s.bao_as(
            "root",
            &[
                "write",
                &format!("auth/userpass/users/{user}"),
                "password=pw-123456",
                "token_policies=signer",
            ],
        )
        .expect(0, "user");
    }
    let login = s
        .bao(&[
            "login",
            "-format=json",
            "-method=userpass",
            "username=carol",
            "password=pw-123456",
        ])
        .expect(0, "login carol")
        .json();
    let token = login["auth"]["client_token"].as_str().unwrap().to_owned();
    keygen(dir.path(), "k");
    let key_arg = format!("public_key=@{}", dir.path().join("k.pub").display());
    // Her own name, explicitly or by default.
    for extra in [&["valid_principals=carol"][..], &[]] {
        let mut args = vec!["write", "-field=signed_key", "ssh/sign/me", &key_arg];
        args.extend_from_slice(extra);
        let o = s.bao_as(&token, &args).expect(0, "sign as carol");
        std::fs::write(dir.path().join("c.pub"), o.stdout.trim()).unwrap();
        let l = run(Command::new("ssh-keygen")
            .arg("-L")
            .arg("-f")
            .arg(dir.path().join("c.pub")));
        let principals = l.stdout.split("Principals:").nth(1).unwrap();
        assert_eq!(principals.split_whitespace().next(), Some("carol"), "{l}");
    }
    // Not dave's.
    let o = s.bao_as(
        &token,
        &["write", "ssh/sign/me", &key_arg, "valid_principals=dave"],
    );
    assert_eq!(o.code, 2, "{o}");
    assert!(
        o.stderr
            .contains("dave is not a valid value for valid_principals"),
        "{o}"
    );
}
