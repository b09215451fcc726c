//! Issue 20, operations: metrics scraped and parsed by a real Prometheus text parser, rate-limit
//! and lease-count quotas on a real server, and the diagnostic endpoints and commands
//! (`sys/loggers`, `sys/monitor` through `tresor monitor`, `sys/in-flight-req`,
//! `sys/host-info`, `sys/config/state/sanitized`, `sys/version-history`, `tresor debug`).

mod common;

use std::io::{BufRead as _, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Server, clean_command, free_port, plain_config, run, run_for};
use serde_json::Value;

fn python(script: &str, s: &Server, env: &[(&str, String)]) -> common::Out {
    let mut cmd: Command = clean_command("python3");
    cmd.arg("-")
        .env("VAULT_ADDR", &s.addr)
        .env("VAULT_TOKEN", "root");
    for (k, v) in env {
        cmd.env(k, v);
    }
    run_for(&mut cmd, Some(script.as_bytes()), Duration::from_secs(120))
}

/// A persistent server, initialised and unsealed: (server, root token, unseal key).
fn persistent(dir: &std::path::Path, port: u16, extra: &str) -> (Server, String, String) {
    let s = Server::start(dir, port, &plain_config(port, extra));
    let init = s.init(1, 1);
    let key = init["keys_base64"][0].as_str().unwrap().to_owned();
    let root = init["root_token"].as_str().unwrap().to_owned();
    s.unseal(&[&key]);
    (s, root, key)
}

#[test]
fn a_prometheus_scrape_parses_and_counts_the_requests() {
    let dir = tempfile::tempdir().unwrap();
    let (port, metrics_port) = (free_port(), free_port());
    let extra = format!(
        "telemetry {{\n  disable_hostname = true\n  usage_gauge_period = \"1s\"\n}}\nlistener \"tcp\" {{\n  address = \"127.0.0.1:{metrics_port}\"\n  tls_disable = true\n  telemetry {{\n    unauthenticated_metrics_access = true\n  }}\n}}\n"
    );
    let (s, root, _) = persistent(dir.path(), port, &extra);
    let (code, v) = s.api(
        "POST",
        "sys/mounts/secret",
        Some(r#"{"type":"kv","options":{"version":"2"}}"#),
        Some(&root),
    );
    assert_eq!(code, 204, "{v}");
    let mut cmd: Command = clean_command("python3");
    cmd.arg("-")
        .env("VAULT_ADDR", &s.addr)
        .env("VAULT_TOKEN", &root)
        .env("METRICS_ADDR", format!("http://127.0.0.1:{metrics_port}"))
        .env("N", "100");
    let o = run_for(
        &mut cmd,
        Some(include_str!("operations_metrics.py").as_bytes()),
        Duration::from_secs(120),
    );
    assert_eq!(o.code, 0, "{o}\n--- server log\n{}", s.log());
    for step in [
        "OK the scrape parses",
        "OK counters match the requests sent",
        "OK vault_core_handle_request quantiles",
        "OK gauges",
        "OK the JSON form",
        "ALL OK",
    ] {
        assert!(o.stdout.contains(step), "{step} missing\n{o}");
    }
}

#[test]
fn rate_limits_refuse_a_flood_but_not_sys_health() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start_dev(dir.path(), free_port());
    let o = python(include_str!("operations_quota.py"), &s, &[]);
    assert_eq!(o.code, 0, "{o}\n--- server log\n{}", s.log());
    for step in [
        "OK 429s under a 50/s load while sys/health stays 200",
        "OK headers\n",
        "OK per client address",
        "OK headers only when enabled",
        "OK several quotas on one path, globs, block_interval",
        "ALL OK",
    ] {
        assert!(o.stdout.contains(step), "{step} missing\n{o}");
    }
    // The violations are counted.
    let (code, text) = s.curl("GET", "sys/metrics?format=prometheus", None, Some("root"));
    assert_eq!(code, 200);
    let line = text
        .lines()
        .find(|l| l.starts_with("vault_quota_rate_limit_violation{name=\"ten\"}"))
        .unwrap_or_else(|| panic!("no violation counter\n{text}"));
    let n: u64 = line.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(n >= 140, "{line}");
}

