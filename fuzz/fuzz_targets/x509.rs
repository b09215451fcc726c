//! The `x509` target: its body is `tresor_fuzz_targets::x509` (crates/tresor-fuzz-targets).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tresor_fuzz_targets::x509(data));
