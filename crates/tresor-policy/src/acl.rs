//! The compiled ACL: a token's policies merged once into lookup structures, then checked per
//! request without allocating.
//!
//! Rules are merged per pattern across all policies (capabilities unioned, `deny` alone if any
//! policy denies, parameter maps merged, the lowest wrapping TTLs kept). Then:
//!
//! * exact patterns go into a hash map (plus a second map for patterns ending in `/`, so a LIST
//!   path missing its trailing slash can still be looked up without building a string);
//! * prefix globs (`foo/*`) go into a byte trie that yields the longest matching prefix;
//! * patterns with `+` segments go into a list sorted once, at compile time, by Vault's
//!   priority rules, so the first one that matches is the best of them.
//!
//! A request is decided by the single most specific matching rule, as in Vault: an exact match
//! first, otherwise the higher-priority of the longest glob and the best `+` pattern. Rules do
//! not combine across patterns, so a broad grant never widens a narrower rule and a broad
//! `deny` never overrides a narrower grant.

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value};

use crate::capability::{
    Capabilities, Capability, Operation, Requirement, checks_parameters, requirement,
};
use crate::policy::{PathRule, Policy, lowercase};

/// The outcome of [`Acl::allow_operation`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AclResult {
    /// Whether the operation may proceed.
    pub allowed: bool,
    /// Whether the deciding rule grants `sudo` (needed, in addition, on root-protected paths).
    pub root_privs: bool,
    /// Whether this is the root ACL.
    pub is_root: bool,
    /// The capabilities of the deciding rule (empty if none matched).
    pub capabilities: Capabilities,
    /// The deciding rule's minimum response-wrapping TTL, for the caller to enforce.
    pub min_wrapping_ttl: Option<Duration>,
    /// The deciding rule's maximum response-wrapping TTL, for the caller to enforce.
    pub max_wrapping_ttl: Option<Duration>,
    /// Why the operation was denied; `None` when allowed.
    pub denied_reason: Option<DeniedReason>,
}

/// Proof that a request passed the ACL, and what the decision carries on: whether the caller
/// has `sudo` there and the wrapping TTL bounds. Only this module builds one (through
/// [`Acl::authorize`], or [`Authorized::unauthenticated_path`] for the paths an engine
/// declares unauthenticated), and the core's dispatch takes one, so a request no policy
/// allowed cannot reach an engine.
#[derive(Debug)]
pub struct Authorized {
    sudo: bool,
    is_root: bool,
    min_wrapping_ttl: Option<Duration>,
    max_wrapping_ttl: Option<Duration>,
}

impl Authorized {
    /// A path the engine declares unauthenticated (logins, public CA certificates): no ACL
    /// decides it. `root` says whether a token that came along anyway is root.
    pub fn unauthenticated_path(root: bool) -> Authorized {
        Authorized {
            sudo: root,
            is_root: root,
            min_wrapping_ttl: None,
            max_wrapping_ttl: None,
        }
    }
    pub fn sudo(&self) -> bool {
        self.sudo
    }
    pub fn is_root(&self) -> bool {
        self.is_root
    }
    pub fn min_wrapping_ttl(&self) -> Option<Duration> {
        self.min_wrapping_ttl
    }
    pub fn max_wrapping_ttl(&self) -> Option<Duration> {
        self.max_wrapping_ttl
    }
}

impl AclResult {
    fn denied(reason: DeniedReason) -> AclResult {
        AclResult {
            allowed: false,
            root_privs: false,
            is_root: false,
            capabilities: Capabilities::EMPTY,
            min_wrapping_ttl: None,
            max_wrapping_ttl: None,
            denied_reason: Some(reason),
        }
    }

    fn deny_with(mut self, reason: DeniedReason) -> AclResult {
        self.allowed = false;
        self.denied_reason = Some(reason);
        self
    }
}

/// Why [`Acl::allow_operation`] denied a request. Clients only ever see "permission denied";
/// this is for audit logs and tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeniedReason {
    /// No policy path matches the request path.
    NoMatchingRule,
    /// The deciding rule is `deny`.
    ExplicitDeny,
    /// The deciding rule lacks the capability the operation needs.
    MissingCapability(Capability),
    /// The merged rule's `max_wrapping_ttl` is below its `min_wrapping_ttl`.
    WrappingTtlConflict,
    /// A `required_parameters` entry (lowercased) is absent from the request.
    RequiredParameterMissing(Arc<str>),
    /// A request parameter hit `denied_parameters`; this is the policy's key (`*` for all).
    ParameterDenied(Arc<str>),
    /// A request parameter is not permitted by `allowed_parameters`: `Some(name)` when the name
    /// is listed but the value is not, `None` when the name is not listed at all.
    ParameterNotAllowed(Option<Arc<str>>),
}

