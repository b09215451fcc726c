//! Capabilities (what a policy grants on a path) and operations (what a request asks for).
//!
//! `Capability` is the closed list of names a policy may use; `Capabilities` is a small bit set
//! of them, cheap to copy and to test on the hot path. `Operation` is the closed list of request
//! operations, and `Operation::required_capability` decides, exhaustively, which capability each
//! one needs: adding an operation does not compile until that is decided.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// One capability a policy path can grant (or, for `Deny`, forbid).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Capability {
    /// Forbids everything on the path; wins over every other capability of the same path.
    Deny,
    /// Create data at a path that does not exist yet.
    Create,
    /// Read data.
    Read,
    /// Change existing data (most of Vault also creates through it).
    Update,
    /// Partial update (HTTP `PATCH`).
    Patch,
    /// Delete data.
    Delete,
    /// List keys under a prefix.
    List,
    /// Access to root-protected paths, in addition to the operation's own capability.
    Sudo,
    /// Only ever reported, never granted by a policy: the token is a root token.
    Root,
}

impl Capability {
    /// Every capability, in declaration order.
    pub const ALL: [Capability; 9] = [
        Capability::Deny,
        Capability::Create,
        Capability::Read,
        Capability::Update,
        Capability::Patch,
        Capability::Delete,
        Capability::List,
        Capability::Sudo,
        Capability::Root,
    ];

    /// Vault's lowercase name of the capability.
    pub const fn as_str(self) -> &'static str {
        match self {
            Capability::Deny => "deny",
            Capability::Create => "create",
            Capability::Read => "read",
            Capability::Update => "update",
            Capability::Patch => "patch",
            Capability::Delete => "delete",
            Capability::List => "list",
            Capability::Sudo => "sudo",
            Capability::Root => "root",
        }
    }

    const fn bit(self) -> u16 {
        1 << (self as u16)
    }

    /// Parses a capability name as a policy may write it. `root` is not accepted: no policy can
    /// grant it.
    pub fn from_policy_name(name: &str) -> Option<Capability> {
        match name {
            "root" => None,
            other => other.parse().ok(),
        }
    }
}

impl fmt::Display for Capability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The error for a capability name that Vault does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid capability {0:?}")]
pub struct UnknownCapability(pub String);

impl FromStr for Capability {
    type Err = UnknownCapability;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Capability::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| UnknownCapability(s.to_owned()))
    }
}

impl Serialize for Capability {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Capability {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A set of capabilities, stored as bits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Capabilities(u16);

impl Capabilities {
    /// The empty set.
    pub const EMPTY: Capabilities = Capabilities(0);

    /// What a root token holds: every grantable capability, `sudo` and the `root` marker.
    pub const ROOT: Capabilities = Capabilities(
        Capability::Create.bit()
            | Capability::Read.bit()
            | Capability::Update.bit()
            | Capability::Patch.bit()
            | Capability::Delete.bit()
            | Capability::List.bit()
            | Capability::Sudo.bit()
            | Capability::Root.bit(),
    );

    /// Vault's order of names as `sys/capabilities` reports them (sorted by name).
    const VAULT_ORDER: [Capability; 9] = [
        Capability::Create,
        Capability::Delete,
        Capability::Deny,
        Capability::List,
        Capability::Patch,
        Capability::Read,
        Capability::Root,
        Capability::Sudo,
        Capability::Update,
    ];

    /// The empty set.
    pub const fn empty() -> Capabilities {
        Capabilities(0)
    }

    /// The raw bits (bit `n` is the `n`-th variant of [`Capability`]).
    pub const fn bits(self) -> u16 {
        self.0
    }

    /// Whether `cap` is in the set.
    pub const fn contains(self, cap: Capability) -> bool {
        self.0 & cap.bit() != 0
    }

    /// Whether the set is empty.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Adds `cap`.
    pub fn insert(&mut self, cap: Capability) {
        self.0 |= cap.bit();
    }

    /// Removes `cap`.
    pub fn remove(&mut self, cap: Capability) {
        self.0 &= !cap.bit();
    }

    /// The union of two sets.
    #[must_use]
    pub const fn union(self, other: Capabilities) -> Capabilities {
        Capabilities(self.0 | other.0)
    }

    /// The number of capabilities in the set.
    pub const fn len(self) -> usize {
        self.0.count_ones() as usize
    }

    /// Iterates in declaration order of [`Capability`].
    pub fn iter(self) -> impl Iterator<Item = Capability> {
        Capability::ALL
            .into_iter()
            .filter(move |c| self.contains(*c))
    }

