//! The CLI's side of the client: the HTTP flags every command accepts and how they map onto
//! `tresor_client`'s configuration (a flag wins over its `VAULT_*` variable). Everything that
//! talks HTTP (TLS, headers, retries, the envelope, Vault's error text, the 404 rule) lives in
//! `tresor_client`; commands use its blocking facade, re-exported here.

use std::path::PathBuf;

use tresor_client::ClientConfig;
pub use tresor_client::blocking::Client;
pub use tresor_client::{ApiError, ClientError, ConfigError, Overrides, Request, TokenChoice};

use crate::env::Env;
use crate::flags::{Kind, Parsed, Spec, flag};

/// The HTTP flags every command accepts.
pub const HTTP_FLAGS: &[Spec] = &[
    flag(
        "address",
        Kind::Str,
        "Address of the server (VAULT_ADDR, default https://127.0.0.1:8200).",
    ),
    flag(
        "ca-cert",
        Kind::Str,
        "PEM file of CA certificates to verify the server with (VAULT_CACERT).",
    ),
    flag(
        "ca-path",
        Kind::Str,
        "Directory of PEM CA certificates (VAULT_CAPATH).",
    ),
    flag(
        "client-cert",
        Kind::Str,
        "PEM client certificate for TLS authentication (VAULT_CLIENT_CERT).",
    ),
    flag(
        "client-key",
        Kind::Str,
        "PEM private key for the client certificate (VAULT_CLIENT_KEY).",
    ),
    flag(
        "tls-skip-verify",
        Kind::Bool,
        "Do not verify the server's certificate (VAULT_SKIP_VERIFY). Insecure.",
    ),
    flag(
        "tls-server-name",
        Kind::Str,
        "Name to verify the server's certificate against (VAULT_TLS_SERVER_NAME).",
    ),
    flag(
        "namespace",
        Kind::Str,
        "Namespace sent as X-Vault-Namespace (VAULT_NAMESPACE).",
    ),
    flag("ns", Kind::Str, "Alias of -namespace."),
    flag(
        "wrap-ttl",
        Kind::Duration,
        "Wrap the response in a cubbyhole token with this TTL (VAULT_WRAP_TTL).",
    ),
    flag(
        "header",
        Kind::Map,
        "Extra request header as key=value; may repeat.",
    ),
    flag(
        "policy-override",
        Kind::Bool,
        "Override soft-mandatory policy checks.",
    ),
];

/// The flags' values as overrides: only flags actually given override the environment.
pub fn overrides(p: &Parsed) -> Overrides {
    let path = |name: &str| p.str(name).map(PathBuf::from);
    Overrides {
        address: p.str("address").map(str::to_string),
        namespace: p.str("namespace").or(p.str("ns")).map(str::to_string),
        wrap_ttl: p.str("wrap-ttl").map(str::to_string),
        ca_cert: path("ca-cert"),
        ca_path: path("ca-path"),
        client_cert: path("client-cert"),
        client_key: path("client-key"),
        tls_skip_verify: p
            .is_set("tls-skip-verify")
            .then(|| p.bool("tls-skip-verify")),
        tls_server_name: p.str("tls-server-name").map(str::to_string),
        headers: p.map("header").into_iter().collect(),
        policy_override: Some(p.bool("policy-override")),
        ..Overrides::default()
    }
}

