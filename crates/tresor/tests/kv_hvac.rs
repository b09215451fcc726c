//! hvac's KV version 2 calls (`client.secrets.kv.v2`, and `client.secrets.kv`'s default
//! version switch) and `hvac.Client`'s own top-level calls (read, write, write_data, list,
//! delete, the token calls, login, logout, auth_cubbyhole, seal status, wrap_ttl) against
//! `tresor server -dev`. The script (`kv_hvac.py`, next to this file) checks every answer
//! against Vault's documented behaviour: statuses (200 vs 204), the envelope, field names and
//! types, the 404 body of a deleted or destroyed version and the check-and-set error texts.

mod common;

use std::time::Duration;

use common::{Server, client_script, free_port};

#[test]
fn hvac_kv_v2_and_client_calls_work_against_tresor() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start_dev(dir.path(), free_port());
    // hvac takes the address and the token from the environment, as its documentation
    // shows; HOME keeps a developer's ~/.vault-token out of it.
    let home = s.home.display().to_string();
    client_script(
        &s,
        include_str!("kv_hvac.py"),
        dir.path(),
        &[("VAULT_TOKEN", "root"), ("HOME", &home)],
        Duration::from_secs(90),
        &[
            "mount",
            "configure/read_configuration",
            "create_or_update_secret with cas",
            "read_secret_version/read_secret",
            "typed values",
            "cas_required on the mount",
            "cas_required on the secret",
            "patch",
            "delete_latest_version_of_secret",
            "patch of a deleted version",
            "delete_secret_versions/undelete_secret_versions",
            "destroy_secret_versions",
            "version calls on an absent secret",
            "list_secrets",
            "read_secret_metadata",
            "update_metadata",
            "max_versions prunes",
            "delete_version_after",
            "metadata before data",
            "delete_metadata_and_all_versions",
            "subkeys",
            "policies",
            "default_kv_version",
            "read/write/write_data/list/delete",
            "write with response",
            "wrap_ttl",
            "lookup_token/renew_token/revoke_token",
            "token accessor/orphan",
            "is_authenticated",
            "logout",
            "login",
            "auth_cubbyhole",
            "seal_status/is_sealed/is_initialized",
            "url/token properties",
        ],
    );
}
