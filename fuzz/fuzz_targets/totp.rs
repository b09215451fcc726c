//! The `totp` target: its body is `tresor_fuzz_targets::totp` (crates/tresor-fuzz-targets).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tresor_fuzz_targets::totp(data));