impl fmt::Display for DeniedReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeniedReason::NoMatchingRule => f.write_str("no policy grants access to the path"),
            DeniedReason::ExplicitDeny => f.write_str("a policy explicitly denies the path"),
            DeniedReason::MissingCapability(cap) => {
                write!(
                    f,
                    "the {cap:?} capability is not granted",
                    cap = cap.as_str()
                )
            }
            DeniedReason::WrappingTtlConflict => {
                f.write_str("max_wrapping_ttl is less than min_wrapping_ttl")
            }
            DeniedReason::RequiredParameterMissing(p) => {
                write!(f, "required parameter {p:?} is missing")
            }
            DeniedReason::ParameterDenied(p) => write!(f, "parameter {p:?} is denied"),
            DeniedReason::ParameterNotAllowed(Some(p)) => {
                write!(f, "value of parameter {p:?} is not allowed")
            }
            DeniedReason::ParameterNotAllowed(None) => {
                f.write_str("a parameter is not in allowed_parameters")
            }
        }
    }
}

/// A compiled access-control list for one token.
#[derive(Debug, Clone)]
pub struct Acl {
    root: bool,
    rules: Vec<CompiledRule>,
    exact: HashMap<Box<str>, u32>,
    /// Exact patterns that end in `/`, keyed without it.
    exact_dir: HashMap<Box<str>, u32>,
    globs: PrefixTrie,
    /// Sorted by descending priority.
    wildcards: Vec<WildcardRule>,
    policy_names: Vec<String>,
}

#[derive(Debug, Clone)]
struct CompiledRule {
    pattern: Arc<str>,
    perms: Perms,
}

#[derive(Debug, Clone)]
struct Perms {
    caps: Capabilities,
    allowed: ParamSet,
    denied: ParamSet,
    /// Lowercased.
    required: Vec<Arc<str>>,
    min_wrap: Option<Duration>,
    max_wrap: Option<Duration>,
}

/// One of `allowed_parameters` / `denied_parameters`, compiled.
#[derive(Debug, Clone, Default)]
struct ParamSet {
    /// The `*` key, when present (kept as an `Arc` so a denial can name it without allocating).
    star: Option<Arc<str>>,
    /// Sorted by name, names lowercased, `*` excluded.
    entries: Vec<(Arc<str>, ValueList)>,
}

impl ParamSet {
    fn is_empty(&self) -> bool {
        self.star.is_none() && self.entries.is_empty()
    }

    /// Finds `name` compared lowercased, without allocating.
    fn get(&self, name: &str) -> Option<&(Arc<str>, ValueList)> {
        self.entries
            .binary_search_by(|(key, _)| cmp_lowercased(key, name))
            .ok()
            .map(|i| &self.entries[i])
    }
}

/// Compares `key` (already lowercase) with `name` lowercased on the fly.
fn cmp_lowercased(key: &str, name: &str) -> Ordering {
    if name.is_ascii() {
        key.bytes()
            .cmp(name.bytes().map(|b| b.to_ascii_lowercase()))
    } else {
        key.chars().cmp(name.chars().flat_map(char::to_lowercase))
    }
}

#[derive(Debug, Clone)]
enum ValueList {
    /// An empty list in the policy: any value.
    Any,
    OneOf(Vec<ValueMatcher>),
}

#[derive(Debug, Clone)]
enum ValueMatcher {
    /// A string value, with Vault's leading/trailing `*` globbing.
    Str(StrMatch),
    /// Any other JSON value, compared for equality (numbers by value).
    Other(Value),
}

#[derive(Debug, Clone)]
enum StrMatch {
    Exact(Box<str>),
    Prefix(Box<str>),
    Suffix(Box<str>),
    Contains(Box<str>),
}

impl StrMatch {
    /// Vault's glob for parameter values: a value of fewer than two characters is literal
    /// (so a lone `*` matches only `*`); otherwise a leading and/or trailing `*` makes it a
    /// suffix, prefix or substring match.
    fn compile(item: &str) -> StrMatch {
        if item.chars().count() < 2 {
            return StrMatch::Exact(item.into());
        }
        let starts = item.starts_with('*');
        let ends = item.ends_with('*');
        match (starts, ends) {
            (true, true) => StrMatch::Contains(item[1..item.len() - 1].into()),
            (true, false) => StrMatch::Suffix(item[1..].into()),
            (false, true) => StrMatch::Prefix(item[..item.len() - 1].into()),
            (false, false) => StrMatch::Exact(item.into()),
        }
    }

