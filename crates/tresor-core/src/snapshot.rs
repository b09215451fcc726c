//! Snapshots of the whole store (design-next §4): taking one, checking one, restoring one, and
//! Vault's `sys/storage/raft/snapshot` (+ `snapshot-force`) on the system backend.
//!
//! A snapshot is the barrier-encrypted entries exactly as stored, read from one consistent
//! point-in-time [`tresor_physical::Snapshot`] (writers keep going while it is taken): the
//! keyring and the root key blob travel with the data, sealed as they are, so a snapshot is
//! useless without the unseal keys, and nothing is ever decrypted to write one.
//!
//! # Format (version 1; every integer big-endian)
//!
//! ```text
//! magic "TRESNAP\0" (8) | format u16 | header_len u32 | header JSON
//! { 'E' | key_len u16 | key | revision u64 | value_len u32 | value }*    keys strictly ascending
//! 'M' | manifest_len u32 | manifest JSON
//! 'T' | hmac (32) | sha256 (32)
//! ```
//!
//! The header ([`Header`]) is known before the entries (cluster, time, backend, revision); the
//! manifest ([`Manifest`]: counts per top prefix and per mount view, the SHA-256 of the entry
//! records) comes after them, so the writer streams the store once and never holds it. `hmac`
//! is HMAC-SHA256 of every byte before it (the `'T'` included) under a key derived with HKDF
//! from the root key ([`crate::barrier::snapshot_mac_key`]): only a holder of the unseal keys
//! can make or check it. `sha256` is SHA-256 of every byte before it (the tag included), so
//! `inspect` detects corruption without any key. A restore validates all of it before its first
//! write.
//!
//! The only entry stored in clear is the seal configuration ([`SEAL_CONFIG_PATH`]); the root
//! key blob is sealed by the unseal key, the keyring by the root key, every other entry by a
//! keyring term (the storage path as associated data).

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::Arc;

use aws_lc_rs::{digest, hmac};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tresor_physical::{Backend, Op};
use tresor_sdk::framework::Path;
use tresor_sdk::{LogicalError, Operation, RawResponse, Request, Response};

use crate::barrier::{self, KEYRING_PATH, Key, OfflineKeyring, ROOT_KEY_PATH};
use crate::core::Core;
use crate::error::CoreError;
use crate::mounts::{AUTH_PATH, MOUNTS_PATH, MountEntry};
use crate::seal::{self, SEAL_CONFIG_PATH, SealConfig};
use crate::system::{Sys, handles, le};

/// The first eight bytes of every snapshot.
pub const MAGIC: &[u8; 8] = b"TRESNAP\0";
/// The format this build writes (and the newest it reads).
pub const FORMAT: u16 = 1;
const TAG_ENTRY: u8 = b'E';
const TAG_MANIFEST: u8 = b'M';
const TAG_END: u8 = b'T';
const TRAILER: usize = 1 + 32 + 32;
/// A restore whose values total at most this many bytes is one storage commit; a larger one is
/// written in batches (validated in full first all the same).
pub const SINGLE_COMMIT_BYTES: u64 = 32 << 20;
const BATCH_BYTES: usize = 8 << 20;
/// The media type of a snapshot on the wire.
pub const CONTENT_TYPE: &str = "application/octet-stream";

/// What is wrong with a snapshot file. Messages are for the operator.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// The bytes are not an intact snapshot (truncated, altered, or not a snapshot at all).
    #[error("snapshot is corrupt: {0}")]
    Corrupt(String),
    /// A snapshot from a newer build.
    #[error("snapshot format {0} is newer than this build understands ({FORMAT})")]
    Unsupported(u16),
    /// The integrity tag does not verify under the given keys.
    #[error("snapshot integrity tag does not verify with these keys")]
    BadTag,
    /// Storage could not be read while writing a snapshot.
    #[error("reading storage for the snapshot: {0}")]
    Storage(String),
}

impl From<SnapshotError> for CoreError {
    fn from(e: SnapshotError) -> Self {
        match e {
            SnapshotError::Storage(m) => CoreError::Internal(m),
            other => CoreError::InvalidRequest(other.to_string()),
        }
    }
}

fn corrupt(m: impl Into<String>) -> SnapshotError {
    SnapshotError::Corrupt(m.into())
}

