//! End to end, issue 12: the dev server as Vault's users start it. `VAULT_DEV_ROOT_TOKEN_ID` and
//! `VAULT_DEV_LISTEN_ADDRESS` configure it; `-dev-tls` serves TLS with a generated CA whose
//! file it prints for `VAULT_CACERT` (bao and curl trust it; the key is private; a temporary
//! directory goes away at shutdown); `-dev-kv-v1` mounts `secret/` as KV v1; the token helper
//! file is private; and policies in HCL 1's one-line forms go in through bao, with errors
//! that say "failed to parse policy" once.

mod common;

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{READY_TIMEOUT, bao_bin, clean_command, free_port, run};

/// A `tresor server` started by a test, with stdout and stderr in files; killed by PID when
/// dropped.
struct Dev {
    child: Child,
    dir: PathBuf,
    home: PathBuf,
}

impl Dev {
    fn start(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Dev {
        let home = dir.join("home");
        std::fs::create_dir_all(&home).unwrap();
        let mut cmd = clean_command(env!("CARGO_BIN_EXE_tresor"));
        cmd.arg("server")
            .args(args)
            .current_dir(dir)
            .env("HOME", &home)
            .env("TMPDIR", dir)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(dir.join("stdout")).unwrap())
            .stderr(std::fs::File::create(dir.join("stderr")).unwrap());
        for (k, v) in env {
            cmd.env(k, v);
        }
        Dev {
            child: cmd.spawn().expect("start tresor server"),
            dir: dir.to_path_buf(),
            home,
        }
    }

    fn stdout(&self) -> String {
        std::fs::read_to_string(self.dir.join("stdout")).unwrap_or_default()
    }

    fn output(&self) -> String {
        format!(
            "--- stdout\n{}\n--- stderr\n{}",
            self.stdout(),
            std::fs::read_to_string(self.dir.join("stderr")).unwrap_or_default()
        )
    }

    /// Waits (boundedly) until stdout has the dev banner with the root token.
    fn wait_banner(&mut self) -> String {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            let out = self.stdout();
            if out.contains("Root Token: ") && out.contains("production installations") {
                return out;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("tresor server exited early ({status})\n{}", self.output());
            }
            assert!(
                Instant::now() < deadline,
                "no dev banner within {READY_TIMEOUT:?}\n{}",
                self.output()
            );
            std::thread::sleep(Duration::from_millis(30));
        }
    }

    /// `kill -TERM PID` and wait (boundedly) for a clean exit.
    fn terminate(&mut self) {
        let o = run(Command::new("kill").args(["-TERM", &self.child.id().to_string()]));
        assert_eq!(o.code, 0, "{o}");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                assert!(status.success(), "{status}\n{}", self.output());
                return;
            }
            assert!(
                Instant::now() < deadline,
                "no exit after SIGTERM\n{}",
                self.output()
            );
            std::thread::sleep(Duration::from_millis(30));
        }
    }

    fn bao(&self, addr: &str, cacert: Option<&Path>, args: &[&str]) -> common::Out {
        let mut c = clean_command(bao_bin());
        c.args(args)
            .current_dir(&self.dir)
            .env("HOME", &self.home)
            .env("VAULT_ADDR", addr)
            .env("VAULT_CLIENT_TIMEOUT", "20s");
        if let Some(ca) = cacert {
            c.env("VAULT_CACERT", ca);
        }
        run(&mut c)
    }
}