    fn matches(&self, value: &str) -> bool {
        match self {
            StrMatch::Exact(s) => value == &**s,
            StrMatch::Prefix(s) => value.starts_with(&**s),
            StrMatch::Suffix(s) => value.ends_with(&**s),
            StrMatch::Contains(s) => value.contains(&**s),
        }
    }
}

impl ValueMatcher {
    fn matches(&self, value: &Value) -> bool {
        match (self, value) {
            (ValueMatcher::Str(m), Value::String(s)) => m.matches(s),
            (ValueMatcher::Str(_), _) => false,
            (ValueMatcher::Other(expected), actual) => values_equal(expected, actual),
        }
    }
}

fn values_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(x), Some(y)) => x == y,
            _ => match (x.as_u64(), y.as_u64()) {
                (Some(x), Some(y)) => x == y,
                _ => x.as_f64() == y.as_f64(),
            },
        },
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| values_equal(a, b))
        }
        _ => a == b,
    }
}

impl ValueList {
    fn matches_one(&self, value: &Value) -> bool {
        match self {
            ValueList::Any => true,
            ValueList::OneOf(matchers) => matchers.iter().any(|m| m.matches(value)),
        }
    }

    /// For `allowed_parameters`: the value as a whole is listed or, for a non-empty array,
    /// every element is. (Vault compares arrays only as a whole, which makes list-valued
    /// parameters impossible to allow; checking elements keeps the same meaning.)
    fn allows(&self, value: &Value) -> bool {
        if self.matches_one(value) {
            return true;
        }
        match value {
            Value::Array(items) if !items.is_empty() => items.iter().all(|v| self.matches_one(v)),
            _ => false,
        }
    }

    /// For `denied_parameters`: the value as a whole is listed or, for an array, any element
    /// is. (Vault compares arrays only as a whole, so `["root"]` slips past a denied `"root"`;
    /// this closes that gap.)
    fn denies(&self, value: &Value) -> bool {
        if self.matches_one(value) {
            return true;
        }
        match value {
            Value::Array(items) => items.iter().any(|v| self.matches_one(v)),
            _ => false,
        }
    }
}

/// Vault's priority of a non-exact pattern; greater is higher priority.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Priority {
    /// Byte index of the first `+` segment or of the trailing `*`.
    first_wildcard: usize,
    is_prefix: bool,
    plus_segments: usize,
    /// The pattern without its trailing `*`.
    text: Arc<str>,
}

impl Ord for Priority {
    fn cmp(&self, other: &Self) -> Ordering {
        // 1. A wildcard that starts earlier is lower priority.
        self.first_wildcard
            .cmp(&other.first_wildcard)
            // 2. Ending in `*` is lower priority than not.
            .then_with(|| other.is_prefix.cmp(&self.is_prefix))
            // 3. More `+` segments is lower priority.
            .then_with(|| other.plus_segments.cmp(&self.plus_segments))
            // 4. Shorter is lower priority.
            .then_with(|| self.text.len().cmp(&other.text.len()))
            // 5. Lexicographically smaller is lower priority.
            .then_with(|| self.text.cmp(&other.text))
    }
}

impl PartialOrd for Priority {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

#[derive(Debug, Clone)]
enum Segment {
    Any,
    Literal(Box<str>),
}

#[derive(Debug, Clone)]
struct WildcardRule {
    /// For prefix patterns the last segment matches as a prefix of the path segment.
    segments: Vec<Segment>,
    priority: Priority,
    rule: u32,
}

impl WildcardRule {
    fn matches<'a>(&self, mut parts: impl Iterator<Item = &'a str>) -> bool {
        let last = self.segments.len() - 1;
        for (i, segment) in self.segments.iter().enumerate() {
            let Some(part) = parts.next() else {
                return false;
            };
            if i == last && self.priority.is_prefix {
                return match segment {
                    Segment::Any => true,
                    Segment::Literal(prefix) => part.starts_with(&**prefix),
                };
            }
            if let Segment::Literal(lit) = segment
                && part != &**lit
            {
                return false;
            }
        }
        parts.next().is_none()
    }
}

/// A byte trie of glob prefixes, answering "longest stored prefix of this path".
#[derive(Debug, Clone)]
struct PrefixTrie {
    nodes: Vec<TrieNode>,
    /// Per stored rule: its priority (as a glob), by rule index.
    priorities: HashMap<u32, Priority>,
}

