//! Running a few futures of the same kind at once without the `futures` crate (the core has
//! none): the audit broker waits for its devices together, and token revocation deletes the
//! tokens of one tree level in bounded groups so their commits share the storage's fsyncs.

use std::future::Future;
use std::task::Poll;

/// Drives every future to completion at once and returns their outputs in order.
pub(crate) async fn join_all<'f, F>(futures: impl Iterator<Item = &'f mut F>) -> Vec<F::Output>
where
    F: Future + Unpin + 'f,
{
    let mut futures: Vec<(&mut F, Option<F::Output>)> = futures.map(|f| (f, None)).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (f, out) in futures.iter_mut() {
            if out.is_none() {
                match std::pin::Pin::new(&mut **f).poll(cx) {
                    Poll::Ready(v) => *out = Some(v),
                    Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    })
    .await;
    futures
        .into_iter()
        .map(|(_, out)| out.expect("every future finished"))
        .collect()
}

/// Runs `f` over `items`, at most `width` at a time, and returns the outputs in the items'
/// order. Each group finishes before the next starts.
pub(crate) async fn in_groups<'a, T, O, F, Fut>(items: &'a [T], width: usize, f: F) -> Vec<O>
where
    F: Fn(&'a T) -> Fut,
    Fut: Future<Output = O> + 'a,
{
    let mut out = Vec::with_capacity(items.len());
    for group in items.chunks(width.max(1)) {
        let mut futs: Vec<_> = group.iter().map(|t| Box::pin(f(t))).collect();
        out.extend(join_all(futs.iter_mut()).await);
    }
    out
}
