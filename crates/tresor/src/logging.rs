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
//!
//! The log also goes to `log_file` when configured (rotated by size and age, crate::logfile),
//! and to `sys/monitor` subscribers; `sys/loggers` changes the levels at run time (issue 20).

use std::collections::BTreeMap;
use std::fmt;
use std::io::{IsTerminal as _, Write as _};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};

use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::{FormatTime as _, SystemTime};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Layer, Registry};

static JSON: AtomicBool = AtomicBool::new(false);

type Reload = tracing_subscriber::reload::Handle<EnvFilter, Registry>;

/// The named loggers `sys/loggers` knows, and the code each one covers.
const LOGGERS: [(&str, &str); 12] = [
    ("core", "tresor_core"),
    ("audit", "tresor_core::audit"),
    ("expiration", "tresor_core::leases"),
    ("token", "tresor_core::tokens"),
    ("policy", "tresor_core::policies"),
    ("identity", "tresor_core::identity"),
    ("ha", "tresor_core::ha"),
    ("http", "tresor_http"),
    ("storage", "tresor_physical"),
    ("server", "tresor"),
    ("secrets", "tresor_kv"),
    ("agent", "tresor_agent"),
];

/// The levels in force: a base level and per-logger ones, applied to every output's filter.
struct Levels {
    configured: String,
    env: Option<String>,
    base: String,
    overrides: BTreeMap<String, String>,
    handles: Vec<Reload>,
}

impl Levels {
    fn directives(&self) -> String {
        let mut d = self.env.clone().unwrap_or_else(|| self.base.clone());
        for (logger, level) in &self.overrides {
            let target = LOGGERS
                .iter()
                .find(|(n, _)| n == logger)
                .map(|(_, t)| *t)
                .unwrap_or(logger);
            d.push_str(&format!(",{target}={level}"));
        }
        d
    }
    fn apply(&self) -> Result<(), String> {
        let d = self.directives();
        for h in &self.handles {
            h.reload(EnvFilter::new(&d)).map_err(|e| e.to_string())?;
        }
        Ok(())
    }
}

/// Lines for `sys/monitor` subscribers, each at its own level.
struct Monitors {
    subs: Mutex<Vec<(Level, bool, tokio::sync::mpsc::Sender<String>)>>,
    /// The most verbose level any subscriber wants (as `Level` index; 0 = none).
    max: AtomicU8,
}

static MONITORS: Monitors = Monitors {
    subs: Mutex::new(Vec::new()),
    max: AtomicU8::new(0),
};

fn level_rank(l: &Level) -> u8 {
    match *l {
        Level::ERROR => 1,
        Level::WARN => 2,
        Level::INFO => 3,
        Level::DEBUG => 4,
        Level::TRACE => 5,
    }
}

fn parse_level(s: &str) -> Result<Level, String> {
    match s.trim().to_ascii_lowercase().as_str() {
        "trace" => Ok(Level::TRACE),
        "debug" => Ok(Level::DEBUG),
        "info" => Ok(Level::INFO),
        "warn" | "warning" => Ok(Level::WARN),
        "error" | "err" => Ok(Level::ERROR),
        other => Err(format!(
            "unknown log level {other:?} (trace, debug, info, warn, error)"
        )),
    }
}

impl Monitors {
    fn recompute(&self, subs: &[(Level, bool, tokio::sync::mpsc::Sender<String>)]) {
        let max = subs
            .iter()
            .map(|(l, _, _)| level_rank(l))
            .max()
            .unwrap_or(0);
        self.max.store(max, Ordering::Relaxed);
        tracing::callsite::rebuild_interest_cache();
    }
}

/// The layer feeding `sys/monitor`: enabled only while someone listens.
struct MonitorLayer;

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for MonitorLayer {
    fn on_event(&self, event: &Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        let meta = event.metadata();
        let rank = level_rank(meta.level());
        if rank > MONITORS.max.load(Ordering::Relaxed) {
            return;
        }
        let mut fields = Fields(Map::new());
        event.record(&mut fields);
        let mut fields = fields.0;
        let message = fields.remove("message").unwrap_or(Value::from(""));
        let mut subs = MONITORS.subs.lock().unwrap_or_else(|e| e.into_inner());
        let before = subs.len();
        let (mut text, mut json) = (None, None);
        subs.retain(|(level, want_json, tx)| {
            if tx.is_closed() {
                return false;
            }
            if rank > level_rank(level) {
                return true;
            }
            let line = if *want_json {
                json.get_or_insert_with(|| {
                    let mut line = Map::new();
                    line.insert(
                        "@level".into(),
                        meta.level().as_str().to_ascii_lowercase().into(),
                    );
                    line.insert("@message".into(), message.clone());
                    line.insert("@module".into(), meta.target().into());
                    line.insert("@timestamp".into(), timestamp().into());
                    for (k, v) in &fields {
                        line.insert(k.clone(), v.clone());
                    }
                    format!("{}\n", Value::Object(line))
                })
                .clone()
            } else {
                text.get_or_insert_with(|| {
                    let msg = message
                        .as_str()
                        .map(str::to_owned)
                        .unwrap_or_else(|| message.to_string());
                    let mut l = format!(
                        "{} [{}] {}: {msg}",
                        timestamp(),
                        meta.level(),
                        meta.target()
                    );
                    for (k, v) in &fields {
                        match v.as_str() {
                            Some(s) => l.push_str(&format!(" {k}={s}")),
                            None => l.push_str(&format!(" {k}={v}")),
                        }
                    }
                    l.push('\n');
                    l
                })
                .clone()
            };
            // A slow reader loses lines rather than slowing the server down (as in Vault).
            !matches!(
                tx.try_send(line),
                Err(tokio::sync::mpsc::error::TrySendError::Closed(_))
            )
        });
        if subs.len() != before {
            MONITORS.recompute(&subs);
        }
    }
}

