//! End to end: `tresor server -dev` (the real binary) on a free port, benchmarked for one second
//! with sys-health and kv-read, and for a few dozen requests with each PKI workload; every
//! request must succeed, the certificates must be what was asked for, and cleanup must leave no
//! trace.
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

/// A JSON client for checks, on the bench's own setup client.
fn api(addr: &str, token: &str) -> (tokio::runtime::Runtime, tresor_bench::client::Api) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let target = tresor_bench::client::Target::new(
        &format!("http://{addr}"),
        &tresor_bench::client::TlsOptions::default(),
        Duration::from_secs(10),
    )
    .unwrap();
    let api = tresor_bench::client::Api::new(
        std::sync::Arc::new(target),
        Some(tresor_bench::client::Token::new(token.to_owned())),
    );
    (rt, api)
}

fn call(
    rt: &tokio::runtime::Runtime,
    api: &tresor_bench::client::Api,
    method: http::Method,
    path: &str,
) -> serde_json::Value {
    rt.block_on(api.expect_ok(path, method, path, None, None))
        .unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The pki mounts the bench left in place (with -cleanup=false).
fn bench_pki_mounts(rt: &tokio::runtime::Runtime, api: &tresor_bench::client::Api) -> Vec<String> {
    let mounts = call(rt, api, http::Method::GET, "sys/mounts");
    let data = mounts.get("data").unwrap_or(&mounts);
    let mut out: Vec<String> = data
        .as_object()
        .unwrap()
        .iter()
        .filter(|(k, v)| k.starts_with("tresor-bench-") && v["type"] == "pki")
        .map(|(k, _)| k.trim_end_matches('/').to_owned())
        .collect();
    out.sort();
    out
}

fn run_bench(addr: &str, token: &str, extra: &[&str]) -> tresor_bench::Report {
    let home = tempfile::tempdir().unwrap();
    let env = Vars(vec![
        ("VAULT_TOKEN", token.to_owned()),
        ("HOME", home.path().display().to_string()),
    ]);
    let mut args: Vec<String> = vec![
        format!("-address=http://{addr}"),
        "-concurrency=4".into(),
        "-format=json".into(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    let report = tresor_bench::bench(&args, &env, false)
        .expect("the benchmark runs")
        .expect("a report, not help");
    for w in &report.workloads {
        assert!(w.requests > 0, "{}: no requests", w.name);
        assert_eq!(w.errors, 0, "{}: errors {:?}", w.name, w.first_errors);
    }
    assert!(
        report.cleanup_errors.is_empty(),
        "{:?}",
        report.cleanup_errors
    );
    report
}

/// The public key of a stored certificate: (algorithm OID, key size in bits), and its CN.
fn cert_facts(
    rt: &tokio::runtime::Runtime,
    api: &tresor_bench::client::Api,
    mount: &str,
    serial: &str,
) -> (String, usize, String) {
    use x509_parser::prelude::*;
    let resp = call(
        rt,
        api,
        http::Method::GET,
        &format!("{mount}/cert/{serial}"),
    );
    let pem_text = resp["data"]["certificate"].as_str().unwrap().to_owned();
    let (_, pem) = parse_x509_pem(pem_text.as_bytes()).unwrap();
    let cert = pem.parse_x509().unwrap();
    let spki = cert.public_key();
    let bits = match spki.parsed().unwrap() {
        x509_parser::public_key::PublicKey::RSA(k) => k.key_size(),
        x509_parser::public_key::PublicKey::EC(p) => p.key_size(),
        _ => 0,
    };
    let cn = cert
        .subject()
        .iter_common_name()
        .next()
        .and_then(|a| a.as_str().ok())
        .unwrap_or_default()
        .to_owned();
    (spki.algorithm.algorithm.to_id_string(), bits, cn)
}

fn listed_serials(
    rt: &tokio::runtime::Runtime,
    api: &tresor_bench::client::Api,
    mount: &str,
) -> Vec<String> {
    let resp = call(
        rt,
        api,
        http::Method::GET,
        &format!("{mount}/certs?list=true"),
    );
    resp["data"]["keys"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn pki_issue_and_sign_against_tresor_dev() {
    let token = format!("bench-pki-{}", std::process::id());
    let server = start_dev_server(&token);
    let (rt, api) = api(&server.addr, &token);

    // EC P-256, stored: every issued certificate is listed, with a P-256 key and a CN under the
    // bench domain. The mount is kept (-cleanup=false) so that it can be inspected.
    let r = run_bench(
        &server.addr,
        &token,
        &["-workload=pki-issue", "-requests=40", "-cleanup=false"],
    );
    assert_eq!(r.workloads[0].requests, 40);
    let mounts = bench_pki_mounts(&rt, &api);
    assert_eq!(mounts.len(), 1, "{mounts:?}");
    let ec_mount = mounts[0].clone();
    let serials = listed_serials(&rt, &api, &ec_mount);
    // The 40 leaves, plus the root where the engine lists CA certificates too.
    assert!((40..=41).contains(&serials.len()), "{}", serials.len());
    let leaves: Vec<(String, usize, String)> = serials
        .iter()
        .map(|s| cert_facts(&rt, &api, &ec_mount, s))
        .filter(|(_, _, cn)| cn.ends_with(".bench.example.com"))
        .collect();
    assert_eq!(leaves.len(), 40);
    let mut cns: Vec<&str> = leaves.iter().map(|(_, _, cn)| cn.as_str()).collect();
    cns.sort();
    cns.dedup();
    assert_eq!(cns.len(), 40, "every request asked for its own name");
    for (alg, bits, _) in &leaves {
        assert_eq!((alg.as_str(), *bits), ("1.2.840.10045.2.1", 256));
    }

    // no_store: the certificates are issued but not kept.
    run_bench(
        &server.addr,
        &token,
        &[
            "-workload=pki-issue",
            "-no-store",
            "-requests=40",
            "-cleanup=false",
        ],
    );
    let nostore_mount = bench_pki_mounts(&rt, &api)
        .into_iter()
        .find(|m| *m != ec_mount)
        .unwrap();
    assert!(listed_serials(&rt, &api, &nostore_mount).len() <= 1);

    // RSA-2048, stored.
    run_bench(
        &server.addr,
        &token,
        &[
            "-workload=pki-issue",
            "-key-type=rsa",
            "-key-bits=2048",
            "-requests=6",
            "-cleanup=false",
        ],
    );
    let rsa_mount = bench_pki_mounts(&rt, &api)
        .into_iter()
        .find(|m| *m != ec_mount && *m != nostore_mount)
        .unwrap();
    let rsa_leaves: Vec<(String, usize, String)> = listed_serials(&rt, &api, &rsa_mount)
        .iter()
        .map(|s| cert_facts(&rt, &api, &rsa_mount, s))
        .filter(|(_, _, cn)| cn.ends_with(".bench.example.com"))
        .collect();
    assert_eq!(rsa_leaves.len(), 6);
    for (alg, bits, _) in &rsa_leaves {
        assert_eq!((alg.as_str(), *bits), ("1.2.840.113549.1.1.1", 2048));
    }

    // pki-sign: the CSR's name and P-256 key end up in each stored certificate.
    run_bench(
        &server.addr,
        &token,
        &["-workload=pki-sign", "-requests=30", "-cleanup=false"],
    );
    let sign_mount = bench_pki_mounts(&rt, &api)
        .into_iter()
        .find(|m| ![&ec_mount, &nostore_mount, &rsa_mount].contains(&m))
        .unwrap();
    let signed: Vec<(String, usize, String)> = listed_serials(&rt, &api, &sign_mount)
        .iter()
        .map(|s| cert_facts(&rt, &api, &sign_mount, s))
        .filter(|(_, _, cn)| cn.ends_with(".bench.example.com"))
        .collect();
    assert_eq!(signed.len(), 30);
    for (alg, bits, cn) in &signed {
        assert_eq!(
            (alg.as_str(), *bits, cn.as_str()),
            ("1.2.840.10045.2.1", 256, "sign.bench.example.com")
        );
    }

    // With cleanup (the default) a run leaves nothing behind.
    for m in bench_pki_mounts(&rt, &api) {
        call(&rt, &api, http::Method::DELETE, &format!("sys/mounts/{m}"));
    }
    run_bench(
        &server.addr,
        &token,
        &["-workload=pki-issue:3,pki-sign:1", "-duration=1s"],
    );
    assert!(bench_pki_mounts(&rt, &api).is_empty());
}

/// The auth mounts the bench left in place.
fn bench_auth_mounts(rt: &tokio::runtime::Runtime, api: &tresor_bench::client::Api) -> Vec<String> {
    let mounts = call(rt, api, http::Method::GET, "sys/auth");
    let data = mounts.get("data").unwrap_or(&mounts);
    data.as_object()
        .unwrap()
        .keys()
        .filter(|k| k.starts_with("tresor-bench-"))
        .cloned()
        .collect()
}

/// Issue 13: the login workloads run, userpass-login reports the bcrypt bound it measured,
/// and cleanup leaves no auth mount behind.
#[test]
fn userpass_and_approle_logins_against_tresor_dev() {
    let token = format!("bench-login-{}", std::process::id());
    let server = start_dev_server(&token);
    let (rt, api) = api(&server.addr, &token);

    let r = run_bench(
        &server.addr,
        &token,
        &["-workload=userpass-login", "-requests=12"],
    );
    let n = &r.workloads[0].notes;
    assert_eq!(n["bcrypt_cost"], 10, "{n:?}");
    assert!(n["bcrypt_ms_per_hash"].as_f64().unwrap() > 0.0, "{n:?}");
    assert!(
        n["bcrypt_bound_per_second"].as_f64().unwrap() > 0.0,
        "{n:?}"
    );
    assert!(n["fraction_of_bound"].as_f64().unwrap() > 0.0, "{n:?}");
    assert!(
        r.to_table().contains("userpass-login: bcrypt cost 10: "),
        "{}",
        r.to_table()
    );

    let r = run_bench(
        &server.addr,
        &token,
        &["-workload=approle-login", "-requests=40"],
    );
    assert_eq!(r.workloads[0].requests, 40);
    assert!(r.workloads[0].notes.is_empty());

    assert!(
        bench_auth_mounts(&rt, &api).is_empty(),
        "cleanup left auth mounts"
    );
}
