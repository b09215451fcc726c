//! `tresor agent`: logs in on its own (auto-auth), writes tokens to sinks, proxies and caches
//! requests, renders templates and keeps certificate files fresh. Reads Vault Agent's HCL
//! configuration for the parts it supports.
//!
//! Module map (each uses only those before it): [`backoff`], [`files`], [`config`],
//! `client`, [`auth`], `x509`, [`cert`], [`template`], `render`, `exec`, [`proxy`],
//! `generate`. This file parses the command line, loads and checks everything that can fail
//! before anything starts (config, TLS files, templates, listeners), then runs the parts as
//! tasks until a signal, a fatal error or the `exec` child's exit.

#![forbid(unsafe_code)]

pub mod auth;
pub mod backoff;
pub mod cert;
mod client;
pub mod config;
mod exec;
pub mod files;
mod generate;
pub mod proxy;
mod render;
pub mod template;
mod x509;

use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::watch;
use tresor_cli::flags::{self, FlagError, Kind, Spec, flag};

const FLAGS: &[Spec] = &[
    flag(
        "config",
        Kind::Str,
        "Path to the agent's HCL configuration file (required).",
    ),
    flag(
        "exit-after-auth",
        Kind::Bool,
        "Exit with code 0 after the first successful login and sink write.",
    ),
    flag(
        "log-level",
        Kind::Str,
        "trace, debug, info (default), warn or error.",
    ),
    flag("log-format", Kind::Str, "standard (default) or json."),
];

const USAGE: &str = "Usage: tresor agent [options]\n       tresor agent generate-config [options] PATH\n\n  Runs an agent that logs in on its own (auto_auth), writes the token to sinks, renders\n  templates, keeps certificate files fresh and proxies and caches requests. It reads Vault\n  Agent's configuration format (see docs/agent.md).\n\nOptions:\n\n";

fn init_logging(level: &str, json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_new(format!("tresor_agent={level},warn"))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    let _ = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}

/// Runs `tresor agent ARGS...`; returns the process exit code.
pub fn run(args: Vec<String>) -> i32 {
    if args.first().is_some_and(|a| a == "generate-config") {
        return generate::run(&args[1..]);
    }
    let parsed = match flags::parse(&[FLAGS], &args) {
        Ok(p) => p,
        Err(FlagError::Help) => {
            println!("{USAGE}{}", flags::help(&[FLAGS]));
            return 0;
        }
        Err(e) => {
            eprintln!("Error: {e}");
            return 1;
        }
    };
    if let Some(extra) = parsed.args.first() {
        eprintln!("Error: unexpected argument {extra:?} (tresor agent takes flags only)");
        return 1;
    }
    let Some(path) = parsed.str("config").map(PathBuf::from) else {
        eprintln!("Error: -config is required (tresor agent -config=agent.hcl)");
        return 1;
    };
    let level = parsed
        .str("log-level")
        .unwrap_or("info")
        .to_ascii_lowercase();
    if !matches!(
        level.as_str(),
        "trace" | "debug" | "info" | "warn" | "error"
    ) {
        eprintln!("Error: invalid -log-level {level:?}");
        return 1;
    }
    init_logging(&level, parsed.str("log-format") == Some("json"));
    let mut cfg = match config::load(&path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("Error loading configuration from {}: {e}", path.display());
            return 1;
        }
    };
    if parsed.bool("exit-after-auth") {
        cfg.exit_after_auth = true;
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("Error: cannot start the runtime: {e}");
            return 1;
        }
    };
    match rt.block_on(agent(cfg)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("Error: {e}");
            1
        }
    }
}

/// Waits for SIGINT or SIGTERM.
async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = async {
            match term.as_mut() {
                Some(t) => { t.recv().await; }
                None => std::future::pending::<()>().await,
            }
        } => {}
    }
}

/// Everything after the configuration: prepare all parts (any failure stops here, before
/// anything runs), then run them.
async fn agent(cfg: config::Config) -> Result<i32, String> {
    let client = client::build(&cfg.vault)?;
    // Templates are parsed now, so a syntax error stops the agent before it starts.
    let templates = render::prepare(&cfg)?;
    let certs = cert::prepare(&cfg.certificates)?;
    let listeners = proxy::bind(&cfg.listeners).await?;
    let authenticator = cfg
        .auto_auth
        .clone()
        .map(|a| auth::Authenticator::new(client.clone(), a, &cfg.vault))
        .transpose()?;
    if let Some(pid) = &cfg.pid_file {
        std::fs::write(pid, std::process::id().to_string())
            .map_err(|e| format!("pid_file: cannot write {}: {e}", pid.display()))?;
    }

    let (tx, rx) = watch::channel::<Option<auth::Token>>(None);
    let mut tasks = tokio::task::JoinSet::new();
    if let Some(a) = authenticator {
        let exit_after_auth = cfg.exit_after_auth;
        tasks.spawn(async move { a.run(tx, exit_after_auth).await.map(|()| Some(0)) });
        if exit_after_auth {
            return match tasks.join_next().await {
                Some(Ok(Ok(_))) => Ok(0),
                Some(Ok(Err(e))) => Err(e),
                _ => Err("auto-auth stopped".to_string()),
            };
        }
    } else {
        drop(tx);
    }
    let rotations = Arc::new(cert::Rotations::default());
    for c in certs {
        let (client, rx, rotations) = (client.clone(), rx.clone(), rotations.clone());
        tasks.spawn(async move {
            cert::run(client, c, rx, rotations).await;
            Ok(None)
        });
    }
    let (env_tx, env_rx) = watch::channel(None);
    if templates.has_work() {
        let (client, rx) = (client.clone(), rx.clone());
        let settings = cfg.template_config.clone();
        tasks.spawn(async move {
            render::run(client, templates, settings, rx, env_tx)
                .await
                .map(|()| None)
        });
    }
    if let Some(e) = cfg.exec.clone() {
        tasks.spawn(async move { exec::run(e, env_rx).await.map(Some) });
    }
    if !listeners.is_empty() {
        let state = proxy::State::new(&cfg, client.clone(), rx.clone(), rotations.clone())?;
        for l in listeners {
            let state = state.clone();
            tasks.spawn(async move { proxy::serve(l, state).await.map(|()| None) });
        }
    }
    drop(rx);
    let code = tokio::select! {
        _ = shutdown_signal() => 0,
        r = async {
            loop {
                match tasks.join_next().await {
                    None => return Ok(0),
                    Some(Ok(Ok(Some(code)))) => return Ok(code),
                    Some(Ok(Ok(None))) => continue,
                    Some(Ok(Err(e))) => return Err(e),
                    Some(Err(e)) => return Err(format!("a task failed: {e}")),
                }
            }
        } => r?,
    };
    tasks.shutdown().await;
    if let Some(pid) = &cfg.pid_file {
        let _ = std::fs::remove_file(pid);
    }
    Ok(code)
}
