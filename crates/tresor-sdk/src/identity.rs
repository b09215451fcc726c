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

/// The top-level claims an identity token always sets itself: a role's JSON template may not
/// name them (see [`validate_json`]), and a rendered template never overrides them.
pub const RESERVED_CLAIMS: &[&str] = &["iat", "aud", "exp", "iss", "sub", "namespace"];

/// Checks a JSON template (an identity token role's `template`): every `{{...}}` names
/// something JSON templates can name, and the template renders to a JSON object with no
/// [`RESERVED_CLAIMS`] at its top level. Returns the object rendered for an empty entity.
pub fn validate_json(
    template: &str,
) -> Result<serde_json::Map<String, serde_json::Value>, TemplateError> {
    let obj = render_json(template, &EntityInfo::default(), 0)?;
    if let Some(k) = obj.keys().find(|k| RESERVED_CLAIMS.contains(&k.as_str())) {
        return Err(TemplateError::Invalid(format!(
            "top level key {k:?} not allowed. Restricted keys: {}",
            RESERVED_CLAIMS.join(", ")
        )));
    }
    Ok(obj)
}

/// Renders a JSON template for `entity` at `now` (Unix seconds) into a JSON object.
///
/// JSON templates name everything [`render`] does plus whole values:
/// `{{identity.entity.groups.ids}}` and `.groups.names` (arrays), `{{identity.entity.metadata}}`
/// and `{{identity.entity.aliases.<mount>.metadata}}` / `.custom_metadata` (objects), and
/// `{{time.now}}`, `{{time.now.plus.<duration>}}`, `{{time.now.minus.<duration>}}` (numbers).
/// A template outside a JSON string is replaced by the value's JSON (`"color":
/// {{identity.entity.metadata.color}}` gives a string); inside a JSON string it is replaced by
/// the value's text, escaped (`"user-{{identity.entity.name}}"`). Values are always encoded, so
/// an entity's data cannot add structure to the document. As in Vault, a value the entity lacks
/// is an empty string (or an empty object for whole metadata); unlike path templates, values
/// need not be safe in a path.
pub fn render_json(
    template: &str,
    entity: &EntityInfo,
    now: i64,
) -> Result<serde_json::Map<String, serde_json::Value>, TemplateError> {
    let text = walk_json(template, |expr| json_value(expr, entity, now))?;
    match serde_json::from_str::<serde_json::Value>(&text) {
        Ok(serde_json::Value::Object(m)) => Ok(m),
        Ok(_) => Err(TemplateError::Invalid(
            "the template is not a JSON object".to_owned(),
        )),
        Err(e) => Err(TemplateError::Invalid(format!(
            "the template is not valid JSON once rendered: {e}"
        ))),
    }
}

/// Replaces each `{{expr}}` of a JSON document, tracking whether it stands inside a string.
fn walk_json(
    s: &str,
    mut each: impl FnMut(&str) -> Result<serde_json::Value, TemplateError>,
) -> Result<String, TemplateError> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    let (mut in_string, mut escaped) = (false, false);
    while let Some(c) = rest.chars().next() {
        if let Some(after) = rest.strip_prefix("{{") {
            let end = after.find("}}").ok_or_else(|| {
                TemplateError::Invalid(
                    "unclosed template in the JSON template (missing \"}}\")".to_owned(),
                )
            })?;
            let v = each(after[..end].trim())?;
            if in_string {
                let text = match v {
                    serde_json::Value::String(t) => t,
                    other => other.to_string(),
                };
                let quoted = serde_json::Value::String(text).to_string();
                out.push_str(&quoted[1..quoted.len() - 1]);
            } else {
                out.push_str(&v.to_string());
            }
            rest = &after[end + 2..];
            continue;
        }
        if in_string {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
        } else if c == '"' {
            in_string = true;
        }
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    Ok(out)
}

