//! Issue 10 (security review), in-process: each test reproduces one finding against the real
//! pipeline and asserts that the attack no longer succeeds. The finding's number is in each
//! test's doc comment.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::{TestCore, dev_core, dev_core_with};
use serde_json::{Map, Value, json};
use tresor_core::CoreError;
use tresor_sdk::Operation::{self, Delete, List, Read, Update};

const SUDO_EVERYTHING: &str =
    r#"path "*" { capabilities = ["create", "read", "update", "delete", "list", "sudo"] }"#;

fn auth_token(r: &tresor_core::CoreResponse) -> String {
    r.auth.as_ref().expect("auth block")["client_token"]
        .as_str()
        .expect("client_token")
        .to_owned()
}

async fn policy_text(t: &TestCore, name: &str) -> Option<String> {
    t.req(
        Read,
        &format!("sys/policies/acl/{name}"),
        json!({}),
        &t.root,
    )
    .await
    .ok()
    .and_then(|r| r.response)
    .and_then(|r| r.data)
    .and_then(|d| d.get("policy").and_then(Value::as_str).map(str::to_owned))
}

/// Finding 1: with `sys/policy/*` allowed and `sys/policy/admin` denied, no other spelling of
/// `admin` (trailing slash, case, surrounding spaces, dot segments) reaches the admin policy;
/// the same for `sys/policies/acl/` and for token roles, which are lower-cased names too.
#[tokio::test]
async fn no_spelling_of_a_denied_name_reaches_it() {
    let t = dev_core().await;
    t.policy("admin", r#"path "secret/*" { capabilities = ["read"] }"#)
        .await;
    let admin_before = policy_text(&t, "admin").await.expect("admin policy");
    t.ok(
        Update,
        "auth/token/roles/tok-admin",
        json!({"allowed_policies": ["admin"]}),
        &t.root,
    )
    .await;
    t.policy(
        "limited",
        r#"
path "sys/policy/*"            { capabilities = ["create", "read", "update", "delete"] }
path "sys/policy/admin"        { capabilities = ["deny"] }
path "sys/policies/acl/*"      { capabilities = ["create", "read", "update", "delete"] }
path "sys/policies/acl/admin"  { capabilities = ["deny"] }
path "auth/token/create/*"     { capabilities = ["update"] }
path "auth/token/create/tok-admin" { capabilities = ["deny"] }
path "auth/token/roles/*"      { capabilities = ["create", "read", "update", "delete"] }
path "auth/token/roles/tok-admin"  { capabilities = ["deny"] }
"#,
    )
    .await;
    let tok = t.token(&["limited"], json!({})).await;
    let variants = [
        "admin/", "ADMIN", "Admin", " admin", "admin ", "\tadmin", "admin/.", "./admin",
    ];
    for v in variants {
        for prefix in ["sys/policy/", "sys/policies/acl/"] {
            let path = format!("{prefix}{v}");
            for op in [Update, Delete] {
                let r = t
                    .req(op, &path, json!({"policy": SUDO_EVERYTHING}), &tok)
                    .await;
                assert!(r.is_err(), "{op:?} {path:?} was served");
            }
        }
    }
    assert_eq!(
        policy_text(&t, "admin").await.as_deref(),
        Some(admin_before.as_str()),
        "the admin policy changed"
    );
    let role_variants = [
        "TOK-ADMIN",
        "Tok-Admin",
        " tok-admin",
        "tok-admin ",
        "tok-admin/",
    ];
    for v in role_variants {
        let r = t
            .req(
                Update,
                &format!("auth/token/create/{v}"),
                json!({"policies": ["admin"]}),
                &tok,
            )
            .await;
        assert!(r.is_err(), "create with role {v:?} was served");
        let r = t
            .req(
                Update,
                &format!("auth/token/roles/{v}"),
                json!({"allowed_policies": ["root"]}),
                &tok,
            )
            .await;
        assert!(r.is_err(), "role write {v:?} was served");
    }
    let role = t
        .data(Read, "auth/token/roles/tok-admin", json!({}), &t.root)
        .await;
    assert_eq!(role["allowed_policies"], json!(["admin"]));
    // The canonical spelling of a name the caller may use still works, in any case.
    t.ok(
        Update,
        "sys/policies/acl/Team-A",
        json!({"policy": r#"path "secret/data/a" { capabilities = ["read"] }"#}),
        &tok,
    )
    .await;
    assert!(policy_text(&t, "team-a").await.is_some());
    // LIST keeps its trailing slash.
    t.ok(List, "sys/policies/acl/", json!({}), &t.root).await;
}

/// Finding 1: a path with control characters or dot segments is refused before routing, so no
/// internal storage key can come back in an error.
#[tokio::test]
async fn malformed_paths_are_refused_and_leak_nothing() {
    let t = dev_core().await;
    for path in [
        "secret/data/a\u{0}b",
        "secret/data/a\nb",
        "secret/data/../../sys/x",
        "secret/./data/x",
    ] {
        let e = t.req(Read, path, json!({}), &t.root).await.unwrap_err();
        let msg = e.to_string();
        assert!(matches!(e, CoreError::InvalidRequest(_)), "{path:?}: {msg}");
        assert!(
            !msg.contains("logical/"),
            "{path:?} leaked a storage key: {msg}"
        );
    }
}

/// Finding 2: a role that allows every policy (or `root` itself) cannot hand `root` to a
/// non-root caller; batch tokens are never root; `response-wrapping` is neither assignable
/// nor writable.
#[tokio::test]
async fn no_root_token_through_a_role_and_no_batch_root() {
    let t = dev_core().await;
    t.ok(
        Update,
        "auth/token/roles/anything",
        json!({"allowed_policies_glob": ["*"]}),
        &t.root,
    )
    .await;
    t.ok(
        Update,
        "auth/token/roles/rootish",
        json!({"allowed_policies": ["root"]}),
        &t.root,
    )
    .await;
    t.policy(
        "use-roles",
        r#"path "auth/token/create/*" { capabilities = ["update"] }"#,
    )
    .await;
    let tok = t.token(&["use-roles"], json!({})).await;
    for (role, body) in [
        ("anything", json!({"policies": ["root"]})),
        ("rootish", json!({"policies": ["root"]})),
        ("rootish", json!({})),
        ("anything", json!({"policies": ["default", "root"]})),
    ] {
        let e = t
            .req(
                Update,
                &format!("auth/token/create/{role}"),
                body.clone(),
                &tok,
            )
            .await
            .unwrap_err();
        assert!(
            e.to_string().contains("root tokens may not be created"),
            "{role} {body}: {e}"
        );
    }
    // Batch tokens are never root, not even for a root parent.
    let e = t
        .req(
            Update,
            "auth/token/create",
            json!({"type": "batch", "policies": ["root"]}),
            &t.root,
        )
        .await
        .unwrap_err();
    assert!(e.to_string().contains("batch tokens cannot be root"), "{e}");
    // The wrapping policy belongs to the server.
    for body in [
        json!({"policies": ["response-wrapping"]}),
        json!({"policies": ["default", "Response-Wrapping"]}),
    ] {
        let e = t
            .req(Update, "auth/token/create", body, &t.root)
            .await
            .unwrap_err();
        assert!(e.to_string().contains("cannot assign policy"), "{e}");
    }
    for name in ["response-wrapping", "Response-Wrapping", "control-group"] {
        let e = t
            .req(
                Update,
                &format!("sys/policies/acl/{name}"),
                json!({"policy": SUDO_EVERYTHING}),
                &t.root,
            )
            .await
            .unwrap_err();
        assert!(e.to_string().contains("cannot update"), "{name}: {e}");
    }
}

/// Finding 3: a token with `num_uses = N` serves exactly N requests, however many arrive at
/// once, and nothing after that.
#[tokio::test]
async fn n_uses_serve_exactly_n_concurrent_requests() {
    let t = Arc::new(dev_core().await);
    t.ok(
        Update,
        "secret/data/app",
        json!({"data": {"k": "v"}}),
        &t.root,
    )
    .await;
    t.policy(
        "reader",
        r#"path "secret/data/*" { capabilities = ["read"] }"#,
    )
    .await;
    for uses in [1usize, 3, 5] {
        let tok = t.token(&["reader"], json!({"num_uses": uses})).await;
        let mut tasks = Vec::new();
        for _ in 0..40 {
            let (t, tok) = (t.clone(), tok.clone());
            tasks.push(tokio::spawn(async move {
                t.req(Read, "secret/data/app", json!({}), &tok)
                    .await
                    .is_ok()
            }));
        }
        let mut served = 0;
        for task in tasks {
            served += usize::from(task.await.unwrap());
        }
        assert_eq!(served, uses, "num_uses={uses} served {served} of 40");
        assert!(
            t.req(Read, "secret/data/app", json!({}), &tok)
                .await
                .is_err()
        );
        // The spent token is gone for good, not merely refused.
        let looked = t
            .req(Update, "auth/token/lookup", json!({"token": tok}), &t.root)
            .await;
        assert!(looked.is_err(), "a spent token can still be looked up");
    }
}

/// Finding 4: revocation wins every race: renewals racing `revoke-accessor` never bring the
/// token back.
#[tokio::test]
async fn revocation_wins_against_concurrent_renewals() {
    let t = Arc::new(dev_core().await);
    t.ok(
        Update,
        "secret/data/app",
        json!({"data": {"k": "v"}}),
        &t.root,
    )
    .await;
    t.policy(
        "reader",
        r#"path "secret/data/*" { capabilities = ["read"] }"#,
    )
    .await;
    for round in 0..10 {
        let r = t
            .ok(
                Update,
                "auth/token/create",
                json!({"policies": ["reader"], "ttl": "1h"}),
                &t.root,
            )
            .await;
        let tok = auth_token(&r);
        let accessor = r.auth.as_ref().unwrap()["accessor"]
            .as_str()
            .unwrap()
            .to_owned();
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut loops = Vec::new();
        for _ in 0..4 {
            let (t, tok, stop) = (t.clone(), tok.clone(), stop.clone());
            loops.push(tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let _ = t
                        .req(Update, "auth/token/renew-self", json!({}), &tok)
                        .await;
                    tokio::task::yield_now().await;
                }
            }));
        }
        tokio::task::yield_now().await;
        t.ok(
            Update,
            "auth/token/revoke-accessor",
            json!({"accessor": accessor}),
            &t.root,
        )
        .await;
        stop.store(true, Ordering::Relaxed);
        for l in loops {
            l.await.unwrap();
        }
        assert!(
            t.req(Read, "secret/data/app", json!({}), &tok)
                .await
                .is_err(),
            "round {round}: the revoked token still reads secrets"
        );
        assert!(
            t.req(
                Update,
                "auth/token/lookup-accessor",
                json!({"accessor": accessor}),
                &t.root
            )
            .await
            .is_err(),
            "round {round}: the revoked token's accessor came back"
        );
    }
}

