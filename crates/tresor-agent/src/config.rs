//! Vault Agent's HCL configuration, read into closed types.
//!
//! Only what `tresor agent` implements is accepted. A field Vault knows but Tresor does not
//! implement, a field nobody knows, a wrong type or a missing required field is an error that
//! names the block and the field (`auto_auth.method "approle".config.role_id_file_path: ...`),
//! so the agent never starts half-configured. Both of Vault's spellings of typed blocks are
//! read: `method "approle" { ... }` and `method { type = "approle" ... }`, and `config` as a
//! block or as an object attribute.
//!
//! Durations are Go durations or integer seconds; modes are octal (`"0600"` or `0600`).

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use hcl::{Block, Body, Expression};
use zeroize::Zeroizing;

/// A configuration error: where (block path and field) and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// `block.sub "label".field`, empty for file-level errors.
    pub at: String,
    /// What is wrong, lowercase, without a trailing period.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.at.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.at, self.message)
        }
    }
}

impl std::error::Error for ConfigError {}

fn err(at: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError {
        at: at.into(),
        message: message.into(),
    }
}

type R<T> = Result<T, ConfigError>;

/// The whole agent configuration.
#[derive(Debug, Clone, Default)]
pub struct Config {
    /// How to reach the server.
    pub vault: Vault,
    /// Logging in on its own.
    pub auto_auth: Option<AutoAuth>,
    /// Where the proxy listens.
    pub listeners: Vec<Listener>,
    /// Which token the proxy forwards.
    pub api_proxy: ApiProxy,
    /// Whether the proxy caches leased responses.
    pub cache: bool,
    /// Files rendered from templates.
    pub templates: Vec<Template>,
    /// Settings shared by all templates.
    pub template_config: TemplateSettings,
    /// A child process whose environment comes from `env_template`s.
    pub exec: Option<Exec>,
    /// Environment variables of the `exec` child.
    pub env_templates: Vec<EnvTemplate>,
    /// Certificates kept as files (Tresor's `certificate` block).
    pub certificates: Vec<Certificate>,
    /// Where to write the agent's PID.
    pub pid_file: Option<PathBuf>,
    /// Exit once the token is in the sinks.
    pub exit_after_auth: bool,
}

/// The `vault` block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vault {
    /// Server address; `VAULT_ADDR` when absent.
    pub address: Option<String>,
    /// CA file to trust.
    pub ca_cert: Option<PathBuf>,
    /// CA directory to trust.
    pub ca_path: Option<PathBuf>,
    /// Client certificate for TLS.
    pub client_cert: Option<PathBuf>,
    /// Its key.
    pub client_key: Option<PathBuf>,
    /// Accept any server certificate.
    pub tls_skip_verify: Option<bool>,
    /// Name to verify the server certificate against.
    pub tls_server_name: Option<String>,
    /// `retry { num_retries }`: retries of one request (Vault's default 12; -1 disables).
    pub num_retries: u32,
}

impl Default for Vault {
    fn default() -> Vault {
        Vault {
            address: None,
            ca_cert: None,
            ca_path: None,
            client_cert: None,
            client_key: None,
            tls_skip_verify: None,
            tls_server_name: None,
            num_retries: 12,
        }
    }
}

/// The `auto_auth` block.
#[derive(Debug, Clone)]
pub struct AutoAuth {
    /// The login method.
    pub method: Method,
    /// Where the token goes.
    pub sinks: Vec<Sink>,
}

/// `auto_auth.method`.
#[derive(Debug, Clone)]
pub struct Method {
    /// What to log in with.
    pub kind: MethodKind,
    /// The auth mount, `auth/<type>` by default.
    pub mount_path: String,
    /// First wait after a failed login (Vault: 1s).
    pub min_backoff: Duration,
    /// Longest wait between failed logins (Vault: 5m).
    pub max_backoff: Duration,
    /// Exit on the first failed login instead of retrying.
    pub exit_on_err: bool,
}

/// The login methods.
#[derive(Clone)]
pub enum MethodKind {
    /// AppRole: a role ID file and a secret ID file (possibly a wrapping token).
    AppRole {
        /// File holding the role ID.
        role_id_file_path: PathBuf,
        /// File holding the secret ID (or a wrapping token of it).
        secret_id_file_path: Option<PathBuf>,
        /// Delete the secret ID file once read (Vault's default: true).
        remove_secret_id_file_after_reading: bool,
        /// The secret ID file holds a wrapping token created at this path.
        secret_id_response_wrapping_path: Option<String>,
    },
    /// A token read from a file.
    TokenFile {
        /// The file.
        token_file_path: PathBuf,
    },
    /// Username and password.
    Userpass {
        /// The user.
        username: String,
        /// The password.
        password: Zeroizing<String>,
    },
    /// TLS certificate login.
    Cert {
        /// The certificate role to log in against (optional).
        name: Option<String>,
        /// Client certificate (else `vault.client_cert`).
        client_cert: Option<PathBuf>,
        /// Its key (else `vault.client_key`).
        client_key: Option<PathBuf>,
        /// CA to trust for this login (else `vault.ca_cert`).
        ca_cert: Option<PathBuf>,
    },
    /// A JWT read from a file.
    Jwt {
        /// The JWT file.
        path: PathBuf,
        /// The role.
        role: String,
        /// Delete the file once read (Vault's default: true).
        remove_jwt_after_reading: bool,
    },
    /// A Kubernetes service-account token.
    Kubernetes {
        /// The role.
        role: String,
        /// The service-account token file.
        token_path: PathBuf,
    },
}

