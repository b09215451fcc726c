//! End to end, issue 19: `tresor agent` against a real `tresor server -dev` on 127.0.0.1, the
//! way an operator runs it: AppRole auto-auth with a wrapped secret ID kept alive past several
//! token TTLs; a `certificate` block whose files nginx serves and reloads; templates and
//! `exec`; the caching proxy counted through the server's audit log; the same agent.hcl run
//! by `bao agent` giving the same files; bad configurations refused. Every process is started
//! by the test, bounded in time and killed by PID.

mod common;

use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Server, bao_bin, clean_command, free_port, run};
use serde_json::{Value, json};

/// A process started by a test (agent, nginx), output in a file, killed by PID on drop.
struct Proc {
    child: Child,
    log: PathBuf,
}

impl Proc {
    fn start(mut cmd: Command, log: &Path) -> Proc {
        let out = std::fs::File::create(log).unwrap();
        let err = out.try_clone().unwrap();
        cmd.stdin(Stdio::null()).stdout(out).stderr(err);
        Proc {
            child: cmd.spawn().expect("start process"),
            log: log.to_path_buf(),
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// SIGTERM first, so that a parent (nginx's master) stops its children (its workers)
    /// too, then SIGKILL after 3 s; an orphaned worker would outlive the test.
    fn stop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = Command::new("kill")
                .args(["-TERM", &self.child.id().to_string()])
                .status();
            let t = std::time::Instant::now();
            while matches!(self.child.try_wait(), Ok(None))
                && t.elapsed() < std::time::Duration::from_secs(3)
            {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.stop();
    }
}

fn agent(dir: &Path, name: &str, config: &str) -> Proc {
    let cfg = dir.join(format!("{name}.hcl"));
    std::fs::write(&cfg, config).unwrap();
    let mut c = clean_command(env!("CARGO_BIN_EXE_tresor"));
    c.arg("agent")
        .arg(format!("-config={}", cfg.display()))
        .current_dir(dir)
        .env("HOME", dir);
    // A fresh log per start, so a restart does not hide the first run's output.
    let n = (0..)
        .find(|i| !dir.join(format!("{name}-{i}.log")).exists())
        .unwrap();
    Proc::start(c, &dir.join(format!("{name}-{n}.log")))
}

/// Polls `f` every 100 ms until it gives `Some`, failing with `what` and `ctx()` after `limit`.
fn wait_for<T>(
    limit: Duration,
    what: &str,
    ctx: impl Fn() -> String,
    mut f: impl FnMut() -> Option<T>,
) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return v;
        }
        if Instant::now() > deadline {
            panic!("timed out after {limit:?} waiting for {what}\n{}", ctx());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// One HTTP request with curl to any URL: (status, body).
fn http(method: &str, url: &str, body: Option<&str>, token: Option<&str>) -> (u16, String) {
    let mut c = Command::new("curl");
    c.args([
        "-s",
        "--max-time",
        "20",
        "-X",
        method,
        "-w",
        "\n%{http_code}",
        url,
    ]);
    if let Some(t) = token {
        c.args(["-H", &format!("X-Vault-Token: {t}")]);
    }
    if let Some(b) = body {
        c.args(["-H", "Content-Type: application/json", "--data-binary", b]);
    }
    let o = run(&mut c);
    let (text, code) = o.stdout.rsplit_once('\n').expect("status line");
    (code.trim().parse().expect("status"), text.to_string())
}

fn root(s: &Server, method: &str, path: &str, body: Value) -> Value {
    let text = body.to_string();
    let (code, v) = s.api(
        method,
        path,
        (!body.is_null()).then_some(text.as_str()),
        Some("root"),
    );
    assert!(code < 300, "{method} {path} -> {code}: {v}");
    v
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o7777
}

fn lookup_ok(s: &Server, token: &str) -> bool {
    s.api("GET", "auth/token/lookup-self", None, Some(token)).0 == 200
}

#[test]
fn approle_with_a_wrapped_secret_id_keeps_a_0600_sink_alive_and_restarts_without_it() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let s = Server::start_dev(&d.join("srv"), free_port());
    root(&s, "POST", "sys/auth/approle", json!({"type": "approle"}));
    root(
        &s,
        "POST",
        "auth/approle/role/web",
        json!({"token_ttl": "3s", "token_max_ttl": "7s", "secret_id_num_uses": 0, "token_policies": ["default"]}),
    );
    let role_id = root(&s, "GET", "auth/approle/role/web/role-id", Value::Null)["data"]["role_id"]
        .as_str()
        .unwrap()
        .to_string();
    std::fs::write(d.join("role-id"), &role_id).unwrap();
    let o = s
        .bao_as(
            "root",
            &[
                "write",
                "-wrap-ttl=120s",
                "-format=json",
                "-f",
                "auth/approle/role/web/secret-id",
            ],
        )
        .expect(0, "wrapped secret-id");
    let wrapping = o.json()["wrap_info"]["token"].as_str().unwrap().to_string();
    std::fs::write(d.join("secret-id"), &wrapping).unwrap();
    let sink = d.join("token");
    let config = format!(
        r#"
vault {{ address = "{addr}" }}
auto_auth {{
  method "approle" {{
    config = {{
      role_id_file_path = "{d}/role-id"
      secret_id_file_path = "{d}/secret-id"
      secret_id_response_wrapping_path = "auth/approle/role/web/secret-id"
    }}
  }}
  sink "file" {{ config = {{ path = "{sink}" }} }}
}}
"#,
        addr = s.addr,
        d = d.display(),
        sink = sink.display()
    );
    let mut a = agent(d, "agent", &config);
    let first = wait_for(
        Duration::from_secs(15),
        "the sink",
        || a.log(),
        || {
            std::fs::read_to_string(&sink)
                .ok()
                .filter(|t| !t.is_empty())
        },
    );
    assert_eq!(mode(&sink), 0o600, "sink mode");
    assert!(
        !d.join("secret-id").exists(),
        "the secret ID file is removed after reading"
    );
    // The wrapping token was used up: nobody else can unwrap it now.
    let (code, _) = s.api("POST", "sys/wrapping/unwrap", None, Some(&wrapping));
    assert_ne!(code, 200, "the wrapping token is single-use");

    // 16 s is more than five token TTLs and two max TTLs: the sink always holds a live token.
    let mut tokens = std::collections::BTreeSet::from([first.clone()]);
    let end = Instant::now() + Duration::from_secs(16);
    let mut checks = 0;
    while Instant::now() < end {
        let t = std::fs::read_to_string(&sink).unwrap();
        assert!(
            lookup_ok(&s, &t),
            "the sink token is dead after {checks} checks\n{}",
            a.log()
        );
        tokens.insert(t);
        checks += 1;
        std::thread::sleep(Duration::from_millis(400));
    }
    assert!(a.alive(), "{}", a.log());
    assert!(
        tokens.len() >= 2,
        "a new login after the max TTL: {} tokens",
        tokens.len()
    );
    assert!(a.log().contains("renew") || tokens.len() >= 3 || checks > 0);
    assert!(
        !a.log().contains(&role_id) && !a.log().contains(&wrapping),
        "a credential in the log"
    );
    for t in &tokens {
        assert!(!a.log().contains(t.as_str()), "a token in the log");
    }
    eprintln!(
        "approle: {checks} lookups over 16 s, {} distinct tokens",
        tokens.len()
    );

    // Restart: the secret ID is gone (file removed, wrapping token spent), but the token in
    // the sink is still valid, so the agent reuses it instead of failing. Longer TTLs first,
    // so the token in the sink has time left when the agent stops.
    root(
        &s,
        "POST",
        "auth/approle/role/web",
        json!({"token_ttl": "60s", "token_max_ttl": "120s", "secret_id_num_uses": 0, "token_policies": ["default"]}),
    );
    let last = std::fs::read_to_string(&sink).unwrap();
    wait_for(
        Duration::from_secs(15),
        "a login with the longer TTL",
        || a.log(),
        || {
            std::fs::read_to_string(&sink)
                .ok()
                .filter(|t| *t != last && !t.is_empty())
        },
    );
    a.stop();
    let before = std::fs::read_to_string(&sink).unwrap();
    assert!(lookup_ok(&s, &before));
    let mut b = agent(d, "agent", &config);
    wait_for(
        Duration::from_secs(10),
        "reuse in the log",
        || b.log(),
        || b.log().contains("reusing the valid token").then_some(()),
    );
    assert_eq!(
        std::fs::read_to_string(&sink).unwrap(),
        before,
        "the sink is not rewritten"
    );
    assert!(b.alive(), "{}", b.log());
}

const NGINX: &str = "/usr/sbin/nginx";

fn openssl(args: &[&str], dir: &Path) -> String {
    let o = run(Command::new("openssl").args(args).current_dir(dir));
    assert_eq!(o.code, 0, "openssl {args:?}: {o}");
    o.stdout
}

fn serial_of_file(p: &Path) -> String {
    let out = openssl(
        &["x509", "-noout", "-serial", "-in", &p.display().to_string()],
        Path::new("/"),
    );
    out.trim()
        .trim_start_matches("serial=")
        .to_ascii_lowercase()
}

/// The serial nginx serves on `port`.
fn served_serial(port: u16) -> Option<String> {
    let mut c = Command::new("sh");
    c.arg("-c").arg(format!(
        "openssl s_client -connect 127.0.0.1:{port} -servername etcd-3.internal </dev/null 2>/dev/null | openssl x509 -noout -serial"
    ));
    let o = run(&mut c);
    let s = o
        .stdout
        .trim()
        .trim_start_matches("serial=")
        .to_ascii_lowercase();
    (o.code == 0 && !s.is_empty()).then_some(s)
}

#[test]
fn a_certificate_block_writes_three_files_nginx_serves_and_reloads() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let s = Server::start_dev(&d.join("srv"), free_port());
    root(
        &s,
        "POST",
        "sys/mounts/etcd/c1/pki",
        json!({"type": "pki", "config": {"max_lease_ttl": "87600h"}}),
    );
    root(
        &s,
        "POST",
        "etcd/c1/pki/root/generate/internal",
        json!({"common_name": "etcd CA", "ttl": "8760h", "key_type": "ec"}),
    );
    root(
        &s,
        "POST",
        "etcd/c1/pki/roles/member",
        json!({"allowed_domains": "internal", "allow_subdomains": true, "allow_ip_sans": true, "max_ttl": "1h", "key_type": "ec"}),
    );
    std::fs::write(d.join("token"), "root").unwrap();
    let tls = d.join("tls");
    std::fs::create_dir(&tls).unwrap();
    let (key, crt, ca, chain) = (
        tls.join("server.key"),
        tls.join("server.crt"),
        tls.join("ca.crt"),
        tls.join("chain.crt"),
    );
    let nginx_port = free_port();
    let agent_port = free_port();
    let user = run(Command::new("id").arg("-un")).stdout.trim().to_string();
    let uid = run(Command::new("id").arg("-u"))
        .stdout
        .trim()
        .parse::<u32>()
        .unwrap();
    let config = format!(
        r#"
vault {{ address = "{addr}" }}
auto_auth {{
  method "token_file" {{ config {{ token_file_path = "{d}/token" }} }}
}}
listener "tcp" {{
  address = "127.0.0.1:{agent_port}"
  tls_disable = true
}}
certificate "etcd-server" {{
  mount  = "etcd/c1/pki"
  role   = "member"
  common_name = "etcd-3.internal"
  ip_sans     = ["127.0.0.1"]
  ttl = "40s"
  renew_before = "25s"
  key_file   {{ path = "{key}" owner = "{user}" mode = "0600" }}
  cert_file  {{ path = "{crt}" mode = "0644" }}
  ca_file    {{ path = "{ca}" }}
  chain_file {{ path = "{chain}" }}
  reload {{ command = ["/bin/sh", "-c", "echo reload >> {d}/reloads.log; kill -HUP $(cat {d}/nginx.pid)"] timeout = "10s" }}
}}
"#,
        addr = s.addr,
        d = d.display(),
        key = key.display(),
        crt = crt.display(),
        ca = ca.display(),
        chain = chain.display(),
    );
    let mut a = agent(d, "agent", &config);
    let serial1 = wait_for(
        Duration::from_secs(15),
        "the certificate files",
        || a.log(),
        || {
            (key.exists() && crt.exists() && ca.exists() && chain.exists())
                .then(|| serial_of_file(&crt))
        },
    );
    // Three parts that openssl accepts, the key matching, with the configured modes and owner.
    let verify = openssl(
        &[
            "verify",
            "-CAfile",
            &ca.display().to_string(),
            &crt.display().to_string(),
        ],
        d,
    );
    assert!(verify.contains(": OK"), "{verify}");
    let pub_cert = openssl(
        &[
            "x509",
            "-noout",
            "-pubkey",
            "-in",
            &crt.display().to_string(),
        ],
        d,
    );
    let pub_key = openssl(&["pkey", "-pubout", "-in", &key.display().to_string()], d);
    assert_eq!(pub_cert, pub_key, "the key matches the certificate");
    assert_eq!(mode(&key), 0o600);
    assert_eq!(mode(&crt), 0o644);
    assert_eq!(std::fs::metadata(&key).unwrap().uid(), uid);
    let chain_text = std::fs::read_to_string(&chain).unwrap();
    assert_eq!(
        chain_text.matches("BEGIN CERTIFICATE").count(),
        2,
        "leaf then CA"
    );

