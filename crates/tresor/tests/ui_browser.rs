//! The web UI end to end in a real browser (issue 20): Debian's `chromium`, driven by
//! `playwright-core` from `ui_browser.mjs`, against a real `tresor server` on 127.0.0.1 that
//! starts uninitialised and sealed. The script initialises and unseals it through the UI, logs
//! in with userpass, browses KV from the resultant ACL, creates, edits, versions and deletes a
//! secret, sees a policy's syntax error, checks capabilities, issues a certificate, runs the
//! console, logs in with the keyboard alone and through OIDC (`oidc-provider-mock`, the
//! provider sends the browser back to the UI's callback page), and signs alice in to an
//! application through Tresor's own OIDC provider page (back to the application with a code it
//! exchanges; a foreign redirect URI goes nowhere); it also measures the first load's size.
//! Screenshots go to `$TRESOR_UI_SCREENSHOTS` or `target/ui-screenshots/` (CI artefacts).
//! `.ci/run` installs chromium and playwright-core.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::{Server, free_port, plain_config, run, run_for};

const CHROMIUM: &str = "/usr/bin/chromium";
/// The whole browser run; each step inside has its own, shorter bound.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(300);

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Kills the browser by the PID the script recorded, if it is still there.
struct BrowserGuard(PathBuf);
impl Drop for BrowserGuard {
    fn drop(&mut self) {
        if let Ok(pid) = std::fs::read_to_string(&self.0)
            && let Ok(pid) = pid.trim().parse::<u32>()
            && pid > 1
            && Path::new(&format!("/proc/{pid}")).exists()
        {
            let _ = run(std::process::Command::new("kill").args(["-9", &pid.to_string()]));
        }
    }
}

/// A helper process, killed by PID when the test ends.
struct Killed(Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits (at most 20 s) until `url` answers over HTTP with any status.
fn wait_http(url: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let o = run(std::process::Command::new("curl").args([
            "-s",
            "-o",
            "/dev/null",
            "--max-time",
            "2",
            url,
        ]));
        if o.code == 0 {
            return;
        }
        assert!(Instant::now() < deadline, "{url} did not come up");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The status line's code for `GET path`, over a plain socket.
fn status_of(port: u16, path: &str) -> u16 {
    use std::io::{Read, Write};
    let mut c = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        c,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut buf = Vec::new();
    let _ = c.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf);
    text.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("{text}"))
}

/// Without `ui = true` there is no UI: `/ui/` and `/` are 404s, as in Vault.
#[test]
fn the_ui_is_off_unless_configured() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _s = Server::start(dir.path(), port, &plain_config(port, ""));
    for p in ["/ui/", "/ui", "/", "/ui/app.js"] {
        assert_eq!(status_of(port, p), 404, "{p}");
    }
}

#[test]
fn the_web_ui_in_chromium() {
    let modules = repo_root().join(".ci/node/node_modules");
    assert!(
        modules.join("playwright-core/package.json").exists(),
        "playwright-core is not installed: run .ci/run (it installs it into .ci/node)"
    );
    assert!(
        Path::new(CHROMIUM).exists(),
        "{CHROMIUM} is missing: apt-get install chromium (.ci/run does)"
    );
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let s = Server::start(dir.path(), port, &plain_config(port, "ui = true"));
    assert_eq!(status_of(port, "/ui/"), 200);
    let shots = std::env::var_os("TRESOR_UI_SCREENSHOTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target/ui-screenshots"));
    let _ = std::fs::remove_dir_all(&shots);
    // The OIDC provider the UI's OIDC sign-in goes through (oidc-provider-mock, from .ci/run).
    let idp_port = free_port();
    let _idp = Killed(
        common::clean_command("oidc-provider-mock")
            .args(["--port", &idp_port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect(
                "start oidc-provider-mock (pip install oidc-provider-mock==0.3.4; .ci/run does)",
            ),
    );
    let idp = format!("http://127.0.0.1:{idp_port}");
    wait_http(&format!("{idp}/.well-known/openid-configuration"));
    // The directory the UI's LDAP sign-in binds against (slapd, from .ci/run).
    let slapd = common::ldap::start_slapd(&dir.path().join("ldap"));
    let pid_file = dir.path().join("browser.pid");
    let _browser = BrowserGuard(pid_file.clone());
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ui_browser.mjs");
    let o = run_for(
        std::process::Command::new("node")
            .arg(&script)
            .env("TRESOR_ADDR", &s.addr)
            .env("IDP_ADDR", &idp)
            .env("LDAP_URL", format!("ldap://127.0.0.1:{}", slapd.port))
            .env("LDAP_BASE", common::ldap::BASE)
            .env("SCREENSHOTS", &shots)
            .env("BROWSER_PID_FILE", &pid_file)
            .env("CHROMIUM", CHROMIUM)
            .env("NODE_PATH", &modules),
        None,
        SCRIPT_TIMEOUT,
    );
    assert_eq!(
        o.code,
        0,
        "the browser script failed\n{o}\n--- server log\n{}",
        s.log()
    );
    assert!(o.stdout.trim_end().ends_with("ok"), "{o}");
    for step in [
        "keyboard-only login",
        "log out of a pasted token forgets it and does not revoke it",
        "LDAP sign-in with a group's policy",
        "OIDC login through the provider and the callback page",
    ] {
        assert!(
            o.stdout.contains(&format!("ok   {step} (")),
            "{step} did not run\n{o}"
        );
    }
    let first_load: u64 = o
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("first load: "))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no first-load figure\n{o}"));
    assert!(first_load < 300 * 1024, "first load {first_load} bytes");
    let n = std::fs::read_dir(&shots).map(|d| d.count()).unwrap_or(0);
    assert!(n >= 15, "{n} screenshots in {}", shots.display());
    eprintln!("{}", o.stdout);
}