impl MethodKind {
    /// The method's type name, as written in the config.
    pub fn type_name(&self) -> &'static str {
        match self {
            MethodKind::AppRole { .. } => "approle",
            MethodKind::TokenFile { .. } => "token_file",
            MethodKind::Userpass { .. } => "userpass",
            MethodKind::Cert { .. } => "cert",
            MethodKind::Jwt { .. } => "jwt",
            MethodKind::Kubernetes { .. } => "kubernetes",
        }
    }
}

impl fmt::Debug for MethodKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The password never reaches a log.
        f.write_str(self.type_name())
    }
}

/// A file sink.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sink {
    /// The token file.
    pub path: PathBuf,
    /// Its mode (default 0600; Vault's is 0640).
    pub mode: u32,
    /// Write a wrapping token of this TTL instead of the token.
    pub wrap_ttl: Option<Duration>,
}

/// Where the proxy listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listener {
    /// `listener "tcp" { address }`.
    Tcp(String),
    /// `listener "unix" { address }` (a socket path).
    Unix(PathBuf),
}

/// `api_proxy { use_auto_auth_token }`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum UseAutoAuthToken {
    /// Forward the client's token only.
    #[default]
    No,
    /// Add the agent's token when the request has none.
    Yes,
    /// Always replace the client's token with the agent's.
    Force,
}

/// The `api_proxy` block.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ApiProxy {
    /// Which token the proxy forwards.
    pub use_auto_auth_token: UseAutoAuthToken,
}

/// A `template` block.
#[derive(Debug, Clone)]
pub struct Template {
    /// The template text (from `contents` or read from `source` at load).
    pub text: String,
    /// Where `text` came from, for messages.
    pub source: Option<PathBuf>,
    /// The rendered file.
    pub destination: PathBuf,
    /// Its mode (default 0644).
    pub perms: u32,
    /// Create missing parent directories (default true).
    pub create_dest_dirs: bool,
    /// Run after the file changed.
    pub command: Vec<String>,
    /// How long the command may run (default 30s).
    pub command_timeout: Duration,
    /// A missing key is an error instead of `<no value>`.
    pub error_on_missing_key: bool,
    /// `{{` by default.
    pub left_delimiter: String,
    /// `}}` by default.
    pub right_delimiter: String,
}

/// The `template_config` block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateSettings {
    /// How often templates are rendered again (default 5m).
    pub static_secret_render_interval: Duration,
    /// Exit when a template keeps failing, instead of retrying.
    pub exit_on_retry_failure: bool,
}

impl Default for TemplateSettings {
    fn default() -> TemplateSettings {
        TemplateSettings {
            static_secret_render_interval: Duration::from_secs(300),
            exit_on_retry_failure: false,
        }
    }
}

/// When the `exec` child restarts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestartOn {
    /// On every change of its environment.
    Always,
    /// Never.
    Never,
}

/// The `exec` block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exec {
    /// Program and arguments.
    pub command: Vec<String>,
    /// Restart on changes (default always).
    pub restart_on_secret_changes: RestartOn,
    /// Signal that stops the child before a restart (default SIGTERM).
    pub restart_stop_signal: String,
}

/// An `env_template "NAME"` block.
#[derive(Debug, Clone)]
pub struct EnvTemplate {
    /// The variable.
    pub name: String,
    /// The template text.
    pub text: String,
    /// A missing key is an error.
    pub error_on_missing_key: bool,
}

/// A file of a certificate block: where, owner, group, mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileSpec {
    /// The path.
    pub path: PathBuf,
    /// Owner uid (resolved from a name at load).
    pub owner: Option<u32>,
    /// Group gid.
    pub group: Option<u32>,
    /// Mode.
    pub mode: u32,
}

/// When a certificate is renewed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RenewBefore {
    /// This long before it expires.
    Duration(Duration),
    /// When this fraction of its lifetime remains.
    Fraction(f64),
}

/// The key a CSR-mode certificate block generates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyType {
    /// ECDSA on P-256 or P-384.
    Ec(u32),
    /// RSA of 2048, 3072 or 4096 bits.
    Rsa(u32),
}

/// A `certificate "NAME"` block (design-next §6).
#[derive(Debug, Clone)]
pub struct Certificate {
    /// The label.
    pub name: String,
    /// The PKI mount, e.g. `pki` or `etcd/c1/pki`.
    pub mount: String,
    /// The role.
    pub role: String,
    /// Common name.
    pub common_name: String,
    /// DNS and email SANs.
    pub alt_names: Vec<String>,
    /// IP SANs.
    pub ip_sans: Vec<String>,
    /// URI SANs.
    pub uri_sans: Vec<String>,
    /// Requested TTL (the role's default when absent).
    pub ttl: Option<String>,
    /// When to renew.
    pub renew_before: RenewBefore,
    /// Generate the key here and send only a CSR (`sign/:role`).
    pub csr: Option<KeyType>,
    /// The private key file.
    pub key_file: FileSpec,
    /// The certificate file.
    pub cert_file: FileSpec,
    /// The issuing CA file.
    pub ca_file: Option<FileSpec>,
    /// Certificate followed by the CA chain.
    pub chain_file: Option<FileSpec>,
    /// Run once per rotation, after every file is in place.
    pub reload: Option<Reload>,
}

/// `reload { command timeout }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reload {
    /// Program and arguments.
    pub command: Vec<String>,
    /// How long it may run (default 30s).
    pub timeout: Duration,
}

/// One block (or the file) being read; remembers which fields were read so the rest can be
/// refused.
struct Section<'a> {
    at: String,
    body: &'a Body,
    seen: RefCell<BTreeSet<String>>,
}

