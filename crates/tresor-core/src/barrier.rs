//! The barrier: the one place that encrypts, decrypts and authenticates stored values.
//!
//! Every value is sealed with AES-256-GCM under the keyring's active key term, with the
//! storage path as associated data, so a ciphertext moved to another key fails to open.
//! Layout of a stored value: `term (u32 BE) | version (1) | nonce (12) | ciphertext+tag`.
//! Old terms stay in the keyring so values written before a `sys/rotate` still open.
//!
//! The keyring itself is stored at [`KEYRING_PATH`], sealed with the root key; the root key is
//! stored at [`ROOT_KEY_PATH`], sealed with the unseal key that Shamir shares reconstruct.
//! A [`Barrier`] only exists once unsealed: the sealed core has no value of this type.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use parking_lot::RwLock;
use serde::{Deserialize, Serialize};
use tresor_physical::{Backend, Op};
use zeroize::Zeroizing;

use crate::error::CoreError;

pub const KEYRING_PATH: &str = "core/keyring";
pub const ROOT_KEY_PATH: &str = "core/root-key";
const VERSION: u8 = 1;
const HEADER: usize = 4 + 1 + NONCE_LEN;

/// A 256-bit key that is wiped when dropped and never printed.
#[derive(Clone)]
pub struct Key(pub Zeroizing<[u8; 32]>);

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Key(<redacted>)")
    }
}

impl Key {
    pub fn generate() -> Self {
        let mut k = Zeroizing::new([0u8; 32]);
        aws_lc_rs::rand::fill(&mut k[..]).expect("system randomness");
        Key(k)
    }
    pub fn from_slice(b: &[u8]) -> Result<Self, CoreError> {
        let arr: [u8; 32] = b
            .try_into()
            .map_err(|_| CoreError::InvalidRequest("invalid key: expected 32 bytes".into()))?;
        Ok(Key(Zeroizing::new(arr)))
    }
    fn aead(&self) -> LessSafeKey {
        LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &self.0[..]).expect("32-byte key"))
    }
}

/// Seals `plaintext` under `key` for storage at `path` (the AAD), tagging it with `term`.
pub fn seal_value(key: &LessSafeKey, term: u32, path: &str, plaintext: &[u8]) -> Vec<u8> {
    let mut nonce = [0u8; NONCE_LEN];
    aws_lc_rs::rand::fill(&mut nonce).expect("system randomness");
    let mut out = Vec::with_capacity(HEADER + plaintext.len() + 16);
    out.extend_from_slice(&term.to_be_bytes());
    out.push(VERSION);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(plaintext);
    let tag = key
        .seal_in_place_separate_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(path.as_bytes()),
            &mut out[HEADER..],
        )
        .expect("aes-gcm seal");
    out.extend_from_slice(tag.as_ref());
    out
}

/// The key term a stored value was sealed under.
fn term_of(blob: &[u8]) -> Result<u32, CoreError> {
    if blob.len() < HEADER + 16 || blob[4] != VERSION {
        return Err(CoreError::Internal(
            "stored value is malformed or from an unknown format".into(),
        ));
    }
    Ok(u32::from_be_bytes([blob[0], blob[1], blob[2], blob[3]]))
}

/// Opens a value sealed by [`seal_value`]; fails if the key, path or bytes differ.
pub fn open_value(
    key: &LessSafeKey,
    path: &str,
    blob: &[u8],
) -> Result<Zeroizing<Vec<u8>>, CoreError> {
    term_of(blob)?;
    let nonce = Nonce::try_assume_unique_for_key(&blob[5..HEADER])
        .map_err(|_| CoreError::Internal("bad nonce".into()))?;
    let mut buf = Zeroizing::new(blob[HEADER..].to_vec());
    let n = key
        .open_in_place(nonce, Aad::from(path.as_bytes()), &mut buf[..])
        .map_err(|_| {
            CoreError::Internal(format!(
                "failed to decrypt stored value at {path:?}: authentication failed"
            ))
        })?
        .len();
    buf.truncate(n);
    Ok(buf)
}

/// Opens the root key blob (stored at [`ROOT_KEY_PATH`]) with the unseal key; a wrong key is
/// `CoreError::InvalidUnsealKey`. For offline checks of a snapshot, which never unseal a core.
pub fn open_root_key(unseal_key: &Key, blob: &[u8]) -> Result<Key, CoreError> {
    let root = open_value(&unseal_key.aead(), ROOT_KEY_PATH, blob)
        .map_err(|_| CoreError::InvalidUnsealKey)?;
    Key::from_slice(&root)
}

