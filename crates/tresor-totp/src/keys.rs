//! Keys and codes: `keys/:name` (generate with a barcode and URL, import from an
//! `otpauth://` URL or a base32 key, read, list, delete) and `code/:name` (generate the
//! current code; validate one). A validated code is remembered under `used/<name>/<code>`
//! until it can no longer validate, and the remembering is a conditional write on that
//! entry's revision: of two validations of one code racing, on this server or on another
//! sharing the storage, exactly one is valid.

use std::sync::Arc;

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tresor_sdk::clock::Clock;
use tresor_sdk::framework::Fields;
use tresor_sdk::record::{self, Versioned};
use tresor_sdk::{LogicalError, Request, Response, Result, Storage};
use zeroize::{Zeroize, Zeroizing};

use crate::png;
use crate::totp::{self, Algorithm};
use crate::{CodeInput, KeyInput};

pub struct Engine {
    pub clock: Arc<dyn Clock>,
}

pub const KEYS: &str = "keys/";
pub const USED: &str = "used/";

fn key_path(name: &str) -> String {
    format!("{KEYS}{name}")
}

/// One TOTP key, as stored.
#[derive(Serialize, Deserialize)]
pub struct KeyRecord {
    pub version: u32,
    /// The shared secret, base32.
    pub key: String,
    pub issuer: String,
    pub account_name: String,
    pub period: u64,
    pub algorithm: Algorithm,
    pub digits: u32,
    pub skew: u64,
}

impl Versioned for KeyRecord {
    const FORMAT: u32 = 1;
    fn format(&self) -> u32 {
        self.version
    }
}

impl Drop for KeyRecord {
    fn drop(&mut self) {
        self.key.zeroize();
    }
}

impl std::fmt::Debug for KeyRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRecord")
            .field("issuer", &self.issuer)
            .field("account_name", &self.account_name)
            .field("algorithm", &self.algorithm)
            .field("key", &"[redacted]")
            .finish_non_exhaustive()
    }
}

/// A code that validated, and until when it stays spent.
#[derive(Debug, Serialize, Deserialize)]
struct Used {
    version: u32,
    until: i64,
}

impl Versioned for Used {
    const FORMAT: u32 = 1;
    fn format(&self) -> u32 {
        self.version
    }
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '@'))
}

async fn load_key(s: &dyn Storage, name: &str) -> Result<Option<KeyRecord>> {
    match s.get(&key_path(name)).await? {
        None => Ok(None),
        Some(bytes) => {
            let bytes = Zeroizing::new(bytes);
            record::decode("totp key", &bytes)
                .map(Some)
                .map_err(LogicalError::Internal)
        }
    }
}

/// The settings a write gives, checked as Vault checks them.
struct Settings {
    issuer: String,
    account_name: String,
    period: u64,
    algorithm: Algorithm,
    digits: u32,
    skew: u64,
}

fn settings(f: &KeyInput, url: Option<&totp::UrlParts>) -> Result<Settings> {
    let algorithm_s = url
        .and_then(|u| u.algorithm.clone())
        .or_else(|| f.algorithm.clone())
        .unwrap_or_else(|| "SHA1".into());
    let algorithm = Algorithm::parse(&algorithm_s)
        .ok_or_else(|| LogicalError::invalid("the algorithm value is not valid"))?;
    let digits = match url.and_then(|u| u.digits.as_ref()) {
        Some(d) => d
            .trim()
            .parse::<i64>()
            .map_err(|_| LogicalError::invalid("the digits value can only be 6 or 8"))?,
        None => f.digits,
    };
    if digits != 6 && digits != 8 {
        return Err(LogicalError::invalid("the digits value can only be 6 or 8"));
    }
    let period = match url.and_then(|u| u.period.as_ref()) {
        Some(p) => tresor_sdk::duration::parse(p.trim())
            .map_err(|_| LogicalError::invalid("the period value must be greater than zero"))?
            .as_secs(),
        None => f.period.as_secs(),
    };
    if period == 0 {
        return Err(LogicalError::invalid(
            "the period value must be greater than zero",
        ));
    }
    let skew = f.skew;
    if skew != 0 && skew != 1 {
        return Err(LogicalError::invalid("the skew value must be 0 or 1"));
    }
    Ok(Settings {
        issuer: url
            .and_then(|u| u.issuer.clone())
            .unwrap_or_else(|| f.issuer.clone()),
        account_name: match url {
            Some(u) if !u.account_name.is_empty() => u.account_name.clone(),
            _ => f.account_name.clone(),
        },
        period,
        algorithm,
        digits: digits as u32,
        skew: skew as u64,
    })
}