    // nginx serves the chain and key.
    for sub in ["client_body", "proxy", "fastcgi", "uwsgi", "scgi"] {
        std::fs::create_dir_all(d.join("nginx-tmp").join(sub)).unwrap();
    }
    let t = d.join("nginx-tmp");
    let nginx_conf = format!(
        "daemon off;\nworker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/nginx-error.log;\nevents {{ worker_connections 64; }}\nhttp {{\n  access_log off;\n  client_body_temp_path {t}/client_body;\n  proxy_temp_path {t}/proxy;\n  fastcgi_temp_path {t}/fastcgi;\n  uwsgi_temp_path {t}/uwsgi;\n  scgi_temp_path {t}/scgi;\n  server {{\n    listen 127.0.0.1:{nginx_port} ssl;\n    ssl_certificate {chain};\n    ssl_certificate_key {key};\n    location / {{ return 200 \"ok\\n\"; }}\n  }}\n}}\n",
        d = d.display(),
        t = t.display(),
        chain = chain.display(),
        key = key.display()
    );
    std::fs::write(d.join("nginx.conf"), nginx_conf).unwrap();
    let mut ng_cmd = Command::new(NGINX);
    ng_cmd.args([
        "-c",
        &d.join("nginx.conf").display().to_string(),
        "-e",
        &d.join("nginx-error.log").display().to_string(),
    ]);
    let mut nginx = Proc::start(ng_cmd, &d.join("nginx.out"));
    let served = wait_for(
        Duration::from_secs(10),
        "nginx serving TLS",
        || nginx.log(),
        || served_serial(nginx_port),
    );
    assert_eq!(served, serial1.replace(':', ""));

