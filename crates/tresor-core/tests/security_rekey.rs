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
use serde_json::{Value, json};
use tresor_core::seal::RekeyRequest;
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
    let status = core
        .rekey_init(RekeyRequest {
            secret_shares: n,
            secret_threshold: t,
            pgp_keys,
            backup,
            require_verification: false,
        })
        .await?;
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

/// Issue 12: `require_verification`. The current shares produce the new shares, but nothing
/// is written until a threshold of the NEW shares is given back to `sys/rekey/verify`; shares
/// that do not make the new key restart the verification under a new nonce, and so does a
/// cancel; the switch, when it comes, is still the one physical commit.
#[tokio::test]
async fn a_verified_rekey_switches_only_when_the_new_shares_are_proven() {
    let s = setup().await;
    let status = s
        .core
        .rekey_init(RekeyRequest {
            secret_shares: 4,
            secret_threshold: 3,
            require_verification: true,
            ..Default::default()
        })
        .await
        .expect("rekey init");
    assert_eq!(status["verification_required"], true, "{status}");
    let nonce = status["nonce"].as_str().unwrap().to_owned();
    // Before the current shares are in, there is nothing to verify.
    let v = s.core.rekey_verify_status().await.unwrap();
    assert_eq!(
        (&v["started"], &v["nonce"], &v["t"], &v["n"]),
        (&json!(false), &json!(""), &json!(3), &json!(4)),
        "{v}"
    );
    assert!(
        s.core
            .rekey_verify_update(&s.shares[0], "whatever")
            .await
            .unwrap_err()
            .to_string()
            .contains("no rekey verification in progress")
    );

    s.flaky.take_log();
    s.core.rekey_update(&s.shares[0], &nonce).await.unwrap();
    let out = s.core.rekey_update(&s.shares[1], &nonce).await.unwrap();
    assert_eq!(
        (&out["complete"], &out["verification_required"]),
        (&json!(true), &json!(true)),
        "{out}"
    );
    let new = hex_keys(&out);
    assert_eq!(new.len(), 4);
    let vnonce = out["verification_nonce"].as_str().unwrap().to_owned();
    assert!(!vnonce.is_empty() && vnonce != nonce, "{out}");
    // Nothing was written: the old configuration and shares are still the ones in force.
    assert!(
        s.flaky
            .take_log()
            .iter()
            .all(|keys| !keys.iter().any(|k| k == ROOT_KEY || k == SEAL_CONFIG)),
        "no switch before verification"
    );
    assert_eq!(seal_config(&s).await, ((2, 3), (2, 3)));
    let st = s.core.rekey_status().await.unwrap();
    assert_eq!(st["verification_nonce"], json!(vnonce), "{st}");
    // The rekey step is over; more current shares are refused.
    let e = s.core.rekey_update(&s.shares[2], &nonce).await.unwrap_err();
    assert!(e.to_string().contains("verif"), "{e}");

    // A wrong nonce, then shares that do not make the new key (two new, one old).
    assert!(
        s.core
            .rekey_verify_update(&new[0], &nonce)
            .await
            .unwrap_err()
            .to_string()
            .contains("incorrect nonce")
    );
    s.core.rekey_verify_update(&new[0], &vnonce).await.unwrap();
    let p = s.core.rekey_verify_update(&new[1], &vnonce).await.unwrap();
    assert_eq!((&p["progress"], &p["started"]), (&json!(2), &json!(true)));
    let e = s
        .core
        .rekey_verify_update(&s.shares[0], &vnonce)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("verification failed"), "{e}");
    let v = s.core.rekey_verify_status().await.unwrap();
    let vnonce2 = v["nonce"].as_str().unwrap().to_owned();
    assert_eq!(v["progress"], 0, "{v}");
    assert_ne!(
        vnonce2, vnonce,
        "a failed verification starts again with a new nonce"
    );
    assert_eq!(seal_config(&s).await, ((2, 3), (2, 3)));

    // A cancel forgets the progress and changes the nonce, but keeps the new key.
    s.core.rekey_verify_update(&new[3], &vnonce2).await.unwrap();
    let c = s.core.rekey_verify_cancel().await.unwrap();
    let vnonce3 = c["nonce"].as_str().unwrap().to_owned();
    assert_eq!((&c["progress"], &c["started"]), (&json!(0), &json!(true)));
    assert_ne!(vnonce3, vnonce2);

    // Three new shares prove it: the switch is one commit, and the rekey is over.
    s.flaky.take_log();
    s.core.rekey_verify_update(&new[1], &vnonce3).await.unwrap();
    s.core.rekey_verify_update(&new[2], &vnonce3).await.unwrap();
    let done = s.core.rekey_verify_update(&new[3], &vnonce3).await.unwrap();
    assert_eq!(done, json!({"nonce": vnonce3, "complete": true}));
    assert_eq!(the_switch(&s.flaky), [ROOT_KEY, SEAL_CONFIG]);
    assert_eq!(seal_config(&s).await, ((3, 4), (3, 4)));
    assert_eq!(s.core.rekey_status().await.unwrap()["started"], false);
    assert!(s.core.rekey_verify_status().await.is_err());

    s.core.seal().await.unwrap();
    assert!(
        matches!(
            unseal(&s.core, &s.shares).await,
            Err(CoreError::InvalidUnsealKey)
        ),
        "old shares must no longer unseal"
    );
    unseal(&s.core, &new[..3]).await.expect("new shares unseal");
}

/// Cancelling the rekey (or sealing) before verification discards the new shares: the old
/// ones stay in force and nothing was written.
#[tokio::test]
async fn cancelling_an_unverified_rekey_keeps_the_old_shares() {
    let s = setup().await;
    let status = s
        .core
        .rekey_init(RekeyRequest {
            secret_shares: 3,
            secret_threshold: 2,
            require_verification: true,
            ..Default::default()
        })
        .await
        .unwrap();
    let nonce = status["nonce"].as_str().unwrap().to_owned();
    s.core.rekey_update(&s.shares[0], &nonce).await.unwrap();
    let out = s.core.rekey_update(&s.shares[1], &nonce).await.unwrap();
    let new = hex_keys(&out);
    s.core.rekey_cancel().await.unwrap();
    assert!(s.core.rekey_verify_status().await.is_err());
    assert_old_shares_still_unseal(&s).await;
    s.core.seal().await.unwrap();
    assert!(
        matches!(
            unseal(&s.core, &new[..2]).await,
            Err(CoreError::InvalidUnsealKey)
        ),
        "the discarded new shares must not unseal"
    );
}
