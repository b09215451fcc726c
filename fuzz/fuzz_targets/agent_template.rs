//! The `agent_template` target: its body is `tresor_fuzz_targets::agent_template` (crates/tresor-fuzz-targets).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tresor_fuzz_targets::agent_template(data));
