//! Every node-vault command a Vault Community server serves, end to end (node_vault_all.js):
//! init, unseal, seal and health's codes on a fresh server (embedded storage, not dev),
//! generate-root, mounts and remount, generic read/write/list/delete/update, policies, audit
//! devices, tokens and token roles, response wrapping and unwrap, userpass, AppRole, JWT (a
//! JWT the script signs itself), TLS certificate, LDAP (a real slapd) and Kubernetes (a
//! TokenReview endpoint the script serves) logins, transit, database credentials
//! from a real PostgreSQL 15 with renew/revoke/revoke-prefix, rotate, leader and step-down.
//! Everything runs on 127.0.0.1 and is stopped by PID when the test ends. `.ci/run` installs
//! node-vault into `.ci/node/node_modules` and PostgreSQL 15.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::ldap::{BASE, start_slapd};
use common::pg::Postgres;
use common::{Out, Server, free_port, run, run_for};

fn sh(dir: &Path, script: &str) -> Out {
    run(Command::new("sh").current_dir(dir).arg("-c").arg(script))
}

#[test]
fn node_vault_calls_every_command_vault_community_serves() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let modules = root.join(".ci/node/node_modules");
    assert!(
        modules.join("node-vault/package.json").exists(),
        "node-vault is not installed: run .ci/run (it installs it into .ci/node)"
    );
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    // PostgreSQL runs as the postgres user in a temporary directory of its own.
    let pg_tmp = tempfile::tempdir().unwrap();
    let pg = Postgres::start(pg_tmp.path(), "pw");

    // The TLS listener's certificate, and a client certificate for the cert auth method.
    sh(
        dir,
        "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
         -keyout listener.key -out listener.crt -days 2 -subj /CN=localhost \
         -addext subjectAltName=IP:127.0.0.1 && \
         openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
         -keyout client.key -out client.crt -days 2 -subj /CN=web \
         -addext extendedKeyUsage=clientAuth",
    )
    .expect(0, "certificates");
    // A CA and the leaf it signs for the script's stand-in Kubernetes API server (rustls takes
    // no CA certificate as a server's own).
    std::fs::write(
        dir.join("api.cnf"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n",
    )
    .unwrap();
    sh(
        dir,
        "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
         -subj /CN=k8s-ca -keyout k8s-ca.key -out k8s-ca.crt && \
         openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=127.0.0.1 \
         -keyout api.key -out api.csr && \
         openssl x509 -req -in api.csr -CA k8s-ca.crt -CAkey k8s-ca.key -CAcreateserial \
         -days 2 -extfile api.cnf -out api.crt",
    )
    .expect(0, "API server certificate");
    let slapd = start_slapd(&dir.join("ldap"));

    let (port, tls_port) = (free_port(), free_port());
    let config = format!(
        "storage \"embedded\" {{\n  path = \"data\"\n}}\n\n\
         listener \"tcp\" {{\n  address = \"127.0.0.1:{port}\"\n  tls_disable = true\n}}\n\n\
         listener \"tcp\" {{\n  address = \"127.0.0.1:{tls_port}\"\n  tls_cert_file = \"listener.crt\"\n  tls_key_file = \"listener.key\"\n}}\n\n\
         disable_mlock = true\n"
    );
    let s = Server::start(dir, port, &config);
    assert_eq!(s.seal_status()["initialized"], false, "a fresh server");

    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/node_vault_all.js");
    let o = run_for(
        Command::new("node")
        .arg(&script)
        .env("VAULT_ADDR", &s.addr)
        .env("VAULT_TLS_ADDR", format!("https://127.0.0.1:{tls_port}"))
        .env("NV_TMP", dir)
        .env(
            "NV_PG_URL",
            format!(
                "postgresql://{{{{username}}}}:{{{{password}}}}@127.0.0.1:{}/postgres?sslmode=disable",
                pg.port
            ),
        )
        .env("NV_LDAP_URL", format!("ldap://127.0.0.1:{}", slapd.port))
        .env("NV_LDAP_BASE", BASE)
        .env("NV_K8S_CA", dir.join("k8s-ca.crt"))
        .env("NODE_PATH", &modules),
        None,
        Duration::from_secs(180),
    );
    assert_eq!(o.code, 0, "node-vault script failed\n{o}\n{}", s.log());
    assert_eq!(o.stdout.trim(), "ok", "{o}");
}
