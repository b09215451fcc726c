//! The one conformance suite every [`Backend`] must pass (house style: one suite per trait).
//! Backends' own test files call [`run`]; a failure panics with the case that broke.
//!
//! Besides the basic key-value contract it covers the primitives for HA and snapshots (see
//! the crate docs): revisions, conditional writes and their atomicity under concurrent
//! writers, the change feed (order, prefix deletions, compaction, slow watchers), range
//! delete, paged listing, point-in-time snapshots and the leader lock.

use std::collections::BTreeSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use crate::{
    Backend, Check, Entry, Event, EventKind, Leader, Op, PhysicalError, WATCH_BUFFER,
    WATCH_HISTORY, Watcher,
};

/// Makes a backend forget its change history up to its current revision.
pub type Compactor = Box<dyn Fn() -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

/// How a backend differs in what the suite can expect of it.
#[derive(Default)]
pub struct Options {
    /// For backends whose watch history is not a ring of [`WATCH_HISTORY`] events but lasts
    /// until it is compacted (etcd): the suite calls this where it would otherwise overflow
    /// the ring, and expects the same [`PhysicalError::Compacted`] answers.
    pub compact: Option<Compactor>,
}

/// Runs every conformance case against `b`, which must start empty.
pub async fn run(b: Arc<dyn Backend>) {
    run_with(b, Options::default()).await;
}

/// [`run`], for a backend described by `opts`.
pub async fn run_with(b: Arc<dyn Backend>, opts: Options) {
    get_put_delete(&*b).await;
    listing(&*b).await;
    transactions(&*b).await;
    invalid_keys(&*b).await;
    concurrent_writers(b.clone()).await;
    b.delete_prefix("c/").await.unwrap();
    revisions(&*b).await;
    conditional_writes(&*b).await;
    cas_exactly_one_winner(b.clone()).await;
    cas_no_lost_updates(b.clone()).await;
    failed_check_fails_alone(b.clone()).await;
    watch_in_order(&*b).await;
    watch_prefix_deletes(&*b).await;
    watch_compaction(&*b, &opts).await;
    slow_watcher(b.clone()).await;
    range_delete(&*b).await;
    paging(&*b).await;
    snapshots(b.clone()).await;
    leader_lock(&*b).await;
    assert!(
        b.list("").await.unwrap().is_empty(),
        "every case cleans up after itself"
    );
}

async fn get_put_delete(b: &dyn Backend) {
    assert_eq!(
        b.get("missing").await.unwrap(),
        None,
        "missing key reads as None"
    );
    b.put("a", b"one".to_vec()).await.unwrap();
    assert_eq!(b.get("a").await.unwrap().as_deref(), Some(&b"one"[..]));
    b.put("a", b"two".to_vec()).await.unwrap();
    assert_eq!(
        b.get("a").await.unwrap().as_deref(),
        Some(&b"two"[..]),
        "put overwrites"
    );
    b.put("empty", Vec::new()).await.unwrap();
    assert_eq!(
        b.get("empty").await.unwrap().as_deref(),
        Some(&b""[..]),
        "empty values are kept"
    );
    b.delete("a").await.unwrap();
    b.delete("empty").await.unwrap();
    assert_eq!(b.get("a").await.unwrap(), None, "delete removes");
    b.delete("a").await.unwrap(); // deleting a missing key is fine
}

async fn listing(b: &dyn Backend) {
    for k in [
        "l/a", "l/b/c", "l/b/d", "l/b/e/f", "l/c", "l/c/x", "l2/z", "la",
    ] {
        b.put(k, vec![1]).await.unwrap();
    }
    assert_eq!(b.list("l/").await.unwrap(), vec!["a", "b/", "c", "c/"]);
    assert_eq!(b.list("l/b/").await.unwrap(), vec!["c", "d", "e/"]);
    assert_eq!(b.list("nothing/").await.unwrap(), Vec::<String>::new());
    let root = b.list("").await.unwrap();
    assert_eq!(root, vec!["l/", "l2/", "la"]);
    for k in [
        "l/a", "l/b/c", "l/b/d", "l/b/e/f", "l/c", "l/c/x", "l2/z", "la",
    ] {
        b.delete(k).await.unwrap();
    }
    assert!(
        b.list("").await.unwrap().is_empty(),
        "all listed keys deleted"
    );
}

