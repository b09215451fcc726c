//! The client's configuration: Vault's defaults, overridden by `VAULT_*` variables (read
//! through [`Env`]), overridden by explicit [`Overrides`] (the CLI's flags). The token comes
//! from an override, else `VAULT_TOKEN`, else the token helper file `~/.vault-token`.
//!
//! Variables read, with the Go client's meaning: `VAULT_ADDR`, `VAULT_TOKEN`, `VAULT_CACERT`,
//! `VAULT_CACERT_BYTES`, `VAULT_CAPATH`, `VAULT_CLIENT_CERT`, `VAULT_CLIENT_KEY`,
//! `VAULT_SKIP_VERIFY`, `VAULT_TLS_SERVER_NAME`, `VAULT_NAMESPACE`, `VAULT_CLIENT_TIMEOUT`,
//! `VAULT_MAX_RETRIES`, `VAULT_WRAP_TTL`, `VAULT_DISABLE_REDIRECTS`. Not supported:
//! `VAULT_AGENT_ADDR`, `VAULT_RATE_LIMIT`, `VAULT_SRV_LOOKUP`, `VAULT_HTTP_PROXY` /
//! `VAULT_PROXY_ADDR`, `VAULT_MFA`.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use zeroize::Zeroizing;

use crate::duration;
use crate::env::{self, Env};
use crate::error::ConfigError;
use crate::tls::TlsOptions;

/// Vault's default address.
pub const DEFAULT_ADDRESS: &str = "https://127.0.0.1:8200";
/// Vault's default deadline for one request, retries included.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);
/// Vault's default number of retries (three tries in all).
pub const DEFAULT_MAX_RETRIES: u32 = 2;
/// Vault's default lower bound of the per-attempt retry wait.
pub const DEFAULT_MIN_RETRY_WAIT: Duration = Duration::from_millis(1000);
/// Vault's default upper bound of the per-attempt retry wait.
pub const DEFAULT_MAX_RETRY_WAIT: Duration = Duration::from_millis(1500);

/// Everything a client needs. [`Default`] is Vault's defaults with no token.
#[derive(Clone)]
pub struct ClientConfig {
    /// Server address, e.g. `http://127.0.0.1:8200`; a path after the host is kept as a
    /// prefix before `/v1/` (`VAULT_ADDR`).
    pub address: String,
    /// The token sent as `X-Vault-Token` (`VAULT_TOKEN`, else `~/.vault-token`).
    pub token: Option<Zeroizing<String>>,
    /// `X-Vault-Namespace` (`VAULT_NAMESPACE`).
    pub namespace: Option<String>,
    /// `X-Vault-Wrap-TTL` on requests that allow wrapping (`VAULT_WRAP_TTL`), as given
    /// (`5m`, `300`).
    pub wrap_ttl: Option<String>,
    /// Server verification and client certificate.
    pub tls: TlsOptions,
    /// Deadline for one request, all retries and waits included (`VAULT_CLIENT_TIMEOUT`);
    /// zero means none.
    pub timeout: Duration,
    /// Retries after the first try on a retryable answer (`VAULT_MAX_RETRIES`); 0 disables.
    pub max_retries: u32,
    /// Lower bound of the retry wait: attempt `n` waits `n × random(min..max)`.
    pub min_retry_wait: Duration,
    /// Upper bound of the retry wait.
    pub max_retry_wait: Duration,
    /// Extra headers on every request.
    pub headers: Vec<(String, String)>,
    /// Send `X-Vault-Policy-Override: true`.
    pub policy_override: bool,
    /// Do not follow the one redirect Vault's client follows (`VAULT_DISABLE_REDIRECTS`).
    pub disable_redirects: bool,
    /// The `User-Agent` header.
    pub user_agent: String,
}

impl Default for ClientConfig {
    fn default() -> ClientConfig {
        ClientConfig {
            address: DEFAULT_ADDRESS.to_string(),
            token: None,
            namespace: None,
            wrap_ttl: None,
            tls: TlsOptions::default(),
            timeout: DEFAULT_TIMEOUT,
            max_retries: DEFAULT_MAX_RETRIES,
            min_retry_wait: DEFAULT_MIN_RETRY_WAIT,
            max_retry_wait: DEFAULT_MAX_RETRY_WAIT,
            headers: Vec::new(),
            policy_override: false,
            disable_redirects: false,
            user_agent: concat!("tresor-client/", env!("CARGO_PKG_VERSION")).to_string(),
        }
    }
}

