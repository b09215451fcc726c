//! Command-line options of `tresor bench`, in Vault's flag style, merged with a config file.
//!
//! Precedence, lowest first: built-in defaults, the environment (`VAULT_ADDR`, `VAULT_CACERT`,
//! `VAULT_SKIP_VERIFY`, `VAULT_TLS_SERVER_NAME`; `VAULT_CAPATH`, `VAULT_CLIENT_CERT` and
//! `VAULT_CLIENT_KEY` have no flag), the `-config` file, then flags. The environment is read
//! through [`Env`] so tests can supply their own. Everything is validated
//! here, before the server is contacted: an unknown workload, a zero concurrency or a bad
//! workload option is an error naming the flag or key.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;

use crate::client::{TlsOptions, Token};
use crate::config::FileConfig;
use crate::error::BenchError;
use crate::workloads::{self, Kind};

/// Where options read environment variables from: `tresor_client`'s environment trait (only
/// `var` needs implementing; the home directory defaults to `$HOME`).
pub use tresor_client::env::Env;
/// The process environment.
pub use tresor_client::env::ProcessEnv as SystemEnv;

/// When the measured phase ends.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Stop {
    /// After this much time.
    Duration(Duration),
    /// After this many requests, all workloads together.
    Requests(u64),
}

/// How the report is printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// An aligned text table.
    Table,
    /// One JSON document.
    Json,
}

/// One workload in the mix.
#[derive(Debug, Clone)]
pub struct MixEntry {
    /// The registered workload type.
    pub kind: &'static Kind,
    /// Its name in the report (the type for flags, the test name for config files).
    pub name: String,
    /// Its share of requests relative to the other entries.
    pub weight: u64,
    /// Its options (a JSON object, or null for defaults).
    pub config: Value,
}

/// Everything a run needs, validated.
#[derive(Debug, Clone)]
pub struct Options {
    /// The server address (`http://127.0.0.1:8200`).
    pub address: String,
    /// How to verify the server's certificate.
    pub tls: TlsOptions,
    /// Concurrent workers, each with its own connection.
    pub concurrency: usize,
    /// When the measured phase ends.
    pub stop: Stop,
    /// A cap on requests per second across all workers, if any.
    pub rate: Option<f64>,
    /// How long to run before measuring.
    pub warmup: Duration,
    /// The workloads and their weights.
    pub mix: Vec<MixEntry>,
    /// Report format.
    pub format: Format,
    /// Runtime threads for the load generator.
    pub threads: usize,
    /// Per-request timeout.
    pub timeout: Duration,
    /// Whether to remove what setup created when the run ends.
    pub cleanup: bool,
    /// A token from the config file (`vault_token`), which wins over `VAULT_TOKEN`.
    pub file_token: Option<Token>,
}

/// What the command line asks for.
#[derive(Debug)]
pub enum Parsed {
    /// `-help`: print [`help`] and exit 0.
    Help,
    /// Run a benchmark.
    Run(Box<Options>),
}

/// The default concurrency, as in the measurements (`wrk -c32`).
pub const DEFAULT_CONCURRENCY: usize = 32;
/// The default measured duration.
pub const DEFAULT_DURATION: Duration = Duration::from_secs(5);
/// Vault's default address.
pub const DEFAULT_ADDRESS: &str = "https://127.0.0.1:8200";

/// Flags as given, before merging.
#[derive(Debug, Default)]
struct Flags {
    address: Option<String>,
    ca_cert: Option<PathBuf>,
    tls_skip_verify: Option<bool>,
    tls_server_name: Option<String>,
    concurrency: Option<usize>,
    duration: Option<Duration>,
    requests: Option<u64>,
    rate: Option<f64>,
    warmup: Option<Duration>,
    workloads: Vec<String>,
    config: Option<PathBuf>,
    non_root: bool,
    key_type: Option<String>,
    key_bits: Option<u32>,
    no_store: bool,
    format: Option<Format>,
    threads: Option<usize>,
    timeout: Option<Duration>,
    cleanup: Option<bool>,
}

fn invalid(flag: &str, value: &str, reason: impl Into<String>) -> BenchError {
    BenchError::InvalidValue {
        flag: flag.to_owned(),
        value: value.to_owned(),
        reason: reason.into(),
    }
}

