//! The policy document: parsing HCL or JSON policy text into a typed [`Policy`], with errors
//! that name what is wrong and, for HCL, the line it is on.
//!
//! Both syntaxes are first turned into one small tree of values that remembers line numbers
//! (HCL only; `serde_json` keeps no positions past a syntax error), and one interpreter turns
//! that tree into path rules. So HCL and JSON accept exactly the same policies.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use hcl::edit::Span;
use hcl::edit::expr::{Expression, ObjectKey};
use hcl::edit::structure::{Body, Structure};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::capability::{Capabilities, Capability};
use crate::hcl1;

/// A parsed policy: a name and its path rules, in the order written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Policy {
    /// The policy's name, as given to [`parse_policy`] (the policy store normalizes names).
    pub name: String,
    /// One entry per `path` block, in the order written; the same pattern may appear twice,
    /// and the ACL merges such entries.
    pub paths: Vec<PathRule>,
    /// The original text, returned as-is by `sys/policy` reads.
    pub raw: String,
}

/// One `path "<pattern>" { ... }` block.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PathRule {
    /// The pattern as written, without a leading `/`: exact, ending in `*` (prefix glob), and/or
    /// with `+` segments (one whole segment each).
    pub path: String,
    /// Granted capabilities; if `deny` is present it is the only member.
    pub capabilities: Capabilities,
    /// Parameter name (lowercased) to allowed values; an empty list allows any value, the key
    /// `*` allows any other parameter.
    pub allowed_parameters: BTreeMap<String, Vec<Value>>,
    /// Parameter name (lowercased) to denied values; an empty list denies any value, the key `*`
    /// denies every parameter.
    pub denied_parameters: BTreeMap<String, Vec<Value>>,
    /// Parameters that must be present.
    pub required_parameters: Vec<String>,
    /// Smallest response-wrapping TTL a client may ask for on this path.
    pub min_wrapping_ttl: Option<Duration>,
    /// Largest response-wrapping TTL a client may ask for on this path.
    pub max_wrapping_ttl: Option<Duration>,
}

impl PathRule {
    /// Whether the pattern uses identity templating (`{{identity...}}`). The ACL skips rules
    /// still templated: [`Policy::render`] fills them for one entity first.
    pub fn is_templated(&self) -> bool {
        self.path.contains("{{")
    }
}

impl Policy {
    /// Whether any path of this policy is templated.
    pub fn is_templated(&self) -> bool {
        self.paths.iter().any(PathRule::is_templated)
    }

    /// This policy with its templated paths rendered for `entity` (or for no entity: every
    /// template then fails). A path that cannot render is left out, as Vault does, and
    /// reported in the returned list (`"<pattern>: <why>"`).
    pub fn render(
        &self,
        entity: Option<&tresor_sdk::identity::EntityInfo>,
    ) -> (Policy, Vec<String>) {
        let mut failed = Vec::new();
        let paths = self
            .paths
            .iter()
            .filter_map(|rule| {
                if !rule.is_templated() {
                    return Some(rule.clone());
                }
                let rendered = match entity {
                    Some(e) => {
                        tresor_sdk::identity::render(&rule.path, e).map_err(|e| e.to_string())
                    }
                    None => Err("the token has no identity entity".to_owned()),
                };
                match rendered {
                    Ok(path) => Some(PathRule {
                        path: path.trim_start_matches('/').to_owned(),
                        ..rule.clone()
                    }),
                    Err(why) => {
                        failed.push(format!("{}: {why}", rule.path));
                        None
                    }
                }
            })
            .collect();
        (
            Policy {
                name: self.name.clone(),
                paths,
                raw: self.raw.clone(),
            },
            failed,
        )
    }
}

/// Where in a policy an error is: the path block (if any) and the line (if known).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ErrorLocation {
    /// The pattern of the enclosing `path` block, if the error is inside one.
    pub path: Option<String>,
    /// The 1-based line, when the input was HCL.
    pub line: Option<usize>,
}

impl fmt::Display for ErrorLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(path) = &self.path {
            write!(f, " in path {path:?}")?;
        }
        if let Some(line) = self.line {
            write!(f, " on line {line}")?;
        }
        Ok(())
    }
}

