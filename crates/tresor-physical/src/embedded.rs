//! The embedded on-disk backend: one redb file, the default storage of `tresor server`.
//!
//! Durability without serialising throughput: every write goes to one writer thread, which
//! drains everything queued while the previous commit was syncing and applies it in a single
//! redb transaction with `Durability::Immediate` (fsync on commit). Each caller is answered
//! only after the commit that holds its write has returned, so an acknowledged write survives
//! `kill -9`, and N concurrent writers cost one fsync instead of N (group commit).
//! Reads open their own MVCC read transaction and never wait for the writer.
//!
//! Revisions and conditional writes fit inside group commit: the writer applies the queued
//! transactions one after another inside its one redb transaction, giving each that changes
//! something the next revision and evaluating each one's checks against the state the ones
//! before it left, so a failed check fails only its own transaction. A group in which nothing
//! changed is aborted rather than committed, so conflicts cost no fsync. The store's revision
//! is kept in the `meta` table and written in the same commit as the data, so it survives
//! restarts and never goes back. After the commit returns, the writer publishes the group's
//! events to the change feed, then answers the callers.
//!
//! On-disk format 2 (this one) stores each key as `key -> (revision, value)` in the `entries`
//! table, with `meta` holding `format` and `revision`. Format 1 (a `tresor` table of
//! `key -> value`, before revisions) is upgraded when opened: every entry is copied at
//! revision 1 in one commit, and the old table removed.

use std::ops::Bound;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc;

use async_trait::async_trait;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition, TableHandle};
use tokio::sync::oneshot;

use crate::feed::Feed;
use crate::lock::{InProcessLock, LeaderLock};
use crate::txn::{self, Request, Store};
use crate::{
    Backend, Check, Entry, Event, Op, PhysicalError, Result, Snapshot, Watcher, check_key,
    check_limit, page, prefix_end,
};

/// Format 2: every key with the revision that last wrote it and its value.
const ENTRIES: TableDefinition<&str, (u64, &[u8])> = TableDefinition::new("entries");
/// Format 2: `format` and `revision`.
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
/// Format 1, upgraded on open: key to value, no revisions.
const LEGACY: TableDefinition<&str, &[u8]> = TableDefinition::new("tresor");
const FORMAT: u64 = 2;
const META_FORMAT: &str = "format";
const META_REVISION: &str = "revision";
/// The file inside the configured directory.
pub const FILE_NAME: &str = "tresor.redb";
/// redb page cache: hot data stays in memory, the rest is read from the file on demand.
const CACHE_BYTES: usize = 32 * 1024 * 1024;
/// Upper bound on writes folded into one commit, so one commit stays short.
const MAX_BATCH: usize = 4096;

type Reply = oneshot::Sender<Result<u64>>;

/// redb-backed durable storage. Cheap to clone handles are not needed: share it in an `Arc`.
pub struct EmbeddedBackend {
    db: Arc<Database>,
    tx: parking_lot::Mutex<Option<mpsc::Sender<(Request, Reply)>>>,
    feed: Arc<Feed>,
    lock: Arc<InProcessLock>,
    path: PathBuf,
}

fn io<E: std::fmt::Display>(e: E) -> PhysicalError {
    PhysicalError::Io(e.to_string())
}

