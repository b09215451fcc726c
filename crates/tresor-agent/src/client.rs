//! The server client the agent's parts share, configured from the `vault` block over the
//! `VAULT_*` variables (the block wins, as in Vault's agent).

use tresor_client::{Client, ClientConfig, Overrides, env::ProcessEnv};

use crate::config::Vault;

/// Builds the client; a bad address or TLS file is reported here, at start.
pub fn build(v: &Vault) -> Result<Client, String> {
    let over = Overrides {
        address: v.address.clone(),
        ca_cert: v.ca_cert.clone(),
        ca_path: v.ca_path.clone(),
        client_cert: v.client_cert.clone(),
        client_key: v.client_key.clone(),
        tls_skip_verify: v.tls_skip_verify,
        tls_server_name: v.tls_server_name.clone(),
        max_retries: Some(v.num_retries),
        ..Overrides::default()
    };
    let mut cfg = ClientConfig::load(&ProcessEnv, &over).map_err(|e| format!("vault: {e}"))?;
    // The agent's token comes from auto-auth only, never from the environment or a file.
    cfg.token = None;
    cfg.wrap_ttl = None;
    cfg.user_agent = concat!("tresor-agent/", env!("CARGO_PKG_VERSION")).to_string();
    Client::new(cfg).map_err(|e| format!("vault: {e}"))
}
