#![cfg(feature = "engines")]

//! Every input of every corpus (`fuzz/corpus/<target>/`) through its target's function, in
//! the ordinary test build: a target that panics on an input it once handled, or that became
//! much slower on one, fails here with the target and file named. CI runs this with the
//! workspace's tests; libFuzzer itself runs only where the sanitizer build fits
//! (docs/fuzzing.md).
//!
//! Each target runs in its own test on a thread of its own, so a hang fails after
//! [`BUDGET`] instead of stalling the run; a single input slower than [`SLOW`] fails too (the
//! fuzz runs found HCL inputs that took minutes: such a regression should not pass quietly).

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// The longest a whole corpus may take in a debug build.
const BUDGET: Duration = Duration::from_secs(300);
/// The longest one input may take in a debug build.
const SLOW: Duration = Duration::from_secs(10);

fn corpus_dir(target: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("../../fuzz/corpus/{target}"))
}

fn replay(target: &str) {
    let f = tresor_fuzz_targets::TARGETS
        .iter()
        .find(|(name, _)| *name == target)
        .unwrap_or_else(|| panic!("no target {target}"))
        .1;
    let dir = corpus_dir(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    assert!(
        !files.is_empty(),
        "{target}: empty corpus in {}",
        dir.display()
    );

    // The file being run, for the message when the budget runs out.
    let current = Arc::new(Mutex::new(String::new()));
    let (tx, rx) = mpsc::channel();
    let cur = current.clone();
    let n = files.len();
    std::thread::Builder::new()
        .name(format!("replay-{target}"))
        .spawn(move || {
            let mut failures = Vec::new();
            let mut slowest = (Duration::ZERO, String::new());
            for path in &files {
                let name = path.file_name().unwrap().to_string_lossy().into_owned();
                *cur.lock() = name.clone();
                let data = match std::fs::read(path) {
                    Ok(d) => d,
                    // A fuzzer running on the same corpus replaces inputs as it shrinks them.
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(e) => panic!("{}: {e}", path.display()),
                };
                let start = Instant::now();
                let outcome = catch_unwind(AssertUnwindSafe(|| f(&data)));
                let took = start.elapsed();
                if let Err(e) = outcome {
                    let msg = e
                        .downcast_ref::<String>()
                        .cloned()
                        .or_else(|| e.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                        .unwrap_or_default();
                    failures.push(format!("{name}: panicked: {msg}"));
                } else if took > SLOW {
                    failures.push(format!("{name}: took {took:?}, more than {SLOW:?}"));
                }
                if took > slowest.0 {
                    slowest = (took, name);
                }
            }
            let _ = tx.send((failures, slowest));
        })
        .expect("spawn the replay thread");
    let start = Instant::now();
    match rx.recv_timeout(BUDGET) {
        Ok((failures, slowest)) => {
            eprintln!(
                "{target}: {n} inputs in {:?}; slowest {} ({:?})",
                start.elapsed(),
                slowest.1,
                slowest.0
            );
            assert!(
                failures.is_empty(),
                "{target}: {} of {n} inputs failed:\n{}",
                failures.len(),
                failures.join("\n")
            );
        }
        Err(_) => panic!(
            "{target}: the corpus took longer than {BUDGET:?}; still running {}",
            current.lock()
        ),
    }
}

macro_rules! replay_tests {
    ($($t:ident),* $(,)?) => {
        $( #[test] fn $t() { replay(stringify!($t)); } )*

        /// Every target has a test above and a corpus, and every corpus a target.
        #[test]
        fn every_target_and_corpus_is_replayed() {
            let tested = [$(stringify!($t)),*];
            let targets: Vec<&str> = tresor_fuzz_targets::TARGETS.iter().map(|(n, _)| *n).collect();
            for t in &targets {
                assert!(tested.contains(t), "target {t} has no replay test");
            }
            let corpus = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus");
            for e in std::fs::read_dir(&corpus).expect("fuzz/corpus") {
                let name = e.expect("entry").file_name().to_string_lossy().into_owned();
                assert!(targets.contains(&name.as_str()), "corpus {name} has no target");
            }
        }
    };
}

replay_tests!(
    policy,
    fields_duration,
    http_request,
    server_config,
    x509,
    pki_ocsp,
    pgp_keys,
    transit,
    ssh,
    totp,
    jwt,
    database,
    agent_config,
    agent_template,
    ldap,
);