impl EmbeddedBackend {
    /// Opens (creating if needed) the store in directory `dir`, upgrading an older on-disk
    /// format (see the module docs).
    ///
    /// Values are ciphertext, but key names (secret paths, lease ids) are not: the directory
    /// is created 0700 and the file 0600, and wider permissions found on an existing file (or
    /// on an existing directory we own) are tightened, with a warning in the server log.
    pub fn open(dir: &Path) -> Result<Self> {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| io(format!("creating {}: {e}", dir.display())))?;
        restrict_dir(dir)?;
        let path = dir.join(FILE_NAME);
        // Create the file ourselves so it is never readable by others, even for a moment;
        // redb initialises an empty file as a new database.
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .map_err(|e| io(format!("creating {}: {e}", path.display())))?;
        restrict_file(&path)?;
        // redb's default page cache is 1 GiB; bound it so memory stays flat as data grows.
        let db = redb::Builder::new()
            .set_cache_size(CACHE_BYTES)
            .create(&path)
            .map_err(|e| io(format!("opening {}: {e}", path.display())))?;
        let revision = prepare(&db).map_err(|e| io(format!("opening {}: {e}", path.display())))?;
        let db = Arc::new(db);
        let feed = Arc::new(Feed::new(revision));
        let (tx, rx) = mpsc::channel::<(Request, Reply)>();
        let writer_db = db.clone();
        let writer_feed = feed.clone();
        std::thread::Builder::new()
            .name("tresor-storage-writer".into())
            .spawn(move || writer_loop(&writer_db, &rx, &writer_feed, revision))
            .map_err(io)?;
        Ok(Self {
            db,
            tx: parking_lot::Mutex::new(Some(tx)),
            feed,
            lock: Arc::new(InProcessLock::new()),
            path,
        })
    }

    /// The database file.
    pub fn file(&self) -> &Path {
        &self.path
    }

    /// Queues `req` for the writer thread and waits for the commit that holds it.
    async fn submit(&self, req: Request) -> Result<u64> {
        let (reply, wait) = oneshot::channel();
        {
            let guard = self.tx.lock();
            let tx = guard.as_ref().ok_or(PhysicalError::Closed)?;
            tx.send((req, reply)).map_err(|_| PhysicalError::Closed)?;
        }
        wait.await.map_err(|_| PhysicalError::Closed)?
    }

    fn entries(&self) -> Result<redb::ReadOnlyTable<&'static str, (u64, &'static [u8])>> {
        let txn = self.db.begin_read().map_err(io)?;
        txn.open_table(ENTRIES).map_err(io)
    }
}

/// Makes sure the format-2 tables exist (read transactions can then always open them),
/// upgrades a format-1 store, and returns the store's revision.
fn prepare(db: &Database) -> Result<u64> {
    let txn = db.begin_write().map_err(io)?;
    let revision;
    {
        let mut meta = txn.open_table(META).map_err(io)?;
        let format = meta.get(META_FORMAT).map_err(io)?.map(|g| g.value());
        match format {
            Some(FORMAT) => {
                revision = meta
                    .get(META_REVISION)
                    .map_err(io)?
                    .map_or(0, |g| g.value());
            }
            Some(other) => {
                return Err(io(format!(
                    "storage format {other} is newer than this build understands ({FORMAT})"
                )));
            }
            None => {
                let mut entries = txn.open_table(ENTRIES).map_err(io)?;
                let legacy = txn
                    .list_tables()
                    .map_err(io)?
                    .any(|t| t.name() == LEGACY.name());
                let mut migrated = 0u64;
                if legacy {
                    let old = txn.open_table(LEGACY).map_err(io)?;
                    for item in old.iter().map_err(io)? {
                        let (k, v) = item.map_err(io)?;
                        entries.insert(k.value(), (1, v.value())).map_err(io)?;
                        migrated += 1;
                    }
                    drop(old);
                    txn.delete_table(LEGACY).map_err(io)?;
                    tracing::info!(entries = migrated, "upgraded storage to format {FORMAT}");
                }
                revision = u64::from(migrated > 0);
                meta.insert(META_FORMAT, FORMAT).map_err(io)?;
                meta.insert(META_REVISION, revision).map_err(io)?;
            }
        }
    }
    txn.commit().map_err(io)?;
    Ok(revision)
}

/// Group and other permission bits.
const OTHERS: u32 = 0o077;

fn mode_of(path: &Path) -> Result<std::fs::Metadata> {
    std::fs::metadata(path).map_err(|e| io(format!("reading {}: {e}", path.display())))
}