/// Parses Go's boolean spellings, as Vault's flags accept.
pub fn parse_bool(flag: &str, v: &str) -> Result<bool, BenchError> {
    match v {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(false),
        _ => Err(invalid(flag, v, "expected true or false")),
    }
}

/// Parses a Go-style duration (`5s`, `1m30s`, `250ms`, `1.5s`); a bare number is seconds.
pub fn parse_duration(flag: &str, v: &str) -> Result<Duration, BenchError> {
    let bad = || invalid(flag, v, "expected a duration such as 5s, 500ms or 1m30s");
    let s = v.trim();
    if s.is_empty() {
        return Err(bad());
    }
    if let Ok(secs) = s.parse::<f64>() {
        return Duration::try_from_secs_f64(secs).map_err(|_| bad());
    }
    let mut total = 0f64;
    let mut rest = s;
    while !rest.is_empty() {
        let num_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        if num_end == 0 {
            return Err(bad());
        }
        let n: f64 = rest[..num_end].parse().map_err(|_| bad())?;
        rest = &rest[num_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_end] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(bad()),
        };
        total += n * scale;
        rest = &rest[unit_end..];
    }
    Duration::try_from_secs_f64(total).map_err(|_| bad())
}

fn parse_count(flag: &str, v: &str) -> Result<u64, BenchError> {
    v.trim()
        .parse::<u64>()
        .map_err(|_| invalid(flag, v, "expected a whole number"))
}

fn parse_positive(flag: &str, v: &str) -> Result<usize, BenchError> {
    let n = parse_count(flag, v)?;
    if n == 0 {
        return Err(invalid(flag, v, "must be at least 1"));
    }
    usize::try_from(n).map_err(|_| invalid(flag, v, "too large"))
}

/// Parses `name[:weight],name[:weight],...` into (name, weight) pairs.
pub fn parse_workload_list(v: &str) -> Result<Vec<(String, u64)>, BenchError> {
    let mut out = Vec::new();
    for item in v.split(',') {
        let item = item.trim();
        if item.is_empty() {
            return Err(invalid("-workload", v, "empty workload name"));
        }
        let (name, weight) = match item.split_once(':') {
            Some((n, w)) => {
                let w = w.trim().parse::<u64>().map_err(|_| {
                    invalid(
                        "-workload",
                        v,
                        format!("weight of {n:?} is not a whole number"),
                    )
                })?;
                if w == 0 {
                    return Err(invalid(
                        "-workload",
                        v,
                        format!("weight of {n:?} must be at least 1"),
                    ));
                }
                (n.trim(), w)
            }
            None => (item, 1),
        };
        out.push((name.to_owned(), weight));
    }
    Ok(out)
}

fn resolve_kind(name: &str) -> Result<&'static Kind, BenchError> {
    workloads::lookup(name).ok_or_else(|| BenchError::UnknownWorkload {
        name: name.to_owned(),
        known: workloads::known_names(),
    })
}

fn default_threads() -> usize {
    // The generator usually shares the machine with the server it measures: take at most half
    // of the cores so the server keeps the rest.
    std::thread::available_parallelism()
        .map(|n| (n.get() / 2).max(1))
        .unwrap_or(1)
}

