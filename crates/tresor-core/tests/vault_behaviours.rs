//! Issue 12, "Vault behaviours that differ today": each test pins one behaviour of the core
//! and the built-in backends (`sys/`, `auth/token/`, `cubbyhole/`) to what Vault does.

mod common;

use common::dev_core;
use serde_json::{Value, json};
use tresor_core::CoreError;
use tresor_sdk::Operation;

/// A cubbyhole write takes arbitrary keys: it answers with nothing (a 204 over HTTP) and no
/// "ignored parameters" warning, as in Vault, and the data reads back whole.
#[tokio::test]
async fn cubbyhole_writes_answer_nothing_and_warn_about_nothing() {
    let t = dev_core().await;
    let r = t
        .ok(
            Operation::Update,
            "cubbyhole/app",
            json!({"user": "alice", "password": "s3cret", "n": 3}),
            &t.root,
        )
        .await;
    assert!(
        r.response.is_none(),
        "a cubbyhole write has no body: {:?}",
        r.response
    );
    let create = t
        .ok(
            Operation::Create,
            "cubbyhole/other",
            json!({"anything": true}),
            &t.root,
        )
        .await;
    assert!(create.response.is_none(), "{:?}", create.response);
    let back = t
        .data(Operation::Read, "cubbyhole/app", Value::Null, &t.root)
        .await;
    assert_eq!(
        Value::Object(back),
        json!({"user": "alice", "password": "s3cret", "n": 3})
    );
}

/// The error a request ended in, for tests that expect one.
pub fn err_of<T: std::fmt::Debug>(r: Result<T, CoreError>) -> CoreError {
    r.expect_err("the request must fail")
}

/// `sys/tools/random`: the count from the URL or the body, the source and format, Vault's
/// bounds; readable with GET too (`bao read sys/tools/random/16`).
#[tokio::test]
async fn tools_random_returns_the_bytes_asked_for() {
    use base64::Engine as _;
    let t = dev_core().await;
    let b64 = |d: &serde_json::Map<String, Value>| {
        base64::engine::general_purpose::STANDARD
            .decode(d["random_bytes"].as_str().unwrap())
            .unwrap()
    };
    let d = t
        .data(Operation::Update, "sys/tools/random", json!({}), &t.root)
        .await;
    assert_eq!(b64(&d).len(), 32, "default is 32 bytes, base64");
    let d = t
        .data(Operation::Read, "sys/tools/random/16", Value::Null, &t.root)
        .await;
    assert_eq!(b64(&d).len(), 16);
    let d = t
        .data(
            Operation::Update,
            "sys/tools/random/all/20",
            json!({"format": "hex"}),
            &t.root,
        )
        .await;
    let hex = d["random_bytes"].as_str().unwrap();
    assert_eq!(hex.len(), 40, "{hex}");
    assert!(hex.bytes().all(|c| c.is_ascii_hexdigit()));
    let d = t
        .data(
            Operation::Update,
            "sys/tools/random/platform",
            json!({"bytes": 8}),
            &t.root,
        )
        .await;
    assert_eq!(b64(&d).len(), 8);
    let r = t
        .ok(
            Operation::Update,
            "sys/tools/random/seal/4",
            json!({}),
            &t.root,
        )
        .await
        .response
        .unwrap();
    assert_eq!(r.warnings.len(), 1, "{:?}", r.warnings);
    let d = t
        .data(
            Operation::Update,
            "sys/tools/random/131072",
            json!({}),
            &t.root,
        )
        .await;
    assert_eq!(b64(&d).len(), 131072);
    for (path, body, want) in [
        ("sys/tools/random/0", json!({}), "cannot be less than 1"),
        (
            "sys/tools/random/131073",
            json!({}),
            "cannot be more than 131072",
        ),
        ("sys/tools/random/abc", json!({}), "not an integer"),
        (
            "sys/tools/random/foo/8",
            json!({}),
            "unsupported entropy source",
        ),
        (
            "sys/tools/random",
            json!({"bytes": -3}),
            "cannot be less than 1",
        ),
        (
            "sys/tools/random/8",
            json!({"format": "raw"}),
            "unsupported encoding format",
        ),
    ] {
        match err_of(t.req(Operation::Update, path, body, &t.root).await) {
            CoreError::InvalidRequest(m) => assert!(m.contains(want), "{path}: {m}"),
            other => panic!("{path}: {other:?}"),
        }
    }
}

