//! The workload registry and the contract every workload keeps.
//!
//! A workload is registered once, as a [`Kind`] in [`REGISTRY`]: its name (and the
//! vault-benchmark names it also answers to), whether it needs a token, a check of its own
//! configuration (run while options are parsed, before anything touches the server), and an
//! async `setup` that prepares the server (mounts, seed data, policies, tokens) and returns the
//! ready [`Workload`]. The runner then asks the workload for one request at a time and, at the
//! end, calls its `cleanup`, which removes everything `setup` created.
//!
//! Adding an engine's workload is one module with a config struct, a setup function and a
//! [`Workload`] impl, plus one entry here; unknown names are rejected with the list of known
//! ones. The login
//! workloads (`userpass-login`, `approle-login`) share [`auth`]'s mount and request helpers.

mod approle;
mod auth;
mod database;
mod engine_ops;
mod kv;
mod ldap;
mod pki;
mod sys_health;
mod token;
mod userpass;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::Full;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::client::{Api, Target};
use crate::error::BenchError;

/// A boxed future, as registry function pointers return.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What a workload's `setup` resolves to.
pub type SetupFuture = BoxFuture<'static, Result<Box<dyn Workload>, BenchError>>;

/// A workload after setup: it produces requests and knows how to undo its setup.
#[async_trait::async_trait]
pub trait Workload: Send + Sync {
    /// The request for the `seq`-th call of this workload by worker `worker`.
    fn request(&self, target: &Target, worker: usize, seq: u64) -> Request<Full<Bytes>>;

    /// Whether a response status counts as success (2xx unless the workload says otherwise).
    fn accepts(&self, status: StatusCode) -> bool {
        status.is_success()
    }

    /// Figures the workload adds to its row of the report, given the measured rate of
    /// successful requests (`userpass-login`: the bcrypt bound). A `summary` string is printed
    /// under the table; every entry goes in the JSON report.
    fn notes(&self, _ok_per_second: f64) -> Map<String, Value> {
        Map::new()
    }

    /// Removes what setup created (mounts, policies, tokens).
    async fn cleanup(&self, api: &Api) -> Result<(), BenchError>;
}

/// What `setup` gets: the client, a name unique to this run and workload, and the config.
pub struct SetupContext {
    /// The setup client, sending the caller's token.
    pub api: Arc<Api>,
    /// A name unique to this run and this workload entry, safe in a mount path or policy
    /// name (`tresor-bench-1a2b3c4d-0`).
    pub unique: String,
    /// The workload's name in the mix (for messages).
    pub name: String,
    /// The workload's configuration (a JSON object; empty when none was given).
    pub config: Value,
}

/// A registered workload type.
pub struct Kind {
    /// The name used in `-workload` and in config files.
    pub name: &'static str,
    /// vault-benchmark's names for the same test, accepted in config files and flags.
    pub aliases: &'static [&'static str],
    /// One line for `-help`.
    pub summary: &'static str,
    /// Whether the workload sends a token (and so needs one).
    pub needs_token: bool,
    /// Validates a configuration object without touching the server.
    pub check_config: fn(&Value) -> Result<(), String>,
    /// Prepares the server and returns the ready workload.
    pub setup: fn(SetupContext) -> SetupFuture,
}

impl std::fmt::Debug for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kind").field("name", &self.name).finish()
    }
}

/// Every workload `tresor bench` knows, in the order `-help` lists them.
pub static REGISTRY: &[Kind] = &[
    sys_health::KIND,
    kv::READ,
    kv::WRITE,
    kv::LIST,
    token::CREATE,
    token::LOOKUP,
    pki::ISSUE,
    pki::SIGN,
    userpass::LOGIN,
    approle::LOGIN,
    engine_ops::TRANSIT_ENCRYPT,
    engine_ops::TRANSIT_ENCRYPT_BATCH,
    engine_ops::TRANSIT_SIGN,
    engine_ops::SSH_SIGN,
    engine_ops::JWT_LOGIN,
    database::CREDS,
    ldap::LOGIN,
];

