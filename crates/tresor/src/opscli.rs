//! `tresor monitor` and `tresor debug` (issue 20): the operator commands over the diagnostic
//! endpoints. They talk to the server like the CLI (`VAULT_ADDR`, `VAULT_TOKEN` or
//! `~/.vault-token`, `VAULT_CACERT`, `VAULT_SKIP_VERIFY`; `-address` wins) but stream, which
//! the CLI's request/response client does not.

use std::io::{BufRead as _, BufReader, Write as _};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, anyhow, bail};
use serde_json::{Value, json};

const MONITOR_HELP: &str = "Usage: tresor monitor [options]

  Streams the server's log (sys/monitor) until interrupted. Needs a token with sudo on
  sys/monitor.

Options:
  -address=<addr>       The server (VAULT_ADDR; default https://127.0.0.1:8200).
  -log-level=<level>    trace, debug, info (default), warn or error.
  -log-format=<format>  standard (default) or json.";

const DEBUG_HELP: &str = "Usage: tresor debug [options]

  Captures the server's state into a gzipped tarball: the sanitized configuration, host
  information, requests in flight, seal status, metrics (JSON and Prometheus) at every
  interval, and the log for the whole duration. Needs a token with sudo on sys/.

Options:
  -address=<addr>         The server (VAULT_ADDR; default https://127.0.0.1:8200).
  -duration=<duration>    How long to capture (default 2m).
  -interval=<duration>    How often metrics and in-flight requests are captured (default 30s).
  -output=<path>          The tarball (default tresor-debug-<unix time>.tar.gz).";

struct Conn {
    addr: String,
    token: String,
    http: reqwest::blocking::Client,
}

fn flag<'a>(args: &'a [String], name: &str) -> Option<&'a str> {
    args.iter().find_map(|a| {
        let a = a.strip_prefix("--").or_else(|| a.strip_prefix('-'))?;
        a.strip_prefix(name)?.strip_prefix('=')
    })
}

fn check_flags(args: &[String], known: &[&str], help: &str) -> Result<()> {
    for a in args {
        if matches!(a.as_str(), "-h" | "-help" | "--help") {
            println!("{help}");
            std::process::exit(0);
        }
        let name = a
            .strip_prefix("--")
            .or_else(|| a.strip_prefix('-'))
            .and_then(|a| a.split('=').next())
            .ok_or_else(|| anyhow!("unexpected argument {a:?}\n\n{help}"))?;
        if !known.contains(&name) || !a.contains('=') {
            bail!("flag provided but not defined or without a value: {a}\n\n{help}");
        }
    }
    Ok(())
}

fn env(k: &str) -> Option<String> {
    std::env::var(k).ok().filter(|v| !v.is_empty())
}

fn connect(args: &[String]) -> Result<Conn> {
    let addr = flag(args, "address")
        .map(str::to_owned)
        .or_else(|| env("VAULT_ADDR"))
        .unwrap_or_else(|| "https://127.0.0.1:8200".into());
    let token = match env("VAULT_TOKEN") {
        Some(t) => t,
        None => std::env::var_os("HOME")
            .map(|h| PathBuf::from(h).join(".vault-token"))
            .and_then(|p| std::fs::read_to_string(p).ok())
            .map(|t| t.trim().to_owned())
            .unwrap_or_default(),
    };
    let mut b = reqwest::blocking::Client::builder().timeout(None::<Duration>);
    if let Some(ca) = env("VAULT_CACERT") {
        let pem = std::fs::read(&ca).with_context(|| format!("reading VAULT_CACERT {ca}"))?;
        b = b.add_root_certificate(reqwest::Certificate::from_pem(&pem)?);
    }
    if env("VAULT_SKIP_VERIFY").is_some_and(|v| v != "0" && v != "false") {
        b = b.danger_accept_invalid_certs(true);
    }
    Ok(Conn {
        addr: addr.trim_end_matches('/').to_owned(),
        token,
        http: b.build()?,
    })
}

impl Conn {
    fn get(&self, path: &str) -> Result<reqwest::blocking::Response> {
        let r = self
            .http
            .get(format!("{}/v1/{path}", self.addr))
            .header("X-Vault-Token", &self.token)
            .send()
            .with_context(|| format!("GET {path}"))?;
        if !r.status().is_success() {
            let status = r.status();
            let body = r.text().unwrap_or_default();
            let errors = serde_json::from_str::<Value>(&body)
                .ok()
                .and_then(|v| v.get("errors").cloned())
                .map(|e| e.to_string())
                .unwrap_or(body);
            bail!("GET {path}: {status}: {errors}");
        }
        Ok(r)
    }
    fn text(&self, path: &str) -> Result<String> {
        Ok(self.get(path)?.text()?)
    }
}