/// The key of a snapshot's integrity tag: HKDF-SHA256 of the root key with a label of its
/// own, so the tag proves the writer held the root key (that is, the unseal keys) without
/// the tag key ever opening a stored value.
pub fn snapshot_mac_key(root_key: &Key) -> Key {
    use aws_lc_rs::hkdf;
    let mut out = Zeroizing::new([0u8; 32]);
    hkdf::Salt::new(hkdf::HKDF_SHA256, b"tresor snapshot")
        .extract(&root_key.0[..])
        .expand(&[b"integrity tag hmac-sha256 v1"], hkdf::HKDF_SHA256)
        .and_then(|okm| okm.fill(&mut out[..]))
        .expect("hkdf output of the hash length");
    Key(out)
}

/// The key of the HA echo's MAC (`crate::ha`): HKDF-SHA256 of the root key with a label of
/// its own. Every unsealed node of a cluster derives the same key; nothing else can.
pub fn echo_mac_key(root_key: &Key) -> Key {
    use aws_lc_rs::hkdf;
    let mut out = Zeroizing::new([0u8; 32]);
    hkdf::Salt::new(hkdf::HKDF_SHA256, b"tresor ha")
        .extract(&root_key.0[..])
        .expand(&[b"standby echo hmac-sha256 v1"], hkdf::HKDF_SHA256)
        .and_then(|okm| okm.fill(&mut out[..]))
        .expect("hkdf output of the hash length");
    Key(out)
}

/// Every key term of a keyring, opened offline (a snapshot's `verify`): values decrypt, nothing
/// is written.
pub struct OfflineKeyring {
    terms: BTreeMap<u32, LessSafeKey>,
}

impl std::fmt::Debug for OfflineKeyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OfflineKeyring")
            .field("terms", &self.terms.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl OfflineKeyring {
    /// Opens the keyring blob (stored at [`KEYRING_PATH`]) with the root key.
    pub fn open(root_key: &Key, blob: &[u8]) -> Result<Self, CoreError> {
        let plain = open_value(&root_key.aead(), KEYRING_PATH, blob)?;
        let stored: StoredKeyring =
            tresor_sdk::record::decode("keyring", &plain).map_err(CoreError::Internal)?;
        let mut terms = BTreeMap::new();
        for t in &stored.terms {
            let raw = Zeroizing::new(
                B64.decode(&t.key)
                    .map_err(|e| CoreError::Internal(format!("keyring term: {e}")))?,
            );
            terms.insert(t.term, Key::from_slice(&raw)?.aead());
        }
        Ok(OfflineKeyring { terms })
    }

    /// Decrypts a value stored at `path`, under whichever term sealed it.
    pub fn decrypt(&self, path: &str, blob: &[u8]) -> Result<Zeroizing<Vec<u8>>, CoreError> {
        let term = term_of(blob)?;
        let key = self.terms.get(&term).ok_or_else(|| {
            CoreError::Internal(format!("value at {path:?} uses unknown key term {term}"))
        })?;
        open_value(key, path, blob)
    }

    /// How many key terms the keyring holds.
    pub fn terms(&self) -> usize {
        self.terms.len()
    }
}

/// Vault's `sys/rotate/config`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RotationConfig {
    pub max_operations: u64,
    pub interval_secs: u64,
    pub enabled: bool,
}

impl Default for RotationConfig {
    fn default() -> Self {
        // Vault's default: rotate after 3.86 billion encryptions (safe bound for random GCM nonces).
        RotationConfig {
            max_operations: 3_865_470_566,
            interval_secs: 0,
            enabled: true,
        }
    }
}

struct Term {
    key: LessSafeKey,
    raw: Key,
    install_time: i64,
    encryptions: AtomicU64,
    /// The count the stored keyring already records for this term: always at least the
    /// encryptions made, so a crash can only over-count (rotation comes early, never late).
    reserved: AtomicU64,
}

impl Term {
    fn new(key: Key, install_time: i64, count: u64) -> Self {
        Term {
            key: key.aead(),
            raw: key,
            install_time,
            encryptions: AtomicU64::new(count),
            reserved: AtomicU64::new(count),
        }
    }
}

/// How many encryptions one write of the keyring reserves ahead of use.
const COUNT_RESERVATION: u64 = 1 << 20;

/// The persisted form of the keyring (inside the root-key-sealed blob).
#[derive(Serialize, Deserialize)]
struct StoredKeyring {
    version: u32,
    active: u32,
    terms: Vec<StoredTerm>,
    rotation: RotationConfig,
}

impl tresor_sdk::record::Versioned for StoredKeyring {
    const FORMAT: u32 = 1;
    fn format(&self) -> u32 {
        self.version
    }
}

