//! The client side of the `tresor` command: a Vault-compatible CLI that talks to any server
//! speaking Vault's HTTP API (Tresor, Vault, OpenBao).
//!
//! The `tresor` binary calls [`run`] with its arguments (program name removed) for every
//! subcommand except `server` and `bench`. Everything is also reachable through
//! [`run_with`], which takes the environment and the three standard streams explicitly, so
//! tests can drive commands in-process and read exactly what a user would see.
//!
//! Exit codes follow Vault's convention: 0 success, 1 local error (bad flags, wrong number
//! of arguments, unreadable files), 2 remote error (API failure, unreachable server), with
//! the documented exceptions (`status` returns 2 when sealed; `operator init -status`
//! returns 2 when uninitialised; unknown commands return 127).
//!
//! Module map: [`flags`] (Vault-style flag parsing), [`kvargs`] (`k=v`, `k=@file`, `k=-`),
//! [`format`] (tables, JSON, YAML), `tty` (secrets typed with echo off), [`client`] (the HTTP flags and their mapping onto
//! `tresor_client`), and `commands` (one module per command group). HTTP, TLS, retries, the
//! response envelope ([`secret`]), Go durations ([`duration`]) and the environment with the
//! token helper ([`env`]) come from `tresor_client`, re-exported under their old names.

#![forbid(unsafe_code)]

pub mod client;
mod commands;
pub mod flags;
pub mod format;
pub mod kvargs;
mod tty;

pub use tresor_client::{duration, env, secret};

#[cfg(test)]
mod cli_tests;
#[cfg(test)]
mod login_tests;
#[cfg(test)]
mod testserver;

use std::io::{BufRead, IsTerminal, Write};

use commands::{Cli, CliError, CmdResult};
use env::Env;

/// The version line `tresor version` prints.
pub const VERSION_LINE: &str = concat!("Tresor v", env!("CARGO_PKG_VERSION"));

/// Where a command reads and writes.
pub struct Context<'a> {
    /// Environment variables and home directory.
    pub env: &'a dyn Env,
    /// Standard input (unseal keys, `k=-` values, JSON on `-`).
    pub stdin: &'a mut dyn BufRead,
    /// Standard output.
    pub stdout: &'a mut dyn Write,
    /// Standard error.
    pub stderr: &'a mut dyn Write,
    /// Whether stdout is a terminal: `-field` values get a trailing newline only then.
    pub stdout_is_terminal: bool,
    /// Whether stdin is a terminal: secrets prompted for (passwords, tokens, unseal keys) are
    /// then read from the terminal with echo off; otherwise one line is read from stdin.
    pub stdin_is_terminal: bool,
}

/// Runs one CLI invocation against the real process environment and standard streams;
/// returns the exit code.
pub fn run(args: Vec<String>) -> i32 {
    let env = env::ProcessEnv;
    let stdin = std::io::stdin();
    let stdin_tty = stdin.is_terminal();
    let mut stdin = stdin.lock();
    let stdout = std::io::stdout();
    let tty = stdout.is_terminal();
    let mut stdout = stdout.lock();
    let mut stderr = std::io::stderr();
    let mut ctx = Context {
        env: &env,
        stdin: &mut stdin,
        stdout: &mut stdout,
        stderr: &mut stderr,
        stdout_is_terminal: tty,
        stdin_is_terminal: stdin_tty,
    };
    let code = run_with(&args, &mut ctx);
    let _ = ctx.stdout.flush();
    code
}

type Handler = fn(&mut Cli<'_, '_>, &[String]) -> CmdResult;

struct Entry {
    path: &'static [&'static str],
    handler: Handler,
    synopsis: &'static str,
}

const fn entry(path: &'static [&'static str], handler: Handler, synopsis: &'static str) -> Entry {
    Entry {
        path,
        handler,
        synopsis,
    }
}

use commands::{kv, logical, mounts, operator, pki, policy, snapshot, ssh, status, token};

