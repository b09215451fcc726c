//! Rendering output the way Vault's CLI does.
//!
//! - [`go_value`]: Go's `%v` for decoded JSON (`[a b]`, `map[k:v]`, `<nil>`), which is how
//!   table cells show values;
//! - [`columns`] and [`table`]: left-aligned columns joined by four spaces, empty cells shown
//!   as `n/a`, an optional header row with a dashed underline;
//! - [`secret_table`] and [`map_table`]: the `Key`/`Value` tables for a response or a map,
//!   with TTL-looking fields shown as durations;
//! - [`json`]: two-space indented JSON with Go's HTML escaping; [`yaml`]: a small emitter in
//!   the style of go-yaml (sorted keys, block sequences, quoting only where needed).

use serde_json::{Map, Value};

use crate::duration;
use crate::secret::Secret;

/// The output formats `-format` accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Human tables (the default).
    Table,
    /// Indented JSON.
    Json,
    /// YAML.
    Yaml,
    /// Raw values, for `-field` and `read -format=raw`.
    Raw,
}

impl Format {
    /// Parses a `-format` value (case-insensitive).
    pub fn parse(s: &str) -> Option<Format> {
        match s.to_ascii_lowercase().as_str() {
            "" | "table" => Some(Format::Table),
            "json" => Some(Format::Json),
            "yaml" | "yml" => Some(Format::Yaml),
            "raw" => Some(Format::Raw),
            _ => None,
        }
    }
}

/// Go's `%v` of a decoded JSON value.
pub fn go_value(v: &Value) -> String {
    match v {
        Value::Null => "<nil>".to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        Value::Array(items) => {
            let inner: Vec<String> = items.iter().map(go_value).collect();
            format!("[{}]", inner.join(" "))
        }
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            let inner: Vec<String> = keys
                .into_iter()
                .map(|k| format!("{k}:{}", go_value(&map[k])))
                .collect();
            format!("map[{}]", inner.join(" "))
        }
    }
}

/// Go's `%q` of a list of strings: `["a" "b"]`.
pub fn go_quoted_list(items: &[String]) -> String {
    let inner: Vec<String> = items
        .iter()
        .map(|s| Value::String(s.clone()).to_string())
        .collect();
    format!("[{}]", inner.join(" "))
}

/// Whether a field name is one Vault's tables print as a duration.
pub fn looks_like_duration(key: &str) -> bool {
    key == "period"
        || key.ends_with("_period")
        || key == "ttl"
        || key.ends_with("_ttl")
        || key == "duration"
        || key.ends_with("_duration")
        || key == "lease_max"
        || key == "ttl_max"
}

/// A table cell for `key`: integers under duration-looking keys become durations.
pub fn cell(key: &str, v: &Value) -> String {
    if looks_like_duration(key)
        && let Some(secs) = v.as_i64()
    {
        return duration::human(secs);
    }
    go_value(v)
}

fn width(s: &str) -> usize {
    s.chars().count()
}