async fn transactions(b: &dyn Backend) {
    b.put("t/old", vec![0]).await.unwrap();
    b.transaction(vec![
        Op::Put("t/1".into(), vec![1]),
        Op::Put("t/2".into(), vec![2]),
        Op::Delete("t/old".into()),
    ])
    .await
    .unwrap();
    assert_eq!(b.list("t/").await.unwrap(), vec!["1", "2"]);
    // A batch with an invalid key is rejected whole.
    let err = b
        .transaction(vec![
            Op::Put("t/3".into(), vec![3]),
            Op::Put("".into(), vec![]),
        ])
        .await;
    assert!(err.is_err(), "invalid key in a batch is an error");
    assert_eq!(
        b.get("t/3").await.unwrap(),
        None,
        "a rejected batch writes nothing"
    );
    b.transaction(vec![Op::Delete("t/1".into()), Op::Delete("t/2".into())])
        .await
        .unwrap();
}

async fn invalid_keys(b: &dyn Backend) {
    assert!(b.put("", vec![1]).await.is_err());
    assert!(b.put("/abs", vec![1]).await.is_err());
    assert!(b.get("nul\0key").await.is_err());
}

async fn concurrent_writers(b: Arc<dyn Backend>) {
    let mut tasks = Vec::new();
    for w in 0..16 {
        let b = b.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..25 {
                b.put(&format!("c/{w:02}/{i:03}"), format!("{w}-{i}").into_bytes())
                    .await
                    .unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(b.list("c/").await.unwrap().len(), 16);
    for w in 0..16 {
        let keys = b.list(&format!("c/{w:02}/")).await.unwrap();
        assert_eq!(keys.len(), 25, "writer {w} lost writes");
        let v = b.get(&format!("c/{w:02}/007")).await.unwrap().unwrap();
        assert_eq!(v, format!("{w}-7").into_bytes());
    }
}

/// Fails the case instead of hanging when `f` does not finish in `secs` seconds.
async fn within<T>(secs: u64, what: &str, f: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(secs), f)
        .await
        .unwrap_or_else(|_| panic!("{what}: did not finish within {secs} s"))
}

/// The watcher's next event, which must come.
async fn next_event(w: &mut Watcher) -> Event {
    match within(10, "waiting for a watch event", w.next()).await {
        Some(Ok(e)) => e,
        other => panic!("expected an event, got {other:?}"),
    }
}

fn ev(key: &str, revision: u64, kind: EventKind) -> Event {
    Event {
        key: key.to_owned(),
        revision,
        kind,
    }
}

fn put(key: &str, value: &[u8]) -> Op {
    Op::Put(key.to_owned(), value.to_vec())
}

fn is_conflict(r: &crate::Result<u64>, on: &str) -> bool {
    matches!(r, Err(PhysicalError::Conflict { key, .. }) if key == on)
}

async fn revisions(b: &dyn Backend) {
    let r0 = b.revision().await.unwrap();
    assert_eq!(b.get_with_revision("rev/a").await.unwrap(), None);
    b.put("rev/a", b"1".to_vec()).await.unwrap();
    let r1 = b.revision().await.unwrap();
    assert_eq!(r1, r0 + 1, "one put is one commit");
    assert_eq!(
        b.get_with_revision("rev/a").await.unwrap(),
        Some((b"1".to_vec(), r1))
    );
    let r2 = b
        .transaction_if(vec![], vec![put("rev/a", b"2"), put("rev/b", b"3")])
        .await
        .unwrap();
    assert_eq!(r2, r1 + 1, "a transaction is one revision");
    assert_eq!(b.revision().await.unwrap(), r2);
    assert_eq!(
        b.get_with_revision("rev/a").await.unwrap(),
        Some((b"2".to_vec(), r2))
    );
    assert_eq!(
        b.get_with_revision("rev/b").await.unwrap(),
        Some((b"3".to_vec(), r2)),
        "every key of a transaction carries its revision"
    );
    // Changing nothing takes no revision.
    b.delete("rev/missing").await.unwrap();
    assert_eq!(
        b.transaction_if(vec![], vec![Op::Delete("rev/missing".into())])
            .await
            .unwrap(),
        r2,
        "a no-op transaction answers the current revision"
    );
    assert_eq!(b.revision().await.unwrap(), r2);
    b.delete("rev/a").await.unwrap();
    assert_eq!(b.revision().await.unwrap(), r2 + 1, "a delete is a commit");
    assert_eq!(b.get_with_revision("rev/a").await.unwrap(), None);
    assert!(matches!(
        b.get_with_revision("").await,
        Err(PhysicalError::InvalidKey(_))
    ));
    assert!(matches!(
        b.transaction_if(vec![Check::new("/abs", 0)], vec![]).await,
        Err(PhysicalError::InvalidKey(_))
    ));
    b.delete("rev/b").await.unwrap();
}

async fn conditional_writes(b: &dyn Backend) {
    // Revision 0 means "absent": create-only.
    let r = b
        .compare_and_swap("cas/k", 0, Some(b"v1".to_vec()))
        .await
        .unwrap();
    match b.compare_and_swap("cas/k", 0, Some(b"v2".to_vec())).await {
        Err(PhysicalError::Conflict {
            key,
            expected: 0,
            actual,
        }) => {
            assert_eq!(key, "cas/k");
            assert_eq!(actual, r, "the conflict reports the key's revision");
        }
        other => panic!("create over an existing key must conflict, got {other:?}"),
    }
    assert_eq!(
        b.get("cas/k").await.unwrap().as_deref(),
        Some(&b"v1"[..]),
        "a failed check writes nothing"
    );
    let stale = b
        .compare_and_swap("cas/k", r + 1000, Some(b"v3".to_vec()))
        .await;
    assert!(is_conflict(&stale, "cas/k"), "wrong revision: {stale:?}");
    assert_eq!(
        b.revision().await.unwrap(),
        r,
        "a conflict takes no revision"
    );
    let r2 = b
        .compare_and_swap("cas/k", r, Some(b"v4".to_vec()))
        .await
        .unwrap();
    assert_eq!(r2, r + 1);
    assert_eq!(
        b.get_with_revision("cas/k").await.unwrap(),
        Some((b"v4".to_vec(), r2))
    );
    let old = b.compare_and_swap("cas/k", r, None).await;
    assert!(
        is_conflict(&old, "cas/k"),
        "delete at an old revision: {old:?}"
    );
    b.compare_and_swap("cas/k", r2, None).await.unwrap();
    assert_eq!(b.get("cas/k").await.unwrap(), None, "a CAS delete removes");

    // All checks or nothing; the error names the check that failed.
    let rx = b
        .transaction_if(vec![], vec![put("cas/x", b"x")])
        .await
        .unwrap();
    let res = b
        .transaction_if(
            vec![Check::new("cas/x", rx), Check::new("cas/y", 5)],
            vec![put("cas/x", b"changed"), put("cas/z", b"z")],
        )
        .await;
    match res {
        Err(PhysicalError::Conflict {
            key,
            expected: 5,
            actual: 0,
        }) if key == "cas/y" => {}
        other => panic!("expected a conflict on cas/y, got {other:?}"),
    }
    assert_eq!(b.get("cas/x").await.unwrap().as_deref(), Some(&b"x"[..]));
    assert_eq!(b.get("cas/z").await.unwrap(), None, "nothing of it applied");
    // A check may guard keys the transaction does not write (how fencing looks).
    let rw = b
        .transaction_if(vec![Check::new("cas/x", rx)], vec![put("cas/w", b"w")])
        .await
        .unwrap();
    assert_eq!(b.get_with_revision("cas/x").await.unwrap().unwrap().1, rx);
    assert_eq!(b.get_with_revision("cas/w").await.unwrap().unwrap().1, rw);
    b.transaction(vec![Op::Delete("cas/x".into()), Op::Delete("cas/w".into())])
        .await
        .unwrap();
}

/// Many writers racing on the same revision: exactly one wins each round, and the losers are
/// told the winner's revision.
async fn cas_exactly_one_winner(b: Arc<dyn Backend>) {
    const TASKS: usize = 24;
    const ROUNDS: usize = 8;
    b.put("race/k", b"start".to_vec()).await.unwrap();
    for round in 0..ROUNDS {
        let (_, rev) = b.get_with_revision("race/k").await.unwrap().unwrap();
        let start = Arc::new(tokio::sync::Barrier::new(TASKS));
        let mut tasks = Vec::new();
        for t in 0..TASKS {
            let (b, start) = (b.clone(), start.clone());
            tasks.push(tokio::spawn(async move {
                start.wait().await;
                let value = format!("{round}-{t}").into_bytes();
                (
                    value.clone(),
                    b.compare_and_swap("race/k", rev, Some(value)).await,
                )
            }));
        }
        let mut winners = Vec::new();
        let mut losers = Vec::new();
        for t in tasks {
            match within(60, "CAS race", t).await.unwrap() {
                (v, Ok(r)) => winners.push((v, r)),
                (_, Err(PhysicalError::Conflict { actual, .. })) => losers.push(actual),
                (_, Err(e)) => panic!("CAS failed with {e}"),
            }
        }
        assert_eq!(winners.len(), 1, "round {round}: exactly one CAS wins");
        let (value, r) = winners.pop().unwrap();
        assert!(
            losers.iter().all(|&a| a == r),
            "losers saw the winner's revision"
        );
        assert_eq!(
            b.get_with_revision("race/k").await.unwrap(),
            Some((value, r))
        );
    }
    b.delete("race/k").await.unwrap();
}

/// Read-modify-write with retry on conflict: no increment is lost, and the change feed sees
/// every one of them, in revision order.
async fn cas_no_lost_updates(b: Arc<dyn Backend>) {
    const WORKERS: usize = 8;
    const INCREMENTS: usize = 25;
    let r0 = b
        .transaction_if(vec![], vec![put("race/counter", b"0")])
        .await
        .unwrap();
    let mut w = b.watch("race/counter", r0).await.unwrap();
    let mut tasks = Vec::new();
    for _ in 0..WORKERS {
        let b = b.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..INCREMENTS {
                loop {
                    let (v, rev) = b.get_with_revision("race/counter").await.unwrap().unwrap();
                    let n: usize = String::from_utf8(v).unwrap().parse().unwrap();
                    let next = (n + 1).to_string().into_bytes();
                    match b.compare_and_swap("race/counter", rev, Some(next)).await {
                        Ok(_) => break,
                        Err(PhysicalError::Conflict { .. }) => continue,
                        Err(e) => panic!("increment failed: {e}"),
                    }
                }
            }
        }));
    }
    for t in tasks {
        within(120, "counter increments", t).await.unwrap();
    }
    let (v, last) = b.get_with_revision("race/counter").await.unwrap().unwrap();
    assert_eq!(
        String::from_utf8(v).unwrap(),
        (WORKERS * INCREMENTS).to_string(),
        "no increment lost"
    );
    let mut prev = r0;
    for _ in 0..WORKERS * INCREMENTS {
        let e = next_event(&mut w).await;
        assert_eq!(e.kind, EventKind::Put);
        assert!(e.revision > prev, "events come in commit order");
        prev = e.revision;
    }
    assert_eq!(prev, last, "the last event is the last write");
    assert!(w.try_next().is_none(), "one event per successful CAS");
    b.delete("race/counter").await.unwrap();
}