/// Tightens the data file to 0600 if group or others have any access to it.
fn restrict_file(path: &Path) -> Result<()> {
    let mode = mode_of(path)?.mode() & 0o7777;
    if mode & OTHERS == 0 {
        return Ok(());
    }
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| io(format!("restricting {} to 0600: {e}", path.display())))?;
    tracing::warn!(
        path = %path.display(),
        was = %format!("{mode:o}"),
        "storage file was accessible to other users; its mode is now 600"
    );
    Ok(())
}

/// Tightens the data directory to 0700 if group or others have any access to it and it is
/// ours; a directory owned by someone else (or shared, with the sticky bit) is left alone
/// with a warning.
fn restrict_dir(dir: &Path) -> Result<()> {
    let meta = mode_of(dir)?;
    let mode = meta.mode() & 0o7777;
    if mode & OTHERS == 0 {
        return Ok(());
    }
    let ours = effective_uid() == Some(meta.uid());
    if !ours || mode & 0o1000 != 0 {
        tracing::warn!(
            path = %dir.display(),
            mode = %format!("{mode:o}"),
            "storage directory is accessible to other users and is not ours to change; \
             key names in it are readable by them: restrict it to 0700"
        );
        return Ok(());
    }
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .map_err(|e| io(format!("restricting {} to 0700: {e}", dir.display())))?;
    tracing::warn!(
        path = %dir.display(),
        was = %format!("{mode:o}"),
        "storage directory was accessible to other users; its mode is now 700"
    );
    Ok(())
}

/// This process's effective user id, from `/proc/self/status` (no `unsafe` here).
fn effective_uid() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    line.split_whitespace().nth(2)?.parse().ok()
}

impl Drop for EmbeddedBackend {
    fn drop(&mut self) {
        // Dropping the sender ends the writer thread after it drains the queue.
        self.tx.lock().take();
    }
}

fn writer_loop(
    db: &Database,
    rx: &mpsc::Receiver<(Request, Reply)>,
    feed: &Feed,
    mut revision: u64,
) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        let (reqs, replies): (Vec<Request>, Vec<Reply>) = batch.into_iter().unzip();
        let before = revision;
        let mut events = Vec::new();
        match commit(db, reqs, &mut revision, &mut events) {
            Ok(outcomes) => {
                feed.publish(&events);
                for (reply, out) in replies.into_iter().zip(outcomes) {
                    let _ = reply.send(out);
                }
            }
            Err(e) => {
                revision = before;
                let e = e.to_string();
                tracing::error!(error = %e, "storage commit failed");
                for reply in replies {
                    let _ = reply.send(Err(PhysicalError::Io(e.clone())));
                }
            }
        }
    }
}

/// Applies a group of transactions in one redb write transaction; see the module docs.
fn commit(
    db: &Database,
    reqs: Vec<Request>,
    revision: &mut u64,
    events: &mut Vec<Event>,
) -> Result<Vec<Result<u64>>> {
    let txn = db.begin_write().map_err(io)?;
    let start = *revision;
    let mut outcomes = Vec::with_capacity(reqs.len());
    {
        let mut table = txn.open_table(ENTRIES).map_err(io)?;
        let mut store = RedbStore(&mut table);
        for req in reqs {
            outcomes.push(txn::apply(&mut store, req, revision, events)?);
        }
    }
    if *revision == start {
        // Nothing changed (only failed checks, or deletes of missing keys): nothing to sync.
        txn.abort().map_err(io)?;
        return Ok(outcomes);
    }
    txn.open_table(META)
        .map_err(io)?
        .insert(META_REVISION, *revision)
        .map_err(io)?;
    txn.commit().map_err(io)?;
    Ok(outcomes)
}

struct RedbStore<'a, 'txn>(&'a mut redb::Table<'txn, &'static str, (u64, &'static [u8])>);

impl Store for RedbStore<'_, '_> {
    fn revision_of(&mut self, key: &str) -> Result<u64> {
        Ok(self.0.get(key).map_err(io)?.map_or(0, |g| g.value().0))
    }