/// Aligned columns, four spaces apart; empty cells are `n/a`; no trailing spaces.
pub fn columns(rows: &[Vec<String>]) -> String {
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            r.iter()
                .map(|c| {
                    let t = c.trim();
                    if t.is_empty() {
                        "n/a".to_string()
                    } else {
                        t.to_string()
                    }
                })
                .collect()
        })
        .collect();
    let ncols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let mut widths = vec![0; ncols];
    for row in &rows {
        for (i, c) in row.iter().enumerate() {
            widths[i] = widths[i].max(width(c));
        }
    }
    let mut out = String::new();
    for row in &rows {
        let mut line = String::new();
        for (i, c) in row.iter().enumerate() {
            if i > 0 {
                line.push_str("    ");
            }
            line.push_str(c);
            if i + 1 < row.len() {
                line.push_str(&" ".repeat(widths[i] - width(c)));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// A table with a header row and a dashed underline.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut all = Vec::with_capacity(rows.len() + 2);
    all.push(header.iter().map(|h| h.to_string()).collect());
    all.push(header.iter().map(|h| "-".repeat(width(h))).collect());
    all.extend(rows.iter().cloned());
    columns(&all)
}

/// A `Key`/`Value` table.
pub fn kv_table(rows: &[(String, String)]) -> String {
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|(k, v)| vec![k.clone(), v.clone()])
        .collect();
    table(&["Key", "Value"], &rows)
}

/// The table for a plain map (sorted keys), or `None` when it is empty.
pub fn map_table(map: &Map<String, Value>) -> Option<String> {
    if map.is_empty() {
        return None;
    }
    let mut keys: Vec<&String> = map.keys().collect();
    keys.sort();
    let rows: Vec<(String, String)> = keys
        .into_iter()
        .map(|k| (k.clone(), cell(k, &map[k])))
        .collect();
    Some(kv_table(&rows))
}

/// Go's `time.Time.String()` for an RFC 3339 timestamp; the input unchanged if it does not
/// parse.
pub fn go_time_string(rfc3339: &str) -> String {
    use time::format_description::well_known::Rfc3339;
    let Ok(t) = time::OffsetDateTime::parse(rfc3339, &Rfc3339) else {
        return rfc3339.to_string();
    };
    let mut s = format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    );
    let nanos = t.nanosecond();
    if nanos != 0 {
        let mut digits = format!("{nanos:09}");
        while digits.ends_with('0') {
            digits.pop();
        }
        s.push('.');
        s.push_str(&digits);
    }
    let off = t.offset();
    let (h, m, _) = off.as_hms();
    let sign = if off.is_negative() { '-' } else { '+' };
    let zone = format!("{sign}{:02}{:02}", h.unsigned_abs(), m.unsigned_abs());
    let name = if off.is_utc() {
        "UTC".to_string()
    } else {
        zone.clone()
    };
    format!("{s} {zone} {name}")
}

/// The rows of Vault's table for a response: lease, auth, wrapping, then sorted data.
pub fn secret_rows(secret: &Secret) -> Vec<(String, String)> {
    let mut rows = Vec::new();
    if secret.lease_duration > 0 {
        if secret.lease_id.is_empty() {
            rows.push((
                "refresh_interval".to_string(),
                duration::human(secret.lease_duration),
            ));
        } else {
            rows.push(("lease_id".to_string(), secret.lease_id.clone()));
            rows.push((
                "lease_duration".to_string(),
                duration::human(secret.lease_duration),
            ));
            rows.push(("lease_renewable".to_string(), secret.renewable.to_string()));
        }
    }
    if let Some(auth) = &secret.auth {
        if let Some(mfa) = auth.mfa_requirement.as_ref().filter(|m| !m.is_null()) {
            rows.push(("mfa_requirement".to_string(), go_value(mfa)));
        } else {
            let list = |l: &Option<Vec<String>>| go_quoted_list(l.as_deref().unwrap_or(&[]));
            rows.push(("token".to_string(), auth.client_token.clone()));
            rows.push(("token_accessor".to_string(), auth.accessor.clone()));
            let dur = if auth.lease_duration == 0 {
                "\u{221e}".to_string()
            } else {
                duration::human(auth.lease_duration)
            };
            rows.push(("token_duration".to_string(), dur));
            rows.push(("token_renewable".to_string(), auth.renewable.to_string()));
            rows.push(("token_policies".to_string(), list(&auth.token_policies)));
            rows.push((
                "identity_policies".to_string(),
                list(&auth.identity_policies),
            ));
            rows.push(("policies".to_string(), list(&auth.policies)));
            for (k, v) in auth.metadata.iter().flatten() {
                rows.push((format!("token_meta_{k}"), v.clone()));
            }
        }
    }
    if let Some(w) = &secret.wrap_info {
        rows.push(("wrapping_token:".to_string(), w.token.clone()));
        rows.push(("wrapping_accessor:".to_string(), w.accessor.clone()));
        rows.push(("wrapping_token_ttl:".to_string(), duration::human(w.ttl)));
        rows.push((
            "wrapping_token_creation_time:".to_string(),
            go_time_string(&w.creation_time),
        ));
        rows.push((
            "wrapping_token_creation_path:".to_string(),
            w.creation_path.clone(),
        ));
        if !w.wrapped_accessor.is_empty() {
            rows.push(("wrapped_accessor:".to_string(), w.wrapped_accessor.clone()));
        }
    }
    if let Some(data) = &secret.data {
        let mut keys: Vec<&String> = data.keys().collect();
        keys.sort();
        for k in keys {
            rows.push((k.clone(), cell(k, &data[k])));
        }
    }
    rows
}

