//! Issue 13, the identity store: a login's alias resolves to an entity (created on first
//! login), group policies apply to live tokens at once, templated policies render per entity,
//! merges join two logins into one entity, and bad identity input is a 400 that stores nothing.

mod common;

use std::sync::Arc;

use common::{TestCore, dev_core_with};
use serde_json::{Map, Value, json};
use tresor_core::{CoreError, CoreRequest};
use tresor_sdk::Operation::{Delete, List, Read, Update};
use tresor_sdk::{
    Alias, Auth, LogicalBackend, LogicalError, Request, Response, Result, SpecialPaths,
};

/// A method whose login names the user in the request (`user`, optional `groups`, and the
/// token's `policies`).
struct Named;

#[async_trait::async_trait]
impl LogicalBackend for Named {
    async fn handle(&self, req: Request) -> Result<Option<Response>> {
        if req.path != "login" {
            return Err(LogicalError::UnsupportedPath);
        }
        let user = req
            .data
            .get("user")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        let groups = req
            .data
            .get("groups")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(|g| Alias {
                        name: g.to_owned(),
                        ..Default::default()
                    })
                    .collect()
            })
            .unwrap_or_default();
        let policies = req
            .data
            .get("policies")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        Ok(Some(Response {
            auth: Some(Auth {
                policies,
                display_name: user.clone(),
                renewable: true,
                alias: Some(Alias {
                    name: user.clone(),
                    metadata: [("team".to_owned(), "red".to_owned())].into(),
                }),
                group_aliases: groups,
                ..Default::default()
            }),
            ..Default::default()
        }))
    }
    fn special_paths(&self) -> SpecialPaths {
        SpecialPaths {
            unauthenticated: vec!["login".into()],
            root: Vec::new(),
        }
    }
    fn help(&self, _path: &str) -> Option<Map<String, Value>> {
        None
    }
}

async fn core() -> TestCore {
    let t =
        dev_core_with(|c| c.register_credential("named", Arc::new(|_| Ok(Arc::new(Named))))).await;
    for m in ["one", "two"] {
        t.ok(
            Update,
            &format!("sys/auth/{m}"),
            json!({"type": "named"}),
            &t.root,
        )
        .await;
    }
    t
}

