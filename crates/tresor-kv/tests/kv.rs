//! The KV engine driven in-process through `LogicalBackend`, on in-memory storage and a fake
//! clock: every v2 endpoint, v1, the v1 → v2 upgrade, and bad input.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{Harness, assert_timestamp, keys_of};
use serde_json::{Value, json};
use tresor_sdk::{LogicalError, Operation};

const CAS_MISMATCH: &str = "check-and-set parameter did not match the current version";
const CAS_REQUIRED: &str = "check-and-set parameter required for this call";

// ---------------------------------------------------------------------------------------------
// data/: write and read versions

#[tokio::test]
async fn write_returns_version_metadata_in_vaults_shape() {
    let h = Harness::v2();
    let w = h.put("my-secret", json!({"foo": "bar"})).await;
    assert_eq!(
        keys_of(&w),
        [
            "created_time",
            "custom_metadata",
            "deletion_time",
            "destroyed",
            "version"
        ]
    );
    assert_eq!(w["created_time"], "2018-03-22T02:24:06.945319214Z");
    assert_eq!(w["custom_metadata"], Value::Null);
    assert_eq!(w["deletion_time"], "");
    assert_eq!(w["destroyed"], false);
    assert_eq!(w["version"], 1);
}

#[tokio::test]
async fn reads_return_latest_or_requested_version_with_metadata() {
    let h = Harness::v2();
    h.put("app/db", json!({"password": "one", "nested": {"n": 1}}))
        .await;
    h.clock.advance(Duration::from_secs(5));
    h.put("app/db", json!({"password": "two"})).await;

    let latest = h.get("app/db").await;
    assert_eq!(keys_of(&latest), ["data", "metadata"]);
    assert_eq!(latest["data"], json!({"password": "two"}));
    assert_eq!(
        keys_of(&latest["metadata"]),
        [
            "created_time",
            "custom_metadata",
            "deletion_time",
            "destroyed",
            "version"
        ]
    );
    assert_eq!(latest["metadata"]["version"], 2);
    assert_eq!(
        latest["metadata"]["created_time"],
        "2018-03-22T02:24:11.945319214Z"
    );

    let v1 = h.get_version("app/db", 1).await;
    assert_eq!(v1["data"], json!({"password": "one", "nested": {"n": 1}}));
    assert_eq!(v1["metadata"]["version"], 1);
    assert_eq!(
        v1["metadata"]["created_time"],
        "2018-03-22T02:24:06.945319214Z"
    );

    // version=0 means latest, as does a JSON number.
    assert_eq!(
        h.ok(Operation::Read, "data/app/db", json!({"version": 0}))
            .await["metadata"]["version"],
        2
    );
}

#[tokio::test]
async fn reads_of_nothing_are_empty() {
    let h = Harness::v2();
    h.none(Operation::Read, "data/missing", Value::Null).await;
    h.put("one", json!({"a": 1})).await;
    h.none(Operation::Read, "data/one", json!({"version": "2"}))
        .await;
    h.none(Operation::Read, "subkeys/missing", Value::Null)
        .await;
    h.none(Operation::Read, "metadata/missing", Value::Null)
        .await;
}

#[tokio::test]
async fn writes_accept_empty_objects_and_any_json_values() {
    let h = Harness::v2();
    h.put("empty", json!({})).await;
    assert_eq!(h.get("empty").await["data"], json!({}));
    let value =
        json!({"n": 1.5, "b": true, "list": [1, "two", null], "obj": {"deep": {"x": null}}});
    h.put("typed", value.clone()).await;
    assert_eq!(h.get("typed").await["data"], value);
}

#[tokio::test]
async fn a_data_read_costs_two_storage_gets() {
    let mut h = Harness::v2();
    h.set_accessor("kv_1234");
    h.put("s", json!({"k": "v"})).await;
    h.storage.reset_gets();
    h.get("s").await;
    assert_eq!(h.storage.get_count(), 2);
}

// ---------------------------------------------------------------------------------------------
// Check-and-set

#[tokio::test]
async fn cas_zero_only_creates_and_cas_n_only_updates_version_n() {
    let h = Harness::v2();
    let put = |cas: Value| json!({"data": {"v": cas.to_string()}, "options": {"cas": cas}});
    assert_eq!(
        h.ok(Operation::Update, "data/s", put(json!(0))).await["version"],
        1
    );
    assert_eq!(
        h.invalid(Operation::Update, "data/s", put(json!(0))).await,
        CAS_MISMATCH
    );
    assert_eq!(
        h.invalid(Operation::Update, "data/s", put(json!(2))).await,
        CAS_MISMATCH
    );
    assert_eq!(
        h.ok(Operation::Update, "data/s", put(json!(1))).await["version"],
        2
    );
    // A stale cas after the update fails; a cas given as a string (CLI style) works.
    assert_eq!(
        h.invalid(Operation::Update, "data/s", put(json!(1))).await,
        CAS_MISMATCH
    );
    assert_eq!(
        h.ok(Operation::Update, "data/s", put(json!("2"))).await["version"],
        3
    );
    // The failed writes created nothing.
    assert_eq!(h.metadata("s").await["current_version"], 3);
}

/// Issue 12: a negative `cas` is a version no secret is ever at, so it is a check-and-set
/// mismatch (as in Vault, which reads it as an integer), not a field-conversion error; a `cas`
/// that is not an integer at all is still refused as unparseable. Patch follows the same rule.
#[tokio::test]
async fn negative_cas_is_a_check_and_set_mismatch() {
    let h = Harness::v2();
    for cas in [json!(-1), json!("-1"), json!(-7)] {
        let body = json!({"data": {"a": 1}, "options": {"cas": cas}});
        assert_eq!(
            h.invalid(Operation::Update, "data/neg", body).await,
            CAS_MISMATCH,
            "cas {cas} on a new secret"
        );
    }
    h.put("neg", json!({"a": 1})).await;
    assert_eq!(
        h.invalid(
            Operation::Update,
            "data/neg",
            json!({"data": {"a": 2}, "options": {"cas": -1}})
        )
        .await,
        CAS_MISMATCH
    );
    assert_eq!(
        h.invalid(
            Operation::Patch,
            "data/neg",
            json!({"data": {"b": 2}, "options": {"cas": -1}})
        )
        .await,
        CAS_MISMATCH
    );
    // Nothing was written by the refused requests.
    assert_eq!(h.metadata("neg").await["current_version"], 1);
    let msg = h
        .invalid(
            Operation::Update,
            "data/neg",
            json!({"data": {"a": 3}, "options": {"cas": "soon"}}),
        )
        .await;
    assert_ne!(msg, CAS_MISMATCH, "an unparseable cas is not a mismatch");
    assert!(msg.contains("cas"), "{msg}");
}