/// Vault's table for a response, or `None` when there is nothing to show.
pub fn secret_table(secret: &Secret) -> Option<String> {
    let rows = secret_rows(secret);
    if rows.is_empty() {
        None
    } else {
        Some(kv_table(&rows))
    }
}

/// The warnings block printed above a table.
pub fn warnings_block(warnings: &[String]) -> String {
    let mut out =
        String::from("WARNING! The following warnings were returned from the server:\n\n");
    for w in warnings {
        out.push_str(&format!("  * {w}\n\n"));
    }
    out
}

/// A section title padded with `=` signs to about `total` columns (Vault's `== Title ==`).
pub fn header(title: &str, total: usize) -> String {
    let mut signs = total as i64 - (title.chars().count() as i64 + 2);
    if signs <= 0 {
        signs = 4;
    }
    if signs % 2 != 0 {
        signs += 1;
    }
    let side = "=".repeat((signs / 2) as usize);
    format!("{side} {title} {side}")
}

/// The section title sized for a map's table (longest key plus the `Value` column).
pub fn header_for_map(title: &str, map: &Map<String, Value>) -> String {
    let longest = map.keys().map(|k| k.chars().count()).max().unwrap_or(0);
    header(title, longest + 4 + 5)
}

/// Sorts every object's keys, recursively (Go prints maps sorted).
pub fn sort_keys(v: &Value) -> Value {
    match v {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            let mut out = Map::new();
            for k in keys {
                out.insert(k.clone(), sort_keys(&map[k]));
            }
            Value::Object(out)
        }
        Value::Array(items) => Value::Array(items.iter().map(sort_keys).collect()),
        other => other.clone(),
    }
}

/// A response as Vault prints it with `-format=json`: envelope fields in the client's order,
/// maps sorted.
pub fn secret_value(secret: &Secret) -> Value {
    let mut v = serde_json::to_value(secret).unwrap_or(Value::Null);
    if let Some(data) = v.get_mut("data") {
        *data = sort_keys(data);
    }
    v
}

/// Two-space indented JSON with Go's escaping of `<`, `>` and `&`, and a final newline.
pub fn json(v: &Value) -> String {
    let text = serde_json::to_string_pretty(v).unwrap_or_else(|_| "null".to_string());
    // These characters can only occur inside strings in JSON text, so a plain replacement
    // is exact.
    let mut out = text
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
        .replace('\u{2028}', "\\u2028")
        .replace('\u{2029}', "\\u2029");
    out.push('\n');
    out
}

fn yaml_resolves_to_non_string(s: &str) -> bool {
    const WORDS: &[&str] = &[
        "y", "Y", "yes", "Yes", "YES", "n", "N", "no", "No", "NO", "true", "True", "TRUE", "false",
        "False", "FALSE", "on", "On", "ON", "off", "Off", "OFF", "null", "Null", "NULL", "~",
        ".inf", ".Inf", ".INF", "-.inf", "-.Inf", "-.INF", "+.inf", ".nan", ".NaN", ".NAN",
    ];
    if WORDS.contains(&s) {
        return true;
    }
    let plain = s.replace('_', "");
    let digits = plain.strip_prefix(['-', '+']).unwrap_or(&plain);
    if digits.is_empty() {
        return false;
    }
    if let Some(hex) = digits.strip_prefix("0x") {
        return !hex.is_empty() && hex.chars().all(|c| c.is_ascii_hexdigit());
    }
    if let Some(bin) = digits.strip_prefix("0b") {
        return !bin.is_empty() && bin.chars().all(|c| c == '0' || c == '1');
    }
    if digits.chars().all(|c| c.is_ascii_digit()) {
        return true;
    }
    // Floats: digits with at most one dot and an optional exponent.
    let starts_ok = digits.starts_with(|c: char| c.is_ascii_digit() || c == '.');
    starts_ok && digits.chars().any(|c| c.is_ascii_digit()) && plain.parse::<f64>().is_ok()
}

fn yaml_plain_ok(s: &str) -> bool {
    if s.is_empty() || s.trim() != s {
        return false;
    }
    let first = s.chars().next().unwrap_or(' ');
    let second = s.chars().nth(1);
    if "[]{},#&*!|>'\"%@`".contains(first) {
        return false;
    }
    if "-?:".contains(first) && second.is_none_or(|c| c == ' ') {
        return false;
    }
    if s.contains(": ") || s.contains(" #") || s.ends_with(':') {
        return false;
    }
    s.chars().all(|c| !c.is_control())
}

