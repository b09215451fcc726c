//! The typed inputs of the transit engine's paths (`tresor_sdk::input!`): each path declares
//! its fields here, in the order its help lists them, and its handler reads them as struct
//! fields. Several paths share a group (the key's `name`, the settings of a new key, the
//! signing options); a path declares its groups in order with `.input::<A>().input::<B>()`.
//!
//! Settings of an existing key change only when sent (`keys/:name/config`: `Opt` kinds).
//!
//! `batch_input` is declared with [`crate::BatchInput`] (the handler takes it out of the
//! request itself); its items, and a single request's fields, are read as the typed items of
//! [`crate::batch`] ([`crate::batch::CryptItem`], [`crate::batch::SignItem`]).

tresor_sdk::input! {
    /// The key a path acts on (`keys/:name`, `encrypt/:name`, ...).
    pub(crate) struct KeyName {
        name: Str, "Name of the key.";
    }
}

tresor_sdk::input! {
    /// The settings of a new key that both `keys/:name` and an upserting `encrypt/:name` take.
    pub(crate) struct NewKeyInput {
        kind("type"): Str, "The key type: aes128-gcm96, aes256-gcm96 (default), chacha20-poly1305, ed25519, ecdsa-p256, ecdsa-p384, ecdsa-p521, rsa-2048, rsa-3072, rsa-4096 or hmac.", default = "aes256-gcm96";
        convergent_encryption: Bool, "The same plaintext and context give the same ciphertext (needs derived).";
    }
}

tresor_sdk::input! {
    /// `keys/:name`: the rest of a new key's settings (a key that exists is left as it is).
    pub(crate) struct KeyInput {
        derived: Bool, "Derive a key per context (HKDF-SHA256); every operation then needs a context.";
        exportable: Bool, "Allow the key to be exported. Cannot be undone.";
        allow_plaintext_backup: Bool, "Allow a plaintext backup of the key. Cannot be undone.";
        auto_rotate_period: Duration, "Rotate the key automatically this often (0 disables; at least 1h).";
        key_size: OptInt, "hmac keys: the key size in bytes (32 to 512; default 32).";
        context: Str, "Base64 context for key derivation; required for derived keys.";
    }
}

tresor_sdk::input! {
    /// `keys/:name/config`: only the settings sent change.
    pub(crate) struct KeyConfigInput {
        min_decryption_version: OptInt, "The oldest version that may decrypt (and verify).";
        min_encryption_version: OptInt, "The oldest version that may encrypt (0: the latest only by default).";
        deletion_allowed: OptBool, "Whether the key may be deleted.";
        exportable: OptBool, "Allow the key to be exported. Cannot be undone.";
        allow_plaintext_backup: OptBool, "Allow a plaintext backup. Cannot be undone.";
        auto_rotate_period: OptDuration, "Rotate automatically this often (0 disables; at least 1h).";
    }
}

tresor_sdk::input! {
    /// `keys/:name/trim`.
    pub(crate) struct TrimInput {
        min_available_version: Int, "Versions below this are deleted for good (at most min_decryption_version and min_encryption_version).";
    }
}

tresor_sdk::input! {
    /// `keys/:name/import` (bring your own key).
    pub(crate) struct ImportInput {
        ciphertext: Str, "Base64: the RSA-OAEP-wrapped AES-256 key (wrapping_key), then the key to import wrapped with it (AES-KWP, RFC 5649).";
        hash_function: Str, "The OAEP hash: SHA256 (default), SHA1, SHA384 or SHA512.";
        kind("type"): Str, "The key type (default aes256-gcm96).", default = "aes256-gcm96";
        derived: Bool, "Derive a key per context.";
        exportable: Bool, "Allow the key to be exported.";
        allow_plaintext_backup: Bool, "Allow a plaintext backup.";
        allow_rotation: Bool, "Allow the imported key to be rotated in Tresor.";
        auto_rotate_period: Duration, "Rotate automatically this often (needs allow_rotation).";
        context: Str, "Base64 context for key derivation; required for derived keys.";
    }
}

tresor_sdk::input! {
    /// The status of a batch with failed items (`encrypt/`, `decrypt/`, `rewrap/`, `hmac/`;
    /// `sign/` and `verify/` have it in [`SignInput`]).
    pub(crate) struct PartialInput {
        partial_failure_response_code: Int, "The HTTP status of a batch in which some items failed and others succeeded (default 400).";
    }
}