/// Finding 5: a wrapping token cannot read its payload through `cubbyhole/response`; only
/// unwrap reads it, once, and of 50 concurrent unwraps exactly one succeeds.
#[tokio::test]
async fn only_one_unwrap_reads_a_wrapped_payload() {
    let t = Arc::new(dev_core().await);
    t.ok(
        Update,
        "secret/data/app",
        json!({"data": {"k": "wrapped-secret"}}),
        &t.root,
    )
    .await;
    let wrapped = t
        .req_wrapped(Read, "secret/data/app", json!({}), &t.root, 300)
        .await
        .unwrap();
    let wtok = wrapped.wrap_info.as_ref().unwrap()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    for op in [Read, List] {
        let e = t
            .req(op, "cubbyhole/response", json!({}), &wtok)
            .await
            .unwrap_err();
        assert!(matches!(e, CoreError::PermissionDenied), "{op:?}: {e}");
    }
    // Interception attempts above did not spend it: the recipient unwraps once.
    let d = t
        .data(Update, "sys/wrapping/unwrap", json!({}), &wtok)
        .await;
    assert_eq!(d["data"]["k"], "wrapped-secret");
    assert!(
        t.req(Update, "sys/wrapping/unwrap", json!({}), &wtok)
            .await
            .is_err()
    );

    let wrapped = t
        .req_wrapped(Read, "secret/data/app", json!({}), &t.root, 300)
        .await
        .unwrap();
    let wtok = wrapped.wrap_info.as_ref().unwrap()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut tasks = Vec::new();
    for i in 0..50 {
        let (t, wtok) = (t.clone(), wtok.clone());
        tasks.push(tokio::spawn(async move {
            // Half send it as the request token, half in the body.
            let r = if i % 2 == 0 {
                t.req(Update, "sys/wrapping/unwrap", json!({}), &wtok).await
            } else {
                let root = t.root.clone();
                t.req(Update, "sys/wrapping/unwrap", json!({"token": wtok}), &root)
                    .await
            };
            r.ok()
                .and_then(|r| r.response)
                .and_then(|r| r.data)
                .is_some()
        }));
    }
    let mut got = 0;
    for task in tasks {
        got += usize::from(task.await.unwrap());
    }
    assert_eq!(got, 1, "{got} of 50 concurrent unwraps got the payload");
}