/// Transactions whose checks fail, racing with ones that succeed (so that group commit folds
/// them together): each fails alone.
async fn failed_check_fails_alone(b: Arc<dyn Backend>) {
    const TASKS: usize = 32;
    for round in 0..4 {
        let start = Arc::new(tokio::sync::Barrier::new(TASKS));
        let mut tasks = Vec::new();
        for t in 0..TASKS {
            let (b, start) = (b.clone(), start.clone());
            tasks.push(tokio::spawn(async move {
                start.wait().await;
                let key = format!("alone/{round}/{t:02}");
                let check = if t % 2 == 0 {
                    Check::new("alone/guard", 999_999) // never holds
                } else {
                    Check::new(key.clone(), 0) // create-only: holds
                };
                b.transaction_if(vec![check], vec![put(&key, b"v")]).await
            }));
        }
        for (t, task) in tasks.into_iter().enumerate() {
            let res = within(60, "mixed checks", task).await.unwrap();
            if t % 2 == 0 {
                assert!(is_conflict(&res, "alone/guard"), "task {t}: {res:?}");
            } else {
                assert!(res.is_ok(), "task {t} failed with its neighbour: {res:?}");
            }
        }
        let (keys, _) = b
            .list_page(&format!("alone/{round}/"), None, 100)
            .await
            .unwrap();
        let want: Vec<String> = (0..TASKS)
            .filter(|t| t % 2 == 1)
            .map(|t| format!("alone/{round}/{t:02}"))
            .collect();
        assert_eq!(keys, want, "exactly the passing transactions wrote");
    }
    b.delete_prefix("alone/").await.unwrap();
}