/// Finds a workload by name or vault-benchmark alias.
pub fn lookup(name: &str) -> Option<&'static Kind> {
    REGISTRY
        .iter()
        .find(|k| k.name == name || k.aliases.contains(&name))
}

/// The known workload names, comma-separated, for error messages.
pub fn known_names() -> String {
    REGISTRY
        .iter()
        .map(|k| k.name)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Deserializes a workload's config object into its typed struct, naming a bad field.
pub fn parse_config<T: DeserializeOwned>(config: &Value) -> Result<T, String> {
    let obj = match config {
        Value::Null => Value::Object(Map::new()),
        other => other.clone(),
    };
    serde_json::from_value(obj).map_err(|e| e.to_string())
}

/// [`Kind::check_config`] for a typed config struct.
pub fn check<T: DeserializeOwned>(config: &Value) -> Result<(), String> {
    parse_config::<T>(config).map(|_| ())
}

/// Reads a typed config inside setup, as a workload error.
pub(crate) fn config_of<T: DeserializeOwned>(ctx: &SetupContext) -> Result<T, BenchError> {
    parse_config(&ctx.config).map_err(|message| BenchError::WorkloadConfig {
        workload: ctx.name.clone(),
        message,
    })
}

/// Runs `f` for `0..count` with at most `parallel` calls in flight, stopping at the first error.
pub(crate) async fn for_each_parallel<F, Fut>(
    count: usize,
    parallel: usize,
    f: F,
) -> Result<(), BenchError>
where
    F: Fn(usize) -> Fut,
    Fut: Future<Output = Result<(), BenchError>> + Send + 'static,
{
    let mut set = tokio::task::JoinSet::new();
    for i in 0..count {
        if set.len() >= parallel.max(1)
            && let Some(r) = set.join_next().await
        {
            r.map_err(|e| BenchError::Runtime(e.to_string()))??;
        }
        set.spawn(f(i));
    }
    while let Some(r) = set.join_next().await {
        r.map_err(|e| BenchError::Runtime(e.to_string()))??;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_aliases_are_unique() {
        let mut all: Vec<&str> = REGISTRY
            .iter()
            .flat_map(|k| std::iter::once(k.name).chain(k.aliases.iter().copied()))
            .collect();
        let n = all.len();
        all.sort();
        all.dedup();
        assert_eq!(all.len(), n);
    }

    #[test]
    fn lookup_by_name_and_alias() {
        assert_eq!(lookup("kv-read").unwrap().name, "kv-read");
        assert_eq!(lookup("kvv2_read").unwrap().name, "kv-read");
        assert_eq!(lookup("pki_issue").unwrap().name, "pki-issue");
        assert_eq!(lookup("pki-sign").unwrap().name, "pki-sign");
        assert_eq!(lookup("userpass_auth").unwrap().name, "userpass-login");
        assert_eq!(lookup("approle_auth").unwrap().name, "approle-login");
        assert_eq!(lookup("transit_encrypt").unwrap().name, "transit-encrypt");
        assert_eq!(lookup("ssh_sign").unwrap().name, "ssh-sign");
        assert_eq!(lookup("postgresql_secret").unwrap().name, "database-creds");
        assert!(lookup("").is_none());
    }

    #[test]
    fn configs_reject_unknown_keys_by_name() {
        for k in REGISTRY {
            (k.check_config)(&Value::Null).unwrap();
            (k.check_config)(&serde_json::json!({})).unwrap();
            let e = (k.check_config)(&serde_json::json!({"no_such_key": 1})).unwrap_err();
            assert!(e.contains("no_such_key"), "{}: {e}", k.name);
        }
        let e = (lookup("kv-read").unwrap().check_config)(&serde_json::json!({"numkvs": "many"}))
            .unwrap_err();
        assert!(e.contains("invalid type"), "{e}");
    }
}