    // Between renewals nothing is rewritten (renewal is 15 s after issuance).
    let mtimes = |_: ()| {
        [&key, &crt, &ca, &chain].map(|p| std::fs::metadata(p).unwrap().modified().unwrap())
    };
    let m1 = mtimes(());
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(mtimes(()), m1, "files rewritten without a new serial");
    // The first issuance ran the reload command once (nginx was not up yet).
    let reloads = |_: ()| {
        std::fs::read_to_string(d.join("reloads.log"))
            .unwrap_or_default()
            .lines()
            .count()
    };
    assert_eq!(reloads(()), 1, "one reload for the first issuance");

    // Renewal: a new serial on disk, one reload, and nginx serves it.
    let serial2 = wait_for(
        Duration::from_secs(30),
        "a renewed certificate",
        || a.log(),
        || Some(serial_of_file(&crt)).filter(|s| *s != serial1),
    );
    let served2 = wait_for(
        Duration::from_secs(10),
        "nginx serving the new serial",
        || nginx.log(),
        || served_serial(nginx_port).filter(|s| *s == serial2.replace(':', "")),
    );
    assert_eq!(served2, serial2.replace(':', ""));
    assert_eq!(reloads(()), 2, "one reload per rotation");
    let verify = openssl(
        &[
            "verify",
            "-CAfile",
            &ca.display().to_string(),
            &crt.display().to_string(),
        ],
        d,
    );
    assert!(verify.contains(": OK"), "{verify}");
    assert!(!a.log().contains("PRIVATE KEY"), "key material in the log");