async fn watch_in_order(b: &dyn Backend) {
    use EventKind::{Delete, Put};
    let r = b.revision().await.unwrap();
    b.put("w/a", b"1".to_vec()).await.unwrap();
    b.put("w/b", b"2".to_vec()).await.unwrap();
    b.put("other/x", b"3".to_vec()).await.unwrap();
    b.delete("w/a").await.unwrap();
    b.transaction(vec![put("w/c", b"4"), Op::Delete("w/b".into())])
        .await
        .unwrap();
    b.delete("w/missing").await.unwrap(); // no change, no event
    let expected = vec![
        ev("w/a", r + 1, Put),
        ev("w/b", r + 2, Put),
        ev("w/a", r + 4, Delete),
        ev("w/c", r + 5, Put),
        ev("w/b", r + 5, Delete),
    ];
    let mut w = b.watch("w/", r).await.unwrap();
    for want in &expected {
        assert_eq!(&next_event(&mut w).await, want);
    }
    assert!(w.try_next().is_none(), "only changes under the prefix");
    // Live changes follow the history.
    let rd = b
        .transaction_if(vec![], vec![put("w/d", b"5")])
        .await
        .unwrap();
    assert_eq!(next_event(&mut w).await, ev("w/d", rd, Put));
    // Starting later skips what came before.
    let mut mid = b.watch("w/", r + 2).await.unwrap();
    assert_eq!(next_event(&mut mid).await, expected[2]);
    // Starting now gives only what comes next.
    let mut now = b.watch("w/", rd).await.unwrap();
    assert!(now.try_next().is_none());
    b.delete("w/c").await.unwrap();
    assert_eq!(next_event(&mut now).await, ev("w/c", rd + 1, Delete));
    b.transaction(vec![Op::Delete("w/d".into()), Op::Delete("other/x".into())])
        .await
        .unwrap();
}