/// `tresor monitor`.
pub fn monitor(args: &[String]) -> i32 {
    let run = || -> Result<()> {
        check_flags(args, &["address", "log-level", "log-format"], MONITOR_HELP)?;
        let c = connect(args)?;
        let level = flag(args, "log-level").unwrap_or("info");
        let format = flag(args, "log-format").unwrap_or("standard");
        let r = c.get(&format!(
            "sys/monitor?log_level={level}&log_format={format}"
        ))?;
        let mut out = std::io::stdout().lock();
        for line in BufReader::new(r).lines() {
            writeln!(out, "{}", line?)?;
            out.flush()?;
        }
        Ok(())
    };
    match run() {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("Error: {e:#}");
            1
        }
    }
}

fn parse_duration(s: &str, name: &str) -> Result<Duration> {
    tresor_sdk::duration::parse(s).map_err(|e| anyhow!("-{name}: {e}"))
}

/// `tresor debug`.
pub fn debug(args: &[String]) -> i32 {
    match debug_run(args) {
        Ok(path) => {
            println!("Success! Created {}", path.display());
            0
        }
        Err(e) => {
            eprintln!("Error: {e:#}");
            1
        }
    }
}

fn debug_run(args: &[String]) -> Result<PathBuf> {
    check_flags(
        args,
        &["address", "duration", "interval", "output"],
        DEBUG_HELP,
    )?;
    let c = connect(args)?;
    let duration = parse_duration(flag(args, "duration").unwrap_or("2m"), "duration")?;
    let interval = parse_duration(flag(args, "interval").unwrap_or("30s"), "interval")?
        .max(Duration::from_secs(1));
    let started = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let output = flag(args, "output")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(format!("tresor-debug-{started}.tar.gz")));
    let name = output
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("tresor-debug.tar.gz")
        .trim_end_matches(".tar.gz")
        .trim_end_matches(".tgz")
        .to_owned();
    let work = std::env::temp_dir().join(format!("{name}-{}", std::process::id()));
    let dir = work.join(&name);
    std::fs::create_dir_all(&dir)?;
    let result = (|| -> Result<()> {
        let write = |file: &str, body: &str| std::fs::write(dir.join(file), body);
        // Fail early, before waiting, if the token cannot read what the bundle needs.
        write("config.json", &c.text("sys/config/state/sanitized")?)?;
        write("host_info.json", &c.text("sys/host-info")?)?;
        write("seal_status.json", &c.text("sys/seal-status")?)?;
        // The log for the whole duration, read on a thread while the rest is captured.
        let log = c.get("sys/monitor?log_level=debug")?;
        let log_file = dir.join("server.log");
        let deadline = Instant::now() + duration;
        let log_thread = std::thread::spawn(move || {
            let mut f = std::fs::File::create(log_file)?;
            let mut reader = BufReader::new(log);
            let mut line = String::new();
            // The read blocks until a line arrives; the process ends the stream at exit.
            while Instant::now() < deadline {
                line.clear();
                if reader.read_line(&mut line)? == 0 {
                    break;
                }
                f.write_all(line.as_bytes())?;
            }
            std::io::Result::Ok(())
        });
        let mut files = vec!["config.json", "host_info.json", "seal_status.json"]
            .into_iter()
            .map(str::to_owned)
            .collect::<Vec<_>>();
        let mut n = 0;
        loop {
            let metrics = c.text("sys/metrics")?;
            let prom = c.text("sys/metrics?format=prometheus").unwrap_or_default();
            let inflight = c.text("sys/in-flight-req")?;
            for (file, body) in [
                (format!("metrics-{n}.json"), metrics),
                (format!("metrics-{n}.prom"), prom),
                (format!("in_flight_req-{n}.json"), inflight),
            ] {
                write(&file, &body)?;
                files.push(file);
            }
            n += 1;
            if Instant::now() + interval > deadline {
                break;
            }
            std::thread::sleep(interval);
        }
        if let Some(rest) = deadline.checked_duration_since(Instant::now()) {
            std::thread::sleep(rest);
        }
        // A quiet server writes no line to end the read: the log is what arrived until now.
        if log_thread.is_finished() {
            let _ = log_thread.join();
        }
        files.push("server.log".into());
        let index = json!({
            "version": 1,
            "tresor_version": env!("CARGO_PKG_VERSION"),
            "address": c.addr,
            "timestamp": started,
            "duration_seconds": duration.as_secs(),
            "interval_seconds": interval.as_secs(),
            "files": files,
        });
        write("index.json", &serde_json::to_string_pretty(&index)?)?;
        let st = std::process::Command::new("tar")
            .arg("czf")
            .arg(std::path::absolute(&output)?)
            .arg("-C")
            .arg(&work)
            .arg(&name)
            .status()
            .context("running tar")?;
        if !st.success() {
            bail!("tar failed: {st}");
        }
        Ok(())
    })();
    let _ = std::fs::remove_dir_all(&work);
    result.map(|()| output)
}