/// The client configuration for a command: flags, then `VAULT_*` variables, then Vault's
/// defaults; the token from `VAULT_TOKEN`, else the token helper file.
pub fn config(env: &dyn Env, p: &Parsed) -> Result<ClientConfig, ConfigError> {
    let mut cfg = ClientConfig::load(env, &overrides(p))?;
    cfg.user_agent = concat!("tresor-cli/", env!("CARGO_PKG_VERSION")).to_string();
    Ok(cfg)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::env::MapEnv;
    use crate::flags;

    fn parsed(args: &[&str]) -> Parsed {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        flags::parse(&[HTTP_FLAGS], &args).unwrap()
    }

    #[test]
    fn config_precedence_flags_env_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let env = MapEnv::new(Some(dir.path()));
        let cfg = config(&env, &parsed(&[])).unwrap();
        assert_eq!(cfg.address, tresor_client::DEFAULT_ADDRESS);
        assert!(cfg.token.is_none());
        assert!(!cfg.tls.skip_verify);
        assert_eq!(cfg.timeout, Duration::from_secs(60));
        assert!(cfg.user_agent.starts_with("tresor-cli/"));

        let env = env
            .with("VAULT_ADDR", "http://10.0.0.1:8200")
            .with("VAULT_NAMESPACE", "ns1")
            .with("VAULT_SKIP_VERIFY", "true")
            .with("VAULT_WRAP_TTL", "5m")
            .with("VAULT_CACERT", "/env/ca.pem")
            .with("VAULT_CLIENT_TIMEOUT", "5");
        let cfg = config(&env, &parsed(&[])).unwrap();
        assert_eq!(cfg.address, "http://10.0.0.1:8200");
        assert_eq!(cfg.namespace.as_deref(), Some("ns1"));
        assert!(cfg.tls.skip_verify);
        assert_eq!(cfg.wrap_ttl.as_deref(), Some("5m"));
        assert_eq!(cfg.timeout, Duration::from_secs(5));
        assert!(!cfg.policy_override);

        let cfg = config(
            &env,
            &parsed(&[
                "-address=http://127.0.0.1:1",
                "-tls-skip-verify=false",
                "-ns=x",
                "-wrap-ttl=1m",
                "-ca-cert=/flag/ca.pem",
                "-client-cert=/flag/cert.pem",
                "-client-key=/flag/key.pem",
                "-header=X-Custom=yes",
                "-tls-server-name=vault.flag",
                "-policy-override",
            ]),
        )
        .unwrap();
        assert_eq!(cfg.address, "http://127.0.0.1:1");
        assert!(!cfg.tls.skip_verify);
        assert_eq!(cfg.namespace.as_deref(), Some("x"));
        assert_eq!(cfg.wrap_ttl.as_deref(), Some("1m"));
        assert_eq!(cfg.tls.ca_cert, Some(PathBuf::from("/flag/ca.pem")));
        assert_eq!(cfg.tls.client_cert, Some(PathBuf::from("/flag/cert.pem")));
        assert_eq!(cfg.tls.client_key, Some(PathBuf::from("/flag/key.pem")));
        assert_eq!(
            cfg.headers,
            vec![("X-Custom".to_string(), "yes".to_string())]
        );
        assert!(cfg.policy_override);
        assert_eq!(cfg.tls.server_name.as_deref(), Some("vault.flag"));
        let cfg = config(&env, &parsed(&["-namespace=long", "-ns=short"])).unwrap();
        assert_eq!(
            cfg.namespace.as_deref(),
            Some("long"),
            "-namespace wins over -ns"
        );

        let bad = MapEnv::new(None).with("VAULT_SKIP_VERIFY", "sure");
        assert!(matches!(
            config(&bad, &parsed(&[])),
            Err(ConfigError::Variable {
                name: "VAULT_SKIP_VERIFY",
                ..
            })
        ));
        // A flag settles the question before the malformed variable is read.
        assert!(config(&bad, &parsed(&["-tls-skip-verify"])).is_ok());
    }

    #[test]
    fn token_from_env_then_helper_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(".vault-token"), "from-file\n").unwrap();
        let env = MapEnv::new(Some(dir.path()));
        let cfg = config(&env, &parsed(&[])).unwrap();
        assert_eq!(cfg.token.as_deref().map(String::as_str), Some("from-file"));
        let env = env.with("VAULT_TOKEN", "from-env");
        let cfg = config(&env, &parsed(&[])).unwrap();
        assert_eq!(cfg.token.as_deref().map(String::as_str), Some("from-env"));
        assert!(!format!("{cfg:?}").contains("from-env"));
    }
}