/// Why a policy was rejected. Every variant is a client error (HTTP 400) and names the field,
/// path and (for HCL) line at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// The text is empty or whitespace.
    #[error("policy is empty")]
    Empty,
    /// A path's `{{identity...}}` template names nothing templates can name.
    #[error("path {path:?}: {message}")]
    InvalidTemplate {
        /// The path as written.
        path: String,
        /// What is wrong with the template.
        message: String,
    },
    /// The text is neither valid HCL nor valid JSON.
    #[error("syntax error on line {line}, column {column}: {message}")]
    Syntax {
        /// 1-based line of the error.
        line: usize,
        /// 1-based column of the error.
        column: usize,
        /// What the parser expected or found.
        message: String,
    },
    /// A key the policy language does not have.
    #[error("invalid key {key:?}{at}")]
    UnknownKey {
        /// The key as written.
        key: String,
        /// Where it is.
        at: ErrorLocation,
    },
    /// The same key twice in one block.
    #[error("duplicate key {key:?}{at}")]
    DuplicateKey {
        /// The key as written.
        key: String,
        /// Where it is.
        at: ErrorLocation,
    },
    /// A capability name Vault does not know (or `root`, which no policy can grant).
    #[error("invalid capability {capability:?}{at}")]
    InvalidCapability {
        /// The name as written.
        capability: String,
        /// Where it is.
        at: ErrorLocation,
    },
    /// A legacy `policy = "..."` value other than deny, read, write or sudo.
    #[error(
        "invalid policy {value:?}{at}: expected one of \"deny\", \"read\", \"write\", \"sudo\""
    )]
    InvalidLegacyPolicy {
        /// The value as written.
        value: String,
        /// Where it is.
        at: ErrorLocation,
    },
    /// A value of the wrong shape for its key.
    #[error("invalid value for {field:?}{at}: expected {expected}")]
    InvalidValue {
        /// The key whose value is wrong.
        field: String,
        /// What the key takes.
        expected: &'static str,
        /// Where it is.
        at: ErrorLocation,
    },
    /// A wrapping TTL that is not a duration.
    #[error("invalid value for {field:?}{at}: {reason}")]
    InvalidDuration {
        /// `min_wrapping_ttl` or `max_wrapping_ttl`.
        field: &'static str,
        /// Why it is not a duration (the SDK's duration parser, the one every field uses).
        reason: String,
        /// Where it is.
        at: ErrorLocation,
    },
    /// `max_wrapping_ttl` below `min_wrapping_ttl` in the same block.
    #[error("max_wrapping_ttl is less than min_wrapping_ttl{at}")]
    WrappingTtlOrder {
        /// Where it is.
        at: ErrorLocation,
    },
    /// A `path` block without exactly one label, or an empty pattern.
    #[error("invalid path block{at}: {reason}")]
    InvalidPathBlock {
        /// What is wrong with it.
        reason: &'static str,
        /// Where it is.
        at: ErrorLocation,
    },
}

/// Parses policy text. The text is JSON if, trimmed, it starts with `{` and parses as JSON;
/// otherwise it is HCL.
pub fn parse_policy(name: &str, text: &str) -> Result<Policy, PolicyError> {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err(PolicyError::Empty);
    }
    let root = if trimmed.starts_with('{') {
        match serde_json::from_str::<Value>(trimmed) {
            Ok(value) => json_to_node(&value),
            Err(json_err) => match hcl_to_node(text) {
                Ok(node) => node,
                // Text that looks like JSON gets the JSON parser's complaint.
                Err(_) => return Err(json_syntax_error(trimmed, &json_err)),
            },
        }
    } else {
        hcl_to_node(text)?
    };
    let paths = interpret_root(root)?;
    for rule in paths.iter().filter(|r| r.is_templated()) {
        tresor_sdk::identity::validate(&rule.path).map_err(|e| PolicyError::InvalidTemplate {
            path: rule.path.clone(),
            message: e.to_string(),
        })?;
    }
    Ok(Policy {
        name: name.to_owned(),
        paths,
        raw: text.to_owned(),
    })
}

// ---------------------------------------------------------------------------------------------
// The intermediate tree.

#[derive(Debug)]
struct Node {
    line: Option<usize>,
    kind: Kind,
}