impl fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientConfig")
            .field("address", &self.address)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("namespace", &self.namespace)
            .field("wrap_ttl", &self.wrap_ttl)
            .field("tls", &self.tls)
            .field("timeout", &self.timeout)
            .field("max_retries", &self.max_retries)
            .field("policy_override", &self.policy_override)
            .field("disable_redirects", &self.disable_redirects)
            .finish_non_exhaustive()
    }
}

/// Values given explicitly (command-line flags); each set one wins over the environment.
#[derive(Clone, Default)]
pub struct Overrides {
    /// `-address`.
    pub address: Option<String>,
    /// A token given explicitly.
    pub token: Option<Zeroizing<String>>,
    /// `-namespace` / `-ns`.
    pub namespace: Option<String>,
    /// `-wrap-ttl`.
    pub wrap_ttl: Option<String>,
    /// `-ca-cert`.
    pub ca_cert: Option<PathBuf>,
    /// `-ca-path`.
    pub ca_path: Option<PathBuf>,
    /// `-client-cert`.
    pub client_cert: Option<PathBuf>,
    /// `-client-key`.
    pub client_key: Option<PathBuf>,
    /// `-tls-skip-verify` (or `-tls-skip-verify=false`).
    pub tls_skip_verify: Option<bool>,
    /// `-tls-server-name`.
    pub tls_server_name: Option<String>,
    /// A deadline per request.
    pub timeout: Option<Duration>,
    /// A number of retries.
    pub max_retries: Option<u32>,
    /// `-header` values, added to the configured headers.
    pub headers: Vec<(String, String)>,
    /// `-policy-override`.
    pub policy_override: Option<bool>,
    /// Whether to follow a redirect.
    pub disable_redirects: Option<bool>,
}

impl fmt::Debug for Overrides {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Overrides")
            .field("address", &self.address)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .finish_non_exhaustive()
    }
}

/// Go's `strconv.ParseBool`, which Vault uses for boolean variables.
pub fn parse_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}

fn bool_var(env: &dyn Env, name: &'static str) -> Result<Option<bool>, ConfigError> {
    match env.var(name) {
        None => Ok(None),
        Some(v) => parse_bool(&v)
            .map(Some)
            .ok_or(ConfigError::Variable { name, value: v }),
    }
}

impl ClientConfig {
    /// Vault's defaults overridden by the `VAULT_*` variables of `env`.
    pub fn from_env(env: &dyn Env) -> Result<ClientConfig, ConfigError> {
        ClientConfig::load(env, &Overrides::default())
    }

