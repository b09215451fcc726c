//! The `ldap` target: its body is `tresor_fuzz_targets::ldap` (crates/tresor-fuzz-targets).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tresor_fuzz_targets::ldap(data));
