//! Writing secret files: atomically (a temporary file in the same directory, written, given
//! its mode and owner, fsynced, then renamed over the target, and the directory fsynced), so
//! a reader sees the old file or the new one and never half of one; and the mode is set on the
//! temporary file before any byte is written, so a secret is never readable by others even
//! for a moment.
//!
//! Also: user and group names to ids, read from `/etc/passwd` and `/etc/group` (numbers are
//! accepted as they are).

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// Writes `data` to `path` atomically with `mode` and, when given, owner and group.
pub fn write_atomic(
    path: &Path,
    data: &[u8],
    mode: u32,
    owner: Option<u32>,
    group: Option<u32>,
) -> io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "the path has no file name"))?;
    let tmp = dir.join(format!(
        ".{}.tresor-tmp.{}.{:x}",
        name.to_string_lossy(),
        std::process::id(),
        crate::backoff::random_u64()
    ));
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600 & mode)
            .open(&tmp)?;
        if owner.is_some() || group.is_some() {
            std::os::unix::fs::fchown(&f, owner, group)?;
        }
        // The umask may have removed bits the caller asked for.
        f.set_permissions(fs::Permissions::from_mode(mode))?;
        f.write_all(data)?;
        f.sync_all()?;
        drop(f);
        fs::rename(&tmp, path)?;
        if let Ok(d) = fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// The id of `name` in a passwd-style file (`/etc/passwd` or `/etc/group`); a number is
/// taken as an id.
pub fn lookup_id(db: &str, name: &str) -> Option<u32> {
    if let Ok(n) = name.parse::<u32>() {
        return Some(n);
    }
    let text = fs::read_to_string(db).ok()?;
    text.lines().find_map(|line| {
        let mut parts = line.split(':');
        let n = parts.next()?;
        let _pw = parts.next()?;
        let id = parts.next()?;
        (n == name).then(|| id.parse().ok()).flatten()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn atomic_write_sets_mode_and_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("key.pem");
        write_atomic(&p, b"one", 0o600, None, None).unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"one");
        assert_eq!(fs::metadata(&p).unwrap().mode() & 0o7777, 0o600);
        write_atomic(&p, b"two", 0o644, None, None).unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        assert_eq!(fs::metadata(&p).unwrap().mode() & 0o7777, 0o644);
        // No temporary file is left behind.
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
        // A missing directory fails and leaves nothing.
        assert!(write_atomic(&dir.path().join("no/such"), b"x", 0o600, None, None).is_err());
    }

    #[test]
    fn ids_by_name_and_number() {
        assert_eq!(lookup_id("/etc/passwd", "root"), Some(0));
        assert_eq!(lookup_id("/etc/group", "root"), Some(0));
        assert_eq!(lookup_id("/etc/passwd", "1234"), Some(1234));
        assert_eq!(lookup_id("/etc/passwd", "no-such-user-here"), None);
    }
}