/// What is known before the entries are read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Header {
    pub format: u16,
    pub cluster_id: String,
    pub cluster_name: String,
    /// RFC 3339, UTC.
    pub created_at: String,
    /// The storage backend it was taken from (`inmem`, `embedded`, ...).
    pub backend: String,
    /// The store's revision the snapshot is consistent with.
    pub revision: u64,
    pub tresor_version: String,
}

/// What the entries hold, written after them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub entries: u64,
    /// The stored (encrypted) value bytes.
    pub value_bytes: u64,
    /// Entries per top-level prefix (`core/`, `sys/`, `logical/`, `auth/`).
    pub prefixes: BTreeMap<String, u64>,
    /// Entries per mount view (`logical/<uuid>/`, `auth/<uuid>/`, `sys/<store>/`).
    pub views: BTreeMap<String, u64>,
    /// Hex SHA-256 of the entry records, as written.
    pub entries_sha256: String,
}

impl Manifest {
    fn count(&mut self, key: &str, value_len: usize) {
        self.entries += 1;
        self.value_bytes += value_len as u64;
        *self.prefixes.entry(top_prefix(key).to_owned()).or_default() += 1;
        if let Some(v) = view_of(key) {
            *self.views.entry(v.to_owned()).or_default() += 1;
        }
    }
}

/// `core/` of `core/mounts`; a key without `/` is its own prefix.
pub fn top_prefix(key: &str) -> &str {
    match key.find('/') {
        Some(i) => &key[..=i],
        None => key,
    }
}

/// The mount view (or system store) a key belongs to: the first two segments under
/// `logical/`, `auth/` and `sys/`.
pub fn view_of(key: &str) -> Option<&str> {
    let top = top_prefix(key);
    if !matches!(top, "logical/" | "auth/" | "sys/") {
        return None;
    }
    let rest = &key[top.len()..];
    rest.find('/').map(|i| &key[..top.len() + i + 1])
}

/// Every byte written goes through both the checksum and the tag.
struct Sink<W: Write> {
    w: W,
    sha: digest::Context,
    mac: hmac::Context,
    bytes: u64,
}

impl<W: Write> Sink<W> {
    fn put(&mut self, b: &[u8]) -> std::io::Result<()> {
        self.w.write_all(b)?;
        self.sha.update(b);
        self.mac.update(b);
        self.bytes += b.len() as u64;
        Ok(())
    }
}

fn io_err(e: std::io::Error) -> SnapshotError {
    SnapshotError::Storage(format!("writing the snapshot: {e}"))
}

/// What [`write`] produced.
#[derive(Debug, Clone)]
pub struct Written {
    pub manifest: Manifest,
    /// The snapshot's size in bytes.
    pub bytes: u64,
}