tresor_sdk::input! {
    /// `encrypt/:name`: a single item's fields (see [`crate::batch::CryptItem`]).
    pub(crate) struct EncryptInput {
        plaintext: OptStr, "The base64 plaintext.";
        context: Str, "Base64 context for key derivation; required for derived keys.";
        nonce: Str, "Not allowed by current key versions (convergent keys derive it).";
        key_version: Int, "The key version to encrypt with (default: the latest; not below min_encryption_version).";
        associated_data: Str, "Base64 data authenticated with the ciphertext (AEAD types); needed again to decrypt.";
    }
}

tresor_sdk::input! {
    /// `decrypt/:name`: a single item's fields.
    pub(crate) struct DecryptInput {
        ciphertext: Str, "The ciphertext (vault:v<N>:...).";
        context: Str, "Base64 context for key derivation; required for derived keys.";
        nonce: Str, "Ignored by current key versions.";
        associated_data: Str, "The base64 associated data given to encrypt.";
    }
}

tresor_sdk::input! {
    /// `rewrap/:name`: a single item's fields. `associated_data` was always used (taken from
    /// the request as sent) but not declared, so a rewrap with it was warned it was ignored.
    pub(crate) struct RewrapInput {
        ciphertext: Str, "The ciphertext to move to the latest (or key_version) version.";
        context: Str, "Base64 context for key derivation; required for derived keys.";
        nonce: Str, "Ignored by current key versions.";
        key_version: Int, "The key version to encrypt with (default: the latest).";
        associated_data: Str, "The base64 associated data given to encrypt; the new ciphertext is bound to it too.";
    }
}

tresor_sdk::input! {
    /// `datakey/:plaintext/:name`.
    pub(crate) struct DatakeyInput {
        plaintext: Str, "plaintext (return the key too) or wrapped (only its ciphertext).";
        context: Str, "Base64 context for key derivation; required for derived keys.";
        nonce: Str, "Not allowed by current key versions.";
        bits: Int, "Key size in bits: 128, 256 (default) or 512.", default = 256;
        key_version: Int, "The key version to encrypt with (default: the latest).";
    }
}

tresor_sdk::input! {
    /// `random/:source/:urlbytes`.
    pub(crate) struct RandomUrlInput {
        source: Str, "platform, seal or all.";
        urlbytes: Str, "The number of bytes.";
        bytes: OptInt, "The number of bytes (default 32).";
        format: Str, "base64 (default) or hex.";
    }
}

tresor_sdk::input! {
    /// `random/:source_or_bytes`.
    pub(crate) struct RandomOneInput {
        source_or_bytes: Str, "A source (platform, seal, all) or a byte count.";
        bytes: OptInt, "The number of bytes (default 32).";
        source: Str, "platform, seal or all.";
        format: Str, "base64 (default) or hex.";
    }
}

tresor_sdk::input! {
    /// `random`.
    pub(crate) struct RandomInput {
        bytes: OptInt, "The number of bytes (default 32).";
        source: Str, "platform, seal or all.";
        format: Str, "base64 (default) or hex.";
    }
}

tresor_sdk::input! {
    /// `hash/:urlalgorithm`.
    pub(crate) struct HashUrlInput {
        urlalgorithm: Str, "The hash algorithm.";
        input: Str, "The base64 input.";
        algorithm: Str, "sha2-224, sha2-256 (default), sha2-384, sha2-512, sha3-224, sha3-256, sha3-384 or sha3-512.";
        format: Str, "hex (default) or base64.";
    }
}

tresor_sdk::input! {
    /// `hash`: as [`HashUrlInput`]; `urlalgorithm` may only come in the body here.
    pub(crate) struct HashInput {
        urlalgorithm: Str, "The hash algorithm, from the URL.";
        input: Str, "The base64 input.";
        algorithm: Str, "sha2-224, sha2-256 (default), sha2-384, sha2-512, sha3-224, sha3-256, sha3-384 or sha3-512.";
        format: Str, "hex (default) or base64.";
    }
}

tresor_sdk::input! {
    /// `hmac/:name[/:urlalgorithm]`: a single item's `input`, and the key version and hash of
    /// the whole request (see [`crate::batch::SignItem`]).
    pub(crate) struct HmacInput {
        urlalgorithm: Str, "The hash algorithm.";
        input: Str, "The base64 input.";
        algorithm: Str, "The hash algorithm (default sha2-256).";
        key_version: Int, "The key version (default: the latest).";
    }
}