/// What `sys/loggers` and `sys/monitor` change and read.
struct Control(Mutex<Levels>);

impl tresor_core::diagnostics::LogControl for Control {
    fn levels(&self) -> BTreeMap<String, String> {
        let l = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let mut out: BTreeMap<String, String> = LOGGERS
            .iter()
            .map(|(n, _)| ((*n).to_owned(), l.base.clone()))
            .collect();
        for (k, v) in &l.overrides {
            out.insert(k.clone(), v.clone());
        }
        out.insert(String::new(), l.base.clone());
        out
    }
    fn set_level(&self, logger: Option<&str>, level: &str) -> Result<(), String> {
        let level = parse_level(level)?.as_str().to_ascii_lowercase();
        let mut l = self.0.lock().unwrap_or_else(|e| e.into_inner());
        match logger {
            None => {
                l.base = level;
                l.overrides.clear();
                l.env = None;
            }
            Some(name) => {
                if !LOGGERS.iter().any(|(n, _)| *n == name) && !name.starts_with("tresor") {
                    return Err(format!("logger {name:?} not found"));
                }
                l.overrides.insert(name.to_owned(), level);
            }
        }
        l.apply()
    }
    fn reset(&self, logger: Option<&str>) -> Result<(), String> {
        let mut l = self.0.lock().unwrap_or_else(|e| e.into_inner());
        match logger {
            None => {
                l.base = l.configured.clone();
                l.overrides.clear();
            }
            Some(name) => {
                if l.overrides.remove(name).is_none() && !LOGGERS.iter().any(|(n, _)| *n == name) {
                    return Err(format!("logger {name:?} not found"));
                }
            }
        }
        l.apply()
    }
    fn subscribe(
        &self,
        level: &str,
        json: bool,
    ) -> Result<tokio::sync::mpsc::Receiver<String>, String> {
        let level = parse_level(level)?;
        let (tx, rx) = tokio::sync::mpsc::channel(512);
        let mut subs = MONITORS.subs.lock().unwrap_or_else(|e| e.into_inner());
        subs.push((level, json, tx));
        MONITORS.recompute(&subs);
        Ok(rx)
    }
}

/// Installs the global subscriber: stderr, the log file if configured, and the `sys/monitor`
/// feed, each output with a filter `sys/loggers` can change. `level` and `format` are
/// validated values (`crate::config::log_level`, `crate::config::log_format`).
pub fn init(
    level: &str,
    format: &str,
    log_file: Option<&crate::config::LogFileConfig>,
) -> anyhow::Result<Box<dyn tresor_core::diagnostics::LogControl>> {
    let env = std::env::var("RUST_LOG").ok().filter(|v| !v.is_empty());
    let directives = env.clone().unwrap_or_else(|| level.to_owned());
    let json = format == "json";
    JSON.store(json, Ordering::Relaxed);
    let mut handles = Vec::new();
    let mut layers: Vec<Box<dyn Layer<Registry> + Send + Sync>> = Vec::new();
    let (filter, h) = tracing_subscriber::reload::Layer::new(EnvFilter::new(&directives));
    handles.push(h);
    let stderr = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    layers.push(if json {
        stderr
            .with_ansi(false)
            .event_format(VaultJson)
            .with_filter(filter)
            .boxed()
    } else {
        stderr
            .with_ansi(std::io::stderr().is_terminal())
            .with_filter(filter)
            .boxed()
    });
    if let Some(f) = log_file {
        let writer = crate::logfile::RotatingFile::open(f.clone())?;
        let (filter, h) = tracing_subscriber::reload::Layer::new(EnvFilter::new(&directives));
        handles.push(h);
        let file = tracing_subscriber::fmt::layer()
            .with_writer(writer)
            .with_ansi(false);
        layers.push(if json {
            file.event_format(VaultJson).with_filter(filter).boxed()
        } else {
            file.with_filter(filter).boxed()
        });
    }
    // Its own filter (a layer's `enabled` would filter every output): events reach it only
    // while a subscriber wants their level.
    layers.push(
        MonitorLayer
            .with_filter(tracing_subscriber::filter::filter_fn(|meta| {
                level_rank(meta.level()) <= MONITORS.max.load(Ordering::Relaxed)
            }))
            .boxed(),
    );
    let _ = tracing_subscriber::registry().with(layers).try_init();
    Ok(Box::new(Control(Mutex::new(Levels {
        configured: level.to_owned(),
        env,
        base: level.to_owned(),
        overrides: BTreeMap::new(),
        handles,
    }))))
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
