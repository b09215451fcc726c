//! Issue 18: the example policy library in docs/governing passes its own tests with the
//! server's engine and built-ins, and a broken test is reported as a failure.

use std::path::PathBuf;

use tresor_govern::testing::run_tests;

fn library() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/governing")
}

#[test]
fn the_example_library_passes() {
    let run = run_tests(&library(), None, false).unwrap();
    for r in &run.results {
        assert!(r.passed, "{}.{} failed: {:?}", r.package, r.name, r.error);
    }
    assert!(run.results.len() >= 20, "{} tests", run.results.len());
    // Every example policy is a valid governing policy (compiles, declares main).
    for f in tresor_govern::testing::rego_files(&library()).unwrap() {
        if f.to_string_lossy().ends_with("_test.rego") {
            continue;
        }
        let text = std::fs::read_to_string(&f).unwrap();
        let name = f.file_stem().unwrap().to_string_lossy().into_owned();
        tresor_govern::Compiled::compile(&name, &text, tresor_govern::DEFAULT_EVAL_TIMEOUT)
            .unwrap_or_else(|e| panic!("{}: {e}", f.display()));
    }
}

#[test]
fn a_broken_test_fails_and_run_filters() {
    let dir = tempfile::tempdir().unwrap();
    for f in ["business_hours.rego", "business_hours_test.rego"] {
        std::fs::copy(library().join(f), dir.path().join(f)).unwrap();
    }
    std::fs::write(
        dir.path().join("broken_test.rego"),
        "package tresor.broken_test\nimport data.tresor.business_hours\ntest_night_is_open if business_hours.main with input as {\"request\": {\"operation\": \"update\", \"path\": \"sys/mounts/x\"}, \"time\": {\"hour\": 3}}\n",
    )
    .unwrap();
    let run = run_tests(dir.path(), None, true).unwrap();
    assert_eq!(run.failed(), 1);
    let failed = run.results.iter().find(|r| !r.passed).unwrap();
    assert_eq!(failed.name, "test_night_is_open");
    let cov = run.coverage.unwrap();
    assert!(
        cov.iter()
            .any(|f| f.file.ends_with("business_hours.rego") && !f.covered.is_empty())
    );
    let run = run_tests(dir.path(), Some("night_is_denied|reads"), false).unwrap();
    assert!(run.passed() >= 2 && run.failed() == 0, "{run:?}");
    assert!(
        run.results
            .iter()
            .all(|r| r.name.contains("night") || r.name.contains("reads"))
    );
}
