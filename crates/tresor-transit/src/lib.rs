//! Vault's transit secrets engine: encryption, signing and HMAC as a service with named,
//! rotating keys.
//!
//! Module map: `keytype` (the key types and what each supports), `key` (stored records and a
//! loaded version's material), `crypto` (derivation, AEAD in Vault's ciphertext layout,
//! RSA-OAEP, HMAC, digests, signatures), `engine` (shared state: key cache, locks, storage
//! layout, create and rotate), `batch` (`batch_input` and per-item results), and the handlers:
//! `keys` (keys, config, rotate, trim, automatic rotation), `crypt` (encrypt, decrypt, rewrap,
//! datakey), `signing` (sign, verify, hmac, hash, random), `export`, `backup` (backup,
//! restore, cache-config, BYOK import), each reading its path's typed fields from `inputs`.
//! This file holds the path table and the [`LogicalBackend`] the core mounts.
//!
//! Ciphertexts are `vault:v<N>:` and the base64 of Vault's layout (12-byte nonce, then
//! ciphertext and tag for the AEAD types), derived keys use HKDF-SHA256 with the context as
//! info, and convergent keys take the nonce from an HMAC of the plaintext, as Vault's
//! current convergent version does: data encrypted by either decrypts with the other once the
//! key is moved with `backup`/`restore`.

#![forbid(unsafe_code)]

mod backup;
mod batch;
mod crypt;
mod crypto;
mod engine;
mod export;
mod inputs;
mod key;
mod keys;
mod keytype;
mod signing;
mod util;

use std::sync::Arc;

use async_trait::async_trait;
use serde_json::{Map, Value};
use tresor_sdk::clock::{Clock, SystemClock};
use tresor_sdk::framework::{Input, Path, Table};
use tresor_sdk::{
    Context, LogicalBackend, LogicalError, Operation, Request, Response, Result, SpecialPaths,
};

use engine::Engine;
use inputs::batch as batch_input;
use inputs::*;

/// The engine on the system clock, ready to mount.
pub fn backend() -> Arc<dyn LogicalBackend> {
    backend_with_clock(Arc::new(SystemClock))
}

/// The engine reading time from `clock` (tests pass a clock they control).
pub fn backend_with_clock(clock: Arc<dyn Clock>) -> Arc<dyn LogicalBackend> {
    Arc::new(Transit {
        engine: Arc::new(Engine::new(clock)),
        table: table(),
    })
}

struct Transit {
    engine: Arc<Engine>,
    table: Table<Engine>,
}

#[async_trait]
impl LogicalBackend for Transit {
    async fn handle(&self, req: Request) -> Result<Option<Response>> {
        if req.operation == Operation::Help {
            let help = self
                .table
                .help(&req.path)
                .ok_or(LogicalError::UnsupportedPath)?;
            return Ok(Some(Response::data(help)));
        }
        self.table.handle(self.engine.clone(), req).await
    }

    async fn exists(&self, req: &Request) -> Result<Option<bool>> {
        self.table.exists(self.engine.clone(), req).await
    }

    fn special_paths(&self) -> SpecialPaths {
        self.table.special.clone()
    }

    fn help(&self, path: &str) -> Option<Map<String, Value>> {
        self.table.help(path)
    }

    fn openapi_paths(&self) -> Map<String, Value> {
        self.table.openapi_paths()
    }

    /// Loads the mount's cache size.
    async fn initialize(&self, ctx: &Context) -> Result<()> {
        self.engine.load_cache_config(ctx).await
    }

    async fn invalidate(&self, ctx: &Context, key: &str) {
        let mount = engine::mount_of(&ctx.mount);
        if let Some(name) = key.strip_prefix(engine::POLICY_PREFIX) {
            self.engine.forget(&mount, name);
        } else if let Some(rest) = key.strip_prefix("version/") {
            let name = rest.split('/').next().unwrap_or_default();
            self.engine.forget(&mount, name);
        } else if key == engine::CACHE_CONFIG {
            let _ = self.engine.load_cache_config(ctx).await;
        }
    }

    /// Automatic rotation, once a minute on the active node.
    async fn periodic(&self, ctx: &Context) -> Result<()> {
        self.engine.auto_rotate(ctx).await
    }

    async fn cleanup(&self) {
        self.engine.forget_all();
    }
}

// ---------------------------------------------------------------------------------------------
// The path table.

macro_rules! h {
    ($method:ident) => {
        |e, r, fl| Box::pin(async move { e.$method(r, fl).await })
    };
}

