//! `keys/`: create, read, list, delete, `config`, `rotate`, `trim`; automatic rotation.

use tresor_sdk::framework::Fields;
use tresor_sdk::{Context, Operation, Request, Response, Result, Storage};

use crate::engine::{
    Engine, NewKey, check_name, check_rotate_period, mount_id, mount_of, version_key,
};
use crate::inputs::{KeyConfigInput, KeyInput, KeyName, NewKeyInput, TrimInput};
use crate::keytype::KeyType;
use crate::util::bad;

/// The settings of a new key: `keys/:name` gives `all` of them; an upserting `encrypt/` only
/// `type` and `convergent_encryption`.
pub(crate) fn new_key(
    settings: &NewKeyInput,
    derived: bool,
    all: Option<&KeyInput>,
) -> Result<NewKey> {
    let t = &settings.kind;
    let kind = KeyType::parse(if t.is_empty() { "aes256-gcm96" } else { t })?;
    let key_size = match all.and_then(|a| a.key_size).unwrap_or(0) {
        0 => 32,
        n => usize::try_from(n).map_err(|_| bad("invalid key_size"))?,
    };
    Ok(NewKey {
        kind,
        derived,
        convergent: settings.convergent_encryption,
        exportable: all.is_some_and(|a| a.exportable),
        allow_plaintext_backup: all.is_some_and(|a| a.allow_plaintext_backup),
        auto_rotate_period: all.map_or(0, |a| a.auto_rotate_period.as_secs()),
        key_size,
    })
}

impl Engine {
    pub(crate) async fn keys_list(&self, req: Request, _f: Fields) -> Result<Option<Response>> {
        let names = req.storage.list(crate::engine::POLICY_PREFIX).await?;
        Ok(Some(Response::list(
            names.into_iter().filter(|n| !n.ends_with('/')).collect(),
        )))
    }

    pub(crate) async fn key_write(&self, req: Request, f: Fields) -> Result<Option<Response>> {
        let KeyName { name } = f.input();
        check_name(&name)?;
        let mount = mount_id(&req);
        let s = &*req.storage;
        let input: KeyInput = f.input();
        let n = new_key(&f.input(), input.derived, Some(&input))?;
        n.check()?;
        // An hmac key's size is checked above; other types take none.
        if n.kind != KeyType::Hmac && input.key_size.is_some_and(|k| k != 0) {
            return Err(bad("key_size is only valid for hmac keys"));
        }
        let (key, existed) = {
            let _g = self.lock(&mount, &name).await;
            match self.stored_policy(s, &name).await? {
                Some(_) => (
                    self.existing(&mount, s, &name, "key not found").await?,
                    true,
                ),
                None => (self.create(&mount, s, &name, &n).await?, false),
            }
        };
        let r = Response::data(key.describe(s).await?);
        // As Vault: the existing key is left as it is, and the answer says so.
        Ok(Some(if existed {
            r.with_warning(format!("key {name} already existed"))
        } else {
            r
        }))
    }

    pub(crate) async fn key_read(&self, req: Request, f: Fields) -> Result<Option<Response>> {
        let KeyName { name } = f.input();
        let s = &*req.storage;
        match self.key(&mount_id(&req), s, &name).await? {
            None => Ok(None),
            Some(k) => Ok(Some(Response::data(k.describe(s).await?))),
        }
    }

    pub(crate) async fn key_delete(&self, req: Request, f: Fields) -> Result<Option<Response>> {
        let KeyName { name } = f.input();
        let mount = mount_id(&req);
        let s = &*req.storage;
        let _g = self.lock(&mount, &name).await;
        // Vault's words, the key's name first.
        let refused = |why: &str| bad(format!("error deleting policy {name}: {why}"));
        let p = self
            .stored_policy(s, &name)
            .await?
            .ok_or_else(|| refused("could not delete key; not found"))?;
        if !p.deletion_allowed {
            return Err(refused("deletion is not allowed for this key"));
        }
        // The policy first: once it is gone the versions are unreachable, and a crash
        // between the two leaves only unreachable entries (removed with the next key of that
        // name's creation, which starts at version 1 and overwrites them).
        s.delete(&crate::engine::policy_key(&name)).await?;
        self.forget(&mount, &name);
        s.delete_prefix(&crate::engine::version_prefix(&name))
            .await?;
        Ok(None)
    }

