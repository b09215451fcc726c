//! Issue 13: hvac's `client.secrets.identity` calls (entities, aliases, groups, group aliases,
//! lookups, merge, deletes) against `tresor server -dev`. The script is `identity_hvac.py`.

mod common;

use std::time::Duration;

use common::{Server, client_script, free_port};

#[test]
fn hvac_identity_calls_work_against_tresor() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start_dev(dir.path(), free_port());
    client_script(
        &s,
        include_str!("identity_hvac.py"),
        dir.path(),
        &[("VAULT_TOKEN", "root")],
        Duration::from_secs(60),
        &[
            "create_or_update_entity/read_entity",
            "update_entity",
            "entity by name/list_entities",
            "entity aliases",
            "lookup_entity",
            "groups",
            "external groups and group aliases",
            "aliases without canonical_id get an entity or group of their own",
            "configure_tokens_backend",
            "merge_entities",
            "bad input is a 400",
            "deletes",
        ],
    );
}