async fn accessor(t: &TestCore, mount: &str) -> String {
    let d = t.data(Read, "sys/auth", json!({}), &t.root).await;
    d[&format!("{mount}/")]["accessor"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn login(t: &TestCore, mount: &str, user: &str, groups: &[&str]) -> Value {
    let mut body = Map::new();
    body.insert("user".into(), json!(user));
    body.insert("groups".into(), json!(groups));
    let r = t
        .core
        .handle(CoreRequest::new(
            Update,
            format!("auth/{mount}/login"),
            body,
            None,
        ))
        .await
        .unwrap_or_else(|e| panic!("login {user}: {e}"));
    r.auth.expect("auth block")
}

fn tok(a: &Value) -> String {
    a["client_token"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_login_creates_its_entity_once_and_reuses_it() {
    let t = core().await;
    let a1 = login(&t, "one", "alice", &[]).await;
    let id = a1["entity_id"].as_str().unwrap().to_owned();
    assert!(!id.is_empty(), "{a1}");
    let a2 = login(&t, "one", "alice", &[]).await;
    assert_eq!(
        a2["entity_id"],
        id.as_str(),
        "the same alias, the same entity"
    );
    let b = login(&t, "one", "bob", &[]).await;
    assert_ne!(b["entity_id"], id.as_str());
    let e = t
        .data(
            Read,
            &format!("identity/entity/id/{id}"),
            json!({}),
            &t.root,
        )
        .await;
    assert_eq!(e["aliases"][0]["name"], "alice");
    assert_eq!(
        e["aliases"][0]["mount_accessor"],
        accessor(&t, "one").await.as_str()
    );
    assert_eq!(e["aliases"][0]["mount_path"], "auth/one/");
    assert_eq!(e["aliases"][0]["metadata"]["team"], "red");
    let look = t
        .data(
            Update,
            "auth/token/lookup",
            json!({"token": tok(&a1)}),
            &t.root,
        )
        .await;
    assert_eq!(look["entity_id"], id.as_str());
    // Concurrent first logins of one new user make one entity.
    let logins: Vec<_> = (0..8).map(|_| login(&t, "two", "carol", &[])).collect();
    let ids: std::collections::BTreeSet<String> = futures_ids(logins).await;
    assert_eq!(ids.len(), 1, "{ids:?}");
}

/// The entity ids of logins run concurrently (they borrow the core, so on this task).
async fn futures_ids(
    v: Vec<impl std::future::Future<Output = Value>>,
) -> std::collections::BTreeSet<String> {
    futures_join(v)
        .await
        .iter()
        .map(|a| a["entity_id"].as_str().unwrap().to_owned())
        .collect()
}

async fn futures_join<F: std::future::Future<Output = Value>>(v: Vec<F>) -> Vec<Value> {
    let mut pinned: Vec<std::pin::Pin<Box<F>>> = v.into_iter().map(Box::pin).collect();
    let mut done: Vec<Option<Value>> = vec![None; pinned.len()];
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (i, f) in pinned.iter_mut().enumerate() {
            if done[i].is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => done[i] = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    done.into_iter().map(Option::unwrap).collect()
}

#[tokio::test]
async fn a_group_policy_granted_later_applies_to_a_live_token_at_once() {
    let t = core().await;
    t.policy(
        "readers",
        r#"path "secret/data/shared" { capabilities = ["read"] }"#,
    )
    .await;
    t.ok(
        Update,
        "secret/data/shared",
        json!({"data": {"k": "v"}}),
        &t.root,
    )
    .await;
    let a = login(&t, "one", "alice", &[]).await;
    let token = tok(&a);
    let denied = t.req(Read, "secret/data/shared", json!({}), &token).await;
    assert!(
        matches!(denied, Err(CoreError::PermissionDenied)),
        "{denied:?}"
    );
    let g = t
        .data(
            Update,
            "identity/group",
            json!({"name": "team", "policies": ["readers"], "member_entity_ids": [a["entity_id"]]}),
            &t.root,
        )
        .await;
    let read = t.data(Read, "secret/data/shared", json!({}), &token).await;
    assert_eq!(read["data"]["k"], "v");
    let look = t
        .data(Read, "auth/token/lookup-self", json!({}), &token)
        .await;
    assert_eq!(look["identity_policies"], json!(["readers"]));
    // A parent group's policies are inherited.
    t.policy(
        "writers",
        r#"path "secret/data/shared" { capabilities = ["update"] }"#,
    )
    .await;
    t.ok(
        Update,
        "identity/group",
        json!({"name": "parent", "policies": ["writers"], "member_group_ids": [g["id"]]}),
        &t.root,
    )
    .await;
    t.ok(
        Update,
        "secret/data/shared",
        json!({"data": {"k": "w"}}),
        &token,
    )
    .await;
    // A cycle is refused, and nothing changes.
    let parent = t
        .data(
            Update,
            "identity/lookup/group",
            json!({"name": "parent"}),
            &t.root,
        )
        .await;
    let e = t
        .req(
            Update,
            &format!("identity/group/id/{}", g["id"].as_str().unwrap()),
            json!({"member_group_ids": [parent["id"]]}),
            &t.root,
        )
        .await
        .unwrap_err();
    assert!(e.to_string().contains("cyclic"), "{e}");
    // Taking the entity out of the group takes the policies away at once.
    t.ok(
        Update,
        &format!("identity/group/id/{}", g["id"].as_str().unwrap()),
        json!({"member_entity_ids": []}),
        &t.root,
    )
    .await;
    assert!(
        t.req(Read, "secret/data/shared", json!({}), &token)
            .await
            .is_err()
    );
    // A disabled entity's tokens are denied.
    t.ok(
        Update,
        "identity/group/name/team",
        json!({"member_entity_ids": [a["entity_id"]]}),
        &t.root,
    )
    .await;
    t.data(Read, "secret/data/shared", json!({}), &token).await;
    t.ok(
        Update,
        &format!("identity/entity/id/{}", a["entity_id"].as_str().unwrap()),
        json!({"disabled": true}),
        &t.root,
    )
    .await;
    assert!(matches!(
        t.req(Read, "secret/data/shared", json!({}), &token).await,
        Err(CoreError::PermissionDenied)
    ));
}

#[tokio::test]
async fn templated_policies_give_each_user_their_own_path() {
    let t = core().await;
    t.policy(
        "own",
        r#"
path "secret/data/{{identity.entity.name}}/*" { capabilities = ["create", "update", "read"] }
path "secret/data/by-alias/{{identity.entity.aliases.auth/one/.name}}" { capabilities = ["read"] }
path "secret/data/team/{{identity.entity.aliases.auth/one/.metadata.team}}" { capabilities = ["read"] }
path "secret/data/missing/{{identity.entity.metadata.nope}}" { capabilities = ["read"] }
"#,
    )
    .await;
    for who in ["alice", "bob"] {
        t.ok(
            Update,
            "identity/entity",
            json!({"name": who, "policies": ["own"]}),
            &t.root,
        )
        .await;
        let e = t
            .data(
                Update,
                "identity/lookup/entity",
                json!({"name": who}),
                &t.root,
            )
            .await;
        t.ok(Update, "identity/entity-alias", json!({"name": who, "canonical_id": e["id"], "mount_accessor": accessor(&t, "one").await}), &t.root)
            .await;
        t.ok(
            Update,
            &format!("secret/data/by-alias/{who}"),
            json!({"data": {"w": who}}),
            &t.root,
        )
        .await;
    }
    t.ok(
        Update,
        "secret/data/team/red",
        json!({"data": {"t": 1}}),
        &t.root,
    )
    .await;
    let alice = tok(&login(&t, "one", "alice", &[]).await);
    t.ok(
        Update,
        "secret/data/alice/app",
        json!({"data": {"k": 1}}),
        &alice,
    )
    .await;
    assert!(
        t.req(
            Update,
            "secret/data/bob/app",
            json!({"data": {"k": 1}}),
            &alice
        )
        .await
        .is_err()
    );
    assert_eq!(
        t.data(Read, "secret/data/by-alias/alice", json!({}), &alice)
            .await["data"]["w"],
        "alice"
    );
    assert!(
        t.req(Read, "secret/data/by-alias/bob", json!({}), &alice)
            .await
            .is_err()
    );
    t.data(Read, "secret/data/team/red", json!({}), &alice)
        .await;
    // Renaming the entity moves its path at once.
    let e = t
        .data(
            Update,
            "identity/lookup/entity",
            json!({"name": "alice"}),
            &t.root,
        )
        .await;
    t.ok(
        Update,
        &format!("identity/entity/id/{}", e["id"].as_str().unwrap()),
        json!({"name": "alice2"}),
        &t.root,
    )
    .await;
    assert!(
        t.req(
            Update,
            "secret/data/alice/app",
            json!({"data": {"k": 2}}),
            &alice
        )
        .await
        .is_err()
    );
    t.ok(
        Update,
        "secret/data/alice2/app",
        json!({"data": {"k": 2}}),
        &alice,
    )
    .await;
    // A name that would widen the path does not render: "+" is not a wildcard over bob's path.
    t.ok(
        Update,
        &format!("identity/entity/id/{}", e["id"].as_str().unwrap()),
        json!({"name": "+"}),
        &t.root,
    )
    .await;
    assert!(
        t.req(
            Update,
            "secret/data/bob/app",
            json!({"data": {"k": 3}}),
            &alice
        )
        .await
        .is_err()
    );
    assert!(
        t.req(
            Update,
            "secret/data/+/app",
            json!({"data": {"k": 3}}),
            &alice
        )
        .await
        .is_err()
    );
    // A template that names nothing is refused when the policy is written, and not stored.
    let bad = t
        .req(Update, "sys/policies/acl/bad", json!({"policy": r#"path "secret/{{identity.entity.password}}" { capabilities = ["read"] }"#}), &t.root)
        .await
        .unwrap_err();
    assert!(matches!(bad, CoreError::InvalidRequest(_)), "{bad:?}");
    assert!(
        bad.to_string().contains("identity.entity.password"),
        "{bad}"
    );
    let stored = t
        .req(Read, "sys/policies/acl/bad", json!({}), &t.root)
        .await;
    assert!(
        stored.map_or(true, |r| r.response.and_then(|r| r.data).is_none()),
        "the bad policy was not stored"
    );
}

#[tokio::test]
async fn merged_entities_share_one_identity() {
    let t = core().await;
    let a1 = login(&t, "one", "alice", &[]).await;
    let a2 = login(&t, "two", "alice@two", &[]).await;
    assert_ne!(a1["entity_id"], a2["entity_id"]);
    t.policy("p2", r#"path "secret/data/p2" { capabilities = ["read"] }"#)
        .await;
    t.ok(
        Update,
        &format!("identity/entity/id/{}", a2["entity_id"].as_str().unwrap()),
        json!({"policies": ["p2"]}),
        &t.root,
    )
    .await;
    t.ok(Update, "secret/data/p2", json!({"data": {"k": 1}}), &t.root)
        .await;
    t.ok(
        Update,
        "identity/entity/merge",
        json!({"from_entity_ids": [a2["entity_id"]], "to_entity_id": a1["entity_id"]}),
        &t.root,
    )
    .await;
    let again = login(&t, "two", "alice@two", &[]).await;
    assert_eq!(
        again["entity_id"], a1["entity_id"],
        "after the merge both logins share one entity"
    );
    // The first login's live token now has the merged entity's policy.
    t.data(Read, "secret/data/p2", json!({}), &tok(&a1)).await;
    let e = t
        .data(
            Read,
            &format!("identity/entity/id/{}", a1["entity_id"].as_str().unwrap()),
            json!({}),
            &t.root,
        )
        .await;
    assert_eq!(e["aliases"].as_array().unwrap().len(), 2);
    assert_eq!(e["merged_entity_ids"], json!([a2["entity_id"]]));
    // The merged id still names the entity.
    let old = t
        .data(
            Read,
            &format!("identity/entity/id/{}", a2["entity_id"].as_str().unwrap()),
            json!({}),
            &t.root,
        )
        .await;
    assert_eq!(old["id"], a1["entity_id"]);
}

#[tokio::test]
async fn external_groups_follow_the_login() {
    let t = core().await;
    t.policy(
        "ops",
        r#"path "secret/data/ops" { capabilities = ["read"] }"#,
    )
    .await;
    t.ok(
        Update,
        "secret/data/ops",
        json!({"data": {"k": 1}}),
        &t.root,
    )
    .await;
    let g = t
        .data(
            Update,
            "identity/group",
            json!({"name": "ops", "type": "external", "policies": ["ops"]}),
            &t.root,
        )
        .await;
    t.ok(Update, "identity/group-alias", json!({"name": "ldap-ops", "canonical_id": g["id"], "mount_accessor": accessor(&t, "one").await}), &t.root)
        .await;
    let in_ops = tok(&login(&t, "one", "dave", &["ldap-ops"]).await);
    t.data(Read, "secret/data/ops", json!({}), &in_ops).await;
    // The next login without the group takes the entity out of it, for every token.
    let _ = login(&t, "one", "dave", &[]).await;
    assert!(
        t.req(Read, "secret/data/ops", json!({}), &in_ops)
            .await
            .is_err()
    );
    // Members of an external group cannot be set by hand.
    let e = t
        .req(
            Update,
            &format!("identity/group/id/{}", g["id"].as_str().unwrap()),
            json!({"member_entity_ids": ["x"]}),
            &t.root,
        )
        .await
        .unwrap_err();
    assert!(e.to_string().contains("external"), "{e}");
}

#[tokio::test]
async fn bad_identity_input_is_a_clear_400_and_stores_nothing() {
    let t = core().await;
    let acc = accessor(&t, "one").await;
    let cases = [
        (
            "identity/entity-alias",
            json!({"name": "x", "mount_accessor": acc, "canonical_id": "no-such-entity"}),
            "not found",
        ),
        (
            "identity/entity-alias",
            json!({"name": "x", "mount_accessor": "auth_nope_1", "canonical_id": "e"}),
            "mount accessor",
        ),
        (
            "identity/entity",
            json!({"name": "a\u{7}b"}),
            "invalid entity name",
        ),
        (
            "identity/group",
            json!({"name": "g", "type": "sideways"}),
            "invalid group type",
        ),
        (
            "identity/group",
            json!({"name": "g", "member_entity_ids": ["nobody"]}),
            "not found",
        ),
        (
            "identity/lookup/entity",
            json!({}),
            "query parameter not supplied",
        ),
        (
            "identity/lookup/entity",
            json!({"name": "a", "id": "b"}),
            "only one",
        ),
    ];
    for (path, body, want) in cases {
        let e = t
            .req(Update, path, body.clone(), &t.root)
            .await
            .unwrap_err();
        assert!(
            matches!(e, CoreError::InvalidRequest(_)),
            "{path} {body}: {e:?}"
        );
        assert!(e.to_string().contains(want), "{path} {body}: {e}");
    }
    assert!(
        t.req(List, "identity/entity/id", json!({}), &t.root)
            .await
            .is_err(),
        "no entity was stored"
    );
    assert!(
        t.req(List, "identity/group/id", json!({}), &t.root)
            .await
            .is_err(),
        "no group was stored"
    );
    // An alias of the same name on the same mount, and a second alias of one entity on one
    // mount, are refused.
    let e1 = t
        .data(Update, "identity/entity", json!({"name": "e1"}), &t.root)
        .await;
    t.ok(
        Update,
        "identity/entity-alias",
        json!({"name": "n", "mount_accessor": acc, "canonical_id": e1["id"]}),
        &t.root,
    )
    .await;
    let e2 = t
        .data(Update, "identity/entity", json!({"name": "e2"}), &t.root)
        .await;
    let dup = t
        .req(
            Update,
            "identity/entity-alias",
            json!({"name": "n", "mount_accessor": acc, "canonical_id": e2["id"]}),
            &t.root,
        )
        .await
        .unwrap_err();
    assert!(dup.to_string().contains("already in use"), "{dup}");
    let second = t
        .req(
            Update,
            "identity/entity-alias",
            json!({"name": "m", "mount_accessor": acc, "canonical_id": e1["id"]}),
            &t.root,
        )
        .await
        .unwrap_err();
    assert!(second.to_string().contains("already exists"), "{second}");
    // Deleting an entity deletes its alias; the name can be used again.
    t.ok(
        Delete,
        &format!("identity/entity/id/{}", e1["id"].as_str().unwrap()),
        json!({}),
        &t.root,
    )
    .await;
    t.ok(
        Update,
        "identity/entity-alias",
        json!({"name": "n", "mount_accessor": acc, "canonical_id": e2["id"]}),
        &t.root,
    )
    .await;
}

#[tokio::test]
async fn identity_survives_a_seal_and_unseal() {
    let t = core().await;
    let a = login(&t, "one", "alice", &[]).await;
    t.ok(
        Update,
        "identity/group",
        json!({"name": "g", "member_entity_ids": [a["entity_id"]]}),
        &t.root,
    )
    .await;
    t.core.seal().await.unwrap();
    t.core.sealed_and_drained().await;
    t.core
        .unseal(Some(&hex::encode(&t.key)), false)
        .await
        .unwrap();
    let again = login(&t, "one", "alice", &[]).await;
    assert_eq!(again["entity_id"], a["entity_id"]);
    let g = t
        .data(
            Update,
            "identity/lookup/group",
            json!({"name": "g"}),
            &t.root,
        )
        .await;
    assert_eq!(g["member_entity_ids"], json!([a["entity_id"]]));
}

#[tokio::test]
async fn a_token_role_may_create_tokens_for_an_entity_alias() {
    let t = core().await;
    t.policy(
        "svc",
        r#"path "secret/data/svc" { capabilities = ["read"] }"#,
    )
    .await;
    t.ok(
        Update,
        "secret/data/svc",
        json!({"data": {"k": 1}}),
        &t.root,
    )
    .await;
    t.ok(
        Update,
        "auth/token/roles/ci",
        json!({"allowed_policies": ["default"], "allowed_entity_aliases": ["ci-*"]}),
        &t.root,
    )
    .await;
    let r = t
        .ok(
            Update,
            "auth/token/create/ci",
            json!({"entity_alias": "ci-runner"}),
            &t.root,
        )
        .await;
    let a = r.auth.expect("auth");
    let id = a["entity_id"].as_str().unwrap().to_owned();
    assert!(!id.is_empty(), "{a}");
    // The entity's policies apply to the token.
    t.ok(
        Update,
        &format!("identity/entity/id/{id}"),
        json!({"policies": ["svc"]}),
        &t.root,
    )
    .await;
    t.data(
        Read,
        "secret/data/svc",
        json!({}),
        a["client_token"].as_str().unwrap(),
    )
    .await;
    // The same alias names the same entity; aliases outside the role's list, or without a
    // role, are refused.
    let again = t
        .ok(
            Update,
            "auth/token/create/ci",
            json!({"entity_alias": "CI-runner"}),
            &t.root,
        )
        .await;
    assert_eq!(again.auth.unwrap()["entity_id"], id.as_str());
    for (path, alias) in [
        ("auth/token/create/ci", "prod-runner"),
        ("auth/token/create", "ci-runner"),
    ] {
        let e = t
            .req(Update, path, json!({"entity_alias": alias}), &t.root)
            .await
            .unwrap_err();
        assert!(e.to_string().contains("entity_alias"), "{path}: {e}");
    }
}

/// A login is refused a token carrying `root` or a policy that belongs to the server, whether
/// the method or the identity store would give it, in Vault's words (node-vault's userpass
/// example writes a user with `policies: 'root'` and shows the error's text); an entity or a
/// group cannot be given `root` at all.
#[tokio::test]
async fn logins_never_carry_root_or_server_policies() {
    let t = core().await;
    let refused = |policies: Value| {
        let t = &t;
        async move {
            let mut body = Map::new();
            body.insert("user".into(), json!("mallory"));
            body.insert("policies".into(), policies);
            t.core
                .handle(CoreRequest::new(Update, "auth/one/login", body, None))
                .await
                .unwrap_err()
        }
    };
    for (policies, want) in [
        (json!(["root"]), "auth methods cannot create root tokens"),
        (
            json!(["dev", "ROOT"]),
            "auth methods cannot create root tokens",
        ),
        (
            json!(["response-wrapping"]),
            "cannot assign policy \"response-wrapping\"",
        ),
        (
            json!(["control-group"]),
            "cannot assign policy \"control-group\"",
        ),
    ] {
        let e = refused(policies.clone()).await;
        assert!(
            matches!(e, CoreError::InvalidRequest(_)),
            "{policies}: {e:?}"
        );
        assert_eq!(e.to_string(), want, "{policies}");
    }

    // The identity store refuses root for an entity and for a group, on create and update.
    let e = t
        .data(Update, "identity/entity", json!({"name": "bob"}), &t.root)
        .await;
    let id = e["id"].as_str().unwrap().to_owned();
    for (path, body) in [
        (
            "identity/entity",
            json!({"name": "eve", "policies": ["root"]}),
        ),
        ("identity/entity/name/bob", json!({"policies": "dev,Root"})),
        (
            &format!("identity/entity/id/{id}") as &str,
            json!({"policies": ["root"]}),
        ),
        (
            "identity/group",
            json!({"name": "admins", "policies": ["root"]}),
        ),
        (
            "identity/group",
            json!({"name": "admins", "member_entity_ids": [id], "policies": ["dev", "root"]}),
        ),
    ] {
        let e = t
            .req(Update, path, body.clone(), &t.root)
            .await
            .unwrap_err();
        assert!(
            matches!(e, CoreError::InvalidRequest(_)),
            "{path} {body}: {e:?}"
        );
        assert_eq!(
            e.to_string(),
            "policies cannot contain root",
            "{path} {body}"
        );
    }
    let bob = t
        .data(
            Read,
            &format!("identity/entity/id/{id}"),
            json!({}),
            &t.root,
        )
        .await;
    assert_eq!(bob["policies"], json!([]), "nothing was stored: {bob:?}");
    assert!(
        t.req(Read, "identity/group/name/admins", json!({}), &t.root)
            .await
            .map(|r| r.response.and_then(|r| r.data).is_none())
            .unwrap_or(true),
        "no group was stored"
    );

    // A policy the identity store can hold but no token may carry refuses the login too.
    let acc = accessor(&t, "one").await;
    t.ok(
        Update,
        "identity/entity-alias",
        json!({"name": "bob", "mount_accessor": acc, "canonical_id": id}),
        &t.root,
    )
    .await;
    login(&t, "one", "bob", &[]).await;
    t.ok(
        Update,
        "identity/group",
        json!({"name": "wrappers", "member_entity_ids": [id], "policies": ["response-wrapping"]}),
        &t.root,
    )
    .await;
    let mut body = Map::new();
    body.insert("user".into(), json!("bob"));
    let e = t
        .core
        .handle(CoreRequest::new(Update, "auth/one/login", body, None))
        .await
        .unwrap_err();
    assert_eq!(e.to_string(), "cannot assign policy \"response-wrapping\"");
}