#[derive(Debug, Clone, Default)]
struct TrieNode {
    /// Sorted by byte.
    children: Vec<(u8, u32)>,
    rule: Option<u32>,
}

impl PrefixTrie {
    fn new() -> PrefixTrie {
        PrefixTrie {
            nodes: vec![TrieNode::default()],
            priorities: HashMap::new(),
        }
    }

    fn insert(&mut self, prefix: &str, rule: u32, priority: Priority) {
        let mut node = 0usize;
        for byte in prefix.bytes() {
            let children = &self.nodes[node].children;
            node = match children.binary_search_by_key(&byte, |(b, _)| *b) {
                Ok(i) => children[i].1 as usize,
                Err(i) => {
                    let next = self.nodes.len();
                    self.nodes.push(TrieNode::default());
                    self.nodes[node].children.insert(i, (byte, next as u32));
                    next
                }
            };
        }
        self.nodes[node].rule = Some(rule);
        self.priorities.insert(rule, priority);
    }

    fn longest(&self, bytes: impl Iterator<Item = u8>) -> Option<u32> {
        let mut node = 0usize;
        let mut best = self.nodes[0].rule;
        for byte in bytes {
            let children = &self.nodes[node].children;
            match children.binary_search_by_key(&byte, |(b, _)| *b) {
                Ok(i) => node = children[i].1 as usize,
                Err(_) => break,
            }
            if let Some(rule) = self.nodes[node].rule {
                best = Some(rule);
            }
        }
        best
    }
}

/// A rule being merged from several policies, before compilation.
#[derive(Debug, Default)]
struct Merged {
    caps: Capabilities,
    allowed: BTreeMap<String, Option<Vec<Value>>>,
    denied: BTreeMap<String, Option<Vec<Value>>>,
    required: Vec<String>,
    min_wrap: Option<Duration>,
    max_wrap: Option<Duration>,
}

impl Merged {
    fn add(&mut self, rule: &PathRule) {
        if self.caps.contains(Capability::Deny) {
            return;
        }
        if rule.capabilities.contains(Capability::Deny) {
            *self = Merged {
                caps: Capability::Deny.into(),
                ..Merged::default()
            };
            return;
        }
        self.caps = self.caps.union(rule.capabilities);
        merge_params(&mut self.allowed, &rule.allowed_parameters);
        merge_params(&mut self.denied, &rule.denied_parameters);
        for name in &rule.required_parameters {
            let name = lowercase(name);
            if !self.required.contains(&name) {
                self.required.push(name);
            }
        }
        self.min_wrap = lowest(self.min_wrap, rule.min_wrapping_ttl);
        self.max_wrap = lowest(self.max_wrap, rule.max_wrapping_ttl);
    }

    fn compile(self) -> Perms {
        Perms {
            caps: self.caps,
            allowed: compile_params(self.allowed),
            denied: compile_params(self.denied),
            required: self.required.into_iter().map(Arc::from).collect(),
            min_wrap: self.min_wrap,
            max_wrap: self.max_wrap,
        }
    }
}

/// Vault's `sys/internal/ui/resultant-acl` answer for a token with these (non-root)
/// policies: `exact_paths` and `glob_paths` (keyed without the trailing `*`), each path with
/// its rules merged as the ACL merges them, and `root: false`. A path whose merged
/// capabilities are empty reads `["deny"]`. Templated paths and paths with `+` segments are
/// not listed, as in Vault.
pub fn resultant_acl(policies: &[Arc<Policy>]) -> Value {
    let mut merged: BTreeMap<&str, Merged> = BTreeMap::new();
    for policy in policies {
        for rule in &policy.paths {
            if !rule.is_templated() {
                merged.entry(rule.path.as_str()).or_default().add(rule);
            }
        }
    }
    let mut exact = Map::new();
    let mut glob = Map::new();
    for (pattern, m) in merged {
        let (key, into) = match pattern.strip_suffix('*') {
            Some(body) => (body, &mut glob),
            None => (pattern, &mut exact),
        };
        if key.split('/').any(|seg| seg == "+") {
            continue;
        }
        into.insert(key.to_owned(), m.describe());
    }
    serde_json::json!({"exact_paths": exact, "glob_paths": glob, "root": false})
}