async fn watch_prefix_deletes(b: &dyn Backend) {
    b.transaction(vec![
        put("dp/a/1", b""),
        put("dp/a/2/x", b""),
        put("dp/ab", b""),
    ])
    .await
    .unwrap();
    let r = b.revision().await.unwrap();
    let mut exact = b.watch("dp/a/", r).await.unwrap();
    let mut below = b.watch("dp/a/2/", r).await.unwrap();
    let mut above = b.watch("dp/", r).await.unwrap();
    let mut beside = b.watch("dp/ab", r).await.unwrap();
    let rd = b.delete_prefix("dp/a/").await.unwrap();
    assert_eq!(rd, r + 1);
    let want = ev("dp/a/", rd, EventKind::DeletePrefix);
    assert_eq!(next_event(&mut exact).await, want);
    assert_eq!(
        next_event(&mut below).await,
        want,
        "a deleted prefix above the watched one concerns it"
    );
    assert_eq!(next_event(&mut above).await, want);
    assert!(exact.try_next().is_none(), "one event, not one per key");
    assert!(beside.try_next().is_none(), "dp/a/ does not cover dp/ab");
    b.delete("dp/ab").await.unwrap();
}

async fn watch_compaction(b: &dyn Backend, opts: &Options) {
    let r = b.revision().await.unwrap();
    b.watch("", r).await.expect("watching from now works");
    let rc = match &opts.compact {
        // More changes than the history holds, in one commit.
        None => {
            let ops: Vec<Op> = (0..=WATCH_HISTORY)
                .map(|i| put(&format!("cmp/{i:05}"), b""))
                .collect();
            b.transaction_if(vec![], ops).await.unwrap()
        }
        // Two commits, then the history is compacted up to the second.
        Some(compact) => {
            b.transaction_if(vec![], vec![put("cmp/0", b""), put("cmp/1", b"")])
                .await
                .unwrap();
            let rc = b
                .transaction_if(vec![], vec![put("cmp/2", b"")])
                .await
                .unwrap();
            compact().await;
            rc
        }
    };
    match b.watch("", r).await {
        Err(PhysicalError::Compacted { requested, oldest }) => {
            assert_eq!(requested, r);
            assert!(oldest > r && oldest <= rc, "oldest {oldest} in ({r}, {rc}]");
            b.watch("", oldest)
                .await
                .expect("the oldest remembered revision is a valid start");
        }
        other => panic!("watching from before the history must fail, got {other:?}"),
    }
    b.watch("", rc)
        .await
        .expect("watching from the latest works");
    b.delete_prefix("cmp/").await.unwrap();
}