#[derive(Serialize, Deserialize)]
struct StoredTerm {
    term: u32,
    key: String,
    install_time: i64,
    encryptions: u64,
}

impl Drop for StoredTerm {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.key);
    }
}

struct Keyring {
    active: u32,
    terms: BTreeMap<u32, Arc<Term>>,
    rotation: RotationConfig,
}

/// What `sys/key-status` reports.
#[derive(Debug, Clone)]
pub struct KeyStatus {
    pub term: u32,
    pub install_time: i64,
    pub encryptions: u64,
}

/// The unsealed barrier over a physical backend.
pub struct Barrier {
    physical: Arc<dyn Backend>,
    root_key: Key,
    keyring: RwLock<Keyring>,
    /// Held across every keyring write, from the snapshot to the storage write, so the stored
    /// keyring is always the newest (an older snapshot can never be written last).
    persist: tokio::sync::Mutex<()>,
}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

impl Barrier {
    /// Creates a fresh keyring and root key, seals the root key with `unseal_key`, and writes
    /// both. Used once, by `sys/init`.
    pub async fn initialize(
        physical: Arc<dyn Backend>,
        unseal_key: &Key,
    ) -> Result<Arc<Barrier>, CoreError> {
        let root_key = Key::generate();
        let first = Key::generate();
        let term = Arc::new(Term::new(first, now(), 0));
        let barrier = Barrier {
            physical,
            root_key,
            keyring: RwLock::new(Keyring {
                active: 1,
                terms: BTreeMap::from([(1, term)]),
                rotation: RotationConfig::default(),
            }),
            persist: tokio::sync::Mutex::new(()),
        };
        barrier.store_root_key(unseal_key).await?;
        barrier.persist_keyring(false).await?;
        Ok(Arc::new(barrier))
    }

    /// Opens the barrier with the unseal key. A wrong key is `CoreError::InvalidUnsealKey`.
    pub async fn unseal(
        physical: Arc<dyn Backend>,
        unseal_key: &Key,
    ) -> Result<Arc<Barrier>, CoreError> {
        let blob = physical
            .get(ROOT_KEY_PATH)
            .await?
            .ok_or(CoreError::NotInitialized)?;
        let root = open_value(&unseal_key.aead(), ROOT_KEY_PATH, &blob)
            .map_err(|_| CoreError::InvalidUnsealKey)?;
        let root_key = Key::from_slice(&root)?;
        let blob = physical
            .get(KEYRING_PATH)
            .await?
            .ok_or_else(|| CoreError::Internal("keyring missing".into()))?;
        let plain = open_value(&root_key.aead(), KEYRING_PATH, &blob)?;
        let stored: StoredKeyring =
            tresor_sdk::record::decode("keyring", &plain).map_err(CoreError::Internal)?;
        let mut terms = BTreeMap::new();
        for t in &stored.terms {
            let raw = Zeroizing::new(
                B64.decode(&t.key)
                    .map_err(|e| CoreError::Internal(format!("keyring term: {e}")))?,
            );
            let key = Key::from_slice(&raw)?;
            terms.insert(
                t.term,
                Arc::new(Term::new(key, t.install_time, t.encryptions)),
            );
        }
        Ok(Arc::new(Barrier {
            physical,
            root_key,
            keyring: RwLock::new(Keyring {
                active: stored.active,
                terms,
                rotation: stored.rotation,
            }),
            persist: tokio::sync::Mutex::new(()),
        }))
    }

    /// Seals the root key under `unseal_key` and stores it (init).
    async fn store_root_key(&self, unseal_key: &Key) -> Result<(), CoreError> {
        self.physical
            .transaction(vec![self.root_key_op(unseal_key)])
            .await?;
        Ok(())
    }

    /// The key of a snapshot's integrity tag ([`snapshot_mac_key`] of this barrier's root key).
    pub fn snapshot_mac_key(&self) -> Key {
        snapshot_mac_key(&self.root_key)
    }

    /// The key of the HA echo's MAC ([`echo_mac_key`] of this barrier's root key).
    pub fn echo_mac_key(&self) -> Key {
        echo_mac_key(&self.root_key)
    }

    /// The physical write that stores the root key sealed under `unseal_key`. Rekey puts it in
    /// the same commit as the new seal configuration, so the stored root key and the shares
    /// the configuration describes can never disagree.
    pub fn root_key_op(&self, unseal_key: &Key) -> Op {
        let blob = seal_value(&unseal_key.aead(), 0, ROOT_KEY_PATH, &self.root_key.0[..]);
        Op::Put(ROOT_KEY_PATH.to_owned(), blob)
    }

