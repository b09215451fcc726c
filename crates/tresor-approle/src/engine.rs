//! The state every handler of an AppRole mount shares: the clock, the in-process locks, the
//! cached salt, the tidy guard; and the small checks several paths need (role names, CIDR
//! subsets, metadata).

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use serde_json::Value;
use tresor_sdk::cidr::{self, Cidr};
use tresor_sdk::clock::Clock;
use tresor_sdk::{LogicalError, Request, Result, Storage};

use crate::store::{self, Salt};

/// How many in-process locks writers are spread over.
const LOCK_STRIPES: usize = 64;

/// The longest role ID or secret ID accepted (both are hashed; Vault's limit).
pub(crate) const MAX_ID_BYTES: usize = 4096;

/// An invalid-request error.
pub(crate) fn bad(msg: impl Into<String>) -> LogicalError {
    LogicalError::InvalidRequest(msg.into())
}

/// The one answer for an unknown role ID, an unknown, used up or expired secret ID: a client
/// learns nothing about which part was wrong.
pub(crate) fn invalid_credentials() -> LogicalError {
    bad("invalid role or secret ID")
}

pub(crate) fn role_missing(name: &str) -> LogicalError {
    bad(format!("role {name:?} does not exist"))
}

pub(crate) struct Engine {
    clock: Arc<dyn Clock>,
    locks: Vec<tokio::sync::Mutex<()>>,
    /// The salt of each mount this instance serves, by mount accessor.
    salts: parking_lot::RwLock<HashMap<String, Arc<Salt>>>,
    salt_lock: tokio::sync::Mutex<()>,
    /// Mounts with a tidy running.
    pub(crate) tidying: parking_lot::Mutex<HashSet<String>>,
}

impl Engine {
    pub(crate) fn new(clock: Arc<dyn Clock>) -> Self {
        Engine {
            clock,
            locks: (0..LOCK_STRIPES)
                .map(|_| tokio::sync::Mutex::new(()))
                .collect(),
            salts: Default::default(),
            salt_lock: tokio::sync::Mutex::new(()),
            tidying: Default::default(),
        }
    }

    /// Now, in Unix seconds.
    pub(crate) fn now(&self) -> i64 {
        tresor_sdk::clock::unix(self.clock.now())
    }

    /// Serialises this server's writers of one storage key of a mount. Other servers sharing
    /// the storage are kept out by conditional writes; the lock keeps this server's requests
    /// from wasting work on conflicts.
    pub(crate) async fn lock(&self, mount: &str, key: &str) -> tokio::sync::MutexGuard<'_, ()> {
        let mut h = DefaultHasher::new();
        mount.hash(&mut h);
        key.hash(&mut h);
        let stripe = usize::try_from(h.finish() % LOCK_STRIPES as u64).unwrap_or(0);
        self.locks[stripe].lock().await
    }

    /// The mount's salt, created on first use. Two servers creating it at once agree: the
    /// write is conditional on the key being absent, and the loser reads the winner's.
    pub(crate) async fn salt(&self, mount: &str, s: &dyn Storage) -> Result<Arc<Salt>> {
        if let Some(salt) = self.salts.read().get(mount) {
            return Ok(salt.clone());
        }
        let _g = self.salt_lock.lock().await;
        if let Some(salt) = self.salts.read().get(mount) {
            return Ok(salt.clone());
        }
        let salt = loop {
            if let Some(salt) = store::load::<Salt>(s, "approle salt", store::SALT_KEY).await? {
                break salt;
            }
            let fresh = Salt::generate()?;
            let bytes = store::encode(&fresh)?;
            if s.transaction_if(
                vec![(store::SALT_KEY.into(), 0)],
                vec![(store::SALT_KEY.into(), Some(bytes))],
            )
            .await?
            {
                break fresh;
            }
        };
        let salt = Arc::new(salt);
        self.salts.write().insert(mount.to_owned(), salt.clone());
        Ok(salt)
    }

    /// Forgets a cached salt (it changed outside this process, or the mount went away).
    pub(crate) fn forget_salt(&self, mount: &str) {
        self.salts.write().remove(mount);
    }

    pub(crate) fn forget_all(&self) {
        self.salts.write().clear();
        self.tidying.lock().clear();
    }
}

/// Names the mount a request belongs to (its accessor, else its path).
pub(crate) fn mount_id(req: &Request) -> String {
    mount_of(&req.mount)
}

pub(crate) fn mount_of(m: &tresor_sdk::MountView) -> String {
    if m.mount_accessor.is_empty() {
        m.mount_point.clone()
    } else {
        m.mount_accessor.clone()
    }
}

/// Checks a new role's name: Vault's characters (letters, digits, space, hyphen, underscore,
/// period), under 4096 bytes. The path already arrives trimmed and lower-cased.
pub(crate) fn validate_role_name(name: &str) -> Result<()> {
    if name.is_empty() {
        return Err(bad("missing role_name"));
    }
    if name.len() >= 4096 {
        return Err(bad("role_name must be less than 4096 bytes"));
    }
    if name == "." || name == ".." {
        return Err(bad(format!("invalid role_name {name:?}")));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, ' ' | '-' | '_' | '.')))
    {
        return Err(bad(format!(
            "role_name {name:?} contains the character {c:?}: only letters, digits, space, hyphen, underscore and period are allowed"
        )));
    }
    Ok(())
}

