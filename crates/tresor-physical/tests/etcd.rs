//! The etcd backend against a real three-member etcd cluster on 127.0.0.1 (started by each
//! test, killed by PID at its end): the conformance suite, chunking of large values, fencing
//! of a deposed leader, losing a member (the first in `address`) under load, and etcd's
//! limits turned into clear errors.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use etcd_client::{Client, GetOptions};
use tresor_physical::testing::EtcdCluster;
use tresor_physical::{
    Backend, EtcdBackend, EtcdConfig, EventKind, Op, PhysicalError, conformance,
};

fn cluster() -> EtcdCluster {
    EtcdCluster::start(3).expect("starting a 3-member etcd cluster")
}

async fn backend(c: &EtcdCluster, path: &str) -> EtcdBackend {
    let mut cfg = EtcdConfig::new(c.endpoints());
    cfg.path = path.to_owned();
    EtcdBackend::connect(cfg).await.expect("connecting to etcd")
}

/// Every etcd key under `prefix` (raw: chunks and internal keys included).
async fn raw_keys(c: &EtcdCluster, prefix: &[u8]) -> Vec<Vec<u8>> {
    let mut client = Client::connect(c.endpoints(), None).await.unwrap();
    let r = client
        .get(
            prefix.to_vec(),
            Some(GetOptions::new().with_prefix().with_keys_only()),
        )
        .await
        .unwrap();
    r.kvs().iter().map(|kv| kv.key().to_vec()).collect()
}

