//! Issue 10, finding 12: a rekey must never leave the root key sealed under shares nobody has.
//! The root key re-sealed under the new key, the new seal configuration and the backup are one
//! physical commit, made after the new shares are computed; if that commit fails, the old shares
//! still unseal and the seal configuration is unchanged (in memory and in storage).
//!
//! Storage failures are injected by [`Flaky`], a backend that refuses any transaction writing a
//! chosen key and records the keys of every transaction it is given.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;

use async_trait::async_trait;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use parking_lot::Mutex;
use serde_json::Value;
use tresor_core::{Core, CoreConfig, CoreError, InitRequest};
use tresor_physical::{Backend, InmemBackend, Op, PhysicalError};

const ROOT_KEY: &str = "core/root-key";
const SEAL_CONFIG: &str = "core/seal-config";
const BACKUP: &str = "core/rekey-backup";
const KEYRING: &str = "core/keyring";

/// In-memory storage that fails every transaction touching `fail_on`, and logs transactions.
#[derive(Default)]
struct Flaky {
    inner: InmemBackend,
    fail_on: Mutex<Option<String>>,
    log: Mutex<Vec<Vec<String>>>,
}

impl Flaky {
    fn fail_writes_to(&self, key: Option<&str>) {
        *self.fail_on.lock() = key.map(str::to_owned);
    }
    fn take_log(&self) -> Vec<Vec<String>> {
        std::mem::take(&mut *self.log.lock())
    }
}

#[async_trait]
impl Backend for Flaky {
    async fn get(&self, key: &str) -> tresor_physical::Result<Option<Vec<u8>>> {
        self.inner.get(key).await
    }
    async fn transaction(&self, ops: Vec<Op>) -> tresor_physical::Result<()> {
        let keys: Vec<String> = ops
            .iter()
            .map(|op| match op {
                Op::Put(k, _) | Op::Delete(k) => k.clone(),
            })
            .collect();
        self.log.lock().push(keys.clone());
        if let Some(bad) = self.fail_on.lock().as_deref()
            && keys.iter().any(|k| k == bad)
        {
            return Err(PhysicalError::Io(format!("injected failure writing {bad}")));
        }
        self.inner.transaction(ops).await
    }
    async fn list(&self, prefix: &str) -> tresor_physical::Result<Vec<String>> {
        self.inner.list(prefix).await
    }
    fn kind(&self) -> &'static str {
        "flaky"
    }
    fn durable(&self) -> bool {
        false
    }
}

struct Setup {
    core: Core,
    flaky: Arc<Flaky>,
    /// The shares of the initial 3-of-2 seal, hex.
    shares: Vec<String>,
}

async fn setup() -> Setup {
    let flaky = Arc::new(Flaky::default());
    let core = Core::new(flaky.clone(), CoreConfig::default());
    let init = core
        .init(InitRequest {
            secret_shares: 3,
            secret_threshold: 2,
            ..Default::default()
        })
        .await
        .expect("init");
    let shares: Vec<String> = init.keys.iter().map(|k| hex::encode(&k[..])).collect();
    let s = Setup {
        core,
        flaky,
        shares,
    };
    unseal(&s.core, &s.shares[..2]).await.expect("first unseal");
    s
}

/// Feeds `shares` to `sys/unseal`; Ok when the core ends up unsealed.
async fn unseal(core: &Core, shares: &[String]) -> Result<(), CoreError> {
    let mut status = None;
    for s in shares {
        status = Some(core.unseal(Some(s), false).await?);
    }
    match status {
        Some(st) if !st.sealed => Ok(()),
        _ => Err(CoreError::InvalidRequest("still sealed".into())),
    }
}

/// Runs a whole rekey to `n` shares / threshold `t` with the given current shares.
async fn rekey(
    core: &Core,
    current: &[String],
    n: usize,
    t: usize,
    pgp_keys: Vec<String>,
    backup: bool,
) -> Result<Value, CoreError> {
    let status = core.rekey_init(n, t, pgp_keys, backup).await?;
    let nonce = status["nonce"].as_str().unwrap().to_owned();
    let mut last = Value::Null;
    for s in current {
        last = core.rekey_update(s, &nonce).await?;
    }
    assert_eq!(last["complete"], true, "{last}");
    Ok(last)
}

