//! Command-line flags in Vault's style (Go's `flag` package, as Vault extends it).
//!
//! - long names with one dash or two: `-format=json`, `--format=json`, `-format json`;
//! - boolean flags take no separate value (`-force`), but accept `-force=false`;
//! - flags come before the positional arguments: parsing stops at the first argument that is
//!   not a flag, at a lone `-` (which means stdin) and at a negative number, and `--` ends
//!   the flags and is dropped;
//! - list flags may repeat and split on commas (`-policy=a,b -policy=c`), map flags repeat
//!   and take `key=value`;
//! - `-h`, `-help` and `--help` ask for help.
//!
//! Each command declares its flags as a table of [`Spec`]s; the same table prints its help.

use std::collections::BTreeMap;

use crate::duration;

/// What kind of value a flag takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `-x` or `-x=true|false`.
    Bool,
    /// Any string.
    Str,
    /// A signed integer.
    Int,
    /// A duration: Go syntax or integer seconds.
    Duration,
    /// A duration or the word `system` (for mount TTLs).
    Ttl,
    /// Repeatable; each value is split on commas.
    List,
    /// Repeatable; each value is one item, commas kept.
    Repeat,
    /// Repeatable `key=value`.
    Map,
}

/// One flag a command accepts.
#[derive(Debug, Clone, Copy)]
pub struct Spec {
    /// The name without dashes.
    pub name: &'static str,
    /// Its value type.
    pub kind: Kind,
    /// One line of help.
    pub help: &'static str,
}

/// Shorthand for building a [`Spec`] in a `const` table.
pub const fn flag(name: &'static str, kind: Kind, help: &'static str) -> Spec {
    Spec { name, kind, help }
}

/// Why the command line could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FlagError {
    /// `-h`, `-help` or `--help` was given.
    #[error("help requested")]
    Help,
    /// A flag no table declares.
    #[error("flag provided but not defined: -{0}")]
    Unknown(String),
    /// A non-boolean flag at the end of the arguments.
    #[error("flag needs an argument: -{0}")]
    MissingValue(String),
    /// A value that does not fit the flag's kind.
    #[error("invalid value {value:?} for flag -{name}: {reason}")]
    BadValue {
        /// The flag.
        name: String,
        /// The value given.
        value: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// The flags found, and the positional arguments after them.
#[derive(Debug, Default, Clone)]
pub struct Parsed {
    values: BTreeMap<&'static str, Vec<String>>,
    /// Positional arguments, in order.
    pub args: Vec<String>,
}

/// Go's `strconv.ParseBool`.
pub fn parse_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}

fn looks_negative_number(arg: &str) -> bool {
    let rest = &arg[1..];
    rest.starts_with(|c: char| c.is_ascii_digit() || c == '.') && rest.parse::<f64>().is_ok()
}

fn validate(spec: &Spec, value: &str) -> Result<(), FlagError> {
    let bad = |reason: String| FlagError::BadValue {
        name: spec.name.to_string(),
        value: value.to_string(),
        reason,
    };
    match spec.kind {
        Kind::Bool => parse_bool(value)
            .map(|_| ())
            .ok_or_else(|| bad("parse error".to_string())),
        Kind::Int => value
            .parse::<i64>()
            .map(|_| ())
            .map_err(|_| bad("parse error".to_string())),
        Kind::Duration => duration::parse(value)
            .map(|_| ())
            .map_err(|e| bad(e.to_string())),
        Kind::Ttl if value == "system" => Ok(()),
        Kind::Ttl => duration::parse(value)
            .map(|_| ())
            .map_err(|e| bad(e.to_string())),
        Kind::Map if !value.contains('=') => Err(bad("expected key=value".to_string())),
        Kind::Str | Kind::List | Kind::Repeat | Kind::Map => Ok(()),
    }
}

