//! Runs the shared conformance suite against every backend, and checks the embedded
//! backend's persistence across reopen: data, and (issue 11, storage for HA) the revision
//! counter and per-key revisions.

use std::path::Path;
use std::sync::Arc;

use tresor_physical::{Backend, EmbeddedBackend, InmemBackend, PhysicalError, conformance};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inmem_conforms() {
    let b = Arc::new(InmemBackend::new());
    assert!(b.leader_lock().is_some(), "inmem provides a leader lock");
    conformance::run(b).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_conforms() {
    let dir = tempfile::tempdir().unwrap();
    let b = Arc::new(EmbeddedBackend::open(dir.path()).unwrap());
    assert!(b.leader_lock().is_some(), "embedded provides a leader lock");
    conformance::run(b).await;
}

/// Opens the store again; the writer thread may still hold the file for a moment after drop.
async fn reopen(dir: &Path) -> EmbeddedBackend {
    let mut tries = 0;
    loop {
        match EmbeddedBackend::open(dir) {
            Ok(b) => return b,
            Err(_) if tries < 50 => {
                tries += 1;
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            Err(e) => panic!("reopen failed: {e}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let b = EmbeddedBackend::open(dir.path()).unwrap();
        b.put("keep/me", b"value".to_vec()).await.unwrap();
    }
    let b = reopen(dir.path()).await;
    assert_eq!(
        b.get("keep/me").await.unwrap().as_deref(),
        Some(&b"value"[..])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_revisions_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let (ra, r) = {
        let b = EmbeddedBackend::open(dir.path()).unwrap();
        assert_eq!(
            b.revision().await.unwrap(),
            0,
            "a new store is at revision 0"
        );
        b.put("rev/a", b"a".to_vec()).await.unwrap();
        let ra = b.revision().await.unwrap();
        b.put("rev/b", b"b".to_vec()).await.unwrap();
        // The newest write is a delete: the counter cannot be recomputed from the keys left.
        b.delete("rev/b").await.unwrap();
        (ra, b.revision().await.unwrap())
    };
    assert_eq!(r, ra + 2);
    let b = reopen(dir.path()).await;
    assert_eq!(b.revision().await.unwrap(), r, "the revision survives");
    assert_eq!(
        b.get_with_revision("rev/a").await.unwrap(),
        Some((b"a".to_vec(), ra)),
        "so do per-key revisions"
    );
    // History starts at open: from now is fine, from before is compacted.
    let mut w = b.watch("rev/", r).await.unwrap();
    match b.watch("rev/", r - 1).await {
        Err(PhysicalError::Compacted { requested, oldest }) => {
            assert_eq!((requested, oldest), (r - 1, r));
        }
        other => panic!("watching from before the restart must fail, got {other:?}"),
    }
    let rc = b
        .compare_and_swap("rev/b", 0, Some(b"again".to_vec()))
        .await
        .unwrap();
    assert_eq!(rc, r + 1, "revisions continue, never reused");
    let e = tokio::time::timeout(std::time::Duration::from_secs(10), w.next())
        .await
        .expect("the change is delivered")
        .unwrap()
        .unwrap();
    assert_eq!((e.key.as_str(), e.revision), ("rev/b", rc));
}