/// Finding 8: with a role, a caller cannot loosen the role's limits: setting a period needs
/// sudo; the lesser explicit max TTL and number of uses win; negative uses are refused.
#[tokio::test]
async fn role_limits_cannot_be_loosened_by_the_request() {
    let t = dev_core().await;
    t.ok(
        Update,
        "auth/token/roles/limited",
        json!({"allowed_policies": ["reader"], "token_explicit_max_ttl": "1h", "token_num_uses": 2}),
        &t.root,
    )
    .await;
    t.policy(
        "reader",
        r#"path "auth/token/create/limited" { capabilities = ["update"] }"#,
    )
    .await;
    let tok = t.token(&["reader"], json!({})).await;
    let e = t
        .req(
            Update,
            "auth/token/create/limited",
            json!({"period": "24h"}),
            &tok,
        )
        .await
        .unwrap_err();
    assert!(e.to_string().contains("periodic"), "{e}");
    let r = t
        .ok(
            Update,
            "auth/token/create/limited",
            json!({"explicit_max_ttl": "100h", "num_uses": 50}),
            &tok,
        )
        .await;
    let child = auth_token(&r);
    let look = t
        .data(
            Update,
            "auth/token/lookup",
            json!({"token": child}),
            &t.root,
        )
        .await;
    assert_eq!(look["explicit_max_ttl"], json!(3600), "{look:?}");
    assert_eq!(look["num_uses"], json!(2), "{look:?}");
    // A smaller request still tightens.
    let r = t
        .ok(
            Update,
            "auth/token/create/limited",
            json!({"explicit_max_ttl": "10m", "num_uses": 1}),
            &tok,
        )
        .await;
    let look = t
        .data(
            Update,
            "auth/token/lookup",
            json!({"token": auth_token(&r)}),
            &t.root,
        )
        .await;
    assert_eq!(look["explicit_max_ttl"], json!(600));
    assert_eq!(look["num_uses"], json!(1));
    for path in ["auth/token/create/limited", "auth/token/create"] {
        let e = t
            .req(Update, path, json!({"num_uses": -1}), &t.root)
            .await
            .unwrap_err();
        assert!(e.to_string().contains("cannot be negative"), "{path}: {e}");
    }
    let e = t
        .req(
            Update,
            "auth/token/roles/limited",
            json!({"token_num_uses": -1}),
            &t.root,
        )
        .await
        .unwrap_err();
    assert!(e.to_string().contains("cannot be negative"), "{e}");
}