/// The JSON value of one template expression.
fn json_value(
    expr: &str,
    entity: &EntityInfo,
    now: i64,
) -> Result<serde_json::Value, TemplateError> {
    use serde_json::{Value, json};
    let bad = || {
        TemplateError::Invalid(format!(
            "unknown template {{{{{expr}}}}}: JSON templates name identity.entity.id, .name, \
             .metadata, .metadata.<key>, .groups.ids, .groups.names, \
             .aliases.<mount accessor or path>.id|name|metadata|metadata.<key>|custom_metadata|\
             custom_metadata.<key>, identity.groups.ids.<id>.name, \
             identity.groups.names.<name>.id, time.now, time.now.plus.<duration> or \
             time.now.minus.<duration>"
        ))
    };
    if expr == "time.now" {
        return Ok(json!(now));
    }
    for (prefix, sign) in [("time.now.plus.", 1i64), ("time.now.minus.", -1i64)] {
        if let Some(d) = expr.strip_prefix(prefix) {
            let d = crate::duration::parse(d).map_err(|e| {
                TemplateError::Invalid(format!("bad duration in {{{{{expr}}}}}: {e}"))
            })?;
            let secs = i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
            return Ok(json!(now.saturating_add(sign.saturating_mul(secs))));
        }
    }
    if let Ok(e) = parse_expr(expr) {
        return Ok(Value::String(
            lookup(&e, entity).unwrap_or_default().to_owned(),
        ));
    }
    let map = |m: &BTreeMap<String, String>| {
        Value::Object(m.iter().map(|(k, v)| (k.clone(), json!(v))).collect())
    };
    match expr {
        "identity.entity.metadata" => return Ok(map(&entity.metadata)),
        "identity.entity.groups.ids" => {
            return Ok(json!(
                entity.groups.iter().map(|g| &g.id).collect::<Vec<_>>()
            ));
        }
        "identity.entity.groups.names" => {
            return Ok(json!(
                entity.groups.iter().map(|g| &g.name).collect::<Vec<_>>()
            ));
        }
        _ => {}
    }
    let rest = expr
        .strip_prefix("identity.entity.aliases.")
        .ok_or_else(bad)?;
    let (mount, custom) = if let Some(m) = rest.strip_suffix(".custom_metadata") {
        (m, true)
    } else if let Some(m) = rest.strip_suffix(".metadata") {
        (m, false)
    } else {
        return Err(bad());
    };
    if mount.is_empty() {
        return Err(bad());
    }
    // The alias the path-template rules find for this mount, found by its id.
    let id_expr = Expr::Alias {
        mount,
        field: AliasField::Id,
    };
    let alias = lookup(&id_expr, entity).and_then(|id| entity.aliases.iter().find(|a| a.id == id));
    Ok(match alias {
        Some(a) if custom => map(&a.custom_metadata),
        Some(a) => map(&a.metadata),
        None => json!({}),
    })
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

    #[test]
    fn json_templates_render_whole_values_and_escape_entity_data() {
        let mut e = alice();
        e.metadata.insert("quote".into(), "a\"b}".into());
        let t = r#"{
            "color": {{identity.entity.metadata.team}},
            "user": "u-{{identity.entity.name}}",
            "groups": {{identity.entity.groups.names}},
            "gids": {{identity.entity.groups.ids}},
            "meta": {{identity.entity.metadata}},
            "alias_meta": {{identity.entity.aliases.auth/userpass/.metadata}},
            "nested": {"q": {{identity.entity.metadata.quote}}, "in": "x{{identity.entity.metadata.quote}}"},
            "missing": {{identity.entity.metadata.nope}},
            "no_alias": {{identity.entity.aliases.auth_other.metadata}},
            "nbf": {{time.now}},
            "later": {{time.now.plus.1h}},
            "earlier": {{time.now.minus.30s}}
        }"#;
        let m = render_json(t, &e, 1000).unwrap();
        assert_eq!(m["color"], "red");
        assert_eq!(m["user"], "u-alice");
        assert_eq!(m["groups"], serde_json::json!(["ops"]));
        assert_eq!(m["gids"], serde_json::json!(["g-1"]));
        assert_eq!(m["meta"]["quote"], "a\"b}");
        assert_eq!(m["alias_meta"], serde_json::json!({"k": "v"}));
        assert_eq!(m["nested"]["q"], "a\"b}");
        assert_eq!(m["nested"]["in"], "xa\"b}");
        assert_eq!(m["missing"], "");
        assert_eq!(m["no_alias"], serde_json::json!({}));
        assert_eq!(m["nbf"], 1000);
        assert_eq!(m["later"], 4600);
        assert_eq!(m["earlier"], 970);
    }

    #[test]
    fn json_templates_refuse_bad_forms_and_reserved_claims() {
        for bad in [
            "{\"a\": {{identity.entity.secret}}}",
            "{\"a\": {{time.now.plus.soon}}}",
            "{\"a\": {{identity.entity.id}",
            "[1, 2]",
            "{\"a\": }",
            "not json",
        ] {
            assert!(
                matches!(validate_json(bad), Err(TemplateError::Invalid(_))),
                "{bad}"
            );
        }
        for reserved in RESERVED_CLAIMS {
            let t = format!("{{\"{reserved}\": 1}}");
            let err = validate_json(&t).unwrap_err().to_string();
            assert!(err.contains(reserved), "{err}");
        }
        assert!(validate_json("{\"ok\": {{identity.entity.name}}, \"n\": {\"iss\": 1}}").is_ok());
    }
}