/// A watcher nobody reads must not hold writers up; it is cut off, says where to resume, and
/// resuming from there loses nothing.
async fn slow_watcher(b: Arc<dyn Backend>) {
    const WRITERS: usize = 8;
    const EACH: usize = WATCH_BUFFER / WRITERS + 50;
    let r = b.revision().await.unwrap();
    let mut w = b.watch("slow/", r).await.unwrap();
    let mut tasks = Vec::new();
    for t in 0..WRITERS {
        let b = b.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..EACH {
                b.put(&format!("slow/{t}/{i:04}"), vec![1]).await.unwrap();
            }
        }));
    }
    within(120, "writes while a watcher is not reading", async {
        for t in tasks {
            t.await.unwrap();
        }
    })
    .await;
    let mut seen = BTreeSet::new();
    let mut last = r;
    let resume_from = loop {
        match within(10, "draining the slow watcher", w.next()).await {
            Some(Ok(e)) => {
                assert!(e.revision > last, "in commit order");
                last = e.revision;
                assert!(seen.insert(e.key), "each change once");
            }
            Some(Err(PhysicalError::Lagged { resume_from })) => break resume_from,
            other => panic!("expected events then Lagged, got {other:?}"),
        }
    };
    assert_eq!(seen.len(), WATCH_BUFFER, "the buffer filled, then the cut");
    assert_eq!(
        resume_from, last,
        "resume right after the last delivered change"
    );
    assert!(w.next().await.is_none(), "a cut watcher ends");
    let mut again = b.watch("slow/", resume_from).await.unwrap();
    while seen.len() < WRITERS * EACH {
        let e = next_event(&mut again).await;
        assert!(e.revision > last, "in commit order");
        last = e.revision;
        assert!(seen.insert(e.key), "each change once");
    }
    assert!(again.try_next().is_none());
    b.delete_prefix("slow/").await.unwrap();
}

async fn range_delete(b: &dyn Backend) {
    const N: usize = 10_000;
    for chunk in 0..10 {
        let ops = (chunk * N / 10..(chunk + 1) * N / 10)
            .map(|i| {
                let key = if i % 10 == 0 {
                    format!("rd/sub/{i:05}")
                } else {
                    format!("rd/{i:05}")
                };
                put(&key, b"v")
            })
            .collect();
        b.transaction(ops).await.unwrap();
    }
    b.put("rd/\u{10FFFF}", b"edge".to_vec()).await.unwrap();
    let neighbours = ["rd", "rda", "rd0", "rd.x", "rc/z", "re/z"];
    for k in neighbours {
        b.put(k, b"keep".to_vec()).await.unwrap();
    }
    let r = b.revision().await.unwrap();
    let mut w = b.watch("rd/", r).await.unwrap();
    let rd = b.delete_prefix("rd/").await.unwrap();
    assert_eq!(rd, r + 1, "10,000 keys deleted in one commit");
    assert_eq!(b.revision().await.unwrap(), r + 1);
    assert_eq!(b.list_page("rd/", None, 10).await.unwrap(), (vec![], None));
    assert_eq!(b.get("rd/00001").await.unwrap(), None);
    assert_eq!(b.get("rd/\u{10FFFF}").await.unwrap(), None);
    for k in neighbours {
        assert_eq!(
            b.get(k).await.unwrap().as_deref(),
            Some(&b"keep"[..]),
            "{k} is not under rd/"
        );
    }
    assert_eq!(
        next_event(&mut w).await,
        ev("rd/", rd, EventKind::DeletePrefix)
    );
    assert!(w.try_next().is_none(), "one event for the whole range");
    assert_eq!(
        b.delete_prefix("rd/").await.unwrap(),
        rd,
        "deleting nothing takes no revision"
    );
    for bad in ["", "/rd"] {
        assert!(
            matches!(
                b.delete_prefix(bad).await,
                Err(PhysicalError::InvalidKey(_))
            ),
            "delete_prefix({bad:?}) is refused"
        );
    }
    let ops = neighbours.iter().map(|k| Op::Delete((*k).into())).collect();
    b.transaction(ops).await.unwrap();
}

