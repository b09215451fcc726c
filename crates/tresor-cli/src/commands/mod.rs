//! What every command shares: the [`Cli`] handle (input, output, format, client creation),
//! the error type that decides exit codes, and the output helpers that mirror Vault's
//! `OutputSecret` / `OutputData` / `OutputList` / raw `-field` printing.

pub mod ha;
pub mod kv;
pub mod logical;
pub mod mounts;
pub mod operator;
pub mod pki;
pub mod policy;
pub mod snapshot;
pub mod ssh;
pub mod status;
pub mod token;

use serde_json::{Map, Value};
use zeroize::Zeroizing;

use crate::Context;
use crate::client::{self, Client, ClientError, HTTP_FLAGS};
use crate::flags::{self, FlagError, Kind, Parsed, Spec, flag};
use crate::format::{self, Format};
use crate::secret::Secret;

/// The output flags every command accepts.
pub const OUTPUT_FLAGS: &[Spec] = &[
    flag(
        "format",
        Kind::Str,
        "Output format: table, json or yaml (VAULT_FORMAT).",
    ),
    flag(
        "field",
        Kind::Str,
        "Print only this field's value, with no trailing newline when piped.",
    ),
];

/// How a command failed; decides the exit code.
#[derive(Debug)]
pub enum CliError {
    /// Wrong flags or arguments: exit 1.
    Usage(String),
    /// A local failure (file, input, validation): exit 1.
    Local(String),
    /// The server said no, or could not be reached: exit 2.
    Remote(String),
    /// Help was asked for: printed to stdout, exit 0.
    Help(String),
}

impl CliError {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> i32 {
        match self {
            CliError::Usage(_) | CliError::Local(_) => 1,
            CliError::Remote(_) => 2,
            CliError::Help(_) => 0,
        }
    }
}

/// What a command returns: an exit code, or an error to print.
pub type CmdResult = Result<i32, CliError>;

/// `Error <doing what>: <error>` as a remote failure.
pub fn remote(context: impl std::fmt::Display, err: ClientError) -> CliError {
    CliError::Remote(format!("Error {context}: {err}"))
}

/// A command's name, usage text and flag tables, for help output.
#[derive(Debug, Clone, Copy)]
pub struct Usage {
    /// One paragraph: synopsis and description.
    pub text: &'static str,
    /// Flag tables specific to the command (HTTP and output flags are added).
    pub flags: &'static [Spec],
}

/// The handle commands work through.
pub struct Cli<'c, 'io> {
    /// Input, output and environment.
    pub ctx: &'c mut Context<'io>,
    /// The chosen output format.
    pub format: Format,
    /// The `-field` to print alone, if any.
    pub field: Option<String>,
}

impl<'c, 'io> Cli<'c, 'io> {
    /// A handle with table output.
    pub fn new(ctx: &'c mut Context<'io>) -> Cli<'c, 'io> {
        Cli {
            ctx,
            format: Format::Table,
            field: None,
        }
    }

    /// Parses the command's flags (plus the HTTP and output flags) and settles the output
    /// format.
    pub fn parse(&mut self, usage: &Usage, args: &[String]) -> Result<Parsed, CliError> {
        self.parse_with(usage, &[], args)
    }

    /// Like [`Cli::parse`], with more flag tables beyond the usage's own.
    pub fn parse_with(
        &mut self,
        usage: &Usage,
        extra: &[&[Spec]],
        args: &[String],
    ) -> Result<Parsed, CliError> {
        let mut own: Vec<&[Spec]> = vec![usage.flags];
        own.extend_from_slice(extra);
        let mut tables = own.clone();
        tables.push(HTTP_FLAGS);
        tables.push(OUTPUT_FLAGS);
        let parsed = match flags::parse(&tables, args) {
            Ok(p) => p,
            Err(FlagError::Help) => {
                return Err(CliError::Help(format!(
                    "{}\n\nCommand options:\n\n{}HTTP and output options:\n\n{}",
                    usage.text.trim_end(),
                    flags::help(&own),
                    flags::help(&[HTTP_FLAGS, OUTPUT_FLAGS]),
                )));
            }
            Err(e) => return Err(CliError::Usage(e.to_string())),
        };
        let requested = parsed
            .str("format")
            .map(str::to_string)
            .or_else(|| self.ctx.env.var("VAULT_FORMAT"))
            .unwrap_or_default();
        self.format = Format::parse(&requested)
            .ok_or_else(|| CliError::Usage(format!("Invalid output format: {requested}")))?;
        self.field = parsed.str("field").map(str::to_string);
        Ok(parsed)
    }