    // A restart reuses the certificate on disk: same serial, no reload, files untouched.
    a.stop();
    let m2 = mtimes(());
    let mut b = agent(d, "agent", &config);
    wait_for(
        Duration::from_secs(10),
        "the agent reading its files back",
        || b.log(),
        || {
            b.log()
                .contains("found a valid certificate on disk")
                .then_some(())
        },
    );
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        serial_of_file(&crt),
        serial2,
        "a restart re-issued\n{}",
        b.log()
    );
    assert_eq!(mtimes(()), m2, "a restart rewrote the files");
    assert_eq!(reloads(()), 2, "a restart ran the reload command");

    // The local endpoint forces a rotation.
    let (code, body) = http(
        "POST",
        &format!("http://127.0.0.1:{agent_port}/agent/v1/certificate/etcd-server/rotate"),
        None,
        None,
    );
    assert_eq!(code, 202, "{body}");
    let serial3 = wait_for(
        Duration::from_secs(10),
        "a forced rotation",
        || b.log(),
        || Some(serial_of_file(&crt)).filter(|s| *s != serial2),
    );
    wait_for(
        Duration::from_secs(10),
        "nginx serving the forced serial",
        || nginx.log(),
        || served_serial(nginx_port).filter(|s| *s == serial3.replace(':', "")),
    );
    let (code, _) = http(
        "POST",
        &format!("http://127.0.0.1:{agent_port}/agent/v1/certificate/etcd-server/rotate"),
        None,
        None,
    );
    assert_eq!(code, 429, "a second forced rotation within 10 s is refused");
    let (code, _) = http(
        "POST",
        &format!("http://127.0.0.1:{agent_port}/agent/v1/certificate/nope/rotate"),
        None,
        None,
    );
    assert_eq!(code, 404);
    assert!(b.alive() && nginx.alive());
    eprintln!("certificate: serials {serial1} -> {serial2} -> {serial3}");
}