    fn put(&mut self, key: &str, value: Vec<u8>, revision: u64) -> Result<()> {
        self.0
            .insert(key, (revision, value.as_slice()))
            .map_err(io)?;
        Ok(())
    }

    fn delete(&mut self, key: &str) -> Result<bool> {
        Ok(self.0.remove(key).map_err(io)?.is_some())
    }

    fn delete_prefix(&mut self, prefix: &str) -> Result<bool> {
        // One range removal inside the group's write transaction.
        let mut removed = 0u64;
        let drop_all = |_: &str, _: (u64, &[u8])| {
            removed += 1;
            false
        };
        match prefix_end(prefix) {
            Some(end) => self.0.retain_in::<&str, _>(prefix..end.as_str(), drop_all),
            None => self.0.retain_in::<&str, _>(prefix.., drop_all),
        }
        .map_err(io)?;
        Ok(removed > 0)
    }
}

/// A redb read transaction, kept open for as long as the snapshot lives.
struct RedbSnapshot {
    table: redb::ReadOnlyTable<&'static str, (u64, &'static [u8])>,
    revision: u64,
}

impl Snapshot for RedbSnapshot {
    fn revision(&self) -> u64 {
        self.revision
    }

    fn entries<'a>(&'a self, prefix: &'a str) -> Box<dyn Iterator<Item = Result<Entry>> + 'a> {
        let range = match self.table.range::<&str>(prefix..) {
            Ok(r) => r,
            Err(e) => return Box::new(std::iter::once(Err(io(e)))),
        };
        Box::new(
            range
                .map(|item| {
                    let (k, v) = item.map_err(io)?;
                    let (revision, value) = v.value();
                    Ok(Entry {
                        key: k.value().to_owned(),
                        value: value.to_vec(),
                        revision,
                    })
                })
                .take_while(move |e| e.as_ref().map_or(true, |e| e.key.starts_with(prefix))),
        )
    }
}

#[async_trait]
impl Backend for EmbeddedBackend {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        check_key(key)?;
        let table = self.entries()?;
        Ok(table.get(key).map_err(io)?.map(|v| v.value().1.to_vec()))
    }

    async fn transaction(&self, ops: Vec<Op>) -> Result<()> {
        self.submit(Request::new(Vec::new(), ops)?)
            .await
            .map(|_| ())
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>> {
        let table = self.entries()?;
        let mut out = Vec::new();
        let mut from = prefix.to_owned();
        // Skip-scan: after finding folder `a/`, seek past everything below it ("a0" sorts
        // right after "a/..."), so listing a folder costs its children, not its descendants.
        loop {
            let mut range = table
                .range::<&str>((Bound::Included(from.as_str()), Bound::Unbounded))
                .map_err(io)?;
            let Some(item) = range.next() else { break };
            let (k, _) = item.map_err(io)?;
            let key = k.value();
            if !key.starts_with(prefix) {
                break;
            }
            let rest = &key[prefix.len()..];
            match rest.find('/') {
                Some(i) => {
                    let folder = &rest[..=i];
                    out.push(folder.to_owned());
                    from = format!("{prefix}{}0", &rest[..i]);
                }
                None => {
                    out.push(rest.to_owned());
                    from = format!("{key}\0");
                }
            }
        }
        out.sort();
        out.dedup();
        Ok(out)
    }

    fn kind(&self) -> &'static str {
        "embedded"
    }

    fn durable(&self) -> bool {
        true
    }

    async fn get_with_revision(&self, key: &str) -> Result<Option<(Vec<u8>, u64)>> {
        check_key(key)?;
        let table = self.entries()?;
        Ok(table.get(key).map_err(io)?.map(|v| {
            let (revision, value) = v.value();
            (value.to_vec(), revision)
        }))
    }

    async fn revision(&self) -> Result<u64> {
        let txn = self.db.begin_read().map_err(io)?;
        read_revision(&txn)
    }

    async fn transaction_if(&self, checks: Vec<Check>, ops: Vec<Op>) -> Result<u64> {
        self.submit(Request::new(checks, ops)?).await
    }

    async fn watch(&self, prefix: &str, from_revision: u64) -> Result<Watcher> {
        self.feed.watch(prefix, from_revision)
    }

    async fn delete_prefix(&self, prefix: &str) -> Result<u64> {
        self.submit(Request::delete_prefix(prefix)?).await
    }

    async fn list_page(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<String>, Option<String>)> {
        check_limit(limit)?;
        let table = self.entries()?;
        let from = match after {
            Some(a) if a >= prefix => Bound::Excluded(a),
            _ => Bound::Included(prefix),
        };
        let mut keys = Vec::new();
        // Only the keys are copied out; values stay where they are.
        for item in table.range::<&str>((from, Bound::Unbounded)).map_err(io)? {
            let (k, _) = item.map_err(io)?;
            let k = k.value();
            if !k.starts_with(prefix) || keys.len() > limit {
                break;
            }
            keys.push(k.to_owned());
        }
        Ok(page(keys, limit))
    }

    async fn snapshot(&self) -> Result<Box<dyn Snapshot>> {
        // One read transaction gives both the revision and the entries of the same commit.
        let txn = self.db.begin_read().map_err(io)?;
        let revision = read_revision(&txn)?;
        let table = txn.open_table(ENTRIES).map_err(io)?;
        Ok(Box::new(RedbSnapshot { table, revision }))
    }

    fn leader_lock(&self) -> Option<Arc<dyn LeaderLock>> {
        Some(self.lock.clone())
    }
}

