//! The declarative path table: one definition per path drives routing, typed field parsing,
//! validation errors that name the field, `path-help` and the OpenAPI document.
//!
//! Patterns are `/`-separated segments: a literal, `{name}` (one non-empty segment), or a
//! trailing `{name:*}` (the rest, possibly empty, `/` allowed) / `{name:+}` (the rest, non-empty).
//! The first path in table order that matches wins, so list specific paths first.
//!
//! Handlers are plain functions `fn(Arc<B>, Request, Fields) -> BoxFuture<...>`; a non-capturing
//! closure `|b, req, f| Box::pin(async move { b.read(req, f).await })` coerces to one.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value, json};

use crate::{LogicalError, Operation, Request, Response, Result, SpecialPaths};

pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;
pub type Handler<B> = fn(Arc<B>, Request, Fields) -> BoxFuture<Result<Option<Response>>>;
pub type Existence<B> = fn(Arc<B>, Request, Fields) -> BoxFuture<Result<bool>>;

/// The type of one field. Parsing is as forgiving as Vault's: `"true"` is a bool, `"10"` an
/// int, a comma-separated string a list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Str,
    Int,
    Bool,
    /// Seconds, from an integer or a Go-style duration string.
    Duration,
    /// A list of strings, from a JSON array or a comma-separated string.
    List,
    /// A JSON object of any values.
    Map,
    /// A map of string to string (from an object, or `k=v,k2=v2`).
    StrMap,
    /// Any JSON value, untouched.
    Raw,
}

impl Kind {
    fn openapi_type(self) -> &'static str {
        match self {
            Kind::Str => "string",
            Kind::Int => "integer",
            Kind::Bool => "boolean",
            Kind::Duration => "string",
            Kind::List => "array",
            Kind::Map | Kind::StrMap | Kind::Raw => "object",
        }
    }
}

/// One declared field of a path.
#[derive(Debug, Clone)]
pub struct Field {
    pub name: &'static str,
    pub kind: Kind,
    pub description: &'static str,
    pub default: Option<Value>,
    pub required: bool,
    /// The handler takes this field out of `req.data` itself (see [`Field::in_request`]).
    pub in_request: bool,
}

impl Field {
    pub fn new(name: &'static str, kind: Kind, description: &'static str) -> Self {
        Field {
            name,
            kind,
            description,
            default: None,
            required: false,
            in_request: false,
        }
    }
    pub fn default(mut self, v: Value) -> Self {
        self.default = Some(v);
        self
    }
    pub fn required(mut self) -> Self {
        self.required = true;
        self
    }
    /// A large input (a batch of a thousand items) that the handler takes out of `req.data`
    /// by value: parsing neither checks nor copies it, so it is in neither [`Fields`] nor
    /// [`Fields::raw`], and the existence check's copy of the request leaves it out. It is
    /// still a declared field (no "unrecognized parameters" warning; help and OpenAPI list it).
    pub fn in_request(mut self) -> Self {
        self.in_request = true;
        self
    }
}

/// A parsed field value.
#[derive(Debug, Clone, PartialEq)]
pub enum FieldValue {
    Str(String),
    Int(i64),
    Bool(bool),
    Duration(Duration),
    List(Vec<String>),
    Map(Map<String, Value>),
    StrMap(BTreeMap<String, String>),
    Raw(Value),
}

/// The fields of one request, parsed by the path's table. Accessors take declared names only:
/// asking for an undeclared field is a programming error caught by every test of that path.
#[derive(Clone, Default)]
pub struct Fields {
    values: BTreeMap<&'static str, FieldValue>,
    provided: Vec<&'static str>,
    declared: Vec<&'static str>,
    /// Everything the caller sent, for engines that take free-form data (KV).
    pub raw: Map<String, Value>,
}

/// Names the fields given, never their values (passwords, keys and secrets are fields too).
impl std::fmt::Debug for Fields {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fields")
            .field("provided", &self.provided)
            .field("raw_keys", &crate::keys_only(&self.raw))
            .finish_non_exhaustive()
    }
}

impl Fields {
    fn get(&self, name: &str) -> Option<&FieldValue> {
        debug_assert!(
            self.declared.contains(&name),
            "field {name:?} is not declared on this path"
        );
        self.values.get(name)
    }
    /// Whether the caller sent this field (as opposed to it taking its default).
    pub fn is_set(&self, name: &str) -> bool {
        self.provided.contains(&name)
    }
    pub fn str(&self, name: &str) -> Option<&str> {
        match self.get(name) {
            Some(FieldValue::Str(s)) => Some(s),
            _ => None,
        }
    }
    pub fn string(&self, name: &str) -> String {
        self.str(name).unwrap_or_default().to_owned()
    }
    pub fn int(&self, name: &str) -> Option<i64> {
        match self.get(name) {
            Some(FieldValue::Int(i)) => Some(*i),
            _ => None,
        }
    }
    pub fn bool(&self, name: &str) -> Option<bool> {
        match self.get(name) {
            Some(FieldValue::Bool(b)) => Some(*b),
            _ => None,
        }
    }
    pub fn flag(&self, name: &str) -> bool {
        self.bool(name).unwrap_or(false)
    }
    pub fn duration(&self, name: &str) -> Option<Duration> {
        match self.get(name) {
            Some(FieldValue::Duration(d)) => Some(*d),
            _ => None,
        }
    }
    pub fn list(&self, name: &str) -> Vec<String> {
        match self.get(name) {
            Some(FieldValue::List(l)) => l.clone(),
            _ => Vec::new(),
        }
    }
    pub fn map(&self, name: &str) -> Option<&Map<String, Value>> {
        match self.get(name) {
            Some(FieldValue::Map(m)) => Some(m),
            _ => None,
        }
    }
    pub fn str_map(&self, name: &str) -> BTreeMap<String, String> {
        match self.get(name) {
            Some(FieldValue::StrMap(m)) => m.clone(),
            _ => BTreeMap::new(),
        }
    }
    pub fn value(&self, name: &str) -> Option<&Value> {
        match self.get(name) {
            Some(FieldValue::Raw(v)) => Some(v),
            _ => None,
        }
    }
}