/// `sys/tools/hash`: base64 input, every SHA-2 and SHA-3 size, hex or base64 output; the
/// default policy lets any token use it.
#[tokio::test]
async fn tools_hash_digests_base64_input() {
    let t = dev_core().await;
    let token = t.token(&["default"], json!({})).await;
    let sum = |d: serde_json::Map<String, Value>| d["sum"].as_str().unwrap().to_owned();
    let hello = json!({"input": "aGVsbG8="});
    assert_eq!(
        sum(t
            .data(Operation::Update, "sys/tools/hash", hello.clone(), &token)
            .await),
        "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
    );
    for (alg, len) in [
        ("sha2-224", 28),
        ("sha2-256", 32),
        ("sha2-384", 48),
        ("sha2-512", 64),
        ("sha3-224", 28),
        ("sha3-256", 32),
        ("sha3-384", 48),
        ("sha3-512", 64),
    ] {
        let hex = sum(t
            .data(
                Operation::Update,
                &format!("sys/tools/hash/{alg}"),
                hello.clone(),
                &token,
            )
            .await);
        assert_eq!(hex.len(), len * 2, "{alg}: {hex}");
    }
    // The algorithm in the body, base64 output.
    assert_eq!(
        sum(t
            .data(
                Operation::Update,
                "sys/tools/hash",
                json!({"input": "aGVsbG8=", "algorithm": "sha3-256", "format": "base64"}),
                &token,
            )
            .await),
        "Mzi+aU9QxfM4gUmGzfBoZFOoiLhPQk15KvS5ICOY85I="
    );
    for (path, body, want) in [
        (
            "sys/tools/hash/md5",
            hello.clone(),
            "unsupported algorithm md5",
        ),
        ("sys/tools/hash", json!({"input": "%%%"}), "base64"),
        (
            "sys/tools/hash",
            json!({"input": "aGVsbG8=", "format": "raw"}),
            "unsupported encoding format",
        ),
    ] {
        match err_of(t.req(Operation::Update, path, body, &token).await) {
            CoreError::InvalidRequest(m) => assert!(m.contains(want), "{path}: {m}"),
            other => panic!("{path}: {other:?}"),
        }
    }
}

/// Looking up a token that does not exist, or was revoked, is Vault's `bad token` permission
/// error (a 403), not bad input; a missing accessor stays an invalid request, as in Vault.
#[tokio::test]
async fn looking_up_a_missing_or_revoked_token_is_a_bad_token_permission_error() {
    let t = dev_core().await;
    let revoked = t.token(&["default"], json!({})).await;
    t.ok(
        Operation::Update,
        "auth/token/revoke",
        json!({"token": revoked}),
        &t.root,
    )
    .await;
    for token in ["hvs.doesnotexist", revoked.as_str()] {
        match err_of(
            t.req(
                Operation::Update,
                "auth/token/lookup",
                json!({"token": token}),
                &t.root,
            )
            .await,
        ) {
            CoreError::Forbidden(m) => assert_eq!(m, "bad token"),
            other => panic!("lookup of {token}: {other:?}"),
        }
    }
    match err_of(
        t.req(
            Operation::Update,
            "auth/token/lookup-accessor",
            json!({"accessor": "nope"}),
            &t.root,
        )
        .await,
    ) {
        CoreError::InvalidRequest(m) => assert_eq!(m, "invalid accessor"),
        other => panic!("{other:?}"),
    }
}