/// Streams `snap` into `w` in the format above, tagging it with `mac_key`. Reads storage
/// synchronously (run it on a blocking thread) and holds one entry at a time.
pub fn write<W: Write>(
    snap: &dyn tresor_physical::Snapshot,
    header: &Header,
    mac_key: &Key,
    w: W,
) -> Result<Written, SnapshotError> {
    let mut s = Sink {
        w,
        sha: digest::Context::new(&digest::SHA256),
        mac: hmac::Context::with_key(&hmac::Key::new(hmac::HMAC_SHA256, &mac_key.0[..])),
        bytes: 0,
    };
    let header_json = serde_json::to_vec(header).map_err(|e| corrupt(e.to_string()))?;
    s.put(MAGIC).map_err(io_err)?;
    s.put(&FORMAT.to_be_bytes()).map_err(io_err)?;
    s.put(&(header_json.len() as u32).to_be_bytes())
        .map_err(io_err)?;
    s.put(&header_json).map_err(io_err)?;
    let mut manifest = Manifest::default();
    let mut entries_sha = digest::Context::new(&digest::SHA256);
    let mut head = Vec::with_capacity(256);
    for e in snap.entries("") {
        let e = e.map_err(|e| SnapshotError::Storage(e.to_string()))?;
        let klen = u16::try_from(e.key.len())
            .map_err(|_| SnapshotError::Storage(format!("key too long: {:.64}...", e.key)))?;
        let vlen = u32::try_from(e.value.len())
            .map_err(|_| SnapshotError::Storage(format!("value of {:?} over 4 GiB", e.key)))?;
        head.clear();
        head.push(TAG_ENTRY);
        head.extend_from_slice(&klen.to_be_bytes());
        head.extend_from_slice(e.key.as_bytes());
        head.extend_from_slice(&e.revision.to_be_bytes());
        head.extend_from_slice(&vlen.to_be_bytes());
        s.put(&head).map_err(io_err)?;
        s.put(&e.value).map_err(io_err)?;
        entries_sha.update(&head);
        entries_sha.update(&e.value);
        manifest.count(&e.key, e.value.len());
    }
    manifest.entries_sha256 = hex::encode(entries_sha.finish().as_ref());
    let m = serde_json::to_vec(&manifest).map_err(|e| corrupt(e.to_string()))?;
    s.put(&[TAG_MANIFEST]).map_err(io_err)?;
    s.put(&(m.len() as u32).to_be_bytes()).map_err(io_err)?;
    s.put(&m).map_err(io_err)?;
    s.put(&[TAG_END]).map_err(io_err)?;
    let Sink {
        mut w,
        mut sha,
        mac,
        bytes,
    } = s;
    let tag = mac.sign();
    sha.update(tag.as_ref());
    let sum = sha.finish();
    w.write_all(tag.as_ref()).map_err(io_err)?;
    w.write_all(sum.as_ref()).map_err(io_err)?;
    w.flush().map_err(io_err)?;
    Ok(Written {
        manifest,
        bytes: bytes + 64,
    })
}

/// One entry of a parsed snapshot, borrowed from its bytes.
#[derive(Debug, Clone, Copy)]
pub struct Item<'a> {
    pub key: &'a str,
    pub revision: u64,
    pub value: &'a [u8],
}

/// A snapshot whose structure and checksum have been checked ([`parse`]).
#[derive(Debug)]
pub struct Parsed<'a> {
    pub header: Header,
    pub manifest: Manifest,
    /// In key order, each key once.
    pub entries: Vec<Item<'a>>,
    signed: &'a [u8],
    tag: &'a [u8],
}

impl<'a> Parsed<'a> {
    /// The value stored under `key`, if the snapshot has it.
    pub fn get(&self, key: &str) -> Option<&'a [u8]> {
        self.entries
            .binary_search_by(|e| e.key.cmp(key))
            .ok()
            .map(|i| self.entries[i].value)
    }

    /// Whether the integrity tag verifies under `mac_key` (constant time).
    pub fn tag_verifies(&self, mac_key: &Key) -> bool {
        let k = hmac::Key::new(hmac::HMAC_SHA256, &mac_key.0[..]);
        hmac::verify(&k, self.signed, self.tag).is_ok()
    }

    /// The seal configuration the snapshot carries (how many shares unseal it).
    pub fn seal_config(&self) -> Result<SealConfig, SnapshotError> {
        let b = self.get(SEAL_CONFIG_PATH).ok_or_else(|| {
            corrupt("no seal configuration: not a snapshot of an initialised server")
        })?;
        serde_json::from_slice(b).map_err(|e| corrupt(format!("seal configuration: {e}")))
    }
}

/// A reader over the snapshot's bytes that reports truncation as corruption.
struct Cursor<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], SnapshotError> {
        let end = self
            .at
            .checked_add(n)
            .filter(|e| *e <= self.b.len())
            .ok_or_else(|| corrupt(format!("truncated in {what} at byte {}", self.at)))?;
        let s = &self.b[self.at..end];
        self.at = end;
        Ok(s)
    }
    fn u8(&mut self, what: &str) -> Result<u8, SnapshotError> {
        Ok(self.take(1, what)?[0])
    }
    fn u16(&mut self, what: &str) -> Result<u16, SnapshotError> {
        Ok(u16::from_be_bytes(
            self.take(2, what)?.try_into().expect("2 bytes"),
        ))
    }
    fn u32(&mut self, what: &str) -> Result<u32, SnapshotError> {
        Ok(u32::from_be_bytes(
            self.take(4, what)?.try_into().expect("4 bytes"),
        ))
    }
    fn u64(&mut self, what: &str) -> Result<u64, SnapshotError> {
        Ok(u64::from_be_bytes(
            self.take(8, what)?.try_into().expect("8 bytes"),
        ))
    }
}