    /// The physical write that stores `plaintext` at `path` sealed under the active key term,
    /// for a commit that also holds writes the barrier does not encrypt (rekey's backup). Like
    /// every encryption, it reserves the term's count in storage first when it has to.
    pub async fn sealed_op(&self, path: &str, plaintext: &[u8]) -> Result<Op, CoreError> {
        let (blob, _, reserve) = self.encrypt(path, plaintext);
        if let Some(term) = reserve {
            self.reserve(term).await?;
        }
        Ok(Op::Put(path.to_owned(), blob))
    }

    /// The stored form of a keyring. `count` gives each term's recorded encryptions.
    fn stored(
        active: u32,
        terms: &BTreeMap<u32, Arc<Term>>,
        rotation: &RotationConfig,
        count: impl Fn(u32, &Term) -> u64,
    ) -> StoredKeyring {
        StoredKeyring {
            version: 1,
            active,
            rotation: rotation.clone(),
            terms: terms
                .iter()
                .map(|(n, t)| StoredTerm {
                    term: *n,
                    key: B64.encode(&t.raw.0[..]),
                    install_time: t.install_time,
                    encryptions: count(*n, t),
                })
                .collect(),
        }
    }

    /// Writes a keyring snapshot. The caller holds `persist`.
    async fn write_keyring(&self, stored: StoredKeyring) -> Result<(), CoreError> {
        let plain = Zeroizing::new(
            serde_json::to_vec(&stored).map_err(|e| CoreError::Internal(e.to_string()))?,
        );
        let blob = seal_value(&self.root_key.aead(), 0, KEYRING_PATH, &plain);
        self.physical.put(KEYRING_PATH, blob).await?;
        Ok(())
    }

    /// Persists the keyring as it is now. `exact` records the encryptions actually made (on
    /// seal, when no more are coming); otherwise each term records its reservation.
    async fn persist_keyring(&self, exact: bool) -> Result<(), CoreError> {
        let _g = self.persist.lock().await;
        let stored = {
            let kr = self.keyring.read();
            Self::stored(kr.active, &kr.terms, &kr.rotation, |_, t| {
                let used = t.encryptions.load(Ordering::SeqCst);
                if exact {
                    used
                } else {
                    used.max(t.reserved.load(Ordering::SeqCst))
                }
            })
        };
        self.write_keyring(stored).await?;
        if exact {
            for t in self.keyring.read().terms.values() {
                t.reserved
                    .store(t.encryptions.load(Ordering::SeqCst), Ordering::SeqCst);
            }
        }
        Ok(())
    }

    /// Makes the stored keyring record more encryptions of `term` than have been made, before
    /// a value encrypted past the last reservation reaches storage.
    async fn reserve(&self, term: u32) -> Result<(), CoreError> {
        let _g = self.persist.lock().await;
        let (stored, t, bound) = {
            let kr = self.keyring.read();
            let Some(t) = kr.terms.get(&term).cloned() else {
                return Ok(());
            };
            let used = t.encryptions.load(Ordering::SeqCst);
            if used <= t.reserved.load(Ordering::SeqCst) {
                return Ok(());
            }
            let bound = used.saturating_add(COUNT_RESERVATION);
            let stored = Self::stored(kr.active, &kr.terms, &kr.rotation, |n, x| {
                if n == term {
                    bound
                } else {
                    x.encryptions
                        .load(Ordering::SeqCst)
                        .max(x.reserved.load(Ordering::SeqCst))
                }
            });
            (stored, t, bound)
        };
        self.write_keyring(stored).await?;
        t.reserved.fetch_max(bound, Ordering::SeqCst);
        Ok(())
    }

    /// Adds a new key term and makes it active (`sys/rotate`). Returns the new term. The
    /// keyring holding the new term is stored before anything is encrypted with it.
    pub async fn rotate(&self) -> Result<u32, CoreError> {
        let _g = self.persist.lock().await;
        let term = Arc::new(Term::new(Key::generate(), now(), 0));
        let (next, stored) = {
            let kr = self.keyring.read();
            let next = kr.active + 1;
            let mut terms = kr.terms.clone();
            terms.insert(next, term.clone());
            let stored = Self::stored(next, &terms, &kr.rotation, |_, t| {
                t.encryptions
                    .load(Ordering::SeqCst)
                    .max(t.reserved.load(Ordering::SeqCst))
            });
            (next, stored)
        };
        self.write_keyring(stored).await?;
        let mut kr = self.keyring.write();
        kr.terms.insert(next, term);
        kr.active = next;
        Ok(next)
    }