#[derive(Debug)]
enum Kind {
    Null,
    Bool(bool),
    Number(serde_json::Number),
    Str(String),
    List(Vec<Node>),
    Map(Vec<Entry>),
    /// An HCL construct a policy cannot use (templates, function calls, ...).
    Unsupported,
}

#[derive(Debug)]
struct Entry {
    key: String,
    line: Option<usize>,
    value: Node,
}

struct LineIndex {
    newlines: Vec<usize>,
}

impl LineIndex {
    /// Lines of `text`, not counting the line breaks [`hcl1::normalize`] inserted, so that a
    /// line number is the one the author sees.
    fn new(text: &str, normalized: Option<&hcl1::Normalized>) -> LineIndex {
        LineIndex {
            newlines: text
                .bytes()
                .enumerate()
                .filter(|(i, b)| *b == b'\n' && !normalized.is_some_and(|n| n.is_inserted(*i)))
                .map(|(i, _)| i)
                .collect(),
        }
    }

    fn line(&self, offset: usize) -> usize {
        self.newlines.partition_point(|&nl| nl < offset) + 1
    }

    fn line_of(&self, span: Option<std::ops::Range<usize>>) -> Option<usize> {
        span.map(|r| self.line(r.start))
    }
}

fn json_syntax_error(text: &str, err: &serde_json::Error) -> PolicyError {
    let full = err.to_string();
    let message = match full.rfind(" at line ") {
        Some(i) => full[..i].to_owned(),
        None => full,
    };
    let _ = text;
    PolicyError::Syntax {
        line: err.line(),
        column: err.column(),
        message,
    }
}

fn json_to_node(value: &Value) -> Node {
    let kind = match value {
        Value::Null => Kind::Null,
        Value::Bool(b) => Kind::Bool(*b),
        Value::Number(n) => Kind::Number(n.clone()),
        Value::String(s) => Kind::Str(s.clone()),
        Value::Array(items) => Kind::List(items.iter().map(json_to_node).collect()),
        Value::Object(map) => Kind::Map(
            map.iter()
                .map(|(k, v)| Entry {
                    key: k.clone(),
                    line: None,
                    value: json_to_node(v),
                })
                .collect(),
        ),
    };
    Node { line: None, kind }
}

/// Parses HCL. Vault's HCL 1 forms that HCL 2 refuses (several items on one line) are
/// rewritten by [`hcl1::normalize`] when the text does not parse as written; positions in
/// errors are always those of the text as written.
fn hcl_to_node(text: &str) -> Result<Node, PolicyError> {
    // The parser's time grows exponentially with nesting on some invalid input (issue 12).
    if let Some(at) = hcl1::too_deep(text) {
        let (line, column) = hcl1::line_column(text, at);
        return Err(PolicyError::Syntax {
            line,
            column,
            message: format!("nested more than {} levels deep", hcl1::MAX_PARSE_NESTING),
        });
    }
    let first = match hcl::edit::parser::parse_body(text) {
        Ok(body) => return body_to_node(&body, &LineIndex::new(text, None), true),
        Err(err) => err,
    };
    let normalized = hcl1::normalize(text);
    if !normalized.changed() {
        return Err(hcl_syntax_error(text, None, &first));
    }
    match hcl::edit::parser::parse_body(&normalized.text) {
        Ok(body) => body_to_node(
            &body,
            &LineIndex::new(&normalized.text, Some(&normalized)),
            true,
        ),
        Err(err) => Err(hcl_syntax_error(text, Some(&normalized), &err)),
    }
}

/// A syntax error at the position the author wrote (`normalized` is the text it was found in,
/// when that was the rewrite).
fn hcl_syntax_error(
    text: &str,
    normalized: Option<&hcl1::Normalized>,
    err: &hcl::edit::parser::Error,
) -> PolicyError {
    let loc = err.location();
    let (line, column) = match normalized {
        Some(n) => hcl1::line_column(text, n.original_offset(loc.offset())),
        None => (loc.line(), loc.column()),
    };
    PolicyError::Syntax {
        line,
        column,
        message: err.message().replace('\n', " "),
    }
}

