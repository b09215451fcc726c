//! The `database` target: its body is `tresor_fuzz_targets::database` (crates/tresor-fuzz-targets).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tresor_fuzz_targets::database(data));
