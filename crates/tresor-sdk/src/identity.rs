//! What an engine or the ACL may know about the identity entity behind a request, and the
//! `{{identity...}}` templates that render it into policy paths and role settings.
//!
//! Supported templates (as Vault's, plus alias forms keyed by the auth mount's path):
//! - `{{identity.entity.id}}`, `{{identity.entity.name}}`, `{{identity.entity.metadata.<key>}}`
//! - `{{identity.entity.aliases.<mount accessor or mount path>.id|name}}`,
//!   `...metadata.<key>`, `...custom_metadata.<key>` (a mount path is written `auth/userpass/`
//!   or `auth/userpass`)
//! - `{{identity.groups.ids.<group id>.name}}`, `{{identity.groups.names.<group name>.id}}`
//!
//! A rendered value is refused (the template does not render) when it is empty, or could
//! widen a policy path: it contains `*`, `{`, `}`, a `+` segment, or a `.`/`..` segment. An
//! attacker who controls an alias name or a claim therefore cannot turn
//! `secret/data/{{identity.entity.aliases.X.name}}/*` into a glob over everyone's secrets.

use std::collections::BTreeMap;

/// An entity, as requests and templates see it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EntityInfo {
    pub id: String,
    pub name: String,
    pub metadata: BTreeMap<String, String>,
    pub aliases: Vec<AliasInfo>,
    /// Every group the entity belongs to, directly or through a parent group.
    pub groups: Vec<GroupInfo>,
    pub disabled: bool,
}

/// One alias of an entity, with the auth mount it belongs to.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AliasInfo {
    pub id: String,
    pub name: String,
    pub mount_accessor: String,
    /// The auth mount's full path (`auth/userpass/`), empty if the mount is gone.
    pub mount_path: String,
    pub mount_type: String,
    pub metadata: BTreeMap<String, String>,
    pub custom_metadata: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct GroupInfo {
    pub id: String,
    pub name: String,
}

/// Why a template did not render.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TemplateError {
    /// The template names something templates cannot name (a 400 when a policy is written).
    Invalid(String),
    /// The template is valid but this entity lacks the value, or the value is unsafe.
    Missing(String),
}

impl std::fmt::Display for TemplateError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TemplateError::Invalid(m) | TemplateError::Missing(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for TemplateError {}

/// Whether a string contains a template at all.
pub fn is_templated(s: &str) -> bool {
    s.contains("{{")
}

/// Checks every template in `s` names something templates can name, without an entity.
pub fn validate(s: &str) -> Result<(), TemplateError> {
    walk(s, |expr| parse_expr(expr).map(|_| String::from("x"))).map(|_| ())
}

/// Renders every template in `s` for `entity`.
pub fn render(s: &str, entity: &EntityInfo) -> Result<String, TemplateError> {
    walk(s, |expr| {
        let e = parse_expr(expr)?;
        let v = lookup(&e, entity)
            .ok_or_else(|| TemplateError::Missing(format!("no value for {{{{{expr}}}}}")))?;
        safe_value(expr, v)
    })
}

fn walk(
    s: &str,
    mut each: impl FnMut(&str) -> Result<String, TemplateError>,
) -> Result<String, TemplateError> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after.find("}}").ok_or_else(|| {
            TemplateError::Invalid(format!("unclosed template in {s:?} (missing \"}}}}\")"))
        })?;
        out.push_str(&each(after[..end].trim())?);
        rest = &after[end + 2..];
    }
    if rest.contains("}}") {
        return Err(TemplateError::Invalid(format!(
            "unopened template in {s:?} (\"}}}}\" without \"{{{{\")"
        )));
    }
    out.push_str(rest);
    Ok(out)
}