impl Merged {
    /// The merged rule in Vault's resultant-ACL shape.
    fn describe(&self) -> Value {
        let mut out = Map::new();
        let caps = if self.caps.is_empty() || self.caps.contains(Capability::Deny) {
            vec!["deny"]
        } else {
            self.caps.to_strings()
        };
        out.insert("capabilities".into(), Value::from(caps));
        let params = |map: &BTreeMap<String, Option<Vec<Value>>>| -> Value {
            map.iter()
                .map(|(k, v)| (k.clone(), Value::Array(v.clone().unwrap_or_default())))
                .collect::<Map<String, Value>>()
                .into()
        };
        if !self.allowed.is_empty() {
            out.insert("allowed_parameters".into(), params(&self.allowed));
        }
        if !self.denied.is_empty() {
            out.insert("denied_parameters".into(), params(&self.denied));
        }
        if !self.required.is_empty() {
            out.insert(
                "required_parameters".into(),
                Value::from(self.required.clone()),
            );
        }
        if let Some(d) = self.min_wrap {
            out.insert("min_wrapping_ttl".into(), Value::from(d.as_secs()));
        }
        if let Some(d) = self.max_wrap {
            out.insert("max_wrapping_ttl".into(), Value::from(d.as_secs()));
        }
        Value::Object(out)
    }
}