impl Engine {
    fn now(&self) -> i64 {
        tresor_sdk::clock::unix(self.clock.now())
    }

    pub async fn key_write(&self, req: Request, f: Fields) -> Result<Option<Response>> {
        let mut f: KeyInput = f.input();
        let name = std::mem::take(&mut f.name);
        if !valid_name(&name) {
            return Err(LogicalError::invalid(format!(
                "invalid key name {name:?}: letters, digits, '_', '-', '.' and '@'"
            )));
        }
        let generate = f.generate;
        let (record, secret_b32) = if generate {
            let s = settings(&f, None)?;
            if s.issuer.trim().is_empty() {
                return Err(LogicalError::invalid(
                    "the issuer value is required for generated keys",
                ));
            }
            if s.account_name.trim().is_empty() {
                return Err(LogicalError::invalid(
                    "the account_name value is required for generated keys",
                ));
            }
            let size = f.key_size;
            if !(1..=512).contains(&size) {
                return Err(LogicalError::invalid(
                    "the key_size value must be between 1 and 512 bytes",
                ));
            }
            let mut raw = Zeroizing::new(vec![0u8; size as usize]);
            aws_lc_rs::rand::fill(&mut raw)
                .map_err(|_| LogicalError::internal("random number generator failed"))?;
            let b32 = totp::base32_encode(&raw);
            (s, b32)
        } else {
            let url_text = std::mem::take(&mut f.url);
            let parts = if url_text.trim().is_empty() {
                None
            } else {
                Some(
                    totp::parse_url(&url_text)
                        .map_err(|e| LogicalError::invalid(format!("invalid url: {e}")))?,
                )
            };
            let key_text: Zeroizing<String> = match &parts {
                Some(p) => p.secret.clone(),
                None => Zeroizing::new(std::mem::take(&mut f.key)),
            };
            if key_text.trim().is_empty() {
                return Err(LogicalError::invalid("the key value is required"));
            }
            let raw = totp::base32_decode(key_text.trim())
                .map_err(|e| LogicalError::invalid(format!("invalid key value: {e}")))?;
            let s = settings(&f, parts.as_ref())?;
            (s, totp::base32_encode(&raw))
        };
        let stored = KeyRecord {
            version: KeyRecord::FORMAT,
            key: secret_b32.to_string(),
            issuer: record.issuer.clone(),
            account_name: record.account_name.clone(),
            period: record.period,
            algorithm: record.algorithm,
            digits: record.digits,
            skew: record.skew,
        };
        let bytes = Zeroizing::new(serde_json::to_vec(&stored).map_err(LogicalError::internal)?);
        let s = &*req.storage;
        // A key written anew starts with no spent codes.
        s.delete_prefix(&format!("{USED}{name}/")).await?;
        s.put(&key_path(&name), bytes.to_vec()).await?;
        if !generate || !f.exported {
            return Ok(None);
        }
        let url = totp::build_url(
            &stored.issuer,
            &stored.account_name,
            &secret_b32,
            stored.algorithm,
            stored.digits,
            stored.period,
        );
        let mut resp = Response::json(json!({"url": url.as_str()}));
        let qr_size = f.qr_size;
        if qr_size < 0 {
            return Err(LogicalError::invalid(
                "the qr_size value must not be negative",
            ));
        }
        if qr_size > 0 {
            let png =
                png::qr_png(&url, qr_size.min(4096) as usize).map_err(LogicalError::Internal)?;
            let b64 = base64::engine::general_purpose::STANDARD.encode(png);
            if let Some(d) = resp.data.as_mut() {
                d.insert("barcode".into(), json!(b64));
            }
        }
        Ok(Some(resp))
    }

