//! Issue 10, finding 14: an audit device that cannot write must not be enabled, and a device
//! that fails later must not lock the server for good. Enabling writes a test entry first (a
//! failure is a 400 naming the device, and nothing is stored); when every device fails, ordinary
//! requests stay refused (fail closed) but a token with sudo on `sys/audit/*` can still disable
//! the failing device, and requests work again.

mod common;

use std::io::Read as _;
use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use common::{TestCore, dev_core};
use parking_lot::Mutex;
use serde_json::{Value, json};
use tresor_core::CoreError;
use tresor_sdk::Operation::{Delete, Read, Update};

fn listed(t: &TestCore) -> Vec<String> {
    let u = t.core.unsealed().unwrap();
    u.audit.list().into_iter().map(|e| e.path).collect()
}

/// Seals and unseals with the dev key: what is listed afterwards is what was stored.
async fn restart(t: &TestCore) {
    t.core.seal().await.unwrap();
    let st = t
        .core
        .unseal(Some(&hex::encode(&t.key)), false)
        .await
        .expect("unseal");
    assert!(!st.sealed);
}

async fn write_secret(t: &TestCore, token: &str, v: &str) -> Result<(), CoreError> {
    t.req(Update, "secret/data/app", json!({"data": {"v": v}}), token)
        .await
        .map(|_| ())
}

fn is_audit_refusal(e: &CoreError) -> bool {
    e.to_string().contains("no audit device could record")
}

async fn assert_refused_enable(t: &TestCore, path: &str, body: Value, expect: &[&str]) {
    let e = t
        .req(Update, &format!("sys/audit/{path}"), body, &t.root)
        .await
        .expect_err("an unwritable device must not be enabled");
    assert!(matches!(e, CoreError::InvalidRequest(_)), "a 400: {e:?}");
    let msg = e.to_string();
    assert!(msg.contains(&format!("{path}/")), "names the device: {msg}");
    for frag in expect {
        assert!(msg.contains(frag), "{msg:?} should mention {frag:?}");
    }
}

#[tokio::test]
async fn an_unwritable_device_is_refused_and_nothing_is_stored() {
    let t = dev_core().await;
    let dir = tempfile::tempdir().unwrap();
    // Opens fine, every write fails: only a test write finds out.
    assert_refused_enable(
        &t,
        "full",
        json!({"type": "file", "options": {"file_path": "/dev/full"}}),
        &["No space left"],
    )
    .await;
    let missing = dir.path().join("no/such/dir/audit.log");
    assert_refused_enable(
        &t,
        "missing",
        json!({"type": "file", "options": {"file_path": missing.to_str().unwrap()}}),
        &["failed to open audit file", "No such file"],
    )
    .await;
    // A TCP address nobody listens on.
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    assert_refused_enable(
        &t,
        "sock",
        json!({"type": "socket", "options": {"address": format!("127.0.0.1:{port}")}}),
        &["error connecting"],
    )
    .await;

    // None of them is listed, none blocks anything, and none was stored.
    let list = t.data(Read, "sys/audit", json!({}), &t.root).await;
    assert!(list.is_empty(), "{list:?}");
    write_secret(&t, &t.root, "1").await.expect("not blocked");
    assert!(
        t.physical
            .list("core/audit-salt/")
            .await
            .unwrap()
            .is_empty(),
        "no salt stored for a refused device"
    );
    restart(&t).await;
    assert!(listed(&t).is_empty());
    write_secret(&t, &t.root, "2").await.expect("not blocked");

    // A writable device is enabled, and its test entry is the first line of its log.
    let log = dir.path().join("audit.log");
    t.ok(
        Update,
        "sys/audit/good",
        json!({"type": "file", "options": {"file_path": log.to_str().unwrap()}}),
        &t.root,
    )
    .await;
    let text = std::fs::read_to_string(&log).unwrap();
    let first: Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    assert_eq!(first["request"]["path"], "sys/audit/test", "{first}");
}

