//! The `tresor` binary: `tresor server` runs the server; every other subcommand is the
//! Vault-compatible CLI (`tresor status`, `tresor kv get`, ...), except `tresor bench`, the load
//! generator.

mod config;
mod devtls;
mod engines;
mod logfile;
mod logging;
mod opscli;
mod secure;
mod server;

/// mimalloc rather than the C library's allocator: the server allocates and frees many small
/// buffers per request from many threads; glibc's malloc costs the token- and login-heavy
/// workloads 7–37% of their throughput (docs/bench/ISSUE_11_core_rows.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    // `tresor help server` / `tresor help bench`: the commands this binary runs itself (the
    // CLI answers `help` for the others).
    if args.first().is_some_and(|a| a == "help")
        && args.get(1).is_some_and(|a| {
            matches!(
                a.as_str(),
                "server" | "bench" | "agent" | "monitor" | "debug"
            )
        })
    {
        args = vec![args[1].clone(), "-help".into()];
    }
    match args.first().map(String::as_str) {
        Some("server") => {
            let flags = match server::parse_flags(&args[1..]) {
                Ok(f) => f,
                Err(e) => {
                    eprintln!("Error: {e:#}");
                    std::process::exit(1);
                }
            };
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .expect("tokio runtime");
            if let Err(e) = rt.block_on(server::run(flags)) {
                logging::fatal(&format!("{e:#}"));
                std::process::exit(1);
            }
        }
        Some("bench") => std::process::exit(tresor_bench::run(args[1..].to_vec())),
        Some("monitor") => std::process::exit(opscli::monitor(&args[1..])),
        Some("debug") => std::process::exit(opscli::debug(&args[1..])),
        Some("agent") => std::process::exit(tresor_agent::run(args[1..].to_vec())),
        _ => std::process::exit(tresor_cli::run(args)),
    }
}
