//! The built-in engines and auth methods this binary registers with the core, and the mounts
//! `-dev` adds. The core never depends on an engine crate; this is where they meet.

use std::sync::Arc;

use anyhow::Result;
use tresor_core::Core;
use tresor_core::mounts::{MountEntry, Table};

pub fn register(core: &mut Core) {
    core.register_engine("kv", Arc::new(|_| Ok(tresor_kv::backend())));
    // Vault's old name of KV: a `generic` mount is KV version 1 under its own type name.
    core.register_engine_alias("generic", "kv");
    core.register_engine("pki", Arc::new(|_| Ok(tresor_pki::backend())));
    core.register_engine("transit", Arc::new(|_| Ok(tresor_transit::backend())));
    core.register_engine("ssh", Arc::new(|_| Ok(tresor_ssh::backend())));
    core.register_engine("totp", Arc::new(|_| Ok(tresor_totp::backend())));
    core.register_engine("database", Arc::new(|_| Ok(tresor_database::backend())));
    core.register_credential("userpass", Arc::new(|_| Ok(tresor_userpass::backend())));
    core.register_credential("approle", Arc::new(|_| Ok(tresor_approle::backend())));
    core.register_credential("cert", Arc::new(|_| Ok(tresor_cert::backend())));
    core.register_credential("ldap", Arc::new(|_| Ok(tresor_ldap::backend())));
    core.register_credential("jwt", Arc::new(|_| Ok(tresor_jwt::backend())));
    core.register_credential("oidc", Arc::new(|_| Ok(tresor_jwt::backend())));
    core.register_credential(
        "kubernetes",
        Arc::new(|_| Ok(tresor_jwt::kubernetes_backend())),
    );
}

/// Dev mode mounts KV at `secret/`, as Vault does: version 2, or 1 under `-dev-kv-v1`.
pub async fn dev_mounts(core: &Core, kv_version: u8) -> Result<()> {
    let mut kv = MountEntry::new(Table::Mounts, "secret/", "kv", "key/value secret storage");
    kv.options.insert("version".into(), kv_version.to_string());
    core.mount(kv)
        .await
        .map_err(|e| anyhow::anyhow!("mounting secret/: {e}"))?;
    Ok(())
}