    pub async fn key_read(&self, req: Request, f: Fields) -> Result<Option<Response>> {
        Ok(load_key(&*req.storage, &f.input::<KeyInput>().name)
            .await?
            .map(|k| {
                Response::json(json!({
                    "account_name": k.account_name,
                    "algorithm": k.algorithm.name(),
                    "digits": k.digits,
                    "issuer": k.issuer,
                    "period": k.period,
                }))
            }))
    }

    pub async fn key_delete(&self, req: Request, f: Fields) -> Result<Option<Response>> {
        let name = f.input::<KeyInput>().name;
        let s = &*req.storage;
        s.delete(&key_path(&name)).await?;
        s.delete_prefix(&format!("{USED}{name}/")).await?;
        Ok(None)
    }

    pub async fn key_list(&self, req: Request, _f: Fields) -> Result<Option<Response>> {
        let keys = req.storage.list(KEYS).await?;
        Ok(Some(Response::list(keys)))
    }

    async fn key_or_unknown(&self, s: &dyn Storage, name: &str) -> Result<KeyRecord> {
        load_key(s, name)
            .await?
            .ok_or_else(|| LogicalError::invalid(format!("unknown key: {name}")))
    }

    pub async fn code_read(&self, req: Request, f: Fields) -> Result<Option<Response>> {
        let k = self
            .key_or_unknown(&*req.storage, &f.input::<CodeInput>().name)
            .await?;
        let raw = totp::base32_decode(&k.key).map_err(LogicalError::Internal)?;
        let counter = self.now().max(0) as u64 / k.period;
        let code = totp::hotp(&raw, counter, k.digits, k.algorithm);
        Ok(Some(Response::json(json!({"code": code}))))
    }

    pub async fn code_validate(&self, req: Request, f: Fields) -> Result<Option<Response>> {
        let CodeInput { name, code } = f.input();
        let s = &*req.storage;
        let k = self.key_or_unknown(s, &name).await?;
        let code = code.trim();
        if code.is_empty() {
            return Err(LogicalError::invalid("the code value is required"));
        }
        if code.len() != k.digits as usize || !code.bytes().all(|b| b.is_ascii_digit()) {
            return Err(LogicalError::invalid(
                "invalid number of digits for the code",
            ));
        }
        let raw = totp::base32_decode(&k.key).map_err(LogicalError::Internal)?;
        let now = self.now().max(0);
        let current = now as u64 / k.period;
        let mut matched = None;
        for c in current.saturating_sub(k.skew)..=current + k.skew {
            // Check every window, so the time taken does not say which matched.
            if totp::same_code(&totp::hotp(&raw, c, k.digits, k.algorithm), code) {
                matched = Some(c);
            }
        }
        let Some(counter) = matched else {
            return Ok(Some(Response::json(json!({"valid": false}))));
        };
        let used_key = format!("{USED}{name}/{code}");
        let existing = s.get_with_revision(&used_key).await?;
        let revision = match existing {
            Some((bytes, rev)) => {
                let used: Used =
                    record::decode("used code", &bytes).map_err(LogicalError::Internal)?;
                if used.until > now {
                    return Err(LogicalError::invalid(
                        "code already used; wait until the next time period",
                    ));
                }
                rev
            }
            None => 0,
        };
        let until = ((counter + k.skew + 1) * k.period) as i64;
        let entry =
            serde_json::to_vec(&Used { version: 1, until }).map_err(LogicalError::internal)?;
        if !s
            .transaction_if(
                vec![(used_key.clone(), revision)],
                vec![(used_key, Some(entry))],
            )
            .await?
        {
            return Err(LogicalError::invalid(
                "code already used; wait until the next time period",
            ));
        }
        Ok(Some(Response::json(json!({"valid": true}))))
    }