    /// A client configured from the flags and environment.
    pub fn client(&self, p: &Parsed) -> Result<Client, CliError> {
        let cfg = client::config(self.ctx.env, p).map_err(|e| CliError::Local(e.to_string()))?;
        Client::new(cfg).map_err(|e| CliError::Local(format!("Error initializing client: {e}")))
    }

    /// Writes text to stdout as is.
    pub fn out(&mut self, text: &str) {
        // A closed pipe is not worth a panic; the exit code still tells.
        let _ = self.ctx.stdout.write_all(text.as_bytes());
    }

    /// Writes a line to stdout.
    pub fn outln(&mut self, line: &str) {
        self.out(line);
        self.out("\n");
    }

    /// Writes a line to stderr.
    pub fn errln(&mut self, line: &str) {
        let _ = writeln!(self.ctx.stderr, "{line}");
    }

    /// Whether tables are being printed (rather than JSON or YAML).
    pub fn is_table(&self) -> bool {
        matches!(self.format, Format::Table | Format::Raw)
    }

    /// Prompts for a secret on stderr and reads it: from the terminal with echo off when
    /// stdin is a terminal, else one line from stdin (a pipe or a file). `None` at end of input.
    pub fn prompt_line(&mut self, prompt: &str) -> Result<Option<Zeroizing<String>>, CliError> {
        if self.ctx.stdin_is_terminal {
            match crate::tty::read_hidden(prompt, self.ctx.stderr) {
                Ok(v) => return Ok(v),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {
                    return Err(CliError::Local("Interrupted".to_string()));
                }
                // No controlling terminal after all, or no `stty`: fall back to a plain read,
                // and say that the input will be visible.
                Err(e) => {
                    let _ = writeln!(
                        self.ctx.stderr,
                        "WARNING! Cannot turn off echo on the terminal ({e}); input will be visible."
                    );
                }
            }
        }
        let _ = write!(self.ctx.stderr, "{prompt}");
        let _ = self.ctx.stderr.flush();
        let mut line = Zeroizing::new(String::new());
        let n = self
            .ctx
            .stdin
            .read_line(&mut line)
            .map_err(|e| CliError::Local(format!("Error reading from stdin: {e}")))?;
        let _ = writeln!(self.ctx.stderr);
        if n == 0 {
            return Ok(None);
        }
        Ok(Some(Zeroizing::new(line.trim().to_string())))
    }

    /// Reads all of stdin.
    pub fn read_stdin(&mut self) -> Result<Zeroizing<String>, CliError> {
        let mut buf = Zeroizing::new(String::new());
        self.ctx
            .stdin
            .read_to_string(&mut buf)
            .map_err(|e| CliError::Local(format!("Error reading from stdin: {e}")))?;
        Ok(buf)
    }

    /// Parses `key=value` arguments into request data.
    pub fn kv_data(&mut self, args: &[String]) -> Result<Map<String, Value>, CliError> {
        crate::kvargs::parse(args, &mut self.ctx.stdin)
            .map_err(|e| CliError::Local(format!("Failed to parse K=V data: {e}")))
    }

    /// Prints a raw field value: `%v` for tables, encoded for JSON/YAML; a trailing newline
    /// only when stdout is a terminal, so scripts get the exact value.
    pub fn print_field(&mut self, value: Option<&Value>, field: &str) -> CmdResult {
        let Some(v) = value else {
            return Err(CliError::Local(format!(
                "Field \"{field}\" not present in secret"
            )));
        };
        let text = match self.format {
            Format::Table | Format::Raw => format::go_value(v),
            Format::Json => format::json(v).trim_end().to_string(),
            Format::Yaml => format::yaml(v).trim_end().to_string(),
        };
        self.out(&text);
        if self.ctx.stdout_is_terminal {
            self.out("\n");
        }
        Ok(0)
    }

    /// Prints a response the way Vault's `OutputSecret` does (honouring `-field`).
    pub fn print_secret(&mut self, secret: &Secret) -> CmdResult {
        if let Some(field) = self.field.clone() {
            let value = field_of_secret(secret, &field);
            return self.print_field(value.as_ref(), &field);
        }
        match self.format {
            Format::Json => self.out(&format::json(&format::secret_value(secret))),
            Format::Yaml => self.out(&format::yaml(&format::secret_value(secret))),
            Format::Table | Format::Raw => {
                if let Some(w) = secret.warnings.as_ref().filter(|w| !w.is_empty()) {
                    let block = format::warnings_block(w);
                    let _ = write!(self.ctx.stderr, "{block}");
                }
                if let Some(t) = format::secret_table(secret) {
                    self.out(&t);
                }
            }
        }
        Ok(0)
    }

