//! Issue 5, "done when" 4 (hvac half): hvac's `client.secrets.pki` calls against
//! `tresor server -dev`. The script (`pki_hvac.py`, next to this file) drives every PKI method
//! hvac has and checks each answer against the certificates themselves.

mod common;

use std::time::Duration;

use common::{Server, client_script, free_port};

#[test]
fn hvac_pki_calls_work_against_tresor() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start_dev(dir.path(), free_port());
    let work = dir.path().join("hvac");
    std::fs::create_dir_all(&work).unwrap();
    let workdir = work.display().to_string();
    client_script(
        &s,
        include_str!("pki_hvac.py"),
        dir.path(),
        &[("VAULT_TOKEN", "root"), ("WORKDIR", &workdir)],
        Duration::from_secs(60),
        &[
            "generate_root",
            "read_ca_certificate",
            "set_urls/read_urls",
            "generate_certificate refuses other domains",
            "sign_certificate",
            "sign_verbatim",
            "revoke_certificate/read_crl",
            "tidy",
            "sign_self_issued",
            "revoke_issuer/delete_issuer",
            "delete_role/delete_root",
        ],
    );
}