/// A dev core with the binary's registrations: `kv` (with its `generic` alias) and `pki`'s
/// stand-in (any engine will do for the catalog; KV is what this crate's tests depend on).
async fn core_with_generic() -> common::TestCore {
    common::dev_core_with(|c| {
        c.register_engine_alias("generic", "kv");
    })
    .await
}

/// `generic` is Vault's old name of KV version 1: a mount of that type keeps the name, is
/// unversioned, and refuses a `version` option, as Vault does.
#[tokio::test]
async fn generic_mounts_are_kv_version_1() {
    let t = core_with_generic().await;
    t.ok(
        Operation::Update,
        "sys/mounts/old",
        json!({"type": "generic"}),
        &t.root,
    )
    .await;
    let info = t
        .data(Operation::Read, "sys/mounts/old", Value::Null, &t.root)
        .await;
    assert_eq!(info["type"], "generic", "{info:?}");
    t.ok(
        Operation::Update,
        "old/app",
        json!({"user": "alice"}),
        &t.root,
    )
    .await;
    let back = t
        .data(Operation::Read, "old/app", Value::Null, &t.root)
        .await;
    assert_eq!(back["user"], "alice");
    // Unversioned: the path is the secret itself, with no `data/` layer.
    let listed = t.data(Operation::List, "old/", Value::Null, &t.root).await;
    assert_eq!(listed["keys"], json!(["app"]));
    match err_of(
        t.req(
            Operation::Update,
            "sys/mounts/old2",
            json!({"type": "generic", "options": {"version": "2"}}),
            &t.root,
        )
        .await,
    ) {
        CoreError::InvalidRequest(m) => {
            assert!(m.contains("does not allow setting a version"), "{m}")
        }
        other => panic!("{other:?}"),
    }
}

/// An unknown mount or auth type names the types this server has.
#[tokio::test]
async fn an_unknown_type_names_the_types_there_are() {
    let t = core_with_generic().await;
    match err_of(
        t.req(
            Operation::Update,
            "sys/mounts/x",
            json!({"type": "foo"}),
            &t.root,
        )
        .await,
    ) {
        CoreError::InvalidRequest(m) => assert_eq!(
            m,
            "plugin not found in the catalog: foo (available: generic, kv)"
        ),
        other => panic!("{other:?}"),
    }
    match err_of(
        t.req(
            Operation::Update,
            "sys/auth/x",
            json!({"type": "userpass"}),
            &t.root,
        )
        .await,
    ) {
        CoreError::InvalidRequest(m) => {
            assert!(
                m.starts_with("plugin not found in the catalog: userpass (available: "),
                "{m}"
            )
        }
        other => panic!("{other:?}"),
    }
}

/// `sys/plugins/catalog` lists the built-in types in Vault's shape; one type lists with
/// LIST, one plugin reads with GET; registering is refused.
#[tokio::test]
async fn the_plugin_catalog_lists_the_built_in_types() {
    let t = core_with_generic().await;
    let d = t
        .data(Operation::Read, "sys/plugins/catalog", Value::Null, &t.root)
        .await;
    assert_eq!(d["secret"], json!(["cubbyhole", "kv", "system"]), "{d:?}");
    assert_eq!(d["auth"], json!(["token"]));
    assert_eq!(d["database"], json!([]));
    let detailed = d["detailed"].as_array().unwrap();
    assert_eq!(detailed.len(), 4);
    assert_eq!(
        detailed[0],
        json!({"builtin": true, "deprecation_status": "supported", "name": "token", "type": "auth", "version": format!("v{}+builtin.tresor", tresor_core::VERSION)})
    );
    let keys = t
        .data(
            Operation::List,
            "sys/plugins/catalog/secret",
            Value::Null,
            &t.root,
        )
        .await;
    assert_eq!(keys["keys"], json!(["cubbyhole", "kv", "system"]));
    let kv = t
        .data(
            Operation::Read,
            "sys/plugins/catalog/secret/kv",
            Value::Null,
            &t.root,
        )
        .await;
    assert_eq!((&kv["name"], &kv["builtin"]), (&json!("kv"), &json!(true)));
    let none = t
        .ok(
            Operation::Read,
            "sys/plugins/catalog/secret/nope",
            Value::Null,
            &t.root,
        )
        .await;
    assert!(none.response.is_none(), "an unknown plugin is a 404");
    assert!(matches!(
        err_of(
            t.req(
                Operation::Update,
                "sys/plugins/catalog/secret/mine",
                json!({"sha256": "00", "command": "mine"}),
                &t.root
            )
            .await
        ),
        CoreError::InvalidRequest(_)
    ));
    // The per-type paths need sudo, as in Vault.
    let token = t.token(&["default"], json!({})).await;
    t.policy(
        "catalog",
        r#"path "sys/plugins/catalog/*" { capabilities = ["read", "list"] }"#,
    )
    .await;
    let reader = t.token(&["catalog"], json!({})).await;
    for tok in [&token, &reader] {
        assert!(matches!(
            err_of(
                t.req(
                    Operation::Read,
                    "sys/plugins/catalog/secret/kv",
                    Value::Null,
                    tok
                )
                .await
            ),
            CoreError::PermissionDenied
        ));
    }
}

