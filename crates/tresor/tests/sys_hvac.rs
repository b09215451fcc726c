//! hvac's `client.sys` calls, its core auth methods (`client.auth.token`, `userpass`, `cert`)
//! and `client.secrets.kv.v1` against Tresor, each answer checked against Vault's documented
//! behaviour by `sys_hvac.py` (next to this file). Two parts run on `tresor server -dev`; the
//! seal lifecycle (init, unseal, seal, generate-root, rekey with verification and to a PGP key
//! with a backup) and the cert login need a real server: a fresh embedded store behind a TLS
//! listener.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{Out, Server, client_script, free_port, run};

/// Runs one part of the script against `s`, failing with the script's and the server's output.
fn hvac_part(s: &Server, part: &str, work: &Path, env: &[(&str, &str)], steps: &[&str]) {
    let workdir = work.display().to_string();
    let mut all = vec![("PART", part), ("WORKDIR", workdir.as_str())];
    all.extend_from_slice(env);
    client_script(
        s,
        include_str!("sys_hvac.py"),
        work,
        &all,
        Duration::from_secs(120),
        steps,
    );
}

fn sh(dir: &Path, script: &str) -> Out {
    run(Command::new("sh").current_dir(dir).arg("-c").arg(script))
}

/// A CA for client certificates (`client-ca.pem`) and, signed by it, a client certificate for
/// "hvac client" with the client auth usage (`client.pem`, `client.key`).
fn client_pki(dir: &Path) {
    sh(
        dir,
        "set -e\n\
         openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
           -keyout client-ca.key -out client-ca.pem -days 2 -subj '/CN=hvac client ca'\n\
         openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
           -keyout client.key -out client.csr -subj '/CN=hvac client'\n\
         printf 'extendedKeyUsage=clientAuth\\nkeyUsage=digitalSignature\\n' > client.ext\n\
         openssl x509 -req -in client.csr -CA client-ca.pem -CAkey client-ca.key \
           -CAcreateserial -out client.pem -days 1 -extfile client.ext",
    )
    .expect(0, "client certificates");
}

#[test]
fn hvac_sys_calls_match_vault() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start_dev(dir.path(), free_port());
    let work = dir.path().join("hvac");
    std::fs::create_dir_all(&work).unwrap();
    hvac_part(
        &s,
        "sys",
        &work,
        &[("VAULT_TOKEN", "root")],
        &[
            "enable_secrets_engine/list_mounted_secrets_engines",
            "read_mount_configuration/tune_mount_configuration",
            "move_backend/disable_secrets_engine",
            "enable_auth_method/list_auth_methods/read_auth_method_tuning/tune_auth_method",
            "read_policy/create_or_update_policy/list_policies/delete_policy",
            "sys/policies/acl",
            "get_capabilities",
            "audit",
            "health/init/leader/key",
            "namespaces/raft",
            "quotas",
            "wrap/unwrap",
            "leases",
            "kv v1",
        ],
    );
}

#[test]
fn hvac_token_userpass_and_cert_calls_match_vault() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start_dev(dir.path(), free_port());
    let work = dir.path().join("hvac");
    std::fs::create_dir_all(&work).unwrap();
    client_pki(&work);
    hvac_part(
        &s,
        "auth",
        &work,
        &[("VAULT_TOKEN", "root")],
        &[
            "create/lookup/lookup_self/lookup_accessor/renew/renew_accessor",
            "renew_self/revoke_self",
            "create_orphan/create variants",
            "revoke/revoke_accessor/revoke_and_orphan_children",
            "roles/tidy",
            "userpass",
            "cert roles",
        ],
    );
}

#[test]
fn hvac_init_seal_unseal_generate_root_rekey_and_cert_login() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    sh(
        dir,
        "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
         -keyout listener.key -out listener.crt -days 2 -subj /CN=localhost \
         -addext subjectAltName=IP:127.0.0.1",
    )
    .expect(0, "listener certificate");
    let work = dir.join("hvac");
    std::fs::create_dir_all(&work).unwrap();
    client_pki(&work);
    let port = free_port();
    let config = format!(
        "storage \"embedded\" {{\n  path = \"data\"\n}}\n\n\
         listener \"tcp\" {{\n  address = \"127.0.0.1:{port}\"\n  tls_cert_file = \"listener.crt\"\n  tls_key_file = \"listener.key\"\n}}\n\n\
         disable_mlock = true\n"
    );
    let cacert = dir.join("listener.crt");
    let s = Server::start_named(dir, port, "config.hcl", &config, Some(cacert.clone()));
    let path = |name: &str| work.join(name).to_string_lossy().into_owned();
    // An operator's PGP key for the rekey with a backup.
    let operator = common::gpg::Keyring::new(dir, "operator");
    hvac_part(
        &s,
        "lifecycle",
        &work,
        &[
            ("VAULT_CACERT", &cacert.to_string_lossy()),
            ("CLIENT_CERT", &path("client.pem")),
            ("CLIENT_KEY", &path("client.key")),
            ("CLIENT_CA", &path("client-ca.pem")),
            ("GNUPGHOME", &operator.home().to_string_lossy()),
            ("PGP_KEY_B64", &operator.public_b64()),
        ],
        &[
            "initialize",
            "submit_unseal_key(s)/read_seal_status",
            "seal/unseal",
            "generate_root",
            "rekey/rekey_verify",
            "rekey with pgp_keys/read_backup_keys",
            "step_down",
            "cert login",
        ],
    );
}