    /// Vault's lowercase names, in the order Vault reports them (sorted by name, as
    /// `sys/capabilities` returns them).
    pub fn to_strings(self) -> Vec<&'static str> {
        Self::VAULT_ORDER
            .into_iter()
            .filter(|c| self.contains(*c))
            .map(Capability::as_str)
            .collect()
    }
}

impl From<Capability> for Capabilities {
    fn from(cap: Capability) -> Self {
        Capabilities(cap.bit())
    }
}

impl FromIterator<Capability> for Capabilities {
    fn from_iter<I: IntoIterator<Item = Capability>>(iter: I) -> Self {
        let mut set = Capabilities::EMPTY;
        for cap in iter {
            set.insert(cap);
        }
        set
    }
}

impl IntoIterator for Capabilities {
    type Item = Capability;
    type IntoIter = CapabilitiesIter;

    fn into_iter(self) -> CapabilitiesIter {
        CapabilitiesIter { set: self, next: 0 }
    }
}

/// Iterator over a [`Capabilities`] set, in declaration order of [`Capability`].
#[derive(Debug, Clone)]
pub struct CapabilitiesIter {
    set: Capabilities,
    next: usize,
}

impl Iterator for CapabilitiesIter {
    type Item = Capability;

    fn next(&mut self) -> Option<Capability> {
        while let Some(cap) = Capability::ALL.get(self.next).copied() {
            self.next += 1;
            if self.set.contains(cap) {
                return Some(cap);
            }
        }
        None
    }
}

impl fmt::Debug for Capabilities {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

impl Serialize for Capabilities {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.to_strings())
    }
}

impl<'de> Deserialize<'de> for Capabilities {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let caps = Vec::<Capability>::deserialize(deserializer)?;
        Ok(caps.into_iter().collect())
    }
}

/// A request operation: the SDK's, the one enum the router, the engines and the ACL share.
pub use tresor_sdk::Operation;

/// What an operation needs from the ACL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Requirement {
    /// Nothing: always allowed (only `Help`).
    Nothing,
    /// This capability on the matched path.
    Capability(Capability),
}

/// What `op` needs from the ACL: create, read, update, patch, delete and list need the
/// capability of the same name; help is always allowed.
pub const fn requirement(op: Operation) -> Requirement {
    match op {
        Operation::Create => Requirement::Capability(Capability::Create),
        Operation::Read => Requirement::Capability(Capability::Read),
        Operation::Update => Requirement::Capability(Capability::Update),
        Operation::Patch => Requirement::Capability(Capability::Patch),
        Operation::Delete => Requirement::Capability(Capability::Delete),
        Operation::List => Requirement::Capability(Capability::List),
        Operation::Help => Requirement::Nothing,
    }
}

/// Whether parameter constraints (allowed, denied, required) apply to `op`. Vault checks them
/// for the operations that carry a body: create, read, update and patch.
pub const fn checks_parameters(op: Operation) -> bool {
    matches!(
        op,
        Operation::Create | Operation::Read | Operation::Update | Operation::Patch
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for cap in Capability::ALL {
            assert_eq!(cap.as_str().parse::<Capability>().unwrap(), cap);
        }
        assert_eq!(
            "reed".parse::<Capability>().unwrap_err().to_string(),
            "invalid capability \"reed\""
        );
        assert_eq!(Capability::from_policy_name("root"), None);
        assert_eq!(Capability::from_policy_name("sudo"), Some(Capability::Sudo));
    }

    #[test]
    fn set_operations_and_order() {
        let set: Capabilities = [Capability::Update, Capability::Read, Capability::Create]
            .into_iter()
            .collect();
        assert!(set.contains(Capability::Read));
        assert!(!set.contains(Capability::Delete));
        assert_eq!(set.len(), 3);
        assert_eq!(
            set.iter().collect::<Vec<_>>(),
            vec![Capability::Create, Capability::Read, Capability::Update]
        );
        assert_eq!(set.into_iter().count(), 3);
        assert_eq!(set.to_strings(), vec!["create", "read", "update"]);
        assert_eq!(
            Capabilities::ROOT.to_strings(),
            vec![
                "create", "delete", "list", "patch", "read", "root", "sudo", "update"
            ]
        );
        assert_eq!(
            serde_json::to_string(&set).unwrap(),
            r#"["create","read","update"]"#
        );
        let back: Capabilities = serde_json::from_str(r#"["update","create","read"]"#).unwrap();
        assert_eq!(back, set);
        let mut s = set;
        s.remove(Capability::Read);
        assert_eq!(s.to_strings(), vec!["create", "update"]);
        assert!(Capabilities::empty().is_empty());
    }
}
