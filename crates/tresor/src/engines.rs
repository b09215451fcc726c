//! The built-in engines and auth methods this binary registers with the core, and the mounts
//! `-dev` adds. The core never depends on an engine crate; this is where they meet.

use anyhow::Result;
use tresor_core::Core;

pub fn register(core: &mut Core) {
    let _ = core;
}

/// Dev mode mounts KV v2 at `secret/`, as Vault does.
pub async fn dev_mounts(core: &Core) -> Result<()> {
    let _ = core;
    Ok(())
}
