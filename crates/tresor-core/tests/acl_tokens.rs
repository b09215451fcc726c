//! Issue 4 in-process: deny by default, policies applied through the real pipeline, token
//! trees, orphans, use limits, cubbyhole lifetime, policy parse errors.

mod common;

use common::dev_core;
use serde_json::json;
use tresor_core::CoreError;
use tresor_sdk::Operation::{Delete, List, Read, Update};

#[tokio::test]
async fn a_token_whose_policies_grant_nothing_is_denied() {
    let t = dev_core().await;
    t.ok(
        Update,
        "secret/data/app",
        json!({"data": {"k": "v"}}),
        &t.root,
    )
    .await;
    // `default` grants nothing on secret/; a policy that exists but grants nothing elsewhere.
    t.policy("elsewhere", r#"path "other/*" { capabilities = ["read"] }"#)
        .await;
    let tok = t.token(&["elsewhere"], json!({})).await;
    for (op, path) in [
        (Read, "secret/data/app"),
        (Update, "secret/data/app"),
        (List, "secret/metadata/"),
        (Delete, "secret/data/app"),
        (Read, "sys/mounts"),
        (Update, "sys/policies/acl/x"),
    ] {
        let e = t
            .req(
                op,
                path,
                json!({"data": {"k": "evil"}, "policy": "path \"*\" {capabilities=[\"sudo\"]}"}),
                &tok,
            )
            .await
            .unwrap_err();
        assert!(
            matches!(e, CoreError::PermissionDenied),
            "{op:?} {path}: {e}"
        );
    }
    // Nothing changed.
    let d = t.data(Read, "secret/data/app", json!({}), &t.root).await;
    assert_eq!(d["data"]["k"], "v");
    assert!(
        t.req(Read, "sys/policies/acl/x", json!({}), &t.root)
            .await
            .unwrap()
            .response
            .is_none()
    );
    // A missing or unknown token is denied too.
    assert!(matches!(
        t.req(Read, "secret/data/app", json!({}), "").await,
        Err(CoreError::PermissionDenied)
    ));
    assert!(matches!(
        t.req(
            Read,
            "secret/data/app",
            json!({}),
            "hvs.notatoken000000000000000"
        )
        .await,
        Err(CoreError::PermissionDenied)
    ));
}

#[tokio::test]
async fn policies_grant_exactly_what_they_say() {
    let t = dev_core().await;
    t.policy(
        "app-ro",
        r#"path "secret/data/app/*" { capabilities = ["read"] }
path "secret/metadata/app/*" { capabilities = ["list"] }"#,
    )
    .await;
    t.ok(
        Update,
        "secret/data/app/db",
        json!({"data": {"pw": "1"}}),
        &t.root,
    )
    .await;
    let tok = t.token(&["app-ro"], json!({})).await;
    assert_eq!(
        t.data(Read, "secret/data/app/db", json!({}), &tok).await["data"]["pw"],
        "1"
    );
    assert!(matches!(
        t.req(
            Update,
            "secret/data/app/db",
            json!({"data": {"pw": "2"}}),
            &tok
        )
        .await,
        Err(CoreError::PermissionDenied)
    ));
    assert!(matches!(
        t.req(Read, "secret/data/other", json!({}), &tok).await,
        Err(CoreError::PermissionDenied)
    ));
    assert_eq!(
        t.data(Read, "secret/data/app/db", json!({}), &t.root).await["data"]["pw"],
        "1",
        "the denied write changed nothing"
    );
    // Changing the policy applies to the very next request.
    t.policy(
        "app-ro",
        r#"path "secret/data/app/*" { capabilities = ["read", "update"] }"#,
    )
    .await;
    t.ok(
        Update,
        "secret/data/app/db",
        json!({"data": {"pw": "3"}}),
        &tok,
    )
    .await;
    // capabilities-self reports the same.
    let caps = t
        .data(
            Update,
            "sys/capabilities-self",
            json!({"paths": ["secret/data/app/db"]}),
            &tok,
        )
        .await;
    assert_eq!(caps["capabilities"], json!(["read", "update"]));
    // The root token sees root.
    let caps = t
        .data(
            Update,
            "sys/capabilities",
            json!({"token": t.root, "path": "anything"}),
            &t.root,
        )
        .await;
    assert_eq!(caps["capabilities"], json!(["root"]));
}

#[tokio::test]
async fn sudo_paths_need_sudo() {
    let t = dev_core().await;
    t.policy(
        "mounts",
        r#"path "sys/auth/*" { capabilities = ["create", "update", "read"] }
path "sys/rotate" { capabilities = ["update", "sudo"] }"#,
    )
    .await;
    let tok = t.token(&["mounts"], json!({})).await;
    assert!(
        matches!(
            t.req(Update, "sys/auth/foo", json!({"type": "token"}), &tok)
                .await,
            Err(CoreError::PermissionDenied)
        ),
        "auth/* is a root path: update alone is not enough"
    );
    t.ok(Update, "sys/rotate", json!({}), &tok).await;
}

#[tokio::test]
async fn bad_policies_are_rejected_with_the_line_and_not_stored() {
    let t = dev_core().await;
    let e = t
        .req(
            Update,
            "sys/policies/acl/bad",
            json!({"policy": "path \"a\" {\n  capabilities = [\"read\"\n}"}),
            &t.root,
        )
        .await
        .unwrap_err();
    match &e {
        CoreError::InvalidRequest(m) => assert!(m.contains("line"), "{m}"),
        other => panic!("{other:?}"),
    }
    let e = t
        .req(
            Update,
            "sys/policies/acl/bad",
            json!({"policy": "path \"a\" { capabilities = [\"reed\"] }"}),
            &t.root,
        )
        .await
        .unwrap_err();
    assert!(e.to_string().contains("reed"), "{e}");
    assert!(
        t.req(Read, "sys/policies/acl/bad", json!({}), &t.root)
            .await
            .unwrap()
            .response
            .is_none(),
        "nothing stored"
    );
    assert!(matches!(
        t.req(Delete, "sys/policies/acl/root", json!({}), &t.root)
            .await,
        Err(CoreError::InvalidRequest(_))
    ));
}

#[tokio::test]
async fn revoking_a_parent_revokes_children_but_not_orphans() {
    let t = dev_core().await;
    t.policy(
        "p",
        r#"path "secret/*" { capabilities = ["read"] }
path "auth/token/create" { capabilities = ["update"] }"#,
    )
    .await;
    let parent = t.token(&["p"], json!({})).await;
    let child = t
        .ok(
            Update,
            "auth/token/create",
            json!({"policies": ["p"]}),
            &parent,
        )
        .await
        .auth
        .unwrap()["client_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let grandchild = t
        .ok(Update, "auth/token/create", json!({}), &child)
        .await
        .auth
        .unwrap()["client_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let orphan = t.token(&["p"], json!({"no_parent": true})).await;
    // A non-root token may not create children with policies it lacks.
    assert!(matches!(
        t.req(
            Update,
            "auth/token/create",
            json!({"policies": ["admin"]}),
            &parent
        )
        .await,
        Err(CoreError::InvalidRequest(_))
    ));
    t.ok(
        Update,
        "auth/token/revoke",
        json!({"token": parent}),
        &t.root,
    )
    .await;
    for tok in [&parent, &child, &grandchild] {
        assert!(matches!(
            t.req(Read, "auth/token/lookup-self", json!({}), tok).await,
            Err(CoreError::PermissionDenied)
        ));
    }
    t.ok(Read, "auth/token/lookup-self", json!({}), &orphan)
        .await;
    // revoke-orphan keeps the children alive.
    let p2 = t.token(&["p"], json!({})).await;
    let c2 = t
        .ok(Update, "auth/token/create", json!({}), &p2)
        .await
        .auth
        .unwrap()["client_token"]
        .as_str()
        .unwrap()
        .to_owned();
    t.ok(
        Update,
        "auth/token/revoke-orphan",
        json!({"token": p2}),
        &t.root,
    )
    .await;
    let d = t.data(Read, "auth/token/lookup-self", json!({}), &c2).await;
    assert_eq!(d["orphan"], json!(true));
}

#[tokio::test]
async fn use_limits_and_cubbyhole_lifetime() {
    let t = dev_core().await;
    let limited = t.token(&["default"], json!({"num_uses": 2})).await;
    t.ok(Read, "auth/token/lookup-self", json!({}), &limited)
        .await;
    t.ok(Read, "auth/token/lookup-self", json!({}), &limited)
        .await;
    assert!(
        matches!(
            t.req(Read, "auth/token/lookup-self", json!({}), &limited)
                .await,
            Err(CoreError::PermissionDenied)
        ),
        "third use denied"
    );

    let a = t.token(&["default"], json!({})).await;
    let b = t.token(&["default"], json!({})).await;
    t.ok(Update, "cubbyhole/note", json!({"v": "mine"}), &a)
        .await;
    assert_eq!(
        t.data(Read, "cubbyhole/note", json!({}), &a).await["v"],
        "mine"
    );
    assert!(
        t.ok(Read, "cubbyhole/note", json!({}), &b)
            .await
            .response
            .is_none(),
        "another token's cubbyhole is empty"
    );
    // Revoking the token destroys its cubbyhole: nothing of it stays in storage.
    let before = t.physical.list("logical/").await.unwrap().len();
    t.ok(Update, "auth/token/revoke-self", json!({}), &a).await;
    let c = t.core.unsealed().unwrap();
    let cubby = c.router().exact("cubbyhole/").unwrap().view.clone();
    assert!(
        tresor_sdk::Storage::list(&cubby, "")
            .await
            .unwrap()
            .is_empty(),
        "cubbyhole data removed with its token"
    );
    let _ = before;
}

#[tokio::test]
async fn token_roles_constrain_created_tokens() {
    let t = dev_core().await;
    t.ok(
        Update,
        "auth/token/roles/deploy",
        json!({"allowed_policies": ["deploy"], "orphan": true, "token_period": "1h"}),
        &t.root,
    )
    .await;
    let r = t
        .ok(
            Update,
            "auth/token/create/deploy",
            json!({"policies": ["deploy"]}),
            &t.root,
        )
        .await;
    let auth = r.auth.unwrap();
    assert_eq!(auth["orphan"], json!(true));
    assert_eq!(auth["lease_duration"], json!(3600));
    // No entity, so no identity policies: Vault leaves the key out rather than sending null.
    assert!(auth.get("identity_policies").is_none(), "{auth}");
    assert!(matches!(
        t.req(
            Update,
            "auth/token/create/deploy",
            json!({"policies": ["admin"]}),
            &t.root
        )
        .await,
        Err(CoreError::InvalidRequest(_))
    ));
    let keys = t.data(List, "auth/token/roles/", json!({}), &t.root).await;
    assert_eq!(keys["keys"], json!(["deploy"]));
}

#[test]
fn request_debug_output_never_shows_the_token_or_values() {
    let r = tresor_core::CoreRequest::new(
        Read,
        "secret/data/x",
        serde_json::json!({"password": "hunter2"})
            .as_object()
            .unwrap()
            .clone(),
        Some("hvs.supersecrettoken"),
    );
    let s = format!("{r:?}");
    assert!(
        !s.contains("hvs.supersecrettoken") && !s.contains("hunter2"),
        "{s}"
    );
    assert!(s.contains("secret/data/x") && s.contains("password"), "{s}");
}

/// The accessor and parent indexes keep new tokens in creation order (their accessor starts
/// with the time), and tokens stored by earlier versions (24-character accessors, indexes
/// keyed by hash alone) still resolve by accessor, count as children and are revoked with
/// their tree, leaving no index entry behind.
#[tokio::test]
async fn token_indexes_are_ordered_and_read_both_layouts() {
    let t = dev_core().await;
    t.policy(
        "mint",
        r#"path "auth/token/create" { capabilities = ["update"] }"#,
    )
    .await;
    let parent = t.token(&["mint"], json!({})).await;
    // Three tokens of no relation to `parent`.
    for _ in 0..3 {
        t.token(&["default"], json!({})).await;
    }
    let c = t.core.unsealed().unwrap();
    let parent_hash = c.tokens.hash(&parent);
    // A child of `parent` stored as an earlier version stored it.
    let mut old = tresor_core::tokens::TokenEntry::service(
        vec!["default".into()],
        "auth/token/create",
        "token",
        tresor_core::tokens::now(),
    );
    old.accessor = "abcdefghijklmnopqrstuvwx".into();
    old.parent = parent_hash.clone();
    old.orphan = false;
    let old_id = old.id.clone();
    c.tokens.store(old).await.unwrap();
    // Three children of `parent` made through the API, by the parent itself.
    let mut made = Vec::new();
    for _ in 0..3 {
        let r = t
            .ok(
                Update,
                "auth/token/create",
                json!({"policies": ["mint"]}),
                &parent,
            )
            .await;
        made.push(r.auth.unwrap()["accessor"].as_str().unwrap().to_owned());
        tokio::time::sleep(std::time::Duration::from_millis(3)).await;
    }
    let view = c.tokens.view();
    let names = tresor_sdk::Storage::list(view, &format!("parent/{parent_hash}/"))
        .await
        .unwrap();
    assert_eq!(names.len(), 4, "{names:?}");
    // The new spellings sort in creation order, by accessor order.
    let ordered: Vec<&String> = names.iter().filter(|n| n.contains('.')).collect();
    assert_eq!(ordered.len(), 3, "{names:?}");
    let prefixes: Vec<String> = made.iter().map(|a| a[..8].to_owned()).collect();
    let listed: Vec<String> = ordered.iter().map(|n| n[..8].to_owned()).collect();
    assert_eq!(listed, prefixes, "{names:?}");
    let accessors = tresor_sdk::Storage::list(view, "accessor/").await.unwrap();
    assert!(
        accessors.iter().any(|a| !a.contains('.')),
        "the earlier layout: {accessors:?}"
    );
    // An accessor's time prefix alone finds nothing: another token's prefix with other
    // characters, the same accessor in another case, or path tricks in it.
    let real = &made[0];
    for forged in [
        format!("{}{}", &real[..8], "x".repeat(24)),
        real.to_uppercase(),
        format!("{}/../{}", &real[..8], &real[12..]),
        format!("{}.{}", &real[..8], &real[9..]),
        format!(" {real}"),
    ] {
        if forged == *real {
            continue;
        }
        assert!(
            t.req(
                Update,
                "auth/token/lookup-accessor",
                json!({"accessor": forged}),
                &t.root
            )
            .await
            .is_err(),
            "{forged}"
        );
    }
    // Both layouts resolve by accessor.
    for a in made
        .iter()
        .map(String::as_str)
        .chain(["abcdefghijklmnopqrstuvwx"])
    {
        let d = t
            .data(
                Update,
                "auth/token/lookup-accessor",
                json!({"accessor": a}),
                &t.root,
            )
            .await;
        assert_eq!(d["accessor"], a);
    }
    // Their leases are in creation order too: `<path>/<order>.<hash>`.
    let leases = t
        .data(
            List,
            "sys/leases/lookup/auth/token/create/",
            json!({}),
            &t.root,
        )
        .await;
    let leases: Vec<String> = leases["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap().to_owned())
        .collect();
    let mut hashes = Vec::new();
    for a in &made {
        let h = c.tokens.by_accessor(a).await.unwrap().unwrap().hash.clone();
        assert!(
            leases.contains(&format!("{}.{h}", &a[..8])),
            "{a}: {leases:?}"
        );
        hashes.push(h);
    }
    // Revoking the parent revokes all four children, and every index entry goes.
    t.ok(
        Update,
        "auth/token/revoke",
        json!({"token": parent}),
        &t.root,
    )
    .await;
    assert!(c.tokens.lookup(&old_id).await.unwrap().is_none());
    for a in &made {
        assert!(c.tokens.by_accessor(a).await.unwrap().is_none());
    }
    assert!(
        tresor_sdk::Storage::list(view, &format!("parent/{parent_hash}/"))
            .await
            .unwrap()
            .is_empty()
    );
    let leases = t
        .data(
            List,
            "sys/leases/lookup/auth/token/create/",
            json!({}),
            &t.root,
        )
        .await;
    for h in &hashes {
        assert!(
            !format!("{leases:?}").contains(h.as_str()),
            "{h}'s lease outlived it: {leases:?}"
        );
    }
    let left = tresor_sdk::Storage::list(view, "accessor/").await.unwrap();
    assert_eq!(
        left.len(),
        4,
        "root and the three unrelated tokens: {left:?}"
    );
}

/// Attacks on the token role and create inputs: bad values leave the stored role as it was,
/// another spelling of the role name is the same role, a request cannot loosen the role's
/// use limit, and a use-limited token serves exactly its uses when many requests race.
#[tokio::test]
async fn token_role_inputs_resist_bad_values_spellings_and_races() {
    let t = dev_core().await;
    t.ok(
        Update,
        "auth/token/roles/ci",
        json!({"allowed_policies": ["ci"], "token_num_uses": 3, "token_bound_cidrs": ["127.0.0.1/32"]}),
        &t.root,
    )
    .await;
    let before = t
        .data(Read, "auth/token/roles/ci", json!({}), &t.root)
        .await;
    for bad in [
        json!({"token_num_uses": -1, "allowed_policies": ["root"]}),
        json!({"token_bound_cidrs": ["not-a-cidr"], "orphan": true}),
        json!({"bound_cidrs": ["10.0.0.0/99"]}),
        json!({"token_period": "1e300"}),
        json!({"token_explicit_max_ttl": -5}),
        json!({"token_type": "root"}),
        json!({"token_num_uses": "many"}),
    ] {
        let r = t
            .req(Update, "auth/token/roles/ci", bad.clone(), &t.root)
            .await;
        assert!(
            matches!(r, Err(CoreError::InvalidRequest(_))),
            "{bad} was not refused: {r:?}"
        );
        let after = t
            .data(Read, "auth/token/roles/ci", json!({}), &t.root)
            .await;
        assert_eq!(after, before, "{bad} changed the stored role");
    }
    // Another spelling of the name is the same role (names are case-insensitive).
    let upper = t
        .data(Read, "auth/token/roles/CI", json!({}), &t.root)
        .await;
    assert_eq!(upper, before);
    // A request may tighten the role's use limit, never loosen it, and never go negative.
    let create = |uses: serde_json::Value| {
        let t = &t;
        async move {
            t.req(
                Update,
                "auth/token/create/ci",
                json!({"policies": ["ci"], "num_uses": uses}),
                &t.root,
            )
            .await
        }
    };
    let auth = create(json!(10)).await.unwrap().auth.unwrap();
    assert_eq!(auth["num_uses"], json!(3));
    let auth = create(json!(1)).await.unwrap().auth.unwrap();
    assert_eq!(auth["num_uses"], json!(1));
    assert!(matches!(
        create(json!(-1)).await,
        Err(CoreError::InvalidRequest(_))
    ));
    assert!(matches!(
        create(json!(1e300)).await,
        Err(CoreError::InvalidRequest(_))
    ));
    // 24 concurrent requests with a three-use token: exactly three are served.
    let token = create(json!(0)).await.unwrap().auth.unwrap()["client_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut tasks = Vec::new();
    for _ in 0..24 {
        let core = t.core.clone();
        let token = token.clone();
        tasks.push(tokio::spawn(async move {
            let mut r = tresor_core::CoreRequest::new(
                Read,
                "auth/token/lookup-self",
                serde_json::Map::new(),
                Some(&token),
            );
            r.remote_addr = Some("127.0.0.1".into());
            core.handle(r).await.is_ok()
        }));
    }
    let mut served = 0;
    for task in tasks {
        served += usize::from(task.await.unwrap());
    }
    assert_eq!(served, 3, "a three-use token served {served} requests");
}

/// A tree wider than one revocation group (64) and four generations deep goes entirely:
/// every token, its index entries, its lease and its cubbyhole, while a token outside the
/// tree is untouched.
#[tokio::test]
async fn revoking_a_wide_deep_tree_leaves_nothing_behind() {
    let t = dev_core().await;
    t.policy(
        "mint",
        r#"path "auth/token/create" { capabilities = ["update"] }
path "cubbyhole/*" { capabilities = ["create", "read", "update"] }"#,
    )
    .await;
    let bystander = t.token(&["mint"], json!({})).await;
    let parent = t.token(&["mint"], json!({})).await;
    let child_of = |tok: String| {
        let t = &t;
        async move {
            t.ok(
                Update,
                "auth/token/create",
                json!({"policies": ["mint"]}),
                &tok,
            )
            .await
            .auth
            .unwrap()["client_token"]
                .as_str()
                .unwrap()
                .to_owned()
        }
    };
    let mut tree = vec![parent.clone()];
    let mut children = Vec::new();
    for _ in 0..150 {
        children.push(child_of(parent.clone()).await);
    }
    let mut grandchildren = Vec::new();
    for c in children.iter().take(2) {
        for _ in 0..70 {
            grandchildren.push(child_of(c.clone()).await);
        }
    }
    let great = child_of(grandchildren[69].clone()).await;
    tree.extend(children);
    tree.extend(grandchildren);
    tree.push(great);
    assert_eq!(tree.len(), 1 + 150 + 140 + 1);
    for tok in tree.iter().chain([&bystander]) {
        t.ok(Update, "cubbyhole/note", json!({"v": "x"}), tok).await;
    }
    let c = t.core.unsealed().unwrap();
    let view = c.tokens.view();
    let accessors_before = tresor_sdk::Storage::list(view, "accessor/").await.unwrap();
    t.ok(
        Update,
        "auth/token/revoke",
        json!({"token": parent}),
        &t.root,
    )
    .await;
    for tok in &tree {
        assert!(c.tokens.lookup(tok).await.unwrap().is_none());
        assert!(
            t.req(Read, "cubbyhole/note", json!({}), tok).await.is_err(),
            "a revoked token still reads"
        );
    }
    let accessors = tresor_sdk::Storage::list(view, "accessor/").await.unwrap();
    assert_eq!(accessors.len(), accessors_before.len() - tree.len());
    // The only parent index left is the one of whoever made the bystander.
    let parents = tresor_sdk::Storage::list(view, "parent/").await.unwrap();
    assert!(parents.len() <= 1, "{parents:?}");
    for p in &parents {
        let kids = tresor_sdk::Storage::list(view, &format!("parent/{p}"))
            .await
            .unwrap();
        assert_eq!(kids.len(), 1, "{p}: {kids:?}");
    }
    let ids = tresor_sdk::Storage::list(view, "id/").await.unwrap();
    assert_eq!(ids.len(), 2, "root and the bystander: {ids:?}");
    let leases = t
        .data(
            List,
            "sys/leases/lookup/auth/token/create/",
            json!({}),
            &t.root,
        )
        .await;
    assert_eq!(
        leases["keys"].as_array().map_or(0, Vec::len),
        1,
        "only the bystander's lease: {leases:?}"
    );
    // Each revoked token's cubbyhole is gone from storage; the bystander's stays.
    let cubby = c.router().exact("cubbyhole/").unwrap().view.clone();
    let left = tresor_sdk::Storage::list(&cubby, "").await.unwrap();
    assert_eq!(left.len(), 1, "{left:?}");
    assert_eq!(
        t.data(Read, "cubbyhole/note", json!({}), &bystander).await["v"],
        "x"
    );
}