async fn paging(b: &dyn Backend) {
    let mut expected: Vec<String> = (0..250).map(|i| format!("pg/{i:03}")).collect();
    expected.extend([
        "pg/sub/a".into(),
        "pg/sub/deeper/z".into(),
        "pg/\u{e9}".into(),
    ]);
    let neighbours = ["pg", "pga", "pf/z", "ph"];
    let mut ops: Vec<Op> = expected.iter().map(|k| put(k, b"value")).collect();
    ops.extend(neighbours.iter().map(|k| put(k, b"n")));
    b.transaction(ops).await.unwrap();
    expected.sort();
    for limit in [1, 7, 100, expected.len(), expected.len() + 1] {
        let mut all = Vec::new();
        let mut after: Option<String> = None;
        let mut pages = 0;
        loop {
            let (keys, next) = b.list_page("pg/", after.as_deref(), limit).await.unwrap();
            pages += 1;
            assert!(pages <= expected.len() + 1, "paging must end");
            assert!(keys.len() <= limit);
            all.extend(keys.iter().cloned());
            match next {
                None => break,
                Some(n) => {
                    assert_eq!(Some(&n), keys.last(), "next is the last key of the page");
                    after = Some(n);
                }
            }
        }
        assert_eq!(all, expected, "limit {limit}: every key once, in order");
        assert_eq!(
            pages,
            expected.len().div_ceil(limit),
            "limit {limit}: no empty trailing page"
        );
    }
    let page = |keys: &[&str]| keys.iter().map(|k| (*k).to_owned()).collect::<Vec<_>>();
    assert_eq!(
        b.list_page("pg/", Some("pg/100"), 3).await.unwrap(),
        (
            page(&["pg/101", "pg/102", "pg/103"]),
            Some("pg/103".to_owned())
        )
    );
    assert_eq!(
        b.list_page("pg/", Some("pg/100x"), 1).await.unwrap().0,
        page(&["pg/101"]),
        "after need not exist"
    );
    assert_eq!(
        b.list_page("pg/", Some("a"), 1).await.unwrap().0,
        page(&["pg/000"]),
        "after before the prefix starts at the prefix"
    );
    assert_eq!(
        b.list_page("pg/", Some("pg/sub/deeper/z"), 5)
            .await
            .unwrap(),
        (page(&["pg/\u{e9}"]), None)
    );
    assert_eq!(
        b.list_page("pg/", Some("pg/\u{e9}"), 5).await.unwrap(),
        (vec![], None)
    );
    assert!(matches!(
        b.list_page("pg/", None, 0).await,
        Err(PhysicalError::InvalidArgument(_))
    ));
    assert_eq!(
        b.list("pg/sub/").await.unwrap(),
        vec!["a", "deeper/"],
        "list keeps Vault's children semantics"
    );
    b.delete_prefix("pg/").await.unwrap();
    let ops = neighbours.iter().map(|k| Op::Delete((*k).into())).collect();
    b.transaction(ops).await.unwrap();
}