    /// Reads the stored keyring again after another server changed it (a rotation there):
    /// new terms are added and the active term follows the stored one. Terms are never
    /// removed here, so values written under any known term keep opening.
    pub async fn reload_keyring(&self) -> Result<(), CoreError> {
        let _g = self.persist.lock().await;
        let blob = self
            .physical
            .get(KEYRING_PATH)
            .await?
            .ok_or_else(|| CoreError::Internal("keyring missing".into()))?;
        let plain = open_value(&self.root_key.aead(), KEYRING_PATH, &blob)?;
        let stored: StoredKeyring =
            tresor_sdk::record::decode("keyring", &plain).map_err(CoreError::Internal)?;
        let mut fresh = Vec::new();
        for t in &stored.terms {
            let raw = Zeroizing::new(
                B64.decode(&t.key)
                    .map_err(|e| CoreError::Internal(format!("keyring term: {e}")))?,
            );
            fresh.push((
                t.term,
                Key::from_slice(&raw)?,
                t.install_time,
                t.encryptions,
            ));
        }
        let mut kr = self.keyring.write();
        for (n, key, installed, count) in fresh {
            kr.terms
                .entry(n)
                .or_insert_with(|| Arc::new(Term::new(key, installed, count)));
        }
        if stored.active > kr.active && kr.terms.contains_key(&stored.active) {
            kr.active = stored.active;
        }
        kr.rotation = stored.rotation;
        Ok(())
    }

    pub fn key_status(&self) -> KeyStatus {
        let kr = self.keyring.read();
        let t = &kr.terms[&kr.active];
        KeyStatus {
            term: kr.active,
            install_time: t.install_time,
            encryptions: t.encryptions.load(Ordering::Relaxed),
        }
    }

    pub fn rotation_config(&self) -> RotationConfig {
        self.keyring.read().rotation.clone()
    }

    /// Whether `sys/rotate/config`'s `interval` says the active key is due for rotation at `at`
    /// (Unix seconds).
    pub fn rotation_due(&self, at: i64) -> bool {
        let kr = self.keyring.read();
        let r = &kr.rotation;
        r.enabled
            && r.interval_secs > 0
            && kr
                .terms
                .get(&kr.active)
                .is_some_and(|t| at - t.install_time >= r.interval_secs as i64)
    }

    pub async fn set_rotation_config(&self, c: RotationConfig) -> Result<(), CoreError> {
        self.keyring.write().rotation = c;
        self.persist_keyring(false).await
    }

    /// Persists the exact encryption counters (called on seal so key-status survives
    /// restarts).
    pub async fn flush(&self) -> Result<(), CoreError> {
        self.persist_keyring(true).await
    }

    /// Encrypts under the active term. Returns the blob, whether the term reached its
    /// rotation limit, and the term whose count must be reserved in storage before the blob
    /// is written (see [`Term::reserved`]).
    fn encrypt(&self, path: &str, plaintext: &[u8]) -> (Vec<u8>, bool, Option<u32>) {
        let (term_no, term, rotation) = {
            let kr = self.keyring.read();
            (
                kr.active,
                kr.terms[&kr.active].clone(),
                kr.rotation.enabled.then_some(kr.rotation.max_operations),
            )
        };
        let n = term.encryptions.fetch_add(1, Ordering::SeqCst) + 1;
        let due = rotation.is_some_and(|max| n >= max);
        let reserve = (n > term.reserved.load(Ordering::SeqCst)).then_some(term_no);
        (
            seal_value(&term.key, term_no, path, plaintext),
            due,
            reserve,
        )
    }

    fn decrypt(&self, path: &str, blob: &[u8]) -> Result<Zeroizing<Vec<u8>>, CoreError> {
        let term_no = term_of(blob)?;
        let term = self
            .keyring
            .read()
            .terms
            .get(&term_no)
            .cloned()
            .ok_or_else(|| CoreError::Internal(format!("no key for term {term_no}")))?;
        open_value(&term.key, path, blob)
    }

    pub async fn get(&self, path: &str) -> Result<Option<Zeroizing<Vec<u8>>>, CoreError> {
        let started = std::time::Instant::now();
        let blob = self.physical.get(path).await?;
        self.storage_timers().get.since(started);
        let r = match blob {
            None => Ok(None),
            Some(blob) => self.decrypt(path, &blob).map(Some),
        };
        crate::telemetry::m::BARRIER_GET.since(started);
        r
    }

