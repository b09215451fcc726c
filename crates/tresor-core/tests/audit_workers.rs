//! Issue 12, hardening: audit devices never block a runtime worker. Each device writes on its
//! own thread behind a bounded queue; a request waits for every device's answer, each bounded
//! by the device's `write_timeout`, and fails closed when none recorded it. A socket device
//! whose peer stopped reading delays requests by about its timeout and no more, the runtime
//! keeps serving meanwhile (these tests run on a single-threaded runtime, where one blocked
//! write would stop everything), the request and response entries of a write name the same
//! operation, and a device's thread ends when the device is disabled, replaced or sealed.

mod common;

use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::{TestCore, dev_core};
use serde_json::{Value, json};
use tresor_core::CoreError;
use tresor_core::audit::{AuditEntry, Device};
use tresor_sdk::Operation::{Delete, Read, Update};

/// The stuck device's `write_timeout` in these tests.
const TIMEOUT: Duration = Duration::from_millis(300);
/// What a request may take while a device is stuck: generous, for a loaded 2-core CI.
const BOUND: Duration = Duration::from_millis(3000);

/// A TCP peer that accepts every connection and never reads from it, until dropped.
struct Deaf {
    addr: String,
    accepted: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Deaf {
    fn start() -> Deaf {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.set_nonblocking(true).unwrap();
        let addr = l.local_addr().unwrap().to_string();
        let accepted = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (a, s) = (accepted.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let mut held: Vec<TcpStream> = Vec::new();
            while !s.load(Ordering::SeqCst) {
                if let Ok((c, _)) = l.accept() {
                    held.push(c);
                    a.fetch_add(1, Ordering::SeqCst);
                }
                std::thread::sleep(Duration::from_millis(2));
            }
        });
        Deaf {
            addr,
            accepted,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Deaf {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

async fn enable_deaf_socket(t: &TestCore, name: &str, peer: &Deaf) {
    t.ok(
        Update,
        &format!("sys/audit/{name}"),
        json!({"type": "socket", "options": {"address": peer.addr, "write_timeout": "300ms"}}),
        &t.root,
    )
    .await;
}

async fn enable_file(t: &TestCore, name: &str, log: &std::path::Path) {
    t.ok(
        Update,
        &format!("sys/audit/{name}"),
        json!({"type": "file", "options": {"file_path": log.to_str().unwrap()}}),
        &t.root,
    )
    .await;
}

/// A KV write whose request entry is about 128 KiB (data keys are logged in clear), so a few
/// of them fill the socket buffers of a peer that does not read.
async fn big_write(t: &TestCore, path: &str, n: usize) -> Result<(), CoreError> {
    let key = format!("{n:06}{}", "k".repeat(128 * 1024));
    t.req(Update, path, json!({"data": {key: "v"}}), &t.root)
        .await
        .map(|_| ())
}

fn is_audit_refusal(e: &CoreError) -> bool {
    e.to_string().contains("no audit device could record")
}

/// Whether a thread of this process is named `name`.
fn thread_alive(name: &str) -> bool {
    std::fs::read_dir("/proc/self/task").unwrap().any(|t| {
        let comm = t.unwrap().path().join("comm");
        std::fs::read_to_string(comm).is_ok_and(|c| c.trim_end() == name)
    })
}

/// Waits until a writer thread runs (it names itself as it starts).
async fn wait_thread_alive(name: &str) {
    let start = Instant::now();
    while !thread_alive(name) {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "writer thread {name} never ran"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn wait_thread_gone(name: &str) {
    let start = Instant::now();
    while thread_alive(name) {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "writer thread {name} still running"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "current_thread")]
async fn a_stuck_socket_device_costs_at_most_its_timeout_and_a_healthy_file_device_records() {
    let t = dev_core().await;
    let peer = Deaf::start();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("audit.log");
    enable_deaf_socket(&t, "sock", &peer).await;
    enable_file(&t, "file", &log).await;

    let mut slowest = Duration::ZERO;
    let mut n = 0;
    // Until the peer's buffers are full and a write had to wait for the timeout, and a few
    // more after that (each timed-out write drops the connection; the next one connects anew).
    let mut stalls = 0;
    while stalls < 3 {
        assert!(n < 400, "the socket device never stalled");
        let started = Instant::now();
        big_write(&t, "secret/data/stuck", n)
            .await
            .expect("the file device records it, so the request succeeds");
        let took = started.elapsed();
        assert!(
            took < BOUND,
            "a request waited {took:?} for a stuck device with a {TIMEOUT:?} timeout"
        );
        if took >= TIMEOUT {
            stalls += 1;
        }
        slowest = slowest.max(took);
        n += 1;
    }
    assert!(slowest >= TIMEOUT, "{slowest:?}");
    assert!(
        peer.accepted.load(Ordering::SeqCst) >= 2,
        "a timed-out write drops its connection and the next entry connects again"
    );
    // Every request reached the healthy device, request and response entry.
    let text = std::fs::read_to_string(&log).unwrap();
    let entries: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    for kind in ["request", "response"] {
        let recorded = entries
            .iter()
            .filter(|e| e["type"] == kind && e["request"]["path"] == "secret/data/stuck")
            .count();
        assert_eq!(recorded, n, "{kind} entries in the file device");
    }
}

#[tokio::test(flavor = "current_thread")]
async fn with_only_a_stuck_socket_device_requests_fail_closed_and_the_runtime_keeps_serving() {
    let t = dev_core().await;
    let peer = Deaf::start();
    enable_deaf_socket(&t, "sock", &peer).await;
    let ticks = Arc::new(AtomicUsize::new(0));
    let ticker = {
        let ticks = ticks.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(10)).await;
                ticks.fetch_add(1, Ordering::SeqCst);
            }
        })
    };

    let mut refused = None;
    for n in 0..400 {
        let before = ticks.load(Ordering::SeqCst);
        let started = Instant::now();
        // While the write waits for the device, an unaudited call on the same (only) worker
        // thread answers: nothing blocks the runtime.
        let probe = async {
            tokio::time::sleep(TIMEOUT / 3).await;
            let asked = Instant::now();
            let st = t.core.seal_status().await.expect("seal status");
            assert!(!st.sealed);
            (asked.elapsed(), started.elapsed())
        };
        let (r, (probe_took, probe_done)) = tokio::join!(
            async {
                let r = big_write(&t, "secret/data/only", n).await;
                (r, started.elapsed())
            },
            probe
        );
        let (r, took) = r;
        assert!(took < BOUND, "a request waited {took:?}");
        if let Err(e) = r {
            assert!(is_audit_refusal(&e), "{e}");
            assert!(took >= TIMEOUT, "refused only after the timeout: {took:?}");
            assert!(
                probe_done < took,
                "the probe ({probe_done:?}) answered while the write waited ({took:?})"
            );
            assert!(probe_took < TIMEOUT, "the probe took {probe_took:?}");
            let during = ticks.load(Ordering::SeqCst) - before;
            assert!(during >= 5, "only {during} ticks of 10 ms in {took:?}");
            refused = Some(n);
            break;
        }
    }
    let refused = refused.expect("a request is refused once the device is stuck");
    ticker.abort();

    // The refused write did not happen.
    let data = t.data(Read, "secret/data/only", json!({}), &t.root).await;
    let key = format!("{refused:06}{}", "k".repeat(128 * 1024));
    assert!(
        data["data"].get(&key).is_none(),
        "the refused write was stored"
    );
    // The way out is bounded too: root disables the stuck device (request and response entry
    // each wait at most the timeout), and requests work again.
    let started = Instant::now();
    t.ok(Delete, "sys/audit/sock", json!({}), &t.root).await;
    assert!(started.elapsed() < BOUND * 2, "{:?}", started.elapsed());
    big_write(&t, "secret/data/only", 999_999)
        .await
        .expect("requests work again");
}

#[tokio::test]
async fn request_and_response_entries_name_the_same_operation() {
    let t = dev_core().await;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("audit.log");
    enable_file(&t, "file", &log).await;
    // A create (the secret does not exist), then an update; a KV v1 mount as well.
    t.ok(
        Update,
        "sys/mounts/kv1",
        json!({"type": "kv", "options": {"version": "1"}}),
        &t.root,
    )
    .await;
    for path in ["secret/data/ops", "kv1/ops"] {
        t.ok(Update, path, json!({"data": {"v": "1"}, "v": "1"}), &t.root)
            .await;
        t.ok(Update, path, json!({"data": {"v": "2"}, "v": "2"}), &t.root)
            .await;
    }
    // A write the ACL refuses after the existence check: one entry, no response.
    let deny = t.token(&["default"], json!({})).await;
    assert!(
        t.req(Update, "secret/data/ops", json!({"data": {}}), &deny)
            .await
            .is_err()
    );

    let text = std::fs::read_to_string(&log).unwrap();
    let entries: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let mut ops = Vec::new();
    for path in ["secret/data/ops", "kv1/ops"] {
        let reqs: Vec<&Value> = entries
            .iter()
            .filter(|e| e["type"] == "request" && e["request"]["path"] == path)
            .collect();
        for req in reqs {
            let id = &req["request"]["id"];
            let resp: Vec<&Value> = entries
                .iter()
                .filter(|e| e["type"] == "response" && e["request"]["id"] == *id)
                .collect();
            if req.get("error").is_some() {
                assert!(resp.is_empty(), "a refused request has no response entry");
                continue;
            }
            assert_eq!(resp.len(), 1, "one response entry for {id}");
            assert_eq!(
                req["request"]["operation"], resp[0]["request"]["operation"],
                "request and response entries of {path} ({id}) disagree"
            );
            ops.push((
                path,
                req["request"]["operation"].as_str().unwrap().to_owned(),
            ));
        }
    }
    assert_eq!(
        ops,
        [
            ("secret/data/ops", "create".to_owned()),
            ("secret/data/ops", "update".to_owned()),
            ("kv1/ops", "create".to_owned()),
            ("kv1/ops", "update".to_owned()),
        ]
    );
}

#[tokio::test]
async fn a_devices_writer_thread_ends_when_it_is_disabled_replaced_or_sealed() {
    let t = dev_core().await;
    let dir = tempfile::tempdir().unwrap();
    let writer = |t: &TestCore, path: &str| {
        let u = t.core.unsealed().unwrap();
        let d = u.audit.device(path).expect("enabled");
        d.writer_thread().to_owned()
    };

    // Disabled.
    enable_file(&t, "a", &dir.path().join("a.log")).await;
    let a = writer(&t, "a/");
    assert!(thread_alive(&a), "{a} runs while the device is enabled");
    t.ok(Delete, "sys/audit/a", json!({}), &t.root).await;
    wait_thread_gone(&a).await;

    // A device that fails its test write is dropped, and its writer ends with it.
    assert!(
        t.req(
            Update,
            "sys/audit/full",
            json!({"type": "file", "options": {"file_path": "/dev/full"}}),
            &t.root,
        )
        .await
        .is_err()
    );
    let dropped = Device::new(
        AuditEntry {
            path: "dropped/".into(),
            kind: "file".into(),
            description: String::new(),
            options: [("file_path".to_owned(), "discard".to_owned())].into(),
            local: false,
        },
        b"salt",
    )
    .unwrap();
    let d = dropped.writer_thread().to_owned();
    wait_thread_alive(&d).await;
    drop(dropped);
    wait_thread_gone(&d).await;

    // Replaced by a table reload (another server changed its options); an unchanged device
    // keeps its thread.
    enable_file(&t, "b", &dir.path().join("b.log")).await;
    enable_file(&t, "c", &dir.path().join("c.log")).await;
    let (b, c) = (writer(&t, "b/"), writer(&t, "c/"));
    {
        let u = t.core.unsealed().unwrap();
        let raw = u.barrier.get("core/audit").await.unwrap().unwrap();
        let mut table: Vec<Value> = serde_json::from_slice(&raw).unwrap();
        for e in &mut table {
            if e["path"] == "b/" {
                e["options"]["file_path"] = json!(dir.path().join("b2.log").to_str().unwrap());
            }
        }
        u.barrier
            .put("core/audit", &serde_json::to_vec(&table).unwrap())
            .await
            .unwrap();
    }
    t.core.invalidate("core/audit").await.unwrap();
    wait_thread_gone(&b).await;
    let b2 = writer(&t, "b/");
    assert_ne!(b, b2);
    wait_thread_alive(&b2).await;
    assert_eq!(writer(&t, "c/"), c, "an unchanged device keeps its writer");
    assert!(thread_alive(&c));
    t.ok(Read, "sys/audit", json!({}), &t.root).await;
    assert!(
        std::fs::read_to_string(dir.path().join("b2.log"))
            .unwrap()
            .contains("sys/audit"),
        "the new writer records"
    );

    // Sealed: every writer ends; unsealing starts new ones.
    t.core.seal().await.unwrap();
    t.core.sealed_and_drained().await;
    wait_thread_gone(&b2).await;
    wait_thread_gone(&c).await;
    t.core
        .unseal(Some(&hex::encode(&t.key)), false)
        .await
        .unwrap();
    let c2 = writer(&t, "c/");
    assert_ne!(c2, c);
    wait_thread_alive(&c2).await;
    write_ok(&t).await;
}

async fn write_ok(t: &TestCore) {
    t.ok(
        Update,
        "secret/data/after",
        json!({"data": {"v": "1"}}),
        &t.root,
    )
    .await;
}

#[tokio::test]
async fn write_timeout_is_validated() {
    let t = dev_core().await;
    for (v, frag) in [("0s", "more than zero"), ("soon", "invalid duration")] {
        let e = t
            .req(
                Update,
                "sys/audit/bad",
                json!({"type": "file", "options": {"file_path": "discard", "write_timeout": v}}),
                &t.root,
            )
            .await
            .unwrap_err();
        assert!(e.to_string().contains(frag), "{v}: {e}");
    }
    t.ok(
        Update,
        "sys/audit/ok",
        json!({"type": "file", "options": {"file_path": "discard", "write_timeout": "250ms"}}),
        &t.root,
    )
    .await;
    let u = t.core.unsealed().unwrap();
    assert_eq!(
        u.audit.device("ok/").unwrap().write_timeout(),
        Duration::from_millis(250)
    );
}