/// Checks the magic, the format, the checksum and the whole structure (keys valid, ascending
/// and unique; the manifest agreeing with the entries), without any key.
pub fn parse(bytes: &[u8]) -> Result<Parsed<'_>, SnapshotError> {
    if bytes.len() < MAGIC.len() + 2 || &bytes[..MAGIC.len()] != MAGIC {
        return Err(corrupt("not a Tresor snapshot (bad magic)"));
    }
    let format = u16::from_be_bytes([bytes[8], bytes[9]]);
    if format > FORMAT {
        return Err(SnapshotError::Unsupported(format));
    }
    if format == 0 || bytes.len() < 10 + 4 + TRAILER {
        return Err(corrupt("truncated"));
    }
    let (body, sum) = bytes.split_at(bytes.len() - 32);
    if digest::digest(&digest::SHA256, body).as_ref() != sum {
        return Err(corrupt(
            "checksum mismatch (the file was altered or truncated)",
        ));
    }
    let signed = &bytes[..bytes.len() - 64];
    let tag = &bytes[bytes.len() - 64..bytes.len() - 32];
    let mut c = Cursor { b: signed, at: 10 };
    let hlen = c.u32("the header length")? as usize;
    let header: Header = serde_json::from_slice(c.take(hlen, "the header")?)
        .map_err(|e| corrupt(format!("header: {e}")))?;
    if header.format != format {
        return Err(corrupt("the header's format disagrees with the file's"));
    }
    let mut entries: Vec<Item<'_>> = Vec::new();
    let mut computed = Manifest::default();
    let mut entries_sha = digest::Context::new(&digest::SHA256);
    let manifest = loop {
        let start = c.at;
        match c.u8("a record tag")? {
            TAG_ENTRY => {
                let klen = c.u16("an entry's key length")? as usize;
                let key = std::str::from_utf8(c.take(klen, "an entry's key")?)
                    .map_err(|_| corrupt(format!("a key at byte {start} is not UTF-8")))?;
                if key.is_empty() || key.starts_with('/') || key.contains('\0') {
                    return Err(corrupt(format!("invalid key {key:?}")));
                }
                if let Some(prev) = entries.last()
                    && prev.key >= key
                {
                    return Err(corrupt(format!("keys out of order at {key:?}")));
                }
                let revision = c.u64("an entry's revision")?;
                let vlen = c.u32("an entry's value length")? as usize;
                let value = c.take(vlen, "an entry's value")?;
                entries_sha.update(&signed[start..c.at]);
                computed.count(key, value.len());
                entries.push(Item {
                    key,
                    revision,
                    value,
                });
            }
            TAG_MANIFEST => {
                let mlen = c.u32("the manifest length")? as usize;
                let m: Manifest = serde_json::from_slice(c.take(mlen, "the manifest")?)
                    .map_err(|e| corrupt(format!("manifest: {e}")))?;
                break m;
            }
            other => {
                return Err(corrupt(format!(
                    "unknown record {other:#04x} at byte {start}"
                )));
            }
        }
    };
    if c.u8("the end record")? != TAG_END || c.at != signed.len() {
        return Err(corrupt("data after the manifest"));
    }
    computed.entries_sha256 = hex::encode(entries_sha.finish().as_ref());
    if computed != manifest {
        return Err(corrupt(format!(
            "the manifest does not match the entries ({} entries listed, {} found)",
            manifest.entries, computed.entries
        )));
    }
    Ok(Parsed {
        header,
        manifest,
        entries,
        signed,
        tag,
    })
}

/// A mount and how many entries its view holds in a snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MountCount {
    /// `secret/`, or `auth/userpass/` for an auth method.
    pub path: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub view: String,
    pub entries: u64,
}

/// What an offline verification found: every entry decrypted, the tag verified.
#[derive(Debug, Clone)]
pub struct Verified {
    pub header: Header,
    pub manifest: Manifest,
    /// Entries decrypted with a keyring term (all but the seal configuration, the root key
    /// blob and the keyring).
    pub decrypted: u64,
    pub key_terms: usize,
    pub mounts: Vec<MountCount>,
}