fn body_to_node(body: &Body, idx: &LineIndex, top_level: bool) -> Result<Node, PolicyError> {
    let mut entries = Vec::new();
    for structure in body.iter() {
        match structure {
            Structure::Attribute(attr) => entries.push(Entry {
                key: attr.key.as_str().to_owned(),
                line: idx.line_of(attr.span()),
                value: expr_to_node(&attr.value, idx),
            }),
            Structure::Block(block) => {
                let line = idx.line_of(block.span());
                let ident = block.ident.as_str();
                if top_level && ident == "path" && block.labels.len() != 1 {
                    return Err(PolicyError::InvalidPathBlock {
                        reason: "a path block takes exactly one label, the path pattern",
                        at: ErrorLocation { path: None, line },
                    });
                }
                // `ident "a" "b" { body }` becomes ident = { a = { b = body } }.
                let mut value = body_to_node(&block.body, idx, false)?;
                for label in block.labels.iter().rev() {
                    value = Node {
                        line,
                        kind: Kind::Map(vec![Entry {
                            key: label.as_str().to_owned(),
                            line,
                            value,
                        }]),
                    };
                }
                entries.push(Entry {
                    key: ident.to_owned(),
                    line,
                    value,
                });
            }
        }
    }
    Ok(Node {
        line: idx.line_of(body.span()),
        kind: Kind::Map(entries),
    })
}

fn expr_to_node(expr: &Expression, idx: &LineIndex) -> Node {
    let line = idx.line_of(expr.span());
    let kind = match expr {
        Expression::Null(_) => Kind::Null,
        Expression::Bool(b) => Kind::Bool(*b.value()),
        Expression::Number(n) => {
            let n = n.value();
            let json = if let Some(u) = n.as_u64() {
                Some(serde_json::Number::from(u))
            } else if let Some(i) = n.as_i64() {
                Some(serde_json::Number::from(i))
            } else {
                n.as_f64().and_then(serde_json::Number::from_f64)
            };
            json.map_or(Kind::Unsupported, Kind::Number)
        }
        Expression::String(s) => Kind::Str(s.value().clone()),
        Expression::Array(items) => {
            Kind::List(items.iter().map(|e| expr_to_node(e, idx)).collect())
        }
        Expression::Object(object) => {
            let mut entries = Vec::with_capacity(object.len());
            for (key, value) in object.iter() {
                let key_text = match key {
                    ObjectKey::Ident(ident) => ident.as_str().to_owned(),
                    ObjectKey::Expression(Expression::String(s)) => s.value().clone(),
                    ObjectKey::Expression(_) => {
                        return Node {
                            line: idx.line_of(key.span()),
                            kind: Kind::Unsupported,
                        };
                    }
                };
                entries.push(Entry {
                    key: key_text,
                    line: idx.line_of(key.span()),
                    value: expr_to_node(value.expr(), idx),
                });
            }
            Kind::Map(entries)
        }
        Expression::Parenthesis(inner) => return expr_to_node(inner.inner(), idx),
        _ => Kind::Unsupported,
    };
    Node { line, kind }
}

// ---------------------------------------------------------------------------------------------
// Interpretation.

fn at(path: Option<&str>, line: Option<usize>) -> ErrorLocation {
    ErrorLocation {
        path: path.map(str::to_owned),
        line,
    }
}

fn interpret_root(root: Node) -> Result<Vec<PathRule>, PolicyError> {
    let Kind::Map(entries) = root.kind else {
        return Err(PolicyError::InvalidValue {
            field: "policy".to_owned(),
            expected: "an object with path rules",
            at: at(None, root.line),
        });
    };
    let mut rules = Vec::new();
    for entry in entries {
        match entry.key.as_str() {
            "path" => collect_paths(entry.value, entry.line, &mut rules)?,
            // Vault accepts and ignores a top-level name.
            "name" => {}
            _ => {
                return Err(PolicyError::UnknownKey {
                    key: entry.key,
                    at: at(None, entry.line),
                });
            }
        }
    }
    Ok(rules)
}

fn collect_paths(
    node: Node,
    line: Option<usize>,
    rules: &mut Vec<PathRule>,
) -> Result<(), PolicyError> {
    match node.kind {
        Kind::Map(entries) => {
            for entry in entries {
                rules.push(interpret_rule(entry)?);
            }
            Ok(())
        }
        Kind::List(items) => {
            for item in items {
                let item_line = item.line.or(line);
                collect_paths(item, item_line, rules)?;
            }
            Ok(())
        }
        _ => Err(PolicyError::InvalidValue {
            field: "path".to_owned(),
            expected: "path blocks, each labelled with a path pattern",
            at: at(None, node.line.or(line)),
        }),
    }
}

