//! The errors `tresor bench` can end with, and the exit code each one maps to.
//!
//! Exit codes follow Vault's CLI: 1 for a local problem (bad flags, a bad config file, a TLS
//! file that cannot be read), 2 for a problem with the server (unreachable, sealed, a setup
//! request it refused).

use std::path::PathBuf;

/// Everything that stops a benchmark before or instead of producing a report.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// A flag that `tresor bench` does not define.
    #[error("flag provided but not defined: -{0}")]
    UnknownFlag(String),
    /// A flag that takes a value was last on the line.
    #[error("flag -{0} needs a value")]
    MissingValue(String),
    /// A flag or config value that does not parse or is out of range.
    #[error("invalid value {value:?} for {flag}: {reason}")]
    InvalidValue {
        flag: String,
        value: String,
        reason: String,
    },
    /// A positional argument; bench takes flags only.
    #[error("unexpected argument {0:?}: tresor bench takes flags only (see tresor bench -help)")]
    UnexpectedArgument(String),
    /// Two options that exclude each other.
    #[error("{0}")]
    Conflict(String),
    /// A workload name that is not in the registry.
    #[error("unknown workload {name:?}; known workloads: {known}")]
    UnknownWorkload { name: String, known: String },
    /// Neither `-workload` nor a config file with `test` blocks.
    #[error(
        "no workload given: use -workload=NAME[:WEIGHT],... or -config=FILE; known workloads: {known}"
    )]
    NoWorkload { known: String },
    /// The config file cannot be read or is not what bench expects.
    #[error("config file {}: {message}", path.display())]
    Config { path: PathBuf, message: String },
    /// A workload's own configuration is invalid (an unknown key, a bad value).
    #[error("workload {workload:?}: {message}")]
    WorkloadConfig { workload: String, message: String },
    /// The TLS settings cannot be used (unreadable CA file, bad server name).
    #[error("tls: {0}")]
    Tls(String),
    /// No token where the chosen workloads need one.
    #[error(
        "no token: set VAULT_TOKEN (or log in so that ~/.vault-token exists); workload {0:?} needs one"
    )]
    NoToken(String),
    /// The server cannot be reached at all.
    #[error("cannot reach the server at {address}: {reason}")]
    Unreachable { address: String, reason: String },
    /// The server is sealed or not initialized.
    #[error("the server at {address} is {state}: initialize and unseal it before benchmarking")]
    NotReady { address: String, state: String },
    /// A setup or cleanup request the server answered with an error.
    #[error("{context}: {message}")]
    Server { context: String, message: String },
    /// The token holds bytes that cannot go in an HTTP header.
    #[error("the token contains characters that cannot be sent in a header")]
    BadToken,
    /// The async runtime could not start.
    #[error("starting the runtime: {0}")]
    Runtime(String),
}

impl BenchError {
    /// The process exit code for this error: 1 local, 2 server side.
    pub fn exit_code(&self) -> i32 {
        match self {
            BenchError::Unreachable { .. }
            | BenchError::NotReady { .. }
            | BenchError::Server { .. } => 2,
            _ => 1,
        }
    }
}
