//! The key types of transit and what each can do.

use crate::util::bad;
use tresor_sdk::Result;

/// A transit key type, by Vault's name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeyType {
    Aes128Gcm96,
    Aes256Gcm96,
    ChaCha20Poly1305,
    Ed25519,
    EcdsaP256,
    EcdsaP384,
    EcdsaP521,
    Rsa2048,
    Rsa3072,
    Rsa4096,
    Hmac,
}

pub(crate) const ALL: [KeyType; 11] = [
    KeyType::Aes128Gcm96,
    KeyType::Aes256Gcm96,
    KeyType::ChaCha20Poly1305,
    KeyType::Ed25519,
    KeyType::EcdsaP256,
    KeyType::EcdsaP384,
    KeyType::EcdsaP521,
    KeyType::Rsa2048,
    KeyType::Rsa3072,
    KeyType::Rsa4096,
    KeyType::Hmac,
];

impl KeyType {
    pub(crate) fn parse(s: &str) -> Result<KeyType> {
        ALL.into_iter()
            .find(|t| t.name() == s)
            .ok_or_else(|| bad(format!("unknown key type {s}")))
    }

    pub(crate) const fn name(self) -> &'static str {
        match self {
            KeyType::Aes128Gcm96 => "aes128-gcm96",
            KeyType::Aes256Gcm96 => "aes256-gcm96",
            KeyType::ChaCha20Poly1305 => "chacha20-poly1305",
            KeyType::Ed25519 => "ed25519",
            KeyType::EcdsaP256 => "ecdsa-p256",
            KeyType::EcdsaP384 => "ecdsa-p384",
            KeyType::EcdsaP521 => "ecdsa-p521",
            KeyType::Rsa2048 => "rsa-2048",
            KeyType::Rsa3072 => "rsa-3072",
            KeyType::Rsa4096 => "rsa-4096",
            KeyType::Hmac => "hmac",
        }
    }

    /// Vault's numeric id of the type, used in its backup format.
    pub(crate) const fn vault_id(self) -> u32 {
        match self {
            KeyType::Aes256Gcm96 => 0,
            KeyType::EcdsaP256 => 1,
            KeyType::Ed25519 => 2,
            KeyType::Rsa2048 => 3,
            KeyType::Rsa4096 => 4,
            KeyType::ChaCha20Poly1305 => 5,
            KeyType::EcdsaP384 => 6,
            KeyType::EcdsaP521 => 7,
            KeyType::Aes128Gcm96 => 8,
            KeyType::Rsa3072 => 9,
            KeyType::Hmac => 11,
        }
    }

    pub(crate) fn from_vault_id(id: u32) -> Option<KeyType> {
        ALL.into_iter().find(|t| t.vault_id() == id)
    }

    /// An AEAD type: encrypt, decrypt, rewrap, datakey.
    pub(crate) const fn is_aead(self) -> bool {
        matches!(
            self,
            KeyType::Aes128Gcm96 | KeyType::Aes256Gcm96 | KeyType::ChaCha20Poly1305
        )
    }

    pub(crate) const fn is_rsa(self) -> bool {
        matches!(self, KeyType::Rsa2048 | KeyType::Rsa3072 | KeyType::Rsa4096)
    }

    pub(crate) const fn is_ecdsa(self) -> bool {
        matches!(
            self,
            KeyType::EcdsaP256 | KeyType::EcdsaP384 | KeyType::EcdsaP521
        )
    }

    pub(crate) const fn supports_encryption(self) -> bool {
        self.is_aead() || self.is_rsa()
    }

    pub(crate) const fn supports_signing(self) -> bool {
        matches!(self, KeyType::Ed25519) || self.is_ecdsa() || self.is_rsa()
    }

    /// Types whose key can be derived from a context (HKDF).
    pub(crate) const fn supports_derivation(self) -> bool {
        self.is_aead() || matches!(self, KeyType::Ed25519)
    }

    pub(crate) const fn asymmetric(self) -> bool {
        self.supports_signing()
    }

    /// Bytes of an AEAD type's key.
    pub(crate) const fn aead_key_len(self) -> usize {
        match self {
            KeyType::Aes128Gcm96 => 16,
            _ => 32,
        }
    }

    /// The name Vault shows for an asymmetric key's version.
    pub(crate) const fn public_name(self) -> &'static str {
        match self {
            KeyType::Ed25519 => "ed25519",
            KeyType::EcdsaP256 => "P-256",
            KeyType::EcdsaP384 => "P-384",
            KeyType::EcdsaP521 => "P-521",
            KeyType::Rsa2048 => "rsa-2048",
            KeyType::Rsa3072 => "rsa-3072",
            KeyType::Rsa4096 => "rsa-4096",
            _ => "",
        }
    }
}
