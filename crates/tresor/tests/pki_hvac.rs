//! Issue 5, "done when" 4 (hvac half): hvac's `client.secrets.pki` calls against
//! `tresor server -dev`. The script (`pki_hvac.py`, next to this file) drives every PKI method
//! hvac has and checks each answer against the certificates themselves.

mod common;

use std::process::Command;
use std::time::Duration;

use common::{Server, clean_command, free_port, run_for};

#[test]
fn hvac_pki_calls_work_against_tresor() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start_dev(dir.path(), free_port());
    let work = dir.path().join("hvac");
    std::fs::create_dir_all(&work).unwrap();
    let mut cmd: Command = clean_command("python3");
    cmd.arg("-")
        .env("VAULT_ADDR", &s.addr)
        .env("VAULT_TOKEN", "root")
        .env("WORKDIR", &work);
    let o = run_for(
        &mut cmd,
        Some(include_str!("pki_hvac.py").as_bytes()),
        Duration::from_secs(60),
    );
    assert_eq!(
        o.code,
        0,
        "hvac script failed\n{o}\n--- server log\n{}",
        s.log()
    );
    assert!(o.stdout.contains("ALL OK"), "{o}");
    for step in [
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
    ] {
        assert!(
            o.stdout.contains(&format!("OK {step}\n")),
            "{step} missing\n{o}"
        );
    }
}
