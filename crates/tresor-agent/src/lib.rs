//! `tresor agent`: logs in on its own (auto-auth), writes tokens to sinks, proxies and caches
//! requests, renders templates and keeps certificate files fresh. Reads Vault Agent's HCL
//! configuration for the parts it supports.

/// Runs `tresor agent ARGS...`; returns the process exit code.
pub fn run(args: Vec<String>) -> i32 {
    let _ = args;
    eprintln!("Error: tresor agent is not built yet");
    2
}