/// `sys/internal/ui/resultant-acl`: the caller's policies merged in Vault's shape; the
/// default policy grants it; a root token reads `root: true`.
#[tokio::test]
async fn the_resultant_acl_is_the_tokens_merged_policies() {
    let t = dev_core().await;
    t.policy(
        "p1",
        r#"
path "secret/data/*" { capabilities = ["read", "list"] }
path "secret/data/app" {
  capabilities = ["create"]
  allowed_parameters = { "a" = [] }
  min_wrapping_ttl = "1s"
}
path "sys/foo" { capabilities = ["deny"] }
path "a/+/b" { capabilities = ["update"] }
"#,
    )
    .await;
    t.policy(
        "p2",
        r#"
path "secret/data/app" {
  capabilities = ["update"]
  denied_parameters = { "b" = ["x"] }
  max_wrapping_ttl = "1h"
}
path "sys/foo" { capabilities = ["read"] }
"#,
    )
    .await;
    let token = t.token(&["p1", "p2"], json!({})).await;
    let d = Value::Object(
        t.data(
            Operation::Read,
            "sys/internal/ui/resultant-acl",
            Value::Null,
            &token,
        )
        .await,
    );
    assert_eq!(d["root"], false, "{d}");
    assert_eq!(
        d["exact_paths"]["secret/data/app"],
        json!({
            "capabilities": ["create", "update"],
            "allowed_parameters": {"a": []},
            "denied_parameters": {"b": ["x"]},
            "min_wrapping_ttl": 1,
            "max_wrapping_ttl": 3600,
        }),
        "{d}"
    );
    assert_eq!(
        d["exact_paths"]["sys/foo"],
        json!({"capabilities": ["deny"]}),
        "deny wins across policies: {d}"
    );
    assert_eq!(
        d["glob_paths"]["secret/data/"],
        json!({"capabilities": ["list", "read"]})
    );
    // From the default policy, which every such token has.
    assert_eq!(
        d["exact_paths"]["sys/internal/ui/resultant-acl"],
        json!({"capabilities": ["read"]})
    );
    assert_eq!(
        d["glob_paths"]["cubbyhole/"]["capabilities"]
            .as_array()
            .unwrap()
            .len(),
        5
    );
    assert!(
        d["exact_paths"].get("a/+/b").is_none(),
        "segment wildcards are not listed"
    );
    let root = t
        .data(
            Operation::Read,
            "sys/internal/ui/resultant-acl",
            Value::Null,
            &t.root,
        )
        .await;
    assert_eq!(Value::Object(root), json!({"root": true}));
    // Without the default policy (and no grant), the token may not read it.
    let bare = t.token(&["p1"], json!({"no_default_policy": true})).await;
    assert!(matches!(
        err_of(
            t.req(
                Operation::Read,
                "sys/internal/ui/resultant-acl",
                Value::Null,
                &bare
            )
            .await
        ),
        CoreError::PermissionDenied
    ));
}