/// Offline verification with the unseal key: opens the root key and the keyring from the
/// snapshot, checks the integrity tag, decrypts every entry, and counts entries per mount.
pub fn verify_with_key(bytes: &[u8], unseal_key: &Key) -> Result<Verified, CoreError> {
    let p = parse(bytes)?;
    let root_blob = p
        .get(ROOT_KEY_PATH)
        .ok_or_else(|| CoreError::from(corrupt("no root key blob")))?;
    let root = barrier::open_root_key(unseal_key, root_blob)?;
    if !p.tag_verifies(&barrier::snapshot_mac_key(&root)) {
        return Err(SnapshotError::BadTag.into());
    }
    let keyring_blob = p
        .get(KEYRING_PATH)
        .ok_or_else(|| CoreError::from(corrupt("no keyring")))?;
    let keyring = OfflineKeyring::open(&root, keyring_blob)?;
    let mut decrypted = 0;
    for e in &p.entries {
        if matches!(e.key, SEAL_CONFIG_PATH | ROOT_KEY_PATH | KEYRING_PATH) {
            continue;
        }
        keyring.decrypt(e.key, e.value)?;
        decrypted += 1;
    }
    let mut mounts = Vec::new();
    for (path, prefix) in [(MOUNTS_PATH, ""), (AUTH_PATH, "auth/")] {
        let Some(blob) = p.get(path) else { continue };
        let table: Vec<MountEntry> = serde_json::from_slice(&keyring.decrypt(path, blob)?)
            .map_err(|e| CoreError::Internal(format!("decoding mount table: {e}")))?;
        for m in table {
            let view = m.view_prefix();
            // The system mount's view (`sys/`) includes the token, policy and identity
            // stores, which are also listed under their own mounts.
            let entries = p
                .entries
                .iter()
                .filter(|e| e.key.starts_with(&view))
                .count() as u64;
            mounts.push(MountCount {
                path: format!("{prefix}{}", m.path),
                kind: m.kind,
                view,
                entries,
            });
        }
    }
    Ok(Verified {
        header: p.header.clone(),
        manifest: p.manifest.clone(),
        decrypted,
        key_terms: keyring.terms(),
        mounts,
    })
}

/// [`verify_with_key`] from unseal key shares (hex or base64), combined with the threshold of
/// the seal configuration the snapshot carries.
pub fn verify_with_shares(bytes: &[u8], shares: &[&str]) -> Result<Verified, CoreError> {
    let cfg = parse(bytes)?.seal_config()?;
    if shares.len() < cfg.secret_threshold {
        return Err(CoreError::InvalidRequest(format!(
            "{} unseal key shares given, the snapshot needs {}",
            shares.len(),
            cfg.secret_threshold
        )));
    }
    let decoded = shares
        .iter()
        .map(|s| seal::decode_share(s))
        .collect::<Result<Vec<_>, _>>()?;
    let key = seal::combine(cfg.secret_threshold, &decoded)?;
    verify_with_key(bytes, &key)
}

/// What a restore did (or, for a restore into an unsealed server, is doing).
#[derive(Debug, Clone, Serialize)]
pub struct Restored {
    pub cluster_id: String,
    pub created_at: String,
    pub revision: u64,
    pub entries: u64,
    /// Whether the integrity tag was checked (with this cluster's keys).
    pub tag_verified: bool,
    pub secret_shares: usize,
    pub secret_threshold: usize,
}

/// Everything a restore checks before it writes: structure, checksum, the entries a server
/// needs to unseal, the seal configuration.
fn check(bytes: &[u8]) -> Result<(Parsed<'_>, SealConfig), CoreError> {
    let p = parse(bytes)?;
    let cfg = p.seal_config()?;
    seal::validate_shares(cfg.secret_shares, cfg.secret_threshold, &cfg.pgp_keys)
        .map_err(|e| CoreError::from(corrupt(format!("seal configuration: {e}"))))?;
    for k in [ROOT_KEY_PATH, KEYRING_PATH] {
        if p.get(k).is_none() {
            return Err(corrupt(format!("{k} is missing")).into());
        }
    }
    Ok((p, cfg))
}

