//! Vault's transit secrets engine: encryption, signing and HMAC as a service with named,
//! rotating keys.
//!
//! Module map: `keytype` (the key types and what each supports), `key` (stored records and a
//! loaded version's material), `crypto` (derivation, AEAD in Vault's ciphertext layout,
//! RSA-OAEP, HMAC, digests, signatures), `engine` (shared state: key cache, locks, storage
//! layout, create and rotate), `batch` (`batch_input` and per-item results), and the handlers:
//! `keys` (keys, config, rotate, trim, automatic rotation), `crypt` (encrypt, decrypt, rewrap,
//! datakey), `signing` (sign, verify, hmac, hash, random), `export`, `backup` (backup,
//! restore, cache-config, BYOK import). This file holds the path table and the
//! [`LogicalBackend`] the core mounts.
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
mod key;
mod keys;
mod keytype;
mod signing;
mod util;

use std::sync::Arc;

use async_trait::async_trait;
use serde_json::{Map, Value, json};
use tresor_sdk::clock::{Clock, SystemClock};
use tresor_sdk::framework::{Field, Kind, Path, Table};
use tresor_sdk::{
    Context, LogicalBackend, LogicalError, Operation, Request, Response, Result, SpecialPaths,
};

use engine::Engine;

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

fn f(name: &'static str, kind: Kind, desc: &'static str) -> Field {
    Field::new(name, kind, desc)
}

macro_rules! h {
    ($method:ident) => {
        |e, r, fl| Box::pin(async move { e.$method(r, fl).await })
    };
}

fn name() -> Field {
    f("name", Kind::Str, "Name of the key.")
}

/// Taken out of the request by the handler: a batch of a thousand items is never copied.
fn batch_input(what: &'static str) -> Field {
    f("batch_input", Kind::Raw, what).in_request()
}

fn partial_code() -> Field {
    f(
        "partial_failure_response_code",
        Kind::Int,
        "The HTTP status of a batch in which some items failed and others succeeded (default 400).",
    )
}

fn context() -> Field {
    f(
        "context",
        Kind::Str,
        "Base64 context for key derivation; required for derived keys.",
    )
}

fn key_version(what: &'static str) -> Field {
    f("key_version", Kind::Int, what)
}

fn new_key_fields(p: Path<Engine>) -> Path<Engine> {
    p.field(f(
        "type",
        Kind::Str,
        "The key type: aes128-gcm96, aes256-gcm96 (default), chacha20-poly1305, ed25519, ecdsa-p256, ecdsa-p384, ecdsa-p521, rsa-2048, rsa-3072, rsa-4096 or hmac.",
    ).default(json!("aes256-gcm96")))
    .field(f(
        "convergent_encryption",
        Kind::Bool,
        "The same plaintext and context give the same ciphertext (needs derived).",
    ))
}

fn sign_fields(p: Path<Engine>) -> Path<Engine> {
    p.field(name())
        .field(f("input", Kind::Str, "The base64 input."))
        .field(context())
        .field(f(
            "urlalgorithm",
            Kind::Str,
            "The hash algorithm, from the URL.",
        ))
        .field(f(
            "hash_algorithm",
            Kind::Str,
            "sha1, sha2-224, sha2-256 (default), sha2-384, sha2-512, sha3-224, sha3-256, sha3-384 or sha3-512; ignored by ed25519. RSA signs with sha2-256, sha2-384 or sha2-512.",
        ))
        .field(f("algorithm", Kind::Str, "Deprecated: use hash_algorithm."))
        .field(f(
            "prehashed",
            Kind::Bool,
            "The input is already the hash (ECDSA and RSA).",
        ))
        .field(f(
            "signature_algorithm",
            Kind::Str,
            "RSA: pss (default) or pkcs1v15.",
        ))
        .field(f(
            "marshaling_algorithm",
            Kind::Str,
            "asn1 (default) or jws (ECDSA r||s; base64url signature).",
        ))
        .field(f(
            "salt_length",
            Kind::Str,
            "RSA-PSS salt: auto (the longest; default), hash, or the hash length.",
        ))
        .field(partial_code())
}

const BACKEND_HELP: &str = "
The transit secrets engine handles cryptographic functions on data in transit: it encrypts,
decrypts, signs, verifies and computes HMACs with named keys that it keeps and never shows
(unless a key is made exportable). Keys rotate; old versions stay usable for decryption until
min_decryption_version moves past them, and rewrap moves ciphertext to the latest version
without revealing the plaintext.";