/// `sys/ha-status` on a server without HA lists the node alone, active, as Vault and OpenBao
/// answer (the CLI's `operator members` reads it), rather than refusing.
#[tokio::test]
async fn ha_status_without_ha_lists_this_node_alone() {
    let t = dev_core().await;
    let d = t
        .data(Operation::Read, "sys/ha-status", json!({}), &t.root)
        .await;
    let nodes = d["nodes"].as_array().expect("nodes");
    assert_eq!(nodes.len(), 1, "{d:?}");
    assert_eq!(nodes[0]["active_node"], json!(true), "{d:?}");
    assert_eq!(nodes[0]["last_echo"], Value::Null, "{d:?}");
    assert_eq!(
        nodes[0]["version"],
        json!(env!("CARGO_PKG_VERSION")),
        "{d:?}"
    );
    assert!(nodes[0]["hostname"].is_string(), "{d:?}");
}

/// A lookup of a token that never expires (root) shows `issue_time` and `renewable: false`,
/// as Vault's does; an expiring token is renewable.
#[tokio::test]
async fn root_token_lookup_shows_issue_time_and_is_not_renewable() {
    let t = dev_core().await;
    let d = t
        .data(
            Operation::Read,
            "auth/token/lookup-self",
            json!({}),
            &t.root,
        )
        .await;
    assert!(d["issue_time"].is_string(), "{d:?}");
    assert_eq!(d["renewable"], json!(false), "{d:?}");
    assert_eq!(d["expire_time"], Value::Null, "{d:?}");
    let tok = t.token(&["default"], json!({"ttl": "1h"})).await;
    let d = t
        .data(Operation::Read, "auth/token/lookup-self", json!({}), &tok)
        .await;
    assert!(d["issue_time"].is_string(), "{d:?}");
    assert_eq!(d["renewable"], json!(true), "{d:?}");
}

/// Huge, negative and malformed intervals on the settings whose read shapes changed this
/// session: each write is a 400 or is stored and reads back as a number or a duration, never a
/// panic, and a refused write leaves the earlier setting.
#[tokio::test]
async fn huge_and_malformed_intervals_are_refused_or_read_back_whole() {
    let t = dev_core().await;
    t.ok(
        Operation::Update,
        "sys/rotate/config",
        json!({"interval": "48h"}),
        &t.root,
    )
    .await;
    for bad in [
        json!("-5h"),
        json!("nonsense"),
        json!("99999999999999999999h"),
        json!(1e300),
        json!(-1),
    ] {
        let before = t
            .data(Operation::Read, "sys/rotate/config", json!({}), &t.root)
            .await;
        let refused = t
            .req(
                Operation::Update,
                "sys/rotate/config",
                json!({"interval": bad}),
                &t.root,
            )
            .await
            .is_err();
        let cfg = t
            .data(Operation::Read, "sys/rotate/config", json!({}), &t.root)
            .await;
        assert!(
            cfg["interval"].is_string() || cfg["interval"] == json!(0),
            "{bad}: {cfg:?}"
        );
        if refused {
            assert_eq!(cfg, before, "a refused {bad} changed the setting");
        }
    }
    for (interval, block) in [
        (json!("99999999999999999999s"), json!(1)),
        (json!(1e300), json!(1e300)),
        (json!(-3), json!(0)),
        (json!(1.5), json!(0)),
    ] {
        let r = t
            .req(
                Operation::Update,
                "sys/quotas/rate-limit/q",
                json!({"rate": 10, "interval": interval, "block_interval": block}),
                &t.root,
            )
            .await;
        if r.is_ok() {
            let q = t
                .data(
                    Operation::Read,
                    "sys/quotas/rate-limit/q",
                    json!({}),
                    &t.root,
                )
                .await;
            assert!(q["interval"].is_number(), "{interval}: {q:?}");
            assert!(q["block_interval"].is_number(), "{interval}: {q:?}");
        }
    }
}