impl Drop for Dev {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `GET URL/v1/sys/health` with curl (extra args first) until it answers 200.
fn wait_healthy(extra: &[&str], url: &str, dev: &mut Dev) {
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        let o = run(Command::new("curl")
            .args([
                "-s",
                "--max-time",
                "2",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
            ])
            .args(extra)
            .arg(format!("{url}/v1/sys/health")));
        if o.stdout.trim() == "200" {
            return;
        }
        if let Ok(Some(status)) = dev.child.try_wait() {
            panic!("tresor server exited early ({status})\n{}", dev.output());
        }
        assert!(
            Instant::now() < deadline,
            "{url} not healthy within {READY_TIMEOUT:?} (last: {o})\n{}",
            dev.output()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .permissions()
        .mode()
        & 0o777
}

#[test]
fn dev_server_reads_vault_dev_variables_and_keeps_the_token_file_private() {
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut dev = Dev::start(
        tmp.path(),
        &["-dev"],
        &[
            ("VAULT_DEV_ROOT_TOKEN_ID", "env-root"),
            ("VAULT_DEV_LISTEN_ADDRESS", &format!("127.0.0.1:{port}")),
        ],
    );
    let addr = format!("http://127.0.0.1:{port}");
    let banner = dev.wait_banner();
    assert!(banner.contains("Root Token: env-root"), "{banner}");
    assert!(
        banner.contains(&format!("export VAULT_ADDR='{addr}'")),
        "{banner}"
    );
    wait_healthy(&[], &addr, &mut dev);
    // The token helper file holds that token, for the owner only.
    let token_file = dev.home.join(".vault-token");
    assert_eq!(std::fs::read_to_string(&token_file).unwrap(), "env-root");
    assert_eq!(mode(&token_file), 0o600);
    let me = dev
        .bao(&addr, None, &["token", "lookup", "-format=json"])
        .expect(0, "token lookup through ~/.vault-token")
        .json();
    assert_eq!(me["data"]["id"], "env-root", "{me}");

    // A flag wins over its variable.
    let tmp2 = tempfile::tempdir().unwrap();
    let port2 = free_port();
    let mut dev2 = Dev::start(
        tmp2.path(),
        &[
            "-dev",
            "-dev-root-token-id=flag-root",
            &format!("-dev-listen-address=127.0.0.1:{port2}"),
        ],
        &[
            ("VAULT_DEV_ROOT_TOKEN_ID", "env-root"),
            ("VAULT_DEV_LISTEN_ADDRESS", &format!("127.0.0.1:{port}")),
        ],
    );
    assert!(dev2.wait_banner().contains("Root Token: flag-root"));
    wait_healthy(&[], &format!("http://127.0.0.1:{port2}"), &mut dev2);
}

#[test]
fn dev_tls_serves_https_with_a_printed_ca_that_bao_and_curl_trust() {
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut dev = Dev::start(
        tmp.path(),
        &[
            "-dev-tls",
            "-dev-root-token-id=root",
            &format!("-dev-listen-address=127.0.0.1:{port}"),
        ],
        &[],
    );
    let banner = dev.wait_banner();
    let addr = format!("https://127.0.0.1:{port}");
    assert!(
        banner.contains(&format!("export VAULT_ADDR='{addr}'")),
        "{banner}"
    );
    let cacert = banner
        .lines()
        .find_map(|l| l.trim().strip_prefix("$ export VAULT_CACERT='"))
        .and_then(|l| l.strip_suffix('\''))
        .map(PathBuf::from)
        .unwrap_or_else(|| panic!("no VAULT_CACERT line:\n{banner}"));
    // The files are in a fresh temporary directory (TMPDIR is the test's), private to the
    // owner; the server key is 0600.
    let certs = cacert.parent().unwrap().to_path_buf();
    assert!(certs.starts_with(tmp.path()), "{}", certs.display());
    assert_eq!(mode(&certs), 0o700);
    assert_eq!(mode(&certs.join("vault-key.pem")), 0o600);
    let ca = cacert.to_str().unwrap();
    wait_healthy(&["--cacert", ca], &addr, &mut dev);

    // bao with the printed VAULT_CACERT.
    let status = dev
        .bao(&addr, Some(&cacert), &["status", "-format=json"])
        .expect(0, "bao status over TLS")
        .json();
    assert_eq!(status["sealed"], false, "{status}");
    let o = run(clean_command(bao_bin())
        .args(["kv", "put", "secret/tls", "a=1"])
        .env("HOME", &dev.home)
        .env("VAULT_ADDR", &addr)
        .env("VAULT_CACERT", &cacert)
        .env("VAULT_TOKEN", "root"));
    assert_eq!(o.code, 0, "{o}");
    // curl --cacert, and curl without it refuses the unknown CA.
    let o = run(Command::new("curl")
        .args(["-s", "--max-time", "10", "--cacert", ca])
        .args(["-H", "X-Vault-Token: root"])
        .arg(format!("{addr}/v1/secret/data/tls")));
    assert_eq!(o.code, 0, "{o}");
    let v: serde_json::Value = serde_json::from_str(&o.stdout).unwrap();
    assert_eq!(v["data"]["data"]["a"], "1", "{v}");
    let o = run(Command::new("curl")
        .args(["-s", "--max-time", "10"])
        .arg(format!("{addr}/v1/sys/health")));
    assert_ne!(o.code, 0, "an untrusted CA must fail: {o}");
    // Plain HTTP is not served on a TLS listener.
    let o = run(Command::new("curl")
        .args([
            "-s",
            "--max-time",
            "10",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
        ])
        .arg(format!("http://127.0.0.1:{port}/v1/sys/health")));
    assert_ne!(o.stdout.trim(), "200", "{o}");

    // A clean shutdown removes the temporary directory it made.
    dev.terminate();
    assert!(!certs.exists(), "{} left behind", certs.display());
}

#[test]
fn dev_tls_cert_dir_keeps_the_files_where_asked() {
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port();
    let certs = tmp.path().join("my-certs");
    let mut dev = Dev::start(
        tmp.path(),
        &[
            "-dev-tls",
            &format!("-dev-tls-cert-dir={}", certs.display()),
            &format!("-dev-listen-address=127.0.0.1:{port}"),
        ],
        &[],
    );
    let banner = dev.wait_banner();
    let ca = certs.join("vault-ca.pem");
    assert!(
        banner.contains(&format!("export VAULT_CACERT='{}'", ca.display())),
        "{banner}"
    );
    assert_eq!(mode(&certs.join("vault-key.pem")), 0o600);
    wait_healthy(
        &["--cacert", ca.to_str().unwrap()],
        &format!("https://127.0.0.1:{port}"),
        &mut dev,
    );
}

#[test]
fn dev_kv_v1_mounts_secret_as_kv_version_1() {
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut dev = Dev::start(
        tmp.path(),
        &[
            "-dev-kv-v1",
            "-dev-root-token-id=root",
            &format!("-dev-listen-address=127.0.0.1:{port}"),
        ],
        &[],
    );
    dev.wait_banner();
    let addr = format!("http://127.0.0.1:{port}");
    wait_healthy(&[], &addr, &mut dev);
    let mounts = dev
        .bao(&addr, None, &["secrets", "list", "-format=json"])
        .expect(0, "secrets list")
        .json();
    assert_eq!(mounts["secret/"]["type"], "kv", "{mounts}");
    assert_eq!(mounts["secret/"]["options"]["version"], "1", "{mounts}");
    dev.bao(&addr, None, &["kv", "put", "secret/app", "user=alice"])
        .expect(0, "kv put on v1");
    let got = dev
        .bao(&addr, None, &["kv", "get", "-format=json", "secret/app"])
        .expect(0, "kv get on v1")
        .json();
    // KV v1: the data itself, no versions or metadata.
    assert_eq!(got["data"]["user"], "alice", "{got}");
    assert!(got["data"].get("metadata").is_none(), "{got}");
    // The v1 path is the secret itself.
    let o = run(Command::new("curl")
        .args(["-s", "--max-time", "10", "-H", "X-Vault-Token: root"])
        .arg(format!("{addr}/v1/secret/app")));
    let v: serde_json::Value = serde_json::from_str(&o.stdout).unwrap();
    assert_eq!(v["data"]["user"], "alice", "{v}");
}

#[test]
fn policies_in_one_line_forms_go_in_and_errors_say_so_once() {
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut dev = Dev::start(
        tmp.path(),
        &[
            "-dev",
            "-dev-root-token-id=root",
            &format!("-dev-listen-address=127.0.0.1:{port}"),
        ],
        &[],
    );
    dev.wait_banner();
    let addr = format!("http://127.0.0.1:{port}");
    wait_healthy(&[], &addr, &mut dev);
    let policy = tmp.path().join("web.hcl");
    std::fs::write(
        &policy,
        "path \"secret/data/web/*\" { capabilities = [\"create\", \"update\"] allowed_parameters = { \"data\" = [] \"options\" = [] } }\npath \"secret/metadata/*\" { capabilities = [\"list\"] } path \"sys/*\" { capabilities = [\"deny\"] }\n",
    )
    .unwrap();
    dev.bao(
        &addr,
        None,
        &["policy", "write", "web", policy.to_str().unwrap()],
    )
    .expect(0, "policy write in one-line forms");
    let token = dev
        .bao(
            &addr,
            None,
            &["token", "create", "-policy=web", "-field=token"],
        )
        .expect(0, "token create")
        .stdout;
    let token = token.trim();
    let caps = run(clean_command(bao_bin())
        .args(["token", "capabilities", "secret/data/web/a"])
        .env("HOME", &dev.home)
        .env("VAULT_ADDR", &addr)
        .env("VAULT_TOKEN", token));
    assert_eq!(caps.code, 0, "{caps}");
    assert_eq!(caps.stdout.trim(), "create, update", "{caps}");

    std::fs::write(&policy, "path \"a\" {\n  capabilities = [\"read\"\n}\n").unwrap();
    let o = dev.bao(
        &addr,
        None,
        &["policy", "write", "broken", policy.to_str().unwrap()],
    );
    assert_ne!(o.code, 0, "{o}");
    assert_eq!(
        o.stderr.matches("failed to parse policy").count(),
        1,
        "said once:\n{o}"
    );
    assert!(o.stderr.contains("line 3"), "{o}");
}
