//! The `http_request` target: its body is `tresor_fuzz_targets::http_request` (crates/tresor-fuzz-targets).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tresor_fuzz_targets::http_request(data));