    /// Prints a map the way Vault's `OutputData` does (honouring `-field`).
    pub fn print_map(&mut self, map: &Map<String, Value>) -> CmdResult {
        if let Some(field) = self.field.clone() {
            return self.print_field(map.get(&field), &field);
        }
        match self.format {
            Format::Json => self.out(&format::json(&format::sort_keys(&Value::Object(
                map.clone(),
            )))),
            Format::Yaml => self.out(&format::yaml(&Value::Object(map.clone()))),
            Format::Table | Format::Raw => {
                if let Some(t) = format::map_table(map) {
                    self.out(&t);
                }
            }
        }
        Ok(0)
    }

    /// Prints any JSON value in the chosen format (tables get Go's `%v`).
    pub fn print_value(&mut self, v: &Value) -> CmdResult {
        match v {
            Value::Object(m) => self.print_map(m),
            other => {
                let text = format::render(&format::sort_keys(other), self.format);
                self.out(&text);
                Ok(0)
            }
        }
    }

    /// Prints a JSON object that Vault's client decodes into a struct (seal status, init
    /// and root-generation responses): JSON keeps the field order as given, YAML sorts as
    /// go-yaml does, tables get the sorted `Key`/`Value` view.
    pub fn print_struct(&mut self, v: &Value) -> CmdResult {
        match self.format {
            Format::Json if self.field.is_none() => {
                self.out(&format::json(v));
                Ok(0)
            }
            _ => self.print_value(v),
        }
    }

    /// Prints a list of keys: a `Keys` table, or the bare list in JSON/YAML.
    pub fn print_list(&mut self, keys: &[Value]) -> CmdResult {
        match self.format {
            Format::Json | Format::Yaml => {
                let text = format::render(&Value::Array(keys.to_vec()), self.format);
                self.out(&text);
            }
            Format::Table | Format::Raw => {
                let rows: Vec<Vec<String>> =
                    keys.iter().map(|k| vec![format::go_value(k)]).collect();
                self.out(&format::table(&["Keys"], &rows));
            }
        }
        Ok(0)
    }
}

/// The value `-field` selects from a response: auth, wrapping or lease fields by their
/// table names, else a data key.
pub fn field_of_secret(secret: &Secret, field: &str) -> Option<Value> {
    let strs = |v: &Option<Vec<String>>| Value::from(v.clone().unwrap_or_default());
    if let Some(auth) = &secret.auth {
        let v = match field {
            "token" => Some(Value::from(auth.client_token.clone())),
            "token_accessor" => Some(Value::from(auth.accessor.clone())),
            "token_duration" => Some(Value::from(auth.lease_duration)),
            "token_renewable" => Some(Value::from(auth.renewable)),
            "token_policies" => Some(strs(&auth.token_policies)),
            "identity_policies" => Some(strs(&auth.identity_policies)),
            "policies" => Some(strs(&auth.policies)),
            _ => None,
        };
        if v.is_some() {
            return v;
        }
        if let Some(k) = field.strip_prefix("token_meta_")
            && let Some(m) = auth.metadata.as_ref().and_then(|m| m.get(k))
        {
            return Some(Value::from(m.clone()));
        }
    }
    if let Some(w) = &secret.wrap_info {
        let v = match field {
            "wrapping_token" => Some(Value::from(w.token.clone())),
            "wrapping_accessor" => Some(Value::from(w.accessor.clone())),
            "wrapping_token_ttl" => Some(Value::from(w.ttl)),
            "wrapping_token_creation_time" => Some(Value::from(w.creation_time.clone())),
            "wrapping_token_creation_path" => Some(Value::from(w.creation_path.clone())),
            "wrapped_accessor" => Some(Value::from(w.wrapped_accessor.clone())),
            _ => None,
        };
        if v.is_some() {
            return v;
        }
    }
    match field {
        "refresh_interval" | "lease_duration" => return Some(Value::from(secret.lease_duration)),
        "lease_id" => return Some(Value::from(secret.lease_id.clone())),
        "lease_renewable" => return Some(Value::from(secret.renewable)),
        _ => {}
    }
    secret.data.as_ref()?.get(field).cloned()
}

