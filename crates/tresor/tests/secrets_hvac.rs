//! hvac's `client.secrets.transit`, `client.secrets.ssh` and `client.secrets.database` calls
//! against `tresor server -dev`, one test per engine. The script (`secrets_hvac.py`, next to
//! this file) drives every method hvac has for the engine and checks each answer against
//! Vault's documented behaviour and against the thing itself: transit ciphertext opened with
//! the exported key and signatures verified with the public key (Python's `cryptography`),
//! SSH certificates read back by `ssh-keygen -L`, database credentials used with `psql`
//! against a real PostgreSQL 15 started on 127.0.0.1 (as `database.rs` does).

mod common;

use std::time::Duration;

use common::pg::Postgres;
use common::{Server, client_script, free_port};

/// Runs the script for `engine` against a fresh dev server; asserts every step printed OK.
fn run_script(engine: &str, env: &[(&str, String)], steps: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start_dev(dir.path(), free_port());
    let work = dir.path().join("hvac");
    std::fs::create_dir_all(&work).unwrap();
    let workdir = work.display().to_string();
    let mut all = vec![
        ("VAULT_TOKEN", "root"),
        ("ENGINE", engine),
        ("WORKDIR", workdir.as_str()),
    ];
    all.extend(env.iter().map(|(k, v)| (*k, v.as_str())));
    client_script(
        &s,
        include_str!("secrets_hvac.py"),
        dir.path(),
        &all,
        Duration::from_secs(300),
        steps,
    );
}

#[test]
fn hvac_transit_calls_work_against_tresor() {
    run_script(
        "transit",
        &[],
        &[
            "create_key/read_key for every key type",
            "list_keys",
            "encrypt_data/decrypt_data",
            "encrypt_data/decrypt_data batch_input",
            "create_key convergent/derived",
            "encrypt_data upsert",
            "rotate_key/rewrap_data",
            "update_key_configuration",
            "trim_key",
            "delete_key",
            "export_key/generate_hmac",
            "generate_data_key",
            "generate_random_bytes/hash_data",
            "sign_data/verify_signed_data",
            "backup_key/restore_key",
        ],
    );
}

#[test]
fn hvac_ssh_calls_work_against_tresor() {
    run_script(
        "ssh",
        &[],
        &[
            "submit_ca_information/read_public_key",
            "delete_ca_information/submit_ca_information import",
            "create_role/read_role/list_roles",
            "sign_ssh_key",
            "generate_ssh_credentials/verify_ssh_otp/zeroaddress/list_roles_by_ip",
            "create_or_update_key/delete_key removed",
            "delete_role",
        ],
    );
}

#[test]
fn hvac_database_calls_work_against_tresor_and_postgresql() {
    let pgdir = tempfile::tempdir().unwrap();
    let admin_pw = "admin-initial-pw";
    let pg = Postgres::start(pgdir.path(), admin_pw);
    pg.psql("postgres", "CREATE DATABASE app");
    pg.psql(
        "app",
        "CREATE SCHEMA data; CREATE TABLE data.items (id int); INSERT INTO data.items VALUES (1), (2);
         CREATE ROLE svc WITH LOGIN PASSWORD 'svc-initial';",
    );
    run_script(
        "database",
        &[
            ("PGPORT", pg.port.to_string()),
            ("PGSOCKDIR", pg.dir.display().to_string()),
            ("PGADMIN_PW", admin_pw.to_owned()),
        ],
        &[
            "configure/read_connection/list_connections/reset_connection",
            "create_role/read_role/list_roles",
            "generate_credentials",
            "create_static_role/read_static_role/list_static_roles/get_static_credentials",
            "rotate_static_role_credentials",
            "rotate_root_credentials",
            "delete_static_role/delete_role/delete_connection",
        ],
    );
    drop(pg);
}