/// Flattens a rule body: a map, or (JSON) a list of maps.
fn rule_entries(node: Node, pattern: &str, line: Option<usize>) -> Result<Vec<Entry>, PolicyError> {
    match node.kind {
        Kind::Map(entries) => Ok(entries),
        Kind::List(items) => {
            let mut all = Vec::new();
            for item in items {
                let item_line = item.line.or(line);
                all.extend(rule_entries(item, pattern, item_line)?);
            }
            Ok(all)
        }
        _ => Err(PolicyError::InvalidPathBlock {
            reason: "the rule must be a block (an object) of settings",
            at: at(Some(pattern), node.line.or(line)),
        }),
    }
}

fn interpret_rule(entry: Entry) -> Result<PathRule, PolicyError> {
    let pattern = entry.key.strip_prefix('/').unwrap_or(&entry.key).to_owned();
    let p = Some(pattern.as_str());
    if pattern.is_empty() {
        return Err(PolicyError::InvalidPathBlock {
            reason: "the path pattern is empty",
            at: at(p, entry.line),
        });
    }
    let entries = rule_entries(entry.value, &pattern, entry.line)?;

    let mut seen: Vec<String> = Vec::new();
    let mut capabilities = Capabilities::EMPTY;
    let mut legacy: Option<Capabilities> = None;
    let mut allowed = BTreeMap::new();
    let mut denied = BTreeMap::new();
    let mut required = Vec::new();
    let mut min_ttl = None;
    let mut max_ttl = None;
    let mut min_line = None;

    for item in entries {
        let line = item.line.or(item.value.line);
        if seen.contains(&item.key) {
            return Err(PolicyError::DuplicateKey {
                key: item.key,
                at: at(p, line),
            });
        }
        seen.push(item.key.clone());
        match item.key.as_str() {
            "capabilities" => {
                for name in string_list(item.value, "capabilities", p, line)? {
                    match Capability::from_policy_name(&name.0) {
                        Some(cap) => capabilities.insert(cap),
                        None => {
                            return Err(PolicyError::InvalidCapability {
                                capability: name.0,
                                at: at(p, name.1.or(line)),
                            });
                        }
                    }
                }
            }
            "policy" => {
                let Kind::Str(value) = item.value.kind else {
                    return Err(invalid_value("policy", "a string", p, line));
                };
                legacy = Some(legacy_policy(&value).ok_or_else(|| {
                    PolicyError::InvalidLegacyPolicy {
                        value: value.clone(),
                        at: at(p, line),
                    }
                })?);
            }
            "allowed_parameters" => {
                allowed = parameter_map(item.value, "allowed_parameters", p, line)?
            }
            "denied_parameters" => {
                denied = parameter_map(item.value, "denied_parameters", p, line)?
            }
            "required_parameters" => {
                required = string_list(item.value, "required_parameters", p, line)?
                    .into_iter()
                    .map(|(s, _)| s)
                    .collect();
            }
            "min_wrapping_ttl" => {
                min_ttl = wrapping_ttl(item.value, "min_wrapping_ttl", p, line)?;
                min_line = line;
            }
            "max_wrapping_ttl" => max_ttl = wrapping_ttl(item.value, "max_wrapping_ttl", p, line)?,
            // Free text for humans; Vault accepts it.
            "comment" => {}
            _ => {
                return Err(PolicyError::UnknownKey {
                    key: item.key,
                    at: at(p, line),
                });
            }
        }
    }

    if let Some(legacy) = legacy {
        if legacy.contains(Capability::Deny) {
            capabilities = legacy;
        } else {
            capabilities = capabilities.union(legacy);
        }
    }
    if capabilities.contains(Capability::Deny) {
        capabilities = Capability::Deny.into();
    }
    if let (Some(min), Some(max)) = (min_ttl, max_ttl)
        && max < min
    {
        return Err(PolicyError::WrappingTtlOrder {
            at: at(p, min_line.or(entry.line)),
        });
    }

    Ok(PathRule {
        path: pattern,
        capabilities,
        allowed_parameters: allowed,
        denied_parameters: denied,
        required_parameters: required,
        min_wrapping_ttl: min_ttl,
        max_wrapping_ttl: max_ttl,
    })
}