    pub(crate) async fn key_config(&self, req: Request, f: Fields) -> Result<Option<Response>> {
        let KeyName { name } = f.input();
        let mount = mount_id(&req);
        let s = &*req.storage;
        let _g = self.lock(&mount, &name).await;
        let mut p = self
            .stored_policy(s, &name)
            .await?
            .ok_or_else(|| bad(format!("no existing key named {name} could be found")))?;
        let mut warnings = Vec::new();
        let input: KeyConfigInput = f.input();
        if let Some(v) = input.min_decryption_version {
            if v < 0 {
                return Err(bad("min decryption version cannot be negative"));
            }
            let v = u32::try_from(v).map_err(|_| bad("invalid min_decryption_version"))?;
            let v = v.max(1);
            if v > p.latest_version {
                return Err(bad(format!(
                    "cannot set min decryption version of {v}, latest key version is {}",
                    p.latest_version
                )));
            }
            if v < p.min_available_version {
                return Err(bad(format!(
                    "cannot set min decryption version of {v} below the minimum available version {}",
                    p.min_available_version
                )));
            }
            p.min_decryption_version = v;
        }
        if let Some(v) = input.min_encryption_version {
            if v < 0 {
                return Err(bad("min encryption version cannot be negative"));
            }
            let v = u32::try_from(v).map_err(|_| bad("invalid min_encryption_version"))?;
            if v > p.latest_version {
                return Err(bad(format!(
                    "cannot set min encryption version of {v}, latest key version is {}",
                    p.latest_version
                )));
            }
            p.min_encryption_version = v;
        }
        if p.min_encryption_version > 0 && p.min_encryption_version < p.min_decryption_version {
            return Err(bad(
                "min encryption version should not be less than min decryption version",
            ));
        }
        if let Some(v) = input.deletion_allowed {
            p.deletion_allowed = v;
        }
        if let Some(v) = input.exportable {
            if p.exportable && !v {
                return Err(bad("exportable key cannot be made non-exportable"));
            }
            p.exportable = v;
        }
        if let Some(v) = input.allow_plaintext_backup {
            if p.allow_plaintext_backup && !v {
                return Err(bad("plaintext backup cannot be disabled once allowed"));
            }
            p.allow_plaintext_backup = v;
        }
        if let Some(period) = input.auto_rotate_period {
            let v = period.as_secs();
            check_rotate_period(v)?;
            if v != 0 && p.imported && !p.allow_rotation {
                warnings.push(
                    "this imported key does not allow rotation; auto_rotate_period has no effect"
                        .to_owned(),
                );
            }
            p.auto_rotate_period = v;
        }
        self.save(&mount, s, &p, Vec::new()).await?;
        let k = self.existing(&mount, s, &name, "key not found").await?;
        let mut r = Response::data(k.describe(s).await?);
        r.warnings = warnings;
        Ok(Some(r))
    }

    pub(crate) async fn key_rotate(&self, req: Request, f: Fields) -> Result<Option<Response>> {
        let KeyName { name } = f.input();
        let mount = mount_id(&req);
        let s = &*req.storage;
        {
            let _g = self.lock(&mount, &name).await;
            let p = self
                .stored_policy(s, &name)
                .await?
                .ok_or_else(|| bad("key not found"))?;
            self.rotate(&mount, s, p, None).await?;
        }
        let k = self.existing(&mount, s, &name, "key not found").await?;
        Ok(Some(Response::data(k.describe(s).await?)))
    }

    pub(crate) async fn key_trim(&self, req: Request, f: Fields) -> Result<Option<Response>> {
        let KeyName { name } = f.input();
        let mount = mount_id(&req);
        let s = &*req.storage;
        let _g = self.lock(&mount, &name).await;
        let mut p = self
            .stored_policy(s, &name)
            .await?
            .ok_or_else(|| bad("invalid key name"))?;
        let TrimInput {
            min_available_version: v,
        } = f.input();
        if v <= 0 {
            return Err(bad("minimum available version should be positive"));
        }
        let v = u32::try_from(v).map_err(|_| bad("invalid min_available_version"))?;
        if v > p.min_decryption_version {
            return Err(bad(
                "minimum available version should not be greater than minimum decryption version",
            ));
        }
        // As Vault: trimming needs a pinned min_encryption_version (0 means "the latest",
        // which would leave the bound to move with every rotation).
        if p.min_encryption_version == 0 {
            return Err(bad(
                "minimum available version cannot be set when minimum encryption version is not set",
            ));
        }
        if v > p.min_encryption_version {
            return Err(bad(
                "minimum available version should not be greater than minimum encryption version",
            ));
        }
        if v < p.min_available_version {
            return Err(bad(
                "minimum available version should not be less than the current minimum available version",
            ));
        }
        let old = p.min_available_version.max(1);
        p.min_available_version = v;
        self.save(&mount, s, &p, Vec::new()).await?;
        // The bound is stored first: the versions below it are unreachable from now on.
        for n in old..v {
            s.delete(&version_key(&name, n)).await?;
        }
        // Vault answers with the key, as the other writes to a key do.
        let k = self.existing(&mount, s, &name, "key not found").await?;
        Ok(Some(Response::data(k.describe(s).await?)))
    }

    /// The existence check of `encrypt/` (create: the key would be made by this write).
    pub(crate) async fn key_exists(&self, req: Request, f: Fields) -> Result<bool> {
        let KeyName { name } = f.input();
        Ok(self
            .key(&mount_id(&req), &*req.storage, &name)
            .await?
            .is_some())
    }

    /// Rotates the keys of a mount whose `auto_rotate_period` has passed.
    pub(crate) async fn auto_rotate(&self, ctx: &Context) -> Result<()> {
        let mount = mount_of(&ctx.mount);
        let s: &dyn Storage = &*ctx.storage;
        let now = tresor_sdk::clock::unix(ctx.now);
        for name in s.list(crate::engine::POLICY_PREFIX).await? {
            let Some(k) = self.key(&mount, s, &name).await? else {
                continue;
            };
            let p = &k.policy;
            if p.auto_rotate_period == 0 || (p.imported && !p.allow_rotation) {
                continue;
            }
            let due = p
                .last_rotated
                .saturating_add(i64::try_from(p.auto_rotate_period).unwrap_or(i64::MAX));
            if now < due {
                continue;
            }
            let _g = self.lock(&mount, &name).await;
            // Check again under the lock, on what storage holds now.
            if let Some(p) = self.stored_policy(s, &name).await?
                && p.auto_rotate_period != 0
                && now
                    >= p.last_rotated
                        .saturating_add(i64::try_from(p.auto_rotate_period).unwrap_or(i64::MAX))
            {
                self.rotate(&mount, s, p, None).await?;
            }
        }
        Ok(())
    }
}

/// Whether a request is a create (the key may be made by it).
pub(crate) fn is_create(req: &Request) -> bool {
    req.operation == Operation::Create
}
