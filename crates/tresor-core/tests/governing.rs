//! Issue 18: governing policies in-process, on a dev core built with the `tresor-govern`
//! hook and an injected clock: RGPs attached to tokens and entities, EGPs on paths (logins
//! included), the three enforcement levels, the override and its audit trail, fail closed,
//! compile errors at write time, and changes that apply at once, across a restart and on a
//! second server after `invalidate`.

mod common;

use std::sync::Arc;

use common::{TestCore, dev_core_with_config};
use serde_json::{Value, json};
use tresor_core::{Core, CoreConfig, CoreError, CoreRequest, CoreResponse};
use tresor_sdk::Operation::{self, Delete, List, Read, Update};
use tresor_sdk::clock::ManualClock;

/// 2026-12-03T03:00:00Z and 10:00:00Z.
const AT_0300: i64 = 1_796_266_800;
const AT_1000: i64 = 1_796_292_000;

const BUSINESS_HOURS: &str = r#"package tresor.business_hours

default main := false

changes := {"create", "update", "delete"}

main if not input.request.operation in changes

main if not startswith(input.request.path, "sys/")

main if {
	input.time.hour >= 8
	input.time.hour < 18
}

deny contains msg if {
	not main
	msg := sprintf("changes to sys/ are allowed 08:00-18:00 UTC only (it is %s)", [input.time.rfc3339])
}
"#;

const SYS_ADMIN: &str = r#"
path "sys/mounts/*" { capabilities = ["create", "update", "read", "delete", "sudo"] }
path "sys/mounts" { capabilities = ["read"] }
path "secret/*" { capabilities = ["create", "update", "read", "delete", "list"] }
"#;

async fn governed_core(clock: Arc<ManualClock>) -> TestCore {
    dev_core_with_config(CoreConfig {
        clock,
        hooks: Arc::new(tresor_govern::GoverningHooks::default()),
        ..CoreConfig::default()
    })
    .await
}

async fn rgp(t: &TestCore, name: &str, text: &str, level: &str) {
    t.ok(
        Update,
        &format!("sys/policies/rgp/{name}"),
        json!({"policy": text, "enforcement_level": level}),
        &t.root,
    )
    .await;
}

async fn egp(t: &TestCore, name: &str, text: &str, level: &str, paths: &[&str]) {
    t.ok(
        Update,
        &format!("sys/policies/egp/{name}"),
        json!({"policy": text, "enforcement_level": level, "paths": paths}),
        &t.root,
    )
    .await;
}

async fn with_override(
    core: &Core,
    op: Operation,
    path: &str,
    data: Value,
    token: &str,
) -> Result<CoreResponse, CoreError> {
    let Value::Object(data) = data else {
        panic!("object")
    };
    let mut r = CoreRequest::new(op, path, data, Some(token));
    r.headers
        .push(("x-vault-policy-override".into(), "true".into()));
    core.handle(r).await
}

fn warnings(r: &CoreResponse) -> Vec<String> {
    r.response
        .as_ref()
        .map(|r| r.warnings.clone())
        .unwrap_or_default()
}