/// A file device in its own directory; removing the directory and reopening (SIGHUP) makes
/// every later write fail.
struct BreakableFile {
    dir: tempfile::TempDir,
}

impl BreakableFile {
    async fn enable(t: &TestCore, name: &str) -> BreakableFile {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("logs/audit.log");
        std::fs::create_dir(log.parent().unwrap()).unwrap();
        t.ok(
            Update,
            &format!("sys/audit/{name}"),
            json!({"type": "file", "options": {"file_path": log.to_str().unwrap()}}),
            &t.root,
        )
        .await;
        BreakableFile { dir }
    }
    fn logs(&self) -> std::path::PathBuf {
        self.dir.path().join("logs")
    }
    fn break_now(&self, t: &TestCore) {
        std::fs::remove_dir_all(self.logs()).unwrap();
        t.core.unsealed().unwrap().audit.reload();
    }
}

#[tokio::test]
async fn a_device_failing_later_fails_closed_but_root_can_disable_it() {
    let t = dev_core().await;
    let dev = BreakableFile::enable(&t, "file").await;
    write_secret(&t, &t.root, "before").await.unwrap();
    dev.break_now(&t);

    // Fail closed stays: ordinary requests, root's included, are refused and do not happen.
    let e = write_secret(&t, &t.root, "during").await.unwrap_err();
    assert!(is_audit_refusal(&e), "{e}");
    let e = t
        .req(Read, "sys/audit", json!({}), &t.root)
        .await
        .unwrap_err();
    assert!(is_audit_refusal(&e), "{e}");
    // Enabling a second, working device is an ordinary request too.
    let other = tempfile::tempdir().unwrap();
    let e = t
        .req(
            Update,
            "sys/audit/other",
            json!({"type": "file", "options": {"file_path": other.path().join("a.log").to_str().unwrap()}}),
            &t.root,
        )
        .await
        .unwrap_err();
    assert!(is_audit_refusal(&e), "{e}");

    // The way out: root disables the failing device.
    t.ok(Delete, "sys/audit/file", json!({}), &t.root).await;
    assert!(listed(&t).is_empty());
    assert_eq!(
        t.data(Read, "secret/data/app", json!({}), &t.root).await["data"]["v"],
        "before",
        "the refused write did not happen"
    );
    write_secret(&t, &t.root, "after")
        .await
        .expect("requests work again");
    restart(&t).await;
    assert!(listed(&t).is_empty(), "the disable was stored");
}

#[tokio::test]
async fn only_sudo_gets_the_way_out() {
    let t = dev_core().await;
    t.policy(
        "audit-no-sudo",
        r#"path "sys/audit/*" { capabilities = ["create", "read", "update", "delete"] }"#,
    )
    .await;
    t.policy(
        "audit-sudo",
        r#"path "sys/audit/*" { capabilities = ["delete", "sudo"] }"#,
    )
    .await;
    let plain = t.token(&["audit-no-sudo"], json!({})).await;
    let sudo = t.token(&["audit-sudo"], json!({})).await;
    let a = BreakableFile::enable(&t, "a").await;
    let b = BreakableFile::enable(&t, "b").await;
    a.break_now(&t);
    // One device still records: nothing is exempt, nothing needed.
    write_secret(&t, &t.root, "1").await.unwrap();
    b.break_now(&t);

    // Without sudo, the disable is refused and the device stays.
    let e = t
        .req(Delete, "sys/audit/a", json!({}), &plain)
        .await
        .unwrap_err();
    assert!(
        is_audit_refusal(&e) || matches!(e, CoreError::PermissionDenied),
        "{e}"
    );
    assert_eq!(listed(&t), ["a/", "b/"]);
    // Only a disable is let through, not other sys/audit writes, even root's.
    let e = t
        .req(
            Update,
            "sys/audit/c",
            json!({"type": "file", "options": {"file_path": "discard"}}),
            &t.root,
        )
        .await
        .unwrap_err();
    assert!(is_audit_refusal(&e), "{e}");
    assert_eq!(listed(&t), ["a/", "b/"]);

    // A sudo token (not root) disables both; while one failing device remains, that is all.
    t.ok(Delete, "sys/audit/a", json!({}), &sudo).await;
    let e = write_secret(&t, &t.root, "2").await.unwrap_err();
    assert!(is_audit_refusal(&e), "{e}");
    t.ok(Delete, "sys/audit/b", json!({}), &sudo).await;
    assert!(listed(&t).is_empty());
    write_secret(&t, &t.root, "3")
        .await
        .expect("requests work again");
}

