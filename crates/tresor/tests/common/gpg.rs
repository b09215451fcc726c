//! One operator's GnuPG keyring for the tests that drive `pgp_keys` with the real `gpg`.

use std::path::{Path, PathBuf};
use std::process::Command;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;

use super::run;

/// One operator's GnuPG home. Dropping it stops the agent gpg started for it.
pub struct Keyring {
    home: PathBuf,
}

impl Keyring {
    pub fn new(base: &Path, name: &str) -> Keyring {
        let home = base.join(format!("gnupg-{name}"));
        std::fs::create_dir_all(&home).unwrap();
        // gpg refuses homes other users can read.
        let _ = run(Command::new("chmod").arg("700").arg(&home));
        let k = Keyring { home };
        let uid = format!("{name} <{name}@example.invalid>");
        k.gpg(&[
            "--batch",
            "--passphrase",
            "",
            "--quick-gen-key",
            &uid,
            "future-default",
            "default",
            "never",
        ])
        .expect(0, "gpg --quick-gen-key");
        k
    }

    pub fn gpg(&self, args: &[&str]) -> super::Out {
        run(Command::new("gpg").env("GNUPGHOME", &self.home).args(args))
    }

    /// `gpg --export | base64`: what an operator hands to `pgp_keys`.
    pub fn public_b64(&self) -> String {
        let o = Command::new("gpg")
            .env("GNUPGHOME", &self.home)
            .arg("--export")
            .output()
            .expect("gpg --export");
        assert!(o.status.success() && !o.stdout.is_empty(), "gpg --export");
        B64.encode(o.stdout)
    }

    /// `base64 -d | gpg --decrypt`.
    pub fn decrypt(&self, b64: &str, file: &Path) -> super::Out {
        std::fs::write(file, B64.decode(b64).expect("base64 ciphertext")).unwrap();
        self.gpg(&["--batch", "--quiet", "--decrypt", file.to_str().unwrap()])
    }
}

impl Drop for Keyring {
    fn drop(&mut self) {
        let _ = Command::new("gpgconf")
            .env("GNUPGHOME", &self.home)
            .args(["--kill", "gpg-agent"])
            .output();
    }
}

impl Keyring {
    /// This keyring's `GNUPGHOME`.
    pub fn home(&self) -> &Path {
        &self.home
    }
}