/// Lowercases character by character (no context rules), so the ACL can compare request
/// parameter names against these keys without allocating.
pub(crate) fn lowercase(s: &str) -> String {
    s.chars().flat_map(char::to_lowercase).collect()
}

/// The capabilities of Vault's legacy `policy = "..."` shorthand.
fn legacy_policy(value: &str) -> Option<Capabilities> {
    use Capability::*;
    let caps: &[Capability] = match value {
        "deny" => &[Deny],
        "read" => &[Read, List],
        "write" => &[Create, Read, Update, Delete, List],
        "sudo" => &[Create, Read, Update, Delete, List, Sudo],
        _ => return None,
    };
    Some(caps.iter().copied().collect())
}

fn invalid_value(
    field: &str,
    expected: &'static str,
    p: Option<&str>,
    line: Option<usize>,
) -> PolicyError {
    PolicyError::InvalidValue {
        field: field.to_owned(),
        expected,
        at: at(p, line),
    }
}

fn string_list(
    node: Node,
    field: &str,
    p: Option<&str>,
    line: Option<usize>,
) -> Result<Vec<(String, Option<usize>)>, PolicyError> {
    let Kind::List(items) = node.kind else {
        return Err(invalid_value(
            field,
            "a list of strings",
            p,
            node.line.or(line),
        ));
    };
    items
        .into_iter()
        .map(|item| match item.kind {
            Kind::Str(s) => Ok((s, item.line)),
            _ => Err(invalid_value(
                field,
                "a list of strings",
                p,
                item.line.or(line),
            )),
        })
        .collect()
}

fn parameter_map(
    node: Node,
    field: &str,
    p: Option<&str>,
    line: Option<usize>,
) -> Result<BTreeMap<String, Vec<Value>>, PolicyError> {
    const EXPECTED: &str = "an object of parameter names to lists of values";
    let entries = match node.kind {
        Kind::Map(entries) => entries,
        // JSON written for HCL1 sometimes wraps objects in lists.
        Kind::List(items) => {
            let mut all = Vec::new();
            for item in items {
                match item.kind {
                    Kind::Map(entries) => all.extend(entries),
                    _ => return Err(invalid_value(field, EXPECTED, p, item.line.or(line))),
                }
            }
            all
        }
        _ => return Err(invalid_value(field, EXPECTED, p, node.line.or(line))),
    };
    let mut map: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for entry in entries {
        let entry_line = entry.line.or(line);
        let values = match entry.value.kind {
            Kind::List(items) => items
                .into_iter()
                .map(|item| node_to_value(item, field, p, entry_line))
                .collect::<Result<Vec<_>, _>>()?,
            _ => return Err(invalid_value(field, EXPECTED, p, entry_line)),
        };
        // Vault lowercases parameter names in policies, and compares request names lowercased.
        map.entry(lowercase(&entry.key)).or_default().extend(values);
    }
    Ok(map)
}

fn node_to_value(
    node: Node,
    field: &str,
    p: Option<&str>,
    line: Option<usize>,
) -> Result<Value, PolicyError> {
    Ok(match node.kind {
        Kind::Null => Value::Null,
        Kind::Bool(b) => Value::Bool(b),
        Kind::Number(n) => Value::Number(n),
        Kind::Str(s) => Value::String(s),
        Kind::List(items) => Value::Array(
            items
                .into_iter()
                .map(|i| node_to_value(i, field, p, line))
                .collect::<Result<_, _>>()?,
        ),
        Kind::Map(entries) => Value::Object(
            entries
                .into_iter()
                .map(|e| Ok((e.key, node_to_value(e.value, field, p, line)?)))
                .collect::<Result<_, PolicyError>>()?,
        ),
        Kind::Unsupported => {
            return Err(invalid_value(
                field,
                "literal values (templates and expressions are not supported)",
                p,
                node.line.or(line),
            ));
        }
    })
}