#[test]
fn templates_render_and_rerender_and_exec_restarts_with_the_new_environment() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let s = Server::start_dev(&d.join("srv"), free_port());
    root(
        &s,
        "POST",
        "secret/data/app",
        json!({"data": {"user": "admin", "pw": "one"}}),
    );
    std::fs::write(d.join("token"), "root").unwrap();
    let out = d.join("out/app.conf");
    let config = format!(
        r#"
vault {{ address = "{addr}" }}
auto_auth {{
  method "token_file" {{ config {{ token_file_path = "{d}/token" }} }}
}}
template_config {{ static_secret_render_interval = "1s" }}
template {{
  contents = "{{{{ with secret \"secret/data/app\" }}}}user={{{{ .Data.data.user }}}} pw={{{{ .Data.data.pw }}}}{{{{ end }}}}\n"
  destination = "{out}"
  perms = "0640"
  command = "echo changed >> {d}/commands.log"
}}
template {{
  contents = "{{{{ with secret \"secret/data/missing\" }}}}{{{{ .Data.data.x }}}}{{{{ end }}}}"
  destination = "{d}/broken.txt"
  error_on_missing_key = true
}}
env_template "APP_PW" {{
  contents = "{{{{ with secret \"secret/data/app\" }}}}{{{{ .Data.data.pw }}}}{{{{ end }}}}"
}}
exec {{
  command = ["/bin/sh", "-c", "echo \"start $APP_PW\" >> {d}/exec.log; exec sleep 1000"]
  restart_on_secret_changes = "always"
}}
"#,
        addr = s.addr,
        d = d.display(),
        out = out.display()
    );
    let a = agent(d, "agent", &config);
    wait_for(
        Duration::from_secs(15),
        "the first render",
        || a.log(),
        || {
            std::fs::read_to_string(&out)
                .ok()
                .filter(|t| t == "user=admin pw=one\n")
        },
    );
    assert_eq!(mode(&out), 0o640);
    let exec_log = d.join("exec.log");
    wait_for(
        Duration::from_secs(10),
        "the child",
        || a.log(),
        || {
            std::fs::read_to_string(&exec_log)
                .ok()
                .filter(|t| t.contains("start one"))
        },
    );
    // Unchanged secrets: no rewrite, no command, over three intervals.
    let m = std::fs::metadata(&out).unwrap().modified().unwrap();
    std::thread::sleep(Duration::from_millis(3500));
    assert_eq!(std::fs::metadata(&out).unwrap().modified().unwrap(), m);
    assert_eq!(
        std::fs::read_to_string(d.join("commands.log"))
            .unwrap()
            .lines()
            .count(),
        1
    );
    // The broken template failed on its own.
    assert!(!d.join("broken.txt").exists());
    assert!(a.log().contains("template failed"), "{}", a.log());

    // A change is rendered within the interval (plus a little) and restarts the child.
    let t0 = Instant::now();
    root(
        &s,
        "POST",
        "secret/data/app",
        json!({"data": {"user": "admin", "pw": "two"}}),
    );
    wait_for(
        Duration::from_secs(5),
        "the re-render",
        || a.log(),
        || {
            std::fs::read_to_string(&out)
                .ok()
                .filter(|t| t == "user=admin pw=two\n")
        },
    );
    let rerender = t0.elapsed();
    wait_for(
        Duration::from_secs(10),
        "the restarted child",
        || a.log(),
        || {
            std::fs::read_to_string(&exec_log)
                .ok()
                .filter(|t| t.contains("start two"))
        },
    );
    assert_eq!(
        std::fs::read_to_string(d.join("commands.log"))
            .unwrap()
            .lines()
            .count(),
        2
    );
    assert_eq!(
        std::fs::read_to_string(&exec_log).unwrap().lines().count(),
        2,
        "one restart"
    );
    assert!(!a.log().contains("pw=two") && !a.log().contains("start two"));
    eprintln!("template: re-rendered {rerender:?} after the write (interval 1s)");
}

/// Counts request entries for `path` in the audit log.
fn audit_requests(log: &Path, path: &str) -> usize {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["type"] == "request" && v["request"]["path"] == path)
        .count()
}

