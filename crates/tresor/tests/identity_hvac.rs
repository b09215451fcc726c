//! Issue 13: hvac's `client.secrets.identity` calls (entities, aliases, groups, group aliases,
//! lookups, merge, deletes) against `tresor server -dev`. The script is `identity_hvac.py`.

mod common;

use std::process::Command;
use std::time::Duration;

use common::{Server, clean_command, free_port, run_for};

#[test]
fn hvac_identity_calls_work_against_tresor() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start_dev(dir.path(), free_port());
    let mut cmd: Command = clean_command("python3");
    cmd.arg("-")
        .env("VAULT_ADDR", &s.addr)
        .env("VAULT_TOKEN", "root");
    let o = run_for(
        &mut cmd,
        Some(include_str!("identity_hvac.py").as_bytes()),
        Duration::from_secs(60),
    );
    assert_eq!(
        o.code,
        0,
        "hvac script failed\n{o}\n--- server log\n{}",
        s.log()
    );
    for step in [
        "create_or_update_entity/read_entity",
        "update_entity",
        "entity by name/list_entities",
        "entity aliases",
        "lookup_entity",
        "groups",
        "external groups and group aliases",
        "merge_entities",
        "bad input is a 400",
        "deletes",
    ] {
        assert!(
            o.stdout.contains(&format!("OK {step}\n")),
            "{step} missing\n{o}"
        );
    }
    assert!(o.stdout.contains("ALL OK"), "{o}");
}