fn expr_kind(e: &Expression) -> &'static str {
    match e {
        Expression::Null => "null",
        Expression::Bool(_) => "a bool",
        Expression::Number(_) => "a number",
        Expression::String(_) => "a string",
        Expression::Array(_) => "a list",
        Expression::Object(_) => "an object",
        Expression::TemplateExpr(_) => "a string with interpolation (not supported)",
        _ => "an expression (not supported)",
    }
}

impl<'a> Section<'a> {
    fn new(at: impl Into<String>, body: &'a Body) -> Section<'a> {
        Section {
            at: at.into(),
            body,
            seen: RefCell::new(BTreeSet::new()),
        }
    }

    fn field(&self, name: &str) -> String {
        if self.at.is_empty() {
            name.to_string()
        } else {
            format!("{}.{name}", self.at)
        }
    }

    fn err(&self, name: &str, message: impl Into<String>) -> ConfigError {
        err(self.field(name), message)
    }

    fn attr(&self, name: &str) -> R<Option<&'a Expression>> {
        self.seen.borrow_mut().insert(name.to_string());
        let mut found = self.body.attributes().filter(|a| a.key() == name);
        let first = found.next();
        if found.next().is_some() {
            return Err(self.err(name, "set more than once"));
        }
        Ok(first.map(|a| a.expr()))
    }

    fn string(&self, name: &str) -> R<Option<String>> {
        match self.attr(name)? {
            None => Ok(None),
            Some(Expression::String(s)) => Ok(Some(s.clone())),
            Some(Expression::Number(n)) => Ok(Some(n.to_string())),
            Some(e) => Err(self.err(name, format!("expected a string, found {}", expr_kind(e)))),
        }
    }

    fn required(&self, name: &str) -> R<String> {
        match self.string(name)? {
            Some(s) if !s.is_empty() => Ok(s),
            _ => Err(self.err(name, "is required")),
        }
    }

    fn path(&self, name: &str) -> R<Option<PathBuf>> {
        Ok(self
            .string(name)?
            .filter(|s| !s.is_empty())
            .map(PathBuf::from))
    }

    fn bool(&self, name: &str) -> R<Option<bool>> {
        match self.attr(name)? {
            None => Ok(None),
            Some(Expression::Bool(b)) => Ok(Some(*b)),
            Some(Expression::String(s)) => match s.as_str() {
                "true" => Ok(Some(true)),
                "false" => Ok(Some(false)),
                _ => Err(self.err(name, format!("expected true or false, found {s:?}"))),
            },
            Some(e) => Err(self.err(name, format!("expected a bool, found {}", expr_kind(e)))),
        }
    }

    fn int(&self, name: &str) -> R<Option<i64>> {
        match self.attr(name)? {
            None => Ok(None),
            Some(Expression::Number(n)) => n
                .as_i64()
                .map(Some)
                .ok_or_else(|| self.err(name, "expected a whole number")),
            Some(Expression::String(s)) => s
                .trim()
                .parse()
                .map(Some)
                .map_err(|_| self.err(name, format!("expected a whole number, found {s:?}"))),
            Some(e) => Err(self.err(name, format!("expected a number, found {}", expr_kind(e)))),
        }
    }

    fn duration(&self, name: &str) -> R<Option<Duration>> {
        match self.attr(name)? {
            None => Ok(None),
            Some(Expression::Number(n)) => match n.as_u64() {
                Some(secs) => Ok(Some(Duration::from_secs(secs))),
                None => Err(self.err(name, "expected a non-negative number of seconds")),
            },
            Some(Expression::String(s)) => {
                parse_duration(s).map(Some).map_err(|m| self.err(name, m))
            }
            Some(e) => Err(self.err(name, format!("expected a duration, found {}", expr_kind(e)))),
        }
    }

    fn mode(&self, name: &str) -> R<Option<u32>> {
        let text = match self.attr(name)? {
            None => return Ok(None),
            Some(Expression::Number(n)) => n.to_string(),
            Some(Expression::String(s)) => s.clone(),
            Some(e) => {
                return Err(self.err(
                    name,
                    format!("expected an octal mode, found {}", expr_kind(e)),
                ));
            }
        };
        parse_mode(&text).map(Some).map_err(|m| self.err(name, m))
    }

    /// A list of strings; a single string is one item.
    fn strings(&self, name: &str) -> R<Option<Vec<String>>> {
        match self.attr(name)? {
            None => Ok(None),
            Some(Expression::String(s)) => Ok(Some(vec![s.clone()])),
            Some(Expression::Array(items)) => items
                .iter()
                .map(|e| match e {
                    Expression::String(s) => Ok(s.clone()),
                    Expression::Number(n) => Ok(n.to_string()),
                    other => Err(self.err(
                        name,
                        format!(
                            "expected a list of strings, found {} in it",
                            expr_kind(other)
                        ),
                    )),
                })
                .collect::<R<Vec<_>>>()
                .map(Some),
            Some(e) => Err(self.err(name, format!("expected a list, found {}", expr_kind(e)))),
        }
    }

    /// A list of names given as a list or as one comma-separated string.
    fn names(&self, name: &str) -> R<Vec<String>> {
        Ok(self
            .strings(name)?
            .unwrap_or_default()
            .iter()
            .flat_map(|s| s.split(','))
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect())
    }