/// Findings 10 and 20: huge or overflowing numbers are clear errors, never a panic and never a
/// token born expired; a KV v1 secret with a huge `ttl` stays readable.
#[tokio::test]
async fn huge_durations_are_refused_and_never_panic() {
    let t = dev_core().await;
    for ttl in [
        json!("1e300s"),
        json!(1e300),
        json!("10000000000000000000"),
        json!(u64::MAX),
    ] {
        for field in ["ttl", "period", "explicit_max_ttl"] {
            let e = t
                .req(
                    Update,
                    "auth/token/create",
                    json!({ field: ttl.clone() }),
                    &t.root,
                )
                .await
                .unwrap_err();
            assert!(
                matches!(e, CoreError::InvalidRequest(_)),
                "{field}={ttl}: {e}"
            );
        }
    }
    // The largest accepted period still gives a live token.
    let r = t
        .ok(
            Update,
            "auth/token/create",
            json!({"period": tresor_sdk::duration::MAX_SECS}),
            &t.root,
        )
        .await;
    let tok = auth_token(&r);
    t.ok(Update, "auth/token/lookup-self", json!({}), &tok)
        .await;

    t.ok(
        Update,
        "sys/mounts/kv1",
        json!({"type": "kv", "options": {"version": "1"}}),
        &t.root,
    )
    .await;
    t.ok(
        Update,
        "kv1/huge",
        json!({"ttl": 1e300, "value": "x"}),
        &t.root,
    )
    .await;
    t.ok(
        Update,
        "kv1/huge2",
        json!({"ttl": "99999999999999999999h", "value": "x"}),
        &t.root,
    )
    .await;
    for key in ["kv1/huge", "kv1/huge2"] {
        for _ in 0..2 {
            let d = t.data(Read, key, json!({}), &t.root).await;
            assert_eq!(d["value"], "x");
        }
    }
}