fn restored(p: &Parsed<'_>, cfg: &SealConfig, tag_verified: bool) -> Restored {
    Restored {
        cluster_id: p.header.cluster_id.clone(),
        created_at: p.header.created_at.clone(),
        revision: p.header.revision,
        entries: p.manifest.entries,
        tag_verified,
        secret_shares: cfg.secret_shares,
        secret_threshold: cfg.secret_threshold,
    }
}

/// Replaces the whole store with the snapshot's entries: deletes every key it does not hold,
/// writes every entry it holds. One commit up to [`SINGLE_COMMIT_BYTES`]; beyond, batches with
/// the root key blob, the keyring and the seal configuration in the last one. The caller has
/// validated the snapshot and keeps the server sealed.
async fn replace_store(physical: &dyn Backend, p: &Parsed<'_>) -> Result<u64, CoreError> {
    let mut deletes = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let (keys, next) = physical.list_page("", after.as_deref(), 1000).await?;
        for k in keys {
            if p.get(&k).is_none() {
                deletes.push(Op::Delete(k));
            }
        }
        match next {
            Some(n) => after = Some(n),
            None => break,
        }
    }
    let deleted = deletes.len() as u64;
    let put = |e: &Item<'_>| Op::Put(e.key.to_owned(), e.value.to_vec());
    if p.manifest.value_bytes <= SINGLE_COMMIT_BYTES {
        let mut ops = deletes;
        ops.extend(p.entries.iter().map(put));
        physical.transaction(ops).await?;
        return Ok(deleted);
    }
    if !deletes.is_empty() {
        physical.transaction(deletes).await?;
    }
    let last = |k: &str| matches!(k, SEAL_CONFIG_PATH | ROOT_KEY_PATH | KEYRING_PATH);
    let mut batch = Vec::new();
    let mut size = 0;
    for e in p.entries.iter().filter(|e| !last(e.key)) {
        size += e.value.len() + e.key.len();
        batch.push(put(e));
        if size >= BATCH_BYTES {
            physical.transaction(std::mem::take(&mut batch)).await?;
            size = 0;
        }
    }
    batch.extend(p.entries.iter().filter(|e| last(e.key)).map(put));
    physical.transaction(batch).await?;
    Ok(deleted)
}

fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

