//! Leadership: which of the servers sharing one storage is the active node.
//!
//! [`LeaderLock::acquire`] waits until this node holds the lock and returns a [`LeaderGuard`];
//! the node is active while it holds the guard and has not been told [`LeaderGuard::lost`].
//! Each grant carries a term that grows with every grant, for fencing (the etcd lock will use
//! the lock key's create revision, which every write of the active node compares). Releasing
//! or dropping the guard frees the lock for the next acquirer.
//!
//! [`InProcessLock`] is the lock of single-server backends: there is one node, so it is
//! granted at once, but two acquirers in one process (two cores in a test, a restarted
//! subsystem) still exclude each other.

use std::sync::Arc;

use async_trait::async_trait;
use parking_lot::Mutex;
use tokio::sync::{Notify, watch};

use crate::Result;

/// Who holds the lock: the node id and the value it advertised (Vault's leader value names the
/// node's `api_addr` and `cluster_addr`; it is opaque here).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leader {
    pub node_id: String,
    pub value: Vec<u8>,
}

/// Elects one active node. See the module docs.
#[async_trait]
pub trait LeaderLock: Send + Sync + 'static {
    /// Waits until `node_id` holds the lock, advertising `value` to standbys. Dropping the
    /// returned future gives up waiting.
    async fn acquire(&self, node_id: &str, value: Vec<u8>) -> Result<LeaderGuard>;
    /// The current holder, if any (standbys use it to find the active node).
    async fn leader(&self) -> Result<Option<Leader>>;
}

/// An implementation's handle on a granted lock; dropping it must release the lock.
#[async_trait]
pub trait HeldLock: Send + Sync {
    /// Gives the lock up now and reports whether that worked.
    async fn release(self: Box<Self>) -> Result<()>;
}

/// Proof of holding the leader lock; see the module docs.
pub struct LeaderGuard {
    leader: Leader,
    term: u64,
    lost: watch::Receiver<bool>,
    held: Option<Box<dyn HeldLock>>,
}

impl LeaderGuard {
    /// For [`LeaderLock`] implementations: `lost` turns `true` (or its sender is dropped) when
    /// leadership ends without the holder releasing it.
    pub fn new(
        leader: Leader,
        term: u64,
        lost: watch::Receiver<bool>,
        held: Box<dyn HeldLock>,
    ) -> Self {
        Self {
            leader,
            term,
            lost,
            held: Some(held),
        }
    }

    /// This node's id and advertised value.
    pub fn leader(&self) -> &Leader {
        &self.leader
    }

    /// The grant's term: larger for every later grant of the same lock.
    pub fn term(&self) -> u64 {
        self.term
    }

    /// Whether leadership has been lost (a later [`LeaderGuard::lost`] returns at once).
    pub fn is_lost(&self) -> bool {
        *self.lost.borrow() || self.lost.has_changed().is_err()
    }

    /// Resolves when leadership is lost without this guard being released: the node must stop
    /// acting as active (stop background work, seal or step down) right away.
    pub async fn lost(&self) {
        let mut rx = self.lost.clone();
        // A dropped sender means the lock itself is gone: that is lost too.
        let _ = rx.wait_for(|lost| *lost).await;
    }

    /// Gives up leadership.
    pub async fn release(mut self) -> Result<()> {
        match self.held.take() {
            Some(h) => h.release().await,
            None => Ok(()),
        }
    }
}

impl std::fmt::Debug for LeaderGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeaderGuard")
            .field("node_id", &self.leader.node_id)
            .field("term", &self.term)
            .finish_non_exhaustive()
    }
}

/// The leader lock of single-server backends; see the module docs.
#[derive(Default)]
pub struct InProcessLock {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    state: Mutex<State>,
    freed: Notify,
}

#[derive(Default)]
struct State {
    term: u64,
    holder: Option<(Leader, watch::Sender<bool>)>,
}

impl Inner {
    /// Frees the lock if grant `term` still holds it; `lost` tells the holder it was taken.
    fn free(&self, term: u64, lost: bool) {
        let mut s = self.state.lock();
        if s.term == term
            && let Some((_, tx)) = s.holder.take()
        {
            if lost {
                let _ = tx.send(true);
            }
            drop(s);
            self.freed.notify_waiters();
        }
    }
}

impl InProcessLock {
    pub fn new() -> Self {
        Self::default()
    }

    /// Ends the current holder's leadership as if its lease had expired: its guard reports
    /// [`LeaderGuard::lost`] and the next acquirer gets the lock. For tests of what a node does
    /// when it loses leadership, and for stepping down on seal.
    pub fn depose(&self) {
        let term = self.inner.state.lock().term;
        self.inner.free(term, true);
    }
}

#[async_trait]
impl LeaderLock for InProcessLock {
    async fn acquire(&self, node_id: &str, value: Vec<u8>) -> Result<LeaderGuard> {
        loop {
            // Register for the wake-up before looking, so a release in between is not missed.
            let freed = self.inner.freed.notified();
            tokio::pin!(freed);
            freed.as_mut().enable();
            {
                let mut s = self.inner.state.lock();
                if s.holder.is_none() {
                    s.term += 1;
                    let leader = Leader {
                        node_id: node_id.to_owned(),
                        value,
                    };
                    let (tx, rx) = watch::channel(false);
                    s.holder = Some((leader.clone(), tx));
                    let held = Box::new(InProcessHeld {
                        inner: self.inner.clone(),
                        term: s.term,
                    });
                    return Ok(LeaderGuard::new(leader, s.term, rx, held));
                }
            }
            freed.await;
        }
    }

    async fn leader(&self) -> Result<Option<Leader>> {
        Ok(self
            .inner
            .state
            .lock()
            .holder
            .as_ref()
            .map(|(l, _)| l.clone()))
    }
}

struct InProcessHeld {
    inner: Arc<Inner>,
    term: u64,
}

#[async_trait]
impl HeldLock for InProcessHeld {
    async fn release(self: Box<Self>) -> Result<()> {
        // Drop does the work.
        Ok(())
    }
}

impl Drop for InProcessHeld {
    fn drop(&mut self) {
        self.inner.free(self.term, false);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn depose_reports_lost_and_frees_the_lock() {
        let lock = Arc::new(InProcessLock::new());
        let first = lock.acquire("a", b"addr-a".to_vec()).await.unwrap();
        assert!(!first.is_lost());
        let l2 = lock.clone();
        let second = tokio::spawn(async move { l2.acquire("b", Vec::new()).await.unwrap() });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!second.is_finished(), "the lock is held");
        lock.depose();
        tokio::time::timeout(Duration::from_secs(5), first.lost())
            .await
            .expect("the deposed holder is told");
        assert!(first.is_lost());
        let second = tokio::time::timeout(Duration::from_secs(5), second)
            .await
            .expect("the next acquirer gets the lock")
            .unwrap();
        assert!(second.term() > first.term());
        // The deposed guard going away must not free the new holder's lock.
        first.release().await.unwrap();
        assert_eq!(
            lock.leader().await.unwrap().map(|l| l.node_id).as_deref(),
            Some("b")
        );
        assert!(!second.is_lost());
        drop(second);
        assert_eq!(lock.leader().await.unwrap(), None);
    }
}