#[tokio::test]
async fn cas_required_on_the_mount_applies_to_every_secret() {
    let h = Harness::v2();
    h.put("before", json!({"a": 1})).await;
    h.none(Operation::Update, "config", json!({"cas_required": true}))
        .await;
    assert_eq!(
        h.invalid(Operation::Update, "data/before", json!({"data": {"a": 2}}))
            .await,
        CAS_REQUIRED
    );
    assert_eq!(
        h.invalid(Operation::Update, "data/new", json!({"data": {"a": 2}}))
            .await,
        CAS_REQUIRED
    );
    assert_eq!(
        h.ok(
            Operation::Update,
            "data/new",
            json!({"data": {"a": 2}, "options": {"cas": 0}})
        )
        .await["version"],
        1
    );
    assert_eq!(
        h.ok(
            Operation::Update,
            "data/before",
            json!({"data": {"a": 2}, "options": {"cas": 1}})
        )
        .await["version"],
        2
    );
}

#[tokio::test]
async fn cas_required_in_metadata_applies_to_that_secret_only() {
    let h = Harness::v2();
    h.none(
        Operation::Update,
        "metadata/strict",
        json!({"cas_required": true}),
    )
    .await;
    assert_eq!(
        h.invalid(Operation::Update, "data/strict", json!({"data": {"a": 1}}))
            .await,
        CAS_REQUIRED
    );
    h.ok(
        Operation::Update,
        "data/strict",
        json!({"data": {"a": 1}, "options": {"cas": 0}}),
    )
    .await;
    h.put("relaxed", json!({"a": 1})).await;
    h.put("relaxed", json!({"a": 2})).await;
    assert_eq!(h.metadata("strict").await["cas_required"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_cas_writes_let_exactly_one_win() {
    let h = Arc::new(Harness::v2());
    let mut tasks = Vec::new();
    for i in 0..16 {
        let h = h.clone();
        tasks.push(tokio::spawn(async move {
            h.call(
                Operation::Update,
                "data/race",
                json!({"data": {"writer": i}, "options": {"cas": 0}}),
            )
            .await
        }));
    }
    let mut wins = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(Some(_)) => wins += 1,
            Err(LogicalError::InvalidRequest(m)) => assert_eq!(m, CAS_MISMATCH),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(wins, 1);
    assert_eq!(h.metadata("race").await["current_version"], 1);
}

fn hex(s: &str) -> String {
    s.bytes().map(|b| format!("{b:02x}")).collect()
}

/// Issue 11: concurrent writes to one secret are combined into shared commits, and each still
/// gets its own version, in order, with its own data; with max_versions, versions written and
/// pushed out in the same batch are never left behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writes_to_one_secret_each_get_their_own_version() {
    let h = Arc::new(Harness::v2());
    let mut tasks = Vec::new();
    for i in 0..48 {
        let h = h.clone();
        tasks.push(tokio::spawn(async move {
            let v = h
                .ok(
                    Operation::Update,
                    "data/hot",
                    json!({"data": {"writer": i}}),
                )
                .await;
            (i, v["version"].as_u64().unwrap())
        }));
    }
    let mut versions = std::collections::BTreeMap::new();
    for t in tasks {
        let (i, v) = t.await.unwrap();
        assert!(versions.insert(v, i).is_none(), "version {v} given twice");
    }
    assert_eq!(
        versions.keys().copied().collect::<Vec<_>>(),
        (1..=48).collect::<Vec<u64>>()
    );
    // The default max_versions keeps the last ten.
    for (v, i) in versions.iter().skip(38) {
        let d = h.get_version("hot", *v).await;
        assert_eq!(d["data"]["writer"], *i, "version {v}");
    }
    // Pruning inside a batch.
    h.ok(
        Operation::Update,
        "metadata/pruned",
        json!({"max_versions": 2}),
    )
    .await;
    let mut tasks = Vec::new();
    for i in 0..20 {
        let h = h.clone();
        tasks.push(tokio::spawn(async move {
            h.ok(Operation::Update, "data/pruned", json!({"data": {"i": i}}))
                .await
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let meta = h.metadata("pruned").await;
    assert_eq!(meta["current_version"], 20);
    assert_eq!(meta["versions"].as_object().unwrap().len(), 2, "{meta}");
    // Version data lives under versions/<hex of the path>/<n>.
    let prefix = format!("versions/{}/", hex("pruned"));
    let stored: Vec<String> = h
        .storage
        .keys()
        .into_iter()
        .filter(|k| k.starts_with(&prefix))
        .collect();
    assert_eq!(stored.len(), 2, "versions left behind: {stored:?}");
}

// ---------------------------------------------------------------------------------------------
// PATCH

#[tokio::test]
async fn patch_merges_into_the_latest_version_as_a_new_version() {
    let h = Harness::v2();
    h.put(
        "p",
        json!({"foo": "a", "drop": "me", "bar": {"baz": "b", "keep": 1}}),
    )
    .await;
    let w = h
        .ok(
            Operation::Patch,
            "data/p",
            json!({"data": {"foo": "A", "drop": null, "bar": {"baz": "B"}, "new": [1]}}),
        )
        .await;
    assert_eq!(
        keys_of(&w),
        [
            "created_time",
            "custom_metadata",
            "deletion_time",
            "destroyed",
            "version"
        ]
    );
    assert_eq!(w["version"], 2);
    assert_eq!(
        h.get("p").await["data"],
        json!({"foo": "A", "bar": {"baz": "B", "keep": 1}, "new": [1]})
    );
    // The previous version is untouched.
    assert_eq!(h.get_version("p", 1).await["data"]["drop"], "me");
}

#[tokio::test]
async fn patch_honours_cas_and_cas_required() {
    let h = Harness::v2();
    h.put("p", json!({"a": 1})).await;
    let patch = |cas: u64| json!({"data": {"b": 2}, "options": {"cas": cas}});
    assert_eq!(
        h.invalid(Operation::Patch, "data/p", patch(0)).await,
        CAS_MISMATCH
    );
    assert_eq!(
        h.invalid(Operation::Patch, "data/p", patch(2)).await,
        CAS_MISMATCH
    );
    assert_eq!(
        h.ok(Operation::Patch, "data/p", patch(1)).await["version"],
        2
    );
    h.none(
        Operation::Update,
        "metadata/p",
        json!({"cas_required": true}),
    )
    .await;
    assert_eq!(
        h.invalid(Operation::Patch, "data/p", json!({"data": {"c": 3}}))
            .await,
        CAS_REQUIRED
    );
    assert_eq!(
        h.ok(Operation::Patch, "data/p", patch(2)).await["version"],
        3
    );
    assert_eq!(h.get("p").await["data"], json!({"a": 1, "b": 2}));
}

#[tokio::test]
async fn patch_needs_an_existing_live_latest_version() {
    let h = Harness::v2();
    let patch = json!({"data": {"x": 1}});
    assert!(matches!(
        h.call(Operation::Patch, "data/none", patch.clone()).await,
        Err(LogicalError::NotFound(_))
    ));
    // Metadata without any version is still nothing to patch.
    h.none(
        Operation::Update,
        "metadata/empty",
        json!({"max_versions": 3}),
    )
    .await;
    assert!(matches!(
        h.call(Operation::Patch, "data/empty", patch.clone()).await,
        Err(LogicalError::NotFound(_))
    ));

    h.put("gone", json!({"a": 1})).await;
    h.none(Operation::Delete, "data/gone", Value::Null).await;
    assert!(matches!(
        h.call(Operation::Patch, "data/gone", patch.clone()).await,
        Err(LogicalError::NotFound(_))
    ));
    h.none(Operation::Update, "undelete/gone", json!({"versions": [1]}))
        .await;
    h.none(Operation::Update, "destroy/gone", json!({"versions": [1]}))
        .await;
    assert!(matches!(
        h.call(Operation::Patch, "data/gone", patch.clone()).await,
        Err(LogicalError::NotFound(_))
    ));
    assert_eq!(h.metadata("gone").await["current_version"], 1);
    assert_eq!(
        h.invalid(Operation::Patch, "data/gone", json!({"options": {}}))
            .await,
        "no data provided"
    );
}

// ---------------------------------------------------------------------------------------------
// Soft delete, undelete, destroy

#[tokio::test]
async fn delete_of_latest_hides_it_until_undeleted() {
    let h = Harness::v2();
    h.put("d", json!({"v": 1})).await;
    h.put("d", json!({"v": 2})).await;
    h.clock.advance(Duration::from_secs(1));
    h.none(Operation::Delete, "data/d", Value::Null).await;

    // Vault answers such a read with 404 and this body.
    let read = h.get("d").await;
    assert_eq!(read["data"], Value::Null);
    assert_eq!(read["metadata"]["version"], 2);
    assert_eq!(
        read["metadata"]["deletion_time"],
        "2018-03-22T02:24:07.945319214Z"
    );
    assert_eq!(read["metadata"]["destroyed"], false);
    // The older version is still readable.
    assert_eq!(h.get_version("d", 1).await["data"], json!({"v": 1}));
    // Deleting an already deleted latest version changes nothing.
    h.clock.advance(Duration::from_secs(1));
    h.none(Operation::Delete, "data/d", Value::Null).await;
    assert_eq!(
        h.get("d").await["metadata"]["deletion_time"],
        "2018-03-22T02:24:07.945319214Z"
    );

    h.none(Operation::Update, "undelete/d", json!({"versions": [2]}))
        .await;
    let read = h.get("d").await;
    assert_eq!(read["data"], json!({"v": 2}));
    assert_eq!(read["metadata"]["deletion_time"], "");
    // Deleting something that never existed is fine.
    h.none(Operation::Delete, "data/never", Value::Null).await;
}

#[tokio::test]
async fn delete_endpoint_soft_deletes_the_listed_versions() {
    let h = Harness::v2();
    for i in 1..=3 {
        h.put("multi", json!({"i": i})).await;
    }
    h.none(
        Operation::Update,
        "delete/multi",
        json!({"versions": [1, 2, 7]}),
    )
    .await;
    assert_eq!(h.get_version("multi", 1).await["data"], Value::Null);
    assert_eq!(h.get_version("multi", 2).await["data"], Value::Null);
    assert_eq!(h.get("multi").await["data"], json!({"i": 3}));
    let versions = &h.metadata("multi").await["versions"];
    assert_timestamp(&versions["1"]["deletion_time"]);
    assert_timestamp(&versions["2"]["deletion_time"]);
    assert_eq!(versions["3"]["deletion_time"], "");
    // Undelete takes versions as a comma-separated string too.
    h.none(
        Operation::Update,
        "undelete/multi",
        json!({"versions": "1,2"}),
    )
    .await;
    assert_eq!(h.get_version("multi", 1).await["data"], json!({"i": 1}));
    assert_eq!(h.get_version("multi", 2).await["data"], json!({"i": 2}));
    // On a secret that does not exist these do nothing.
    h.none(Operation::Update, "delete/none", json!({"versions": [1]}))
        .await;
    h.none(Operation::Update, "undelete/none", json!({"versions": [1]}))
        .await;
    h.none(Operation::Update, "destroy/none", json!({"versions": [1]}))
        .await;
}

#[tokio::test]
async fn destroy_erases_data_for_good() {
    let h = Harness::v2();
    h.put("x", json!({"secret": "s3cr3t"})).await;
    h.put("x", json!({"secret": "other"})).await;
    let before = h.storage.keys().len();
    h.none(Operation::Update, "destroy/x", json!({"versions": [1]}))
        .await;
    assert_eq!(
        h.storage.keys().len(),
        before - 1,
        "the version's record is removed"
    );

    let read = h.get_version("x", 1).await;
    assert_eq!(read["data"], Value::Null);
    assert_eq!(read["metadata"]["destroyed"], true);
    assert_eq!(read["metadata"]["deletion_time"], "");
    // Undelete cannot bring it back.
    h.none(Operation::Update, "undelete/x", json!({"versions": [1]}))
        .await;
    assert_eq!(h.get_version("x", 1).await["data"], Value::Null);
    assert_eq!(h.metadata("x").await["versions"]["1"]["destroyed"], true);
    assert_eq!(h.get("x").await["data"], json!({"secret": "other"}));
}

#[tokio::test]
async fn version_lists_are_validated() {
    let h = Harness::v2();
    h.put("v", json!({"a": 1})).await;
    // Vault's text: capitalised for delete and undelete, not for destroy (node-vault
    // 0.12's destroySecretVersions passes it on as the error's message).
    for (path, empty) in [
        ("delete/v", "No version number provided"),
        ("undelete/v", "No version number provided"),
        ("destroy/v", "no version number provided"),
    ] {
        assert_eq!(h.invalid(Operation::Update, path, json!({})).await, empty);
        assert_eq!(
            h.invalid(Operation::Update, path, json!({"versions": []}))
                .await,
            empty
        );
        let msg = h
            .invalid(Operation::Update, path, json!({"versions": ["one"]}))
            .await;
        assert!(msg.contains("\"versions\""), "{msg}");
        let msg = h
            .invalid(Operation::Update, path, json!({"versions": [-1]}))
            .await;
        assert!(msg.contains("\"versions\""), "{msg}");
    }
}

// ---------------------------------------------------------------------------------------------
// max_versions

#[tokio::test]
async fn mount_max_versions_prunes_the_oldest() {
    let h = Harness::v2();
    h.none(Operation::Update, "config", json!({"max_versions": 3}))
        .await;
    for i in 1..=5 {
        h.put("pruned", json!({"i": i})).await;
    }
    let meta = h.metadata("pruned").await;
    assert_eq!(keys_of(&meta["versions"]), ["3", "4", "5"]);
    assert_eq!(meta["oldest_version"], 3);
    assert_eq!(meta["current_version"], 5);
    h.none(Operation::Read, "data/pruned", json!({"version": 1}))
        .await;
    h.none(Operation::Read, "data/pruned", json!({"version": 2}))
        .await;
    assert_eq!(h.get_version("pruned", 3).await["data"], json!({"i": 3}));
    let records = h
        .storage
        .keys()
        .into_iter()
        .filter(|k| k.starts_with("versions/"))
        .count();
    assert_eq!(records, 3, "pruned versions leave no data behind");
}

#[tokio::test]
async fn default_is_ten_versions_and_secret_max_versions_overrides_on_next_write() {
    let h = Harness::v2();
    for i in 1..=11 {
        h.put("ten", json!({"i": i})).await;
    }
    let meta = h.metadata("ten").await;
    assert_eq!(meta["versions"].as_object().unwrap().len(), 10);
    assert_eq!(meta["oldest_version"], 2);

    h.none(
        Operation::Update,
        "metadata/ten",
        json!({"max_versions": 2}),
    )
    .await;
    assert_eq!(
        h.metadata("ten").await["versions"]
            .as_object()
            .unwrap()
            .len(),
        10,
        "applied on the next write"
    );
    h.put("ten", json!({"i": 12})).await;
    let meta = h.metadata("ten").await;
    assert_eq!(keys_of(&meta["versions"]), ["11", "12"]);
    assert_eq!(meta["max_versions"], 2);
    assert_eq!(meta["oldest_version"], 11);
}

/// Vault's rule when the mount and the secret both set `max_versions`: the greater number
/// applies (0 is unset on either side; neither set keeps ten).
#[tokio::test]
async fn mount_and_secret_max_versions_the_greater_applies() {
    let h = Harness::v2();
    for (mount, secret, kept) in [(0, 2, 2), (10, 2, 10), (3, 2, 3), (2, 5, 5), (3, 0, 3)] {
        h.none(Operation::Update, "config", json!({"max_versions": mount}))
            .await;
        let path = format!("mv-{mount}-{secret}");
        if secret > 0 {
            h.none(
                Operation::Update,
                &format!("metadata/{path}"),
                json!({"max_versions": secret}),
            )
            .await;
        }
        for i in 1..=14 {
            h.put(&path, json!({"i": i})).await;
        }
        let meta = h.metadata(&path).await;
        assert_eq!(
            meta["versions"].as_object().unwrap().len(),
            kept,
            "mount {mount}, secret {secret}"
        );
        assert_eq!(meta["oldest_version"], 15 - kept as u64);
        assert_eq!(meta["max_versions"], secret);
    }
}

// ---------------------------------------------------------------------------------------------
// config

#[tokio::test]
async fn config_reads_defaults_and_updates_only_given_fields() {
    let h = Harness::v2();
    assert_eq!(
        h.ok(Operation::Read, "config", Value::Null).await,
        json!({"cas_required": false, "delete_version_after": "0s", "max_versions": 0})
    );
    h.none(
        Operation::Update,
        "config",
        json!({"max_versions": 5, "delete_version_after": "3h25m19s"}),
    )
    .await;
    h.none(Operation::Update, "config", json!({"cas_required": "true"}))
        .await;
    assert_eq!(
        h.ok(Operation::Read, "config", Value::Null).await,
        json!({"cas_required": true, "delete_version_after": "3h25m19s", "max_versions": 5})
    );
    h.none(
        Operation::Update,
        "config",
        json!({"delete_version_after": 90}),
    )
    .await;
    assert_eq!(
        h.ok(Operation::Read, "config", Value::Null).await["delete_version_after"],
        "1m30s"
    );
}

#[tokio::test]
async fn config_rejects_bad_values_naming_the_field() {
    let h = Harness::v2();
    for (body, field) in [
        (json!({"max_versions": -1}), "max_versions"),
        (json!({"max_versions": "lots"}), "max_versions"),
        (json!({"cas_required": "perhaps"}), "cas_required"),
        (
            json!({"delete_version_after": "soon"}),
            "delete_version_after",
        ),
    ] {
        let msg = h.invalid(Operation::Update, "config", body.clone()).await;
        assert!(msg.contains(&format!("\"{field}\"")), "{body}: {msg}");
    }
    assert_eq!(
        h.ok(Operation::Read, "config", Value::Null).await["max_versions"],
        0
    );
}

// ---------------------------------------------------------------------------------------------
// delete_version_after, on the fake clock

#[tokio::test]
async fn delete_version_after_schedules_deletion() {
    let h = Harness::v2();
    h.none(
        Operation::Update,
        "config",
        json!({"delete_version_after": "1h"}),
    )
    .await;
    let w = h.put("ttl", json!({"k": "v"})).await;
    assert_eq!(w["deletion_time"], "2018-03-22T03:24:06.945319214Z");

    h.clock.advance(Duration::from_secs(59 * 60));
    let read = h.get("ttl").await;
    assert_eq!(
        read["data"],
        json!({"k": "v"}),
        "still readable before its deletion time"
    );
    assert_eq!(
        read["metadata"]["deletion_time"],
        "2018-03-22T03:24:06.945319214Z"
    );
    h.ok(Operation::Read, "subkeys/ttl", Value::Null).await;

    h.clock.advance(Duration::from_secs(60));
    let read = h.get("ttl").await;
    assert_eq!(
        read["data"],
        Value::Null,
        "deleted once its deletion time has come"
    );
    assert_eq!(
        h.ok(Operation::Read, "subkeys/ttl", Value::Null).await["subkeys"],
        Value::Null
    );

    // A scheduled deletion can be undone like any other, and the undeleted version is
    // scheduled again, delete_version_after from now (as Vault does): undelete does not
    // exempt it from the mount's policy.
    h.none(Operation::Update, "undelete/ttl", json!({"versions": [1]}))
        .await;
    let read = h.get("ttl").await;
    assert_eq!(read["data"], json!({"k": "v"}));
    assert_eq!(
        read["metadata"]["deletion_time"],
        "2018-03-22T04:24:06.945319214Z"
    );
    h.clock.advance(Duration::from_secs(60 * 60));
    assert_eq!(h.get("ttl").await["data"], Value::Null);
}

#[tokio::test]
async fn shorter_of_secret_and_mount_delete_version_after_applies() {
    let h = Harness::v2();
    h.none(
        Operation::Update,
        "config",
        json!({"delete_version_after": "2h"}),
    )
    .await;
    h.none(
        Operation::Update,
        "metadata/short",
        json!({"delete_version_after": "30m"}),
    )
    .await;
    h.none(
        Operation::Update,
        "metadata/long",
        json!({"delete_version_after": "5h"}),
    )
    .await;
    assert_eq!(
        h.put("short", json!({"a": 1})).await["deletion_time"],
        "2018-03-22T02:54:06.945319214Z"
    );
    assert_eq!(
        h.put("long", json!({"a": 1})).await["deletion_time"],
        "2018-03-22T04:24:06.945319214Z"
    );
    assert_eq!(h.metadata("long").await["delete_version_after"], "5h0m0s");

    // Without a mount setting the secret's own applies; changes affect new versions only.
    h.none(
        Operation::Update,
        "config",
        json!({"delete_version_after": "0s"}),
    )
    .await;
    assert_eq!(
        h.put("long", json!({"a": 2})).await["deletion_time"],
        "2018-03-22T07:24:06.945319214Z"
    );
    h.none(
        Operation::Update,
        "metadata/long",
        json!({"delete_version_after": "0s"}),
    )
    .await;
    assert_eq!(h.put("long", json!({"a": 3})).await["deletion_time"], "");
    assert_eq!(
        h.metadata("long").await["versions"]["2"]["deletion_time"],
        "2018-03-22T07:24:06.945319214Z"
    );
}

// ---------------------------------------------------------------------------------------------
// metadata/

#[tokio::test]
async fn metadata_read_has_vaults_fields_and_types() {
    let h = Harness::v2();
    h.put("m", json!({"a": 1})).await;
    h.clock.advance(Duration::from_secs(10));
    h.put("m", json!({"a": 2})).await;
    let meta = h.metadata("m").await;
    assert_eq!(
        keys_of(&meta),
        [
            "cas_required",
            "created_time",
            "current_version",
            "custom_metadata",
            "delete_version_after",
            "max_versions",
            "oldest_version",
            "updated_time",
            "versions"
        ]
    );
    assert_eq!(meta["cas_required"], false);
    assert_eq!(meta["created_time"], "2018-03-22T02:24:06.945319214Z");
    assert_eq!(meta["updated_time"], "2018-03-22T02:24:16.945319214Z");
    assert_eq!(meta["current_version"], 2);
    assert_eq!(meta["custom_metadata"], Value::Null);
    assert_eq!(meta["delete_version_after"], "0s");
    assert_eq!(meta["max_versions"], 0);
    assert_eq!(meta["oldest_version"], 0);
    assert_eq!(keys_of(&meta["versions"]), ["1", "2"]);
    assert_eq!(
        meta["versions"]["1"],
        json!({"created_time": "2018-03-22T02:24:06.945319214Z", "deletion_time": "", "destroyed": false})
    );
}

/// custom_metadata values are strings; numbers and booleans sent are kept as Vault's weak
/// decoding writes them: a number as its text, true as "1" and false as "0".
#[tokio::test]
async fn custom_metadata_numbers_and_booleans_become_vaults_strings() {
    let h = Harness::v2();
    h.none(
        Operation::Update,
        "metadata/typed",
        json!({"custom_metadata": {"n": 7, "f": 1.5, "yes": true, "no": false, "s": "true"}}),
    )
    .await;
    assert_eq!(
        h.metadata("typed").await["custom_metadata"],
        json!({"n": "7", "f": "1.5", "yes": "1", "no": "0", "s": "true"})
    );
    h.none(
        Operation::Patch,
        "metadata/typed",
        json!({"custom_metadata": {"yes": false, "n": null}}),
    )
    .await;
    assert_eq!(
        h.metadata("typed").await["custom_metadata"],
        json!({"f": "1.5", "yes": "0", "no": "0", "s": "true"})
    );
}

#[tokio::test]
async fn metadata_write_creates_a_secret_without_versions_and_sets_custom_metadata() {
    let h = Harness::v2();
    assert_eq!(h.exists("data/fresh").await, Some(false));
    h.none(
        Operation::Update,
        "metadata/fresh",
        json!({"max_versions": 4, "cas_required": true, "delete_version_after": "1h", "custom_metadata": {"owner": "jdoe", "mission_critical": "false"}}),
    )
    .await;
    assert_eq!(h.exists("data/fresh").await, Some(true));
    let meta = h.metadata("fresh").await;
    assert_eq!(meta["current_version"], 0);
    assert_eq!(meta["versions"], json!({}));
    assert_eq!(meta["max_versions"], 4);
    assert_eq!(meta["cas_required"], true);
    assert_eq!(meta["delete_version_after"], "1h0m0s");
    assert_eq!(
        meta["custom_metadata"],
        json!({"owner": "jdoe", "mission_critical": "false"})
    );
    h.none(Operation::Read, "data/fresh", Value::Null).await;

    // The first version carries the secret's custom metadata in its responses.
    let w = h
        .ok(
            Operation::Update,
            "data/fresh",
            json!({"data": {"a": 1}, "options": {"cas": 0}}),
        )
        .await;
    assert_eq!(
        w["custom_metadata"],
        json!({"owner": "jdoe", "mission_critical": "false"})
    );
    assert_eq!(
        h.get("fresh").await["metadata"]["custom_metadata"]["owner"],
        "jdoe"
    );

    // A write replaces custom_metadata whole and leaves unmentioned settings alone.
    h.none(
        Operation::Update,
        "metadata/fresh",
        json!({"custom_metadata": {"team": "ops"}}),
    )
    .await;
    let meta = h.metadata("fresh").await;
    assert_eq!(meta["custom_metadata"], json!({"team": "ops"}));
    assert_eq!(meta["max_versions"], 4);
    assert_eq!(meta["current_version"], 1);
}

#[tokio::test]
async fn metadata_patch_merges_custom_metadata_and_changes_only_given_fields() {
    let h = Harness::v2();
    h.put("pm", json!({"a": 1})).await;
    h.none(
        Operation::Update,
        "metadata/pm",
        json!({"max_versions": 7, "custom_metadata": {"foo": "abc", "bar": "123"}}),
    )
    .await;
    h.none(
        Operation::Patch,
        "metadata/pm",
        json!({"custom_metadata": {"bar": null, "baz": "new"}, "cas_required": true}),
    )
    .await;
    let meta = h.metadata("pm").await;
    assert_eq!(meta["custom_metadata"], json!({"baz": "new", "foo": "abc"}));
    assert_eq!(meta["max_versions"], 7);
    assert_eq!(meta["cas_required"], true);
    assert_eq!(
        meta["current_version"], 1,
        "a metadata patch creates no version"
    );
    h.none(
        Operation::Patch,
        "metadata/pm",
        json!({"custom_metadata": null}),
    )
    .await;
    assert_eq!(h.metadata("pm").await["custom_metadata"], Value::Null);
    assert!(matches!(
        h.call(
            Operation::Patch,
            "metadata/missing",
            json!({"max_versions": 1})
        )
        .await,
        Err(LogicalError::NotFound(_))
    ));
}

#[tokio::test]
async fn custom_metadata_limits_are_enforced_naming_the_field() {
    let h = Harness::v2();
    let too_many: serde_json::Map<String, Value> =
        (0..65).map(|i| (format!("k{i}"), json!("v"))).collect();
    let cases = [
        json!({"custom_metadata": too_many}),
        json!({"custom_metadata": {"k".repeat(129): "v"}}),
        json!({"custom_metadata": {"k": "v".repeat(513)}}),
        json!({"custom_metadata": {"k": {"nested": "no"}}}),
        json!({"custom_metadata": "not a map"}),
        json!({"custom_metadata": {"": "empty key"}}),
    ];
    for body in cases {
        let msg = h
            .invalid(Operation::Update, "metadata/limits", body.clone())
            .await;
        assert!(msg.contains("\"custom_metadata\""), "{msg}");
    }
    h.none(Operation::Read, "metadata/limits", Value::Null)
        .await;
    // At the limits it is accepted; numbers are taken as text.
    let at_limit: serde_json::Map<String, Value> =
        (0..64).map(|i| (format!("k{i}"), json!(i))).collect();
    h.none(
        Operation::Update,
        "metadata/limits",
        json!({"custom_metadata": at_limit}),
    )
    .await;
    assert_eq!(h.metadata("limits").await["custom_metadata"]["k7"], "7");
    // A patch that would exceed the limit is refused and changes nothing.
    let msg = h
        .invalid(
            Operation::Patch,
            "metadata/limits",
            json!({"custom_metadata": {"one_more": "x"}}),
        )
        .await;
    assert!(msg.contains("\"custom_metadata\""), "{msg}");
    assert_eq!(
        h.metadata("limits").await["custom_metadata"]
            .as_object()
            .unwrap()
            .len(),
        64
    );
}

#[tokio::test]
async fn metadata_delete_removes_every_version_and_the_metadata() {
    let h = Harness::v2();
    for i in 0..3 {
        h.put("doomed", json!({"i": i})).await;
    }
    h.put("doomed/child", json!({"kept": true})).await;
    h.none(Operation::Delete, "metadata/doomed", Value::Null)
        .await;
    h.none(Operation::Read, "metadata/doomed", Value::Null)
        .await;
    h.none(Operation::Read, "data/doomed", json!({"version": 1}))
        .await;
    assert_eq!(h.exists("data/doomed").await, Some(false));
    // Only the nested secret's records remain.
    let keys = h.storage.keys();
    assert_eq!(
        keys.iter().filter(|k| k.starts_with("versions/")).count(),
        1,
        "{keys:?}"
    );
    assert_eq!(h.get("doomed/child").await["data"], json!({"kept": true}));
    // Writing again starts over at version 1.
    assert_eq!(h.put("doomed", json!({"again": 1})).await["version"], 1);
}

#[tokio::test]
async fn list_shows_secrets_and_folders() {
    let h = Harness::v2();
    h.put("foo", json!({"a": 1})).await;
    h.put("foo/bar", json!({"a": 1})).await;
    h.put("team/app/db", json!({"a": 1})).await;
    h.none(Operation::Update, "metadata/only-meta", json!({}))
        .await;
    assert_eq!(
        h.ok(Operation::List, "metadata/", Value::Null).await,
        json!({"keys": ["foo", "foo/", "only-meta", "team/"]})
    );
    assert_eq!(
        h.ok(Operation::List, "metadata", Value::Null).await["keys"],
        json!(["foo", "foo/", "only-meta", "team/"])
    );
    assert_eq!(
        h.ok(Operation::List, "metadata/team", Value::Null).await["keys"],
        json!(["app/"])
    );
    assert_eq!(
        h.ok(Operation::List, "metadata/team/app/", Value::Null)
            .await["keys"],
        json!(["db"])
    );
    assert_eq!(
        h.ok(Operation::List, "metadata/nothing/", Value::Null)
            .await["keys"],
        json!([])
    );
}

// ---------------------------------------------------------------------------------------------
// subkeys/

#[tokio::test]
async fn subkeys_show_structure_without_values() {
    let h = Harness::v2();
    h.put(
        "sk",
        json!({"foo": "abc", "bar": {"baz": "def", "deep": {"x": 1}}, "quux": {}}),
    )
    .await;
    h.put("sk", json!({"only": "v2"})).await;

    let r = h
        .ok(Operation::Read, "subkeys/sk", json!({"version": "1"}))
        .await;
    assert_eq!(keys_of(&r), ["metadata", "subkeys"]);
    assert_eq!(
        r["subkeys"],
        json!({"foo": null, "bar": {"baz": null, "deep": {"x": null}}, "quux": null})
    );
    assert_eq!(r["metadata"]["version"], 1);
    assert_eq!(
        keys_of(&r["metadata"]),
        [
            "created_time",
            "custom_metadata",
            "deletion_time",
            "destroyed",
            "version"
        ]
    );

    let r = h
        .ok(
            Operation::Read,
            "subkeys/sk",
            json!({"version": "1", "depth": "1"}),
        )
        .await;
    assert_eq!(
        r["subkeys"],
        json!({"foo": null, "bar": null, "quux": null})
    );
    let r = h
        .ok(
            Operation::Read,
            "subkeys/sk",
            json!({"version": 1, "depth": 2}),
        )
        .await;
    assert_eq!(
        r["subkeys"],
        json!({"foo": null, "bar": {"baz": null, "deep": null}, "quux": null})
    );

    assert_eq!(
        h.ok(Operation::Read, "subkeys/sk", Value::Null).await["subkeys"],
        json!({"only": null})
    );
    h.none(Operation::Update, "delete/sk", json!({"versions": [2]}))
        .await;
    let r = h.ok(Operation::Read, "subkeys/sk", Value::Null).await;
    assert_eq!(r["subkeys"], Value::Null);
    assert_timestamp(&r["metadata"]["deletion_time"]);
}

// ---------------------------------------------------------------------------------------------
// Bad input

#[tokio::test]
async fn bad_input_is_refused_naming_the_field() {
    let h = Harness::v2();
    h.put("s", json!({"a": 1})).await;
    assert_eq!(
        h.invalid(Operation::Update, "data/s", json!({})).await,
        "no data provided"
    );
    assert_eq!(
        h.invalid(Operation::Update, "data/s", json!({"data": null}))
            .await,
        "no data provided"
    );
    assert_eq!(
        h.invalid(Operation::Update, "data/s", json!({"options": {"cas": 1}}))
            .await,
        "no data provided"
    );
    let cases = [
        (
            Operation::Update,
            "data/s",
            json!({"data": "a string"}),
            "data",
        ),
        (Operation::Update, "data/s", json!({"data": [1, 2]}), "data"),
        (
            Operation::Update,
            "data/s",
            json!({"data": {}, "options": "cas=1"}),
            "options",
        ),
        (
            Operation::Update,
            "data/s",
            json!({"data": {}, "options": {"cas": "abc"}}),
            "cas",
        ),
        (
            Operation::Patch,
            "data/s",
            json!({"data": {}, "options": {"cas": [1]}}),
            "cas",
        ),
        (
            Operation::Read,
            "data/s",
            json!({"version": "-1"}),
            "version",
        ),
        (
            Operation::Read,
            "data/s",
            json!({"version": "latest"}),
            "version",
        ),
        (
            Operation::Read,
            "subkeys/s",
            json!({"depth": "-2"}),
            "depth",
        ),
        (
            Operation::Read,
            "subkeys/s",
            json!({"depth": "deep"}),
            "depth",
        ),
        (
            Operation::Update,
            "metadata/s",
            json!({"max_versions": -3}),
            "max_versions",
        ),
        (
            Operation::Update,
            "metadata/s",
            json!({"delete_version_after": "-5s"}),
            "delete_version_after",
        ),
        (
            Operation::Update,
            "metadata/s",
            json!({"cas_required": "sometimes"}),
            "cas_required",
        ),
    ];
    for (op, path, body, field) in cases {
        let msg = h.invalid(op, path, body.clone()).await;
        assert!(
            msg.contains(&format!("\"{field}\"")),
            "{op:?} {path} {body}: {msg}"
        );
    }
    // Nothing above wrote a version.
    assert_eq!(h.metadata("s").await["current_version"], 1);
    assert_eq!(
        h.invalid(Operation::Update, "data/folder/", json!({"data": {}}))
            .await,
        "cannot write to a path ending in '/'"
    );
}

#[tokio::test]
async fn unknown_paths_and_operations_are_refused() {
    let h = Harness::v2();
    // The mount's first request marks its upgrade done; nothing else may be stored.
    h.ok(Operation::Read, "config", Value::Null).await;
    let before = h.storage.keys();
    // A version 1 style request is "not found" with a warning naming the `kv` command to use,
    // as Vault answers it; nothing is written.
    for (op, body, command) in [
        (Operation::Read, Value::Null, "get"),
        (Operation::Update, json!({"a": "b", "c": 1}), "put"),
        (Operation::Patch, json!({"a": "b"}), "patch"),
        (Operation::List, Value::Null, "list"),
        (Operation::Delete, Value::Null, "delete"),
    ] {
        for path in ["foo", "team/app"] {
            let r = h.call(op, path, body.clone()).await.unwrap().unwrap();
            assert!(r.not_found, "{op:?} {path}");
            assert!(r.data.is_none(), "{op:?} {path}");
            assert_eq!(r.warnings.len(), 1, "{op:?} {path}: {:?}", r.warnings);
            assert!(
                r.warnings[0].starts_with("Invalid path for a versioned K/V secrets engine.")
                    && r.warnings[0].contains(&format!("'vault kv {command}'")),
                "{op:?} {path}: {:?}",
                r.warnings
            );
        }
    }
    assert_eq!(h.storage.keys(), before, "nothing was written");
    // A version 2 prefix without a secret name is no version 1 style request.
    for path in ["data/", "destroy/", "subkeys/"] {
        assert!(matches!(
            h.call(Operation::Read, path, Value::Null).await,
            Err(LogicalError::UnsupportedPath)
        ));
    }
    assert!(matches!(
        h.call(Operation::List, "data/x", Value::Null).await,
        Err(LogicalError::UnsupportedOperation)
    ));
    assert!(matches!(
        h.call(Operation::Delete, "config", Value::Null).await,
        Err(LogicalError::UnsupportedOperation)
    ));
    assert!(matches!(
        h.call(Operation::Update, "subkeys/x", json!({})).await,
        Err(LogicalError::UnsupportedOperation)
    ));
    let mut h = h;
    h.tune("3");
    let msg = h.invalid(Operation::Read, "data/x", Value::Null).await;
    assert!(msg.contains("\"3\""), "{msg}");
}

#[tokio::test]
async fn unknown_top_level_fields_on_a_v2_write_are_reported() {
    let h = Harness::v2();
    let resp = h
        .call(
            Operation::Update,
            "data/w",
            json!({"data": {"a": 1}, "extra": true}),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(resp.warnings.len(), 1);
    assert!(resp.warnings[0].contains("extra"), "{:?}", resp.warnings);
}

// ---------------------------------------------------------------------------------------------
// Existence checks (create vs update for the ACL)

#[tokio::test]
async fn existence_checks_tell_create_from_update() {
    let h = Harness::v2();
    assert_eq!(h.exists("config").await, Some(true));
    assert_eq!(h.exists("data/e").await, Some(false));
    assert_eq!(h.exists("metadata/e").await, Some(false));
    h.put("e", json!({"a": 1})).await;
    assert_eq!(h.exists("data/e").await, Some(true));
    assert_eq!(h.exists("metadata/e").await, Some(true));
    // Version operations are always updates, as Vault's policies expect.
    for p in [
        "delete/e",
        "undelete/e",
        "destroy/e",
        "delete/none",
        "destroy/none",
    ] {
        assert_eq!(h.exists(p).await, Some(true), "{p}");
    }
    assert_eq!(h.exists("subkeys/e").await, None);
    // Fully deleting the secret makes the next write a create again.
    h.none(Operation::Delete, "metadata/e", Value::Null).await;
    assert_eq!(h.exists("data/e").await, Some(false));

    let v1 = Harness::v1();
    assert_eq!(v1.exists("k").await, Some(false));
    v1.none(Operation::Update, "k", json!({"a": 1})).await;
    assert_eq!(v1.exists("k").await, Some(true));
}

// ---------------------------------------------------------------------------------------------
// Help

#[tokio::test]
async fn every_path_has_help_with_field_descriptions() {
    let h = Harness::v2();
    let paths = [
        (
            "config",
            &["max_versions", "cas_required", "delete_version_after"][..],
        ),
        ("data/x", &["path", "version", "data", "options"][..]),
        ("delete/x", &["versions"][..]),
        ("undelete/x", &["versions"][..]),
        ("destroy/x", &["versions"][..]),
        (
            "metadata/x",
            &[
                "max_versions",
                "cas_required",
                "delete_version_after",
                "custom_metadata",
            ][..],
        ),
        ("subkeys/x", &["version", "depth"][..]),
    ];
    for (path, fields) in paths {
        let help = h.ok(Operation::Help, path, Value::Null).await;
        let text = help["help"].as_str().unwrap();
        assert!(
            !text.contains("## DESCRIPTION\n\n\n"),
            "{path} has no synopsis: {text}"
        );
        for field in fields {
            assert!(
                text.contains(&format!("    {field} (")),
                "{path} lacks {field}: {text}"
            );
        }
        assert!(
            !text.contains("\n        \n"),
            "{path} has a field without a description: {text}"
        );
        assert_eq!(h.kv.help(path).unwrap()["help"], help["help"]);
    }
    // v1 serves its own help for the same path.
    let v1 = Harness::v1();
    let help = v1.ok(Operation::Help, "data/x", Value::Null).await;
    assert!(
        help["help"].as_str().unwrap().contains("version 1"),
        "{help}"
    );
    assert!(
        v1.ok(Operation::Help, "", Value::Null).await["help"]
            .as_str()
            .unwrap()
            .contains("List")
    );
    let openapi = h.kv.openapi_paths();
    for p in [
        "/config",
        "/data/{path:+}",
        "/metadata/{path:*}",
        "/subkeys/{path:+}",
        "/destroy/{path:+}",
    ] {
        assert!(openapi.contains_key(p), "openapi lacks {p}");
    }
}

// ---------------------------------------------------------------------------------------------
// Version 1

#[tokio::test]
async fn v1_reads_writes_lists_and_deletes_any_path() {
    let h = Harness::v1();
    h.none(
        Operation::Update,
        "my-secret",
        json!({"foo": "bar", "ttl": "1h", "n": 3}),
    )
    .await;
    h.none(
        Operation::Create,
        "team/app",
        json!({"x": {"nested": true}}),
    )
    .await;
    assert_eq!(
        h.ok(Operation::Read, "my-secret", Value::Null).await,
        json!({"foo": "bar", "ttl": "1h", "n": 3})
    );
    assert_eq!(
        h.ok(Operation::Read, "team/app", Value::Null).await,
        json!({"x": {"nested": true}})
    );
    // A write replaces; fields are not merged.
    h.none(Operation::Update, "my-secret", json!({"only": "this"}))
        .await;
    assert_eq!(
        h.ok(Operation::Read, "my-secret", Value::Null).await,
        json!({"only": "this"})
    );
    // Names that are v2 paths are ordinary v1 keys.
    h.none(Operation::Update, "data/x", json!({"v": 1})).await;
    assert_eq!(
        h.ok(Operation::Read, "data/x", Value::Null).await,
        json!({"v": 1})
    );

    assert_eq!(
        h.ok(Operation::List, "", Value::Null).await,
        json!({"keys": ["data/", "my-secret", "team/"]})
    );
    assert_eq!(
        h.ok(Operation::List, "team", Value::Null).await["keys"],
        json!(["app"])
    );
    assert_eq!(
        h.ok(Operation::List, "team/", Value::Null).await["keys"],
        json!(["app"])
    );

    h.none(Operation::Delete, "my-secret", Value::Null).await;
    h.none(Operation::Read, "my-secret", Value::Null).await;
    h.none(Operation::Delete, "never-was", Value::Null).await;
    assert_eq!(
        h.ok(Operation::List, "", Value::Null).await["keys"],
        json!(["data/", "team/"])
    );
}

#[tokio::test]
async fn v1_is_the_default_and_refuses_bad_writes() {
    let h = Harness::new("");
    h.none(Operation::Update, "k", json!({"a": 1})).await;
    assert_eq!(
        h.ok(Operation::Read, "k", Value::Null).await,
        json!({"a": 1})
    );
    assert_eq!(
        h.invalid(Operation::Update, "k", json!({})).await,
        "missing data fields"
    );
    assert_eq!(
        h.invalid(Operation::Update, "folder/", json!({"a": 1}))
            .await,
        "cannot write to a path ending in '/'"
    );
    assert!(matches!(
        h.call(Operation::Read, "", Value::Null).await,
        Err(LogicalError::UnsupportedOperation)
    ));
}

/// The advisory `lease_duration` of a v1 read comes from the secret's `ttl`, else from its
/// legacy `lease` key (node-vault's examples write `{ value, lease: '1s' }`), else from the
/// mount's default lease TTL; `ttl` wins when both are there.
#[tokio::test]
async fn v1_read_lease_duration_honours_ttl_then_legacy_lease() {
    let h = Harness::v1();
    let lease_of = |data: Value, path: &'static str| {
        let h = &h;
        async move {
            h.none(Operation::Update, path, data).await;
            let r = h
                .call(Operation::Read, path, Value::Null)
                .await
                .unwrap()
                .unwrap();
            r.lease_duration
        }
    };
    assert_eq!(
        lease_of(json!({"value": "world", "lease": "1s"}), "a").await,
        Some(Duration::from_secs(1))
    );
    assert_eq!(
        lease_of(json!({"lease": "10h", "ttl": "30m"}), "b").await,
        Some(Duration::from_secs(1800))
    );
    assert_eq!(
        lease_of(json!({"value": "x"}), "c").await,
        Some(h.mount.default_lease_ttl)
    );
}

// ---------------------------------------------------------------------------------------------
// Upgrade from version 1 to version 2

#[tokio::test]
async fn tuning_to_v2_upgrades_v1_data_in_place_once() {
    let mut h = Harness::v1();
    h.set_accessor("kv_upgrade");
    h.none(Operation::Update, "foo", json!({"a": "1"})).await;
    h.none(
        Operation::Update,
        "team/db",
        json!({"password": "p", "ttl": "30m"}),
    )
    .await;
    h.clock.advance(Duration::from_secs(60));

    h.tune("2");
    let read = h.get("team/db").await;
    assert_eq!(read["data"], json!({"password": "p", "ttl": "30m"}));
    assert_eq!(read["metadata"]["version"], 1);
    assert_eq!(
        read["metadata"]["created_time"],
        "2018-03-22T02:25:06.945319214Z"
    );
    assert_eq!(h.get("foo").await["data"], json!({"a": "1"}));
    assert_eq!(
        h.ok(Operation::List, "metadata/", Value::Null).await["keys"],
        json!(["foo", "team/"])
    );
    let meta = h.metadata("foo").await;
    assert_eq!(meta["current_version"], 1);
    assert_eq!(keys_of(&meta["versions"]), ["1"]);

    // The old entries are gone and the upgrade is recorded.
    let keys = h.storage.keys();
    assert!(keys.contains(&"upgraded".to_owned()), "{keys:?}");
    assert!(!keys.iter().any(|k| k.starts_with("v1/")), "{keys:?}");
    // Writes continue the version history.
    assert_eq!(
        h.ok(
            Operation::Update,
            "data/foo",
            json!({"data": {"a": "2"}, "options": {"cas": 1}})
        )
        .await["version"],
        2
    );
}

#[tokio::test]
async fn the_upgrade_runs_on_the_first_v2_request_of_any_kind() {
    // An existence check (the first thing the router does for a write) upgrades too.
    let mut h = Harness::v1();
    h.none(Operation::Update, "k", json!({"a": 1})).await;
    h.tune("2");
    assert_eq!(h.exists("data/k").await, Some(true));
    assert!(h.storage.keys().contains(&"upgraded".to_owned()));

    // An empty v1 mount upgrades to an empty v2 mount.
    let mut empty = Harness::v1();
    empty.tune("2");
    assert_eq!(
        empty.ok(Operation::List, "metadata/", Value::Null).await["keys"],
        json!([])
    );
    assert!(empty.storage.keys().contains(&"upgraded".to_owned()));
}

#[tokio::test]
async fn an_interrupted_upgrade_resumes_without_duplicating_versions() {
    let mut h = Harness::v1();
    h.none(Operation::Update, "a", json!({"v": "a"})).await;
    h.none(Operation::Update, "b", json!({"v": "b"})).await;
    h.tune("2");
    h.put("a", json!({"v": "a2"})).await;
    // Simulate a crash before the marker was written: drop the marker and put a v1 entry back
    // for a secret that already exists in v2.
    let raw = serde_json::to_vec(&json!({"format": 1, "data": {"v": "stale"}})).unwrap();
    tresor_sdk::Storage::delete(&*h.storage, "upgraded")
        .await
        .unwrap();
    tresor_sdk::Storage::put(&*h.storage, "v1/a", raw)
        .await
        .unwrap();
    h.none(Operation::Read, "metadata/unrelated", Value::Null)
        .await;
    assert_eq!(h.metadata("a").await["current_version"], 2);
    assert_eq!(h.get("a").await["data"], json!({"v": "a2"}));
    assert!(!h.storage.keys().iter().any(|k| k.starts_with("v1/")));
}

#[tokio::test]
async fn an_empty_data_object_is_data_but_null_or_absent_is_not() {
    let h = Harness::v2();
    let w = h
        .ok(Operation::Update, "data/empty", json!({"data": {}}))
        .await;
    assert_eq!(w["version"], 1);
    assert_eq!(h.get("empty").await["data"], json!({}));
    // A JSON string holding an object is that object.
    h.ok(
        Operation::Update,
        "data/s",
        json!({"data": "{\"k\": \"v\"}"}),
    )
    .await;
    assert_eq!(h.get("s").await["data"], json!({"k": "v"}));
    // PATCH follows the same rule.
    h.put("p", json!({"a": 1})).await;
    for body in [json!({}), json!({"data": null}), json!({"options": {}})] {
        assert_eq!(
            h.invalid(Operation::Patch, "data/p", body).await,
            "no data provided"
        );
    }
    let w = h.ok(Operation::Patch, "data/p", json!({"data": {}})).await;
    assert_eq!(w["version"], 2);
    assert_eq!(h.get("p").await["data"], json!({"a": 1}));
}