    /// `vault.<storage>.get` ... for this barrier's storage type.
    fn storage_timers(&self) -> &'static crate::telemetry::StorageTimers {
        static T: std::sync::OnceLock<crate::telemetry::StorageTimers> = std::sync::OnceLock::new();
        T.get_or_init(|| crate::telemetry::storage_timers(self.physical.kind()))
    }

    pub async fn put(&self, path: &str, plaintext: &[u8]) -> Result<(), CoreError> {
        let (blob, rotate_due, reserve) = self.encrypt(path, plaintext);
        if let Some(term) = reserve {
            self.reserve(term).await?;
        }
        let started = std::time::Instant::now();
        self.physical.put(path, blob).await?;
        self.storage_timers().put.since(started);
        crate::telemetry::m::BARRIER_PUT.since(started);
        if rotate_due {
            tracing::info!("barrier key reached its operation limit; rotating");
            self.rotate().await?;
        }
        Ok(())
    }

    /// A value and its storage revision (for a conditional write after it).
    pub async fn get_with_revision(
        &self,
        path: &str,
    ) -> Result<Option<(Zeroizing<Vec<u8>>, u64)>, CoreError> {
        match self.physical.get_with_revision(path).await? {
            None => Ok(None),
            Some((blob, rev)) => Ok(Some((self.decrypt(path, &blob)?, rev))),
        }
    }

    /// Applies puts (plaintext) and deletes atomically if every check (`key` at `revision`, 0
    /// meaning absent) still holds when the commit happens. `Ok(false)`: a check failed and
    /// nothing was written (another writer, on this server or another, got there first).
    pub async fn transaction_if(
        &self,
        checks: Vec<(String, u64)>,
        ops: Vec<Op>,
    ) -> Result<bool, CoreError> {
        let ops = self.seal_ops(ops).await?;
        let checks = checks
            .into_iter()
            .map(|(k, r)| tresor_physical::Check::new(k, r))
            .collect();
        match self.physical.transaction_if(checks, ops).await {
            Ok(_) => Ok(true),
            Err(tresor_physical::PhysicalError::Conflict { .. }) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Encrypts the puts of a batch, reserving key-term counts first if needed.
    async fn seal_ops(&self, ops: Vec<Op>) -> Result<Vec<Op>, CoreError> {
        let mut reserve = None;
        let ops = ops
            .into_iter()
            .map(|op| match op {
                Op::Put(k, v) => {
                    let (blob, _, r) = self.encrypt(&k, &v);
                    reserve = reserve.or(r);
                    Op::Put(k, blob)
                }
                d => d,
            })
            .collect();
        if let Some(term) = reserve {
            self.reserve(term).await?;
        }
        Ok(ops)
    }

    /// Deletes every key under `prefix` in one commit.
    pub async fn delete_prefix(&self, prefix: &str) -> Result<(), CoreError> {
        self.physical.delete_prefix(prefix).await?;
        Ok(())
    }

    /// Applies puts (given as plaintext) and deletes atomically.
    pub async fn transaction(&self, ops: Vec<Op>) -> Result<(), CoreError> {
        let ops = self.seal_ops(ops).await?;
        self.physical.transaction(ops).await?;
        Ok(())
    }

    pub async fn delete(&self, path: &str) -> Result<(), CoreError> {
        let started = std::time::Instant::now();
        self.physical.delete(path).await?;
        self.storage_timers().delete.since(started);
        crate::telemetry::m::BARRIER_DELETE.since(started);
        Ok(())
    }

    pub async fn list(&self, prefix: &str) -> Result<Vec<String>, CoreError> {
        let started = std::time::Instant::now();
        let keys = self.physical.list(prefix).await?;
        self.storage_timers().list.since(started);
        crate::telemetry::m::BARRIER_LIST.since(started);
        Ok(keys)
    }

    pub fn physical(&self) -> &Arc<dyn Backend> {
        &self.physical
    }
}

/// A barrier chrooted to one prefix: an engine's whole storage world.
#[derive(Clone)]
pub struct View {
    barrier: Arc<Barrier>,
    prefix: String,
}

impl View {
    pub fn new(barrier: Arc<Barrier>, prefix: impl Into<String>) -> Self {
        View {
            barrier,
            prefix: prefix.into(),
        }
    }
    pub fn sub(&self, prefix: &str) -> View {
        View {
            barrier: self.barrier.clone(),
            prefix: format!("{}{prefix}", self.prefix),
        }
    }
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Writes and deletes several keys of this view in one atomic commit (`None` deletes).
    pub async fn transaction(&self, ops: Vec<(String, Option<Vec<u8>>)>) -> Result<(), CoreError> {
        self.transaction_with(ops, Vec::new()).await
    }

    /// Like [`View::transaction`], plus `extra` writes given as full barrier paths (another
    /// core store's keys that must land in the same commit). Core-internal only: engines
    /// never get a way to name keys outside their view.
    pub(crate) async fn transaction_with(
        &self,
        ops: Vec<(String, Option<Vec<u8>>)>,
        extra: Vec<(String, Option<Vec<u8>>)>,
    ) -> Result<(), CoreError> {
        let mut out = Vec::with_capacity(ops.len() + extra.len());
        for (k, v) in ops {
            let full = self
                .full(&k)
                .map_err(|e| CoreError::InvalidRequest(e.to_string()))?;
            out.push((full, v));
        }
        out.extend(extra);
        let out = out
            .into_iter()
            .map(|(k, v)| match v {
                Some(v) => Op::Put(k, v),
                None => Op::Delete(k),
            })
            .collect();
        self.barrier.transaction(out).await
    }
    /// [`Barrier::transaction_if`] for keys of this view.
    pub async fn transaction_if(
        &self,
        checks: Vec<(String, u64)>,
        ops: Vec<(String, Option<Vec<u8>>)>,
    ) -> Result<bool, CoreError> {
        let bad = |e: tresor_sdk::LogicalError| CoreError::InvalidRequest(e.to_string());
        let checks = checks
            .into_iter()
            .map(|(k, r)| Ok((self.full(&k).map_err(bad)?, r)))
            .collect::<Result<Vec<_>, CoreError>>()?;
        let ops = ops
            .into_iter()
            .map(|(k, v)| {
                let full = self.full(&k).map_err(bad)?;
                Ok(match v {
                    Some(v) => Op::Put(full, v),
                    None => Op::Delete(full),
                })
            })
            .collect::<Result<Vec<_>, CoreError>>()?;
        self.barrier.transaction_if(checks, ops).await
    }

    fn full(&self, key: &str) -> tresor_sdk::Result<String> {
        if key.split('/').any(|s| s == "..") {
            return Err(tresor_sdk::LogicalError::invalid(
                "invalid path: \"..\" segments are not allowed",
            ));
        }
        Ok(format!("{}{}", self.prefix, key))
    }
}

fn sdk_err(e: CoreError) -> tresor_sdk::LogicalError {
    tresor_sdk::LogicalError::Internal(e.to_string())
}

#[async_trait::async_trait]
impl tresor_sdk::Storage for View {
    async fn get(&self, key: &str) -> tresor_sdk::Result<Option<Vec<u8>>> {
        let full = self.full(key)?;
        self.barrier
            .get(&full)
            .await
            .map(|o| o.map(|z| z.to_vec()))
            .map_err(sdk_err)
    }
    async fn put(&self, key: &str, value: Vec<u8>) -> tresor_sdk::Result<()> {
        let full = self.full(key)?;
        let value = Zeroizing::new(value);
        self.barrier.put(&full, &value).await.map_err(sdk_err)
    }
    async fn delete(&self, key: &str) -> tresor_sdk::Result<()> {
        let full = self.full(key)?;
        self.barrier.delete(&full).await.map_err(sdk_err)
    }
    async fn list(&self, prefix: &str) -> tresor_sdk::Result<Vec<String>> {
        let full = self.full(prefix)?;
        self.barrier.list(&full).await.map_err(sdk_err)
    }
    async fn transaction(&self, ops: Vec<(String, Option<Vec<u8>>)>) -> tresor_sdk::Result<()> {
        View::transaction(self, ops).await.map_err(sdk_err)
    }
    async fn get_with_revision(&self, key: &str) -> tresor_sdk::Result<Option<(Vec<u8>, u64)>> {
        let full = self.full(key)?;
        self.barrier
            .get_with_revision(&full)
            .await
            .map(|o| o.map(|(v, r)| (v.to_vec(), r)))
            .map_err(sdk_err)
    }
    async fn transaction_if(
        &self,
        checks: Vec<(String, u64)>,
        ops: Vec<(String, Option<Vec<u8>>)>,
    ) -> tresor_sdk::Result<bool> {
        View::transaction_if(self, checks, ops)
            .await
            .map_err(sdk_err)
    }
    async fn delete_prefix(&self, prefix: &str) -> tresor_sdk::Result<()> {
        let full = self.full(prefix)?;
        self.barrier.delete_prefix(&full).await.map_err(sdk_err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tresor_physical::InmemBackend;

    #[tokio::test]
    async fn values_are_bound_to_their_path_and_survive_rotation() {
        let phys: Arc<dyn Backend> = Arc::new(InmemBackend::new());
        let uk = Key::generate();
        let b = Barrier::initialize(phys.clone(), &uk).await.unwrap();
        b.put("a/secret", b"hunter2").await.unwrap();
        let raw = phys.get("a/secret").await.unwrap().unwrap();
        assert!(
            !raw.windows(7).any(|w| w == b"hunter2"),
            "plaintext reached physical storage"
        );
        // Moving the ciphertext to another path must not decrypt.
        phys.put("b/moved", raw.clone()).await.unwrap();
        assert!(b.get("b/moved").await.is_err());
        // Tampering fails authentication.
        let mut bad = raw.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        phys.put("a/tampered", bad).await.unwrap();
        assert!(b.get("a/tampered").await.is_err());

        assert_eq!(b.rotate().await.unwrap(), 2);
        b.put("a/new", b"after").await.unwrap();
        assert_eq!(
            &b.get("a/secret").await.unwrap().unwrap()[..],
            b"hunter2",
            "old term still opens"
        );
        assert_eq!(
            term_of(&phys.get("a/new").await.unwrap().unwrap()).unwrap(),
            2
        );

        // Reopen with the unseal key: keyring and both terms come back.
        let b2 = Barrier::unseal(phys.clone(), &uk).await.unwrap();
        assert_eq!(b2.key_status().term, 2);
        assert_eq!(&b2.get("a/new").await.unwrap().unwrap()[..], b"after");
        // A wrong unseal key is rejected.
        assert!(matches!(
            Barrier::unseal(phys, &Key::generate()).await,
            Err(CoreError::InvalidUnsealKey)
        ));
    }

    #[tokio::test]
    async fn rotation_config_triggers_automatic_rotation() {
        let phys: Arc<dyn Backend> = Arc::new(InmemBackend::new());
        let b = Barrier::initialize(phys, &Key::generate()).await.unwrap();
        b.set_rotation_config(RotationConfig {
            max_operations: 3,
            interval_secs: 0,
            enabled: true,
        })
        .await
        .unwrap();
        for i in 0..3 {
            b.put(&format!("k{i}"), b"v").await.unwrap();
        }
        assert_eq!(
            b.key_status().term,
            2,
            "third encryption reaches the limit and rotates"
        );
    }

    /// Issue 10, finding 18: the encryption counter survives a crash (no flush): the stored
    /// keyring always records at least as many encryptions as were made, so a key is never
    /// used past its rotation limit because a crash reset its count.
    #[tokio::test]
    async fn encryption_counts_survive_a_crash() {
        let phys: Arc<dyn Backend> = Arc::new(InmemBackend::new());
        let uk = Key::generate();
        let b = Barrier::initialize(phys.clone(), &uk).await.unwrap();
        for i in 0..25 {
            b.put(&format!("k{i}"), b"v").await.unwrap();
        }
        b.transaction(vec![Op::Put("t1".into(), b"v".to_vec())])
            .await
            .unwrap();
        assert_eq!(b.key_status().encryptions, 26);
        drop(b); // a crash: no flush
        let b2 = Barrier::unseal(phys.clone(), &uk).await.unwrap();
        assert!(
            b2.key_status().encryptions >= 26,
            "{} encryptions recorded after a crash",
            b2.key_status().encryptions
        );
        // A clean seal records the exact count.
        b2.put("after", b"v").await.unwrap();
        let n = b2.key_status().encryptions;
        b2.flush().await.unwrap();
        drop(b2);
        let b3 = Barrier::unseal(phys, &uk).await.unwrap();
        assert_eq!(b3.key_status().encryptions, n);
    }

    /// Issue 10, finding 18: rotations racing writes and flushes never leave a stored keyring
    /// older than the terms values were written with.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_rotations_never_lose_a_term() {
        let phys: Arc<dyn Backend> = Arc::new(InmemBackend::new());
        let uk = Key::generate();
        let b = Barrier::initialize(phys.clone(), &uk).await.unwrap();
        let mut tasks = Vec::new();
        for i in 0..16 {
            let b = b.clone();
            tasks.push(tokio::spawn(async move {
                for j in 0..8 {
                    if (i + j) % 3 == 0 {
                        b.rotate().await.unwrap();
                    } else if (i + j) % 3 == 1 {
                        b.flush().await.unwrap();
                    }
                    b.put(&format!("v/{i}/{j}"), b"payload").await.unwrap();
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let reopened = Barrier::unseal(phys, &uk).await.unwrap();
        assert_eq!(reopened.key_status().term, b.key_status().term);
        for i in 0..16 {
            for j in 0..8 {
                let v = reopened.get(&format!("v/{i}/{j}")).await.unwrap().unwrap();
                assert_eq!(&v[..], b"payload");
            }
        }
    }
}
