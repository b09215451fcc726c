//! The `server_config` target: its body is `tresor_fuzz_targets::server_config` (crates/tresor-fuzz-targets).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tresor_fuzz_targets::server_config(data));