/// Keeps the lowest of two optional TTLs, as Vault does when merging.
fn lowest(a: Option<Duration>, b: Option<Duration>) -> Option<Duration> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Merges parameter maps: values for the same name are concatenated, and an empty list ("any
/// value") absorbs the other side. (Vault appends, which can turn "any value" into a list when
/// a second policy names values; keeping "any" matches what each policy granted.)
fn merge_params(
    into: &mut BTreeMap<String, Option<Vec<Value>>>,
    from: &BTreeMap<String, Vec<Value>>,
) {
    for (name, values) in from {
        match into.get_mut(name) {
            None => {
                into.insert(name.clone(), (!values.is_empty()).then(|| values.clone()));
            }
            Some(existing) => match (existing.as_mut(), values.is_empty()) {
                (None, _) => {}
                (Some(_), true) => *existing = None,
                (Some(list), false) => {
                    for v in values {
                        if !list.contains(v) {
                            list.push(v.clone());
                        }
                    }
                }
            },
        }
    }
}

fn compile_params(map: BTreeMap<String, Option<Vec<Value>>>) -> ParamSet {
    let mut set = ParamSet::default();
    for (name, values) in map {
        if name == "*" {
            // Vault ignores the values of `*`.
            set.star = Some(Arc::from("*"));
            continue;
        }
        let list = match values {
            None => ValueList::Any,
            Some(values) => ValueList::OneOf(
                values
                    .into_iter()
                    .map(|v| match v {
                        Value::String(s) => ValueMatcher::Str(StrMatch::compile(&s)),
                        other => ValueMatcher::Other(other),
                    })
                    .collect(),
            ),
        };
        set.entries.push((Arc::from(name), list));
    }
    // BTreeMap order is byte order, which binary search relies on.
    set
}

impl Acl {
    /// Compiles the policies of one token. An empty list, or policies that grant nothing,
    /// deny everything. A policy named `root` gets no special treatment here: only
    /// [`Acl::root`] is root.
    pub fn new(policies: &[Arc<Policy>]) -> Acl {
        let mut merged: BTreeMap<&str, Merged> = BTreeMap::new();
        for policy in policies {
            for rule in &policy.paths {
                if rule.is_templated() {
                    continue;
                }
                merged.entry(rule.path.as_str()).or_default().add(rule);
            }
        }

        let mut acl = Acl {
            root: false,
            rules: Vec::with_capacity(merged.len()),
            exact: HashMap::new(),
            exact_dir: HashMap::new(),
            globs: PrefixTrie::new(),
            wildcards: Vec::new(),
            policy_names: policies.iter().map(|p| p.name.clone()).collect(),
        };

        for (pattern, rule) in merged {
            let index = acl.rules.len() as u32;
            acl.rules.push(CompiledRule {
                pattern: Arc::from(pattern),
                perms: rule.compile(),
            });
            let (body, is_prefix) = match pattern.strip_suffix('*') {
                Some(body) => (body, true),
                None => (pattern, false),
            };
            let plus_segments = body.split('/').filter(|s| *s == "+").count();
            if plus_segments > 0 {
                let first_plus = first_plus_offset(body);
                acl.wildcards.push(WildcardRule {
                    segments: body
                        .split('/')
                        .map(|s| match s {
                            "+" => Segment::Any,
                            lit => Segment::Literal(lit.into()),
                        })
                        .collect(),
                    priority: Priority {
                        first_wildcard: first_plus,
                        is_prefix,
                        plus_segments,
                        text: Arc::from(body),
                    },
                    rule: index,
                });
            } else if is_prefix {
                acl.globs.insert(
                    body,
                    index,
                    Priority {
                        first_wildcard: body.len(),
                        is_prefix: true,
                        plus_segments: 0,
                        text: Arc::from(body),
                    },
                );
            } else if let Some(dir) = pattern.strip_suffix('/') {
                acl.exact_dir.insert(dir.into(), index);
                acl.exact.insert(pattern.into(), index);
            } else {
                acl.exact.insert(pattern.into(), index);
            }
        }
        acl.wildcards.sort_by(|a, b| b.priority.cmp(&a.priority));
        acl
    }

    /// The ACL of a root token: everything is allowed, with sudo.
    pub fn root() -> Acl {
        Acl {
            root: true,
            rules: Vec::new(),
            exact: HashMap::new(),
            exact_dir: HashMap::new(),
            globs: PrefixTrie::new(),
            wildcards: Vec::new(),
            policy_names: vec!["root".to_owned()],
        }
    }

    /// Whether this is the root ACL.
    pub fn is_root(&self) -> bool {
        self.root
    }

    /// The names of the policies this ACL was compiled from.
    pub fn policy_names(&self) -> &[String] {
        &self.policy_names
    }

    /// The ACL decision for a request: allowed, and with `sudo` where the engine marks the
    /// path root-protected (`sudo_required`). The only way to an [`Authorized`] for a path the
    /// ACL governs.
    pub fn authorize(
        &self,
        op: Operation,
        path: &str,
        data: Option<&serde_json::Map<String, serde_json::Value>>,
        sudo_required: bool,
    ) -> Result<Authorized, DeniedReason> {
        let r = self.allow_operation(op, path, data);
        if !r.allowed {
            return Err(r.denied_reason.unwrap_or(DeniedReason::NoMatchingRule));
        }
        if sudo_required && !r.root_privs {
            return Err(DeniedReason::MissingCapability(Capability::Sudo));
        }
        Ok(Authorized {
            sudo: r.root_privs,
            is_root: r.is_root,
            min_wrapping_ttl: r.min_wrapping_ttl,
            max_wrapping_ttl: r.max_wrapping_ttl,
        })
    }

    /// Decides whether `op` on `path` is allowed, with `params` being the request body (used
    /// for parameter constraints on create, read, update and patch).
    ///
    /// `path` is relative to `/v1/`, without a leading slash. For `List`, a path without a
    /// trailing `/` is treated as if it had one, as Vault's HTTP layer does. `Help` is always
    /// allowed; see [`requirement`] for the others. Allocation-free.
    pub fn allow_operation(
        &self,
        op: Operation,
        path: &str,
        params: Option<&Map<String, Value>>,
    ) -> AclResult {
        if self.root {
            return AclResult {
                allowed: true,
                root_privs: true,
                is_root: true,
                capabilities: Capabilities::ROOT,
                min_wrapping_ttl: None,
                max_wrapping_ttl: None,
                denied_reason: None,
            };
        }
        let needed = match requirement(op) {
            Requirement::Nothing => {
                return AclResult {
                    allowed: true,
                    denied_reason: None,
                    ..AclResult::denied(DeniedReason::NoMatchingRule)
                };
            }
            Requirement::Capability(cap) => cap,
        };

        let list = op == Operation::List;
        let add_slash = list && !path.ends_with('/');
        let Some(index) = self.lookup(path, list, add_slash) else {
            return AclResult::denied(DeniedReason::NoMatchingRule);
        };
        let perms = &self.rules[index as usize].perms;

        let result = AclResult {
            allowed: true,
            root_privs: perms.caps.contains(Capability::Sudo),
            is_root: false,
            capabilities: perms.caps,
            min_wrapping_ttl: perms.min_wrap,
            max_wrapping_ttl: perms.max_wrap,
            denied_reason: None,
        };
        if perms.caps.contains(Capability::Deny) {
            return result.deny_with(DeniedReason::ExplicitDeny);
        }
        if !perms.caps.contains(needed) {
            return result.deny_with(DeniedReason::MissingCapability(needed));
        }
        if let (Some(min), Some(max)) = (perms.min_wrap, perms.max_wrap)
            && max < min
        {
            return result.deny_with(DeniedReason::WrappingTtlConflict);
        }
        if checks_parameters(op)
            && let Err(reason) = check_parameters(perms, params)
        {
            return result.deny_with(reason);
        }
        result
    }

    /// The capabilities on `path`, as `sys/capabilities` reports them: `["root"]` for the root
    /// ACL, `["deny"]` when nothing (or `deny`) applies, otherwise the names sorted. The path
    /// is looked up as Vault does for this endpoint (a trailing `/` may also match the exact
    /// pattern without it).
    pub fn capabilities(&self, path: &str) -> Vec<&'static str> {
        if self.root {
            return vec![Capability::Root.as_str()];
        }
        let caps = self
            .lookup(path, true, false)
            .map_or(Capabilities::EMPTY, |i| self.rules[i as usize].perms.caps);
        if caps.is_empty() || caps.contains(Capability::Deny) {
            return vec![Capability::Deny.as_str()];
        }
        caps.to_strings()
    }

    /// The pattern of the rule that decides `op` on `path`, if any (for audit logs and tests).
    pub fn matched_pattern(&self, op: Operation, path: &str) -> Option<&str> {
        if self.root {
            return None;
        }
        let list = op == Operation::List;
        let add_slash = list && !path.ends_with('/');
        self.lookup(path, list, add_slash)
            .map(|i| &*self.rules[i as usize].pattern)
    }

    /// Finds the deciding rule. `path + "/"` is meant when `add_slash`; `list` enables Vault's
    /// LIST fallback of trying the path without its trailing slash.
    fn lookup(&self, path: &str, list: bool, add_slash: bool) -> Option<u32> {
        // 1. Exact patterns.
        let exact = if add_slash {
            self.exact_dir.get(path)
        } else {
            self.exact.get(path)
        };
        if let Some(&i) = exact {
            return Some(i);
        }
        let trimmed = if add_slash {
            Some(path)
        } else if list {
            path.strip_suffix('/')
        } else {
            None
        };
        if list
            && let Some(t) = trimmed
            && let Some(&i) = self.exact.get(t)
        {
            return Some(i);
        }

        // 2. The longest glob prefix.
        let glob = self
            .globs
            .longest(path.bytes().chain(add_slash.then_some(b'/')));
        let glob_priority = glob.and_then(|g| self.globs.priorities.get(&g));

        // 3. The best `+` pattern, if it outranks the glob.
        for wc in &self.wildcards {
            if let Some(gp) = glob_priority
                && *gp > wc.priority
            {
                break;
            }
            let parts = path.split('/').chain(add_slash.then_some(""));
            let mut matched = wc.matches(parts);
            if !matched
                && list
                && !wc.priority.is_prefix
                && let Some(t) = trimmed
            {
                matched = wc.matches(t.split('/'));
            }
            if matched {
                return Some(wc.rule);
            }
        }
        glob
    }
}

