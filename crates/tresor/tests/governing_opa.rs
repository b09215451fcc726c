//! Issue 18: "`opa test` agrees on the portable ones". OPA's Go engine runs in-process from
//! Python (the `opa_bindings` wheel .ci/run installs); the script (`governing_opa.py`, next to
//! this file) compares `tresor policy test` on docs/governing with OPA's verdict on every
//! `test_*` rule, and `tresor policy eval` with OPA's `main` and `deny` on a corpus of
//! policies written to exercise the language and the standard built-ins.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{clean_command, run_for};

#[test]
fn tresor_and_opa_agree_on_tests_and_decisions() {
    let dir = tempfile::tempdir().unwrap();
    let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/governing");
    let mut cmd: Command = clean_command("python3");
    cmd.arg("-")
        .env("TRESOR", env!("CARGO_BIN_EXE_tresor"))
        .env("GOVERNING_DIR", &docs)
        .env("WORKDIR", dir.path());
    let o = run_for(
        &mut cmd,
        Some(include_str!("governing_opa.py").as_bytes()),
        Duration::from_secs(120),
    );
    assert_eq!(o.code, 0, "the OPA comparison failed\n{o}");
    assert!(o.stdout.contains("ALL OK"), "{o}");
    // Every documented example's tests were compared, the Tresor-specific one included.
    for t in [
        "test tresor.business_hours_test.test_mount_at_night_is_denied",
        "test tresor.kv_cas_test.",
        "test tresor.office_network_test.",
        "test tresor.pki_max_ttl_test.",
        "test tresor.pki_key_strength_test.test_small_ec_key_is_refused",
    ] {
        assert!(
            o.stdout.contains(&format!("OK {t}")),
            "{t} not compared\n{o}"
        );
    }
    let compared = o
        .stdout
        .lines()
        .filter(|l| l.starts_with("OK eval "))
        .count();
    assert!(compared >= 30, "only {compared} decisions compared\n{o}");
}
