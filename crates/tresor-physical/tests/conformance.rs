//! Runs the shared conformance suite against every backend, and checks the embedded
//! backend's persistence across reopen.

use std::sync::Arc;

use tresor_physical::{Backend, EmbeddedBackend, InmemBackend, conformance};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inmem_conforms() {
    conformance::run(Arc::new(InmemBackend::new())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_conforms() {
    let dir = tempfile::tempdir().unwrap();
    conformance::run(Arc::new(EmbeddedBackend::open(dir.path()).unwrap())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let b = EmbeddedBackend::open(dir.path()).unwrap();
        b.put("keep/me", b"value".to_vec()).await.unwrap();
    }
    // The writer thread may still hold the file for a moment after drop.
    let mut tries = 0;
    let b = loop {
        match EmbeddedBackend::open(dir.path()) {
            Ok(b) => break b,
            Err(e) if tries < 50 => {
                tries += 1;
                let _ = e;
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            Err(e) => panic!("reopen failed: {e}"),
        }
    };
    assert_eq!(
        b.get("keep/me").await.unwrap().as_deref(),
        Some(&b"value"[..])
    );
}