fn parse_flags(args: &[String]) -> Result<Option<Flags>, BenchError> {
    let mut f = Flags::default();
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let Some(stripped) = arg.strip_prefix("--").or_else(|| arg.strip_prefix('-')) else {
            return Err(BenchError::UnexpectedArgument(arg.clone()));
        };
        let (name, inline) = match stripped.split_once('=') {
            Some((n, v)) => (n, Some(v.to_owned())),
            None => (stripped, None),
        };
        let flag = format!("-{name}");
        let mut value = || -> Result<String, BenchError> {
            match &inline {
                Some(v) => Ok(v.clone()),
                None => it
                    .next()
                    .cloned()
                    .ok_or_else(|| BenchError::MissingValue(name.to_owned())),
            }
        };
        let boolean = |inline: &Option<String>| match inline {
            Some(v) => parse_bool(&flag, v),
            None => Ok(true),
        };
        match name {
            "h" | "help" => return Ok(None),
            "address" => f.address = Some(value()?),
            "ca-cert" => f.ca_cert = Some(PathBuf::from(value()?)),
            "tls-skip-verify" => f.tls_skip_verify = Some(boolean(&inline)?),
            "tls-server-name" => f.tls_server_name = Some(value()?),
            "concurrency" | "workers" => f.concurrency = Some(parse_positive(&flag, &value()?)?),
            "duration" => {
                let v = value()?;
                let d = parse_duration(&flag, &v)?;
                if d.is_zero() {
                    return Err(invalid(&flag, &v, "must be longer than zero"));
                }
                f.duration = Some(d);
            }
            "requests" => {
                let v = value()?;
                let n = parse_count(&flag, &v)?;
                if n == 0 {
                    return Err(invalid(&flag, &v, "must be at least 1"));
                }
                f.requests = Some(n);
            }
            "rate" | "rps" => {
                let v = value()?;
                let r: f64 = v
                    .trim()
                    .parse()
                    .map_err(|_| invalid(&flag, &v, "expected requests per second"))?;
                if !r.is_finite() || r < 0.0 {
                    return Err(invalid(&flag, &v, "must be zero (no cap) or more"));
                }
                f.rate = Some(r);
            }
            "warmup" => f.warmup = Some(parse_duration(&flag, &value()?)?),
            "workload" | "workloads" => f.workloads.push(value()?),
            "config" => f.config = Some(PathBuf::from(value()?)),
            "non-root" => f.non_root = boolean(&inline)?,
            "key-type" => f.key_type = Some(value()?),
            "key-bits" => {
                let v = value()?;
                let n = parse_count(&flag, &v)?;
                f.key_bits = Some(u32::try_from(n).map_err(|_| invalid(&flag, &v, "too large"))?);
            }
            "no-store" => f.no_store = boolean(&inline)?,
            "format" => {
                let v = value()?;
                f.format = Some(match v.as_str() {
                    "table" => Format::Table,
                    "json" => Format::Json,
                    _ => return Err(invalid(&flag, &v, "expected table or json")),
                });
            }
            "threads" => f.threads = Some(parse_positive(&flag, &value()?)?),
            "timeout" => {
                let v = value()?;
                let d = parse_duration(&flag, &v)?;
                if d.is_zero() {
                    return Err(invalid(&flag, &v, "must be longer than zero"));
                }
                f.timeout = Some(d);
            }
            "cleanup" => f.cleanup = Some(boolean(&inline)?),
            other => return Err(BenchError::UnknownFlag(other.to_owned())),
        }
    }
    Ok(Some(f))
}

/// Sets `key = value` in the config of every mix entry of the given workload types, for a flag
/// that stands for a workload option (`-non-root`, `-key-type`, ...); flags win over the config
/// file. A flag that reaches no workload in the mix is an error rather than silently ignored.
fn set_option(
    mix: &mut [MixEntry],
    flag: &str,
    kinds: &[&str],
    key: &str,
    value: Value,
) -> Result<(), BenchError> {
    let mut applied = false;
    for m in mix.iter_mut().filter(|m| kinds.contains(&m.kind.name)) {
        let obj = match &mut m.config {
            Value::Object(o) => o,
            other => {
                *other = Value::Object(Default::default());
                other.as_object_mut().expect("just set to an object")
            }
        };
        obj.insert(key.to_owned(), value.clone());
        applied = true;
    }
    if applied {
        Ok(())
    } else {
        Err(BenchError::Conflict(format!(
            "{flag} applies to {}, which is not in the mix",
            kinds.join(" and ")
        )))
    }
}

