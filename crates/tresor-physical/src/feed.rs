//! The change feed behind [`crate::Backend::watch`]: a bounded ring of recent events that a
//! new watcher replays from its starting revision, and the live watchers each commit is
//! published to.
//!
//! A backend calls [`Feed::publish`] once per commit, in commit order, after the commit is
//! durable and before it answers the writers, so a watcher never hears of a change that a read
//! cannot see yet, and a writer that got its revision back can watch from just before it.
//! Publishing never waits: each watcher has a bounded channel, and one that is full is cut off
//! and told where to resume ([`crate::PhysicalError::Lagged`]); a slow consumer costs writers
//! nothing.

use std::collections::VecDeque;
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::mpsc;

use crate::{Event, EventKind, PhysicalError, Result};

/// How many recent events a backend keeps for watchers that start in the past. A watcher
/// starting before the oldest is told [`crate::PhysicalError::Compacted`].
pub const WATCH_HISTORY: usize = 16_384;
/// How many undelivered events one watcher may have before it is cut off with
/// [`crate::PhysicalError::Lagged`].
pub const WATCH_BUFFER: usize = 1024;

/// Recent history and the live watchers of one backend.
pub(crate) struct Feed {
    state: Mutex<State>,
}

struct State {
    ring: VecDeque<Event>,
    history: usize,
    /// Events with this revision or older may be missing from the ring; a watcher can start
    /// from this revision or any later one.
    oldest: u64,
    watchers: Vec<Sink>,
}

struct Sink {
    prefix: String,
    /// The watcher's starting revision. A commit can be readable (and its revision known to
    /// a caller) a moment before it is published here; its events must not reach a watcher
    /// that started at or after it.
    from: u64,
    tx: mpsc::Sender<Event>,
    cut: Arc<Mutex<Option<PhysicalError>>>,
}

/// Whether an event is about keys under `prefix`. A prefix deletion concerns a watcher when
/// the two overlap either way: deleting `a/` removes keys under a watched `a/b/`.
pub(crate) fn concerns(prefix: &str, e: &Event) -> bool {
    e.key.starts_with(prefix) || (e.kind == EventKind::DeletePrefix && prefix.starts_with(&e.key))
}

impl Feed {
    /// An empty feed for a store currently at `revision`: history starts now.
    pub(crate) fn new(revision: u64) -> Self {
        Self::with_history(revision, WATCH_HISTORY)
    }

    pub(crate) fn with_history(revision: u64, history: usize) -> Self {
        Self {
            state: Mutex::new(State {
                ring: VecDeque::new(),
                history: history.max(1),
                oldest: revision,
                watchers: Vec::new(),
            }),
        }
    }

    /// A watcher of `prefix` that first replays the remembered events after `from`.
    pub(crate) fn watch(&self, prefix: &str, from: u64) -> Result<Watcher> {
        let mut s = self.state.lock();
        if from < s.oldest {
            return Err(PhysicalError::Compacted {
                requested: from,
                oldest: s.oldest,
            });
        }
        let replay: Vec<Event> = s
            .ring
            .iter()
            .filter(|e| e.revision > from && concerns(prefix, e))
            .cloned()
            .collect();
        // The replay always fits; the buffer bounds only what piles up afterwards.
        let (tx, rx) = mpsc::channel(replay.len() + WATCH_BUFFER);
        for e in replay {
            tx.try_send(e).expect("replay fits the channel it sized");
        }
        let cut = Arc::new(Mutex::new(None));
        s.watchers.push(Sink {
            prefix: prefix.to_owned(),
            from,
            tx,
            cut: cut.clone(),
        });
        Ok(Watcher { rx, cut })
    }