/// A parsed template expression.
enum Expr<'a> {
    EntityId,
    EntityName,
    EntityMeta(&'a str),
    Alias {
        mount: &'a str,
        field: AliasField<'a>,
    },
    GroupName(&'a str),
    GroupId(&'a str),
}

enum AliasField<'a> {
    Id,
    Name,
    Meta(&'a str),
    CustomMeta(&'a str),
}

fn parse_expr(expr: &str) -> Result<Expr<'_>, TemplateError> {
    let bad = || {
        TemplateError::Invalid(format!(
            "unknown template {{{{{expr}}}}}: templates name identity.entity.id, .name, \
             .metadata.<key>, .aliases.<mount accessor or path>.id|name|metadata.<key>|\
             custom_metadata.<key>, identity.groups.ids.<id>.name or \
             identity.groups.names.<name>.id"
        ))
    };
    if let Some(rest) = expr.strip_prefix("identity.entity.") {
        return match rest {
            "id" => Ok(Expr::EntityId),
            "name" => Ok(Expr::EntityName),
            _ => {
                if let Some(k) = rest.strip_prefix("metadata.").filter(|k| !k.is_empty()) {
                    return Ok(Expr::EntityMeta(k));
                }
                let Some(a) = rest.strip_prefix("aliases.") else {
                    return Err(bad());
                };
                // The mount is an accessor (no dots, no slashes) or a path ending at the
                // last `/` before the field (`auth/userpass/.name`, `auth/userpass.name`).
                let (mount, field) = split_alias(a).ok_or_else(bad)?;
                let field = match field {
                    "id" => AliasField::Id,
                    "name" => AliasField::Name,
                    f => {
                        if let Some(k) = f.strip_prefix("metadata.").filter(|k| !k.is_empty()) {
                            AliasField::Meta(k)
                        } else if let Some(k) =
                            f.strip_prefix("custom_metadata.").filter(|k| !k.is_empty())
                        {
                            AliasField::CustomMeta(k)
                        } else {
                            return Err(bad());
                        }
                    }
                };
                Ok(Expr::Alias { mount, field })
            }
        };
    }
    if let Some(rest) = expr.strip_prefix("identity.groups.ids.") {
        let id = rest.strip_suffix(".name").filter(|s| !s.is_empty());
        return id.map(Expr::GroupName).ok_or_else(bad);
    }
    if let Some(rest) = expr.strip_prefix("identity.groups.names.") {
        let name = rest.strip_suffix(".id").filter(|s| !s.is_empty());
        return name.map(Expr::GroupId).ok_or_else(bad);
    }
    Err(bad())
}

/// `auth_userpass_1a2b.name` → (`auth_userpass_1a2b`, `name`); `auth/userpass/.metadata.k` →
/// (`auth/userpass/`, `metadata.k`).
fn split_alias(a: &str) -> Option<(&str, &str)> {
    let field_start = |s: &str| {
        ["id", "name", "metadata.", "custom_metadata."]
            .iter()
            .any(|f| s == *f || (f.ends_with('.') && s.starts_with(f)))
    };
    // The mount is everything before the first `.` that starts a field, searched after the
    // last `/` (paths contain no dots in practice, accessors never do).
    let search_from = a.rfind('/').map_or(0, |i| i + 1);
    let mut from = search_from;
    while let Some(i) = a[from..].find('.') {
        let dot = from + i;
        if field_start(&a[dot + 1..]) && dot > 0 {
            return Some((&a[..dot], &a[dot + 1..]));
        }
        from = dot + 1;
    }
    None
}

fn lookup<'e>(e: &Expr<'_>, entity: &'e EntityInfo) -> Option<&'e str> {
    match e {
        Expr::EntityId => Some(entity.id.as_str()),
        Expr::EntityName => Some(entity.name.as_str()),
        Expr::EntityMeta(k) => entity.metadata.get(*k).map(String::as_str),
        Expr::Alias { mount, field } => {
            let by_path = mount.contains('/') || mount.starts_with("auth");
            let want_path = format!("{}/", mount.trim_end_matches('/'));
            let alias = entity.aliases.iter().find(|a| {
                a.mount_accessor == *mount
                    || (by_path && !a.mount_path.is_empty() && a.mount_path == want_path)
            })?;
            match field {
                AliasField::Id => Some(alias.id.as_str()),
                AliasField::Name => Some(alias.name.as_str()),
                AliasField::Meta(k) => alias.metadata.get(*k).map(String::as_str),
                AliasField::CustomMeta(k) => alias.custom_metadata.get(*k).map(String::as_str),
            }
        }
        Expr::GroupName(id) => entity
            .groups
            .iter()
            .find(|g| g.id == *id)
            .map(|g| g.name.as_str()),
        Expr::GroupId(name) => entity
            .groups
            .iter()
            .find(|g| g.name == *name)
            .map(|g| g.id.as_str()),
    }
}

/// Refuses values that could widen a path (see the module docs).
fn safe_value(expr: &str, v: &str) -> Result<String, TemplateError> {
    let unsafe_segment = v
        .split('/')
        .any(|seg| seg.is_empty() || seg == "+" || seg == "." || seg == "..");
    if v.is_empty()
        || unsafe_segment
        || v.contains(['*', '{', '}'])
        || v.chars().any(char::is_control)
    {
        return Err(TemplateError::Missing(format!(
            "the value of {{{{{expr}}}}} is empty or not safe in a path"
        )));
    }
    Ok(v.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alice() -> EntityInfo {
        EntityInfo {
            id: "e-1".into(),
            name: "alice".into(),
            metadata: [("team".to_owned(), "red".to_owned())].into(),
            aliases: vec![AliasInfo {
                id: "a-1".into(),
                name: "alice-up".into(),
                mount_accessor: "auth_userpass_12ab".into(),
                mount_path: "auth/userpass/".into(),
                mount_type: "userpass".into(),
                metadata: [("k".to_owned(), "v".to_owned())].into(),
                custom_metadata: BTreeMap::new(),
            }],
            groups: vec![GroupInfo {
                id: "g-1".into(),
                name: "ops".into(),
            }],
            disabled: false,
        }
    }

    #[test]
    fn renders_every_form() {
        let e = alice();
        let r = |s| render(s, &e);
        assert_eq!(r("a/{{identity.entity.id}}/b").unwrap(), "a/e-1/b");
        assert_eq!(r("{{ identity.entity.name }}").unwrap(), "alice");
        assert_eq!(r("{{identity.entity.metadata.team}}").unwrap(), "red");
        assert_eq!(
            r("{{identity.entity.aliases.auth_userpass_12ab.name}}").unwrap(),
            "alice-up"
        );
        assert_eq!(
            r("{{identity.entity.aliases.auth/userpass/.name}}").unwrap(),
            "alice-up"
        );
        assert_eq!(
            r("{{identity.entity.aliases.auth/userpass.metadata.k}}").unwrap(),
            "v"
        );
        assert_eq!(
            r("{{identity.entity.aliases.auth_userpass_12ab.id}}").unwrap(),
            "a-1"
        );
        assert_eq!(r("{{identity.groups.ids.g-1.name}}").unwrap(), "ops");
        assert_eq!(r("{{identity.groups.names.ops.id}}").unwrap(), "g-1");
        assert_eq!(r("no template").unwrap(), "no template");
    }

    #[test]
    fn missing_values_and_bad_templates_are_told_apart() {
        let e = alice();
        assert!(matches!(
            render("{{identity.entity.metadata.nope}}", &e),
            Err(TemplateError::Missing(_))
        ));
        assert!(matches!(
            render("{{identity.entity.aliases.auth/ldap/.name}}", &e),
            Err(TemplateError::Missing(_))
        ));
        for bad in [
            "{{identity.entity.secret}}",
            "{{identity.entity.metadata.}}",
            "{{identity.groups.ids.g-1.id}}",
            "{{identity.entity.id",
            "x}}",
            "{{foo}}",
        ] {
            assert!(
                matches!(validate(bad), Err(TemplateError::Invalid(_))),
                "{bad}"
            );
        }
        assert!(validate("secret/{{identity.entity.aliases.auth/userpass/.name}}/*").is_ok());
    }

    #[test]
    fn values_that_would_widen_a_path_do_not_render() {
        for evil in ["+", "*", "a/*", "..", "a/../b", "", "a//b", "{x}", "a\nb"] {
            let mut e = alice();
            e.name = evil.into();
            assert!(
                render("secret/data/{{identity.entity.name}}/*", &e).is_err(),
                "{evil:?}"
            );
        }
        let mut e = alice();
        e.name = "team/alice".into();
        assert_eq!(
            render("s/{{identity.entity.name}}/*", &e).unwrap(),
            "s/team/alice/*"
        );
    }
}