/// Parses `tresor bench`'s arguments (those after `bench`) against `env`.
pub fn parse(args: &[String], env: &dyn Env) -> Result<Parsed, BenchError> {
    let Some(flags) = parse_flags(args)? else {
        return Ok(Parsed::Help);
    };
    let file = match &flags.config {
        Some(path) => crate::config::load(path)?,
        None => FileConfig::default(),
    };
    if flags.duration.is_some() && flags.requests.is_some() {
        return Err(BenchError::Conflict(
            "use -duration or -requests, not both".into(),
        ));
    }

    let env_var = |k: &str| env.var(k).filter(|v| !v.is_empty());
    let address = flags
        .address
        .clone()
        .or(file.address.clone())
        .or_else(|| env_var("VAULT_ADDR"))
        .unwrap_or_else(|| DEFAULT_ADDRESS.to_owned());
    let tls_skip_verify = match flags.tls_skip_verify.or(file.tls_skip_verify) {
        Some(b) => b,
        None => match env_var("VAULT_SKIP_VERIFY") {
            Some(v) => parse_bool("VAULT_SKIP_VERIFY", &v)?,
            None => false,
        },
    };
    let tls = TlsOptions {
        ca_cert: flags
            .ca_cert
            .clone()
            .or(file.ca_cert.clone())
            .or_else(|| env_var("VAULT_CACERT").map(PathBuf::from)),
        ca_path: env_var("VAULT_CAPATH").map(PathBuf::from),
        client_cert: env_var("VAULT_CLIENT_CERT").map(PathBuf::from),
        client_key: env_var("VAULT_CLIENT_KEY").map(PathBuf::from),
        skip_verify: tls_skip_verify,
        server_name: flags
            .tls_server_name
            .clone()
            .or_else(|| env_var("VAULT_TLS_SERVER_NAME")),
        ..TlsOptions::default()
    };

    let stop = match (flags.duration, flags.requests) {
        (Some(d), _) => Stop::Duration(d),
        (None, Some(n)) => Stop::Requests(n),
        (None, None) => match (file.duration, file.requests) {
            (Some(_), Some(_)) => {
                return Err(BenchError::Config {
                    path: flags.config.clone().unwrap_or_default(),
                    message: "set duration or requests, not both".into(),
                });
            }
            (Some(d), None) => Stop::Duration(d),
            (None, Some(n)) => Stop::Requests(n),
            (None, None) => Stop::Duration(DEFAULT_DURATION),
        },
    };

    // The mix: flags replace the config file's tests.
    let mut mix = Vec::new();
    if flags.workloads.is_empty() {
        for t in &file.tests {
            mix.push(MixEntry {
                kind: resolve_kind(&t.kind)?,
                name: t.name.clone(),
                weight: t.weight,
                config: t.config.clone(),
            });
        }
    } else {
        for list in &flags.workloads {
            for (name, weight) in parse_workload_list(list)? {
                let kind = resolve_kind(&name)?;
                if mix.iter().any(|m: &MixEntry| m.name == kind.name) {
                    return Err(invalid(
                        "-workload",
                        list,
                        format!("{} is listed twice", kind.name),
                    ));
                }
                mix.push(MixEntry {
                    kind,
                    name: kind.name.to_owned(),
                    weight,
                    config: Value::Null,
                });
            }
        }
    }
    if mix.is_empty() {
        return Err(BenchError::NoWorkload {
            known: workloads::known_names(),
        });
    }
    if flags.non_root {
        set_option(
            &mut mix,
            "-non-root",
            &["kv-read"],
            "non_root",
            Value::Bool(true),
        )?;
    }
    if let Some(t) = &flags.key_type {
        set_option(
            &mut mix,
            "-key-type",
            &["pki-issue"],
            "key_type",
            Value::from(t.clone()),
        )?;
    }
    if let Some(b) = flags.key_bits {
        set_option(
            &mut mix,
            "-key-bits",
            &["pki-issue"],
            "key_bits",
            Value::from(b),
        )?;
    }
    if flags.no_store {
        set_option(
            &mut mix,
            "-no-store",
            &["pki-issue", "pki-sign"],
            "no_store",
            Value::Bool(true),
        )?;
    }
    for m in &mix {
        (m.kind.check_config)(&m.config).map_err(|message| BenchError::WorkloadConfig {
            workload: m.name.clone(),
            message,
        })?;
    }

    let rate = flags.rate.or(file.rate).filter(|r| *r > 0.0);
    Ok(Parsed::Run(Box::new(Options {
        address,
        tls,
        concurrency: flags
            .concurrency
            .or(file.concurrency)
            .unwrap_or(DEFAULT_CONCURRENCY),
        stop,
        rate,
        warmup: flags.warmup.or(file.warmup).unwrap_or(Duration::ZERO),
        mix,
        format: flags.format.unwrap_or(Format::Table),
        threads: flags
            .threads
            .or(file.threads)
            .unwrap_or_else(default_threads),
        timeout: flags
            .timeout
            .or(file.timeout)
            .unwrap_or(Duration::from_secs(30)),
        cleanup: flags.cleanup.or(file.cleanup).unwrap_or(true),
        file_token: file.token.clone(),
    })))
}

/// The caller's token: the config file's `vault_token`, else `VAULT_TOKEN`, else the token
/// helper file `~/.vault-token` that `login` and `server -dev` write.
pub fn resolve_token(opts: &Options, env: &dyn Env) -> Option<Token> {
    if let Some(t) = &opts.file_token {
        return Some(t.clone());
    }
    if let Some(t) = env.var("VAULT_TOKEN").filter(|t| !t.trim().is_empty()) {
        return Some(Token::new(t.trim().to_owned()));
    }
    tresor_client::env::read_stored_token(env).map(|t| Token::new(t.to_string()))
}

