//! Issue 17, end to end: three etcd members and three `tresor server` processes sharing them.
//! One server is active, two are standbys; a write through a standby is forwarded, with
//! `X-Vault-No-Request-Forwarding` the answer is 307; a standby given the index of a write
//! serves it; `kill -9` of the active node under a write load hands over within 5 s with
//! every acknowledged write readable; a paused (SIGSTOP) active node that lost its lease
//! cannot write when it resumes; a snapshot restored on the active node reaches every node and
//! a standby takes over. Each server unseals separately.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{Server, free_port, run};
use serde_json::{Value, json};
use tresor_physical::testing::EtcdCluster;

struct Ha {
    _etcd: EtcdCluster,
    _dirs: Vec<tempfile::TempDir>,
    servers: Vec<Server>,
    root: String,
    key: String,
}

fn config(port: u16, etcd: &str) -> String {
    format!(
        "storage \"etcd\" {{\n  address = \"{etcd}\"\n  path = \"/tresor-ha/\"\n  ha_enabled = \"true\"\n}}\n\nlistener \"tcp\" {{\n  address = \"127.0.0.1:{port}\"\n  tls_disable = true\n}}\n\napi_addr = \"http://127.0.0.1:{port}\"\ncluster_addr = \"https://127.0.0.1:{port}1\"\ndisable_mlock = true\n"
    )
}

/// One HTTP exchange with extra headers: (status, response headers (lowercase), body).
fn http(
    s: &Server,
    method: &str,
    path: &str,
    body: Option<&Value>,
    token: Option<&str>,
    headers: &[(&str, &str)],
) -> (u16, String, Value) {
    let mut c = Command::new("curl");
    c.args(["-s", "--max-time", "20", "-D", "-", "-X", method]);
    if let Some(t) = token {
        c.args(["-H", &format!("X-Vault-Token: {t}")]);
    }
    for (k, v) in headers {
        c.args(["-H", &format!("{k}: {v}")]);
    }
    if let Some(b) = body {
        c.args(["--data-binary", &b.to_string()]);
    }
    c.arg(format!("{}/v1/{path}", s.addr));
    let o = run(&mut c);
    assert_eq!(o.code, 0, "curl {method} {path}: {o}");
    let text = o.stdout.replace("\r\n", "\n");
    let (head, body) = text.split_once("\n\n").unwrap_or((&text, ""));
    let status: u16 = head
        .lines()
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = serde_json::from_str(body.trim()).unwrap_or(Value::Null);
    (status, head.to_lowercase(), body)
}

fn header(head: &str, name: &str) -> Option<String> {
    head.lines().find_map(|l| {
        l.strip_prefix(&format!("{name}: "))
            .map(|v| v.trim().to_owned())
    })
}

fn is_active(s: &Server) -> bool {
    let (code, _, v) = http(s, "GET", "sys/leader", None, None, &[]);
    code == 200 && v["is_self"] == true
}