/// Finding 15: the OpenAPI document lists only what the caller may see.
#[tokio::test]
async fn openapi_shows_only_what_the_token_may_see() {
    let t = dev_core().await;
    let paths = |r: tresor_core::CoreResponse| -> Map<String, Value> {
        r.response.unwrap().data.unwrap()["paths"]
            .as_object()
            .unwrap()
            .clone()
    };
    let anon = paths(
        t.req(Read, "sys/internal/specs/openapi", json!({}), "")
            .await
            .unwrap(),
    );
    assert!(anon.keys().all(|k| !k.starts_with("/secret/")), "{anon:?}");
    assert!(anon.contains_key("/sys/wrapping/lookup"));
    assert!(!anon.keys().any(|k| k.starts_with("/sys/policy")));
    t.policy(
        "secret-only",
        r#"path "secret/data/*" { capabilities = ["read"] }"#,
    )
    .await;
    let tok = t.token(&["secret-only"], json!({})).await;
    let some = paths(
        t.req(Read, "sys/internal/specs/openapi", json!({}), &tok)
            .await
            .unwrap(),
    );
    assert!(some.keys().any(|k| k.starts_with("/secret/")));
    assert!(
        !some.keys().any(|k| k.starts_with("/sys/policy")),
        "{:?}",
        some.keys().collect::<Vec<_>>()
    );
    let all = paths(
        t.req(Read, "sys/internal/specs/openapi", json!({}), &t.root)
            .await
            .unwrap(),
    );
    assert!(all.keys().any(|k| k.starts_with("/sys/policy")));
    assert!(all.len() > some.len() && some.len() > anon.len());
}

