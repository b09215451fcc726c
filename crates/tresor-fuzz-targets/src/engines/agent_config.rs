//! The agent's configuration parser (`tresor_agent::config::parse`): HCL (with Vault's HCL 1
//! one-line forms, the nesting guard first) into `Config` — `vault`, `auto_auth` methods and
//! sinks, `cache`, `listener`, `api_proxy`, `template` (with `contents`, or a `source` read
//! from the base directory), `template_config`, `exec` and `env_template`, file modes and
//! durations — with its checks.
//!
//! Input: the configuration text. Paths in it resolve against a directory that does not
//! exist; text naming anything under `/dev` or `/proc` is skipped, since the parser reads
//! `source` and `password_file_path` files and `/dev/zero` never ends.

use std::path::Path;

/// Whether `text` could name a device or a process file (see the module docs).
pub(crate) fn names_special_files(text: &str) -> bool {
    text.contains("dev/") || text.contains("proc/")
}

/// The `agent_config` target: one input.
pub fn agent_config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if names_special_files(text) {
        return;
    }
    let _ = tresor_agent::config::parse(text, Path::new("/nonexistent/fuzz"));
}