fn read_revision(txn: &redb::ReadTransaction) -> Result<u64> {
    let meta = txn.open_table(META).map_err(io)?;
    Ok(meta
        .get(META_REVISION)
        .map_err(io)?
        .map_or(0, |g| g.value()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A store written before revisions (format 1) opens with its data at revision 1.
    #[tokio::test]
    async fn format_1_is_upgraded_on_open() {
        let dir = tempfile::tempdir().unwrap();
        {
            let db = Database::create(dir.path().join(FILE_NAME)).unwrap();
            let txn = db.begin_write().unwrap();
            {
                let mut t = txn.open_table(LEGACY).unwrap();
                t.insert("core/keyring", &b"ring"[..]).unwrap();
                t.insert("logical/x/a", &b"a"[..]).unwrap();
            }
            txn.commit().unwrap();
        }
        let b = EmbeddedBackend::open(dir.path()).unwrap();
        assert_eq!(b.revision().await.unwrap(), 1);
        assert_eq!(
            b.get_with_revision("core/keyring").await.unwrap(),
            Some((b"ring".to_vec(), 1))
        );
        assert_eq!(b.list("logical/x/").await.unwrap(), vec!["a"]);
        let r = b.compare_and_swap("logical/x/a", 1, None).await.unwrap();
        assert_eq!(r, 2);
        let txn = b.db.begin_read().unwrap();
        assert!(
            !txn.list_tables()
                .unwrap()
                .any(|t| t.name() == LEGACY.name()),
            "the old table is gone"
        );
    }

    /// A format this build does not know is refused, not misread.
    #[tokio::test]
    async fn a_newer_format_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        {
            let db = Database::create(dir.path().join(FILE_NAME)).unwrap();
            let txn = db.begin_write().unwrap();
            txn.open_table(META)
                .unwrap()
                .insert(META_FORMAT, FORMAT + 1)
                .unwrap();
            txn.commit().unwrap();
        }
        match EmbeddedBackend::open(dir.path()) {
            Err(PhysicalError::Io(m)) => assert!(m.contains("storage format 3"), "{m}"),
            Err(e) => panic!("wrong error: {e}"),
            Ok(_) => panic!("a newer format must not open"),
        }
    }
}
