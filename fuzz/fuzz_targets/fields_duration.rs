//! The `fields_duration` target: its body is `tresor_fuzz_targets::fields_duration` (crates/tresor-fuzz-targets).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tresor_fuzz_targets::fields_duration(data));