    fn blocks(&self, name: &str) -> Vec<&'a Block> {
        self.seen.borrow_mut().insert(name.to_string());
        self.body
            .blocks()
            .filter(|b| b.identifier() == name)
            .collect()
    }

    fn one_block(&self, name: &str) -> R<Option<&'a Block>> {
        let found = self.blocks(name);
        if found.len() > 1 {
            return Err(self.err(name, "may appear only once"));
        }
        Ok(found.into_iter().next())
    }

    /// A nested body given as a block (`config { }`) or an object attribute (`config = { }`).
    fn nested(&self, name: &str) -> R<Option<Body>> {
        let blocks = self.blocks(name);
        let attr = self.attr(name)?;
        match (blocks.as_slice(), attr) {
            ([], None) => Ok(None),
            ([b], None) => Ok(Some(b.body().clone())),
            ([], Some(Expression::Object(obj))) => {
                let mut builder = Body::builder();
                for (k, v) in obj.iter() {
                    let key = match k {
                        hcl::ObjectKey::Identifier(i) => i.to_string(),
                        hcl::ObjectKey::Expression(Expression::String(s)) => s.clone(),
                        _ => return Err(self.err(name, "object keys must be names")),
                    };
                    builder = builder.add_attribute((key, v.clone()));
                }
                Ok(Some(builder.build()))
            }
            ([], Some(e)) => {
                Err(self.err(name, format!("expected a block, found {}", expr_kind(e))))
            }
            _ => Err(self.err(name, "may appear only once")),
        }
    }

    /// Refuses every attribute and block that was not read.
    fn finish(&self) -> R<()> {
        let seen = self.seen.borrow();
        for a in self.body.attributes() {
            if !seen.contains(a.key()) {
                return Err(self.err(a.key(), "unknown or unsupported field"));
            }
        }
        for b in self.body.blocks() {
            if !seen.contains(b.identifier()) {
                return Err(self.err(b.identifier(), "unknown or unsupported block"));
            }
        }
        Ok(())
    }
}

/// A Go duration or integer seconds, not negative.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let nanos = tresor_client::duration::parse(s.trim()).map_err(|e| e.to_string())?;
    if nanos < 0 {
        return Err(format!("duration {s:?} is negative"));
    }
    Ok(Duration::from_nanos(nanos as u64))
}

/// An octal mode such as `0600`, `600` or `"0o600"`.
pub fn parse_mode(s: &str) -> Result<u32, String> {
    let t = s.trim();
    let digits = t.strip_prefix("0o").unwrap_or(t);
    match u32::from_str_radix(digits, 8) {
        Ok(m) if m <= 0o7777 => Ok(m),
        _ => Err(format!(
            "expected an octal mode such as \"0600\", found {s:?}"
        )),
    }
}

/// The label of a typed block, or its `type` attribute.
fn block_type(at: &str, block: &Block, section: &Section<'_>) -> R<String> {
    match block.labels() {
        [label] => {
            if section.attr("type")?.is_some() {
                return Err(err(
                    format!("{at}.type"),
                    "given both as a label and as a field",
                ));
            }
            Ok(label.as_str().to_string())
        }
        [] => section.required("type"),
        _ => Err(err(at, "expected at most one label")),
    }
}

/// Reads and checks a configuration file.
pub fn load(path: &Path) -> R<Config> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| err("", format!("cannot read {}: {e}", path.display())))?;
    let base = path.parent().unwrap_or(Path::new("."));
    parse(&text, base)
}

/// HCL text to a body, accepting Vault's HCL 1 forms (Vault reads agent files with HCL 1):
/// valid HCL 2 is parsed as it is; otherwise the text with the missing line breaks inserted.
/// Errors give the line and column as written.
fn parse_hcl(text: &str) -> R<Body> {
    use tresor_policy::hcl1;
    if let Some(at) = hcl1::too_deep(text) {
        let (line, column) = hcl1::line_column(text, at);
        return Err(err(
            "",
            format!(
                "invalid HCL on line {line}, column {column}: nested more than {} levels deep",
                hcl1::MAX_PARSE_NESTING
            ),
        ));
    }
    let located = |e: hcl::Error, n: Option<&hcl1::Normalized>| match e {
        hcl::Error::Parse(p) => {
            let loc = p.location();
            let (line, column) = match n {
                Some(n) => hcl1::line_column(text, n.original_offset(loc.offset())),
                None => (loc.line(), loc.column()),
            };
            err(
                "",
                format!(
                    "invalid HCL on line {line}, column {column}: {}",
                    p.message().replace('\n', " ")
                ),
            )
        }
        other => err("", format!("invalid HCL: {other}")),
    };
    let first = match hcl::parse(text) {
        Ok(b) => return Ok(b),
        Err(e) => e,
    };
    let normalized = hcl1::normalize(text);
    if !normalized.changed() {
        return Err(located(first, None));
    }
    hcl::parse(&normalized.text).map_err(|e| located(e, Some(&normalized)))
}