fn wrapping_ttl(
    node: Node,
    field: &'static str,
    p: Option<&str>,
    line: Option<usize>,
) -> Result<Option<Duration>, PolicyError> {
    let line = node.line.or(line);
    let value = match node.kind {
        Kind::Str(s) => serde_json::Value::String(s),
        Kind::Number(n) => serde_json::Value::Number(n),
        _ => {
            return Err(invalid_value(
                field,
                "a number of seconds or a duration string such as \"90s\"",
                p,
                line,
            ));
        }
    };
    let duration =
        tresor_sdk::duration::from_json(&value).map_err(|reason| PolicyError::InvalidDuration {
            field,
            reason,
            at: at(p, line),
        })?;
    // Zero means "not set", as in Vault.
    Ok((!duration.is_zero()).then_some(duration))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hcl_and_json_agree() {
        let hcl = r#"
            path "secret/foo" {
              capabilities = ["create", "read"]
              allowed_parameters = {
                "Bar" = ["zip", "zap"]
                "*"   = []
              }
              denied_parameters = { "baz" = [] }
              required_parameters = ["bar"]
              min_wrapping_ttl = "1s"
              max_wrapping_ttl = 90
            }
        "#;
        let json = r#"{"path": {"secret/foo": {
            "capabilities": ["create", "read"],
            "allowed_parameters": {"Bar": ["zip", "zap"], "*": []},
            "denied_parameters": {"baz": []},
            "required_parameters": ["bar"],
            "min_wrapping_ttl": "1s",
            "max_wrapping_ttl": 90
        }}}"#;
        let a = parse_policy("p", hcl).unwrap();
        let b = parse_policy("p", json).unwrap();
        assert_eq!(a.paths, b.paths);
        let rule = &a.paths[0];
        assert_eq!(rule.path, "secret/foo");
        assert_eq!(rule.capabilities.to_strings(), vec!["create", "read"]);
        assert_eq!(
            rule.allowed_parameters.get("bar"),
            Some(&vec![Value::from("zip"), Value::from("zap")])
        );
        assert_eq!(rule.allowed_parameters.get("*"), Some(&vec![]));
        assert_eq!(rule.required_parameters, vec!["bar".to_owned()]);
        assert_eq!(rule.min_wrapping_ttl, Some(Duration::from_secs(1)));
        assert_eq!(rule.max_wrapping_ttl, Some(Duration::from_secs(90)));
        assert_eq!(a.raw, hcl);
    }

    #[test]
    fn legacy_policies_map_to_capabilities() {
        let p = parse_policy(
            "p",
            "path \"a\" {\n policy = \"read\"\n}\npath \"b\" {\n policy = \"write\"\n}\n\
             path \"c\" {\n policy = \"sudo\"\n}\npath \"d\" {\n policy = \"deny\"\n capabilities = [\"read\"]\n}\n\
             path \"e\" {\n policy = \"read\"\n capabilities = [\"create\", \"sudo\"]\n}\n",
        )
        .unwrap();
        let caps: Vec<Vec<&str>> = p
            .paths
            .iter()
            .map(|r| r.capabilities.to_strings())
            .collect();
        assert_eq!(caps[0], vec!["list", "read"]);
        assert_eq!(caps[1], vec!["create", "delete", "list", "read", "update"]);
        assert_eq!(
            caps[2],
            vec!["create", "delete", "list", "read", "sudo", "update"]
        );
        assert_eq!(caps[3], vec!["deny"]);
        assert_eq!(caps[4], vec!["create", "list", "read", "sudo"]);
    }

    #[test]
    fn deny_is_alone_and_leading_slash_is_trimmed() {
        let p = parse_policy(
            "p",
            "path \"/secret/x\" {\n capabilities = [\"read\", \"deny\", \"sudo\"]\n}\n",
        )
        .unwrap();
        assert_eq!(p.paths[0].path, "secret/x");
        assert_eq!(p.paths[0].capabilities.to_strings(), vec!["deny"]);
    }

    #[test]
    fn json_list_forms() {
        let p = parse_policy(
            "p",
            r#"{"path": [{"a/*": [{"capabilities": ["read"]}]}, {"b": {"capabilities": ["list"], "allowed_parameters": [{"x": [1, true, null]}]}}]}"#,
        )
        .unwrap();
        assert_eq!(p.paths.len(), 2);
        assert_eq!(p.paths[0].path, "a/*");
        assert_eq!(
            p.paths[1].allowed_parameters.get("x"),
            Some(&vec![Value::from(1), Value::from(true), Value::Null])
        );
    }

    #[test]
    fn comment_only_policy_grants_nothing() {
        let p = parse_policy("p", "# nothing here\n").unwrap();
        assert!(p.paths.is_empty());
    }
}