fn yaml_double_quoted(s: &str) -> String {
    Value::String(s.to_string()).to_string()
}

fn yaml_scalar(s: &str, indent: usize) -> String {
    if s.contains('\n') && s.chars().all(|c| c == '\n' || !c.is_control()) {
        let lines_ok = !s.starts_with(' ') && !s.starts_with('\n');
        if lines_ok {
            let chomp = if !s.ends_with('\n') {
                "-"
            } else if s.ends_with("\n\n") {
                "+"
            } else {
                ""
            };
            let body = s.strip_suffix('\n').unwrap_or(s);
            let pad = " ".repeat(indent);
            let mut out = format!("|{chomp}");
            for line in body.split('\n') {
                out.push('\n');
                if !line.is_empty() {
                    out.push_str(&pad);
                    out.push_str(line);
                }
            }
            return out;
        }
    }
    if s.is_empty() || yaml_resolves_to_non_string(s) || s.chars().any(char::is_control) {
        return yaml_double_quoted(s);
    }
    if yaml_plain_ok(s) {
        return s.to_string();
    }
    format!("'{}'", s.replace('\'', "''"))
}

fn yaml_inline(v: &Value, indent: usize) -> Option<String> {
    match v {
        Value::Null => Some("null".to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) => Some(yaml_scalar(s, indent)),
        Value::Array(a) if a.is_empty() => Some("[]".to_string()),
        Value::Object(m) if m.is_empty() => Some("{}".to_string()),
        _ => None,
    }
}

fn yaml_node(out: &mut String, v: &Value, indent: usize) {
    let pad = " ".repeat(indent);
    match v {
        Value::Object(map) if !map.is_empty() => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            for (i, k) in keys.into_iter().enumerate() {
                // The first key of a map inside a sequence item shares the "- " line.
                if i > 0 || !out.ends_with("- ") {
                    out.push_str(&pad);
                }
                out.push_str(&yaml_scalar(k, indent + 2));
                out.push(':');
                let child = &map[k];
                match yaml_inline(child, indent + 2) {
                    Some(s) => {
                        out.push(' ');
                        out.push_str(&s);
                        out.push('\n');
                    }
                    None => {
                        out.push('\n');
                        let child_indent = if child.is_array() { indent } else { indent + 2 };
                        yaml_node(out, child, child_indent);
                    }
                }
            }
        }
        Value::Array(items) if !items.is_empty() => {
            for (i, item) in items.iter().enumerate() {
                if i > 0 || !out.ends_with("- ") {
                    out.push_str(&pad);
                }
                out.push_str("- ");
                match yaml_inline(item, indent + 2) {
                    Some(s) => {
                        out.push_str(&s);
                        out.push('\n');
                    }
                    None => yaml_node(out, item, indent + 2),
                }
            }
        }
        other => {
            out.push_str(&pad);
            out.push_str(&yaml_inline(other, indent + 2).unwrap_or_default());
            out.push('\n');
        }
    }
}

/// YAML in go-yaml's style: sorted keys, `- ` sequences at the parent key's indentation,
/// quoting only where a plain scalar would be misread.
pub fn yaml(v: &Value) -> String {
    let mut out = String::new();
    yaml_node(&mut out, v, 0);
    out
}