#[tokio::test]
async fn soft_mandatory_rgp_denies_at_0300_and_the_override_is_audited() {
    let clock = Arc::new(ManualClock::at(AT_0300));
    let t = governed_core(clock.clone()).await;
    let log = tempfile::NamedTempFile::new().unwrap();
    t.ok(
        Update,
        "sys/audit/file",
        json!({"type": "file", "options": {"file_path": log.path().to_str().unwrap(), "log_raw": true}}),
        &t.root,
    )
    .await;
    t.policy("sys-admin", SYS_ADMIN).await;
    rgp(&t, "business-hours", BUSINESS_HOURS, "soft-mandatory").await;
    let tok = t.token(&["sys-admin", "business-hours"], json!({})).await;

    // 03:00: the mount is refused, naming the policy and its reason.
    let err = t
        .req(Update, "sys/mounts/kv-night", json!({"type": "kv"}), &tok)
        .await
        .unwrap_err();
    let CoreError::Forbidden(msg) = &err else {
        panic!("want Forbidden, got {err:?}")
    };
    assert!(msg.contains("\"business-hours\""), "{msg}");
    assert!(msg.contains("soft-mandatory"), "{msg}");
    assert!(
        msg.contains("08:00-18:00 UTC only (it is 2026-12-03T03:00:00Z)"),
        "{msg}"
    );
    // Reads are not changes.
    t.ok(Read, "sys/mounts", json!({}), &tok).await;

    // With the override it goes through, with a warning; the audit log records both.
    let r = with_override(
        &t.core,
        Update,
        "sys/mounts/kv-night",
        json!({"type": "kv"}),
        &tok,
    )
    .await
    .unwrap();
    let w = warnings(&r);
    assert!(
        w.iter()
            .any(|w| w.contains("business-hours") && w.contains("overridden")),
        "{w:?}"
    );
    let audit = std::fs::read_to_string(log.path()).unwrap();
    assert!(
        audit.contains("08:00-18:00 UTC only"),
        "the denial is audited"
    );
    assert!(
        audit.contains("overridden with X-Vault-Policy-Override"),
        "the override is audited"
    );

    // 10:00: allowed without an override; root is exempt at any hour.
    clock.set(AT_1000);
    t.ok(Update, "sys/mounts/kv-day", json!({"type": "kv"}), &tok)
        .await;
    clock.set(AT_0300);
    t.ok(Update, "sys/mounts/kv-root", json!({"type": "kv"}), &t.root)
        .await;
}

#[tokio::test]
async fn hard_mandatory_cannot_be_overridden_and_advisory_warns() {
    let t = governed_core(Arc::new(ManualClock::at(AT_0300))).await;
    t.policy("sys-admin", SYS_ADMIN).await;
    let no_writes = r#"package tresor.no_writes
default main := false
main if input.request.operation == "read"
deny contains "this path is read-only" if not main
"#;
    egp(
        &t,
        "no-writes",
        no_writes,
        "hard-mandatory",
        &["secret/data/frozen/*"],
    )
    .await;
    egp(
        &t,
        "watch-reads",
        "package tresor.watch\ndefault main := false\n",
        "advisory",
        &["secret/data/watched"],
    )
    .await;
    let tok = t.token(&["sys-admin"], json!({})).await;
    let err = with_override(
        &t.core,
        Update,
        "secret/data/frozen/a",
        json!({"data": {"k": "v"}}),
        &tok,
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&err, CoreError::Forbidden(m) if m.contains("\"no-writes\"") && m.contains("this path is read-only")),
        "{err:?}"
    );
    // Other paths are not governed by it.
    t.ok(
        Update,
        "secret/data/thawed",
        json!({"data": {"k": "v"}}),
        &tok,
    )
    .await;
    // Advisory: allowed, with a warning.
    let r = t
        .ok(
            Update,
            "secret/data/watched",
            json!({"data": {"k": "v"}}),
            &tok,
        )
        .await;
    assert!(
        warnings(&r)
            .iter()
            .any(|w| w.starts_with("advisory") && w.contains("watch-reads")),
        "{:?}",
        warnings(&r)
    );
}

#[tokio::test]
async fn policies_are_read_listed_deleted_and_refused_when_they_do_not_compile() {
    let t = governed_core(Arc::new(ManualClock::at(AT_1000))).await;
    egp(
        &t,
        "e1",
        "package tresor.e1\ndefault main := true\n",
        "advisory",
        &["secret/*"],
    )
    .await;
    rgp(&t, "r1", BUSINESS_HOURS, "soft-mandatory").await;
    let r = t
        .data(Read, "sys/policies/egp/e1", json!({}), &t.root)
        .await;
    assert_eq!(r["enforcement_level"], "advisory");
    assert_eq!(r["paths"], json!(["secret/*"]));
    let r = t
        .data(Read, "sys/policies/rgp/r1", json!({}), &t.root)
        .await;
    assert_eq!(r["policy"], BUSINESS_HOURS);
    assert!(r.get("paths").is_none());
    let r = t.data(List, "sys/policies/rgp/", json!({}), &t.root).await;
    assert_eq!(r["keys"], json!(["r1"]));

    // A syntax error: 400 with line and column, nothing stored.
    let err = t
        .req(
            Update,
            "sys/policies/egp/broken",
            json!({"policy": "package tresor.broken\ndefault main := false\nmain if {\n  input.x ==\n}\n", "paths": ["*"]}),
            &t.root,
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&err, CoreError::InvalidRequest(m) if m.contains("line 5, column 1")),
        "{err:?}"
    );
    assert!(
        t.req(Read, "sys/policies/egp/broken", json!({}), &t.root)
            .await
            .unwrap()
            .response
            .is_none()
    );
    // Bad settings.
    for body in [
        json!({"policy": "package tresor.x\ndefault main := true\n", "paths": ["*"], "enforcement_level": "sometimes"}),
        json!({"policy": "package tresor.x\ndefault main := true\n"}),
        json!({"policy": "package tresor.x\nallow := true\n", "paths": ["*"]}),
    ] {
        assert!(matches!(
            t.req(Update, "sys/policies/egp/x", body, &t.root).await,
            Err(CoreError::InvalidRequest(_))
        ));
    }
    t.ok(Delete, "sys/policies/egp/e1", json!({}), &t.root)
        .await;
    let r = t.data(List, "sys/policies/egp/", json!({}), &t.root).await;
    assert_eq!(r.get("keys").cloned().unwrap_or(json!([])), json!([]));
}