/// Finding 18: a policy change applies to the very next request even while other requests
/// are compiling ACLs for the same policy set.
#[tokio::test]
async fn a_policy_change_is_never_undone_by_a_concurrent_compile() {
    let t = Arc::new(dev_core().await);
    t.ok(
        Update,
        "secret/data/app",
        json!({"data": {"k": "v"}}),
        &t.root,
    )
    .await;
    t.policy(
        "flip",
        r#"path "secret/data/*" { capabilities = ["read"] }"#,
    )
    .await;
    let tok = t.token(&["flip"], json!({})).await;
    for round in 0..20 {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut readers = Vec::new();
        for _ in 0..4 {
            let (t, tok, stop) = (t.clone(), tok.clone(), stop.clone());
            readers.push(tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let _ = t.req(Read, "secret/data/app", json!({}), &tok).await;
                    tokio::task::yield_now().await;
                }
            }));
        }
        let (grant, deny) = (
            r#"path "secret/data/*" { capabilities = ["read"] }"#,
            r#"path "secret/data/*" { capabilities = ["deny"] }"#,
        );
        t.policy("flip", if round % 2 == 0 { deny } else { grant })
            .await;
        for _ in 0..5 {
            let r = t.req(Read, "secret/data/app", json!({}), &tok).await;
            assert_eq!(r.is_ok(), round % 2 == 1, "round {round}");
            tokio::task::yield_now().await;
        }
        stop.store(true, Ordering::Relaxed);
        for r in readers {
            r.await.unwrap();
        }
    }
}

static EXISTENCE_CHECKS: AtomicUsize = AtomicUsize::new(0);

struct Probe;

#[async_trait::async_trait]
impl tresor_sdk::LogicalBackend for Probe {
    async fn handle(
        &self,
        _req: tresor_sdk::Request,
    ) -> tresor_sdk::Result<Option<tresor_sdk::Response>> {
        Ok(None)
    }
    async fn exists(&self, _req: &tresor_sdk::Request) -> tresor_sdk::Result<Option<bool>> {
        EXISTENCE_CHECKS.fetch_add(1, Ordering::SeqCst);
        Ok(Some(false))
    }
    fn help(&self, _path: &str) -> Option<Map<String, Value>> {
        None
    }
}