const COMMANDS: &[Entry] = &[
    entry(&["status"], status::status, "Print seal and HA status"),
    entry(&["version"], version, "Print the version"),
    entry(&["read"], logical::read, "Read data and retrieve secrets"),
    entry(
        &["write"],
        logical::write,
        "Write data, configuration, and secrets",
    ),
    entry(&["list"], logical::list, "List data or secrets"),
    entry(
        &["delete"],
        logical::delete,
        "Delete secrets and configuration",
    ),
    entry(
        &["patch"],
        logical::patch,
        "Patch data, configuration, and secrets",
    ),
    entry(
        &["path-help"],
        logical::path_help,
        "Retrieve API help for paths",
    ),
    entry(&["unwrap"], token::unwrap, "Unwrap a wrapped secret"),
    entry(&["login"], token::login, "Authenticate locally"),
    entry(
        &["operator", "init"],
        operator::init,
        "Initializes a server",
    ),
    entry(
        &["operator", "unseal"],
        operator::unseal,
        "Unseals the server",
    ),
    entry(&["operator", "seal"], operator::seal, "Seals the server"),
    entry(
        &["operator", "step-down"],
        commands::ha::step_down,
        "Forces the active node to give up active duty",
    ),
    entry(
        &["operator", "members"],
        commands::ha::members,
        "Lists the active node and the standbys of the cluster",
    ),
    entry(
        &["operator", "usage"],
        commands::ha::usage,
        "Lists the clients that obtained a token in a period",
    ),
    entry(
        &["operator", "rekey"],
        operator::rekey,
        "Generates new unseal keys",
    ),
    entry(
        &["operator", "generate-root"],
        operator::generate_root,
        "Generates a new root token",
    ),
    entry(
        &["operator", "rotate"],
        operator::rotate,
        "Rotates the underlying encryption key",
    ),
    entry(
        &["operator", "key-status"],
        operator::key_status,
        "Provides information about the active encryption key",
    ),
    entry(
        &["operator", "snapshot", "save"],
        snapshot::save,
        "Saves a snapshot of the whole store to a file",
    ),
    entry(
        &["operator", "snapshot", "inspect"],
        snapshot::inspect,
        "Checks a snapshot file offline and prints its manifest",
    ),
    entry(
        &["operator", "snapshot", "verify"],
        snapshot::verify,
        "Decrypts every entry of a snapshot offline with the unseal keys",
    ),
    entry(
        &["operator", "snapshot", "restore"],
        snapshot::restore,
        "Restores a snapshot, replacing the whole store",
    ),
    entry(
        &["operator", "raft", "snapshot", "save"],
        snapshot::save,
        "Saves a snapshot (Vault's name for operator snapshot save)",
    ),
    entry(
        &["operator", "raft", "snapshot", "inspect"],
        snapshot::inspect,
        "Checks a snapshot file (Vault's name for operator snapshot inspect)",
    ),
    entry(
        &["operator", "raft", "snapshot", "restore"],
        snapshot::restore,
        "Restores a snapshot (Vault's name for operator snapshot restore)",
    ),
    entry(&["kv", "get"], kv::get, "Retrieve data"),
    entry(
        &["kv", "put"],
        kv::put,
        "Sets or updates data in the KV store",
    ),
    entry(
        &["kv", "patch"],
        kv::patch,
        "Sets or updates data without overwriting",
    ),
    entry(
        &["kv", "delete"],
        kv::delete,
        "Deletes versions in the KV store",
    ),
    entry(
        &["kv", "undelete"],
        kv::undelete,
        "Undeletes versions in the KV store",
    ),
    entry(
        &["kv", "destroy"],
        kv::destroy,
        "Permanently removes one or more versions",
    ),
    entry(
        &["kv", "rollback"],
        kv::rollback,
        "Rolls back to a previous version of data",
    ),
    entry(&["kv", "list"], kv::list, "List data or secrets"),
    entry(
        &["kv", "enable-versioning"],
        kv::enable_versioning,
        "Turns on versioning for a KV store",
    ),
    entry(
        &["kv", "metadata", "get"],
        kv::metadata_get,
        "Retrieves key metadata",
    ),
    entry(
        &["kv", "metadata", "put"],
        kv::metadata_put,
        "Sets or updates key settings",
    ),
    entry(
        &["kv", "metadata", "patch"],
        kv::metadata_patch,
        "Patches key settings",
    ),
    entry(
        &["kv", "metadata", "delete"],
        kv::metadata_delete,
        "Deletes all versions and metadata",
    ),
    entry(
        &["secrets", "enable"],
        mounts::secrets_enable,
        "Enable a secrets engine",
    ),
    entry(
        &["secrets", "disable"],
        mounts::secrets_disable,
        "Disable a secrets engine",
    ),
    entry(
        &["secrets", "list"],
        mounts::secrets_list,
        "List enabled secrets engines",
    ),
    entry(
        &["secrets", "tune"],
        mounts::secrets_tune,
        "Tune a secrets engine configuration",
    ),
    entry(
        &["secrets", "move"],
        mounts::secrets_move,
        "Move a secrets engine to a new path",
    ),
    entry(
        &["auth", "enable"],
        mounts::auth_enable,
        "Enables a new auth method",
    ),
    entry(
        &["auth", "disable"],
        mounts::auth_disable,
        "Disables an auth method",
    ),
    entry(
        &["auth", "list"],
        mounts::auth_list,
        "Lists enabled auth methods",
    ),
    entry(
        &["auth", "tune"],
        mounts::auth_tune,
        "Tunes an auth method configuration",
    ),
    entry(
        &["auth", "help"],
        token::auth_help,
        "Prints usage for an auth method",
    ),
    entry(
        &["audit", "enable"],
        mounts::audit_enable,
        "Enables an audit device",
    ),
    entry(
        &["audit", "disable"],
        mounts::audit_disable,
        "Disables an audit device",
    ),
    entry(
        &["audit", "list"],
        mounts::audit_list,
        "Lists enabled audit devices",
    ),
    entry(
        &["ssh"],
        ssh::ssh,
        "Signs your SSH key with an SSH engine role and connects with it",
    ),
    entry(
        &["pki", "issue"],
        pki::issue,
        "Creates an intermediate issuer in a mount, signed by a parent issuer",
    ),
    entry(
        &["pki", "verify-sign"],
        pki::verify_sign,
        "Checks whether one issuer signed another",
    ),
    entry(
        &["pki", "list-intermediates"],
        pki::list_intermediates,
        "Lists which issuers a parent issuer signed",
    ),
    entry(
        &["policy", "write"],
        policy::write,
        "Uploads a named policy from a file",
    ),
    entry(
        &["policy", "read"],
        policy::read,
        "Prints the contents of a policy",
    ),
    entry(
        &["policy", "list"],
        policy::list,
        "Lists the installed policies",
    ),
    entry(
        &["policy", "delete"],
        policy::delete,
        "Deletes a policy by name",
    ),
    entry(&["policy", "fmt"], policy::fmt, "Formats a policy file"),
    entry(
        &["policy", "test"],
        policy::test,
        "Runs the tests of governing policies (Rego) locally",
    ),
    entry(
        &["policy", "eval"],
        policy::eval,
        "Evaluates a governing policy against an input document",
    ),
    entry(&["token", "create"], token::create, "Create a new token"),
    entry(
        &["token", "lookup"],
        token::lookup,
        "Display information about a token",
    ),
    entry(&["token", "renew"], token::renew, "Renew a token lease"),
    entry(
        &["token", "revoke"],
        token::revoke,
        "Revoke a token and its children",
    ),
    entry(
        &["token", "capabilities"],
        token::capabilities,
        "Print capabilities of a token on a path",
    ),
    entry(
        &["lease", "lookup"],
        token::lease_lookup,
        "Lookup the lease of a secret",
    ),
    entry(
        &["lease", "renew"],
        token::lease_renew,
        "Renews the lease of a secret",
    ),
    entry(
        &["lease", "revoke"],
        token::lease_revoke,
        "Revokes leases and secrets",
    ),
];