#[tokio::test]
async fn an_egp_runs_on_unauthenticated_logins_and_sees_the_remote_address() {
    let t = governed_core(Arc::new(ManualClock::at(AT_1000))).await;
    // The token store's own login-like path is authenticated; use wrapping/lookup, an
    // unauthenticated sys path every core has.
    egp(
        &t,
        "office",
        r#"package tresor.office
default main := false
main if net.cidr_contains("127.0.0.2/32", input.request.connection.remote_addr)
deny contains msg if {
	not main
	msg := sprintf("requests from %s are not allowed", [input.request.connection.remote_addr])
}
"#,
        "hard-mandatory",
        &["sys/wrapping/lookup"],
    )
    .await;
    let lookup = |addr: &str| {
        let mut r = CoreRequest::new(
            Update,
            "sys/wrapping/lookup",
            serde_json::Map::from_iter([("token".to_owned(), json!("nope"))]),
            None,
        );
        r.remote_addr = Some(addr.to_owned());
        t.core.handle(r)
    };
    let err = lookup("127.0.0.1").await.unwrap_err();
    assert!(
        matches!(&err, CoreError::Forbidden(m) if m.contains("requests from 127.0.0.1")),
        "{err:?}"
    );
    // From the allowed address the policy passes and the engine answers (here: a bad token).
    let err = lookup("127.0.0.2").await.unwrap_err();
    assert!(!matches!(err, CoreError::Forbidden(_)), "{err:?}");
}

#[tokio::test]
async fn a_policy_that_fails_to_evaluate_denies() {
    let t = governed_core(Arc::new(ManualClock::at(AT_1000))).await;
    t.policy("sys-admin", SYS_ADMIN).await;
    egp(
        &t,
        "csr-check",
        r#"package tresor.csr_check
default main := false
main if tresor.x509.parse_csr(input.request.data.csr).key_bits >= 2048
"#,
        "advisory",
        &["secret/data/*"],
    )
    .await;
    let tok = t.token(&["sys-admin"], json!({})).await;
    let err = t
        .req(Update, "secret/data/x", json!({"csr": "garbage"}), &tok)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, CoreError::Forbidden(m) if m.contains("failed to evaluate") && m.contains("tresor.x509.parse_csr")),
        "{err:?}"
    );
}