/// Parses `args` against the union of `tables`.
pub fn parse(tables: &[&[Spec]], args: &[String]) -> Result<Parsed, FlagError> {
    let find = |name: &str| {
        tables
            .iter()
            .flat_map(|t| t.iter())
            .find(|s| s.name == name)
    };
    let mut parsed = Parsed::default();
    let mut i = 0;
    while i < args.len() {
        let arg = &args[i];
        if arg == "--" {
            i += 1;
            break;
        }
        if !arg.starts_with('-') || arg == "-" || looks_negative_number(arg) {
            break;
        }
        let body = arg.strip_prefix("--").unwrap_or_else(|| &arg[1..]);
        if body.is_empty() || body.starts_with('-') || body.starts_with('=') {
            return Err(FlagError::Unknown(body.to_string()));
        }
        let (name, inline) = match body.split_once('=') {
            Some((n, v)) => (n, Some(v.to_string())),
            None => (body, None),
        };
        let spec = match find(name) {
            Some(s) => s,
            None if name == "h" || name == "help" => return Err(FlagError::Help),
            None => return Err(FlagError::Unknown(name.to_string())),
        };
        let value = match (inline, spec.kind) {
            (Some(v), _) => v,
            (None, Kind::Bool) => "true".to_string(),
            (None, _) => {
                i += 1;
                match args.get(i) {
                    Some(v) => v.clone(),
                    None => return Err(FlagError::MissingValue(name.to_string())),
                }
            }
        };
        validate(spec, &value)?;
        parsed.values.entry(spec.name).or_default().push(value);
        i += 1;
    }
    parsed.args = args[i..].to_vec();
    Ok(parsed)
}

impl Parsed {
    /// Whether the flag was given at all.
    pub fn is_set(&self, name: &str) -> bool {
        self.values.contains_key(name)
    }

    fn last(&self, name: &str) -> Option<&str> {
        self.values
            .get(name)
            .and_then(|v| v.last())
            .map(String::as_str)
    }

    /// A boolean flag: false when absent.
    pub fn bool(&self, name: &str) -> bool {
        self.opt_bool(name).unwrap_or(false)
    }

    /// A boolean flag, `None` when absent.
    pub fn opt_bool(&self, name: &str) -> Option<bool> {
        self.last(name).and_then(parse_bool)
    }

    /// A string flag (the last occurrence wins).
    pub fn str(&self, name: &str) -> Option<&str> {
        self.last(name)
    }

    /// A string flag, `""` when absent.
    pub fn string(&self, name: &str) -> String {
        self.last(name).unwrap_or_default().to_string()
    }

    /// An integer flag.
    pub fn int(&self, name: &str) -> Option<i64> {
        self.last(name).and_then(|v| v.parse().ok())
    }

    /// A duration flag in nanoseconds.
    pub fn duration(&self, name: &str) -> Option<i64> {
        self.last(name).and_then(|v| duration::parse(v).ok())
    }

