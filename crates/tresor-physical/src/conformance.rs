//! The one conformance suite every [`Backend`] must pass (house style: one suite per trait).
//! Backends' own test files call [`run`]; a failure panics with the case that broke.

use std::sync::Arc;

use crate::{Backend, Op};

/// Runs every conformance case against `b`, which must start empty.
pub async fn run(b: Arc<dyn Backend>) {
    get_put_delete(&*b).await;
    listing(&*b).await;
    transactions(&*b).await;
    invalid_keys(&*b).await;
    concurrent_writers(b.clone()).await;
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
