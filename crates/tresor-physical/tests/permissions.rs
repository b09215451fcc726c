//! Issue 10, finding 17: the embedded store's key names (secret paths, lease ids) are plaintext,
//! so its directory must be 0700 and its file 0600 whatever the umask, and wider permissions
//! on an existing directory or file are tightened at open.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use tresor_physical::EmbeddedBackend;

/// The database file inside the configured directory.
const FILE_NAME: &str = "tresor.redb";

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o7777
}

/// The umask of this process, as Linux reports it.
fn umask() -> u32 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("Umask:")).unwrap();
    u32::from_str_radix(line.split_whitespace().nth(1).unwrap(), 8).unwrap()
}

const CHILD: &str = "TRESOR_PERMISSIONS_TEST_CHILD";

/// Runs in a child process started under `umask 022`, where a plain create gives 0644 files
/// and 0755 directories.
#[test]
fn a_new_store_is_private_under_a_permissive_umask() {
    if std::env::var_os(CHILD).is_none() {
        let exe = std::env::current_exe().unwrap();
        let out = Command::new("sh")
            .arg("-c")
            .arg(r#"umask 022 && exec "$0" --exact a_new_store_is_private_under_a_permissive_umask --nocapture --test-threads=1"#)
            .arg(exe)
            .env(CHILD, "1")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "child failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("1 passed"),
            "the child did not run the test: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        return;
    }
    assert_eq!(umask(), 0o022, "the child runs under umask 022");
    let tmp = tempfile::tempdir().unwrap();
    // A control: under this umask an ordinary create is readable by everyone.
    let control = tmp.path().join("control");
    std::fs::write(&control, b"x").unwrap();
    assert_eq!(mode(&control), 0o644);

    let dir = tmp.path().join("data").join("tresor");
    let b = EmbeddedBackend::open(&dir).unwrap();
    assert_eq!(mode(&dir), 0o700, "data directory");
    assert_eq!(mode(&dir.join(FILE_NAME)), 0o600, "data file");
    assert_eq!(b.file(), dir.join(FILE_NAME));
}

#[tokio::test]
async fn an_existing_store_with_wide_permissions_is_tightened() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    {
        let b = EmbeddedBackend::open(&dir).unwrap();
        tresor_physical::Backend::put(&b, "sys/token/id/x", b"v".to_vec())
            .await
            .unwrap();
    }
    let file = dir.join(FILE_NAME);
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    // The writer thread may hold the file for a moment after drop.
    let mut tries = 0;
    let b = loop {
        match EmbeddedBackend::open(&dir) {
            Ok(b) => break b,
            Err(e) if tries < 50 => {
                tries += 1;
                let _ = e;
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Err(e) => panic!("reopen failed: {e}"),
        }
    };
    assert_eq!(mode(&dir), 0o700, "data directory tightened");
    assert_eq!(mode(&file), 0o600, "data file tightened");
    assert_eq!(
        tresor_physical::Backend::get(&b, "sys/token/id/x")
            .await
            .unwrap()
            .as_deref(),
        Some(&b"v"[..]),
        "the data survives"
    );
}