/// Declares the `batch_input` field of `I` ([`inputs::batch`]) as one the handler takes out of
/// the request itself ([`batch::items`]): a batch of a thousand items is never copied.
trait BatchInput {
    fn batch_input<I: Input>(self) -> Self;
}

impl BatchInput for Path<Engine> {
    fn batch_input<I: Input>(self) -> Self {
        I::fields()
            .into_iter()
            .fold(self, |p, f| p.field(f.in_request()))
    }
}

const BACKEND_HELP: &str = "
The transit secrets engine handles cryptographic functions on data in transit: it encrypts,
decrypts, signs, verifies and computes HMACs with named keys that it keeps and never shows
(unless a key is made exportable). Keys rotate; old versions stay usable for decryption until
min_decryption_version moves past them, and rewrap moves ciphertext to the latest version
without revealing the plaintext.";

fn table() -> Table<Engine> {
    use Operation::*;
    let paths = vec![
        Path::<Engine>::new("keys").op(List, h!(keys_list)).help(
            "List the named keys.",
            "The names of the keys of this mount.",
        ),
        Path::<Engine>::new("keys/{name}/config")
            .input::<KeyName>()
            .input::<KeyConfigInput>()
            .op(Update, h!(key_config))
            .help("Configure a named key.", "Settings not sent keep their values."),
        Path::<Engine>::new("keys/{name}/rotate")
            .input::<KeyName>()
            .op(Update, h!(key_rotate))
            .help("Rotate a named key.", "Adds a version with new material; new encryptions use it."),
        Path::<Engine>::new("keys/{name}/trim")
            .input::<KeyName>()
            .input::<TrimInput>()
            .op(Update, h!(key_trim))
            .help("Delete old versions of a named key.", "Versions below min_available_version are deleted; ciphertext made with them cannot be decrypted any more."),
        Path::<Engine>::new("keys/{name}/import")
            .input::<KeyName>()
            .input::<ImportInput>()
            .op(Update, h!(import))
            .help("Import a key (bring your own key).", "The key material arrives wrapped for the mount's wrapping_key, as Vault documents for BYOK: symmetric keys as raw bytes, asymmetric keys as PKCS#8 DER."),
        Path::<Engine>::new("keys/{name}")
            .input::<KeyName>()
            .input::<NewKeyInput>()
            .input::<KeyInput>()
            .op(Update, h!(key_write))
            .op(Read, h!(key_read))
            .op(Delete, h!(key_delete))
            .help(
                "Create, read or delete a named key.",
                "Creating a key that exists changes nothing and returns it. A read shows the key's settings, versions (with public keys for asymmetric types) and what it supports. Deleting needs deletion_allowed set with keys/:name/config.",
            ),
        Path::<Engine>::new("encrypt/{name}")
            .input::<KeyName>()
            .input::<NewKeyInput>()
            .input::<EncryptInput>()
            .batch_input::<batch_input::Encrypt>()
            .input::<PartialInput>()
            .existence(|e, r, fl| Box::pin(async move { e.key_exists(r, fl).await }))
            .op(Update, h!(encrypt))
            .help(
                "Encrypt base64 plaintext with a named key.",
                "Returns vault:v<N>:<base64> ciphertext. A write that may create (create capability) makes the key if it does not exist, with type (default aes256-gcm96), derived when a context is given, and convergent_encryption.",
            ),
        Path::<Engine>::new("decrypt/{name}")
            .input::<KeyName>()
            .input::<DecryptInput>()
            .batch_input::<batch_input::Decrypt>()
            .input::<PartialInput>()
            .op(Update, h!(decrypt))
            .help("Decrypt ciphertext with a named key.", "Returns the base64 plaintext. Ciphertext of versions below min_decryption_version is refused."),
        Path::<Engine>::new("rewrap/{name}")
            .input::<KeyName>()
            .input::<RewrapInput>()
            .batch_input::<batch_input::Rewrap>()
            .input::<PartialInput>()
            .op(Update, h!(rewrap))
            .help("Rewrap ciphertext with the latest version of a key.", "Decrypts and encrypts again inside the engine: the plaintext is never returned."),
        Path::<Engine>::new("datakey/{plaintext}/{name}")
            .input::<KeyName>()
            .input::<DatakeyInput>()
            .op(Update, h!(datakey))
            .help("Generate a data key.", "A new random key encrypted with the named key, and (plaintext) the key itself."),
        Path::<Engine>::new("random/{source}/{urlbytes}")
            .input::<RandomUrlInput>()
            .op(Update, h!(random_url))
            .help("Generate random bytes.", "From the platform's generator (also for the seal and all sources)."),
        Path::<Engine>::new("random/{source_or_bytes}")
            .input::<RandomOneInput>()
            .op(Update, h!(random_one))
            .help("Generate random bytes.", "From the platform's generator."),
        Path::<Engine>::new("random")
            .input::<RandomInput>()
            .op(Update, h!(random))
            .help("Generate random bytes.", "From the platform's generator."),
        Path::<Engine>::new("hash/{urlalgorithm}")
            .input::<HashUrlInput>()
            .op(Update, h!(hash_url))
            .help("Hash data.", "The digest of the base64 input."),
        // `urlalgorithm` is declared (never captured) because the handler once asked for it
        // (an undeclared field was a programming error, found by fuzzing, issue 12); a client
        // may send it in the body.
        Path::<Engine>::new("hash")
            .input::<HashInput>()
            .op(Update, h!(hash))
            .help("Hash data.", "The digest of the base64 input."),
        Path::<Engine>::new("hmac/{name}/{urlalgorithm}")
            .input::<KeyName>()
            .input::<HmacInput>()
            .batch_input::<batch_input::Hmac>()
            .input::<PartialInput>()
            .op(Update, h!(hmac))
            .help("HMAC data with a named key.", "Returns vault:v<N>:<base64 HMAC>."),
        Path::<Engine>::new("hmac/{name}")
            .input::<KeyName>()
            .input::<HmacInput>()
            .batch_input::<batch_input::Hmac>()
            .input::<PartialInput>()
            .op(Update, h!(hmac))
            .help("HMAC data with a named key.", "Returns vault:v<N>:<base64 HMAC>."),
        Path::<Engine>::new("sign/{name}/{urlalgorithm}")
            .input::<KeyName>()
            .input::<SignInput>()
            .input::<SignVersionInput>()
            .batch_input::<batch_input::Sign>()
            .op(Update, h!(sign))
            .help("Sign data with a named key.", "Returns vault:v<N>:<base64 signature>."),
        Path::<Engine>::new("sign/{name}")
            .input::<KeyName>()
            .input::<SignInput>()
            .input::<SignVersionInput>()
            .batch_input::<batch_input::Sign>()
            .op(Update, h!(sign))
            .help("Sign data with a named key.", "Returns vault:v<N>:<base64 signature>."),
        Path::<Engine>::new("verify/{name}/{urlalgorithm}")
            .input::<KeyName>()
            .input::<SignInput>()
            .input::<VerifyInput>()
            .batch_input::<batch_input::Verify>()
            .op(Update, h!(verify))
            .help("Verify a signature or HMAC.", "Returns valid: true or false."),
        Path::<Engine>::new("verify/{name}")
            .input::<KeyName>()
            .input::<SignInput>()
            .input::<VerifyInput>()
            .batch_input::<batch_input::Verify>()
            .op(Update, h!(verify))
            .help("Verify a signature or HMAC.", "Returns valid: true or false."),
        Path::<Engine>::new("export/{type}/{name}/{version}")
            .input::<ExportVersionInput>()
            .op(Read, h!(export_version))
            .help("Export a key version.", "Private material only for exportable keys; public keys always."),
        Path::<Engine>::new("export/{type}/{name}")
            .input::<ExportInput>()
            .op(Read, h!(export_all))
            .help("Export a key's versions.", "Private material only for exportable keys; public keys always."),
        Path::<Engine>::new("backup/{name}")
            .input::<KeyName>()
            .op(Read, h!(backup))
            .help("Back up a named key.", "The key's policy and every version, base64 JSON in Vault's backup layout; needs exportable and allow_plaintext_backup."),
        Path::<Engine>::new("restore/{name}")
            .input::<KeyName>()
            .input::<RestoreNamedInput>()
            .op(Update, h!(restore_named))
            .help("Restore a key from a backup, under a new name.", "The key's name from the URL."),
        Path::<Engine>::new("restore")
            .input::<RestoreInput>()
            .op(Update, h!(restore_body))
            .help("Restore a key from a backup.", "Under the backup's name unless name is given."),
        Path::<Engine>::new("cache-config")
            .input::<CacheConfigInput>()
            .op(Read, h!(cache_config_read))
            .op(Update, h!(cache_config_write))
            .help("Configure the key cache.", "How many loaded keys this mount keeps in memory."),
        Path::<Engine>::new("wrapping_key")
            .op(Read, h!(wrapping_key))
            .help("The public key to wrap keys for import.", "An RSA-4096 key made on first use; wrap an ephemeral AES-256 key with RSA-OAEP under it."),
    ];
    Table {
        paths,
        special: SpecialPaths::default(),
        help: BACKEND_HELP,
    }
}
