//! The engine's shared state (the clock) and what several paths need: issuer lookup by
//! reference, name checks, random values, and the mount's OTP salt.

use std::sync::Arc;

use aws_lc_rs::rand::SecureRandom;
use tresor_sdk::clock::Clock;
use tresor_sdk::{LogicalError, Result, Storage};

use crate::store::{self, DefaultIssuer, IssuerRecord};

pub struct Engine {
    pub clock: Arc<dyn Clock>,
}

impl Engine {
    pub fn now(&self) -> i64 {
        tresor_sdk::clock::unix(self.clock.now())
    }
}

/// Fills `buf` from the system's CSPRNG.
pub fn random(buf: &mut [u8]) -> Result<()> {
    aws_lc_rs::rand::SystemRandom::new()
        .fill(buf)
        .map_err(|_| LogicalError::internal("random number generator failed"))
}

/// Vault's rule for role and issuer names: word characters, with `-`, `.` (and `@` for
/// roles) inside.
pub fn valid_name(name: &str, allow_at: bool) -> bool {
    let word = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let inner = |c: char| word(c) || c == '-' || c == '.' || (allow_at && c == '@');
    let chars: Vec<char> = name.chars().collect();
    match chars.as_slice() {
        [] => false,
        [c] => word(*c),
        [first, mid @ .., last] => word(*first) && word(*last) && mid.iter().all(|c| inner(*c)),
    }
}

/// The default issuer's id, if one is configured.
pub async fn default_issuer_id(s: &dyn Storage) -> Result<Option<String>> {
    Ok(
        store::load::<DefaultIssuer>(s, "issuer configuration", store::CONFIG_ISSUERS)
            .await?
            .map(|d| d.default)
            .filter(|d| !d.is_empty()),
    )
}

/// The issuers of the mount, in storage order.
pub async fn all_issuers(s: &dyn Storage) -> Result<Vec<IssuerRecord>> {
    let mut out = Vec::new();
    for id in s.list(store::ISSUERS).await? {
        if let Some(r) = store::load::<IssuerRecord>(s, "issuer", &store::issuer_key(&id)).await? {
            out.push(r);
        }
    }
    Ok(out)
}

/// Resolves an issuer reference: `default`, an issuer id or an issuer name.
pub async fn resolve_issuer(s: &dyn Storage, reference: &str) -> Result<IssuerRecord> {
    let reference = reference.trim();
    if reference.is_empty() || reference == "default" {
        let id = default_issuer_id(s)
            .await?
            .ok_or_else(|| LogicalError::invalid("no default issuer currently configured"))?;
        return store::load::<IssuerRecord>(s, "issuer", &store::issuer_key(&id))
            .await?
            .ok_or_else(|| LogicalError::invalid("no default issuer currently configured"));
    }
    if !reference.contains('/')
        && let Some(r) =
            store::load::<IssuerRecord>(s, "issuer", &store::issuer_key(reference)).await?
    {
        return Ok(r);
    }
    all_issuers(s)
        .await?
        .into_iter()
        .find(|r| r.name == reference)
        .ok_or_else(|| {
            LogicalError::invalid(format!("unable to find issuer for reference: {reference}"))
        })
}

/// The mount's HMAC key for OTPs, created on first use (exactly once, however many
/// requests race to create it).
pub async fn otp_salt(s: &dyn Storage) -> Result<zeroize::Zeroizing<Vec<u8>>> {
    loop {
        if let Some(v) = s.get(store::SALT).await? {
            return Ok(zeroize::Zeroizing::new(v));
        }
        let mut salt = zeroize::Zeroizing::new(vec![0u8; 32]);
        random(&mut salt)?;
        let created = s
            .transaction_if(
                vec![(store::SALT.to_owned(), 0)],
                vec![(store::SALT.to_owned(), Some(salt.to_vec()))],
            )
            .await?;
        if created {
            return Ok(salt);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::valid_name;

    #[test]
    fn names_follow_vaults_pattern() {
        for (n, at, ok) in [
            ("dev", false, true),
            ("a", false, true),
            ("my-role.v2", false, true),
            ("ops@example", true, true),
            ("ops@example", false, false),
            ("-x", false, false),
            ("x-", false, false),
            ("a/b", false, false),
            ("", false, false),
        ] {
            assert_eq!(valid_name(n, at), ok, "{n}");
        }
    }
}