/// Finding 19: the ACL runs before the existence check: a token that may neither create nor
/// update a path never makes the engine look at it.
#[tokio::test]
async fn existence_checks_run_only_for_callers_the_acl_lets_write() {
    let t = dev_core_with(|c| c.register_engine("probe", Arc::new(|_| Ok(Arc::new(Probe))))).await;
    t.ok(
        Update,
        "sys/mounts/probe",
        json!({"type": "probe"}),
        &t.root,
    )
    .await;
    t.policy("ro", r#"path "probe/*" { capabilities = ["read"] }"#)
        .await;
    t.policy("creator", r#"path "probe/*" { capabilities = ["create"] }"#)
        .await;
    let ro = t.token(&["ro"], json!({})).await;
    let creator = t.token(&["creator"], json!({})).await;
    let before = EXISTENCE_CHECKS.load(Ordering::SeqCst);
    let e = t
        .req(Update, "probe/x", json!({"a": 1}), &ro)
        .await
        .unwrap_err();
    assert!(matches!(e, CoreError::PermissionDenied));
    assert_eq!(EXISTENCE_CHECKS.load(Ordering::SeqCst), before);
    // A caller allowed to create gets the check (and the write).
    t.ok(Update, "probe/x", json!({"a": 1}), &creator).await;
    assert_eq!(EXISTENCE_CHECKS.load(Ordering::SeqCst), before + 1);
}

/// Finding 20: arithmetic on client-controlled numbers saturates instead of wrapping; batch
/// tokens can look themselves up.
#[tokio::test]
async fn batch_tokens_can_look_themselves_up() {
    let t = dev_core().await;
    let r = t
        .ok(
            Update,
            "auth/token/create",
            json!({"type": "batch", "policies": ["default"], "ttl": "1h"}),
            &t.root,
        )
        .await;
    let b = auth_token(&r);
    let d = t.data(Read, "auth/token/lookup-self", json!({}), &b).await;
    assert_eq!(d["type"], "batch");
    let _ = Operation::Read;
}

/// Finding 4: a child token created while its parent's tree is being revoked does not survive
/// the revocation.
#[tokio::test]
async fn children_created_during_a_revocation_do_not_survive_it() {
    let t = Arc::new(dev_core().await);
    for round in 0..10 {
        let parent = t.token(&["default"], json!({"ttl": "1h"})).await;
        let mut creators = Vec::new();
        for _ in 0..4 {
            let (t, parent) = (t.clone(), parent.clone());
            creators.push(tokio::spawn(async move {
                let mut made = Vec::new();
                for _ in 0..10 {
                    if let Ok(r) = t.req(Update, "auth/token/create", json!({}), &parent).await {
                        made.push(auth_token(&r));
                    }
                    tokio::task::yield_now().await;
                }
                made
            }));
        }
        tokio::task::yield_now().await;
        t.ok(
            Update,
            "auth/token/revoke",
            json!({"token": parent}),
            &t.root,
        )
        .await;
        let mut children = Vec::new();
        for c in creators {
            children.extend(c.await.unwrap());
        }
        for child in &children {
            assert!(
                t.req(Read, "auth/token/lookup-self", json!({}), child)
                    .await
                    .is_err(),
                "round {round}: a child outlived its revoked parent"
            );
        }
    }
}

struct Panicky;

#[async_trait::async_trait]
impl tresor_sdk::LogicalBackend for Panicky {
    async fn handle(
        &self,
        req: tresor_sdk::Request,
    ) -> tresor_sdk::Result<Option<tresor_sdk::Response>> {
        if req.path == "boom" {
            panic!("an engine bug");
        }
        Ok(Some(tresor_sdk::Response::data(Map::new())))
    }
    fn help(&self, _path: &str) -> Option<Map<String, Value>> {
        None
    }
}

/// Finding 10: a panic that happens anyway in an engine fails that request with a 500-class
/// error; the pipeline's safety steps still run (the token's use is spent, the server goes on).
#[tokio::test]
async fn an_engine_panic_fails_one_request_and_still_spends_the_use() {
    let t =
        dev_core_with(|c| c.register_engine("panicky", Arc::new(|_| Ok(Arc::new(Panicky))))).await;
    t.ok(Update, "sys/mounts/p", json!({"type": "panicky"}), &t.root)
        .await;
    t.policy("p", r#"path "p/*" { capabilities = ["read"] }"#)
        .await;
    let tok = t.token(&["p"], json!({"num_uses": 2})).await;
    let e = t.req(Read, "p/boom", json!({}), &tok).await.unwrap_err();
    assert!(matches!(e, CoreError::Internal(_)), "{e}");
    assert!(!e.to_string().contains("an engine bug"), "{e}");
    // The panic cost a use: one left.
    t.ok(Read, "p/fine", json!({}), &tok).await;
    assert!(t.req(Read, "p/fine", json!({}), &tok).await.is_err());
    // And the server goes on serving.
    t.ok(Read, "p/fine", json!({}), &t.root).await;
}

/// Mounts cannot be probed: a request to a path no mount serves is refused with 403 unless the
/// caller holds a valid token whose policies grant the operation there (Vault checks the token
/// before routing; since 1.10 a login to an auth mount that is not enabled is a 403). Only
/// such a caller learns that no handler serves the route.
#[tokio::test]
async fn a_missing_mount_is_a_403_until_the_token_may_reach_it() {
    let t = dev_core().await;
    t.policy("ro", r#"path "secret/*" { capabilities = ["read"] }"#)
        .await;
    let ro = t.token(&["ro"], json!({})).await;
    for (path, token) in [
        ("auth/nope/login/me", ""),
        ("auth/nope/login/me", "hvs.bogus"),
        ("nope/x", ""),
        ("nope/x", "hvs.bogus"),
        ("nope/x", ro.as_str()),
    ] {
        let e = t
            .req(Update, path, json!({"password": "x"}), token)
            .await
            .unwrap_err();
        assert!(
            matches!(e, CoreError::PermissionDenied),
            "{path} with {token:?}: {e}"
        );
    }
    // A caller the ACL lets through gets the 404.
    let e = t.req(Read, "nope/x", json!({}), &t.root).await.unwrap_err();
    assert!(matches!(e, CoreError::NoRoute(_)), "{e}");
}

/// A tree wider than one revocation group (64), with grandchildren being made under many of
/// its children while the root of it is revoked: whichever generation a racing creation lands
/// in, no token of the tree survives, and a bystander does.
#[tokio::test]
async fn a_wide_tree_revoked_while_grandchildren_are_made_leaves_nothing() {
    let t = Arc::new(dev_core().await);
    t.policy(
        "mint",
        r#"path "auth/token/create" { capabilities = ["update"] }"#,
    )
    .await;
    let bystander = t.token(&["mint"], json!({"ttl": "1h"})).await;
    let parent = t.token(&["mint"], json!({"ttl": "1h"})).await;
    let mut children = Vec::new();
    for _ in 0..150 {
        let r = t
            .req(Update, "auth/token/create", json!({}), &parent)
            .await
            .unwrap();
        children.push(auth_token(&r));
    }
    let mut creators = Vec::new();
    for k in 0..8 {
        let (t, kids) = (t.clone(), children.clone());
        creators.push(tokio::spawn(async move {
            let mut made = Vec::new();
            for i in 0..20 {
                let under = &kids[(k * 19 + i * 7) % kids.len()];
                if let Ok(r) = t.req(Update, "auth/token/create", json!({}), under).await {
                    made.push(auth_token(&r));
                }
                tokio::task::yield_now().await;
            }
            made
        }));
    }
    tokio::task::yield_now().await;
    t.ok(
        Update,
        "auth/token/revoke",
        json!({"token": parent}),
        &t.root,
    )
    .await;
    let mut all = children;
    for c in creators {
        all.extend(c.await.unwrap());
    }
    all.push(parent);
    for tok in &all {
        assert!(
            t.req(Read, "auth/token/lookup-self", json!({}), tok)
                .await
                .is_err(),
            "a token of the revoked tree still works"
        );
    }
    t.ok(Read, "auth/token/lookup-self", json!({}), &bystander)
        .await;
}

/// Other spellings of a path no mount serves are refused alike (403) for a caller the ACL
/// does not let through, and do not reveal a mount that does exist under another spelling.
#[tokio::test]
async fn missing_mount_spellings_are_403_for_a_refused_caller() {
    let t = dev_core().await;
    t.policy("ro", r#"path "nope/*" { capabilities = ["read"] }"#)
        .await;
    let ro = t.token(&["ro"], json!({})).await;
    // Allowed by the policy: the honest 404.
    let e = t.req(Read, "nope/x", json!({}), &ro).await.unwrap_err();
    assert!(matches!(e, CoreError::NoRoute(_)), "{e}");
    for path in [
        "NOPE/x",
        "Secret/x",
        "nope2/x",
        "nope /x",
        "secretx/data/a",
        "auth/userpassx/login/u",
    ] {
        let e = t.req(Read, path, json!({}), &ro).await.unwrap_err();
        assert!(
            matches!(
                e,
                CoreError::PermissionDenied | CoreError::InvalidRequest(_)
            ),
            "{path:?}: {e}"
        );
        assert!(!matches!(e, CoreError::NoRoute(_)), "{path:?} leaked a 404");
    }
    // Write on a path the policy only lets read: refused, not a 404.
    let e = t
        .req(Update, "nope/x", json!({"a": 1}), &ro)
        .await
        .unwrap_err();
    assert!(matches!(e, CoreError::PermissionDenied), "{e}");
}