/// Requires exactly `n` positional arguments.
pub fn exact_args(args: &[String], n: usize) -> Result<(), CliError> {
    match args.len().cmp(&n) {
        std::cmp::Ordering::Less => Err(CliError::Usage(format!(
            "Not enough arguments (expected {n}, got {})",
            args.len()
        ))),
        std::cmp::Ordering::Greater => Err(CliError::Usage(format!(
            "Too many arguments (expected {n}, got {})",
            args.len()
        ))),
        std::cmp::Ordering::Equal => Ok(()),
    }
}

/// Requires at least `n` positional arguments.
pub fn min_args(args: &[String], n: usize) -> Result<(), CliError> {
    if args.len() < n {
        return Err(CliError::Usage(format!(
            "Not enough arguments (expected at least {n}, got {})",
            args.len()
        )));
    }
    Ok(())
}

/// Requires at most `n` positional arguments.
pub fn max_args(args: &[String], n: usize) -> Result<(), CliError> {
    if args.len() > n {
        return Err(CliError::Usage(format!(
            "Too many arguments (expected at most {n}, got {})",
            args.len()
        )));
    }
    Ok(())
}

/// Strips leading and trailing slashes (Vault's `sanitizePath`).
pub fn sanitize_path(p: &str) -> String {
    p.trim_matches('/').to_string()
}

/// A mount path with exactly one trailing slash and none leading.
pub fn mount_path(p: &str) -> String {
    format!("{}/", sanitize_path(p))
}

/// A duration flag rendered for the API: Go's string form, `system` passed through, absent
/// or zero as `None`.
pub fn ttl_for_api(p: &Parsed, name: &str) -> Option<String> {
    let raw = p.str(name)?;
    if raw == "system" {
        return Some(raw.to_string());
    }
    let nanos = crate::duration::parse(raw).ok()?;
    Some(crate::duration::go_string(nanos))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::{SecretAuth, WrapInfo};
    use serde_json::json;

    #[test]
    fn fields_come_from_auth_wrap_lease_then_data() {
        let s = Secret {
            lease_id: "l1".into(),
            lease_duration: 60,
            data: Some(
                json!({"token": "data-token", "foo": [1, 2]})
                    .as_object()
                    .unwrap()
                    .clone(),
            ),
            ..Secret::default()
        };
        assert_eq!(field_of_secret(&s, "token"), Some(json!("data-token")));
        assert_eq!(field_of_secret(&s, "foo"), Some(json!([1, 2])));
        assert_eq!(field_of_secret(&s, "lease_id"), Some(json!("l1")));
        assert_eq!(field_of_secret(&s, "refresh_interval"), Some(json!(60)));
        assert_eq!(field_of_secret(&s, "missing"), None);

        let s = Secret {
            auth: Some(SecretAuth {
                client_token: "hvs.x".into(),
                policies: Some(vec!["default".into()]),
                metadata: Some([("user".to_string(), "bob".to_string())].into()),
                ..SecretAuth::default()
            }),
            wrap_info: Some(WrapInfo {
                token: "hvs.w".into(),
                ..WrapInfo::default()
            }),
            ..Secret::default()
        };
        assert_eq!(field_of_secret(&s, "token"), Some(json!("hvs.x")));
        assert_eq!(field_of_secret(&s, "policies"), Some(json!(["default"])));
        assert_eq!(field_of_secret(&s, "token_meta_user"), Some(json!("bob")));
        assert_eq!(field_of_secret(&s, "wrapping_token"), Some(json!("hvs.w")));
    }

    #[test]
    fn argument_count_checks() {
        let a = |n: usize| vec!["x".to_string(); n];
        assert!(exact_args(&a(1), 1).is_ok());
        assert!(
            matches!(exact_args(&a(0), 1), Err(CliError::Usage(m)) if m.starts_with("Not enough"))
        );
        assert!(
            matches!(exact_args(&a(2), 1), Err(CliError::Usage(m)) if m.starts_with("Too many"))
        );
        assert!(min_args(&a(2), 1).is_ok());
        assert!(max_args(&a(2), 1).is_err());
    }

    #[test]
    fn path_helpers() {
        assert_eq!(sanitize_path("/secret/foo/"), "secret/foo");
        assert_eq!(mount_path("kv"), "kv/");
        assert_eq!(mount_path("/kv//"), "kv/");
    }
}
