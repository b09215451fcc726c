//! hvac's `client.secrets.transit`, `client.secrets.ssh` and `client.secrets.database` calls
//! against `tresor server -dev`, one test per engine. The script (`secrets_hvac.py`, next to
//! this file) drives every method hvac has for the engine and checks each answer against
//! Vault's documented behaviour and against the thing itself: transit ciphertext opened with
//! the exported key and signatures verified with the public key (Python's `cryptography`),
//! SSH certificates read back by `ssh-keygen -L`, database credentials used with `psql`
//! against a real PostgreSQL 15 started on 127.0.0.1 (as `database.rs` does).

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{Server, clean_command, free_port, run, run_for};

const PG_BIN: &str = "/usr/lib/postgresql/15/bin";

/// Runs the script for `engine` against a fresh dev server; asserts every step printed OK.
fn run_script(engine: &str, env: &[(&str, String)], steps: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start_dev(dir.path(), free_port());
    let work = dir.path().join("hvac");
    std::fs::create_dir_all(&work).unwrap();
    let mut cmd: Command = clean_command("python3");
    cmd.arg("-")
        .env("VAULT_ADDR", &s.addr)
        .env("VAULT_TOKEN", "root")
        .env("ENGINE", engine)
        .env("WORKDIR", &work);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let o = run_for(
        &mut cmd,
        Some(include_str!("secrets_hvac.py").as_bytes()),
        Duration::from_secs(300),
    );
    assert_eq!(
        o.code,
        0,
        "hvac {engine} script failed\n{o}\n--- server log\n{}",
        s.log()
    );
    assert!(o.stdout.contains("ALL OK"), "{o}");
    for step in steps {
        assert!(
            o.stdout.contains(&format!("OK {step}\n")),
            "{step} missing\n{o}"
        );
    }
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

/// A PostgreSQL 15 cluster on 127.0.0.1 (TCP with scram-sha-256 for Tresor and the
/// generated users; the local socket with trust for the test's own checks), stopped by its
/// postmaster's PID when dropped.
struct Postgres {
    dir: std::path::PathBuf,
    port: u16,
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let pid = std::fs::read_to_string(self.dir.join("pg/postmaster.pid"))
            .ok()
            .and_then(|t| t.lines().next().map(str::to_owned));
        if let Some(pid) = pid {
            let _ = Command::new("kill").args(["-INT", &pid]).status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while Path::new(&format!("/proc/{pid}")).exists() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            if Path::new(&format!("/proc/{pid}")).exists() {
                let _ = Command::new("kill").args(["-KILL", &pid]).status();
            }
        }
    }
}

fn start_postgres(dir: &Path, admin_pw: &str) -> Postgres {
    assert!(
        Path::new(PG_BIN).join("initdb").exists(),
        "PostgreSQL 15 is not installed (apt-get install postgresql; .ci/run does)"
    );
    let t = dir.display().to_string();
    std::fs::write(dir.join("pw"), format!("{admin_pw}\n")).unwrap();
    run(Command::new("chown").args(["-R", "postgres", &t])).expect(0, "chown");
    let o = run(Command::new("runuser").args([
        "-u",
        "postgres",
        "--",
        &format!("{PG_BIN}/initdb"),
        "-D",
        &format!("{t}/pg"),
        "-U",
        "admin",
        &format!("--pwfile={t}/pw"),
        "--auth-local=trust",
        "--auth-host=scram-sha-256",
        "--no-sync",
    ]));
    assert_eq!(o.code, 0, "initdb\n{o}");
    let port = free_port();
    let o = run(Command::new("runuser").args([
        "-u",
        "postgres",
        "--",
        &format!("{PG_BIN}/pg_ctl"),
        "-D",
        &format!("{t}/pg"),
        "-l",
        &format!("{t}/pg.log"),
        "-w",
        "-t",
        "20",
        "-o",
        &format!("-c listen_addresses=127.0.0.1 -p {port} -k {t} -c fsync=off"),
        "start",
    ]));
    assert_eq!(o.code, 0, "pg_ctl start\n{o}");
    let pg = Postgres {
        dir: dir.to_path_buf(),
        port,
    };
    for (db, sql) in [
        ("postgres", "CREATE DATABASE app"),
        (
            "app",
            "CREATE SCHEMA data; CREATE TABLE data.items (id int); INSERT INTO data.items VALUES (1), (2);
             CREATE ROLE svc WITH LOGIN PASSWORD 'svc-initial';",
        ),
    ] {
        let o = run(Command::new("psql").args([
            "-X",
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            "-h",
            &t,
            "-p",
            &port.to_string(),
            "-U",
            "admin",
            "-d",
            db,
            "-c",
            sql,
        ]));
        assert_eq!(o.code, 0, "setup SQL {sql:?}\n{o}");
    }
    pg
}

#[test]
fn hvac_database_calls_work_against_tresor_and_postgresql() {
    let pgdir = tempfile::tempdir().unwrap();
    let admin_pw = "admin-initial-pw";
    let pg = start_postgres(pgdir.path(), admin_pw);
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