    /// Forgets spent codes that can no longer validate.
    pub async fn tidy_used(&self, s: &dyn Storage, now: i64) -> Result<()> {
        for name in s.list(USED).await? {
            let prefix = format!("{USED}{name}");
            for code in s.list(&prefix).await? {
                let key = format!("{prefix}{code}");
                if let Some((bytes, rev)) = s.get_with_revision(&key).await?
                    && let Ok(used) = record::decode::<Used>("used code", &bytes)
                    && used.until <= now
                {
                    s.transaction_if(vec![(key.clone(), rev)], vec![(key, None)])
                        .await?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use async_trait::async_trait;
    use parking_lot::Mutex;
    use tresor_sdk::clock::ManualClock;

    use super::*;

    /// The last revision, and each key's value with the revision that wrote it.
    type Entries = (u64, BTreeMap<String, (Vec<u8>, u64)>);

    /// Storage with revisions, enough for the tidy.
    #[derive(Default)]
    struct Mem(Mutex<Entries>);

    #[async_trait]
    impl Storage for Mem {
        async fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
            Ok(self.0.lock().1.get(key).map(|(v, _)| v.clone()))
        }
        async fn put(&self, key: &str, value: Vec<u8>) -> Result<()> {
            let mut g = self.0.lock();
            g.0 += 1;
            let rev = g.0;
            g.1.insert(key.to_owned(), (value, rev));
            Ok(())
        }
        async fn delete(&self, key: &str) -> Result<()> {
            self.0.lock().1.remove(key);
            Ok(())
        }
        async fn list(&self, prefix: &str) -> Result<Vec<String>> {
            let g = self.0.lock();
            let mut out: Vec<String> =
                g.1.keys()
                    .filter_map(|k| k.strip_prefix(prefix))
                    .map(|rest| match rest.split_once('/') {
                        Some((dir, _)) => format!("{dir}/"),
                        None => rest.to_owned(),
                    })
                    .collect();
            out.dedup();
            Ok(out)
        }
        async fn get_with_revision(&self, key: &str) -> Result<Option<(Vec<u8>, u64)>> {
            Ok(self.0.lock().1.get(key).cloned())
        }
        async fn transaction_if(
            &self,
            checks: Vec<(String, u64)>,
            ops: Vec<(String, Option<Vec<u8>>)>,
        ) -> Result<bool> {
            let mut g = self.0.lock();
            if checks
                .iter()
                .any(|(k, rev)| g.1.get(k).map_or(0, |(_, r)| *r) != *rev)
            {
                return Ok(false);
            }
            for (k, v) in ops {
                g.0 += 1;
                let rev = g.0;
                match v {
                    Some(v) => g.1.insert(k, (v, rev)),
                    None => g.1.remove(&k),
                };
            }
            Ok(true)
        }
    }

    #[tokio::test]
    async fn the_tidy_forgets_only_codes_that_can_no_longer_validate() {
        let s = Mem::default();
        let used = |until: i64| serde_json::to_vec(&Used { version: 1, until }).unwrap();
        s.put("used/a/111111", used(100)).await.unwrap();
        s.put("used/a/222222", used(200)).await.unwrap();
        s.put("used/b/333333", used(50)).await.unwrap();
        let e = Engine {
            clock: Arc::new(ManualClock::at(0)),
        };
        e.tidy_used(&s, 150).await.unwrap();
        let left: Vec<String> = s.0.lock().1.keys().cloned().collect();
        assert_eq!(left, ["used/a/222222"]);
    }
}