#[tokio::test]
async fn rgps_attach_through_the_entity_and_its_groups() {
    let t = governed_core(Arc::new(ManualClock::at(AT_0300))).await;
    t.policy("sys-admin", SYS_ADMIN).await;
    rgp(&t, "business-hours", BUSINESS_HOURS, "hard-mandatory").await;
    // An entity in a group whose policies name the RGP; a token of that entity.
    let e = t
        .data(
            Update,
            "identity/entity",
            json!({"name": "ops-user"}),
            &t.root,
        )
        .await;
    let entity_id = e["id"].as_str().unwrap().to_owned();
    t.ok(
        Update,
        "identity/group",
        json!({"name": "ops", "policies": ["business-hours"], "member_entity_ids": [entity_id]}),
        &t.root,
    )
    .await;
    let auth = t.data(Read, "sys/auth", json!({}), &t.root).await;
    let accessor = auth["token/"]["accessor"].as_str().unwrap().to_owned();
    t.ok(
        Update,
        "identity/entity-alias",
        json!({"name": "ops-user", "canonical_id": entity_id, "mount_accessor": accessor}),
        &t.root,
    )
    .await;
    t.ok(
        Update,
        "auth/token/roles/ops",
        json!({"allowed_policies": ["sys-admin"], "allowed_entity_aliases": ["ops-user"]}),
        &t.root,
    )
    .await;
    let r = t
        .ok(
            Update,
            "auth/token/create/ops",
            json!({"policies": ["sys-admin"], "entity_alias": "ops-user"}),
            &t.root,
        )
        .await;
    let tok = r.auth.unwrap()["client_token"].as_str().unwrap().to_owned();
    let err = t
        .req(Update, "sys/mounts/kv-x", json!({"type": "kv"}), &tok)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, CoreError::Forbidden(m) if m.contains("business-hours")),
        "{err:?}"
    );
    // A token without the entity is not governed by it.
    let plain = t.token(&["sys-admin"], json!({})).await;
    t.ok(Update, "sys/mounts/kv-y", json!({"type": "kv"}), &plain)
        .await;
}

#[tokio::test]
async fn changes_apply_at_once_survive_a_restart_and_invalidate_elsewhere() {
    let clock = Arc::new(ManualClock::at(AT_1000));
    let t = governed_core(clock.clone()).await;
    t.policy("sys-admin", SYS_ADMIN).await;
    let tok = t.token(&["sys-admin"], json!({})).await;
    let deny_all = "package tresor.d\ndefault main := false\ndeny contains \"closed\" if true\n";
    let allow_all = "package tresor.d\ndefault main := true\n";
    egp(&t, "gate", deny_all, "hard-mandatory", &["secret/data/*"]).await;
    assert!(t.req(Read, "secret/data/a", json!({}), &tok).await.is_err());
    egp(&t, "gate", allow_all, "hard-mandatory", &["secret/data/*"]).await;
    t.ok(Update, "secret/data/a", json!({"data": {"k": "v"}}), &tok)
        .await;
    egp(&t, "gate", deny_all, "hard-mandatory", &["secret/data/*"]).await;

    // A second server on the same storage: stale until told, then enforcing the change.
    let mut b = Core::new(
        t.physical.clone(),
        CoreConfig {
            clock: clock.clone(),
            hooks: Arc::new(tresor_govern::GoverningHooks::default()),
            ..CoreConfig::default()
        },
    );
    b.register_engine("kv", Arc::new(|_| Ok(tresor_kv::backend())));
    b.unseal_with_key(&tresor_core::barrier::Key::from_slice(&t.key).unwrap())
        .await
        .unwrap();
    let read_b = |core: &Core| {
        let core = core.clone();
        let req = CoreRequest::new(Read, "secret/data/a", serde_json::Map::new(), Some(&tok));
        async move { core.handle(req).await }
    };
    assert!(matches!(read_b(&b).await, Err(CoreError::Forbidden(m)) if m.contains("closed")));
    egp(&t, "gate", allow_all, "hard-mandatory", &["secret/data/*"]).await;
    assert!(read_b(&b).await.is_err(), "stale until invalidated");
    b.invalidate("sys/policy/egp/gate").await.unwrap();
    read_b(&b).await.unwrap();

    // Seal and unseal: the policies are read back from storage.
    egp(&t, "gate", deny_all, "hard-mandatory", &["secret/data/*"]).await;
    t.core.seal().await.unwrap();
    t.core
        .unseal_with_key(&tresor_core::barrier::Key::from_slice(&t.key).unwrap())
        .await
        .unwrap();
    assert!(matches!(
        t.req(Read, "secret/data/a", json!({}), &tok).await,
        Err(CoreError::Forbidden(m)) if m.contains("\"gate\"")
    ));
    t.ok(Delete, "sys/policies/egp/gate", json!({}), &t.root)
        .await;
    t.ok(Read, "secret/data/a", json!({}), &tok).await;
}
