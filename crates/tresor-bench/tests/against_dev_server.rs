//! End to end: `tresor server -dev` (the real binary) on a free port, benchmarked for one second
//! with sys-health and kv-read; every request must succeed and cleanup must leave no trace.
//!
//! The server binary is `target/debug/tresor`; build it first with `cargo build -p tresor`. Its
//! absence fails the test with that instruction rather than skipping it.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tresor_bench::Env;

struct Vars(Vec<(&'static str, String)>);

impl Env for Vars {
    fn var(&self, name: &str) -> Option<String> {
        self.0
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.clone())
    }
}

/// Kills the server by its PID however the test ends.
struct Server {
    child: Child,
    addr: String,
    _home: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn tresor_binary() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target"));
    let bin = target.join("debug/tresor");
    assert!(
        bin.is_file(),
        "the server binary {} is missing: run `cargo build -p tresor` first",
        bin.display()
    );
    bin
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port on 127.0.0.1")
}

/// A GET of sys/health answered 200, by hand over a plain socket (keeps the test independent of
/// the client under test).
fn healthy(addr: &str) -> bool {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(addr) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let req = format!("GET /v1/sys/health HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    if s.write_all(req.as_bytes()).is_err() {
        return false;
    }
    let mut buf = String::new();
    let _ = s.read_to_string(&mut buf);
    buf.starts_with("HTTP/1.1 200")
}

fn start_dev_server(root_token: &str) -> Server {
    let home = tempfile::tempdir().expect("temp dir");
    let addr = format!("127.0.0.1:{}", free_port());
    let child = Command::new(tresor_binary())
        .args([
            "server",
            "-dev",
            &format!("-dev-root-token-id={root_token}"),
            &format!("-dev-listen-address={addr}"),
        ])
        // The dev server writes ~/.vault-token; keep it away from the real home.
        .env("HOME", home.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting tresor server -dev");
    let server = Server {
        child,
        addr,
        _home: home,
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while !healthy(&server.addr) {
        assert!(
            Instant::now() < deadline,
            "tresor server -dev did not serve on {} within 20 s",
            server.addr
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    server
}

#[test]
fn one_second_of_sys_health_and_kv_read_against_tresor_dev() {
    let token = format!("bench-test-{}", std::process::id());
    let server = start_dev_server(&token);
    let home = tempfile::tempdir().unwrap();
    let env = Vars(vec![
        ("VAULT_TOKEN", token.clone()),
        ("HOME", home.path().display().to_string()),
    ]);
    let args: Vec<String> = [
        format!("-address=http://{}", server.addr),
        "-workload=sys-health,kv-read".into(),
        "-duration=1s".into(),
        "-concurrency=4".into(),
        "-format=json".into(),
    ]
    .into();
    let report = tresor_bench::bench(&args, &env, false)
        .expect("the benchmark runs")
        .expect("a report, not help");
    assert_eq!(report.workloads.len(), 2);
    for w in &report.workloads {
        assert!(w.requests > 0, "{}: no requests", w.name);
        assert_eq!(w.errors, 0, "{}: errors {:?}", w.name, w.first_errors);
        assert!(w.ok_per_second > 0.0);
        assert!(w.latency_ms.p50 > 0.0 && w.latency_ms.p50 <= w.latency_ms.p99);
        assert!(w.latency_ms.p99 <= w.latency_ms.max);
    }
    assert!(report.elapsed_seconds >= 1.0 && report.elapsed_seconds < 5.0);
    assert!(
        report.cleanup_errors.is_empty(),
        "{:?}",
        report.cleanup_errors
    );

    // Cleanup removed the bench mount: only the dev server's own mounts remain.
    let mut s = std::net::TcpStream::connect(&server.addr).unwrap();
    use std::io::{Read, Write};
    write!(
        s,
        "GET /v1/sys/mounts HTTP/1.1\r\nHost: {}\r\nX-Vault-Token: {token}\r\nConnection: close\r\n\r\n",
        server.addr
    )
    .unwrap();
    let mut body = String::new();
    s.read_to_string(&mut body).unwrap();
    assert!(body.starts_with("HTTP/1.1 200"), "{body}");
    assert!(body.contains("\"secret/\""), "{body}");
    assert!(
        !body.contains("tresor-bench-"),
        "bench mount left behind: {body}"
    );

    // The same server, a bad token: a clear server-side error (exit code 2) before any load.
    let bad = Vars(vec![
        ("VAULT_TOKEN", "not-a-token".into()),
        ("HOME", home.path().display().to_string()),
    ]);
    let err = tresor_bench::bench(&args, &bad, false).unwrap_err();
    assert_eq!(err.exit_code(), 2);
    assert!(err.to_string().contains("permission denied"), "{err}");
}

#[test]
fn bad_options_exit_with_clear_codes() {
    let run = |a: &[&str]| tresor_bench::run(a.iter().map(|s| s.to_string()).collect());
    // Nothing listens on port 1.
    assert_eq!(
        run(&["-address=http://127.0.0.1:1", "-workload=sys-health"]),
        2
    );
    assert_eq!(run(&["-address=http://127.0.0.1:1", "-workload=nope"]), 1);
    assert_eq!(
        run(&[
            "-address=http://127.0.0.1:1",
            "-workload=sys-health",
            "-concurrency=0"
        ]),
        1
    );
    assert_eq!(run(&["-help"]), 0);
}