tresor_sdk::input! {
    /// `sign/` and `verify/`: a single item's `input` and `context`, and the signing options
    /// of the whole request.
    pub(crate) struct SignInput {
        input: Str, "The base64 input.";
        context: Str, "Base64 context for key derivation; required for derived keys.";
        urlalgorithm: Str, "The hash algorithm, from the URL.";
        hash_algorithm: Str, "sha1, sha2-224, sha2-256 (default), sha2-384, sha2-512, sha3-224, sha3-256, sha3-384 or sha3-512; ignored by ed25519. RSA signs with sha2-256, sha2-384 or sha2-512.";
        algorithm: Str, "Deprecated: use hash_algorithm.";
        prehashed: Bool, "The input is already the hash (ECDSA and RSA).";
        signature_algorithm: Str, "RSA: pss (default) or pkcs1v15.";
        marshaling_algorithm: Str, "asn1 (default) or jws (ECDSA r||s; base64url signature).";
        salt_length: Str, "RSA-PSS salt: auto or 0 (the longest; default), hash or -1, or a length in bytes.";
        partial_failure_response_code: Int, "The HTTP status of a batch in which some items failed and others succeeded (default 400).";
    }
}

tresor_sdk::input! {
    /// `sign/:name[/:urlalgorithm]`: the version to sign with.
    pub(crate) struct SignVersionInput {
        key_version: Int, "The key version to sign with (default: the latest).";
    }
}

tresor_sdk::input! {
    /// `verify/:name[/:urlalgorithm]`: a single item's signature or HMAC.
    pub(crate) struct VerifyInput {
        signature: Str, "The signature (vault:v<N>:...).";
        hmac: Str, "The HMAC (vault:v<N>:...).";
    }
}

tresor_sdk::input! {
    /// `export/:type/:name/:version`.
    pub(crate) struct ExportVersionInput {
        kind("type"): Str, "encryption-key, signing-key, hmac-key or public-key.";
        name: Str, "Name of the key.";
        version: Str, "A version number or latest.";
    }
}

tresor_sdk::input! {
    /// `export/:type/:name`.
    pub(crate) struct ExportInput {
        kind("type"): Str, "encryption-key, signing-key, hmac-key or public-key.";
        name: Str, "Name of the key.";
        version: Str, "A version number or latest (all versions when absent).";
    }
}

tresor_sdk::input! {
    /// `restore/:name` (the name from [`KeyName`]).
    pub(crate) struct RestoreNamedInput {
        backup: Str, "The backup to restore.";
        force: Bool, "Replace a key of the same name.";
    }
}

tresor_sdk::input! {
    /// `restore`.
    pub(crate) struct RestoreInput {
        backup: Str, "The backup to restore.";
        name: Str, "Restore under this name instead of the backup's.";
        force: Bool, "Replace a key of the same name.";
    }
}

tresor_sdk::input! {
    /// `cache-config`.
    pub(crate) struct CacheConfigInput {
        size: Int, "The most keys cached in memory (0: no limit; else at least 10).";
    }
}

/// The `batch_input` field of each path that takes one: a list of items (declared
/// [`in_request`](tresor_sdk::framework::Field::in_request) by [`crate::BatchInput`]; the
/// handler takes it out of the request, see [`crate::batch::items`]).
pub(crate) mod batch {
    tresor_sdk::input! {
        /// `encrypt/:name`.
        pub(crate) struct Encrypt {
            batch_input: Raw, "A list of items, each with plaintext and optionally context, nonce, key_version, associated_data and reference.";
        }
    }
    tresor_sdk::input! {
        /// `decrypt/:name`.
        pub(crate) struct Decrypt {
            batch_input: Raw, "A list of items, each with ciphertext and optionally context, associated_data and reference.";
        }
    }
    tresor_sdk::input! {
        /// `rewrap/:name`.
        pub(crate) struct Rewrap {
            batch_input: Raw, "A list of items, each with ciphertext and optionally context, key_version and reference.";
        }
    }
    tresor_sdk::input! {
        /// `hmac/:name[/:urlalgorithm]`.
        pub(crate) struct Hmac {
            batch_input: Raw, "A list of items, each with input and optionally reference.";
        }
    }
    tresor_sdk::input! {
        /// `sign/:name[/:urlalgorithm]`.
        pub(crate) struct Sign {
            batch_input: Raw, "A list of items, each with input and optionally context and reference.";
        }
    }
    tresor_sdk::input! {
        /// `verify/:name[/:urlalgorithm]`.
        pub(crate) struct Verify {
            batch_input: Raw, "A list of items, each with input, signature or hmac, and optionally context and reference.";
        }
    }
}