    /// Vault's defaults, overridden by the `VAULT_*` variables of `env`, overridden by `over`.
    /// The token is `over.token`, else `VAULT_TOKEN`, else the token helper file.
    pub fn load(env: &dyn Env, over: &Overrides) -> Result<ClientConfig, ConfigError> {
        let d = ClientConfig::default();
        let path = |given: &Option<PathBuf>, var: &str| {
            given.clone().or_else(|| env.var(var).map(PathBuf::from))
        };
        let timeout = match (over.timeout, env.var("VAULT_CLIENT_TIMEOUT")) {
            (Some(t), _) => t,
            (None, None) => d.timeout,
            (None, Some(v)) => {
                let nanos = duration::parse(&v).map_err(|_| ConfigError::Variable {
                    name: "VAULT_CLIENT_TIMEOUT",
                    value: v.clone(),
                })?;
                Duration::from_nanos(nanos.max(0) as u64)
            }
        };
        let max_retries = match (over.max_retries, env.var("VAULT_MAX_RETRIES")) {
            (Some(n), _) => n,
            (None, None) => d.max_retries,
            (None, Some(v)) => v.trim().parse().map_err(|_| ConfigError::Variable {
                name: "VAULT_MAX_RETRIES",
                value: v.clone(),
            })?,
        };
        let skip_verify = match over.tls_skip_verify {
            Some(b) => b,
            None => bool_var(env, "VAULT_SKIP_VERIFY")?.unwrap_or(false),
        };
        let disable_redirects = match over.disable_redirects {
            Some(b) => b,
            None => bool_var(env, "VAULT_DISABLE_REDIRECTS")?.unwrap_or(false),
        };
        let token = over
            .token
            .clone()
            .or_else(|| env.var("VAULT_TOKEN").map(Zeroizing::new))
            .or_else(|| env::read_stored_token(env));
        Ok(ClientConfig {
            address: over
                .address
                .clone()
                .or_else(|| env.var("VAULT_ADDR"))
                .unwrap_or(d.address),
            token,
            namespace: over
                .namespace
                .clone()
                .or_else(|| env.var("VAULT_NAMESPACE")),
            wrap_ttl: over.wrap_ttl.clone().or_else(|| env.var("VAULT_WRAP_TTL")),
            tls: TlsOptions {
                ca_cert: path(&over.ca_cert, "VAULT_CACERT"),
                // A file named explicitly replaces PEM text from the environment.
                ca_cert_pem: if over.ca_cert.is_some() {
                    None
                } else {
                    env.var("VAULT_CACERT_BYTES")
                },
                ca_path: path(&over.ca_path, "VAULT_CAPATH"),
                client_cert: path(&over.client_cert, "VAULT_CLIENT_CERT"),
                client_key: path(&over.client_key, "VAULT_CLIENT_KEY"),
                skip_verify,
                server_name: over
                    .tls_server_name
                    .clone()
                    .or_else(|| env.var("VAULT_TLS_SERVER_NAME")),
            },
            timeout,
            max_retries,
            headers: over.headers.clone(),
            policy_override: over.policy_override.unwrap_or(false),
            disable_redirects,
            ..d
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::env::MapEnv;

    #[test]
    fn defaults_are_vaults() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = ClientConfig::from_env(&MapEnv::new(Some(dir.path()))).unwrap();
        assert_eq!(cfg.address, DEFAULT_ADDRESS);
        assert!(cfg.token.is_none());
        assert!(!cfg.tls.skip_verify);
        assert_eq!(cfg.timeout, Duration::from_secs(60));
        assert_eq!(cfg.max_retries, 2);
        assert_eq!(
            (cfg.min_retry_wait, cfg.max_retry_wait),
            (Duration::from_millis(1000), Duration::from_millis(1500))
        );
        assert!(!cfg.disable_redirects && !cfg.policy_override);
    }

    #[test]
    fn precedence_is_override_then_env_then_file_then_default() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(".vault-token"), "from-file\n").unwrap();
        let env = MapEnv::new(Some(dir.path()));
        let cfg = ClientConfig::from_env(&env).unwrap();
        assert_eq!(cfg.token.as_deref().map(String::as_str), Some("from-file"));

        let env = env
            .with("VAULT_ADDR", "http://10.0.0.1:8200")
            .with("VAULT_TOKEN", "from-env")
            .with("VAULT_NAMESPACE", "ns1")
            .with("VAULT_SKIP_VERIFY", "true")
            .with("VAULT_WRAP_TTL", "5m")
            .with("VAULT_CLIENT_TIMEOUT", "5")
            .with("VAULT_MAX_RETRIES", "7")
            .with("VAULT_CACERT", "/env/ca.pem")
            .with("VAULT_CAPATH", "/env/cas")
            .with("VAULT_CLIENT_CERT", "/env/cert.pem")
            .with("VAULT_CLIENT_KEY", "/env/key.pem")
            .with("VAULT_TLS_SERVER_NAME", "vault.env")
            .with("VAULT_DISABLE_REDIRECTS", "1");
        let cfg = ClientConfig::from_env(&env).unwrap();
        assert_eq!(cfg.address, "http://10.0.0.1:8200");
        assert_eq!(cfg.token.as_deref().map(String::as_str), Some("from-env"));
        assert_eq!(cfg.namespace.as_deref(), Some("ns1"));
        assert!(cfg.tls.skip_verify);
        assert_eq!(cfg.wrap_ttl.as_deref(), Some("5m"));
        assert_eq!(cfg.timeout, Duration::from_secs(5));
        assert_eq!(cfg.max_retries, 7);
        assert_eq!(cfg.tls.ca_cert, Some(PathBuf::from("/env/ca.pem")));
        assert_eq!(cfg.tls.ca_path, Some(PathBuf::from("/env/cas")));
        assert_eq!(cfg.tls.client_cert, Some(PathBuf::from("/env/cert.pem")));
        assert_eq!(cfg.tls.client_key, Some(PathBuf::from("/env/key.pem")));
        assert_eq!(cfg.tls.server_name.as_deref(), Some("vault.env"));
        assert!(cfg.disable_redirects);

        let over = Overrides {
            address: Some("http://127.0.0.1:1".into()),
            token: Some(Zeroizing::new("from-flag".into())),
            namespace: Some("x".into()),
            wrap_ttl: Some("1m".into()),
            ca_cert: Some("/flag/ca.pem".into()),
            ca_path: Some("/flag/cas".into()),
            client_cert: Some("/flag/cert.pem".into()),
            client_key: Some("/flag/key.pem".into()),
            tls_skip_verify: Some(false),
            tls_server_name: Some("vault.flag".into()),
            timeout: Some(Duration::from_secs(9)),
            max_retries: Some(0),
            headers: vec![("X-Custom".into(), "yes".into())],
            policy_override: Some(true),
            disable_redirects: Some(false),
        };
        let cfg = ClientConfig::load(&env, &over).unwrap();
        assert_eq!(cfg.address, "http://127.0.0.1:1");
        assert_eq!(cfg.token.as_deref().map(String::as_str), Some("from-flag"));
        assert_eq!(cfg.namespace.as_deref(), Some("x"));
        assert_eq!(cfg.wrap_ttl.as_deref(), Some("1m"));
        assert!(!cfg.tls.skip_verify);
        assert_eq!(cfg.timeout, Duration::from_secs(9));
        assert_eq!(cfg.max_retries, 0);
        assert_eq!(cfg.tls.ca_cert, Some(PathBuf::from("/flag/ca.pem")));
        assert_eq!(cfg.tls.ca_path, Some(PathBuf::from("/flag/cas")));
        assert_eq!(cfg.tls.client_cert, Some(PathBuf::from("/flag/cert.pem")));
        assert_eq!(cfg.tls.client_key, Some(PathBuf::from("/flag/key.pem")));
        assert_eq!(cfg.tls.server_name.as_deref(), Some("vault.flag"));
        assert_eq!(
            cfg.headers,
            vec![("X-Custom".to_string(), "yes".to_string())]
        );
        assert!(cfg.policy_override && !cfg.disable_redirects);
        // Secrets never reach Debug output.
        assert!(!format!("{cfg:?}").contains("from-flag"));
        assert!(!format!("{over:?}").contains("from-flag"));
    }