    /// Records one commit's events (in commit order) and hands them to the
    /// watchers whose prefix they concern, dropping watchers that are gone or full.
    pub(crate) fn publish(&self, events: &[Event]) {
        if events.is_empty() {
            return;
        }
        let mut s = self.state.lock();
        for e in events {
            s.ring.push_back(e.clone());
        }
        while s.ring.len() > s.history {
            let gone = s.ring.pop_front().expect("ring is longer than its bound");
            s.oldest = s.oldest.max(gone.revision);
        }
        s.watchers.retain(|w| {
            let due = events
                .iter()
                .filter(|e| e.revision > w.from && concerns(&w.prefix, e));
            for e in due {
                match w.tx.try_send(e.clone()) {
                    Ok(()) => {}
                    Err(mpsc::error::TrySendError::Full(_)) => {
                        // Everything before this revision was queued; it and what follows
                        // were not.
                        *w.cut.lock() = Some(PhysicalError::Lagged {
                            resume_from: e.revision - 1,
                        });
                        return false;
                    }
                    Err(mpsc::error::TrySendError::Closed(_)) => return false,
                }
            }
            true
        });
    }
}

/// The receiving end of [`crate::Backend::watch`].
pub struct Watcher {
    rx: mpsc::Receiver<Event>,
    cut: Arc<Mutex<Option<PhysicalError>>>,
}

impl Watcher {
    /// For backends that feed a watcher themselves (etcd): events arrive on `rx`; when the
    /// sender is dropped, the error left in `cut` (if any) is reported once.
    pub(crate) fn from_parts(
        rx: mpsc::Receiver<Event>,
        cut: Arc<Mutex<Option<PhysicalError>>>,
    ) -> Self {
        Self { rx, cut }
    }

    /// The next change, in commit order. `Some(Err(Lagged { resume_from }))` comes once, after
    /// the last buffered event, if this watcher fell behind and was cut off (etcd watchers may
    /// also end with `Compacted`, or an `Io` error when etcd stays unreachable); `None` means
    /// the backend is gone (or the watcher was cut off and has reported it).
    pub async fn next(&mut self) -> Option<Result<Event>> {
        match self.rx.recv().await {
            Some(e) => Some(Ok(e)),
            None => self.cut.lock().take().map(Err),
        }
    }

    /// Like [`Watcher::next`], without waiting: `None` when nothing is pending right now.
    pub fn try_next(&mut self) -> Option<Result<Event>> {
        match self.rx.try_recv() {
            Ok(e) => Some(Ok(e)),
            Err(mpsc::error::TryRecvError::Empty) => None,
            Err(mpsc::error::TryRecvError::Disconnected) => self.cut.lock().take().map(Err),
        }
    }
}

impl std::fmt::Debug for Watcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watcher").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(key: &str, revision: u64) -> Event {
        Event {
            key: key.into(),
            revision,
            kind: EventKind::Put,
        }
    }

    #[test]
    fn the_ring_forgets_the_oldest_and_says_so() {
        let f = Feed::with_history(10, 3);
        f.watch("", 10).unwrap();
        for r in 11..=15 {
            f.publish(&[put("k", r)]);
        }
        // 13, 14, 15 remain: watching from 12 (events after 12) is still whole.
        let mut w = f.watch("", 12).unwrap();
        let got: Vec<u64> = std::iter::from_fn(|| w.try_next())
            .map(|e| e.unwrap().revision)
            .collect();
        assert_eq!(got, vec![13, 14, 15]);
        match f.watch("", 11) {
            Err(PhysicalError::Compacted {
                requested: 11,
                oldest: 12,
            }) => {}
            other => panic!("expected Compacted, got {other:?}"),
        }
    }

    #[test]
    fn a_watcher_gets_nothing_at_or_before_its_start() {
        let f = Feed::new(4);
        // The caller read revision 6 before the commits of 5 and 6 were published.
        let mut w = f.watch("", 6).unwrap();
        f.publish(&[put("a", 5)]);
        f.publish(&[put("b", 6), put("c", 6)]);
        f.publish(&[put("d", 7)]);
        let got: Vec<String> = std::iter::from_fn(|| w.try_next())
            .map(|e| e.unwrap().key)
            .collect();
        assert_eq!(got, vec!["d"]);
    }

    #[test]
    fn prefix_deletions_reach_watchers_below_and_above() {
        let e = Event {
            key: "a/".into(),
            revision: 1,
            kind: EventKind::DeletePrefix,
        };
        assert!(concerns("a/b/", &e));
        assert!(concerns("", &e));
        assert!(concerns("a/", &e));
        assert!(!concerns("ab/", &e));
        assert!(!concerns("b/", &e));
        assert!(!concerns("a/", &put("ab", 1)));
    }
}
