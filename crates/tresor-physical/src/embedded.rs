//! The embedded on-disk backend: one redb file, the default storage of `tresor server`.
//!
//! Durability without serialising throughput: every write goes to one writer thread, which
//! drains everything queued while the previous commit was syncing and applies it in a single
//! redb transaction with `Durability::Immediate` (fsync on commit). Each caller is answered
//! only after the commit that holds its write has returned, so an acknowledged write survives
//! `kill -9`, and N concurrent writers cost one fsync instead of N (group commit).
//! Reads open their own MVCC read transaction and never wait for the writer.

use std::ops::Bound;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc;

use async_trait::async_trait;
use redb::{Database, ReadableDatabase, TableDefinition};
use tokio::sync::oneshot;

use crate::{Backend, Op, PhysicalError, Result, check_key};

const TABLE: TableDefinition<&str, &[u8]> = TableDefinition::new("tresor");
/// The file inside the configured directory.
pub const FILE_NAME: &str = "tresor.redb";
/// redb page cache: hot data stays in memory, the rest is read from the file on demand.
const CACHE_BYTES: usize = 32 * 1024 * 1024;
/// Upper bound on writes folded into one commit, so one commit stays short.
const MAX_BATCH: usize = 4096;

type Reply = oneshot::Sender<Result<()>>;

/// redb-backed durable storage. Cheap to clone handles are not needed: share it in an `Arc`.
pub struct EmbeddedBackend {
    db: Arc<Database>,
    tx: parking_lot::Mutex<Option<mpsc::Sender<(Vec<Op>, Reply)>>>,
    path: PathBuf,
}

fn io<E: std::fmt::Display>(e: E) -> PhysicalError {
    PhysicalError::Io(e.to_string())
}

impl EmbeddedBackend {
    /// Opens (creating if needed) the store in directory `dir`.
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
        {
            // Make sure the table exists so read transactions can always open it.
            let txn = db.begin_write().map_err(io)?;
            txn.open_table(TABLE).map_err(io)?;
            txn.commit().map_err(io)?;
        }
        let db = Arc::new(db);
        let (tx, rx) = mpsc::channel::<(Vec<Op>, Reply)>();
        let writer_db = db.clone();
        std::thread::Builder::new()
            .name("tresor-storage-writer".into())
            .spawn(move || writer_loop(&writer_db, &rx))
            .map_err(io)?;
        Ok(Self {
            db,
            tx: parking_lot::Mutex::new(Some(tx)),
            path,
        })
    }

    /// The database file.
    pub fn file(&self) -> &Path {
        &self.path
    }
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

fn writer_loop(db: &Database, rx: &mpsc::Receiver<(Vec<Op>, Reply)>) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        let result = commit(db, &batch).map_err(|e| e.to_string());
        if let Err(e) = &result {
            tracing::error!(error = %e, "storage commit failed");
        }
        for (_, reply) in batch {
            let _ = reply.send(result.clone().map_err(PhysicalError::Io));
        }
    }
}

fn commit(db: &Database, batch: &[(Vec<Op>, Reply)]) -> Result<()> {
    let txn = db.begin_write().map_err(io)?;
    {
        let mut table = txn.open_table(TABLE).map_err(io)?;
        for (ops, _) in batch {
            for op in ops {
                match op {
                    Op::Put(k, v) => {
                        table.insert(k.as_str(), v.as_slice()).map_err(io)?;
                    }
                    Op::Delete(k) => {
                        table.remove(k.as_str()).map_err(io)?;
                    }
                }
            }
        }
    }
    txn.commit().map_err(io)
}

#[async_trait]
impl Backend for EmbeddedBackend {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        check_key(key)?;
        let txn = self.db.begin_read().map_err(io)?;
        let table = txn.open_table(TABLE).map_err(io)?;
        Ok(table.get(key).map_err(io)?.map(|v| v.value().to_vec()))
    }

    async fn transaction(&self, ops: Vec<Op>) -> Result<()> {
        for op in &ops {
            match op {
                Op::Put(k, _) | Op::Delete(k) => check_key(k)?,
            }
        }
        let (reply, wait) = oneshot::channel();
        {
            let guard = self.tx.lock();
            let tx = guard.as_ref().ok_or(PhysicalError::Closed)?;
            tx.send((ops, reply)).map_err(|_| PhysicalError::Closed)?;
        }
        wait.await.map_err(|_| PhysicalError::Closed)?
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>> {
        let txn = self.db.begin_read().map_err(io)?;
        let table = txn.open_table(TABLE).map_err(io)?;
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
}