    #[test]
    fn malformed_variables_name_the_variable() {
        for (name, value) in [
            ("VAULT_SKIP_VERIFY", "sure"),
            ("VAULT_MAX_RETRIES", "-1"),
            ("VAULT_MAX_RETRIES", "two"),
            ("VAULT_CLIENT_TIMEOUT", "soon"),
            ("VAULT_DISABLE_REDIRECTS", "yes"),
        ] {
            let env = MapEnv::new(None).with(name, value);
            match ClientConfig::from_env(&env) {
                Err(ConfigError::Variable { name: n, value: v }) => {
                    assert_eq!((n, v.as_str()), (name, value));
                }
                other => panic!("{name}={value}: {other:?}"),
            }
        }
        // An explicit value wins before the variable is even looked at.
        let env = MapEnv::new(None).with("VAULT_SKIP_VERIFY", "sure");
        let over = Overrides {
            tls_skip_verify: Some(true),
            ..Overrides::default()
        };
        assert!(ClientConfig::load(&env, &over).unwrap().tls.skip_verify);
    }

    #[test]
    fn timeouts_accept_go_durations_and_bare_seconds() {
        for (value, want) in [
            ("90", 90_000),
            ("1m30s", 90_000),
            ("250ms", 250),
            ("-5s", 0),
        ] {
            let env = MapEnv::new(None).with("VAULT_CLIENT_TIMEOUT", value);
            let cfg = ClientConfig::from_env(&env).unwrap();
            assert_eq!(cfg.timeout, Duration::from_millis(want), "{value}");
        }
    }

    #[test]
    fn cacert_bytes_yield_to_an_explicit_file() {
        let env = MapEnv::new(None).with("VAULT_CACERT_BYTES", "-----BEGIN CERTIFICATE-----");
        let cfg = ClientConfig::from_env(&env).unwrap();
        assert!(cfg.tls.ca_cert_pem.is_some());
        let over = Overrides {
            ca_cert: Some("/flag/ca.pem".into()),
            ..Overrides::default()
        };
        let cfg = ClientConfig::load(&env, &over).unwrap();
        assert!(cfg.tls.ca_cert_pem.is_none());
    }
}