impl Core {
    /// Streams a snapshot of the whole store into `w` (a file, a buffer) from one consistent
    /// point in time, while writers continue. Needs the unsealed state (the cluster's identity
    /// and the tag key) but decrypts nothing.
    pub async fn snapshot_to<W: Write + Send + 'static>(
        &self,
        w: W,
    ) -> Result<(Header, Written, W), CoreError> {
        let u = self.unsealed()?;
        let physical = self.0.physical.clone();
        let snap = physical.snapshot().await?;
        let header = Header {
            format: FORMAT,
            cluster_id: u.cluster_id.clone(),
            cluster_name: u.cluster_name.clone(),
            created_at: now_rfc3339(),
            backend: physical.kind().to_owned(),
            revision: snap.revision(),
            tresor_version: crate::core::VERSION.to_owned(),
        };
        let mac = u.barrier.snapshot_mac_key();
        drop(u);
        let h = header.clone();
        let (written, w) = tokio::task::spawn_blocking(move || {
            let mut w = w;
            write(&*snap, &h, &mac, &mut w).map(|written| (written, w))
        })
        .await
        .map_err(|e| CoreError::Internal(format!("snapshot writer: {e}")))??;
        Ok((header, written, w))
    }

    /// A snapshot in memory (what `GET sys/storage/raft/snapshot` answers).
    pub async fn snapshot(&self) -> Result<Vec<u8>, CoreError> {
        Ok(self.snapshot_to(Vec::new()).await?.2)
    }

    /// `POST sys/storage/raft/snapshot[-force]` on an unsealed server: validates everything,
    /// then seals the server and replaces the store. The writes wait until the requests in
    /// flight (this one included) have finished and the seal's cleanup has run; until they are
    /// done, unseal and seal-status wait too, so the next unseal sees the snapshot's store and
    /// needs the snapshot's unseal keys.
    ///
    /// A snapshot of this cluster must carry a tag that verifies with this cluster's keys. One
    /// of another cluster cannot be checked with them: it is refused unless `force`.
    pub async fn restore_snapshot(
        &self,
        bytes: Arc<[u8]>,
        force: bool,
    ) -> Result<Restored, CoreError> {
        let u = self.unsealed()?;
        let (p, cfg) = check(&bytes)?;
        let tag_ok = p.tag_verifies(&u.barrier.snapshot_mac_key());
        if !tag_ok && p.header.cluster_id == u.cluster_id {
            return Err(CoreError::InvalidRequest(
                "snapshot integrity tag does not verify with this cluster's keys: the snapshot was altered".into(),
            ));
        }
        if !tag_ok && !force {
            return Err(CoreError::InvalidRequest(format!(
                "snapshot is of another cluster ({}; this server is {}) and cannot be verified with this cluster's keys; use snapshot-force (tresor operator snapshot restore -force) to restore it anyway",
                p.header.cluster_id, u.cluster_id
            )));
        }
        let summary = restored(&p, &cfg, tag_ok);
        drop(p);
        drop(u);
        // A HA active node keeps the lock (and so its fenced right to write) until the store
        // is replaced; the standbys follow the restore on the change feed, and one of them
        // takes over when this node lets go.
        let ha_active = self
            .ha()
            .is_some_and(|h| h.role() == crate::ha::HaRole::Active);
        let (locked_tx, locked_rx) = tokio::sync::oneshot::channel();
        let (go_tx, go_rx) = tokio::sync::oneshot::channel::<()>();
        let core = self.clone();
        tokio::spawn(async move {
            let mut progress = core.unseal_progress().lock().await;
            let _ = locked_tx.send(());
            if go_rx.await.is_err() {
                return;
            }
            core.sealed_and_drained().await;
            let result = match check(&bytes) {
                Ok((p, _)) => replace_store(&*core.0.physical, &p).await,
                Err(e) => Err(e),
            };
            if ha_active {
                core.ha_stop();
            }
            match result {
                Ok(deleted) => {
                    core.cache_seal_config(cfg);
                    progress.reset();
                    tracing::info!(deleted, "snapshot restored; the server is sealed");
                }
                Err(e) => {
                    tracing::error!(error = %e, "snapshot restore failed after validation; the store may be incomplete: restore again")
                }
            }
        });
        locked_rx
            .await
            .map_err(|_| CoreError::Internal("snapshot restore task ended early".into()))?;
        if ha_active {
            self.seal_state().await?;
        } else {
            self.seal().await?;
        }
        let _ = go_tx.send(());
        tracing::info!(cluster_id = %summary.cluster_id, entries = summary.entries, "restoring a snapshot: the server is sealed");
        Ok(summary)
    }

    /// Restores a snapshot into an uninitialised server (no token exists yet: the HTTP crate
    /// serves this bare, like `sys/init`). Only the checksum and structure can be checked; the
    /// server then unseals with the snapshot's unseal keys.
    pub async fn restore_uninitialized(&self, bytes: &[u8]) -> Result<Restored, CoreError> {
        let mut progress = self.unseal_progress().lock().await;
        if self.initialized().await? {
            return Err(CoreError::InvalidRequest(
                "Vault is already initialized: restore with a sudo token (POST sys/storage/raft/snapshot)".into(),
            ));
        }
        let (p, cfg) = check(bytes)?;
        replace_store(&*self.0.physical, &p).await?;
        let summary = restored(&p, &cfg, false);
        self.cache_seal_config(cfg);
        progress.reset();
        tracing::info!(cluster_id = %summary.cluster_id, entries = summary.entries, "snapshot restored into an uninitialised server; it is sealed");
        Ok(summary)
    }
}

fn sealed_notice(r: &Restored) -> String {
    format!(
        "the server is sealed: unseal it with {} of the {} unseal keys of the snapshot's cluster",
        r.secret_threshold, r.secret_shares
    )
}

/// The answer of a restore: what was restored, and that the server is sealed.
pub fn restore_response(r: &Restored) -> serde_json::Value {
    json!({
        "restored": true,
        "sealed": true,
        "cluster_id": r.cluster_id,
        "created_at": r.created_at,
        "revision": r.revision,
        "entries": r.entries,
        "tag_verified": r.tag_verified,
        "t": r.secret_threshold,
        "n": r.secret_shares,
        "message": sealed_notice(r),
    })
}