/// Parses configuration text; relative template `source` paths are read from `base`.
pub fn parse(text: &str, base: &Path) -> R<Config> {
    let body = parse_hcl(text)?;
    let top = Section::new("", &body);
    let mut cfg = Config {
        pid_file: top.path("pid_file")?,
        exit_after_auth: top.bool("exit_after_auth")?.unwrap_or(false),
        ..Config::default()
    };
    if let Some(b) = top.one_block("vault")? {
        cfg.vault = parse_vault(b.body())?;
    }
    if let Some(b) = top.one_block("auto_auth")? {
        cfg.auto_auth = Some(parse_auto_auth(b.body())?);
    }
    for (i, b) in top.blocks("listener").into_iter().enumerate() {
        cfg.listeners.push(parse_listener(i, b)?);
    }
    if let Some(b) = top.one_block("api_proxy")? {
        let s = Section::new("api_proxy", b.body());
        cfg.api_proxy.use_auto_auth_token = use_auto_auth_token(&s)?;
        s.finish()?;
    }
    if let Some(b) = top.one_block("cache")? {
        let s = Section::new("cache", b.body());
        // Vault's older place for the same switch.
        let legacy = use_auto_auth_token(&s)?;
        if legacy != UseAutoAuthToken::No
            && cfg.api_proxy.use_auto_auth_token == UseAutoAuthToken::No
        {
            cfg.api_proxy.use_auto_auth_token = legacy;
        }
        s.finish()?;
        cfg.cache = true;
    }
    if let Some(b) = top.one_block("template_config")? {
        let s = Section::new("template_config", b.body());
        let d = TemplateSettings::default();
        cfg.template_config = TemplateSettings {
            static_secret_render_interval: s
                .duration("static_secret_render_interval")?
                .unwrap_or(d.static_secret_render_interval),
            exit_on_retry_failure: s.bool("exit_on_retry_failure")?.unwrap_or(false),
        };
        // Connection pooling is reqwest's; the knob is accepted and has no effect.
        s.int("max_connections_per_host")?;
        s.finish()?;
        if cfg.template_config.static_secret_render_interval < Duration::from_millis(100) {
            return Err(err(
                "template_config.static_secret_render_interval",
                "must be at least 100ms",
            ));
        }
    }
    for (i, b) in top.blocks("template").into_iter().enumerate() {
        cfg.templates.push(parse_template(i, b.body(), base)?);
    }
    if let Some(b) = top.one_block("exec")? {
        cfg.exec = Some(parse_exec(b.body())?);
    }
    for b in top.blocks("env_template") {
        cfg.env_templates.push(parse_env_template(b)?);
    }
    for b in top.blocks("certificate") {
        cfg.certificates.push(parse_certificate(b)?);
    }
    top.finish()?;
    check_whole(&cfg)?;
    Ok(cfg)
}

fn use_auto_auth_token(s: &Section<'_>) -> R<UseAutoAuthToken> {
    match s.attr("use_auto_auth_token")? {
        None | Some(Expression::Bool(false)) => Ok(UseAutoAuthToken::No),
        Some(Expression::Bool(true)) => Ok(UseAutoAuthToken::Yes),
        Some(Expression::String(v)) => match v.to_ascii_lowercase().as_str() {
            "true" => Ok(UseAutoAuthToken::Yes),
            "false" => Ok(UseAutoAuthToken::No),
            "force" => Ok(UseAutoAuthToken::Force),
            _ => Err(s.err(
                "use_auto_auth_token",
                format!("expected true, false or \"force\", found {v:?}"),
            )),
        },
        Some(e) => Err(s.err(
            "use_auto_auth_token",
            format!("expected true, false or \"force\", found {}", expr_kind(e)),
        )),
    }
}

fn parse_vault(body: &Body) -> R<Vault> {
    let s = Section::new("vault", body);
    let mut v = Vault {
        address: s.string("address")?,
        ca_cert: s.path("ca_cert")?,
        ca_path: s.path("ca_path")?,
        client_cert: s.path("client_cert")?,
        client_key: s.path("client_key")?,
        tls_skip_verify: s.bool("tls_skip_verify")?,
        tls_server_name: s.string("tls_server_name")?,
        ..Vault::default()
    };
    if let Some(r) = s.one_block("retry")? {
        let rs = Section::new("vault.retry", r.body());
        if let Some(n) = rs.int("num_retries")? {
            v.num_retries = match n {
                -1 | 0 => 0,
                n if n > 0 => n.min(1000) as u32,
                _ => return Err(rs.err("num_retries", "must be -1 (none) or more")),
            };
        }
        rs.finish()?;
    }
    s.finish()?;
    if v.client_cert.is_some() != v.client_key.is_some() {
        return Err(err(
            "vault.client_cert",
            "client_cert and client_key must be given together",
        ));
    }
    Ok(v)
}

fn parse_auto_auth(body: &Body) -> R<AutoAuth> {
    let s = Section::new("auto_auth", body);
    let methods = s.blocks("method");
    let method = match methods.as_slice() {
        [m] => parse_method(m)?,
        [] => return Err(s.err("method", "is required")),
        _ => return Err(s.err("method", "may appear only once")),
    };
    let mut sinks = Vec::new();
    for b in s.blocks("sink") {
        let ss = Section::new("auto_auth.sink", b.body());
        let kind = block_type("auto_auth.sink", b, &ss)?;
        let at = format!("auto_auth.sink {kind:?}");
        if kind != "file" {
            return Err(err(at, "only the \"file\" sink is supported"));
        }
        let ss = Section { at, ..ss };
        let wrap_ttl = ss.duration("wrap_ttl")?;
        let conf = ss
            .nested("config")?
            .ok_or_else(|| ss.err("config", "is required (config { path = ... })"))?;
        ss.finish()?;
        let cs = Section::new(format!("{}.config", ss.at), &conf);
        let sink = Sink {
            path: cs
                .path("path")?
                .ok_or_else(|| cs.err("path", "is required"))?,
            mode: cs.mode("mode")?.unwrap_or(0o600),
            wrap_ttl,
        };
        cs.finish()?;
        if sinks.iter().any(|x: &Sink| x.path == sink.path) {
            return Err(cs.err("path", "two sinks write the same file"));
        }
        sinks.push(sink);
    }
    s.finish()?;
    Ok(AutoAuth { method, sinks })
}

