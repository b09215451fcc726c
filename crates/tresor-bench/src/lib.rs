//! `tresor bench`: a load generator for any Vault-API server (Tresor, Vault, OpenBao).
//!
//! It runs a weighted mix of workloads with a fixed number of concurrent workers, each on its
//! own kept-alive connection, for a duration or a request count, optionally rate-capped and
//! after a warm-up, and reports per workload the rate of successful requests, latency
//! percentiles from a log-bucketed histogram, and the first distinct errors.
//!
//! Module map: [`options`] (flags, environment) and [`config`] (the HCL file) produce validated
//! [`Options`]; [`runner`] does preflight, setup, the measured phase and cleanup; [`workloads`]
//! is the registry of what can be run; [`client`] is the raw HTTP/1.1 client of the measured
//! loop plus the setup client (`tresor_client`, with retries); [`histogram`] and [`mix`] are
//! the two small data structures the hot loop uses; [`report`] prints.

#![forbid(unsafe_code)]

pub mod client;
pub mod config;
pub mod error;
pub mod histogram;
pub mod mix;
pub mod options;
pub mod report;
pub mod runner;
pub mod workloads;

use std::io::IsTerminal;

pub use error::BenchError;
pub use options::{Env, Options, Parsed, SystemEnv};
pub use report::Report;

/// Runs a benchmark described by `args` (the arguments after `bench`) and returns its report,
/// printing nothing but the progress bar (when `progress` is set). `Ok(None)` means `-help`
/// was asked for.
pub fn bench(args: &[String], env: &dyn Env, progress: bool) -> Result<Option<Report>, BenchError> {
    let opts = match options::parse(args, env)? {
        Parsed::Help => return Ok(None),
        Parsed::Run(o) => o,
    };
    let token = options::resolve_token(&opts, env);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(opts.threads)
        .enable_all()
        .build()
        .map_err(|e| BenchError::Runtime(e.to_string()))?;
    let report = rt.block_on(runner::execute(&opts, token, progress))?;
    // Connection tasks of idle setup connections may still be parked; do not wait for them.
    rt.shutdown_background();
    Ok(Some(report))
}

/// The `tresor bench` command: parses `args` (the arguments after `bench`), runs, prints the
/// report on stdout in the chosen format, and returns the process exit code (0 done, 1 bad
/// options or local problem, 2 server problem).
pub fn run(args: Vec<String>) -> i32 {
    let env = SystemEnv;
    let format = match options::parse(&args, &env) {
        Ok(Parsed::Help) => {
            print!("{}", options::help());
            return 0;
        }
        Ok(Parsed::Run(o)) => o.format,
        Err(e) => {
            eprintln!("Error: {e}");
            return e.exit_code();
        }
    };
    match bench(&args, &env, std::io::stderr().is_terminal()) {
        Ok(Some(report)) => {
            match format {
                options::Format::Json => println!("{}", report.to_json()),
                options::Format::Table => print!("{}", report.to_table()),
            }
            for e in &report.cleanup_errors {
                if format == options::Format::Json {
                    eprintln!("warning: {e}");
                }
            }
            0
        }
        Ok(None) => {
            print!("{}", options::help());
            0
        }
        Err(e) => {
            eprintln!("Error: {e}");
            e.exit_code()
        }
    }
}