    /// A list flag: every occurrence, split on commas, trimmed, empty items dropped.
    pub fn list(&self, name: &str) -> Vec<String> {
        self.values
            .get(name)
            .map(|vals| {
                vals.iter()
                    .flat_map(|v| v.split(','))
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Every occurrence of a repeatable flag, as given.
    pub fn all(&self, name: &str) -> Vec<String> {
        self.values.get(name).cloned().unwrap_or_default()
    }

    /// A map flag: every `key=value` occurrence (later keys win), sorted by key.
    pub fn map(&self, name: &str) -> BTreeMap<String, String> {
        self.values
            .get(name)
            .map(|vals| {
                vals.iter()
                    .filter_map(|v| v.split_once('='))
                    .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// Renders a flag table as help text.
pub fn help(tables: &[&[Spec]]) -> String {
    let mut out = String::new();
    for spec in tables.iter().flat_map(|t| t.iter()) {
        let hint = match spec.kind {
            Kind::Bool => "",
            Kind::Str => "=<string>",
            Kind::Int => "=<int>",
            Kind::Duration | Kind::Ttl => "=<duration>",
            Kind::List | Kind::Repeat => "=<string>",
            Kind::Map => "=<key=value>",
        };
        out.push_str(&format!(
            "  -{}{}\n      {}\n\n",
            spec.name, hint, spec.help
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const TABLE: &[Spec] = &[
        flag("format", Kind::Str, "output format"),
        flag("force", Kind::Bool, "force"),
        flag("key-shares", Kind::Int, "shares"),
        flag("ttl", Kind::Duration, "ttl"),
        flag("default-lease-ttl", Kind::Ttl, "ttl"),
        flag("policy", Kind::List, "policies"),
        flag("pgp-key", Kind::Repeat, "keys"),
        flag("metadata", Kind::Map, "metadata"),
    ];

    fn args(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn p(v: &[&str]) -> Result<Parsed, FlagError> {
        parse(&[TABLE], &args(v))
    }

    #[test]
    fn single_and_double_dash_forms() {
        for form in [
            &["-format=json", "x"][..],
            &["--format=json", "x"],
            &["-format", "json", "x"],
            &["--format", "json", "x"],
        ] {
            let parsed = p(form).unwrap();
            assert_eq!(parsed.str("format"), Some("json"), "{form:?}");
            assert_eq!(parsed.args, args(&["x"]));
        }
    }

    #[test]
    fn booleans_take_no_separate_value() {
        let parsed = p(&["-force", "false"]).unwrap();
        assert!(parsed.bool("force"));
        assert_eq!(parsed.args, args(&["false"]));
        let parsed = p(&["-force=false"]).unwrap();
        assert_eq!(parsed.opt_bool("force"), Some(false));
        assert!(parsed.is_set("force"));
        assert!(!p(&[]).unwrap().bool("force"));
        assert_eq!(p(&[]).unwrap().opt_bool("force"), None);
        assert!(matches!(
            p(&["-force=maybe"]),
            Err(FlagError::BadValue { name, .. }) if name == "force"
        ));
    }

    #[test]
    fn flags_stop_at_first_positional_and_double_dash() {
        let parsed = p(&["-force", "secret/foo", "-format=json"]).unwrap();
        assert_eq!(parsed.str("format"), None);
        assert_eq!(parsed.args, args(&["secret/foo", "-format=json"]));
        let parsed = p(&["-force", "--", "-format=json"]).unwrap();
        assert_eq!(parsed.args, args(&["-format=json"]));
        let parsed = p(&["-", "a=b"]).unwrap();
        assert_eq!(parsed.args, args(&["-", "a=b"]));
    }

    #[test]
    fn negative_numbers_are_positional() {
        let parsed = p(&["-force", "-5", "x"]).unwrap();
        assert_eq!(parsed.args, args(&["-5", "x"]));
        let parsed = p(&["-1.5"]).unwrap();
        assert_eq!(parsed.args, args(&["-1.5"]));
        // As the value of a flag, a negative number is taken as the value.
        let parsed = p(&["-key-shares", "-1"]).unwrap();
        assert_eq!(parsed.int("key-shares"), Some(-1));
    }

    #[test]
    fn unknown_missing_and_help() {
        assert_eq!(
            p(&["-nope"]).unwrap_err(),
            FlagError::Unknown("nope".into())
        );
        assert_eq!(
            p(&["-format"]).unwrap_err(),
            FlagError::MissingValue("format".into())
        );
        assert_eq!(p(&["-h"]).unwrap_err(), FlagError::Help);
        assert_eq!(p(&["--help"]).unwrap_err(), FlagError::Help);
        assert_eq!(p(&["-help"]).unwrap_err(), FlagError::Help);
        assert_eq!(p(&["---x"]).unwrap_err(), FlagError::Unknown("-x".into()));
    }

    #[test]
    fn typed_values_are_checked() {
        assert!(matches!(
            p(&["-key-shares=x"]),
            Err(FlagError::BadValue { .. })
        ));
        assert!(matches!(p(&["-ttl=abc"]), Err(FlagError::BadValue { .. })));
        assert_eq!(
            p(&["-ttl=90"]).unwrap().duration("ttl"),
            Some(90 * duration::SECOND)
        );
        assert_eq!(
            p(&["-ttl=1h"]).unwrap().duration("ttl"),
            Some(3600 * duration::SECOND)
        );
        assert_eq!(
            p(&["-default-lease-ttl=system"])
                .unwrap()
                .str("default-lease-ttl"),
            Some("system")
        );
        assert!(matches!(
            p(&["-ttl=system"]),
            Err(FlagError::BadValue { .. })
        ));
        assert!(matches!(
            p(&["-metadata=novalue"]),
            Err(FlagError::BadValue { .. })
        ));
    }

    #[test]
    fn lists_repeat_and_split() {
        let parsed = p(&["-policy=a,b", "-policy", " c ", "-policy=,"]).unwrap();
        assert_eq!(parsed.list("policy"), args(&["a", "b", "c"]));
        let parsed = p(&["-pgp-key=a,b", "-pgp-key=c"]).unwrap();
        assert_eq!(parsed.all("pgp-key"), args(&["a,b", "c"]));
        let parsed = p(&[
            "-metadata=user=armon",
            "-metadata",
            "a=b=c",
            "-metadata=user=x",
        ])
        .unwrap();
        let m = parsed.map("metadata");
        assert_eq!(m.get("user").map(String::as_str), Some("x"));
        assert_eq!(m.get("a").map(String::as_str), Some("b=c"));
        assert_eq!(m.len(), 2);
    }

    #[test]
    fn last_occurrence_wins() {
        let parsed = p(&["-format=json", "-format=yaml"]).unwrap();
        assert_eq!(parsed.str("format"), Some("yaml"));
    }
}