fn parse_method(b: &Block) -> R<Method> {
    let s = Section::new("auto_auth.method", b.body());
    let kind = block_type("auto_auth.method", b, &s)?;
    let s = Section {
        at: format!("auto_auth.method {kind:?}"),
        ..s
    };
    let mount_path = s
        .string("mount_path")?
        .map(|m| m.trim_matches('/').to_string())
        .unwrap_or_else(|| format!("auth/{kind}"));
    let min_backoff = s.duration("min_backoff")?.unwrap_or(Duration::from_secs(1));
    let max_backoff = s
        .duration("max_backoff")?
        .unwrap_or(Duration::from_secs(300));
    let exit_on_err = s.bool("exit_on_err")?.unwrap_or(false);
    if s.string("namespace")?.is_some() {
        return Err(s.err("namespace", "namespaces are not supported by tresor"));
    }
    let conf = s.nested("config")?.unwrap_or_default();
    s.finish()?;
    if min_backoff.is_zero() || max_backoff < min_backoff {
        return Err(s.err(
            "max_backoff",
            "min_backoff must be positive and at most max_backoff",
        ));
    }
    let c = Section::new(format!("{}.config", s.at), &conf);
    let kind = match kind.as_str() {
        "approle" => {
            let k = MethodKind::AppRole {
                role_id_file_path: c
                    .path("role_id_file_path")?
                    .ok_or_else(|| c.err("role_id_file_path", "is required"))?,
                secret_id_file_path: c.path("secret_id_file_path")?,
                remove_secret_id_file_after_reading: c
                    .bool("remove_secret_id_file_after_reading")?
                    .unwrap_or(true),
                secret_id_response_wrapping_path: c
                    .string("secret_id_response_wrapping_path")?
                    .map(|p| p.trim_matches('/').to_string())
                    .filter(|p| !p.is_empty()),
            };
            if let MethodKind::AppRole {
                secret_id_file_path: None,
                secret_id_response_wrapping_path: Some(_),
                ..
            } = &k
            {
                return Err(c.err(
                    "secret_id_response_wrapping_path",
                    "needs secret_id_file_path",
                ));
            }
            k
        }
        "token_file" => MethodKind::TokenFile {
            token_file_path: c
                .path("token_file_path")?
                .ok_or_else(|| c.err("token_file_path", "is required"))?,
        },
        "userpass" => {
            let username = c.required("username")?;
            let password = match (c.string("password")?, c.path("password_file_path")?) {
                (Some(p), None) => Zeroizing::new(p),
                (None, Some(file)) => Zeroizing::new(
                    std::fs::read_to_string(&file)
                        .map_err(|e| {
                            c.err(
                                "password_file_path",
                                format!("cannot read {}: {e}", file.display()),
                            )
                        })?
                        .trim_end_matches(['\n', '\r'])
                        .to_string(),
                ),
                _ => {
                    return Err(c.err(
                        "password",
                        "exactly one of password and password_file_path is required",
                    ));
                }
            };
            MethodKind::Userpass { username, password }
        }
        "cert" => MethodKind::Cert {
            name: c.string("name")?,
            client_cert: c.path("client_cert")?,
            client_key: c.path("client_key")?,
            ca_cert: c.path("ca_cert")?,
        },
        "jwt" => MethodKind::Jwt {
            path: c
                .path("path")?
                .ok_or_else(|| c.err("path", "is required"))?,
            role: c.required("role")?,
            remove_jwt_after_reading: c.bool("remove_jwt_after_reading")?.unwrap_or(true),
        },
        "kubernetes" => MethodKind::Kubernetes {
            role: c.required("role")?,
            token_path: c.path("token_path")?.unwrap_or_else(|| {
                PathBuf::from("/var/run/secrets/kubernetes.io/serviceaccount/token")
            }),
        },
        other => {
            return Err(err(
                "auto_auth.method",
                format!(
                    "type {other:?} is not supported (approle, cert, jwt, kubernetes, token_file, userpass)"
                ),
            ));
        }
    };
    c.finish()?;
    if let MethodKind::Cert {
        client_cert,
        client_key,
        ..
    } = &kind
        && client_cert.is_some() != client_key.is_some()
    {
        return Err(c.err(
            "client_cert",
            "client_cert and client_key must be given together",
        ));
    }
    Ok(Method {
        kind,
        mount_path,
        min_backoff,
        max_backoff,
        exit_on_err,
    })
}

fn parse_listener(i: usize, b: &Block) -> R<Listener> {
    let s = Section::new(format!("listener[{i}]"), b.body());
    let kind = block_type(&s.at, b, &s)?;
    let s = Section {
        at: format!("listener {kind:?}"),
        ..s
    };
    let address = s.required("address")?;
    let tls_disable = s.bool("tls_disable")?.unwrap_or(false);
    s.string("socket_mode")?;
    s.finish()?;
    if !tls_disable {
        return Err(s.err(
            "tls_disable",
            "TLS listeners are not supported by tresor agent yet: set tls_disable = true",
        ));
    }
    match kind.as_str() {
        "tcp" => Ok(Listener::Tcp(address)),
        "unix" => Ok(Listener::Unix(PathBuf::from(address))),
        other => Err(err(
            format!("listener[{i}]"),
            format!("type {other:?} is not supported (tcp, unix)"),
        )),
    }
}