/// A path's input as a struct: its fields declared once (name, kind, description, default)
/// and handed to the handler as typed values, not looked up by name. Declared with
/// [`input!`](crate::input); added to a path with [`Path::input`]; read with [`Fields::input`].
pub trait Input: Sized {
    /// The fields the path declares for this input (help, OpenAPI, unknown-key warnings).
    fn fields() -> Vec<Field>;
    /// The typed values of a request's parsed fields.
    fn from_fields(f: &Fields) -> Self;
}

impl Fields {
    /// The request's fields as the typed input `I` (its fields must be declared on the path,
    /// which [`Path::input`] does).
    pub fn input<I: Input>(&self) -> I {
        I::from_fields(self)
    }
}

/// Declares a typed path input ([`Input`]):
///
/// ```
/// tresor_sdk::input! {
///     /// `sys/leases/renew`
///     pub struct Renew {
///         lease_id: Str, "The lease to renew.";
///         increment: OptDuration, "The extension asked for.";
///         kind("type"): Str, "A field whose name is a Rust keyword.", default = "x";
///     }
/// }
/// ```
///
/// Kinds and the Rust types they give: `Str` `String`, `Int` `i64`, `Bool` `bool`, `Duration`
/// `std::time::Duration`, `List` `Vec<String>`, `Map` a JSON object, `StrMap` a
/// `BTreeMap<String, String>`, `Raw` a JSON value (each its default when not sent), and
/// `OptStr`, `OptInt`, `OptBool`, `OptDuration`, `OptList`, `OptRaw`, `OptMap`, `OptStrMap`:
/// `None` when the caller
/// did not send it (or the path does not declare it: only the non-`Opt` kinds insist on
/// being declared, in debug builds). A `default = expr` (anything `serde_json::json!`
/// takes) and `required` follow the description. On an `Opt` kind a default is documentation only (help and
/// OpenAPI show it; the handler gets `None` and applies it itself).
/// The struct derives nothing: no `Debug` to print a password with.
#[macro_export]
macro_rules! input {
    (
        $(#[$meta:meta])*
        $vis:vis struct $name:ident {
            $(
                $field:ident $(($wire:literal))? : $kind:ident, $desc:literal
                $(, $opt:ident $(= $val:expr)?)* ;
            )*
        }
    ) => {
        $(#[$meta])*
        // A path may declare a field its handler ignores (accepted for Vault's clients).
        #[allow(dead_code)]
        $vis struct $name {
            $( pub $field: $crate::input!(@ty $kind), )*
        }
        impl $crate::framework::Input for $name {
            fn fields() -> Vec<$crate::framework::Field> {
                vec![$({
                    #[allow(unused_mut)]
                    let mut f = $crate::framework::Field::new(
                        $crate::input!(@name $field $($wire)?),
                        $crate::input!(@kind $kind),
                        $desc,
                    );
                    $( f = $crate::input!(@opt f $opt $(= $val)?); )*
                    f
                }),*]
            }
            fn from_fields(f: &$crate::framework::Fields) -> Self {
                $name {
                    $( $field: $crate::input!(@get $kind f $crate::input!(@name $field $($wire)?)), )*
                }
            }
        }
    };
    (@name $field:ident) => { stringify!($field) };
    (@name $field:ident $wire:literal) => { $wire };
    (@opt $f:ident default = $v:expr) => { $f.default(::serde_json::json!($v)) };
    (@opt $f:ident required) => { $f.required() };
    (@ty Str) => { String };
    (@ty Int) => { i64 };
    (@ty Bool) => { bool };
    (@ty Duration) => { ::std::time::Duration };
    (@ty List) => { Vec<String> };
    (@ty Map) => { ::serde_json::Map<String, ::serde_json::Value> };
    (@ty StrMap) => { ::std::collections::BTreeMap<String, String> };
    (@ty Raw) => { ::serde_json::Value };
    (@ty OptStr) => { Option<String> };
    (@ty OptInt) => { Option<i64> };
    (@ty OptBool) => { Option<bool> };
    (@ty OptDuration) => { Option<::std::time::Duration> };
    (@ty OptList) => { Option<Vec<String>> };
    (@ty OptRaw) => { Option<::serde_json::Value> };
    (@ty OptMap) => { Option<::serde_json::Map<String, ::serde_json::Value>> };
    (@ty OptStrMap) => { Option<::std::collections::BTreeMap<String, String>> };
    (@kind OptStr) => { $crate::framework::Kind::Str };
    (@kind OptInt) => { $crate::framework::Kind::Int };
    (@kind OptBool) => { $crate::framework::Kind::Bool };
    (@kind OptDuration) => { $crate::framework::Kind::Duration };
    (@kind OptList) => { $crate::framework::Kind::List };
    (@kind OptRaw) => { $crate::framework::Kind::Raw };
    (@kind OptMap) => { $crate::framework::Kind::Map };
    (@kind OptStrMap) => { $crate::framework::Kind::StrMap };
    (@kind $kind:ident) => { $crate::framework::Kind::$kind };
    (@get Str $f:ident $n:expr) => { $f.string($n) };
    (@get Int $f:ident $n:expr) => { $f.int($n).unwrap_or_default() };
    (@get Bool $f:ident $n:expr) => { $f.flag($n) };
    (@get Duration $f:ident $n:expr) => { $f.duration($n).unwrap_or_default() };
    (@get List $f:ident $n:expr) => { $f.list($n) };
    (@get Map $f:ident $n:expr) => { $f.map($n).cloned().unwrap_or_default() };
    (@get StrMap $f:ident $n:expr) => { $f.str_map($n) };
    (@get Raw $f:ident $n:expr) => { $f.value($n).cloned().unwrap_or_default() };
    // An `Opt` field is read only when sent, so a field the path does not declare (never
    // sent) reads as `None`: a shared input such as the `token_*` fields may be read on a
    // path that declares only some of them.
    (@get OptStr $f:ident $n:expr) => { $f.is_set($n).then(|| $f.string($n)) };
    (@get OptInt $f:ident $n:expr) => { $f.is_set($n).then(|| $f.int($n)).flatten() };
    (@get OptBool $f:ident $n:expr) => { $f.is_set($n).then(|| $f.bool($n)).flatten() };
    (@get OptDuration $f:ident $n:expr) => { $f.is_set($n).then(|| $f.duration($n)).flatten() };
    (@get OptList $f:ident $n:expr) => { $f.is_set($n).then(|| $f.list($n)) };
    (@get OptRaw $f:ident $n:expr) => { $f.is_set($n).then(|| $f.value($n).cloned()).flatten() };
    (@get OptMap $f:ident $n:expr) => { $f.is_set($n).then(|| $f.map($n).cloned()).flatten() };
    (@get OptStrMap $f:ident $n:expr) => { $f.is_set($n).then(|| $f.str_map($n)) };
}

fn parse_value(f: &Field, v: &Value) -> std::result::Result<FieldValue, String> {
    let bad = |what: &str| format!("error converting input {v} for field {:?}: {what}", f.name);
    Ok(match f.kind {
        Kind::Str => match v {
            Value::String(s) => FieldValue::Str(s.clone()),
            Value::Number(n) => FieldValue::Str(n.to_string()),
            Value::Bool(b) => FieldValue::Str(b.to_string()),
            Value::Null => FieldValue::Str(String::new()),
            _ => return Err(bad("expected a string")),
        },
        Kind::Int => match v {
            Value::Number(n) => FieldValue::Int(
                n.as_i64()
                    // A fraction is cut (as Vault's weak decoding does); a number outside
                    // i64 is refused, not saturated to i64::MAX.
                    .or_else(|| {
                        n.as_f64()
                            .filter(|f| (i64::MIN as f64..i64::MAX as f64).contains(f))
                            .map(|f| f as i64)
                    })
                    .ok_or_else(|| bad("expected an integer in the signed 64-bit range"))?,
            ),
            Value::String(s) if s.is_empty() => FieldValue::Int(0),
            Value::String(s) => {
                FieldValue::Int(s.trim().parse().map_err(|_| bad("expected an integer"))?)
            }
            _ => return Err(bad("expected an integer")),
        },
        Kind::Bool => match v {
            Value::Bool(b) => FieldValue::Bool(*b),
            Value::String(s) => FieldValue::Bool(match s.to_ascii_lowercase().as_str() {
                "1" | "t" | "true" => true,
                "0" | "f" | "false" | "" => false,
                _ => return Err(bad("expected a boolean")),
            }),
            Value::Number(n) => FieldValue::Bool(n.as_f64() != Some(0.0)),
            _ => return Err(bad("expected a boolean")),
        },
        Kind::Duration => FieldValue::Duration(crate::duration::from_json(v).map_err(|e| bad(&e))?),
        Kind::List => FieldValue::List(match v {
            Value::Array(a) => a
                .iter()
                .map(|x| match x {
                    Value::String(s) => Ok(s.trim().to_owned()),
                    Value::Number(n) => Ok(n.to_string()),
                    Value::Bool(b) => Ok(b.to_string()),
                    _ => Err(bad("expected a list of strings")),
                })
                .collect::<std::result::Result<Vec<_>, _>>()?,
            Value::String(s) if s.trim().is_empty() => Vec::new(),
            Value::String(s) => s
                .split(',')
                .map(|p| p.trim().to_owned())
                .filter(|p| !p.is_empty())
                .collect(),
            Value::Null => Vec::new(),
            Value::Number(n) => vec![n.to_string()],
            _ => return Err(bad("expected a list of strings")),
        }),
        Kind::Map => match v {
            Value::Object(m) => FieldValue::Map(m.clone()),
            Value::Null => FieldValue::Map(Map::new()),
            Value::String(s) if s.trim().starts_with('{') => {
                FieldValue::Map(serde_json::from_str(s).map_err(|_| bad("expected a JSON object"))?)
            }
            _ => return Err(bad("expected a map")),
        },
        Kind::StrMap => FieldValue::StrMap(match v {
            Value::Object(m) => m
                .iter()
                .map(|(k, x)| match x {
                    Value::String(s) => Ok((k.clone(), s.clone())),
                    Value::Number(_) | Value::Bool(_) => Ok((k.clone(), x.to_string())),
                    _ => Err(bad("expected a map of strings")),
                })
                .collect::<std::result::Result<_, _>>()?,
            Value::Null => BTreeMap::new(),
            Value::String(s) if s.trim().is_empty() => BTreeMap::new(),
            Value::String(s) => s
                .split(',')
                .map(|kv| {
                    kv.split_once('=')
                        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
                        .ok_or_else(|| bad("expected key=value pairs"))
                })
                .collect::<std::result::Result<_, _>>()?,
            Value::Array(a) => a
                .iter()
                .map(|x| {
                    x.as_str()
                        .and_then(|kv| kv.split_once('='))
                        .map(|(k, v)| (k.to_owned(), v.to_owned()))
                        .ok_or_else(|| bad("expected key=value pairs"))
                })
                .collect::<std::result::Result<_, _>>()?,
            _ => return Err(bad("expected a map of strings")),
        }),
        Kind::Raw => FieldValue::Raw(v.clone()),
    })
}

/// One path of an engine.
pub struct Path<B> {
    pub pattern: &'static str,
    segments: Vec<Segment>,
    pub fields: Vec<Field>,
    pub operations: Vec<(Operation, Handler<B>)>,
    pub existence: Option<Existence<B>>,
    pub synopsis: &'static str,
    pub description: &'static str,
    /// One-segment captures whose values are names compared without case or surrounding
    /// spaces (policy and token role names, as in Vault): [`Table::canonical_path`] folds them
    /// before the ACL sees the path, so the ACL and the handler see one spelling.
    folded: Vec<&'static str>,
    /// The path stores whatever keys it is given (KV version 1, cubbyhole): undeclared keys
    /// are its data, not ignored parameters, so no warning names them.
    free_form: bool,
}

#[derive(Debug, Clone)]
enum Segment {
    Literal(&'static str),
    One(&'static str),
    Rest { name: &'static str, non_empty: bool },
}

fn compile(pattern: &'static str) -> Vec<Segment> {
    if pattern.is_empty() {
        return Vec::new();
    }
    pattern
        .split('/')
        .map(|s| {
            if let Some(inner) = s.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                match inner.split_once(':') {
                    Some((name, "*")) => Segment::Rest {
                        name,
                        non_empty: false,
                    },
                    Some((name, "+")) => Segment::Rest {
                        name,
                        non_empty: true,
                    },
                    Some(_) => panic!("bad capture in pattern {pattern:?}"),
                    None => Segment::One(inner),
                }
            } else {
                Segment::Literal(s)
            }
        })
        .collect()
}

/// Matches `path` against compiled segments, returning captures. `trailing_slash` lets one
/// trailing `/` follow a last literal or `{name}` segment: LIST requests carry one
/// (`LIST policy/` is the listing of `policy`). Every other operation must spell the path
/// exactly, since the ACL decided on the spelling as sent (`sys/policy/admin/` is not a way
/// to write `sys/policy/admin`).
fn match_segments(
    segments: &[Segment],
    path: &str,
    trailing_slash: bool,
) -> Option<Vec<(&'static str, String)>> {
    let mut caps = Vec::new();
    let mut rest = path;
    for (i, seg) in segments.iter().enumerate() {
        let last = i + 1 == segments.len();
        match seg {
            Segment::Rest { name, non_empty } => {
                if *non_empty && rest.is_empty() {
                    return None;
                }
                caps.push((*name, rest.to_owned()));
                return Some(caps);
            }
            Segment::Literal(lit) | Segment::One(lit) => {
                let (head, tail) = match rest.find('/') {
                    Some(j) => (&rest[..j], Some(&rest[j + 1..])),
                    None => (rest, None),
                };
                match seg {
                    Segment::Literal(_) if head != *lit => return None,
                    Segment::One(_) if head.is_empty() => return None,
                    Segment::One(name) => caps.push((name, head.to_owned())),
                    _ => {}
                }
                match (last, tail) {
                    (true, None) => return Some(caps),
                    (true, Some("")) if trailing_slash => return Some(caps),
                    (true, Some(_)) => return None,
                    (false, None) => {
                        // Only a following optional rest capture may match nothing.
                        return match &segments[i + 1..] {
                            [
                                Segment::Rest {
                                    name,
                                    non_empty: false,
                                },
                            ] => {
                                caps.push((name, String::new()));
                                Some(caps)
                            }
                            _ => None,
                        };
                    }
                    (false, Some(t)) => rest = t,
                }
            }
        }
    }
    if rest.is_empty() { Some(caps) } else { None }
}

impl<B> Path<B> {
    pub fn new(pattern: &'static str) -> Self {
        Path {
            pattern,
            segments: compile(pattern),
            fields: Vec::new(),
            operations: Vec::new(),
            existence: None,
            synopsis: "",
            description: "",
            folded: Vec::new(),
            free_form: false,
        }
    }
    /// Marks the path as taking arbitrary data keys (see [`Fields::raw`]): writes with keys
    /// that are not declared fields get no "ignored these unrecognized parameters" warning.
    pub fn free_form(mut self) -> Self {
        self.free_form = true;
        self
    }
    /// Marks the `{name}` capture as a case-insensitive name: its canonical spelling is
    /// trimmed and lower-cased (see [`Table::canonical_path`]).
    pub fn case_insensitive(mut self, name: &'static str) -> Self {
        debug_assert!(
            self.segments
                .iter()
                .any(|s| matches!(s, Segment::One(n) if *n == name)),
            "{name:?} is not a one-segment capture of {:?}",
            self.pattern
        );
        self.folded.push(name);
        self
    }
    pub fn field(mut self, f: Field) -> Self {
        self.fields.push(f);
        self
    }
    /// Declares the fields of a typed input ([`Input`]); the handler reads them with
    /// [`Fields::input`].
    pub fn input<I: Input>(mut self) -> Self {
        self.fields.extend(I::fields());
        self
    }
    pub fn op(mut self, op: Operation, h: Handler<B>) -> Self {
        self.operations.push((op, h));
        self
    }
    pub fn existence(mut self, e: Existence<B>) -> Self {
        self.existence = Some(e);
        self
    }
    pub fn help(mut self, synopsis: &'static str, description: &'static str) -> Self {
        self.synopsis = synopsis;
        self.description = description;
        self
    }

    /// Whether `key` is a field the handler takes from `req.data` itself.
    fn takes_in_request(&self, key: &str) -> bool {
        self.fields.iter().any(|f| f.in_request && f.name == key)
    }

    /// Parses captures and request data into typed fields. Unknown keys are kept in `raw`
    /// and reported back as a warning by the table.
    fn parse(
        &self,
        caps: Vec<(&'static str, String)>,
        data: &Map<String, Value>,
    ) -> Result<(Fields, Vec<String>)> {
        let raw = if self.fields.iter().any(|f| f.in_request) {
            data.iter()
                .filter(|(k, _)| !self.takes_in_request(k))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        } else {
            data.clone()
        };
        let mut out = Fields {
            raw,
            declared: self.fields.iter().map(|f| f.name).collect(),
            ..Default::default()
        };
        for (name, _) in &caps {
            out.declared.push(name);
        }
        let mut unknown = Vec::new();
        for key in data.keys() {
            if !self.fields.iter().any(|f| f.name == key) && !caps.iter().any(|(n, _)| n == key) {
                unknown.push(key.clone());
            }
        }
        for f in self.fields.iter().filter(|f| !f.in_request) {
            let cap = caps
                .iter()
                .find(|(n, _)| *n == f.name)
                .map(|(_, v)| Value::String(v.clone()));
            let given = cap.as_ref().or_else(|| data.get(f.name));
            match given {
                Some(v) => {
                    out.values.insert(
                        f.name,
                        parse_value(f, v).map_err(LogicalError::InvalidRequest)?,
                    );
                    out.provided.push(f.name);
                }
                None if f.required => {
                    return Err(LogicalError::invalid(format!(
                        "missing required field {:?}",
                        f.name
                    )));
                }
                None => {
                    let v = f.default.clone().unwrap_or(match f.kind {
                        Kind::Str => Value::String(String::new()),
                        Kind::Int | Kind::Duration => json!(0),
                        Kind::Bool => Value::Bool(false),
                        Kind::List => json!([]),
                        Kind::Map | Kind::StrMap => json!({}),
                        Kind::Raw => Value::Null,
                    });
                    out.values
                        .insert(f.name, parse_value(f, &v).map_err(LogicalError::internal)?);
                }
            }
        }
        // Captures not declared as fields are still available as strings.
        for (name, v) in caps {
            if !self.fields.iter().any(|f| f.name == name) {
                out.values.insert(name, FieldValue::Str(v));
                out.provided.push(name);
            }
        }
        Ok((out, unknown))
    }
}

/// An engine's whole path table plus its special paths.
pub struct Table<B> {
    pub paths: Vec<Path<B>>,
    pub special: SpecialPaths,
    pub help: &'static str,
}

/// A matched path and its captures.
type Routed<'a, B> = (&'a Path<B>, Vec<(&'static str, String)>);

impl<B: Send + Sync + 'static> Table<B> {
    fn route(&self, path: &str, op: Operation) -> Option<Routed<'_, B>> {
        let trailing_slash = matches!(op, Operation::List | Operation::Help);
        self.paths
            .iter()
            .find_map(|p| match_segments(&p.segments, path, trailing_slash).map(|c| (p, c)))
    }

    /// The one spelling of `path` that both the ACL and the handler act on, when it differs
    /// from `path`: case-insensitive name captures are trimmed and lower-cased. `None` when the
    /// path is already canonical (or matches no path of the table).
    pub fn canonical_path(&self, path: &str) -> Option<String> {
        // Most tables fold nothing: no routing on their hot path.
        if self.paths.iter().all(|p| p.folded.is_empty()) {
            return None;
        }
        let (p, _) = self.route(path, Operation::List)?;
        if p.folded.is_empty() {
            return None;
        }
        let mut parts: Vec<String> = path.split('/').map(str::to_owned).collect();
        let mut changed = false;
        // One-segment captures precede any rest capture, so segment i is path segment i.
        for (i, seg) in p.segments.iter().enumerate() {
            if let Segment::One(name) = seg
                && p.folded.contains(name)
                && let Some(part) = parts.get_mut(i)
            {
                let folded = part.trim().to_lowercase();
                if folded != *part {
                    *part = folded;
                    changed = true;
                }
            }
        }
        changed.then(|| parts.join("/"))
    }

    /// Routes and runs one request.
    pub async fn handle(&self, backend: Arc<B>, req: Request) -> Result<Option<Response>> {
        let Some((path, caps)) = self.route(&req.path, req.operation) else {
            return Err(if self.list_only(&req.path, req.operation) {
                LogicalError::UnsupportedOperation
            } else {
                LogicalError::UnsupportedPath
            });
        };
        let op = match req.operation {
            // A create without its own handler is served by the update handler, as in Vault.
            Operation::Create if !path.operations.iter().any(|(o, _)| *o == Operation::Create) => {
                Operation::Update
            }
            other => other,
        };
        let handler = path
            .operations
            .iter()
            .find(|(o, _)| *o == op)
            .map(|(_, h)| *h)
            .ok_or(LogicalError::UnsupportedOperation)?;
        // Body keys the path also captures: the path's value is the one used. A free-form
        // path's body is the caller's own data (a KV secret may well have a key named `path`):
        // nothing in it is unrecognized or replaced.
        let mut replaced: Vec<String> = Vec::new();
        if !path.free_form {
            replaced = caps
                .iter()
                .filter(|(n, _)| req.data.get(*n).is_some_and(|v| !v.is_null()))
                .map(|(n, _)| (*n).to_owned())
                .collect();
            replaced.sort();
        }
        let (fields, mut unknown) = path.parse(caps, &req.data)?;
        if path.free_form {
            unknown.clear();
        }
        unknown.sort();
        let resp = handler(backend, req, fields).await?;
        // As in Vault, the warnings ride on any response the handler gave (reads and lists
        // included: their query parameters are their data); an answer of nothing stays a 204
        // with no body.
        Ok(resp.map(|resp| parameter_warnings(resp, unknown, replaced)))
    }

    /// Whether `path` names a listing (a path spelled with a trailing `/`) asked for with
    /// another operation: Vault answers that with 405 `unsupported operation`, not a 404.
    fn list_only(&self, path: &str, op: Operation) -> bool {
        op != Operation::List
            && !path.is_empty()
            && !path.ends_with('/')
            && self
                .route(&format!("{path}/"), Operation::List)
                .is_some_and(|(p, _)| p.operations.iter().any(|(o, _)| *o == Operation::List))
    }

    /// Runs the path's existence check, if it has one.
    pub async fn exists(&self, backend: Arc<B>, req: &Request) -> Result<Option<bool>> {
        let Some((path, caps)) = self.route(&req.path, req.operation) else {
            return Ok(None);
        };
        let Some(check) = path.existence else {
            return Ok(None);
        };
        let (fields, _) = path.parse(caps, &req.data)?;
        let copy = if path.fields.iter().any(|f| f.in_request) {
            Request {
                operation: req.operation,
                path: req.path.clone(),
                data: fields.raw.clone(),
                storage: req.storage.clone(),
                mount: req.mount.clone(),
                caller: req.caller.clone(),
                secret: req.secret.clone(),
                connection: req.connection.clone(),
                headers: req.headers.clone(),
                raw_body: req.raw_body.clone(),
                deadline: req.deadline,
            }
        } else {
            req.clone()
        };
        check(backend, copy, fields).await.map(Some)
    }

    /// Vault's `?help=1` answer for `path`.
    pub fn help(&self, path: &str) -> Option<Map<String, Value>> {
        let Some((p, _)) = self.route(path, Operation::Help) else {
            // The mount root (or an unknown path): the engine's own help and its paths.
            if !path.is_empty() {
                return None;
            }
            let mut text = format!(
                "## DESCRIPTION\n\n{}\n\n## PATHS\n\nThe following paths are supported by this backend:\n",
                self.help.trim()
            );
            for p in &self.paths {
                text.push_str(&format!("\n    {}\n        {}\n", p.pattern, p.synopsis));
            }
            let mut m = Map::new();
            m.insert("help".into(), Value::String(text));
            m.insert("see_also".into(), Value::Null);
            m.insert("openapi".into(), json!({"openapi": "3.0.2", "info": {"title": "Tresor API", "version": env!("CARGO_PKG_VERSION")}, "paths": self.openapi_paths()}));
            return Some(m);
        };
        let mut text = format!(
            "## DESCRIPTION\n\n{}\n\n{}\n\n## PARAMETERS\n",
            p.synopsis,
            p.description.trim()
        );
        for f in &p.fields {
            text.push_str(&format!(
                "\n    {} ({})\n        {}\n",
                f.name,
                f.kind.openapi_type(),
                f.description
            ));
        }
        let mut m = Map::new();
        m.insert("help".into(), Value::String(text));
        m.insert("see_also".into(), Value::Null);
        let mut paths = Map::new();
        paths.insert(format!("/{}", p.pattern), self.openapi_item(p));
        m.insert("openapi".into(), json!({"openapi": "3.0.2", "info": {"title": "Tresor API", "version": env!("CARGO_PKG_VERSION")}, "paths": paths}));
        Some(m)
    }

    fn openapi_item(&self, p: &Path<B>) -> Value {
        let mut props = Map::new();
        for f in &p.fields {
            props.insert(
                f.name.into(),
                json!({"type": f.kind.openapi_type(), "description": f.description}),
            );
        }
        let mut item = Map::new();
        item.insert("description".into(), Value::String(p.synopsis.into()));
        for (op, _) in &p.operations {
            let verb = match op {
                Operation::Read | Operation::List => "get",
                Operation::Create | Operation::Update => "post",
                Operation::Patch => "patch",
                Operation::Delete => "delete",
                Operation::Help => continue,
            };
            let mut o = json!({"summary": p.synopsis, "responses": {"200": {"description": "OK"}}});
            if verb == "post" || verb == "patch" {
                o["requestBody"] = json!({"content": {"application/json": {"schema": {"type": "object", "properties": props}}}});
            }
            if *op == Operation::List {
                o["parameters"] = json!([{"name": "list", "in": "query", "required": true, "schema": {"type": "string", "enum": ["true"]}}]);
            }
            item.insert(verb.into(), o);
        }
        Value::Object(item)
    }

    /// OpenAPI path items of the whole table.
    pub fn openapi_paths(&self) -> Map<String, Value> {
        self.paths
            .iter()
            .map(|p| (format!("/{}", p.pattern), self.openapi_item(p)))
            .collect()
    }
}

/// A leased secret type an engine issues: how to renew and revoke it. `renew` is `None` for
/// secrets that cannot be renewed.
pub struct SecretType<B> {
    pub name: &'static str,
    pub renew: Option<Handler<B>>,
    pub revoke: Handler<B>,
}

/// A [`Table`] plus the engine state its handlers receive: implements [`LogicalBackend`], so
/// most engines are `TableBackend::new(state, table)` and nothing else.
pub struct TableBackend<B> {
    pub state: Arc<B>,
    pub table: Table<B>,
    pub secrets: Vec<SecretType<B>>,
}

impl<B: Send + Sync + 'static> TableBackend<B> {
    pub fn new(state: B, table: Table<B>) -> Arc<Self> {
        Self::with_secrets(state, table, Vec::new())
    }
    /// An engine that issues leased secrets of the given types.
    pub fn with_secrets(state: B, table: Table<B>, secrets: Vec<SecretType<B>>) -> Arc<Self> {
        Arc::new(TableBackend {
            state: Arc::new(state),
            table,
            secrets,
        })
    }
    fn secret_type(&self, req: &Request) -> Result<&SecretType<B>> {
        let name = req
            .secret
            .as_ref()
            .map(|s| s.secret_type.as_str())
            .unwrap_or_default();
        self.secrets
            .iter()
            .find(|s| s.name == name)
            .ok_or_else(|| LogicalError::invalid(format!("unknown secret type {name:?}")))
    }
}

#[async_trait::async_trait]
impl<B: Send + Sync + 'static> crate::LogicalBackend for TableBackend<B> {
    async fn handle(&self, req: Request) -> Result<Option<Response>> {
        self.table.handle(self.state.clone(), req).await
    }
    async fn exists(&self, req: &Request) -> Result<Option<bool>> {
        self.table.exists(self.state.clone(), req).await
    }
    fn canonical_path(&self, path: &str) -> Option<String> {
        self.table.canonical_path(path)
    }
    fn special_paths(&self) -> SpecialPaths {
        self.table.special.clone()
    }
    fn help(&self, path: &str) -> Option<Map<String, Value>> {
        self.table.help(path)
    }
    fn openapi_paths(&self) -> Map<String, Value> {
        self.table.openapi_paths()
    }
    async fn renew_secret(&self, req: Request) -> Result<Option<Response>> {
        let st = self.secret_type(&req)?;
        let renew = st
            .renew
            .ok_or_else(|| LogicalError::invalid("lease is not renewable"))?;
        renew(self.state.clone(), req, Fields::default()).await
    }
    async fn revoke_secret(&self, req: Request) -> Result<Option<Response>> {
        let st = self.secret_type(&req)?;
        (st.revoke)(self.state.clone(), req, Fields::default()).await
    }
}

/// Vault's warnings about the body's keys, lists written as Go prints them (`[a b]`): keys
/// the path does not declare, and keys whose value the path's own captures replaced.
fn parameter_warnings(mut resp: Response, unknown: Vec<String>, replaced: Vec<String>) -> Response {
    if !unknown.is_empty() {
        resp = resp.with_warning(format!(
            "Endpoint ignored these unrecognized parameters: [{}]",
            unknown.join(" ")
        ));
    }
    if !replaced.is_empty() {
        resp = resp.with_warning(format!(
            "Endpoint replaced the value of these parameters with the values captured from \
             the endpoint's path: [{}]",
            replaced.join(" ")
        ));
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pattern_matching_table() {
        let cases: &[(&'static str, &str, Option<&[(&str, &str)]>)] = &[
            ("config", "config", Some(&[])),
            ("config", "config/", Some(&[])),
            ("config", "configx", None),
            ("data/{path:+}", "data/a/b", Some(&[("path", "a/b")])),
            ("data/{path:+}", "data/", None),
            ("metadata/{path:*}", "metadata/", Some(&[("path", "")])),
            ("metadata/{path:*}", "metadata", Some(&[("path", "")])),
            ("metadata/{path:*}", "metadata/x/", Some(&[("path", "x/")])),
            ("issue/{role}", "issue/web", Some(&[("role", "web")])),
            ("issue/{role}", "issue/web/x", None),
            ("issue/{role}", "issue/", None),
            (
                "issuer/{ref}/issue/{role}",
                "issuer/default/issue/web",
                Some(&[("ref", "default"), ("role", "web")]),
            ),
            (
                "{path:*}",
                "anything/at/all",
                Some(&[("path", "anything/at/all")]),
            ),
            ("{path:*}", "", Some(&[("path", "")])),
        ];
        for (pat, path, want) in cases {
            let got = match_segments(&compile(pat), path, true);
            let want: Option<Vec<(&str, String)>> =
                want.map(|w| w.iter().map(|(a, b)| (*a, b.to_string())).collect());
            assert_eq!(got, want, "pattern {pat:?} path {path:?}");
        }
    }

    /// Issue 10, finding 1: only a LIST (or help) may add a trailing slash to a path that ends
    /// in a literal or a `{name}`; a write to `policy/admin/` is not a write to `policy/admin`.
    #[test]
    fn trailing_slash_only_for_list() {
        for (pat, path) in [
            ("config", "config/"),
            ("policy/{name}", "policy/admin/"),
            ("issue/{role}", "issue/admin-role/"),
        ] {
            assert!(
                match_segments(&compile(pat), path, false).is_none(),
                "{pat} {path}"
            );
            assert!(
                match_segments(&compile(pat), path, true).is_some(),
                "{pat} {path}"
            );
        }
        // A rest capture keeps the slash as part of the value either way.
        assert_eq!(
            match_segments(&compile("data/{path:+}"), "data/a/", false),
            Some(vec![("path", "a/".to_string())])
        );
    }

    /// Runs one request through a table whose `keys/{name}` path answers nothing on update and
    /// answers data on create (`free/{name}` takes any keys), as `Table::handle` does for an
    /// engine.
    async fn handled(op: Operation, path: &str, data: Value) -> Option<Response> {
        let answer: Handler<()> = |_, _, f| {
            Box::pin(async move {
                let mut data = Map::new();
                data.insert("name".into(), json!(f.string("name")));
                Ok(Some(Response::data(data)))
            })
        };
        let table: Table<()> = Table {
            paths: vec![
                Path::new("keys/{name}")
                    .field(Field::new("type", Kind::Str, ""))
                    .op(Operation::Update, |_, _, _| Box::pin(async { Ok(None) }))
                    .op(Operation::Create, answer)
                    .op(Operation::Read, answer),
                Path::new("free/{name}")
                    .free_form()
                    .op(Operation::Update, answer),
            ],
            special: SpecialPaths::default(),
            help: "",
        };
        let req = crate::test_support::request(op, path, data, "x/");
        table.handle(Arc::new(()), req).await.unwrap()
    }

    /// Vault's framework warns about the request's keys only on a response the handler gave,
    /// for any operation: a write that answers nothing stays empty (a 204), whatever it was
    /// sent. node-vault's
    /// `mount`/`enableAuth` send `mount_point` in the body, and Vault answers them 204.
    #[tokio::test]
    async fn parameter_warnings_only_ride_on_a_response() {
        let body = json!({"mount_point": "k", "type": "t"});
        assert!(
            handled(Operation::Update, "keys/k", body.clone())
                .await
                .is_none()
        );
        // With a response: the unknown keys sorted and printed as Go prints a list, and the
        // keys the path's captures replaced (node-vault sends `name` with every transit call).
        let body = json!({"zeta": 1, "name": "other", "alpha": 2, "type": "t"});
        let r = handled(Operation::Create, "keys/k", body).await.unwrap();
        assert_eq!(
            r.data.as_ref().unwrap()["name"],
            "k",
            "the path's value wins"
        );
        assert_eq!(
            r.warnings,
            [
                "Endpoint ignored these unrecognized parameters: [alpha zeta]",
                "Endpoint replaced the value of these parameters with the values captured \
                 from the endpoint's path: [name]",
            ]
        );
        // A null for a captured name replaces nothing; known keys alone warn nothing.
        let r = handled(
            Operation::Create,
            "keys/k",
            json!({"name": null, "type": "t"}),
        )
        .await
        .unwrap();
        assert!(r.warnings.is_empty(), "{:?}", r.warnings);
        // A read warns too, about its query parameters (checked against OpenBao 2.7.2).
        let r = handled(Operation::Read, "keys/k", json!({"foo": "1"}))
            .await
            .unwrap();
        assert_eq!(
            r.warnings,
            ["Endpoint ignored these unrecognized parameters: [foo]"]
        );
        // A free-form path's body is the caller's data: no warning about any of its keys.
        let r = handled(Operation::Update, "free/k", json!({"any": 1, "name": "o"}))
            .await
            .unwrap();
        assert!(r.warnings.is_empty(), "{:?}", r.warnings);
    }

    /// A field taken from the request by the handler is neither parsed nor copied into
    /// `Fields` (its `raw` included), and is not reported as unrecognized.
    #[test]
    fn in_request_fields_are_left_in_the_request() {
        let p = Path::<()>::new("encrypt/{name}")
            .field(Field::new("plaintext", Kind::Str, ""))
            .field(Field::new("batch_input", Kind::Raw, "").in_request());
        let data = json!({"plaintext": "aGk=", "batch_input": [{"plaintext": "aGk="}], "x": 1});
        let data = data.as_object().unwrap();
        let (f, unknown) = p.parse(vec![("name", "k".into())], data).unwrap();
        assert_eq!(unknown, vec!["x".to_string()]);
        assert_eq!(f.str("plaintext"), Some("aGk="));
        assert_eq!(f.value("batch_input"), None);
        assert!(!f.raw.contains_key("batch_input"));
        assert!(f.raw.contains_key("plaintext") && f.raw.contains_key("x"));
        // Without the mark the same field is parsed and copied as before.
        let q = Path::<()>::new("encrypt/{name}").field(Field::new("batch_input", Kind::Raw, ""));
        let (g, unknown) = q.parse(vec![("name", "k".into())], data).unwrap();
        assert_eq!(g.value("batch_input"), data.get("batch_input"));
        assert!(g.raw.contains_key("batch_input"));
        assert_eq!(unknown, vec!["plaintext".to_string(), "x".to_string()]);
    }

    #[test]
    fn field_parsing_is_forgiving_and_names_the_field() {
        let f = Field::new("ttl", Kind::Duration, "");
        assert_eq!(
            parse_value(&f, &json!("1h")).unwrap(),
            FieldValue::Duration(Duration::from_secs(3600))
        );
        assert_eq!(
            parse_value(&f, &json!(30)).unwrap(),
            FieldValue::Duration(Duration::from_secs(30))
        );
        let err = parse_value(&f, &json!("soon")).unwrap_err();
        assert!(err.contains("\"ttl\""), "{err}");
        let l = Field::new("policies", Kind::List, "");
        assert_eq!(
            parse_value(&l, &json!("a, b,c")).unwrap(),
            FieldValue::List(vec!["a".into(), "b".into(), "c".into()])
        );
        let b = Field::new("flag", Kind::Bool, "");
        assert_eq!(
            parse_value(&b, &json!("true")).unwrap(),
            FieldValue::Bool(true)
        );
        assert!(
            parse_value(&b, &json!("maybe"))
                .unwrap_err()
                .contains("\"flag\"")
        );
        let i = Field::new("n", Kind::Int, "");
        assert_eq!(parse_value(&i, &json!("42")).unwrap(), FieldValue::Int(42));
        let m = Field::new("meta", Kind::StrMap, "");
        let want: BTreeMap<String, String> = [("a".to_string(), "1".to_string())].into();
        assert_eq!(
            parse_value(&m, &json!("a=1")).unwrap(),
            FieldValue::StrMap(want)
        );
    }

    /// Issue 10, finding 1: a case-insensitive name has one canonical spelling, computed
    /// before the ACL; other captures are left exactly as sent.
    #[test]
    fn canonical_path_folds_only_case_insensitive_names() {
        let table: Table<()> = Table {
            paths: vec![
                Path::new("policy/{name}").case_insensitive("name"),
                Path::new("roles/{role_name}/{rest:*}").case_insensitive("role_name"),
                Path::new("data/{path:*}"),
            ],
            special: SpecialPaths::default(),
            help: "",
        };
        let cases: &[(&str, Option<&str>)] = &[
            ("policy/admin", None),
            ("policy/ADMIN", Some("policy/admin")),
            ("policy/ admin ", Some("policy/admin")),
            ("policy/Admin\t", Some("policy/admin")),
            ("roles/Tok-Admin/X Y", Some("roles/tok-admin/X Y")),
            ("roles/tok/A", None),
            ("data/ Mixed/Case ", None),
            ("unknown/ADMIN", None),
        ];
        for (path, want) in cases {
            assert_eq!(table.canonical_path(path).as_deref(), *want, "{path}");
        }
    }

    crate::input! {
        /// A test input with every kind.
        struct Everything {
            name: Str, "A name.";
            count: Int, "A count.", default = 3;
            on: Bool, "A switch.";
            ttl: Duration, "A TTL.";
            tags: List, "Tags.";
            meta: StrMap, "Metadata.";
            body: Map, "An object.";
            anything: Raw, "Any value.";
            kind("type"): Str, "A keyword-named field.", required;
            increment: OptDuration, "Only when sent.";
            limit: OptInt, "Only when sent.";
            flag: OptBool, "Only when sent.";
            note: OptStr, "Only when sent.";
            paths: OptList, "Only when sent.";
            rate: OptRaw, "Only when sent.";
            extra: OptMap, "Only when sent.";
            labels: OptStrMap, "Only when sent.";
        }
    }

    #[test]
    fn typed_inputs_declare_and_parse_their_fields() {
        let p: Path<()> = Path::new("things/{name}").input::<Everything>();
        let names: Vec<&str> = p.fields.iter().map(|f| f.name).collect();
        assert_eq!(
            names,
            [
                "name",
                "count",
                "on",
                "ttl",
                "tags",
                "meta",
                "body",
                "anything",
                "type",
                "increment",
                "limit",
                "flag",
                "note",
                "paths",
                "rate",
                "extra",
                "labels"
            ]
        );
        assert!(p.fields.iter().find(|f| f.name == "type").unwrap().required);
        let data = json!({"on": "true", "ttl": "1m", "tags": "a,b", "meta": "k=v",
            "body": {"x": 1}, "anything": [1], "type": "t", "increment": "0s", "flag": false})
        .as_object()
        .unwrap()
        .clone();
        let (f, unknown) = p.parse(vec![("name", "n1".into())], &data).unwrap();
        assert!(unknown.is_empty());
        let i: Everything = f.input();
        assert_eq!(i.name, "n1");
        assert_eq!(i.count, 3);
        assert!(i.on);
        assert_eq!(i.ttl, Duration::from_secs(60));
        assert_eq!(i.tags, ["a", "b"]);
        assert_eq!(i.meta.get("k").map(String::as_str), Some("v"));
        assert_eq!(i.body["x"], 1);
        assert_eq!(i.anything, json!([1]));
        assert_eq!(i.kind, "t");
        // Sent as zero or false is not the same as not sent.
        assert_eq!(i.increment, Some(Duration::ZERO));
        assert_eq!(i.flag, Some(false));
        assert_eq!(i.limit, None);
        assert_eq!(i.note, None);
        assert_eq!(i.paths, None);
        assert_eq!(i.rate, None);
        assert_eq!(i.extra, None);
        assert_eq!(i.labels, None);
        let data = json!({"type": "t", "paths": [], "rate": 2.5, "extra": {}, "labels": "a=b"})
            .as_object()
            .unwrap()
            .clone();
        let (f, _) = p.parse(vec![("name", "n".into())], &data).unwrap();
        let i: Everything = f.input();
        assert_eq!(i.paths, Some(Vec::new()));
        assert_eq!(i.rate, Some(json!(2.5)));
        assert_eq!(i.extra, Some(Map::new()));
        assert_eq!(i.labels.unwrap().get("a").map(String::as_str), Some("b"));
        // A bad value names its field; a missing required one is refused.
        let bad = json!({"type": "t", "count": "many"})
            .as_object()
            .unwrap()
            .clone();
        let e = p.parse(vec![("name", "n".into())], &bad).unwrap_err();
        assert!(e.to_string().contains("count"), "{e}");
        let missing = Map::new();
        let e = p.parse(vec![("name", "n".into())], &missing).unwrap_err();
        assert!(e.to_string().contains("type"), "{e}");
    }

    /// Issue 12: a request's fields print their names, never their values.
    #[test]
    fn fields_debug_names_no_values() {
        let mut f = Fields::default();
        f.raw.insert("password".into(), json!("s3cr3t-VALUE"));
        f.values
            .insert("password", FieldValue::Str("s3cr3t-VALUE".into()));
        f.provided.push("password");
        let printed = format!("{f:?}");
        assert!(!printed.contains("s3cr3t-VALUE"), "{printed}");
        assert!(printed.contains("password"), "{printed}");
    }
}