/// Vault's parameter checks, in Vault's order: required, then denied, then allowed.
fn check_parameters(
    perms: &Perms,
    params: Option<&Map<String, Value>>,
) -> Result<(), DeniedReason> {
    for name in &perms.required {
        let present =
            params.is_some_and(|p| p.keys().any(|k| cmp_lowercased(name, k) == Ordering::Equal));
        if !present {
            return Err(DeniedReason::RequiredParameterMissing(name.clone()));
        }
    }
    let Some(params) = params.filter(|p| !p.is_empty()) else {
        return Ok(());
    };

    if !perms.denied.is_empty() {
        if let Some(star) = &perms.denied.star {
            return Err(DeniedReason::ParameterDenied(star.clone()));
        }
        for (name, value) in params {
            if let Some((key, list)) = perms.denied.get(name)
                && list.denies(value)
            {
                return Err(DeniedReason::ParameterDenied(key.clone()));
            }
        }
    }

    let allowed = &perms.allowed;
    let allow_any_other = allowed.star.is_some();
    if allowed.is_empty() || (allow_any_other && allowed.entries.is_empty()) {
        return Ok(());
    }
    for (name, value) in params {
        match allowed.get(name) {
            None if !allow_any_other => return Err(DeniedReason::ParameterNotAllowed(None)),
            None => {}
            Some((key, list)) if !list.allows(value) => {
                return Err(DeniedReason::ParameterNotAllowed(Some(key.clone())));
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// Byte offset of the first segment that is exactly `+`.
fn first_plus_offset(body: &str) -> usize {
    let mut offset = 0;
    for segment in body.split('/') {
        if segment == "+" {
            return offset;
        }
        offset += segment.len() + 1;
    }
    body.len()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::parse_policy;

    fn acl(text: &str) -> Acl {
        Acl::new(&[Arc::new(parse_policy("t", text).unwrap())])
    }

    #[test]
    fn wildcard_rules_sort_by_vault_priority() {
        let patterns = ["a/+/ba*", "a/+/b/+/c", "a/+/bb*", "a/b/+/c", "a/+/b/c"];
        let text: String = patterns
            .iter()
            .map(|p| format!("path \"{p}\" {{\n  capabilities = [\"read\"]\n}}\n"))
            .collect();
        let acl = acl(&text);
        let order: Vec<&str> = acl
            .wildcards
            .iter()
            .map(|w| &*acl.rules[w.rule as usize].pattern)
            .collect();
        // Rule 1 puts a/b/+/c first; rule 2 puts the non-prefix ones before the prefix ones;
        // rule 3 orders a/+/b/c before a/+/b/+/c; rule 5 orders a/+/bb* before a/+/ba*.
        assert_eq!(
            order,
            ["a/b/+/c", "a/+/b/c", "a/+/b/+/c", "a/+/bb*", "a/+/ba*"]
        );
    }

    #[test]
    fn documented_example_glob_beats_plus_with_same_start() {
        let acl = acl("path \"secret/*\" {\n  capabilities = [\"read\"]\n}\n\
             path \"secret/+/+/foo/*\" {\n  capabilities = [\"update\"]\n}\n");
        let path = "secret/a/b/foo/x";
        assert_eq!(acl.matched_pattern(Operation::Read, path), Some("secret/*"));
        assert!(acl.allow_operation(Operation::Read, path, None).allowed);
        assert!(!acl.allow_operation(Operation::Update, path, None).allowed);
    }

    #[test]
    fn star_glob_against_plus_patterns_starting_at_the_same_place() {
        let acl = acl("path \"*\" {\n  capabilities = [\"list\"]\n}\n\
             path \"+\" {\n  capabilities = [\"read\"]\n}\n\
             path \"+/x/+*\" {\n  capabilities = [\"delete\"]\n}\n\
             path \"+/x/+\" {\n  capabilities = [\"update\"]\n}\n");
        // All start their wildcard at 0. Rule 2: not ending in `*` wins.
        assert_eq!(acl.matched_pattern(Operation::Read, "top"), Some("+"));
        assert_eq!(acl.matched_pattern(Operation::Read, "a/x/b"), Some("+/x/+"));
        // Both end in `*`. Rule 3: fewer `+` segments wins, so the bare glob beats `+/x/+*`.
        assert_eq!(acl.matched_pattern(Operation::Read, "a/x/b/c"), Some("*"));
        assert_eq!(acl.matched_pattern(Operation::Read, "top/level"), Some("*"));
    }

    #[test]
    fn parameter_value_globs_follow_vault() {
        let cases = [
            ("*", "*", true),
            ("*", "x", false),
            ("**", "anything", true),
            ("a*", "abc", true),
            ("*c", "abc", true),
            ("*b*", "abc", true),
            ("*b*", "ac", false),
            ("a", "a", true),
            ("ab", "abc", false),
        ];
        for (pattern, value, want) in cases {
            assert_eq!(
                StrMatch::compile(pattern).matches(value),
                want,
                "{pattern} vs {value}"
            );
        }
    }

    #[test]
    fn merge_keeps_any_value_and_concatenates_lists() {
        let a = parse_policy(
            "a",
            "path \"p\" {\n  capabilities = [\"update\"]\n  allowed_parameters = {\n    \"x\" = []\n    \"y\" = [\"1\"]\n  }\n}\n",
        )
        .unwrap();
        let b = parse_policy(
            "b",
            "path \"p\" {\n  capabilities = [\"update\"]\n  allowed_parameters = {\n    \"x\" = [\"only\"]\n    \"y\" = [\"2\"]\n  }\n  required_parameters = [\"Y\"]\n}\n",
        )
        .unwrap();
        let acl = Acl::new(&[Arc::new(a), Arc::new(b)]);
        let params = |v: serde_json::Value| v.as_object().unwrap().clone();
        let check = |p: serde_json::Value| {
            acl.allow_operation(Operation::Update, "p", Some(&params(p)))
                .allowed
        };
        assert!(check(serde_json::json!({"x": "free", "y": "1"})));
        assert!(check(serde_json::json!({"y": "2"})));
        assert!(!check(serde_json::json!({"y": "3"})));
        assert!(!check(serde_json::json!({"x": "free"})), "y is required");
    }
}