fn parse_template(i: usize, body: &Body, base: &Path) -> R<Template> {
    let s = Section::new(format!("template[{i}]"), body);
    let source = s.path("source")?;
    let contents = s.string("contents")?;
    let text = match (&source, contents) {
        (Some(src), None) => {
            let full = if src.is_absolute() {
                src.clone()
            } else {
                base.join(src)
            };
            std::fs::read_to_string(&full)
                .map_err(|e| s.err("source", format!("cannot read {}: {e}", full.display())))?
        }
        (None, Some(c)) => c,
        _ => {
            return Err(s.err("contents", "exactly one of source and contents is required"));
        }
    };
    let command = s.strings("command")?.unwrap_or_default();
    let t = Template {
        text,
        source,
        destination: s
            .path("destination")?
            .ok_or_else(|| s.err("destination", "is required"))?,
        perms: s.mode("perms")?.unwrap_or(0o644),
        create_dest_dirs: s.bool("create_dest_dirs")?.unwrap_or(true),
        command: shell_command(command),
        command_timeout: s
            .duration("command_timeout")?
            .unwrap_or(Duration::from_secs(30)),
        error_on_missing_key: s.bool("error_on_missing_key")?.unwrap_or(false),
        left_delimiter: s.string("left_delimiter")?.unwrap_or_else(|| "{{".into()),
        right_delimiter: s.string("right_delimiter")?.unwrap_or_else(|| "}}".into()),
    };
    s.finish()?;
    if t.left_delimiter.is_empty() || t.right_delimiter.is_empty() {
        return Err(s.err("left_delimiter", "delimiters cannot be empty"));
    }
    Ok(t)
}

/// A command given as one string runs through `sh -c` (as Vault runs it); a list runs as is.
fn shell_command(command: Vec<String>) -> Vec<String> {
    match command.as_slice() {
        [one] => vec!["/bin/sh".into(), "-c".into(), one.clone()],
        _ => command,
    }
}

fn parse_exec(body: &Body) -> R<Exec> {
    let s = Section::new("exec", body);
    let command = s
        .strings("command")?
        .filter(|c| !c.is_empty())
        .ok_or_else(|| s.err("command", "is required"))?;
    let restart = match s.string("restart_on_secret_changes")?.as_deref() {
        None | Some("always") => RestartOn::Always,
        Some("never") => RestartOn::Never,
        Some(o) => {
            return Err(s.err(
                "restart_on_secret_changes",
                format!("expected \"always\" or \"never\", found {o:?}"),
            ));
        }
    };
    let signal = s
        .string("restart_stop_signal")?
        .unwrap_or_else(|| "SIGTERM".into());
    s.finish()?;
    if !matches!(
        signal.as_str(),
        "SIGTERM" | "SIGINT" | "SIGHUP" | "SIGQUIT" | "SIGKILL" | "SIGUSR1" | "SIGUSR2"
    ) {
        return Err(s.err(
            "restart_stop_signal",
            format!("unsupported signal {signal:?}"),
        ));
    }
    Ok(Exec {
        command,
        restart_on_secret_changes: restart,
        restart_stop_signal: signal,
    })
}

fn parse_env_template(b: &Block) -> R<EnvTemplate> {
    let name = match b.labels() {
        [l] => l.as_str().to_string(),
        _ => {
            return Err(err(
                "env_template",
                "needs exactly one label, the variable name",
            ));
        }
    };
    let s = Section::new(format!("env_template {name:?}"), b.body());
    if name.is_empty() || name.contains('=') || name.contains('\0') {
        return Err(err(s.at.clone(), "invalid variable name"));
    }
    let t = EnvTemplate {
        text: s.required("contents")?,
        error_on_missing_key: s.bool("error_on_missing_key")?.unwrap_or(false),
        name,
    };
    s.finish()?;
    Ok(t)
}

fn parse_file_spec(parent: &Section<'_>, name: &str, default_mode: u32) -> R<Option<FileSpec>> {
    let Some(b) = parent.one_block(name)? else {
        return Ok(None);
    };
    let s = Section::new(parent.field(name), b.body());
    let spec = FileSpec {
        path: s
            .path("path")?
            .ok_or_else(|| s.err("path", "is required"))?,
        owner: match s.string("owner")? {
            None => None,
            Some(o) => Some(
                crate::files::lookup_id("/etc/passwd", &o)
                    .ok_or_else(|| s.err("owner", format!("no such user {o:?}")))?,
            ),
        },
        group: match s.string("group")? {
            None => None,
            Some(g) => Some(
                crate::files::lookup_id("/etc/group", &g)
                    .ok_or_else(|| s.err("group", format!("no such group {g:?}")))?,
            ),
        },
        mode: s.mode("mode")?.unwrap_or(default_mode),
    };
    s.finish()?;
    Ok(Some(spec))
}