#[test]
fn the_caching_proxy_serves_leases_once_and_evicts_on_revocation() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let s = Server::start_dev(&d.join("srv"), free_port());
    let audit = d.join("audit.log");
    root(
        &s,
        "POST",
        "sys/audit/file",
        json!({"type": "file", "options": {"file_path": audit.display().to_string()}}),
    );
    root(
        &s,
        "POST",
        "sys/mounts/pki",
        json!({"type": "pki", "config": {"max_lease_ttl": "87600h"}}),
    );
    root(
        &s,
        "POST",
        "pki/root/generate/internal",
        json!({"common_name": "CA", "ttl": "8760h", "key_type": "ec"}),
    );
    root(
        &s,
        "POST",
        "pki/roles/leased",
        json!({"allow_any_name": true, "generate_lease": true, "ttl": "1h", "key_type": "ec"}),
    );
    std::fs::write(d.join("token"), "root").unwrap();
    let port = free_port();
    let config = format!(
        r#"
vault {{ address = "{addr}" }}
auto_auth {{
  method "token_file" {{ config {{ token_file_path = "{d}/token" }} }}
}}
listener "tcp" {{
  address = "127.0.0.1:{port}"
  tls_disable = true
}}
api_proxy {{ use_auto_auth_token = true }}
cache {{}}
"#,
        addr = s.addr,
        d = d.display()
    );
    let a = agent(d, "agent", &config);
    let base = format!("http://127.0.0.1:{port}");
    wait_for(
        Duration::from_secs(10),
        "the listener",
        || a.log(),
        || (http("GET", &format!("{base}/v1/sys/health"), None, None).0 == 200).then_some(()),
    );
    // A token created through the proxy (no client token: the agent's is used), twice.
    let create = |_: ()| {
        let (code, body) = http(
            "POST",
            &format!("{base}/v1/auth/token/create"),
            Some(r#"{"policies":["default"],"ttl":"1h"}"#),
            None,
        );
        assert_eq!(code, 200, "{body}");
        serde_json::from_str::<Value>(&body).unwrap()["auth"]["client_token"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let t1 = create(());
    let t2 = create(());
    assert_eq!(t1, t2, "the second creation is served from the cache");
    assert_eq!(
        audit_requests(&audit, "auth/token/create"),
        1,
        "the server saw one request"
    );

    // A leased secret (a PKI certificate with generate_lease), twice.
    let issue = |_: ()| {
        let (code, body) = http(
            "POST",
            &format!("{base}/v1/pki/issue/leased"),
            Some(r#"{"common_name":"a.example"}"#),
            None,
        );
        assert_eq!(code, 200, "{body}");
        serde_json::from_str::<Value>(&body).unwrap()
    };
    let c1 = issue(());
    let lease = c1["lease_id"].as_str().unwrap().to_string();
    assert!(!lease.is_empty(), "{c1}");
    let c2 = issue(());
    assert_eq!(c1["data"]["serial_number"], c2["data"]["serial_number"]);
    assert_eq!(audit_requests(&audit, "pki/issue/leased"), 1);

    // Revoking through the agent evicts: the next request reaches the server.
    let (code, body) = http(
        "PUT",
        &format!("{base}/v1/sys/leases/revoke"),
        Some(&json!({"lease_id": lease}).to_string()),
        None,
    );
    assert!(code == 204 || code == 200, "{code} {body}");
    let c3 = issue(());
    assert_ne!(c3["data"]["serial_number"], c1["data"]["serial_number"]);
    assert_eq!(audit_requests(&audit, "pki/issue/leased"), 2);
    let (code, body) = http(
        "POST",
        &format!("{base}/v1/auth/token/revoke"),
        Some(&json!({"token": t1}).to_string()),
        None,
    );
    assert!(code == 204 || code == 200, "{code} {body}");
    assert!(!lookup_ok(&s, &t1));
    let t3 = create(());
    assert_ne!(t3, t1);
    assert_eq!(audit_requests(&audit, "auth/token/create"), 2);

    // cache-clear empties it.
    assert_eq!(create(()), t3);
    let (code, _) = http(
        "POST",
        &format!("{base}/agent/v1/cache-clear"),
        Some(r#"{"type":"all"}"#),
        None,
    );
    assert_eq!(code, 200);
    assert_ne!(create(()), t3);
    assert_eq!(audit_requests(&audit, "auth/token/create"), 3);
    let (_, metrics) = http("GET", &format!("{base}/agent/v1/metrics"), None, None);
    assert!(
        metrics.contains("tresor_agent_cache_hits_total 3"),
        "{metrics}"
    );
    // A request with its own token is forwarded with it (no cache sharing across tokens).
    let (code, _) = http(
        "GET",
        &format!("{base}/v1/auth/token/lookup-self"),
        None,
        Some(&t3),
    );
    assert_eq!(code, 200);
}

#[test]
fn bao_agent_renders_the_same_files_from_the_same_config() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let s = Server::start_dev(&d.join("srv"), free_port());
    root(
        &s,
        "POST",
        "secret/data/app",
        json!({"data": {"user": "admin", "pw": "p@ss w0rd", "b64": "aGVsbG8gd29ybGQ=", "n": 42, "list": ["a", "b"]}}),
    );
    root(&s, "POST", "sys/mounts/kv1", json!({"type": "kv"}));
    root(
        &s,
        "POST",
        "kv1/db",
        json!({"host": "db.internal", "port": "5432"}),
    );
    std::fs::write(d.join("token"), "root").unwrap();
    let template = r#"
{{- with secret "secret/data/app" -}}
user={{ .Data.data.user }}
pw={{ .Data.data.pw }}
decoded={{ .Data.data.b64 | base64Decode }}
n={{ .Data.data.n }}
list={{ .Data.data.list }}
json={{ .Data.data | toJSON }}
{{ range $k, $v := .Data.data }}{{ $k }}:{{ $v }};{{ end }}
{{ end -}}
{{ with secret "kv1/db" }}{{ range $k, $v := .Data }}{{ $k }}={{ $v }}
{{ end }}{{ end -}}
{{ if (secret "secret/data/app").Data.data.user }}present{{ else }}absent{{ end }}
"#;
    std::fs::write(d.join("app.ctmpl"), template).unwrap();
    let config = |out: &Path| {
        format!(
            r#"
vault {{
  address = "{addr}"
}}
auto_auth {{
  method {{
    type = "token_file"
    config {{
      token_file_path = "{d}/token"
    }}
  }}
}}
template_config {{
  static_secret_render_interval = "1s"
}}
template {{
  source      = "{d}/app.ctmpl"
  destination = "{out}/app.txt"
  perms       = "0600"
}}
template {{
  contents    = "{{{{ with secret \"secret/data/app\" }}}}{{{{ .Data.data.pw }}}}{{{{ end }}}}"
  destination = "{out}/pw.txt"
}}
"#,
            addr = s.addr,
            d = d.display(),
            out = out.display()
        )
    };
    let (ours, theirs) = (d.join("ours"), d.join("theirs"));
    std::fs::create_dir_all(&ours).unwrap();
    std::fs::create_dir_all(&theirs).unwrap();
    let a = agent(d, "ours", &config(&ours));
    std::fs::write(d.join("bao.hcl"), config(&theirs)).unwrap();
    let mut bc = clean_command(bao_bin());
    bc.args(["agent", &format!("-config={}", d.join("bao.hcl").display())])
        .current_dir(d)
        .env("HOME", d);
    let b = Proc::start(bc, &d.join("bao.log"));
    for f in ["app.txt", "pw.txt"] {
        let mine = wait_for(
            Duration::from_secs(15),
            "tresor agent's file",
            || a.log(),
            || std::fs::read(ours.join(f)).ok(),
        );
        let bao = wait_for(
            Duration::from_secs(30),
            "bao agent's file",
            || b.log(),
            || std::fs::read(theirs.join(f)).ok(),
        );
        assert_eq!(
            String::from_utf8_lossy(&mine),
            String::from_utf8_lossy(&bao),
            "{f} differs"
        );
        assert_eq!(mode(&ours.join(f)), mode(&theirs.join(f)), "{f} mode");
    }
    eprintln!(
        "differential: app.txt is {} bytes in both",
        std::fs::read(ours.join("app.txt")).unwrap().len()
    );
}

#[test]
fn bad_configurations_are_refused_before_anything_starts() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let sink = d.join("sink");
    std::fs::write(d.join("token"), "root").unwrap();
    let good_auth = format!(
        "auto_auth {{\n  method \"token_file\" {{ config {{ token_file_path = \"{}/token\" }} }}\n  sink \"file\" {{ config {{ path = \"{}\" }} }}\n}}\n",
        d.display(),
        sink.display()
    );
    let cases = [
        (
            format!("{good_auth}vault {{ adress = \"http://127.0.0.1:1\" }}"),
            "vault.adress: unknown or unsupported field",
        ),
        (
            format!(
                "{good_auth}template {{ contents = \"{{{{ if }}}}\" destination = \"{}/x\" }}",
                d.display()
            ),
            "template[0]",
        ),
        (
            format!("{good_auth}listener \"tcp\" {{ address = \"127.0.0.1:1\" }}"),
            "listener \"tcp\".tls_disable",
        ),
        (
            format!(
                "{good_auth}certificate \"c\" {{ mount = \"pki\" role = \"r\" common_name = \"x\" key_file {{ path = \"{0}/k\" mode = \"0644\" }} cert_file {{ path = \"{0}/c\" }} }}",
                d.display()
            ),
            "certificate \"c\".key_file.mode",
        ),
        (
            "auto_auth { method \"approle\" { config { secret_id_file_path = \"/x\" } } }"
                .to_string(),
            "auto_auth.method \"approle\".config.role_id_file_path: is required",
        ),
        (
            format!(
                "{good_auth}certificate \"c\" {{ mount = \"pki\" role = \"r\" common_name = \"x\" key_file {{ path = \"/no/such/dir/k\" }} cert_file {{ path = \"{}/c\" }} }}",
                d.display()
            ),
            "the directory of /no/such/dir/k does not exist",
        ),
    ];
    for (i, (text, want)) in cases.iter().enumerate() {
        let cfg = d.join(format!("bad{i}.hcl"));
        std::fs::write(&cfg, text).unwrap();
        let o = run(clean_command(env!("CARGO_BIN_EXE_tresor"))
            .args(["agent", &format!("-config={}", cfg.display())])
            .current_dir(d));
        assert_eq!(o.code, 1, "{text}\n{o}");
        assert!(o.stderr.contains(want), "{text}\nwant {want}\n{o}");
        assert!(
            !sink.exists(),
            "half-started: the sink was written by {text}"
        );
    }
    let o = run(clean_command(env!("CARGO_BIN_EXE_tresor")).args(["agent"]));
    assert_eq!(o.code, 1);
    assert!(o.stderr.contains("-config is required"), "{o}");
    let o = run(clean_command(env!("CARGO_BIN_EXE_tresor")).args(["agent", "-h"]));
    assert_eq!(o.code, 0);
    assert!(o.stdout.contains("-config"), "{o}");
}

#[test]
fn generate_config_writes_an_env_template_per_key_that_the_agent_runs() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let s = Server::start_dev(&d.join("srv"), free_port());
    root(
        &s,
        "POST",
        "secret/data/app",
        json!({"data": {"db-password": "x1", "user": "u"}}),
    );
    root(
        &s,
        "POST",
        "secret/data/app2/inner",
        json!({"data": {"k": "v"}}),
    );
    let out = d.join("gen.hcl");
    let o = run(clean_command(env!("CARGO_BIN_EXE_tresor"))
        .args([
            "agent",
            "generate-config",
            "-type=agent-config",
            "-path=secret/app",
            "-path=secret/app2/*",
            "-exec=env",
        ])
        .arg(&out)
        .env("VAULT_ADDR", &s.addr)
        .env("VAULT_TOKEN", "root")
        .env("HOME", d));
    assert_eq!(o.code, 0, "{o}");
    let text = std::fs::read_to_string(&out).unwrap();
    for want in [
        "env_template \"APP_DB_PASSWORD\"",
        "env_template \"APP_USER\"",
        "env_template \"INNER_K\"",
        "{{ with secret \\\"secret/data/app\\\" }}{{ .Data.data.user }}{{ end }}",
        "command                   = [\"env\"]",
    ] {
        assert!(text.contains(want), "missing {want}:\n{text}");
    }
    // The generated file runs: env prints the secrets into the child's environment.
    std::fs::write(d.join(".vault-token"), "root").unwrap();
    let o = run(clean_command(env!("CARGO_BIN_EXE_tresor"))
        .args(["agent", &format!("-config={}", out.display())])
        .env("HOME", d));
    assert_eq!(o.code, 0, "{o}");
    assert!(
        o.stdout.contains("APP_DB_PASSWORD=x1") && o.stdout.contains("INNER_K=v"),
        "{o}"
    );
    // An existing file is not overwritten.
    let o = run(clean_command(env!("CARGO_BIN_EXE_tresor"))
        .args([
            "agent",
            "generate-config",
            "-type=agent-config",
            "-path=secret/app",
        ])
        .arg(&out)
        .env("VAULT_ADDR", &s.addr)
        .env("VAULT_TOKEN", "root"));
    assert_eq!(o.code, 1);
    assert!(o.stderr.contains("already exists"), "{o}");
}

#[test]
fn csr_mode_keeps_the_key_on_the_host_with_userpass_auto_auth() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let s = Server::start_dev(&d.join("srv"), free_port());
    let audit = d.join("audit.log");
    root(
        &s,
        "POST",
        "sys/audit/file",
        json!({"type": "file", "options": {"file_path": audit.display().to_string()}}),
    );
    root(
        &s,
        "POST",
        "sys/mounts/pki",
        json!({"type": "pki", "config": {"max_lease_ttl": "87600h"}}),
    );
    root(
        &s,
        "POST",
        "pki/root/generate/internal",
        json!({"common_name": "CA", "ttl": "8760h", "key_type": "ec"}),
    );
    root(
        &s,
        "POST",
        "pki/roles/web",
        json!({"allow_any_name": true, "ttl": "1h", "key_type": "any"}),
    );
    root(
        &s,
        "POST",
        "sys/policies/acl/signer",
        json!({"policy": "path \"pki/sign/web\" { capabilities = [\"update\"] }"}),
    );
    root(&s, "POST", "sys/auth/userpass", json!({"type": "userpass"}));
    root(
        &s,
        "POST",
        "auth/userpass/users/agent",
        json!({"password": "agent-pass-123", "token_policies": ["signer"]}),
    );
    let (key, crt) = (d.join("web.key"), d.join("web.crt"));
    let config = format!(
        r#"
vault {{ address = "{addr}" }}
auto_auth {{
  method "userpass" {{ config {{ username = "agent" password = "agent-pass-123" }} }}
}}
certificate "web" {{
  mount = "pki"
  role = "web"
  common_name = "web.example"
  alt_names = "web.example,www.example"
  csr = true
  key_type = "ec"
  key_bits = 384
  key_file  {{ path = "{key}" }}
  cert_file {{ path = "{crt}" }}
}}
"#,
        addr = s.addr,
        key = key.display(),
        crt = crt.display()
    );
    let a = agent(d, "agent", &config);
    wait_for(
        Duration::from_secs(15),
        "the certificate",
        || a.log(),
        || crt.exists().then_some(()),
    );
    let key_pem = std::fs::read_to_string(&key).unwrap();
    assert!(
        key_pem.starts_with("-----BEGIN PRIVATE KEY-----"),
        "a locally made PKCS#8 key"
    );
    let pub_cert = openssl(
        &[
            "x509",
            "-noout",
            "-pubkey",
            "-in",
            &crt.display().to_string(),
        ],
        d,
    );
    let pub_key = openssl(&["pkey", "-pubout", "-in", &key.display().to_string()], d);
    assert_eq!(pub_cert, pub_key);
    let text = openssl(
        &["x509", "-noout", "-text", "-in", &crt.display().to_string()],
        d,
    );
    assert!(
        text.contains("secp384r1") || text.contains("P-384"),
        "{text}"
    );
    assert!(text.contains("DNS:www.example"), "{text}");
    // The server saw a sign request, never an issue, and answered no private key.
    let entries: Vec<Value> = std::fs::read_to_string(&audit)
        .unwrap()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let sign: Vec<&Value> = entries
        .iter()
        .filter(|v| v["type"] == "response" && v["request"]["path"] == "pki/sign/web")
        .collect();
    assert_eq!(sign.len(), 1, "one sign request");
    assert!(
        sign[0]["response"]["data"].get("private_key").is_none(),
        "{}",
        sign[0]
    );
    assert!(!entries.iter().any(|v| {
        v["request"]["path"]
            .as_str()
            .is_some_and(|p| p.starts_with("pki/issue"))
    }));
    assert!(
        !a.log().contains("agent-pass-123"),
        "the password in the log"
    );
}
