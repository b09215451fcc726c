//! Small rules both methods share: role names, and comparing policy lists at renewal.

use tresor_sdk::{LogicalError, Result};

/// Checks a role name: letters, digits and `-_.@`, as Vault's generic name pattern.
pub(crate) fn check_role_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() < 4096
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '@'))
        && name != "."
        && name != "..";
    if !ok {
        return Err(LogicalError::invalid(format!(
            "invalid role name {name:?}: use letters, digits, '-', '_', '.' and '@'"
        )));
    }
    Ok(())
}

/// Two policy lists grant the same, ignoring order, duplicates and `default`.
pub(crate) fn same_policies(a: &[String], b: &[String]) -> bool {
    let set = |l: &[String]| {
        l.iter()
            .map(|p| p.trim().to_lowercase())
            .filter(|p| !p.is_empty() && p != "default")
            .collect::<std::collections::BTreeSet<_>>()
    };
    set(a) == set(b)
}