fn parse_certificate(b: &Block) -> R<Certificate> {
    let name = match b.labels() {
        [l] if !l.as_str().is_empty() => l.as_str().to_string(),
        _ => return Err(err("certificate", "needs exactly one label, its name")),
    };
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err(err(
            format!("certificate {name:?}"),
            "the name may use letters, digits, '-', '_' and '.' only",
        ));
    }
    let s = Section::new(format!("certificate {name:?}"), b.body());
    let renew_before = match s.attr("renew_before")? {
        None => RenewBefore::Fraction(1.0 / 3.0),
        Some(Expression::Number(n)) if n.as_f64().is_some_and(|f| f > 0.0 && f < 1.0) => {
            RenewBefore::Fraction(n.as_f64().unwrap_or(0.33))
        }
        Some(Expression::String(t)) if t.ends_with('%') => {
            match t.trim_end_matches('%').trim().parse::<f64>() {
                Ok(p) if p > 0.0 && p < 100.0 => RenewBefore::Fraction(p / 100.0),
                _ => return Err(s.err("renew_before", format!("invalid percentage {t:?}"))),
            }
        }
        Some(Expression::String(t)) => match t.parse::<f64>() {
            Ok(f) if f > 0.0 && f < 1.0 && t.contains('.') => RenewBefore::Fraction(f),
            _ => RenewBefore::Duration(parse_duration(t).map_err(|m| s.err("renew_before", m))?),
        },
        Some(_) => {
            return Err(s.err(
                "renew_before",
                "expected a duration (\"1h\"), a fraction (0.33) or a percentage (\"33%\")",
            ));
        }
    };
    let csr = match s.bool("csr")?.unwrap_or(false) {
        false => {
            if s.string("key_type")?.is_some() || s.int("key_bits")?.is_some() {
                return Err(s.err("key_type", "key_type and key_bits need csr = true"));
            }
            None
        }
        true => {
            let ty = s.string("key_type")?.unwrap_or_else(|| "ec".into());
            let bits = s.int("key_bits")?;
            Some(match (ty.as_str(), bits) {
                ("ec", None | Some(256)) => KeyType::Ec(256),
                ("ec", Some(384)) => KeyType::Ec(384),
                ("rsa", None | Some(2048)) => KeyType::Rsa(2048),
                ("rsa", Some(b @ (3072 | 4096))) => KeyType::Rsa(b as u32),
                _ => {
                    return Err(s.err(
                        "key_bits",
                        format!("unsupported key {ty} {bits:?} (ec 256/384, rsa 2048/3072/4096)"),
                    ));
                }
            })
        }
    };
    let cert = Certificate {
        mount: s.required("mount")?.trim_matches('/').to_string(),
        role: s.required("role")?,
        common_name: s.required("common_name")?,
        alt_names: s.names("alt_names")?,
        ip_sans: s.names("ip_sans")?,
        uri_sans: s.names("uri_sans")?,
        ttl: s.string("ttl")?,
        renew_before,
        csr,
        key_file: parse_file_spec(&s, "key_file", 0o600)?
            .ok_or_else(|| s.err("key_file", "is required"))?,
        cert_file: parse_file_spec(&s, "cert_file", 0o644)?
            .ok_or_else(|| s.err("cert_file", "is required"))?,
        ca_file: parse_file_spec(&s, "ca_file", 0o644)?,
        chain_file: parse_file_spec(&s, "chain_file", 0o644)?,
        reload: match s.one_block("reload")? {
            None => None,
            Some(r) => {
                let rs = Section::new(format!("{}.reload", s.at), r.body());
                let command = rs
                    .strings("command")?
                    .filter(|c| !c.is_empty())
                    .ok_or_else(|| rs.err("command", "is required"))?;
                let timeout = rs.duration("timeout")?.unwrap_or(Duration::from_secs(30));
                rs.finish()?;
                Some(Reload {
                    command: shell_command(command),
                    timeout,
                })
            }
        },
        name,
    };
    s.finish()?;
    if let Some(t) = &cert.ttl {
        parse_duration(t).map_err(|m| s.err("ttl", m))?;
    }
    let m = cert.key_file.mode;
    // A key readable by its group is accepted when a group is named (services such as etcd
    // read their key through a group); readable by others never.
    if m & 0o007 != 0 || (m & 0o070 != 0 && cert.key_file.group.is_none()) {
        return Err(s.err(
            "key_file.mode",
            format!(
                "{m:04o} lets others read the private key; use 0600 or 0400 (0640 with a group)"
            ),
        ));
    }
    let mut paths: Vec<&Path> = vec![&cert.key_file.path, &cert.cert_file.path];
    paths.extend(cert.ca_file.iter().map(|f| f.path.as_path()));
    paths.extend(cert.chain_file.iter().map(|f| f.path.as_path()));
    for (i, p) in paths.iter().enumerate() {
        if paths[..i].contains(p) {
            return Err(s.err("key_file", format!("{} is used for two parts", p.display())));
        }
    }
    Ok(cert)
}

/// Checks that need the whole file.
fn check_whole(cfg: &Config) -> R<()> {
    let needs_token = !cfg.templates.is_empty()
        || !cfg.certificates.is_empty()
        || !cfg.env_templates.is_empty()
        || cfg.api_proxy.use_auto_auth_token != UseAutoAuthToken::No;
    if needs_token && cfg.auto_auth.is_none() {
        return Err(err(
            "auto_auth",
            "is required by template, env_template, certificate and api_proxy.use_auto_auth_token",
        ));
    }
    if cfg.cache && cfg.listeners.is_empty() {
        return Err(err("cache", "needs a listener"));
    }
    if cfg.exec.is_some() && cfg.env_templates.is_empty() && cfg.templates.is_empty() {
        return Err(err("exec", "needs env_template or template blocks"));
    }
    if !cfg.env_templates.is_empty() && cfg.exec.is_none() {
        return Err(err("env_template", "needs an exec block"));
    }
    let mut names = BTreeSet::new();
    for e in &cfg.env_templates {
        if !names.insert(&e.name) {
            return Err(err(format!("env_template {:?}", e.name), "defined twice"));
        }
    }
    let mut names = BTreeSet::new();
    for c in &cfg.certificates {
        if !names.insert(&c.name) {
            return Err(err(format!("certificate {:?}", c.name), "defined twice"));
        }
    }
    let mut dests = BTreeSet::new();
    for (i, t) in cfg.templates.iter().enumerate() {
        if !dests.insert(&t.destination) {
            return Err(err(
                format!("template[{i}].destination"),
                "another template writes the same file",
            ));
        }
    }
    if cfg.auto_auth.is_none()
        && cfg.listeners.is_empty()
        && cfg.templates.is_empty()
        && cfg.certificates.is_empty()
    {
        return Err(err(
            "",
            "nothing to do: configure auto_auth, a listener, templates or certificates",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