/// Parses a list of CIDR blocks, naming the field when one is bad.
pub(crate) fn parse_cidrs(field: &str, list: &[String]) -> Result<Vec<Cidr>> {
    cidr::parse_list(list).map_err(|e| bad(format!("invalid {field}: {e}")))
}

/// The prefix length of a block (its `Display` is `addr/prefix`).
fn prefix_len(c: &Cidr) -> u8 {
    c.to_string()
        .rsplit_once('/')
        .and_then(|(_, p)| p.parse().ok())
        .unwrap_or(0)
}

fn first_addr(c: &Cidr) -> Option<std::net::IpAddr> {
    c.to_string()
        .rsplit_once('/')
        .and_then(|(a, _)| a.parse().ok())
}

/// Whether every block of `inner` lies inside some block of `outer`.
pub(crate) fn is_subset(inner: &[Cidr], outer: &[Cidr]) -> bool {
    inner.iter().all(|i| {
        outer.iter().any(|o| {
            prefix_len(i) >= prefix_len(o) && first_addr(i).is_some_and(|ip| o.contains(ip))
        })
    })
}

/// A secret ID's `metadata`: a JSON object of strings, sent as a JSON string as Vault
/// documents (an object is accepted too).
pub(crate) fn parse_metadata(v: Option<&Value>) -> Result<BTreeMap<String, String>> {
    let bad_meta = |why: &str| bad(format!("failed to parse metadata: {why}"));
    let obj = match v {
        None | Some(Value::Null) => return Ok(BTreeMap::new()),
        Some(Value::String(s)) if s.trim().is_empty() => return Ok(BTreeMap::new()),
        Some(Value::String(s)) => match serde_json::from_str::<Value>(s) {
            Ok(Value::Object(m)) => m,
            Ok(_) => return Err(bad_meta("expected a JSON object of strings")),
            Err(e) => return Err(bad_meta(&e.to_string())),
        },
        Some(Value::Object(m)) => m.clone(),
        Some(_) => return Err(bad_meta("expected a JSON object of strings")),
    };
    obj.into_iter()
        .map(|(k, v)| match v {
            Value::String(s) => Ok((k, s)),
            other => Err(bad_meta(&format!(
                "the value of {k:?} is {other}, expected a string"
            ))),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cidrs(v: &[&str]) -> Vec<Cidr> {
        v.iter().map(|s| s.parse().unwrap()).collect()
    }

    #[test]
    fn cidr_subsets() {
        let cases: &[(&[&str], &[&str], bool)] = &[
            (&["10.1.0.0/16"], &["10.0.0.0/8"], true),
            (&["10.0.0.0/8"], &["10.1.0.0/16"], false),
            (&["10.1.2.3"], &["10.0.0.0/8"], true),
            (&["11.0.0.1"], &["10.0.0.0/8"], false),
            (
                &["127.0.0.1/32", "10.9.0.0/24"],
                &["127.0.0.0/8", "10.0.0.0/8"],
                true,
            ),
            (
                &["127.0.0.1/32", "12.9.0.0/24"],
                &["127.0.0.0/8", "10.0.0.0/8"],
                false,
            ),
            (&["10.0.0.0/8"], &["10.0.0.0/8"], true),
            (&["::1"], &["::/0"], true),
            (&["::1"], &["10.0.0.0/8"], false),
            (&[], &["10.0.0.0/8"], true),
        ];
        for (inner, outer, want) in cases {
            assert_eq!(
                is_subset(&cidrs(inner), &cidrs(outer)),
                *want,
                "{inner:?} in {outer:?}"
            );
        }
    }

    #[test]
    fn metadata_parsing() {
        let ok = parse_metadata(Some(&json!("{\"tag1\": \"production\"}"))).unwrap();
        assert_eq!(ok["tag1"], "production");
        assert!(parse_metadata(Some(&json!(""))).unwrap().is_empty());
        assert!(parse_metadata(None).unwrap().is_empty());
        assert_eq!(parse_metadata(Some(&json!({"a": "b"}))).unwrap()["a"], "b");
        for bad in [json!("{not json"), json!("[1]"), json!({"a": 1}), json!(7)] {
            let e = parse_metadata(Some(&bad)).unwrap_err().to_string();
            assert!(e.starts_with("failed to parse metadata"), "{bad}: {e}");
        }
    }

    #[test]
    fn role_names() {
        for ok in ["web", "my app.v2", "a_b-c", "x"] {
            validate_role_name(ok).unwrap();
        }
        for bad in ["", ".", "..", "a/b", "a*b", "ümlaut", &"x".repeat(4096)] {
            assert!(validate_role_name(bad).is_err(), "{bad}");
        }
    }
}
