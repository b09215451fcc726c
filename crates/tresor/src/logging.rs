//! The server's log: Vault's levels and its two formats on stderr.
//!
//! * `standard`: human-readable lines, with colour only when stderr is a terminal (a file, a
//!   pipe or the journal gets plain text).
//! * `json`: one JSON object per line with Vault's (hclog's) keys, `@level`, `@message`,
//!   `@module`, `@timestamp`, then the event's fields. The start-up banners ([`say`]) are
//!   JSON lines too, so that every line on stderr parses.
//!
//! The level and format come from `-log-level`/`-log-format`, else `VAULT_LOG_LEVEL`/
//! `VAULT_LOG_FORMAT`, else the config's `log_level`/`log_format`, else `info`/`standard`.
//! `RUST_LOG`, when set, replaces the level with its own directives.

use std::fmt;
use std::io::{IsTerminal as _, Write as _};
use std::sync::atomic::{AtomicBool, Ordering};

use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::{FormatTime as _, SystemTime};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

static JSON: AtomicBool = AtomicBool::new(false);

/// Installs the global subscriber. `level` and `format` are validated values
/// (`crate::config::log_level`, `crate::config::log_format`).
pub fn init(level: &str, format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if format == "json" {
        JSON.store(true, Ordering::Relaxed);
        let _ = builder.with_ansi(false).event_format(VaultJson).try_init();
    } else {
        let _ = builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init();
    }
}

/// Prints a banner (`==> Tresor server started ...`) to stderr: as it is, or as one JSON log
/// line in the JSON format.
pub fn say(text: &str) {
    let mut err = std::io::stderr().lock();
    if JSON.load(Ordering::Relaxed) {
        let mut line = Map::new();
        line.insert("@level".into(), "info".into());
        line.insert("@message".into(), text.trim_end().into());
        line.insert("@timestamp".into(), timestamp().into());
        let _ = writeln!(err, "{}", Value::Object(line));
    } else {
        let _ = writeln!(err, "{text}");
    }
}

/// Prints the error that stops the server: `Error: ...`, or a JSON line at level `error` in the
/// JSON format (errors before the log is set up, such as a refused config, are always text).
pub fn fatal(text: &str) {
    if JSON.load(Ordering::Relaxed) {
        let mut line = Map::new();
        line.insert("@level".into(), "error".into());
        line.insert("@message".into(), format!("Error: {text}").into());
        line.insert("@timestamp".into(), timestamp().into());
        let _ = writeln!(std::io::stderr().lock(), "{}", Value::Object(line));
    } else {
        eprintln!("Error: {text}");
    }
}

fn timestamp() -> String {
    let mut s = String::new();
    let _ = SystemTime.format_time(&mut Writer::new(&mut s));
    s
}

/// hclog's JSON line: `{"@level":"info","@message":"...","@module":"...","@timestamp":"...",
/// ...fields}`.
struct VaultJson;

impl<S, N> FormatEvent<S, N> for VaultJson
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut fields = Fields(Map::new());
        event.record(&mut fields);
        let mut fields = fields.0;
        let meta = event.metadata();
        let mut line = Map::new();
        line.insert(
            "@level".into(),
            meta.level().as_str().to_ascii_lowercase().into(),
        );
        line.insert(
            "@message".into(),
            fields.remove("message").unwrap_or(Value::from("")),
        );
        line.insert("@module".into(), meta.target().into());
        line.insert("@timestamp".into(), timestamp().into());
        for (k, v) in fields {
            line.insert(k, v);
        }
        writeln!(writer, "{}", Value::Object(line))
    }
}

struct Fields(Map<String, Value>);

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0
            .insert(field.name().to_owned(), format!("{value:?}").into());
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.into());
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().to_owned(), value.into());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().to_owned(), value.into());
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().to_owned(), value.into());
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.insert(field.name().to_owned(), value.into());
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.0
            .insert(field.name().to_owned(), value.to_string().into());
    }
}