async fn bounded<T>(secs: u64, what: &str, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(secs), f)
        .await
        .unwrap_or_else(|_| panic!("{what}: did not finish within {secs} s"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_conforms() {
    let c = cluster();
    let b = Arc::new(backend(&c, "/vault/").await);
    assert_eq!(b.kind(), "etcd");
    assert!(b.durable());
    let compactor = b.clone();
    let opts = conformance::Options {
        compact: Some(Box::new(move || {
            let b = compactor.clone();
            Box::pin(async move {
                let r = b.revision().await.unwrap();
                b.compact(r).await.unwrap();
            })
        })),
    };
    let start = Instant::now();
    bounded(
        600,
        "the conformance suite on etcd",
        conformance::run_with(b.clone(), opts),
    )
    .await;
    eprintln!("conformance on 3-member etcd: {:?}", start.elapsed());
    // Nothing internal is left behind but the prefix-deletion marker.
    let left = raw_keys(&c, b"/vault/").await;
    assert!(
        left.iter()
            .all(|k| k.as_slice() == b"/vault/\0delete-prefix"),
        "left over: {:?}",
        left.iter()
            .map(|k| String::from_utf8_lossy(k).into_owned())
            .collect::<Vec<_>>()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_chunks_large_values() {
    let c = cluster();
    let b = Arc::new(backend(&c, "/tresor/").await);
    // 3 MiB: twice etcd's default request limit (the test cluster keeps it).
    let big: Vec<u8> = (0..3 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    let r0 = b.revision().await.unwrap();
    let mut w = b.watch("", r0).await.unwrap();
    b.put("big/value", big.clone()).await.unwrap();
    let (v, rev) = b.get_with_revision("big/value").await.unwrap().unwrap();
    assert!(v == big, "the value reads back whole");
    let chunks = raw_keys(&c, b"/tresor/big/value\0").await;
    assert_eq!(chunks.len(), 3, "three chunks of 1 MiB");
    assert_eq!(
        b.list("big/").await.unwrap(),
        vec!["value"],
        "chunks are not listed"
    );
    assert_eq!(
        b.list_page("big/", None, 10).await.unwrap(),
        (vec!["big/value".to_owned()], None)
    );
    // The watcher hears one put of the key, at the manifest's revision.
    let e = bounded(10, "watch event", w.next()).await.unwrap().unwrap();
    assert_eq!(
        (e.key.as_str(), e.revision, e.kind),
        ("big/value", rev, EventKind::Put)
    );
    assert!(w.try_next().is_none(), "chunk writes are not events");
    // A snapshot reassembles it.
    let snap = b.snapshot().await.unwrap();
    let entries: Vec<_> = tokio::task::spawn_blocking(move || {
        snap.entries("").map(Result::unwrap).collect::<Vec<_>>()
    })
    .await
    .unwrap();
    assert_eq!(entries.len(), 1);
    assert!(entries[0].value == big && entries[0].revision == rev);
    // Overwritten by a smaller large value: the old generation goes.
    let smaller = vec![7u8; 2 * 1024 * 1024 + 5];
    b.put("big/value", smaller.clone()).await.unwrap();
    assert!(b.get("big/value").await.unwrap().unwrap() == smaller);
    assert_eq!(raw_keys(&c, b"/tresor/big/value\0").await.len(), 3);
    // Overwritten by a small value: no chunk is left.
    b.put("big/value", b"small".to_vec()).await.unwrap();
    assert_eq!(
        b.get("big/value").await.unwrap().as_deref(),
        Some(&b"small"[..])
    );
    assert!(raw_keys(&c, b"/tresor/big/value\0").await.is_empty());
    // A transaction of values that are small alone but too big together is chunked to fit.
    let ops: Vec<Op> = (0..6)
        .map(|i| Op::Put(format!("big/t{i}"), vec![i as u8; 400 * 1024]))
        .collect();
    b.transaction(ops).await.unwrap();
    for i in 0..6u8 {
        assert_eq!(
            b.get(&format!("big/t{i}")).await.unwrap().unwrap(),
            vec![i; 400 * 1024]
        );
    }
    // Deleting removes the chunks; so does a prefix delete.
    b.put("big/value", big.clone()).await.unwrap();
    b.delete("big/value").await.unwrap();
    assert!(raw_keys(&c, b"/tresor/big/value").await.is_empty());
    b.put("big/again", big).await.unwrap();
    b.delete_prefix("big/").await.unwrap();
    let left = raw_keys(&c, b"/tresor/big").await;
    assert!(left.is_empty(), "{} keys left", left.len());
    assert!(b.list("").await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deposed_leader_cannot_write() {
    let c = cluster();
    let b1 = backend(&c, "/vault/").await;
    let b2 = backend(&c, "/vault/").await;
    let lock1 = b1.leader_lock().unwrap();
    // Before holding the lock, writes are not fenced.
    b1.put("before", b"1".to_vec()).await.unwrap();
    let guard = bounded(
        10,
        "acquire",
        lock1.acquire("node-1", b"https://n1:8200".to_vec()),
    )
    .await
    .unwrap();
    b1.put("k", b"by the leader".to_vec()).await.unwrap();
    let leader = b2.leader_lock().unwrap().leader().await.unwrap().unwrap();
    assert_eq!(leader.node_id, "node-1");
    assert_eq!(leader.value, b"https://n1:8200");
    // Revoke the leader's lease behind its back.
    let mut raw = Client::connect(c.endpoints(), None).await.unwrap();
    let keys = raw
        .get(
            b"/vault/\0leader/".to_vec(),
            Some(GetOptions::new().with_prefix()),
        )
        .await
        .unwrap();
    assert_eq!(keys.kvs().len(), 1);
    assert_eq!(
        keys.kvs()[0].create_revision() as u64,
        guard.term(),
        "term = create revision"
    );
    raw.lease_revoke(keys.kvs()[0].lease()).await.unwrap();
    let before = b2.revision().await.unwrap();
    // Every kind of write fails, and writes nothing.
    let fenced = |r: Result<(), PhysicalError>, what: &str| match r {
        Err(PhysicalError::Fenced(m)) => assert!(
            m.contains("etcd") && m.contains("leader lock"),
            "{what}: {m}"
        ),
        other => panic!("{what}: expected Fenced, got {other:?}"),
    };
    fenced(b1.put("k", b"stale".to_vec()).await, "put");
    fenced(b1.delete("before").await, "delete");
    fenced(
        b1.transaction(vec![Op::Put("t".into(), vec![1]), Op::Delete("k".into())])
            .await,
        "transaction",
    );
    fenced(
        b1.transaction_if(vec![], vec![Op::Put("t".into(), vec![1])])
            .await
            .map(|_| ()),
        "transaction_if",
    );
    fenced(b1.delete_prefix("b").await.map(|_| ()), "delete_prefix");
    fenced(
        b1.put("large", vec![1; 3 * 1024 * 1024]).await,
        "chunked put",
    );
    assert_eq!(b2.revision().await.unwrap(), before, "nothing was written");
    assert_eq!(
        b2.get("k").await.unwrap().as_deref(),
        Some(&b"by the leader"[..])
    );
    assert_eq!(b2.get("before").await.unwrap().as_deref(), Some(&b"1"[..]));
    assert!(
        raw_keys(&c, b"/vault/large").await.is_empty(),
        "no chunk was staged"
    );
    // The holder is told.
    bounded(10, "lost after revoke", guard.lost()).await;
    assert!(guard.is_lost());
    // Another node takes over and writes; the deposed one still cannot.
    let lock2 = b2.leader_lock().unwrap();
    let g2 = bounded(10, "acquire by node-2", lock2.acquire("node-2", vec![]))
        .await
        .unwrap();
    assert!(g2.term() > guard.term());
    b2.put("k", b"by the new leader".to_vec()).await.unwrap();
    fenced(
        b1.put("k", b"stale again".to_vec()).await,
        "put after the new election",
    );
    assert_eq!(
        b2.get("k").await.unwrap().as_deref(),
        Some(&b"by the new leader"[..])
    );
    drop(guard);
    g2.release().await.unwrap();
}

/// A holder that stops renewing (a crashed node) loses the lock when its lease runs out; a
/// waiting node gets it within 5 s with the default `lock_timeout`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lock_fails_over_when_its_holder_stops_renewing() {
    let c = cluster();
    let b = backend(&c, "/vault/").await;
    // A "crashed" holder: a lease of the default TTL that nobody renews, elected through
    // etcd's election API like ours.
    let mut raw = Client::connect(c.endpoints(), None).await.unwrap();
    let ttl = tresor_physical::DEFAULT_LOCK_TIMEOUT.as_secs() as i64;
    let lease = raw.lease_grant(ttl, None).await.unwrap().id();
    let crashed_at = Instant::now();
    raw.campaign(b"/vault/\0leader".to_vec(), b"crashed".to_vec(), lease)
        .await
        .unwrap();
    let lock = b.leader_lock().unwrap();
    let g = bounded(
        15,
        "acquire after the holder died",
        lock.acquire("standby", vec![]),
    )
    .await
    .unwrap();
    let took = crashed_at.elapsed();
    eprintln!("lock taken over {took:?} after the holder's last renewal (lock_timeout {ttl} s)");
    assert!(
        took >= Duration::from_secs(ttl as u64 - 1),
        "not before the lease ran out: {took:?}"
    );
    assert!(
        took < Duration::from_secs(5),
        "failover within 5 s: {took:?}"
    );
    assert_eq!(lock.leader().await.unwrap().unwrap().node_id, "standby");
    g.release().await.unwrap();
    assert_eq!(lock.leader().await.unwrap(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn losing_a_member_under_load_causes_no_errors() {
    let mut c = cluster();
    let b = Arc::new(backend(&c, "/vault/").await);
    let r0 = b.revision().await.unwrap();
    let mut w = b.watch("load/", r0).await.unwrap();
    // The watcher is read while the load runs, and must see every write.
    let target = Arc::new(AtomicU64::new(u64::MAX));
    let watcher = {
        let target = target.clone();
        tokio::spawn(async move {
            let mut seen = std::collections::BTreeSet::new();
            let deadline = Instant::now() + Duration::from_secs(120);
            while (seen.len() as u64) < target.load(Ordering::Relaxed) {
                assert!(Instant::now() < deadline, "watcher: events missing");
                match tokio::time::timeout(Duration::from_secs(1), w.next()).await {
                    Err(_) => continue,
                    Ok(Some(Ok(e))) => {
                        assert_eq!(e.kind, EventKind::Put);
                        // A put retried after its member died may commit twice (same
                        // value, two revisions): every key at least once.
                        seen.insert(e.key);
                    }
                    Ok(other) => panic!("watcher ended: {other:?}"),
                }
            }
            seen.len()
        })
    };
    let acked = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut workers = Vec::new();
    for t in 0..4u64 {
        let (b, acked, stop) = (b.clone(), acked.clone(), stop.clone());
        workers.push(tokio::spawn(async move {
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let key = format!("load/{t}/{i:06}");
                b.put(&key, i.to_be_bytes().to_vec())
                    .await
                    .unwrap_or_else(|e| panic!("put {key}: {e}"));
                acked.fetch_add(1, Ordering::Relaxed);
                let v = b
                    .get(&key)
                    .await
                    .unwrap_or_else(|e| panic!("get {key}: {e}"));
                assert_eq!(v, Some(i.to_be_bytes().to_vec()));
                if i.is_multiple_of(20) {
                    b.list(&format!("load/{t}/"))
                        .await
                        .unwrap_or_else(|e| panic!("list: {e}"));
                }
                i += 1;
            }
            i
        }));
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before = acked.load(Ordering::Relaxed);
    let killed_at = Instant::now();
    c.kill(0); // the first member in `address`
    tokio::time::sleep(Duration::from_secs(4)).await;
    let after_kill = acked.load(Ordering::Relaxed);
    stop.store(true, Ordering::Relaxed);
    let mut total = 0;
    for wk in workers {
        total += bounded(60, "load workers", wk).await.unwrap();
    }
    eprintln!(
        "writes before the kill: {before}, in the 4 s after it: {}, total {total} ({:?} since the kill)",
        after_kill - before,
        killed_at.elapsed()
    );
    assert!(after_kill > before, "writes went on after the member died");
    // Every acknowledged write is there, and the watcher saw each once.
    target.store(total, Ordering::Relaxed);
    let seen = bounded(150, "watcher", watcher).await.unwrap();
    assert_eq!(seen as u64, total);
    for t in 0..4 {
        let n = b.list(&format!("load/{t}/")).await.unwrap().len();
        assert!(n > 0);
    }
    let (keys, _) = b.list_page("load/", None, 1_000_000).await.unwrap();
    assert_eq!(
        keys.len() as u64,
        total,
        "every acknowledged write is readable"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_limits_become_clear_errors() {
    let c = cluster();
    let b = backend(&c, "/vault/").await;
    // More operations than the cluster's --max-txn-ops.
    let ops: Vec<Op> = (0..3000)
        .map(|i| Op::Put(format!("many/{i}"), vec![1]))
        .collect();
    match b.transaction(ops).await {
        Err(PhysicalError::Io(m)) => {
            assert!(
                m.starts_with("etcd transaction") && m.contains("--max-txn-ops"),
                "{m}"
            )
        }
        other => panic!("expected a clear error, got {other:?}"),
    }
    assert!(
        b.list("many/").await.unwrap().is_empty(),
        "nothing of it written"
    );
    // A request larger than --max-request-bytes (values too small to be chunked, many keys).
    let ops: Vec<Op> = (0..40)
        .map(|i| Op::Put(format!("wide/{i}"), vec![1; 60 * 1024]))
        .collect();
    match b.transaction(ops).await {
        Err(PhysicalError::Io(m)) => {
            assert!(
                m.starts_with("etcd transaction") && m.contains("--max-request-bytes"),
                "{m}"
            )
        }
        other => panic!("expected a clear error, got {other:?}"),
    }
    // Nobody listening: a bounded, clear failure.
    let mut cfg = EtcdConfig::new(vec![format!("http://127.0.0.1:{}", free_port())]);
    cfg.request_timeout = Duration::from_secs(1);
    let started = Instant::now();
    match EtcdBackend::connect(cfg).await {
        Err(PhysicalError::Io(m)) => assert!(
            m.starts_with("etcd connect") || m.starts_with("etcd "),
            "{m}"
        ),
        other => panic!("expected a connection error, got {other:?}"),
    }
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