fn version(cli: &mut Cli<'_, '_>, args: &[String]) -> CmdResult {
    if let [a] = args
        && matches!(a.as_str(), "-h" | "-help" | "--help")
    {
        return Err(CliError::Help(
            "Usage: tresor version\n\n  Prints the version of this CLI.".into(),
        ));
    }
    commands::max_args(args, 0)?;
    cli.outln(VERSION_LINE);
    Ok(0)
}

/// Commands the `tresor` binary runs itself, before this crate sees the arguments; listed
/// here so that `tresor -help` shows every command.
pub const BINARY_COMMANDS: &[(&str, &str)] = &[
    ("server", "Start a Tresor server"),
    ("bench", "Run a load test against a Vault-API server"),
];

/// One line for each command group.
const GROUPS: &[(&[&str], &str)] = &[
    (&["audit"], "Interact with audit devices"),
    (&["auth"], "Interact with auth methods"),
    (&["kv"], "Interact with the key/value secrets engine"),
    (
        &["kv", "metadata"],
        "Interact with the metadata of KV v2 secrets",
    ),
    (&["lease"], "Interact with leases"),
    (&["operator"], "Perform operator-specific tasks"),
    (
        &["operator", "snapshot"],
        "Save, inspect, verify and restore snapshots of the whole store",
    ),
    (
        &["operator", "raft"],
        "Vault's names for the snapshot commands",
    ),
    (
        &["operator", "raft", "snapshot"],
        "Save, inspect and restore snapshots (aliases of operator snapshot)",
    ),
    (&["pki"], "Interact with the PKI secrets engine"),
    (&["policy"], "Interact with policies"),
    (&["secrets"], "Interact with secrets engines"),
    (&["token"], "Interact with tokens"),
];

/// The commands listed first at the top level, as in Vault.
const COMMON: &[&str] = &[
    "read", "write", "delete", "list", "login", "server", "status", "unwrap",
];

