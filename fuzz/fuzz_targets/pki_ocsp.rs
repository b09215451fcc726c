//! The `pki_ocsp` target: its body is `tresor_fuzz_targets::pki_ocsp` (crates/tresor-fuzz-targets).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tresor_fuzz_targets::pki_ocsp(data));