/// `tresor bench -help`.
pub fn help() -> String {
    let mut s = String::from(
        "Usage: tresor bench [options]

  Runs workloads against a Vault-API server (Tresor, Vault, OpenBao) and reports
  requests per second and latency percentiles per workload. Each workload sets up
  what it needs (a KV mount, seed data, tokens) under a unique name and removes it
  when the run ends.

      $ tresor bench -address=http://127.0.0.1:8200 -workload=kv-read:80,kv-write:20

Options:
  -address=<url>          Server address (VAULT_ADDR; default https://127.0.0.1:8200).
  -ca-cert=<file>         PEM CA bundle to verify the server (VAULT_CACERT).
  -tls-skip-verify        Do not verify the server's certificate (VAULT_SKIP_VERIFY).
  -tls-server-name=<name> Name to verify the certificate against (VAULT_TLS_SERVER_NAME).
  -workload=<list>        Workloads and weights: name[:weight],... (may be repeated).
  -config=<file.hcl>      A vault-benchmark style file: top-level options and
                          test \"<workload>\" \"<name>\" { weight = N  config { ... } }.
  -concurrency=<n>        Concurrent workers, one connection each (default 32).
  -duration=<d>           Measured time (default 5s); or
  -requests=<n>           stop after n requests in total.
  -rate=<r>               Cap on requests per second across workers (default: none).
  -warmup=<d>             Run this long before measuring (default 0).
  -non-root               kv-read with a token holding only a read policy.
  -key-type=<ec|rsa>      pki-issue: the key type the server generates (default ec).
  -key-bits=<n>           pki-issue: key size (ec 256, 384, 521; rsa 2048, 3072, 4096).
  -no-store               pki-issue, pki-sign: the role does not store certificates.
  -threads=<n>            Load generator threads (default: half the cores, at least 1).
  -timeout=<d>            Per-request timeout (default 30s).
  -cleanup=false          Leave what setup created in place.
  -format=<table|json>    Report format (default table).

  The token comes from VAULT_TOKEN, else ~/.vault-token. VAULT_CAPATH,
  VAULT_CLIENT_CERT and VAULT_CLIENT_KEY are honoured too. Setup and cleanup
  requests are retried as Vault's client retries them; measured requests never
  are. \"ok/s\" counts successful requests per second; latencies are of
  successful requests.

Workloads:
",
    );
    for k in workloads::REGISTRY {
        s.push_str(&format!("  {:<14} {}\n", k.name, k.summary));
    }
    s
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    #[derive(Default)]
    struct MapEnv(HashMap<String, String>);

    impl Env for MapEnv {
        fn var(&self, name: &str) -> Option<String> {
            self.0.get(name).cloned()
        }
    }

    fn env(pairs: &[(&str, &str)]) -> MapEnv {
        MapEnv(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    fn args(s: &[&str]) -> Vec<String> {
        s.iter().map(|a| a.to_string()).collect()
    }

    fn run_opts(s: &[&str], e: &MapEnv) -> Options {
        match parse(&args(s), e).unwrap() {
            Parsed::Run(o) => *o,
            Parsed::Help => panic!("unexpected help"),
        }
    }

    fn err(s: &[&str]) -> BenchError {
        parse(&args(s), &MapEnv::default()).unwrap_err()
    }

    #[test]
    fn defaults() {
        let o = run_opts(&["-workload=sys-health"], &MapEnv::default());
        assert_eq!(o.address, DEFAULT_ADDRESS);
        assert_eq!(o.concurrency, 32);
        assert_eq!(o.stop, Stop::Duration(Duration::from_secs(5)));
        assert_eq!(o.rate, None);
        assert_eq!(o.warmup, Duration::ZERO);
        assert_eq!(o.format, Format::Table);
        assert!(o.cleanup);
        assert!(o.threads >= 1);
        assert_eq!(o.mix.len(), 1);
        assert_eq!((o.mix[0].name.as_str(), o.mix[0].weight), ("sys-health", 1));
    }

    #[test]
    fn both_flag_styles_and_separate_values() {
        let o = run_opts(
            &[
                "--address=http://127.0.0.1:9",
                "-concurrency",
                "4",
                "--duration",
                "1m30s",
                "-rate=250.5",
                "-warmup=500ms",
                "-format=json",
                "-workload",
                "kv-read:3,kv-write",
                "-threads=2",
                "-timeout=2s",
                "-cleanup=false",
                "-tls-skip-verify",
            ],
            &MapEnv::default(),
        );
        assert_eq!(o.address, "http://127.0.0.1:9");
        assert_eq!(o.concurrency, 4);
        assert_eq!(o.stop, Stop::Duration(Duration::from_secs(90)));
        assert_eq!(o.rate, Some(250.5));
        assert_eq!(o.warmup, Duration::from_millis(500));
        assert_eq!(o.format, Format::Json);
        assert_eq!(o.threads, 2);
        assert_eq!(o.timeout, Duration::from_secs(2));
        assert!(!o.cleanup);
        assert!(o.tls.skip_verify);
        let mix: Vec<(&str, u64)> = o.mix.iter().map(|m| (m.name.as_str(), m.weight)).collect();
        assert_eq!(mix, [("kv-read", 3), ("kv-write", 1)]);
    }

    #[test]
    fn environment_then_flags() {
        let e = env(&[
            ("VAULT_ADDR", "http://10.0.0.1:8200"),
            ("VAULT_CACERT", "/tmp/ca.pem"),
            ("VAULT_SKIP_VERIFY", "true"),
        ]);
        let o = run_opts(&["-workload=sys-health"], &e);
        assert_eq!(o.address, "http://10.0.0.1:8200");
        assert_eq!(
            o.tls.ca_cert.as_deref(),
            Some(std::path::Path::new("/tmp/ca.pem"))
        );
        assert!(o.tls.skip_verify);
        let o = run_opts(
            &[
                "-workload=sys-health",
                "-address=http://h:1",
                "-tls-skip-verify=false",
            ],
            &e,
        );
        assert_eq!(o.address, "http://h:1");
        assert!(!o.tls.skip_verify);
        let e = env(&[("VAULT_SKIP_VERIFY", "maybe")]);
        let msg = parse(&args(&["-workload=sys-health"]), &e)
            .unwrap_err()
            .to_string();
        assert!(msg.contains("VAULT_SKIP_VERIFY"), "{msg}");
    }

    #[test]
    fn requests_instead_of_duration() {
        let o = run_opts(
            &["-workload=sys-health", "-requests=1000"],
            &MapEnv::default(),
        );
        assert_eq!(o.stop, Stop::Requests(1000));
        let e = err(&["-workload=sys-health", "-requests=10", "-duration=1s"]);
        assert!(matches!(e, BenchError::Conflict(_)), "{e}");
    }

    #[test]
    fn rate_zero_means_no_cap() {
        let o = run_opts(&["-workload=sys-health", "-rate=0"], &MapEnv::default());
        assert_eq!(o.rate, None);
    }

    #[test]
    fn bad_options_are_clear_errors() {
        let cases: &[(&[&str], &str)] = &[
            (
                &["-workload=sys-health", "-concurrency=0"],
                "invalid value \"0\" for -concurrency: must be at least 1",
            ),
            (
                &["-workload=sys-health", "-concurrency=many"],
                "-concurrency: expected a whole number",
            ),
            (
                &["-workload=sys-health", "-duration=0s"],
                "-duration: must be longer than zero",
            ),
            (
                &["-workload=sys-health", "-duration=5 parsecs"],
                "-duration: expected a duration",
            ),
            (
                &["-workload=sys-health", "-requests=0"],
                "-requests: must be at least 1",
            ),
            (&["-workload=sys-health", "-rate=-1"], "-rate: must be zero"),
            (
                &["-workload=sys-health", "-format=xml"],
                "expected table or json",
            ),
            (
                &["-workload=sys-health", "-threads=0"],
                "-threads: must be at least 1",
            ),
            (
                &["-workload=sys-health", "-bogus"],
                "flag provided but not defined: -bogus",
            ),
            (
                &["-workload=sys-health", "-concurrency"],
                "flag -concurrency needs a value",
            ),
            (
                &["-workload=sys-health", "extra"],
                "unexpected argument \"extra\"",
            ),
            (
                &["-workload=nope"],
                "unknown workload \"nope\"; known workloads: sys-health, kv-read",
            ),
            (
                &["-workload=no-such-workload"],
                "unknown workload \"no-such-workload\"",
            ),
            (
                &["-workload=kv-read:0"],
                "weight of \"kv-read\" must be at least 1",
            ),
            (
                &["-workload=kv-read:x"],
                "weight of \"kv-read\" is not a whole number",
            ),
            (&["-workload=kv-read,,kv-write"], "empty workload name"),
            (&["-workload=kv-read,kvv2_read"], "kv-read is listed twice"),
            (
                &["-workload=sys-health", "-non-root"],
                "-non-root applies to kv-read",
            ),
            (
                &["-workload=pki-sign", "-key-type=rsa"],
                "-key-type applies to pki-issue, which is not in the mix",
            ),
            (
                &["-workload=kv-read", "-no-store"],
                "-no-store applies to pki-issue and pki-sign",
            ),
            (
                &["-workload=pki-issue", "-key-type=dsa"],
                "workload \"pki-issue\": key_type \"dsa\" is not supported",
            ),
            (
                &["-workload=pki-issue", "-key-type=rsa", "-key-bits=256"],
                "key_bits 256 is not an rsa size",
            ),
            (
                &["-workload=pki-issue", "-key-bits=lots"],
                "-key-bits: expected a whole number",
            ),
            (&[], "no workload given"),
            (
                &["-config=/nonexistent/bench.hcl"],
                "config file /nonexistent/bench.hcl",
            ),
        ];
        for (a, expected) in cases {
            let e = err(a);
            assert!(
                e.to_string().contains(expected),
                "{a:?}: got {e}, expected {expected}"
            );
            assert_eq!(e.exit_code(), 1, "{a:?}");
        }
    }

    #[test]
    fn help_lists_the_workloads() {
        assert!(matches!(
            parse(&args(&["-help"]), &MapEnv::default()).unwrap(),
            Parsed::Help
        ));
        assert!(matches!(
            parse(&args(&["--h"]), &MapEnv::default()).unwrap(),
            Parsed::Help
        ));
        let h = help();
        for k in workloads::REGISTRY {
            assert!(h.contains(k.name));
        }
    }

    #[test]
    fn non_root_reaches_kv_read_only() {
        let o = run_opts(
            &["-workload=kv-read,kv-write", "-non-root"],
            &MapEnv::default(),
        );
        assert_eq!(o.mix[0].config["non_root"], Value::Bool(true));
        assert_eq!(o.mix[1].config, Value::Null);
    }

    #[test]
    fn pki_flags_reach_the_pki_workloads() {
        let o = run_opts(
            &[
                "-workload=pki-issue,pki-sign,kv-read",
                "-key-type=rsa",
                "-key-bits=2048",
                "-no-store",
            ],
            &MapEnv::default(),
        );
        assert_eq!(
            o.mix[0].config,
            serde_json::json!({"key_type": "rsa", "key_bits": 2048, "no_store": true})
        );
        assert_eq!(o.mix[1].config, serde_json::json!({"no_store": true}));
        assert_eq!(o.mix[2].config, Value::Null);
        let o = run_opts(&["-workload=pki-issue"], &MapEnv::default());
        assert_eq!(o.mix[0].config, Value::Null);
    }

    #[test]
    fn durations() {
        for (s, ms) in [
            ("5s", 5000),
            ("1.5s", 1500),
            ("250ms", 250),
            ("1m30s", 90_000),
            ("2h", 7_200_000),
            ("3", 3000),
            ("0.5", 500),
        ] {
            assert_eq!(
                parse_duration("-d", s).unwrap(),
                Duration::from_millis(ms),
                "{s}"
            );
        }
        for s in ["", "s", "5x", "-1s", "1..5s", "ms5"] {
            assert!(parse_duration("-d", s).is_err(), "{s}");
        }
    }

    #[test]
    fn token_from_env_then_helper_file() {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().to_str().unwrap();
        let o = run_opts(&["-workload=sys-health"], &MapEnv::default());
        assert!(resolve_token(&o, &env(&[("HOME", home)])).is_none());
        std::fs::write(dir.path().join(".vault-token"), "from-file\n").unwrap();
        let t = resolve_token(&o, &env(&[("HOME", home)])).unwrap();
        assert_eq!(t.expose(), "from-file");
        let t = resolve_token(&o, &env(&[("HOME", home), ("VAULT_TOKEN", "from-env")])).unwrap();
        assert_eq!(t.expose(), "from-env");
    }
}