/// `name` and synopsis of each command or group directly under `prefix`.
fn children(prefix: &[String]) -> Vec<(&'static str, &'static str)> {
    let depth = prefix.len();
    let mut out: Vec<(&str, &str)> = Vec::new();
    for e in COMMANDS {
        if e.path.len() <= depth || !e.path.iter().zip(prefix).all(|(a, b)| a == b) {
            continue;
        }
        let name = e.path[depth];
        if out.iter().any(|(n, _)| *n == name) {
            continue;
        }
        let synopsis = if e.path.len() == depth + 1 {
            e.synopsis
        } else {
            GROUPS
                .iter()
                .find(|(path, _)| {
                    path.len() == depth + 1 && path[..depth] == *prefix && path[depth] == name
                })
                .map_or("", |(_, s)| *s)
        };
        out.push((name, synopsis));
    }
    if prefix.is_empty() {
        out.extend(BINARY_COMMANDS.iter().copied());
    }
    out
}

/// Lines `    name    synopsis`, the synopses aligned one column past the longest name.
fn table(rows: &[(&str, &str)]) -> String {
    let width = rows.iter().map(|(n, _)| n.len()).max().unwrap_or(0);
    rows.iter()
        .map(|(name, synopsis)| format!("    {name:<width$}    {synopsis}\n"))
        .collect()
}

/// The help text of a group (`prefix` empty: the whole CLI).
fn listing(prefix: &[String]) -> String {
    let name = if prefix.is_empty() {
        "tresor".to_string()
    } else {
        format!("tresor {}", prefix.join(" "))
    };
    let mut rows = children(prefix);
    if !prefix.is_empty() {
        return format!(
            "Usage: {name} <command> [args]\n\nCommands:\n{}",
            table(&rows)
        );
    }
    rows.sort_by_key(|(n, _)| *n);
    let (mut common, other): (Vec<_>, Vec<_>) =
        rows.into_iter().partition(|(n, _)| COMMON.contains(n));
    common.sort_by_key(|(n, _)| COMMON.iter().position(|c| c == n));
    format!(
        "Usage: {name} <command> [args]\n\nCommon commands:\n{}\nOther commands:\n{}\nRun \"tresor help <command>\" (or \"tresor <command> -help\") for a command's options.\n",
        table(&common),
        table(&other)
    )
}

/// Runs one CLI invocation with explicit streams and environment; returns the exit code.
pub fn run_with(args: &[String], ctx: &mut Context<'_>) -> i32 {
    // `tresor help` is `tresor -help`; `tresor help CMD...` is `tresor CMD... -help`.
    if args.first().is_some_and(|a| a == "help") {
        if args.len() == 1 {
            let _ = write!(ctx.stdout, "{}", listing(&[]));
            return 0;
        }
        let mut rest = args[1..].to_vec();
        rest.push("-help".into());
        return run_with(&rest, ctx);
    }
    // The longest command path that prefixes the arguments.
    let found = COMMANDS
        .iter()
        .filter(|e| e.path.len() <= args.len() && e.path.iter().zip(args).all(|(a, b)| a == b))
        .max_by_key(|e| e.path.len());
    let Some(entry) = found else {
        // A group name alone (e.g. `kv`), help, or an unknown command.
        let mut prefix: Vec<String> = Vec::new();
        for a in args {
            let mut candidate = prefix.clone();
            candidate.push(a.clone());
            if COMMANDS.iter().any(|e| {
                e.path.len() > candidate.len() && e.path.iter().zip(&candidate).all(|(x, y)| x == y)
            }) {
                prefix = candidate;
            } else {
                break;
            }
        }
        let wants_help = args
            .get(prefix.len())
            .is_none_or(|a| matches!(a.as_str(), "-h" | "-help" | "--help"));
        let text = listing(&prefix);
        if prefix.is_empty() && !args.is_empty() && !wants_help {
            let _ = writeln!(ctx.stderr, "Unknown command: {}\n\n{text}", args[0]);
            return 127;
        }
        if wants_help && args.get(prefix.len()).is_some() {
            let _ = write!(ctx.stdout, "{text}");
            return 0;
        }
        let _ = write!(ctx.stderr, "{text}");
        return if prefix.is_empty() && args.is_empty() {
            127
        } else {
            1
        };
    };
    let rest = &args[entry.path.len()..];
    let mut cli = Cli::new(ctx);
    match (entry.handler)(&mut cli, rest) {
        Ok(code) => code,
        Err(CliError::Help(text)) => {
            cli.outln(&text);
            0
        }
        Err(e) => {
            let code = e.exit_code();
            match e {
                CliError::Usage(m) | CliError::Local(m) | CliError::Remote(m) => cli.errln(&m),
                CliError::Help(_) => {}
            }
            code
        }
    }
}
