//! Storage layout and versioned records, all under the mount's view:
//!
//! - `issuers/<uuid>`: one CA key (PKCS#8, base64) with its name and public key;
//! - `config/issuers`: which issuer is the default;
//! - `roles/<name>`: a role (`roles.rs` owns its fields);
//! - `otp/<hmac>`: an unused one-time password, keyed by HMAC-SHA256(salt, otp), so the OTP
//!   itself is never a storage key;
//! - `salt`: the mount's HMAC key for OTPs;
//! - `config/zeroaddress`: the roles that accept any client address.

use serde::{Deserialize, Serialize};
use tresor_sdk::record::{self, Versioned};
use tresor_sdk::{LogicalError, Result, Storage};
use zeroize::{Zeroize, Zeroizing};

use crate::keys::{Algo, CaKey};

pub const CONFIG_ISSUERS: &str = "config/issuers";
pub const ZEROADDRESS: &str = "config/zeroaddress";
pub const SALT: &str = "salt";
pub const ISSUERS: &str = "issuers/";
pub const ROLES: &str = "roles/";

pub fn issuer_key(id: &str) -> String {
    format!("{ISSUERS}{id}")
}

pub fn role_key(name: &str) -> String {
    format!("{ROLES}{name}")
}

pub fn otp_key(hash: &str) -> String {
    format!("otp/{hash}")
}

/// Decodes a versioned record stored at `key`.
pub async fn load<T: serde::de::DeserializeOwned + Versioned>(
    s: &dyn Storage,
    what: &str,
    key: &str,
) -> Result<Option<T>> {
    match s.get(key).await? {
        None => Ok(None),
        Some(bytes) => {
            let bytes = Zeroizing::new(bytes);
            record::decode(what, &bytes)
                .map(Some)
                .map_err(LogicalError::Internal)
        }
    }
}

pub async fn save<T: Serialize>(s: &dyn Storage, key: &str, value: &T) -> Result<()> {
    let bytes = serde_json::to_vec(value).map_err(LogicalError::internal)?;
    s.put(key, bytes).await
}

/// One CA key of the mount.
#[derive(Serialize, Deserialize)]
pub struct IssuerRecord {
    pub version: u32,
    pub id: String,
    #[serde(default)]
    pub name: String,
    pub algo: Algo,
    /// PKCS#8 DER, base64.
    pub private_key: String,
    /// `authorized_keys` form.
    pub public_key: String,
}

impl Versioned for IssuerRecord {
    const FORMAT: u32 = 1;
    fn format(&self) -> u32 {
        self.version
    }
}

impl Drop for IssuerRecord {
    fn drop(&mut self) {
        self.private_key.zeroize();
    }
}

impl std::fmt::Debug for IssuerRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuerRecord")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("algo", &self.algo)
            .field("private_key", &"[redacted]")
            .finish()
    }
}

impl IssuerRecord {
    pub fn new(id: String, name: String, key: &CaKey) -> IssuerRecord {
        use base64::Engine as _;
        IssuerRecord {
            version: IssuerRecord::FORMAT,
            id,
            name,
            algo: key.algo,
            private_key: base64::engine::general_purpose::STANDARD.encode(key.pkcs8()),
            public_key: key.public_openssh(),
        }
    }

    pub fn key(&self) -> Result<CaKey> {
        use base64::Engine as _;
        let der = base64::engine::general_purpose::STANDARD
            .decode(self.private_key.as_bytes())
            .map_err(|_| LogicalError::internal("stored CA key is not base64"))?;
        CaKey::from_pkcs8(self.algo, Zeroizing::new(der)).map_err(LogicalError::Internal)
    }
}

/// Which issuer signs when a role names `default`.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct DefaultIssuer {
    pub version: u32,
    #[serde(default)]
    pub default: String,
}

impl Versioned for DefaultIssuer {
    const FORMAT: u32 = 1;
    fn format(&self) -> u32 {
        self.version
    }
}

/// An issued, unused OTP.
#[derive(Debug, Serialize, Deserialize)]
pub struct OtpEntry {
    pub version: u32,
    pub username: String,
    pub ip: String,
    pub role_name: String,
}

impl Versioned for OtpEntry {
    const FORMAT: u32 = 1;
    fn format(&self) -> u32 {
        self.version
    }
}

/// `config/zeroaddress`.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct ZeroAddress {
    pub version: u32,
    pub roles: Vec<String>,
}

impl Versioned for ZeroAddress {
    const FORMAT: u32 = 1;
    fn format(&self) -> u32 {
        self.version
    }
}