async fn save(s: Arc<Sys>) -> tresor_sdk::Result<Option<Response>> {
    let c = handles(&s);
    let body = c.snapshot().await.map_err(le)?;
    Ok(Some(Response {
        raw: Some(RawResponse {
            headers: Vec::new(),
            status: 200,
            content_type: CONTENT_TYPE.into(),
            body,
        }),
        ..Default::default()
    }))
}

async fn restore(s: Arc<Sys>, r: Request, force: bool) -> tresor_sdk::Result<Option<Response>> {
    let body = r
        .raw_body
        .clone()
        .filter(|b| !b.is_empty())
        .ok_or_else(|| {
            LogicalError::invalid(
                "the request body must be the snapshot (application/octet-stream)",
            )
        })?;
    let c = handles(&s);
    let done = c.restore_snapshot(body, force).await.map_err(le)?;
    Ok(Some(
        Response::json(restore_response(&done)).with_warning(sealed_notice(&done)),
    ))
}

/// What Vault answers on its raft cluster paths when its storage is not raft: a 400.
const NOT_RAFT: &str = "raft storage is not in use";

async fn not_raft() -> tresor_sdk::Result<Option<Response>> {
    Err(LogicalError::invalid(NOT_RAFT))
}

/// `sys/storage/raft/snapshot` and `sys/storage/raft/snapshot-force` (both sudo), and Vault's
/// raft cluster paths, which answer as Vault does on a server whose storage is not raft.
pub(crate) fn paths() -> Vec<Path<Sys>> {
    let cluster = "Tresor's storage is not a raft cluster (HA runs on etcd), so this answers 400 \"raft storage is not in use\", as Vault does on other storage.";
    vec![
        Path::new("storage/raft/configuration")
            .op(Operation::Read, |_, _, _| Box::pin(not_raft()))
            .help("The raft cluster's configuration (Vault's raft storage).", cluster),
        Path::new("storage/raft/remove-peer")
            .op(Operation::Update, |_, _, _| Box::pin(not_raft()))
            .help("Remove a node from the raft cluster (Vault's raft storage).", cluster),
        Path::new("storage/raft/join")
            .op(Operation::Update, |_, _, _| Box::pin(not_raft()))
            .help("Join a raft cluster (Vault's raft storage).", cluster),
        Path::new("storage/raft/autopilot/state")
            .op(Operation::Read, |_, _, _| Box::pin(not_raft()))
            .help("The raft autopilot's view of the cluster (Vault's raft storage).", cluster),
        Path::new("storage/raft/autopilot/configuration")
            .op(Operation::Read, |_, _, _| Box::pin(not_raft()))
            .op(Operation::Update, |_, _, _| Box::pin(not_raft()))
            .help("The raft autopilot's settings (Vault's raft storage).", cluster),
        Path::new("storage/raft/snapshot")
            .op(Operation::Read, |s, _, _| Box::pin(save(s)))
            .op(Operation::Update, |s, r, _| Box::pin(restore(s, r, false)))
            .help(
                "Take or restore a snapshot of the whole store.",
                "GET answers a consistent snapshot of every stored entry, still encrypted (application/octet-stream). POST restores one from the request body: it is validated in full, the server seals, and the store is replaced; the server then unseals with the snapshot's unseal keys. A snapshot of another cluster needs snapshot-force.",
            ),
        Path::new("storage/raft/snapshot-force")
            .op(Operation::Update, |s, r, _| Box::pin(restore(s, r, true)))
            .help(
                "Restore a snapshot of another cluster.",
                "Like POST storage/raft/snapshot, but a snapshot whose integrity tag cannot be checked with this cluster's keys (another cluster's) is restored too.",
            ),
    ]
}

#[cfg(test)]
mod tests {
    use super::{top_prefix, view_of};

    #[test]
    fn prefixes_and_views() {
        for (key, top, view) in [
            ("core/mounts", "core/", None),
            ("logical/u1/data/a", "logical/", Some("logical/u1/")),
            ("logical/u1", "logical/", None),
            ("auth/u2/user/x", "auth/", Some("auth/u2/")),
            ("sys/policy/default", "sys/", Some("sys/policy/")),
            ("plain", "plain", None),
        ] {
            assert_eq!(top_prefix(key), top, "{key}");
            assert_eq!(view_of(key), view, "{key}");
        }
    }
}