async fn snapshots(b: Arc<dyn Backend>) {
    let ops = (0..100)
        .map(|i| put(&format!("snap/{i:03}"), format!("v{i}").as_bytes()))
        .collect();
    b.transaction(ops).await.unwrap();
    b.put("snap/050", b"rewritten".to_vec()).await.unwrap();
    b.put("snapshot-neighbour", b"n".to_vec()).await.unwrap();
    let current = state(&*b, "snap/").await;
    let everything = state(&*b, "").await;
    let rev = b.revision().await.unwrap();
    let snap = b.snapshot().await.unwrap();
    assert_eq!(snap.revision(), rev);
    // Writes after the snapshot was taken...
    b.put("snap/000", b"changed".to_vec()).await.unwrap();
    b.delete("snap/001").await.unwrap();
    b.put("snap/new", b"new".to_vec()).await.unwrap();
    b.delete_prefix("snap/09").await.unwrap();
    // ...are invisible to it.
    let seen: Vec<Entry> = snap.entries("snap/").map(Result::unwrap).collect();
    assert_eq!(seen, current, "the snapshot is the state when it was taken");
    let all: Vec<Entry> = snap.entries("").map(Result::unwrap).collect();
    assert_eq!(all, everything, "the whole store, in key order");
    assert!(b.revision().await.unwrap() > snap.revision());
    drop(snap);

    // Iterating while writers keep writing.
    let current = state(&*b, "snap/").await;
    let snap = b.snapshot().await.unwrap();
    let writer = {
        let b = b.clone();
        tokio::spawn(async move {
            for i in 0..100 {
                b.put(&format!("snap/{:03}", i), b"during".to_vec())
                    .await
                    .unwrap();
                b.delete(&format!("snap/{:03}", 99 - i)).await.unwrap();
            }
        })
    };
    let seen = within(
        60,
        "iterating a snapshot",
        tokio::task::spawn_blocking(move || {
            snap.entries("snap/")
                .map(|e| {
                    std::thread::sleep(Duration::from_millis(2));
                    e.unwrap()
                })
                .collect::<Vec<_>>()
        }),
    )
    .await
    .unwrap();
    within(60, "writes during iteration", writer).await.unwrap();
    assert_eq!(
        seen, current,
        "concurrent writes do not leak into a snapshot"
    );
    b.delete_prefix("snap/").await.unwrap();
    b.delete("snapshot-neighbour").await.unwrap();
}

/// Every entry under `prefix` read through the ordinary API, in key order.
async fn state(b: &dyn Backend, prefix: &str) -> Vec<Entry> {
    let (keys, next) = b.list_page(prefix, None, 100_000).await.unwrap();
    assert_eq!(next, None);
    let mut out = Vec::new();
    for key in keys {
        let (value, revision) = b.get_with_revision(&key).await.unwrap().unwrap();
        out.push(Entry {
            key,
            value,
            revision,
        });
    }
    out
}

async fn leader_lock(b: &dyn Backend) {
    let Some(lock) = b.leader_lock() else {
        return;
    };
    assert_eq!(lock.leader().await.unwrap(), None);
    let first = within(
        5,
        "first acquire",
        lock.acquire("node-1", b"addr-1".to_vec()),
    )
    .await
    .unwrap();
    assert_eq!(
        lock.leader().await.unwrap(),
        Some(Leader {
            node_id: "node-1".into(),
            value: b"addr-1".to_vec()
        })
    );
    let contender = {
        let lock = lock.clone();
        tokio::spawn(async move { lock.acquire("node-2", b"addr-2".to_vec()).await })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        !contender.is_finished(),
        "a second acquirer waits while the lock is held"
    );
    // Giving up waiting does not take the lock either.
    let gave_up =
        tokio::time::timeout(Duration::from_millis(50), lock.acquire("node-3", vec![])).await;
    assert!(gave_up.is_err(), "a third acquirer waits too");
    assert!(!first.is_lost());
    let term = first.term();
    first.release().await.unwrap();
    let second = within(5, "acquire after release", contender)
        .await
        .unwrap()
        .unwrap();
    assert!(second.term() > term, "each grant has a larger term");
    assert_eq!(second.leader().node_id, "node-2");
    assert_eq!(
        lock.leader().await.unwrap().map(|l| l.node_id).as_deref(),
        Some("node-2")
    );
    drop(second);
    let third = within(5, "acquire after drop", lock.acquire("node-3", vec![]))
        .await
        .unwrap();
    third.release().await.unwrap();
    assert_eq!(lock.leader().await.unwrap(), None);
}
