//! `log_file` with Vault's rotation (issue 20): the current file keeps its name; when it
//! reaches `log_rotate_bytes` or is older than `log_rotate_duration` it is renamed
//! `<name>-<unix nanoseconds>.<ext>` and a new one is started. `log_rotate_max_files` keeps that
//! many rotated files (0: all, -1: none). Files are created readable by the owner only.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use anyhow::{Context as _, Result};

use crate::config::LogFileConfig;

struct State {
    cfg: LogFileConfig,
    file: File,
    size: u64,
    opened: SystemTime,
}

/// A writer to the log file, shared by every event (one lock per line written).
#[derive(Clone)]
pub struct RotatingFile(Arc<Mutex<State>>);

fn open(path: &Path) -> std::io::Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
}

fn split(path: &Path) -> (PathBuf, String, String) {
    let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "vault".into());
    let ext = path
        .extension()
        .map(|s| format!(".{}", s.to_string_lossy()))
        .unwrap_or_default();
    (dir, stem, ext)
}

impl RotatingFile {
    pub fn open(cfg: LogFileConfig) -> Result<Self> {
        if let Some(dir) = cfg.path.parent()
            && !dir.as_os_str().is_empty()
        {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("log_file: creating {}", dir.display()))?;
        }
        let file =
            open(&cfg.path).with_context(|| format!("log_file: opening {}", cfg.path.display()))?;
        let size = file.metadata().map(|m| m.len()).unwrap_or(0);
        Ok(RotatingFile(Arc::new(Mutex::new(State {
            cfg,
            file,
            size,
            opened: SystemTime::now(),
        }))))
    }
}

impl State {
    fn due(&self, incoming: usize) -> bool {
        (self.cfg.rotate_bytes > 0
            && self.size > 0
            && self.size + incoming as u64 > self.cfg.rotate_bytes)
            || (self.cfg.rotate_duration > Duration::ZERO
                && self.opened.elapsed().unwrap_or_default() >= self.cfg.rotate_duration)
    }

    fn rotate(&mut self) -> std::io::Result<()> {
        let _ = self.file.flush();
        let (dir, stem, ext) = split(&self.cfg.path);
        let nanos = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        std::fs::rename(&self.cfg.path, dir.join(format!("{stem}-{nanos}{ext}")))?;
        self.file = open(&self.cfg.path)?;
        self.size = 0;
        self.opened = SystemTime::now();
        self.prune(&dir, &stem, &ext);
        Ok(())
    }

    /// Keeps the newest `rotate_max_files` rotated files.
    fn prune(&self, dir: &Path, stem: &str, ext: &str) {
        let keep = match self.cfg.rotate_max_files {
            0 => return,
            n if n < 0 => 0,
            n => n as usize,
        };
        let prefix = format!("{stem}-");
        let mut rotated: Vec<(u128, PathBuf)> = std::fs::read_dir(if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        })
        .map(|d| {
            d.filter_map(Result::ok)
                .filter_map(|e| {
                    let name = e.file_name().to_string_lossy().into_owned();
                    let n = name
                        .strip_prefix(&prefix)?
                        .strip_suffix(ext)?
                        .parse::<u128>()
                        .ok()?;
                    Some((n, e.path()))
                })
                .collect()
        })
        .unwrap_or_default();
        rotated.sort();
        let excess = rotated.len().saturating_sub(keep);
        for (_, p) in rotated.into_iter().take(excess) {
            let _ = std::fs::remove_file(p);
        }
    }
}

impl Write for RotatingFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let mut s = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if s.due(buf.len()) {
            // A failed rotation keeps writing to the current file.
            let _ = s.rotate();
        }
        let n = s.file.write(buf)?;
        s.size += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .file
            .flush()
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for RotatingFile {
    type Writer = RotatingFile;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 20: a file rotates at its size limit, and only the newest rotated files stay.
    #[test]
    fn rotates_by_size_and_keeps_max_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vault.log");
        let mut w = RotatingFile::open(LogFileConfig {
            path: path.clone(),
            rotate_bytes: 100,
            rotate_duration: Duration::from_secs(3600),
            rotate_max_files: 2,
        })
        .unwrap();
        for i in 0..20 {
            writeln!(w, "line {i:03} {}", "x".repeat(30)).unwrap();
            std::thread::sleep(Duration::from_millis(2));
        }
        let mut names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names.len(), 3, "{names:?}");
        assert!(names.contains(&"vault.log".to_string()));
        assert!(
            names
                .iter()
                .filter(|n| n.starts_with("vault-") && n.ends_with(".log"))
                .count()
                == 2
        );
        // Every file stays under the limit, and the newest line is in the current file.
        for n in &names {
            assert!(
                std::fs::metadata(dir.path().join(n)).unwrap().len() <= 100,
                "{n}"
            );
        }
        assert!(std::fs::read_to_string(&path).unwrap().contains("line 019"));
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(&path).unwrap().permissions(),
        );
        assert_eq!(mode & 0o777, 0o600);
    }
}