/// `enable_rate_limit_audit_logging`: requests a rate limit turns away reach the audit log
/// only while it is on, as request entries naming the refusal (Vault's behaviour).
#[test]
fn refused_requests_are_audited_only_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start_dev(&dir.path().join("srv"), free_port());
    let t = Some("root");
    let log = dir.path().join("audit.log");
    let body = format!(
        r#"{{"type":"file","options":{{"file_path":"{}"}}}}"#,
        log.display()
    );
    for (path, body) in [
        ("sys/audit/file", body.as_str()),
        (
            "sys/quotas/rate-limit/tight",
            r#"{"path":"secret/","rate":1,"burst":1}"#,
        ),
    ] {
        let (code, v) = s.api("POST", path, Some(body), t);
        assert!(code == 200 || code == 204, "{path}: {code} {v}");
    }
    let refusals = || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap())
            .filter(|e| {
                e["error"]
                    .as_str()
                    .is_some_and(|m| m.contains("rate limit quota exceeded"))
            })
            .collect::<Vec<_>>()
    };
    let flood = |path: &str| {
        let refused = (0..6)
            .filter(|_| s.api("GET", path, None, t).0 == 429)
            .count();
        assert!(refused >= 4, "{refused} of 6 refused");
        refused
    };
    // Off (the default): refused, not audited.
    flood("secret/data/off");
    assert!(refusals().is_empty(), "{:?}", refusals());
    // On: one request entry per refusal, with the path, operation and client address.
    let (code, v) = s.api(
        "POST",
        "sys/quotas/config",
        Some(r#"{"enable_rate_limit_audit_logging":true}"#),
        t,
    );
    assert_eq!(code, 204, "{v}");
    let (_, v) = s.api("GET", "sys/quotas/config", None, t);
    assert_eq!(v["data"]["enable_rate_limit_audit_logging"], true, "{v}");
    std::thread::sleep(Duration::from_millis(1100)); // a fresh bucket
    let refused = flood("secret/data/on?list=true");
    let entries = refusals();
    assert_eq!(entries.len(), refused, "{entries:?}");
    // A refused write's data is in its entry HMAC'd, never in clear.
    let (code, _) = s.api(
        "POST",
        "secret/data/on",
        Some(r#"{"data":{"password":"hunter2-never-logged"}}"#),
        t,
    );
    assert_eq!(code, 429);
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        !text.contains("hunter2-never-logged"),
        "a secret in the audit log"
    );
    let last = refusals().pop().unwrap();
    assert_eq!(last["request"]["operation"], "update", "{last}");
    assert!(
        last["request"]["data"]["data"]["password"]
            .as_str()
            .is_some_and(|p| p.starts_with("hmac-sha256:")),
        "{last}"
    );
    let refused = refused + 1;
    for e in &entries {
        assert_eq!(e["type"], "request", "{e}");
        assert_eq!(e["request"]["path"], "secret/data/on", "{e}");
        assert_eq!(e["request"]["operation"], "list", "{e}");
        assert_eq!(e["request"]["mount_point"], "secret/", "{e}");
        assert_eq!(e["request"]["remote_address"], "127.0.0.1", "{e}");
        assert_eq!(
            e["error"], "request path \"secret/data/on\": rate limit quota exceeded",
            "{e}"
        );
        assert!(e["auth"]["client_token"].is_null(), "{e}");
    }
    // Off again: nothing more.
    let (code, _) = s.api(
        "POST",
        "sys/quotas/config",
        Some(r#"{"enable_rate_limit_audit_logging":false}"#),
        t,
    );
    assert_eq!(code, 204);
    std::thread::sleep(Duration::from_millis(1100));
    flood("secret/data/off-again");
    assert_eq!(refusals().len(), refused);
}

/// A lease-count quota on an auth mount counts the login tokens' leases: of 12 concurrent
/// logins under `max_leases = 3`, exactly three get a token, and revoking one makes room.
#[test]
fn a_lease_count_quota_on_logins_holds_under_concurrent_logins() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start_dev(&dir.path().join("srv"), free_port());
    let t = Some("root");
    for (path, body) in [
        ("sys/auth/userpass", r#"{"type":"userpass"}"#),
        ("auth/userpass/users/alice", r#"{"password":"pw"}"#),
        (
            "sys/quotas/lease-count/logins",
            r#"{"path":"auth/userpass/","max_leases":3}"#,
        ),
    ] {
        let (code, v) = s.api("POST", path, Some(body), t);
        assert!(code == 200 || code == 204, "{path}: {code} {v}");
    }
    let results: Vec<(u16, Value)> = std::thread::scope(|sc| {
        let handles: Vec<_> = (0..12)
            .map(|_| {
                sc.spawn(|| {
                    s.api(
                        "POST",
                        "auth/userpass/login/alice",
                        Some(r#"{"password":"pw"}"#),
                        None,
                    )
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let tokens: Vec<String> = results
        .iter()
        .filter(|(c, _)| *c == 200)
        .map(|(_, v)| v["auth"]["client_token"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(tokens.len(), 3, "{results:?}");
    for (code, v) in &results {
        assert!(
            *code == 200 || (*code == 429 && v.to_string().contains("lease count quota exceeded")),
            "{code} {v}"
        );
    }
    let (_, v) = s.api("GET", "sys/quotas/lease-count/logins", None, t);
    assert_eq!(v["data"]["counter"], 3, "{v}");
    let (code, _) = s.api("POST", "auth/token/revoke-self", None, Some(&tokens[0]));
    assert_eq!(code, 204);
    // The revoked token's lease went with it.
    let (code, v) = s.api(
        "LIST",
        "sys/leases/lookup/auth/userpass/login/alice/",
        None,
        t,
    );
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["data"]["keys"].as_array().map(Vec::len), Some(2), "{v}");
    let (code, v) = s.api(
        "POST",
        "auth/userpass/login/alice",
        Some(r#"{"password":"pw"}"#),
        None,
    );
    assert_eq!(code, 200, "{v}");
}

#[test]
fn a_lease_count_quota_refuses_the_sixth_certificate_and_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let (s, root, key) = persistent(dir.path(), port, "");
    let t = Some(root.as_str());
    for (path, body) in [
        ("sys/mounts/pki", r#"{"type":"pki"}"#),
        (
            "pki/root/generate/internal",
            r#"{"common_name":"example.com","ttl":"24h"}"#,
        ),
        (
            "pki/roles/web",
            r#"{"allow_any_name":true,"generate_lease":true,"ttl":"1h"}"#,
        ),
        (
            "sys/quotas/lease-count/five",
            r#"{"path":"pki/","max_leases":5}"#,
        ),
        (
            "sys/quotas/rate-limit/generous",
            r#"{"path":"pki/","rate":1000,"burst":2000}"#,
        ),
    ] {
        let (code, v) = s.api("POST", path, Some(body), t);
        assert!(code == 200 || code == 204, "{path}: {code} {v}");
    }
    let mut leases = Vec::new();
    for i in 0..5 {
        let (code, v) = s.api(
            "POST",
            "pki/issue/web",
            Some(&format!(r#"{{"common_name":"h{i}.example.com"}}"#)),
            t,
        );
        assert_eq!(code, 200, "certificate {i}: {v}");
        let lease = v["lease_id"].as_str().unwrap().to_owned();
        assert!(lease.starts_with("pki/issue/web/"), "{v}");
        leases.push(lease);
    }
    let (code, v) = s.api(
        "POST",
        "pki/issue/web",
        Some(r#"{"common_name":"h5.example.com"}"#),
        t,
    );
    assert_eq!(code, 429, "{v}");
    assert_eq!(
        common::errors(&v),
        ["request path \"pki/issue/web\": lease count quota exceeded"]
    );
    let (code, v) = s.api("GET", "sys/quotas/lease-count/five", None, t);
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["data"]["counter"], 5);
    assert_eq!(v["data"]["max_leases"], 5);
    // Revoking one makes room for one.
    let (code, v) = s.api(
        "PUT",
        "sys/leases/revoke",
        Some(&format!(r#"{{"lease_id":"{}"}}"#, leases[0])),
        t,
    );
    assert_eq!(code, 204, "{v}");
    let (code, v) = s.api(
        "POST",
        "pki/issue/web",
        Some(r#"{"common_name":"h6.example.com"}"#),
        t,
    );
    assert_eq!(code, 200, "{v}");
    // Stored behind the barrier: after a restart (and unseal) both quotas are back and
    // enforced.
    drop(s);
    let s = Server::start(dir.path(), port, &plain_config(port, ""));
    s.unseal(&[&key]);
    let (code, v) = s.api("LIST", "sys/quotas/lease-count", None, t);
    assert_eq!(
        (code, v["data"]["keys"].clone()),
        (200, serde_json::json!(["five"]))
    );
    let (code, v) = s.api("GET", "sys/quotas/rate-limit/generous", None, t);
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["data"]["burst"], 2000);
    let (code, v) = s.api(
        "POST",
        "pki/issue/web",
        Some(r#"{"common_name":"h7.example.com"}"#),
        t,
    );
    assert_eq!(code, 429, "{v}");
    // Nothing of the quotas is stored in clear.
    let data = dir.path().join("data");
    let mut stack = vec![data];
    while let Some(p) = stack.pop() {
        for e in std::fs::read_dir(&p).unwrap() {
            let e = e.unwrap().path();
            if e.is_dir() {
                stack.push(e);
            } else {
                let b = std::fs::read(&e).unwrap();
                assert!(
                    !b.windows(b"max_leases".len()).any(|w| w == b"max_leases"),
                    "{} holds a quota in clear",
                    e.display()
                );
            }
        }
    }
    // Bad quotas are refused.
    for (path, body, want) in [
        (
            "sys/quotas/rate-limit/x",
            r#"{"rate":0}"#,
            "rate must be positive",
        ),
        (
            "sys/quotas/rate-limit/x",
            r#"{"rate":1,"path":"nowhere/"}"#,
            "no mount serves it",
        ),
        (
            "sys/quotas/rate-limit/x",
            r#"{"rate":1,"interval":"0s"}"#,
            "at least one second",
        ),
        (
            "sys/quotas/lease-count/x",
            r#"{"max_leases":0}"#,
            "max_leases must be positive",
        ),
        (
            "sys/quotas/lease-count/x",
            r#"{"max_leases":3,"path":"pki/","role":"web"}"#,
            "auth method's path",
        ),
        (
            "sys/quotas/rate-limit/x",
            r#"{"rate":1,"path":"pki/","role":"web"}"#,
            "auth method's path",
        ),
    ] {
        let (code, v) = s.api("POST", path, Some(body), t);
        assert_eq!(code, 400, "{body}: {v}");
        assert!(common::errors(&v)[0].contains(want), "{body}: {v}");
    }
}

#[test]
fn diagnostics_loggers_monitor_in_flight_host_info_config_and_debug() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start_dev(dir.path(), free_port());
    let t = Some("root");
    // Loggers: set one, all, and back to the configured level.
    let (code, v) = s.api("GET", "sys/loggers", None, t);
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["data"]["core"], "info");
    let (code, _) = s.api("POST", "sys/loggers/core", Some(r#"{"level":"debug"}"#), t);
    assert_eq!(code, 204);
    let (_, v) = s.api("GET", "sys/loggers/core", None, t);
    assert_eq!(v["data"]["core"], "debug");
    let (code, v) = s.api("POST", "sys/loggers/core", Some(r#"{"level":"loud"}"#), t);
    assert_eq!(code, 400, "{v}");
    let (code, _) = s.api("DELETE", "sys/loggers", None, t);
    assert_eq!(code, 204);
    let (_, v) = s.api("GET", "sys/loggers/core", None, t);
    assert_eq!(v["data"]["core"], "info");

    // tresor monitor streams the log at the level asked for.
    let mut mon = Command::new(env!("CARGO_BIN_EXE_tresor"))
        .args(["monitor", "-log-level=debug"])
        .env("VAULT_ADDR", &s.addr)
        .env("VAULT_TOKEN", "root")
        .env("HOME", &s.home)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = mon.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    // While the stream is open it is a request in flight.
    let started = Instant::now();
    let in_flight = loop {
        let (code, v) = s.api("GET", "sys/in-flight-req", None, t);
        assert_eq!(code, 200, "{v}");
        let monitor = v
            .as_object()
            .unwrap()
            .values()
            .find(|r| r["request_path"] == "/v1/sys/monitor")
            .cloned();
        if let Some(m) = monitor {
            break m;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "{v}");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(in_flight["request_method"], "GET");
    assert!(
        in_flight["client_remote_address"]
            .as_str()
            .unwrap()
            .starts_with("127.0.0.1")
    );
    let (code, _) = s.api("POST", "sys/rotate", None, t);
    assert_eq!(code, 204);
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut seen = Vec::new();
    let line = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(l) if l.contains("barrier key rotated") => break l,
            Ok(l) => seen.push(l),
            Err(_) => panic!("no rotation line from tresor monitor; saw {seen:?}"),
        }
    };
    assert!(line.contains("[INFO]") && line.contains("term=2"), "{line}");
    let _ = mon.kill();
    let _ = mon.wait();
    // Without sudo, no monitor, no host info.
    let (code, _) = s.api(
        "POST",
        "sys/policies/acl/diag",
        Some(r#"{"policy":"path \"sys/*\" { capabilities = [\"read\", \"list\"] }"}"#),
        t,
    );
    assert_eq!(code, 204);
    let (_, v) = s.api(
        "POST",
        "auth/token/create",
        Some(r#"{"policies":["diag"]}"#),
        t,
    );
    let limited = v["auth"]["client_token"].as_str().unwrap().to_owned();
    for path in [
        "sys/host-info",
        "sys/monitor",
        "sys/in-flight-req",
        "sys/loggers",
    ] {
        let (code, v) = s.api("GET", path, None, Some(&limited));
        assert_eq!(code, 403, "{path}: {v}");
    }

    let (code, v) = s.api("GET", "sys/host-info", None, t);
    assert_eq!(code, 200, "{v}");
    let d = &v["data"];
    assert!(!d["cpu"].as_array().unwrap().is_empty(), "{d}");
    assert!(d["memory"]["total"].as_u64().unwrap() > 0, "{d}");
    assert!(d["host"]["uptime"].as_u64().unwrap() > 0, "{d}");
    assert!(!d["cpu_times"].as_array().unwrap().is_empty(), "{d}");

    let (code, v) = s.api("GET", "sys/config/state/sanitized", None, t);
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["data"]["storage"]["type"], "inmem");
    assert_eq!(
        v["data"]["listeners"][0]["config"]["address"],
        format!("127.0.0.1:{}", s.port)
    );
    assert!(!v.to_string().contains("root\""), "{v}");

    let (code, v) = s.api("LIST", "sys/version-history", None, t);
    assert_eq!(code, 200, "{v}");
    let keys = v["data"]["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1, "{v}");
    let version = keys[0].as_str().unwrap();
    assert!(
        v["data"]["key_info"][version]["timestamp_installed"]
            .as_str()
            .unwrap()
            .starts_with("20"),
        "{v}"
    );

    // tresor debug: a tarball with the pieces.
    let out = dir.path().join("bundle.tar.gz");
    let o = run(Command::new(env!("CARGO_BIN_EXE_tresor"))
        .args([
            "debug",
            "-duration=3s",
            "-interval=1s",
            &format!("-output={}", out.display()),
        ])
        .env("VAULT_ADDR", &s.addr)
        .env("VAULT_TOKEN", "root")
        .env("HOME", &s.home));
    assert_eq!(o.code, 0, "{o}");
    let list = run(Command::new("tar").arg("tzf").arg(&out));
    assert_eq!(list.code, 0, "{list}");
    for f in [
        "bundle/index.json",
        "bundle/config.json",
        "bundle/host_info.json",
        "bundle/seal_status.json",
        "bundle/metrics-0.json",
        "bundle/metrics-0.prom",
        "bundle/metrics-1.json",
        "bundle/in_flight_req-0.json",
        "bundle/server.log",
    ] {
        assert!(list.stdout.lines().any(|l| l == f), "{f} missing:\n{list}");
    }
    let x = dir.path().join("x");
    std::fs::create_dir_all(&x).unwrap();
    assert_eq!(
        run(Command::new("tar").arg("xzf").arg(&out).arg("-C").arg(&x)).code,
        0
    );
    let metrics: Value =
        serde_json::from_slice(&std::fs::read(x.join("bundle/metrics-0.json")).unwrap()).unwrap();
    assert!(metrics["Samples"].as_array().is_some(), "{metrics}");
    let prom = std::fs::read_to_string(x.join("bundle/metrics-0.prom")).unwrap();
    assert!(
        prom.contains("# TYPE vault_core_handle_request summary"),
        "{prom}"
    );
    // Without a usable token, debug fails and says why.
    let o = run(Command::new(env!("CARGO_BIN_EXE_tresor"))
        .args(["debug", "-duration=1s"])
        .env("VAULT_ADDR", &s.addr)
        .env("VAULT_TOKEN", &limited)
        .env("HOME", &s.home)
        .current_dir(dir.path()));
    assert_eq!(o.code, 1, "{o}");
    assert!(o.stderr.contains("403"), "{o}");
}

/// Client counts as an operator reads them: two users logging in (three times) are two
/// entity clients, tokens created with the same policies are one client, and
/// `sys/internal/counters/*` report them through the bao CLI and curl.
#[test]
fn client_counts_report_distinct_entities_and_token_policy_sets() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start_dev(&dir.path().join("srv"), free_port());
    let t = Some("root");
    for (path, body) in [
        ("sys/auth/userpass", r#"{"type":"userpass"}"#),
        ("auth/userpass/users/alice", r#"{"password":"pw"}"#),
        ("auth/userpass/users/bob", r#"{"password":"pw"}"#),
        ("auth/userpass/users/carol", r#"{"password":"pw"}"#),
        (
            "sys/policies/acl/p1",
            r#"{"policy":"path \"x/*\" { capabilities = [\"read\"] }"}"#,
        ),
    ] {
        let (code, v) = s.api("POST", path, Some(body), t);
        assert!(code == 200 || code == 204, "{path}: {code} {v}");
    }
    let login = |user: &str| {
        let (code, v) = s.api(
            "POST",
            &format!("auth/userpass/login/{user}"),
            Some(r#"{"password":"pw"}"#),
            None,
        );
        assert_eq!(code, 200, "{v}");
        v["auth"]["client_token"].as_str().unwrap().to_owned()
    };
    let alice = login("alice");
    login("alice");
    login("bob");
    for policies in [
        &["-policy=p1"][..],
        &["-policy=p1", "-policy=default"],
        &["-policy=p1", "-no-default-policy"],
    ] {
        let mut args = vec!["token", "create", "-format=json"];
        args.extend_from_slice(policies);
        s.bao_as("root", &args).expect(0, "token create");
    }

    let out = s
        .bao_as(
            "root",
            &["read", "-format=json", "sys/internal/counters/activity"],
        )
        .expect(0, "read activity");
    let d = out.json()["data"].clone();
    // alice and bob; p1 and default (twice: token create adds default), and p1 alone.
    assert_eq!(d["total"]["clients"], 4, "{d}");
    assert_eq!(d["total"]["entity_clients"], 2, "{d}");
    assert_eq!(d["total"]["distinct_entities"], 2, "{d}");
    assert_eq!(d["total"]["non_entity_clients"], 2, "{d}");
    let mounts = d["by_namespace"][0]["mounts"].as_array().unwrap().clone();
    let count = |m: &str| {
        mounts
            .iter()
            .find(|x| x["mount_path"] == m)
            .map(|x| x["counts"]["clients"].clone())
    };
    assert_eq!(count("auth/userpass/"), Some(Value::from(2)), "{d}");
    assert_eq!(count("auth/token/"), Some(Value::from(2)), "{d}");
    let months = d["months"].as_array().unwrap();
    let last = months.last().unwrap();
    assert_eq!(last["counts"]["clients"], 4, "{d}");
    assert_eq!(last["new_clients"]["counts"]["clients"], 4, "{d}");

    // `tresor operator usage`: one row per auth mount and the total.
    let o = run(Command::new(env!("CARGO_BIN_EXE_tresor"))
        .args(["operator", "usage", "-start-time=2020-01-01T00:00:00Z"])
        .env("VAULT_ADDR", &s.addr)
        .env("VAULT_TOKEN", "root")
        .env("HOME", &s.home));
    assert_eq!(o.code, 0, "{o}");
    assert!(
        o.stdout.contains("Period start: 2020-01-01T00:00:00Z"),
        "{o}"
    );
    let row = |name: &str| {
        o.stdout
            .lines()
            .find(|l| l.starts_with(name))
            .map(|l| l.split_whitespace().collect::<Vec<_>>())
    };
    assert_eq!(
        row("auth/userpass/"),
        Some(vec!["auth/userpass/", "2", "0", "2"]),
        "{o}"
    );
    assert_eq!(row("Total"), Some(vec!["Total", "2", "2", "4"]), "{o}");

    let (code, v) = s.api("GET", "sys/internal/counters/activity/monthly", None, t);
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["data"]["clients"], 4, "{v}");
    let (_, v) = s.api("GET", "sys/internal/counters/entities", None, t);
    assert_eq!(v["data"]["counters"]["entities"]["total"], 2, "{v}");
    let (_, v) = s.api("GET", "sys/internal/counters/tokens", None, t);
    // root, three logins, three created tokens.
    assert_eq!(v["data"]["counters"]["service_tokens"]["total"], 7, "{v}");

    // The export lists each client once.
    let (code, csv) = s.curl(
        "GET",
        "sys/internal/counters/activity/export?format=csv",
        None,
        t,
    );
    assert_eq!(code, 200, "{csv}");
    let lines: Vec<&str> = csv.lines().collect();
    assert!(lines[0].starts_with("client_id,client_type,"), "{csv}");
    assert_eq!(lines.len(), 5, "{csv}");
    assert_eq!(
        lines.iter().filter(|l| l.contains(",entity,")).count(),
        2,
        "{csv}"
    );
    let (code, jsonl) = s.curl("GET", "sys/internal/counters/activity/export", None, t);
    assert_eq!(code, 200);
    for l in jsonl.lines() {
        let r: Value = serde_json::from_str(l).unwrap();
        assert_eq!(r["namespace_id"], "root", "{l}");
    }

    // Turned off, a new user's login is not counted; turned back on, it is.
    s.bao_as(
        "root",
        &["write", "sys/internal/counters/config", "enabled=disable"],
    )
    .expect(0, "disable");
    let out = s
        .bao_as(
            "root",
            &["read", "-format=json", "sys/internal/counters/config"],
        )
        .expect(0, "read config");
    let cfg = out.json()["data"].clone();
    assert_eq!(cfg["enabled"], "disable", "{cfg}");
    assert_eq!(cfg["queries_available"], true, "{cfg}");
    assert_eq!(cfg["retention_months"], 48, "{cfg}");
    login("carol");
    let (_, v) = s.api("GET", "sys/internal/counters/activity/monthly", None, t);
    assert_eq!(v["data"]["clients"], 4, "{v}");
    s.bao_as(
        "root",
        &["write", "sys/internal/counters/config", "enabled=default"],
    )
    .expect(0, "enable");
    let (_, v) = s.api("GET", "sys/internal/counters/config", None, t);
    assert_eq!(v["data"]["enabled"], "default-enabled", "{v}");
    login("carol");
    let (_, v) = s.api("GET", "sys/internal/counters/activity/monthly", None, t);
    assert_eq!(v["data"]["clients"], 5, "{v}");

    // Bad input names what is wrong and changes nothing.
    for (method, path, body, want) in [
        (
            "GET",
            "sys/internal/counters/activity?start_time=yesterday",
            None,
            "start_time",
        ),
        (
            "GET",
            "sys/internal/counters/activity?start_time=2026-12-01T00:00:00Z&end_time=2026-01-01T00:00:00Z",
            None,
            "later than end_time",
        ),
        (
            "POST",
            "sys/internal/counters/config",
            Some(r#"{"retention_months":3}"#),
            "retention_months",
        ),
        (
            "POST",
            "sys/internal/counters/config",
            Some(r#"{"enabled":"yes"}"#),
            "enabled",
        ),
        (
            "GET",
            "sys/internal/counters/activity/export?format=xml",
            None,
            "format",
        ),
    ] {
        let (code, v) = s.api(method, path, body, t);
        assert_eq!(code, 400, "{path}: {v}");
        assert!(
            v["errors"][0].as_str().unwrap().contains(want),
            "{path}: {v}"
        );
    }
    // Huge and negative times are clamped to 1970 .. now: no report of thousands of months.
    let (code, v) = s.api(
        "GET",
        "sys/internal/counters/activity?start_time=-100&end_time=99999999999999",
        None,
        t,
    );
    assert_eq!(code, 200, "{v}");
    let months = v["data"]["months"].as_array().unwrap();
    assert_eq!(months[0]["timestamp"], "1970-01-01T00:00:00Z");
    assert!(months.len() < 12 * 200, "{}", months.len());
    assert_eq!(months.last().unwrap()["counts"]["clients"], 5, "{v}");
    assert_eq!(v["data"]["total"]["clients"], 5);
    let (_, v) = s.api("GET", "sys/internal/counters/config", None, t);
    assert_eq!(v["data"]["retention_months"], 48, "{v}");
    assert_eq!(v["data"]["enabled"], "default-enabled", "{v}");

    // A token whose policies do not grant the counters cannot read them.
    let (code, _) = s.api("GET", "sys/internal/counters/activity", None, Some(&alice));
    assert_eq!(code, 403);
    let (code, _) = s.api(
        "POST",
        "sys/internal/counters/config",
        Some(r#"{"enabled":"disable"}"#),
        Some(&alice),
    );
    assert_eq!(code, 403);
}

/// Lease-count quotas on the token store, and quotas with a `role`: an AppRole role's logins
/// and a token role's tokens are counted apart from the rest of their mount. A refused
/// creation leaves no token behind, also under concurrent requests.
#[test]
fn lease_count_quotas_count_token_store_tokens_and_roles() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start_dev(&dir.path().join("srv"), free_port());
    let t = Some("root");
    let post = |path: &str, body: &str| {
        let (code, v) = s.api("POST", path, Some(body), t);
        assert!(code == 200 || code == 204, "{path}: {code} {v}");
        v
    };
    let leases = |prefix: &str| {
        let (code, v) = s.api("LIST", &format!("sys/leases/lookup/{prefix}"), None, t);
        if code == 404 {
            return 0;
        }
        v["data"]["keys"].as_array().map(Vec::len).unwrap_or(0)
    };

    // The token store: three tokens under max_leases=3, then 429 with nothing created.
    post(
        "sys/quotas/lease-count/tokens",
        r#"{"path":"auth/token/create","max_leases":3}"#,
    );
    let results: Vec<u16> = std::thread::scope(|sc| {
        let hs: Vec<_> = (0..10)
            .map(|_| {
                sc.spawn(|| {
                    s.api("POST", "auth/token/create", Some(r#"{"ttl":"1h"}"#), t)
                        .0
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(
        results.iter().filter(|c| **c == 200).count(),
        3,
        "{results:?}"
    );
    assert!(
        results.iter().all(|c| *c == 200 || *c == 429),
        "{results:?}"
    );
    assert_eq!(leases("auth/token/create/"), 3);
    let (_, v) = s.api("GET", "sys/internal/counters/tokens", None, t);
    assert_eq!(
        v["data"]["counters"]["service_tokens"]["total"], 4,
        "root and three: {v}"
    );
    let (code, v) = s.api("POST", "auth/token/create", Some(r#"{"ttl":"1h"}"#), t);
    assert_eq!(code, 429, "{v}");
    assert!(v.to_string().contains("lease count quota exceeded"), "{v}");
    let (code, _) = s.api("DELETE", "sys/quotas/lease-count/tokens", None, t);
    assert_eq!(code, 204);

    // A token role's quota counts that role's tokens only.
    post(
        "auth/token/roles/deploy",
        r#"{"allowed_policies":["default"]}"#,
    );
    post(
        "sys/quotas/lease-count/deploy",
        r#"{"path":"auth/token/","role":"deploy","max_leases":1}"#,
    );
    let (code, v) = s.api(
        "POST",
        "auth/token/create/deploy",
        Some(r#"{"ttl":"1h"}"#),
        t,
    );
    assert_eq!(code, 200, "{v}");
    let (code, v) = s.api(
        "POST",
        "auth/token/create/deploy",
        Some(r#"{"ttl":"1h"}"#),
        t,
    );
    assert_eq!(code, 429, "{v}");
    let (code, v) = s.api("POST", "auth/token/create", Some(r#"{"ttl":"1h"}"#), t);
    assert_eq!(code, 200, "another role's tokens are not counted: {v}");
    let (_, v) = s.api("GET", "sys/quotas/lease-count/deploy", None, t);
    assert_eq!(v["data"]["role"], "deploy", "{v}");

    // AppRole: the role is named by role_id only; role a is limited, role b is not.
    post("sys/auth/approle", r#"{"type":"approle"}"#);
    let mut creds = Vec::new();
    for role in ["a", "b"] {
        post(
            &format!("auth/approle/role/{role}"),
            r#"{"token_ttl":"1h"}"#,
        );
        let (_, v) = s.api("GET", &format!("auth/approle/role/{role}/role-id"), None, t);
        let role_id = v["data"]["role_id"].as_str().unwrap().to_owned();
        let v = post(&format!("auth/approle/role/{role}/secret-id"), "{}");
        let secret_id = v["data"]["secret_id"].as_str().unwrap().to_owned();
        creds.push(format!(
            r#"{{"role_id":"{role_id}","secret_id":"{secret_id}"}}"#
        ));
    }
    post(
        "sys/quotas/lease-count/approle-a",
        r#"{"path":"auth/approle/","role":"a","max_leases":2}"#,
    );
    let login = |body: &str| s.api("POST", "auth/approle/login", Some(body), None);
    for _ in 0..2 {
        let (code, v) = login(&creds[0]);
        assert_eq!(code, 200, "{v}");
    }
    let (code, v) = login(&creds[0]);
    assert_eq!(code, 429, "{v}");
    // Naming another role in the body does not move a login out of its role's quota: the
    // role comes from the role_id.
    let mut with_role: Value = serde_json::from_str(&creds[0]).unwrap();
    for field in ["role", "role_name"] {
        with_role[field] = Value::from("b");
        let (code, v) = login(&with_role.to_string());
        assert_eq!(code, 429, "{field}: {v}");
    }
    for _ in 0..3 {
        let (code, v) = login(&creds[1]);
        assert_eq!(code, 200, "role b is not limited: {v}");
    }
    assert_eq!(leases("auth/approle/login/"), 5);
}

/// Attacks on client counting: other spellings of a denied config path, concurrent first
/// logins of one user counted once, out-of-range and malformed settings refused with nothing
/// changed.
#[test]
fn client_counts_hold_against_spellings_races_and_bad_values() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start_dev(&dir.path().join("srv"), free_port());
    let t = Some("root");
    for (path, body) in [
        ("sys/auth/userpass", r#"{"type":"userpass"}"#),
        (
            "auth/userpass/users/racer",
            r#"{"password":"pw","token_policies":["reader"]}"#,
        ),
        (
            "sys/policies/acl/reader",
            r#"{"policy":"path \"sys/internal/counters/*\" { capabilities = [\"read\", \"update\"] }\npath \"sys/internal/counters/config\" { capabilities = [\"deny\"] }"}"#,
        ),
    ] {
        let (code, v) = s.api("POST", path, Some(body), t);
        assert!(code == 200 || code == 204, "{path}: {code} {v}");
    }

    // Twenty concurrent first logins of one user: one client, one record.
    let tokens: Vec<String> = std::thread::scope(|sc| {
        let hs: Vec<_> = (0..20)
            .map(|_| {
                sc.spawn(|| {
                    let (code, v) = s.api(
                        "POST",
                        "auth/userpass/login/racer",
                        Some(r#"{"password":"pw"}"#),
                        None,
                    );
                    assert_eq!(code, 200, "{v}");
                    v["auth"]["client_token"].as_str().unwrap().to_owned()
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let (_, v) = s.api("GET", "sys/internal/counters/activity/monthly", None, t);
    assert_eq!(v["data"]["entity_clients"], 1, "{v}");
    let (code, csv) = s.curl(
        "GET",
        "sys/internal/counters/activity/export?format=csv",
        None,
        t,
    );
    assert_eq!(code, 200);
    assert_eq!(
        csv.lines().filter(|l| l.contains(",entity,")).count(),
        1,
        "{csv}"
    );

    // The reader may read the counters but not touch the config, however it is spelled.
    let reader = &tokens[0];
    let (code, v) = s.api("GET", "sys/internal/counters/activity", None, Some(reader));
    assert_eq!(code, 200, "{v}");
    for path in [
        "sys/internal/counters/config",
        "sys/internal/counters/config/",
        "sys/internal/counters//config",
        "sys/internal/counters/%63onfig",
        "sys/internal/counters/Config",
        "sys/internal/counters/./config",
        "sys/internal/counters/x/../config",
        "sys/internal/counters/config%20",
    ] {
        // A 307 (`//`, `./`, `../`) only points at the canonical path, which is denied.
        let (code, body) = s.curl("POST", path, Some(r#"{"enabled":"disable"}"#), Some(reader));
        assert!(
            matches!(code, 307 | 400 | 403 | 404 | 405),
            "{path}: {code} {body}"
        );
        let (code, body) = s.curl("GET", path, None, Some(reader));
        assert!(
            code != 200 || !body.contains("\"enabled\""),
            "{path}: {body}"
        );
    }
    let (_, v) = s.api("GET", "sys/internal/counters/config", None, t);
    assert_eq!(v["data"]["enabled"], "default-enabled", "{v}");

    // Out-of-range, negative, huge and malformed values: 400, nothing changed.
    for body in [
        r#"{"retention_months":-1}"#,
        r#"{"retention_months":61}"#,
        r#"{"retention_months":99999999999999999999}"#,
        r#"{"retention_months":"many"}"#,
        r#"{"default_report_months":0}"#,
        r#"{"default_report_months":-5}"#,
        r#"{"enabled":""}"#,
        r#"{"enabled":"ENABLE"}"#,
    ] {
        let (code, v) = s.api("POST", "sys/internal/counters/config", Some(body), t);
        assert_eq!(code, 400, "{body}: {v}");
        assert!(!errors_of(&v).is_empty(), "{body}: {v}");
    }
    let (_, v) = s.api("GET", "sys/internal/counters/config", None, t);
    assert_eq!(v["data"]["retention_months"], 48, "{v}");
    assert_eq!(v["data"]["default_report_months"], 12, "{v}");
    for query in [
        "end_time=",
        "start_time=9223372036854775807",
        "start_time=-9223372036854775808",
        "start_time=2026-13-45T99:00:00Z",
        "start_time=%00",
    ] {
        let (code, v) = s.api(
            "GET",
            &format!("sys/internal/counters/activity?{query}"),
            None,
            t,
        );
        assert!(code == 200 || code == 400, "{query}: {code} {v}");
        if code == 400 {
            assert!(!errors_of(&v).is_empty(), "{query}: {v}");
        }
    }
    let (code, v) = s.api("GET", "sys/health", None, None);
    assert_eq!(code, 200, "{v}");
}

fn errors_of(v: &Value) -> Vec<String> {
    common::errors(v)
}