fn table() -> Table<Engine> {
    use Operation::*;
    let key_path = new_key_fields(Path::<Engine>::new("keys/{name}").field(name()))
        .field(f(
            "derived",
            Kind::Bool,
            "Derive a key per context (HKDF-SHA256); every operation then needs a context.",
        ))
        .field(f(
            "exportable",
            Kind::Bool,
            "Allow the key to be exported. Cannot be undone.",
        ))
        .field(f(
            "allow_plaintext_backup",
            Kind::Bool,
            "Allow a plaintext backup of the key. Cannot be undone.",
        ))
        .field(f(
            "auto_rotate_period",
            Kind::Duration,
            "Rotate the key automatically this often (0 disables; at least 1h).",
        ))
        .field(f(
            "key_size",
            Kind::Int,
            "hmac keys: the key size in bytes (32 to 512; default 32).",
        ))
        .field(context())
        .op(Update, h!(key_write))
        .op(Read, h!(key_read))
        .op(Delete, h!(key_delete))
        .help(
            "Create, read or delete a named key.",
            "Creating a key that exists changes nothing and returns it. A read shows the key's settings, versions (with public keys for asymmetric types) and what it supports. Deleting needs deletion_allowed set with keys/:name/config.",
        );
    let encrypt = new_key_fields(Path::<Engine>::new("encrypt/{name}").field(name()))
        .field(f("plaintext", Kind::Str, "The base64 plaintext."))
        .field(context())
        .field(f("nonce", Kind::Str, "Not allowed by current key versions (convergent keys derive it)."))
        .field(key_version("The key version to encrypt with (default: the latest; not below min_encryption_version)."))
        .field(f("associated_data", Kind::Str, "Base64 data authenticated with the ciphertext (AEAD types); needed again to decrypt."))
        .field(batch_input("A list of items, each with plaintext and optionally context, nonce, key_version, associated_data and reference."))
        .field(partial_code())
        .existence(|e, r, fl| Box::pin(async move { e.key_exists(r, fl).await }))
        .op(Update, h!(encrypt))
        .help(
            "Encrypt base64 plaintext with a named key.",
            "Returns vault:v<N>:<base64> ciphertext. A write that may create (create capability) makes the key if it does not exist, with type (default aes256-gcm96), derived when a context is given, and convergent_encryption.",
        );
    let paths = vec![
        Path::<Engine>::new("keys").op(List, h!(keys_list)).help(
            "List the named keys.",
            "The names of the keys of this mount.",
        ),
        Path::<Engine>::new("keys/{name}/config")
            .field(name())
            .field(f("min_decryption_version", Kind::Int, "The oldest version that may decrypt (and verify)."))
            .field(f("min_encryption_version", Kind::Int, "The oldest version that may encrypt (0: the latest only by default)."))
            .field(f("deletion_allowed", Kind::Bool, "Whether the key may be deleted."))
            .field(f("exportable", Kind::Bool, "Allow the key to be exported. Cannot be undone."))
            .field(f("allow_plaintext_backup", Kind::Bool, "Allow a plaintext backup. Cannot be undone."))
            .field(f("auto_rotate_period", Kind::Duration, "Rotate automatically this often (0 disables; at least 1h)."))
            .op(Update, h!(key_config))
            .help("Configure a named key.", "Settings not sent keep their values."),
        Path::<Engine>::new("keys/{name}/rotate")
            .field(name())
            .op(Update, h!(key_rotate))
            .help("Rotate a named key.", "Adds a version with new material; new encryptions use it."),
        Path::<Engine>::new("keys/{name}/trim")
            .field(name())
            .field(f("min_available_version", Kind::Int, "Versions below this are deleted for good (at most min_decryption_version and min_encryption_version)."))
            .op(Update, h!(key_trim))
            .help("Delete old versions of a named key.", "Versions below min_available_version are deleted; ciphertext made with them cannot be decrypted any more."),
        Path::<Engine>::new("keys/{name}/import")
            .field(name())
            .field(f("ciphertext", Kind::Str, "Base64: the RSA-OAEP-wrapped AES-256 key (wrapping_key), then the key to import wrapped with it (AES-KWP, RFC 5649)."))
            .field(f("hash_function", Kind::Str, "The OAEP hash: SHA256 (default), SHA1, SHA384 or SHA512."))
            .field(f("type", Kind::Str, "The key type (default aes256-gcm96).").default(json!("aes256-gcm96")))
            .field(f("derived", Kind::Bool, "Derive a key per context."))
            .field(f("exportable", Kind::Bool, "Allow the key to be exported."))
            .field(f("allow_plaintext_backup", Kind::Bool, "Allow a plaintext backup."))
            .field(f("allow_rotation", Kind::Bool, "Allow the imported key to be rotated in Tresor."))
            .field(f("auto_rotate_period", Kind::Duration, "Rotate automatically this often (needs allow_rotation)."))
            .field(context())
            .op(Update, h!(import))
            .help("Import a key (bring your own key).", "The key material arrives wrapped for the mount's wrapping_key, as Vault documents for BYOK: symmetric keys as raw bytes, asymmetric keys as PKCS#8 DER."),
        key_path,
        encrypt,
        Path::<Engine>::new("decrypt/{name}")
            .field(name())
            .field(f("ciphertext", Kind::Str, "The ciphertext (vault:v<N>:...)."))
            .field(context())
            .field(f("nonce", Kind::Str, "Ignored by current key versions."))
            .field(f("associated_data", Kind::Str, "The base64 associated data given to encrypt."))
            .field(batch_input("A list of items, each with ciphertext and optionally context, associated_data and reference."))
            .field(partial_code())
            .op(Update, h!(decrypt))
            .help("Decrypt ciphertext with a named key.", "Returns the base64 plaintext. Ciphertext of versions below min_decryption_version is refused."),
        Path::<Engine>::new("rewrap/{name}")
            .field(name())
            .field(f("ciphertext", Kind::Str, "The ciphertext to move to the latest (or key_version) version."))
            .field(context())
            .field(f("nonce", Kind::Str, "Ignored by current key versions."))
            .field(key_version("The key version to encrypt with (default: the latest)."))
            .field(batch_input("A list of items, each with ciphertext and optionally context, key_version and reference."))
            .field(partial_code())
            .op(Update, h!(rewrap))
            .help("Rewrap ciphertext with the latest version of a key.", "Decrypts and encrypts again inside the engine: the plaintext is never returned."),
        Path::<Engine>::new("datakey/{plaintext}/{name}")
            .field(name())
            .field(f("plaintext", Kind::Str, "plaintext (return the key too) or wrapped (only its ciphertext)."))
            .field(context())
            .field(f("nonce", Kind::Str, "Not allowed by current key versions."))
            .field(f("bits", Kind::Int, "Key size in bits: 128, 256 (default) or 512.").default(json!(256)))
            .field(key_version("The key version to encrypt with (default: the latest)."))
            .op(Update, h!(datakey))
            .help("Generate a data key.", "A new random key encrypted with the named key, and (plaintext) the key itself."),
        Path::<Engine>::new("random/{source}/{urlbytes}")
            .field(f("source", Kind::Str, "platform, seal or all."))
            .field(f("urlbytes", Kind::Str, "The number of bytes."))
            .field(f("bytes", Kind::Int, "The number of bytes (default 32)."))
            .field(f("format", Kind::Str, "base64 (default) or hex."))
            .op(Update, h!(random))
            .help("Generate random bytes.", "From the platform's generator (also for the seal and all sources)."),
        Path::<Engine>::new("random/{source_or_bytes}")
            .field(f("source_or_bytes", Kind::Str, "A source (platform, seal, all) or a byte count."))
            .field(f("bytes", Kind::Int, "The number of bytes (default 32)."))
            .field(f("source", Kind::Str, "platform, seal or all."))
            .field(f("format", Kind::Str, "base64 (default) or hex."))
            .op(Update, h!(random))
            .help("Generate random bytes.", "From the platform's generator."),
        Path::<Engine>::new("random")
            .field(f("bytes", Kind::Int, "The number of bytes (default 32)."))
            .field(f("source", Kind::Str, "platform, seal or all."))
            .field(f("format", Kind::Str, "base64 (default) or hex."))
            .op(Update, h!(random))
            .help("Generate random bytes.", "From the platform's generator."),
        Path::<Engine>::new("hash/{urlalgorithm}")
            .field(f("urlalgorithm", Kind::Str, "The hash algorithm."))
            .field(f("input", Kind::Str, "The base64 input."))
            .field(f("algorithm", Kind::Str, "sha2-224, sha2-256 (default), sha2-384, sha2-512, sha3-224, sha3-256, sha3-384 or sha3-512."))
            .field(f("format", Kind::Str, "hex (default) or base64."))
            .op(Update, h!(hash))
            .help("Hash data.", "The digest of the base64 input."),
        // `urlalgorithm` is declared (never captured) because the handler asks for it; an
        // undeclared field is a programming error (found by fuzzing, issue 12).
        Path::<Engine>::new("hash")
            .field(f("urlalgorithm", Kind::Str, "The hash algorithm, from the URL."))
            .field(f("input", Kind::Str, "The base64 input."))
            .field(f("algorithm", Kind::Str, "sha2-224, sha2-256 (default), sha2-384, sha2-512, sha3-224, sha3-256, sha3-384 or sha3-512."))
            .field(f("format", Kind::Str, "hex (default) or base64."))
            .op(Update, h!(hash))
            .help("Hash data.", "The digest of the base64 input."),
        Path::<Engine>::new("hmac/{name}/{urlalgorithm}")
            .field(name())
            .field(f("urlalgorithm", Kind::Str, "The hash algorithm."))
            .field(f("input", Kind::Str, "The base64 input."))
            .field(f("algorithm", Kind::Str, "The hash algorithm (default sha2-256)."))
            .field(key_version("The key version (default: the latest)."))
            .field(batch_input("A list of items, each with input and optionally reference."))
            .field(partial_code())
            .op(Update, h!(hmac))
            .help("HMAC data with a named key.", "Returns vault:v<N>:<base64 HMAC>."),
        Path::<Engine>::new("hmac/{name}")
            .field(name())
            .field(f("urlalgorithm", Kind::Str, "The hash algorithm."))
            .field(f("input", Kind::Str, "The base64 input."))
            .field(f("algorithm", Kind::Str, "The hash algorithm (default sha2-256)."))
            .field(key_version("The key version (default: the latest)."))
            .field(batch_input("A list of items, each with input and optionally reference."))
            .field(partial_code())
            .op(Update, h!(hmac))
            .help("HMAC data with a named key.", "Returns vault:v<N>:<base64 HMAC>."),
        sign_fields(Path::<Engine>::new("sign/{name}/{urlalgorithm}"))
            .field(key_version("The key version to sign with (default: the latest)."))
            .field(batch_input("A list of items, each with input and optionally context and reference."))
            .op(Update, h!(sign))
            .help("Sign data with a named key.", "Returns vault:v<N>:<base64 signature>."),
        sign_fields(Path::<Engine>::new("sign/{name}"))
            .field(key_version("The key version to sign with (default: the latest)."))
            .field(batch_input("A list of items, each with input and optionally context and reference."))
            .op(Update, h!(sign))
            .help("Sign data with a named key.", "Returns vault:v<N>:<base64 signature>."),
        sign_fields(Path::<Engine>::new("verify/{name}/{urlalgorithm}"))
            .field(f("signature", Kind::Str, "The signature (vault:v<N>:...)."))
            .field(f("hmac", Kind::Str, "The HMAC (vault:v<N>:...)."))
            .field(batch_input("A list of items, each with input, signature or hmac, and optionally context and reference."))
            .op(Update, h!(verify))
            .help("Verify a signature or HMAC.", "Returns valid: true or false."),
        sign_fields(Path::<Engine>::new("verify/{name}"))
            .field(f("signature", Kind::Str, "The signature (vault:v<N>:...)."))
            .field(f("hmac", Kind::Str, "The HMAC (vault:v<N>:...)."))
            .field(batch_input("A list of items, each with input, signature or hmac, and optionally context and reference."))
            .op(Update, h!(verify))
            .help("Verify a signature or HMAC.", "Returns valid: true or false."),
        Path::<Engine>::new("export/{type}/{name}/{version}")
            .field(f("type", Kind::Str, "encryption-key, signing-key, hmac-key or public-key."))
            .field(name())
            .field(f("version", Kind::Str, "A version number or latest."))
            .op(Read, h!(export))
            .help("Export a key version.", "Private material only for exportable keys; public keys always."),
        Path::<Engine>::new("export/{type}/{name}")
            .field(f("type", Kind::Str, "encryption-key, signing-key, hmac-key or public-key."))
            .field(name())
            .field(f("version", Kind::Str, "A version number or latest (all versions when absent)."))
            .op(Read, h!(export))
            .help("Export a key's versions.", "Private material only for exportable keys; public keys always."),
        Path::<Engine>::new("backup/{name}")
            .field(name())
            .op(Read, h!(backup))
            .help("Back up a named key.", "The key's policy and every version, base64 JSON in Vault's backup layout; needs exportable and allow_plaintext_backup."),
        Path::<Engine>::new("restore/{name}")
            .field(name())
            .field(f("backup", Kind::Str, "The backup to restore."))
            .field(f("force", Kind::Bool, "Replace a key of the same name."))
            .op(Update, h!(restore))
            .help("Restore a key from a backup, under a new name.", "The key's name from the URL."),
        Path::<Engine>::new("restore")
            .field(f("backup", Kind::Str, "The backup to restore."))
            .field(f("name", Kind::Str, "Restore under this name instead of the backup's."))
            .field(f("force", Kind::Bool, "Replace a key of the same name."))
            .op(Update, h!(restore))
            .help("Restore a key from a backup.", "Under the backup's name unless name is given."),
        Path::<Engine>::new("cache-config")
            .field(f("size", Kind::Int, "The most keys cached in memory (0: no limit; else at least 10)."))
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
