//! ACL policies: `tresor_policy::parse_policy` on HCL (Vault's HCL 1 forms included) and
//! JSON; a policy that parses is rendered for an entity (identity templates), compiled into
//! an `Acl` and asked about a few paths. The same text also goes through the identity
//! template checker and renderer (`tresor_sdk::identity::{validate, render}`).

use std::collections::BTreeMap;
use std::sync::{Arc, LazyLock};

use serde_json::json;
use tresor_policy::{Acl, parse_policy};
use tresor_sdk::Operation;
use tresor_sdk::identity::{AliasInfo, EntityInfo, GroupInfo, render, validate};

static ENTITY: LazyLock<EntityInfo> = LazyLock::new(|| EntityInfo {
    id: "e-1".into(),
    name: "alice".into(),
    metadata: BTreeMap::from([("team".into(), "ops".into())]),
    aliases: vec![AliasInfo {
        id: "a-1".into(),
        name: "alice".into(),
        mount_accessor: "auth_userpass_1".into(),
        mount_path: "auth/userpass/".into(),
        mount_type: "userpass".into(),
        metadata: BTreeMap::from([("k".into(), "v".into())]),
        custom_metadata: BTreeMap::from([("c".into(), "d".into())]),
    }],
    groups: vec![GroupInfo {
        id: "g-1".into(),
        name: "admins".into(),
    }],
    disabled: false,
});

/// The `policy` target: one input.
pub fn policy(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = validate(text);
    let _ = render(text, &ENTITY);
    let Ok(policy) = parse_policy("fuzz", text) else {
        return;
    };
    let (rendered, _failed) = policy.render(Some(&ENTITY));
    let acl = Acl::new(&[Arc::new(rendered)]);
    let body = json!({"ttl": "5m", "common_name": "x"});
    for path in [
        "secret/data/alice",
        "sys/policy/x",
        "auth/token/create",
        "a/b/c/",
    ] {
        for op in [
            Operation::Read,
            Operation::Update,
            Operation::List,
            Operation::Delete,
        ] {
            let _ = acl.allow_operation(op, path, body.as_object());
        }
        let _ = acl.capabilities(path);
    }
    let _ = tresor_policy::resultant_acl(&[Arc::new(policy)]);
}