#[tokio::test]
async fn unseal_with_a_device_that_cannot_open_leaves_the_way_out() {
    let t = dev_core().await;
    let dev = BreakableFile::enable(&t, "file").await;
    t.core.seal().await.unwrap();
    std::fs::remove_dir_all(dev.logs()).unwrap();
    // The server still unseals; the device is enabled and failing.
    restart(&t).await;
    assert_eq!(listed(&t), ["file/"]);
    let e = write_secret(&t, &t.root, "x").await.unwrap_err();
    assert!(is_audit_refusal(&e), "{e}");
    t.ok(Delete, "sys/audit/file", json!({}), &t.root).await;
    write_secret(&t, &t.root, "y")
        .await
        .expect("requests work again");
}

/// A TCP audit sink in the test: collects lines until stopped, then closes everything.
struct Listener {
    addr: String,
    stop: Arc<AtomicBool>,
    got: Arc<Mutex<Vec<u8>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Listener {
    fn start() -> Listener {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.set_nonblocking(true).unwrap();
        let addr = l.local_addr().unwrap().to_string();
        let stop = Arc::new(AtomicBool::new(false));
        let got = Arc::new(Mutex::new(Vec::new()));
        let (s2, g2) = (stop.clone(), got.clone());
        let thread = std::thread::spawn(move || {
            let mut conns = Vec::new();
            while !s2.load(Ordering::SeqCst) {
                if let Ok((c, _)) = l.accept() {
                    c.set_nonblocking(true).unwrap();
                    conns.push(c);
                }
                let mut buf = [0u8; 4096];
                for c in &mut conns {
                    while let Ok(n) = c.read(&mut buf) {
                        if n == 0 {
                            break;
                        }
                        g2.lock().extend_from_slice(&buf[..n]);
                    }
                }
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
            // Dropping the listener and the connections: the device's peer is gone.
        });
        Listener {
            addr,
            stop,
            got,
            thread: Some(thread),
        }
    }
    fn stop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        self.thread.take().unwrap().join().unwrap();
    }
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.got.lock()).into_owned()
    }
}

#[tokio::test]
async fn a_socket_device_whose_listener_goes_away_can_be_disabled_by_root() {
    let t = dev_core().await;
    let mut l = Listener::start();
    t.ok(
        Update,
        "sys/audit/sock",
        json!({"type": "socket", "options": {"address": l.addr}}),
        &t.root,
    )
    .await;
    write_secret(&t, &t.root, "before").await.unwrap();
    let wait = std::time::Instant::now();
    while !l.text().contains("secret/data/app") && wait.elapsed().as_secs() < 5 {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    assert!(
        l.text().contains("sys/audit/test"),
        "the test entry reached the listener"
    );
    l.stop();

    // A write into a connection the peer has closed may still be accepted by the kernel once;
    // after that every request is refused.
    let mut refused = false;
    for i in 0..5 {
        if let Err(e) = write_secret(&t, &t.root, &format!("during-{i}")).await {
            assert!(is_audit_refusal(&e), "{e}");
            refused = true;
            break;
        }
    }
    assert!(
        refused,
        "requests must be refused once the listener is gone"
    );
    let e = write_secret(&t, &t.root, "still").await.unwrap_err();
    assert!(is_audit_refusal(&e), "{e}");

    t.ok(Delete, "sys/audit/sock", json!({}), &t.root).await;
    write_secret(&t, &t.root, "after")
        .await
        .expect("requests work again");
}