#[cfg(test)]
mod syntax_variants {
    use super::*;

    #[test]
    fn one_line_blocks_and_block_form_parameter_maps() {
        let p = parse_policy(
            "p",
            "path \"a/*\" { capabilities = [\"read\"] }\n\
             path \"b\" {\n  capabilities = [\"update\"]\n  allowed_parameters {\n    bar = [\"zip\"]\n  }\n}\n",
        )
        .unwrap();
        assert_eq!(p.paths.len(), 2);
        assert_eq!(
            p.paths[1].allowed_parameters.get("bar"),
            Some(&vec![Value::from("zip")])
        );
    }
}

/// Issue 12: the HCL 1 forms Vault accepts in policies, several items on one line.
#[cfg(test)]
mod hcl1_forms {
    use super::*;

    #[test]
    fn one_line_maps_and_blocks_parse_like_their_multi_line_forms() {
        let one_line = r#"path "pki/issue/web" { capabilities = ["update"] allowed_parameters = { "common_name" = [] "ttl" = ["5m"] } }
path "secret/*" { capabilities = ["read"] } path "auth/*" { capabilities = ["deny"] }
"#;
        let multi_line = r#"path "pki/issue/web" {
  capabilities = ["update"]
  allowed_parameters = {
    "common_name" = []
    "ttl" = ["5m"]
  }
}
path "secret/*" {
  capabilities = ["read"]
}
path "auth/*" {
  capabilities = ["deny"]
}
"#;
        let a = parse_policy("p", one_line).unwrap();
        let b = parse_policy("p", multi_line).unwrap();
        assert_eq!(a.paths, b.paths);
        assert_eq!(a.paths.len(), 3);
        assert_eq!(
            a.paths[0].allowed_parameters.get("ttl"),
            Some(&vec![Value::from("5m")])
        );
        assert_eq!(
            a.paths[0].allowed_parameters.get("common_name"),
            Some(&vec![])
        );
        assert_eq!(a.raw, one_line, "the stored text is what was written");
    }

    #[test]
    fn errors_in_rewritten_text_name_the_line_as_written() {
        // The first line needs the rewrite; the error is on line 3, whatever was inserted.
        let text = "path \"a\" { capabilities = [\"read\"] allowed_parameters = { \"x\" = [] \"y\" = [] } }\n\npath \"b\" { capabilities = [\"reed\"] max_wrapping_ttl = \"1m\" }\n";
        let e = parse_policy("p", text).unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid capability \"reed\" in path \"b\" on line 3"
        );
        let e = parse_policy(
            "p",
            "path \"a\" { capabilities = [\"read\"] policy = \"read\" }\npath \"b\" { capabilities = [\"read\",, ] }\n",
        )
        .unwrap_err();
        assert!(matches!(e, PolicyError::Syntax { line: 2, .. }), "{e:?}");
        // The message is the parser's, without a prefix the caller adds ("failed to parse
        // policy: ..." in the policy store).
        assert!(e.to_string().starts_with("syntax error on line 2"), "{e}");
    }

    /// Issue 12: a policy nested 10,000 deep is a syntax error, not a crash.
    #[test]
    fn deeply_nested_policies_are_syntax_errors() {
        let n = 10_000;
        for text in [
            format!(
                "path \"a\" {{ capabilities = {}{} }}",
                "[".repeat(n),
                "]".repeat(n)
            ),
            format!("path \"a\" {{ x = {}1{} }}", "{a=".repeat(n), "}".repeat(n)),
            format!("{}1{}", "{\"a\":".repeat(n), "}".repeat(n)),
        ] {
            let err = parse_policy("deep", &text).unwrap_err();
            assert!(matches!(err, PolicyError::Syntax { .. }), "{err}");
        }
    }
}
