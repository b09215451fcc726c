//! Issue 17, automatic snapshots: a configuration under `sys/storage/raft/snapshot-auto/config/`
//! makes the background tick write snapshots into a private directory (files 0600) that verify
//! with the unseal key, keeping `retain` of them; the status names the last file; a space limit
//! that is too small is an error in the status and leaves no file; bad settings are 400s; sudo
//! is required; the `sys/storage/snapshot-auto/` spelling is the same configuration.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use std::sync::Arc;

use common::{dev_core, dev_core_with_config};
use serde_json::{Value, json};
use tresor_core::CoreConfig;
use tresor_core::snapshot;
use tresor_core::{CoreError, CoreRequest};
use tresor_sdk::Operation::{Delete, List, Read, Update};
use tresor_sdk::clock::ManualClock;

/// The snapshot files in `dir`, sorted.
fn snaps(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .map(|rd| rd.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    v.retain(|p| p.extension().is_some_and(|e| e == "snap"));
    v.sort();
    v
}

/// Runs one background tick at `at` and waits until the status shows a finished run newer than
/// `runs_before` (ends counted by `last_snapshot_end` changing) or an error count change.
/// The core's clock is `clock`, so the server's own 1-second background loop ticks at the same
/// time as the test.
async fn tick_and_wait(t: &common::TestCore, clock: &ManualClock, at: i64, name: &str) -> Value {
    let status_path = format!("sys/storage/raft/snapshot-auto/status/{name}");
    let before = Value::Object(t.data(Read, &status_path, json!({}), &t.root).await);
    clock.set(at);
    t.core.maintenance_tick(at).await.expect("tick");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let now = Value::Object(t.data(Read, &status_path, json!({}), &t.root).await);
        if now["last_snapshot_end"] != before["last_snapshot_end"] && now["snapshot_start"] == "" {
            return now;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no run finished: {now}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshots_are_written_on_schedule_kept_and_verifiable() {
    let t0 = 1_900_000_000;
    let clock = Arc::new(ManualClock::at(t0));
    let t = dev_core_with_config(CoreConfig {
        clock: clock.clone(),
        ..CoreConfig::default()
    })
    .await;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("snaps");
    t.ok(
        Update,
        "sys/storage/raft/snapshot-auto/config/hourly",
        json!({"interval": "1h", "retain": 2, "path_prefix": dir.to_str().unwrap(), "storage_type": "local", "file_prefix": "tresor"}),
        &t.root,
    )
    .await;
    let cfg = Value::Object(
        t.data(
            Read,
            "sys/storage/raft/snapshot-auto/config/hourly",
            json!({}),
            &t.root,
        )
        .await,
    );
    assert_eq!(cfg["interval"], 3600, "{cfg}");
    assert_eq!(cfg["retain"], 2);
    assert_eq!(cfg["file_prefix"], "tresor");
    assert_eq!(cfg["local_max_space"], 0);
    // The other spelling reads and lists the same configuration.
    let same = Value::Object(
        t.data(
            Read,
            "sys/storage/snapshot-auto/config/hourly",
            json!({}),
            &t.root,
        )
        .await,
    );
    assert_eq!(same, cfg);
    let listed = t
        .data(
            List,
            "sys/storage/raft/snapshot-auto/config/",
            json!({}),
            &t.root,
        )
        .await;
    assert_eq!(listed["keys"], json!(["hourly"]));

    // The first tick schedules the first run an interval later; nothing is written before.
    t.core.maintenance_tick(t0).await.unwrap();
    clock.set(t0 + 3599);
    t.core.maintenance_tick(t0 + 3599).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(snaps(&dir).is_empty());
    let st = t
        .data(
            Read,
            "sys/storage/raft/snapshot-auto/status/hourly",
            json!({}),
            &t.root,
        )
        .await;
    assert_eq!(
        st["next_snapshot_start"],
        tresor_sdk::clock::rfc3339(t0 + 3600),
        "{st:?}"
    );

    // Three runs an hour apart: two files stay, the newest named by the status.
    let mut last = Value::Null;
    for i in 1..=3 {
        t.policy(
            &format!("run{i}"),
            r#"path "x/*" { capabilities = ["read"] }"#,
        )
        .await;
        last = tick_and_wait(&t, &clock, t0 + 3600 * i, "hourly").await;
        assert_eq!(last["consecutive_errors"], 0, "{last}");
        assert_eq!(last["last_snapshot_error"], "", "{last}");
        // Distinct millisecond stamps in the file names.
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let files = snaps(&dir);
    assert_eq!(files.len(), 2, "{files:?}");
    assert_eq!(
        last["last_snapshot_url"],
        files[1].to_str().unwrap(),
        "{last}"
    );
    assert_eq!(
        std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777,
        0o700
    );
    for f in &files {
        assert_eq!(
            std::fs::metadata(f).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert!(
            f.file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .starts_with("tresor-")
        );
    }
    // No partial files left behind.
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 2);
    // The newest is a whole snapshot that verifies with the unseal key.
    let bytes = std::fs::read(&files[1]).unwrap();
    snapshot::parse(&bytes).expect("a snapshot");
    let key = tresor_core::barrier::Key::from_slice(&t.key).unwrap();
    let verified = snapshot::verify_with_key(&bytes, &key).expect("verifies");
    assert!(verified.decrypted > 0);

    // A space limit too small for one snapshot: the run fails, says why, keeps no new file.
    t.ok(
        Update,
        "sys/storage/snapshot-auto/config/hourly",
        json!({"local_max_space": 10}),
        &t.root,
    )
    .await;
    let t1 = t0 + 100_000;
    clock.set(t1);
    t.core.maintenance_tick(t1).await.unwrap();
    let st = tick_and_wait(&t, &clock, t1 + 3600, "hourly").await;
    assert_eq!(st["consecutive_errors"], 1, "{st}");
    assert!(
        st["last_snapshot_error"]
            .as_str()
            .unwrap()
            .contains("local_max_space"),
        "{st}"
    );
    assert_eq!(
        snaps(&dir),
        files,
        "a failed run deletes nothing and adds nothing"
    );
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 2);

    // Deleted: no more runs, no status.
    t.ok(
        Delete,
        "sys/storage/raft/snapshot-auto/config/hourly",
        json!({}),
        &t.root,
    )
    .await;
    let gone = t
        .req(
            Read,
            "sys/storage/raft/snapshot-auto/status/hourly",
            json!({}),
            &t.root,
        )
        .await;
    assert!(
        matches!(
            &gone,
            Err(_) | Ok(tresor_core::CoreResponse { response: None, .. })
        ),
        "{gone:?}"
    );
    let n = snaps(&dir).len();
    clock.set(t1 + 3 * 3600);
    t.core.maintenance_tick(t1 + 3 * 3600).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(snaps(&dir).len(), n, "a deleted configuration still ran");
}

#[tokio::test]
async fn bad_settings_are_refused_and_sudo_is_required() {
    let t = dev_core().await;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    for (body, needle) in [
        (
            json!({"path_prefix": d, "storage_type": "local"}),
            "interval is required",
        ),
        (
            json!({"interval": "1h", "path_prefix": d}),
            "storage_type is required",
        ),
        (
            json!({"interval": "1h", "path_prefix": d, "storage_type": "aws-s3"}),
            "not supported",
        ),
        (
            json!({"interval": "1h", "path_prefix": "relative/dir", "storage_type": "local"}),
            "absolute",
        ),
        (
            json!({"interval": "1h", "storage_type": "local"}),
            "path_prefix is required",
        ),
        (
            json!({"interval": "1h", "path_prefix": d, "storage_type": "local", "retain": 0}),
            "retain",
        ),
        (
            json!({"interval": "1h", "path_prefix": d, "storage_type": "local", "file_prefix": "../x"}),
            "file_prefix",
        ),
    ] {
        match t
            .req(
                Update,
                "sys/storage/raft/snapshot-auto/config/x",
                body.clone(),
                &t.root,
            )
            .await
        {
            Err(CoreError::InvalidRequest(m)) => assert!(m.contains(needle), "{body}: {m}"),
            other => panic!("{body}: expected a 400, got {other:?}"),
        }
    }
    t.policy(
        "ops",
        r#"path "sys/storage/*" { capabilities = ["create", "read", "update", "list"] }"#,
    )
    .await;
    let ops = t.token(&["ops"], json!({})).await;
    let Value::Object(m) = json!({"interval": "1h", "path_prefix": d, "storage_type": "local"})
    else {
        unreachable!()
    };
    for path in [
        "sys/storage/raft/snapshot-auto/config/x",
        "sys/storage/snapshot-auto/config/x",
    ] {
        assert!(matches!(
            t.core
                .handle(CoreRequest::new(Update, path, m.clone(), Some(&ops)))
                .await,
            Err(CoreError::PermissionDenied)
        ));
    }
}