fn hex_keys(out: &Value) -> Vec<String> {
    out["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap().to_owned())
        .collect()
}

/// (t, n) as the core reports them, and as a fresh core reads them from storage.
async fn seal_config(s: &Setup) -> ((usize, usize), (usize, usize)) {
    let st = s.core.seal_status().await.unwrap();
    let fresh = Core::new(s.flaky.clone(), CoreConfig::default());
    let stored = fresh.seal_status().await.unwrap();
    ((st.t, st.n), (stored.t, stored.n))
}

async fn assert_old_shares_still_unseal(s: &Setup) {
    assert_eq!(
        seal_config(s).await,
        ((2, 3), (2, 3)),
        "seal config changed"
    );
    s.core.seal().await.unwrap();
    unseal(&s.core, &s.shares[1..])
        .await
        .expect("the old shares must still unseal after a failed rekey");
}

#[tokio::test]
async fn a_rekey_whose_commit_fails_leaves_the_old_shares_and_config() {
    let s = setup().await;
    // The seal configuration cannot be written: before the fix the root key had already been
    // re-sealed under the new key, and the new shares were never returned.
    s.flaky.fail_writes_to(Some(SEAL_CONFIG));
    let e = rekey(&s.core, &s.shares[..2], 5, 3, Vec::new(), false)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("injected failure"), "{e}");
    s.flaky.fail_writes_to(None);
    assert_old_shares_still_unseal(&s).await;

    // The same with the root key write refused.
    s.flaky.fail_writes_to(Some(ROOT_KEY));
    rekey(&s.core, &s.shares[..2], 5, 3, Vec::new(), false)
        .await
        .unwrap_err();
    s.flaky.fail_writes_to(None);
    assert_old_shares_still_unseal(&s).await;

    // The rekey can be retried, and then switches keys and config together.
    let out = rekey(&s.core, &s.shares[..2], 5, 3, Vec::new(), false)
        .await
        .expect("rekey");
    let new = hex_keys(&out);
    assert_eq!(new.len(), 5);
    assert_eq!(seal_config(&s).await, ((3, 5), (3, 5)));
    s.core.seal().await.unwrap();
    assert!(
        matches!(
            unseal(&s.core, &s.shares).await,
            Err(CoreError::InvalidUnsealKey)
        ),
        "old shares must no longer unseal"
    );
    unseal(&s.core, &new[2..]).await.expect("new shares unseal");
}

#[tokio::test]
async fn a_rekey_is_one_physical_commit() {
    let s = setup().await;
    s.flaky.take_log();
    rekey(&s.core, &s.shares[..2], 4, 2, Vec::new(), false)
        .await
        .expect("rekey");
    assert_eq!(the_switch(&s.flaky), [ROOT_KEY, SEAL_CONFIG]);
}

/// The keys of the one transaction a rekey made besides keyring bookkeeping (the barrier may
/// store a reservation of encryption counts before it encrypts the backup).
fn the_switch(flaky: &Flaky) -> Vec<String> {
    let writes: Vec<Vec<String>> = flaky
        .take_log()
        .into_iter()
        .filter(|keys| keys.iter().any(|k| k != KEYRING))
        .collect();
    assert_eq!(
        writes.len(),
        1,
        "a rekey switches in exactly one transaction: {writes:?}"
    );
    let mut keys = writes[0].clone();
    keys.sort();
    keys
}

/// A throw-away GnuPG home with one key.
struct Gpg {
    dir: tempfile::TempDir,
}

impl Gpg {
    fn new() -> Gpg {
        let dir = tempfile::Builder::new()
            .prefix("tg")
            .tempdir_in("/tmp")
            .unwrap();
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        let g = Gpg { dir };
        g.run(&[
            "--passphrase",
            "",
            "--quick-gen-key",
            "rekey <rekey@example.invalid>",
            "future-default",
            "default",
            "never",
        ]);
        g
    }
    fn run(&self, args: &[&str]) -> Vec<u8> {
        let out = Command::new("gpg")
            .env("GNUPGHOME", self.dir.path())
            .args(["--batch", "--no-tty", "--pinentry-mode", "loopback"])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("gpg must be installed for this test (apt-get install -y gnupg)");
        assert!(
            out.status.success(),
            "gpg {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }
    fn public_b64(&self) -> String {
        B64.encode(self.run(&["--export"]))
    }
    fn decrypt(&self, b64: &str) -> String {
        let file: PathBuf = self.path().join("share.gpg");
        std::fs::write(&file, B64.decode(b64).unwrap()).unwrap();
        String::from_utf8(self.run(&["--quiet", "--decrypt", file.to_str().unwrap()]))
            .unwrap()
            .trim()
            .to_owned()
    }
    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Gpg {
    fn drop(&mut self) {
        let _ = Command::new("gpgconf")
            .env("GNUPGHOME", self.dir.path())
            .args(["--kill", "gpg-agent"])
            .status();
    }
}

#[tokio::test]
async fn a_rekey_with_backup_commits_the_backup_with_the_keys() {
    let gpg = Gpg::new();
    let pk = gpg.public_b64();
    let s = setup().await;
    // The backup cannot be stored: before the fix the root key and the seal configuration had
    // both switched already, so the server could only be unsealed with shares never handed out.
    s.flaky.fail_writes_to(Some(BACKUP));
    rekey(&s.core, &s.shares[..2], 1, 1, vec![pk.clone()], true)
        .await
        .unwrap_err();
    s.flaky.fail_writes_to(None);
    assert!(s.core.rekey_backup().await.unwrap().is_none());
    assert_old_shares_still_unseal(&s).await;

    s.flaky.take_log();
    let out = rekey(&s.core, &s.shares[..2], 1, 1, vec![pk], true)
        .await
        .expect("rekey");
    assert_eq!(the_switch(&s.flaky), [BACKUP, ROOT_KEY, SEAL_CONFIG]);
    let backup = s.core.rekey_backup().await.unwrap().expect("backup stored");
    assert_eq!(backup["nonce"], out["nonce"]);
    // The PGP-encrypted share in the answer decrypts to a key that unseals.
    let share = gpg.decrypt(out["keys_base64"][0].as_str().unwrap());
    assert_eq!(seal_config(&s).await, ((1, 1), (1, 1)));
    s.core.seal().await.unwrap();
    unseal(&s.core, &[share]).await.expect("new share unseals");
}
