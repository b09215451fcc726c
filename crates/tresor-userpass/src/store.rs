//! The stored user: `user/<username>` in the mount's view, one versioned JSON record holding
//! the bcrypt hash and the `token_*` settings. The password itself is never stored.

use serde::{Deserialize, Serialize};
use tresor_sdk::record::{Versioned, decode};
use tresor_sdk::token::TokenParams;
use tresor_sdk::{LogicalError, Result, Storage};

const PREFIX: &str = "user/";

/// One user.
#[derive(Clone, Serialize, Deserialize)]
pub(crate) struct User {
    /// The record's format ([`Versioned`]).
    pub(crate) version: u32,
    /// bcrypt hash (`$2b$10$...`) of the password.
    pub(crate) password_hash: String,
    #[serde(flatten)]
    pub(crate) token: TokenParams,
}

impl Versioned for User {
    const FORMAT: u32 = 1;
    fn format(&self) -> u32 {
        self.version
    }
}

/// Never prints the password hash.
impl std::fmt::Debug for User {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("User")
            .field("version", &self.version)
            .field("password_hash", &"<redacted>")
            .field("token", &self.token)
            .finish()
    }
}

impl User {
    pub(crate) fn new(password_hash: String) -> Self {
        User {
            version: User::FORMAT,
            password_hash,
            token: TokenParams::default(),
        }
    }
}

pub(crate) async fn load(s: &dyn Storage, username: &str) -> Result<Option<User>> {
    match s.get(&format!("{PREFIX}{username}")).await? {
        None => Ok(None),
        Some(bytes) => decode::<User>("userpass user", &bytes)
            .map(Some)
            .map_err(LogicalError::Internal),
    }
}

pub(crate) async fn save(s: &dyn Storage, username: &str, u: &User) -> Result<()> {
    tresor_sdk::put_json(s, &format!("{PREFIX}{username}"), u).await
}

pub(crate) async fn delete(s: &dyn Storage, username: &str) -> Result<()> {
    s.delete(&format!("{PREFIX}{username}")).await
}

pub(crate) async fn list(s: &dyn Storage) -> Result<Vec<String>> {
    let mut names = s.list(PREFIX).await?;
    names.retain(|n| !n.ends_with('/'));
    names.sort();
    Ok(names)
}