/// Renders a value in `format` (Table and Raw fall back to Go's `%v`).
pub fn render(v: &Value, format: Format) -> String {
    match format {
        Format::Json => json(v),
        Format::Yaml => yaml(v),
        Format::Table | Format::Raw => format!("{}\n", go_value(v)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::{SecretAuth, WrapInfo};
    use serde_json::json;

    #[test]
    fn go_value_matches_percent_v() {
        assert_eq!(go_value(&json!(null)), "<nil>");
        assert_eq!(go_value(&json!("s")), "s");
        assert_eq!(go_value(&json!(3)), "3");
        assert_eq!(go_value(&json!(1.5)), "1.5");
        assert_eq!(go_value(&json!(true)), "true");
        assert_eq!(go_value(&json!(["default", "root"])), "[default root]");
        assert_eq!(go_value(&json!([])), "[]");
        assert_eq!(go_value(&json!({"b": 1, "a": [1, 2]})), "map[a:[1 2] b:1]");
        assert_eq!(go_value(&json!({})), "map[]");
    }

    #[test]
    fn quoted_lists() {
        assert_eq!(go_quoted_list(&["root".into()]), r#"["root"]"#);
        assert_eq!(go_quoted_list(&["a".into(), "b".into()]), r#"["a" "b"]"#);
        assert_eq!(go_quoted_list(&[]), "[]");
    }

    #[test]
    fn tables_align_and_fill_empty_cells() {
        let t = kv_table(&[
            ("refresh_interval".into(), "768h".into()),
            ("foo".into(), "".into()),
        ]);
        assert_eq!(
            t,
            "Key                 Value\n---                 -----\nrefresh_interval    768h\nfoo                 n/a\n"
        );
        let t = table(
            &["Path", "Type"],
            &[vec!["cubbyhole/".into(), "cubbyhole".into()]],
        );
        assert_eq!(
            t,
            "Path          Type\n----          ----\ncubbyhole/    cubbyhole\n"
        );
    }

    #[test]
    fn duration_fields_are_humanised() {
        let map = json!({"ttl": 3600, "creation_ttl": 2764800, "explicit_max_ttl": 0,
                         "period": "1h", "name": 7, "token_period": 90});
        let t = map_table(map.as_object().unwrap()).unwrap();
        assert!(t.contains("ttl                 1h\n"), "{t}");
        assert!(t.contains("creation_ttl        768h\n"), "{t}");
        assert!(t.contains("explicit_max_ttl    0s\n"), "{t}");
        assert!(t.contains("period              1h\n"), "{t}");
        assert!(t.contains("name                7\n"), "{t}");
        assert!(t.contains("token_period        1m30s\n"), "{t}");
        assert!(map_table(&Map::new()).is_none());
    }

    #[test]
    fn secret_table_for_kv_v1_read() {
        let s = Secret {
            lease_duration: 2_764_800,
            data: Some(
                json!({"foo": "bar", "abc": null})
                    .as_object()
                    .unwrap()
                    .clone(),
            ),
            ..Secret::default()
        };
        assert_eq!(
            secret_table(&s).unwrap(),
            "Key                 Value\n---                 -----\nrefresh_interval    768h\nabc                 <nil>\nfoo                 bar\n"
        );
    }

    #[test]
    fn secret_table_for_lease_auth_and_wrap() {
        let s = Secret {
            lease_id: "database/creds/x/abc".into(),
            lease_duration: 3600,
            renewable: true,
            auth: Some(SecretAuth {
                client_token: "hvs.tok".into(),
                accessor: "acc".into(),
                policies: Some(vec!["default".into(), "web".into()]),
                token_policies: Some(vec!["default".into(), "web".into()]),
                metadata: Some([("user".to_string(), "armon".to_string())].into()),
                lease_duration: 0,
                ..SecretAuth::default()
            }),
            wrap_info: Some(WrapInfo {
                token: "hvs.wrap".into(),
                ttl: 300,
                creation_time: "2024-01-02T03:04:05.5Z".into(),
                creation_path: "sys/wrapping/wrap".into(),
                ..WrapInfo::default()
            }),
            ..Secret::default()
        };
        let rows = secret_rows(&s);
        let get = |k: &str| {
            rows.iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(get("lease_id"), Some("database/creds/x/abc"));
        assert_eq!(get("lease_duration"), Some("1h"));
        assert_eq!(get("lease_renewable"), Some("true"));
        assert_eq!(get("token"), Some("hvs.tok"));
        assert_eq!(get("token_duration"), Some("\u{221e}"));
        assert_eq!(get("token_policies"), Some(r#"["default" "web"]"#));
        assert_eq!(get("identity_policies"), Some("[]"));
        assert_eq!(get("token_meta_user"), Some("armon"));
        assert_eq!(get("wrapping_token:"), Some("hvs.wrap"));
        assert_eq!(get("wrapping_token_ttl:"), Some("5m"));
        assert_eq!(
            get("wrapping_token_creation_time:"),
            Some("2024-01-02 03:04:05.5 +0000 UTC")
        );
        assert_eq!(get("refresh_interval"), None);
        assert!(secret_table(&Secret::default()).is_none());
    }

    #[test]
    fn headers_pad_with_equal_signs() {
        let meta = json!({"created_time": 1, "custom_metadata": 1, "deletion_time": 1,
                          "destroyed": 1, "version": 1});
        assert_eq!(
            header_for_map("Metadata", meta.as_object().unwrap()),
            "======= Metadata ======="
        );
        let data = json!({"foo": 1});
        assert_eq!(
            header_for_map("Data", data.as_object().unwrap()),
            "=== Data ==="
        );
        let data = json!({"delete_version_after": 1});
        assert_eq!(
            header_for_map("Metadata", data.as_object().unwrap()),
            "========== Metadata =========="
        );
        assert_eq!(
            header("Secret Path", "secret/data/foo".len()),
            "= Secret Path ="
        );
        assert_eq!(header("Secret Path", 3), "== Secret Path ==");
    }

    #[test]
    fn json_is_indented_and_html_escaped() {
        let v = json!({"a": "<b>&", "list": [1, 2], "empty": []});
        assert_eq!(
            json(&v),
            "{\n  \"a\": \"\\u003cb\\u003e\\u0026\",\n  \"list\": [\n    1,\n    2\n  ],\n  \"empty\": []\n}\n"
        );
    }

    #[test]
    fn secret_value_sorts_data_and_keeps_envelope_order() {
        let s = Secret {
            data: Some(
                json!({"z": 1, "a": {"y": 1, "b": 2}})
                    .as_object()
                    .unwrap()
                    .clone(),
            ),
            ..Secret::default()
        };
        let text = serde_json::to_string(&secret_value(&s)).unwrap();
        assert_eq!(
            text,
            r#"{"request_id":"","lease_id":"","lease_duration":0,"renewable":false,"data":{"a":{"b":2,"y":1},"z":1},"warnings":null}"#
        );
    }

    #[test]
    fn yaml_emitter() {
        let v = json!({
            "request_id": "abc",
            "lease_id": "",
            "renewable": false,
            "lease_duration": 2764800,
            "warnings": null,
            "data": {"foo": "bar", "num": "123", "t": "true", "colon": "a: b",
                      "multi": "l1\nl2", "list": ["x", "z"], "empty": {}, "nested": {"k": 1}},
            "items": [{"a": 1, "b": 2}, "plain"]
        });
        let want = "\
data:
  colon: 'a: b'
  empty: {}
  foo: bar
  list:
  - x
  - z
  multi: |-
    l1
    l2
  nested:
    k: 1
  num: \"123\"
  t: \"true\"
items:
- a: 1
  b: 2
- plain
lease_duration: 2764800
lease_id: \"\"
renewable: false
request_id: abc
warnings: null
";
        assert_eq!(yaml(&v), want);
    }

    #[test]
    fn yaml_scalars() {
        assert_eq!(yaml(&json!("plain")), "plain\n");
        assert_eq!(yaml(&json!("-")), "'-'\n");
        assert_eq!(yaml(&json!("-x")), "-x\n");
        assert_eq!(yaml(&json!("it's: x")), "'it''s: x'\n");
        assert_eq!(yaml(&json!("1.5")), "\"1.5\"\n");
        assert_eq!(yaml(&json!("0x1F")), "\"0x1F\"\n");
        assert_eq!(yaml(&json!("hvs.abc")), "hvs.abc\n");
        assert_eq!(yaml(&json!("tab\there")), "\"tab\\there\"\n");
        assert_eq!(yaml(&json!("end\n")), "|\n  end\n");
        assert_eq!(yaml(&json!([])), "[]\n");
        // YAML 1.1 booleans, as go-yaml resolves them, must be quoted to stay strings.
        assert_eq!(yaml(&json!({"y": "n"})), "\"y\": \"n\"\n");
        assert_eq!(yaml(&json!("off")), "\"off\"\n");
    }

    #[test]
    fn go_time_strings() {
        assert_eq!(
            go_time_string("2018-03-22T02:24:06.945319214Z"),
            "2018-03-22 02:24:06.945319214 +0000 UTC"
        );
        assert_eq!(
            go_time_string("2018-03-22T02:24:06-07:00"),
            "2018-03-22 02:24:06 -0700 -0700"
        );
        assert_eq!(go_time_string("garbage"), "garbage");
    }
}