/// The index of the one active server, waiting up to `within`.
fn active(h: &Ha, within: Duration, skip: &[usize]) -> usize {
    let t = Instant::now();
    loop {
        let act: Vec<usize> = (0..h.servers.len())
            .filter(|i| !skip.contains(i) && is_active(&h.servers[*i]))
            .collect();
        assert!(act.len() <= 1, "two active servers: {act:?}");
        if let Some(i) = act.first() {
            return *i;
        }
        assert!(t.elapsed() < within, "no active server within {within:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn start() -> Ha {
    let etcd = EtcdCluster::start(3).expect("three etcd members (etcd on PATH)");
    let mut dirs = Vec::new();
    let mut servers = Vec::new();
    for _ in 0..3 {
        let d = tempfile::tempdir().unwrap();
        let port = free_port();
        servers.push(Server::start(
            d.path(),
            port,
            &config(port, &etcd.address()),
        ));
        dirs.push(d);
    }
    let init = servers[0].init(1, 1);
    let key = init["keys"][0].as_str().unwrap().to_owned();
    let root = init["root_token"].as_str().unwrap().to_owned();
    // Each server unseals separately.
    for s in &servers {
        s.unseal(&[&key]);
    }
    let h = Ha {
        _etcd: etcd,
        _dirs: dirs,
        servers,
        root,
        key,
    };
    let a = active(&h, Duration::from_secs(10), &[]);
    let (code, _, v) = http(
        &h.servers[a],
        "POST",
        "sys/mounts/secret",
        Some(&json!({"type": "kv", "options": {"version": "2"}})),
        Some(&h.root),
        &[],
    );
    assert_eq!(code, 204, "mount: {v}");
    h
}

#[test]
fn three_servers_on_etcd_forward_redirect_and_read_their_writes() {
    let h = start();
    let a = active(&h, Duration::from_secs(5), &[]);
    let standbys: Vec<usize> = (0..3).filter(|i| *i != a).collect();
    let (act, sb) = (&h.servers[a], &h.servers[standbys[0]]);
    let root = Some(h.root.as_str());

    // sys/leader and sys/health on each.
    let (_, _, l) = http(sb, "GET", "sys/leader", None, None, &[]);
    assert_eq!(l["ha_enabled"], true);
    assert_eq!(l["is_self"], false);
    assert_eq!(l["leader_address"], act.addr);
    assert_eq!(l["performance_standby"], true);
    assert_eq!(http(act, "GET", "sys/health", None, None, &[]).0, 200);
    assert_eq!(http(sb, "GET", "sys/health", None, None, &[]).0, 473);
    assert_eq!(
        http(sb, "GET", "sys/health?perfstandbyok=true", None, None, &[]).0,
        200
    );
    assert_eq!(
        http(sb, "GET", "sys/health?standbyok=true", None, None, &[]).0,
        473
    );

    // A write through a standby is forwarded to the active node.
    let (code, head, v) = http(
        sb,
        "POST",
        "secret/data/fwd",
        Some(&json!({"data": {"v": "via-standby"}})),
        root,
        &[],
    );
    assert_eq!(code, 200, "forwarded write: {v}");
    assert!(header(&head, "x-vault-index").is_some(), "{head}");
    let (code, _, v) = http(act, "GET", "secret/data/fwd", None, root, &[]);
    assert_eq!(code, 200);
    assert_eq!(v["data"]["data"]["v"], "via-standby");

    // With the no-forwarding header: 307 to the active node's api_addr and the same path.
    let (code, head, _) = http(
        sb,
        "POST",
        "secret/data/fwd?x=1",
        Some(&json!({"data": {"v": "no"}})),
        root,
        &[("X-Vault-No-Request-Forwarding", "true")],
    );
    assert_eq!(code, 307, "{head}");
    assert_eq!(
        header(&head, "location").as_deref(),
        Some(
            format!("{}/v1/secret/data/fwd?x=1", act.addr)
                .to_lowercase()
                .as_str()
        )
    );

    // Read-your-writes: the index of a write on the active node, sent to a standby.
    for n in 0..20 {
        let (code, head, _) = http(
            act,
            "POST",
            "secret/data/ryw",
            Some(&json!({"data": {"n": n}})),
            root,
            &[],
        );
        assert_eq!(code, 200);
        let idx = header(&head, "x-vault-index").expect("the active node's index");
        let (code, head, v) = http(
            &h.servers[standbys[n % 2]],
            "GET",
            "secret/data/ryw",
            None,
            root,
            &[("X-Vault-Index", &idx)],
        );
        assert_eq!(code, 200, "read on a standby at index {idx}: {v}");
        assert_eq!(v["data"]["data"]["n"], n, "a stale read at index {idx}");
        let got: u64 = header(&head, "x-vault-index").unwrap().parse().unwrap();
        assert!(got >= idx.parse::<u64>().unwrap());
    }
    // An index from the future: 412 after the bounded wait (or forwarded, if asked).
    let t = Instant::now();
    let (code, _, v) = http(
        sb,
        "GET",
        "secret/data/ryw",
        None,
        root,
        &[("X-Vault-Index", "999999999")],
    );
    assert_eq!(code, 412, "{v}");
    assert!(t.elapsed() < Duration::from_secs(5));
    let (code, _, _) = http(
        sb,
        "GET",
        "secret/data/ryw",
        None,
        root,
        &[
            ("X-Vault-Index", "999999999"),
            ("X-Vault-Inconsistent", "forward-active-node"),
        ],
    );
    assert_eq!(code, 200);

    // The standbys report to the active node: bao operator members lists all three.
    let t = Instant::now();
    loop {
        let (code, _, v) = http(sb, "GET", "sys/ha-status", None, root, &[]);
        assert_eq!(code, 200, "{v}");
        if v["data"]["nodes"].as_array().is_some_and(|n| n.len() == 3) {
            assert_eq!(v["data"]["nodes"][0]["api_address"], act.addr);
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(10), "ha-status: {v}");
        std::thread::sleep(Duration::from_millis(200));
    }
    let o = sb.bao_as(&h.root, &["operator", "members"]);
    assert_eq!(o.code, 0, "{o}");
    for s in &h.servers {
        assert!(o.stdout.contains(&s.addr), "{o}");
    }
    let o = sb.bao(&["status"]);
    assert!(
        o.stdout.contains("HA Mode") && o.stdout.contains("standby"),
        "{o}"
    );
    assert!(o.stdout.contains(&act.addr), "Active Node Address: {o}");
    let o = act.bao(&["status"]);
    assert!(o.stdout.contains("active"), "{o}");

    // Governing policies reach the standbys like ACL policies (issue 18): an EGP written on the
    // active node refuses a read a standby serves itself, and its deletion lifts it there too.
    let (code, _, v) = http(
        act,
        "PUT",
        "sys/policies/acl/reader",
        Some(&json!({"policy": "path \"secret/*\" { capabilities = [\"read\"] }"})),
        root,
        &[],
    );
    assert_eq!(code, 204, "{v}");
    let (code, _, v) = http(
        act,
        "POST",
        "auth/token/create",
        Some(&json!({"policies": ["reader"]})),
        root,
        &[],
    );
    assert_eq!(code, 200, "{v}");
    let reader = v["auth"]["client_token"].as_str().unwrap().to_owned();
    let read_on_standby = || http(sb, "GET", "secret/data/fwd", None, Some(&reader), &[]);
    let until = |want: u16| {
        let t = Instant::now();
        loop {
            let (code, _, v) = read_on_standby();
            if code == want {
                return v;
            }
            assert!(t.elapsed() < Duration::from_secs(5), "still {code}: {v}");
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    until(200);
    let (code, _, v) = http(
        act,
        "PUT",
        "sys/policies/egp/no-reads",
        Some(&json!({
            "policy": "package tresor.no_reads\ndefault main := false\nmain if input.request.operation != \"read\"\ndeny contains \"reads are closed\" if not main\n",
            "paths": ["secret/*"],
            "enforcement_level": "hard-mandatory",
        })),
        root,
        &[],
    );
    assert_eq!(code, 204, "{v}");
    let v = until(403);
    assert!(v.to_string().contains("reads are closed"), "{v}");
    let (code, _, v) = http(act, "DELETE", "sys/policies/egp/no-reads", None, root, &[]);
    assert_eq!(code, 204, "{v}");
    until(200);

    // So do rate-limit quotas (issue 20): a standby serving reads itself enforces a quota
    // written on the active node, and stops when it is deleted.
    let (code, _, v) = http(
        act,
        "POST",
        "sys/quotas/rate-limit/standby-tight",
        Some(&json!({"path": "secret/", "rate": 1, "burst": 1})),
        root,
        &[],
    );
    assert!(code == 200 || code == 204, "{code} {v}");
    let limited = || {
        (0..4)
            .map(|_| http(sb, "GET", "secret/data/fwd", None, root, &[]).0)
            .any(|c| c == 429)
    };
    let t = Instant::now();
    while !limited() {
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "the standby never limited"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let (code, _, v) = http(
        act,
        "DELETE",
        "sys/quotas/rate-limit/standby-tight",
        None,
        root,
        &[],
    );
    assert!(code == 200 || code == 204, "{code} {v}");
    let t = Instant::now();
    while limited() {
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "the standby still limits"
        );
        std::thread::sleep(Duration::from_millis(1100));
    }

    // Step-down, sent to a standby (forwarded): another server becomes active.
    let o = sb.bao_as(&h.root, &["operator", "step-down"]);
    assert_eq!(o.code, 0, "{o}");
    let b = active(&h, Duration::from_secs(5), &[a]);
    assert_ne!(a, b);
    let (code, _, v) = http(&h.servers[b], "GET", "secret/data/fwd", None, root, &[]);
    assert_eq!(code, 200);
    assert_eq!(v["data"]["data"]["v"], "via-standby");
}

#[test]
fn kill_9_of_the_active_hands_over_within_5s_and_keeps_acknowledged_writes() {
    let mut h = start();
    let a = active(&h, Duration::from_secs(5), &[]);
    let others: Vec<usize> = (0..3).filter(|i| *i != a).collect();
    let root = h.root.clone();
    // A steady writer through the standbys (forwarded), recording what was acknowledged.
    let addrs: Vec<String> = others.iter().map(|i| h.servers[*i].addr.clone()).collect();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let stop = stop.clone();
        let root = root.clone();
        std::thread::spawn(move || {
            let mut acked = Vec::new();
            let mut n = 0u32;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let addr = &addrs[n as usize % addrs.len()];
                let o = run(Command::new("curl").args([
                    "-s",
                    "-o",
                    "/dev/null",
                    "-w",
                    "%{http_code}",
                    "--max-time",
                    "10",
                    "-X",
                    "POST",
                    "-H",
                    &format!("X-Vault-Token: {root}"),
                    "--data-binary",
                    &json!({"data": {"n": n}}).to_string(),
                    &format!("{addr}/v1/secret/data/w{n}"),
                ]));
                if o.stdout.trim() == "200" {
                    acked.push(n);
                }
                n += 1;
                std::thread::sleep(Duration::from_millis(20));
            }
            acked
        })
    };
    std::thread::sleep(Duration::from_secs(1));
    let killed = Instant::now();
    h.servers[a].kill9();
    let b = active(&h, Duration::from_secs(5), &[a]);
    let failover = killed.elapsed();
    eprintln!("failover after kill -9: {failover:?}");
    assert!(
        failover < Duration::from_secs(5),
        "failover took {failover:?}"
    );
    std::thread::sleep(Duration::from_secs(1));
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let acked = writer.join().unwrap();
    assert!(
        acked.len() > 10,
        "too few writes acknowledged: {}",
        acked.len()
    );
    for n in &acked {
        let (code, _, v) = http(
            &h.servers[b],
            "GET",
            &format!("secret/data/w{n}"),
            None,
            Some(&root),
            &[],
        );
        assert_eq!(code, 200, "acknowledged write w{n} lost: {v}");
        assert_eq!(v["data"]["data"]["n"], *n);
    }
    eprintln!("{} acknowledged writes, all readable", acked.len());
}

#[test]
fn a_paused_active_that_lost_its_lease_cannot_write_when_resumed() {
    let h = start();
    let a = active(&h, Duration::from_secs(5), &[]);
    let root = Some(h.root.as_str());
    let pid = h.servers[a].pid().to_string();
    assert_eq!(run(Command::new("kill").args(["-STOP", &pid])).code, 0);
    let b = active(&h, Duration::from_secs(10), &[a]);
    let (code, _, _) = http(
        &h.servers[b],
        "POST",
        "secret/data/f",
        Some(&json!({"data": {"by": "new"}})),
        root,
        &[],
    );
    assert_eq!(code, 200);
    assert_eq!(run(Command::new("kill").args(["-CONT", &pid])).code, 0);
    // At once after resuming, the old active node is asked to write itself (no forwarding):
    // whatever it still believes, the write must not land.
    let (code, _, v) = http(
        &h.servers[a],
        "POST",
        "secret/data/f",
        Some(&json!({"data": {"by": "old"}})),
        root,
        &[("X-Vault-No-Request-Forwarding", "true")],
    );
    assert!(
        !(200..300).contains(&code),
        "the deposed node wrote: {code} {v}"
    );
    // It steps down: a standby within a few seconds, pointing at the new active node.
    let t = Instant::now();
    loop {
        let (_, _, l) = http(&h.servers[a], "GET", "sys/leader", None, None, &[]);
        if l["is_self"] == false && l["leader_address"] == h.servers[b].addr {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "the resumed node did not step down: {l}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let (_, _, v) = http(&h.servers[b], "GET", "secret/data/f", None, root, &[]);
    assert_eq!(v["data"]["data"]["by"], "new");
}

/// `tresor operator snapshot save|restore FILE` against `s`, with the root token.
fn snapshot_cli(h: &Ha, s: &Server, args: &[&str]) -> common::Out {
    let mut c = common::clean_command(env!("CARGO_BIN_EXE_tresor"));
    c.args(args)
        .current_dir(&s.dir)
        .env("HOME", &s.home)
        .env("VAULT_ADDR", &s.addr)
        .env("VAULT_TOKEN", &h.root);
    common::run_for(&mut c, None, Duration::from_secs(60))
}

/// Reads `secret/data/r` on `s` until its `v` is `want` (a standby may still be applying the
/// change feed), within 15 s.
fn eventually_reads(h: &Ha, s: &Server, want: i64) {
    let t = Instant::now();
    loop {
        let (code, _, v) = http(s, "GET", "secret/data/r", None, Some(&h.root), &[]);
        if code == 200 && v["data"]["data"]["v"] == want {
            return;
        }
        assert!(
            t.elapsed() < Duration::from_secs(15),
            "{}: still {code} {v}, want v = {want}",
            s.addr
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A snapshot restored on the active node: the node keeps the lock while it replaces the store
/// (its writes fenced), then seals and lets go; a standby takes over with the restored data,
/// the other standby serves it too, and the old active unseals as a standby.
#[test]
fn a_snapshot_restored_on_the_active_reaches_every_node() {
    let h = start();
    let a = active(&h, Duration::from_secs(5), &[]);
    let act = &h.servers[a];
    let write = |v: i64| {
        let (code, _, body) = http(
            act,
            "POST",
            "secret/data/r",
            Some(&json!({"data": {"v": v}})),
            Some(&h.root),
            &[],
        );
        assert_eq!(code, 200, "{body}");
    };
    write(1);
    snapshot_cli(&h, act, &["operator", "snapshot", "save", "r.snap"]).expect(0, "save");
    write(2);
    for s in &h.servers {
        eventually_reads(&h, s, 2);
    }
    snapshot_cli(&h, act, &["operator", "snapshot", "restore", "r.snap"]).expect(0, "restore");
    let t = Instant::now();
    while act.seal_status()["sealed"] != true {
        assert!(
            t.elapsed() < Duration::from_secs(15),
            "the restoring node did not seal"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let b = active(&h, Duration::from_secs(20), &[a]);
    eventually_reads(&h, &h.servers[b], 1);
    let other = (0..3).find(|i| *i != a && *i != b).unwrap();
    eventually_reads(&h, &h.servers[other], 1);
    act.unseal(&[&h.key]);
    eventually_reads(&h, act, 1);
    assert!(!is_active(act), "the restoring node came back as a standby");
}
